/*
 * flood_bare: the receive ceiling over a socket. Connects to
 * bench/floodserver --mode raw (no XMPP handshake: the server writes the
 * stream header and its flood at once), reads with libuv into one 64 KiB
 * buffer as uvxmpp does, feeds every read to the bare libxml2 SAX2 parser
 * of bench/bare.c (no-op callbacks), counts depth-1 elements until
 * MESSAGES have ended, prints
 *
 *   RESULT messages=N wall_s=S cpu_s=C msgs_per_s=R
 *
 * timed from the connection to the last message (cpu: getrusage of the
 * process over the same window), and closes.
 *
 *   flood_bare PORT MESSAGES
 *
 * flood_uvx / flood_bare is the share of the transport-and-parse ceiling
 * uvxmpp keeps while it also builds and dispatches every stanza; the bare
 * in-memory parse (floodserver --bare-parse) has no socket, no kernel copy
 * and no server sharing the machine.
 */
#include <stdio.h>
#include <stdlib.h>
#include <uv.h>

#include "bare.h"
#include "benchutil.h"

#define READ_SIZE (64 * 1024)

typedef struct flood_bare {
    uv_tcp_t sock;
    uv_connect_t connect;
    bare_parser_t *parser;
    unsigned messages;
    bench_clock_t clock;
    int exit_code;
    char buf[READ_SIZE];
} flood_bare_t;

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    flood_bare_t *f = h->data;
    (void)suggested;
    *buf = uv_buf_init(f->buf, sizeof(f->buf));
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    flood_bare_t *f = s->data;
    if (nread < 0) {
        fprintf(stderr, "flood_bare: connection ended after %u messages\n",
                bare_parser_stanzas(f->parser));
        uv_close((uv_handle_t *)s, NULL);
        return;
    }
    if (bare_parser_feed(f->parser, buf->base, (size_t)nread) != 0) {
        fprintf(stderr, "flood_bare: libxml2 reported an error\n");
        uv_close((uv_handle_t *)s, NULL);
        return;
    }
    if (bare_parser_stanzas(f->parser) >= f->messages) {
        bench_report(&f->clock, f->messages);
        f->exit_code = 0;
        uv_close((uv_handle_t *)s, NULL);
    }
}

static void on_connect(uv_connect_t *req, int status)
{
    flood_bare_t *f = req->data;
    if (status < 0) {
        fprintf(stderr, "flood_bare: connect: %s\n", uv_strerror(status));
        uv_close((uv_handle_t *)&f->sock, NULL);
        return;
    }
    bench_clock_start(&f->clock);
    uv_read_start((uv_stream_t *)&f->sock, on_alloc, on_read);
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: %s PORT MESSAGES\n", argv[0]);
        return 2;
    }
    static flood_bare_t f; /* the read buffer is big for a stack */
    f.messages = (unsigned)strtoul(argv[2], NULL, 10);
    f.exit_code = 1;
    f.parser = bare_parser_new();
    if (f.messages == 0 || f.parser == NULL)
        return 2;
    uv_loop_t *loop = uv_default_loop();
    struct sockaddr_in addr;
    uv_ip4_addr("127.0.0.1", atoi(argv[1]), &addr);
    uv_tcp_init(loop, &f.sock);
    f.sock.data = &f;
    f.connect.data = &f;
    int rc = uv_tcp_connect(&f.connect, &f.sock, (const struct sockaddr *)&addr, on_connect);
    if (rc != 0) {
        fprintf(stderr, "flood_bare: connect: %s\n", uv_strerror(rc));
        return 1;
    }
    uv_run(loop, UV_RUN_DEFAULT);
    bare_parser_free(f.parser);
    uv_loop_close(loop);
    return f.exit_code;
}
