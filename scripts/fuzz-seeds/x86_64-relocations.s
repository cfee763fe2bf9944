# Seed for scripts/fuzz.sh: one x86_64 relocation of each type the loader supports, plus COMMON,
# weak, absolute and local symbols, a COMDAT group, an init array and unwind tables.
    .text
    .globl entry
    .type entry, @function
    .p2align 4
entry:
    .cfi_startproc
    call external_function@PLT
    movq external_data@GOTPCREL(%rip), %rax
    leaq local_data(%rip), %rcx
    movl $local_data, %edx
    movq $local_data, %rsi
    leaq _GLOBAL_OFFSET_TABLE_(%rip), %rdi
    movabsq $external_data@GOT, %r8
    movabsq $local_data@GOTOFF, %r9
    movabsq $external_function@PLTOFF, %r10
    movl $common_buffer@SIZE, %r11d
    jmp local_function
    .cfi_endproc
    .size entry, .-entry

    .type local_function, @function
local_function:
    ret
    .size local_function, .-local_function

    .data
    .p2align 3
local_data:
    .quad external_data
    .quad entry - .
    .long external_data - .
    .long local_data
    .long absolute_value
    .quad common_buffer@SIZE
    .quad weak_function

    .section .data.narrow, "aw"
    .word local_data - .
    .byte local_data - .
    .word absolute_small
    .byte absolute_small

    .section .data.rel.ro, "aw"
    .quad external_function

    .section .init_array, "aw"
    .quad entry

    .section .text.inline_function, "axG", @progbits, inline_function, comdat
    .weak inline_function
inline_function:
    ret

    .section .rodata.str1.1, "aMS", @progbits, 1
    .string "hello"

    .bss
    .zero 64

    .comm common_buffer, 256, 32
    .weak weak_function
    .globl absolute_value
    .set absolute_value, 0x1234
    .globl absolute_small
    .set absolute_small, 0x12
    .section .note.GNU-stack, "", @progbits
