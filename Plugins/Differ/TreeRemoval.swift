import BerthPluginSDK
import Glibc

/// Removing entries and whole subtrees relative to a directory descriptor, never following a
/// symlink (each step is fstatat/openat with O_NOFOLLOW, unlinkat in the parent).
enum TreeRemoval {
    /// Removes `name` in `parent` and everything below it, if it exists.
    static func remove(_ name: String, in parent: Int32) throws {
        guard !name.isEmpty, name != ".", name != "..", !name.contains("/") else { return }
        var status = stat()
        guard fstatat(parent, name, &status, AT_SYMLINK_NOFOLLOW) == 0 else { return }
        if status.st_mode & S_IFMT == S_IFDIR {
            let child = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            try check(child < 0 ? -1 : 0, "open", name)
            defer { close(child) }
            try empty(child)
            try check(unlinkat(parent, name, AT_REMOVEDIR), "rmdir", name)
        } else {
            try check(unlinkat(parent, name, 0), "unlink", name)
        }
    }

    /// Removes everything inside the directory `fd`.
    static func empty(_ fd: Int32) throws {
        for name in try names(in: fd) { try remove(name, in: fd) }
    }

    /// The names in directory `fd`, without "." and "..".
    static func names(in fd: Int32) throws -> [String] {
        let listing = dup(fd)
        guard listing >= 0, let directory = fdopendir(listing) else {
            if listing >= 0 { close(listing) }
            throw PluginError(.internal, "listing a directory failed: \(String(cString: strerror(errno)))")
        }
        // fdopendir shares the offset with `fd`'s other duplicates: start at the beginning.
        rewinddir(directory)
        var names = [String]()
        while let item = readdir(directory) {
            let name = withUnsafeBytes(of: item.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if name != "." && name != ".." { names.append(name) }
        }
        closedir(directory)
        return names
    }

    private static func check(_ result: Int32, _ what: String, _ path: String) throws {
        guard result == 0 else {
            throw PluginError(.internal, "\(what) \(path): \(String(cString: strerror(errno)))")
        }
    }
}
