/*
 * SASL OAUTHBEARER (RFC 7628): the password is the bearer token.
 * Initial response: gs2-header kvsep "auth=Bearer <token>" kvsep kvsep.
 */
#include "sasl.h"

static int oauthbearer_test(const sasl_session_t *s)
{
    return s->authcid != NULL && s->password != NULL;
}

static int oauthbearer_start(sasl_session_t *s, buf_t *out, int *has_response)
{
    int rc = buf_append_str(out, "n,");
    if (rc == 0 && s->authzid) {
        rc = buf_append_str(out, "a=");
        rc = rc ? rc : sasl_append_saslname(out, s->authzid);
    }
    rc = rc ? rc : buf_append_str(out, ",\001auth=Bearer ");
    rc = rc ? rc : buf_append_str(out, s->password);
    rc = rc ? rc : buf_append_str(out, "\001\001");
    *has_response = 1;
    return rc;
}

/* RFC 7628 §3.2.3: an error arrives as a challenge holding JSON; the client
 * answers with a lone kvsep and the server then sends <failure/>. */
static int oauthbearer_challenge(sasl_session_t *s, const char *in, size_t len, buf_t *out)
{
    (void)s;
    (void)in;
    (void)len;
    return buf_append(out, "\001", 1);
}

const sasl_mech_t sasl_oauthbearer = {
    "OAUTHBEARER",         40,   SASL_CLEARTEXT, NULL, oauthbearer_test, oauthbearer_start,
    oauthbearer_challenge, NULL, NULL,           NULL,
};
