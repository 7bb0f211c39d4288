/* NUCLEO-H7A3ZI-Q bring-up for the benchmark firmware: the direct-SMPS supply the -Q board is
 * wired for, voltage scale 0, the core at 280 MHz from PLL1, the Cortex-M7 instruction and data
 * caches (boards/common/cortex_m7_cache.c), and USART3 on PD8/PD9 (the ST-LINK virtual COM
 * port). Register offsets and sequences follow the STM32H7A3/7B3 reference manual (RM0455: PWR
 * "Power supply configuration" and "Voltage scaling", RCC "Clock tree", FLASH read latency); no
 * vendor header is used.
 *
 * Written from the manual and checked by building only: it has not run on a board.
 *
 * Every wait is bounded. A step that never completes leaves the core on the 64 MHz HSI with the
 * bus prescalers at 1; USART3's divisor assumes the 140 MHz APB1 clock of the finished set-up,
 * so the host then gets no readable answer rather than milliseconds scaled by the wrong clock. */
#include <stdint.h>

#include "ek_board.h"

#define REG32(addr) (*(volatile uint32_t *)(uintptr_t)(addr))

#define PWR 0x58024800u
#define PWR_CSR1 REG32(PWR + 0x04u)
#define PWR_CR3 REG32(PWR + 0x0Cu)
#define PWR_SRDCR REG32(PWR + 0x18u)

#define RCC 0x58024400u
#define RCC_CR REG32(RCC + 0x000u)
#define RCC_CFGR REG32(RCC + 0x010u)
#define RCC_CDCFGR1 REG32(RCC + 0x018u)
#define RCC_CDCFGR2 REG32(RCC + 0x01Cu)
#define RCC_SRDCFGR REG32(RCC + 0x020u)
#define RCC_PLLCKSELR REG32(RCC + 0x028u)
#define RCC_PLLCFGR REG32(RCC + 0x02Cu)
#define RCC_PLL1DIVR REG32(RCC + 0x030u)
#define RCC_AHB4ENR REG32(RCC + 0x0E0u)
#define RCC_APB1LENR REG32(RCC + 0x0E8u)

#define FLASH_ACR REG32(0x52002000u)
#define GPIOD 0x58020C00u

#define CR_HSEON (1u << 16)
#define CR_HSERDY (1u << 17)
#define CR_HSEBYP (1u << 18)
#define CR_PLL1ON (1u << 24)
#define CR_PLL1RDY (1u << 25)
#define CSR1_ACTVOSRDY (1u << 13)
#define SRDCR_VOSRDY (1u << 13)
#define VOS_SCALE1 2u /* RM0455 encodes VOS0 as 11 and VOS1 as 10: the reverse of the H743 */
#define VOS_SCALE0 3u

/* Polls a register until (reg & mask) == want; about 1 M polls is tens of milliseconds at
 * 64 MHz, far beyond any ready time the manual gives. Returns 0 on a timeout. */
static int wait_bits(volatile uint32_t *reg, uint32_t mask, uint32_t want)
{
    for (uint32_t n = 0; n < (1u << 20); n++) {
        if ((*reg & mask) == want) {
            return 1;
        }
    }
    return 0;
}

static int set_vos(uint32_t scale)
{
    PWR_SRDCR = (PWR_SRDCR & ~(3u << 14)) | (scale << 14);
    return wait_bits(&PWR_SRDCR, SRDCR_VOSRDY, SRDCR_VOSRDY);
}

/* 2 MHz into PLL1 either way: the ST-LINK's 8 MHz MCO on OSC_IN (HSE bypass, the accuracy of
 * the ST-LINK crystal) when the board delivers it, else the 64 MHz HSI. */
static void select_pll_input(void)
{
    RCC_CR |= CR_HSEBYP; /* bypass must be chosen while HSE is off */
    RCC_CR |= CR_HSEON;
    if (wait_bits(&RCC_CR, CR_HSERDY, CR_HSERDY)) {
        RCC_PLLCKSELR = (RCC_PLLCKSELR & ~((0x3Fu << 4) | 3u)) | (4u << 4) | 2u; /* HSE / 4 */
        return;
    }
    RCC_CR &= ~CR_HSEON;
    RCC_PLLCKSELR = (RCC_PLLCKSELR & ~((0x3Fu << 4) | 3u)) | (32u << 4) | 0u; /* HSI / 32 */
}

static int clock_280mhz(void)
{
    /* The supply is chosen once after reset and locks: direct SMPS (LDO off, no bypass), as
     * the -Q board is wired. The regulator ignores voltage-scale requests until ACTVOSRDY. */
    PWR_CR3 = (PWR_CR3 & ~0x7u) | (1u << 2);
    if (!wait_bits(&PWR_CSR1, CSR1_ACTVOSRDY, CSR1_ACTVOSRDY)) {
        return 0;
    }
    /* 280 MHz needs VOS0, and the regulator only moves to VOS0 from VOS1. */
    if (!set_vos(VOS_SCALE1) || !set_vos(VOS_SCALE0)) {
        return 0;
    }
    /* Wait states before the faster clock: 6 for a 280 MHz AXI clock at VOS0 (RM0455 flash
     * read-latency table). WRHIGHFREQ only paces flash programming, which this image never
     * does, so it keeps its reset value. */
    FLASH_ACR = (FLASH_ACR & ~0xFu) | 6u;
    if (!wait_bits(&FLASH_ACR, 0xFu, 6u)) {
        return 0;
    }

    /* PLL1: 2 MHz reference (input range 2-4 MHz), wide VCO at 2 MHz * 280 = 560 MHz,
     * P = 2 gives 280 MHz. DIVM1 is written as its value, N/P/Q/R as value - 1. */
    RCC_CR &= ~CR_PLL1ON;
    if (!wait_bits(&RCC_CR, CR_PLL1RDY, 0u)) {
        return 0;
    }
    select_pll_input();
    RCC_PLLCFGR = (RCC_PLLCFGR & ~0xFu) | (1u << 2) /* PLL1RGE 2-4 MHz, VCOSEL wide, no frac */
                  | (1u << 16);                     /* DIVP1EN */
    RCC_PLL1DIVR = (279u << 0) | (1u << 9) | (1u << 16) | (1u << 24); /* N 280, P Q R 2 */
    RCC_CR |= CR_PLL1ON;
    if (!wait_bits(&RCC_CR, CR_PLL1RDY, CR_PLL1RDY)) {
        return 0;
    }

    /* Bus limits at VOS0: CPU and AXI/AHB 280 MHz, every APB 140 MHz. Set before the switch
     * so no bus ever runs above its limit. */
    RCC_CDCFGR1 = (RCC_CDCFGR1 & ~0xFFFu) | (4u << 4); /* CDCPRE 1, HPRE 1, CDPPRE (APB3) 2 */
    RCC_CDCFGR2 = (RCC_CDCFGR2 & ~0x770u) | (4u << 4) | (4u << 8); /* APB1, APB2 / 2 */
    RCC_SRDCFGR = (RCC_SRDCFGR & ~0x70u) | (4u << 4);               /* APB4 / 2 */

    RCC_CFGR = (RCC_CFGR & ~0x7u) | 3u; /* SW = PLL1 */
    return wait_bits(&RCC_CFGR, 0x7u << 3, 3u << 3);
}

void ek_board_init(void)
{
    (void)clock_280mhz(); /* a failure is visible on the serial port (see the top comment) */

    /* Weights are read from flash at 6 wait states at 280 MHz: without the D-cache every weight
     * load pays them. */
    ek_cortex_m7_caches_on();

    RCC_AHB4ENR |= 1u << 3;   /* GPIODEN */
    RCC_APB1LENR |= 1u << 18; /* USART3EN; its kernel clock stays rcc_pclk1 (reset choice) */
    (void)RCC_APB1LENR;

    /* PD8 = USART3_TX, PD9 = USART3_RX: alternate function 7. */
    REG32(GPIOD + 0x00u) = (REG32(GPIOD + 0x00u) & ~((3u << 16) | (3u << 18))) | (2u << 16) | (2u << 18);
    REG32(GPIOD + 0x24u) = (REG32(GPIOD + 0x24u) & ~0xFFu) | 0x77u;
}
