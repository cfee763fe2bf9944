/* Declarations shared by refcount.c and refcount_blocks.c. Not installed. */
#ifndef MODKIT_REFCOUNT_INTERNAL_H
#define MODKIT_REFCOUNT_INTERNAL_H

#include "modkit/module.h"

/* Creates the thread-exit key and publishes __modkit_thread_offset. Runs
 * from a constructor, and again harmlessly from modkit_ref_setup. */
void modkit_ref_blocks_init(void);

/* Marks every block except the calling thread's as unowned, because the
 * threads that owned them do not exist in a forked child. */
void modkit_ref_blocks_after_fork_child(void);

#endif
