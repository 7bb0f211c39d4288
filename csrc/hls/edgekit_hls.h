/*
 * edgekit fixed-point helpers for generated Vitis HLS C++.
 *
 * Each function is the HLS form of its namesake in edgekit_fixedpoint.h (the MCU kernels'
 * definition of TFLite Micro's integer arithmetic, docs/numerics-int8.md) and must return the
 * same value for every input; tests/test_hls.py compares the two on random and edge inputs.
 * The differences are only in form, for synthesis: every loop has a constant trip count, the
 * leading-zero count is a fixed 32-step scan instead of a while loop, the reciprocal returns a
 * struct instead of writing through a pointer, and wrap-around additions go through uint32_t
 * (signed overflow is undefined in C++, and HLS tools may exploit that as compilers do).
 */
#ifndef EDGEKIT_HLS_H
#define EDGEKIT_HLS_H

#include <stdint.h>

#include "ap_int.h"
#include "hls_stream.h"

/* One stream beat: the innermost dimension of a tensor (a pixel's channels, a dense row). */
template <int N>
struct ek_word {
    ap_int<8> v[N];
};

/* One time step of a spike vector on a stream port: neuron j is v[j]. */
template <int N>
struct ek_spikes {
    ap_uint<1> v[N];
};

/* One time step of a leaky-integrator readout on a stream port: the int32 membranes. */
template <int N>
struct ek_membranes {
    ap_int<32> v[N];
};

namespace ek_hls {

static inline int32_t clamp(int32_t x, int32_t lo, int32_t hi)
{
    return x < lo ? lo : (x > hi ? hi : x);
}

static inline int32_t wrap_add(int32_t a, int32_t b)
{
    return (int32_t)((uint32_t)a + (uint32_t)b);
}

static inline int32_t wrap_sub(int32_t a, int32_t b)
{
    return (int32_t)((uint32_t)a - (uint32_t)b);
}

/* round(a * b / 2^31), ties away from zero; INT32_MIN * INT32_MIN saturates. */
static inline int32_t srdhm(int32_t a, int32_t b)
{
    if (a == INT32_MIN && b == INT32_MIN) {
        return INT32_MAX;
    }
    const int64_t ab = (int64_t)a * (int64_t)b;
    const int64_t nudge = ab >= 0 ? (INT64_C(1) << 30) : (1 - (INT64_C(1) << 30));
    return (int32_t)((ab + nudge) / (INT64_C(1) << 31));
}

/* x / 2^exponent, ties away from zero. */
static inline int32_t rdivpot(int32_t x, int exponent)
{
    const int32_t mask = (int32_t)((UINT32_C(1) << exponent) - 1u);
    const int32_t remainder = x & mask;
    const int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
    return (x >> exponent) + (remainder > threshold ? 1 : 0);
}

/* x * multiplier * 2^(shift - 31): the requantisation of every int8 layer. */
static inline int32_t mbqm(int32_t x, int32_t multiplier, int shift)
{
    const int left = shift > 0 ? shift : 0;
    const int right = shift > 0 ? 0 : -shift;
    return rdivpot(srdhm((int32_t)((uint32_t)x << left), multiplier), right);
}

/* An accumulator to an int8 output: rescale, add the output zero point, clamp. */
static inline ap_int<8> requant(int32_t acc, int32_t multiplier, int shift, int32_t offset,
                                int32_t lo, int32_t hi)
{
    return ap_int<8>(clamp(mbqm(acc, multiplier, shift) + offset, lo, hi));
}

/* TFLite's average: divide by the number of in-image taps, halves away from zero. */
static inline int32_t average(int32_t sum, int32_t count)
{
    if (count <= 0) {
        return sum;
    }
    return sum > 0 ? (sum + count / 2) / count : (sum - count / 2) / count;
}

/* x * 2^exponent for exponent > 0, saturating. */
static inline int32_t sat_shl(int32_t x, int exponent)
{
    const int32_t threshold = (int32_t)((UINT32_C(1) << (31 - exponent)) - 1u);
    if (x > threshold) {
        return INT32_MAX;
    }
    if (x < -threshold) {
        return INT32_MIN;
    }
    return (int32_t)((uint32_t)x << exponent);
}

/* exp(a) for a in [-1/4, 0) in Q0.31; Taylor series around -1/8. */
static inline int32_t exp_quarter_q0(int32_t a)
{
    const int32_t exp_minus_one_eighth = 1895147668;
    const int32_t one_third = 715827883;
    const int32_t x = wrap_add(a, 1 << 28);
    const int32_t x2 = srdhm(x, x);
    const int32_t x3 = srdhm(x2, x);
    const int32_t x4 = srdhm(x2, x2);
    const int32_t x4_over_4 = rdivpot(x4, 2);
    const int32_t poly = rdivpot(wrap_add(srdhm(wrap_add(x4_over_4, x3), one_third), x2), 1);
    return wrap_add(exp_minus_one_eighth, srdhm(exp_minus_one_eighth, wrap_add(x, poly)));
}

/* exp(a) for a <= 0 with int_bits (<= 5) integer bits; result in Q0.31. */
static inline int32_t exp_negative_q(int32_t a, int int_bits)
{
    const int32_t barrel[7] = {1672461947, 1302514674, 790015084, 290630308,
                               39332535,   720401,     242};
    const int frac_bits = 31 - int_bits;
    const int32_t one_quarter = (int32_t)(UINT32_C(1) << (frac_bits - 2));
    const int32_t mask = one_quarter - 1;
    const int32_t a_mod_quarter_minus_quarter = wrap_sub(a & mask, one_quarter);
    int32_t result = exp_quarter_q0(sat_shl(a_mod_quarter_minus_quarter, int_bits));
    const int32_t remainder = wrap_sub(a_mod_quarter_minus_quarter, a);
    for (int k = 0; k < 7; ++k) {
        const int exponent = k - 2;
        if (int_bits > exponent) {
            const int bit = frac_bits + exponent;
            if (remainder & (int32_t)(UINT32_C(1) << bit)) {
                result = srdhm(result, barrel[k]);
            }
        }
    }
    return a == 0 ? INT32_MAX : result;
}

/* 1 / (2 * d) in Q2.29 for d in [1/2, 1), three Newton-Raphson steps. */
static inline int32_t newton_reciprocal_q2(int32_t half_denominator)
{
    const int32_t c48_over_17 = 1515870810;
    const int32_t c_neg32_over_17 = -1010580540;
    int32_t x = wrap_add(c48_over_17, srdhm(half_denominator, c_neg32_over_17));
    for (int i = 0; i < 3; ++i) {
        const int32_t half_denominator_times_x = srdhm(half_denominator, x);
        const int32_t one_minus = wrap_sub(1 << 29, half_denominator_times_x);
        x = wrap_add(x, sat_shl(srdhm(x, one_minus), 2));
    }
    return x;
}

/* (a + 1) / 2 in Q0.31, halves away from zero. */
static inline int32_t half_one_plus_q0(int32_t a)
{
    const int64_t sum = (int64_t)a + INT32_MAX;
    return (int32_t)((sum + (sum >= 0 ? 1 : -1)) / 2);
}

static inline int32_t one_over_one_plus_x_q0(int32_t a)
{
    return sat_shl(newton_reciprocal_q2(half_one_plus_q0(a)), 1);
}

static inline int32_t one_minus_x_over_one_plus_x_q0(int32_t a)
{
    const int32_t x = newton_reciprocal_q2(half_one_plus_q0(a));
    return sat_shl(wrap_sub(x, 1 << 29), 2);
}

/* logistic(a), a with int_bits integer bits; result in Q0.31. */
static inline int32_t logistic_q(int32_t a, int int_bits)
{
    if (a == 0) {
        return 1 << 30;
    }
    const int32_t positive = one_over_one_plus_x_q0(exp_negative_q(a > 0 ? wrap_sub(0, a) : a,
                                                                    int_bits));
    return a > 0 ? positive : wrap_sub(INT32_MAX, positive);
}

/* tanh(a), a with int_bits (<= 4) integer bits; result in Q0.31. */
static inline int32_t tanh_q(int32_t a, int int_bits)
{
    if (a == 0) {
        return 0;
    }
    const int32_t magnitude = one_minus_x_over_one_plus_x_q0(
        exp_negative_q(a < 0 ? a : wrap_sub(0, a), int_bits + 1));
    return a < 0 ? wrap_sub(0, magnitude) : magnitude;
}

struct reciprocal_t {
    int32_t value;       /* Q0.31 */
    int bits_over_unit;  /* how far the value is scaled */
};

/* Q0.31 reciprocal of a sum with int_bits integer bits. */
static inline reciprocal_t reciprocal_q0(int32_t x, int int_bits)
{
    const uint32_t ux = (uint32_t)x;
    int headroom_plus_one = 32;
    for (int i = 31; i >= 0; --i) {
        if ((ux >> (31 - i)) & 1u) {
            headroom_plus_one = i;
        }
    }
    /* a zero sum shifts to zero either way; a 32-bit shift is undefined in C++ */
    const uint32_t shifted = headroom_plus_one < 32 ? ux << headroom_plus_one : 0u;
    reciprocal_t r;
    r.bits_over_unit = int_bits - headroom_plus_one;
    r.value = one_over_one_plus_x_q0((int32_t)(shifted - (UINT32_C(1) << 31)));
    return r;
}

/* Spiking layers (docs/snn.md, "Integer semantics"): the forms of ek_snn_decay and ek_snn_sat
   in the MCU C (codegen/templates/snn/model.c.j2), equal for every input. */

/* floor((v * m + 2^29) / 2^30): the Q2.30 membrane decay, rounding half up. A negative sum is
   floored through its complement, so no negative value is shifted. */
static inline int32_t snn_decay(int32_t v, int32_t m)
{
    const int64_t p = (int64_t)v * m + (INT64_C(1) << 29);
    return (int32_t)(p >= 0 ? p >> 30 : ~((~p) >> 30));
}

/* The membrane saturates at the int32 range instead of wrapping. */
static inline int32_t snn_sat(int64_t x)
{
    return x > INT32_MAX ? INT32_MAX : (x < INT32_MIN ? INT32_MIN : (int32_t)x);
}

} // namespace ek_hls

#endif /* EDGEKIT_HLS_H */
