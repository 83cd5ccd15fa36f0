#include "buf.h"

#include <stdlib.h>
#include <string.h>

#include "uvxmpp.h"

int buf_reserve(buf_t *b, size_t extra)
{
    if (b->cap - b->len > extra && b->data != NULL)
        return 0;
    size_t need = b->len + extra + 1;
    if (need < b->len)
        return UVX_ENOMEM;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need) {
        if (cap > ((size_t)-1) / 2)
            return UVX_ENOMEM;
        cap *= 2;
    }
    char *p = realloc(b->data, cap);
    if (p == NULL)
        return UVX_ENOMEM;
    b->data = p;
    b->cap = cap;
    b->data[b->len] = '\0';
    return 0;
}

int buf_append(buf_t *b, const char *data, size_t len)
{
    int rc = buf_reserve(b, len);
    if (rc)
        return rc;
    if (len)
        memcpy(b->data + b->len, data, len);
    b->len += len;
    b->data[b->len] = '\0';
    return 0;
}

int buf_append_str(buf_t *b, const char *s)
{
    return buf_append(b, s, strlen(s));
}

/* What each byte becomes, or NULL when it stays as it is; [1] is for
 * attribute values, which also escape quotes and whitespace other than
 * the space (the reader would normalise those away). */
static const char *escape_for(unsigned char c, int in_attr)
{
    switch (c) {
    case '&':
        return "&amp;";
    case '<':
        return "&lt;";
    case '>':
        return "&gt;";
    case '\r':
        return "&#xD;"; /* a raw CR would be normalised away by the reader */
    case '\'':
        return in_attr ? "&apos;" : NULL;
    case '"':
        return in_attr ? "&quot;" : NULL;
    case '\t':
        return in_attr ? "&#x9;" : NULL;
    case '\n':
        return in_attr ? "&#xA;" : NULL;
    default:
        return NULL;
    }
}

int buf_append_escaped(buf_t *b, const char *s, size_t len, int in_attr)
{
    /* Reserve for the common case (nothing to escape) up front. */
    if (buf_reserve(b, len))
        return UVX_ENOMEM;
    size_t start = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c > '>') /* fast path: nothing above '>' needs escaping */
            continue;
        const char *rep = escape_for(c, in_attr);
        if (rep == NULL)
            continue;
        if (buf_append(b, s + start, i - start) || buf_append_str(b, rep))
            return UVX_ENOMEM;
        start = i + 1;
    }
    return buf_append(b, s + start, len - start);
}

void buf_consume(buf_t *b, size_t n)
{
    if (n >= b->len) {
        b->len = 0;
    } else {
        memmove(b->data, b->data + n, b->len - n);
        b->len -= n;
    }
    if (b->data)
        b->data[b->len] = '\0';
}

void buf_reset(buf_t *b)
{
    b->len = 0;
    if (b->data)
        b->data[0] = '\0';
}

void buf_free(buf_t *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

char *buf_steal(buf_t *b, size_t *len)
{
    if (b->data == NULL && buf_reserve(b, 0))
        return NULL;
    char *p = b->data;
    if (len)
        *len = b->len;
    b->data = NULL;
    b->len = b->cap = 0;
    return p;
}
