// The inline reference counting functions compiled as C++, called from
// refcount_test.c to check that C++ modules count into the same blocks.
#include <modkit/module.h>

extern "C" bool cxx_try_module_get(struct module *mod)
{
    return try_module_get(mod);
}

extern "C" void cxx_module_put(struct module *mod)
{
    module_put(mod);
}
