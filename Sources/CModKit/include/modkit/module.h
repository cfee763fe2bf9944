/*
 * The header that ModKit modules include.
 *
 * A module is an ELF relocatable object (cc -fPIC -c mod.c) that the ModKit
 * host links into its own process. The names and meanings follow the Linux
 * 2.6 module API: module_init/module_exit, MODULE_LICENSE and the other
 * .modinfo tags, EXPORT_SYMBOL, printk and pr_*, try_module_get/module_put
 * and symbol_get/symbol_put. The header compiles as C11 and as C++17 with
 * gcc and clang.
 */
#ifndef MODKIT_MODULE_H
#define MODKIT_MODULE_H

#ifndef __cplusplus
#include <stdbool.h>
#endif

/* Names such as __init are reserved for the C library, and glibc's <stdlib.h> and libstdc++'s
 * <memory> and <numeric> use __init as a member or parameter name. Including them before the
 * section macros below exist lets a module include them after this header.
 * NOTE: libstdc++'s <regex> and <execution> use the name too; a C++ module must include them
 * before this header. */
#include <stdlib.h>
#ifdef __cplusplus
#include <memory>
#include <numeric>
#endif

#ifdef __cplusplus
extern "C" {
#endif

/*
 * One per loaded module. The host places it inside the module's own memory
 * and binds the module's __this_module symbol to it. The fields read by
 * every try_module_get and module_put come first, inside one cache line.
 */
struct module {
    /* Nonzero while try_module_get may succeed. Zero during module_init and
     * from the start of removal. */
    int live;
    /* This module's slot in the per-thread reference counter blocks. */
    unsigned int ref_index;
    /* MODKIT_REF_FLAG_* bits, fixed before any module code runs. */
    unsigned int ref_flags;
    const char *name;
    /* The host's own record of the module. Modules must not touch it. */
    void *host;
    /* Pads the struct to one cache line. The host places it 64-byte aligned;
     * an aligned attribute here would hide the struct from Swift. */
    char reserved[32];
};

extern struct module __this_module __attribute__((visibility("hidden")));
#define THIS_MODULE (&__this_module)

#ifdef __cplusplus
}
#endif

#include "modkit/refcount.h"
#include "modkit/moduleparam.h"

#ifdef __cplusplus
extern "C" {
#endif

#define __modkit_stringify_1(x) #x
#define __modkit_stringify(x) __modkit_stringify_1(x)
#define __modkit_concat_1(a, b) a##b
#define __modkit_concat(a, b) __modkit_concat_1(a, b)
#define __modkit_unique_id(prefix) __modkit_concat(prefix, __COUNTER__)

/* ---- Module information (.modinfo), read by the loader ---- */

/* Emits one NUL-terminated "tag=info" string into .modinfo. */
#define MODULE_INFO(tag, info)                                                    \
    static const char __modkit_unique_id(__modkit_modinfo_)[]                     \
        __attribute__((used, section(".modinfo"), aligned(1))) = #tag "=" info

/* ---- Version magic ---- */

/* The module ABI version: raise it whenever a change to this header or to the
 * loader makes modules built before the change unsafe to load, such as a new
 * layout of struct module, struct modkit_ksym or struct kernel_param. */
#define MODKIT_ABI_VERSION 1

#if defined(__x86_64__)
#define MODKIT_VERMAGIC_ARCH "x86_64"
#elif defined(__aarch64__)
#define MODKIT_VERMAGIC_ARCH "aarch64"
#else
#define MODKIT_VERMAGIC_ARCH "unknown"
#endif

/* The version magic that every object including this header records in
 * .modinfo. The loader rejects a module whose string differs from its own
 * unless the load is forced. */
#define MODKIT_VERMAGIC "modkit-" __modkit_stringify(MODKIT_ABI_VERSION) " " MODKIT_VERMAGIC_ARCH

MODULE_INFO(vermagic, MODKIT_VERMAGIC);

/* The parameter names differ from the tags because a parameter would also
 * replace the tag token. */
#define MODULE_LICENSE(license_string) MODULE_INFO(license, license_string)
#define MODULE_AUTHOR(author_string) MODULE_INFO(author, author_string)
#define MODULE_DESCRIPTION(description_string) MODULE_INFO(description, description_string)
#define MODULE_VERSION(version_string) MODULE_INFO(version, version_string)
#define MODULE_ALIAS(alias_string) MODULE_INFO(alias, alias_string)
/* Sets the module's name. Without it the loader picks one. */
#define MODULE_NAME(name_string) MODULE_INFO(name, name_string)
/* Declares that the module uses symbols exported into namespace ns. The
 * namespace is an identifier, as in Linux 5.4 to 6.12: MODULE_IMPORT_NS(FOO). */
#define MODULE_IMPORT_NS(namespace_id) MODULE_INFO(import_ns, __modkit_stringify(namespace_id))

/* ---- Entry points ---- */

/* Each stores one function pointer in a section that the loader reads. The
 * initializer also checks the function's type. */
#define module_init(initfn)                                                       \
    static int (*const __modkit_initcall_##initfn)(void)                          \
        __attribute__((used, section(".modkit.init"), aligned(8))) = initfn
#define module_exit(exitfn)                                                       \
    static void (*const __modkit_exitcall_##exitfn)(void)                         \
        __attribute__((used, section(".modkit.exit"), aligned(8))) = exitfn

/* Code and data needed only by module_init or only by module_exit. */
#define __init __attribute__((section(".init.text")))
#define __initdata __attribute__((section(".init.data")))
#define __initconst __attribute__((section(".init.rodata")))
#define __exit __attribute__((section(".exit.text")))

/* ---- Exported symbols ---- */

/* Set in modkit_ksym.flags when only GPL-compatible modules may use the symbol. */
#define MODKIT_KSYM_GPL_ONLY 0x1ul

/* One exported symbol, as stored in .modkit.ksymtab. */
struct modkit_ksym {
    const void *addr;
    const char *name;
    /* Namespace, or NULL for the global one. */
    const char *ns;
    unsigned long flags;
};

#define __MODKIT_EXPORT(sym, ns_string, export_flags)                             \
    static const char __modkit_kstrtab_##sym[]                                    \
        __attribute__((used, section(".modkit.kstrtab"), aligned(1))) = #sym;     \
    static const struct modkit_ksym __modkit_ksymtab_##sym                        \
        __attribute__((used, section(".modkit.ksymtab"), aligned(8))) = {         \
            (const void *)&sym, __modkit_kstrtab_##sym, ns_string, export_flags}

#define __MODKIT_EXPORT_NS(sym, ns, export_flags)                                 \
    static const char __modkit_kstrtabns_##sym[]                                  \
        __attribute__((used, section(".modkit.kstrtab"), aligned(1))) =           \
            __modkit_stringify(ns);                                               \
    __MODKIT_EXPORT(sym, __modkit_kstrtabns_##sym, export_flags)

/* Exports a function or variable under its source name. In C++ the name is
 * the unmangled spelling given here, so export extern "C" symbols when other
 * modules link against them by name. */
#define EXPORT_SYMBOL(sym) __MODKIT_EXPORT(sym, 0, 0ul)
#define EXPORT_SYMBOL_GPL(sym) __MODKIT_EXPORT(sym, 0, MODKIT_KSYM_GPL_ONLY)
/* The namespace is an identifier, matching MODULE_IMPORT_NS. */
#define EXPORT_SYMBOL_NS(sym, ns) __MODKIT_EXPORT_NS(sym, ns, 0ul)
#define EXPORT_SYMBOL_NS_GPL(sym, ns) __MODKIT_EXPORT_NS(sym, ns, MODKIT_KSYM_GPL_ONLY)

/* ---- Logging ---- */

#define KERN_SOH "\001"
#define KERN_SOH_ASCII '\001'
#define KERN_EMERG KERN_SOH "0"
#define KERN_ALERT KERN_SOH "1"
#define KERN_CRIT KERN_SOH "2"
#define KERN_ERR KERN_SOH "3"
#define KERN_WARNING KERN_SOH "4"
#define KERN_NOTICE KERN_SOH "5"
#define KERN_INFO KERN_SOH "6"
#define KERN_DEBUG KERN_SOH "7"
/* The default level, 4 (KERN_WARNING), as for a message with no prefix. */
#define KERN_DEFAULT KERN_SOH "d"
/* Continues the previous message instead of starting a new one. */
#define KERN_CONT KERN_SOH "c"

/* Logs a message. A leading KERN_* prefix sets its level. Returns the number
 * of characters logged, after removing the prefix and any truncation. The
 * host finds the calling module from the return address. */
int printk(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Logs like printk and names the calling module. The pr_* macros use it. */
int _modkit_printk(struct module *owner, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Define pr_fmt before including this header to prefix every pr_* message,
 * for example: #define pr_fmt(fmt) "mymod: " fmt */
#ifndef pr_fmt
#define pr_fmt(fmt) fmt
#endif

#define pr_emerg(fmt, ...) _modkit_printk(THIS_MODULE, KERN_EMERG pr_fmt(fmt), ##__VA_ARGS__)
#define pr_alert(fmt, ...) _modkit_printk(THIS_MODULE, KERN_ALERT pr_fmt(fmt), ##__VA_ARGS__)
#define pr_crit(fmt, ...) _modkit_printk(THIS_MODULE, KERN_CRIT pr_fmt(fmt), ##__VA_ARGS__)
#define pr_err(fmt, ...) _modkit_printk(THIS_MODULE, KERN_ERR pr_fmt(fmt), ##__VA_ARGS__)
#define pr_warn(fmt, ...) _modkit_printk(THIS_MODULE, KERN_WARNING pr_fmt(fmt), ##__VA_ARGS__)
#define pr_warning pr_warn
#define pr_notice(fmt, ...) _modkit_printk(THIS_MODULE, KERN_NOTICE pr_fmt(fmt), ##__VA_ARGS__)
#define pr_info(fmt, ...) _modkit_printk(THIS_MODULE, KERN_INFO pr_fmt(fmt), ##__VA_ARGS__)
/* As in Linux, pr_cont does not apply pr_fmt. */
#define pr_cont(fmt, ...) _modkit_printk(THIS_MODULE, KERN_CONT fmt, ##__VA_ARGS__)

/* Without DEBUG, pr_debug and pr_devel check the format but log nothing and
 * do not evaluate their arguments. */
#ifdef DEBUG
#define pr_debug(fmt, ...) _modkit_printk(THIS_MODULE, KERN_DEBUG pr_fmt(fmt), ##__VA_ARGS__)
#define pr_devel(fmt, ...) _modkit_printk(THIS_MODULE, KERN_DEBUG pr_fmt(fmt), ##__VA_ARGS__)
#else
#define pr_debug(fmt, ...)                                                        \
    ({                                                                            \
        if (0)                                                                    \
            _modkit_printk(THIS_MODULE, KERN_DEBUG pr_fmt(fmt), ##__VA_ARGS__);   \
        0;                                                                        \
    })
#define pr_devel(fmt, ...) pr_debug(fmt, ##__VA_ARGS__)
#endif

/* ---- Symbols looked up at run time ---- */

/* Returns the address of an exported symbol and takes a reference on the
 * module that exports it, or returns NULL if no module exports the name. */
void *__symbol_get(const char *name);
/* Drops the reference that __symbol_get took for name. */
void __symbol_put(const char *name);

/* symbol_get(sym) returns a pointer of type &sym, so sym must be declared. */
#ifdef __cplusplus
#define symbol_get(sym) (reinterpret_cast<decltype(&(sym))>(__symbol_get(#sym)))
#else
#define symbol_get(sym) ((__typeof__(&(sym)))__symbol_get(#sym))
#endif
#define symbol_put(sym) __symbol_put(#sym)

/* ---- Commands that a module adds to the host ---- */

/* A command's output stream, owned by the host. */
struct modkit_output;

struct modkit_command {
    /* THIS_MODULE. The host holds a reference on it while run runs. */
    struct module *owner;
    const char *name;
    /* One line of help text. */
    const char *summary;
    /* Returns 0 on success, nonzero on failure. */
    int (*run)(int argc, char **argv, struct modkit_output *out);
};

/* Returns 0, or -errno (-EEXIST for a name in use, -ENOSYS without a host). */
int modkit_register_command(struct modkit_command *command);
void modkit_unregister_command(struct modkit_command *command);

/* Runs the registered command name with the argc arguments in argv (argv[0]
 * of the command is its name, so argv holds only what follows it), writing
 * the command's output to out, or discarding it when out is NULL. Stores the
 * command's return value in *status. caller is THIS_MODULE.
 *
 * A call to one of the caller's own commands takes no reference, so it
 * works even from module_init: whoever entered the module, or the loader
 * during init, already keeps it loaded. A call to another module's command
 * holds a reference on that module for the duration of the call.
 *
 * Returns 0 when the command ran, -ENOENT if no command has that name,
 * -ENODEV if the command's module is initializing or being removed (as if
 * it had not registered yet), -EINVAL for invalid arguments, or -ENOSYS
 * without a host. */
int modkit_call_command(struct module *caller, const char *name, int argc, char **argv,
                        struct modkit_output *out, int *status);

/* Writes formatted text to a command's output. Returns the number of bytes
 * written or -errno. */
int modkit_printf(struct modkit_output *out, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#ifdef __cplusplus
}
#endif

#endif
