import Foundation
import Testing
import ModKit

private let helloSource = """
    #include <stdio.h>
    #include <modkit/module.h>
    MODULE_LICENSE("GPL");
    MODULE_DESCRIPTION("says hello");
    int main(void) { puts("hello"); return 0; }
    """

private let taintWarning = "hello: module verification failed: signature and/or required key missing; the host is tainted (E)\n"

@Suite("modkit sign and signature options")
struct SignCommandTests {
    @Test("sign, then modinfo shows the signer")
    func signAndModinfo() async throws {
        let directory = try TemporaryDirectory(prefix: "sign")
        defer { directory.remove() }
        let key = try await SigningKey.generate("signer", in: directory)
        let object = try await ObjectBuilder.compile(helloSource, name: "hello", in: directory)

        let sign = try await ModkitTool.run(["sign", "--key", key.keyFile, "--cert", key.certificateFile, object])
        #expect(sign.status == 0, "\(sign)")
        #expect(sign.standardOutput == "", "\(sign)")
        #expect(sign.standardError == "", "\(sign)")
        let modinfo = try await ModkitTool.run(["modinfo", object])
        #expect(modinfo.status == 0, "\(modinfo)")
        #expect(modinfo.standardOutput == """
            filename:       \(object)
            name:           hello
            license:        GPL
            description:    says hello
            depends:        
            vermagic:       modkit-1 x86_64
            sig_id:         PKCS#7
            signer:         \(key.commonName)
            sig_key:        \(key.serialText)
            sig_hashalgo:   sha256

            """, "\(modinfo)")
        let field = try await ModkitTool.run(["modinfo", "-F", "signer", object])
        #expect(field.standardOutput == key.commonName + "\n", "\(field)")

        let again = try await ModkitTool.run(["sign", "-k", key.keyFile, "-c", key.certificateFile, "--hash", "sha384", object,
                                              "-o", directory.file("again.o")])
        #expect(again.status == 0, "\(again)")
        #expect(again.standardError == "modkit sign: \(object): replaced the existing signature\n", "\(again)")
        let hash = try await ModkitTool.run(["modinfo", "-F", "sig_hashalgo", directory.file("again.o")])
        #expect(hash.standardOutput == "sha384\n", "\(hash)")
    }

    @Test("sign rejects bad input")
    func signErrors() async throws {
        let directory = try TemporaryDirectory(prefix: "sign")
        defer { directory.remove() }
        let key = try await SigningKey.generate("signer", in: directory)
        let text = try directory.write("not an object\n", to: "notes.txt")

        let notObject = try await ModkitTool.run(["sign", "--key", key.keyFile, "--cert", key.certificateFile, text])
        #expect(notObject.status == 1, "\(notObject)")
        #expect(notObject.standardError.hasPrefix("modkit sign: error: \(text): "), "\(notObject)")
        #expect(notObject.standardError.hasSuffix("; modkit sign signs only ELF relocatable objects\n"), "\(notObject)")
        #expect(try String(contentsOfFile: text, encoding: .utf8) == "not an object\n")

        let noKey = try await ModkitTool.run(["sign", "--cert", key.certificateFile, text])
        #expect(noKey.status == 2, "\(noKey)")
        #expect(noKey.standardError.hasPrefix("modkit sign: missing --key KEY\n"), "\(noKey)")
        let badHash = try await ModkitTool.run(["sign", "--key", key.keyFile, "--cert", key.certificateFile, "--hash", "sha1", text])
        #expect(badHash.status == 2, "\(badHash)")
        #expect(badHash.standardError.hasPrefix("modkit sign: invalid value 'sha1' for --hash; expected one of sha224, sha256, sha384, sha512\n"),
                "\(badHash)")
    }

    @Test("exec stays quiet without a trust directory")
    func execWithoutTrust() async throws {
        let directory = try TemporaryDirectory(prefix: "sign")
        defer { directory.remove() }
        let object = try await ObjectBuilder.compile(helloSource, name: "hello", in: directory)

        let result = try await ModkitTool.run(["exec", object])
        #expect(result.status == 0, "\(result)")
        #expect(result.standardOutput == "hello\n", "\(result)")
        #expect(result.standardError == "", "\(result)")
    }

    @Test("exec with a trust directory")
    func execWithTrust() async throws {
        let directory = try TemporaryDirectory(prefix: "sign")
        defer { directory.remove() }
        let key = try await SigningKey.generate("signer", in: directory)
        let trust = try key.trustDirectory(in: directory)
        let object = try await ObjectBuilder.compile(helloSource, name: "hello", in: directory)
        let signed = try key.sign(object, to: directory.file("signed.o"))

        let unsigned = try await ModkitTool.run(["exec", "--trust-dir", trust, object])
        #expect(unsigned.status == 0, "\(unsigned)")
        #expect(unsigned.standardOutput == "hello\n", "\(unsigned)")
        #expect(unsigned.standardError == taintWarning, "\(unsigned)")

        let rejected = try await ModkitTool.run(["exec", "--trust-dir", trust, "--sig-enforce", object])
        #expect(rejected.status == 1, "\(rejected)")
        #expect(rejected.standardOutput == "", "\(rejected)")
        #expect(rejected.standardError == "modkit exec: error: \(object): Loading of unsigned module is rejected; sign it with 'modkit sign' and a key whose certificate is in the host's trust directory\n", "\(rejected)")

        let trusted = try await ModkitTool.run(["exec", "--trust-dir", trust, "--sig-enforce", signed])
        #expect(trusted.status == 0, "\(trusted)")
        #expect(trusted.standardOutput == "hello\n", "\(trusted)")
        #expect(trusted.standardError == "", "\(trusted)")

        let noTrust = try await ModkitTool.run(["exec", "--sig-enforce", object])
        #expect(noTrust.status == 2, "\(noTrust)")
        #expect(noTrust.standardError.hasPrefix("modkit exec: --sig-enforce needs --trust-dir DIR, because without trusted certificates every module would be rejected\n"), "\(noTrust)")

        let missing = directory.file("none")
        let badTrust = try await ModkitTool.run(["exec", "--trust-dir", missing, object])
        #expect(badTrust.status == 1, "\(badTrust)")
        #expect(badTrust.standardError == "modkit exec: error: cannot read trust directory \(missing): No such file or directory\n", "\(badTrust)")
    }

    @Test("daemon shows E for unsigned modules")
    func daemonTaint() async throws {
        let directory = try TemporaryDirectory(prefix: "sign")
        defer { directory.remove() }
        let key = try await SigningKey.generate("signer", in: directory)
        let trust = try key.trustDirectory(in: directory)
        _ = try await ObjectBuilder.compile(helloSource, name: "hello", in: directory)
        let signedSource = helloSource.replacingOccurrences(of: "says hello", with: "signed")
        let signed = try await ObjectBuilder.compile(signedSource, name: "signed", in: directory)
        try key.sign(signed, to: signed)
        let daemon = try await RunningDaemon(in: directory, arguments: ["--trust-dir", trust])

        #expect(try await daemon.run(["insmod", "signed.o"]).status == 0)
        #expect(try await daemon.run(["status"]).standardOutput.contains("\ntaint:              none\n"))
        let insert = try await daemon.run(["insmod", "hello.o"])
        #expect(insert.status == 0, "\(insert)")
        let lsmod = try await daemon.run(["lsmod"])
        #expect(lsmodLine(lsmod.standardOutput, module: "hello")?.hasSuffix("  0 (E)") == true, "\(lsmod)")
        #expect(lsmodLine(lsmod.standardOutput, module: "signed")?.hasSuffix("  0") == true, "\(lsmod)")
        let status = try await daemon.run(["status"])
        #expect(status.standardOutput.contains("\ntaint:              E\n"), "\(status)")
        #expect(logLines(daemon.standardError, containing: "tainted") == ["warn: " + taintWarning.dropLast()])
        #expect(logLines(daemon.standardError, containing: "checking module signatures") == [
            "notice: modkit: checking module signatures against 1 trusted certificate (not enforced)",
        ])
        try await daemon.stop()
    }

    @Test("enforcing daemon rejects unsigned and tampered modules")
    func daemonEnforcement() async throws {
        let directory = try TemporaryDirectory(prefix: "sign")
        defer { directory.remove() }
        let key = try await SigningKey.generate("signer", in: directory)
        let trust = try key.trustDirectory(in: directory)
        let object = try await ObjectBuilder.compile(helloSource, name: "hello", in: directory)
        try key.sign(object, to: directory.file("signed.o"))
        try writeModified(directory.file("signed.o"), to: directory.file("tampered.o")) { $0[0x48] ^= 0x10 }
        let daemon = try await RunningDaemon(in: directory, arguments: ["--trust-dir", trust, "--sig-enforce"])

        let unsigned = try await daemon.run(["insmod", "hello.o"])
        #expect(unsigned.status == 1, "\(unsigned)")
        #expect(unsigned.standardError == """
            modkit insmod: ERROR: could not insert module hello.o: Key was rejected by service
            hello.o: Loading of unsigned module is rejected; sign it with 'modkit sign' and a key whose certificate is in the host's trust directory

            """, "\(unsigned)")
        let tampered = try await daemon.run(["insmod", "tampered.o"])
        #expect(tampered.status == 1, "\(tampered)")
        #expect(tampered.standardError == """
            modkit insmod: ERROR: could not insert module tampered.o: Bad message
            tampered.o: invalid module signature: signature does not match the contents; the file changed after it was signed, or the signature is corrupt

            """, "\(tampered)")
        let signed = try await daemon.run(["insmod", "signed.o"])
        #expect(signed.status == 0, "\(signed)")
        let lsmod = try await daemon.run(["lsmod"])
        #expect(lsmod.standardOutput.split(separator: "\n").dropFirst().map { String($0.prefix(7)) } == ["signed "], "\(lsmod)")
        #expect(try await daemon.run(["status"]).standardOutput.contains("\ntaint:              none\n"))
        try await daemon.stop()
    }
}
