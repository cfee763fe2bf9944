import Glibc

/// The protect stage: write access while the loader copies and relocates, then W^X.
extension ModuleMemory {
    /// Opens every region for writing (read+write, never execute).
    func makeWritable(file: String) throws(LoadError) {
        if case .failure(let error) = SystemCalls.protect(span.start, size: span.size, protection: PROT_READ | PROT_WRITE) {
            throw LoadError(.systemCallFailed, file: file,
                            "mprotect of the module's memory (\(span.size) bytes) to read+write failed: \(error)")
        }
    }

    /// Gives each region its final protection: code becomes executable only after it is written.
    /// Called after `makeWritable`, so regions that stay read+write need no call.
    func applyFinalProtections(file: String, synchronize: (UInt64, Int) -> Void) throws(LoadError) {
        // Adjacent regions with one protection (rodata and relro) take one call.
        var index = 0
        while index < regions.count {
            let first = regions[index]
            var end = first.start + UInt64(first.mappedSize)
            while index + 1 < regions.count, regions[index + 1].kind.finalProtection == first.kind.finalProtection,
                  regions[index + 1].start == end {
                index += 1
                end = regions[index].start + UInt64(regions[index].mappedSize)
            }
            index += 1
            if first.kind.finalProtection == PROT_READ | PROT_WRITE { continue }
            let size = Int(end - first.start)
            if first.kind.finalProtection & PROT_EXEC != 0 { synchronize(first.start, size) }
            if case .failure(let error) = SystemCalls.protect(first.start, size: size, protection: first.kind.finalProtection) {
                throw LoadError(.systemCallFailed, file: file,
                                "mprotect of the \(first.kind.name) region (\(size) bytes) failed: \(error)")
            }
        }
    }
}
