import Foundation
import NIOCore
import NIOPosix
import NIOSSL
import Synchronization

/// A raw HTTP/2 connection over TLS (ALPN "h2") that writes whatever frames a test builds, the
/// way an attacker would: no client-side state machine stands between the test and the wire.
/// It reads the server's frames only to notice GOAWAY, and records when the server closed it.
final class RawHTTP2Connection: Sendable {
    let channel: any Channel
    private let seen: Observed

    /// What came back from the server.
    final class Observed: Sendable {
        let goAway = Mutex<UInt32?>(nil)
        let frames = Mutex(0)
        let buffer = Mutex([UInt8]())
    }

    static func connect(port: Int, certificatePath: String) async throws -> RawHTTP2Connection {
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(certificatePath))
        tls.applicationProtocols = ["h2"]
        let context = try NIOSSLContext(configuration: tls)
        let seen = Observed()
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    // The certificate is for 127.0.0.1; no SNI for an IP address.
                    try channel.pipeline.syncOperations.addHandler(
                        try NIOSSLClientHandler(context: context, serverHostname: nil))
                    try channel.pipeline.syncOperations.addHandler(FrameWatcher(seen: seen))
                }
            }
            .connect(host: "127.0.0.1", port: port).get()
        let connection = RawHTTP2Connection(channel: channel, seen: seen)
        // The client preface and an empty SETTINGS frame: a well-formed start.
        try await connection.send(Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8) + Frame.settings())
        return connection
    }

    /// A plain TCP connection to the TLS port that sends `bytes` (nothing, or the start of a
    /// ClientHello) and then stays silent: a handshake that never completes.
    static func connectWithoutHandshake(port: Int, sending bytes: [UInt8] = []) async throws -> RawHTTP2Connection {
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connect(host: "127.0.0.1", port: port).get()
        let connection = RawHTTP2Connection(channel: channel, seen: Observed())
        if !bytes.isEmpty { try await connection.send(bytes) }
        return connection
    }

    private init(channel: any Channel, seen: Observed) {
        self.channel = channel
        self.seen = seen
    }

    var isOpen: Bool { channel.isActive }
    /// The error code of the server's GOAWAY, if one came.
    var goAwayCode: UInt32? { seen.goAway.withLock { $0 } }

    func send(_ bytes: [UInt8]) async throws {
        try await channel.writeAndFlush(ByteBuffer(bytes: bytes)).get()
    }

    /// Writes frames until the server closes the connection or `limit` frames were written;
    /// returns how many were written.
    func flood(limit: Int, batch: Int = 50, next: (Int) -> [UInt8]) async -> Int {
        var sent = 0
        while sent < limit && channel.isActive {
            var bytes = [UInt8]()
            for index in sent..<min(limit, sent + batch) { bytes += next(index) }
            do { try await send(bytes) } catch { break }
            sent = min(limit, sent + batch)
        }
        return sent
    }

    /// Waits until the server closed the connection, up to `bound`; true when it did.
    func closedWithin(_ bound: Duration) async -> Bool {
        let deadline = ContinuousClock.now + bound
        while ContinuousClock.now < deadline {
            if !channel.isActive { return true }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return !channel.isActive
    }

    func close() async { try? await channel.close() }

    /// Reads frame headers from the decrypted stream and remembers a GOAWAY.
    final class FrameWatcher: ChannelInboundHandler, Sendable {
        typealias InboundIn = ByteBuffer
        let seen: Observed

        init(seen: Observed) { self.seen = seen }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            var buffer = unwrapInboundIn(data)
            let bytes = buffer.readBytes(length: buffer.readableBytes) ?? []
            seen.buffer.withLock { pending in
                pending += bytes
                while pending.count >= 9 {
                    let length = Int(pending[0]) << 16 | Int(pending[1]) << 8 | Int(pending[2])
                    guard pending.count >= 9 + length else { break }
                    seen.frames.withLock { $0 += 1 }
                    if pending[3] == Frame.goAwayType && length >= 8 {
                        let code = pending[13...16].reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
                        seen.goAway.withLock { $0 = code }
                    }
                    pending.removeFirst(9 + length)
                }
            }
        }
    }
}

/// HTTP/2 frames as bytes (RFC 9113 §4.1: 24-bit length, type, flags, 31-bit stream ID).
enum Frame {
    static let goAwayType: UInt8 = 0x7

    static func frame(type: UInt8, flags: UInt8 = 0, stream: UInt32 = 0, payload: [UInt8] = []) -> [UInt8] {
        let length = payload.count
        return [
            UInt8(length >> 16 & 0xFF), UInt8(length >> 8 & 0xFF), UInt8(length & 0xFF), type, flags,
            UInt8(stream >> 24 & 0x7F), UInt8(stream >> 16 & 0xFF), UInt8(stream >> 8 & 0xFF), UInt8(stream & 0xFF),
        ] + payload
    }

    static func settings(_ pairs: [(UInt16, UInt32)] = []) -> [UInt8] {
        var payload = [UInt8]()
        for (identifier, value) in pairs {
            payload += [UInt8(identifier >> 8), UInt8(identifier & 0xFF)]
            payload += [UInt8(value >> 24), UInt8(value >> 16 & 0xFF), UInt8(value >> 8 & 0xFF), UInt8(value & 0xFF)]
        }
        return frame(type: 0x4, payload: payload)
    }

    static func ping(_ counter: Int) -> [UInt8] {
        frame(type: 0x6, payload: (0..<8).map { UInt8(truncatingIfNeeded: counter >> ($0 * 8)) })
    }

    /// A GET /healthz request block in HPACK: indexed `:method GET` (2) and `:scheme https` (7),
    /// literal `:path` (name index 4) and `:authority` (name index 1), without indexing.
    static let requestBlock: [UInt8] =
        [0x82, 0x87, 0x04, 8] + Array("/healthz".utf8) + [0x01, 9] + Array("127.0.0.1".utf8)

    static func headers(stream: UInt32, block: [UInt8] = requestBlock, endHeaders: Bool = true) -> [UInt8] {
        frame(type: 0x1, flags: (endHeaders ? 0x4 : 0) | 0x1, stream: stream, payload: block)
    }

    static func continuation(stream: UInt32, block: [UInt8], endHeaders: Bool = false) -> [UInt8] {
        frame(type: 0x9, flags: endHeaders ? 0x4 : 0, stream: stream, payload: block)
    }

    /// RST_STREAM with CANCEL (0x8), as a "rapid reset" client sends right after HEADERS.
    static func reset(stream: UInt32) -> [UInt8] { frame(type: 0x3, stream: stream, payload: [0, 0, 0, 0x8]) }

    /// A literal header without indexing, `x-pad: <count bytes>` (HPACK length as a 7-bit prefix integer).
    static func padding(_ count: Int) -> [UInt8] {
        var bytes: [UInt8] = [0x00, 5] + Array("x-pad".utf8)
        if count < 127 {
            bytes.append(UInt8(count))
        } else {
            bytes.append(0x7F)
            var rest = count - 127
            while rest >= 128 {
                bytes.append(UInt8(rest & 0x7F) | 0x80)
                rest >>= 7
            }
            bytes.append(UInt8(rest))
        }
        return bytes + [UInt8](repeating: 0x61, count: count)
    }
}
