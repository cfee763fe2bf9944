#define _GNU_SOURCE
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <ucontext.h>
#include <unistd.h>

#include "modkit/crash_report.h"

/*
 * Everything below runs inside a signal handler, so it calls only async-signal-safe
 * functions (write, sigaction, raise) and formats numbers by hand.
 */

static _Atomic(const struct modkit_crash_table *) published_table;

void modkit_crash_publish(const struct modkit_crash_table *table)
{
    atomic_store_explicit(&published_table, table, memory_order_release);
}

static void put(const char *text, size_t length)
{
    while (length > 0) {
        ssize_t written = write(STDERR_FILENO, text, length);
        if (written <= 0)
            return;
        text += written;
        length -= (size_t)written;
    }
}

static void put_string(const char *text)
{
    put(text, strlen(text));
}

/* Writes value as 0x followed by lower-case hex digits, at least min_digits of them. */
static void put_hex(unsigned long long value, int min_digits)
{
    char buffer[2 + 16];
    char digits[16];
    int count = 0;

    do {
        digits[count++] = "0123456789abcdef"[value & 0xf];
        value >>= 4;
    } while (value != 0);
    while (count < min_digits && count < 16)
        digits[count++] = '0';
    buffer[0] = '0';
    buffer[1] = 'x';
    for (int i = 0; i < count; i++)
        buffer[2 + i] = digits[count - 1 - i];
    put(buffer, (size_t)(2 + count));
}

static void put_decimal(long long value)
{
    char digits[24];
    int count = 0;
    unsigned long long magnitude = value < 0 ? 0ULL - (unsigned long long)value : (unsigned long long)value;

    do {
        digits[count++] = (char)('0' + magnitude % 10);
        magnitude /= 10;
    } while (magnitude != 0);
    if (value < 0)
        put("-", 1);
    while (count > 0)
        put(&digits[--count], 1);
}

static const char *signal_name(int signal)
{
    switch (signal) {
    case SIGSEGV: return "SIGSEGV";
    case SIGBUS: return "SIGBUS";
    case SIGILL: return "SIGILL";
    case SIGFPE: return "SIGFPE";
    default: return "signal";
    }
}

/* The symbol of owner that contains address, or NULL. */
static const struct modkit_crash_symbol *find_symbol(const struct modkit_crash_owner *owner, unsigned long long address)
{
    /* The last symbol whose address is at most address. */
    size_t low = 0, high = owner->count;
    while (low < high) {
        size_t middle = low + (high - low) / 2;
        if (owner->symbols[middle].address <= address)
            low = middle + 1;
        else
            high = middle;
    }
    if (low == 0)
        return NULL;
    const struct modkit_crash_symbol *symbol = &owner->symbols[low - 1];
    return address - symbol->address < symbol->size ? symbol : NULL;
}

/* The owner of the symbol that contains address, with that symbol in *symbol, or else the
 * first owner whose range contains address, with *symbol NULL, or NULL. A module's range
 * still covers its freed init memory, which a later module may occupy, so ranges overlap. */
static const struct modkit_crash_owner *find_owner(const struct modkit_crash_table *table, unsigned long long address,
                                                   const struct modkit_crash_symbol **symbol)
{
    const struct modkit_crash_owner *first = NULL;

    *symbol = NULL;
    if (table == NULL)
        return NULL;
    for (size_t o = 0; o < table->count; o++) {
        const struct modkit_crash_owner *owner = &table->owners[o];
        if (owner->start > address || address >= owner->end)
            continue;
        *symbol = find_symbol(owner, address);
        if (*symbol != NULL)
            return owner;
        if (first == NULL)
            first = owner;
    }
    return first;
}

/* Writes address as func+0x1c/0x80 [owner], or as a bare hex address when no symbol of the
 * published table contains it. A return address points after its call instruction, which
 * may be the last of the function, so it is looked up one byte earlier but printed as it
 * is. */
static void put_symbolized(const struct modkit_crash_table *table, unsigned long long address, int is_return)
{
    unsigned long long lookup = address - (is_return ? 1 : 0);
    put_hex(address, 16);
    const struct modkit_crash_symbol *symbol;
    const struct modkit_crash_owner *owner = find_owner(table, lookup, &symbol);
    if (owner == NULL)
        return;
    if (symbol != NULL) {
        put(" ", 1);
        put_string(symbol->name);
        put("+", 1);
        put_hex(address - symbol->address, 1);
        put("/", 1);
        put_hex(symbol->size, 1);
    }
    if (owner->kind != MODKIT_CRASH_EXECUTABLE) {
        put(" [", 2);
        put_string(owner->name);
        put("]", 1);
    }
}

static void put_register(const char *name, unsigned long long value)
{
    put_string(name);
    put(": ", 2);
    put_hex(value, 16);
}

struct machine_state {
    unsigned long long pc;
    unsigned long long frame;
    /* A return address that the frame chain may skip: the word at the stack pointer on
     * x86_64, the link register on aarch64. A leaf function that keeps no frame pointer
     * (gcc 12 omits it in leaves even with -fno-omit-frame-pointer) has its return address
     * there. */
    unsigned long long possible_return;
};

static struct machine_state put_registers(const ucontext_t *context, unsigned long long fault_address)
{
    struct machine_state state = {0, 0, 0};
#if defined(__x86_64__)
    const greg_t *r = context->uc_mcontext.gregs;
    put_register("RIP", (unsigned long long)r[REG_RIP]);
    put_register(" RSP", (unsigned long long)r[REG_RSP]);
    put_register(" RBP", (unsigned long long)r[REG_RBP]);
    put_register("\nRAX", (unsigned long long)r[REG_RAX]);
    put_register(" RBX", (unsigned long long)r[REG_RBX]);
    put_register(" RCX", (unsigned long long)r[REG_RCX]);
    put_register("\nRDX", (unsigned long long)r[REG_RDX]);
    put_register(" RSI", (unsigned long long)r[REG_RSI]);
    put_register(" RDI", (unsigned long long)r[REG_RDI]);
    put_register("\nR8 ", (unsigned long long)r[REG_R8]);
    put_register(" R9 ", (unsigned long long)r[REG_R9]);
    put_register(" R10", (unsigned long long)r[REG_R10]);
    put_register("\nR11", (unsigned long long)r[REG_R11]);
    put_register(" R12", (unsigned long long)r[REG_R12]);
    put_register(" R13", (unsigned long long)r[REG_R13]);
    put_register("\nR14", (unsigned long long)r[REG_R14]);
    put_register(" R15", (unsigned long long)r[REG_R15]);
    put_register(" EFLAGS", (unsigned long long)r[REG_EFL]);
    put("\n", 1);
    state.pc = (unsigned long long)r[REG_RIP];
    state.frame = (unsigned long long)r[REG_RBP];
    unsigned long long stack = (unsigned long long)r[REG_RSP];
    /* A fault near the stack pointer may be a stack overflow, where reading it faults again. */
    if (stack % sizeof(void *) == 0 && fault_address - stack + 4096 >= 8192)
        state.possible_return = *(const unsigned long long *)(uintptr_t)stack;
#elif defined(__aarch64__)
    const mcontext_t *m = &context->uc_mcontext;
    put_register("pc", m->pc);
    put_register(" sp", m->sp);
    put_register(" pstate", m->pstate);
    for (int i = 0; i < 31; i++) {
        put(i % 3 == 0 ? "\nx" : " x", 2);
        put_decimal(i);
        put_register(i < 10 ? " " : "", m->regs[i]);
    }
    put("\n", 1);
    state.pc = m->pc;
    state.frame = m->regs[29];
    state.possible_return = m->regs[30];
    (void)fault_address;
#else
    (void)context;
#endif
    return state;
}

/* Follows the frame-pointer chain: each frame starts with the caller's frame pointer and
 * the return address. The walk stops at a frame that is misaligned, does not move up the
 * stack, or is more than 1 MiB above the last one, because code built without frame pointers
 * leaves other values in that register.
 * NOTE: a frame pointer that passes these checks but points to unmapped memory faults in the
 * handler. The default action, restored on entry, then ends the process with the report cut
 * short. */
static void put_backtrace(const struct modkit_crash_table *table, struct machine_state state)
{
    put_string("Call Trace:\n ");
    put_symbolized(table, state.pc, 0);
    put("\n", 1);
    unsigned long long frame = state.frame;
    /* The possible return address is printed, after a question mark because it may be a
     * stale value, when it names a function and is not the frame chain's first return
     * address. */
    unsigned long long first_return = 0;
    if (frame != 0 && frame % sizeof(void *) == 0)
        first_return = ((const unsigned long long *)(uintptr_t)frame)[1];
    const struct modkit_crash_symbol *possible_symbol;
    const struct modkit_crash_owner *owner = find_owner(table, state.possible_return - 1, &possible_symbol);
    if (state.possible_return != 0 && state.possible_return != first_return && owner != NULL && possible_symbol != NULL) {
        put(" ? ", 3);
        put_symbolized(table, state.possible_return, 1);
        put("\n", 1);
    }
    for (int depth = 0; depth < 64; depth++) {
        if (frame == 0 || frame % sizeof(void *) != 0)
            break;
        const unsigned long long *words = (const unsigned long long *)(uintptr_t)frame;
        unsigned long long next = words[0];
        unsigned long long return_address = words[1];
        if (return_address == 0)
            break;
        put(" ", 1);
        put_symbolized(table, return_address, 1);
        put("\n", 1);
        if (next <= frame || next - frame > (1ULL << 20))
            break;
        frame = next;
    }
}

static void put_modules(const struct modkit_crash_table *table)
{
    put_string("Modules linked in:");
    if (table != NULL) {
        for (size_t o = 0; o < table->count; o++) {
            if (table->owners[o].kind != MODKIT_CRASH_MODULE)
                continue;
            put(" ", 1);
            put_string(table->owners[o].name);
            const char *taint = table->owners[o].taint;
            if (taint != NULL && taint[0] != '\0') {
                put("(", 1);
                put_string(taint);
                put(")", 1);
            }
        }
    }
    put("\n", 1);
}

static void handle_fatal_signal(int signal, siginfo_t *info, void *context)
{
    const struct modkit_crash_table *table = atomic_load_explicit(&published_table, memory_order_acquire);

    put_string("modkit: fatal signal ");
    put_decimal(signal);
    put(" (", 2);
    put_string(signal_name(signal));
    put_string(") at address ");
    put_hex((unsigned long long)(uintptr_t)info->si_addr, 1);
    put_string(", code ");
    put_decimal(info->si_code);
    put("\n", 1);
    if (table != NULL && table->taint != NULL && table->taint[0] != '\0') {
        put_string("Tainted: ");
        put_string(table->taint);
        put("\n", 1);
    } else {
        put_string("Not tainted\n");
    }

    struct machine_state state = put_registers(context, (unsigned long long)(uintptr_t)info->si_addr);
    put_backtrace(table, state);
    put_modules(table);

    /* SA_RESETHAND restored the default action. The signal is blocked until the handler
     * returns, so the raised copy is delivered then and ends the process, and a fault
     * re-executed on return does the same. */
    struct sigaction default_action;
    memset(&default_action, 0, sizeof default_action);
    default_action.sa_handler = SIG_DFL;
    sigaction(signal, &default_action, NULL);
    raise(signal);
}

static char alternate_stack[64 * 1024];

int modkit_crash_install(void)
{
    stack_t stack;
    memset(&stack, 0, sizeof stack);
    stack.ss_sp = alternate_stack;
    stack.ss_size = sizeof alternate_stack;
    if (sigaltstack(&stack, NULL) != 0)
        return -1;

    static const int signals[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE};
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_sigaction = handle_fatal_signal;
    action.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_RESETHAND;
    sigemptyset(&action.sa_mask);
    for (size_t i = 0; i < sizeof signals / sizeof signals[0]; i++) {
        if (sigaction(signals[i], &action, NULL) != 0)
            return -1;
    }
    return 0;
}
