/* A module that uses every macro and inline function of modkit/module.h.
 * run.sh compiles it as C11, gnu11 and C++17 with gcc and clang, and checks
 * the sections it produces. */
#define pr_fmt(fmt) "sample: " fmt
#include <modkit/module.h>

#ifdef __cplusplus
extern "C" {
#endif
int sample_exported_function(int value);
extern int sample_exported_variable;
int sample_gpl_function(void);
int sample_ns_function(void);
int sample_ns_gpl_function(void);
#ifdef __cplusplus
}
#endif

MODULE_LICENSE("GPL");
MODULE_AUTHOR("ModKit tests");
MODULE_DESCRIPTION("Uses every macro of modkit/module.h");
MODULE_VERSION("1.2");
MODULE_ALIAS("sample-alias");
MODULE_NAME("sample");
MODULE_IMPORT_NS(SAMPLE_IMPORTED);

/* Not static, so that -O2 cannot fold it away and drop .init.data. */
int sample_setup_value __initdata = 7;
static const char sample_banner[] __initconst = "loaded";

int sample_exported_variable = 42;
EXPORT_SYMBOL(sample_exported_variable);

int sample_exported_function(int value)
{
    return value + sample_exported_variable;
}
EXPORT_SYMBOL(sample_exported_function);

int sample_gpl_function(void)
{
    return 1;
}
EXPORT_SYMBOL_GPL(sample_gpl_function);

int sample_ns_function(void)
{
    return 2;
}
EXPORT_SYMBOL_NS(sample_ns_function, SAMPLE_NS);

int sample_ns_gpl_function(void)
{
    return 3;
}
EXPORT_SYMBOL_NS_GPL(sample_ns_gpl_function, SAMPLE_NS);

static int run_sample(int argc, char **argv, struct modkit_output *out)
{
    (void)argv;
    return modkit_printf(out, "sample ran with %d arguments\n", argc) < 0;
}

static struct modkit_command sample_command = {THIS_MODULE, "sample", "Print a line", run_sample};

static int __init sample_init(void)
{
    int (*imported)(int);

    pr_info("%s with %d\n", sample_banner, sample_setup_value);
    pr_cont("continued\n");
    pr_debug("not printed: %d\n", sample_setup_value);
    pr_emerg("e\n");
    pr_alert("a\n");
    pr_crit("c\n");
    pr_err("e\n");
    pr_warn("w\n");
    pr_notice("n\n");
    printk(KERN_INFO "plain printk %s\n", "works");
    printk("no level\n");
    printk(KERN_DEFAULT "default level\n");

    if (!try_module_get(THIS_MODULE))
        pr_info("not live during init, as expected\n");
    __module_get(THIS_MODULE);
    module_put(THIS_MODULE);
    pr_info("refcount %lu\n", module_refcount(THIS_MODULE));
    try_module_get(NULL);
    module_put(NULL);

    imported = symbol_get(sample_exported_function);
    if (imported != NULL) {
        imported(1);
        symbol_put(sample_exported_function);
    }
    return modkit_register_command(&sample_command);
}

static void __exit sample_exit(void)
{
    modkit_unregister_command(&sample_command);
}

module_init(sample_init);
module_exit(sample_exit);
