import Glibc
import ModKit

/// `modkit kallsyms`: lists the symbols of the modkit process, symbolizes an address or finds
/// the address of a name, with the same tables a host uses for its modules.
struct KallsymsCommand: Command {
    static let name = "kallsyms"
    static let summary = "list this process's symbols, or look up an address or a name"
    static let usage = "modkit kallsyms [--module NAME] [ADDRESS|SYMBOL]"
    static let discussion = """
        Without an operand, prints every symbol of the modkit process (the executable and its
        shared libraries) in the format of /proc/kallsyms: the address in 16 hex digits, the
        nm type letter (T/t text, D/d data, B/b bss, R/r read-only data, upper case for a
        global), the name, and for a library a tab and its file name in brackets.

        With ADDRESS, a hex number that starts with 0x, prints the symbol that contains it as
        func+0x1c/0x80 [libc.so.6]: the offset into the symbol and its size, in hex, and the
        library, which is left out for the executable.

        With SYMBOL, prints that symbol's line of the listing. SYMBOL may be OWNER:NAME to
        search only the library or executable whose file name is OWNER.

        Modules exist only inside the process that loaded them, so this command shows none.
        Exits with 1 when the address or symbol is not found.
        """
    static let options = [
        OptionDefinition(long: "module", short: "m", valueName: "NAME",
                         help: "list or search only the library or executable whose file name is NAME, such as libc.so.6"),
    ]

    let owner: String?
    let operand: String?

    init(arguments: ParsedArguments) throws(UsageError) {
        if let extra = arguments.positionals.dropFirst().first ?? arguments.passthrough.first {
            throw UsageError("unexpected argument '\(extra)'")
        }
        operand = arguments.positionals.first
        owner = arguments.value("module")
        if let owner, owner.isEmpty || owner.contains(":") {
            throw UsageError("invalid value '\(owner)' for --module; expected a file name such as libc.so.6")
        }
        if let operand, operand.hasPrefix("0x") || operand.hasPrefix("0X"), Self.parseAddress(operand) == nil {
            throw UsageError("invalid address '\(operand)'; expected a hex number such as 0x401000")
        }
    }

    func run() -> Int32 {
        let host = ModuleHost()
        let kallsyms = host.kallsyms

        guard let operand else {
            return list(kallsyms)
        }
        if let address = Self.parseAddress(operand) {
            return symbolize(address, in: kallsyms)
        }
        return find(operand, in: kallsyms)
    }

    private func list(_ kallsyms: Kallsyms) -> Int32 {
        guard let owner else {
            print(kallsyms.listing(), terminator: "")
            return ExitStatus.success
        }
        guard let listing = kallsyms.listing(owner: owner) else {
            Self.reportError("no library or executable named '\(owner)' in this process")
            return ExitStatus.failure
        }
        print(listing, terminator: "")
        return ExitStatus.success
    }

    private func symbolize(_ address: UInt64, in kallsyms: Kallsyms) -> Int32 {
        guard let symbol = kallsyms.lookup(address), owner == nil || symbol.ownerName == owner else {
            let scope = owner.map { " of \($0)" } ?? ""
            Self.reportError("no symbol\(scope) contains address 0x\(String(address, radix: 16))")
            return ExitStatus.failure
        }
        print(symbol.description)
        return ExitStatus.success
    }

    private func find(_ name: String, in kallsyms: Kallsyms) -> Int32 {
        let qualified = owner.map { "\($0):\(name)" } ?? name
        guard let symbol = kallsyms.lookup(named: qualified) else {
            Self.reportError("symbol '\(qualified)' not found")
            return ExitStatus.failure
        }
        print(symbol.listingLine)
        return ExitStatus.success
    }

    /// The value of `0x...`, or nil for anything else.
    private static func parseAddress(_ text: String) -> UInt64? {
        guard text.hasPrefix("0x") || text.hasPrefix("0X") else { return nil }
        return UInt64(text.dropFirst(2), radix: 16)
    }
}
