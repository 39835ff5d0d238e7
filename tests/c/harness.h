/* Shared helpers of the rtm2 C tests: checks, completion waiters, an event recorder (a
 * listener that copies every event into a queue), and a standalone `rtm2 serve` spawner.
 * Every wait is bounded; a failed check prints where and exits non-zero. */
#ifndef RTM2_TEST_HARNESS_H
#define RTM2_TEST_HARNESS_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "rtm2.h"

#define H_APP_ID "970CA35de60c44645bbae8a215061b33"
#define H_APP_CERT "5CFd2fd1755d40ecb72977518be15d3b"
#define H_WAIT_MS 10000

#if defined(__GNUC__)
#define H_NORETURN __attribute__((noreturn))
#define H_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define H_NORETURN
#define H_PRINTF(a, b)
#endif

void h_fail(const char *file, int line, const char *fmt, ...) H_NORETURN H_PRINTF(3, 4);
void h_log(const char *fmt, ...) H_PRINTF(1, 2);

#define CHECK(c)                                                  \
    do {                                                          \
        if (!(c)) h_fail(__FILE__, __LINE__, "CHECK(%s)", #c);    \
    } while (0)

#define CHECK_INT(a, b)                                                                                 \
    do {                                                                                                \
        long long h_a_ = (long long)(a), h_b_ = (long long)(b);                                         \
        if (h_a_ != h_b_) h_fail(__FILE__, __LINE__, "%s is %lld, expected %lld (%s)", #a, h_a_, h_b_, #b); \
    } while (0)

#define CHECK_STR(a, b)                                                                          \
    do {                                                                                         \
        const char *h_a_ = (a), *h_b_ = (b);                                                     \
        if (h_a_ == NULL || strcmp(h_a_, h_b_) != 0)                                             \
            h_fail(__FILE__, __LINE__, "%s is \"%s\", expected \"%s\"", #a, h_a_ ? h_a_ : "(null)", h_b_); \
    } while (0)

/* A call that must return exactly `code` (a status, not a completion). */
#define CHECK_STATUS(expr, code)                                                                       \
    do {                                                                                               \
        int32_t h_s_ = (expr);                                                                         \
        if (h_s_ != (code))                                                                            \
            h_fail(__FILE__, __LINE__, "%s returned %d %s (%s), expected %d %s", #expr, (int)h_s_,     \
                   rtm2_status_name(h_s_), rtm2_last_error_message(), (int)(code), rtm2_status_name(code)); \
    } while (0)

#define CHECK_OK(expr) CHECK_STATUS(expr, RTM2_OK)

extern pthread_t h_main_thread;
/* Completions that ran more than once (must stay 0). */
extern int h_duplicate_completions;

void h_init(void);
/* Exits non-zero if a completion ran twice; prints the closing line. */
int h_finish(const char *suite, int passed);

/* ---- completions ---- */

typedef struct h_call {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int count;
    uint64_t request_id;
    int32_t status;
    char operation[64];
    char reason[512];
    pthread_t thread;
    /* Copies of the op-specific result. */
    int has_join, has_subscribe_topic, has_users;
    char join_channel[128];
    char join_summary[2048];   /* "topic[user/meta user/meta];topic[...]" */
    char succeeded[2048];      /* "a,b" */
    char failed[2048];         /* "u:code,..." */
    char users[2048];          /* "a,b" */
    /* Presence, storage and lock results (heap strings, "" when absent; lists "a,b"). */
    int has_online_users, has_user_channels, has_user_state, has_metadata_write, has_metadata, has_locks;
    char *online_users;        /* "a,b" */
    char *online_states;       /* "a{k:v;k2:v2},b{}" */
    uint32_t total_occupancy;
    char *next_page;
    char *user_channels;       /* "MESSAGE:lobby,STREAM:lobby" */
    char *state_user;          /* user_state->user_id */
    char *states;              /* "k:v,k2:v2" */
    int64_t write_major;
    uint32_t write_total;
    int64_t meta_major;
    size_t meta_count;
    char *meta_items;          /* "k:v,..." */
    char *meta_revisions;      /* "k:rev,..." */
    char *meta_authors;        /* "k:author,..." */
    char *meta_stamped;        /* keys with updated_ms != 0 */
    char *locks;               /* "name:owner,..." */
    char *lock_ttls;           /* "name:ttl,..." */
    uint64_t fencing_token;    /* acquire_lock: the grant's token (0 otherwise) */
    uint64_t timestamp_ms;     /* result->timestamp_ms: the server's time of the answer (0: none) */
    /* get_messages: the page. history "publisher:text,..." (a BINARY payload as hex "0x0102"),
     * history_types "S/custom,B/,..." (STRING/BINARY and custom type); history_ordered is 1
     * when the timestamps strictly decrease (and are not 0). */
    int has_history, history_ordered;
    size_t history_count;
    uint64_t history_new_start, history_newest_ts, history_oldest_ts;
    char *history;
    char *history_types;
    /* Runs inside the callback (on the dispatcher thread) before the waiter is woken. */
    void (*hook)(struct h_call *call);
    void *hook_data;
} h_call;

void h_call_init(h_call *c);
void h_call_reset(h_call *c);
void h_call_destroy(h_call *c);
/* The rtm2_completion_cb; user_data is an h_call. */
void h_complete(void *user_data, uint64_t request_id, int32_t status, const rtm2_result *result);
/* Writes `n` names joined by commas to `buf` (truncated to `cap`). */
void h_join_names(char *buf, size_t cap, const char *const *names, size_t n);
/* Checks that the operation started, waits for its completion and returns its status. */
int32_t h_await_at(const char *file, int line, int32_t start_status, h_call *c);
#define h_await(start, c) h_await_at(__FILE__, __LINE__, (start), (c))
/* Waits for a completion already started; returns its status. */
int32_t h_wait_call(const char *file, int line, h_call *c, int timeout_ms);
/* Runs `expr` (which passes h_complete and &k) and waits; evaluates to the completion status. */
#define OP(k, expr) (h_call_reset(&(k)), h_await((expr), &(k)))

/* ---- events ---- */

typedef enum h_kind {
    H_EV_MESSAGE, H_EV_TOPIC, H_EV_LINK, H_EV_TOKEN, H_EV_OVERFLOW, H_EV_PRESENCE, H_EV_STORAGE, H_EV_LOCK
} h_kind;

typedef struct h_event {
    h_kind kind;
    struct h_event *next;
    /* message */
    uint32_t channel_type, message_type;
    char channel[128], topic[64], publisher[128], custom_type[64];
    unsigned char *payload;
    size_t payload_len;
    uint64_t timestamp_ms;
    int recovered;             /* message: delivered from the history after a reconnect */
    /* topic event: type; first topic, its first publisher and meta; whole summary */
    uint32_t topic_type;
    char first_topic[64], first_user[128], first_meta[300];
    char summary[2048];
    /* link state */
    uint32_t current, previous, service, operation, reason, reason_number;
    char reason_name[64], reason_text[256];
    size_t unrestored_count;
    int is_resumed;            /* affected channels: in summary ("a,b") */
    /* token will expire: channel "" for the login token */
    int token_is_login;
    /* overflow */
    uint64_t dropped;
    /* presence / storage / lock: event_type; channel (or storage target), channel_type and
     * publisher above; heap strings ("" when empty; lists "a,b", pairs "k:v") */
    uint32_t event_type, storage_type, ttl_s, total;
    int has_interval;
    int64_t major;
    size_t count;              /* presence snapshot / storage items / lock snapshot entries */
    char lock_name[128], owner[128];
    uint64_t fencing_token;    /* lock events */
    char *states;              /* presence: the publisher's state "k:v,..." */
    char *snapshot;            /* presence: "a,b"; lock: "name:owner,..." */
    char *snapshot_states;     /* presence: "a{k:v;...},b{}" */
    char *joined, *left, *timed_out, *changed, *changed_states; /* presence INTERVAL */
    char *items, *revisions, *authors, *stamped;               /* storage data */
} h_event;

typedef struct h_recorder {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    h_event *head, *tail;
    int destroyed;             /* times destroy ran */
    int callbacks_after_destroy;
    int thread_known, thread_mismatch, on_main_thread;
    pthread_t thread;
    uint64_t overflow_dropped;
    /* Optional hooks run inside the callbacks (on the dispatcher thread). */
    void (*message_hook)(struct h_recorder *r, const rtm2_message_event *ev);
    void (*link_hook)(struct h_recorder *r, const rtm2_link_state_event *ev);
    void *hook_data;
    /* Set before the client is made: messages come through on_message_batch (on_message unset);
     * batches counts its calls, batch_max the largest run. */
    int batched;
    int batches, batch_max;
} h_recorder;

void h_recorder_init(h_recorder *r);
/* Frees queued events (call after the client is freed). */
void h_recorder_destroy(h_recorder *r);
rtm2_listener h_recorder_listener(h_recorder *r);
/* Next event of any kind (removed from the queue; free with h_event_free), or NULL. */
h_event *h_next_event(h_recorder *r, int timeout_ms);
void h_event_free(h_event *e);
/* First event of `kind` that `match` accepts (others of any kind are discarded); fails the
 * test after the timeout. */
h_event *h_expect_at(const char *file, int line, h_recorder *r, h_kind kind,
                     int (*match)(const h_event *e, const void *arg), const void *arg, int timeout_ms);
#define h_expect(r, kind, match, arg) h_expect_at(__FILE__, __LINE__, (r), (kind), (match), (arg), H_WAIT_MS)
/* Matchers. */
int h_match_any(const h_event *e, const void *arg);
int h_match_text(const h_event *e, const void *text);        /* message payload == text */
int h_match_link_state(const h_event *e, const void *state);  /* MESSAGE link, current == *(uint32_t*) */
int h_match_topic_type(const h_event *e, const void *type);   /* topic event type == *(uint32_t*) */
int h_match_event_type(const h_event *e, const void *type); /* presence/storage/lock type == *(uint32_t*) */
/* Whether two comma-separated lists hold the same items in any order ("" = empty). */
int h_same_set(const char *a, const char *b);
/* Waits until destroy ran (bounded). */
void h_wait_destroyed(h_recorder *r, int timeout_ms);

/* ---- a standalone server ---- */

typedef struct h_server {
    pid_t pid;
    int port;
    char endpoint[64]; /* "127.0.0.1:PORT" */
    int err_fd;
    pthread_t drain;
    int drain_started;
} h_server;

/* Starts `rtm2 serve --listen 127.0.0.1:<port>` (port 0 = any); `cert` adds the test app and
 * certificate with the given token notice; without `rate_limits` the server runs with
 * --no-rate-limits. Returns 0 on success. */
int h_server_start(h_server *s, const char *rtm2_bin, int port, int cert, int notice_secs, int rate_limits);
/* The same with more `rtm2 serve` arguments (NULL-terminated list; NULL = none). */
int h_server_start_args(h_server *s, const char *rtm2_bin, int port, int cert, int notice_secs, int rate_limits,
                        const char *const *extra);
void h_server_stop(h_server *s);

/* ---- a user in another process ("ghost") ---- */

typedef struct h_ghost {
    pid_t pid;
    int err_fd;
    pthread_t drain;
    int drain_started;
} h_ghost;

/* Runs `rtm2 subscribe --endpoint ENDPOINT --app-id H_APP_ID --user-id USER --presence-timeout 5
 * [--token TOKEN] [--acquire-lock CHANNEL:LOCK] CHANNEL` and waits (bounded) until it says it
 * subscribed (and acquired the lock). Returns 0 on success. */
int h_ghost_start(h_ghost *g, const char *rtm2_bin, const char *endpoint, const char *user, const char *channel,
                  const char *lock, const char *token);
/* SIGKILL: the user vanishes without logging out. */
void h_ghost_kill(h_ghost *g);
/* A loopback port on which nothing listens (connections are refused). */
int h_unused_port(void);

/* ---- a TCP proxy whose connections can be cut ---- */

#define H_PROXY_MAX_PAIRS 8
typedef struct h_proxy {
    int listen_fd, target_port, port;
    char endpoint[64]; /* "127.0.0.1:PORT" of the proxy */
    int wake[2];
    pthread_t thread;
    pthread_mutex_t mu;
    int stop, refusing, cut_requested;
    int pairs[H_PROXY_MAX_PAIRS][2]; /* client side, server side; -1 = free */
} h_proxy;

/* Relays 127.0.0.1:<any> to 127.0.0.1:target_port. Returns 0 on success. */
int h_proxy_start(h_proxy *p, int target_port);
/* Closes every relayed connection and refuses new ones (accepted, then closed at once). */
void h_proxy_cut(h_proxy *p);
/* Relays new connections again. */
void h_proxy_restore(h_proxy *p);
void h_proxy_stop(h_proxy *p);

/* ---- misc ---- */
rtm2_client *h_new_client(const char *user, const char *endpoint, h_recorder *rec);
int64_t h_now_ms(void);
/* Wall-clock time, ms since the epoch (the clock the server's timestamps are in). */
uint64_t h_epoch_ms(void);
void h_sleep_ms(int ms);
/* Appends to a fixed buffer, truncating. */
void h_append(char *buf, size_t cap, const char *fmt, ...) H_PRINTF(3, 4);
/* Appends to a heap string (*buf NULL = empty), growing it. */
void h_sappend(char **buf, const char *fmt, ...) H_PRINTF(2, 3);
/* The heap string or "" when NULL. */
const char *h_s(const char *s);

#endif
