// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "ModKit",
    products: [
        .library(name: "ModKit", targets: ["ModKit"]),
        .executable(name: "modkit", targets: ["modkit"]),
    ],
    targets: [
        // What must be C: the module ABI header, the inline get/put fast path,
        // the variadic host API (printk) and the syscall shims.
        .target(name: "CModKit"),
        .target(
            name: "ModKit",
            dependencies: ["CModKit"]
        ),
        .executableTarget(
            name: "modkit",
            dependencies: ["ModKit"],
            linkerSettings: [.linkedLibrary("dl"), .linkedLibrary("m"), .unsafeFlags(["-Xlinker", "--export-dynamic"])]
        ),
        .testTarget(
            name: "ModKitTests",
            dependencies: ["ModKit", "CModKit"]
        ),
    ]
)
