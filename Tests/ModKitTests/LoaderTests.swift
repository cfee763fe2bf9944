import Foundation
import ModKit
import Testing

/// One way of compiling C test modules.
struct CBuild: Sendable, CustomTestStringConvertible {
    var compiler: CCompiler
    var options: [String]

    var flags: [String] { options + ["-fPIC", "-I\(PackagePaths.includeDirectory)"] }
    var testDescription: String { "\(compiler.rawValue) \(options.joined(separator: " "))" }

    static let all: [CBuild] = CCompiler.allCases.flatMap { compiler in
        [["-O0"], ["-O3"], ["-O2", "-ffunction-sections", "-fdata-sections"]].map { CBuild(compiler: compiler, options: $0) }
    }
}

/// Linking several objects into one module, and the module lifecycle around it: constructors,
/// init, exit, destructors, exports between modules, names, and the errors of a failed link.
@Suite("loader")
struct LoaderTests {
    /// Two objects with a call from the first into the second and a global defined in the first
    /// that the second updates.
    static let callerSource = """
        #include <modkit/module.h>
        MODULE_LICENSE("GPL");
        int shared_total = 0;
        int add_twice(int value);
        int probe(void) {
            shared_total = 5;
            return add_twice(3);
        }
        """
    static let calleeSource = """
        extern int shared_total;
        int add_twice(int value) {
            shared_total += value * 2;
            return shared_total;
        }
        """

    @Test("objects share calls and globals", arguments: CBuild.all)
    func multipleObjects(_ build: CBuild) async throws {
        let directory = try TemporaryDirectory(prefix: "loader")
        defer { directory.remove() }
        let caller = try await ObjectBuilder.compile(Self.callerSource, compiler: build.compiler, flags: build.flags,
                                                     name: "caller", in: directory)
        let callee = try await ObjectBuilder.compile(Self.calleeSource, compiler: build.compiler, flags: build.flags,
                                                     name: "callee", in: directory)

        try await withModuleArea {
            let host = ModuleHost(options: .quiet)
            defer { host.removeAll() }
            let module = try host.load(files: [caller, callee])
            let probe = try module.function("probe", as: IntFunction.self)

            #expect(module.name == "caller")
            #expect(probe() == 11)
            #expect(try #require(module.address(of: "shared_total")).load(as: Int32.self) == 11)
            try host.remove(module.name)
        }
    }

    @Test("object combined with ld -r")
    func relocatableLink() async throws {
        let directory = try TemporaryDirectory(prefix: "loader")
        defer { directory.remove() }
        let caller = try await ObjectBuilder.compile(Self.callerSource, name: "caller", in: directory)
        let callee = try await ObjectBuilder.compile(Self.calleeSource, name: "callee", in: directory)
        let combined = directory.file("combined.o")
        let link = try await runProcess("/usr/bin/env", ["ld", "-r", caller, callee, "-o", combined])
        try #require(link.status == 0, "\(link)")

        try await withModuleArea {
            let host = ModuleHost(options: .quiet)
            defer { host.removeAll() }
            let module = try host.load(files: [combined])
            let probe = try module.function("probe", as: IntFunction.self)

            #expect(module.name == "combined")
            #expect(probe() == 11)
            try host.remove(module.name)
        }
    }

    @Test("-fcommon tentative definitions merge", arguments: CCompiler.allCases)
    func commonSymbols(_ compiler: CCompiler) async throws {
        let directory = try TemporaryDirectory(prefix: "loader")
        defer { directory.remove() }
        let flags = ["-O2", "-fPIC", "-fcommon"]
        let first = try await ObjectBuilder.compile("""
            int tentative;
            char buffer[16];
            int *tentative_in_first(void) { return &tentative; }
            char *buffer_in_first(void) { return buffer; }
            """, compiler: compiler, flags: flags, name: "first", in: directory)
        let second = try await ObjectBuilder.compile("""
            int tentative;
            char buffer[64];
            int *tentative_in_second(void) { return &tentative; }
            char *buffer_in_second(void) { return buffer; }
            """, compiler: compiler, flags: flags, name: "second", in: directory)
        let SHN_COMMON: UInt16 = 0xfff2
        for object in [first, second] {
            #expect(try ObjectBytes(contentsOf: object).symbol(named: "tentative").sectionIndex == SHN_COMMON)
        }

        try await withModuleArea {
            let host = ModuleHost(options: .quiet)
            defer { host.removeAll() }
            let module = try host.load(files: [first, second])
            let tentative = try module.symbolAddress("tentative")
            let buffer = try module.symbolAddress("buffer")

            #expect(try module.function("tentative_in_first", as: ProbeFunction.self)() == tentative)
            #expect(try module.function("tentative_in_second", as: ProbeFunction.self)() == tentative)
            #expect(try module.function("buffer_in_first", as: ProbeFunction.self)() == buffer)
            #expect(try module.function("buffer_in_second", as: ProbeFunction.self)() == buffer)
            #expect(tentative % 4 == 0)
            // The merged buffer takes the larger size, so it must not overlap the int.
            #expect(buffer + 64 <= tentative || tentative + 4 <= buffer)
            try host.remove(module.name)
        }
    }

    @Test("large COMMON symbols of the medium code model merge")
    func largeCommonSymbols() async throws {
        let directory = try TemporaryDirectory(prefix: "loader")
        defer { directory.remove() }
        // Above gcc's large data threshold (64 KiB), a tentative definition is a large COMMON.
        let flags = ["-O2", "-fPIC", "-fcommon", "-mcmodel=medium"]
        let first = try await ObjectBuilder.compile("""
            int big_common[100000];
            int *big_in_first(void) { return big_common; }
            """, flags: flags, name: "first", in: directory)
        let second = try await ObjectBuilder.compile("""
            int big_common[100000];
            int last_in_second(void) { return big_common[99999]; }
            """, flags: flags, name: "second", in: directory)
        let SHN_X86_64_LCOMMON: UInt16 = 0xff02
        for object in [first, second] {
            #expect(try ObjectBytes(contentsOf: object).symbol(named: "big_common").sectionIndex == SHN_X86_64_LCOMMON)
        }

        try await withModuleArea {
            let host = ModuleHost(options: .quiet)
            defer { host.removeAll() }
            let module = try host.load(files: [first, second])
            let bigCommon = try module.symbolAddress("big_common")
            let array = try #require(UnsafeMutablePointer<Int32>(bitPattern: UInt(bigCommon)))
            array[99999] = 7

            #expect(try module.function("big_in_first", as: ProbeFunction.self)() == bigCommon)
            #expect(try module.function("last_in_second", as: IntFunction.self)() == 7)
            try host.remove(module.name)
        }
    }

    // MARK: Constructors and destructors

    @Test("C++ static objects, templates and inline functions", arguments: CCompiler.allCases)
    func cPlusPlusModule(_ compiler: CCompiler) async throws {
        let directory = try TemporaryDirectory(prefix: "cxx")
        defer { directory.remove() }
        _ = try directory.write("""
            #include <modkit/module.h>
            struct Tracer {
                const char *name;
                explicit Tracer(const char *name) : name(name) { pr_info("construct %s", name); }
                ~Tracer() { pr_info("destroy %s", name); }
            };
            template <typename T> T twice(T value) { return value + value; }
            // Both objects use it: the copies are COMDAT groups, so the module keeps one, and
            // with it one counter.
            inline int next_ticket() {
                static int ticket = 0;
                return ++ticket;
            }
            // Kept from the first object; the unwinder must find its frame through the first
            // object's .eh_frame, past the inert entries of the discarded copy.
            __attribute__((noinline)) inline int checked(int value) {
                if (value < 0) throw value;
                return value;
            }
            """, to: "common.hpp")
        let flags = ["-std=c++17", "-O2", "-fPIC", "-I\(PackagePaths.includeDirectory)", "-I\(directory.path)"]
        let first = try await ObjectBuilder.compile("""
            #include "common.hpp"
            MODULE_LICENSE("GPL");
            static Tracer first_tracer("first");
            extern "C" int ticket_from_first() { return next_ticket(); }
            extern "C" void *inline_function_in_first() { return reinterpret_cast<void *>(&next_ticket); }
            extern "C" int checked_in_first(int value) { return checked(value); }
            static int start() {
                pr_info("init");
                return twice(20) + twice(1) == 42 ? 0 : -1;
            }
            static void stop() { pr_info("exit"); }
            module_init(start);
            module_exit(stop);
            """, language: .cPlusPlus, compiler: compiler, flags: flags, name: "first", in: directory)
        let second = try await ObjectBuilder.compile("""
            #include "common.hpp"
            static Tracer second_tracer("second");
            extern "C" int ticket_from_second() { return next_ticket(); }
            extern "C" void *inline_function_in_second() { return reinterpret_cast<void *>(&next_ticket); }
            extern "C" long twice_in_second(long value) { return twice(value); }
            extern "C" int caught_in_second(int value) {
                try {
                    return checked(value);
                } catch (int thrown) {
                    return 1000 + thrown;
                }
            }
            """, language: .cPlusPlus, compiler: compiler, flags: flags, name: "second", in: directory)
        let SHT_GROUP: UInt32 = 17
        for object in [first, second] {
            #expect(try ObjectBytes(contentsOf: object).sections.contains { $0.type == SHT_GROUP }, "no COMDAT group in \(object)")
        }
        let log = LogCollector()

        try await withModuleArea {
            let host = ModuleHost(options: log.hostOptions())
            defer { host.removeAll() }
            let module = try host.load(files: [first, second])

            #expect(log.messagesWithoutVersionWarning(from: module.name) == ["construct first", "construct second", "init"])
            #expect(try module.function("ticket_from_first", as: IntFunction.self)() == 1)
            #expect(try module.function("ticket_from_second", as: IntFunction.self)() == 2)
            let inlineInFirst = try module.function("inline_function_in_first", as: ProbeFunction.self)()
            let inlineInSecond = try module.function("inline_function_in_second", as: ProbeFunction.self)()
            #expect(inlineInFirst == inlineInSecond)
            #expect(try module.function("twice_in_second", as: (@convention(c) (Int) -> Int).self)(21) == 42)
            let caughtInSecond = try module.function("caught_in_second", as: (@convention(c) (Int32) -> Int32).self)
            #expect(caughtInSecond(5) == 5)
            #expect(caughtInSecond(-3) == 997)

            try host.remove(module.name)
            #expect(log.messagesWithoutVersionWarning(from: module.name) == [
                "construct first", "construct second", "init", "exit", "destroy second", "destroy first",
            ])
        }
    }

    @Test("module header before standard headers", arguments: CCompiler.allCases)
    func moduleHeaderFirst(_ compiler: CCompiler) async throws {
        let directory = try TemporaryDirectory(prefix: "header-first")
        defer { directory.remove() }
        // glibc's <stdlib.h> and libstdc++'s <numeric> and <memory> name members and
        // parameters __init, which the header defines as a section attribute.
        let object = try await ObjectBuilder.compile("""
            #include <modkit/module.h>
            #include <stdlib.h>
            #include <iostream>
            #include <memory>
            #include <numeric>
            #include <string>
            #include <vector>
            MODULE_LICENSE("GPL");
            static int total;
            static int __init start() {
                std::vector<int> values{1, 2, 3, 4};
                std::string label("sum");
                total = std::accumulate(values.begin(), values.end(), 0) + static_cast<int>(label.size());
                return 0;
            }
            static void __exit stop() {}
            module_init(start);
            module_exit(stop);
            extern "C" int header_first_total() { return total; }
            """, language: .cPlusPlus, compiler: compiler,
            flags: ["-std=c++17"] + ObjectBuilder.moduleFlags, name: "header_first", in: directory)
        let log = LogCollector()

        try await withModuleArea {
            let host = ModuleHost(options: log.hostOptions())
            defer { host.removeAll() }
            let module = try host.load(files: [object])

            #expect(try module.function("header_first_total", as: IntFunction.self)() == 13)
            try host.remove(module.name)
        }
    }

    @Test("reference into a discarded COMDAT copy is rejected")
    func discardedGroupReference() async throws {
        let directory = try TemporaryDirectory(prefix: "comdat")
        defer { directory.remove() }
        let group = """
                .section .text.shared, "axG", @progbits, shared_function, comdat
                .globl shared_function
            shared_function:
            local_label:
                ret

            """
        let first = try await ObjectBuilder.compile(group, language: .assembly, flags: [], name: "first", in: directory)
        let second = try await ObjectBuilder.compile(group + """
                .section .data.rel.ro, "aw"
                .quad local_label

            """, language: .assembly, flags: [], name: "second", in: directory)

        try await withModuleArea {
            let host = ModuleHost(options: .quiet)
            defer { host.removeAll() }
            let error = try #require(throws: LoadError.self) { try host.load(files: [first, second]) }

            #expect(error.kind == .referencesDiscardedSection)
            #expect(error.description == "\(second):(.data.rel.ro+0x0): relocation R_X86_64_64 references 'local_label' in .text.shared, a duplicate of COMDAT group 'shared_function' kept from an earlier object; refer to it by a global symbol instead")
        }
    }

    @Test("constructor and destructor priorities", arguments: CCompiler.allCases)
    func initializationPriorities(_ compiler: CCompiler) async throws {
        let directory = try TemporaryDirectory(prefix: "priority")
        defer { directory.remove() }
        let object = try await ObjectBuilder.compile("""
            #include <modkit/module.h>
            MODULE_LICENSE("GPL");
            __attribute__((constructor(102))) static void constructor_102(void) { pr_info("constructor 102"); }
            __attribute__((constructor)) static void constructor_default(void) { pr_info("constructor default"); }
            __attribute__((constructor(101))) static void constructor_101(void) { pr_info("constructor 101"); }
            __attribute__((destructor(101))) static void destructor_101(void) { pr_info("destructor 101"); }
            __attribute__((destructor)) static void destructor_default(void) { pr_info("destructor default"); }
            __attribute__((destructor(102))) static void destructor_102(void) { pr_info("destructor 102"); }
            static int start(void) { pr_info("init"); return 0; }
            static void stop(void) { pr_info("exit"); }
            module_init(start);
            module_exit(stop);
            """, compiler: compiler, name: "priority", in: directory)
        let log = LogCollector()

        try await withModuleArea {
            let host = ModuleHost(options: log.hostOptions())
            defer { host.removeAll() }
            let module = try host.load(files: [object])
            try host.remove(module.name)

            // As in a linked program, constructors run by ascending priority with the default last,
            // and destructors in reverse.
            #expect(log.messagesWithoutVersionWarning(from: "priority") == [
                "constructor 101", "constructor 102", "constructor default", "init",
                "exit", "destructor default", "destructor 102", "destructor 101",
            ])
        }
    }

    @Test("atexit handlers run at removal")
    func atexitAtRemoval() async throws {
        let directory = try TemporaryDirectory(prefix: "atexit")
        defer { directory.remove() }
        let object = try await ObjectBuilder.compile("""
            #include <stdlib.h>
            #include <modkit/module.h>
            MODULE_LICENSE("GPL");
            static void first_handler(void) { pr_info("first handler"); }
            static void second_handler(void) { pr_info("second handler"); }
            static int start(void) {
                if (atexit(first_handler) != 0 || atexit(second_handler) != 0)
                    return -1;
                pr_info("init");
                return 0;
            }
            static void stop(void) { pr_info("exit"); }
            module_init(start);
            module_exit(stop);
            """, name: "handlers", in: directory)
        let log = LogCollector()

        try await withModuleArea {
            let host = ModuleHost(options: log.hostOptions())
            defer { host.removeAll() }
            let module = try host.load(files: [object])
            #expect(log.messagesWithoutVersionWarning(from: module.name) == ["init"])

            try host.remove(module.name)
            // Newest first, after exit, and only once, because the C library never saw them.
            #expect(log.messagesWithoutVersionWarning(from: module.name) == ["init", "exit", "second handler", "first handler"])
        }
    }

    // MARK: Init and removal

    @Test("init returning -ENOMEM fails the load")
    func initFailure() async throws {
        let directory = try TemporaryDirectory(prefix: "init")
        defer { directory.remove() }
        let object = try await ObjectBuilder.compile("""
            #include <modkit/module.h>
            MODULE_LICENSE("GPL");
            int failing_export = 1;
            EXPORT_SYMBOL(failing_export);
            static int start(void) { return -12; }
            static void stop(void) {}
            module_init(start);
            module_exit(stop);
            """, name: "failing", in: directory)
        let log = LogCollector()

        try await expectModuleAreaUnchanged {
            let host = ModuleHost(options: log.hostOptions())
            defer { host.removeAll() }
            let error = try #require(throws: LoadError.self) { try host.load(files: [object]) }

            #expect(error.kind == .initFailed)
            #expect(error.description == "\(object): module failing: init failed with error -12 (Cannot allocate memory); the module was not loaded")
            #expect(host.module(named: "failing") == nil)
            #expect(host.export(named: "failing_export") == nil)
            #expect(log.messages(from: nil) == ["failing: init failed with error -12 (Cannot allocate memory)"])
        }
    }

    @Test("init without exit needs force to remove")
    func initWithoutExit() async throws {
        let directory = try TemporaryDirectory(prefix: "noexit")
        defer { directory.remove() }
        let object = try await ObjectBuilder.compile("""
            #include <modkit/module.h>
            MODULE_LICENSE("GPL");
            static int start(void) { return 0; }
            module_init(start);
            """, name: "permanent", in: directory)

        try await withModuleArea {
            let host = ModuleHost(options: .quiet)
            defer { host.removeAll() }
            _ = try host.load(files: [object])
            let error = try #require(throws: RemovalError.self) { try host.remove("permanent") }

            #expect(error.kind == .notRemovable)
            #expect(error.message == "module permanent has an init function but no exit function, so it cannot be removed without force")
            #expect(host.module(named: "permanent")?.state == .live)

            try host.remove("permanent", force: true)
            #expect(host.module(named: "permanent") == nil)
        }
    }

    // MARK: Symbol errors

    @Test("duplicate strong symbols name both files")
    func duplicateSymbols() async throws {
        let directory = try TemporaryDirectory(prefix: "duplicate")
        defer { directory.remove() }
        let first = try await ObjectBuilder.compile("int duplicate(void) { return 1; }", name: "first", in: directory)
        let second = try await ObjectBuilder.compile("int duplicate(void) { return 2; }", name: "second", in: directory)

        try await expectModuleAreaUnchanged {
            let host = ModuleHost(options: .quiet)
            let error = try #require(throws: LoadError.self) { try host.load(files: [first, second]) }

            #expect(error.kind == .duplicateSymbol)
            #expect(error.symbol == "duplicate")
            #expect(error.description == "\(second): duplicate symbol: duplicate\n>>> defined in \(first)\n>>> defined in \(second)")
        }
    }

    @Test("every undefined symbol is listed with its references")
    func undefinedSymbols() async throws {
        let directory = try TemporaryDirectory(prefix: "undefined")
        defer { directory.remove() }
        // Each call is 5 bytes, so the relocated fields are at 0x1, 0x6, 0xb and so on.
        let first = try await ObjectBuilder.compile("""
                .text
                .globl probe
            probe:
                call missing_one@PLT
                call missing_two@PLT
                call missing_one@PLT
                call missing_one@PLT
                call missing_one@PLT
                ret

            """, language: .assembly, flags: [], name: "first", in: directory)
        let second = try await ObjectBuilder.compile("""
                .text
                .globl other
            other:
                call missing_two@PLT
                call missing_three@PLT
                ret

            """, language: .assembly, flags: [], name: "second", in: directory)

        try await expectModuleAreaUnchanged {
            let host = ModuleHost(options: .quiet)
            let error = try #require(throws: LoadError.self) { try host.load(files: [first, second]) }

            #expect(error.kind == .undefinedSymbols)
            #expect(error.description == """
                undefined symbol: missing_one
                >>> referenced by \(first):(.text+0x1)
                >>> referenced by \(first):(.text+0xb)
                >>> referenced by \(first):(.text+0x10)
                >>> referenced 1 more times
                undefined symbol: missing_three
                >>> referenced by \(second):(.text+0x6)
                undefined symbol: missing_two
                >>> referenced by \(first):(.text+0x6)
                >>> referenced by \(second):(.text+0x1)
                3 undefined symbols; load the modules that export them first
                """)
        }
    }

    @Test("undefined weak symbols resolve to 0", arguments: CCompiler.allCases)
    func undefinedWeakSymbols(_ compiler: CCompiler) async throws {
        let directory = try TemporaryDirectory(prefix: "weak")
        defer { directory.remove() }
        let object = try await ObjectBuilder.compile("""
            extern int modkit_test_absent_function(void) __attribute__((weak));
            extern int modkit_test_absent_variable __attribute__((weak));
            void *function_address(void) { return (void *)&modkit_test_absent_function; }
            int *variable_address(void) { return &modkit_test_absent_variable; }
            int call_if_present(void) { return modkit_test_absent_function ? modkit_test_absent_function() : -1; }
            """, compiler: compiler, name: "weak", in: directory)

        try await withModuleArea {
            let host = ModuleHost(options: .quiet)
            defer { host.removeAll() }
            let module = try host.load(files: [object])

            #expect(try module.function("function_address", as: ProbeFunction.self)() == 0)
            #expect(try module.function("variable_address", as: ProbeFunction.self)() == 0)
            #expect(try module.function("call_if_present", as: IntFunction.self)() == -1)
            try host.remove(module.name)
        }
    }

    @Test("deny policy hides process symbols")
    func denyPolicy() async throws {
        let directory = try TemporaryDirectory(prefix: "policy")
        defer { directory.remove() }
        let object = try await ObjectBuilder.compile("""
                .text
                .globl probe
            probe:
                jmp strlen@PLT

            """, language: .assembly, flags: [], name: "libc_user", in: directory)
        let logger = try await ObjectBuilder.compile("""
            #include <modkit/module.h>
            MODULE_LICENSE("GPL");
            static int start(void) { pr_info("host API available"); return 0; }
            static void stop(void) {}
            module_init(start);
            module_exit(stop);
            """, name: "logger", in: directory)
        var options = HostOptions.quiet
        options.processSymbols = .deny

        try await withModuleArea {
            let host = ModuleHost(options: options)
            defer { host.removeAll() }
            let error = try #require(throws: LoadError.self) { try host.load(files: [object]) }

            #expect(error.kind == .undefinedSymbols)
            #expect(error.description == """
                undefined symbol: strlen
                >>> referenced by \(object):(.text+0x1)
                1 undefined symbol; load the modules that export them first, or allow them in the host's process symbol policy
                """)
            // The ModKit host API stays available.
            _ = try host.load(files: [logger])
            try host.remove("logger")
        }
    }

    @Test("allow list admits only the listed process symbols")
    func allowListPolicy() async throws {
        let directory = try TemporaryDirectory(prefix: "policy")
        defer { directory.remove() }
        let allowed = try await ObjectBuilder.compile("""
                .text
                .globl probe
            probe:
                jmp strlen@PLT

            """, language: .assembly, flags: [], name: "allowed", in: directory)
        let rejected = try await ObjectBuilder.compile("""
                .text
                .globl probe
            probe:
                call strlen@PLT
                jmp getpid@PLT

            """, language: .assembly, flags: [], name: "rejected", in: directory)
        var options = HostOptions.quiet
        options.processSymbols = .allowList(["strlen"])

        try await withModuleArea {
            let host = ModuleHost(options: options)
            defer { host.removeAll() }
            let module = try host.load(files: [allowed])
            let probe = try module.function("probe", as: (@convention(c) (UnsafePointer<CChar>) -> Int).self)
            #expect(probe("four") == 4)

            let error = try #require(throws: LoadError.self) { try host.load(files: [rejected]) }
            #expect(error.kind == .undefinedSymbols)
            #expect(error.description == """
                undefined symbol: getpid
                >>> referenced by \(rejected):(.text+0x6)
                1 undefined symbol; load the modules that export them first, or allow them in the host's process symbol policy
                """)
            try host.remove(module.name)
        }
    }

    // MARK: Modules using modules

    @Test("plain object exports its globals to other modules")
    func plainObjectExports() async throws {
        let directory = try TemporaryDirectory(prefix: "exports")
        defer { directory.remove() }
        let provider = try await ObjectBuilder.compile("""
            int provider_value = 40;
            int provider_add(int value) { return provider_value + value; }
            __attribute__((visibility("hidden"))) int provider_hidden(void) { return 1; }
            static int provider_static(void) { return 2; }
            int provider_uses_static(void) { return provider_static(); }
            """, name: "provider", in: directory)
        let consumer = try await ObjectBuilder.compile("""
            extern int provider_add(int value);
            extern int provider_value;
            int probe(void) { return provider_add(2) + provider_value; }
            """, name: "consumer", in: directory)

        try await withModuleArea {
            let host = ModuleHost(options: .quiet)
            defer { host.removeAll() }
            let providerModule = try host.load(files: [provider])
            #expect(providerModule.exports.map(\.name).sorted() == ["provider_add", "provider_uses_static", "provider_value"])

            let consumerModule = try host.load(files: [consumer])
            #expect(try consumerModule.function("probe", as: IntFunction.self)() == 82)
            #expect(consumerModule.dependencies == ["provider"])
            #expect(providerModule.users == ["consumer"])

            let error = try #require(throws: RemovalError.self) { try host.remove("provider") }
            #expect(error.kind == .usedByModules)
            #expect(error.message == "module provider is in use by: consumer")
            #expect(host.module(named: "provider")?.state == .live)

            try host.remove("consumer")
            try host.remove("provider")
            #expect(host.modules.isEmpty)
        }
    }

    // MARK: Names

    @Test("module name comes from the file name")
    func nameFromFile() async throws {
        let directory = try TemporaryDirectory(prefix: "name")
        defer { directory.remove() }
        let object = try await ObjectBuilder.compile("int probe(void) { return 1; }", name: "my-driver", in: directory)

        try await withModuleArea {
            let host = ModuleHost(options: .quiet)
            defer { host.removeAll() }
            let module = try host.load(files: [object])

            #expect(module.name == "my_driver")
            try host.remove("my_driver")
        }
    }

    @Test("MODULE_NAME overrides the file name")
    func nameFromMetadata() async throws {
        let directory = try TemporaryDirectory(prefix: "name")
        defer { directory.remove() }
        let object = try await ObjectBuilder.compile("""
            #include <modkit/module.h>
            MODULE_LICENSE("GPL");
            MODULE_NAME("custom-name");
            """, name: "file-name", in: directory)

        try await withModuleArea {
            let host = ModuleHost(options: .quiet)
            defer { host.removeAll() }
            let module = try host.load(files: [object])

            #expect(module.name == "custom_name")
            try host.remove("custom_name")
        }
    }

    @Test("same module twice is rejected")
    func alreadyLoaded() async throws {
        let directory = try TemporaryDirectory(prefix: "twice")
        defer { directory.remove() }
        let object = try await ObjectBuilder.compile("int probe(void) { return 1; }", name: "twice", in: directory)

        try await withModuleArea(exclusive: true) {
            let host = ModuleHost(options: .quiet)
            defer { host.removeAll() }
            let module = try host.load(files: [object])
            let mappings = try MemoryMaps.moduleArea()

            let error = try #require(throws: LoadError.self) { try host.load(files: [object]) }
            #expect(error.kind == .alreadyLoaded)
            #expect(error.description == "\(object): module twice is already loaded")
            #expect(try MemoryMaps.moduleArea() == mappings)
            #expect(host.modules.map(\.name) == ["twice"])
            try host.remove(module.name)
        }
    }
}
