/*
 * A Berth plugin written in plain C, to show that the contract needs no Swift.
 * Build: gcc -shared -fPIC -I ../../SDK/Sources/CBerthPlugin/include -o libecho.so echo_plugin.c
 *
 * It registers io.berth.example.v1.echo-c. Its one method, /berth.example.v1.Echo/Echo,
 * answers the request bytes unchanged; any other method answers UNIMPLEMENTED. On start it
 * logs a line and publishes an /example/started event with an empty payload.
 */
#include <stdlib.h>
#include <string.h>

#include "berth_plugin.h"

struct echo_instance {
    const berth_host_api *host;
};

static void *echo_create(void *registration_data, const berth_init_params *params) {
    (void)registration_data;
    struct echo_instance *self = calloc(1, sizeof *self);
    if (self != NULL) self->host = params->host;
    return self;
}

static void echo_start(void *instance, void *reply_ctx, berth_reply_fn reply) {
    struct echo_instance *self = instance;
    static const char line[] = "echo-c plugin started";
    self->host->log(self->host->host_data, BERTH_LOG_INFO, line, sizeof line - 1);
    self->host->publish(self->host->host_data, "", "/example/started", "google.protobuf.Empty", NULL, 0);
    reply(reply_ctx, BERTH_CODE_OK, NULL, 0);
}

static void echo_call(void *instance, const berth_call_context *ctx, const char *method,
                      const uint8_t *request, size_t request_len, void *reply_ctx, berth_reply_fn reply) {
    (void)instance;
    (void)ctx;
    if (strcmp(method, "/berth.example.v1.Echo/Echo") == 0) {
        reply(reply_ctx, BERTH_CODE_OK, request, request_len);
        return;
    }
    static const char unknown[] = "echo-c serves only /berth.example.v1.Echo/Echo";
    reply(reply_ctx, BERTH_CODE_UNIMPLEMENTED, (const uint8_t *)unknown, sizeof unknown - 1);
}

static void echo_stop(void *instance, void *reply_ctx, berth_reply_fn reply) {
    (void)instance;
    reply(reply_ctx, BERTH_CODE_OK, NULL, 0);
}

static void echo_destroy(void *instance) { free(instance); }

static const berth_plugin_ops echo_ops = {
    .struct_size = sizeof(berth_plugin_ops),
    .create = echo_create,
    .start = echo_start,
    .call = echo_call,
    .stop = echo_stop,
    .destroy = echo_destroy,
};

/* Echo is also offered to clients: berthd serves it on its socket, forwarding the bytes. */
static const char *const echo_api[] = {"/berth.example.v1.Echo/Echo"};

static const berth_registration echo_registrations[] = {{
    .struct_size = sizeof(berth_registration),
    .type = "io.berth.example.v1",
    .id = "echo-c",
    .ops = &echo_ops,
    .api_methods = echo_api,
    .api_methods_count = 1,
}};

static berth_module echo_module = {
    .signature = BERTH_MODULE_SIGNATURE,
    .abi_major = BERTH_ABI_MAJOR,
    .abi_minor = BERTH_ABI_MINOR,
    .struct_size = sizeof(berth_module),
    .registration_size = sizeof(berth_registration),
    .ops_size = sizeof(berth_plugin_ops),
    .registrations = echo_registrations,
    .registrations_count = 1,
};

const berth_module *berth_plugin_entry(void) {
    echo_module.build_info = berth_c_compiler_info();
    return &echo_module;
}
