import CModKit
import Glibc

/// Connects the C host API that modules call (`printk`, `symbol_get`, `atexit`, commands) to
/// the Swift hosts, and sets up reference counting once per process.
enum HostBridge {
    /// The host API table, by the names modules use.
    static let hostSymbols: [String: UInt64] = {
        var count = 0
        guard let table = modkit_host_symbols(&count) else { return [:] }
        var symbols: [String: UInt64] = [:]
        for entry in UnsafeBufferPointer(start: table, count: count) {
            symbols[String(cString: entry.name)] = UInt64(UInt(bitPattern: entry.address))
        }
        return symbols
    }()

    private static let installed = LockedValue(false)

    /// Chooses the reference counting mode and installs the callbacks, once per process. It
    /// must run before the process starts threads that take module references.
    static func install() {
        installed.withLock { installed in
            guard !installed else { return }
            installed = true
            modkit_ref_setup(Int32(MODKIT_REF_MODE_AUTO.rawValue))
            let ops = UnsafeMutablePointer<modkit_host_ops>.allocate(capacity: 1)
            ops.initialize(to: modkit_host_ops(
                log: { owner, level, text, length, returnAddress in
                    HostBridge.log(owner: owner, level: Int(level), text: text, length: length, returnAddress: returnAddress)
                },
                get_symbol: { name in HostBridge.getSymbol(name) },
                put_symbol: { name, returnAddress in HostBridge.putSymbol(name, returnAddress: returnAddress) },
                register_command: { command in HostBridge.registerCommand(command) },
                unregister_command: { command in HostBridge.unregisterCommand(command) },
                call_command: { caller, name, argc, argv, output, status in
                    HostBridge.callCommand(caller: caller, name: name, argc: argc, argv: argv, output: output, status: status)
                },
                write_output: { output, text, length in HostBridge.writeOutput(output, text: text, length: length) },
                register_exit_handler: { function, argument, dsoHandle, returnAddress in
                    HostBridge.registerExitHandler(function, argument: argument, dsoHandle: dsoHandle, returnAddress: returnAddress)
                }))
            modkit_set_host_ops(ops)
        }
    }

    /// The name of the reference counting mode in effect: "membarrier", "fence" or "no-unload".
    static var referenceMode: String { String(cString: modkit_ref_mode_name()) }

    private static func address(_ pointer: UnsafeMutableRawPointer?) -> UInt64 {
        UInt64(UInt(bitPattern: pointer))
    }

    private static func log(owner: UnsafeMutablePointer<CModKit.module>?, level: Int, text: UnsafePointer<CChar>?, length: Int,
                            returnAddress: UnsafeMutableRawPointer?) {
        guard let text else { return }
        let message = String(decoding: UnsafeRawBufferPointer(start: text, count: length), as: UTF8.self)
        let module = HostDirectory.module(of: owner) ?? HostDirectory.module(containing: address(returnAddress))
        if let module, let host = module.host {
            host.log(level, module: module.name, message)
        } else if let host = HostDirectory.all.first {
            host.log(level, module: nil, message)
        } else {
            StandardError.write(message.hasSuffix("\n") ? message : message + "\n")
        }
    }

    private static func getSymbol(_ name: UnsafePointer<CChar>?) -> UnsafeMutableRawPointer? {
        guard let name else { return nil }
        let symbol = String(cString: name)
        for host in HostDirectory.all {
            if let address = host.symbolGet(symbol) { return UnsafeMutableRawPointer(mutating: address) }
        }
        return nil
    }

    private static func putSymbol(_ name: UnsafePointer<CChar>?, returnAddress: UnsafeMutableRawPointer?) {
        guard let name else { return }
        let symbol = String(cString: name)
        for host in HostDirectory.all where host.symbolPut(symbol) { return }
        // Linux stops with a BUG here. The reference is already gone, for example with a
        // module removed by force, so a warning in the caller's log is enough.
        guard let caller = HostDirectory.module(containing: address(returnAddress)), let host = caller.host else { return }
        host.log(4, module: caller.name, "symbol_put: no module exports \(symbol), so there is no reference to drop; was its module removed by force?")
    }

    private static func registerExitHandler(_ function: (@convention(c) (UnsafeMutableRawPointer?) -> Void)?, argument: UnsafeMutableRawPointer?,
                                            dsoHandle: UnsafeMutableRawPointer?, returnAddress: UnsafeMutableRawPointer?) -> Int32 {
        guard let function else { return -EINVAL }
        let module = HostDirectory.module(containing: address(dsoHandle)) ?? HostDirectory.module(containing: address(returnAddress))
        guard let module, let host = module.host else { return -EINVAL }
        let functionAddress = UInt64(UInt(bitPattern: unsafeBitCast(function, to: UnsafeRawPointer.self)))
        host.registry.withLock { _ in module.exitHandlers.append((functionAddress, address(argument))) }
        return 0
    }

    private static func registerCommand(_ command: UnsafeMutablePointer<modkit_command>?) -> Int32 {
        guard let command, let name = command.pointee.name, command.pointee.run != nil else { return -EINVAL }
        let owner = command.pointee.owner
        guard let host = HostDirectory.module(of: owner)?.host ?? HostDirectory.all.first else { return -ENODEV }
        do {
            try host.commandRegistry.register(String(cString: name), owner: owner, entry: command)
            return 0
        } catch {
            return -EEXIST
        }
    }

    private static func unregisterCommand(_ command: UnsafeMutablePointer<modkit_command>?) {
        guard let command, let name = command.pointee.name else { return }
        let owner = command.pointee.owner
        let hosts = HostDirectory.module(of: owner)?.host.map { [$0] } ?? HostDirectory.all
        for host in hosts where host.commandRegistry.unregister(String(cString: name), owner: owner) { return }
    }

    /// Runs a command for module code (`modkit_call_command`). Output written to a NULL `output`
    /// is collected and dropped.
    private static func callCommand(caller: UnsafeMutablePointer<CModKit.module>?, name: UnsafePointer<CChar>?, argc: Int32,
                                    argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?, output: OpaquePointer?,
                                    status: UnsafeMutablePointer<Int32>?) -> Int32 {
        guard let name, let status, argc >= 0 else { return -EINVAL }
        let command = String(cString: name)
        var arguments: [String] = []
        for index in 0 ..< Int(argc) {
            guard let argument = argv?[index] else { return -EINVAL }
            arguments.append(String(cString: argument))
        }
        let discarded = CommandOutput()
        let box = Unmanaged.passRetained(discarded)
        defer { box.release() }
        let destination = output ?? OpaquePointer(box.toOpaque())

        let hosts = HostDirectory.module(of: caller)?.host.map { [$0] } ?? HostDirectory.all
        for host in hosts {
            do {
                status.pointee = try host.runCommand(command, arguments: arguments, calledBy: caller, output: destination)
                return 0
            } catch let error as RegistryError where error.kind == .notFound {
                continue
            } catch {
                // A lookup throws only notFound and goingAway.
                return -ENODEV
            }
        }
        return -ENOENT
    }

    private static func writeOutput(_ output: OpaquePointer?, text: UnsafePointer<CChar>?, length: Int) -> Int32 {
        guard let output, let text else { return -EINVAL }
        let collector = Unmanaged<CommandOutput>.fromOpaque(UnsafeRawPointer(output)).takeUnretainedValue()
        collector.bytes.append(contentsOf: UnsafeRawBufferPointer(start: text, count: length))
        return 0
    }
}
