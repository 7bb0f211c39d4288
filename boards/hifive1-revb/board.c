/* HiFive1 Rev B (FE310-G002) bring-up for the benchmark firmware: hfclk from the 16 MHz crystal
 * with the PLL bypassed (an exact, known rate for the UART divider), and UART0 routed to
 * GPIO16/17 through IOF0. FE310-G002 manual (PRCI, GPIO chapters); no SDK code is used. */
#include <stdint.h>

#include "ek_board.h"

#define REG32(addr) (*(volatile uint32_t *)(uintptr_t)(addr))

#define PRCI 0x10008000u
#define GPIO 0x10012000u

void ek_board_init(void)
{
    REG32(PRCI + 0x04u) |= 1u << 30; /* hfxosccfg: xoscen */
    while (!(REG32(PRCI + 0x04u) & (1u << 31))) { /* xoscrdy */
    }
    /* pllcfg: pllsel (hfclk from the PLL block), pllrefsel (crystal), pllbypass. */
    REG32(PRCI + 0x08u) = (1u << 16) | (1u << 17) | (1u << 18);
    REG32(PRCI + 0x0Cu) = 1u << 8; /* plloutdiv: divby1 */

    uint32_t pins = (1u << EK_UART_RX_PIN) | (1u << EK_UART_TX_PIN);
    REG32(GPIO + 0x3Cu) &= ~pins; /* iof_sel: IOF0 */
    REG32(GPIO + 0x38u) |= pins;  /* iof_en */
}
