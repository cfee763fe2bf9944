/* A minimal test runner for the C tests: each test is a function, each
 * failed CHECK prints its location and message, and main prints one
 * "N passed, N failed, N skipped" line at the end. */
#ifndef MODKIT_TEST_HARNESS_H
#define MODKIT_TEST_HARNESS_H

#include <stdio.h>

static int current_test_failures;
static int tests_passed;
static int tests_failed;
static int tests_skipped;

#define CHECK(condition, ...)                                                     \
    do {                                                                          \
        if (!(condition)) {                                                       \
            current_test_failures++;                                              \
            fprintf(stderr, "%s:%d: check failed: %s: ", __FILE__, __LINE__,      \
                    #condition);                                                  \
            fprintf(stderr, __VA_ARGS__);                                         \
            fputc('\n', stderr);                                                  \
        }                                                                         \
    } while (0)

__attribute__((unused)) static void run_test(const char *name, void (*test)(void))
{
    current_test_failures = 0;
    test();
    if (current_test_failures == 0) {
        tests_passed++;
        printf("PASS %s\n", name);
    } else {
        tests_failed++;
        printf("FAIL %s (%d checks failed)\n", name, current_test_failures);
    }
    fflush(stdout);
}

#define RUN_TEST(test) run_test(#test, test)

__attribute__((unused)) static void skip_test(const char *name, const char *reason)
{
    tests_skipped++;
    printf("SKIP %s: %s\n", name, reason);
}

__attribute__((unused)) static int finish_tests(const char *suite)
{
    printf("%s: %d passed, %d failed, %d skipped\n", suite, tests_passed, tests_failed, tests_skipped);
    return tests_failed == 0 ? 0 : 1;
}

#endif
