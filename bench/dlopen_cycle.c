/*
 * The dlopen baseline for `modkit exec --repeat N`: each cycle loads a shared
 * library with dlopen(RTLD_NOW | RTLD_LOCAL), looks up main with dlsym, calls
 * main(argc, argv, envp), flushes stdio and unloads the library with dlclose.
 *
 *   usage: dlopen_cycle [-n N] LIBRARY [ARGS...]
 *
 * argv[0] is LIBRARY, followed by ARGS. Only the cycle is timed, not building
 * argv, as in modkit exec. After every dlclose the program checks that the
 * library is really gone, because dlopen with RTLD_NOLOAD must fail. After
 * the last cycle it checks that /proc/self/maps has no mapping of the file.
 * A library that dlclose kept loaded therefore stops the run with an error
 * instead of producing numbers.
 *
 * Prints "NNN.N us per cycle", the median, to standard error, and exits with
 * the status of the last main. Exits with 1 on a load or unload failure and
 * with 2 for an invalid command line.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

extern char **environ;

typedef int (*main_function)(int, char **, char **);

static double now_nanoseconds(void)
{
    struct timespec time;

    clock_gettime(CLOCK_MONOTONIC, &time);
    return (double)time.tv_sec * 1e9 + (double)time.tv_nsec;
}

static int compare_doubles(const void *left, const void *right)
{
    double a = *(const double *)left;
    double b = *(const double *)right;

    return (a > b) - (a < b);
}

static double median(double *samples, long count)
{
    qsort(samples, (size_t)count, sizeof *samples, compare_doubles);
    if (count % 2 == 1)
        return samples[count / 2];
    return (samples[count / 2 - 1] + samples[count / 2]) / 2;
}

static void usage_error(const char *message)
{
    fprintf(stderr, "dlopen_cycle: %s\nusage: dlopen_cycle [-n N] LIBRARY [ARGS...]\n", message);
    exit(2);
}

/* Returns 1 if /proc/self/maps maps the file at path, 0 if not, -1 if the
 * maps file cannot be read. */
static int is_mapped(const char *path)
{
    FILE *maps = fopen("/proc/self/maps", "r");
    char line[PATH_MAX + 128];
    size_t length = strlen(path);
    int found = 0;

    if (maps == NULL)
        return -1;
    while (!found && fgets(line, sizeof line, maps) != NULL) {
        char *name = strchr(line, '/');

        if (name != NULL && strncmp(name, path, length) == 0 && (name[length] == '\n' || name[length] == '\0'))
            found = 1;
    }
    fclose(maps);
    return found;
}

/* Runs one load, main, unload cycle and stores its duration. Returns main's
 * status, or -1 after printing an error. */
static int run_cycle(const char *library, int argc, char **argv, double *duration)
{
    double start = now_nanoseconds();
    void *handle = dlopen(library, RTLD_NOW | RTLD_LOCAL);
    main_function entry;
    int status;

    if (handle == NULL) {
        fprintf(stderr, "dlopen_cycle: error: dlopen failed: %s\n", dlerror());
        return -1;
    }
    entry = (main_function)dlsym(handle, "main");
    if (entry == NULL) {
        fprintf(stderr, "dlopen_cycle: error: %s defines no 'main' function\n", library);
        dlclose(handle);
        return -1;
    }
    status = entry(argc, argv, environ);
    fflush(NULL);
    if (dlclose(handle) != 0) {
        fprintf(stderr, "dlopen_cycle: error: dlclose failed: %s\n", dlerror());
        return -1;
    }
    *duration = now_nanoseconds() - start;

    handle = dlopen(library, RTLD_NOW | RTLD_NOLOAD);
    if (handle != NULL) {
        fprintf(stderr, "dlopen_cycle: error: %s is still loaded after dlclose, so a cycle would not include loading it\n",
                library);
        dlclose(handle);
        return -1;
    }
    return status;
}

int main(int argc, char **argv)
{
    long cycles = 1;
    int first_operand = 1;
    const char *library;
    char resolved[PATH_MAX];
    double *samples;
    int status = 0;

    if (argc > 2 && strcmp(argv[1], "-n") == 0) {
        char *end;

        errno = 0;
        cycles = strtol(argv[2], &end, 10);
        if (errno != 0 || *end != '\0' || end == argv[2] || cycles < 1)
            usage_error("invalid value for -n; expected a positive integer");
        first_operand = 3;
    }
    if (first_operand >= argc)
        usage_error("missing library");

    /* dlopen searches the library path for a name without a slash, so pass
     * the absolute path of the file that was named. */
    library = argv[first_operand];
    if (realpath(library, resolved) == NULL) {
        fprintf(stderr, "dlopen_cycle: error: %s: %s\n", library, strerror(errno));
        return 1;
    }

    samples = malloc((size_t)cycles * sizeof *samples);
    if (samples == NULL) {
        fprintf(stderr, "dlopen_cycle: error: cannot allocate %ld samples\n", cycles);
        return 1;
    }

    for (long cycle = 0; cycle < cycles; cycle++) {
        int program_argc = argc - first_operand;
        char **program_argv = calloc((size_t)program_argc + 1, sizeof *program_argv);

        if (program_argv == NULL) {
            fprintf(stderr, "dlopen_cycle: error: out of memory\n");
            return 1;
        }
        /* Fresh copies each cycle, because main may modify its arguments. */
        for (int i = 0; i < program_argc; i++)
            program_argv[i] = strdup(argv[first_operand + i]);

        status = run_cycle(resolved, program_argc, program_argv, &samples[cycle]);

        for (int i = 0; i < program_argc; i++)
            free(program_argv[i]);
        free(program_argv);
        if (status < 0)
            return 1;
    }

    switch (is_mapped(resolved)) {
    case 1:
        fprintf(stderr, "dlopen_cycle: error: %s is still mapped after the last dlclose\n", resolved);
        return 1;
    case -1:
        fprintf(stderr, "dlopen_cycle: error: cannot read /proc/self/maps to check the unmapping: %s\n", strerror(errno));
        return 1;
    default:
        break;
    }

    fprintf(stderr, "%.1f us per cycle\n", median(samples, cycles) / 1000);
    free(samples);
    return status;
}
