import Glibc

/// Registers modules' `.eh_frame` sections with the unwinder of the process (libgcc's
/// `__register_frame`), so that C++ exceptions thrown in module code can be caught and
/// backtraces can walk through it.
///
/// Tables are deregistered before the module's memory is released; an unwinder that still
/// pointed into a removed module would crash the next throw anywhere in the process.
enum UnwindTables {
    private typealias FrameFunction = @convention(c) (UnsafeRawPointer) -> Void

    private static let functions: (register: FrameFunction, deregister: FrameFunction)? = {
        let process = UnsafeMutableRawPointer(bitPattern: 0)
        guard let register = dlsym(process, "__register_frame"), let deregister = dlsym(process, "__deregister_frame") else {
            // NOTE: without libgcc's unwinder in the process, exceptions cannot leave module code.
            return nil
        }
        return (unsafeBitCast(register, to: FrameFunction.self), unsafeBitCast(deregister, to: FrameFunction.self))
    }()

    static func register(_ tables: [UInt64]) {
        guard let functions else { return }
        for table in tables { functions.register(UnsafeRawPointer(bitPattern: UInt(table))!) }
    }

    static func deregister(_ tables: [UInt64]) {
        guard let functions else { return }
        for table in tables { functions.deregister(UnsafeRawPointer(bitPattern: UInt(table))!) }
    }
}
