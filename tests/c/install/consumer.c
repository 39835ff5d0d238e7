/* A tiny program built against an installed rtm2 (scripts/test-c: pkg-config, the static
 * library, and find_package(rtm2)): logs in on the embedded server, publishes to itself, and
 * receives the message. Exit 0 on success. */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <rtm2.h>

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int completions = 0, failures = 0, received = 0;

static void on_done(void *ud, uint64_t id, int32_t status, const rtm2_result *r) {
    (void)ud;
    (void)id;
    pthread_mutex_lock(&mu);
    completions++;
    if (status != RTM2_OK) {
        failures++;
        fprintf(stderr, "%s: %s %s\n", r->operation, rtm2_status_name(status), r->reason);
    }
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
}

static void on_message(void *ud, const rtm2_message_event *ev) {
    (void)ud;
    pthread_mutex_lock(&mu);
    if (ev->payload_len == 2 && memcmp(ev->payload, "hi", 2) == 0) received = 1;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
}

static int wait_for(int *value, int want) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += 10;
    pthread_mutex_lock(&mu);
    while (*value < want && pthread_cond_timedwait(&cv, &mu, &ts) == 0) {
    }
    int ok = *value >= want && failures == 0;
    pthread_mutex_unlock(&mu);
    return ok;
}

int main(void) {
    rtm2_config *cfg = NULL;
    rtm2_client *c = NULL;
    rtm2_listener l;
    memset(&l, 0, sizeof l);
    l.struct_size = sizeof l;
    l.on_message = on_message;
    if (rtm2_config_new("0123456789abcdef0123456789abcdef", "consumer", &cfg) != RTM2_OK) return 1;
    if (rtm2_client_new(cfg, &l, &c) != RTM2_OK) return 2;
    rtm2_config_free(cfg);
    rtm2_client_login(c, NULL, on_done, NULL, NULL);
    if (!wait_for(&completions, 1)) return 3;
    rtm2_client_subscribe(c, "self", RTM2_SUBSCRIBE_DEFAULT, on_done, NULL, NULL);
    if (!wait_for(&completions, 2)) return 4;
    rtm2_client_publish(c, "self", "hi", 2, NULL, on_done, NULL, NULL);
    if (!wait_for(&completions, 3) || !wait_for(&received, 1)) return 5;
    rtm2_client_free(c);
    printf("consumer: rtm2 %s works\n", rtm2_version());
    return 0;
}
