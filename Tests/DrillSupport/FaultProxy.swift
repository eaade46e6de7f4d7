import CRDTTestSupport
import Foundation
import NIOCore
import NIOPosix
import Synchronization

/// A TCP proxy on loopback that forwards bytes between clients and one upstream port and
/// injects network faults: latency with jitter, a bandwidth cap, a reset after N bytes in either
/// direction, a black hole (accepts, never answers), slicing into tiny segments, and a close in
/// the middle of a response.
///
/// It works below TLS: it forwards bytes, so TLS runs end to end between the replica and the
/// server, and a replica that pinned the server's certificate by fingerprint connects through
/// the proxy's port unchanged (the certificate is for 127.0.0.1, whatever the port). This stands
/// in for `tc netem` and Toxiproxy, which these machines do not have.
///
/// Every random decision (jitter, where a reset or a mid-response close falls) comes from a
/// ``SeededRandom`` derived from the proxy's seed and the connection's number, so a drill that
/// prints its seed replays the same fault decisions (thread timing still varies).
///
/// ```swift
/// let proxy = try await FaultProxy.start(upstreamPort: server.port, seed: 42)
/// proxy.set(FaultProxy.Faults(downstream: .init(latency: .milliseconds(200), jitter: .milliseconds(50))))
/// // point clients at proxy.url …
/// proxy.set(.none)
/// print(proxy.stats)
/// await proxy.stop()
/// ```
public final class FaultProxy: Sendable {
    /// Faults on one direction of every connection.
    public struct DirectionFaults: Sendable, Equatable, CustomStringConvertible {
        /// Added to every segment's delivery time.
        public var latency: Duration = .zero
        /// A uniformly random extra delay up to this, per segment (order is kept).
        public var jitter: Duration = .zero
        /// Bytes per second; nil is unlimited.
        public var bytesPerSecond: Int?
        /// When set, each connection is reset (TCP RST, both sides) after a random number of bytes
        /// in this range has passed in this direction.
        public var resetAfterBytes: ClosedRange<Int>?
        /// When set, data is cut into segments of at most this many bytes, each written and
        /// flushed on its own (TLS records arrive in pieces).
        public var sliceBytes: Int?

        public init(
            latency: Duration = .zero, jitter: Duration = .zero, bytesPerSecond: Int? = nil,
            resetAfterBytes: ClosedRange<Int>? = nil, sliceBytes: Int? = nil
        ) {
            self.latency = latency
            self.jitter = jitter
            self.bytesPerSecond = bytesPerSecond
            self.resetAfterBytes = resetAfterBytes
            self.sliceBytes = sliceBytes
        }

        public static let none = DirectionFaults()

        public var description: String {
            var parts = [String]()
            if latency != .zero || jitter != .zero { parts.append("latency \(latency)±\(jitter)") }
            if let bytesPerSecond { parts.append("cap \(bytesPerSecond) B/s") }
            if let resetAfterBytes { parts.append("reset after \(resetAfterBytes) B") }
            if let sliceBytes { parts.append("slices of \(sliceBytes) B") }
            return parts.isEmpty ? "clean" : parts.joined(separator: ", ")
        }
    }

    /// The faults in force; switch them at any time with ``set(_:)``.
    public struct Faults: Sendable, Equatable, CustomStringConvertible {
        /// Client → server.
        public var upstream: DirectionFaults
        /// Server → client.
        public var downstream: DirectionFaults
        /// New connections are accepted and then ignored; open connections go silent (their
        /// bytes vanish both ways) until the client gives up. Clearing it resets the silent ones.
        public var blackHole: Bool
        /// The chance that a response (server bytes following client bytes) is cut: a random
        /// prefix of its first segment is delivered, then both sides are closed cleanly (FIN).
        public var closeMidResponse: Double

        public init(
            upstream: DirectionFaults = .none, downstream: DirectionFaults = .none, blackHole: Bool = false,
            closeMidResponse: Double = 0
        ) {
            self.upstream = upstream
            self.downstream = downstream
            self.blackHole = blackHole
            self.closeMidResponse = closeMidResponse
        }

        /// No faults: a plain forwarder.
        public static let none = Faults()

        public var description: String {
            var parts = ["up: \(upstream)", "down: \(downstream)"]
            if blackHole { parts.append("black hole") }
            if closeMidResponse > 0 { parts.append("close mid-response p=\(closeMidResponse)") }
            return parts.joined(separator: "; ")
        }
    }

    /// What the proxy did so far.
    public struct Stats: Sendable, Equatable, CustomStringConvertible {
        public var connections = 0
        public var bytesUpstream = 0
        public var bytesDownstream = 0
        /// Connections reset by a `resetAfterBytes` fault.
        public var resets = 0
        /// Connections that met the black hole.
        public var blackHoled = 0
        /// Responses cut by `closeMidResponse`.
        public var midResponseCloses = 0
        /// Connections closed by ``resetAll()``.
        public var forcedResets = 0

        public init() {}

        public var description: String {
            "connections \(connections), bytes up \(bytesUpstream), down \(bytesDownstream), resets \(resets), "
                + "black-holed \(blackHoled), mid-response closes \(midResponseCloses), forced resets \(forcedResets)"
        }
    }

    /// The port the proxy listens on (127.0.0.1).
    public let port: Int
    /// Where it forwards to (127.0.0.1).
    public let upstreamPort: Int
    public let seed: UInt64
    private let listener: any Channel
    private let shared: Shared

    /// `https://127.0.0.1:PORT`: the URL a replica uses to reach the server through the proxy.
    public var url: String { "https://127.0.0.1:\(port)" }

    /// Listens on `127.0.0.1:listenPort` (0 picks a free port) and forwards to
    /// `127.0.0.1:upstreamPort`, with `faults` in force from the start.
    public static func start(
        listenPort: Int = 0, upstreamPort: Int, seed: UInt64, faults: Faults = .none
    ) async throws -> FaultProxy {
        let shared = Shared(seed: seed, upstreamPort: upstreamPort, faults: faults)
        let listener = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(ChannelOptions.socketOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let connection = ProxiedConnection(client: channel, shared: shared)
                    try channel.pipeline.syncOperations.addHandler(SideHandler(connection: connection, side: .client))
                }
            }
            .bind(host: "127.0.0.1", port: listenPort).get()
        guard let port = listener.localAddress?.port else { throw ProxyError("the proxy has no local port") }
        return FaultProxy(port: port, upstreamPort: upstreamPort, seed: seed, listener: listener, shared: shared)
    }

    private init(port: Int, upstreamPort: Int, seed: UInt64, listener: any Channel, shared: Shared) {
        self.port = port
        self.upstreamPort = upstreamPort
        self.seed = seed
        self.listener = listener
        self.shared = shared
    }

    /// Switches the faults; open connections follow the new ones from their next byte.
    public func set(_ faults: Faults) {
        let wasBlackHole = shared.state.withLock { state in
            let was = state.faults.blackHole
            state.faults = faults
            return was
        }
        // Faults clear: connections left silent by the black hole are reset so their clients
        // retry at once instead of waiting for their own timeouts.
        if wasBlackHole && !faults.blackHole {
            for connection in shared.connections(where: { $0.isSilent }) { connection.reset(forced: false) }
        }
    }

    public var faults: Faults { shared.state.withLock { $0.faults } }

    public var stats: Stats { shared.state.withLock { $0.stats } }

    /// The number of connections open now.
    public var openConnections: Int { shared.state.withLock { $0.open.count } }

    /// Resets (TCP RST) every open connection, as a network drop would.
    public func resetAll() {
        for connection in shared.connections(where: { _ in true }) { connection.reset(forced: true) }
    }

    /// Stops listening and resets every open connection.
    public func stop() async {
        try? await listener.close()
        resetAll()
    }

    // MARK: - Internals

    struct ProxyError: Error, CustomStringConvertible {
        let description: String
        init(_ description: String) { self.description = description }
    }

    /// State shared by the listener and all connections.
    final class Shared: Sendable {
        struct State {
            var faults: Faults
            var stats = Stats()
            var nextConnection: UInt64 = 0
            var open: [ObjectIdentifier: ProxiedConnection] = [:]
        }
        let seed: UInt64
        let upstreamPort: Int
        let state: Mutex<State>

        init(seed: UInt64, upstreamPort: Int, faults: Faults) {
            self.seed = seed
            self.upstreamPort = upstreamPort
            state = Mutex(State(faults: faults))
        }

        func connections(where predicate: (ProxiedConnection) -> Bool) -> [ProxiedConnection] {
            state.withLock { Array($0.open.values) }.filter(predicate)
        }

        func count(_ update: (inout Stats) -> Void) { state.withLock { update(&$0.stats) } }
    }
}

/// Which end of a proxied connection.
enum ProxySide: Sendable {
    case client
    case upstream

    var other: ProxySide { self == .client ? .upstream : .client }
}

/// One client connection and its upstream connection. Both channels live on the same event loop
/// and all of this object's state is touched only there; `@unchecked Sendable` because NIO's
/// closures are `@Sendable` and cannot see that confinement.
final class ProxiedConnection: @unchecked Sendable {
    /// What is queued for delivery to one side, in order.
    enum Item {
        case data(ByteBuffer)
        case reset
        case close
    }

    /// The delivery queue toward one side: items leave in order at their deadlines.
    struct Outgoing {
        var queue: [(deadline: NIODeadline, item: Item)] = []
        var head = 0
        var lastDeadline = NIODeadline.uptimeNanoseconds(0)
        var scheduled = false
        var forwarded = 0
        var resetAt: Int?
    }

    let client: any Channel
    var upstream: (any Channel)?
    let shared: FaultProxy.Shared
    let eventLoop: any EventLoop
    var random: SeededRandom
    /// Client bytes that arrived before the upstream connection was up.
    var early: [ByteBuffer] = []
    var toClient = Outgoing()
    var toUpstream = Outgoing()
    /// The last data came from the client: the next server bytes start a response.
    var awaitingResponse = false
    private let silent = Atomic<Bool>(false)
    var finished = false
    /// A reset or close is queued: later bytes are dropped (the connection is about to end).
    var doomed = false

    var isSilent: Bool { silent.load(ordering: .relaxed) }

    init(client: any Channel, shared: FaultProxy.Shared) {
        self.client = client
        self.shared = shared
        eventLoop = client.eventLoop
        let (number, faults) = shared.state.withLock { state in
            state.nextConnection += 1
            state.stats.connections += 1
            return (state.nextConnection, state.faults)
        }
        random = SeededRandom(seed: shared.seed &+ number &* 0x9E37_79B9_7F4A_7C15)
        shared.state.withLock { $0.open[ObjectIdentifier(self)] = self }
        if faults.blackHole {
            goSilent()
            return
        }
        let connection = self
        ClientBootstrap(group: eventLoop)
            .channelOption(ChannelOptions.socketOption(.tcp_nodelay), value: 1)
            .connectTimeout(.seconds(10))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(
                        SideHandler(connection: connection, side: .upstream))
                }
            }
            .connect(host: "127.0.0.1", port: shared.upstreamPort)
            .whenComplete { result in
                switch result {
                case .success(let channel):
                    connection.upstream = channel
                    if connection.finished {
                        channel.close(promise: nil)
                        return
                    }
                    for buffer in connection.early { connection.received(buffer, from: .client) }
                    connection.early = []
                case .failure:
                    // The server is down (a drill killed it): the client sees its connection drop.
                    connection.reset(forced: false)
                }
            }
    }

    private func goSilent() {
        if !silent.exchange(true, ordering: .relaxed) { shared.count { $0.blackHoled += 1 } }
    }

    /// Bytes arrived from `side`; they go to the other side through the faults in force.
    func received(_ buffer: ByteBuffer, from side: ProxySide) {
        guard !finished, !isSilent, !doomed else { return }
        if side == .client && upstream == nil {
            early.append(buffer)
            return
        }
        let faults = shared.state.withLock { $0.faults }
        if faults.blackHole {
            goSilent()
            return
        }
        let direction = side == .client ? faults.upstream : faults.downstream
        shared.count { stats in
            if side == .client {
                stats.bytesUpstream += buffer.readableBytes
            } else {
                stats.bytesDownstream += buffer.readableBytes
            }
        }
        var buffer = buffer
        var cutResponse = false
        if side == .upstream && awaitingResponse && faults.closeMidResponse > 0
            && random.chance(faults.closeMidResponse)
        {
            // Deliver a random prefix of the response's first segment, then close cleanly.
            let keep = random.int(0...max(0, buffer.readableBytes - 1))
            buffer = buffer.getSlice(at: buffer.readerIndex, length: keep)!
            cutResponse = true
        }
        awaitingResponse = side == .client
        enqueue(buffer, toward: side.other, faults: direction)
        if cutResponse {
            shared.count { $0.midResponseCloses += 1 }
            doomed = true
            // Closing after the prefix toward the client closes both sides (``close()``).
            append(.close, toward: .client, deadline: nil)
        }
    }

    private func enqueue(_ buffer: ByteBuffer, toward side: ProxySide, faults: FaultProxy.DirectionFaults) {
        var buffer = buffer
        // A reset fault: forward only up to the drawn byte count, then reset.
        // The byte count is drawn when the fault first applies to this connection and forgotten
        // when the fault is switched off, so switching faults at runtime reaches open connections.
        let draw = faults.resetAfterBytes.map { random.int($0) }
        let (forwarded, resetAt) = modify(side) { outgoing in
            if let draw {
                if outgoing.resetAt == nil { outgoing.resetAt = outgoing.forwarded + draw }
            } else {
                outgoing.resetAt = nil
            }
            return (outgoing.forwarded, outgoing.resetAt)
        }
        var resetAfter = false
        if let resetAt, forwarded + buffer.readableBytes >= resetAt {
            buffer = buffer.getSlice(at: buffer.readerIndex, length: max(0, resetAt - forwarded))!
            resetAfter = true
        }
        modify(side) { $0.forwarded += buffer.readableBytes }
        let slice = faults.sliceBytes.map { max(1, $0) } ?? max(1, buffer.readableBytes)
        while buffer.readableBytes > 0 {
            let piece = buffer.readSlice(length: min(slice, buffer.readableBytes))!
            var delay = faults.latency
            if faults.jitter > .zero {
                let nanos =
                    faults.jitter.components.seconds * 1_000_000_000
                    + faults.jitter.components.attoseconds / 1_000_000_000
                delay += .nanoseconds(Int64.random(in: 0...max(0, nanos), using: &random))
            }
            if let rate = faults.bytesPerSecond, rate > 0 {
                delay += .nanoseconds(Int64(piece.readableBytes) * 1_000_000_000 / Int64(rate))
            }
            let nanos = delay.components.seconds * 1_000_000_000 + delay.components.attoseconds / 1_000_000_000
            var deadline = NIODeadline.now() + .nanoseconds(nanos)
            // A bandwidth cap queues segments one after the other; latency alone does not.
            let last = side == .client ? toClient.lastDeadline : toUpstream.lastDeadline
            if let rate = faults.bytesPerSecond, rate > 0, last > .now() {
                deadline = max(deadline, last + .nanoseconds(Int64(piece.readableBytes) * 1_000_000_000 / Int64(rate)))
            }
            append(.data(piece), toward: side, deadline: deadline)
        }
        if resetAfter {
            doomed = true
            shared.count { $0.resets += 1 }
            append(.reset, toward: side, deadline: nil)
        }
    }

    /// Queues `item`; delivery keeps the order of the queue (a later deadline never overtakes).
    private func append(_ item: Item, toward side: ProxySide, deadline: NIODeadline?) {
        modify(side) { outgoing in
            let at = max(deadline ?? .now(), outgoing.lastDeadline)
            outgoing.lastDeadline = at
            outgoing.queue.append((at, item))
        }
        drain(side)
    }

    private func modify<T>(_ side: ProxySide, _ body: (inout Outgoing) -> T) -> T {
        side == .client ? body(&toClient) : body(&toUpstream)
    }

    private func drain(_ side: ProxySide) {
        guard !finished else { return }
        let target = side == .client ? client : upstream
        var flush = false
        while true {
            let next: (deadline: NIODeadline, item: Item)? = modify(side) { outgoing in
                guard outgoing.head < outgoing.queue.count else {
                    outgoing.queue.removeAll(keepingCapacity: true)
                    outgoing.head = 0
                    return nil
                }
                return outgoing.queue[outgoing.head]
            }
            guard let next else { break }
            if next.deadline > .now() {
                let alreadyScheduled = modify(side) { outgoing in
                    defer { outgoing.scheduled = true }
                    return outgoing.scheduled
                }
                if !alreadyScheduled {
                    eventLoop.scheduleTask(deadline: next.deadline) { [self] in
                        modify(side) { $0.scheduled = false }
                        drain(side)
                    }
                }
                break
            }
            modify(side) { $0.head += 1 }
            switch next.item {
            case .data(let buffer):
                target?.write(buffer, promise: nil)
                flush = true
            case .reset:
                if flush { target?.flush() }
                reset(forced: false)
                return
            case .close:
                if flush { target?.flush() }
                close()
                return
            }
        }
        if flush { target?.flush() }
    }

    /// One side closed: deliver what is queued toward the other, then close it.
    func sideClosed(_ side: ProxySide) {
        append(.close, toward: side.other, deadline: nil)
    }

    /// Closes both sides cleanly (FIN).
    func close() {
        guard !finished else { return }
        finished = true
        client.close(promise: nil)
        upstream?.close(promise: nil)
        forget()
    }

    /// Resets both sides (SO_LINGER 0 then close sends RST). Safe from any thread.
    func reset(forced: Bool) {
        eventLoop.execute { [self] in
            guard !finished else { return }
            finished = true
            if forced { shared.count { $0.forcedResets += 1 } }
            for channel in [client, upstream].compactMap({ $0 }) {
                if let provider = channel as? any SocketOptionProvider {
                    provider.setSoLinger(linger(l_onoff: 1, l_linger: 0)).whenComplete { _ in
                        channel.close(promise: nil)
                    }
                } else {
                    channel.close(promise: nil)
                }
            }
            forget()
        }
    }

    private func forget() {
        shared.state.withLock { _ = $0.open.removeValue(forKey: ObjectIdentifier(self)) }
    }
}

/// Reads one side's bytes into its connection.
final class SideHandler: ChannelInboundHandler, Sendable {
    typealias InboundIn = ByteBuffer

    let connection: ProxiedConnection
    let side: ProxySide

    init(connection: ProxiedConnection, side: ProxySide) {
        self.connection = connection
        self.side = side
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        connection.received(unwrapInboundIn(data), from: side)
    }

    func channelInactive(context: ChannelHandlerContext) {
        if connection.isSilent {
            connection.close()
        } else {
            connection.sideClosed(side)
        }
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        connection.reset(forced: false)
    }
}
