/* The built-in mechanisms, highest priority first (Strophe's order). */
#include "sasl.h"

const sasl_mech_t *const sasl_builtin[] = {
    &sasl_plain,
    &sasl_anonymous,
    NULL,
};
