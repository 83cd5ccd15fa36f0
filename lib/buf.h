/* A growable byte buffer: the serializer's output and every send queue. */
#ifndef UVX_BUF_H
#define UVX_BUF_H

#include <stddef.h>

typedef struct buf {
    char *data; /* NUL-terminated whenever data != NULL */
    size_t len;
    size_t cap;
} buf_t;

#define BUF_INIT                                                                                   \
    {                                                                                              \
        NULL, 0, 0                                                                                 \
    }

/* Makes room for `extra` more bytes (plus the terminating NUL). 0 or UVX_ENOMEM. */
int buf_reserve(buf_t *b, size_t extra);
int buf_append(buf_t *b, const char *data, size_t len);
int buf_append_str(buf_t *b, const char *s);
/* Escapes XML special characters: in text & < >, in attribute values also ' and ". */
int buf_append_escaped(buf_t *b, const char *s, size_t len, int in_attr);
/* Drops the first n bytes (what a partial write consumed). */
void buf_consume(buf_t *b, size_t n);
void buf_reset(buf_t *b); /* len = 0, keeps the allocation */
void buf_free(buf_t *b);  /* releases the allocation */
/* Hands the data to the caller (who frees it) and empties the buffer. */
char *buf_steal(buf_t *b, size_t *len);

#endif
