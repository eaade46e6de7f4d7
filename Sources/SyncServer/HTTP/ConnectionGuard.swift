import HummingbirdCore
import Logging
import NIOCore
import NIOSSL
import NIOTLS
import Synchronization

/// What a connection may cost the server before it is dropped: the holes NIOHTTP2 and
/// Hummingbird 2.28.1 leave open, found by the HTTP/2 abuse drill (docs/reliability.md §9).
///
/// - A TLS handshake that never completes (a client that connects and stays silent, or stops
///   halfway through its ClientHello) held its connection forever: nothing times it out.
/// - An idle HTTP/2 connection gets GOAWAY and a PING; Hummingbird arms its close timer only when
///   the PING is acknowledged, so a client that never answers kept its connection forever.
///
/// (The number of open connections is capped by Hummingbird's `MaximumAvailableConnections`:
/// at the cap the server stops accepting, and new clients wait in the listen backlog until a
/// connection closes — see `SyncServerApp`.)
struct ConnectionLimits: Sendable {
    /// The TLS handshake must complete within this.
    var handshake: Duration
    /// After the server's first GOAWAY (idle connection, graceful shutdown), the peer has this
    /// long to finish its streams and close; then the connection is closed. Longer than
    /// Hummingbird's own grace period, so a well-behaved peer is always closed by it first.
    var afterGoAway: Duration
}

/// The open connections of one server, and why connections were dropped (for /metrics).
final class ConnectionCensus: Sendable {
    enum DropReason: String, CaseIterable, Sendable {
        case handshakeTimeout = "handshake-timeout"
        case goAwayIgnored = "goaway-ignored"
    }

    /// Read at scrape time (setting a gauge from each event loop could leave it stale: two
    /// loops' updates may land out of order).
    let open = Atomic<Int>(0)
    private let onDrop: @Sendable (DropReason) -> Void

    init(onDrop: @escaping @Sendable (DropReason) -> Void = { _ in }) {
        self.onDrop = onDrop
    }

    func enter() { open.add(1, ordering: .relaxed) }
    func leave() { open.subtract(1, ordering: .relaxed) }
    func dropped(_ reason: DropReason) { onDrop(reason) }
}

/// Wraps a Hummingbird child channel (HTTP/2 with TLS and ALPN, or cleartext HTTP/2) with a
/// ``ConnectionGuardHandler`` in front of its HTTP handlers: after the TLS handler, where the
/// handshake's completion is seen and HTTP/2 frames are plaintext.
struct GuardedChannel<Inner: ServerChildChannel>: ServerChildChannel {
    typealias Value = Inner.Value
    let inner: Inner
    let limits: ConnectionLimits
    let census: ConnectionCensus

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        let future = inner.setup(channel: channel, logger: logger)
        do {
            let operations = channel.pipeline.syncOperations
            // The inner setup has added its TLS handler by now (synchronously, on the event loop).
            if let tls = try? operations.handler(type: NIOSSLServerHandler.self) {
                try operations.addHandler(
                    ConnectionGuardHandler(limits: limits, census: census, tls: true), position: .after(tls))
            } else {
                try operations.addHandler(
                    ConnectionGuardHandler(limits: limits, census: census, tls: false), position: .first)
            }
        } catch {
            channel.close(promise: nil)
            return channel.eventLoop.makeFailedFuture(error)
        }
        return future
    }

    func handle(value: Value, logger: Logger) async {
        await inner.handle(value: value, logger: logger)
    }
}

/// Enforces ``ConnectionLimits`` on one connection. It passes every byte through unchanged and
/// only watches: the TLS handshake's completion (and its ALPN protocol) inbound, the frame
/// types of HTTP/2 outbound.
final class ConnectionGuardHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = IOData
    typealias OutboundOut = IOData

    private let limits: ConnectionLimits
    private let census: ConnectionCensus
    private var handshakeTimer: Scheduled<Void>?
    private var goAwayTimer: Scheduled<Void>?
    /// Nil when the connection speaks HTTP/1.1 (ALPN): its own idle timeout closes it.
    private var frames: HTTP2FrameScanner? = HTTP2FrameScanner()
    private var counted = false
    private let tls: Bool

    init(limits: ConnectionLimits, census: ConnectionCensus, tls: Bool) {
        self.limits = limits
        self.census = census
        self.tls = tls
    }

    func handlerAdded(context: ChannelHandlerContext) {
        census.enter()
        counted = true
        if tls {
            let bound = NIOLoopBound(context, eventLoop: context.eventLoop)
            handshakeTimer = context.eventLoop.scheduleTask(in: TimeAmount(limits.handshake)) { [census] in
                census.dropped(.handshakeTimeout)
                bound.value.close(promise: nil)
            }
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        handshakeTimer?.cancel()
        goAwayTimer?.cancel()
        if counted {
            counted = false
            census.leave()
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case TLSUserEvent.handshakeCompleted(let negotiated) = event {
            handshakeTimer?.cancel()
            handshakeTimer = nil
            if negotiated != "h2" { frames = nil }
        }
        context.fireUserInboundEventTriggered(event)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if goAwayTimer == nil, case .byteBuffer(let buffer) = unwrapOutboundIn(data),
            frames?.scan(buffer.readableBytesView) == true
        {
            let bound = NIOLoopBound(context, eventLoop: context.eventLoop)
            goAwayTimer = context.eventLoop.scheduleTask(in: TimeAmount(limits.afterGoAway)) { [census] in
                census.dropped(.goAwayIgnored)
                bound.value.close(promise: nil)
            }
        }
        context.write(data, promise: promise)
    }
}

/// Follows the frame boundaries of an HTTP/2 byte stream however it is cut into writes, and
/// reports GOAWAY frames. Frames are a 9-byte header (24-bit length, type, flags, stream)
/// followed by `length` bytes of payload.
struct HTTP2FrameScanner: Sendable {
    static let goAway: UInt8 = 0x7
    private var header = [UInt8]()
    private var payloadLeft = 0

    /// Scans the next bytes of the stream; true when a GOAWAY frame header was among them.
    mutating func scan(_ bytes: some Collection<UInt8>) -> Bool {
        var sawGoAway = false
        var index = bytes.startIndex
        while index != bytes.endIndex {
            if payloadLeft > 0 {
                let step = min(payloadLeft, bytes.distance(from: index, to: bytes.endIndex))
                payloadLeft -= step
                index = bytes.index(index, offsetBy: step)
                continue
            }
            header.append(bytes[index])
            index = bytes.index(after: index)
            if header.count == 9 {
                payloadLeft = Int(header[0]) << 16 | Int(header[1]) << 8 | Int(header[2])
                if header[3] == Self.goAway { sawGoAway = true }
                header.removeAll(keepingCapacity: true)
            }
        }
        return sawGoAway
    }
}
