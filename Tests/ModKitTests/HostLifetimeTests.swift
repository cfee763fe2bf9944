import Foundation
import ModKit
import Testing

@Suite("Host lifetime")
struct HostLifetimeTests {
    @Test("released host keeps modules mapped")
    func releasedHostKeepsModules() async throws {
        let directory = try TemporaryDirectory(prefix: "lifetime")
        defer { directory.remove() }
        let object = try await ObjectBuilder.compile("""
            #include <modkit/module.h>
            MODULE_LICENSE("GPL");
            int lifetime_answer(void) { return 42; }
            static int __init lifetime_init(void) { return 0; }
            static void __exit lifetime_exit(void) {}
            module_init(lifetime_init);
            module_exit(lifetime_exit);
            """, name: "lifetime", in: directory)
        var host: ModuleHost? = ModuleHost()
        let address = try #require(try host?.load(files: [object]).address(of: "lifetime_answer"))

        host = nil
        let answer = unsafeBitCast(address, to: (@convention(c) () -> Int32).self)

        #expect(answer() == 42)
        // Unwinding reads the module's registered .eh_frame, so it must still be mapped.
        #expect(throws: CancellationError.self) { throw CancellationError() }
    }
}
