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

    /// A time limit expired.
    #[error("{operation}: timed out {phase} after {limit:?}")]
    Timeout {
        /// The operation called.
        operation: &'static str,
        /// Which phase of the call ran out of time.
        phase: TimeoutPhase,
        /// The limit that expired.
        limit: Duration,
    },

    /// The server answered with an HTTP error status and no SOAP fault (an
    /// HTML error page from a proxy, say).
    #[error("{operation}: HTTP {status}: {snippet}")]
    HttpStatus {
        /// The operation called.
        operation: &'static str,
        /// The HTTP status code.
        status: u16,
        /// The start of the response body, for diagnosis.
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

    /// A call that changes state may or may not have taken effect: the request
    /// may have reached the server and no answer came back. It is not retried.
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
        }
    }

    /// True for a connection failure.
    pub fn is_transport(&self) -> bool {
        matches!(self, Error::Transport { .. })
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

    /// True when a state-changing call may or may not have taken effect.
    pub fn is_outcome_unknown(&self) -> bool {
        matches!(self, Error::OutcomeUnknown { .. })
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
    /// server, in case it echoed a request value back.
    pub(crate) fn redact(mut self, secrets: &[&str]) -> Self {
        match &mut self {
            Error::Fault { fault, .. } => fault.redact(secrets),
            Error::HttpStatus { snippet: text, .. }
            | Error::Rest { message: text, .. }
            | Error::OutcomeUnknown { cause: text, .. } => {
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
