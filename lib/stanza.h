/* Private: the stanza node layout and the fast constructors the parser uses. */
#ifndef UVX_STANZA_INTERNAL_H
#define UVX_STANZA_INTERNAL_H

#include "uvxmpp.h"

enum { STANZA_ELEMENT = 1, STANZA_TEXT = 2 };

/* `name` and `value` share one malloc'd block that starts at `name`. */
typedef struct stanza_attr {
    char *name;
    char *value;
} stanza_attr_t;

struct uvx_stanza {
    unsigned refs;
    unsigned char kind;   /* STANZA_ELEMENT or STANZA_TEXT */
    unsigned char flags;  /* STANZA_F_*: which strings live inside the node's own block */
    uvx_stanza_t *parent; /* not a reference: the parent holds one on us */
    uvx_stanza_t *first, *last, *next, *prev;
    char *name;   /* element: local name; text node: the text */
    size_t len;   /* text node: length of the text */
    char *ns;     /* element: namespace URI or NULL */
    stanza_attr_t *attrs;
    int nattrs, attr_cap;
    char *text_cache; /* element: concatenated text, built on demand */
    size_t text_cap;  /* text node with a separately malloc'd text: its capacity */
};

/* The constructors allocate a node and its name, namespace, text and
 * attribute array in one block; these flags say which pointers still point
 * into that block (and so must not be freed on their own). */
enum {
    STANZA_F_NAME_INLINE = 1,
    STANZA_F_NS_INLINE = 2,
    STANZA_F_ATTRS_INLINE = 4,
};

/* An element from counted strings (ns may be NULL), with room reserved for
 * `attr_hint` attributes. New reference. */
uvx_stanza_t *stanza_new_element(const char *name, size_t name_len, const char *ns, size_t ns_len,
                                 int attr_hint);
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

#endif
