/* nRF52840 DK bring-up for the benchmark firmware: the 64 MHz crystal oscillator (HFXO) as the
 * high-frequency clock source, so the UART baud rate is exact, and the flash instruction cache.
 * UARTE0 pins are selected by ek_uart.c. nRF52840 Product Specification; no vendor header. */
#include <stdint.h>

#include "ek_board.h"

#define REG32(addr) (*(volatile uint32_t *)(uintptr_t)(addr))

#define CLOCK 0x40000000u
#define NVMC_ICACHECNF REG32(0x4001E540u)

void ek_board_init(void)
{
    REG32(CLOCK + 0x100u) = 0u; /* EVENTS_HFCLKSTARTED */
    REG32(CLOCK + 0x000u) = 1u; /* TASKS_HFCLKSTART */
    while (REG32(CLOCK + 0x100u) == 0u) {
    }
    NVMC_ICACHECNF = 1u; /* CACHEEN */
}
