/*
 * logins: N concurrent SASL logins against a real server, first with the
 * password (PBKDF2 on the libuv thread pool), then again with the SCRAM
 * keys the first round learned (uvx_connect_args_t.scram_keys), and the
 * loop's longest stall meanwhile: the largest gap between two ticks of a
 * 1 ms timer, minus the period. The stall must stay far below one PBKDF2.
 *
 *   logins [--mech NAME] [--timeout S] [--batch K] SERVICE JID-PATTERN PASSWORD N
 *
 * JID-PATTERN is a printf pattern with one %d (0 .. N-1), e.g.
 * 'user%d@localhost'.
 *
 * The cached round only means something against a server that keeps each
 * account's salt. Prosody's internal_plain store (prosody.sh's default)
 * picks a new salt at every login, and so did the ejabberd setup with plain
 * passwords: the "cached" logins then ran PBKDF2 again. Use Prosody's
 * internal_hashed store, which keeps SCRAM-SHA-1 keys with a salt chosen
 * once. prosody.sh writes those hashed accounts itself when
 * UVX_PROSODY_AUTH=internal_hashed (one lua5.4 process running Prosody's
 * own SCRAM code, 10 000 iterations; ~3 s for 1 000 accounts, where
 * prosodyctl register would start one process per account):
 *
 *   D=/tmp/bench-prosody
 *   UVX_PROSODY_AUTH=internal_hashed test/servers/prosody.sh start $D 17222 \
 *       $(for i in $(seq 0 999); do printf 'user%d:pass ' $i; done)
 *   build/bench/logins tcp://127.0.0.1:17222 'user%d@localhost' pass 1000
 *   test/servers/prosody.sh stop $D
 *
 * Pacing: all N connections are created before the clock starts, then a
 * 1 ms timer starts K of them (--batch, default 10) per firing, so that
 * the loop's longest stall measures the library, not the bench starting a
 * thousand logins in one iteration. All N are still in flight together:
 * at the default pace the last one starts after ~N/K ms, while a round
 * takes seconds (peak_inflight in the RESULT line says how many overlapped).
 *
 * Prints: RESULT logins=N wall_s=... logins_per_s=... cached_wall_s=...
 *         cached_logins_per_s=... max_stall_ms=... max_busy_ms=... max_step_ms=...
 *         pbkdf2_ms=...
 * (and per-round stalls, failures, PBKDF2 counts). max_stall_ms is wall
 * time, so on a small machine it includes the scheduler running the server
 * and the pool threads instead of the loop; max_busy_ms is the loop
 * thread's own CPU time between two ticks, i.e. the longest stretch of work
 * done without returning to the loop. pbkdf2_ms is the median of 5 PBKDF2
 * runs on this thread with the server's hash, salt and iteration count,
 * measured in the same run. max_step_ms splits those stretches at every
 * connection's I/O (each read handed to a connection, each write it makes,
 * seen through the raw I/O hooks): the loop thread's longest CPU time
 * between two such events, i.e. the most any one connection's step (parse,
 * SASL, serialize) held the loop; max_busy_ms is many steps of many
 * connections that became ready together. p999_step_ms is the 99.9th
 * percentile of those steps. On a virtual machine the thread CPU clock
 * also counts time the host took the vCPU away (on the 2-core VM these
 * figures come from, a tight loop saw it jump by 0.5 to 1.2 ms, once while
 * the wall clock moved 10 us), so the maxima carry that noise; the
 * percentile does not. cached_pbkdf2 must be 0: otherwise the server
 * changed its salt and the cached figure is not one (a warning says so).
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "sasl.h"
#include "uvxmpp.h"

typedef struct session {
    uvx_conn_t *conn;
    struct bench *b;
    int done; /* CONNECTED, or failed */
    int ok;
    int have_keys;
    uvx_scram_keys_t keys;
} session_t;

typedef struct bench {
    uv_loop_t *loop;
    uvx_ctx_t *ctx;
    const char *service, *pattern, *password, *mech;
    int n, batch;
    session_t *sessions;
    int launched, finished, failures, closed, peak_inflight;
    int cached; /* the round in progress passes the learned keys */
    uv_timer_t tick, launcher;
    uint64_t last_tick, max_gap;
    uint64_t last_cpu, max_cpu;        /* the loop thread's CPU time between two ticks */
    uint64_t last_event_cpu, max_step; /* ... between two I/O events or ticks */
    uint64_t *steps;                   /* every such stretch of the round, in ns */
    size_t nsteps, steps_cap;
    int measuring;
    unsigned timeout_s;
} bench_t;

static uint64_t thread_cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* One boundary between two steps of work on the loop thread. */
static void mark_event(bench_t *b, uint64_t cpu)
{
    if (b->last_event_cpu) {
        uint64_t step = cpu - b->last_event_cpu;
        if (step > b->max_step)
            b->max_step = step;
        if (b->nsteps == b->steps_cap) {
            size_t cap = b->steps_cap ? 2 * b->steps_cap : 4096;
            uint64_t *more = realloc(b->steps, cap * sizeof(*more));
            if (more != NULL) {
                b->steps = more;
                b->steps_cap = cap;
            }
        }
        if (b->nsteps < b->steps_cap)
            b->steps[b->nsteps++] = step;
    }
    b->last_event_cpu = cpu;
}

static void on_raw_io(uvx_conn_t *conn, const char *data, size_t len, void *ud)
{
    bench_t *b = ud;
    (void)conn, (void)data, (void)len;
    if (b->measuring)
        mark_event(b, thread_cpu_ns());
}

static void on_tick(uv_timer_t *t)
{
    bench_t *b = t->data;
    uint64_t now = uv_hrtime();
    if (!b->measuring)
        return;
    uint64_t cpu = thread_cpu_ns();
    if (b->last_tick && now - b->last_tick > b->max_gap)
        b->max_gap = now - b->last_tick;
    if (b->last_tick && cpu - b->last_cpu > b->max_cpu)
        b->max_cpu = cpu - b->last_cpu;
    b->last_tick = now;
    b->last_cpu = cpu;
    mark_event(b, cpu);
}

static void on_closed(uvx_conn_t *conn)
{
    session_t *s = uvx_conn_get_data(conn);
    s->b->closed++;
}

static void finish(session_t *s, int ok)
{
    if (s->done)
        return;
    s->done = 1;
    s->ok = ok;
    s->b->finished++;
    if (!ok)
        s->b->failures++;
}

static void on_status(uvx_conn_t *conn, int status, const char *condition, uvx_stanza_t *elem,
                      void *ud)
{
    session_t *s = ud;
    (void)elem;
    if (status == UVX_STATUS_CONNECTED) {
        s->have_keys = uvx_conn_scram_keys(conn, &s->keys) == 0;
        finish(s, 1);
    } else if (status == UVX_STATUS_AUTHFAIL || status == UVX_STATUS_CONNFAIL ||
               status == UVX_STATUS_DISCONNECTED) {
        if (!s->done && s->b->failures < 5)
            fprintf(stderr, "login failed: %s %s\n", uvx_status_name(status),
                    condition ? condition : "");
        finish(s, 0);
    }
}

static void start_login(bench_t *b, int i)
{
    session_t *s = &b->sessions[i];
    char jid[256];
    uvx_connect_args_t args;
    memset(&args, 0, sizeof(args));
    if (b->cached && s->have_keys)
        args.scram_keys = &s->keys;
    snprintf(jid, sizeof(jid), b->pattern, i);
    if (s->conn == NULL || uvx_connect(s->conn, jid, b->password, on_status, s, &args) != 0)
        finish(s, 0);
}

/* Starts the next `batch` logins: the bench's own work per loop iteration
 * stays a few connect() calls, whatever N is. */
static void on_launch(uv_timer_t *t)
{
    bench_t *b = t->data;
    for (int k = 0; k < b->batch && b->launched < b->n; k++)
        start_login(b, b->launched++);
    if (b->launched - b->finished > b->peak_inflight)
        b->peak_inflight = b->launched - b->finished;
    if (b->launched == b->n)
        uv_timer_stop(t);
}

/* Creates all N connections (not timed), so the timed part starts logins only. */
static void create_conns(bench_t *b)
{
    const char *only[] = {b->mech, NULL};
    uvx_conn_options_t o;
    uvx_conn_options_init(&o);
    o.allow_plain = 1;
    o.tls_disabled = 1;
    o.mechanisms = only;
    for (int i = 0; i < b->n; i++) {
        session_t *s = &b->sessions[i];
        s->done = s->ok = 0;
        s->b = b;
        s->conn = NULL;
        if (uvx_conn_new(b->ctx, b->service, &o, &s->conn) != 0) {
            s->conn = NULL;
            continue;
        }
        uvx_conn_set_data(s->conn, s);
        uvx_set_raw_hooks(s->conn, on_raw_io, on_raw_io, b);
    }
}

static void close_conns(bench_t *b)
{
    int opened = 0;
    for (int i = 0; i < b->n; i++) {
        if (b->sessions[i].conn) {
            uvx_conn_close(b->sessions[i].conn, on_closed);
            b->sessions[i].conn = NULL;
            opened++;
        }
    }
    while (b->closed < opened)
        uv_run(b->loop, UV_RUN_ONCE);
}

typedef struct round_result {
    double wall_s;
    int failures, peak_inflight;
    uint64_t max_stall_ns, max_busy_ns, max_step_ns, p999_step_ns;
} round_result_t;

static int compare_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

/* The 99.9th percentile of the round's steps. */
static uint64_t step_p999(bench_t *b)
{
    if (b->nsteps == 0)
        return 0;
    qsort(b->steps, b->nsteps, sizeof(*b->steps), compare_u64);
    return b->steps[(b->nsteps - 1) * 999 / 1000];
}

/* One round of N concurrent logins, paced by the launcher timer. */
static round_result_t run_round(bench_t *b, int cached)
{
    round_result_t r;
    create_conns(b);
    b->cached = cached;
    b->launched = b->finished = b->failures = b->closed = b->peak_inflight = 0;
    b->last_tick = b->max_gap = b->max_cpu = b->last_event_cpu = b->max_step = 0;
    b->nsteps = 0;
    b->measuring = 1;
    uint64_t t0 = uv_hrtime();
    uv_timer_start(&b->launcher, on_launch, 0, 1);
    uint64_t deadline = t0 + (uint64_t)b->timeout_s * 1000000000ull;
    while (b->finished < b->n && uv_hrtime() < deadline)
        uv_run(b->loop, UV_RUN_ONCE);
    r.wall_s = (uv_hrtime() - t0) / 1e9;
    b->measuring = 0;
    uv_timer_stop(&b->launcher);
    r.failures = b->failures + (b->n - b->finished); /* timed out counts as failed */
    r.peak_inflight = b->peak_inflight;
    r.max_stall_ns = b->max_gap > 1000000 ? b->max_gap - 1000000 : 0;
    r.max_busy_ns = b->max_cpu;
    r.max_step_ns = b->max_step;
    r.p999_step_ns = step_p999(b);
    close_conns(b);
    return r;
}

static int compare_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Median of 5 PBKDF2 runs with the server's parameters, on this thread, for
 * scale; 0 when no login learned keys. */
static double measure_pbkdf2_ms(const bench_t *b)
{
    for (int k = 0; k < b->n; k++) {
        const uvx_scram_keys_t *keys = &b->sessions[k].keys;
        if (!b->sessions[k].have_keys)
            continue;
        double ms[5];
        for (int run = 0; run < 5; run++) {
            unsigned char ck[UVX_SCRAM_MAX_KEY], sk[UVX_SCRAM_MAX_KEY];
            size_t klen;
            uint64_t t0 = uv_hrtime();
            scram_derive_keys(keys->hash, b->password, keys->salt, keys->salt_len, keys->iterations,
                              ck, sk, &klen);
            ms[run] = (uv_hrtime() - t0) / 1e6;
        }
        qsort(ms, 5, sizeof(ms[0]), compare_double);
        printf("# %s, %u iterations\n", keys->hash, keys->iterations);
        return ms[2];
    }
    return 0;
}

static void raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

static int usage(void)
{
    fprintf(stderr, "usage: logins [--mech NAME] [--timeout S] [--batch K] SERVICE JID-PATTERN "
                    "PASSWORD N\n");
    return 2;
}

static double per_s(int ok, double wall)
{
    return wall > 0 ? ok / wall : 0;
}

int main(int argc, char **argv)
{
    bench_t b;
    memset(&b, 0, sizeof(b));
    b.mech = "SCRAM-SHA-1";
    b.timeout_s = 300;
    b.batch = 10;
    int i = 1;
    for (; i < argc && strncmp(argv[i], "--", 2) == 0; i += 2) {
        if (i + 1 >= argc)
            return usage();
        if (strcmp(argv[i], "--mech") == 0)
            b.mech = argv[i + 1];
        else if (strcmp(argv[i], "--timeout") == 0)
            b.timeout_s = (unsigned)atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--batch") == 0)
            b.batch = atoi(argv[i + 1]);
        else
            return usage();
    }
    if (argc - i != 4)
        return usage();
    b.service = argv[i];
    b.pattern = argv[i + 1];
    b.password = argv[i + 2];
    b.n = atoi(argv[i + 3]);
    if (b.n <= 0 || b.batch <= 0 || strstr(b.pattern, "%d") == NULL)
        return usage();
    raise_fd_limit();

    b.loop = uv_default_loop();
    b.ctx = uvx_ctx_new(b.loop);
    b.sessions = calloc((size_t)b.n, sizeof(*b.sessions));
    uv_timer_init(b.loop, &b.tick);
    uv_timer_init(b.loop, &b.launcher);
    b.tick.data = b.launcher.data = &b;
    uv_timer_start(&b.tick, on_tick, 1, 1);

    round_result_t full = run_round(&b, 0);
    unsigned long pbkdf2_full = sasl_ctx_pbkdf2_count(b.ctx);
    round_result_t cached = run_round(&b, 1);
    unsigned long cached_pbkdf2 = sasl_ctx_pbkdf2_count(b.ctx) - pbkdf2_full;
    uv_timer_stop(&b.tick);
    double pbkdf2_ms = measure_pbkdf2_ms(&b);
    uint64_t stall =
        full.max_stall_ns > cached.max_stall_ns ? full.max_stall_ns : cached.max_stall_ns;
    uint64_t busy = full.max_busy_ns > cached.max_busy_ns ? full.max_busy_ns : cached.max_busy_ns;
    uint64_t step = full.max_step_ns > cached.max_step_ns ? full.max_step_ns : cached.max_step_ns;
    if (cached_pbkdf2 > 0)
        fprintf(stderr,
                "warning: the cached round ran PBKDF2 %lu times: the server changed "
                "its salt, so cached_logins_per_s is not a cached figure\n",
                cached_pbkdf2);

    printf("RESULT logins=%d wall_s=%.3f logins_per_s=%.1f cached_wall_s=%.3f "
           "cached_logins_per_s=%.1f max_stall_ms=%.2f max_busy_ms=%.2f max_step_ms=%.3f "
           "pbkdf2_ms=%.2f stall_ms=%.2f busy_ms=%.2f cached_stall_ms=%.2f cached_busy_ms=%.2f "
           "step_ms=%.3f cached_step_ms=%.3f p999_step_ms=%.3f cached_p999_step_ms=%.3f batch=%d "
           "peak_inflight=%d cached_peak_inflight=%d failures=%d cached_failures=%d pbkdf2=%lu "
           "cached_pbkdf2=%lu\n",
           b.n, full.wall_s, per_s(b.n - full.failures, full.wall_s), cached.wall_s,
           per_s(b.n - cached.failures, cached.wall_s), stall / 1e6, busy / 1e6, step / 1e6,
           pbkdf2_ms, full.max_stall_ns / 1e6, full.max_busy_ns / 1e6, cached.max_stall_ns / 1e6,
           cached.max_busy_ns / 1e6, full.max_step_ns / 1e6, cached.max_step_ns / 1e6,
           full.p999_step_ns / 1e6, cached.p999_step_ns / 1e6, b.batch, full.peak_inflight,
           cached.peak_inflight, full.failures, cached.failures, pbkdf2_full, cached_pbkdf2);

    uv_close((uv_handle_t *)&b.tick, NULL);
    uv_close((uv_handle_t *)&b.launcher, NULL);
    uv_run(b.loop, UV_RUN_DEFAULT);
    int rc = uvx_ctx_free(b.ctx);
    free(b.sessions);
    free(b.steps);
    uv_run(b.loop, UV_RUN_DEFAULT);
    uv_loop_close(b.loop);
    return rc == 0 && full.failures == 0 && cached.failures == 0 ? 0 : 1;
}
