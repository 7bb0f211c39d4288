/* Exception reporting for the AArch64 board: any exception in the harness is fatal. */
#include <stdint.h>

#include "ek_platform.h"

#define READ_SYSREG(name)                                                                      \
    ({                                                                                         \
        uint64_t v_;                                                                           \
        __asm__ volatile("mrs %0, " #name : "=r"(v_));                                         \
        v_;                                                                                    \
    })

static void put_field(const char *name, uint64_t value)
{
    ek_puts(" ");
    ek_puts(name);
    ek_puts("=");
    if ((value >> 32) != 0u) {
        ek_put_hex((uint32_t)(value >> 32));
        ek_puts("_");
    }
    ek_put_hex((uint32_t)value);
}

static const char *class_name(uint32_t ec)
{
    switch (ec) {
    case 0x00:
        return "UndefinedInstruction";
    case 0x07:
        return "FPAccessTrap";
    case 0x20:
    case 0x21:
        return "InstructionAbort";
    case 0x22:
        return "PCAlignmentFault";
    case 0x24:
    case 0x25:
        return "DataAbort";
    case 0x26:
        return "SPAlignmentFault";
    case 0x3C:
        return "Breakpoint";
    default:
        return "SynchronousException";
    }
}

/* Same line shape as the other boards: "EK_FAULT <Kind> pc=... esr=... far=...". */
_Noreturn void ek_aarch64_fault(uint64_t index)
{
    static const char *const async_names[] = {"IRQ", "FIQ", "SError"};
    uint64_t esr = READ_SYSREG(esr_el1);
    uint32_t kind = (uint32_t)(index & 3u);
    ek_puts("EK_FAULT ");
    ek_puts(kind == 0u ? class_name((uint32_t)(esr >> 26) & 0x3Fu) : async_names[kind - 1u]);
    put_field("pc", READ_SYSREG(elr_el1));
    put_field("esr", esr);
    put_field("far", READ_SYSREG(far_el1));
    put_field("vector", index);
    ek_puts("\n");
    ek_exit(EK_EXIT_FAULT);
}
