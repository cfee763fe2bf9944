import ModKit

/// The signature options of `modkit exec` and `modkit host`.
struct SignatureOptions {
    static let definitions = [
        OptionDefinition(long: "trust-dir", valueName: "DIR",
                         help: "check module signatures against the PEM or DER certificates in DIR; a module without a trusted signature taints the host (E)"),
        OptionDefinition(long: "sig-enforce", help: "reject modules without a valid signature by a certificate in --trust-dir"),
    ]

    let trustDirectory: String?
    let enforced: Bool

    init(arguments: ParsedArguments) throws(UsageError) {
        trustDirectory = arguments.value("trust-dir")
        enforced = arguments.contains("sig-enforce")
        if enforced && trustDirectory == nil {
            throw UsageError("--sig-enforce needs --trust-dir DIR, because without trusted certificates every module would be rejected")
        }
    }

    /// Reads the certificates of the trust directory, if one was given.
    func certificates() throws(SignatureError) -> TrustedCertificates? {
        guard let trustDirectory else { return nil }
        return try TrustedCertificates(directory: trustDirectory)
    }
}
