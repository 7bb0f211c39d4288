/* C runtime start shared by the bare-metal boards: runs after the architecture entry code has set
 * up the stack (and enabled the FPU/vector unit), before main. */
#include <stdint.h>

#include "ek_platform.h"

extern uint32_t __ek_data_start[], __ek_data_end[], __ek_data_load[];
extern uint32_t __ek_tls_base[], __ek_tdata_end[], __ek_tdata_load[];
extern uint32_t __ek_tbss_start[], __ek_tbss_size[];
extern uint32_t __ek_bss_start[], __ek_bss_end[];
extern void (*__ek_init_array_start[])(void);
extern void (*__ek_init_array_end[])(void);

int main(void);

#if defined(__arm__)
/* picolibc's TLS pointer setter; weak so images that never touch errno need no libc. */
extern void _set_tls(void *tls) __attribute__((weak));
#endif

/* Plain word loops: keep GCC from turning them into memcpy/memset calls, so images without a
 * libc still link (clang ignores the attribute; its calls are then served by the libc). */
#if defined(__clang__)
#define EK_PLAIN_LOOPS
#else
#define EK_PLAIN_LOOPS __attribute__((optimize("no-tree-loop-distribute-patterns")))
#endif

EK_PLAIN_LOOPS static void copy_words(uint32_t *dst, const uint32_t *src, const uint32_t *end)
{
    while (dst < end) {
        *dst++ = *src++;
    }
}

EK_PLAIN_LOOPS static void zero_words(uint32_t *dst, const uint32_t *end)
{
    while (dst < end) {
        *dst++ = 0u;
    }
}

_Noreturn void ek_cstart(void)
{
    copy_words(__ek_data_start, __ek_data_load, __ek_data_end);
    copy_words(__ek_tls_base, __ek_tdata_load, __ek_tdata_end);
    zero_words(__ek_tbss_start, (uint32_t *)((uintptr_t)__ek_tbss_start + (uintptr_t)__ek_tbss_size));
    zero_words(__ek_bss_start, __ek_bss_end);
#if defined(__arm__)
    if (_set_tls) {
        _set_tls(__ek_tls_base);
    }
#endif
    for (void (**f)(void) = __ek_init_array_start; f < __ek_init_array_end; f++) {
        (*f)();
    }
    ek_exit(main());
}
