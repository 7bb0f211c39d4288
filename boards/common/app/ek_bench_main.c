/* Benchmark firmware of `edgekit build`: a generated model behind a line-based serial protocol
 * in the style of the MLPerf Tiny runner (load a tensor, infer N times, report timings and the
 * results). The protocol is specified in docs/boards.md; edgekit/serial_bench.py is the host.
 *
 * Host -> board, one command per line ('\n' ends a line, '\r' is ignored):
 *   info                 EK info proto=1 board=.. model=.. inputs=.. outputs=.. layers=..
 *                        tick_hz=.. overhead=.. in=b0,b1.. out=b0,b1..   then EK ok
 *   load <i>             EK ready <bytes>, then the host sends "db <hex>" lines (at most
 *                        64 bytes each), every one answered by EK ok <bytes received so far>
 *   infer <n> <warmup>   warmup untimed runs, then n timed ones: EK run <k> <ticks> each, EK ok
 *   layers               one layer-by-layer pass: EK load <t>, EK layer <i> <t>.., EK store <t>,
 *                        EK mismatch if its outputs differ from a whole-model run, then EK ok
 *   results <o>          EK out <o> <bytes>, EK db <hex> lines (64 bytes each), EK ok
 * Errors answer EK err <text>. At reset the board prints EK boot edgekit-bench 1 board=..
 * Tick counts are raw counter ticks minus the empty-window overhead (same for every window). */
#include "ek_bench_config.h"
#include "ek_board.h"
#include "ek_platform.h"
#include "harness_model.h"

#define LINE_MAX 160
#define DB_BYTES 64

__attribute__((weak)) void ek_board_init(void) {}

/* Inputs, outputs and a second output set for the layer-by-layer check: static, no malloc. */
static uint8_t io_pool[EK_BENCH_IO_BYTES] __attribute__((aligned(16)));
static const void *in_ptr[HARNESS_N_INPUTS];
static void *out_ptr[HARNESS_N_OUTPUTS];
static void *check_ptr[HARNESS_N_OUTPUTS];
static uint32_t overhead;

typedef void (*ek_thunk)(void);

static int run_rc;
static int cur_layer;
static void run_thunk(void) { run_rc = harness_run(in_ptr, out_ptr); }
static void load_thunk(void) { harness_load_inputs(in_ptr); }
static void layer_thunk(void) { harness_run_layer(cur_layer); }
static void store_thunk(void) { harness_store_outputs(check_ptr); }
__attribute__((noinline)) static void empty_thunk(void) { __asm__ volatile(""); }

/* One non-inlined function reads the counter around every window, so the reading overhead is
 * the same for all of them; it is measured once on an empty window and subtracted. */
__attribute__((noinline)) static uint32_t measure_impl(ek_thunk fn)
{
    __asm__ volatile("" : "+r"(fn));
    uint32_t t0 = ek_counter_read();
    fn();
    uint32_t t1 = ek_counter_read();
    return t1 - t0;
}
static uint32_t (*volatile measure)(ek_thunk) = measure_impl;

static uint32_t timed(ek_thunk fn)
{
    uint32_t t = measure(fn);
    return t > overhead ? t - overhead : 0u;
}

static void put_kv(const char *key, uint32_t v)
{
    ek_puts(" ");
    ek_puts(key);
    ek_puts("=");
    ek_put_u32(v);
}

static void put_sizes(const char *key, const size_t *sizes, int n)
{
    ek_puts(" ");
    ek_puts(key);
    ek_puts("=");
    for (int i = 0; i < n; i++) {
        if (i) {
            ek_puts(",");
        }
        ek_put_u32((uint32_t)sizes[i]);
    }
}

static void ok(void) { ek_puts("EK ok\n"); }

static void err(const char *msg)
{
    ek_puts("EK err ");
    ek_puts(msg);
    ek_puts("\n");
}

static int read_line(char *buf)
{
    int n = 0;
    for (;;) {
        int c = ek_uart_getc();
        if (c == '\n') {
            buf[n] = '\0';
            return n;
        }
        if (c == '\r') {
            continue;
        }
        if (n < LINE_MAX - 1) {
            buf[n++] = (char)c;
        } else {
            n = LINE_MAX; /* too long: swallow up to the newline, then report */
            while (ek_uart_getc() != '\n') {
            }
            buf[0] = '\0';
            return -1;
        }
    }
}

static int starts(const char *s, const char *word)
{
    while (*word != '\0') {
        if (*s++ != *word++) {
            return 0;
        }
    }
    return *s == '\0' || *s == ' ';
}

/* Parses a decimal number after *p (skipping spaces); -1 if there is none. */
static int32_t number(const char **p)
{
    const char *s = *p;
    while (*s == ' ') {
        s++;
    }
    if (*s < '0' || *s > '9') {
        return -1;
    }
    uint32_t v = 0;
    while (*s >= '0' && *s <= '9' && v < 100000000u) {
        v = v * 10u + (uint32_t)(*s++ - '0');
    }
    *p = s;
    return (int32_t)v;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

static void cmd_info(void)
{
    ek_puts("EK info proto=1 board=" EK_BENCH_BOARD " model=" EK_BENCH_MODEL);
    put_kv("inputs", HARNESS_N_INPUTS);
    put_kv("outputs", HARNESS_N_OUTPUTS);
    put_kv("layers", HARNESS_N_LAYERS);
    put_kv("tick_hz", EK_BENCH_TICK_HZ);
    put_kv("overhead", overhead);
    put_sizes("in", harness_input_bytes, HARNESS_N_INPUTS);
    put_sizes("out", harness_output_bytes, HARNESS_N_OUTPUTS);
    ek_puts("\n");
    ok();
}

static void cmd_load(const char *args, char *line)
{
    int32_t idx = number(&args);
    if (idx < 0 || idx >= HARNESS_N_INPUTS) {
        err("load: no such input");
        return;
    }
    uint8_t *dst = (uint8_t *)(uintptr_t)in_ptr[idx];
    uint32_t want = (uint32_t)harness_input_bytes[idx];
    uint32_t got = 0;
    ek_puts("EK ready ");
    ek_put_u32(want);
    ek_puts("\n");
    while (got < want) {
        if (read_line(line) < 0 || !starts(line, "db")) {
            err("load: expected a db line");
            return;
        }
        const char *h = line + 2;
        while (*h == ' ') {
            h++;
        }
        while (h[0] != '\0') {
            int hi = hexval(h[0]);
            int lo = h[1] != '\0' ? hexval(h[1]) : -1;
            if (hi < 0 || lo < 0) {
                err("load: bad hex digit");
                return;
            }
            if (got >= want) {
                err("load: more bytes than the input holds");
                return;
            }
            dst[got++] = (uint8_t)(hi << 4 | lo);
            h += 2;
        }
        ek_puts("EK ok ");
        ek_put_u32(got);
        ek_puts("\n");
    }
}

static void cmd_infer(const char *args)
{
    int32_t n = number(&args);
    int32_t warmup = number(&args);
    if (n < 1) {
        err("infer: expected a count of at least 1");
        return;
    }
    for (int32_t k = 0; k < warmup; k++) {
        run_thunk();
    }
    for (int32_t k = 0; k < n; k++) {
        run_rc = 0;
        uint32_t t = timed(run_thunk);
        if (run_rc != 0) {
            ek_puts("EK err model returned ");
            ek_put_u32((uint32_t)run_rc);
            ek_puts("\n");
            return;
        }
        ek_puts("EK run ");
        ek_put_u32((uint32_t)k);
        ek_puts(" ");
        ek_put_u32(t);
        ek_puts("\n");
    }
    ok();
}

static void cmd_layers(void)
{
    run_thunk();
    ek_puts("EK load ");
    ek_put_u32(timed(load_thunk));
    ek_puts("\n");
    for (int i = 0; i < HARNESS_N_LAYERS; i++) {
        cur_layer = i;
        ek_puts("EK layer ");
        ek_put_u32((uint32_t)i);
        ek_puts(" ");
        ek_put_u32(timed(layer_thunk));
        ek_puts("\n");
    }
    ek_puts("EK store ");
    ek_put_u32(timed(store_thunk));
    ek_puts("\n");
    for (int o = 0; o < HARNESS_N_OUTPUTS; o++) {
        const uint8_t *a = out_ptr[o];
        const uint8_t *b = check_ptr[o];
        for (size_t i = 0; i < harness_output_bytes[o]; i++) {
            if (a[i] != b[i]) {
                ek_puts("EK mismatch\n");
                o = HARNESS_N_OUTPUTS;
                break;
            }
        }
    }
    ok();
}

static void cmd_results(const char *args)
{
    static const char digits[] = "0123456789abcdef";
    int32_t idx = number(&args);
    if (idx < 0 || idx >= HARNESS_N_OUTPUTS) {
        err("results: no such output");
        return;
    }
    const uint8_t *src = out_ptr[idx];
    uint32_t n = (uint32_t)harness_output_bytes[idx];
    ek_puts("EK out ");
    ek_put_u32((uint32_t)idx);
    ek_puts(" ");
    ek_put_u32(n);
    ek_puts("\n");
    for (uint32_t i = 0; i < n; i += DB_BYTES) {
        char hex[2 * DB_BYTES + 1];
        uint32_t m = n - i < DB_BYTES ? n - i : DB_BYTES;
        for (uint32_t j = 0; j < m; j++) {
            hex[2 * j] = digits[src[i + j] >> 4];
            hex[2 * j + 1] = digits[src[i + j] & 0xFu];
        }
        hex[2 * m] = '\0';
        ek_puts("EK db ");
        ek_puts(hex);
        ek_puts("\n");
    }
    ok();
}

int main(void)
{
    static char line[LINE_MAX];
    ek_board_init();
    ek_uart_init();
    uint8_t *p = io_pool;
    for (int i = 0; i < HARNESS_N_INPUTS; i++) {
        in_ptr[i] = p;
        p += (harness_input_bytes[i] + 15u) & ~(size_t)15u;
    }
    for (int o = 0; o < HARNESS_N_OUTPUTS; o++) {
        out_ptr[o] = p;
        p += (harness_output_bytes[o] + 15u) & ~(size_t)15u;
        check_ptr[o] = p;
        p += (harness_output_bytes[o] + 15u) & ~(size_t)15u;
    }
    ek_counter_init();
    (void)measure(empty_thunk);
    overhead = measure(empty_thunk);
    ek_puts("\nEK boot edgekit-bench 1 board=" EK_BENCH_BOARD " model=" EK_BENCH_MODEL "\n");
    for (;;) {
        int n = read_line(line);
        if (n < 0) {
            err("line too long");
        } else if (n == 0) {
            continue;
        } else if (starts(line, "info")) {
            cmd_info();
        } else if (starts(line, "load")) {
            cmd_load(line + 4, line);
        } else if (starts(line, "infer")) {
            cmd_infer(line + 5);
        } else if (starts(line, "layers")) {
            cmd_layers();
        } else if (starts(line, "results")) {
            cmd_results(line + 7);
        } else {
            err("unknown command (info, load, infer, layers, results)");
        }
    }
}
