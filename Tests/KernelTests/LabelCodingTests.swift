import Foundation
import Testing

@testable import Kernel

@Suite struct LabelCodingTests {
    static let samples: [[String: String]] = [
        [:],
        ["a": "b"],
        ["containerd.io/gc.ref.content.l.0": "sha256:abc", "k": ""],
        ["quote\"back\\slash": "tab\tnew\nline\rcarriage", "ctl": "\u{1}\u{1F}", "slash/": "é ü 日本 🚢"],
    ]

    @Test(arguments: samples)
    func labels_roundTrip_exactly(labels: [String: String]) {
        #expect(LabelCoding.decode(LabelCoding.encode(labels)) == labels)
    }

    /// Rows written with Foundation's encoder (Berth 0.1 before this coder) still read.
    @Test(arguments: samples)
    func labels_writtenByFoundation_decode(labels: [String: String]) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        let text = String(decoding: try encoder.encode(labels), as: UTF8.self)
        #expect(LabelCoding.decode(text) == labels)
        // And Foundation reads what we write.
        #expect(try JSONDecoder().decode([String: String].self, from: Data(LabelCoding.encode(labels).utf8)) == labels)
    }

    @Test(arguments: ["", "{", "[]", "{\"a\":1}", "{\"a\":\"b\"", "{\"a\":\"b\"}x", "{\"a\" \"b\"}", "{\"a\":\"\\x\"}", "{\"a\":\"\\ud800\"}"])
    func labels_malformed_areRejected(text: String) {
        #expect(LabelCoding.decode(text) == nil)
    }
}
