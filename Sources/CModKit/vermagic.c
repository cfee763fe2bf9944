/* The version magic of the module ABI this host was built with. */
#include "modkit/host.h"

const char *modkit_vermagic(void)
{
    return MODKIT_VERMAGIC;
}
