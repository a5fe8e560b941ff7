// swift-tools-version:6.1
// An out-of-tree Berth plugin: it depends on the SDK package alone and builds on its own
// (`swift build` in this folder), exactly as a third party's plugin would.
import PackageDescription

let package = Package(
    name: "HelloPlugin",
    products: [
        .library(name: "HelloPlugin", type: .dynamic, targets: ["HelloPlugin"]),
    ],
    dependencies: [
        .package(path: "../../SDK"),
        .package(url: "https://github.com/apple/swift-protobuf.git", exact: "1.39.0"),
    ],
    targets: [
        .target(
            name: "HelloPlugin",
            dependencies: [
                .product(name: "BerthPluginSDK", package: "SDK"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ]
        ),
    ]
)
