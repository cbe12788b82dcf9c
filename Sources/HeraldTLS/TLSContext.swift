import CHeraldTLS
import COpenSSL
import Glibc

/// What a TLS listener is configured with.
public struct TLSSettings: Sendable, Equatable {
    public var certFile: String
    public var keyFile: String
    /// When set, clients must present a certificate signed by one of these CAs.
    public var caFile: String?
    /// "1.2" or "1.3".
    public var minVersion: String
    /// OpenSSL cipher list for TLS 1.2 ("" keeps OpenSSL's default); TLS 1.3 suites are
    /// OpenSSL's defaults.
    public var ciphers: String

    public init(certFile: String, keyFile: String, caFile: String? = nil, minVersion: String = "1.2", ciphers: String = "") {
        self.certFile = certFile
        self.keyFile = keyFile
        self.caFile = caFile
        self.minVersion = minVersion
        self.ciphers = ciphers
    }
}

/// A problem with the TLS set-up, said so that the operator can fix it.
public struct TLSError: Error, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// A server-side OpenSSL context: certificate chain and key loaded and checked once at
/// start-up. Immutable after `init`, so it can be shared by every connection.
public final class TLSContext: @unchecked Sendable {
    let context: OpaquePointer
    public let settings: TLSSettings

    public init(_ settings: TLSSettings) throws(TLSError) {
        self.settings = settings
        try Self.checkReadable(settings.certFile, what: "certFile (the certificate)")
        try Self.checkReadable(settings.keyFile, what: "keyFile (the private key)")
        if let caFile = settings.caFile { try Self.checkReadable(caFile, what: "caFile (the client CA certificates)") }

        guard let context = SSL_CTX_new(TLS_server_method()) else {
            throw TLSError("cannot create an OpenSSL context: \(Self.lastError())")
        }
        // From here on a throw runs deinit, which frees the context.
        self.context = context
        herald_tls_configure_server(context)
        let minimum: Int32
        switch settings.minVersion {
        case "1.2", "TLSv1.2": minimum = HERALD_TLS1_2_VERSION
        case "1.3", "TLSv1.3": minimum = HERALD_TLS1_3_VERSION
        default:
            throw TLSError("tlsMinVersion must be 1.2 or 1.3, not \(settings.minVersion)")
        }
        guard herald_tls_set_min_version(context, minimum) == 1 else {
            throw TLSError("cannot set the minimum TLS version: \(Self.lastError())")
        }
        if !settings.ciphers.isEmpty && SSL_CTX_set_cipher_list(context, settings.ciphers) != 1 {
            throw TLSError("tlsCiphers '\(settings.ciphers)' selects no usable cipher: \(Self.lastError())")
        }
        guard SSL_CTX_use_certificate_chain_file(context, settings.certFile) == 1 else {
            throw TLSError("certFile \(settings.certFile) is not a PEM certificate (chain): \(Self.lastError())")
        }
        guard SSL_CTX_use_PrivateKey_file(context, settings.keyFile, SSL_FILETYPE_PEM) == 1 else {
            let reason = Self.lastError()
            if reason.contains("values mismatch") || reason.contains("key values") {
                throw TLSError("keyFile \(settings.keyFile) does not match the certificate in \(settings.certFile): \(reason)")
            }
            throw TLSError("keyFile \(settings.keyFile) is not a usable PEM private key (encrypted keys are not supported): \(reason)")
        }
        guard SSL_CTX_check_private_key(context) == 1 else {
            let reason = Self.lastError()
            throw TLSError("keyFile \(settings.keyFile) does not match the certificate in \(settings.certFile): \(reason)")
        }
        if let caFile = settings.caFile, herald_tls_require_client_certificates(context, caFile) != 1 {
            throw TLSError("caFile \(caFile) holds no usable PEM CA certificate: \(Self.lastError())")
        }
    }

    deinit { SSL_CTX_free(context) }

    private static func checkReadable(_ path: String, what: String) throws(TLSError) {
        if path.isEmpty { throw TLSError("\(what) is not set") }
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 {
            let reason = String(cString: strerror(errno))
            throw TLSError("\(what) \(path) cannot be read: \(reason)")
        }
        close(fd)
    }

    /// The oldest queued OpenSSL error as text; clears the queue.
    static func lastError() -> String {
        var buffer = [CChar](repeating: 0, count: 256)
        herald_tls_last_error(&buffer, buffer.count)
        let text = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return text.isEmpty ? "no OpenSSL error reported" : text
    }
}
