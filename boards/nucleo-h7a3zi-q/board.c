/* NUCLEO-H7A3ZI-Q bring-up for the benchmark firmware: the SMPS supply configuration the -Q
 * board is wired for, the Cortex-M7 instruction cache, and USART3 on PD8/PD9 (the ST-LINK
 * virtual COM port). The core stays on the 64 MHz HSI: the PLL and VOS0 sequence for 280 MHz
 * is not written yet (cycle counts do not depend on it). RM0455; no vendor header is used. */
#include <stdint.h>

#include "ek_board.h"

#define REG32(addr) (*(volatile uint32_t *)(uintptr_t)(addr))

#define PWR_CR3 REG32(0x58024800u + 0x0Cu)
#define PWR_CSR1 REG32(0x58024800u + 0x04u)
#define RCC_AHB4ENR REG32(0x58024400u + 0x0E0u)
#define RCC_APB1LENR REG32(0x58024400u + 0x0E8u)
#define GPIOD 0x58020C00u
#define SCB_CCR REG32(0xE000ED14u)
#define SCB_ICIALLU REG32(0xE000EF50u)

void ek_board_init(void)
{
    /* Direct SMPS supply (SMPSEN, LDO off, no bypass); written once after reset, then wait for
     * the regulator to reach the voltage scaling level it reports. */
    PWR_CR3 = (PWR_CR3 & ~0x7u) | (1u << 2);
    while (!(PWR_CSR1 & (1u << 13))) { /* ACTVOSRDY */
    }

    /* I-cache on: invalidate, then enable (Armv7-M ARM, cache maintenance). */
    __asm__ volatile("dsb\n isb" ::: "memory");
    SCB_ICIALLU = 0u;
    __asm__ volatile("dsb\n isb" ::: "memory");
    SCB_CCR |= 1u << 17;
    __asm__ volatile("dsb\n isb" ::: "memory");

    RCC_AHB4ENR |= 1u << 3;   /* GPIODEN */
    RCC_APB1LENR |= 1u << 18; /* USART3EN */
    (void)RCC_APB1LENR;

    /* PD8 = USART3_TX, PD9 = USART3_RX: alternate function 7. */
    REG32(GPIOD + 0x00u) = (REG32(GPIOD + 0x00u) & ~((3u << 16) | (3u << 18))) | (2u << 16) | (2u << 18);
    REG32(GPIOD + 0x24u) = (REG32(GPIOD + 0x24u) & ~0xFFu) | 0x77u;
}
