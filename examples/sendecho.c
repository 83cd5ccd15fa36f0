/*
 * sendecho: logs in, sends TEXT to TO and waits for the same text to come
 * back from TO (e.g. from echobot), then prints the round trip and leaves.
 *
 *   sendecho [--allow-plain] [--mech NAME] SERVICE JID PASSWORD TO TEXT
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "uvxmpp.h"

typedef struct sendecho {
    const char *to;
    const char *text;
    uint64_t sent_at;
    int exit_code;
    uv_timer_t timeout;
} sendecho_t;

static int sendecho_on_message(uvx_conn_t *conn, uvx_stanza_t *msg, void *ud)
{
    sendecho_t *se = ud;
    const char *body = uvx_stanza_child_text(msg, "body");
    if (body == NULL || strcmp(body, se->text) != 0)
        return 1;
    double ms = (double)(uv_hrtime() - se->sent_at) / 1e6;
    printf("echo from %s: %s (round trip %.2f ms)\n", uvx_stanza_from(msg), body, ms);
    se->exit_code = 0;
    uv_timer_stop(&se->timeout);
    uvx_disconnect(conn, NULL);
    return 0;
}

static void sendecho_on_timeout(uv_timer_t *t)
{
    uvx_conn_t *conn = t->data;
    fprintf(stderr, "sendecho: no echo within 10 s\n");
    uvx_disconnect(conn, "timeout");
}

static void sendecho_on_status(uvx_conn_t *conn, int status, const char *condition,
                               uvx_stanza_t *elem, void *ud)
{
    sendecho_t *se = ud;
    (void)elem;
    printf("status: %s%s%s\n", uvx_status_name(status), condition ? " " : "",
           condition ? condition : "");
    if (status == UVX_STATUS_CONNECTED) {
        printf("bound: %s\n", uvx_conn_jid(conn));
        uvx_add_handler(conn, sendecho_on_message, se, NULL, "message", NULL, NULL, se->to,
                        UVX_MATCH_BARE_FROM);
        uvx_stanza_t *msg = uvx_stanza_fmt("<message to='%s' type='chat'><body>%s</body></message>",
                                           se->to, se->text);
        uvx_send(conn, msg);
        uvx_stanza_unref(msg);
        se->sent_at = uv_hrtime();
        se->timeout.data = conn;
        uv_timer_start(&se->timeout, sendecho_on_timeout, 10000, 0);
    } else if (status == UVX_STATUS_CONNFAIL || status == UVX_STATUS_AUTHFAIL) {
        fprintf(stderr, "sendecho: %s: %s\n", uvx_status_name(status),
                condition ? condition : "no reason given");
    } else if (status == UVX_STATUS_DISCONNECTED) {
        uv_close((uv_handle_t *)&se->timeout, NULL);
        uvx_conn_close(conn, NULL);
    }
    fflush(stdout);
}

int main(int argc, char **argv)
{
    cli_t cli;
    cli_parse(&cli, argc, argv, 2, "TO TEXT");
    uv_loop_t *loop = uv_default_loop();
    uvx_ctx_t *ctx = uvx_ctx_new(loop);
    sendecho_t se = {cli.args[0], cli.args[1], 0, 1, {0}};
    uv_timer_init(loop, &se.timeout);
    uvx_conn_t *conn;
    int rc = uvx_conn_new(ctx, cli.service, &cli.opts, &conn);
    if (rc == 0)
        rc = uvx_connect(conn, cli.jid, cli.password, sendecho_on_status, &se, NULL);
    if (rc != 0) {
        fprintf(stderr, "sendecho: %s\n", uvx_strerror(rc));
        return 1;
    }
    uv_run(loop, UV_RUN_DEFAULT);
    uvx_ctx_free(ctx);
    uv_loop_close(loop);
    return se.exit_code;
}
