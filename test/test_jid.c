/* Unit tests for the JID helpers (RFC 7622) and XEP-0106 escaping. */
#include "uvxmpp.h"
#include "tap.h"

#include <stdlib.h>
#include <string.h>

/* A malloc'd string of `n` copies of `c` between `prefix` and `suffix`. */
static char *repeat(const char *prefix, char c, size_t n, const char *suffix)
{
    size_t plen = strlen(prefix), slen = strlen(suffix);
    char *s = malloc(plen + n + slen + 1);

    if (s == NULL)
        abort();
    memcpy(s, prefix, plen);
    memset(s + plen, c, n);
    memcpy(s + plen + n, suffix, slen + 1);
    return s;
}

/* Splits `jid` and checks the three parts (NULL = expected absent). */
static void check_split(const char *jid, const char *node, const char *domain, const char *resource)
{
    char *n = (char *)"unset", *d = (char *)"unset", *r = (char *)"unset";

    CHECK_INT(uvx_jid_split(jid, &n, &d, &r), 0);
    CHECK_STR(n, node);
    CHECK_STR(d, domain);
    CHECK_STR(r, resource);
    CHECK_INT(uvx_jid_valid(jid), 1);
    free(n);
    free(d);
    free(r);
}

/* Checks that `jid` is rejected by split (outs reset to NULL) and valid. */
static void check_invalid(const char *jid)
{
    char *n = (char *)"unset", *d = (char *)"unset", *r = (char *)"unset";

    CHECK_INT(uvx_jid_split(jid, &n, &d, &r), UVX_EJID);
    CHECK(n == NULL);
    CHECK(d == NULL);
    CHECK(r == NULL);
    CHECK_INT(uvx_jid_valid(jid), 0);
}

/* Compares a malloc'd result with the expectation and frees it. */
static void check_owned(char *got, const char *expected)
{
    CHECK_STR(got, expected);
    free(got);
}

static void test_split_full(void)
{
    check_split("juliet@example.com/balcony", "juliet", "example.com", "balcony");
    check_split("juliet@example.com", "juliet", "example.com", NULL);
    check_split("example.com/balcony", NULL, "example.com", "balcony");
    check_split("example.com", NULL, "example.com", NULL);
    check_split("a@b/c", "a", "b", "c");
    check_split("localhost", NULL, "localhost", NULL);
}

/* RFC 7622 §3.2: the first '/' ends the bare JID; the resource may hold
 * '@' and further '/'. */
static void test_split_resource_separators(void)
{
    check_split("juliet@example.com/a@b/c", "juliet", "example.com", "a@b/c");
    check_split("example.com/foo@bar", NULL, "example.com", "foo@bar");
    check_split("example.com/@", NULL, "example.com", "@");
    check_split("example.com//", NULL, "example.com", "/");
    check_split("juliet@example.com/@@//x", "juliet", "example.com", "@@//x");
    check_split("example.com/the balcony", NULL, "example.com", "the balcony");
    check_split("room@conference.example.com/Nick: Name's <x>", "room", "conference.example.com",
                "Nick: Name's <x>");
}

/* A second '@' before the '/' ends up in the domain, which forbids it. */
static void test_split_multiple_at(void)
{
    check_invalid("a@b@example.com");
    check_invalid("a@b@example.com/r");
    check_invalid("@@example.com");
    check_invalid("a@@example.com");
    /* ...but after the '/', '@' is just part of the resource. */
    check_split("a@example.com/b@c@d", "a", "example.com", "b@c@d");
}

static void test_split_empty_parts(void)
{
    check_invalid("");
    check_invalid("@");
    check_invalid("/");
    check_invalid("@/");
    check_invalid("@example.com");
    check_invalid("juliet@");
    check_invalid("juliet@/balcony");
    check_invalid("example.com/");
    check_invalid("juliet@example.com/");
    check_invalid("/balcony");
    check_invalid("@example.com/balcony");
}

static void test_split_out_pointers_optional(void)
{
    char *d = NULL, *r = NULL;

    CHECK_INT(uvx_jid_split("juliet@example.com/balcony", NULL, NULL, NULL), 0);
    CHECK_INT(uvx_jid_split("juliet@example.com/balcony", NULL, &d, NULL), 0);
    CHECK_STR(d, "example.com");
    free(d);
    CHECK_INT(uvx_jid_split("juliet@example.com/balcony", NULL, NULL, &r), 0);
    CHECK_STR(r, "balcony");
    free(r);
    CHECK_INT(uvx_jid_split("@bad", NULL, NULL, NULL), UVX_EJID);
}

static void test_part_length_limits(void)
{
    char *s;

    s = repeat("", 'n', 1023, "@example.com");
    CHECK_INT(uvx_jid_valid(s), 1);
    free(s);
    s = repeat("", 'n', 1024, "@example.com");
    check_invalid(s);
    free(s);

    s = repeat("juliet@", 'd', 1023, "/r");
    CHECK_INT(uvx_jid_valid(s), 1);
    free(s);
    s = repeat("juliet@", 'd', 1024, "/r");
    check_invalid(s);
    free(s);

    s = repeat("juliet@example.com/", 'r', 1023, "");
    CHECK_INT(uvx_jid_valid(s), 1);
    free(s);
    s = repeat("juliet@example.com/", 'r', 1024, "");
    check_invalid(s);
    free(s);

    /* Length counts bytes, not characters: 511 two-byte é = 1022 bytes. */
    s = malloc(2 * 512 + 20);
    if (s == NULL)
        abort();
    s[0] = '\0';
    for (int i = 0; i < 511; i++)
        strcat(s, "\xc3\xa9");
    strcat(s, "@example.com");
    CHECK_INT(uvx_jid_valid(s), 1);
    memmove(s + 2, s, strlen(s) + 1); /* 512 é = 1024 bytes */
    memcpy(s, "\xc3\xa9", 2);
    CHECK_INT(uvx_jid_valid(s), 0);
    free(s);

    /* The whole JID may be three maximal parts. */
    s = repeat("", 'n', 1023, "@");
    char *d = repeat(s, 'd', 1023, "/");
    char *full = repeat(d, 'r', 1023, "");
    CHECK_INT(uvx_jid_valid(full), 1);
    check_owned(uvx_jid_resource(full), full + 2048);
    free(s);
    free(d);
    free(full);
}

/* RFC 7622 §3.2: a trailing dot on the domain is stripped; the length
 * limit applies to what remains. */
static void test_domain_trailing_dot(void)
{
    check_split("juliet@example.com./balcony", "juliet", "example.com", "balcony");
    check_split("example.com.", NULL, "example.com", NULL);
    check_owned(uvx_jid_bare("juliet@example.com./x"), "juliet@example.com");
    check_owned(uvx_jid_make("juliet", "example.com.", NULL), "juliet@example.com");
    CHECK_INT(uvx_jid_bare_equal("juliet@example.com.", "juliet@example.com"), 1);
    check_invalid(".");
    check_invalid("juliet@.");
    check_invalid("example.com..");
    check_invalid("juliet@./r");
}

static void test_domain_trailing_dot_length(void)
{
    char *s = repeat("", 'd', 1023, ".");
    char *expected = repeat("", 'd', 1023, "");
    char *d = uvx_jid_domain(s);

    CHECK_STR(d, expected);
    free(d);
    free(s);
    s = repeat("", 'd', 1024, ".");
    check_invalid(s);
    free(s);
    free(expected);
}

static void test_node_characters(void)
{
    /* RFC 7622 §3.3.1 forbids " & ' / : < > @ in a localpart ('/' and '@'
     * cannot get there by splitting), and PRECIS forbids spaces. */
    check_invalid("jul iet@example.com");
    check_invalid("a\"b@example.com");
    check_invalid("a&b@example.com");
    check_invalid("o'hara@example.com");
    check_invalid("a:b@example.com");
    check_invalid("a<b@example.com");
    check_invalid("a>b@example.com");
    CHECK(uvx_jid_make("a@b", "example.com", NULL) == NULL);
    CHECK(uvx_jid_make("a/b", "example.com", NULL) == NULL);
    CHECK(uvx_jid_make("a b", "example.com", NULL) == NULL);
    /* Escaped nodes and other ASCII punctuation are fine. */
    check_split("d\\27artagnan@example.com", "d\\27artagnan", "example.com", NULL);
    check_split("a.b-c_d+e%f!#$*=?^`{|}~@example.com", "a.b-c_d+e%f!#$*=?^`{|}~", "example.com",
                NULL);
    check_split("\\@example.com", "\\", "example.com", NULL);
}

static void test_control_and_utf8(void)
{
    check_invalid("a\x01"
                  "b@example.com");
    check_invalid("a\x7f"
                  "b@example.com");
    check_invalid("a\x1f"
                  "b@example.com");
    check_invalid("example.com/a\tb");
    check_invalid("example.com/a\nb");
    check_invalid("exa\x01mple.com");
    check_invalid("example.com/\xc2\x85");     /* U+0085, a C1 control */
    check_invalid("example.com/\xef\xbf\xbe"); /* U+FFFE, not an XML Char */
    check_invalid("\xff@example.com");
    check_invalid("\xc0\xaf@example.com");         /* overlong '/' */
    check_invalid("\xe0\x80\xaf@example.com");     /* overlong '/' */
    check_invalid("\xc1\xa1@example.com");         /* overlong 'a' */
    check_invalid("example.com/\xe0\x81\xa1");     /* overlong 'a' */
    check_invalid("example.com/\xf0\x80\x81\xa1"); /* overlong 'a' */
    check_invalid("\xed\xa0\x80@example.com");     /* surrogate */
    check_invalid("\xf4\x90\x80\x80@example.com"); /* above U+10FFFF */
    check_invalid("\xc3@example.com");             /* truncated */
    check_invalid("example.com/\xe2\x82");         /* truncated at the end */
    check_invalid("example.com/\x80");             /* stray continuation */
    check_split("\xcf\x81\xcf\x89\xce\xbc\xce\xad\xce\xbf@example.net/\xce\xba",
                "\xcf\x81\xcf\x89\xce\xbc\xce\xad\xce\xbf", "example.net", "\xce\xba");
    check_split("juliet@ex\xc3\xa4mple.com", "juliet", "ex\xc3\xa4mple.com", NULL);
    check_split("example.com/\xf0\x9f\x98\x80", NULL, "example.com", "\xf0\x9f\x98\x80");
}

static void test_domain_syntax(void)
{
    check_split("juliet@[::1]/r", "juliet", "[::1]", "r");
    check_split("[2001:db8::1]", NULL, "[2001:db8::1]", NULL);
    check_split("192.0.2.1", NULL, "192.0.2.1", NULL);
    check_split("pubsub_x.example.com", NULL, "pubsub_x.example.com", NULL);
    check_split("EXAMPLE.com", NULL, "EXAMPLE.com", NULL);
    check_invalid("juliet@[::1");
    check_invalid("juliet@[]");
    check_invalid("[zz::1]");
    check_invalid("[::1]x");
    check_invalid("exa mple.com");
    check_invalid("exa&mple.com");
    check_invalid("exa:mple.com");
    check_invalid("exa\\mple.com");
    check_invalid("a..b");
    check_invalid(".example.com");
    check_invalid("juliet@.example.com");
}

static void test_accessors(void)
{
    const char *full = "juliet@example.com/balcony/x@y";

    check_owned(uvx_jid_node(full), "juliet");
    check_owned(uvx_jid_domain(full), "example.com");
    check_owned(uvx_jid_resource(full), "balcony/x@y");
    check_owned(uvx_jid_bare(full), "juliet@example.com");

    check_owned(uvx_jid_node("example.com/r"), NULL);
    check_owned(uvx_jid_resource("juliet@example.com"), NULL);
    check_owned(uvx_jid_bare("example.com/r"), "example.com");
    check_owned(uvx_jid_bare("example.com"), "example.com");
    check_owned(uvx_jid_bare("juliet@example.com"), "juliet@example.com");

    /* Invalid JIDs give NULL from every accessor. */
    check_owned(uvx_jid_node("juliet@/r"), NULL);
    check_owned(uvx_jid_domain("juliet@/r"), NULL);
    check_owned(uvx_jid_resource("juliet@example.com/"), NULL);
    check_owned(uvx_jid_bare("a@b@c"), NULL);
    check_owned(uvx_jid_domain(""), NULL);
}

static void test_make(void)
{
    check_owned(uvx_jid_make("juliet", "example.com", "balcony"), "juliet@example.com/balcony");
    check_owned(uvx_jid_make("juliet", "example.com", NULL), "juliet@example.com");
    check_owned(uvx_jid_make(NULL, "example.com", "balcony"), "example.com/balcony");
    check_owned(uvx_jid_make(NULL, "example.com", NULL), "example.com");
    check_owned(uvx_jid_make("juliet", "example.com", "a@b/c"), "juliet@example.com/a@b/c");
    CHECK(uvx_jid_make("", "example.com", NULL) == NULL);
    CHECK(uvx_jid_make("juliet", "", NULL) == NULL);
    CHECK(uvx_jid_make("juliet", "example.com", "") == NULL);
    CHECK(uvx_jid_make("juliet", "exa@mple.com", NULL) == NULL);
    CHECK(uvx_jid_make("juliet", "example.com/x", NULL) == NULL);
    CHECK(uvx_jid_make("juliet", "example.com", "bad\x01") == NULL);
}

static void test_make_limits(void)
{
    char *ok = repeat("", 'x', 1023, "");
    char *big = repeat("", 'x', 1024, "");
    char *expected = repeat(ok, '@', 1, "example.com");
    char *made = uvx_jid_make(ok, "example.com", NULL);

    CHECK_STR(made, expected);
    free(made);
    free(expected);
    CHECK(uvx_jid_make(big, "example.com", NULL) == NULL);
    CHECK(uvx_jid_make(NULL, big, NULL) == NULL);
    CHECK(uvx_jid_make(NULL, "example.com", big) == NULL);
    made = uvx_jid_make(NULL, "example.com", ok);
    CHECK(made != NULL && strlen(made) == strlen("example.com/") + 1023);
    free(made);
    free(ok);
    free(big);
}

static void test_make_split_round_trip(void)
{
    static const char *const jids[] = {
        "juliet@example.com/balcony",
        "juliet@example.com",
        "example.com/balcony",
        "example.com",
        "room@conference.example.com/a@b/c d",
        "d\\27artagnan@musketeers.lit/elder",
        "\xcf\x81@\xce\xb5.example/\xce\xba",
        "x@[::1]/y",
    };

    for (size_t i = 0; i < sizeof(jids) / sizeof(jids[0]); i++) {
        char *n, *d, *r, *made;

        CHECK_INT(uvx_jid_split(jids[i], &n, &d, &r), 0);
        made = uvx_jid_make(n, d, r);
        CHECK_STR(made, jids[i]);
        free(made);
        free(n);
        free(d);
        free(r);
    }
}

static void test_bare_equal(void)
{
    CHECK_INT(uvx_jid_bare_equal("juliet@example.com", "juliet@example.com"), 1);
    CHECK_INT(uvx_jid_bare_equal("juliet@example.com/a", "juliet@example.com/b"), 1);
    CHECK_INT(uvx_jid_bare_equal("juliet@example.com/a", "juliet@example.com"), 1);
    CHECK_INT(uvx_jid_bare_equal("juliet@EXAMPLE.Com", "juliet@example.com/x"), 1);
    CHECK_INT(uvx_jid_bare_equal("example.com", "Example.COM/r"), 1);
    /* Nodes compare exactly (no PRECIS case mapping). */
    CHECK_INT(uvx_jid_bare_equal("Juliet@example.com", "juliet@example.com"), 0);
    CHECK_INT(uvx_jid_bare_equal("juliet@example.com", "romeo@example.com"), 0);
    CHECK_INT(uvx_jid_bare_equal("juliet@example.com", "juliet@example.net"), 0);
    CHECK_INT(uvx_jid_bare_equal("juliet@example.com", "example.com"), 0);
    CHECK_INT(uvx_jid_bare_equal("example.com", "juliet@example.com"), 0);
    CHECK_INT(uvx_jid_bare_equal("juliet@example.com", "juliet@example.co"), 0);
    /* Non-ASCII bytes are not case-folded. */
    CHECK_INT(uvx_jid_bare_equal("\xc3\xa4.example", "\xc3\x84.example"), 0);
    CHECK_INT(uvx_jid_bare_equal("\xc3\xa4.example", "\xc3\xa4.EXAMPLE"), 1);
    /* Invalid JIDs equal nothing, not even themselves. */
    CHECK_INT(uvx_jid_bare_equal("a@b@c", "a@b@c"), 0);
    CHECK_INT(uvx_jid_bare_equal("", ""), 0);
    CHECK_INT(uvx_jid_bare_equal("juliet@example.com", "juliet@example.com/"), 0);
}

static void test_api_misuse(void)
{
    char *n = (char *)"unset", *d = (char *)"unset", *r = (char *)"unset";

    CHECK_INT(uvx_jid_split(NULL, &n, &d, &r), UVX_EINVAL);
    CHECK(n == NULL && d == NULL && r == NULL);
    CHECK_INT(uvx_jid_split(NULL, NULL, NULL, NULL), UVX_EINVAL);
    CHECK(uvx_jid_node(NULL) == NULL);
    CHECK(uvx_jid_domain(NULL) == NULL);
    CHECK(uvx_jid_resource(NULL) == NULL);
    CHECK(uvx_jid_bare(NULL) == NULL);
    CHECK(uvx_jid_make(NULL, NULL, NULL) == NULL);
    CHECK(uvx_jid_make("juliet", NULL, "balcony") == NULL);
    CHECK_INT(uvx_jid_valid(NULL), 0);
    CHECK_INT(uvx_jid_bare_equal(NULL, "example.com"), 0);
    CHECK_INT(uvx_jid_bare_equal("example.com", NULL), 0);
    CHECK_INT(uvx_jid_bare_equal(NULL, NULL), 0);
    CHECK(uvx_jid_escape_node(NULL) == NULL);
    CHECK(uvx_jid_unescape_node(NULL) == NULL);
}

/* XEP-0106 §5.1, "JID Examples": user input -> escaped localpart. */
static void test_xep0106_examples(void)
{
    static const struct {
        const char *input, *escaped;
    } rows[] = {
        {"space cadet", "space\\20cadet"},
        {"call me \"ishmael\"", "call\\20me\\20\\22ishmael\\22"},
        {"at&t guy", "at\\26t\\20guy"},
        {"d'artagnan", "d\\27artagnan"},
        {"/.fanboy", "\\2f.fanboy"},
        {"::foo::", "\\3a\\3afoo\\3a\\3a"},
        {"<foo>", "\\3cfoo\\3e"},
        {"user@host", "user\\40host"},
        {"c:\\5commas", "c\\3a\\5c5commas"},
        /* §5.2 email and §5.5 IMPS examples. */
        {"here's_a_wild_&_/cr%zy/_address", "here\\27s_a_wild_\\26_\\2fcr%zy\\2f_address"},
        {"here's_a_wild_&_/cr%zy/_address_for:<wv>(\"IMPS\")",
         "here\\27s_a_wild_\\26_\\2fcr%zy\\2f_address_for\\3a\\3cwv\\3e(\\22IMPS\\22)"},
        /* §4.2 step 3 / §5.5: only backslashes that start a sequence are escaped. */
        {"\\3and\\2is\\5cool", "\\5c3and\\2is\\5c5cool"},
    };

    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        check_owned(uvx_jid_escape_node(rows[i].input), rows[i].escaped);
        check_owned(uvx_jid_unescape_node(rows[i].escaped), rows[i].input);
    }
}

/* Rows 9-11 of the XEP-0106 table escape backslashes that start no escape
 * sequence ("c:\net" -> "c\3a\5cnet"), which contradicts the normative
 * §4.1 rule 7 and §2 requirement 3 that we follow. Their escaped forms still
 * unescape to the user input; our escaping leaves such backslashes alone. */
static void test_xep0106_backslash_rows(void)
{
    check_owned(uvx_jid_unescape_node("c\\3a\\5cnet"), "c:\\net");
    check_owned(uvx_jid_unescape_node("c\\3a\\5c\\5cnet"), "c:\\\\net");
    check_owned(uvx_jid_unescape_node("c\\3a\\5ccool\\20stuff"), "c:\\cool stuff");
    check_owned(uvx_jid_escape_node("c:\\net"), "c\\3a\\net");
    check_owned(uvx_jid_escape_node("c:\\\\net"), "c\\3a\\\\net");
    check_owned(uvx_jid_escape_node("c:\\cool stuff"), "c\\3a\\cool\\20stuff");
}

/* XEP-0106 §4.3: partial sequences and codes of other characters are left
 * alone by both transformations; codes are lowercase only. */
static void test_xep0106_exceptions(void)
{
    static const char *const unchanged[] = {
        "\\2plus\\2is\\4", "foo\\bar", "foob\\41r", "\\2F", "\\3A\\5C", "\\", "a\\", "a\\2", "\\5",
    };

    for (size_t i = 0; i < sizeof(unchanged) / sizeof(unchanged[0]); i++) {
        check_owned(uvx_jid_escape_node(unchanged[i]), unchanged[i]);
        check_owned(uvx_jid_unescape_node(unchanged[i]), unchanged[i]);
    }
}

static void test_unescape_sequences(void)
{
    check_owned(uvx_jid_unescape_node("\\20\\22\\26\\27\\2f\\3a\\3c\\3e\\40\\5c"), " \"&'/:<>@\\");
    /* Only one level: \5c27 is a literal "\27". */
    check_owned(uvx_jid_unescape_node("\\5c27"), "\\27");
    check_owned(uvx_jid_unescape_node("\\5c5c"), "\\5c");
    check_owned(uvx_jid_unescape_node("\\\\27"), "\\'");
    check_owned(uvx_jid_unescape_node("plain"), "plain");
    check_owned(uvx_jid_unescape_node(""), "");
    check_owned(uvx_jid_unescape_node("\\2"), "\\2");
}

static void test_escape_rules(void)
{
    char *s, *e;

    check_owned(uvx_jid_escape_node(" \"&'/:<>@"), NULL); /* leading space */
    check_owned(uvx_jid_escape_node("a \"&'/:<>@"), "a\\20\\22\\26\\27\\2f\\3a\\3c\\3e\\40");
    check_owned(uvx_jid_escape_node("plain"), "plain");
    check_owned(uvx_jid_escape_node("\\27"), "\\5c27");
    check_owned(uvx_jid_escape_node("\\5c"), "\\5c5c");
    check_owned(uvx_jid_escape_node("\\\\27"), "\\\\5c27");
    check_owned(uvx_jid_escape_node("\\ x"), "\\\\20x");
    /* \20 may not begin or end an escaped node. */
    CHECK(uvx_jid_escape_node(" cadet") == NULL);
    CHECK(uvx_jid_escape_node("cadet ") == NULL);
    CHECK(uvx_jid_escape_node(" ") == NULL);
    check_owned(uvx_jid_escape_node("a b"), "a\\20b");
    /* The result must be a valid localpart. */
    CHECK(uvx_jid_escape_node("") == NULL);
    CHECK(uvx_jid_escape_node("a\x01") == NULL);
    CHECK(uvx_jid_escape_node("\xff") == NULL);
    s = repeat("", '@', 341, ""); /* escapes to exactly 1023 bytes */
    e = uvx_jid_escape_node(s);
    CHECK(e != NULL && strlen(e) == 1023);
    free(e);
    free(s);
    s = repeat("", '@', 342, ""); /* 1026 bytes */
    CHECK(uvx_jid_escape_node(s) == NULL);
    free(s);
    s = repeat("", 'a', 1023, "");
    check_owned(uvx_jid_escape_node(s), s);
    free(s);
    s = repeat("", 'a', 1024, "");
    CHECK(uvx_jid_escape_node(s) == NULL);
    free(s);
    /* An escaped node makes a valid JID. */
    e = uvx_jid_escape_node("user@host/with:odd<chars>");
    s = uvx_jid_make(e, "gateway.example.com", NULL);
    CHECK_STR(s, "user\\40host\\2fwith\\3aodd\\3cchars\\3e@gateway.example.com");
    free(s);
    free(e);
}

static void test_escape_round_trip(void)
{
    static const char *const inputs[] = {
        "space cadet",
        "c:\\net",
        "c:\\\\net",
        "c:\\cool stuff",
        "c:\\5commas",
        "\\27",
        "\\5c",
        "\\5c27",
        "\\\\5c",
        "\\",
        "a\\",
        "\\ \\",
        "\\2\\40",
        "x\\3a\\3A",
        "\xc3\xa9t\xc3\xa9 x",
        "\\20\\22\\26\\27\\2f\\3a\\3c\\3e\\40\\5c",
    };

    for (size_t i = 0; i < sizeof(inputs) / sizeof(inputs[0]); i++) {
        char *e = uvx_jid_escape_node(inputs[i]);
        char *u = uvx_jid_unescape_node(e);

        CHECK(e != NULL);
        CHECK_STR(u, inputs[i]);
        if (e != NULL) {
            char *jid = uvx_jid_make(e, "example.com", NULL);
            CHECK(jid != NULL);
            free(jid);
        }
        free(e);
        free(u);
    }
}

int main(void)
{
    tap_run("split full, bare and domain-only JIDs", test_split_full);
    tap_run("split: '@' and '/' in the resource", test_split_resource_separators);
    tap_run("split: multiple '@'", test_split_multiple_at);
    tap_run("split: empty parts are invalid", test_split_empty_parts);
    tap_run("split: out pointers are optional", test_split_out_pointers_optional);
    tap_run("part lengths 1023 vs 1024 bytes", test_part_length_limits);
    tap_run("domain trailing dot is stripped", test_domain_trailing_dot);
    tap_run("domain trailing dot and the length limit", test_domain_trailing_dot_length);
    tap_run("localpart forbidden characters", test_node_characters);
    tap_run("control characters and UTF-8", test_control_and_utf8);
    tap_run("domain syntax", test_domain_syntax);
    tap_run("node/domain/resource/bare accessors", test_accessors);
    tap_run("make", test_make);
    tap_run("make: part length limits", test_make_limits);
    tap_run("make(split(x)) == x", test_make_split_round_trip);
    tap_run("bare_equal", test_bare_equal);
    tap_run("NULL arguments", test_api_misuse);
    tap_run("XEP-0106 examples", test_xep0106_examples);
    tap_run("XEP-0106 table rows 9-11 (backslash)", test_xep0106_backslash_rows);
    tap_run("XEP-0106 exceptions left alone", test_xep0106_exceptions);
    tap_run("unescape recognised sequences only", test_unescape_sequences);
    tap_run("escape rules", test_escape_rules);
    tap_run("unescape(escape(x)) == x", test_escape_round_trip);
    return tap_done();
}
