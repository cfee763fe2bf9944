import CModKit

extension ModuleHost {
    /// Sets the module's parameters from the load's parameter string, before its init runs.
    ///
    /// A value that does not parse as the parameter's type fails the load, which is undone
    /// completely. An unknown name is logged and ignored, as the kernel does.
    func setParameters(_ text: String, of module: Module) throws(LoadError) {
        for assignment in ParameterString.parse(text) {
            guard let parameter = module.allParameters.first(where: { ParameterString.normalize($0.name) == assignment.name }) else {
                log(4, module: module.name, "unknown parameter '\(assignment.name)' ignored")
                continue
            }
            let problem = module.parameterStrings.withLock { owned in
                ParameterValue.set(parameter, to: assignment.value, owned: &owned)
            }
            if let problem {
                unpublish(module)
                discard(module)
                let shown = assignment.value.map { "'\($0)'" } ?? "(no value)"
                throw LoadError(.invalidParameter, file: module.files.first ?? "", symbol: parameter.name,
                                "module \(module.name): invalid value \(shown) for parameter '\(parameter.name)' (\(parameter.type)): \(problem)")
            }
        }
    }

    /// The value of a visible parameter, as the kernel prints it in sysfs.
    public func parameterValue(module name: String, parameter: String) throws(ParameterError) -> String {
        let (module, found) = try visibleParameter(module: name, parameter: parameter)
        return try withReference(to: module, parameter: found) {
            module.parameterStrings.withLock { _ in ParameterValue.get(found) }
        }
    }

    /// Sets a writable parameter of a live module.
    public func setParameter(module name: String, parameter: String, to value: String) throws(ParameterError) {
        let (module, found) = try visibleParameter(module: name, parameter: parameter)
        guard found.isWritable else {
            throw ParameterError(kind: .readOnly, module: name, parameter: found.name,
                                 message: "parameter '\(found.name)' of module \(name) is read-only (mode \(String(found.permissions, radix: 8)))")
        }
        let problem = try withReference(to: module, parameter: found) {
            module.parameterStrings.withLock { owned in ParameterValue.set(found, to: value, owned: &owned) }
        }
        if let problem {
            throw ParameterError(kind: .invalidValue, module: name, parameter: found.name,
                                 message: "invalid value '\(value)' for parameter '\(found.name)' (\(found.type)) of module \(name): \(problem)")
        }
    }

    /// The visible parameters of a module, sorted by name, with their current values.
    public func parameters(of name: String) throws(ParameterError) -> [(parameter: ModuleParameter, value: String)] {
        guard let module = module(named: name) else {
            throw ParameterError(kind: .notFound, module: name, parameter: "", message: "module \(name) is not loaded")
        }
        var result: [(ModuleParameter, String)] = []
        for parameter in module.parameters.sorted(by: { $0.name < $1.name }) {
            result.append((parameter, try parameterValue(module: name, parameter: parameter.name)))
        }
        return result
    }

    private func visibleParameter(module name: String, parameter: String) throws(ParameterError) -> (Module, ModuleParameter) {
        guard let module = module(named: name) else {
            throw ParameterError(kind: .notFound, module: name, parameter: parameter, message: "module \(name) is not loaded")
        }
        let wanted = ParameterString.normalize(parameter)
        guard let found = module.allParameters.first(where: { ParameterString.normalize($0.name) == wanted && $0.isVisible }) else {
            throw ParameterError(kind: .notFound, module: name, parameter: parameter,
                                 message: "module \(name) has no parameter '\(parameter)'")
        }
        return (module, found)
    }

    /// Holds a reference on the module while its parameter memory (and any `cb` operation,
    /// which is module code) is used.
    private func withReference<R>(to module: Module, parameter: ModuleParameter, _ body: () -> R) throws(ParameterError) -> R {
        guard module.tryGet() else {
            throw ParameterError(kind: .moduleGoingAway, module: module.name, parameter: parameter.name,
                                 message: "\(module.name) is going away")
        }
        defer { module.put() }
        return body()
    }
}

extension Module {
    /// The parameters that are visible (permission bits not 0).
    public var parameters: [ModuleParameter] {
        allParameters.filter(\.isVisible)
    }
}
