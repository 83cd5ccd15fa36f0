/*
 * Parser throughput: a realistic server-to-client stream of chat messages,
 * fed in 64 KiB chunks (a large read), parsed
 *   (a) by bare libxml2 SAX2 with no-op callbacks: the ceiling, and
 *   (b) by uvx_parser, which builds and releases every stanza tree.
 * Each side runs a few times, interleaved; the best run counts. Times are
 * the thread's CPU time, so other busy processes on the machine disturb the
 * comparison less than with wall-clock time.
 *
 *   parse [--mb N] [--runs R]     (defaults: 100 MB, 5 runs)
 *
 * Prints: RESULT bytes=B stanzas=N base_mb_s=X base_stanzas_s=Y uvx_mb_s=X
 *         uvx_stanzas_s=Y ratio=R   (ratio = uvx throughput / bare throughput)
 */
#include "bare.h"
#include "uvxmpp.h"
#include "buf.h"

#include <libxml/parser.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CHUNK (64 * 1024)

static const char stream_head[] =
    "<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
    "xmlns:stream='http://etherx.jabber.org/streams' from='example.com' id='c2s-4711' "
    "version='1.0' xml:lang='en'>";

/* One message: ~100 bytes of body with entities and UTF-8 (é, 日本, 🎉),
 * plus a chat state in another namespace. */
static const char message_fmt[] =
    "<message to='juliet@example.com/balcony' from='romeo%u@example.net/orchard' "
    "type='chat' id='msg-%08u' xml:lang='en'><body>Wherefore art thou &amp; why &lt;3? "
    "It&apos;s caf\xc3\xa9 time in \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x8e\x89 (%u) lorem "
    "ipsum</body><active xmlns='http://jabber.org/protocol/chatstates'/></message>\n";

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static char *make_stream(size_t min_bytes, size_t *len, unsigned *stanzas)
{
    buf_t b = BUF_INIT;
    char one[1024];
    if (buf_reserve(&b, min_bytes + 4096) != 0 || buf_append_str(&b, stream_head) != 0)
        return NULL;
    unsigned n = 0;
    while (b.len < min_bytes) {
        int w = snprintf(one, sizeof(one), message_fmt, n % 97, n, n);
        if (buf_append(&b, one, (size_t)w) != 0)
            return NULL;
        n++;
    }
    *stanzas = n;
    return buf_steal(&b, len);
}

/* ---- (a) bare libxml2 ---------------------------------------------------- */

static unsigned run_bare(const char *data, size_t len)
{
    return bare_libxml2_parse(data, len, CHUNK);
}

/* ---- (b) uvx_parser ------------------------------------------------------ */

typedef struct counts {
    unsigned stanzas;
    int err;
} counts_t;

static void count_stanza(void *ud, uvx_stanza_t *s)
{
    (void)s;
    ((counts_t *)ud)->stanzas++;
}

static void count_error(void *ud, int err, const char *condition)
{
    (void)condition;
    ((counts_t *)ud)->err = err;
}

static unsigned run_uvx(const char *data, size_t len)
{
    uvx_parser_callbacks_t cb = {NULL, count_stanza, NULL, count_error};
    counts_t c = {0, 0};
    uvx_parser_t *p = uvx_parser_new(&cb, &c, NULL);
    if (p == NULL)
        return 0;
    for (size_t at = 0; at < len; at += CHUNK) {
        size_t n = len - at < CHUNK ? len - at : CHUNK;
        if (uvx_parser_feed(p, data + at, n) != 0)
            break;
    }
    uvx_parser_free(p);
    if (c.err != 0)
        fprintf(stderr, "uvx_parser error: %s\n", uvx_strerror(c.err));
    return c.stanzas;
}

int main(int argc, char **argv)
{
    size_t mb = 100;
    int runs = 5;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--mb") == 0 && i + 1 < argc) {
            mb = strtoul(argv[++i], NULL, 10);
        } else if (strcmp(argv[i], "--runs") == 0 && i + 1 < argc) {
            runs = atoi(argv[++i]);
        } else {
            fprintf(stderr, "usage: %s [--mb N] [--runs R]\n", argv[0]);
            return 2;
        }
    }
    if (mb == 0 || runs <= 0)
        return 2;

    size_t len;
    unsigned expected;
    char *data = make_stream(mb * 1024 * 1024, &len, &expected);
    if (data == NULL) {
        fprintf(stderr, "out of memory\n");
        return 1;
    }
    xmlInitParser();

    double best_bare = 1e30, best_uvx = 1e30;
    for (int r = 0; r < runs; r++) {
        double t0 = now();
        unsigned nb = run_bare(data, len);
        double t1 = now();
        unsigned nu = run_uvx(data, len);
        double t2 = now();
        if (nb != expected || nu != expected) {
            fprintf(stderr, "stanza count mismatch: generated %u, libxml2 %u, uvx %u\n", expected,
                    nb, nu);
            free(data);
            return 1;
        }
        if (t1 - t0 < best_bare)
            best_bare = t1 - t0;
        if (t2 - t1 < best_uvx)
            best_uvx = t2 - t1;
        fprintf(stderr, "run %d: bare %.3f s, uvx %.3f s\n", r + 1, t1 - t0, t2 - t1);
    }

    double mbytes = (double)len / (1024.0 * 1024.0);
    printf("RESULT bytes=%zu stanzas=%u base_mb_s=%.1f base_stanzas_s=%.0f uvx_mb_s=%.1f "
           "uvx_stanzas_s=%.0f ratio=%.3f\n",
           len, expected, mbytes / best_bare, expected / best_bare, mbytes / best_uvx,
           expected / best_uvx, best_bare / best_uvx);
    free(data);
    return 0;
}
