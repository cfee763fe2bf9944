/*
 * The host's side of the module API: the callbacks through which the C
 * functions that modules call reach the Swift host, and the table of host
 * symbols that the loader binds module references to.
 */
#ifndef MODKIT_HOST_H
#define MODKIT_HOST_H

#include <stddef.h>

#include "modkit/module.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Level passed to modkit_host_ops.log for a KERN_CONT message. Levels 0 to 7
 * are KERN_EMERG to KERN_DEBUG. */
#define MODKIT_LOGLEVEL_CONT (-2)
/* Level of a message with no prefix or with KERN_DEFAULT (KERN_WARNING). */
#define MODKIT_LOGLEVEL_DEFAULT 4
/* Maximum length of one message in bytes. Longer messages are truncated. */
#define MODKIT_LOG_LINE_MAX 1023

/* Callbacks that the host installs once at start. A NULL member makes the
 * matching call fail as if no host were installed. */
struct modkit_host_ops {
    /* Receives one message without its level prefix. text is NUL-terminated
     * at text[length]. owner is NULL for plain printk, and return_address
     * is the caller's, from which the host may find the module. */
    void (*log)(struct module *owner, int level, const char *text, size_t length,
                void *return_address);
    /* Backs __symbol_get: returns the symbol's address after taking a
     * reference on its module, or NULL. Not named symbol_get because
     * module.h defines that as a macro. */
    void *(*get_symbol)(const char *name);
    /* Backs __symbol_put. return_address is the caller's, from which the host
     * finds the module whose log gets a warning when nothing exports name. */
    void (*put_symbol)(const char *name, void *return_address);
    /* Returns 0 or -errno. */
    int (*register_command)(struct modkit_command *command);
    void (*unregister_command)(struct modkit_command *command);
    /* Backs modkit_call_command, which has checked its arguments. Returns 0
     * and stores the command's status, or returns -errno. */
    int (*call_command)(struct module *caller, const char *name, int argc, char **argv,
                        struct modkit_output *out, int *status);
    /* Returns 0 or -errno. text is NUL-terminated at text[length]. */
    int (*write_output)(struct modkit_output *out, const char *text, size_t length);
    /* Records function(argument) to run when the module that called atexit
     * or __cxa_atexit is removed. dso_handle is NULL for atexit, and
     * return_address is the module code that called. Returns 0 or -errno. */
    int (*register_exit_handler)(void (*function)(void *), void *argument, void *dso_handle,
                                 void *return_address);
};

/* Installs the host callbacks. ops must stay valid for the life of the
 * process. Before the first call, printk writes to stderr and the other
 * calls fail with NULL or -ENOSYS. */
void modkit_set_host_ops(const struct modkit_host_ops *ops);

/* A function or variable of the host under the name that modules use. */
struct modkit_host_symbol {
    const char *name;
    const void *address;
};

/* Returns the symbols that the loader resolves before the process's own,
 * and stores their number in *count. */
const struct modkit_host_symbol *modkit_host_symbols(size_t *count);

/* Returns MODKIT_VERMAGIC as this host was built, the version magic that
 * every module's .modinfo must match. */
const char *modkit_vermagic(void);

/* What a module's atexit and __cxa_atexit resolve to: they register the
 * function with the host, which runs it when the module is removed instead
 * of at process exit. They return 0, or nonzero on failure. */
int modkit_atexit(void (*function)(void));
int modkit_cxa_atexit(void (*function)(void *), void *argument, void *dso_handle);

#ifdef __cplusplus
}
#endif

#endif
