#include "bare.h"

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

unsigned bare_libxml2_parse(const char *data, size_t len, size_t chunk)
{
    xmlSAXHandler sax;
    memset(&sax, 0, sizeof(sax));
    sax.initialized = XML_SAX2_MAGIC;
    sax.startElementNs = bare_start;
    sax.endElementNs = bare_end;
    sax.characters = bare_text;
    sax.ignorableWhitespace = bare_text;
    sax.cdataBlock = bare_text;
    bare_count_t count = {0, 0};
    xmlParserCtxtPtr ctxt = xmlCreatePushParserCtxt(&sax, &count, NULL, 0, NULL);
    if (ctxt == NULL)
        return 0;
    xmlCtxtUseOptions(ctxt, XML_PARSE_NONET | XML_PARSE_IGNORE_ENC);
    for (size_t at = 0; at < len; at += chunk) {
        size_t n = len - at < chunk ? len - at : chunk;
        if (xmlParseChunk(ctxt, data + at, (int)n, 0) != 0)
            break;
    }
    xmlFreeParserCtxt(ctxt);
    return count.stanzas;
}
