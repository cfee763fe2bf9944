import Glibc

/// The protection classes a module's memory is split into, in the order they are laid out.
///
/// Init regions come last so they can be returned to the module area after a successful init.
public enum RegionKind: Int, CaseIterable, Sendable {
    /// Code: read and execute. Branch stubs are placed at its end.
    case text
    /// Read-only data, `.eh_frame` included.
    case rodata
    /// Data written only by relocation, then made read-only: `.data.rel.ro`, constructor
    /// arrays, the module's metadata pointers and the GOT.
    case relro
    /// Read-write data and zero-initialized data, COMMON symbols and the `struct module`.
    case data
    /// `__init` code, freed after a successful init.
    case initText
    /// `__initdata` and `__initconst`, freed after a successful init.
    case initData

    public var name: String {
        switch self {
        case .text: "text"
        case .rodata: "rodata"
        case .relro: "relro"
        case .data: "data"
        case .initText: "init text"
        case .initData: "init data"
        }
    }

    /// The protection the region has once the module is live.
    var finalProtection: Int32 {
        switch self {
        case .text, .initText: PROT_READ | PROT_EXEC
        case .rodata, .relro: PROT_READ
        case .data, .initData: PROT_READ | PROT_WRITE
        }
    }

    var isInit: Bool { self == .initText || self == .initData }

    private static let relroPrefixes = [".data.rel.ro", ".init_array", ".fini_array", ".preinit_array", ".ctors", ".dtors",
                                        ".modkit.init", ".modkit.exit", ".modkit.ksymtab"]

    /// The region `section` goes to, or nil when it is not loaded.
    static func of(_ section: ObjectSection) -> RegionKind? {
        guard section.isAllocated, section.type != ELF.SHT_GROUP, section.flags & ELF.SHF_EXCLUDE == 0 else { return nil }
        let name = section.name
        if name.hasPrefix(".init.text") { return .initText }
        if name.hasPrefix(".init.data") || name.hasPrefix(".init.rodata") { return .initData }
        if section.isExecutable { return .text }
        if section.isWritable {
            return relroPrefixes.contains(where: { name.hasPrefix($0) }) ? .relro : .data
        }
        return .rodata
    }
}
