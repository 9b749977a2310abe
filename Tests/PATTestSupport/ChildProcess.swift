// Child processes for tests, awaited without blocking the cooperative pool (swift-subprocess
// watches exit and pipes on its own I/O thread) and always bounded in time.
//
//   // Run to completion (output collected, stdin from `input` or empty):
//   let result = try await ChildProcess.run(binary, ["keys", "generate"], environment: env)
//   #expect(result.status == 0, "\(result.stderr)")
//
//   // A server: talk to it in `body`, stop it there (signal), then it must exit within `stopWithin`:
//   let (value, result) = try await ChildProcess.withRunning(binary, ["serve", …]) { child in
//       try await awaitCondition("it answers") { … }
//       try child.signal(SIGTERM)
//   }
//
// A child that outlives its limit (`timeLimit` overall, `stopWithin` after `body` returned) is
// killed with SIGKILL, an issue naming the command is recorded at the caller and
// `TimeLimitExceeded` is thrown: a regression fails fast instead of hanging the suite.
import Subprocess
import Synchronization
import SystemPackage
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// How a child process ended and what it printed.
public struct ProcessResult: Sendable, CustomStringConvertible {
    /// The command, for messages.
    public let command: String
    /// The exit status, or nil when a signal ended the process.
    public let exitStatus: Int32?
    /// The signal that ended the process, if one did.
    public let terminatingSignal: Int32?
    public let stdout: String
    public let stderr: String

    /// The exit status, or 128 + the signal number (as a shell reports it).
    public var status: Int32 { exitStatus ?? 128 + (terminatingSignal ?? 0) }
    /// True when the process exited with status 0.
    public var succeeded: Bool { exitStatus == 0 }
    /// stdout without its final newline.
    public var output: String { stdout.hasSuffix("\n") ? String(stdout.dropLast()) : stdout }

    public var description: String {
        let end = exitStatus.map { "exited \($0)" } ?? "killed by signal \(terminatingSignal ?? 0)"
        return "`\(command)` \(end)\nstdout: \(stdout.suffix(2000))\nstderr: \(stderr.suffix(2000))"
    }
}

/// A child started by `ChildProcess.withRunning`, valid inside its body.
public struct RunningChild: Sendable {
    public let pid: Int32
    public let command: String
    let send: @Sendable (Int32) throws -> Void
    let errors: LineLog

    /// Sends `signal` (e.g. SIGTERM) to the child.
    public func signal(_ signal: Int32) throws { try send(signal) }

    /// What the child wrote to standard error so far.
    public var stderr: String { errors.text }

    /// Waits until the child writes a line to standard error containing `text`, and returns
    /// that line; nil when its standard error closed (it exited) without one. Bound it with
    /// `withTimeLimit` (or rely on the process's own limit).
    public func stderrLine(containing text: String) async -> String? {
        await errors.line(containing: text)
    }
}

public enum ChildProcess {
    /// The default bound of a child's whole run.
    public static let defaultTimeLimit: Duration = .seconds(120)
    /// Output kept per stream.
    static let outputLimit = 16 * 1024 * 1024

    /// Runs `executable` to completion. `environment` nil inherits this process's; `input` goes
    /// to standard input (empty when nil). Past `timeLimit` the child is killed, an issue is
    /// recorded and `TimeLimitExceeded` thrown.
    public static func run(_ executable: String, _ arguments: [String], environment: [String: String]? = nil,
                           input: [UInt8]? = nil, timeLimit: Duration = defaultTimeLimit,
                           sourceLocation: SourceLocation = #_sourceLocation) async throws -> ProcessResult {
        let command = describe(executable, arguments)
        return try await withTimeLimit(timeLimit, "`\(command)` to exit", sourceLocation: sourceLocation) {
            let environment = subprocessEnvironment(environment)
            if let input {
                let result = try await Subprocess.run(.path(FilePath(executable)), arguments: Arguments(arguments),
                                                      environment: environment, input: .array(input),
                                                      output: .string(limit: outputLimit), error: .string(limit: outputLimit))
                return ProcessResult(command: command, result.terminationStatus, stdout: result.standardOutput,
                                     stderr: result.standardError)
            }
            let result = try await Subprocess.run(.path(FilePath(executable)), arguments: Arguments(arguments),
                                                  environment: environment, input: .none,
                                                  output: .string(limit: outputLimit), error: .string(limit: outputLimit))
            return ProcessResult(command: command, result.terminationStatus, stdout: result.standardOutput,
                                 stderr: result.standardError)
        }
    }

    /// Starts `executable`, runs `body` with it, then waits for it to exit (`body` stops it,
    /// e.g. with a signal, or lets it finish). Past `timeLimit` overall, or `stopWithin` after
    /// `body` returned, the child is killed, an issue recorded and `TimeLimitExceeded` thrown.
    /// Standard input is empty; standard error is readable line by line while it runs.
    public static func withRunning<T: Sendable>(
        _ executable: String, _ arguments: [String], environment: [String: String]? = nil,
        timeLimit: Duration = defaultTimeLimit, stopWithin: Duration = .seconds(30),
        sourceLocation: SourceLocation = #_sourceLocation,
        _ body: @escaping @Sendable (RunningChild) async throws -> T
    ) async throws -> (T, ProcessResult) {
        let command = describe(executable, arguments)
        let race = Race<(T, ProcessResult)>()
        let work = Task {
            race.finish(await Race.outcome {
                let errors = LineLog()
                let result = try await Subprocess.run(
                    .path(FilePath(executable)), arguments: Arguments(arguments),
                    environment: subprocessEnvironment(environment),
                    input: .none, output: .string(limit: outputLimit), error: .sequence
                ) { execution in
                    let child = RunningChild(pid: execution.processIdentifier.value, command: command,
                                             send: { try execution.send(signal: Signal(rawValue: $0)) }, errors: errors)
                    return try await withThrowingTaskGroup(of: T?.self) { group in
                        group.addTask {
                            // Drained to the end (the child's exit), so it never blocks on a full pipe.
                            for try await line in execution.standardError.strings() { errors.append(line) }
                            errors.close()
                            return nil
                        }
                        let value: T
                        do {
                            value = try await body(child)
                        } catch {
                            // Stop the child so that its standard error ends, then report.
                            try? child.signal(SIGKILL)
                            throw error
                        }
                        // From here on the child must exit within `stopWithin`.
                        let stopTimer = Task {
                            do { try await Task.sleep(for: stopWithin) } catch { return }
                            race.finish(.timedOut)
                        }
                        defer { stopTimer.cancel() }
                        try await group.waitForAll()
                        return value
                    }
                }
                return (result.closureResult, ProcessResult(command: command, result.terminationStatus,
                                                           stdout: result.standardOutput, stderr: errors.text))
            })
        }
        let timer = Task {
            do { try await Task.sleep(for: timeLimit) } catch { return }
            race.finish(.timedOut)
        }
        let outcome = await withTaskCancellationHandler { await race.wait() } onCancel: { race.finish(.cancelled) }
        timer.cancel()
        switch outcome {
        case .value(let value):
            return value
        case .failure(let error):
            throw error
        case .timedOut:
            work.cancel() // swift-subprocess kills the child (SIGKILL) when its task is cancelled
            Issue.record("`\(command)` did not exit in time (limit \(timeLimit) overall, \(stopWithin) once told to stop); killed it",
                         sourceLocation: sourceLocation)
            _ = await Race<Void>.first(of: { _ = await work.result }, orAfter: .seconds(10))
            throw TimeLimitExceeded("`\(command)` did not exit in time")
        case .cancelled:
            work.cancel()
            throw CancellationError()
        }
    }

    static func describe(_ executable: String, _ arguments: [String]) -> String {
        let name = executable.split(separator: "/").last.map(String.init) ?? executable
        let text = ([name] + arguments).joined(separator: " ")
        return text.count > 200 ? String(text.prefix(200)) + "…" : text
    }

    static func subprocessEnvironment(_ environment: [String: String]?) -> Environment {
        guard let environment else { return .inherit }
        var values: [Environment.Key: String] = [:]
        for (key, value) in environment { values[Environment.Key(stringLiteral: key)] = value }
        return .custom(values)
    }
}

extension ProcessResult {
    init(command: String, _ status: TerminationStatus, stdout: String, stderr: String) {
        self.command = command
        switch status {
        case .exited(let code):
            exitStatus = code
            terminatingSignal = nil
        case .signaled(let signal):
            exitStatus = nil
            terminatingSignal = signal
        }
        self.stdout = stdout
        self.stderr = stderr
    }
}

/// Standard error lines of a running child, with waiting for a line.
final class LineLog: Sendable {
    private struct State {
        var lines: [String] = []
        var closed = false
        var waiters: [(text: String, continuation: CheckedContinuation<String?, Never>)] = []
    }

    private let state = Mutex(State())

    var text: String { state.withLock { $0.lines.map { $0 + "\n" }.joined() } }

    func append(_ line: String) {
        let ready = state.withLock { s -> [CheckedContinuation<String?, Never>] in
            s.lines.append(line)
            let (due, rest) = (s.waiters.filter { line.contains($0.text) }, s.waiters.filter { !line.contains($0.text) })
            s.waiters = rest
            return due.map(\.continuation)
        }
        for waiter in ready { waiter.resume(returning: line) }
    }

    func close() {
        let waiters = state.withLock { s -> [CheckedContinuation<String?, Never>] in
            s.closed = true
            defer { s.waiters = [] }
            return s.waiters.map(\.continuation)
        }
        for waiter in waiters { waiter.resume(returning: nil) }
    }

    func line(containing text: String) async -> String? {
        await withCheckedContinuation { continuation in
            enum Now { case line(String), closed, wait }
            let now: Now = state.withLock { s in
                if let line = s.lines.first(where: { $0.contains(text) }) { return .line(line) }
                if s.closed { return .closed }
                s.waiters.append((text, continuation))
                return .wait
            }
            switch now {
            case .line(let line): continuation.resume(returning: line)
            case .closed: continuation.resume(returning: nil)
            case .wait: break
            }
        }
    }
}
