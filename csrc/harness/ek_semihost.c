/* Platform services over Arm semihosting, which QEMU implements for Arm M-profile, AArch64 and
 * RISC-V. File names are resolved relative to QEMU's working directory, so the runner only has
 * to start QEMU inside the folder holding ek_in.bin. */
#include "ek_platform.h"

#define SYS_OPEN 0x01
#define SYS_CLOSE 0x02
#define SYS_WRITE0 0x04
#define SYS_WRITE 0x05
#define SYS_READ 0x06
#define SYS_EXIT_EXTENDED 0x20
#define ADP_STOPPED_APPLICATION_EXIT 0x20026
#define OPEN_MODE_RB 1
#define OPEN_MODE_WB 5

#if defined(__riscv)
/* QEMU only recognises the ebreak as a semihosting call when it sits between these two
 * uncompressed marker instructions, all three in one page; otherwise the ebreak traps and the
 * firmware hangs. Aligning the function is not enough (its prologue comes first and once put
 * the markers across a page end), so the 12 bytes start a 16-byte block of their own. */
__attribute__((noinline)) static uintptr_t semihost(uintptr_t op, const void *arg)
{
    register uintptr_t a0 __asm__("a0") = op;
    register const void *a1 __asm__("a1") = arg;
    __asm__ volatile(".balign 16\n"
                     ".option push\n"
                     ".option norvc\n"
                     "slli x0, x0, 0x1f\n"
                     "ebreak\n"
                     "srai x0, x0, 7\n"
                     ".option pop\n"
                     : "+r"(a0)
                     : "r"(a1)
                     : "memory");
    return a0;
}
#elif defined(__aarch64__)
static uintptr_t semihost(uintptr_t op, const void *arg)
{
    register uintptr_t x0 __asm__("x0") = op;
    register const void *x1 __asm__("x1") = arg;
    __asm__ volatile("hlt 0xf000" : "+r"(x0) : "r"(x1) : "memory");
    return x0;
}
#elif defined(__arm__) && defined(__ARM_ARCH_PROFILE) && __ARM_ARCH_PROFILE == 'M'
static uintptr_t semihost(uintptr_t op, const void *arg)
{
    register uintptr_t r0 __asm__("r0") = op;
    register const void *r1 __asm__("r1") = arg;
    __asm__ volatile("bkpt 0xab" : "+r"(r0) : "r"(r1) : "memory");
    return r0;
}
#else
#error "ek_semihost.c: no semihosting trap known for this architecture"
#endif

static size_t str_len(const char *s)
{
    size_t n = 0;
    while (s[n] != '\0') {
        n++;
    }
    return n;
}

static ek_file open_mode(const char *name, uintptr_t mode)
{
    uintptr_t block[3] = {(uintptr_t)name, mode, (uintptr_t)str_len(name)};
    return (ek_file)(intptr_t)semihost(SYS_OPEN, block);
}

ek_file ek_open_read(const char *name) { return open_mode(name, OPEN_MODE_RB); }

ek_file ek_open_write(const char *name) { return open_mode(name, OPEN_MODE_WB); }

int ek_read(ek_file f, void *buf, size_t n)
{
    uintptr_t block[3] = {(uintptr_t)f, (uintptr_t)buf, (uintptr_t)n};
    return semihost(SYS_READ, block) != 0u; /* returns the number of bytes NOT read */
}

int ek_write(ek_file f, const void *buf, size_t n)
{
    uintptr_t block[3] = {(uintptr_t)f, (uintptr_t)buf, (uintptr_t)n};
    return semihost(SYS_WRITE, block) != 0u;
}

void ek_close(ek_file f)
{
    uintptr_t block[1] = {(uintptr_t)f};
    (void)semihost(SYS_CLOSE, block);
}

void ek_puts(const char *s) { (void)semihost(SYS_WRITE0, s); }

_Noreturn void ek_exit(int code)
{
    /* SYS_EXIT_EXTENDED carries the code on 32-bit targets too, so faults stay distinguishable. */
    uintptr_t block[2] = {ADP_STOPPED_APPLICATION_EXIT, (uintptr_t)(intptr_t)code};
    (void)semihost(SYS_EXIT_EXTENDED, block);
    for (;;) {
    }
}

/* Provided by the board linker script: the RAM between .bss and the stack. */
extern char __ek_heap_start[];
extern char __ek_heap_end[];

void *ek_alloc(size_t n)
{
    static char *next = __ek_heap_start;
    uintptr_t p = ((uintptr_t)next + 15u) & ~(uintptr_t)15u;
    if (p + n > (uintptr_t)__ek_heap_end || p + n < p) {
        return NULL;
    }
    next = (char *)(p + n);
    return (void *)p;
}
