#include "bare.h"

#include <stdlib.h>
#include <string.h>

#include <libxml/parser.h>

typedef struct bare_count {
    int depth;
    unsigned stanzas;
} bare_count_t;

static void bare_start(void *ctx, const xmlChar *localname, const xmlChar *prefix,
                       const xmlChar *uri, int nb_ns, const xmlChar **ns, int nb_attrs,
                       int nb_defaulted, const xmlChar **attrs)
{
    (void)localname, (void)prefix, (void)uri, (void)nb_ns, (void)ns, (void)nb_attrs;
    (void)nb_defaulted, (void)attrs;
    ((bare_count_t *)ctx)->depth++;
}

static void bare_end(void *ctx, const xmlChar *localname, const xmlChar *prefix, const xmlChar *uri)
{
    bare_count_t *b = ctx;
    (void)localname, (void)prefix, (void)uri;
    if (--b->depth == 1)
        b->stanzas++;
}

static void bare_text(void *ctx, const xmlChar *text, int len)
{
    (void)ctx, (void)text, (void)len;
}

struct bare_parser {
    bare_count_t count;
    xmlParserCtxtPtr ctxt;
};

bare_parser_t *bare_parser_new(void)
{
    bare_parser_t *b = calloc(1, sizeof(*b));
    if (b == NULL)
        return NULL;
    xmlSAXHandler sax;
    memset(&sax, 0, sizeof(sax));
    sax.initialized = XML_SAX2_MAGIC;
    sax.startElementNs = bare_start;
    sax.endElementNs = bare_end;
    sax.characters = bare_text;
    sax.ignorableWhitespace = bare_text;
    sax.cdataBlock = bare_text;
    b->ctxt = xmlCreatePushParserCtxt(&sax, &b->count, NULL, 0, NULL);
    if (b->ctxt == NULL) {
        free(b);
        return NULL;
    }
    xmlCtxtUseOptions(b->ctxt, XML_PARSE_NONET | XML_PARSE_IGNORE_ENC);
    return b;
}

int bare_parser_feed(bare_parser_t *b, const char *data, size_t len)
{
    return xmlParseChunk(b->ctxt, data, (int)len, 0) == 0 ? 0 : -1;
}

unsigned bare_parser_stanzas(const bare_parser_t *b)
{
    return b->count.stanzas;
}

void bare_parser_free(bare_parser_t *b)
{
    if (b == NULL)
        return;
    xmlFreeParserCtxt(b->ctxt);
    free(b);
}

unsigned bare_libxml2_parse(const char *data, size_t len, size_t chunk)
{
    bare_parser_t *b = bare_parser_new();
    if (b == NULL)
        return 0;
    for (size_t at = 0; at < len; at += chunk) {
        size_t n = len - at < chunk ? len - at : chunk;
        if (bare_parser_feed(b, data + at, n) != 0)
            break;
    }
    unsigned stanzas = bare_parser_stanzas(b);
    bare_parser_free(b);
    return stanzas;
}
