/* The C runner of the language-neutral conformance scenarios (tests/conformance/README.md),
 * through the public C API only.
 *
 *   rtm2_conformance --rtm2 PATH/TO/rtm2 SCENARIO.scn     (a fresh `rtm2 serve` per scenario)
 *   rtm2_conformance --embedded SCENARIO.scn              (`server dev` = the embedded default;
 *                                                          scenarios needing a standalone server —
 *                                                          cert, rate limits, server options,
 *                                                          restart, ghosts — exit 77 = skip)
 *   rtm2_conformance --rtm2 PATH/TO/rtm2 --cluster PATH/TO/tests/conformance/cluster.py SCENARIO.scn
 *                                                         (a fresh 3-node cluster per scenario,
 *                                                          the i-th client or ghost on node i mod 3;
 *                                                          exit 77 = skip without a nats-server —
 *                                                          RTM2_NATS_SERVER, else the repository's
 *                                                          .venv-nats/bin/nats-server — and for the
 *                                                          scenarios of CLUSTER_PENDING)
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <ctype.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

#define MAX_WORDS 128
#define MAX_CLIENTS 16
#define MAX_STREAMS 32
#define SKIP 77

typedef struct named {
    uint32_t value;
    const char *name;
} named;

#define N(prefix, x) {prefix##x, #x}
static const named CHANNEL_TYPES[] = {N(RTM2_CHANNEL_TYPE_, NONE), N(RTM2_CHANNEL_TYPE_, MESSAGE),
                                      N(RTM2_CHANNEL_TYPE_, STREAM), N(RTM2_CHANNEL_TYPE_, USER), {0, NULL}};
static const named MESSAGE_TYPES[] = {N(RTM2_MESSAGE_TYPE_, BINARY), N(RTM2_MESSAGE_TYPE_, STRING), {0, NULL}};
static const named TOPIC_TYPES[] = {N(RTM2_TOPIC_EVENT_TYPE_, NONE), N(RTM2_TOPIC_EVENT_TYPE_, SNAPSHOT),
                                    N(RTM2_TOPIC_EVENT_TYPE_, REMOTE_JOIN), N(RTM2_TOPIC_EVENT_TYPE_, REMOTE_LEAVE),
                                    {0, NULL}};
static const named SERVICES[] = {N(RTM2_SERVICE_TYPE_, NONE), N(RTM2_SERVICE_TYPE_, MESSAGE),
                                 N(RTM2_SERVICE_TYPE_, STREAM), {0, NULL}};
static const named LINK_STATES[] = {N(RTM2_LINK_STATE_, IDLE),         N(RTM2_LINK_STATE_, CONNECTING),
                                    N(RTM2_LINK_STATE_, CONNECTED),    N(RTM2_LINK_STATE_, DISCONNECTED),
                                    N(RTM2_LINK_STATE_, SUSPENDED),    N(RTM2_LINK_STATE_, FAILED),
                                    {0, NULL}};
static const named LINK_REASONS[] = {
    N(RTM2_LINK_REASON_, UNKNOWN), N(RTM2_LINK_REASON_, LOGIN), N(RTM2_LINK_REASON_, LOGIN_SUCCESS),
    N(RTM2_LINK_REASON_, LOGIN_TIMEOUT), N(RTM2_LINK_REASON_, LOGIN_NOT_AUTHORIZED),
    N(RTM2_LINK_REASON_, LOGIN_REJECTED), N(RTM2_LINK_REASON_, RELOGIN), N(RTM2_LINK_REASON_, LOGOUT),
    N(RTM2_LINK_REASON_, AUTO_RECONNECT), N(RTM2_LINK_REASON_, RECONNECT_TIMEOUT),
    N(RTM2_LINK_REASON_, RECONNECT_SUCCESS), N(RTM2_LINK_REASON_, JOIN), N(RTM2_LINK_REASON_, JOIN_SUCCESS),
    N(RTM2_LINK_REASON_, JOIN_FAILED), N(RTM2_LINK_REASON_, REJOIN), N(RTM2_LINK_REASON_, LEAVE),
    N(RTM2_LINK_REASON_, INVALID_TOKEN), N(RTM2_LINK_REASON_, TOKEN_EXPIRED),
    N(RTM2_LINK_REASON_, INCONSISTENT_APP_ID), N(RTM2_LINK_REASON_, INVALID_CHANNEL_NAME),
    N(RTM2_LINK_REASON_, INVALID_USER_ID), N(RTM2_LINK_REASON_, NOT_INITIALIZED),
    N(RTM2_LINK_REASON_, RTM_SERVICE_NOT_CONNECTED), N(RTM2_LINK_REASON_, CHANNEL_INSTANCE_EXCEED_LIMITATION),
    N(RTM2_LINK_REASON_, OPERATION_RATE_EXCEED_LIMITATION), N(RTM2_LINK_REASON_, CHANNEL_IN_ERROR_STATE),
    N(RTM2_LINK_REASON_, PRESENCE_NOT_CONNECTED), N(RTM2_LINK_REASON_, SAME_UID_LOGIN),
    N(RTM2_LINK_REASON_, KICKED_OUT_BY_SERVER), N(RTM2_LINK_REASON_, KEEP_ALIVE_TIMEOUT),
    N(RTM2_LINK_REASON_, CONNECTION_ERROR), N(RTM2_LINK_REASON_, PRESENCE_NOT_READY),
    N(RTM2_LINK_REASON_, NETWORK_CHANGE), N(RTM2_LINK_REASON_, SERVICE_NOT_SUPPORTED),
    N(RTM2_LINK_REASON_, STREAM_CHANNEL_NOT_AVAILABLE), N(RTM2_LINK_REASON_, STORAGE_NOT_AVAILABLE),
    N(RTM2_LINK_REASON_, LOCK_NOT_AVAILABLE), N(RTM2_LINK_REASON_, LOGIN_TOO_FREQUENT), {0, NULL}};

static const named PRESENCE_TYPES[] = {
    N(RTM2_PRESENCE_EVENT_TYPE_, NONE),         N(RTM2_PRESENCE_EVENT_TYPE_, SNAPSHOT),
    N(RTM2_PRESENCE_EVENT_TYPE_, INTERVAL),     N(RTM2_PRESENCE_EVENT_TYPE_, REMOTE_JOIN),
    N(RTM2_PRESENCE_EVENT_TYPE_, REMOTE_LEAVE), N(RTM2_PRESENCE_EVENT_TYPE_, REMOTE_TIMEOUT),
    N(RTM2_PRESENCE_EVENT_TYPE_, REMOTE_STATE_CHANGED), N(RTM2_PRESENCE_EVENT_TYPE_, ERROR_OUT_OF_SERVICE),
    {0, NULL}};
static const named STORAGE_TYPES[] = {N(RTM2_STORAGE_TYPE_, NONE), N(RTM2_STORAGE_TYPE_, USER),
                                      N(RTM2_STORAGE_TYPE_, CHANNEL), {0, NULL}};
static const named STORAGE_EVENT_TYPES[] = {
    N(RTM2_STORAGE_EVENT_TYPE_, NONE), N(RTM2_STORAGE_EVENT_TYPE_, SNAPSHOT), N(RTM2_STORAGE_EVENT_TYPE_, SET),
    N(RTM2_STORAGE_EVENT_TYPE_, UPDATE), N(RTM2_STORAGE_EVENT_TYPE_, REMOVE), {0, NULL}};
static const named LOCK_TYPES[] = {N(RTM2_LOCK_EVENT_TYPE_, NONE),     N(RTM2_LOCK_EVENT_TYPE_, SNAPSHOT),
                                   N(RTM2_LOCK_EVENT_TYPE_, SET),      N(RTM2_LOCK_EVENT_TYPE_, REMOVED),
                                   N(RTM2_LOCK_EVENT_TYPE_, ACQUIRED), N(RTM2_LOCK_EVENT_TYPE_, RELEASED),
                                   N(RTM2_LOCK_EVENT_TYPE_, EXPIRED),  {0, NULL}};

static const char *name_of(const named *t, uint32_t v) {
    for (; t->name; t++)
        if (t->value == v) return t->name;
    return "?";
}

/* ---- scenario text ---- */

static const char *g_file = "";
static int g_line = 0;

#define SFAIL(...)                                                       \
    do {                                                                 \
        fprintf(stderr, "%s:%d: ", g_file, g_line);                      \
        h_fail(__FILE__, __LINE__, __VA_ARGS__);                         \
    } while (0)

typedef struct words {
    int n;
    char *w[MAX_WORDS];
} words;

static void words_free(words *ws) {
    for (int i = 0; i < ws->n; i++) free(ws->w[i]);
    ws->n = 0;
}

/* Splits a line into words; double quotes group, with \" \\ \n escapes. */
static void split(const char *line, words *out) {
    out->n = 0;
    size_t cap = strlen(line) + 1;
    const char *p = line;
    while (*p) {
        while (*p == ' ' || *p == '\t') p++;
        if (!*p) break;
        char *cur = (char *)calloc(1, cap);
        size_t len = 0;
        while (*p && *p != ' ' && *p != '\t') {
            if (*p == '"') {
                p++;
                while (*p && *p != '"') {
                    if (*p == '\\') {
                        p++;
                        if (*p == 'n') cur[len++] = '\n';
                        else if (*p == '"' || *p == '\\') cur[len++] = *p;
                        else SFAIL("bad escape");
                        p++;
                    } else {
                        cur[len++] = *p++;
                    }
                }
                if (*p != '"') SFAIL("unterminated quote");
                p++;
            } else {
                cur[len++] = *p++;
            }
        }
        if (out->n >= MAX_WORDS) SFAIL("too many words");
        out->w[out->n++] = cur;
    }
}

/* "size:N" stands for N 'x' characters; returns a new string. */
static char *expand(const char *v) {
    if (strncmp(v, "size:", 5) == 0 && isdigit((unsigned char)v[5])) {
        size_t n = (size_t)strtoul(v + 5, NULL, 10);
        char *s = (char *)malloc(n + 1);
        memset(s, 'x', n);
        s[n] = 0;
        return s;
    }
    return strdup(v);
}

typedef struct step {
    char *actor, *op;
    int nargs;
    char *args[MAX_WORDS];
    int nopts;
    char *keys[MAX_WORDS];
    char *vals[MAX_WORDS];
    int expect_error; /* 0 = ok */
} step;

static void step_free(step *s) {
    free(s->actor);
    free(s->op);
    for (int i = 0; i < s->nargs; i++) free(s->args[i]);
    for (int i = 0; i < s->nopts; i++) {
        free(s->keys[i]);
        free(s->vals[i]);
    }
}

static int is_key(const char *w, size_t len) {
    if (len == 0) return 0;
    for (size_t i = 0; i < len; i++)
        if (!isalnum((unsigned char)w[i]) && w[i] != '_') return 0;
    return 1;
}

static void parse_step(words *ws, step *s) {
    memset(s, 0, sizeof *s);
    int n = ws->n;
    for (int i = 0; i < ws->n; i++) {
        if (strcmp(ws->w[i], "->") == 0) {
            n = i;
            if (i + 1 < ws->n && strcmp(ws->w[i + 1], "ok") == 0 && i + 2 == ws->n) break;
            if (i + 2 < ws->n && strcmp(ws->w[i + 1], "error") == 0 && i + 3 == ws->n) {
                s->expect_error = atoi(ws->w[i + 2]);
                break;
            }
            SFAIL("bad outcome");
        }
    }
    if (n < 2) SFAIL("a step needs an actor and an operation");
    s->actor = strdup(ws->w[0]);
    s->op = strdup(ws->w[1]);
    for (int i = 2; i < n; i++) {
        const char *w = ws->w[i];
        const char *eq = strchr(w, '=');
        if (eq && is_key(w, (size_t)(eq - w))) {
            s->keys[s->nopts] = strndup(w, (size_t)(eq - w));
            s->vals[s->nopts] = expand(eq + 1);
            s->nopts++;
        } else {
            s->args[s->nargs++] = expand(w);
        }
    }
}

static const char *opt(const step *s, const char *key) {
    for (int i = 0; i < s->nopts; i++)
        if (strcmp(s->keys[i], key) == 0) return s->vals[i];
    return NULL;
}

static const char *arg(const step *s, int i) {
    if (i >= s->nargs) SFAIL("missing argument %d", i);
    return s->args[i];
}

/* Splits "a,b,c" into a string array (empty string = none). Returns the count. */
static size_t split_list(const char *v, char ***out) {
    *out = NULL;
    if (!v || !*v) return 0;
    size_t n = 1;
    for (const char *p = v; *p; p++)
        if (*p == ',') n++;
    char **a = (char **)calloc(n, sizeof *a);
    const char *start = v;
    for (size_t i = 0; i < n; i++) {
        const char *end = strchr(start, ',');
        size_t len = end ? (size_t)(end - start) : strlen(start);
        a[i] = strndup(start, len);
        start = end ? end + 1 : start + len;
    }
    *out = a;
    return n;
}

static void free_list(char **a, size_t n) {
    for (size_t i = 0; i < n; i++) free(a[i]);
    free(a);
}

/* ---- the runner ---- */

typedef struct stream_handle {
    char name[128];
    rtm2_stream_channel *sc;
} stream_handle;

typedef struct client {
    char name[64], user[128];
    rtm2_client *c;
    h_recorder rec;
    int nstreams;
    stream_handle streams[MAX_STREAMS];
    /* The operation of `start`, until `finish`: its step, its completion (heap: it must outlive
     * the client if never finished), or the status it failed to start with. */
    int has_started, started_immediate;
    int32_t started_status;
    step started_step;
    h_call *started;
} client;

typedef struct ghost {
    char name[64];
    h_ghost g;
} ghost;

static const char *g_rtm2 = NULL;
static int g_embedded = 0;
static int g_cert = 0, g_notice = 30, g_rate_limits = 0;
static h_server g_server;
static char g_endpoint[64] = "embedded";
static int g_nclients = 0;
static client g_clients[MAX_CLIENTS];
static int g_nghosts = 0;
static ghost g_ghosts[MAX_CLIENTS];
/* Extra `rtm2 serve` arguments of the `server` step (kept for `server restart`). */
static char g_server_opts[8][32];
static const char *g_server_args[9];

/* ---- cluster mode: tests/conformance/cluster.py (NATS + CLUSTER_NODES `rtm2 serve --cluster`) ---- */

#define CLUSTER_NODES 3

/* The scenarios that do not pass against a cluster yet, with the reason: skipped in cluster
 * mode (exit 77, the reason printed), never counted as passing. The same list in every runner. */
static const struct {
    const char *file, *reason;
} CLUSTER_PENDING[] = {
    /* (empty today; the sentinel keeps the array valid C) */
    {NULL, NULL},
};

static const char *g_cluster_py = NULL; /* cluster mode: the path of cluster.py */
static char g_nats[4096];               /* its nats-server */
static pid_t g_cluster_pid = 0;
static FILE *g_cluster_in = NULL, *g_cluster_out = NULL;
static char g_nodes[CLUSTER_NODES][64];
static int g_next_node = 0;

/* The nats-server of cluster mode: RTM2_NATS_SERVER, else .venv-nats/bin/nats-server of the
 * repository (the directory three levels above cluster.py) if it exists; 0 if neither. */
static int find_nats(void) {
    const char *env = getenv("RTM2_NATS_SERVER");
    if (env && *env) {
        snprintf(g_nats, sizeof g_nats, "%s", env);
        return 1;
    }
    const char *suffix = "tests/conformance/cluster.py";
    size_t len = strlen(g_cluster_py), slen = strlen(suffix);
    if (len < slen || strcmp(g_cluster_py + len - slen, suffix) != 0) return 0;
    snprintf(g_nats, sizeof g_nats, "%.*s.venv-nats/bin/nats-server", (int)(len - slen), g_cluster_py);
    struct stat st;
    return stat(g_nats, &st) == 0;
}

/* Reads cluster.py's `node HOST:PORT` lines up to `ready` (it bounds the wait itself). */
static void cluster_wait_ready(void) {
    char line[256];
    int n = 0;
    while (fgets(line, sizeof line, g_cluster_out)) {
        line[strcspn(line, "\r\n")] = 0;
        if (strncmp(line, "node ", 5) == 0 && n < CLUSTER_NODES) {
            snprintf(g_nodes[n++], sizeof g_nodes[0], "%s", line + 5);
        } else if (strcmp(line, "ready") == 0) {
            if (n != CLUSTER_NODES) SFAIL("cluster.py started %d nodes, not %d", n, CLUSTER_NODES);
            return;
        }
    }
    SFAIL("cluster.py ended before its nodes were ready (its log is above)");
}

/* Starts cluster.py with these `rtm2 serve` flags (NULL-terminated) and waits for its nodes. */
static void cluster_start(const char *const *flags) {
    int to_child[2], from_child[2];
    if (pipe(to_child) != 0 || pipe(from_child) != 0) SFAIL("pipe");
    const char *argv[64];
    int n = 0;
    argv[n++] = "python3";
    argv[n++] = g_cluster_py;
    argv[n++] = "--nodes";
    argv[n++] = "3";
    argv[n++] = "--";
    for (int i = 0; flags[i] && n < 63; i++) argv[n++] = flags[i];
    argv[n] = NULL;
    pid_t pid = fork();
    if (pid < 0) SFAIL("fork");
    if (pid == 0) {
        dup2(to_child[0], 0);
        dup2(from_child[1], 1);
        close(to_child[0]);
        close(to_child[1]);
        close(from_child[0]);
        close(from_child[1]);
        setenv("RTM2_BIN", g_rtm2, 1);
        setenv("RTM2_NATS_SERVER", g_nats, 1);
        execvp("python3", (char *const *)argv);
        fprintf(stderr, "cannot run python3: %s\n", strerror(errno));
        _exit(127);
    }
    close(to_child[0]);
    close(from_child[1]);
    g_cluster_pid = pid;
    g_cluster_in = fdopen(to_child[1], "w");
    g_cluster_out = fdopen(from_child[0], "r");
    cluster_wait_ready();
}

/* Restarts every node on its port (same NATS). */
static void cluster_restart(void) {
    if (fputs("restart\n", g_cluster_in) == EOF || fflush(g_cluster_in) != 0) SFAIL("cluster.py is gone");
    cluster_wait_ready();
}

/* Stops the nodes and NATS (cluster.py stops them by pid); kills cluster.py if it does not end. */
static void cluster_stop(void) {
    if (!g_cluster_pid) return;
    fputs("stop\n", g_cluster_in);
    fclose(g_cluster_in);
    int64_t deadline = h_now_ms() + 30000;
    while (waitpid(g_cluster_pid, NULL, WNOHANG) != g_cluster_pid) {
        if (h_now_ms() > deadline) {
            kill(g_cluster_pid, SIGKILL);
            waitpid(g_cluster_pid, NULL, 0);
            break;
        }
        h_sleep_ms(20); /* polling a process exit; not test synchronisation */
    }
    fclose(g_cluster_out);
    g_cluster_pid = 0;
}

/* The endpoint of the next client or ghost: node i mod CLUSTER_NODES for the i-th of them. */
static const char *next_node(void) { return g_nodes[g_next_node++ % CLUSTER_NODES]; }

static client *find_client(const char *name) {
    for (int i = 0; i < g_nclients; i++)
        if (strcmp(g_clients[i].name, name) == 0) return &g_clients[i];
    SFAIL("unknown client %s", name);
}

/* The stream channel handle (made on first use); 0 or the status of making it. */
static int32_t stream_of(client *cl, const char *name, rtm2_stream_channel **out) {
    for (int i = 0; i < cl->nstreams; i++) {
        if (strcmp(cl->streams[i].name, name) == 0) {
            *out = cl->streams[i].sc;
            return RTM2_OK;
        }
    }
    rtm2_stream_channel *sc = NULL;
    int32_t st = rtm2_client_create_stream_channel(cl->c, name, &sc);
    if (st != RTM2_OK) return st;
    if (cl->nstreams >= MAX_STREAMS) SFAIL("too many stream channels");
    snprintf(cl->streams[cl->nstreams].name, sizeof cl->streams[0].name, "%s", name);
    cl->streams[cl->nstreams++].sc = sc;
    *out = sc;
    return RTM2_OK;
}

/* A token of the given kind (README "Tokens"); free with rtm2_string_free (may be NULL for ""). */
static char *make_token(const char *kind, const char *user, const char *channel) {
    if (!kind) kind = "auto";
    unsigned secs = 3600;
    const char *u = user;
    if (strcmp(kind, "auto") == 0) {
        if (!g_cert) return NULL;
    } else if (strcmp(kind, "none") == 0) {
        return NULL;
    } else if (strcmp(kind, "bad") == 0) {
        return strdup("007garbage");
    } else if (strcmp(kind, "expired") == 0) {
        secs = 0;
    } else if (strcmp(kind, "other") == 0) {
        u = "someone-else";
    } else if (strncmp(kind, "short:", 6) == 0) {
        secs = (unsigned)atoi(kind + 6);
    } else {
        SFAIL("unknown token kind %s", kind);
    }
    char *t = NULL;
    if (channel) CHECK_OK(rtm2_stream_token_build(H_APP_ID, H_APP_CERT, channel, u, secs, &t));
    else CHECK_OK(rtm2_token_build(H_APP_ID, H_APP_CERT, u, secs, &t));
    return t;
}

static void free_token(char *t) {
    /* Tokens from the builders are SDK strings; "bad" is ours. */
    if (t && strcmp(t, "007garbage") == 0) free(t);
    else rtm2_string_free(t);
}

static int flag(const step *s, const char *k, int def) {
    const char *v = opt(s, k);
    return v ? strcmp(v, "true") == 0 : def;
}

static size_t unhex(const char *s, unsigned char *out, size_t cap) {
    size_t n = strlen(s) / 2;
    if (n > cap) SFAIL("hex too long");
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        if (sscanf(s + 2 * i, "%2x", &v) != 1) SFAIL("bad hex");
        out[i] = (unsigned char)v;
    }
    return n;
}

/* ---- arguments of the presence, storage and lock steps ---- */

static uint32_t channel_type_opt(const step *s) {
    const char *v = opt(s, "channel_type");
    if (!v || strcmp(v, "MESSAGE") == 0) return RTM2_CHANNEL_TYPE_MESSAGE;
    if (strcmp(v, "STREAM") == 0) return RTM2_CHANNEL_TYPE_STREAM;
    if (strcmp(v, "USER") == 0) return RTM2_CHANNEL_TYPE_USER;
    if (strcmp(v, "NONE") == 0) return RTM2_CHANNEL_TYPE_NONE;
    SFAIL("unknown channel_type %s", v);
}

static long long num_opt(const step *s, const char *key, long long def) {
    const char *v = opt(s, key);
    return v ? strtoll(v, NULL, 10) : def;
}

static char *repeat_x(size_t n) {
    char *s = (char *)malloc(n + 1);
    memset(s, 'x', n);
    s[n] = 0;
    return s;
}

/* key:value pairs from `list_key` ("k:v,...") or the generators count=N, big_key=N,
 * big_value=N; returns the count (free with free_pairs). */
static size_t pairs_of(const step *s, const char *list_key, char ***keys, char ***values) {
    const char *g;
    size_t n = 0;
    if ((g = opt(s, "count")) != NULL) {
        n = (size_t)atoi(g);
        *keys = (char **)calloc(n + 1, sizeof **keys);
        *values = (char **)calloc(n + 1, sizeof **values);
        for (size_t i = 0; i < n; i++) {
            char k[32];
            snprintf(k, sizeof k, "k%zu", i);
            (*keys)[i] = strdup(k);
            (*values)[i] = strdup("v");
        }
        return n;
    }
    *keys = (char **)calloc(2, sizeof **keys);
    *values = (char **)calloc(2, sizeof **values);
    if ((g = opt(s, "big_key")) != NULL) {
        (*keys)[0] = repeat_x((size_t)atoi(g));
        (*values)[0] = strdup("v");
        return 1;
    }
    if ((g = opt(s, "big_value")) != NULL) {
        char k[32];
        snprintf(k, sizeof k, "big%d", atoi(g));
        (*keys)[0] = strdup(k);
        (*values)[0] = repeat_x((size_t)atoi(g));
        return 1;
    }
    free(*keys);
    free(*values);
    char **list;
    n = split_list(opt(s, list_key), &list);
    *keys = (char **)calloc(n + 1, sizeof **keys);
    *values = (char **)calloc(n + 1, sizeof **values);
    for (size_t i = 0; i < n; i++) {
        char *colon = strchr(list[i], ':');
        if (!colon) SFAIL("%s: \"%s\" is not key:value", list_key, list[i]);
        (*keys)[i] = strndup(list[i], (size_t)(colon - list[i]));
        (*values)[i] = strdup(colon + 1);
    }
    free_list(list, n);
    return n;
}

static void free_pairs(char **keys, char **values, size_t n) {
    free_list(keys, n);
    free_list(values, n);
}

/* Every item of the list `want` is in the list `have`. */
static int subset(const char *want, const char *have) {
    char **w, **h;
    size_t nw = split_list(want, &w), nh = split_list(have, &h);
    int ok = 1;
    for (size_t i = 0; ok && i < nw; i++) {
        int found = 0;
        for (size_t j = 0; !found && j < nh; j++) found = strcmp(w[i], h[j]) == 0;
        ok = found;
    }
    free_list(w, nw);
    free_list(h, nh);
    return ok;
}

static void check_set(const char *what, const char *have, const char *want) {
    if (want && !h_same_set(have, want)) SFAIL("%s [%s], expected [%s]", what, have, want);
}

static void check_num(const char *what, long long have, const step *s, const char *key) {
    const char *want = opt(s, key);
    if (want && have != strtoll(want, NULL, 10)) SFAIL("%s is %lld, expected %s", what, have, want);
}

typedef int32_t (*meta_write_fn)(rtm2_client *, const char *, uint32_t, const rtm2_metadata_item *, size_t,
                                 const rtm2_metadata_options *, rtm2_completion_cb, void *, uint64_t *);
typedef int32_t (*user_meta_write_fn)(rtm2_client *, const char *, const rtm2_metadata_item *, size_t,
                                      const rtm2_metadata_options *, rtm2_completion_cb, void *, uint64_t *);

/* Starts a metadata write step (set/update/remove, channel or user). */
static int32_t begin_metadata_write(client *cl, const step *s, h_call *k) {
    const char *o = s->op;
    int remove = strncmp(o, "remove_", 7) == 0;
    int user = strstr(o, "_user_") != NULL;
    char **keys = NULL, **values = NULL;
    size_t n;
    if (remove) {
        n = split_list(opt(s, "keys"), &keys);
    } else {
        n = pairs_of(s, "items", &keys, &values);
    }
    rtm2_metadata_item *items = (rtm2_metadata_item *)calloc(n + 1, sizeof *items);
    long long revision = num_opt(s, "revision", -1);
    for (size_t i = 0; i < n; i++) {
        items[i].key = keys[i];
        items[i].value = remove ? NULL : values[i];
        items[i].revision = revision;
    }
    rtm2_metadata_options mo;
    rtm2_metadata_options_init(&mo);
    mo.major_revision = num_opt(s, "major", -1);
    mo.lock_name = opt(s, "lock");
    mo.record_ts = flag(s, "record_ts", 0);
    mo.record_author = flag(s, "record_author", 0);
    int32_t st;
    if (user) {
        user_meta_write_fn f = strncmp(o, "set_", 4) == 0      ? rtm2_storage_set_user_metadata
                               : strncmp(o, "update_", 7) == 0 ? rtm2_storage_update_user_metadata
                                                               : rtm2_storage_remove_user_metadata;
        st = f(cl->c, arg(s, 0), items, n, &mo, h_complete, k, NULL);
    } else {
        meta_write_fn f = strncmp(o, "set_", 4) == 0      ? rtm2_storage_set_channel_metadata
                          : strncmp(o, "update_", 7) == 0 ? rtm2_storage_update_channel_metadata
                                                          : rtm2_storage_remove_channel_metadata;
        st = f(cl->c, arg(s, 0), channel_type_opt(s), items, n, &mo, h_complete, k, NULL);
    }
    free(items);
    if (remove) free_list(keys, n);
    else free_pairs(keys, values, n);
    return st;
}

static void check_op(const step *s, h_call *k);

/* Starts the operation of a step. Returns RTM2_OK when an asynchronous operation started (`k`
 * will complete); otherwise sets *immediate and returns the status of the call. */
static int32_t begin_op(client *cl, const step *s, h_call *k, int *immediate) {
    const char *o = s->op;
    rtm2_stream_channel *sc = NULL;
    int32_t st = RTM2_OK;
    *immediate = 0;
    if (strcmp(o, "login") == 0) {
        char *t = make_token(opt(s, "token"), cl->user, NULL);
        st = rtm2_client_login(cl->c, t, h_complete, k, NULL);
        free_token(t);
    } else if (strcmp(o, "logout") == 0) {
        st = rtm2_client_logout(cl->c, h_complete, k, NULL);
    } else if (strcmp(o, "renew_token") == 0) {
        const char *ch = opt(s, "channel");
        char *t = make_token(opt(s, "token"), cl->user, ch);
        if (ch) {
            st = stream_of(cl, ch, &sc);
            if (st == RTM2_OK) st = rtm2_stream_channel_renew_token(sc, t ? t : "", h_complete, k, NULL);
        } else {
            st = rtm2_client_renew_token(cl->c, t ? t : "", h_complete, k, NULL);
        }
        free_token(t);
    } else if (strcmp(o, "set_parameters") == 0) {
        *immediate = 1;
        return rtm2_client_set_parameters(cl->c, arg(s, 0));
    } else if (strcmp(o, "subscribe") == 0) {
        uint32_t flags = 0;
        if (flag(s, "with_message", 1)) flags |= RTM2_SUBSCRIBE_WITH_MESSAGE;
        if (flag(s, "with_presence", 1)) flags |= RTM2_SUBSCRIBE_WITH_PRESENCE;
        if (flag(s, "with_metadata", 0)) flags |= RTM2_SUBSCRIBE_WITH_METADATA;
        if (flag(s, "with_lock", 0)) flags |= RTM2_SUBSCRIBE_WITH_LOCK;
        if (flag(s, "be_quiet", 0)) flags |= RTM2_SUBSCRIBE_BE_QUIET;
        st = rtm2_client_subscribe(cl->c, arg(s, 0), flags, h_complete, k, NULL);
    } else if (strcmp(o, "unsubscribe") == 0) {
        st = rtm2_client_unsubscribe(cl->c, arg(s, 0), h_complete, k, NULL);
    } else if (strcmp(o, "publish") == 0 || strcmp(o, "publish_binary") == 0 || strcmp(o, "publish_size") == 0) {
        rtm2_publish_options po;
        rtm2_publish_options_init(&po);
        const char *ct = opt(s, "channel_type");
        if (ct && strcmp(ct, "USER") == 0) po.channel_type = RTM2_CHANNEL_TYPE_USER;
        po.custom_type = opt(s, "custom_type");
        unsigned char *buf = NULL;
        size_t len = 0;
        if (strcmp(o, "publish") == 0) {
            po.message_type = RTM2_MESSAGE_TYPE_STRING;
            len = strlen(arg(s, 1));
            buf = (unsigned char *)strdup(arg(s, 1));
        } else if (strcmp(o, "publish_binary") == 0) {
            buf = (unsigned char *)malloc(strlen(arg(s, 1)) / 2 + 1);
            len = unhex(arg(s, 1), buf, strlen(arg(s, 1)) / 2 + 1);
        } else {
            po.message_type = RTM2_MESSAGE_TYPE_STRING;
            len = (size_t)strtoul(arg(s, 1), NULL, 10);
            buf = (unsigned char *)malloc(len + 1);
            memset(buf, 'x', len);
        }
        st = rtm2_client_publish(cl->c, arg(s, 0), buf, len, &po, h_complete, k, NULL);
        free(buf);
    } else if (strcmp(o, "join") == 0) {
        st = stream_of(cl, arg(s, 0), &sc);
        if (st == RTM2_OK) {
            uint32_t flags = 0;
            if (flag(s, "with_presence", 1)) flags |= RTM2_JOIN_WITH_PRESENCE;
            if (flag(s, "with_metadata", 0)) flags |= RTM2_JOIN_WITH_METADATA;
            if (flag(s, "with_lock", 0)) flags |= RTM2_JOIN_WITH_LOCK;
            if (flag(s, "be_quiet", 0)) flags |= RTM2_JOIN_BE_QUIET;
            char *t = make_token(opt(s, "token"), cl->user, arg(s, 0));
            st = rtm2_stream_channel_join(sc, t, flags, h_complete, k, NULL);
            free_token(t);
        }
    } else if (strcmp(o, "leave") == 0) {
        st = stream_of(cl, arg(s, 0), &sc);
        if (st == RTM2_OK) st = rtm2_stream_channel_leave(sc, h_complete, k, NULL);
    } else if (strcmp(o, "join_topic") == 0) {
        st = stream_of(cl, arg(s, 0), &sc);
        if (st == RTM2_OK) {
            rtm2_join_topic_options jo;
            rtm2_join_topic_options_init(&jo);
            jo.meta = opt(s, "meta");
            st = rtm2_stream_channel_join_topic(sc, arg(s, 1), &jo, h_complete, k, NULL);
        }
    } else if (strcmp(o, "leave_topic") == 0) {
        st = stream_of(cl, arg(s, 0), &sc);
        if (st == RTM2_OK) st = rtm2_stream_channel_leave_topic(sc, arg(s, 1), h_complete, k, NULL);
    } else if (strcmp(o, "publish_topic") == 0) {
        st = stream_of(cl, arg(s, 0), &sc);
        if (st == RTM2_OK) {
            rtm2_topic_message_options tm;
            rtm2_topic_message_options_init(&tm);
            tm.message_type = RTM2_MESSAGE_TYPE_STRING;
            tm.custom_type = opt(s, "custom_type");
            const char *text = arg(s, 2);
            st = rtm2_stream_channel_publish_topic(sc, arg(s, 1), text, strlen(text), &tm, h_complete, k, NULL);
        }
    } else if (strcmp(o, "subscribe_topic") == 0 || strcmp(o, "unsubscribe_topic") == 0) {
        st = stream_of(cl, arg(s, 0), &sc);
        if (st == RTM2_OK) {
            char **users;
            size_t n = split_list(opt(s, "users"), &users);
            if (strcmp(o, "subscribe_topic") == 0)
                st = rtm2_stream_channel_subscribe_topic(sc, arg(s, 1), (const char *const *)users, n, h_complete, k,
                                                         NULL);
            else
                st = rtm2_stream_channel_unsubscribe_topic(sc, arg(s, 1), (const char *const *)users, n, h_complete,
                                                           k, NULL);
            free_list(users, n);
        }
    } else if (strcmp(o, "subscribed_users") == 0) {
        st = stream_of(cl, arg(s, 0), &sc);
        if (st == RTM2_OK) {
            /* Synchronous, as in every binding: the client knows its subscriptions. */
            rtm2_user_list *users = NULL;
            st = rtm2_stream_channel_subscribed_users(sc, arg(s, 1), &users);
            if (st == RTM2_OK) {
                h_join_names(k->users, sizeof k->users, users->users, users->count);
                k->has_users = 1;
                rtm2_user_list_free(users);
                check_op(s, k);
            }
        }
        *immediate = 1;
        return st;
    } else if (strcmp(o, "set_state") == 0) {
        char **keys, **values;
        size_t n = pairs_of(s, "states", &keys, &values);
        rtm2_state_item *items = (rtm2_state_item *)calloc(n + 1, sizeof *items);
        for (size_t i = 0; i < n; i++) {
            items[i].key = keys[i];
            items[i].value = values[i];
        }
        st = rtm2_presence_set_state(cl->c, arg(s, 0), channel_type_opt(s), items, n, h_complete, k, NULL);
        free(items);
        free_pairs(keys, values, n);
    } else if (strcmp(o, "get_state") == 0) {
        st = rtm2_presence_get_state(cl->c, arg(s, 0), channel_type_opt(s), arg(s, 1), h_complete, k, NULL);
    } else if (strcmp(o, "remove_state") == 0) {
        char **keys;
        size_t n = split_list(opt(s, "keys"), &keys);
        st = rtm2_presence_remove_state(cl->c, arg(s, 0), channel_type_opt(s), (const char *const *)keys, n,
                                        h_complete, k, NULL);
        free_list(keys, n);
    } else if (strcmp(o, "who_now") == 0) {
        rtm2_get_online_users_options wo;
        rtm2_get_online_users_options_init(&wo);
        wo.include_user_id = flag(s, "include_user_id", 1);
        wo.include_state = flag(s, "include_state", 0);
        st = rtm2_presence_who_now(cl->c, arg(s, 0), channel_type_opt(s), &wo, h_complete, k, NULL);
    } else if (strcmp(o, "where_now") == 0) {
        st = rtm2_presence_where_now(cl->c, arg(s, 0), h_complete, k, NULL);
    } else if (strstr(o, "_metadata") && (strncmp(o, "set_", 4) == 0 || strncmp(o, "update_", 7) == 0 ||
                                          strncmp(o, "remove_", 7) == 0)) {
        st = begin_metadata_write(cl, s, k);
    } else if (strcmp(o, "get_channel_metadata") == 0) {
        st = rtm2_storage_get_channel_metadata(cl->c, arg(s, 0), channel_type_opt(s), h_complete, k, NULL);
    } else if (strcmp(o, "get_user_metadata") == 0) {
        st = rtm2_storage_get_user_metadata(cl->c, arg(s, 0), h_complete, k, NULL);
    } else if (strcmp(o, "subscribe_user_metadata") == 0) {
        st = rtm2_storage_subscribe_user_metadata(cl->c, arg(s, 0), h_complete, k, NULL);
    } else if (strcmp(o, "unsubscribe_user_metadata") == 0) {
        st = rtm2_storage_unsubscribe_user_metadata(cl->c, arg(s, 0), h_complete, k, NULL);
    } else if (strcmp(o, "set_lock") == 0) {
        st = rtm2_lock_set(cl->c, arg(s, 0), channel_type_opt(s), arg(s, 1), (uint32_t)num_opt(s, "ttl", 0),
                           h_complete, k, NULL);
    } else if (strcmp(o, "remove_lock") == 0) {
        st = rtm2_lock_remove(cl->c, arg(s, 0), channel_type_opt(s), arg(s, 1), h_complete, k, NULL);
    } else if (strcmp(o, "acquire_lock") == 0) {
        st = rtm2_lock_acquire(cl->c, arg(s, 0), channel_type_opt(s), arg(s, 1), flag(s, "retry", 0), h_complete, k,
                               NULL);
    } else if (strcmp(o, "release_lock") == 0) {
        st = rtm2_lock_release(cl->c, arg(s, 0), channel_type_opt(s), arg(s, 1), h_complete, k, NULL);
    } else if (strcmp(o, "revoke_lock") == 0) {
        st = rtm2_lock_revoke(cl->c, arg(s, 0), channel_type_opt(s), arg(s, 1), arg(s, 2), h_complete, k, NULL);
    } else if (strcmp(o, "get_locks") == 0) {
        st = rtm2_lock_get_locks(cl->c, arg(s, 0), channel_type_opt(s), h_complete, k, NULL);
    } else {
        SFAIL("unknown operation %s", o);
    }
    if (st != RTM2_OK) *immediate = 1;
    return st;
}

/* Checks what a successful operation returned (the options of the step that name results). */
static void check_op(const step *s, h_call *k) {
    const char *o = s->op;
    const char *want;
    if (strcmp(o, "join") == 0) {
        if (!k->has_join || strcmp(k->join_channel, arg(s, 0)) != 0)
            SFAIL("join result missing or for another channel (%s)", k->join_channel);
    } else if (strcmp(o, "subscribe_topic") == 0) {
        if (!k->has_subscribe_topic) SFAIL("subscribe_topic result missing");
        want = opt(s, "succeeded");
        if (want && strcmp(want, k->succeeded) != 0) SFAIL("succeeded users [%s], expected [%s]", k->succeeded, want);
        want = opt(s, "failed");
        if (want && strcmp(want, k->failed) != 0) SFAIL("failed users [%s], expected [%s]", k->failed, want);
    } else if (strcmp(o, "subscribed_users") == 0) {
        if (!k->has_users) SFAIL("subscribed users missing");
        want = opt(s, "users");
        if (want && strcmp(want, k->users) != 0) SFAIL("subscribed users [%s], expected [%s]", k->users, want);
    } else if (strcmp(o, "who_now") == 0) {
        if (!k->has_online_users) SFAIL("who_now result missing");
        check_set("online users", h_s(k->online_users), opt(s, "users"));
        check_num("total occupancy", k->total_occupancy, s, "total");
    } else if (strcmp(o, "where_now") == 0) {
        if (!k->has_user_channels) SFAIL("where_now result missing");
        check_set("channels", h_s(k->user_channels), opt(s, "channels"));
    } else if (strcmp(o, "get_state") == 0) {
        if (!k->has_user_state) SFAIL("get_state result missing");
        if (strcmp(h_s(k->state_user), arg(s, 1)) != 0) SFAIL("state of %s, expected %s", k->state_user, arg(s, 1));
        check_set("states", h_s(k->states), opt(s, "states"));
    } else if (strstr(o, "_metadata") && strncmp(o, "get_", 4) != 0 && strstr(o, "subscribe") == NULL) {
        if (!k->has_metadata_write) SFAIL("%s result missing", o);
        check_num("major revision", k->write_major, s, "result_major");
        check_num("total count", k->write_total, s, "total");
    } else if (strncmp(o, "get_", 4) == 0 && strstr(o, "_metadata")) {
        if (!k->has_metadata) SFAIL("%s result missing", o);
        check_set("items", h_s(k->meta_items), opt(s, "items"));
        check_num("major revision", k->meta_major, s, "major");
        want = opt(s, "authors");
        if (want && !subset(want, h_s(k->meta_authors)))
            SFAIL("authors [%s] do not include [%s]", h_s(k->meta_authors), want);
        want = opt(s, "stamped");
        if (want && !subset(want, h_s(k->meta_stamped)))
            SFAIL("items with an update time [%s] do not include [%s]", h_s(k->meta_stamped), want);
    } else if (strcmp(o, "get_locks") == 0) {
        if (!k->has_locks) SFAIL("get_locks result missing");
        check_set("locks", h_s(k->locks), opt(s, "locks"));
    }
}

/* Runs one operation; returns its status (start failure or completion status). */
static int32_t run_op(client *cl, const step *s) {
    h_call k;
    h_call_init(&k);
    int immediate = 0;
    int32_t st = begin_op(cl, s, &k, &immediate);
    if (!immediate) {
        st = h_await(st, &k);
        if (st == RTM2_OK) check_op(s, &k);
        /* A failed completion carries a reason and the operation. */
        else if (k.reason[0] == 0) SFAIL("completion %d without a reason", (int)st);
    }
    h_call_destroy(&k);
    return st;
}

/* The field `key` of event `e` seen as `kind`, in `buf`; NULL if the key is unknown. */
static const char *field(const h_event *e, const char *kind, const char *key, char *buf, size_t cap) {
    buf[0] = 0;
    if (strcmp(kind, "message") == 0) {
        if (strcmp(key, "channel_type") == 0) return name_of(CHANNEL_TYPES, e->channel_type);
        if (strcmp(key, "channel") == 0) return e->channel;
        if (strcmp(key, "topic") == 0) return e->topic;
        if (strcmp(key, "publisher") == 0) return e->publisher;
        if (strcmp(key, "text") == 0) return e->message_type == RTM2_MESSAGE_TYPE_STRING ? (const char *)e->payload : "";
        if (strcmp(key, "hex") == 0) {
            for (size_t i = 0; i < e->payload_len; i++) h_append(buf, cap, "%02x", e->payload[i]);
            return buf;
        }
        if (strcmp(key, "message_type") == 0) return name_of(MESSAGE_TYPES, e->message_type);
        if (strcmp(key, "custom_type") == 0) return e->custom_type;
    } else if (strcmp(kind, "topic_event") == 0) {
        if (strcmp(key, "type") == 0) return name_of(TOPIC_TYPES, e->topic_type);
        if (strcmp(key, "channel") == 0) return e->channel;
        if (strcmp(key, "topic") == 0) return e->first_topic;
        if (strcmp(key, "meta") == 0) return e->first_meta;
        if (strcmp(key, "publisher") == 0)
            return e->topic_type == RTM2_TOPIC_EVENT_TYPE_SNAPSHOT ? e->first_user : e->publisher;
    } else if (strcmp(kind, "link_state") == 0) {
        if (strcmp(key, "service") == 0) return name_of(SERVICES, e->service);
        if (strcmp(key, "state") == 0) return name_of(LINK_STATES, e->current);
        if (strcmp(key, "reason") == 0) return name_of(LINK_REASONS, e->reason);
        if (strcmp(key, "channel") == 0) return e->channel;
    } else if (strcmp(kind, "token_will_expire") == 0) {
        if (strcmp(key, "channel") == 0) return e->channel;
    } else if (strcmp(kind, "presence") == 0) {
        if (strcmp(key, "type") == 0) return name_of(PRESENCE_TYPES, e->event_type);
        if (strcmp(key, "channel") == 0) return e->channel;
        if (strcmp(key, "channel_type") == 0) return name_of(CHANNEL_TYPES, e->channel_type);
        if (strcmp(key, "publisher") == 0) return e->publisher;
        if (strcmp(key, "states") == 0) return h_s(e->states);
        if (strcmp(key, "snapshot") == 0) return h_s(e->snapshot);
        if (strcmp(key, "joined") == 0) return h_s(e->joined);
        if (strcmp(key, "left") == 0) return h_s(e->left);
        if (strcmp(key, "timed_out") == 0) return h_s(e->timed_out);
        if (strcmp(key, "changed") == 0) return h_s(e->changed);
        if (strcmp(key, "total") == 0) {
            snprintf(buf, cap, "%u", e->total);
            return buf;
        }
    } else if (strcmp(kind, "storage") == 0) {
        if (strcmp(key, "type") == 0) return name_of(STORAGE_EVENT_TYPES, e->event_type);
        if (strcmp(key, "storage_type") == 0) return name_of(STORAGE_TYPES, e->storage_type);
        if (strcmp(key, "channel_type") == 0) return name_of(CHANNEL_TYPES, e->channel_type);
        if (strcmp(key, "target") == 0) return e->channel;
        if (strcmp(key, "publisher") == 0) return e->publisher;
        if (strcmp(key, "items") == 0) return h_s(e->items);
        if (strcmp(key, "major") == 0) {
            snprintf(buf, cap, "%lld", (long long)e->major);
            return buf;
        }
    } else if (strcmp(kind, "lock") == 0) {
        if (strcmp(key, "type") == 0) return name_of(LOCK_TYPES, e->event_type);
        if (strcmp(key, "channel") == 0) return e->channel;
        if (strcmp(key, "channel_type") == 0) return name_of(CHANNEL_TYPES, e->channel_type);
        if (strcmp(key, "lock") == 0) return e->lock_name;
        if (strcmp(key, "owner") == 0) return e->owner;
        if (strcmp(key, "publisher") == 0) return e->publisher;
        if (strcmp(key, "snapshot") == 0) return h_s(e->snapshot);
        if (strcmp(key, "ttl") == 0) {
            snprintf(buf, cap, "%u", e->ttl_s);
            return buf;
        }
    }
    return NULL;
}

/* Fields compared as sets of comma-separated items. */
static int set_field(const char *kind, const char *key) {
    static const char *const presence[] = {"states", "snapshot", "joined", "left", "timed_out", "changed", NULL};
    if (strcmp(kind, "presence") == 0) {
        for (int i = 0; presence[i]; i++)
            if (strcmp(key, presence[i]) == 0) return 1;
    }
    if (strcmp(kind, "storage") == 0) return strcmp(key, "items") == 0;
    if (strcmp(kind, "lock") == 0) return strcmp(key, "snapshot") == 0;
    return 0;
}

static int kind_is(const h_event *e, const char *kind) {
    switch (e->kind) {
    case H_EV_MESSAGE: return strcmp(kind, "message") == 0;
    case H_EV_TOPIC: return strcmp(kind, "topic_event") == 0;
    case H_EV_LINK: return strcmp(kind, "link_state") == 0;
    case H_EV_TOKEN: return strcmp(kind, "token_will_expire") == 0;
    case H_EV_PRESENCE: return strcmp(kind, "presence") == 0;
    case H_EV_STORAGE: return strcmp(kind, "storage") == 0;
    case H_EV_LOCK: return strcmp(kind, "lock") == 0;
    case H_EV_OVERFLOW: SFAIL("event queue overflow");
    }
    return 0;
}

static void run_expect(client *cl, const step *s) {
    const char *kind = s->nargs > 0 ? s->args[0] : "";
    int64_t deadline = h_now_ms() + H_WAIT_MS;
    for (;;) {
        int64_t left = deadline - h_now_ms();
        if (left <= 0) SFAIL("no matching %s event within %d ms", kind, H_WAIT_MS);
        h_event *e = h_next_event(&cl->rec, (int)left);
        if (!e) continue;
        if (!kind_is(e, kind)) {
            h_event_free(e);
            continue;
        }
        int mismatch = -1;
        char buf[4096];
        const char *have = NULL;
        for (int i = 0; i < s->nopts; i++) {
            have = field(e, kind, s->keys[i], buf, sizeof buf);
            if (!have) SFAIL("unknown field %s", s->keys[i]);
            int same = set_field(kind, s->keys[i]) ? h_same_set(have, s->vals[i]) : strcmp(have, s->vals[i]) == 0;
            if (!same) {
                mismatch = i;
                break;
            }
        }
        int login_notice = strcmp(kind, "token_will_expire") == 0 && !opt(s, "channel") && !e->token_is_login;
        if (mismatch < 0 && !login_notice) {
            h_event_free(e);
            return;
        }
        if (mismatch >= 0 && strcmp(kind, "message") == 0) {
            SFAIL("field %s is \"%s\", expected \"%s\"", s->keys[mismatch], have, s->vals[mismatch]);
        }
        h_event_free(e);
    }
}

static void check_outcome(const step *s, const char *op, int32_t st, const char *reason) {
    if (s->expect_error == 0 && st != RTM2_OK)
        SFAIL("%s %s: unexpected error %d %s (%s)", s->actor, op, (int)st, rtm2_status_name(st), reason);
    if (s->expect_error != 0 && st != s->expect_error)
        SFAIL("%s %s: status %d %s, expected error %d %s", s->actor, op, (int)st, rtm2_status_name(st),
              s->expect_error, rtm2_status_name(s->expect_error));
}

/* `NAME start <operation> ...`: starts it without waiting. */
static void run_start(client *cl, words *ws) {
    if (cl->has_started) SFAIL("%s already has a started operation", cl->name);
    if (ws->n < 3) SFAIL("start needs an operation");
    words rest;
    rest.n = 0;
    rest.w[rest.n++] = ws->w[0];
    for (int i = 2; i < ws->n; i++) rest.w[rest.n++] = ws->w[i];
    parse_step(&rest, &cl->started_step);
    if (cl->started_step.expect_error) SFAIL("the outcome of a started operation belongs to finish");
    if (!cl->started) {
        cl->started = (h_call *)malloc(sizeof *cl->started);
        h_call_init(cl->started);
    }
    h_call_reset(cl->started);
    cl->started_status = begin_op(cl, &cl->started_step, cl->started, &cl->started_immediate);
    cl->has_started = 1;
}

/* `NAME finish [-> ...]`: waits for the started operation and checks its outcome. */
static void run_finish(client *cl, const step *s) {
    if (!cl->has_started) SFAIL("%s has no started operation", cl->name);
    int32_t st = cl->started_status;
    const char *reason = rtm2_last_error_message();
    if (!cl->started_immediate) {
        st = h_wait_call(g_file, g_line, cl->started, H_WAIT_MS);
        reason = cl->started->reason;
        if (st == RTM2_OK) check_op(&cl->started_step, cl->started);
        else if (cl->started->reason[0] == 0) SFAIL("completion %d without a reason", (int)st);
    }
    check_outcome(s, cl->started_step.op, st, reason);
    step_free(&cl->started_step);
    cl->has_started = 0;
}

static void run_step(words *ws) {
    if (ws->n >= 2 && strcmp(ws->w[1], "start") == 0) {
        run_start(find_client(ws->w[0]), ws);
        return;
    }
    step s;
    parse_step(ws, &s);
    client *cl = find_client(s.actor);
    if (strcmp(s.op, "expect") == 0) {
        run_expect(cl, &s);
    } else if (strcmp(s.op, "finish") == 0) {
        run_finish(cl, &s);
    } else {
        int32_t st = run_op(cl, &s);
        check_outcome(&s, s.op, st, rtm2_last_error_message());
    }
    step_free(&s);
}

static void start_server(int port) {
    for (int attempt = 0; attempt < 200; attempt++) {
        if (h_server_start_args(&g_server, g_rtm2, port, g_cert, g_notice, g_rate_limits, g_server_args) == 0) {
            snprintf(g_endpoint, sizeof g_endpoint, "%s", g_server.endpoint);
            return;
        }
        if (port == 0) break;
        h_sleep_ms(25); /* the old port is not free yet: retry binding it */
    }
    SFAIL("could not start %s serve", g_rtm2);
}

static int run_file(const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "cannot open %s\n", path);
        return 1;
    }
    g_file = path;
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    int steps = 0;
    while ((n = getline(&line, &cap, f)) >= 0) {
        g_line++;
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r' || line[n - 1] == ' ')) line[--n] = 0;
        char *p = line;
        while (*p == ' ' || *p == '\t') p++;
        if (!*p || *p == '#') continue;
        words ws;
        split(p, &ws);
        if (strcmp(ws.w[0], "server") == 0 && ws.n > 1 && strcmp(ws.w[1], "restart") == 0) {
            if (g_embedded) {
                printf("%s: skipped (server restart needs a standalone server)\n", path);
                words_free(&ws);
                free(line);
                fclose(f);
                return SKIP;
            }
            if (g_cluster_py) {
                cluster_restart();
            } else {
                int port = g_server.port;
                h_server_stop(&g_server);
                start_server(port);
            }
        } else if (strcmp(ws.w[0], "server") == 0) {
            g_cert = ws.n > 1 && strcmp(ws.w[1], "cert") == 0;
            int nargs = 0;
            static const struct {
                const char *key, *flag;
            } serve_opts[] = {{"ttl_unit_ms=", "--ttl-unit-ms"},
                              {"presence_announce_max=", "--presence-announce-max"},
                              {"presence_interval_ms=", "--presence-interval-ms"}};
            for (int i = 2; i < ws.n; i++) {
                int known = 0;
                for (size_t j = 0; j < sizeof serve_opts / sizeof serve_opts[0]; j++) {
                    size_t len = strlen(serve_opts[j].key);
                    if (strncmp(ws.w[i], serve_opts[j].key, len) == 0 && nargs + 2 <= 8) {
                        snprintf(g_server_opts[nargs], sizeof g_server_opts[0], "%s", serve_opts[j].flag);
                        g_server_args[nargs] = g_server_opts[nargs];
                        nargs++;
                        snprintf(g_server_opts[nargs], sizeof g_server_opts[0], "%s", ws.w[i] + len);
                        g_server_args[nargs] = g_server_opts[nargs];
                        nargs++;
                        known = 1;
                    }
                }
                if (known) continue;
                if (strncmp(ws.w[i], "notice=", 7) == 0) g_notice = atoi(ws.w[i] + 7);
                else if (strcmp(ws.w[i], "rate_limits=reference") == 0) g_rate_limits = 1;
                else if (strcmp(ws.w[i], "rate_limits=off") == 0) g_rate_limits = 0;
                else SFAIL("unknown server option %s", ws.w[i]);
            }
            g_server_args[nargs] = NULL;
            if (g_embedded) {
                if (g_cert || g_rate_limits || nargs > 0) {
                    printf("%s: skipped (needs a standalone server with %s)\n", path,
                           g_cert ? "a certificate" : g_rate_limits ? "rate limits" : "server options");
                    words_free(&ws);
                    free(line);
                    fclose(f);
                    return SKIP;
                }
            } else if (g_cluster_py) {
                if (!g_rtm2) SFAIL("--rtm2 PATH is required with --cluster");
                /* The flags of h_server_start_args, for every node. */
                char notice[16];
                snprintf(notice, sizeof notice, "%d", g_notice);
                const char *flags[24];
                int nf = 0;
                if (g_cert) {
                    flags[nf++] = "--app-id";
                    flags[nf++] = H_APP_ID;
                    flags[nf++] = "--app-certificate";
                    flags[nf++] = H_APP_CERT;
                    flags[nf++] = "--token-notice-secs";
                    flags[nf++] = notice;
                }
                if (!g_rate_limits) flags[nf++] = "--no-rate-limits";
                for (int i = 0; i < nargs; i++) flags[nf++] = g_server_args[i];
                flags[nf] = NULL;
                cluster_start(flags);
            } else {
                if (!g_rtm2) SFAIL("--rtm2 PATH is required without --embedded");
                start_server(0);
            }
        } else if (strcmp(ws.w[0], "client") == 0) {
            if (g_nclients >= MAX_CLIENTS) SFAIL("too many clients");
            client *cl = &g_clients[g_nclients++];
            memset(cl, 0, sizeof *cl);
            snprintf(cl->name, sizeof cl->name, "%s", ws.w[1]);
            snprintf(cl->user, sizeof cl->user, "%s", ws.w[1]);
            for (int i = 2; i < ws.n; i++)
                if (strncmp(ws.w[i], "user=", 5) == 0) snprintf(cl->user, sizeof cl->user, "%s", ws.w[i] + 5);
            h_recorder_init(&cl->rec);
            cl->c = h_new_client(cl->user, g_cluster_py ? next_node() : g_endpoint, &cl->rec);
        } else if (strcmp(ws.w[0], "ghost") == 0) {
            if (g_embedded) {
                printf("%s: skipped (a ghost needs a standalone server)\n", path);
                words_free(&ws);
                free(line);
                fclose(f);
                return SKIP;
            }
            if (ws.n < 3) SFAIL("ghost NAME CHANNEL [lock=LOCK]");
            if (g_nghosts >= MAX_CLIENTS) SFAIL("too many ghosts");
            const char *lock = NULL;
            for (int i = 3; i < ws.n; i++) {
                if (strncmp(ws.w[i], "lock=", 5) == 0) lock = ws.w[i] + 5;
                else SFAIL("unknown ghost option %s", ws.w[i]);
            }
            ghost *gh = &g_ghosts[g_nghosts++];
            snprintf(gh->name, sizeof gh->name, "%s", ws.w[1]);
            char *t = make_token("auto", ws.w[1], NULL);
            if (h_ghost_start(&gh->g, g_rtm2, g_cluster_py ? next_node() : g_endpoint, ws.w[1], ws.w[2], lock, t) != 0)
                SFAIL("ghost %s did not start", ws.w[1]);
            free_token(t);
        } else if (strcmp(ws.w[0], "kill") == 0) {
            if (ws.n != 2) SFAIL("kill NAME");
            ghost *gh = NULL;
            for (int i = 0; i < g_nghosts; i++)
                if (strcmp(g_ghosts[i].name, ws.w[1]) == 0) gh = &g_ghosts[i];
            if (!gh) SFAIL("unknown ghost %s", ws.w[1]);
            h_ghost_kill(&gh->g);
        } else if (strcmp(ws.w[0], "repeat") == 0) {
            int times = atoi(ws.w[1]);
            for (int k = 0; k < times; k++) {
                words rw;
                rw.n = 0;
                for (int i = 2; i < ws.n; i++) {
                    const char *w = ws.w[i];
                    const char *at = strstr(w, "{i}");
                    char *copy;
                    if (at) {
                        size_t len = strlen(w) + 16;
                        copy = (char *)malloc(len);
                        snprintf(copy, len, "%.*s%d%s", (int)(at - w), w, k, at + 3);
                    } else {
                        copy = strdup(w);
                    }
                    rw.w[rw.n++] = copy;
                }
                run_step(&rw);
                words_free(&rw);
            }
        } else {
            run_step(&ws);
        }
        words_free(&ws);
        steps++;
    }
    free(line);
    fclose(f);
    /* Shutdown in the documented order. */
    for (int i = 0; i < g_nclients; i++) {
        client *cl = &g_clients[i];
        for (int j = 0; j < cl->nstreams; j++) rtm2_stream_channel_free(cl->streams[j].sc);
        rtm2_client_free(cl->c);
        if (cl->has_started) SFAIL("%s started %s and never finished it", cl->name, cl->started_step.op);
        if (cl->started) {
            h_call_destroy(cl->started);
            free(cl->started);
        }
        h_wait_destroyed(&cl->rec, 1000);
        if (cl->rec.thread_mismatch || cl->rec.on_main_thread)
            SFAIL("callbacks of %s ran on more than one thread or on the main thread", cl->name);
        if (cl->rec.callbacks_after_destroy) SFAIL("callbacks of %s ran after destroy", cl->name);
        h_recorder_destroy(&cl->rec);
    }
    for (int i = 0; i < g_nghosts; i++) h_ghost_kill(&g_ghosts[i].g);
    if (g_cluster_py) cluster_stop();
    else if (!g_embedded) h_server_stop(&g_server);
    printf("%s: %d steps\n", path, steps);
    return 0;
}

int main(int argc, char **argv) {
    h_init();
    const char *file = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--embedded") == 0) g_embedded = 1;
        else if (strcmp(argv[i], "--rtm2") == 0 && i + 1 < argc) g_rtm2 = argv[++i];
        else if (strcmp(argv[i], "--cluster") == 0 && i + 1 < argc) g_cluster_py = argv[++i];
        else file = argv[i];
    }
    if (!g_rtm2) g_rtm2 = getenv("RTM2_BIN");
    if (!file) {
        fprintf(stderr, "usage: %s [--embedded] [--rtm2 PATH] [--cluster PATH/TO/cluster.py] SCENARIO.scn\n", argv[0]);
        return 2;
    }
    if (g_cluster_py) {
        const char *base = strrchr(file, '/') ? strrchr(file, '/') + 1 : file;
        for (size_t i = 0; i < sizeof CLUSTER_PENDING / sizeof CLUSTER_PENDING[0]; i++) {
            if (CLUSTER_PENDING[i].file && strcmp(base, CLUSTER_PENDING[i].file) == 0) {
                printf("%s: skipped (pending in cluster mode: %s)\n", file, CLUSTER_PENDING[i].reason);
                return SKIP;
            }
        }
        if (!find_nats()) {
            printf("%s: skipped (cluster mode: no nats-server; set RTM2_NATS_SERVER or run scripts/install-nats)\n",
                   file);
            return SKIP;
        }
        signal(SIGPIPE, SIG_IGN); /* a cluster.py that died shows as an error, not a signal */
    }
    int r = run_file(file);
    if (r == SKIP) return SKIP;
    if (r != 0) return r;
    return h_finish("conformance", 1);
}
