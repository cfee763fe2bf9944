/*
 * Instruction cache maintenance for code the loader writes.
 */
#ifndef MODKIT_CACHE_H
#define MODKIT_CACHE_H

#ifdef __cplusplus
extern "C" {
#endif

/* Makes the instructions stored in [start, end) visible to instruction fetch
 * on this CPU and every other: on aarch64 it cleans the data cache and
 * invalidates the instruction cache for the range (what GCC's and Clang's
 * __builtin___clear_cache emit); on x86_64 it does nothing, because the
 * hardware keeps the caches coherent. */
void modkit_synchronize_instruction_cache(void *start, void *end);

#ifdef __cplusplus
}
#endif

#endif
