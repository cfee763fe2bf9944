// Seed for scripts/fuzz.sh: one aarch64 relocation of each kind the loader supports, plus
// COMMON, weak and local symbols, a COMDAT group and unwind tables.
    .text
    .globl entry
    .type entry, %function
    .p2align 2
entry:
    .cfi_startproc
    bl external_function
    b external_function
    b.eq near_function
    tbz x0, #3, near_function
    cbz x1, near_function
    ldr x9, :got:external_data
    adr x10, near_function
    ldr x11, near_literal
    adrp x0, local_data
    add x0, x0, :lo12:local_data
    ldrb w1, [x0, :lo12:local_data]
    ldrh w1, [x0, :lo12:local_data]
    ldr w1, [x0, :lo12:local_data]
    ldr x1, [x0, :lo12:local_data]
    ldr q1, [x0, :lo12:local_data]
    adrp x2, :got:external_data
    ldr x2, [x2, :got_lo12:external_data]
    adr x3, local_function
    ldr x4, local_literal
    movz x5, #:abs_g3:external_data
    movk x5, #:abs_g2_nc:external_data
    movk x5, #:abs_g1_nc:external_data
    movk x5, #:abs_g0_nc:external_data
    movz x6, #:abs_g1:local_data
    movz x6, #:abs_g0:absolute_small
    movz x7, #:abs_g0_s:absolute_small
    movz x8, #:prel_g1:external_data
    movk x8, #:prel_g0_nc:external_data
    ret
    .cfi_endproc
    .size entry, .-entry

    .type local_function, %function
local_function:
    ret
    .p2align 3
local_literal:
    .quad 0

    .data
    .p2align 4
local_data:
    .quad external_data
    .quad entry - .
    .word external_data - .
    .word local_data
    .hword near_literal - .
    .hword absolute_small
    .quad weak_function
    .quad common_buffer

    .section .text.inline_function, "axG", %progbits, inline_function, comdat
    .weak inline_function
inline_function:
    ret

    .section .text.near, "ax", %progbits
    .p2align 3
near_function:
    ret
    .p2align 3
near_literal:
    .quad 0

    .globl absolute_small
    .set absolute_small, 0x12
    .comm common_buffer, 256, 32
    .weak weak_function
    .section .note.GNU-stack, "", %progbits
