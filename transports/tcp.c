/*
 * RFC 6120 over TCP: one sock (lib/sock.h) carries the stream, with TLS
 * from the first byte for xmpps:// (XEP-0368) or after STARTTLS. The
 * core's queue goes to the socket as it is: the stream needs no framing.
 * A bare-domain service first looks up its SRV records (lib/resolve.h)
 * and tries each target in turn, each with or without direct TLS.
 */
#include <stdlib.h>
#include <string.h>

#include "conn.h"
#include "resolve.h"
#include "sock.h"

typedef struct tcp_transport {
    sock_t *sock;
    /* SRV: the lookup under way, then the targets and the next to try */
    resolve_req_t *srv_req;
    resolve_result_t srv;
    size_t srv_next;
    int srv_abandoned; /* socks of failed targets still closing */
    int tearing_down;  /* tcp_close() ran: every closing sock is counted */
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

static void tcp_destroy(uvx_conn_t *conn)
{
    tcp_transport_t *t = tcp_of(conn);
    resolve_srv_cancel(t->srv_req);
    resolve_result_free(&t->srv);
    free(conn->transport);
    conn->transport = NULL;
}

/* ---- sock events ---- */

static void tcp_on_connected(sock_t *s, void *ud)
{
    uvx_conn_t *conn = ud;
    conn->secure = sock_secure(s);
    conn_transport_connected(conn);
}

static void tcp_on_data(sock_t *s, void *ud, const char *data, size_t len)
{
    (void)s;
    conn_transport_data(ud, data, len);
}

static void tcp_on_eof(sock_t *s, void *ud)
{
    (void)s;
    conn_transport_eof(ud);
}

static int tcp_try_srv_target(uvx_conn_t *conn, const char *last_condition);

static void tcp_on_failed(sock_t *s, void *ud, const char *condition)
{
    uvx_conn_t *conn = ud;
    tcp_transport_t *t = tcp_of(conn);
    /* RFC 6120 §3.2.1: a target that cannot be reached (or whose direct
     * TLS fails) before the stream starts gives way to the next one. */
    if (s == t->sock && conn->state == ST_CONNECTING && t->srv_next < t->srv.n) {
        t->sock = NULL;
        t->srv_abandoned++;
        sock_close(s); /* tcp_on_closed counts it down */
        tcp_try_srv_target(conn, condition);
        return;
    }
    conn_transport_failed(conn, condition);
}

static void tcp_on_tls_ready(sock_t *s, void *ud)
{
    uvx_conn_t *conn = ud;
    (void)s;
    conn->secure = 1;
    conn_transport_tls_ready(conn);
}

static void tcp_on_wrote(sock_t *s, void *ud)
{
    uvx_conn_t *conn = ud;
    (void)s;
    conn_transport_wrote(conn);
    if (conn->outq.len && !conn->paused)
        conn_flush_now(conn);
}

static void tcp_on_closed(sock_t *s, void *ud)
{
    uvx_conn_t *conn = ud;
    tcp_transport_t *t = tcp_of(conn);
    (void)s;
    if (!t->tearing_down) { /* a failed SRV target's sock, not counted by tcp_close */
        t->srv_abandoned--;
        return;
    }
    conn_handle_closed(conn);
}

static const sock_callbacks_t tcp_sock_callbacks = {
    tcp_on_connected, tcp_on_data,  tcp_on_eof,    tcp_on_failed,
    tcp_on_tls_ready, tcp_on_wrote, tcp_on_closed,
};

/* ---- vtable ---- */

static int tcp_connect_to(uvx_conn_t *conn, const char *host, int port, int direct_tls)
{
    tcp_transport_t *t = tcp_of(conn);
    t->sock = sock_new(conn, &tcp_sock_callbacks, conn);
    if (t->sock == NULL)
        return UVX_ENOMEM;
    /* The certificate must name the XMPP domain (RFC 6120 §13.7.2), not
     * the host we dialled. */
    return sock_connect(t->sock, host, port, direct_tls, conn->domain);
}

/* ---- SRV (bare-domain services) ---- */

/* A service without a scheme and without a port names a domain whose SRV
 * records say where to connect; a literal IP or a localhost name (RFC
 * 6761: never sent to DNS) is dialled as it is. */
static int tcp_wants_srv(const uvx_conn_t *conn)
{
    const char *h = conn->host;
    size_t n = strlen(h);
    unsigned char addr[16];
    if (strstr(conn->service, "://") || strchr(conn->service, ':') || strchr(conn->service, '/'))
        return 0;
    if (uv_inet_pton(AF_INET, h, addr) == 0 || uv_inet_pton(AF_INET6, h, addr) == 0)
        return 0;
    return strcmp(h, "localhost") != 0 && (n < 10 || strcmp(h + n - 10, ".localhost") != 0);
}

/* Connects to the next SRV target; when there is none left, fails with
 * the last target's condition. */
static int tcp_try_srv_target(uvx_conn_t *conn, const char *last_condition)
{
    tcp_transport_t *t = tcp_of(conn);
    while (t->srv_next < t->srv.n) {
        const resolve_target_t *target = &t->srv.targets[t->srv_next++];
        int rc = tcp_connect_to(conn, target->host, target->port, target->direct_tls);
        if (rc == 0)
            return 0;
        if (t->sock) { /* sock_connect refused at once: on to the next */
            t->srv_abandoned++;
            sock_close(t->sock);
            t->sock = NULL;
        }
        last_condition = rc == UVX_ENOMEM ? "out-of-memory" : "host-unresolved";
    }
    conn_transport_failed(conn, last_condition);
    return 0;
}

static void tcp_on_srv(void *ud, int status, resolve_result_t *result)
{
    uvx_conn_t *conn = ud;
    tcp_transport_t *t = tcp_of(conn);
    t->srv_req = NULL;
    resolve_result_free(&t->srv);
    t->srv = *result;
    t->srv_next = 0;
    if (status != 0) { /* "." records only (service not offered), or no memory */
        conn_transport_failed(conn, status == UVX_ENOMEM ? "out-of-memory" : "host-unresolved");
        return;
    }
    tcp_try_srv_target(conn, "host-unresolved");
}

static int tcp_connect(uvx_conn_t *conn)
{
    tcp_transport_t *t = tcp_of(conn);
    if (t->sock != NULL || t->srv_req != NULL || t->srv_abandoned > 0)
        return UVX_ESTATE;
    t->tearing_down = 0;
    resolve_result_free(&t->srv);
    t->srv_next = 0;
    if (tcp_wants_srv(conn))
        return resolve_srv_start(conn->ctx->loop, conn->host, tcp_on_srv, conn, &t->srv_req);
    return tcp_connect_to(conn, conn->host, conn->port, conn->direct_tls);
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

static int tcp_flush(uvx_conn_t *conn)
{
    tcp_transport_t *t = tcp_of(conn);
    if (t->sock == NULL)
        return UVX_ESTATE;
    int rc = sock_write(t->sock, &conn->outq);
    if (rc == 0 && conn->outq.len == 0 && sock_in_flight(t->sock) == 0)
        conn_transport_wrote(conn); /* all of it went at once */
    return rc;
}

static int tcp_start_tls(uvx_conn_t *conn)
{
    tcp_transport_t *t = tcp_of(conn);
    if (t->sock == NULL)
        return UVX_ESTATE;
    return sock_start_tls(t->sock, conn->domain);
}

static int tcp_channel_binding(uvx_conn_t *conn, const char *type, unsigned char *out, size_t cap,
                               size_t *len)
{
    tcp_transport_t *t = tcp_of(conn);
    if (t->sock == NULL)
        return UVX_ENOTSUP;
    return sock_channel_binding(t->sock, type, out, cap, len);
}

static size_t tcp_in_flight(const uvx_conn_t *conn)
{
    const tcp_transport_t *t = tcp_of(conn);
    return t->sock ? sock_in_flight(t->sock) : 0;
}

static int tcp_close(uvx_conn_t *conn)
{
    tcp_transport_t *t = tcp_of(conn);
    t->tearing_down = 1;
    resolve_srv_cancel(t->srv_req); /* it frees itself; no handle of ours */
    t->srv_req = NULL;
    int n = t->srv_abandoned; /* their tcp_on_closed is still to come */
    t->srv_abandoned = 0;
    if (t->sock == NULL)
        return n;
    sock_close(t->sock); /* tcp_on_closed follows, never inside */
    t->sock = NULL;
    return n + 1;
}

const transport_vtable_t transport_tcp = {
    .name = "tcp",
    .init = tcp_init,
    .connect = tcp_connect,
    .open_stream = tcp_open_stream,
    .close_stream = tcp_close_stream,
    .flush = tcp_flush,
    .start_tls = tcp_start_tls,
    .channel_binding = tcp_channel_binding,
    .in_flight = tcp_in_flight,
    .close = tcp_close,
    .destroy = tcp_destroy,
};
