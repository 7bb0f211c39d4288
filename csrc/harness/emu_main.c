/* Firmware main for running a generated model on an emulated (or hosted) target.
 *
 * Protocol with edgekit/runners/emulated.py, all integers little-endian uint32:
 *   ek_in.bin  = magic "EKI1", n_samples, flags, n_inputs, n_outputs,
 *                input byte sizes[n_inputs], output byte sizes[n_outputs],
 *                then per sample the inputs back to back.
 *   ek_out.bin = per sample the outputs back to back.
 *   console    = "EK_..." lines: tick counts, errors, faults (see emit_ticks and the runner).
 * Counting is chosen at run time by the flags, so one image serves plain verification and
 * instruction counting; the runner only turns on QEMU's icount when counting. */
#include "ek_platform.h"
#include "harness_model.h"

#define EK_IN_MAGIC 0x31494B45u /* "EKI1" */
#define EK_FLAG_COUNT 1u
#define EK_FLAG_LAYERS 2u

typedef void (*ek_thunk)(void *ctx);

struct run_ctx {
    const void *in[HARNESS_N_INPUTS];
    void *out[HARNESS_N_OUTPUTS];
    int layer;
    int rc;
};

/* Every window is measured by this one function so the counter-read overhead is identical for
 * all of them and cancels against the empty-thunk calibration. Calling it through a volatile
 * pointer stops the compiler from inlining or specialising it per thunk. */
static uint32_t measure_impl(ek_thunk fn, void *ctx)
{
    __asm__ volatile("" : "+r"(fn), "+r"(ctx));
    uint32_t t0 = ek_counter_read();
    fn(ctx);
    uint32_t t1 = ek_counter_read();
    return t1 - t0;
}
static uint32_t (*volatile measure)(ek_thunk, void *) = measure_impl;

static void run_thunk(void *p)
{
    struct run_ctx *c = p;
    c->rc = harness_run(c->in, c->out);
}

static void load_thunk(void *p) { harness_load_inputs(((struct run_ctx *)p)->in); }

static void layer_thunk(void *p) { harness_run_layer(((struct run_ctx *)p)->layer); }

static void store_thunk(void *p) { harness_store_outputs(((struct run_ctx *)p)->out); }

/* Calibration thunks are hand-written (top-level asm: GCC has no naked functions on AArch64) so
 * their instruction counts are known exactly: empty = 1 (return), nop1000 = 1000 + 1,
 * loop(n) = 1 load + 2n + 1 return. */
void ek_empty_thunk(void *p);
void ek_nop1000_thunk(void *p);
void ek_loop_thunk(void *p);
#if defined(__riscv)
#define EK_THUNKS_ASM                                                                          \
    "ek_empty_thunk:\n ret\n"                                                                  \
    "ek_nop1000_thunk:\n .rept 1000\n nop\n .endr\n ret\n"                                     \
    "ek_loop_thunk:\n lw a0, 0(a0)\n1: addi a0, a0, -1\n bnez a0, 1b\n ret\n"
#elif defined(__aarch64__)
#define EK_THUNKS_ASM                                                                          \
    "ek_empty_thunk:\n ret\n"                                                                  \
    "ek_nop1000_thunk:\n .rept 1000\n nop\n .endr\n ret\n"                                     \
    "ek_loop_thunk:\n ldr w0, [x0]\n1: subs w0, w0, #1\n b.ne 1b\n ret\n"
#elif defined(__arm__) && defined(__thumb__)
/* .thumb_func makes the symbols carry the Thumb bit, so calls through pointers stay in Thumb. */
#define EK_THUNKS_ASM                                                                          \
    ".syntax unified\n .thumb\n"                                                               \
    ".thumb_func\nek_empty_thunk:\n bx lr\n"                                                   \
    ".thumb_func\nek_nop1000_thunk:\n .rept 1000\n nop\n .endr\n bx lr\n"                      \
    ".thumb_func\nek_loop_thunk:\n ldr r0, [r0]\n1: subs r0, r0, #1\n bne 1b\n bx lr\n"
#endif
#ifdef EK_THUNKS_ASM
__asm__(".pushsection .text.ek_calibration, \"ax\"\n"
        ".balign 4\n"
        ".globl ek_empty_thunk\n .globl ek_nop1000_thunk\n .globl ek_loop_thunk\n"
        EK_THUNKS_ASM
        ".popsection\n");
#define EK_HAVE_CALIBRATION 1
#endif

static void emit_ticks(int32_t sample, const char *what, int32_t index, uint32_t ticks)
{
    ek_puts("EK_TICKS ");
    if (sample < 0) {
        ek_puts("-");
    } else {
        ek_put_u32((uint32_t)sample);
    }
    ek_puts(" ");
    ek_puts(what);
    if (index >= 0) {
        ek_put_u32((uint32_t)index);
    }
    ek_puts(" ");
    ek_put_u32(ticks);
    ek_puts("\n");
}

static _Noreturn void fail(const char *msg, int code)
{
    ek_puts("EK_ERROR ");
    ek_puts(msg);
    ek_puts("\n");
    ek_exit(code);
}

static void calibrate(void)
{
#ifdef EK_HAVE_CALIBRATION
    static uint32_t loop_n[2] = {1000u, 5000u};
    /* Twice, so the log shows the empty window is stable, not just one lucky reading. */
    emit_ticks(-1, "empty", -1, measure(ek_empty_thunk, 0));
    emit_ticks(-1, "empty", -1, measure(ek_empty_thunk, 0));
    emit_ticks(-1, "nop", 1000, measure(ek_nop1000_thunk, 0));
    for (int i = 0; i < 2; i++) {
        emit_ticks(-1, "loop", (int32_t)loop_n[i], measure(ek_loop_thunk, &loop_n[i]));
    }
#endif
}

static int same_bytes(const void *a, const void *b, size_t n)
{
    const uint8_t *x = a;
    const uint8_t *y = b;
    for (size_t i = 0; i < n; i++) {
        if (x[i] != y[i]) {
            return 0;
        }
    }
    return 1;
}

static void run_layerwise(int32_t s, struct run_ctx *ctx, void *const *check_out, int counting)
{
    struct run_ctx lctx = *ctx;
    for (int o = 0; o < HARNESS_N_OUTPUTS; o++) {
        lctx.out[o] = check_out[o];
    }
    if (counting) {
        emit_ticks(s, "load", -1, measure(load_thunk, &lctx));
    } else {
        load_thunk(&lctx);
    }
    for (int i = 0; i < HARNESS_N_LAYERS; i++) {
        lctx.layer = i;
        if (counting) {
            emit_ticks(s, "layer", i, measure(layer_thunk, &lctx));
        } else {
            layer_thunk(&lctx);
        }
    }
    if (counting) {
        emit_ticks(s, "store", -1, measure(store_thunk, &lctx));
    } else {
        store_thunk(&lctx);
    }
    for (int o = 0; o < HARNESS_N_OUTPUTS; o++) {
        if (!same_bytes(ctx->out[o], check_out[o], harness_output_bytes[o])) {
            ek_puts("EK_LAYERWISE_MISMATCH ");
            ek_put_u32((uint32_t)s);
            ek_puts("\n");
            break;
        }
    }
}

int main(void)
{
    ek_file fin = ek_open_read("ek_in.bin");
    if (fin < 0) {
        fail("cannot open ek_in.bin", EK_EXIT_IO);
    }
    uint32_t hdr[5];
    if (ek_read(fin, hdr, sizeof hdr) || hdr[0] != EK_IN_MAGIC) {
        fail("bad ek_in.bin header", EK_EXIT_IO);
    }
    uint32_t n_samples = hdr[1];
    uint32_t flags = hdr[2];
    if (hdr[3] != HARNESS_N_INPUTS || hdr[4] != HARNESS_N_OUTPUTS) {
        fail("input/output count differs from harness_model.h", EK_EXIT_IO);
    }
    uint32_t sizes[HARNESS_N_INPUTS + HARNESS_N_OUTPUTS];
    if (ek_read(fin, sizes, sizeof sizes)) {
        fail("truncated ek_in.bin header", EK_EXIT_IO);
    }
    for (int i = 0; i < HARNESS_N_INPUTS + HARNESS_N_OUTPUTS; i++) {
        size_t want = i < HARNESS_N_INPUTS ? harness_input_bytes[i]
                                           : harness_output_bytes[i - HARNESS_N_INPUTS];
        if (sizes[i] != want) {
            fail("tensor byte size differs from harness_model.h", EK_EXIT_IO);
        }
    }

    int counting = (flags & EK_FLAG_COUNT) != 0u;
    int layerwise = (flags & EK_FLAG_LAYERS) != 0u;
    if (counting && !ek_counter_available()) {
        fail("instruction counting is not available on this target", EK_EXIT_IO);
    }

    struct run_ctx ctx;
    void *check_out[HARNESS_N_OUTPUTS];
    for (int i = 0; i < HARNESS_N_INPUTS; i++) {
        ctx.in[i] = ek_alloc(harness_input_bytes[i]);
        if (ctx.in[i] == NULL) {
            fail("not enough RAM for the input buffers", EK_EXIT_IO);
        }
    }
    for (int o = 0; o < HARNESS_N_OUTPUTS; o++) {
        ctx.out[o] = ek_alloc(harness_output_bytes[o]);
        check_out[o] = layerwise ? ek_alloc(harness_output_bytes[o]) : ctx.out[o];
        if (ctx.out[o] == NULL || check_out[o] == NULL) {
            fail("not enough RAM for the output buffers", EK_EXIT_IO);
        }
    }

    ek_file fout = ek_open_write("ek_out.bin");
    if (fout < 0) {
        fail("cannot create ek_out.bin", EK_EXIT_IO);
    }
    if (counting) {
        ek_counter_init();
        calibrate();
    }

    for (uint32_t s = 0; s < n_samples; s++) {
        for (int i = 0; i < HARNESS_N_INPUTS; i++) {
            if (ek_read(fin, (void *)ctx.in[i], harness_input_bytes[i])) {
                fail("ek_in.bin ends before the announced samples", EK_EXIT_IO);
            }
        }
        ctx.rc = 0;
        if (counting) {
            emit_ticks((int32_t)s, "run", -1, measure(run_thunk, &ctx));
        } else {
            run_thunk(&ctx);
        }
        if (ctx.rc != 0) {
            ek_puts("EK_MODEL_ERROR ");
            ek_put_u32((uint32_t)ctx.rc);
            ek_puts("\n");
            ek_exit(EK_EXIT_MODEL);
        }
        if (layerwise) {
            run_layerwise((int32_t)s, &ctx, check_out, counting);
        }
        for (int o = 0; o < HARNESS_N_OUTPUTS; o++) {
            if (ek_write(fout, ctx.out[o], harness_output_bytes[o])) {
                fail("cannot write ek_out.bin", EK_EXIT_IO);
            }
        }
    }
    ek_close(fout);
    ek_close(fin);
    ek_puts("EK_DONE\n");
    return EK_EXIT_OK;
}
