import Crypto
import Domain
import Foundation
import LocalStorage
import NIOCore
import NIOPosix
import NIOSSL
import NIOTLS
import StoreSupport
import Synchronization

/// Trust on first use, made safe by the fingerprint in the enrolment string: connects once,
/// accepts the server's certificate only if its SHA-256 matches, and returns it as PEM. The
/// replica stores it and from then on trusts exactly that certificate (as its only root).
public enum CertificatePin {
    public struct Mismatch: Error, CustomStringConvertible, Sendable {
        public let expected: String
        public let found: String
        public var description: String {
            "the server's certificate has SHA-256 \(found), not \(expected) as in the enrolment string; "
                + "do not enrol against this server unless an admin confirms the new fingerprint"
        }
    }

    /// Fetches the certificate of `host:port` and checks it against `fingerprint`.
    public static func fetch(host: String, port: Int, fingerprint: String) async throws -> String {
        let expected = EnrolmentLink.normalizedFingerprint(fingerprint)
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.minimumTLSVersion = .tlsv12
        tls.applicationProtocols = ["h2", "http/1.1"]
        let context = try NIOSSLContext(configuration: tls)
        let found = Seen()
        let handshake = MultiThreadedEventLoopGroup.singleton.any().makePromise(of: Void.self)
        let isAddress = host.contains(":") || host.allSatisfy { $0.isNumber || $0 == "." }
        let bootstrap = ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connectTimeout(.seconds(10))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let handler = try NIOSSLClientHandler(
                        context: context, serverHostname: isAddress ? nil : host,
                        customVerificationCallback: { certificates, promise in
                            guard let leaf = certificates.first, let der = try? leaf.toDERBytes() else {
                                promise.succeed(.failed)
                                return
                            }
                            let actual = SHA256.hash(data: der).map { String(format: "%02x", $0) }.joined()
                            found.value.withLock { $0 = (der, actual) }
                            promise.succeed(actual == expected ? .certificateVerified : .failed)
                        })
                    try channel.pipeline.syncOperations.addHandler(handler)
                    try channel.pipeline.syncOperations.addHandler(HandshakeWatcher(promise: handshake))
                }
            }
        let channel: any Channel
        do {
            channel = try await bootstrap.connect(host: host, port: port).get()
        } catch {
            // Nothing will complete the handshake promise now; a promise dropped unfulfilled is
            // a crash in debug builds (NIO's leak check), which `replica-cli init` hit against a
            // port with nothing listening.
            handshake.fail(error)
            throw error
        }
        defer { channel.close(promise: Optional<EventLoopPromise<Void>>.none) }
        do {
            try await handshake.futureResult.get()
        } catch {
            if let seen = found.value.withLock({ $0 }), seen.fingerprint != expected {
                throw Mismatch(expected: expected, found: seen.fingerprint)
            }
            throw error
        }
        guard let seen = found.value.withLock({ $0 }) else { throw Mismatch(expected: expected, found: "none") }
        return pem(der: seen.der)
    }

    public static func pem(der: [UInt8]) -> String {
        let base64 = Data(der).base64EncodedString()
        var lines = ["-----BEGIN CERTIFICATE-----"]
        var index = base64.startIndex
        while index < base64.endIndex {
            let end = base64.index(index, offsetBy: 64, limitedBy: base64.endIndex) ?? base64.endIndex
            lines.append(String(base64[index..<end]))
            index = end
        }
        lines.append("-----END CERTIFICATE-----")
        return lines.joined(separator: "\n") + "\n"
    }

    private final class Seen: Sendable {
        let value = Mutex<(der: [UInt8], fingerprint: String)?>(nil)
    }

    /// Completes `promise` when the TLS handshake finishes (or fails).
    private final class HandshakeWatcher: ChannelInboundHandler, Sendable {
        typealias InboundIn = Any
        let promise: EventLoopPromise<Void>
        init(promise: EventLoopPromise<Void>) { self.promise = promise }

        func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
            if case TLSUserEvent.handshakeCompleted = event { promise.succeed(()) }
            context.fireUserInboundEventTriggered(event)
        }
        func errorCaught(context: ChannelHandlerContext, error: any Error) {
            promise.fail(error)
            context.close(promise: nil)
        }
        func channelInactive(context: ChannelHandlerContext) {
            promise.fail(ChannelError.ioOnClosedChannel)
            context.fireChannelInactive()
        }
    }
}
