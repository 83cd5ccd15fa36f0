/* SASL ANONYMOUS (RFC 4505): for a JID with no node. */
#include "sasl.h"

static int anonymous_test(const sasl_session_t *s)
{
    return !s->has_node;
}

static int anonymous_start(sasl_session_t *s, buf_t *out, int *has_response)
{
    (void)s;
    (void)out;
    *has_response = 0;
    return 0;
}

const sasl_mech_t sasl_anonymous = {
    "ANONYMOUS", 20, 0, NULL, anonymous_test, anonymous_start, NULL, NULL, NULL, NULL,
};
