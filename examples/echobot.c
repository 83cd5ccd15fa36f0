/*
 * echobot: logs in, announces itself, and sends every message that has a
 * body back to its sender.
 *
 *   echobot [--allow-plain] [--mech NAME] SERVICE JID PASSWORD
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "uvxmpp.h"

typedef struct echobot {
    uvx_conn_t *conn;
    int exit_code;
    int stopping;
    unsigned long echoed;
} echobot_t;

static int echobot_on_message(uvx_conn_t *conn, uvx_stanza_t *msg, void *ud)
{
    echobot_t *bot = ud;
    const char *body = uvx_stanza_child_text(msg, "body");
    const char *from = uvx_stanza_from(msg);
    const char *type = uvx_stanza_type(msg);
    if (body == NULL || from == NULL || (type && strcmp(type, "error") == 0))
        return 1;
    uvx_builder_t *b = uvx_msg("to", from, "type", type ? type : "chat", NULL);
    uvx_stanza_t *reply = uvx_b_done(uvx_b_t(uvx_b_c(b, "body", NULL), body));
    if (reply) {
        uvx_send(conn, reply);
        uvx_stanza_unref(reply);
        bot->echoed++;
    }
    return 1; /* keep handling messages */
}

static void echobot_on_status(uvx_conn_t *conn, int status, const char *condition,
                              uvx_stanza_t *elem, void *ud)
{
    echobot_t *bot = ud;
    (void)elem;
    printf("status: %s%s%s\n", uvx_status_name(status), condition ? " " : "",
           condition ? condition : "");
    fflush(stdout);
    switch (status) {
    case UVX_STATUS_CONNECTED: {
        printf("bound: %s\n", uvx_conn_jid(conn));
        fflush(stdout);
        uvx_add_handler(conn, echobot_on_message, bot, NULL, "message", NULL, NULL, NULL, 0);
        uvx_stanza_t *pres = uvx_b_done(uvx_pres(NULL));
        uvx_send(conn, pres);
        uvx_stanza_unref(pres);
        break;
    }
    case UVX_STATUS_CONNFAIL:
    case UVX_STATUS_AUTHFAIL:
    case UVX_STATUS_ERROR:
        fprintf(stderr, "echobot: %s: %s\n", uvx_status_name(status),
                condition ? condition : "no reason given");
        if (!bot->stopping)
            bot->exit_code = 1;
        break;
    case UVX_STATUS_DISCONNECTED:
        if (!bot->stopping && bot->exit_code == 0)
            bot->exit_code = 1; /* the server went away on its own */
        uvx_conn_close(conn, NULL);
        cli_signals_close();
        break;
    default:
        break;
    }
}

static void echobot_on_signal(void *ud)
{
    echobot_t *bot = ud;
    if (bot->stopping)
        return;
    bot->stopping = 1;
    if (uvx_disconnect(bot->conn, "shutdown") != 0) {
        uvx_conn_close(bot->conn, NULL);
        cli_signals_close();
    }
}

int main(int argc, char **argv)
{
    cli_t cli;
    cli_parse(&cli, argc, argv, 0, NULL);
    uv_loop_t *loop = uv_default_loop();
    uvx_ctx_t *ctx = uvx_ctx_new(loop);
    echobot_t bot = {0};
    int rc = uvx_conn_new(ctx, cli.service, &cli.opts, &bot.conn);
    if (rc != 0) {
        fprintf(stderr, "echobot: %s: %s\n", cli.service, uvx_strerror(rc));
        return 1;
    }
    rc = uvx_connect(bot.conn, cli.jid, cli.password, echobot_on_status, &bot, NULL);
    if (rc != 0) {
        fprintf(stderr, "echobot: %s: %s\n", cli.jid, uvx_strerror(rc));
        uvx_conn_close(bot.conn, NULL);
        uv_run(loop, UV_RUN_DEFAULT);
        uvx_ctx_free(ctx);
        return 1;
    }
    cli_signals_start(loop, echobot_on_signal, &bot);
    uv_run(loop, UV_RUN_DEFAULT);
    uvx_ctx_free(ctx);
    uv_loop_close(loop);
    printf("echoed %lu messages\n", bot.echoed);
    return bot.exit_code;
}
