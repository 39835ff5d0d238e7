/* One publisher's messages reach each subscriber in call order, also when the caller starts
 * many publishes without waiting for each (docs/RELIABILITY.md, first claim): unpaced, paced
 * (about one per millisecond), and — against `rtm2 serve` — with the publisher's connection
 * cut and restored while it publishes (every publish must still succeed, exactly once, in
 * order).
 *
 *   test_ordering [--rtm2 PATH]     (no argument: the embedded server) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

static int passed = 0;
static const char *g_endpoint = NULL; /* NULL = embedded */
static h_server g_srv;
static char g_prefix[32] = "oe";

#define TEST(name) static void name(void)
#define RUN(name)              \
    do {                       \
        name();                \
        passed++;              \
        h_log("ok %s", #name); \
    } while (0)

/* Counts the completions of many publishes started at once. */
typedef struct tally {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done, failed;
    int32_t first_failure;
    char first_reason[256];
} tally;

static void tally_init(tally *t) {
    memset(t, 0, sizeof *t);
    pthread_mutex_init(&t->mu, NULL);
    pthread_cond_init(&t->cv, NULL);
}

static void tally_destroy(tally *t) {
    pthread_mutex_destroy(&t->mu);
    pthread_cond_destroy(&t->cv);
}

static void on_published(void *user_data, uint64_t request_id, int32_t status, const rtm2_result *result) {
    (void)request_id;
    tally *t = user_data;
    pthread_mutex_lock(&t->mu);
    t->done++;
    if (status != RTM2_OK && t->failed++ == 0) {
        t->first_failure = status;
        snprintf(t->first_reason, sizeof t->first_reason, "%s", result && result->reason ? result->reason : "");
    }
    pthread_cond_broadcast(&t->cv);
    pthread_mutex_unlock(&t->mu);
}

/* Waits (bounded) until `n` completions arrived; fails the test on any failure. */
static void tally_wait(tally *t, int n, int timeout_ms) {
    int64_t until = h_now_ms() + timeout_ms;
    pthread_mutex_lock(&t->mu);
    while (t->done < n && h_now_ms() < until) {
        pthread_mutex_unlock(&t->mu);
        h_sleep_ms(5);
        pthread_mutex_lock(&t->mu);
    }
    int done = t->done, failed = t->failed;
    pthread_mutex_unlock(&t->mu);
    if (done < n) h_fail(__FILE__, __LINE__, "%d of %d publishes completed", done, n);
    if (failed) h_fail(__FILE__, __LINE__, "%d publishes failed, the first with %d: %s", failed, t->first_failure, t->first_reason);
}

static rtm2_client *login(const char *name, const char *endpoint, h_recorder *rec) {
    char u[96];
    snprintf(u, sizeof u, "%s-%s", g_prefix, name);
    rtm2_client *c = h_new_client(u, endpoint, rec);
    h_call k;
    h_call_init(&k);
    CHECK_INT(OP(k, rtm2_client_login(c, NULL, h_complete, &k, NULL)), RTM2_OK);
    h_call_destroy(&k);
    return c;
}

static void subscribe(rtm2_client *c, const char *channel) {
    h_call k;
    h_call_init(&k);
    CHECK_INT(OP(k, rtm2_client_subscribe(c, channel, RTM2_SUBSCRIBE_WITH_MESSAGE, h_complete, &k, NULL)), RTM2_OK);
    h_call_destroy(&k);
}

/* Checks that `rec` receives "0" ... "n-1" on `channel`, in that order, nothing else. */
static void expect_in_order(h_recorder *rec, const char *channel, int n) {
    int next = 0, inversions = 0, first_bad = -1, last = -1;
    int64_t until = h_now_ms() + 60000;
    while (next < n) {
        int left = (int)(until - h_now_ms());
        if (left <= 0) h_fail(__FILE__, __LINE__, "%d of %d messages arrived", next, n);
        h_event *e = h_next_event(rec, left);
        if (!e) continue;
        if (e->kind == H_EV_MESSAGE && strcmp(e->channel, channel) == 0) {
            char text[32];
            size_t len = e->payload_len < sizeof text - 1 ? e->payload_len : sizeof text - 1;
            memcpy(text, e->payload, len);
            text[len] = 0;
            int v = atoi(text);
            if (v < last) inversions++;
            if (v != next && first_bad < 0) first_bad = next;
            last = v;
            next++;
        }
        h_event_free(e);
    }
    if (first_bad >= 0)
        h_fail(__FILE__, __LINE__, "messages out of call order: %d inversions, the first misplaced at %d", inversions,
               first_bad);
}

/* Starts publishes of "0" ... "n-1" from this thread without waiting; `pace_us` between two
 * (0 = none); `cut` (optional) is called before publish `i` when it returns non-zero. */
static void publish_all(rtm2_client *pub, const char *channel, int n, int pace_us, tally *t,
                        void (*between)(int i, void *arg), void *arg) {
    rtm2_publish_options po;
    rtm2_publish_options_init(&po);
    po.message_type = RTM2_MESSAGE_TYPE_STRING;
    for (int i = 0; i < n; i++) {
        if (between) between(i, arg);
        char text[16];
        int len = snprintf(text, sizeof text, "%d", i);
        CHECK_OK(rtm2_client_publish(pub, channel, text, (size_t)len, &po, on_published, t, NULL));
        if (pace_us > 0) {
            struct timespec ts = {0, pace_us * 1000L};
            nanosleep(&ts, NULL);
        }
    }
}

static void run(const char *name, int n, int pace_us) {
    h_recorder rp, r1, r2;
    h_recorder_init(&rp);
    h_recorder_init(&r1);
    h_recorder_init(&r2);
    char channel[64], who[64];
    snprintf(channel, sizeof channel, "%s.%s", g_prefix, name);
    snprintf(who, sizeof who, "%s-pub", name);
    rtm2_client *pub = login(who, g_endpoint, &rp);
    snprintf(who, sizeof who, "%s-sub1", name);
    rtm2_client *s1 = login(who, g_endpoint, &r1);
    snprintf(who, sizeof who, "%s-sub2", name);
    rtm2_client *s2 = login(who, g_endpoint, &r2);
    subscribe(s1, channel);
    subscribe(s2, channel);
    tally t;
    tally_init(&t);
    publish_all(pub, channel, n, pace_us, &t, NULL, NULL);
    tally_wait(&t, n, 60000);
    expect_in_order(&r1, channel, n);
    expect_in_order(&r2, channel, n);
    rtm2_client_free(pub);
    rtm2_client_free(s1);
    rtm2_client_free(s2);
    h_recorder_destroy(&rp);
    h_recorder_destroy(&r1);
    h_recorder_destroy(&r2);
    tally_destroy(&t);
}

TEST(unpaced_publishes_arrive_in_call_order) {
    run("unpaced", 2000, 0);
}

TEST(paced_publishes_arrive_in_call_order) {
    run("paced", 2000, 1000);
}

/* Cuts the proxied connection every `every` publishes and restores it at once (the client
 * reconnects and resumes). */
typedef struct cutter {
    h_proxy *px;
    int every, cuts;
} cutter;

static void maybe_cut(int i, void *arg) {
    cutter *c = arg;
    if (i > 0 && i % c->every == 0) {
        h_proxy_cut(c->px);
        h_proxy_restore(c->px);
        c->cuts++;
    }
}

TEST(publishes_keep_call_order_across_connection_cuts) {
    h_proxy px;
    CHECK_INT(h_proxy_start(&px, g_srv.port), 0);
    h_recorder rp, r1;
    h_recorder_init(&rp);
    h_recorder_init(&r1);
    const char *channel = "os.cuts";
    rtm2_client *pub = login("cuts-pub", px.endpoint, &rp);
    rtm2_client *s1 = login("cuts-sub", g_endpoint, &r1);
    subscribe(s1, channel);
    tally t;
    tally_init(&t);
    cutter c = {&px, 500, 0};
    publish_all(pub, channel, 2000, 500, &t, maybe_cut, &c);
    CHECK_INT(c.cuts, 3);
    tally_wait(&t, 2000, 60000);
    expect_in_order(&r1, channel, 2000);
    /* The publisher really lost its connection (and got it back) each time. */
    int disconnected = 0, reconnected = 0;
    for (h_event *e; (e = h_next_event(&rp, 0)) != NULL; h_event_free(e)) {
        if (e->kind != H_EV_LINK) continue;
        if (e->current == RTM2_LINK_STATE_DISCONNECTED) disconnected++;
        if (e->current == RTM2_LINK_STATE_CONNECTED && e->previous != RTM2_LINK_STATE_CONNECTING) reconnected++;
    }
    CHECK(disconnected >= 1);
    h_log("the publisher was disconnected %d times, reconnected %d", disconnected, reconnected);
    rtm2_client_free(pub);
    rtm2_client_free(s1);
    h_recorder_destroy(&rp);
    h_recorder_destroy(&r1);
    tally_destroy(&t);
    h_proxy_stop(&px);
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
    const char *suite = "test_ordering (embedded)";
    if (rtm2_bin) {
        if (h_server_start(&g_srv, rtm2_bin, 0, 0, 30, 0) != 0) h_fail(__FILE__, __LINE__, "cannot start %s serve", rtm2_bin);
        g_endpoint = g_srv.endpoint;
        snprintf(g_prefix, sizeof g_prefix, "os");
        suite = "test_ordering (rtm2 serve)";
    }
    RUN(unpaced_publishes_arrive_in_call_order);
    RUN(paced_publishes_arrive_in_call_order);
    if (rtm2_bin) RUN(publishes_keep_call_order_across_connection_cuts);
    if (rtm2_bin) h_server_stop(&g_srv);
    return h_finish(suite, passed);
}
