import CModKit
import Foundation
import ModKit
import Synchronization
import Testing

/// How removal and references meet: gets fail once a removal starts, a refused removal makes
/// the module live again, a waiting removal sleeps until the last put, and counts survive
/// threads that move, exit or fork.
@Suite("Removal with references")
struct ReferenceCountRemovalTests {
    /// A module with an exit function and one command, `NAME`, that prints its count.
    static func removableModule(_ name: String) -> String {
        commandModule(name, body: """
            modkit_printf(out, "count %lu\\n", module_refcount(THIS_MODULE));
            return 0;
            """)
    }

    @Test("get fails while removal waits")
    func getFailsDuringRemoval() async throws {
        let test = try ModuleTestHost()
        defer { test.finish() }
        let module = try await test.load(Self.removableModule("leaving"), name: "leaving")
        let host = test.host
        #expect(module.tryGet())

        let remover = TestThread { Result { () throws(RemovalError) in try host.remove("leaving", wait: true, timeout: .seconds(60)) } }
        let stopped = waitUntil {
            guard module.tryGet() else { return true }
            module.put()
            return false
        }

        #expect(stopped)
        #expect(!module.tryGet())
        #expect(module.state == .going)
        let callError = #expect(throws: RegistryError.self) { try host.callCommand("leaving") }
        #expect(callError?.kind == .goingAway)
        #expect(callError?.message == "leaving is going away")
        #expect(!remover.isFinished)

        module.put()
        let result = try #require(remover.join())

        #expect(throws: Never.self) { try result.get() }
        #expect(host.module(named: "leaving") == nil)
    }

    @Test("refused removal leaves the module live")
    func refusedRemoval() async throws {
        let test = try ModuleTestHost()
        defer { test.finish() }
        let module = try await test.load(Self.removableModule("busy"), name: "busy")
        #expect(module.tryGet())
        #expect(module.tryGet())

        let error = #expect(throws: RemovalError.self) { try test.host.remove("busy") }

        #expect(error?.kind == .inUse)
        #expect(error?.message == "module busy is in use (reference count 2)")
        #expect(error?.referenceCount == 2)
        #expect(module.state == .live)
        #expect(module.referenceCount == 2)
        #expect(try test.host.callCommand("busy").output == "count 3\n")
        module.put()
        module.put()
        #expect(throws: Never.self) { try test.host.remove("busy") }
    }

    @Test("waiting removal sleeps until last put")
    func waitSleepsUntilLastPut() async throws {
        let test = try ModuleTestHost()
        defer { test.finish() }
        let module = try await test.load(Self.removableModule("sleeper"), name: "sleeper")
        let host = test.host
        for _ in 0 ..< 3 { #expect(module.tryGet()) }

        let remover = TestThread { Result { () throws(RemovalError) in try host.remove("sleeper", wait: true, timeout: .seconds(60)) } }
        let thread = remover.threadID
        #expect(waitUntil { ThreadActivity.isBlockedInFutex(thread) })
        let asleep = try #require(ThreadActivity.voluntarySwitches(thread))
        usleep(200_000)

        // A remover that polled would have woken up in 200 ms.
        #expect(ThreadActivity.voluntarySwitches(thread) == asleep)

        var switches = asleep
        for remaining in [2, 1] {
            module.put()
            let before = switches
            let slept = waitUntil {
                ThreadActivity.isBlockedInFutex(thread) && (ThreadActivity.voluntarySwitches(thread) ?? 0) > before
            }
            #expect(slept, "the put that left \(remaining) references did not wake the remover")
            #expect(host.module(named: "sleeper") != nil)
            switches = ThreadActivity.voluntarySwitches(thread) ?? before
        }
        module.put()
        let result = try #require(remover.join())

        #expect(throws: Never.self) { try result.get() }
        #expect(host.module(named: "sleeper") == nil)
    }

    @Test("waiting removal times out")
    func waitTimesOut() async throws {
        let test = try ModuleTestHost()
        defer { test.finish() }
        let module = try await test.load(Self.removableModule("stuck"), name: "stuck")
        #expect(module.tryGet())

        let error = #expect(throws: RemovalError.self) {
            try test.host.remove("stuck", wait: true, timeout: .milliseconds(100))
        }

        #expect(error?.kind == .timedOut)
        #expect(error?.message == "module stuck is still in use after waiting (reference count 1)")
        #expect(module.state == .live)
        #expect(module.tryGet())
        module.put()
        module.put()
        #expect(throws: Never.self) { try test.host.remove("stuck") }
    }

    /// A thread loops over get and put while a waiting removal runs and the test drops the last
    /// reference. A failed get counts a get and a put. That put must wake the remover even when
    /// it lands just as the remover sums, or the remover sleeps until its timeout.
    @Test("failed gets never strand the remover")
    func failedGetRace() async throws {
        // The looping thread keeps a processor busy, so the default stays small for a full test
        // run on a small machine.
        let iterations = ProcessInfo.processInfo.environment["MODKIT_RACE_ITERATIONS"].flatMap { Int($0) } ?? 100
        let test = try ModuleTestHost()
        defer { test.finish() }
        let exiting = try TestPipe()
        let exitMayReturn = try TestPipe()
        // The exit function waits until the looping thread has stopped touching struct module,
        // which lies in the module's memory.
        let object = try await test.compile(moduleProlog + """
            static void __exit racer_exit(void)
            {
                char byte = 0;
                if (write(\(exiting.writeDescriptor), &byte, 1) == 1)
                    (void)!read(\(exitMayReturn.readDescriptor), &byte, 1);
            }
            module_exit(racer_exit);
            """, name: "racer")
        let host = test.host
        var slowest = Duration.zero

        for iteration in 0 ..< iterations {
            let module = try host.load(files: [object])
            #expect(module.tryGet())
            let stop = Atomic(false)
            let failedGets = Atomic(0)
            let looper = TestThread {
                var loops = 0
                while !stop.load(ordering: .relaxed) {
                    if module.tryGet() {
                        module.put()
                    } else {
                        failedGets.add(1, ordering: .relaxed)
                    }
                    // Lets the remover and the test thread run on a machine with few processors.
                    loops += 1
                    if loops % 256 == 0 { sched_yield() }
                }
            }
            let remover = TestThread { Result { () throws(RemovalError) in try host.remove("racer", wait: true, timeout: .seconds(10)) } }
            #expect(waitUntil { failedGets.load(ordering: .relaxed) > 0 })
            for _ in 0 ..< iteration % 50 { sched_yield() }

            let lastPut = ContinuousClock.now
            module.put()
            let exited = exiting.wait(timeout: .seconds(30))
            let latency = ContinuousClock.now - lastPut
            stop.store(true, ordering: .relaxed)
            _ = looper.join()
            exitMayReturn.signal()
            let result = try #require(remover.join())

            #expect(exited, "iteration \(iteration): the module's exit never ran")
            #expect(throws: Never.self) { try result.get() }
            #expect(latency < .seconds(5), "iteration \(iteration): the remover woke \(latency) after the last put")
            slowest = max(slowest, latency)
            guard exited, latency < .seconds(5) else { break }
        }
        #expect(slowest < .seconds(5))
    }

    @Test("init without exit needs force")
    func initWithoutExit() async throws {
        let test = try ModuleTestHost()
        defer { test.finish() }
        _ = try await test.load(moduleProlog + """
            static int __init permanent_init(void) { return 0; }
            module_init(permanent_init);
            """, name: "permanent")
        let message = "module permanent has an init function but no exit function, so it cannot be removed without force"

        for wait in [false, true] {
            let error = #expect(throws: RemovalError.self) { try test.host.remove("permanent", wait: wait) }
            #expect(error?.kind == .notRemovable)
            #expect(error?.message == message)
        }
        #expect(test.host.module(named: "permanent")?.state == .live)
        #expect(throws: Never.self) { try test.host.remove("permanent", force: true) }
        #expect(test.host.module(named: "permanent") == nil)
    }

    @Test("thread exit keeps its reference")
    func threadExitKeepsReference() async throws {
        let test = try ModuleTestHost()
        defer { test.finish() }
        let module = try await test.load(Self.removableModule("orphaned"), name: "orphaned")

        let got = try #require(TestThread { module.tryGet() }.join())

        #expect(got)
        #expect(module.referenceCount == 1)
        let error = #expect(throws: RemovalError.self) { try test.host.remove("orphaned") }
        #expect(error?.message == "module orphaned is in use (reference count 1)")
        module.put()
        #expect(module.referenceCount == 0)
        #expect(throws: Never.self) { try test.host.remove("orphaned") }
    }

    /// One thread takes references and another drops them, while the test thread holds one
    /// reference throughout and reads the count: the count must never fall below 1.
    @Test("gets and puts on different threads")
    func crossThreadGetPut() async throws {
        let references = 20_000
        let test = try ModuleTestHost()
        defer { test.finish() }
        let module = try await test.load(Self.removableModule("handoff"), name: "handoff")
        #expect(module.tryGet())
        let taken = Atomic(0)

        let getter = TestThread {
            var failures = 0
            for _ in 0 ..< references {
                if module.tryGet() { taken.add(1, ordering: .releasing) } else { failures += 1 }
            }
            return failures
        }
        let putter = TestThread {
            var dropped = 0
            while dropped < references {
                while dropped < taken.load(ordering: .acquiring) {
                    module.put()
                    dropped += 1
                }
            }
        }
        var lowest = Int.max
        while !putter.isFinished {
            lowest = min(lowest, module.referenceCount)
        }
        let failures = getter.join()
        _ = putter.join()

        #expect(failures == 0)
        #expect(lowest >= 1)
        #expect(module.referenceCount == 1)
        module.put()
        #expect(throws: Never.self) { try test.host.remove("handoff") }
    }

    /// The module's command forks. The child takes and drops references on the module and
    /// calls into it, then reports through a pipe. The command's own reference is counted in
    /// both processes.
    @Test("forked child counts on its own")
    func forkedChild() async throws {
        let test = try ModuleTestHost()
        defer { test.finish() }
        let module = try await test.load(commandModule("forker", body: """
            int report[2];
            char text[128] = "";
            pid_t child;
            int status = 0;
            ssize_t length;

            if (pipe(report) != 0)
                return -errno;
            child = fork();
            if (child == 0) {
                unsigned long before = module_refcount(THIS_MODULE);
                unsigned long held;
                int got = 1;

                for (int i = 0; i < 1000; i++)
                    got &= try_module_get(THIS_MODULE);
                held = module_refcount(THIS_MODULE);
                for (int i = 0; i < 1000; i++)
                    module_put(THIS_MODULE);
                length = snprintf(text, sizeof text, "child: got %d, before %lu, held %lu, after %lu, answer %d",
                                  got, before, held, module_refcount(THIS_MODULE), answer());
                (void)!write(report[1], text, (size_t)length);
                _exit(0);
            }
            close(report[1]);
            if (child < 0) {
                close(report[0]);
                return -EAGAIN;
            }
            length = read(report[0], text, sizeof text - 1);
            close(report[0]);
            waitpid(child, &status, 0);
            text[length > 0 ? length : 0] = '\\0';
            modkit_printf(out, "%s\\nchild status %d\\nparent count %lu\\n", text, status, module_refcount(THIS_MODULE));
            return 0;
            """, declarations: """
            #include <stdio.h>
            #include <sys/wait.h>

            static int __attribute__((noinline)) answer(void) { return 42; }
            """), name: "forker")

        let result = try test.host.callCommand("forker")

        #expect(result.output == """
            child: got 1, before 1, held 1001, after 1, answer 42
            child status 0
            parent count 1

            """)
        #expect(module.referenceCount == 0)
        #expect(throws: Never.self) { try test.host.remove("forker") }
    }
}
