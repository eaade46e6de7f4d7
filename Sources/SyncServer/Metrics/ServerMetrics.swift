import Foundation
import Prometheus

/// The server's Prometheus metrics, in one registry per server (so tests can run several servers
/// in one process). `GET /metrics` emits them in the text exposition format. Names are listed in
/// docs/api/README.md and used by deploy/prometheus rules.
public final class ServerMetrics: Sendable {
    public let registry: PrometheusCollectorRegistry

    static let latencyBuckets: [Duration] = [
        .microseconds(250), .microseconds(500), .milliseconds(1), .milliseconds(2), .milliseconds(5),
        .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100), .milliseconds(250),
        .milliseconds(500), .seconds(1), .seconds(5),
    ]

    let changesIngested: Counter
    let changesRejected: Counter
    let pushBatches: Counter
    let pullBatches: Counter
    let changesServed: Counter
    let groupCommits: Counter
    let ingestErrors: Counter
    let liveStreamsOpen: Gauge
    let tombstonesCollected: Counter
    let logEntriesCollected: Counter
    let staleCursorRefusals: Counter
    let imagesServed: Counter
    let imagesBuilt: Counter
    let bodiesRefused: Counter
    let lastCollection: Gauge
    let startTime: Gauge
    let connectionsOpen: Gauge
    /// The server's client connections (counted by `ConnectionGuardHandler`).
    let connections: ConnectionCensus

    public init() {
        let registry = PrometheusCollectorRegistry()
        self.registry = registry
        func counter(_ name: String, _ help: String) -> Counter {
            registry.makeCounter(descriptor: Self.name(name, help))
        }
        changesIngested = counter("kraliki_changes_ingested_total", "Pushed changes accepted and committed durably.")
        changesRejected = counter("kraliki_changes_rejected_total", "Pushed changes refused with a per-change reason.")
        pushBatches = counter("kraliki_push_batches_total", "Push batches acknowledged.")
        pullBatches = counter("kraliki_pull_batches_total", "Pull responses served.")
        changesServed = counter("kraliki_changes_served_total", "Changes sent in pull responses.")
        groupCommits = counter("kraliki_group_commits_total", "Transactions that committed one or more pushes.")
        ingestErrors = counter(
            "kraliki_ingest_errors_total", "Pushes that failed in the store (answered 503, nothing applied).")
        tombstonesCollected = counter(
            "kraliki_tombstones_collected_total", "Deleted records removed after the retention period.")
        logEntriesCollected = counter(
            "kraliki_log_entries_collected_total", "Change-log entries removed because later changes superseded them.")
        staleCursorRefusals = counter(
            "kraliki_stale_cursor_refusals_total",
            "Pulls refused because the device was away longer than the retention.")
        imagesServed = counter(
            "kraliki_bootstrap_images_served_total", "Bootstrap images sent to fresh replicas (GET /v1/sync/image).")
        imagesBuilt = counter("kraliki_bootstrap_images_built_total", "Bootstrap images written.")
        bodiesRefused = counter(
            "kraliki_bodies_refused_total",
            "Requests answered 503 because the bodies in flight were at maxBodyBytesInFlight.")
        lastCollection = registry.makeGauge(
            descriptor: Self.name(
                "kraliki_last_collection_timestamp_seconds", "When garbage collection last finished (0: not yet)."))
        liveStreamsOpen = registry.makeGauge(
            descriptor: Self.name("kraliki_live_streams_open", "Open live change streams."))
        startTime = registry.makeGauge(
            descriptor: Self.name("kraliki_start_time_seconds", "When this server process started (Unix time)."))
        startTime.set(Date().timeIntervalSince1970)
        connectionsOpen = registry.makeGauge(
            descriptor: Self.name("kraliki_connections_open", "Client connections open (TCP, TLS or not)."))
        // Every reason made at start, so each series is exported (at 0) before its first drop.
        let dropped = Dictionary(
            uniqueKeysWithValues: ConnectionCensus.DropReason.allCases.map { reason in
                (
                    reason,
                    registry.makeCounter(
                        descriptor: Self.name(
                            "kraliki_connections_dropped_total",
                            "Connections the server closed for exceeding a connection limit, by reason."),
                        labels: [("reason", reason.rawValue)])
                )
            })
        connections = ConnectionCensus(onDrop: { reason in dropped[reason]?.increment() })
    }

    /// Sets the gauges read from memory at scrape time.
    func refreshConnections() {
        connectionsOpen.set(Double(connections.open.load(ordering: .relaxed)))
    }

    /// Counts one answered request and its latency, by route template and status code.
    ///
    /// Every label value comes from a fixed set, whatever a caller sends: the route is a template
    /// of the router's routes (or `unmatched`), the method one of ``knownMethods`` (or `other`), the
    /// status one the server chose. A label a caller could choose would make a series per value,
    /// kept for the life of the process: unauthenticated memory growth (and a `/metrics` that
    /// grows without bound).
    func observe(route: String, method: String, status: Int, duration: Duration) {
        let method = Self.knownMethods.contains(method) ? method : "other"
        let labels = [("route", route), ("method", method), ("status", String(status))]
        registry.makeCounter(
            descriptor: Self.name("kraliki_http_requests_total", "HTTP requests answered, by route and status."),
            labels: labels
        ).increment()
        registry.makeDurationHistogram(
            descriptor: Self.name("kraliki_http_request_duration_seconds", "Time to answer a request."),
            labels: [("route", route), ("method", method)], buckets: Self.latencyBuckets
        ).record(duration)
    }

    /// The methods counted under their own name; any other is counted as `other`.
    static let knownMethods: Set<String> = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]

    /// Sets a gauge with labels (values computed at scrape time: lag, conflicts, backups).
    func set(_ name: String, _ help: String, labels: [(String, String)] = [], to value: Double) {
        registry.makeGauge(descriptor: Self.name(name, help), labels: labels).set(value)
    }

    /// Full names are written out (unit included) so they can be grepped in the alert rules.
    static func name(_ name: String, _ help: String) -> MetricNameDescriptor {
        MetricNameDescriptor(metricName: name, unitName: "", helpText: help)
    }
}
