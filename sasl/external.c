/*
 * SASL EXTERNAL (RFC 4422 appendix A, XEP-0178): the identity comes from
 * the TLS client certificate. The authzid is sent only when it differs from
 * the authcid (the caller sets authcid to the bare JID to leave it out);
 * otherwise the response is empty ("=").
 */
#include <string.h>

#include "sasl.h"

static int external_test(const sasl_session_t *s)
{
    (void)s;
    /* Always a candidate: the identity may come from outside the library's
     * sight. Servers offer it even to a client without a certificate
     * (ejabberd with tls_verify does), but at priority 10 it runs only
     * when nothing else fits or the caller's `mechanisms` asks for it. */
    return 1;
}

static int external_start(sasl_session_t *s, buf_t *out, int *has_response)
{
    *has_response = 1;
    if (s->authzid == NULL || (s->authcid != NULL && strcmp(s->authcid, s->authzid) == 0))
        return 0;
    return buf_append_str(out, s->authzid);
}

const sasl_mech_t sasl_external = {
    "EXTERNAL", 10, 0, NULL, external_test, external_start, NULL, NULL, NULL, NULL,
};
