/*
 * Tests of module reference counting, run once per mode:
 *   refcount_test membarrier|fence|no-unload
 * Each test uses its own ref_index so that counts left by one test cannot
 * hide a failure in another.
 */
#define _GNU_SOURCE
#include <modkit/module.h>
#include <modkit/refcount_control.h>

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "test_harness.h"

/* Compiled as C++ in cxx_refcount_probe.cpp. */
bool cxx_try_module_get(struct module *mod);
void cxx_module_put(struct module *mod);

#ifdef MODKIT_REF_USE_ATOMICS
static const int thread_sanitizer_build = 1;
#else
static const int thread_sanitizer_build = 0;
#endif

/* Module structs live as long as the process, like a slot that a removed
 * module may still be counted in. */
static struct module test_modules[64] __attribute__((aligned(64)));
static unsigned int next_ref_index = 1;

static struct module *new_module(const char *name)
{
    struct module *mod;

    if (next_ref_index >= sizeof test_modules / sizeof test_modules[0])
        abort();
    mod = &test_modules[next_ref_index];
    if (modkit_module_struct_init(mod, name, next_ref_index++, 0) != 0)
        abort();
    return mod;
}

static struct module *new_live_module(const char *name)
{
    struct module *mod = new_module(name);

    modkit_ref_start(mod);
    return mod;
}

static long elapsed_ms(const struct timespec *start)
{
    struct timespec now;

    clock_gettime(CLOCK_MONOTONIC, &now);
    return (now.tv_sec - start->tv_sec) * 1000 + (now.tv_nsec - start->tv_nsec) / 1000000;
}

static void sleep_ms(long milliseconds)
{
    struct timespec duration = {milliseconds / 1000, (milliseconds % 1000) * 1000000L};

    nanosleep(&duration, NULL);
}

static pthread_t start_thread(void *(*function)(void *), void *argument)
{
    pthread_t thread;

    if (pthread_create(&thread, NULL, function, argument) != 0)
        abort();
    return thread;
}

/* ---- Basic counting ---- */

static void test_struct_init_rejects_bad_index(void)
{
    struct module mod;

    CHECK(modkit_module_struct_init(&mod, "bad", MODKIT_REF_SLOTS, 0) == -EINVAL, "index past the end");
    CHECK(modkit_module_struct_init(NULL, "bad", 1, 0) == -EINVAL, "NULL module");
    CHECK(modkit_module_struct_init(&mod, "good", MODKIT_REF_SLOTS - 1, 0) == 0, "last index");
    CHECK(mod.live == 0, "a new module is not live");
    CHECK(mod.ref_flags == modkit_ref_mode_flags(), "flags 0x%x", mod.ref_flags);
}

static void test_null_module_get_put(void)
{
    CHECK(try_module_get(NULL), "NULL module must succeed");
    module_put(NULL);
    __module_get(NULL);
    CHECK(module_refcount(NULL) == 0, "NULL module count");
}

static void test_get_fails_before_start(void)
{
    struct module *mod = new_module("initializing");

    CHECK(!try_module_get(mod), "get during init must fail");
    CHECK(modkit_ref_sum(mod->ref_index) == 0, "failed get left count %ld", modkit_ref_sum(mod->ref_index));
    modkit_ref_start(mod);
    CHECK(try_module_get(mod), "get after start must succeed");
    module_put(mod);
}

static void test_single_thread_balance(void)
{
    struct module *mod = new_live_module("single");
    int i;

    for (i = 0; i < 1000; i++)
        CHECK(try_module_get(mod), "get %d failed", i);
    CHECK(module_refcount(mod) == 1000, "count %lu after 1000 gets", module_refcount(mod));
    __module_get(mod);
    CHECK(module_refcount(mod) == 1001, "count %lu after __module_get", module_refcount(mod));
    for (i = 0; i < 1001; i++)
        module_put(mod);
    CHECK(module_refcount(mod) == 0, "count %lu after all puts", module_refcount(mod));
    CHECK(modkit_ref_sum(mod->ref_index) == 0, "sum %ld", modkit_ref_sum(mod->ref_index));
}

/* ---- Threads ---- */

enum { BALANCE_THREADS = 4, BALANCE_ITERATIONS = 200000 };

static void *get_put_many(void *argument)
{
    struct module *mod = argument;
    long failures = 0;
    int i;

    for (i = 0; i < BALANCE_ITERATIONS; i++) {
        if (!try_module_get(mod))
            failures++;
        else
            module_put(mod);
    }
    return (void *)failures;
}

static void test_threads_balance(void)
{
    struct module *mod = new_live_module("balance");
    pthread_t threads[BALANCE_THREADS];
    int i;

    for (i = 0; i < BALANCE_THREADS; i++)
        threads[i] = start_thread(get_put_many, mod);
    for (i = 0; i < BALANCE_THREADS; i++) {
        void *failures;

        pthread_join(threads[i], &failures);
        CHECK(failures == NULL, "thread %d had %ld failed gets", i, (long)failures);
    }
    CHECK(modkit_ref_sum(mod->ref_index) == 0, "sum %ld", modkit_ref_sum(mod->ref_index));
}

struct transfer {
    struct module *mod;
    int count;
};

static void *get_count(void *argument)
{
    struct transfer *transfer = argument;
    int i;

    for (i = 0; i < transfer->count; i++)
        try_module_get(transfer->mod);
    return NULL;
}

static void *put_count(void *argument)
{
    struct transfer *transfer = argument;
    int i;

    for (i = 0; i < transfer->count; i++)
        module_put(transfer->mod);
    return NULL;
}

static void test_get_and_put_on_different_threads(void)
{
    struct module *mod = new_live_module("transfer");
    struct transfer transfer = {mod, 5000};

    pthread_join(start_thread(get_count, &transfer), NULL);
    CHECK(module_refcount(mod) == 5000, "count %lu after the getter exited", module_refcount(mod));
    pthread_join(start_thread(put_count, &transfer), NULL);
    CHECK(module_refcount(mod) == 0, "count %lu after another thread put", module_refcount(mod));
}

static void *prepare_then_count(void *argument)
{
    struct transfer *transfer = argument;
    size_t blocks;

    CHECK(modkit_ref_prepare_thread() == 0, "preparing the thread failed");
    blocks = modkit_ref_block_count();
    CHECK(modkit_ref_prepare_thread() == 0, "preparing the thread a second time failed");
    CHECK(try_module_get(transfer->mod), "get failed");
    module_put(transfer->mod);
    CHECK(modkit_ref_block_count() == blocks, "the first count mapped a block (%zu, was %zu)",
          modkit_ref_block_count(), blocks);
    return NULL;
}

static void test_prepare_thread(void)
{
    struct module *mod = new_live_module("prepare");
    struct transfer transfer = {mod, 0};

    pthread_join(start_thread(prepare_then_count, &transfer), NULL);
    CHECK(modkit_ref_sum(mod->ref_index) == 0, "sum %ld", modkit_ref_sum(mod->ref_index));
}

static void test_thread_exit_keeps_counts(void)
{
    struct module *mod = new_live_module("exit");
    struct transfer transfer = {mod, 5};
    size_t blocks_before;
    int i;

    /* Leaves an unowned block behind for the next thread to claim. */
    pthread_join(start_thread(get_count, &transfer), NULL);
    blocks_before = modkit_ref_block_count();
    CHECK(modkit_ref_sum(mod->ref_index) == 5, "sum %ld after the thread exited", modkit_ref_sum(mod->ref_index));

    transfer.count = 1;
    pthread_join(start_thread(get_count, &transfer), NULL);
    CHECK(modkit_ref_block_count() == blocks_before, "a new thread mapped a block (%zu, was %zu)",
          modkit_ref_block_count(), blocks_before);
    CHECK(modkit_ref_sum(mod->ref_index) == 6, "sum %ld after a second thread", modkit_ref_sum(mod->ref_index));

    for (i = 0; i < 6; i++)
        module_put(mod);
    CHECK(modkit_ref_sum(mod->ref_index) == 0, "sum %ld", modkit_ref_sum(mod->ref_index));
}

static void *cxx_get_put(void *argument)
{
    struct module *mod = argument;
    long failures = 0;
    int i;

    for (i = 0; i < 10000; i++) {
        if (cxx_try_module_get(mod))
            cxx_module_put(mod);
        else
            failures++;
    }
    return (void *)failures;
}

static void test_cxx_inline_functions(void)
{
    struct module *mod = new_live_module("cxx");
    void *failures;

    pthread_join(start_thread(cxx_get_put, mod), &failures);
    CHECK(failures == NULL, "%ld gets failed", (long)failures);
    CHECK(cxx_try_module_get(mod), "get from C++ failed");
    CHECK(module_refcount(mod) == 1, "count %lu", module_refcount(mod));
    module_put(mod);
    CHECK(module_refcount(mod) == 0, "count %lu", module_refcount(mod));
}

/* ---- Signal handlers ---- */

static struct module *signal_module;
static volatile sig_atomic_t signal_handler_runs;
static volatile sig_atomic_t signal_handler_failures;

static void get_put_in_handler(int signal_number)
{
    (void)signal_number;
    if (try_module_get(signal_module)) {
        __module_get(signal_module);
        module_put(signal_module);
        module_put(signal_module);
    } else {
        signal_handler_failures++;
    }
    signal_handler_runs++;
}

static void test_signal_handler_interrupting_counts(void)
{
    struct sigaction action;
    struct itimerval interval = {{0, 50}, {0, 50}};
    struct itimerval stop = {{0, 0}, {0, 0}};
    struct timespec start;
    long iterations = 0;

    signal_module = new_live_module("signal");
    signal_handler_runs = 0;
    signal_handler_failures = 0;
    memset(&action, 0, sizeof action);
    action.sa_handler = get_put_in_handler;
    sigaction(SIGPROF, &action, NULL);
    setitimer(ITIMER_PROF, &interval, NULL);

    clock_gettime(CLOCK_MONOTONIC, &start);
    while (elapsed_ms(&start) < 500 || signal_handler_runs < 100) {
        if (try_module_get(signal_module))
            module_put(signal_module);
        iterations++;
        if (elapsed_ms(&start) > 10000)
            break;
    }
    setitimer(ITIMER_PROF, &stop, NULL);
    signal(SIGPROF, SIG_IGN);

    CHECK(signal_handler_runs >= 100, "only %d signals arrived", (int)signal_handler_runs);
    CHECK(signal_handler_failures == 0, "%d gets failed in the handler", (int)signal_handler_failures);
    CHECK(modkit_ref_sum(signal_module->ref_index) == 0, "sum %ld after %ld iterations and %d signals",
          modkit_ref_sum(signal_module->ref_index), iterations, (int)signal_handler_runs);
}

static int first_count_done;

static void *wait_for_first_count(void *argument)
{
    struct module *mod = argument;

    while (!__atomic_load_n(&first_count_done, __ATOMIC_ACQUIRE))
        sched_yield();
    if (try_module_get(mod))
        module_put(mod);
    return NULL;
}

static void first_count_in_handler(int signal_number)
{
    (void)signal_number;
    if (try_module_get(signal_module))
        module_put(signal_module);
    __atomic_store_n(&first_count_done, 1, __ATOMIC_RELEASE);
}

static void test_first_count_in_signal_handler(void)
{
    struct sigaction action;
    pthread_t thread;
    size_t blocks_before = modkit_ref_block_count();

    signal_module = new_live_module("first-in-handler");
    __atomic_store_n(&first_count_done, 0, __ATOMIC_RELEASE);
    memset(&action, 0, sizeof action);
    action.sa_handler = first_count_in_handler;
    sigaction(SIGUSR1, &action, NULL);

    thread = start_thread(wait_for_first_count, signal_module);
    pthread_kill(thread, SIGUSR1);
    pthread_join(thread, NULL);
    signal(SIGUSR1, SIG_DFL);

    CHECK(first_count_done, "the handler did not run");
    CHECK(modkit_ref_block_count() <= blocks_before + 1, "blocks grew from %zu to %zu", blocks_before,
          modkit_ref_block_count());
    CHECK(modkit_ref_sum(signal_module->ref_index) == 0, "sum %ld", modkit_ref_sum(signal_module->ref_index));
}

/* ---- Stopping while other threads count ---- */

enum { HAMMER_THREADS = 4, HAMMER_ROUNDS = 300 };

struct hammer {
    struct module *mod;
    /* Even while the module is live, odd from modkit_ref_stop until the
     * main thread restarts it. */
    unsigned long phase;
    int done;
    /* References taken and not yet dropped, per thread. */
    long held[HAMMER_THREADS];
    /* References handed to another thread to drop. */
    long in_mailbox;
    long gets_after_stop;
    long gets;
};

struct hammer_worker {
    struct hammer *hammer;
    int index;
    unsigned int random_state;
};

static void *hammer_worker(void *argument)
{
    struct hammer_worker *worker = argument;
    struct hammer *hammer = worker->hammer;
    long *held = &hammer->held[worker->index];

    while (!__atomic_load_n(&hammer->done, __ATOMIC_ACQUIRE)) {
        unsigned long phase_before = __atomic_load_n(&hammer->phase, __ATOMIC_SEQ_CST);
        unsigned int choice = (unsigned int)rand_r(&worker->random_state);
        long mailbox;

        /* Drop a reference that another thread took. */
        mailbox = __atomic_load_n(&hammer->in_mailbox, __ATOMIC_SEQ_CST);
        if (mailbox > 0 && __atomic_compare_exchange_n(&hammer->in_mailbox, &mailbox, mailbox - 1, false,
                                                       __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST))
            module_put(hammer->mod);

        if (!try_module_get(hammer->mod))
            continue;
        __atomic_fetch_add(&hammer->gets, 1, __ATOMIC_RELAXED);
        if ((phase_before & 1) && __atomic_load_n(&hammer->phase, __ATOMIC_SEQ_CST) == phase_before)
            __atomic_fetch_add(&hammer->gets_after_stop, 1, __ATOMIC_RELAXED);

        /* held may show fewer references than the thread has, never more:
         * it goes up after a get and down before a put. */
        __atomic_store_n(held, 1, __ATOMIC_SEQ_CST);
        if (choice % 4 == 0) {
            __module_get(hammer->mod);
            __atomic_store_n(held, 2, __ATOMIC_SEQ_CST);
            __atomic_store_n(held, 1, __ATOMIC_SEQ_CST);
            module_put(hammer->mod);
        }
        if (choice % 64 == 0)
            sleep_ms(1);
        if (choice % 8 == 1) {
            /* Leaves held before it enters the mailbox, so the main thread,
             * which reads held first, never counts it twice. */
            __atomic_store_n(held, 0, __ATOMIC_SEQ_CST);
            __atomic_fetch_add(&hammer->in_mailbox, 1, __ATOMIC_SEQ_CST);
        } else {
            __atomic_store_n(held, 0, __ATOMIC_SEQ_CST);
            module_put(hammer->mod);
        }
    }
    return NULL;
}

static void test_stop_with_concurrent_getters(void)
{
    struct hammer hammer;
    struct hammer_worker workers[HAMMER_THREADS];
    pthread_t threads[HAMMER_THREADS];
    long undercounts = 0;
    long wait_failures = 0;
    long stop_failures = 0;
    long nonzero_sums = 0;
    int round;
    int i;

    memset(&hammer, 0, sizeof hammer);
    hammer.mod = new_live_module("hammer");
    for (i = 0; i < HAMMER_THREADS; i++) {
        workers[i].hammer = &hammer;
        workers[i].index = i;
        workers[i].random_state = (unsigned int)i * 7919u + 1u;
        threads[i] = start_thread(hammer_worker, &workers[i]);
    }

    for (round = 0; round < HAMMER_ROUNDS; round++) {
        long sum;
        long held = 0;
        int result;

        sleep_ms(1);
        result = modkit_ref_stop(hammer.mod);
        __atomic_fetch_add(&hammer.phase, 1, __ATOMIC_SEQ_CST);
        if (result != 0)
            stop_failures++;

        /* Every reference held now was taken before the stop, so the sum
         * must include it. Held counts are read after the sum, so anything
         * they show was still held while the sum ran. */
        sum = modkit_ref_sum(hammer.mod->ref_index);
        for (i = 0; i < HAMMER_THREADS; i++)
            held += __atomic_load_n(&hammer.held[i], __ATOMIC_SEQ_CST);
        held += __atomic_load_n(&hammer.in_mailbox, __ATOMIC_SEQ_CST);
        if (sum < held) {
            undercounts++;
            fprintf(stderr, "round %d: sum %ld below %ld references held\n", round, sum, held);
        }
        if (sum != 0)
            nonzero_sums++;

        /* The workers keep emptying the mailbox and cannot take new
         * references, so the count must reach zero. */
        result = modkit_ref_wait_zero(hammer.mod, 10L * 1000 * 1000 * 1000);
        if (result != 0) {
            wait_failures++;
            fprintf(stderr, "round %d: wait_zero returned %d with sum %ld\n", round, result,
                    modkit_ref_sum(hammer.mod->ref_index));
        }

        __atomic_fetch_add(&hammer.phase, 1, __ATOMIC_SEQ_CST);
        modkit_ref_restart(hammer.mod);
    }

    __atomic_store_n(&hammer.done, 1, __ATOMIC_RELEASE);
    for (i = 0; i < HAMMER_THREADS; i++)
        pthread_join(threads[i], NULL);
    while (hammer.in_mailbox > 0) {
        hammer.in_mailbox--;
        module_put(hammer.mod);
    }

    printf("  %d rounds, %ld gets, %ld rounds stopped with references held\n", HAMMER_ROUNDS, hammer.gets,
           nonzero_sums);
    CHECK(stop_failures == 0, "%ld stops failed", stop_failures);
    CHECK(undercounts == 0, "%ld sums were below the references held", undercounts);
    CHECK(hammer.gets_after_stop == 0, "%ld gets succeeded after stop returned", hammer.gets_after_stop);
    CHECK(wait_failures == 0, "%ld waits failed", wait_failures);
    CHECK(nonzero_sums > 0, "no round caught a reference held, so the test proved little");
    CHECK(modkit_ref_sum(hammer.mod->ref_index) == 0, "final sum %ld", modkit_ref_sum(hammer.mod->ref_index));
}

/* One getter and the remover start each round together, as in a
 * store-buffering litmus test, so that the getter's count is often still in
 * its CPU's store buffer when the remover stops the module. A get that
 * succeeds must then be in the remover's sum. With the barrier removed from
 * modkit_ref_stop, or the fence from get in fence mode, some rounds fail
 * this, but not in every run: a pass is evidence, not proof. */

enum { LITMUS_ROUNDS = 50000, LITMUS_ADJUST_EVERY = 500 };

enum { LITMUS_SCRATCH_LINES = 8 };

struct litmus {
    struct module *mod;
    /* Both threads wait for round to change, then race. */
    unsigned int round;
    unsigned int getter_done;
    int got;
    /* Cache lines that the remover writes before each round and the getter
     * writes just before its get. Those stores miss in the getter's cache,
     * and its count waits in the store buffer behind them, which widens the
     * window that the remover's barrier must close. */
    struct {
        volatile unsigned long word;
    } __attribute__((aligned(64))) scratch[LITMUS_SCRATCH_LINES];
};

static void write_scratch_lines(struct litmus *litmus, unsigned long value)
{
    int line;

    for (line = 0; line < LITMUS_SCRATCH_LINES; line++)
        litmus->scratch[line].word = value;
}

/* Spins for a random short time, so that over many rounds the getter's and
 * the remover's steps overlap in every order. */
static void spin_randomly(unsigned int *random_state, unsigned int limit)
{
    unsigned int count = (unsigned int)rand_r(random_state) % limit;
    volatile unsigned int i;

    for (i = 0; i < count; i++)
        ;
}

static void *litmus_getter(void *argument)
{
    struct litmus *litmus = argument;
    unsigned int random_state = 12345;
    unsigned int round;

    for (round = 1; round <= LITMUS_ROUNDS; round++) {
        /* Yield while waiting: on an oversubscribed machine a spinning
         * handshake can cost a whole time slice per round. The race itself
         * (spin_randomly, then the get) does not yield. */
        while (__atomic_load_n(&litmus->round, __ATOMIC_ACQUIRE) != round)
            sched_yield();
        spin_randomly(&random_state, 64);
        write_scratch_lines(litmus, round);
        litmus->got = try_module_get(litmus->mod);
        __atomic_store_n(&litmus->getter_done, round, __ATOMIC_RELEASE);
    }
    return NULL;
}

static void test_stop_races_single_get(void)
{
    static struct litmus litmus;
    unsigned int random_state = 54321;
    /* The remover's delay limit, adjusted so that about half the gets win:
     * the overlap that matters depends on this machine's cache latency. */
    unsigned int delay_limit = 256;
    long wins_since_adjust = 0;
    pthread_t thread;
    long missed = 0;
    long got = 0;
    unsigned int round;

    memset((void *)&litmus, 0, sizeof litmus);
    litmus.mod = new_live_module("litmus");
    thread = start_thread(litmus_getter, &litmus);
    for (round = 1; round <= LITMUS_ROUNDS; round++) {
        long sum;

        write_scratch_lines(&litmus, round);
        __atomic_store_n(&litmus.round, round, __ATOMIC_RELEASE);
        /* The getter reads the new round only after a cache miss. */
        spin_randomly(&random_state, delay_limit);
        modkit_ref_stop(litmus.mod);
        sum = modkit_ref_sum(litmus.mod->ref_index);
        while (__atomic_load_n(&litmus.getter_done, __ATOMIC_ACQUIRE) != round)
            sched_yield();
        if (litmus.got) {
            got++;
            wins_since_adjust++;
            if (sum < 1)
                missed++;
            module_put(litmus.mod);
        }
        modkit_ref_restart(litmus.mod);

        if (round % LITMUS_ADJUST_EVERY == 0) {
            if (wins_since_adjust < LITMUS_ADJUST_EVERY * 3 / 10 && delay_limit < (1u << 16))
                delay_limit *= 2;
            else if (wins_since_adjust > LITMUS_ADJUST_EVERY * 7 / 10 && delay_limit > 2)
                delay_limit /= 2;
            wins_since_adjust = 0;
        }
    }
    pthread_join(thread, NULL);

    printf("  %d rounds, %ld gets won the race\n", LITMUS_ROUNDS, got);
    CHECK(missed == 0, "%ld successful gets were missing from the sum", missed);
    CHECK(modkit_ref_sum(litmus.mod->ref_index) == 0, "sum %ld", modkit_ref_sum(litmus.mod->ref_index));
}

/* ---- Waiting for zero ---- */

struct delayed_put {
    struct module *mod;
    long delay_ms;
};

static void *put_after_delay(void *argument)
{
    struct delayed_put *delayed = argument;

    sleep_ms(delayed->delay_ms);
    module_put(delayed->mod);
    return NULL;
}

static void test_wait_woken_by_last_put(void)
{
    struct module *mod = new_live_module("last-put");
    struct delayed_put delayed = {mod, 200};
    struct timespec start;
    pthread_t thread;
    int result;

    CHECK(try_module_get(mod), "get failed");
    CHECK(modkit_ref_stop(mod) == 0, "stop failed");
    CHECK(!try_module_get(mod), "get succeeded after stop");

    clock_gettime(CLOCK_MONOTONIC, &start);
    thread = start_thread(put_after_delay, &delayed);
    result = modkit_ref_wait_zero(mod, 10L * 1000 * 1000 * 1000);
    pthread_join(thread, NULL);

    CHECK(result == 0, "wait returned %d", result);
    CHECK(elapsed_ms(&start) >= 150, "returned after %ld ms, before the put", elapsed_ms(&start));
    CHECK(elapsed_ms(&start) < 5000, "took %ld ms, so the put did not wake it", elapsed_ms(&start));
}

static void test_wait_times_out_while_held(void)
{
    struct module *mod = new_live_module("timeout");
    struct timespec start;
    int result;

    CHECK(try_module_get(mod), "get failed");
    CHECK(modkit_ref_stop(mod) == 0, "stop failed");
    clock_gettime(CLOCK_MONOTONIC, &start);
    result = modkit_ref_wait_zero(mod, 100L * 1000 * 1000);
    CHECK(result == -ETIMEDOUT, "wait returned %d", result);
    CHECK(elapsed_ms(&start) >= 90, "timed out after only %ld ms", elapsed_ms(&start));
    CHECK(modkit_ref_wait_zero(mod, 0) == -ETIMEDOUT, "a zero timeout must not wait");

    module_put(mod);
    CHECK(modkit_ref_wait_zero(mod, 0) == 0, "count did not reach zero");
}

static void test_wait_requires_stop(void)
{
    struct module *mod = new_live_module("not-stopped");

    CHECK(modkit_ref_wait_zero(mod, 0) == -EINVAL, "waiting on a live module must fail");
    CHECK(modkit_ref_wait_zero(NULL, 0) == -EINVAL, "waiting on NULL must fail");
}

static void test_failed_get_wakes_waiter(void)
{
    struct module *mod = new_live_module("failed-get");
    unsigned int *wake_seq = &__modkit_ref_slot_state[mod->ref_index].wake_seq;
    unsigned int before;

    CHECK(modkit_ref_stop(mod) == 0, "stop failed");
    before = __atomic_load_n(wake_seq, __ATOMIC_SEQ_CST);
    CHECK(!try_module_get(mod), "get succeeded after stop");
    CHECK(__atomic_load_n(wake_seq, __ATOMIC_SEQ_CST) == before + 1,
          "the undo of a failed get did not wake (wake_seq %u, was %u)", __atomic_load_n(wake_seq, __ATOMIC_SEQ_CST),
          before);

    modkit_ref_restart(mod);
    before = __atomic_load_n(wake_seq, __ATOMIC_SEQ_CST);
    CHECK(try_module_get(mod), "get failed after restart");
    module_put(mod);
    CHECK(__atomic_load_n(wake_seq, __ATOMIC_SEQ_CST) == before, "a put on a live module woke the waiter");
}

struct failing_getter {
    struct module *mod;
    int stop;
    long attempts;
    long successes;
};

static void *get_until_stopped(void *argument)
{
    struct failing_getter *getter = argument;

    while (!__atomic_load_n(&getter->stop, __ATOMIC_ACQUIRE)) {
        if (try_module_get(getter->mod)) {
            __atomic_fetch_add(&getter->successes, 1, __ATOMIC_RELAXED);
            module_put(getter->mod);
        }
        __atomic_fetch_add(&getter->attempts, 1, __ATOMIC_RELAXED);
    }
    return NULL;
}

static void test_wait_with_only_failing_gets(void)
{
    struct failing_getter getter = {NULL, 0, 0, 0};
    pthread_t threads[2];
    int round;
    int failures = 0;

    getter.mod = new_live_module("only-failing");
    CHECK(modkit_ref_stop(getter.mod) == 0, "stop failed");
    threads[0] = start_thread(get_until_stopped, &getter);
    threads[1] = start_thread(get_until_stopped, &getter);
    for (round = 0; round < 1000; round++) {
        long attempts = __atomic_load_n(&getter.attempts, __ATOMIC_RELAXED);

        /* Lets the getters run between waits, so that waits overlap gets. */
        while (__atomic_load_n(&getter.attempts, __ATOMIC_RELAXED) < attempts + 10)
            sched_yield();
        if (modkit_ref_wait_zero(getter.mod, 5L * 1000 * 1000 * 1000) != 0)
            failures++;
    }
    __atomic_store_n(&getter.stop, 1, __ATOMIC_RELEASE);
    pthread_join(threads[0], NULL);
    pthread_join(threads[1], NULL);

    CHECK(getter.attempts > 0, "the getters never ran");
    CHECK(failures == 0, "%d of 1000 waits failed", failures);
    CHECK(getter.successes == 0, "%ld gets succeeded on a stopped module", getter.successes);
    CHECK(modkit_ref_sum(getter.mod->ref_index) == 0, "sum %ld", modkit_ref_sum(getter.mod->ref_index));
}

static void test_put_without_get_reported(void)
{
    struct module *mod = new_live_module("unbalanced");

    module_put(mod);
    CHECK(modkit_ref_sum(mod->ref_index) == -1, "sum %ld", modkit_ref_sum(mod->ref_index));
    CHECK(module_refcount(mod) == 0, "module_refcount must not wrap: %lu", module_refcount(mod));
    CHECK(modkit_ref_stop(mod) == 0, "stop failed");
    CHECK(modkit_ref_wait_zero(mod, 0) == -ERANGE, "a negative count must be reported");
}

static void test_reset_slot(void)
{
    struct module *mod = new_live_module("reset");
    struct transfer transfer = {mod, 3};

    pthread_join(start_thread(get_count, &transfer), NULL);
    CHECK(try_module_get(mod), "get failed");
    CHECK(modkit_ref_sum(mod->ref_index) == 4, "sum %ld", modkit_ref_sum(mod->ref_index));
    CHECK(modkit_ref_stop(mod) == 0, "stop failed");
    CHECK(modkit_ref_reset_slot(mod->ref_index) == 0, "reset failed");
    CHECK(modkit_ref_sum(mod->ref_index) == 0, "sum %ld after reset", modkit_ref_sum(mod->ref_index));
    CHECK(__modkit_ref_slot_state[mod->ref_index].going == 0, "reset left the slot going");
    CHECK(modkit_ref_reset_slot(MODKIT_REF_SLOTS) == -EINVAL, "index past the end");
}

/* ---- fork ---- */

struct holder {
    struct module *mod;
    int holding;
    int release;
};

static void *hold_until_released(void *argument)
{
    struct holder *holder = argument;

    try_module_get(holder->mod);
    try_module_get(holder->mod);
    __atomic_store_n(&holder->holding, 1, __ATOMIC_RELEASE);
    while (!__atomic_load_n(&holder->release, __ATOMIC_ACQUIRE))
        sleep_ms(1);
    module_put(holder->mod);
    module_put(holder->mod);
    return NULL;
}

/* Runs in the child and returns the number of failed checks. */
static int check_child_after_fork(struct module *mod, size_t parent_blocks)
{
    struct transfer transfer = {mod, 1};
    int failures = 0;

    /* The holder thread is gone, but its two references stay counted. */
    if (modkit_ref_sum(mod->ref_index) != 3) {
        fprintf(stderr, "child: sum %ld, expected 3\n", modkit_ref_sum(mod->ref_index));
        failures++;
    }
    /* The holder's block is unowned in the child, so a new thread claims
     * it instead of mapping another. */
    pthread_join(start_thread(get_count, &transfer), NULL);
    if (modkit_ref_block_count() != parent_blocks) {
        fprintf(stderr, "child: %zu blocks, parent had %zu\n", modkit_ref_block_count(), parent_blocks);
        failures++;
    }
    if (modkit_ref_sum(mod->ref_index) != 4) {
        fprintf(stderr, "child: sum %ld after a new thread's get\n", modkit_ref_sum(mod->ref_index));
        failures++;
    }
    module_put(mod);
    module_put(mod);
    if (modkit_ref_stop(mod) != 0) {
        fprintf(stderr, "child: stop failed, so membarrier was not registered again\n");
        failures++;
    }
    if (try_module_get(mod)) {
        fprintf(stderr, "child: get succeeded after stop\n");
        failures++;
    }
    return failures;
}

static void test_fork_keeps_counts(void)
{
    struct holder holder = {NULL, 0, 0};
    pthread_t thread;
    pid_t child;
    int status = 0;

    holder.mod = new_live_module("fork");
    thread = start_thread(hold_until_released, &holder);
    while (!__atomic_load_n(&holder.holding, __ATOMIC_ACQUIRE))
        sleep_ms(1);
    CHECK(try_module_get(holder.mod), "get failed");

    fflush(NULL);
    child = fork();
    if (child == 0)
        _exit(check_child_after_fork(holder.mod, modkit_ref_block_count()));
    CHECK(child > 0, "fork failed: %s", strerror(errno));
    waitpid(child, &status, 0);
    CHECK(WIFEXITED(status), "child did not exit normally (status 0x%x)", status);
    CHECK(WEXITSTATUS(status) == 0, "%d checks failed in the child", WEXITSTATUS(status));

    __atomic_store_n(&holder.release, 1, __ATOMIC_RELEASE);
    pthread_join(thread, NULL);
    module_put(holder.mod);
    CHECK(modkit_ref_sum(holder.mod->ref_index) == 0, "parent sum %ld", modkit_ref_sum(holder.mod->ref_index));
}

/* ---- Modes ---- */

static void test_mode_cannot_change_once_in_use(void)
{
    int mode = modkit_ref_mode();
    int other = mode == MODKIT_REF_MODE_FENCE ? MODKIT_REF_MODE_NO_UNLOAD : MODKIT_REF_MODE_FENCE;

    CHECK(modkit_ref_setup(other) == -EBUSY, "mode changed with modules set up");
    CHECK(modkit_ref_setup(mode) == mode, "setting the same mode again failed");
    CHECK(modkit_ref_setup(17) == -EINVAL, "unknown mode accepted");
}

static void test_no_unload_mode(void)
{
    struct module *mod = new_live_module("no-unload");
    size_t blocks_before = modkit_ref_block_count();
    int i;

    CHECK(mod->ref_flags & MODKIT_REF_FLAG_NO_UNLOAD, "flags 0x%x", mod->ref_flags);
    for (i = 0; i < 10; i++)
        CHECK(try_module_get(mod), "get failed on a live module");
    module_put(mod);
    __module_get(mod);
    CHECK(module_refcount(mod) == 0, "no-unload mode counted %lu", module_refcount(mod));
    CHECK(modkit_ref_sum(mod->ref_index) == 0, "sum %ld", modkit_ref_sum(mod->ref_index));
    CHECK(modkit_ref_block_count() == blocks_before, "a block was mapped");
    CHECK(modkit_ref_stop(mod) == -EOPNOTSUPP, "stop must report that there are no counts");
    CHECK(!try_module_get(mod), "get succeeded on a stopped module");
}

int main(int argc, char **argv)
{
    const char *requested = argc > 1 ? argv[1] : "membarrier";
    int mode;
    int expected;
    sigset_t no_signals;

    /* A parent may start this program with signals blocked (a libdispatch worker thread that
     * spawns it does), and the signal tests need SIGUSR1 and SIGPROF delivered. */
    sigemptyset(&no_signals);
    pthread_sigmask(SIG_SETMASK, &no_signals, NULL);

    if (strcmp(requested, "membarrier") == 0)
        expected = MODKIT_REF_MODE_MEMBARRIER;
    else if (strcmp(requested, "fence") == 0)
        expected = MODKIT_REF_MODE_FENCE;
    else if (strcmp(requested, "no-unload") == 0)
        expected = MODKIT_REF_MODE_NO_UNLOAD;
    else {
        fprintf(stderr, "usage: %s membarrier|fence|no-unload\n", argv[0]);
        return 2;
    }

    mode = modkit_ref_setup(expected);
    printf("mode requested %s, in effect %s\n", requested, modkit_ref_mode_name());
    if (mode != expected) {
        fprintf(stderr, "modkit_ref_setup(%s) returned %d\n", requested, mode);
        return 1;
    }

    RUN_TEST(test_struct_init_rejects_bad_index);
    RUN_TEST(test_null_module_get_put);
    RUN_TEST(test_get_fails_before_start);
    RUN_TEST(test_mode_cannot_change_once_in_use);
    if (mode == MODKIT_REF_MODE_NO_UNLOAD) {
        RUN_TEST(test_no_unload_mode);
        return finish_tests("refcount");
    }
    RUN_TEST(test_single_thread_balance);
    RUN_TEST(test_threads_balance);
    RUN_TEST(test_get_and_put_on_different_threads);
    RUN_TEST(test_thread_exit_keeps_counts);
    RUN_TEST(test_prepare_thread);
    RUN_TEST(test_cxx_inline_functions);
    RUN_TEST(test_signal_handler_interrupting_counts);
    RUN_TEST(test_first_count_in_signal_handler);
    RUN_TEST(test_wait_woken_by_last_put);
    RUN_TEST(test_wait_times_out_while_held);
    RUN_TEST(test_wait_requires_stop);
    RUN_TEST(test_failed_get_wakes_waiter);
    RUN_TEST(test_wait_with_only_failing_gets);
    RUN_TEST(test_put_without_get_reported);
    RUN_TEST(test_reset_slot);
    RUN_TEST(test_stop_with_concurrent_getters);
    RUN_TEST(test_stop_races_single_get);
    if (thread_sanitizer_build)
        skip_test("test_fork_keeps_counts", "ThreadSanitizer cannot start threads in a child forked from a threaded process");
    else
        RUN_TEST(test_fork_keeps_counts);
    return finish_tests("refcount");
}
