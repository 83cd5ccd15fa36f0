/*
 * What surrounds the BOSH transport (bosh.c): its options, the keepalive
 * session store (pluggable; by default a file the caller names, written
 * whole and renamed into place), attach and restore, and the uvx_bosh_*
 * calls. See bosh.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bosh.h"

/* ---- session store ---- */

static int bosh_file_save(const uvx_bosh_session_t *s, void *ud)
{
    const char *path = ud;
    char tmp[4096];
    if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= sizeof(tmp))
        return UVX_EINVAL;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0)
        return -errno;
    FILE *f = fdopen(fd, "w");
    if (f == NULL) {
        close(fd);
        return UVX_ENOMEM;
    }
    fprintf(f, "%s\n%s\n%llu\n%u %u %u\n%llu %u\n", s->jid, s->sid, (unsigned long long)s->rid,
            s->wait, s->hold, s->requests, (unsigned long long)s->next_rid, s->answered);
    if (fclose(f) != 0 || rename(tmp, path) != 0)
        return -errno;
    return 0;
}

static int bosh_read_line(FILE *f, char *buf, size_t cap)
{
    if (fgets(buf, (int)cap, f) == NULL)
        return -1;
    size_t n = strcspn(buf, "\n");
    if (buf[n] != '\n')
        return -1; /* too long */
    buf[n] = '\0';
    return n > 0 ? 0 : -1;
}

static int bosh_file_load(uvx_bosh_session_t *s, void *ud)
{
    FILE *f = fopen(ud, "r");
    if (f == NULL)
        return UVX_ENOTFOUND;
    char line[64];
    unsigned long long rid = 0, next = 0;
    int ok = bosh_read_line(f, s->jid, sizeof(s->jid)) == 0 &&
             bosh_read_line(f, s->sid, sizeof(s->sid)) == 0 &&
             bosh_read_line(f, line, sizeof(line)) == 0 && sscanf(line, "%llu", &rid) == 1 &&
             bosh_read_line(f, line, sizeof(line)) == 0 &&
             sscanf(line, "%u %u %u", &s->wait, &s->hold, &s->requests) == 3;
    /* "next_rid answered": absent from the files of earlier versions */
    if (ok && fgets(line, sizeof(line), f) != NULL)
        ok = sscanf(line, "%llu %u", &next, &s->answered) == 2;
    fclose(f);
    s->rid = rid;
    s->next_rid = next;
    return ok ? 0 : UVX_ENOTFOUND;
}

static void bosh_file_clear(void *ud)
{
    unlink(ud);
}

void bosh_store_save(bosh_transport_t *t)
{
    uvx_conn_t *conn = t->conn;
    if (!t->keepalive || !t->have_store || t->sid == NULL || conn->state != ST_CONNECTED ||
        t->terminate_wanted || t->terminate_sent)
        return;
    unsigned answered;
    uint64_t rid = bosh_unanswered(t, &answered);
    if (t->saved && t->saved_rid == rid && t->saved_next == t->next_rid &&
        t->saved_answered == answered)
        return;
    uvx_bosh_session_t s;
    memset(&s, 0, sizeof(s));
    snprintf(s.jid, sizeof(s.jid), "%s", uvx_conn_jid(conn));
    snprintf(s.sid, sizeof(s.sid), "%s", t->sid);
    s.rid = rid;
    s.wait = t->wait;
    s.hold = t->hold;
    s.requests = t->requests;
    s.next_rid = t->next_rid;
    s.answered = answered;
    if (t->store.save(&s, t->store.ud) != 0) {
        t->saved = 0; /* try again next time */
        return;
    }
    t->saved = 1;
    t->saved_rid = rid;
    t->saved_next = t->next_rid;
    t->saved_answered = answered;
}

void bosh_store_clear(bosh_transport_t *t)
{
    t->saved = 0;
    if (t->keepalive && t->have_store && t->store.clear)
        t->store.clear(t->store.ud);
}

/* ---- options ---- */

static char *bosh_join_cookies(const char *const *cookies)
{
    buf_t b = BUF_INIT;
    for (const char *const *c = cookies; *c; c++) {
        if (strpbrk(*c, "\r\n;") != NULL || strchr(*c, '=') == NULL) {
            buf_free(&b);
            return NULL;
        }
        if ((b.len && buf_append_str(&b, "; ")) || buf_append_str(&b, *c)) {
            buf_free(&b);
            return NULL;
        }
    }
    return b.data ? b.data : strdup("");
}

int bosh_set_options(uvx_conn_t *conn, const uvx_conn_options_t *opts)
{
    bosh_transport_t *t = bosh_of(conn);
    if (opts->bosh_content_type) {
        if (strpbrk(opts->bosh_content_type, "\r\n") != NULL)
            return UVX_EINVAL;
        if ((t->target.content_type = strdup(opts->bosh_content_type)) == NULL)
            return UVX_ENOMEM;
    }
    if (opts->bosh_cookies && opts->bosh_cookies[0] &&
        (t->cookie = bosh_join_cookies(opts->bosh_cookies)) == NULL)
        return UVX_EINVAL;
    t->target.cookie = t->cookie;
    t->keepalive = opts->bosh_keepalive;
    if (opts->bosh_store) {
        if (opts->bosh_store->save == NULL || opts->bosh_store->load == NULL)
            return UVX_EINVAL;
        t->store = *opts->bosh_store;
        t->have_store = 1;
    } else if (opts->bosh_session_file) {
        if ((t->session_file = strdup(opts->bosh_session_file)) == NULL)
            return UVX_ENOMEM;
        uvx_bosh_store_t file = {bosh_file_save, bosh_file_load, bosh_file_clear, t->session_file};
        t->store = file;
        t->have_store = 1;
    }
    return 0;
}

/* ---- public API ---- */

static void bosh_attach_failed(uvx_conn_t *conn, uvx_status_cb cb, void *ud, const char *cond)
{
    if (cb)
        cb(conn, UVX_STATUS_ATTACHFAIL, cond, NULL, ud);
}

/* uvx_attach(), and for uvx_restore() the rids to send again first (from
 * `rid` up to `next` - 1 but those in `answered`); next 0: none. */
static int bosh_attach(uvx_conn_t *conn, const char *jid, const char *sid, uint64_t rid,
                       uvx_status_cb cb, void *ud, unsigned wait, unsigned hold, unsigned wind,
                       uint64_t next, unsigned answered)
{
    if (conn == NULL)
        return UVX_EINVAL;
    if (!bosh_is(conn)) {
        bosh_attach_failed(conn, cb, ud, "not-bosh");
        return UVX_ENOTSUP;
    }
    if (conn->closing || (conn->state != ST_IDLE && conn->state != ST_DISCONNECTED))
        return UVX_ESTATE;
    char *domain = NULL;
    if (jid == NULL || sid == NULL || *sid == '\0' || rid == 0 || rid >= BOSH_RID_LIMIT ||
        strpbrk(sid, "<>&'\"") != NULL || uvx_jid_split(jid, NULL, &domain, NULL) != 0) {
        bosh_attach_failed(conn, cb, ud, "bad-format");
        return UVX_EINVAL;
    }
    bosh_transport_t *t = bosh_of(conn);
    char *resource = uvx_jid_resource(jid);
    free(conn->domain);
    conn->domain = domain;
    int rc = xstrdup_into(&conn->jid, jid);
    rc = rc ? rc : xstrdup_into(&conn->bound_jid, resource ? jid : NULL);
    free(resource);
    conn->bosh_wait = wait;
    conn->bosh_hold = hold;
    bosh_reset_session(t);
    rc = rc ? rc : xstrdup_into(&t->sid, sid);
    if (rc != 0)
        return rc;
    t->next_rid = rid;
    if (wind)
        t->requests = wind > BOSH_MAX_SLOTS ? BOSH_MAX_SLOTS : wind;
    t->attaching = 1;
    conn->status_cb = cb;
    conn->status_ud = ud;
    conn->secure = 0;
    if (conn->disconnection_timeout_ms == 0)
        conn->disconnection_timeout_ms = 3000;
    /* the parser primed as for a new session, but no session request */
    conn_transport_connected(conn);
    if (conn->closing || conn->state != ST_STREAM)
        return UVX_ENOMEM;
    conn->state = ST_CONNECTED;
    conn->authenticated = 1;
    handlers_authenticated(conn);
    /* before ATTACHED: nothing the callback sends may take one of these rids */
    if (next > rid)
        bosh_resend(t, rid, next, answered);
    conn_change_status(conn, UVX_STATUS_ATTACHED, NULL, NULL);
    if (!conn->closing && conn->state == ST_CONNECTED)
        bosh_pump(t); /* collect what the server holds for the session */
    return 0;
}

int uvx_attach(uvx_conn_t *conn, const char *jid, const char *sid, uint64_t rid, uvx_status_cb cb,
               void *ud, unsigned wait, unsigned hold, unsigned wind)
{
    return bosh_attach(conn, jid, sid, rid, cb, ud, wait, hold, wind, 0, 0);
}

/* Whether a cached session may be restored as `jid` (Strophe's test). */
static int bosh_session_matches(const char *cached, const char *jid)
{
    if (jid == NULL)
        return 1;
    if (uvx_jid_bare_equal(cached, jid))
        return 1;
    char *node = uvx_jid_node(jid);
    char *domain = uvx_jid_domain(cached);
    int same_domain = node == NULL && domain && strcmp(domain, jid) == 0;
    free(node);
    free(domain);
    return same_domain;
}

int uvx_restore(uvx_conn_t *conn, const char *jid, uvx_status_cb cb, void *ud)
{
    if (conn == NULL)
        return UVX_EINVAL;
    if (!bosh_is(conn))
        return UVX_ENOTFOUND;
    bosh_transport_t *t = bosh_of(conn);
    uvx_bosh_session_t s;
    memset(&s, 0, sizeof(s));
    if (!t->have_store || t->store.load(&s, t->store.ud) != 0 || s.sid[0] == '\0' || s.rid == 0 ||
        !bosh_session_matches(s.jid, jid))
        return UVX_ENOTFOUND;
    /* next_rid 0: `rid` is the next rid to send (an earlier version's cache) */
    if (s.next_rid != 0 &&
        (s.next_rid < s.rid || s.next_rid - s.rid > BOSH_MAX_SLOTS || s.next_rid >= BOSH_RID_LIMIT))
        return UVX_ENOTFOUND; /* not what bosh_store_save() writes */
    return bosh_attach(conn, s.jid, s.sid, s.rid, cb, ud, s.wait, s.hold, s.requests, s.next_rid,
                       s.answered);
}

int uvx_bosh_set_rid_hook(uvx_conn_t *conn, void (*cb)(uvx_conn_t *conn, uint64_t rid, void *ud),
                          void *ud)
{
    if (!bosh_is(conn))
        return UVX_ENOTSUP;
    bosh_transport_t *t = bosh_of(conn);
    t->rid_hook = cb;
    t->rid_ud = ud;
    return 0;
}

int uvx_bosh_set_body_hooks(uvx_conn_t *conn, uvx_xml_hook input, uvx_xml_hook output, void *ud)
{
    if (!bosh_is(conn))
        return UVX_ENOTSUP;
    bosh_transport_t *t = bosh_of(conn);
    t->body_in = input;
    t->body_out = output;
    t->body_ud = ud;
    return 0;
}

int uvx_bosh_session(const uvx_conn_t *conn, const char **sid, uint64_t *rid)
{
    if (!bosh_is(conn))
        return UVX_ENOTSUP;
    const bosh_transport_t *t = bosh_of(conn);
    if (t->sid == NULL)
        return UVX_ENOTFOUND;
    if (sid)
        *sid = t->sid;
    if (rid)
        *rid = t->next_rid;
    return 0;
}
