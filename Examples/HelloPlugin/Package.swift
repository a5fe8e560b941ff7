// swift-tools-version:6.1
// An out-of-tree Berth plugin: it depends on the SDK package alone and builds on its own
// (`swift build` in this folder), exactly as a third party's plugin would.
//
// Copied out of the Berth tree, point BERTH_SDK at the SDK folder of a Berth checkout:
//     BERTH_SDK=/path/to/berth/SDK swift build
import PackageDescription

/// Where the Berth SDK package is: $BERTH_SDK, else the SDK of the Berth tree this folder sits in.
let sdk = Context.environment["BERTH_SDK"] ?? "../../SDK"
/// The SDK's export list: the shared object exports `berth_plugin_entry` and nothing else, so
/// that its copies of the SDK and SwiftProtobuf stay its own (see docs/writing-plugins.md).
let exports = (sdk.hasPrefix("/") ? sdk : "\(Context.packageDirectory)/\(sdk)") + "/plugin-exports.map"

let package = Package(
    name: "HelloPlugin",
    products: [
        .library(name: "HelloPlugin", type: .dynamic, targets: ["HelloPlugin"])
    ],
    dependencies: [
        .package(path: sdk),
        // Default traits off: BinaryDelimitedStreams imports full Foundation, which the daemon does not load.
        .package(url: "https://github.com/apple/swift-protobuf.git", exact: "1.39.0", traits: []),
    ],
    targets: [
        .target(
            name: "HelloPlugin",
            dependencies: [
                .product(name: "BerthPluginSDK", package: "SDK"),
                .product(name: "BerthProto", package: "SDK"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ],
            linkerSettings: [.unsafeFlags(["-Xlinker", "--version-script=\(exports)"])]
        ),
        // The SDK's conformance kit against this package's own shared object: run
        // `swift build && swift test` as root (the cases mount layers).
        .testTarget(
            name: "HelloPluginTests",
            dependencies: [.product(name: "BerthPluginKit", package: "SDK")]
        ),
    ]
)
