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
 * Worked example: the kernel asks a snapshotter to prepare a snapshot with
 *   ops->call(instance, &ctx, "/containerd.services.snapshots.v1.Snapshots/Prepare",
 *             bytes_of(PrepareSnapshotRequest), reply_ctx, reply);
 * and the plugin later answers reply(reply_ctx, BERTH_CODE_OK, bytes_of(PrepareSnapshotResponse))
 * or reply(reply_ctx, BERTH_CODE_NOT_FOUND, "parent \"base\" not found").
 *
 * Versioning: a change that breaks an existing field or meaning bumps BERTH_ABI_MAJOR and the
 * host refuses plugins of another major. Structs only grow at their end (minor bumps); each
 * starts with its own size so that the reader uses only the fields the writer knew about.
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
#define BERTH_ABI_MINOR 0
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

/** Minimum sizes the host accepts: the sizes of ABI 1.0. */
#define BERTH_MODULE_SIZE_1_0 ((uint32_t)sizeof(berth_module))
#define BERTH_REGISTRATION_SIZE_1_0 ((uint32_t)sizeof(berth_registration))
#define BERTH_OPS_SIZE_1_0 ((uint32_t)sizeof(berth_plugin_ops))

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
