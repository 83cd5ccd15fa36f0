/* Placeholder until the bosh transport lands: the scheme is recognised and
 * uvx_conn_new() reports UVX_ENOTSUP. */
#include "conn.h"

static int bosh_init(uvx_conn_t *conn)
{
    (void)conn;
    return UVX_ENOTSUP;
}

const transport_vtable_t transport_bosh = {
    .name = "bosh",
    .framed = 1,
    .init = bosh_init,
};
