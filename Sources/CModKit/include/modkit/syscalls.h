/*
 * Thin wrappers for the Linux system calls that Swift cannot call directly
 * (glibc has no wrapper for membarrier or futex, and Swift does not import
 * the variadic syscall()). Each returns the kernel's result, or -errno on
 * failure, and never touches errno's meaning for the caller.
 */
#ifndef MODKIT_SYSCALLS_H
#define MODKIT_SYSCALLS_H

#ifdef __cplusplus
extern "C" {
#endif

/* Registers the process for MEMBARRIER_CMD_PRIVATE_EXPEDITED. A forked child
 * has a new address space and must register again. */
int modkit_membarrier_register_private_expedited(void);

/* Runs a full memory barrier on every running thread of this process before
 * returning. Fails with -EPERM unless the process has registered. */
int modkit_membarrier_private_expedited(void);

/* For tests: while hook is set, modkit_membarrier_private_expedited calls it
 * first, and a nonzero errno it returns fails the call with that errno
 * instead of issuing membarrier. NULL removes it. ModKit sets it from
 * SystemCalls.faultHook. */
void modkit_set_membarrier_fault_hook(int (*hook)(void));

/* Returns the bit mask of membarrier commands the kernel supports. */
int modkit_membarrier_query(void);

/* Sleeps while *word == expected, for at most timeout_ns nanoseconds
 * (negative: no limit). Returns 0 when woken, -EAGAIN if *word already
 * differed, -ETIMEDOUT or -EINTR. The futex is process-private. */
int modkit_futex_wait(const unsigned int *word, unsigned int expected, long timeout_ns);

/* Wakes up to count threads sleeping on word. Returns how many woke. */
int modkit_futex_wake(const unsigned int *word, int count);

/* Returns the kernel thread id of the calling thread. */
int modkit_gettid(void);

/* Stores the CPUs that the calling thread may run on in cpus, in ascending order and at most
 * capacity of them. Returns how many it stored, or -errno. */
int modkit_allowed_cpus(int *cpus, int capacity);

/* Binds the calling thread to one CPU. Returns 0 or -errno. */
int modkit_bind_to_cpu(int cpu);

#ifdef __cplusplus
}
#endif

#endif
