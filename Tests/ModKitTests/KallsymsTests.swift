import Glibc
import Testing
@testable import ModKit

/// A module with a symbol of every kind kallsyms lists, and an init function whose address it
/// keeps after its init memory is freed.
private let kallsymsModule = #"""
#include <modkit/module.h>
static int counter;
int shared_value = 5;
const int table[4] = {1, 2, 3, 4};
void *init_address;
__attribute__((noinline)) static int helper(int x) { return x * 3 + counter++; }
int visible(int x) { return helper(x) + shared_value + table[x & 3]; }
static int __initdata init_only_value = 9;
static int __init kallmod_setup(void) { init_address = (void *)kallmod_setup; return init_only_value - 9; }
static void __exit kallmod_teardown(void) {}
module_init(kallmod_setup);
module_exit(kallmod_teardown);
"""#

/// Another module with a static `helper`, to check that `module:name` picks the module.
private let otherModule = #"""
#include <modkit/module.h>
__attribute__((noinline)) static int helper(int x) { return x + 1; }
int other_entry(int x) { return helper(x); }
"""#

@Suite("kallsyms")
struct KallsymsTests {
    private func loadModule(_ source: String, name: String, host: ModuleHost, in directory: TemporaryDirectory) async throws -> Module {
        let object = try await ObjectBuilder.compile(source, name: name, in: directory)
        return try host.load(files: [object])
    }

    private func hex(_ value: UInt64) -> String {
        String(value, radix: 16)
    }

    @Test func moduleSymbolTypes() async throws {
        let directory = try TemporaryDirectory(prefix: "kallsyms")
        defer { directory.remove() }
        let host = ModuleHost()
        _ = try await loadModule(kallsymsModule, name: "kallmod", host: host, in: directory)
        defer { try? host.remove("kallmod") }

        let expected: [(String, Character)] = [
            ("helper", "t"), ("visible", "T"), ("shared_value", "D"), ("counter", "b"), ("table", "R"), ("init_address", "B"),
        ]
        for (name, type) in expected {
            let symbol = host.kallsyms.lookup(named: "kallmod:\(name)")
            #expect(symbol?.type == type, "\(name)")
            #expect(symbol?.ownerName == "kallmod", "\(name)")
            #expect(symbol?.ownerKind == .module, "\(name)")
        }
    }

    @Test func symbolicateModuleAddress() async throws {
        let directory = try TemporaryDirectory(prefix: "kallsyms")
        defer { directory.remove() }
        let host = ModuleHost()
        let module = try await loadModule(kallsymsModule, name: "kallmod", host: host, in: directory)
        defer { try? host.remove("kallmod") }

        let helper = try #require(host.kallsyms.lookup(named: "kallmod:helper"))
        #expect(module.contains(helper.address))
        #expect(helper.size > 1)
        #expect(host.kallsyms.symbolicate(helper.address + 1) == "helper+0x1/0x\(hex(helper.size)) [kallmod]")
        #expect(host.kallsyms.symbolicate(helper.address) == "helper+0x0/0x\(hex(helper.size)) [kallmod]")

        let visible = try #require(module.address(of: "visible"))
        let visibleAddress = UInt64(UInt(bitPattern: visible))
        #expect(host.kallsyms.address(of: "visible") == visibleAddress)
        #expect(host.kallsyms.lookup(visibleAddress)?.name == "visible")
    }

    @Test func listingHasModuleLines() async throws {
        let directory = try TemporaryDirectory(prefix: "kallsyms")
        defer { directory.remove() }
        let host = ModuleHost()
        _ = try await loadModule(kallsymsModule, name: "kallmod", host: host, in: directory)
        defer { try? host.remove("kallmod") }

        let helper = try #require(host.kallsyms.address(of: "kallmod:helper"))
        let address = String(repeating: "0", count: 16 - hex(helper).count) + hex(helper)
        let lines = host.kallsyms.listing().split(separator: "\n")
        #expect(lines.contains { $0 == "\(address) t helper\t[kallmod]" })
        #expect(host.kallsyms.listing(owner: "kallmod")?.contains("\(address) t helper\t[kallmod]\n") == true)
        #expect(lines.contains { $0.hasSuffix(" T main") })
        #expect(lines.contains { $0.hasSuffix(" T malloc\t[libc.so.6]") })
    }

    @Test func initSymbolsGoAfterInit() async throws {
        let directory = try TemporaryDirectory(prefix: "kallsyms")
        defer { directory.remove() }
        let host = ModuleHost()
        _ = try await loadModule(kallsymsModule, name: "kallmod", host: host, in: directory)
        defer { try? host.remove("kallmod") }

        let slot = try #require(host.kallsyms.address(of: "kallmod:init_address"))
        let initAddress = UnsafePointer<UInt64>(bitPattern: UInt(slot))!.pointee
        #expect(initAddress != 0)
        #expect(host.kallsyms.symbolicate(initAddress) == nil)
        #expect(host.kallsyms.lookup(named: "kallmod:kallmod_setup") == nil)
        #expect(host.kallsyms.lookup(named: "kallmod:init_only_value") == nil)
        #expect(host.kallsyms.lookup(named: "kallmod:kallmod_teardown") != nil)
    }

    @Test func symbolsGoAtRemoval() async throws {
        let directory = try TemporaryDirectory(prefix: "kallsyms")
        defer { directory.remove() }
        let host = ModuleHost()
        _ = try await loadModule(kallsymsModule, name: "kallmod", host: host, in: directory)
        let visible = try #require(host.kallsyms.address(of: "kallmod:visible"))

        try host.remove("kallmod")

        #expect(host.kallsyms.lookup(named: "kallmod:visible") == nil)
        #expect(host.kallsyms.lookup(named: "visible") == nil)
        #expect(host.kallsyms.symbolicate(visible) == nil)
        #expect(host.kallsyms.listing(owner: "kallmod") == nil)
    }

    @Test func modulePrefixPicksModule() async throws {
        let directory = try TemporaryDirectory(prefix: "kallsyms")
        defer { directory.remove() }
        let host = ModuleHost()
        let first = try await loadModule(kallsymsModule, name: "kallmod", host: host, in: directory)
        defer { try? host.remove("kallmod") }
        let second = try await loadModule(otherModule, name: "othermod", host: host, in: directory)
        defer { try? host.remove("othermod") }

        let firstHelper = try #require(host.kallsyms.address(of: "kallmod:helper"))
        let secondHelper = try #require(host.kallsyms.address(of: "othermod:helper"))
        #expect(first.contains(firstHelper))
        #expect(second.contains(secondHelper))
        #expect(host.kallsyms.symbolicate(secondHelper)?.hasSuffix(" [othermod]") == true)
        #expect(host.kallsyms.address(of: "nosuchmod:helper") == nil)
        #expect(host.kallsyms.address(of: "othermod:visible") == nil)
    }

    @Test func librarySymbolFromDisk() {
        let host = ModuleHost()
        let malloc = UInt64(UInt(bitPattern: dlsym(UnsafeMutableRawPointer(bitPattern: 0), "malloc")))

        #expect(host.kallsyms.address(of: "malloc") == malloc)
        #expect(host.kallsyms.address(of: "libc.so.6:malloc") == malloc)
        let symbol = host.kallsyms.lookup(malloc + 4)
        #expect(symbol?.name == "malloc")
        #expect(symbol?.description == "malloc+0x4/0x\(hex(symbol?.size ?? 0)) [libc.so.6]")
    }

    @Test func executableSymbolHasNoOwner() throws {
        let host = ModuleHost()
        let main = try #require(host.kallsyms.lookup(named: "main"))

        #expect(main.ownerKind == .executable)
        #expect(host.kallsyms.symbolicate(main.address + 2) == "main+0x2/0x\(hex(main.size))")
    }
}

@Suite("kallsyms table")
struct KallsymsTableTests {
    private func makeTable() -> KallsymsTable {
        KallsymsTable(ownerName: "synthetic", kind: .module, start: 0x1000, end: 0x2000, symbols: [
            KallsymsSymbol(name: "sized", address: 0x1100, size: 0x20, type: UInt8(ascii: "T")),
            KallsymsSymbol(name: "unsized", address: 0x1200, size: 0, type: UInt8(ascii: "t")),
            KallsymsSymbol(name: "last", address: 0x1800, size: 0, type: UInt8(ascii: "d")),
            KallsymsSymbol(name: "twin", address: 0x1300, size: 4, type: UInt8(ascii: "t")),
            KallsymsSymbol(name: "twin", address: 0x1400, size: 4, type: UInt8(ascii: "T")),
            KallsymsSymbol(name: "sized", address: 0x1100, size: 0x20, type: UInt8(ascii: "T")),
            KallsymsSymbol(name: "outside", address: 0x3000, size: 4, type: UInt8(ascii: "T")),
        ])
    }

    @Test func duplicatesAndOutsideDropped() {
        #expect(makeTable().count == 5)
    }

    @Test func missingSizeReachesNextSymbol() throws {
        let table = makeTable()
        let unsized = try #require(table.index(named: "unsized"))
        let last = try #require(table.index(named: "last"))
        #expect(table.size(at: unsized) == 0x100)
        #expect(table.size(at: last) == 0x800)
    }

    @Test func addressInGapNotFound() {
        let table = makeTable()
        #expect(table.index(containing: 0x1120) == nil)
        #expect(table.index(containing: 0x10ff) == nil)
        #expect(table.index(containing: 0x2000) == nil)
    }

    @Test func addressInsideSymbolFound() throws {
        let table = makeTable()
        let index = try #require(table.index(containing: 0x111f))
        #expect(table.name(at: index) == "sized")
    }

    @Test func globalWinsNameLookup() throws {
        let table = makeTable()
        let index = try #require(table.index(named: "twin"))
        #expect(table.address(at: index) == 0x1400)
    }
}
