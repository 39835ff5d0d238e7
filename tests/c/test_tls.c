/* TLS through the C API: a `tls://` endpoint verified against the CA file given with
 * rtm2_client_set_parameters; without it the server is refused with 10007.
 *
 *   test_tls --rtm2 PATH        (needs the openssl command to make a certificate) */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

static pid_t g_server = 0;
static char g_dir[64];

/* Starts `rtm2 serve` with a TLS listener; writes "tls://HOST:PORT" to `endpoint`. */
static int start_tls_server(const char *bin, const char *cert, const char *key, char *endpoint, size_t cap) {
    int fds[2];
    if (pipe(fds) != 0) return -1;
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        dup2(fds[1], 2);
        close(fds[0]);
        close(fds[1]);
        execl(bin, bin, "serve", "--listen", "127.0.0.1:0", "--no-rate-limits", "--tls-listen", "127.0.0.1:0",
              "--tls-cert", cert, "--tls-key", key, (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    g_server = pid;
    char buf[4096];
    size_t len = 0;
    int64_t deadline = h_now_ms() + H_WAIT_MS;
    while (h_now_ms() < deadline) {
        struct pollfd p = {fds[0], POLLIN, 0};
        if (poll(&p, 1, (int)(deadline - h_now_ms())) <= 0) break;
        ssize_t n = read(fds[0], buf + len, sizeof buf - 1 - len);
        if (n <= 0) break;
        len += (size_t)n;
        buf[len] = 0;
        char *tls = strstr(buf, " (tls)");
        if (tls) {
            char *start = tls;
            while (start > buf && start[-1] != ' ') start--;
            *tls = 0;
            snprintf(endpoint, cap, "tls://%s", start);
            return 0; /* the pipe stays open: the server's later log lines go nowhere */
        }
    }
    return -1;
}

static void cleanup(void) {
    if (g_server > 0) {
        kill(g_server, SIGKILL);
        waitpid(g_server, NULL, 0);
        g_server = 0;
    }
    char cmd[160];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    if (g_dir[0]) (void)system(cmd);
}

int main(int argc, char **argv) {
    h_init();
    if (argc != 3 || strcmp(argv[1], "--rtm2") != 0) {
        fprintf(stderr, "usage: %s --rtm2 PATH\n", argv[0]);
        return 2;
    }
    snprintf(g_dir, sizeof g_dir, "/tmp/rtm2-c-tls-XXXXXX");
    if (!mkdtemp(g_dir)) h_fail(__FILE__, __LINE__, "mkdtemp: %s", strerror(errno));
    atexit(cleanup);
    char cert[128], key[128], cmd[1024], ca_json[256], endpoint[96];
    snprintf(cert, sizeof cert, "%s/cert.pem", g_dir);
    snprintf(key, sizeof key, "%s/key.pem", g_dir);
    snprintf(cmd, sizeof cmd,
             "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout '%s' -out '%s' "
             "-days 2 -subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1 "
             "-addext basicConstraints=critical,CA:FALSE >/dev/null 2>&1",
             key, cert);
    if (system(cmd) != 0) h_fail(__FILE__, __LINE__, "openssl could not make a certificate");
    if (start_tls_server(argv[2], cert, key, endpoint, sizeof endpoint) != 0)
        h_fail(__FILE__, __LINE__, "rtm2 serve did not start its TLS listener");
    h_log("TLS endpoint %s", endpoint);
    snprintf(ca_json, sizeof ca_json, "{\"tls_ca_file\": \"%s\"}", cert);
    int passed = 0;

    /* With the CA file: log in and exchange a message. */
    h_recorder ra, rb;
    h_recorder_init(&ra);
    h_recorder_init(&rb);
    rtm2_client *a = h_new_client("tls-alice", endpoint, &ra);
    rtm2_client *b = h_new_client("tls-bob", endpoint, &rb);
    CHECK_OK(rtm2_client_set_parameters(a, ca_json));
    CHECK_OK(rtm2_client_set_parameters(b, ca_json));
    h_call k;
    h_call_init(&k);
    CHECK_INT(OP(k, rtm2_client_login(a, NULL, h_complete, &k, NULL)), RTM2_OK);
    CHECK_INT(OP(k, rtm2_client_login(b, NULL, h_complete, &k, NULL)), RTM2_OK);
    CHECK_INT(OP(k, rtm2_client_subscribe(b, "secure", RTM2_SUBSCRIBE_DEFAULT, h_complete, &k, NULL)), RTM2_OK);
    CHECK_INT(OP(k, rtm2_client_publish(a, "secure", "over tls", 8, NULL, h_complete, &k, NULL)), RTM2_OK);
    h_event_free(h_expect(&rb, H_EV_MESSAGE, h_match_text, "over tls"));
    passed++;

    /* Without it: refused at once with 10007, and a reason that names the certificate. */
    h_recorder rc;
    h_recorder_init(&rc);
    rtm2_client *c = h_new_client("tls-eve", endpoint, &rc);
    CHECK_INT(OP(k, rtm2_client_login(c, NULL, h_complete, &k, NULL)), 10007);
    passed++;

    h_call_destroy(&k);
    rtm2_client_free(a);
    rtm2_client_free(b);
    rtm2_client_free(c);
    h_recorder_destroy(&ra);
    h_recorder_destroy(&rb);
    h_recorder_destroy(&rc);
    return h_finish("test_tls", passed);
}
