// The Studio's errors: each carries the HTTP status it is answered with, and every one reaches
// the page as `{"error": {"code": …, "message": …}}`, never as a stack trace.
import AuscultTensor

/// What went wrong serving a request, and the HTTP status that says so.
public struct StudioError: AuscultError, Sendable {
    public enum Code: String, Sendable {
        /// 400: a parameter or body the API does not accept.
        case badRequest = "bad_request"
        /// 401: the server was started with `--token` and the request does not carry it.
        case unauthorized
        /// 404: no such index, feature, clip, upload or page.
        case notFound = "not_found"
        /// 413: an upload over the size or duration limit.
        case tooLarge = "too_large"
        /// 415: an upload that is not audio the decoder reads.
        case unsupportedMedia = "unsupported_media"
        /// 500: the model or an index failed; the message says how.
        case internalError = "internal"
        /// Startup: an index, SAE or option the Studio cannot serve.
        case configuration
    }
    public let code: Code
    public let message: String
    public let underlying: (any Error)?

    public init(_ code: Code, _ message: String, cause: (any Error)? = nil) {
        self.code = code; self.message = message; self.underlying = cause
    }

    /// The HTTP status code of the answer.
    public var status: Int {
        switch code {
        case .badRequest, .configuration: return 400
        case .unauthorized: return 401
        case .notFound: return 404
        case .tooLarge: return 413
        case .unsupportedMedia: return 415
        case .internalError: return 500
        }
    }
}
