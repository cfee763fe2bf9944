import Foundation
import Testing
@testable import ModKit

private let helloSource = """
    #include <modkit/module.h>
    MODULE_LICENSE("GPL");
    int hello_value(void) { return 42; }
    """

private let taintMessage = "module verification failed: signature and/or required key missing; the host is tainted (E)"

/// Creates a host that checks signatures against the certificates in `trust` and logs to `log`.
private func signatureHost(trust: String?, enforced: Bool = false, log: LogCollector) throws -> ModuleHost {
    var options = log.hostOptions()
    options.trustedCertificates = try trust.map { try TrustedCertificates(directory: $0) }
    options.signatureEnforced = enforced
    return ModuleHost(options: options)
}

/// Runs `body` with the module area held, in a temporary directory that contains a signing
/// key named `signer` and `hello.o` compiled from `helloSource`.
private func withSigningFixture(_ body: (TemporaryDirectory, SigningKey, String) async throws -> Void) async throws {
    try await withModuleArea {
        let directory = try TemporaryDirectory(prefix: "signature")
        defer { directory.remove() }
        let key = try await SigningKey.generate("signer", in: directory)
        let object = try await ObjectBuilder.compile(helloSource, name: "hello", in: directory)
        try await body(directory, key, object)
    }
}

@Suite("Module signatures")
struct ModuleSignatureTests {
    @Test("trusted signature loads untainted")
    func trustedSignature() async throws {
        try await withSigningFixture { directory, key, object in
            let signed = try key.sign(object, to: directory.file("signed.o"))
            let log = LogCollector()
            let host = try signatureHost(trust: try key.trustDirectory(in: directory), enforced: true, log: log)

            let module = try host.load(files: [signed])
            #expect(module.taint == [])
            #expect(host.taint == [])
            #expect(log.messages(from: "signed") == [])
            #expect(module.address(of: "hello_value") != nil)
            try host.remove("signed")
        }
    }

    @Test("unsigned module taints without enforcement")
    func unsignedTaints() async throws {
        try await withSigningFixture { directory, key, object in
            let log = LogCollector()
            let host = try signatureHost(trust: try key.trustDirectory(in: directory), log: log)

            let module = try host.load(files: [object])
            #expect(module.taint == .unsignedModule)
            #expect(host.taint == .unsignedModule)
            #expect(log.messages(from: "hello") == [taintMessage])
            try host.remove("hello")
        }
    }

    @Test("unsigned module rejected under enforcement")
    func unsignedRejected() async throws {
        try await withSigningFixture { directory, key, object in
            let host = try signatureHost(trust: try key.trustDirectory(in: directory), enforced: true, log: LogCollector())

            let error = #expect(throws: LoadError.self) { _ = try host.load(files: [object]) }
            #expect(error?.kind == .signatureRejected)
            #expect(error?.description == "\(object): Loading of unsigned module is rejected; sign it with 'modkit sign' and a key whose certificate is in the host's trust directory")
            #expect(host.modules.isEmpty)
            #expect(host.taint == [])
        }
    }

    @Test("untrusted certificate taints or is rejected")
    func untrustedCertificate() async throws {
        try await withModuleArea {
            let directory = try TemporaryDirectory(prefix: "signature")
            defer { directory.remove() }
            let trusted = try await SigningKey.generate("trusted", in: directory)
            let stranger = try await SigningKey.generate("stranger", commonName: "Stranger", in: directory)
            let object = try await ObjectBuilder.compile(helloSource, name: "hello", in: directory)
            let signed = try stranger.sign(object, to: directory.file("stranger.o"))
            let trust = try trusted.trustDirectory(in: directory)

            let enforcing = try signatureHost(trust: trust, enforced: true, log: LogCollector())
            let error = #expect(throws: LoadError.self) { _ = try enforcing.load(files: [signed]) }
            #expect(error?.kind == .signatureRejected)
            #expect(error?.description == "\(signed): Loading of module with unavailable key is rejected: no trusted certificate matches the signer, issuer '/CN=Stranger', serial \(stranger.serialText); add the signer's certificate to the host's trust directory")
            #expect(enforcing.modules.isEmpty)

            let log = LogCollector()
            let permissive = try signatureHost(trust: trust, log: log)
            let module = try permissive.load(files: [signed])
            #expect(module.taint == .unsignedModule)
            #expect(log.messages(from: "stranger") == [taintMessage])
            try permissive.remove("stranger")
        }
    }

    @Test("flipped byte in a signed image is always rejected")
    func tamperedImage() async throws {
        try await withSigningFixture { directory, key, object in
            let signed = try key.sign(object, to: directory.file("signed.o"))
            let tampered = try writeModified(signed, to: directory.file("tampered.o")) { $0[0x50] ^= 0x01 }
            let trust = try key.trustDirectory(in: directory)

            for enforced in [false, true] {
                let host = try signatureHost(trust: trust, enforced: enforced, log: LogCollector())
                let error = #expect(throws: LoadError.self) { _ = try host.load(files: [tampered]) }
                #expect(error?.kind == .badSignature)
                #expect(error?.description == "\(tampered): invalid module signature: signature does not match the contents; the file changed after it was signed, or the signature is corrupt")
                #expect(host.modules.isEmpty)
                #expect(host.taint == [])
            }
        }
    }

    /// Each case changes the signed file and expects this message after `invalid module signature: `.
    static let corruptTrailers: [(name: String, message: String, change: @Sendable (inout [UInt8]) -> Void)] = [
        ("nonzero algo", "PKCS#7 signature trailer has unexpected nonzero fields (algo 1, hash 0, signer_len 0, key_id_len 0, pad 0 0 0)",
         { $0[$0.count - signatureTrailerSize] = 1 }),
        ("nonzero pad", "PKCS#7 signature trailer has unexpected nonzero fields (algo 0, hash 0, signer_len 0, key_id_len 0, pad 0 7 0)",
         { $0[$0.count - signatureTrailerSize + 6] = 7 }),
        ("signature flipped", "signature does not match the contents; the file changed after it was signed, or the signature is corrupt",
         { $0[$0.count - signatureTrailerSize - 5] ^= 0x01 }),
        ("content type changed", "PKCS#7 message does not sign plain data; the file changed after it was signed, or the signature is corrupt",
         { bytes in
             // The signature starts with SignedData, version, digest algorithms and then the
             // OID of id-data (1.2.840.113549.1.7.1), whose last byte is at offset 53 while
             // the message is 256 bytes or longer. 2 turns it into id-signedData.
             let start = bytes.count - signatureTrailerSize - messageSize(bytes)
             bytes[start + 53] = 2
         }),
    ]

    @Test("corrupt trailer is always rejected", arguments: 0 ..< 4)
    func corruptTrailer(index: Int) async throws {
        let (name, message, change) = Self.corruptTrailers[index]
        try await withSigningFixture { directory, key, object in
            let signed = try key.sign(object, to: directory.file("signed.o"))
            let corrupt = try writeModified(signed, to: directory.file("corrupt.o"), change)
            let host = try signatureHost(trust: try key.trustDirectory(in: directory), log: LogCollector())

            let error = #expect(throws: LoadError.self, "\(name)") { _ = try host.load(files: [corrupt]) }
            #expect(error?.kind == .badSignature)
            #expect(error?.description == "\(corrupt): invalid module signature: \(message)", "\(name)")
            #expect(host.modules.isEmpty)
        }
    }

    @Test("lengths that lie are rejected even without checks")
    func lyingLengths() async throws {
        try await withSigningFixture { directory, key, object in
            let signed = try key.sign(object, to: directory.file("signed.o"))
            let size = Array(try Data(contentsOf: URL(fileURLWithPath: signed))).count
            let tooLong = try writeModified(signed, to: directory.file("long.o")) { $0[$0.count - signatureTrailerSize + 8] = 0x7f }
            let truncated = try writeModified(signed, to: directory.file("truncated.o")) { bytes in
                bytes = Array(bytes.prefix(4)) + ModuleSignature.marker
            }
            let checking = try signatureHost(trust: try key.trustDirectory(in: directory), log: LogCollector())
            let unchecked = ModuleHost(options: LogCollector().hostOptions())

            for host in [checking, unchecked] {
                let long = #expect(throws: LoadError.self) { _ = try host.load(files: [tooLong]) }
                let available = size - signatureTrailerSize
                let claimedSize = 0x7f00_0000 | (messageSize(Array(try Data(contentsOf: URL(fileURLWithPath: signed)))) & 0xff_ffff)
                #expect(long?.description == "\(tooLong): invalid module signature: signature trailer gives sig_len \(claimedSize), but only \(available) bytes precede the trailer")
                let short = #expect(throws: LoadError.self) { _ = try host.load(files: [truncated]) }
                #expect(short?.description == "\(truncated): invalid module signature: signature trailer is truncated: 4 bytes precede the marker, and the trailer alone takes 12")
                #expect(host.modules.isEmpty)
            }
        }
    }

    @Test("host without checks cuts off the signature")
    func uncheckedHost() async throws {
        try await withSigningFixture { directory, key, object in
            let signed = try key.sign(object, to: directory.file("signed.o"))
            let log = LogCollector()
            let host = ModuleHost(options: log.hostOptions())
            #expect(!host.checksSignatures)

            _ = try host.load(files: [signed])
            _ = try host.load(files: [try writeModified(object, to: directory.file("plain.o")) { _ in }])
            #expect(host.taint == [])
            #expect(log.messages(from: "signed") == [])
            #expect(log.messages(from: "plain") == [])
            host.removeAll()
        }
    }

    @Test("one unsigned object taints the whole module")
    func partlySigned() async throws {
        try await withModuleArea {
            let directory = try TemporaryDirectory(prefix: "signature")
            defer { directory.remove() }
            let key = try await SigningKey.generate("signer", in: directory)
            let first = try await ObjectBuilder.compile(helloSource + "\nMODULE_NAME(\"pair\");", name: "first", in: directory)
            let second = try await ObjectBuilder.compile("int second_value(void) { return 7; }", name: "second", in: directory)
            let signedFirst = try key.sign(first, to: directory.file("first-signed.o"))
            let signedSecond = try key.sign(second, to: directory.file("second-signed.o"))
            let host = try signatureHost(trust: try key.trustDirectory(in: directory), log: LogCollector())

            let whole = try host.load(files: [signedFirst, signedSecond])
            #expect(whole.taint == [])
            try host.remove("pair")
            let partial = try host.load(files: [signedFirst, second])
            #expect(partial.taint == .unsignedModule)
            try host.remove("pair")
        }
    }

    @Test("signature made by openssl cms loads")
    func opensslSignature() async throws {
        try await withModuleArea {
            let directory = try TemporaryDirectory(prefix: "signature")
            defer { directory.remove() }
            let key = try await SigningKey.generate("signer", algorithm: .ecdsa, in: directory)
            let object = try await ObjectBuilder.compile(helloSource, name: "hello", in: directory)
            let message = directory.file("hello.p7s")
            // The options scripts/sign-file passes to CMS_sign and CMS_add1_signer.
            try await openssl(["cms", "-sign", "-in", object, "-signer", key.certificateFile, "-inkey", key.keyFile,
                               "-outform", "DER", "-binary", "-noattr", "-nocerts", "-nosmimecap", "-md", "sha384", "-out", message])
            let messageBytes = Array(try Data(contentsOf: URL(fileURLWithPath: message)))
            let signed = try writeModified(object, to: directory.file("openssl.o")) { bytes in
                let size = UInt32(messageBytes.count)
                bytes += messageBytes + [0, 0, 2, 0, 0, 0, 0, 0, UInt8(size >> 24), UInt8(size >> 16 & 0xff), UInt8(size >> 8 & 0xff), UInt8(size & 0xff)]
                bytes += ModuleSignature.marker
            }
            let host = try signatureHost(trust: try key.trustDirectory(in: directory), enforced: true, log: LogCollector())

            let module = try host.load(files: [signed])
            #expect(module.taint == [])
            let image = try ObjectImage(contentsOf: signed)
            let signer = try #require(try image.signature()).signer()
            #expect(signer == SignerDescription(signer: key.commonName, keyIdentifier: signer.keyIdentifier, hashAlgorithm: "sha384"))
            #expect(signer.keyIdentifierText == key.serialText)
            try host.remove("openssl")
        }
    }

    @Test("openssl cms verifies a modkit signature")
    func opensslVerifies() async throws {
        let directory = try TemporaryDirectory(prefix: "signature")
        defer { directory.remove() }
        let key = try await SigningKey.generate("signer", in: directory)
        let object = try await ObjectBuilder.compile(helloSource, name: "hello", in: directory)
        let signed = try key.sign(object, hash: "sha512")
        let signature = try #require(try signed.withUnsafeBytes { try ModuleSignature.find(in: $0) })
        #expect(signature.contentSize == Array(try Data(contentsOf: URL(fileURLWithPath: object))).count)
        try Data(signature.message).write(to: URL(fileURLWithPath: directory.file("message.p7s")))

        let result = try await openssl(["cms", "-verify", "-inform", "DER", "-in", directory.file("message.p7s"), "-content", object,
                                        "-binary", "-noverify", "-nointern", "-certfile", key.certificateFile, "-out", "/dev/null"])
        #expect(result.standardError.contains("Verification successful"), "\(result)")
        #expect(try signature.signer().hashAlgorithm == "sha512")
    }

    @Test("signing a signed file replaces its signature")
    func resign() async throws {
        let directory = try TemporaryDirectory(prefix: "signature")
        defer { directory.remove() }
        let first = try await SigningKey.generate("first", in: directory)
        let second = try await SigningKey.generate("second", commonName: "Second", in: directory)
        let object = try await ObjectBuilder.compile(helloSource, name: "hello", in: directory)
        let original = Array(try Data(contentsOf: URL(fileURLWithPath: object)))
        let once = try first.sign(object, to: directory.file("once.o"))

        let again = try ModuleSigner.sign(Array(try Data(contentsOf: URL(fileURLWithPath: once))), keyFile: second.keyFile,
                                          certificateFile: second.certificateFile)
        #expect(again.replacedSignature)
        let signature = try #require(try again.signed.withUnsafeBytes { try ModuleSignature.find(in: $0) })
        #expect(Array(again.signed.prefix(signature.contentSize)) == original)
        #expect(try signature.signer().signer == "Second")
    }

    @Test("signing errors name the file")
    func signingErrors() async throws {
        let directory = try TemporaryDirectory(prefix: "signature")
        defer { directory.remove() }
        let first = try await SigningKey.generate("first", in: directory)
        let second = try await SigningKey.generate("second", in: directory)
        let bytes = Array("not signed yet".utf8)

        let mismatch = #expect(throws: SignatureError.self) {
            _ = try ModuleSigner.sign(bytes, keyFile: second.keyFile, certificateFile: first.certificateFile)
        }
        #expect(mismatch?.message.hasPrefix("private key \(second.keyFile) does not belong to certificate \(first.certificateFile)") == true,
                "\(String(describing: mismatch))")
        let hash = #expect(throws: SignatureError.self) {
            _ = try ModuleSigner.sign(bytes, keyFile: first.keyFile, certificateFile: first.certificateFile, hash: "md5")
        }
        #expect(hash?.message == "unsupported hash algorithm 'md5'; use one of sha224, sha256, sha384, sha512")
        let missing = directory.file("missing.key")
        let noKey = #expect(throws: SignatureError.self) {
            _ = try ModuleSigner.sign(bytes, keyFile: missing, certificateFile: first.certificateFile)
        }
        #expect(noKey?.message.hasPrefix("cannot open private key \(missing)") == true, "\(String(describing: noKey))")
        let notKey = #expect(throws: SignatureError.self) {
            _ = try ModuleSigner.sign(bytes, keyFile: first.certificateFile, certificateFile: first.certificateFile)
        }
        #expect(notKey?.message.hasPrefix("\(first.certificateFile) is not an unencrypted PEM or DER private key") == true,
                "\(String(describing: notKey))")
    }

    @Test("trust directory errors name the problem")
    func trustDirectoryErrors() async throws {
        let directory = try TemporaryDirectory(prefix: "signature")
        defer { directory.remove() }
        let key = try await SigningKey.generate("signer", in: directory)

        let missing = directory.file("none")
        let noDirectory = #expect(throws: SignatureError.self) { _ = try TrustedCertificates(directory: missing) }
        #expect(noDirectory?.message == "cannot read trust directory \(missing): No such file or directory")

        let empty = directory.file("empty")
        try FileManager.default.createDirectory(atPath: empty, withIntermediateDirectories: false)
        let noCertificates = #expect(throws: SignatureError.self) { _ = try TrustedCertificates(directory: empty) }
        #expect(noCertificates?.message == "trust directory \(empty) contains no certificate files; add the PEM or DER certificates of the keys that sign modules")

        let mixed = try key.trustDirectory(in: directory, name: "mixed")
        let notes = try directory.write("not a certificate\n", to: "mixed/notes.txt")
        let notCertificate = #expect(throws: SignatureError.self) { _ = try TrustedCertificates(directory: mixed) }
        #expect(notCertificate?.message.hasPrefix("\(notes) is not a PEM or DER X.509 certificate") == true,
                "\(String(describing: notCertificate))")

        let der = directory.file("der")
        try FileManager.default.createDirectory(atPath: der, withIntermediateDirectories: false)
        try await openssl(["x509", "-in", key.certificateFile, "-outform", "DER", "-out", der + "/signer.der"])
        #expect(try TrustedCertificates(directory: der).count == 1)
    }
}

/// Returns the `sig_len` field of a signed file's trailer.
private func messageSize(_ bytes: [UInt8]) -> Int {
    let field = bytes[(bytes.count - signatureTrailerSize + 8) ..< (bytes.count - signatureTrailerSize + 12)]
    return field.reduce(0) { $0 << 8 | Int($1) }
}
