/* The ceiling the parser benches compare against: libxml2's SAX2 push
 * parser with no-op callbacks, the same options uvxmpp's parser uses. */
#ifndef UVX_BENCH_BARE_H
#define UVX_BENCH_BARE_H

#include <stddef.h>

/* Parses `data` in `chunk`-byte pieces; returns the number of depth-1
 * elements seen (to check both sides parsed the same stanzas). */
unsigned bare_libxml2_parse(const char *data, size_t len, size_t chunk);

#endif
