import Foundation
@testable import ModKit

/// One relocation at the edge of its range: an assembly line that references `symbol`, where
/// `symbol` goes in a link that must succeed, and where it goes in one that must fail.
struct LinkBoundaryCase: Sendable {
    /// An instruction or data directive with `SYMBOL` in place of the symbol's name.
    var line: String
    /// The symbol, or empty for a directive that only aligns or pads.
    var symbol: String
    /// The symbol's address in terms of the place `P` (the relocated field's address): at the
    /// boundary, still in range.
    var address: @Sendable (_ P: UInt64) -> UInt64
    /// An address just past the boundary, and the error message the link must then give,
    /// after the `file:(.text+0x...): ` prefix.
    var failure: (address: @Sendable (_ P: UInt64) -> UInt64, message: String)?

    var assemblyLine: String { "    " + line.replacingOccurrences(of: "SYMBOL", with: symbol) }
}

/// The assembly fixture of a table of boundary cases, and the map that puts every symbol at its
/// boundary.
enum BoundaryFixture {
    /// The link's base address; the layout puts `.text`, the only section, there.
    static let base: UInt64 = 0x1000_0000

    static func source(_ cases: [LinkBoundaryCase]) -> String {
        var lines = ["    .text", "    .globl entry", "    .p2align 4", "entry:"]
        lines += cases.map(\.assemblyLine)
        return lines.joined(separator: "\n") + "\n"
    }

    /// Returns the place of each symbol's relocation: `.text` at `base` plus the relocation's offset.
    static func places(of objectPath: String) throws -> [String: UInt64] {
        let object = try ObjectFile(ObjectImage(contentsOf: objectPath))
        var places: [String: UInt64] = [:]
        for section in object.relocationSections {
            for relocation in section.relocations {
                places[object.symbolName(relocation.symbolIndex)] = base + relocation.offset
            }
        }
        return places
    }

    /// Returns a map with the base and every symbol at its boundary, except `failing`, which goes
    /// just past it.
    static func map(_ cases: [LinkBoundaryCase], places: [String: UInt64], failing: String? = nil) -> LinkMap {
        var map = LinkMap()
        map.base = base
        for boundary in cases where !boundary.symbol.isEmpty {
            let place = places[boundary.symbol]!
            if boundary.symbol == failing, let failure = boundary.failure {
                map.symbols[boundary.symbol] = failure.address(place)
            } else {
                map.symbols[boundary.symbol] = boundary.address(place)
            }
        }
        return map
    }
}

private func page(_ address: UInt64) -> UInt64 { address & ~0xfff }

/// Every aarch64 relocation type that GCC and Clang emit outside TLS, at the ends of its range.
let aarch64BoundaryCases: [LinkBoundaryCase] = [
    LinkBoundaryCase(line: "bl SYMBOL", symbol: "call_max", address: { $0 &+ 0x7ff_fffc }),
    LinkBoundaryCase(line: "bl SYMBOL", symbol: "call_min", address: { $0 &- 0x800_0000 }),
    LinkBoundaryCase(line: "b SYMBOL", symbol: "jump_max", address: { $0 &+ 0x7ff_fffc }),
    LinkBoundaryCase(line: "b SYMBOL", symbol: "jump_min", address: { $0 &- 0x800_0000 }),
    // Beyond +-128 MiB, calls and jumps go through a branch stub.
    LinkBoundaryCase(line: "bl SYMBOL", symbol: "call_far", address: { $0 &+ 0x800_0000 }),
    LinkBoundaryCase(line: "b SYMBOL", symbol: "jump_far", address: { $0 &- 0x800_0004 }),
    LinkBoundaryCase(line: "bl SYMBOL+4", symbol: "call_addend", address: { $0 &+ 0x7ff_fff8 },
                 failure: ({ $0 &+ 0x7ff_fffc }, "relocation R_AARCH64_CALL26 out of range: 134217728 is not in [-134217728, 134217727]; references 'call_addend'")),
    LinkBoundaryCase(line: "bl SYMBOL", symbol: "call_misaligned", address: { $0 &+ 0x100 },
                 failure: ({ $0 &+ 0x102 }, "relocation R_AARCH64_CALL26 improperly aligned: 0x102 is not aligned to 4 bytes; references 'call_misaligned'")),
    LinkBoundaryCase(line: "b.eq SYMBOL", symbol: "cond_max", address: { $0 &+ 0xf_fffc },
                 failure: ({ $0 &+ 0x10_0000 }, "relocation R_AARCH64_CONDBR19 out of range: 1048576 is not in [-1048576, 1048575]; references 'cond_max'")),
    LinkBoundaryCase(line: "b.ne SYMBOL", symbol: "cond_min", address: { $0 &- 0x10_0000 },
                 failure: ({ $0 &- 0x10_0004 }, "relocation R_AARCH64_CONDBR19 out of range: -1048580 is not in [-1048576, 1048575]; references 'cond_min'")),
    LinkBoundaryCase(line: "tbz x0, #0, SYMBOL", symbol: "test_max", address: { $0 &+ 0x7ffc },
                 failure: ({ $0 &+ 0x8000 }, "relocation R_AARCH64_TSTBR14 out of range: 32768 is not in [-32768, 32767]; references 'test_max'")),
    LinkBoundaryCase(line: "tbnz x1, #63, SYMBOL", symbol: "test_min", address: { $0 &- 0x8000 },
                 failure: ({ $0 &- 0x8004 }, "relocation R_AARCH64_TSTBR14 out of range: -32772 is not in [-32768, 32767]; references 'test_min'")),
    LinkBoundaryCase(line: "ldr x0, SYMBOL", symbol: "literal_max", address: { $0 &+ 0xf_fffc },
                 failure: ({ $0 &+ 0x10_0000 }, "relocation R_AARCH64_LD_PREL_LO19 out of range: 1048576 is not in [-1048576, 1048575]; references 'literal_max'")),
    LinkBoundaryCase(line: "ldr w0, SYMBOL", symbol: "literal_min", address: { $0 &- 0x10_0000 },
                 failure: ({ $0 &- 0x10_0002 }, "relocation R_AARCH64_LD_PREL_LO19 out of range: -1048578 is not in [-1048576, 1048575]; references 'literal_min'")),
    LinkBoundaryCase(line: "adr x0, SYMBOL", symbol: "adr_max", address: { $0 &+ 0xf_ffff },
                 failure: ({ $0 &+ 0x10_0000 }, "relocation R_AARCH64_ADR_PREL_LO21 out of range: 1048576 is not in [-1048576, 1048575]; references 'adr_max'")),
    LinkBoundaryCase(line: "adr x0, SYMBOL", symbol: "adr_min", address: { $0 &- 0x10_0000 }),
    LinkBoundaryCase(line: "adrp x0, SYMBOL", symbol: "page_max", address: { page($0) &+ 0xffff_ffff },
                 failure: ({ page($0) &+ 0x1_0000_0000 }, "relocation R_AARCH64_ADR_PREL_PG_HI21 out of range: 4294967296 is not in [-4294967296, 4294967295]; references 'page_max'")),
    LinkBoundaryCase(line: "adrp x0, SYMBOL", symbol: "page_min", address: { page($0) &- 0x1_0000_0000 }),
    LinkBoundaryCase(line: "adrp x0, :pg_hi21_nc:SYMBOL", symbol: "page_unchecked", address: { page($0) &+ 0x1_0000_0123 }),
    LinkBoundaryCase(line: "add x0, x0, :lo12:SYMBOL", symbol: "add_low", address: { _ in 0x1234_5fff }),
    LinkBoundaryCase(line: "ldrb w0, [x0, :lo12:SYMBOL]", symbol: "load8", address: { _ in 0x1234_5fff }),
    LinkBoundaryCase(line: "ldrh w0, [x0, :lo12:SYMBOL]", symbol: "load16", address: { _ in 0x1234_5ffe },
                 failure: ({ _ in 0x1234_5fff }, "relocation R_AARCH64_LDST16_ABS_LO12_NC improperly aligned: 0x12345fff is not aligned to 2 bytes; references 'load16'")),
    LinkBoundaryCase(line: "ldr w0, [x0, :lo12:SYMBOL]", symbol: "load32", address: { _ in 0x1234_5ffc },
                 failure: ({ _ in 0x1234_5ffe }, "relocation R_AARCH64_LDST32_ABS_LO12_NC improperly aligned: 0x12345ffe is not aligned to 4 bytes; references 'load32'")),
    LinkBoundaryCase(line: "ldr x0, [x0, :lo12:SYMBOL]", symbol: "load64", address: { _ in 0x1234_5ff8 },
                 failure: ({ _ in 0x1234_5ff4 }, "relocation R_AARCH64_LDST64_ABS_LO12_NC improperly aligned: 0x12345ff4 is not aligned to 8 bytes; references 'load64'")),
    LinkBoundaryCase(line: "ldr q0, [x0, :lo12:SYMBOL]", symbol: "load128", address: { _ in 0x1234_5ff0 },
                 failure: ({ _ in 0x1234_5ff8 }, "relocation R_AARCH64_LDST128_ABS_LO12_NC improperly aligned: 0x12345ff8 is not aligned to 16 bytes; references 'load128'")),
    LinkBoundaryCase(line: "movz x0, #:abs_g0:SYMBOL", symbol: "uabs_g0", address: { _ in 0xffff },
                 failure: ({ _ in 0x1_0000 }, "relocation R_AARCH64_MOVW_UABS_G0 out of range: 65536 is not in [0, 65535]; references 'uabs_g0'")),
    LinkBoundaryCase(line: "movk x0, #:abs_g0_nc:SYMBOL", symbol: "uabs_g0_nc", address: { _ in 0x1234_5678_9abc_def0 }),
    LinkBoundaryCase(line: "movz x0, #:abs_g1:SYMBOL", symbol: "uabs_g1", address: { _ in 0xffff_ffff },
                 failure: ({ _ in 0x1_0000_0000 }, "relocation R_AARCH64_MOVW_UABS_G1 out of range: 4294967296 is not in [0, 4294967295]; references 'uabs_g1'")),
    LinkBoundaryCase(line: "movk x0, #:abs_g1_nc:SYMBOL", symbol: "uabs_g1_nc", address: { _ in 0x1234_5678_9abc_def0 }),
    LinkBoundaryCase(line: "movz x0, #:abs_g2:SYMBOL", symbol: "uabs_g2", address: { _ in 0xffff_ffff_ffff },
                 failure: ({ _ in 0x1_0000_0000_0000 }, "relocation R_AARCH64_MOVW_UABS_G2 out of range: 281474976710656 is not in [0, 281474976710655]; references 'uabs_g2'")),
    LinkBoundaryCase(line: "movk x0, #:abs_g2_nc:SYMBOL", symbol: "uabs_g2_nc", address: { _ in 0x1234_5678_9abc_def0 }),
    LinkBoundaryCase(line: "movk x0, #:abs_g3:SYMBOL", symbol: "uabs_g3", address: { _ in 0xfedc_ba98_7654_3210 }),
    LinkBoundaryCase(line: "movz x0, #:abs_g0_s:SYMBOL", symbol: "sabs_g0_min", address: { _ in UInt64(bitPattern: -0x1_0000) },
                 failure: ({ _ in UInt64(bitPattern: -0x1_0001) }, "relocation R_AARCH64_MOVW_SABS_G0 out of range: -65537 is not in [-65536, 65535]; references 'sabs_g0_min'")),
    LinkBoundaryCase(line: "movz x0, #:abs_g0_s:SYMBOL", symbol: "sabs_g0_max", address: { _ in 0xffff }),
    LinkBoundaryCase(line: "movz x0, #:abs_g1_s:SYMBOL", symbol: "sabs_g1_min", address: { _ in UInt64(bitPattern: -0x1_0000_0000) }),
    LinkBoundaryCase(line: "movz x0, #:abs_g1_s:SYMBOL", symbol: "sabs_g1_max", address: { _ in 0xffff_ffff },
                 failure: ({ _ in 0x1_0000_0000 }, "relocation R_AARCH64_MOVW_SABS_G1 out of range: 4294967296 is not in [-4294967296, 4294967295]; references 'sabs_g1_max'")),
    LinkBoundaryCase(line: "movz x0, #:abs_g2_s:SYMBOL", symbol: "sabs_g2_min", address: { _ in UInt64(bitPattern: -0x1_0000_0000_0000) }),
    LinkBoundaryCase(line: "movz x0, #:abs_g2_s:SYMBOL", symbol: "sabs_g2_max", address: { _ in 0xffff_ffff_ffff }),
    LinkBoundaryCase(line: "movz x0, #:prel_g0:SYMBOL", symbol: "prel_g0_min", address: { $0 &- 0x1_0000 },
                 failure: ({ $0 &- 0x1_0001 }, "relocation R_AARCH64_MOVW_PREL_G0 out of range: -65537 is not in [-65536, 65535]; references 'prel_g0_min'")),
    LinkBoundaryCase(line: "movn x0, #:prel_g0:SYMBOL", symbol: "prel_g0_max", address: { $0 &+ 0xffff }),
    LinkBoundaryCase(line: "movk x0, #:prel_g0_nc:SYMBOL", symbol: "prel_g0_nc", address: { $0 &+ 0x1_2345_6789 }),
    LinkBoundaryCase(line: "movz x0, #:prel_g1:SYMBOL", symbol: "prel_g1_min", address: { $0 &- 0x1_0000_0000 }),
    LinkBoundaryCase(line: "movz x0, #:prel_g1:SYMBOL", symbol: "prel_g1_max", address: { $0 &+ 0xffff_ffff },
                 failure: ({ $0 &+ 0x1_0000_0000 }, "relocation R_AARCH64_MOVW_PREL_G1 out of range: 4294967296 is not in [-4294967296, 4294967295]; references 'prel_g1_max'")),
    LinkBoundaryCase(line: "movk x0, #:prel_g1_nc:SYMBOL", symbol: "prel_g1_nc", address: { $0 &- 0x1_2345_6789 }),
    LinkBoundaryCase(line: "movz x0, #:prel_g2:SYMBOL", symbol: "prel_g2_min", address: { $0 &- 0x1_0000_0000_0000 },
                 failure: ({ $0 &- 0x1_0000_0000_0001 }, "relocation R_AARCH64_MOVW_PREL_G2 out of range: -281474976710657 is not in [-281474976710656, 281474976710655]; references 'prel_g2_min'")),
    LinkBoundaryCase(line: "movz x0, #:prel_g2:SYMBOL", symbol: "prel_g2_max", address: { $0 &+ 0xffff_ffff_ffff }),
    LinkBoundaryCase(line: "movk x0, #:prel_g2_nc:SYMBOL", symbol: "prel_g2_nc", address: { $0 &+ 0x1234_5678_9abc }),
    LinkBoundaryCase(line: "movz x0, #:prel_g3:SYMBOL", symbol: "prel_g3", address: { $0 &- 0x0123_4567_89ab_cdef }),
    LinkBoundaryCase(line: "adrp x0, :got:SYMBOL", symbol: "got_page", address: { _ in 0x7fff_1234_5678 }),
    LinkBoundaryCase(line: "ldr x0, [x0, :got_lo12:SYMBOL]", symbol: "got_page", address: { _ in 0x7fff_1234_5678 }),
    LinkBoundaryCase(line: "ldr x0, [x0, #:gotpage_lo15:SYMBOL]", symbol: "got_page15", address: { _ in 0x7fff_1234_5680 }),
    LinkBoundaryCase(line: "ldr x0, :got:SYMBOL", symbol: "got_literal", address: { _ in 0x7fff_1234_5688 }),
    LinkBoundaryCase(line: ".p2align 3", symbol: "", address: { _ in 0 }),
    LinkBoundaryCase(line: ".quad SYMBOL", symbol: "abs64", address: { _ in 0xfedc_ba98_7654_3210 }),
    LinkBoundaryCase(line: ".word SYMBOL", symbol: "abs32_max", address: { _ in 0xffff_ffff },
                 failure: ({ _ in 0x1_0000_0000 }, "relocation R_AARCH64_ABS32 out of range: 4294967296 is not in [-2147483648, 4294967295]; references 'abs32_max'")),
    LinkBoundaryCase(line: ".word SYMBOL", symbol: "abs32_min", address: { _ in UInt64(bitPattern: -0x8000_0000) }),
    LinkBoundaryCase(line: ".hword SYMBOL", symbol: "abs16_max", address: { _ in 0xffff }),
    LinkBoundaryCase(line: ".hword SYMBOL", symbol: "abs16_min", address: { _ in UInt64(bitPattern: -0x8000) },
                 failure: ({ _ in UInt64(bitPattern: -0x8001) }, "relocation R_AARCH64_ABS16 out of range: -32769 is not in [-32768, 65535]; references 'abs16_min'")),
    LinkBoundaryCase(line: ".word 0", symbol: "", address: { _ in 0 }),
    LinkBoundaryCase(line: ".quad SYMBOL - .", symbol: "prel64", address: { $0 &- 0x1234_5678_9abc }),
    LinkBoundaryCase(line: ".word SYMBOL - .", symbol: "prel32_max", address: { $0 &+ 0xffff_ffff },
                 failure: ({ $0 &+ 0x1_0000_0000 }, "relocation R_AARCH64_PREL32 out of range: 4294967296 is not in [-2147483648, 4294967295]; references 'prel32_max'")),
    LinkBoundaryCase(line: ".word SYMBOL - .", symbol: "prel32_min", address: { $0 &- 0x8000_0000 }),
    LinkBoundaryCase(line: ".hword SYMBOL - .", symbol: "prel16_max", address: { $0 &+ 0xffff }),
    LinkBoundaryCase(line: ".hword SYMBOL - .", symbol: "prel16_min", address: { $0 &- 0x8000 },
                 failure: ({ $0 &- 0x8001 }, "relocation R_AARCH64_PREL16 out of range: -32769 is not in [-32768, 65535]; references 'prel16_min'")),
    LinkBoundaryCase(line: ".word SYMBOL@PLT - .", symbol: "plt32_max", address: { $0 &+ 0x7fff_ffff }),
    LinkBoundaryCase(line: ".word SYMBOL@PLT - .", symbol: "plt32_min", address: { $0 &- 0x8000_0000 }),
]

/// The x86_64 relocation types that GCC and Clang emit for C and C++ outside TLS, at the ends
/// of their ranges.
let x86_64BoundaryCases: [LinkBoundaryCase] = [
    // A call's field ends 4 bytes before the next instruction, so the addend is -4.
    LinkBoundaryCase(line: "call SYMBOL@PLT", symbol: "call_max", address: { $0 &+ 4 + 0x7fff_ffff }),
    LinkBoundaryCase(line: "call SYMBOL@PLT", symbol: "call_min", address: { $0 &+ 4 &- 0x8000_0000 }),
    LinkBoundaryCase(line: "leaq SYMBOL(%rip), %rax", symbol: "pc32_max", address: { $0 &+ 4 + 0x7fff_ffff },
                 failure: ({ $0 &+ 4 + 0x8000_0000 }, "relocation R_X86_64_PC32 out of range: 2147483648 is not in [-2147483648, 2147483647]; references 'pc32_max'")),
    LinkBoundaryCase(line: "leaq SYMBOL(%rip), %rax", symbol: "pc32_min", address: { $0 &+ 4 &- 0x8000_0000 }),
    LinkBoundaryCase(line: "movq SYMBOL@GOTPCREL(%rip), %rax", symbol: "got_load", address: { _ in 0x7fff_1234_5678 }),
    LinkBoundaryCase(line: "call *SYMBOL@GOTPCREL(%rip)", symbol: "got_call", address: { _ in 0x7fff_1234_5680 }),
    LinkBoundaryCase(line: "movl $SYMBOL, %eax", symbol: "abs32_max", address: { _ in 0xffff_ffff },
                 failure: ({ _ in 0x1_0000_0000 }, "relocation R_X86_64_32 out of range: 4294967296 is not in [0, 4294967295]; references 'abs32_max'")),
    LinkBoundaryCase(line: "movq $SYMBOL, %rax", symbol: "abs32s_min", address: { _ in UInt64(bitPattern: -0x8000_0000) },
                 failure: ({ _ in UInt64(bitPattern: -0x8000_0001) }, "relocation R_X86_64_32S out of range: -2147483649 is not in [-2147483648, 2147483647]; references 'abs32s_min'")),
    LinkBoundaryCase(line: "movq $SYMBOL, %rax", symbol: "abs32s_max", address: { _ in 0x7fff_ffff }),
    LinkBoundaryCase(line: "movabsq $SYMBOL, %rax", symbol: "abs64", address: { _ in 0xfedc_ba98_7654_3210 }),
    LinkBoundaryCase(line: ".quad SYMBOL - .", symbol: "pc64", address: { $0 &- 0x1234_5678_9abc }),
    LinkBoundaryCase(line: ".word SYMBOL", symbol: "abs16_max", address: { _ in 0xffff }),
    LinkBoundaryCase(line: ".word SYMBOL", symbol: "abs16_min", address: { _ in UInt64(bitPattern: -0x8000) }),
    LinkBoundaryCase(line: ".word SYMBOL - .", symbol: "pc16_max", address: { $0 &+ 0x7fff },
                 failure: ({ $0 &+ 0x8000 }, "relocation R_X86_64_PC16 out of range: 32768 is not in [-32768, 32767]; references 'pc16_max'")),
    LinkBoundaryCase(line: ".byte SYMBOL", symbol: "abs8_max", address: { _ in 0xff }),
    LinkBoundaryCase(line: ".byte SYMBOL - .", symbol: "pc8_min", address: { $0 &- 0x80 },
                 failure: ({ $0 &- 0x81 }, "relocation R_X86_64_PC8 out of range: -129 is not in [-128, 127]; references 'pc8_min'")),
]
