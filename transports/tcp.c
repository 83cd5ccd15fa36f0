/*
 * RFC 6120 over TCP: resolve the host on the libuv thread pool, try every
 * address in turn with a connect timeout, then move bytes between the
 * socket and the core. Reads land in the context's shared buffer (parsing
 * is synchronous, so one per loop is enough); writes try the socket first
 * and only keep a buffer for what the kernel would not take.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>

#include "conn.h"
#include "tls.h"

typedef struct tcp_transport {
    uv_getaddrinfo_t gai;
    int gai_pending;
    struct addrinfo *addrs; /* from getaddrinfo, or &numeric */
    struct addrinfo *next_addr;
    struct addrinfo numeric; /* a literal IP needs no resolver round trip */
    struct sockaddr_storage numeric_addr;
    uv_tcp_t *sock;
    uv_connect_t connect_req;
    uv_timer_t *timer; /* connect timeout */
    int connected;
    int tearing_down;
    int attempt_closing; /* a failed attempt's socket is closing */
    const char *fail_condition;
    /* bytes handed to uv_write and not yet written */
    buf_t inflight;
    size_t inflight_off;
    int writing;
    uv_write_t write_req;
    tls_session_t *tls; /* NULL until direct TLS or STARTTLS */
    int tls_starttls;   /* the session came from STARTTLS (else xmpps://) */
} tcp_transport_t;

static tcp_transport_t *tcp_of(const uvx_conn_t *conn)
{
    return conn->transport;
}

static int tcp_init(uvx_conn_t *conn)
{
    conn->transport = calloc(1, sizeof(tcp_transport_t));
    return conn->transport ? 0 : UVX_ENOMEM;
}

static void tcp_free_addrs(tcp_transport_t *t)
{
    if (t->addrs && t->addrs != &t->numeric)
        uv_freeaddrinfo(t->addrs);
    t->addrs = NULL;
}

static void tcp_destroy(uvx_conn_t *conn)
{
    tcp_transport_t *t = tcp_of(conn);
    tcp_free_addrs(t);
    buf_free(&t->inflight);
    tls_session_free(t->tls);
    free(t);
    conn->transport = NULL;
}

static void tcp_try_next(uvx_conn_t *conn);

static void tcp_on_attempt_closed(uv_handle_t *h)
{
    uvx_conn_t *conn = h->data;
    tcp_transport_t *t = tcp_of(conn);
    free(h);
    t->attempt_closing = 0;
    if (t->tearing_down) {
        conn_handle_closed(conn);
        return;
    }
    tcp_try_next(conn);
}

/* Gives up on the current address and moves to the next one. */
static void tcp_attempt_failed(uvx_conn_t *conn, const char *condition)
{
    tcp_transport_t *t = tcp_of(conn);
    t->fail_condition = condition;
    uv_timer_stop(t->timer);
    uv_tcp_t *sock = t->sock;
    t->sock = NULL;
    t->attempt_closing = 1;
    uv_close((uv_handle_t *)sock, tcp_on_attempt_closed);
}

static void tcp_on_read_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    uvx_conn_t *conn = h->data;
    (void)suggested;
    buf->base = conn->ctx->read_buf;
    buf->len = sizeof(conn->ctx->read_buf);
}

static int tcp_write_buf(uvx_conn_t *conn, buf_t *src);

/* Ciphertext in: decrypt (plaintext reaches the core through
 * tcp_on_tls_plaintext), then send whatever TLS wants to answer. */
static void tcp_tls_input(uvx_conn_t *conn, const char *data, size_t len)
{
    tcp_transport_t *t = tcp_of(conn);
    int rc = tls_session_input(t->tls, data, len);
    if (t->tearing_down)
        return;
    if (rc == UVX_ECLOSED) {
        conn_transport_eof(conn);
        return;
    }
    if (rc != 0) {
        conn_transport_failed(conn, tls_session_error(t->tls));
        return;
    }
    if (tls_session_out(t->tls)->len && !t->writing)
        tcp_write_buf(conn, tls_session_out(t->tls));
}

static void tcp_on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    uvx_conn_t *conn = s->data;
    tcp_transport_t *t = tcp_of(conn);
    if (nread > 0) {
        if (t->tls)
            tcp_tls_input(conn, buf->base, (size_t)nread);
        else
            conn_transport_data(conn, buf->base, (size_t)nread);
    } else if (nread == UV_EOF) {
        uv_read_stop(s);
        conn_transport_eof(conn);
    } else if (nread < 0) {
        uv_read_stop(s);
        conn_transport_failed(conn, "connection-lost");
    }
}

static void tcp_on_tls_plaintext(void *ud, const char *data, size_t len)
{
    conn_transport_data(ud, data, len);
}

static void tcp_on_tls_handshake(void *ud)
{
    uvx_conn_t *conn = ud;
    tcp_transport_t *t = tcp_of(conn);
    conn->secure = 1;
    if (t->tls_starttls)
        conn_transport_tls_ready(conn);
    else
        conn_transport_connected(conn);
}

static int tcp_on_tls_verify(void *ud, const uvx_tls_cert_info_t *cert)
{
    uvx_conn_t *conn = ud;
    return conn->tls_verify_cb ? conn->tls_verify_cb(conn, cert, conn->tls_verify_ud) : 0;
}

/* Wraps the socket in TLS and sends the ClientHello. The certificate must
 * name the XMPP domain (RFC 6120 §13.7.2), not the host we dialled. */
static int tcp_tls_begin(uvx_conn_t *conn, int starttls)
{
    tcp_transport_t *t = tcp_of(conn);
    const char *error = NULL;
    if (conn->ctx->tls == NULL && (conn->ctx->tls = tls_shared_new()) == NULL)
        return UVX_ENOMEM;
    tls_options_t o = {conn->tls_cafile,
                       conn->tls_cadir,
                       conn->tls_insecure,
                       conn->tls_cert_file,
                       conn->tls_key_file,
                       tcp_on_tls_verify,
                       conn};
    tls_callbacks_t cb = {tcp_on_tls_plaintext, tcp_on_tls_handshake};
    int rc = tls_session_new(conn->ctx->tls, &o, conn->domain, &cb, conn, &t->tls, &error);
    if (rc != 0) {
        conn_transport_failed(conn, error ? error : "tls-handshake-failed");
        return rc;
    }
    t->tls_starttls = starttls;
    rc = tls_session_start(t->tls);
    if (rc == 0)
        rc = tcp_write_buf(conn, tls_session_out(t->tls));
    else
        conn_transport_failed(conn, tls_session_error(t->tls));
    return rc;
}

static int tcp_start_tls(uvx_conn_t *conn)
{
    tcp_transport_t *t = tcp_of(conn);
    if (!t->connected || t->tls)
        return UVX_ESTATE;
    return tcp_tls_begin(conn, 1);
}

static int tcp_channel_binding(uvx_conn_t *conn, const char *type, unsigned char *out, size_t cap,
                               size_t *len)
{
    tcp_transport_t *t = tcp_of(conn);
    if (t->tls == NULL || strcmp(type, "tls-unique") != 0)
        return UVX_ENOTSUP;
    return tls_session_tls_unique(t->tls, out, cap, len);
}

static void tcp_on_connect(uv_connect_t *req, int status)
{
    uvx_conn_t *conn = req->data;
    tcp_transport_t *t = tcp_of(conn);
    if (status == UV_ECANCELED || t->tearing_down)
        return;
    if (status != 0) {
        tcp_attempt_failed(conn,
                           status == UV_ETIMEDOUT ? "connection-timeout" : "connection-refused");
        return;
    }
    uv_timer_stop(t->timer);
    t->connected = 1;
    uv_tcp_nodelay(t->sock, 1);
    uv_read_start((uv_stream_t *)t->sock, tcp_on_read_alloc, tcp_on_read);
    if (conn->direct_tls)
        tcp_tls_begin(conn, 0);
    else
        conn_transport_connected(conn);
}

static void tcp_on_connect_timeout(uv_timer_t *timer)
{
    uvx_conn_t *conn = timer->data;
    tcp_transport_t *t = tcp_of(conn);
    /* Closing the socket cancels the connect request (UV_ECANCELED). */
    if (t->sock)
        tcp_attempt_failed(conn, "connection-timeout");
}

static int tcp_bind_local(uvx_conn_t *conn, uv_tcp_t *sock, int family)
{
    struct sockaddr_storage local;
    int rc = family == AF_INET6 ? uv_ip6_addr(conn->bind_address, 0, (struct sockaddr_in6 *)&local)
                                : uv_ip4_addr(conn->bind_address, 0, (struct sockaddr_in *)&local);
#ifdef IP_BIND_ADDRESS_NO_PORT
    /* Let connect() pick the port: bind() with port 0 searches the whole
     * port range on every call, which turns 100 000 sessions quadratic. */
    uv_os_fd_t fd;
    int one = 1;
    if (rc == 0 && uv_fileno((uv_handle_t *)sock, &fd) == 0)
        setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
#endif
    if (rc == 0)
        rc = uv_tcp_bind(sock, (const struct sockaddr *)&local, 0);
    return rc;
}

static void tcp_try_next(uvx_conn_t *conn)
{
    tcp_transport_t *t = tcp_of(conn);
    while (t->next_addr) {
        struct addrinfo *ai = t->next_addr;
        t->next_addr = ai->ai_next;
        uv_tcp_t *sock = malloc(sizeof(*sock));
        if (sock == NULL)
            break;
        /* With a source address the socket must exist before bind (see
         * tcp_bind_local); otherwise libuv creates it at connect. */
        int rc = conn->bind_address ? uv_tcp_init_ex(conn->ctx->loop, sock, ai->ai_family)
                                    : uv_tcp_init(conn->ctx->loop, sock);
        if (rc != 0) {
            free(sock);
            t->fail_condition = "connection-refused";
            continue;
        }
        sock->data = conn;
        t->sock = sock;
        rc = conn->bind_address ? tcp_bind_local(conn, sock, ai->ai_family) : 0;
        t->connect_req.data = conn;
        if (rc == 0)
            rc = uv_tcp_connect(&t->connect_req, sock, ai->ai_addr, tcp_on_connect);
        if (rc != 0) {
            tcp_attempt_failed(conn, conn->bind_address ? "bind-failed" : "connection-refused");
            return; /* continues from the close callback */
        }
        uv_timer_start(t->timer, tcp_on_connect_timeout, conn->connect_timeout_ms, 0);
        return;
    }
    conn_transport_failed(conn, t->fail_condition ? t->fail_condition : "connection-refused");
}

static void tcp_on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    uvx_conn_t *conn = req->data;
    tcp_transport_t *t = tcp_of(conn);
    t->gai_pending = 0;
    if (t->tearing_down) {
        if (res)
            uv_freeaddrinfo(res);
        conn_handle_closed(conn);
        return;
    }
    if (status != 0 || res == NULL) {
        if (res)
            uv_freeaddrinfo(res);
        conn_transport_failed(conn, "host-unresolved");
        return;
    }
    tcp_free_addrs(t);
    t->addrs = res;
    t->next_addr = res;
    t->fail_condition = NULL;
    tcp_try_next(conn);
}

/* A literal IPv4/IPv6 address skips the resolver (and the thread pool):
 * load tools open thousands of sessions to 127.0.0.1. Connecting starts
 * from a zero timer so that status callbacks never run inside connect(). */
static void tcp_on_numeric_start(uv_timer_t *timer)
{
    uvx_conn_t *conn = timer->data;
    tcp_try_next(conn);
}

static int tcp_numeric_host(uvx_conn_t *conn, tcp_transport_t *t)
{
    struct sockaddr_in *in4 = (struct sockaddr_in *)&t->numeric_addr;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&t->numeric_addr;
    memset(&t->numeric, 0, sizeof(t->numeric));
    if (uv_ip4_addr(conn->host, conn->port, in4) == 0) {
        t->numeric.ai_family = AF_INET;
        t->numeric.ai_addrlen = sizeof(*in4);
    } else if (uv_ip6_addr(conn->host, conn->port, in6) == 0) {
        t->numeric.ai_family = AF_INET6;
        t->numeric.ai_addrlen = sizeof(*in6);
    } else {
        return 0;
    }
    t->numeric.ai_socktype = SOCK_STREAM;
    t->numeric.ai_protocol = IPPROTO_TCP;
    t->numeric.ai_addr = (struct sockaddr *)&t->numeric_addr;
    tcp_free_addrs(t);
    t->addrs = &t->numeric;
    t->next_addr = &t->numeric;
    t->fail_condition = NULL;
    uv_timer_start(t->timer, tcp_on_numeric_start, 0, 0);
    return 1;
}

static int tcp_connect(uvx_conn_t *conn)
{
    tcp_transport_t *t = tcp_of(conn);
    char port[8];
    struct addrinfo hints;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_protocol = IPPROTO_TCP;
    snprintf(port, sizeof(port), "%d", conn->port);
    t->tearing_down = 0;
    t->connected = 0;
    t->writing = 0;
    buf_reset(&t->inflight);
    tls_session_free(t->tls);
    t->tls = NULL;
    if (t->timer == NULL && (t->timer = conn_timer_new(conn)) == NULL)
        return UVX_ENOMEM;
    if (tcp_numeric_host(conn, t))
        return 0;
    t->gai.data = conn;
    int rc = uv_getaddrinfo(conn->ctx->loop, &t->gai, tcp_on_resolved, conn->host, port, &hints);
    if (rc == 0)
        t->gai_pending = 1;
    return rc;
}

static int tcp_open_stream(uvx_conn_t *conn)
{
    buf_t hdr = BUF_INIT;
    int rc = buf_append_str(&hdr, "<?xml version='1.0'?><stream:stream to='");
    if (rc == 0)
        rc = buf_append_escaped(&hdr, conn->domain, strlen(conn->domain), 1);
    if (rc == 0)
        rc = buf_append_str(&hdr, "' version='1.0' xml:lang='en' xmlns='jabber:client' "
                                  "xmlns:stream='http://etherx.jabber.org/streams'>");
    if (rc == 0)
        rc = conn_queue_raw(conn, hdr.data, hdr.len);
    buf_free(&hdr);
    return rc;
}

static int tcp_close_stream(uvx_conn_t *conn)
{
    return conn_queue_raw(conn, "</stream:stream>", 16);
}

static int tcp_write_inflight(uvx_conn_t *conn);

static void tcp_on_write(uv_write_t *req, int status)
{
    uvx_conn_t *conn = req->data;
    tcp_transport_t *t = tcp_of(conn);
    t->writing = 0;
    buf_reset(&t->inflight);
    t->inflight_off = 0;
    if (t->inflight.cap > 256 * 1024)
        buf_free(&t->inflight); /* don't keep a burst's buffer for an idle session */
    if (status == UV_ECANCELED || t->tearing_down)
        return;
    if (status != 0) {
        conn_transport_failed(conn, "connection-lost");
        return;
    }
    conn_transport_wrote(conn);
    if (t->tls && tls_session_out(t->tls)->len)
        tcp_write_buf(conn, tls_session_out(t->tls)); /* handshake bytes */
    else if (conn->outq.len && !conn->paused)
        conn_flush_now(conn);
}

static int tcp_write_inflight(uvx_conn_t *conn)
{
    tcp_transport_t *t = tcp_of(conn);
    uv_buf_t b = uv_buf_init(t->inflight.data + t->inflight_off,
                             (unsigned)(t->inflight.len - t->inflight_off));
    t->write_req.data = conn;
    int rc = uv_write(&t->write_req, (uv_stream_t *)t->sock, &b, 1, tcp_on_write);
    if (rc == 0)
        t->writing = 1;
    return rc;
}

/* Writes `src` (the core's queue, or TLS's ciphertext): the kernel takes
 * what it can now and the rest goes to uv_write from its own buffer, so
 * `src` is empty afterwards either way. */
static int tcp_write_buf(uvx_conn_t *conn, buf_t *src)
{
    tcp_transport_t *t = tcp_of(conn);
    if (t->writing || src->len == 0)
        return 0; /* tcp_on_write sends the rest */
    uv_buf_t b = uv_buf_init(src->data, (unsigned)src->len);
    int n = uv_try_write((uv_stream_t *)t->sock, &b, 1);
    if (n == (int)src->len) {
        buf_reset(src);
        conn_transport_wrote(conn);
        return 0;
    }
    if (n < 0 && n != UV_EAGAIN) {
        conn_transport_failed(conn, "connection-lost");
        return n;
    }
    /* The kernel took part of it: hand the rest to uv_write. */
    buf_t tmp = t->inflight;
    t->inflight = *src;
    t->inflight_off = n > 0 ? (size_t)n : 0;
    *src = tmp;
    buf_reset(src);
    int rc = tcp_write_inflight(conn);
    if (rc != 0)
        conn_transport_failed(conn, "connection-lost");
    return rc;
}

static int tcp_flush(uvx_conn_t *conn)
{
    tcp_transport_t *t = tcp_of(conn);
    if (!t->connected || t->sock == NULL)
        return UVX_ESTATE;
    if (t->tls == NULL)
        return tcp_write_buf(conn, &conn->outq);
    if (t->writing)
        return 0; /* encrypt later: tcp_on_write flushes again */
    if (!tls_session_established(t->tls))
        return tcp_write_buf(conn, tls_session_out(t->tls)); /* plaintext waits */
    if (conn->outq.len) {
        int rc = tls_session_write(t->tls, conn->outq.data, conn->outq.len);
        buf_reset(&conn->outq);
        if (rc != 0) {
            conn_transport_failed(conn, tls_session_error(t->tls));
            return rc;
        }
    }
    return tcp_write_buf(conn, tls_session_out(t->tls));
}

static size_t tcp_in_flight(const uvx_conn_t *conn)
{
    const tcp_transport_t *t = tcp_of(conn);
    return t->writing ? t->inflight.len - t->inflight_off : 0;
}

static void tcp_on_closed(uv_handle_t *h)
{
    uvx_conn_t *conn = h->data;
    free(h);
    conn_handle_closed(conn);
}

static int tcp_close(uvx_conn_t *conn)
{
    tcp_transport_t *t = tcp_of(conn);
    int n = 0;
    if (t->tearing_down)
        return 0;
    t->tearing_down = 1;
    if (t->gai_pending) {
        uv_cancel((uv_req_t *)&t->gai); /* tcp_on_resolved still runs */
        n++;
    }
    if (t->sock && t->tls && tls_session_established(t->tls) && !t->writing &&
        tls_session_close_notify(t->tls) == 0) {
        /* best effort: the alert goes if the socket takes it at once */
        buf_t *out = tls_session_out(t->tls);
        uv_buf_t b = uv_buf_init(out->data, (unsigned)out->len);
        if (out->len)
            uv_try_write((uv_stream_t *)t->sock, &b, 1);
        buf_reset(out);
    }
    if (t->sock) {
        uv_close((uv_handle_t *)t->sock, tcp_on_closed);
        t->sock = NULL;
        n++;
    } else if (t->attempt_closing) {
        n++; /* tcp_on_attempt_closed reports it */
    }
    if (t->timer) {
        uv_timer_stop(t->timer);
        uv_close((uv_handle_t *)t->timer, tcp_on_closed);
        t->timer = NULL;
        n++;
    }
    t->connected = 0;
    return n;
}

const transport_vtable_t transport_tcp = {
    "tcp",       tcp_init,      tcp_connect,         tcp_open_stream, tcp_close_stream,
    tcp_flush,   tcp_start_tls, tcp_channel_binding, tcp_in_flight,   tcp_close,
    tcp_destroy,
};
