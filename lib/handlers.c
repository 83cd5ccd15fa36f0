/*
 * Stanza handlers, timed handlers and pending IQs.
 *
 * Handlers with an id criterion live in a hash table keyed by that id, so
 * thousands of outstanding send_iq() calls cost nothing per stanza; the
 * rest live in one list. Dispatch collects the matching handlers of both
 * and runs them in registration order.
 */
#include <stdlib.h>
#include <string.h>

#include "conn.h"

struct uvx_handler {
    uvx_handler_cb cb;
    void *ud;
    char *ns;
    char *name;
    char *types; /* space-separated */
    char *id;
    char *from;
    unsigned flags;
    int user;
    int dead;   /* removed; freed once no dispatch can see it */
    int active; /* 0 while added during a dispatch */
    uint64_t seq;
    uvx_handler_t *next;
    uvx_handler_t **pprev;
    struct pending_iq *iq; /* set for send_iq/send_presence handlers */
};

/* The timer comes first so a uv_timer_t * is also the owner's address. */
typedef struct pending_iq {
    uv_timer_t timer;
    uvx_conn_t *conn;
    uvx_handler_t *handler;
    uvx_handler_cb cb;
    uvx_handler_cb errb;
    void *ud;
    char *expected_from; /* the iq's to, or NULL */
    int is_presence;
    int timer_on;
} pending_iq_t;

struct uvx_timed_handler {
    uv_timer_t timer;
    uvx_conn_t *conn;
    uvx_timed_cb cb;
    void *ud;
    unsigned period;
    int user;
    int started;
    uvx_timed_handler_t *next;
    uvx_timed_handler_t **pprev;
};

struct handler_table {
    uvx_handler_t **buckets; /* handlers with an id */
    size_t nbuckets;
    size_t nids;
    uvx_handler_t *general; /* handlers without an id */
    uvx_handler_t *pending; /* added during a dispatch */
    uvx_handler_t *graveyard;
    uvx_timed_handler_t *timed;
    uint64_t seq;
    int dispatching;
};

static size_t hash_id(const char *s)
{
    size_t h = 5381; /* djb2: ids are short and mostly ours */
    while (*s)
        h = h * 33 + (unsigned char)*s++;
    return h;
}

int handlers_init(uvx_conn_t *conn)
{
    conn->handlers = calloc(1, sizeof(handler_table_t));
    return conn->handlers ? 0 : UVX_ENOMEM;
}

static void list_push(uvx_handler_t **head, uvx_handler_t *h)
{
    h->next = *head;
    if (*head)
        (*head)->pprev = &h->next;
    h->pprev = head;
    *head = h;
}

static void list_unlink(uvx_handler_t *h)
{
    if (h->pprev == NULL)
        return;
    *h->pprev = h->next;
    if (h->next)
        h->next->pprev = h->pprev;
    h->next = NULL;
    h->pprev = NULL;
}

static int table_grow(handler_table_t *t)
{
    size_t n = t->nbuckets ? t->nbuckets * 2 : 16;
    uvx_handler_t **b = calloc(n, sizeof(*b));
    if (b == NULL)
        return UVX_ENOMEM;
    for (size_t i = 0; i < t->nbuckets; i++) {
        uvx_handler_t *h = t->buckets[i];
        while (h) {
            uvx_handler_t *next = h->next;
            h->pprev = NULL;
            list_push(&b[hash_id(h->id) & (n - 1)], h);
            h = next;
        }
    }
    free(t->buckets);
    t->buckets = b;
    t->nbuckets = n;
    return 0;
}

static void table_insert(handler_table_t *t, uvx_handler_t *h)
{
    if (h->id) {
        list_push(&t->buckets[hash_id(h->id) & (t->nbuckets - 1)], h);
        t->nids++;
    } else {
        list_push(&t->general, h);
    }
}

static void handler_free(uvx_handler_t *h)
{
    free(h->ns);
    free(h->name);
    free(h->types);
    free(h->id);
    free(h->from);
    free(h);
}

static int dup_opt(char **dst, const char *s)
{
    *dst = NULL;
    return s && (*dst = strdup(s)) == NULL ? UVX_ENOMEM : 0;
}

static uvx_handler_t *handler_add(uvx_conn_t *conn, int user, uvx_handler_cb cb, void *ud,
                                  const char *ns, const char *name, const char *type,
                                  const char *id, const char *from, unsigned flags)
{
    handler_table_t *t = conn->handlers;
    if (cb == NULL)
        return NULL;
    if (id && t->nids + 1 > t->nbuckets * 2 && table_grow(t) != 0)
        return NULL;
    uvx_handler_t *h = calloc(1, sizeof(*h));
    if (h == NULL)
        return NULL;
    if (dup_opt(&h->ns, ns) || dup_opt(&h->name, name) || dup_opt(&h->types, type) ||
        dup_opt(&h->id, id) || dup_opt(&h->from, from)) {
        handler_free(h);
        return NULL;
    }
    h->cb = cb;
    h->ud = ud;
    h->flags = flags;
    h->user = user;
    h->seq = ++t->seq;
    if (t->dispatching) {
        list_push(&t->pending, h); /* takes effect from the next stanza */
    } else {
        h->active = 1;
        table_insert(t, h);
    }
    return h;
}

uvx_handler_t *uvx_add_handler(uvx_conn_t *conn, uvx_handler_cb cb, void *ud, const char *ns,
                               const char *name, const char *type, const char *id, const char *from,
                               unsigned flags)
{
    if (conn == NULL)
        return NULL;
    return handler_add(conn, 1, cb, ud, ns, name, type, id, from, flags);
}

uvx_handler_t *handlers_add_system(uvx_conn_t *conn, uvx_handler_cb cb, void *ud, const char *ns,
                                   const char *name, const char *type, const char *id,
                                   const char *from)
{
    return handler_add(conn, 0, cb, ud, ns, name, type, id, from, 0);
}

static void pending_iq_release(pending_iq_t *p);

/* Unlinks a handler; frees it now, or after the running dispatch. */
static void handler_remove(uvx_conn_t *conn, uvx_handler_t *h)
{
    handler_table_t *t = conn->handlers;
    if (h->dead)
        return;
    h->dead = 1;
    if (h->active && h->id)
        t->nids--;
    list_unlink(h);
    if (h->iq) {
        pending_iq_release(h->iq);
        h->iq = NULL;
    }
    if (t->dispatching)
        list_push(&t->graveyard, h);
    else
        handler_free(h);
}

int uvx_delete_handler(uvx_conn_t *conn, uvx_handler_t *h)
{
    if (conn == NULL || h == NULL)
        return UVX_EINVAL;
    if (h->dead || h->pprev == NULL)
        return UVX_ENOTFOUND;
    handler_remove(conn, h);
    return 0;
}

/* ---- matching ---- */

static int ns_equal(const char *a, const char *b, int ignore_fragment)
{
    if (a == NULL || b == NULL)
        return 0;
    if (!ignore_fragment)
        return strcmp(a, b) == 0;
    size_t la = strcspn(a, "#"), lb = strcspn(b, "#");
    return la == lb && strncmp(a, b, la) == 0;
}

/* The element's namespace or that of any descendant element. */
static int ns_matches(const uvx_stanza_t *s, const char *ns, int ignore_fragment)
{
    if (ns_equal(uvx_stanza_ns(s), ns, ignore_fragment))
        return 1;
    for (uvx_stanza_t *c = uvx_stanza_children(s); c; c = uvx_stanza_next(c))
        if (uvx_stanza_is_element(c) && ns_matches(c, ns, ignore_fragment))
            return 1;
    return 0;
}

static int type_matches(const char *types, const char *type)
{
    if (type == NULL)
        return 0;
    size_t tlen = strlen(type);
    for (const char *p = types; *p;) {
        size_t n = strcspn(p, " ");
        if (n == tlen && strncmp(p, type, n) == 0)
            return 1;
        p += n;
        p += strspn(p, " ");
    }
    return 0;
}

/* What handlers match on, each looked up once per stanza and only when a
 * handler asks (the name nearly always). */
typedef struct stanza_keys {
    const uvx_stanza_t *s;
    const char *name, *id, *type, *from;
    unsigned char have_id, have_type, have_from;
} stanza_keys_t;

static void keys_init(stanza_keys_t *k, const uvx_stanza_t *s)
{
    k->s = s;
    k->name = uvx_stanza_name(s);
    k->id = k->type = k->from = NULL;
    k->have_id = k->have_type = k->have_from = 0;
}

static const char *keys_id(stanza_keys_t *k)
{
    if (!k->have_id) {
        k->id = uvx_stanza_id(k->s);
        k->have_id = 1;
    }
    return k->id;
}

static const char *keys_type(stanza_keys_t *k)
{
    if (!k->have_type) {
        k->type = uvx_stanza_type(k->s);
        k->have_type = 1;
    }
    return k->type;
}

static const char *keys_from(stanza_keys_t *k)
{
    if (!k->have_from) {
        k->from = uvx_stanza_from(k->s);
        k->have_from = 1;
    }
    return k->from;
}

static int handler_matches(const uvx_handler_t *h, stanza_keys_t *k)
{
    if (h->name && !(k->name && strcmp(h->name, k->name) == 0))
        return 0;
    if (h->types && !type_matches(h->types, keys_type(k)))
        return 0;
    if (h->id && !(keys_id(k) && strcmp(h->id, k->id) == 0))
        return 0;
    if (h->from) {
        const char *from = keys_from(k);
        if (from == NULL)
            return 0;
        if (h->flags & UVX_MATCH_BARE_FROM ? !uvx_jid_bare_equal(from, h->from)
                                           : strcmp(from, h->from) != 0)
            return 0;
    }
    if (h->ns && !ns_matches(k->s, h->ns, (h->flags & UVX_IGNORE_NS_FRAGMENT) != 0))
        return 0;
    return 1;
}

/* ---- dispatch ---- */

typedef struct match_list {
    uvx_handler_t **items;
    size_t n, cap;
    uvx_handler_t *local[16];
} match_list_t;

static int match_push(match_list_t *m, uvx_handler_t *h)
{
    if (m->n == m->cap) {
        size_t cap = m->cap * 2;
        uvx_handler_t **items = malloc(cap * sizeof(*items));
        if (items == NULL)
            return UVX_ENOMEM;
        memcpy(items, m->items, m->n * sizeof(*items));
        if (m->items != m->local)
            free(m->items);
        m->items = items;
        m->cap = cap;
    }
    m->items[m->n++] = h;
    return 0;
}

static void match_collect(uvx_conn_t *conn, uvx_handler_t *h, stanza_keys_t *k, match_list_t *m)
{
    for (; h; h = h->next)
        if ((conn->authenticated || !h->user) && handler_matches(h, k))
            match_push(m, h);
}

static void match_sort(match_list_t *m)
{
    for (size_t i = 1; i < m->n; i++) { /* few entries: insertion sort */
        uvx_handler_t *h = m->items[i];
        size_t j = i;
        while (j > 0 && m->items[j - 1]->seq > h->seq) {
            m->items[j] = m->items[j - 1];
            j--;
        }
        m->items[j] = h;
    }
}

static void dispatch_finish(uvx_conn_t *conn)
{
    handler_table_t *t = conn->handlers;
    while (t->graveyard) {
        uvx_handler_t *h = t->graveyard;
        list_unlink(h);
        handler_free(h);
    }
    while (t->pending) {
        uvx_handler_t *h = t->pending;
        list_unlink(h);
        if (h->id && t->nids + 1 > t->nbuckets * 2)
            table_grow(t); /* on failure the table is just more loaded */
        h->active = 1;
        table_insert(t, h);
    }
}

static void reply_service_unavailable(uvx_conn_t *conn, const uvx_stanza_t *s)
{
    const char *name = uvx_stanza_name(s);
    const char *type = uvx_stanza_type(s);
    if (!conn->authenticated || name == NULL || strcmp(name, "iq") != 0 || type == NULL ||
        (strcmp(type, "get") != 0 && strcmp(type, "set") != 0))
        return;
    uvx_stanza_t *err =
        uvx_stanza_error_reply(s, UVX_ERROR_TYPE_CANCEL, "service-unavailable", NULL, 1);
    if (err) {
        conn_send_internal(conn, err);
        uvx_stanza_unref(err);
    }
}

void handlers_dispatch(uvx_conn_t *conn, uvx_stanza_t *stanza)
{
    handler_table_t *t = conn->handlers;
    match_list_t m;
    m.items = m.local;
    m.n = 0;
    m.cap = sizeof(m.local) / sizeof(m.local[0]);
    stanza_keys_t keys;
    keys_init(&keys, stanza);
    /* Only id handlers live in the table: without any, the id is not needed. */
    if (t->nids && t->nbuckets && keys_id(&keys))
        match_collect(conn, t->buckets[hash_id(keys.id) & (t->nbuckets - 1)], &keys, &m);
    match_collect(conn, t->general, &keys, &m);
    if (m.n > 1)
        match_sort(&m);

    t->dispatching++;
    for (size_t i = 0; i < m.n && !conn->closing; i++) {
        uvx_handler_t *h = m.items[i];
        if (h->dead)
            continue; /* deleted by an earlier handler of this stanza */
        if (!h->cb(conn, stanza, h->ud))
            handler_remove(conn, h);
    }
    t->dispatching--;
    if (t->dispatching == 0)
        dispatch_finish(conn);
    if (m.n == 0 && !conn->closing && conn->state == ST_CONNECTED)
        reply_service_unavailable(conn, stanza);
    if (m.items != m.local)
        free(m.items);
}

/* ---- timed handlers ---- */

static void timed_on_closed(uv_handle_t *h)
{
    uvx_timed_handler_t *th = (uvx_timed_handler_t *)h;
    uvx_conn_t *conn = th->conn;
    free(th);
    conn_handle_closed(conn);
}

static void timed_unlink(uvx_timed_handler_t *th)
{
    if (th->pprev == NULL)
        return;
    *th->pprev = th->next;
    if (th->next)
        th->next->pprev = th->pprev;
    th->next = NULL;
    th->pprev = NULL;
}

static void timed_remove(uvx_conn_t *conn, uvx_timed_handler_t *th)
{
    timed_unlink(th);
    conn->pending_closes++;
    uv_close((uv_handle_t *)&th->timer, timed_on_closed);
}

static void timed_on_fire(uv_timer_t *timer)
{
    uvx_timed_handler_t *th = (uvx_timed_handler_t *)timer;
    if (!th->cb(th->conn, th->ud) && th->pprev != NULL)
        timed_remove(th->conn, th);
}

static void timed_start(uvx_timed_handler_t *th)
{
    th->started = 1;
    uv_timer_start(&th->timer, timed_on_fire, th->period, th->period ? th->period : 1);
}

uvx_timed_handler_t *uvx_add_timed_handler(uvx_conn_t *conn, unsigned period_ms, uvx_timed_cb cb,
                                           void *ud)
{
    if (conn == NULL || cb == NULL || conn->closing)
        return NULL;
    uvx_timed_handler_t *th = calloc(1, sizeof(*th));
    if (th == NULL)
        return NULL;
    uv_timer_init(conn->ctx->loop, &th->timer);
    th->conn = conn;
    th->cb = cb;
    th->ud = ud;
    th->period = period_ms;
    th->user = 1;
    handler_table_t *t = conn->handlers;
    th->next = t->timed;
    if (t->timed)
        t->timed->pprev = &th->next;
    th->pprev = &t->timed;
    t->timed = th;
    if (conn->authenticated)
        timed_start(th);
    return th;
}

int uvx_delete_timed_handler(uvx_conn_t *conn, uvx_timed_handler_t *th)
{
    if (conn == NULL || th == NULL)
        return UVX_EINVAL;
    if (th->pprev == NULL)
        return UVX_ENOTFOUND;
    timed_remove(conn, th);
    return 0;
}

void handlers_authenticated(uvx_conn_t *conn)
{
    for (uvx_timed_handler_t *th = conn->handlers->timed; th; th = th->next)
        if (!th->started)
            timed_start(th);
}

/* ---- send_iq / send_presence ---- */

static void pending_on_closed(uv_handle_t *h)
{
    pending_iq_t *p = (pending_iq_t *)h;
    uvx_conn_t *conn = p->conn;
    free(p->expected_from);
    free(p);
    conn_handle_closed(conn);
}

/* Frees the pending record (its timer closes asynchronously). */
static void pending_iq_release(pending_iq_t *p)
{
    p->conn->pending_closes++;
    uv_close((uv_handle_t *)&p->timer, pending_on_closed);
}

static void pending_on_timeout(uv_timer_t *timer)
{
    pending_iq_t *p = (pending_iq_t *)timer;
    uvx_conn_t *conn = p->conn;
    uvx_handler_cb errb = p->errb;
    void *ud = p->ud;
    handler_remove(conn, p->handler); /* releases p */
    if (errb)
        errb(conn, NULL, ud);
}

/* RFC 6120 §10.1: a reply must come from where the request went (or, for
 * a request to our own account or server, from it or with no from). */
static int reply_from_ok(uvx_conn_t *conn, const pending_iq_t *p, const char *from)
{
    const char *me = uvx_conn_jid(conn);
    if (p->expected_from) {
        if (from && strcmp(from, p->expected_from) == 0)
            return 1;
        /* to our own account: the server may answer without a from */
        return uvx_jid_bare_equal(p->expected_from, me) &&
               (from == NULL || uvx_jid_bare_equal(from, me));
    }
    if (from == NULL)
        return 1;
    char *bare = uvx_jid_bare(me);
    int ok = strcmp(from, me) == 0 || (bare && strcmp(from, bare) == 0) ||
             (conn->domain && strcmp(from, conn->domain) == 0);
    free(bare);
    return ok;
}

static int pending_on_reply(uvx_conn_t *conn, uvx_stanza_t *s, void *ud)
{
    pending_iq_t *p = ud;
    const char *type = uvx_stanza_type(s);
    int is_error = type && strcmp(type, "error") == 0;
    if (!p->is_presence && !(is_error || (type && strcmp(type, "result") == 0)))
        return 1; /* an iq get/set reusing our id is not our answer */
    if (!reply_from_ok(conn, p, uvx_stanza_from(s)))
        return 1; /* spoofed or stray: keep waiting */
    uvx_handler_cb cb = is_error ? p->errb : p->cb;
    void *cb_ud = p->ud;
    uvx_stanza_ref(s);
    handler_remove(conn, p->handler); /* releases p */
    if (cb)
        cb(conn, s, cb_ud);
    uvx_stanza_unref(s);
    return 1; /* already removed */
}

static int send_tracked(uvx_conn_t *conn, uvx_stanza_t *st, const char *element, uvx_handler_cb cb,
                        uvx_handler_cb errb, void *ud, unsigned timeout_ms)
{
    if (conn == NULL || st == NULL)
        return UVX_EINVAL;
    const char *name = uvx_stanza_name(st);
    if (name == NULL || strcmp(name, element) != 0)
        return UVX_EINVAL;
    if (conn->closing || conn->state < ST_STREAM || conn->state > ST_CONNECTED)
        return UVX_ESTATE;
    if (uvx_stanza_id(st) == NULL && uvx_stanza_set_id(st, uvx_get_unique_id(conn, element)))
        return UVX_ENOMEM;
    pending_iq_t *p = calloc(1, sizeof(*p));
    if (p == NULL)
        return UVX_ENOMEM;
    p->conn = conn;
    p->cb = cb;
    p->errb = errb;
    p->ud = ud;
    p->is_presence = strcmp(element, "presence") == 0;
    if (uvx_stanza_to(st) && (p->expected_from = strdup(uvx_stanza_to(st))) == NULL) {
        free(p);
        return UVX_ENOMEM;
    }
    p->handler = handlers_add_system(conn, pending_on_reply, p, NULL, element, NULL,
                                     uvx_stanza_id(st), NULL);
    if (p->handler == NULL) {
        free(p->expected_from);
        free(p);
        return UVX_ENOMEM;
    }
    p->handler->iq = p;
    uv_timer_init(conn->ctx->loop, &p->timer);
    if (timeout_ms)
        uv_timer_start(&p->timer, pending_on_timeout, timeout_ms, 0);
    int rc = conn_send_internal(conn, st);
    if (rc)
        handler_remove(conn, p->handler);
    return rc;
}

int uvx_send_iq(uvx_conn_t *conn, uvx_stanza_t *iq, uvx_handler_cb cb, uvx_handler_cb errb,
                void *ud, unsigned timeout_ms)
{
    return send_tracked(conn, iq, "iq", cb, errb, ud, timeout_ms);
}

int uvx_send_presence(uvx_conn_t *conn, uvx_stanza_t *pres, uvx_handler_cb cb, uvx_handler_cb errb,
                      void *ud, unsigned timeout_ms)
{
    return send_tracked(conn, pres, "presence", cb, errb, ud, timeout_ms);
}

/* ---- teardown ---- */

static void clear_list(uvx_conn_t *conn, uvx_handler_t **head, int notify)
{
    while (*head) {
        uvx_handler_t *h = *head;
        uvx_handler_cb errb = h->iq ? h->iq->errb : NULL;
        void *ud = h->iq ? h->iq->ud : NULL;
        if (h->dead) { /* pending list entries are never dead; be safe */
            list_unlink(h);
            continue;
        }
        handler_remove(conn, h);
        if (notify && errb)
            errb(conn, NULL, ud);
    }
}

void handlers_clear(uvx_conn_t *conn, int notify)
{
    handler_table_t *t = conn->handlers;
    for (size_t i = 0; i < t->nbuckets; i++)
        clear_list(conn, &t->buckets[i], notify);
    clear_list(conn, &t->general, notify);
    clear_list(conn, &t->pending, notify);
    t->nids = 0;
    while (t->timed)
        timed_remove(conn, t->timed);
}

void handlers_free(uvx_conn_t *conn)
{
    handler_table_t *t = conn->handlers;
    if (t == NULL)
        return;
    /* Every timer is closed by now (uvx_conn_close waits for them). */
    for (size_t i = 0; i < t->nbuckets; i++)
        while (t->buckets[i]) {
            uvx_handler_t *h = t->buckets[i];
            list_unlink(h);
            handler_free(h);
        }
    uvx_handler_t **lists[] = {&t->general, &t->pending, &t->graveyard};
    for (size_t i = 0; i < 3; i++)
        while (*lists[i]) {
            uvx_handler_t *h = *lists[i];
            list_unlink(h);
            handler_free(h);
        }
    free(t->buckets);
    free(t);
    conn->handlers = NULL;
}
