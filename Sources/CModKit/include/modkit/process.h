/*
 * Facts about the host process that Swift cannot reach directly.
 */
#ifndef MODKIT_PROCESS_H
#define MODKIT_PROCESS_H

#ifdef __cplusplus
extern "C" {
#endif

/* Stores the dynamic linker's counts of libraries loaded into and unloaded from the process
 * (dl_iterate_phdr's dlpi_adds and dlpi_subs). When neither changed, an address that dlsym
 * returned earlier is still valid. Returns 0, or -1 if the counts are unavailable. */
int modkit_library_generation(unsigned long long *adds, unsigned long long *subs);

#ifdef __cplusplus
}
#endif

#endif
