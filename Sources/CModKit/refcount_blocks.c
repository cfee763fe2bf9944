/*
 * Per-thread counter blocks for module reference counts.
 *
 * A block holds two counters per slot (gets, then puts) and is written only
 * by the thread that owns it. Blocks are never freed, so the counts of a
 * thread that exits stay in the sum: its block becomes unowned and the next
 * thread without a block claims it and keeps counting on top.
 */
#define _GNU_SOURCE
#include "modkit/refcount_control.h"
#include "refcount_internal.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <sys/mman.h>

struct counter_block {
    /* Next older block. The list only grows, at its head. */
    struct counter_block *next;
    /* 1 while a thread writes to counters, 0 when any thread may claim it.
     * Unused for the shared block. */
    unsigned int owned;
    unsigned long counters[2 * MODKIT_REF_SLOTS] __attribute__((aligned(64)));
};

/* Counts for threads that could not map a block of their own. Shared by all
 * of them, so it is updated with atomic adds, and never claimed by one
 * thread. Zero-initialized so that it stays in .bss. */
static struct counter_block shared_block;

static struct counter_block *block_list = &shared_block;

/* The calling thread's counters, or NULL before its first count. Module
 * code reads it through __modkit_thread_offset. */
static __thread unsigned long *thread_counters __attribute__((tls_model("initial-exec")));

long __modkit_thread_offset;

static pthread_key_t thread_exit_key;
static int thread_exit_key_created;

static struct counter_block *block_of(unsigned long *counters)
{
    return (struct counter_block *)((char *)counters - offsetof(struct counter_block, counters));
}

/* Runs at thread exit with the thread's block. The thread may still count
 * after this, from a later destructor or a signal handler, and then claims
 * a block again through the slow path. */
static void release_thread_block(void *block)
{
    thread_counters = NULL;
    __atomic_store_n(&((struct counter_block *)block)->owned, 0u, __ATOMIC_RELEASE);
}

static char *thread_pointer(void)
{
#if defined(__x86_64__)
    char *pointer;
    /* The x86_64 TLS ABI stores the thread pointer itself at %fs:0. */
    __asm__("movq %%fs:0, %0" : "=r"(pointer));
    return pointer;
#else
    return (char *)__builtin_thread_pointer();
#endif
}

void modkit_ref_blocks_init(void)
{
    /* An initial-exec TLS variable lies at the same offset from the thread
     * pointer in every thread, so one published offset serves them all. */
    __atomic_store_n(&__modkit_thread_offset, (long)((char *)&thread_counters - thread_pointer()),
                     __ATOMIC_RELEASE);

    if (!__atomic_load_n(&thread_exit_key_created, __ATOMIC_ACQUIRE) &&
        pthread_key_create(&thread_exit_key, release_thread_block) == 0)
        __atomic_store_n(&thread_exit_key_created, 1, __ATOMIC_RELEASE);
}

static void push_block(struct counter_block *block)
{
    struct counter_block *head = __atomic_load_n(&block_list, __ATOMIC_RELAXED);

    do {
        block->next = head;
    } while (!__atomic_compare_exchange_n(&block_list, &head, block, true, __ATOMIC_RELEASE,
                                          __ATOMIC_RELAXED));
}

static struct counter_block *claim_unowned_block(void)
{
    struct counter_block *block;

    for (block = __atomic_load_n(&block_list, __ATOMIC_ACQUIRE); block; block = block->next) {
        unsigned int unowned = 0;

        if (block != &shared_block &&
            __atomic_load_n(&block->owned, __ATOMIC_RELAXED) == 0 &&
            __atomic_compare_exchange_n(&block->owned, &unowned, 1u, false, __ATOMIC_ACQUIRE,
                                        __ATOMIC_RELAXED))
            return block;
    }
    return NULL;
}

static struct counter_block *map_new_block(void)
{
    /* Anonymous pages are zero and are only backed once a slot is used. */
    void *memory = mmap(NULL, sizeof(struct counter_block), PROT_READ | PROT_WRITE,
                        MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    struct counter_block *block;

    if (memory == MAP_FAILED)
        return NULL;
    block = (struct counter_block *)memory;
    block->owned = 1;
    push_block(block);
    return block;
}

/* Gives the calling thread a block unless it has one. Uses only mmap,
 * atomics, pthread_sigmask and pthread_setspecific, so it is safe in a
 * signal handler.
 * NOTE: glibc's pthread_setspecific allocates nothing for keys below 32,
 * which live in the thread descriptor. The key is created at start, so it
 * is expected to be one of them, but nothing checks it. */
static unsigned long *claim_thread_counters(void)
{
    sigset_t all_signals;
    sigset_t old_mask;
    unsigned long *counters;

    /* A signal handler that counted between the check and the store below
     * would give this thread a second block. */
    sigfillset(&all_signals);
    pthread_sigmask(SIG_SETMASK, &all_signals, &old_mask);

    counters = thread_counters;
    if (counters == NULL) {
        struct counter_block *block = claim_unowned_block();

        if (block == NULL)
            block = map_new_block();
        if (block != NULL) {
            counters = block->counters;
            thread_counters = counters;
            /* Without the key the block stays owned after the thread
             * exits: it keeps its counts but is never reused. */
            if (__atomic_load_n(&thread_exit_key_created, __ATOMIC_ACQUIRE))
                pthread_setspecific(thread_exit_key, block);
        }
    }

    pthread_sigmask(SIG_SETMASK, &old_mask, NULL);
    return counters;
}

int modkit_ref_prepare_thread(void)
{
    if (thread_counters != NULL || claim_thread_counters() != NULL)
        return 0;
    return -ENOMEM;
}

void __modkit_ref_count_slow(unsigned int counter)
{
    /* Inline code may call this with a block pointer it read before the thread claimed its
     * block, so a thread that already has one goes straight to it. */
    unsigned long *counters = thread_counters;

    if (counters == NULL)
        counters = claim_thread_counters();

    /* Only this thread writes to its own block, but the add must still be
     * one instruction for signal handlers, and an atomic add is one. */
    if (counters == NULL)
        counters = shared_block.counters;
    __atomic_fetch_add(&counters[counter], 1ul, MODKIT_REF_ORDER(__ATOMIC_RELAXED));
}

long modkit_ref_sum(unsigned int ref_index)
{
    struct counter_block *block;
    unsigned long gets = 0;
    unsigned long puts = 0;

    if (ref_index >= MODKIT_REF_SLOTS)
        return 0;

    /* Puts first, then gets: see refcount.c for why this order keeps the sum
     * from falling below the number of references held. */
    for (block = __atomic_load_n(&block_list, __ATOMIC_ACQUIRE); block; block = block->next)
        puts += __atomic_load_n(&block->counters[2 * ref_index + 1], MODKIT_REF_ORDER(__ATOMIC_RELAXED));
    MODKIT_REF_FENCE(__ATOMIC_ACQUIRE);
    for (block = __atomic_load_n(&block_list, __ATOMIC_ACQUIRE); block; block = block->next)
        gets += __atomic_load_n(&block->counters[2 * ref_index], MODKIT_REF_ORDER(__ATOMIC_RELAXED));

    return (long)(gets - puts);
}

int modkit_ref_reset_slot(unsigned int ref_index)
{
    struct counter_block *block;

    if (ref_index >= MODKIT_REF_SLOTS)
        return -EINVAL;

    for (block = __atomic_load_n(&block_list, __ATOMIC_ACQUIRE); block; block = block->next) {
        __atomic_store_n(&block->counters[2 * ref_index], 0ul, __ATOMIC_RELAXED);
        __atomic_store_n(&block->counters[2 * ref_index + 1], 0ul, __ATOMIC_RELAXED);
    }
    __atomic_store_n(&__modkit_ref_slot_state[ref_index].going, 0u, __ATOMIC_SEQ_CST);
    return 0;
}

size_t modkit_ref_block_count(void)
{
    struct counter_block *block;
    size_t count = 0;

    /* The shared block is not a thread's block. */
    for (block = __atomic_load_n(&block_list, __ATOMIC_ACQUIRE); block != &shared_block;
         block = block->next)
        count++;
    return count;
}

void modkit_ref_blocks_after_fork_child(void)
{
    struct counter_block *own = thread_counters ? block_of(thread_counters) : NULL;
    struct counter_block *block;

    for (block = __atomic_load_n(&block_list, __ATOMIC_ACQUIRE); block; block = block->next) {
        if (block != own && block != &shared_block)
            __atomic_store_n(&block->owned, 0u, __ATOMIC_RELEASE);
    }
}
