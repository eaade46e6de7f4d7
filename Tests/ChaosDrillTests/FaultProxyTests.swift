import CRDT
import CRDTTestSupport
import Domain
import DomainTestSupport
import DrillSupport
import Foundation
import LocalStorage
import NIOCore
import NIOPosix
import Replica
import StoreSupport
import Synchronization
import SystemTestSupport
import Testing

/// The drills' own instruments: the fault proxy does what it says (against an echo server on
/// loopback), and the verdict does catch a lost and a duplicated write — otherwise drills 1–3
/// could pass while proving nothing.
@Suite("Drill instruments: fault proxy and verdict")
struct FaultProxyTests {
    @Test("a clean proxy forwards every byte in order, also in 1-byte segments with latency")
    func forwardsInOrder() async throws {
        let echo = try await EchoServer.start()
        let proxy = try await FaultProxy.start(upstreamPort: echo.port, seed: 1)
        let payload = (0..<20_000).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        #expect(try await EchoClient.roundTrip(payload, port: proxy.port).bytes == payload)
        proxy.set(
            .init(
                upstream: .init(latency: .milliseconds(5), jitter: .milliseconds(20), sliceBytes: 1),
                downstream: .init(jitter: .milliseconds(10), bytesPerSecond: 400_000, sliceBytes: 7)))
        #expect(try await EchoClient.roundTrip(payload, port: proxy.port).bytes == payload)
        #expect(proxy.stats.bytesUpstream == 2 * payload.count && proxy.stats.bytesDownstream == 2 * payload.count)
        await proxy.stop()
        try await echo.close()
    }

    @Test("reset after N bytes cuts the connection within the drawn range; black hole never answers")
    func resetsAndBlackHole() async throws {
        let echo = try await EchoServer.start()
        let proxy = try await FaultProxy.start(
            upstreamPort: echo.port, seed: 2, faults: .init(downstream: .init(resetAfterBytes: 1_000...3_000)))
        let payload = [UInt8](repeating: 7, count: 20_000)
        let cut = try await EchoClient.roundTrip(payload, port: proxy.port)
        // At most the drawn count arrives (a reset may also discard what the kernel still held).
        #expect(cut.closed && cut.bytes.count <= 3_000, "received \(cut.bytes.count)")
        #expect(proxy.stats.resets == 1)
        proxy.set(.init(blackHole: true))
        let silent = try await EchoClient.roundTrip(payload, port: proxy.port, waitAtMost: .milliseconds(500))
        #expect(silent.bytes.isEmpty && !silent.closed)
        #expect(proxy.stats.blackHoled >= 1)
        proxy.set(.none)
        #expect(try await EchoClient.roundTrip(payload, port: proxy.port).bytes == payload)
        await proxy.stop()
        try await echo.close()
    }

    @Test("the verdict counts a lost write and a duplicated one")
    func verdictCatchesLossAndDuplication() throws {
        let directory = TempDirectory("verdict")
        let store = try LocalStore.create(
            in: directory.path, identity: ReplicaIdentity(replica: ReplicaID(0xD1), user: "petr", tenant: "acme"))
        var workload = Workload(seed: 9)
        for _ in 0..<30 { try workload.step(store) }
        let full = store.state
        #expect(Convergence.verdict(replicas: [("r", full)], server: full, ledger: workload.ledger).isClean)
        // The server lacks everything: every write is lost there, and the replica differs.
        let empty = Convergence.verdict(replicas: [("r", full)], server: TenantState(), ledger: workload.ledger)
        #expect(empty.lost == workload.ledger.count && empty.diverged == ["r"])
        // A second contact carrying a marker already written: duplicated.
        let marker = try #require(workload.ledger.kindByMarker.first { $0.value == .contact }?.key)
        try store.write(wall: SyncEngine.systemWall()) { state, context throws(ValidationError) in
            try state.createContact(ContactDraft(name: "Drill \(marker)"), context)
        }
        let twice = Convergence.verdict(replicas: [], server: store.state, ledger: workload.ledger)
        #expect(twice.duplicated == 1 && twice.lost == 0)
    }
}

/// Echoes every byte back, on loopback.
struct EchoServer {
    let channel: any Channel
    var port: Int { channel.localAddress!.port! }

    static func start() async throws -> EchoServer {
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(Echo()) }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        return EchoServer(channel: channel)
    }

    func close() async throws { try await channel.close() }

    final class Echo: ChannelInboundHandler, Sendable {
        typealias InboundIn = ByteBuffer
        typealias OutboundOut = ByteBuffer
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            context.writeAndFlush(data, promise: nil)
        }
    }
}

/// Sends bytes and collects what comes back until all of it came, the connection closed, or
/// `waitAtMost` passed.
enum EchoClient {
    final class Collector: ChannelInboundHandler, Sendable {
        typealias InboundIn = ByteBuffer
        let state = Mutex<(bytes: [UInt8], closed: Bool)>(([], false))
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let buffer = unwrapInboundIn(data)
            state.withLock { $0.bytes += buffer.readableBytesView }
        }
        func channelInactive(context: ChannelHandlerContext) { state.withLock { $0.closed = true } }
        func errorCaught(context: ChannelHandlerContext, error: any Error) { context.close(promise: nil) }
    }

    static func roundTrip(
        _ payload: [UInt8], port: Int, waitAtMost: Duration = .seconds(20)
    ) async throws -> (
        bytes: [UInt8], closed: Bool
    ) {
        let collector = Collector()
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(collector) }
            }
            .connect(host: "127.0.0.1", port: port).get()
        try await channel.writeAndFlush(ByteBuffer(bytes: payload))
        let deadline = ContinuousClock.now + waitAtMost
        while ContinuousClock.now < deadline {
            let (count, closed) = collector.state.withLock { ($0.bytes.count, $0.closed) }
            if count >= payload.count || closed { break }
            try await Task.sleep(for: .milliseconds(10))
        }
        // What came before this side closes (closing would mark it closed).
        let result = collector.state.withLock { ($0.bytes, $0.closed) }
        try? await channel.close()
        return result
    }
}
