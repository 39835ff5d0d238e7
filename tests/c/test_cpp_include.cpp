// The rtm2 header included from C++ with -Wall -Wextra -Werror -pedantic: types, constants and
// functions are usable, and the library links.
#include "rtm2.h"

#include <cstdio>
#include <cstring>

static void on_done(void *user_data, uint64_t request_id, int32_t status, const rtm2_result *result) {
    (void)user_data;
    (void)request_id;
    (void)status;
    (void)result;
}

int main() {
    rtm2_listener listener;
    std::memset(&listener, 0, sizeof listener);
    listener.struct_size = sizeof listener;
    rtm2_completion_cb cb = on_done;
    rtm2_publish_options options;
    rtm2_publish_options_init(&options);
    if (options.struct_size != sizeof options || options.channel_type != RTM2_CHANNEL_TYPE_MESSAGE) return 1;
    if (std::strcmp(rtm2_version(), RTM2_VERSION) != 0) return 2;
    if (std::strcmp(rtm2_status_name(RTM2_ERR_NOT_LOGIN), "NOT_LOGIN") != 0) return 3;
    if (rtm2_client_login(nullptr, nullptr, cb, nullptr, nullptr) != RTM2_ERR_NULL_PARAMETER) return 4;
    std::printf("C++ include: %s (ABI %d)\n", rtm2_version(), RTM2_ABI_VERSION);
    return 0;
}
