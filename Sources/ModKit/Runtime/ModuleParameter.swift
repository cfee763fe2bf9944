import CModKit
import Glibc

/// Why a parameter could not be read or set.
public struct ParameterError: Error, CustomStringConvertible, Sendable, Equatable {
    public enum Kind: String, Sendable {
        case notFound
        case invalidValue
        case readOnly
        case moduleGoingAway
    }

    public var kind: Kind
    public var module: String
    public var parameter: String
    public var message: String
    public var description: String { message }
}

/// One `module_param` of a loaded module.
public struct ModuleParameter: @unchecked Sendable {
    public let name: String
    /// The type as written in the source: "int", "charp", "array of int", "string", "cb".
    public let type: String
    /// The permission bits: 0 hides the parameter, no write bits make it read-only.
    public let permissions: UInt16
    let pointer: UnsafePointer<kernel_param>

    public var isVisible: Bool { permissions != 0 }
    public var isWritable: Bool { permissions & 0o222 != 0 }

    init(_ pointer: UnsafePointer<kernel_param>) {
        self.pointer = pointer
        let parameter = pointer.pointee
        name = String(cString: parameter.name)
        let kind = String(cString: parameter.type)
        if kind == "array", let array = parameter.arg?.assumingMemoryBound(to: kparam_array.self).pointee {
            type = "array of " + String(cString: array.type)
        } else {
            type = kind
        }
        permissions = parameter.perm
    }
}

/// Converts between parameter strings and the C variables behind `module_param`.
enum ParameterValue {
    /// Sets `parameter` from `value` (nil for a bare name). Strings the module keeps
    /// (`charp`) are allocated with `strdup` and appended to `owned`.
    static func set(_ parameter: ModuleParameter, to value: String?, owned: inout [UnsafeMutablePointer<CChar>]) -> String? {
        let c = parameter.pointer.pointee
        guard let argument = c.arg else { return "parameter has no storage" }
        let storage = UnsafeMutableRawPointer(mutating: argument)
        switch String(cString: c.type) {
        case "cb":
            guard let set = c.ops?.pointee.set else { return "parameter has no set operation" }
            let status = (value ?? "").withCString { set($0, parameter.pointer) }
            return status < 0 ? "the module rejected it: \(String(cString: strerror(-status)))" : nil
        case "array":
            return setArray(storage.assumingMemoryBound(to: kparam_array.self).pointee, value ?? "", owned: &owned)
        case "string":
            let string = storage.assumingMemoryBound(to: kparam_string.self).pointee
            let bytes = Array((value ?? "").utf8)
            guard bytes.count < Int(string.maxlen) else {
                return "expected a string of at most \(Int(string.maxlen) - 1) bytes"
            }
            UnsafeMutableRawPointer(string.string).copyMemory(from: bytes + [0], byteCount: bytes.count + 1)
            return nil
        case let type:
            return setScalar(type, at: storage, value, owned: &owned)
        }
    }

    private static func setArray(_ array: kparam_array, _ value: String, owned: inout [UnsafeMutablePointer<CChar>]) -> String? {
        let elements = value.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
        guard elements.count <= Int(array.max) else {
            return "expected at most \(array.max) comma-separated elements"
        }
        let type = String(cString: array.type)
        for (index, element) in elements.enumerated() {
            if let error = setScalar(type, at: array.elem + index * Int(array.elemsize), element, owned: &owned) {
                return "element \(index + 1): \(error)"
            }
        }
        array.num?.pointee = UInt32(elements.count)
        return nil
    }

    /// Stores one value of a scalar type, range-checked, or returns what was expected.
    static func setScalar(_ type: String, at storage: UnsafeMutableRawPointer, _ value: String?,
                          owned: inout [UnsafeMutablePointer<CChar>]) -> String? {
        switch type {
        case "bool", "invbool":
            guard let flag = parseBool(value) else { return "expected a bool (y, n, 1, 0, on, off)" }
            storage.storeBytes(of: type == "bool" ? flag : !flag, as: Bool.self)
        case "charp":
            let text = value ?? ""
            guard text.utf8.count <= 1024 else { return "expected a string of at most 1024 bytes" }
            let copy = strdup(text)!
            owned.append(copy)
            storage.storeBytes(of: UnsafeMutablePointer(copy), as: UnsafeMutablePointer<CChar>?.self)
        case "int": return store(value, Int32.self, at: storage, "an int")
        case "uint": return store(value, UInt32.self, at: storage, "an unsigned int")
        case "hexint": return store(value, UInt32.self, at: storage, "an unsigned int")
        case "long": return store(value, Int.self, at: storage, "a long")
        case "ulong": return store(value, UInt.self, at: storage, "an unsigned long")
        case "short": return store(value, Int16.self, at: storage, "a short")
        case "ushort": return store(value, UInt16.self, at: storage, "an unsigned short")
        case "byte": return store(value, UInt8.self, at: storage, "a byte (0 to 255)")
        default: return "unsupported parameter type \(type)"
        }
        return nil
    }

    private static func store<T: FixedWidthInteger>(_ value: String?, _: T.Type, at storage: UnsafeMutableRawPointer,
                                                   _ expected: String) -> String? {
        guard let value, let number = parseInteger(value, as: T.self) else {
            return "expected \(expected) in [\(T.min), \(T.max)]"
        }
        storage.storeBytes(of: number, as: T.self)
        return nil
    }

    /// Parses like the kernel's `kstrto*` with base 0: an optional sign, then `0x` for hex,
    /// a leading `0` for octal, or decimal; a trailing newline is allowed.
    static func parseInteger<T: FixedWidthInteger>(_ text: String, as _: T.Type) -> T? {
        var digits = Substring(text.hasSuffix("\n") ? String(text.dropLast()) : text)
        var negative = false
        if digits.first == "+" || digits.first == "-" {
            negative = digits.first == "-"
            digits = digits.dropFirst()
        }
        var radix = 10
        if digits.hasPrefix("0x") || digits.hasPrefix("0X") {
            radix = 16
            digits = digits.dropFirst(2)
        } else if digits.count > 1 && digits.hasPrefix("0") {
            radix = 8
            digits = digits.dropFirst()
        }
        guard !digits.isEmpty, let magnitude = UInt64(digits, radix: radix) else { return nil }
        if negative {
            guard magnitude != 0 else { return 0 }
            guard T.isSigned, magnitude <= UInt64(T.max) + 1 else { return nil }
            return T(truncatingIfNeeded: 0 &- magnitude)
        }
        return T(exactly: magnitude)
    }

    /// Accepts what the kernel's `kstrtobool` accepts; a bare name means true.
    static func parseBool(_ text: String?) -> Bool? {
        guard let text else { return true }
        switch text.lowercased() {
        case "1", "y", "yes", "on", "true": return true
        case "0", "n", "no", "off", "false": return false
        default: return nil
        }
    }

    /// The value as the kernel's `param_get_*` prints it.
    static func get(_ parameter: ModuleParameter) -> String {
        let c = parameter.pointer.pointee
        guard let argument = c.arg else { return "" }
        switch String(cString: c.type) {
        case "cb":
            guard let get = c.ops?.pointee.get else { return "" }
            var buffer = [CChar](repeating: 0, count: 4096)
            let length = buffer.withUnsafeMutableBufferPointer { get($0.baseAddress, parameter.pointer) }
            return length < 0 ? "" : String(decoding: buffer.prefix(Int(length)).map { UInt8(bitPattern: $0) }, as: UTF8.self)
        case "array":
            let array = argument.assumingMemoryBound(to: kparam_array.self).pointee
            let count = array.num.map { Int($0.pointee) } ?? Int(array.max)
            let type = String(cString: array.type)
            return (0 ..< count).map { getScalar(type, at: UnsafeRawPointer(array.elem + $0 * Int(array.elemsize))) }.joined(separator: ",")
        case "string":
            return String(cString: argument.assumingMemoryBound(to: kparam_string.self).pointee.string)
        case let type:
            return getScalar(type, at: argument)
        }
    }

    static func getScalar(_ type: String, at storage: UnsafeRawPointer) -> String {
        switch type {
        case "bool": storage.load(as: Bool.self) ? "Y" : "N"
        case "invbool": storage.load(as: Bool.self) ? "N" : "Y"
        case "charp": storage.load(as: UnsafePointer<CChar>?.self).map { String(cString: $0) } ?? "(null)"
        case "int": String(storage.load(as: Int32.self))
        case "uint": String(storage.load(as: UInt32.self))
        case "hexint": "0x" + String(storage.load(as: UInt32.self), radix: 16)
        case "long": String(storage.load(as: Int.self))
        case "ulong": String(storage.load(as: UInt.self))
        case "short": String(storage.load(as: Int16.self))
        case "ushort": String(storage.load(as: UInt16.self))
        case "byte": String(storage.load(as: UInt8.self))
        default: ""
        }
    }
}
