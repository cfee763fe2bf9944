/* A library module: other modules link against its exported functions, and it cannot be
 * removed while one of them is loaded. */
#include <modkit/module.h>

MODULE_LICENSE("GPL");
MODULE_AUTHOR("ModKit examples");
MODULE_DESCRIPTION("Arithmetic functions for other modules");
MODULE_VERSION("1.0");

long mathlib_add(long a, long b)
{
    return a + b;
}
EXPORT_SYMBOL(mathlib_add);

/* Only modules with a GPL-compatible license may use this one. */
long mathlib_multiply(long a, long b)
{
    return a * b;
}
EXPORT_SYMBOL_GPL(mathlib_multiply);

static int __init mathlib_init(void)
{
    pr_info("mathlib ready\n");
    return 0;
}

static void __exit mathlib_exit(void)
{
    pr_info("mathlib unloaded\n");
}

module_init(mathlib_init);
module_exit(mathlib_exit);
