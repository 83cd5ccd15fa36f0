/*
 * The send path: stanzas are serialized into the connection's queue as
 * they are sent and the queue leaves in one write at the end of the loop
 * iteration (lib/ctx.c's prepare/check hooks) or at uvx_flush().
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conn.h"
#include "stanza.h"

static void conn_check_high_water(uvx_conn_t *conn)
{
    if (conn->high_water == 0 || conn->high_water_cb == NULL)
        return;
    size_t pending = conn->outq.len + conn->tp->in_flight(conn);
    if (!conn->above_high_water && pending > conn->high_water) {
        conn->above_high_water = 1;
        conn->high_water_cb(conn, 1, conn->high_water_ud);
    } else if (conn->above_high_water && pending <= conn->high_water / 2) {
        conn->above_high_water = 0;
        conn->high_water_cb(conn, 0, conn->high_water_ud);
    }
}

/* message_marks transports: remembers where the element just queued ends.
 * On failure the element is taken back out of the queue. */
static int conn_mark_message(uvx_conn_t *conn, size_t start)
{
    if (conn->noutq_marks == conn->outq_marks_cap) {
        size_t cap = conn->outq_marks_cap ? conn->outq_marks_cap * 2 : 16;
        size_t *marks = realloc(conn->outq_marks, cap * sizeof(*marks));
        if (marks == NULL) {
            conn->outq.len = start;
            if (conn->outq.data)
                conn->outq.data[start] = '\0';
            return UVX_ENOMEM;
        }
        conn->outq_marks = marks;
        conn->outq_marks_cap = cap;
    }
    conn->outq_marks[conn->noutq_marks++] = conn->outq.len;
    return 0;
}

void conn_outq_taken(uvx_conn_t *conn)
{
    conn->noutq_marks = 0;
    if (conn->outq_marks_cap > 1024) { /* don't keep a burst's marks for an idle session */
        free(conn->outq_marks);
        conn->outq_marks = NULL;
        conn->outq_marks_cap = 0;
    }
}

int conn_queue_raw(uvx_conn_t *conn, const char *data, size_t len)
{
    size_t start = conn->outq.len;
    int rc = buf_append(&conn->outq, data, len);
    if (rc == 0 && conn->tp->message_marks)
        rc = conn_mark_message(conn, start);
    if (rc)
        return rc;
    conn_mark_dirty(conn);
    conn_check_high_water(conn);
    return 0;
}

int conn_send_internal(uvx_conn_t *conn, const uvx_stanza_t *s)
{
    /* Straight into the queue: no intermediate string per stanza. Framed
     * transports carry no stream to inherit jabber:client from, so the
     * namespace is written out (RFC 7395 §3.3.3, XEP-0206 §7). */
    size_t start = conn->outq.len;
    int rc = stanza_serialize_into(&conn->outq, s, conn->tp->framed ? NULL : UVX_NS_CLIENT);
    if (rc == 0 && conn->tp->message_marks)
        rc = conn_mark_message(conn, start);
    if (rc)
        return rc;
    if (conn->xml_out)
        conn->xml_out(conn, s, conn->xml_ud);
    conn_mark_dirty(conn);
    conn_check_high_water(conn);
    return 0;
}

int conn_flush_now(uvx_conn_t *conn)
{
    conn_unmark_dirty(conn);
    if (conn->paused || conn->outq.len == 0 || conn->state < ST_STREAM || conn->state >= ST_CLOSING)
        return 0;
    if (conn->raw_out)
        conn->raw_out(conn, conn->outq.data, conn->outq.len, conn->raw_ud);
    return conn->tp->flush(conn);
}

void conn_transport_wrote(uvx_conn_t *conn)
{
    conn_check_high_water(conn);
}

static int conn_can_send(const uvx_conn_t *conn)
{
    return !conn->closing && conn->state >= ST_STREAM && conn->state <= ST_CONNECTED;
}

int uvx_send(uvx_conn_t *conn, const uvx_stanza_t *stanza)
{
    if (conn == NULL || stanza == NULL)
        return UVX_EINVAL;
    if (!conn_can_send(conn))
        return UVX_ESTATE;
    return conn_send_internal(conn, stanza);
}

int uvx_send_many(uvx_conn_t *conn, const uvx_stanza_t *const *stanzas, size_t n)
{
    if (conn == NULL || (stanzas == NULL && n > 0))
        return UVX_EINVAL;
    for (size_t i = 0; i < n; i++) {
        int rc = uvx_send(conn, stanzas[i]);
        if (rc)
            return rc;
    }
    return 0;
}

int uvx_send_raw(uvx_conn_t *conn, const char *data, size_t len)
{
    if (conn == NULL || (data == NULL && len > 0))
        return UVX_EINVAL;
    if (!conn_can_send(conn))
        return UVX_ESTATE;
    return conn_queue_raw(conn, data, len);
}

int uvx_flush(uvx_conn_t *conn)
{
    if (conn == NULL)
        return UVX_EINVAL;
    return conn_flush_now(conn);
}

void uvx_pause(uvx_conn_t *conn)
{
    conn->paused = 1;
    conn_unmark_dirty(conn);
}

void uvx_resume(uvx_conn_t *conn)
{
    conn->paused = 0;
    if (conn->outq.len)
        conn_mark_dirty(conn);
}

size_t uvx_queued_bytes(const uvx_conn_t *conn)
{
    return conn->outq.len;
}

void uvx_set_high_water(uvx_conn_t *conn, size_t high,
                        void (*cb)(uvx_conn_t *conn, int above, void *ud), void *ud)
{
    conn->high_water = high;
    conn->high_water_cb = cb;
    conn->high_water_ud = ud;
    conn->above_high_water = 0;
}

const char *uvx_get_unique_id(uvx_conn_t *conn, const char *suffix)
{
    conn->id_counter++;
    if (suffix && *suffix)
        snprintf(conn->id_buf, sizeof(conn->id_buf), "%s:%llu:%.60s", conn->id_prefix,
                 (unsigned long long)conn->id_counter, suffix);
    else
        snprintf(conn->id_buf, sizeof(conn->id_buf), "%s:%llu", conn->id_prefix,
                 (unsigned long long)conn->id_counter);
    return conn->id_buf;
}
