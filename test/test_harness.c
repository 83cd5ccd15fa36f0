/*
 * Proves the real-server harness (server.c + servers/prosody.sh, servers/ejabberd.sh) works: each
 * kind starts, serves c2s with SASL mechanisms, knows the users it was given, registers accounts in
 * bulk, and is really gone after stop.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include "server.h"
#include "tap.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define BULK_ACCOUNTS 200

static test_server_t the_server; /* shared by the cases of one kind */
static int server_started;

static int connect_port(int port)
{
    struct sockaddr_in addr;
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    if (fd < 0)
        return -1;
    memset(&addr, 0, sizeof(addr));
    addr.sin_family = AF_INET;
    addr.sin_port = htons((unsigned short)port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static int send_str(int fd, const char *s)
{
    size_t len = strlen(s);
    while (len > 0) {
        ssize_t n = send(fd, s, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        s += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Appends what the server sends to buf until one of the needles shows up,
 * the peer closes or 10 s pass. Returns the index of the needle or -1. */
static int read_until(int fd, char *buf, size_t cap, size_t *used, const char *a, const char *b)
{
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    time_t deadline = time(NULL) + 10;

    for (;;) {
        ssize_t n;
        buf[*used] = '\0';
        if (a && strstr(buf, a))
            return 0;
        if (b && strstr(buf, b))
            return 1;
        if (*used + 1 >= cap || time(NULL) > deadline)
            return -1;
        if (poll(&pfd, 1, 1000) < 0 && errno != EINTR)
            return -1;
        if (!(pfd.revents & (POLLIN | POLLHUP | POLLERR)))
            continue;
        n = recv(fd, buf + *used, cap - 1 - *used, 0);
        if (n <= 0)
            return -1;
        *used += (size_t)n;
    }
}

static void base64(const unsigned char *in, size_t len, char *out)
{
    static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t i;

    for (i = 0; i + 2 < len; i += 3) {
        *out++ = abc[in[i] >> 2];
        *out++ = abc[((in[i] & 3) << 4) | (in[i + 1] >> 4)];
        *out++ = abc[((in[i + 1] & 15) << 2) | (in[i + 2] >> 6)];
        *out++ = abc[in[i + 2] & 63];
    }
    if (len - i == 1) {
        *out++ = abc[in[i] >> 2];
        *out++ = abc[(in[i] & 3) << 4];
        *out++ = '=';
        *out++ = '=';
    } else if (len - i == 2) {
        *out++ = abc[in[i] >> 2];
        *out++ = abc[((in[i] & 3) << 4) | (in[i + 1] >> 4)];
        *out++ = abc[(in[i + 1] & 15) << 2];
        *out++ = '=';
    }
    *out = '\0';
}

static const char stream_header[] =
    "<?xml version='1.0'?><stream:stream to='localhost' xmlns='jabber:client' "
    "xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>";

/* Opens a stream and reads the features into buf. Returns the fd or -1. */
static int open_stream(int port, char *buf, size_t cap)
{
    size_t used = 0;
    int fd = connect_port(port);

    if (fd < 0)
        return -1;
    if (send_str(fd, stream_header) != 0 ||
        read_until(fd, buf, cap, &used, "</stream:features>", NULL) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* SASL PLAIN in the clear. Returns 1 on <success/>, 0 on <failure/>, -1 if
 * neither came. */
static int plain_login(int port, const char *user, const char *pass)
{
    unsigned char creds[256];
    char b64[400], buf[8192], auth[512];
    size_t ulen = strlen(user), plen = strlen(pass), used = 0;
    int fd, result;

    fd = open_stream(port, buf, sizeof(buf));
    if (fd < 0)
        return -1;
    creds[0] = '\0';
    memcpy(creds + 1, user, ulen);
    creds[1 + ulen] = '\0';
    memcpy(creds + 2 + ulen, pass, plen);
    base64(creds, 2 + ulen + plen, b64);
    snprintf(auth, sizeof(auth),
             "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>%s</auth>", b64);
    result = -1;
    if (send_str(fd, auth) == 0) {
        buf[0] = '\0';
        switch (read_until(fd, buf, sizeof(buf), &used, "<success", "<failure")) {
        case 0:
            result = 1;
            break;
        case 1:
            result = 0;
            break;
        default:
            break;
        }
    }
    send_str(fd, "</stream:stream>");
    close(fd);
    return result;
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000.0 + ts.tv_nsec / 1e6;
}

static void start_server(const char *kind)
{
    double t0 = now_ms();

    server_started = 0;
    CHECK_INT(test_server_start(&the_server, kind, "carol:carolpass  dave:dave:pass eve:q\"u\\o"),
              0);
    printf("# %s started in %.0f ms (pid %d, ports %d..%d, dir %s)\n", kind, now_ms() - t0,
           the_server.pid, the_server.c2s_port, the_server.https_port, the_server.dir);
    CHECK(the_server.pid > 0);
    CHECK(test_server_pid_alive(the_server.pid));
    CHECK_INT(the_server.tls_port, the_server.c2s_port + 1);
    CHECK_INT(the_server.http_port, the_server.c2s_port + 2);
    CHECK_INT(the_server.https_port, the_server.c2s_port + 3);
    server_started = !tap_case_failed;
}

/* The c2s port answers a stream header with features listing SASL PLAIN. */
static void check_features(void)
{
    char buf[8192];
    int fd = open_stream(the_server.c2s_port, buf, sizeof(buf));

    CHECK(fd >= 0);
    if (fd < 0)
        return;
    CHECK(strstr(buf, "<stream:stream") != NULL);
    CHECK(strstr(buf, "<stream:features") != NULL);
    CHECK(strstr(buf, "<mechanisms") != NULL);
    CHECK(strstr(buf, "urn:ietf:params:xml:ns:xmpp-sasl") != NULL);
    CHECK(strstr(buf, ">PLAIN<") != NULL);
    CHECK(strstr(buf, ">SCRAM-SHA-1<") != NULL);
    CHECK(strstr(buf, "urn:ietf:params:xml:ns:xmpp-tls") != NULL); /* STARTTLS offered */
    send_str(fd, "</stream:stream>");
    close(fd);
}

/* The other ports accept connections too. */
static void check_other_ports(void)
{
    int ports[] = {the_server.tls_port, the_server.http_port, the_server.https_port};
    size_t i;

    for (i = 0; i < sizeof(ports) / sizeof(ports[0]); i++) {
        int fd = connect_port(ports[i]);
        CHECK(fd >= 0);
        if (fd >= 0)
            close(fd);
    }
}

static void check_users(void)
{
    CHECK_INT(plain_login(the_server.c2s_port, "alice", "alicepass"), 1);
    CHECK_INT(plain_login(the_server.c2s_port, "bob", "bobpass"), 1);
    CHECK_INT(plain_login(the_server.c2s_port, "carol", "carolpass"), 1); /* extra_users */
    CHECK_INT(plain_login(the_server.c2s_port, "dave", "dave:pass"), 1);  /* ':' in password */
    CHECK_INT(plain_login(the_server.c2s_port, "eve", "q\"u\\o"), 1);     /* quote, backslash */
    CHECK_INT(plain_login(the_server.c2s_port, "alice", "wrongpass"), 0);
    CHECK_INT(plain_login(the_server.c2s_port, "nobody", "alicepass"), 0);
}

static void check_register_many(void)
{
    double t0 = now_ms();

    CHECK_INT(test_server_register_many(&the_server, "load", BULK_ACCOUNTS, "loadpass"), 0);
    printf("# %s: registered %d accounts in %.0f ms\n", the_server.kind, BULK_ACCOUNTS,
           now_ms() - t0);
    CHECK_INT(plain_login(the_server.c2s_port, "load1", "loadpass"), 1);
    CHECK_INT(plain_login(the_server.c2s_port, "load137", "loadpass"), 1);
    CHECK_INT(plain_login(the_server.c2s_port, "load200", "loadpass"), 1);
    CHECK_INT(plain_login(the_server.c2s_port, "load201", "loadpass"), 0);
    CHECK_INT(plain_login(the_server.c2s_port, "load1", "wrong"), 0);
}

static void check_stop(void)
{
    char dir[sizeof(the_server.dir)];
    int pid = the_server.pid, port = the_server.c2s_port;
    double t0 = now_ms();

    memcpy(dir, the_server.dir, sizeof(dir));
    test_server_stop(&the_server);
    printf("# %s stopped in %.0f ms\n", dir, now_ms() - t0);
    CHECK(!test_server_pid_alive(pid));
    CHECK(kill(pid, 0) != 0 || !test_server_pid_alive(pid));
    CHECK_INT(the_server.pid, 0);
    CHECK(connect_port(port) < 0);
    if (!getenv("UVX_KEEP_SERVER_DIR"))
        CHECK(access(dir, F_OK) != 0);
    /* Stopping twice is harmless. */
    test_server_stop(&the_server);
}

static void prosody_start(void)
{
    start_server("prosody");
}

static void ejabberd_start(void)
{
    start_server("ejabberd");
}

/* Two instances at once get disjoint ports and both serve. */
static void two_prosodys_at_once(void)
{
    test_server_t a, b;
    char buf[8192];
    int fa, fb;

    CHECK_INT(test_server_start(&a, "prosody", NULL), 0);
    CHECK_INT(test_server_start(&b, "prosody", NULL), 0);
    CHECK(a.c2s_port + 5 <= b.c2s_port || b.c2s_port + 5 <= a.c2s_port);
    CHECK(strcmp(a.dir, b.dir) != 0);
    fa = open_stream(a.c2s_port, buf, sizeof(buf));
    fb = open_stream(b.c2s_port, buf, sizeof(buf));
    CHECK(fa >= 0);
    CHECK(fb >= 0);
    if (fa >= 0)
        close(fa);
    if (fb >= 0)
        close(fb);
    test_server_stop(&a);
    test_server_stop(&b);
}

/* The start script refuses a base port another server already serves:
 * its own server could not bind it, yet the other one would answer the
 * script's readiness check. */
static void busy_port_refused(void)
{
    test_server_t a;
    char script[512], dir[256], path[512], cmd[2048], err[1024] = "";
    const char *tmp = getenv("TMPDIR") && *getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    if (test_server_start(&a, "prosody", NULL) != 0) {
        CHECK(!"a first prosody starts");
        return;
    }
    test_server_script("prosody", script, sizeof(script));
    snprintf(dir, sizeof(dir), "%s/uvx-busy-port-XXXXXX", tmp);
    CHECK(mkdtemp(dir) != NULL);
    snprintf(cmd, sizeof(cmd), "bash '%s' start '%s/srv' %d >/dev/null 2>'%s/err'", script, dir,
             a.c2s_port, dir);
    int rc = system(cmd);
    CHECK(rc != -1 && WIFEXITED(rc) && WEXITSTATUS(rc) != 0);
    snprintf(path, sizeof(path), "%s/err", dir);
    FILE *f = fopen(path, "r");
    if (f != NULL) {
        size_t n = fread(err, 1, sizeof(err) - 1, f);
        err[n] = '\0';
        fclose(f);
    }
    printf("# %s", err);
    CHECK(strstr(err, "is in use") != NULL);
    snprintf(path, sizeof(path), "%s/srv/server.pid", dir);
    CHECK(access(path, F_OK) != 0); /* nothing was started */
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    CHECK_INT(system(cmd), 0);
    /* the first server still serves */
    char buf[8192];
    int fd = open_stream(a.c2s_port, buf, sizeof(buf));
    CHECK(fd >= 0);
    if (fd >= 0)
        close(fd);
    test_server_stop(&a);
}

static void unknown_kind(void)
{
    test_server_t s;

    CHECK_INT(test_server_available("openfire"), 0);
    CHECK_INT(test_server_start(&s, "openfire", NULL), -1);
    CHECK_INT(s.pid, 0);
    test_server_stop(&s); /* harmless after a failed start */
}

static void run_kind(const char *kind, void (*start)(void), const char *start_name)
{
    char name[128];

    if (!test_server_available(kind)) {
        tap_skip(kind, "not installed");
        return;
    }
    tap_run(start_name, start);
    if (!server_started) {
        test_server_stop(&the_server);
        return;
    }
    snprintf(name, sizeof(name), "%s: c2s offers SASL mechanisms", kind);
    tap_run(name, check_features);
    snprintf(name, sizeof(name), "%s: TLS, HTTP and HTTPS ports accept", kind);
    tap_run(name, check_other_ports);
    snprintf(name, sizeof(name), "%s: alice, bob and extra users log in", kind);
    tap_run(name, check_users);
    snprintf(name, sizeof(name), "%s: register_many creates working accounts", kind);
    tap_run(name, check_register_many);
    snprintf(name, sizeof(name), "%s: stop ends the process and removes its dir", kind);
    tap_run(name, check_stop);
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    tap_run("unknown server kind is refused", unknown_kind);
    run_kind("prosody", prosody_start, "prosody: start");
    if (test_server_available("prosody"))
        tap_run("two prosody instances at once", two_prosodys_at_once);
    else
        tap_skip("two prosody instances at once", "prosody not installed");
    if (test_server_available("prosody"))
        tap_run("prosody.sh refuses a port another server serves", busy_port_refused);
    else
        tap_skip("prosody.sh refuses a port another server serves", "prosody not installed");
    run_kind("ejabberd", ejabberd_start, "ejabberd: start");
    return tap_done();
}
