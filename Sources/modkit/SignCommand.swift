import Glibc
import ModKit

/// `modkit sign`: appends a signature to a module file, as Linux's `scripts/sign-file` does.
struct SignCommand: Command {
    static let name = "sign"
    static let summary = "append a PKCS#7 signature to a module file"
    static let usage = "modkit sign --key KEY --cert CERT [--hash ALGORITHM] FILE [-o OUT]"
    static let discussion = """
        Signs FILE in the format of Linux's scripts/sign-file: it appends a detached PKCS#7
        (CMS) signature of the file's bytes in DER, made with the private key KEY and the
        certificate CERT, then the 12-byte module_signature trailer and the marker
        '~Module signature appended~'. KEY is an unencrypted PEM or DER private key, and CERT
        a PEM or DER X.509 certificate. The signature names the certificate by issuer and
        serial number without including it; a host checks it against the certificates in its
        trust directory (modkit host --trust-dir, modkit exec --trust-dir).

        FILE must be an ELF relocatable object. If it is already signed, its signature is
        replaced. The signed file is written to OUT, else over FILE.
        """
    static let options = [
        OptionDefinition(long: "key", short: "k", valueName: "KEY", help: "the private key to sign with (PEM or DER, unencrypted)"),
        OptionDefinition(long: "cert", short: "c", valueName: "CERT", help: "the certificate of the key (PEM or DER)"),
        OptionDefinition(long: "hash", valueName: "ALGORITHM",
                         help: "the digest: \(ModuleSigner.hashAlgorithms.joined(separator: ", ")) (default sha256)"),
        OptionDefinition(long: "output", short: "o", valueName: "OUT", help: "write the signed file to OUT instead of over FILE"),
    ]

    let file: String
    let keyFile: String
    let certificateFile: String
    let hash: String
    let output: String?

    init(arguments: ParsedArguments) throws(UsageError) {
        let operands = arguments.positionals + arguments.passthrough
        guard let file = operands.first else { throw UsageError("missing module file") }
        guard operands.count == 1 else { throw UsageError("unexpected argument '\(operands[1])'; sign one file at a time") }
        guard let keyFile = arguments.value("key") else { throw UsageError("missing --key KEY") }
        guard let certificateFile = arguments.value("cert") else { throw UsageError("missing --cert CERT") }
        hash = arguments.value("hash") ?? "sha256"
        guard ModuleSigner.hashAlgorithms.contains(hash) else {
            throw UsageError("invalid value '\(hash)' for --hash; expected one of \(ModuleSigner.hashAlgorithms.joined(separator: ", "))")
        }
        self.file = file
        self.keyFile = keyFile
        self.certificateFile = certificateFile
        output = arguments.value("output")
    }

    func run() -> Int32 {
        let image: ObjectImage
        do {
            image = try ObjectImage(contentsOf: file)
        } catch {
            Self.reportError("\(error)")
            return ExitStatus.failure
        }
        do {
            _ = try ObjectFile(image.withoutSignature())
        } catch {
            Self.reportError("\(error); modkit sign signs only ELF relocatable objects")
            return ExitStatus.failure
        }
        let result: (signed: [UInt8], replacedSignature: Bool)
        do {
            result = try ModuleSigner.sign(Array(image.bytes), keyFile: keyFile, certificateFile: certificateFile, hash: hash)
        } catch {
            Self.reportError("cannot sign \(file): \(error)")
            return ExitStatus.failure
        }
        let destination = output ?? file
        if let failure = Self.replaceFile(destination, with: result.signed) {
            Self.reportError(failure)
            return ExitStatus.failure
        }
        if result.replacedSignature {
            writeToStandardError("modkit sign: \(file): replaced the existing signature\n")
        }
        return ExitStatus.success
    }

    /// Writes `bytes` to a temporary file beside `path` and renames it over `path`, so that a
    /// failure leaves `path` as it was.
    private static func replaceFile(_ path: String, with bytes: [UInt8]) -> String? {
        let temporary = path + ".sign-\(getpid())"
        var existing = stat()
        let mode = stat(path, &existing) == 0 ? existing.st_mode & 0o7777 : 0o644
        let descriptor = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode)
        guard descriptor >= 0 else { return "cannot create \(temporary): \(String(cString: strerror(errno)))" }
        var offset = 0
        while offset < bytes.count {
            let written = bytes.withUnsafeBytes { write(descriptor, $0.baseAddress! + offset, bytes.count - offset) }
            if written < 0 && errno == EINTR { continue }
            guard written > 0 else {
                let reason = String(cString: strerror(errno))
                close(descriptor)
                unlink(temporary)
                return "cannot write \(temporary): \(reason)"
            }
            offset += written
        }
        guard close(descriptor) == 0, rename(temporary, path) == 0 else {
            let reason = String(cString: strerror(errno))
            unlink(temporary)
            return "cannot write \(path): \(reason)"
        }
        return nil
    }
}
