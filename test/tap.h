/*
 * A tiny TAP producer for the test programs (meson runs them with
 * protocol: 'tap' and counts each case). A case is a function; the CHECK
 * macros record failures with their location and let the case go on.
 */
#ifndef UVX_TAP_H
#define UVX_TAP_H

#include <stdio.h>
#include <string.h>

extern int tap_case_failed; /* set by the CHECK macros within a case */

void tap_fail(const char *file, int line, const char *fmt, ...);
/* Runs one case and prints "ok N - name" or "not ok N - name". */
void tap_run(const char *name, void (*fn)(void));
/* Prints the plan and returns the exit status for main(). */
int tap_done(void);
/* Prints "ok N # SKIP name: why". */
void tap_skip(const char *name, const char *why);
/* 1 when the program runs under valgrind, which runs one thread at a time:
 * a case about work on other threads overlapping the loop cannot hold. */
int tap_under_valgrind(void);

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond))                                                                               \
            tap_fail(__FILE__, __LINE__, "check failed: %s", #cond);                               \
    } while (0)

#define CHECK_INT(a, b)                                                                            \
    do {                                                                                           \
        long long tap_a_ = (long long)(a), tap_b_ = (long long)(b);                                \
        if (tap_a_ != tap_b_)                                                                      \
            tap_fail(__FILE__, __LINE__, "%s == %lld, expected %s == %lld", #a, tap_a_, #b,        \
                     tap_b_);                                                                      \
    } while (0)

#define CHECK_STR(a, b)                                                                            \
    do {                                                                                           \
        const char *tap_a_ = (a), *tap_b_ = (b);                                                   \
        if (tap_a_ == NULL || tap_b_ == NULL ? tap_a_ != tap_b_ : strcmp(tap_a_, tap_b_) != 0)     \
            tap_fail(__FILE__, __LINE__, "%s is \"%s\", expected \"%s\"", #a,                      \
                     tap_a_ ? tap_a_ : "(null)", tap_b_ ? tap_b_ : "(null)");                      \
    } while (0)

#endif
