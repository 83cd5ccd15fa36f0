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

/* A per-loop pool of libxml2 parser contexts (with one dictionary shared by
 * all of them), so that idle connections hold none: a pooled parser borrows
 * a context while it parses and gives it back whenever a feed ends between
 * stanzas. It keeps a few idle contexts and frees the rest. Not thread-safe:
 * one pool per loop. parser_pool_free() may come before the parsers using
 * the pool are freed; the pool goes with the last of them. */
typedef struct parser_pool parser_pool_t;

parser_pool_t *parser_pool_new(void); /* NULL when out of memory */
void parser_pool_free(parser_pool_t *pool);

/* Makes `p` borrow its context from `pool` (NULL: own one again). Meant
 * right after uvx_parser_new(), when `p` gives its own context up at once;
 * a stream already under way keeps its context until its next restart.
 * Not from a parser callback. Events, errors and limits are unchanged. */
void parser_set_pool(uvx_parser_t *p, parser_pool_t *pool);

/* 1 if `p` holds no libxml2 context now (pooled, and between stanzas or
 * before its stream): for tests and memory accounting. */
int parser_is_parked(const uvx_parser_t *p);

/* 1 if `p` stands between two stanzas of an open stream: depth 1, no
 * element under way, nothing but white space held unparsed, no error. A
 * framed transport asks after each message (RFC 7395: one element each). */
int parser_between_stanzas(const uvx_parser_t *p);

#endif
