import Glibc

/// A request from a client to the daemon.
public enum Request: Sendable {
    case daemonInfo
    /// `name` names the image in messages (the file name the user gave). `options` skip
    /// version checks, as `insmod -f` requests.
    case loadImage(name: String, image: ArraySlice<UInt8>, parameters: String, options: LoadOptions = [])
    /// The image is the file whose descriptor travels with the frame.
    case loadFile(name: String, parameters: String, options: LoadOptions = [])
    case remove(name: String, wait: Bool, force: Bool, timeout: Duration?)
    case list
    case moduleInfo(name: String)
    /// The exports of one module, or of every module for nil.
    case symbols(module: String?)
    case readLog(follow: Bool)
    case callCommand(name: String, arguments: [String])
    case listCommands
    /// Every visible parameter of `module` without `name`; one parameter's value with `name`;
    /// and with `value` too, sets it.
    case parameters(module: String, name: String?, value: String?)

    public var type: MessageType {
        switch self {
        case .daemonInfo: .daemonInfo
        case .loadImage: .loadImage
        case .loadFile: .loadFile
        case .remove: .remove
        case .list: .list
        case .moduleInfo: .moduleInfo
        case .symbols: .symbols
        case .readLog: .readLog
        case .callCommand: .callCommand
        case .listCommands: .listCommands
        case .parameters: .parameters
        }
    }

    public func encodedPayload() -> FieldWriter {
        var writer = FieldWriter()
        switch self {
        case .daemonInfo, .list, .listCommands:
            break
        case .loadImage(let name, let image, let parameters, let options):
            writer.append(.name, name)
            writer.append(.parameters, parameters)
            if !options.isEmpty { writer.append(.flags, UInt64(options.rawValue)) }
            writer.append(.image, bytes: image)
        case .loadFile(let name, let parameters, let options):
            writer.append(.name, name)
            writer.append(.parameters, parameters)
            if !options.isEmpty { writer.append(.flags, UInt64(options.rawValue)) }
        case .remove(let name, let wait, let force, let timeout):
            writer.append(.name, name)
            writer.append(.flags, (wait ? RequestFlags.wait : 0) | (force ? RequestFlags.force : 0))
            if let timeout { writer.append(.timeout, UInt64(timeout.milliseconds)) }
        case .moduleInfo(let name):
            writer.append(.name, name)
        case .symbols(let module):
            if let module { writer.append(.name, module) }
        case .readLog(let follow):
            writer.append(.flags, follow ? RequestFlags.follow : 0)
        case .callCommand(let name, let arguments):
            writer.append(.name, name)
            for argument in arguments { writer.append(.argument, argument) }
        case .parameters(let module, let name, let value):
            writer.append(.name, module)
            if let name { writer.append(.parameter, name) }
            if let value { writer.append(.value, value) }
        }
        return writer
    }

    /// Decodes the payload of a request frame of type `type`.
    public init(type: MessageType, payload: ArraySlice<UInt8>) throws(ProtocolError) {
        let fields = try Fields(decoding: payload)
        let what = "\(type) request"
        switch type {
        case .daemonInfo, .list, .listCommands:
            try fields.checkTags(allowed: [], in: what)
            switch type {
            case .list: self = .list
            case .daemonInfo: self = .daemonInfo
            default: self = .listCommands
            }
        case .loadImage:
            try fields.checkTags(allowed: [.name, .parameters, .flags, .image], in: what)
            guard let image = try fields.bytes(.image) else { throw ProtocolError("\(what) is missing field image") }
            self = .loadImage(name: try fields.requiredString(.name, in: what), image: image,
                              parameters: try fields.string(.parameters) ?? "", options: try Self.loadOptions(fields, in: what))
        case .loadFile:
            try fields.checkTags(allowed: [.name, .parameters, .flags], in: what)
            self = .loadFile(name: try fields.requiredString(.name, in: what), parameters: try fields.string(.parameters) ?? "",
                             options: try Self.loadOptions(fields, in: what))
        case .remove:
            try fields.checkTags(allowed: [.name, .flags, .timeout], in: what)
            let flags = try fields.uint64(.flags) ?? 0
            guard flags & ~(RequestFlags.wait | RequestFlags.force) == 0 else {
                throw ProtocolError("\(what) has unknown flags 0x\(String(flags, radix: 16))")
            }
            let timeout = try fields.uint64(.timeout).map { Duration.milliseconds(Int64(clamping: $0)) }
            self = .remove(name: try fields.requiredString(.name, in: what), wait: flags & RequestFlags.wait != 0,
                           force: flags & RequestFlags.force != 0, timeout: timeout)
        case .moduleInfo:
            try fields.checkTags(allowed: [.name], in: what)
            self = .moduleInfo(name: try fields.requiredString(.name, in: what))
        case .symbols:
            try fields.checkTags(allowed: [.name], in: what)
            self = .symbols(module: try fields.string(.name))
        case .readLog:
            try fields.checkTags(allowed: [.flags], in: what)
            let flags = try fields.uint64(.flags) ?? 0
            guard flags & ~RequestFlags.follow == 0 else {
                throw ProtocolError("\(what) has unknown flags 0x\(String(flags, radix: 16))")
            }
            self = .readLog(follow: flags & RequestFlags.follow != 0)
        case .callCommand:
            try fields.checkTags(allowed: [.name, .argument], in: what)
            self = .callCommand(name: try fields.requiredString(.name, in: what), arguments: try fields.strings(.argument))
        case .parameters:
            try fields.checkTags(allowed: [.name, .parameter, .value], in: what)
            let name = try fields.string(.parameter)
            let value = try fields.string(.value)
            guard value == nil || name != nil else { throw ProtocolError("\(what) has a value but no parameter") }
            self = .parameters(module: try fields.requiredString(.name, in: what), name: name, value: value)
        case .reply, .logRecords:
            throw ProtocolError("message type \(type) is a reply, not a request")
        }
    }

    /// The `flags` of a load request: `RequestFlags.ignoreSymbolVersions` and
    /// `RequestFlags.ignoreVersionMagic`.
    private static func loadOptions(_ fields: Fields, in what: String) throws(ProtocolError) -> LoadOptions {
        let flags = try fields.uint64(.flags) ?? 0
        let known = RequestFlags.ignoreSymbolVersions | RequestFlags.ignoreVersionMagic
        guard flags & ~known == 0 else { throw ProtocolError("\(what) has unknown flags 0x\(String(flags, radix: 16))") }
        return LoadOptions(rawValue: UInt32(flags))
    }
}

/// The final reply to a request: a status (0, or an errno value naming the failure), a
/// message, and the fields the request asked for.
public struct Reply: Sendable {
    public var status: Int32
    /// The error text; empty on success.
    public var message: String
    public var fields: Fields

    public var succeeded: Bool { status == 0 }

    /// Encodes a reply.
    public static func encode(status: Int32 = 0, message: String = "", fields: FieldWriter = FieldWriter()) -> FieldWriter {
        var writer = FieldWriter()
        writer.append(.status, Int64(status))
        if !message.isEmpty { writer.append(.message, message) }
        return writer.appending(fields)
    }

    public init(payload: ArraySlice<UInt8>) throws(ProtocolError) {
        fields = try Fields(decoding: payload)
        guard let status = try fields.int64(.status), let narrow = Int32(exactly: status) else {
            throw ProtocolError("reply has no valid status field")
        }
        self.status = narrow
        message = try fields.string(.message) ?? ""
    }
}

extension FieldWriter {
    func appending(_ other: FieldWriter) -> FieldWriter {
        var copy = self
        copy.appendRaw(other.bytes)
        return copy
    }
}

// MARK: Records

/// One loaded module, as `lsmod` shows it.
public struct ModuleRecord: Sendable, Equatable {
    public var name: String
    public var size: Int
    /// References held on the module, those of the modules that use it included.
    public var referenceCount: Int
    public var state: String
    /// Modules that use this one's exports.
    public var users: [String]
    /// Modules whose exports this one uses.
    public var dependencies: [String]
    public var files: [String]
    /// The module's taint letters, such as `PE`; empty when untainted.
    public var taint: String

    public init(name: String, size: Int, referenceCount: Int, state: String, users: [String], dependencies: [String], files: [String],
                taint: String = "") {
        self.name = name
        self.taint = taint
        self.size = size
        self.referenceCount = referenceCount
        self.state = state
        self.users = users
        self.dependencies = dependencies
        self.files = files
    }

    public func encoded() -> FieldWriter {
        var writer = FieldWriter()
        writer.append(.name, name)
        writer.append(.size, UInt64(size))
        writer.append(.referenceCount, Int64(referenceCount))
        writer.append(.state, state)
        for user in users { writer.append(.user, user) }
        for dependency in dependencies { writer.append(.dependency, dependency) }
        for file in files { writer.append(.file, file) }
        if !taint.isEmpty { writer.append(.taint, taint) }
        return writer
    }

    public init(_ fields: Fields) throws(ProtocolError) {
        name = try fields.requiredString(.name, in: "module record")
        taint = try fields.string(.taint) ?? ""
        size = Int(clamping: try fields.uint64(.size) ?? 0)
        referenceCount = Int(clamping: try fields.int64(.referenceCount) ?? 0)
        state = try fields.string(.state) ?? ""
        users = try fields.strings(.user)
        dependencies = try fields.strings(.dependency)
        files = try fields.strings(.file)
    }
}

/// One exported symbol.
public struct SymbolRecord: Sendable, Equatable {
    public var name: String
    public var address: UInt64
    public var owner: String
    public var namespace: String?
    public var gplOnly: Bool

    public init(name: String, address: UInt64, owner: String, namespace: String?, gplOnly: Bool) {
        self.name = name
        self.address = address
        self.owner = owner
        self.namespace = namespace
        self.gplOnly = gplOnly
    }

    public func encoded() -> FieldWriter {
        var writer = FieldWriter()
        writer.append(.name, name)
        writer.append(.address, address)
        writer.append(.owner, owner)
        if let namespace { writer.append(.namespace, namespace) }
        writer.append(.flags, gplOnly ? RequestFlags.gplOnly : 0)
        return writer
    }

    public init(_ fields: Fields) throws(ProtocolError) {
        name = try fields.requiredString(.name, in: "symbol record")
        address = try fields.uint64(.address) ?? 0
        owner = try fields.string(.owner) ?? ""
        namespace = try fields.string(.namespace)
        gplOnly = (try fields.uint64(.flags) ?? 0) & RequestFlags.gplOnly != 0
    }
}

/// One message of the daemon's log.
public struct LogEntry: Sendable, Equatable {
    /// Numbers every record the daemon logged, from 1.
    public var sequence: UInt64
    /// 0 (emergency) to 7 (debug).
    public var level: Int
    /// Time since the daemon started.
    public var timestamp: Duration
    /// The module that logged it, or nil for the daemon.
    public var module: String?
    public var text: String

    public init(sequence: UInt64, level: Int, timestamp: Duration, module: String?, text: String) {
        self.sequence = sequence
        self.level = level
        self.timestamp = timestamp
        self.module = module
        self.text = text
    }

    public func encoded() -> FieldWriter {
        var writer = FieldWriter()
        writer.append(.sequence, sequence)
        writer.append(.level, Int64(level))
        writer.append(.timestamp, UInt64(max(timestamp.nanoseconds, 0)))
        if let module { writer.append(.module, module) }
        writer.append(.text, text)
        return writer
    }

    public init(_ fields: Fields) throws(ProtocolError) {
        sequence = try fields.uint64(.sequence) ?? 0
        level = Int(clamping: try fields.int64(.level) ?? 6)
        timestamp = .nanoseconds(Int64(clamping: try fields.uint64(.timestamp) ?? 0))
        module = try fields.string(.module)
        text = try fields.string(.text) ?? ""
    }
}

/// The daemon's own description, for `modkit status` and for tools that need its settings.
public struct DaemonInfo: Sendable, Equatable {
    public var version: String
    public var protocolVersion: Int
    /// "membarrier", "fence" or "no-unload".
    public var referenceMode: String
    public var areaStart: UInt64
    public var areaSize: Int
    /// Taint letters as in Linux: `P` (a module without a GPL-compatible license was loaded),
    /// `R` (a module was removed by force); empty when clean.
    public var taint: String
    public var moduleDirectory: String?
    public var configFile: String?
    public var processID: Int
    public var maxImageSize: Int

    public init(version: String, protocolVersion: Int, referenceMode: String, areaStart: UInt64, areaSize: Int, taint: String,
                moduleDirectory: String?, configFile: String?, processID: Int, maxImageSize: Int) {
        self.version = version
        self.protocolVersion = protocolVersion
        self.referenceMode = referenceMode
        self.areaStart = areaStart
        self.areaSize = areaSize
        self.taint = taint
        self.moduleDirectory = moduleDirectory
        self.configFile = configFile
        self.processID = processID
        self.maxImageSize = maxImageSize
    }

    public func encoded() -> FieldWriter {
        var writer = FieldWriter()
        writer.append(.version, version)
        writer.append(.protocolVersion, UInt64(protocolVersion))
        writer.append(.referenceMode, referenceMode)
        writer.append(.areaStart, areaStart)
        writer.append(.areaSize, UInt64(areaSize))
        writer.append(.taint, taint)
        if let moduleDirectory { writer.append(.moduleDirectory, moduleDirectory) }
        if let configFile { writer.append(.configFile, configFile) }
        writer.append(.processID, UInt64(processID))
        writer.append(.maxImageSize, UInt64(maxImageSize))
        return writer
    }

    public init(_ fields: Fields) throws(ProtocolError) {
        version = try fields.string(.version) ?? ""
        protocolVersion = Int(clamping: try fields.uint64(.protocolVersion) ?? 0)
        referenceMode = try fields.string(.referenceMode) ?? ""
        areaStart = try fields.uint64(.areaStart) ?? 0
        areaSize = Int(clamping: try fields.uint64(.areaSize) ?? 0)
        taint = try fields.string(.taint) ?? ""
        moduleDirectory = try fields.string(.moduleDirectory)
        configFile = try fields.string(.configFile)
        processID = Int(clamping: try fields.uint64(.processID) ?? 0)
        maxImageSize = Int(clamping: try fields.uint64(.maxImageSize) ?? 0)
    }
}

/// A command a module registered.
public struct CommandRecord: Sendable, Equatable {
    public var name: String
    public var summary: String
    public var owner: String?

    public init(name: String, summary: String, owner: String?) {
        self.name = name
        self.summary = summary
        self.owner = owner
    }

    public func encoded() -> FieldWriter {
        var writer = FieldWriter()
        writer.append(.name, name)
        writer.append(.summary, summary)
        if let owner { writer.append(.owner, owner) }
        return writer
    }

    public init(_ fields: Fields) throws(ProtocolError) {
        name = try fields.requiredString(.name, in: "command record")
        summary = try fields.string(.summary) ?? ""
        owner = try fields.string(.owner)
    }
}

extension Duration {
    var nanoseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds &* 1_000_000_000 &+ attoseconds / 1_000_000_000
    }

    var milliseconds: Int64 {
        nanoseconds / 1_000_000
    }
}

/// One module parameter as the `parameters` request lists it.
public struct ParameterRecord: Sendable, Equatable {
    public var name: String
    public var type: String
    public var permissions: UInt16
    public var value: String

    public init(name: String, type: String, permissions: UInt16, value: String) {
        self.name = name
        self.type = type
        self.permissions = permissions
        self.value = value
    }

    public func encoded() -> FieldWriter {
        var writer = FieldWriter()
        writer.append(.name, name)
        writer.append(.parameterType, type)
        writer.append(.permissions, UInt64(permissions))
        writer.append(.value, value)
        return writer
    }

    public init(_ fields: Fields) throws(ProtocolError) {
        name = try fields.requiredString(.name, in: "parameter record")
        type = try fields.requiredString(.parameterType, in: "parameter record")
        permissions = UInt16(truncatingIfNeeded: try fields.uint64(.permissions) ?? 0)
        value = try fields.requiredString(.value, in: "parameter record")
    }
}
