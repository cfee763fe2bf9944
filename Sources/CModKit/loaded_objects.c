#define _GNU_SOURCE
#include <link.h>

#include "modkit/loaded_objects.h"

struct collection {
    struct modkit_loaded_object *objects;
    size_t capacity;
    size_t count;
};

static int collect(struct dl_phdr_info *info, size_t size, void *data)
{
    struct collection *collection = data;
    unsigned long long start = ~0ULL;
    unsigned long long end = 0;

    (void)size;
    for (ElfW(Half) i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *header = &info->dlpi_phdr[i];
        if (header->p_type != PT_LOAD)
            continue;
        unsigned long long low = info->dlpi_addr + header->p_vaddr;
        unsigned long long high = low + header->p_memsz;
        if (low < start)
            start = low;
        if (high > end)
            end = high;
    }
    if (end == 0)
        return 0;
    if (collection->count < collection->capacity) {
        struct modkit_loaded_object *object = &collection->objects[collection->count];
        object->name = info->dlpi_name ? info->dlpi_name : "";
        object->base = info->dlpi_addr;
        object->start = start;
        object->end = end;
    }
    collection->count++;
    return 0;
}

size_t modkit_loaded_objects(struct modkit_loaded_object *objects, size_t capacity)
{
    struct collection collection = {objects, capacity, 0};

    dl_iterate_phdr(collect, &collection);
    return collection.count;
}
