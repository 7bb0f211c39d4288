/* Entry for the RISC-V bare-metal boards (machine mode, no MMU). */
    .option push
    .option arch, +zicsr

    .section .text.ek_start, "ax"
    .global _start
_start:
    .option push
    .option norelax
    la gp, __global_pointer$
    .option pop
    la sp, __ek_stack_top
    /* DRAM below the stack stands in for ROM and is writable: make its last 4 KB a locked,
     * no-access PMP region (locked entries bind machine mode too), so a stack overflow traps. */
#ifndef EK_NO_STACK_GUARD /* physical boards: RAM starts after unmapped space, no guard needed */
    la t0, __ek_riscv_guard_napot
    csrw pmpaddr0, t0
    li t0, 0x98 /* L | A=NAPOT, no R/W/X */
    csrw pmpcfg0, t0
#endif
    la tp, __ek_tls_base
    la t0, ek_trap_entry
    csrw mtvec, t0
#if defined(__riscv_flen) || defined(__riscv_vector)
    /* FP and vector instructions trap until mstatus.FS / mstatus.VS leave the Off state. */
    li t0, (1 << 13) | (1 << 9)
    csrs mstatus, t0
#endif
    call ek_cstart

    .text
    .balign 4
    .global ek_trap_entry
ek_trap_entry:
    /* A fresh stack, in case the trap came from a stack overflow. */
    la sp, __ek_stack_top
    call ek_trap_report

    .option pop
