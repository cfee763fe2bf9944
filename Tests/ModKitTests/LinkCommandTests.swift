import Foundation
import ModKit
import Testing

/// End-to-end tests of `modkit link`: each runs the real executable and checks its whole output
/// and exit status, and the files it writes.
@Suite("modkit link")
struct LinkCommandTests {
    private static let source = """
        #include <stdio.h>
        static int counter;
        int next(void) { return ++counter; }
        int main(void) { printf("%d\\n", next()); return 0; }
        """

    @Test("writes the image and the map")
    func writesImageAndMap() async throws {
        let directory = try TemporaryDirectory(prefix: "link")
        defer { directory.remove() }
        let object = try await ObjectBuilder.compile(Self.source, in: directory)
        let mapPath = directory.file("module.map"), imagePath = directory.file("module.img")

        let result = try await ModkitTool.run(["link", "--map", mapPath, object, "-o", imagePath])

        #expect(result.status == 0, "\(result)")
        #expect(result.standardOutput == "", "\(result)")
        #expect(result.standardError == "", "\(result)")
        let map = try LinkMap(parsing: String(contentsOfFile: mapPath, encoding: .utf8), file: mapPath)
        let image = try Data(contentsOf: URL(fileURLWithPath: imagePath))
        #expect(map.target == .x86_64)
        #expect(map.base == StaticLinker.defaultBase)
        #expect(map.size == image.count)
        #expect(map.sections.contains { $0.name == ".text" && $0.file == object })
        #expect(map.symbols["printf"] != nil)
    }

    @Test("written map links to the same image")
    func mapRoundTrip() async throws {
        let directory = try TemporaryDirectory(prefix: "link")
        defer { directory.remove() }
        let object = try await ObjectBuilder.compile(Self.source, in: directory)
        let mapPath = directory.file("module.map")
        _ = try await ModkitTool.run(["link", "--map", mapPath, object, "-o", directory.file("first.img")])
        let firstMap = try String(contentsOfFile: mapPath, encoding: .utf8)

        let result = try await ModkitTool.run(["link", "-m", mapPath, object, "-o", directory.file("second.img")])

        #expect(result.status == 0, "\(result)")
        #expect(try String(contentsOfFile: mapPath, encoding: .utf8) == firstMap)
        #expect(try Data(contentsOf: URL(fileURLWithPath: directory.file("first.img")))
            == Data(contentsOf: URL(fileURLWithPath: directory.file("second.img"))))
    }

    @Test("section lines place the sections")
    func sectionPlacement() async throws {
        let directory = try TemporaryDirectory(prefix: "link")
        defer { directory.remove() }
        let object = try await ObjectBuilder.compile(Self.source, in: directory)
        let mapPath = directory.file("module.map")
        _ = try await ModkitTool.run(["link", "--map", mapPath, object, "-o", directory.file("first.img")])
        var map = try LinkMap(parsing: String(contentsOfFile: mapPath, encoding: .utf8), file: mapPath)
        let shift: UInt64 = 0x20_0000
        for index in map.sections.indices { map.sections[index].address += shift }
        map.got!.address += shift
        map.stubs?.address += shift
        map.moduleStruct!.address += shift
        try map.text.write(toFile: mapPath, atomically: false, encoding: .utf8)

        let result = try await ModkitTool.run(["link", "--map", mapPath, object, "-o", directory.file("second.img")])

        #expect(result.status == 0, "\(result)")
        let moved = try LinkMap(parsing: String(contentsOfFile: mapPath, encoding: .utf8), file: mapPath)
        #expect(moved.base == StaticLinker.defaultBase + shift)
        #expect(moved.sections == map.sections)
        #expect(moved.got == map.got)
    }

    @Test("invalid map line is an error")
    func invalidMapLine() async throws {
        let directory = try TemporaryDirectory(prefix: "link")
        defer { directory.remove() }
        let object = try await ObjectBuilder.compile(Self.source, in: directory)
        let mapPath = try directory.write("target x86_64\nsymbol 0xzz printf\n", to: "module.map")

        let result = try await ModkitTool.run(["link", "--map", mapPath, object, "-o", directory.file("module.img")])

        #expect(result.status == 1, "\(result)")
        #expect(result.standardOutput == "", "\(result)")
        #expect(result.standardError == "modkit link: error: \(mapPath):2: invalid address '0xzz'; expected a hexadecimal number such as 0x10000000\n", "\(result)")
    }

    @Test("map missing a section is an error")
    func incompleteMap() async throws {
        let directory = try TemporaryDirectory(prefix: "link")
        defer { directory.remove() }
        let object = try await ObjectBuilder.compile(Self.source, in: directory)
        let mapPath = try directory.write("section 0x10000000 0x10 \(object) 999 .text\n", to: "module.map")

        let result = try await ModkitTool.run(["link", "--map", mapPath, object, "-o", directory.file("module.img")])

        #expect(result.status == 1, "\(result)")
        #expect(result.standardError.hasPrefix("modkit link: error: \(object):(.text): the link map gives no address for this section (index "), "\(result)")
    }

    @Test("target other than the object's is an error")
    func targetMismatch() async throws {
        let directory = try TemporaryDirectory(prefix: "link")
        defer { directory.remove() }
        let object = try await ObjectBuilder.compile(Self.source, in: directory)

        let result = try await ModkitTool.run(["link", "--target", "aarch64", "--map", directory.file("module.map"), object,
                                               "-o", directory.file("module.img")])

        #expect(result.status == 1, "\(result)")
        #expect(result.standardError == "modkit link: error: \(object): object is for x86_64, but the link target is aarch64\n", "\(result)")
    }

    @Test("missing -o is a usage error")
    func missingOutput() async throws {
        let result = try await ModkitTool.run(["link", "--map", "module.map", "module.o"])

        #expect(result.status == 2, "\(result)")
        #expect(result.standardOutput == "", "\(result)")
        #expect(result.standardError == """
            modkit link: missing -o IMAGE
            usage: modkit link [--target ARCH] --map MAP OBJECT... -o IMAGE
            Run 'modkit link --help' for more information.

            """, "\(result)")
    }

    @Test("invalid --target is a usage error")
    func invalidTarget() async throws {
        let result = try await ModkitTool.run(["link", "--target", "riscv64", "--map", "module.map", "module.o", "-o", "module.img"])

        #expect(result.status == 2, "\(result)")
        #expect(result.standardError.hasPrefix("modkit link: invalid value 'riscv64' for --target; expected x86_64 or aarch64\n"), "\(result)")
    }
}
