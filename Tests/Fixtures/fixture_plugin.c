/*
 * A deliberately configurable C plugin for the loader's and the kernel's tests. Each -D flag
 * breaks one rule of berth_plugin.h or exercises one promise of it; with no flag it is a
 * well-formed plugin of the header's current minor.
 *   FIXTURE_NO_ENTRY       exports no berth_plugin_entry
 *   FIXTURE_BAD_SIGNATURE  descriptor signature is wrong
 *   FIXTURE_ABI_MAJOR=N    descriptor claims ABI major N
 *   FIXTURE_SHORT_MODULE   descriptor claims a struct_size smaller than ABI 1.0's
 *   FIXTURE_SHORT_OPS      the ops table claims 16 bytes and ends right before an unreadable page
 *   FIXTURE_ABI_1_0        a plugin of ABI 1.0: 1.0 sizes, each struct ending right before an
 *                          unreadable page, so a host that reads a 1.1 field of it crashes
 *   FIXTURE_ABI_FUTURE     a plugin of a later minor (1.9): every struct larger than the
 *                          host's, with trailing fields the host must skip; two registrations
 *   FIXTURE_FAIL_START     start() replies FAILED_PRECONDITION
 *   FIXTURE_SKIP_START     start() replies SKIP
 *   FIXTURE_ID=name        registration id (default "fixture")
 *   FIXTURE_REQUIRES=type  registration requires that type
 *   FIXTURE_API            offers /berth.fixture.v1.Fixture/Echo and .../Hang to clients
 *
 * Methods: ".../Echo" answers the request bytes; ".../Hang" writes "fixture: Hang arrived" to
 * stderr and never answers (cancels are counted in fixture_cancelled_calls); any other method answers the call's namespace, then (a contract
 * breach the host must survive) answers the same call a second time.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "berth_plugin.h"

#ifndef FIXTURE_ID
#define FIXTURE_ID "fixture"
#endif
#ifndef FIXTURE_ABI_MAJOR
#define FIXTURE_ABI_MAJOR BERTH_ABI_MAJOR
#endif

static int instances;
/** How many calls the host cancelled; read by the tests through dlsym. */
int fixture_cancelled_calls;

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

static int ends_with(const char *text, const char *suffix) {
    size_t a = strlen(text), b = strlen(suffix);
    return a >= b && strcmp(text + a - b, suffix) == 0;
}

static void fixture_call(void *instance, const berth_call_context *ctx, const char *method,
                         const uint8_t *request, size_t len, void *reply_ctx, berth_reply_fn reply) {
    (void)instance;
    if (ends_with(method, "/Hang")) {
        /* Announced on stderr, so a test knows the call is in flight before it acts on it. */
        static const char arrived[] = "fixture: Hang arrived\n";
        ssize_t written = write(2, arrived, sizeof arrived - 1);
        (void)written;
        return;
    }
    if (ends_with(method, "/Echo")) {
        reply(reply_ctx, BERTH_CODE_OK, request, len);
        return;
    }
    reply(reply_ctx, BERTH_CODE_OK, (const uint8_t *)ctx->namespace_name, strlen(ctx->namespace_name));
    reply(reply_ctx, BERTH_CODE_OK, request, len);
}

static void fixture_stop(void *instance, void *reply_ctx, berth_reply_fn reply) {
    (void)instance;
    reply(reply_ctx, BERTH_CODE_OK, NULL, 0);
}

static void fixture_destroy(void *instance) { (void)instance; instances--; }

static void fixture_cancel(void *instance, void *reply_ctx) {
    (void)instance;
    (void)reply_ctx;
    __atomic_add_fetch(&fixture_cancelled_calls, 1, __ATOMIC_SEQ_CST);
}

static const berth_plugin_ops fixture_ops = {
    sizeof(berth_plugin_ops), fixture_create, fixture_start, fixture_call, fixture_stop, fixture_destroy,
    fixture_cancel,
};

#ifdef FIXTURE_REQUIRES
static const char *const fixture_requires[] = {FIXTURE_REQUIRES};
#define REQUIRES fixture_requires, 1
#else
#define REQUIRES NULL, 0
#endif

#ifdef FIXTURE_API
static const char *const fixture_api[] = {"/berth.fixture.v1.Fixture/Echo", "/berth.fixture.v1.Fixture/Hang"};
#define API fixture_api, 2
#else
#define API NULL, 0
#endif

static const berth_registration fixture_registrations[] = {{
    sizeof(berth_registration), "io.berth.fixture.v1", FIXTURE_ID, REQUIRES, NULL, 0, NULL, 0, &fixture_ops, NULL, API,
}};

__attribute__((unused)) static const berth_module fixture_module = {
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

/* Copies `size` bytes of `value` to the end of a readable page followed by an unreadable one. */
__attribute__((unused)) static void *before_guard_page(const void *value, size_t size) {
    long page = sysconf(_SC_PAGESIZE);
    char *pages = mmap(NULL, 2 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (pages == MAP_FAILED) abort();
    mprotect(pages + page, page, PROT_NONE);
    char *at = pages + page - size;
    memcpy(at, value, size);
    return at;
}

#if defined(FIXTURE_ABI_1_0) || defined(FIXTURE_SHORT_OPS)
static const berth_module *guarded_module(void) {
    static berth_module module;
    berth_plugin_ops ops = fixture_ops;
#ifdef FIXTURE_SHORT_OPS
    ops.struct_size = 16;
    const void *ops_at = before_guard_page(&ops, 16);
#else
    ops.struct_size = BERTH_OPS_SIZE_1_0;
    const void *ops_at = before_guard_page(&ops, BERTH_OPS_SIZE_1_0);
#endif
    berth_registration registration = fixture_registrations[0];
    registration.struct_size = BERTH_REGISTRATION_SIZE_1_0;
    registration.ops = ops_at;
    module = fixture_module;
    module.abi_minor = 0;
    module.struct_size = BERTH_MODULE_SIZE_1_0;
    module.registration_size = BERTH_REGISTRATION_SIZE_1_0;
    module.ops_size = BERTH_OPS_SIZE_1_0;
    module.registrations = before_guard_page(&registration, BERTH_REGISTRATION_SIZE_1_0);
    return before_guard_page(&module, BERTH_MODULE_SIZE_1_0);
}
#endif

#ifdef FIXTURE_ABI_FUTURE
/* What a later minor may look like: the same fields, then more. */
typedef struct { berth_plugin_ops base; void (*later)(void); uint64_t more[3]; } future_ops;
typedef struct { berth_registration base; const char *later; uint64_t more[5]; } future_registration;
typedef struct { berth_module base; uint64_t more[2]; } future_module;

static const future_ops ops_1_9 = {.base = {sizeof(future_ops), fixture_create, fixture_start, fixture_call,
                                            fixture_stop, fixture_destroy, fixture_cancel}};
static const future_registration registrations_1_9[] = {
    {.base = {sizeof(future_registration), "io.berth.fixture.v1", FIXTURE_ID, REQUIRES, NULL, 0, NULL, 0,
              &ops_1_9.base, NULL, API}, .later = "ignored"},
    {.base = {sizeof(future_registration), "io.berth.fixture.v1", FIXTURE_ID "-two", NULL, 0, NULL, 0, NULL, 0,
              &ops_1_9.base, NULL, NULL, 0}, .later = "ignored"},
};
static const future_module module_1_9 = {.base = {BERTH_MODULE_SIGNATURE, BERTH_ABI_MAJOR, 9, sizeof(future_module),
                                                  sizeof(future_registration), sizeof(future_ops), "fixture 1.9 (gcc)",
                                                  &registrations_1_9[0].base, 2}};
#endif

#ifndef FIXTURE_NO_ENTRY
const berth_module *berth_plugin_entry(void) {
#if defined(FIXTURE_ABI_1_0) || defined(FIXTURE_SHORT_OPS)
    return guarded_module();
#elif defined(FIXTURE_ABI_FUTURE)
    return &module_1_9.base;
#else
    return &fixture_module;
#endif
}
#else
const berth_module *some_other_symbol(void) { return &fixture_module; }
#endif
