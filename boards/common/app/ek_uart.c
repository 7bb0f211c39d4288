/* Register-level UART drivers for the benchmark firmware, polled, 8N1, no interrupts. The build
 * defines exactly one EK_UART_<KIND> from the board's [uart] table, with EK_UART_BASE,
 * EK_UART_BAUD and (where the divider is computed here) EK_UART_CLOCK_HZ. Registers are written
 * from the vendors' reference manuals; no vendor header is used. Pins and the peripheral's bus
 * clock are set up by the board's ek_board_init() before ek_uart_init() runs. Also provides
 * ek_puts/ek_exit for the shared startup and fault code. */
#include "ek_board.h"
#include "ek_platform.h"

#define REG32(off) (*(volatile uint32_t *)(uintptr_t)(EK_UART_BASE + (off)))

#if defined(EK_UART_CMSDK_UART)
/* Arm CMSDK APB UART: DATA 0x0, STATE 0x4 (bit0 TX full, bit1 RX full), CTRL 0x8, BAUDDIV 0x10. */
void ek_uart_init(void)
{
    REG32(0x10) = EK_UART_CLOCK_HZ / EK_UART_BAUD;
    REG32(0x8) = 3u; /* TX and RX enable */
}
void ek_uart_putc(char c)
{
    while (REG32(0x4) & 1u) {
    }
    REG32(0x0) = (uint8_t)c;
}
int ek_uart_getc(void)
{
    while (!(REG32(0x4) & 2u)) {
    }
    return (int)(REG32(0x0) & 0xFFu);
}

#elif defined(EK_UART_STM32_USART) || defined(EK_UART_STM32_LPUART)
/* STM32 USART/LPUART (L4, H7): CR1 0x00, BRR 0x0C, ISR 0x1C, ICR 0x20, RDR 0x24, TDR 0x28. */
void ek_uart_init(void)
{
    REG32(0x00) = 0u;
#if defined(EK_UART_STM32_LPUART)
    REG32(0x0C) = (uint32_t)((256ull * EK_UART_CLOCK_HZ + EK_UART_BAUD / 2) / EK_UART_BAUD);
#else
    REG32(0x0C) = (EK_UART_CLOCK_HZ + EK_UART_BAUD / 2) / EK_UART_BAUD; /* oversampling 16 */
#endif
    REG32(0x00) = (1u << 3) | (1u << 2) | 1u; /* TE, RE, UE */
}
void ek_uart_putc(char c)
{
    while (!(REG32(0x1C) & (1u << 7))) { /* TXE */
    }
    REG32(0x28) = (uint8_t)c;
}
int ek_uart_getc(void)
{
    for (;;) {
        uint32_t isr = REG32(0x1C);
        if (isr & (1u << 5)) { /* RXNE */
            return (int)(REG32(0x24) & 0xFFu);
        }
        if (isr & 0xFu) { /* PE, FE, NE, ORE: clear and keep waiting */
            REG32(0x20) = 0xFu;
        }
    }
}

#elif defined(EK_UART_NRF_UARTE)
/* Nordic UARTE (EasyDMA): bytes move through RAM buffers. TASKS_STARTRX 0x000, TASKS_STARTTX
 * 0x008, EVENTS_ENDRX 0x110, EVENTS_ENDTX 0x120, ENABLE 0x500, PSEL.TXD 0x50C, PSEL.RXD 0x514,
 * BAUDRATE 0x524, RXD.PTR 0x534, RXD.MAXCNT 0x538, TXD.PTR 0x544, TXD.MAXCNT 0x548. */
static volatile uint8_t tx_byte;
static volatile uint8_t rx_byte;

static uint32_t baud_word(uint32_t baud)
{
    switch (baud) {
    case 1000000u:
        return 0x10000000u;
    case 460800u:
        return 0x07400000u;
    case 230400u:
        return 0x03B00000u;
    default:
        return 0x01D60000u; /* 115200 (UARTE value) */
    }
}

void ek_uart_init(void)
{
    REG32(0x50C) = EK_UART_TX_PIN;
    REG32(0x514) = EK_UART_RX_PIN;
    REG32(0x524) = baud_word(EK_UART_BAUD);
    REG32(0x500) = 8u; /* enable UARTE */
}
void ek_uart_putc(char c)
{
    tx_byte = (uint8_t)c;
    REG32(0x544) = (uint32_t)(uintptr_t)&tx_byte;
    REG32(0x548) = 1u;
    REG32(0x120) = 0u;
    REG32(0x008) = 1u;
    while (REG32(0x120) == 0u) {
    }
}
int ek_uart_getc(void)
{
    /* One-byte DMA transfers; the receiver keeps running between them and buffers in its FIFO. */
    REG32(0x534) = (uint32_t)(uintptr_t)&rx_byte;
    REG32(0x538) = 1u;
    REG32(0x110) = 0u;
    REG32(0x000) = 1u;
    while (REG32(0x110) == 0u) {
    }
    return rx_byte;
}

#elif defined(EK_UART_PL011)
/* Arm PL011 (RP2350 UART0): DR 0x00, FR 0x18 (RXFE bit4, TXFF bit5), IBRD 0x24, FBRD 0x28,
 * LCR_H 0x2C, CR 0x30. */
void ek_uart_init(void)
{
    uint32_t div = (uint32_t)((8ull * EK_UART_CLOCK_HZ) / EK_UART_BAUD); /* 128ths */
    uint32_t ibrd = div >> 7;
    uint32_t fbrd = ((div & 0x7Fu) + 1u) / 2u;
    REG32(0x30) = 0u;
    REG32(0x24) = ibrd;
    REG32(0x28) = fbrd;
    REG32(0x2C) = (3u << 5) | (1u << 4); /* 8 bits, FIFOs on; also latches the divisors */
    REG32(0x30) = (1u << 9) | (1u << 8) | 1u; /* RXE, TXE, UARTEN */
}
void ek_uart_putc(char c)
{
    while (REG32(0x18) & (1u << 5)) {
    }
    REG32(0x00) = (uint8_t)c;
}
int ek_uart_getc(void)
{
    while (REG32(0x18) & (1u << 4)) {
    }
    return (int)(REG32(0x00) & 0xFFu);
}

#elif defined(EK_UART_ESP32_UART)
/* ESP32-C3 UART0 (TRM ch. 26): FIFO 0x00, STATUS 0x1C (RXFIFO_CNT [9:0], TXFIFO_CNT [25:16]),
 * CLKDIV 0x14 (integer [11:0], fraction [23:20]), CLK_CONF 0x78, ID 0x80 (bit31 REG_UPDATE).
 * The UART runs from the 80 MHz APB clock once ek_board_init() has switched to the PLL. */
void ek_uart_init(void)
{
    uint32_t div16 = (uint32_t)((16ull * EK_UART_CLOCK_HZ) / EK_UART_BAUD);
    REG32(0x14) = ((div16 & 0xFu) << 20) | (div16 >> 4);
    REG32(0x80) |= 1u << 31; /* sync the new configuration into the UART core clock domain */
    while (REG32(0x80) & (1u << 31)) {
    }
}
void ek_uart_putc(char c)
{
    while (((REG32(0x1C) >> 16) & 0x3FFu) >= 126u) {
    }
    REG32(0x00) = (uint8_t)c;
}
int ek_uart_getc(void)
{
    while ((REG32(0x1C) & 0x3FFu) == 0u) {
    }
    return (int)(REG32(0x00) & 0xFFu);
}

#elif defined(EK_UART_SIFIVE_UART)
/* SiFive UART (FE310-G002 manual ch. 18): txdata 0x00 (bit31 full), rxdata 0x04 (bit31 empty),
 * txctrl 0x08, rxctrl 0x0C, div 0x18 (baud = f / (div + 1)). */
void ek_uart_init(void)
{
    REG32(0x18) = (EK_UART_CLOCK_HZ + EK_UART_BAUD / 2) / EK_UART_BAUD - 1u;
    REG32(0x08) = 1u; /* txen, one stop bit */
    REG32(0x0C) = 1u; /* rxen */
}
void ek_uart_putc(char c)
{
    while (REG32(0x00) & (1u << 31)) {
    }
    REG32(0x00) = (uint8_t)c;
}
int ek_uart_getc(void)
{
    for (;;) {
        uint32_t v = REG32(0x04);
        if (!(v & (1u << 31))) {
            return (int)(v & 0xFFu);
        }
    }
}

#elif defined(EK_UART_NS16550)
/* 16550-compatible byte registers: RBR/THR 0, LCR 3, LSR 5 (DR bit0, THRE bit5). */
#define REG8(off) (*(volatile uint8_t *)(uintptr_t)(EK_UART_BASE + (off)))
void ek_uart_init(void) { REG8(3) = 3u; /* 8N1 */ }
void ek_uart_putc(char c)
{
    while (!(REG8(5) & 0x20u)) {
    }
    REG8(0) = (uint8_t)c;
}
int ek_uart_getc(void)
{
    while (!(REG8(5) & 1u)) {
    }
    return REG8(0);
}

#else
#error "ek_uart.c: define one EK_UART_<KIND> (the board's [uart] kind)"
#endif

void ek_puts(const char *s)
{
    while (*s != '\0') {
        if (*s == '\n') {
            ek_uart_putc('\r');
        }
        ek_uart_putc(*s++);
    }
}

/* Faults end here (cortex_m_vectors.c, riscv_trap.c): report and stop, the host sees the line. */
_Noreturn void ek_exit(int code)
{
    ek_puts("EK exit ");
    ek_put_u32((uint32_t)code);
    ek_puts("\n");
    for (;;) {
    }
}
