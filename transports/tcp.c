/*
 * RFC 6120 over TCP: one sock (lib/sock.h) carries the stream, with TLS
 * from the first byte for xmpps:// (XEP-0368) or after STARTTLS. The
 * core's queue goes to the socket as it is: the stream needs no framing.
 */
#include <stdlib.h>
#include <string.h>

#include "conn.h"
#include "sock.h"

typedef struct tcp_transport {
    sock_t *sock;
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

static void tcp_on_failed(sock_t *s, void *ud, const char *condition)
{
    (void)s;
    conn_transport_failed(ud, condition);
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
    (void)s;
    conn_handle_closed(conn);
}

static const sock_callbacks_t tcp_sock_callbacks = {
    tcp_on_connected, tcp_on_data,  tcp_on_eof,    tcp_on_failed,
    tcp_on_tls_ready, tcp_on_wrote, tcp_on_closed,
};

/* ---- vtable ---- */

static int tcp_connect(uvx_conn_t *conn)
{
    tcp_transport_t *t = tcp_of(conn);
    if (t->sock != NULL)
        return UVX_ESTATE;
    t->sock = sock_new(conn, &tcp_sock_callbacks, conn);
    if (t->sock == NULL)
        return UVX_ENOMEM;
    /* The certificate must name the XMPP domain (RFC 6120 §13.7.2), not
     * the host we dialled. */
    return sock_connect(t->sock, conn->host, conn->port, conn->direct_tls, conn->domain);
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
    if (t->sock == NULL)
        return 0;
    sock_close(t->sock); /* tcp_on_closed follows, never inside */
    t->sock = NULL;
    return 1;
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
