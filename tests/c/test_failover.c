/* Client failover through the C API (docs/CLUSTER.md, "Client failover"): the endpoint string
 * takes a comma-separated list; a bad entry is refused with 10014; a client given
 * [dead, live] logs in on the live one; and a client on the first of two `rtm2 serve` whose
 * server dies moves to the second, is told first that its channel may have missed messages,
 * and gets the messages published there.
 *
 *   test_failover --rtm2 PATH */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

static int passed = 0;
static const char *g_bin = NULL;

#define TEST(name) static void name(void)
#define RUN(name)              \
    do {                       \
        name();                \
        passed++;              \
        h_log("ok %s", #name); \
    } while (0)

static void login(rtm2_client *c) {
    h_call k;
    h_call_init(&k);
    CHECK_INT(OP(k, rtm2_client_login(c, NULL, h_complete, &k, NULL)), RTM2_OK);
    h_call_destroy(&k);
}

static void publish(rtm2_client *c, const char *channel, const char *text) {
    rtm2_publish_options po;
    rtm2_publish_options_init(&po);
    po.message_type = RTM2_MESSAGE_TYPE_STRING;
    h_call k;
    h_call_init(&k);
    CHECK_INT(OP(k, rtm2_client_publish(c, channel, text, strlen(text), &po, h_complete, &k, NULL)), RTM2_OK);
    h_call_destroy(&k);
}

TEST(endpoint_lists_are_checked_entry_by_entry) {
    rtm2_config *cfg = NULL;
    CHECK_OK(rtm2_config_new(H_APP_ID, "lists", &cfg));
    CHECK_OK(rtm2_config_set_endpoint(cfg, "tcp://127.0.0.1:9696,127.0.0.1:9697"));
    CHECK_OK(rtm2_config_set_endpoint(cfg, "tcp://10.0.0.1:9696, tls://rtm2.example.com:443"));
    CHECK_STATUS(rtm2_config_set_endpoint(cfg, "127.0.0.1:1,127.0.0.1:99999"), RTM2_ERR_INVALID_PARAMETER);
    CHECK(strstr(rtm2_last_error_message(), "127.0.0.1:99999") != NULL);
    CHECK_STATUS(rtm2_config_set_endpoint(cfg, "127.0.0.1:1,,127.0.0.1:2"), RTM2_ERR_INVALID_PARAMETER);
    CHECK(strstr(rtm2_last_error_message(), "empty") != NULL);
    CHECK_STATUS(rtm2_config_set_endpoint(cfg, "127.0.0.1:1,"), RTM2_ERR_INVALID_PARAMETER);
    CHECK_STATUS(rtm2_config_set_endpoint(cfg, "embedded,127.0.0.1:1"), RTM2_ERR_INVALID_PARAMETER);
    rtm2_config_free(cfg);
}

TEST(a_dead_first_endpoint_is_skipped_at_login) {
    h_server s;
    if (h_server_start(&s, g_bin, 0, 0, 30, 0) != 0) h_fail(__FILE__, __LINE__, "cannot start rtm2 serve");
    char list[160];
    snprintf(list, sizeof list, "tcp://127.0.0.1:%d,%s", h_unused_port(), s.endpoint);
    h_recorder rec;
    h_recorder_init(&rec);
    rtm2_client *c = h_new_client("skipper", list, &rec);
    login(c);
    rtm2_client_free(c);
    h_recorder_destroy(&rec);
    h_server_stop(&s);
}

static int is_message_event(const h_event *e, const void *arg) {
    (void)arg;
    return e->kind == H_EV_MESSAGE;
}

TEST(a_client_whose_server_dies_moves_to_the_next_one) {
    h_server a, b;
    if (h_server_start(&a, g_bin, 0, 0, 30, 0) != 0) h_fail(__FILE__, __LINE__, "cannot start rtm2 serve");
    if (h_server_start(&b, g_bin, 0, 0, 30, 0) != 0) h_fail(__FILE__, __LINE__, "cannot start rtm2 serve");
    char list[160];
    snprintf(list, sizeof list, "%s,%s", a.endpoint, b.endpoint);
    h_recorder rec, rp;
    h_recorder_init(&rec);
    h_recorder_init(&rp);
    rtm2_client *c = h_new_client("mover", list, &rec);
    login(c);
    h_call k;
    h_call_init(&k);
    CHECK_INT(OP(k, rtm2_client_subscribe(c, "room", RTM2_SUBSCRIBE_WITH_MESSAGE, h_complete, &k, NULL)), RTM2_OK);
    rtm2_client *pub = h_new_client("stayer", b.endpoint, &rp);
    login(pub);

    h_server_stop(&a);
    uint32_t disconnected = RTM2_LINK_STATE_DISCONNECTED, connected = RTM2_LINK_STATE_CONNECTED;
    h_event_free(h_expect(&rec, H_EV_LINK, h_match_link_state, &disconnected));
    /* The reconnection's CONNECTED event (on server b) comes before any message. */
    for (;;) {
        h_event *e = h_next_event(&rec, H_WAIT_MS);
        if (!e) h_fail(__FILE__, __LINE__, "no CONNECTED event after the server died");
        CHECK(!is_message_event(e, NULL));
        int done = e->kind == H_EV_LINK && h_match_link_state(e, &connected);
        if (done) {
            CHECK_INT(e->operation, RTM2_LINK_OPERATION_RECONNECTED);
            CHECK_INT(e->unrestored_count, 0);
        }
        h_event_free(e);
        if (done) break;
    }
    publish(pub, "room", "on b");
    h_event_free(h_expect(&rec, H_EV_MESSAGE, h_match_text, "on b"));

    h_call_destroy(&k);
    rtm2_client_free(c);
    rtm2_client_free(pub);
    h_recorder_destroy(&rec);
    h_recorder_destroy(&rp);
    h_server_stop(&b);
}

int main(int argc, char **argv) {
    h_init();
    if (argc != 3 || strcmp(argv[1], "--rtm2") != 0) {
        fprintf(stderr, "usage: %s --rtm2 PATH\n", argv[0]);
        return 2;
    }
    g_bin = argv[2];
    RUN(endpoint_lists_are_checked_entry_by_entry);
    RUN(a_dead_first_endpoint_is_skipped_at_login);
    RUN(a_client_whose_server_dies_moves_to_the_next_one);
    return h_finish("test_failover", passed);
}
