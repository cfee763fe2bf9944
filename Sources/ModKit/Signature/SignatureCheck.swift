/// The first stage of a load: each image's signature is found, checked and cut off before
/// anything parses the image, as Linux's `module_sig_check` does.
extension ModuleHost {
    /// Whether this host checks signatures: it does when it has trusted certificates or
    /// enforces signatures. A host that does not check still cuts off well-formed signatures.
    public var checksSignatures: Bool {
        options.trustedCertificates != nil || options.signatureEnforced
    }

    /// Returns the images without their signatures, and whether any image lacks a trusted
    /// signature while this host checks signatures, which taints the module with `E`.
    ///
    /// A malformed signature, or one that does not match its image, is always rejected. An
    /// unsigned image, or one signed by an untrusted key or in another format than PKCS#7, is
    /// rejected under enforcement.
    func checkSignatures(_ images: [ObjectImage]) throws(LoadError) -> (images: [ObjectImage], lacksTrustedSignature: Bool) {
        var stripped: [ObjectImage] = []
        var lacksTrustedSignature = false
        for image in images {
            let (content, trusted) = try checkSignature(image)
            stripped.append(content)
            if checksSignatures && !trusted { lacksTrustedSignature = true }
        }
        return (stripped, lacksTrustedSignature)
    }

    /// Returns the image without its signature and whether the signature is valid and trusted.
    private func checkSignature(_ image: ObjectImage) throws(LoadError) -> (ObjectImage, Bool) {
        guard let signature = try image.signature() else {
            if checksSignatures {
                try rejectIfEnforced(image, reason: "unsigned module", detail: nil,
                                     fix: "sign it with 'modkit sign' and a key whose certificate is in the host's trust directory")
            }
            return (image, false)
        }
        let stripped = image.prefix(signature.contentSize)
        guard checksSignatures else { return (stripped, false) }

        guard signature.isPKCS7 else {
            try rejectIfEnforced(image, reason: "module with unsupported crypto",
                                 detail: "signature has id_type \(signature.identifierType), not PKCS#7 (2)",
                                 fix: "sign it again with 'modkit sign'")
            return (stripped, false)
        }
        let result = options.trustedCertificates?.verify(signature, content: stripped.bytes)
            ?? .unknownKey("the host has no trusted certificates")
        switch result {
        case .valid:
            return (stripped, true)
        case .unknownKey(let detail):
            try rejectIfEnforced(image, reason: "module with unavailable key", detail: detail,
                                 fix: "add the signer's certificate to the host's trust directory")
            return (stripped, false)
        case .invalid(let detail):
            throw LoadError(.badSignature, file: image.name,
                            "invalid module signature: \(detail); the file changed after it was signed, or the signature is corrupt")
        }
    }

    /// Throws Linux's `Loading of ... is rejected` when this host enforces signatures.
    private func rejectIfEnforced(_ image: ObjectImage, reason: String, detail: String?, fix: String) throws(LoadError) {
        guard options.signatureEnforced else { return }
        let because = detail.map { ": \($0)" } ?? ""
        throw LoadError(.signatureRejected, file: image.name, "Loading of \(reason) is rejected\(because); \(fix)")
    }

    /// Taints a module that lacks a trusted signature with `E`, with Linux's message.
    func noteMissingSignature(of module: Module) {
        addTaint(.unsignedModule, to: module, reason: "module verification failed: signature and/or required key missing")
    }
}

extension ObjectImage {
    /// Returns the image without its signature, or the image itself when it is unsigned,
    /// without checking the signature. Throws when the signature trailer is malformed.
    public func withoutSignature() throws(LoadError) -> ObjectImage {
        guard let signature = try signature() else { return self }
        return prefix(signature.contentSize)
    }

    /// Returns the signature at the end of the image, or nil when it has none, without
    /// checking it.
    public func signature() throws(LoadError) -> ModuleSignature? {
        do {
            return try ModuleSignature.find(in: bytes)
        } catch {
            throw LoadError(.badSignature, file: name, "invalid module signature: \(error.message)")
        }
    }

    /// Returns a copy of the first `count` bytes under the same name.
    func prefix(_ count: Int) -> ObjectImage {
        ObjectImage(name: name, bytes: UnsafeRawBufferPointer(rebasing: bytes[0 ..< count]))
    }
}
