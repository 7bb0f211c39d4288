/*
 * edgekit helpers for the RISC-V kernel families: "rv32" (scalar RV32IM) and "rvv" (RVV 1.0).
 *
 * Both compute exactly what edgekit_fixedpoint.h defines (and so what TFLite Micro computes);
 * they only reach the same integers in fewer instructions. The scalar part needs nothing beyond
 * RV32IM; the vector part is compiled only when the compiler targets the V or Zve32x extension.
 * Only layers of those families include this header.
 */
#ifndef EDGEKIT_RVV_H
#define EDGEKIT_RVV_H

#include <stddef.h>
#include <stdint.h>

#include "edgekit_fixedpoint.h"

/*
 * Small byte copies and fills of the kernels. Freestanding builds (clang for the ziglang targets)
 * treat memcpy and memset as plain library calls, even for four bytes; the builtins stay inline
 * for small constant sizes.
 */
#if defined(__GNUC__) || defined(__clang__)
#define EK_RV_COPY(dst, src, n) __builtin_memcpy((dst), (src), (n))
#define EK_RV_FILL(dst, value, n) __builtin_memset((dst), (value), (n))
#else
#include <string.h>
#define EK_RV_COPY(dst, src, n) memcpy((dst), (src), (n))
#define EK_RV_FILL(dst, value, n) memset((dst), (value), (n))
#endif

/*
 * ek_mbqm(x, multiplier, shift) with shift split into left = max(shift, 0) and
 * right = max(-shift, 0), for multipliers other than INT32_MIN (QuantizeMultiplier never makes
 * one, so ek_srdhm's single saturating case cannot occur).
 *
 * ek_srdhm adds 2^30 to non-negative products and 1 - 2^30 to negative ones and then divides
 * truncating toward zero; for a negative product that truncation is a ceiling, and
 * ceil((p + 1 - 2^30) / 2^31) == floor((p + 2^30) / 2^31). Both signs are therefore
 * floor((x * 2m + 2^31) / 2^32): with 2m as an unsigned word that is the high word of a
 * signed x unsigned product (MULHSU) plus bit 31 of its low word, four instructions and no
 * branch. ek_rdivpot is kept as written: its rounding (half away from zero) differs from a plain
 * add-and-shift only by the x < 0 term, and adding first could overflow.
 */
EK_INLINE int32_t ek_rv_mbqm(int32_t x, int32_t multiplier, int left, int right)
{
    const int32_t shifted = (int32_t)((uint32_t)x << left);
    const uint32_t doubled = (uint32_t)multiplier << 1;
    const int64_t product = (int64_t)shifted * (int64_t)doubled;
    const int32_t high = (int32_t)(product >> 32) + (int32_t)((uint32_t)product >> 31);
    const uint32_t mask = ~(UINT32_C(0xFFFFFFFF) << right);
    const uint32_t remainder = (uint32_t)high & mask;
    const uint32_t threshold = (mask >> 1) + ((uint32_t)high >> 31);
    return (high >> right) + (remainder > threshold ? 1 : 0);
}

/* ek_rv_mbqm plus output offset and activation clamp: one int8 output value. */
EK_INLINE int8_t ek_rv_out(int32_t acc, int32_t multiplier, int left, int right, int32_t offset,
                           int32_t lo, int32_t hi)
{
    return (int8_t)ek_clamp_i32(ek_rv_mbqm(acc, multiplier, left, right) + offset, lo, hi);
}

#if defined(__riscv_vector)
#include <riscv_vector.h>

/*
 * Per-layer requantisation parameters of the vector kernels. Arrays are indexed by output
 * channel; `left` is NULL when no channel shifts left, `adjust` is NULL when every channel
 * shifts right by at least one bit (see ek_rvv_requant_*).
 */
typedef struct {
    const int32_t *multiplier;
    const int32_t *left;
    const int32_t *right;
    const int32_t *adjust;
    int32_t offset;
    int32_t act_min;
    int32_t act_max;
} ek_rvv_rq_t;

/*
 * How the vector code reaches ek_mbqm's integers:
 *  - vsmul with round-to-nearest-up is floor((a * m + 2^30) / 2^31) saturated, i.e. ek_srdhm
 *    (see ek_rv_mbqm for why both signs round the same way);
 *  - vssra with round-to-nearest-up is floor((x + 2^(r-1)) / 2^r); ek_rdivpot rounds halves of
 *    negative values away from zero instead, which is the same shift applied to x - 1 when x < 0
 *    and r > 0 (x - 1 cannot wrap: a srdhm result is never INT32_MIN for such multipliers);
 *  - after the offset and clamp, narrowing to int8 is exact; when the clamp is the full int8
 *    range the saturating narrows (vnclip, shift 0) are the clamp.
 * Each helper is stamped out for the register group sizes the kernels use.
 */

/* Output offset, activation clamp and narrowing of vl int32 lanes, stored at out, out + stride. */
#define EK_RVV_DEFINE_STORE(L32, L16, L8)                                                         \
    EK_INLINE void ek_rvv_store_##L32(vint32##L32##_t x, int8_t *out, ptrdiff_t stride,           \
                                      int32_t offset, int32_t lo, int32_t hi, size_t vl)          \
    {                                                                                             \
        vint16##L16##_t half;                                                                     \
        vint8##L8##_t bytes;                                                                      \
        x = __riscv_vadd_vx_i32##L32(x, offset, vl);                                              \
        if (lo > -128) {                                                                          \
            x = __riscv_vmax_vx_i32##L32(x, lo, vl);                                              \
        }                                                                                         \
        if (hi < 127) {                                                                           \
            x = __riscv_vmin_vx_i32##L32(x, hi, vl);                                              \
        }                                                                                         \
        half = __riscv_vnclip_wx_i16##L16(x, 0, __RISCV_VXRM_RNU, vl);                            \
        bytes = __riscv_vnclip_wx_i8##L8(half, 0, __RISCV_VXRM_RNU, vl);                          \
        if (stride == 1) {                                                                        \
            __riscv_vse8_v_i8##L8(out, bytes, vl);                                                \
        } else {                                                                                  \
            __riscv_vsse8_v_i8##L8(out, stride, bytes, vl);                                       \
        }                                                                                         \
    }

/* ek_mbqm on vl lanes sharing one multiplier, left = max(shift, 0) and right = max(-shift, 0). */
#define EK_RVV_DEFINE_MBQM(L32)                                                                   \
    EK_INLINE vint32##L32##_t ek_rvv_mbqm_##L32(vint32##L32##_t x, int32_t multiplier, int left,  \
                                                int right, size_t vl)                             \
    {                                                                                             \
        if (left > 0) {                                                                           \
            x = __riscv_vsll_vx_i32##L32(x, (size_t)left, vl);                                    \
        }                                                                                         \
        x = __riscv_vsmul_vx_i32##L32(x, multiplier, __RISCV_VXRM_RNU, vl);                       \
        if (right > 0) {                                                                          \
            x = __riscv_vadd_vv_i32##L32(x, __riscv_vsra_vx_i32##L32(x, 31, vl), vl);             \
            x = __riscv_vssra_vx_i32##L32(x, (size_t)right, __RISCV_VXRM_RNU, vl);                \
        }                                                                                         \
        return x;                                                                                 \
    }

/* Requantise vl accumulators of output channels c0, c0 + 1, ... and store them as int8. */
#define EK_RVV_DEFINE_REQUANT(L32)                                                                \
    EK_INLINE void ek_rvv_requant_##L32(vint32##L32##_t acc, int8_t *out, const ek_rvv_rq_t *rq,  \
                                        size_t c0, size_t vl)                                     \
    {                                                                                             \
        vint32##L32##_t sign;                                                                     \
        if (rq->left != NULL) {                                                                   \
            acc = __riscv_vsll_vv_i32##L32(                                                       \
                acc, __riscv_vle32_v_u32##L32((const uint32_t *)rq->left + c0, vl), vl);          \
        }                                                                                         \
        acc = __riscv_vsmul_vv_i32##L32(acc, __riscv_vle32_v_i32##L32(rq->multiplier + c0, vl),   \
                                        __RISCV_VXRM_RNU, vl);                                    \
        sign = __riscv_vsra_vx_i32##L32(acc, 31, vl);                                             \
        if (rq->adjust != NULL) {                                                                 \
            sign = __riscv_vand_vv_i32##L32(sign, __riscv_vle32_v_i32##L32(rq->adjust + c0, vl),  \
                                            vl);                                                  \
        }                                                                                         \
        acc = __riscv_vssra_vv_i32##L32(                                                          \
            __riscv_vadd_vv_i32##L32(acc, sign, vl),                                              \
            __riscv_vle32_v_u32##L32((const uint32_t *)rq->right + c0, vl), __RISCV_VXRM_RNU, vl); \
        ek_rvv_store_##L32(acc, out, 1, rq->offset, rq->act_min, rq->act_max, vl);               \
    }

/* The same for vl pixels of one output channel c: scalar parameters, outputs `stride` apart. */
#define EK_RVV_DEFINE_REQUANT_CHANNEL(L32)                                                        \
    EK_INLINE void ek_rvv_requant_channel_##L32(vint32##L32##_t acc, int8_t *out,                 \
                                                ptrdiff_t stride, const ek_rvv_rq_t *rq, size_t c, \
                                                size_t vl)                                        \
    {                                                                                             \
        const int left = rq->left != NULL ? (int)rq->left[c] : 0;                                 \
        acc = ek_rvv_mbqm_##L32(acc, rq->multiplier[c], left, (int)rq->right[c], vl);             \
        ek_rvv_store_##L32(acc, out, stride, rq->offset, rq->act_min, rq->act_max, vl);           \
    }

EK_RVV_DEFINE_STORE(m1, mf2, mf4)
EK_RVV_DEFINE_STORE(m2, m1, mf2)
EK_RVV_DEFINE_STORE(m4, m2, m1)
EK_RVV_DEFINE_STORE(m8, m4, m2)
EK_RVV_DEFINE_MBQM(m8)
EK_RVV_DEFINE_REQUANT(m1)
EK_RVV_DEFINE_REQUANT(m2)
EK_RVV_DEFINE_REQUANT(m4)
EK_RVV_DEFINE_REQUANT(m8)
EK_RVV_DEFINE_REQUANT_CHANNEL(m8)

/* n bytes from src to dst, 128 per instruction at VLEN 128. */
EK_INLINE void ek_rvv_copy8(int8_t *dst, const int8_t *src, size_t n)
{
    while (n > 0) {
        const size_t vl = __riscv_vsetvl_e8m8(n);
        __riscv_vse8_v_i8m8(dst, __riscv_vle8_v_i8m8(src, vl), vl);
        dst += vl;
        src += vl;
        n -= vl;
    }
}

/* n bytes of dst set to value. */
EK_INLINE void ek_rvv_fill8(int8_t *dst, int8_t value, size_t n)
{
    const vint8m8_t v = __riscv_vmv_v_x_i8m8(value, __riscv_vsetvlmax_e8m8());
    while (n > 0) {
        const size_t vl = __riscv_vsetvl_e8m8(n);
        __riscv_vse8_v_i8m8(dst, v, vl);
        dst += vl;
        n -= vl;
    }
}

/* n int8 values plus offset as int16 (the input offset applied once per value). */
EK_INLINE void ek_rvv_widen_offset(int16_t *dst, const int8_t *src, int16_t offset, size_t n)
{
    while (n > 0) {
        const size_t vl = __riscv_vsetvl_e16m8(n);
        const vint16m8_t wide = __riscv_vsext_vf2_i16m8(__riscv_vle8_v_i8m4(src, vl), vl);
        __riscv_vse16_v_i16m8(dst, __riscv_vadd_vx_i16m8(wide, offset, vl), vl);
        dst += vl;
        src += vl;
        n -= vl;
    }
}

/* n int16 zeros. */
EK_INLINE void ek_rvv_zero16(int16_t *dst, size_t n)
{
    const vint16m8_t z = __riscv_vmv_v_x_i16m8(0, __riscv_vsetvlmax_e16m8());
    while (n > 0) {
        const size_t vl = __riscv_vsetvl_e16m8(n);
        __riscv_vse16_v_i16m8(dst, z, vl);
        dst += vl;
        n -= vl;
    }
}

#endif /* __riscv_vector */

#endif /* EDGEKIT_RVV_H */
