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
        // Module signatures, made and checked with OpenSSL's libcrypto (Debian: libssl-dev).
        .target(name: "CModKitCrypto", linkerSettings: [.linkedLibrary("crypto")]),
        .target(
            name: "ModKit",
            dependencies: ["CModKit", "CModKitCrypto"]
        ),
        .executableTarget(
            name: "modkit",
            dependencies: ["ModKit", "CModKit"],
            // Modules written in C++ bind to the C++ runtime and unwinder of the host process.
            linkerSettings: [
                .linkedLibrary("dl"), .linkedLibrary("m"), .linkedLibrary("stdc++"), .linkedLibrary("gcc_s"),
                .unsafeFlags(["-Xlinker", "--export-dynamic", "-Xlinker", "--no-as-needed"]),
            ]
        ),
        // The libFuzzer target for the object loader; scripts/fuzz.sh builds it with
        // -sanitize=fuzzer,address. A plain build makes a replay tool of it (see docs/fuzzing.md).
        .executableTarget(
            name: "ModKitFuzz",
            dependencies: ["ModKit"]
        ),
        .testTarget(
            name: "ModKitTests",
            dependencies: ["ModKit", "CModKit"],
            // Binary inputs that FuzzRegressionTests reads by path.
            exclude: ["Fixtures"]
        ),
    ]
)
