/*
 * The WebSocket transport (RFC 7395) against a scripted server
 * (test/fakews.c) for what real servers will not do on demand: frames split
 * at every byte, fragmented messages, pings, oversized and masked frames,
 * binary messages, messages that are not one whole element, bad upgrade
 * answers, see-other-uri redirects (before and after CONNECTED), close
 * frames with odd codes, a silent peer for the client's pings.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client.h"
#include "fakews.h"
#include "tap.h"
#include "uvxmpp.h"

typedef struct wenv {
    uv_loop_t loop;
    uvx_ctx_t *ctx;
    fakews_t *fw;
    int port;
    tclient_t c;
    char service[96];
} wenv_t;

static void wenv_init(wenv_t *e)
{
    memset(e, 0, sizeof(*e));
    uv_loop_init(&e->loop);
    e->ctx = uvx_ctx_new(&e->loop);
}

/* Starts the scripted server on e's loop and a ws:// client for it (`opts`
 * NULL: test/client.c's defaults). */
static int wenv_listen(wenv_t *e, const fakews_step_t *steps, const fakews_options_t *fopts,
                       const uvx_conn_options_t *opts)
{
    e->fw = fakews_start(&e->loop, steps, fopts, &e->port);
    CHECK(e->fw != NULL);
    if (e->fw == NULL)
        return 0;
    snprintf(e->service, sizeof(e->service), "ws://127.0.0.1:%d/xmpp-websocket", e->port);
    int rc = tclient_init(&e->c, e->ctx, e->service, opts);
    CHECK_INT(rc, 0);
    return rc == 0;
}

/* wenv_listen, then the client logs in as alice. */
static int wenv_serve(wenv_t *e, const fakews_step_t *steps, const fakews_options_t *fopts,
                      const uvx_conn_options_t *opts)
{
    if (!wenv_listen(e, steps, fopts, opts))
        return 0;
    CHECK_INT(tclient_connect(&e->c, "alice@localhost", "alicepass"), 0);
    return 1;
}

/* wenv_serve on a fresh env. */
static int wenv_connect(wenv_t *e, const fakews_step_t *steps, const fakews_options_t *fopts,
                        const uvx_conn_options_t *opts)
{
    wenv_init(e);
    return wenv_serve(e, steps, fopts, opts);
}

/* wenv_connect, and the login must reach CONNECTED. 0 when nothing could
 * start. */
static int wenv_login(wenv_t *e, const fakews_step_t *steps, const fakews_options_t *fopts,
                      const uvx_conn_options_t *opts)
{
    if (!wenv_connect(e, steps, fopts, opts))
        return 0;
    CHECK(run_until(&e->loop, &e->c.connected, 1, 5000));
    return 1;
}

/* wenv_connect, and the login must fail with `condition`. 0 when nothing
 * could start. */
static int wenv_connfail(wenv_t *e, const fakews_step_t *steps, const fakews_options_t *fopts,
                         const uvx_conn_options_t *opts, const char *condition)
{
    if (!wenv_connect(e, steps, fopts, opts))
        return 0;
    CHECK(run_until(&e->loop, &e->c.disconnected, 1, 5000));
    CHECK_STR(tclient_condition(&e->c, UVX_STATUS_CONNFAIL), condition);
    return 1;
}

/* A correct answer to the upgrade request that carries FAKEWS_SAMPLE_KEY. */
#define UPGRADE_101                                                                                \
    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"                                   \
    "Connection: Upgrade\r\nSec-WebSocket-Accept: " FAKEWS_SAMPLE_ACCEPT "\r\n"                    \
    "Sec-WebSocket-Protocol: xmpp\r\n\r\n"

/* A fresh env whose client on `service` never touches the network: the
 * upgrade answer, <open/> and `message` go in through ws_debug_feed, in
 * reads of `chunk` bytes (0: all at once). */
static void wenv_feed(wenv_t *e, const char *service, const uvx_conn_options_t *opts,
                      const char *message, size_t chunk)
{
    char input[2048];
    size_t n = strlen(UPGRADE_101);
    memcpy(input, UPGRADE_101, n);
    n += fakews_frame(input + n, 1, 1, 0, FAKEWS_OPEN, strlen(FAKEWS_OPEN));
    n += fakews_frame(input + n, 1, 1, 0, message, strlen(message));
    wenv_init(e);
    CHECK_INT(tclient_init(&e->c, e->ctx, service, opts), 0);
    CHECK_INT(tclient_connect(&e->c, "alice@localhost", "alicepass"), 0);
    ws_debug_feed(e->c.conn, FAKEWS_SAMPLE_KEY, input, n, chunk);
}

static void wenv_done(wenv_t *e)
{
    tclient_close(&e->c, &e->loop);
    fakews_stop(e->fw);
    for (int i = 0; i < 10; i++)
        uv_run(&e->loop, UV_RUN_NOWAIT);
    CHECK_INT(uvx_ctx_free(e->ctx), 0);
    CHECK_INT(loop_finish(&e->loop), 0);
}

static void opts_clear(uvx_conn_options_t *o)
{
    uvx_conn_options_init(o);
    o->allow_plain = 1;
}

/* A step that waits for `expect`, sends `text` and stays connected. */
#define STEP(expect, text)                                                                         \
    {                                                                                              \
        expect, text, NULL, 0, FAKEWS_KEEP                                                         \
    }

/* The steps of a PLAIN login, as initialisers. */
#define STEP_OPEN STEP("<open", FAKEWS_OPEN)
#define STEP_FEATURES_PLAIN STEP(NULL, FAKEWS_FEATURES_PLAIN)
#define STEP_AUTH STEP("<auth", FAKEWS_SUCCESS)
#define STEP_RESTART STEP_OPEN /* the restarted stream opens as the first did */
#define STEP_FEATURES_BIND STEP(NULL, FAKEWS_FEATURES_BIND)
#define STEP_BIND STEP("<bind", FAKEWS_BIND_RESULT)
#define STEP_END STEP(NULL, NULL)
#define LOGIN_STEPS                                                                                \
    STEP_OPEN, STEP_FEATURES_PLAIN, STEP_AUTH, STEP_RESTART, STEP_FEATURES_BIND, STEP_BIND

static void send_presence(uvx_conn_t *conn)
{
    uvx_stanza_t *p = uvx_b_done(uvx_pres(NULL));
    CHECK_INT(uvx_send(conn, p), 0);
    uvx_stanza_unref(p);
}

/* The statuses reported so far, by name: "CONNECTING AUTHENTICATING ...". */
static const char *status_names(const tclient_t *c, char *buf, size_t cap)
{
    size_t n = 0;
    buf[0] = '\0';
    for (int i = 0; i < c->nstatus && n < cap; i++)
        n +=
            (size_t)snprintf(buf + n, cap - n, "%s%s", i ? " " : "", uvx_status_name(c->status[i]));
    return buf;
}

/* Counts lines (messages) of the fake's log that start with `prefix`. */
static int count_messages(const char *log, const char *prefix)
{
    int n = 0;
    for (const char *line = log; *line; line = strchr(line, '\n') + 1) {
        if (strncmp(line, prefix, strlen(prefix)) == 0)
            n++;
        if (strchr(line, '\n') == NULL)
            break;
    }
    return n;
}

/* ---- login, framing, graceful close ---- */

static void test_login_and_graceful_close(void)
{
    static const fakews_step_t steps[] = {
        LOGIN_STEPS,
        {"<close", FAKEWS_CLOSE_ELEM, NULL, 0, FAKEWS_CLOSE},
        STEP_END,
    };
    static const char *const headers[] = {"X-Test: yes", "Cookie: a=b", NULL};
    uvx_conn_options_t o;
    opts_clear(&o);
    o.http_headers = headers;
    wenv_t e;
    if (!wenv_login(&e, steps, NULL, &o))
        return;
    CHECK_STR(uvx_conn_jid(e.c.conn), "alice@localhost/ws");
    CHECK(!uvx_conn_secure(e.c.conn));
    const char *req = fakews_request(e.fw);
    char host[64];
    snprintf(host, sizeof(host), "\r\nHost: 127.0.0.1:%d\r\n", e.port);
    CHECK(strncmp(req, "GET /xmpp-websocket HTTP/1.1\r\n", 30) == 0);
    CHECK(strstr(req, host) != NULL);
    CHECK(strstr(req, "\r\nSec-WebSocket-Protocol: xmpp\r\n") != NULL);
    CHECK(strstr(req, "\r\nSec-WebSocket-Version: 13\r\n") != NULL);
    CHECK(strstr(req, "\r\nX-Test: yes\r\nCookie: a=b\r\n") != NULL);
    /* every message is one element; stanzas carry jabber:client */
    const char *log = fakews_received(e.fw);
    CHECK_INT(count_messages(log, "<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' "
                                  "to='localhost' version='1.0'/>\n"),
              2);
    CHECK_INT(count_messages(log, "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' "), 1);
    CHECK_INT(count_messages(log, "<iq xmlns='jabber:client' type='set' id='_bind_auth_2'><bind "),
              1);
    CHECK_INT(count_messages(log, "<"), 4); /* nothing else, nothing glued together */

    CHECK_INT(uvx_disconnect(e.c.conn, NULL), 0);
    CHECK(run_until(&e.loop, &e.c.disconnected, 1, 5000));
    CHECK(!tclient_saw(&e.c, UVX_STATUS_CONNTIMEOUT)); /* the server's close came */
    CHECK(strstr(fakews_received(e.fw), "<close xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>"));
    CHECK_INT(fakews_close_code(e.fw), 1000); /* and the close frames were exchanged */
    CHECK_INT(fakews_bad_frames(e.fw), 0);
    wenv_done(&e);
}

static void test_split_at_every_byte(void)
{
    static const fakews_step_t steps[] = {LOGIN_STEPS, STEP_END};
    fakews_options_t fo = {NULL, 1, 0};
    wenv_t e;
    if (!wenv_connect(&e, steps, &fo, NULL))
        return;
    CHECK(run_until(&e.loop, &e.c.connected, 1, 20000));
    wenv_done(&e);
}

/* The same answer fed to the transport one byte per read, for certain. */
static void test_debug_feed_every_byte(void)
{
    wenv_t e;
    wenv_feed(&e, "ws://127.0.0.1:9/x", NULL, FAKEWS_FEATURES_PLAIN, 1);
    /* <open/> and the features came through: PLAIN went out */
    CHECK(tclient_saw(&e.c, UVX_STATUS_AUTHENTICATING));
    CHECK(!e.c.disconnected);
    wenv_done(&e);
}

/* ---- frames ---- */

static void test_fragmented_message_and_ping(void)
{
    /* the features in three frames, a ping between the second and third */
    const char *f = FAKEWS_FEATURES_PLAIN;
    size_t len = strlen(f), a = len / 3, b = 2 * len / 3;
    char raw[1024];
    size_t n = fakews_frame(raw, 0, 0x1, 0, f, a);
    n += fakews_frame(raw + n, 0, 0x0, 0, f + a, b - a);
    n += fakews_frame(raw + n, 1, 0x9, 0, "hello", 5);
    n += fakews_frame(raw + n, 1, 0x0, 0, f + b, len - b);
    fakews_step_t steps[] = {
        {"<open", FAKEWS_OPEN, raw, n, FAKEWS_KEEP},
        STEP_AUTH,
        STEP_RESTART,
        STEP_FEATURES_BIND,
        STEP_BIND,
        STEP_END,
    };
    wenv_t e;
    if (!wenv_login(&e, steps, NULL, NULL))
        return;
    CHECK_INT(fakews_pongs(e.fw), 1); /* the ping was answered */
    wenv_done(&e);
}

/* Runs a script whose server misbehaves after <open/> and checks the
 * client fails with `condition` and closed with `code`. */
static void refused_frame_case(const char *raw, size_t n, const uvx_conn_options_t *o,
                               const char *condition, int code)
{
    fakews_step_t steps[] = {
        {"<open", FAKEWS_OPEN, raw, n, FAKEWS_KEEP},
        STEP_END,
    };
    wenv_t e;
    if (!wenv_connfail(&e, steps, NULL, o, condition))
        return;
    CHECK_STR(tclient_condition(&e.c, UVX_STATUS_DISCONNECTED), condition);
    run_for(&e.loop, 50);
    CHECK_INT(fakews_close_code(e.fw), code);
    wenv_done(&e);
}

static void test_oversized_frame(void)
{
    /* a header announcing 1 TiB, then a few bytes of it: refused at its
     * first bytes (wslay reports a frame with its first payload), so the
     * client never holds more than one read of it */
    char raw[32];
    unsigned char *p = (unsigned char *)raw;
    p[0] = 0x81;
    p[1] = 127;
    for (int i = 0; i < 8; i++)
        p[2 + i] = (unsigned char)(((uint64_t)1 << 40) >> (8 * (7 - i)));
    memcpy(raw + 10, "<message>", 9);
    refused_frame_case(raw, 19, NULL, "websocket-policy-violation", 1008);
}

static void test_oversized_fragments(void)
{
    /* a limit of 1000 bytes, reached by a message in small fragments */
    char chunk[400];
    memset(chunk, 'a', sizeof(chunk));
    char raw[2048];
    size_t n = fakews_frame(raw, 0, 0x1, 0, "<message><body>", 15);
    for (int i = 0; i < 3; i++)
        n += fakews_frame(raw + n, 0, 0x0, 0, chunk, sizeof(chunk));
    uvx_conn_options_t o;
    opts_clear(&o);
    o.tls_disabled = 1;
    o.max_stanza_size = 1000;
    refused_frame_case(raw, n, &o, "websocket-policy-violation", 1008);
}

static void test_masked_server_frame(void)
{
    char raw[256];
    size_t n = fakews_frame(raw, 1, 0x1, 1, FAKEWS_FEATURES_BIND, strlen(FAKEWS_FEATURES_BIND));
    refused_frame_case(raw, n, NULL, "websocket-protocol-error", 1002);
}

static void test_binary_message(void)
{
    char raw[64];
    size_t n = fakews_frame(raw, 1, 0x2, 0, "<a/>", 4);
    refused_frame_case(raw, n, NULL, "websocket-unsupported-data", 1003);
}

static void test_invalid_utf8(void)
{
    char raw[64];
    size_t n = fakews_frame(raw, 1, 0x1, 0, "<a>\xff</a>", 8);
    refused_frame_case(raw, n, NULL, "websocket-invalid-payload", 1007);
}

/* ---- RFC 7395 §3.3.3: one whole element per message ---- */

/* The server's features, sent after <open/> as the text messages of
 * `parts` (NULL-terminated, each one frame), fail the connection with
 * close code 1007 and "websocket-bad-framing". */
static void bad_framing_case(const char *const *parts)
{
    char raw[2048];
    size_t n = 0;
    for (const char *const *m = parts; *m; m++)
        n += fakews_frame(raw + n, 1, 0x1, 0, *m, strlen(*m));
    refused_frame_case(raw, n, NULL, "websocket-bad-framing", 1007);
}

static void test_element_split_over_messages(void)
{
    static const char *const parts[] = {
        "<stream:features xmlns:stream='http://etherx.jabber.org/streams'>"
        "<mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>",
        "<mechanism>PLAIN</mechanism></mechanisms></stream:features>",
        NULL,
    };
    bad_framing_case(parts);
}

static void test_start_tag_split_over_messages(void)
{
    /* the features whole, then a start tag whose end only the next
     * message brings: one element each, and the parser at depth 1 after
     * both (it holds "<message" unparsed), yet RFC 7395 is broken */
    static const char *const parts[] = {
        FAKEWS_FEATURES_PLAIN "<message xmlns='jabber:client'",
        "/>",
        NULL,
    };
    bad_framing_case(parts);
}

static void test_two_elements_in_one_message(void)
{
    static const char *const parts[] = {
        FAKEWS_FEATURES_PLAIN "<message xmlns='jabber:client'><body>x</body></message>",
        NULL,
    };
    bad_framing_case(parts);
}

static void test_whitespace_only_message(void)
{
    /* RFC 7395 §3.3.3: a message is a standalone XML document, which
     * white space alone is not; keepalives are pings (§3.8), and Prosody
     * and ejabberd send pings. */
    static const char *const parts[] = {" \r\n", NULL};
    bad_framing_case(parts);
}

static void test_text_before_element(void)
{
    /* the parser drops text between stanzas: the transport must see it */
    static const char *const parts[] = {"hello " FAKEWS_FEATURES_PLAIN, NULL};
    bad_framing_case(parts);
}

static void test_white_space_around_element(void)
{
    /* a standalone document may have white space around its element */
    static const fakews_step_t steps[] = {
        STEP_OPEN,          STEP(NULL, "\n " FAKEWS_FEATURES_PLAIN " \r\n"),
        STEP_AUTH,          STEP_RESTART,
        STEP_FEATURES_BIND, STEP_BIND,
        STEP_END,
    };
    wenv_t e;
    if (!wenv_login(&e, steps, NULL, NULL))
        return;
    CHECK(!e.c.disconnected);
    wenv_done(&e);
}

/* Logs in and sends a presence, which the script answers by ending the
 * session. 0 when nothing could start. */
static int presence_ends_session(wenv_t *e, const fakews_step_t *steps)
{
    if (!wenv_login(e, steps, NULL, NULL))
        return 0;
    send_presence(e->c.conn);
    CHECK(run_until(&e->loop, &e->c.disconnected, 1, 5000));
    return 1;
}

static void test_server_close_frame_code(void)
{
    /* a close frame without <close/>: the code becomes the condition */
    char raw[16];
    size_t n = fakews_frame(raw, 1, 0x8, 0, "\x03\xe9going", 7); /* 1001 */
    fakews_step_t steps[] = {LOGIN_STEPS, {"<presence", NULL, raw, n, FAKEWS_KEEP}, STEP_END};
    wenv_t e;
    if (!presence_ends_session(&e, steps))
        return;
    CHECK_STR(tclient_condition(&e.c, UVX_STATUS_DISCONNECTED), "websocket-going-away");
    CHECK(!tclient_saw(&e.c, UVX_STATUS_CONNFAIL)); /* we were connected */
    run_for(&e.loop, 50);
    CHECK_INT(fakews_close_code(e.fw), 1001); /* echoed, RFC 6455 §5.5.1 */
    wenv_done(&e);
}

static void test_dropped_without_close(void)
{
    fakews_step_t steps[] = {{"<open", FAKEWS_OPEN, NULL, 0, FAKEWS_DROP}, STEP_END};
    wenv_t e;
    if (!wenv_connfail(&e, steps, NULL, NULL, "connection-lost"))
        return;
    wenv_done(&e);
}

static void test_stream_error(void)
{
    fakews_step_t steps[] = {
        LOGIN_STEPS,
        STEP("<presence", "<stream:error xmlns:stream='http://etherx.jabber.org/streams'><conflict "
                          "xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>"),
        {NULL, FAKEWS_CLOSE_ELEM, NULL, 0, FAKEWS_CLOSE},
        STEP_END,
    };
    wenv_t e;
    if (!presence_ends_session(&e, steps))
        return;
    CHECK_STR(tclient_condition(&e.c, UVX_STATUS_ERROR), "conflict");
    wenv_done(&e);
}

/* ---- the upgrade ---- */

static void upgrade_failure_case(const char *response, const char *condition)
{
    fakews_step_t steps[] = {LOGIN_STEPS, STEP_END};
    fakews_options_t fo = {response, 0, 0};
    wenv_t e;
    if (!wenv_connfail(&e, steps, &fo, NULL, condition))
        return;
    CHECK_INT(fakews_steps_done(e.fw), 0);
    wenv_done(&e);
}

static void test_bad_accept(void)
{
    upgrade_failure_case("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                         "Connection: Upgrade\r\nSec-WebSocket-Accept: x%s\r\n"
                         "Sec-WebSocket-Protocol: xmpp\r\n\r\n",
                         "websocket-bad-accept");
}

static void test_missing_subprotocol(void)
{
    upgrade_failure_case("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                         "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n",
                         "websocket-no-subprotocol");
}

static void test_other_subprotocol(void)
{
    upgrade_failure_case("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                         "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n"
                         "Sec-WebSocket-Protocol: mqtt\r\n\r\n",
                         "websocket-no-subprotocol");
}

static void test_not_http(void)
{
    upgrade_failure_case("<stream:stream>%s", "websocket-bad-response");
}

static void test_ejabberd_header_case(void)
{
    /* ejabberd's spelling and no space after the colon */
    static const fakews_step_t steps[] = {LOGIN_STEPS, STEP_END};
    fakews_options_t fo = {"HTTP/1.1 101 Switching Protocols\r\nupgrade: WebSocket\r\n"
                           "connection: keep-alive, Upgrade\r\nsec-websocket-accept:%s\r\n"
                           "Sec-Websocket-Protocol:xmpp\r\n\r\n",
                           0, 0};
    wenv_t e;
    if (!wenv_login(&e, steps, &fo, NULL))
        return;
    wenv_done(&e);
}

typedef struct proto_err {
    int calls;
    int status;
} proto_err_t;

static void on_protocol_error(uvx_conn_t *conn, int status, void *ud)
{
    proto_err_t *p = ud;
    (void)conn;
    p->calls++;
    p->status = status;
}

static void test_non_101_answer(void)
{
    fakews_step_t steps[] = {STEP_END};
    fakews_options_t fo = {"HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n\r\nnot here%s", 0, 0};
    wenv_t e;
    wenv_init(&e);
    if (!wenv_listen(&e, steps, &fo, NULL))
        return;
    proto_err_t p404 = {0, 0}, p500 = {0, 0};
    CHECK_INT(uvx_add_protocol_error_handler(e.c.conn, "websocket", 500, on_protocol_error, &p500),
              0);
    CHECK_INT(uvx_add_protocol_error_handler(e.c.conn, "websocket", 404, on_protocol_error, &p404),
              0);
    CHECK_INT(tclient_connect(&e.c, "alice@localhost", "alicepass"), 0);
    CHECK(run_until(&e.loop, &e.c.disconnected, 1, 5000));
    CHECK_INT(p404.calls, 1);
    CHECK_INT(p404.status, 404);
    CHECK_INT(p500.calls, 0);
    CHECK_STR(tclient_condition(&e.c, UVX_STATUS_CONNFAIL), "websocket-http-404");
    wenv_done(&e);
}

static void test_bad_open_version(void)
{
    fakews_step_t steps[] = {
        STEP("<open",
             "<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' from='localhost' id='x'/>"),
        STEP_END,
    };
    wenv_t e;
    if (!wenv_connfail(&e, steps, NULL, NULL, "unsupported-version"))
        return;
    wenv_done(&e);
}

/* ---- see-other-uri ---- */

/* The <close/> that sends the client to `uri`. */
static void see_other_close(char *out, size_t cap, const char *uri)
{
    snprintf(out, cap, "<close xmlns='urn:ietf:params:xml:ns:xmpp-framing' see-other-uri='%s'/>",
             uri);
}

/* The endpoint a see-other-uri names: a second scripted server. */
typedef struct redirect {
    fakews_t *target;
    char uri[96];
    char close[256]; /* the <close/> that names uri */
} redirect_t;

/* A fresh env and, on its loop, the target playing `target_steps`; it
 * starts first, as the first server's script names it. */
static void redirect_init(wenv_t *e, redirect_t *r, const fakews_step_t *target_steps)
{
    int port = 0;
    wenv_init(e);
    r->target = fakews_start(&e->loop, target_steps, NULL, &port);
    CHECK(r->target != NULL);
    snprintf(r->uri, sizeof(r->uri), "ws://127.0.0.1:%d/elsewhere", port);
    see_other_close(r->close, sizeof(r->close), r->uri);
}

static void test_redirect(void)
{
    static const fakews_step_t target_steps[] = {LOGIN_STEPS, STEP_END};
    wenv_t e;
    redirect_t r;
    redirect_init(&e, &r, target_steps);
    fakews_step_t steps[] = {STEP("<open", r.close), STEP_END};
    if (!wenv_serve(&e, steps, NULL, NULL))
        return;
    CHECK(run_until(&e.loop, &e.c.connected, 1, 5000));
    CHECK_STR(tclient_condition(&e.c, UVX_STATUS_REDIRECT), r.uri);
    char seq[256];
    CHECK_STR(status_names(&e.c, seq, sizeof(seq)),
              "CONNECTING REDIRECT CONNECTING AUTHENTICATING CONNECTED");
    CHECK(strncmp(fakews_request(r.target), "GET /elsewhere HTTP/1.1\r\n", 25) == 0);
    CHECK_INT(fakews_connections(r.target), 1);
    run_for(&e.loop, 50);
    CHECK_INT(fakews_close_code(e.fw), 1000); /* the first server was left politely */
    CHECK_STR(uvx_conn_jid(e.c.conn), "alice@localhost/ws");
    fakews_stop(r.target);
    wenv_done(&e);
}

typedef struct session_probe {
    int messages;  /* stanzas the message handler saw */
    int iq_errors; /* error callbacks of the pending IQ (NULL: dropped) */
} session_probe_t;

static int probe_on_message(uvx_conn_t *conn, uvx_stanza_t *s, void *ud)
{
    (void)conn, (void)s;
    ((session_probe_t *)ud)->messages++;
    return 1;
}

static int probe_on_iq_error(uvx_conn_t *conn, uvx_stanza_t *s, void *ud)
{
    (void)conn;
    if (s == NULL)
        ((session_probe_t *)ud)->iq_errors++;
    return 0;
}

static void test_redirect_after_connected(void)
{
    /* the new endpoint logs in again and answers our presence with a
     * message */
    static const fakews_step_t target_steps[] = {
        LOGIN_STEPS,
        STEP("<presence",
             "<message xmlns='jabber:client' from='bob@localhost'><body>hi</body></message>"),
        STEP_END,
    };
    wenv_t e;
    redirect_t r;
    redirect_init(&e, &r, target_steps);
    fakews_step_t steps[] = {LOGIN_STEPS, STEP("<presence", r.close), STEP_END};
    if (!wenv_serve(&e, steps, NULL, NULL))
        return;
    CHECK(run_until(&e.loop, &e.c.connected, 1, 5000));

    /* what the first session leaves behind: a handler, an unanswered IQ */
    session_probe_t probe = {0, 0};
    CHECK(uvx_add_handler(e.c.conn, probe_on_message, &probe, NULL, "message", NULL, NULL, NULL,
                          0) != NULL);
    uvx_stanza_t *ping = uvx_b_done(uvx_b_c(uvx_iq("type", "get", "to", "localhost", NULL), "ping",
                                            "xmlns", "urn:xmpp:ping", NULL));
    CHECK_INT(uvx_send_iq(e.c.conn, ping, NULL, probe_on_iq_error, &probe, 0), 0);
    uvx_stanza_unref(ping);
    send_presence(e.c.conn);
    e.c.connected = 0;
    CHECK(run_until(&e.loop, &e.c.connected, 1, 5000));

    char seq[256];
    CHECK_STR(status_names(&e.c, seq, sizeof(seq)),
              "CONNECTING AUTHENTICATING CONNECTED REDIRECT CONNECTING AUTHENTICATING CONNECTED");
    CHECK_STR(tclient_condition(&e.c, UVX_STATUS_REDIRECT), r.uri);
    CHECK_INT(probe.iq_errors, 1); /* told, as on DISCONNECTED */
    CHECK_INT(fakews_connections(r.target), 1);
    CHECK(strncmp(fakews_request(r.target), "GET /elsewhere HTTP/1.1\r\n", 25) == 0);
    /* a whole new login there: <auth/> and bind again */
    CHECK_INT(count_messages(fakews_received(r.target), "<auth "), 1);
    CHECK_STR(uvx_conn_jid(e.c.conn), "alice@localhost/ws");
    /* a message of the new session reaches a handler added now, not the
     * one of the old session */
    session_probe_t fresh = {0, 0};
    CHECK(uvx_add_handler(e.c.conn, probe_on_message, &fresh, NULL, "message", NULL, NULL, NULL,
                          0) != NULL);
    send_presence(e.c.conn);
    CHECK(run_until(&e.loop, &fresh.messages, 1, 5000));
    CHECK_INT(probe.messages, 0);
    run_for(&e.loop, 50);
    CHECK_INT(fakews_close_code(e.fw), 1000); /* the first server was left politely */
    fakews_stop(r.target);
    wenv_done(&e);
}

static void test_redirect_after_connected_stalls(void)
{
    /* the new endpoint upgrades and then says nothing: the login deadline,
     * over once CONNECTED, holds for the new login too */
    static const fakews_step_t target_steps[] = {STEP_END};
    wenv_t e;
    redirect_t r;
    redirect_init(&e, &r, target_steps);
    fakews_step_t steps[] = {LOGIN_STEPS, STEP("<presence", r.close), STEP_END};
    uvx_conn_options_t o;
    opts_clear(&o);
    o.login_timeout_ms = 300;
    if (!wenv_serve(&e, steps, NULL, &o))
        return;
    CHECK(run_until(&e.loop, &e.c.connected, 1, 5000));
    send_presence(e.c.conn);
    CHECK(run_until(&e.loop, &e.c.disconnected, 1, 5000));
    char seq[256];
    CHECK_STR(status_names(&e.c, seq, sizeof(seq)), "CONNECTING AUTHENTICATING CONNECTED REDIRECT "
                                                    "CONNECTING CONNFAIL DISCONNECTED");
    CHECK_STR(tclient_condition(&e.c, UVX_STATUS_CONNFAIL), "login-timeout");
    CHECK_INT(fakews_connections(r.target), 1);
    fakews_stop(r.target);
    wenv_done(&e);
}

static void test_redirect_while_disconnecting(void)
{
    /* the answer to our <close/> names another endpoint: we leave anyway */
    static const fakews_step_t target_steps[] = {LOGIN_STEPS, STEP_END};
    wenv_t e;
    redirect_t r;
    redirect_init(&e, &r, target_steps);
    fakews_step_t steps[] = {LOGIN_STEPS, {"<close", r.close, NULL, 0, FAKEWS_CLOSE}, STEP_END};
    if (!wenv_serve(&e, steps, NULL, NULL))
        return;
    CHECK(run_until(&e.loop, &e.c.connected, 1, 5000));
    CHECK_INT(uvx_disconnect(e.c.conn, NULL), 0);
    CHECK(run_until(&e.loop, &e.c.disconnected, 1, 5000));
    CHECK(!tclient_saw(&e.c, UVX_STATUS_REDIRECT));
    CHECK(!tclient_saw(&e.c, UVX_STATUS_CONNTIMEOUT)); /* taken as the answer */
    CHECK_INT(fakews_connections(r.target), 0);
    fakews_stop(r.target);
    wenv_done(&e);
}

static void redirect_refused_case(const char *service, const char *uri, const char *condition)
{
    char close[256];
    see_other_close(close, sizeof(close), uri);
    uvx_conn_options_t o;
    opts_clear(&o);
    o.tls_insecure = 1;
    wenv_t e;
    wenv_feed(&e, service, &o, close, 0);
    CHECK(run_until(&e.loop, &e.c.disconnected, 1, 5000));
    CHECK(!tclient_saw(&e.c, UVX_STATUS_REDIRECT));
    CHECK_STR(tclient_condition(&e.c, UVX_STATUS_CONNFAIL), condition);
    wenv_done(&e);
}

static void test_redirect_downgrade_refused(void)
{
    /* wss:// must not be sent down to ws:// (the socket is never used:
     * the input goes in through ws_debug_feed) */
    redirect_refused_case("wss://127.0.0.1:9/xmpp-websocket", "ws://127.0.0.1:9/x",
                          "redirect-refused");
}

static void test_redirect_invalid(void)
{
    redirect_refused_case("ws://127.0.0.1:9/xmpp-websocket", "http://127.0.0.1:9/x",
                          "redirect-invalid");
}

/* ---- keepalive ---- */

/* Logs in with a client ping every 20 ms, each to be answered within
 * `pong_timeout_ms` (the connection copies its options). */
static int wenv_login_pinging(wenv_t *e, const fakews_options_t *fopts, unsigned pong_timeout_ms)
{
    static const fakews_step_t steps[] = {LOGIN_STEPS, STEP_END};
    uvx_conn_options_t o;
    opts_clear(&o);
    o.tls_disabled = 1;
    o.ws_ping_interval_ms = 20;
    o.ws_pong_timeout_ms = pong_timeout_ms;
    return wenv_login(e, steps, fopts, &o);
}

static void test_client_pings(void)
{
    wenv_t e;
    if (!wenv_login_pinging(&e, NULL, 1000))
        return;
    /* wait for three pings by the server's count, not by the clock */
    for (int i = 0; i < 500 && fakews_pings(e.fw) < 3; i++)
        run_for(&e.loop, 10);
    CHECK(fakews_pings(e.fw) >= 3);
    CHECK(!e.c.disconnected); /* every one was answered */
    wenv_done(&e);
}

static void test_pong_timeout(void)
{
    fakews_options_t fo = {NULL, 0, 1}; /* no pongs */
    wenv_t e;
    if (!wenv_login_pinging(&e, &fo, 100))
        return;
    CHECK(run_until(&e.loop, &e.c.disconnected, 1, 5000));
    CHECK_STR(tclient_condition(&e.c, UVX_STATUS_DISCONNECTED), "ping-timeout");
    CHECK_INT(fakews_pings(e.fw), 1); /* no second ping while one is unanswered */
    wenv_done(&e);
}

int main(void)
{
    /* a peer that hangs up while our close frame or TLS alert is on its way
     * would otherwise end the program (libuv writes with write(2)) */
    signal(SIGPIPE, SIG_IGN);
    tap_run("login, one element per message, headers, graceful close",
            test_login_and_graceful_close);
    tap_run("server frames written one byte at a time", test_split_at_every_byte);
    tap_run("upgrade answer and frames fed one byte per read", test_debug_feed_every_byte);
    tap_run("fragmented message with a ping in between", test_fragmented_message_and_ping);
    tap_run("oversized frame header -> 1008 policy-violation", test_oversized_frame);
    tap_run("oversized fragmented message -> 1008", test_oversized_fragments);
    tap_run("masked server frame -> 1002 protocol error", test_masked_server_frame);
    tap_run("binary message -> 1003", test_binary_message);
    tap_run("invalid UTF-8 -> 1007", test_invalid_utf8);
    tap_run("element split over two messages -> 1007", test_element_split_over_messages);
    tap_run("start tag finished by the next message -> 1007", test_start_tag_split_over_messages);
    tap_run("two elements in one message -> 1007", test_two_elements_in_one_message);
    tap_run("white-space-only message -> 1007", test_whitespace_only_message);
    tap_run("text before the element -> 1007", test_text_before_element);
    tap_run("white space around the element is fine", test_white_space_around_element);
    tap_run("server close frame code becomes the condition", test_server_close_frame_code);
    tap_run("connection dropped without a close frame", test_dropped_without_close);
    tap_run("stream error after CONNECTED", test_stream_error);
    tap_run("bad Sec-WebSocket-Accept", test_bad_accept);
    tap_run("missing subprotocol", test_missing_subprotocol);
    tap_run("another subprotocol", test_other_subprotocol);
    tap_run("answer that is not HTTP", test_not_http);
    tap_run("ejabberd's header spelling is accepted", test_ejabberd_header_case);
    tap_run("non-101 answer -> protocol error handler", test_non_101_answer);
    tap_run("<open/> without version 1.0", test_bad_open_version);
    tap_run("see-other-uri: REDIRECT, then the new endpoint", test_redirect);
    tap_run("see-other-uri after CONNECTED: a new session", test_redirect_after_connected);
    tap_run("see-other-uri after CONNECTED to a silent endpoint: login-timeout",
            test_redirect_after_connected_stalls);
    tap_run("see-other-uri answering our <close/>: no redirect", test_redirect_while_disconnecting);
    tap_run("see-other-uri from wss:// to ws:// refused", test_redirect_downgrade_refused);
    tap_run("see-other-uri with another scheme refused", test_redirect_invalid);
    tap_run("client pings answered", test_client_pings);
    tap_run("pong timeout fails the connection", test_pong_timeout);
    return tap_done();
}
