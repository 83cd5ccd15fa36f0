/*
 * Building stanzas: the Strophe-style builder ($build/$msg/$iq/$pres and
 * c/t/up), uvx_stanza_fmt(), and the RFC 6120 reply helpers.
 */
#include "stanza.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"

/* ---- Builder ------------------------------------------------------------- */

struct uvx_builder {
    uvx_stanza_t *root;
    uvx_stanza_t *cursor; /* borrowed: the root holds it */
    int failed;           /* sticky: the first failure spoils the result */
};

/* Sets the name/value pairs of `ap` on `s`; a NULL value skips its pair. */
static int set_attr_list(uvx_stanza_t *s, const char *first, va_list ap)
{
    int rc = 0;
    for (const char *name = first; name != NULL; name = va_arg(ap, const char *)) {
        const char *value = va_arg(ap, const char *);
        if (value != NULL && rc == 0)
            rc = uvx_stanza_set_attr(s, name, value);
    }
    return rc;
}

static uvx_builder_t *builder_start(const char *name, const char *ns, const char *first_attr,
                                    va_list ap)
{
    uvx_builder_t *b = calloc(1, sizeof(*b));
    if (b == NULL)
        return NULL;
    b->root = uvx_stanza_new(name);
    b->cursor = b->root;
    if (b->root == NULL || (ns != NULL && uvx_stanza_set_ns(b->root, ns) != 0) ||
        set_attr_list(b->root, first_attr, ap) != 0)
        b->failed = 1;
    return b;
}

uvx_builder_t *uvx_build(const char *name, ...)
{
    va_list ap;
    va_start(ap, name);
    const char *first = name ? va_arg(ap, const char *) : NULL;
    uvx_builder_t *b = builder_start(name, NULL, first, ap);
    va_end(ap);
    return b;
}

uvx_builder_t *uvx_msg(const char *first_attr, ...)
{
    va_list ap;
    va_start(ap, first_attr);
    uvx_builder_t *b = builder_start("message", UVX_NS_CLIENT, first_attr, ap);
    va_end(ap);
    return b;
}

uvx_builder_t *uvx_iq(const char *first_attr, ...)
{
    va_list ap;
    va_start(ap, first_attr);
    uvx_builder_t *b = builder_start("iq", UVX_NS_CLIENT, first_attr, ap);
    va_end(ap);
    return b;
}

uvx_builder_t *uvx_pres(const char *first_attr, ...)
{
    va_list ap;
    va_start(ap, first_attr);
    uvx_builder_t *b = builder_start("presence", UVX_NS_CLIENT, first_attr, ap);
    va_end(ap);
    return b;
}

/* Appends `child` (taking the reference) under the cursor; 0 or -1. */
static int builder_append(uvx_builder_t *b, uvx_stanza_t *child)
{
    if (child == NULL || uvx_stanza_adopt(b->cursor, child) != 0) {
        b->failed = 1;
        return -1;
    }
    return 0;
}

uvx_builder_t *uvx_b_c(uvx_builder_t *b, const char *name, ...)
{
    if (b == NULL || b->failed)
        return b;
    uvx_stanza_t *child = uvx_stanza_new(name);
    /* Like a child written inside its parent's XML, it inherits the
     * parent's default namespace unless its attributes say otherwise. */
    if (child != NULL && b->cursor->ns != NULL && uvx_stanza_set_ns(child, b->cursor->ns) != 0) {
        uvx_stanza_unref(child);
        child = NULL;
    }
    if (builder_append(b, child) != 0)
        return b;
    b->cursor = child;
    va_list ap;
    va_start(ap, name);
    if (set_attr_list(child, va_arg(ap, const char *), ap) != 0)
        b->failed = 1;
    va_end(ap);
    return b;
}

uvx_builder_t *uvx_b_t(uvx_builder_t *b, const char *text)
{
    if (b == NULL || b->failed)
        return b;
    builder_append(b, uvx_stanza_new_text(text));
    return b;
}

uvx_builder_t *uvx_b_attrs(uvx_builder_t *b, ...)
{
    if (b == NULL || b->failed)
        return b;
    va_list ap;
    va_start(ap, b);
    if (set_attr_list(b->cursor, va_arg(ap, const char *), ap) != 0)
        b->failed = 1;
    va_end(ap);
    return b;
}

uvx_builder_t *uvx_b_up(uvx_builder_t *b)
{
    if (b != NULL && !b->failed && b->cursor != b->root)
        b->cursor = uvx_stanza_parent(b->cursor);
    return b;
}

uvx_builder_t *uvx_b_root(uvx_builder_t *b)
{
    if (b != NULL && !b->failed)
        b->cursor = b->root;
    return b;
}

uvx_builder_t *uvx_b_cnode(uvx_builder_t *b, const uvx_stanza_t *s)
{
    if (b == NULL || b->failed)
        return b;
    uvx_stanza_t *copy = uvx_stanza_copy(s);
    if (builder_append(b, copy) != 0)
        return b;
    /* A text node cannot hold children: the cursor stays on its parent. */
    if (uvx_stanza_is_element(copy))
        b->cursor = copy;
    return b;
}

uvx_stanza_t *uvx_b_node(uvx_builder_t *b)
{
    return b != NULL && !b->failed ? b->cursor : NULL;
}

uvx_stanza_t *uvx_b_done(uvx_builder_t *b)
{
    if (b == NULL)
        return NULL;
    uvx_stanza_t *root = b->failed ? NULL : b->root;
    if (b->failed)
        uvx_stanza_unref(b->root);
    free(b);
    return root;
}

void uvx_b_free(uvx_builder_t *b)
{
    if (b == NULL)
        return;
    uvx_stanza_unref(b->root);
    free(b);
}

/* ---- uvx_stanza_fmt ------------------------------------------------------ */

/* Where the format scan stands in the XML it describes. */
enum fmt_where {
    FMT_TEXT,  /* character data */
    FMT_TAG,   /* inside <...> but outside a quoted value */
    FMT_VALUE, /* inside a quoted attribute value */
    FMT_CDATA, /* inside <![CDATA[ ... ]]> */
};

typedef struct fmt_state {
    enum fmt_where where;
    char quote;             /* FMT_VALUE: the quote that closes it */
    const char *cdata_body; /* FMT_CDATA: where the section's content starts */
} fmt_state_t;

/* Follows the markup one format character at a time. */
static void fmt_track(fmt_state_t *st, const char *p)
{
    switch (st->where) {
    case FMT_TEXT:
        if (strncmp(p, "<![CDATA[", 9) == 0) {
            st->where = FMT_CDATA;
            st->cdata_body = p + 9;
        } else if (*p == '<')
            st->where = FMT_TAG;
        break;
    case FMT_TAG:
        if (*p == '\'' || *p == '"') {
            st->where = FMT_VALUE;
            st->quote = *p;
        } else if (*p == '>') {
            st->where = FMT_TEXT;
        }
        break;
    case FMT_VALUE:
        if (*p == st->quote)
            st->where = FMT_TAG;
        break;
    case FMT_CDATA:
        if (*p == '>' && p - 2 >= st->cdata_body && p[-1] == ']' && p[-2] == ']')
            st->where = FMT_TEXT;
        break;
    }
}

/* Appends one %s argument, escaped for where it lands. A string argument
 * in a tag outside quotes or in a CDATA section could not be escaped
 * safely: that is a bad format. */
static int fmt_string(buf_t *b, const fmt_state_t *st, const char *arg)
{
    if (arg == NULL)
        return UVX_EINVAL;
    if (st->where == FMT_TEXT)
        return buf_append_escaped(b, arg, strlen(arg), 0);
    if (st->where == FMT_VALUE)
        return buf_append_escaped(b, arg, strlen(arg), 1);
    return UVX_EINVAL;
}

/* Appends one conversion starting at p (just after '%'); returns the
 * number of format characters consumed, or a negative error. */
static int fmt_conversion(buf_t *b, const fmt_state_t *st, const char *p, va_list *ap)
{
    char num[32];
    int used = 1;
    if (p[0] == '%')
        return buf_append(b, "%", 1) ? UVX_ENOMEM : 1;
    if (p[0] == 's') {
        int rc = fmt_string(b, st, va_arg(*ap, const char *));
        return rc ? rc : 1;
    }
    if (p[0] == 'd')
        snprintf(num, sizeof(num), "%d", va_arg(*ap, int));
    else if (p[0] == 'u')
        snprintf(num, sizeof(num), "%u", va_arg(*ap, unsigned));
    else if (p[0] == 'l' && p[1] == 'd')
        used = 2, snprintf(num, sizeof(num), "%ld", va_arg(*ap, long));
    else if (p[0] == 'l' && p[1] == 'u')
        used = 2, snprintf(num, sizeof(num), "%lu", va_arg(*ap, unsigned long));
    else if (p[0] == 'z' && p[1] == 'u')
        used = 2, snprintf(num, sizeof(num), "%zu", va_arg(*ap, size_t));
    else
        return UVX_EINVAL;
    return buf_append_str(b, num) ? UVX_ENOMEM : used;
}

static int fmt_expand(buf_t *b, const char *fmt, va_list *ap)
{
    fmt_state_t st = {FMT_TEXT, 0, NULL};
    const char *p = fmt;
    while (*p != '\0') {
        const char *lit = p;
        while (*p != '\0' && *p != '%') {
            fmt_track(&st, p);
            p++;
        }
        if (buf_append(b, lit, (size_t)(p - lit)))
            return UVX_ENOMEM;
        if (*p == '\0')
            break;
        int used = fmt_conversion(b, &st, p + 1, ap);
        if (used < 0)
            return used;
        p += 1 + used;
    }
    return 0;
}

/* 1 if the XML's first element is a bare <message>, <iq> or <presence>. */
static int starts_with_client_stanza(const char *xml)
{
    static const char *const names[] = {"message", "iq", "presence"};
    while (*xml == ' ' || *xml == '\t' || *xml == '\r' || *xml == '\n')
        xml++;
    if (*xml++ != '<')
        return 0;
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        size_t n = strlen(names[i]);
        if (strncmp(xml, names[i], n) == 0 && strchr(" \t\r\n/>", xml[n]) != NULL && xml[n] != '\0')
            return 1;
    }
    return 0;
}

uvx_stanza_t *uvx_stanza_vfmt(const char *fmt, va_list ap)
{
    if (fmt == NULL)
        return NULL;
    buf_t b = BUF_INIT;
    va_list copy;
    va_copy(copy, ap);
    int rc = fmt_expand(&b, fmt, &copy);
    va_end(copy);
    uvx_stanza_t *s = NULL;
    if (rc == 0 && b.data != NULL) {
        /* Parsing the element as if it stood on a c2s stream gives a bare
         * <message/> and its unqualified children the jabber:client ns,
         * while an explicit xmlns still wins. */
        const char *wrapper_ns = starts_with_client_stanza(b.data) ? UVX_NS_CLIENT : NULL;
        s = stanza_parse_in(b.data, b.len, wrapper_ns, NULL);
    }
    buf_free(&b);
    return s;
}

uvx_stanza_t *uvx_stanza_fmt(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    uvx_stanza_t *s = uvx_stanza_vfmt(fmt, ap);
    va_end(ap);
    return s;
}

/* ---- Reply helpers (RFC 6120 §8.2.3, §8.3) ------------------------------- */

/* A new element like `orig` (name, namespace, id) addressed back to its
 * sender, with type `type`. */
static uvx_stanza_t *reply_skeleton(const uvx_stanza_t *orig, const char *name, const char *type)
{
    uvx_stanza_t *r = uvx_stanza_new(name);
    if (r == NULL)
        return NULL;
    /* A tree built without a namespace is still meant for a c2s stream. */
    const char *ns = uvx_stanza_ns(orig) ? uvx_stanza_ns(orig) : UVX_NS_CLIENT;
    const char *id = uvx_stanza_id(orig), *to = uvx_stanza_from(orig), *from = uvx_stanza_to(orig);
    if (uvx_stanza_set_ns(r, ns) != 0 || uvx_stanza_set_type(r, type) != 0 ||
        (id && uvx_stanza_set_id(r, id) != 0) || (to && uvx_stanza_set_to(r, to) != 0) ||
        (from && uvx_stanza_set_from(r, from) != 0)) {
        uvx_stanza_unref(r);
        return NULL;
    }
    return r;
}

uvx_stanza_t *uvx_stanza_reply(const uvx_stanza_t *iq)
{
    const char *name = uvx_stanza_name(iq);
    if (name == NULL || strcmp(name, "iq") != 0)
        return NULL;
    return reply_skeleton(iq, "iq", "result");
}

typedef struct condition_type {
    const char *name;
    uvx_error_type_t type;
} condition_type_t;

/* RFC 6120 §8.3.3: the defined conditions and the type each one's text
 * recommends (the first, where it names two). undefined-condition allows
 * any type; "cancel" (do not retry) is the neutral choice. */
static const condition_type_t defined_conditions[] = {
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

int uvx_error_condition_type(const char *condition)
{
    if (condition == NULL)
        return -1;
    size_t n = sizeof(defined_conditions) / sizeof(defined_conditions[0]);
    for (size_t i = 0; i < n; i++)
        if (strcmp(defined_conditions[i].name, condition) == 0)
            return (int)defined_conditions[i].type;
    return -1;
}

static const char *error_type_name(uvx_error_type_t type)
{
    switch (type) {
    case UVX_ERROR_TYPE_AUTH:
        return "auth";
    case UVX_ERROR_TYPE_CANCEL:
        return "cancel";
    case UVX_ERROR_TYPE_CONTINUE:
        return "continue";
    case UVX_ERROR_TYPE_MODIFY:
        return "modify";
    case UVX_ERROR_TYPE_WAIT:
        return "wait";
    }
    return NULL;
}

/* <error type='…'><condition xmlns='…stanzas'/><text xmlns='…stanzas'>…</text></error> */
static uvx_stanza_t *error_element(const char *ns, const char *type, const char *condition,
                                   const char *text)
{
    uvx_builder_t *b = uvx_build("error", "xmlns", ns, "type", type, NULL);
    uvx_b_c(b, condition, "xmlns", UVX_NS_STANZAS, NULL);
    if (text != NULL)
        uvx_b_t(uvx_b_c(uvx_b_up(b), "text", "xmlns", UVX_NS_STANZAS, NULL), text);
    return uvx_b_done(b);
}

uvx_stanza_t *uvx_stanza_error_reply(const uvx_stanza_t *stanza, uvx_error_type_t type,
                                     const char *condition, const char *text, int include_original)
{
    const char *type_name = error_type_name(type);
    const char *name = uvx_stanza_name(stanza);
    if (name == NULL || type_name == NULL || condition == NULL)
        return NULL;
    /* RFC 6120 §8.3.1: never answer an error with an error (no loops). */
    const char *orig_type = uvx_stanza_type(stanza);
    if (orig_type != NULL && strcmp(orig_type, "error") == 0)
        return NULL;
    uvx_stanza_t *r = reply_skeleton(stanza, name, "error");
    if (r == NULL)
        return NULL;
    if (include_original) {
        for (const uvx_stanza_t *c = uvx_stanza_children(stanza); c; c = uvx_stanza_next(c)) {
            if (uvx_stanza_adopt(r, uvx_stanza_copy(c)) != 0)
                goto fail;
        }
    }
    if (uvx_stanza_adopt(r, error_element(uvx_stanza_ns(r), type_name, condition, text)) != 0)
        goto fail;
    return r;
fail:
    uvx_stanza_unref(r);
    return NULL;
}

/* The <error/> child of an error stanza, in the stanza's own namespace. */
static const uvx_stanza_t *error_child(const uvx_stanza_t *stanza)
{
    for (const uvx_stanza_t *c = uvx_stanza_children(stanza); c; c = uvx_stanza_next(c)) {
        if (uvx_stanza_is_element(c) && strcmp(c->name, "error") == 0 &&
            (c->ns == stanza->ns || (c->ns && stanza->ns && strcmp(c->ns, stanza->ns) == 0)))
            return c;
    }
    return NULL;
}

const char *uvx_stanza_error_condition(const uvx_stanza_t *stanza)
{
    const uvx_stanza_t *err = error_child(stanza);
    if (err == NULL)
        return NULL;
    for (const uvx_stanza_t *c = err->first; c != NULL; c = c->next) {
        if (c->kind == STANZA_ELEMENT && c->ns != NULL && strcmp(c->ns, UVX_NS_STANZAS) == 0 &&
            strcmp(c->name, "text") != 0)
            return c->name;
    }
    return NULL;
}

const char *uvx_stanza_error_text(uvx_stanza_t *stanza)
{
    const uvx_stanza_t *err = error_child(stanza);
    uvx_stanza_t *text = uvx_stanza_child_name_ns(err, "text", UVX_NS_STANZAS);
    return text ? uvx_stanza_text(text) : NULL;
}
