/*
 * edgekit Helium (MVE integer) building blocks for the kernels in codegen/templates/mve/.
 *
 * Only generated code for targets with the "mve-i" capability includes this header. Every
 * helper is bit-exact with the portable kernels (csrc/edgekit_fixedpoint.h); docs/kernels-mve.md
 * explains the arithmetic and how the kernels are laid out.
 *
 * The generated models are measured in executed instructions, so the helpers are written for
 * instruction count: one vector instruction per 16 multiply-accumulates where possible, loads
 * with post-increment, no per-element branches.
 */
#ifndef EDGEKIT_MVE_H
#define EDGEKIT_MVE_H

#include <arm_mve.h>
#include <stdint.h>

#include "edgekit_fixedpoint.h"

/* ------------------------------------------------------------------------------------------ */
/* Requantisation, four lanes at a time                                                        */
/* ------------------------------------------------------------------------------------------ */

/*
 * ek_mbqm on four lanes, bit for bit, with the shift split into `left` (>= 0) and `right`
 * (<= 0, the negated right shift).
 *
 * VQRDMULH is exactly ek_srdhm: both compute floor((2ab + 2^31) / 2^32), saturating only
 * INT32_MIN * INT32_MIN (the reference's "ties away from zero" nudge agrees with round-half-up
 * on every product, see docs/kernels-mve.md). VRSHL by a negative amount rounds halves up, but
 * ek_rdivpot rounds them away from zero, so negative values are first lowered by one; the AND
 * with `right` keeps that fix-up at zero in lanes that do not shift.
 */
EK_INLINE int32x4_t ek_mve_mbqm(int32x4_t x, int32x4_t mult, int32x4_t right)
{
    const int32x4_t high = vqrdmulhq_s32(x, mult);
    const int32x4_t fixup = vshrq_n_s32(vandq_s32(high, right), 31);
    return vrshlq_s32(vqaddq_s32(high, fixup), right);
}

/* ek_mve_mbqm for layers where every lane shifts right by at least one bit. */
EK_INLINE int32x4_t ek_mve_mbqm_rshift(int32x4_t x, int32x4_t mult, int32x4_t right)
{
    const int32x4_t high = vqrdmulhq_s32(x, mult);
    return vrshlq_s32(vqaddq_s32(high, vshrq_n_s32(high, 31)), right);
}

/* ek_mve_mbqm with a left shift first (wrapping, as the reference's x * (1 << left)). */
EK_INLINE int32x4_t ek_mve_mbqm_left(int32x4_t x, int32x4_t mult, int32x4_t left,
                                     int32x4_t right)
{
    return ek_mve_mbqm(vshlq_s32(x, left), mult, right);
}

/* Output zero point and fused activation clamp: the tail of every requantisation. */
EK_INLINE int32x4_t ek_mve_offset_clamp(int32x4_t x, int32_t offset, int32x4_t lo, int32x4_t hi)
{
    return vminq_s32(vmaxq_s32(vaddq_n_s32(x, offset), lo), hi);
}

/*
 * The same for the activation range [-128, 127]: a saturating shift to the top byte and back
 * clamps to int8 without two constant vectors, which the gather kernels need as registers.
 */
EK_INLINE int32x4_t ek_mve_offset_sat8(int32x4_t x, int32_t offset)
{
    return vshrq_n_s32(vqshlq_n_s32(vaddq_n_s32(x, offset), 24), 24);
}

/* ek_mbqm with one multiplier and a right shift (shift < 0) for all lanes, both constants. */
EK_INLINE int32x4_t ek_mve_mbqm_n_rshift(int32x4_t x, int32_t mult, int32_t shift)
{
    const int32x4_t high = vqrdmulhq_n_s32(x, mult);
    return vrshlq_n_s32(vqaddq_s32(high, vshrq_n_s32(high, 31)), shift);
}

/* Which ek_mve_mbqm variant a layer needs; decided at build time from its shifts. */
#define EK_MVE_SHIFT_ANY 0   /* right shifts, some of them zero */
#define EK_MVE_SHIFT_RIGHT 1 /* every lane shifts right */
#define EK_MVE_SHIFT_LEFT 2  /* some lane shifts left */

EK_INLINE int32x4_t ek_mve_requant(int32x4_t x, int32x4_t mult, int32x4_t left, int32x4_t right,
                                   int mode)
{
    if (mode == EK_MVE_SHIFT_RIGHT) {
        return ek_mve_mbqm_rshift(x, mult, right);
    }
    if (mode == EK_MVE_SHIFT_LEFT) {
        return ek_mve_mbqm_left(x, mult, left, right);
    }
    return ek_mve_mbqm(x, mult, right);
}

/*
 * Requantisation constants of a layer whose output channels come in groups of four lanes. Each
 * group has one record of int32 vectors: bias (input offset folded in), multiplier, negated
 * right shift and, only when some channel shifts left, the left shift; one pointer walks them.
 */
typedef struct {
    const int32_t *records;
    int mode;
    int32_t offset;
    int32_t act_min;
    int32_t act_max;
} ek_mve_rq;

EK_INLINE int ek_mve_rq_full_range(const ek_mve_rq *rq)
{
    return rq->act_min == -128 && rq->act_max == 127;
}

/* acc + bias, then ek_mbqm, with the constants of the record at rec. */
EK_INLINE int32x4_t ek_mve_rq_scale(const ek_mve_rq *rq, const int32_t *rec, int32x4_t acc)
{
    const int32x4_t l = rq->mode == EK_MVE_SHIFT_LEFT ? vldrwq_s32(rec + 12) : vdupq_n_s32(0);
    return ek_mve_requant(vaddq_s32(acc, vldrwq_s32(rec)), vldrwq_s32(rec + 4), l,
                          vldrwq_s32(rec + 8), rq->mode);
}

/* The whole requantisation of one vector: scale, output zero point, activation clamp. */
EK_INLINE int32x4_t ek_mve_rq_vector(const ek_mve_rq *rq, const int32_t *rec, int32x4_t acc)
{
    const int32x4_t y = ek_mve_rq_scale(rq, rec, acc);
    if (ek_mve_rq_full_range(rq)) {
        return ek_mve_offset_sat8(y, rq->offset);
    }
    return ek_mve_offset_clamp(y, rq->offset, vdupq_n_s32(rq->act_min), vdupq_n_s32(rq->act_max));
}

/*
 * Offsets that interleave two neighbouring pixels' outputs: lane 2i is channel i of the first
 * pixel, lane 2i + 1 channel i of the next one, `channels` bytes further.
 */
EK_INLINE uint16x8_t ek_mve_pair_offsets(int channels)
{
    const uint16x8_t lane = vidupq_n_u16(0, 1);
    return vaddq_u16(vshrq_n_u16(lane, 1), vmulq_n_u16(vandq_u16(lane, vdupq_n_u16(1)),
                                                       (uint16_t)channels));
}

/* ------------------------------------------------------------------------------------------ */
/* Byte movement                                                                               */
/* ------------------------------------------------------------------------------------------ */

/*
 * A compiler-only memory barrier, placed after every helper that stores with vector intrinsics
 * into memory that is read again. GCC 12 gets the dependences of MVE loads and stores wrong:
 * the pre-register-allocation scheduler moved a VLDRB above a VSTRB to the same address, and a
 * predicated VSTRB counts as writing all 16 bytes, so a fill it only partly overwrites was
 * deleted as dead. The barrier emits no instruction; it only keeps the order as written.
 */
#define EK_MVE_BARRIER() __asm__ volatile("" ::: "memory")

/* n bytes (n > 0): whole vectors, then one predicated vector for the rest. */
EK_INLINE void ek_mve_copy(int8_t *dst, const int8_t *src, int n)
{
    while (n >= 16) {
        vst1q_s8(dst, vld1q_s8(src));
        src += 16;
        dst += 16;
        n -= 16;
    }
    if (n > 0) {
        const mve_pred16_t p = vctp8q((uint32_t)n);
        vstrbq_p_s8(dst, vldrbq_z_s8(src, p), p);
    }
    EK_MVE_BARRIER();
}

/*
 * n bytes as whole vectors: up to 15 bytes past both ends are read and written. For im2col
 * columns, where the overrun lands on bytes copied next or on zero-weight padding.
 */
EK_INLINE void ek_mve_copy_over(int8_t *dst, const int8_t *src, int n)
{
    int i;
    for (i = 0; i < n; i += 16) {
        vst1q_s8(dst + i, vld1q_s8(src + i));
        EK_MVE_BARRIER(); /* the next copy overwrites this one's overrun: keep the order */
    }
}

EK_INLINE void ek_mve_fill(int8_t *dst, int8_t value, int n)
{
    const int8x16_t v = vdupq_n_s8(value);
    EK_MVE_BARRIER();
    while (n >= 16) {
        vst1q_s8(dst, v);
        dst += 16;
        n -= 16;
    }
    if (n > 0) {
        vstrbq_p_s8(dst, v, vctp8q((uint32_t)n));
    }
    EK_MVE_BARRIER();
}

/* ------------------------------------------------------------------------------------------ */
/* Dot-product micro-kernels                                                                   */
/* ------------------------------------------------------------------------------------------ */

/*
 * These two loops are inline assembly, the only assembly in edgekit. VMLADAVA accumulates into
 * an even-numbered general register, and GCC 12 allocates such registers poorly: the same 4x2
 * loop written with vmladavaq_s8() compiles to 27 instructions instead of 16 (moves between
 * even and odd registers, and spills), a third of the throughput. Here the accumulators are
 * pinned to r0, r2, ..., r12 and lr, and the pointers to odd registers.
 *
 * lr is saved and restored inside the statement rather than declared clobbered: GCC keeps the
 * counter of its own low-overhead loops (DLS/LE) in lr and cannot give it up around an asm, so
 * a clobbered lr in a loop body makes the constraints unsatisfiable. Operands are pinned so that
 * none of them can be lr. The enclosing function must not need r7 as a frame pointer, which
 * holds at -O1 and above (edgekit's targets build with -O2).
 */

/* One 16-byte step of the 4x2 kernel: four weight vectors, each against both pixels. */
#define EK_MVE_STEP_4X2(op)                                                                      \
    "vldrb.8 q2, [%[w]], #16\n\t" op " r0, q0, q2\n\t" op " r8, q1, q2\n\t"                     \
    "vldrb.8 q3, [%[w]], #16\n\t" op " r2, q0, q3\n\t" op " r10, q1, q3\n\t"                    \
    "vldrb.8 q2, [%[w]], #16\n\t" op " r4, q0, q2\n\t" op " r12, q1, q2\n\t"                    \
    "vldrb.8 q3, [%[w]], #16\n\t" op " r6, q0, q3\n\t" op " lr, q1, q3\n\t"
#define EK_MVE_LOAD_2PX "vldrb.8 q0, [%[x0]], #16\n\tvldrb.8 q1, [%[x1]], #16\n\t"
/* The last, partial step reads only `tail` input bytes (the weights are zero-padded). */
#define EK_MVE_LOAD_2PX_TAIL "vpstt\n\tvldrbt.8 q0, [%[x0]], #16\n\tvldrbt.8 q1, [%[x1]], #16\n\t"

/* The multiply-accumulates of one group: all steps, the first one without accumulating. */
#define EK_MVE_GROUP_MACS_4X2                                                                    \
    ".if %c[tail_first]\n\t" EK_MVE_LOAD_2PX_TAIL ".else\n\t" EK_MVE_LOAD_2PX ".endif\n\t"      \
    EK_MVE_STEP_4X2("vmladav.s8")                                                                \
    ".rept %c[inner]\n\t" EK_MVE_LOAD_2PX EK_MVE_STEP_4X2("vmladava.s8") ".endr\n\t"             \
    ".if %c[tail_last]\n\t" EK_MVE_LOAD_2PX_TAIL EK_MVE_STEP_4X2("vmladava.s8") ".endif\n\t"     \
    "sub %[x0], %[x0], %[bytes]\n\tsub %[x1], %[x1], %[bytes]\n\t"

/*
 * The requantisation of one group, from the accumulators to int8 in the even bytes of q1:
 * pixel 0 in lanes 0, 2, 4, 6 and pixel 1 in lanes
 * 1, 3, 5, 7 of an int16 view, so one scatter store writes both pixels. The group's record
 * (bias, multiplier, negated right shift, left shift if any) follows its weights in `w`.
 * The arithmetic is ek_mve_mbqm's; saturating to int16 before the zero point and the clamp is
 * exact because the clamp range is inside int8.
 */
#define EK_MVE_GROUP_REQUANT_4X2                                                                 \
    "vmov q4[2], q4[0], r0, r4\n\tvmov q4[3], q4[1], r2, r6\n\t"                                \
    "vmov q5[2], q5[0], r8, r12\n\tvmov q5[3], q5[1], r10, lr\n\t"                              \
    "vldrw.32 q0, [%[w]], #16\n\tvldrw.32 q1, [%[w]], #16\n\tvldrw.32 q2, [%[w]], #16\n\t"      \
    ".if %c[left]\n\tvldrw.32 q3, [%[w]], #16\n\t.endif\n\t"                                     \
    "vadd.i32 q4, q4, q0\n\tvadd.i32 q5, q5, q0\n\t"                                             \
    ".if %c[left]\n\tvshl.s32 q4, q4, q3\n\tvshl.s32 q5, q5, q3\n\t.endif\n\t"                   \
    "vqrdmulh.s32 q4, q4, q1\n\tvqrdmulh.s32 q5, q5, q1\n\t"                                     \
    ".if %c[all_right]\n\tvshr.s32 q0, q4, #31\n\tvshr.s32 q1, q5, #31\n\t"                      \
    ".else\n\tvand q0, q4, q2\n\tvshr.s32 q0, q0, #31\n\tvand q1, q5, q2\n\t"                    \
    "vshr.s32 q1, q1, #31\n\t.endif\n\t"                                                         \
    "vqadd.s32 q4, q4, q0\n\tvqadd.s32 q5, q5, q1\n\t"                                           \
    "vrshl.s32 q4, q4, q2\n\tvrshl.s32 q5, q5, q2\n\t"                                           \
    "vqmovnb.s32 q0, q4\n\tvqmovnt.s32 q0, q5\n\t"                                               \
    "movw r0, %[offset]\n\tvqadd.s16 q0, q0, r0\n\t"                                             \
    ".if %c[full_range]\n\tvqmovnb.s16 q1, q0\n\t"                                               \
    ".else\n\tmovw r0, %[lo]\n\tvdup.16 q1, r0\n\tvmax.s16 q0, q0, q1\n\t"                       \
    "movw r0, %[hi]\n\tvdup.16 q1, r0\n\tvmin.s16 q1, q0, q1\n\t.endif\n\t"

/*
 * A 1x1 convolution (or an im2col column) of two neighbouring pixels x0 and x1 against every
 * output channel, requantised and stored to out[0..channels) and out[channels..2 * channels):
 * the whole inner work of the pointwise and im2col kernels in one statement.
 *
 * `w` holds, per group of four output channels, the weight rows interleaved in 16-byte steps,
 * w[step][row][16] (zero-padded to whole steps), then the group's requantisation record. Per
 * step: two input loads, four weight loads and eight VMLADAV, 128 multiply-accumulates in 14
 * instructions; the steps are unrolled by the assembler. Each input row has k = 16 * (steps -
 * 1) + (tail or 16) bytes; only the tail bytes of the last step are read.
 *
 * With pixels == 1 only x0 is used (x1 must equal it) and only out[0..channels) is written.
 * `to_out` is ek_mve_pair_offsets(channels). Every other argument must be a compile-time
 * constant: they become immediates and assembler conditions (computed here, as assembler
 * comparisons yield -1 for true).
 */
EK_INLINE void ek_mve_gemm_4x2(const int8_t *x0, const int8_t *x1, const int8_t *w, int8_t *out,
                               uint16x8_t to_out, int channels, int pixels, int steps, int tail,
                               int mode, int offset, int act_min, int act_max)
{
    const int groups = (channels + 3) / 4;
    const int last_lanes = channels - 4 * (groups - 1);
    /* a last group of fewer than four channels is stored under a predicate of its own */
    const int peel = last_lanes < 4;
    /* a lone pixel is stored under a predicate that keeps the even (pixel 0) lanes: its store
       then overwrites the tail predicate, which every group sets again */
    const int lone = pixels == 1;
    const int mask = ((1 << (4 * last_lanes)) - 1) & (lone ? 0x3333 : 0xffff);
    register const int8_t *rx0 __asm__("r1") = x0;
    register const int8_t *rx1 __asm__("r3") = x1;
    register const int8_t *rw __asm__("r5") = w;
    register int8_t *rout __asm__("r7") = out;
    register int rg __asm__("r9") = groups - peel;
    register int rn __asm__("r11");
    __asm__ volatile(
        "push {lr}\n\t"
        /* the tail predicate is set once when no store in the loop writes VPR */
        ".if %c[tail_once]\n\tmovw %[n], %[tail]\n\tvctp.8 %[n]\n\t.endif\n\t"
        ".if %c[loop]\n"
        "1:\n\t"
        ".if %c[tail_each]\n\tmovw %[n], %[tail]\n\tvctp.8 %[n]\n\t.endif\n\t"
        EK_MVE_GROUP_MACS_4X2 EK_MVE_GROUP_REQUANT_4X2
        ".if %c[lone]\n\tmovw r0, #0x3333\n\tvmsr p0, r0\n\tvpst\n\t"
        "vstrbt.16 q1, [%[out], %q[to]]\n\t"
        ".else\n\tvstrb.16 q1, [%[out], %q[to]]\n\t.endif\n\t"
        "add %[out], %[out], #4\n\t"
        "subs %[g], %[g], #1\n\tbne 1b\n\t"
        ".endif\n\t"
        ".if %c[peel]\n\t"
        ".if %c[tail_each]\n\tmovw %[n], %[tail]\n\tvctp.8 %[n]\n\t.endif\n\t"
        EK_MVE_GROUP_MACS_4X2 EK_MVE_GROUP_REQUANT_4X2
        "movw r0, %[mask]\n\tvmsr p0, r0\n\tvpst\n\t"
        "vstrbt.16 q1, [%[out], %q[to]]\n\t"
        ".endif\n\t"
        "pop {lr}\n\t"
        : [x0] "+r"(rx0), [x1] "+r"(rx1), [w] "+r"(rw), [out] "+r"(rout), [g] "+r"(rg),
          [n] "=&r"(rn)
        : [to] "w"(to_out), [tail] "i"(tail), [tail_once] "i"(tail && !lone),
          [tail_each] "i"(tail && lone), [lone] "i"(lone), [tail_first] "i"(tail && steps == 1),
          [tail_last] "i"(tail && steps > 1), [inner] "i"(steps - 1 - (tail && steps > 1)),
          [bytes] "i"(16 * steps), [loop] "i"(groups - peel > 0), [peel] "i"(peel),
          [mask] "i"(mask), [left] "i"(mode == EK_MVE_SHIFT_LEFT),
          [all_right] "i"(mode == EK_MVE_SHIFT_RIGHT),
          [full_range] "i"(act_min == -128 && act_max == 127), [offset] "i"(offset & 0xffff),
          [lo] "i"(act_min & 0xffff), [hi] "i"(act_max & 0xffff)
        /* "p0" is GCC's name for VPR, which the tail and store predicates overwrite */
        : "r0", "r2", "r4", "r6", "r8", "r10", "r12", "q0", "q1", "q2", "q3", "q4", "q5",
          "p0", "memory", "cc");
}

/*
 * Four dot products of one k-byte row x with the rows w0..w3 (k > 0), returned as one vector.
 * A tail-predicated loop (DLSTP/LETP) handles any k without reading past either operand.
 */
EK_INLINE int32x4_t ek_mve_dot_4x1(const int8_t *x, const int8_t *w0, const int8_t *w1,
                                   const int8_t *w2, const int8_t *w3, int k)
{
    register const int8_t *rx __asm__("r1") = x;
    register const int8_t *rw0 __asm__("r3") = w0;
    register const int8_t *rw1 __asm__("r5") = w1;
    register const int8_t *rw2 __asm__("r8") = w2;
    register const int8_t *rw3 __asm__("r9") = w3;
    register int rk __asm__("r10") = k;
    int32x4_t out;
    __asm__ volatile("push {lr}\n\tmov r0, #0\n\tmov r2, #0\n\tmov r4, #0\n\tmov r6, #0\n\t"
                     "dlstp.8 lr, %[k]\n"
                     "1:\n\t"
                     "vldrb.8 q0, [%[x]], #16\n\t"
                     "vldrb.8 q1, [%[w0]], #16\n\tvmladava.s8 r0, q0, q1\n\t"
                     "vldrb.8 q2, [%[w1]], #16\n\tvmladava.s8 r2, q0, q2\n\t"
                     "vldrb.8 q1, [%[w2]], #16\n\tvmladava.s8 r4, q0, q1\n\t"
                     "vldrb.8 q2, [%[w3]], #16\n\tvmladava.s8 r6, q0, q2\n\t"
                     "letp lr, 1b\n\t"
                     "vmov %q[out][2], %q[out][0], r0, r4\n\t"
                     "vmov %q[out][3], %q[out][1], r2, r6\n\t"
                     "pop {lr}\n\t"
                     : [out] "=w"(out), [x] "+r"(rx), [w0] "+r"(rw0), [w1] "+r"(rw1),
                       [w2] "+r"(rw2), [w3] "+r"(rw3)
                     : [k] "r"(rk)
                     : "r0", "r2", "r4", "r6", "q0", "q1", "q2");
    return out;
}

/*
 * Depthwise micro-kernels. A depthwise output is a dot product of at most 16 taps, so one
 * VMLADAV computes it once its taps sit in one vector: a gather load (VLDRB with a vector of
 * byte offsets) picks them from the channel planes of ek_mve_planes_*. When a window of
 * neighbouring outputs still fits in 16 lanes, one gather serves m outputs, each with its own
 * weight vector (zero where a lane is not one of its taps). The outputs of one channel are
 * packed four to a vector for the requantisation; `step` is how far the window moves per gather.
 * Lanes of a vector that hold no output (a short tail) repeat a neighbour's value and are not
 * stored. `gathers` must be a compile-time constant.
 *
 * These statements (and ek_mve_dot_4x1) only read memory and declare no memory clobber, so GCC
 * may keep constants read from flash in registers across them. That is safe because every
 * function that writes what they read (ek_mve_planes_*, ek_mve_fill) starts and ends with
 * EK_MVE_BARRIER, and volatile asm statements keep their order.
 */

/* One gather and its m dot products into the named even registers. */
#define EK_MVE_DW_GATHER "vldrb.u8 q0, [%[b], %q[off]]\n\tadd %[b], %[b], %[step]\n\t"
#define EK_MVE_DW_OPERANDS(...)                                                                  \
    : [o0] "=&w"(o0), [o1] "=&w"(o1), [o2] "=&w"(o2), [b] "+r"(b)                               \
    : [off] "w"(off), __VA_ARGS__, [step] "i"(step), [n] "i"(gathers)                           \
    : "r0", "r2", "r4", "r6", "r8", "r10", "q0"

/*
 * m = 3: `gathers` (1 to 4) windows of three outputs each, packed four to a vector as soon as
 * four are ready, so six accumulators suffice: o0 = outputs 0-3, o1 = 4-7, o2 = 8-11. Lanes past
 * 3 * gathers are undefined. The base pointer advances by `step` per gather.
 */
EK_INLINE void ek_mve_dw_m3(const int8_t **base, uint8x16_t off, int8x16_t w0, int8x16_t w1,
                            int8x16_t w2, int step, int gathers, int32x4_t *y0, int32x4_t *y1,
                            int32x4_t *y2)
{
    const int8_t *b = *base;
    int32x4_t o0, o1, o2;
    __asm__ volatile(
        EK_MVE_DW_GATHER "vmladav.s8 r0, q0, %q[w0]\n\tvmladav.s8 r2, q0, %q[w1]\n\t"
        "vmladav.s8 r4, q0, %q[w2]\n\t"
        ".if %c[n] == 1\n\t"
        "vmov %q[o0][2], %q[o0][0], r0, r4\n\tvmov %q[o0][3], %q[o0][1], r2, r2\n\t"
        ".else\n\t" EK_MVE_DW_GATHER "vmladav.s8 r6, q0, %q[w0]\n\tvmladav.s8 r8, q0, %q[w1]\n\t"
        "vmladav.s8 r10, q0, %q[w2]\n\t"
        "vmov %q[o0][2], %q[o0][0], r0, r4\n\tvmov %q[o0][3], %q[o0][1], r2, r6\n\t"
        ".if %c[n] == 2\n\t"
        "vmov %q[o1][2], %q[o1][0], r8, r8\n\tvmov %q[o1][3], %q[o1][1], r10, r10\n\t"
        ".else\n\t" EK_MVE_DW_GATHER "vmladav.s8 r0, q0, %q[w0]\n\tvmladav.s8 r2, q0, %q[w1]\n\t"
        "vmladav.s8 r4, q0, %q[w2]\n\t"
        "vmov %q[o1][2], %q[o1][0], r8, r0\n\tvmov %q[o1][3], %q[o1][1], r10, r2\n\t"
        ".if %c[n] == 3\n\t"
        "vmov %q[o2][2], %q[o2][0], r4, r4\n\t"
        ".else\n\t" EK_MVE_DW_GATHER "vmladav.s8 r6, q0, %q[w0]\n\tvmladav.s8 r8, q0, %q[w1]\n\t"
        "vmladav.s8 r10, q0, %q[w2]\n\t"
        "vmov %q[o2][2], %q[o2][0], r4, r8\n\tvmov %q[o2][3], %q[o2][1], r6, r10\n\t"
        ".endif\n\t.endif\n\t.endif\n\t"
        EK_MVE_DW_OPERANDS([w0] "w"(w0), [w1] "w"(w1), [w2] "w"(w2)));
    *base = b;
    *y0 = o0;
    *y1 = o1;
    *y2 = o2;
}

/* m = 2: `gathers` (1 or 2) windows of two outputs each, into o0. */
EK_INLINE int32x4_t ek_mve_dw_m2(const int8_t **base, uint8x16_t off, int8x16_t w0, int8x16_t w1,
                                 int step, int gathers)
{
    const int8_t *b = *base;
    int32x4_t o0, o1, o2;
    __asm__ volatile(
        EK_MVE_DW_GATHER "vmladav.s8 r0, q0, %q[w0]\n\tvmladav.s8 r2, q0, %q[w1]\n\t"
        ".if %c[n] == 1\n\t"
        "vmov %q[o0][2], %q[o0][0], r0, r0\n\tvmov %q[o0][3], %q[o0][1], r2, r2\n\t"
        ".else\n\t" EK_MVE_DW_GATHER "vmladav.s8 r4, q0, %q[w0]\n\tvmladav.s8 r6, q0, %q[w1]\n\t"
        "vmov %q[o0][2], %q[o0][0], r0, r4\n\tvmov %q[o0][3], %q[o0][1], r2, r6\n\t"
        ".endif\n\t" EK_MVE_DW_OPERANDS([w0] "w"(w0), [w1] "w"(w1)));
    *base = b;
    (void)o1;
    (void)o2;
    return o0;
}

/* m = 1: `gathers` (1 to 4) windows of one output each, into o0. */
EK_INLINE int32x4_t ek_mve_dw_m1(const int8_t **base, uint8x16_t off, int8x16_t w0, int step,
                                 int gathers)
{
    const int8_t *b = *base;
    int32x4_t o0, o1, o2;
    __asm__ volatile(
        EK_MVE_DW_GATHER "vmladav.s8 r0, q0, %q[w0]\n\t"
        ".if %c[n] > 1\n\t" EK_MVE_DW_GATHER "vmladav.s8 r2, q0, %q[w0]\n\t.endif\n\t"
        ".if %c[n] > 2\n\t" EK_MVE_DW_GATHER "vmladav.s8 r4, q0, %q[w0]\n\t.endif\n\t"
        ".if %c[n] > 3\n\t" EK_MVE_DW_GATHER "vmladav.s8 r6, q0, %q[w0]\n\t.endif\n\t"
        "vmov %q[o0][2], %q[o0][0], r0, r4\n\tvmov %q[o0][3], %q[o0][1], r2, r6\n\t"
        EK_MVE_DW_OPERANDS([w0] "w"(w0)));
    *base = b;
    (void)o1;
    (void)o2;
    return o0;
}

/*
 * Requantisation of four outputs of one channel: its constants are scalars. `lo`/`hi` are only
 * read when `full_range` is 0.
 */
EK_INLINE int32x4_t ek_mve_requant_n(int32x4_t x, int32_t bias, int32_t mult, int32_t left,
                                     int32_t right, int mode, int32_t offset, int full_range,
                                     int32_t lo, int32_t hi)
{
    int32x4_t h;
    x = vaddq_n_s32(x, bias);
    if (mode == EK_MVE_SHIFT_LEFT) {
        x = vshlq_r_s32(x, left);
    }
    h = vqrdmulhq_n_s32(x, mult);
    if (mode == EK_MVE_SHIFT_RIGHT) {
        h = vqaddq_s32(h, vshrq_n_s32(h, 31));
    } else {
        h = vqaddq_s32(h, vshrq_n_s32(vandq_s32(h, vdupq_n_s32(right)), 31));
    }
    h = vrshlq_n_s32(h, right);
    if (full_range) {
        return ek_mve_offset_sat8(h, offset);
    }
    return ek_mve_offset_clamp(h, offset, vdupq_n_s32(lo), vdupq_n_s32(hi));
}

/*
 * Channel planes for the depthwise kernels: each input channel gets a plane of `lines` rows of
 * `width` bytes, and padded input line j (counted from the first padding line) is stored at row
 * j % lines. Either the plane holds every line of the image, or it is a ring of the lines one
 * output line reads; then the rows of a window are rotated, and each rotation has its own
 * vector of gather offsets.
 */
typedef struct {
    int8_t *ring;
    int channels;   /* input channels: one plane each */
    int plane;      /* bytes per plane */
    int lines;      /* rows of a plane */
    int width;      /* bytes per plane row: the padded line length */
    int pad_before; /* padding bytes before the image along the line */
    int length;     /* image pixels along the line */
    int src_step;   /* bytes between neighbouring pixels of a line in the NHWC input */
} ek_mve_planes;

/* Eight channels of one pixel to the same byte of eight planes. */
EK_INLINE void ek_mve_planes_put8(int8_t *row, const int8_t *src, uint16x8_t to_plane,
                                  int channels)
{
    if (channels >= 8) {
        vstrbq_scatter_offset_s16(row, to_plane, vldrbq_s16(src));
    } else {
        const mve_pred16_t p = vctp16q((uint32_t)channels);
        vstrbq_scatter_offset_p_s16(row, to_plane, vldrbq_z_s16(src, p), p);
    }
}

/* Line `j` (padded index) of the planes from the NHWC pixels at src, src + src_step, ... */
EK_INLINE void ek_mve_planes_load(const ek_mve_planes *pl, int j, const int8_t *src)
{
    const uint16x8_t to_plane = vmulq_n_u16(vidupq_n_u16(0, 1), (uint16_t)pl->plane);
    int8_t *row = pl->ring + (j % pl->lines) * pl->width + pl->pad_before;
    int i, c;
    EK_MVE_BARRIER();
    for (i = 0; i < pl->length; ++i, src += pl->src_step, ++row) {
        for (c = 0; c + 8 <= pl->channels; c += 8) {
            ek_mve_planes_put8(row + c * pl->plane, src + c, to_plane, 8);
        }
        if (c < pl->channels) {
            ek_mve_planes_put8(row + c * pl->plane, src + c, to_plane, pl->channels - c);
        }
    }
    EK_MVE_BARRIER();
}

/* Line `j` as padding: the input zero point in every plane. */
EK_INLINE void ek_mve_planes_pad(const ek_mve_planes *pl, int j, int8_t zero_point)
{
    int8_t *row0 = pl->ring + (j % pl->lines) * pl->width + pl->pad_before;
    int c;
    for (c = 0; c < pl->channels; ++c, row0 += pl->plane) {
        ek_mve_fill(row0, zero_point, pl->length);
    }
}

/* Sum of k int8 values (k > 0), for a dense layer with asymmetric weights. */
EK_INLINE int32_t ek_mve_sum_s8(const int8_t *x, int k)
{
    int32_t sum = 0;
    while (k > 0) {
        const mve_pred16_t p = vctp8q((uint32_t)k);
        sum = vaddvaq_p_s8(sum, vldrbq_z_s8(x, p), p);
        x += 16;
        k -= 16;
    }
    return sum;
}

#endif /* EDGEKIT_MVE_H */
