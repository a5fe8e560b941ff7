/*
 * berth_plugin.h: the whole contract between berthd and a plugin shared object.
 *
 * Why C: Swift has no stable ABI on Linux, so a plugin built by another compiler cannot
 * exchange Swift values with the host. Only the C types below and plain bytes cross this
 * boundary. Requests, replies and event payloads are protobuf-encoded messages of the same
 * types the gRPC API uses (Protos/ in the Berth tree), so a plugin needs no Swift at all.
 *
 * Lifecycle, as the host drives it:
 *   1. dlopen(path); dlsym(BERTH_PLUGIN_ENTRY_SYMBOL); call it once.
 *   2. Check the returned module: signature, ABI major, struct sizes. Nothing else in the
 *      module is touched before these checks pass.
 *   3. For each registration that plugin.conf enables, in dependency order:
 *        instance = ops->create(...);   synchronous, cheap, no I/O
 *        ops->start(instance, ...);     asynchronous; the reply says ok, skip or error
 *   4. While started: ops->call(instance, method, request, ...) any number of times, from
 *      any thread, concurrently. Each call is answered exactly once through its reply.
 *   5. At shutdown, in reverse start order: ops->stop(instance, ...), then
 *      ops->destroy(instance). destroy is also called after a failed or skipped start.
 *
 * Worked example: to prepare a snapshot, the kernel asks the snapshotter (a driver of layers on
 * disk; the kernel keeps the records) to create layer 42 on top of layers 7 and 3 with
 *   ops->call(instance, &ctx, "/berth.snapshots.v1.Driver/Create",
 *             bytes_of(berth.snapshots.v1.CreateRequest{id: 42, parents: [7, 3], ...}),
 *             reply_ctx, reply);
 * and the plugin later answers reply(reply_ctx, BERTH_CODE_OK, bytes_of(CreateResponse{mounts}))
 * or reply(reply_ctx, BERTH_CODE_NOT_FOUND, "layer 7 does not exist"). Each contract is a
 * service in Protos/berth/ (snapshots/v1/driver.proto, content/v1/store.proto,
 * diff/v1/differ.proto); its method paths are generated once, for both sides, as
 * BerthProto's `BerthContracts` (Swift) and berth_contracts.h (C).
 *
 * Cancellation and deadlines (ABI 1.1): the call context carries the caller's deadline, and the
 * host calls ops->cancel(instance, reply_ctx) when the caller gives up (client gone, deadline
 * passed, daemon stopping). From then on the host has answered the call itself; the plugin
 * should stop the work soon, and may still reply (the reply is ignored).
 *
 * Versioning: a change that breaks an existing field or meaning bumps BERTH_ABI_MAJOR and the
 * host refuses plugins of another major. Structs only grow at their end (minor bumps); each
 * starts with its own size so that the reader uses only the fields the writer knew about:
 * the host accepts any size from the frozen 1.0 size (BERTH_*_SIZE_1_0 below) up, reads a field
 * only when the writer's size covers it, and treats fields beyond it as absent (NULL, 0).
 *   1.0  first release.
 *   1.1  berth_call_context.deadline_ns; berth_plugin_ops.cancel; berth_registration.api_methods.
 *
 * Ownership: every pointer passed into a function is borrowed for the duration of that call
 * only (or, for a reply, of that reply); copy what you keep. Exceptions are stated per field.
 */
#ifndef BERTH_PLUGIN_H
#define BERTH_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Major version: the host refuses a module whose major differs from its own. */
#define BERTH_ABI_MAJOR 1
/** Minor version: grows when fields are appended; any minor of the same major loads. */
#define BERTH_ABI_MINOR 1
/** First eight bytes of every module descriptor: "BERTHPL1" read as a little-endian integer. */
#define BERTH_MODULE_SIGNATURE 0x314C504854524542ULL
/** The one symbol a plugin shared object exports. */
#define BERTH_PLUGIN_ENTRY_SYMBOL "berth_plugin_entry"

/**
 * Outcome codes. 0 to 16 are exactly the gRPC status codes, so the host maps them onto the
 * API without translation. BERTH_CODE_SKIP is only valid as the reply to start().
 */
typedef enum berth_code {
    BERTH_CODE_OK = 0,
    BERTH_CODE_CANCELLED = 1,
    BERTH_CODE_UNKNOWN = 2,
    BERTH_CODE_INVALID_ARGUMENT = 3,
    BERTH_CODE_DEADLINE_EXCEEDED = 4,
    BERTH_CODE_NOT_FOUND = 5,
    BERTH_CODE_ALREADY_EXISTS = 6,
    BERTH_CODE_PERMISSION_DENIED = 7,
    BERTH_CODE_RESOURCE_EXHAUSTED = 8,
    BERTH_CODE_FAILED_PRECONDITION = 9,
    BERTH_CODE_ABORTED = 10,
    BERTH_CODE_OUT_OF_RANGE = 11,
    BERTH_CODE_UNIMPLEMENTED = 12,
    BERTH_CODE_INTERNAL = 13,
    BERTH_CODE_UNAVAILABLE = 14,
    BERTH_CODE_DATA_LOSS = 15,
    BERTH_CODE_UNAUTHENTICATED = 16,
    /** start() only: the plugin cannot run here (platform, missing kernel feature); not an error. */
    BERTH_CODE_SKIP = 1000
} berth_code;

/** Severity for berth_host_api.log. */
typedef enum berth_log_level {
    BERTH_LOG_DEBUG = 0,
    BERTH_LOG_INFO = 1,
    BERTH_LOG_WARNING = 2,
    BERTH_LOG_ERROR = 3
} berth_log_level;

/**
 * Answers one asynchronous operation, exactly once, from any thread.
 * code == BERTH_CODE_OK: data holds the protobuf-encoded reply message (may be empty).
 * otherwise: data holds a UTF-8 message that names the object concerned.
 * data is borrowed: the receiver copies it before returning.
 */
typedef void (*berth_reply_fn)(void *reply_ctx, int32_t code, const uint8_t *data, size_t len);

/** Per-request facts from the API edge. Strings are NUL-terminated, possibly empty. */
typedef struct berth_call_context {
    uint32_t struct_size;
    /** The containerd namespace of the request (gRPC header containerd-namespace). */
    const char *namespace_name;
    /** The lease the request runs under (gRPC header containerd-lease), or "". */
    const char *lease;
    /* ---- ABI 1.1 ---- */
    /**
     * When the caller stops waiting, in CLOCK_MONOTONIC nanoseconds; 0 when it waits without
     * limit (a task's Wait). The host cancels the call then (ops->cancel).
     */
    int64_t deadline_ns;
} berth_call_context;

/**
 * Services the host offers to a plugin. The pointer stays valid from create() until destroy()
 * returns. Check struct_size before using a field appended after 1.0.
 */
typedef struct berth_host_api {
    uint32_t struct_size;
    uint16_t abi_major;
    uint16_t abi_minor;
    /** Opaque; pass it back as the first argument of every function below. */
    void *host_data;
    /** Writes one log line attributed to the calling plugin. */
    void (*log)(void *host_data, int32_t level, const char *message, size_t len);
    /**
     * Publishes an event on the kernel's event bus. topic such as "/snapshot/prepare";
     * namespace_name may be ""; type_url names the payload message
     * ("containerd.events.SnapshotPrepare"); payload is its protobuf encoding.
     * Never blocks on subscribers.
     */
    void (*publish)(void *host_data, const char *namespace_name, const char *topic,
                    const char *type_url, const uint8_t *payload, size_t payload_len);
    /**
     * Calls a method on another started plugin, named "type.id" (for example
     * "io.containerd.content.v1.content") or by type alone when exactly one plugin has it.
     * The answer arrives through reply, exactly once.
     */
    void (*call)(void *host_data, const char *target, const berth_call_context *ctx,
                 const char *method, const uint8_t *request, size_t request_len,
                 void *reply_ctx, berth_reply_fn reply);
} berth_host_api;

/** What create() receives. Borrowed for the duration of create(), except host (see above). */
typedef struct berth_init_params {
    uint32_t struct_size;
    /** This plugin's own persistent directory, created by the host (mode 0700). */
    const char *root_dir;
    /** This plugin's own volatile directory (sockets, mounts), created by the host. */
    const char *state_dir;
    /** The plugin's table from plugin.conf, less the host's keys, as a JSON object. */
    const uint8_t *config_json;
    size_t config_json_len;
    const berth_host_api *host;
} berth_init_params;

/** The functions of one registration. All are required (none may be NULL). */
typedef struct berth_plugin_ops {
    uint32_t struct_size;
    /**
     * Makes an instance; synchronous, no blocking I/O. Returns NULL only when out of memory.
     * registration_data is the value from the registration.
     */
    void *(*create)(void *registration_data, const berth_init_params *params);
    /** Brings the instance up (open stores, reload state). Replies OK, SKIP (data: why) or an error. */
    void (*start)(void *instance, void *reply_ctx, berth_reply_fn reply);
    /**
     * Runs one method, named by its gRPC path ("/package.Service/Method"). An unknown method
     * replies BERTH_CODE_UNIMPLEMENTED. Must not block the calling thread for long.
     */
    void (*call)(void *instance, const berth_call_context *ctx, const char *method,
                 const uint8_t *request, size_t request_len, void *reply_ctx, berth_reply_fn reply);
    /** Ends in-flight work and releases resources held on the system; replies once done. */
    void (*stop)(void *instance, void *reply_ctx, berth_reply_fn reply);
    /** Frees the instance; no call on it follows. */
    void (*destroy)(void *instance);
    /* ---- ABI 1.1 ---- */
    /**
     * Optional (may be NULL). The caller of the call that got reply_ctx has given up; the host
     * has already answered it with CANCELLED or DEADLINE_EXCEEDED. Stop that work soon; a later
     * reply to reply_ctx is harmless and ignored. Called at most once per call, from any
     * thread, possibly before or while ops->call runs for that reply_ctx.
     */
    void (*cancel)(void *instance, void *reply_ctx);
} berth_plugin_ops;

/** One plugin inside a module. Every pointer is owned by the module and lives as long as it. */
typedef struct berth_registration {
    uint32_t struct_size;
    /** Versioned type URI such as "io.containerd.snapshotter.v1". */
    const char *type;
    /** Unique within its type, such as "overlayfs". */
    const char *id;
    /** Types that must be started before this one; count entries. */
    const char *const *requires;
    size_t requires_count;
    /** Platforms as "os" or "os/arch" ("linux/amd64"); none means every platform. */
    const char *const *platforms;
    size_t platforms_count;
    /** Capability words reported through introspection; may be none. */
    const char *const *capabilities;
    size_t capabilities_count;
    const berth_plugin_ops *ops;
    /** Handed back to ops->create. */
    void *registration_data;
    /* ---- ABI 1.1 ---- */
    /**
     * gRPC methods this plugin offers to clients, as paths ("/example.hello.v1.Hello/Greet");
     * count entries, possibly none. berthd serves each on its API socket, beside the built-in
     * services, and forwards the request bytes to ops->call unchanged (unary methods only). A
     * path that a built-in service or another plugin already serves is refused with an error
     * naming both.
     */
    const char *const *api_methods;
    size_t api_methods_count;
} berth_registration;

/** What the entry symbol returns; static storage owned by the module. */
typedef struct berth_module {
    /** Always BERTH_MODULE_SIGNATURE; checked before anything else. */
    uint64_t signature;
    uint16_t abi_major;
    uint16_t abi_minor;
    uint32_t struct_size;
    /** sizeof(berth_registration) and sizeof(berth_plugin_ops) as the module was compiled. */
    uint32_t registration_size;
    uint32_t ops_size;
    /** Free text for diagnostics: compiler, SDK and target the module was built with. */
    const char *build_info;
    const berth_registration *registrations;
    size_t registrations_count;
} berth_module;

/** Type of the entry symbol. Called once per dlopen; must not fail or block. */
typedef const berth_module *(*berth_plugin_entry_fn)(void);

/*
 * The sizes of ABI 1.0 on LP64 targets, frozen: the smallest sizes a host of major 1 accepts.
 * They never change; the asserts below keep the fields of 1.0 where 1.0 put them.
 */
#define BERTH_CALL_CONTEXT_SIZE_1_0 24u
#define BERTH_HOST_API_SIZE_1_0 40u
#define BERTH_INIT_PARAMS_SIZE_1_0 48u
#define BERTH_OPS_SIZE_1_0 48u
#define BERTH_REGISTRATION_SIZE_1_0 88u
#define BERTH_MODULE_SIZE_1_0 48u

#if defined(__LP64__) && !defined(__cplusplus)
_Static_assert(offsetof(berth_call_context, lease) + sizeof(void *) == BERTH_CALL_CONTEXT_SIZE_1_0, "call context 1.0");
_Static_assert(offsetof(berth_host_api, call) + sizeof(void *) == BERTH_HOST_API_SIZE_1_0, "host api 1.0");
_Static_assert(offsetof(berth_init_params, host) + sizeof(void *) == BERTH_INIT_PARAMS_SIZE_1_0, "init params 1.0");
_Static_assert(offsetof(berth_plugin_ops, destroy) + sizeof(void *) == BERTH_OPS_SIZE_1_0, "ops 1.0");
_Static_assert(offsetof(berth_registration, registration_data) + sizeof(void *) == BERTH_REGISTRATION_SIZE_1_0, "registration 1.0");
_Static_assert(sizeof(berth_module) == BERTH_MODULE_SIZE_1_0, "module 1.0");
#endif

/**
 * Copies a struct written by the other side into dst (of dst_size bytes): the first
 * min(src's struct_size, dst_size) bytes, zeroing the rest, never reading past src's size.
 * Every struct above starts with its uint32_t size, so any side can read any other's.
 */
static inline void berth_read_struct(void *dst, size_t dst_size, const void *src) {
    uint32_t src_size;
    __builtin_memcpy(&src_size, src, sizeof src_size);
    size_t n = src_size < dst_size ? src_size : dst_size;
    __builtin_memset(dst, 0, dst_size);
    __builtin_memcpy(dst, src, n);
}

/** The SDK's compiler facts, for build_info (C compilers only see this header). */
static inline const char *berth_c_compiler_info(void) {
#if defined(__clang__)
    return "clang " __clang_version__;
#elif defined(__GNUC__)
    return "gcc " __VERSION__;
#else
    return "unknown C compiler";
#endif
}

#ifdef __cplusplus
}
#endif

#endif /* BERTH_PLUGIN_H */
