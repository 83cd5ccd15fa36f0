#include "cli.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void cli_usage(const cli_t *cli, const char *extra_usage)
{
    fprintf(stderr,
            "usage: %s [--allow-plain] [--mech NAME] [--cafile FILE] [--insecure] [--bind ADDR]\n"
            "       SERVICE JID PASSWORD%s%s\n"
            "  SERVICE        tcp://host[:port], xmpps://host[:port] or a bare domain\n"
            "  --allow-plain  allow a stream without TLS and SASL PLAIN on it\n"
            "  --mech NAME    use only this SASL mechanism\n"
            "  --cafile FILE  trust the CA certificates in FILE (PEM)\n"
            "  --insecure     accept any server certificate (tests only)\n"
            "  --bind ADDR    local address to connect from\n",
            cli->prog, extra_usage ? " " : "", extra_usage ? extra_usage : "");
}

void cli_parse(cli_t *cli, int argc, char **argv, int min_args, const char *extra_usage)
{
    memset(cli, 0, sizeof(*cli));
    cli->prog = strrchr(argv[0], '/') ? strrchr(argv[0], '/') + 1 : argv[0];
    uvx_conn_options_init(&cli->opts);
    int i = 1;
    for (; i < argc && strncmp(argv[i], "--", 2) == 0; i++) {
        if (strcmp(argv[i], "--") == 0) {
            i++;
            break;
        } else if (strcmp(argv[i], "--allow-plain") == 0) {
            cli->opts.allow_plain = 1;
        } else if (strcmp(argv[i], "--mech") == 0 && i + 1 < argc) {
            cli->mechs[0] = argv[++i];
            cli->opts.mechanisms = cli->mechs;
        } else if (strcmp(argv[i], "--cafile") == 0 && i + 1 < argc) {
            cli->opts.tls_cafile = argv[++i];
        } else if (strcmp(argv[i], "--insecure") == 0) {
            cli->opts.tls_insecure = 1;
        } else if (strcmp(argv[i], "--bind") == 0 && i + 1 < argc) {
            cli->opts.bind_address = argv[++i];
        } else {
            fprintf(stderr, "%s: unknown option %s\n", cli->prog, argv[i]);
            cli_usage(cli, extra_usage);
            exit(2);
        }
    }
    if (argc - i < 3 + min_args) {
        cli_usage(cli, extra_usage);
        exit(2);
    }
    cli->service = argv[i];
    cli->jid = argv[i + 1];
    cli->password = argv[i + 2];
    cli->args = argv + i + 3;
    cli->nargs = argc - i - 3;
}

static uv_signal_t sig_int, sig_term;
static void (*sig_cb)(void *);
static void *sig_ud;

static void cli_on_signal(uv_signal_t *h, int signum)
{
    (void)h;
    (void)signum;
    sig_cb(sig_ud);
}

void cli_signals_start(uv_loop_t *loop, void (*on_signal)(void *ud), void *ud)
{
    sig_cb = on_signal;
    sig_ud = ud;
    uv_signal_init(loop, &sig_int);
    uv_signal_init(loop, &sig_term);
    uv_signal_start(&sig_int, cli_on_signal, SIGINT);
    uv_signal_start(&sig_term, cli_on_signal, SIGTERM);
    signal(SIGPIPE, SIG_IGN); /* a write to a socket the server just closed */
    uv_unref((uv_handle_t *)&sig_int);
    uv_unref((uv_handle_t *)&sig_term);
}

void cli_signals_close(void)
{
    uv_close((uv_handle_t *)&sig_int, NULL);
    uv_close((uv_handle_t *)&sig_term, NULL);
}
