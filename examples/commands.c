/* A module that adds commands to its host, run with 'modkit call NAME ARGS...'. The host
 * holds a reference on the module while a command runs, so 'modkit rmmod' refuses to remove
 * it meanwhile and 'modkit rmmod -w' waits until the command returns. */
#include <errno.h>
#include <stdlib.h>
#include <time.h>

#include <modkit/module.h>

MODULE_LICENSE("GPL");
MODULE_AUTHOR("ModKit examples");
MODULE_DESCRIPTION("Adds the commands greet and sleep");
MODULE_VERSION("1.0");

static int greet_run(int argc, char **argv, struct modkit_output *out)
{
    for (int i = 1; i < argc; i++)
        modkit_printf(out, "Hello, %s!\n", argv[i]);
    if (argc == 1)
        modkit_printf(out, "Hello, world!\n");
    return 0;
}

/* sleep MILLISECONDS: returns after that long, to show what happens to a module that is
 * removed while one of its commands runs. */
static int sleep_run(int argc, char **argv, struct modkit_output *out)
{
    if (argc != 2) {
        modkit_printf(out, "usage: sleep MILLISECONDS\n");
        return -EINVAL;
    }
    long milliseconds = strtol(argv[1], NULL, 10);
    struct timespec delay = { milliseconds / 1000, (milliseconds % 1000) * 1000000L };
    while (nanosleep(&delay, &delay) != 0 && errno == EINTR) {
    }
    modkit_printf(out, "slept %ld ms\n", milliseconds);
    return 0;
}

static struct modkit_command greet_command = {
    .owner = THIS_MODULE,
    .name = "greet",
    .summary = "print a greeting for each argument",
    .run = greet_run,
};

static struct modkit_command sleep_command = {
    .owner = THIS_MODULE,
    .name = "sleep",
    .summary = "wait MILLISECONDS, then return",
    .run = sleep_run,
};

static int __init commands_init(void)
{
    int error = modkit_register_command(&greet_command);
    if (error)
        return error;
    error = modkit_register_command(&sleep_command);
    if (error) {
        modkit_unregister_command(&greet_command);
        return error;
    }
    return 0;
}

static void __exit commands_exit(void)
{
    modkit_unregister_command(&sleep_command);
    modkit_unregister_command(&greet_command);
}

module_init(commands_init);
module_exit(commands_exit);
