/* The host symbols that module references bind to, under module names. */
#include "modkit/host.h"

static const struct modkit_host_symbol host_symbols[] = {
    {"printk", (const void *)printk},
    {"_modkit_printk", (const void *)_modkit_printk},
    {"modkit_printf", (const void *)modkit_printf},
    {"__symbol_get", (const void *)__symbol_get},
    {"__symbol_put", (const void *)__symbol_put},
    {"modkit_register_command", (const void *)modkit_register_command},
    {"modkit_unregister_command", (const void *)modkit_unregister_command},
    {"modkit_call_command", (const void *)modkit_call_command},
    {"module_refcount", (const void *)module_refcount},
    /* Referenced by the inline try_module_get, __module_get and module_put. */
    {"__modkit_ref_count_slow", (const void *)__modkit_ref_count_slow},
    {"__modkit_ref_wake", (const void *)__modkit_ref_wake},
    {"__modkit_thread_offset", (const void *)&__modkit_thread_offset},
    {"__modkit_ref_slot_state", (const void *)__modkit_ref_slot_state},
    /* Destructors registered by module code run when the module is removed. */
    {"atexit", (const void *)modkit_atexit},
    {"__cxa_atexit", (const void *)modkit_cxa_atexit},
};

const struct modkit_host_symbol *modkit_host_symbols(size_t *count)
{
    if (count != NULL)
        *count = sizeof host_symbols / sizeof host_symbols[0];
    return host_symbols;
}
