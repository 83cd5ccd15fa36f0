/*
 * A scripted HTTP/1.1 server for the BOSH tests, on the test's own loop.
 * It accepts any number of keep-alive connections and reads POST requests
 * (Content-Length bodies). Each request is matched against the current
 * step: when the step's `expect` is a substring of the request (or NULL)
 * the step is used up and answered as it says; otherwise the request is
 * held unanswered, as a BOSH server holds an empty poll. When the script
 * has run out, requests are held. Every request is recorded.
 */
#ifndef UVX_TEST_FAKEHTTP_H
#define UVX_TEST_FAKEHTTP_H

#include <uv.h>

enum {
    FAKEHTTP_CHUNKED = 1,  /* Transfer-Encoding: chunked, a few bytes a chunk */
    FAKEHTTP_SPLIT = 2,    /* write the response one byte at a time, 1 ms apart */
    FAKEHTTP_CLOSE = 4,    /* close the connection after the response (or, with
                              status 0, instead of answering: a reset) */
    FAKEHTTP_EOF_BODY = 8, /* no length: the body ends with the connection */
    FAKEHTTP_STRAY = 16    /* 5 ms after the response, a second one nobody asked for */
};

typedef struct fakehttp_step {
    const char *expect; /* substring of the request, headers included; NULL: any */
    int status;         /* 0: hold the request (no answer) */
    const char *body;   /* the response body for `status` */
    const char *raw;    /* or: exactly these bytes (status ignored) */
    unsigned flags;
} fakehttp_step_t;

typedef struct fakehttp fakehttp_t;

/* Listens on 127.0.0.1 (a free port in *port). `steps` ends with an
 * all-zero step and must outlive the server. NULL on failure. */
fakehttp_t *fakehttp_start(uv_loop_t *loop, const fakehttp_step_t *steps, int *port);
/* Closes the listener and every connection; the loop frees the rest. */
void fakehttp_stop(fakehttp_t *fh);

int fakehttp_steps_done(const fakehttp_t *fh);
int fakehttp_connections(const fakehttp_t *fh); /* accepted so far */
int fakehttp_request_count(const fakehttp_t *fh);
/* The request count itself, for run_until() (test/client.h). */
const int *fakehttp_request_counter(const fakehttp_t *fh);
/* The i-th request (headers and body, NUL-terminated) and the number of
 * the connection it came on (1, 2, ... in accept order). */
const char *fakehttp_request(const fakehttp_t *fh, int i);
int fakehttp_request_conn(const fakehttp_t *fh, int i);
/* The rid attribute of the i-th request's <body/>, or 0. */
unsigned long long fakehttp_request_rid(const fakehttp_t *fh, int i);

/* Bodies the scripts use: the session creation response (sid 'fake-sid',
 * wait 60, requests 2; or the session terms `terms`) with PLAIN offered,
 * SASL success, the features after the restart, the bind result, and an
 * empty body. */
#define FAKEHTTP_BODY_OPEN(attrs, inner)                                                           \
    "<body xmlns='http://jabber.org/protocol/httpbind' xmlns:xmpp='urn:xmpp:xbosh' "               \
    "xmlns:stream='http://etherx.jabber.org/streams' " attrs ">" inner "</body>"
#define FAKEHTTP_CREATED_WITH(terms)                                                               \
    FAKEHTTP_BODY_OPEN("sid='fake-sid' " terms " authid='fake-authid' ver='1.6' from='localhost' " \
                       "xmpp:version='1.0'",                                                       \
                       "<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>"    \
                       "<mechanism>PLAIN</mechanism></mechanisms></stream:features>")
#define FAKEHTTP_CREATED                                                                           \
    FAKEHTTP_CREATED_WITH("wait='60' requests='2' hold='1' inactivity='30' polling='2'")
#define FAKEHTTP_SUCCESS                                                                           \
    FAKEHTTP_BODY_OPEN("", "<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>")
#define FAKEHTTP_BIND_FEATURES                                                                     \
    FAKEHTTP_BODY_OPEN("", "<stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/>"     \
                           "</stream:features>")
#define FAKEHTTP_BOUND                                                                             \
    FAKEHTTP_BODY_OPEN("", "<iq xmlns='jabber:client' type='result' id='_bind_auth_2'>"            \
                           "<bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"                       \
                           "<jid>alice@localhost/fake</jid></bind></iq>")
#define FAKEHTTP_EMPTY FAKEHTTP_BODY_OPEN("", "")

#endif
