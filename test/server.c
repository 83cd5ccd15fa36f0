/*
 * Starts and stops the real XMPP servers of the integration tests through
 * test/servers/{prosody,ejabberd}.sh. See server.h.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* flock, nftw, mkdtemp, posix_spawn */
#endif

#include "server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#ifndef TEST_SERVERS_DIR
#define TEST_SERVERS_DIR "test/servers"
#endif

/* Ports BASE..BASE+4 are used. Stay below Linux's ephemeral range
 * (32768-60999 by default) so the thousands of client sockets of the load
 * tests never sit on a server port. */
#define PORT_RANGE_LOW 10000
#define PORT_RANGE_HIGH 32700
#define PORTS_PER_SERVER 5
#define START_ATTEMPTS 3
#define MAX_SCRIPT_ARGS 64

static void complain(const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "test_server: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n");
}

static const char *servers_dir(void)
{
    const char *dir = getenv("UVX_TEST_SERVERS_DIR");
    return dir && *dir ? dir : TEST_SERVERS_DIR;
}

static const char *tmp_dir(void)
{
    const char *dir = getenv("TMPDIR");
    return dir && *dir ? dir : "/tmp";
}

static int kind_is_known(const char *kind)
{
    return kind && (strcmp(kind, "prosody") == 0 || strcmp(kind, "ejabberd") == 0);
}

void test_server_script(const char *kind, char *buf, size_t len)
{
    snprintf(buf, len, "%s/%s.sh", servers_dir(), kind);
}

/* Looks for an executable named name in $PATH (or at name if it has a '/'). */
static int have_program(const char *name)
{
    const char *path = getenv("PATH");
    char candidate[1024];

    if (strchr(name, '/'))
        return access(name, X_OK) == 0;
    if (!path)
        path = "/usr/bin:/bin";
    while (*path) {
        size_t n = strcspn(path, ":");
        snprintf(candidate, sizeof(candidate), "%.*s/%s", (int)n, n ? path : ".", name);
        if (access(candidate, X_OK) == 0)
            return 1;
        path += n;
        if (*path == ':')
            path++;
    }
    return 0;
}

int test_server_available(const char *kind)
{
    char script[512];

    if (!kind_is_known(kind) || getenv("UVX_SKIP_SERVER_TESTS"))
        return 0;
    test_server_script(kind, script, sizeof(script));
    if (access(script, R_OK) != 0 || !have_program("bash") || !have_program("openssl"))
        return 0;
    if (strcmp(kind, "prosody") == 0)
        return have_program("prosody");
    return have_program("/usr/sbin/ejabberdctl") && have_program("erl") && have_program("curl");
}

int test_server_pid_alive(int pid)
{
    char path[64], line[256];
    const char *state;
    ssize_t n;
    int fd;

    if (pid <= 0)
        return 0;
    snprintf(path, sizeof(path), "/proc/%d/stat", pid);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return kill(pid, 0) == 0 || errno == EPERM;
    n = read(fd, line, sizeof(line) - 1);
    close(fd);
    if (n <= 0)
        return 0;
    line[n] = '\0';
    /* "pid (comm) S ...": the state follows the last ')'. Nobody may reap
     * the reparented server (PID 1 in a container often doesn't), so a
     * zombie counts as gone. */
    state = strrchr(line, ')');
    return !(state && state[1] == ' ' && (state[2] == 'Z' || state[2] == 'X'));
}

/* A random base port, a multiple of 8, from the kernel's entropy. */
static int random_base_port(void)
{
    unsigned int r = 0;
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    struct timespec ts;

    if (fd < 0 || read(fd, &r, sizeof(r)) != (ssize_t)sizeof(r)) {
        clock_gettime(CLOCK_MONOTONIC, &ts);
        r = (unsigned int)ts.tv_nsec ^ ((unsigned int)getpid() << 16);
    }
    if (fd >= 0)
        close(fd);
    return PORT_RANGE_LOW + (int)(r % ((PORT_RANGE_HIGH - PORT_RANGE_LOW) / 8)) * 8;
}

static int port_is_free(int port)
{
    struct sockaddr_in addr;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int ok;

    if (fd < 0)
        return 0;
    memset(&addr, 0, sizeof(addr));
    addr.sin_family = AF_INET;
    addr.sin_port = htons((unsigned short)port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ok = bind(fd, (struct sockaddr *)&addr, sizeof(addr)) == 0;
    close(fd);
    return ok;
}

/*
 * Test programs run in parallel: an flock on a per-base file keeps two of
 * them off the same range (the lock dies with the process), and binding
 * each port shows nobody else uses it. Returns the lock fd or -1.
 */
static int reserve_ports(int base)
{
    char path[512];
    int fd, i;

    snprintf(path, sizeof(path), "%s/uvxmpp-port-locks", tmp_dir());
    if (mkdir(path, 0777) != 0 && errno != EEXIST)
        return -1;
    snprintf(path, sizeof(path), "%s/uvxmpp-port-locks/%d.lock", tmp_dir(), base);
    fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0666);
    if (fd < 0)
        return -1;
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        close(fd);
        return -1;
    }
    for (i = 0; i < PORTS_PER_SERVER; i++) {
        if (!port_is_free(base + i)) {
            close(fd);
            return -1;
        }
    }
    return fd;
}

static void release_ports(test_server_t *s)
{
    if (s->port_lock_fd >= 0)
        close(s->port_lock_fd);
    s->port_lock_fd = -1;
}

/*
 * Runs "bash SCRIPT args..." with stdin from /dev/null, stderr inherited,
 * stdout captured into out (NUL-terminated, truncated to len-1). The
 * script learns our pid so that its watchdog can stop the server if we die
 * without calling test_server_stop. Returns the exit status or -1.
 */
static int run_script(char *const argv[], char *out, size_t len)
{
    posix_spawn_file_actions_t actions;
    char owner[64], **env;
    size_t n_env = 0, used = 0, i, j;
    int pipefd[2], status = -1, rc;
    pid_t pid;
    ssize_t got;

    while (environ[n_env])
        n_env++;
    env = calloc(n_env + 2, sizeof(*env));
    if (!env)
        return -1;
    for (i = 0, j = 0; i < n_env; i++)
        if (strncmp(environ[i], "UVX_TEST_OWNER_PID=", 19) != 0)
            env[j++] = environ[i];
    snprintf(owner, sizeof(owner), "UVX_TEST_OWNER_PID=%d", (int)getpid());
    env[j] = owner;

    if (pipe2(pipefd, O_CLOEXEC) != 0) {
        free(env);
        return -1;
    }
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&actions, pipefd[1], 1);
    rc = posix_spawn(&pid, "/bin/bash", &actions, NULL, argv, env);
    posix_spawn_file_actions_destroy(&actions);
    free(env);
    close(pipefd[1]);
    if (rc != 0) {
        close(pipefd[0]);
        complain("cannot run %s: %s", argv[1], strerror(rc));
        return -1;
    }
    /* The script's servers redirect their own output, so EOF comes when
     * the script exits. */
    for (;;) {
        char discard[256];
        char *dst = used + 1 < len ? out + used : discard;
        size_t room = used + 1 < len ? len - 1 - used : sizeof(discard);
        got = read(pipefd[0], dst, room);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            break;
        if (dst != discard)
            used += (size_t)got;
    }
    out[used] = '\0';
    close(pipefd[0]);
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* The pid is the last line the start command prints. */
static int parse_pid(const char *out)
{
    const char *end = out + strlen(out), *line;
    char *stop;
    long pid;

    while (end > out && (end[-1] == '\n' || end[-1] == ' '))
        end--;
    line = end;
    while (line > out && line[-1] != '\n')
        line--;
    pid = strtol(line, &stop, 10);
    return stop == end && pid > 0 && pid < 1 << 30 ? (int)pid : -1;
}

/* Splits "u1:p1 u2:p2" into argv slots; the copy in storage backs them. */
static int split_users(const char *users, char *storage, size_t len, char **argv, int room)
{
    int n = 0;
    char *tok, *save = NULL;

    if (!users)
        return 0;
    if (strlen(users) >= len) {
        complain("extra_users is too long");
        return -1;
    }
    strcpy(storage, users);
    for (tok = strtok_r(storage, " \t\n", &save); tok; tok = strtok_r(NULL, " \t\n", &save)) {
        if (n == room || !strchr(tok, ':')) {
            complain("bad or too many extra users: \"%s\"", users);
            return -1;
        }
        argv[n++] = tok;
    }
    return n;
}

static int start_once(test_server_t *s, int base, const char *extra_users)
{
    char script[512], base_str[16], out[4096], users[4096];
    char *argv[MAX_SCRIPT_ARGS];
    int argc = 0, n, rc, pid;

    test_server_script(s->kind, script, sizeof(script));
    snprintf(base_str, sizeof(base_str), "%d", base);
    argv[argc++] = "bash";
    argv[argc++] = script;
    argv[argc++] = "start";
    argv[argc++] = s->dir;
    argv[argc++] = base_str;
    n = split_users(extra_users, users, sizeof(users), argv + argc, MAX_SCRIPT_ARGS - argc - 1);
    if (n < 0)
        return -1;
    argc += n;
    argv[argc] = NULL;

    rc = run_script(argv, out, sizeof(out));
    pid = rc == 0 ? parse_pid(out) : -1;
    if (pid <= 0) {
        complain("%s start on ports %d..%d failed (exit %d)", s->kind, base, base + 4, rc);
        return -1;
    }
    s->pid = pid;
    s->c2s_port = base;
    s->tls_port = base + 1;
    s->http_port = base + 2;
    s->https_port = base + 3;
    return 0;
}

static int make_server_dir(test_server_t *s)
{
    int n = snprintf(s->dir, sizeof(s->dir), "%s/uvx-%s-XXXXXX", tmp_dir(), s->kind);

    if (n < 0 || (size_t)n >= sizeof(s->dir)) {
        complain("TMPDIR is too long");
        return -1;
    }
    if (!mkdtemp(s->dir)) {
        complain("mkdtemp %s: %s", s->dir, strerror(errno));
        return -1;
    }
    return 0;
}

int test_server_start(test_server_t *s, const char *kind, const char *extra_users)
{
    int attempt, tries, base;

    memset(s, 0, sizeof(*s));
    s->port_lock_fd = -1;
    if (!kind_is_known(kind)) {
        complain("unknown server kind \"%s\"", kind ? kind : "(null)");
        return -1;
    }
    snprintf(s->kind, sizeof(s->kind), "%s", kind);
    if (!test_server_available(kind)) {
        complain("%s is not installed", kind);
        return -1;
    }
    if (make_server_dir(s) != 0)
        return -1;
    for (attempt = 0; attempt < START_ATTEMPTS; attempt++) {
        /* Find a range nobody holds; give up on this attempt after many. */
        for (tries = 0, base = -1; tries < 100 && s->port_lock_fd < 0; tries++) {
            base = random_base_port();
            s->port_lock_fd = reserve_ports(base);
        }
        if (s->port_lock_fd < 0)
            break;
        if (start_once(s, base, extra_users) == 0)
            return 0;
        release_ports(s);
    }
    complain("could not start %s; its files are in %s", kind, s->dir);
    s->pid = 0;
    return -1;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

/* Waits up to ms milliseconds for pid to go. */
static int wait_gone(int pid, int ms)
{
    struct timespec pause = {0, 20 * 1000 * 1000};

    for (; ms > 0; ms -= 20) {
        if (!test_server_pid_alive(pid))
            return 1;
        nanosleep(&pause, NULL);
    }
    return !test_server_pid_alive(pid);
}

void test_server_stop(test_server_t *s)
{
    char script[512];
    char out[256];
    char *argv[] = {"bash", script, "stop", s->dir, NULL};

    if (s->dir[0] && kind_is_known(s->kind)) {
        test_server_script(s->kind, script, sizeof(script));
        if (run_script(argv, out, sizeof(out)) != 0)
            complain("%s stop script failed for %s", s->kind, s->dir);
    }
    /* The script waits for the pid itself; this only covers its failure. */
    if (s->pid > 0 && !wait_gone(s->pid, 1000)) {
        complain("%s pid %d survived the stop script; killing it", s->kind, s->pid);
        kill(s->pid, SIGKILL);
        wait_gone(s->pid, 5000);
    }
    s->pid = 0;
    release_ports(s);
    if (!s->dir[0])
        return;
    if (getenv("UVX_KEEP_SERVER_DIR"))
        fprintf(stderr, "test_server: kept %s\n", s->dir);
    else
        nftw(s->dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    s->dir[0] = '\0';
}

int test_server_cert_path(const test_server_t *s, char *buf, size_t len)
{
    int n = snprintf(buf, len, "%s/certs/localhost.crt", s->dir);
    return n < 0 || (size_t)n >= len ? -1 : 0;
}

/* ---- account creation ---- */

/* Prosody's datamanager stores names with every byte outside [a-zA-Z0-9]
 * written as %xx in lower-case hex. */
static void prosody_escape(const char *in, char *out, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    size_t used = 0;

    for (; *in && used + 4 < len; in++) {
        unsigned char c = (unsigned char)*in;
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) {
            out[used++] = (char)c;
        } else {
            out[used++] = '%';
            out[used++] = hex[c >> 4];
            out[used++] = hex[c & 15];
        }
    }
    out[used] = '\0';
}

/* Writes s as a double-quoted Lua (or JSON) string body: only '"' and '\'
 * need escaping for the passwords tests use. */
static void put_quoted(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            fputc('\\', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

/* The file "prosodyctl register" writes for authentication = internal_plain;
 * Prosody reads it on each login, so this works while the server runs. */
static int prosody_register_many(test_server_t *s, const char *prefix, int n, const char *password)
{
    char dir[512], user[256], name[768], path[1400];
    int i;
    FILE *f;

    snprintf(dir, sizeof(dir), "%s/data/localhost/accounts", s->dir);
    for (i = 1; i <= n; i++) {
        snprintf(user, sizeof(user), "%s%d", prefix, i);
        prosody_escape(user, name, sizeof(name));
        snprintf(path, sizeof(path), "%s/%s.dat", dir, name);
        f = fopen(path, "w");
        if (!f) {
            complain("cannot write %s: %s", path, strerror(errno));
            return -1;
        }
        fputs("return {\n\t[\"password\"] = ", f);
        put_quoted(f, password);
        fputs(";\n};\n", f);
        if (fclose(f) != 0) {
            complain("cannot write %s", path);
            return -1;
        }
    }
    return 0;
}

static int connect_loopback(int port)
{
    struct sockaddr_in addr;
    struct timeval tv = {10, 0};
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    if (fd < 0)
        return -1;
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
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

static int send_all(int fd, const char *data, size_t len)
{
    while (len > 0) {
        ssize_t n = send(fd, data, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        data += n;
        len -= (size_t)n;
    }
    return 0;
}

/*
 * Reads one HTTP response on a keep-alive connection and returns its status
 * code (-1 on error or EOF). *keep is cleared when the server will close.
 */
static int read_http_response(int fd, int *keep)
{
    char buf[8192];
    size_t used = 0, need;
    char *head_end, *cl;
    int status;
    long body;

    for (;;) {
        ssize_t n;
        buf[used] = '\0';
        head_end = strstr(buf, "\r\n\r\n");
        if (head_end)
            break;
        if (used + 1 >= sizeof(buf))
            return -1;
        n = recv(fd, buf + used, sizeof(buf) - 1 - used, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        used += (size_t)n;
    }
    if (sscanf(buf, "HTTP/1.%*d %d", &status) != 1)
        return -1;
    *head_end = '\0';
    cl = strcasestr(buf, "\r\ncontent-length:");
    body = cl ? strtol(cl + 17, NULL, 10) : 0;
    *keep = strcasestr(buf, "\r\nconnection: close") == NULL && cl != NULL;
    need = (size_t)(head_end + 4 - buf) + (size_t)body;
    /* Keep-alive responses to one request at a time: nothing may follow
     * the body, so reading exactly up to it is enough. */
    while (used < need) {
        char sink[4096];
        size_t want = need - used < sizeof(sink) ? need - used : sizeof(sink);
        ssize_t n = recv(fd, sink, want, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        used += (size_t)n;
    }
    return status;
}

/* ejabberd: one POST /api/register per account (mod_http_api, enabled for
 * 127.0.0.1 by ejabberd.sh) on a keep-alive connection. */
static int ejabberd_register_many(test_server_t *s, const char *prefix, int n, const char *password)
{
    char body[1024], request[1400];
    int i, fd = -1, keep = 0, status;
    FILE *mem;
    size_t len;

    for (i = 1; i <= n; i++) {
        mem = fmemopen(body, sizeof(body), "w");
        if (!mem)
            break;
        fputs("{\"user\":\"", mem);
        fputs(prefix, mem); /* prefixes are plain names; no JSON escaping needed */
        fprintf(mem, "%d\",\"host\":\"localhost\",\"password\":", i);
        put_quoted(mem, password);
        fputs("}", mem);
        fclose(mem);
        len = strlen(body);
        snprintf(request, sizeof(request),
                 "POST /api/register HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
                 "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
                 s->http_port, len, body);
        if (fd < 0 && (fd = connect_loopback(s->http_port)) < 0) {
            complain("cannot connect to ejabberd's HTTP port %d", s->http_port);
            return -1;
        }
        status = send_all(fd, request, strlen(request)) == 0 ? read_http_response(fd, &keep) : -1;
        if (status != 200) {
            complain("registering %s%d through ejabberd's HTTP API: status %d", prefix, i, status);
            close(fd);
            return -1;
        }
        if (!keep) {
            close(fd);
            fd = -1;
        }
    }
    if (fd >= 0)
        close(fd);
    return i > n ? 0 : -1;
}

int test_server_register_many(test_server_t *s, const char *prefix, int n, const char *password)
{
    if (!s->dir[0] || !prefix || !password || n < 0)
        return -1;
    if (strpbrk(prefix, "\"\\:@/ ")) {
        complain("account prefix \"%s\" needs escaping; use a plain name", prefix);
        return -1;
    }
    if (strcmp(s->kind, "prosody") == 0)
        return prosody_register_many(s, prefix, n, password);
    if (s->pid <= 0) {
        complain("ejabberd must be running to register accounts");
        return -1;
    }
    return ejabberd_register_many(s, prefix, n, password);
}
