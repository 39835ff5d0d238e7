/* The embedded server serves its HTTP side where RTM2_EMBEDDED_HTTP says, with the Basic
 * credentials of RTM2_EMBEDDED_HTTP_AUTH. The embedded server is one per process and reads the
 * environment when it starts (the first time a client uses it), so this is a program of its
 * own (its own CTest test, its own process): it sets the environment before its first client,
 * logs "alice" in on the embedded default, and checks the REST API (with and without the
 * credentials) and /metrics over plain HTTP/1.1 on a loopback socket.
 *
 *   test_embedded_http */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "harness.h"

static int passed = 0;
static int g_port;

/* "ops:secret" in base64. */
#define AUTH "b3BzOnNlY3JldA=="

typedef struct http_reply {
    int status;
    char *body; /* heap, NUL-terminated */
} http_reply;

/* GET `path` on 127.0.0.1:`port` (with `Authorization: Basic auth` unless NULL), the reply read
 * to its end (Connection: close); every socket call and the whole read bounded by H_WAIT_MS.
 * Fails the test on a socket error or a reply that is not HTTP. */
static http_reply http_get(int port, const char *path, const char *auth) {
    http_reply r;
    memset(&r, 0, sizeof r);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    CHECK(fd >= 0);
    struct timeval tv = {H_WAIT_MS / 1000, 0};
    CHECK(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) == 0);
    CHECK(setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) == 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons((uint16_t)port);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0)
        h_fail(__FILE__, __LINE__, "connect to 127.0.0.1:%d: %s", port, strerror(errno));
    char req[1024];
    int n = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n%s%s%sConnection: close\r\n\r\n", path,
                     port, auth ? "Authorization: Basic " : "", auth ? auth : "", auth ? "\r\n" : "");
    CHECK(n > 0 && (size_t)n < sizeof req);
    for (int off = 0; off < n;) {
        ssize_t w = send(fd, req + off, (size_t)(n - off), 0);
        if (w <= 0) h_fail(__FILE__, __LINE__, "send GET %s: %s", path, strerror(errno));
        off += (int)w;
    }
    size_t cap = 8192, len = 0;
    char *raw = malloc(cap);
    CHECK(raw != NULL);
    int64_t deadline = h_now_ms() + H_WAIT_MS;
    for (;;) {
        if (h_now_ms() > deadline) h_fail(__FILE__, __LINE__, "GET %s: the reply did not end in %d ms", path, H_WAIT_MS);
        if (cap - len < 4096) {
            cap *= 2;
            raw = realloc(raw, cap);
            CHECK(raw != NULL);
        }
        ssize_t got = recv(fd, raw + len, cap - len - 1, 0);
        if (got < 0 && errno == EINTR) continue;
        if (got < 0) h_fail(__FILE__, __LINE__, "recv GET %s: %s", path, strerror(errno));
        if (got == 0) break;
        len += (size_t)got;
    }
    close(fd);
    raw[len] = '\0';
    char *sep = strstr(raw, "\r\n\r\n");
    if (!sep) h_fail(__FILE__, __LINE__, "GET %s: not an HTTP reply: %s", path, raw);
    *sep = '\0';
    if (sscanf(raw, "HTTP/1.%*d %d", &r.status) != 1) h_fail(__FILE__, __LINE__, "GET %s: bad status line: %s", path, raw);
    /* The body as sent: the server gives a length, not chunks. */
    if (strcasestr(raw, "transfer-encoding: chunked")) h_fail(__FILE__, __LINE__, "GET %s: a chunked reply:\n%s", path, raw);
    r.body = strdup(sep + 4);
    CHECK(r.body != NULL);
    free(raw);
    return r;
}

/* Whether `text` has a line exactly `line` ("\n" or "\r\n" line ends). */
static int has_line(const char *text, const char *line) {
    size_t n = strlen(line);
    for (const char *p = text; p && *p;) {
        const char *end = strchr(p, '\n');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len > 0 && p[len - 1] == '\r') len--;
        if (len == n && strncmp(p, line, n) == 0) return 1;
        p = end ? end + 1 : NULL;
    }
    return 0;
}

static void the_embedded_server_serves_http_when_asked(void) {
    h_recorder rec;
    h_recorder_init(&rec);
    rtm2_client *c = h_new_client("alice", NULL, &rec); /* no endpoint: the embedded default */
    h_call k;
    h_call_init(&k);
    CHECK_INT(OP(k, rtm2_client_login(c, NULL, h_complete, &k, NULL)), RTM2_OK);

    char users_path[128];
    snprintf(users_path, sizeof users_path, "/v1/apps/%s/users", H_APP_ID);
    http_reply r = http_get(g_port, users_path, AUTH);
    if (r.status != 200) h_fail(__FILE__, __LINE__, "GET %s: %d %s", users_path, r.status, r.body);
    /* The JSON exactly as the server writes it (compact, keys sorted). */
    CHECK_STR(r.body, "{\"count\":1,\"users\":[{\"node_id\":\"\",\"user_id\":\"alice\"}]}");
    free(r.body);

    r = http_get(g_port, users_path, NULL);
    if (r.status != 401) h_fail(__FILE__, __LINE__, "GET %s without credentials: %d %s", users_path, r.status, r.body);
    free(r.body);

    r = http_get(g_port, "/metrics", NULL);
    if (r.status != 200) h_fail(__FILE__, __LINE__, "GET /metrics: %d %s", r.status, r.body);
    if (!has_line(r.body, "rtm2_logins_total{result=\"ok\"} 1"))
        h_fail(__FILE__, __LINE__, "GET /metrics: no line rtm2_logins_total{result=\"ok\"} 1 in:\n%s", r.body);
    free(r.body);

    CHECK_INT(OP(k, rtm2_client_logout(c, h_complete, &k, NULL)), RTM2_OK);
    h_call_destroy(&k);
    rtm2_client_free(c);
    CHECK_INT(rec.destroyed, 1);
    h_recorder_destroy(&rec);
}

int main(int argc, char **argv) {
    (void)argv;
    h_init();
    if (argc != 1) {
        fprintf(stderr, "usage: test_embedded_http\n");
        return 2;
    }
    /* Before the first client: the embedded server reads these when it starts. */
    g_port = h_unused_port();
    CHECK(g_port > 0);
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", g_port);
    CHECK(unsetenv("RTM2_ENDPOINT") == 0);
    CHECK(setenv("RTM2_EMBEDDED_HTTP", addr, 1) == 0);
    CHECK(setenv("RTM2_EMBEDDED_HTTP_AUTH", "ops:secret", 1) == 0);
    h_log("the embedded server's HTTP side on %s", addr);

    the_embedded_server_serves_http_when_asked();
    passed++;
    h_log("ok the_embedded_server_serves_http_when_asked");
    return h_finish("test_embedded_http", passed);
}
