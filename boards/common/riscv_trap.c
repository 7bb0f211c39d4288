/* Trap reporting for the RISC-V boards: any trap in the harness is fatal. */
#include <stdint.h>

#include "ek_platform.h"

#define READ_CSR(name)                                                                         \
    ({                                                                                         \
        uint32_t v_;                                                                           \
        __asm__ volatile(".option push\n.option arch, +zicsr\ncsrr %0, " #name "\n.option pop" \
                         : "=r"(v_));                                                          \
        v_;                                                                                    \
    })

static void put_field(const char *name, uint32_t value)
{
    ek_puts(" ");
    ek_puts(name);
    ek_puts("=");
    ek_put_hex(value);
}

static const char *cause_name(uint32_t cause)
{
    static const char *const names[] = {
        "InstructionMisaligned", "InstructionAccessFault", "IllegalInstruction", "Breakpoint",
        "LoadMisaligned",        "LoadAccessFault",        "StoreMisaligned",    "StoreAccessFault",
        "EnvCallU",              "EnvCallS",               "Reserved",           "EnvCallM",
    };
    if ((cause >> 31) != 0u) {
        return "Interrupt";
    }
    return cause < 12u ? names[cause] : "Exception";
}

/* Same line shape as the Cortex-M boards: "EK_FAULT <Kind> pc=... mcause=... mtval=...". */
_Noreturn void ek_trap_report(void)
{
    uint32_t cause = READ_CSR(mcause);
    ek_puts("EK_FAULT ");
    ek_puts(cause_name(cause));
    put_field("pc", READ_CSR(mepc));
    put_field("mcause", cause);
    put_field("mtval", READ_CSR(mtval));
    ek_puts("\n");
    ek_exit(EK_EXIT_FAULT);
}
