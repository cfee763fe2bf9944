import Foundation
import Testing
@testable import ModKit

/// A boundary case that must fail one step past its range, with the machine it is for.
struct FailingCase: Sendable, CustomTestStringConvertible {
    var machine: Machine
    var boundary: LinkBoundaryCase
    var cases: [LinkBoundaryCase]

    var testDescription: String { "\(machine.rawValue) \(boundary.symbol)" }

    static let all: [FailingCase] =
        aarch64BoundaryCases.filter { $0.failure != nil }.map { FailingCase(machine: .aarch64, boundary: $0, cases: aarch64BoundaryCases) }
        + x86_64BoundaryCases.filter { $0.failure != nil }.map { FailingCase(machine: .x86_64, boundary: $0, cases: x86_64BoundaryCases) }
}

/// Range and alignment checks, through the linker at fixed addresses: every symbol of a fixture
/// sits at the edge of its range, and moving one of them a step further must fail with an
/// exact message.
@Suite("relocation range and alignment checks")
struct RelocationBoundaryTests {
    @Test("every boundary links", arguments: [Machine.aarch64, .x86_64])
    func boundariesLink(machine: Machine) async throws {
        let cases = machine == .aarch64 ? aarch64BoundaryCases : x86_64BoundaryCases
        let directory = try TemporaryDirectory(prefix: "boundary")
        defer { directory.remove() }
        let object = try await Self.assemble(cases, machine: machine, in: directory)
        let places = try BoundaryFixture.places(of: object)

        let link = try StaticLinker.link([ObjectImage(contentsOf: object)], machine: machine,
                                         map: BoundaryFixture.map(cases, places: places))

        #expect(link.map.sections.map(\.name) == [".text"])
        #expect(link.map.sections.first?.address == BoundaryFixture.base)
    }

    @Test("one step past fails", arguments: FailingCase.all)
    func pastBoundaryFails(failing: FailingCase) async throws {
        let directory = try TemporaryDirectory(prefix: "boundary")
        defer { directory.remove() }
        let object = try await Self.assemble(failing.cases, machine: failing.machine, in: directory)
        let places = try BoundaryFixture.places(of: object)
        let map = BoundaryFixture.map(failing.cases, places: places, failing: failing.boundary.symbol)
        let offset = places[failing.boundary.symbol]! - BoundaryFixture.base

        let error = try #require(throws: LoadError.self) {
            try StaticLinker.link([ObjectImage(contentsOf: object)], machine: failing.machine, map: map)
        }

        #expect(error.description == "\(object):(.text+0x\(String(offset, radix: 16))): \(failing.boundary.failure!.message)")
        #expect(error.symbol == failing.boundary.symbol)
    }

    private static func assemble(_ cases: [LinkBoundaryCase], machine: Machine, in directory: TemporaryDirectory) async throws -> String {
        try await ObjectBuilder.compile(BoundaryFixture.source(cases), language: .assembly, compiler: .clang,
                                        flags: ["--target=\(machine.rawValue)-linux-gnu"], name: "fixture", in: directory)
    }
}

/// The aarch64 formulas on their own, where the encoding is easy to state by hand.
@Suite("aarch64 relocation encoding")
struct AArch64EncodingTests {
    private func inputs(S: UInt64, A: Int64 = 0, P: UInt64 = 0x1000_0000, L: UInt64? = nil) -> RelocationInputs {
        RelocationInputs(S: S, A: A, P: P, GOT: 0x2000_0000, G: 8, L: L, Z: 0)
    }

    @Test("negative MOVW_PREL_G0 turns MOVZ into MOVN")
    func negativeMoveWide() {
        let movz: UInt64 = 0xd280_0000  // movz x0, #0
        let result = AArch64.compute(AArch64.R_AARCH64_MOVW_PREL_G0, inputs(S: 0x1000_0000 - 2), field: movz)

        guard case .write(let width, let value, let mask) = result else {
            Issue.record("expected a write, got \(result)")
            return
        }
        #expect(width == 4)
        #expect(UInt32(movz & ~mask | value & mask) == 0x9280_0020)  // movn x0, #1, which is -2
    }

    @Test("MOVK keeps its opcode for a negative value")
    func negativeMoveKeep() {
        let movk: UInt64 = 0xf2a0_0000  // movk x0, #0, lsl #16
        let result = AArch64.compute(AArch64.R_AARCH64_MOVW_PREL_G1_NC, inputs(S: 0x1000_0000 - 0x2_0000), field: movk)

        guard case .write(_, let value, let mask) = result else {
            Issue.record("expected a write, got \(result)")
            return
        }
        #expect(UInt32(movk & ~mask | value & mask) == 0xf2bf_ffc0)  // movk x0, #0xfffe, lsl #16
    }

    @Test("far call goes through the stub")
    func farCallUsesStub() {
        let stub: UInt64 = 0x1000_1000
        let result = AArch64.compute(AArch64.R_AARCH64_CALL26, inputs(S: 0x9000_0000, L: stub), field: 0x9400_0000)

        guard case .write(_, let value, let mask) = result else {
            Issue.record("expected a write, got \(result)")
            return
        }
        #expect(mask == 0x3ff_ffff)
        #expect(value == 0x1000 / 4)
    }

    @Test("far call with an addend is out of range")
    func farCallWithAddend() {
        let result = AArch64.compute(AArch64.R_AARCH64_CALL26, inputs(S: 0x9000_0000, A: 4, L: 0x1000_1000), field: 0x9400_0000)

        guard case .outOfRange(let value, let minimum, let maximum, _) = result else {
            Issue.record("expected out of range, got \(result)")
            return
        }
        #expect(value == 0x8000_0004)
        #expect(minimum == -0x800_0000)
        #expect(maximum == 0x7ff_ffff)
    }

    @Test("stub loads its target into x16")
    func stubBytes() {
        var bytes = [UInt8](repeating: 0, count: AArch64.stubSize)
        bytes.withUnsafeMutableBytes { AArch64.writeStub($0.baseAddress!, address: 0x1000, target: 0x1122_3344_5566_7788) }

        #expect(bytes == [0x50, 0x00, 0x00, 0x58, 0x00, 0x02, 0x1f, 0xd6, 0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11])
    }

    @Test("TLS relocations are rejected as thread-local")
    func threadLocalTypes() {
        let support = AArch64.support(of: 562)  // R_AARCH64_TLSDESC_ADR_PAGE21

        guard case .threadLocal = support else {
            Issue.record("expected .threadLocal, got \(support)")
            return
        }
    }
}

/// `R_X86_64_SIZE64` and `R_X86_64_SIZE32` take the size of the symbol's definition, wherever in
/// the module it is.
@Suite("symbol size relocations")
struct SymbolSizeTests {
    @Test("size comes from the defining object")
    func sizeFromDefinition() async throws {
        let directory = try TemporaryDirectory(prefix: "size")
        defer { directory.remove() }
        let reference = try await ObjectBuilder.compile("""
                .data
                .globl reference
            reference:
                .quad table@SIZE
                .long table@SIZE + 1
            """, language: .assembly, compiler: .clang, flags: ["--target=x86_64-linux-gnu"], name: "reference", in: directory)
        let definition = try await ObjectBuilder.compile("""
                .data
                .globl table
                .type table, @object
                .size table, 24
            table:
                .zero 24
            """, language: .assembly, compiler: .clang, flags: ["--target=x86_64-linux-gnu"], name: "definition", in: directory)

        let link = try StaticLinker.link([ObjectImage(contentsOf: reference), ObjectImage(contentsOf: definition)],
                                         machine: .x86_64, map: LinkMap())

        let data = try #require(link.map.sections.first { $0.file == reference && $0.name == ".data" })
        let offset = Int(data.address - link.map.base!)
        let size64 = link.image[offset ..< offset + 8].reversed().reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        let size32 = link.image[offset + 8 ..< offset + 12].reversed().reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        #expect(size64 == 24)
        #expect(size32 == 25)
    }
}
