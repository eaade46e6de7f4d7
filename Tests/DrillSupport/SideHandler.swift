import CRDTTestSupport
import Foundation
import NIOCore
import NIOPosix
import Synchronization

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
