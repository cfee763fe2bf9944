import Foundation
import ModKit
import Testing

/// A module built for tests that run the loader over several kinds of module, with a function
/// to call to show that a load left a working module.
struct RepresentativeModule: Sendable, CustomStringConvertible {
    var description: String
    var files: [String]
    /// The module's name once loaded.
    var name: String
    /// Calls into the module and returns a value, which `expected` gives.
    var probe: @Sendable (Module) throws -> Int64
    var expected: Int64
    /// A symbol the module exports, which no export lookup may find once it is gone.
    var export: String

    /// Builds a small C module with init and exit, a C++ module of two objects with a static
    /// constructor in each, and a C module of two objects that call each other.
    static func build(in directory: TemporaryDirectory) async throws -> [RepresentativeModule] {
        let small = try await ObjectBuilder.compile("""
            #include <modkit/module.h>
            MODULE_LICENSE("GPL");
            static int counter = 40;
            int small_probe(void) { return ++counter; }
            EXPORT_SYMBOL(small_probe);
            static int __init small_start(void) { counter++; return 0; }
            static void __exit small_stop(void) {}
            module_init(small_start);
            module_exit(small_stop);
            """, name: "small", in: directory)

        let flags = ["-std=c++17", "-O2", "-fPIC", "-I\(PackagePaths.includeDirectory)"]
        let constructed = try await ObjectBuilder.compile("""
            #include <modkit/module.h>
            MODULE_LICENSE("GPL");
            struct Counter {
                int value;
                explicit Counter(int start) : value(start) {}
            };
            static Counter counter(30);
            extern "C" int cxx_second_value();
            extern "C" int cxx_probe() { return counter.value + cxx_second_value(); }
            EXPORT_SYMBOL(cxx_probe);
            static int start() { counter.value += 2; return 0; }
            static void stop() {}
            module_init(start);
            module_exit(stop);
            """, language: .cPlusPlus, flags: flags, name: "cxx", in: directory)
        let constructedSecond = try await ObjectBuilder.compile("""
            struct Second {
                int value = 7;
                Second() { value += 3; }
            };
            static Second second;
            extern "C" int cxx_second_value() { return second.value; }
            """, language: .cPlusPlus, flags: flags, name: "cxx_second", in: directory)

        let caller = try await ObjectBuilder.compile("""
            #include <modkit/module.h>
            MODULE_LICENSE("GPL");
            int shared_total = 0;
            int add_twice(int value);
            int caller_probe(void) {
                shared_total = 5;
                return add_twice(3);
            }
            EXPORT_SYMBOL(caller_probe);
            """, name: "caller", in: directory)
        let callee = try await ObjectBuilder.compile("""
            extern int shared_total;
            int add_twice(int value) {
                shared_total += value * 2;
                return shared_total;
            }
            """, name: "callee", in: directory)

        return [
            RepresentativeModule(description: "small C module", files: [small], name: "small",
                                 probe: { Int64(try $0.function("small_probe", as: IntFunction.self)()) }, expected: 42, export: "small_probe"),
            RepresentativeModule(description: "C++ module with static constructors", files: [constructed, constructedSecond],
                                 name: "cxx", probe: { Int64(try $0.function("cxx_probe", as: IntFunction.self)()) }, expected: 42, export: "cxx_probe"),
            RepresentativeModule(description: "C module of two objects", files: [caller, callee], name: "caller",
                                 probe: { Int64(try $0.function("caller_probe", as: IntFunction.self)()) }, expected: 11, export: "caller_probe"),
        ]
    }

    /// Builds the Lua 5.4 interpreter as one object, whose functions all become exports because
    /// it has no ModKit metadata.
    static func buildLua(in directory: TemporaryDirectory) async throws -> RepresentativeModule {
        let corpus = try PackagePaths.requireLuaCorpus()
        let object = try await ProcessorSlots.shared.withSlot {
            try await ObjectBuilder.compile(file: corpus + "/onelua.c", flags: ["-O2", "-fPIC", "-DMAKE_LUA", "-DLUA_USE_LINUX"],
                                            output: directory.file("onelua.o"))
        }
        return RepresentativeModule(description: "Lua interpreter", files: [object], name: "onelua",
                                    probe: callLuaVersion, expected: 504, export: "luaL_newstate")
    }

    /// Opens a Lua state in the module, reads `lua_version`, 504 for Lua 5.4, and closes the state.
    @Sendable private static func callLuaVersion(_ module: Module) throws -> Int64 {
        typealias NewState = @convention(c) () -> OpaquePointer?
        typealias Version = @convention(c) (OpaquePointer?) -> Double
        typealias Close = @convention(c) (OpaquePointer?) -> Void
        let state = try #require(try module.function("luaL_newstate", as: NewState.self)(), "luaL_newstate returned NULL")
        defer { try? module.function("lua_close", as: Close.self)(state) }
        return Int64(try module.function("lua_version", as: Version.self)(state))
    }
}
