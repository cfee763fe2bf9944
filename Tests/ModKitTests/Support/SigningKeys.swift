import Foundation
import ModKit

/// A private key and its self-signed certificate, made with the openssl command line in a
/// test's directory. Nothing is kept after the test.
struct SigningKey: Sendable {
    let keyFile: String
    let certificateFile: String
    /// The certificate's common name, which modinfo prints as `signer`.
    let commonName: String
    /// The certificate's serial number as kmod prints `sig_key`: `2E:49:...`.
    let serialText: String

    enum Algorithm: String, Sendable {
        case rsa = "rsa:2048"
        case ecdsa = "ec"
    }

    /// Creates `NAME.key` and `NAME.pem` in `directory`.
    static func generate(_ name: String, commonName: String? = nil, algorithm: Algorithm = .rsa,
                         in directory: TemporaryDirectory) async throws -> SigningKey {
        let keyFile = directory.file("\(name).key")
        let certificateFile = directory.file("\(name).pem")
        let commonName = commonName ?? "ModKit test key \(name)"
        var arguments = ["req", "-new", "-x509", "-newkey", algorithm.rawValue, "-nodes", "-keyout", keyFile,
                         "-out", certificateFile, "-days", "2", "-subj", "/CN=\(commonName)"]
        if algorithm == .ecdsa { arguments += ["-pkeyopt", "ec_paramgen_curve:prime256v1"] }
        try await openssl(arguments)

        let serial = try await openssl(["x509", "-in", certificateFile, "-noout", "-serial"]).standardOutput
        var digits = serial.trimmingCharacters(in: .whitespacesAndNewlines).replacingOccurrences(of: "serial=", with: "")
        if digits.count % 2 == 1 { digits = "0" + digits }
        let pairs = stride(from: 0, to: digits.count, by: 2).map { offset in
            String(digits.dropFirst(offset).prefix(2))
        }
        return SigningKey(keyFile: keyFile, certificateFile: certificateFile, commonName: commonName,
                          serialText: pairs.joined(separator: ":"))
    }

    /// Returns the signed bytes of `file`.
    func sign(_ file: String, hash: String = "sha256") throws -> [UInt8] {
        try ModuleSigner.sign(Array(Data(contentsOf: URL(fileURLWithPath: file))), keyFile: keyFile,
                              certificateFile: certificateFile, hash: hash).signed
    }

    /// Writes the signed bytes of `file` to `output` and returns `output`.
    @discardableResult
    func sign(_ file: String, to output: String, hash: String = "sha256") throws -> String {
        try Data(sign(file, hash: hash)).write(to: URL(fileURLWithPath: output))
        return output
    }

    /// Creates a directory that contains only this key's certificate and returns its path.
    func trustDirectory(in directory: TemporaryDirectory, name: String = "trust") throws -> String {
        let path = directory.file(name)
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: certificateFile, toPath: path + "/" + URL(fileURLWithPath: certificateFile).lastPathComponent)
        return path
    }
}

/// Runs the openssl command line and fails the test when it fails.
@discardableResult
func openssl(_ arguments: [String]) async throws -> ProcessResult {
    let result = try await runProcess("/usr/bin/env", ["openssl"] + arguments)
    // env exits with 127 when it cannot find the command.
    if result.status == 127 {
        throw SubprocessError(description: "the openssl command was not found; the signature tests need it (Debian package openssl)")
    }
    guard result.status == 0 else { throw SubprocessError(description: "openssl failed\n\(result)") }
    return result
}

/// Returns the bytes of `file` with `change` applied, written to `output`.
@discardableResult
func writeModified(_ file: String, to output: String, _ change: (inout [UInt8]) -> Void) throws -> String {
    var bytes = Array(try Data(contentsOf: URL(fileURLWithPath: file)))
    change(&bytes)
    try Data(bytes).write(to: URL(fileURLWithPath: output))
    return output
}

/// The size of the `struct module_signature` trailer and the marker after it.
let signatureTrailerSize = 12 + ModuleSignature.marker.count
