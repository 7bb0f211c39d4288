/* Services the firmware main needs from the machine it runs on: file and console I/O, exit,
 * a scratch memory pool, and a free-running tick counter. Implemented once for semihosted
 * bare-metal boards (ek_semihost.c) and once for hosted targets (ek_stdio.c). */
#ifndef EK_PLATFORM_H
#define EK_PLATFORM_H

#include <stddef.h>
#include <stdint.h>

/* Exit codes; the runner recognises EK_EXIT_FAULT (edgekit/runners/emulated.py), the others are
 * explained by the EK_ERROR / EK_MODEL_ERROR line printed before exiting. */
#define EK_EXIT_OK 0
#define EK_EXIT_IO 2
#define EK_EXIT_MODEL 3
#define EK_EXIT_FAULT 13

typedef intptr_t ek_file;

ek_file ek_open_read(const char *name);  /* < 0 on failure */
ek_file ek_open_write(const char *name); /* < 0 on failure */
/* Both transfer exactly n bytes or report failure (non-zero). */
int ek_read(ek_file f, void *buf, size_t n);
int ek_write(ek_file f, const void *buf, size_t n);
void ek_close(ek_file f);

void ek_puts(const char *s);
void ek_put_u32(uint32_t v);
void ek_put_hex(uint32_t v);
_Noreturn void ek_exit(int code);

/* Bump allocator over the RAM left after .bss (bare metal) or malloc (hosted); NULL when full. */
void *ek_alloc(size_t n);

/* Free-running counter, monotonic modulo 2^32. Under QEMU icount its rate is a fixed multiple
 * of the executed-instruction count; the runner converts ticks to instructions. */
int ek_counter_available(void);
void ek_counter_init(void);
uint32_t ek_counter_read(void);

#endif
