#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "harness.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

pthread_t h_main_thread;
int h_duplicate_completions = 0;

#define H_MAX_SERVERS 16
static pid_t h_server_pids[H_MAX_SERVERS];

static void h_kill_servers(void) {
    for (int i = 0; i < H_MAX_SERVERS; i++) {
        if (h_server_pids[i] > 0) {
            kill(h_server_pids[i], SIGKILL);
            waitpid(h_server_pids[i], NULL, 0);
            h_server_pids[i] = 0;
        }
    }
}

void h_init(void) {
    h_main_thread = pthread_self();
    signal(SIGPIPE, SIG_IGN);
    atexit(h_kill_servers);
    setvbuf(stdout, NULL, _IOLBF, 0);
}

void h_fail(const char *file, int line, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "FAIL %s:%d: ", file, line);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    fflush(stderr);
    exit(1);
}

void h_log(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
}

int h_finish(const char *suite, int passed) {
    if (h_duplicate_completions != 0) {
        fprintf(stderr, "FAIL: %d completion callbacks ran more than once\n", h_duplicate_completions);
        printf("%s: %d passed, 1 failed\n", suite, passed);
        return 1;
    }
    printf("%s: %d passed, 0 failed\n", suite, passed);
    return 0;
}

int64_t h_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void h_sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void h_deadline(struct timespec *ts, int timeout_ms) {
    clock_gettime(CLOCK_REALTIME, ts);
    ts->tv_sec += timeout_ms / 1000;
    ts->tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec += 1;
        ts->tv_nsec -= 1000000000L;
    }
}

void h_append(char *buf, size_t cap, const char *fmt, ...) {
    size_t len = strlen(buf);
    if (len + 1 >= cap) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf + len, cap - len, fmt, ap);
    va_end(ap);
}

static void h_copy(char *dst, size_t cap, const char *src) {
    snprintf(dst, cap, "%s", src ? src : "(null)");
}

/* ---- completions ---- */

void h_call_init(h_call *c) {
    memset(c, 0, sizeof *c);
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv, NULL);
    c->status = -1;
}

void h_call_reset(h_call *c) {
    pthread_mutex_lock(&c->mu);
    c->count = 0;
    c->status = -1;
    c->request_id = 0;
    c->operation[0] = c->reason[0] = 0;
    c->has_join = c->has_subscribe_topic = c->has_users = 0;
    c->join_channel[0] = c->join_summary[0] = c->succeeded[0] = c->failed[0] = c->users[0] = 0;
    pthread_mutex_unlock(&c->mu);
}

void h_call_destroy(h_call *c) {
    pthread_mutex_destroy(&c->mu);
    pthread_cond_destroy(&c->cv);
}

static void h_join_names(char *buf, size_t cap, const char *const *names, size_t n) {
    buf[0] = 0;
    for (size_t i = 0; i < n; i++) h_append(buf, cap, "%s%s", i ? "," : "", names[i]);
}

static void h_topics_summary(char *buf, size_t cap, const rtm2_topic_info *topics, size_t n) {
    buf[0] = 0;
    for (size_t i = 0; i < n; i++) {
        h_append(buf, cap, "%s%s[", i ? ";" : "", topics[i].topic);
        for (size_t j = 0; j < topics[i].publisher_count; j++) {
            h_append(buf, cap, "%s%s/%s", j ? " " : "", topics[i].publishers[j].user_id,
                     topics[i].publishers[j].meta);
        }
        h_append(buf, cap, "]");
    }
}

void h_complete(void *user_data, uint64_t request_id, int32_t status, const rtm2_result *result) {
    h_call *c = (h_call *)user_data;
    pthread_mutex_lock(&c->mu);
    if (c->count > 0) {
        __atomic_add_fetch(&h_duplicate_completions, 1, __ATOMIC_SEQ_CST);
        fprintf(stderr, "duplicate completion of request %llu (status %d)\n", (unsigned long long)request_id,
                (int)status);
    }
    c->request_id = request_id;
    c->status = status;
    c->thread = pthread_self();
    if (result == NULL) {
        fprintf(stderr, "completion without a result\n");
        __atomic_add_fetch(&h_duplicate_completions, 1, __ATOMIC_SEQ_CST);
    } else {
        h_copy(c->operation, sizeof c->operation, result->operation);
        h_copy(c->reason, sizeof c->reason, result->reason);
        if (result->join) {
            c->has_join = 1;
            h_copy(c->join_channel, sizeof c->join_channel, result->join->channel);
            h_topics_summary(c->join_summary, sizeof c->join_summary, result->join->topics,
                             result->join->topic_count);
        }
        if (result->subscribe_topic) {
            const rtm2_subscribe_topic_result *st = result->subscribe_topic;
            c->has_subscribe_topic = 1;
            h_join_names(c->succeeded, sizeof c->succeeded, st->succeeded, st->succeeded_count);
            c->failed[0] = 0;
            for (size_t i = 0; i < st->failed_count; i++) {
                h_append(c->failed, sizeof c->failed, "%s%s:%u", i ? "," : "", st->failed[i].user_id,
                         st->failed[i].code);
            }
        }
        if (result->subscribed_users) {
            c->has_users = 1;
            h_join_names(c->users, sizeof c->users, result->subscribed_users->users, result->subscribed_users->count);
        }
    }
    if (c->hook) c->hook(c);
    c->count++;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

int32_t h_wait_call(const char *file, int line, h_call *c, int timeout_ms) {
    struct timespec ts;
    h_deadline(&ts, timeout_ms);
    pthread_mutex_lock(&c->mu);
    while (c->count == 0) {
        if (pthread_cond_timedwait(&c->cv, &c->mu, &ts) == ETIMEDOUT) {
            pthread_mutex_unlock(&c->mu);
            h_fail(file, line, "no completion within %d ms", timeout_ms);
        }
    }
    int32_t s = c->status;
    pthread_mutex_unlock(&c->mu);
    return s;
}

int32_t h_await_at(const char *file, int line, int32_t start_status, h_call *c) {
    if (start_status != RTM2_OK) {
        h_fail(file, line, "the operation did not start: %d %s (%s)", (int)start_status,
               rtm2_status_name(start_status), rtm2_last_error_message());
    }
    return h_wait_call(file, line, c, H_WAIT_MS + 5000);
}

/* ---- events ---- */

void h_recorder_init(h_recorder *r) {
    memset(r, 0, sizeof *r);
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cv, NULL);
}

void h_event_free(h_event *e) {
    if (e) {
        free(e->payload);
        free(e);
    }
}

void h_recorder_destroy(h_recorder *r) {
    h_event *e = r->head;
    while (e) {
        h_event *n = e->next;
        h_event_free(e);
        e = n;
    }
    r->head = r->tail = NULL;
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->cv);
}

/* Called with r->mu held at the start of every callback. */
static void h_note_thread(h_recorder *r) {
    pthread_t self = pthread_self();
    if (pthread_equal(self, h_main_thread)) r->on_main_thread = 1;
    if (!r->thread_known) {
        r->thread = self;
        r->thread_known = 1;
    } else if (!pthread_equal(r->thread, self)) {
        r->thread_mismatch = 1;
    }
    if (r->destroyed) r->callbacks_after_destroy++;
}

static void h_push(h_recorder *r, h_event *e) {
    e->next = NULL;
    if (r->tail) r->tail->next = e;
    else r->head = e;
    r->tail = e;
    pthread_cond_broadcast(&r->cv);
}

static h_event *h_new_event(h_kind kind) {
    h_event *e = (h_event *)calloc(1, sizeof *e);
    if (!e) {
        fprintf(stderr, "out of memory\n");
        exit(2);
    }
    e->kind = kind;
    return e;
}

static void h_on_message(void *ud, const rtm2_message_event *ev) {
    h_recorder *r = (h_recorder *)ud;
    h_event *e = h_new_event(H_EV_MESSAGE);
    e->channel_type = ev->channel_type;
    e->message_type = ev->message_type;
    h_copy(e->channel, sizeof e->channel, ev->channel);
    h_copy(e->topic, sizeof e->topic, ev->topic);
    h_copy(e->publisher, sizeof e->publisher, ev->publisher);
    h_copy(e->custom_type, sizeof e->custom_type, ev->custom_type);
    e->payload = (unsigned char *)malloc(ev->payload_len + 1);
    if (ev->payload_len) memcpy(e->payload, ev->payload, ev->payload_len);
    e->payload[ev->payload_len] = 0;
    e->payload_len = ev->payload_len;
    e->timestamp_ms = ev->timestamp_ms;
    pthread_mutex_lock(&r->mu);
    h_note_thread(r);
    pthread_mutex_unlock(&r->mu);
    /* The hook runs outside the recorder lock: it may call into the SDK. */
    if (r->message_hook) r->message_hook(r, ev);
    pthread_mutex_lock(&r->mu);
    h_push(r, e);
    pthread_mutex_unlock(&r->mu);
}

static void h_on_topic(void *ud, const rtm2_topic_event *ev) {
    h_recorder *r = (h_recorder *)ud;
    h_event *e = h_new_event(H_EV_TOPIC);
    e->topic_type = ev->event_type;
    h_copy(e->channel, sizeof e->channel, ev->channel);
    h_copy(e->publisher, sizeof e->publisher, ev->publisher);
    if (ev->topic_count > 0) {
        h_copy(e->first_topic, sizeof e->first_topic, ev->topics[0].topic);
        if (ev->topics[0].publisher_count > 0) {
            h_copy(e->first_user, sizeof e->first_user, ev->topics[0].publishers[0].user_id);
            h_copy(e->first_meta, sizeof e->first_meta, ev->topics[0].publishers[0].meta);
        }
    }
    h_topics_summary(e->summary, sizeof e->summary, ev->topics, ev->topic_count);
    e->timestamp_ms = ev->timestamp_ms;
    pthread_mutex_lock(&r->mu);
    h_note_thread(r);
    h_push(r, e);
    pthread_mutex_unlock(&r->mu);
}

static void h_on_link_state(void *ud, const rtm2_link_state_event *ev) {
    h_recorder *r = (h_recorder *)ud;
    h_event *e = h_new_event(H_EV_LINK);
    e->current = ev->current;
    e->previous = ev->previous;
    e->service = ev->service_type;
    e->operation = ev->operation;
    e->reason = ev->reason;
    h_copy(e->reason_text, sizeof e->reason_text, ev->reason_text);
    h_copy(e->channel, sizeof e->channel, ev->channel);
    e->unrestored_count = ev->unrestored_channel_count;
    for (size_t i = 0; i < ev->affected_channel_count; i++) h_append(e->summary, sizeof e->summary, "%s%s", i ? "," : "", ev->affected_channels[i]);
    e->timestamp_ms = ev->timestamp_ms;
    pthread_mutex_lock(&r->mu);
    h_note_thread(r);
    pthread_mutex_unlock(&r->mu);
    if (r->link_hook) r->link_hook(r, ev);
    pthread_mutex_lock(&r->mu);
    h_push(r, e);
    pthread_mutex_unlock(&r->mu);
}

static void h_on_token(void *ud, const char *channel) {
    h_recorder *r = (h_recorder *)ud;
    h_event *e = h_new_event(H_EV_TOKEN);
    e->token_is_login = channel == NULL;
    h_copy(e->channel, sizeof e->channel, channel ? channel : "");
    pthread_mutex_lock(&r->mu);
    h_note_thread(r);
    h_push(r, e);
    pthread_mutex_unlock(&r->mu);
}

static void h_on_overflow(void *ud, uint64_t dropped) {
    h_recorder *r = (h_recorder *)ud;
    h_event *e = h_new_event(H_EV_OVERFLOW);
    e->dropped = dropped;
    pthread_mutex_lock(&r->mu);
    h_note_thread(r);
    r->overflow_dropped += dropped;
    h_push(r, e);
    pthread_mutex_unlock(&r->mu);
}

static void h_on_destroy(void *ud) {
    h_recorder *r = (h_recorder *)ud;
    pthread_mutex_lock(&r->mu);
    h_note_thread(r);
    r->destroyed++;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

rtm2_listener h_recorder_listener(h_recorder *r) {
    rtm2_listener l;
    memset(&l, 0, sizeof l);
    l.struct_size = sizeof l;
    l.user_data = r;
    l.destroy = h_on_destroy;
    l.on_message = h_on_message;
    l.on_topic = h_on_topic;
    l.on_link_state = h_on_link_state;
    l.on_token_will_expire = h_on_token;
    l.on_overflow = h_on_overflow;
    return l;
}

h_event *h_next_event(h_recorder *r, int timeout_ms) {
    struct timespec ts;
    h_deadline(&ts, timeout_ms);
    pthread_mutex_lock(&r->mu);
    while (r->head == NULL) {
        if (pthread_cond_timedwait(&r->cv, &r->mu, &ts) == ETIMEDOUT) break;
    }
    h_event *e = r->head;
    if (e) {
        r->head = e->next;
        if (!r->head) r->tail = NULL;
    }
    pthread_mutex_unlock(&r->mu);
    return e;
}

h_event *h_expect_at(const char *file, int line, h_recorder *r, h_kind kind,
                     int (*match)(const h_event *e, const void *arg), const void *arg, int timeout_ms) {
    int64_t deadline = h_now_ms() + timeout_ms;
    for (;;) {
        int64_t left = deadline - h_now_ms();
        if (left <= 0) h_fail(file, line, "no matching event (kind %d) within %d ms", (int)kind, timeout_ms);
        h_event *e = h_next_event(r, (int)left);
        if (!e) continue;
        if (e->kind == kind && match(e, arg)) return e;
        h_event_free(e);
    }
}

int h_match_any(const h_event *e, const void *arg) {
    (void)e;
    (void)arg;
    return 1;
}

int h_match_text(const h_event *e, const void *text) {
    const char *t = (const char *)text;
    return e->payload_len == strlen(t) && memcmp(e->payload, t, e->payload_len) == 0;
}

int h_match_link_state(const h_event *e, const void *state) {
    return e->service == RTM2_SERVICE_TYPE_MESSAGE && e->current == *(const uint32_t *)state;
}

int h_match_topic_type(const h_event *e, const void *type) {
    return e->topic_type == *(const uint32_t *)type;
}

void h_wait_destroyed(h_recorder *r, int timeout_ms) {
    struct timespec ts;
    h_deadline(&ts, timeout_ms);
    pthread_mutex_lock(&r->mu);
    while (r->destroyed == 0) {
        if (pthread_cond_timedwait(&r->cv, &r->mu, &ts) == ETIMEDOUT) break;
    }
    int d = r->destroyed;
    pthread_mutex_unlock(&r->mu);
    if (d != 1) h_fail(__FILE__, __LINE__, "listener destroy ran %d times, expected once", d);
}

/* ---- a standalone server ---- */

static void *h_drain(void *arg) {
    h_server *s = (h_server *)arg;
    char buf[4096];
    ssize_t n;
    while ((n = read(s->err_fd, buf, sizeof buf)) > 0) {
        if (getenv("RTM2_TEST_VERBOSE")) fwrite(buf, 1, (size_t)n, stderr);
    }
    return NULL;
}

int h_server_start(h_server *s, const char *rtm2_bin, int port, int cert, int notice_secs, int rate_limits) {
    memset(s, 0, sizeof *s);
    int fds[2];
    if (pipe(fds) != 0) return -1;
    char listen_addr[64], notice[32];
    snprintf(listen_addr, sizeof listen_addr, "127.0.0.1:%d", port);
    snprintf(notice, sizeof notice, "%d", notice_secs);
    const char *argv[16];
    int n = 0;
    argv[n++] = rtm2_bin;
    argv[n++] = "serve";
    argv[n++] = "--listen";
    argv[n++] = listen_addr;
    if (cert) {
        argv[n++] = "--app-id";
        argv[n++] = H_APP_ID;
        argv[n++] = "--app-certificate";
        argv[n++] = H_APP_CERT;
        argv[n++] = "--token-notice-secs";
        argv[n++] = notice;
    }
    if (!rate_limits) argv[n++] = "--no-rate-limits";
    argv[n] = NULL;
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        dup2(fds[1], 2);
        close(fds[0]);
        close(fds[1]);
        execv(rtm2_bin, (char *const *)argv);
        fprintf(stderr, "cannot run %s: %s\n", rtm2_bin, strerror(errno));
        _exit(127);
    }
    close(fds[1]);
    s->pid = pid;
    s->err_fd = fds[0];
    for (int i = 0; i < H_MAX_SERVERS; i++) {
        if (h_server_pids[i] == 0) {
            h_server_pids[i] = pid;
            break;
        }
    }
    /* Read stderr until "rtm2 server listening on HOST:PORT" (bounded). */
    char line[1024];
    size_t len = 0;
    int64_t deadline = h_now_ms() + H_WAIT_MS;
    for (;;) {
        int64_t left = deadline - h_now_ms();
        if (left <= 0) break;
        struct pollfd p = {s->err_fd, POLLIN, 0};
        if (poll(&p, 1, (int)left) <= 0) break;
        ssize_t n = read(s->err_fd, line + len, sizeof line - 1 - len);
        if (n <= 0) break;
        len += (size_t)n;
        line[len] = 0;
        const char *at = strstr(line, "listening on ");
        if (at && strchr(at, '\n')) {
            at += strlen("listening on ");
            size_t k = 0;
            while (at[k] && at[k] != ' ' && at[k] != '\n' && k + 1 < sizeof s->endpoint) {
                s->endpoint[k] = at[k];
                k++;
            }
            s->endpoint[k] = 0;
            const char *colon = strrchr(s->endpoint, ':');
            s->port = colon ? atoi(colon + 1) : 0;
            if (pthread_create(&s->drain, NULL, h_drain, s) == 0) s->drain_started = 1;
            return s->port > 0 ? 0 : -1;
        }
        if (len + 1 >= sizeof line) len = 0;
    }
    if (getenv("RTM2_TEST_VERBOSE")) fprintf(stderr, "server output: %s\n", line);
    h_server_stop(s);
    return -1;
}

void h_server_stop(h_server *s) {
    if (s->pid > 0) {
        kill(s->pid, SIGTERM);
        int64_t deadline = h_now_ms() + 5000;
        int done = 0;
        while (h_now_ms() < deadline) {
            if (waitpid(s->pid, NULL, WNOHANG) == s->pid) {
                done = 1;
                break;
            }
            h_sleep_ms(10); /* polling a process exit; not test synchronisation */
        }
        if (!done) {
            kill(s->pid, SIGKILL);
            waitpid(s->pid, NULL, 0);
        }
        for (int i = 0; i < H_MAX_SERVERS; i++) {
            if (h_server_pids[i] == s->pid) h_server_pids[i] = 0;
        }
        s->pid = 0;
    }
    if (s->drain_started) {
        pthread_join(s->drain, NULL);
        s->drain_started = 0;
    }
    if (s->err_fd > 0) {
        close(s->err_fd);
        s->err_fd = -1;
    }
}

int h_unused_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return -1;
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = 0;
    socklen_t len = sizeof a;
    int port = -1;
    if (bind(fd, (struct sockaddr *)&a, sizeof a) == 0 && getsockname(fd, (struct sockaddr *)&a, &len) == 0) {
        port = ntohs(a.sin_port);
    }
    close(fd);
    return port;
}

rtm2_client *h_new_client(const char *user, const char *endpoint, h_recorder *rec) {
    rtm2_config *cfg = NULL;
    CHECK_OK(rtm2_config_new(H_APP_ID, user, &cfg));
    if (endpoint) CHECK_OK(rtm2_config_set_endpoint(cfg, endpoint));
    CHECK_OK(rtm2_config_set_parameters(cfg, "{\"reconnect_initial_backoff_ms\": 20}"));
    rtm2_listener l;
    if (rec) l = h_recorder_listener(rec);
    rtm2_client *c = NULL;
    CHECK_OK(rtm2_client_new(cfg, rec ? &l : NULL, &c));
    CHECK(c != NULL);
    rtm2_config_free(cfg);
    return c;
}
