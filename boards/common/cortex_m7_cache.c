/* Cortex-M7 L1 instruction and data caches on (Armv7-M ARM: CCR, CCSIDR/CSSELR, ICIALLU, DCISW).
 * The data cache holds arbitrary lines after reset, so it is invalidated set by set and way by
 * way before it is enabled; the geometry comes from CCSIDR rather than being assumed. Flash
 * (the Code region) is write-through and SRAM write-back by the default memory map; peripherals
 * are Device memory and never cached, so the polled UART needs no cache maintenance. */
#include <stdint.h>

#include "ek_board.h"

#define REG32(addr) (*(volatile uint32_t *)(uintptr_t)(addr))
#define SCB_CCR REG32(0xE000ED14u)
#define SCB_CCSIDR REG32(0xE000ED80u)
#define SCB_CSSELR REG32(0xE000ED84u)
#define SCB_ICIALLU REG32(0xE000EF50u)
#define SCB_DCISW REG32(0xE000EF60u)
#define CCR_DC (1u << 16)
#define CCR_IC (1u << 17)

static void barrier(void)
{
    __asm__ volatile("dsb\n isb" ::: "memory");
}

void ek_cortex_m7_caches_on(void)
{
    if (!(SCB_CCR & CCR_IC)) {
        barrier();
        SCB_ICIALLU = 0u;
        barrier();
        SCB_CCR |= CCR_IC;
        barrier();
    }
    if (!(SCB_CCR & CCR_DC)) {
        SCB_CSSELR = 0u; /* level 1, data */
        barrier();
        const uint32_t ccsidr = SCB_CCSIDR;
        const uint32_t sets = ((ccsidr >> 13) & 0x7FFFu) + 1u;
        const uint32_t ways = ((ccsidr >> 3) & 0x3FFu) + 1u;
        const uint32_t line_shift = (ccsidr & 7u) + 4u; /* log2 of the line's bytes */
        uint32_t way_shift = 32u;                        /* 32 - ceil(log2(ways)) */
        for (uint32_t w = ways - 1u; w != 0u; w >>= 1) {
            way_shift--;
        }
        for (uint32_t set = 0u; set < sets; set++) {
            for (uint32_t way = 0u; way < ways; way++) {
                SCB_DCISW = (way_shift < 32u ? way << way_shift : 0u) | (set << line_shift);
            }
        }
        barrier();
        SCB_CCR |= CCR_DC;
        barrier();
    }
}
