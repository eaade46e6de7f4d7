import Foundation

/// Everything an operator can set. Sources, strongest first: command-line flags, environment
/// variables (`KRALIKI_*`), the JSON config file (`--config FILE`), the defaults below. Every
/// option is documented in docs/deployment/configuration.md and deploy/sync-server.json.
public struct ServerConfig: Codable, Sendable, Equatable {
    /// Address to listen on. Loopback by default.
    public var host = "127.0.0.1"
    public var port = 8443
    /// The URL replicas use to reach this server (put in enrolment strings); defaults to
    /// `https://host:port`. Set it when clients reach the server through another name.
    public var publicURL: String?
    /// Where server.sqlite, the generated certificate and the secrets live.
    public var dataDirectory = "./data"
    /// PEM files; when both are unset the server generates a self-signed certificate in
    /// `<data>/tls/` on first start (refused in production).
    public var tlsCertificate: String?
    public var tlsKey: String?
    /// Cleartext HTTP/2 (h2c) instead of TLS, for h2load and curl; only on a loopback address.
    public var cleartextHTTP2 = false
    /// Refuse to start with development settings (generated certificate, placeholder secrets,
    /// readable key files, cleartext).
    public var production = false
    /// The secrets file (JSON, mode 0600, written by `sync-server secrets generate`).
    public var secretsFile: String?
    public var logLevel = "info"
    /// Whether `/metrics` answers without the metrics token. Off by default: the metrics name
    /// every tenant and its activity. (A development server writes a secrets file with a fresh
    /// token on first start; production needs `sync-server secrets generate`.)
    public var metricsPublic = false
    /// How often the gauges read from the store (devices, lag, sequences, open conflicts) are
    /// computed, off the request path; a scrape reads them as of the last refresh.
    public var metricsRefreshSeconds = 15

    public var limits = Limits()
    /// How far in the future (seconds) a pushed stamp may be before it is refused.
    public var driftBoundSeconds = 300
    /// How long an enrolment code stays valid.
    public var enrolmentCodeHours = 24
    /// How long deletions are kept after every active device pulled them (days, fractions
    /// allowed). A device away longer re-bootstraps after pushing its own changes.
    public var retentionDays = 30.0
    /// How often tombstones and superseded log entries are collected.
    public var collectionIntervalSeconds = 3_600
    /// Bootstrap images (a replica file a fresh replica downloads instead of pulling
    /// everything) are written for tenants with at least this many changes, and again once
    /// this many more arrived; 0 turns them off.
    public var imageMinChanges = 5_000
    /// How often tenants are checked for an image due (also once at start).
    public var imageIntervalSeconds = 60

    public struct Limits: Codable, Sendable, Equatable {
        public var maxBodyBytes = 8 * 1024 * 1024
        public var maxChangesPerBatch = 1_000
        public var maxPullChanges = 1_000
        public var maxPullBytes = 4 * 1024 * 1024
        public var maxJSONDepth = 64
        /// Per-device token bucket: sustained requests per second and burst.
        public var requestsPerSecond = 200.0
        public var burst = 400.0
        /// Enrolment attempts (code guesses) per second across the server, and burst.
        public var enrolmentsPerSecond = 5.0
        public var enrolmentBurst = 20.0
        /// An HTTP/2 connection with no open stream for this long gets GOAWAY (an HTTP/1.1
        /// connection with no request is closed); one that has not closed 15 s after a GOAWAY
        /// is closed by the server.
        public var idleConnectionSeconds = 30.0
        /// A TLS handshake not complete after this long: the connection is closed.
        public var tlsHandshakeSeconds = 10.0
        /// Connections open at once; at the cap the server stops accepting until one closes.
        public var maxConnections = 10_000
        /// Live streams (`GET /v1/sync/live`) open at once per device and per tenant; over
        /// either, 429. One stolen token must not hold every connection the server has.
        public var maxLiveStreamsPerDevice = 4
        public var maxLiveStreamsPerTenant = 2_000
        /// Request bodies being read or decoded at once, across the server, in bytes (each
        /// counted at its Content-Length, or the body limit when it has none); over it, 503 with
        /// Retry-After. Bounds what concurrent large pushes can hold in memory.
        public var maxBodyBytesInFlight = 64 * 1024 * 1024
        /// Enrolment attempts per second and burst from one client address, checked before the
        /// server-wide `enrolmentsPerSecond`: one address, held below the server-wide rate,
        /// cannot keep all enrolment at 429.
        public var enrolmentsPerSecondPerAddress = 2.0
        public var enrolmentBurstPerAddress = 20.0
        /// Replicas a pushed change may name (in causal contexts, stamps or author records)
        /// that are not enrolled in the tenant, and only with stamps older than the tenant's
        /// epoch: replicas enrolled after a backup that a restore forgot, until they rejoin.
        public var maxUnenrolledReplicas = 64
        public init() {}

        public init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            let defaults = Limits()
            func value<T: Decodable>(_ key: CodingKeys, _ fallback: T) throws -> T {
                try container.decodeIfPresent(T.self, forKey: key) ?? fallback
            }
            maxBodyBytes = try value(.maxBodyBytes, defaults.maxBodyBytes)
            maxChangesPerBatch = try value(.maxChangesPerBatch, defaults.maxChangesPerBatch)
            maxPullChanges = try value(.maxPullChanges, defaults.maxPullChanges)
            maxPullBytes = try value(.maxPullBytes, defaults.maxPullBytes)
            maxJSONDepth = try value(.maxJSONDepth, defaults.maxJSONDepth)
            requestsPerSecond = try value(.requestsPerSecond, defaults.requestsPerSecond)
            burst = try value(.burst, defaults.burst)
            enrolmentsPerSecond = try value(.enrolmentsPerSecond, defaults.enrolmentsPerSecond)
            enrolmentBurst = try value(.enrolmentBurst, defaults.enrolmentBurst)
            idleConnectionSeconds = try value(.idleConnectionSeconds, defaults.idleConnectionSeconds)
            tlsHandshakeSeconds = try value(.tlsHandshakeSeconds, defaults.tlsHandshakeSeconds)
            maxConnections = try value(.maxConnections, defaults.maxConnections)
            maxLiveStreamsPerDevice = try value(.maxLiveStreamsPerDevice, defaults.maxLiveStreamsPerDevice)
            maxLiveStreamsPerTenant = try value(.maxLiveStreamsPerTenant, defaults.maxLiveStreamsPerTenant)
            maxBodyBytesInFlight = try value(.maxBodyBytesInFlight, defaults.maxBodyBytesInFlight)
            enrolmentsPerSecondPerAddress = try value(
                .enrolmentsPerSecondPerAddress, defaults.enrolmentsPerSecondPerAddress)
            enrolmentBurstPerAddress = try value(.enrolmentBurstPerAddress, defaults.enrolmentBurstPerAddress)
            maxUnenrolledReplicas = try value(.maxUnenrolledReplicas, defaults.maxUnenrolledReplicas)
        }

        /// Checks each limit's range, naming the first one out of it.
        func validate() throws(Problem) {
            func check(_ name: String, _ ok: Bool, _ range: String) throws(Problem) {
                if !ok { throw Problem(setting: "limits.\(name)", message: "must be \(range)") }
            }
            func positive(_ value: Double) -> Bool { value.isFinite && value > 0 }
            try check("maxBodyBytes", (1_024...1 << 30).contains(maxBodyBytes), "1024 – 1073741824 bytes")
            try check("maxChangesPerBatch", (1...100_000).contains(maxChangesPerBatch), "1–100000")
            try check("maxPullChanges", (1...100_000).contains(maxPullChanges), "1–100000")
            try check("maxPullBytes", (1_024...1 << 30).contains(maxPullBytes), "1024 – 1073741824 bytes")
            try check("maxJSONDepth", (8...1_000).contains(maxJSONDepth), "8–1000")
            try check("requestsPerSecond", positive(requestsPerSecond), "a positive number")
            try check("burst", burst.isFinite && burst >= 1, "at least 1")
            try check("enrolmentsPerSecond", positive(enrolmentsPerSecond), "a positive number")
            try check("enrolmentBurst", enrolmentBurst.isFinite && enrolmentBurst >= 1, "at least 1")
            try check(
                "enrolmentsPerSecondPerAddress", positive(enrolmentsPerSecondPerAddress), "a positive number")
            try check(
                "enrolmentBurstPerAddress", enrolmentBurstPerAddress.isFinite && enrolmentBurstPerAddress >= 1,
                "at least 1")
            try check(
                "idleConnectionSeconds", idleConnectionSeconds.isFinite && (1...86_400).contains(idleConnectionSeconds),
                "1–86400 seconds")
            try check(
                "tlsHandshakeSeconds", tlsHandshakeSeconds.isFinite && (1...3_600).contains(tlsHandshakeSeconds),
                "1–3600 seconds")
            try check("maxConnections", (1...1_000_000).contains(maxConnections), "1–1000000")
            try check("maxLiveStreamsPerDevice", (1...1_000).contains(maxLiveStreamsPerDevice), "1–1000")
            try check("maxLiveStreamsPerTenant", (1...1_000_000).contains(maxLiveStreamsPerTenant), "1–1000000")
            try check(
                "maxBodyBytesInFlight", maxBodyBytesInFlight >= maxBodyBytes && maxBodyBytesInFlight <= 1 << 40,
                "at least maxBodyBytes")
            try check("maxUnenrolledReplicas", (0...100_000).contains(maxUnenrolledReplicas), "0–100000")
        }
    }

    public init() {}

    /// A config file names only what it changes: every key is optional, defaults fill the rest.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        let defaults = ServerConfig()
        func value<T: Decodable>(_ key: CodingKeys, _ fallback: T) throws -> T {
            try container.decodeIfPresent(T.self, forKey: key) ?? fallback
        }
        host = try value(.host, defaults.host)
        port = try value(.port, defaults.port)
        publicURL = try container.decodeIfPresent(String.self, forKey: .publicURL)
        dataDirectory = try value(.dataDirectory, defaults.dataDirectory)
        tlsCertificate = try container.decodeIfPresent(String.self, forKey: .tlsCertificate)
        tlsKey = try container.decodeIfPresent(String.self, forKey: .tlsKey)
        cleartextHTTP2 = try value(.cleartextHTTP2, defaults.cleartextHTTP2)
        production = try value(.production, defaults.production)
        secretsFile = try container.decodeIfPresent(String.self, forKey: .secretsFile)
        logLevel = try value(.logLevel, defaults.logLevel)
        metricsPublic = try value(.metricsPublic, defaults.metricsPublic)
        metricsRefreshSeconds = try value(.metricsRefreshSeconds, defaults.metricsRefreshSeconds)
        limits = try value(.limits, defaults.limits)
        driftBoundSeconds = try value(.driftBoundSeconds, defaults.driftBoundSeconds)
        enrolmentCodeHours = try value(.enrolmentCodeHours, defaults.enrolmentCodeHours)
        retentionDays = try value(.retentionDays, defaults.retentionDays)
        collectionIntervalSeconds = try value(.collectionIntervalSeconds, defaults.collectionIntervalSeconds)
        imageMinChanges = try value(.imageMinChanges, defaults.imageMinChanges)
        imageIntervalSeconds = try value(.imageIntervalSeconds, defaults.imageIntervalSeconds)
    }

    public var dataURL: URL { URL(fileURLWithPath: dataDirectory) }
    public var defaultCertificatePath: String { dataURL.appendingPathComponent("tls/server-cert.pem").path }
    public var defaultKeyPath: String { dataURL.appendingPathComponent("tls/server-key.pem").path }
    public var certificatePath: String { tlsCertificate ?? defaultCertificatePath }
    public var keyPath: String { tlsKey ?? defaultKeyPath }
    public var secretsPath: String { secretsFile ?? dataURL.appendingPathComponent("secrets.json").path }
    public var usesGeneratedCertificate: Bool { tlsCertificate == nil && tlsKey == nil }
    /// The retention in ms.
    public var retentionMs: UInt64 { UInt64((retentionDays * 86_400_000).rounded()) }

    /// `https://127.0.0.1:8443` (or `http://` for h2c).
    public var url: String {
        if let publicURL { return publicURL }
        let hostPart = host.contains(":") ? "[\(host)]" : host
        return "\(cleartextHTTP2 ? "http" : "https")://\(hostPart):\(port)"
    }

    // MARK: Loading

    /// A config problem, naming the setting.
    public struct Problem: Error, CustomStringConvertible, Sendable {
        public let setting: String
        public let message: String
        public var description: String { "\(setting): \(message)" }

        public init(setting: String, message: String) {
            self.setting = setting
            self.message = message
        }
    }

    /// Reads a JSON config file; unknown keys are refused (a typo must not be silently ignored).
    public static func load(file: String) throws(Problem) -> ServerConfig {
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: file)) } catch {
            throw Problem(setting: "--config", message: "cannot read \(file): \(error.localizedDescription)")
        }
        do {
            let config = try JSONDecoder().decode(ServerConfig.self, from: data)
            let unknown = try JSONKeys.unknownKeys(in: data, knownBy: config)
            if let first = unknown.first {
                throw Problem(
                    setting: first, message: "unknown setting in \(file); see docs/deployment/configuration.md")
            }
            return config
        } catch let problem as Problem {
            throw problem
        } catch {
            throw Problem(setting: "--config", message: "\(file) is not a valid config: \(JSONKeys.describe(error))")
        }
    }

    /// The config from all sources: `file` (if any), then the environment, then `flags` (the
    /// command line), each overriding the one before; then validated.
    public static func resolve(
        file: String?, environment: [String: String], flags: (inout ServerConfig) -> Void = { _ in }
    ) throws(Problem) -> ServerConfig {
        var config = try file.map { path throws(Problem) in try load(file: path) } ?? ServerConfig()
        try config.applyEnvironment(environment)
        flags(&config)
        try config.validate()
        return config
    }

    /// Applies `KRALIKI_*` environment variables.
    public mutating func applyEnvironment(_ environment: [String: String]) throws(Problem) {
        func int(_ key: String) throws(Problem) -> Int? {
            guard let text = environment[key] else { return nil }
            guard let value = Int(text) else {
                throw Problem(setting: key, message: "must be a whole number, not \(text)")
            }
            return value
        }
        func bool(_ key: String) throws(Problem) -> Bool? {
            guard let text = environment[key] else { return nil }
            switch text.lowercased() {
            case "1", "true", "yes": return true
            case "0", "false", "no": return false
            default: throw Problem(setting: key, message: "must be true or false, not \(text)")
            }
        }
        if let value = environment["KRALIKI_HOST"] { host = value }
        if let value = try int("KRALIKI_PORT") { port = value }
        if let value = environment["KRALIKI_PUBLIC_URL"] { publicURL = value }
        if let value = environment["KRALIKI_DATA"] { dataDirectory = value }
        if let value = environment["KRALIKI_TLS_CERT"] { tlsCertificate = value }
        if let value = environment["KRALIKI_TLS_KEY"] { tlsKey = value }
        if let value = try bool("KRALIKI_H2C") { cleartextHTTP2 = value }
        if let value = try bool("KRALIKI_PRODUCTION") { production = value }
        if let value = environment["KRALIKI_SECRETS_FILE"] { secretsFile = value }
        if let value = environment["KRALIKI_LOG_LEVEL"] { logLevel = value }
        if let value = try bool("KRALIKI_METRICS_PUBLIC") { metricsPublic = value }
        if let value = try int("KRALIKI_DRIFT_SECONDS") { driftBoundSeconds = value }
        if let value = try int("KRALIKI_MAX_BODY_BYTES") { limits.maxBodyBytes = value }
        if let text = environment["KRALIKI_RETENTION_DAYS"] {
            guard let value = Double(text) else {
                throw Problem(setting: "KRALIKI_RETENTION_DAYS", message: "must be a number of days, not \(text)")
            }
            retentionDays = value
        }
        if let value = try int("KRALIKI_COLLECTION_INTERVAL_SECONDS") { collectionIntervalSeconds = value }
        if let value = try int("KRALIKI_IMAGE_MIN_CHANGES") { imageMinChanges = value }
        if let value = try int("KRALIKI_IMAGE_INTERVAL_SECONDS") { imageIntervalSeconds = value }
    }

    /// Checks ranges and combinations that can be checked without touching files.
    public func validate() throws(Problem) {
        guard (0...65_535).contains(port) else {
            throw Problem(setting: "port", message: "must be 0–65535, not \(port)")
        }
        guard ["trace", "debug", "info", "notice", "warning", "error", "critical"].contains(logLevel) else {
            throw Problem(setting: "logLevel", message: "must be one of trace debug info notice warning error critical")
        }
        guard (tlsCertificate == nil) == (tlsKey == nil) else {
            throw Problem(
                setting: "tlsCertificate/tlsKey", message: "set both files, or neither to use a generated one")
        }
        if cleartextHTTP2 && !Self.isLoopback(host) {
            throw Problem(
                setting: "cleartextHTTP2",
                message: "cleartext HTTP/2 is allowed only on a loopback address, not \(host)")
        }
        guard driftBoundSeconds >= 1 else { throw Problem(setting: "driftBoundSeconds", message: "must be at least 1") }
        guard retentionDays.isFinite, retentionDays > 0 else {
            throw Problem(setting: "retentionDays", message: "must be a positive number of days, not \(retentionDays)")
        }
        guard collectionIntervalSeconds >= 1 else {
            throw Problem(setting: "collectionIntervalSeconds", message: "must be at least 1")
        }
        guard imageMinChanges >= 0 else {
            throw Problem(setting: "imageMinChanges", message: "must be 0 (off) or more, not \(imageMinChanges)")
        }
        guard imageIntervalSeconds >= 1 else {
            throw Problem(setting: "imageIntervalSeconds", message: "must be at least 1")
        }
        guard (1...24 * 365).contains(enrolmentCodeHours) else {
            throw Problem(setting: "enrolmentCodeHours", message: "must be 1–8760 hours, not \(enrolmentCodeHours)")
        }
        guard driftBoundSeconds <= 86_400 * 365 else {
            throw Problem(setting: "driftBoundSeconds", message: "must be at most a year (31536000 s)")
        }
        guard (1...86_400).contains(metricsRefreshSeconds) else {
            throw Problem(setting: "metricsRefreshSeconds", message: "must be 1–86400, not \(metricsRefreshSeconds)")
        }
        try limits.validate()
    }

    /// True for `localhost` and for an IPv4 address in 127.0.0.0/8 or the IPv6 address ::1,
    /// parsed as addresses (a name such as `127.example.com` is not loopback).
    public static func isLoopback(_ host: String) -> Bool {
        if host == "localhost" { return true }
        var v4 = in_addr()
        if inet_pton(AF_INET, host, &v4) == 1 { return UInt32(bigEndian: v4.s_addr) >> 24 == 127 }
        var v6 = in6_addr()
        let bare = host.hasPrefix("[") && host.hasSuffix("]") ? String(host.dropFirst().dropLast()) : host
        guard inet_pton(AF_INET6, bare, &v6) == 1 else { return false }
        var loopback = in6_addr()
        _ = inet_pton(AF_INET6, "::1", &loopback)
        return withUnsafeBytes(of: &v6) { a in withUnsafeBytes(of: &loopback) { b in a.elementsEqual(b) } }
    }
}
