/*
 * Module reference counting: the inline fast path of try_module_get,
 * __module_get and module_put. modkit/module.h includes it, and modules and
 * the Swift host both compile these functions into their own code.
 *
 * Each thread that counts owns a block of counters, and only that thread
 * writes to it. A module's slot in a block is two counters: gets
 * (block[2 * ref_index]) and puts (block[2 * ref_index + 1]). The module's
 * count is the sum of gets minus the sum of puts over all blocks, which the
 * host computes in refcount.c. That file also explains why the orderings
 * used here make the sum safe to act on.
 */
#ifndef MODKIT_REFCOUNT_H
#define MODKIT_REFCOUNT_H

#include <stddef.h>

#include "modkit/module.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Number of slots in a counter block, so the exclusive maximum ref_index. */
#define MODKIT_REF_SLOTS 4096u

/* struct module ref_flags bits. */
/* Use a seq_cst fence in get and put, because the host cannot issue
 * membarrier when it stops a module. */
#define MODKIT_REF_FLAG_FENCE 0x1u
/* Keep no counts: try_module_get only checks live, module_put does nothing. */
#define MODKIT_REF_FLAG_NO_UNLOAD 0x2u

/* Removal state of one slot, in host memory that is never freed, so that
 * module_put never touches the module after its count is published. */
struct modkit_ref_slot_state {
    /* Nonzero from modkit_ref_stop until the slot is restarted or reused:
     * every put on the slot then wakes wake_seq. */
    unsigned int going;
    /* Futex word that modkit_ref_wait_zero sleeps on. */
    unsigned int wake_seq;
};

/* Offset from the thread pointer of the host's per-thread pointer to the
 * calling thread's counter block. Modules cannot use TLS relocations, so
 * they read the block pointer with this offset. */
extern long __modkit_thread_offset;
extern struct modkit_ref_slot_state __modkit_ref_slot_state[];

/* Gives the calling thread a counter block unless it has one, and adds 1 to
 * counter in it. Runs on a thread's first count, on later counts of a call
 * that read the block pointer before the thread had a block, and on every
 * count while no block can be mapped. Async-signal-safe. */
void __modkit_ref_count_slow(unsigned int counter);
/* Bumps the slot's wake_seq and wakes every modkit_ref_wait_zero caller. */
void __modkit_ref_wake(unsigned int ref_index);
/* Returns the module's reference count at one moment, or 0 in no-unload mode. */
unsigned long module_refcount(struct module *mod);

/* ThreadSanitizer sees neither inline assembly nor fences (gcc 12 rejects
 * fences under -fsanitize=thread). Its builds therefore make every counter
 * access and every load of live and going seq_cst, which alone forbids the
 * store-buffering outcome that the fences and membarrier exist to rule out,
 * and turn the fences below into nothing. */
#if defined(__SANITIZE_THREAD__)
#define MODKIT_REF_USE_ATOMICS 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define MODKIT_REF_USE_ATOMICS 1
#endif
#endif

#ifdef MODKIT_REF_USE_ATOMICS
#define MODKIT_REF_ORDER(order) __ATOMIC_SEQ_CST
#define MODKIT_REF_FENCE(order) __atomic_signal_fence(__ATOMIC_SEQ_CST)
#else
/* The memory order to use for an access to live, going or a counter. */
#define MODKIT_REF_ORDER(order) (order)
/* A fence, or only a compiler barrier in ThreadSanitizer builds. */
#define MODKIT_REF_FENCE(order) __atomic_thread_fence(order)
#endif

/* Returns the calling thread's counter block, or NULL if it has none yet.
 *
 * On x86_64 this is one asm statement without volatile, without memory operands and with one
 * output. The compiler therefore treats it as a pure function of its input, so it may hoist it
 * out of a loop and reuse it across the compiler barriers of get and put. Otherwise every get
 * and put would reload the offset and the block pointer before it could count. Reusing the
 * value is safe. The host sets the offset before any module code runs and never changes it,
 * and a thread's block pointer changes only from NULL to its block. A reused NULL only sends
 * that call to the general path, which finds the block. Both loads read memory that is always
 * mapped, so the compiler may also move them before a check of mod. */
static inline unsigned long *__modkit_thread_counters(void)
{
#if defined(__x86_64__)
    unsigned long *counters;

    __asm__("movq (%1), %0\n\t"
            "movq %%fs:(%0), %0"
            : "=&r"(counters)
            : "r"(&__modkit_thread_offset));
    return counters;
#elif defined(__aarch64__)
    /* NOTE: this branch compiles but has never run. ModKit is tested on x86_64 only. */
    return *(unsigned long **)((char *)__builtin_thread_pointer() + __modkit_thread_offset);
#else
#error "ModKit reference counting supports x86_64 and aarch64 only"
#endif
}

/* The ref_flags bits that send get and put to their general path. */
#define MODKIT_REF_FLAGS_GENERAL (MODKIT_REF_FLAG_FENCE | MODKIT_REF_FLAG_NO_UNLOAD)

/* Returns the module's slot in counters (its gets counter, then its puts counter) when get and
 * put can take the fast path: mod and counters are not NULL and the module counts in
 * membarrier mode. Returns NULL otherwise.
 *
 * On x86_64 this is a pure asm statement like the one in __modkit_thread_counters, so a loop of
 * gets and puts on one module computes the slot once. It reads ref_index and ref_flags without
 * telling the compiler. That is safe because modkit_module_struct_init writes both before any
 * code can reach the struct, and nothing changes them while the struct exists. The compiler
 * may move the statement before the caller's check of mod, so it tests mod itself. */
static inline unsigned long *__modkit_ref_fast_slot(const struct module *mod,
                                                    unsigned long *counters)
{
#if defined(__x86_64__) && !defined(MODKIT_REF_USE_ATOMICS)
    unsigned long *slot;

    __asm__("xorl %k[slot], %k[slot]\n\t"
            "testq %[counters], %[counters]\n\t"
            "jz 1f\n\t"
            "testq %[mod], %[mod]\n\t"
            "jz 1f\n\t"
            "testl %[general], %c[flags_offset](%[mod])\n\t"
            "jnz 1f\n\t"
            "movl %c[index_offset](%[mod]), %k[slot]\n\t"
            "shlq $4, %[slot]\n\t"
            "addq %[counters], %[slot]\n"
            "1:"
            : [slot] "=&r"(slot)
            : [mod] "r"(mod), [counters] "r"(counters),
              [general] "i"(MODKIT_REF_FLAGS_GENERAL),
              [flags_offset] "i"(offsetof(struct module, ref_flags)),
              [index_offset] "i"(offsetof(struct module, ref_index))
            : "cc");
    return slot;
#else
    if (mod == NULL || counters == NULL || (mod->ref_flags & MODKIT_REF_FLAGS_GENERAL) != 0)
        return NULL;
    return &counters[2 * mod->ref_index];
#endif
}

/* Adds 1 to a counter in the calling thread's own block. On x86_64 this is a single unlocked
 * incq, so a signal handler on the same thread cannot lose the update, and no other thread
 * writes the word. ThreadSanitizer builds use an atomic add because the sanitizer does not see
 * inline assembly. */
static inline void __modkit_ref_increment(unsigned long *counter)
{
#if defined(__x86_64__) && !defined(MODKIT_REF_USE_ATOMICS)
    __asm__ __volatile__("incq %0" : "+m"(*counter));
#else
    __atomic_fetch_add(counter, 1ul, MODKIT_REF_ORDER(__ATOMIC_RELAXED));
#endif
}

/* Adds 1 to one counter of the calling thread's block, where counters is what
 * __modkit_thread_counters returned earlier in the same thread, NULL included. */
static inline void __modkit_ref_count(unsigned long *counters, unsigned int counter)
{
    if (counters == NULL)
        __modkit_ref_count_slow(counter);
    else
        __modkit_ref_increment(&counters[counter]);
}

/* Orders the count just written before the load that follows it. In
 * membarrier mode the remover's membarrier supplies the hardware barrier,
 * so only the compiler must keep the order. */
static inline void __modkit_ref_order(unsigned int ref_flags)
{
    if ((ref_flags & MODKIT_REF_FLAG_FENCE) != 0)
        MODKIT_REF_FENCE(__ATOMIC_SEQ_CST);
    else
        __atomic_signal_fence(__ATOMIC_SEQ_CST);
}

/* Wakes the remover if the slot's module is going. Reads host memory only, because the
 * remover may unmap the module as soon as its sum reads zero. */
static inline void __modkit_ref_check_going(unsigned int ref_index)
{
    if (__builtin_expect(__atomic_load_n(&__modkit_ref_slot_state[ref_index].going,
                                         MODKIT_REF_ORDER(__ATOMIC_RELAXED)) != 0, 0))
        __modkit_ref_wake(ref_index);
}

/* Drops one reference on the slot that __modkit_ref_fast_slot returned. */
static inline void __modkit_ref_put_fast(unsigned long *counters, unsigned long *slot)
{
    /* Makes this reference's get, even one on another thread, visible to
     * any sum that reads this put. */
    MODKIT_REF_FENCE(__ATOMIC_RELEASE);
    __modkit_ref_increment(&slot[1]);
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
    __modkit_ref_check_going(
        (unsigned int)(((unsigned long)slot - (unsigned long)counters) / (2 * sizeof(*slot))));
}

/* Drops one reference in any mode, on a thread with or without a block. */
static inline void __modkit_ref_put_general(unsigned long *counters, unsigned int ref_index,
                                            unsigned int ref_flags)
{
    MODKIT_REF_FENCE(__ATOMIC_RELEASE);
    __modkit_ref_count(counters, 2 * ref_index + 1);
    __modkit_ref_order(ref_flags);
    __modkit_ref_check_going(ref_index);
}

/* Takes a reference in fence or no-unload mode, or on a thread without a block. */
static inline bool __modkit_try_get_general(struct module *mod, unsigned long *counters)
{
    unsigned int ref_flags = mod->ref_flags;
    unsigned int ref_index = mod->ref_index;

    if ((ref_flags & MODKIT_REF_FLAG_NO_UNLOAD) != 0)
        return __atomic_load_n(&mod->live, __ATOMIC_ACQUIRE) != 0;
    __modkit_ref_count(counters, 2 * ref_index);
    __modkit_ref_order(ref_flags);
    if (__atomic_load_n(&mod->live, MODKIT_REF_ORDER(__ATOMIC_ACQUIRE)) != 0)
        return true;
    __modkit_ref_put_general(counters, ref_index, ref_flags);
    return false;
}

/* Drops a reference in fence or no-unload mode, or on a thread without a block. */
static inline void __modkit_put_general(struct module *mod, unsigned long *counters)
{
    unsigned int ref_flags = mod->ref_flags;

    if ((ref_flags & MODKIT_REF_FLAG_NO_UNLOAD) == 0)
        __modkit_ref_put_general(counters, mod->ref_index, ref_flags);
}

/* Takes a reference unless the module is initializing or being removed.
 * A NULL module always succeeds. The caller must keep mod mapped for the
 * duration of the call, for example by looking it up under the lock that
 * the module's exit function takes to unregister itself. */
static inline bool try_module_get(struct module *mod)
{
    /* Both are computed first, on every path, so that the compiler can hoist them out of a
     * loop even when it cannot tell whether mod is NULL. */
    unsigned long *counters = __modkit_thread_counters();
    unsigned long *slot = __modkit_ref_fast_slot(mod, counters);

    if (mod == NULL)
        return true;
    if (__builtin_expect(slot == NULL, 0))
        return __modkit_try_get_general(mod, counters);

    __modkit_ref_increment(&slot[0]);
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
    if (__builtin_expect(__atomic_load_n(&mod->live, MODKIT_REF_ORDER(__ATOMIC_ACQUIRE)) != 0, 1))
        return true;

    /* The module is going: undo with a full put, which wakes the remover if
     * it counted the get above. */
    __modkit_ref_put_fast(counters, slot);
    return false;
}

/* Takes another reference on a module the caller already holds one on. */
static inline void __module_get(struct module *mod)
{
    unsigned long *counters = __modkit_thread_counters();

    if (mod == NULL || __builtin_expect((mod->ref_flags & MODKIT_REF_FLAG_NO_UNLOAD) != 0, 0))
        return;
    __modkit_ref_count(counters, 2 * mod->ref_index);
}

/* Drops a reference taken by try_module_get or __module_get. Any thread may
 * drop a reference that another thread took. NULL is ignored. */
static inline void module_put(struct module *mod)
{
    unsigned long *counters = __modkit_thread_counters();
    unsigned long *slot = __modkit_ref_fast_slot(mod, counters);

    if (__builtin_expect(slot != NULL, 1))
        __modkit_ref_put_fast(counters, slot);
    else if (mod != NULL)
        __modkit_put_general(mod, counters);
}

#ifdef __cplusplus
}
#endif

#endif
