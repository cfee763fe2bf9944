/* A module that uses the exports of mathlib.o: the loader binds the calls to mathlib's code,
 * so mathlib must be loaded first (modprobe does that from modules.dep). */
#include <modkit/module.h>

MODULE_LICENSE("GPL");
MODULE_AUTHOR("ModKit examples");
MODULE_DESCRIPTION("Computes with the functions of mathlib");
MODULE_VERSION("1.0");

long mathlib_add(long a, long b);
long mathlib_multiply(long a, long b);

static int __init calc_init(void)
{
    pr_info("2 + 3 = %ld, 6 * 7 = %ld\n", mathlib_add(2, 3), mathlib_multiply(6, 7));
    return 0;
}

static void __exit calc_exit(void)
{
    pr_info("calc unloaded\n");
}

module_init(calc_init);
module_exit(calc_exit);
