/*
 * floodserver: a scripted XMPP server for the throughput benches. It logs
 * any client in (SASL PLAIN or ANONYMOUS, bind, optional session), waits
 * for the client's first <presence/> (so the client is CONNECTED and its
 * handlers are in place) and then
 *   flood mode: writes N pre-generated chat messages, the last with
 *               id='last', as fast as the socket takes them;
 *   raw mode:   skips all of that: writes the stream header and the same
 *               flood as soon as a client connects (for bench/flood_bare,
 *               which has no XMPP stack);
 *   sink mode:  reads and discards what the client sends, counting
 *               <message occurrences, and answers <message id='done'/>
 *               once it has seen the client's message with id='last'.
 * Clients are served one after another or side by side; the flood bytes
 * are generated once, so every client gets the same bytes.
 *
 *   floodserver [--port P] [--messages N] [--mode flood|raw|sink] [--dump FILE]
 *   floodserver --bare-parse [--messages N]
 *
 * The first line on stdout is "PORT <n>" (useful with --port 0).
 * --bare-parse times a bare libxml2 SAX2 push parse (no-op callbacks, 64 KiB
 * chunks, best of 3) of the flood bytes and prints
 * "RESULT bare_msgs_per_s=R bare_mb_s=X bare_cpu_msgs_per_s=C" (C: from CPU
 * time rather than wall-clock time).
 *
 * It finds the handshake steps by substring search on the client's bytes:
 * a bench tool, not a server.
 */
#include <ctype.h>
#include <libxml/parser.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <uv.h>

#include "bare.h"

#define READ_SIZE (256 * 1024)
#define CARRY_MAX 4096                    /* longest tag the sink scanner re-reads */
#define FLOOD_CHUNK (1024 * 1024)         /* bytes per uv_write */
#define FLOOD_QUEUE_MAX (4 * 1024 * 1024) /* stop queueing above this */
#define BARE_CHUNK (64 * 1024)            /* the client library's read size */

enum { MODE_FLOOD, MODE_RAW, MODE_SINK };

static const char stream_head[] =
    "<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
    "xmlns:stream='http://etherx.jabber.org/streams' from='example.com' id='c2s-4711' "
    "version='1.0' xml:lang='en'>";

/* The same message as bench/parse.c: ~100 bytes of body with entities and
 * UTF-8 (é, 日本, 🎉) plus a chat state in another namespace. */
static const char message_fmt[] =
    "<message to='juliet@example.com/balcony' from='romeo%u@example.net/orchard' "
    "type='chat' id='%s' xml:lang='en'><body>Wherefore art thou &amp; why &lt;3? "
    "It&apos;s caf\xc3\xa9 time in \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x8e\x89 (%u) lorem "
    "ipsum</body><active xmlns='http://jabber.org/protocol/chatstates'/></message>\n";

static const char features_sasl[] =
    "<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>"
    "<mechanism>PLAIN</mechanism><mechanism>ANONYMOUS</mechanism></mechanisms>"
    "</stream:features>";

static const char features_bind[] =
    "<stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/>"
    "<session xmlns='urn:ietf:params:xml:ns:xmpp-session'><optional/></session>"
    "</stream:features>";

typedef struct server {
    uv_loop_t *loop;
    uv_tcp_t listener;
    int mode;
    unsigned messages;
    char *flood; /* the flood bytes (flood mode) */
    size_t flood_len;
    unsigned next_client_id;
} server_t;

typedef enum { PH_HANDSHAKE, PH_RUNNING, PH_CLOSED } phase_t;

typedef struct client {
    uv_tcp_t sock;
    server_t *srv;
    unsigned id;
    phase_t phase;
    int authed;
    int close_after_write; /* a write with this flag closes the socket when done */
    char domain[256];
    /* handshake: the client's bytes not yet consumed */
    char *acc;
    size_t acc_len, acc_cap;
    /* flood */
    size_t flood_off;
    int flood_writes; /* uv_write requests in flight */
    uint64_t started_ns;
    /* sink */
    unsigned long msgs;
    size_t carry_len; /* an undecided tag kept just before rbuf + CARRY_MAX */
    char rbuf[CARRY_MAX + READ_SIZE];
} client_t;

typedef struct write_req {
    uv_write_t req;
    client_t *client;
    int close_after;
    int is_flood;
    char data[]; /* copied bytes (non-flood writes) */
} write_req_t;

/* ---- generating the flood -------------------------------------------------- */

static char *make_messages(unsigned n, size_t *len)
{
    size_t cap = (size_t)n * 480 + 4096, used = 0;
    char *out = malloc(cap);
    if (out == NULL)
        return NULL;
    for (unsigned i = 0; i < n; i++) {
        char id[32];
        if (i + 1 == n)
            snprintf(id, sizeof(id), "last");
        else
            snprintf(id, sizeof(id), "msg-%08u", i);
        if (cap - used < 1024) {
            char *bigger = realloc(out, cap * 2);
            if (bigger == NULL) {
                free(out);
                return NULL;
            }
            out = bigger;
            cap *= 2;
        }
        used += (size_t)snprintf(out + used, cap - used, message_fmt, i % 97, id, i);
    }
    *len = used;
    return out;
}

/* ---- client plumbing -------------------------------------------------------- */

static void client_on_closed(uv_handle_t *h)
{
    client_t *c = h->data;
    free(c->acc);
    free(c);
}

static void client_close(client_t *c)
{
    if (c->phase == PH_CLOSED)
        return;
    c->phase = PH_CLOSED;
    uv_close((uv_handle_t *)&c->sock, client_on_closed);
}

static void flood_pump(client_t *c);

static void client_on_write(uv_write_t *req, int status)
{
    write_req_t *w = (write_req_t *)req;
    client_t *c = w->client;
    int close_after = w->close_after, is_flood = w->is_flood;
    free(w);
    if (is_flood)
        c->flood_writes--;
    if (c->phase == PH_CLOSED)
        return;
    if (status < 0 || close_after) {
        client_close(c);
        return;
    }
    if (is_flood)
        flood_pump(c);
}

/* Writes a copy of `data`; `close_after` closes the socket once it is out. */
static void client_send(client_t *c, const char *data, size_t len, int close_after)
{
    if (c->phase == PH_CLOSED)
        return;
    write_req_t *w = malloc(sizeof(*w) + len);
    if (w == NULL) {
        client_close(c);
        return;
    }
    memcpy(w->data, data, len);
    w->client = c;
    w->close_after = close_after;
    w->is_flood = 0;
    uv_buf_t b = uv_buf_init(w->data, (unsigned)len);
    if (uv_write(&w->req, (uv_stream_t *)&c->sock, &b, 1, client_on_write) != 0) {
        free(w);
        client_close(c);
    }
}

static void client_sendf(client_t *c, const char *fmt, ...)
{
    char out[2048];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(out, sizeof(out), fmt, ap);
    va_end(ap);
    if (n > 0 && (size_t)n < sizeof(out))
        client_send(c, out, (size_t)n, 0);
}

/* ---- flood mode ------------------------------------------------------------- */

/* Queues flood bytes (no copy: they outlive every client) while libuv's
 * write queue is short; each completed write calls back here. */
static void flood_pump(client_t *c)
{
    server_t *srv = c->srv;
    while (c->phase == PH_RUNNING && c->flood_off < srv->flood_len &&
           uv_stream_get_write_queue_size((uv_stream_t *)&c->sock) < FLOOD_QUEUE_MAX) {
        size_t n = srv->flood_len - c->flood_off;
        if (n > FLOOD_CHUNK)
            n = FLOOD_CHUNK;
        write_req_t *w = malloc(sizeof(*w));
        if (w == NULL) {
            client_close(c);
            return;
        }
        w->client = c;
        w->close_after = 0;
        w->is_flood = 1;
        uv_buf_t b = uv_buf_init(srv->flood + c->flood_off, (unsigned)n);
        if (uv_write(&w->req, (uv_stream_t *)&c->sock, &b, 1, client_on_write) != 0) {
            free(w);
            client_close(c);
            return;
        }
        c->flood_writes++;
        c->flood_off += n;
    }
    if (c->flood_off == srv->flood_len && c->flood_writes == 0 && c->started_ns) {
        double s = (double)(uv_hrtime() - c->started_ns) / 1e9;
        fprintf(stderr, "floodserver: client %u: wrote %u messages (%.1f MB) in %.3f s\n", c->id,
                srv->messages, (double)srv->flood_len / 1e6, s);
        c->started_ns = 0;
    }
}

/* ---- sink mode / running phase --------------------------------------------- */

static void client_on_stream_close(client_t *c)
{
    /* In flood mode with bytes still queued the close tag would wait behind
     * them: just drop the connection. */
    if (c->srv->mode != MODE_SINK && c->flood_off < c->srv->flood_len)
        client_close(c);
    else
        client_send(c, "</stream:stream>", 16, 1);
}

static int tag_has_last_id(const char *tag, size_t len)
{
    return memmem(tag, len, "id='last'", 9) != NULL || memmem(tag, len, "id=\"last\"", 9) != NULL;
}

/* Scans the client's bytes after login. Returns how many bytes at the end
 * begin a tag that cannot be judged yet (to be scanned again with the next
 * read). */
static size_t client_scan(client_t *c, const char *data, size_t len)
{
    const char *p = data, *end = data + len;
    while (c->phase == PH_RUNNING && (p = memchr(p, '<', (size_t)(end - p))) != NULL) {
        size_t left = (size_t)(end - p);
        if (left < 16) /* strlen("</stream:stream>") */
            return left;
        if (memcmp(p, "<message", 8) == 0 && (p[8] == ' ' || p[8] == '>' || p[8] == '/')) {
            const char *gt = memchr(p, '>', left);
            if (gt == NULL)
                return left <= CARRY_MAX ? left : 0;
            c->msgs++;
            if (c->srv->mode == MODE_SINK && tag_has_last_id(p, (size_t)(gt - p))) {
                fprintf(stderr, "floodserver: client %u: received %lu messages\n", c->id, c->msgs);
                client_send(c, "<message id='done'/>", 20, 0);
            }
            p = gt + 1;
            continue;
        }
        if (memcmp(p, "</stream:stream>", 16) == 0) {
            client_on_stream_close(c);
            return 0;
        }
        p++;
    }
    return 0;
}

/* Scans `data` preceded by the carried bytes, which sit right before
 * rbuf + CARRY_MAX; `data` may be that spot (a read) or elsewhere. */
static void client_feed_running(client_t *c, const char *data, size_t len)
{
    char *region = c->rbuf + CARRY_MAX - c->carry_len;
    if (data != c->rbuf + CARRY_MAX) {
        /* Not from a read: scan the carry and the data as one region by
         * feeding the data through the read area in pieces. */
        while (len > 0 && c->phase == PH_RUNNING) {
            size_t n = len < READ_SIZE ? len : READ_SIZE;
            memcpy(c->rbuf + CARRY_MAX, data, n);
            client_feed_running(c, c->rbuf + CARRY_MAX, n);
            data += n;
            len -= n;
        }
        return;
    }
    size_t total = c->carry_len + len;
    size_t keep = client_scan(c, region, total);
    memmove(c->rbuf + CARRY_MAX - keep, region + total - keep, keep);
    c->carry_len = keep;
}

/* ---- handshake -------------------------------------------------------------- */

/* Copies attribute `name` (e.g. " to=") of the tag into out, without
 * characters that would need escaping. */
static void tag_attr(const char *tag, size_t len, const char *name, char *out, size_t outsz)
{
    out[0] = '\0';
    size_t nlen = strlen(name);
    const char *a = memmem(tag, len, name, nlen);
    if (a == NULL || a + nlen >= tag + len)
        return;
    char quote = a[nlen];
    const char *v = a + nlen + 1, *end = tag + len;
    size_t o = 0;
    for (; v < end && *v != quote && o + 1 < outsz; v++)
        if (!strchr("'\"<>&", *v))
            out[o++] = *v;
    out[o] = '\0';
}

static void client_on_stream_open(client_t *c, const char *tag, size_t len)
{
    tag_attr(tag, len, " to=", c->domain, sizeof(c->domain));
    if (c->domain[0] == '\0')
        snprintf(c->domain, sizeof(c->domain), "localhost");
    client_sendf(c,
                 "<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
                 "xmlns:stream='http://etherx.jabber.org/streams' id='flood-%u-%d' from='%s' "
                 "version='1.0' xml:lang='en'>%s",
                 c->id, c->authed, c->domain, c->authed ? features_bind : features_sasl);
}

static void client_on_iq(client_t *c, const char *elem, size_t len)
{
    char id[256], type[32], resource[256];
    const char *gt = memchr(elem, '>', len);
    size_t tag_len = (size_t)(gt - elem);
    tag_attr(elem, tag_len, " id=", id, sizeof(id));
    tag_attr(elem, tag_len, " type=", type, sizeof(type));
    if (strcmp(type, "get") != 0 && strcmp(type, "set") != 0)
        return; /* results and errors need no answer */
    if (memmem(elem, len, "urn:ietf:params:xml:ns:xmpp-bind", 32) == NULL) {
        client_sendf(c, "<iq type='result' id='%s'/>", id);
        return;
    }
    resource[0] = '\0';
    const char *r = memmem(elem, len, "<resource>", 10);
    if (r != NULL) {
        const char *rend = memmem(r, len - (size_t)(r - elem), "</resource>", 11);
        size_t n = rend ? (size_t)(rend - r - 10) : 0;
        if (n > 0 && n < sizeof(resource)) {
            memcpy(resource, r + 10, n);
            resource[n] = '\0';
        }
    }
    if (resource[0] == '\0')
        snprintf(resource, sizeof(resource), "flood-%u", c->id);
    client_sendf(c,
                 "<iq type='result' id='%s'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
                 "<jid>bench@%s/%s</jid></bind></iq>",
                 id, c->domain, resource);
}

static void client_start_running(client_t *c)
{
    c->phase = PH_RUNNING;
    if (c->srv->mode != MODE_SINK) {
        c->started_ns = uv_hrtime();
        flood_pump(c);
    }
}

static void client_on_element(client_t *c, const char *name, size_t name_len, const char *elem,
                              size_t len)
{
    if (name_len == 4 && memcmp(name, "auth", 4) == 0) {
        c->authed = 1; /* any credentials will do */
        client_sendf(c, "<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>");
    } else if (name_len == 2 && memcmp(name, "iq", 2) == 0) {
        client_on_iq(c, elem, len);
    } else if (name_len == 8 && memcmp(name, "presence", 8) == 0 && c->authed) {
        client_start_running(c);
    }
}

/* Finds the next complete top-level element at acc[pos]; returns its length
 * (0: need more bytes). The handshake's elements never nest one of their
 * own name, so the first matching end tag closes them. */
static size_t next_element(const char *p, size_t avail, size_t *name_len, int *is_stream_open)
{
    const char *gt = memchr(p, '>', avail);
    *is_stream_open = 0;
    if (gt == NULL)
        return 0;
    size_t n = 1;
    while (p + n < gt && !isspace((unsigned char)p[n]) && p[n] != '/' && p[n] != '>')
        n++;
    *name_len = n - 1;
    if (n - 1 == 13 && memcmp(p + 1, "stream:stream", 13) == 0) {
        *is_stream_open = 1;
        return (size_t)(gt + 1 - p);
    }
    if (gt[-1] == '/')
        return (size_t)(gt + 1 - p);
    char end_tag[64];
    if (n - 1 + 3 >= sizeof(end_tag))
        return 0;
    int elen = snprintf(end_tag, sizeof(end_tag), "</%.*s>", (int)(n - 1), p + 1);
    const char *close = memmem(gt, avail - (size_t)(gt - p), end_tag, (size_t)elen);
    return close ? (size_t)(close + elen - p) : 0;
}

static void client_handshake(client_t *c)
{
    size_t pos = 0;
    while (c->phase == PH_HANDSHAKE) {
        while (pos < c->acc_len && isspace((unsigned char)c->acc[pos]))
            pos++;
        if (pos >= c->acc_len)
            break;
        const char *p = c->acc + pos;
        size_t avail = c->acc_len - pos;
        if (p[0] != '<') {
            fprintf(stderr, "floodserver: client %u: unexpected text, closing\n", c->id);
            client_close(c);
            return;
        }
        if (avail < 2)
            break;
        if (p[1] == '?') {
            const char *q = memmem(p, avail, "?>", 2);
            if (q == NULL)
                break;
            pos += (size_t)(q + 2 - p);
            continue;
        }
        if (avail >= 16 && memcmp(p, "</stream:stream>", 16) == 0) {
            client_send(c, "</stream:stream>", 16, 1);
            return;
        }
        size_t name_len;
        int is_stream_open;
        size_t len = next_element(p, avail, &name_len, &is_stream_open);
        if (len == 0)
            break;
        if (is_stream_open)
            client_on_stream_open(c, p, len);
        else
            client_on_element(c, p + 1, name_len, p, len);
        pos += len;
    }
    if (c->phase == PH_RUNNING && pos < c->acc_len)
        client_feed_running(c, c->acc + pos, c->acc_len - pos);
    if (c->phase == PH_CLOSED)
        return;
    memmove(c->acc, c->acc + pos, c->acc_len - pos);
    c->acc_len -= pos;
    if (c->phase == PH_RUNNING) {
        free(c->acc); /* not needed any more */
        c->acc = NULL;
        c->acc_len = c->acc_cap = 0;
    }
}

static void client_on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    client_t *c = h->data;
    (void)suggested;
    *buf = uv_buf_init(c->rbuf + CARRY_MAX, READ_SIZE);
}

static int acc_append(client_t *c, const char *data, size_t len)
{
    if (c->acc_len + len > 1024 * 1024)
        return -1; /* a handshake never needs this much */
    if (c->acc_len + len > c->acc_cap) {
        size_t cap = (c->acc_len + len) * 2;
        char *bigger = realloc(c->acc, cap);
        if (bigger == NULL)
            return -1;
        c->acc = bigger;
        c->acc_cap = cap;
    }
    memcpy(c->acc + c->acc_len, data, len);
    c->acc_len += len;
    return 0;
}

static void client_on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    client_t *c = s->data;
    if (nread < 0) {
        client_close(c);
        return;
    }
    if (nread == 0 || c->phase == PH_CLOSED)
        return;
    if (c->phase == PH_RUNNING) {
        client_feed_running(c, buf->base, (size_t)nread);
        return;
    }
    if (acc_append(c, buf->base, (size_t)nread) != 0) {
        client_close(c);
        return;
    }
    client_handshake(c);
}

/* SIGINT/SIGTERM: close every handle so the loop ends and clients are
 * freed (a clean exit, which also lets LeakSanitizer check). */
static void server_close_handle(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (uv_is_closing(h))
        return;
    if (h->type == UV_TCP && h->data != NULL && h->data != arg)
        client_close(h->data);
    else
        uv_close(h, NULL);
}

static void server_on_signal(uv_signal_t *sig, int signum)
{
    (void)signum;
    server_t *srv = sig->data;
    uv_walk(srv->loop, server_close_handle, srv);
}

static void server_on_connection(uv_stream_t *listener, int status)
{
    server_t *srv = listener->data;
    if (status < 0)
        return;
    client_t *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return;
    c->srv = srv;
    c->id = ++srv->next_client_id;
    uv_tcp_init(srv->loop, &c->sock);
    c->sock.data = c;
    if (uv_accept(listener, (uv_stream_t *)&c->sock) != 0) {
        client_close(c);
        return;
    }
    uv_tcp_nodelay(&c->sock, 1);
    uv_read_start((uv_stream_t *)&c->sock, client_on_alloc, client_on_read);
    if (srv->mode == MODE_RAW) {
        client_send(c, stream_head, strlen(stream_head), 0);
        client_start_running(c);
    }
}

/* ---- bare libxml2 parse ----------------------------------------------------- */

static unsigned bare_parse_once(const char *data, size_t len)
{
    return bare_libxml2_parse(data, len, BARE_CHUNK);
}

static double clock_seconds(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int bare_parse(const server_t *srv)
{
    size_t head_len = strlen(stream_head), len = head_len + srv->flood_len;
    char *data = malloc(len);
    if (data == NULL)
        return 1;
    memcpy(data, stream_head, head_len);
    memcpy(data + head_len, srv->flood, srv->flood_len);
    xmlInitParser();
    double best = 1e30, best_cpu = 1e30;
    for (int run = 0; run < 3; run++) {
        double t0 = clock_seconds(CLOCK_MONOTONIC);
        double c0 = clock_seconds(CLOCK_PROCESS_CPUTIME_ID);
        unsigned n = bare_parse_once(data, len);
        double t = clock_seconds(CLOCK_MONOTONIC) - t0;
        double c = clock_seconds(CLOCK_PROCESS_CPUTIME_ID) - c0;
        if (n != srv->messages) {
            fprintf(stderr, "floodserver: bare parse saw %u stanzas, expected %u\n", n,
                    srv->messages);
            free(data);
            return 1;
        }
        if (t < best)
            best = t;
        if (c < best_cpu)
            best_cpu = c;
    }
    free(data);
    printf("RESULT bare_msgs_per_s=%.0f bare_mb_s=%.1f bare_cpu_msgs_per_s=%.0f\n",
           srv->messages / best, (double)len / 1e6 / best, srv->messages / best_cpu);
    return 0;
}

/* ---- main ------------------------------------------------------------------- */

static void usage(const char *prog)
{
    fprintf(stderr,
            "usage: %s [--port P] [--messages N] [--mode flood|raw|sink] [--dump FILE]\n"
            "       %s --bare-parse [--messages N]\n",
            prog, prog);
    exit(2);
}

static int parse_mode(const char *prog, const char *mode)
{
    if (strcmp(mode, "flood") == 0)
        return MODE_FLOOD;
    if (strcmp(mode, "raw") == 0)
        return MODE_RAW;
    if (strcmp(mode, "sink") != 0)
        usage(prog);
    return MODE_SINK;
}

int main(int argc, char **argv)
{
    server_t srv;
    memset(&srv, 0, sizeof(srv));
    srv.messages = 1000000;
    int port = 0, bare = 0;
    const char *dump = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--port") == 0 && i + 1 < argc)
            port = atoi(argv[++i]);
        else if (strcmp(argv[i], "--messages") == 0 && i + 1 < argc)
            srv.messages = (unsigned)strtoul(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--mode") == 0 && i + 1 < argc)
            srv.mode = parse_mode(argv[0], argv[++i]);
        else if (strcmp(argv[i], "--dump") == 0 && i + 1 < argc)
            dump = argv[++i];
        else if (strcmp(argv[i], "--bare-parse") == 0)
            bare = 1;
        else
            usage(argv[0]);
    }
    if (srv.messages == 0 || port < 0 || port > 65535)
        usage(argv[0]);
    if (srv.mode != MODE_SINK || bare || dump) {
        srv.flood = make_messages(srv.messages, &srv.flood_len);
        if (srv.flood == NULL) {
            fprintf(stderr, "floodserver: out of memory\n");
            return 1;
        }
    }
    if (dump) {
        FILE *f = fopen(dump, "wb");
        if (f == NULL || fwrite(srv.flood, 1, srv.flood_len, f) != srv.flood_len ||
            fclose(f) != 0) {
            perror(dump);
            return 1;
        }
    }
    if (bare) {
        int rc = bare_parse(&srv);
        free(srv.flood);
        return rc;
    }

    signal(SIGPIPE, SIG_IGN);
    srv.loop = uv_default_loop();
    struct sockaddr_in addr;
    uv_ip4_addr("127.0.0.1", port, &addr);
    uv_tcp_init(srv.loop, &srv.listener);
    srv.listener.data = &srv;
    int rc = uv_tcp_bind(&srv.listener, (const struct sockaddr *)&addr, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&srv.listener, 16, server_on_connection);
    if (rc != 0) {
        fprintf(stderr, "floodserver: 127.0.0.1:%d: %s\n", port, uv_strerror(rc));
        return 1;
    }
    struct sockaddr_storage bound;
    int namelen = sizeof(bound);
    uv_tcp_getsockname(&srv.listener, (struct sockaddr *)&bound, &namelen);
    printf("PORT %d\n", ntohs(((struct sockaddr_in *)&bound)->sin_port));
    fflush(stdout);
    uv_signal_t sigint, sigterm;
    uv_signal_init(srv.loop, &sigint);
    uv_signal_init(srv.loop, &sigterm);
    sigint.data = sigterm.data = &srv;
    uv_signal_start(&sigint, server_on_signal, SIGINT);
    uv_signal_start(&sigterm, server_on_signal, SIGTERM);
    uv_run(srv.loop, UV_RUN_DEFAULT);
    uv_loop_close(srv.loop);
    free(srv.flood);
    return 0;
}
