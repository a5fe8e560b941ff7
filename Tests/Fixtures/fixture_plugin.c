/*
 * A deliberately configurable C plugin for the loader's refusal tests. Each -D flag breaks
 * one rule of berth_plugin.h; with no flag it is a well-formed plugin.
 *   FIXTURE_NO_ENTRY       exports no berth_plugin_entry
 *   FIXTURE_BAD_SIGNATURE  descriptor signature is wrong
 *   FIXTURE_ABI_MAJOR=N    descriptor claims ABI major N
 *   FIXTURE_SHORT_MODULE   descriptor claims a struct_size smaller than ABI 1.0's
 *   FIXTURE_FAIL_START     start() replies FAILED_PRECONDITION
 *   FIXTURE_SKIP_START     start() replies SKIP
 *   FIXTURE_ID=name        registration id (default "fixture")
 *   FIXTURE_REQUIRES=type  registration requires that type
 */
#include <stdlib.h>
#include <string.h>

#include "berth_plugin.h"

#ifndef FIXTURE_ID
#define FIXTURE_ID "fixture"
#endif
#ifndef FIXTURE_ABI_MAJOR
#define FIXTURE_ABI_MAJOR BERTH_ABI_MAJOR
#endif

static int instances;

static void *fixture_create(void *data, const berth_init_params *params) {
    (void)data;
    (void)params;
    instances++;
    return &instances;
}

static void fixture_start(void *instance, void *reply_ctx, berth_reply_fn reply) {
    (void)instance;
#if defined(FIXTURE_FAIL_START)
    static const char why[] = "fixture refuses to start: no widget";
    reply(reply_ctx, BERTH_CODE_FAILED_PRECONDITION, (const uint8_t *)why, sizeof why - 1);
#elif defined(FIXTURE_SKIP_START)
    static const char why[] = "skip plugin: fixture has nothing to do here";
    reply(reply_ctx, BERTH_CODE_SKIP, (const uint8_t *)why, sizeof why - 1);
#else
    reply(reply_ctx, BERTH_CODE_OK, NULL, 0);
#endif
}

static void fixture_call(void *instance, const berth_call_context *ctx, const char *method,
                         const uint8_t *request, size_t len, void *reply_ctx, berth_reply_fn reply) {
    (void)instance;
    (void)method;
    /* Answers the namespace it was called in, then (a contract breach the host must survive)
     * answers the same call a second time. */
    reply(reply_ctx, BERTH_CODE_OK, (const uint8_t *)ctx->namespace_name, strlen(ctx->namespace_name));
    reply(reply_ctx, BERTH_CODE_OK, request, len);
}

static void fixture_stop(void *instance, void *reply_ctx, berth_reply_fn reply) {
    (void)instance;
    reply(reply_ctx, BERTH_CODE_OK, NULL, 0);
}

static void fixture_destroy(void *instance) { (void)instance; instances--; }

static const berth_plugin_ops fixture_ops = {
    sizeof(berth_plugin_ops), fixture_create, fixture_start, fixture_call, fixture_stop, fixture_destroy,
};

#ifdef FIXTURE_REQUIRES
static const char *const fixture_requires[] = {FIXTURE_REQUIRES};
#define REQUIRES fixture_requires, 1
#else
#define REQUIRES NULL, 0
#endif

static const berth_registration fixture_registrations[] = {{
    sizeof(berth_registration), "io.berth.fixture.v1", FIXTURE_ID, REQUIRES, NULL, 0, NULL, 0, &fixture_ops, NULL,
}};

static const berth_module fixture_module = {
#ifdef FIXTURE_BAD_SIGNATURE
    0x0123456789abcdefULL,
#else
    BERTH_MODULE_SIGNATURE,
#endif
    FIXTURE_ABI_MAJOR, BERTH_ABI_MINOR,
#ifdef FIXTURE_SHORT_MODULE
    8,
#else
    sizeof(berth_module),
#endif
    sizeof(berth_registration), sizeof(berth_plugin_ops), "fixture (gcc)", fixture_registrations, 1,
};

#ifndef FIXTURE_NO_ENTRY
const berth_module *berth_plugin_entry(void) { return &fixture_module; }
#else
const berth_module *some_other_symbol(void) { return &fixture_module; }
#endif
