import Testing

/// A module with a writable, a read-only and a hidden parameter.
private let tunableModule = #"""
#include <modkit/module.h>
static int limit = 10;
module_param(limit, int, 0644);
static char *label = "none";
module_param(label, charp, 0444);
static int secret = 1;
module_param(secret, int, 0);
static int __init tunable_init(void) { return 0; }
static void __exit tunable_exit(void) {}
module_init(tunable_init);
module_exit(tunable_exit);
MODULE_LICENSE("GPL");
"""#

@Suite("modkit param")
struct ParamCommandTests {
    @Test("param lists, reads and sets parameters")
    func listReadAndSet() async throws {
        let directory = try TemporaryDirectory(prefix: "param")
        defer { directory.remove() }
        let object = try await ObjectBuilder.compile(tunableModule, name: "tunable", in: directory)
        let daemon = try await RunningDaemon(in: directory)

        let insert = try await daemon.run(["insmod", object, "limit=5", "label=a b"])
        #expect(insert.status == 0, "\(insert)")

        let list = try await daemon.run(["param", "tunable"])
        #expect(list.status == 0, "\(list)")
        #expect(list.standardOutput == "label=a b\nlimit=5\n", "\(list)")

        let set = try await daemon.run(["param", "tunable", "limit=0x20"])
        #expect(set.status == 0, "\(set)")
        #expect(set.standardOutput == "", "\(set)")
        let read = try await daemon.run(["param", "tunable", "limit"])
        #expect(read.standardOutput == "32\n", "\(read)")
    }

    @Test("param rejects read-only, hidden and invalid parameters")
    func rejections() async throws {
        let directory = try TemporaryDirectory(prefix: "param")
        defer { directory.remove() }
        let object = try await ObjectBuilder.compile(tunableModule, name: "tunable", in: directory)
        let daemon = try await RunningDaemon(in: directory)
        let insert = try await daemon.run(["insmod", object])
        #expect(insert.status == 0, "\(insert)")

        let cases: [([String], String)] = [
            (["param", "tunable", "label=x"], "modkit param: ERROR: parameter 'label' of module tunable is read-only (mode 444)\n"),
            (["param", "tunable", "secret"], "modkit param: ERROR: module tunable has no parameter 'secret'\n"),
            (["param", "tunable", "limit=big"], "modkit param: ERROR: invalid value 'big' for parameter 'limit' (int) of module tunable: expected an int in [-2147483648, 2147483647]\n"),
            (["param", "nosuch"], "modkit param: ERROR: module nosuch is not loaded\n"),
        ]
        for (arguments, message) in cases {
            let result = try await daemon.run(arguments)
            #expect(result.status == 1, "\(result)")
            #expect(result.standardError == message, "\(result)")
        }
        let unchanged = try await daemon.run(["param", "tunable", "limit"])
        #expect(unchanged.standardOutput == "10\n", "\(unchanged)")
    }
}
