/* SASL X-OAUTH2 (Google's): NUL bare-JID NUL token; the password is the token. */
#include "sasl.h"

static int xoauth2_test(const sasl_session_t *s)
{
    return s->authcid != NULL && s->password != NULL;
}

static int xoauth2_start(sasl_session_t *s, buf_t *out, int *has_response)
{
    int rc = buf_append(out, "", 1);
    if (rc == 0 && s->authzid)
        rc = buf_append_str(out, s->authzid);
    rc = rc ? rc : buf_append(out, "", 1);
    rc = rc ? rc : buf_append_str(out, s->password);
    *has_response = 1;
    return rc;
}

const sasl_mech_t sasl_xoauth2 = {
    "X-OAUTH2", 30, SASL_CLEARTEXT, NULL, xoauth2_test, xoauth2_start, NULL, NULL, NULL, NULL,
};
