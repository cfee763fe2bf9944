import Glibc
import ModKit

/// `modkit link`: runs the linker on objects at fixed addresses and writes the relocated image,
/// without loading or running anything.
struct LinkCommand: Command {
    static let name = "link"
    static let summary = "link objects at fixed addresses into an image, without loading them"
    static let usage = "modkit link [--target ARCH] --map MAP OBJECT... -o IMAGE"
    static let discussion = """
        Links the objects as one module, exactly as a load would (validate, lay out, resolve,
        relocate), but into a plain buffer at fixed addresses, for any supported architecture.
        Nothing is mapped executable and no module code runs.

        The addresses come from MAP where it gives them: the placement of every loaded section,
        the GOT, the branch stubs and the struct module, and the address of each undefined
        symbol. modkit chooses the rest and writes the complete map back to MAP, including the
        GOT entries and stubs it made. A MAP that does not exist yet counts as empty. The map
        format is described in docs/link-map.md.

        IMAGE receives the bytes from the map's base address to base + size: every loaded
        section relocated, the GOT, the stubs, and zeros between them.

        Exits with 1 if the objects cannot be linked or a file cannot be read or written, and
        with 2 for an invalid command line.
        """
    static let options = [
        OptionDefinition(long: "target", short: "t", valueName: "ARCH",
                         help: "link for x86_64 or aarch64 (default: the architecture of the first OBJECT)"),
        OptionDefinition(long: "map", short: "m", valueName: "MAP",
                         help: "read addresses from MAP if it exists, then write the complete map to it"),
        OptionDefinition(long: "output", short: "o", valueName: "IMAGE", help: "write the relocated image to IMAGE"),
    ]

    let objects: [String]
    let target: Machine?
    let mapPath: String
    let outputPath: String

    init(arguments: ParsedArguments) throws(UsageError) {
        guard arguments.passthrough.isEmpty else {
            throw UsageError("unexpected argument '\(arguments.passthrough[0])' after '--'")
        }
        guard !arguments.positionals.isEmpty else { throw UsageError("missing object file") }
        guard let mapPath = arguments.value("map") else { throw UsageError("missing --map MAP") }
        guard let outputPath = arguments.value("output") else { throw UsageError("missing -o IMAGE") }
        if let name = arguments.value("target") {
            guard let machine = Machine(rawValue: name) else {
                throw UsageError("invalid value '\(name)' for --target; expected x86_64 or aarch64")
            }
            target = machine
        } else {
            target = nil
        }
        objects = arguments.positionals
        self.mapPath = mapPath
        self.outputPath = outputPath
    }

    func run() -> Int32 {
        do throws(LoadError) {
            var images: [ObjectImage] = []
            for path in objects { images.append(try ObjectImage(contentsOf: path)) }
            let map = try readMap()
            var machine = target
            if machine == nil { machine = try ObjectFile(images[0]).machine }
            let link = try StaticLinker.link(images, machine: machine!, map: map)
            try writeFile(outputPath, bytes: link.image)
            try writeFile(mapPath, bytes: Array(link.map.text.utf8))
            return ExitStatus.success
        } catch {
            Self.reportError(error.description)
            return ExitStatus.failure
        }
    }

    /// Reads the map at `mapPath`, or returns an empty one when the file does not exist.
    private func readMap() throws(LoadError) -> LinkMap {
        guard access(mapPath, F_OK) == 0 else { return LinkMap() }
        let image = try ObjectImage(contentsOf: mapPath)
        let text = String(decoding: image.bytes, as: UTF8.self)
        return try LinkMap(parsing: text, file: mapPath)
    }

    private func writeFile(_ path: String, bytes: [UInt8]) throws(LoadError) {
        let descriptor = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else {
            throw LoadError(.unreadableFile, file: path, "cannot create: \(String(cString: strerror(errno)))")
        }
        defer { close(descriptor) }
        var offset = 0
        while offset < bytes.count {
            let written = bytes[offset...].withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) }
            if written < 0 && errno == EINTR { continue }
            guard written > 0 else {
                throw LoadError(.unreadableFile, file: path, "cannot write: \(String(cString: strerror(errno)))")
            }
            offset += written
        }
    }
}
