#include "benchutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#define DEFAULT_MESSAGES 1000000

/* & < ' and UTF-8 (é 日本 🎉), for the escaping and UTF-8 paths. */
#define BODY_FMT                                                                                   \
    "Wherefore art thou & why <3? It's caf\xc3\xa9 time in \xe6\x97\xa5\xe6\x9c\xac "              \
    "\xf0\x9f\x8e\x89 (%lu) lorem ipsum"

double bench_wall_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double process_cpu_seconds(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

void bench_clock_start(bench_clock_t *c)
{
    c->cpu = process_cpu_seconds();
    c->wall = bench_wall_seconds();
}

void bench_report(const bench_clock_t *c, unsigned long messages)
{
    double wall = bench_wall_seconds() - c->wall;
    double cpu = process_cpu_seconds() - c->cpu;
    printf("RESULT messages=%lu wall_s=%.3f cpu_s=%.3f msgs_per_s=%.0f\n", messages, wall, cpu,
           wall > 0 ? (double)messages / wall : 0.0);
    fflush(stdout);
}

unsigned long bench_messages_option(const char *prog, int nargs, char **args)
{
    unsigned long n = DEFAULT_MESSAGES;
    for (int i = 0; i < nargs; i++) {
        char *end;
        if (strcmp(args[i], "--messages") == 0 && i + 1 < nargs &&
            (n = strtoul(args[i + 1], &end, 10)) > 0 && *end == '\0') {
            i++;
            continue;
        }
        fprintf(stderr, "%s: bad argument %s\n", prog, args[i]);
        fprintf(stderr,
                "usage: %s [--allow-plain] [--mech NAME] [--bind ADDR] SERVICE JID PASSWORD "
                "[--messages N]\n",
                prog);
        exit(2);
    }
    return n;
}

void bench_message_fill(bench_message_t *m, unsigned long i, unsigned long total)
{
    if (i + 1 == total)
        snprintf(m->id, sizeof(m->id), "last");
    else
        snprintf(m->id, sizeof(m->id), "msg-%08lu", i);
    snprintf(m->body, sizeof(m->body), BODY_FMT, i);
}
