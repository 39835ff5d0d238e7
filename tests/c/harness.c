#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "harness.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

pthread_t h_main_thread;
int h_duplicate_completions = 0;

#define H_MAX_SERVERS 16
static pid_t h_server_pids[H_MAX_SERVERS];

static void h_kill_servers(void) {
    for (int i = 0; i < H_MAX_SERVERS; i++) {
        if (h_server_pids[i] > 0) {
            kill(h_server_pids[i], SIGKILL);
            waitpid(h_server_pids[i], NULL, 0);
            h_server_pids[i] = 0;
        }
    }
}

void h_init(void) {
    h_main_thread = pthread_self();
    signal(SIGPIPE, SIG_IGN);
    atexit(h_kill_servers);
    setvbuf(stdout, NULL, _IOLBF, 0);
}

void h_fail(const char *file, int line, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "FAIL %s:%d: ", file, line);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    fflush(stderr);
    exit(1);
}

void h_log(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
}

int h_finish(const char *suite, int passed) {
    if (h_duplicate_completions != 0) {
        fprintf(stderr, "FAIL: %d completion callbacks ran more than once\n", h_duplicate_completions);
        printf("%s: %d passed, 1 failed\n", suite, passed);
        return 1;
    }
    printf("%s: %d passed, 0 failed\n", suite, passed);
    return 0;
}

int64_t h_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

uint64_t h_epoch_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void h_sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void h_deadline(struct timespec *ts, int timeout_ms) {
    clock_gettime(CLOCK_REALTIME, ts);
    ts->tv_sec += timeout_ms / 1000;
    ts->tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec += 1;
        ts->tv_nsec -= 1000000000L;
    }
}

void h_append(char *buf, size_t cap, const char *fmt, ...) {
    size_t len = strlen(buf);
    if (len + 1 >= cap) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf + len, cap - len, fmt, ap);
    va_end(ap);
}

void h_sappend(char **buf, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    size_t len = *buf ? strlen(*buf) : 0;
    char *grown = (char *)realloc(*buf, len + (size_t)n + 1);
    if (!grown) {
        fprintf(stderr, "out of memory\n");
        exit(2);
    }
    va_start(ap, fmt);
    vsnprintf(grown + len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    *buf = grown;
}

const char *h_s(const char *s) {
    return s ? s : "";
}

static void h_sfree(char **s) {
    free(*s);
    *s = NULL;
}

/* "k:v,k2:v2" */
static void h_states_list(char **out, const rtm2_state_item *items, size_t n) {
    h_sappend(out, "%s", "");
    for (size_t i = 0; i < n; i++) h_sappend(out, "%s%s:%s", i ? "," : "", items[i].key, items[i].value);
}

/* ids "a,b" and states "a{k:v;k2:v2},b{}" */
static void h_user_states(char **ids, char **states, const rtm2_user_state *users, size_t n) {
    h_sappend(ids, "%s", "");
    h_sappend(states, "%s", "");
    for (size_t i = 0; i < n; i++) {
        h_sappend(ids, "%s%s", i ? "," : "", users[i].user_id);
        h_sappend(states, "%s%s{", i ? "," : "", users[i].user_id);
        for (size_t j = 0; j < users[i].state_count; j++)
            h_sappend(states, "%s%s:%s", j ? ";" : "", users[i].states[j].key, users[i].states[j].value);
        h_sappend(states, "}");
    }
}

/* items "k:v", revisions "k:rev", authors "k:author", stamped "k" (updated_ms != 0) */
static void h_metadata(const rtm2_metadata *m, char **items, char **revisions, char **authors, char **stamped) {
    h_sappend(items, "%s", "");
    h_sappend(revisions, "%s", "");
    h_sappend(authors, "%s", "");
    h_sappend(stamped, "%s", "");
    int first_stamp = 1;
    for (size_t i = 0; i < m->item_count; i++) {
        const rtm2_metadata_item *it = &m->items[i];
        h_sappend(items, "%s%s:%s", i ? "," : "", it->key, it->value);
        h_sappend(revisions, "%s%s:%lld", i ? "," : "", it->key, (long long)it->revision);
        h_sappend(authors, "%s%s:%s", i ? "," : "", it->key, it->author);
        if (it->updated_ms != 0) {
            h_sappend(stamped, "%s%s", first_stamp ? "" : ",", it->key);
            first_stamp = 0;
        }
    }
}

static void h_lock_list(char **out, char **ttls, const rtm2_lock_detail *locks, size_t n) {
    h_sappend(out, "%s", "");
    if (ttls) h_sappend(ttls, "%s", "");
    for (size_t i = 0; i < n; i++) {
        h_sappend(out, "%s%s:%s", i ? "," : "", locks[i].name, locks[i].owner);
        if (ttls) h_sappend(ttls, "%s%s:%u", i ? "," : "", locks[i].name, locks[i].ttl_s);
    }
}

static void h_history(h_call *c, const rtm2_history_page *p) {
    c->has_history = 1;
    c->history_count = p->count;
    c->history_new_start = p->new_start;
    c->history_ordered = 1;
    h_sappend(&c->history, "%s", "");
    h_sappend(&c->history_types, "%s", "");
    if (p->count > 0 && p->messages == NULL) h_fail(__FILE__, __LINE__, "history: count %zu, NULL messages", p->count);
    for (size_t i = 0; i < p->count; i++) {
        const rtm2_history_message *m = &p->messages[i];
        h_sappend(&c->history, "%s%s:", i ? "," : "", m->publisher);
        if (m->message_type == RTM2_MESSAGE_TYPE_STRING) {
            if (m->payload_len > 0) h_sappend(&c->history, "%.*s", (int)m->payload_len, (const char *)m->payload);
        } else {
            h_sappend(&c->history, "%s", "0x");
            for (size_t j = 0; j < m->payload_len; j++) h_sappend(&c->history, "%02x", m->payload[j]);
        }
        h_sappend(&c->history_types, "%s%s/%s", i ? "," : "",
                  m->message_type == RTM2_MESSAGE_TYPE_STRING ? "S" : "B", m->custom_type);
        if (m->timestamp_ms == 0 || (i > 0 && m->timestamp_ms >= p->messages[i - 1].timestamp_ms))
            c->history_ordered = 0;
        if (i == 0) c->history_newest_ts = m->timestamp_ms;
        c->history_oldest_ts = m->timestamp_ms;
    }
}

static int h_cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Splits a copy of "a,b" into sorted items; returns the count (the copy is *buf). */
static size_t h_sorted_items(const char *list, char **buf, char ***items) {
    *buf = strdup(list ? list : "");
    *items = NULL;
    if (!**buf) return 0;
    size_t n = 1;
    for (const char *p = *buf; *p; p++)
        if (*p == ',') n++;
    *items = (char **)calloc(n, sizeof **items);
    size_t i = 0;
    for (char *tok = *buf, *next; tok; tok = next) {
        next = strchr(tok, ',');
        if (next) *next++ = 0;
        (*items)[i++] = tok;
    }
    qsort(*items, n, sizeof **items, h_cmp_str);
    return n;
}

int h_same_set(const char *a, const char *b) {
    char *ba, *bb, **ia, **ib;
    size_t na = h_sorted_items(a, &ba, &ia), nb = h_sorted_items(b, &bb, &ib);
    int same = na == nb;
    for (size_t i = 0; same && i < na; i++) same = strcmp(ia[i], ib[i]) == 0;
    free(ba);
    free(bb);
    free(ia);
    free(ib);
    return same;
}

static void h_copy(char *dst, size_t cap, const char *src) {
    snprintf(dst, cap, "%s", src ? src : "(null)");
}

/* ---- completions ---- */

void h_call_init(h_call *c) {
    memset(c, 0, sizeof *c);
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv, NULL);
    c->status = -1;
}

void h_call_reset(h_call *c) {
    pthread_mutex_lock(&c->mu);
    c->count = 0;
    c->status = -1;
    c->request_id = 0;
    c->operation[0] = c->reason[0] = 0;
    c->has_join = c->has_subscribe_topic = c->has_users = 0;
    c->join_channel[0] = c->join_summary[0] = c->succeeded[0] = c->failed[0] = c->users[0] = 0;
    c->has_online_users = c->has_user_channels = c->has_user_state = 0;
    c->has_metadata_write = c->has_metadata = c->has_locks = 0;
    c->total_occupancy = c->write_total = 0;
    c->fencing_token = 0;
    c->timestamp_ms = 0;
    c->has_history = c->history_ordered = 0;
    c->history_count = 0;
    c->history_new_start = c->history_newest_ts = c->history_oldest_ts = 0;
    c->write_major = c->meta_major = -100;
    c->meta_count = 0;
    char **heap[] = {&c->online_users, &c->online_states, &c->next_page, &c->user_channels, &c->state_user,
                     &c->states, &c->meta_items, &c->meta_revisions, &c->meta_authors, &c->meta_stamped,
                     &c->locks, &c->lock_ttls, &c->history, &c->history_types};
    for (size_t i = 0; i < sizeof heap / sizeof heap[0]; i++) h_sfree(heap[i]);
    pthread_mutex_unlock(&c->mu);
}

void h_call_destroy(h_call *c) {
    h_call_reset(c);
    pthread_mutex_destroy(&c->mu);
    pthread_cond_destroy(&c->cv);
}

void h_join_names(char *buf, size_t cap, const char *const *names, size_t n) {
    buf[0] = 0;
    for (size_t i = 0; i < n; i++) h_append(buf, cap, "%s%s", i ? "," : "", names[i]);
}

static void h_topics_summary(char *buf, size_t cap, const rtm2_topic_info *topics, size_t n) {
    buf[0] = 0;
    for (size_t i = 0; i < n; i++) {
        h_append(buf, cap, "%s%s[", i ? ";" : "", topics[i].topic);
        for (size_t j = 0; j < topics[i].publisher_count; j++) {
            h_append(buf, cap, "%s%s/%s", j ? " " : "", topics[i].publishers[j].user_id,
                     topics[i].publishers[j].meta);
        }
        h_append(buf, cap, "]");
    }
}

void h_complete(void *user_data, uint64_t request_id, int32_t status, const rtm2_result *result) {
    h_call *c = (h_call *)user_data;
    pthread_mutex_lock(&c->mu);
    if (c->count > 0) {
        __atomic_add_fetch(&h_duplicate_completions, 1, __ATOMIC_SEQ_CST);
        fprintf(stderr, "duplicate completion of request %llu (status %d)\n", (unsigned long long)request_id,
                (int)status);
    }
    c->request_id = request_id;
    c->status = status;
    c->thread = pthread_self();
    if (result == NULL) {
        fprintf(stderr, "completion without a result\n");
        __atomic_add_fetch(&h_duplicate_completions, 1, __ATOMIC_SEQ_CST);
    } else {
        h_copy(c->operation, sizeof c->operation, result->operation);
        h_copy(c->reason, sizeof c->reason, result->reason);
        c->timestamp_ms = result->timestamp_ms;
        if (result->join) {
            c->has_join = 1;
            h_copy(c->join_channel, sizeof c->join_channel, result->join->channel);
            h_topics_summary(c->join_summary, sizeof c->join_summary, result->join->topics,
                             result->join->topic_count);
        }
        if (result->subscribe_topic) {
            const rtm2_subscribe_topic_result *st = result->subscribe_topic;
            c->has_subscribe_topic = 1;
            h_join_names(c->succeeded, sizeof c->succeeded, st->succeeded, st->succeeded_count);
            c->failed[0] = 0;
            for (size_t i = 0; i < st->failed_count; i++) {
                h_append(c->failed, sizeof c->failed, "%s%s:%u", i ? "," : "", st->failed[i].user_id,
                         st->failed[i].code);
            }
        }
        if (result->subscribed_users) {
            c->has_users = 1;
            h_join_names(c->users, sizeof c->users, result->subscribed_users->users, result->subscribed_users->count);
        }
        if (result->online_users) {
            const rtm2_online_users *o = result->online_users;
            c->has_online_users = 1;
            h_user_states(&c->online_users, &c->online_states, o->occupants, o->occupant_count);
            c->total_occupancy = o->total_occupancy;
            h_sappend(&c->next_page, "%s", o->next_page);
        }
        if (result->user_channels) {
            c->has_user_channels = 1;
            h_sappend(&c->user_channels, "%s", "");
            for (size_t i = 0; i < result->user_channels->count; i++) {
                const rtm2_channel_info *ci = &result->user_channels->channels[i];
                h_sappend(&c->user_channels, "%s%s:%s", i ? "," : "",
                          ci->channel_type == RTM2_CHANNEL_TYPE_MESSAGE  ? "MESSAGE"
                          : ci->channel_type == RTM2_CHANNEL_TYPE_STREAM ? "STREAM"
                                                                         : "?",
                          ci->channel);
            }
        }
        if (result->user_state) {
            c->has_user_state = 1;
            h_sappend(&c->state_user, "%s", result->user_state->user_id);
            h_states_list(&c->states, result->user_state->states, result->user_state->state_count);
        }
        if (result->metadata_write) {
            c->has_metadata_write = 1;
            c->write_major = result->metadata_write->major_revision;
            c->write_total = result->metadata_write->total_count;
        }
        if (result->metadata) {
            c->has_metadata = 1;
            c->meta_major = result->metadata->major_revision;
            c->meta_count = result->metadata->item_count;
            h_metadata(result->metadata, &c->meta_items, &c->meta_revisions, &c->meta_authors, &c->meta_stamped);
        }
        c->fencing_token = result->fencing_token;
        if (result->locks) {
            c->has_locks = 1;
            h_lock_list(&c->locks, &c->lock_ttls, result->locks->locks, result->locks->count);
        }
        if (result->history) h_history(c, result->history);
    }
    if (c->hook) c->hook(c);
    c->count++;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

int32_t h_wait_call(const char *file, int line, h_call *c, int timeout_ms) {
    struct timespec ts;
    h_deadline(&ts, timeout_ms);
    pthread_mutex_lock(&c->mu);
    while (c->count == 0) {
        if (pthread_cond_timedwait(&c->cv, &c->mu, &ts) == ETIMEDOUT) {
            pthread_mutex_unlock(&c->mu);
            h_fail(file, line, "no completion within %d ms", timeout_ms);
        }
    }
    int32_t s = c->status;
    pthread_mutex_unlock(&c->mu);
    return s;
}

int32_t h_await_at(const char *file, int line, int32_t start_status, h_call *c) {
    if (start_status != RTM2_OK) {
        h_fail(file, line, "the operation did not start: %d %s (%s)", (int)start_status,
               rtm2_status_name(start_status), rtm2_last_error_message());
    }
    return h_wait_call(file, line, c, H_WAIT_MS + 5000);
}

/* ---- events ---- */

void h_recorder_init(h_recorder *r) {
    memset(r, 0, sizeof *r);
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cv, NULL);
}

void h_event_free(h_event *e) {
    if (e) {
        free(e->payload);
        char *heap[] = {e->states, e->snapshot, e->snapshot_states, e->joined, e->left, e->timed_out,
                        e->changed, e->changed_states, e->items, e->revisions, e->authors, e->stamped};
        for (size_t i = 0; i < sizeof heap / sizeof heap[0]; i++) free(heap[i]);
        free(e);
    }
}

void h_recorder_destroy(h_recorder *r) {
    h_event *e = r->head;
    while (e) {
        h_event *n = e->next;
        h_event_free(e);
        e = n;
    }
    r->head = r->tail = NULL;
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->cv);
}

/* Called with r->mu held at the start of every callback. */
static void h_note_thread(h_recorder *r) {
    pthread_t self = pthread_self();
    if (pthread_equal(self, h_main_thread)) r->on_main_thread = 1;
    if (!r->thread_known) {
        r->thread = self;
        r->thread_known = 1;
    } else if (!pthread_equal(r->thread, self)) {
        r->thread_mismatch = 1;
    }
    if (r->destroyed) r->callbacks_after_destroy++;
}

static void h_push(h_recorder *r, h_event *e) {
    e->next = NULL;
    if (r->tail) r->tail->next = e;
    else r->head = e;
    r->tail = e;
    pthread_cond_broadcast(&r->cv);
}

static h_event *h_new_event(h_kind kind) {
    h_event *e = (h_event *)calloc(1, sizeof *e);
    if (!e) {
        fprintf(stderr, "out of memory\n");
        exit(2);
    }
    e->kind = kind;
    return e;
}

static void h_on_message(void *ud, const rtm2_message_event *ev) {
    h_recorder *r = (h_recorder *)ud;
    h_event *e = h_new_event(H_EV_MESSAGE);
    e->channel_type = ev->channel_type;
    e->message_type = ev->message_type;
    h_copy(e->channel, sizeof e->channel, ev->channel);
    h_copy(e->topic, sizeof e->topic, ev->topic);
    h_copy(e->publisher, sizeof e->publisher, ev->publisher);
    h_copy(e->custom_type, sizeof e->custom_type, ev->custom_type);
    e->payload = (unsigned char *)malloc(ev->payload_len + 1);
    if (ev->payload_len) memcpy(e->payload, ev->payload, ev->payload_len);
    e->payload[ev->payload_len] = 0;
    e->payload_len = ev->payload_len;
    e->timestamp_ms = ev->timestamp_ms;
    e->recovered = ev->recovered;
    pthread_mutex_lock(&r->mu);
    h_note_thread(r);
    pthread_mutex_unlock(&r->mu);
    /* The hook runs outside the recorder lock: it may call into the SDK. */
    if (r->message_hook) r->message_hook(r, ev);
    pthread_mutex_lock(&r->mu);
    h_push(r, e);
    pthread_mutex_unlock(&r->mu);
}

static void h_on_topic(void *ud, const rtm2_topic_event *ev) {
    h_recorder *r = (h_recorder *)ud;
    h_event *e = h_new_event(H_EV_TOPIC);
    e->topic_type = ev->event_type;
    h_copy(e->channel, sizeof e->channel, ev->channel);
    h_copy(e->publisher, sizeof e->publisher, ev->publisher);
    if (ev->topic_count > 0) {
        h_copy(e->first_topic, sizeof e->first_topic, ev->topics[0].topic);
        if (ev->topics[0].publisher_count > 0) {
            h_copy(e->first_user, sizeof e->first_user, ev->topics[0].publishers[0].user_id);
            h_copy(e->first_meta, sizeof e->first_meta, ev->topics[0].publishers[0].meta);
        }
    }
    h_topics_summary(e->summary, sizeof e->summary, ev->topics, ev->topic_count);
    e->timestamp_ms = ev->timestamp_ms;
    pthread_mutex_lock(&r->mu);
    h_note_thread(r);
    h_push(r, e);
    pthread_mutex_unlock(&r->mu);
}

static void h_on_link_state(void *ud, const rtm2_link_state_event *ev) {
    h_recorder *r = (h_recorder *)ud;
    h_event *e = h_new_event(H_EV_LINK);
    e->current = ev->current;
    e->previous = ev->previous;
    e->service = ev->service_type;
    e->operation = ev->operation;
    e->reason = ev->reason;
    e->reason_number = ev->reason_number;
    h_copy(e->reason_name, sizeof e->reason_name, ev->reason_name);
    h_copy(e->reason_text, sizeof e->reason_text, ev->reason_text);
    h_copy(e->channel, sizeof e->channel, ev->channel);
    e->unrestored_count = ev->unrestored_channel_count;
    e->is_resumed = ev->is_resumed;
    for (size_t i = 0; i < ev->affected_channel_count; i++) h_append(e->summary, sizeof e->summary, "%s%s", i ? "," : "", ev->affected_channels[i]);
    e->timestamp_ms = ev->timestamp_ms;
    pthread_mutex_lock(&r->mu);
    h_note_thread(r);
    pthread_mutex_unlock(&r->mu);
    if (r->link_hook) r->link_hook(r, ev);
    pthread_mutex_lock(&r->mu);
    h_push(r, e);
    pthread_mutex_unlock(&r->mu);
}

static void h_on_token(void *ud, const char *channel) {
    h_recorder *r = (h_recorder *)ud;
    h_event *e = h_new_event(H_EV_TOKEN);
    e->token_is_login = channel == NULL;
    h_copy(e->channel, sizeof e->channel, channel ? channel : "");
    pthread_mutex_lock(&r->mu);
    h_note_thread(r);
    h_push(r, e);
    pthread_mutex_unlock(&r->mu);
}

static void h_on_overflow(void *ud, uint64_t dropped) {
    h_recorder *r = (h_recorder *)ud;
    h_event *e = h_new_event(H_EV_OVERFLOW);
    e->dropped = dropped;
    pthread_mutex_lock(&r->mu);
    h_note_thread(r);
    r->overflow_dropped += dropped;
    h_push(r, e);
    pthread_mutex_unlock(&r->mu);
}

static void h_on_presence(void *ud, const rtm2_presence_event *ev) {
    h_recorder *r = (h_recorder *)ud;
    h_event *e = h_new_event(H_EV_PRESENCE);
    e->event_type = ev->event_type;
    e->channel_type = ev->channel_type;
    h_copy(e->channel, sizeof e->channel, ev->channel);
    h_copy(e->publisher, sizeof e->publisher, ev->publisher);
    h_states_list(&e->states, ev->states, ev->state_count);
    h_user_states(&e->snapshot, &e->snapshot_states, ev->snapshot, ev->snapshot_count);
    e->count = ev->snapshot_count;
    h_sappend(&e->joined, "%s", "");
    h_sappend(&e->left, "%s", "");
    h_sappend(&e->timed_out, "%s", "");
    if (ev->interval) {
        const rtm2_presence_interval *i = ev->interval;
        e->has_interval = 1;
        for (size_t k = 0; k < i->joined_count; k++) h_sappend(&e->joined, "%s%s", k ? "," : "", i->joined[k]);
        for (size_t k = 0; k < i->left_count; k++) h_sappend(&e->left, "%s%s", k ? "," : "", i->left[k]);
        for (size_t k = 0; k < i->timed_out_count; k++)
            h_sappend(&e->timed_out, "%s%s", k ? "," : "", i->timed_out[k]);
        h_user_states(&e->changed, &e->changed_states, i->states, i->state_count);
        e->total = i->total_occupancy;
    } else {
        h_user_states(&e->changed, &e->changed_states, NULL, 0);
    }
    e->timestamp_ms = ev->timestamp_ms;
    pthread_mutex_lock(&r->mu);
    h_note_thread(r);
    h_push(r, e);
    pthread_mutex_unlock(&r->mu);
}

static void h_on_storage(void *ud, const rtm2_storage_event *ev) {
    h_recorder *r = (h_recorder *)ud;
    h_event *e = h_new_event(H_EV_STORAGE);
    e->event_type = ev->event_type;
    e->storage_type = ev->storage_type;
    e->channel_type = ev->channel_type;
    h_copy(e->channel, sizeof e->channel, ev->target);
    h_copy(e->publisher, sizeof e->publisher, ev->publisher);
    if (ev->data == NULL) {
        fprintf(stderr, "storage event without data\n");
        exit(3);
    }
    e->major = ev->data->major_revision;
    e->count = ev->data->item_count;
    h_metadata(ev->data, &e->items, &e->revisions, &e->authors, &e->stamped);
    e->timestamp_ms = ev->timestamp_ms;
    pthread_mutex_lock(&r->mu);
    h_note_thread(r);
    h_push(r, e);
    pthread_mutex_unlock(&r->mu);
}

static void h_on_lock(void *ud, const rtm2_lock_event *ev) {
    h_recorder *r = (h_recorder *)ud;
    h_event *e = h_new_event(H_EV_LOCK);
    e->event_type = ev->event_type;
    e->channel_type = ev->channel_type;
    h_copy(e->channel, sizeof e->channel, ev->channel);
    h_copy(e->lock_name, sizeof e->lock_name, ev->lock_name);
    h_copy(e->owner, sizeof e->owner, ev->owner);
    h_copy(e->publisher, sizeof e->publisher, ev->publisher);
    e->ttl_s = ev->ttl_s;
    h_lock_list(&e->snapshot, NULL, ev->snapshot, ev->snapshot_count);
    e->count = ev->snapshot_count;
    e->timestamp_ms = ev->timestamp_ms;
    e->fencing_token = ev->fencing_token;
    pthread_mutex_lock(&r->mu);
    h_note_thread(r);
    h_push(r, e);
    pthread_mutex_unlock(&r->mu);
}

static void h_on_destroy(void *ud) {
    h_recorder *r = (h_recorder *)ud;
    pthread_mutex_lock(&r->mu);
    h_note_thread(r);
    r->destroyed++;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

static void h_on_message_batch(void *ud, const rtm2_message_event *evs, size_t count) {
    h_recorder *r = (h_recorder *)ud;
    pthread_mutex_lock(&r->mu);
    r->batches++;
    if ((int)count > r->batch_max) r->batch_max = (int)count;
    pthread_mutex_unlock(&r->mu);
    for (size_t i = 0; i < count; i++) h_on_message(ud, &evs[i]);
}

rtm2_listener h_recorder_listener(h_recorder *r) {
    rtm2_listener l;
    memset(&l, 0, sizeof l);
    l.struct_size = sizeof l;
    l.user_data = r;
    l.destroy = h_on_destroy;
    l.on_message = r->batched ? NULL : h_on_message;
    if (r->batched) l.on_message_batch = h_on_message_batch;
    l.on_topic = h_on_topic;
    l.on_link_state = h_on_link_state;
    l.on_token_will_expire = h_on_token;
    l.on_overflow = h_on_overflow;
    l.on_presence = h_on_presence;
    l.on_storage = h_on_storage;
    l.on_lock = h_on_lock;
    return l;
}

h_event *h_next_event(h_recorder *r, int timeout_ms) {
    struct timespec ts;
    h_deadline(&ts, timeout_ms);
    pthread_mutex_lock(&r->mu);
    while (r->head == NULL) {
        if (pthread_cond_timedwait(&r->cv, &r->mu, &ts) == ETIMEDOUT) break;
    }
    h_event *e = r->head;
    if (e) {
        r->head = e->next;
        if (!r->head) r->tail = NULL;
    }
    pthread_mutex_unlock(&r->mu);
    return e;
}

h_event *h_expect_at(const char *file, int line, h_recorder *r, h_kind kind,
                     int (*match)(const h_event *e, const void *arg), const void *arg, int timeout_ms) {
    int64_t deadline = h_now_ms() + timeout_ms;
    for (;;) {
        int64_t left = deadline - h_now_ms();
        if (left <= 0) h_fail(file, line, "no matching event (kind %d) within %d ms", (int)kind, timeout_ms);
        h_event *e = h_next_event(r, (int)left);
        if (!e) continue;
        if (e->kind == kind && match(e, arg)) return e;
        h_event_free(e);
    }
}

int h_match_any(const h_event *e, const void *arg) {
    (void)e;
    (void)arg;
    return 1;
}

int h_match_text(const h_event *e, const void *text) {
    const char *t = (const char *)text;
    return e->payload_len == strlen(t) && memcmp(e->payload, t, e->payload_len) == 0;
}

int h_match_link_state(const h_event *e, const void *state) {
    return e->service == RTM2_SERVICE_TYPE_MESSAGE && e->current == *(const uint32_t *)state;
}

int h_match_topic_type(const h_event *e, const void *type) {
    return e->topic_type == *(const uint32_t *)type;
}

int h_match_event_type(const h_event *e, const void *type) {
    return e->event_type == *(const uint32_t *)type;
}

void h_wait_destroyed(h_recorder *r, int timeout_ms) {
    struct timespec ts;
    h_deadline(&ts, timeout_ms);
    pthread_mutex_lock(&r->mu);
    while (r->destroyed == 0) {
        if (pthread_cond_timedwait(&r->cv, &r->mu, &ts) == ETIMEDOUT) break;
    }
    int d = r->destroyed;
    pthread_mutex_unlock(&r->mu);
    if (d != 1) h_fail(__FILE__, __LINE__, "listener destroy ran %d times, expected once", d);
}

/* ---- a standalone server ---- */

static void *h_drain(void *arg) {
    h_server *s = (h_server *)arg;
    char buf[4096];
    ssize_t n;
    while ((n = read(s->err_fd, buf, sizeof buf)) > 0) {
        if (getenv("RTM2_TEST_VERBOSE")) fwrite(buf, 1, (size_t)n, stderr);
    }
    return NULL;
}

static void h_track_pid(pid_t pid, int add) {
    for (int i = 0; i < H_MAX_SERVERS; i++) {
        if (add && h_server_pids[i] == 0) {
            h_server_pids[i] = pid;
            return;
        }
        if (!add && h_server_pids[i] == pid) h_server_pids[i] = 0;
    }
}

/* Starts argv[0] with stdout to /dev/null and stderr to a pipe (returned in *err_fd); the
 * process is killed at exit if still tracked. Returns the pid or -1. */
static pid_t h_spawn(const char *const *argv, int *err_fd) {
    int fds[2];
    if (pipe(fds) != 0) return -1;
    pid_t pid = fork();
    if (pid < 0) {
        close(fds[0]);
        close(fds[1]);
        return -1;
    }
    if (pid == 0) {
        dup2(fds[1], 2);
        int devnull = open("/dev/null", O_WRONLY);
        if (devnull >= 0) dup2(devnull, 1);
        close(fds[0]);
        close(fds[1]);
        execv(argv[0], (char *const *)argv);
        fprintf(stderr, "cannot run %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    close(fds[1]);
    *err_fd = fds[0];
    h_track_pid(pid, 1);
    return pid;
}

/* Reads `fd` (bounded by `deadline`) until a complete line contains `needle`; what follows
 * that line stays unread only if it arrived in the same read (callers wait for lines in the
 * order they are printed). Returns 1 when found. `line`/`cap` keep the text read so far. */
static int h_read_until(int fd, const char *needle, int64_t deadline, char *line, size_t cap, size_t *len) {
    for (;;) {
        /* Complete lines already read. */
        char *nl;
        while ((nl = (char *)memchr(line, '\n', *len)) != NULL) {
            *nl = 0;
            int found = strstr(line, needle) != NULL;
            size_t rest = *len - (size_t)(nl + 1 - line);
            memmove(line, nl + 1, rest);
            *len = rest;
            line[*len] = 0;
            if (found) return 1;
        }
        int64_t left = deadline - h_now_ms();
        if (left <= 0) return 0;
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, (int)left) <= 0) return 0;
        if (*len + 1 >= cap) *len = 0; /* an overlong line: forget it */
        ssize_t n = read(fd, line + *len, cap - 1 - *len);
        if (n <= 0) return 0;
        *len += (size_t)n;
        line[*len] = 0;
        if (getenv("RTM2_TEST_VERBOSE")) fprintf(stderr, "%s", line);
    }
}

int h_server_start(h_server *s, const char *rtm2_bin, int port, int cert, int notice_secs, int rate_limits) {
    return h_server_start_args(s, rtm2_bin, port, cert, notice_secs, rate_limits, NULL);
}

int h_server_start_args(h_server *s, const char *rtm2_bin, int port, int cert, int notice_secs, int rate_limits,
                        const char *const *extra) {
    memset(s, 0, sizeof *s);
    int fds[2];
    if (pipe(fds) != 0) return -1;
    char listen_addr[64], notice[32];
    snprintf(listen_addr, sizeof listen_addr, "127.0.0.1:%d", port);
    snprintf(notice, sizeof notice, "%d", notice_secs);
    const char *argv[48];
    int n = 0;
    argv[n++] = rtm2_bin;
    argv[n++] = "serve";
    argv[n++] = "--listen";
    argv[n++] = listen_addr;
    if (cert) {
        argv[n++] = "--app-id";
        argv[n++] = H_APP_ID;
        argv[n++] = "--app-certificate";
        argv[n++] = H_APP_CERT;
        argv[n++] = "--token-notice-secs";
        argv[n++] = notice;
    }
    if (!rate_limits) argv[n++] = "--no-rate-limits";
    for (int i = 0; extra && extra[i] && n < 47; i++) argv[n++] = extra[i];
    argv[n] = NULL;
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        dup2(fds[1], 2);
        close(fds[0]);
        close(fds[1]);
        execv(rtm2_bin, (char *const *)argv);
        fprintf(stderr, "cannot run %s: %s\n", rtm2_bin, strerror(errno));
        _exit(127);
    }
    close(fds[1]);
    s->pid = pid;
    s->err_fd = fds[0];
    for (int i = 0; i < H_MAX_SERVERS; i++) {
        if (h_server_pids[i] == 0) {
            h_server_pids[i] = pid;
            break;
        }
    }
    /* Read stderr until "rtm2 server listening on HOST:PORT" (bounded). */
    char line[1024];
    size_t len = 0;
    int64_t deadline = h_now_ms() + H_WAIT_MS;
    for (;;) {
        int64_t left = deadline - h_now_ms();
        if (left <= 0) break;
        struct pollfd p = {s->err_fd, POLLIN, 0};
        if (poll(&p, 1, (int)left) <= 0) break;
        ssize_t n = read(s->err_fd, line + len, sizeof line - 1 - len);
        if (n <= 0) break;
        len += (size_t)n;
        line[len] = 0;
        const char *at = strstr(line, "listening on ");
        if (at && strchr(at, '\n')) {
            at += strlen("listening on ");
            size_t k = 0;
            while (at[k] && at[k] != ' ' && at[k] != '\n' && k + 1 < sizeof s->endpoint) {
                s->endpoint[k] = at[k];
                k++;
            }
            s->endpoint[k] = 0;
            const char *colon = strrchr(s->endpoint, ':');
            s->port = colon ? atoi(colon + 1) : 0;
            if (pthread_create(&s->drain, NULL, h_drain, s) == 0) s->drain_started = 1;
            return s->port > 0 ? 0 : -1;
        }
        if (len + 1 >= sizeof line) len = 0;
    }
    if (getenv("RTM2_TEST_VERBOSE")) fprintf(stderr, "server output: %s\n", line);
    h_server_stop(s);
    return -1;
}

void h_server_stop(h_server *s) {
    if (s->pid > 0) {
        kill(s->pid, SIGTERM);
        int64_t deadline = h_now_ms() + 5000;
        int done = 0;
        while (h_now_ms() < deadline) {
            if (waitpid(s->pid, NULL, WNOHANG) == s->pid) {
                done = 1;
                break;
            }
            h_sleep_ms(10); /* polling a process exit; not test synchronisation */
        }
        if (!done) {
            kill(s->pid, SIGKILL);
            waitpid(s->pid, NULL, 0);
        }
        for (int i = 0; i < H_MAX_SERVERS; i++) {
            if (h_server_pids[i] == s->pid) h_server_pids[i] = 0;
        }
        s->pid = 0;
    }
    if (s->drain_started) {
        pthread_join(s->drain, NULL);
        s->drain_started = 0;
    }
    if (s->err_fd > 0) {
        close(s->err_fd);
        s->err_fd = -1;
    }
}

int h_unused_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return -1;
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = 0;
    socklen_t len = sizeof a;
    int port = -1;
    if (bind(fd, (struct sockaddr *)&a, sizeof a) == 0 && getsockname(fd, (struct sockaddr *)&a, &len) == 0) {
        port = ntohs(a.sin_port);
    }
    close(fd);
    return port;
}

rtm2_client *h_new_client(const char *user, const char *endpoint, h_recorder *rec) {
    rtm2_config *cfg = NULL;
    CHECK_OK(rtm2_config_new(H_APP_ID, user, &cfg));
    if (endpoint) CHECK_OK(rtm2_config_set_endpoint(cfg, endpoint));
    CHECK_OK(rtm2_config_set_parameters(cfg, "{\"reconnect_initial_backoff_ms\": 20}"));
    rtm2_listener l;
    if (rec) l = h_recorder_listener(rec);
    rtm2_client *c = NULL;
    CHECK_OK(rtm2_client_new(cfg, rec ? &l : NULL, &c));
    CHECK(c != NULL);
    rtm2_config_free(cfg);
    return c;
}

/* ---- ghosts ---- */

static void *h_ghost_drain(void *arg) {
    h_ghost *g = (h_ghost *)arg;
    char buf[4096];
    ssize_t n;
    while ((n = read(g->err_fd, buf, sizeof buf)) > 0) {
        if (getenv("RTM2_TEST_VERBOSE")) fwrite(buf, 1, (size_t)n, stderr);
    }
    return NULL;
}

int h_ghost_start(h_ghost *g, const char *rtm2_bin, const char *endpoint, const char *user, const char *channel,
                  const char *lock, const char *token) {
    memset(g, 0, sizeof *g);
    g->err_fd = -1;
    char lock_spec[256];
    const char *argv[20];
    int n = 0;
    argv[n++] = rtm2_bin;
    argv[n++] = "subscribe";
    argv[n++] = "--endpoint";
    argv[n++] = endpoint;
    argv[n++] = "--app-id";
    argv[n++] = H_APP_ID;
    argv[n++] = "--user-id";
    argv[n++] = user;
    argv[n++] = "--presence-timeout";
    argv[n++] = "5";
    if (token && *token) {
        argv[n++] = "--token";
        argv[n++] = token;
    }
    if (lock) {
        snprintf(lock_spec, sizeof lock_spec, "%s:%s", channel, lock);
        argv[n++] = "--acquire-lock";
        argv[n++] = lock_spec;
    }
    argv[n++] = channel;
    argv[n] = NULL;
    g->pid = h_spawn(argv, &g->err_fd);
    if (g->pid < 0) return -1;
    char line[4096], want[256];
    size_t len = 0;
    line[0] = 0;
    int64_t deadline = h_now_ms() + H_WAIT_MS;
    snprintf(want, sizeof want, "subscribed to %s", channel);
    int ok = h_read_until(g->err_fd, want, deadline, line, sizeof line, &len);
    if (ok && lock) {
        snprintf(want, sizeof want, "acquired lock %s", lock);
        ok = h_read_until(g->err_fd, want, deadline, line, sizeof line, &len);
    }
    if (!ok) {
        fprintf(stderr, "ghost %s did not start: %s\n", user, line);
        h_ghost_kill(g);
        return -1;
    }
    if (pthread_create(&g->drain, NULL, h_ghost_drain, g) == 0) g->drain_started = 1;
    return 0;
}

void h_ghost_kill(h_ghost *g) {
    if (g->pid > 0) {
        kill(g->pid, SIGKILL);
        waitpid(g->pid, NULL, 0);
        h_track_pid(g->pid, 0);
        g->pid = 0;
    }
    if (g->drain_started) {
        pthread_join(g->drain, NULL);
        g->drain_started = 0;
    }
    if (g->err_fd >= 0) {
        close(g->err_fd);
        g->err_fd = -1;
    }
}

/* ---- proxy ---- */

static int h_connect_local(int port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return -1;
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons((uint16_t)port);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static void h_proxy_close_pair(h_proxy *p, int i) {
    for (int j = 0; j < 2; j++) {
        if (p->pairs[i][j] >= 0) {
            shutdown(p->pairs[i][j], SHUT_RDWR);
            close(p->pairs[i][j]);
        }
        p->pairs[i][j] = -1;
    }
}

static int h_write_all(int fd, const char *buf, ssize_t n) {
    while (n > 0) {
        ssize_t w = write(fd, buf, (size_t)n);
        if (w <= 0) return -1;
        buf += w;
        n -= w;
    }
    return 0;
}

static void *h_proxy_run(void *arg) {
    h_proxy *p = (h_proxy *)arg;
    char buf[65536];
    for (;;) {
        pthread_mutex_lock(&p->mu);
        int stop = p->stop, cut = p->cut_requested, refusing = p->refusing;
        p->cut_requested = 0;
        pthread_mutex_unlock(&p->mu);
        if (stop) break;
        if (cut)
            for (int i = 0; i < H_PROXY_MAX_PAIRS; i++) h_proxy_close_pair(p, i);
        struct pollfd fds[2 + 2 * H_PROXY_MAX_PAIRS];
        int idx[2 + 2 * H_PROXY_MAX_PAIRS][2];
        int n = 0;
        fds[n].fd = p->listen_fd;
        fds[n].events = POLLIN;
        n++;
        fds[n].fd = p->wake[0];
        fds[n].events = POLLIN;
        n++;
        for (int i = 0; i < H_PROXY_MAX_PAIRS; i++) {
            if (p->pairs[i][0] < 0) continue;
            for (int j = 0; j < 2; j++) {
                fds[n].fd = p->pairs[i][j];
                fds[n].events = POLLIN;
                idx[n][0] = i;
                idx[n][1] = j;
                n++;
            }
        }
        if (poll(fds, (nfds_t)n, 1000) < 0) continue;
        if (fds[1].revents) {
            char drain[64];
            if (read(p->wake[0], drain, sizeof drain) < 0) { /* nothing to do */
            }
        }
        if (fds[0].revents & POLLIN) {
            int c = accept(p->listen_fd, NULL, NULL);
            if (c >= 0) {
                int slot = -1;
                for (int i = 0; i < H_PROXY_MAX_PAIRS && slot < 0; i++)
                    if (p->pairs[i][0] < 0) slot = i;
                int s = (refusing || slot < 0) ? -1 : h_connect_local(p->target_port);
                if (s < 0) {
                    close(c);
                } else {
                    p->pairs[slot][0] = c;
                    p->pairs[slot][1] = s;
                }
            }
        }
        for (int k = 2; k < n; k++) {
            if (!fds[k].revents) continue;
            int i = idx[k][0], j = idx[k][1];
            if (p->pairs[i][0] < 0) continue;
            ssize_t r = read(p->pairs[i][j], buf, sizeof buf);
            if (r <= 0 || h_write_all(p->pairs[i][1 - j], buf, r) != 0) h_proxy_close_pair(p, i);
        }
    }
    for (int i = 0; i < H_PROXY_MAX_PAIRS; i++) h_proxy_close_pair(p, i);
    return NULL;
}

int h_proxy_start(h_proxy *p, int target_port) {
    memset(p, 0, sizeof *p);
    for (int i = 0; i < H_PROXY_MAX_PAIRS; i++) p->pairs[i][0] = p->pairs[i][1] = -1;
    p->target_port = target_port;
    pthread_mutex_init(&p->mu, NULL);
    if (pipe(p->wake) != 0) return -1;
    p->listen_fd = socket(AF_INET, SOCK_STREAM, 0);
    if (p->listen_fd < 0) return -1;
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (bind(p->listen_fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(p->listen_fd, 16) != 0 ||
        getsockname(p->listen_fd, (struct sockaddr *)&a, &len) != 0)
        return -1;
    p->port = ntohs(a.sin_port);
    snprintf(p->endpoint, sizeof p->endpoint, "127.0.0.1:%d", p->port);
    return pthread_create(&p->thread, NULL, h_proxy_run, p) == 0 ? 0 : -1;
}

static void h_proxy_set(h_proxy *p, int refusing, int cut, int stop) {
    pthread_mutex_lock(&p->mu);
    p->refusing = refusing;
    p->cut_requested |= cut;
    p->stop |= stop;
    pthread_mutex_unlock(&p->mu);
    if (write(p->wake[1], "x", 1) < 0) { /* the thread polls again within a second anyway */
    }
}

void h_proxy_cut(h_proxy *p) {
    h_proxy_set(p, 1, 1, 0);
}

void h_proxy_restore(h_proxy *p) {
    h_proxy_set(p, 0, 0, 0);
}

void h_proxy_stop(h_proxy *p) {
    h_proxy_set(p, 1, 1, 1);
    pthread_join(p->thread, NULL);
    close(p->listen_fd);
    close(p->wake[0]);
    close(p->wake[1]);
    pthread_mutex_destroy(&p->mu);
}
