/*
 * Module parameters, with the Linux names: module_param, module_param_array,
 * module_param_string, module_param_cb and MODULE_PARM_DESC. Included by
 * modkit/module.h.
 *
 * Each parameter is a struct kernel_param in the section .modkit.param. The
 * host reads them after relocation, sets them from the parameter string
 * before module_init runs, and reads and writes them later as their
 * permission bits allow: 0 hides a parameter, a mode without write bits
 * makes it read-only.
 */
#ifndef MODKIT_MODULEPARAM_H
#define MODKIT_MODULEPARAM_H

#ifndef __cplusplus
#include <stdbool.h>
#endif

#ifdef __cplusplus
extern "C" {
#endif

struct kernel_param;

/* Set and get operations of a module_param_cb parameter. set returns 0 or
 * -errno; get writes at most 4096 bytes including the NUL and returns the
 * length written or -errno. */
struct kernel_param_ops {
    int (*set)(const char *val, const struct kernel_param *kp);
    int (*get)(char *buffer, const struct kernel_param *kp);
    void (*free)(void *arg);
};

/* The storage of a module_param_array parameter. */
struct kparam_array {
    unsigned int max;
    unsigned int elemsize;
    /* Receives the number of elements set; may be NULL. */
    unsigned int *num;
    /* The element type: "int", "charp", ... */
    const char *type;
    void *elem;
};

/* The storage of a module_param_string parameter. */
struct kparam_string {
    unsigned int maxlen;
    char *string;
};

struct kernel_param {
    const char *name;
    /* Non-NULL only for module_param_cb. */
    const struct kernel_param_ops *ops;
    /* "bool", "invbool", "charp", "int", "uint", "long", "ulong", "short",
     * "ushort", "byte", "hexint", "array", "string" or "cb". */
    const char *type;
    unsigned short perm;
    /* The variable; a struct kparam_array for "array", a struct
     * kparam_string for "string", the callback's argument for "cb". */
    const void *arg;
};

/* Each macro checks at compile time that the variable has the C type that
 * the parameter type names. */
#define __modkit_param_check(name, pointer, c_type)                               \
    static inline c_type __attribute__((unused)) *__modkit_param_check_##name(void) \
    {                                                                             \
        return (pointer);                                                         \
    }
#define __modkit_param_check_bool(name, p) __modkit_param_check(name, p, bool)
#define __modkit_param_check_invbool(name, p) __modkit_param_check(name, p, bool)
#define __modkit_param_check_charp(name, p) __modkit_param_check(name, p, char *)
#define __modkit_param_check_int(name, p) __modkit_param_check(name, p, int)
#define __modkit_param_check_uint(name, p) __modkit_param_check(name, p, unsigned int)
#define __modkit_param_check_long(name, p) __modkit_param_check(name, p, long)
#define __modkit_param_check_ulong(name, p) __modkit_param_check(name, p, unsigned long)
#define __modkit_param_check_short(name, p) __modkit_param_check(name, p, short)
#define __modkit_param_check_ushort(name, p) __modkit_param_check(name, p, unsigned short)
#define __modkit_param_check_byte(name, p) __modkit_param_check(name, p, unsigned char)
#define __modkit_param_check_hexint(name, p) __modkit_param_check(name, p, unsigned int)

#define __MODKIT_PARAM(name, type_string, perm, arg)                              \
    static const struct kernel_param __modkit_param_##name                        \
        __attribute__((used, section(".modkit.param"), aligned(8))) = {           \
            #name, 0, type_string, (unsigned short)(perm), (const void *)(arg)}

/* The macros below use `type` only with # and ##, never passing it on to
 * another macro, because in C `bool` is itself a macro that would expand. */

/* Makes variable `name` settable as a parameter of type `type`. */
#define module_param(name, type, perm)                                            \
    __modkit_param_check_##type(name, &(name))                                    \
    __MODKIT_PARAM(name, #type, perm, &(name));                                   \
    MODULE_INFO(parmtype, #name ":" #type)

/* Makes variable `value` settable as parameter `name`. */
#define module_param_named(name, value, type, perm)                               \
    __modkit_param_check_##type(name, &(value))                                   \
    __MODKIT_PARAM(name, #type, perm, &(value));                                  \
    MODULE_INFO(parmtype, #name ":" #type)

/* A comma-separated list into array `name`; *nump receives the count (nump
 * may be NULL). */
#define module_param_array(name, type, nump, perm)                                \
    __modkit_param_check_##type(name, &(name)[0])                                 \
    static const struct kparam_array __modkit_param_array_##name = {              \
        sizeof(name) / sizeof((name)[0]), sizeof((name)[0]), (nump), #type, (name)}; \
    __MODKIT_PARAM(name, "array", perm, &__modkit_param_array_##name);            \
    MODULE_INFO(parmtype, #name ":array of " #type)

/* Copies the value into char buffer `string` of `len` bytes, NUL included. */
#define module_param_string(name, string, len, perm)                              \
    static const struct kparam_string __modkit_param_string_##name = {            \
        (len), (string)};                                                         \
    __MODKIT_PARAM(name, "string", perm, &__modkit_param_string_##name);          \
    MODULE_INFO(parmtype, #name ":string")

/* A parameter whose set and get are the module's own functions. */
#define module_param_cb(name, ops, arg, perm)                                     \
    static const struct kernel_param __modkit_param_##name                        \
        __attribute__((used, section(".modkit.param"), aligned(8))) = {           \
            #name, (ops), "cb", (unsigned short)(perm), (const void *)(arg)}

#define MODULE_PARM_DESC(name, description) MODULE_INFO(parm, #name ":" description)

#ifdef __cplusplus
}
#endif

#endif
