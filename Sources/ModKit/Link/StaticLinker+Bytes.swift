extension StaticLinker {
    /// The largest image the fuzz target links. Larger layouts fail with the same check as
    /// `modkit link`'s 1 GiB limit, after layout, so that the fuzzer does not spend seconds
    /// zero-filling images of hundreds of MiB that valid but huge `.bss` sections or
    /// alignments ask for.
    public static let fuzzingImageSize = 4 << 20

    /// Links one object given as raw bytes, as `modkit link OBJECT --map EMPTY -o IMAGE` does:
    /// for the object's own architecture, at the default base, with every undefined symbol at
    /// a fixed fake address past the image. Nothing is mapped and nothing runs.
    ///
    /// The fuzz target (Sources/ModKitFuzz) and the replay of its regression fixtures call this
    /// with `fuzzingImageSize`, so both go through validation, layout, resolution and relocation
    /// the same way. Any input either links or throws a `LoadError`; anything else is a loader bug.
    public static func link(objectBytes bytes: UnsafeRawBufferPointer, name: String,
                            maximumImageSize: Int = StaticLinker.maximumImageSize) throws(LoadError) -> StaticLink {
        let image = ObjectImage(name: name, bytes: bytes)
        // The link validates the whole object, e_machine included, so a peek at e_machine is
        // enough to choose the architecture, as `modkit link` takes the first object's.
        let machine: Machine = bytes.count >= 20 && bytes[18] == 183 && bytes[19] == 0 ? .aarch64 : .x86_64
        return try link([image], machine: machine, map: LinkMap(), maximumImageSize: maximumImageSize)
    }
}
