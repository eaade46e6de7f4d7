import CRDTTestSupport
import Foundation
import NIOCore
import NIOPosix
import Synchronization

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
