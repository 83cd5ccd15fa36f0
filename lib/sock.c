/*
 * One client byte stream (see sock.h): resolve, connect to each address in
 * turn, optional TLS, writes that try the socket first.
 */
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "conn.h"
#include "sock.h"
#include "tls.h"

struct sock {
    uvx_conn_t *conn;
    sock_callbacks_t cb;
    void *ud;
    int port;
    char *tls_name; /* NULL: no TLS at connect */
    uv_getaddrinfo_t gai;
    int gai_pending;
    struct addrinfo *addrs; /* from getaddrinfo, or &numeric */
    struct addrinfo *next_addr;
    struct addrinfo numeric; /* a literal IP needs no resolver round trip */
    struct sockaddr_storage numeric_addr;
    uv_tcp_t *tcp;
    uv_connect_t connect_req;
    uv_timer_t *timer; /* connect timeout, and the zero timer of a literal IP */
    int connected;
    int closing;
    int attempt_closing; /* a failed attempt's socket is closing */
    int open_handles;    /* handles still to close after sock_close() */
    const char *fail_condition;
    /* bytes handed to uv_write and not yet written */
    buf_t inflight;
    size_t inflight_off;
    int writing;
    uv_write_t write_req;
    tls_session_t *tls;
    int tls_starttls; /* the session came from sock_start_tls() */
};

sock_t *sock_new(uvx_conn_t *conn, const sock_callbacks_t *cb, void *ud)
{
    sock_t *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return NULL;
    s->conn = conn;
    s->cb = *cb;
    s->ud = ud;
    /* Made now so that a sock always has a handle to close: `closed` then
     * never runs inside sock_close(). */
    if ((s->timer = malloc(sizeof(*s->timer))) == NULL) {
        free(s);
        return NULL;
    }
    uv_timer_init(conn->ctx->loop, s->timer);
    s->timer->data = s;
    return s;
}

static void sock_free_addrs(sock_t *s)
{
    if (s->addrs && s->addrs != &s->numeric)
        uv_freeaddrinfo(s->addrs);
    s->addrs = NULL;
}

static void sock_fail(sock_t *s, const char *condition)
{
    if (!s->closing)
        s->cb.failed(s, s->ud, condition);
}

/* ---- teardown ---- */

static void sock_handle_gone(sock_t *s)
{
    if (--s->open_handles > 0)
        return;
    s->cb.closed(s, s->ud);
    sock_free_addrs(s);
    buf_free(&s->inflight);
    tls_session_free(s->tls);
    free(s->tls_name);
    free(s);
}

static void sock_on_handle_closed(uv_handle_t *h)
{
    sock_t *s = h->data;
    free(h);
    sock_handle_gone(s);
}

static void sock_send_close_notify(sock_t *s)
{
    if (s->tcp == NULL || s->tls == NULL || !tls_session_established(s->tls) || s->writing ||
        tls_session_close_notify(s->tls) != 0)
        return;
    /* Best effort: the alert goes if the socket takes it at once. The
     * peer has often hung up already, so no SIGPIPE for this one. */
    buf_t *out = tls_session_out(s->tls);
    uv_os_fd_t fd;
    if (out->len && uv_fileno((uv_handle_t *)s->tcp, &fd) == 0)
        (void)!send(fd, out->data, out->len, MSG_NOSIGNAL | MSG_DONTWAIT);
    buf_reset(out);
}

void sock_close(sock_t *s)
{
    if (s == NULL || s->closing)
        return;
    s->closing = 1;
    s->open_handles = 1; /* hold: finish only after every close is issued */
    if (s->gai_pending) {
        uv_cancel((uv_req_t *)&s->gai); /* sock_on_resolved still runs */
        s->open_handles++;
    }
    sock_send_close_notify(s);
    if (s->tcp) {
        s->tcp->data = s;
        uv_close((uv_handle_t *)s->tcp, sock_on_handle_closed);
        s->tcp = NULL;
        s->open_handles++;
    } else if (s->attempt_closing) {
        s->open_handles++; /* sock_on_attempt_closed reports it */
    }
    if (s->timer) {
        uv_timer_stop(s->timer);
        s->timer->data = s;
        uv_close((uv_handle_t *)s->timer, sock_on_handle_closed);
        s->timer = NULL;
        s->open_handles++;
    }
    s->connected = 0;
    sock_handle_gone(s);
}

/* ---- connecting ---- */

static void sock_try_next(sock_t *s);

static void sock_on_attempt_closed(uv_handle_t *h)
{
    sock_t *s = h->data;
    free(h);
    s->attempt_closing = 0;
    if (s->closing) {
        sock_handle_gone(s);
        return;
    }
    sock_try_next(s);
}

/* Gives up on the current address and moves to the next one. */
static void sock_attempt_failed(sock_t *s, const char *condition)
{
    s->fail_condition = condition;
    uv_timer_stop(s->timer);
    uv_tcp_t *tcp = s->tcp;
    s->tcp = NULL;
    s->attempt_closing = 1;
    uv_close((uv_handle_t *)tcp, sock_on_attempt_closed);
}

static void sock_on_read_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    sock_t *s = h->data;
    (void)suggested;
    buf->base = s->conn->ctx->read_buf;
    buf->len = sizeof(s->conn->ctx->read_buf);
}

static int sock_write_raw(sock_t *s, buf_t *src);

/* Ciphertext in: decrypt (plaintext comes out through sock_on_tls_plaintext),
 * then send whatever TLS wants to answer. */
static void sock_tls_input(sock_t *s, const char *data, size_t len)
{
    int rc = tls_session_input(s->tls, data, len);
    if (s->closing)
        return;
    if (rc == UVX_ECLOSED) {
        s->cb.eof(s, s->ud);
        return;
    }
    if (rc != 0) {
        sock_fail(s, tls_session_error(s->tls));
        return;
    }
    if (tls_session_out(s->tls)->len && !s->writing)
        sock_write_raw(s, tls_session_out(s->tls));
}

static void sock_on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    sock_t *s = stream->data;
    if (nread > 0) {
        if (s->tls)
            sock_tls_input(s, buf->base, (size_t)nread);
        else
            s->cb.data(s, s->ud, buf->base, (size_t)nread);
    } else if (nread == UV_EOF) {
        uv_read_stop(stream);
        if (s->tls && !tls_session_established(s->tls))
            sock_fail(s, "tls-handshake-failed"); /* hung up mid-handshake */
        else
            s->cb.eof(s, s->ud);
    } else if (nread < 0) {
        uv_read_stop(stream);
        sock_fail(s, "connection-lost");
    }
}

static void sock_on_tls_plaintext(void *ud, const char *data, size_t len)
{
    sock_t *s = ud;
    if (!s->closing)
        s->cb.data(s, s->ud, data, len);
}

static void sock_on_tls_handshake(void *ud)
{
    sock_t *s = ud;
    if (s->closing)
        return;
    if (s->tls_starttls) {
        if (s->cb.tls_ready)
            s->cb.tls_ready(s, s->ud);
    } else {
        s->cb.connected(s, s->ud);
    }
}

static int sock_on_tls_verify(void *ud, const uvx_tls_cert_info_t *cert)
{
    sock_t *s = ud;
    uvx_conn_t *conn = s->conn;
    return conn->tls_verify_cb ? conn->tls_verify_cb(conn, cert, conn->tls_verify_ud) : 0;
}

/* Wraps the socket in TLS and sends the ClientHello. */
static int sock_tls_begin(sock_t *s, const char *tls_name, int starttls)
{
    uvx_conn_t *conn = s->conn;
    const char *error = NULL;
    if (conn->ctx->tls == NULL && (conn->ctx->tls = tls_shared_new()) == NULL) {
        sock_fail(s, "out-of-memory");
        return UVX_ENOMEM;
    }
    tls_options_t o = {conn->tls_cafile,
                       conn->tls_cadir,
                       conn->tls_insecure,
                       conn->tls_cert_file,
                       conn->tls_key_file,
                       sock_on_tls_verify,
                       s};
    tls_callbacks_t cb = {sock_on_tls_plaintext, sock_on_tls_handshake};
    int rc = tls_session_new(conn->ctx->tls, &o, tls_name, &cb, s, &s->tls, &error);
    if (rc != 0) {
        sock_fail(s, error ? error : "tls-handshake-failed");
        return rc;
    }
    s->tls_starttls = starttls;
    rc = tls_session_start(s->tls);
    if (rc == 0)
        rc = sock_write_raw(s, tls_session_out(s->tls));
    else
        sock_fail(s, tls_session_error(s->tls));
    return rc;
}

int sock_start_tls(sock_t *s, const char *tls_name)
{
    if (!s->connected || s->tls || s->closing)
        return UVX_ESTATE;
    return sock_tls_begin(s, tls_name, 1);
}

static void sock_on_connect(uv_connect_t *req, int status)
{
    sock_t *s = req->data;
    if (status == UV_ECANCELED || s->closing)
        return;
    if (status != 0) {
        sock_attempt_failed(s,
                            status == UV_ETIMEDOUT ? "connection-timeout" : "connection-refused");
        return;
    }
    uv_timer_stop(s->timer);
    s->connected = 1;
    uv_tcp_nodelay(s->tcp, 1);
    uv_read_start((uv_stream_t *)s->tcp, sock_on_read_alloc, sock_on_read);
    if (s->tls_name)
        sock_tls_begin(s, s->tls_name, 0);
    else
        s->cb.connected(s, s->ud);
}

static void sock_on_connect_timeout(uv_timer_t *timer)
{
    sock_t *s = timer->data;
    /* Closing the socket cancels the connect request (UV_ECANCELED). */
    if (s->tcp)
        sock_attempt_failed(s, "connection-timeout");
}

static int sock_bind_local(sock_t *s, uv_tcp_t *tcp, int family)
{
    const char *addr = s->conn->bind_address;
    struct sockaddr_storage local;
    int rc = family == AF_INET6 ? uv_ip6_addr(addr, 0, (struct sockaddr_in6 *)&local)
                                : uv_ip4_addr(addr, 0, (struct sockaddr_in *)&local);
#ifdef IP_BIND_ADDRESS_NO_PORT
    /* Let connect() pick the port: bind() with port 0 searches the whole
     * port range on every call, which turns 100 000 sessions quadratic. */
    uv_os_fd_t fd;
    int one = 1;
    if (rc == 0 && uv_fileno((uv_handle_t *)tcp, &fd) == 0)
        setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
#endif
    if (rc == 0)
        rc = uv_tcp_bind(tcp, (const struct sockaddr *)&local, 0);
    return rc;
}

static void sock_try_next(sock_t *s)
{
    uvx_conn_t *conn = s->conn;
    while (s->next_addr) {
        struct addrinfo *ai = s->next_addr;
        s->next_addr = ai->ai_next;
        uv_tcp_t *tcp = malloc(sizeof(*tcp));
        if (tcp == NULL)
            break;
        /* With a source address the socket must exist before bind (see
         * sock_bind_local); otherwise libuv creates it at connect. */
        int rc = conn->bind_address ? uv_tcp_init_ex(conn->ctx->loop, tcp, ai->ai_family)
                                    : uv_tcp_init(conn->ctx->loop, tcp);
        if (rc != 0) {
            free(tcp);
            s->fail_condition = "connection-refused";
            continue;
        }
        tcp->data = s;
        s->tcp = tcp;
        rc = conn->bind_address ? sock_bind_local(s, tcp, ai->ai_family) : 0;
        s->connect_req.data = s;
        if (rc == 0)
            rc = uv_tcp_connect(&s->connect_req, tcp, ai->ai_addr, sock_on_connect);
        if (rc != 0) {
            sock_attempt_failed(s, conn->bind_address ? "bind-failed" : "connection-refused");
            return; /* continues from the close callback */
        }
        uv_timer_start(s->timer, sock_on_connect_timeout, conn->connect_timeout_ms, 0);
        return;
    }
    sock_fail(s, s->fail_condition ? s->fail_condition : "connection-refused");
}

static void sock_on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    sock_t *s = req->data;
    s->gai_pending = 0;
    if (s->closing) {
        if (res)
            uv_freeaddrinfo(res);
        sock_handle_gone(s);
        return;
    }
    if (status != 0 || res == NULL) {
        if (res)
            uv_freeaddrinfo(res);
        sock_fail(s, "host-unresolved");
        return;
    }
    sock_free_addrs(s);
    s->addrs = res;
    s->next_addr = res;
    s->fail_condition = NULL;
    sock_try_next(s);
}

/* A literal IPv4/IPv6 address skips the resolver (and the thread pool):
 * load tools open thousands of sessions to 127.0.0.1. Connecting starts
 * from a zero timer so that callbacks never run inside sock_connect(). */
static void sock_on_numeric_start(uv_timer_t *timer)
{
    sock_try_next(timer->data);
}

static int sock_numeric_host(sock_t *s, const char *host)
{
    struct sockaddr_in *in4 = (struct sockaddr_in *)&s->numeric_addr;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&s->numeric_addr;
    memset(&s->numeric, 0, sizeof(s->numeric));
    if (uv_ip4_addr(host, s->port, in4) == 0) {
        s->numeric.ai_family = AF_INET;
        s->numeric.ai_addrlen = sizeof(*in4);
    } else if (uv_ip6_addr(host, s->port, in6) == 0) {
        s->numeric.ai_family = AF_INET6;
        s->numeric.ai_addrlen = sizeof(*in6);
    } else {
        return 0;
    }
    s->numeric.ai_socktype = SOCK_STREAM;
    s->numeric.ai_protocol = IPPROTO_TCP;
    s->numeric.ai_addr = (struct sockaddr *)&s->numeric_addr;
    sock_free_addrs(s);
    s->addrs = &s->numeric;
    s->next_addr = &s->numeric;
    s->fail_condition = NULL;
    uv_timer_start(s->timer, sock_on_numeric_start, 0, 0);
    return 1;
}

int sock_connect(sock_t *s, const char *host, int port, int tls, const char *tls_name)
{
    if (s->closing || s->connected || s->tcp || s->gai_pending || s->attempt_closing)
        return UVX_ESTATE;
    s->port = port;
    free(s->tls_name);
    s->tls_name = NULL;
    if (tls && (s->tls_name = strdup(tls_name ? tls_name : host)) == NULL)
        return UVX_ENOMEM;
    if (sock_numeric_host(s, host))
        return 0;
    char portstr[8];
    struct addrinfo hints;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_protocol = IPPROTO_TCP;
    snprintf(portstr, sizeof(portstr), "%d", port);
    s->gai.data = s;
    int rc = uv_getaddrinfo(s->conn->ctx->loop, &s->gai, sock_on_resolved, host, portstr, &hints);
    if (rc == 0)
        s->gai_pending = 1;
    return rc;
}

/* ---- writing ---- */

static void sock_on_write(uv_write_t *req, int status)
{
    sock_t *s = req->data;
    s->writing = 0;
    buf_reset(&s->inflight);
    s->inflight_off = 0;
    if (s->inflight.cap > 256 * 1024)
        buf_free(&s->inflight); /* don't keep a burst's buffer for an idle session */
    if (status == UV_ECANCELED || s->closing)
        return;
    if (status != 0) {
        sock_fail(s, "connection-lost");
        return;
    }
    if (s->tls && tls_session_out(s->tls)->len) {
        sock_write_raw(s, tls_session_out(s->tls)); /* handshake bytes */
        if (s->writing)
            return;
    }
    if (s->cb.wrote)
        s->cb.wrote(s, s->ud);
}

/* Writes `src` (plaintext without TLS, else ciphertext): the kernel takes
 * what it can now and the rest goes to uv_write from the sock's own
 * buffer, so `src` is empty afterwards either way. */
static int sock_write_raw(sock_t *s, buf_t *src)
{
    if (s->writing || src->len == 0)
        return 0; /* sock_on_write sends the rest */
    uv_buf_t b = uv_buf_init(src->data, (unsigned)src->len);
    int n = uv_try_write((uv_stream_t *)s->tcp, &b, 1);
    if (n == (int)src->len) {
        buf_reset(src);
        return 0;
    }
    if (n < 0 && n != UV_EAGAIN) {
        sock_fail(s, "connection-lost");
        return n;
    }
    /* The kernel took part of it: hand the rest to uv_write. */
    buf_t tmp = s->inflight;
    s->inflight = *src;
    s->inflight_off = n > 0 ? (size_t)n : 0;
    *src = tmp;
    buf_reset(src);
    uv_buf_t rest = uv_buf_init(s->inflight.data + s->inflight_off,
                                (unsigned)(s->inflight.len - s->inflight_off));
    s->write_req.data = s;
    int rc = uv_write(&s->write_req, (uv_stream_t *)s->tcp, &rest, 1, sock_on_write);
    if (rc == 0)
        s->writing = 1;
    else
        sock_fail(s, "connection-lost");
    return rc;
}

int sock_writable(const sock_t *s)
{
    return s->connected && !s->closing && !s->writing &&
           (s->tls == NULL || tls_session_established(s->tls));
}

int sock_write(sock_t *s, buf_t *src)
{
    if (s->closing || !s->connected || s->tcp == NULL)
        return UVX_ESTATE;
    if (s->tls == NULL)
        return sock_write_raw(s, src);
    if (s->writing)
        return 0; /* encrypt later: sock_on_write calls `wrote` */
    if (!tls_session_established(s->tls))
        return sock_write_raw(s, tls_session_out(s->tls)); /* plaintext waits */
    if (src->len) {
        int rc = tls_session_write(s->tls, src->data, src->len);
        buf_reset(src);
        if (rc != 0) {
            sock_fail(s, tls_session_error(s->tls));
            return rc;
        }
    }
    return sock_write_raw(s, tls_session_out(s->tls));
}

size_t sock_in_flight(const sock_t *s)
{
    return s->writing ? s->inflight.len - s->inflight_off : 0;
}

int sock_secure(const sock_t *s)
{
    return s->tls != NULL && tls_session_established(s->tls);
}

int sock_channel_binding(const sock_t *s, const char *type, unsigned char *out, size_t cap,
                         size_t *len)
{
    return s->tls ? tls_session_channel_binding(s->tls, type, out, cap, len) : UVX_ENOTSUP;
}
