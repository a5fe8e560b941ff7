import Kernel
import Testing

@testable import Filters

@Suite struct FilterTests {
    let fields: [String: String] = ["topic": "/tasks/exit", "namespace": "default", "labels.a.b": "c"]

    private func lookup(_ path: [String]) -> String? { fields[path.joined(separator: ".")] }

    @Test func filter_equalAndQuotedField_matches() throws {
        #expect(try Filter(parsing: #"topic==/tasks/exit,labels."a.b"==c"#).matches(lookup))
        #expect(try !Filter(parsing: "topic==/tasks/start").matches(lookup))
    }

    @Test func filter_notEqualPresenceAndRegex_behave() throws {
        #expect(try Filter(parsing: "namespace!=other").matches(lookup))
        #expect(try Filter(parsing: "namespace").matches(lookup))
        #expect(try !Filter(parsing: "missing").matches(lookup))
        #expect(try Filter(parsing: "topic~=^/tasks/").matches(lookup))
        #expect(try !Filter(parsing: "topic~=^/snapshot/").matches(lookup))
    }

    @Test func filterSet_severalFilters_areOred_emptyMatchesAll() throws {
        #expect(try FilterSet(["topic==/x", "namespace==default"]).matches(lookup))
        #expect(try !FilterSet(["topic==/x", "namespace==other"]).matches(lookup))
        #expect(try FilterSet([]).matches(lookup))
    }

    @Test func filter_malformed_isInvalidArgumentNamingTheFilter() {
        #expect(throws: BerthError(.invalidArgument, "filter \"topic==\": expected a value at offset 7")) {
            try Filter(parsing: "topic==")
        }
        #expect(throws: BerthError(.invalidArgument, "filter \"labels.\"a==b\": unterminated quoted string at offset 12")) {
            try Filter(parsing: #"labels."a==b"#)
        }
    }
}
