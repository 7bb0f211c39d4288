/* Entry for the AArch64 bare-metal board: QEMU starts -kernel images at EL1, MMU off. With the
 * MMU off QEMU still allows unaligned data accesses, so no page tables are needed. */
    .section .text.ek_start, "ax"
    .global _start
_start:
    ldr x0, =__ek_stack_top
    mov sp, x0
    /* FP/SIMD instructions trap at EL1 until CPACR_EL1.FPEN allows them. */
    mrs x0, cpacr_el1
    orr x0, x0, #(3 << 20)
    msr cpacr_el1, x0
    ldr x0, =ek_aarch64_vectors
    msr vbar_el1, x0
    /* Local-exec TLS (picolibc's errno) lives at TPIDR_EL0 + the 16-byte TCB. */
    ldr x0, =__ek_tls_base
    ldr x1, =__arm64_tls_tcb_offset
    sub x0, x0, x1
    msr tpidr_el0, x0
    isb
    b ek_cstart
    .ltorg

    /* 16 entries of 128 bytes; every exception is fatal, the entry index says which kind. */
    .section .text.ek_aarch64_vectors, "ax"
    .balign 2048
    .global ek_aarch64_vectors
ek_aarch64_vectors:
    .irp index, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15
    .balign 128
    ldr x1, =__ek_stack_top /* a fresh stack, in case the fault was a stack overflow */
    mov sp, x1
    mov x0, #\index
    b ek_aarch64_fault
    .endr
    .ltorg
