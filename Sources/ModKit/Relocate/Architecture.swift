/// What a relocation type needs from the layout before any address is known.
struct RelocationTraits: OptionSet {
    let rawValue: UInt8
    /// Reads the address of the symbol's GOT entry (`G`), so the symbol needs one.
    static let usesGOTEntry = RelocationTraits(rawValue: 1 << 0)
    /// Reads the GOT base (`GOT`), so the module needs a GOT even if it has no entries.
    static let usesGOTBase = RelocationTraits(rawValue: 1 << 1)
    /// A call or jump that may go through a branch stub (`L`) when the target is out of reach.
    static let branch = RelocationTraits(rawValue: 1 << 2)
    /// Stores an absolute address in 32 bits, so the module must be placed below 2 GiB.
    static let absolute32 = RelocationTraits(rawValue: 1 << 3)
}

/// How a relocation type is handled.
enum RelocationSupport {
    case supported(RelocationTraits)
    case threadLocal
    case unknown
}

/// The values of the psABI formulas for one relocation.
struct RelocationInputs {
    /// `S`: the address of the symbol.
    var S: UInt64
    /// `A`: the addend.
    var A: Int64
    /// `P`: the address of the field being relocated.
    var P: UInt64
    /// `GOT`: the address of the module's global offset table.
    var GOT: UInt64
    /// `G`: the offset of the symbol's entry from `GOT`.
    var G: UInt64
    /// `L`: the address of the symbol's branch stub, if it has one.
    var L: UInt64?
    /// `Z`: the size of the symbol.
    var Z: UInt64
}

/// One field to store: `bits` under `mask`, in a little-endian field of `width` bytes.
struct FieldWrite {
    var address: UInt64
    var width: UInt8
    var value: UInt64
    /// The bits of the field that the relocation owns (all of them for data, the immediate
    /// bits for instruction fields).
    var mask: UInt64
}

/// The outcome of computing one relocation.
enum RelocationResult {
    case write(width: UInt8, value: UInt64, mask: UInt64)
    case nothing
    case outOfRange(value: Int64, min: Int64, max: Int64, unsignedMax: UInt64?)
    case misaligned(value: Int64, alignment: Int)
}

/// One architecture's relocation rules: one file per architecture implements this.
protocol RelocationArchitecture {
    static var machine: Machine { get }
    static var stubSize: Int { get }
    static var stubAlignment: Int { get }
    static func typeName(_ type: UInt32) -> String
    static func support(of type: UInt32) -> RelocationSupport
    /// Returns the field value for `type`, range-checked, without writing anything. `field`
    /// holds the little-endian bytes at the relocated offset as the object has them (up to 8,
    /// zero past the end of the section), for types whose result depends on the instruction.
    static func compute(_ type: UInt32, _ inputs: RelocationInputs, field: UInt64) -> RelocationResult
    /// Writes a branch stub at `stub` (writable memory of the stub's final address `address`)
    /// that jumps to `target` from anywhere in the address space.
    static func writeStub(_ stub: UnsafeMutableRawPointer, address: UInt64, target: UInt64)
    /// Makes code written by the loader visible to instruction fetch.
    static func synchronizeInstructionCache(_ start: UInt64, size: Int)
}

extension RelocationArchitecture {
    /// Checks `value` against a signed range of `bits` bits and encodes it.
    static func signed(_ value: Int64, bits: Int, width: UInt8) -> RelocationResult {
        let minimum = -(Int64(1) << (bits - 1)), maximum = (Int64(1) << (bits - 1)) - 1
        guard value >= minimum, value <= maximum else {
            return .outOfRange(value: value, min: minimum, max: maximum, unsignedMax: nil)
        }
        return .write(width: width, value: UInt64(bitPattern: value), mask: mask(width))
    }

    /// Checks `value` against an unsigned range of `bits` bits and encodes it.
    static func unsigned(_ value: Int64, bits: Int, width: UInt8) -> RelocationResult {
        let maximum = bits == 64 ? UInt64.max : (UInt64(1) << bits) - 1
        guard value >= 0, UInt64(value) <= maximum else {
            return .outOfRange(value: value, min: 0, max: 0, unsignedMax: maximum)
        }
        return .write(width: width, value: UInt64(value), mask: mask(width))
    }

    /// Accepts a value that fits `bits` bits either signed or unsigned, as the 8- and 16-bit
    /// absolute types do.
    static func signedOrUnsigned(_ value: Int64, bits: Int, width: UInt8) -> RelocationResult {
        let minimum = -(Int64(1) << (bits - 1)), maximum = (Int64(1) << bits) - 1
        guard value >= minimum, value <= maximum else {
            return .outOfRange(value: value, min: minimum, max: maximum, unsignedMax: nil)
        }
        return .write(width: width, value: UInt64(bitPattern: value), mask: mask(width))
    }

    static func mask(_ width: UInt8) -> UInt64 {
        width >= 8 ? .max : (UInt64(1) << (UInt64(width) * 8)) - 1
    }
}

/// The architecture implementation for `machine`, or nil where this build has none.
func relocationArchitecture(for machine: Machine) -> (any RelocationArchitecture.Type)? {
    switch machine {
    case .x86_64: return X86_64.self
    case .aarch64: return AArch64.self
    }
}
