/// Calls into module code at raw addresses with the C calling convention.
enum ModuleCode {
    typealias InitFunction = @convention(c) () -> Int32
    typealias VoidFunction = @convention(c) () -> Void
    typealias ArgumentFunction = @convention(c) (UnsafeMutableRawPointer?) -> Void
    typealias MainFunction = @convention(c) (Int32, UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?,
                                             UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32

    static func function<F>(_ address: UInt64, as type: F.Type) -> F {
        unsafeBitCast(UnsafeRawPointer(bitPattern: UInt(address))!, to: type)
    }

    static func callInit(_ address: UInt64) -> Int32 { function(address, as: InitFunction.self)() }
    static func callVoid(_ address: UInt64) { function(address, as: VoidFunction.self)() }
    static func call(_ address: UInt64, argument: UInt64) {
        function(address, as: ArgumentFunction.self)(UnsafeMutableRawPointer(bitPattern: UInt(argument)))
    }
}
