/* C API behaviour against a real server: the embedded default (no argument) or a standalone
 * `rtm2 serve` spawned on 127.0.0.1:0 (--rtm2 PATH). Login/logout and link states, message
 * fields through the C structs, re-entrant calls from callbacks, the stream-channel quick start
 * with its result structs, errors with exact codes, same-uid takeover, overflow accounting, log
 * routing, and the lifecycle guarantees: every completion exactly once — also on timeout,
 * logout and free —, free from inside callbacks, stream channels outliving their client.
 * (End-to-end encryption: test_encryption.c; the short run has one encrypted exchange.)
 *
 *   test_client [--rtm2 PATH] [--short]     (--short: the brief scenario used under valgrind) */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

static int passed = 0;
static const char *g_endpoint = NULL; /* NULL = embedded */
static char g_prefix[32] = "e";       /* user-id prefix, unique per run mode */

#define TEST(name) static void name(void)
#define RUN(name)              \
    do {                       \
        name();                \
        passed++;              \
        h_log("ok %s", #name); \
    } while (0)

static const char *uid(char *buf, size_t cap, const char *name) {
    snprintf(buf, cap, "%s-%s", g_prefix, name);
    return buf;
}

static void check_threads(h_recorder *r) {
    CHECK(!r->on_main_thread);
    CHECK(!r->thread_mismatch);
    CHECK_INT(r->callbacks_after_destroy, 0);
}

/* Frees a client and checks the listener contract: destroy exactly once, before free
 * returned, every callback on one non-main thread. */
static void free_client(rtm2_client *c, h_recorder *r) {
    rtm2_client_free(c);
    CHECK_INT(r->destroyed, 1);
    check_threads(r);
    h_recorder_destroy(r);
}

static rtm2_client *login_client(const char *name, h_recorder *rec) {
    char u[96];
    rtm2_client *c = h_new_client(uid(u, sizeof u, name), g_endpoint, rec);
    h_call k;
    h_call_init(&k);
    CHECK_INT(OP(k, rtm2_client_login(c, NULL, h_complete, &k, NULL)), RTM2_OK);
    h_call_destroy(&k);
    return c;
}

static int32_t publish(rtm2_client *c, const char *channel, const void *data, size_t len, uint32_t channel_type,
                       uint32_t message_type, const char *custom_type, h_call *k) {
    rtm2_publish_options po;
    rtm2_publish_options_init(&po);
    po.channel_type = channel_type;
    po.message_type = message_type;
    po.custom_type = custom_type;
    return OP(*k, rtm2_client_publish(c, channel, data, len, &po, h_complete, k, NULL));
}

static int32_t publish_text(rtm2_client *c, const char *channel, const char *text, h_call *k) {
    return publish(c, channel, text, strlen(text), RTM2_CHANNEL_TYPE_MESSAGE, RTM2_MESSAGE_TYPE_STRING, NULL, k);
}

static int32_t subscribe(rtm2_client *c, const char *channel, h_call *k) {
    return OP(*k, rtm2_client_subscribe(c, channel, RTM2_SUBSCRIBE_DEFAULT, h_complete, k, NULL));
}

TEST(login_logout_and_link_states) {
    h_recorder rec;
    h_recorder_init(&rec);
    char u[96];
    rtm2_client *c = h_new_client(uid(u, sizeof u, "links"), g_endpoint, &rec);
    h_call k;
    h_call_init(&k);
    uint64_t req = 0;
    char *endpoint = NULL, *node = NULL;
    CHECK_INT(rtm2_client_get_connected_to(c, &endpoint, &node), RTM2_ERR_NOT_CONNECTED);
    CHECK(endpoint == NULL && node == NULL);
    h_call_reset(&k);
    CHECK_OK(rtm2_client_login(c, "", h_complete, &k, &req));
    CHECK(req != 0);
    CHECK_INT(h_wait_call(__FILE__, __LINE__, &k, H_WAIT_MS), RTM2_OK);
    CHECK_INT(k.request_id, req);
    CHECK_STR(k.operation, "login");
    CHECK_STR(k.reason, "");
    /* Where it is connected: the endpoint as text, no cluster node. */
    CHECK_OK(rtm2_client_get_connected_to(c, &endpoint, &node));
    char want_endpoint[96];
    snprintf(want_endpoint, sizeof want_endpoint, "%s%s", g_endpoint ? "tcp://" : "embedded", g_endpoint ? g_endpoint : "");
    CHECK_STR(endpoint, want_endpoint);
    CHECK_STR(node, "");
    rtm2_string_free(endpoint);
    rtm2_string_free(node);
    CHECK_OK(rtm2_client_get_connected_to(c, NULL, NULL));
    uint32_t connecting = RTM2_LINK_STATE_CONNECTING, connected = RTM2_LINK_STATE_CONNECTED,
             idle = RTM2_LINK_STATE_IDLE;
    h_event_free(h_expect(&rec, H_EV_LINK, h_match_link_state, &connecting));
    h_event *e = h_expect(&rec, H_EV_LINK, h_match_link_state, &connected);
    CHECK_INT(e->reason, RTM2_LINK_REASON_LOGIN_SUCCESS);
    /* One shape in every binding: the reason's number, name and words. */
    CHECK_INT(e->reason_number, RTM2_LINK_REASON_LOGIN_SUCCESS);
    CHECK_STR(e->reason_name, "LOGIN_SUCCESS");
    CHECK_STR(rtm2_enum_name("LinkState", e->current), "CONNECTED");
    CHECK_STR(rtm2_enum_name("LinkOperation", e->operation), "LOGIN");
    CHECK_STR(rtm2_enum_name("ServiceType", e->service), "MESSAGE");
    CHECK_STR(rtm2_enum_name("LinkStateChangeReason", e->reason), "LOGIN_SUCCESS");
    CHECK(rtm2_enum_name("LinkStateChangeReason", 1000) == NULL);
    CHECK(rtm2_enum_name("NoSuchEnumeration", 0) == NULL);
    CHECK_INT(e->operation, RTM2_LINK_OPERATION_LOGIN);
    CHECK_INT(e->previous, RTM2_LINK_STATE_CONNECTING);
    CHECK(e->timestamp_ms > 0);
    h_event_free(e);
    uint32_t state = 0;
    CHECK_OK(rtm2_client_get_link_state(c, &state));
    CHECK_INT(state, RTM2_LINK_STATE_CONNECTED);
    /* The completion ran on the listener's dispatcher thread. */
    CHECK(pthread_equal(k.thread, rec.thread));

    CHECK_INT(OP(k, rtm2_client_login(c, NULL, h_complete, &k, NULL)), RTM2_ERR_DUPLICATE_OPERATION);
    CHECK(strlen(k.reason) > 0);
    CHECK_INT(OP(k, rtm2_client_logout(c, h_complete, &k, NULL)), RTM2_OK);
    e = h_expect(&rec, H_EV_LINK, h_match_link_state, &idle);
    CHECK_INT(e->reason, RTM2_LINK_REASON_LOGOUT);
    h_event_free(e);
    CHECK_OK(rtm2_client_get_link_state(c, &state));
    CHECK_INT(state, RTM2_LINK_STATE_IDLE);
    /* Use after logout: a clear code through the completion. */
    CHECK_INT(publish_text(c, "room", "after logout", &k), RTM2_ERR_NOT_LOGIN);
    CHECK_STR(k.operation, "publish");
    CHECK(strlen(k.reason) > 0);
    CHECK_INT(subscribe(c, "room", &k), RTM2_ERR_NOT_LOGIN);
    /* And it can log in again. */
    CHECK_INT(OP(k, rtm2_client_login(c, NULL, h_complete, &k, NULL)), RTM2_OK);
    h_call_destroy(&k);
    free_client(c, &rec);
}

static int match_publisher(const h_event *e, const void *p) {
    return strcmp(e->publisher, (const char *)p) == 0;
}

TEST(messages_arrive_with_every_field) {
    h_recorder ra, rb;
    h_recorder_init(&ra);
    h_recorder_init(&rb);
    rtm2_client *a = login_client("msg-alice", &ra);
    rtm2_client *b = login_client("msg-bob", &rb);
    char alice[96], bob[96];
    uid(alice, sizeof alice, "msg-alice");
    uid(bob, sizeof bob, "msg-bob");
    h_call k;
    h_call_init(&k);
    CHECK_INT(subscribe(b, "room.c", &k), RTM2_OK);
    CHECK_INT(subscribe(a, "room.c", &k), RTM2_OK);

    CHECK_INT(publish(a, "room.c", "hello bob", 9, RTM2_CHANNEL_TYPE_MESSAGE, RTM2_MESSAGE_TYPE_STRING, "text", &k),
              RTM2_OK);
    CHECK_STR(k.operation, "publish");
    h_event *e = h_expect(&rb, H_EV_MESSAGE, h_match_any, NULL);
    CHECK_INT(e->channel_type, RTM2_CHANNEL_TYPE_MESSAGE);
    CHECK_STR(e->channel, "room.c");
    CHECK_STR(e->publisher, alice);
    CHECK_INT(e->message_type, RTM2_MESSAGE_TYPE_STRING);
    CHECK_STR(e->custom_type, "text");
    CHECK_STR(e->topic, "");
    CHECK(h_match_text(e, "hello bob"));
    CHECK(e->timestamp_ms > 0);
    h_event_free(e);
    /* Own-message echo is on by default. */
    e = h_expect(&ra, H_EV_MESSAGE, h_match_any, NULL);
    CHECK_STR(e->publisher, alice);
    CHECK(h_match_text(e, "hello bob"));
    h_event_free(e);

    /* Binary payload with NUL bytes: length is exact, nothing is cut. */
    const unsigned char bin[] = {0x00, 0x01, 0xff, 0x00, 0x7f};
    CHECK_INT(publish(a, "room.c", bin, sizeof bin, RTM2_CHANNEL_TYPE_MESSAGE, RTM2_MESSAGE_TYPE_BINARY, NULL, &k),
              RTM2_OK);
    e = h_expect(&rb, H_EV_MESSAGE, h_match_any, NULL);
    CHECK_INT(e->message_type, RTM2_MESSAGE_TYPE_BINARY);
    CHECK_INT(e->payload_len, sizeof bin);
    CHECK(memcmp(e->payload, bin, sizeof bin) == 0);
    CHECK_STR(e->custom_type, "");
    h_event_free(e);

    /* Peer to peer: the channel of a USER message is the receiver's id. */
    CHECK_INT(publish(a, bob, "psst", 4, RTM2_CHANNEL_TYPE_USER, RTM2_MESSAGE_TYPE_STRING, "dm", &k), RTM2_OK);
    e = h_expect(&rb, H_EV_MESSAGE, match_publisher, alice);
    CHECK_INT(e->channel_type, RTM2_CHANNEL_TYPE_USER);
    CHECK_STR(e->channel, bob);
    CHECK_STR(e->custom_type, "dm");
    CHECK(h_match_text(e, "psst"));
    h_event_free(e);
    char nobody[96];
    CHECK_INT(publish(a, uid(nobody, sizeof nobody, "nobody"), "x", 1, RTM2_CHANNEL_TYPE_USER,
                      RTM2_MESSAGE_TYPE_STRING, NULL, &k),
              RTM2_ERR_CHANNEL_RECEIVER_OFFLINE);
    CHECK_STR(k.operation, "publish");

    CHECK_INT(OP(k, rtm2_client_unsubscribe(b, "room.c", h_complete, &k, NULL)), RTM2_OK);
    CHECK_INT(OP(k, rtm2_client_unsubscribe(b, "room.c", h_complete, &k, NULL)), RTM2_ERR_CHANNEL_NOT_SUBSCRIBED);
    h_call_destroy(&k);
    free_client(a, &ra);
    free_client(b, &rb);
}

/* on_message_batch: runs of messages in one call each, in order, instead of on_message. */
TEST(messages_arrive_in_batches_when_asked) {
    h_recorder ra, rb;
    h_recorder_init(&ra);
    h_recorder_init(&rb);
    rb.batched = 1;
    rtm2_client *a = login_client("batch-alice", &ra);
    rtm2_client *b = login_client("batch-bob", &rb);
    char alice[96];
    uid(alice, sizeof alice, "batch-alice");
    h_call k;
    h_call_init(&k);
    CHECK_INT(subscribe(b, "room.batch", &k), RTM2_OK);
    enum { N = 300 };
    h_call calls[N];
    char text[N][16];
    rtm2_publish_options po;
    rtm2_publish_options_init(&po);
    po.message_type = RTM2_MESSAGE_TYPE_STRING;
    for (int i = 0; i < N; i++) { /* pipelined: started without waiting */
        h_call_init(&calls[i]);
        snprintf(text[i], sizeof text[i], "m%d", i);
        CHECK_OK(rtm2_client_publish(a, "room.batch", text[i], strlen(text[i]), &po, h_complete, &calls[i], NULL));
    }
    for (int i = 0; i < N; i++) CHECK_INT(h_wait_call(__FILE__, __LINE__, &calls[i], H_WAIT_MS), RTM2_OK);
    for (int i = 0; i < N; i++) {
        h_event *e = h_expect(&rb, H_EV_MESSAGE, h_match_any, NULL);
        CHECK(h_match_text(e, text[i]));
        CHECK_STR(e->channel, "room.batch");
        CHECK_STR(e->publisher, alice);
        h_event_free(e);
    }
    pthread_mutex_lock(&rb.mu);
    CHECK(rb.batches >= 1 && rb.batches <= N);
    CHECK(rb.batch_max >= 1 && rb.batch_max <= 256);
    pthread_mutex_unlock(&rb.mu);
    for (int i = 0; i < N; i++) h_call_destroy(&calls[i]);
    h_call_destroy(&k);
    free_client(a, &ra);
    free_client(b, &rb);
}

TEST(same_user_id_takes_over) {
    h_recorder r1, r2;
    h_recorder_init(&r1);
    h_recorder_init(&r2);
    rtm2_client *first = login_client("twin", &r1);
    rtm2_client *second = login_client("twin", &r2);
    uint32_t failed = RTM2_LINK_STATE_FAILED;
    h_event *e = h_expect(&r1, H_EV_LINK, h_match_link_state, &failed);
    CHECK_INT(e->reason, RTM2_LINK_REASON_SAME_UID_LOGIN);
    CHECK_INT(e->reason, 27);
    CHECK_INT(e->reason_number, 27);
    CHECK_STR(e->reason_name, "SAME_UID_LOGIN");
    CHECK(strlen(e->reason_text) > 0);
    h_event_free(e);
    uint32_t state = 0;
    CHECK_OK(rtm2_client_get_link_state(first, &state));
    CHECK_INT(state, RTM2_LINK_STATE_FAILED);
    h_call k;
    h_call_init(&k);
    CHECK_INT(publish_text(first, "room", "x", &k), RTM2_ERR_NOT_LOGIN);
    CHECK_OK(rtm2_client_get_link_state(second, &state));
    CHECK_INT(state, RTM2_LINK_STATE_CONNECTED);
    h_call_destroy(&k);
    free_client(first, &r1);
    free_client(second, &r2);
}

/* ---- re-entrancy: calls into the SDK from inside callbacks ---- */

typedef struct reentry {
    rtm2_client *self;
    h_call inner;
    int replied;
    int32_t start_status;
    uint32_t state_in_callback;
} reentry;

static void reply_from_callback(h_recorder *r, const rtm2_message_event *ev) {
    reentry *x = (reentry *)r->hook_data;
    if (ev->payload_len == 4 && memcmp(ev->payload, "ping", 4) == 0 && !x->replied) {
        x->replied = 1;
        rtm2_publish_options po;
        rtm2_publish_options_init(&po);
        po.message_type = RTM2_MESSAGE_TYPE_STRING;
        /* Publish from inside the message callback: returns at once, completes later on this
         * same thread. */
        x->start_status = rtm2_client_publish(x->self, ev->channel, "pong", 4, &po, h_complete, &x->inner, NULL);
        rtm2_client_get_link_state(x->self, &x->state_in_callback);
        rtm2_stream_channel *sc = NULL;
        if (rtm2_client_create_stream_channel(x->self, "reentrant", &sc) == RTM2_OK) rtm2_stream_channel_free(sc);
    }
}

TEST(callbacks_may_call_back_into_the_sdk) {
    h_recorder ra, rb;
    h_recorder_init(&ra);
    h_recorder_init(&rb);
    reentry x;
    memset(&x, 0, sizeof x);
    h_call_init(&x.inner);
    rb.message_hook = reply_from_callback;
    rb.hook_data = &x;
    rtm2_client *a = login_client("re-alice", &ra);
    rtm2_client *b = login_client("re-bob", &rb);
    x.self = b;
    h_call k;
    h_call_init(&k);
    CHECK_INT(subscribe(a, "ping.pong", &k), RTM2_OK);
    CHECK_INT(subscribe(b, "ping.pong", &k), RTM2_OK);
    CHECK_INT(publish_text(a, "ping.pong", "ping", &k), RTM2_OK);
    h_event_free(h_expect(&ra, H_EV_MESSAGE, h_match_text, "pong"));
    CHECK_INT(h_wait_call(__FILE__, __LINE__, &x.inner, H_WAIT_MS), RTM2_OK);
    CHECK_INT(x.start_status, RTM2_OK);
    CHECK_INT(x.state_in_callback, RTM2_LINK_STATE_CONNECTED);
    CHECK(pthread_equal(x.inner.thread, rb.thread)); /* the inner completion: same dispatcher */
    h_call_destroy(&k);
    free_client(a, &ra);
    free_client(b, &rb);
    h_call_destroy(&x.inner);
}

/* ---- stream channels ---- */

TEST(stream_channel_quick_start_with_result_structs) {
    h_recorder ra, rb;
    h_recorder_init(&ra);
    h_recorder_init(&rb);
    rtm2_client *a = login_client("sc-alice", &ra);
    rtm2_client *b = login_client("sc-bob", &rb);
    char alice[96], bob[96], want[256];
    uid(alice, sizeof alice, "sc-alice");
    uid(bob, sizeof bob, "sc-bob");
    rtm2_stream_channel *sa = NULL, *sb = NULL;
    CHECK_OK(rtm2_client_create_stream_channel(a, "stage", &sa));
    CHECK_OK(rtm2_client_create_stream_channel(b, "stage", &sb));
    h_call k;
    h_call_init(&k);
    CHECK_INT(OP(k, rtm2_stream_channel_join(sa, NULL, RTM2_JOIN_DEFAULT, h_complete, &k, NULL)), RTM2_OK);
    CHECK(k.has_join);
    CHECK_STR(k.join_channel, "stage");
    CHECK_STR(k.join_summary, "");
    bool joined = false;
    CHECK_OK(rtm2_stream_channel_is_joined(sa, &joined));
    CHECK(joined);
    rtm2_join_topic_options jo;
    rtm2_join_topic_options_init(&jo);
    jo.meta = "presenter";
    jo.qos = RTM2_MESSAGE_QOS_ORDERED;
    CHECK_INT(OP(k, rtm2_stream_channel_join_topic(sa, "slides", &jo, h_complete, &k, NULL)), RTM2_OK);
    CHECK(!k.has_join);

    /* Bob's join result and SNAPSHOT event show Alice's topic with her meta. */
    CHECK_INT(OP(k, rtm2_stream_channel_join(sb, "", RTM2_JOIN_DEFAULT, h_complete, &k, NULL)), RTM2_OK);
    snprintf(want, sizeof want, "slides[%s/presenter]", alice);
    CHECK_STR(k.join_summary, want);
    uint32_t snapshot = RTM2_TOPIC_EVENT_TYPE_SNAPSHOT, remote_join = RTM2_TOPIC_EVENT_TYPE_REMOTE_JOIN,
             remote_leave = RTM2_TOPIC_EVENT_TYPE_REMOTE_LEAVE;
    h_event *e = h_expect(&rb, H_EV_TOPIC, h_match_topic_type, &snapshot);
    CHECK_STR(e->channel, "stage");
    CHECK_STR(e->summary, want);
    h_event_free(e);

    const char *users[] = {alice};
    CHECK_INT(OP(k, rtm2_stream_channel_subscribe_topic(sb, "slides", users, 1, h_complete, &k, NULL)), RTM2_OK);
    CHECK(k.has_subscribe_topic);
    CHECK_STR(k.succeeded, alice);
    CHECK_STR(k.failed, "");
    CHECK_INT(OP(k, rtm2_stream_channel_get_subscribed_users(sb, "slides", h_complete, &k, NULL)), RTM2_OK);
    CHECK(k.has_users);
    CHECK_STR(k.users, alice);
    CHECK_STR(k.operation, "get_subscribed_users");
    /* The synchronous form: the client knows its subscriptions. */
    rtm2_user_list *subscribed = NULL;
    CHECK_OK(rtm2_stream_channel_subscribed_users(sb, "slides", &subscribed));
    CHECK_INT(subscribed->count, 1);
    CHECK_STR(subscribed->users[0], alice);
    rtm2_user_list_free(subscribed);
    subscribed = NULL;
    CHECK_INT(rtm2_stream_channel_subscribed_users(sb, "", &subscribed), RTM2_ERR_CHANNEL_INVALID_TOPIC_NAME);
    CHECK(subscribed == NULL);
    CHECK_INT(rtm2_stream_channel_subscribed_users(sb, "slides", NULL), RTM2_ERR_NULL_PARAMETER);

    rtm2_topic_message_options tm;
    rtm2_topic_message_options_init(&tm);
    tm.message_type = RTM2_MESSAGE_TYPE_STRING;
    tm.custom_type = "page";
    CHECK_INT(OP(k, rtm2_stream_channel_publish_topic(sa, "slides", "slide 1", 7, &tm, h_complete, &k, NULL)),
              RTM2_OK);
    e = h_expect(&rb, H_EV_MESSAGE, h_match_any, NULL);
    CHECK_INT(e->channel_type, RTM2_CHANNEL_TYPE_STREAM);
    CHECK_STR(e->channel, "stage");
    CHECK_STR(e->topic, "slides");
    CHECK_STR(e->publisher, alice);
    CHECK_STR(e->custom_type, "page");
    CHECK(h_match_text(e, "slide 1"));
    h_event_free(e);

    /* Bob publishes too: Alice sees REMOTE_JOIN. */
    CHECK_INT(OP(k, rtm2_stream_channel_join_topic(sb, "chat", NULL, h_complete, &k, NULL)), RTM2_OK);
    e = h_expect(&ra, H_EV_TOPIC, h_match_topic_type, &remote_join);
    CHECK_STR(e->publisher, bob);
    CHECK_STR(e->first_topic, "chat");
    h_event_free(e);

    CHECK_INT(OP(k, rtm2_stream_channel_unsubscribe_topic(sb, "slides", NULL, 0, h_complete, &k, NULL)), RTM2_OK);
    /* Nobody subscribed in the topic any more: an empty list, in both forms. */
    CHECK_INT(OP(k, rtm2_stream_channel_get_subscribed_users(sb, "slides", h_complete, &k, NULL)), RTM2_OK);
    CHECK(k.has_users);
    CHECK_STR(k.users, "");
    CHECK_OK(rtm2_stream_channel_subscribed_users(sb, "slides", &subscribed));
    CHECK_INT(subscribed->count, 0);
    CHECK(subscribed->users == NULL);
    rtm2_user_list_free(subscribed);
    rtm2_user_list_free(NULL);
    CHECK_INT(OP(k, rtm2_stream_channel_leave_topic(sa, "slides", h_complete, &k, NULL)), RTM2_OK);
    e = h_expect(&rb, H_EV_TOPIC, h_match_topic_type, &remote_leave);
    CHECK_STR(e->publisher, alice);
    CHECK_STR(e->first_topic, "slides");
    h_event_free(e);
    CHECK_INT(OP(k, rtm2_stream_channel_leave_topic(sa, "slides", h_complete, &k, NULL)),
              RTM2_ERR_CHANNEL_TOPIC_NOT_JOINED);

    /* 8 topics per channel; the 9th fails with 11014. */
    for (int i = 0; i < 8; i++) {
        char t[16];
        snprintf(t, sizeof t, "t%d", i);
        CHECK_INT(OP(k, rtm2_stream_channel_join_topic(sa, t, NULL, h_complete, &k, NULL)), RTM2_OK);
    }
    CHECK_INT(OP(k, rtm2_stream_channel_join_topic(sa, "t8", NULL, h_complete, &k, NULL)),
              RTM2_ERR_CHANNEL_EXCEED_TOPIC_LIMITATION);
    CHECK_INT(OP(k, rtm2_stream_channel_join_topic(sa, "seventeen-chars-x", NULL, h_complete, &k, NULL)),
              RTM2_ERR_CHANNEL_INVALID_TOPIC_NAME);

    CHECK_INT(OP(k, rtm2_stream_channel_leave(sb, h_complete, &k, NULL)), RTM2_OK);
    CHECK_INT(OP(k, rtm2_stream_channel_leave(sa, h_complete, &k, NULL)), RTM2_OK);
    CHECK_OK(rtm2_stream_channel_is_joined(sa, &joined));
    CHECK(!joined);
    CHECK_INT(OP(k, rtm2_stream_channel_leave(sa, h_complete, &k, NULL)), RTM2_ERR_CHANNEL_NOT_JOINED);
    h_call_destroy(&k);
    rtm2_stream_channel_free(sa);
    rtm2_stream_channel_free(sb);
    free_client(a, &ra);
    free_client(b, &rb);
}

/* ---- errors with exact codes ---- */

TEST(errors_have_exact_codes) {
    h_recorder rec;
    h_recorder_init(&rec);
    char u[96];
    rtm2_client *c = h_new_client(uid(u, sizeof u, "errors"), g_endpoint, &rec);
    h_call k;
    h_call_init(&k);
    /* Before login. */
    CHECK_INT(publish_text(c, "room", "x", &k), RTM2_ERR_NOT_LOGIN);
    CHECK_INT(subscribe(c, "room", &k), RTM2_ERR_NOT_LOGIN);
    CHECK_INT(OP(k, rtm2_client_login(c, NULL, h_complete, &k, NULL)), RTM2_OK);

    char name65[80];
    memset(name65, 'n', 65);
    name65[65] = 0;
    CHECK_INT(publish_text(c, "a/b", "x", &k), RTM2_ERR_INVALID_CHANNEL_NAME);
    CHECK_INT(publish_text(c, name65, "x", &k), RTM2_ERR_INVALID_CHANNEL_NAME);
    CHECK_INT(publish_text(c, "", "x", &k), RTM2_ERR_INVALID_CHANNEL_NAME);
    CHECK_INT(subscribe(c, "_hidden", &k), RTM2_ERR_INVALID_CHANNEL_NAME);
    rtm2_stream_channel *sc = NULL;
    CHECK_STATUS(rtm2_client_create_stream_channel(c, name65, &sc), RTM2_ERR_INVALID_CHANNEL_NAME);

    /* 32 KiB payload + custom type; more is 11010. custom type over 32 bytes: 11029. */
    size_t big = 32 * 1024;
    char *payload = (char *)malloc(big + 1);
    memset(payload, 'p', big + 1);
    CHECK_INT(publish(c, "room", payload, big, RTM2_CHANNEL_TYPE_MESSAGE, RTM2_MESSAGE_TYPE_BINARY, NULL, &k), RTM2_OK);
    CHECK_INT(publish(c, "room", payload, big + 1, RTM2_CHANNEL_TYPE_MESSAGE, RTM2_MESSAGE_TYPE_BINARY, NULL, &k),
              RTM2_ERR_CHANNEL_MESSAGE_LENGTH_EXCEED_LIMITATION);
    CHECK_INT(publish(c, "room", payload, big, RTM2_CHANNEL_TYPE_MESSAGE, RTM2_MESSAGE_TYPE_BINARY, "t", &k),
              RTM2_ERR_CHANNEL_MESSAGE_LENGTH_EXCEED_LIMITATION);
    free(payload);
    char ct33[40];
    memset(ct33, 'c', 33);
    ct33[33] = 0;
    CHECK_INT(publish(c, "room", "x", 1, RTM2_CHANNEL_TYPE_MESSAGE, RTM2_MESSAGE_TYPE_STRING, ct33, &k),
              RTM2_ERR_CHANNEL_CUSTOM_TYPE_LENGTH_OVERFLOW);
    CHECK_INT(publish(c, "room", NULL, 0, RTM2_CHANNEL_TYPE_MESSAGE, RTM2_MESSAGE_TYPE_STRING, NULL, &k),
              RTM2_ERR_CHANNEL_INVALID_MESSAGE);
    CHECK_INT(publish(c, "room", "\xff", 1, RTM2_CHANNEL_TYPE_MESSAGE, RTM2_MESSAGE_TYPE_STRING, NULL, &k),
              RTM2_ERR_CHANNEL_INVALID_MESSAGE);
    CHECK_INT(publish(c, "bad/user", "x", 1, RTM2_CHANNEL_TYPE_USER, RTM2_MESSAGE_TYPE_STRING, NULL, &k),
              RTM2_ERR_INVALID_USER_ID);
    CHECK_INT(publish(c, "room", "x", 1, RTM2_CHANNEL_TYPE_STREAM, RTM2_MESSAGE_TYPE_STRING, NULL, &k),
              RTM2_ERR_INVALID_CHANNEL_TYPE);

    /* 50 subscribed channels; the 51st: 11005. */
    for (int i = 0; i < 50; i++) {
        char ch[16];
        snprintf(ch, sizeof ch, "ch%d", i);
        CHECK_INT(subscribe(c, ch, &k), RTM2_OK);
    }
    CHECK_INT(subscribe(c, "ch50", &k), RTM2_ERR_CHANNEL_INSTANCE_EXCEED_LIMITATION);
    CHECK_STR(k.operation, "subscribe");

    CHECK_STATUS(rtm2_client_set_parameters(c, "{\"no_such_key\": 1}"), RTM2_ERR_INVALID_PARAMETER);
    CHECK(strstr(rtm2_last_error_message(), "no_such_key") != NULL);
    h_call_destroy(&k);
    free_client(c, &rec);
}

/* ---- overflow: nothing is lost silently ---- */

typedef struct gate {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int open, blocked;
} gate;

static void block_first_message(h_recorder *r, const rtm2_message_event *ev) {
    (void)ev;
    gate *g = (gate *)r->hook_data;
    pthread_mutex_lock(&g->mu);
    if (!g->blocked) {
        g->blocked = 1;
        pthread_cond_broadcast(&g->cv);
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += 20;
        while (!g->open && pthread_cond_timedwait(&g->cv, &g->mu, &ts) == 0) {
        }
    }
    pthread_mutex_unlock(&g->mu);
}

TEST(overflow_is_reported_with_the_count) {
    enum { SENT = 100 };
    h_recorder ra, rb;
    h_recorder_init(&ra);
    h_recorder_init(&rb);
    gate g;
    memset(&g, 0, sizeof g);
    pthread_mutex_init(&g.mu, NULL);
    pthread_cond_init(&g.cv, NULL);
    rb.message_hook = block_first_message;
    rb.hook_data = &g;
    char u[96];
    rtm2_client *a = login_client("ov-alice", &ra);
    rtm2_config *cfg = NULL;
    CHECK_OK(rtm2_config_new(H_APP_ID, uid(u, sizeof u, "ov-bob"), &cfg));
    if (g_endpoint) CHECK_OK(rtm2_config_set_endpoint(cfg, g_endpoint));
    CHECK_OK(rtm2_config_set_event_queue_capacity(cfg, 4));
    rtm2_listener l = h_recorder_listener(&rb);
    rtm2_client *b = NULL;
    CHECK_OK(rtm2_client_new(cfg, &l, &b));
    rtm2_config_free(cfg);
    h_call k;
    h_call_init(&k);
    CHECK_INT(OP(k, rtm2_client_login(b, NULL, h_complete, &k, NULL)), RTM2_OK);
    CHECK_INT(subscribe(b, "flood", &k), RTM2_OK);
    /* Bob's dispatcher blocks in the first message callback while Alice floods. */
    CHECK_INT(publish_text(a, "flood", "m", &k), RTM2_OK);
    pthread_mutex_lock(&g.mu);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += 10;
    while (!g.blocked && pthread_cond_timedwait(&g.cv, &g.mu, &ts) == 0) {
    }
    CHECK(g.blocked);
    pthread_mutex_unlock(&g.mu);
    for (int i = 1; i < SENT; i++) CHECK_INT(publish_text(a, "flood", "m", &k), RTM2_OK);
    pthread_mutex_lock(&g.mu);
    g.open = 1;
    pthread_cond_broadcast(&g.cv);
    pthread_mutex_unlock(&g.mu);
    /* Every message is either delivered or counted as dropped. */
    int delivered = 0;
    uint64_t dropped = 0;
    int64_t deadline = h_now_ms() + H_WAIT_MS;
    while ((uint64_t)delivered + dropped < SENT) {
        if (h_now_ms() > deadline) h_fail(__FILE__, __LINE__, "delivered %d + dropped %llu < %d", delivered,
                                          (unsigned long long)dropped, SENT);
        h_event *e = h_next_event(&rb, 200);
        if (!e) continue;
        if (e->kind == H_EV_MESSAGE) delivered++;
        if (e->kind == H_EV_OVERFLOW) dropped += e->dropped;
        h_event_free(e);
    }
    CHECK_INT((uint64_t)delivered + dropped, SENT);
    CHECK(dropped > 0);
    h_call_destroy(&k);
    free_client(a, &ra);
    free_client(b, &rb);
    pthread_mutex_destroy(&g.mu);
    pthread_cond_destroy(&g.cv);
}

/* ---- lifecycle: exactly once on timeout, logout, free ---- */

/* ---- lengths and counts are checked before the memory behind them is read ---- */

TEST(sizes_are_checked_before_anything_is_read) {
    /* Each call passes a small heap buffer with a length or count far beyond it: the SDK must
     * refuse the size (with the limit's code, as a completion) without reading past the
     * buffer — under AddressSanitizer any such read fails the run, and a length of 2^40 used
     * to abort the process in the allocator. */
    h_recorder rec;
    h_recorder_init(&rec);
    rtm2_client *c = login_client("sizes", &rec);
    h_call k;
    h_call_init(&k);
    char *buf16 = (char *)malloc(16);
    memset(buf16, 'p', 16);
    const size_t huge = (size_t)1 << 40;
    CHECK_INT(OP(k, rtm2_client_publish(c, "room", buf16, huge, NULL, h_complete, &k, NULL)),
              RTM2_ERR_CHANNEL_MESSAGE_LENGTH_EXCEED_LIMITATION);
    CHECK_STR(k.operation, "publish");
    CHECK_INT(OP(k, rtm2_client_publish(c, "room", buf16, 64 * 1024, NULL, h_complete, &k, NULL)),
              RTM2_ERR_CHANNEL_MESSAGE_LENGTH_EXCEED_LIMITATION);
    CHECK_INT(OP(k, rtm2_client_publish(c, "room", buf16, 16, NULL, h_complete, &k, NULL)), RTM2_OK);

    rtm2_stream_channel *sc = NULL;
    CHECK_OK(rtm2_client_create_stream_channel(c, "sizes", &sc));
    CHECK_INT(OP(k, rtm2_stream_channel_publish_topic(sc, "t", buf16, huge, NULL, h_complete, &k, NULL)),
              RTM2_ERR_CHANNEL_MESSAGE_LENGTH_EXCEED_LIMITATION);
    CHECK_STR(k.operation, "publish_topic");
    CHECK_INT(OP(k, rtm2_stream_channel_publish_topic(sc, "t", buf16, 1025, NULL, h_complete, &k, NULL)),
              RTM2_ERR_CHANNEL_MESSAGE_LENGTH_EXCEED_LIMITATION);
    /* Within the limit the usual checks apply (not joined). */
    CHECK_INT(OP(k, rtm2_stream_channel_publish_topic(sc, "t", buf16, 16, NULL, h_complete, &k, NULL)),
              RTM2_ERR_CHANNEL_NOT_JOINED);

    const char **one_user = (const char **)malloc(sizeof *one_user);
    one_user[0] = "alice";
    CHECK_INT(OP(k, rtm2_stream_channel_subscribe_topic(sc, "t", one_user, 1000, h_complete, &k, NULL)),
              RTM2_ERR_CHANNEL_INVALID_USER_LIST);
    CHECK_INT(OP(k, rtm2_stream_channel_subscribe_topic(sc, "t", one_user, 129, h_complete, &k, NULL)),
              RTM2_ERR_CHANNEL_INVALID_USER_LIST);
    CHECK_INT(OP(k, rtm2_stream_channel_unsubscribe_topic(sc, "t", one_user, 100000, h_complete, &k, NULL)),
              RTM2_ERR_CHANNEL_INVALID_USER_LIST);
    CHECK_INT(OP(k, rtm2_stream_channel_subscribe_topic(sc, "t", one_user, 1, h_complete, &k, NULL)),
              RTM2_ERR_CHANNEL_NOT_JOINED);

    CHECK_INT(OP(k, rtm2_client_subscribe(c, "sizes", RTM2_SUBSCRIBE_DEFAULT, h_complete, &k, NULL)), RTM2_OK);
    rtm2_state_item *one_state = (rtm2_state_item *)malloc(sizeof *one_state);
    one_state[0].key = "mood";
    one_state[0].value = "ok";
    CHECK_INT(OP(k, rtm2_presence_set_state(c, "sizes", RTM2_CHANNEL_TYPE_MESSAGE, one_state, 1000, h_complete, &k,
                                            NULL)),
              RTM2_ERR_PRESENCE_STATE_COUNT_OVERFLOW);
    CHECK_INT(OP(k, rtm2_presence_set_state(c, "sizes", RTM2_CHANNEL_TYPE_MESSAGE, one_state, 33, h_complete, &k,
                                            NULL)),
              RTM2_ERR_PRESENCE_STATE_COUNT_OVERFLOW);
    CHECK_INT(OP(k, rtm2_presence_set_state(c, "sizes", RTM2_CHANNEL_TYPE_MESSAGE, one_state, 1, h_complete, &k,
                                            NULL)),
              RTM2_OK);
    const char **one_key = (const char **)malloc(sizeof *one_key);
    one_key[0] = "mood";
    CHECK_INT(OP(k, rtm2_presence_remove_state(c, "sizes", RTM2_CHANNEL_TYPE_MESSAGE, one_key, 1000, h_complete, &k,
                                               NULL)),
              RTM2_ERR_PRESENCE_STATE_COUNT_OVERFLOW);
    CHECK_INT(OP(k, rtm2_presence_remove_state(c, "sizes", RTM2_CHANNEL_TYPE_MESSAGE, one_key, 1, h_complete, &k,
                                               NULL)),
              RTM2_OK);

    rtm2_metadata_item *one_item = (rtm2_metadata_item *)calloc(1, sizeof *one_item);
    one_item[0].key = "k";
    one_item[0].value = "v";
    one_item[0].revision = -1;
    CHECK_INT(OP(k, rtm2_storage_set_channel_metadata(c, "sizes", RTM2_CHANNEL_TYPE_MESSAGE, one_item, 100000, NULL,
                                                      h_complete, &k, NULL)),
              RTM2_ERR_STORAGE_METADATA_ITEM_EXCEED_LIMITATION);
    CHECK_STR(k.operation, "set_channel_metadata");
    CHECK_INT(OP(k, rtm2_storage_update_channel_metadata(c, "sizes", RTM2_CHANNEL_TYPE_MESSAGE, one_item, 33, NULL,
                                                         h_complete, &k, NULL)),
              RTM2_ERR_STORAGE_METADATA_ITEM_EXCEED_LIMITATION);
    CHECK_INT(OP(k, rtm2_storage_remove_channel_metadata(c, "sizes", RTM2_CHANNEL_TYPE_MESSAGE, one_item, 1000, NULL,
                                                         h_complete, &k, NULL)),
              RTM2_ERR_STORAGE_METADATA_ITEM_EXCEED_LIMITATION);
    CHECK_INT(OP(k, rtm2_storage_set_user_metadata(c, "", one_item, 1000, NULL, h_complete, &k, NULL)),
              RTM2_ERR_STORAGE_METADATA_ITEM_EXCEED_LIMITATION);
    CHECK_STR(k.operation, "set_user_metadata");
    CHECK_INT(OP(k, rtm2_storage_update_user_metadata(c, "", one_item, 1000, NULL, h_complete, &k, NULL)),
              RTM2_ERR_STORAGE_METADATA_ITEM_EXCEED_LIMITATION);
    CHECK_INT(OP(k, rtm2_storage_remove_user_metadata(c, "", one_item, 1000, NULL, h_complete, &k, NULL)),
              RTM2_ERR_STORAGE_METADATA_ITEM_EXCEED_LIMITATION);
    CHECK_INT(OP(k, rtm2_storage_set_channel_metadata(c, "sizes", RTM2_CHANNEL_TYPE_MESSAGE, one_item, 1, NULL,
                                                      h_complete, &k, NULL)),
              RTM2_OK);

    free(buf16);
    free(one_user);
    free(one_state);
    free(one_key);
    free(one_item);
    rtm2_stream_channel_free(sc);
    h_call_destroy(&k);
    free_client(c, &rec);
}

static rtm2_client *unreachable_client(const char *name, h_recorder *rec, uint64_t timeout_ms) {
    char u[96], ep[64];
    snprintf(ep, sizeof ep, "127.0.0.1:%d", h_unused_port());
    rtm2_client *c = h_new_client(uid(u, sizeof u, name), ep, rec);
    char json[96];
    snprintf(json, sizeof json, "{\"request_timeout_ms\": %llu}", (unsigned long long)timeout_ms);
    CHECK_OK(rtm2_client_set_parameters(c, json));
    return c;
}

TEST(timeouts_complete_with_the_operation_code) {
    h_recorder rec;
    h_recorder_init(&rec);
    rtm2_client *c = unreachable_client("timeout", &rec, 300);
    h_call k;
    h_call_init(&k);
    int64_t t0 = h_now_ms();
    CHECK_INT(OP(k, rtm2_client_login(c, NULL, h_complete, &k, NULL)), RTM2_ERR_LOGIN_TIMEOUT);
    CHECK(h_now_ms() - t0 < 5000);
    CHECK_STR(k.operation, "login");
    h_call_destroy(&k);
    free_client(c, &rec);
}

/* A timeout for one call (the calls this thread starts), and back to the configured one. */
TEST(a_call_timeout_applies_to_the_calls_of_this_thread) {
    h_recorder rec;
    h_recorder_init(&rec);
    rtm2_client *c = unreachable_client("call-timeout", &rec, 10000);
    h_call k;
    h_call_init(&k);
    CHECK_INT(rtm2_set_call_timeout_ms(50), RTM2_ERR_INVALID_PARAMETER);
    CHECK(strstr(rtm2_last_error_message(), "100..=600000") != NULL);
    CHECK_INT(rtm2_set_call_timeout_ms(600001), RTM2_ERR_INVALID_PARAMETER);
    CHECK_OK(rtm2_set_call_timeout_ms(300));
    int64_t t0 = h_now_ms();
    CHECK_INT(OP(k, rtm2_client_login(c, NULL, h_complete, &k, NULL)), RTM2_ERR_LOGIN_TIMEOUT);
    int64_t took = h_now_ms() - t0;
    CHECK(took >= 250 && took < 5000);
    /* 0: the configured 10 s again (the login is still waiting after 1 s; cancel it). */
    CHECK_OK(rtm2_set_call_timeout_ms(0));
    uint64_t id = 0;
    h_call_reset(&k);
    CHECK_OK(rtm2_client_login(c, NULL, h_complete, &k, &id));
    h_sleep_ms(1000);
    pthread_mutex_lock(&k.mu);
    int still_pending = k.count == 0;
    pthread_mutex_unlock(&k.mu);
    CHECK(still_pending);
    CHECK_OK(rtm2_cancel(c, id));
    CHECK_INT(h_wait_call(__FILE__, __LINE__, &k, H_WAIT_MS), RTM2_ERR_CANCELED);
    h_call_destroy(&k);
    free_client(c, &rec);
}

/* Cancel: the callback runs once with RTM2_ERR_CANCELED; a completed or unknown id is 10014. */
TEST(an_operation_can_be_canceled_by_its_request_id) {
    h_recorder rec;
    h_recorder_init(&rec);
    rtm2_client *c = unreachable_client("cancel", &rec, 10000);
    h_call login;
    h_call_init(&login);
    uint64_t id = 0;
    int64_t t0 = h_now_ms();
    CHECK_OK(rtm2_client_login(c, NULL, h_complete, &login, &id));
    CHECK(id != 0);
    CHECK_OK(rtm2_cancel(c, id));
    CHECK_INT(h_wait_call(__FILE__, __LINE__, &login, H_WAIT_MS), RTM2_ERR_CANCELED);
    CHECK(h_now_ms() - t0 < 5000);
    CHECK_INT(login.request_id, id);
    CHECK_STR(login.operation, "login");
    CHECK(strstr(login.reason, "canceled") != NULL);
    CHECK_STR(rtm2_status_name(RTM2_ERR_CANCELED), "CANCELED");
    /* Once completed it cannot be canceled again; nor can an id that was never started. */
    CHECK_INT(rtm2_cancel(c, id), RTM2_ERR_INVALID_PARAMETER);
    CHECK_INT(rtm2_cancel(c, 0), RTM2_ERR_INVALID_PARAMETER);
    CHECK_INT(rtm2_cancel(NULL, id), RTM2_ERR_NULL_PARAMETER);
    /* Cancel stops the waiting, not the connecting (as a Python task or a Node AbortSignal):
     * a logout stops the attempt and leaves the client idle and usable. */
    h_call out;
    h_call_init(&out);
    CHECK_INT(OP(out, rtm2_client_logout(c, h_complete, &out, NULL)), RTM2_OK);
    uint32_t state = 99;
    CHECK_OK(rtm2_client_get_link_state(c, &state));
    CHECK_INT(state, RTM2_LINK_STATE_IDLE);
    h_sleep_ms(100);
    CHECK_INT(login.count, 1); /* the canceled login completed once, with 9005, and never again */
    h_call_destroy(&out);
    h_call_destroy(&login);
    free_client(c, &rec);
}

/* rtm2_logout_all: every client still logged in is logged out (others see it leave at once);
 * each stays usable. */
TEST(logout_all_logs_every_client_out) {
    h_recorder r1, r2;
    h_recorder_init(&r1);
    h_recorder_init(&r2);
    rtm2_client *a = login_client("all-a", &r1);
    rtm2_client *b = login_client("all-b", &r2);
    CHECK(rtm2_logout_all(2000) >= 2);
    uint32_t state = 0;
    CHECK_OK(rtm2_client_get_link_state(a, &state));
    CHECK_INT(state, RTM2_LINK_STATE_IDLE);
    CHECK_OK(rtm2_client_get_link_state(b, &state));
    CHECK_INT(state, RTM2_LINK_STATE_IDLE);
    CHECK_INT(rtm2_logout_all(2000), 0);
    h_call k;
    h_call_init(&k);
    CHECK_INT(OP(k, rtm2_client_login(a, NULL, h_complete, &k, NULL)), RTM2_OK);
    h_call_destroy(&k);
    free_client(a, &r1);
    free_client(b, &r2);
}

TEST(logout_completes_pending_operations) {
    h_recorder rec;
    h_recorder_init(&rec);
    rtm2_client *c = unreachable_client("logout-pending", &rec, 10000);
    h_call login, pub, out;
    h_call_init(&login);
    h_call_init(&pub);
    h_call_init(&out);
    CHECK_OK(rtm2_client_login(c, NULL, h_complete, &login, NULL));
    /* The login is in progress (the server is unreachable) once CONNECTING is reported. */
    uint32_t connecting = RTM2_LINK_STATE_CONNECTING;
    h_event_free(h_expect(&rec, H_EV_LINK, h_match_link_state, &connecting));
    rtm2_publish_options po;
    rtm2_publish_options_init(&po);
    CHECK_OK(rtm2_client_publish(c, "room", "x", 1, &po, h_complete, &pub, NULL));
    CHECK_INT(OP(out, rtm2_client_logout(c, h_complete, &out, NULL)), RTM2_OK);
    CHECK_INT(h_wait_call(__FILE__, __LINE__, &login, H_WAIT_MS), RTM2_ERR_LOGIN_CANCELED);
    CHECK_INT(h_wait_call(__FILE__, __LINE__, &pub, H_WAIT_MS), RTM2_ERR_NOT_LOGIN);
    free_client(c, &rec);
    CHECK_INT(login.count, 1);
    CHECK_INT(pub.count, 1);
    CHECK_INT(out.count, 1);
    h_call_destroy(&login);
    h_call_destroy(&pub);
    h_call_destroy(&out);
}

/* Records the order in which callbacks ran. */
static char g_order[256];
static void note_order(h_call *c) {
    h_append(g_order, sizeof g_order, "%s;", (const char *)c->hook_data);
}
static void destroy_noting_order(void *ud) {
    h_recorder *r = (h_recorder *)ud;
    h_append(g_order, sizeof g_order, "destroy;");
    pthread_mutex_lock(&r->mu);
    r->destroyed++;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

TEST(free_completes_operations_in_flight) {
    h_recorder rec;
    h_recorder_init(&rec);
    char u[96], ep[64];
    snprintf(ep, sizeof ep, "127.0.0.1:%d", h_unused_port());
    rtm2_config *cfg = NULL;
    CHECK_OK(rtm2_config_new(H_APP_ID, uid(u, sizeof u, "free-inflight"), &cfg));
    CHECK_OK(rtm2_config_set_endpoint(cfg, ep));
    rtm2_listener l = h_recorder_listener(&rec);
    l.destroy = destroy_noting_order;
    rtm2_client *c = NULL;
    CHECK_OK(rtm2_client_new(cfg, &l, &c));
    rtm2_config_free(cfg);
    h_call login, pub;
    h_call_init(&login);
    h_call_init(&pub);
    login.hook = note_order;
    login.hook_data = (void *)"login";
    pub.hook = note_order;
    pub.hook_data = (void *)"publish";
    g_order[0] = 0;
    uint64_t r1 = 0, r2 = 0;
    CHECK_OK(rtm2_client_login(c, NULL, h_complete, &login, &r1));
    /* Once CONNECTING is reported, the publish waits for the connection (never comes). */
    uint32_t connecting = RTM2_LINK_STATE_CONNECTING;
    h_event_free(h_expect(&rec, H_EV_LINK, h_match_link_state, &connecting));
    CHECK_OK(rtm2_client_publish(c, "room", "x", 1, NULL, h_complete, &pub, &r2));
    CHECK(r1 != 0 && r2 != 0 && r1 != r2);
    rtm2_stream_channel *sc = NULL;
    CHECK_OK(rtm2_client_create_stream_channel(c, "outlives", &sc));
    rtm2_client_free(c);
    /* Before free returned: both completed once with 10018, then destroy ran. */
    CHECK_INT(login.count, 1);
    CHECK_INT(pub.count, 1);
    CHECK_INT(login.status, RTM2_ERR_INSTANCE_ALREADY_RELEASED);
    CHECK_INT(pub.status, RTM2_ERR_INSTANCE_ALREADY_RELEASED);
    CHECK_INT(login.request_id, r1);
    CHECK_INT(pub.request_id, r2);
    CHECK_STR(g_order, "login;publish;destroy;");
    CHECK_INT(rec.destroyed, 1);
    /* The stream channel handle outlives its client: every call says 10018, no callback. */
    h_call k;
    h_call_init(&k);
    CHECK_STATUS(rtm2_stream_channel_join(sc, NULL, RTM2_JOIN_DEFAULT, h_complete, &k, NULL),
                 RTM2_ERR_INSTANCE_ALREADY_RELEASED);
    bool joined = true;
    CHECK_STATUS(rtm2_stream_channel_is_joined(sc, &joined), RTM2_ERR_INSTANCE_ALREADY_RELEASED);
    rtm2_stream_channel_free(sc);
    CHECK_INT(k.count, 0);
    check_threads(&rec);
    h_recorder_destroy(&rec);
    h_call_destroy(&login);
    h_call_destroy(&pub);
    h_call_destroy(&k);
}

/* Frees its client from inside a completion callback. */
typedef struct self_free {
    rtm2_client *client;
} self_free;
static void free_from_completion(h_call *c) {
    self_free *s = (self_free *)c->hook_data;
    rtm2_client_free(s->client); /* returns at once: we are on the client's dispatcher */
    s->client = NULL;
}

TEST(free_from_inside_a_completion_callback) {
    h_recorder rec;
    h_recorder_init(&rec);
    rtm2_client *c = unreachable_client("free-in-cb", &rec, 10000);
    h_call login, probe;
    h_call_init(&login);
    h_call_init(&probe);
    self_free s = {c};
    probe.hook = free_from_completion;
    probe.hook_data = &s;
    CHECK_OK(rtm2_client_login(c, NULL, h_complete, &login, NULL));
    rtm2_stream_channel *sc = NULL;
    CHECK_OK(rtm2_client_create_stream_channel(c, "probe", &sc));
    /* Completes at once (not joined) and frees the client from inside its callback. */
    CHECK_OK(rtm2_stream_channel_get_subscribed_users(sc, "t", h_complete, &probe, NULL));
    CHECK_INT(h_wait_call(__FILE__, __LINE__, &probe, H_WAIT_MS), RTM2_ERR_CHANNEL_NOT_JOINED);
    h_wait_destroyed(&rec, H_WAIT_MS);
    CHECK_INT(h_wait_call(__FILE__, __LINE__, &login, H_WAIT_MS), RTM2_ERR_INSTANCE_ALREADY_RELEASED);
    CHECK(s.client == NULL);
    CHECK_STATUS(rtm2_stream_channel_leave(sc, h_complete, &probe, NULL), RTM2_ERR_INSTANCE_ALREADY_RELEASED);
    rtm2_stream_channel_free(sc);
    check_threads(&rec);
    CHECK_INT(login.count, 1);
    CHECK_INT(probe.count, 1);
    h_recorder_destroy(&rec);
    h_call_destroy(&login);
    h_call_destroy(&probe);
}

static rtm2_client *g_link_victim = NULL;
/* Set once rtm2_client_login has returned on the test's thread. The login's CONNECTING event
 * may reach the callback while the call is still inside the SDK (the login starts in the call),
 * and rtm2_client_free's contract is that no other thread uses the client during the free: the
 * callback waits (bounded) until the test's thread is out of the call. */
static atomic_int g_login_returned;
static void free_on_connecting(h_recorder *r, const rtm2_link_state_event *ev) {
    (void)r;
    if (ev->current == RTM2_LINK_STATE_CONNECTING && g_link_victim) {
        for (int i = 0; i < 5000 && !atomic_load(&g_login_returned); i++) usleep(1000);
        rtm2_client *c = g_link_victim;
        g_link_victim = NULL;
        rtm2_client_free(c);
    }
}

TEST(free_from_inside_an_event_callback) {
    h_recorder rec;
    h_recorder_init(&rec);
    rec.link_hook = free_on_connecting;
    rtm2_client *c = unreachable_client("free-in-event", &rec, 10000);
    g_link_victim = c;
    atomic_store(&g_login_returned, 0);
    h_call login;
    h_call_init(&login);
    CHECK_OK(rtm2_client_login(c, NULL, h_complete, &login, NULL));
    atomic_store(&g_login_returned, 1);
    h_wait_destroyed(&rec, H_WAIT_MS);
    CHECK_INT(h_wait_call(__FILE__, __LINE__, &login, H_WAIT_MS), RTM2_ERR_INSTANCE_ALREADY_RELEASED);
    CHECK(g_link_victim == NULL);
    check_threads(&rec);
    h_recorder_destroy(&rec);
    h_call_destroy(&login);
}

/* Two clients whose completion callbacks each free the other, at the same time: both
 * callbacks are inside the SDK's free at once, each on its own dispatcher thread. Waiting there
 * for the other's dispatcher deadlocked; now each free returns at once and each client's own
 * dispatcher finishes its work (10018 for what was in flight, then destroy). */
static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int entered, freed;
} g_cross = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0};

static void cross_deadline(struct timespec *ts, int ms) {
    clock_gettime(CLOCK_REALTIME, ts);
    ts->tv_sec += ms / 1000 + 1;
}

static void free_the_other(h_call *c) {
    rtm2_client **other = (rtm2_client **)c->hook_data;
    struct timespec ts;
    cross_deadline(&ts, 5000);
    pthread_mutex_lock(&g_cross.mu);
    g_cross.entered++;
    pthread_cond_broadcast(&g_cross.cv);
    /* Both callbacks inside before either frees (bounded: alone, it goes on after 5 s). */
    while (g_cross.entered < 2)
        if (pthread_cond_timedwait(&g_cross.cv, &g_cross.mu, &ts) == ETIMEDOUT) break;
    pthread_mutex_unlock(&g_cross.mu);
    rtm2_client_free(*other);
    *other = NULL;
    pthread_mutex_lock(&g_cross.mu);
    g_cross.freed++;
    pthread_cond_broadcast(&g_cross.cv);
    pthread_mutex_unlock(&g_cross.mu);
}

TEST(clients_freeing_each_other_from_callbacks_do_not_deadlock) {
    h_recorder ra, rb;
    h_recorder_init(&ra);
    h_recorder_init(&rb);
    rtm2_client *a = unreachable_client("cross-a", &ra, 10000);
    rtm2_client *b = unreachable_client("cross-b", &rb, 10000);
    h_call la, lb, pa, pb;
    h_call_init(&la);
    h_call_init(&lb);
    h_call_init(&pa);
    h_call_init(&pb);
    /* In flight when the clients are freed: must complete once each, with 10018. */
    CHECK_OK(rtm2_client_login(a, NULL, h_complete, &la, NULL));
    CHECK_OK(rtm2_client_login(b, NULL, h_complete, &lb, NULL));
    rtm2_stream_channel *sa = NULL, *sb = NULL;
    CHECK_OK(rtm2_client_create_stream_channel(a, "cross", &sa));
    CHECK_OK(rtm2_client_create_stream_channel(b, "cross", &sb));
    pa.hook = free_the_other;
    pa.hook_data = &b;
    pb.hook = free_the_other;
    pb.hook_data = &a;
    /* Each completes at once (not joined), on its client's dispatcher, and frees the other. */
    CHECK_OK(rtm2_stream_channel_get_subscribed_users(sa, "t", h_complete, &pa, NULL));
    CHECK_OK(rtm2_stream_channel_get_subscribed_users(sb, "t", h_complete, &pb, NULL));
    /* The watchdog: a deadlock fails the test here instead of hanging it. */
    struct timespec ts;
    cross_deadline(&ts, 20000);
    pthread_mutex_lock(&g_cross.mu);
    while (g_cross.freed < 2) {
        if (pthread_cond_timedwait(&g_cross.cv, &g_cross.mu, &ts) == ETIMEDOUT) {
            fprintf(stderr, "FAIL %s:%d: the two frees did not return within 20 s (deadlock; %d entered, %d freed)\n",
                    __FILE__, __LINE__, g_cross.entered, g_cross.freed);
            fflush(stderr);
            _exit(1); /* the deadlocked threads would keep exit() from finishing */
        }
    }
    CHECK_INT(g_cross.entered, 2);
    pthread_mutex_unlock(&g_cross.mu);
    CHECK(a == NULL && b == NULL);
    /* Each freed client still finishes: its pending login completes once with 10018, then
     * its listener's destroy runs — on its own dispatcher thread, after free returned. */
    CHECK_INT(h_wait_call(__FILE__, __LINE__, &la, H_WAIT_MS), RTM2_ERR_INSTANCE_ALREADY_RELEASED);
    CHECK_INT(h_wait_call(__FILE__, __LINE__, &lb, H_WAIT_MS), RTM2_ERR_INSTANCE_ALREADY_RELEASED);
    h_wait_destroyed(&ra, H_WAIT_MS);
    h_wait_destroyed(&rb, H_WAIT_MS);
    CHECK_INT(ra.destroyed, 1);
    CHECK_INT(rb.destroyed, 1);
    CHECK_INT(la.count, 1);
    CHECK_INT(lb.count, 1);
    CHECK_INT(pa.count, 1);
    CHECK_INT(pb.count, 1);
    CHECK_INT(pa.status, RTM2_ERR_CHANNEL_NOT_JOINED);
    CHECK_INT(pb.status, RTM2_ERR_CHANNEL_NOT_JOINED);
    CHECK(pthread_equal(la.thread, pa.thread));
    CHECK(pthread_equal(lb.thread, pb.thread));
    CHECK_STATUS(rtm2_stream_channel_leave(sa, h_complete, &pa, NULL), RTM2_ERR_INSTANCE_ALREADY_RELEASED);
    rtm2_stream_channel_free(sa);
    rtm2_stream_channel_free(sb);
    check_threads(&ra);
    check_threads(&rb);
    h_recorder_destroy(&ra);
    h_recorder_destroy(&rb);
    h_call_destroy(&la);
    h_call_destroy(&lb);
    h_call_destroy(&pa);
    h_call_destroy(&pb);
}

/* ---- log routing ---- */

typedef struct logs {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int count, in_callback, on_main;
    char target[128];
} logs;

static void log_cb(void *ud, int32_t level, const char *target, const char *message) {
    logs *l = (logs *)ud;
    pthread_mutex_lock(&l->mu);
    l->in_callback = 1;
    if (pthread_equal(pthread_self(), h_main_thread)) l->on_main = 1;
    if (level >= RTM2_LOG_TRACE && level <= RTM2_LOG_ERROR && message && target && strncmp(target, "rtm2", 4) == 0) {
        l->count++;
        snprintf(l->target, sizeof l->target, "%s", target);
    }
    pthread_cond_broadcast(&l->cv);
    l->in_callback = 0;
    pthread_mutex_unlock(&l->mu);
}

TEST(logs_reach_the_callback) {
    logs l;
    memset(&l, 0, sizeof l);
    pthread_mutex_init(&l.mu, NULL);
    pthread_cond_init(&l.cv, NULL);
    CHECK_OK(rtm2_set_log_callback(RTM2_LOG_DEBUG, log_cb, &l));
    h_recorder rec;
    h_recorder_init(&rec);
    rtm2_client *c = login_client("logs", &rec); /* logs "logged in" at debug */
    pthread_mutex_lock(&l.mu);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += 10;
    while (l.count == 0 && pthread_cond_timedwait(&l.cv, &l.mu, &ts) == 0) {
    }
    int count = l.count;
    pthread_mutex_unlock(&l.mu);
    CHECK(count > 0);
    CHECK(!l.on_main);
    CHECK_OK(rtm2_set_log_callback(RTM2_LOG_DEBUG, NULL, NULL));
    /* After it returns, the callback is not running and is not called again. */
    CHECK_INT(l.in_callback, 0);
    int after = l.count;
    h_call k;
    h_call_init(&k);
    CHECK_INT(OP(k, rtm2_client_logout(c, h_complete, &k, NULL)), RTM2_OK);
    CHECK_INT(OP(k, rtm2_client_login(c, NULL, h_complete, &k, NULL)), RTM2_OK);
    CHECK_INT(l.count, after);
    h_call_destroy(&k);
    free_client(c, &rec);
    pthread_mutex_destroy(&l.mu);
    pthread_cond_destroy(&l.cv);
}

static int32_t publish_stored(rtm2_client *c, const char *channel, const char *text, uint32_t channel_type,
                              const char *custom_type, h_call *k) {
    rtm2_publish_options po;
    rtm2_publish_options_init(&po);
    CHECK(!po.store_in_history); /* the default: not stored */
    po.channel_type = channel_type;
    po.message_type = RTM2_MESSAGE_TYPE_STRING;
    po.custom_type = custom_type;
    po.store_in_history = true;
    return OP(*k, rtm2_client_publish(c, channel, text, strlen(text), &po, h_complete, k, NULL));
}

static int32_t get_messages(rtm2_client *c, const char *channel, uint32_t channel_type, uint32_t count, uint64_t start,
                            uint64_t end, h_call *k) {
    uint64_t req = 0;
    int32_t st = OP(*k, rtm2_history_get_messages(c, channel, channel_type, count, start, end, h_complete, k, &req));
    CHECK(req != 0);
    CHECK_INT(k->request_id, req);
    CHECK_STR(k->operation, "get_messages");
    CHECK(k->has_history == (st == RTM2_OK));
    return st;
}

/* Message history: stored publishes come back newest first a page at a time (new_start until
 * 0), unstored ones never; a user channel's history is its own user's (15004 for another's);
 * 15002 for an invalid range; an offline receiver's message is stored (11035) and readable by
 * it once it logs in. */
TEST(history_pages_and_error_codes) {
    h_recorder ra, rb;
    h_recorder_init(&ra);
    h_recorder_init(&rb);
    rtm2_client *a = login_client("hist-alice", &ra);
    rtm2_client *b = login_client("hist-bob", &rb);
    char alice[96], bob[96], carol[96], room[96];
    uid(alice, sizeof alice, "hist-alice");
    uid(bob, sizeof bob, "hist-bob");
    uid(carol, sizeof carol, "hist-carol");
    uid(room, sizeof room, "hist-room");
    h_call k;
    h_call_init(&k);
    CHECK_INT(subscribe(b, room, &k), RTM2_OK);
    /* A channel nobody stored in: an empty page. */
    CHECK_INT(get_messages(b, room, RTM2_CHANNEL_TYPE_MESSAGE, 0, 0, 0, &k), RTM2_OK);
    CHECK_INT(k.history_count, 0);
    CHECK_INT(k.history_new_start, 0);
    CHECK_STR(k.history, "");
    /* Five stored messages, interleaved with unstored ones. */
    for (int i = 0; i < 5; i++) {
        char text[16];
        snprintf(text, sizeof text, "m%d", i);
        CHECK_INT(publish_stored(a, room, text, RTM2_CHANNEL_TYPE_MESSAGE, i == 4 ? "last" : NULL, &k), RTM2_OK);
        CHECK_INT(publish_text(a, room, "unstored", &k), RTM2_OK);
    }
    /* Delivered as usual, with the stored message's timestamp. */
    h_event *first = h_expect(&rb, H_EV_MESSAGE, h_match_text, "m0");
    uint64_t delivered_ts = first->timestamp_ms;
    h_event_free(first);
    h_event_free(h_expect(&rb, H_EV_MESSAGE, h_match_text, "m4"));
    /* Pages of 2: m4 m3 | m2 m1 | m0, new_start until 0. */
    const char *pages[] = {"m4,m3", "m2,m1", "m0"};
    char want[128];
    uint64_t start = 0, newest = 0, oldest = 0;
    for (int p = 0; p < 3; p++) {
        CHECK_INT(get_messages(b, room, RTM2_CHANNEL_TYPE_MESSAGE, 2, start, 0, &k), RTM2_OK);
        const char *t = pages[p];
        want[0] = 0;
        for (int first_item = 1; *t; first_item = 0) {
            const char *comma = strchr(t, ',');
            size_t n = comma ? (size_t)(comma - t) : strlen(t);
            snprintf(want + strlen(want), sizeof want - strlen(want), "%s%s:%.*s", first_item ? "" : ",", alice,
                     (int)n, t);
            t += n + (comma ? 1 : 0);
        }
        CHECK_STR(k.history, want);
        CHECK_INT(k.history_count, p == 2 ? 1 : 2);
        CHECK(k.history_ordered);
        if (p == 0) {
            CHECK_STR(k.history_types, "S/last,S/");
            newest = k.history_newest_ts;
        }
        if (p < 2) {
            CHECK(k.history_new_start != 0);
            CHECK(start == 0 || k.history_newest_ts < start);
            start = k.history_new_start;
        } else {
            CHECK_INT(k.history_new_start, 0);
            oldest = k.history_oldest_ts;
        }
    }
    CHECK_INT(oldest, delivered_ts);
    /* One page of everything: the five stored ones only. */
    CHECK_INT(get_messages(a, room, RTM2_CHANNEL_TYPE_MESSAGE, 0, 0, 0, &k), RTM2_OK);
    CHECK_INT(k.history_count, 5);
    CHECK(strstr(k.history, "unstored") == NULL);
    /* end is inclusive, start exclusive. */
    CHECK_INT(get_messages(a, room, RTM2_CHANNEL_TYPE_MESSAGE, 10, newest, oldest, &k), RTM2_OK);
    CHECK_INT(k.history_count, 4);
    CHECK_INT(k.history_oldest_ts, oldest);
    /* Invalid ranges: start <= end. */
    CHECK_INT(get_messages(a, room, RTM2_CHANNEL_TYPE_MESSAGE, 10, oldest, newest, &k),
              RTM2_ERR_HISTORY_INVALID_TIMESTAMP);
    CHECK_INT(get_messages(a, room, RTM2_CHANNEL_TYPE_MESSAGE, 10, newest, newest, &k),
              RTM2_ERR_HISTORY_INVALID_TIMESTAMP);
    /* Channel types: a stream channel 10019 (completion); not a type at all: refused at once. */
    CHECK_INT(get_messages(a, room, RTM2_CHANNEL_TYPE_STREAM, 0, 0, 0, &k), RTM2_ERR_INVALID_CHANNEL_TYPE);
    uint64_t req = 0;
    CHECK_STATUS(rtm2_history_get_messages(a, room, 42, 0, 0, 0, h_complete, &k, &req), RTM2_ERR_INVALID_CHANNEL_TYPE);
    CHECK_STATUS(rtm2_history_get_messages(a, NULL, RTM2_CHANNEL_TYPE_MESSAGE, 0, 0, 0, h_complete, &k, &req),
                 RTM2_ERR_NULL_PARAMETER);
    CHECK_INT(get_messages(a, "a/b", RTM2_CHANNEL_TYPE_MESSAGE, 0, 0, 0, &k), RTM2_ERR_INVALID_CHANNEL_NAME);
    /* A user channel: stored for its user, read by that user only. */
    CHECK_INT(publish_stored(a, bob, "to bob", RTM2_CHANNEL_TYPE_USER, NULL, &k), RTM2_OK);
    h_event_free(h_expect(&rb, H_EV_MESSAGE, h_match_text, "to bob"));
    CHECK_INT(get_messages(b, bob, RTM2_CHANNEL_TYPE_USER, 0, 0, 0, &k), RTM2_OK);
    snprintf(want, sizeof want, "%s:to bob", alice);
    CHECK_STR(k.history, want);
    CHECK_INT(get_messages(a, bob, RTM2_CHANNEL_TYPE_USER, 0, 0, 0, &k), RTM2_ERR_HISTORY_OPERATION_NOT_PERMITTED);
    /* To a user who is offline: stored, and said so (11035); unstored: 11033. */
    CHECK_INT(publish_stored(a, carol, "later", RTM2_CHANNEL_TYPE_USER, NULL, &k),
              RTM2_ERR_CHANNEL_RECEIVER_OFFLINE_BUT_STORE_SUCCEEDED);
    CHECK_INT(publish(a, carol, "gone", 4, RTM2_CHANNEL_TYPE_USER, RTM2_MESSAGE_TYPE_STRING, NULL, &k),
              RTM2_ERR_CHANNEL_RECEIVER_OFFLINE);
    h_recorder rc;
    h_recorder_init(&rc);
    rtm2_client *c = login_client("hist-carol", &rc);
    CHECK_INT(get_messages(c, carol, RTM2_CHANNEL_TYPE_USER, 0, 0, 0, &k), RTM2_OK);
    snprintf(want, sizeof want, "%s:later", alice);
    CHECK_STR(k.history, want);
    CHECK_INT(k.history_new_start, 0);
    /* Cancel, as for every operation. */
    h_call_reset(&k);
    CHECK_OK(rtm2_history_get_messages(c, carol, RTM2_CHANNEL_TYPE_USER, 0, 0, 0, h_complete, &k, &req));
    int32_t cancel = rtm2_cancel(c, req);
    int32_t st = h_wait_call(__FILE__, __LINE__, &k, H_WAIT_MS);
    if (cancel == RTM2_OK) CHECK_INT(st, RTM2_ERR_CANCELED);
    else CHECK_INT(st, RTM2_OK);
    h_call_destroy(&k);
    free_client(c, &rc);
    free_client(a, &ra);
    free_client(b, &rb);
}

/* The short scenario run under valgrind: one of everything, then a clean shutdown. */
static void short_scenario(void) {
    h_recorder ra, rb;
    h_recorder_init(&ra);
    h_recorder_init(&rb);
    rtm2_client *a = login_client("short-alice", &ra);
    rtm2_client *b = login_client("short-bob", &rb);
    h_call k;
    h_call_init(&k);
    CHECK_INT(OP(k, rtm2_client_subscribe(b, "room", RTM2_SUBSCRIBE_DEFAULT | RTM2_SUBSCRIBE_WITH_METADATA |
                                                          RTM2_SUBSCRIBE_WITH_LOCK,
                                          h_complete, &k, NULL)),
              RTM2_OK);
    /* Presence, storage and locks: one of each result and event. */
    uint32_t snapshot = RTM2_PRESENCE_EVENT_TYPE_SNAPSHOT, update = RTM2_STORAGE_EVENT_TYPE_UPDATE,
             acquired = RTM2_LOCK_EVENT_TYPE_ACQUIRED;
    h_event_free(h_expect(&rb, H_EV_PRESENCE, h_match_event_type, &snapshot));
    CHECK_INT(publish_text(a, "room", "hello", &k), RTM2_OK);
    h_event_free(h_expect(&rb, H_EV_MESSAGE, h_match_text, "hello"));
    rtm2_state_item st[] = {{"k", "v"}};
    CHECK_INT(OP(k, rtm2_presence_set_state(b, "room", RTM2_CHANNEL_TYPE_MESSAGE, st, 1, h_complete, &k, NULL)),
              RTM2_OK);
    rtm2_get_online_users_options wo;
    rtm2_get_online_users_options_init(&wo);
    wo.include_state = true;
    CHECK_INT(OP(k, rtm2_presence_who_now(a, "room", RTM2_CHANNEL_TYPE_MESSAGE, &wo, h_complete, &k, NULL)), RTM2_OK);
    CHECK(k.has_online_users);
    char bob[96];
    uid(bob, sizeof bob, "short-bob");
    CHECK_INT(OP(k, rtm2_presence_get_state(a, "room", RTM2_CHANNEL_TYPE_MESSAGE, bob, h_complete, &k, NULL)), RTM2_OK);
    CHECK_STR(k.states, "k:v");
    CHECK_INT(OP(k, rtm2_presence_where_now(a, bob, h_complete, &k, NULL)), RTM2_OK);
    CHECK_STR(k.user_channels, "MESSAGE:room");
    rtm2_metadata_item mi[] = {{"topic", "c", -1, 0, NULL}};
    rtm2_metadata_options mo;
    rtm2_metadata_options_init(&mo);
    mo.record_author = true;
    CHECK_INT(OP(k, rtm2_storage_set_channel_metadata(a, "room", RTM2_CHANNEL_TYPE_MESSAGE, mi, 1, &mo, h_complete,
                                                      &k, NULL)),
              RTM2_OK);
    h_event *se = h_expect(&rb, H_EV_STORAGE, h_match_event_type, &update);
    CHECK_STR(se->items, "topic:c");
    h_event_free(se);
    CHECK_INT(OP(k, rtm2_storage_get_channel_metadata(b, "room", RTM2_CHANNEL_TYPE_MESSAGE, h_complete, &k, NULL)),
              RTM2_OK);
    CHECK_STR(k.meta_items, "topic:c");
    CHECK_INT(OP(k, rtm2_lock_set(a, "room", RTM2_CHANNEL_TYPE_MESSAGE, "door", 0, h_complete, &k, NULL)), RTM2_OK);
    CHECK_INT(OP(k, rtm2_lock_acquire(a, "room", RTM2_CHANNEL_TYPE_MESSAGE, "door", false, h_complete, &k, NULL)),
              RTM2_OK);
    h_event_free(h_expect(&rb, H_EV_LOCK, h_match_event_type, &acquired));
    CHECK_INT(OP(k, rtm2_lock_get_locks(b, "room", RTM2_CHANNEL_TYPE_MESSAGE, h_complete, &k, NULL)), RTM2_OK);
    CHECK(k.has_locks);
    /* b waits for the lock when it is freed, with the wait in flight. */
    CHECK_OK(rtm2_lock_acquire(b, "room", RTM2_CHANNEL_TYPE_MESSAGE, "door", true, NULL, NULL, NULL));
    rtm2_stream_channel *sa = NULL, *sb = NULL;
    CHECK_OK(rtm2_client_create_stream_channel(a, "stage", &sa));
    CHECK_OK(rtm2_client_create_stream_channel(b, "stage", &sb));
    CHECK_INT(OP(k, rtm2_stream_channel_join(sa, NULL, RTM2_JOIN_DEFAULT, h_complete, &k, NULL)), RTM2_OK);
    CHECK_INT(OP(k, rtm2_stream_channel_join_topic(sa, "t", NULL, h_complete, &k, NULL)), RTM2_OK);
    CHECK_INT(OP(k, rtm2_stream_channel_join(sb, NULL, RTM2_JOIN_DEFAULT, h_complete, &k, NULL)), RTM2_OK);
    CHECK(k.has_join);
    char alice[96];
    const char *users[] = {uid(alice, sizeof alice, "short-alice")};
    CHECK_INT(OP(k, rtm2_stream_channel_subscribe_topic(sb, "t", users, 1, h_complete, &k, NULL)), RTM2_OK);
    CHECK_INT(OP(k, rtm2_stream_channel_publish_topic(sa, "t", "topic", 5, NULL, h_complete, &k, NULL)), RTM2_OK);
    h_event_free(h_expect(&rb, H_EV_MESSAGE, h_match_text, "topic"));
    CHECK_INT(OP(k, rtm2_stream_channel_get_subscribed_users(sb, "t", h_complete, &k, NULL)), RTM2_OK);
    CHECK_INT(publish_text(a, "a/b", "x", &k), RTM2_ERR_INVALID_CHANNEL_NAME);
    /* History: a stored message read back. */
    CHECK_INT(publish_stored(a, "room", "kept", RTM2_CHANNEL_TYPE_MESSAGE, "ct", &k), RTM2_OK);
    CHECK_INT(get_messages(b, "room", RTM2_CHANNEL_TYPE_MESSAGE, 1, 0, 0, &k), RTM2_OK);
    CHECK_INT(k.history_count, 1);
    CHECK_STR(k.history_types, "S/ct");
    CHECK_INT(OP(k, rtm2_client_logout(a, h_complete, &k, NULL)), RTM2_OK);
    /* b is freed without logging out, with a publish in flight. */
    CHECK_OK(rtm2_client_publish(b, "room", "bye", 3, NULL, NULL, NULL, NULL));
    rtm2_stream_channel_free(sa);
    rtm2_stream_channel_free(sb);
    free_client(a, &ra);
    free_client(b, &rb);
    h_call_destroy(&k);
}

/* Also under valgrind: two clients with end-to-end encryption exchange a message and a
 * presence state (test_encryption.c has the full scenarios). */
static rtm2_client *encrypted_client(const char *name, h_recorder *rec) {
    char u[96];
    rtm2_config *cfg = NULL;
    CHECK_OK(rtm2_config_new(H_APP_ID, uid(u, sizeof u, name), &cfg));
    if (g_endpoint) CHECK_OK(rtm2_config_set_endpoint(cfg, g_endpoint));
    const uint8_t salt[] = {1, 2, 3, 4, 5};
    CHECK_OK(rtm2_config_set_encryption(cfg, RTM2_ENCRYPTION_MODE_AES_256_GCM, "short secret", salt, sizeof salt));
    h_recorder_init(rec);
    rtm2_listener l = h_recorder_listener(rec);
    rtm2_client *c = NULL;
    CHECK_OK(rtm2_client_new(cfg, &l, &c));
    rtm2_config_free(cfg);
    h_call k;
    h_call_init(&k);
    CHECK_INT(OP(k, rtm2_client_login(c, NULL, h_complete, &k, NULL)), RTM2_OK);
    h_call_destroy(&k);
    return c;
}

static void short_encryption(void) {
    h_recorder ra, rb;
    rtm2_client *a = encrypted_client("short-enc-alice", &ra);
    rtm2_client *b = encrypted_client("short-enc-bob", &rb);
    h_call k;
    h_call_init(&k);
    CHECK_INT(subscribe(b, "sealed", &k), RTM2_OK);
    CHECK_INT(subscribe(a, "sealed", &k), RTM2_OK);
    CHECK_INT(publish_text(a, "sealed", "hello in secret", &k), RTM2_OK);
    h_event_free(h_expect(&rb, H_EV_MESSAGE, h_match_text, "hello in secret"));
    rtm2_state_item st[] = {{"k", "v"}};
    CHECK_INT(OP(k, rtm2_presence_set_state(a, "sealed", RTM2_CHANNEL_TYPE_MESSAGE, st, 1, h_complete, &k, NULL)),
              RTM2_OK);
    char alice[96];
    uid(alice, sizeof alice, "short-enc-alice");
    CHECK_INT(OP(k, rtm2_presence_get_state(b, "sealed", RTM2_CHANNEL_TYPE_MESSAGE, alice, h_complete, &k, NULL)),
              RTM2_OK);
    CHECK_STR(k.states, "k:v");
    uint64_t dropped = 1;
    CHECK_OK(rtm2_client_get_undecryptable_messages(b, &dropped));
    CHECK_INT(dropped, 0);
    h_call_destroy(&k);
    free_client(a, &ra);
    free_client(b, &rb);
}

int main(int argc, char **argv) {
    h_init();
    const char *rtm2_bin = NULL;
    int short_only = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--rtm2") == 0 && i + 1 < argc) rtm2_bin = argv[++i];
        else if (strcmp(argv[i], "--short") == 0) short_only = 1;
        else {
            fprintf(stderr, "usage: %s [--rtm2 PATH] [--short]\n", argv[0]);
            return 2;
        }
    }
    h_server server;
    memset(&server, 0, sizeof server);
    const char *suite = "test_client (embedded)";
    if (rtm2_bin) {
        if (h_server_start(&server, rtm2_bin, 0, 0, 30, 0) != 0) h_fail(__FILE__, __LINE__, "cannot start %s serve", rtm2_bin);
        g_endpoint = server.endpoint;
        snprintf(g_prefix, sizeof g_prefix, "s");
        suite = "test_client (rtm2 serve)";
        h_log("using rtm2 serve at %s", g_endpoint);
    }
    if (short_only) {
        RUN(short_scenario);
        RUN(short_encryption);
    } else {
        RUN(login_logout_and_link_states);
        RUN(messages_arrive_with_every_field);
        RUN(messages_arrive_in_batches_when_asked);
        RUN(same_user_id_takes_over);
        RUN(callbacks_may_call_back_into_the_sdk);
        RUN(stream_channel_quick_start_with_result_structs);
        RUN(errors_have_exact_codes);
        RUN(sizes_are_checked_before_anything_is_read);
        RUN(overflow_is_reported_with_the_count);
        RUN(timeouts_complete_with_the_operation_code);
        RUN(a_call_timeout_applies_to_the_calls_of_this_thread);
        RUN(an_operation_can_be_canceled_by_its_request_id);
        RUN(logout_all_logs_every_client_out);
        RUN(logout_completes_pending_operations);
        RUN(free_completes_operations_in_flight);
        RUN(free_from_inside_a_completion_callback);
        RUN(free_from_inside_an_event_callback);
        RUN(clients_freeing_each_other_from_callbacks_do_not_deadlock);
        RUN(logs_reach_the_callback);
        RUN(history_pages_and_error_codes);
    }
    if (rtm2_bin) h_server_stop(&server);
    return h_finish(suite, passed);
}
