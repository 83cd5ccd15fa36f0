/* Command-line plumbing shared by the example programs and benches:
 * NAME [options] SERVICE JID PASSWORD [args]. */
#ifndef UVX_EXAMPLES_CLI_H
#define UVX_EXAMPLES_CLI_H

#include "uvxmpp.h"

typedef struct cli {
    const char *prog;
    const char *service;
    const char *jid;
    const char *password;
    char **args; /* what follows PASSWORD */
    int nargs;
    const char *mechs[2];
    uvx_conn_options_t opts;
} cli_t;

/* Parses the common options (--allow-plain, --mech NAME, --bind ADDR).
 * Prints usage and exits 2 on an unknown option or missing arguments;
 * `extra_usage` describes the program's own trailing arguments. */
void cli_parse(cli_t *cli, int argc, char **argv, int min_args, const char *extra_usage);

/* Calls `on_signal(ud)` on SIGINT/SIGTERM; the handles are unref'd so they
 * never keep the loop alive. cli_signals_close() closes them. */
void cli_signals_start(uv_loop_t *loop, void (*on_signal)(void *ud), void *ud);
void cli_signals_close(void);

#endif
