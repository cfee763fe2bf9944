import CModKit
import Glibc

/// The result of running a module's command.
public struct CommandResult: Sendable, Equatable {
    /// The command's return value: 0 for success, by convention a negative errno for failure.
    public var status: Int32
    /// What the command wrote with `modkit_printf`.
    public var output: String
}

/// Collects what a command writes; C code sees it as `struct modkit_output *`.
final class CommandOutput {
    var bytes: [UInt8] = []
}

extension ModuleHost {
    /// The commands modules registered, with their owners' names.
    public var commands: [(name: String, summary: String, owner: String?)] {
        commandRegistry.all.map { item in
            let command = item.entry.pointee
            return (item.key, command.summary.map { String(cString: $0) } ?? "",
                    item.owner.flatMap { $0.pointee.name.map { String(cString: $0) } })
        }
    }

    /// Runs a registered command by name, holding a reference on its module while it runs.
    ///
    /// Throws `RegistryError` with `.notFound`, or `.goingAway` while the module is initializing
    /// or being removed.
    public func callCommand(_ name: String, arguments: [String] = []) throws -> CommandResult {
        let output = CommandOutput()
        let box = Unmanaged.passRetained(output)
        defer { box.release() }
        let status = try runCommand(name, arguments: arguments, calledBy: nil, output: OpaquePointer(box.toOpaque()))
        return CommandResult(status: status, output: String(decoding: output.bytes, as: UTF8.self))
    }

    /// Runs a command that writes to `output`, a `struct modkit_output *` of this host, and
    /// returns the command's status. A call from the command's own module takes no reference
    /// (see `OwnedRegistry.withEntry`).
    func runCommand(_ name: String, arguments: [String], calledBy caller: UnsafeMutablePointer<CModKit.module>?,
                    output: OpaquePointer) throws -> Int32 {
        try commandRegistry.withEntry(name, calledBy: caller) { command in
            let words = [name] + arguments
            var argv: [UnsafeMutablePointer<CChar>?] = words.map { strdup($0) } + [nil]
            defer { for word in argv { free(word) } }
            return command.pointee.run(Int32(words.count), &argv, output)
        }
    }

    /// Drops the commands a removed module left registered, and logs a warning that names them. `stage` is
    /// what the module ran last, for the message: "its exit" or "its failed init".
    func removeLeftoverEntries(of module: Module, after stage: String = "its exit") {
        let keys = commandRegistry.removeAll(ownedBy: module.structure)
        if !keys.isEmpty {
            log(4, module: module.name, "module left commands registered after \(stage): \(keys.joined(separator: ", ")); removed them")
        }
    }
}
