import Foundation

/// Paths of the package and of what lies beside it, found from this source file's location.
enum PackagePaths {
    /// The package root: this file is `Tests/ModKitTests/Support/PackagePaths.swift`.
    static let root: String = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0 ..< 4 { url.deleteLastPathComponent() }
        return url.standardizedFileURL.path
    }()

    /// The directory that contains `modkit/module.h`.
    static let includeDirectory = root + "/Sources/CModKit/include"

    /// The Lua 5.4 corpus, expected at `../shared/corpus/lua-5.4` beside the package root.
    static let luaCorpus = URL(fileURLWithPath: root + "/../shared/corpus/lua-5.4").standardizedFileURL.path

    /// Returns the Lua corpus directory, or throws an error that names the expected path.
    static func requireLuaCorpus() throws -> String {
        guard FileManager.default.fileExists(atPath: luaCorpus + "/onelua.c") else {
            throw SubprocessError(description: "Lua corpus not found: \(luaCorpus)/onelua.c does not exist; clone the repository with ../shared beside it")
        }
        return luaCorpus
    }

    /// Copies `testes/` of the Lua corpus into `directory` and returns the path of the copy.
    /// The suite writes files into its working directory (`time.txt`, files under `libs/`),
    /// and the corpus may be read-only, so the copy gets fresh, writable permissions.
    static func writableLuaTestSuite(in directory: TemporaryDirectory) throws -> String {
        let source = try requireLuaCorpus() + "/testes"
        let copy = directory.file("testes")
        try copyTree(from: source, to: copy)
        return copy
    }

    /// Copies directories and regular files. The copies get the default permissions.
    private static func copyTree(from source: String, to destination: String) throws {
        let manager = FileManager.default
        try manager.createDirectory(atPath: destination, withIntermediateDirectories: false)
        for name in try manager.contentsOfDirectory(atPath: source) {
            var isDirectory: ObjCBool = false
            _ = manager.fileExists(atPath: source + "/" + name, isDirectory: &isDirectory)
            if isDirectory.boolValue {
                try copyTree(from: source + "/" + name, to: destination + "/" + name)
            } else {
                let contents = try Data(contentsOf: URL(fileURLWithPath: source + "/" + name))
                try contents.write(to: URL(fileURLWithPath: destination + "/" + name))
            }
        }
    }
}
