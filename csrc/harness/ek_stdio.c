/* Platform services for hosted targets (the build machine, or Linux user-mode emulation). */
#include <stdio.h>
#include <stdlib.h>

#include "ek_platform.h"

static ek_file open_mode(const char *name, const char *mode)
{
    FILE *f = fopen(name, mode);
    return f == NULL ? -1 : (ek_file)(intptr_t)f;
}

ek_file ek_open_read(const char *name) { return open_mode(name, "rb"); }

ek_file ek_open_write(const char *name) { return open_mode(name, "wb"); }

int ek_read(ek_file f, void *buf, size_t n)
{
    return n != 0u && fread(buf, 1, n, (FILE *)(intptr_t)f) != n;
}

int ek_write(ek_file f, const void *buf, size_t n)
{
    return n != 0u && fwrite(buf, 1, n, (FILE *)(intptr_t)f) != n;
}

void ek_close(ek_file f) { (void)fclose((FILE *)(intptr_t)f); }

void ek_puts(const char *s)
{
    (void)fputs(s, stderr);
}

_Noreturn void ek_exit(int code)
{
    (void)fflush(NULL);
    exit(code);
}

void *ek_alloc(size_t n)
{
    /* 64-byte alignment matches the strictest vector loads a kernel might assume. */
    size_t rounded = (n + 63u) & ~(size_t)63u;
    return aligned_alloc(64, rounded == 0u ? 64u : rounded);
}

/* Hosted targets have no instruction-exact counter (user-mode QEMU has no icount). */
int ek_counter_available(void) { return 0; }

void ek_counter_init(void) {}

uint32_t ek_counter_read(void) { return 0u; }
