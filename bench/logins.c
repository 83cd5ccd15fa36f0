/*
 * logins: N concurrent SASL logins against a real server, first with the
 * password (PBKDF2 on the libuv thread pool), then again with the SCRAM
 * keys the first round learned (uvx_connect_args_t.scram_keys), and the
 * loop's longest stall meanwhile: the largest gap between two ticks of a
 * 1 ms timer, minus the period. The stall must stay far below one PBKDF2.
 *
 *   logins [--mech NAME] [--timeout S] SERVICE JID-PATTERN PASSWORD N
 *
 * JID-PATTERN is a printf pattern with one %d (0 .. N-1), e.g.
 * 'user%d@localhost'. Creating the accounts on a throwaway Prosody
 * (test/servers/prosody.sh writes the account files directly):
 *
 *   D=/tmp/bench-prosody
 *   test/servers/prosody.sh start $D 17222 \
 *       $(for i in $(seq 0 999); do printf 'user%d:pass ' $i; done)
 *   build/bench/logins tcp://127.0.0.1:17222 'user%d@localhost' pass 1000
 *   test/servers/prosody.sh stop $D
 *
 * Prosody's internal_plain store (what prosody.sh configures) salts anew at
 * every login, so the cached round needs PBKDF2 again there; the RESULT
 * line's cached_pbkdf2 says how many the second round ran. A server that
 * stores SCRAM hashes (Prosody's internal_hashed) keeps the salt, and the
 * cached round then runs none.
 *
 * Prints: RESULT logins=N wall_s=... logins_per_s=... cached_logins_per_s=...
 *         max_stall_ms=... pbkdf2_ms=... max_busy_ms=... (and failures, PBKDF2
 * counts). max_stall_ms is wall time, so on a small machine it includes the
 * scheduler running the server and the pool threads instead of the loop;
 * max_busy_ms is the loop thread's own CPU time between two ticks, i.e. the
 * longest stretch of work the library did without returning to the loop.
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
    int n;
    session_t *sessions;
    int finished, failures, closed;
    uv_timer_t tick;
    uint64_t last_tick, max_gap;
    uint64_t last_cpu, max_cpu; /* the loop thread's CPU time between two ticks */
    int measuring;
    unsigned timeout_s;
} bench_t;

static uint64_t thread_cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
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

/* One round of N concurrent logins; returns its wall time in seconds. */
static double run_round(bench_t *b, int cached)
{
    const char *only[] = {b->mech, NULL};
    uvx_conn_options_t o;
    uvx_conn_options_init(&o);
    o.allow_plain = 1;
    o.tls_disabled = 1;
    o.mechanisms = only;
    b->finished = b->failures = b->closed = 0;
    b->last_tick = 0;
    b->measuring = 1;
    uint64_t t0 = uv_hrtime();
    for (int i = 0; i < b->n; i++) {
        /* Open them 50 per loop iteration: all N are still in flight at
         * once, but no single iteration has to start a thousand. */
        if (i > 0 && i % 50 == 0)
            uv_run(b->loop, UV_RUN_NOWAIT);
        session_t *s = &b->sessions[i];
        char jid[256];
        uvx_connect_args_t args;
        memset(&args, 0, sizeof(args));
        if (cached && s->have_keys)
            args.scram_keys = &s->keys;
        s->done = s->ok = 0;
        s->b = b;
        snprintf(jid, sizeof(jid), b->pattern, i);
        if (uvx_conn_new(b->ctx, b->service, &o, &s->conn) != 0) {
            finish(s, 0);
            continue;
        }
        uvx_conn_set_data(s->conn, s);
        if (uvx_connect(s->conn, jid, b->password, on_status, s, &args) != 0)
            finish(s, 0);
    }
    uint64_t deadline = t0 + (uint64_t)b->timeout_s * 1000000000ull;
    while (b->finished < b->n && uv_hrtime() < deadline)
        uv_run(b->loop, UV_RUN_ONCE);
    double wall = (uv_hrtime() - t0) / 1e9;
    b->measuring = 0;
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
    return wall;
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
    fprintf(stderr, "usage: logins [--mech NAME] [--timeout S] SERVICE JID-PATTERN PASSWORD N\n");
    return 2;
}

int main(int argc, char **argv)
{
    bench_t b;
    memset(&b, 0, sizeof(b));
    b.mech = "SCRAM-SHA-1";
    b.timeout_s = 300;
    int i = 1;
    for (; i < argc && strncmp(argv[i], "--", 2) == 0; i += 2) {
        if (i + 1 >= argc)
            return usage();
        if (strcmp(argv[i], "--mech") == 0)
            b.mech = argv[i + 1];
        else if (strcmp(argv[i], "--timeout") == 0)
            b.timeout_s = (unsigned)atoi(argv[i + 1]);
        else
            return usage();
    }
    if (argc - i != 4)
        return usage();
    b.service = argv[i];
    b.pattern = argv[i + 1];
    b.password = argv[i + 2];
    b.n = atoi(argv[i + 3]);
    if (b.n <= 0 || strstr(b.pattern, "%d") == NULL)
        return usage();
    raise_fd_limit();

    b.loop = uv_default_loop();
    b.ctx = uvx_ctx_new(b.loop);
    b.sessions = calloc((size_t)b.n, sizeof(*b.sessions));
    uv_timer_init(b.loop, &b.tick);
    b.tick.data = &b;
    uv_timer_start(&b.tick, on_tick, 1, 1);

    double wall = run_round(&b, 0);
    int failures = b.failures;
    unsigned long pbkdf2_full = sasl_ctx_pbkdf2_count(b.ctx);
    double cached_wall = run_round(&b, 1);
    int cached_failures = b.failures;
    unsigned long cached_pbkdf2 = sasl_ctx_pbkdf2_count(b.ctx) - pbkdf2_full;
    uv_timer_stop(&b.tick);
    uint64_t stall = b.max_gap > 1000000 ? b.max_gap - 1000000 : 0;

    /* One PBKDF2 with the server's parameters, on this thread, for scale. */
    double pbkdf2_ms = 0;
    for (int k = 0; k < b.n; k++) {
        const uvx_scram_keys_t *keys = &b.sessions[k].keys;
        if (!b.sessions[k].have_keys)
            continue;
        unsigned char ck[UVX_SCRAM_MAX_KEY], sk[UVX_SCRAM_MAX_KEY];
        size_t klen;
        uint64_t t0 = uv_hrtime();
        scram_derive_keys(keys->hash, b.password, keys->salt, keys->salt_len, keys->iterations, ck,
                          sk, &klen);
        pbkdf2_ms = (uv_hrtime() - t0) / 1e6;
        printf("# %s, %u iterations\n", keys->hash, keys->iterations);
        break;
    }
    printf("RESULT logins=%d wall_s=%.3f logins_per_s=%.1f cached_logins_per_s=%.1f "
           "max_stall_ms=%.2f pbkdf2_ms=%.2f max_busy_ms=%.2f failures=%d cached_failures=%d "
           "pbkdf2=%lu cached_pbkdf2=%lu\n",
           b.n, wall, (b.n - failures) / wall, (b.n - cached_failures) / cached_wall, stall / 1e6,
           pbkdf2_ms, b.max_cpu / 1e6, failures, cached_failures, pbkdf2_full, cached_pbkdf2);

    uv_close((uv_handle_t *)&b.tick, NULL);
    uv_run(b.loop, UV_RUN_DEFAULT);
    int rc = uvx_ctx_free(b.ctx);
    free(b.sessions);
    uv_run(b.loop, UV_RUN_DEFAULT);
    uv_loop_close(b.loop);
    return rc == 0 && failures == 0 && cached_failures == 0 ? 0 : 1;
}
