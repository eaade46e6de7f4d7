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
