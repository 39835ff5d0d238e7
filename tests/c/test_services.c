/* Presence, storage and locks through the C API, against standalone `rtm2 serve` processes
 * (--ttl-unit-ms 100 so presence timeouts and lock ttls pass in tenths of their seconds;
 * --presence-page-size 2 for paging; a second server in INTERVAL mode). Every operation,
 * option, result struct, event type and field, and the error codes of the three services;
 * users that vanish are `rtm2 subscribe` processes killed with SIGKILL.
 *
 *   test_services --rtm2 PATH */
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "harness.h"

#define M RTM2_CHANNEL_TYPE_MESSAGE
#define S RTM2_CHANNEL_TYPE_STREAM
#define SUB_META (RTM2_SUBSCRIBE_WITH_METADATA)
#define SUB_LOCK (RTM2_SUBSCRIBE_WITH_LOCK)

static int passed = 0;
static const char *g_rtm2 = NULL;
static h_server g_srv;       /* --ttl-unit-ms 100 --presence-page-size 2 */
static h_server g_interval;  /* --presence-announce-max 2 --presence-interval-ms 300 --ttl-unit-ms 100 */

#define TEST(name) static void name(void)
#define RUN(name)              \
    do {                       \
        name();                \
        passed++;              \
        h_log("ok %s", #name); \
    } while (0)

/* ---- users ---- */

typedef struct user {
    char id[64];
    rtm2_client *c;
    h_recorder rec;
    h_call k; /* for the user's operations, one at a time */
} user;

static void user_new(user *u, const char *id, const h_server *srv) {
    memset(u, 0, sizeof *u);
    snprintf(u->id, sizeof u->id, "%s", id);
    h_recorder_init(&u->rec);
    h_call_init(&u->k);
    u->c = h_new_client(id, srv->endpoint, &u->rec);
    CHECK_INT(OP(u->k, rtm2_client_login(u->c, NULL, h_complete, &u->k, NULL)), RTM2_OK);
}

static void user_free(user *u) {
    rtm2_client_free(u->c);
    CHECK_INT(u->rec.destroyed, 1);
    CHECK(!u->rec.on_main_thread);
    CHECK(!u->rec.thread_mismatch);
    CHECK_INT(u->rec.callbacks_after_destroy, 0);
    h_recorder_destroy(&u->rec);
    h_call_destroy(&u->k);
}

static int32_t subscribe(user *u, const char *channel, uint32_t flags) {
    return OP(u->k, rtm2_client_subscribe(u->c, channel, flags, h_complete, &u->k, NULL));
}

/* ---- events ---- */

typedef struct want {
    h_kind kind;
    uint32_t type;
    const char *who; /* presence publisher, storage target, lock name; NULL = any */
    const char *owner; /* lock owner; NULL = any */
} want;

static int match_want(const h_event *e, const void *arg) {
    const want *w = (const want *)arg;
    if (e->event_type != w->type) return 0;
    if (w->who) {
        const char *have = w->kind == H_EV_PRESENCE ? e->publisher : w->kind == H_EV_STORAGE ? e->channel : e->lock_name;
        if (strcmp(have, w->who) != 0) return 0;
    }
    if (w->owner && strcmp(e->owner, w->owner) != 0) return 0;
    return 1;
}

static h_event *expect_at(const char *file, int line, user *u, h_kind kind, uint32_t type, const char *who,
                          const char *owner) {
    want w = {kind, type, who, owner};
    return h_expect_at(file, line, &u->rec, kind, match_want, &w, H_WAIT_MS);
}
#define EXPECT(u, kind, type, who) expect_at(__FILE__, __LINE__, (u), (kind), (type), (who), NULL)
#define EXPECT_LOCK(u, type, lock, owner) expect_at(__FILE__, __LINE__, (u), H_EV_LOCK, (type), (lock), (owner))

/* The next event of `kind` (events of other kinds are skipped): for checking order. */
static h_event *next_of_at(const char *file, int line, user *u, h_kind kind) {
    return h_expect_at(file, line, &u->rec, kind, h_match_any, NULL, H_WAIT_MS);
}
#define NEXT(u, kind) next_of_at(__FILE__, __LINE__, (u), (kind))

#define CHECK_SET(a, b)                                                                                  \
    do {                                                                                                 \
        const char *h_a_ = h_s(a), *h_b_ = (b);                                                          \
        if (!h_same_set(h_a_, h_b_)) h_fail(__FILE__, __LINE__, "%s is [%s], expected [%s]", #a, h_a_, h_b_); \
    } while (0)

/* Only the data pointer of the operation was set (the others stay NULL). */
static int data_count(const h_call *k) {
    return k->has_join + k->has_subscribe_topic + k->has_users + k->has_online_users + k->has_user_channels +
           k->has_user_state + k->has_metadata_write + k->has_metadata + k->has_locks;
}

/* ---- presence ---- */

TEST(presence_snapshot_events_and_state) {
    user a, b;
    user_new(&a, "alice", &g_srv);
    user_new(&b, "bob", &g_srv);
    /* Set before subscribing: kept locally, applied on subscribe. */
    rtm2_state_item mood[] = {{"mood", "happy"}};
    CHECK_INT(OP(a.k, rtm2_presence_set_state(a.c, "lobby", M, mood, 1, h_complete, &a.k, NULL)), RTM2_OK);
    CHECK_STR(a.k.operation, "set_state");
    CHECK_INT(data_count(&a.k), 0);
    CHECK_INT(subscribe(&a, "lobby", RTM2_SUBSCRIBE_DEFAULT), RTM2_OK);
    h_event *e = EXPECT(&a, H_EV_PRESENCE, RTM2_PRESENCE_EVENT_TYPE_SNAPSHOT, NULL);
    CHECK_INT(e->channel_type, M);
    CHECK_STR(e->channel, "lobby");
    CHECK_STR(e->publisher, "");
    CHECK_INT(e->count, 1);
    CHECK_STR(e->snapshot_states, "alice{mood:happy}"); /* the snapshot includes this client */
    CHECK(!e->has_interval);
    CHECK_STR(e->states, "");
    CHECK(e->timestamp_ms > 0);
    h_event_free(e);

    CHECK_INT(subscribe(&b, "lobby", RTM2_SUBSCRIBE_DEFAULT), RTM2_OK);
    e = EXPECT(&b, H_EV_PRESENCE, RTM2_PRESENCE_EVENT_TYPE_SNAPSHOT, NULL);
    CHECK_SET(e->snapshot, "alice,bob");
    CHECK_SET(e->snapshot_states, "alice{mood:happy},bob{}");
    h_event_free(e);
    e = EXPECT(&a, H_EV_PRESENCE, RTM2_PRESENCE_EVENT_TYPE_REMOTE_JOIN, "bob");
    CHECK_INT(e->channel_type, M);
    CHECK_STR(e->channel, "lobby");
    CHECK_INT(e->count, 0);
    h_event_free(e);

    CHECK_INT(OP(b.k, rtm2_presence_get_state(b.c, "lobby", M, "alice", h_complete, &b.k, NULL)), RTM2_OK);
    CHECK_STR(b.k.operation, "get_state");
    CHECK(b.k.has_user_state);
    CHECK_INT(data_count(&b.k), 1);
    CHECK_STR(b.k.state_user, "alice");
    CHECK_STR(b.k.states, "mood:happy");

    /* REMOTE_STATE_CHANGED carries the full state, once per call. */
    rtm2_state_item host[] = {{"role", "host"}, {"seat", "1"}};
    CHECK_INT(OP(b.k, rtm2_presence_set_state(b.c, "lobby", M, host, 2, h_complete, &b.k, NULL)), RTM2_OK);
    e = EXPECT(&a, H_EV_PRESENCE, RTM2_PRESENCE_EVENT_TYPE_REMOTE_STATE_CHANGED, "bob");
    CHECK_STR(e->states, "role:host,seat:1");
    h_event_free(e);
    rtm2_state_item seat2[] = {{"seat", "2"}};
    CHECK_INT(OP(b.k, rtm2_presence_set_state(b.c, "lobby", M, seat2, 1, h_complete, &b.k, NULL)), RTM2_OK);
    e = NEXT(&a, H_EV_PRESENCE);
    CHECK_INT(e->event_type, RTM2_PRESENCE_EVENT_TYPE_REMOTE_STATE_CHANGED);
    CHECK_STR(e->states, "role:host,seat:2");
    h_event_free(e);
    const char *seat[] = {"seat"};
    CHECK_INT(OP(b.k, rtm2_presence_remove_state(b.c, "lobby", M, seat, 1, h_complete, &b.k, NULL)), RTM2_OK);
    CHECK_STR(b.k.operation, "remove_state");
    e = NEXT(&a, H_EV_PRESENCE);
    CHECK_INT(e->event_type, RTM2_PRESENCE_EVENT_TYPE_REMOTE_STATE_CHANGED);
    CHECK_STR(e->states, "role:host");
    h_event_free(e);

    /* who_now (alias of get_online_users), with and without states and ids. */
    rtm2_get_online_users_options wo;
    rtm2_get_online_users_options_init(&wo);
    wo.include_state = true;
    CHECK_INT(OP(b.k, rtm2_presence_who_now(b.c, "lobby", M, &wo, h_complete, &b.k, NULL)), RTM2_OK);
    CHECK_STR(b.k.operation, "get_online_users");
    CHECK(b.k.has_online_users);
    CHECK_INT(data_count(&b.k), 1);
    CHECK_SET(b.k.online_states, "alice{mood:happy},bob{role:host}");
    CHECK_INT(b.k.total_occupancy, 2);
    CHECK_STR(b.k.next_page, "");
    CHECK_INT(OP(b.k, rtm2_presence_get_online_users(b.c, "lobby", M, NULL, h_complete, &b.k, NULL)), RTM2_OK);
    CHECK_SET(b.k.online_states, "alice{},bob{}"); /* the defaults: ids, no state */
    wo.include_user_id = false;
    wo.include_state = false;
    CHECK_INT(OP(b.k, rtm2_presence_get_online_users(b.c, "lobby", M, &wo, h_complete, &b.k, NULL)), RTM2_OK);
    CHECK_STR(b.k.online_users, "");
    CHECK_INT(b.k.total_occupancy, 2);
    wo.include_state = true;
    CHECK_INT(OP(b.k, rtm2_presence_get_online_users(b.c, "lobby", M, &wo, h_complete, &b.k, NULL)),
              RTM2_ERR_PRESENCE_INVALID_ARGUMENT);
    CHECK_INT(data_count(&b.k), 0);
    CHECK_INT(OP(b.k, rtm2_presence_get_online_users(b.c, "lobby", RTM2_CHANNEL_TYPE_USER, NULL, h_complete, &b.k,
                                                     NULL)),
              RTM2_ERR_INVALID_CHANNEL_TYPE);
    CHECK_INT(OP(b.k, rtm2_presence_get_online_users(b.c, "bad/name", M, NULL, h_complete, &b.k, NULL)),
              RTM2_ERR_INVALID_CHANNEL_NAME);

    /* where_now (alias of get_user_channels); NULL and "" = this client. */
    CHECK_INT(OP(b.k, rtm2_presence_where_now(b.c, "alice", h_complete, &b.k, NULL)), RTM2_OK);
    CHECK_STR(b.k.operation, "get_user_channels");
    CHECK(b.k.has_user_channels);
    CHECK_STR(b.k.user_channels, "MESSAGE:lobby");
    CHECK_INT(OP(a.k, rtm2_presence_get_user_channels(a.c, NULL, h_complete, &a.k, NULL)), RTM2_OK);
    CHECK_STR(a.k.user_channels, "MESSAGE:lobby");
    CHECK_INT(OP(a.k, rtm2_presence_get_user_channels(a.c, "", h_complete, &a.k, NULL)), RTM2_OK);
    CHECK_STR(a.k.user_channels, "MESSAGE:lobby");
    CHECK_INT(OP(a.k, rtm2_presence_get_user_channels(a.c, "bad/user", h_complete, &a.k, NULL)),
              RTM2_ERR_INVALID_USER_ID);

    /* A stream channel of the same name is another channel. */
    rtm2_stream_channel *sc = NULL;
    CHECK_OK(rtm2_client_create_stream_channel(a.c, "lobby", &sc));
    CHECK_INT(OP(a.k, rtm2_stream_channel_join(sc, NULL, RTM2_JOIN_DEFAULT, h_complete, &a.k, NULL)), RTM2_OK);
    e = EXPECT(&a, H_EV_PRESENCE, RTM2_PRESENCE_EVENT_TYPE_SNAPSHOT, NULL);
    CHECK_INT(e->channel_type, S);
    CHECK_STR(e->snapshot, "alice");
    h_event_free(e);
    rtm2_state_item st[] = {{"on", "stage"}};
    CHECK_INT(OP(a.k, rtm2_presence_set_state(a.c, "lobby", S, st, 1, h_complete, &a.k, NULL)), RTM2_OK);
    CHECK_INT(OP(b.k, rtm2_presence_get_state(b.c, "lobby", S, "alice", h_complete, &b.k, NULL)), RTM2_OK);
    CHECK_STR(b.k.states, "on:stage");
    CHECK_INT(OP(b.k, rtm2_presence_where_now(b.c, "alice", h_complete, &b.k, NULL)), RTM2_OK);
    CHECK_SET(b.k.user_channels, "MESSAGE:lobby,STREAM:lobby");
    CHECK_INT(OP(a.k, rtm2_stream_channel_leave(sc, h_complete, &a.k, NULL)), RTM2_OK);
    rtm2_stream_channel_free(sc);

    /* Removing every key; leaving removes the user and its state. */
    CHECK_INT(OP(b.k, rtm2_presence_remove_state(b.c, "lobby", M, NULL, 0, h_complete, &b.k, NULL)), RTM2_OK);
    e = NEXT(&a, H_EV_PRESENCE);
    CHECK_INT(e->event_type, RTM2_PRESENCE_EVENT_TYPE_REMOTE_STATE_CHANGED);
    CHECK_STR(e->publisher, "bob");
    CHECK_STR(e->states, "");
    h_event_free(e);
    CHECK_INT(OP(b.k, rtm2_client_unsubscribe(b.c, "lobby", h_complete, &b.k, NULL)), RTM2_OK);
    e = NEXT(&a, H_EV_PRESENCE);
    CHECK_INT(e->event_type, RTM2_PRESENCE_EVENT_TYPE_REMOTE_LEAVE);
    CHECK_STR(e->publisher, "bob");
    CHECK_INT(e->channel_type, M);
    h_event_free(e);
    CHECK_INT(OP(a.k, rtm2_presence_get_state(a.c, "lobby", M, "bob", h_complete, &a.k, NULL)),
              RTM2_ERR_PRESENCE_USER_NOT_EXIST);
    CHECK_STR(a.k.operation, "get_state");
    CHECK(strlen(a.k.reason) > 0);
    CHECK(!a.k.has_user_state);
    user_free(&a);
    user_free(&b);
}

TEST(presence_be_quiet_is_hidden) {
    user a, q, d;
    user_new(&a, "q-alice", &g_srv);
    user_new(&q, "q-carol", &g_srv);
    user_new(&d, "q-dave", &g_srv);
    CHECK_INT(subscribe(&a, "quiet", RTM2_SUBSCRIBE_DEFAULT), RTM2_OK);
    h_event_free(EXPECT(&a, H_EV_PRESENCE, RTM2_PRESENCE_EVENT_TYPE_SNAPSHOT, NULL));
    CHECK_INT(subscribe(&q, "quiet", RTM2_SUBSCRIBE_DEFAULT | RTM2_SUBSCRIBE_BE_QUIET), RTM2_OK);
    /* A quiet user sees everyone (itself too)... */
    h_event *e = EXPECT(&q, H_EV_PRESENCE, RTM2_PRESENCE_EVENT_TYPE_SNAPSHOT, NULL);
    CHECK_SET(e->snapshot, "q-alice,q-carol");
    h_event_free(e);
    rtm2_state_item st[] = {{"hidden", "yes"}};
    CHECK_INT(OP(q.k, rtm2_presence_set_state(q.c, "quiet", M, st, 1, h_complete, &q.k, NULL)), RTM2_OK);
    /* ...and nobody sees it: its join and state change came before dave's join, yet alice's
     * next presence event is dave's join (events arrive in order). */
    CHECK_INT(subscribe(&d, "quiet", RTM2_SUBSCRIBE_DEFAULT), RTM2_OK);
    e = NEXT(&a, H_EV_PRESENCE);
    CHECK_INT(e->event_type, RTM2_PRESENCE_EVENT_TYPE_REMOTE_JOIN);
    CHECK_STR(e->publisher, "q-dave");
    h_event_free(e);
    e = EXPECT(&q, H_EV_PRESENCE, RTM2_PRESENCE_EVENT_TYPE_REMOTE_JOIN, "q-dave");
    h_event_free(e);
    CHECK_INT(OP(d.k, rtm2_presence_who_now(d.c, "quiet", M, NULL, h_complete, &d.k, NULL)), RTM2_OK);
    CHECK_SET(d.k.online_users, "q-alice,q-dave");
    CHECK_INT(d.k.total_occupancy, 2);
    CHECK_INT(OP(d.k, rtm2_presence_where_now(d.c, "q-carol", h_complete, &d.k, NULL)), RTM2_OK);
    CHECK_STR(d.k.user_channels, "");
    CHECK_INT(OP(q.k, rtm2_presence_where_now(q.c, NULL, h_complete, &q.k, NULL)), RTM2_OK);
    CHECK_STR(q.k.user_channels, "");
    /* Its leave is not announced either. */
    CHECK_INT(OP(q.k, rtm2_client_unsubscribe(q.c, "quiet", h_complete, &q.k, NULL)), RTM2_OK);
    CHECK_INT(OP(d.k, rtm2_client_unsubscribe(d.c, "quiet", h_complete, &d.k, NULL)), RTM2_OK);
    e = NEXT(&a, H_EV_PRESENCE);
    CHECK_INT(e->event_type, RTM2_PRESENCE_EVENT_TYPE_REMOTE_LEAVE);
    CHECK_STR(e->publisher, "q-dave");
    h_event_free(e);
    user_free(&a);
    user_free(&q);
    user_free(&d);
}

TEST(presence_pages_walk_every_user) {
    enum { N = 5 };
    user u[N];
    char id[32];
    for (int i = 0; i < N; i++) {
        snprintf(id, sizeof id, "crowd%d", i);
        user_new(&u[i], id, &g_srv);
        CHECK_INT(subscribe(&u[i], "crowd", RTM2_SUBSCRIBE_DEFAULT), RTM2_OK);
    }
    /* The server's page size is 2: three pages. */
    char *all = NULL;
    char page[512] = "";
    int pages = 0;
    rtm2_get_online_users_options wo;
    rtm2_get_online_users_options_init(&wo);
    wo.include_state = true;
    do {
        wo.page = pages == 0 ? NULL : page;
        CHECK_INT(OP(u[0].k, rtm2_presence_get_online_users(u[0].c, "crowd", M, &wo, h_complete, &u[0].k, NULL)),
                  RTM2_OK);
        pages++;
        CHECK(pages <= N);
        if (u[0].k.online_users[0]) h_sappend(&all, "%s%s", all ? "," : "", u[0].k.online_users);
        CHECK_INT(u[0].k.total_occupancy, N);
        snprintf(page, sizeof page, "%s", u[0].k.next_page);
        size_t users = u[0].k.online_users[0] ? 1 : 0;
        for (const char *p = u[0].k.online_users; *p; p++) users += *p == ',';
        CHECK_INT(users, page[0] ? 2 : 1);
        CHECK(strstr(u[0].k.online_states, "{}") != NULL); /* with include_state: their (empty) states */
    } while (page[0]);
    CHECK_INT(pages, 3);
    CHECK_SET(all, "crowd0,crowd1,crowd2,crowd3,crowd4"); /* each user exactly once */
    free(all);
    for (int i = 0; i < N; i++) user_free(&u[i]);
}

TEST(presence_timeout_of_a_vanished_user) {
    user a;
    user_new(&a, "t-alice", &g_srv);
    CHECK_INT(subscribe(&a, "haunted", RTM2_SUBSCRIBE_DEFAULT), RTM2_OK);
    h_event_free(EXPECT(&a, H_EV_PRESENCE, RTM2_PRESENCE_EVENT_TYPE_SNAPSHOT, NULL));
    h_ghost g;
    CHECK_INT(h_ghost_start(&g, g_rtm2, g_srv.endpoint, "t-ghost", "haunted", NULL, NULL), 0);
    h_event_free(EXPECT(&a, H_EV_PRESENCE, RTM2_PRESENCE_EVENT_TYPE_REMOTE_JOIN, "t-ghost"));
    CHECK_INT(OP(a.k, rtm2_presence_who_now(a.c, "haunted", M, NULL, h_complete, &a.k, NULL)), RTM2_OK);
    CHECK_SET(a.k.online_users, "t-alice,t-ghost");
    h_ghost_kill(&g);
    h_event *e = NEXT(&a, H_EV_PRESENCE);
    CHECK_INT(e->event_type, RTM2_PRESENCE_EVENT_TYPE_REMOTE_TIMEOUT);
    CHECK_STR(e->publisher, "t-ghost");
    CHECK_STR(e->channel, "haunted");
    CHECK_INT(e->channel_type, M);
    h_event_free(e);
    CHECK_INT(OP(a.k, rtm2_presence_who_now(a.c, "haunted", M, NULL, h_complete, &a.k, NULL)), RTM2_OK);
    CHECK_STR(a.k.online_users, "t-alice");
    CHECK_INT(a.k.total_occupancy, 1);
    user_free(&a);
}

TEST(presence_interval_mode) {
    user a, b, c, d;
    user_new(&a, "i-a", &g_interval);
    user_new(&b, "i-b", &g_interval);
    user_new(&c, "i-c", &g_interval);
    user_new(&d, "i-d", &g_interval);
    CHECK_INT(subscribe(&a, "room", RTM2_SUBSCRIBE_DEFAULT), RTM2_OK);
    CHECK_INT(subscribe(&b, "room", RTM2_SUBSCRIBE_DEFAULT), RTM2_OK);
    h_event_free(EXPECT(&a, H_EV_PRESENCE, RTM2_PRESENCE_EVENT_TYPE_REMOTE_JOIN, "i-b"));
    /* Above 2 users: one INTERVAL event per 300 ms with the aggregated changes. */
    CHECK_INT(subscribe(&c, "room", RTM2_SUBSCRIBE_DEFAULT), RTM2_OK);
    h_event *e = EXPECT(&a, H_EV_PRESENCE, RTM2_PRESENCE_EVENT_TYPE_INTERVAL, NULL);
    CHECK(e->has_interval);
    CHECK_STR(e->channel, "room");
    CHECK_INT(e->channel_type, M);
    CHECK_STR(e->publisher, "");
    CHECK_STR(e->joined, "i-c");
    CHECK_STR(e->left, "");
    CHECK_STR(e->timed_out, "");
    CHECK_STR(e->changed, "");
    CHECK_INT(e->total, 3);
    h_event_free(e);
    rtm2_state_item st[] = {{"k", "v"}, {"k2", "v2"}};
    CHECK_INT(OP(c.k, rtm2_presence_set_state(c.c, "room", M, st, 2, h_complete, &c.k, NULL)), RTM2_OK);
    e = NEXT(&a, H_EV_PRESENCE);
    CHECK_INT(e->event_type, RTM2_PRESENCE_EVENT_TYPE_INTERVAL);
    CHECK_STR(e->changed_states, "i-c{k:v;k2:v2}");
    CHECK_STR(e->joined, "");
    CHECK_INT(e->total, 3);
    h_event_free(e);
    CHECK_INT(subscribe(&d, "room", RTM2_SUBSCRIBE_DEFAULT), RTM2_OK);
    e = NEXT(&a, H_EV_PRESENCE);
    CHECK_STR(e->joined, "i-d");
    CHECK_INT(e->total, 4);
    h_event_free(e);
    /* A vanished user times out inside an interval. */
    h_ghost g;
    CHECK_INT(h_ghost_start(&g, g_rtm2, g_interval.endpoint, "i-ghost", "room", NULL, NULL), 0);
    e = NEXT(&a, H_EV_PRESENCE);
    CHECK_STR(e->joined, "i-ghost");
    CHECK_INT(e->total, 5);
    h_event_free(e);
    h_ghost_kill(&g);
    e = NEXT(&a, H_EV_PRESENCE);
    CHECK_INT(e->event_type, RTM2_PRESENCE_EVENT_TYPE_INTERVAL);
    CHECK_STR(e->timed_out, "i-ghost");
    CHECK_INT(e->total, 4);
    h_event_free(e);
    CHECK_INT(OP(b.k, rtm2_client_unsubscribe(b.c, "room", h_complete, &b.k, NULL)), RTM2_OK);
    e = NEXT(&a, H_EV_PRESENCE);
    CHECK_INT(e->event_type, RTM2_PRESENCE_EVENT_TYPE_INTERVAL);
    CHECK_STR(e->left, "i-b");
    CHECK_INT(e->total, 3);
    h_event_free(e);
    /* Back at the threshold: per-user events again. */
    CHECK_INT(OP(c.k, rtm2_client_unsubscribe(c.c, "room", h_complete, &c.k, NULL)), RTM2_OK);
    e = NEXT(&a, H_EV_PRESENCE);
    CHECK_INT(e->event_type, RTM2_PRESENCE_EVENT_TYPE_REMOTE_LEAVE);
    CHECK_STR(e->publisher, "i-c");
    CHECK(!e->has_interval);
    h_event_free(e);
    user_free(&a);
    user_free(&b);
    user_free(&c);
    user_free(&d);
}

static int32_t set_state_n(user *u, const char *channel, uint32_t type, size_t n, size_t key_len, size_t value_len) {
    rtm2_state_item *items = (rtm2_state_item *)calloc(n + 1, sizeof *items);
    char **bufs = (char **)calloc(2 * n + 1, sizeof *bufs);
    for (size_t i = 0; i < n; i++) {
        bufs[2 * i] = (char *)calloc(key_len + 24, 1);
        bufs[2 * i + 1] = (char *)calloc(value_len + 2, 1);
        if (key_len) memset(bufs[2 * i], 'x', key_len);
        else snprintf(bufs[2 * i], 24, "k%zu", i);
        if (value_len) memset(bufs[2 * i + 1], 'x', value_len);
        else bufs[2 * i + 1][0] = 'v';
        items[i].key = bufs[2 * i];
        items[i].value = bufs[2 * i + 1];
    }
    int32_t st = OP(u->k, rtm2_presence_set_state(u->c, channel, type, items, n, h_complete, &u->k, NULL));
    for (size_t i = 0; i < 2 * n; i++) free(bufs[i]);
    free(bufs);
    free(items);
    return st;
}

TEST(presence_errors_have_exact_codes) {
    user a;
    user_new(&a, "limits", &g_srv);
    CHECK_INT(subscribe(&a, "limits", RTM2_SUBSCRIBE_DEFAULT), RTM2_OK);
    CHECK_INT(set_state_n(&a, "limits", M, 33, 0, 0), RTM2_ERR_PRESENCE_STATE_COUNT_OVERFLOW);
    CHECK_INT(set_state_n(&a, "limits", M, 1, 33, 0), RTM2_ERR_PRESENCE_STATE_KEY_SIZE_OVERFLOW);
    CHECK_INT(set_state_n(&a, "limits", M, 1, 0, 16385), RTM2_ERR_PRESENCE_STATE_VALUE_SIZE_OVERFLOW);
    CHECK_INT(set_state_n(&a, "limits", M, 1, 0, 16384), RTM2_OK);
    CHECK_INT(set_state_n(&a, "limits", M, 0, 0, 0), RTM2_ERR_PRESENCE_INVALID_ARGUMENT);
    CHECK_INT(set_state_n(&a, "limits", RTM2_CHANNEL_TYPE_USER, 1, 0, 0), RTM2_ERR_INVALID_CHANNEL_TYPE);
    rtm2_state_item bad_key[] = {{"_x", "1"}};
    CHECK_INT(OP(a.k, rtm2_presence_set_state(a.c, "limits", M, bad_key, 1, h_complete, &a.k, NULL)),
              RTM2_ERR_PRESENCE_INVALID_STATE_KEY);
    rtm2_state_item dup[] = {{"a", "1"}, {"a", "2"}};
    CHECK_INT(OP(a.k, rtm2_presence_set_state(a.c, "limits", M, dup, 2, h_complete, &a.k, NULL)),
              RTM2_ERR_PRESENCE_STATE_DUPLICATE_KEY);
    const char *bad_keys[] = {"_x"};
    CHECK_INT(OP(a.k, rtm2_presence_remove_state(a.c, "limits", M, bad_keys, 1, h_complete, &a.k, NULL)),
              RTM2_ERR_PRESENCE_INVALID_STATE_KEY);
    /* 32 pairs, counted with the existing ones: k0 (set above) is one of k0..k31. */
    CHECK_INT(set_state_n(&a, "limits", M, 32, 0, 0), RTM2_OK);
    rtm2_state_item more[] = {{"one", "more"}};
    CHECK_INT(OP(a.k, rtm2_presence_set_state(a.c, "limits", M, more, 1, h_complete, &a.k, NULL)),
              RTM2_ERR_PRESENCE_STATE_COUNT_OVERFLOW);
    /* At most 100 channels' state is kept before subscribing (a user present nowhere: the
     * core also counts the state of channels it is in). */
    user b;
    user_new(&b, "limits-b", &g_srv);
    char ch[32];
    for (int i = 0; i < 100; i++) {
        snprintf(ch, sizeof ch, "later%d", i);
        CHECK_INT(set_state_n(&b, ch, M, 1, 0, 0), RTM2_OK);
    }
    CHECK_INT(set_state_n(&b, "later100", M, 1, 0, 0), RTM2_ERR_PRESENCE_CACHED_TOO_MANY_STATES);
    CHECK_STR(b.k.operation, "set_state");
    CHECK_INT(set_state_n(&b, "later99", M, 1, 0, 0), RTM2_OK); /* a channel already cached */
    /* Before login there is nothing to keep it for. */
    h_recorder rec;
    h_recorder_init(&rec);
    rtm2_client *out = h_new_client("limits-out", g_srv.endpoint, &rec);
    rtm2_state_item kv[] = {{"k", "v"}};
    h_call k;
    h_call_init(&k);
    CHECK_INT(OP(k, rtm2_presence_set_state(out, "later", M, kv, 1, h_complete, &k, NULL)), RTM2_ERR_NOT_LOGIN);
    rtm2_client_free(out);
    h_recorder_destroy(&rec);
    h_call_destroy(&k);
    user_free(&a);
    user_free(&b);
}

/* ---- storage ---- */

static int32_t write_meta(user *u, int kind /* 0 set 1 update 2 remove */, const char *channel, uint32_t type,
                          const rtm2_metadata_item *items, size_t n, const rtm2_metadata_options *mo) {
    if (kind == 0)
        return OP(u->k, rtm2_storage_set_channel_metadata(u->c, channel, type, items, n, mo, h_complete, &u->k, NULL));
    if (kind == 1)
        return OP(u->k,
                  rtm2_storage_update_channel_metadata(u->c, channel, type, items, n, mo, h_complete, &u->k, NULL));
    return OP(u->k, rtm2_storage_remove_channel_metadata(u->c, channel, type, items, n, mo, h_complete, &u->k, NULL));
}

static rtm2_metadata_item item(const char *key, const char *value, int64_t revision) {
    rtm2_metadata_item i;
    memset(&i, 0, sizeof i);
    i.key = key;
    i.value = value;
    i.revision = revision;
    return i;
}

TEST(storage_channel_metadata_revisions_and_events) {
    user a, b;
    user_new(&a, "s-alice", &g_srv);
    user_new(&b, "s-bob", &g_srv);
    CHECK_INT(subscribe(&b, "meta", SUB_META), RTM2_OK);
    h_event *e = EXPECT(&b, H_EV_STORAGE, RTM2_STORAGE_EVENT_TYPE_SNAPSHOT, "meta");
    CHECK_INT(e->storage_type, RTM2_STORAGE_TYPE_CHANNEL);
    CHECK_INT(e->channel_type, M);
    CHECK_STR(e->publisher, "");
    CHECK_INT(e->major, 0);
    CHECK_INT(e->count, 0);
    CHECK_STR(e->items, "");
    h_event_free(e);

    rtm2_metadata_options mo;
    rtm2_metadata_options_init(&mo);
    mo.record_ts = true;
    mo.record_author = true;
    rtm2_metadata_item two[] = {item("topic", "rust", -1), item("owner", "alice", -1)};
    CHECK_INT(write_meta(&a, 0, "meta", M, two, 2, &mo), RTM2_OK);
    CHECK_STR(a.k.operation, "set_channel_metadata");
    CHECK(a.k.has_metadata_write);
    CHECK_INT(data_count(&a.k), 1);
    CHECK_INT(a.k.write_major, 1);
    CHECK_INT(a.k.write_total, 2);
    e = EXPECT(&b, H_EV_STORAGE, RTM2_STORAGE_EVENT_TYPE_UPDATE, "meta");
    CHECK_INT(e->storage_type, RTM2_STORAGE_TYPE_CHANNEL);
    CHECK_STR(e->publisher, "s-alice");
    CHECK_INT(e->major, 1);
    CHECK_STR(e->items, "owner:alice,topic:rust"); /* sorted by key */
    CHECK_STR(e->revisions, "owner:1,topic:1");
    CHECK_STR(e->authors, "owner:s-alice,topic:s-alice");
    CHECK_STR(e->stamped, "owner,topic");
    CHECK(e->timestamp_ms > 0);
    h_event_free(e);
    CHECK_INT(OP(b.k, rtm2_storage_get_channel_metadata(b.c, "meta", M, h_complete, &b.k, NULL)), RTM2_OK);
    CHECK_STR(b.k.operation, "get_channel_metadata");
    CHECK(b.k.has_metadata);
    CHECK_INT(data_count(&b.k), 1);
    CHECK_INT(b.k.meta_major, 1);
    CHECK_INT(b.k.meta_count, 2);
    CHECK_STR(b.k.meta_items, "owner:alice,topic:rust");
    CHECK_STR(b.k.meta_stamped, "owner,topic");

    /* Major revision: N must match. Without record options nothing is stamped. */
    rtm2_metadata_item go[] = {item("topic", "go", -1)};
    rtm2_metadata_options_init(&mo);
    mo.major_revision = 2;
    CHECK_INT(write_meta(&a, 0, "meta", M, go, 1, &mo), RTM2_ERR_STORAGE_OUTDATED_REVISION);
    CHECK(!a.k.has_metadata_write);
    mo.major_revision = 1;
    CHECK_INT(write_meta(&a, 0, "meta", M, go, 1, &mo), RTM2_OK);
    CHECK_INT(a.k.write_major, 2);
    e = EXPECT(&b, H_EV_STORAGE, RTM2_STORAGE_EVENT_TYPE_UPDATE, "meta");
    CHECK_STR(e->revisions, "owner:1,topic:2");
    CHECK_STR(e->authors, "owner:s-alice,topic:");
    CHECK_STR(e->stamped, "owner");
    h_event_free(e);
    /* Item revisions. */
    rtm2_metadata_item zig1[] = {item("topic", "zig", 1)}, zig2[] = {item("topic", "zig", 2)};
    CHECK_INT(write_meta(&a, 1, "meta", M, zig1, 1, NULL), RTM2_ERR_STORAGE_OUTDATED_REVISION);
    CHECK_INT(write_meta(&a, 1, "meta", M, zig2, 1, NULL), RTM2_OK);
    CHECK_STR(a.k.operation, "update_channel_metadata");
    CHECK_INT(a.k.write_major, 3);
    rtm2_metadata_item missing[] = {item("missing", "x", -1)};
    CHECK_INT(write_meta(&a, 1, "meta", M, missing, 1, NULL), RTM2_ERR_STORAGE_OUTDATED_REVISION);
    rtm2_metadata_item create_existing[] = {item("topic", "c", 0)}, create_fresh[] = {item("fresh", "1", 0)};
    CHECK_INT(write_meta(&a, 0, "meta", M, create_existing, 1, NULL), RTM2_ERR_STORAGE_OUTDATED_REVISION);
    CHECK_INT(write_meta(&a, 0, "meta", M, create_fresh, 1, NULL), RTM2_OK);
    CHECK_INT(a.k.write_total, 3);
    rtm2_metadata_item nothing[] = {item("nothing", "1", 7)};
    CHECK_INT(write_meta(&a, 0, "meta", M, nothing, 1, NULL), RTM2_ERR_STORAGE_OUTDATED_REVISION);
    /* Remove by key (values ignored, may be NULL), then everything. */
    rtm2_metadata_item fresh_key[] = {item("fresh", NULL, -1)};
    CHECK_INT(write_meta(&a, 2, "meta", M, fresh_key, 1, NULL), RTM2_OK);
    CHECK_STR(a.k.operation, "remove_channel_metadata");
    CHECK_INT(a.k.write_major, 5);
    CHECK_INT(a.k.write_total, 2);
    e = NEXT(&b, H_EV_STORAGE);
    while (e->major < 5) { /* the UPDATEs of revisions 3 and 4 come first */
        h_event_free(e);
        e = NEXT(&b, H_EV_STORAGE);
    }
    CHECK_STR(e->items, "owner:alice,topic:zig");
    h_event_free(e);
    CHECK_INT(OP(a.k, rtm2_storage_get_channel_metadata(a.c, "meta", S, h_complete, &a.k, NULL)), RTM2_OK);
    CHECK_INT(a.k.meta_major, 0); /* the stream channel of that name has its own */
    CHECK_STR(a.k.meta_items, "");
    CHECK_INT(write_meta(&a, 2, "meta", M, NULL, 0, NULL), RTM2_OK);
    CHECK_INT(a.k.write_total, 0);
    CHECK_INT(a.k.write_major, 6);
    CHECK_INT(OP(a.k, rtm2_storage_get_channel_metadata(a.c, "meta", M, h_complete, &a.k, NULL)), RTM2_OK);
    CHECK_INT(a.k.meta_major, 6);
    CHECK_INT(a.k.meta_count, 0);

    /* Validation. */
    rtm2_metadata_item many[33];
    char keys[33][8];
    for (int i = 0; i < 33; i++) {
        snprintf(keys[i], sizeof keys[i], "k%d", i);
        many[i] = item(keys[i], "v", -1);
    }
    CHECK_INT(write_meta(&a, 0, "meta", M, many, 33, NULL), RTM2_ERR_STORAGE_METADATA_ITEM_EXCEED_LIMITATION);
    CHECK_INT(write_meta(&a, 0, "meta", M, many, 32, NULL), RTM2_OK);
    char big[16386];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = 0;
    big[33] = 0;
    rtm2_metadata_item long_key[] = {item(big, "v", -1)};
    CHECK_INT(write_meta(&a, 0, "meta", M, long_key, 1, NULL), RTM2_ERR_STORAGE_KEY_LENGTH_OVERFLOW);
    big[33] = 'x';
    rtm2_metadata_item long_value[] = {item("big", big, -1)};
    CHECK_INT(write_meta(&a, 0, "meta2", M, long_value, 1, NULL), RTM2_ERR_STORAGE_VALUE_LENGTH_OVERFLOW);
    big[16000] = 0;
    CHECK_INT(write_meta(&a, 0, "meta2", M, long_value, 1, NULL), RTM2_OK);
    big[1000] = 0;
    rtm2_metadata_item more[] = {item("more", big, -1)};
    CHECK_INT(write_meta(&a, 0, "meta2", M, more, 1, NULL), RTM2_ERR_STORAGE_METADATA_LENGTH_OVERFLOW);
    rtm2_metadata_item underscore[] = {item("_k", "v", -1)};
    CHECK_INT(write_meta(&a, 0, "meta", M, underscore, 1, NULL), RTM2_ERR_STORAGE_INVALID_KEY);
    rtm2_metadata_item dup[] = {item("a", "1", -1), item("a", "2", -1)};
    CHECK_INT(write_meta(&a, 0, "meta", M, dup, 2, NULL), RTM2_ERR_STORAGE_DUPLICATE_KEY);
    CHECK_INT(write_meta(&a, 0, "meta", M, NULL, 0, NULL), RTM2_ERR_STORAGE_INVALID_METADATA_ITEM);
    rtm2_metadata_item a1[] = {item("a", "1", -1)}, a1_rev0[] = {item("a", "1", 0)};
    rtm2_metadata_options_init(&mo);
    mo.major_revision = -2;
    CHECK_INT(write_meta(&a, 0, "meta", M, a1, 1, &mo), RTM2_ERR_STORAGE_INVALID_REVISION);
    CHECK_INT(write_meta(&a, 1, "meta", M, a1_rev0, 1, NULL), RTM2_ERR_STORAGE_INVALID_REVISION);
    mo.major_revision = 0;
    CHECK_INT(write_meta(&a, 2, "meta", M, NULL, 0, &mo), RTM2_ERR_STORAGE_INVALID_REVISION);
    rtm2_metadata_options_init(&mo);
    mo.lock_name = "nolock";
    CHECK_INT(write_meta(&a, 0, "meta", M, a1, 1, &mo), RTM2_ERR_STORAGE_LOCK_NOT_ACQUIRED);
    mo.lock_name = "bad/name";
    CHECK_INT(write_meta(&a, 0, "meta", M, a1, 1, &mo), RTM2_ERR_STORAGE_INVALID_LOCK_NAME);
    CHECK_INT(write_meta(&a, 0, "meta", RTM2_CHANNEL_TYPE_USER, a1, 1, NULL), RTM2_ERR_INVALID_CHANNEL_TYPE);
    CHECK_INT(write_meta(&a, 0, "bad/name", M, a1, 1, NULL), RTM2_ERR_INVALID_CHANNEL_NAME);
    user_free(&a);
    user_free(&b);
}

TEST(storage_user_metadata_and_subscriptions) {
    user a, b;
    user_new(&a, "m-alice", &g_srv);
    user_new(&b, "m-bob", &g_srv);
    CHECK_INT(OP(b.k, rtm2_storage_subscribe_user_metadata(b.c, "m-alice", h_complete, &b.k, NULL)), RTM2_OK);
    CHECK_STR(b.k.operation, "subscribe_user_metadata");
    h_event *e = EXPECT(&b, H_EV_STORAGE, RTM2_STORAGE_EVENT_TYPE_SNAPSHOT, "m-alice");
    CHECK_INT(e->storage_type, RTM2_STORAGE_TYPE_USER);
    CHECK_INT(e->channel_type, RTM2_CHANNEL_TYPE_NONE);
    CHECK_INT(e->major, 0);
    CHECK_STR(e->items, "");
    h_event_free(e);
    rtm2_metadata_options mo;
    rtm2_metadata_options_init(&mo);
    mo.record_ts = true;
    rtm2_metadata_item status[] = {item("status", "online", -1)};
    /* NULL = this client. */
    CHECK_INT(OP(a.k, rtm2_storage_set_user_metadata(a.c, NULL, status, 1, &mo, h_complete, &a.k, NULL)), RTM2_OK);
    CHECK_STR(a.k.operation, "set_user_metadata");
    CHECK_INT(a.k.write_major, 1);
    CHECK_INT(a.k.write_total, 1);
    e = EXPECT(&b, H_EV_STORAGE, RTM2_STORAGE_EVENT_TYPE_UPDATE, "m-alice");
    CHECK_INT(e->storage_type, RTM2_STORAGE_TYPE_USER);
    CHECK_STR(e->publisher, "m-alice");
    CHECK_STR(e->items, "status:online");
    CHECK_STR(e->stamped, "status");
    CHECK_STR(e->authors, "status:");
    h_event_free(e);
    CHECK_INT(OP(b.k, rtm2_storage_get_user_metadata(b.c, "m-alice", h_complete, &b.k, NULL)), RTM2_OK);
    CHECK_STR(b.k.operation, "get_user_metadata");
    CHECK_STR(b.k.meta_items, "status:online");
    CHECK_INT(b.k.meta_major, 1);
    CHECK_INT(OP(a.k, rtm2_storage_get_user_metadata(a.c, "", h_complete, &a.k, NULL)), RTM2_OK);
    CHECK_STR(a.k.meta_items, "status:online");
    /* Anyone may write a user's metadata. */
    rtm2_metadata_item note[] = {item("note", "hi", -1)};
    rtm2_metadata_options_init(&mo);
    mo.record_author = true;
    CHECK_INT(OP(b.k, rtm2_storage_set_user_metadata(b.c, "m-alice", note, 1, &mo, h_complete, &b.k, NULL)), RTM2_OK);
    e = EXPECT(&b, H_EV_STORAGE, RTM2_STORAGE_EVENT_TYPE_UPDATE, "m-alice");
    CHECK_STR(e->publisher, "m-bob");
    CHECK_STR(e->items, "note:hi,status:online");
    CHECK_STR(e->authors, "note:m-bob,status:");
    CHECK_INT(e->major, 2);
    h_event_free(e);
    rtm2_metadata_item note2[] = {item("note", "bye", 2)};
    CHECK_INT(OP(a.k, rtm2_storage_update_user_metadata(a.c, "m-alice", note2, 1, NULL, h_complete, &a.k, NULL)),
              RTM2_OK);
    CHECK_STR(a.k.operation, "update_user_metadata");
    CHECK_INT(a.k.write_major, 3);
    rtm2_metadata_item note_key[] = {item("note", NULL, -1)};
    CHECK_INT(OP(a.k, rtm2_storage_remove_user_metadata(a.c, NULL, note_key, 1, NULL, h_complete, &a.k, NULL)),
              RTM2_OK);
    CHECK_STR(a.k.operation, "remove_user_metadata");
    CHECK_INT(a.k.write_major, 4);
    CHECK_INT(a.k.write_total, 1);
    rtm2_metadata_options_init(&mo);
    mo.lock_name = "door";
    CHECK_INT(OP(a.k, rtm2_storage_set_user_metadata(a.c, NULL, status, 1, &mo, h_complete, &a.k, NULL)),
              RTM2_ERR_STORAGE_INVALID_ARGUMENT);
    CHECK_INT(OP(a.k, rtm2_storage_set_user_metadata(a.c, "bad/user", status, 1, NULL, h_complete, &a.k, NULL)),
              RTM2_ERR_INVALID_USER_ID);
    /* After unsubscribing no more events: the next storage event bob gets is about carol. */
    CHECK_INT(OP(b.k, rtm2_storage_unsubscribe_user_metadata(b.c, "m-alice", h_complete, &b.k, NULL)), RTM2_OK);
    CHECK_STR(b.k.operation, "unsubscribe_user_metadata");
    CHECK_INT(OP(b.k, rtm2_storage_unsubscribe_user_metadata(b.c, "m-alice", h_complete, &b.k, NULL)),
              RTM2_ERR_STORAGE_NOT_SUBSCRIBE);
    CHECK_INT(OP(b.k, rtm2_storage_subscribe_user_metadata(b.c, "m-carol", h_complete, &b.k, NULL)), RTM2_OK);
    CHECK_INT(OP(a.k, rtm2_storage_set_user_metadata(a.c, NULL, note, 1, NULL, h_complete, &a.k, NULL)), RTM2_OK);
    CHECK_INT(OP(a.k, rtm2_storage_set_user_metadata(a.c, "m-carol", note, 1, NULL, h_complete, &a.k, NULL)), RTM2_OK);
    e = NEXT(&b, H_EV_STORAGE);
    while (e->event_type == RTM2_STORAGE_EVENT_TYPE_UPDATE && strcmp(e->channel, "m-alice") == 0 && e->major < 5) {
        h_event_free(e); /* UPDATEs sent before the unsubscribe */
        e = NEXT(&b, H_EV_STORAGE);
    }
    CHECK_STR(e->channel, "m-carol");
    CHECK_INT(e->event_type, RTM2_STORAGE_EVENT_TYPE_SNAPSHOT);
    h_event_free(e);
    e = NEXT(&b, H_EV_STORAGE);
    CHECK_STR(e->channel, "m-carol");
    CHECK_INT(e->event_type, RTM2_STORAGE_EVENT_TYPE_UPDATE);
    h_event_free(e);
    /* At most 50 users. */
    char u[32];
    for (int i = 0; i < 49; i++) {
        snprintf(u, sizeof u, "u%d", i);
        CHECK_INT(OP(b.k, rtm2_storage_subscribe_user_metadata(b.c, u, h_complete, &b.k, NULL)), RTM2_OK);
    }
    CHECK_INT(OP(b.k, rtm2_storage_subscribe_user_metadata(b.c, "u49", h_complete, &b.k, NULL)),
              RTM2_ERR_STORAGE_SUBSCRIBE_USER_EXCEED_LIMITATION);
    user_free(&a);
    user_free(&b);
}

/* ---- locks ---- */

static int32_t lock_op(user *u, const char *op, const char *channel, uint32_t type, const char *name, const char *arg,
                       int n) {
    if (strcmp(op, "set") == 0)
        return OP(u->k, rtm2_lock_set(u->c, channel, type, name, (uint32_t)n, h_complete, &u->k, NULL));
    if (strcmp(op, "remove") == 0) return OP(u->k, rtm2_lock_remove(u->c, channel, type, name, h_complete, &u->k, NULL));
    if (strcmp(op, "acquire") == 0)
        return OP(u->k, rtm2_lock_acquire(u->c, channel, type, name, n != 0, h_complete, &u->k, NULL));
    if (strcmp(op, "release") == 0)
        return OP(u->k, rtm2_lock_release(u->c, channel, type, name, h_complete, &u->k, NULL));
    if (strcmp(op, "revoke") == 0)
        return OP(u->k, rtm2_lock_revoke(u->c, channel, type, name, arg, h_complete, &u->k, NULL));
    return OP(u->k, rtm2_lock_get_locks(u->c, channel, type, h_complete, &u->k, NULL));
}

TEST(locks_events_and_errors) {
    user a, b, w;
    user_new(&a, "l-alice", &g_srv);
    user_new(&b, "l-bob", &g_srv);
    user_new(&w, "l-watch", &g_srv);
    CHECK_INT(subscribe(&w, "locks", SUB_LOCK), RTM2_OK);
    h_event *e = EXPECT(&w, H_EV_LOCK, RTM2_LOCK_EVENT_TYPE_SNAPSHOT, NULL);
    CHECK_STR(e->channel, "locks");
    CHECK_INT(e->channel_type, M);
    CHECK_STR(e->snapshot, "");
    CHECK_INT(e->count, 0);
    h_event_free(e);
    CHECK_INT(lock_op(&a, "set", "locks", M, "door", NULL, 30), RTM2_OK);
    CHECK_STR(a.k.operation, "set_lock");
    CHECK_INT(data_count(&a.k), 0);
    e = EXPECT_LOCK(&w, RTM2_LOCK_EVENT_TYPE_SET, "door", NULL);
    CHECK_STR(e->publisher, "l-alice");
    CHECK_INT(e->ttl_s, 30);
    CHECK_STR(e->owner, "");
    CHECK(e->timestamp_ms > 0);
    h_event_free(e);
    CHECK_INT(lock_op(&a, "set", "locks", M, "door", NULL, 30), RTM2_ERR_LOCK_ALREADY_EXIST);
    CHECK_INT(lock_op(&a, "set", "locks", M, "bad/name", NULL, 30), RTM2_ERR_LOCK_INVALID_NAME);
    /* ttl: 0 = 10, clamped to 10..300. */
    CHECK_INT(lock_op(&a, "set", "locks", M, "zero", NULL, 0), RTM2_OK);
    CHECK_INT(lock_op(&a, "set", "locks", M, "tiny", NULL, 1), RTM2_OK);
    CHECK_INT(lock_op(&a, "set", "locks", M, "huge", NULL, 100000), RTM2_OK);
    CHECK_INT(lock_op(&a, "get", "locks", M, NULL, NULL, 0), RTM2_OK);
    CHECK_STR(a.k.operation, "get_locks");
    CHECK(a.k.has_locks);
    CHECK_INT(data_count(&a.k), 1);
    CHECK_SET(a.k.locks, "door:,zero:,tiny:,huge:");
    CHECK_SET(a.k.lock_ttls, "door:30,zero:10,tiny:10,huge:300");

    CHECK_INT(lock_op(&a, "acquire", "locks", M, "door", NULL, 0), RTM2_OK);
    CHECK_STR(a.k.operation, "acquire_lock");
    /* Every grant carries a fencing token, also in the ACQUIRED event. */
    uint64_t first_grant = a.k.fencing_token;
    CHECK(first_grant > 0);
    e = EXPECT_LOCK(&w, RTM2_LOCK_EVENT_TYPE_ACQUIRED, "door", "l-alice");
    CHECK_STR(e->publisher, "l-alice");
    CHECK_INT(e->ttl_s, 30);
    CHECK(e->fencing_token == first_grant);
    h_event_free(e);
    CHECK_INT(lock_op(&a, "acquire", "locks", M, "door", NULL, 0), RTM2_OK); /* already its own */
    CHECK(a.k.fencing_token == first_grant); /* the same grant */
    CHECK_INT(lock_op(&b, "acquire", "locks", M, "door", NULL, 0), RTM2_ERR_LOCK_ACQUIRE_FAILED);
    CHECK_INT(lock_op(&b, "release", "locks", M, "door", NULL, 0), RTM2_ERR_LOCK_NOT_ACQUIRED);
    CHECK_INT(lock_op(&a, "revoke", "locks", M, "door", "l-bob", 0), RTM2_ERR_LOCK_NOT_ACQUIRED);
    CHECK_INT(lock_op(&a, "get", "locks", M, NULL, NULL, 0), RTM2_OK);
    CHECK_SET(a.k.locks, "door:l-alice,zero:,tiny:,huge:");

    /* Metadata guarded by the lock. */
    rtm2_metadata_options mo;
    rtm2_metadata_options_init(&mo);
    mo.lock_name = "door";
    rtm2_metadata_item kv[] = {item("k", "v", -1)};
    CHECK_INT(write_meta(&a, 0, "locks", M, kv, 1, &mo), RTM2_OK);
    CHECK_INT(write_meta(&b, 0, "locks", M, kv, 1, &mo), RTM2_ERR_STORAGE_LOCK_NOT_ACQUIRED);
    mo.fencing_token = first_grant; /* naming the grant it holds */
    CHECK_INT(write_meta(&a, 0, "locks", M, kv, 1, &mo), RTM2_OK);
    mo.fencing_token = 0;

    CHECK_INT(lock_op(&a, "release", "locks", M, "door", NULL, 0), RTM2_OK);
    CHECK_STR(a.k.operation, "release_lock");
    e = EXPECT_LOCK(&w, RTM2_LOCK_EVENT_TYPE_RELEASED, "door", "l-alice");
    CHECK_STR(e->publisher, "l-alice");
    h_event_free(e);
    CHECK_INT(lock_op(&b, "acquire", "locks", M, "door", NULL, 0), RTM2_OK);
    uint64_t second_grant = b.k.fencing_token;
    CHECK(second_grant > first_grant); /* strictly increasing */
    CHECK_INT(lock_op(&a, "revoke", "locks", M, "door", "l-bob", 0), RTM2_OK);
    CHECK_STR(a.k.operation, "revoke_lock");
    e = EXPECT_LOCK(&w, RTM2_LOCK_EVENT_TYPE_RELEASED, "door", "l-bob");
    CHECK_STR(e->publisher, "l-alice");
    CHECK(e->fencing_token == second_grant); /* the grant that ended */
    h_event_free(e);
    /* Alice holds the lock again, but a write naming her first grant is stale: refused. */
    CHECK_INT(lock_op(&a, "acquire", "locks", M, "door", NULL, 0), RTM2_OK);
    uint64_t third_grant = a.k.fencing_token;
    CHECK(third_grant > second_grant);
    h_event_free(EXPECT_LOCK(&w, RTM2_LOCK_EVENT_TYPE_ACQUIRED, "door", "l-alice"));
    mo.fencing_token = first_grant;
    CHECK_INT(write_meta(&a, 0, "locks", M, kv, 1, &mo), RTM2_ERR_STORAGE_LOCK_NOT_ACQUIRED);
    CHECK(strstr(a.k.reason, "stale") != NULL);
    mo.fencing_token = third_grant;
    CHECK_INT(write_meta(&a, 0, "locks", M, kv, 1, &mo), RTM2_OK);
    mo.fencing_token = 0;
    CHECK_INT(lock_op(&a, "release", "locks", M, "door", NULL, 0), RTM2_OK);
    h_event_free(EXPECT_LOCK(&w, RTM2_LOCK_EVENT_TYPE_RELEASED, "door", "l-alice"));
    CHECK_INT(lock_op(&a, "remove", "locks", M, "door", NULL, 0), RTM2_OK);
    CHECK_STR(a.k.operation, "remove_lock");
    e = EXPECT_LOCK(&w, RTM2_LOCK_EVENT_TYPE_REMOVED, "door", NULL);
    CHECK_STR(e->publisher, "l-alice");
    h_event_free(e);
    CHECK_INT(lock_op(&a, "remove", "locks", M, "door", NULL, 0), RTM2_ERR_LOCK_NOT_EXIST);
    CHECK_INT(lock_op(&a, "acquire", "locks", M, "door", NULL, 0), RTM2_ERR_LOCK_NOT_EXIST);
    CHECK_INT(lock_op(&a, "release", "locks", M, "door", NULL, 0), RTM2_ERR_LOCK_NOT_EXIST);
    CHECK_INT(lock_op(&a, "revoke", "locks", M, "door", "l-bob", 0), RTM2_ERR_LOCK_NOT_EXIST);
    CHECK_INT(lock_op(&a, "set", "locks", RTM2_CHANNEL_TYPE_USER, "door", NULL, 0), RTM2_ERR_INVALID_CHANNEL_TYPE);
    CHECK_INT(lock_op(&a, "get", "bad/name", M, NULL, NULL, 0), RTM2_ERR_INVALID_CHANNEL_NAME);
    CHECK_INT(lock_op(&a, "revoke", "locks", M, "zero", "bad/user", 0), RTM2_ERR_INVALID_USER_ID);
    /* A stream channel of the same name has its own locks; a new subscriber's snapshot lists
     * every lock. */
    CHECK_INT(lock_op(&a, "set", "locks", S, "door", NULL, 0), RTM2_OK);
    CHECK_INT(lock_op(&a, "get", "locks", S, NULL, NULL, 0), RTM2_OK);
    CHECK_STR(a.k.locks, "door:");
    CHECK_INT(lock_op(&a, "acquire", "locks", M, "zero", NULL, 0), RTM2_OK);
    CHECK_INT(subscribe(&b, "locks", SUB_LOCK), RTM2_OK);
    e = EXPECT(&b, H_EV_LOCK, RTM2_LOCK_EVENT_TYPE_SNAPSHOT, NULL);
    CHECK_SET(e->snapshot, "zero:l-alice,tiny:,huge:");
    CHECK_STR(e->lock_name, "");
    CHECK_INT(e->count, 3);
    h_event_free(e);
    user_free(&a);
    user_free(&b);
    user_free(&w);
}

TEST(locks_waiting_acquirers) {
    user a, b, c, w;
    user_new(&a, "r-alice", &g_srv);
    user_new(&b, "r-bob", &g_srv);
    user_new(&c, "r-carol", &g_srv);
    user_new(&w, "r-watch", &g_srv);
    CHECK_INT(subscribe(&w, "queue", SUB_LOCK), RTM2_OK);
    CHECK_INT(lock_op(&a, "set", "queue", M, "door", NULL, 30), RTM2_OK);
    CHECK_INT(lock_op(&a, "acquire", "queue", M, "door", NULL, 0), RTM2_OK);
    /* bob waits in the server's queue: the call returns at once. */
    h_call bk;
    h_call_init(&bk);
    int64_t t0 = h_now_ms();
    CHECK_OK(rtm2_lock_acquire(b.c, "queue", M, "door", true, h_complete, &bk, NULL));
    CHECK(h_now_ms() - t0 < 1000);
    CHECK_INT(lock_op(&a, "get", "queue", M, NULL, NULL, 0), RTM2_OK);
    CHECK_STR(a.k.locks, "door:r-alice"); /* alice still holds it, so bob cannot have it */
    CHECK_INT(bk.count, 0);
    CHECK_INT(lock_op(&a, "release", "queue", M, "door", NULL, 0), RTM2_OK);
    CHECK_INT(h_wait_call(__FILE__, __LINE__, &bk, H_WAIT_MS), RTM2_OK);
    CHECK_STR(bk.operation, "acquire_lock");
    h_event_free(EXPECT_LOCK(&w, RTM2_LOCK_EVENT_TYPE_RELEASED, "door", "r-alice"));
    h_event *e = NEXT(&w, H_EV_LOCK);
    CHECK_INT(e->event_type, RTM2_LOCK_EVENT_TYPE_ACQUIRED);
    CHECK_STR(e->owner, "r-bob");
    h_event_free(e);
    /* carol waits; a revoke of bob's hold gives it to her. */
    h_call ck;
    h_call_init(&ck);
    CHECK_OK(rtm2_lock_acquire(c.c, "queue", M, "door", true, h_complete, &ck, NULL));
    CHECK_INT(lock_op(&a, "get", "queue", M, NULL, NULL, 0), RTM2_OK);
    CHECK_STR(a.k.locks, "door:r-bob");
    CHECK_INT(ck.count, 0);
    CHECK_INT(lock_op(&a, "revoke", "queue", M, "door", "r-bob", 0), RTM2_OK);
    CHECK_INT(h_wait_call(__FILE__, __LINE__, &ck, H_WAIT_MS), RTM2_OK);
    e = EXPECT_LOCK(&w, RTM2_LOCK_EVENT_TYPE_RELEASED, "door", "r-bob");
    CHECK_STR(e->publisher, "r-alice");
    h_event_free(e);
    h_event_free(EXPECT_LOCK(&w, RTM2_LOCK_EVENT_TYPE_ACQUIRED, "door", "r-carol"));
    /* Removing the lock fails its waiters with 14008. */
    h_call_reset(&bk);
    CHECK_OK(rtm2_lock_acquire(b.c, "queue", M, "door", true, h_complete, &bk, NULL));
    CHECK_INT(lock_op(&a, "get", "queue", M, NULL, NULL, 0), RTM2_OK);
    CHECK_STR(a.k.locks, "door:r-carol");
    CHECK_INT(lock_op(&a, "remove", "queue", M, "door", NULL, 0), RTM2_OK);
    CHECK_INT(h_wait_call(__FILE__, __LINE__, &bk, H_WAIT_MS), RTM2_ERR_LOCK_NOT_EXIST);
    CHECK(strlen(bk.reason) > 0);
    CHECK_INT(bk.count, 1);
    CHECK_INT(ck.count, 1);
    h_call_destroy(&bk);
    h_call_destroy(&ck);
    user_free(&a);
    user_free(&b);
    user_free(&c);
    user_free(&w);
}

/* Many acquirers at once: the lock never has two owners. Every grant runs this hook on the
 * winner's dispatcher thread; the main thread releases one holder at a time. */
static int g_holders = 0, g_max_holders = 0;
static void count_holder(h_call *c) {
    if (c->status == RTM2_OK) {
        int now = __atomic_add_fetch(&g_holders, 1, __ATOMIC_SEQ_CST);
        if (now > __atomic_load_n(&g_max_holders, __ATOMIC_SEQ_CST)) __atomic_store_n(&g_max_holders, now, __ATOMIC_SEQ_CST);
    }
}

TEST(locks_many_acquirers_never_two_owners) {
    enum { N = 6 };
    user u[N];
    h_call k[N];
    char id[32];
    for (int i = 0; i < N; i++) {
        snprintf(id, sizeof id, "many%d", i);
        user_new(&u[i], id, &g_srv);
        h_call_init(&k[i]);
        k[i].hook = count_holder;
    }
    CHECK_INT(lock_op(&u[0], "set", "many", M, "one", NULL, 30), RTM2_OK);
    for (int i = 0; i < N; i++) CHECK_OK(rtm2_lock_acquire(u[i].c, "many", M, "one", true, h_complete, &k[i], NULL));
    int granted[N] = {0};
    for (int round = 0; round < N; round++) {
        /* Exactly one new owner per round (bounded wait for it). */
        int64_t deadline = h_now_ms() + H_WAIT_MS;
        int owner = -1;
        while (owner < 0) {
            CHECK(h_now_ms() < deadline);
            for (int i = 0; i < N; i++) {
                pthread_mutex_lock(&k[i].mu);
                int done = k[i].count;
                pthread_mutex_unlock(&k[i].mu);
                if (done && !granted[i]) {
                    CHECK_INT(k[i].status, RTM2_OK);
                    CHECK_INT(owner, -1); /* a second grant while the first holds it */
                    owner = i;
                }
            }
            if (owner < 0) h_sleep_ms(5); /* polling completions of several calls; bounded above */
        }
        granted[owner] = 1;
        CHECK_INT(lock_op(&u[owner], "get", "many", M, NULL, NULL, 0), RTM2_OK);
        char want[96];
        snprintf(want, sizeof want, "one:%s", u[owner].id);
        CHECK_STR(u[owner].k.locks, want);
        CHECK_INT(__atomic_load_n(&g_holders, __ATOMIC_SEQ_CST), 1);
        __atomic_sub_fetch(&g_holders, 1, __ATOMIC_SEQ_CST);
        CHECK_INT(lock_op(&u[owner], "release", "many", M, "one", NULL, 0), RTM2_OK);
    }
    CHECK_INT(g_max_holders, 1);
    for (int i = 0; i < N; i++) {
        CHECK_INT(k[i].count, 1);
        CHECK(granted[i]);
    }
    CHECK_INT(lock_op(&u[0], "get", "many", M, NULL, NULL, 0), RTM2_OK);
    CHECK_STR(u[0].k.locks, "one:");
    for (int i = 0; i < N; i++) {
        user_free(&u[i]);
        h_call_destroy(&k[i]);
    }
}

TEST(locks_of_a_vanished_owner_are_released_after_the_ttl) {
    user a, w;
    user_new(&a, "v-alice", &g_srv);
    user_new(&w, "v-watch", &g_srv);
    CHECK_INT(subscribe(&w, "vault", SUB_LOCK), RTM2_OK);
    CHECK_INT(lock_op(&a, "set", "vault", M, "keep", NULL, 10), RTM2_OK);
    h_ghost g;
    CHECK_INT(h_ghost_start(&g, g_rtm2, g_srv.endpoint, "v-ghost", "vault", "keep", NULL), 0);
    h_event_free(EXPECT_LOCK(&w, RTM2_LOCK_EVENT_TYPE_ACQUIRED, "keep", "v-ghost"));
    /* alice waits for it; it is hers once the ghost's ttl (10 s of 100 ms) passed. */
    h_call ak;
    h_call_init(&ak);
    CHECK_OK(rtm2_lock_acquire(a.c, "vault", M, "keep", true, h_complete, &ak, NULL));
    CHECK_INT(lock_op(&w, "get", "vault", M, NULL, NULL, 0), RTM2_OK);
    CHECK_STR(w.k.locks, "keep:v-ghost");
    int64_t t0 = h_now_ms();
    h_ghost_kill(&g);
    h_event *e = NEXT(&w, H_EV_LOCK);
    CHECK_INT(e->event_type, RTM2_LOCK_EVENT_TYPE_RELEASED);
    CHECK_STR(e->owner, "v-ghost");
    CHECK_STR(e->lock_name, "keep");
    h_event_free(e);
    CHECK(h_now_ms() - t0 >= 900); /* kept for its ttl first */
    CHECK_INT(h_wait_call(__FILE__, __LINE__, &ak, H_WAIT_MS), RTM2_OK);
    h_event_free(EXPECT_LOCK(&w, RTM2_LOCK_EVENT_TYPE_ACQUIRED, "keep", "v-alice"));
    CHECK_INT(lock_op(&w, "get", "vault", M, NULL, NULL, 0), RTM2_OK);
    CHECK_STR(w.k.locks, "keep:v-alice");
    h_call_destroy(&ak);
    user_free(&a);
    user_free(&w);
}

TEST(an_owner_away_longer_than_the_ttl_gets_expired) {
    /* The owner talks to the server through a proxy whose connections the test cuts. */
    h_proxy px;
    CHECK_INT(h_proxy_start(&px, g_srv.port), 0);
    h_server via;
    memset(&via, 0, sizeof via);
    snprintf(via.endpoint, sizeof via.endpoint, "%s", px.endpoint);
    user o, w;
    user_new(&o, "x-owner", &via);
    user_new(&w, "x-watch", &g_srv);
    CHECK_INT(subscribe(&w, "expiry", SUB_LOCK), RTM2_OK);
    CHECK_INT(lock_op(&o, "set", "expiry", M, "door", NULL, 10), RTM2_OK);
    CHECK_INT(lock_op(&o, "acquire", "expiry", M, "door", NULL, 0), RTM2_OK);
    h_event_free(EXPECT_LOCK(&w, RTM2_LOCK_EVENT_TYPE_ACQUIRED, "door", "x-owner"));
    h_proxy_cut(&px);
    uint32_t disconnected = RTM2_LINK_STATE_DISCONNECTED;
    h_event_free(h_expect(&o.rec, H_EV_LINK, h_match_link_state, &disconnected));
    /* Away longer than the ttl (10 s of 100 ms): the lock is freed... */
    h_event_free(EXPECT_LOCK(&w, RTM2_LOCK_EVENT_TYPE_RELEASED, "door", "x-owner"));
    h_proxy_restore(&px);
    /* ...and the owner, back (its session resumed), hears EXPIRED without WITH_LOCK. */
    h_event *e = EXPECT_LOCK(&o, RTM2_LOCK_EVENT_TYPE_EXPIRED, "door", "x-owner");
    CHECK_STR(e->channel, "expiry");
    CHECK_INT(e->channel_type, M);
    CHECK_INT(e->ttl_s, 10);
    h_event_free(e);
    CHECK_INT(lock_op(&o, "get", "expiry", M, NULL, NULL, 0), RTM2_OK);
    CHECK_STR(o.k.locks, "door:");
    user_free(&o);
    user_free(&w);
    h_proxy_stop(&px);
}

TEST(waiting_acquisitions_end_with_logout_and_free) {
    user a, b, c;
    user_new(&a, "c-alice", &g_srv);
    user_new(&b, "c-bob", &g_srv);
    user_new(&c, "c-carol", &g_srv);
    CHECK_INT(lock_op(&a, "set", "cancel", M, "door", NULL, 10), RTM2_OK);
    CHECK_INT(lock_op(&a, "acquire", "cancel", M, "door", NULL, 0), RTM2_OK);
    h_call bk, ck;
    h_call_init(&bk);
    h_call_init(&ck);
    CHECK_OK(rtm2_lock_acquire(b.c, "cancel", M, "door", true, h_complete, &bk, NULL));
    CHECK_INT(lock_op(&a, "get", "cancel", M, NULL, NULL, 0), RTM2_OK);
    CHECK_STR(a.k.locks, "door:c-alice");
    /* Releasing a lock one waits for withdraws the acquisition (the C way to stop waiting). */
    CHECK_INT(lock_op(&b, "release", "cancel", M, "door", NULL, 0), RTM2_OK);
    CHECK_INT(h_wait_call(__FILE__, __LINE__, &bk, H_WAIT_MS), RTM2_ERR_LOCK_OPERATION_FAILED);
    CHECK(strlen(bk.reason) > 0);
    CHECK_INT(lock_op(&a, "get", "cancel", M, NULL, NULL, 0), RTM2_OK);
    CHECK_STR(a.k.locks, "door:c-alice");
    h_call_reset(&bk);
    CHECK_OK(rtm2_lock_acquire(b.c, "cancel", M, "door", true, h_complete, &bk, NULL));
    CHECK_INT(lock_op(&a, "get", "cancel", M, NULL, NULL, 0), RTM2_OK);
    CHECK_INT(bk.count, 0);
    /* A logout ends bob's wait (the session that sent it is gone)... */
    CHECK_INT(OP(b.k, rtm2_client_logout(b.c, h_complete, &b.k, NULL)), RTM2_OK);
    CHECK_INT(h_wait_call(__FILE__, __LINE__, &bk, H_WAIT_MS), RTM2_ERR_NOT_CONNECTED);
    CHECK_STR(bk.operation, "acquire_lock");
    CHECK(strlen(bk.reason) > 0);
    /* ...and the server forgot it: released, the lock is free. */
    CHECK_INT(lock_op(&a, "release", "cancel", M, "door", NULL, 0), RTM2_OK);
    CHECK_INT(lock_op(&a, "get", "cancel", M, NULL, NULL, 0), RTM2_OK);
    CHECK_STR(a.k.locks, "door:");
    /* Freeing a client ends its wait too: 10018, before free returns. */
    CHECK_INT(lock_op(&a, "acquire", "cancel", M, "door", NULL, 0), RTM2_OK);
    CHECK_OK(rtm2_lock_acquire(c.c, "cancel", M, "door", true, h_complete, &ck, NULL));
    CHECK_INT(lock_op(&a, "get", "cancel", M, NULL, NULL, 0), RTM2_OK);
    CHECK_STR(a.k.locks, "door:c-alice");
    rtm2_client_free(c.c);
    CHECK_INT(ck.count, 1);
    CHECK_INT(ck.status, RTM2_ERR_INSTANCE_ALREADY_RELEASED);
    CHECK_INT(c.rec.destroyed, 1);
    h_recorder_destroy(&c.rec);
    h_call_destroy(&c.k);
    /* Not checked: whether the server still grants the freed client's acquisition (to its
     * detached session) races with the close of its connection in the core. */
    CHECK_INT(bk.count, 1);
    h_call_destroy(&bk);
    h_call_destroy(&ck);
    user_free(&a);
    user_free(&b);
}

/* ---- timeouts, listener versions ---- */

TEST(operations_time_out_with_their_service_code) {
    user a;
    user_new(&a, "slow", &g_srv);
    CHECK_OK(rtm2_client_set_parameters(a.c, "{\"request_timeout_ms\": 300}"));
    /* The server stops answering: wait until it is stopped (it is our child). */
    CHECK_INT(kill(g_srv.pid, SIGSTOP), 0);
    int wst = 0;
    CHECK_INT(waitpid(g_srv.pid, &wst, WUNTRACED), g_srv.pid);
    CHECK(WIFSTOPPED(wst));
    CHECK_INT(OP(a.k, rtm2_presence_who_now(a.c, "room", M, NULL, h_complete, &a.k, NULL)),
              RTM2_ERR_PRESENCE_OPERATION_TIMEOUT);
    CHECK_STR(a.k.operation, "get_online_users");
    CHECK_INT(OP(a.k, rtm2_storage_get_channel_metadata(a.c, "room", M, h_complete, &a.k, NULL)),
              RTM2_ERR_STORAGE_OPERATION_TIMEOUT);
    CHECK_INT(OP(a.k, rtm2_lock_get_locks(a.c, "room", M, h_complete, &a.k, NULL)), RTM2_ERR_LOCK_OPERATION_TIMEOUT);
    kill(g_srv.pid, SIGCONT);
    user_free(&a);
}

static int g_old_presence_calls = 0;
static void old_on_presence(void *ud, const rtm2_presence_event *ev) {
    (void)ud;
    (void)ev;
    __atomic_add_fetch(&g_old_presence_calls, 1, __ATOMIC_SEQ_CST);
}

TEST(a_listener_of_an_older_header_gets_no_new_events) {
    h_recorder rec;
    h_recorder_init(&rec);
    rtm2_listener l = h_recorder_listener(&rec);
    l.struct_size = offsetof(rtm2_listener, on_presence);
    l.on_presence = old_on_presence; /* beyond its struct_size: never read */
    rtm2_config *cfg = NULL;
    CHECK_OK(rtm2_config_new(H_APP_ID, "old-header", &cfg));
    CHECK_OK(rtm2_config_set_endpoint(cfg, g_srv.endpoint));
    rtm2_client *c = NULL;
    CHECK_OK(rtm2_client_new(cfg, &l, &c));
    rtm2_config_free(cfg);
    h_call k;
    h_call_init(&k);
    CHECK_INT(OP(k, rtm2_client_login(c, NULL, h_complete, &k, NULL)), RTM2_OK);
    CHECK_INT(OP(k, rtm2_client_subscribe(c, "old", RTM2_SUBSCRIBE_DEFAULT, h_complete, &k, NULL)), RTM2_OK);
    rtm2_publish_options po;
    rtm2_publish_options_init(&po);
    CHECK_INT(OP(k, rtm2_client_publish(c, "old", "after", 5, &po, h_complete, &k, NULL)), RTM2_OK);
    /* The presence snapshot came before this message (events are delivered in order). */
    h_event_free(h_expect(&rec, H_EV_MESSAGE, h_match_text, "after"));
    CHECK_INT(g_old_presence_calls, 0);
    rtm2_client_free(c);
    h_call_destroy(&k);
    h_recorder_destroy(&rec);
}

/* A client given no endpoint uses the RTM2_ENDPOINT environment variable (read when the client is
 * made); an invalid value fails rtm2_client_new with 10014 naming the variable. */
TEST(a_client_given_no_endpoint_uses_rtm2_endpoint) {
    user a;
    user_new(&a, "env-alice", &g_srv);
    CHECK_INT(subscribe(&a, "env-room", RTM2_SUBSCRIBE_DEFAULT), RTM2_OK);
    CHECK_INT(setenv("RTM2_ENDPOINT", g_srv.endpoint, 1), 0);
    h_call k;
    h_call_init(&k);
    rtm2_client *c = h_new_client("env-bob", NULL, NULL);
    CHECK_INT(OP(k, rtm2_client_login(c, NULL, h_complete, &k, NULL)), RTM2_OK);
    CHECK_INT(OP(k, rtm2_presence_who_now(c, "env-room", M, NULL, h_complete, &k, NULL)), RTM2_OK);
    CHECK_SET(k.online_users, "env-alice");
    rtm2_client_free(c);
    CHECK_INT(setenv("RTM2_ENDPOINT", "tcp:/nowhere", 1), 0);
    rtm2_config *cfg = NULL;
    CHECK_OK(rtm2_config_new(H_APP_ID, "env-carol", &cfg));
    c = NULL;
    CHECK_STATUS(rtm2_client_new(cfg, NULL, &c), RTM2_ERR_INVALID_PARAMETER);
    CHECK(c == NULL);
    CHECK(strstr(rtm2_last_error_message(), "RTM2_ENDPOINT") != NULL);
    rtm2_config_free(cfg);
    CHECK_INT(unsetenv("RTM2_ENDPOINT"), 0);
    h_call_destroy(&k);
    user_free(&a);
}

int main(int argc, char **argv) {
    h_init();
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--rtm2") == 0 && i + 1 < argc) g_rtm2 = argv[++i];
        else {
            fprintf(stderr, "usage: %s --rtm2 PATH\n", argv[0]);
            return 2;
        }
    }
    if (!g_rtm2) g_rtm2 = getenv("RTM2_BIN");
    if (!g_rtm2) {
        fprintf(stderr, "usage: %s --rtm2 PATH\n", argv[0]);
        return 2;
    }
    const char *args[] = {"--ttl-unit-ms", "100", "--presence-page-size", "2", NULL};
    CHECK_INT(h_server_start_args(&g_srv, g_rtm2, 0, 0, 30, 0, args), 0);
    const char *iargs[] = {"--presence-announce-max", "2", "--presence-interval-ms", "300", "--ttl-unit-ms", "100",
                           NULL};
    CHECK_INT(h_server_start_args(&g_interval, g_rtm2, 0, 0, 30, 0, iargs), 0);
    RUN(presence_snapshot_events_and_state);
    RUN(presence_be_quiet_is_hidden);
    RUN(presence_pages_walk_every_user);
    RUN(presence_timeout_of_a_vanished_user);
    RUN(presence_interval_mode);
    RUN(presence_errors_have_exact_codes);
    RUN(storage_channel_metadata_revisions_and_events);
    RUN(storage_user_metadata_and_subscriptions);
    RUN(locks_events_and_errors);
    RUN(locks_waiting_acquirers);
    RUN(locks_many_acquirers_never_two_owners);
    RUN(locks_of_a_vanished_owner_are_released_after_the_ttl);
    RUN(an_owner_away_longer_than_the_ttl_gets_expired);
    RUN(waiting_acquisitions_end_with_logout_and_free);
    RUN(operations_time_out_with_their_service_code);
    RUN(a_listener_of_an_older_header_gets_no_new_events);
    RUN(a_client_given_no_endpoint_uses_rtm2_endpoint);
    h_server_stop(&g_srv);
    h_server_stop(&g_interval);
    return h_finish("test_services", passed);
}
