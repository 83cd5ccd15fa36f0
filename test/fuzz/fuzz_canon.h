/* The canonical form the parser fuzz targets compare trees by: names,
 * namespaces, attributes in stored order and text, as one string. */
#ifndef UVX_FUZZ_CANON_H
#define UVX_FUZZ_CANON_H

#include "buf.h"
#include "uvxmpp.h"

/* Appends the canonical form of `e` to `b`; aborts when out of memory. */
void fuzz_canon(buf_t *b, uvx_stanza_t *e);

#endif
