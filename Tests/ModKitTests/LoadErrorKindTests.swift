@testable import ModKit
import Foundation
import Glibc
import Testing

/// Every `LoadError.Kind` has a fixture that produces it, and the message reads as expected.
///
/// A new kind fails `producedByFixture` until it gets an entry in `producers`. Two kinds come
/// from the fixed-address linker of `modkit link` rather than from a load. `badLinkMap` does
/// because only that linker reads link maps. `misalignedRelocation` does because only aarch64
/// relocations have alignment rules, and a load accepts only objects for the host's machine
/// (x86_64 here). Every other kind comes from `ModuleHost.load`, which must also leave the
/// module area as it was and no module behind.
@Suite("every load error kind", .enabled(if: HostMachine.current == .x86_64, "the fixtures are x86_64 objects and relocations"))
struct LoadErrorKindTests {
    /// How to produce one kind, and a part of the message it must contain.
    struct Producer: Sendable {
        var message: String
        var produce: @Sendable (FixtureContext) async throws -> LoadError
    }

    @Test("kind produced by a fixture", arguments: LoadError.Kind.allCases)
    func producedByFixture(_ kind: LoadError.Kind) async throws {
        let producer = try #require(Self.producers[kind], "no fixture produces LoadError.Kind.\(kind.rawValue); add one to LoadErrorKindTests.producers")
        let context = try FixtureContext()
        defer { context.directory.remove() }

        let error = try await producer.produce(context)

        #expect(error.kind == kind, "\(error)")
        #expect(error.description.contains(producer.message), "message of \(kind): \(error.description)")
    }

    static let SHF_WRITE: UInt64 = 0x1
    static let SHT_REL: UInt32 = 9

    static let producers: [LoadError.Kind: Producer] = [
        .unreadableFile: Producer(message: "missing.o: cannot open: No such file or directory") { context in
            try await context.load([context.directory.file("missing.o")])
        },
        .truncatedFile: Producer(message: "file is truncated: 40 bytes, shorter than an ELF header (64 bytes); rebuild it with cc -c") { context in
            try await context.loadPatched { $0.bytes.removeSubrange(40...) }
        },
        .notELF: Producer(message: "not an ELF file (bad magic)") { context in
            try await context.loadPatched { $0.bytes[0] = 0 }
        },
        .unsupportedClass: Producer(message: "unsupported ELF class 1; only ELF64 objects can be loaded") { context in
            try await context.loadPatched { $0.bytes[4] = 1 }
        },
        .unsupportedByteOrder: Producer(message: "unsupported byte order 2; only little-endian objects can be loaded") { context in
            try await context.loadPatched { $0.bytes[5] = 2 }
        },
        .unsupportedVersion: Producer(message: "unsupported ELF version 2") { context in
            try await context.loadPatched { $0.bytes[6] = 2 }
        },
        .notRelocatable: Producer(message: "not a relocatable object: the file is a shared object or PIE (ET_DYN)") { context in
            try await context.loadPatched { $0.write(UInt16(3), at: ObjectBytes.typeOffset) }
        },
        .unsupportedMachine: Producer(message: "unsupported machine 40 (e_machine); expected x86_64 (62) or aarch64 (183)") { context in
            try await context.loadPatched { $0.write(UInt16(40), at: ObjectBytes.machineOffset) }
        },
        .machineMismatch: Producer(message: "object is for aarch64, but this process runs on x86_64") { context in
            try await context.loadPatched { $0.write(UInt16(183), at: ObjectBytes.machineOffset) }
        },
        .badHeader: Producer(message: "invalid e_ehsize 63; expected 64") { context in
            try await context.loadPatched { $0.write(UInt16(63), at: 52) }
        },
        .sectionTableOutOfBounds: Producer(message: "is outside the file") { context in
            try await context.loadPatched { $0.write(UInt64($0.bytes.count + 64), at: ObjectBytes.sectionTableOffsetOffset) }
        },
        .sectionOutOfBounds: Producer(message: ":(.text): section contents at offset") { context in
            try await context.loadPatched { object in
                let text = try object.section(named: ".text")
                object.write(UInt64(1 << 20), at: text.headerOffset + ObjectBytes.SectionHeader.sizeField)
            }
        },
        .badAlignment: Producer(message: ":(.text): invalid alignment 3 (sh_addralign); it must be 0 or a power of two") { context in
            try await context.loadPatched { object in
                let text = try object.section(named: ".text")
                object.write(UInt64(3), at: text.headerOffset + ObjectBytes.SectionHeader.alignmentField)
            }
        },
        .badStringTable: Producer(message: "section name table does not end with a NUL byte") { context in
            try await context.loadPatched { object in
                let names = object.sectionHeader(object.sectionNameTableIndex)
                object.bytes[names.offset + names.size - 1] = UInt8(ascii: "x")
            }
        },
        .badName: Producer(message: "section name offset 65535 is outside the section name table") { context in
            try await context.loadPatched { object in
                let text = try object.section(named: ".text")
                object.write(UInt32(0xffff), at: text.headerOffset + ObjectBytes.SectionHeader.nameField)
            }
        },
        .badSymbolTable: Producer(message: ":(.symtab): symbol table entry size 0") { context in
            try await context.loadPatched { object in
                let table = try object.symbolTable
                object.write(UInt64(0), at: table.headerOffset + 56)
            }
        },
        .symbolIndexOutOfRange: Producer(message: "relocation 0 in .rela.text refers to symbol 65535, but the symbol table has") { context in
            try await context.loadPatched { object in
                let entry = try #require(try object.relocations(in: ".rela.text").first)
                object.write(UInt64(0xffff) << 32 | UInt64(entry.type), at: entry.entryOffset + ObjectBytes.RelocationEntry.infoField)
            }
        },
        .sectionIndexOutOfRange: Producer(message: "section name table index 200 (e_shstrndx) is out of range") { context in
            try await context.loadPatched { $0.write(UInt16(200), at: ObjectBytes.sectionNameTableIndexOffset) }
        },
        .badRelocationSection: Producer(message: ":(.rela.text): relocation entry size 0 or size") { context in
            try await context.loadPatched { object in
                let section = try object.section(named: ".rela.text")
                object.write(UInt64(0), at: section.headerOffset + 56)
            }
        },
        .relocationOutOfSection: Producer(message: "relocation 0 in .rela.text is outside its section") { context in
            try await context.loadPatched { object in
                let entry = try #require(try object.relocations(in: ".rela.text").first)
                object.write(UInt64(1 << 20), at: entry.entryOffset)
            }
        },
        .referencesDiscardedSection: Producer(message: "references 'local_label' in .text.shared, a duplicate of COMDAT group 'shared_function'") { context in
            let group = """
                    .section .text.shared, "axG", @progbits, shared_function, comdat
                    .globl shared_function
                shared_function:
                local_label:
                    ret

                """
            let first = try await context.assemble(group, name: "first")
            let second = try await context.assemble(group + """
                    .section .data.rel.ro, "aw"
                    .quad local_label

                """, name: "second")
            return try await context.load([first, second])
        },
        .writableAndExecutable: Producer(message: ":(.text): section is both writable and executable") { context in
            try await context.loadPatched { object in
                let text = try object.section(named: ".text")
                object.write(text.flags | Self.SHF_WRITE, at: text.headerOffset + ObjectBytes.SectionHeader.flagsField)
            }
        },
        .unsupportedSection: Producer(message: ":(.rela.text): SHT_REL relocations (without addends) are not supported") { context in
            try await context.loadPatched { object in
                let section = try object.section(named: ".rela.text")
                object.write(Self.SHT_REL, at: section.headerOffset + ObjectBytes.SectionHeader.typeField)
            }
        },
        .duplicateSymbol: Producer(message: "duplicate symbol: twice_defined") { context in
            let first = try await context.compile("int twice_defined = 1;", name: "first")
            let second = try await context.compile("int twice_defined = 2;", name: "second")
            return try await context.load([first, second])
        },
        .undefinedSymbols: Producer(message: "undefined symbol: nowhere_defined") { context in
            let object = try await context.compile("int nowhere_defined(void);\nint probe(void) { return nowhere_defined(); }", name: "undefined")
            return try await context.load([object])
        },
        .unsupportedRelocation: Producer(message: "unsupported relocation type 200 against") { context in
            try await context.loadPatched { object in
                let entry = try #require(try object.relocations(in: ".rela.text").first)
                object.write(UInt64(entry.symbolIndex) << 32 | 200, at: entry.entryOffset + ObjectBytes.RelocationEntry.infoField)
            }
        },
        .relocationOutOfRange: Producer(message: "relocation R_X86_64_8 out of range: 300 is not in") { context in
            let value = try await context.assemble(".globl byte_value\n.set byte_value, 300\n", name: "value")
            let field = try await context.assemble(".data\n.byte byte_value\n", name: "field")
            return try await context.load([field, value])
        },
        .misalignedRelocation: Producer(message: "relocation R_AARCH64_LDST64_ABS_LO12_NC improperly aligned") { context in
            // An x86_64 object relabeled as aarch64: the linker only needs the relocation.
            let path = try await context.assemble(".data\n.p2align 3\ntarget:\n.quad 0\n.long 0\n.long 0\n.quad target + 1\n", name: "misaligned")
            var object = try ObjectBytes(contentsOf: path)
            let entry = try #require(try object.relocations(in: ".rela.data").first)
            object.write(UInt16(183), at: ObjectBytes.machineOffset)
            object.write(UInt64(entry.symbolIndex) << 32 | 286, at: entry.entryOffset + ObjectBytes.RelocationEntry.infoField)
            try object.write(to: path)
            return try #require(throws: LoadError.self) {
                try StaticLinker.link([ObjectImage(contentsOf: path)], machine: .aarch64, map: LinkMap())
            }
        },
        .needsPIC: Producer(message: "references 'stderr'\n>>> 'stderr' is defined outside the module") { context in
            let object = try await context.compile("#include <stdio.h>\nint probe(void) { return fputs(\"x\", stderr); }", name: "nopic",
                                                   flags: ["-O2", "-fno-pic"])
            return try await context.load([object])
        },
        .tlsNotSupported: Producer(message: "thread-local variable 'per_thread' is not supported in modules") { context in
            let object = try await context.compile("__thread int per_thread = 1;\nint probe(void) { return per_thread; }", name: "tls")
            return try await context.load([object])
        },
        .outOfAddressSpace: Producer(message: "more than fits within 32-bit reach of itself (2 GiB)") { context in
            let object = try await context.compile("char huge[3UL << 30];\nchar *probe(void) { return huge; }", name: "huge")
            return try await context.load([object])
        },
        .systemCallFailed: Producer(message: "mprotect of the module's memory") { context in
            let object = try await context.compile(context.validSource, name: "faulted")
            let fault = SystemCallFaults.Fault(call: .mprotect, occurrence: 1, errno: EACCES)
            return try await context.load([object], failing: fault)
        },
        .badMetadata: Producer(message: "module has 2 module_init() entries; a module has at most one") { context in
            let source = "#include <modkit/module.h>\nstatic int start(void) { return 0; }\nmodule_init(start);\n"
            let first = try await context.compile(source, name: "first")
            let second = try await context.compile(source, name: "second")
            return try await context.load([first, second])
        },
        .initFailed: Producer(message: "module init_fails: init failed with error -19 (No such device); the module was not loaded") { context in
            let object = try await context.compile("""
                #include <errno.h>
                #include <modkit/module.h>
                static int start(void) { return -ENODEV; }
                module_init(start);
                """, name: "init_fails")
            return try await context.load([object])
        },
        .invalidParameter: Producer(message: "module with_count: invalid value 'many' for parameter 'count' (int)") { context in
            let object = try await context.compile("""
                #include <modkit/module.h>
                MODULE_LICENSE("GPL");
                static int count = 1;
                module_param(count, int, 0644);
                """, name: "with_count")
            return try await context.load([object], parameters: "count=many")
        },
        .alreadyLoaded: Producer(message: "module loaded_once is already loaded") { context in
            let object = try await context.compile(context.validSource, name: "loaded_once")
            return try await context.loadTwice(object)
        },
        .noObjects: Producer(message: "no object files given") { context in
            try await context.load([])
        },
        .badSignature: Producer(message: "invalid module signature") { context in
            // A trailer whose signature length runs past the start of the file.
            try await context.loadPatched { object in
                object.bytes += [0, 0, 2, 0, 0, 0, 0, 0, 0x7f, 0xff, 0xff, 0xff]
                object.bytes += Array("~Module signature appended~\n".utf8)
            }
        },
        .signatureRejected: Producer(message: "Loading of unsigned module is rejected") { context in
            let key = try await SigningKey.generate("signer", in: context.directory)
            var options = LogCollector().hostOptions()
            options.trustedCertificates = try TrustedCertificates(directory: try key.trustDirectory(in: context.directory))
            options.signatureEnforced = true
            let object = try await context.compile(context.validSource, name: "unsigned")
            return try await context.load([object], options: options)
        },
        .namespaceNotImported: Producer(message: "uses symbol ns_value from namespace KINDS_NS, but does not import it.") { context in
            let exporter = try await context.compile("""
                #include <modkit/module.h>
                MODULE_LICENSE("GPL");
                int ns_value(void) { return 1; }
                EXPORT_SYMBOL_NS(ns_value, KINDS_NS);
                """, name: "ns_exporter")
            let importer = try await context.compile("""
                #include <modkit/module.h>
                MODULE_LICENSE("GPL");
                int ns_value(void);
                int probe(void) { return ns_value(); }
                """, name: "ns_importer")
            return try await context.load(importer, after: exporter)
        },
        .badVersionMagic: Producer(message: "old_magic: version magic 'modkit-0 x86_64' should be 'modkit-1 x86_64'") { context in
            let object = try await context.compile("""
                static const char magic[] __attribute__((used, section(".modinfo"))) = "vermagic=modkit-0 x86_64";
                int probe(void) { return 1; }
                """, name: "old_magic")
            return try await context.load([object])
        },
        .symbolVersionMismatch: Producer(message: "stale_crc: disagrees about version of symbol printk") { context in
            let object = try await context.compile("""
                int printk(const char *fmt, ...);
                static const char versions[] __attribute__((used, section(".modkit.versions"))) = "0x00000000 printk";
                int probe(void) { return printk("hello\\n"); }
                """, name: "stale_crc")
            return try await context.load([object])
        },
        .badLinkMap: Producer(message: "bad.map:2: unknown line 'placement'; expected target, base") { _ in
            try #require(throws: LoadError.self) { try LinkMap(parsing: "base 0x10000000\nplacement 1\n", file: "bad.map") }
        },
    ]
}

/// A directory for one fixture's objects, and loads that must fail cleanly.
struct FixtureContext: Sendable {
    let directory: TemporaryDirectory
    let validSource = "int counter = 1;\nstatic const char greeting[] = \"hello\";\nint probe(void) { return counter + greeting[0]; }\n"

    init() throws {
        directory = try TemporaryDirectory(prefix: "kinds")
    }

    func compile(_ source: String, name: String, flags: [String] = ["-O2", "-fPIC"]) async throws -> String {
        try await ObjectBuilder.compile(source, flags: flags + ["-I\(PackagePaths.includeDirectory)"], name: name, in: directory)
    }

    func assemble(_ source: String, name: String) async throws -> String {
        try await ObjectBuilder.compile(source, language: .assembly, flags: [], name: name, in: directory)
    }

    /// Compiles the valid source, patches the object and loads it.
    func loadPatched(_ patch: (inout ObjectBytes) throws -> Void) async throws -> LoadError {
        let path = try await compile(validSource, name: "patched")
        var object = try ObjectBytes(contentsOf: path)
        try patch(&object)
        try object.write(to: path)
        return try await load([path])
    }

    /// Loads `files` in a new host, optionally failing one system call, and returns the error,
    /// after checking that nothing stayed loaded or mapped.
    func load(_ files: [String], parameters: String = "", failing fault: SystemCallFaults.Fault? = nil,
              options: HostOptions = LogCollector().hostOptions(),
              sourceLocation: SourceLocation = #_sourceLocation) async throws -> LoadError {
        var result: Result<Module, LoadError>?
        try await expectModuleAreaUnchanged(sourceLocation: sourceLocation) {
            let host = ModuleHost(options: options)
            defer { host.removeAll() }
            _ = SystemCallFaults.shared.observe(failing: fault) {
                result = Result { () throws(LoadError) in try host.load(files: files, parameters: parameters) }
            }
            #expect(host.modules.isEmpty, "a failed load left modules behind", sourceLocation: sourceLocation)
        }
        guard case .failure(let error) = try #require(result, sourceLocation: sourceLocation) else {
            throw FixtureError(description: "the load of \(files) succeeded")
        }
        return error
    }

    /// Loads `provider`, then `object` in the same host, and returns the second load's error.
    func load(_ object: String, after provider: String) async throws -> LoadError {
        try await withModuleArea {
            let host = ModuleHost(options: LogCollector().hostOptions())
            defer { host.removeAll() }
            let first = try host.load(files: [provider])
            let error = try #require(throws: LoadError.self) { try host.load(files: [object]) }
            #expect(host.modules.map(\.name) == [first.name])
            return error
        }
    }

    /// Loads `object` twice in one host and returns the second load's error.
    func loadTwice(_ object: String) async throws -> LoadError {
        try await withModuleArea {
            let host = ModuleHost(options: LogCollector().hostOptions())
            defer { host.removeAll() }
            let first = try host.load(files: [object])
            let error = try #require(throws: LoadError.self) { try host.load(files: [object]) }
            #expect(host.modules.map(\.name) == [first.name])
            return error
        }
    }
}
