/* nRF5340 DK (application core, Secure) bring-up for the benchmark firmware: HFXO as the clock
 * source, the core clock divider at 1 (128 MHz) and the instruction cache. UARTE0 pins are
 * selected by ek_uart.c. nRF5340 Product Specification; no vendor header is used. */
#include <stdint.h>

#include "ek_board.h"

#define REG32(addr) (*(volatile uint32_t *)(uintptr_t)(addr))

#define CLOCK_S 0x50005000u
#define CACHE_S_ENABLE REG32(0x50001000u + 0x500u)

void ek_board_init(void)
{
    REG32(CLOCK_S + 0x100u) = 0u; /* EVENTS_HFCLKSTARTED */
    REG32(CLOCK_S + 0x000u) = 1u; /* TASKS_HFCLKSTART */
    while (REG32(CLOCK_S + 0x100u) == 0u) {
    }
    REG32(CLOCK_S + 0x558u) = 0u; /* HFCLKCTRL: HCLK = 128 MHz (divide by 1) */
    CACHE_S_ENABLE = 1u;
}
