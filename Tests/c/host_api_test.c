/* Tests of the host API that modules call (printk, commands, symbol_get,
 * atexit), of the host symbol table and of the system call wrappers. */
#define _GNU_SOURCE
#include <modkit/host.h>
#include <modkit/module.h>
#include <modkit/syscalls.h>

#include <errno.h>
#include <fcntl.h>
#include <linux/membarrier.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "test_harness.h"

/* ---- A recording host ---- */

struct recorded_log {
    int calls;
    struct module *owner;
    int level;
    char text[2048];
    size_t length;
    void *return_address;
};

static struct recorded_log last_log;
static char last_output[8192];
static size_t last_output_length;
static const char *last_symbol_name;
static int symbol_puts;
static struct modkit_command *last_registered;
static struct modkit_command *last_unregistered;
static struct module *last_call_caller;
static const char *last_call_name;
static int last_call_argc;
static char **last_call_argv;
static struct modkit_output *last_call_out;
static void (*last_exit_function)(void *);
static void *last_exit_argument;
static void *last_exit_dso_handle;
static void *last_exit_return_address;
static int symbol_value = 99;

static void record_log(struct module *owner, int level, const char *text, size_t length, void *return_address)
{
    last_log.calls++;
    last_log.owner = owner;
    last_log.level = level;
    last_log.length = length;
    last_log.return_address = return_address;
    memcpy(last_log.text, text, length + 1);
}

static void *record_get_symbol(const char *name)
{
    last_symbol_name = name;
    return strcmp(name, "symbol_value") == 0 ? &symbol_value : NULL;
}

static void *last_put_return_address;

static void record_put_symbol(const char *name, void *return_address)
{
    last_symbol_name = name;
    last_put_return_address = return_address;
    symbol_puts++;
}

static int record_register_command(struct modkit_command *command)
{
    last_registered = command;
    return 0;
}

static void record_unregister_command(struct modkit_command *command)
{
    last_unregistered = command;
}

static int record_call_command(struct module *caller, const char *name, int argc, char **argv,
                               struct modkit_output *out, int *status)
{
    last_call_caller = caller;
    last_call_name = name;
    last_call_argc = argc;
    last_call_argv = argv;
    last_call_out = out;
    *status = 7;
    return 0;
}

static int record_output(struct modkit_output *out, const char *text, size_t length)
{
    (void)out;
    if (length >= sizeof last_output)
        return -ENOSPC;
    memcpy(last_output, text, length + 1);
    last_output_length = length;
    return 0;
}

static int record_exit_handler(void (*function)(void *), void *argument, void *dso_handle, void *return_address)
{
    last_exit_function = function;
    last_exit_argument = argument;
    last_exit_dso_handle = dso_handle;
    last_exit_return_address = return_address;
    return 0;
}

static const struct modkit_host_ops recording_ops = {
    record_log,          record_get_symbol, record_put_symbol,  record_register_command,
    record_unregister_command, record_call_command, record_output, record_exit_handler,
};

static const struct modkit_host_ops empty_ops = {NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL};

/* ---- Without a host ---- */

/* Runs printk with stderr sent to a pipe and returns what it wrote. */
static size_t capture_stderr(char *captured, size_t capacity, int (*emit)(void), int *result)
{
    int pipe_ends[2];
    int saved_stderr = dup(STDERR_FILENO);
    ssize_t length;

    if (pipe(pipe_ends) != 0)
        abort();
    dup2(pipe_ends[1], STDERR_FILENO);
    close(pipe_ends[1]);
    *result = emit();
    dup2(saved_stderr, STDERR_FILENO);
    close(saved_stderr);
    length = read(pipe_ends[0], captured, capacity - 1);
    close(pipe_ends[0]);
    if (length < 0)
        length = 0;
    captured[length] = '\0';
    return (size_t)length;
}

static int emit_plain_printk(void)
{
    return printk(KERN_INFO "hello %d\n", 5);
}

static struct module named_module = {1, 0, 0, "mymod", NULL, {0}};

static int emit_owned_printk(void)
{
    return _modkit_printk(&named_module, KERN_ERR "bad value %s\n", "x");
}

static int emit_continuation(void)
{
    return _modkit_printk(&named_module, KERN_CONT "more\n");
}

static void test_printk_without_host_writes_stderr(void)
{
    char captured[256];
    int result;

    modkit_set_host_ops(NULL);
    capture_stderr(captured, sizeof captured, emit_plain_printk, &result);
    CHECK(strcmp(captured, "hello 5\n") == 0, "stderr got \"%s\"", captured);
    CHECK(result == 8, "printk returned %d", result);

    capture_stderr(captured, sizeof captured, emit_owned_printk, &result);
    CHECK(strcmp(captured, "mymod: bad value x\n") == 0, "stderr got \"%s\"", captured);
    CHECK(result == 12, "printk returned %d", result);

    capture_stderr(captured, sizeof captured, emit_continuation, &result);
    CHECK(strcmp(captured, "more\n") == 0, "a continuation got a prefix: \"%s\"", captured);
}

static void test_calls_without_host_fail_safely(void)
{
    struct modkit_command command = {NULL, "cmd", "summary", NULL};
    int (*get)(void);
    int status = -1;

    modkit_set_host_ops(NULL);
    CHECK(__symbol_get("anything") == NULL, "symbol_get without a host");
    __symbol_put("anything");
    CHECK(modkit_register_command(&command) == -EINVAL, "command without run must be invalid");
    command.run = (int (*)(int, char **, struct modkit_output *))1;
    CHECK(modkit_register_command(&command) == -ENOSYS, "register without a host");
    modkit_unregister_command(&command);
    CHECK(modkit_call_command(NULL, "cmd", 0, NULL, NULL, &status) == -ENOSYS, "call without a host");
    CHECK(status == -1, "call without a host stored a status");
    CHECK(modkit_printf((struct modkit_output *)1, "x") == -ENOSYS, "printf without a host");
    CHECK(modkit_atexit(abort) != 0, "atexit without a host must fail");
    CHECK(modkit_cxa_atexit((void (*)(void *))free, NULL, NULL) != 0, "__cxa_atexit without a host must fail");

    /* A host with every callback NULL behaves the same. */
    modkit_set_host_ops(&empty_ops);
    get = (int (*)(void))__symbol_get("anything");
    CHECK(get == NULL, "symbol_get with NULL callbacks");
    CHECK(modkit_register_command(&command) == -ENOSYS, "register with NULL callbacks");
    CHECK(modkit_call_command(NULL, "cmd", 0, NULL, NULL, &status) == -ENOSYS, "call with NULL callbacks");
    CHECK(modkit_atexit(abort) != 0, "atexit with NULL callbacks must fail");
    modkit_set_host_ops(NULL);
}

/* ---- printk levels ---- */

struct level_case {
    const char *format;
    int level;
    const char *text;
};

static void test_printk_levels(void)
{
    static const struct level_case cases[] = {
        {KERN_EMERG "m", 0, "m"},
        {KERN_ALERT "m", 1, "m"},
        {KERN_CRIT "m", 2, "m"},
        {KERN_ERR "m", 3, "m"},
        {KERN_WARNING "m", 4, "m"},
        {KERN_NOTICE "m", 5, "m"},
        {KERN_INFO "m", 6, "m"},
        {KERN_DEBUG "m", 7, "m"},
        {"m", MODKIT_LOGLEVEL_DEFAULT, "m"},
        {KERN_DEFAULT "m", MODKIT_LOGLEVEL_DEFAULT, "m"},
        {KERN_CONT "m", MODKIT_LOGLEVEL_CONT, "m"},
        {KERN_CONT KERN_INFO "m", 6, "m"},
        {"\001x unknown", MODKIT_LOGLEVEL_DEFAULT, "\001x unknown"},
        {"\001", MODKIT_LOGLEVEL_DEFAULT, "\001"},
        {"", MODKIT_LOGLEVEL_DEFAULT, ""},
    };
    size_t i;

    modkit_set_host_ops(&recording_ops);
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int result;

        memset(&last_log, 0, sizeof last_log);
        result = printk("%s", cases[i].format);
        CHECK(last_log.calls == 1, "case %zu: log called %d times", i, last_log.calls);
        CHECK(last_log.level == cases[i].level, "case %zu: level %d, expected %d", i, last_log.level,
              cases[i].level);
        CHECK(strcmp(last_log.text, cases[i].text) == 0, "case %zu: text \"%s\"", i, last_log.text);
        CHECK(last_log.length == strlen(cases[i].text), "case %zu: length %zu", i, last_log.length);
        CHECK(result == (int)strlen(cases[i].text), "case %zu: returned %d", i, result);
        CHECK(last_log.owner == NULL, "case %zu: plain printk has no owner", i);
        CHECK(last_log.return_address != NULL, "case %zu: no return address", i);
    }
    modkit_set_host_ops(NULL);
}

static void test_printk_passes_owner(void)
{
    modkit_set_host_ops(&recording_ops);
    memset(&last_log, 0, sizeof last_log);
    _modkit_printk(&named_module, KERN_NOTICE "owned %d", 3);
    CHECK(last_log.owner == &named_module, "owner %p", (void *)last_log.owner);
    CHECK(last_log.level == 5, "level %d", last_log.level);
    CHECK(strcmp(last_log.text, "owned 3") == 0, "text \"%s\"", last_log.text);
    modkit_set_host_ops(NULL);
}

static void test_printk_truncates_long_message(void)
{
    char long_text[5000];
    int result;

    memset(long_text, 'a', sizeof long_text - 1);
    long_text[sizeof long_text - 1] = '\0';
    modkit_set_host_ops(&recording_ops);

    memset(&last_log, 0, sizeof last_log);
    result = printk("%s", long_text);
    CHECK(result == MODKIT_LOG_LINE_MAX, "returned %d", result);
    CHECK(last_log.length == MODKIT_LOG_LINE_MAX, "length %zu", last_log.length);
    CHECK(last_log.text[MODKIT_LOG_LINE_MAX] == '\0', "not NUL-terminated at the limit");
    CHECK(strspn(last_log.text, "a") == MODKIT_LOG_LINE_MAX, "text damaged");

    /* The prefix counts against the limit and is then removed. */
    memset(&last_log, 0, sizeof last_log);
    result = printk(KERN_INFO "%s", long_text);
    CHECK(last_log.level == 6, "level %d", last_log.level);
    CHECK(result == MODKIT_LOG_LINE_MAX - 2, "returned %d", result);
    CHECK(last_log.length == MODKIT_LOG_LINE_MAX - 2, "length %zu", last_log.length);
    modkit_set_host_ops(NULL);
}

/* ---- Commands, output and symbols ---- */

static int run_nothing(int argc, char **argv, struct modkit_output *out)
{
    (void)argc;
    (void)argv;
    (void)out;
    return 0;
}

static void test_commands_forwarded(void)
{
    struct modkit_command command = {&named_module, "hello", "Say hello", run_nothing};

    modkit_set_host_ops(&recording_ops);
    CHECK(modkit_register_command(&command) == 0, "register failed");
    CHECK(last_registered == &command, "register was not forwarded");
    modkit_unregister_command(&command);
    CHECK(last_unregistered == &command, "unregister was not forwarded");
    CHECK(modkit_register_command(NULL) == -EINVAL, "NULL command");
    modkit_set_host_ops(NULL);
}

static void test_call_command_forwarded(void)
{
    char *arguments[] = {"one", "two", NULL};
    struct modkit_output *out = (struct modkit_output *)&last_output;
    int status = -1;

    modkit_set_host_ops(&recording_ops);
    CHECK(modkit_call_command(&named_module, "hello", 2, arguments, out, &status) == 0, "call failed");
    CHECK(status == 7, "status %d", status);
    CHECK(last_call_caller == &named_module, "caller was not forwarded");
    CHECK(last_call_name != NULL && strcmp(last_call_name, "hello") == 0, "name was not forwarded");
    CHECK(last_call_argc == 2, "argc %d", last_call_argc);
    CHECK(last_call_argv == arguments, "argv was not forwarded");
    CHECK(last_call_out == out, "output was not forwarded");

    last_call_name = NULL;
    CHECK(modkit_call_command(&named_module, NULL, 0, NULL, NULL, &status) == -EINVAL, "NULL name");
    CHECK(modkit_call_command(&named_module, "hello", 0, NULL, NULL, NULL) == -EINVAL, "NULL status");
    CHECK(modkit_call_command(&named_module, "hello", -1, arguments, NULL, &status) == -EINVAL, "negative argc");
    CHECK(modkit_call_command(&named_module, "hello", 1, NULL, NULL, &status) == -EINVAL, "argc without argv");
    CHECK(last_call_name == NULL, "an invalid call reached the host");
    CHECK(modkit_call_command(NULL, "hello", 0, NULL, NULL, &status) == 0, "a call without caller or arguments failed");
    CHECK(last_call_caller == NULL, "NULL caller was not forwarded");
    modkit_set_host_ops(NULL);
}

static void test_printf_short_and_long_output(void)
{
    struct modkit_output *out = (struct modkit_output *)&last_output;
    char long_text[3000];
    int result;

    modkit_set_host_ops(&recording_ops);
    result = modkit_printf(out, "%s=%d\n", "value", 42);
    CHECK(result == 9, "returned %d", result);
    CHECK(strcmp(last_output, "value=42\n") == 0, "output \"%s\"", last_output);

    memset(long_text, 'b', sizeof long_text - 1);
    long_text[sizeof long_text - 1] = '\0';
    result = modkit_printf(out, "<%s>", long_text);
    CHECK(result == (int)sizeof long_text + 1, "returned %d", result);
    CHECK(last_output_length == sizeof long_text + 1, "length %zu", last_output_length);
    CHECK(last_output[0] == '<', "output lost its start");
    CHECK(last_output[last_output_length - 1] == '>', "output lost its end");

    CHECK(modkit_printf(NULL, "x") == -EINVAL, "NULL output");
    modkit_set_host_ops(NULL);
}

static void test_printf_returns_write_error(void)
{
    char too_long[9000];

    memset(too_long, 'c', sizeof too_long - 1);
    too_long[sizeof too_long - 1] = '\0';
    modkit_set_host_ops(&recording_ops);
    CHECK(modkit_printf((struct modkit_output *)1, "%s", too_long) == -ENOSPC, "write error not returned");
    modkit_set_host_ops(NULL);
}

extern int symbol_value_declaration;

static void test_symbol_get_forwarded(void)
{
    int *value;

    modkit_set_host_ops(&recording_ops);
    value = (int *)__symbol_get("symbol_value");
    CHECK(value == &symbol_value, "got %p", (void *)value);
    CHECK(last_symbol_name != NULL, "name not forwarded");
    CHECK(last_symbol_name == NULL || strcmp(last_symbol_name, "symbol_value") == 0, "forwarded \"%s\"",
          last_symbol_name);
    __symbol_put("symbol_value");
    CHECK(symbol_puts == 1, "put not forwarded");
    CHECK(last_put_return_address != NULL, "no return address forwarded");
    CHECK(__symbol_get(NULL) == NULL, "NULL name");

    /* The macro passes the spelling of its argument. */
    CHECK(symbol_get(symbol_value_declaration) == NULL, "unknown symbol found");
    CHECK(strcmp(last_symbol_name, "symbol_value_declaration") == 0, "macro passed \"%s\"", last_symbol_name);
    symbol_put(symbol_value_declaration);
    CHECK(symbol_puts == 2, "symbol_put macro not forwarded");
    modkit_set_host_ops(NULL);
}

/* ---- atexit ---- */

static int atexit_function_runs;

static void count_atexit_run(void)
{
    atexit_function_runs++;
}

static void count_cxa_run(void *argument)
{
    (*(int *)argument)++;
}

static void test_atexit_registers_with_host(void)
{
    int cxa_runs = 0;
    int dso_handle_stand_in;

    modkit_set_host_ops(&recording_ops);
    CHECK(modkit_atexit(count_atexit_run) == 0, "atexit failed");
    CHECK(last_exit_function != NULL, "no function registered");
    CHECK(last_exit_dso_handle == NULL, "atexit passed a dso handle");
    CHECK(last_exit_return_address != NULL, "no return address");
    last_exit_function(last_exit_argument);
    CHECK(atexit_function_runs == 1, "the registered handler did not call the atexit function");
    CHECK(modkit_atexit(NULL) != 0, "NULL function accepted");

    CHECK(modkit_cxa_atexit(count_cxa_run, &cxa_runs, &dso_handle_stand_in) == 0, "__cxa_atexit failed");
    CHECK(last_exit_function == count_cxa_run, "function not passed through");
    CHECK(last_exit_argument == &cxa_runs, "argument not passed through");
    CHECK(last_exit_dso_handle == &dso_handle_stand_in, "dso handle not passed through");
    last_exit_function(last_exit_argument);
    CHECK(cxa_runs == 1, "handler did not run");
    modkit_set_host_ops(NULL);
}

/* ---- Host symbol table ---- */

static const void *find_host_symbol(const char *name)
{
    size_t count = 0;
    const struct modkit_host_symbol *symbols = modkit_host_symbols(&count);
    size_t i;

    for (i = 0; i < count; i++) {
        if (strcmp(symbols[i].name, name) == 0)
            return symbols[i].address;
    }
    return NULL;
}

static void test_host_symbol_table(void)
{
    static const char *const required[] = {
        "printk", "_modkit_printk", "modkit_printf", "__symbol_get", "__symbol_put",
        "modkit_register_command", "modkit_unregister_command", "modkit_call_command", "module_refcount",
        "__modkit_ref_count_slow", "__modkit_ref_wake", "__modkit_thread_offset",
        "__modkit_ref_slot_state", "atexit", "__cxa_atexit",
    };
    size_t count = 0;
    const struct modkit_host_symbol *symbols = modkit_host_symbols(&count);
    size_t i;
    size_t j;

    CHECK(count == sizeof required / sizeof required[0], "%zu symbols", count);
    for (i = 0; i < sizeof required / sizeof required[0]; i++)
        CHECK(find_host_symbol(required[i]) != NULL, "%s missing", required[i]);
    for (i = 0; i < count; i++) {
        CHECK(symbols[i].address != NULL, "%s has no address", symbols[i].name);
        for (j = i + 1; j < count; j++)
            CHECK(strcmp(symbols[i].name, symbols[j].name) != 0, "%s listed twice", symbols[i].name);
    }
    CHECK(find_host_symbol("atexit") == (const void *)modkit_atexit, "atexit is not modkit_atexit");
    CHECK(find_host_symbol("__cxa_atexit") == (const void *)modkit_cxa_atexit, "__cxa_atexit is not modkit_cxa_atexit");
    CHECK(find_host_symbol("printk") == (const void *)printk, "printk address");
    CHECK(find_host_symbol("__modkit_thread_offset") == (const void *)&__modkit_thread_offset, "offset address");
    CHECK(modkit_host_symbols(NULL) == symbols, "NULL count pointer");
}

/* ---- System calls ---- */

static void test_futex_wait_and_wake(void)
{
    unsigned int word = 5;

    CHECK(modkit_futex_wait(&word, 6, -1) == -EAGAIN, "wait on a changed value must return at once");
    CHECK(modkit_futex_wait(&word, 5, 10 * 1000 * 1000) == -ETIMEDOUT, "wait must time out");
    CHECK(modkit_futex_wake(&word, 1) == 0, "no thread was waiting");
}

static void test_membarrier_and_gettid(void)
{
    int commands = modkit_membarrier_query();

    CHECK(commands >= 0, "query failed: %d", commands);
    if (commands > 0 && (commands & MEMBARRIER_CMD_PRIVATE_EXPEDITED)) {
        CHECK(modkit_membarrier_register_private_expedited() == 0, "register failed");
        CHECK(modkit_membarrier_private_expedited() == 0, "membarrier failed");
    }
    CHECK(modkit_gettid() == getpid(), "the main thread's id must equal the process id");
}

int main(void)
{
    RUN_TEST(test_printk_without_host_writes_stderr);
    RUN_TEST(test_calls_without_host_fail_safely);
    RUN_TEST(test_printk_levels);
    RUN_TEST(test_printk_passes_owner);
    RUN_TEST(test_printk_truncates_long_message);
    RUN_TEST(test_commands_forwarded);
    RUN_TEST(test_call_command_forwarded);
    RUN_TEST(test_printf_short_and_long_output);
    RUN_TEST(test_printf_returns_write_error);
    RUN_TEST(test_symbol_get_forwarded);
    RUN_TEST(test_atexit_registers_with_host);
    RUN_TEST(test_host_symbol_table);
    RUN_TEST(test_futex_wait_and_wake);
    RUN_TEST(test_membarrier_and_gettid);
    return finish_tests("host_api");
}
