/*
 * libFuzzer target for uvx_stanza_from_string(): whatever it accepts must
 * serialize, parse back to the same tree, and serialize to the same bytes
 * again. Whatever it rejects must come with a documented error code.
 */
#include "uvxmpp.h"
#include "buf.h"
#include "fuzz_canon.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void require(int cond, const char *what)
{
    if (cond)
        return;
    fprintf(stderr, "fuzz_from_string invariant failed: %s\n", what);
    abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int err = 0;
    uvx_stanza_t *s = uvx_stanza_from_string((const char *)data, size, &err);
    if (s == NULL) {
        require(err == UVX_EPARSE || err == UVX_ERESTRICTED || err == UVX_ETOOBIG ||
                    err == UVX_ETOODEEP || err == UVX_EINVAL,
                "documented error code");
        return 0;
    }
    require(err == 0, "no error with a result");
    require(uvx_stanza_is_element(s) && uvx_stanza_parent(s) == NULL, "one parentless element");

    char *xml = NULL;
    size_t len = 0;
    require(uvx_stanza_serialize(s, NULL, &xml, &len) == 0, "serialize");
    require(strlen(xml) == len, "serialized length");
    uvx_stanza_t *again = uvx_stanza_from_string(xml, len, &err);
    if (again == NULL) {
        /* Escaping may grow a stanza just under the limit past it. */
        require(err == UVX_ETOOBIG, "serialized stanza parses back");
    } else {
        buf_t a = BUF_INIT, b = BUF_INIT;
        fuzz_canon(&a, s);
        fuzz_canon(&b, again);
        require(a.len == b.len && memcmp(a.data, b.data, a.len) == 0, "same tree");
        char *xml2 = NULL;
        size_t len2 = 0;
        require(uvx_stanza_serialize(again, NULL, &xml2, &len2) == 0, "serialize again");
        require(len2 == len && memcmp(xml, xml2, len) == 0, "serialization is stable");
        free(xml2);
        buf_free(&a);
        buf_free(&b);
        uvx_stanza_unref(again);
    }
    free(xml);
    uvx_stanza_unref(s);
    return 0;
}
