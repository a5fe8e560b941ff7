import BerthPluginSDK
import Foundation

/// The content store plugin at its first stage: it lays out its blob and ingest directories;
/// the Content operations are not built yet and say so.
final class ContentPlugin: BerthPlugin {
    private let host: PluginHost
    let methods: MethodTable

    init(host: PluginHost) {
        self.host = host
        var methods = MethodTable()
        for name in ["Info", "Update", "List", "Delete", "Read", "Status", "ListStatuses", "Write", "Abort"] {
            methods.unimplemented("/containerd.services.content.v1.Content/\(name)",
                                  because: "content operations are not built yet in Berth")
        }
        self.methods = methods
    }

    func start() async throws {
        for folder in ["blobs/sha256", "ingest"] {
            try FileManager.default.createDirectory(atPath: "\(host.rootDirectory)/\(folder)",
                                                    withIntermediateDirectories: true,
                                                    attributes: [.posixPermissions: 0o700])
        }
    }
}
