import Foundation
import ModKit
import Testing

/// One x86_64 relocation type, exercised by an assembly fixture whose `probe` function returns
/// a value computed from the relocated field.
struct RelocationCase: Sendable, CustomTestStringConvertible {
    var type: String
    /// Assembly placed after the common preamble. It is the body of `probe` and any data it reads.
    var probe: String
    /// Extra options for the assembler driver, such as `-Wa,-mrelax-relocations=no`.
    var flags: [String] = []
    /// The assemblers that accept the fixture. Only GNU as takes `.quad sym@GOTPCREL`.
    var assemblers: [CCompiler] = CCompiler.allCases
    /// The value `probe` must return, from the loaded module's own symbol addresses.
    var expected: @Sendable (Module) throws -> UInt64

    var testDescription: String { type }

    /// Defines `target_function`, which returns its own address, a 24-byte `target_data` and a
    /// `near_target` next to the fixtures' read-only data, then starts `probe`.
    static let preamble = """
            .text
            .globl target_function
            .type target_function, @function
        target_function:
            leaq target_function(%rip), %rax
            ret
            .size target_function, . - target_function

            .data
            .p2align 3
            .globl target_data
            .type target_data, @object
        target_data:
            .quad 0x1122334455667788, 0, 0
            .size target_data, 24

            .section .rodata.near, "a"
            .globl near_target
        near_target:
            .byte 0

            .text
            .globl probe
            .type probe, @function
        probe:

        """

    /// Absolute symbols that the 8- and 16-bit absolute fixtures reference. They live in their
    /// own object because an assembler folds a reference to an absolute symbol of the same file
    /// into the addend.
    static let absoluteSymbols = """
            .globl absolute_word
            .set absolute_word, 0x1234
            .globl absolute_byte
            .set absolute_byte, 0x5a

        """

    static let all: [RelocationCase] = [
        RelocationCase(type: "R_X86_64_NONE", probe: """
                movq none_field(%rip), %rax
                ret
                .section .rodata
                .p2align 3
            none_field:
                .reloc ., R_X86_64_NONE, target_data
                .quad 0x0123456789abcdef
            """, expected: { _ in 0x0123_4567_89ab_cdef }),
        RelocationCase(type: "R_X86_64_64", probe: """
                movq field(%rip), %rax
                ret
                .section .data.rel.ro, "aw"
                .p2align 3
            field:
                .quad target_data + 16
            """, expected: { try $0.symbolAddress("target_data") + 16 }),
        RelocationCase(type: "R_X86_64_PC32", probe: """
                leaq target_data + 8(%rip), %rax
                ret
            """, expected: { try $0.symbolAddress("target_data") + 8 }),
        RelocationCase(type: "R_X86_64_PLT32", probe: """
                jmp target_function@PLT
            """, expected: { try $0.symbolAddress("target_function") }),
        RelocationCase(type: "R_X86_64_32", probe: """
                movl $target_data + 4, %eax
                ret
            """, expected: { try $0.symbolAddress("target_data") + 4 }),
        RelocationCase(type: "R_X86_64_32S", probe: """
                movq $target_data + 12, %rax
                ret
            """, expected: { try $0.symbolAddress("target_data") + 12 }),
        RelocationCase(type: "R_X86_64_16", probe: """
                movzwl field(%rip), %eax
                ret
                .section .rodata
            field:
                .word absolute_word + 2
            """, expected: { try $0.symbolAddress("absolute_word") + 2 }),
        RelocationCase(type: "R_X86_64_PC16", probe: """
                leaq field(%rip), %rcx
                movswq (%rcx), %rax
                addq %rcx, %rax
                ret
                .section .rodata
            field:
                .word near_target + 3 - .
            """, expected: { try $0.symbolAddress("near_target") + 3 }),
        RelocationCase(type: "R_X86_64_8", probe: """
                movzbl field(%rip), %eax
                ret
                .section .rodata
            field:
                .byte absolute_byte + 1
            """, expected: { try $0.symbolAddress("absolute_byte") + 1 }),
        RelocationCase(type: "R_X86_64_PC8", probe: """
                leaq field(%rip), %rcx
                movsbq (%rcx), %rax
                addq %rcx, %rax
                ret
                .section .rodata
            field:
                .byte near_target + 1 - .
            """, expected: { try $0.symbolAddress("near_target") + 1 }),
        RelocationCase(type: "R_X86_64_PC64", probe: """
                leaq field(%rip), %rax
                addq (%rax), %rax
                ret
                .section .rodata
                .p2align 3
            field:
                .quad target_data + 5 - .
            """, expected: { try $0.symbolAddress("target_data") + 5 }),
        RelocationCase(type: "R_X86_64_GOTPCREL", probe: """
                movq target_data@GOTPCREL(%rip), %rax
                ret
            """, flags: ["-Wa,-mrelax-relocations=no"], expected: { try $0.symbolAddress("target_data") }),
        RelocationCase(type: "R_X86_64_GOTPCRELX", probe: """
                jmp *target_function@GOTPCREL(%rip)
            """, expected: { try $0.symbolAddress("target_function") }),
        RelocationCase(type: "R_X86_64_REX_GOTPCRELX", probe: """
                movq target_data@GOTPCREL(%rip), %rax
                ret
            """, expected: { try $0.symbolAddress("target_data") }),
        // The field stores the distance from itself to the GOT entry.
        RelocationCase(type: "R_X86_64_GOTPCREL64", probe: """
                leaq field(%rip), %rcx
                addq (%rcx), %rcx
                movq (%rcx), %rax
                ret
                .section .rodata
                .p2align 3
            field:
                .quad target_data@GOTPCREL
            """, assemblers: [.gcc], expected: { try $0.symbolAddress("target_data") }),
        // The GOT base plus a GOT-relative offset: the two only add up to the symbol's address
        // if both relocations are right.
        RelocationCase(type: "R_X86_64_GOTPC32", probe: """
                leaq _GLOBAL_OFFSET_TABLE_(%rip), %rax
                movabsq $target_data@GOTOFF, %rcx
                addq %rcx, %rax
                ret
            """, expected: { try $0.symbolAddress("target_data") }),
        RelocationCase(type: "R_X86_64_GOTPC64", probe: """
            1:  leaq 1b(%rip), %rax
                movabsq $_GLOBAL_OFFSET_TABLE_ - 1b, %rcx
                addq %rcx, %rax
                movabsq $target_data@GOTOFF, %rcx
                addq %rcx, %rax
                ret
            """, expected: { try $0.symbolAddress("target_data") }),
        RelocationCase(type: "R_X86_64_GOTOFF64", probe: """
                leaq _GLOBAL_OFFSET_TABLE_(%rip), %rcx
                movabsq $target_data@GOTOFF + 8, %rax
                addq %rcx, %rax
                ret
            """, expected: { try $0.symbolAddress("target_data") + 8 }),
        RelocationCase(type: "R_X86_64_GOT64", probe: """
                leaq _GLOBAL_OFFSET_TABLE_(%rip), %rcx
                movabsq $target_data@GOT, %rax
                movq (%rcx,%rax), %rax
                ret
            """, expected: { try $0.symbolAddress("target_data") }),
        RelocationCase(type: "R_X86_64_PLTOFF64", probe: """
                leaq _GLOBAL_OFFSET_TABLE_(%rip), %rcx
                movabsq $target_function@PLTOFF, %rax
                addq %rcx, %rax
                jmp *%rax
            """, expected: { try $0.symbolAddress("target_function") }),
        RelocationCase(type: "R_X86_64_SIZE32", probe: """
                movl $target_data@SIZE + 5, %eax
                ret
            """, expected: { _ in 24 + 5 }),
        RelocationCase(type: "R_X86_64_SIZE64", probe: """
                movabsq $target_data@SIZE + 7, %rax
                ret
            """, expected: { _ in 24 + 7 }),
    ]
}

/// A relocation case assembled by one assembler.
struct AssembledCase: Sendable, CustomTestStringConvertible {
    var relocation: RelocationCase
    var assembler: CCompiler

    var testDescription: String { "\(relocation.type), \(assembler.rawValue)" }

    static let all = RelocationCase.all.flatMap { relocation in
        relocation.assemblers.map { AssembledCase(relocation: relocation, assembler: $0) }
    }
}

/// A value at or just past the edge of what a relocation type can store.
struct BoundaryCase: Sendable, CustomTestStringConvertible {
    /// How the fixture reaches `value`.
    enum Reach: Sendable {
        /// `S` is an absolute symbol set to `value` in a second object; `A` is 0.
        case absoluteSymbol
        /// The field's own label is `S`, so `S - P` is 0 and `A` is `value`.
        case selfRelative
        /// `S` is a 16-byte object, so `Z + A` is `value`.
        case symbolSize
        /// `G + GOT - P` (or `GOT - P`) depends on the layout: a first load with `A` = 0 measures
        /// it, then `A` makes up the difference. Only the addend changes, so the layout does not.
        case measuredGOTDistance
    }

    var type: String
    var value: Int64
    var fits: Bool
    var range: String
    var reach: Reach

    var testDescription: String { "\(type) \(value) \(fits ? "fits" : "out of range")" }

    /// `value` as the field stores it, read back sign-extended.
    var storedValue: Int64 {
        switch width {
        case 1: Int64(Int8(truncatingIfNeeded: value))
        case 2: Int64(Int16(truncatingIfNeeded: value))
        default: Int64(Int32(truncatingIfNeeded: value))
        }
    }

    /// Bytes of the field.
    var width: Int {
        switch type {
        case "R_X86_64_8", "R_X86_64_PC8": 1
        case "R_X86_64_16", "R_X86_64_PC16": 2
        default: 4
        }
    }

    /// The symbol the relocation references.
    var symbol: String {
        switch reach {
        case .absoluteSymbol: "boundary_value"
        case .symbolSize: "sized_object"
        case .selfRelative, .measuredGOTDistance: type == "R_X86_64_GOTPC32" ? "_GLOBAL_OFFSET_TABLE_" : "field"
        }
    }

    /// Cases at both ends of each range: the last value that fits and the first that does not.
    static let all: [BoundaryCase] = {
        var cases: [BoundaryCase] = []
        func add(_ type: String, _ minimum: Int64, _ maximum: Int64, _ reach: Reach) {
            let range = "[\(minimum), \(maximum)]"
            cases.append(BoundaryCase(type: type, value: maximum, fits: true, range: range, reach: reach))
            cases.append(BoundaryCase(type: type, value: maximum + 1, fits: false, range: range, reach: reach))
            cases.append(BoundaryCase(type: type, value: minimum, fits: true, range: range, reach: reach))
            cases.append(BoundaryCase(type: type, value: minimum - 1, fits: false, range: range, reach: reach))
        }
        // The 8- and 16-bit absolute types accept a value that fits either signed or unsigned.
        add("R_X86_64_8", -128, 255, .absoluteSymbol)
        add("R_X86_64_16", -32768, 65535, .absoluteSymbol)
        add("R_X86_64_32", 0, 4_294_967_295, .absoluteSymbol)
        add("R_X86_64_32S", -2_147_483_648, 2_147_483_647, .absoluteSymbol)
        add("R_X86_64_PC8", -128, 127, .selfRelative)
        add("R_X86_64_PC16", -32768, 32767, .selfRelative)
        add("R_X86_64_PC32", -2_147_483_648, 2_147_483_647, .selfRelative)
        add("R_X86_64_PLT32", -2_147_483_648, 2_147_483_647, .selfRelative)
        add("R_X86_64_SIZE32", -2_147_483_648, 2_147_483_647, .symbolSize)
        for type in ["R_X86_64_GOTPCREL", "R_X86_64_GOTPCRELX", "R_X86_64_REX_GOTPCRELX", "R_X86_64_GOTPC32"] {
            add(type, -2_147_483_648, 2_147_483_647, .measuredGOTDistance)
        }
        return cases
    }()

    /// Returns the assembly of the object whose relocated field is at `.data+0`, referencing
    /// `symbol` with `addend`.
    func fieldSource(addend: Int64) -> String {
        let directive = [1: ".byte", 2: ".word", 4: ".long"][width]!
        return """
                .data
                .globl field
            field:
                .reloc ., \(type), \(symbol) + (\(addend))
                \(directive) 0

                .section .rodata
                .globl sized_object
                .type sized_object, @object
            sized_object:
                .zero 16
                .size sized_object, 16

            """
    }
}

@Suite("x86_64 relocations")
struct RelocationTests {
    @Test("relocated value is what the symbols say", arguments: AssembledCase.all)
    func loadsAndRuns(_ run: AssembledCase) async throws {
        let directory = try TemporaryDirectory(prefix: "relocation")
        defer { directory.remove() }
        let relocation = run.relocation
        let object = try await ObjectBuilder.compile(RelocationCase.preamble + relocation.probe, language: .assembly,
                                                     compiler: run.assembler, flags: relocation.flags, name: "probe",
                                                     in: directory)
        let absolute = try await ObjectBuilder.compile(RelocationCase.absoluteSymbols, language: .assembly,
                                                       compiler: run.assembler, flags: [], name: "absolute", in: directory)
        let types = try ObjectBytes(contentsOf: object).relocationTypes
        try #require(types.contains(try X86Relocation.number(relocation.type)), "the fixture does not use \(relocation.type)")

        try await withModuleArea {
            let host = ModuleHost(options: .quiet)
            defer { host.removeAll() }
            let module = try host.load(files: [object, absolute])
            let probe = try module.function("probe", as: ProbeFunction.self)
            let expected = try relocation.expected(module)

            #expect(probe() == expected)
            try host.remove(module.name)
        }
    }

    @Test("value at the edge of the range", arguments: BoundaryCase.all)
    func rangeBoundary(_ boundary: BoundaryCase) async throws {
        let directory = try TemporaryDirectory(prefix: "boundary")
        defer { directory.remove() }
        var files: [String] = []
        var addend = boundary.value
        switch boundary.reach {
        case .absoluteSymbol:
            addend = 0
            files.append(try await ObjectBuilder.compile("""
                    .globl boundary_value
                    .set boundary_value, \(boundary.value)

                """, language: .assembly, flags: [], name: "value", in: directory))
        case .selfRelative:
            break
        case .symbolSize:
            addend = boundary.value - 16
        case .measuredGOTDistance:
            let distance = try await measureGOTDistance(boundary, in: directory)
            addend = boundary.value - distance
        }
        let field = try await ObjectBuilder.compile(boundary.fieldSource(addend: addend), language: .assembly,
                                                    flags: [], name: "field", in: directory)
        files.insert(field, at: 0)

        try await withModuleArea {
            let host = ModuleHost(options: .quiet)
            defer { host.removeAll() }
            if boundary.fits {
                let module = try host.load(files: files)
                let stored = try readField(module, width: boundary.width)
                #expect(stored == boundary.storedValue)
                try host.remove(module.name)
            } else {
                let error = try #require(throws: LoadError.self) { try host.load(files: files) }
                #expect(error.kind == .relocationOutOfRange)
                #expect(error.description == "\(field):(.data+0x0): relocation \(boundary.type) out of range: \(boundary.value) is not in \(boundary.range); references '\(boundary.symbol)'")
                #expect(host.modules.isEmpty)
            }
        }
    }

    /// Loads the fixture of `boundary` with addend 0 and returns the value the relocation
    /// stored: `G + GOT - P` or `GOT - P`.
    private func measureGOTDistance(_ boundary: BoundaryCase, in directory: TemporaryDirectory) async throws -> Int64 {
        let object = try await ObjectBuilder.compile(boundary.fieldSource(addend: 0), language: .assembly, flags: [],
                                                     name: "measure", in: directory)
        return try await withModuleArea {
            let host = ModuleHost(options: .quiet)
            defer { host.removeAll() }
            let module = try host.load(files: [object])
            return try readField(module, width: boundary.width)
        }
    }

    /// Reads the sign-extended value of the `width`-byte field at the module's `field` symbol.
    private func readField(_ module: Module, width: Int) throws -> Int64 {
        let field = try #require(module.address(of: "field"))
        switch width {
        case 1: return Int64(field.load(as: Int8.self))
        case 2: return Int64(field.loadUnaligned(as: Int16.self))
        default: return Int64(field.loadUnaligned(as: Int32.self))
        }
    }

    @Test("out-of-range value without a symbol names no symbol")
    func rangeErrorWithoutSymbol() async throws {
        let directory = try TemporaryDirectory(prefix: "boundary")
        defer { directory.remove() }
        // An assembler resolves a plain number itself and emits a relocation against symbol 0.
        let object = try await ObjectBuilder.compile("""
                .data
                .reloc ., R_X86_64_8, 256
                .byte 0

            """, language: .assembly, flags: [], name: "number", in: directory)

        try await withModuleArea {
            let host = ModuleHost(options: .quiet)
            defer { host.removeAll() }
            let error = try #require(throws: LoadError.self) { try host.load(files: [object]) }
            #expect(error.description == "\(object):(.data+0x0): relocation R_X86_64_8 out of range: 256 is not in [-128, 255]")
        }
    }

    // MARK: Symbols outside the module

    @Test("PLT32 to a far libc function goes through a stub")
    func branchStub() async throws {
        let directory = try TemporaryDirectory(prefix: "stub")
        defer { directory.remove() }
        let object = try await ObjectBuilder.compile("""
                .text
                .globl probe
                .type probe, @function
            probe:
                jmp strlen@PLT
                .size probe, . - probe

            """, language: .assembly, flags: [], name: "stub", in: directory)
        let strlenAddress = try #require(dlsym(nil, "strlen"))

        try await withModuleArea {
            let host = ModuleHost(options: .quiet)
            defer { host.removeAll() }
            let module = try host.load(files: [object])
            let probe = try module.function("probe", as: (@convention(c) (UnsafePointer<CChar>) -> UInt64).self)
            let probeAddress = try module.symbolAddress("probe")
            let distance = Int64(bitPattern: UInt64(UInt(bitPattern: strlenAddress)) &- probeAddress)
            try #require(distance.magnitude > UInt64(Int32.max), "libc is within 2 GiB of the module, so no stub is needed")

            #expect(probe("hello") == 5)

            // The jmp (e9 rel32) lands on a stub in the module that jumps to strlen.
            let code = try #require(UnsafeRawPointer(bitPattern: UInt(probeAddress)))
            #expect(code.load(as: UInt8.self) == 0xe9)
            let stub = probeAddress &+ 5 &+ UInt64(bitPattern: Int64(code.loadUnaligned(fromByteOffset: 1, as: Int32.self)))
            #expect(module.contains(stub))
            let stubCode = try #require(UnsafeRawPointer(bitPattern: UInt(stub)))
            #expect(Array(UnsafeRawBufferPointer(start: stubCode, count: 6)) == [0xff, 0x25, 0, 0, 0, 0])
            #expect(stubCode.loadUnaligned(fromByteOffset: 6, as: UInt64.self) == UInt64(UInt(bitPattern: strlenAddress)))
            try host.remove(module.name)
        }
    }

    @Test("C call to getpid runs", arguments: CCompiler.allCases)
    func processFunctionCall(_ compiler: CCompiler) async throws {
        let directory = try TemporaryDirectory(prefix: "stub")
        defer { directory.remove() }
        let object = try await ObjectBuilder.compile("""
            #include <unistd.h>
            int probe(void) { return getpid(); }
            """, compiler: compiler, in: directory)

        try await withModuleArea {
            let host = ModuleHost(options: .quiet)
            defer { host.removeAll() }
            let module = try host.load(files: [object])
            let probe = try module.function("probe", as: IntFunction.self)

            #expect(probe() == getpid())
            try host.remove(module.name)
        }
    }

    @Test("GOT entry of a libc variable holds its address", arguments: CCompiler.allCases)
    func processVariable(_ compiler: CCompiler) async throws {
        let directory = try TemporaryDirectory(prefix: "got")
        defer { directory.remove() }
        let object = try await ObjectBuilder.compile("""
            #include <stdio.h>
            FILE **probe(void) { return &stderr; }
            """, compiler: compiler, in: directory)
        let stderrAddress = try #require(dlsym(nil, "stderr"))

        try await withModuleArea {
            let host = ModuleHost(options: .quiet)
            defer { host.removeAll() }
            let module = try host.load(files: [object])
            let probe = try module.function("probe", as: ProbeFunction.self)

            #expect(probe() == UInt64(UInt(bitPattern: stderrAddress)))
            try host.remove(module.name)
        }
    }

    @Test("-fno-pic reference to stderr asks for -fPIC", arguments: CCompiler.allCases)
    func positionDependentObject(_ compiler: CCompiler) async throws {
        let directory = try TemporaryDirectory(prefix: "nopic")
        defer { directory.remove() }
        let marker = directory.file("ran")
        let object = try await ObjectBuilder.compile("""
            #include <fcntl.h>
            #include <stdio.h>
            #include <unistd.h>
            #include <modkit/module.h>
            static void mark(void) { close(open("\(marker)", O_CREAT | O_WRONLY, 0600)); }
            __attribute__((constructor)) static void constructor(void) { mark(); }
            static int start(void) { mark(); fprintf(stderr, "loaded\\n"); return 0; }
            static void stop(void) {}
            module_init(start);
            module_exit(stop);
            """, compiler: compiler, flags: ["-O2", "-fno-pic", "-I\(PackagePaths.includeDirectory)"], in: directory)

        try await expectModuleAreaUnchanged {
            let host = ModuleHost(options: .quiet)
            defer { host.removeAll() }
            let error = try #require(throws: LoadError.self) { try host.load(files: [object]) }

            #expect(error.kind == .needsPIC)
            #expect(error.file == object)
            #expect(error.symbol == "stderr")
            // The distance to libc varies from run to run.
            let message = error.message.replacing(#/-?[0-9]+ is not in/#, with: "N is not in")
            #expect(message == """
                relocation R_X86_64_PC32 out of range: N is not in [-2147483648, 2147483647]; references 'stderr'
                >>> 'stderr' is defined outside the module, beyond the reach of R_X86_64_PC32; rebuild the module with -fPIC
                """)
            #expect(!FileManager.default.fileExists(atPath: marker), "module code ran")
            #expect(host.modules.isEmpty)
        }
    }

    @Test("-fno-pic reference to another module asks for -fPIC")
    func positionDependentImport() async throws {
        let directory = try TemporaryDirectory(prefix: "nopic")
        defer { directory.remove() }
        let provider = try await ObjectBuilder.compile("int provider_value = 42;", name: "provider", in: directory)
        // The absolute address of `probe` puts the object below 2 GiB, far from the provider.
        let consumer = try await ObjectBuilder.compile("""
                .text
                .globl probe
            probe:
                movl $probe, %eax
                movl provider_value(%rip), %eax
                ret

            """, language: .assembly, flags: [], name: "consumer", in: directory)

        try await withModuleArea {
            let host = ModuleHost(options: .quiet)
            defer { host.removeAll() }
            _ = try host.load(files: [provider])
            let error = try #require(throws: LoadError.self) { try host.load(files: [consumer]) }

            #expect(error.kind == .needsPIC)
            #expect(error.location == "\(consumer):(.text+0x7)")
            let message = error.message.replacing(#/-?[0-9]+ is not in/#, with: "N is not in")
            #expect(message == """
                relocation R_X86_64_PC32 out of range: N is not in [-2147483648, 2147483647]; references 'provider_value'
                >>> 'provider_value' is exported by module provider, out of reach of this object: it uses absolute 32-bit addresses, so it was placed below 2 GiB; rebuild it with -fPIC
                """)
            #expect(host.modules.map(\.name) == ["provider"])
        }
    }

    // MARK: Rejected objects

    @Test("__thread variable is rejected by name", arguments: CCompiler.allCases)
    func threadLocalDefinition(_ compiler: CCompiler) async throws {
        let directory = try TemporaryDirectory(prefix: "tls")
        defer { directory.remove() }
        let object = try await ObjectBuilder.compile("""
            __thread int per_thread_counter;
            int probe(void) { return ++per_thread_counter; }
            """, compiler: compiler, in: directory)

        try await expectModuleAreaUnchanged {
            let host = ModuleHost(options: .quiet)
            let error = try #require(throws: LoadError.self) { try host.load(files: [object]) }

            #expect(error.kind == .tlsNotSupported)
            #expect(error.description == "\(object):(.tbss): thread-local variable 'per_thread_counter' is not supported in modules; use a per-thread structure from the host instead of __thread")
        }
    }

    @Test("extern __thread variable is rejected by name", arguments: CCompiler.allCases)
    func threadLocalReference(_ compiler: CCompiler) async throws {
        let directory = try TemporaryDirectory(prefix: "tls")
        defer { directory.remove() }
        let object = try await ObjectBuilder.compile("""
            extern __thread int per_thread_counter;
            int probe(void) { return per_thread_counter; }
            """, compiler: compiler, in: directory)
        let relocation = try #require(try ObjectBytes(contentsOf: object).relocations(in: ".rela.text").first)
        let typeName = try #require(X86Relocation.numbers.first { $0.value == relocation.type }?.key)

        try await expectModuleAreaUnchanged {
            let host = ModuleHost(options: .quiet)
            let error = try #require(throws: LoadError.self) { try host.load(files: [object]) }

            #expect(error.kind == .tlsNotSupported)
            #expect(error.description == "\(object):(.text+0x\(String(relocation.offset, radix: 16))): relocation \(typeName) against 'per_thread_counter': thread-local storage is not supported in modules; remove __thread variables or reach them through a host function")
        }
    }

    @Test("unknown relocation type is rejected with its number")
    func unknownType() async throws {
        let directory = try TemporaryDirectory(prefix: "unknown")
        defer { directory.remove() }
        let path = try await ObjectBuilder.compile(RelocationCase.preamble + """
                ret
                .section .data.rel.ro, "aw"
                .p2align 3
                .quad target_data
            """, language: .assembly, flags: [], name: "unknown", in: directory)
        var object = try ObjectBytes(contentsOf: path)
        let entry = try #require(try object.relocations(in: ".rela.data.rel.ro").first)
        object.write(UInt64(entry.symbolIndex) << 32 | 200, at: entry.entryOffset + ObjectBytes.RelocationEntry.infoField)
        try object.write(to: path)

        try await expectModuleAreaUnchanged {
            let host = ModuleHost(options: .quiet)
            let error = try #require(throws: LoadError.self) { try host.load(files: [path]) }

            #expect(error.kind == .unsupportedRelocation)
            #expect(error.description == "\(path):(.data.rel.ro+0x0): unsupported relocation type 200 against 'target_data'")
        }
    }

    @Test("dynamic relocation type is rejected with its name")
    func dynamicType() async throws {
        let directory = try TemporaryDirectory(prefix: "unknown")
        defer { directory.remove() }
        let path = try await ObjectBuilder.compile(RelocationCase.preamble + """
                ret
                .section .data.rel.ro, "aw"
                .p2align 3
                .quad target_data
            """, language: .assembly, flags: [], name: "copy", in: directory)
        var object = try ObjectBytes(contentsOf: path)
        let entry = try #require(try object.relocations(in: ".rela.data.rel.ro").first)
        let copyType: UInt64 = 5
        object.write(UInt64(entry.symbolIndex) << 32 | copyType, at: entry.entryOffset + ObjectBytes.RelocationEntry.infoField)
        try object.write(to: path)

        try await withModuleArea {
            let host = ModuleHost(options: .quiet)
            let error = try #require(throws: LoadError.self) { try host.load(files: [path]) }

            #expect(error.kind == .unsupportedRelocation)
            #expect(error.description == "\(path):(.data.rel.ro+0x0): unsupported relocation type R_X86_64_COPY (5) against 'target_data'")
        }
    }

    // MARK: Large code model

    @Test("-mcmodel=large -fPIC code runs", arguments: CCompiler.allCases)
    func largeCodeModel(_ compiler: CCompiler) async throws {
        let directory = try TemporaryDirectory(prefix: "large")
        defer { directory.remove() }
        let object = try await ObjectBuilder.compile("""
            #include <string.h>
            static long counter = 5;
            long shared_value = 7;
            static long __attribute__((noinline)) triple(long x) { return x * 3; }
            long __attribute__((noinline)) hundred(void) { return 100; }
            long probe(const char *text) {
                counter += 1;
                return counter + shared_value + (long)strlen(text) + triple(2) + hundred();
            }
            """, compiler: compiler, flags: ["-O2", "-fPIC", "-mcmodel=large"], in: directory)
        let types = try ObjectBytes(contentsOf: object).relocationTypes
        for type in ["R_X86_64_GOTPC64", "R_X86_64_GOTOFF64", "R_X86_64_GOT64"] {
            #expect(types.contains(try X86Relocation.number(type)), "\(compiler) emitted no \(type)")
        }
        if compiler == .gcc {
            #expect(types.contains(try X86Relocation.number("R_X86_64_PLTOFF64")), "gcc emitted no R_X86_64_PLTOFF64")
        }

        try await withModuleArea {
            let host = ModuleHost(options: .quiet)
            defer { host.removeAll() }
            let module = try host.load(files: [object])
            let probe = try module.function("probe", as: (@convention(c) (UnsafePointer<CChar>) -> Int).self)

            #expect(probe("four") == 6 + 7 + 4 + 6 + 100)
            #expect(probe("four") == 7 + 7 + 4 + 6 + 100)
            try host.remove(module.name)
        }
    }
}
