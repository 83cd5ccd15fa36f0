/*
 * Private: the transport vtable. The core (lib/conn.c) never includes a
 * concrete transport; it picks one from the service URL through
 * transport_for_service() and talks to it through this table.
 */
#ifndef UVX_TRANSPORT_H
#define UVX_TRANSPORT_H

#include <stddef.h>

#include "uvxmpp.h"

typedef struct transport_vtable {
    const char *name;
    /* Framing, as the core must know it:
     * framed: the wire carries whole elements one at a time (RFC 7395
     *   messages, XEP-0124 bodies). The core primes its parser once with a
     *   synthetic <stream:stream> start tag so that every element fed
     *   comes out as a depth-1 stanza, never resets it on a stream restart,
     *   and passes each element to on_element() first. Stanzas are written
     *   with xmlns='jabber:client' on the top element.
     * message_marks: the core records where each queued element ends
     *   (conn->outq_marks) so that flush() can send one message each. */
    int framed;
    int message_marks;
    /* Allocates the transport's per-connection state from the service
     * (already split into host/port by the core) into conn->transport. */
    int (*init)(uvx_conn_t *conn);
    /* Starts resolving/connecting; calls conn_transport_connected() or
     * conn_transport_failed() later. */
    int (*connect)(uvx_conn_t *conn);
    /* Writes the stream header (RFC 6120 <stream:stream>, RFC 7395 <open/>). */
    int (*open_stream)(uvx_conn_t *conn);
    /* Writes the stream close (</stream:stream>, <close/>). */
    int (*close_stream)(uvx_conn_t *conn);
    /* Hands out queued bytes (conn->outq); returns 0 or an error. */
    int (*flush)(uvx_conn_t *conn);
    /* Starts TLS on the open connection (STARTTLS after <proceed/>); calls
     * conn_transport_tls_ready() or conn_transport_failed() later. NULL
     * when the transport cannot. */
    int (*start_tls)(uvx_conn_t *conn);
    /* Channel-binding data of the TLS layer (type "tls-unique"); 0, or
     * UVX_ENOTSUP when there is no TLS or no such binding. May be NULL. */
    int (*channel_binding)(uvx_conn_t *conn, const char *type, unsigned char *out, size_t cap,
                           size_t *len);
    /* Bytes handed to the transport but not yet written out. */
    size_t (*in_flight)(const uvx_conn_t *conn);
    /* Closes every handle; calls conn_handle_closed() once per handle that
     * had to be closed, and returns how many it is closing. */
    int (*close)(uvx_conn_t *conn);
    /* Frees the per-connection state (all handles are closed). */
    void (*destroy)(uvx_conn_t *conn);
    /* framed transports: sees each element the parser delivers before the
     * core does; returns 1 when it consumed it (<open/>, <close/>, a BOSH
     * <body/> whose children it hands on with conn_transport_stanza()),
     * 0 to let the core treat it as a stanza. NULL for TCP. */
    int (*on_element)(uvx_conn_t *conn, uvx_stanza_t *elem);
} transport_vtable_t;

extern const transport_vtable_t transport_tcp;
extern const transport_vtable_t transport_websocket;
extern const transport_vtable_t transport_bosh;

/* Test and fuzzing seam (transports/websocket.c): runs `conn` (ws:// or
 * wss://, uvx_connect() called, its socket not yet connected) as if the
 * socket had connected and sent the upgrade request with Sec-WebSocket-Key
 * `key`, then feeds `data` in pieces of `chunk` bytes (0: at once) through
 * the read path. The real socket is dropped; writes stay buffered. */
void ws_debug_feed(uvx_conn_t *conn, const char *key, const char *data, size_t len, size_t chunk);

#endif
