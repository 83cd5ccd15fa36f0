/*
 * JIDs (RFC 7622): splitting, validating, joining and comparing, plus the
 * XEP-0106 escaping of localparts.
 *
 * We do not apply PRECIS (or the older stringprep profiles): parts are not
 * case-mapped or normalised. What we check is structure and the cheap,
 * profile-independent rules: 1..1023 bytes per part, well-formed UTF-8, no
 * control characters, none of the ASCII characters RFC 7622 §3.3.1 forbids
 * in a localpart, and a domainpart made of DNS labels or an IP literal.
 */
#include "uvxmpp.h"

#include <stdlib.h>
#include <string.h>

/* A part of a JID as a span of the caller's string; ptr is NULL when the
 * part is absent. Parsing into spans lets valid() and bare_equal() work
 * without allocating. */
typedef struct jid_span {
    const char *ptr;
    size_t len;
} jid_span_t;

typedef struct jid_parts {
    jid_span_t node;
    jid_span_t domain;
    jid_span_t resource;
} jid_parts_t;

/* ---- Character checks -------------------------------------------------- */

/* Decodes one UTF-8 sequence at s[0..len). Returns its length and stores
 * the code point, or returns 0 for a malformed, overlong or surrogate
 * sequence or one beyond U+10FFFF. */
static size_t utf8_decode(const unsigned char *s, size_t len, unsigned long *cp)
{
    size_t need, i;
    unsigned long c, min;

    if (s[0] < 0x80) {
        *cp = s[0];
        return 1;
    }
    if ((s[0] & 0xE0) == 0xC0) {
        need = 2, c = s[0] & 0x1F, min = 0x80;
    } else if ((s[0] & 0xF0) == 0xE0) {
        need = 3, c = s[0] & 0x0F, min = 0x800;
    } else if ((s[0] & 0xF8) == 0xF0) {
        need = 4, c = s[0] & 0x07, min = 0x10000;
    } else {
        return 0;
    }
    if (len < need)
        return 0;
    for (i = 1; i < need; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        c = (c << 6) | (s[i] & 0x3F);
    }
    if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF))
        return 0;
    *cp = c;
    return need;
}

/* Control characters (C0, DEL, C1) are disallowed by every PRECIS class,
 * and U+FFFE/U+FFFF cannot appear in XML at all. */
static int codepoint_forbidden(unsigned long cp)
{
    return cp < 0x20 || (cp >= 0x7F && cp <= 0x9F) || cp == 0xFFFE || cp == 0xFFFF;
}

/* The ASCII characters a localpart must not hold (RFC 7622 §3.3.1), plus
 * the space that the IdentifierClass excludes. */
static int node_ascii_forbidden(unsigned long cp)
{
    return cp == ' ' || (cp < 0x80 && strchr("\"&'/:<>@", (int)cp) != NULL);
}

/* ASCII that may appear in a domainpart label: letters, digits, hyphen,
 * dot, and underscore (not LDH, but found in real deployments). */
static int domain_ascii_allowed(unsigned long cp)
{
    return (cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z') || (cp >= '0' && cp <= '9') ||
           cp == '-' || cp == '.' || cp == '_';
}

/* 1 if s[0..len) is well-formed UTF-8 free of forbidden code points and
 * `ascii_ok` (when given) accepts each ASCII character. */
static int chars_valid(const char *s, size_t len, int (*ascii_ok)(unsigned long))
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0, n;
    unsigned long cp;

    while (i < len) {
        n = utf8_decode(p + i, len - i, &cp);
        if (n == 0 || codepoint_forbidden(cp))
            return 0;
        if (cp < 0x80 && ascii_ok != NULL && !ascii_ok(cp))
            return 0;
        i += n;
    }
    return 1;
}

static int node_ascii_ok(unsigned long cp)
{
    return !node_ascii_forbidden(cp);
}

/* ---- Part checks -------------------------------------------------------- */

static int length_valid(size_t len)
{
    return len >= 1 && len <= UVX_JID_PART_MAX;
}

static int node_valid(const char *s, size_t len)
{
    return length_valid(len) && chars_valid(s, len, node_ascii_ok);
}

static int resource_valid(const char *s, size_t len)
{
    return length_valid(len) && chars_valid(s, len, NULL);
}

static int is_hex_digit(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* "[" IPv6 or IPvFuture address "]" (RFC 7622 §3.2 allows IP literals). We
 * check the alphabet only, not the address grammar. */
static int ip_literal_valid(const char *s, size_t len)
{
    size_t i;

    if (len < 3 || s[0] != '[' || s[len - 1] != ']')
        return 0;
    for (i = 1; i < len - 1; i++) {
        if (!is_hex_digit(s[i]) && s[i] != ':' && s[i] != '.')
            return 0;
    }
    return 1;
}

/* A domainpart whose trailing dot has already been stripped: DNS labels
 * (ASCII or UTF-8, no empty label) or an IP literal. */
static int domain_valid(const char *s, size_t len)
{
    size_t i;

    if (!length_valid(len))
        return 0;
    if (s[0] == '[')
        return ip_literal_valid(s, len);
    if (!chars_valid(s, len, domain_ascii_allowed))
        return 0;
    for (i = 0; i < len; i++) {
        if (s[i] == '.' && (i == 0 || i == len - 1 || s[i + 1] == '.'))
            return 0;
    }
    return 1;
}

/* RFC 7622 §3.2: a final dot must be stripped before the domainpart is
 * used to route, compare or build anything. One dot only: what remains
 * must not end in another. */
static size_t domain_strip_dot(const char *s, size_t len)
{
    return len > 0 && s[len - 1] == '.' ? len - 1 : len;
}

/* Strips the domain's trailing dot and checks every present part. */
static int parts_validate(jid_parts_t *p)
{
    if (p->domain.ptr == NULL)
        return UVX_EJID;
    p->domain.len = domain_strip_dot(p->domain.ptr, p->domain.len);
    if (!domain_valid(p->domain.ptr, p->domain.len))
        return UVX_EJID;
    if (p->node.ptr != NULL && !node_valid(p->node.ptr, p->node.len))
        return UVX_EJID;
    if (p->resource.ptr != NULL && !resource_valid(p->resource.ptr, p->resource.len))
        return UVX_EJID;
    return 0;
}

/* RFC 7622 §3.2: the resource is everything after the first '/', and the
 * node is what precedes the first '@' before that. A resource may thus hold
 * '@' and '/'; a second '@' lands in the domain, which rejects it. */
static int jid_parse(const char *jid, jid_parts_t *p)
{
    const char *slash = strchr(jid, '/');
    const char *end = slash != NULL ? slash : jid + strlen(jid);
    const char *at = memchr(jid, '@', (size_t)(end - jid));
    const char *domain = at != NULL ? at + 1 : jid;

    memset(p, 0, sizeof(*p));
    if (at != NULL) {
        p->node.ptr = jid;
        p->node.len = (size_t)(at - jid);
    }
    p->domain.ptr = domain;
    p->domain.len = (size_t)(end - domain);
    if (slash != NULL) {
        p->resource.ptr = slash + 1;
        p->resource.len = strlen(slash + 1);
    }
    return parts_validate(p);
}

/* ---- Building strings --------------------------------------------------- */

static char *span_dup(jid_span_t span)
{
    char *s = malloc(span.len + 1);

    if (s == NULL)
        return NULL;
    memcpy(s, span.ptr, span.len);
    s[span.len] = '\0';
    return s;
}

/* "node@domain/resource" with the absent parts (and separators) left out. */
static char *parts_join(const jid_parts_t *p)
{
    size_t len = p->domain.len, off = 0;
    char *s;

    if (p->node.ptr != NULL)
        len += p->node.len + 1;
    if (p->resource.ptr != NULL)
        len += 1 + p->resource.len;
    s = malloc(len + 1);
    if (s == NULL)
        return NULL;
    if (p->node.ptr != NULL) {
        memcpy(s, p->node.ptr, p->node.len);
        off = p->node.len;
        s[off++] = '@';
    }
    memcpy(s + off, p->domain.ptr, p->domain.len);
    off += p->domain.len;
    if (p->resource.ptr != NULL) {
        s[off++] = '/';
        memcpy(s + off, p->resource.ptr, p->resource.len);
        off += p->resource.len;
    }
    s[off] = '\0';
    return s;
}

static jid_span_t span_of(const char *s)
{
    jid_span_t span = {s, s != NULL ? strlen(s) : 0};
    return span;
}

/* ---- Public API --------------------------------------------------------- */

int uvx_jid_split(const char *jid, char **node, char **domain, char **resource)
{
    jid_parts_t p;
    char *n = NULL, *d = NULL, *r = NULL;
    int err;

    if (node != NULL)
        *node = NULL;
    if (domain != NULL)
        *domain = NULL;
    if (resource != NULL)
        *resource = NULL;
    if (jid == NULL)
        return UVX_EINVAL;
    err = jid_parse(jid, &p);
    if (err != 0)
        return err;
    if (node != NULL && p.node.ptr != NULL && (n = span_dup(p.node)) == NULL)
        goto nomem;
    if (domain != NULL && (d = span_dup(p.domain)) == NULL)
        goto nomem;
    if (resource != NULL && p.resource.ptr != NULL && (r = span_dup(p.resource)) == NULL)
        goto nomem;
    if (node != NULL)
        *node = n;
    if (domain != NULL)
        *domain = d;
    if (resource != NULL)
        *resource = r;
    return 0;

nomem:
    free(n);
    free(d);
    free(r);
    return UVX_ENOMEM;
}

char *uvx_jid_node(const char *jid)
{
    char *node;
    return uvx_jid_split(jid, &node, NULL, NULL) == 0 ? node : NULL;
}

char *uvx_jid_domain(const char *jid)
{
    char *domain;
    return uvx_jid_split(jid, NULL, &domain, NULL) == 0 ? domain : NULL;
}

char *uvx_jid_resource(const char *jid)
{
    char *resource;
    return uvx_jid_split(jid, NULL, NULL, &resource) == 0 ? resource : NULL;
}

char *uvx_jid_bare(const char *jid)
{
    jid_parts_t p;

    if (jid == NULL || jid_parse(jid, &p) != 0)
        return NULL;
    p.resource.ptr = NULL;
    return parts_join(&p);
}

char *uvx_jid_make(const char *node, const char *domain, const char *resource)
{
    jid_parts_t p;

    p.node = span_of(node);
    p.domain = span_of(domain);
    p.resource = span_of(resource);
    if (parts_validate(&p) != 0)
        return NULL;
    return parts_join(&p);
}

int uvx_jid_valid(const char *jid)
{
    jid_parts_t p;
    return jid != NULL && jid_parse(jid, &p) == 0;
}

static char ascii_lower(char c)
{
    return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

/* Domains compare case-insensitively in ASCII only; other bytes exactly
 * (proper IDNA comparison would need the Unicode tables). */
static int domain_equal(jid_span_t a, jid_span_t b)
{
    size_t i;

    if (a.len != b.len)
        return 0;
    for (i = 0; i < a.len; i++) {
        if (ascii_lower(a.ptr[i]) != ascii_lower(b.ptr[i]))
            return 0;
    }
    return 1;
}

/* Nodes compare byte for byte: without PRECIS case mapping we cannot tell
 * which differences the server would fold away, so we claim none. */
static int node_equal(jid_span_t a, jid_span_t b)
{
    if (a.ptr == NULL || b.ptr == NULL)
        return a.ptr == b.ptr;
    return a.len == b.len && memcmp(a.ptr, b.ptr, a.len) == 0;
}

int uvx_jid_bare_equal(const char *a, const char *b)
{
    jid_parts_t pa, pb;

    if (a == NULL || b == NULL || jid_parse(a, &pa) != 0 || jid_parse(b, &pb) != 0)
        return 0;
    return node_equal(pa.node, pb.node) && domain_equal(pa.domain, pb.domain);
}

/* ---- XEP-0106 ----------------------------------------------------------- */

/* The characters XEP-0106 escapes and their codes. Codes are lowercase
 * and case is significant: "\2F" is not an escape. */
static const struct {
    char ch;
    char code[3];
} escapes[] = {
    {' ', "20"}, {'"', "22"}, {'&', "26"}, {'\'', "27"}, {'/', "2f"},
    {':', "3a"}, {'<', "3c"}, {'>', "3e"}, {'@', "40"},  {'\\', "5c"},
};

#define ESCAPE_COUNT (sizeof(escapes) / sizeof(escapes[0]))

/* If `s` starts with a recognised escape sequence ("\27"...), the index of
 * its entry in escapes[], else -1. */
static int escape_sequence_at(const char *s)
{
    size_t i;

    if (s[0] != '\\' || s[1] == '\0' || s[2] == '\0')
        return -1;
    for (i = 0; i < ESCAPE_COUNT; i++) {
        if (s[1] == escapes[i].code[0] && s[2] == escapes[i].code[1])
            return (int)i;
    }
    return -1;
}

/* The entry for a character XEP-0106 can escape, or -1. */
static int escape_entry_for(char c)
{
    size_t i;

    for (i = 0; i < ESCAPE_COUNT; i++) {
        if (escapes[i].ch == c)
            return (int)i;
    }
    return -1;
}

/* XEP-0106 §4.1: escape the nine disallowed characters, and a backslash
 * only where it starts something that would unescape ("\27" -> "\5c27"),
 * so existing JIDs holding other backslashes stay as they are. \20 may not
 * begin or end the result, so a leading or trailing space is an error. */
char *uvx_jid_escape_node(const char *node)
{
    size_t len, i, off = 0;
    char *out;
    int e;

    if (node == NULL)
        return NULL;
    len = strlen(node);
    if (len == 0 || node[0] == ' ' || node[len - 1] == ' ')
        return NULL;
    if (len > UVX_JID_PART_MAX)
        return NULL; /* escaping never shrinks, so the result would be too long */
    out = malloc(3 * len + 1);
    if (out == NULL)
        return NULL;
    for (i = 0; i < len; i++) {
        /* A backslash that starts no sequence is an ordinary character. */
        if (node[i] == '\\' && escape_sequence_at(node + i) < 0)
            e = -1;
        else
            e = escape_entry_for(node[i]);
        if (e < 0) {
            out[off++] = node[i];
            continue;
        }
        out[off++] = '\\';
        out[off++] = escapes[e].code[0];
        out[off++] = escapes[e].code[1];
    }
    out[off] = '\0';
    /* The result must be usable as a localpart: this also rejects control
     * characters, bad UTF-8 and results over 1023 bytes. */
    if (!node_valid(out, off)) {
        free(out);
        return NULL;
    }
    return out;
}

/* XEP-0106 §4.1: only the ten recognised sequences are unescaped; partial
 * or unknown ones ("\2", "\41", "\2F") are left as they are. */
char *uvx_jid_unescape_node(const char *node)
{
    size_t len, i = 0, off = 0;
    char *out;
    int e;

    if (node == NULL)
        return NULL;
    len = strlen(node);
    out = malloc(len + 1);
    if (out == NULL)
        return NULL;
    while (i < len) {
        e = escape_sequence_at(node + i);
        if (e >= 0) {
            out[off++] = escapes[e].ch;
            i += 3;
        } else {
            out[off++] = node[i++];
        }
    }
    out[off] = '\0';
    return out;
}
