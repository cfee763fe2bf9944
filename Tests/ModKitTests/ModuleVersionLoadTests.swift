import Foundation
import Testing
@testable import ModKit

private func provider(point: String) -> String {
    """
    #include <modkit/module.h>
    MODULE_LICENSE("GPL");
    struct point { \(point) };
    int add_points(const struct point *a, const struct point *b) { return a->x + b->x; }
    EXPORT_SYMBOL(add_points);
    """
}

private let user = """
    #include <modkit/module.h>
    MODULE_LICENSE("GPL");
    struct point { int x; int y; };
    int add_points(const struct point *a, const struct point *b);
    static int user_init(void)
    {
        struct point p = {1, 2};
        pr_info("sum %d\\n", add_points(&p, &p));
        return 0;
    }
    static void user_exit(void) {}
    module_init(user_init);
    module_exit(user_exit);
    """

/// Runs `modkit build` in `directory` and fails the test when it fails.
@discardableResult
private func build(_ arguments: [String], in directory: TemporaryDirectory) async throws -> ProcessResult {
    let result = try await ModkitTool.run(["build"] + arguments, currentDirectory: directory.path)
    #expect(result.status == 0, "\(result)")
    return result
}

/// A module with `vermagic` from another ABI version and no header.
private let oldModule = """
    static const char vermagic[] __attribute__((used, section(".modinfo"))) = "vermagic=modkit-0 x86_64";
    static const char license[] __attribute__((used, section(".modinfo"))) = "license=GPL";
    int old_function(void) { return 1; }
    """

@Suite("Version checks at load")
struct ModuleVersionLoadTests {
    /// Builds the provider with `struct point { int x; int y; }`, the user against its
    /// Module.symvers, then the provider again with `point` as given.
    private func buildOutdatedPair(_ test: ModuleTestHost, point: String) async throws -> (provider: String, user: String) {
        let directory = test.directory
        _ = try directory.write(provider(point: "int x; int y;"), to: "provider.c")
        _ = try directory.write(user, to: "user.c")
        try await build(["provider.c"], in: directory)
        try await build(["--symvers", "Module.symvers", "user.c"], in: directory)
        _ = try directory.write(provider(point: point), to: "provider.c")
        try await build(["provider.c"], in: directory)
        return (directory.file("provider.o"), directory.file("user.o"))
    }

    @Test("changed export type is rejected")
    func mismatchRejected() async throws {
        let test = try ModuleTestHost()
        defer { test.finish() }
        let (providerObject, userObject) = try await buildOutdatedPair(test, point: "int x; int y; int z;")
        _ = try test.host.load(files: [providerObject])
        #expect {
            try test.host.load(files: [userObject])
        } throws: { error in
            guard let error = error as? LoadError else { return false }
            return error.kind == .symbolVersionMismatch && error.symbol == "add_points"
                && error.description.hasPrefix("\(userObject): user: disagrees about version of symbol add_points\n>>> the module was built against CRC 0x")
        }
        #expect(test.host.module(named: "user") == nil)
        #expect(test.host.module(named: "provider")?.referenceCount == 0)
    }

    @Test("forced load of a mismatch taints F")
    func mismatchForced() async throws {
        let test = try ModuleTestHost()
        defer { test.finish() }
        let (providerObject, userObject) = try await buildOutdatedPair(test, point: "long x; long y;")
        let exporter = try test.host.load(files: [providerObject])
        let module = try test.host.load(files: [userObject], options: .force)
        #expect(module.taint == .forcedLoad)
        #expect(exporter.taint == [])
        #expect(test.host.taint == .forcedLoad)
        #expect(test.log.messages(of: "user").contains("disagrees about version of symbol add_points, loaded by force; the host is tainted (F)"))
    }

    @Test("matching versions load untainted")
    func matchingLoads() async throws {
        let test = try ModuleTestHost()
        defer { test.finish() }
        let (providerObject, userObject) = try await buildOutdatedPair(test, point: "int x; int y;")
        _ = try test.host.load(files: [providerObject])
        let module = try test.host.load(files: [userObject])
        #expect(module.taint == [])
        #expect(test.host.taint == [])
    }

    @Test("module without versions taints F")
    func unversionedTaints() async throws {
        let test = try ModuleTestHost()
        defer { test.finish() }
        let providerObject = try await test.compile(provider(point: "int x; int y;"), name: "provider")
        let userObject = try await test.compile(user, name: "user")
        let exporter = try test.host.load(files: [providerObject])
        let module = try test.host.load(files: [userObject])
        #expect(exporter.taint == [])
        #expect(module.taint == .forcedLoad)
        #expect(test.log.messages(of: "user").contains("no versions for imported symbols (_modkit_printk); build it with modkit build; the host is tainted (F)"))
    }

    @Test("host option skips the unversioned taint")
    func unversionedOptionOff() async throws {
        let directory = try TemporaryDirectory(prefix: "versions")
        defer { directory.remove() }
        let log = LogCollector()
        var options = log.hostOptions()
        options.taintsUnversionedModules = false
        let host = ModuleHost(options: options)
        defer { host.removeAll() }
        let object = try await ObjectBuilder.compile(user.replacingOccurrences(of: "add_points(&p, &p)", with: "p.x"), name: "user", in: directory)
        let module = try host.load(files: [object])
        #expect(module.taint == [])
        #expect(host.taint == [])
        #expect(log.messages(of: "user") == ["sum 1"])
    }

    @Test("import missing from the version table taints F")
    func missingEntryTaints() async throws {
        let test = try ModuleTestHost()
        defer { test.finish() }
        _ = try test.directory.write(provider(point: "int x; int y;"), to: "provider.c")
        _ = try test.directory.write(user, to: "user.c")
        try await build(["provider.c"], in: test.directory)
        let built = try await build(["user.c"], in: test.directory)
        #expect(built.standardError == "modkit build: warning: user: no symbol version for add_points: no Module.symvers given with --symvers exports it\n")
        _ = try test.host.load(files: [test.directory.file("provider.o")])
        let module = try test.host.load(files: [test.directory.file("user.o")])
        #expect(module.taint == .forcedLoad)
        #expect(test.log.messages(of: "user").contains("no symbol version for add_points; the host is tainted (F)"))
    }

    @Test("exporter without CRCs is not checked")
    func unversionedExporter() async throws {
        let test = try ModuleTestHost()
        defer { test.finish() }
        let providerObject = try await test.compile(provider(point: "int x; int y;"), name: "provider")
        _ = try test.directory.write(user, to: "user.c")
        try await build(["user.c"], in: test.directory)
        _ = try test.host.load(files: [providerObject])
        let module = try test.host.load(files: [test.directory.file("user.o")])
        #expect(module.taint == [])
    }

    @Test("plain object using only libc is not tainted F")
    func plainObjectUntainted() async throws {
        let test = try ModuleTestHost()
        defer { test.finish() }
        let object = try await test.compile("#include <string.h>\nsize_t plain_length(const char *s) { return strlen(s); }\n", name: "plain")
        let module = try test.host.load(files: [object])
        #expect(!module.taint.contains(.forcedLoad))
    }

    @Test("vermagic mismatch is rejected")
    func vermagicRejected() async throws {
        let test = try ModuleTestHost()
        defer { test.finish() }
        let object = try await test.compile(oldModule, name: "old")
        #expect {
            try test.host.load(files: [object])
        } throws: { error in
            (error as? LoadError)?.kind == .badVersionMagic && (error as? LoadError)?.description == """
                \(object): old: version magic 'modkit-0 x86_64' should be 'modkit-1 x86_64'
                >>> rebuild the module with this version's <modkit/module.h>, or load it by force
                """
        }
        #expect(test.host.modules.isEmpty)
    }

    @Test("vermagic mismatch loads by force with F")
    func vermagicForced() async throws {
        let test = try ModuleTestHost()
        defer { test.finish() }
        let object = try await test.compile(oldModule, name: "old")
        #expect(throws: LoadError.self) { try test.host.load(files: [object], options: .ignoreSymbolVersions) }
        let module = try test.host.load(files: [object], options: .ignoreVersionMagic)
        #expect(module.taint == .forcedLoad)
        #expect(test.log.messages(of: "old").contains("version magic 'modkit-0 x86_64' should be 'modkit-1 x86_64', loaded by force; the host is tainted (F)"))
    }

    @Test("header records the host's vermagic")
    func headerVermagic() async throws {
        let test = try ModuleTestHost()
        defer { test.finish() }
        let object = try await test.compile("#include <modkit/module.h>\nMODULE_LICENSE(\"GPL\");\n", name: "magic")
        let info = ModuleInfo(objects: [try ObjectFile(ObjectImage(contentsOf: object))])
        #expect(info.values("vermagic") == ["modkit-1 x86_64"])
    }

    @Test("malformed version entry is rejected")
    func malformedVersions() async throws {
        let test = try ModuleTestHost()
        defer { test.finish() }
        let object = try await test.compile("""
            #include <modkit/module.h>
            MODULE_LICENSE("GPL");
            static const char versions[] __attribute__((used, section(".modkit.versions"))) = "0x12 printk";
            """, name: "broken")
        #expect {
            try test.host.load(files: [object])
        } throws: { error in
            (error as? LoadError)?.description == "\(object):(.modkit.versions+0x0): invalid symbol version entry '0x12 printk'; expected '0xCRC NAME' with eight hex digits, as modkit build writes it"
        }
    }
}
