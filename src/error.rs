//! The crate's one error type.

use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

use crate::wire::{FaultCategory, ReadError, SoapFault};

/// A boxed error from a lower layer (the HTTP stack, the OS).
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Everything that can go wrong calling ECGridOS.
///
/// Branch on it with the `is_*` predicates, or map it to a protocol-neutral
/// [`ErrorKind`] with [`Error::kind`]. No variant's text ever contains a
/// session ID, API key or password.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The server could not be reached, or the connection failed. For a call
    /// that changes state this variant means the request was certainly not
    /// delivered; when that is not certain the error is
    /// [`Error::OutcomeUnknown`] instead.
    #[error("{operation}: connection to {host} failed")]
    Transport {
        /// The operation called.
        operation: &'static str,
        /// The endpoint host.
        host: String,
        /// The underlying error.
        #[source]
        source: BoxError,
    },

    /// The HTTP proxy refused the request, or could not be reached: the
    /// service itself was not reached, so nothing was delivered to it (not
    /// even a call that changes state).
    #[error(
        "{operation}: proxy {proxy} refused: {refusal}; the request did not reach the service"
    )]
    Proxy {
        /// The operation called.
        operation: &'static str,
        /// The proxy, without credentials (`http://<redacted>@host:port`).
        proxy: String,
        /// How it refused.
        refusal: ProxyRefusal,
        /// The underlying error, when there is one.
        #[source]
        source: Option<BoxError>,
    },

    /// The TLS handshake with the service failed: nothing was delivered.
    #[error("{operation}: TLS with {host} failed: {failure}")]
    Tls {
        /// The operation called.
        operation: &'static str,
        /// The endpoint host.
        host: String,
        /// Which check failed.
        failure: TlsFailure,
        /// The underlying error.
        #[source]
        source: BoxError,
    },

    /// A time limit expired. In the [`TimeoutPhase::Connect`] phase nothing
    /// was sent, whatever the call.
    #[error("{operation}: timed out {phase} after {limit:?}")]
    Timeout {
        /// The operation called.
        operation: &'static str,
        /// Which phase of the call ran out of time.
        phase: TimeoutPhase,
        /// The limit that expired.
        limit: Duration,
    },

    /// A read was answered with an HTTP error status and no SOAP fault or
    /// REST error body (an HTML error page from a proxy, say). For a call
    /// that changes state such an answer is [`Error::OutcomeUnknown`]: the
    /// proxy may have answered after the service acted.
    #[error("{operation}: HTTP {status}: {snippet}")]
    HttpStatus {
        /// The operation called.
        operation: &'static str,
        /// The HTTP status code.
        status: u16,
        /// The start of the response body, for diagnosis: at most
        /// [`SNIPPET_CHARS`] characters, whitespace collapsed, control
        /// characters dropped, with any secret of the request removed before
        /// it was cut.
        snippet: String,
        /// The server's `Retry-After`, when it sent one.
        retry_after: Option<Duration>,
    },

    /// The service answered with a SOAP fault.
    #[error("{operation}: SOAP fault {fault}")]
    Fault {
        /// The operation called.
        operation: &'static str,
        /// The fault, with the ECGridOS detail when present.
        fault: Box<SoapFault>,
    },

    /// The REST API answered with an error body.
    #[error("{operation}: HTTP {status} {code}: {message}")]
    Rest {
        /// The operation called.
        operation: &'static str,
        /// The HTTP status code.
        status: u16,
        /// The `errorCode` of the body (`InvalidAPIKey`, `AccessDenied`, …).
        code: String,
        /// The `message` of the body.
        message: String,
        /// The server's `Retry-After`, when it sent one.
        retry_after: Option<Duration>,
    },

    /// The response was not a well-formed answer of the expected shape.
    #[error("{operation}: malformed response: {reason}")]
    MalformedResponse {
        /// The operation called.
        operation: &'static str,
        /// What was wrong.
        reason: Cow<'static, str>,
    },

    /// The response exceeded a configured limit; reading stopped there.
    #[error("{operation}: response exceeds the {limit}")]
    LimitExceeded {
        /// The operation called.
        operation: &'static str,
        /// The limit exceeded.
        limit: Limit,
    },

    /// A value given by the caller cannot be sent; nothing was sent.
    #[error("invalid {field}: {reason}")]
    InvalidInput {
        /// The parameter or setting at fault.
        field: Cow<'static, str>,
        /// Why it was refused.
        reason: Cow<'static, str>,
    },

    /// A downloaded parcel's byte count differs from the size the service
    /// declared for it. The bytes already written must be discarded, and the
    /// parcel must not be confirmed (a later download hands it out again).
    #[error("{operation}: parcel {parcel_id} declares {declared} bytes but {received} arrived")]
    SizeMismatch {
        /// The operation called.
        operation: &'static str,
        /// The parcel.
        parcel_id: i64,
        /// The size the service declared.
        declared: u64,
        /// The bytes decoded from the answer.
        received: u64,
    },

    /// A local file or writer failed: writing a downloaded parcel (a full
    /// disk, say), or reading a file to upload (including one whose size
    /// changed while it was read, before the request could end).
    #[error("{operation}: {context}: {source}")]
    Io {
        /// The operation called.
        operation: &'static str,
        /// What was being done.
        context: Cow<'static, str>,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },

    /// A call that changes state may or may not have taken effect: the request
    /// may have reached the server, and no answer came back, or one that is
    /// not a clear refusal (only a SOAP fault or a REST error body naming an
    /// `errorCode` is). It is not retried; [`Error::advice`] says what to do.
    #[error("{operation}: outcome unknown ({cause}): {advice}")]
    OutcomeUnknown {
        /// The operation called.
        operation: &'static str,
        /// What interrupted the call.
        cause: String,
        /// What to do now, from the operation's declaration.
        advice: &'static str,
        /// The underlying error, when there is one.
        #[source]
        source: Option<BoxError>,
    },
}

/// The phase of a call in which a timeout expired.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TimeoutPhase {
    /// Opening the connection (TCP and TLS).
    Connect,
    /// Sending the request and waiting for the response headers.
    Response,
    /// Reading the response body.
    Body,
}

impl fmt::Display for TimeoutPhase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TimeoutPhase::Connect => "connecting",
            TimeoutPhase::Response => "waiting for the response",
            TimeoutPhase::Body => "reading the response body",
        })
    }
}

/// How an HTTP proxy refused a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProxyRefusal {
    /// No connection to the proxy could be opened (refused, unreachable).
    Unreachable,
    /// The proxy asked for credentials, or refused the ones given (HTTP 407).
    AuthenticationRequired,
    /// The proxy refused to open a tunnel to the service (its `CONNECT`
    /// answer was an error status, 403 for instance).
    TunnelRefused,
}

impl fmt::Display for ProxyRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ProxyRefusal::Unreachable => "it could not be reached",
            ProxyRefusal::AuthenticationRequired => {
                "it requires authentication (HTTP 407: credentials missing or wrong)"
            }
            ProxyRefusal::TunnelRefused => "it would not open a tunnel to the service",
        })
    }
}

/// Which TLS check failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TlsFailure {
    /// The server's certificate chain does not lead to a trusted root (add
    /// the private CA with `add_root_certificate` / `--ca-cert`).
    UntrustedChain,
    /// The certificate is not valid for the host name connected to.
    NameMismatch,
    /// The certificate has expired (or is not valid yet).
    Expired,
    /// The server requires a client certificate and none was offered.
    NoClientCertificate,
    /// The server refused the client certificate offered.
    ClientCertificateRejected,
    /// No TLS version acceptable to both sides (see the minimum version).
    ProtocolVersion,
    /// Another TLS failure (see the source).
    Other,
}

impl fmt::Display for TlsFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TlsFailure::UntrustedChain => {
                "the server's certificate is not issued by a trusted CA (untrusted chain)"
            }
            TlsFailure::NameMismatch => "the server's certificate is not valid for this host name",
            TlsFailure::Expired => "the server's certificate has expired or is not yet valid",
            TlsFailure::NoClientCertificate => {
                "the server requires a client certificate and none was offered"
            }
            TlsFailure::ClientCertificateRejected => "the server refused the client certificate",
            TlsFailure::ProtocolVersion => "no TLS version acceptable to both sides",
            TlsFailure::Other => "handshake failed",
        })
    }
}

/// A limit on responses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Limit {
    /// Body size in bytes.
    BodyBytes(u64),
    /// Element nesting depth.
    Depth(usize),
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Limit::BodyBytes(n) => write!(f, "body size limit of {n} bytes"),
            Limit::Depth(n) => write!(f, "nesting depth limit of {n}"),
        }
    }
}

/// A protocol-neutral classification of an [`Error`]: the same failure over
/// SOAP and REST has the same kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The credential was missing, expired or invalid.
    Authentication,
    /// The caller may not do this.
    Authorization,
    /// The object named does not exist.
    NotFound,
    /// The service refused a parameter.
    InvalidParameter,
    /// The service failed.
    ServiceError,
    /// Too many requests.
    RateLimited,
    /// A fault or REST error of no known category.
    OtherServiceError,
    /// Connection failure.
    Transport,
    /// An HTTP proxy refused the request or could not be reached.
    Proxy,
    /// The TLS handshake failed.
    Tls,
    /// A time limit expired.
    Timeout,
    /// An HTTP error status without a service error body.
    HttpStatus,
    /// The response could not be read.
    MalformedResponse,
    /// The response exceeded a limit.
    LimitExceeded,
    /// The caller's input was refused before sending.
    InvalidInput,
    /// A state-changing call may or may not have happened.
    OutcomeUnknown,
    /// A downloaded parcel's size differs from the declared one.
    SizeMismatch,
    /// A local file or writer failed.
    Io,
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

impl Error {
    /// The protocol-neutral kind of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Transport { .. } => ErrorKind::Transport,
            Error::Proxy { .. } => ErrorKind::Proxy,
            Error::Tls { .. } => ErrorKind::Tls,
            Error::Timeout { .. } => ErrorKind::Timeout,
            Error::HttpStatus { status: 429, .. } => ErrorKind::RateLimited,
            Error::HttpStatus { .. } => ErrorKind::HttpStatus,
            Error::Fault { fault, .. } => match fault.category() {
                Some(FaultCategory::Authentication) => ErrorKind::Authentication,
                Some(FaultCategory::Authorization) => ErrorKind::Authorization,
                Some(FaultCategory::ObjectNotFound) => ErrorKind::NotFound,
                Some(FaultCategory::InvalidParameter) => ErrorKind::InvalidParameter,
                Some(FaultCategory::SystemError) => ErrorKind::ServiceError,
                _ => ErrorKind::OtherServiceError,
            },
            Error::Rest { code, status, .. } => match (code.as_str(), *status) {
                ("InvalidAPIKey" | "InvalidSession", _) | (_, 401) => ErrorKind::Authentication,
                ("AccessDenied", _) | (_, 403) => ErrorKind::Authorization,
                ("ObjectNotFound", _) | (_, 404) => ErrorKind::NotFound,
                ("InvalidParameter", _) => ErrorKind::InvalidParameter,
                ("RateLimitExceeded", _) | (_, 429) => ErrorKind::RateLimited,
                ("InternalError", _) | (_, 500..=599) => ErrorKind::ServiceError,
                _ => ErrorKind::OtherServiceError,
            },
            Error::MalformedResponse { .. } => ErrorKind::MalformedResponse,
            Error::LimitExceeded { .. } => ErrorKind::LimitExceeded,
            Error::InvalidInput { .. } => ErrorKind::InvalidInput,
            Error::OutcomeUnknown { .. } => ErrorKind::OutcomeUnknown,
            Error::SizeMismatch { .. } => ErrorKind::SizeMismatch,
            Error::Io { .. } => ErrorKind::Io,
        }
    }

    /// True for a connection failure.
    pub fn is_transport(&self) -> bool {
        matches!(self, Error::Transport { .. })
    }

    /// True when an HTTP proxy refused the request or could not be reached
    /// (as opposed to the service refusing it).
    pub fn is_proxy(&self) -> bool {
        matches!(self, Error::Proxy { .. })
    }

    /// How the proxy refused, for a proxy error.
    pub fn proxy_refusal(&self) -> Option<ProxyRefusal> {
        match self {
            Error::Proxy { refusal, .. } => Some(*refusal),
            _ => None,
        }
    }

    /// True when the TLS handshake failed.
    pub fn is_tls(&self) -> bool {
        matches!(self, Error::Tls { .. })
    }

    /// Which TLS check failed, for a TLS error.
    pub fn tls_failure(&self) -> Option<TlsFailure> {
        match self {
            Error::Tls { failure, .. } => Some(*failure),
            _ => None,
        }
    }

    /// True when a time limit expired.
    pub fn is_timeout(&self) -> bool {
        matches!(self, Error::Timeout { .. })
    }

    /// True for an HTTP error status without a service error body.
    pub fn is_status(&self) -> bool {
        matches!(self, Error::HttpStatus { .. })
    }

    /// The HTTP status, for errors that carry one.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::HttpStatus { status, .. } | Error::Rest { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// True for a SOAP fault.
    pub fn is_fault(&self) -> bool {
        matches!(self, Error::Fault { .. })
    }

    /// The SOAP fault, when this is one.
    pub fn fault(&self) -> Option<&SoapFault> {
        match self {
            Error::Fault { fault, .. } => Some(fault),
            _ => None,
        }
    }

    /// True for a REST error body.
    pub fn is_rest(&self) -> bool {
        matches!(self, Error::Rest { .. })
    }

    /// True when the credential (session ID or API key) was rejected, over
    /// either protocol: the request was refused before it acted.
    pub fn is_authentication(&self) -> bool {
        self.kind() == ErrorKind::Authentication
    }

    /// True when the response could not be read.
    pub fn is_malformed(&self) -> bool {
        matches!(self, Error::MalformedResponse { .. })
    }

    /// True when the response exceeded a limit.
    pub fn is_limit_exceeded(&self) -> bool {
        matches!(self, Error::LimitExceeded { .. })
    }

    /// True when the caller's input was refused before anything was sent.
    pub fn is_invalid_input(&self) -> bool {
        matches!(self, Error::InvalidInput { .. })
    }

    /// True when a downloaded parcel's size differs from the declared one
    /// (see [`Error::SizeMismatch`]): do not confirm it.
    pub fn is_size_mismatch(&self) -> bool {
        matches!(self, Error::SizeMismatch { .. })
    }

    /// True when a local file or writer failed (see [`Error::Io`]).
    pub fn is_io(&self) -> bool {
        matches!(self, Error::Io { .. })
    }

    /// The local I/O error behind an [`Error::Io`] (its kind tells a full
    /// disk from a missing file).
    pub fn io_error(&self) -> Option<&std::io::Error> {
        match self {
            Error::Io { source, .. } => Some(source),
            _ => None,
        }
    }

    /// True when a state-changing call may or may not have taken effect.
    pub fn is_outcome_unknown(&self) -> bool {
        matches!(self, Error::OutcomeUnknown { .. })
    }

    /// What to do after an [`Error::OutcomeUnknown`]: the advice of the
    /// operation that was interrupted (a rotation, a login and a logout each
    /// have their own). `None` for every other error.
    pub fn advice(&self) -> Option<&'static str> {
        match self {
            Error::OutcomeUnknown { advice, .. } => Some(advice),
            _ => None,
        }
    }

    /// The server's `Retry-After`, when it sent one.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Error::HttpStatus { retry_after, .. } | Error::Rest { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// A copy of this error for a second receiver (the waiters of one
    /// shared login). Every field is kept; an underlying error's chain is kept
    /// as text.
    pub(crate) fn duplicate(&self) -> Error {
        let text = |source: &BoxError| -> BoxError { chain_text(source.as_ref()).into() };
        match self {
            Error::Transport {
                operation,
                host,
                source,
            } => Error::Transport {
                operation,
                host: host.clone(),
                source: text(source),
            },
            Error::Proxy {
                operation,
                proxy,
                refusal,
                source,
            } => Error::Proxy {
                operation,
                proxy: proxy.clone(),
                refusal: *refusal,
                source: source.as_ref().map(text),
            },
            Error::Tls {
                operation,
                host,
                failure,
                source,
            } => Error::Tls {
                operation,
                host: host.clone(),
                failure: *failure,
                source: text(source),
            },
            Error::SizeMismatch {
                operation,
                parcel_id,
                declared,
                received,
            } => Error::SizeMismatch {
                operation,
                parcel_id: *parcel_id,
                declared: *declared,
                received: *received,
            },
            Error::Io {
                operation,
                context,
                source,
            } => Error::Io {
                operation,
                context: context.clone(),
                source: std::io::Error::new(source.kind(), source.to_string()),
            },
            Error::Timeout {
                operation,
                phase,
                limit,
            } => Error::Timeout {
                operation,
                phase: *phase,
                limit: *limit,
            },
            Error::HttpStatus {
                operation,
                status,
                snippet,
                retry_after,
            } => Error::HttpStatus {
                operation,
                status: *status,
                snippet: snippet.clone(),
                retry_after: *retry_after,
            },
            Error::Fault { operation, fault } => Error::Fault {
                operation,
                fault: fault.clone(),
            },
            Error::Rest {
                operation,
                status,
                code,
                message,
                retry_after,
            } => Error::Rest {
                operation,
                status: *status,
                code: code.clone(),
                message: message.clone(),
                retry_after: *retry_after,
            },
            Error::MalformedResponse { operation, reason } => Error::MalformedResponse {
                operation,
                reason: reason.clone(),
            },
            Error::LimitExceeded { operation, limit } => Error::LimitExceeded {
                operation,
                limit: *limit,
            },
            Error::InvalidInput { field, reason } => Error::InvalidInput {
                field: field.clone(),
                reason: reason.clone(),
            },
            Error::OutcomeUnknown {
                operation,
                cause,
                advice,
                source,
            } => Error::OutcomeUnknown {
                operation,
                cause: cause.clone(),
                advice,
                source: source.as_ref().map(text),
            },
        }
    }

    pub(crate) fn invalid_input(
        field: impl Into<Cow<'static, str>>,
        reason: impl Into<Cow<'static, str>>,
    ) -> Self {
        Error::InvalidInput {
            field: field.into(),
            reason: reason.into(),
        }
    }

    pub(crate) fn from_read(operation: &'static str, err: ReadError) -> Self {
        match err {
            ReadError::TooDeep { limit } => Error::LimitExceeded {
                operation,
                limit: Limit::Depth(limit),
            },
            ReadError::Malformed(reason) => Error::MalformedResponse { operation, reason },
            field @ ReadError::Field { .. } => Error::MalformedResponse {
                operation,
                reason: field.to_string().into(),
            },
        }
    }

    /// Removes `secrets` from every text in the error that came from the
    /// server, in case it echoed a request value back, then cuts an
    /// [`Error::HttpStatus`] body to its snippet. Every error a client
    /// returns passes through here once, with all the secrets of its request.
    pub(crate) fn redact(mut self, secrets: &[&str]) -> Self {
        match &mut self {
            Error::Fault { fault, .. } => fault.redact(secrets),
            Error::HttpStatus { snippet, .. } => {
                crate::wire::redact_in_place(snippet, secrets);
                *snippet = cut_snippet(snippet);
            }
            Error::Rest { code, message, .. } => {
                crate::wire::redact_in_place(code, secrets);
                crate::wire::redact_in_place(message, secrets);
            }
            Error::OutcomeUnknown { cause: text, .. } => {
                crate::wire::redact_in_place(text, secrets)
            }
            Error::MalformedResponse { reason, .. } => {
                let mut text = reason.to_string();
                crate::wire::redact_in_place(&mut text, secrets);
                *reason = text.into();
            }
            _ => {}
        }
        self
    }
}

/// The longest [`Error::HttpStatus`] snippet, in characters (an ellipsis
/// marks a cut).
pub const SNIPPET_CHARS: usize = 200;

/// The start of a (redacted) body as one line of printable text.
fn cut_snippet(text: &str) -> String {
    let words = text
        .split_whitespace()
        .filter(|w| w.chars().any(|c| !c.is_control()));
    let mut out = String::new();
    let mut chars = 0;
    let mut cut = false;
    'outer: for word in words {
        if chars > 0 {
            if chars == SNIPPET_CHARS {
                cut = true;
                break;
            }
            out.push(' ');
            chars += 1;
        }
        for c in word.chars().filter(|c| !c.is_control()) {
            if chars == SNIPPET_CHARS {
                cut = true;
                break 'outer;
            }
            out.push(c);
            chars += 1;
        }
    }
    if out.is_empty() {
        out.push_str("(empty body)");
    } else if cut {
        out.push('…');
    }
    out
}

/// An error and its causes as one line of text.
fn chain_text(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// A `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    fn status(body: String) -> Error {
        Error::HttpStatus {
            operation: "X",
            status: 502,
            snippet: body,
            retry_after: None,
        }
    }

    fn snippet(err: &Error) -> &str {
        match err {
            Error::HttpStatus { snippet, .. } => snippet,
            _ => unreachable!(),
        }
    }

    #[test]
    fn a_secret_is_removed_before_the_snippet_is_cut() {
        let secret = "SECRET-0123456789";
        // The secret straddles the cut, at every offset around it.
        for pad in SNIPPET_CHARS - secret.len()..SNIPPET_CHARS + 2 {
            let body = format!("{}{secret} tail", "x".repeat(pad));
            let err = status(body).redact(&[secret]);
            let text = snippet(&err);
            assert!(!text.contains("SECRET"), "pad {pad}: {text}");
            assert!(text.chars().count() <= SNIPPET_CHARS + 1, "{text}");
        }
    }

    #[test]
    fn snippets_are_one_line_and_marked_when_cut() {
        let err = status("a\n\n b\t\u{7}c \u{1} d".into()).redact(&[]);
        assert_eq!(snippet(&err), "a b c d");
        let err = status(" \n".into()).redact(&[]);
        assert_eq!(snippet(&err), "(empty body)");
        let err = status("y".repeat(SNIPPET_CHARS + 1)).redact(&[]);
        assert_eq!(snippet(&err), format!("{}…", "y".repeat(SNIPPET_CHARS)));
        let err = status("y".repeat(SNIPPET_CHARS)).redact(&[]);
        assert_eq!(snippet(&err), "y".repeat(SNIPPET_CHARS));
    }
}
