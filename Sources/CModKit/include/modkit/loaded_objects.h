/*
 * The executable and shared libraries mapped into the process, as the dynamic linker lists
 * them.
 */
#ifndef MODKIT_LOADED_OBJECTS_H
#define MODKIT_LOADED_OBJECTS_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

struct modkit_loaded_object {
    /* dl_iterate_phdr's dlpi_name: the path the library was loaded from, or "" for the
     * executable. Valid only until the object is unloaded, so copy it at once. */
    const char *name;
    /* The load bias (dlpi_addr), added to every address in the object's file. */
    unsigned long long base;
    /* The lowest and one past the highest address of the object's PT_LOAD segments. */
    unsigned long long start;
    unsigned long long end;
};

/* Stores up to capacity loaded objects, in the dynamic linker's order (the executable
 * first), into objects. Returns the number of objects in the process, which may exceed
 * capacity; call again with a larger array in that case. */
size_t modkit_loaded_objects(struct modkit_loaded_object *objects, size_t capacity);

#ifdef __cplusplus
}
#endif

#endif
