/*
 * The host's side of module reference counting: choosing the mode at start,
 * setting up struct module, and stopping a module and waiting for its count
 * to reach zero before removal. The host decides when to do each step, and
 * these functions only carry them out.
 */
#ifndef MODKIT_REFCOUNT_CONTROL_H
#define MODKIT_REFCOUNT_CONTROL_H

#include <stddef.h>

#include "modkit/module.h"

#ifdef __cplusplus
extern "C" {
#endif

enum modkit_ref_mode {
    /* Membarrier mode where the kernel supports it, otherwise fence mode.
     * ThreadSanitizer builds always use fence mode. */
    MODKIT_REF_MODE_AUTO = 0,
    /* Gets and puts carry only a compiler barrier, and stopping a module
     * issues membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED). */
    MODKIT_REF_MODE_MEMBARRIER = 1,
    /* Gets and puts carry a seq_cst fence. Needs no kernel support. */
    MODKIT_REF_MODE_FENCE = 2,
    /* No counts: modules can be removed only by force. */
    MODKIT_REF_MODE_NO_UNLOAD = 3,
};

/* Chooses the reference counting mode and returns the mode in effect, which
 * is fence mode when membarrier was requested but is unavailable. Call it
 * before starting threads and before modkit_module_struct_init. Returns
 * -EBUSY when asked to change the mode after a module was set up, or
 * -EINVAL for an unknown mode. Without a call the mode is fence mode. */
int modkit_ref_setup(int requested_mode);

/* Returns the mode in effect, as an enum modkit_ref_mode value. */
int modkit_ref_mode(void);
/* Returns "membarrier", "fence" or "no-unload". */
const char *modkit_ref_mode_name(void);
/* Returns the MODKIT_REF_FLAG_* bits that the current mode requires. */
unsigned int modkit_ref_mode_flags(void);

/* Fills in a module's struct: not live, the given name and slot, and
 * ref_flags plus the current mode's flags. Clears the slot's removal state
 * but not its counts, which modkit_ref_reset_slot clears. Returns 0, or
 * -EINVAL for a NULL module or ref_index >= MODKIT_REF_SLOTS. */
int modkit_module_struct_init(struct module *mod, const char *name, unsigned int ref_index,
                              unsigned int ref_flags);

/* Makes try_module_get succeed: after module_init returns, and again after
 * a removal that was called off. */
void modkit_ref_start(struct module *mod);
/* Does the same as modkit_ref_start, under a name for calling off a removal. */
void modkit_ref_restart(struct module *mod);

/* Makes every later try_module_get on mod fail, and returns once every get
 * that succeeded is included in modkit_ref_sum. Returns 0, or -errno if
 * membarrier failed, in which case the module stays stopped but its sum
 * cannot be trusted. In no-unload mode it only clears live and returns
 * -EOPNOTSUPP, because there are no counts to wait for. */
int modkit_ref_stop(struct module *mod);

/* Returns the slot's reference count at one moment: never less than the
 * references held throughout the call, and possibly more while gets and
 * puts run. Safe to act on only after modkit_ref_stop. */
long modkit_ref_sum(unsigned int ref_index);

/* Waits until a stopped module's count is zero. Sleeps on a futex that
 * every module_put on the module wakes, so it does not poll. Returns 0,
 * -ETIMEDOUT after timeout_ns nanoseconds (negative: no limit), -EINVAL if
 * mod was not stopped, or -ERANGE if the count is negative, which means a
 * module_put without a matching get. */
int modkit_ref_wait_zero(struct module *mod, long timeout_ns);

/* Zeroes a slot's counts in every block and clears its removal state, for
 * reusing a slot whose module was removed by force with references held.
 * No thread may use the slot during the call. Returns 0 or -EINVAL. */
int modkit_ref_reset_slot(unsigned int ref_index);

/* Returns the number of per-thread counter blocks mapped so far. */
size_t modkit_ref_block_count(void);

/* Gives the calling thread its counter block now, unless it has one, so that its first
 * try_module_get does not map one. Returns 0, or -ENOMEM when no block could be mapped. The
 * thread's counts then go to a shared block updated with atomic adds. */
int modkit_ref_prepare_thread(void);

#ifdef __cplusplus
}
#endif

#endif
