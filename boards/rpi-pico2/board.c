/* Raspberry Pi Pico 2 (RP2350: Arm core 0 in Secure state, or Hazard3 RISC-V core 0) bring-up
 * for the benchmark firmware: the IMAGE_DEF block the boot ROM needs, 150 MHz from the 12 MHz
 * crystal through PLL_SYS, clk_peri from clk_sys, and UART0 on GP0 (TX) / GP1 (RX). RP2350
 * datasheet (boot ROM, clocks, resets, IO and pads chapters); no SDK code or header is used. */
#include <stdint.h>

#include "ek_board.h"

#define REG32(addr) (*(volatile uint32_t *)(uintptr_t)(addr))
#define CLR(addr) (*(volatile uint32_t *)(uintptr_t)((addr) + 0x3000u)) /* atomic clear alias */

/* Minimum executable IMAGE_DEF (datasheet 5.9.5): block start marker, IMAGE_TYPE item (EXE,
 * RP2350; Arm Secure, or RISC-V for the Hazard3 cores, which the boot ROM then switches to),
 * LAST item, link to itself, end marker. */
#if defined(__riscv)
#define EK_IMAGE_TYPE 0x11010142u
#else
#define EK_IMAGE_TYPE 0x10210142u
#endif
__attribute__((section(".ek_boot_block"), used, aligned(4))) static const uint32_t image_def[5] = {
    0xFFFFDED3u, EK_IMAGE_TYPE, 0x000001FFu, 0x00000000u, 0xAB123579u};

#define RESETS 0x40020000u
#define RESET_IO_BANK0 (1u << 6)
#define RESET_PADS_BANK0 (1u << 9)
#define RESET_PLL_SYS (1u << 14)
#define RESET_UART0 (1u << 26)
#define CLOCKS 0x40010000u
#define CLK_REF_CTRL REG32(CLOCKS + 0x30u)
#define CLK_REF_SELECTED REG32(CLOCKS + 0x38u)
#define CLK_SYS_CTRL REG32(CLOCKS + 0x3Cu)
#define CLK_SYS_SELECTED REG32(CLOCKS + 0x44u)
#define CLK_PERI_CTRL REG32(CLOCKS + 0x48u)
#define XOSC 0x40048000u
#define PLL_SYS 0x40050000u
#define IO_BANK0 0x40028000u
#define PADS_BANK0 0x40038000u

static void unreset(uint32_t bits)
{
    CLR(RESETS + 0x0u) = bits;
    while ((REG32(RESETS + 0x8u) & bits) != bits) {
    }
}

void ek_board_init(void)
{
#if defined(__riscv)
    /* mcycle must count for the benchmark (mcountinhibit, privileged spec; CSR 0x320). */
    __asm__ volatile(".option push\n.option arch, +zicsr\ncsrw 0x320, zero\n.option pop");
#endif
    /* Run from the ring oscillator while the crystal and the PLL start. */
    CLK_SYS_CTRL &= ~1u; /* SRC = clk_ref */
    while (CLK_SYS_SELECTED != 1u) {
    }

    REG32(XOSC + 0x00u) = 0xAA0u;       /* FREQ_RANGE 1..15 MHz */
    REG32(XOSC + 0x0Cu) = 0xC4u;        /* STARTUP: ~16 ms at 12 MHz, generous */
    REG32(XOSC + 0x00u) |= 0xFABu << 12; /* ENABLE */
    while (!(REG32(XOSC + 0x04u) & (1u << 31))) { /* STABLE */
    }
    CLK_REF_CTRL = (CLK_REF_CTRL & ~3u) | 2u; /* SRC = xosc */
    while (CLK_REF_SELECTED != (1u << 2)) {
    }

    /* PLL_SYS: 12 MHz / 1 * 125 = 1500 MHz VCO, / 5 / 2 = 150 MHz. */
    REG32(RESETS + 0x0u) |= RESET_PLL_SYS; /* a clean PLL, whatever the boot ROM left */
    unreset(RESET_PLL_SYS);
    REG32(PLL_SYS + 0x0u) = 1u;   /* CS.REFDIV */
    REG32(PLL_SYS + 0x8u) = 125u; /* FBDIV_INT */
    CLR(PLL_SYS + 0x4u) = (1u << 0) | (1u << 5); /* PWR: PD, VCOPD off */
    while (!(REG32(PLL_SYS + 0x0u) & (1u << 31))) { /* LOCK */
    }
    REG32(PLL_SYS + 0xCu) = (5u << 16) | (2u << 12); /* PRIM: POSTDIV1, POSTDIV2 */
    CLR(PLL_SYS + 0x4u) = 1u << 3;                   /* POSTDIVPD off */

    CLK_SYS_CTRL &= ~(7u << 5); /* AUXSRC = pll_sys */
    CLK_SYS_CTRL |= 1u;         /* SRC = aux */
    while (CLK_SYS_SELECTED != 2u) {
    }
    CLK_PERI_CTRL = (1u << 11) | (0u << 5); /* ENABLE, AUXSRC = clk_sys */

    unreset(RESET_IO_BANK0 | RESET_PADS_BANK0 | RESET_UART0);
    /* GP0 = UART0 TX, GP1 = UART0 RX (FUNCSEL 2); pads: clear isolation, input on RX. */
    REG32(PADS_BANK0 + 0x04u) = 0x12u; /* TX: 4 mA, Schmitt, no pulls, ISO clear */
    REG32(PADS_BANK0 + 0x08u) = 0x4Au; /* RX: input enable, pull-up, Schmitt, ISO clear */
    REG32(IO_BANK0 + 0x04u) = 2u;
    REG32(IO_BANK0 + 0x0Cu) = 2u;
}
