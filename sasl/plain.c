/* SASL PLAIN (RFC 4616): [authzid] NUL authcid NUL password. */
#include <string.h>

#include "conn.h"

static int plain_test(const sasl_session_t *s)
{
    /* Sending the password in the clear is the caller's explicit choice. */
    return s->authcid != NULL && s->password != NULL &&
           (s->conn->secure || s->conn->allow_plain);
}

/* The authzid goes only when it differs from what the authcid implies
 * (authcid@domain), as Strophe and XEP-0178 do. */
static int plain_needs_authzid(const sasl_session_t *s)
{
    if (s->authzid == NULL)
        return 0;
    size_t alen = strlen(s->authcid);
    return !(strncmp(s->authzid, s->authcid, alen) == 0 && s->authzid[alen] == '@' &&
             strcmp(s->authzid + alen + 1, s->domain) == 0);
}

static int plain_start(sasl_session_t *s, buf_t *out, int *has_response)
{
    int rc = 0;
    if (plain_needs_authzid(s))
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
    "PLAIN", 50, plain_test, plain_start, NULL, NULL, NULL,
};
