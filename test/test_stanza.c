/* Unit tests for the stanza tree, serializer, builder, fmt and reply helpers. */
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "parser.h"
#include "stanza.h"
#include "tap.h"

/* ---- Helpers ------------------------------------------------------------- */

static int same_str(const char *a, const char *b)
{
    return a == NULL || b == NULL ? a == b : strcmp(a, b) == 0;
}

/* 1 if the two trees have the same names, namespaces, attributes (in
 * order), text and children. */
static int trees_equal(const uvx_stanza_t *a, const uvx_stanza_t *b)
{
    if (uvx_stanza_is_text(a) || uvx_stanza_is_text(b)) {
        return uvx_stanza_is_text(a) && uvx_stanza_is_text(b) && a->len == b->len &&
               memcmp(a->name, b->name, a->len) == 0;
    }
    if (!same_str(uvx_stanza_name(a), uvx_stanza_name(b)) ||
        !same_str(uvx_stanza_ns(a), uvx_stanza_ns(b)) ||
        uvx_stanza_attr_count(a) != uvx_stanza_attr_count(b))
        return 0;
    for (int i = 0; i < uvx_stanza_attr_count(a); i++) {
        const char *an, *av, *bn, *bv;
        uvx_stanza_attr_at(a, i, &an, &av);
        uvx_stanza_attr_at(b, i, &bn, &bv);
        if (strcmp(an, bn) != 0 || strcmp(av, bv) != 0)
            return 0;
    }
    const uvx_stanza_t *ca = uvx_stanza_children(a), *cb = uvx_stanza_children(b);
    for (; ca && cb; ca = uvx_stanza_next(ca), cb = uvx_stanza_next(cb))
        if (!trees_equal(ca, cb))
            return 0;
    return ca == NULL && cb == NULL;
}

/* Serializes with `outer_ns`, checks the text, frees it. */
static int serializes_to(const uvx_stanza_t *s, const char *outer_ns, const char *expected)
{
    char *out = NULL;
    size_t len = 0;
    int rc = uvx_stanza_serialize(s, outer_ns, &out, &len);
    int ok = rc == 0 && out != NULL && strlen(out) == len && strcmp(out, expected) == 0;
    if (!ok)
        printf("# serialized: %s\n# expected:   %s\n", out ? out : "(null)", expected);
    free(out);
    return ok;
}

static uvx_stanza_t *parse(const char *xml)
{
    return uvx_stanza_from_string(xml, strlen(xml), NULL);
}

/* serialize -> parse -> identical tree, and the same bytes again. */
static int round_trips(const uvx_stanza_t *s)
{
    char *xml = uvx_stanza_to_string(s);
    if (xml == NULL)
        return 0;
    int err = 0;
    uvx_stanza_t *back = uvx_stanza_from_string(xml, strlen(xml), &err);
    char *again = uvx_stanza_to_string(back);
    int ok = back != NULL && trees_equal(s, back) && again != NULL && strcmp(xml, again) == 0;
    if (!ok)
        printf("# round trip failed (err %d): %s\n#   -> %s\n", err, xml, again ? again : "(null)");
    free(xml);
    free(again);
    uvx_stanza_unref(back);
    return ok;
}

/* ---- Nodes --------------------------------------------------------------- */

static void test_new_element(void)
{
    uvx_stanza_t *s = uvx_stanza_new("message");
    CHECK(s != NULL);
    CHECK(uvx_stanza_is_element(s));
    CHECK(!uvx_stanza_is_text(s));
    CHECK_STR(uvx_stanza_name(s), "message");
    CHECK(uvx_stanza_ns(s) == NULL);
    CHECK(uvx_stanza_parent(s) == NULL);
    CHECK(uvx_stanza_children(s) == NULL);
    CHECK_STR(uvx_stanza_text(s), "");
    CHECK_INT(uvx_stanza_attr_count(s), 0);
    CHECK_INT(uvx_stanza_set_name(s, "iq"), 0);
    CHECK_STR(uvx_stanza_name(s), "iq");
    CHECK_INT(uvx_stanza_set_name(s, "presence"), 0); /* replaces a non-inline name */
    CHECK_STR(uvx_stanza_name(s), "presence");
    CHECK_INT(uvx_stanza_set_name(s, "bad name"), UVX_EINVAL);
    CHECK_INT(uvx_stanza_set_name(s, NULL), UVX_EINVAL);
    CHECK_STR(uvx_stanza_name(s), "presence");
    uvx_stanza_unref(s);
}

static void test_new_element_rejects_bad_names(void)
{
    const char *bad[] = {"",    "a b",  "1abc", "-x",  "a<b", "a>b",  "a&b",
                         "a'b", "a\"b", "a=b",  "a/b", "p:x", "\xff", "a\x01"};
    CHECK(uvx_stanza_new(NULL) == NULL);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        uvx_stanza_t *s = uvx_stanza_new(bad[i]);
        if (s != NULL)
            printf("# accepted bad name \"%s\"\n", bad[i]);
        CHECK(s == NULL);
        uvx_stanza_unref(s);
    }
    uvx_stanza_t *ok = uvx_stanza_new("caf\xc3\xa9_x-1.2");
    CHECK(ok != NULL);
    uvx_stanza_unref(ok);
}

static void test_text_nodes(void)
{
    uvx_stanza_t *t = uvx_stanza_new_text("hello & <world>");
    CHECK(t != NULL);
    CHECK(uvx_stanza_is_text(t));
    CHECK(!uvx_stanza_is_element(t));
    CHECK(uvx_stanza_name(t) == NULL);
    CHECK(uvx_stanza_ns(t) == NULL);
    CHECK(uvx_stanza_attr(t, "id") == NULL);
    CHECK_INT(uvx_stanza_set_attr(t, "id", "1"), UVX_EINVAL);
    CHECK_INT(uvx_stanza_set_name(t, "x"), UVX_EINVAL);
    CHECK_INT(uvx_stanza_set_ns(t, "x"), UVX_EINVAL);
    CHECK_STR(uvx_stanza_text(t), "hello & <world>");
    CHECK_INT(uvx_stanza_set_text(t, "bye"), 0);
    CHECK_STR(uvx_stanza_text(t), "bye");
    uvx_stanza_unref(t);

    t = uvx_stanza_new_text_len("abcdef", 3);
    CHECK_STR(uvx_stanza_text(t), "abc");
    uvx_stanza_unref(t);

    t = uvx_stanza_new_text("");
    CHECK(t != NULL);
    CHECK_STR(uvx_stanza_text(t), "");
    uvx_stanza_unref(t);

    t = uvx_stanza_new_text("\xe2\x82\xac \xf0\x9f\x98\x80 \t\r\n");
    CHECK(t != NULL);
    uvx_stanza_unref(t);

    /* What no XML parser would read back is refused up front. */
    CHECK(uvx_stanza_new_text(NULL) == NULL);
    CHECK(uvx_stanza_new_text("bell\x07") == NULL);
    CHECK(uvx_stanza_new_text_len("a\0b", 3) == NULL);
    CHECK(uvx_stanza_new_text("\xc3") == NULL);             /* truncated */
    CHECK(uvx_stanza_new_text("\xc0\xaf") == NULL);         /* overlong */
    CHECK(uvx_stanza_new_text("\xed\xa0\x80") == NULL);     /* surrogate */
    CHECK(uvx_stanza_new_text("\xef\xbf\xbf") == NULL);     /* U+FFFF */
    CHECK(uvx_stanza_new_text("\xf4\x90\x80\x80") == NULL); /* > U+10FFFF */
}

static void test_empty_text_len_null(void)
{
    uvx_stanza_t *t = uvx_stanza_new_text_len(NULL, 0);
    CHECK(t != NULL);
    CHECK_STR(uvx_stanza_text(t), "");
    uvx_stanza_unref(t);
    CHECK(uvx_stanza_new_text_len(NULL, 1) == NULL);
}

static void test_refcount(void)
{
    uvx_stanza_t *p = uvx_stanza_new("p");
    uvx_stanza_t *c = uvx_stanza_new("c");
    CHECK(uvx_stanza_ref(p) == p);
    CHECK_INT(p->refs, 2);
    uvx_stanza_unref(p);
    CHECK_INT(p->refs, 1);

    CHECK_INT(uvx_stanza_add_child(p, c), 0);
    CHECK_INT(c->refs, 2); /* ours and the parent's */
    uvx_stanza_unref(c);   /* the parent keeps it alive */
    CHECK_STR(uvx_stanza_name(uvx_stanza_children(p)), "c");

    /* A child someone still holds outlives its parent, detached. */
    uvx_stanza_t *kept = uvx_stanza_ref(uvx_stanza_children(p));
    uvx_stanza_unref(p);
    CHECK(uvx_stanza_parent(kept) == NULL);
    CHECK(uvx_stanza_next(kept) == NULL);
    CHECK_INT(kept->refs, 1);
    uvx_stanza_unref(kept);

    uvx_stanza_unref(NULL);
    CHECK(uvx_stanza_ref(NULL) == NULL);
}

/* ---- Attributes ---------------------------------------------------------- */

static void test_attributes(void)
{
    uvx_stanza_t *s = uvx_stanza_new("iq");
    CHECK_INT(uvx_stanza_set_attr(s, "type", "get"), 0);
    CHECK_INT(uvx_stanza_set_attr(s, "id", "a1"), 0);
    CHECK_INT(uvx_stanza_set_attr(s, "xml:lang", "en"), 0);
    CHECK_INT(uvx_stanza_attr_count(s), 3);
    CHECK_STR(uvx_stanza_attr(s, "type"), "get");
    CHECK_STR(uvx_stanza_attr(s, "xml:lang"), "en");
    CHECK(uvx_stanza_attr(s, "to") == NULL);

    /* Replacing keeps the position. */
    CHECK_INT(uvx_stanza_set_attr(s, "type", "set"), 0);
    CHECK_INT(uvx_stanza_attr_count(s), 3);
    const char *n = NULL, *v = NULL;
    CHECK_INT(uvx_stanza_attr_at(s, 0, &n, &v), 0);
    CHECK_STR(n, "type");
    CHECK_STR(v, "set");
    CHECK_INT(uvx_stanza_attr_at(s, 2, &n, NULL), 0);
    CHECK_STR(n, "xml:lang");
    CHECK_INT(uvx_stanza_attr_at(s, 3, &n, &v), UVX_ENOTFOUND);
    CHECK_INT(uvx_stanza_attr_at(s, -1, &n, &v), UVX_ENOTFOUND);

    CHECK_INT(uvx_stanza_remove_attr(s, "type"), 0);
    CHECK_INT(uvx_stanza_remove_attr(s, "type"), UVX_ENOTFOUND);
    CHECK_INT(uvx_stanza_attr_count(s), 2);
    CHECK_INT(uvx_stanza_attr_at(s, 0, &n, &v), 0);
    CHECK_STR(n, "id");
    CHECK_STR(v, "a1");

    /* Values may hold anything XML can carry, including an empty string. */
    CHECK_INT(uvx_stanza_set_attr(s, "x", ""), 0);
    CHECK_STR(uvx_stanza_attr(s, "x"), "");
    CHECK_INT(uvx_stanza_set_attr(s, "y", "a'b\"c<&>\t\r\n"), 0);
    CHECK_STR(uvx_stanza_attr(s, "y"), "a'b\"c<&>\t\r\n");

    /* Misuse. */
    CHECK_INT(uvx_stanza_set_attr(s, NULL, "v"), UVX_EINVAL);
    CHECK_INT(uvx_stanza_set_attr(s, "v", NULL), UVX_EINVAL);
    CHECK_INT(uvx_stanza_set_attr(s, "bad name", "v"), UVX_EINVAL);
    CHECK_INT(uvx_stanza_set_attr(s, "v", "\x01"), UVX_EINVAL);
    CHECK_INT(uvx_stanza_set_attr(NULL, "v", "v"), UVX_EINVAL);
    CHECK_INT(uvx_stanza_remove_attr(NULL, "v"), UVX_EINVAL);
    CHECK_INT(uvx_stanza_remove_attr(s, NULL), UVX_EINVAL);
    CHECK(uvx_stanza_attr(NULL, "id") == NULL);
    CHECK(uvx_stanza_attr(s, NULL) == NULL);
    CHECK_INT(uvx_stanza_attr_count(NULL), 0);
    CHECK_INT(uvx_stanza_attr_at(NULL, 0, &n, &v), UVX_EINVAL);
    uvx_stanza_unref(s);
}

static void test_many_attributes_grow(void)
{
    uvx_stanza_t *s = uvx_stanza_new("x");
    char name[16], value[16];
    for (int i = 0; i < 100; i++) {
        snprintf(name, sizeof(name), "a%d", i);
        snprintf(value, sizeof(value), "v%d", i);
        CHECK_INT(uvx_stanza_set_attr(s, name, value), 0);
    }
    CHECK_INT(uvx_stanza_attr_count(s), 100);
    CHECK_STR(uvx_stanza_attr(s, "a0"), "v0");
    CHECK_STR(uvx_stanza_attr(s, "a99"), "v99");
    const char *n;
    CHECK_INT(uvx_stanza_attr_at(s, 57, &n, NULL), 0);
    CHECK_STR(n, "a57");
    uvx_stanza_unref(s);
}

static void test_xmlns_is_the_namespace(void)
{
    uvx_stanza_t *s = uvx_stanza_new("query");
    CHECK(uvx_stanza_attr(s, "xmlns") == NULL);
    CHECK_INT(uvx_stanza_remove_attr(s, "xmlns"), UVX_ENOTFOUND);
    CHECK_INT(uvx_stanza_set_attr(s, "xmlns", "jabber:iq:roster"), 0);
    CHECK_STR(uvx_stanza_ns(s), "jabber:iq:roster");
    CHECK_STR(uvx_stanza_attr(s, "xmlns"), "jabber:iq:roster");
    CHECK(uvx_stanza_attr(s, "xmlns") == uvx_stanza_ns(s));
    CHECK_INT(uvx_stanza_attr_count(s), 0); /* the namespace is not counted */
    CHECK_INT(uvx_stanza_set_ns(s, "urn:other"), 0);
    CHECK_STR(uvx_stanza_attr(s, "xmlns"), "urn:other");
    CHECK_INT(uvx_stanza_remove_attr(s, "xmlns"), 0);
    CHECK(uvx_stanza_ns(s) == NULL);
    CHECK_INT(uvx_stanza_set_ns(s, "urn:x"), 0);
    CHECK_INT(uvx_stanza_set_ns(s, ""), 0); /* xmlns='' means none */
    CHECK(uvx_stanza_ns(s) == NULL);
    CHECK_INT(uvx_stanza_set_ns(s, "urn:x"), 0);
    CHECK_INT(uvx_stanza_set_ns(s, NULL), 0);
    CHECK(uvx_stanza_ns(s) == NULL);
    CHECK_INT(uvx_stanza_set_ns(NULL, "urn:x"), UVX_EINVAL);
    uvx_stanza_unref(s);
}

static void test_shorthands(void)
{
    uvx_stanza_t *s = uvx_stanza_new("iq");
    CHECK(uvx_stanza_id(s) == NULL);
    CHECK_INT(uvx_stanza_set_id(s, "42"), 0);
    CHECK_INT(uvx_stanza_set_type(s, "get"), 0);
    CHECK_INT(uvx_stanza_set_to(s, "a@b/c"), 0);
    CHECK_INT(uvx_stanza_set_from(s, "d@e/f"), 0);
    CHECK_STR(uvx_stanza_id(s), "42");
    CHECK_STR(uvx_stanza_type(s), "get");
    CHECK_STR(uvx_stanza_to(s), "a@b/c");
    CHECK_STR(uvx_stanza_from(s), "d@e/f");
    CHECK_STR(uvx_stanza_attr(s, "to"), "a@b/c");
    CHECK_INT(uvx_stanza_set_id(s, NULL), UVX_EINVAL);
    CHECK_INT(uvx_stanza_set_id(NULL, "x"), UVX_EINVAL);
    CHECK(uvx_stanza_id(NULL) == NULL);
    CHECK(uvx_stanza_type(NULL) == NULL);
    CHECK(uvx_stanza_to(NULL) == NULL);
    CHECK(uvx_stanza_from(NULL) == NULL);
    uvx_stanza_unref(s);
}

/* ---- Children ------------------------------------------------------------ */

static void test_children_and_navigation(void)
{
    uvx_stanza_t *m = uvx_stanza_new("message");
    uvx_stanza_t *body = uvx_stanza_new("body");
    uvx_stanza_t *x1 = uvx_stanza_new("x");
    uvx_stanza_t *x2 = uvx_stanza_new("x");
    uvx_stanza_set_ns(x1, "urn:a");
    uvx_stanza_set_ns(x2, "urn:b");
    CHECK_INT(uvx_stanza_adopt(m, uvx_stanza_new_text("lead")), 0);
    CHECK_INT(uvx_stanza_adopt(m, body), 0);
    CHECK_INT(uvx_stanza_adopt(m, x1), 0);
    CHECK_INT(uvx_stanza_adopt(m, x2), 0);

    uvx_stanza_t *first = uvx_stanza_children(m);
    CHECK(uvx_stanza_is_text(first));
    CHECK(uvx_stanza_next(first) == body);
    CHECK(uvx_stanza_next(x2) == NULL);
    CHECK(uvx_stanza_parent(body) == m);
    CHECK(uvx_stanza_first_element(m) == body);
    CHECK(uvx_stanza_child(m, "x") == x1);
    CHECK(uvx_stanza_child(m, "nope") == NULL);
    CHECK(uvx_stanza_child_ns(m, "urn:b") == x2);
    CHECK(uvx_stanza_child_ns(m, "urn:c") == NULL);
    CHECK(uvx_stanza_child_name_ns(m, "x", "urn:b") == x2);
    CHECK(uvx_stanza_child_name_ns(m, "body", "urn:b") == NULL);
    CHECK(uvx_stanza_first_element(body) == NULL);

    int count = 0;
    for (uvx_stanza_t *c = uvx_stanza_children(m); c; c = uvx_stanza_next(c))
        count++;
    CHECK_INT(count, 4);

    /* Removing from the middle, the ends, then what is left. */
    CHECK_INT(uvx_stanza_remove_child(m, x1), 0);
    CHECK(uvx_stanza_next(body) == x2);
    CHECK(uvx_stanza_child(m, "x") == x2);
    CHECK_INT(uvx_stanza_remove_child(m, first), 0);
    CHECK(uvx_stanza_children(m) == body);
    CHECK_INT(uvx_stanza_remove_child(m, x2), 0);
    CHECK(uvx_stanza_next(body) == NULL);
    uvx_stanza_ref(body);
    CHECK_INT(uvx_stanza_remove_child(m, body), 0);
    CHECK(uvx_stanza_children(m) == NULL);
    CHECK(uvx_stanza_parent(body) == NULL);
    CHECK_INT(uvx_stanza_remove_child(m, body), UVX_ENOTFOUND);
    /* Detached, it can be added again. */
    CHECK_INT(uvx_stanza_adopt(m, body), 0);
    CHECK(uvx_stanza_children(m) == body);

    CHECK(uvx_stanza_child(NULL, "x") == NULL);
    CHECK(uvx_stanza_child(m, NULL) == NULL);
    CHECK(uvx_stanza_child_ns(m, NULL) == NULL);
    CHECK(uvx_stanza_child_name_ns(m, NULL, "x") == NULL);
    CHECK(uvx_stanza_first_element(NULL) == NULL);
    CHECK(uvx_stanza_children(NULL) == NULL);
    CHECK(uvx_stanza_next(NULL) == NULL);
    CHECK(uvx_stanza_parent(NULL) == NULL);
    uvx_stanza_unref(m);
}

static void test_add_child_refuses_misuse(void)
{
    uvx_stanza_t *a = uvx_stanza_new("a");
    uvx_stanza_t *b = uvx_stanza_new("b");
    uvx_stanza_t *c = uvx_stanza_new("c");
    uvx_stanza_t *t = uvx_stanza_new_text("t");
    CHECK_INT(uvx_stanza_add_child(a, b), 0);
    CHECK_INT(uvx_stanza_add_child(b, c), 0);

    CHECK_INT(uvx_stanza_add_child(a, a), UVX_EINVAL); /* itself */
    CHECK_INT(uvx_stanza_add_child(c, a), UVX_EINVAL); /* an ancestor: a cycle */
    CHECK_INT(uvx_stanza_add_child(a, c), UVX_EINVAL); /* already has a parent */
    CHECK_INT(uvx_stanza_add_child(t, c), UVX_EINVAL); /* text parent */
    uvx_stanza_t *d = uvx_stanza_new("d");
    CHECK_INT(uvx_stanza_add_child(t, d), UVX_EINVAL);
    CHECK_INT(uvx_stanza_add_child(NULL, d), UVX_EINVAL);
    CHECK_INT(uvx_stanza_add_child(a, NULL), UVX_EINVAL);
    CHECK_INT(d->refs, 1); /* failures took no reference */
    CHECK(uvx_stanza_parent(c) == b);
    CHECK(uvx_stanza_next(b) == NULL);

    /* adopt consumes the reference even when it fails. */
    CHECK_INT(uvx_stanza_adopt(t, d), UVX_EINVAL);
    CHECK_INT(uvx_stanza_adopt(a, NULL), UVX_EINVAL);
    CHECK_INT(uvx_stanza_remove_child(NULL, b), UVX_EINVAL);
    CHECK_INT(uvx_stanza_remove_child(a, NULL), UVX_EINVAL);
    CHECK_INT(uvx_stanza_remove_child(a, c), UVX_ENOTFOUND); /* a grandchild */

    uvx_stanza_unref(a);
    uvx_stanza_unref(b);
    uvx_stanza_unref(c);
    uvx_stanza_unref(t);
}

/* ---- Text ---------------------------------------------------------------- */

static void test_text_concatenation_and_cache(void)
{
    uvx_stanza_t *s = uvx_stanza_new("body");
    CHECK_STR(uvx_stanza_text(s), "");
    CHECK_INT(uvx_stanza_adopt(s, uvx_stanza_new_text("one")), 0);
    CHECK_STR(uvx_stanza_text(s), "one");
    uvx_stanza_t *inner = uvx_stanza_new("b");
    uvx_stanza_adopt(inner, uvx_stanza_new_text("NOT DIRECT"));
    CHECK_INT(uvx_stanza_adopt(s, inner), 0); /* borrowed from here on */
    CHECK_INT(uvx_stanza_adopt(s, uvx_stanza_new_text(" two")), 0);
    CHECK_STR(uvx_stanza_text(s), "one two"); /* only direct text children */
    CHECK(s->text_cache != NULL);

    /* Every change of the children drops the cached concatenation. */
    CHECK_INT(uvx_stanza_adopt(s, uvx_stanza_new_text(" three")), 0);
    CHECK_STR(uvx_stanza_text(s), "one two three");
    CHECK_INT(stanza_append_text(s, "!", 1), 0);
    CHECK_STR(uvx_stanza_text(s), "one two three!");
    uvx_stanza_t *extra = uvx_stanza_new_text("?");
    stanza_append_child(s, extra);
    CHECK_STR(uvx_stanza_text(s), "one two three!?");
    CHECK_INT(uvx_stanza_remove_child(s, uvx_stanza_children(s)), 0);
    CHECK_STR(uvx_stanza_text(s), " two three!?");
    CHECK_INT(uvx_stanza_set_text(uvx_stanza_children(inner), "x"), 0);
    CHECK_STR(uvx_stanza_text(inner), "x");
    /* Changing a direct text child's text also counts. */
    CHECK_INT(uvx_stanza_set_text(uvx_stanza_next(inner), " 2"), 0);
    CHECK_STR(uvx_stanza_text(s), " 2 three!?");

    CHECK_INT(uvx_stanza_set_text(s, "replaced"), 0);
    CHECK_STR(uvx_stanza_text(s), "replaced");
    CHECK(uvx_stanza_first_element(s) == NULL);
    CHECK(uvx_stanza_is_text(uvx_stanza_children(s)));
    CHECK(uvx_stanza_next(uvx_stanza_children(s)) == NULL);
    CHECK_INT(uvx_stanza_set_text(s, ""), 0);
    CHECK(uvx_stanza_children(s) == NULL);
    CHECK_STR(uvx_stanza_text(s), "");
    CHECK_INT(uvx_stanza_set_text(s, NULL), UVX_EINVAL);
    CHECK_INT(uvx_stanza_set_text(s, "\x1b[0m"), UVX_EINVAL);
    CHECK_INT(uvx_stanza_set_text(NULL, "x"), UVX_EINVAL);
    CHECK_STR(uvx_stanza_text(NULL), "");
    uvx_stanza_unref(s);
}

static void test_child_text(void)
{
    uvx_stanza_t *m = uvx_stanza_new("message");
    uvx_stanza_t *body = uvx_stanza_new("body");
    uvx_stanza_set_text(body, "hi there");
    uvx_stanza_adopt(m, body);
    uvx_stanza_adopt(m, uvx_stanza_new("empty"));
    CHECK_STR(uvx_stanza_child_text(m, "body"), "hi there");
    CHECK_STR(uvx_stanza_child_text(m, "empty"), "");
    CHECK(uvx_stanza_child_text(m, "subject") == NULL);
    CHECK(uvx_stanza_child_text(NULL, "body") == NULL);
    CHECK(uvx_stanza_child_text(m, NULL) == NULL);
    uvx_stanza_unref(m);
}

/* ---- The parser's private constructors ----------------------------------- */

static void test_private_constructors(void)
{
    /* Counted strings: the bytes after the length must not be read. */
    const char *raw = "messageXXjabber:clientYY";
    uvx_stanza_t *s = stanza_new_element(raw, 7, raw + 9, 13, 1);
    CHECK(s != NULL);
    CHECK_STR(uvx_stanza_name(s), "message");
    CHECK_STR(uvx_stanza_ns(s), "jabber:client");
    CHECK_INT(s->refs, 1);
    CHECK_INT(stanza_push_attr(s, "typeZ", 4, "chatZ", 4), 0);
    /* Past the hint: the attribute array moves out of the node. */
    CHECK_INT(stanza_push_attr(s, "id", 2, "1", 1), 0);
    CHECK_INT(stanza_push_attr(s, "to", 2, "a@b", 3), 0);
    CHECK_INT(uvx_stanza_attr_count(s), 3);
    CHECK_STR(uvx_stanza_attr(s, "type"), "chat");
    CHECK_STR(uvx_stanza_attr(s, "to"), "a@b");
    /* Set on an inline name / namespace must not free inside the block. */
    CHECK_INT(uvx_stanza_set_ns(s, "jabber:server"), 0);
    CHECK_INT(uvx_stanza_set_name(s, "iq"), 0);

    uvx_stanza_t *body = stanza_new_element("body", 4, NULL, 0, 0);
    CHECK(uvx_stanza_ns(body) == NULL);
    stanza_append_child(s, body);
    CHECK(uvx_stanza_parent(body) == s);
    CHECK_INT(body->refs, 1); /* the caller's reference went to the parent */

    /* libxml2 hands text in pieces: consecutive pieces merge into one node. */
    CHECK_INT(stanza_append_text(body, "a &", 3), 0);
    CHECK_INT(stanza_append_text(body, " b", 2), 0);
    CHECK_STR(uvx_stanza_text(body), "a & b");
    char big[300];
    memset(big, 'z', sizeof(big));
    CHECK_INT(stanza_append_text(body, big, sizeof(big)), 0);
    CHECK_INT(stanza_append_text(body, "", 0), 0);
    CHECK(uvx_stanza_next(uvx_stanza_children(body)) == NULL);
    CHECK_INT(strlen(uvx_stanza_text(body)), 305);
    CHECK_INT(uvx_stanza_children(body)->len, 305);

    /* A text node someone holds is not changed behind their back. */
    uvx_stanza_t *held = uvx_stanza_ref(uvx_stanza_children(body));
    CHECK_INT(stanza_append_text(body, "tail", 4), 0);
    CHECK_INT(held->len, 305);
    CHECK_STR(uvx_stanza_text(uvx_stanza_next(held)), "tail");
    uvx_stanza_unref(held);

    uvx_stanza_t *empty = stanza_new_element("x", 1, "", 0, 0);
    CHECK(empty != NULL);
    uvx_stanza_unref(empty);
    uvx_stanza_unref(s);
}

/* ---- Copy ---------------------------------------------------------------- */

static void test_copy(void)
{
    uvx_stanza_t *m = uvx_stanza_new("message");
    uvx_stanza_set_ns(m, UVX_NS_CLIENT);
    uvx_stanza_set_to(m, "a@b");
    uvx_stanza_set_attr(m, "xml:lang", "en");
    uvx_stanza_t *body = uvx_stanza_new("body");
    uvx_stanza_set_ns(body, UVX_NS_CLIENT);
    uvx_stanza_set_text(body, "hello");
    uvx_stanza_adopt(m, body);
    uvx_stanza_t *x = uvx_stanza_new("x");
    uvx_stanza_set_ns(x, "urn:x");
    uvx_stanza_adopt(x, uvx_stanza_new("y"));
    uvx_stanza_adopt(m, x);

    uvx_stanza_t *c = uvx_stanza_copy(m);
    CHECK(c != NULL && c != m);
    CHECK(trees_equal(c, m));
    CHECK_INT(c ? c->refs : 0, 1);
    /* Independent: changing the copy leaves the original alone. */
    uvx_stanza_set_text(uvx_stanza_child(c, "body"), "changed");
    uvx_stanza_set_to(c, "z@z");
    CHECK_STR(uvx_stanza_child_text(m, "body"), "hello");
    CHECK_STR(uvx_stanza_to(m), "a@b");

    /* A copy of a child has no parent. */
    uvx_stanza_t *xc = uvx_stanza_copy(x);
    CHECK(uvx_stanza_parent(xc) == NULL);
    CHECK(trees_equal(xc, x));
    uvx_stanza_t *tc = uvx_stanza_copy(uvx_stanza_children(body));
    CHECK(uvx_stanza_is_text(tc));
    CHECK_STR(uvx_stanza_text(tc), "hello");
    CHECK(uvx_stanza_copy(NULL) == NULL);
    uvx_stanza_unref(tc);
    uvx_stanza_unref(xc);
    uvx_stanza_unref(c);
    uvx_stanza_unref(m);
}

/* ---- Attribute strings in the node's block ------------------------------- */

/* 1 if the attribute's strings live in the element's own pool. */
static int attr_in_pool(const uvx_stanza_t *s, int i)
{
    return (uintptr_t)s->attrs[i].name - (uintptr_t)s->pool < s->pool_size;
}

static int all_attrs_in_pool(const uvx_stanza_t *s)
{
    for (int i = 0; i < s->nattrs; i++)
        if (!attr_in_pool(s, i))
            return 0;
    return 1;
}

/* Bytes the attributes take as "name\0value\0" pairs. */
static size_t attr_bytes(const uvx_stanza_t *s)
{
    size_t n = 0;
    for (int i = 0; i < s->nattrs; i++)
        n += strlen(s->attrs[i].name) + strlen(s->attrs[i].value) + 2;
    return n;
}

static void test_parsed_attrs_in_block(void)
{
    const char *xml = "<message to='juliet@example.com/balcony' from='romeo@example.net/orchard' "
                      "type='chat' id='m1' xml:lang='en'><body>hi</body></message>";
    uvx_stanza_t *m = parse(xml);
    CHECK(m != NULL);
    if (m == NULL)
        return;
    CHECK_INT(uvx_stanza_attr_count(m), 5);
    CHECK(m->pool != NULL);
    CHECK(all_attrs_in_pool(m));
    CHECK_INT(m->pool_used, attr_bytes(m));
    CHECK(m->pool_used <= m->pool_size);
    CHECK_STR(uvx_stanza_attr(m, "xml:lang"), "en");
    CHECK(serializes_to(m, NULL, xml));

    /* Replacing a pool attribute: same position, new value; the parser
     * sized the pool exactly, so the value gets its own block. */
    unsigned used = m->pool_used;
    CHECK_INT(uvx_stanza_set_type(m, "normal"), 0);
    CHECK_STR(uvx_stanza_type(m), "normal");
    const char *n = NULL;
    CHECK_INT(uvx_stanza_attr_at(m, 2, &n, NULL), 0);
    CHECK_STR(n, "type");
    CHECK(!attr_in_pool(m, 2));
    CHECK_INT(m->pool_used, used);

    /* A value too big for the rest of the pool gets its own block. */
    char big[301];
    memset(big, 'j', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    CHECK_INT(uvx_stanza_set_to(m, big), 0);
    CHECK_STR(uvx_stanza_to(m), big);
    CHECK(!attr_in_pool(m, 0));
    CHECK_STR(uvx_stanza_from(m), "romeo@example.net/orchard");

    /* Removing one from the pool, then the malloc'd one. */
    CHECK_INT(uvx_stanza_remove_attr(m, "from"), 0);
    CHECK(uvx_stanza_from(m) == NULL);
    CHECK_INT(uvx_stanza_remove_attr(m, "to"), 0);
    CHECK_INT(uvx_stanza_attr_count(m), 3);
    CHECK(!attr_in_pool(m, 0) && attr_in_pool(m, 1) && attr_in_pool(m, 2));
    CHECK(serializes_to(m, NULL,
                        "<message type='normal' id='m1' xml:lang='en'><body>hi</body></message>"));

    /* A new attribute after that: still works, wherever it lands. */
    CHECK_INT(uvx_stanza_set_attr(m, "from", "a@b"), 0);
    CHECK_STR(uvx_stanza_from(m), "a@b");
    CHECK_INT(uvx_stanza_attr_count(m), 4);

    /* The name and namespace in the block can be replaced too. */
    CHECK_INT(uvx_stanza_set_name(m, "iq"), 0);
    CHECK_INT(uvx_stanza_set_ns(m, "jabber:client"), 0);
    CHECK(serializes_to(m, "jabber:client",
                        "<iq type='normal' id='m1' xml:lang='en' from='a@b'><body "
                        "xmlns=''>hi</body></iq>"));
    uvx_stanza_unref(m);
}

static void test_copy_of_parsed(void)
{
    uvx_stanza_t *m = parse("<message xmlns='jabber:client' to='a@b/c' type='chat' id='x'>"
                            "<body>one &amp; two</body><x xmlns='urn:x' a='1'/></message>");
    CHECK(m != NULL);
    if (m == NULL)
        return;
    uvx_stanza_t *c = uvx_stanza_copy(m);
    CHECK(c != NULL);
    if (c == NULL) {
        uvx_stanza_unref(m);
        return;
    }
    CHECK(trees_equal(c, m));
    /* A copy reserves exactly what its attributes need, in its own block. */
    CHECK(all_attrs_in_pool(c));
    CHECK_INT(c->pool_size, attr_bytes(m));
    CHECK_INT(c->pool_used, c->pool_size);
    uvx_stanza_t *x = uvx_stanza_child(c, "x");
    CHECK(x != NULL && all_attrs_in_pool(x) && x->pool_size == 4);
    CHECK(x != NULL && x->pool != m->pool && x->attrs[0].name != m->attrs[0].name);

    /* Independent of the original, whichever of them changes. */
    CHECK_INT(uvx_stanza_set_to(c, "z@z"), 0);
    CHECK_STR(uvx_stanza_to(m), "a@b/c");
    CHECK_INT(uvx_stanza_remove_attr(m, "id"), 0);
    CHECK_STR(uvx_stanza_id(c), "x");
    uvx_stanza_unref(m);
    CHECK(serializes_to(c, "jabber:client",
                        "<message to='z@z' type='chat' id='x'><body>one &amp; two</body>"
                        "<x xmlns='urn:x' a='1'/></message>"));
    uvx_stanza_unref(c);
}

/* Parsed stanzas are carved from an arena the parser reuses once a stanza's
 * nodes are gone: nodes a caller keeps (a whole stanza, or a child alone)
 * must stay intact while later stanzas are parsed, and can still be
 * changed, moved and freed like any node. */
static uvx_stanza_t *arena_kept[3];
static int arena_seen;

static void arena_keep(void *ud, uvx_stanza_t *s)
{
    (void)ud;
    if (arena_seen == 0) /* just the body of the first */
        arena_kept[0] = uvx_stanza_ref(uvx_stanza_child(s, "body"));
    else if (arena_seen == 1)
        arena_kept[1] = uvx_stanza_ref(s);
    arena_seen++;
}

static void test_arena_kept_nodes(void)
{
    uvx_parser_callbacks_t cb = {NULL, arena_keep, NULL, NULL};
    uvx_parser_t *p = uvx_parser_new(&cb, NULL, NULL);
    CHECK(p != NULL);
    if (p == NULL)
        return;
    const char *head = "<stream:stream xmlns='jabber:client' "
                       "xmlns:stream='http://etherx.jabber.org/streams'>";
    CHECK_INT(uvx_parser_feed(p, head, strlen(head)), 0);
    char xml[256];
    for (int i = 0; i < 6; i++) {
        int n = snprintf(xml, sizeof(xml),
                         "<message id='m%d' type='chat'><body a='%d'>text %d</body></message>", i,
                         i, i);
        CHECK_INT(uvx_parser_feed(p, xml, (size_t)n), 0);
    }
    uvx_parser_free(p);
    CHECK_INT(arena_seen, 6);
    uvx_stanza_t *body = arena_kept[0], *m1 = arena_kept[1];
    CHECK(body != NULL && m1 != NULL);
    if (body == NULL || m1 == NULL)
        return;
    CHECK(uvx_stanza_parent(body) == NULL); /* its stanza is gone */
    CHECK_STR(uvx_stanza_text(body), "text 0");
    CHECK_STR(uvx_stanza_attr(body, "a"), "0");
    CHECK_STR(uvx_stanza_id(m1), "m1");
    CHECK_STR(uvx_stanza_child_text(m1, "body"), "text 1");

    /* Changes allocate outside the arena; the arena's bytes stay as they were. */
    CHECK_INT(uvx_stanza_set_attr(body, "a", "a longer value than before"), 0);
    CHECK_INT(uvx_stanza_set_attr(body, "b", "new"), 0);
    CHECK_INT(uvx_stanza_set_text(body, "changed"), 0);
    CHECK_INT(uvx_stanza_set_name(m1, "iq"), 0);
    CHECK(serializes_to(body, "jabber:client",
                        "<body a='a longer value than before' b='new'>changed</body>"));

    /* A child moved from one kept stanza to the other kept node. */
    uvx_stanza_t *b1 = uvx_stanza_child(m1, "body");
    uvx_stanza_ref(b1);
    CHECK_INT(uvx_stanza_remove_child(m1, b1), 0);
    CHECK_INT(uvx_stanza_adopt(body, b1), 0);
    CHECK(serializes_to(m1, "jabber:client", "<iq id='m1' type='chat'/>"));
    uvx_stanza_unref(m1); /* its arena stays: b1 lives there */
    CHECK_STR(uvx_stanza_child_text(body, "body"), "text 1");
    uvx_stanza_unref(body);
    arena_kept[0] = arena_kept[1] = NULL;
}

static void test_attr_pool_overflow(void)
{
    /* Room for 2 attributes and 12 bytes of strings. */
    uvx_stanza_t *s = stanza_new_element_sized("x", 1, NULL, 0, 2, 12);
    CHECK(s != NULL);
    if (s == NULL)
        return;
    CHECK_INT(s->pool_size, 12);
    CHECK_INT(stanza_push_attr(s, "a", 1, "1234567890", 10), 0); /* 13 bytes: too big */
    CHECK(!attr_in_pool(s, 0));
    CHECK_INT(s->pool_used, 0);
    CHECK_INT(stanza_push_attr(s, "b", 1, "1", 1), 0); /* 4 bytes */
    CHECK(attr_in_pool(s, 1));
    CHECK_INT(stanza_push_attr(s, "c", 1, "22", 2), 0); /* 5 bytes: 9 used */
    CHECK(attr_in_pool(s, 2));
    CHECK(!(s->flags & STANZA_F_ATTRS_INLINE));          /* past the hint: the array moved out */
    CHECK_INT(stanza_push_attr(s, "d", 1, "333", 3), 0); /* 6 bytes > 3 left */
    CHECK(!attr_in_pool(s, 3));
    CHECK_INT(stanza_push_attr(s, "e", 1, "", 0), 0); /* exactly the 3 left */
    CHECK(attr_in_pool(s, 4));
    CHECK_INT(s->pool_used, s->pool_size);
    CHECK(serializes_to(s, NULL, "<x a='1234567890' b='1' c='22' d='333' e=''/>"));

    /* The pool is full: a replacement of a pool attribute is malloc'd. */
    CHECK_INT(uvx_stanza_set_attr(s, "b", "B"), 0);
    CHECK(!attr_in_pool(s, 1));
    /* A value taken from the attribute itself is copied before the old
     * storage goes, in the pool or not. */
    CHECK_INT(uvx_stanza_set_attr(s, "a", uvx_stanza_attr(s, "a")), 0);
    CHECK_STR(uvx_stanza_attr(s, "a"), "1234567890");
    CHECK_INT(uvx_stanza_set_attr(s, "c", uvx_stanza_attr(s, "c")), 0);
    CHECK_STR(uvx_stanza_attr(s, "c"), "22");
    /* A malloc'd one replaced by another. */
    CHECK_INT(uvx_stanza_set_attr(s, "a", "A"), 0);
    CHECK_INT(uvx_stanza_remove_attr(s, "c"), 0);
    CHECK_INT(uvx_stanza_remove_attr(s, "d"), 0);
    CHECK(serializes_to(s, NULL, "<x a='A' b='B' e=''/>"));

    uvx_stanza_t *copy = uvx_stanza_copy(s);
    CHECK(copy != NULL && trees_equal(copy, s) && all_attrs_in_pool(copy));
    uvx_stanza_unref(copy);
    uvx_stanza_unref(s);
}

static void test_attr_pool_sizes(void)
{
    /* Without a byte count the constructor guesses from the attribute hint. */
    uvx_stanza_t *s = stanza_new_element("iq", 2, "jabber:client", 13, 3);
    CHECK(s != NULL && s->pool != NULL);
    CHECK_INT(s ? s->pool_size : 0, 3 * STANZA_ATTR_BYTES_GUESS);
    CHECK_STR(uvx_stanza_ns(s), "jabber:client");
    uvx_stanza_unref(s);

    /* No hint, no pool: every attribute is its own allocation. */
    s = stanza_new_element("iq", 2, NULL, 0, 0);
    CHECK(s != NULL && s->pool == NULL && s->pool_size == 0);
    CHECK_INT(stanza_push_attr(s, "id", 2, "1", 1), 0);
    CHECK_STR(uvx_stanza_id(s), "1");
    CHECK(!attr_in_pool(s, 0));
    uvx_stanza_unref(s);

    /* An absurd byte count reserves nothing rather than failing. */
    s = stanza_new_element_sized("iq", 2, NULL, 0, 1, (size_t)UINT_MAX);
    CHECK(s != NULL && s->pool_size == 0);
    CHECK_INT(stanza_push_attr(s, "id", 2, "1", 1), 0);
    CHECK_STR(uvx_stanza_id(s), "1");
    uvx_stanza_unref(s);

    /* A size that cannot be allocated fails cleanly. */
    CHECK(stanza_new_element_sized("iq", SIZE_MAX - 8, NULL, 0, 0, 0) == NULL);
}

/* ---- Serializer ---------------------------------------------------------- */

static void test_serialize_basic(void)
{
    uvx_stanza_t *m = uvx_stanza_new("message");
    CHECK(serializes_to(m, NULL, "<message/>"));
    uvx_stanza_set_ns(m, UVX_NS_CLIENT);
    uvx_stanza_set_to(m, "a@b");
    uvx_stanza_set_type(m, "chat");
    CHECK(serializes_to(m, NULL, "<message xmlns='jabber:client' to='a@b' type='chat'/>"));
    CHECK(serializes_to(m, UVX_NS_CLIENT, "<message to='a@b' type='chat'/>"));
    CHECK(
        serializes_to(m, "jabber:server", "<message xmlns='jabber:client' to='a@b' type='chat'/>"));

    uvx_stanza_t *body = uvx_stanza_new("body");
    uvx_stanza_set_ns(body, UVX_NS_CLIENT);
    uvx_stanza_set_text(body, "hi");
    uvx_stanza_adopt(m, body);
    CHECK(
        serializes_to(m, UVX_NS_CLIENT, "<message to='a@b' type='chat'><body>hi</body></message>"));

    char *s = uvx_stanza_to_string(m);
    CHECK_STR(s, "<message xmlns='jabber:client' to='a@b' type='chat'><body>hi</body></message>");
    free(s);
    s = uvx_stanza_to_string(body);
    CHECK_STR(s, "<body xmlns='jabber:client'>hi</body>");
    free(s);
    s = uvx_stanza_to_string(uvx_stanza_children(body));
    CHECK_STR(s, "hi");
    free(s);

    char *out = (char *)1;
    size_t len = 99;
    CHECK_INT(uvx_stanza_serialize(NULL, NULL, &out, &len), UVX_EINVAL);
    CHECK(out == NULL);
    CHECK_INT(len, 0);
    CHECK_INT(uvx_stanza_serialize(m, NULL, NULL, NULL), UVX_EINVAL);
    CHECK_INT(uvx_stanza_serialize(m, NULL, &out, NULL), 0); /* len is optional */
    free(out);
    CHECK(uvx_stanza_to_string(NULL) == NULL);
    uvx_stanza_unref(m);
}

static void test_serialize_namespaces(void)
{
    /* <iq xmlns=client><query xmlns=roster><item/></query><bare xmlns=''/></iq> */
    uvx_stanza_t *iq = uvx_stanza_new("iq");
    uvx_stanza_set_ns(iq, UVX_NS_CLIENT);
    uvx_stanza_t *q = uvx_stanza_new("query");
    uvx_stanza_set_ns(q, "jabber:iq:roster");
    uvx_stanza_t *item = uvx_stanza_new("item");
    uvx_stanza_set_ns(item, "jabber:iq:roster");
    uvx_stanza_adopt(q, item);
    uvx_stanza_adopt(iq, q);
    uvx_stanza_t *bare = uvx_stanza_new("bare"); /* no namespace under a namespaced parent */
    uvx_stanza_adopt(iq, bare);
    uvx_stanza_t *back = uvx_stanza_new("back"); /* back in the parent's namespace */
    uvx_stanza_set_ns(back, UVX_NS_CLIENT);
    uvx_stanza_adopt(bare, back);
    uvx_stanza_t *none = uvx_stanza_new("none"); /* no ns under no ns: nothing to declare */
    uvx_stanza_adopt(bare, none);
    CHECK(serializes_to(iq, UVX_NS_CLIENT,
                        "<iq><query xmlns='jabber:iq:roster'><item/></query>"
                        "<bare xmlns=''><back xmlns='jabber:client'/><none/></bare></iq>"));
    /* A no-namespace root under a default namespace resets it too. */
    CHECK(serializes_to(bare, UVX_NS_CLIENT,
                        "<bare xmlns=''><back xmlns='jabber:client'/><none/></bare>"));
    CHECK(serializes_to(bare, NULL, "<bare><back xmlns='jabber:client'/><none/></bare>"));
    CHECK(serializes_to(bare, "", "<bare><back xmlns='jabber:client'/><none/></bare>"));
    uvx_stanza_unref(iq);
}

static void test_serialize_escaping(void)
{
    uvx_stanza_t *x = uvx_stanza_new("x");
    uvx_stanza_set_attr(x, "a", "&<>'\"\t\r\n");
    uvx_stanza_set_attr(x, "xml:lang", "en");
    uvx_stanza_set_ns(x, "urn:a&b'c");
    uvx_stanza_adopt(x, uvx_stanza_new_text("1 < 2 & 3 > 2 'q' \"d\"\r\n\tend"));
    CHECK(serializes_to(x, NULL,
                        "<x xmlns='urn:a&amp;b&apos;c' a='&amp;&lt;&gt;&apos;&quot;&#x9;&#xD;&#xA;'"
                        " xml:lang='en'>1 &lt; 2 &amp; 3 &gt; 2 'q' \"d\"&#xD;\n\tend</x>"));
    uvx_stanza_unref(x);
}

/* ---- Parsing ------------------------------------------------------------- */

static void test_from_string(void)
{
    int err = 1;
    const char *xml = "<message xmlns='jabber:client' to='a@b' type='chat'>"
                      "<body>hi &amp; bye</body><x xmlns='urn:x'><y/></x></message>";
    uvx_stanza_t *s = uvx_stanza_from_string(xml, strlen(xml), &err);
    CHECK(s != NULL);
    CHECK_INT(err, 0);
    CHECK_STR(uvx_stanza_name(s), "message");
    CHECK_STR(uvx_stanza_ns(s), UVX_NS_CLIENT);
    CHECK(uvx_stanza_parent(s) == NULL);
    CHECK_STR(uvx_stanza_to(s), "a@b");
    CHECK_STR(uvx_stanza_child_text(s, "body"), "hi & bye");
    CHECK_STR(uvx_stanza_ns(uvx_stanza_child(s, "body")), UVX_NS_CLIENT);
    uvx_stanza_t *y = uvx_stanza_first_element(uvx_stanza_child(s, "x"));
    CHECK_STR(uvx_stanza_name(y), "y");
    CHECK_STR(uvx_stanza_ns(y), "urn:x");
    char *out = uvx_stanza_to_string(s);
    CHECK_STR(out, "<message xmlns='jabber:client' to='a@b' type='chat'>"
                   "<body>hi &amp; bye</body><x xmlns='urn:x'><y/></x></message>");
    free(out);
    uvx_stanza_unref(s);

    /* No namespace at all stays none; the length is honoured. */
    s = uvx_stanza_from_string("<a><b/></a>GARBAGE", 11, &err);
    CHECK(s != NULL);
    CHECK(uvx_stanza_ns(s) == NULL);
    CHECK(uvx_stanza_ns(uvx_stanza_child(s, "b")) == NULL);
    uvx_stanza_unref(s);

    /* Around the element: white space and an XML declaration are fine. */
    s = parse("  <?xml version='1.0' encoding='UTF-8'?>\n<a x='1'/>\n ");
    CHECK(s != NULL);
    CHECK_STR(uvx_stanza_attr(s, "x"), "1");
    uvx_stanza_unref(s);

    /* Prefixed elements get their namespace. */
    s = parse("<s:a xmlns:s='urn:s'><s:b/><c/></s:a>");
    CHECK(s != NULL);
    CHECK_STR(uvx_stanza_name(s), "a");
    CHECK_STR(uvx_stanza_ns(s), "urn:s");
    CHECK_STR(uvx_stanza_ns(uvx_stanza_child(s, "b")), "urn:s");
    CHECK(uvx_stanza_ns(uvx_stanza_child(s, "c")) == NULL);
    uvx_stanza_unref(s);
}

static void test_from_string_errors(void)
{
    const char *bad[] = {
        "",
        "   ",
        "text",
        "text<a/>",
        "<a/>text",
        "<a/><b/>",
        "<a/>x>",
        "<a>",
        "<a></b>",
        "<a x='1></a>",
        "</a>",
        "<a><!-- comment --></a>",
        "<a><?pi x?></a>",
        "<!DOCTYPE a><a/>",
        "<a>&foo;</a>",
        "<a>\x01</a>",
        "<a>\xff</a>",
        "<a x='1' x='2'/>",
        "<p:a/>",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int err = 0;
        uvx_stanza_t *s = uvx_stanza_from_string(bad[i], strlen(bad[i]), &err);
        if (s != NULL || err == 0)
            printf("# accepted: %s (err %d)\n", bad[i], err);
        CHECK(s == NULL);
        CHECK(err != 0);
        uvx_stanza_unref(s);
    }
    int err = 0;
    CHECK(uvx_stanza_from_string(NULL, 3, &err) == NULL);
    CHECK_INT(err, UVX_EINVAL);
    CHECK(uvx_stanza_from_string("<a/><b/>", 8, NULL) == NULL); /* err is optional */
    CHECK(uvx_stanza_from_string("<a/><b/>", 8, &err) == NULL);
    CHECK_INT(err, UVX_EPARSE);
}

static void test_from_string_depth_limit(void)
{
    char xml[2 * 70 * 4 + 16];
    for (int depth = 63; depth <= 65; depth++) {
        size_t off = 0;
        for (int i = 0; i < depth; i++)
            off += (size_t)snprintf(xml + off, sizeof(xml) - off, "<a>");
        for (int i = 0; i < depth; i++)
            off += (size_t)snprintf(xml + off, sizeof(xml) - off, "</a>");
        int err = 0;
        uvx_stanza_t *s = uvx_stanza_from_string(xml, off, &err);
        if (depth <= UVX_DEFAULT_MAX_DEPTH) {
            CHECK(s != NULL);
        } else {
            CHECK(s == NULL);
            CHECK_INT(err, UVX_ETOODEEP);
        }
        uvx_stanza_unref(s);
    }
}

static void test_round_trips(void)
{
    const char *docs[] = {
        "<message xmlns='jabber:client' to='a@b/r' type='chat' id='1'>"
        "<body>caf\xc3\xa9 \xf0\x9f\x98\x80 &lt;tag&gt; &amp; 'q' \"d\"</body>"
        "<active xmlns='http://jabber.org/protocol/chatstates'/></message>",
        "<iq xmlns='jabber:client' type='result'><query xmlns='jabber:iq:roster'>"
        "<item jid='x@y' name='&apos;&quot;&lt;&amp;'><group>G</group></item></query>"
        "<bare xmlns=''><deep xmlns='jabber:client'/></bare></iq>",
        "<a b='tab&#x9;cr&#xD;lf&#xA;end'>line1\nline2&#xD;\ttabbed</a>",
        "<a xml:lang='de'>mixed <b>bold</b> text <i/> end</a>",
        "<x xmlns='urn:x' xmlns:p='urn:p' p:attr='v'/>",
    };
    for (size_t i = 0; i < sizeof(docs) / sizeof(docs[0]); i++) {
        uvx_stanza_t *s = parse(docs[i]);
        CHECK(s != NULL);
        if (s == NULL) {
            printf("# could not parse: %s\n", docs[i]);
            continue;
        }
        CHECK(round_trips(s));
        uvx_stanza_unref(s);
    }
    /* Control characters in attributes survive (no attribute-value
     * normalization turns them into spaces). */
    uvx_stanza_t *s = parse("<a b='tab&#x9;cr&#xD;lf&#xA;end'/>");
    CHECK_STR(uvx_stanza_attr(s, "b"), "tab\tcr\rlf\nend");
    uvx_stanza_unref(s);
}

static void test_round_trip_built_tree(void)
{
    /* A tree built by hand, with every kind of namespace change. */
    uvx_stanza_t *root = uvx_stanza_new("root");
    uvx_stanza_set_ns(root, "urn:root");
    uvx_stanza_set_attr(root, "all", "&<>'\"\t\r\n");
    uvx_stanza_t *same = uvx_stanza_new("same");
    uvx_stanza_set_ns(same, "urn:root");
    uvx_stanza_t *other = uvx_stanza_new("other");
    uvx_stanza_set_ns(other, "urn:other");
    uvx_stanza_t *none = uvx_stanza_new("none");
    uvx_stanza_t *none_child = uvx_stanza_new("nonechild");
    uvx_stanza_t *back = uvx_stanza_new("back");
    uvx_stanza_set_ns(back, "urn:root");
    uvx_stanza_adopt(none, none_child);
    uvx_stanza_adopt(none, back);
    uvx_stanza_adopt(other, none);
    uvx_stanza_adopt(root, same);
    uvx_stanza_adopt(root, uvx_stanza_new_text("text \r\n\t & < > ' \" \xe2\x82\xac"));
    uvx_stanza_adopt(root, other);
    CHECK(round_trips(root));
    uvx_stanza_unref(root);
}

/* ---- uvx_stanza_fmt ------------------------------------------------------ */

static void test_fmt(void)
{
    uvx_stanza_t *m = uvx_stanza_fmt("<message to='%s' type='chat'><body>%s</body>"
                                     "<active xmlns='http://jabber.org/protocol/chatstates'/>"
                                     "</message>",
                                     "romeo@montague.lit", "Hello & <goodbye>");
    CHECK(m != NULL);
    CHECK_STR(uvx_stanza_ns(m), UVX_NS_CLIENT);
    CHECK_STR(uvx_stanza_to(m), "romeo@montague.lit");
    CHECK_STR(uvx_stanza_child_text(m, "body"), "Hello & <goodbye>");
    /* Children inherit jabber:client as they would on the stream. */
    CHECK_STR(uvx_stanza_ns(uvx_stanza_child(m, "body")), UVX_NS_CLIENT);
    CHECK_STR(uvx_stanza_ns(uvx_stanza_child(m, "active")),
              "http://jabber.org/protocol/chatstates");
    CHECK(serializes_to(m, UVX_NS_CLIENT,
                        "<message to='romeo@montague.lit' type='chat'><body>Hello &amp; "
                        "&lt;goodbye&gt;</body><active "
                        "xmlns='http://jabber.org/protocol/chatstates'/></message>"));
    uvx_stanza_unref(m);

    uvx_stanza_t *iq =
        uvx_stanza_fmt("<iq type='get' id='%s'><ping xmlns='urn:xmpp:ping'/></iq>", "p1");
    CHECK_STR(uvx_stanza_ns(iq), UVX_NS_CLIENT);
    uvx_stanza_unref(iq);
    uvx_stanza_t *p = uvx_stanza_fmt("<presence/>");
    CHECK_STR(uvx_stanza_ns(p), UVX_NS_CLIENT);
    uvx_stanza_unref(p);

    /* An explicit xmlns wins; other elements get no namespace. */
    m = uvx_stanza_fmt("<message xmlns='jabber:server'/>");
    CHECK_STR(uvx_stanza_ns(m), "jabber:server");
    uvx_stanza_unref(m);
    m = uvx_stanza_fmt("<messages><iq/></messages>");
    CHECK(uvx_stanza_ns(m) == NULL);
    CHECK(uvx_stanza_ns(uvx_stanza_child(m, "iq")) == NULL);
    uvx_stanza_unref(m);
    m = uvx_stanza_fmt("<query xmlns='%s'/>", "jabber:iq:roster");
    CHECK_STR(uvx_stanza_ns(m), "jabber:iq:roster");
    uvx_stanza_unref(m);
}

static void test_fmt_numbers(void)
{
    uvx_stanza_t *s = uvx_stanza_fmt("<x a='%d' b='%u' c='%ld' d='%lu' e='%zu' f='100%%'>%d%%</x>",
                                     -5, 7u, -123456789L, 4000000000UL, (size_t)42, 99);
    CHECK(s != NULL);
    CHECK_STR(uvx_stanza_attr(s, "a"), "-5");
    CHECK_STR(uvx_stanza_attr(s, "b"), "7");
    CHECK_STR(uvx_stanza_attr(s, "c"), "-123456789");
    CHECK_STR(uvx_stanza_attr(s, "d"), "4000000000");
    CHECK_STR(uvx_stanza_attr(s, "e"), "42");
    CHECK_STR(uvx_stanza_attr(s, "f"), "100%");
    CHECK_STR(uvx_stanza_text(s), "99%");
    uvx_stanza_unref(s);
    s = uvx_stanza_fmt("<x%d/>", 1); /* numbers are safe anywhere */
    CHECK_STR(uvx_stanza_name(s), "x1");
    uvx_stanza_unref(s);
}

static void test_fmt_cannot_inject(void)
{
    const char *evil = "x' type='error'/><message to='victim'><body>pwn</body></message><a b='";
    uvx_stanza_t *m = uvx_stanza_fmt("<message to='%s'><body>%s</body></message>", evil,
                                     "</body><subject>pwn</subject><body>&amp;'\"");
    CHECK(m != NULL);
    CHECK_STR(uvx_stanza_to(m), evil);
    CHECK(uvx_stanza_type(m) == NULL);
    CHECK_INT(uvx_stanza_attr_count(m), 1);
    CHECK_STR(uvx_stanza_child_text(m, "body"), "</body><subject>pwn</subject><body>&amp;'\"");
    CHECK(uvx_stanza_child(m, "subject") == NULL);
    uvx_stanza_unref(m);

    /* The other quote and double-quoted values. */
    m = uvx_stanza_fmt("<message to=\"%s\"/>", "a\" type=\"error");
    CHECK_STR(uvx_stanza_to(m), "a\" type=\"error");
    CHECK(uvx_stanza_type(m) == NULL);
    uvx_stanza_unref(m);

    /* White space and CR/LF/TAB in attribute values arrive unchanged. */
    m = uvx_stanza_fmt("<x a='%s'>%s</x>", "l1\nl2\r\tz", "t\r\n");
    CHECK_STR(uvx_stanza_attr(m, "a"), "l1\nl2\r\tz");
    CHECK_STR(uvx_stanza_text(m), "t\r\n");
    uvx_stanza_unref(m);

    /* Where a string cannot be escaped safely the format is refused. */
    CHECK(uvx_stanza_fmt("<%s/>", "x") == NULL);
    CHECK(uvx_stanza_fmt("<x %s='1'/>", "a") == NULL);
    CHECK(uvx_stanza_fmt("<x a=%s/>", "'1'") == NULL);
    CHECK(uvx_stanza_fmt("<x><![CDATA[%s]]></x>", "]]><evil/>") == NULL);
    /* After a CDATA section ends, text context resumes. */
    m = uvx_stanza_fmt("<x><![CDATA[a]]>%s</x>", "<b/>");
    CHECK_STR(uvx_stanza_text(m), "a<b/>");
    CHECK(uvx_stanza_first_element(m) == NULL);
    uvx_stanza_unref(m);
}

static void test_fmt_errors(void)
{
    CHECK(uvx_stanza_fmt(NULL) == NULL);
    CHECK(uvx_stanza_fmt("") == NULL);
    CHECK(uvx_stanza_fmt("<x>%q</x>") == NULL);
    CHECK(uvx_stanza_fmt("<x>%") == NULL);
    CHECK(uvx_stanza_fmt("<x>%s</x>", (const char *)NULL) == NULL);
    CHECK(uvx_stanza_fmt("<x>") == NULL);
    CHECK(uvx_stanza_fmt("<x/><y/>") == NULL);
    CHECK(uvx_stanza_fmt("<x>%s</x>", "bad\x01") == NULL);
    CHECK(uvx_stanza_fmt("<x>%s</x>", "\xc3") == NULL);
}

/* ---- Builder ------------------------------------------------------------- */

static void test_builder_message(void)
{
    uvx_builder_t *b = uvx_msg("to", "juliet@capulet.lit", "type", "chat", "id", NULL, NULL);
    CHECK(b != NULL);
    uvx_b_t(uvx_b_c(b, "body", NULL), "Wherefore & why?");
    uvx_b_c(uvx_b_up(b), "active", "xmlns", "http://jabber.org/protocol/chatstates", NULL);
    uvx_stanza_t *m = uvx_b_done(b);
    CHECK(m != NULL);
    CHECK_STR(uvx_stanza_ns(m), UVX_NS_CLIENT);
    CHECK_INT(uvx_stanza_attr_count(m), 2); /* the NULL id was skipped */
    CHECK(uvx_stanza_id(m) == NULL);
    CHECK_STR(uvx_stanza_ns(uvx_stanza_child(m, "body")), UVX_NS_CLIENT);
    CHECK(serializes_to(m, UVX_NS_CLIENT,
                        "<message to='juliet@capulet.lit' type='chat'><body>Wherefore &amp; "
                        "why?</body><active xmlns='http://jabber.org/protocol/chatstates'/>"
                        "</message>"));
    CHECK_INT(m ? m->refs : 0, 1);
    uvx_stanza_unref(m);
}

static void test_builder_iq_and_pres(void)
{
    uvx_builder_t *b = uvx_iq("type", "get", "id", "r1", NULL);
    uvx_b_c(b, "query", "xmlns", "jabber:iq:roster", NULL);
    uvx_b_c(b, "item", "jid", "a@b", NULL); /* inherits the roster namespace */
    CHECK_STR(uvx_stanza_ns(uvx_b_node(b)), "jabber:iq:roster");
    CHECK_STR(uvx_stanza_name(uvx_b_node(b)), "item");
    uvx_b_attrs(b, "name", "A", "skipped", NULL, "subscription", "both", NULL);
    uvx_b_root(b);
    CHECK_STR(uvx_stanza_name(uvx_b_node(b)), "iq");
    uvx_b_up(b); /* at the root: stays */
    CHECK_STR(uvx_stanza_name(uvx_b_node(b)), "iq");
    uvx_stanza_t *iq = uvx_b_done(b);
    CHECK(serializes_to(iq, UVX_NS_CLIENT,
                        "<iq type='get' id='r1'><query xmlns='jabber:iq:roster'>"
                        "<item jid='a@b' name='A' subscription='both'/></query></iq>"));
    uvx_stanza_unref(iq);

    uvx_stanza_t *p = uvx_b_done(uvx_b_t(uvx_b_c(uvx_pres(NULL), "show", NULL), "away"));
    CHECK(serializes_to(p, NULL, "<presence xmlns='jabber:client'><show>away</show></presence>"));
    uvx_stanza_unref(p);

    uvx_stanza_t *x = uvx_b_done(uvx_build("x", "xmlns", "urn:x", "a", "1", NULL));
    CHECK(serializes_to(x, NULL, "<x xmlns='urn:x' a='1'/>"));
    uvx_stanza_unref(x);
    x = uvx_b_done(uvx_b_c(uvx_build("plain", NULL), "child", NULL));
    CHECK(serializes_to(x, NULL, "<plain><child/></plain>"));
    uvx_stanza_unref(x);
}

static void test_builder_cnode(void)
{
    uvx_stanza_t *form = uvx_stanza_new("x");
    uvx_stanza_set_ns(form, "jabber:x:data");
    uvx_stanza_t *field = uvx_stanza_new("field");
    uvx_stanza_set_ns(field, "jabber:x:data");
    uvx_stanza_adopt(form, field);
    uvx_builder_t *b = uvx_iq("type", "set", NULL);
    uvx_b_c(b, "command", "xmlns", "http://jabber.org/protocol/commands", NULL);
    uvx_b_cnode(b, form);
    CHECK(uvx_b_node(b) != form); /* a copy */
    CHECK_STR(uvx_stanza_name(uvx_b_node(b)), "x");
    uvx_b_c(b, "extra", NULL);
    uvx_b_up(b);
    uvx_b_up(b);
    uvx_b_cnode(b, uvx_stanza_children(uvx_stanza_child(uvx_b_node(b), "x")));
    uvx_stanza_t *text = uvx_stanza_new_text("t");
    uvx_b_cnode(b, text); /* a text copy: the cursor stays */
    CHECK_STR(uvx_stanza_name(uvx_b_node(b)), "field");
    uvx_stanza_unref(text);
    uvx_stanza_t *iq = uvx_b_done(b);
    CHECK(serializes_to(iq, UVX_NS_CLIENT,
                        "<iq type='set'><command xmlns='http://jabber.org/protocol/commands'>"
                        "<x xmlns='jabber:x:data'><field/><extra/></x>"
                        "<field xmlns='jabber:x:data'>t</field></command></iq>"));
    CHECK_INT(form->refs, 1);
    CHECK(uvx_stanza_next(uvx_stanza_children(form)) == NULL); /* original untouched */
    uvx_stanza_unref(form);
    uvx_stanza_unref(iq);
}

static void test_builder_errors_are_sticky(void)
{
    /* A bad child name spoils the result; later calls are no-ops. */
    uvx_builder_t *b = uvx_msg("to", "a@b", NULL);
    uvx_b_c(b, "bad name", NULL);
    CHECK(uvx_b_node(b) == NULL);
    uvx_b_c(b, "body", NULL);
    uvx_b_t(b, "x");
    uvx_b_up(b);
    CHECK(uvx_b_done(b) == NULL);

    b = uvx_build("x", "bad name", "v", NULL);
    CHECK(uvx_b_done(b) == NULL);
    b = uvx_build(NULL);
    CHECK(uvx_b_done(b) == NULL);
    b = uvx_build("x", NULL);
    uvx_b_t(b, NULL);
    CHECK(uvx_b_done(b) == NULL);
    b = uvx_build("x", NULL);
    uvx_b_t(b, "bell\x07");
    CHECK(uvx_b_done(b) == NULL);
    b = uvx_build("x", NULL);
    uvx_b_attrs(b, "a", "\x01", NULL);
    CHECK(uvx_b_done(b) == NULL);
    b = uvx_build("x", NULL);
    uvx_b_cnode(b, NULL);
    CHECK(uvx_b_done(b) == NULL);

    /* A builder freed without taking its tree. */
    b = uvx_b_c(uvx_build("x", NULL), "y", NULL);
    uvx_b_free(b);
    uvx_b_free(NULL);

    /* NULL in, NULL out. */
    CHECK(uvx_b_c(NULL, "x", NULL) == NULL);
    CHECK(uvx_b_t(NULL, "x") == NULL);
    CHECK(uvx_b_attrs(NULL, "a", "b", NULL) == NULL);
    CHECK(uvx_b_up(NULL) == NULL);
    CHECK(uvx_b_root(NULL) == NULL);
    CHECK(uvx_b_cnode(NULL, NULL) == NULL);
    CHECK(uvx_b_node(NULL) == NULL);
    CHECK(uvx_b_done(NULL) == NULL);
}

/* ---- Reply helpers ------------------------------------------------------- */

static uvx_stanza_t *sample_iq(void)
{
    return uvx_b_done(uvx_b_c(uvx_iq("type", "get", "id", "q7", "from",
                                     "romeo@montague.lit/orchard", "to", "capulet.lit", NULL),
                              "query", "xmlns", "jabber:iq:version", NULL));
}

static void test_reply(void)
{
    uvx_stanza_t *iq = sample_iq();
    uvx_stanza_t *r = uvx_stanza_reply(iq);
    CHECK(r != NULL);
    CHECK(serializes_to(r, UVX_NS_CLIENT,
                        "<iq type='result' id='q7' to='romeo@montague.lit/orchard' "
                        "from='capulet.lit'/>"));
    CHECK_STR(uvx_stanza_ns(r), UVX_NS_CLIENT);
    uvx_stanza_unref(r);

    /* Without from/to/id: nothing invented; no namespace becomes jabber:client. */
    uvx_stanza_t *plain = uvx_stanza_new("iq");
    r = uvx_stanza_reply(plain);
    CHECK(serializes_to(r, NULL, "<iq xmlns='jabber:client' type='result'/>"));
    uvx_stanza_unref(r);
    uvx_stanza_unref(plain);

    uvx_stanza_t *m = uvx_stanza_new("message");
    CHECK(uvx_stanza_reply(m) == NULL);
    uvx_stanza_unref(m);
    CHECK(uvx_stanza_reply(NULL) == NULL);
    uvx_stanza_unref(iq);
}

static void test_error_reply(void)
{
    uvx_stanza_t *iq = sample_iq();
    uvx_stanza_t *e = uvx_stanza_error_reply(iq, UVX_ERROR_TYPE_CANCEL, "service-unavailable",
                                             "Not here & now", 1);
    CHECK(e != NULL);
    CHECK(serializes_to(e, UVX_NS_CLIENT,
                        "<iq type='error' id='q7' to='romeo@montague.lit/orchard' "
                        "from='capulet.lit'><query xmlns='jabber:iq:version'/>"
                        "<error type='cancel'><service-unavailable "
                        "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/><text "
                        "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>Not here &amp; now</text>"
                        "</error></iq>"));
    CHECK_STR(uvx_stanza_error_condition(e), "service-unavailable");
    CHECK_STR(uvx_stanza_error_text(e), "Not here & now");
    uvx_stanza_unref(e);

    e = uvx_stanza_error_reply(iq, UVX_ERROR_TYPE_MODIFY, "bad-request", NULL, 0);
    CHECK(serializes_to(e, UVX_NS_CLIENT,
                        "<iq type='error' id='q7' to='romeo@montague.lit/orchard' "
                        "from='capulet.lit'><error type='modify'><bad-request "
                        "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>"));
    CHECK_STR(uvx_stanza_error_condition(e), "bad-request");
    CHECK(uvx_stanza_error_text(e) == NULL);
    /* An error is never answered with an error (RFC 6120 §8.3.1). */
    CHECK(uvx_stanza_error_reply(e, UVX_ERROR_TYPE_CANCEL, "bad-request", NULL, 1) == NULL);
    uvx_stanza_unref(e);

    /* Any stanza kind keeps its name; each type is spelled right. */
    const char *types[] = {"auth", "cancel", "continue", "modify", "wait"};
    uvx_stanza_t *m = uvx_b_done(uvx_b_t(uvx_b_c(uvx_msg("from", "a@b", NULL), "body", NULL), "x"));
    for (int t = UVX_ERROR_TYPE_AUTH; t <= UVX_ERROR_TYPE_WAIT; t++) {
        e = uvx_stanza_error_reply(m, (uvx_error_type_t)t, "forbidden", NULL, 1);
        CHECK_STR(uvx_stanza_name(e), "message");
        CHECK_STR(uvx_stanza_to(e), "a@b");
        CHECK(uvx_stanza_from(e) == NULL);
        CHECK_STR(uvx_stanza_child_text(e, "body"), "x");
        CHECK_STR(uvx_stanza_attr(uvx_stanza_child(e, "error"), "type"), types[t]);
        uvx_stanza_unref(e);
    }
    /* Misuse. */
    CHECK(uvx_stanza_error_reply(m, (uvx_error_type_t)99, "forbidden", NULL, 1) == NULL);
    CHECK(uvx_stanza_error_reply(m, UVX_ERROR_TYPE_AUTH, NULL, NULL, 1) == NULL);
    CHECK(uvx_stanza_error_reply(m, UVX_ERROR_TYPE_AUTH, "bad name", NULL, 1) == NULL);
    CHECK(uvx_stanza_error_reply(m, UVX_ERROR_TYPE_AUTH, "forbidden", "\x01", 1) == NULL);
    CHECK(uvx_stanza_error_reply(NULL, UVX_ERROR_TYPE_AUTH, "forbidden", NULL, 1) == NULL);
    uvx_stanza_t *t = uvx_stanza_new_text("x");
    CHECK(uvx_stanza_error_reply(t, UVX_ERROR_TYPE_AUTH, "forbidden", NULL, 1) == NULL);
    uvx_stanza_unref(t);
    uvx_stanza_unref(m);
    uvx_stanza_unref(iq);
}

static void test_error_condition_of_parsed(void)
{
    uvx_stanza_t *s = parse("<iq xmlns='jabber:client' type='error' id='1'>"
                            "<error type='cancel'><text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'"
                            ">gone away</text><item-not-found "
                            "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>"
                            "<app xmlns='urn:app'/></error></iq>");
    CHECK(s != NULL);
    CHECK_STR(uvx_stanza_error_condition(s), "item-not-found");
    CHECK_STR(uvx_stanza_error_text(s), "gone away");
    uvx_stanza_unref(s);

    s = parse("<iq xmlns='jabber:client' type='result'/>");
    CHECK(uvx_stanza_error_condition(s) == NULL);
    CHECK(uvx_stanza_error_text(s) == NULL);
    uvx_stanza_unref(s);
    CHECK(uvx_stanza_error_condition(NULL) == NULL);
    CHECK(uvx_stanza_error_text(NULL) == NULL);
}

static void test_error_condition_type(void)
{
    static const struct {
        const char *name;
        int type;
    } rfc[] = {
        {"bad-request", UVX_ERROR_TYPE_MODIFY},
        {"conflict", UVX_ERROR_TYPE_CANCEL},
        {"feature-not-implemented", UVX_ERROR_TYPE_CANCEL},
        {"forbidden", UVX_ERROR_TYPE_AUTH},
        {"gone", UVX_ERROR_TYPE_CANCEL},
        {"internal-server-error", UVX_ERROR_TYPE_CANCEL},
        {"item-not-found", UVX_ERROR_TYPE_CANCEL},
        {"jid-malformed", UVX_ERROR_TYPE_MODIFY},
        {"not-acceptable", UVX_ERROR_TYPE_MODIFY},
        {"not-allowed", UVX_ERROR_TYPE_CANCEL},
        {"not-authorized", UVX_ERROR_TYPE_AUTH},
        {"policy-violation", UVX_ERROR_TYPE_MODIFY},
        {"recipient-unavailable", UVX_ERROR_TYPE_WAIT},
        {"redirect", UVX_ERROR_TYPE_MODIFY},
        {"registration-required", UVX_ERROR_TYPE_AUTH},
        {"remote-server-not-found", UVX_ERROR_TYPE_CANCEL},
        {"remote-server-timeout", UVX_ERROR_TYPE_WAIT},
        {"resource-constraint", UVX_ERROR_TYPE_WAIT},
        {"service-unavailable", UVX_ERROR_TYPE_CANCEL},
        {"subscription-required", UVX_ERROR_TYPE_AUTH},
        {"undefined-condition", UVX_ERROR_TYPE_CANCEL},
        {"unexpected-request", UVX_ERROR_TYPE_WAIT},
    };
    CHECK_INT(sizeof(rfc) / sizeof(rfc[0]), 22);
    for (size_t i = 0; i < sizeof(rfc) / sizeof(rfc[0]); i++) {
        if (uvx_error_condition_type(rfc[i].name) != rfc[i].type)
            printf("# %s\n", rfc[i].name);
        CHECK_INT(uvx_error_condition_type(rfc[i].name), rfc[i].type);
    }
    CHECK_INT(uvx_error_condition_type("no-such-condition"), -1);
    CHECK_INT(uvx_error_condition_type("Forbidden"), -1);
    CHECK_INT(uvx_error_condition_type(""), -1);
    CHECK_INT(uvx_error_condition_type(NULL), -1);
}

/* ---- Main ---------------------------------------------------------------- */

int main(void)
{
    tap_run("new element", test_new_element);
    tap_run("new element rejects bad names", test_new_element_rejects_bad_names);
    tap_run("text nodes", test_text_nodes);
    tap_run("empty text with NULL", test_empty_text_len_null);
    tap_run("reference counting", test_refcount);
    tap_run("attributes", test_attributes);
    tap_run("many attributes", test_many_attributes_grow);
    tap_run("xmlns is the namespace", test_xmlns_is_the_namespace);
    tap_run("id/type/to/from shorthands", test_shorthands);
    tap_run("children and navigation", test_children_and_navigation);
    tap_run("add_child refuses misuse", test_add_child_refuses_misuse);
    tap_run("text concatenation and cache", test_text_concatenation_and_cache);
    tap_run("child text", test_child_text);
    tap_run("private constructors", test_private_constructors);
    tap_run("deep copy", test_copy);
    tap_run("parsed attributes live in the node's block", test_parsed_attrs_in_block);
    tap_run("copy of a parsed stanza", test_copy_of_parsed);
    tap_run("attribute pool overflow", test_attr_pool_overflow);
    tap_run("attribute pool sizes", test_attr_pool_sizes);
    tap_run("arena: kept nodes outlive their stanza and parser", test_arena_kept_nodes);
    tap_run("serialize basics", test_serialize_basic);
    tap_run("serialize namespaces", test_serialize_namespaces);
    tap_run("serialize escaping", test_serialize_escaping);
    tap_run("from_string", test_from_string);
    tap_run("from_string errors", test_from_string_errors);
    tap_run("from_string depth limit", test_from_string_depth_limit);
    tap_run("round trips", test_round_trips);
    tap_run("round trip of a built tree", test_round_trip_built_tree);
    tap_run("fmt", test_fmt);
    tap_run("fmt numbers", test_fmt_numbers);
    tap_run("fmt cannot inject markup", test_fmt_cannot_inject);
    tap_run("fmt errors", test_fmt_errors);
    tap_run("builder message", test_builder_message);
    tap_run("builder iq and presence", test_builder_iq_and_pres);
    tap_run("builder cnode", test_builder_cnode);
    tap_run("builder errors are sticky", test_builder_errors_are_sticky);
    tap_run("reply", test_reply);
    tap_run("error reply", test_error_reply);
    tap_run("error condition of a parsed stanza", test_error_condition_of_parsed);
    tap_run("error condition types", test_error_condition_type);
    return tap_done();
}
