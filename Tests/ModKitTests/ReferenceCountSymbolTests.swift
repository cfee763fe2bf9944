import ModKit
import Testing

/// References that other code holds on a module: `symbol_get`, the link dependencies of an
/// importer, and calls that a module makes into its own commands.
@Suite("Symbols, dependencies and callbacks")
struct ReferenceCountSymbolTests {
    /// A module that exports `NAME_value`, a function returning 42.
    static func exporter(_ name: String) -> String {
        moduleProlog + """
            int \(name)_value(void) { return 42; }
            EXPORT_SYMBOL(\(name)_value);
            static int __init exporter_init(void) { return 0; }
            static void __exit exporter_exit(void) {}
            module_init(exporter_init);
            module_exit(exporter_exit);
            """
    }

    @Test("symbol_get of an unknown name is NULL")
    func symbolGetUnknown() async throws {
        let test = try ModuleTestHost()
        defer { test.finish() }
        _ = try await test.load(commandModule("lookup_missing", body: """
            modkit_printf(out, "%s\\n", symbol_get(refcount_nobody_exports) == NULL ? "NULL" : "found");
            return 0;
            """, declarations: "extern int refcount_nobody_exports(void);\n"), name: "lookup_missing")

        let result = try test.host.callCommand("lookup_missing")

        #expect(result.output == "NULL\n")
        #expect(test.host.symbolGet("refcount_nobody_exports") == nil)
    }

    @Test("symbol_put with no exporter warns")
    func symbolPutWithoutExporter() async throws {
        let test = try ModuleTestHost()
        defer { test.finish() }
        _ = try await test.load(commandModule("put_missing", body: """
            symbol_put(refcount_nobody_exports);
            return 0;
            """, declarations: "extern int refcount_nobody_exports(void);\n"), name: "put_missing")

        let result = try test.host.callCommand("put_missing")

        #expect(result.status == 0)
        #expect(test.log.messages(of: "put_missing").contains(
            "symbol_put: no module exports refcount_nobody_exports, so there is no reference to drop; was its module removed by force?"))
    }

    @Test("symbol_get of a module in its init is NULL")
    func symbolGetDuringInit() async throws {
        let test = try ModuleTestHost()
        defer { test.finish() }
        _ = try await test.load(commandModule("early_lookup", body: """
            modkit_printf(out, "in init: %s, live: %d\\n", found_in_init ? "found" : "NULL", symbol_get(early_lookup_value)());
            symbol_put(early_lookup_value);
            return 0;
            """, extraInit: """
            found_in_init = symbol_get(early_lookup_value) != NULL;
            if (found_in_init)
                symbol_put(early_lookup_value);
            """, declarations: """
            static int found_in_init = -1;
            int early_lookup_value(void) { return 42; }
            EXPORT_SYMBOL(early_lookup_value);
            """), name: "early_lookup")

        let result = try test.host.callCommand("early_lookup")

        #expect(result.output == "in init: NULL, live: 42\n")
    }

    @Test("symbol_get holds a reference until symbol_put")
    func symbolGetHoldsReference() async throws {
        let test = try ModuleTestHost()
        defer { test.finish() }
        let exporter = try await test.load(Self.exporter("held"), name: "held")
        _ = try await test.load(moduleProlog + """
            extern int held_value(void);
            static int (*value)(void);

            static int take(int argc, char **argv, struct modkit_output *out)
            {
                (void)argc;
                (void)argv;
                value = symbol_get(held_value);
                modkit_printf(out, "%d\\n", value ? value() : -1);
                return 0;
            }

            static int drop(int argc, char **argv, struct modkit_output *out)
            {
                (void)argc;
                (void)argv;
                (void)out;
                symbol_put(held_value);
                value = NULL;
                return 0;
            }

            static struct modkit_command take_command = {THIS_MODULE, "take", "symbol_get", take};
            static struct modkit_command drop_command = {THIS_MODULE, "drop", "symbol_put", drop};

            static int __init user_init(void)
            {
                modkit_register_command(&take_command);
                modkit_register_command(&drop_command);
                return 0;
            }

            static void __exit user_exit(void)
            {
                modkit_unregister_command(&take_command);
                modkit_unregister_command(&drop_command);
            }

            module_init(user_init);
            module_exit(user_exit);
            """, name: "runtime_user")

        let taken = try test.host.callCommand("take")

        #expect(taken.output == "42\n")
        #expect(exporter.referenceCount == 1)
        #expect(exporter.users.isEmpty)
        let error = #expect(throws: RemovalError.self) { try test.host.remove("held") }
        #expect(error?.kind == .inUse)
        #expect(error?.message == "module held is in use (reference count 1)")
        _ = try test.host.callCommand("drop")
        #expect(exporter.referenceCount == 0)
        #expect(throws: Never.self) { try test.host.remove("held") }
    }

    @Test("host symbolGet holds a reference")
    func hostSymbolGet() async throws {
        let test = try ModuleTestHost()
        defer { test.finish() }
        let exporter = try await test.load(Self.exporter("swift_held"), name: "swift_held")

        let address = try #require(test.host.symbolGet("swift_held_value"))
        let value = unsafeBitCast(address, to: (@convention(c) () -> Int32).self)

        #expect(value() == 42)
        #expect(exporter.referenceCount == 1)
        let error = #expect(throws: RemovalError.self) { try test.host.remove("swift_held") }
        #expect(error?.message == "module swift_held is in use (reference count 1)")
        #expect(test.host.symbolPut("swift_held_value"))
        #expect(exporter.referenceCount == 0)
        #expect(throws: Never.self) { try test.host.remove("swift_held") }
    }

    @Test("importer pins its exporter")
    func dependencyHoldsReference() async throws {
        let test = try ModuleTestHost()
        defer { test.finish() }
        let exporter = try await test.load(Self.exporter("base"), name: "base")
        _ = try await test.load(commandModule("importer_call", body: """
            modkit_printf(out, "%d\\n", base_value());
            return 0;
            """, declarations: "extern int base_value(void);\n"), name: "importer")

        #expect(exporter.referenceCount == 1)
        #expect(exporter.users == ["importer"])
        #expect(try test.host.callCommand("importer_call").output == "42\n")
        for wait in [false, true] {
            let error = #expect(throws: RemovalError.self) { try test.host.remove("base", wait: wait) }
            #expect(error?.kind == .usedByModules)
            #expect(error?.message == "module base is in use by: importer")
            #expect(error?.users == ["importer"])
        }
        #expect(exporter.state == .live)

        try test.host.remove("importer")

        #expect(exporter.referenceCount == 0)
        #expect(exporter.users.isEmpty)
        #expect(throws: Never.self) { try test.host.remove("base") }
    }

    @Test("init calls its own command without a get")
    func initCallsOwnCommand() async throws {
        let test = try ModuleTestHost()
        defer { test.finish() }
        _ = try await test.load(commandModule("self_call", body: """
            modkit_printf(out, "ran with %s", argc > 1 ? argv[1] : "nothing");
            return 7;
            """, extraInit: """
            char *arguments[] = {"init", NULL};
            int status = -1;
            int result = modkit_call_command(THIS_MODULE, "self_call", 1, arguments, NULL, &status);
            pr_info("call: %d, status: %d, get: %d\\n", result, status, try_module_get(THIS_MODULE));
            if (result != 0) {
                modkit_unregister_command(&command);
                return result;
            }
            """), name: "self_call")

        #expect(test.log.messagesWithoutVersionWarning(from: "self_call") == ["call: 0, status: 7, get: 0"])
        let fromHost = try test.host.callCommand("self_call", arguments: ["host"])
        #expect(fromHost.status == 7)
        #expect(fromHost.output == "ran with host")
    }

    @Test("call into a module in its init fails")
    func callIntoInitializingModule() async throws {
        let test = try ModuleTestHost()
        defer { test.finish() }
        let blocked = try await InitBlockedModule(test, name: "still_coming")
        let caller = commandModule("caller", body: """
            int status = -1;
            int result = modkit_call_command(THIS_MODULE, argv[1], 0, NULL, out, &status);
            modkit_printf(out, "\\ncall: %d, status: %d\\n", result, status);
            return 0;
            """)
        _ = try await test.load(caller, name: "caller")

        try blocked.whileInInit { _ in
            let result = try test.host.callCommand("caller", arguments: ["still_coming"])
            #expect(result.output == "\ncall: -19, status: -1\n")
        }

        let unknown = try test.host.callCommand("caller", arguments: ["no_such_command"])
        let live = try test.host.callCommand("caller", arguments: ["still_coming"])
        #expect(unknown.output == "\ncall: -2, status: -1\n")
        #expect(live.output == "\ncall: 0, status: 0\n")
    }

    @Test("failed init leaves no command")
    func failedInitCommand() async throws {
        let test = try ModuleTestHost()
        defer { test.finish() }
        let object = try await test.compile(moduleProlog + """
            static int run(int argc, char **argv, struct modkit_output *out)
            {
                (void)argc;
                (void)argv;
                (void)out;
                return 0;
            }
            static struct modkit_command command = {THIS_MODULE, "forgotten", "left registered", run};
            static int __init failing_init(void)
            {
                modkit_register_command(&command);
                return -EINVAL;
            }
            module_init(failing_init);
            """, name: "failing")

        #expect(throws: LoadError.self) { try test.host.load(files: [object]) }

        #expect(test.host.commands.isEmpty)
        #expect(test.log.messagesWithoutVersionWarning(from: "failing") == ["module left commands registered after its failed init: forgotten; removed them"])
        let error = #expect(throws: RegistryError.self) { try test.host.callCommand("forgotten") }
        #expect(error?.kind == .notFound)
    }
}
