#include "fakeserver.h"

#include <stdlib.h>
#include <string.h>

struct fake_server {
    uv_tcp_t listener;
    uv_tcp_t *client;
    const fake_step_t *steps;
    int step;
    char *received;
    size_t len, match_from;
    int stopping;
    int open_handles;
};

static void fake_maybe_free(fake_server_t *fs)
{
    if (fs->stopping && fs->open_handles == 0) {
        free(fs->received);
        free(fs);
    }
}

static void fake_on_closed(uv_handle_t *h)
{
    fake_server_t *fs = h->data;
    if (h != (uv_handle_t *)&fs->listener)
        free(h);
    fs->open_handles--;
    fake_maybe_free(fs);
}

static void fake_close_client(fake_server_t *fs)
{
    if (fs->client == NULL)
        return;
    uv_close((uv_handle_t *)fs->client, fake_on_closed);
    fs->client = NULL;
}

typedef struct fake_write {
    uv_write_t req;
    char *data;
} fake_write_t;

static void fake_on_written(uv_write_t *req, int status)
{
    (void)status;
    fake_write_t *w = (fake_write_t *)req;
    free(w->data);
    free(w);
}

static void fake_write(fake_server_t *fs, const char *s)
{
    fake_write_t *w = malloc(sizeof(*w));
    w->data = strdup(s);
    uv_buf_t b = uv_buf_init(w->data, (unsigned)strlen(s));
    if (uv_write(&w->req, (uv_stream_t *)fs->client, &b, 1, fake_on_written) != 0) {
        free(w->data);
        free(w);
    }
}

static int fake_step_is_end(const fake_step_t *st)
{
    return st->expect == NULL && st->reply == NULL && !st->close;
}

/* Runs every step whose expectation is met. */
static void fake_advance(fake_server_t *fs)
{
    while (fs->client && !fake_step_is_end(&fs->steps[fs->step])) {
        const fake_step_t *st = &fs->steps[fs->step];
        if (st->expect) {
            char *hit = strstr(fs->received + fs->match_from, st->expect);
            if (hit == NULL)
                return;
            fs->match_from = (size_t)(hit - fs->received) + strlen(st->expect);
        }
        fs->step++;
        if (st->reply)
            fake_write(fs, st->reply);
        if (st->close)
            fake_close_client(fs);
    }
}

static void fake_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)h;
    buf->base = malloc(suggested);
    buf->len = suggested;
}

static void fake_on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    fake_server_t *fs = s->data;
    if (n > 0) {
        fs->received = realloc(fs->received, fs->len + (size_t)n + 1);
        memcpy(fs->received + fs->len, buf->base, (size_t)n);
        fs->len += (size_t)n;
        fs->received[fs->len] = '\0';
        fake_advance(fs);
    } else if (n < 0) {
        fake_close_client(fs);
    }
    free(buf->base);
}

static void fake_on_connection(uv_stream_t *server, int status)
{
    fake_server_t *fs = server->data;
    if (status != 0 || fs->client != NULL)
        return; /* one client at a time is all the scripts need */
    fs->client = malloc(sizeof(*fs->client));
    uv_tcp_init(server->loop, fs->client);
    fs->client->data = fs;
    fs->open_handles++;
    if (uv_accept(server, (uv_stream_t *)fs->client) != 0) {
        fake_close_client(fs);
        return;
    }
    uv_read_start((uv_stream_t *)fs->client, fake_alloc, fake_on_read);
    fake_advance(fs);
}

fake_server_t *fake_server_start(uv_loop_t *loop, const fake_step_t *steps, int *port)
{
    fake_server_t *fs = calloc(1, sizeof(*fs));
    struct sockaddr_in addr;
    struct sockaddr_storage bound;
    int namelen = sizeof(bound);
    fs->steps = steps;
    fs->received = calloc(1, 1);
    uv_tcp_init(loop, &fs->listener);
    fs->listener.data = fs;
    fs->open_handles = 1;
    uv_ip4_addr("127.0.0.1", 0, &addr);
    if (uv_tcp_bind(&fs->listener, (const struct sockaddr *)&addr, 0) != 0 ||
        uv_listen((uv_stream_t *)&fs->listener, 8, fake_on_connection) != 0 ||
        uv_tcp_getsockname(&fs->listener, (struct sockaddr *)&bound, &namelen) != 0) {
        fake_server_stop(fs);
        return NULL;
    }
    *port = ntohs(((struct sockaddr_in *)&bound)->sin_port);
    return fs;
}

const char *fake_server_received(const fake_server_t *fs)
{
    return fs->received;
}

int fake_server_steps_done(const fake_server_t *fs)
{
    return fs->step;
}

void fake_server_stop(fake_server_t *fs)
{
    if (fs == NULL || fs->stopping)
        return;
    fs->stopping = 1;
    fake_close_client(fs);
    uv_close((uv_handle_t *)&fs->listener, fake_on_closed);
}
