/* Tick counters of the emulated boards. Exactly one EK_COUNTER_* macro is defined by the build
 * (from the board's board.toml); EK_COUNTER_BASE is the peripheral's base address. Every
 * counter is returned as an up-counting 32-bit value so differences work modulo 2^32. */
#include "ek_platform.h"

#define REG32(addr) (*(volatile uint32_t *)(uintptr_t)(addr))

/* Reads a RISC-V CSR. .option arch keeps this assembling when -march omits the zicsr suffix
 * (binutils >= 2.38). */
#define EK_CSR_READ(csr, out)                                                                      \
    __asm__ volatile(".option push\n"                                                              \
                     ".option arch, +zicsr\n"                                                      \
                     "csrr %0, " #csr "\n"                                                         \
                     ".option pop\n"                                                               \
                     : "=r"(out))

#if defined(EK_COUNTER_CMSDK_TIMER)
/* CMSDK APB timer: 32-bit down-counter at the peripheral clock. */
#define CTRL REG32(EK_COUNTER_BASE + 0x0u)
#define VALUE REG32(EK_COUNTER_BASE + 0x4u)
#define RELOAD REG32(EK_COUNTER_BASE + 0x8u)

int ek_counter_available(void) { return 1; }

void ek_counter_init(void)
{
    CTRL = 0u;
    /* A full 2^32 period keeps modulo-2^32 differences valid across a reload. */
    RELOAD = 0xFFFFFFFFu;
    VALUE = 0xFFFFFFFFu;
    CTRL = 1u;
}

uint32_t ek_counter_read(void) { return ~VALUE; }

#elif defined(EK_COUNTER_SSE_COUNTER)
/* SSE-300 system counter: 64-bit up-counter; control frame at BASE, read-only status frame at
 * BASE + 0x1000. The low word is enough for windows below 2^32 ticks. */
#define CNTCR REG32(EK_COUNTER_BASE + 0x0u)
#define CNTCV_LO REG32(EK_COUNTER_BASE + 0x1000u)

int ek_counter_available(void) { return 1; }

void ek_counter_init(void) { CNTCR |= 1u; }

uint32_t ek_counter_read(void) { return CNTCV_LO; }

#elif defined(EK_COUNTER_NRF_TIMER)
/* nRF51 TIMER in 32-bit timer mode, prescaler 1 (16 MHz); reading needs a capture task. */
#define TASKS_START REG32(EK_COUNTER_BASE + 0x000u)
#define TASKS_STOP REG32(EK_COUNTER_BASE + 0x004u)
#define TASKS_CLEAR REG32(EK_COUNTER_BASE + 0x00Cu)
#define TASKS_CAPTURE0 REG32(EK_COUNTER_BASE + 0x040u)
#define MODE REG32(EK_COUNTER_BASE + 0x504u)
#define BITMODE REG32(EK_COUNTER_BASE + 0x508u)
#define PRESCALER REG32(EK_COUNTER_BASE + 0x510u)
#define CC0 REG32(EK_COUNTER_BASE + 0x540u)

int ek_counter_available(void) { return 1; }

void ek_counter_init(void)
{
    TASKS_STOP = 1u;
    MODE = 0u;
    BITMODE = 3u;
    PRESCALER = 0u;
    TASKS_CLEAR = 1u;
    TASKS_START = 1u;
}

uint32_t ek_counter_read(void)
{
    TASKS_CAPTURE0 = 1u;
    return CC0;
}

#elif defined(EK_COUNTER_RISCV_MINSTRET)
/* Under QEMU icount, minstret reads the virtual clock (2^shift per instruction). */
int ek_counter_available(void) { return 1; }

void ek_counter_init(void) {}

uint32_t ek_counter_read(void)
{
    uint32_t v;
    EK_CSR_READ(minstret, v);
    return v;
}

#elif defined(EK_COUNTER_ARM_GENERIC_TIMER)
/* Under QEMU icount, CNTVCT_EL0 is virtual time divided by the timer period. */
int ek_counter_available(void) { return 1; }

void ek_counter_init(void) {}

uint32_t ek_counter_read(void)
{
    uint64_t v;
    __asm__ volatile("isb\n mrs %0, cntvct_el0" : "=r"(v));
    return (uint32_t)v;
}

#elif defined(EK_COUNTER_DWT_CYCCNT)
/* Cycle counter of the Armv7-M / Armv8-M Data Watchpoint and Trace unit: core clock cycles.
 * Physical boards only (QEMU does not implement it). */
#define DEMCR REG32(0xE000EDFCu)
#define DWT_CTRL REG32(0xE0001000u)
#define DWT_CYCCNT REG32(0xE0001004u)
#define DWT_LAR REG32(0xE0001FB0u)

int ek_counter_available(void) { return 1; }

void ek_counter_init(void)
{
    DEMCR |= 1u << 24;      /* TRCENA: power the DWT */
    DWT_LAR = 0xC5ACCE55u;  /* unlock software access (Cortex-M7; write-ignored elsewhere) */
    DWT_CYCCNT = 0u;
    DWT_CTRL |= 1u;         /* CYCCNTENA */
}

uint32_t ek_counter_read(void) { return DWT_CYCCNT; }

#elif defined(EK_COUNTER_RISCV_MCYCLE)
/* RISC-V machine cycle counter, low word. */
int ek_counter_available(void) { return 1; }

void ek_counter_init(void) {}

uint32_t ek_counter_read(void)
{
    uint32_t v;
    EK_CSR_READ(mcycle, v);
    return v;
}

#elif defined(EK_COUNTER_ESP32C3_MPCCR)
/* ESP32-C3 has no mcycle: its performance counter CSRs mpcer (0x7E0, event mask), mpcmr
 * (0x7E1, mode) and mpccr (0x7E2, count) count CPU cycles when event bit 0 is selected. */
int ek_counter_available(void) { return 1; }

void ek_counter_init(void)
{
    __asm__ volatile(".option push\n"
                     ".option arch, +zicsr\n"
                     "csrwi 0x7E0, 1\n"
                     "csrwi 0x7E1, 1\n"
                     "csrwi 0x7E2, 0\n"
                     ".option pop\n");
}

uint32_t ek_counter_read(void)
{
    uint32_t v;
    __asm__ volatile(".option push\n"
                     ".option arch, +zicsr\n"
                     "csrr %0, 0x7E2\n"
                     ".option pop\n"
                     : "=r"(v));
    return v;
}

#else
int ek_counter_available(void) { return 0; }

void ek_counter_init(void) {}

uint32_t ek_counter_read(void) { return 0u; }
#endif
