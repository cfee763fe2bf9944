#define _GNU_SOURCE
#include <link.h>
#include <stddef.h>

#include "modkit/process.h"

struct generation {
    unsigned long long adds;
    unsigned long long subs;
    int found;
};

static int read_generation(struct dl_phdr_info *info, size_t size, void *data)
{
    struct generation *generation = data;

    if (size < offsetof(struct dl_phdr_info, dlpi_subs) + sizeof(info->dlpi_subs))
        return 1;
    generation->adds = info->dlpi_adds;
    generation->subs = info->dlpi_subs;
    generation->found = 1;
    /* Every entry carries the same counts; the first is enough. */
    return 1;
}

int modkit_library_generation(unsigned long long *adds, unsigned long long *subs)
{
    struct generation generation = {0, 0, 0};

    dl_iterate_phdr(read_generation, &generation);
    if (!generation.found)
        return -1;
    *adds = generation.adds;
    *subs = generation.subs;
    return 0;
}
