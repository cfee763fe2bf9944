/*
 * Module reference counts: modes, stopping a module and waiting for zero.
 *
 * Why the counts are safe to act on
 * ---------------------------------
 * try_module_get adds 1 to the gets counter of the module's slot in the
 * calling thread's block, then loads mod->live. module_put adds 1 to the
 * puts counter, then loads the slot's going flag. Only the owning thread
 * writes a block, so neither needs a locked instruction. The remover sets
 * going and clears live, then issues membarrier(PRIVATE_EXPEDITED), then
 * sums the slot over all blocks (modkit_ref_sum).
 *
 * 1. Stop. Each side stores, then loads what the other side stored. The
 *    compiler barrier in get keeps the count before the load, so the only
 *    reordering left is the CPU's store buffer, letting the load of live run
 *    before the count is visible. membarrier runs a full barrier on every
 *    thread of the process that is running, and a thread that is not
 *    running passes one when it is scheduled. If that barrier falls after
 *    the getter's count, the count is visible when membarrier returns and
 *    the sum includes it. If it falls before the count, the getter's load of
 *    live runs after the barrier, which runs after the remover's store, so
 *    it reads 0 and the get fails. So once modkit_ref_stop returns, no get
 *    succeeds and every get that succeeded is in the sum. Fence mode gets
 *    the same result from a seq_cst fence on both sides.
 *
 * 2. Gets and puts on different threads. A reference taken on thread A may
 *    be dropped on thread B. With one signed counter per block, a sum that
 *    read B's block after the put but A's block before the get would count
 *    the put and miss the get, and report too few references. Gets and puts
 *    are therefore counted apart, and the sum reads every puts counter
 *    before any gets counter, with an acquire fence between. The put runs
 *    after a release fence, and the get happened before the put, so a sum
 *    that reads a put also reads its get. The sum can be too high (a get
 *    counted without its later put), which only makes the remover wait
 *    longer, but never lower than the number of references held throughout
 *    the sum.
 *
 * 3. Waking. A put orders its count before its load of going exactly as a
 *    get orders its count before live, so after stop each put is either in
 *    the sum or sees going and calls __modkit_ref_wake. The waiter reads
 *    wake_seq before summing and sleeps only while wake_seq still has that
 *    value, so a wake that comes after the read ends the sleep. A wake that
 *    came before the read was made after the put was counted, and the
 *    waiter's seq_cst read of wake_seq makes that put visible to its sum.
 *    A failed get counted a get, so it undoes it with a full put: it read
 *    live == 0, going was set before live was cleared, and so its put wakes
 *    the waiter too.
 *
 * 4. Unmapping. Once the remover sees zero it may unmap the module, which
 *    contains struct module. A put therefore reads the slot and flags
 *    before counting and afterwards touches only the slot state, which is
 *    host memory. The caller of try_module_get must keep the struct mapped
 *    for the call, as documented there.
 *
 * 5. Signals, thread exit, fork. Counting is one instruction, so a signal
 *    handler on the same thread cannot lose an update. Blocks are never
 *    freed, so a thread that exits keeps its counts in the sum. After fork
 *    only the forking thread exists, so every other block is unowned.
 *    References held by threads that did not survive the fork stay counted,
 *    as they are in the parent.
 */
#define _GNU_SOURCE
#include "modkit/refcount_control.h"
#include "modkit/syscalls.h"
#include "refcount_internal.h"

#include <errno.h>
#include <limits.h>
#include <linux/membarrier.h>
#include <pthread.h>
#include <string.h>
#include <time.h>

struct modkit_ref_slot_state __modkit_ref_slot_state[MODKIT_REF_SLOTS];

static int current_mode = MODKIT_REF_MODE_FENCE;
/* Nonzero once a module struct has been set up with the current mode. */
static int mode_in_use;

static void reregister_after_fork(void)
{
    modkit_ref_blocks_after_fork_child();
    /* A forked child has a new address space, which starts unregistered.
     * If registering fails, modkit_ref_stop reports membarrier's error. */
    if (current_mode == MODKIT_REF_MODE_MEMBARRIER)
        modkit_membarrier_register_private_expedited();
}

static void initialize_once(void)
{
    modkit_ref_blocks_init();
    pthread_atfork(NULL, NULL, reregister_after_fork);
}

static pthread_once_t initialize_control = PTHREAD_ONCE_INIT;

/* Runs before main so that __modkit_thread_offset is valid before any
 * module code can run, even if the host never calls modkit_ref_setup. */
__attribute__((constructor)) static void initialize_at_start(void)
{
    pthread_once(&initialize_control, initialize_once);
}

static int thread_sanitizer_build(void)
{
#if defined(MODKIT_REF_USE_ATOMICS)
    return 1;
#else
    return 0;
#endif
}

static int membarrier_available(void)
{
    int commands = modkit_membarrier_query();

    if (commands < 0 || !(commands & MEMBARRIER_CMD_PRIVATE_EXPEDITED))
        return 0;
    return modkit_membarrier_register_private_expedited() == 0;
}

int modkit_ref_setup(int requested_mode)
{
    int mode = requested_mode;

    pthread_once(&initialize_control, initialize_once);

    if (mode < MODKIT_REF_MODE_AUTO || mode > MODKIT_REF_MODE_NO_UNLOAD)
        return -EINVAL;
    /* ThreadSanitizer does not model membarrier as a barrier. */
    if (mode == MODKIT_REF_MODE_AUTO || (mode == MODKIT_REF_MODE_MEMBARRIER && thread_sanitizer_build()))
        mode = thread_sanitizer_build() ? MODKIT_REF_MODE_FENCE : MODKIT_REF_MODE_MEMBARRIER;
    if (mode == MODKIT_REF_MODE_MEMBARRIER && current_mode != MODKIT_REF_MODE_MEMBARRIER &&
        !membarrier_available())
        mode = MODKIT_REF_MODE_FENCE;

    /* Modules already set up carry the old mode's flags. */
    if (__atomic_load_n(&mode_in_use, __ATOMIC_ACQUIRE) && mode != current_mode)
        return -EBUSY;
    __atomic_store_n(&current_mode, mode, __ATOMIC_RELEASE);
    return mode;
}

int modkit_ref_mode(void)
{
    return __atomic_load_n(&current_mode, __ATOMIC_ACQUIRE);
}

const char *modkit_ref_mode_name(void)
{
    switch (modkit_ref_mode()) {
    case MODKIT_REF_MODE_MEMBARRIER:
        return "membarrier";
    case MODKIT_REF_MODE_NO_UNLOAD:
        return "no-unload";
    default:
        return "fence";
    }
}

unsigned int modkit_ref_mode_flags(void)
{
    switch (modkit_ref_mode()) {
    case MODKIT_REF_MODE_FENCE:
        return MODKIT_REF_FLAG_FENCE;
    case MODKIT_REF_MODE_NO_UNLOAD:
        return MODKIT_REF_FLAG_NO_UNLOAD;
    default:
        return 0;
    }
}

int modkit_module_struct_init(struct module *mod, const char *name, unsigned int ref_index,
                              unsigned int ref_flags)
{
    if (mod == NULL || ref_index >= MODKIT_REF_SLOTS)
        return -EINVAL;

    __atomic_store_n(&mode_in_use, 1, __ATOMIC_RELEASE);
    memset(mod, 0, sizeof *mod);
    mod->name = name;
    mod->ref_index = ref_index;
    mod->ref_flags = ref_flags | modkit_ref_mode_flags();
    __atomic_store_n(&__modkit_ref_slot_state[ref_index].going, 0u, __ATOMIC_SEQ_CST);
    return 0;
}

void modkit_ref_start(struct module *mod)
{
    if (mod == NULL)
        return;
    __atomic_store_n(&__modkit_ref_slot_state[mod->ref_index].going, 0u, __ATOMIC_SEQ_CST);
    /* Release: a get that reads live == 1 also observes what module_init wrote. */
    __atomic_store_n(&mod->live, 1, __ATOMIC_RELEASE);
}

void modkit_ref_restart(struct module *mod)
{
    modkit_ref_start(mod);
}

int modkit_ref_stop(struct module *mod)
{
    if (mod == NULL || mod->ref_index >= MODKIT_REF_SLOTS)
        return -EINVAL;

    if (mod->ref_flags & MODKIT_REF_FLAG_NO_UNLOAD) {
        __atomic_store_n(&mod->live, 0, __ATOMIC_SEQ_CST);
        return -EOPNOTSUPP;
    }

    /* going before live: a get that reads live == 0 then reads going == 1 in
     * the put that undoes it. */
    __atomic_store_n(&__modkit_ref_slot_state[mod->ref_index].going, 1u, __ATOMIC_SEQ_CST);
    __atomic_store_n(&mod->live, 0, __ATOMIC_SEQ_CST);

    if (modkit_ref_mode() == MODKIT_REF_MODE_MEMBARRIER)
        return modkit_membarrier_private_expedited();
    MODKIT_REF_FENCE(__ATOMIC_SEQ_CST);
    return 0;
}

void __modkit_ref_wake(unsigned int ref_index)
{
    unsigned int *wake_seq = &__modkit_ref_slot_state[ref_index].wake_seq;

    __atomic_fetch_add(wake_seq, 1u, __ATOMIC_SEQ_CST);
    modkit_futex_wake(wake_seq, INT_MAX);
}

static long monotonic_now_ns(void)
{
    struct timespec now;

    clock_gettime(CLOCK_MONOTONIC, &now);
    return now.tv_sec * 1000000000L + now.tv_nsec;
}

int modkit_ref_wait_zero(struct module *mod, long timeout_ns)
{
    struct modkit_ref_slot_state *state;
    long deadline = 0;

    if (mod == NULL || mod->ref_index >= MODKIT_REF_SLOTS)
        return -EINVAL;
    state = &__modkit_ref_slot_state[mod->ref_index];
    /* Puts wake the waiter only while going is set. */
    if (!__atomic_load_n(&state->going, __ATOMIC_SEQ_CST))
        return -EINVAL;
    if (timeout_ns >= 0)
        deadline = monotonic_now_ns() + timeout_ns;

    for (;;) {
        unsigned int seen = __atomic_load_n(&state->wake_seq, __ATOMIC_SEQ_CST);
        long count = modkit_ref_sum(mod->ref_index);
        long remaining = -1;

        if (count == 0)
            return 0;
        if (count < 0)
            return -ERANGE;
        if (timeout_ns >= 0) {
            remaining = deadline - monotonic_now_ns();
            if (remaining <= 0)
                return -ETIMEDOUT;
        }
        /* Returns at once if a put bumped wake_seq after it was read. A
         * timeout or signal also ends the sleep, and the loop sums again. */
        modkit_futex_wait(&state->wake_seq, seen, remaining);
    }
}

unsigned long module_refcount(struct module *mod)
{
    long count;

    if (mod == NULL || (mod->ref_flags & MODKIT_REF_FLAG_NO_UNLOAD))
        return 0;
    count = modkit_ref_sum(mod->ref_index);
    return count > 0 ? (unsigned long)count : 0;
}
