import Glibc
import HeraldLoop
import Testing

@Suite struct DescriptorPassingTests {
    private func pair() -> (Int32, Int32) {
        var fds: [Int32] = [0, 0]
        #expect(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &fds) == 0)
        return (fds[0], fds[1])
    }

    @Test func aPipePassedOverASocketCarriesDataWrittenOnTheOriginal() throws {
        let (a, b) = pair()
        defer { close(a); close(b) }
        var pipeFDs: [Int32] = [0, 0]
        #expect(pipe(&pipeFDs) == 0)
        let sent = try DescriptorPassing.send(on: a, bytes: Array("hello".utf8), descriptors: [pipeFDs[0]])
        #expect(sent == 5)
        close(pipeFDs[0])
        let (bytes, descriptors) = try DescriptorPassing.receive(on: b)
        #expect(bytes == Array("hello".utf8))
        #expect(descriptors.count == 1)
        let copy = try #require(descriptors.first)
        #expect(fcntl(copy, F_GETFD) & FD_CLOEXEC != 0)
        #expect(write(pipeFDs[1], "x", 1) == 1)
        var byte: UInt8 = 0
        #expect(read(copy, &byte, 1) == 1)
        #expect(byte == UInt8(ascii: "x"))
        close(copy); close(pipeFDs[1])
    }

    @Test func tooManyDescriptorsAreClosedAndReported() throws {
        let (a, b) = pair()
        defer { close(a); close(b) }
        let original = open("/dev/null", O_RDONLY)
        defer { close(original) }
        _ = try DescriptorPassing.send(on: a, bytes: [1], descriptors: [original, original, original])
        #expect(throws: SystemError.self) { try DescriptorPassing.receive(on: b, maximumDescriptors: 2) }
        // A message without descriptors still reads.
        _ = try DescriptorPassing.send(on: a, bytes: [2], descriptors: [])
        let (bytes, descriptors) = try DescriptorPassing.receive(on: b)
        #expect(bytes == [2] && descriptors.isEmpty)
    }

    @Test func endOfStreamReadsEmpty() throws {
        let (a, b) = pair()
        close(a)
        defer { close(b) }
        let (bytes, descriptors) = try DescriptorPassing.receive(on: b)
        #expect(bytes.isEmpty && descriptors.isEmpty)
    }
}
