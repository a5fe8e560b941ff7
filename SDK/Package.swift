// swift-tools-version:6.1
// The Berth plugin SDK: the C contract (CBerthPlugin), the API messages (BerthProto) and the
// typed Swift layer over the contract (BerthPluginSDK). It is its own package so that an
// out-of-tree plugin depends on it alone, without the daemon's gRPC stack.
import PackageDescription

let package = Package(
    name: "BerthSDK",
    products: [
        .library(name: "CBerthPlugin", targets: ["CBerthPlugin"]),
        .library(name: "BerthProto", targets: ["BerthProto"]),
        .library(name: "BerthPluginSDK", targets: ["BerthPluginSDK"]),
        // Conformance kits: a plugin's tests load its shared object and run the cases of its
        // contract through the C ABI, with no daemon.
        .library(name: "BerthPluginKit", targets: ["BerthPluginKit"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-protobuf.git", exact: "1.39.0", traits: [])
    ],
    targets: [
        .target(name: "CBerthPlugin"),
        .target(
            name: "BerthProto",
            dependencies: [.product(name: "SwiftProtobuf", package: "swift-protobuf")]
        ),
        .target(
            name: "BerthPluginKit",
            dependencies: [
                "CBerthPlugin",
                "BerthPluginSDK",
                "BerthProto",
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ]
        ),
        .target(
            name: "BerthPluginSDK",
            dependencies: [
                "CBerthPlugin",
                "BerthProto",
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ]
        ),
    ]
)
