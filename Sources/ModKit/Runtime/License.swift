/// Module licenses, as Linux classifies the `MODULE_LICENSE` strings.
public enum ModuleLicense {
    /// The license strings Linux treats as GPL-compatible (its `license_is_gpl_compatible`).
    public static let gplCompatible: Set<String> = [
        "GPL", "GPL v2", "GPL and additional rights", "Dual BSD/GPL", "Dual MIT/GPL", "Dual MPL/GPL",
    ]

    /// Whether a module with `license` may bind `EXPORT_SYMBOL_GPL` symbols; a module without
    /// a license counts as proprietary.
    public static func isGPLCompatible(_ license: String?) -> Bool {
        license.map { gplCompatible.contains($0) } ?? false
    }
}
