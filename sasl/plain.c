/* SASL PLAIN (RFC 4616): [authzid] NUL authcid NUL password. */
#include "sasl.h"

static int plain_test(const sasl_session_t *s)
{
    /* Sending the password in the clear is the caller's explicit choice;
     * the core checks SASL_CLEARTEXT against the stream. */
    return s->authcid != NULL && s->password != NULL;
}

static int plain_start(sasl_session_t *s, buf_t *out, int *has_response)
{
    int rc = 0;
    /* The authzid goes only when it differs from what the authcid implies. */
    if (!sasl_authzid_implied(s))
        rc = buf_append_str(out, s->authzid);
    if (rc == 0)
        rc = buf_append(out, "", 1);
    if (rc == 0)
        rc = buf_append_str(out, s->authcid);
    if (rc == 0)
        rc = buf_append(out, "", 1);
    if (rc == 0)
        rc = buf_append_str(out, s->password);
    *has_response = 1;
    return rc;
}

const sasl_mech_t sasl_plain = {
    "PLAIN", 50, SASL_CLEARTEXT, NULL, plain_test, plain_start, NULL, NULL, NULL, NULL,
};
