/*
 * libFuzzer target for the JID helpers: runs every function on the input
 * and aborts when an invariant between them breaks.
 */
#include "uvxmpp.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void require(int cond, const char *what, const char *input)
{
    if (cond)
        return;
    fprintf(stderr, "fuzz_jid invariant failed: %s (input \"%s\")\n", what, input);
    abort();
}

static int str_equal(const char *a, const char *b)
{
    if (a == NULL || b == NULL)
        return a == b;
    return strcmp(a, b) == 0;
}

/* `jid` with a trailing dot removed from its domain: what make() and
 * bare() return for it. */
static char *strip_domain_dot(const char *jid)
{
    const char *slash = strchr(jid, '/');
    size_t end = slash != NULL ? (size_t)(slash - jid) : strlen(jid);
    char *out = strdup(jid);

    if (out != NULL && end > 0 && jid[end - 1] == '.')
        memmove(out + end - 1, out + end, strlen(out + end) + 1);
    return out;
}

static char *ascii_upper(const char *s)
{
    char *out = strdup(s);

    for (char *p = out; p != NULL && *p != '\0'; p++) {
        if (*p >= 'a' && *p <= 'z')
            *p = (char)(*p - 'a' + 'A');
    }
    return out;
}

/* Invariants that hold for any string: the accessors agree with split. */
static void check_split_consistency(const char *s, char **n, char **d, char **r)
{
    int valid = uvx_jid_valid(s);
    int rc = uvx_jid_split(s, n, d, r);
    char *node = uvx_jid_node(s), *domain = uvx_jid_domain(s);
    char *resource = uvx_jid_resource(s), *bare = uvx_jid_bare(s);

    require(rc == 0 || rc == UVX_EJID, "split returns 0 or UVX_EJID", s);
    require(valid == (rc == 0), "valid agrees with split", s);
    require(rc == 0 || (*n == NULL && *d == NULL && *r == NULL), "failed split clears outs", s);
    require(str_equal(node, *n), "node() agrees with split", s);
    require(str_equal(domain, *d), "domain() agrees with split", s);
    require(str_equal(resource, *r), "resource() agrees with split", s);
    require(valid == (bare != NULL), "bare() exists iff valid", s);
    require(valid == uvx_jid_bare_equal(s, s), "bare_equal(x, x) iff valid", s);
    free(node);
    free(domain);
    free(resource);
    free(bare);
}

/* Invariants of a valid JID split into n, d, r. */
static void check_valid_jid(const char *s, const char *n, const char *d, const char *r)
{
    char *made = uvx_jid_make(n, d, r);
    char *expected = strip_domain_dot(s);
    char *bare = uvx_jid_bare(s);
    char *bare_made = uvx_jid_make(n, d, NULL);
    char *upper_domain = ascii_upper(d);
    char *upper = uvx_jid_make(n, upper_domain, r);

    require(d != NULL && strlen(d) >= 1 && strlen(d) <= UVX_JID_PART_MAX, "domain length", s);
    require(n == NULL || (strlen(n) >= 1 && strlen(n) <= UVX_JID_PART_MAX), "node length", s);
    require(r == NULL || (strlen(r) >= 1 && strlen(r) <= UVX_JID_PART_MAX), "resource length", s);
    require(n == NULL || (strchr(n, '@') == NULL && strchr(n, '/') == NULL), "node separators", s);
    require(strchr(d, '@') == NULL && strchr(d, '/') == NULL, "domain separators", s);
    require(str_equal(made, expected), "make(split(x)) == x modulo the trailing dot", s);
    require(uvx_jid_valid(bare), "bare is valid", s);
    require(str_equal(bare, bare_made), "bare == make(node, domain)", s);
    require(uvx_jid_bare_equal(s, bare) && uvx_jid_bare_equal(bare, s), "bare_equal(x, bare)", s);
    require(upper != NULL && uvx_jid_bare_equal(s, upper), "domain case is ignored", s);
    free(made);
    free(expected);
    free(bare);
    free(bare_made);
    free(upper_domain);
    free(upper);
}

/* The input used as a single part: make() accepts it iff split() of the
 * result gives it back. */
static void check_as_parts(const char *s)
{
    char *as_node = uvx_jid_make(s, "example.com", NULL);
    char *as_domain = uvx_jid_make(NULL, s, NULL);
    char *as_resource = uvx_jid_make(NULL, "example.com", s);
    char *part;

    if (as_node != NULL) {
        part = uvx_jid_node(as_node);
        require(str_equal(part, s), "node survives make/split", s);
        free(part);
    }
    if (as_domain != NULL) {
        char *expected = strip_domain_dot(s);
        part = uvx_jid_domain(as_domain);
        require(str_equal(part, expected), "domain survives make/split", s);
        free(part);
        free(expected);
    }
    if (as_resource != NULL) {
        part = uvx_jid_resource(as_resource);
        require(str_equal(part, s), "resource survives make/split", s);
        free(part);
    }
    free(as_node);
    free(as_domain);
    free(as_resource);
}

static void check_escaping(const char *s)
{
    char *escaped = uvx_jid_escape_node(s);
    char *unescaped = uvx_jid_unescape_node(s);
    size_t len = strlen(s);

    require(unescaped != NULL && strlen(unescaped) <= len, "unescape never grows", s);
    if (escaped != NULL) {
        char *back = uvx_jid_unescape_node(escaped);
        char *jid = uvx_jid_make(escaped, "example.com", NULL);
        size_t elen = strlen(escaped);

        require(str_equal(back, s), "unescape(escape(x)) == x", s);
        require(jid != NULL, "an escaped node is a valid localpart", s);
        require(strncmp(escaped, "\\20", 3) != 0, "no leading \\20", s);
        require(elen < 3 || strcmp(escaped + elen - 3, "\\20") != 0, "no trailing \\20", s);
        free(back);
        free(jid);
    }
    free(escaped);
    free(unescaped);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    char *n, *d, *r;

    if (s == NULL)
        return 0;
    memcpy(s, data, size);
    s[size] = '\0'; /* an embedded NUL just ends the string early */

    check_split_consistency(s, &n, &d, &r);
    if (d != NULL)
        check_valid_jid(s, n, d, r);
    check_as_parts(s);
    check_escaping(s);
    free(n);
    free(d);
    free(r);
    free(s);
    return 0;
}
