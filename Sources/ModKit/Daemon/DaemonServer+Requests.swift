import Glibc

/// A request that failed: the reply's status, message and extra fields.
struct RequestFailure: Error {
    var status: Int32
    var message: String
    var fields = FieldWriter()
}

extension DaemonServer {
    /// Carries out one request and sends its reply. Throws only when the reply cannot be sent.
    func handle(_ request: Request, descriptor: Int32, peer: PeerCredentials, connection: UnixSocket) throws(SocketError) {
        let result: Result<FieldWriter, RequestFailure>
        switch request {
        case .daemonInfo:
            result = .success(daemonInfo().encoded())
        case .loadImage(let name, let image, let parameters, let options):
            result = load(name: name, parameters: parameters, options: options, peer: peer) { () throws(RequestFailure) in
                guard image.count <= configuration.maxImageSize else { throw imageTooLarge(image.count, name: name) }
                return ObjectImage(name: name, bytes: image)
            }
        case .loadFile(let name, let parameters, let options):
            result = load(name: name, parameters: parameters, options: options, peer: peer) { () throws(RequestFailure) in
                try readImage(descriptor: descriptor, name: name)
            }
        case .remove(let name, let wait, let force, let timeout):
            result = remove(name, wait: wait, force: force, timeout: timeout, peer: peer)
        case .list:
            var writer = FieldWriter()
            for record in moduleRecords() { writer.append(.module, record: record.encoded()) }
            result = .success(writer)
        case .moduleInfo(let name):
            result = moduleDetails(name)
        case .symbols(let module):
            result = symbols(of: module)
        case .readLog(let follow):
            try streamLog(follow: follow, connection: connection)
            return
        case .callCommand(let name, let arguments):
            result = callCommand(name, arguments: arguments, peer: peer)
        case .listCommands:
            var writer = FieldWriter()
            for command in host.commands {
                writer.append(.command, record: CommandRecord(name: command.name, summary: command.summary, owner: command.owner).encoded())
            }
            result = .success(writer)
        case .parameters(let module, let name, let value):
            result = parameters(module: module, name: name, value: value, peer: peer)
        }

        switch result {
        case .success(let fields):
            try send(connection, status: 0, message: "", fields: fields)
        case .failure(let failure):
            try send(connection, status: failure.status, message: failure.message, fields: failure.fields)
        }
    }

    // MARK: Information

    func daemonInfo() -> DaemonInfo {
        let zone = ModuleArea.shared.zones.first { $0.zone == .near }?.range
        return DaemonInfo(version: configuration.version, protocolVersion: Int(DaemonProtocol.version),
                          referenceMode: HostBridge.referenceMode, areaStart: zone?.start ?? 0, areaSize: zone?.size ?? 0,
                          taint: host.taint.description, moduleDirectory: configuration.moduleDirectory, configFile: configuration.configFile,
                          processID: Int(getpid()), maxImageSize: configuration.maxImageSize)
    }

    /// Returns every module in load order, read in one pass under the registry lock.
    func moduleRecords() -> [ModuleRecord] {
        host.registry.withLock { registry in
            registry.order.compactMap { registry.modules[$0] }.map(Self.record)
        }
    }

    /// Builds a record; call with the registry lock held.
    private static func record(_ module: Module) -> ModuleRecord {
        ModuleRecord(name: module.name, size: module.size, referenceCount: module.referenceCount, state: module.state.procName,
                     users: module.users, dependencies: module.dependencies, files: module.files,
                     taint: module.taint.description)
    }

    private func moduleDetails(_ name: String) -> Result<FieldWriter, RequestFailure> {
        let found: (ModuleRecord, Module)? = host.registry.withLock { registry in
            registry.modules[name].map { (Self.record($0), $0) }
        }
        guard let (record, module) = found else {
            return .failure(RequestFailure(status: ENOENT, message: "module \(name) is not loaded"))
        }
        var writer = record.encoded()
        for entry in module.info.entries {
            var pair = FieldWriter()
            pair.append(.key, entry.key)
            pair.append(.value, entry.value)
            writer.append(.infoEntry, record: pair)
        }
        for export in module.exports {
            writer.append(.symbol, record: SymbolRecord(export).encoded())
        }
        return .success(writer)
    }

    private func symbols(of module: String?) -> Result<FieldWriter, RequestFailure> {
        let modules: [Module]? = host.registry.withLock { registry in
            if let module { return registry.modules[module].map { [$0] } }
            return registry.order.compactMap { registry.modules[$0] }
        }
        let exports = modules?.flatMap(\.exports)
        guard let exports else {
            return .failure(RequestFailure(status: ENOENT, message: "module \(module ?? "") is not loaded"))
        }
        var writer = FieldWriter()
        for export in exports.sorted(by: { $0.name < $1.name }) {
            writer.append(.symbol, record: SymbolRecord(export).encoded())
        }
        return .success(writer)
    }

    // MARK: Loading

    /// Reads the image, finds its module name, and loads it while no other load of that name
    /// runs. A second load of one module waits for the first and then fails with `EEXIST`.
    private func load(name: String, parameters: String, options: LoadOptions, peer: PeerCredentials,
                      image readImage: () throws(RequestFailure) -> ObjectImage) -> Result<FieldWriter, RequestFailure> {
        do throws(RequestFailure) {
            let image = try readImage()
            let moduleName: String
            do throws(LoadError) {
                let object = try ObjectFile(image.withoutSignature())
                moduleName = ModuleInfo.moduleName(info: ModuleInfo(objects: [object]), firstFile: name)
            } catch {
                throw loadFailure(error, name: name, peer: peer)
            }
            return try loadGates.withGate(moduleName) { () throws(RequestFailure) -> Result<FieldWriter, RequestFailure> in
                var statistics = LoadStatistics()
                let module: Module
                do throws(LoadError) {
                    module = try host.load([image], parameters: parameters, options: options, statistics: &statistics)
                } catch {
                    throw loadFailure(error, name: name, peer: peer)
                }
                log.log(5, module: nil, "loaded module \(module.name) from \(name) (\(module.size) bytes) for pid \(peer.pid) uid \(peer.uid)")
                let record = host.registry.withLock { _ in Self.record(module) }
                return .success(record.encoded())
            }
        } catch {
            return .failure(error)
        }
    }

    private func loadFailure(_ error: LoadError, name: String, peer: PeerCredentials) -> RequestFailure {
        // Errors about the module as a whole, such as undefined symbols, name no file.
        let detail = error.location.isEmpty ? "\(name): \(error)" : "\(error)"
        log.log(3, module: nil, "load for pid \(peer.pid) uid \(peer.uid) failed: \(detail)")
        return RequestFailure(status: error.errnoValue, message: error.description)
    }

    private func imageTooLarge(_ size: Int, name: String) -> RequestFailure {
        RequestFailure(status: EFBIG, message: "\(name): image of \(size) bytes exceeds the daemon's maximum image size of \(configuration.maxImageSize) bytes (modkit host --max-image-size)")
    }

    /// Reads the file behind a descriptor a client passed, up to the maximum image size.
    private func readImage(descriptor: Int32, name: String) throws(RequestFailure) -> ObjectImage {
        guard descriptor >= 0 else {
            throw RequestFailure(status: EBADF, message: "a loadFile request must carry the file's descriptor (SCM_RIGHTS)")
        }
        var status = stat()
        guard fstat(descriptor, &status) == 0 else {
            throw RequestFailure(status: errno, message: "\(name): cannot stat the passed descriptor: \(Errno(errno))")
        }
        guard status.st_mode & S_IFMT == S_IFREG else {
            throw RequestFailure(status: EINVAL, message: "\(name): the passed descriptor is not a regular file")
        }
        let size = Int(status.st_size)
        guard size <= configuration.maxImageSize else { throw imageTooLarge(size, name: name) }

        var bytes = [UInt8](repeating: 0, count: size)
        var offset = 0
        while offset < size {
            let count = bytes.withUnsafeMutableBytes { buffer in
                pread(descriptor, buffer.baseAddress! + offset, size - offset, off_t(offset))
            }
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else {
                let reason = count < 0 ? "\(Errno(errno))" : "the file shrank while it was read"
                throw RequestFailure(status: count < 0 ? errno : EIO, message: "\(name): cannot read the passed descriptor: \(reason)")
            }
            offset += count
        }
        return ObjectImage(name: name, bytes: bytes)
    }

    // MARK: Removal

    private func remove(_ name: String, wait: Bool, force: Bool, timeout: Duration?, peer: PeerCredentials) -> Result<FieldWriter, RequestFailure> {
        do {
            try host.remove(name, wait: wait, force: force, timeout: timeout)
        } catch {
            log.log(4, module: nil, "removal of module \(name) for pid \(peer.pid) uid \(peer.uid) failed: \(error.message)")
            var fields = FieldWriter()
            for user in error.users { fields.append(.user, user) }
            fields.append(.referenceCount, Int64(error.referenceCount))
            return .failure(RequestFailure(status: error.errnoValue, message: error.message, fields: fields))
        }
        // The host itself logs the removal and the taint.
        if force {
            log.log(4, module: nil, "module \(name) was removed by force for pid \(peer.pid) uid \(peer.uid)")
        }
        return .success(FieldWriter())
    }

    // MARK: Parameters

    private func parameters(module: String, name: String?, value: String?, peer: PeerCredentials) -> Result<FieldWriter, RequestFailure> {
        var writer = FieldWriter()
        do throws(ParameterError) {
            switch (name, value) {
            case (let name?, let value?):
                try host.setParameter(module: module, parameter: name, to: value)
                log.log(6, module: module, "parameter \(name) set to '\(value)' by pid \(peer.pid) uid \(peer.uid)")
            case (let name?, nil):
                writer.append(.value, try host.parameterValue(module: module, parameter: name))
            default:
                for (parameter, current) in try host.parameters(of: module) {
                    let record = ParameterRecord(name: parameter.name, type: parameter.type,
                                                 permissions: parameter.permissions, value: current)
                    writer.append(.parameter, record: record.encoded())
                }
            }
        } catch {
            let status: Int32 = switch error.kind {
            case .notFound: ENOENT
            case .readOnly: EPERM
            case .invalidValue: EINVAL
            case .moduleGoingAway: EAGAIN
            }
            log.log(4, module: module, "parameter request failed for pid \(peer.pid): \(error.message)")
            return .failure(RequestFailure(status: status, message: error.message))
        }
        return .success(writer)
    }

    // MARK: Commands and log

    private func callCommand(_ name: String, arguments: [String], peer: PeerCredentials) -> Result<FieldWriter, RequestFailure> {
        let result: CommandResult
        do {
            result = try host.callCommand(name, arguments: arguments)
        } catch let error as RegistryError {
            let status = error.kind == .notFound ? ENOENT : EAGAIN
            return .failure(RequestFailure(status: status, message: error.message))
        } catch {
            return .failure(RequestFailure(status: EIO, message: "\(error)"))
        }
        var writer = FieldWriter()
        writer.append(.commandStatus, Int64(result.status))
        writer.append(.output, result.output)
        return .success(writer)
    }

    /// Sends the buffered records in batches, then, with `follow`, new records as they are
    /// logged until the client closes the connection or the daemon stops.
    private func streamLog(follow: Bool, connection: UnixSocket) throws(SocketError) {
        var last: UInt64 = 0
        var pending = log.records()
        while true {
            while !pending.isEmpty {
                let batch = pending.prefix(256)
                pending.removeFirst(batch.count)
                var writer = FieldWriter()
                for entry in batch { writer.append(.record, record: entry.encoded()) }
                try send(connection, type: .logRecords, payload: writer)
                last = batch.last!.sequence
            }
            guard follow else { break }
            // Wakes every half second to notice a client that went away.
            guard let next = log.waitForRecords(after: last, timeout: .milliseconds(500)) else { break }
            if next.isEmpty && connection.peerHasClosed() { return }
            pending = next
        }
        try send(connection, status: 0, message: "")
    }
}

extension SymbolRecord {
    init(_ export: ExportedSymbol) {
        self.init(name: export.name, address: export.address, owner: export.owner, namespace: export.namespace, gplOnly: export.gplOnly)
    }
}

extension LoadError {
    /// The errno that Linux's `init_module` returns for a failure of this kind, which the
    /// client turns into kmod's words (`ENOENT`: "Unknown symbol in module").
    var errnoValue: Int32 {
        switch kind {
        case .unreadableFile: EBADF
        case .undefinedSymbols: ENOENT
        case .alreadyLoaded: EEXIST
        case .outOfAddressSpace, .systemCallFailed: ENOMEM
        case .noObjects, .invalidParameter, .namespaceNotImported: EINVAL
        case .badSignature: EBADMSG
        case .signatureRejected: EKEYREJECTED
        case .initFailed: initResult.flatMap { $0 < 0 ? -$0 : nil } ?? EIO
        default: ENOEXEC
        }
    }
}

extension RemovalError {
    /// The errno of Linux's `delete_module` for a failure of this kind.
    var errnoValue: Int32 {
        switch kind {
        case .notFound: ENOENT
        case .usedByModules, .inUse, .notLive, .notRemovable: EBUSY
        case .unloadDisabled: ENOSYS
        case .timedOut: ETIMEDOUT
        case .systemCallFailed: EIO
        }
    }
}
