/*
 * idleserver: a minimal scripted XMPP server for scale benches. It walks
 * each client through stream open, SASL (any <auth/> succeeds), restart and
 * bind, then keeps the session open and silent until the client closes its
 * stream. Built for many thousands of concurrent clients: a few hundred
 * bytes of state each.
 *
 *   idleserver [--port P]     prints "PORT <n>" once listening on 127.0.0.1
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <uv.h>

#define HEADER                                                                                     \
    "<?xml version='1.0'?><stream:stream xmlns='jabber:client' "                                   \
    "xmlns:stream='http://etherx.jabber.org/streams' id='idle' from='localhost' version='1.0'>"
#define FEATURES_AUTH                                                                              \
    "<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>"                       \
    "<mechanism>PLAIN</mechanism><mechanism>ANONYMOUS</mechanism></mechanisms></stream:features>"
#define FEATURES_BIND                                                                              \
    "<stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></stream:features>"
#define SUCCESS "<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>"

enum { ST_OPEN, ST_AUTH, ST_RESTART, ST_BIND, ST_IDLE };

typedef struct client {
    uv_tcp_t tcp;
    int state;
    unsigned long serial;
    size_t len;
    char buf[512]; /* the unmatched tail of what the client sent */
} client_t;

static unsigned long next_serial;
static char read_buf[65536];

static void on_closed(uv_handle_t *h)
{
    free(h);
}

static void on_written(uv_write_t *req, int status)
{
    (void)status;
    free(req);
}

/* Copies the data into the request allocation: one malloc per write. */
static void send_str(client_t *c, const char *s, size_t len)
{
    uv_write_t *req = malloc(sizeof(*req) + len);
    memcpy(req + 1, s, len);
    uv_buf_t b = uv_buf_init((char *)(req + 1), (unsigned)len);
    if (uv_write(req, (uv_stream_t *)&c->tcp, &b, 1, on_written) != 0)
        free(req);
}

static void send_bind_result(client_t *c, const char *iq)
{
    char id[64] = "bind";
    const char *p = strstr(iq, "id='");
    if (p) {
        p += 4;
        size_t n = strcspn(p, "'");
        if (n < sizeof(id)) {
            memcpy(id, p, n);
            id[n] = '\0';
        }
    }
    char out[256];
    int n = snprintf(out, sizeof(out),
                     "<iq type='result' id='%s'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
                     "<jid>idle%lu@localhost/r</jid></bind></iq>",
                     id, c->serial);
    send_str(c, out, (size_t)n);
}

/* Advances the script as far as the buffered bytes allow. */
static void step(client_t *c)
{
    for (;;) {
        char *hit;
        switch (c->state) {
        case ST_OPEN:
        case ST_RESTART:
            if ((hit = strstr(c->buf, "<stream:stream")) == NULL || strchr(hit, '>') == NULL)
                return;
            if (c->state == ST_OPEN)
                send_str(c, HEADER FEATURES_AUTH, sizeof(HEADER FEATURES_AUTH) - 1);
            else
                send_str(c, HEADER FEATURES_BIND, sizeof(HEADER FEATURES_BIND) - 1);
            c->state++;
            hit = strchr(hit, '>') + 1;
            break;
        case ST_AUTH: { /* <auth ...>data</auth> or <auth .../> */
            char *end, *gt;
            if ((hit = strstr(c->buf, "<auth")) == NULL || (gt = strchr(hit, '>')) == NULL)
                return;
            if (gt[-1] == '/')
                end = gt + 1;
            else if ((end = strstr(gt, "</auth>")) != NULL)
                end += 7;
            else
                return;
            send_str(c, SUCCESS, sizeof(SUCCESS) - 1);
            c->state = ST_RESTART;
            hit = end;
            break;
        }
        case ST_BIND:
            if ((hit = strstr(c->buf, "<iq")) == NULL || strstr(hit, "</iq>") == NULL)
                return;
            send_bind_result(c, hit);
            c->state = ST_IDLE;
            hit = strstr(hit, "</iq>") + 5;
            break;
        default:
            if ((hit = strstr(c->buf, "</stream:stream>")) == NULL) {
                /* keep only a tail that could start the close tag */
                if (c->len > 32) {
                    memmove(c->buf, c->buf + c->len - 32, 32);
                    c->len = 32;
                    c->buf[c->len] = '\0';
                }
                return;
            }
            send_str(c, "</stream:stream>", 16);
            uv_read_stop((uv_stream_t *)&c->tcp);
            uv_close((uv_handle_t *)&c->tcp, on_closed);
            return;
        }
        size_t used = (size_t)(hit - c->buf);
        memmove(c->buf, hit, c->len - used + 1);
        c->len -= used;
    }
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
    (void)h;
    (void)suggested;
    b->base = read_buf;
    b->len = sizeof(read_buf);
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    client_t *c = (client_t *)s;
    if (n < 0) {
        uv_close((uv_handle_t *)s, on_closed);
        return;
    }
    for (ssize_t off = 0; off < n;) {
        size_t room = sizeof(c->buf) - 1 - c->len;
        size_t take = (size_t)(n - off) < room ? (size_t)(n - off) : room;
        memcpy(c->buf + c->len, b->base + off, take);
        c->len += take;
        c->buf[c->len] = '\0';
        off += (ssize_t)take;
        step(c);
        if (c->len == sizeof(c->buf) - 1) { /* nothing matched in a full buffer */
            uv_close((uv_handle_t *)s, on_closed);
            return;
        }
    }
}

static void on_connection(uv_stream_t *server, int status)
{
    if (status != 0)
        return;
    client_t *c = calloc(1, sizeof(*c));
    uv_tcp_init(server->loop, &c->tcp);
    c->serial = ++next_serial;
    if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
        uv_close((uv_handle_t *)&c->tcp, on_closed);
        return;
    }
    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

int main(int argc, char **argv)
{
    int port = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--port") == 0 && i + 1 < argc) {
            port = atoi(argv[++i]);
        } else {
            fprintf(stderr, "usage: idleserver [--port P]\n");
            return 2;
        }
    }
    struct rlimit rl = {1048576, 1048576};
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0 && getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    uv_loop_t *loop = uv_default_loop();
    uv_tcp_t server;
    struct sockaddr_in addr;
    uv_tcp_init(loop, &server);
    uv_ip4_addr("127.0.0.1", port, &addr);
    int rc = uv_tcp_bind(&server, (const struct sockaddr *)&addr, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&server, 4096, on_connection);
    if (rc != 0) {
        fprintf(stderr, "idleserver: %s\n", uv_strerror(rc));
        return 1;
    }
    struct sockaddr_storage bound;
    int namelen = sizeof(bound);
    uv_tcp_getsockname(&server, (struct sockaddr *)&bound, &namelen);
    printf("PORT %d\n", ntohs(((struct sockaddr_in *)&bound)->sin_port));
    fflush(stdout);
    return uv_run(loop, UV_RUN_DEFAULT);
}
