import Foundation

/// A directory under the system's temporary directory that a test owns. Call `remove()` when
/// the test is done, usually with `defer`.
struct TemporaryDirectory: Sendable {
    let path: String

    /// Creates a new, empty directory named `modkit-PREFIX-XXXXXX`.
    init(prefix: String) throws {
        let base = FileManager.default.temporaryDirectory.path
        var template = Array("\(base)/modkit-\(prefix)-XXXXXX".utf8CString)
        guard let created = mkdtemp(&template) else {
            throw SubprocessError(description: "cannot create a temporary directory in \(base): \(String(cString: strerror(errno)))")
        }
        path = String(cString: created)
    }

    /// Returns the path of `name` inside the directory.
    func file(_ name: String) -> String {
        path + "/" + name
    }

    func write(_ contents: String, to name: String) throws -> String {
        let file = file(name)
        try contents.write(toFile: file, atomically: false, encoding: .utf8)
        return file
    }

    func remove() {
        try? FileManager.default.removeItem(atPath: path)
    }
}
