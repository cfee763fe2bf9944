/* The smallest useful module: it logs a line when it is loaded and when it is removed.
 * Load it with a parameter to change the greeting: modkit insmod hello.o whom=Ada */
#include <modkit/module.h>
#include <modkit/moduleparam.h>

MODULE_LICENSE("GPL");
MODULE_AUTHOR("ModKit examples");
MODULE_DESCRIPTION("Logs a greeting when loaded and a farewell when removed");
MODULE_VERSION("1.0");
MODULE_ALIAS("greeting");

static char *whom = "world";
module_param(whom, charp, 0444);
MODULE_PARM_DESC(whom, "Who to greet");

static int __init hello_init(void)
{
    pr_info("Hello, %s\n", whom);
    return 0;
}

static void __exit hello_exit(void)
{
    pr_info("Goodbye, %s\n", whom);
}

module_init(hello_init);
module_exit(hello_exit);
