import CModKit

/// Hands out each module's index into the per-thread reference counter blocks. The blocks
/// are process-wide, so the indices are too.
enum ReferenceSlots {
    private static let free = LockedValue<[UInt32]>(Array((0 ..< UInt32(MODKIT_REF_SLOTS)).reversed()))

    static func allocate(file: String) throws(LoadError) -> UInt32 {
        guard let index = free.withLock({ $0.popLast() }) else {
            throw LoadError(.outOfAddressSpace, file: file,
                            "too many modules loaded (\(MODKIT_REF_SLOTS)); remove one first")
        }
        // A slot may come back from a forced removal with counts left over.
        modkit_ref_reset_slot(index)
        return index
    }

    static func release(_ index: UInt32) {
        free.withLock { $0.append(index) }
    }
}
