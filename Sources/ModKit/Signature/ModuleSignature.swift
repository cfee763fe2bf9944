/// A signature appended to a module file in Linux's format.
///
/// A signed file is the module's bytes, then a detached PKCS#7 (CMS) message in DER, then the
/// 12-byte `struct module_signature` (`algo`, `hash`, `id_type`, `signer_len`, `key_id_len`,
/// three pad bytes and a big-endian `sig_len`), then the marker `~Module signature appended~\n`.
/// For PKCS#7 only `id_type` (2) and `sig_len` are set.
public struct ModuleSignature: Sendable {
    /// The text that ends every signed file.
    public static let marker = Array("~Module signature appended~\n".utf8)
    /// The size of `struct module_signature`.
    static let trailerSize = 12
    /// `PKEY_ID_PKCS7`, the only identifier type Linux verifies.
    static let pkcs7IdentifierType: UInt8 = 2

    /// The number of bytes before the signature: the module as it was signed.
    public var contentSize: Int
    /// The PKCS#7 message, DER-encoded.
    public var message: [UInt8]
    /// `id_type` from the trailer.
    public var identifierType: UInt8

    /// Whether the signature is a PKCS#7 message, the only kind that can be verified.
    public var isPKCS7: Bool { identifierType == Self.pkcs7IdentifierType }

    /// Finds the signature at the end of `bytes`. Returns nil when the file does not end with the
    /// marker, and throws when the trailer before the marker is malformed.
    public static func find(in bytes: UnsafeRawBufferPointer) throws(SignatureError) -> ModuleSignature? {
        guard bytes.count > marker.count, bytes.suffix(marker.count).elementsEqual(marker) else { return nil }
        let beforeMarker = bytes.count - marker.count
        guard beforeMarker > trailerSize else {
            throw SignatureError("signature trailer is truncated: \(beforeMarker) bytes precede the marker, and the trailer alone takes \(trailerSize)")
        }
        let trailer = Array(bytes[beforeMarker - trailerSize ..< beforeMarker])
        let messageSize = trailer[8 ..< 12].reduce(0) { $0 << 8 | Int($1) }
        let available = beforeMarker - trailerSize
        // Linux requires at least one byte of module before the signature, hence `>=`.
        guard messageSize < available else {
            throw SignatureError("signature trailer gives sig_len \(messageSize), but only \(available) bytes precede the trailer")
        }
        let identifierType = trailer[2]
        let signature = ModuleSignature(contentSize: available - messageSize,
                                        message: Array(bytes[(available - messageSize) ..< available]),
                                        identifierType: identifierType)
        let otherFields = [trailer[0], trailer[1], trailer[3], trailer[4], trailer[5], trailer[6], trailer[7]]
        if signature.isPKCS7 && otherFields.contains(where: { $0 != 0 }) {
            throw SignatureError("PKCS#7 signature trailer has unexpected nonzero fields (algo \(trailer[0]), hash \(trailer[1]), signer_len \(trailer[3]), key_id_len \(trailer[4]), pad \(trailer[5]) \(trailer[6]) \(trailer[7]))")
        }
        return signature
    }

    /// Returns the bytes that follow a PKCS#7 message of `messageSize` bytes: the trailer and the
    /// marker.
    static func trailer(messageSize: Int) -> [UInt8] {
        let size = UInt32(messageSize)
        var bytes: [UInt8] = [0, 0, pkcs7IdentifierType, 0, 0, 0, 0, 0]
        bytes += [UInt8(size >> 24), UInt8(size >> 16 & 0xff), UInt8(size >> 8 & 0xff), UInt8(size & 0xff)]
        return bytes + marker
    }
}

/// A problem with a signature, a key or a certificate; the message names the file or value.
public struct SignatureError: Error, CustomStringConvertible, Sendable {
    public var message: String

    public init(_ message: String) {
        self.message = message
    }

    public var description: String { message }
}

extension String {
    /// Decodes the NUL-terminated message that a C function wrote into `buffer`.
    init(messageIn buffer: [CChar]) {
        self.init(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
