/*
 * A scripted XMPP "server" for fault injection, running on the test's own
 * loop: each step waits until the client has sent `expect` (a substring of
 * everything it sent since the previous step matched; NULL = at once), then
 * writes `reply` (may be NULL) and, with `close`, closes the connection.
 * A real server cannot be made to send broken XML or odd features; this can.
 */
#ifndef UVX_TEST_FAKESERVER_H
#define UVX_TEST_FAKESERVER_H

#include <uv.h>

typedef struct fake_step {
    const char *expect;
    const char *reply;
    int close;
} fake_step_t;

typedef struct fake_server fake_server_t;

/* Listens on 127.0.0.1 (a free port, returned in *port). The steps array
 * ends with an all-NULL step and must outlive the server. */
fake_server_t *fake_server_start(uv_loop_t *loop, const fake_step_t *steps, int *port);
/* Everything the client sent so far (NUL-terminated). */
const char *fake_server_received(const fake_server_t *fs);
/* How many steps have run. */
int fake_server_steps_done(const fake_server_t *fs);
/* Closes the listener and any connection (asynchronously; the loop then
 * frees it). */
void fake_server_stop(fake_server_t *fs);

/* Stream header + features / success replies most scripts use. */
#define FAKE_STREAM_HEADER                                                                         \
    "<?xml version='1.0'?><stream:stream xmlns='jabber:client' "                                   \
    "xmlns:stream='http://etherx.jabber.org/streams' id='fake-1' from='localhost' "                \
    "version='1.0' xml:lang='en'>"
#define FAKE_FEATURES_PLAIN                                                                        \
    "<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>"                       \
    "<mechanism>PLAIN</mechanism></mechanisms></stream:features>"
#define FAKE_FEATURES_BIND                                                                         \
    "<stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></stream:features>"
#define FAKE_SUCCESS "<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>"
#define FAKE_BIND_RESULT                                                                           \
    "<iq type='result' id='_bind_auth_2'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"          \
    "<jid>alice@localhost/fake</jid></bind></iq>"

#endif
