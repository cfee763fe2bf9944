/// A message logged by a module (`printk`, `pr_info`) or by the host.
public struct LogRecord: Sendable {
    /// The kernel log level, 0 (emergency) to 7 (debug).
    public var level: Int
    /// The module that logged it, or nil for the host.
    public var module: String?
    public var text: String
    /// Time since the host started.
    public var timestamp: Duration
}

/// Settings of a module host.
public struct HostOptions: Sendable {
    /// Which process symbols (libc and friends) modules may bind to. Default: all of them.
    public var processSymbols: ProcessSymbolPolicy = .allowAll
    /// With unloading disabled there are no reference counters: a get only checks that the
    /// module is live, and every removal is rejected.
    public var unloadEnabled = true
    /// Where module and host messages go. Default: standard error, one line per message,
    /// levels up to `consoleLevel`.
    public var logHandler: (@Sendable (LogRecord) -> Void)?
    /// The most verbose level printed to standard error by the default handler (6 = info).
    public var consoleLevel = 6
    /// The certificates whose keys may sign modules. With them, or with `signatureEnforced`, the
    /// host checks every module's signature, and a module without a trusted one taints it (`E`).
    public var trustedCertificates: TrustedCertificates?
    /// Rejects modules without a valid signature by a trusted key, as Linux's
    /// `module.sig_enforce=1` does.
    public var signatureEnforced = false
    /// Whether a module that imports versioned symbols (the host API, other modules' exports)
    /// without recording their CRCs taints itself and the host with `F`, as Linux does with
    /// `CONFIG_MODVERSIONS`. A module whose recorded CRCs disagree is rejected either way.
    public var taintsUnversionedModules = true

    public init() {}
}
