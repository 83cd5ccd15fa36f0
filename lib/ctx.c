/*
 * The per-loop context: what every connection on a loop shares. The flush
 * hooks (a prepare and a check handle) exist only while connections do, so
 * a loop whose connections are all closed has nothing of ours left in it.
 */
#include <stdlib.h>
#include <string.h>

#include "conn.h"
#include "parser.h"
#include "tls.h"

char *xstrdup(const char *s)
{
    return s ? strdup(s) : NULL;
}

int xstrdup_into(char **dst, const char *s)
{
    char *copy = NULL;
    if (s != NULL && (copy = strdup(s)) == NULL)
        return UVX_ENOMEM;
    free(*dst);
    *dst = copy;
    return 0;
}

uvx_ctx_t *uvx_ctx_new(uv_loop_t *loop)
{
    if (loop == NULL)
        return NULL;
    uvx_ctx_t *ctx = calloc(1, sizeof(*ctx));
    if (ctx == NULL)
        return NULL;
    ctx->loop = loop;
    ctx->parser_pool = parser_pool_new();
    if (ctx->parser_pool == NULL) {
        free(ctx);
        return NULL;
    }
    return ctx;
}

int uvx_ctx_free(uvx_ctx_t *ctx)
{
    if (ctx == NULL)
        return 0;
    if (ctx->nconns > 0 || ctx->hooks_open || ctx->hooks_closing)
        return UVX_ESTATE;
    tls_shared_free(ctx->tls);
    sasl_ctx_free(ctx);
    parser_pool_free(ctx->parser_pool);
    ctx_plugin_t *p = ctx->plugins;
    while (p) {
        ctx_plugin_t *next = p->next;
        free(p);
        p = next;
    }
    free(ctx);
    return 0;
}

uv_loop_t *uvx_ctx_loop(const uvx_ctx_t *ctx)
{
    return ctx->loop;
}

/* Writes every dirty connection's queue: sends made during this iteration
 * leave in one write per connection. */
static void ctx_flush_dirty(uvx_ctx_t *ctx)
{
    while (ctx->dirty) {
        uvx_conn_t *conn = ctx->dirty;
        conn_unmark_dirty(conn);
        conn_flush_now(conn);
    }
    uv_prepare_stop(&ctx->prepare);
    uv_check_stop(&ctx->check);
}

static void ctx_on_prepare(uv_prepare_t *h)
{
    ctx_flush_dirty(h->data);
}

static void ctx_on_check(uv_check_t *h)
{
    ctx_flush_dirty(h->data);
}

void conn_mark_dirty(uvx_conn_t *conn)
{
    uvx_ctx_t *ctx = conn->ctx;
    if (conn->dirty || conn->paused)
        return;
    conn->dirty = 1;
    conn->dirty_next = ctx->dirty;
    if (ctx->dirty)
        ctx->dirty->dirty_prev = &conn->dirty_next;
    conn->dirty_prev = &ctx->dirty;
    ctx->dirty = conn;
    if (ctx->hooks_open) {
        uv_prepare_start(&ctx->prepare, ctx_on_prepare);
        uv_check_start(&ctx->check, ctx_on_check);
    }
}

void conn_unmark_dirty(uvx_conn_t *conn)
{
    if (!conn->dirty)
        return;
    *conn->dirty_prev = conn->dirty_next;
    if (conn->dirty_next)
        conn->dirty_next->dirty_prev = conn->dirty_prev;
    conn->dirty = 0;
    conn->dirty_next = NULL;
    conn->dirty_prev = NULL;
}

static void hooks_open(uvx_ctx_t *ctx)
{
    uv_prepare_init(ctx->loop, &ctx->prepare);
    uv_check_init(ctx->loop, &ctx->check);
    ctx->prepare.data = ctx;
    ctx->check.data = ctx;
    ctx->hooks_open = 1;
    if (ctx->dirty) {
        uv_prepare_start(&ctx->prepare, ctx_on_prepare);
        uv_check_start(&ctx->check, ctx_on_check);
    }
}

void ctx_conn_added(uvx_ctx_t *ctx)
{
    ctx->nconns++;
    if (!ctx->hooks_open && ctx->hooks_closing == 0)
        hooks_open(ctx);
}

static void ctx_on_hook_closed(uv_handle_t *h)
{
    uvx_ctx_t *ctx = h->data;
    /* A connection created while the hooks were closing re-opens them. */
    if (--ctx->hooks_closing == 0 && ctx->nconns > 0)
        hooks_open(ctx);
}

void ctx_conn_removed(uvx_ctx_t *ctx)
{
    if (--ctx->nconns == 0 && ctx->hooks_open) {
        ctx->hooks_open = 0;
        ctx->hooks_closing = 2;
        uv_close((uv_handle_t *)&ctx->prepare, ctx_on_hook_closed);
        uv_close((uv_handle_t *)&ctx->check, ctx_on_hook_closed);
    }
}

int uvx_ctx_add_plugin(uvx_ctx_t *ctx, const uvx_plugin_t *plugin)
{
    if (ctx == NULL || plugin == NULL || plugin->name == NULL)
        return UVX_EINVAL;
    ctx_plugin_t **tail = &ctx->plugins;
    for (; *tail; tail = &(*tail)->next)
        if (strcmp((*tail)->def.name, plugin->name) == 0)
            return UVX_EINVAL;
    ctx_plugin_t *p = calloc(1, sizeof(*p));
    if (p == NULL)
        return UVX_ENOMEM;
    p->def = *plugin;
    *tail = p; /* keep registration order */
    return 0;
}
