import ModKit

/// A module whose init registers a command named after the module and then blocks until the
/// test lets it go on, so that the test can probe a module in its init. The module is loaded
/// on a thread of its own.
struct InitBlockedModule {
    let test: ModuleTestHost
    let name: String
    let inInit: TestPipe
    let proceed: TestPipe
    let loader: TestThread<Result<Module, LoadError>>

    init(_ test: ModuleTestHost, name: String) async throws {
        self.test = test
        self.name = name
        inInit = try TestPipe()
        proceed = try TestPipe()
        let object = try await test.compile(commandModule(name, body: "return 0;", extraInit: """
            char byte = 0;
            if (write(\(inInit.writeDescriptor), &byte, 1) != 1 || read(\(proceed.readDescriptor), &byte, 1) != 1) {
                modkit_unregister_command(&command);
                return -EIO;
            }
            """), name: name)
        let host = test.host
        loader = TestThread { Result { () throws(LoadError) in try host.load(files: [object]) } }
    }

    /// Runs `body` with the module while its init is blocked, then lets init return and waits
    /// for the load to finish.
    func whileInInit(_ body: (Module) throws -> Void) throws {
        var released = false
        defer { if !released { proceed.signal() } }
        guard inInit.wait() else { throw SubprocessError(description: "module \(name) did not reach its init") }
        guard let module = test.host.module(named: name) else { throw SubprocessError(description: "module \(name) is not registered during its init") }
        try body(module)
        released = true
        proceed.signal()
        guard let result = loader.join() else { throw SubprocessError(description: "loading \(name) did not finish") }
        _ = try result.get()
    }

    /// The module, once `whileInInit` returned.
    var module: Module { test.host.module(named: name)! }
}
