/* What the benchmark firmware (ek_bench_main.c) needs from a board: clock bring-up, a serial
 * port and a way to stop. Implemented by boards/<board>/board.c (clocks, pins, watchdogs) and
 * boards/common/app/ek_uart.c (one register-level driver per UART kind, chosen by EK_UART_*). */
#ifndef EK_BOARD_H
#define EK_BOARD_H

#include <stddef.h>
#include <stdint.h>

/* Clocks to the documented core frequency, watchdogs off, UART pins and peripheral clock on.
 * Weak default (nothing to do) for the QEMU boards. */
void ek_board_init(void);

void ek_uart_init(void);
void ek_uart_putc(char c);
int ek_uart_getc(void); /* blocks; returns 0..255 */

/* Cortex-M7 boards (boards/common/cortex_m7_cache.c): invalidate, then enable, the L1
 * instruction and data caches. Called from the board's ek_board_init. */
void ek_cortex_m7_caches_on(void);

#define EK_STR_(x) #x
#define EK_STR(x) EK_STR_(x)

#endif
