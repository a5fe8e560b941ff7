import Foundation
import Testing

@testable import Kernel

/// Each refusal of the shared-object loader, with the message an operator would read.
@Suite struct LoaderTests {
    let directory = TestSupport.temporaryDirectory("loader")

    private func fixture(_ flags: [String], _ name: String) throws -> String {
        try TestSupport.buildCPlugin(TestSupport.fixture, flags: flags, into: directory, name: name)
    }

    @Test func load_wellFormedCPlugin_readsRegistration() throws {
        let path = try fixture(["-DFIXTURE_REQUIRES=\"io.containerd.event.v1\""], "good")
        let module = try SharedObjectLoader.load(path: path)
        #expect(module.entries.map(\.name.description) == ["io.berth.fixture.v1.fixture"])
        #expect(module.entries.first?.requires == ["io.containerd.event.v1"])
        #expect(module.buildInfo == "fixture (gcc)")
        #expect(module.abiMajor == 1)
    }

    @Test func load_missingFile_isNotFoundNamingFile() {
        #expect(throws: BerthError(.notFound, "plugin file \(directory)/absent.so does not exist")) {
            try SharedObjectLoader.load(path: "\(directory)/absent.so")
        }
    }

    @Test func load_notASharedObject_isRefusedWithLoaderError() throws {
        let path = "\(directory)/text.so"
        try "not elf".write(toFile: path, atomically: true, encoding: .utf8)
        let error = try #require(throws: BerthError.self) { try SharedObjectLoader.load(path: path) }
        #expect(error.code == .failedPrecondition)
        #expect(error.message.hasPrefix("plugin file \(path) cannot be loaded: "))
    }

    @Test func load_missingEntrySymbol_namesSymbol() throws {
        let path = try fixture(["-DFIXTURE_NO_ENTRY"], "noentry")
        let error = try #require(throws: BerthError.self) { try SharedObjectLoader.load(path: path) }
        #expect(error.message.hasPrefix("plugin file \(path) does not export the entry symbol berth_plugin_entry"))
    }

    @Test func load_wrongSignature_saysExpectedAndFound() throws {
        let path = try fixture(["-DFIXTURE_BAD_SIGNATURE"], "badsig")
        #expect(
            throws: BerthError(
                .failedPrecondition,
                "plugin file \(path) is not a Berth plugin module: expected signature 0x314c504854524542, found 0x0123456789abcdef")
        ) {
            try SharedObjectLoader.load(path: path)
        }
    }

    @Test func load_wrongABIMajor_saysExpectedAndFound() throws {
        let path = try fixture(["-DFIXTURE_ABI_MAJOR=2"], "abi2")
        #expect(
            throws: BerthError(
                .failedPrecondition,
                "plugin file \(path) was built for plugin ABI 2.1; this berthd speaks ABI 1.x (1.1)")
        ) {
            try SharedObjectLoader.load(path: path)
        }
    }

    @Test func load_truncatedDescriptor_saysSizes() throws {
        let path = try fixture(["-DFIXTURE_SHORT_MODULE"], "short")
        let error = try #require(throws: BerthError.self) { try SharedObjectLoader.load(path: path) }
        #expect(error.message.hasPrefix("plugin file \(path): module descriptor is 8 bytes, expected at least "))
    }

    @Test func load_pluginOfABI1_0_loadsReadingNothingPastItsStructs() throws {
        // Each struct of this module ends right before an unreadable page: reading a 1.1 field
        // (ops.cancel, registration.api_methods) would crash the test process.
        let path = try fixture(["-DFIXTURE_ABI_1_0", "-DFIXTURE_REQUIRES=\"io.containerd.event.v1\""], "abi10")
        let module = try SharedObjectLoader.load(path: path)
        #expect(module.abiMinor == 0)
        #expect(module.entries.map(\.name.description) == ["io.berth.fixture.v1.fixture"])
        #expect(module.entries.first?.requires == ["io.containerd.event.v1"])
        #expect(module.entries.first?.apiMethods == [])
        #expect(module.entries.first?.ops.cancel == nil)
        #expect(module.entries.first?.ops.destroy != nil)
    }

    @Test func load_pluginOfLaterMinor_loadsSkippingFieldsItDoesNotKnow() throws {
        let path = try fixture(["-DFIXTURE_ABI_FUTURE", "-DFIXTURE_API"], "abi19")
        let module = try SharedObjectLoader.load(path: path)
        #expect(module.abiMinor == 9)
        #expect(module.buildInfo == "fixture 1.9 (gcc)")
        // Two registrations, read with the module's own (larger) stride.
        #expect(module.entries.map(\.name.description) == ["io.berth.fixture.v1.fixture", "io.berth.fixture.v1.fixture-two"])
        #expect(module.entries[0].apiMethods == ["/berth.fixture.v1.Fixture/Echo", "/berth.fixture.v1.Fixture/Hang"])
        #expect(module.entries[1].apiMethods == [])
        #expect(module.entries[0].ops.cancel != nil)
    }

    @Test func load_truncatedOpsTable_isRefusedBeforeReadingPastIt() throws {
        // The 16-byte table ends right before an unreadable page: reading create (at 8) is
        // fine, reading stop or destroy would crash the test process.
        let path = try fixture(["-DFIXTURE_SHORT_OPS"], "shortops")
        #expect(
            throws: BerthError(
                .failedPrecondition,
                "plugin file \(path): plugin io.berth.fixture.v1.fixture ops table is 16 bytes, expected at least 48 for ABI 1.0")
        ) {
            try SharedObjectLoader.load(path: path)
        }
    }
}
