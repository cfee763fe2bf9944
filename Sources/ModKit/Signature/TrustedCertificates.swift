import CModKitCrypto
import Glibc

/// The X.509 certificates whose keys a host trusts to sign modules, like Linux's trusted
/// keyrings.
///
/// The certificates do not change after creation, so one set may serve concurrent loads.
public final class TrustedCertificates: @unchecked Sendable {
    let trust: OpaquePointer
    /// The files the certificates came from.
    public let files: [String]

    /// Reads every regular file of `directory` whose name does not start with `.`. Each file
    /// must be a PEM file of one or more certificates or a DER file of one.
    public convenience init(directory: String) throws(SignatureError) {
        guard let handle = opendir(directory) else {
            throw SignatureError("cannot read trust directory \(directory): \(String(cString: strerror(errno)))")
        }
        var names: [String] = []
        while let entry = readdir(handle) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            guard !name.hasPrefix(".") else { continue }
            var status = stat()
            let path = directory.hasSuffix("/") ? directory + name : directory + "/" + name
            if stat(path, &status) == 0 && status.st_mode & S_IFMT == S_IFREG { names.append(path) }
        }
        closedir(handle)
        guard !names.isEmpty else {
            throw SignatureError("trust directory \(directory) contains no certificate files; add the PEM or DER certificates of the keys that sign modules")
        }
        try self.init(files: names.sorted())
    }

    /// Reads the certificates of `files`, each PEM or DER.
    public init(files: [String]) throws(SignatureError) {
        guard let trust = modkit_trust_create() else { throw SignatureError("out of memory while reading certificates") }
        self.trust = trust
        self.files = files
        for file in files {
            var error = [CChar](repeating: 0, count: 512)
            if modkit_trust_add_file(trust, file, &error, error.count) < 0 {
                throw SignatureError(String(messageIn: error))
            }
        }
    }

    deinit { modkit_trust_destroy(trust) }

    /// The number of certificates.
    public var count: Int { Int(modkit_trust_count(trust)) }

    /// Checks that `signature` is a valid signature of `content` by one of these certificates.
    func verify(_ signature: ModuleSignature, content: UnsafeRawBufferPointer) -> VerificationResult {
        var error = [CChar](repeating: 0, count: 1024)
        let status = signature.message.withUnsafeBytes { message in
            modkit_cms_verify(trust, content.baseAddress, content.count, message.baseAddress, message.count, &error, error.count)
        }
        let detail = String(messageIn: error)
        switch status {
        case Int32(MODKIT_SIGNATURE_VALID.rawValue): return .valid
        case Int32(MODKIT_SIGNATURE_UNKNOWN_KEY.rawValue): return .unknownKey(detail)
        default: return .invalid(detail)
        }
    }

    enum VerificationResult: Equatable {
        case valid
        /// No certificate matches the signer; the detail names the signer.
        case unknownKey(String)
        /// The message is malformed or does not match the content.
        case invalid(String)
    }
}
