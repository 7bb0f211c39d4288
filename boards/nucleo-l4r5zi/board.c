/* NUCLEO-L4R5ZI bring-up for the benchmark firmware: 120 MHz from HSI16 through the main PLL in
 * range 1 boost mode, and LPUART1 on PG7/PG8 (the ST-LINK virtual COM port). Register offsets
 * and sequences follow the STM32L4+ reference manual (RM0432); no vendor header is used. */
#include <stdint.h>

#include "ek_board.h"

#define REG32(addr) (*(volatile uint32_t *)(uintptr_t)(addr))

#define RCC 0x40021000u
#define RCC_CR REG32(RCC + 0x00u)
#define RCC_CFGR REG32(RCC + 0x08u)
#define RCC_PLLCFGR REG32(RCC + 0x0Cu)
#define RCC_AHB2ENR REG32(RCC + 0x4Cu)
#define RCC_APB1ENR1 REG32(RCC + 0x58u)
#define RCC_APB1ENR2 REG32(RCC + 0x5Cu)
#define RCC_CCIPR REG32(RCC + 0x88u)
#define PWR_CR2 REG32(0x40007004u)
#define PWR_CR5 REG32(0x40007080u)
#define FLASH_ACR REG32(0x40022000u)
#define GPIOG 0x48001800u

static void delay(volatile uint32_t n)
{
    while (n--) {
    }
}

void ek_board_init(void)
{
    RCC_APB1ENR1 |= 1u << 28; /* PWREN */
    (void)RCC_APB1ENR1;

    /* HSI16 on: the PLL input and LPUART1's kernel clock. */
    RCC_CR |= 1u << 8;
    while (!(RCC_CR & (1u << 10))) {
    }

    /* Above 80 MHz: range 1 boost (R1MODE = 0), 5 flash wait states, and the switch goes
     * through AHB/2 for at least 1 us (RM0432, "dynamic voltage scaling management"). */
    PWR_CR5 &= ~(1u << 8);
    FLASH_ACR = (FLASH_ACR & ~0xFu) | 5u | (1u << 8) | (1u << 9) | (1u << 10); /* +PRFTEN ICEN DCEN */
    while ((FLASH_ACR & 0xFu) != 5u) {
    }

    /* PLL: HSI16 / M=1 * N=15 = 240 MHz VCO, / R=2 = 120 MHz on PLLCLK. */
    RCC_CR &= ~(1u << 24);
    while (RCC_CR & (1u << 25)) {
    }
    RCC_PLLCFGR = 2u /* PLLSRC = HSI16 */ | (0u << 4) /* PLLM = 1 */ | (15u << 8) /* PLLN */ |
                  (0u << 25) /* PLLR = 2 */ | (1u << 24) /* PLLREN */;
    RCC_CR |= 1u << 24;
    while (!(RCC_CR & (1u << 25))) {
    }
    RCC_CFGR = (RCC_CFGR & ~0xF0u) | (8u << 4); /* HPRE = /2 */
    RCC_CFGR = (RCC_CFGR & ~3u) | 3u;           /* SW = PLL */
    while (((RCC_CFGR >> 2) & 3u) != 3u) {
    }
    delay(200);
    RCC_CFGR &= ~0xF0u; /* HPRE = /1: 120 MHz */

    /* Port G is powered from VDDIO2, which is isolated until IOSV is set. */
    PWR_CR2 |= 1u << 9;
    RCC_AHB2ENR |= 1u << 6; /* GPIOGEN */
    RCC_APB1ENR2 |= 1u;     /* LPUART1EN */
    RCC_CCIPR = (RCC_CCIPR & ~(3u << 10)) | (2u << 10); /* LPUART1SEL = HSI16 */
    (void)RCC_APB1ENR2;

    /* PG7 = LPUART1_TX, PG8 = LPUART1_RX: alternate function 8. */
    REG32(GPIOG + 0x00u) = (REG32(GPIOG + 0x00u) & ~((3u << 14) | (3u << 16))) | (2u << 14) | (2u << 16);
    REG32(GPIOG + 0x20u) = (REG32(GPIOG + 0x20u) & ~(0xFu << 28)) | (8u << 28);
    REG32(GPIOG + 0x24u) = (REG32(GPIOG + 0x24u) & ~0xFu) | 8u;
}
