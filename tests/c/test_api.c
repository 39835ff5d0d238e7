/* C API tests that need no server: version, status codes and messages, the last-error
 * message, configuration, NULL / invalid UTF-8 / out-of-range arguments (each gets its status
 * and the callback never runs), option structs with struct_size, tokens, log routing, and the
 * lifetime of a client that never logs in. */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

#define BAD_UTF8 "\xff\xfe"

static int passed = 0;
#define TEST(name) static void name(void)
#define RUN(name)              \
    do {                       \
        name();                \
        passed++;              \
        h_log("ok %s", #name); \
    } while (0)

TEST(version_matches_header) {
    char want[32];
    snprintf(want, sizeof want, "%d.%d.%d", RTM2_VERSION_MAJOR, RTM2_VERSION_MINOR, RTM2_VERSION_PATCH);
    CHECK_STR(rtm2_version(), want);
    CHECK_STR(rtm2_version(), RTM2_VERSION);
    /* 2: rtm2_message_event.recovered, which the harness reads. */
    CHECK(RTM2_ABI_VERSION >= 2);
}

TEST(status_names_and_messages) {
    CHECK_STR(rtm2_status_name(RTM2_OK), "OK");
    CHECK_STR(rtm2_status_message(RTM2_OK), "success");
    CHECK_STR(rtm2_status_name(RTM2_ERR_NULL_PARAMETER), "NULL_PARAMETER");
    CHECK_STR(rtm2_status_name(RTM2_ERR_INVALID_UTF8), "INVALID_UTF8");
    CHECK_STR(rtm2_status_name(RTM2_ERR_PANIC), "PANIC");
    CHECK_STR(rtm2_status_name(RTM2_ERR_NOT_LOGIN), "NOT_LOGIN");
    CHECK_STR(rtm2_status_message(RTM2_ERR_NOT_LOGIN), "the operation needs a logged-in client");
    CHECK_STR(rtm2_status_name(RTM2_ERR_CHANNEL_RECEIVER_OFFLINE), "CHANNEL_RECEIVER_OFFLINE");
    CHECK_INT(RTM2_ERR_CHANNEL_RECEIVER_OFFLINE, 11033);
    CHECK_STR(rtm2_status_name(-1), "UNKNOWN");
    CHECK_STR(rtm2_status_message(123456), "unknown status code");
    /* Every code of the RTM table has a name and a message. */
    int named = 0;
    for (int code = 10001; code <= 15999; code++) {
        if (strcmp(rtm2_status_name(code), "UNKNOWN") != 0) {
            named++;
            CHECK(strlen(rtm2_status_message(code)) > 0);
            CHECK(strcmp(rtm2_status_message(code), "unknown status code") != 0);
        }
    }
    CHECK_INT(named, 119);
}

static void *other_thread_last_error(void *arg) {
    const char **out = (const char **)arg;
    *out = strdup(rtm2_last_error_message());
    return NULL;
}

TEST(last_error_message_is_per_thread_and_detailed) {
    rtm2_config *cfg = (rtm2_config *)0x1;
    CHECK_STATUS(rtm2_config_new(NULL, "alice", &cfg), RTM2_ERR_NULL_PARAMETER);
    CHECK(cfg == (rtm2_config *)0x1); /* out-parameters are written only on success */
    CHECK(strstr(rtm2_last_error_message(), "app_id") != NULL);
    /* A successful call does not clear it. */
    CHECK_OK(rtm2_config_new(H_APP_ID, "alice", &cfg));
    CHECK(strstr(rtm2_last_error_message(), "app_id") != NULL);
    CHECK_STATUS(rtm2_config_set_parameters(cfg, "{\"no_such_key\": 1}"), RTM2_ERR_INVALID_PARAMETER);
    CHECK(strstr(rtm2_last_error_message(), "no_such_key") != NULL);
    const char *other = NULL;
    pthread_t t;
    CHECK_INT(pthread_create(&t, NULL, other_thread_last_error, (void *)&other), 0);
    pthread_join(t, NULL);
    CHECK_STR(other, "");
    free((void *)other);
    rtm2_config_free(cfg);
}

TEST(config_setters_validate) {
    rtm2_config *cfg = NULL;
    CHECK_OK(rtm2_config_new(H_APP_ID, "cfg-user", &cfg));
    CHECK_OK(rtm2_config_set_endpoint(cfg, "embedded"));
    CHECK_OK(rtm2_config_set_endpoint(cfg, ""));
    CHECK_OK(rtm2_config_set_endpoint(cfg, "tcp://127.0.0.1:9696"));
    CHECK_OK(rtm2_config_set_endpoint(cfg, "127.0.0.1:9696"));
    CHECK_STATUS(rtm2_config_set_endpoint(cfg, "http://example"), RTM2_ERR_INVALID_PARAMETER);
    CHECK_STATUS(rtm2_config_set_endpoint(cfg, "nohostport"), RTM2_ERR_INVALID_PARAMETER);
    /* Ports and hosts are checked by the setter, not at connect time. */
    CHECK_OK(rtm2_config_set_endpoint(cfg, "tcp://127.0.0.1:65535"));
    CHECK_OK(rtm2_config_set_endpoint(cfg, "tls://rtm2.example.com:443"));
    CHECK_OK(rtm2_config_set_endpoint(cfg, "[::1]:9696"));
    CHECK_STATUS(rtm2_config_set_endpoint(cfg, "tcp://127.0.0.1:99999"), RTM2_ERR_INVALID_PARAMETER);
    CHECK(strstr(rtm2_last_error_message(), "99999") != NULL);
    CHECK_STATUS(rtm2_config_set_endpoint(cfg, "tcp://127.0.0.1:0"), RTM2_ERR_INVALID_PARAMETER);
    CHECK_STATUS(rtm2_config_set_endpoint(cfg, "127.0.0.1:http"), RTM2_ERR_INVALID_PARAMETER);
    CHECK_STATUS(rtm2_config_set_endpoint(cfg, "tcp://:9696"), RTM2_ERR_INVALID_PARAMETER);
    CHECK_STATUS(rtm2_config_set_endpoint(cfg, "bad host:9696"), RTM2_ERR_INVALID_PARAMETER);
    CHECK_STATUS(rtm2_config_set_endpoint(cfg, "::1:9696"), RTM2_ERR_INVALID_PARAMETER);
    CHECK_STATUS(rtm2_config_set_endpoint(cfg, BAD_UTF8), RTM2_ERR_INVALID_UTF8);
    CHECK_STATUS(rtm2_config_set_endpoint(cfg, NULL), RTM2_ERR_NULL_PARAMETER);
    CHECK_OK(rtm2_config_set_request_timeout_ms(cfg, 5000));
    CHECK_STATUS(rtm2_config_set_request_timeout_ms(cfg, 5), RTM2_ERR_INVALID_PARAMETER);
    CHECK_OK(rtm2_config_set_presence_timeout_s(cfg, 30));
    CHECK_OK(rtm2_config_set_heartbeat_interval_s(cfg, 5));
    CHECK_OK(rtm2_config_set_receive_own_messages(cfg, false));
    CHECK_OK(rtm2_config_set_event_queue_capacity(cfg, 16));
    CHECK_STATUS(rtm2_config_set_event_queue_capacity(cfg, 0), RTM2_ERR_INVALID_PARAMETER);
    CHECK_OK(rtm2_config_set_parameters(cfg, "{\"pong_timeout_ms\": 3000, \"receive_own_messages\": true}"));
    CHECK_STATUS(rtm2_config_set_parameters(cfg, "{\"no_such_key\": 1}"), RTM2_ERR_INVALID_PARAMETER);
    CHECK_STATUS(rtm2_config_set_parameters(cfg, "not json"), RTM2_ERR_INVALID_PARAMETER);
    CHECK_STATUS(rtm2_config_set_parameters(cfg, "[1, 2]"), RTM2_ERR_INVALID_PARAMETER);
    CHECK_OK(rtm2_config_set_log_level(cfg, "debug"));
    CHECK_STATUS(rtm2_config_set_log_level(cfg, "loud"), RTM2_ERR_INVALID_PARAMETER);
    CHECK_OK(rtm2_config_set_log_file(cfg, NULL));
    CHECK_STATUS(rtm2_config_set_request_timeout_ms(NULL, 5000), RTM2_ERR_NULL_PARAMETER);
    CHECK_STATUS(rtm2_config_set_parameters(NULL, "{}"), RTM2_ERR_NULL_PARAMETER);
    CHECK_STATUS(rtm2_config_new(H_APP_ID, BAD_UTF8, &cfg), RTM2_ERR_INVALID_UTF8);
    CHECK_STATUS(rtm2_config_new(H_APP_ID, "x", NULL), RTM2_ERR_NULL_PARAMETER);
    rtm2_config_free(cfg);
    rtm2_config_free(NULL);
}

/* Writes the client's parameter `key` (an integer) to *out; 0 when it is missing. */
static int param_of(rtm2_client *c, const char *key, long long *out) {
    char *json = NULL;
    CHECK_OK(rtm2_client_get_parameters(c, &json));
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *at = strstr(json, pat);
    int found = at != NULL;
    if (found) *out = strtoll(at + strlen(pat), NULL, 10);
    rtm2_string_free(json);
    return found;
}

TEST(presence_timeout_and_heartbeat_are_clamped) {
    /* Like the server (and every binding, through the core): out-of-range values are moved
     * into [5, 300] and [5, 1800]; the value in effect is read back. */
    rtm2_config *cfg = NULL;
    CHECK_OK(rtm2_config_new(H_APP_ID, "clamp-user", &cfg));
    CHECK_OK(rtm2_config_set_presence_timeout_s(cfg, 4));
    CHECK_OK(rtm2_config_set_heartbeat_interval_s(cfg, 1));
    rtm2_client *c = NULL;
    CHECK_OK(rtm2_client_new(cfg, NULL, &c));
    long long v = -1;
    CHECK(param_of(c, "presence_timeout_s", &v));
    CHECK_INT(v, 5);
    CHECK(param_of(c, "heartbeat_interval_s", &v));
    CHECK_INT(v, 5);
    rtm2_client_free(c);
    CHECK_OK(rtm2_config_set_presence_timeout_s(cfg, 301));
    CHECK_OK(rtm2_config_set_heartbeat_interval_s(cfg, 0));
    CHECK_OK(rtm2_client_new(cfg, NULL, &c));
    CHECK(param_of(c, "presence_timeout_s", &v));
    CHECK_INT(v, 300);
    CHECK(param_of(c, "heartbeat_interval_s", &v));
    CHECK_INT(v, 5);
    CHECK_OK(rtm2_client_set_parameters(c, "{\"presence_timeout_s\": 0, \"heartbeat_interval_s\": 1801}"));
    CHECK(param_of(c, "presence_timeout_s", &v));
    CHECK_INT(v, 5);
    CHECK(param_of(c, "heartbeat_interval_s", &v));
    CHECK_INT(v, 1800);
    CHECK_OK(rtm2_client_set_parameters(c, "{\"presence_timeout_s\": 42}"));
    CHECK(param_of(c, "presence_timeout_s", &v));
    CHECK_INT(v, 42);
    /* Not a count of seconds at all: still 10014, and nothing changes. */
    CHECK_STATUS(rtm2_client_set_parameters(c, "{\"presence_timeout_s\": -1}"), RTM2_ERR_INVALID_PARAMETER);
    CHECK_STATUS(rtm2_config_set_parameters(cfg, "{\"heartbeat_interval_s\": \"5\"}"), RTM2_ERR_INVALID_PARAMETER);
    CHECK(param_of(c, "presence_timeout_s", &v));
    CHECK_INT(v, 42);
    rtm2_client_free(c);
    rtm2_config_free(cfg);
}

TEST(encryption_settings_are_checked_by_the_setter) {
    CHECK_STR(rtm2_enum_name("EncryptionMode", RTM2_ENCRYPTION_MODE_NONE), "NONE");
    CHECK_STR(rtm2_enum_name("EncryptionMode", RTM2_ENCRYPTION_MODE_AES_128_GCM), "AES_128_GCM");
    CHECK_STR(rtm2_enum_name("EncryptionMode", RTM2_ENCRYPTION_MODE_AES_256_GCM), "AES_256_GCM");
    CHECK(rtm2_enum_name("EncryptionMode", 3) == NULL);
    CHECK_INT(RTM2_ENCRYPTION_SALT_MAX_LEN, 32);
    const uint8_t salt[RTM2_ENCRYPTION_SALT_MAX_LEN] = "0123456789abcdef0123456789abcde";
    rtm2_config *cfg = NULL;
    CHECK_OK(rtm2_config_new(H_APP_ID, "enc-user", &cfg));
    /* Accepted: each mode with a key and a salt of 0..32 bytes (a shorter one is zero-padded);
     * NONE with no key. A client is made from each. */
    struct {
        uint32_t mode;
        const char *key;
        const uint8_t *salt;
        size_t len;
    } ok[] = {
        {RTM2_ENCRYPTION_MODE_AES_128_GCM, "k", salt, sizeof salt},
        {RTM2_ENCRYPTION_MODE_AES_256_GCM, "a longer secret", salt, 5},
        {RTM2_ENCRYPTION_MODE_AES_256_GCM, "k", NULL, 0},
        {RTM2_ENCRYPTION_MODE_NONE, "", NULL, 0},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        CHECK_OK(rtm2_config_set_encryption(cfg, ok[i].mode, ok[i].key, ok[i].salt, ok[i].len));
        rtm2_client *c = NULL;
        CHECK_OK(rtm2_client_new(cfg, NULL, &c));
        uint64_t n = 7;
        CHECK_OK(rtm2_client_get_undecryptable_messages(c, &n));
        CHECK_INT(n, 0);
        rtm2_client_free(c);
    }
    /* 10020: no key with a mode, a key or salt with NONE (messages would go out in clear), a
     * mode that is none, a salt over 32 bytes. The reason never shows the key. */
    CHECK_STATUS(rtm2_config_set_encryption(cfg, RTM2_ENCRYPTION_MODE_NONE, "ignored", NULL, 0),
                 RTM2_ERR_INVALID_ENCRYPTION_PARAMETER);
    CHECK(strstr(rtm2_last_error_message(), "ignored") == NULL);
    CHECK_STATUS(rtm2_config_set_encryption(cfg, RTM2_ENCRYPTION_MODE_NONE, "", salt, 3),
                 RTM2_ERR_INVALID_ENCRYPTION_PARAMETER);
    CHECK_STATUS(rtm2_config_set_encryption(cfg, RTM2_ENCRYPTION_MODE_AES_128_GCM, "", salt, 4),
                 RTM2_ERR_INVALID_ENCRYPTION_PARAMETER);
    CHECK(strstr(rtm2_last_error_message(), "key") != NULL);
    CHECK_STATUS(rtm2_config_set_encryption(cfg, 3, "hunter2", salt, 4), RTM2_ERR_INVALID_ENCRYPTION_PARAMETER);
    CHECK(strstr(rtm2_last_error_message(), "hunter2") == NULL);
    /* A salt_len over 32 is refused before the salt is read: a 16-byte heap buffer with a
     * larger length (AddressSanitizer fails the run on any read past it), whatever the mode. */
    uint8_t *salt16 = (uint8_t *)malloc(16);
    memset(salt16, 's', 16);
    const size_t lens[] = {RTM2_ENCRYPTION_SALT_MAX_LEN + 1, 4096, (size_t)1 << 40, (size_t)-1};
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        CHECK_STATUS(rtm2_config_set_encryption(cfg, RTM2_ENCRYPTION_MODE_AES_256_GCM, "k", salt16, lens[i]),
                     RTM2_ERR_INVALID_ENCRYPTION_PARAMETER);
        CHECK(strstr(rtm2_last_error_message(), "salt") != NULL);
        CHECK_STATUS(rtm2_config_set_encryption(cfg, RTM2_ENCRYPTION_MODE_NONE, "", salt16, lens[i]),
                     RTM2_ERR_INVALID_ENCRYPTION_PARAMETER);
    }
    CHECK_OK(rtm2_config_set_encryption(cfg, RTM2_ENCRYPTION_MODE_AES_256_GCM, "k", salt16, 16));
    free(salt16);
    /* NULL and invalid UTF-8 as everywhere. */
    CHECK_STATUS(rtm2_config_set_encryption(NULL, RTM2_ENCRYPTION_MODE_AES_128_GCM, "k", salt, 4),
                 RTM2_ERR_NULL_PARAMETER);
    CHECK_STATUS(rtm2_config_set_encryption(cfg, RTM2_ENCRYPTION_MODE_AES_128_GCM, NULL, salt, 4),
                 RTM2_ERR_NULL_PARAMETER);
    CHECK_STATUS(rtm2_config_set_encryption(cfg, RTM2_ENCRYPTION_MODE_AES_128_GCM, "k", NULL, 4),
                 RTM2_ERR_NULL_PARAMETER);
    CHECK_STATUS(rtm2_config_set_encryption(cfg, RTM2_ENCRYPTION_MODE_AES_128_GCM, BAD_UTF8, salt, 4),
                 RTM2_ERR_INVALID_UTF8);
    /* The refused calls left the last accepted setting: the config still makes a client. */
    rtm2_client *c = NULL;
    CHECK_OK(rtm2_client_new(cfg, NULL, &c));
    uint64_t n = 7;
    CHECK_STATUS(rtm2_client_get_undecryptable_messages(NULL, &n), RTM2_ERR_NULL_PARAMETER);
    CHECK_STATUS(rtm2_client_get_undecryptable_messages(c, NULL), RTM2_ERR_NULL_PARAMETER);
    CHECK_INT(n, 7); /* out-parameters are written only on success */
    rtm2_client_free(c);
    rtm2_config_free(cfg);
}

TEST(client_new_checks_ids_and_listener) {
    rtm2_client *c = (rtm2_client *)0x1;
    rtm2_config *cfg = NULL;
    CHECK_OK(rtm2_config_new("short", "alice", &cfg));
    CHECK_STATUS(rtm2_client_new(cfg, NULL, &c), RTM2_ERR_INVALID_APP_ID);
    rtm2_config_free(cfg);
    CHECK_OK(rtm2_config_new(H_APP_ID, "_hidden", &cfg));
    CHECK_STATUS(rtm2_client_new(cfg, NULL, &c), RTM2_ERR_INVALID_USER_ID);
    rtm2_config_free(cfg);
    char long_user[80];
    memset(long_user, 'u', 65);
    long_user[65] = 0;
    CHECK_OK(rtm2_config_new(H_APP_ID, long_user, &cfg));
    CHECK_STATUS(rtm2_client_new(cfg, NULL, &c), RTM2_ERR_INVALID_USER_ID);
    rtm2_config_free(cfg);
    CHECK(c == (rtm2_client *)0x1);

    CHECK_OK(rtm2_config_new(H_APP_ID, "listener-user", &cfg));
    CHECK_STATUS(rtm2_client_new(NULL, NULL, &c), RTM2_ERR_NULL_PARAMETER);
    CHECK_STATUS(rtm2_client_new(cfg, NULL, NULL), RTM2_ERR_NULL_PARAMETER);
    /* An older, shorter listener struct is refused; a newer, longer one is accepted. */
    h_recorder rec;
    h_recorder_init(&rec);
    rtm2_listener l = h_recorder_listener(&rec);
    l.struct_size = 2 * sizeof(void *);
    CHECK_STATUS(rtm2_client_new(cfg, &l, &c), RTM2_ERR_INVALID_PARAMETER);
    CHECK(c == (rtm2_client *)0x1);
    struct {
        rtm2_listener l;
        void *future_fields[8];
    } bigger;
    memset(&bigger, 0, sizeof bigger);
    bigger.l = h_recorder_listener(&rec);
    bigger.l.struct_size = sizeof bigger;
    bigger.future_fields[0] = (void *)0x1234;
    CHECK_OK(rtm2_client_new(cfg, &bigger.l, &c));
    rtm2_config_free(cfg); /* the client keeps its own copy */
    uint32_t state = 99;
    CHECK_OK(rtm2_client_get_link_state(c, &state));
    CHECK_INT(state, RTM2_LINK_STATE_IDLE);
    char *json = NULL;
    CHECK_OK(rtm2_client_get_parameters(c, &json));
    CHECK(strstr(json, "\"request_timeout_ms\"") != NULL);
    rtm2_string_free(json);
    CHECK_STATUS(rtm2_client_set_parameters(c, "{\"no_such_key\": 1}"), RTM2_ERR_INVALID_PARAMETER);
    CHECK_OK(rtm2_client_set_parameters(c, "{\"request_timeout_ms\": 4000}"));
    rtm2_client_free(c);
    /* destroy ran exactly once, on the dispatcher thread, before free returned. */
    CHECK_INT(rec.destroyed, 1);
    CHECK(!rec.on_main_thread);
    h_recorder_destroy(&rec);
    rtm2_client_free(NULL);
}

TEST(null_and_invalid_arguments_never_start_an_operation) {
    h_recorder rec;
    h_recorder_init(&rec);
    rtm2_client *c = h_new_client("null-args", NULL, &rec);
    h_call k;
    h_call_init(&k);
    uint64_t req = 777;
    const char *users_with_null[] = {"a", NULL};
    const char *users_bad_utf8[] = {"a", BAD_UTF8};

    CHECK_STATUS(rtm2_client_login(NULL, NULL, h_complete, &k, &req), RTM2_ERR_NULL_PARAMETER);
    CHECK_STATUS(rtm2_client_login(c, BAD_UTF8, h_complete, &k, &req), RTM2_ERR_INVALID_UTF8);
    CHECK_STATUS(rtm2_client_logout(NULL, h_complete, &k, &req), RTM2_ERR_NULL_PARAMETER);
    CHECK_STATUS(rtm2_client_renew_token(c, NULL, h_complete, &k, &req), RTM2_ERR_NULL_PARAMETER);
    CHECK_STATUS(rtm2_client_subscribe(c, NULL, RTM2_SUBSCRIBE_DEFAULT, h_complete, &k, &req), RTM2_ERR_NULL_PARAMETER);
    CHECK_STATUS(rtm2_client_subscribe(c, BAD_UTF8, RTM2_SUBSCRIBE_DEFAULT, h_complete, &k, &req), RTM2_ERR_INVALID_UTF8);
    CHECK_STATUS(rtm2_client_subscribe(c, "room", 0x100, h_complete, &k, &req), RTM2_ERR_INVALID_PARAMETER);
    CHECK_STATUS(rtm2_client_unsubscribe(c, NULL, h_complete, &k, &req), RTM2_ERR_NULL_PARAMETER);
    CHECK_STATUS(rtm2_client_publish(c, NULL, "x", 1, NULL, h_complete, &k, &req), RTM2_ERR_NULL_PARAMETER);
    CHECK_STATUS(rtm2_client_publish(c, BAD_UTF8, "x", 1, NULL, h_complete, &k, &req), RTM2_ERR_INVALID_UTF8);
    CHECK_STATUS(rtm2_client_publish(c, "room", NULL, 5, NULL, h_complete, &k, &req), RTM2_ERR_NULL_PARAMETER);
    CHECK_STATUS(rtm2_client_publish(NULL, "room", "x", 1, NULL, h_complete, &k, &req), RTM2_ERR_NULL_PARAMETER);

    rtm2_publish_options po;
    rtm2_publish_options_init(&po);
    CHECK_INT(po.struct_size, sizeof po);
    CHECK_INT(po.channel_type, RTM2_CHANNEL_TYPE_MESSAGE);
    CHECK_INT(po.message_type, RTM2_MESSAGE_TYPE_BINARY);
    po.struct_size = 4;
    CHECK_STATUS(rtm2_client_publish(c, "room", "x", 1, &po, h_complete, &k, &req), RTM2_ERR_INVALID_PARAMETER);
    rtm2_publish_options_init(&po);
    po.channel_type = 7;
    CHECK_STATUS(rtm2_client_publish(c, "room", "x", 1, &po, h_complete, &k, &req), RTM2_ERR_INVALID_CHANNEL_TYPE);
    rtm2_publish_options_init(&po);
    po.message_type = 9;
    CHECK_STATUS(rtm2_client_publish(c, "room", "x", 1, &po, h_complete, &k, &req),
                 RTM2_ERR_CHANNEL_UNSUPPORTED_MESSAGE_TYPE);
    rtm2_publish_options_init(&po);
    po.custom_type = BAD_UTF8;
    CHECK_STATUS(rtm2_client_publish(c, "room", "x", 1, &po, h_complete, &k, &req), RTM2_ERR_INVALID_UTF8);

    rtm2_stream_channel *sc = (rtm2_stream_channel *)0x1;
    CHECK_STATUS(rtm2_client_create_stream_channel(c, NULL, &sc), RTM2_ERR_NULL_PARAMETER);
    CHECK_STATUS(rtm2_client_create_stream_channel(c, "stage", NULL), RTM2_ERR_NULL_PARAMETER);
    CHECK_STATUS(rtm2_client_create_stream_channel(c, "bad/name", &sc), RTM2_ERR_INVALID_CHANNEL_NAME);
    CHECK_STATUS(rtm2_client_create_stream_channel(c, BAD_UTF8, &sc), RTM2_ERR_INVALID_UTF8);
    CHECK(sc == (rtm2_stream_channel *)0x1);
    CHECK_OK(rtm2_client_create_stream_channel(c, "stage", &sc));

    CHECK_STATUS(rtm2_stream_channel_join(NULL, NULL, RTM2_JOIN_DEFAULT, h_complete, &k, &req), RTM2_ERR_NULL_PARAMETER);
    CHECK_STATUS(rtm2_stream_channel_join(sc, NULL, RTM2_SUBSCRIBE_WITH_MESSAGE, h_complete, &k, &req),
                 RTM2_ERR_INVALID_PARAMETER);
    CHECK_STATUS(rtm2_stream_channel_leave(NULL, h_complete, &k, &req), RTM2_ERR_NULL_PARAMETER);
    CHECK_STATUS(rtm2_stream_channel_join_topic(sc, NULL, NULL, h_complete, &k, &req), RTM2_ERR_NULL_PARAMETER);
    rtm2_join_topic_options jo;
    rtm2_join_topic_options_init(&jo);
    CHECK_INT(jo.priority, RTM2_MESSAGE_PRIORITY_NORMAL);
    jo.qos = 5;
    CHECK_STATUS(rtm2_stream_channel_join_topic(sc, "t", &jo, h_complete, &k, &req), RTM2_ERR_INVALID_PARAMETER);
    rtm2_join_topic_options_init(&jo);
    jo.priority = 3;
    CHECK_STATUS(rtm2_stream_channel_join_topic(sc, "t", &jo, h_complete, &k, &req), RTM2_ERR_INVALID_PARAMETER);
    CHECK_STATUS(rtm2_stream_channel_leave_topic(sc, NULL, h_complete, &k, &req), RTM2_ERR_NULL_PARAMETER);
    CHECK_STATUS(rtm2_stream_channel_publish_topic(sc, "t", NULL, 3, NULL, h_complete, &k, &req),
                 RTM2_ERR_NULL_PARAMETER);
    rtm2_topic_message_options tm;
    rtm2_topic_message_options_init(&tm);
    tm.message_type = 2;
    CHECK_STATUS(rtm2_stream_channel_publish_topic(sc, "t", "x", 1, &tm, h_complete, &k, &req),
                 RTM2_ERR_CHANNEL_UNSUPPORTED_MESSAGE_TYPE);
    CHECK_STATUS(rtm2_stream_channel_subscribe_topic(sc, "t", NULL, 2, h_complete, &k, &req), RTM2_ERR_NULL_PARAMETER);
    CHECK_STATUS(rtm2_stream_channel_subscribe_topic(sc, "t", users_with_null, 2, h_complete, &k, &req),
                 RTM2_ERR_NULL_PARAMETER);
    CHECK_STATUS(rtm2_stream_channel_subscribe_topic(sc, "t", users_bad_utf8, 2, h_complete, &k, &req),
                 RTM2_ERR_INVALID_UTF8);
    CHECK_STATUS(rtm2_stream_channel_unsubscribe_topic(sc, NULL, NULL, 0, h_complete, &k, &req),
                 RTM2_ERR_NULL_PARAMETER);
    CHECK_STATUS(rtm2_stream_channel_get_subscribed_users(sc, NULL, h_complete, &k, &req), RTM2_ERR_NULL_PARAMETER);
    CHECK_STATUS(rtm2_stream_channel_renew_token(sc, NULL, h_complete, &k, &req), RTM2_ERR_NULL_PARAMETER);
    bool joined = true;
    CHECK_STATUS(rtm2_stream_channel_is_joined(sc, NULL), RTM2_ERR_NULL_PARAMETER);
    CHECK_STATUS(rtm2_stream_channel_is_joined(NULL, &joined), RTM2_ERR_NULL_PARAMETER);
    CHECK_OK(rtm2_stream_channel_is_joined(sc, &joined));
    CHECK(!joined);
    char *name = NULL;
    CHECK_STATUS(rtm2_stream_channel_get_name(sc, NULL), RTM2_ERR_NULL_PARAMETER);
    CHECK_STATUS(rtm2_stream_channel_get_name(NULL, &name), RTM2_ERR_NULL_PARAMETER);
    CHECK_OK(rtm2_stream_channel_get_name(sc, &name));
    CHECK_STR(name, "stage");
    rtm2_string_free(name);
    char *user = NULL;
    CHECK_STATUS(rtm2_client_get_user_id(c, NULL), RTM2_ERR_NULL_PARAMETER);
    CHECK_STATUS(rtm2_client_get_user_id(NULL, &user), RTM2_ERR_NULL_PARAMETER);
    CHECK_OK(rtm2_client_get_user_id(c, &user));
    CHECK_STR(user, "null-args");
    rtm2_string_free(user);

    uint32_t state;
    CHECK_STATUS(rtm2_client_get_link_state(c, NULL), RTM2_ERR_NULL_PARAMETER);
    CHECK_STATUS(rtm2_client_get_link_state(NULL, &state), RTM2_ERR_NULL_PARAMETER);
    CHECK_STATUS(rtm2_client_get_parameters(c, NULL), RTM2_ERR_NULL_PARAMETER);
    CHECK_STATUS(rtm2_client_set_parameters(c, NULL), RTM2_ERR_NULL_PARAMETER);
    CHECK_STATUS(rtm2_client_set_parameters(c, BAD_UTF8), RTM2_ERR_INVALID_UTF8);

    CHECK_INT(req, 777); /* no request id was handed out */
    rtm2_stream_channel_free(sc);
    rtm2_stream_channel_free(NULL);
    rtm2_client_free(c);
    /* free delivers every pending completion before returning: none ran, so none started. */
    CHECK_INT(k.count, 0);
    CHECK_INT(rec.destroyed, 1);
    h_call_destroy(&k);
    h_recorder_destroy(&rec);
}

TEST(service_arguments_are_checked_before_starting) {
    h_recorder rec;
    h_recorder_init(&rec);
    rtm2_client *c = h_new_client("svc-args", NULL, &rec);
    h_call k;
    h_call_init(&k);
    uint64_t req = 777;
    const uint32_t M = RTM2_CHANNEL_TYPE_MESSAGE;
    const char *keys_with_null[] = {"a", NULL};
    const char *keys_bad_utf8[] = {"a", BAD_UTF8};
    rtm2_state_item st_null_value[] = {{"a", "1"}, {"b", NULL}};
    rtm2_state_item st_bad_key[] = {{BAD_UTF8, "1"}};
    rtm2_metadata_item mi_null_key[] = {{"a", "1", -1, 0, NULL}, {NULL, "2", -1, 0, NULL}};
    rtm2_metadata_item mi_bad_value[] = {{"a", BAD_UTF8, -1, 0, NULL}};

    /* Option structs: defaults, and struct_size checks. */
    rtm2_get_online_users_options wo;
    memset(&wo, 0xff, sizeof wo);
    rtm2_get_online_users_options_init(&wo);
    CHECK_INT(wo.struct_size, sizeof wo);
    CHECK(wo.include_user_id);
    CHECK(!wo.include_state);
    CHECK(wo.page == NULL);
    rtm2_get_online_users_options_init(NULL);
    rtm2_metadata_options mo;
    memset(&mo, 0xff, sizeof mo);
    rtm2_metadata_options_init(&mo);
    CHECK_INT(mo.struct_size, sizeof mo);
    CHECK_INT(mo.major_revision, -1);
    CHECK(mo.lock_name == NULL);
    CHECK(!mo.record_ts);
    CHECK(!mo.record_author);
    rtm2_metadata_options_init(NULL);
    wo.struct_size = 3;
    CHECK_STATUS(rtm2_presence_get_online_users(c, "room", M, &wo, h_complete, &k, &req), RTM2_ERR_INVALID_PARAMETER);
    rtm2_get_online_users_options_init(&wo);
    wo.page = BAD_UTF8;
    CHECK_STATUS(rtm2_presence_get_online_users(c, "room", M, &wo, h_complete, &k, &req), RTM2_ERR_INVALID_UTF8);
    mo.struct_size = 8;
    CHECK_STATUS(rtm2_storage_set_channel_metadata(c, "room", M, NULL, 0, &mo, h_complete, &k, &req),
                 RTM2_ERR_INVALID_PARAMETER);
    rtm2_metadata_options_init(&mo);
    mo.lock_name = BAD_UTF8;
    CHECK_STATUS(rtm2_storage_set_channel_metadata(c, "room", M, NULL, 0, &mo, h_complete, &k, &req),
                 RTM2_ERR_INVALID_UTF8);

    /* Presence. */
    CHECK_STATUS(rtm2_presence_get_online_users(NULL, "room", M, NULL, h_complete, &k, &req), RTM2_ERR_NULL_PARAMETER);
    CHECK_STATUS(rtm2_presence_get_online_users(c, NULL, M, NULL, h_complete, &k, &req), RTM2_ERR_NULL_PARAMETER);
    CHECK_STATUS(rtm2_presence_who_now(c, BAD_UTF8, M, NULL, h_complete, &k, &req), RTM2_ERR_INVALID_UTF8);
    CHECK_STATUS(rtm2_presence_who_now(c, "room", 42, NULL, h_complete, &k, &req), RTM2_ERR_INVALID_CHANNEL_TYPE);
    CHECK_STATUS(rtm2_presence_get_user_channels(NULL, NULL, h_complete, &k, &req), RTM2_ERR_NULL_PARAMETER);
    CHECK_STATUS(rtm2_presence_where_now(c, BAD_UTF8, h_complete, &k, &req), RTM2_ERR_INVALID_UTF8);
    CHECK_STATUS(rtm2_presence_set_state(c, "room", M, NULL, 2, h_complete, &k, &req), RTM2_ERR_NULL_PARAMETER);
    CHECK_STATUS(rtm2_presence_set_state(c, "room", M, st_null_value, 2, h_complete, &k, &req),
                 RTM2_ERR_NULL_PARAMETER);
    CHECK(strstr(rtm2_last_error_message(), "states[1].value") != NULL);
    CHECK_STATUS(rtm2_presence_set_state(c, "room", M, st_bad_key, 1, h_complete, &k, &req), RTM2_ERR_INVALID_UTF8);
    CHECK_STATUS(rtm2_presence_set_state(c, "room", 9, st_bad_key, 0, h_complete, &k, &req),
                 RTM2_ERR_INVALID_CHANNEL_TYPE);
    CHECK_STATUS(rtm2_presence_get_state(c, "room", M, NULL, h_complete, &k, &req), RTM2_ERR_NULL_PARAMETER);
    CHECK_STATUS(rtm2_presence_get_state(c, NULL, M, "bob", h_complete, &k, &req), RTM2_ERR_NULL_PARAMETER);
    CHECK_STATUS(rtm2_presence_remove_state(c, "room", M, NULL, 1, h_complete, &k, &req), RTM2_ERR_NULL_PARAMETER);
    CHECK_STATUS(rtm2_presence_remove_state(c, "room", M, keys_with_null, 2, h_complete, &k, &req),
                 RTM2_ERR_NULL_PARAMETER);
    CHECK_STATUS(rtm2_presence_remove_state(c, "room", M, keys_bad_utf8, 2, h_complete, &k, &req),
                 RTM2_ERR_INVALID_UTF8);

    /* Storage. */
    CHECK_STATUS(rtm2_storage_set_channel_metadata(NULL, "room", M, NULL, 0, NULL, h_complete, &k, &req),
                 RTM2_ERR_NULL_PARAMETER);
    CHECK_STATUS(rtm2_storage_set_channel_metadata(c, NULL, M, NULL, 0, NULL, h_complete, &k, &req),
                 RTM2_ERR_NULL_PARAMETER);
    CHECK_STATUS(rtm2_storage_set_channel_metadata(c, "room", M, NULL, 1, NULL, h_complete, &k, &req),
                 RTM2_ERR_NULL_PARAMETER);
    CHECK_STATUS(rtm2_storage_update_channel_metadata(c, "room", M, mi_null_key, 2, NULL, h_complete, &k, &req),
                 RTM2_ERR_NULL_PARAMETER);
    CHECK(strstr(rtm2_last_error_message(), "items[1].key") != NULL);
    CHECK_STATUS(rtm2_storage_remove_channel_metadata(c, "room", M, mi_bad_value, 1, NULL, h_complete, &k, &req),
                 RTM2_ERR_INVALID_UTF8);
    CHECK_STATUS(rtm2_storage_set_channel_metadata(c, "room", 5, NULL, 0, NULL, h_complete, &k, &req),
                 RTM2_ERR_INVALID_CHANNEL_TYPE);
    CHECK_STATUS(rtm2_storage_get_channel_metadata(c, "room", 5, h_complete, &k, &req), RTM2_ERR_INVALID_CHANNEL_TYPE);
    CHECK_STATUS(rtm2_storage_get_channel_metadata(c, NULL, M, h_complete, &k, &req), RTM2_ERR_NULL_PARAMETER);
    CHECK_STATUS(rtm2_storage_set_user_metadata(c, BAD_UTF8, NULL, 0, NULL, h_complete, &k, &req),
                 RTM2_ERR_INVALID_UTF8);
    CHECK_STATUS(rtm2_storage_update_user_metadata(NULL, NULL, NULL, 0, NULL, h_complete, &k, &req),
                 RTM2_ERR_NULL_PARAMETER);
    CHECK_STATUS(rtm2_storage_remove_user_metadata(c, NULL, mi_null_key, 2, NULL, h_complete, &k, &req),
                 RTM2_ERR_NULL_PARAMETER);
    CHECK_STATUS(rtm2_storage_get_user_metadata(c, BAD_UTF8, h_complete, &k, &req), RTM2_ERR_INVALID_UTF8);
    CHECK_STATUS(rtm2_storage_subscribe_user_metadata(c, NULL, h_complete, &k, &req), RTM2_ERR_NULL_PARAMETER);
    CHECK_STATUS(rtm2_storage_unsubscribe_user_metadata(c, NULL, h_complete, &k, &req), RTM2_ERR_NULL_PARAMETER);

    /* Locks. */
    CHECK_STATUS(rtm2_lock_set(NULL, "room", M, "door", 10, h_complete, &k, &req), RTM2_ERR_NULL_PARAMETER);
    CHECK_STATUS(rtm2_lock_set(c, "room", M, NULL, 10, h_complete, &k, &req), RTM2_ERR_NULL_PARAMETER);
    CHECK_STATUS(rtm2_lock_set(c, "room", 4, "door", 10, h_complete, &k, &req), RTM2_ERR_INVALID_CHANNEL_TYPE);
    CHECK_STATUS(rtm2_lock_remove(c, BAD_UTF8, M, "door", h_complete, &k, &req), RTM2_ERR_INVALID_UTF8);
    CHECK_STATUS(rtm2_lock_acquire(c, "room", M, NULL, true, h_complete, &k, &req), RTM2_ERR_NULL_PARAMETER);
    CHECK_STATUS(rtm2_lock_release(c, "room", 77, "door", h_complete, &k, &req), RTM2_ERR_INVALID_CHANNEL_TYPE);
    CHECK_STATUS(rtm2_lock_revoke(c, "room", M, "door", NULL, h_complete, &k, &req), RTM2_ERR_NULL_PARAMETER);
    CHECK_STATUS(rtm2_lock_get_locks(c, NULL, M, h_complete, &k, &req), RTM2_ERR_NULL_PARAMETER);

    CHECK_INT(req, 777); /* no request id was handed out */
    rtm2_client_free(c);
    CHECK_INT(k.count, 0);
    CHECK_INT(rec.destroyed, 1);
    h_call_destroy(&k);
    h_recorder_destroy(&rec);
}

TEST(listener_of_an_older_header_is_accepted) {
    /* A listener compiled before on_presence/on_storage/on_lock existed: struct_size ends at
     * on_overflow; the fields after it (garbage here) are not read. */
    rtm2_listener l;
    memset(&l, 0xab, sizeof l);
    l.struct_size = offsetof(rtm2_listener, on_presence);
    l.user_data = NULL;
    l.destroy = NULL;
    l.on_message = NULL;
    l.on_topic = NULL;
    l.on_link_state = NULL;
    l.on_token_will_expire = NULL;
    l.on_overflow = NULL;
    rtm2_config *cfg = NULL;
    CHECK_OK(rtm2_config_new(H_APP_ID, "old-listener", &cfg));
    rtm2_client *c = NULL;
    CHECK_OK(rtm2_client_new(cfg, &l, &c));
    rtm2_config_free(cfg);
    rtm2_client_free(c);
    l.struct_size = offsetof(rtm2_listener, on_overflow); /* shorter than version 1 */
    CHECK_OK(rtm2_config_new(H_APP_ID, "old-listener", &cfg));
    c = (rtm2_client *)0x1;
    CHECK_STATUS(rtm2_client_new(cfg, &l, &c), RTM2_ERR_INVALID_PARAMETER);
    CHECK(c == (rtm2_client *)0x1);
    rtm2_config_free(cfg);
}

TEST(tokens) {
    char *t = (char *)0x1;
    CHECK_OK(rtm2_token_build(H_APP_ID, H_APP_CERT, "alice", 600, &t));
    CHECK(strncmp(t, "007", 3) == 0);
    rtm2_string_free(t);
    CHECK_OK(rtm2_stream_token_build(H_APP_ID, H_APP_CERT, "stage", "alice", 600, &t));
    CHECK(strncmp(t, "007", 3) == 0);
    rtm2_string_free(t);
    t = (char *)0x1;
    CHECK_STATUS(rtm2_token_build(H_APP_ID, "not-a-certificate", "alice", 600, &t), RTM2_ERR_INVALID_PARAMETER);
    CHECK(t == (char *)0x1);
    CHECK_STATUS(rtm2_token_build(NULL, H_APP_CERT, "alice", 600, &t), RTM2_ERR_NULL_PARAMETER);
    CHECK_STATUS(rtm2_token_build(H_APP_ID, H_APP_CERT, "alice", 600, NULL), RTM2_ERR_NULL_PARAMETER);
    CHECK_STATUS(rtm2_stream_token_build(H_APP_ID, H_APP_CERT, BAD_UTF8, "alice", 600, &t), RTM2_ERR_INVALID_UTF8);
    rtm2_string_free(NULL);
}

static void ignore_log(void *ud, int32_t level, const char *target, const char *message) {
    (void)ud;
    (void)level;
    (void)target;
    (void)message;
}

TEST(log_callback_levels) {
    CHECK_STATUS(rtm2_set_log_callback(9, ignore_log, NULL), RTM2_ERR_INVALID_PARAMETER);
    CHECK_STATUS(rtm2_set_log_callback(-1, ignore_log, NULL), RTM2_ERR_INVALID_PARAMETER);
    CHECK_OK(rtm2_set_log_callback(RTM2_LOG_WARN, ignore_log, NULL));
    CHECK_OK(rtm2_set_log_callback(RTM2_LOG_WARN, NULL, NULL));
}

int main(void) {
    h_init();
    RUN(version_matches_header);
    RUN(status_names_and_messages);
    RUN(last_error_message_is_per_thread_and_detailed);
    RUN(config_setters_validate);
    RUN(presence_timeout_and_heartbeat_are_clamped);
    RUN(encryption_settings_are_checked_by_the_setter);
    RUN(client_new_checks_ids_and_listener);
    RUN(null_and_invalid_arguments_never_start_an_operation);
    RUN(service_arguments_are_checked_before_starting);
    RUN(listener_of_an_older_header_is_accepted);
    RUN(tokens);
    RUN(log_callback_levels);
    return h_finish("test_api", passed);
}
