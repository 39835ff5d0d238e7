/* A small rtm2 chat in C: two users (alice and bob) in one process talk in a message channel,
 * then alice presents in a stream-channel topic that bob subscribes to.
 *
 *   make            # builds ./chat against ../../target/debug/librtm2.so (cargo build if needed)
 *   ./chat          # the embedded server (nothing to start)
 *   ./chat 127.0.0.1:9696    # a standalone `rtm2 serve`
 *
 * Every callback runs on the client's own dispatcher thread; main() waits for what it needs
 * with a mutex and a condition variable. */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rtm2.h"

#define APP_ID "0123456789abcdef0123456789abcdef" /* any 32 characters in development mode */

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int messages_seen = 0; /* bob's received messages */

typedef struct user {
    const char *name;
    rtm2_client *client;
    int done;        /* completions of the last operation */
    int32_t status;  /* ... and its status */
} user;

/* Completion of every operation: remember the status and wake main(). */
static void on_done(void *ud, uint64_t request_id, int32_t status, const rtm2_result *result) {
    user *u = (user *)ud;
    (void)request_id;
    if (status != RTM2_OK) {
        fprintf(stderr, "[%s] %s failed: %d %s: %s\n", u->name, result->operation, status, rtm2_status_name(status),
                result->reason);
    }
    pthread_mutex_lock(&mu);
    u->status = status;
    u->done = 1;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
}

/* Waits for the operation just started (it completes within the request timeout, 10 s by
 * default); exits on failure. */
static void wait_op(user *u, int32_t started, const char *what) {
    if (started != RTM2_OK) {
        fprintf(stderr, "[%s] %s did not start: %s (%s)\n", u->name, what, rtm2_status_name(started),
                rtm2_last_error_message());
        exit(1);
    }
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += 15;
    pthread_mutex_lock(&mu);
    while (!u->done && pthread_cond_timedwait(&cv, &mu, &ts) == 0) {
    }
    int done = u->done, status = u->status;
    u->done = 0;
    pthread_mutex_unlock(&mu);
    if (!done) fprintf(stderr, "[%s] %s: no completion\n", u->name, what);
    if (!done || status != RTM2_OK) exit(1);
}
#define DO(u, call) wait_op((u), (call), #call)

static void on_message(void *ud, const rtm2_message_event *ev) {
    user *u = (user *)ud;
    const char *where = ev->channel_type == RTM2_CHANNEL_TYPE_STREAM ? "topic" : "channel";
    printf("[%s] %s %s%s%s: <%s> %.*s\n", u->name, where, ev->channel, *ev->topic ? "/" : "", ev->topic,
           ev->publisher, (int)ev->payload_len, (const char *)ev->payload);
    if (strcmp(u->name, "bob") == 0) {
        pthread_mutex_lock(&mu);
        messages_seen++;
        pthread_cond_broadcast(&cv);
        pthread_mutex_unlock(&mu);
        /* Answer from inside the callback: calling back into the SDK is allowed. */
        if (ev->channel_type == RTM2_CHANNEL_TYPE_MESSAGE && strcmp(ev->publisher, "alice") == 0) {
            rtm2_publish_options o;
            rtm2_publish_options_init(&o);
            o.message_type = RTM2_MESSAGE_TYPE_STRING;
            const char *reply = "hi alice, bob here";
            rtm2_client_publish(u->client, ev->channel, reply, strlen(reply), &o, NULL, NULL, NULL);
        }
    }
}

static void on_topic(void *ud, const rtm2_topic_event *ev) {
    user *u = (user *)ud;
    static const char *kinds[] = {"NONE", "SNAPSHOT", "REMOTE_JOIN", "REMOTE_LEAVE"};
    printf("[%s] topic event %s in %s (%zu topics)\n", u->name, kinds[ev->event_type & 3], ev->channel,
           ev->topic_count);
}

static void wait_messages(int n) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += 10;
    pthread_mutex_lock(&mu);
    while (messages_seen < n && pthread_cond_timedwait(&cv, &mu, &ts) == 0) {
    }
    int seen = messages_seen;
    pthread_mutex_unlock(&mu);
    if (seen < n) {
        fprintf(stderr, "bob saw %d messages, expected %d\n", seen, n);
        exit(1);
    }
}

static void start(user *u, const char *endpoint) {
    rtm2_config *cfg = NULL;
    if (rtm2_config_new(APP_ID, u->name, &cfg) != RTM2_OK ||
        (endpoint && rtm2_config_set_endpoint(cfg, endpoint) != RTM2_OK)) {
        fprintf(stderr, "config: %s\n", rtm2_last_error_message());
        exit(1);
    }
    rtm2_listener l;
    memset(&l, 0, sizeof l);
    l.struct_size = sizeof l;
    l.user_data = u;
    l.on_message = on_message;
    l.on_topic = on_topic;
    if (rtm2_client_new(cfg, &l, &u->client) != RTM2_OK) {
        fprintf(stderr, "client: %s\n", rtm2_last_error_message());
        exit(1);
    }
    rtm2_config_free(cfg);
    DO(u, rtm2_client_login(u->client, NULL, on_done, u, NULL)); /* development mode: no token */
}

int main(int argc, char **argv) {
    const char *endpoint = argc > 1 ? argv[1] : NULL; /* NULL: the embedded server */
    printf("rtm2 %s, server: %s\n", rtm2_version(), endpoint ? endpoint : "embedded");
    user alice = {"alice", NULL, 0, 0}, bob = {"bob", NULL, 0, 0};
    start(&alice, endpoint);
    start(&bob, endpoint);

    /* Message channel: both subscribe, alice says hello, bob answers from his callback. */
    DO(&alice, rtm2_client_subscribe(alice.client, "lobby", RTM2_SUBSCRIBE_DEFAULT, on_done, &alice, NULL));
    DO(&bob, rtm2_client_subscribe(bob.client, "lobby", RTM2_SUBSCRIBE_DEFAULT, on_done, &bob, NULL));
    rtm2_publish_options text;
    rtm2_publish_options_init(&text);
    text.message_type = RTM2_MESSAGE_TYPE_STRING;
    const char *hello = "hello everyone";
    DO(&alice, rtm2_client_publish(alice.client, "lobby", hello, strlen(hello), &text, on_done, &alice, NULL));
    wait_messages(2); /* alice's hello and bob's own reply (own messages are echoed) */

    /* Stream channel: alice presents in topic "slides"; bob subscribes to her there. */
    rtm2_stream_channel *stage_a = NULL, *stage_b = NULL;
    rtm2_client_create_stream_channel(alice.client, "stage", &stage_a);
    rtm2_client_create_stream_channel(bob.client, "stage", &stage_b);
    DO(&alice, rtm2_stream_channel_join(stage_a, NULL, RTM2_JOIN_DEFAULT, on_done, &alice, NULL));
    DO(&alice, rtm2_stream_channel_join_topic(stage_a, "slides", NULL, on_done, &alice, NULL));
    DO(&bob, rtm2_stream_channel_join(stage_b, NULL, RTM2_JOIN_DEFAULT, on_done, &bob, NULL));
    const char *presenter[] = {"alice"};
    DO(&bob, rtm2_stream_channel_subscribe_topic(stage_b, "slides", presenter, 1, on_done, &bob, NULL));
    rtm2_topic_message_options slide;
    rtm2_topic_message_options_init(&slide);
    slide.message_type = RTM2_MESSAGE_TYPE_STRING;
    const char *s1 = "slide 1: why rtm2";
    DO(&alice, rtm2_stream_channel_publish_topic(stage_a, "slides", s1, strlen(s1), &slide, on_done, &alice, NULL));
    wait_messages(3);

    /* Shutdown order: leave, logout, free the stream channels, then the clients. */
    DO(&bob, rtm2_stream_channel_leave(stage_b, on_done, &bob, NULL));
    DO(&alice, rtm2_stream_channel_leave(stage_a, on_done, &alice, NULL));
    DO(&alice, rtm2_client_logout(alice.client, on_done, &alice, NULL));
    DO(&bob, rtm2_client_logout(bob.client, on_done, &bob, NULL));
    rtm2_stream_channel_free(stage_a);
    rtm2_stream_channel_free(stage_b);
    rtm2_client_free(alice.client);
    rtm2_client_free(bob.client);
    printf("chat finished\n");
    return 0;
}
