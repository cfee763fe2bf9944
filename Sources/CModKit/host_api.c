/*
 * The C functions that modules call, several of them variadic, forwarding
 * to the callbacks that the Swift host installs with modkit_set_host_ops.
 */
#define _GNU_SOURCE
#include "modkit/host.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

static const struct modkit_host_ops *installed_ops;

void modkit_set_host_ops(const struct modkit_host_ops *ops)
{
    __atomic_store_n(&installed_ops, ops, __ATOMIC_RELEASE);
}

static const struct modkit_host_ops *host_ops(void)
{
    return __atomic_load_n(&installed_ops, __ATOMIC_ACQUIRE);
}

/* Removes the KERN_* prefixes at the start of text and returns the level.
 * Several prefixes may follow each other, as in KERN_CONT KERN_INFO, and an
 * explicit level wins over KERN_CONT. */
static int strip_level_prefix(const char **text)
{
    int level = -1;
    int continuation = 0;
    const char *cursor = *text;

    while (cursor[0] == KERN_SOH_ASCII && cursor[1] != '\0') {
        char code = cursor[1];

        if (code >= '0' && code <= '7')
            level = code - '0';
        else if (code == 'd')
            level = MODKIT_LOGLEVEL_DEFAULT;
        else if (code == 'c')
            continuation = 1;
        else
            break;
        cursor += 2;
    }
    *text = cursor;
    if (level >= 0)
        return level;
    return continuation ? MODKIT_LOGLEVEL_CONT : MODKIT_LOGLEVEL_DEFAULT;
}

static void write_all(int fd, const struct iovec *parts, int count)
{
    struct iovec remaining[3];
    int index = 0;

    memcpy(remaining, parts, (size_t)count * sizeof *parts);
    while (index < count) {
        ssize_t written = writev(fd, &remaining[index], count - index);

        if (written < 0) {
            if (errno == EINTR)
                continue;
            return;
        }
        while (index < count && (size_t)written >= remaining[index].iov_len) {
            written -= (ssize_t)remaining[index].iov_len;
            index++;
        }
        if (index < count) {
            remaining[index].iov_base = (char *)remaining[index].iov_base + written;
            remaining[index].iov_len -= (size_t)written;
        }
    }
}

/* Without a host, messages go to stderr, prefixed with the module's name
 * when it is known, except for continuations. */
static void log_to_stderr(struct module *owner, int level, const char *text, size_t length)
{
    struct iovec parts[3];
    int count = 0;
    int saved_errno = errno;

    if (owner != NULL && owner->name != NULL && level != MODKIT_LOGLEVEL_CONT) {
        parts[count].iov_base = (void *)owner->name;
        parts[count++].iov_len = strlen(owner->name);
        parts[count].iov_base = (void *)": ";
        parts[count++].iov_len = 2;
    }
    parts[count].iov_base = (void *)text;
    parts[count++].iov_len = length;
    write_all(STDERR_FILENO, parts, count);
    errno = saved_errno;
}

/* Formats into a bounded stack buffer, so printk works in signal handlers
 * as long as the host's log callback does. */
static int log_message(struct module *owner, void *return_address, const char *fmt, va_list arguments)
{
    char buffer[MODKIT_LOG_LINE_MAX + 1];
    const struct modkit_host_ops *ops = host_ops();
    const char *text = buffer;
    int formatted;
    size_t length;
    int level;

    if (fmt == NULL)
        return 0;
    formatted = vsnprintf(buffer, sizeof buffer, fmt, arguments);
    if (formatted < 0)
        return 0;
    length = (size_t)formatted < sizeof buffer ? (size_t)formatted : sizeof buffer - 1;

    level = strip_level_prefix(&text);
    length -= (size_t)(text - buffer);

    if (ops != NULL && ops->log != NULL)
        ops->log(owner, level, text, length, return_address);
    else
        log_to_stderr(owner, level, text, length);
    return (int)length;
}

int printk(const char *fmt, ...)
{
    va_list arguments;
    int result;

    va_start(arguments, fmt);
    result = log_message(NULL, __builtin_return_address(0), fmt, arguments);
    va_end(arguments);
    return result;
}

int _modkit_printk(struct module *owner, const char *fmt, ...)
{
    va_list arguments;
    int result;

    va_start(arguments, fmt);
    result = log_message(owner, __builtin_return_address(0), fmt, arguments);
    va_end(arguments);
    return result;
}

int modkit_printf(struct modkit_output *out, const char *fmt, ...)
{
    const struct modkit_host_ops *ops = host_ops();
    char stack_buffer[512];
    char *text = stack_buffer;
    va_list arguments;
    int formatted;
    int result;

    if (ops == NULL || ops->write_output == NULL)
        return -ENOSYS;
    if (out == NULL || fmt == NULL)
        return -EINVAL;

    va_start(arguments, fmt);
    formatted = vsnprintf(stack_buffer, sizeof stack_buffer, fmt, arguments);
    va_end(arguments);
    if (formatted < 0)
        return -EINVAL;

    /* Output has no length limit: format again into a buffer that fits. */
    if ((size_t)formatted >= sizeof stack_buffer) {
        text = malloc((size_t)formatted + 1);
        if (text == NULL)
            return -ENOMEM;
        va_start(arguments, fmt);
        vsnprintf(text, (size_t)formatted + 1, fmt, arguments);
        va_end(arguments);
    }

    result = ops->write_output(out, text, (size_t)formatted);
    if (text != stack_buffer)
        free(text);
    return result < 0 ? result : formatted;
}

void *__symbol_get(const char *name)
{
    const struct modkit_host_ops *ops = host_ops();

    if (ops == NULL || ops->get_symbol == NULL || name == NULL)
        return NULL;
    return ops->get_symbol(name);
}

void __symbol_put(const char *name)
{
    const struct modkit_host_ops *ops = host_ops();

    if (ops == NULL || ops->put_symbol == NULL || name == NULL)
        return;
    ops->put_symbol(name, __builtin_return_address(0));
}

int modkit_register_command(struct modkit_command *command)
{
    const struct modkit_host_ops *ops = host_ops();

    if (command == NULL || command->name == NULL || command->run == NULL)
        return -EINVAL;
    if (ops == NULL || ops->register_command == NULL)
        return -ENOSYS;
    return ops->register_command(command);
}

void modkit_unregister_command(struct modkit_command *command)
{
    const struct modkit_host_ops *ops = host_ops();

    if (command == NULL || ops == NULL || ops->unregister_command == NULL)
        return;
    ops->unregister_command(command);
}

int modkit_call_command(struct module *caller, const char *name, int argc, char **argv,
                        struct modkit_output *out, int *status)
{
    const struct modkit_host_ops *ops = host_ops();

    if (name == NULL || status == NULL || argc < 0 || (argc > 0 && argv == NULL))
        return -EINVAL;
    if (ops == NULL || ops->call_command == NULL)
        return -ENOSYS;
    return ops->call_command(caller, name, argc, argv, out, status);
}

/* Calls an atexit function, passed as the argument of a __cxa_atexit-style
 * handler so that no memory is needed per registration. */
static void call_atexit_function(void *function)
{
    ((void (*)(void))function)();
}

static int register_exit_handler(void (*function)(void *), void *argument, void *dso_handle,
                                 void *return_address)
{
    const struct modkit_host_ops *ops = host_ops();

    if (function == NULL)
        return -EINVAL;
    /* Failing is safer than letting the C library run module code at
     * process exit, after the module may be gone. */
    if (ops == NULL || ops->register_exit_handler == NULL)
        return -ENOSYS;
    return ops->register_exit_handler(function, argument, dso_handle, return_address);
}

int modkit_atexit(void (*function)(void))
{
    if (function == NULL)
        return -EINVAL;
    return register_exit_handler(call_atexit_function, (void *)function, NULL,
                                 __builtin_return_address(0));
}

int modkit_cxa_atexit(void (*function)(void *), void *argument, void *dso_handle)
{
    return register_exit_handler(function, argument, dso_handle, __builtin_return_address(0));
}
