#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Buffered reading of a file descriptor for `pat scan`: whole streams in chunks, lines of a
/// protocol (`git cat-file --batch`), and exact byte counts, with one fixed buffer (memory
/// stays bounded whatever the input). Does not own the descriptor.
final class DescriptorReader {
    struct ReadError: Error, CustomStringConvertible {
        let description: String
    }

    let fd: Int32
    private let buffer: UnsafeMutableRawBufferPointer
    private var start = 0
    private var end = 0
    private(set) var atEOF = false

    static let defaultCapacity = 1 << 20

    init(fd: Int32, capacity: Int = DescriptorReader.defaultCapacity) {
        self.fd = fd
        buffer = .allocate(byteCount: max(capacity, 64 * 1024), alignment: 16)
    }

    deinit { buffer.deallocate() }

    /// Bytes held but not consumed.
    var buffered: Int { end - start }

    /// Reads once more into the free end of the buffer (moving what is held to its front
    /// first); false at end of file.
    private func fill() throws(ReadError) -> Bool {
        if atEOF { return false }
        if start > 0 {
            if end > start, let base = buffer.baseAddress { memmove(base, base + start, end - start) }
            end -= start
            start = 0
        }
        guard end < buffer.count, let base = buffer.baseAddress else { return true }
        while true {
            let n = read(fd, base + end, buffer.count - end)
            if n < 0 {
                if errno == EINTR { continue }
                throw ReadError(description: "read failed: \(String(cString: strerror(errno)))")
            }
            if n == 0 { atEOF = true; return false }
            end += n
            return true
        }
    }

    /// Makes at least `count` bytes available (fewer only at end of file); returns them, valid
    /// until the next call.
    func peek(_ count: Int) throws(ReadError) -> UnsafeRawBufferPointer {
        let want = min(count, buffer.count)
        while buffered < want, try fill() {}
        return UnsafeRawBufferPointer(rebasing: buffer[start..<(start + min(want, buffered))])
    }

    /// Passes the next `limit` bytes (all until end of file when nil) to `body` in chunks,
    /// consuming them. Returns how many were passed (fewer than `limit` only at end of file).
    @discardableResult
    func consume(upTo limit: Int?, _ body: (UnsafeRawBufferPointer) throws -> Void) throws -> Int {
        var passed = 0
        while limit.map({ passed < $0 }) ?? true {
            if buffered == 0 {
                guard try fill() else { break }
            }
            let take = min(buffered, limit.map { $0 - passed } ?? Int.max)
            let chunk = UnsafeRawBufferPointer(rebasing: buffer[start..<(start + take)])
            start += take
            passed += take
            try body(chunk)
        }
        return passed
    }

    /// The next line without its `\n`; nil at end of file. A line longer than `maxBytes` is
    /// an error (protocol output, not user data).
    func readLine(maxBytes: Int = 64 * 1024) throws(ReadError) -> [UInt8]? {
        var scanned = 0
        while true {
            let held = UnsafeRawBufferPointer(rebasing: buffer[(start + scanned)..<end])
            if let newline = held.firstIndex(of: 0x0A) {
                let lineEnd = start + scanned + (newline - held.startIndex)
                let line = Array(UnsafeRawBufferPointer(rebasing: buffer[start..<lineEnd]))
                start = lineEnd + 1
                return line
            }
            scanned = buffered
            guard scanned <= maxBytes else { throw ReadError(description: "a line longer than \(maxBytes) bytes") }
            guard try fill() else {
                guard buffered > 0 else { return nil }
                let line = Array(UnsafeRawBufferPointer(rebasing: buffer[start..<end]))
                start = end
                return line
            }
        }
    }
}
