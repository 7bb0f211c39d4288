/* ESP32-C3 bring-up for the benchmark firmware: the ROM loader leaves the RTC, timer-group and
 * super watchdogs running, which would reset the chip in the middle of a long benchmark, so
 * they are switched off. The CPU stays on the 40 MHz crystal clock; UART0 keeps the pins the
 * ROM set up. ESP32-C3 Technical Reference Manual (watchdog timers); no IDF code is used. */
#include <stdint.h>

#include "ek_board.h"

#define REG32(addr) (*(volatile uint32_t *)(uintptr_t)(addr))

#define WDT_KEY 0x50D83AA1u
#define RTC_CNTL 0x60008000u
#define TIMG0 0x6001F000u
#define TIMG1 0x60020000u

static void timg_wdt_off(uint32_t base)
{
    REG32(base + 0x64u) = WDT_KEY; /* WDTWPROTECT */
    REG32(base + 0x48u) = 1u << 22; /* WDTCONFIG0: disabled, CONF_UPDATE_EN latches it */
    REG32(base + 0x64u) = 0u;
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
}
