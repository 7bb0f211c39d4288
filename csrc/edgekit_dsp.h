/*
 * edgekit DSP kernel support: the Armv7E-M SIMD32 operations the "dsp" kernels are written in.
 *
 * On a core with the DSP extension (__ARM_FEATURE_DSP) each helper is one instruction, through
 * GCC's <arm_acle.h>. Everywhere else the same helpers are plain C with bit-identical results,
 * so the DSP kernels also build and run on the host: tests compare them with the portable
 * kernels there, in seconds, and only a few runs need the emulator.
 *
 * Packed values are int16x2 words: lane 0 in bits 0-15, lane 1 in bits 16-31. Lane arithmetic
 * wraps as the hardware does. Multiply-accumulates add in uint32_t, because TFLite Micro's int32
 * accumulators wrap on the targets it runs on and the sum must not depend on the order.
 */
#ifndef EDGEKIT_DSP_H
#define EDGEKIT_DSP_H

#include <stdint.h>
#include <string.h>

#include "edgekit_fixedpoint.h"

#if defined(__ARM_FEATURE_DSP) && defined(__ARM_FEATURE_SIMD32)
#include <arm_acle.h>
#define EK_DSP_NATIVE 1
#else
#define EK_DSP_NATIVE 0
#endif

/* Lane values of a packed word, sign-extended without implementation-defined conversions. */
EK_INLINE int32_t ek_lane0(int32_t x) { return (int32_t)(((uint32_t)x & 0xFFFFu) ^ 0x8000u) - 0x8000; }
EK_INLINE int32_t ek_lane1(int32_t x) { return (int32_t)((((uint32_t)x >> 16) & 0xFFFFu) ^ 0x8000u) - 0x8000; }

EK_INLINE int32_t ek_pack16(int32_t lane0, int32_t lane1)
{
    return (int32_t)(((uint32_t)lane0 & 0xFFFFu) | ((uint32_t)lane1 << 16));
}

/*
 * (lane 0 of a, lane 0 of b) and (lane 1 of a, lane 1 of b): PKHBT and PKHTB. GCC 12 builds
 * these from two instructions when written in C, so the native versions are one asm each.
 */
EK_INLINE int32_t ek_pack_lo(int32_t a, int32_t b)
{
#if EK_DSP_NATIVE && defined(__GNUC__)
    int32_t r;
    __asm__("pkhbt %0, %1, %2, lsl #16" : "=r"(r) : "r"(a), "r"(b));
    return r;
#else
    return (int32_t)(((uint32_t)a & 0xFFFFu) | ((uint32_t)b << 16));
#endif
}

EK_INLINE int32_t ek_pack_hi(int32_t a, int32_t b)
{
#if EK_DSP_NATIVE && defined(__GNUC__)
    int32_t r;
    __asm__("pkhtb %0, %1, %2, asr #16" : "=r"(r) : "r"(b), "r"(a));
    return r;
#else
    return (int32_t)(((uint32_t)b & 0xFFFF0000u) | ((uint32_t)a >> 16));
#endif
}

/*
 * Rotate right by 8: moves bytes 1 and 3 into the places ek_sxtab16 reads. GCC 12's arm_acle.h
 * has no __ror; this pattern is recognised as a rotate.
 */
EK_INLINE uint32_t ek_ror8(uint32_t x) { return (x >> 8) | (x << 24); }

/* a + (sign-extended byte 0, sign-extended byte 2) of b, per 16-bit lane. */
EK_INLINE int32_t ek_sxtab16(int32_t a, uint32_t b)
{
#if EK_DSP_NATIVE
    return __sxtab16(a, (int32_t)b);
#else
    const int32_t b0 = (int32_t)((b & 0xFFu) ^ 0x80u) - 0x80;
    const int32_t b2 = (int32_t)(((b >> 16) & 0xFFu) ^ 0x80u) - 0x80;
    return ek_pack16(ek_lane0(a) + b0, ek_lane1(a) + b2);
#endif
}

/*
 * ek_sxtab16(a, ek_ror8(b)): bytes 1 and 3 of b. One SXTAB16 with its ROR #8 operand; GCC 12
 * emits a separate ROR for the C form.
 */
EK_INLINE int32_t ek_sxtab16_ror8(int32_t a, uint32_t b)
{
#if EK_DSP_NATIVE && defined(__GNUC__)
    int32_t r;
    __asm__("sxtab16 %0, %1, %2, ror #8" : "=r"(r) : "r"(a), "r"(b));
    return r;
#else
    return ek_sxtab16(a, ek_ror8(b));
#endif
}

/* acc + a.lane0 * b.lane0 + a.lane1 * b.lane1 */
EK_INLINE int32_t ek_smlad(int32_t a, int32_t b, int32_t acc)
{
#if EK_DSP_NATIVE
    return __smlad(a, b, acc);
#else
    const uint32_t p0 = (uint32_t)(ek_lane0(a) * ek_lane0(b));
    const uint32_t p1 = (uint32_t)(ek_lane1(a) * ek_lane1(b));
    return (int32_t)((uint32_t)acc + p0 + p1);
#endif
}

/* acc + a.lane0 * b.lane1 (SMLABT) and acc + a.lane1 * b.lane0 (SMLATB). */
EK_INLINE int32_t ek_smlabt(int32_t a, int32_t b, int32_t acc)
{
#if EK_DSP_NATIVE
    return __smlabt(a, b, acc);
#else
    return (int32_t)((uint32_t)acc + (uint32_t)(ek_lane0(a) * ek_lane1(b)));
#endif
}

EK_INLINE int32_t ek_smlatb(int32_t a, int32_t b, int32_t acc)
{
#if EK_DSP_NATIVE
    return __smlatb(a, b, acc);
#else
    return (int32_t)((uint32_t)acc + (uint32_t)(ek_lane1(a) * ek_lane0(b)));
#endif
}

/* x saturated to int8; the usual clamp of a fused activation that covers the whole range. */
EK_INLINE int32_t ek_ssat8(int32_t x)
{
#if EK_DSP_NATIVE
    return __ssat(x, 8);
#else
    return ek_clamp_i32(x, -128, 127);
#endif
}

/*
 * Two consecutive words of a 4-byte aligned buffer in one LDRD. GCC splits 64-bit loads back
 * into two LDRs when it schedules for a Cortex-M4; that costs an instruction per pair in the
 * matrix loops, whose instruction count is what we optimise. `off` must be a constant multiple
 * of 4 below 1024 bytes. The memory operand tells the compiler which bytes are read, so loads
 * still order correctly against the stores that filled the buffer.
 */
#if EK_DSP_NATIVE && defined(__GNUC__)
#define EK_LD2(p, off, lo, hi)                                                                  \
    __asm__("ldrd %0, %1, [%2, %3]"                                                            \
            : "=r"(lo), "=r"(hi)                                                               \
            : "r"(p), "n"(off), "m"(*(const int32_t(*)[2])(const void *)((const char *)(p) + (off))))
#else
#define EK_LD2(p, off, lo, hi)                                                                  \
    do {                                                                                       \
        (lo) = ((const int32_t *)(const void *)((const char *)(p) + (off)))[0];                \
        (hi) = ((const int32_t *)(const void *)((const char *)(p) + (off)))[1];                \
    } while (0)
#endif

/* One word of a 4-byte aligned buffer, addressed like EK_LD2 (same base register as its LDRDs). */
#if EK_DSP_NATIVE && defined(__GNUC__)
#define EK_LD1(p, off, v)                                                                       \
    __asm__("ldr %0, [%1, %2]"                                                                 \
            : "=r"(v)                                                                          \
            : "r"(p), "n"(off), "m"(*(const int32_t *)(const void *)((const char *)(p) + (off))))
#else
#define EK_LD1(p, off, v) ((v) = *(const int32_t *)(const void *)((const char *)(p) + (off)))
#endif

/*
 * Makes pointer p depend on the accumulators a and b, so that loads through p wait for them.
 * GCC's pre-allocation scheduler otherwise starts loading the requantisation constants before
 * the multiply-accumulate loop, runs out of registers and spills them, which costs more
 * instructions than the latency it hides. No instruction is emitted.
 */
#if defined(__GNUC__)
#define EK_AFTER(p, a, b) __asm__("" : "+r"(p) : "r"(a), "r"(b))
#else
#define EK_AFTER(p, a, b) ((void)0)
#endif

/* A 32-bit word at any byte address (one LDR on cores with unaligned access). */
EK_INLINE int32_t ek_load32(const void *p)
{
    int32_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

EK_INLINE void ek_store32(void *p, int32_t v) { memcpy(p, &v, sizeof v); }

/* (a * b + 2^31) >> 32: the high word of a product, rounded. GCC has no intrinsic for it. */
EK_INLINE int32_t ek_smmulr(int32_t a, int32_t b)
{
#if EK_DSP_NATIVE && defined(__GNUC__)
    int32_t r;
    __asm__("smmulr %0, %1, %2" : "=r"(r) : "r"(a), "r"(b));
    return r;
#else
    return (int32_t)(((int64_t)a * b + INT64_C(0x80000000)) >> 32);
#endif
}

/* c + ((a * b + 2^31) >> 32): SMMLAR, the rounded high word of a product plus c. */
EK_INLINE int32_t ek_smmlar(int32_t a, int32_t b, int32_t c)
{
#if EK_DSP_NATIVE && defined(__GNUC__)
    int32_t r;
    __asm__("smmlar %0, %1, %2, %3" : "=r"(r) : "r"(a), "r"(b), "r"(c));
    return r;
#else
    return (int32_t)((uint32_t)c + (uint32_t)(int32_t)(((int64_t)a * b + INT64_C(0x80000000)) >> 32));
#endif
}

/*
 * ek_mbqm(acc, m, -e) + offset for m >= 0 and e >= 1, given acc2 = 2 * acc. The DSP kernels get
 * acc2 for free by accumulating with doubled weights and bias, which the build allows only when
 * |2 * acc| < 2^31 for every input. Then
 *
 *   - the doubling high multiply x = round((acc * m) / 2^31), ties up, is SMMULR of acc2;
 *   - the rounding right shift with ties away from zero is floor((x + 2^(e-1) - [x < 0]) / 2^e);
 *   - adding the output offset inside the floor is exact, so c = 2^(e-1) + offset * 2^e
 *     is one constant per channel (the build checks that the sum fits in 32 bits), and SMMLAR
 *     adds it to the product for free;
 *   - [x < 0] may be replaced by [acc < 0], which is acc2 >> 31 (one ADD with a shifted
 *     operand): with m >= 0 they differ only when acc < 0 and x = 0, and then
 *     (c - 1) >> e == c >> e == offset because 0 <= 2^(e-1) - 1 < 2^e.
 */
EK_INLINE int32_t ek_dsp_requant(int32_t acc2, int32_t m, int32_t c, int e)
{
    const int32_t x = ek_smmlar(acc2, m, c);
    return (x + (acc2 >> 31)) >> e;
}

#endif /* EDGEKIT_DSP_H */
