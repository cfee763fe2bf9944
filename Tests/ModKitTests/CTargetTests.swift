import Testing

/// Runs the C target's own tests (module.h in every language mode, the host API, reference
/// counting in every mode and under the sanitizers) as part of `swift test`.
@Test(.timeLimit(.minutes(10)))
func cTargetTestsPass() async throws {
    let result = try await runProcess("/bin/bash", [PackagePaths.root + "/Tests/c/run.sh"], timeout: .seconds(540))
    #expect(result.status == 0, "\(result)")
    let summary = result.standardOutput.split(separator: "\n").last { $0.hasPrefix("c-tests:") }
    #expect(summary?.hasSuffix(" 0 failed") == true, "\(result)")
}
