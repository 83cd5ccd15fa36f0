/* Private: what the transports need from the stream parser beyond the public API. */
#ifndef UVX_PARSER_INTERNAL_H
#define UVX_PARSER_INTERNAL_H

#include <stddef.h>

#include "uvxmpp.h"

/* Resets `p` and feeds it `open_tag`, a complete start tag such as
 * "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>",
 * without emitting stream_open. Complete elements fed afterwards one by one
 * (RFC 7395 WebSocket messages, BOSH <body/> payloads) then each come out as
 * a depth-1 stanza event, with the namespaces that tag declares in scope.
 * Returns 0, the parse error (also reported through the error callback), or
 * UVX_EINVAL when `open_tag` is not exactly one start tag. */
int parser_prime(uvx_parser_t *p, const char *open_tag, size_t len);

#endif
