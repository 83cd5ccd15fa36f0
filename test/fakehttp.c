#include "fakehttp.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FAKEHTTP_MAX_REQUESTS 256

typedef struct fh_conn fh_conn_t;

struct fakehttp {
    uv_tcp_t listener;
    const fakehttp_step_t *steps;
    int step;
    int nconns;
    fh_conn_t *conns;
    char *requests[FAKEHTTP_MAX_REQUESTS];
    int request_conn[FAKEHTTP_MAX_REQUESTS];
    int nrequests;
    int stopping;
    int open_handles;
};

struct fh_conn {
    uv_tcp_t tcp;
    fakehttp_t *fh;
    int id;
    char *in;
    size_t len;
    int closing;
    int handles; /* the tcp and the drip timer, until both are closed */
    /* a response written a byte at a time */
    uv_timer_t drip;
    char *drip_data;
    size_t drip_len, drip_off;
    int drip_close;
    int drip_whole; /* write the rest at once (a stray response) */
    fh_conn_t *next;
};

static void fh_maybe_free(fakehttp_t *fh)
{
    if (!fh->stopping || fh->open_handles > 0)
        return;
    for (int i = 0; i < fh->nrequests; i++)
        free(fh->requests[i]);
    free(fh);
}

static void fh_on_listener_closed(uv_handle_t *h)
{
    fakehttp_t *fh = h->data;
    fh->open_handles--;
    fh_maybe_free(fh);
}

static void fh_on_conn_handle_closed(uv_handle_t *h)
{
    fh_conn_t *c = h->data;
    fakehttp_t *fh = c->fh;
    fh->open_handles--;
    if (--c->handles > 0)
        return; /* the other handle's callback frees the connection */
    fh_conn_t **pp = &fh->conns;
    while (*pp && *pp != c)
        pp = &(*pp)->next;
    if (*pp)
        *pp = c->next;
    free(c->in);
    free(c->drip_data);
    free(c);
    fh_maybe_free(fh);
}

static void fh_close_conn(fh_conn_t *c)
{
    if (c->closing)
        return;
    c->closing = 1;
    uv_timer_stop(&c->drip);
    uv_close((uv_handle_t *)&c->drip, fh_on_conn_handle_closed);
    uv_close((uv_handle_t *)&c->tcp, fh_on_conn_handle_closed);
}

typedef struct fh_write {
    uv_write_t req;
    char *data;
    fh_conn_t *conn;
    int close_after;
} fh_write_t;

static void fh_on_written(uv_write_t *req, int status)
{
    fh_write_t *w = (fh_write_t *)req;
    (void)status;
    if (w->close_after)
        fh_close_conn(w->conn);
    free(w->data);
    free(w);
}

/* Writes `len` bytes (copied); closes the connection after them if asked. */
static void fh_write(fh_conn_t *c, const char *data, size_t len, int close_after)
{
    if (c->closing)
        return;
    fh_write_t *w = calloc(1, sizeof(*w));
    w->data = malloc(len ? len : 1);
    memcpy(w->data, data, len);
    w->conn = c;
    w->close_after = close_after;
    uv_buf_t b = uv_buf_init(w->data, (unsigned)len);
    if (uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, fh_on_written) != 0) {
        free(w->data);
        free(w);
        fh_close_conn(c);
    }
}

static void fh_on_drip(uv_timer_t *t)
{
    fh_conn_t *c = t->data;
    if (c->drip_off >= c->drip_len) {
        uv_timer_stop(t);
        if (c->drip_close)
            fh_close_conn(c);
        return;
    }
    size_t n = c->drip_whole ? c->drip_len - c->drip_off : 1;
    fh_write(c, c->drip_data + c->drip_off, n, 0);
    c->drip_off += n;
}

static const char fh_stray[] = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";

static void fh_append(char **out, size_t *len, const char *s, size_t n)
{
    *out = realloc(*out, *len + n + 1);
    memcpy(*out + *len, s, n);
    *len += n;
    (*out)[*len] = '\0';
}

/* The HTTP response a step describes. */
static char *fh_build_response(const fakehttp_step_t *st, size_t *len)
{
    char *out = NULL;
    char line[128];
    *len = 0;
    if (st->raw) {
        fh_append(&out, len, st->raw, strlen(st->raw));
        return out;
    }
    const char *body = st->body ? st->body : "";
    size_t blen = strlen(body);
    snprintf(line, sizeof(line), "HTTP/1.1 %d %s\r\nContent-Type: text/xml; charset=utf-8\r\n",
             st->status, st->status == 200 ? "OK" : "Whatever");
    fh_append(&out, len, line, strlen(line));
    if (st->flags & FAKEHTTP_CLOSE)
        fh_append(&out, len, "Connection: close\r\n", 19);
    if (st->flags & FAKEHTTP_CHUNKED) {
        fh_append(&out, len, "Transfer-Encoding: chunked\r\n\r\n", 30);
        for (size_t off = 0; off < blen; off += 7) {
            size_t n = blen - off < 7 ? blen - off : 7;
            snprintf(line, sizeof(line), "%zx\r\n", n);
            fh_append(&out, len, line, strlen(line));
            fh_append(&out, len, body + off, n);
            fh_append(&out, len, "\r\n", 2);
        }
        fh_append(&out, len, "0\r\n\r\n", 5);
    } else if (st->flags & FAKEHTTP_EOF_BODY) {
        fh_append(&out, len, "\r\n", 2);
        fh_append(&out, len, body, blen);
    } else {
        snprintf(line, sizeof(line), "Content-Length: %zu\r\n\r\n", blen);
        fh_append(&out, len, line, strlen(line));
        fh_append(&out, len, body, blen);
    }
    return out;
}

static void fh_answer(fh_conn_t *c, const fakehttp_step_t *st)
{
    int close_after = (st->flags & (FAKEHTTP_CLOSE | FAKEHTTP_EOF_BODY)) != 0;
    if (st->status == 0 && st->raw == NULL) {
        if (st->flags & FAKEHTTP_CLOSE)
            fh_close_conn(c); /* a reset instead of an answer */
        return;
    }
    size_t len;
    char *resp = fh_build_response(st, &len);
    if (st->flags & FAKEHTTP_SPLIT) {
        free(c->drip_data);
        c->drip_data = resp;
        c->drip_len = len;
        c->drip_off = 0;
        c->drip_close = close_after;
        c->drip_whole = 0;
        uv_timer_start(&c->drip, fh_on_drip, 1, 1);
        return;
    }
    fh_write(c, resp, len, close_after);
    free(resp);
    if ((st->flags & FAKEHTTP_STRAY) && !close_after) {
        free(c->drip_data);
        c->drip_data = strdup(fh_stray);
        c->drip_len = strlen(fh_stray);
        c->drip_off = 0;
        c->drip_close = 0;
        c->drip_whole = 1;
        uv_timer_start(&c->drip, fh_on_drip, 5, 1);
    }
}

static void fh_on_request(fh_conn_t *c, const char *req, size_t len)
{
    fakehttp_t *fh = c->fh;
    if (fh->nrequests < FAKEHTTP_MAX_REQUESTS) {
        fh->requests[fh->nrequests] = strndup(req, len);
        fh->request_conn[fh->nrequests] = c->id;
        fh->nrequests++;
    }
    const fakehttp_step_t *st = &fh->steps[fh->step];
    int end = st->expect == NULL && st->status == 0 && st->raw == NULL && st->flags == 0;
    if (end)
        return; /* out of script: hold */
    if (st->expect && strstr(fh->requests[fh->nrequests - 1], st->expect) == NULL)
        return; /* not this one: hold it */
    fh->step++;
    fh_answer(c, st);
}

/* The Content-Length of a request head, or 0. */
static size_t fh_content_length(const char *head, size_t len)
{
    for (size_t i = 0; i + 15 < len; i++) {
        if ((i == 0 || head[i - 1] == '\n') && strncasecmp(head + i, "Content-Length:", 15) == 0)
            return (size_t)strtoul(head + i + 15, NULL, 10);
    }
    return 0;
}

static void fh_parse(fh_conn_t *c)
{
    while (!c->closing) {
        char *end = c->in ? strstr(c->in, "\r\n\r\n") : NULL;
        if (end == NULL)
            return;
        size_t head = (size_t)(end - c->in) + 4;
        size_t total = head + fh_content_length(c->in, head);
        if (c->len < total)
            return;
        fh_on_request(c, c->in, total);
        memmove(c->in, c->in + total, c->len - total + 1);
        c->len -= total;
    }
}

static void fh_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)h;
    buf->base = malloc(suggested);
    buf->len = suggested;
}

static void fh_on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    fh_conn_t *c = s->data;
    if (n > 0) {
        fh_append(&c->in, &c->len, buf->base, (size_t)n);
        fh_parse(c);
    } else if (n < 0) {
        fh_close_conn(c);
    }
    free(buf->base);
}

static void fh_on_connection(uv_stream_t *server, int status)
{
    fakehttp_t *fh = server->data;
    if (status != 0)
        return;
    fh_conn_t *c = calloc(1, sizeof(*c));
    c->fh = fh;
    c->id = ++fh->nconns;
    uv_tcp_init(server->loop, &c->tcp);
    uv_timer_init(server->loop, &c->drip);
    c->tcp.data = c;
    c->drip.data = c;
    fh->open_handles += 2;
    c->handles = 2;
    c->next = fh->conns;
    fh->conns = c;
    if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
        fh_close_conn(c);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    uv_read_start((uv_stream_t *)&c->tcp, fh_alloc, fh_on_read);
}

fakehttp_t *fakehttp_start(uv_loop_t *loop, const fakehttp_step_t *steps, int *port)
{
    fakehttp_t *fh = calloc(1, sizeof(*fh));
    struct sockaddr_in addr;
    struct sockaddr_storage bound;
    int namelen = sizeof(bound);
    fh->steps = steps;
    uv_tcp_init(loop, &fh->listener);
    fh->listener.data = fh;
    fh->open_handles = 1;
    uv_ip4_addr("127.0.0.1", 0, &addr);
    if (uv_tcp_bind(&fh->listener, (const struct sockaddr *)&addr, 0) != 0 ||
        uv_listen((uv_stream_t *)&fh->listener, 16, fh_on_connection) != 0 ||
        uv_tcp_getsockname(&fh->listener, (struct sockaddr *)&bound, &namelen) != 0) {
        fakehttp_stop(fh);
        return NULL;
    }
    *port = ntohs(((struct sockaddr_in *)&bound)->sin_port);
    return fh;
}

void fakehttp_stop(fakehttp_t *fh)
{
    if (fh == NULL || fh->stopping)
        return;
    fh->stopping = 1;
    for (fh_conn_t *c = fh->conns; c; c = c->next)
        fh_close_conn(c);
    uv_close((uv_handle_t *)&fh->listener, fh_on_listener_closed);
}

int fakehttp_steps_done(const fakehttp_t *fh)
{
    return fh->step;
}

int fakehttp_connections(const fakehttp_t *fh)
{
    return fh->nconns;
}

int fakehttp_request_count(const fakehttp_t *fh)
{
    return fh->nrequests;
}

const int *fakehttp_request_counter(const fakehttp_t *fh)
{
    return &fh->nrequests;
}

const char *fakehttp_request(const fakehttp_t *fh, int i)
{
    return i >= 0 && i < fh->nrequests ? fh->requests[i] : NULL;
}

int fakehttp_request_conn(const fakehttp_t *fh, int i)
{
    return i >= 0 && i < fh->nrequests ? fh->request_conn[i] : 0;
}

unsigned long long fakehttp_request_rid(const fakehttp_t *fh, int i)
{
    const char *r = fakehttp_request(fh, i);
    const char *body = r ? strstr(r, "<body") : NULL;
    const char *rid = body ? strstr(body, " rid='") : NULL;
    return rid ? strtoull(rid + 6, NULL, 10) : 0;
}
