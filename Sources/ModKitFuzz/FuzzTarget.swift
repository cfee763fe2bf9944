import ModKit

/// The libFuzzer entry point: links the input as one object at fixed addresses. A `LoadError` is
/// the expected outcome for malformed input; a trap or a sanitizer report is a bug.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    _ = try? StaticLinker.link(objectBytes: UnsafeRawBufferPointer(start: data, count: size), name: "input.o",
                               maximumImageSize: StaticLinker.fuzzingImageSize)
    return 0
}

#if !MODKIT_LIBFUZZER
import Glibc

/// Without libFuzzer (a plain `swift build`), the target replays the files it is given and prints
/// what each one gives, so a crash input can be rerun under a debugger: `ModKitFuzz FILE...`.
@main
enum Replay {
    static func main() {
        let paths = CommandLine.arguments.dropFirst()
        guard !paths.isEmpty else {
            print("usage: ModKitFuzz FILE...  (build with scripts/fuzz.sh to fuzz)")
            exit(2)
        }
        for path in paths {
            do throws(LoadError) {
                let image = try ObjectImage(contentsOf: path)
                let link = try StaticLinker.link(objectBytes: image.bytes, name: path,
                                                 maximumImageSize: StaticLinker.fuzzingImageSize)
                print("\(path): linked, \(link.image.count) bytes at 0x\(String(link.map.base ?? 0, radix: 16))")
            } catch {
                print("\(path): LoadError.\(error.kind): \(error.description)")
            }
        }
    }
}
#endif
