/* End-to-end encryption through the C API (rtm2_config_set_encryption,
 * rtm2_client_get_undecryptable_messages) against the embedded server (no argument) or a
 * standalone `rtm2 serve` (--rtm2 PATH): clients with the same mode, key and salt exchange
 * message-channel, peer-to-peer and topic messages and presence states in clear; a message
 * that does not decrypt with the receiver's settings (another key, salt or mode; encrypted to
 * a plain client) is never delivered and is counted; a plain client's state is left out by an
 * encrypting reader and the reverse. (The setter's argument checks are in test_api.c.)
 *
 *   test_encryption [--rtm2 PATH] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

static int passed = 0;
static const char *g_endpoint = NULL; /* NULL = embedded */
static char g_prefix[32] = "ee";     /* user-id prefix, unique per run mode */

#define TEST(name) static void name(void)
#define RUN(name)              \
    do {                       \
        name();                \
        passed++;              \
        h_log("ok %s", #name); \
    } while (0)

static const uint8_t SALT[32] = "0123456789abcdef0123456789abcde";

static const char *uid(char *buf, size_t cap, const char *name) {
    snprintf(buf, cap, "%s-%s", g_prefix, name);
    return buf;
}

/* A logged-in client with the given encryption (mode RTM2_ENCRYPTION_MODE_NONE: plain). */
static rtm2_client *enc_client(const char *name, uint32_t mode, const char *key, const uint8_t *salt,
                               size_t salt_len, h_recorder *rec) {
    char u[96];
    rtm2_config *cfg = NULL;
    CHECK_OK(rtm2_config_new(H_APP_ID, uid(u, sizeof u, name), &cfg));
    if (g_endpoint) CHECK_OK(rtm2_config_set_endpoint(cfg, g_endpoint));
    CHECK_OK(rtm2_config_set_encryption(cfg, mode, key, salt, salt_len));
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

static rtm2_client *aes128(const char *name, const char *key, h_recorder *rec) {
    return enc_client(name, RTM2_ENCRYPTION_MODE_AES_128_GCM, key, SALT, sizeof SALT, rec);
}

static void free_client(rtm2_client *c, h_recorder *r) {
    rtm2_client_free(c);
    CHECK_INT(r->destroyed, 1);
    h_recorder_destroy(r);
}

static uint64_t undecryptable(rtm2_client *c) {
    uint64_t n = 12345;
    CHECK_OK(rtm2_client_get_undecryptable_messages(c, &n));
    return n;
}

static int32_t publish_text(rtm2_client *c, const char *channel, const char *text, h_call *k) {
    rtm2_publish_options po;
    rtm2_publish_options_init(&po);
    po.message_type = RTM2_MESSAGE_TYPE_STRING;
    return OP(*k, rtm2_client_publish(c, channel, text, strlen(text), &po, h_complete, k, NULL));
}

static int match_channel(const h_event *e, const void *channel) {
    return strcmp(e->channel, (const char *)channel) == 0;
}

static int match_channel_type(const h_event *e, const void *type) {
    return e->channel_type == *(const uint32_t *)type;
}

static int match_state_changed_by(const h_event *e, const void *publisher) {
    return e->event_type == RTM2_PRESENCE_EVENT_TYPE_REMOTE_STATE_CHANGED &&
           strcmp(e->publisher, (const char *)publisher) == 0;
}

/* The next message of `channel` that `r` receives must be `text`. */
static void expect_next_text(h_recorder *r, const char *channel, const char *text) {
    h_event *e = h_expect(r, H_EV_MESSAGE, match_channel, channel);
    if (!h_match_text(e, text))
        h_fail(__FILE__, __LINE__, "the next message of %s is \"%.*s\", expected \"%s\"", channel,
               (int)e->payload_len, (const char *)e->payload, text);
    h_event_free(e);
}

TEST(clients_with_the_same_settings_talk_in_clear) {
    h_recorder ra, rb;
    rtm2_client *a = aes128("alice", "shared secret", &ra);
    rtm2_client *b = aes128("bob", "shared secret", &rb);
    char alice[96], bob[96];
    uid(alice, sizeof alice, "alice");
    uid(bob, sizeof bob, "bob");
    h_call k;
    h_call_init(&k);
    CHECK_INT(OP(k, rtm2_client_subscribe(b, "room", RTM2_SUBSCRIBE_DEFAULT, h_complete, &k, NULL)), RTM2_OK);
    CHECK_INT(OP(k, rtm2_client_subscribe(a, "room", RTM2_SUBSCRIBE_WITH_PRESENCE, h_complete, &k, NULL)),
              RTM2_OK);

    /* A message channel: every field as sent. */
    rtm2_publish_options po;
    rtm2_publish_options_init(&po);
    po.message_type = RTM2_MESSAGE_TYPE_STRING;
    po.custom_type = "note";
    const char *plan = "top secret plan";
    CHECK_INT(OP(k, rtm2_client_publish(a, "room", plan, strlen(plan), &po, h_complete, &k, NULL)), RTM2_OK);
    h_event *e = h_expect(&rb, H_EV_MESSAGE, match_channel, "room");
    CHECK(h_match_text(e, plan));
    CHECK_STR(e->publisher, alice);
    CHECK_STR(e->custom_type, "note");
    CHECK_INT(e->message_type, RTM2_MESSAGE_TYPE_STRING);
    CHECK_INT(e->channel_type, RTM2_CHANNEL_TYPE_MESSAGE);
    h_event_free(e);

    /* Peer to peer, binary (with a NUL and a 0xff byte). */
    const unsigned char bin[] = {0, 1, 2, 255};
    rtm2_publish_options_init(&po);
    po.channel_type = RTM2_CHANNEL_TYPE_USER;
    CHECK_INT(OP(k, rtm2_client_publish(a, bob, bin, sizeof bin, &po, h_complete, &k, NULL)), RTM2_OK);
    uint32_t user = RTM2_CHANNEL_TYPE_USER;
    e = h_expect(&rb, H_EV_MESSAGE, match_channel_type, &user);
    CHECK_INT(e->payload_len, sizeof bin);
    CHECK(memcmp(e->payload, bin, sizeof bin) == 0);
    CHECK_INT(e->message_type, RTM2_MESSAGE_TYPE_BINARY);
    h_event_free(e);

    /* A stream topic. */
    rtm2_stream_channel *sa = NULL, *sb = NULL;
    CHECK_OK(rtm2_client_create_stream_channel(a, "stage", &sa));
    CHECK_OK(rtm2_client_create_stream_channel(b, "stage", &sb));
    CHECK_INT(OP(k, rtm2_stream_channel_join(sa, NULL, RTM2_JOIN_DEFAULT, h_complete, &k, NULL)), RTM2_OK);
    CHECK_INT(OP(k, rtm2_stream_channel_join(sb, NULL, RTM2_JOIN_DEFAULT, h_complete, &k, NULL)), RTM2_OK);
    CHECK_INT(OP(k, rtm2_stream_channel_join_topic(sa, "t", NULL, h_complete, &k, NULL)), RTM2_OK);
    const char *users[] = {alice};
    CHECK_INT(OP(k, rtm2_stream_channel_subscribe_topic(sb, "t", users, 1, h_complete, &k, NULL)), RTM2_OK);
    CHECK_INT(OP(k, rtm2_stream_channel_publish_topic(sa, "t", "on stage", 8, NULL, h_complete, &k, NULL)), RTM2_OK);
    uint32_t stream = RTM2_CHANNEL_TYPE_STREAM;
    e = h_expect(&rb, H_EV_MESSAGE, match_channel_type, &stream);
    CHECK(h_match_text(e, "on stage"));
    CHECK_STR(e->topic, "t");
    h_event_free(e);

    /* A presence state: the event, get_state and who_now give it in clear. */
    rtm2_state_item st[] = {{"mood", "secretly happy"}};
    CHECK_INT(OP(k, rtm2_presence_set_state(a, "room", RTM2_CHANNEL_TYPE_MESSAGE, st, 1, h_complete, &k, NULL)),
              RTM2_OK);
    e = h_expect(&rb, H_EV_PRESENCE, match_state_changed_by, alice);
    CHECK_STR(h_s(e->states), "mood:secretly happy");
    h_event_free(e);
    CHECK_INT(OP(k, rtm2_presence_get_state(b, "room", RTM2_CHANNEL_TYPE_MESSAGE, alice, h_complete, &k, NULL)),
              RTM2_OK);
    CHECK_STR(h_s(k.states), "mood:secretly happy");
    rtm2_get_online_users_options wo;
    rtm2_get_online_users_options_init(&wo);
    wo.include_state = true;
    CHECK_INT(OP(k, rtm2_presence_who_now(b, "room", RTM2_CHANNEL_TYPE_MESSAGE, &wo, h_complete, &k, NULL)), RTM2_OK);
    char want[256];
    snprintf(want, sizeof want, "%s{mood:secretly happy}", alice);
    CHECK(strstr(h_s(k.online_states), want) != NULL);

    /* Everything decrypted: nothing dropped. */
    CHECK_INT(undecryptable(a), 0);
    CHECK_INT(undecryptable(b), 0);
    rtm2_stream_channel_free(sa);
    rtm2_stream_channel_free(sb);
    h_call_destroy(&k);
    free_client(a, &ra);
    free_client(b, &rb);
}

TEST(another_key_salt_or_mode_is_dropped_and_counted) {
    h_recorder rr, rw, rs, rm, rg;
    rtm2_client *receiver = aes128("receiver", "right", &rr);
    rtm2_client *wrong_key = aes128("wrong-key", "wrong", &rw);
    rtm2_client *wrong_salt =
        enc_client("wrong-salt", RTM2_ENCRYPTION_MODE_AES_128_GCM, "right", (const uint8_t *)"pepper", 6, &rs);
    rtm2_client *other_mode = enc_client("other-mode", RTM2_ENCRYPTION_MODE_AES_256_GCM, "right", SALT, sizeof SALT,
                                         &rm);
    rtm2_client *good = aes128("good", "right", &rg);
    h_call k;
    h_call_init(&k);
    CHECK_INT(OP(k, rtm2_client_subscribe(receiver, "room", RTM2_SUBSCRIBE_DEFAULT, h_complete, &k, NULL)),
              RTM2_OK);
    CHECK_INT(publish_text(wrong_key, "room", "with the wrong key", &k), RTM2_OK);
    CHECK_INT(publish_text(wrong_salt, "room", "with the wrong salt", &k), RTM2_OK);
    CHECK_INT(publish_text(other_mode, "room", "in another mode", &k), RTM2_OK);
    CHECK_INT(publish_text(good, "room", "the good one", &k), RTM2_OK);
    /* Published one after the other: the good one is the first the receiver gets, and the
     * three before it were counted by then. */
    expect_next_text(&rr, "room", "the good one");
    CHECK_INT(undecryptable(receiver), 3);
    /* Peer to peer too. */
    char receiver_id[96];
    rtm2_publish_options po;
    rtm2_publish_options_init(&po);
    po.channel_type = RTM2_CHANNEL_TYPE_USER;
    uid(receiver_id, sizeof receiver_id, "receiver");
    CHECK_INT(OP(k, rtm2_client_publish(wrong_key, receiver_id, "p2p", 3, &po, h_complete, &k, NULL)), RTM2_OK);
    CHECK_INT(OP(k, rtm2_client_publish(good, receiver_id, "p2p good", 8, &po, h_complete, &k, NULL)), RTM2_OK);
    expect_next_text(&rr, receiver_id, "p2p good");
    CHECK_INT(undecryptable(receiver), 4);
    CHECK_INT(undecryptable(good), 0);
    h_call_destroy(&k);
    free_client(receiver, &rr);
    free_client(wrong_key, &rw);
    free_client(wrong_salt, &rs);
    free_client(other_mode, &rm);
    free_client(good, &rg);
}

TEST(a_plain_client_drops_encrypted_messages_and_the_reverse) {
    h_recorder rp, re;
    rtm2_client *plain = enc_client("plain", RTM2_ENCRYPTION_MODE_NONE, "", NULL, 0, &rp);
    rtm2_client *sealed = aes128("sealed", "k", &re);
    char plain_id[96], sealed_id[96];
    uid(plain_id, sizeof plain_id, "plain");
    uid(sealed_id, sizeof sealed_id, "sealed");
    h_call k;
    h_call_init(&k);
    CHECK_INT(OP(k, rtm2_client_subscribe(plain, "mixed", RTM2_SUBSCRIBE_DEFAULT, h_complete, &k, NULL)), RTM2_OK);
    CHECK_INT(OP(k, rtm2_client_subscribe(sealed, "mixed", RTM2_SUBSCRIBE_DEFAULT, h_complete, &k, NULL)), RTM2_OK);
    CHECK_INT(undecryptable(plain), 0);
    CHECK_INT(publish_text(sealed, "mixed", "encrypted", &k), RTM2_OK);
    /* The encrypting client reads its own message. */
    expect_next_text(&re, "mixed", "encrypted");
    /* The plain client drops it (counted) and gets its own plain one; the encrypting client
     * drops that one. */
    CHECK_INT(publish_text(plain, "mixed", "in clear", &k), RTM2_OK);
    expect_next_text(&rp, "mixed", "in clear");
    CHECK_INT(undecryptable(plain), 1);
    CHECK_INT(publish_text(sealed, "mixed", "encrypted again", &k), RTM2_OK);
    expect_next_text(&re, "mixed", "encrypted again");
    CHECK_INT(undecryptable(sealed), 1);
    /* Presence states: each leaves out the other's value, and reads its own. */
    rtm2_state_item ps[] = {{"k", "plain value"}};
    rtm2_state_item es[] = {{"k", "sealed value"}};
    CHECK_INT(OP(k, rtm2_presence_set_state(plain, "mixed", RTM2_CHANNEL_TYPE_MESSAGE, ps, 1, h_complete, &k, NULL)),
              RTM2_OK);
    CHECK_INT(OP(k, rtm2_presence_set_state(sealed, "mixed", RTM2_CHANNEL_TYPE_MESSAGE, es, 1, h_complete, &k, NULL)),
              RTM2_OK);
    CHECK_INT(OP(k, rtm2_presence_get_state(sealed, "mixed", RTM2_CHANNEL_TYPE_MESSAGE, plain_id, h_complete, &k,
                                            NULL)),
              RTM2_OK);
    CHECK_STR(h_s(k.states), "");
    CHECK_INT(OP(k, rtm2_presence_get_state(plain, "mixed", RTM2_CHANNEL_TYPE_MESSAGE, sealed_id, h_complete, &k,
                                            NULL)),
              RTM2_OK);
    CHECK_STR(h_s(k.states), "");
    CHECK_INT(OP(k, rtm2_presence_get_state(sealed, "mixed", RTM2_CHANNEL_TYPE_MESSAGE, sealed_id, h_complete, &k,
                                            NULL)),
              RTM2_OK);
    CHECK_STR(h_s(k.states), "k:sealed value");
    h_call_destroy(&k);
    free_client(plain, &rp);
    free_client(sealed, &re);
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
    const char *suite = "test_encryption (embedded)";
    if (rtm2_bin) {
        if (h_server_start(&server, rtm2_bin, 0, 0, 30, 0) != 0) h_fail(__FILE__, __LINE__, "cannot start %s serve", rtm2_bin);
        g_endpoint = server.endpoint;
        snprintf(g_prefix, sizeof g_prefix, "es");
        suite = "test_encryption (rtm2 serve)";
        h_log("using rtm2 serve at %s", g_endpoint);
    }
    RUN(clients_with_the_same_settings_talk_in_clear);
    RUN(another_key_salt_or_mode_is_dropped_and_counted);
    RUN(a_plain_client_drops_encrypted_messages_and_the_reverse);
    if (rtm2_bin) h_server_stop(&server);
    return h_finish(suite, passed);
}
