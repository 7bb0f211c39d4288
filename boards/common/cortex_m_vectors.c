/* Vector table, reset entry and fault reporting for the Cortex-M boards. */
#include <stdint.h>

#include "ek_platform.h"

extern uint32_t __ek_stack_top[];
_Noreturn void ek_cstart(void);
void _start(void);
void ek_nmi_entry(void);
void ek_hardfault_entry(void);
void ek_memmanage_entry(void);
void ek_busfault_entry(void);
void ek_usagefault_entry(void);
void ek_securefault_entry(void);
void ek_other_entry(void);

#define REG32(addr) (*(volatile uint32_t *)(uintptr_t)(addr))

/* Only the 16 architectural entries: the harness enables no peripheral interrupts. */
__attribute__((section(".ek_vectors"), used)) void *const ek_vectors[16] = {
    __ek_stack_top,
    (void *)_start,
    (void *)ek_nmi_entry,
    (void *)ek_hardfault_entry,
    (void *)ek_memmanage_entry,
    (void *)ek_busfault_entry,
    (void *)ek_usagefault_entry,
    (void *)ek_securefault_entry,
    0,
    0,
    0,
    (void *)ek_other_entry, /* SVCall */
    (void *)ek_other_entry, /* DebugMonitor */
    0,
    (void *)ek_other_entry, /* PendSV */
    (void *)ek_other_entry, /* SysTick */
};

/* The FPU / MVE must be on before any C runs: GCC may vectorise the startup copy loops. */
__attribute__((naked, section(".text.ek_start"))) void _start(void)
{
#if defined(__ARM_ARCH_8M_MAIN__) || defined(__ARM_ARCH_8_1M_MAIN__)
    /* Armv8-M checks the stack limit in hardware: an overflow becomes a reported STKOF fault
     * instead of silently corrupting the I/O pool and .bss below the stack. */
    __asm__ volatile("ldr r0, =__ek_stack_limit\n"
                     "msr msplim, r0\n");
#endif
#if defined(__ARM_FP) || defined(__ARM_FEATURE_MVE)
    __asm__ volatile(".syntax unified\n"
                     "ldr r0, =0xE000ED88\n" /* CPACR: full access to CP10/CP11 */
                     "ldr r1, [r0]\n"
                     "ldr r2, =0x00F00000\n"
                     "orrs r1, r1, r2\n"
                     "str r1, [r0]\n"
                     "dsb\n"
                     "isb\n"
                     "b ek_cstart\n"
                     ".ltorg\n");
#else
    __asm__ volatile(".syntax unified\n"
                     "ldr r0, =ek_cstart\n"
                     "bx r0\n"
                     ".ltorg\n");
#endif
}

enum fault_kind { FK_NMI, FK_HARD, FK_MEMMANAGE, FK_BUS, FK_USAGE, FK_SECURE, FK_OTHER };

/* Each entry passes the exception frame (we never leave the main stack) and its kind to C;
 * ldr/bx rather than b because Armv6-M branches only reach 2 KB. */
#define FAULT_ENTRY(fn, kind)                                                                  \
    __attribute__((naked)) void fn(void)                                                       \
    {                                                                                          \
        __asm__ volatile(".syntax unified\n"                                                   \
                         "mrs r0, msp\n"                                                       \
                         "mov r1, lr\n"                                                        \
                         "movs r2, #" #kind "\n"                                               \
                         "ldr r3, =ek_fault_report\n"                                          \
                         "bx r3\n"                                                             \
                         ".ltorg\n");                                                          \
    }

FAULT_ENTRY(ek_nmi_entry, 0)
FAULT_ENTRY(ek_hardfault_entry, 1)
FAULT_ENTRY(ek_memmanage_entry, 2)
FAULT_ENTRY(ek_busfault_entry, 3)
FAULT_ENTRY(ek_usagefault_entry, 4)
FAULT_ENTRY(ek_securefault_entry, 5)
FAULT_ENTRY(ek_other_entry, 6)

static void put_field(const char *name, uint32_t value)
{
    ek_puts(" ");
    ek_puts(name);
    ek_puts("=");
    ek_put_hex(value);
}

/* One line the runner can parse: "EK_FAULT <Kind> pc=... lr=... [cfsr=... hfsr=... ...]". */
_Noreturn void ek_fault_report(const uint32_t *frame, uint32_t exc_return, uint32_t kind)
{
    static const char *const names[] = {"NMI",        "HardFault",   "MemManage", "BusFault",
                                        "UsageFault", "SecureFault", "UnexpectedException"};
    ek_puts("EK_FAULT ");
    ek_puts(names[kind < 7u ? kind : 6u]);
    put_field("pc", frame[6]);
    put_field("lr", frame[5]);
    put_field("xpsr", frame[7]);
    put_field("exc_return", exc_return);
#if !defined(__ARM_ARCH_6M__)
    put_field("cfsr", REG32(0xE000ED28u));
    put_field("hfsr", REG32(0xE000ED2Cu));
    put_field("mmfar", REG32(0xE000ED34u));
    put_field("bfar", REG32(0xE000ED38u));
#endif
#if defined(__ARM_ARCH_8M_MAIN__) || defined(__ARM_ARCH_8_1M_MAIN__)
    put_field("sfsr", REG32(0xE000EDE4u));
#endif
    ek_puts("\n");
    ek_exit(EK_EXIT_FAULT);
}
