// swift-tools-version:6.1
// Berth: a container daemon built as an actor-based microkernel. The kernel loads every
// subsystem from plugin.conf as a shared object through the C contract in SDK/.
import PackageDescription

/// Each in-tree plugin is a shared object built exactly as a third party would build one.
let pluginNames = ["Snapshotter", "Content", "Differ", "RuntimeLinux", "RuntimeWindowsStub"]

let pluginProducts: [Product] = pluginNames.map {
    .library(name: "Berth\($0)", type: .dynamic, targets: [$0])
}

/// Libraries a plugin links besides the SDK (statically, into its own shared object).
let pluginExtras: [String: [Target.Dependency]] = [
    // BoringSSL's SHA-256 uses the CPU's SHA instructions where present.
    "Content": [.product(name: "Crypto", package: "swift-crypto")],
    // zlib writes gzip layers; the layer's diff id is a SHA-256 like a blob's.
    // openat2 for resolving entry paths inside the tree (Plugins/CDiffer).
    "Differ": ["CZlib", "CDiffer", .product(name: "Crypto", package: "swift-crypto")],
    // dladdr and statfs, which Swift's Glibc module does not import.
    "RuntimeLinux": ["CRuntimeLinux"],
]

/// A plugin's shared object exports its entry point and nothing else (SDK/plugin-exports.map).
let pluginExports = "\(Context.packageDirectory)/SDK/plugin-exports.map"

let pluginTargets: [Target] = pluginNames.map {
    .target(
        name: $0,
        dependencies: [
            .product(name: "BerthPluginSDK", package: "SDK"),
            .product(name: "BerthProto", package: "SDK"),
            .product(name: "SwiftProtobuf", package: "swift-protobuf"),
        ] + pluginExtras[$0, default: []],
        path: "Plugins/\($0)",
        linkerSettings: [.unsafeFlags(["-Xlinker", "--version-script=\(pluginExports)"])]
    )
}

let package = Package(
    name: "Berth",
    products: [
        .executable(name: "berthd", targets: ["berthd"]),
        .executable(name: "berth", targets: ["berth"]),
        .executable(name: "berth-keeper", targets: ["berth-keeper"]),
    ] + pluginProducts,
    dependencies: [
        .package(path: "SDK"),
        // Default traits off: BinaryDelimitedStreams imports full Foundation, which the daemon does not load.
        .package(url: "https://github.com/apple/swift-protobuf.git", exact: "1.39.0", traits: []),
        .package(url: "https://github.com/grpc/grpc-swift-2.git", exact: "2.4.3"),
        .package(url: "https://github.com/grpc/grpc-swift-nio-transport.git", exact: "2.9.2"),
        .package(url: "https://github.com/grpc/grpc-swift-protobuf.git", exact: "2.4.1"),
        .package(url: "https://github.com/apple/swift-log.git", exact: "1.16.2"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", exact: "1.8.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", exact: "2.13.0"),
        .package(url: "https://github.com/apple/swift-crypto.git", exact: "4.5.2"),
        .package(url: "https://github.com/apple/swift-nio.git", exact: "2.101.3"),
        .package(url: "https://github.com/apple/swift-nio-http2.git", exact: "1.46.0"),
    ],
    targets: [
        .systemLibrary(
            name: "CSQLite", path: "Sources/CSQLite", pkgConfig: "sqlite3",
            providers: [.apt(["libsqlite3-dev"])]),
        // libc calls of the Linux runtime plugin that need _GNU_SOURCE (Plugins/CRuntimeLinux).
        .target(name: "CRuntimeLinux", path: "Plugins/CRuntimeLinux"),
        // openat2(2) for the differ plugin, which glibc does not wrap (Plugins/CDiffer).
        .target(name: "CDiffer", path: "Plugins/CDiffer"),
        .systemLibrary(name: "CZlib", path: "Sources/CZlib", pkgConfig: "zlib", providers: [.apt(["zlib1g-dev"])]),
        .target(
            name: "Kernel",
            dependencies: [
                "CSQLite",
                .product(name: "CBerthPlugin", package: "SDK"),
                .product(name: "BerthProto", package: "SDK"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // containerd's filter language (lists, events, introspection); a value type over the kernel's errors.
        .target(name: "Filters", dependencies: ["Kernel"]),
        // Storage services above the kernel: snapshot, content, lease and image records, filters,
        // diff and garbage collection. The kernel cannot see them; they see the kernel.
        .target(
            name: "Storage",
            dependencies: [
                "Kernel", "Filters",
                .product(name: "BerthProto", package: "SDK"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // Services that describe and run containers, above the kernel like the storage ones.
        .target(
            name: "Runtime",
            dependencies: [
                "Kernel", "Filters", "Storage",
                .product(name: "BerthProto", package: "SDK"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ]
        ),
        .target(
            name: "BerthAPI",
            dependencies: [
                "Kernel", "Storage", "Runtime", "Filters",
                .product(name: "BerthProto", package: "SDK"),
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCProtobuf", package: "grpc-swift-protobuf"),
                .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHPACK", package: "swift-nio-http2"),
            ]
        ),
        .executableTarget(
            name: "berthd",
            dependencies: [
                "Kernel", "Storage", "Runtime", "BerthAPI",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ]
        ),
        // The per-container keeper of the Linux runtime: a small single-threaded C program that
        // sets a container up, stays its parent and holds its exit status and stdio, so that
        // berthd never forks and containers outlive it (Helpers/keeper/README.md).
        .executableTarget(
            name: "berth-keeper",
            path: "Helpers/keeper",
            exclude: ["README.md"],
            // SwiftPM links executables through swiftc, which adds the Swift runtime's start-up
            // object and libswiftCore; the keeper is plain C and one runs per container, so it
            // leaves both out (-nostartfiles) and links statically: ~150 KiB PSS per keeper
            // instead of ~480 KiB (Helpers/keeper/README.md, "Memory").
            linkerSettings: [.linkedLibrary("seccomp"), .linkedLibrary("cap"), .unsafeFlags(["-nostartfiles", "-static-executable"])]
        ),
        .executableTarget(
            name: "berth",
            dependencies: [
                "BerthAPI",
                .product(name: "BerthProto", package: "SDK"),
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .executableTarget(
            name: "berth-bench",
            dependencies: [
                "BerthAPI",
                .product(name: "BerthProto", package: "SDK"),
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
                .product(name: "NIOCore", package: "swift-nio"),
            ],
            path: "Benchmarks/Client"
        ),
        .testTarget(
            name: "ConformanceTests",
            dependencies: [
                "Kernel", "Storage",
                .product(name: "BerthPluginKit", package: "SDK"),
                .product(name: "BerthPluginSDK", package: "SDK"),
                .product(name: "BerthProto", package: "SDK"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // The runtime conformance kit (BerthPluginKit) against the Linux runtime, native and oci.
        .testTarget(
            name: "RuntimeTests",
            dependencies: [
                .product(name: "BerthPluginKit", package: "SDK"),
                .product(name: "BerthProto", package: "SDK"),
            ],
            // Read from the source tree by path, not bundled.
            exclude: ["Fixtures"]
        ),
        .testTarget(
            name: "KernelTests",
            dependencies: ["Kernel", "Filters", .product(name: "BerthProto", package: "SDK")]
        ),
        .testTarget(
            name: "StorageTests",
            dependencies: ["Kernel", "Storage", "Filters", .product(name: "BerthProto", package: "SDK")]
        ),
        .testTarget(
            name: "RuntimeServiceTests",
            dependencies: ["Kernel", "Runtime", .product(name: "BerthProto", package: "SDK")]
        ),
        .testTarget(
            name: "IntegrationTests",
            dependencies: [
                "Kernel", "Storage", "BerthAPI",
                .product(name: "BerthProto", package: "SDK"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
            ]
        ),
    ] + pluginTargets
)
