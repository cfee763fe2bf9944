/// The error every loader stage throws.
///
/// It carries where the problem is (file, section, offset, symbol, relocation type) and renders
/// in the style of lld: `lua.o:(.text+0x1a): relocation R_X86_64_PC32 out of range: ...`.
public struct LoadError: Error, CustomStringConvertible, Sendable {
    /// What went wrong. New cases may be added; switch with a default.
    public enum Kind: String, Sendable, CaseIterable {
        case unreadableFile
        case truncatedFile
        case notELF
        case unsupportedClass
        case unsupportedByteOrder
        case unsupportedVersion
        case notRelocatable
        case unsupportedMachine
        case machineMismatch
        case badHeader
        case sectionTableOutOfBounds
        case sectionOutOfBounds
        case badAlignment
        case badStringTable
        case badName
        case badSymbolTable
        case symbolIndexOutOfRange
        case sectionIndexOutOfRange
        case badRelocationSection
        case relocationOutOfSection
        /// A relocation refers to a local symbol of a section that is not loaded, such as a
        /// duplicate COMDAT group member.
        case referencesDiscardedSection
        case writableAndExecutable
        case unsupportedSection
        case duplicateSymbol
        case undefinedSymbols
        case unsupportedRelocation
        case relocationOutOfRange
        case misalignedRelocation
        case needsPIC
        case tlsNotSupported
        case outOfAddressSpace
        case systemCallFailed
        case badMetadata
        case initFailed
        case invalidParameter
        case alreadyLoaded
        case noObjects
        case badLinkMap
        /// A module signature is malformed or does not match the file. Such a module is always
        /// rejected, with or without signature enforcement.
        case badSignature
        /// A host that enforces signatures rejected a module without a trusted signature.
        case signatureRejected
        /// A module binds a namespaced export without `MODULE_IMPORT_NS` for its namespace.
        case namespaceNotImported
        /// The module's `vermagic` differs from the host's.
        case badVersionMagic
        /// The CRC a module recorded for an imported symbol differs from the exporter's.
        case symbolVersionMismatch
    }

    public var kind: Kind
    /// The object file the error is about, as named by the caller.
    public var file: String
    public var section: String?
    public var offset: UInt64?
    public var symbol: String?
    /// The detail, already phrased: "relocation R_X86_64_PC32 out of range: ...".
    public var message: String
    /// For `initFailed`: the value `module_init` returned, by convention a negative errno.
    public var initResult: Int32?

    public init(_ kind: Kind, file: String, section: String? = nil, offset: UInt64? = nil,
                symbol: String? = nil, _ message: String) {
        self.kind = kind
        self.file = file
        self.section = section
        self.offset = offset
        self.symbol = symbol
        self.message = message
    }

    /// The location prefix as lld prints it: `file:(.text+0x1a)`, `file:(.text)` or `file`.
    public var location: String {
        guard let section else { return file }
        if let offset { return "\(file):(\(section)+0x\(String(offset, radix: 16)))" }
        return "\(file):(\(section))"
    }

    public var description: String {
        location.isEmpty ? message : "\(location): \(message)"
    }
}
