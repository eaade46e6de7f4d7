/// A short, plain reason a server could not be reached — "connection refused", "timed out" —
/// from what the network stack reports, instead of its nested dump (`Connection errors:
/// SingleConnectionFailure(target: [IPv4]127.0.0.1/127.0.0.1:8443, error: connection reset (error
/// set): Connection refused) (errno: 111))`, which is what `sync` and `init` once printed).
/// An error it does not recognise keeps its own text: nothing is hidden.
func networkReason(_ error: any Error) -> String {
    let text = String(describing: error)
    // Most specific first: a refused connection's text also says "connection reset".
    let known: [(marker: String, reason: String)] = [
        ("Connection refused", "connection refused"),
        ("No route to host", "no route to host"),
        ("Network is unreachable", "the network is unreachable"),
        ("UnknownHost", "the host name is not known"),
        ("Name or service not known", "the host name is not known"),
        ("connectTimeout", "timed out connecting"),
        ("Connection timed out", "timed out connecting"),
        ("EOF during handshake", "the connection closed during the TLS handshake"),
        ("Connection reset by peer", "the connection was reset"),
        ("remoteConnectionClosed", "the server closed the connection"),
        ("uncleanShutdown", "the connection was cut"),
        ("deadlineExceeded", "timed out"),
        ("readTimeout", "timed out waiting for the server"),
    ]
    return known.first { text.contains($0.marker) }?.reason ?? text
}
