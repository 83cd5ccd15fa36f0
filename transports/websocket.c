/* Placeholder until the websocket transport lands: the scheme is recognised and
 * uvx_conn_new() reports UVX_ENOTSUP. */
#include "conn.h"

static int websocket_init(uvx_conn_t *conn)
{
    (void)conn;
    return UVX_ENOTSUP;
}

const transport_vtable_t transport_websocket = {
    .name = "websocket",
    .framed = 1,
    .init = websocket_init,
};
