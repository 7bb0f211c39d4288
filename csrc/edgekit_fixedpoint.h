/*
 * edgekit fixed-point arithmetic shared by generated kernels.
 *
 * These functions define the integer semantics of edgekit's INT8 kernels. They reproduce the
 * rounding of the TFLite Micro reference kernels exactly (docs/numerics-int8.md), so every
 * optimised kernel can be checked against one definition. Signed overflow is avoided by doing
 * wrapping additions in uint32_t: the reference relies on two's-complement wrap in a few places.
 */
#ifndef EDGEKIT_FIXEDPOINT_H
#define EDGEKIT_FIXEDPOINT_H

#include <stdint.h>

#if defined(__GNUC__) || defined(__clang__)
#define EK_INLINE static inline __attribute__((always_inline))
#define EK_ALIGN(n) __attribute__((aligned(n)))
#else
#define EK_INLINE static inline
#define EK_ALIGN(n)
#endif

EK_INLINE int32_t ek_min_i32(int32_t a, int32_t b) { return a < b ? a : b; }
EK_INLINE int32_t ek_max_i32(int32_t a, int32_t b) { return a > b ? a : b; }
EK_INLINE int32_t ek_clamp_i32(int32_t x, int32_t lo, int32_t hi)
{
    return x < lo ? lo : (x > hi ? hi : x);
}

EK_INLINE int32_t ek_wrap_add(int32_t a, int32_t b) { return (int32_t)((uint32_t)a + (uint32_t)b); }
EK_INLINE int32_t ek_wrap_sub(int32_t a, int32_t b) { return (int32_t)((uint32_t)a - (uint32_t)b); }

/* round(a * b / 2^31) with ties away from zero, saturating the single overflow case. */
EK_INLINE int32_t ek_srdhm(int32_t a, int32_t b)
{
    if (a == INT32_MIN && b == INT32_MIN) {
        return INT32_MAX;
    }
    const int64_t ab = (int64_t)a * (int64_t)b;
    const int64_t nudge = ab >= 0 ? (INT64_C(1) << 30) : (1 - (INT64_C(1) << 30));
    return (int32_t)((ab + nudge) / (INT64_C(1) << 31));
}

/* x / 2^exponent rounded to nearest, ties away from zero. */
EK_INLINE int32_t ek_rdivpot(int32_t x, int exponent)
{
    const int32_t mask = (int32_t)((UINT32_C(1) << exponent) - 1u);
    const int32_t remainder = x & mask;
    const int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
    return (x >> exponent) + (remainder > threshold ? 1 : 0);
}

/* x * multiplier * 2^(shift - 31), the requantisation step of every int8 kernel. */
EK_INLINE int32_t ek_mbqm(int32_t x, int32_t multiplier, int shift)
{
    const int left = shift > 0 ? shift : 0;
    const int right = shift > 0 ? 0 : -shift;
    return ek_rdivpot(ek_srdhm((int32_t)((uint32_t)x << left), multiplier), right);
}

/* The int64-accumulator requantisation of the 16x8 kernels (int16 activations, int8 weights):
 * the multiplier is first rounded to 16 bits, then one rounding shift. This is TFLite's int64
 * MultiplyByQuantizedMultiplier, whose rounding differs from ek_mbqm, so both exist. */
EK_INLINE int32_t ek_mbqm64(int64_t x, int32_t multiplier, int shift)
{
    const int64_t reduced = multiplier < 0x7FFF0000 ? (((int64_t)multiplier + (1 << 15)) >> 16) : 0x7FFF;
    const int total = 15 - shift;
    /* |x| < 2^47 and reduced < 2^15, so the product fits in int64 */
    return (int32_t)((x * reduced + (INT64_C(1) << (total - 1))) >> total);
}

/* ek_mbqm on an int64 input, returning int64: round(x * multiplier * 2^(shift - 31)) with
 * ek_srdhm's rounding, then ek_rdivpot's for a negative shift. It equals ek_mbqm wherever
 * ek_mbqm's shifted input fits int32, and stays exact where it would overflow (the overflow
 * pass widens such layers to this). Needs |x| < 2^32, 0 <= multiplier and shift <= 30. */
EK_INLINE int64_t ek_mbqm_wide(int64_t x, int32_t multiplier, int shift)
{
    const int left = shift > 0 ? shift : 0;
    const int right = shift > 0 ? 0 : -shift;
    const int64_t ab = x * (int64_t)multiplier;
    /* (x << left) * m / 2^31 is x * m / 2^(31 - left): no shifted value that could overflow */
    const int64_t half = INT64_C(1) << (30 - left);
    const int64_t num = ab >= 0 ? ab + half : ab + 1 - half;
    const int64_t high = num / (INT64_C(1) << (31 - left));
    const int64_t mask = (INT64_C(1) << right) - 1;
    const int64_t threshold = (mask >> 1) + (high < 0 ? 1 : 0);
    /* >> of a negative int64 is arithmetic in GCC and clang, as ek_rdivpot relies on for int32 */
    return (high >> right) + ((high & mask) > threshold ? 1 : 0);
}

/* Element i of packed int4 weights (two per byte, element 2k in the low nibble of byte k, as
 * TFLite packs INT4), sign-extended. */
EK_INLINE int32_t ek_int4_lo(int32_t b) { return (int32_t)(int8_t)(uint8_t)((uint32_t)b << 4) >> 4; }
EK_INLINE int32_t ek_int4_hi(int32_t b) { return b >> 4; }
EK_INLINE int32_t ek_int4_at(const int8_t *packed, int32_t i)
{
    const int32_t b = packed[i >> 1];
    return (i & 1) ? ek_int4_hi(b) : ek_int4_lo(b);
}

/* x * 2^exponent for exponent > 0, saturating to the int32 range. */
EK_INLINE int32_t ek_sat_shl(int32_t x, int exponent)
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

/* round(v) with halves away from zero, saturated to int32 (the reference's float -> int step). */
EK_INLINE int32_t ek_round_f32(float v)
{
    float t;
    float frac;
    if (!(v > -2147483520.0f)) { /* also catches NaN */
        return INT32_MIN;
    }
    if (v >= 2147483520.0f) {
        return INT32_MAX;
    }
    t = (float)(int32_t)v;
    frac = v - t; /* exact: the fractional part of a float is representable */
    if (frac >= 0.5f) {
        t += 1.0f;
    } else if (frac <= -0.5f) {
        t -= 1.0f;
    }
    return (int32_t)t;
}

/*
 * Q-format fixed-point transcendental functions. A value with I integer bits is stored as
 * raw / 2^(31 - I). Multiplying Qa by Qb gives Q(a+b) through ek_srdhm.
 */

/* exp(a) for a in [-1/4, 0), a in Q0; result in Q0. Taylor series around -1/8. */
EK_INLINE int32_t ek_exp_quarter_q0(int32_t a)
{
    const int32_t exp_minus_one_eighth = 1895147668; /* exp(-1/8) in Q0 */
    const int32_t one_third = 715827883;             /* 1/3 in Q0 */
    const int32_t x = ek_wrap_add(a, 1 << 28);       /* a + 1/8 */
    const int32_t x2 = ek_srdhm(x, x);
    const int32_t x3 = ek_srdhm(x2, x);
    const int32_t x4 = ek_srdhm(x2, x2);
    const int32_t x4_over_4 = ek_rdivpot(x4, 2);
    const int32_t poly = ek_rdivpot(
        ek_wrap_add(ek_srdhm(ek_wrap_add(x4_over_4, x3), one_third), x2), 1);
    return ek_wrap_add(exp_minus_one_eighth, ek_srdhm(exp_minus_one_eighth, ek_wrap_add(x, poly)));
}

/* exp(a) for a <= 0, a in Q(int_bits) with int_bits <= 5; result in Q0. */
EK_INLINE int32_t ek_exp_negative_q(int32_t a, int int_bits)
{
    static const int32_t barrel[7] = {1672461947, 1302514674, 790015084, 290630308,
                                      39332535,   720401,     242};
    const int frac_bits = 31 - int_bits;
    const int32_t one_quarter = (int32_t)(UINT32_C(1) << (frac_bits - 2));
    const int32_t mask = one_quarter - 1;
    const int32_t a_mod_quarter_minus_quarter = ek_wrap_sub(a & mask, one_quarter);
    int32_t result = ek_exp_quarter_q0(ek_sat_shl(a_mod_quarter_minus_quarter, int_bits));
    const int32_t remainder = ek_wrap_sub(a_mod_quarter_minus_quarter, a);
    int k;
    for (k = 0; k < 7; ++k) {
        const int exponent = k - 2; /* multipliers for exp(-1/4), exp(-1/2), exp(-1), ... */
        if (int_bits > exponent) {
            const int bit = frac_bits + exponent;
            if (remainder & (int32_t)(UINT32_C(1) << bit)) {
                result = ek_srdhm(result, barrel[k]);
            }
        }
    }
    return a == 0 ? INT32_MAX : result;
}

/*
 * 1 / (2 * half_denominator) in Q2 for a half denominator in [1/2, 1) (Q0), by three
 * Newton-Raphson steps from the 48/17 - 32/17 * d linear estimate.
 */
EK_INLINE int32_t ek_newton_reciprocal_q2(int32_t half_denominator)
{
    const int32_t c48_over_17 = 1515870810;      /* Q2 */
    const int32_t c_neg32_over_17 = -1010580540; /* Q2 */
    int32_t x = ek_wrap_add(c48_over_17, ek_srdhm(half_denominator, c_neg32_over_17));
    int i;
    for (i = 0; i < 3; ++i) {
        const int32_t half_denominator_times_x = ek_srdhm(half_denominator, x);
        const int32_t one_minus = ek_wrap_sub(1 << 29, half_denominator_times_x);
        x = ek_wrap_add(x, ek_sat_shl(ek_srdhm(x, one_minus), 2));
    }
    return x;
}

/* (a + 1) / 2 in Q0 with a in Q0, rounding half away from zero (one is INT32_MAX in Q0). */
EK_INLINE int32_t ek_half_one_plus_q0(int32_t a)
{
    const int64_t sum = (int64_t)a + INT32_MAX;
    return (int32_t)((sum + (sum >= 0 ? 1 : -1)) / 2);
}

/* 1 / (1 + x) for x in [0, 1), x in Q0; result in Q0. */
EK_INLINE int32_t ek_one_over_one_plus_x_q0(int32_t a)
{
    return ek_sat_shl(ek_newton_reciprocal_q2(ek_half_one_plus_q0(a)), 1);
}

/* (1 - x) / (1 + x) for x in [0, 1), x in Q0; result in Q0. */
EK_INLINE int32_t ek_one_minus_x_over_one_plus_x_q0(int32_t a)
{
    const int32_t x = ek_newton_reciprocal_q2(ek_half_one_plus_q0(a));
    return ek_sat_shl(ek_wrap_sub(x, 1 << 29), 2);
}

/*
 * logistic(a) for a in Q(int_bits), int_bits <= 5; result in Q0. Computed on -|a| through
 * exp, so both signs share one rounding path and logistic(-a) is exactly one minus logistic(a).
 */
EK_INLINE int32_t ek_logistic_q(int32_t a, int int_bits)
{
    int32_t positive;
    if (a == 0) {
        return 1 << 30; /* one half */
    }
    positive = ek_one_over_one_plus_x_q0(ek_exp_negative_q(a > 0 ? ek_wrap_sub(0, a) : a, int_bits));
    return a > 0 ? positive : ek_wrap_sub(INT32_MAX, positive);
}

/* tanh(a) for a in Q(int_bits), int_bits <= 4; result in Q0, via exp(-2|a|). */
EK_INLINE int32_t ek_tanh_q(int32_t a, int int_bits)
{
    int32_t magnitude;
    if (a == 0) {
        return 0;
    }
    /* the same raw value read with one more integer bit is 2 * (-|a|) */
    magnitude = ek_one_minus_x_over_one_plus_x_q0(
        ek_exp_negative_q(a < 0 ? a : ek_wrap_sub(0, a), int_bits + 1));
    return a < 0 ? ek_wrap_sub(0, magnitude) : magnitude;
}

/* Q0 reciprocal of a Q(int_bits) sum; *bits_over_unit says how far it is scaled. */
EK_INLINE int32_t ek_reciprocal_q0(int32_t x, int int_bits, int *bits_over_unit)
{
    int headroom_plus_one = 0;
    uint32_t ux = (uint32_t)x;
    while (headroom_plus_one < 32 && !(ux & (UINT32_C(1) << (31 - headroom_plus_one)))) {
        ++headroom_plus_one;
    }
    *bits_over_unit = int_bits - headroom_plus_one;
    const int32_t shifted_minus_one = (int32_t)(
        /* x == 0 would shift by 32; softmax never passes it (its sum is at least 2^19) */
        (headroom_plus_one < 32 ? ux << headroom_plus_one : 0u) - (UINT32_C(1) << 31));
    return ek_one_over_one_plus_x_q0(shifted_minus_one);
}

#endif /* EDGEKIT_FIXEDPOINT_H */
