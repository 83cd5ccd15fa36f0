#include "tap.h"

#include <stdarg.h>
#include <stdlib.h>

int tap_case_failed;
static int tap_count;
static int tap_failures;

void tap_fail(const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    printf("# %s:%d: ", file, line);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    fflush(stdout);
    tap_case_failed = 1;
}

void tap_run(const char *name, void (*fn)(void))
{
    tap_case_failed = 0;
    fn();
    tap_count++;
    if (tap_case_failed)
        tap_failures++;
    printf("%sok %d - %s\n", tap_case_failed ? "not " : "", tap_count, name);
    fflush(stdout);
}

void tap_skip(const char *name, const char *why)
{
    tap_count++;
    printf("ok %d - %s # SKIP %s\n", tap_count, name, why);
    fflush(stdout);
}

int tap_under_valgrind(void)
{
    /* valgrind preloads its vgpreload_*.so into every program it runs */
    const char *preload = getenv("LD_PRELOAD");
    return preload != NULL && strstr(preload, "vgpreload") != NULL;
}

int tap_done(void)
{
    printf("1..%d\n", tap_count);
    return tap_failures ? EXIT_FAILURE : EXIT_SUCCESS;
}
