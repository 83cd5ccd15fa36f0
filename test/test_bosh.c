/*
 * BOSH without a real server: the sans-I/O HTTP reader and body builder
 * against byte vectors (every split point), then the transport against a
 * scripted HTTP server (test/fakehttp.c) for what a real server will not do
 * on demand: split and chunked responses, error statuses, garbage, a
 * response that never comes, a reset, a foreign namespace, a terminate.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../transports/bosh_http.h"
#include "client.h"
#include "fakehttp.h"
#include "tap.h"
#include "uvxmpp.h"

/* ---- sans-I/O ---- */

/* Feeds `resp` split at `cut` (0: whole) and returns the reader's verdict. */
static int feed_split(bosh_http_reader_t *r, const char *resp, size_t cut, size_t *used_total)
{
    size_t len = strlen(resp), used = 0;
    int rc = 0;
    *used_total = 0;
    if (cut > 0 && cut < len) {
        rc = bosh_http_reader_feed(r, resp, cut, &used);
        *used_total += used;
        if (rc != 0)
            return rc;
        rc = bosh_http_reader_feed(r, resp + cut, len - cut, &used);
    } else {
        rc = bosh_http_reader_feed(r, resp, len, &used);
    }
    *used_total += used;
    return rc;
}

/* A fresh reader for bodies of up to `max_body` bytes. */
static void reader_init(bosh_http_reader_t *r, size_t max_body)
{
    memset(r, 0, sizeof(*r));
    bosh_http_reader_init(r, max_body);
}

static void test_reader_every_split(void)
{
    static const char *const responses[] = {
        "HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\n<body></body>",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n<body\r\n"
        "8\r\n></body>\r\n0\r\n\r\n",
    };
    for (size_t i = 0; i < 2; i++) {
        size_t len = strlen(responses[i]);
        for (size_t cut = 0; cut < len; cut++) {
            bosh_http_reader_t r;
            reader_init(&r, 1024);
            size_t used;
            int rc = feed_split(&r, responses[i], cut, &used);
            CHECK_INT(rc, 1);
            CHECK_INT(r.status, 200);
            CHECK_INT(r.keep_alive, 1);
            CHECK_INT(used, i == 0 ? len - 1 : len); /* one byte too many in the first */
            CHECK(r.body.len == (i == 0 ? 12u : 13u));
            bosh_http_reader_free(&r);
        }
    }
}

static void test_reader_eof_body_and_errors(void)
{
    bosh_http_reader_t r;
    size_t used;
    reader_init(&r, 1024);
    CHECK_INT(feed_split(&r, "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n<body/>", 0, &used), 0);
    CHECK_INT(bosh_http_reader_eof(&r), 1);
    CHECK_STR(r.body.data, "<body/>");
    CHECK_INT(r.keep_alive, 0);

    bosh_http_reader_next(&r);
    CHECK_INT(feed_split(&r, "HTTP/1.1 abc\r\n", 0, &used), UVX_EPARSE);
    bosh_http_reader_next(&r);
    CHECK(!bosh_http_reader_started(&r));
    CHECK_INT(feed_split(&r, "HTTP/1.1 200 OK\r\nContent-Length: 20\r\n\r\nshort", 0, &used), 0);
    CHECK(bosh_http_reader_started(&r));
    CHECK_INT(bosh_http_reader_eof(&r), UVX_EPARSE); /* cut short */
    bosh_http_reader_free(&r);

    reader_init(&r, 4);
    CHECK_INT(feed_split(&r, "HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\n<body/>", 0, &used),
              UVX_ETOOBIG);
    bosh_http_reader_next(&r);
    CHECK_INT(feed_split(&r, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n", 0, &used), 1);
    CHECK_INT(r.status, 404);
    bosh_http_reader_free(&r);
}

static void test_reader_bad_lengths_and_interim(void)
{
    bosh_http_reader_t r;
    size_t used;
    reader_init(&r, 1024);
    /* an announced length over the limit fails at the headers, not after
     * a body that may never come */
    CHECK_INT(feed_split(&r, "HTTP/1.1 200 OK\r\nContent-Length: 99999999999\r\n\r\n", 0, &used),
              UVX_ETOOBIG);
    bosh_http_reader_next(&r);
    CHECK(feed_split(&r, "HTTP/1.1 200 OK\r\nContent-Length: 999999999999999999999999\r\n\r\n", 0,
                     &used) < 0);
    bosh_http_reader_next(&r);
    CHECK(feed_split(&r,
                     "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                     "fffffffffffffffff\r\n",
                     0, &used) < 0);
    /* chunks that go on past the limit */
    bosh_http_reader_next(&r);
    CHECK_INT(feed_split(&r, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", 0, &used), 0);
    char chunk[300];
    memset(chunk, 'x', sizeof(chunk));
    memcpy(chunk, "100\r\n", 5);
    memcpy(chunk + 5 + 256, "\r\n", 2);
    int rc = 0;
    for (int i = 0; i < 8 && rc == 0; i++)
        rc = bosh_http_reader_feed(&r, chunk, 5 + 256 + 2, &used);
    CHECK_INT(rc, UVX_ETOOBIG);
    bosh_http_reader_free(&r);
    /* 100 Continue before the answer, at every split: the answer */
    const char *resp = "HTTP/1.1 100 Continue\r\n\r\n"
                       "HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\n<body/>";
    size_t len = strlen(resp);
    for (size_t cut = 0; cut < len; cut++) {
        reader_init(&r, 1024);
        CHECK_INT(feed_split(&r, resp, cut, &used), 1);
        CHECK_INT(r.status, 200);
        CHECK_INT(used, len);
        CHECK_STR(r.body.data, "<body/>");
        bosh_http_reader_free(&r);
    }
}

static void test_body_and_request_bytes(void)
{
    buf_t b = BUF_INIT;
    bosh_body_params_t p;
    memset(&p, 0, sizeof(p));
    p.rid = 42;
    p.to = "localhost";
    p.wait = 60;
    p.hold = 1;
    p.route = "xmpp:x:5222";
    CHECK_INT(bosh_body_build(&b, &p, NULL, 0), 0);
    CHECK_STR(b.data, "<body rid='42' to='localhost' xml:lang='en' wait='60' hold='1' "
                      "content='text/xml; charset=utf-8' ver='1.6' xmpp:version='1.0' "
                      "route='xmpp:x:5222' xmlns='http://jabber.org/protocol/httpbind' "
                      "xmlns:xmpp='urn:xmpp:xbosh'/>");
    buf_reset(&b);
    p.sid = "s&1";
    p.restart = 1;
    CHECK_INT(bosh_body_build(&b, &p, NULL, 0), 0);
    CHECK_STR(b.data, "<body rid='42' sid='s&amp;1' to='localhost' xml:lang='en' "
                      "xmpp:restart='true' xmlns='http://jabber.org/protocol/httpbind' "
                      "xmlns:xmpp='urn:xmpp:xbosh'/>");
    buf_reset(&b);
    p.restart = 0;
    p.terminate = 1;
    CHECK_INT(bosh_body_build(&b, &p, "<presence/>", 11), 0);
    CHECK_STR(b.data, "<body rid='42' sid='s&amp;1' type='terminate' "
                      "xmlns='http://jabber.org/protocol/httpbind'><presence/></body>");
    buf_reset(&b);
    char *headers[] = {"X-A: 1", NULL};
    bosh_http_target_t t = {"::1", 5280, 0, "/http-bind", NULL, "a=b; c=d", headers};
    CHECK_INT(bosh_http_request(&b, &t, "<body/>", 7), 0);
    CHECK_STR(b.data, "POST /http-bind HTTP/1.1\r\nHost: [::1]:5280\r\n"
                      "Content-Type: text/xml; charset=utf-8\r\nContent-Length: 7\r\n"
                      "Cookie: a=b; c=d\r\nX-A: 1\r\n\r\n<body/>");
    buf_free(&b);
    CHECK_INT(bosh_timeout_ms(60), 66000);
    CHECK_INT(bosh_secondary_timeout_ms(60), 6000);
    CHECK_INT(bosh_backoff_ms(60, 1), 0);
    CHECK_INT(bosh_backoff_ms(60, 2), 8000);
    CHECK_INT(bosh_backoff_ms(60, 5), 66000);
    CHECK_INT(bosh_backoff_ms(1, 3), 1000);
    for (int i = 0; i < 100; i++) {
        uint64_t rid = bosh_random_rid();
        CHECK(rid > 0 && rid < ((uint64_t)1 << 52));
    }
}

/* ---- against the scripted server ---- */

#define HENV_MAX_STEPS 16

typedef struct henv {
    uv_loop_t loop;
    uvx_ctx_t *ctx;
    fakehttp_t *fh;
    fakehttp_step_t script[HENV_MAX_STEPS]; /* the server's copy of the steps */
    tclient_t c;
    char service[96];
    int proto_errors;
    int last_proto_status;
    int messages;
} henv_t;

static void on_proto_error(uvx_conn_t *conn, int status, void *ud)
{
    henv_t *e = ud;
    (void)conn;
    e->proto_errors++;
    e->last_proto_status = status;
}

static int on_message(uvx_conn_t *conn, uvx_stanza_t *msg, void *ud)
{
    henv_t *e = ud;
    (void)conn;
    (void)msg;
    e->messages++;
    return 1;
}

static void henv_options(uvx_conn_options_t *o)
{
    uvx_conn_options_init(o);
    o->allow_plain = 1;
}

static int is_end_step(const fakehttp_step_t *s)
{
    return s->expect == NULL && s->status == 0 && s->body == NULL && s->raw == NULL &&
           s->flags == 0;
}

/* Starts the scripted server on a copy of `steps` (so that callers can
 * build them on the stack) and a client for it; no connect yet. */
static int henv_init(henv_t *e, const fakehttp_step_t *steps, const uvx_conn_options_t *opts)
{
    int port = 0;
    uvx_conn_options_t o;
    memset(e, 0, sizeof(*e));
    int n = 0;
    while (n < HENV_MAX_STEPS - 1 && !is_end_step(&steps[n]))
        n++;
    CHECK(is_end_step(&steps[n]));                        /* else the script is too long */
    memcpy(e->script, steps, sizeof(*steps) * (size_t)n); /* the rest stays all-zero: the end */
    uv_loop_init(&e->loop);
    e->ctx = uvx_ctx_new(&e->loop);
    e->fh = fakehttp_start(&e->loop, e->script, &port);
    CHECK(e->fh != NULL);
    if (e->fh == NULL)
        return 0;
    snprintf(e->service, sizeof(e->service), "http://127.0.0.1:%d/http-bind", port);
    if (opts == NULL) {
        henv_options(&o);
        opts = &o;
    }
    CHECK_INT(tclient_init(&e->c, e->ctx, e->service, opts), 0);
    uvx_add_protocol_error_handler(e->c.conn, "HTTP", 404, on_proto_error, e);
    uvx_add_protocol_error_handler(e->c.conn, "HTTP", 500, on_proto_error, e);
    uvx_add_protocol_error_handler(e->c.conn, "HTTP", 0, on_proto_error, e);
    return 1;
}

static void status_recorder(uvx_conn_t *conn, int status, const char *cond, uvx_stanza_t *el,
                            void *ud);

/* henv_init() and a login that must succeed: 0 when the server did not start. */
static int henv_login(henv_t *e, const fakehttp_step_t *steps)
{
    if (!henv_init(e, steps, NULL))
        return 0;
    CHECK_INT(tclient_connect(&e->c, "alice@localhost", "alicepass"), 0);
    CHECK(run_until(&e->loop, &e->c.connected, 1, 10000));
    return 1;
}

/* henv_init() and a login that must end DISCONNECTED with CONNFAIL
 * `condition`: 0 when the server did not start. */
static int henv_login_fails(henv_t *e, const fakehttp_step_t *steps, const char *condition)
{
    if (!henv_init(e, steps, NULL))
        return 0;
    CHECK_INT(tclient_connect(&e->c, "alice@localhost", "alicepass"), 0);
    CHECK(run_until(&e->loop, &e->c.disconnected, 1, 5000));
    CHECK_STR(tclient_condition(&e->c, UVX_STATUS_CONNFAIL), condition);
    return 1;
}

/* Sends the stanza uvx_stanza_fmt() makes of `fmt`: uvx_send()'s result. */
static int send_fmt(henv_t *e, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    uvx_stanza_t *m = uvx_stanza_vfmt(fmt, ap);
    va_end(ap);
    int rc = uvx_send(e->c.conn, m);
    uvx_stanza_unref(m);
    return rc;
}

static void henv_handle_messages(henv_t *e, uvx_handler_cb cb)
{
    uvx_add_handler(e->c.conn, cb, e, NULL, "message", NULL, NULL, NULL, 0);
}

/* 1 if the i-th request exists and contains `what`. */
static int request_has(const henv_t *e, int i, const char *what)
{
    const char *r = fakehttp_request(e->fh, i);
    return r && strstr(r, what) != NULL;
}

/* uvx_connect with a BOSH wait, recording statuses in e->c. */
static void henv_connect_wait(henv_t *e, unsigned wait)
{
    uvx_connect_args_t args;
    memset(&args, 0, sizeof(args));
    args.wait = wait;
    CHECK_INT(uvx_connect(e->c.conn, "alice@localhost", "alicepass", status_recorder, &e->c, &args),
              0);
}

static void henv_done(henv_t *e)
{
    tclient_close(&e->c, &e->loop);
    fakehttp_stop(e->fh);
    for (int i = 0; i < 10; i++)
        uv_run(&e->loop, UV_RUN_NOWAIT);
    CHECK_INT(uvx_ctx_free(e->ctx), 0);
    CHECK_INT(loop_finish(&e->loop), 0);
}

/* A whole case: a login through `steps` that ends with CONNFAIL `condition`,
 * after CONNECTED if `was_connected`. */
static void login_fails_with(const fakehttp_step_t *steps, const char *condition, int was_connected)
{
    henv_t e;
    if (!henv_login_fails(&e, steps, condition))
        return;
    CHECK_INT(e.c.connected, was_connected);
    henv_done(&e);
}

/* A step answering the request that contains `expect` with 200 and `body`. */
#define STEP_200(expect, body, flags)                                                              \
    {                                                                                              \
        expect, 200, body, NULL, flags                                                             \
    }
#define STEP_CREATE(flags) STEP_200("ver='1.6'", FAKEHTTP_CREATED, flags)
#define STEP_AUTH(flags) STEP_200("<auth", FAKEHTTP_SUCCESS, flags)
#define STEP_RESTART(flags) STEP_200("xmpp:restart='true'", FAKEHTTP_BIND_FEATURES, flags)
#define STEP_BIND(flags) STEP_200("_bind_auth_2", FAKEHTTP_BOUND, flags)
/* The four steps of a whole login. */
#define STEPS_LOGIN(flags)                                                                         \
    STEP_CREATE(flags), STEP_AUTH(flags), STEP_RESTART(flags), STEP_BIND(flags)
#define STEP_TERMINATE STEP_200("type='terminate'", FAKEHTTP_BODY_OPEN("type='terminate'", ""), 0)
#define STEP_END                                                                                   \
    {                                                                                              \
        NULL, 0, NULL, NULL, 0                                                                     \
    }

/* What the server sends bob's message with `text` in. */
#define BODY_FROM_BOB(text)                                                                        \
    FAKEHTTP_BODY_OPEN("", "<message xmlns='jabber:client' from='bob@localhost/x'>"                \
                           "<body>" text "</body></message>")

/* Logs in through `steps` and checks the requests a login makes. */
static void login_with(unsigned flags)
{
    fakehttp_step_t steps[] = {STEPS_LOGIN(flags), STEP_TERMINATE, STEP_END};
    henv_t e;
    if (!henv_login(&e, steps))
        return;
    CHECK_STR(uvx_conn_jid(e.c.conn), "alice@localhost/fake");
    CHECK_STR(uvx_conn_stream_id(e.c.conn), "fake-authid");
    const char *create = fakehttp_request(e.fh, 0);
    CHECK(create && strstr(create, "POST /http-bind HTTP/1.1\r\n"));
    CHECK(create && strstr(create, "to='localhost'") && strstr(create, "wait='60'") &&
          strstr(create, "hold='1'") && strstr(create, "xmpp:version='1.0'") &&
          !strstr(create, "sid="));
    unsigned long long rid = fakehttp_request_rid(e.fh, 0);
    CHECK(rid > 0);
    for (int i = 1; i < 4; i++) {
        CHECK_INT(fakehttp_request_rid(e.fh, i), rid + (unsigned long long)i);
        CHECK(strstr(fakehttp_request(e.fh, i), "sid='fake-sid'") != NULL);
    }
    /* one request waits at the server once connected */
    run_for(&e.loop, 50);
    CHECK_INT(fakehttp_request_count(e.fh), 5);
    CHECK_INT(fakehttp_request_rid(e.fh, 4), rid + 4);
    /* sequential requests share a keep-alive connection */
    if (!(flags & (FAKEHTTP_CLOSE | FAKEHTTP_EOF_BODY)))
        CHECK_INT(fakehttp_request_conn(e.fh, 3), fakehttp_request_conn(e.fh, 0));
    CHECK_INT(uvx_disconnect(e.c.conn, NULL), 0);
    CHECK(run_until(&e.loop, &e.c.disconnected, 1, 5000));
    CHECK(!tclient_saw(&e.c, UVX_STATUS_CONNTIMEOUT));
    const char *term = fakehttp_request(e.fh, fakehttp_request_count(e.fh) - 1);
    CHECK(term && strstr(term, "type='terminate'") &&
          strstr(term, "<presence type='unavailable' xmlns='jabber:client'/>"));
    CHECK(fakehttp_connections(e.fh) <= 2 || (flags & (FAKEHTTP_CLOSE | FAKEHTTP_EOF_BODY)));
    henv_done(&e);
}

static void test_login(void)
{
    login_with(0);
}

static void test_login_split_every_byte(void)
{
    login_with(FAKEHTTP_SPLIT);
}

static void test_login_chunked(void)
{
    login_with(FAKEHTTP_CHUNKED);
}

static void test_login_connection_close(void)
{
    login_with(FAKEHTTP_CLOSE);
}

static void test_login_eof_delimited(void)
{
    login_with(FAKEHTTP_EOF_BODY | FAKEHTTP_SPLIT);
}

static void test_404_disconnects(void)
{
    static const fakehttp_step_t steps[] = {{"ver='1.6'", 404, "nope", NULL, 0}, STEP_END};
    henv_t e;
    if (!henv_login_fails(&e, steps, "http-404"))
        return;
    CHECK(tclient_saw(&e.c, UVX_STATUS_DISCONNECTING));
    CHECK_INT(e.proto_errors, 1);
    CHECK_INT(e.last_proto_status, 404);
    henv_done(&e);
}

/* The <auth/> request's first answer is `failure` in a session created by
 * `created`: the request goes again with the same rid (on a new connection
 * if `new_connection`) and the login completes, after `proto_errors`
 * reports to the HTTP error handlers (an error seen at once is reported; a
 * timeout is not). */
static void auth_answer_recovers(const char *created, fakehttp_step_t failure, int new_connection,
                                 int proto_errors, int proto_status)
{
    fakehttp_step_t steps[] = {STEP_200("ver='1.6'", created, 0),
                               failure,
                               STEP_AUTH(0),
                               STEP_RESTART(0),
                               STEP_BIND(0),
                               STEP_END};
    henv_t e;
    if (!henv_login(&e, steps))
        return;
    /* requests: create, auth, auth again (same rid), restart, bind */
    CHECK_INT(fakehttp_request_rid(e.fh, 2), fakehttp_request_rid(e.fh, 1));
    CHECK(request_has(&e, 2, "<auth"));
    CHECK_INT(fakehttp_request_rid(e.fh, 3), fakehttp_request_rid(e.fh, 1) + 1);
    if (new_connection)
        CHECK(fakehttp_request_conn(e.fh, 2) != fakehttp_request_conn(e.fh, 1));
    CHECK_INT(e.proto_errors, proto_errors);
    if (proto_errors)
        CHECK_INT(e.last_proto_status, proto_status);
    henv_done(&e);
}

/* An <auth/> answer that fails at once, in the default session. */
static void auth_fails_once(fakehttp_step_t failure, int proto_status)
{
    auth_answer_recovers(FAKEHTTP_CREATED, failure, 0, 1, proto_status);
}

static void test_500_retried(void)
{
    fakehttp_step_t f = {"<auth", 500, "oops", NULL, 0};
    auth_fails_once(f, 500);
}

static void test_garbage_status_retried(void)
{
    fakehttp_step_t f = {"<auth", 0, NULL, "HTTP/1.1 abc\r\n\r\n", 0};
    auth_fails_once(f, 0);
}

static void test_reset_retried(void)
{
    fakehttp_step_t f = {"<auth", 0, NULL, NULL, FAKEHTTP_CLOSE};
    auth_fails_once(f, 0);
}

static void test_slow_response_resent(void)
{
    /* the session request is never answered: after 1.1 x wait (wait=1) it
     * goes again with the same rid, on a new connection */
    static const fakehttp_step_t steps[] = {
        {"ver='1.6'", 0, NULL, NULL, 0}, STEPS_LOGIN(0), STEP_END};
    henv_t e;
    if (!henv_init(&e, steps, NULL))
        return;
    henv_connect_wait(&e, 1);
    CHECK(run_until(&e.loop, &e.c.connected, 1, 10000));
    CHECK_INT(fakehttp_request_rid(e.fh, 1), fakehttp_request_rid(e.fh, 0));
    CHECK(strstr(fakehttp_request(e.fh, 1), "ver='1.6'") != NULL);
    CHECK(fakehttp_request_conn(e.fh, 1) != fakehttp_request_conn(e.fh, 0));
    henv_done(&e);
}

static void test_giving_up(void)
{
    static const fakehttp_step_t steps[] = {{"rid=", 500, "x", NULL, 0},
                                            {"rid=", 500, "x", NULL, 0},
                                            {"rid=", 500, "x", NULL, 0},
                                            {"rid=", 500, "x", NULL, 0},
                                            {"rid=", 500, "x", NULL, 0},
                                            {"rid=", 500, "x", NULL, 0},
                                            STEP_END};
    henv_t e;
    if (!henv_init(&e, steps, NULL))
        return;
    henv_connect_wait(&e, 1); /* back-off capped at 1 s */
    CHECK(run_until(&e.loop, &e.c.disconnected, 1, 20000));
    CHECK_STR(tclient_condition(&e.c, UVX_STATUS_CONNFAIL), "giving-up");
    CHECK_INT(fakehttp_request_count(e.fh), 5); /* the 5th error is one too many */
    CHECK_INT(e.proto_errors, 5);
    henv_done(&e);
}

/* Empty polls answered at once with nothing (`answer`) in a session with
 * the terms `terms`, polling='1': after the first, the next waits a
 * second instead of following at once (XEP-0124 §11, §12). */
static void polls_spaced(const char *terms, const char *answer)
{
    fakehttp_step_t steps[14] = {STEP_200("ver='1.6'", terms, 0), STEP_AUTH(0), STEP_RESTART(0),
                                 STEP_BIND(0)};
    for (int i = 4; i < 13; i++)
        steps[i] = (fakehttp_step_t)STEP_200("rid=", answer, 0);
    /* the last step stays all-zero: the end */
    henv_t e;
    if (!henv_login(&e, steps))
        return;
    /* create, auth, restart, bind, then one poll and its empty answer */
    run_for(&e.loop, 300);
    CHECK_INT(fakehttp_request_count(e.fh), 5);
    CHECK(request_has(&e, 4, "sid='fake-sid' xmlns='http://jabber.org/protocol/httpbind'/>"));
    /* polling goes on: the next one comes, a second after the first */
    CHECK(run_until(&e.loop, fakehttp_request_counter(e.fh), 6, 5000));
    CHECK_INT(fakehttp_request_rid(e.fh, 5), fakehttp_request_rid(e.fh, 4) + 1);
    CHECK(request_has(&e, 5, "sid='fake-sid' xmlns='http://jabber.org/protocol/httpbind'/>"));
    /* a stanza does not wait for the poll timer */
    int before = fakehttp_request_count(e.fh);
    CHECK_INT(send_fmt(&e, "<message to='bob@localhost' id='now'/>"), 0);
    CHECK(run_until(&e.loop, fakehttp_request_counter(e.fh), before + 1, 5000));
    CHECK(request_has(&e, before, "id='now'"));
    henv_done(&e);
}

static void test_polling_session_spaced(void)
{
    polls_spaced(FAKEHTTP_CREATED_WITH("wait='60' requests='1' hold='0' polling='1'"),
                 FAKEHTTP_EMPTY);
}

static void test_empty_200_polls_spaced(void)
{
    /* a held session whose server answers every poll at once with a 200
     * and no body at all: not asked again back to back */
    polls_spaced(FAKEHTTP_CREATED_WITH("wait='60' requests='2' hold='1' polling='1'"), "");
}

/* Session terms under which a missing answer times out within a second. */
#define CREATED_WAIT_1 FAKEHTTP_CREATED_WITH("wait='1' requests='2' hold='1' polling='1'")

static void test_huge_content_length(void)
{
    /* the body is announced at 100 GB and never sent: refused at once */
    fakehttp_step_t f = {"<auth", 0, NULL,
                         "HTTP/1.1 200 OK\r\nContent-Length: 99999999999\r\n\r\n<body", 0};
    auth_answer_recovers(CREATED_WAIT_1, f, 1, 1, 0); /* at once, not after the timeout */
}

static void test_endless_chunked_body(void)
{
    /* a chunked body that stops before its last chunk, connection open */
    fakehttp_step_t f = {"<auth", 0, NULL,
                         "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                         "5\r\n<body\r\n3\r\n xm\r\n",
                         0};
    auth_answer_recovers(CREATED_WAIT_1, f, 1, 0, 0); /* the response timeout */
}

static void test_unasked_bytes_after_answer(void)
{
    /* a second response nobody asked for follows the answer: the answer
     * counts, the connection goes, the next request takes a new one */
    fakehttp_step_t f = {"<auth", 0, NULL,
                         "HTTP/1.1 500 Oops\r\nContent-Length: 0\r\n\r\n"
                         "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
                         0};
    auth_answer_recovers(CREATED_WAIT_1, f, 1, 1, 500);
}

static int send_m2_on_message(uvx_conn_t *conn, uvx_stanza_t *msg, void *ud)
{
    (void)msg;
    (void)ud;
    uvx_stanza_t *m = uvx_stanza_fmt("<message to='bob@localhost' id='m2'/>");
    uvx_send(conn, m);
    uvx_stanza_unref(m);
    return 0;
}

static void test_stray_response_before_send(void)
{
    /* A poll waits at the server; m1 goes on a second connection and its
     * answer (a message) makes us send m2 at once, which waits out the
     * order gap on that connection. A response nobody asked for arrives
     * on it meanwhile: not m2's answer (m2 was not sent), so m2 must
     * still reach the server. */
    static const fakehttp_step_t steps[] = {
        STEPS_LOGIN(0),
        STEP_200("id='m1'",
                 FAKEHTTP_BODY_OPEN("", "<message xmlns='jabber:client' from='bob@localhost/x'/>"),
                 FAKEHTTP_STRAY),
        STEP_END};
    henv_t e;
    if (!henv_login(&e, steps))
        return;
    henv_handle_messages(&e, send_m2_on_message);
    CHECK_INT(send_fmt(&e, "<message to='bob@localhost' id='m1'/>"), 0);
    CHECK(run_until(&e.loop, fakehttp_request_counter(e.fh), 7, 5000));
    int n = fakehttp_request_count(e.fh);
    CHECK(n >= 7 && request_has(&e, 6, "id='m2'"));
    CHECK(n >= 7 && fakehttp_request_rid(e.fh, 6) == fakehttp_request_rid(e.fh, 5) + 1);
    run_for(&e.loop, 50);
    CHECK(e.c.connected && !e.c.disconnected);
    henv_done(&e);
}

/* A 200 whose body is not whole <body/> elements fails the login with
 * bad-format at once: fed on, it would swallow every later response. */
static void bad_body_fails(const char *body)
{
    fakehttp_step_t steps[] = {STEP_CREATE(0), STEP_200("<auth", body, 0), STEP_AUTH(0), STEP_END};
    login_fails_with(steps, "bad-format", 0);
}

static void test_truncated_body(void)
{
    bad_body_fails("<body xmlns='http://jabber.org/protocol/httpbind'>"
                   "<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>");
    bad_body_fails(FAKEHTTP_SUCCESS "<body xmlns='http://jabber.org/protocol/httpbind'>");
    bad_body_fails("not xml at all");
}

static void status_recorder(uvx_conn_t *conn, int status, const char *cond, uvx_stanza_t *el,
                            void *ud)
{
    tclient_t *c = ud;
    (void)conn;
    (void)el;
    if (c->nstatus < TCLIENT_MAX_STATUS) {
        c->status[c->nstatus] = status;
        snprintf(c->condition[c->nstatus], sizeof(c->condition[0]), "%s", cond ? cond : "");
        c->nstatus++;
    }
    if (status == UVX_STATUS_CONNECTED || status == UVX_STATUS_ATTACHED)
        c->connected = 1;
    if (status == UVX_STATUS_DISCONNECTED)
        c->disconnected = 1;
}

static void test_bad_namespace(void)
{
    static const fakehttp_step_t steps[] = {
        STEP_200("ver='1.6'", "<body xmlns='urn:not-bosh' sid='x'/>", 0), STEP_END};
    login_fails_with(steps, "invalid-namespace", 0);
}

static void test_terminate_with_condition(void)
{
    static const fakehttp_step_t steps[] = {
        STEP_200("ver='1.6'",
                 "<body xmlns='http://jabber.org/protocol/httpbind' type='terminate' "
                 "condition='host-unknown'/>",
                 0),
        STEP_END};
    login_fails_with(steps, "host-unknown", 0);
}

static void test_terminate_conflict_when_connected(void)
{
    static const fakehttp_step_t steps[] = {
        STEPS_LOGIN(0),
        STEP_200("rid=",
                 FAKEHTTP_BODY_OPEN("type='terminate' condition='remote-stream-error'",
                                    "<stream:error><conflict "
                                    "xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>"),
                 0),
        STEP_END};
    login_fails_with(steps, "conflict", 1);
}

/* Stanzas sent while paused leave in one request on resume; options reach
 * the request headers; the hooks see what they should. */
static int bodies_out, bodies_in;
static uint64_t last_valid_rid;

static void body_out_hook(uvx_conn_t *conn, const uvx_stanza_t *s, void *ud)
{
    (void)conn;
    (void)ud;
    if (strcmp(uvx_stanza_name(s), "body") == 0)
        bodies_out++;
}

static void body_in_hook(uvx_conn_t *conn, const uvx_stanza_t *s, void *ud)
{
    (void)conn;
    (void)ud;
    if (strcmp(uvx_stanza_name(s), "body") == 0)
        bodies_in++;
}

static void rid_hook(uvx_conn_t *conn, uint64_t rid, void *ud)
{
    (void)conn;
    (void)ud;
    last_valid_rid = rid;
}

static void test_pause_batching_and_options(void)
{
    static const fakehttp_step_t steps[] = {
        STEPS_LOGIN(0),
        /* the batch answers with a message (and releases nothing else) */
        STEP_200("id='m4'", BODY_FROM_BOB("hi"), 0),
        STEP_END,
    };
    const char *headers[] = {"X-Test: yes", NULL};
    const char *cookies[] = {"a=1", "b=2", NULL};
    uvx_conn_options_t o;
    henv_options(&o);
    o.http_headers = headers;
    o.bosh_cookies = cookies;
    o.bosh_content_type = "text/xml";
    henv_t e;
    if (!henv_init(&e, steps, &o))
        return;
    bodies_in = bodies_out = 0;
    uvx_bosh_set_body_hooks(e.c.conn, body_in_hook, body_out_hook, NULL);
    uvx_bosh_set_rid_hook(e.c.conn, rid_hook, NULL);
    CHECK_INT(tclient_connect(&e.c, "alice@localhost", "alicepass"), 0);
    CHECK(run_until(&e.loop, &e.c.connected, 1, 10000));
    henv_handle_messages(&e, on_message);
    run_for(&e.loop, 20); /* the empty poll goes out */
    int before = fakehttp_request_count(e.fh);
    uvx_pause(e.c.conn);
    for (int i = 0; i < 5; i++)
        CHECK_INT(send_fmt(&e, "<message to='bob@localhost' id='m%d'><body>x</body></message>", i),
                  0);
    run_for(&e.loop, 50);
    CHECK_INT(fakehttp_request_count(e.fh), before); /* held */
    uvx_resume(e.c.conn);
    CHECK(run_until(&e.loop, &e.messages, 1, 5000));
    /* the batch; the first poll is still held, so no new one */
    CHECK_INT(fakehttp_request_count(e.fh), before + 1);
    const char *batch = fakehttp_request(e.fh, before);
    CHECK(batch && strstr(batch, "id='m0'") && strstr(batch, "id='m4'"));
    CHECK(batch && strstr(batch, "<message xmlns='jabber:client' to='bob@localhost' id='m0'>"));
    CHECK(batch && strstr(batch, "\r\nX-Test: yes\r\n") &&
          strstr(batch, "\r\nCookie: a=1; b=2\r\n") &&
          strstr(batch, "\r\nContent-Type: text/xml\r\n"));
    CHECK(bodies_out >= 6);
    CHECK(bodies_in >= 5);
    CHECK_INT(last_valid_rid, fakehttp_request_rid(e.fh, before) + 1);
    henv_done(&e);
}

/* henv_init() with the keepalive option caching the session in a new file
 * named after `path` (a mkstemp() template). */
static int henv_init_keepalive(henv_t *e, const fakehttp_step_t *steps, uvx_conn_options_t *o,
                               char *path)
{
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    if (fd >= 0)
        close(fd);
    unlink(path); /* the library creates it */
    henv_options(o);
    o->bosh_keepalive = 1;
    o->bosh_session_file = path;
    return henv_init(e, steps, o);
}

/* A new connection (the last one closed) restoring the cached session of
 * `jid`: uvx_restore()'s result. */
static int henv_restore(henv_t *e, const uvx_conn_options_t *o, const char *jid)
{
    CHECK_INT(tclient_init(&e->c, e->ctx, e->service, o), 0);
    return uvx_restore(e->c.conn, jid, status_recorder, &e->c);
}

static void test_attach_and_restore(void)
{
    static const fakehttp_step_t steps[] = {
        STEP_200("rid='1000'", BODY_FROM_BOB("held for you"), 0), STEP_END};
    char path[] = "/tmp/uvx-bosh-session-XXXXXX";
    uvx_conn_options_t o;
    henv_t e;
    if (!henv_init_keepalive(&e, steps, &o, path))
        return;
    /* misuse first */
    uvx_conn_t *tcp = NULL;
    tclient_t rec;
    memset(&rec, 0, sizeof(rec));
    CHECK_INT(uvx_conn_new(e.ctx, "tcp://127.0.0.1:1", NULL, &tcp), 0);
    CHECK_INT(uvx_attach(tcp, "alice@localhost/r", "sid", 5, status_recorder, &rec, 0, 0, 0),
              UVX_ENOTSUP);
    CHECK_INT(rec.status[0], UVX_STATUS_ATTACHFAIL);
    uvx_conn_close(tcp, NULL);
    CHECK_INT(uvx_restore(e.c.conn, NULL, status_recorder, &e.c), UVX_ENOTFOUND);
    CHECK_INT(uvx_attach(e.c.conn, "alice@localhost/r", "", 5, status_recorder, &e.c, 0, 0, 0),
              UVX_EINVAL);
    CHECK_INT(uvx_attach(e.c.conn, "@bad", "sid", 5, status_recorder, &e.c, 0, 0, 0), UVX_EINVAL);
    memset(&e.c.status, 0, sizeof(e.c.status));
    e.c.nstatus = 0;
    /* the real thing */
    CHECK_INT(
        uvx_attach(e.c.conn, "alice@localhost/r", "prebound", 1000, status_recorder, &e.c, 0, 0, 0),
        0);
    CHECK_INT(e.c.status[0], UVX_STATUS_ATTACHED);
    CHECK_STR(uvx_conn_jid(e.c.conn), "alice@localhost/r");
    henv_handle_messages(&e, on_message);
    CHECK(run_until(&e.loop, &e.messages, 1, 5000));
    CHECK(strstr(fakehttp_request(e.fh, 0), "sid='prebound'") != NULL);
    CHECK(run_until(&e.loop, fakehttp_request_counter(e.fh), 2, 5000));
    /* the next poll took rid 1001 and is held: the cache asks for it again */
    CHECK_INT(fakehttp_request_rid(e.fh, 1), 1001);
    tclient_close(&e.c, &e.loop); /* no terminate: the session lives on */
    /* a new connection takes the cached session over */
    CHECK_INT(henv_restore(&e, &o, "bob@localhost"), UVX_ENOTFOUND);
    CHECK_INT(uvx_restore(e.c.conn, "alice@localhost", status_recorder, &e.c), 0);
    CHECK(tclient_saw(&e.c, UVX_STATUS_ATTACHED));
    CHECK(run_until(&e.loop, fakehttp_request_counter(e.fh), 3, 5000));
    CHECK_INT(fakehttp_request_rid(e.fh, 2), 1001);
    CHECK(strstr(fakehttp_request(e.fh, 2), "sid='prebound'") != NULL);
    henv_done(&e);
    unlink(path);
}

/* The texts of the messages handled, "|"-separated. */
static char heard[256];

static int hear_message(uvx_conn_t *conn, uvx_stanza_t *msg, void *ud)
{
    henv_t *e = ud;
    (void)conn;
    const char *text = uvx_stanza_child_text(msg, "body");
    size_t len = strlen(heard);
    snprintf(heard + len, sizeof(heard) - len, "%s|", text ? text : "?");
    e->messages++;
    return 1;
}

static int read_lines(const char *path, char lines[][64], int max)
{
    FILE *f = fopen(path, "r");
    int n = 0;
    if (f == NULL)
        return 0;
    while (n < max && fgets(lines[n], 64, f) != NULL) {
        lines[n][strcspn(lines[n], "\n")] = '\0';
        n++;
    }
    fclose(f);
    return n;
}

/* XEP-0124 §14: the process dies while the server holds its poll (2001)
 * after a later request (2002) was answered. What the server writes into
 * the dead poll comes back when the restored session asks for rid 2001
 * again; 2002's answer, handled already, is not asked for twice. */
static void test_restore_resends_unanswered(void)
{
    static const fakehttp_step_t steps[] = {
        STEP_200("rid='2000'", BODY_FROM_BOB("first"), 0),
        STEP_200("rid='2002'", BODY_FROM_BOB("late"), 0),
        /* the server's answer to 2001, written into the dead connection */
        STEP_200("rid='2001'", BODY_FROM_BOB("replayed"), 0),
        STEP_END,
    };
    char path[] = "/tmp/uvx-bosh-session-XXXXXX";
    uvx_conn_options_t o;
    henv_t e;
    if (!henv_init_keepalive(&e, steps, &o, path))
        return;
    heard[0] = '\0';
    CHECK_INT(uvx_attach(e.c.conn, "alice@localhost/r", "s1", 2000, status_recorder, &e.c, 0, 0, 0),
              0);
    henv_handle_messages(&e, hear_message);
    CHECK(run_until(&e.loop, &e.messages, 1, 5000));
    run_for(&e.loop, 50);
    CHECK_INT(fakehttp_request_count(e.fh), 2);
    CHECK_INT(fakehttp_request_rid(e.fh, 1), 2001); /* held */
    CHECK_INT(send_fmt(&e, "<message to='bob@localhost'><body>hi</body></message>"), 0);
    CHECK(run_until(&e.loop, &e.messages, 2, 5000));
    CHECK_INT(fakehttp_request_rid(e.fh, 2), 2002);
    CHECK(strstr(fakehttp_request(e.fh, 2), "<body>hi</body>") != NULL);
    run_for(&e.loop, 50);
    CHECK_INT(fakehttp_request_count(e.fh), 3); /* 2001 still out: no new poll */
    /* the cache: 2001 unanswered, 2002 answered (bit 1), 2003 next */
    char lines[6][64];
    CHECK_INT(read_lines(path, lines, 6), 5);
    CHECK_STR(lines[0], "alice@localhost/r");
    CHECK_STR(lines[1], "s1");
    CHECK_STR(lines[2], "2001");
    CHECK_STR(lines[3], "60 1 2");
    CHECK_STR(lines[4], "2003 2");
    tclient_close(&e.c, &e.loop); /* the process dies */

    CHECK_INT(henv_restore(&e, &o, "alice@localhost"), 0);
    henv_handle_messages(&e, hear_message);
    CHECK(run_until(&e.loop, &e.messages, 3, 5000));
    run_for(&e.loop, 100);
    CHECK_INT(e.messages, 3);
    CHECK_STR(heard, "first|late|replayed|");
    /* 2001 again, then new requests from 2003: 2002 is not asked for */
    int n = fakehttp_request_count(e.fh);
    CHECK_INT(n, 5);
    CHECK_INT(fakehttp_request_rid(e.fh, 3), 2001);
    CHECK(strstr(fakehttp_request(e.fh, 3), "sid='s1'") != NULL);
    CHECK(strstr(fakehttp_request(e.fh, 3), "<body>hi</body>") == NULL);
    CHECK_INT(fakehttp_request_rid(e.fh, 4), 2003);
    CHECK_INT(read_lines(path, lines, 6), 5);
    CHECK_STR(lines[2], "2003"); /* the poll now held */
    CHECK_STR(lines[4], "2004 0");
    tclient_close(&e.c, &e.loop);

    /* a cache written before next_rid existed: its rid is the next one */
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    if (f) {
        fputs("alice@localhost/r\nold-sid\n3000\n60 1 2\n", f);
        fclose(f);
    }
    CHECK_INT(henv_restore(&e, &o, NULL), 0);
    run_for(&e.loop, 50);
    CHECK_INT(fakehttp_request_count(e.fh), 6);
    CHECK_INT(fakehttp_request_rid(e.fh, 5), 3000);
    CHECK(strstr(fakehttp_request(e.fh, 5), "sid='old-sid'") != NULL);
    henv_done(&e);
    unlink(path);
}

int main(void)
{
    tap_run("reader: every split, Content-Length and chunked", test_reader_every_split);
    tap_run("reader: EOF-delimited body, garbage, short, too big", test_reader_eof_body_and_errors);
    tap_run("body and request bytes, Strophe's timing", test_body_and_request_bytes);
    tap_run("login, rids, keep-alive reuse, terminate", test_login);
    tap_run("login with responses split at every byte", test_login_split_every_byte);
    tap_run("login with chunked responses", test_login_chunked);
    tap_run("login with Connection: close after each response", test_login_connection_close);
    tap_run("login with EOF-delimited responses", test_login_eof_delimited);
    tap_run("HTTP 404: CONNFAIL, DISCONNECTING, handler", test_404_disconnects);
    tap_run("HTTP 500: resent with the same rid, handler", test_500_retried);
    tap_run("garbage status: resent with the same rid", test_garbage_status_retried);
    tap_run("connection reset: resent with the same rid", test_reset_retried);
    tap_run("no answer within 1.1 x wait: resent with the same rid", test_slow_response_resent);
    tap_run("too many errors: giving up", test_giving_up);
    tap_run("a body in a foreign namespace: invalid-namespace", test_bad_namespace);
    tap_run("terminate with a condition: CONNFAIL with it", test_terminate_with_condition);
    tap_run("terminate remote-stream-error + conflict", test_terminate_conflict_when_connected);
    tap_run("pause/resume: one request; headers, cookies, hooks", test_pause_batching_and_options);
    tap_run("attach, keepalive cache, restore", test_attach_and_restore);
    tap_run("restore: the unanswered rid again, not the answered one",
            test_restore_resends_unanswered);
    tap_run("reader: huge or bad lengths, endless chunks, 100 Continue",
            test_reader_bad_lengths_and_interim);
    tap_run("polling session (hold='0'): empty polls spaced by `polling`",
            test_polling_session_spaced);
    tap_run("polls answered by an empty 200: spaced too", test_empty_200_polls_spaced);
    tap_run("huge Content-Length: refused at once, resent", test_huge_content_length);
    tap_run("chunked body that never ends: timeout, resent", test_endless_chunked_body);
    tap_run("bytes nobody asked for after an answer: new connection",
            test_unasked_bytes_after_answer);
    tap_run("body cut short or not XML: CONNFAIL bad-format", test_truncated_body);
    tap_run("a response before the request went: m2 still sent", test_stray_response_before_send);
    return tap_done();
}
