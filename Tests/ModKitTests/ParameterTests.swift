import Testing
import Glibc
@testable import ModKit

/// A module with one parameter of every kind, which reports what init saw through a command.
private let parameterModule = #"""
#include <modkit/module.h>
#include <stdio.h>
static int count = 1;
module_param(count, int, 0644);
MODULE_PARM_DESC(count, "How many times to greet");
static bool verbose;
module_param(verbose, bool, 0444);
static bool quiet = true;
module_param(quiet, invbool, 0644);
static char *who = "world";
module_param(who, charp, 0644);
static unsigned int mask = 0xff;
module_param(mask, hexint, 0644);
static unsigned char level = 3;
module_param(level, byte, 0644);
static short delta = -1;
module_param(delta, short, 0644);
static unsigned short port = 80;
module_param(port, ushort, 0644);
static unsigned int limit = 10;
module_param(limit, uint, 0644);
static long offset;
module_param(offset, long, 0644);
static unsigned long big;
module_param(big, ulong, 0644);
static int values[4];
static unsigned int nvalues;
module_param_array(values, int, &nvalues, 0644);
static char label[8] = "none";
module_param_string(label, label, sizeof(label), 0644);
static int hidden = 7;
module_param(hidden, int, 0);
static int doubled;
static int set_doubled(const char *val, const struct kernel_param *kp)
{
    int v;
    if (sscanf(val, "%d", &v) != 1)
        return -22;
    *(int *)kp->arg = v * 2;
    return 0;
}
static int get_doubled(char *buffer, const struct kernel_param *kp)
{
    return sprintf(buffer, "%d", *(const int *)kp->arg);
}
static const struct kernel_param_ops doubled_ops = {set_doubled, get_doubled, 0};
module_param_cb(doubled, &doubled_ops, &doubled, 0644);

static char seen[512];
static int show(int argc, char **argv, struct modkit_output *out)
{
    (void)argc;
    (void)argv;
    modkit_printf(out, "%s", seen);
    return 0;
}
static struct modkit_command show_command = {THIS_MODULE, "params_seen", "What init saw", show};
static int __init params_init(void)
{
    snprintf(seen, sizeof(seen), "count=%d verbose=%d quiet=%d who=%s mask=%x level=%u delta=%d port=%u limit=%u offset=%ld big=%lu n=%u [%d,%d] label=%s doubled=%d hidden=%d",
             count, verbose, quiet, who, mask, level, delta, port, limit, offset, big, nvalues, values[0], values[1], label, doubled, hidden);
    return modkit_register_command(&show_command);
}
static void __exit params_exit(void)
{
    modkit_unregister_command(&show_command);
}
module_init(params_init);
module_exit(params_exit);
MODULE_LICENSE("GPL");
"""#

@Suite("Module parameters")
struct ParameterTests {
    private func load(_ parameters: String, host: ModuleHost, in directory: TemporaryDirectory) async throws -> Module {
        let object = try await ObjectBuilder.compile(parameterModule, name: "params", in: directory)
        return try host.load(files: [object], parameters: parameters)
    }

    @Test func defaultsWithoutParameters() async throws {
        // Loads and removals share the module area with tests that compare its mappings.
        try await withModuleArea {
            let directory = try TemporaryDirectory(prefix: "params")
            defer { directory.remove() }
            let host = ModuleHost()
            _ = try await load("", host: host, in: directory)
            let seen = try host.callCommand("params_seen").output
            #expect(seen == "count=1 verbose=0 quiet=1 who=world mask=ff level=3 delta=-1 port=80 limit=10 offset=0 big=0 n=0 [0,0] label=none doubled=0 hidden=7")
            try host.remove("params")
        }
    }

    @Test func everyTypeSetAtLoad() async throws {
        // Loads and removals share the module area with tests that compare its mappings.
        try await withModuleArea {
            let directory = try TemporaryDirectory(prefix: "params")
            defer { directory.remove() }
            let host = ModuleHost()
            let text = #"count=0x10 verbose quiet=y who="big world" mask=0xdead level=255 delta=-32768 port=65535 limit=4294967295 offset=-9223372036854775808 big=18446744073709551615 values=1,-2,3 label=abcdefg doubled=21 hidden=1"#
            _ = try await load(text, host: host, in: directory)
            let seen = try host.callCommand("params_seen").output
            #expect(seen == "count=16 verbose=1 quiet=0 who=big world mask=dead level=255 delta=-32768 port=65535 limit=4294967295 offset=-9223372036854775808 big=18446744073709551615 n=3 [1,-2] label=abcdefg doubled=42 hidden=1")
            try host.remove("params")
        }
    }

    @Test(arguments: [
        ("count=abc", "module params: invalid value 'abc' for parameter 'count' (int): expected an int in [-2147483648, 2147483647]"),
        ("count=2147483648", "module params: invalid value '2147483648' for parameter 'count' (int): expected an int in [-2147483648, 2147483647]"),
        ("level=256", "module params: invalid value '256' for parameter 'level' (byte): expected a byte (0 to 255) in [0, 255]"),
        ("delta=-32769", "module params: invalid value '-32769' for parameter 'delta' (short): expected a short in [-32768, 32767]"),
        ("limit=-1", "module params: invalid value '-1' for parameter 'limit' (uint): expected an unsigned int in [0, 4294967295]"),
        ("verbose=maybe", "module params: invalid value 'maybe' for parameter 'verbose' (bool): expected a bool (y, n, 1, 0, on, off)"),
        ("values=1,2,3,4,5", "module params: invalid value '1,2,3,4,5' for parameter 'values' (array of int): expected at most 4 comma-separated elements"),
        ("values=1,x", "module params: invalid value '1,x' for parameter 'values' (array of int): element 2: expected an int in [-2147483648, 2147483647]"),
        ("label=abcdefgh", "module params: invalid value 'abcdefgh' for parameter 'label' (string): expected a string of at most 7 bytes"),
        ("doubled=x", "module params: invalid value 'x' for parameter 'doubled' (cb): the module rejected it: Invalid argument"),
    ])
    func badValueFailsLoad(parameters: String, message: String) async throws {
        // Loads and removals share the module area with tests that compare its mappings.
        try await withModuleArea {
            let directory = try TemporaryDirectory(prefix: "params")
            defer { directory.remove() }
            let host = ModuleHost()
            let error = await #expect(throws: LoadError.self) { _ = try await self.load(parameters, host: host, in: directory) }
            #expect(error?.kind == .invalidParameter)
            #expect(error?.message == message)
            #expect(host.module(named: "params") == nil)
            #expect(host.commands.isEmpty)
        }
    }

    @Test func unknownParameterIsIgnored() async throws {
        // Loads and removals share the module area with tests that compare its mappings.
        try await withModuleArea {
            let directory = try TemporaryDirectory(prefix: "params")
            defer { directory.remove() }
            let records = LogRecords()
            var options = HostOptions()
            options.logHandler = { records.append($0) }
            let host = ModuleHost(options: options)
            _ = try await load("nosuch=1 count=2", host: host, in: directory)
            #expect(records.texts.contains("unknown parameter 'nosuch' ignored"))
            #expect(try host.parameterValue(module: "params", parameter: "count") == "2")
            try host.remove("params")
        }
    }

    @Test func dashesAndUnderscoresAreEquivalent() {
        #expect(ParameterString.parse("max-count=3 a_b") == [.init(name: "max_count", value: "3"), .init(name: "a_b", value: nil)])
        #expect(ParameterString.parse(#""who=a b" x="c d"e"#) == [.init(name: "who", value: "a b"), .init(name: "x", value: "c de")])
        #expect(ParameterString.parse("   ") == [])
    }

    @Test func runtimeReadAndWriteHonorPermissions() async throws {
        // Loads and removals share the module area with tests that compare its mappings.
        try await withModuleArea {
            let directory = try TemporaryDirectory(prefix: "params")
            defer { directory.remove() }
            let host = ModuleHost()
            let module = try await load("who=you values=5,6", host: host, in: directory)
            #expect(module.parameters.map(\.name).contains("hidden") == false)
            #expect(try host.parameterValue(module: "params", parameter: "who") == "you")
            #expect(try host.parameterValue(module: "params", parameter: "values") == "5,6")
            #expect(try host.parameterValue(module: "params", parameter: "mask") == "0xff")
            #expect(try host.parameterValue(module: "params", parameter: "quiet") == "N")

            try host.setParameter(module: "params", parameter: "count", to: "42")
            #expect(try host.parameterValue(module: "params", parameter: "count") == "42")
            try host.setParameter(module: "params", parameter: "doubled", to: "4")
            #expect(try host.parameterValue(module: "params", parameter: "doubled") == "8")

            let readOnly = #expect(throws: ParameterError.self) { try host.setParameter(module: "params", parameter: "verbose", to: "1") }
            #expect(readOnly?.message == "parameter 'verbose' of module params is read-only (mode 444)")
            let hidden = #expect(throws: ParameterError.self) { _ = try host.parameterValue(module: "params", parameter: "hidden") }
            #expect(hidden?.message == "module params has no parameter 'hidden'")
            let invalid = #expect(throws: ParameterError.self) { try host.setParameter(module: "params", parameter: "count", to: "x") }
            #expect(invalid?.kind == .invalidValue)
            try host.remove("params")
        }
    }

    @Test func integerParsingFollowsKernelRules() {
        #expect(ParameterValue.parseInteger("0x1f", as: Int32.self) == 31)
        #expect(ParameterValue.parseInteger("017", as: Int32.self) == 15)
        #expect(ParameterValue.parseInteger("-0", as: UInt32.self) == 0)
        #expect(ParameterValue.parseInteger("-2147483648", as: Int32.self) == Int32.min)
        #expect(ParameterValue.parseInteger("-2147483649", as: Int32.self) == nil)
        #expect(ParameterValue.parseInteger("12\n", as: Int32.self) == 12)
        #expect(ParameterValue.parseInteger("", as: Int32.self) == nil)
        #expect(ParameterValue.parseInteger("0x", as: Int32.self) == nil)
    }
}

/// Collects log records from a host's log handler.
final class LogRecords: @unchecked Sendable {
    private let lock = NSLockLike()
    private var records: [LogRecord] = []

    func append(_ record: LogRecord) {
        lock.locked { records.append(record) }
    }

    var texts: [String] {
        lock.locked { records.map(\.text) }
    }
}

/// A minimal lock for test helpers.
final class NSLockLike: @unchecked Sendable {
    private var mutex = pthread_mutex_t()
    init() { pthread_mutex_init(&mutex, nil) }
    deinit { pthread_mutex_destroy(&mutex) }
    func locked<R>(_ body: () throws -> R) rethrows -> R {
        pthread_mutex_lock(&mutex)
        defer { pthread_mutex_unlock(&mutex) }
        return try body()
    }
}
