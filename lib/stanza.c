/*
 * The stanza tree: reference-counted element and text nodes, their
 * attributes and children, the serializer and uvx_stanza_from_string().
 *
 * Each node is one malloc'd block holding the struct, the attribute array
 * reserved at creation, the name / namespace / text bytes (see the
 * STANZA_F_* flags in stanza.h) and a pool for attribute strings. The parser
 * builds every incoming stanza through stanza_new_element() and friends, so
 * they stay cheap: no strlen, no validation (libxml2 has already checked the
 * XML), and a typical element with its attributes is a single allocation.
 */
#include "stanza.h"

#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"

/* ---- Validation of caller-supplied strings ------------------------------ */

/* Length of the UTF-8 sequence at s[0..len) that encodes an XML Char, or 0.
 * XML 1.0 Char: #x9 | #xA | #xD | [#x20-#xD7FF] | [#xE000-#xFFFD] |
 * [#x10000-#x10FFFF]. */
static size_t xml_char_len(const unsigned char *s, size_t len)
{
    unsigned c = s[0];
    if (c < 0x80)
        return (c >= 0x20 || c == '\t' || c == '\n' || c == '\r') ? 1 : 0;
    size_t n;
    unsigned cp, min;
    if ((c & 0xE0) == 0xC0) {
        n = 2, cp = c & 0x1F, min = 0x80;
    } else if ((c & 0xF0) == 0xE0) {
        n = 3, cp = c & 0x0F, min = 0x800;
    } else if ((c & 0xF8) == 0xF0) {
        n = 4, cp = c & 0x07, min = 0x10000;
    } else {
        return 0;
    }
    if (len < n)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF) || cp == 0xFFFE || cp == 0xFFFF)
        return 0;
    return n;
}

/* 1 if s[0..len) is UTF-8 made only of characters XML allows: whatever we
 * accept must serialize to something a peer's parser accepts too. */
static int valid_xml_text(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < len) {
        size_t n = xml_char_len(p + i, len - i);
        if (n == 0)
            return 0;
        i += n;
    }
    return 1;
}

/* A deliberately loose XML Name check: non-empty valid text with none of
 * the characters that would break the markup around it. */
static int valid_xml_name(const char *s, int allow_colon)
{
    if (s == NULL || *s == '\0')
        return 0;
    if (strchr("-.0123456789", *s) != NULL)
        return 0;
    for (const char *p = s; *p; p++) {
        if (strchr(" \t\r\n<>&'\"=/!?;,()[]{}`|\\", *p) != NULL)
            return 0;
        if (*p == ':' && !allow_colon)
            return 0;
    }
    return valid_xml_text(s, strlen(s));
}

static char *dup_len(const char *s, size_t len)
{
    char *d = malloc(len + 1);
    if (d == NULL)
        return NULL;
    memcpy(d, s, len);
    d[len] = '\0';
    return d;
}

/* ---- Construction and destruction --------------------------------------- */

/* Every field set by hand rather than by memset(): for a struct this size
 * gcc emits `rep stos`, which costs more than the stores on every node the
 * parser builds. Keep in step with struct uvx_stanza. */
static void init_node(uvx_stanza_t *s, unsigned char kind, unsigned char flags)
{
    s->refs = 1;
    s->kind = kind;
    s->flags = flags;
    s->parent = s->first = s->last = s->next = s->prev = NULL;
    s->name = NULL;
    s->len = 0;
    s->ns = NULL;
    s->attrs = NULL;
    s->nattrs = s->attr_cap = 0;
    s->text_cache = NULL;
    s->text_cap = 0;
    s->pool = NULL;
    s->pool_used = s->pool_size = 0;
    s->arena = NULL;
}

/* ---- Arenas --------------------------------------------------------------- */

/* A replacement arena has room for twice what its predecessor held, within
 * these bounds; a node block larger than ARENA_BIG is malloc'd on its own. */
#define ARENA_MIN 1024
#define ARENA_MAX (64 * 1024)
#define ARENA_BIG (16 * 1024)

stanza_arena_t *stanza_arena_new(size_t size)
{
    if (size > SIZE_MAX - sizeof(stanza_arena_t))
        return NULL;
    stanza_arena_t *a = malloc(sizeof(stanza_arena_t) + size);
    if (a == NULL)
        return NULL;
    a->refs = 1;
    a->used = 0;
    a->size = size;
    return a;
}

static void arena_unref(stanza_arena_t *a)
{
    if (--a->refs == 0)
        free(a);
}

void stanza_arena_release(stanza_arena_t *a)
{
    if (a != NULL)
        arena_unref(a);
}

int stanza_arena_recycle(stanza_arena_t *a)
{
    if (a == NULL || a->refs != 1)
        return 0;
    a->used = 0;
    return 1;
}

/* Room for a node block of `size` bytes, from the arena in *slot (replaced
 * by a bigger one when full), or NULL when the block should be malloc'd.
 * *from gets the arena, which the block holds a reference on. */
static void *arena_carve(stanza_arena_t **slot, size_t size, stanza_arena_t **from)
{
    if (size > ARENA_BIG)
        return NULL;
    stanza_arena_t *a = *slot;
    /* Blocks start aligned for the node struct (the previous block's
     * attribute pool may have grown by any number of bytes). */
    size_t start = a != NULL ? (a->used + 15) & ~(size_t)15 : 0;
    if (a == NULL || start > a->size || a->size - start < size) {
        size_t next = a != NULL && a->used > ARENA_MIN / 2 ? 2 * a->used : ARENA_MIN;
        if (next > ARENA_MAX)
            next = ARENA_MAX;
        if (next < size)
            next = size;
        stanza_arena_t *fresh = stanza_arena_new(next);
        if (fresh == NULL)
            return NULL;
        stanza_arena_release(a);
        *slot = a = fresh;
        start = 0;
    }
    a->used = start + size;
    a->refs++;
    *from = a;
    return a->mem + start;
}

/* Grows the attribute pool of `s` in place by `more` bytes when `s` is the
 * block carved last from `a`: the pool is the block's tail, so it can take
 * the arena's next bytes. */
static void arena_grow_pool(stanza_arena_t *a, uvx_stanza_t *s, size_t more)
{
    if (s->arena != a || s->pool == NULL || s->pool + s->pool_size != a->mem + a->used ||
        a->size - a->used < more || more > UINT_MAX / 2 - s->pool_size)
        return;
    a->used += more;
    s->pool_size += (unsigned)more;
}

/* ---- Node constructors ------------------------------------------------------ */

/* A new element block: from an arena when `slot` is not NULL and it can,
 * else malloc'd. */
static uvx_stanza_t *new_element_block(stanza_arena_t **slot, const char *name, size_t name_len,
                                       const char *ns, size_t ns_len, int attr_hint,
                                       size_t attr_bytes)
{
    /* Each part of the size below stays under SIZE_MAX / 8: the sum cannot wrap. */
    const size_t part_max = SIZE_MAX / 8;
    if (name_len > part_max || ns_len > part_max ||
        (attr_hint > 0 && (size_t)attr_hint > part_max / sizeof(stanza_attr_t)))
        return NULL;
    if (attr_hint < 0)
        attr_hint = 0;
    if (attr_bytes > UINT_MAX / 2 || attr_bytes > part_max)
        attr_bytes = 0; /* absurd (pool_size is an unsigned): each attribute allocates its own */
    size_t attrs_size = (size_t)attr_hint * sizeof(stanza_attr_t);
    size_t strings = name_len + 1 + (ns != NULL ? ns_len + 1 : 0);
    size_t size = sizeof(uvx_stanza_t) + attrs_size + strings + attr_bytes;
    stanza_arena_t *arena = NULL;
    uvx_stanza_t *s = slot != NULL ? arena_carve(slot, size, &arena) : NULL;
    if (s == NULL && (s = malloc(size)) == NULL)
        return NULL;
    init_node(s, STANZA_ELEMENT, STANZA_F_NAME_INLINE | STANZA_F_ATTRS_INLINE);
    s->arena = arena;
    char *tail = (char *)(s + 1);
    s->attrs = attr_hint ? (stanza_attr_t *)tail : NULL;
    s->attr_cap = attr_hint;
    tail += attrs_size;
    s->name = tail;
    if (name_len)
        memcpy(s->name, name, name_len);
    s->name[name_len] = '\0';
    tail += name_len + 1;
    if (ns != NULL) {
        s->ns = tail;
        if (ns_len)
            memcpy(s->ns, ns, ns_len);
        s->ns[ns_len] = '\0';
        s->flags |= STANZA_F_NS_INLINE;
        tail += ns_len + 1;
    }
    if (attr_bytes || arena != NULL) {
        s->pool = tail; /* an arena's may grow: see arena_grow_pool() */
        s->pool_size = (unsigned)attr_bytes;
    }
    return s;
}

uvx_stanza_t *stanza_new_element_sized(const char *name, size_t name_len, const char *ns,
                                       size_t ns_len, int attr_hint, size_t attr_bytes)
{
    return new_element_block(NULL, name, name_len, ns, ns_len, attr_hint, attr_bytes);
}

uvx_stanza_t *stanza_new_element_in(stanza_arena_t **slot, const char *name, size_t name_len,
                                    const char *ns, size_t ns_len, int attr_hint, size_t attr_bytes)
{
    return new_element_block(slot, name, name_len, ns, ns_len, attr_hint, attr_bytes);
}

uvx_stanza_t *stanza_new_element_with(stanza_arena_t **slot, const char *name, size_t name_len,
                                      const char *ns, size_t ns_len, const stanza_attr_src_t *attrs,
                                      int nattrs)
{
    /* Each string is shorter than the stanza size limit: the sum of a few
     * dozen cannot wrap, but stay safe against any caller. */
    const size_t part_max = UINT_MAX / 8 / STANZA_FAST_ATTRS;
    if (nattrs < 0 || nattrs > STANZA_FAST_ATTRS)
        return NULL;
    size_t attr_bytes = 0;
    for (int i = 0; i < nattrs; i++) {
        const stanza_attr_src_t *a = &attrs[i];
        if (a->prefix_len > part_max || a->local_len > part_max || a->value_len > part_max)
            return NULL;
        attr_bytes += (a->prefix != NULL ? a->prefix_len + 1 : 0) + a->local_len + a->value_len + 2;
    }
    uvx_stanza_t *s = new_element_block(slot, name, name_len, ns, ns_len, nattrs, attr_bytes);
    if (s == NULL)
        return NULL;
    /* Straight into the pool, which has exactly the room. */
    char *at = s->pool;
    for (int i = 0; i < nattrs; i++) {
        const stanza_attr_src_t *a = &attrs[i];
        stanza_attr_t *d = &s->attrs[i];
        d->name = at;
        if (a->prefix != NULL) {
            memcpy(at, a->prefix, a->prefix_len);
            at += a->prefix_len;
            *at++ = ':';
        }
        memcpy(at, a->local, a->local_len);
        at += a->local_len;
        *at++ = '\0';
        d->value = at;
        memcpy(at, a->value, a->value_len);
        at += a->value_len;
        *at++ = '\0';
    }
    s->nattrs = nattrs;
    s->pool_used = (unsigned)attr_bytes;
    return s;
}

uvx_stanza_t *stanza_new_element(const char *name, size_t name_len, const char *ns, size_t ns_len,
                                 int attr_hint)
{
    size_t guess = attr_hint > 0 ? (size_t)attr_hint * STANZA_ATTR_BYTES_GUESS : 0;
    return stanza_new_element_sized(name, name_len, ns, ns_len, attr_hint, guess);
}

static uvx_stanza_t *new_text_block(stanza_arena_t **slot, const char *text, size_t len)
{
    if (len > SIZE_MAX - sizeof(uvx_stanza_t) - 1)
        return NULL;
    size_t size = sizeof(uvx_stanza_t) + len + 1;
    stanza_arena_t *arena = NULL;
    uvx_stanza_t *s = slot != NULL ? arena_carve(slot, size, &arena) : NULL;
    if (s == NULL && (s = malloc(size)) == NULL)
        return NULL;
    init_node(s, STANZA_TEXT, STANZA_F_NAME_INLINE);
    s->arena = arena;
    s->name = (char *)(s + 1);
    if (len)
        memcpy(s->name, text, len);
    s->name[len] = '\0';
    s->len = len;
    return s;
}

static uvx_stanza_t *new_text_node(const char *text, size_t len)
{
    return new_text_block(NULL, text, len);
}

static void drop_text_cache(uvx_stanza_t *s)
{
    free(s->text_cache);
    s->text_cache = NULL;
}

/* Children changed (or a text child's text did): the concatenation is stale. */
static void children_changed(uvx_stanza_t *s)
{
    if (s != NULL && s->text_cache != NULL)
        drop_text_cache(s);
}

static int grow_attrs(uvx_stanza_t *s)
{
    if (s->nattrs < s->attr_cap)
        return 0;
    if (s->attr_cap > (1 << 24))
        return UVX_ENOMEM;
    int cap = s->attr_cap ? s->attr_cap * 2 : 4;
    stanza_attr_t *a;
    if (s->flags & STANZA_F_ATTRS_INLINE) {
        /* The reserved array lives inside the node: move it out. */
        a = malloc((size_t)cap * sizeof(*a));
        if (a == NULL)
            return UVX_ENOMEM;
        if (s->nattrs)
            memcpy(a, s->attrs, (size_t)s->nattrs * sizeof(*a));
        s->flags &= ~STANZA_F_ATTRS_INLINE;
    } else {
        a = realloc(s->attrs, (size_t)cap * sizeof(*a));
        if (a == NULL)
            return UVX_ENOMEM;
    }
    s->attrs = a;
    s->attr_cap = cap;
    return 0;
}

/* 1 if the attribute's strings live in the element's pool, which is part of
 * the node's block and so must not be freed on their own. */
static int attr_in_pool(const uvx_stanza_t *s, const stanza_attr_t *a)
{
    return (uintptr_t)a->name - (uintptr_t)s->pool < s->pool_size;
}

static void free_attr_strings(const uvx_stanza_t *s, const stanza_attr_t *a)
{
    if (!attr_in_pool(s, a))
        free(a->name);
}

/* One block "name\0value\0", taken from the element's pool while it has
 * room, else malloc'd: an attribute costs at most one allocation. Bytes
 * given up by a replaced or removed pool attribute are not reused. */
static int make_attr(uvx_stanza_t *s, stanza_attr_t *a, const char *name, size_t name_len,
                     const char *value, size_t value_len)
{
    if (name_len > SIZE_MAX - 2 || value_len > SIZE_MAX - 2 - name_len)
        return UVX_ENOMEM;
    size_t need = name_len + value_len + 2;
    char *block;
    if (need <= s->pool_size - s->pool_used) {
        block = s->pool + s->pool_used;
        s->pool_used += (unsigned)need;
    } else {
        block = malloc(need);
        if (block == NULL)
            return UVX_ENOMEM;
    }
    memcpy(block, name, name_len);
    block[name_len] = '\0';
    memcpy(block + name_len + 1, value, value_len);
    block[name_len + 1 + value_len] = '\0';
    a->name = block;
    a->value = block + name_len + 1;
    return 0;
}

int stanza_push_attr(uvx_stanza_t *s, const char *name, size_t name_len, const char *value,
                     size_t value_len)
{
    int rc = grow_attrs(s);
    if (rc)
        return rc;
    rc = make_attr(s, &s->attrs[s->nattrs], name, name_len, value, value_len);
    if (rc)
        return rc;
    s->nattrs++;
    return 0;
}

int stanza_push_attr_in(stanza_arena_t *a, uvx_stanza_t *s, const char *name, size_t name_len,
                        const char *value, size_t value_len)
{
    size_t room = s->pool_size - s->pool_used;
    if (a != NULL && name_len < UINT_MAX / 4 && value_len < UINT_MAX / 4 &&
        name_len + value_len + 2 > room)
        arena_grow_pool(a, s, name_len + value_len + 2 - room);
    return stanza_push_attr(s, name, name_len, value, value_len);
}

/* Appends to a text node's text, moving it out of the node's block first. */
static int text_node_append(uvx_stanza_t *t, const char *text, size_t len)
{
    size_t need = t->len + len + 1;
    if (need < t->len)
        return UVX_ENOMEM;
    if ((t->flags & STANZA_F_NAME_INLINE) || need > t->text_cap) {
        size_t cap = t->text_cap ? t->text_cap : 64;
        while (cap < need) {
            if (cap > (size_t)-1 / 2)
                return UVX_ENOMEM;
            cap *= 2;
        }
        char *p;
        if (t->flags & STANZA_F_NAME_INLINE) {
            p = malloc(cap);
            if (p != NULL)
                memcpy(p, t->name, t->len + 1);
        } else {
            p = realloc(t->name, cap);
        }
        if (p == NULL)
            return UVX_ENOMEM;
        t->name = p;
        t->text_cap = cap;
        t->flags &= ~STANZA_F_NAME_INLINE;
    }
    memcpy(t->name + t->len, text, len);
    t->len += len;
    t->name[t->len] = '\0';
    return 0;
}

void stanza_append_child(uvx_stanza_t *parent, uvx_stanza_t *child)
{
    child->parent = parent;
    child->next = NULL;
    child->prev = parent->last;
    if (parent->last != NULL)
        parent->last->next = child;
    else
        parent->first = child;
    parent->last = child;
    children_changed(parent);
}

static int append_text(stanza_arena_t **slot, uvx_stanza_t *parent, const char *text, size_t len)
{
    if (len == 0)
        return 0;
    uvx_stanza_t *last = parent->last;
    if (last != NULL && last->kind == STANZA_TEXT && last->refs == 1) {
        /* Merge only into a text node nobody else holds: a caller's
         * reference must not see its node change under it. */
        int rc = text_node_append(last, text, len);
        if (rc == 0)
            children_changed(parent);
        return rc;
    }
    uvx_stanza_t *t = new_text_block(slot, text, len);
    if (t == NULL)
        return UVX_ENOMEM;
    stanza_append_child(parent, t);
    return 0;
}

int stanza_append_text(uvx_stanza_t *parent, const char *text, size_t len)
{
    return append_text(NULL, parent, text, len);
}

int stanza_append_text_in(stanza_arena_t **slot, uvx_stanza_t *parent, const char *text, size_t len)
{
    return append_text(slot, parent, text, len);
}

static void free_attrs(uvx_stanza_t *s)
{
    for (int i = 0; i < s->nattrs; i++)
        free_attr_strings(s, &s->attrs[i]);
    if (!(s->flags & STANZA_F_ATTRS_INLINE))
        free(s->attrs);
}

static void free_node(uvx_stanza_t *s)
{
    uvx_stanza_t *c = s->first;
    while (c != NULL) {
        uvx_stanza_t *next = c->next;
        c->parent = NULL;
        c->prev = c->next = NULL;
        uvx_stanza_unref(c);
        c = next;
    }
    if (s->kind == STANZA_ELEMENT)
        free_attrs(s);
    if (!(s->flags & STANZA_F_NAME_INLINE))
        free(s->name);
    if (s->ns != NULL && !(s->flags & STANZA_F_NS_INLINE))
        free(s->ns);
    if (s->text_cache != NULL)
        free(s->text_cache);
    if (s->arena != NULL)
        arena_unref(s->arena);
    else
        free(s);
}

uvx_stanza_t *uvx_stanza_new(const char *name)
{
    if (!valid_xml_name(name, 0))
        return NULL;
    return stanza_new_element(name, strlen(name), NULL, 0, 0);
}

uvx_stanza_t *uvx_stanza_new_text(const char *text)
{
    if (text == NULL)
        return NULL;
    return uvx_stanza_new_text_len(text, strlen(text));
}

uvx_stanza_t *uvx_stanza_new_text_len(const char *text, size_t len)
{
    if ((text == NULL && len != 0) || !valid_xml_text(text, len))
        return NULL;
    return new_text_node(text, len);
}

uvx_stanza_t *uvx_stanza_ref(uvx_stanza_t *s)
{
    if (s != NULL)
        s->refs++;
    return s;
}

void uvx_stanza_unref(uvx_stanza_t *s)
{
    if (s == NULL || s->refs == 0)
        return;
    if (--s->refs == 0)
        free_node(s);
}

uvx_stanza_t *uvx_stanza_copy(const uvx_stanza_t *s)
{
    if (s == NULL)
        return NULL;
    if (s->kind == STANZA_TEXT)
        return new_text_node(s->name, s->len);
    /* The exact size of the attribute strings: the copy is one allocation. */
    size_t attr_bytes = 0;
    for (int i = 0; i < s->nattrs; i++) {
        const stanza_attr_t *a = &s->attrs[i];
        attr_bytes += (size_t)(a->value - a->name) + strlen(a->value) + 1;
    }
    uvx_stanza_t *d = stanza_new_element_sized(s->name, strlen(s->name), s->ns,
                                               s->ns ? strlen(s->ns) : 0, s->nattrs, attr_bytes);
    if (d == NULL)
        return NULL;
    for (int i = 0; i < s->nattrs; i++) {
        const stanza_attr_t *a = &s->attrs[i];
        size_t name_len = (size_t)(a->value - a->name) - 1;
        if (stanza_push_attr(d, a->name, name_len, a->value, strlen(a->value)) != 0)
            goto fail;
    }
    for (const uvx_stanza_t *c = s->first; c != NULL; c = c->next) {
        uvx_stanza_t *cc = uvx_stanza_copy(c);
        if (cc == NULL)
            goto fail;
        stanza_append_child(d, cc);
    }
    return d;
fail:
    uvx_stanza_unref(d);
    return NULL;
}

/* ---- Name, namespace, attributes ---------------------------------------- */

int uvx_stanza_is_element(const uvx_stanza_t *s)
{
    return s != NULL && s->kind == STANZA_ELEMENT;
}

int uvx_stanza_is_text(const uvx_stanza_t *s)
{
    return s != NULL && s->kind == STANZA_TEXT;
}

const char *uvx_stanza_name(const uvx_stanza_t *s)
{
    return uvx_stanza_is_element(s) ? s->name : NULL;
}

int uvx_stanza_set_name(uvx_stanza_t *s, const char *name)
{
    if (!uvx_stanza_is_element(s) || !valid_xml_name(name, 0))
        return UVX_EINVAL;
    char *d = strdup(name);
    if (d == NULL)
        return UVX_ENOMEM;
    if (!(s->flags & STANZA_F_NAME_INLINE))
        free(s->name);
    s->name = d;
    s->flags &= ~STANZA_F_NAME_INLINE;
    return 0;
}

const char *uvx_stanza_ns(const uvx_stanza_t *s)
{
    return uvx_stanza_is_element(s) ? s->ns : NULL;
}

/* NULL or "" removes the namespace (xmlns='' means "no namespace"). */
int uvx_stanza_set_ns(uvx_stanza_t *s, const char *ns)
{
    if (!uvx_stanza_is_element(s))
        return UVX_EINVAL;
    char *d = NULL;
    if (ns != NULL && *ns != '\0') {
        if (!valid_xml_text(ns, strlen(ns)))
            return UVX_EINVAL;
        d = strdup(ns);
        if (d == NULL)
            return UVX_ENOMEM;
    }
    if (!(s->flags & STANZA_F_NS_INLINE))
        free(s->ns);
    s->ns = d;
    s->flags &= ~STANZA_F_NS_INLINE;
    return 0;
}

/* Compares lengths and first characters before anything else (an
 * attribute's name length is value - name - 1), so most attributes are
 * passed over without a call: the receive path looks up id, type, from and
 * to on every stanza. */
static int find_attr_len(const uvx_stanza_t *s, const char *name, size_t name_len)
{
    if (name_len == 0)
        return -1; /* no attribute has an empty name */
    for (int i = 0; i < s->nattrs; i++) {
        const stanza_attr_t *a = &s->attrs[i];
        if ((size_t)(a->value - a->name) - 1 == name_len && a->name[0] == name[0] &&
            memcmp(a->name + 1, name + 1, name_len - 1) == 0)
            return i;
    }
    return -1;
}

static int find_attr(const uvx_stanza_t *s, const char *name)
{
    return find_attr_len(s, name, strlen(name));
}

/* uvx_stanza_attr() for a name of known length. */
static const char *attr_value(const uvx_stanza_t *s, const char *name, size_t name_len)
{
    if (s == NULL || s->kind != STANZA_ELEMENT)
        return NULL;
    if (name_len == 5 && memcmp(name, "xmlns", 5) == 0)
        return s->ns;
    int i = find_attr_len(s, name, name_len);
    return i < 0 ? NULL : s->attrs[i].value;
}

const char *uvx_stanza_attr(const uvx_stanza_t *s, const char *name)
{
    if (name == NULL)
        return NULL;
    return attr_value(s, name, strlen(name));
}

int uvx_stanza_set_attr(uvx_stanza_t *s, const char *name, const char *value)
{
    if (!uvx_stanza_is_element(s) || name == NULL || value == NULL)
        return UVX_EINVAL;
    if (strcmp(name, "xmlns") == 0)
        return uvx_stanza_set_ns(s, value);
    size_t value_len = strlen(value);
    if (!valid_xml_name(name, 1) || !valid_xml_text(value, value_len))
        return UVX_EINVAL;
    int i = find_attr(s, name);
    if (i < 0)
        return stanza_push_attr(s, name, strlen(name), value, value_len);
    /* Replace in place, keeping the attribute's position. */
    stanza_attr_t old = s->attrs[i];
    size_t name_len = (size_t)(old.value - old.name) - 1;
    int rc = make_attr(s, &s->attrs[i], name, name_len, value, value_len);
    if (rc)
        return rc;
    free_attr_strings(s, &old);
    return 0;
}

int uvx_stanza_remove_attr(uvx_stanza_t *s, const char *name)
{
    if (!uvx_stanza_is_element(s) || name == NULL)
        return UVX_EINVAL;
    if (strcmp(name, "xmlns") == 0) {
        if (s->ns == NULL)
            return UVX_ENOTFOUND;
        return uvx_stanza_set_ns(s, NULL);
    }
    int i = find_attr(s, name);
    if (i < 0)
        return UVX_ENOTFOUND;
    free_attr_strings(s, &s->attrs[i]);
    memmove(&s->attrs[i], &s->attrs[i + 1], (size_t)(s->nattrs - i - 1) * sizeof(s->attrs[0]));
    s->nattrs--;
    return 0;
}

int uvx_stanza_attr_count(const uvx_stanza_t *s)
{
    return uvx_stanza_is_element(s) ? s->nattrs : 0;
}

int uvx_stanza_attr_at(const uvx_stanza_t *s, int i, const char **name, const char **value)
{
    if (!uvx_stanza_is_element(s))
        return UVX_EINVAL;
    if (i < 0 || i >= s->nattrs)
        return UVX_ENOTFOUND;
    if (name != NULL)
        *name = s->attrs[i].name;
    if (value != NULL)
        *value = s->attrs[i].value;
    return 0;
}

const char *uvx_stanza_id(const uvx_stanza_t *s)
{
    return attr_value(s, "id", 2);
}

const char *uvx_stanza_type(const uvx_stanza_t *s)
{
    return attr_value(s, "type", 4);
}

const char *uvx_stanza_to(const uvx_stanza_t *s)
{
    return attr_value(s, "to", 2);
}

const char *uvx_stanza_from(const uvx_stanza_t *s)
{
    return attr_value(s, "from", 4);
}

int uvx_stanza_set_id(uvx_stanza_t *s, const char *id)
{
    return uvx_stanza_set_attr(s, "id", id);
}

int uvx_stanza_set_type(uvx_stanza_t *s, const char *type)
{
    return uvx_stanza_set_attr(s, "type", type);
}

int uvx_stanza_set_to(uvx_stanza_t *s, const char *to)
{
    return uvx_stanza_set_attr(s, "to", to);
}

int uvx_stanza_set_from(uvx_stanza_t *s, const char *from)
{
    return uvx_stanza_set_attr(s, "from", from);
}

/* ---- Navigation and children -------------------------------------------- */

uvx_stanza_t *uvx_stanza_parent(const uvx_stanza_t *s)
{
    return s ? s->parent : NULL;
}

uvx_stanza_t *uvx_stanza_children(const uvx_stanza_t *s)
{
    return s ? s->first : NULL;
}

uvx_stanza_t *uvx_stanza_next(const uvx_stanza_t *s)
{
    return s ? s->next : NULL;
}

/* The first element child matching `name` and `ns` (NULL matches any). */
static uvx_stanza_t *find_child(const uvx_stanza_t *s, const char *name, const char *ns)
{
    if (s == NULL)
        return NULL;
    for (uvx_stanza_t *c = s->first; c != NULL; c = c->next) {
        if (c->kind != STANZA_ELEMENT)
            continue;
        if (name != NULL && strcmp(c->name, name) != 0)
            continue;
        if (ns != NULL && (c->ns == NULL || strcmp(c->ns, ns) != 0))
            continue;
        return c;
    }
    return NULL;
}

uvx_stanza_t *uvx_stanza_child(const uvx_stanza_t *s, const char *name)
{
    return name ? find_child(s, name, NULL) : NULL;
}

uvx_stanza_t *uvx_stanza_child_ns(const uvx_stanza_t *s, const char *ns)
{
    return ns ? find_child(s, NULL, ns) : NULL;
}

uvx_stanza_t *uvx_stanza_child_name_ns(const uvx_stanza_t *s, const char *name, const char *ns)
{
    return name && ns ? find_child(s, name, ns) : NULL;
}

uvx_stanza_t *uvx_stanza_first_element(const uvx_stanza_t *s)
{
    return find_child(s, NULL, NULL);
}

int uvx_stanza_add_child(uvx_stanza_t *parent, uvx_stanza_t *child)
{
    if (!uvx_stanza_is_element(parent) || child == NULL || child->parent != NULL)
        return UVX_EINVAL;
    /* A node that is the parent or one of its ancestors would make a cycle. */
    for (const uvx_stanza_t *a = parent; a != NULL; a = a->parent)
        if (a == child)
            return UVX_EINVAL;
    stanza_append_child(parent, uvx_stanza_ref(child));
    return 0;
}

int uvx_stanza_adopt(uvx_stanza_t *parent, uvx_stanza_t *child)
{
    int rc = uvx_stanza_add_child(parent, child);
    uvx_stanza_unref(child);
    return rc;
}

static void detach(uvx_stanza_t *parent, uvx_stanza_t *child)
{
    if (child->prev != NULL)
        child->prev->next = child->next;
    else
        parent->first = child->next;
    if (child->next != NULL)
        child->next->prev = child->prev;
    else
        parent->last = child->prev;
    child->parent = NULL;
    child->prev = child->next = NULL;
    children_changed(parent);
}

int uvx_stanza_remove_child(uvx_stanza_t *parent, uvx_stanza_t *child)
{
    if (parent == NULL || child == NULL)
        return UVX_EINVAL;
    if (child->parent != parent)
        return UVX_ENOTFOUND;
    detach(parent, child);
    uvx_stanza_unref(child);
    return 0;
}

/* ---- Text ---------------------------------------------------------------- */

const char *uvx_stanza_text(uvx_stanza_t *s)
{
    if (s == NULL)
        return "";
    if (s->kind == STANZA_TEXT)
        return s->name;
    if (s->text_cache != NULL)
        return s->text_cache;
    size_t total = 0, pieces = 0;
    const uvx_stanza_t *only = NULL;
    for (const uvx_stanza_t *c = s->first; c != NULL; c = c->next) {
        if (c->kind == STANZA_TEXT) {
            total += c->len;
            pieces++;
            only = c;
        }
    }
    if (pieces == 0)
        return "";
    if (pieces == 1)
        return only->name; /* the common <body>text</body>: no copy needed */
    char *cache = malloc(total + 1);
    if (cache == NULL)
        return "";
    size_t off = 0;
    for (const uvx_stanza_t *c = s->first; c != NULL; c = c->next) {
        if (c->kind == STANZA_TEXT) {
            memcpy(cache + off, c->name, c->len);
            off += c->len;
        }
    }
    cache[off] = '\0';
    s->text_cache = cache;
    return cache;
}

static void remove_all_children(uvx_stanza_t *s)
{
    while (s->first != NULL) {
        uvx_stanza_t *c = s->first;
        detach(s, c);
        uvx_stanza_unref(c);
    }
}

int uvx_stanza_set_text(uvx_stanza_t *s, const char *text)
{
    if (s == NULL || text == NULL)
        return UVX_EINVAL;
    size_t len = strlen(text);
    if (!valid_xml_text(text, len))
        return UVX_EINVAL;
    if (s->kind == STANZA_TEXT) {
        char *d = dup_len(text, len);
        if (d == NULL)
            return UVX_ENOMEM;
        if (!(s->flags & STANZA_F_NAME_INLINE))
            free(s->name);
        s->name = d;
        s->len = len;
        s->text_cap = len + 1;
        s->flags &= ~STANZA_F_NAME_INLINE;
        children_changed(s->parent);
        return 0;
    }
    uvx_stanza_t *t = NULL;
    if (len > 0) {
        t = new_text_node(text, len);
        if (t == NULL)
            return UVX_ENOMEM;
    }
    remove_all_children(s);
    if (t != NULL)
        stanza_append_child(s, t);
    return 0;
}

const char *uvx_stanza_child_text(uvx_stanza_t *s, const char *name)
{
    uvx_stanza_t *c = uvx_stanza_child(s, name);
    return c ? uvx_stanza_text(c) : NULL;
}

/* ---- Serializer ---------------------------------------------------------- */

static int same_ns(const char *a, const char *b)
{
    if (a == NULL || b == NULL)
        return a == b;
    return strcmp(a, b) == 0;
}

static int write_attr(buf_t *b, const char *name, const char *value)
{
    int rc = buf_append(b, " ", 1);
    if (rc == 0)
        rc = buf_append_str(b, name);
    if (rc == 0)
        rc = buf_append(b, "='", 2);
    if (rc == 0)
        rc = buf_append_escaped(b, value, strlen(value), 1);
    if (rc == 0)
        rc = buf_append(b, "'", 1);
    return rc;
}

/* `scope_ns` is the default namespace in force where `s` is written. */
static int write_node(buf_t *b, const uvx_stanza_t *s, const char *scope_ns)
{
    if (s->kind == STANZA_TEXT)
        return buf_append_escaped(b, s->name, s->len, 0);
    int rc = buf_append(b, "<", 1);
    if (rc == 0)
        rc = buf_append_str(b, s->name);
    if (rc == 0 && !same_ns(s->ns, scope_ns))
        rc = write_attr(b, "xmlns", s->ns ? s->ns : ""); /* xmlns='' resets to none */
    for (int i = 0; rc == 0 && i < s->nattrs; i++)
        rc = write_attr(b, s->attrs[i].name, s->attrs[i].value);
    if (rc)
        return rc;
    if (s->first == NULL)
        return buf_append(b, "/>", 2);
    rc = buf_append(b, ">", 1);
    for (const uvx_stanza_t *c = s->first; rc == 0 && c != NULL; c = c->next)
        rc = write_node(b, c, s->ns);
    if (rc == 0)
        rc = buf_append(b, "</", 2);
    if (rc == 0)
        rc = buf_append_str(b, s->name);
    if (rc == 0)
        rc = buf_append(b, ">", 1);
    return rc;
}

int stanza_serialize_into(buf_t *b, const uvx_stanza_t *s, const char *outer_ns)
{
    if (s == NULL)
        return UVX_EINVAL;
    if (outer_ns != NULL && *outer_ns == '\0')
        outer_ns = NULL;
    size_t start = b->len;
    int rc = write_node(b, s, outer_ns);
    if (rc != 0 && b->data) { /* leave the buffer as it was */
        b->len = start;
        b->data[start] = '\0';
    }
    return rc;
}

int uvx_stanza_serialize(const uvx_stanza_t *s, const char *outer_ns, char **out, size_t *len)
{
    if (out != NULL)
        *out = NULL;
    if (len != NULL)
        *len = 0;
    if (s == NULL || out == NULL)
        return UVX_EINVAL;
    if (outer_ns != NULL && *outer_ns == '\0')
        outer_ns = NULL;
    buf_t b = BUF_INIT;
    int rc = buf_reserve(&b, 256);
    if (rc == 0)
        rc = write_node(&b, s, outer_ns);
    if (rc) {
        buf_free(&b);
        return rc;
    }
    *out = buf_steal(&b, len);
    return 0;
}

char *uvx_stanza_to_string(const uvx_stanza_t *s)
{
    char *out = NULL;
    uvx_stanza_serialize(s, NULL, &out, NULL);
    return out;
}

/* ---- Parsing one element ------------------------------------------------- */

static int is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static size_t skip_space(const char *xml, size_t i, size_t len)
{
    while (i < len && is_space(xml[i]))
        i++;
    return i;
}

static size_t skip_past(const char *xml, size_t i, size_t len, const char *end)
{
    size_t n = strlen(end);
    for (; i + n <= len; i++)
        if (memcmp(xml + i, end, n) == 0)
            return i + n;
    return 0;
}

/* Index just past the '>' of the tag starting at xml[i] == '<', honouring
 * quoted attribute values; 0 if unterminated. */
static size_t skip_tag(const char *xml, size_t i, size_t len)
{
    char quote = 0;
    for (i++; i < len; i++) {
        if (quote) {
            if (xml[i] == quote)
                quote = 0;
        } else if (xml[i] == '\'' || xml[i] == '"') {
            quote = xml[i];
        } else if (xml[i] == '>') {
            return i + 1;
        }
    }
    return 0;
}

static int only_space_after(const char *xml, size_t i, size_t len)
{
    return skip_space(xml, i, len) == len;
}

/* 1 if xml[0..len) is one element with only white space (and an optional
 * XML declaration) around it; *start gets where the element begins. A light
 * scan of the markup (tags with quoted values, CDATA, comments, PIs) finds
 * where the element ends. The parser checks well-formedness; this only
 * rules out what it cannot see from inside the wrapper: text, or a second
 * element, next to the first. */
static int single_element(const char *xml, size_t len, size_t *start)
{
    size_t i = skip_space(xml, 0, len);
    /* An XML declaration is allowed in front ("a complete document"). */
    if (len - i >= 6 && memcmp(xml + i, "<?xml", 5) == 0 && is_space(xml[i + 5])) {
        i = skip_past(xml, i, len, "?>");
        if (i == 0)
            return 0;
        i = skip_space(xml, i, len);
    }
    *start = i;
    if (i >= len || xml[i] != '<')
        return 0;
    long depth = 0;
    while (i < len) {
        if (xml[i] != '<') {
            if (depth == 0)
                return only_space_after(xml, i, len);
            i++;
            continue;
        }
        size_t rest = len - i;
        if (rest >= 9 && memcmp(xml + i, "<![CDATA[", 9) == 0) {
            i = skip_past(xml, i + 9, len, "]]>");
        } else if (rest >= 4 && memcmp(xml + i, "<!--", 4) == 0) {
            i = skip_past(xml, i + 4, len, "-->");
        } else if (rest >= 2 && xml[i + 1] == '?') {
            i = skip_past(xml, i + 2, len, "?>");
        } else {
            size_t end = skip_tag(xml, i, len);
            if (end == 0)
                return 0;
            if (xml[i + 1] == '/')
                depth--;
            else if (xml[end - 2] != '/')
                depth++;
            i = end;
            if (depth <= 0)
                return depth == 0 && only_space_after(xml, i, len);
        }
        if (i == 0)
            return 0;
    }
    return 0;
}

typedef struct one_stanza {
    uvx_stanza_t *stanza;
    int count;
    int err;
} one_stanza_t;

static void one_stanza_cb(void *ud, uvx_stanza_t *stanza)
{
    one_stanza_t *o = ud;
    if (o->count++ == 0)
        o->stanza = uvx_stanza_ref(stanza);
}

/* The wrapper's own open and close tags carry nothing. */
static void ignore_open_cb(void *ud, uvx_stanza_t *root)
{
    (void)ud;
    (void)root;
}

static void ignore_close_cb(void *ud)
{
    (void)ud;
}

static void one_error_cb(void *ud, int err, const char *condition)
{
    one_stanza_t *o = ud;
    (void)condition;
    if (o->err == 0)
        o->err = err;
}

/* Parses one element placed inside a wrapper element whose default
 * namespace is `wrapper_ns` (NULL: none), so it arrives as a depth-1
 * stanza with the namespaces it would have there. */
uvx_stanza_t *stanza_parse_in(const char *xml, size_t len, const char *wrapper_ns, int *err)
{
    static const uvx_parser_callbacks_t cb = {
        .stream_open = ignore_open_cb,
        .stanza = one_stanza_cb,
        .stream_close = ignore_close_cb,
        .error = one_error_cb,
    };
    one_stanza_t o = {NULL, 0, 0};
    size_t start;
    int rc;
    if (err != NULL)
        *err = 0;
    if (xml == NULL) {
        rc = UVX_EINVAL;
        goto out;
    }
    if (!single_element(xml, len, &start)) {
        rc = UVX_EPARSE;
        goto out;
    }
    /* The wrapper is depth 1 for the parser: keep the documented depth limit
     * for the element itself. */
    uvx_parser_limits_t limits = {0, UVX_DEFAULT_MAX_DEPTH + 1};
    uvx_parser_t *p = uvx_parser_new(&cb, &o, &limits);
    if (p == NULL) {
        rc = UVX_ENOMEM;
        goto out;
    }
    buf_t open = BUF_INIT;
    rc = buf_append_str(&open, "<w");
    if (rc == 0 && wrapper_ns != NULL)
        rc = write_attr(&open, "xmlns", wrapper_ns);
    if (rc == 0)
        rc = buf_append(&open, ">", 1);
    if (rc == 0)
        rc = uvx_parser_feed(p, open.data, open.len);
    if (rc == 0)
        rc = uvx_parser_feed(p, xml + start, len - start);
    if (rc == 0)
        rc = uvx_parser_feed(p, "</w>", 4);
    buf_free(&open);
    uvx_parser_free(p);
    if (rc == 0 && o.err != 0)
        rc = o.err;
    if (rc == 0 && o.count != 1)
        rc = UVX_EPARSE;
out:
    if (rc != 0) {
        uvx_stanza_unref(o.stanza);
        if (err != NULL)
            *err = rc;
        return NULL;
    }
    return o.stanza;
}

uvx_stanza_t *uvx_stanza_from_string(const char *xml, size_t len, int *err)
{
    return stanza_parse_in(xml, len, NULL, err);
}
