/// x86_64 relocations, as defined by the System V AMD64 psABI.
///
/// The GOT is always used as written: `GOTPCRELX` and `REX_GOTPCRELX` are not relaxed into
/// direct references, which keeps every instruction byte as the compiler emitted it.
enum X86_64: RelocationArchitecture {
    static let machine = Machine.x86_64

    static let R_X86_64_NONE: UInt32 = 0
    static let R_X86_64_64: UInt32 = 1
    static let R_X86_64_PC32: UInt32 = 2
    static let R_X86_64_GOT32: UInt32 = 3
    static let R_X86_64_PLT32: UInt32 = 4
    static let R_X86_64_GOTPCREL: UInt32 = 9
    static let R_X86_64_32: UInt32 = 10
    static let R_X86_64_32S: UInt32 = 11
    static let R_X86_64_16: UInt32 = 12
    static let R_X86_64_PC16: UInt32 = 13
    static let R_X86_64_8: UInt32 = 14
    static let R_X86_64_PC8: UInt32 = 15
    static let R_X86_64_PC64: UInt32 = 24
    static let R_X86_64_GOTOFF64: UInt32 = 25
    static let R_X86_64_GOTPC32: UInt32 = 26
    static let R_X86_64_GOT64: UInt32 = 27
    static let R_X86_64_GOTPCREL64: UInt32 = 28
    static let R_X86_64_GOTPC64: UInt32 = 29
    static let R_X86_64_GOTPLT64: UInt32 = 30
    static let R_X86_64_PLTOFF64: UInt32 = 31
    static let R_X86_64_SIZE32: UInt32 = 32
    static let R_X86_64_SIZE64: UInt32 = 33
    static let R_X86_64_GOTPCRELX: UInt32 = 41
    static let R_X86_64_REX_GOTPCRELX: UInt32 = 42

    private static let names: [UInt32: String] = [
        0: "R_X86_64_NONE", 1: "R_X86_64_64", 2: "R_X86_64_PC32", 3: "R_X86_64_GOT32", 4: "R_X86_64_PLT32",
        5: "R_X86_64_COPY", 6: "R_X86_64_GLOB_DAT", 7: "R_X86_64_JUMP_SLOT", 8: "R_X86_64_RELATIVE",
        9: "R_X86_64_GOTPCREL", 10: "R_X86_64_32", 11: "R_X86_64_32S", 12: "R_X86_64_16", 13: "R_X86_64_PC16",
        14: "R_X86_64_8", 15: "R_X86_64_PC8", 16: "R_X86_64_DTPMOD64", 17: "R_X86_64_DTPOFF64",
        18: "R_X86_64_TPOFF64", 19: "R_X86_64_TLSGD", 20: "R_X86_64_TLSLD", 21: "R_X86_64_DTPOFF32",
        22: "R_X86_64_GOTTPOFF", 23: "R_X86_64_TPOFF32", 24: "R_X86_64_PC64", 25: "R_X86_64_GOTOFF64",
        26: "R_X86_64_GOTPC32", 27: "R_X86_64_GOT64", 28: "R_X86_64_GOTPCREL64", 29: "R_X86_64_GOTPC64",
        30: "R_X86_64_GOTPLT64", 31: "R_X86_64_PLTOFF64", 32: "R_X86_64_SIZE32", 33: "R_X86_64_SIZE64",
        34: "R_X86_64_GOTPC32_TLSDESC", 35: "R_X86_64_TLSDESC_CALL", 36: "R_X86_64_TLSDESC",
        37: "R_X86_64_IRELATIVE", 38: "R_X86_64_RELATIVE64", 41: "R_X86_64_GOTPCRELX",
        42: "R_X86_64_REX_GOTPCRELX", 43: "R_X86_64_CODE_4_GOTPCRELX", 44: "R_X86_64_CODE_4_GOTTPOFF",
        45: "R_X86_64_CODE_4_GOTPC32_TLSDESC",
    ]

    static func typeName(_ type: UInt32) -> String {
        names[type] ?? "unknown relocation type \(type)"
    }

    static func support(of type: UInt32) -> RelocationSupport {
        switch type {
        case R_X86_64_NONE, R_X86_64_64, R_X86_64_PC32, R_X86_64_16, R_X86_64_PC16, R_X86_64_8, R_X86_64_PC8,
             R_X86_64_PC64, R_X86_64_SIZE32, R_X86_64_SIZE64:
            return .supported([])
        case R_X86_64_32, R_X86_64_32S:
            return .supported(.absolute32)
        case R_X86_64_PLT32:
            return .supported(.branch)
        case R_X86_64_GOTPCREL, R_X86_64_GOTPCRELX, R_X86_64_REX_GOTPCRELX, R_X86_64_GOTPCREL64:
            return .supported(.usesGOTEntry)
        case R_X86_64_GOT32, R_X86_64_GOT64, R_X86_64_GOTPLT64:
            return .supported([.usesGOTEntry, .usesGOTBase])
        case R_X86_64_GOTPC32, R_X86_64_GOTPC64, R_X86_64_GOTOFF64:
            return .supported(.usesGOTBase)
        case R_X86_64_PLTOFF64:
            return .supported([.usesGOTBase, .branch])
        case 16 ... 23, 34 ... 36, 44, 45:
            return .threadLocal
        default:
            return .unknown
        }
    }

    static func compute(_ type: UInt32, _ r: RelocationInputs, field: UInt64) -> RelocationResult {
        let S = Int64(bitPattern: r.S), A = r.A, P = Int64(bitPattern: r.P)
        let GOT = Int64(bitPattern: r.GOT), G = Int64(bitPattern: r.G), Z = Int64(bitPattern: r.Z)
        switch type {
        case R_X86_64_NONE:
            return .nothing
        case R_X86_64_64:  // S + A
            return .write(width: 8, value: UInt64(bitPattern: S &+ A), mask: .max)
        case R_X86_64_PC32:  // S + A - P
            return signed(S &+ A &- P, bits: 32, width: 4)
        case R_X86_64_PLT32:  // L + A - P, with L = S when S is in reach
            let direct = S &+ A &- P
            guard let L = r.L, direct < Int64(Int32.min) || direct > Int64(Int32.max) else {
                return signed(direct, bits: 32, width: 4)
            }
            return signed(Int64(bitPattern: L) &+ A &- P, bits: 32, width: 4)
        case R_X86_64_GOT32:  // G + A
            return signed(G &+ A, bits: 32, width: 4)
        case R_X86_64_GOTPCREL, R_X86_64_GOTPCRELX, R_X86_64_REX_GOTPCRELX:  // G + GOT + A - P
            return signed(G &+ GOT &+ A &- P, bits: 32, width: 4)
        case R_X86_64_32:  // S + A, zero-extended
            return unsigned(S &+ A, bits: 32, width: 4)
        case R_X86_64_32S:  // S + A, sign-extended
            return signed(S &+ A, bits: 32, width: 4)
        case R_X86_64_16:  // S + A
            return signedOrUnsigned(S &+ A, bits: 16, width: 2)
        case R_X86_64_PC16:  // S + A - P
            return signed(S &+ A &- P, bits: 16, width: 2)
        case R_X86_64_8:  // S + A
            return signedOrUnsigned(S &+ A, bits: 8, width: 1)
        case R_X86_64_PC8:  // S + A - P
            return signed(S &+ A &- P, bits: 8, width: 1)
        case R_X86_64_PC64:  // S + A - P
            return .write(width: 8, value: UInt64(bitPattern: S &+ A &- P), mask: .max)
        case R_X86_64_GOTOFF64:  // S + A - GOT
            return .write(width: 8, value: UInt64(bitPattern: S &+ A &- GOT), mask: .max)
        case R_X86_64_GOTPC32:  // GOT + A - P
            return signed(GOT &+ A &- P, bits: 32, width: 4)
        case R_X86_64_GOT64, R_X86_64_GOTPLT64:  // G + A
            return .write(width: 8, value: UInt64(bitPattern: G &+ A), mask: .max)
        case R_X86_64_GOTPCREL64:  // G + GOT + A - P
            return .write(width: 8, value: UInt64(bitPattern: G &+ GOT &+ A &- P), mask: .max)
        case R_X86_64_GOTPC64:  // GOT + A - P
            return .write(width: 8, value: UInt64(bitPattern: GOT &+ A &- P), mask: .max)
        case R_X86_64_PLTOFF64:  // L + A - GOT; the stub is the PLT entry when there is one
            let L = r.L.map { Int64(bitPattern: $0) } ?? S
            return .write(width: 8, value: UInt64(bitPattern: L &+ A &- GOT), mask: .max)
        case R_X86_64_SIZE32:  // Z + A
            return signed(Z &+ A, bits: 32, width: 4)
        case R_X86_64_SIZE64:  // Z + A
            return .write(width: 8, value: UInt64(bitPattern: Z &+ A), mask: .max)
        default:
            preconditionFailure("relocation type \(type) passed support(of:) but has no formula")
        }
    }

    static let stubSize = 16
    static let stubAlignment = 16

    /// `jmp *0(%rip)` followed by the 8-byte target, padded with `int3`.
    static func writeStub(_ stub: UnsafeMutableRawPointer, address: UInt64, target: UInt64) {
        let bytes: [UInt8] = [0xff, 0x25, 0, 0, 0, 0]
        for (i, byte) in bytes.enumerated() { stub.storeBytes(of: byte, toByteOffset: i, as: UInt8.self) }
        stub.storeBytes(of: target.littleEndian, toByteOffset: 6, as: UInt64.self)
        stub.storeBytes(of: 0xcc, toByteOffset: 14, as: UInt8.self)
        stub.storeBytes(of: 0xcc, toByteOffset: 15, as: UInt8.self)
    }

    /// x86_64 keeps instruction fetch coherent with stores; the `mprotect` to executable that
    /// follows every write is enough.
    static func synchronizeInstructionCache(_ start: UInt64, size: Int) {}
}
