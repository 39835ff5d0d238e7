/* Stored messages missed across a server restart, through the C API (docs/RELIABILITY.md):
 * alice is subscribed on `rtm2 serve --data-dir D`; the server stops; another server on the
 * same directory stores 5 messages to her channel; the server comes back at her address. She
 * reconnects by herself: the CONNECTED event comes first, not resumed, with her channel in
 * affected_channels (a restarted server cannot vouch for the gap); then the 5 messages with
 * `recovered` set (ABI version 2), oldest first, before anything newer; a live message after
 * them is not recovered. Two subscribers live through it: one with on_message, one with
 * on_message_batch (whose array stride changed with `recovered`).
 *
 *   test_recovery --rtm2 PATH */
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

static int passed = 0;
static const char *g_bin = NULL;
static char g_dir[64] = "";
/* The servers of the running test, stopped at exit too (a failed check exits). */
static h_server *g_servers[3];

#define TEST(name) static void name(void)
#define RUN(name)              \
    do {                       \
        name();                \
        passed++;              \
        h_log("ok %s", #name); \
    } while (0)

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

static void cleanup(void) {
    for (size_t i = 0; i < sizeof g_servers / sizeof g_servers[0]; i++) {
        if (g_servers[i]) h_server_stop(g_servers[i]);
        g_servers[i] = NULL;
    }
    if (g_dir[0]) nftw(g_dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    g_dir[0] = 0;
}

/* `rtm2 serve --data-dir g_dir --no-rate-limits` on 127.0.0.1:port (0 = any). Listening on a
 * port just closed is retried for a while (bounded): the old socket may linger. */
static void serve(h_server *s, int port) {
    const char *extra[] = {"--data-dir", g_dir, NULL};
    int64_t deadline = h_now_ms() + 5000;
    while (h_server_start_args(s, g_bin, port, 0, 30, 0, extra) != 0) {
        if (port == 0 || h_now_ms() > deadline) h_fail(__FILE__, __LINE__, "cannot start rtm2 serve on port %d", port);
        h_sleep_ms(25); /* retrying a bind, not waiting for an event */
    }
}

static void login(rtm2_client *c) {
    h_call k;
    h_call_init(&k);
    CHECK_INT(OP(k, rtm2_client_login(c, NULL, h_complete, &k, NULL)), RTM2_OK);
    h_call_destroy(&k);
}

static void logout(rtm2_client *c) {
    h_call k;
    h_call_init(&k);
    CHECK_INT(OP(k, rtm2_client_logout(c, h_complete, &k, NULL)), RTM2_OK);
    h_call_destroy(&k);
}

static void publish(rtm2_client *c, const char *channel, const char *text, int stored) {
    rtm2_publish_options po;
    rtm2_publish_options_init(&po);
    po.message_type = RTM2_MESSAGE_TYPE_STRING;
    po.store_in_history = stored;
    h_call k;
    h_call_init(&k);
    CHECK_INT(OP(k, rtm2_client_publish(c, channel, text, strlen(text), &po, h_complete, &k, NULL)), RTM2_OK);
    h_call_destroy(&k);
}

/* A subscriber of "room" that comes back soon after the restart. */
static rtm2_client *subscriber(const char *user, const char *endpoint, h_recorder *rec, int batched) {
    h_recorder_init(rec);
    rec->batched = batched;
    rtm2_client *c = h_new_client(user, endpoint, rec);
    CHECK_OK(rtm2_client_set_parameters(c, "{\"reconnect_max_backoff_ms\": 200}"));
    login(c);
    h_call k;
    h_call_init(&k);
    CHECK_INT(OP(k, rtm2_client_subscribe(c, "room", RTM2_SUBSCRIBE_WITH_MESSAGE, h_complete, &k, NULL)), RTM2_OK);
    h_call_destroy(&k);
    return c;
}

/* The next message event (other kinds are skipped), within the wait. */
static h_event *next_message(h_recorder *r, const char *who) {
    int64_t deadline = h_now_ms() + H_WAIT_MS;
    for (;;) {
        int64_t left = deadline - h_now_ms();
        h_event *e = left > 0 ? h_next_event(r, (int)left) : NULL;
        if (!e) h_fail(__FILE__, __LINE__, "%s: no message within %d ms", who, H_WAIT_MS);
        if (e->kind == H_EV_MESSAGE) return e;
        h_event_free(e);
    }
}

/* The CONNECTED event of the reconnect, with no message before it. */
static void expect_connected_first(h_recorder *r, const char *who) {
    uint32_t connected = RTM2_LINK_STATE_CONNECTED;
    int64_t deadline = h_now_ms() + H_WAIT_MS;
    for (;;) {
        int64_t left = deadline - h_now_ms();
        h_event *e = left > 0 ? h_next_event(r, (int)left) : NULL;
        if (!e) h_fail(__FILE__, __LINE__, "%s: no CONNECTED event after the restart", who);
        if (e->kind == H_EV_MESSAGE)
            h_fail(__FILE__, __LINE__, "%s: message \"%s\" before the CONNECTED event", who, (const char *)e->payload);
        if (e->kind == H_EV_LINK && h_match_link_state(e, &connected)) {
            CHECK_INT(e->operation, RTM2_LINK_OPERATION_RECONNECTED);
            if (e->is_resumed) h_fail(__FILE__, __LINE__, "%s: CONNECTED after a restart is_resumed", who);
            /* A restarted server cannot vouch for the gap: the channel is announced. */
            if (strcmp(e->summary, "room") != 0)
                h_fail(__FILE__, __LINE__, "%s: affected_channels \"%s\", expected \"room\"", who, e->summary);
            CHECK_INT(e->unrestored_count, 0);
            h_event_free(e);
            return;
        }
        h_event_free(e);
    }
}

static void expect_message(h_recorder *r, const char *who, const char *text, const char *publisher, int recovered) {
    h_event *e = next_message(r, who);
    if (strcmp((const char *)e->payload, text) != 0 || strcmp(e->publisher, publisher) != 0 ||
        e->recovered != recovered) {
        h_fail(__FILE__, __LINE__, "%s: message \"%s\" from %s recovered %d, expected \"%s\" from %s recovered %d", who,
               (const char *)e->payload, e->publisher, e->recovered, text, publisher, recovered);
    }
    CHECK_STR(e->channel, "room");
    CHECK_INT(e->channel_type, RTM2_CHANNEL_TYPE_MESSAGE);
    h_event_free(e);
}

TEST(stored_messages_missed_across_a_server_restart_are_recovered) {
    snprintf(g_dir, sizeof g_dir, "/tmp/rtm2-recovery-XXXXXX");
    if (!mkdtemp(g_dir)) h_fail(__FILE__, __LINE__, "mkdtemp failed");
    h_server s1, s2, s3;
    serve(&s1, 0);
    g_servers[0] = &s1;
    int port = s1.port;
    char endpoint[64];
    snprintf(endpoint, sizeof endpoint, "%s", s1.endpoint);

    h_recorder ra, re, rb, rc, rd;
    rtm2_client *alice = subscriber("alice", endpoint, &ra, 0);
    rtm2_client *erin = subscriber("erin", endpoint, &re, 1);
    h_recorder_init(&rb);
    rtm2_client *bob = h_new_client("bob", endpoint, &rb);
    login(bob);
    publish(bob, "room", "before", 1);
    expect_message(&ra, "alice", "before", "bob", 0);
    expect_message(&re, "erin", "before", "bob", 0);

    h_server_stop(&s1);
    g_servers[0] = NULL;
    uint32_t disconnected = RTM2_LINK_STATE_DISCONNECTED;
    h_event_free(h_expect(&ra, H_EV_LINK, h_match_link_state, &disconnected));
    h_event_free(h_expect(&re, H_EV_LINK, h_match_link_state, &disconnected));

    /* Meanwhile another server on the same directory (one server at a time opens it). */
    serve(&s2, 0);
    g_servers[1] = &s2;
    h_recorder_init(&rc);
    rtm2_client *carol = h_new_client("carol", s2.endpoint, &rc);
    login(carol);
    for (int i = 0; i < 5; i++) {
        char text[32];
        snprintf(text, sizeof text, "while away %d", i);
        publish(carol, "room", text, 1);
    }
    logout(carol);
    h_server_stop(&s2);
    g_servers[1] = NULL;

    /* Back at alice's address: she and erin reconnect by themselves. */
    serve(&s3, port);
    g_servers[2] = &s3;
    expect_connected_first(&ra, "alice");
    expect_connected_first(&re, "erin");
    /* Published once they are back: it comes after what they missed. */
    h_recorder_init(&rd);
    rtm2_client *dave = h_new_client("dave", endpoint, &rd);
    login(dave);
    publish(dave, "room", "after", 0);
    for (int i = 0; i < 5; i++) {
        char text[32];
        snprintf(text, sizeof text, "while away %d", i);
        expect_message(&ra, "alice", text, "carol", 1);
        expect_message(&re, "erin", text, "carol", 1);
    }
    expect_message(&ra, "alice", "after", "dave", 0);
    expect_message(&re, "erin", "after", "dave", 0);
    CHECK(re.batches > 0);

    rtm2_client *clients[] = {alice, erin, bob, carol, dave};
    h_recorder *recs[] = {&ra, &re, &rb, &rc, &rd};
    for (int i = 0; i < 5; i++) {
        rtm2_client_free(clients[i]);
        h_wait_destroyed(recs[i], H_WAIT_MS);
        h_recorder_destroy(recs[i]);
    }
    cleanup();
}

int main(int argc, char **argv) {
    h_init();
    if (argc != 3 || strcmp(argv[1], "--rtm2") != 0) {
        fprintf(stderr, "usage: %s --rtm2 PATH\n", argv[0]);
        return 2;
    }
    g_bin = argv[2];
    atexit(cleanup);
    RUN(stored_messages_missed_across_a_server_restart_are_recovered);
    return h_finish("test_recovery", passed);
}
