/*
 * Crash reports: a handler for fatal signals that prints, like a kernel oops, the signal, the
 * registers, a symbolized backtrace and the loaded modules, then lets the signal kill the
 * process as it would have.
 */
#ifndef MODKIT_CRASH_REPORT_H
#define MODKIT_CRASH_REPORT_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

struct modkit_crash_symbol {
    unsigned long long address;
    unsigned long long size;
    const char *name;
};

enum modkit_crash_owner_kind {
    MODKIT_CRASH_EXECUTABLE = 0,
    MODKIT_CRASH_LIBRARY = 1,
    MODKIT_CRASH_MODULE = 2,
};

/* The symbols of one executable, library or module, sorted by address. */
struct modkit_crash_owner {
    unsigned long long start;
    unsigned long long end;
    const char *name;
    int kind;
    const struct modkit_crash_symbol *symbols;
    size_t count;
    /* A module's taint letters, such as "PE", or "" when it is not tainted. */
    const char *taint;
};

struct modkit_crash_table {
    const struct modkit_crash_owner *owners;
    size_t count;
    /* The host's taint letters, or "" when it is not tainted. */
    const char *taint;
};

/* Makes table the one the handler reads, with an atomic store. The caller must keep the
 * table and everything it points to alive and unchanged for as long as a handler may read
 * it, which includes after a later call replaced it. */
void modkit_crash_publish(const struct modkit_crash_table *table);

/* Installs the handler for SIGSEGV, SIGBUS, SIGILL and SIGFPE on an alternate signal stack
 * of the calling thread. Returns 0, or -1 with errno set. */
int modkit_crash_install(void);

#ifdef __cplusplus
}
#endif

#endif
