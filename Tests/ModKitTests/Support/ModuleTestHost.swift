import Foundation
import ModKit
import Synchronization

/// A module host for one test, whose log is kept in memory, and a directory for the objects
/// the test compiles. Call `finish()` at the end of the test.
struct ModuleTestHost: Sendable {
    let host: ModuleHost
    let log = LogCollector()
    let directory: TemporaryDirectory

    init(unloadEnabled: Bool = true) throws {
        LoaderTestHooks.install()
        directory = try TemporaryDirectory(prefix: "refcount")
        var options = HostOptions()
        options.unloadEnabled = unloadEnabled
        options.logHandler = log.handler
        host = ModuleHost(options: options)
    }

    /// Compiles `source` (C, with `modkit/module.h` on the include path) into `NAME.o` and
    /// returns its path. The module's name is `name` unless the source sets another.
    func compile(_ source: String, name: String) async throws -> String {
        try await ObjectBuilder.compile(source, name: name, in: directory)
    }

    /// Compiles `source` and loads it as the module `name`.
    func load(_ source: String, name: String) async throws -> Module {
        let object = try await compile(source, name: name)
        return try host.load(files: [object])
    }

    /// Removes the modules the test left loaded, newest first, unless they are still in use,
    /// and deletes the directory.
    func finish() {
        for module in host.modules.reversed() {
            try? host.remove(module.name)
        }
        directory.remove()
    }
}

/// The start of every test module's source: the headers its C code uses and a license, which
/// also gives the module ModKit metadata, so it exports only what it declares with
/// `EXPORT_SYMBOL`.
let moduleProlog = """
    #define _GNU_SOURCE
    #include <modkit/module.h>
    #include <errno.h>
    #include <unistd.h>
    MODULE_LICENSE("GPL");

    """

/// A module command named `name` whose body is the C statements `body`, with `argc`, `argv`
/// and `out` in scope, and the init and exit functions that register and unregister it.
func commandModule(_ name: String, body: String, extraInit: String = "", declarations: String = "") -> String {
    moduleProlog + declarations + """

    static int run_command(int argc, char **argv, struct modkit_output *out)
    {
        (void)argc;
        (void)argv;
        \(body)
    }

    static struct modkit_command command = {THIS_MODULE, "\(name)", "test command", run_command};

    static int __init command_module_init(void)
    {
        int error = modkit_register_command(&command);
        if (error != 0)
            return error;
        \(extraInit)
        return 0;
    }

    static void __exit command_module_exit(void)
    {
        modkit_unregister_command(&command);
    }

    module_init(command_module_init);
    module_exit(command_module_exit);
    """
}
