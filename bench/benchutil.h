/* What the throughput benches (flood, flood_bare, sendbench and the
 * libstrophe twins) share: the timing behind their RESULT line, the
 * --messages option and the message the send benches send. */
#ifndef UVX_BENCH_BENCHUTIL_H
#define UVX_BENCH_BENCHUTIL_H

#include <stddef.h>

/* How long a client waits for its login before it gives up. */
#define BENCH_LOGIN_TIMEOUT_S 10

/* Wall and CPU time (getrusage of the whole process) at the start of the
 * measured window. */
typedef struct bench_clock {
    double wall;
    double cpu;
} bench_clock_t;

double bench_wall_seconds(void); /* monotonic */
void bench_clock_start(bench_clock_t *c);

/* Prints, and flushes at once (run-flood.sh reads it through a pipe),
 *   RESULT messages=N wall_s=S cpu_s=C msgs_per_s=R
 * for `messages` over the window since bench_clock_start(). */
void bench_report(const bench_clock_t *c, unsigned long messages);

/* The trailing [--messages N] of sendbench and send_strophe (1000000
 * without it); prints the usage and exits 2 on anything else. */
unsigned long bench_messages_option(const char *prog, int nargs, char **args);

#define BENCH_NS_CHATSTATES "http://jabber.org/protocol/chatstates"

/* The text of the i-th of `total` chat messages the send benches send: the
 * last has id='last' (the server answers it with <message id='done'/>), and
 * the body is the one bench/floodserver sends, unescaped. */
typedef struct bench_message {
    char id[32];
    char body[160];
} bench_message_t;

void bench_message_fill(bench_message_t *m, unsigned long i, unsigned long total);

#endif
