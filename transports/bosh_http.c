/*
 * BOSH's bytes: HTTP/1.1 requests and <body/> wrappers out, HTTP responses
 * in (llhttp). Sans-I/O; see bosh_http.h.
 */
#include "bosh_http.h"

#include <stdio.h>
#include <string.h>

#include <uv.h>

#include "uvxmpp.h"

/* ---- responses ---- */

static int reader_is_interim(const llhttp_t *p)
{
    return p->status_code >= 100 && p->status_code < 200 && p->status_code != 101;
}

static int reader_on_headers_complete(llhttp_t *p)
{
    bosh_http_reader_t *r = p->data;
    r->status = p->status_code;
    /* a body announced too big fails now, not after max_body bytes */
    if ((p->flags & F_CONTENT_LENGTH) && p->content_length > r->max_body) {
        r->too_big = 1;
        return -1;
    }
    return 0;
}

static int reader_on_body(llhttp_t *p, const char *at, size_t len)
{
    bosh_http_reader_t *r = p->data;
    if (r->body.len + len > r->max_body) {
        r->too_big = 1;
        return -1;
    }
    if (buf_append(&r->body, at, len) != 0) {
        r->out_of_memory = 1;
        return -1;
    }
    return 0;
}

static int reader_on_message_complete(llhttp_t *p)
{
    bosh_http_reader_t *r = p->data;
    if (reader_is_interim(p)) {
        /* 100 Continue and the like come before the real answer, which a
         * client must read on (RFC 9110 §15.2) */
        r->status = 0;
        buf_reset(&r->body);
        return 0;
    }
    r->complete = 1;
    r->keep_alive = llhttp_should_keep_alive(p);
    return HPE_PAUSED; /* one response at a time: stop right after it */
}

static int reader_on_message_begin(llhttp_t *p)
{
    bosh_http_reader_t *r = p->data;
    r->started = 1;
    return 0;
}

static const llhttp_settings_t reader_settings = {
    .on_message_begin = reader_on_message_begin,
    .on_headers_complete = reader_on_headers_complete,
    .on_body = reader_on_body,
    .on_message_complete = reader_on_message_complete,
};

void bosh_http_reader_init(bosh_http_reader_t *r, size_t max_body)
{
    buf_t keep = r->body;
    memset(r, 0, sizeof(*r));
    r->body = keep;
    buf_reset(&r->body);
    r->max_body = max_body;
    llhttp_init(&r->parser, HTTP_RESPONSE, &reader_settings);
    r->parser.data = r;
}

void bosh_http_reader_next(bosh_http_reader_t *r)
{
    bosh_http_reader_init(r, r->max_body);
}

void bosh_http_reader_free(bosh_http_reader_t *r)
{
    buf_free(&r->body);
}

int bosh_http_reader_feed(bosh_http_reader_t *r, const char *data, size_t len, size_t *used)
{
    *used = 0;
    if (r->complete)
        return 1;
    llhttp_errno_t e = llhttp_execute(&r->parser, data, len);
    if (e == HPE_OK) {
        *used = len;
        return 0;
    }
    if (e == HPE_PAUSED && r->complete) {
        const char *pos = llhttp_get_error_pos(&r->parser);
        *used = pos ? (size_t)(pos - data) : len;
        return 1;
    }
    if (r->too_big)
        return UVX_ETOOBIG;
    return r->out_of_memory ? UVX_ENOMEM : UVX_EPARSE;
}

int bosh_http_reader_eof(bosh_http_reader_t *r)
{
    if (r->complete)
        return 1;
    if (llhttp_finish(&r->parser) != HPE_OK && !r->complete)
        return UVX_EPARSE;
    return r->complete ? 1 : UVX_EPARSE;
}

int bosh_http_reader_started(const bosh_http_reader_t *r)
{
    return r->started;
}

/* ---- requests ---- */

static int default_port(int https)
{
    return https ? 443 : 80;
}

int bosh_http_request(buf_t *out, const bosh_http_target_t *t, const char *body, size_t len)
{
    char line[64];
    int rc = buf_append_str(out, "POST ");
    rc = rc ? rc : buf_append_str(out, t->path && *t->path ? t->path : "/");
    rc = rc ? rc : buf_append_str(out, " HTTP/1.1\r\nHost: ");
    /* an IPv6 literal goes in brackets (RFC 7230 §5.4, RFC 3986 §3.2.2) */
    int v6 = strchr(t->host, ':') != NULL;
    rc = rc ? rc : buf_append_str(out, v6 ? "[" : "");
    rc = rc ? rc : buf_append_str(out, t->host);
    rc = rc ? rc : buf_append_str(out, v6 ? "]" : "");
    if (t->port != default_port(t->https)) {
        snprintf(line, sizeof(line), ":%d", t->port);
        rc = rc ? rc : buf_append_str(out, line);
    }
    rc = rc ? rc : buf_append_str(out, "\r\nContent-Type: ");
    rc = rc ? rc
            : buf_append_str(out, t->content_type ? t->content_type : BOSH_DEFAULT_CONTENT_TYPE);
    snprintf(line, sizeof(line), "\r\nContent-Length: %zu\r\n", len);
    rc = rc ? rc : buf_append_str(out, line);
    if (t->cookie) {
        rc = rc ? rc : buf_append_str(out, "Cookie: ");
        rc = rc ? rc : buf_append_str(out, t->cookie);
        rc = rc ? rc : buf_append_str(out, "\r\n");
    }
    for (char *const *h = t->headers; h && *h; h++) {
        rc = rc ? rc : buf_append_str(out, *h);
        rc = rc ? rc : buf_append_str(out, "\r\n");
    }
    rc = rc ? rc : buf_append_str(out, "\r\n");
    rc = rc ? rc : buf_append(out, body, len);
    return rc;
}

/* ---- <body/> ---- */

static int body_attr(buf_t *out, const char *name, const char *value)
{
    int rc = buf_append_str(out, " ");
    rc = rc ? rc : buf_append_str(out, name);
    rc = rc ? rc : buf_append_str(out, "='");
    rc = rc ? rc : buf_append_escaped(out, value, strlen(value), 1);
    rc = rc ? rc : buf_append_str(out, "'");
    return rc;
}

static int body_attr_u64(buf_t *out, const char *name, uint64_t value)
{
    char num[24];
    snprintf(num, sizeof(num), "%llu", (unsigned long long)value);
    return body_attr(out, name, num);
}

int bosh_body_build(buf_t *out, const bosh_body_params_t *p, const char *payload, size_t plen)
{
    int creating = p->sid == NULL;
    int rc = buf_append_str(out, "<body");
    rc = rc ? rc : body_attr_u64(out, "rid", p->rid);
    if (p->sid)
        rc = rc ? rc : body_attr(out, "sid", p->sid);
    if (creating) {
        rc = rc ? rc : body_attr(out, "to", p->to);
        rc = rc ? rc : body_attr(out, "xml:lang", "en");
        rc = rc ? rc : body_attr_u64(out, "wait", p->wait);
        rc = rc ? rc : body_attr_u64(out, "hold", p->hold);
        rc = rc ? rc
                : body_attr(out, "content", p->content ? p->content : BOSH_DEFAULT_CONTENT_TYPE);
        rc = rc ? rc : body_attr(out, "ver", "1.6");
        rc = rc ? rc : body_attr(out, "xmpp:version", "1.0");
        if (p->route)
            rc = rc ? rc : body_attr(out, "route", p->route);
    } else if (p->restart) {
        rc = rc ? rc : body_attr(out, "to", p->to);
        rc = rc ? rc : body_attr(out, "xml:lang", "en");
        rc = rc ? rc : body_attr(out, "xmpp:restart", "true");
    }
    if (p->terminate)
        rc = rc ? rc : body_attr(out, "type", "terminate");
    rc = rc ? rc : buf_append_str(out, " xmlns='" BOSH_NS "'");
    if (creating || p->restart)
        rc = rc ? rc : buf_append_str(out, " xmlns:xmpp='" BOSH_NS_XBOSH "'");
    if (plen == 0)
        return rc ? rc : buf_append_str(out, "/>");
    rc = rc ? rc : buf_append_str(out, ">");
    rc = rc ? rc : buf_append(out, payload, plen);
    rc = rc ? rc : buf_append_str(out, "</body>");
    return rc;
}

/* ---- Strophe's timing ---- */

uint64_t bosh_timeout_ms(unsigned wait)
{
    return (uint64_t)wait * 1100; /* TIMEOUT = 1.1 */
}

uint64_t bosh_secondary_timeout_ms(unsigned wait)
{
    return (uint64_t)wait * 100; /* SECONDARY_TIMEOUT = 0.1 */
}

uint64_t bosh_backoff_ms(unsigned wait, unsigned sends)
{
    if (sends <= 1)
        return 0;
    uint64_t cube = (uint64_t)sends * sends * sends * 1000;
    uint64_t cap = (bosh_timeout_ms(wait) / 1000) * 1000; /* Strophe floors it to seconds */
    return cube < cap ? cube : cap;
}

uint64_t bosh_random_rid(void)
{
    uint64_t r = 0;
    if (uv_random(NULL, NULL, &r, sizeof(r), 0, NULL) != 0)
        r = uv_hrtime() ^ ((uint64_t)uv_os_getpid() << 32);
    r &= ((uint64_t)1 << 52) - 1;
    return r ? r : 1;
}
