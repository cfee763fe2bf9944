/// Writable bytes that a module's image is linked into, addressed by the final address of each
/// byte: the module's own mapping when loading, a plain buffer for `modkit link`.
protocol LinkTarget {
    /// The final address of the image's first byte.
    var base: UInt64 { get }
    /// The address ranges the image consists of, in address order. Copying sections zero-fills
    /// every byte of them that no section covers.
    var spans: [(start: UInt64, size: Int)] { get }
    /// Returns writable memory for the byte whose final address is `address`.
    func pointer(_ address: UInt64) -> UnsafeMutableRawPointer
}

extension ModuleMemory: LinkTarget {
    var spans: [(start: UInt64, size: Int)] {
        regions.map { ($0.start, $0.mappedSize) }
    }
}
