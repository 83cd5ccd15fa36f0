#include "fuzz_canon.h"

#include <stdio.h>
#include <stdlib.h>

static void put_str(buf_t *b, const char *s)
{
    if (buf_append_str(b, s) != 0) {
        fprintf(stderr, "fuzz_canon: out of memory\n");
        abort();
    }
}

void fuzz_canon(buf_t *b, uvx_stanza_t *e)
{
    const char *ns = uvx_stanza_ns(e);
    put_str(b, "<{");
    put_str(b, ns ? ns : "");
    put_str(b, "}");
    put_str(b, uvx_stanza_name(e));
    for (int i = 0; i < uvx_stanza_attr_count(e); i++) {
        const char *name, *value;
        uvx_stanza_attr_at(e, i, &name, &value);
        put_str(b, " ");
        put_str(b, name);
        put_str(b, "=\"");
        put_str(b, value);
        put_str(b, "\"");
    }
    put_str(b, ">");
    for (uvx_stanza_t *c = uvx_stanza_children(e); c; c = uvx_stanza_next(c)) {
        if (uvx_stanza_is_text(c)) {
            put_str(b, "T(");
            put_str(b, uvx_stanza_text(c));
            put_str(b, ")");
        } else {
            fuzz_canon(b, c);
        }
    }
    put_str(b, "</>");
}
