#include "uvxmpp.h"

const char *uvx_strerror(int err)
{
    switch (err) {
    case 0:
        return "success";
    case UVX_ENOMEM:
        return "out of memory";
    case UVX_EINVAL:
        return "invalid argument";
    case UVX_EPARSE:
        return "malformed XML";
    case UVX_ERESTRICTED:
        return "XML feature forbidden in XMPP (DTD, entity, PI or comment)";
    case UVX_ETOOBIG:
        return "stanza exceeds the size limit";
    case UVX_ETOODEEP:
        return "element nesting exceeds the depth limit";
    case UVX_EJID:
        return "malformed JID";
    case UVX_ESTATE:
        return "operation not valid in the connection's current state";
    case UVX_ENOTSUP:
        return "not supported";
    case UVX_ENOTFOUND:
        return "not found";
    case UVX_ETIMEDOUT:
        return "timed out";
    case UVX_EAUTH:
        return "authentication failed";
    case UVX_ESTREAM:
        return "stream error from the peer";
    case UVX_ECLOSED:
        return "connection closed";
    case UVX_ETLS:
        return "TLS failure";
    default:
        return uv_strerror(err);
    }
}
