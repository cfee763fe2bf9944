import Testing
@testable import ModKit

private let library = #"""
#include <modkit/module.h>
int gpl_twice(int x) { return 2 * x; }
EXPORT_SYMBOL_GPL(gpl_twice);
int open_twice(int x) { return 2 * x; }
EXPORT_SYMBOL(open_twice);
static int __init gpllib_init(void) { return 0; }
static void __exit gpllib_exit(void) {}
module_init(gpllib_init);
module_exit(gpllib_exit);
MODULE_LICENSE("GPL");
"""#

private func user(license: String, calls function: String) -> String {
    """
    #include <modkit/module.h>
    int \(function)(int x);
    int use(void) { return \(function)(21); }
    static int __init user_init(void) { return use() == 42 ? 0 : -22; }
    static void __exit user_exit(void) {}
    module_init(user_init);
    module_exit(user_exit);
    MODULE_LICENSE("\(license)");
    MODULE_NAME("user");
    """
}

@Suite("GPL-only exports")
struct GPLExportTests {
    @Test(arguments: ["GPL", "Dual BSD/GPL", "GPL v2"])
    func gplModuleBindsGPLOnlyExport(license: String) async throws {
        try await withModuleArea {
            let directory = try TemporaryDirectory(prefix: "gpl")
            defer { directory.remove() }
            let host = ModuleHost()
            _ = try host.load(files: [try await ObjectBuilder.compile(library, name: "gpllib", in: directory)])
            let module = try host.load(files: [try await ObjectBuilder.compile(user(license: license, calls: "gpl_twice"), name: "user", in: directory)])
            #expect(module.dependencies == ["gpllib"])
            try host.remove("user")
            try host.remove("gpllib")
        }
    }

    @Test func proprietaryModuleCannotBindGPLOnlyExport() async throws {
        try await withModuleArea {
            let directory = try TemporaryDirectory(prefix: "gpl")
            defer { directory.remove() }
            let host = ModuleHost()
            _ = try host.load(files: [try await ObjectBuilder.compile(library, name: "gpllib", in: directory)])
            let object = try await ObjectBuilder.compile(user(license: "Proprietary", calls: "gpl_twice"), name: "user", in: directory)
            let error = #expect(throws: LoadError.self) { _ = try host.load(files: [object]) }
            #expect(error?.kind == .undefinedSymbols)
            #expect(error?.message.hasPrefix("""
                undefined symbol: gpl_twice
                >>> module gpllib exports it only to GPL-compatible modules, and this module's license is 'Proprietary'
                >>> referenced by
                """) == true, "\(String(describing: error))")
            #expect(error?.message.hasSuffix("""

                1 undefined symbol; a module needs a GPL-compatible MODULE_LICENSE to use GPL-only exports
                """) == true, "\(String(describing: error))")
            #expect(host.module(named: "user") == nil)
            #expect(host.module(named: "gpllib")?.users == [])

            let open = try host.load(files: [try await ObjectBuilder.compile(user(license: "Proprietary", calls: "open_twice"), name: "open", in: directory)])
            #expect(open.dependencies == ["gpllib"])
            try host.remove("user")
            try host.remove("gpllib")
        }
    }
}
