#include "fakews.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <mbedtls/base64.h>
#include <mbedtls/sha1.h>

#define FAKEWS_DEFAULT_RESPONSE                                                                    \
    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"            \
    "Sec-WebSocket-Accept: %s\r\nSec-WebSocket-Protocol: xmpp\r\n\r\n"

typedef struct fakews_buf {
    char *data;
    size_t len;
} fakews_buf_t;

struct fakews {
    uv_tcp_t listener;
    uv_tcp_t *client;
    uv_timer_t split_timer; /* paces split writes */
    fakews_options_t opts;
    const fakews_step_t *steps;
    int step;
    int upgraded;
    fakews_buf_t request; /* the HTTP request as read */
    fakews_buf_t in;      /* frame bytes not parsed yet */
    fakews_buf_t text;    /* the client's messages */
    size_t match_from;
    fakews_buf_t pending; /* split mode: bytes still to write */
    size_t pending_off;
    int end_after_pending; /* FAKEWS_DROP once `pending` is out */
    int sent_close, connections, pings, pongs, close_code, bad_frames, client_gone;
    int stopping;
    int open_handles;
};

static void fakews_append(fakews_buf_t *b, const char *data, size_t len)
{
    b->data = realloc(b->data, b->len + len + 1);
    memcpy(b->data + b->len, data, len);
    b->len += len;
    b->data[b->len] = '\0';
}

static void fakews_consume(fakews_buf_t *b, size_t n)
{
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
    b->data[b->len] = '\0';
}

static void fakews_maybe_free(fakews_t *fw)
{
    if (fw->stopping && fw->open_handles == 0) {
        free(fw->request.data);
        free(fw->in.data);
        free(fw->text.data);
        free(fw->pending.data);
        free(fw);
    }
}

static void fakews_on_closed(uv_handle_t *h)
{
    fakews_t *fw = h->data;
    if (h != (uv_handle_t *)&fw->listener && h != (uv_handle_t *)&fw->split_timer)
        free(h);
    fw->open_handles--;
    fakews_maybe_free(fw);
}

static void fakews_drop_client(fakews_t *fw)
{
    if (fw->client == NULL)
        return;
    uv_close((uv_handle_t *)fw->client, fakews_on_closed);
    fw->client = NULL;
    fw->pending.len = fw->pending_off = 0;
    fw->end_after_pending = 0;
    uv_timer_stop(&fw->split_timer);
}

typedef struct fakews_write {
    uv_write_t req;
    char *data;
} fakews_write_t;

static void fakews_on_written(uv_write_t *req, int status)
{
    fakews_write_t *w = (fakews_write_t *)req;
    (void)status;
    free(w->data);
    free(w);
}

static void fakews_write_now(fakews_t *fw, const char *data, size_t len)
{
    if (fw->client == NULL || len == 0)
        return;
    fakews_write_t *w = malloc(sizeof(*w));
    w->data = malloc(len);
    memcpy(w->data, data, len);
    uv_buf_t b = uv_buf_init(w->data, (unsigned)len);
    if (uv_write(&w->req, (uv_stream_t *)fw->client, &b, 1, fakews_on_written) != 0) {
        free(w->data);
        free(w);
    }
}

/* One byte per timer tick, so that the client reads them one by one. */
static void fakews_on_split_tick(uv_timer_t *timer)
{
    fakews_t *fw = timer->data;
    if (fw->pending_off < fw->pending.len) {
        fakews_write_now(fw, fw->pending.data + fw->pending_off, 1);
        fw->pending_off++;
    }
    if (fw->pending_off >= fw->pending.len) {
        uv_timer_stop(timer);
        fw->pending.len = fw->pending_off = 0;
        if (fw->end_after_pending)
            fakews_drop_client(fw);
    }
}

static void fakews_write(fakews_t *fw, const char *data, size_t len)
{
    if (!fw->opts.split) {
        fakews_write_now(fw, data, len);
        return;
    }
    fakews_append(&fw->pending, data, len);
    if (!uv_is_active((uv_handle_t *)&fw->split_timer))
        uv_timer_start(&fw->split_timer, fakews_on_split_tick, 1, 1);
}

static void fakews_end(fakews_t *fw)
{
    if (fw->opts.split && fw->pending_off < fw->pending.len)
        fw->end_after_pending = 1;
    else
        fakews_drop_client(fw);
}

size_t fakews_frame(char *out, int fin, int opcode, int mask, const char *payload, size_t len)
{
    size_t n = 0;
    unsigned char *o = (unsigned char *)out;
    o[n++] = (unsigned char)((fin ? 0x80 : 0) | (opcode & 0x0f));
    unsigned char m = mask ? 0x80 : 0;
    if (len < 126) {
        o[n++] = (unsigned char)(m | len);
    } else if (len <= 0xffff) {
        o[n++] = m | 126;
        o[n++] = (unsigned char)(len >> 8);
        o[n++] = (unsigned char)len;
    } else {
        o[n++] = m | 127;
        for (int i = 7; i >= 0; i--)
            o[n++] = (unsigned char)((uint64_t)len >> (8 * i));
    }
    static const unsigned char key[4] = {0x12, 0x34, 0x56, 0x78};
    if (mask) {
        memcpy(o + n, key, 4);
        n += 4;
    }
    for (size_t i = 0; i < len; i++)
        o[n + i] = (unsigned char)payload[i] ^ (mask ? key[i % 4] : 0);
    return n + len;
}

static void fakews_send_frame(fakews_t *fw, int opcode, const char *payload, size_t len)
{
    char *frame = malloc(len + 14);
    size_t n = fakews_frame(frame, 1, opcode, 0, payload, len);
    fakews_write(fw, frame, n);
    free(frame);
}

static void fakews_send_close(fakews_t *fw, int code)
{
    char payload[2] = {(char)(code >> 8), (char)(code & 0xff)};
    fw->sent_close = 1;
    fakews_send_frame(fw, 0x8, payload, code ? 2 : 0);
}

static int fakews_step_is_end(const fakews_step_t *st)
{
    return st->expect == NULL && st->text == NULL && st->raw == NULL && st->end == FAKEWS_KEEP;
}

/* Runs every step whose expectation is met. */
static void fakews_advance(fakews_t *fw)
{
    while (fw->client && fw->upgraded && !fakews_step_is_end(&fw->steps[fw->step])) {
        const fakews_step_t *st = &fw->steps[fw->step];
        if (st->expect) {
            const char *from = fw->text.data ? fw->text.data + fw->match_from : "";
            char *hit = strstr(from, st->expect);
            if (hit == NULL)
                return;
            fw->match_from = (size_t)(hit - fw->text.data) + strlen(st->expect);
        }
        fw->step++;
        if (st->text)
            fakews_send_frame(fw, 0x1, st->text, strlen(st->text));
        if (st->raw)
            fakews_write(fw, st->raw, st->raw_len);
        if (st->end == FAKEWS_CLOSE)
            fakews_send_close(fw, 1000);
        else if (st->end == FAKEWS_DROP)
            fakews_end(fw);
    }
}

/* One client frame: masked, as RFC 6455 §5.1 wants. */
static void fakews_on_frame(fakews_t *fw, int opcode, const char *payload, size_t len)
{
    switch (opcode) {
    case 0x0:
    case 0x1:
        fakews_append(&fw->text, payload, len);
        fakews_append(&fw->text, "\n", 1);
        break;
    case 0x8:
        fw->close_code =
            len >= 2 ? ((unsigned char)payload[0] << 8) | (unsigned char)payload[1] : 1005;
        if (!fw->sent_close)
            fakews_send_close(fw, len >= 2 ? fw->close_code : 0);
        fakews_end(fw); /* the server closes TCP first (RFC 6455 §7.1.1) */
        break;
    case 0x9:
        fw->pings++;
        if (!fw->opts.no_pong)
            fakews_send_frame(fw, 0xa, payload, len);
        break;
    case 0xa:
        fw->pongs++;
        break;
    default:
        fw->bad_frames++;
        break;
    }
}

/* Parses whole frames out of fw->in. */
static void fakews_parse_frames(fakews_t *fw)
{
    while (fw->client && fw->in.len >= 2) {
        const unsigned char *p = (const unsigned char *)fw->in.data;
        int opcode = p[0] & 0x0f;
        int masked = p[1] & 0x80;
        uint64_t len = p[1] & 0x7f;
        size_t hdr = 2;
        if (len == 126) {
            if (fw->in.len < 4)
                return;
            len = ((uint64_t)p[2] << 8) | p[3];
            hdr = 4;
        } else if (len == 127) {
            if (fw->in.len < 10)
                return;
            len = 0;
            for (int i = 0; i < 8; i++)
                len = (len << 8) | p[2 + i];
            hdr = 10;
        }
        if (!masked || len > 16 * 1024 * 1024) {
            fw->bad_frames++;
            fakews_drop_client(fw);
            return;
        }
        if (fw->in.len < hdr + 4 + len)
            return;
        const unsigned char *key = p + hdr;
        char *payload = malloc(len + 1);
        for (size_t i = 0; i < len; i++)
            payload[i] = (char)(p[hdr + 4 + i] ^ key[i % 4]);
        fakews_consume(&fw->in, hdr + 4 + (size_t)len);
        fakews_on_frame(fw, opcode, payload, (size_t)len);
        free(payload);
    }
}

static void fakews_accept_value(const char *key, size_t key_len, char *out, size_t cap)
{
    static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    unsigned char digest[20];
    size_t olen = 0;
    mbedtls_sha1_context sha;
    mbedtls_sha1_init(&sha);
    mbedtls_sha1_starts_ret(&sha);
    mbedtls_sha1_update_ret(&sha, (const unsigned char *)key, key_len);
    mbedtls_sha1_update_ret(&sha, (const unsigned char *)guid, strlen(guid));
    mbedtls_sha1_finish_ret(&sha, digest);
    mbedtls_sha1_free(&sha);
    mbedtls_base64_encode((unsigned char *)out, cap, &olen, digest, sizeof(digest));
}

/* The request is complete: answer it as the options say. */
static void fakews_answer_upgrade(fakews_t *fw)
{
    char accept[64] = "";
    const char *req = fw->request.data;
    for (const char *line = req; line && *line; line = strstr(line, "\r\n")) {
        line += line == req ? 0 : 2;
        if (strncasecmp(line, "Sec-WebSocket-Key:", 18) == 0) {
            const char *v = line + 18 + strspn(line + 18, " \t");
            fakews_accept_value(v, strcspn(v, " \t\r\n"), accept, sizeof(accept));
            break;
        }
    }
    const char *fmt = fw->opts.response ? fw->opts.response : FAKEWS_DEFAULT_RESPONSE;
    char answer[2048];
    int n = snprintf(answer, sizeof(answer), fmt, accept);
    fakews_write(fw, answer, (size_t)n);
    if (strncmp(answer, "HTTP/1.1 101", 12) != 0) {
        fakews_end(fw);
        return;
    }
    fw->upgraded = 1;
    fakews_advance(fw);
}

static void fakews_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)h;
    buf->base = malloc(suggested);
    buf->len = suggested;
}

static void fakews_on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    fakews_t *fw = s->data;
    if (n < 0) {
        fw->client_gone = 1;
        fakews_drop_client(fw);
    } else if (n > 0 && !fw->upgraded) {
        fakews_append(&fw->request, buf->base, (size_t)n);
        char *end = strstr(fw->request.data, "\r\n\r\n");
        if (end) {
            size_t head = (size_t)(end + 4 - fw->request.data);
            fakews_append(&fw->in, fw->request.data + head, fw->request.len - head);
            fw->request.len = head;
            fw->request.data[head] = '\0';
            fakews_answer_upgrade(fw);
            fakews_parse_frames(fw);
            fakews_advance(fw);
        }
    } else if (n > 0) {
        fakews_append(&fw->in, buf->base, (size_t)n);
        fakews_parse_frames(fw);
        fakews_advance(fw);
    }
    free(buf->base);
}

static void fakews_on_connection(uv_stream_t *server, int status)
{
    fakews_t *fw = server->data;
    if (status != 0)
        return;
    uv_tcp_t *c = malloc(sizeof(*c));
    uv_tcp_init(server->loop, c);
    c->data = fw;
    fw->open_handles++;
    if (uv_accept(server, (uv_stream_t *)c) != 0 || fw->client != NULL) {
        uv_close((uv_handle_t *)c, fakews_on_closed); /* one client at a time */
        return;
    }
    fw->client = c;
    fw->connections++;
    fw->upgraded = fw->sent_close = fw->client_gone = 0;
    fw->step = 0;
    fw->match_from = 0;
    fw->request.len = fw->in.len = fw->text.len = 0;
    if (fw->text.data)
        fw->text.data[0] = '\0';
    if (fw->request.data)
        fw->request.data[0] = '\0';
    uv_tcp_nodelay(c, 1);
    uv_read_start((uv_stream_t *)c, fakews_alloc, fakews_on_read);
}

fakews_t *fakews_start(uv_loop_t *loop, const fakews_step_t *steps, const fakews_options_t *opts,
                       int *port)
{
    fakews_t *fw = calloc(1, sizeof(*fw));
    struct sockaddr_in addr;
    struct sockaddr_storage bound;
    int namelen = sizeof(bound);
    fw->steps = steps;
    if (opts)
        fw->opts = *opts;
    uv_tcp_init(loop, &fw->listener);
    fw->listener.data = fw;
    uv_timer_init(loop, &fw->split_timer);
    fw->split_timer.data = fw;
    fw->open_handles = 2;
    uv_ip4_addr("127.0.0.1", 0, &addr);
    if (uv_tcp_bind(&fw->listener, (const struct sockaddr *)&addr, 0) != 0 ||
        uv_listen((uv_stream_t *)&fw->listener, 8, fakews_on_connection) != 0 ||
        uv_tcp_getsockname(&fw->listener, (struct sockaddr *)&bound, &namelen) != 0) {
        fakews_stop(fw);
        return NULL;
    }
    *port = ntohs(((struct sockaddr_in *)&bound)->sin_port);
    return fw;
}

const char *fakews_request(const fakews_t *fw)
{
    return fw->request.data ? fw->request.data : "";
}

const char *fakews_received(const fakews_t *fw)
{
    return fw->text.data ? fw->text.data : "";
}

int fakews_steps_done(const fakews_t *fw)
{
    return fw->step;
}

int fakews_connections(const fakews_t *fw)
{
    return fw->connections;
}

int fakews_pings(const fakews_t *fw)
{
    return fw->pings;
}

int fakews_pongs(const fakews_t *fw)
{
    return fw->pongs;
}

int fakews_close_code(const fakews_t *fw)
{
    return fw->close_code;
}

int fakews_bad_frames(const fakews_t *fw)
{
    return fw->bad_frames;
}

int fakews_client_gone(const fakews_t *fw)
{
    return fw->client_gone;
}

void fakews_stop(fakews_t *fw)
{
    if (fw == NULL || fw->stopping)
        return;
    fw->stopping = 1;
    fakews_drop_client(fw);
    uv_close((uv_handle_t *)&fw->split_timer, fakews_on_closed);
    uv_close((uv_handle_t *)&fw->listener, fakews_on_closed);
}
