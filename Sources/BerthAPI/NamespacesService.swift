import BerthProto
import Filters
import GRPCCore
import Kernel
import SwiftProtobuf

/// containerd.services.namespaces.v1.Namespaces over the kernel's metadata store; each change
/// is published as a /namespaces/* event.
struct NamespacesService: Containerd_Services_Namespaces_V1_Namespaces.SimpleServiceProtocol {
    let metadata: MetadataStore
    let events: EventBus

    typealias Namespace = Containerd_Services_Namespaces_V1_Namespace

    func get(request: Containerd_Services_Namespaces_V1_GetNamespaceRequest, context: ServerContext) async throws
        -> Containerd_Services_Namespaces_V1_GetNamespaceResponse
    {
        let record = try await metadata.namespace(request.name)
        return .with { $0.namespace = Self.message(record) }
    }

    func list(request: Containerd_Services_Namespaces_V1_ListNamespacesRequest, context: ServerContext) async throws
        -> Containerd_Services_Namespaces_V1_ListNamespacesResponse
    {
        let filters = try FilterSet([request.filter])
        let records = try await metadata.namespaces().filter { record in
            filters.matches { path in
                switch path.first {
                case "name": record.name
                case "labels" where path.count == 2: record.labels[path[1]]
                default: nil
                }
            }
        }
        return .with { $0.namespaces = records.map(Self.message) }
    }

    func create(request: Containerd_Services_Namespaces_V1_CreateNamespaceRequest, context: ServerContext) async throws
        -> Containerd_Services_Namespaces_V1_CreateNamespaceResponse
    {
        let record = try await metadata.createNamespace(NamespaceRecord(name: request.namespace.name, labels: request.namespace.labels))
        events.publish(
            topic: "/namespaces/create", namespace: record.name,
            Containerd_Events_NamespaceCreate.with {
                $0.name = record.name
                $0.labels = record.labels
            })
        return .with { $0.namespace = Self.message(record) }
    }

    func update(request: Containerd_Services_Namespaces_V1_UpdateNamespaceRequest, context: ServerContext) async throws
        -> Containerd_Services_Namespaces_V1_UpdateNamespaceResponse
    {
        let record = try await metadata.updateNamespace(
            NamespaceRecord(name: request.namespace.name, labels: request.namespace.labels),
            paths: request.updateMask.paths)
        events.publish(
            topic: "/namespaces/update", namespace: record.name,
            Containerd_Events_NamespaceUpdate.with {
                $0.name = record.name
                $0.labels = record.labels
            })
        return .with { $0.namespace = Self.message(record) }
    }

    func delete(request: Containerd_Services_Namespaces_V1_DeleteNamespaceRequest, context: ServerContext) async throws
        -> Google_Protobuf_Empty
    {
        try await metadata.deleteNamespace(request.name)
        events.publish(
            topic: "/namespaces/delete", namespace: request.name,
            Containerd_Events_NamespaceDelete.with { $0.name = request.name })
        return Google_Protobuf_Empty()
    }

    private static func message(_ record: NamespaceRecord) -> Namespace {
        .with {
            $0.name = record.name
            $0.labels = record.labels
        }
    }
}
