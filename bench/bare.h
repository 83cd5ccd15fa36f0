/* The ceiling the parser benches compare against: libxml2's SAX2 push
 * parser with no-op callbacks, the same options uvxmpp's parser uses. */
#ifndef UVX_BENCH_BARE_H
#define UVX_BENCH_BARE_H

#include <stddef.h>

/* Parses `data` in `chunk`-byte pieces; returns the number of depth-1
 * elements seen (to check both sides parsed the same stanzas). */
unsigned bare_libxml2_parse(const char *data, size_t len, size_t chunk);

/* The same parser fed piece by piece (bench/flood_bare.c feeds it what a
 * socket delivers). */
typedef struct bare_parser bare_parser_t;
bare_parser_t *bare_parser_new(void); /* NULL when out of memory */
/* 0, or -1 once libxml2 has reported an error. */
int bare_parser_feed(bare_parser_t *b, const char *data, size_t len);
/* Depth-1 elements completed so far. */
unsigned bare_parser_stanzas(const bare_parser_t *b);
void bare_parser_free(bare_parser_t *b);

#endif
