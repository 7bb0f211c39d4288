/*
 * edgekit floating-point helpers for the FP16 (and FP32 comparison) kernels.
 *
 * docs/numerics-fp16.md is the contract these functions implement: every value is stored as
 * IEEE binary16 (uint16_t bits) or binary32, every arithmetic step rounds to nearest-even exactly
 * once, and dot products use fused multiply-adds. Two implementations of the binary16 helpers
 * exist and must agree bit for bit:
 *
 *   native    compilers with binary16 arithmetic (RISC-V Zfh, Arm FP16): _Float16 values, one
 *             hardware instruction per step (fmadd.h, vfma.f16, fmadd h).
 *   portable  any C99 compiler: a binary16 value is held exactly in a float, and every result is
 *             rounded to binary16 in integer code. A fused a*b+c is computed in double, which is
 *             exact for binary16 operands whenever the result is finite (proof in the contract).
 *
 * Nothing here depends on the compiler contracting or not contracting a*b+c: products that must
 * be fused use an explicit fma, and the others are exact or are never followed by an addition.
 */
#ifndef EDGEKIT_FP16_H
#define EDGEKIT_FP16_H

#include <float.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "edgekit_fixedpoint.h"

/* Excess precision (x87) would round twice and break the contract. */
#if defined(FLT_EVAL_METHOD) && (FLT_EVAL_METHOD == 1 || FLT_EVAL_METHOD == 2)
#error "edgekit float kernels need FLT_EVAL_METHOD 0: compile with SSE math (-mfpmath=sse)"
#endif

/* Freestanding builds (-fno-builtin) would call memcpy for every 2-byte bit cast. */
#if defined(__GNUC__)
#define EK_BITCOPY __builtin_memcpy
#else
#define EK_BITCOPY memcpy
#endif

#if defined(__has_builtin)
#if __has_builtin(__builtin_elementwise_fma)
#define EK_HAVE_ELEMENTWISE_FMA 1
#endif
#endif

#if !defined(EK_F16_PORTABLE) && (defined(__riscv_zfh) || defined(__ARM_FEATURE_FP16_SCALAR_ARITHMETIC))
#define EK_F16_NATIVE 1
#endif

/* ---- binary32 ------------------------------------------------------------------------------ */

typedef float ek_s_t;

EK_INLINE float ek_s_fma(float a, float b, float c)
{
#if defined(EK_HAVE_ELEMENTWISE_FMA)
    return __builtin_elementwise_fma(a, b, c);
#elif defined(__GNUC__)
    return __builtin_fmaf(a, b, c);
#else
    return fmaf(a, b, c);
#endif
}

EK_INLINE float ek_s_load(const float *p) { return *p; }
EK_INLINE void ek_s_store(float *p, float v) { *p = v; }
EK_INLINE float ek_s_add(float a, float b) { return a + b; }
EK_INLINE float ek_s_to_f32(float v) { return v; }
EK_INLINE float ek_s_from_f32(float v) { return v; }

EK_INLINE int ek_f32_signbit(float v)
{
    uint32_t bits;
    EK_BITCOPY(&bits, &v, sizeof bits);
    return (int)(bits >> 31);
}

/* IEEE 754-2019 maximumNumber: a NaN operand loses, and -0 < +0 (what vfmax / VMAXNM do). */
EK_INLINE float ek_s_max(float a, float b)
{
    if (a != a) {
        return b;
    }
    if (b > a || (b == a && ek_f32_signbit(a) && !ek_f32_signbit(b))) {
        return b;
    }
    return a;
}

/* ---- binary16 bits <-> wider formats -------------------------------------------------------- */

/* Exact: every binary16 value is a binary32 value. */
EK_INLINE float ek_f16_bits_to_f32(uint16_t h)
{
    const uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    const uint32_t exponent = (uint32_t)(h >> 10) & 0x1fu;
    const uint32_t mantissa = (uint32_t)h & 0x3ffu;
    uint32_t bits;
    float f;
    if (exponent == 0x1fu) {
        bits = sign | 0x7f800000u | (mantissa << 13);
    } else if (exponent != 0u) {
        bits = sign | ((exponent + 112u) << 23) | (mantissa << 13);
    } else {
        /* subnormal: mantissa * 2^-24, a product of an integer and a power of two, exact */
        f = (float)mantissa * 5.9604644775390625e-8f;
        return sign ? -f : f;
    }
    EK_BITCOPY(&f, &bits, sizeof f);
    return f;
}

/* Round a double to binary16, to nearest with ties to even, overflowing to infinity. */
EK_INLINE uint16_t ek_f64_to_f16_bits(double d)
{
    uint64_t bits;
    EK_BITCOPY(&bits, &d, sizeof bits);
    const uint16_t sign = (uint16_t)((bits >> 48) & 0x8000u);
    const int biased = (int)((bits >> 52) & 0x7ffu);
    const uint64_t fraction = bits & UINT64_C(0xFFFFFFFFFFFFF);
    if (biased == 0x7ff) {
        return (uint16_t)(sign | 0x7c00u | (fraction ? 0x200u : 0u));
    }
    const int e = biased - 1023;
    if (e < -25) {
        /* below half the smallest subnormal (2^-25 itself ties to the even 0): zero */
        return sign;
    }
    if (e > 15) {
        return (uint16_t)(sign | 0x7c00u);
    }
    /* value = significand * 2^(e - 52); keep the bits down to 2^(max(e, -14) - 10) */
    const uint64_t significand = fraction | (UINT64_C(1) << 52);
    const int shift = 42 + (e < -14 ? -14 - e : 0);
    uint64_t r = significand >> shift;
    const uint64_t rest = significand & ((UINT64_C(1) << shift) - 1u);
    const uint64_t half = UINT64_C(1) << (shift - 1);
    if (rest > half || (rest == half && (r & 1u))) {
        ++r;
    }
    /* a normal r in [2^10, 2^11] carries into the exponent on its own; a subnormal r is the code */
    uint32_t code = e < -14 ? (uint32_t)r : ((uint32_t)(e + 14) << 10) + (uint32_t)r;
    if (code >= 0x7c00u) {
        code = 0x7c00u;
    }
    return (uint16_t)(sign | code);
}

EK_INLINE uint16_t ek_f32_to_f16_bits(float f) { return ek_f64_to_f16_bits((double)f); }

/* ---- binary16 arithmetic -------------------------------------------------------------------- */

#if defined(EK_F16_NATIVE)

__extension__ typedef _Float16 ek_h_t;

EK_INLINE ek_h_t ek_h_load(const uint16_t *p)
{
    ek_h_t v;
    EK_BITCOPY(&v, p, sizeof v);
    return v;
}

EK_INLINE void ek_h_store(uint16_t *p, ek_h_t v) { EK_BITCOPY(p, &v, sizeof v); }

EK_INLINE ek_h_t ek_h_fma(ek_h_t a, ek_h_t b, ek_h_t c)
{
#if defined(EK_HAVE_ELEMENTWISE_FMA)
    return __builtin_elementwise_fma(a, b, c);
#elif defined(__GNUC__) && !defined(__clang__)
    return __builtin_fmaf16(a, b, c);
#else
    return (ek_h_t)((double)a * (double)b + (double)c);
#endif
}

EK_INLINE ek_h_t ek_h_add(ek_h_t a, ek_h_t b) { return a + b; }
EK_INLINE float ek_h_to_f32(ek_h_t v) { return (float)v; }
EK_INLINE ek_h_t ek_h_from_f32(float v) { return (ek_h_t)v; }

EK_INLINE int ek_h_signbit(ek_h_t v)
{
    uint16_t bits;
    EK_BITCOPY(&bits, &v, sizeof bits);
    return bits >> 15;
}

#else /* portable: a binary16 value held exactly in a float */

typedef float ek_h_t;

EK_INLINE ek_h_t ek_h_round(double d) { return ek_f16_bits_to_f32(ek_f64_to_f16_bits(d)); }
EK_INLINE ek_h_t ek_h_load(const uint16_t *p) { return ek_f16_bits_to_f32(*p); }
EK_INLINE void ek_h_store(uint16_t *p, ek_h_t v) { *p = ek_f32_to_f16_bits(v); }

/* a*b is exact in double (22 significant bits); the sum is exact too whenever the binary16
 * result is finite, so rounding it once more to binary16 is the single rounding of a fused
 * multiply-add (see docs/numerics-fp16.md). Contracting the expression changes nothing. */
EK_INLINE ek_h_t ek_h_fma(ek_h_t a, ek_h_t b, ek_h_t c)
{
    return ek_h_round((double)a * (double)b + (double)c);
}

/* the sum of two binary16 values is exact in double */
EK_INLINE ek_h_t ek_h_add(ek_h_t a, ek_h_t b) { return ek_h_round((double)a + (double)b); }
EK_INLINE float ek_h_to_f32(ek_h_t v) { return v; }
EK_INLINE ek_h_t ek_h_from_f32(float v) { return ek_h_round((double)v); }
EK_INLINE int ek_h_signbit(ek_h_t v) { return ek_f32_signbit(v); }

#endif

EK_INLINE ek_h_t ek_h_max(ek_h_t a, ek_h_t b)
{
    if (a != a) {
        return b;
    }
    if (b > a || (b == a && ek_h_signbit(a) && !ek_h_signbit(b))) {
        return b;
    }
    return a;
}

/* ---- softmax exponential -------------------------------------------------------------------- */

/*
 * e^z for z <= 0 in binary32, as a fixed sequence of correctly rounded operations so that every
 * target computes the same bits (a libm expf differs between C libraries). z < -80 gives 0.
 * n = trunc(fma(z, log2 e, -0.5)) (a rounding of z log2 e to an integer), r = z - n ln2 in two
 * fused steps, e^r by a degree-6 Horner polynomial of fused steps, times 2^n built in the
 * exponent field (exact: the result stays normal). Constants are exact binary32 values.
 */
EK_INLINE float ek_expf_nonpositive(float z)
{
    if (!(z >= -80.0f)) {
        return 0.0f;
    }
    const float t = ek_s_fma(z, 0x1.715476p+0f, -0.5f);
    const int32_t n = (int32_t)t;
    const float nf = (float)n;
    float r = ek_s_fma(-nf, 0x1.62e400p-1f, z);
    r = ek_s_fma(-nf, 0x1.7f7d1cp-20f, r);
    float p = 0x1.6c16c2p-10f;
    p = ek_s_fma(p, r, 0x1.111112p-7f);
    p = ek_s_fma(p, r, 0x1.555556p-5f);
    p = ek_s_fma(p, r, 0x1.555556p-3f);
    p = ek_s_fma(p, r, 0x1.000000p-1f);
    p = ek_s_fma(p, r, 1.0f);
    p = ek_s_fma(p, r, 1.0f);
    const uint32_t scale_bits = (uint32_t)(n + 127) << 23;
    float scale;
    EK_BITCOPY(&scale, &scale_bits, sizeof scale);
    return p * scale;
}

/* ---- RISC-V vector helpers ------------------------------------------------------------------- */

#if defined(__riscv_vector)
#include <riscv_vector.h>

/* A reduction loop with a small constant trip count would be unrolled with every input
 * column live at once, and LMUL 8 groups then spill to the stack. */
#if defined(__clang__)
#define EK_NO_UNROLL _Pragma("clang loop unroll(disable)")
#else
#define EK_NO_UNROLL
#endif

/* Byte copies and zero fills for im2col rows: the element type does not matter, +0.0 is all
 * zero bits in both formats, and LMUL 8 moves 128 bytes per instruction pair at VLEN 128. */
EK_INLINE void ek_rvv_copy_bytes(void *dst, const void *src, size_t n)
{
    uint8_t *d = (uint8_t *)dst;
    const uint8_t *s = (const uint8_t *)src;
    size_t vl;
    for (; n > 0; n -= vl, d += vl, s += vl) {
        vl = __riscv_vsetvl_e8m8(n);
        __riscv_vse8_v_u8m8(d, __riscv_vle8_v_u8m8(s, vl), vl);
    }
}

EK_INLINE void ek_rvv_zero_bytes(void *dst, size_t n)
{
    uint8_t *d = (uint8_t *)dst;
    size_t vl;
    for (; n > 0; n -= vl, d += vl) {
        vl = __riscv_vsetvl_e8m8(n);
        __riscv_vse8_v_u8m8(d, __riscv_vmv_v_x_u8m8(0, vl), vl);
    }
}
#endif

/* ---- portable vector-extension path (GCC / clang generic vectors) --------------------------- */

#if defined(__GNUC__) && defined(EK_F16_NATIVE)
/* 8 binary16 or 4 binary32 lanes in 16 bytes. On a scalar core the compiler unrolls them into
 * a register-blocked scalar kernel; on a vector core it may map them onto vector registers.
 * Either way every lane computes the contract's operations: explicit fused multiply-adds and
 * the scalar clamp, nothing the compiler may reassociate. */
typedef ek_h_t ek_hv8_t __attribute__((vector_size(16)));
typedef float ek_sv4_t __attribute__((vector_size(16)));

EK_INLINE ek_hv8_t ek_hv8_load(const ek_h_t *p)
{
    ek_hv8_t v;
    EK_BITCOPY(&v, p, sizeof v);
    return v;
}

EK_INLINE void ek_hv8_store(ek_h_t *p, ek_hv8_t v) { EK_BITCOPY(p, &v, sizeof v); }
EK_INLINE void ek_hv8_store_n(ek_h_t *p, ek_hv8_t v, int n) { EK_BITCOPY(p, &v, (size_t)n * sizeof(ek_h_t)); }

EK_INLINE ek_sv4_t ek_sv4_load(const float *p)
{
    ek_sv4_t v;
    EK_BITCOPY(&v, p, sizeof v);
    return v;
}

EK_INLINE void ek_sv4_store(float *p, ek_sv4_t v) { EK_BITCOPY(p, &v, sizeof v); }
EK_INLINE void ek_sv4_store_n(float *p, ek_sv4_t v, int n) { EK_BITCOPY(p, &v, (size_t)n * sizeof(float)); }

/* acc + w * x per lane, fused */
EK_INLINE ek_hv8_t ek_hv8_fma_n(ek_hv8_t acc, ek_hv8_t w, ek_h_t x)
{
#if defined(EK_HAVE_ELEMENTWISE_FMA)
    const ek_hv8_t xs = {x, x, x, x, x, x, x, x};
    return __builtin_elementwise_fma(xs, w, acc);
#else
    int i;
    for (i = 0; i < 8; ++i) {
        acc[i] = ek_h_fma(x, w[i], acc[i]);
    }
    return acc;
#endif
}

EK_INLINE ek_sv4_t ek_sv4_fma_n(ek_sv4_t acc, ek_sv4_t w, float x)
{
#if defined(EK_HAVE_ELEMENTWISE_FMA)
    const ek_sv4_t xs = {x, x, x, x};
    return __builtin_elementwise_fma(xs, w, acc);
#else
    int i;
    for (i = 0; i < 4; ++i) {
        acc[i] = ek_s_fma(x, w[i], acc[i]);
    }
    return acc;
#endif
}

/* the scalar clamp of the contract, lane by lane: x > lo ? x : lo, x < hi ? x : hi */
EK_INLINE ek_hv8_t ek_hv8_max_n(ek_hv8_t v, ek_h_t lo)
{
    int i;
    for (i = 0; i < 8; ++i) {
        v[i] = v[i] > lo ? v[i] : lo;
    }
    return v;
}

EK_INLINE ek_hv8_t ek_hv8_min_n(ek_hv8_t v, ek_h_t hi)
{
    int i;
    for (i = 0; i < 8; ++i) {
        v[i] = v[i] < hi ? v[i] : hi;
    }
    return v;
}

EK_INLINE ek_sv4_t ek_sv4_max_n(ek_sv4_t v, float lo)
{
    int i;
    for (i = 0; i < 4; ++i) {
        v[i] = v[i] > lo ? v[i] : lo;
    }
    return v;
}

EK_INLINE ek_sv4_t ek_sv4_min_n(ek_sv4_t v, float hi)
{
    int i;
    for (i = 0; i < 4; ++i) {
        v[i] = v[i] < hi ? v[i] : hi;
    }
    return v;
}
#endif

#endif /* EDGEKIT_FP16_H */
