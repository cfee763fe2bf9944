/* The smallest useful module: it logs a line when it is loaded and when it is removed. */
#include <modkit/module.h>

MODULE_LICENSE("GPL");
MODULE_AUTHOR("ModKit examples");
MODULE_DESCRIPTION("Logs a greeting when loaded and a farewell when removed");
MODULE_VERSION("1.0");
MODULE_ALIAS("greeting");

static int __init hello_init(void)
{
    pr_info("Hello, world\n");
    return 0;
}

static void __exit hello_exit(void)
{
    pr_info("Goodbye, world\n");
}

module_init(hello_init);
module_exit(hello_exit);
