import CModKitCrypto

/// Signs module files the way Linux's `scripts/sign-file` does.
public enum ModuleSigner {
    /// The hash algorithms `sign` accepts, which are those Linux can verify in module signatures.
    public static let hashAlgorithms = ["sha224", "sha256", "sha384", "sha512"]

    /// Returns `bytes` with a signature appended, made with the private key in `keyFile` and the
    /// certificate in `certificateFile` (each PEM or DER) over the SHA-2 digest `hash`.
    ///
    /// When `bytes` already ends with a signature, that signature is replaced: the new one
    /// covers only the module's own bytes.
    public static func sign(_ bytes: [UInt8], keyFile: String, certificateFile: String,
                            hash: String = "sha256") throws(SignatureError) -> (signed: [UInt8], replacedSignature: Bool) {
        guard hashAlgorithms.contains(hash) else {
            throw SignatureError("unsupported hash algorithm '\(hash)'; use one of \(hashAlgorithms.joined(separator: ", "))")
        }
        let found = bytes.withUnsafeBytes { buffer in
            Result { () throws(SignatureError) in try ModuleSignature.find(in: buffer) }
        }
        let existing = try found.get()
        let content = Array(bytes.prefix(existing?.contentSize ?? bytes.count))

        var message: UnsafeMutablePointer<UInt8>?
        var messageSize = 0
        var error = [CChar](repeating: 0, count: 1024)
        let status = content.withUnsafeBytes { buffer in
            modkit_cms_sign(buffer.baseAddress, buffer.count, keyFile, certificateFile, hash, &message, &messageSize, &error, error.count)
        }
        guard status == 0, let message else { throw SignatureError(String(messageIn: error)) }
        defer { modkit_crypto_free(message) }

        let signed = content + UnsafeBufferPointer(start: message, count: messageSize) + ModuleSignature.trailer(messageSize: messageSize)
        return (signed, existing != nil)
    }
}

/// The signer of a module signature, as kmod's modinfo reports it.
public struct SignerDescription: Sendable, Equatable {
    /// The common name of the signing certificate's issuer (`signer`).
    public var signer: String
    /// The signing certificate's serial number (`sig_key`).
    public var keyIdentifier: [UInt8]
    /// The digest algorithm, such as `sha256` (`sig_hashalgo`).
    public var hashAlgorithm: String

    /// The key identifier as kmod prints it: uppercase hex bytes joined by colons.
    public var keyIdentifierText: String {
        keyIdentifier.map { byte in
            let digits = String(byte, radix: 16, uppercase: true)
            return digits.count == 1 ? "0" + digits : digits
        }.joined(separator: ":")
    }
}

extension ModuleSignature {
    /// Reads the signer from the PKCS#7 message without verifying it.
    public func signer() throws(SignatureError) -> SignerDescription {
        guard isPKCS7 else { throw SignatureError("signature has id_type \(identifierType), not PKCS#7 (2)") }
        var signer = modkit_signer()
        var error = [CChar](repeating: 0, count: 512)
        let status = message.withUnsafeBytes { buffer in
            modkit_cms_signer(buffer.baseAddress, buffer.count, &signer, &error, error.count)
        }
        guard status == 0 else { throw SignatureError(String(messageIn: error)) }
        let name = withUnsafeBytes(of: signer.issuer_common_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        let serial = withUnsafeBytes(of: signer.serial) { Array($0.prefix(signer.serial_size)) }
        let digest = withUnsafeBytes(of: signer.digest) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        return SignerDescription(signer: name, keyIdentifier: serial, hashAlgorithm: digest)
    }
}
