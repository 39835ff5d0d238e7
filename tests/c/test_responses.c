/* Every call that changes something answers with the server's time: `rtm2_result.timestamp_ms`
 * (agora-rtm-sdk's `timestamp` of its responses) is, on success, within the wall-clock times
 * taken just before the call and just after its completion — for login, publish, subscribe,
 * unsubscribe, the stream channel calls, presence state, locks, user-metadata subscriptions,
 * renew_token and logout, and the calls that carry data (who is online, states, metadata,
 * locks and the fencing token, a history page) — and 0 for a failure.
 *
 *   test_responses [--rtm2 PATH]     (no argument: the embedded server) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

#define M RTM2_CHANNEL_TYPE_MESSAGE

static int passed = 0;
static const char *g_endpoint = NULL; /* NULL = embedded */
static char g_prefix[32] = "re";

#define TEST(name) static void name(void)
#define RUN(name)              \
    do {                       \
        name();                \
        passed++;              \
        h_log("ok %s", #name); \
    } while (0)

static uint64_t g_before;

/* Runs `expr` (which passes h_complete and &k), waits, and checks that it succeeded with
 * result->operation `op` and a timestamp between the clock before the call and after it. */
#define ANSWERED(k, op, expr)                                                                            \
    do {                                                                                                 \
        g_before = h_epoch_ms();                                                                         \
        CHECK_INT(OP(k, expr), RTM2_OK);                                                                 \
        uint64_t after_ = h_epoch_ms();                                                                  \
        CHECK_STR((k).operation, op);                                                                    \
        if ((k).timestamp_ms < g_before || (k).timestamp_ms > after_)                                    \
            h_fail(__FILE__, __LINE__, "%s: timestamp_ms %llu not in [%llu, %llu]", op,                  \
                   (unsigned long long)(k).timestamp_ms, (unsigned long long)g_before,                  \
                   (unsigned long long)after_);                                                          \
    } while (0)

static void name(char *buf, size_t cap, const char *what) {
    snprintf(buf, cap, "%s-%s-%lld", g_prefix, what, (long long)h_epoch_ms());
}

TEST(every_call_answers_with_the_servers_time) {
    char alice_id[64], bob_id[64], room[64], stage[64];
    name(alice_id, sizeof alice_id, "alice");
    name(bob_id, sizeof bob_id, "bob");
    name(room, sizeof room, "room");
    name(stage, sizeof stage, "stage");
    rtm2_client *alice = h_new_client(alice_id, g_endpoint, NULL);
    rtm2_client *bob = h_new_client(bob_id, g_endpoint, NULL);
    h_call k;
    h_call_init(&k);

    ANSWERED(k, "login", rtm2_client_login(alice, NULL, h_complete, &k, NULL));
    CHECK_INT(OP(k, rtm2_client_login(bob, NULL, h_complete, &k, NULL)), RTM2_OK);
    ANSWERED(k, "subscribe", rtm2_client_subscribe(alice, room, RTM2_SUBSCRIBE_DEFAULT, h_complete, &k, NULL));
    ANSWERED(k, "publish", rtm2_client_publish(alice, room, "hello", 5, NULL, h_complete, &k, NULL));
    rtm2_publish_options po;
    rtm2_publish_options_init(&po);
    po.channel_type = RTM2_CHANNEL_TYPE_USER;
    ANSWERED(k, "publish", rtm2_client_publish(alice, bob_id, "psst", 4, &po, h_complete, &k, NULL));
    ANSWERED(k, "renew_token", rtm2_client_renew_token(alice, "", h_complete, &k, NULL));

    rtm2_stream_channel *sc = NULL;
    CHECK_OK(rtm2_client_create_stream_channel(alice, stage, &sc));
    ANSWERED(k, "join", rtm2_stream_channel_join(sc, NULL, RTM2_JOIN_DEFAULT, h_complete, &k, NULL));
    CHECK(k.has_join);
    ANSWERED(k, "join_topic", rtm2_stream_channel_join_topic(sc, "slides", NULL, h_complete, &k, NULL));
    ANSWERED(k, "publish_topic", rtm2_stream_channel_publish_topic(sc, "slides", "p1", 2, NULL, h_complete, &k, NULL));
    const char *users[] = {alice_id};
    ANSWERED(k, "subscribe_topic", rtm2_stream_channel_subscribe_topic(sc, "slides", users, 1, h_complete, &k, NULL));
    CHECK_STR(k.succeeded, alice_id);
    ANSWERED(k, "unsubscribe_topic", rtm2_stream_channel_unsubscribe_topic(sc, "slides", NULL, 0, h_complete, &k, NULL));
    ANSWERED(k, "leave_topic", rtm2_stream_channel_leave_topic(sc, "slides", h_complete, &k, NULL));
    ANSWERED(k, "renew_token", rtm2_stream_channel_renew_token(sc, "", h_complete, &k, NULL));
    ANSWERED(k, "leave", rtm2_stream_channel_leave(sc, h_complete, &k, NULL));
    rtm2_stream_channel_free(sc);

    rtm2_state_item st[] = {{"mood", "busy"}};
    ANSWERED(k, "set_state", rtm2_presence_set_state(alice, room, M, st, 1, h_complete, &k, NULL));
    const char *keys[] = {"mood"};
    ANSWERED(k, "remove_state", rtm2_presence_remove_state(alice, room, M, keys, 1, h_complete, &k, NULL));

    ANSWERED(k, "set_lock", rtm2_lock_set(alice, room, M, "door", 10, h_complete, &k, NULL));
    /* Calls that return data carry the time too. */
    ANSWERED(k, "acquire_lock", rtm2_lock_acquire(alice, room, M, "door", false, h_complete, &k, NULL));
    CHECK(k.fencing_token > 0);
    ANSWERED(k, "get_locks", rtm2_lock_get_locks(alice, room, M, h_complete, &k, NULL));
    ANSWERED(k, "get_online_users", rtm2_presence_get_online_users(alice, room, M, NULL, h_complete, &k, NULL));
    ANSWERED(k, "get_user_channels", rtm2_presence_get_user_channels(alice, NULL, h_complete, &k, NULL));
    rtm2_metadata_item item = {"k", "v", -1, 0, NULL};
    ANSWERED(k, "set_channel_metadata",
             rtm2_storage_set_channel_metadata(alice, room, M, &item, 1, NULL, h_complete, &k, NULL));
    ANSWERED(k, "get_channel_metadata", rtm2_storage_get_channel_metadata(alice, room, M, h_complete, &k, NULL));
    ANSWERED(k, "get_user_metadata", rtm2_storage_get_user_metadata(alice, NULL, h_complete, &k, NULL));
    ANSWERED(k, "get_messages", rtm2_history_get_messages(alice, room, M, 10, 0, 0, h_complete, &k, NULL));
    ANSWERED(k, "release_lock", rtm2_lock_release(alice, room, M, "door", h_complete, &k, NULL));
    CHECK_INT(OP(k, rtm2_lock_acquire(bob, room, M, "door", false, h_complete, &k, NULL)), RTM2_OK);
    ANSWERED(k, "revoke_lock", rtm2_lock_revoke(alice, room, M, "door", bob_id, h_complete, &k, NULL));
    ANSWERED(k, "remove_lock", rtm2_lock_remove(alice, room, M, "door", h_complete, &k, NULL));

    ANSWERED(k, "subscribe_user_metadata", rtm2_storage_subscribe_user_metadata(alice, bob_id, h_complete, &k, NULL));
    ANSWERED(k, "unsubscribe_user_metadata",
             rtm2_storage_unsubscribe_user_metadata(alice, bob_id, h_complete, &k, NULL));

    ANSWERED(k, "unsubscribe", rtm2_client_unsubscribe(alice, room, h_complete, &k, NULL));
    ANSWERED(k, "logout", rtm2_client_logout(alice, h_complete, &k, NULL));
    CHECK_INT(OP(k, rtm2_client_logout(bob, h_complete, &k, NULL)), RTM2_OK);

    h_call_destroy(&k);
    rtm2_client_free(alice);
    rtm2_client_free(bob);
}

TEST(a_failure_has_no_timestamp) {
    char user[64], room[64];
    name(user, sizeof user, "fail");
    name(room, sizeof room, "never");
    rtm2_client *c = h_new_client(user, g_endpoint, NULL);
    h_call k;
    h_call_init(&k);
    CHECK_INT(OP(k, rtm2_client_publish(c, room, "x", 1, NULL, h_complete, &k, NULL)), RTM2_ERR_NOT_LOGIN);
    CHECK_INT(k.timestamp_ms, 0);
    CHECK_INT(OP(k, rtm2_client_login(c, NULL, h_complete, &k, NULL)), RTM2_OK);
    CHECK_INT(OP(k, rtm2_client_unsubscribe(c, room, h_complete, &k, NULL)), RTM2_ERR_CHANNEL_NOT_SUBSCRIBED);
    CHECK_INT(k.timestamp_ms, 0);
    CHECK_INT(OP(k, rtm2_lock_remove(c, room, M, "none", h_complete, &k, NULL)), RTM2_ERR_LOCK_NOT_EXIST);
    CHECK_INT(k.timestamp_ms, 0);
    h_call_destroy(&k);
    rtm2_client_free(c);
}

/* The completions of many publishes started at once: each slot records its own. */
#define PIPELINED 2000
typedef struct slots {
    pthread_mutex_t mu;
    int done, failed;
    uint64_t ts[PIPELINED];
} slots;
static slots g_slots;

static void on_publish(void *user_data, uint64_t request_id, int32_t status, const rtm2_result *result) {
    (void)request_id;
    size_t i = (size_t)(uintptr_t)user_data;
    pthread_mutex_lock(&g_slots.mu);
    g_slots.ts[i] = result->timestamp_ms;
    g_slots.failed += status != RTM2_OK;
    g_slots.done++;
    pthread_mutex_unlock(&g_slots.mu);
}

/* Every one of many publishes started at once is answered with a time within the burst, and
 * none later than a publish made after all of them completed. (Not asserted: that the times
 * never go back in call order. The core gives a publish the time of the latest acknowledgement
 * when its outcome is read, not of the one that covered it, so a completion read late carries
 * a later time than the next publish's.) */
TEST(pipelined_publishes_each_answer_with_their_acknowledgement) {
    char user[64], room[64];
    name(user, sizeof user, "pub");
    name(room, sizeof room, "room");
    rtm2_client *c = h_new_client(user, g_endpoint, NULL);
    h_call k;
    h_call_init(&k);
    CHECK_INT(OP(k, rtm2_client_login(c, NULL, h_complete, &k, NULL)), RTM2_OK);
    memset(&g_slots, 0, sizeof g_slots);
    pthread_mutex_init(&g_slots.mu, NULL);
    uint64_t before = h_epoch_ms();
    for (size_t i = 0; i < PIPELINED; i++) {
        char text[16];
        int n = snprintf(text, sizeof text, "%zu", i);
        CHECK_OK(rtm2_client_publish(c, room, text, (size_t)n, NULL, on_publish, (void *)(uintptr_t)i, NULL));
    }
    int64_t until = h_now_ms() + H_WAIT_MS;
    for (;;) {
        pthread_mutex_lock(&g_slots.mu);
        int done = g_slots.done;
        pthread_mutex_unlock(&g_slots.mu);
        if (done == PIPELINED) break;
        if (h_now_ms() > until) h_fail(__FILE__, __LINE__, "%d of %d publishes completed", done, PIPELINED);
        h_sleep_ms(5);
    }
    uint64_t after = h_epoch_ms();
    CHECK_INT(g_slots.failed, 0);
    ANSWERED(k, "publish", rtm2_client_publish(c, room, "last", 4, NULL, h_complete, &k, NULL));
    for (size_t i = 0; i < PIPELINED; i++) {
        if (g_slots.ts[i] < before || g_slots.ts[i] > after)
            h_fail(__FILE__, __LINE__, "publish %zu: timestamp_ms %llu not in [%llu, %llu]", i,
                   (unsigned long long)g_slots.ts[i], (unsigned long long)before, (unsigned long long)after);
        if (g_slots.ts[i] > k.timestamp_ms)
            h_fail(__FILE__, __LINE__, "publish %zu answered at %llu, after the publish made later (%llu)", i,
                   (unsigned long long)g_slots.ts[i], (unsigned long long)k.timestamp_ms);
    }
    pthread_mutex_destroy(&g_slots.mu);
    h_call_destroy(&k);
    rtm2_client_free(c);
}

int main(int argc, char **argv) {
    h_init();
    const char *rtm2_bin = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--rtm2") == 0 && i + 1 < argc) rtm2_bin = argv[++i];
        else {
            fprintf(stderr, "usage: %s [--rtm2 PATH]\n", argv[0]);
            return 2;
        }
    }
    h_server server;
    memset(&server, 0, sizeof server);
    const char *suite = "test_responses (embedded)";
    if (rtm2_bin) {
        if (h_server_start(&server, rtm2_bin, 0, 0, 30, 0) != 0) h_fail(__FILE__, __LINE__, "cannot start %s serve", rtm2_bin);
        g_endpoint = server.endpoint;
        snprintf(g_prefix, sizeof g_prefix, "rs");
        suite = "test_responses (rtm2 serve)";
    }
    RUN(every_call_answers_with_the_servers_time);
    RUN(a_failure_has_no_timestamp);
    RUN(pipelined_publishes_each_answer_with_their_acknowledgement);
    if (rtm2_bin) h_server_stop(&server);
    return h_finish(suite, passed);
}
