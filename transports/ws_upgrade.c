/*
 * The HTTP side of RFC 6455 for the WebSocket transport, sans-I/O: the
 * upgrade request, the answer to it, and ws:// URLs. No socket, timer or
 * connection state here; websocket.c moves the bytes.
 *
 * llhttp reads the answer. A 101 pauses it with HPE_PAUSED_UPGRADE, and
 * the bytes after the headers are already WebSocket frames; any other
 * status stops it at the end of the headers, because the caller only wants
 * the number (for the protocol error handlers), not the body.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <mbedtls/base64.h>
#include <mbedtls/sha1.h>

#include "ws.h"

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
/* An upgrade answer is a few hundred bytes; anything near this is not one. */
#define WS_MAX_RESPONSE 16384

int ws_default_port(int tls)
{
    return tls ? 443 : 80;
}

/* ---- keys ---- */

/* Sec-WebSocket-Accept = base64(SHA-1(key + GUID)), RFC 6455 §4.2.2. */
static int ws_expected_accept(const char *key, char *out, size_t cap)
{
    unsigned char digest[20];
    mbedtls_sha1_context sha;
    size_t olen = 0;
    mbedtls_sha1_init(&sha);
    int rc = mbedtls_sha1_starts_ret(&sha);
    if (rc == 0)
        rc = mbedtls_sha1_update_ret(&sha, (const unsigned char *)key, strlen(key));
    if (rc == 0)
        rc = mbedtls_sha1_update_ret(&sha, (const unsigned char *)WS_GUID, strlen(WS_GUID));
    if (rc == 0)
        rc = mbedtls_sha1_finish_ret(&sha, digest);
    mbedtls_sha1_free(&sha);
    if (rc == 0)
        rc = mbedtls_base64_encode((unsigned char *)out, cap, &olen, digest, sizeof(digest));
    return rc == 0 ? 0 : UVX_EINVAL;
}

int ws_key_from_nonce(const unsigned char nonce[16], char *key)
{
    size_t olen = 0;
    if (mbedtls_base64_encode((unsigned char *)key, WS_KEY_SIZE, &olen, nonce, 16) != 0)
        return UVX_EINVAL;
    return 0;
}

/* ---- the answer ---- */

/* Case-insensitive: does the comma-separated list `v` hold `token`? */
static int ws_list_has_token(const char *v, const char *token)
{
    size_t tlen = strlen(token);
    while (*v) {
        v += strspn(v, " \t,");
        size_t n = strcspn(v, ",");
        size_t m = n;
        while (m > 0 && (v[m - 1] == ' ' || v[m - 1] == '\t'))
            m--;
        if (m == tlen && strncasecmp(v, token, tlen) == 0)
            return 1;
        v += n;
    }
    return 0;
}

/* One complete header: note what it says about the upgrade. */
static void ws_header(ws_upgrade_t *u)
{
    char *v = u->hvalue;
    size_t n = u->hvalue_len < sizeof(u->hvalue) ? u->hvalue_len : sizeof(u->hvalue) - 1;
    while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t'))
        n--;
    v[n] = '\0';
    while (*v == ' ' || *v == '\t')
        v++;
    int ok = !u->hvalue_long;
    const char *name = u->hname_len < sizeof(u->hname) ? u->hname : ""; /* too long: not ours */
    if (strcasecmp(name, "upgrade") == 0)
        u->saw_upgrade = ok && strcasecmp(v, "websocket") == 0;
    else if (strcasecmp(name, "connection") == 0)
        u->saw_connection = ok && ws_list_has_token(v, "upgrade");
    else if (strcasecmp(name, "sec-websocket-accept") == 0)
        u->accept_ok = ok && strcmp(v, u->accept) == 0;
    else if (strcasecmp(name, "sec-websocket-protocol") == 0)
        /* ejabberd writes "Sec-Websocket-Protocol:xmpp": names are case-blind */
        u->protocol_ok = ok && strcmp(v, "xmpp") == 0;
    else if (strcasecmp(name, "sec-websocket-extensions") == 0)
        u->extensions |= *v != '\0' || !ok; /* we asked for none */
    u->hname_len = u->hvalue_len = 0;
    u->hname[0] = u->hvalue[0] = '\0';
    u->hvalue_long = 0;
}

/* Appends to a fixed buffer; what does not fit sets *len to `cap`. */
static void ws_append_bounded(char *dst, size_t cap, size_t *len, const char *at, size_t n)
{
    if (*len >= cap)
        return;
    if (*len + n >= cap) {
        *len = cap;
        return;
    }
    memcpy(dst + *len, at, n);
    *len += n;
    dst[*len] = '\0';
}

static int ws_on_header_field(llhttp_t *p, const char *at, size_t n)
{
    ws_upgrade_t *u = p->data;
    ws_append_bounded(u->hname, sizeof(u->hname), &u->hname_len, at, n);
    return 0;
}

static int ws_on_header_value(llhttp_t *p, const char *at, size_t n)
{
    ws_upgrade_t *u = p->data;
    ws_append_bounded(u->hvalue, sizeof(u->hvalue), &u->hvalue_len, at, n);
    u->hvalue_long = u->hvalue_len >= sizeof(u->hvalue);
    return 0;
}

static int ws_on_header_value_complete(llhttp_t *p)
{
    ws_header(p->data);
    return 0;
}

static int ws_on_headers_complete(llhttp_t *p)
{
    ws_upgrade_t *u = p->data;
    if (llhttp_get_status_code(p) != 101)
        return HPE_PAUSED; /* reported by ws_upgrade_feed(): not an upgrade */
    if (!u->saw_upgrade || !u->saw_connection || u->extensions)
        u->fail = "websocket-bad-response";
    else if (!u->accept_ok)
        u->fail = "websocket-bad-accept";
    else if (!u->protocol_ok)
        u->fail = "websocket-no-subprotocol";
    return u->fail ? -1 : 0;
}

static const llhttp_settings_t ws_http_settings = {
    .on_header_field = ws_on_header_field,
    .on_header_value = ws_on_header_value,
    .on_header_value_complete = ws_on_header_value_complete,
    .on_headers_complete = ws_on_headers_complete,
};

int ws_upgrade_init(ws_upgrade_t *u, const char *key)
{
    memset(u, 0, sizeof(*u));
    if (key == NULL || strlen(key) >= sizeof(u->key))
        return UVX_EINVAL;
    llhttp_init(&u->http, HTTP_RESPONSE, &ws_http_settings);
    u->http.data = u;
    memcpy(u->key, key, strlen(key) + 1);
    return ws_expected_accept(u->key, u->accept, sizeof(u->accept));
}

int ws_upgrade_feed(ws_upgrade_t *u, const char *data, size_t len, size_t *used)
{
    *used = 0;
    llhttp_errno_t err = llhttp_execute(&u->http, data, len);
    if (err == HPE_OK) {
        u->response_bytes += len;
        if (u->response_bytes <= WS_MAX_RESPONSE)
            return WS_UPGRADE_MORE;
        u->fail = "websocket-bad-response";
        return WS_UPGRADE_FAILED;
    }
    if (err == HPE_PAUSED_UPGRADE) {
        const char *rest = llhttp_get_error_pos(&u->http);
        *used = rest ? (size_t)(rest - data) : len;
        return WS_UPGRADE_DONE;
    }
    if (err == HPE_PAUSED) {
        u->status = llhttp_get_status_code(&u->http);
        return WS_UPGRADE_HTTP;
    }
    if (u->fail == NULL)
        u->fail = "websocket-bad-response";
    return WS_UPGRADE_FAILED;
}

/* ---- the request ---- */

static int ws_append_host(buf_t *b, const ws_target_t *t)
{
    int v6 = strchr(t->host, ':') != NULL;
    int rc = buf_append_str(b, v6 ? "[" : "");
    rc = rc ? rc : buf_append_str(b, t->host);
    rc = rc ? rc : buf_append_str(b, v6 ? "]" : "");
    if (rc == 0 && t->port != ws_default_port(t->tls)) {
        char port[16];
        snprintf(port, sizeof(port), ":%d", t->port);
        rc = buf_append_str(b, port);
    }
    return rc;
}

int ws_upgrade_request(buf_t *b, const ws_target_t *t, const char *key)
{
    int rc = buf_append_str(b, "GET ");
    rc = rc ? rc : buf_append_str(b, t->path && t->path[0] ? t->path : "/");
    rc = rc ? rc : buf_append_str(b, " HTTP/1.1\r\nHost: ");
    rc = rc ? rc : ws_append_host(b, t);
    rc = rc ? rc
            : buf_append_str(b, "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                                "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: xmpp\r\n"
                                "Sec-WebSocket-Key: ");
    rc = rc ? rc : buf_append_str(b, key);
    rc = rc ? rc : buf_append_str(b, "\r\n");
    for (char *const *h = t->headers; rc == 0 && h && *h; h++) {
        if (strpbrk(*h, "\r\n") != NULL || strchr(*h, ':') == NULL)
            continue; /* one header per string: no smuggled lines */
        rc = buf_append_str(b, *h);
        rc = rc ? rc : buf_append_str(b, "\r\n");
    }
    return rc ? rc : buf_append_str(b, "\r\n");
}

/* ---- URLs ---- */

int ws_parse_url(const char *url, int *tls, char **host, int *port, char **path)
{
    const char *rest;
    if (strncmp(url, "wss://", 6) == 0) {
        *tls = 1;
        rest = url + 6;
    } else if (strncmp(url, "ws://", 5) == 0) {
        *tls = 0;
        rest = url + 5;
    } else {
        return UVX_EINVAL;
    }
    const char *hend;
    const char *after;
    if (*rest == '[') {
        hend = strchr(rest, ']');
        if (hend == NULL)
            return UVX_EINVAL;
        rest++;
        after = hend + 1;
    } else {
        hend = rest + strcspn(rest, ":/?#");
        after = hend;
    }
    if (hend == rest)
        return UVX_EINVAL;
    *port = ws_default_port(*tls);
    if (*after == ':') {
        char *end;
        long p = strtol(after + 1, &end, 10);
        if (end == after + 1 || p <= 0 || p > 65535)
            return UVX_EINVAL;
        *port = (int)p;
        after = end;
    }
    if (*after != '\0' && *after != '/')
        return UVX_EINVAL;
    *host = strndup(rest, (size_t)(hend - rest));
    *path = strdup(*after ? after : "/");
    if (*host == NULL || *path == NULL) {
        free(*host);
        free(*path);
        return UVX_ENOMEM;
    }
    return 0;
}
