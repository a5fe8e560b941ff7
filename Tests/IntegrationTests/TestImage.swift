import Foundation

/// Busybox images for the ctr tests, built offline with umoci from Debian's busybox-static.
enum TestImage {
    /// The applets the runtime tests run.
    static let runtimeApplets = "sh true false echo cat sleep hostname ps id ls touch kill pwd env head"

    /// Builds an OCI layout in DIR/oci (unpacked tree left at DIR/bundle/rootfs for `--rootfs`)
    /// and returns DIR/image.tar with its manifest digest: tag `latest` holds /bin/busybox, a
    /// link per applet in `applets` (space-separated) and the text files `files` (path → text);
    /// each of `commandTags` (tag → argv) adds a tag whose config runs that command.
    static func build(
        in directory: String, applets: String, files: [String: String] = [:],
        commandTags: [String: [String]] = [:]
    ) throws -> (tarball: String, manifest: String) {
        let writes = files.sorted { $0.key < $1.key }.map { "printf '%s\\n' '\($0.value)' > 'bundle/rootfs/\($0.key)'" }
        let tags = commandTags.sorted { $0.key < $1.key }.map { tag, argv in
            "umoci config --image oci:latest --tag \(tag) " + argv.map { "--config.cmd '\($0)'" }.joined(separator: " ")
        }
        let script =
            ([
                "cd \(directory)", "umoci init --layout oci", "umoci new --image oci:latest",
                "umoci unpack --rootless --image oci:latest bundle", "mkdir -p bundle/rootfs/bin",
                "cp /bin/busybox bundle/rootfs/bin/busybox",
                "for applet in \(applets); do ln -s busybox bundle/rootfs/bin/$applet; done",
            ]
            + writes + ["umoci repack --image oci:latest bundle"] + tags + ["cd oci && tar -cf ../image.tar ."])
            .joined(separator: "\n")
        let built = try run("/bin/sh", ["-ec", script])
        guard built.status == 0 else { throw Failure("building the test image failed: \(built.stderr)") }
        let index = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: directory + "/oci/index.json"))) as? [String: Any]
        guard let manifests = index?["manifests"] as? [[String: Any]], let digest = manifests.first?["digest"] as? String else {
            throw Failure("the test image has no manifest")
        }
        return (directory + "/image.tar", digest)
    }
}
