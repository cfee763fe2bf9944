/* A module for 'modkit stress': it registers one command, stress_check, that reads and writes
 * module data and now and then sleeps, so that a removal with wait has a call to wait for.
 *
 *   modkit stress --cycles 1000 --callers 2 stress.o
 *
 * Init fills a table with a pattern and exit overwrites it. A call that ran after exit, or
 * before init finished, would find the table wrong and return -EIO. */
#include <errno.h>
#include <time.h>

#include <modkit/module.h>

MODULE_LICENSE("GPL");
MODULE_AUTHOR("ModKit examples");
MODULE_DESCRIPTION("Adds the command stress_check for modkit stress");
MODULE_VERSION("1.0");

#define TABLE_SIZE 256
#define TABLE_PATTERN 0x5a5a5a5au
#define TABLE_POISON 0xdeaddeadu
/* One call in this many sleeps, for SLEEP_NANOSECONDS. */
#define SLEEP_EVERY 64
#define SLEEP_NANOSECONDS 20000L

static unsigned int table[TABLE_SIZE];
static unsigned long calls;

/* stress_check: checks the table, bumps a counter in module data and returns 0, or returns
 * -EIO when the table does not hold the pattern that init wrote. */
static int check_run(int argc, char **argv, struct modkit_output *out)
{
    (void)argc;
    (void)argv;
    unsigned long call = __atomic_add_fetch(&calls, 1, __ATOMIC_RELAXED);

    for (int i = 0; i < TABLE_SIZE; i++) {
        unsigned int value = __atomic_load_n(&table[i], __ATOMIC_RELAXED);
        if (value != TABLE_PATTERN) {
            modkit_printf(out, "table[%d] is 0x%x, expected 0x%x\n", i, value, TABLE_PATTERN);
            return -EIO;
        }
    }
    if (call % SLEEP_EVERY == 0) {
        struct timespec delay = { 0, SLEEP_NANOSECONDS };
        while (nanosleep(&delay, &delay) != 0 && errno == EINTR) {
        }
    }
    return 0;
}

static struct modkit_command check_command = {
    .owner = THIS_MODULE,
    .name = "stress_check",
    .summary = "check module data, sleeping now and then",
    .run = check_run,
};

static int __init stress_init(void)
{
    for (int i = 0; i < TABLE_SIZE; i++)
        table[i] = TABLE_PATTERN;
    calls = 0;
    return modkit_register_command(&check_command);
}

static void __exit stress_exit(void)
{
    modkit_unregister_command(&check_command);
    for (int i = 0; i < TABLE_SIZE; i++)
        __atomic_store_n(&table[i], TABLE_POISON, __ATOMIC_RELAXED);
}

module_init(stress_init);
module_exit(stress_exit);
