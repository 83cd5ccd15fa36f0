/*
 * The adapter between the core's vtable and a user mechanism
 * (uvx_sasl_mechanism_t): answers given through uvx_sasl_respond() inside a
 * hook land in the buffer negotiate.c lends the session.
 */
#include "sasl.h"

static int user_test(const sasl_session_t *s)
{
    const uvx_sasl_mechanism_t *u = &s->entry->user;
    return u->test ? u->test(s->conn, u->ud) != 0 : 1;
}

static int user_start(sasl_session_t *s, buf_t *out, int *has_response)
{
    const uvx_sasl_mechanism_t *u = &s->entry->user;
    (void)out; /* filled by uvx_sasl_respond() through s->sync_out */
    int rc = u->start(s->conn, u->ud);
    *has_response = s->sync_responded;
    return rc;
}

static int user_challenge(sasl_session_t *s, const char *in, size_t len, buf_t *out)
{
    const uvx_sasl_mechanism_t *u = &s->entry->user;
    (void)out;
    if (u->challenge == NULL)
        return UVX_EAUTH;
    return u->challenge(s->conn, in, len, u->ud);
}

static int user_success(sasl_session_t *s, const char *in, size_t len)
{
    const uvx_sasl_mechanism_t *u = &s->entry->user;
    if (u->success && u->success(s->conn, in, len, u->ud) < 0) {
        s->condition = "bad-success";
        return UVX_EAUTH;
    }
    return 0;
}

static void user_failure(sasl_session_t *s, const char *condition)
{
    const uvx_sasl_mechanism_t *u = &s->entry->user;
    if (u->failure)
        u->failure(s->conn, condition, u->ud);
}

const sasl_mech_t sasl_user = {
    "(user)", 0, 0, NULL, user_test, user_start, user_challenge, user_success, user_failure, NULL,
};
