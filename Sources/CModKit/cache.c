#include "modkit/cache.h"

void modkit_synchronize_instruction_cache(void *start, void *end)
{
    __builtin___clear_cache((char *)start, (char *)end);
}
