#define _GNU_SOURCE
#include "modkit/syscalls.h"

#include <errno.h>
#include <linux/futex.h>
#include <linux/membarrier.h>
#include <sched.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static int result_or_negative_errno(long result)
{
    return result == -1 ? -errno : (int)result;
}

int modkit_membarrier_register_private_expedited(void)
{
    return result_or_negative_errno(
        syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0));
}

static int (*membarrier_fault_hook)(void);

void modkit_set_membarrier_fault_hook(int (*hook)(void))
{
    __atomic_store_n(&membarrier_fault_hook, hook, __ATOMIC_RELEASE);
}

int modkit_membarrier_private_expedited(void)
{
    int (*hook)(void) = __atomic_load_n(&membarrier_fault_hook, __ATOMIC_ACQUIRE);

    if (hook != NULL) {
        int fault = hook();
        if (fault != 0)
            return -fault;
    }
    return result_or_negative_errno(
        syscall(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0));
}

int modkit_membarrier_query(void)
{
    return result_or_negative_errno(syscall(SYS_membarrier, MEMBARRIER_CMD_QUERY, 0, 0));
}

int modkit_futex_wait(const unsigned int *word, unsigned int expected, long timeout_ns)
{
    struct timespec timeout;
    struct timespec *timeout_pointer = NULL;

    /* FUTEX_WAIT takes a relative timeout measured on CLOCK_MONOTONIC. */
    if (timeout_ns >= 0) {
        timeout.tv_sec = timeout_ns / 1000000000L;
        timeout.tv_nsec = timeout_ns % 1000000000L;
        timeout_pointer = &timeout;
    }
    return result_or_negative_errno(
        syscall(SYS_futex, word, FUTEX_WAIT_PRIVATE, expected, timeout_pointer, NULL, 0));
}

int modkit_futex_wake(const unsigned int *word, int count)
{
    return result_or_negative_errno(
        syscall(SYS_futex, word, FUTEX_WAKE_PRIVATE, count, NULL, NULL, 0));
}

int modkit_gettid(void)
{
    return (int)syscall(SYS_gettid);
}

int modkit_allowed_cpus(int *cpus, int capacity)
{
    cpu_set_t set;
    int stored = 0;

    if (sched_getaffinity(0, sizeof(set), &set) != 0)
        return -errno;
    for (int cpu = 0; cpu < CPU_SETSIZE && stored < capacity; cpu++) {
        if (CPU_ISSET(cpu, &set))
            cpus[stored++] = cpu;
    }
    return stored;
}

int modkit_bind_to_cpu(int cpu)
{
    cpu_set_t set;

    if (cpu < 0 || cpu >= CPU_SETSIZE)
        return -EINVAL;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    return sched_setaffinity(0, sizeof(set), &set) == 0 ? 0 : -errno;
}
