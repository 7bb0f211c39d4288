/* ESP32-C3 bring-up for the benchmark firmware: the ROM loader leaves the RTC, timer-group and
 * super watchdogs running, which would reset the chip in the middle of a long benchmark, so
 * they are switched off; then the CPU moves from the 40 MHz crystal to 160 MHz from the 480 MHz
 * PLL (APB 80 MHz). UART0 keeps the pins the ROM set up. ESP32-C3 Technical Reference Manual:
 * "Reset and Clock" (CPU_CLK source and divider tables, SYSTEM_CPU_PER_CONF_REG and
 * SYSTEM_SYSCLK_CONF_REG) and the watchdog chapters; no IDF code is used.
 *
 * Written from the manual and checked by building only: it has not run on a board. */
#include <stdint.h>

#include "ek_board.h"

#define REG32(addr) (*(volatile uint32_t *)(uintptr_t)(addr))

#define WDT_KEY 0x50D83AA1u
#define RTC_CNTL 0x60008000u
#define TIMG0 0x6001F000u
#define TIMG1 0x60020000u
#define SYSTEM_CPU_PER_CONF REG32(0x600C0008u)
#define SYSTEM_SYSCLK_CONF REG32(0x600C0058u)
#define UART0_STATUS REG32(0x6000001Cu)

static void timg_wdt_off(uint32_t base)
{
    REG32(base + 0x64u) = WDT_KEY; /* WDTWPROTECT */
    REG32(base + 0x48u) = 1u << 22; /* WDTCONFIG0: disabled, CONF_UPDATE_EN latches it */
    REG32(base + 0x64u) = 0u;
}

/* The BBPLL itself is not programmed: its analog settings sit behind an internal I2C bus the
 * TRM does not document. This relies on the ROM handing over with the PLL running at 480 MHz,
 * which the USB Serial/JTAG controller (usable from reset, its 48 MHz taken from this PLL)
 * implies but the TRM does not state. If that did not hold, UART0 (on APB, its divisor computed
 * for 80 MHz) would be unreadable and the host would report no answer, rather than
 * milliseconds at a wrong clock. */
static void cpu_160mhz(void)
{
    /* Let the ROM's last boot message leave the TX FIFO before its bit clock changes. */
    for (uint32_t n = 0; n < (1u << 20) && ((UART0_STATUS >> 16) & 0x3FFu) != 0u; n++) {
    }
    /* PLL_FREQ_SEL (bit 2) = 480 MHz, CPUPERIOD_SEL [1:0] = 1: 160 MHz CPU, 80 MHz APB. */
    SYSTEM_CPU_PER_CONF = (SYSTEM_CPU_PER_CONF & ~0x7u) | (1u << 2) | 1u;
    /* PRE_DIV_CNT [9:0] only divides the crystal and RC sources; cleared as the PLL path
     * expects. SOC_CLK_SEL [11:10] = 1 selects the PLL. */
    SYSTEM_SYSCLK_CONF = (SYSTEM_SYSCLK_CONF & ~0xFFFu) | (1u << 10);
}

void ek_board_init(void)
{
    REG32(RTC_CNTL + 0xA8u) = WDT_KEY; /* RTC_CNTL_WDTWPROTECT */
    REG32(RTC_CNTL + 0x90u) = 0u;      /* RTC_CNTL_WDTCONFIG0: off */
    REG32(RTC_CNTL + 0xA8u) = 0u;
    REG32(RTC_CNTL + 0xB0u) = 0x8F1D312Au;   /* RTC_CNTL_SWD_WPROTECT */
    REG32(RTC_CNTL + 0xACu) |= 1u << 30;     /* SWD_CONF: SWD_DISABLE */
    REG32(RTC_CNTL + 0xB0u) = 0u;
    timg_wdt_off(TIMG0);
    timg_wdt_off(TIMG1);
    cpu_160mhz();
}
