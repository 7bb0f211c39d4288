/*
 * edgekit Arm DSP (SIMD32) helpers for the pooling kernels in codegen/templates/dsp/pool2d.c.j2.
 *
 * Four int8 lanes per word: the lane-wise maximum and minimum are SSUB8 (whose GE flags record,
 * per byte, whether a >= b from the exact 9-bit difference) followed by SEL, which picks each
 * byte from one operand or the other by those flags. The two instructions are one asm statement
 * so nothing can be scheduled between them and clobber the GE flags. Without the DSP extension
 * the same functions are plain C, so the generated kernels also run (and are tested) on the host.
 */
#ifndef EDGEKIT_DSP_POOL_H
#define EDGEKIT_DSP_POOL_H

#include "edgekit_dsp.h"

#if !(EK_DSP_NATIVE && defined(__GNUC__))
/* Byte i of a word as a signed value. */
EK_INLINE int32_t ek_byte_s8(uint32_t x, int i) { return (int32_t)(((x >> (8 * i)) & 0xFFu) ^ 0x80u) - 0x80; }
#endif

/* Per int8 lane: max(a, b). */
EK_INLINE uint32_t ek_max8x4(uint32_t a, uint32_t b)
{
#if EK_DSP_NATIVE && defined(__GNUC__)
    uint32_t r;
    __asm__("ssub8 %0, %1, %2\n\tsel %0, %1, %2" : "=&r"(r) : "r"(a), "r"(b));
    return r;
#else
    uint32_t r = 0;
    int i;
    for (i = 0; i < 4; ++i) {
        r |= (ek_byte_s8(a, i) >= ek_byte_s8(b, i) ? (a >> (8 * i)) & 0xFFu : (b >> (8 * i)) & 0xFFu) << (8 * i);
    }
    return r;
#endif
}

/* Per int8 lane: min(a, b). */
EK_INLINE uint32_t ek_min8x4(uint32_t a, uint32_t b)
{
#if EK_DSP_NATIVE && defined(__GNUC__)
    uint32_t r;
    __asm__("ssub8 %0, %1, %2\n\tsel %0, %2, %1" : "=&r"(r) : "r"(a), "r"(b));
    return r;
#else
    uint32_t r = 0;
    int i;
    for (i = 0; i < 4; ++i) {
        r |= (ek_byte_s8(a, i) >= ek_byte_s8(b, i) ? (b >> (8 * i)) & 0xFFu : (a >> (8 * i)) & 0xFFu) << (8 * i);
    }
    return r;
#endif
}

/* Lane 0 and lane 1 of an int16x2 word, one SXTH and one ASR on a DSP core. */
EK_INLINE int32_t ek_lo16(int32_t x)
{
#if EK_DSP_NATIVE && defined(__GNUC__)
    int32_t r;
    __asm__("sxth %0, %1" : "=r"(r) : "r"(x));
    return r;
#else
    return ek_lane0(x);
#endif
}

EK_INLINE int32_t ek_hi16(int32_t x)
{
#if EK_DSP_NATIVE && defined(__GNUC__)
    int32_t r;
    __asm__("asr %0, %1, #16" : "=r"(r) : "r"(x));
    return r;
#else
    return ek_lane1(x);
#endif
}

/*
 * s / count rounded half away from zero, the reference average pool's division (count >= 1):
 * the half count is added with the sign of s, then C's division truncates toward zero. For
 * s == 0 either sign gives 0, since count / 2 < count. GCC makes the choice branch-free.
 */
EK_INLINE int32_t ek_div_round(int32_t s, int32_t count)
{
    const int32_t half = count / 2;
    return (s < 0 ? s - half : s + half) / count;
}

/*
 * ek_div_round(s, 2^k) for k >= 1: round half away from zero is floor((s + 2^(k-1) - [s < 0]) / 2^k)
 * for an even divisor (for s < 0, ceil((s - h) / c) == floor((s - h + c - 1) / c) with c = 2h),
 * and the floor division is an arithmetic shift, as ek_dsp_requant relies on.
 */
EK_INLINE int32_t ek_round_shift(int32_t s, int k)
{
    return (s + (1 << (k - 1)) - (s < 0)) >> k;
}

#endif /* EDGEKIT_DSP_POOL_H */
