/* Private: the stanza node layout and the fast constructors the parser uses. */
#ifndef UVX_STANZA_INTERNAL_H
#define UVX_STANZA_INTERNAL_H

#include "buf.h"
#include "uvxmpp.h"

enum { STANZA_ELEMENT = 1, STANZA_TEXT = 2 };

/* "name\0value\0": `value` always starts right after the name's NUL, so
 * value - name - 1 is the name's length. The bytes live either in the
 * element's attribute pool (inside the node's block) or in one malloc'd block
 * that starts at `name`. */
typedef struct stanza_attr {
    char *name;
    char *value;
} stanza_attr_t;

typedef struct stanza_arena stanza_arena_t;

/* A new field needs its initial value in init_node() (stanza.c). */
struct uvx_stanza {
    unsigned refs;
    unsigned char kind;   /* STANZA_ELEMENT or STANZA_TEXT */
    unsigned char flags;  /* STANZA_F_*: which strings live inside the node's own block */
    uvx_stanza_t *parent; /* not a reference: the parent holds one on us */
    uvx_stanza_t *first, *last, *next, *prev;
    char *name; /* element: local name; text node: the text */
    size_t len; /* text node: length of the text */
    char *ns;   /* element: namespace URI or NULL */
    stanza_attr_t *attrs;
    int nattrs, attr_cap;
    char *text_cache;              /* element: concatenated text, built on demand */
    size_t text_cap;               /* text node with a separately malloc'd text: its capacity */
    char *pool;                    /* element: room for attribute strings inside the node's block */
    unsigned pool_used, pool_size; /* bytes of it handed out / reserved */
    stanza_arena_t *arena;         /* the arena the node's block was carved from, or NULL */
};

/* The constructors allocate a node and its name, namespace, text and
 * attribute array in one block; these flags say which pointers still point
 * into that block (and so must not be freed on their own). An attribute's
 * strings are in the block when `name` points into [pool, pool + pool_size). */
enum {
    STANZA_F_NAME_INLINE = 1,
    STANZA_F_NS_INLINE = 2,
    STANZA_F_ATTRS_INLINE = 4,
};

/* An element from counted strings (ns may be NULL), with room reserved for
 * `attr_hint` attributes and a guess of STANZA_ATTR_BYTES_GUESS bytes of
 * attribute strings for each. New reference. */
uvx_stanza_t *stanza_new_element(const char *name, size_t name_len, const char *ns, size_t ns_len,
                                 int attr_hint);
/* The same with `attr_bytes` bytes reserved for attribute strings: each
 * attribute pushed takes name_len + value_len + 2 of them, first come first
 * served; one that no longer fits gets its own allocation, so the number may
 * be an estimate (0: reserve none). The exact sum makes a parsed element
 * with all its attributes one allocation. */
uvx_stanza_t *stanza_new_element_sized(const char *name, size_t name_len, const char *ns,
                                       size_t ns_len, int attr_hint, size_t attr_bytes);
/* Typical XMPP attributes (to/from JIDs, id, type) average below this. */
enum { STANZA_ATTR_BYTES_GUESS = 40 };

/* An arena: one malloc'd block that the parser carves the nodes of incoming
 * stanzas from (each node's block as above, back to back), so building a
 * typical stanza calls malloc() once or, when the arena is recycled, not at
 * all. Every node carved from an arena holds a reference on it, and so does
 * the arena's owner (the parser) while it keeps it; the block is freed with
 * the last reference. A node's own references and ownership rules do not
 * change: it may outlive its stanza, its parser and its arena's owner, and
 * what it allocates later (attributes, text, a new name) is malloc'd. */
struct stanza_arena {
    unsigned refs;
    size_t used, size; /* bytes of mem handed out / in all */
    _Alignas(16) char mem[];
};

/* A new arena of `size` bytes, with the owner's reference. NULL: no memory. */
stanza_arena_t *stanza_arena_new(size_t size);
/* Drops the owner's reference. */
void stanza_arena_release(stanza_arena_t *a);
/* 1 when the owner's reference is the only one: then the arena is emptied
 * for reuse. 0: nodes still live in it. */
int stanza_arena_recycle(stanza_arena_t *a);
/* stanza_new_element_sized() carved from the arena in *slot when it has
 * room; otherwise from a new arena that replaces it in *slot (the owner's
 * reference moves to it), or malloc'd alone when the element is large. */
uvx_stanza_t *stanza_new_element_in(stanza_arena_t **slot, const char *name, size_t name_len,
                                    const char *ns, size_t ns_len, int attr_hint,
                                    size_t attr_bytes);
/* An attribute for stanza_new_element_with(): named "prefix:local" (just
 * "local" when prefix is NULL), all three strings counted. */
typedef struct stanza_attr_src {
    const char *prefix, *local, *value;
    size_t prefix_len, local_len, value_len;
} stanza_attr_src_t;
/* The most attributes stanza_new_element_with() takes. */
enum { STANZA_FAST_ATTRS = 8 };
/* An element and all its attributes (at most STANZA_FAST_ATTRS) in one
 * block carved as by stanza_new_element_in(), the attribute array and
 * strings taking exactly the room they need. Nothing is checked: the parser
 * hands over distinct, well-formed names. New reference, or NULL. */
uvx_stanza_t *stanza_new_element_with(stanza_arena_t **slot, const char *name, size_t name_len,
                                      const char *ns, size_t ns_len, const stanza_attr_src_t *attrs,
                                      int nattrs);
/* stanza_push_attr() that first grows the element's attribute pool by what
 * the attribute needs, when the element is the block carved last from `a`
 * (as while the parser builds it), so its strings take no allocation. */
int stanza_push_attr_in(stanza_arena_t *a, uvx_stanza_t *s, const char *name, size_t name_len,
                        const char *value, size_t value_len);
/* stanza_append_text() with a new text node carved like the above. */
int stanza_append_text_in(stanza_arena_t **slot, uvx_stanza_t *parent, const char *text,
                          size_t len);

/* Appends an attribute without checking for a duplicate (the parser knows
 * XML forbids them). 0 or UVX_ENOMEM. */
int stanza_push_attr(uvx_stanza_t *s, const char *name, size_t name_len, const char *value,
                     size_t value_len);
/* Appends text under `parent`, merging into the last child when that is a
 * text node (libxml2 delivers text in pieces around entity references). */
int stanza_append_text(uvx_stanza_t *parent, const char *text, size_t len);
/* Appends `child` (which has no parent), taking over the caller's reference. */
void stanza_append_child(uvx_stanza_t *parent, uvx_stanza_t *child);

/* uvx_stanza_from_string() with the element placed under a default
 * namespace `wrapper_ns` (NULL: none), as if it stood on a stream with that
 * namespace: uvx_stanza_fmt() parses <message/> etc. under jabber:client. */
uvx_stanza_t *stanza_parse_in(const char *xml, size_t len, const char *wrapper_ns, int *err);

/* Appends the serialization of `s` (as uvx_stanza_serialize) to `b`; on
 * failure `b` is left as it was. The send path writes straight into the
 * connection's queue with it. */
int stanza_serialize_into(buf_t *b, const uvx_stanza_t *s, const char *outer_ns);

#endif
