import CModKit
import Foundation
import ModKit
import Testing

/// The rules of `try_module_get` and `module_put` that do not involve removal: NULL owners,
/// modules in their init, calls through a module's pointers, signal handlers, the Swift scoped
/// form and hosts without unloading.
@Suite("Reference counts")
struct ReferenceCountTests {
    @Test("get on a NULL owner succeeds")
    func getNullOwner() async throws {
        let test = try ModuleTestHost()
        defer { test.finish() }
        _ = try await test.load(commandModule("null_get", body: """
            unsigned long before = module_refcount(THIS_MODULE);
            bool got = try_module_get(NULL);
            modkit_printf(out, "got=%d before=%lu after=%lu\\n", got, before, module_refcount(THIS_MODULE));
            return 0;
            """), name: "null_get")

        let result = try test.host.callCommand("null_get")

        #expect(result.output == "got=1 before=1 after=1\n")
        #expect(try_module_get(nil))
    }

    @Test("put on a NULL owner does nothing")
    func putNullOwner() async throws {
        let test = try ModuleTestHost()
        defer { test.finish() }
        let module = try await test.load(commandModule("null_put", body: """
            unsigned long before = module_refcount(THIS_MODULE);
            module_put(NULL);
            module_put(NULL);
            modkit_printf(out, "before=%lu after=%lu\\n", before, module_refcount(THIS_MODULE));
            return 0;
            """), name: "null_put")

        let result = try test.host.callCommand("null_put")
        module_put(nil)

        #expect(result.output == "before=1 after=1\n")
        #expect(module.referenceCount == 0)
        #expect(throws: Never.self) { try test.host.remove("null_put") }
    }

    @Test("get fails inside module_init")
    func getFailsInInit() async throws {
        let test = try ModuleTestHost()
        defer { test.finish() }
        let module = try await test.load(commandModule("init_get", body: """
            modkit_printf(out, "in init: %d, live: %d\\n", got_in_init, try_module_get(THIS_MODULE));
            module_put(THIS_MODULE);
            return 0;
            """, extraInit: """
            got_in_init = try_module_get(THIS_MODULE);
            if (got_in_init)
                module_put(THIS_MODULE);
            """, declarations: "static int got_in_init = -1;\n"), name: "init_get")

        let result = try test.host.callCommand("init_get")

        #expect(result.output == "in init: 0, live: 1\n")
        #expect(module.referenceCount == 0)
    }

    @Test("get fails while init runs")
    func getFailsWhileInitRuns() async throws {
        let test = try ModuleTestHost()
        defer { test.finish() }
        let blocked = try await InitBlockedModule(test, name: "slow_init")

        try blocked.whileInInit { module in
            #expect(module.state == .coming)
            #expect(!module.tryGet())
            #expect(module.referenceCount == 0)
            let callError = #expect(throws: RegistryError.self) { try test.host.callCommand("slow_init") }
            #expect(callError?.kind == .goingAway)
            #expect(callError?.message == "slow_init is going away")
            let scopedError = #expect(throws: ModuleGoingAway.self) {
                try module.withReference { Issue.record("withReference ran its body during init") }
            }
            #expect(scopedError?.description == "slow_init is going away")
        }

        #expect(blocked.module.state == .live)
        #expect(blocked.module.tryGet())
        blocked.module.put()
    }

    @Test("removal during init is rejected")
    func removalDuringInit() async throws {
        let test = try ModuleTestHost()
        defer { test.finish() }
        let blocked = try await InitBlockedModule(test, name: "init_remove")

        try blocked.whileInInit { _ in
            let error = #expect(throws: RemovalError.self) { try test.host.remove("init_remove", wait: true) }
            #expect(error?.kind == .notLive)
            #expect(error?.message == "module init_remove is still initializing")
        }

        #expect(throws: Never.self) { try test.host.remove("init_remove") }
    }

    @Test("command call holds a reference")
    func commandCallHoldsReference() async throws {
        let test = try ModuleTestHost()
        defer { test.finish() }
        let module = try await test.load(commandModule("count_refs", body: """
            modkit_printf(out, "%lu\\n", module_refcount(THIS_MODULE));
            return 0;
            """), name: "count_refs")

        let during = try test.host.callCommand("count_refs")

        #expect(during.output == "1\n")
        #expect(module.referenceCount == 0)
    }

    @Test("get and put in a signal handler")
    func signalHandler() async throws {
        let test = try ModuleTestHost()
        defer { test.finish() }
        let module = try await test.load(commandModule("signals", body: """
            struct sigaction action = {0};
            struct sigaction previous;
            sigset_t usr1;
            sigset_t old_mask;
            sigset_t pending;
            pthread_t sender;
            unsigned long loops = 0;

            action.sa_handler = on_signal;
            sigemptyset(&action.sa_mask);
            if (sigaction(SIGUSR1, &action, &previous) != 0)
                return -errno;
            /* Threads of the Swift concurrency pool block most signals. */
            sigemptyset(&usr1);
            sigaddset(&usr1, SIGUSR1);
            pthread_sigmask(SIG_UNBLOCK, &usr1, &old_mask);
            target = pthread_self();
            if (pthread_create(&sender, NULL, send_signals, NULL) != 0) {
                pthread_sigmask(SIG_SETMASK, &old_mask, NULL);
                sigaction(SIGUSR1, &previous, NULL);
                return -EAGAIN;
            }
            while (!__atomic_load_n(&sender_done, __ATOMIC_ACQUIRE)) {
                if (try_module_get(THIS_MODULE))
                    module_put(THIS_MODULE);
                loops++;
                __atomic_store_n(&looping, 1, __ATOMIC_RELEASE);
            }
            pthread_join(sender, NULL);
            /* A signal still pending is delivered when this system call returns. */
            sigpending(&pending);
            pthread_sigmask(SIG_SETMASK, &old_mask, NULL);
            sigaction(SIGUSR1, &previous, NULL);
            modkit_printf(out, "handled: %d, refused: %d, count: %lu, loops: %d\\n", handled > 0, (int)refused,
                          module_refcount(THIS_MODULE), loops > 0);
            return 0;
            """, declarations: """
            #include <pthread.h>
            #include <sched.h>
            #include <signal.h>

            static volatile sig_atomic_t handled;
            static volatile sig_atomic_t refused;
            static int sender_done;
            static int looping;
            static pthread_t target;

            static void on_signal(int signal_number)
            {
                (void)signal_number;
                if (try_module_get(THIS_MODULE)) {
                    module_put(THIS_MODULE);
                    handled++;
                } else {
                    refused++;
                }
            }

            static void *send_signals(void *unused)
            {
                (void)unused;
                /* Under load this thread could send every signal before the loop starts. */
                while (!__atomic_load_n(&looping, __ATOMIC_ACQUIRE))
                    sched_yield();
                for (int i = 0; i < 2000; i++) {
                    pthread_kill(target, SIGUSR1);
                    if (i % 16 == 0)
                        sched_yield();
                }
                __atomic_store_n(&sender_done, 1, __ATOMIC_RELEASE);
                return NULL;
            }
            """), name: "signals")

        let result = try test.host.callCommand("signals")

        #expect(result.status == 0)
        #expect(result.output == "handled: 1, refused: 0, count: 1, loops: 1\n")
        #expect(module.referenceCount == 0)
    }

    @Test("withReference drops the reference on throw")
    func withReferenceThrows() async throws {
        struct Failure: Error {}
        let test = try ModuleTestHost()
        defer { test.finish() }
        let module = try await test.load(moduleProlog, name: "scoped")
        var countInside = -1

        #expect(throws: Failure.self) {
            try module.withReference {
                countInside = module.referenceCount
                throw Failure()
            }
        }

        #expect(countInside == 1)
        #expect(module.referenceCount == 0)
        #expect(throws: Never.self) { try test.host.remove("scoped") }
    }

    @Test("process mode is membarrier or fence")
    func processMode() throws {
        let test = try ModuleTestHost()
        defer { test.finish() }

        #expect(["membarrier", "fence"].contains(test.host.referenceCountingMode))
    }

    @Test("no-unload get checks only live")
    func noUnloadGet() async throws {
        let test = try ModuleTestHost(unloadEnabled: false)
        defer { test.finish() }
        let module = try await test.load(commandModule("no_unload", body: """
            modkit_printf(out, "in init: %d, count: %lu\\n", got_in_init, module_refcount(THIS_MODULE));
            return 0;
            """, extraInit: "got_in_init = try_module_get(THIS_MODULE);\n",
            declarations: "static int got_in_init = -1;\n"), name: "no_unload")

        let gotLive = module.tryGet()
        let countAfterGet = module.referenceCount
        module.put()
        let result = try test.host.callCommand("no_unload")

        #expect(test.host.referenceCountingMode == "no-unload")
        #expect(gotLive)
        #expect(countAfterGet == 0)
        #expect(result.output == "in init: 0, count: 0\n")
    }

    @Test("no-unload removal is rejected")
    func noUnloadRemoval() async throws {
        let test = try ModuleTestHost(unloadEnabled: false)
        defer { test.finish() }
        let module = try await test.load(moduleProlog + """
            static int __init plain_init(void) { return 0; }
            static void __exit plain_exit(void) {}
            module_init(plain_init);
            module_exit(plain_exit);
            """, name: "pinned")
        let message = "module pinned cannot be removed: module unloading is disabled in this host"

        for wait in [false, true] {
            let error = #expect(throws: RemovalError.self) { try test.host.remove("pinned", wait: wait) }
            #expect(error?.kind == .unloadDisabled)
            #expect(error?.message == message)
        }
        #expect(module.state == .live)
        #expect(module.tryGet())
        module.put()
        #expect(throws: Never.self) { try test.host.remove("pinned", force: true) }
        #expect(test.host.module(named: "pinned") == nil)
    }
}
