import CModKit

/// aarch64 relocations, as defined by the ELF for the Arm 64-bit Architecture psABI (AAELF64).
///
/// `Page(x)` is `x` with its low 12 bits cleared. Instruction fields are written under a mask, so
/// the opcode and registers stay as the compiler emitted them. The only opcode change is MOVZ to
/// MOVN for a negative signed MOVW value, as the psABI prescribes. ADRP+ADD and ADRP+LDR pairs
/// are not relaxed.
enum AArch64: RelocationArchitecture {
    static let machine = Machine.aarch64

    static let R_AARCH64_NONE: UInt32 = 0
    /// The psABI's withdrawn alternative encoding of `R_AARCH64_NONE`.
    static let R_AARCH64_NONE_256: UInt32 = 256
    static let R_AARCH64_ABS64: UInt32 = 257
    static let R_AARCH64_ABS32: UInt32 = 258
    static let R_AARCH64_ABS16: UInt32 = 259
    static let R_AARCH64_PREL64: UInt32 = 260
    static let R_AARCH64_PREL32: UInt32 = 261
    static let R_AARCH64_PREL16: UInt32 = 262
    static let R_AARCH64_MOVW_UABS_G0: UInt32 = 263
    static let R_AARCH64_MOVW_UABS_G0_NC: UInt32 = 264
    static let R_AARCH64_MOVW_UABS_G1: UInt32 = 265
    static let R_AARCH64_MOVW_UABS_G1_NC: UInt32 = 266
    static let R_AARCH64_MOVW_UABS_G2: UInt32 = 267
    static let R_AARCH64_MOVW_UABS_G2_NC: UInt32 = 268
    static let R_AARCH64_MOVW_UABS_G3: UInt32 = 269
    static let R_AARCH64_MOVW_SABS_G0: UInt32 = 270
    static let R_AARCH64_MOVW_SABS_G1: UInt32 = 271
    static let R_AARCH64_MOVW_SABS_G2: UInt32 = 272
    static let R_AARCH64_LD_PREL_LO19: UInt32 = 273
    static let R_AARCH64_ADR_PREL_LO21: UInt32 = 274
    static let R_AARCH64_ADR_PREL_PG_HI21: UInt32 = 275
    static let R_AARCH64_ADR_PREL_PG_HI21_NC: UInt32 = 276
    static let R_AARCH64_ADD_ABS_LO12_NC: UInt32 = 277
    static let R_AARCH64_LDST8_ABS_LO12_NC: UInt32 = 278
    static let R_AARCH64_TSTBR14: UInt32 = 279
    static let R_AARCH64_CONDBR19: UInt32 = 280
    static let R_AARCH64_JUMP26: UInt32 = 282
    static let R_AARCH64_CALL26: UInt32 = 283
    static let R_AARCH64_LDST16_ABS_LO12_NC: UInt32 = 284
    static let R_AARCH64_LDST32_ABS_LO12_NC: UInt32 = 285
    static let R_AARCH64_LDST64_ABS_LO12_NC: UInt32 = 286
    static let R_AARCH64_MOVW_PREL_G0: UInt32 = 287
    static let R_AARCH64_MOVW_PREL_G0_NC: UInt32 = 288
    static let R_AARCH64_MOVW_PREL_G1: UInt32 = 289
    static let R_AARCH64_MOVW_PREL_G1_NC: UInt32 = 290
    static let R_AARCH64_MOVW_PREL_G2: UInt32 = 291
    static let R_AARCH64_MOVW_PREL_G2_NC: UInt32 = 292
    static let R_AARCH64_MOVW_PREL_G3: UInt32 = 293
    static let R_AARCH64_LDST128_ABS_LO12_NC: UInt32 = 299
    static let R_AARCH64_GOT_LD_PREL19: UInt32 = 309
    static let R_AARCH64_ADR_GOT_PAGE: UInt32 = 311
    static let R_AARCH64_LD64_GOT_LO12_NC: UInt32 = 312
    static let R_AARCH64_LD64_GOTPAGE_LO15: UInt32 = 313
    static let R_AARCH64_PLT32: UInt32 = 314
    static let R_AARCH64_GOTPCREL32: UInt32 = 315

    private static let names: [UInt32: String] = [
        0: "R_AARCH64_NONE", 256: "R_AARCH64_NONE", 257: "R_AARCH64_ABS64", 258: "R_AARCH64_ABS32",
        259: "R_AARCH64_ABS16", 260: "R_AARCH64_PREL64", 261: "R_AARCH64_PREL32", 262: "R_AARCH64_PREL16",
        263: "R_AARCH64_MOVW_UABS_G0", 264: "R_AARCH64_MOVW_UABS_G0_NC", 265: "R_AARCH64_MOVW_UABS_G1",
        266: "R_AARCH64_MOVW_UABS_G1_NC", 267: "R_AARCH64_MOVW_UABS_G2", 268: "R_AARCH64_MOVW_UABS_G2_NC",
        269: "R_AARCH64_MOVW_UABS_G3", 270: "R_AARCH64_MOVW_SABS_G0", 271: "R_AARCH64_MOVW_SABS_G1",
        272: "R_AARCH64_MOVW_SABS_G2", 273: "R_AARCH64_LD_PREL_LO19", 274: "R_AARCH64_ADR_PREL_LO21",
        275: "R_AARCH64_ADR_PREL_PG_HI21", 276: "R_AARCH64_ADR_PREL_PG_HI21_NC", 277: "R_AARCH64_ADD_ABS_LO12_NC",
        278: "R_AARCH64_LDST8_ABS_LO12_NC", 279: "R_AARCH64_TSTBR14", 280: "R_AARCH64_CONDBR19",
        282: "R_AARCH64_JUMP26", 283: "R_AARCH64_CALL26", 284: "R_AARCH64_LDST16_ABS_LO12_NC",
        285: "R_AARCH64_LDST32_ABS_LO12_NC", 286: "R_AARCH64_LDST64_ABS_LO12_NC", 287: "R_AARCH64_MOVW_PREL_G0",
        288: "R_AARCH64_MOVW_PREL_G0_NC", 289: "R_AARCH64_MOVW_PREL_G1", 290: "R_AARCH64_MOVW_PREL_G1_NC",
        291: "R_AARCH64_MOVW_PREL_G2", 292: "R_AARCH64_MOVW_PREL_G2_NC", 293: "R_AARCH64_MOVW_PREL_G3",
        299: "R_AARCH64_LDST128_ABS_LO12_NC", 300: "R_AARCH64_MOVW_GOTOFF_G0", 301: "R_AARCH64_MOVW_GOTOFF_G0_NC",
        302: "R_AARCH64_MOVW_GOTOFF_G1", 303: "R_AARCH64_MOVW_GOTOFF_G1_NC", 304: "R_AARCH64_MOVW_GOTOFF_G2",
        305: "R_AARCH64_MOVW_GOTOFF_G2_NC", 306: "R_AARCH64_MOVW_GOTOFF_G3", 307: "R_AARCH64_GOTREL64",
        308: "R_AARCH64_GOTREL32", 309: "R_AARCH64_GOT_LD_PREL19", 310: "R_AARCH64_LD64_GOTOFF_LO15",
        311: "R_AARCH64_ADR_GOT_PAGE", 312: "R_AARCH64_LD64_GOT_LO12_NC", 313: "R_AARCH64_LD64_GOTPAGE_LO15",
        314: "R_AARCH64_PLT32", 315: "R_AARCH64_GOTPCREL32",
        1024: "R_AARCH64_COPY", 1025: "R_AARCH64_GLOB_DAT", 1026: "R_AARCH64_JUMP_SLOT", 1027: "R_AARCH64_RELATIVE",
        1028: "R_AARCH64_TLS_DTPMOD64", 1029: "R_AARCH64_TLS_DTPREL64", 1030: "R_AARCH64_TLS_TPREL64",
        1031: "R_AARCH64_TLSDESC", 1032: "R_AARCH64_IRELATIVE",
    ]

    static func typeName(_ type: UInt32) -> String {
        if let name = names[type] { return name }
        if (512 ... 573).contains(type) { return "R_AARCH64 thread-local relocation \(type)" }
        return "unknown relocation type \(type)"
    }

    static func support(of type: UInt32) -> RelocationSupport {
        switch type {
        case R_AARCH64_NONE, R_AARCH64_NONE_256, R_AARCH64_ABS64, R_AARCH64_PREL64, R_AARCH64_PREL32, R_AARCH64_PREL16,
             R_AARCH64_MOVW_UABS_G2, R_AARCH64_MOVW_UABS_G2_NC, R_AARCH64_MOVW_UABS_G3,
             R_AARCH64_MOVW_UABS_G0_NC, R_AARCH64_MOVW_UABS_G1_NC, R_AARCH64_MOVW_SABS_G2,
             R_AARCH64_LD_PREL_LO19, R_AARCH64_ADR_PREL_LO21, R_AARCH64_ADR_PREL_PG_HI21, R_AARCH64_ADR_PREL_PG_HI21_NC,
             R_AARCH64_ADD_ABS_LO12_NC, R_AARCH64_LDST8_ABS_LO12_NC, R_AARCH64_LDST16_ABS_LO12_NC,
             R_AARCH64_LDST32_ABS_LO12_NC, R_AARCH64_LDST64_ABS_LO12_NC, R_AARCH64_LDST128_ABS_LO12_NC,
             R_AARCH64_TSTBR14, R_AARCH64_CONDBR19,
             R_AARCH64_MOVW_PREL_G0, R_AARCH64_MOVW_PREL_G0_NC, R_AARCH64_MOVW_PREL_G1, R_AARCH64_MOVW_PREL_G1_NC,
             R_AARCH64_MOVW_PREL_G2, R_AARCH64_MOVW_PREL_G2_NC, R_AARCH64_MOVW_PREL_G3:
            return .supported([])
        case R_AARCH64_ABS32, R_AARCH64_MOVW_UABS_G0, R_AARCH64_MOVW_UABS_G1, R_AARCH64_MOVW_SABS_G0, R_AARCH64_MOVW_SABS_G1:
            // These store an absolute address in at most 32 bits, so the module must be placed low.
            return .supported(.absolute32)
        case R_AARCH64_ABS16:
            return .supported([])
        case R_AARCH64_CALL26, R_AARCH64_JUMP26, R_AARCH64_PLT32:
            return .supported(.branch)
        case R_AARCH64_ADR_GOT_PAGE, R_AARCH64_LD64_GOT_LO12_NC, R_AARCH64_GOT_LD_PREL19, R_AARCH64_GOTPCREL32:
            return .supported(.usesGOTEntry)
        case R_AARCH64_LD64_GOTPAGE_LO15:
            return .supported([.usesGOTEntry, .usesGOTBase])
        case 512 ... 573, 1028 ... 1031:
            return .threadLocal
        default:
            return .unknown
        }
    }

    static func compute(_ type: UInt32, _ r: RelocationInputs, field: UInt64) -> RelocationResult {
        let S = Int64(bitPattern: r.S), A = r.A, P = Int64(bitPattern: r.P)
        let GOT = Int64(bitPattern: r.GOT), G = Int64(bitPattern: r.G)
        let instruction = UInt32(truncatingIfNeeded: field)
        switch type {
        case R_AARCH64_NONE, R_AARCH64_NONE_256:
            return .nothing

        // Data.
        case R_AARCH64_ABS64:  // S + A
            return .write(width: 8, value: UInt64(bitPattern: S &+ A), mask: .max)
        case R_AARCH64_ABS32:  // S + A, signed or unsigned 32 bits
            return signedOrUnsigned(S &+ A, bits: 32, width: 4)
        case R_AARCH64_ABS16:  // S + A, signed or unsigned 16 bits
            return signedOrUnsigned(S &+ A, bits: 16, width: 2)
        case R_AARCH64_PREL64:  // S + A - P
            return .write(width: 8, value: UInt64(bitPattern: S &+ A &- P), mask: .max)
        case R_AARCH64_PREL32:  // S + A - P, signed or unsigned 32 bits
            return signedOrUnsigned(S &+ A &- P, bits: 32, width: 4)
        case R_AARCH64_PREL16:  // S + A - P, signed or unsigned 16 bits
            return signedOrUnsigned(S &+ A &- P, bits: 16, width: 2)
        case R_AARCH64_PLT32:  // L + A - P, with L = S when S is in reach
            return signed(branchOffset(S: S, A: A, P: P, L: r.L, bits: 32), bits: 32, width: 4)
        case R_AARCH64_GOTPCREL32:  // G(GDAT(S)) + GOT + A - P
            return signed(G &+ GOT &+ A &- P, bits: 32, width: 4)

        // MOVZ, MOVN and MOVK: a 16-bit chunk of the value in imm16 (bits 5-20).
        case R_AARCH64_MOVW_UABS_G0:  // S + A, bits 0-15, unsigned 16 bits
            return unsignedMoveWide(S &+ A, shift: 0, checkedBits: 16)
        case R_AARCH64_MOVW_UABS_G0_NC:  // S + A, bits 0-15
            return unsignedMoveWide(S &+ A, shift: 0, checkedBits: nil)
        case R_AARCH64_MOVW_UABS_G1:  // S + A, bits 16-31, unsigned 32 bits
            return unsignedMoveWide(S &+ A, shift: 16, checkedBits: 32)
        case R_AARCH64_MOVW_UABS_G1_NC:  // S + A, bits 16-31
            return unsignedMoveWide(S &+ A, shift: 16, checkedBits: nil)
        case R_AARCH64_MOVW_UABS_G2:  // S + A, bits 32-47, unsigned 48 bits
            return unsignedMoveWide(S &+ A, shift: 32, checkedBits: 48)
        case R_AARCH64_MOVW_UABS_G2_NC:  // S + A, bits 32-47
            return unsignedMoveWide(S &+ A, shift: 32, checkedBits: nil)
        case R_AARCH64_MOVW_UABS_G3:  // S + A, bits 48-63
            return unsignedMoveWide(S &+ A, shift: 48, checkedBits: nil)
        case R_AARCH64_MOVW_SABS_G0:  // S + A, signed 17 bits
            return signedMoveWide(S &+ A, shift: 0, checkedBits: 17, instruction: instruction)
        case R_AARCH64_MOVW_SABS_G1:  // S + A, signed 33 bits
            return signedMoveWide(S &+ A, shift: 16, checkedBits: 33, instruction: instruction)
        case R_AARCH64_MOVW_SABS_G2:  // S + A, signed 49 bits
            return signedMoveWide(S &+ A, shift: 32, checkedBits: 49, instruction: instruction)
        case R_AARCH64_MOVW_PREL_G0:  // S + A - P, signed 17 bits
            return signedMoveWide(S &+ A &- P, shift: 0, checkedBits: 17, instruction: instruction)
        case R_AARCH64_MOVW_PREL_G0_NC:  // S + A - P, bits 0-15
            return signedMoveWide(S &+ A &- P, shift: 0, checkedBits: nil, instruction: instruction)
        case R_AARCH64_MOVW_PREL_G1:  // S + A - P, signed 33 bits
            return signedMoveWide(S &+ A &- P, shift: 16, checkedBits: 33, instruction: instruction)
        case R_AARCH64_MOVW_PREL_G1_NC:  // S + A - P, bits 16-31
            return signedMoveWide(S &+ A &- P, shift: 16, checkedBits: nil, instruction: instruction)
        case R_AARCH64_MOVW_PREL_G2:  // S + A - P, signed 49 bits
            return signedMoveWide(S &+ A &- P, shift: 32, checkedBits: 49, instruction: instruction)
        case R_AARCH64_MOVW_PREL_G2_NC:  // S + A - P, bits 32-47
            return signedMoveWide(S &+ A &- P, shift: 32, checkedBits: nil, instruction: instruction)
        case R_AARCH64_MOVW_PREL_G3:  // S + A - P, bits 48-63
            return signedMoveWide(S &+ A &- P, shift: 48, checkedBits: nil, instruction: instruction)

        // ADR and ADRP: a 21-bit immediate split into immlo (bits 29-30) and immhi (bits 5-23).
        case R_AARCH64_ADR_PREL_LO21:  // S + A - P, signed 21 bits
            return address(S &+ A &- P, shift: 0, checkedBits: 21)
        case R_AARCH64_ADR_PREL_PG_HI21:  // Page(S + A) - Page(P), signed 33 bits
            return address(page(S &+ A) &- page(P), shift: 12, checkedBits: 33)
        case R_AARCH64_ADR_PREL_PG_HI21_NC:  // Page(S + A) - Page(P)
            return address(page(S &+ A) &- page(P), shift: 12, checkedBits: nil)
        case R_AARCH64_ADR_GOT_PAGE:  // Page(G(GDAT(S)) + GOT + A) - Page(P), signed 33 bits
            return address(page(G &+ GOT &+ A) &- page(P), shift: 12, checkedBits: 33)

        // ADD and LDR/STR (unsigned offset): imm12 (bits 10-21), scaled by the access size.
        case R_AARCH64_ADD_ABS_LO12_NC:  // S + A, bits 0-11
            return lowTwelveBits(S &+ A, scale: 0)
        case R_AARCH64_LDST8_ABS_LO12_NC:  // S + A, bits 0-11
            return lowTwelveBits(S &+ A, scale: 0)
        case R_AARCH64_LDST16_ABS_LO12_NC:  // S + A, bits 1-11, 2-byte aligned
            return lowTwelveBits(S &+ A, scale: 1)
        case R_AARCH64_LDST32_ABS_LO12_NC:  // S + A, bits 2-11, 4-byte aligned
            return lowTwelveBits(S &+ A, scale: 2)
        case R_AARCH64_LDST64_ABS_LO12_NC:  // S + A, bits 3-11, 8-byte aligned
            return lowTwelveBits(S &+ A, scale: 3)
        case R_AARCH64_LDST128_ABS_LO12_NC:  // S + A, bits 4-11, 16-byte aligned
            return lowTwelveBits(S &+ A, scale: 4)
        case R_AARCH64_LD64_GOT_LO12_NC:  // G(GDAT(S)) + GOT + A, bits 3-11, 8-byte aligned
            return lowTwelveBits(G &+ GOT &+ A, scale: 3)
        case R_AARCH64_LD64_GOTPAGE_LO15:  // G(GDAT(S)) + GOT + A - Page(GOT), bits 3-14, unsigned 15 bits
            let value = G &+ GOT &+ A &- page(GOT)
            if let failure = checkUnsigned(value, bits: 15) ?? checkAlignment(value, 8) { return failure }
            return instructionField(UInt64(value >> 3) & 0xfff, shift: 10, mask: 0xfff)

        // Branches and PC-relative loads: a word offset.
        case R_AARCH64_CALL26, R_AARCH64_JUMP26:  // S + A - P, or L - P through a stub, signed 28 bits
            return wordOffset(branchOffset(S: S, A: A, P: P, L: r.L, bits: 28), bits: 28, shift: 0, fieldBits: 26)
        case R_AARCH64_CONDBR19, R_AARCH64_LD_PREL_LO19:  // S + A - P, signed 21 bits
            return wordOffset(S &+ A &- P, bits: 21, shift: 5, fieldBits: 19)
        case R_AARCH64_GOT_LD_PREL19:  // G(GDAT(S)) + GOT + A - P, signed 21 bits
            return wordOffset(G &+ GOT &+ A &- P, bits: 21, shift: 5, fieldBits: 19)
        case R_AARCH64_TSTBR14:  // S + A - P, signed 16 bits
            return wordOffset(S &+ A &- P, bits: 16, shift: 5, fieldBits: 14)

        default:
            preconditionFailure("relocation type \(type) passed support(of:) but has no formula")
        }
    }

    // MARK: Encoding

    private static func page(_ address: Int64) -> Int64 {
        address & ~0xfff
    }

    private static func checkSigned(_ value: Int64, bits: Int) -> RelocationResult? {
        let minimum = -(Int64(1) << (bits - 1)), maximum = (Int64(1) << (bits - 1)) - 1
        guard value < minimum || value > maximum else { return nil }
        return .outOfRange(value: value, min: minimum, max: maximum, unsignedMax: nil)
    }

    private static func checkUnsigned(_ value: Int64, bits: Int) -> RelocationResult? {
        let maximum = (UInt64(1) << bits) - 1
        guard value < 0 || UInt64(value) > maximum else { return nil }
        return .outOfRange(value: value, min: 0, max: 0, unsignedMax: maximum)
    }

    private static func checkAlignment(_ value: Int64, _ alignment: Int) -> RelocationResult? {
        guard value & Int64(alignment - 1) != 0 else { return nil }
        return .misaligned(value: value, alignment: alignment)
    }

    /// Stores `bits` into the 32-bit instruction at bit `shift`, replacing the `fieldMask` bits there.
    private static func instructionField(_ bits: UInt64, shift: Int, mask fieldMask: UInt64) -> RelocationResult {
        .write(width: 4, value: (bits & fieldMask) << UInt64(shift), mask: fieldMask << UInt64(shift))
    }

    /// Returns the byte offset of a call or jump: `S + A - P` when that fits `bits` signed bits, and
    /// otherwise `L - P` to the symbol's branch stub. A stub jumps to the symbol itself, so a
    /// branch with a non-zero addend never goes through one.
    private static func branchOffset(S: Int64, A: Int64, P: Int64, L: UInt64?, bits: Int) -> Int64 {
        let direct = S &+ A &- P
        guard let L, A == 0, checkSigned(direct, bits: bits) != nil else { return direct }
        return Int64(bitPattern: L) &- P
    }

    /// Encodes a branch or literal load: `offset / 4` in `fieldBits` bits at bit `shift`.
    private static func wordOffset(_ offset: Int64, bits: Int, shift: Int, fieldBits: Int) -> RelocationResult {
        if let failure = checkSigned(offset, bits: bits) ?? checkAlignment(offset, 4) { return failure }
        return instructionField(UInt64(bitPattern: offset >> 2), shift: shift, mask: (1 << UInt64(fieldBits)) - 1)
    }

    /// ADR or ADRP: `value >> shift` as a 21-bit immediate in immlo:immhi.
    private static func address(_ value: Int64, shift: Int, checkedBits: Int?) -> RelocationResult {
        if let checkedBits, let failure = checkSigned(value, bits: checkedBits) { return failure }
        let immediate = UInt64(bitPattern: value >> Int64(shift))
        let immlo = (immediate & 0x3) << 29, immhi = ((immediate >> 2) & 0x7ffff) << 5
        return .write(width: 4, value: immlo | immhi, mask: (0x3 << 29) | (0x7ffff << 5))
    }

    /// ADD or LDR/STR: the low 12 bits of `value`, divided by the access size `1 << scale`, in imm12.
    private static func lowTwelveBits(_ value: Int64, scale: Int) -> RelocationResult {
        if let failure = checkAlignment(value, 1 << scale) { return failure }
        return instructionField(UInt64(bitPattern: value & 0xfff) >> UInt64(scale), shift: 10, mask: 0xfff)
    }

    /// MOVZ or MOVK with an unsigned value: bits `shift ..< shift + 16` of `value`.
    private static func unsignedMoveWide(_ value: Int64, shift: Int, checkedBits: Int?) -> RelocationResult {
        if let checkedBits, let failure = checkUnsigned(value, bits: checkedBits) { return failure }
        return instructionField(UInt64(bitPattern: value) >> UInt64(shift), shift: 5, mask: 0xffff)
    }

    /// MOVZ, MOVN or MOVK with a signed value. A MOVK (opc bit 29 set) takes bits
    /// `shift ..< shift + 16` as they are. A MOVZ or MOVN becomes MOVN with those bits inverted
    /// when bit `shift + 16` of the value is set (the value is negative, for the checked types),
    /// and MOVZ otherwise. For bits 48-63 there is no bit above, so the instruction is always
    /// MOVZ with the top 16 bits, as ld.lld writes it. The MOVKs that follow give the same value
    /// either way.
    private static func signedMoveWide(_ value: Int64, shift: Int, checkedBits: Int?, instruction: UInt32) -> RelocationResult {
        if let checkedBits, let failure = checkSigned(value, bits: checkedBits) { return failure }
        let shifted = UInt64(bitPattern: value) >> UInt64(shift)
        guard instruction & (1 << 29) == 0 else {
            return instructionField(shifted, shift: 5, mask: 0xffff)
        }
        let movzBit: UInt64 = 1 << 30
        let fieldMask: UInt64 = (0xffff << 5) | movzBit
        if shifted & 0x1_0000 != 0 {
            return .write(width: 4, value: (~shifted & 0xffff) << 5, mask: fieldMask)
        }
        return .write(width: 4, value: ((shifted & 0xffff) << 5) | movzBit, mask: fieldMask)
    }

    // MARK: Stubs and caches

    static let stubSize = 16
    static let stubAlignment = 16

    /// `ldr x16, 8; br x16` followed by the 8-byte target. x16 (IP0) is the intra-procedure-call
    /// scratch register that the psABI reserves for veneers like this one.
    static func writeStub(_ stub: UnsafeMutableRawPointer, address: UInt64, target: UInt64) {
        let loadLiteral: UInt32 = 0x5800_0050  // ldr x16, #8
        let branchRegister: UInt32 = 0xd61f_0200  // br x16
        stub.storeBytes(of: loadLiteral.littleEndian, toByteOffset: 0, as: UInt32.self)
        stub.storeBytes(of: branchRegister.littleEndian, toByteOffset: 4, as: UInt32.self)
        stub.storeBytes(of: target.littleEndian, toByteOffset: 8, as: UInt64.self)
    }

    /// Cleans the data cache and invalidates the instruction cache over the range, because
    /// aarch64 instruction fetch does not see stores until then.
    static func synchronizeInstructionCache(_ start: UInt64, size: Int) {
        guard size > 0, let pointer = UnsafeMutableRawPointer(bitPattern: UInt(start)) else { return }
        modkit_synchronize_instruction_cache(pointer, pointer + size)
    }
}
