//! The HTTP exchange shared by the SOAP and REST clients: one pooled reqwest
//! client, per-phase timeouts, a body size limit enforced while streaming, and
//! the retry policy.

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use reqwest::header::{HeaderMap, CONTENT_LENGTH, RETRY_AFTER};
use tokio::time::{timeout_at, Instant};
use url::{Host, Url};

use crate::error::{BoxError, Error, Limit, ProxyRefusal, TimeoutPhase, TlsFailure};
use crate::operations::Idempotency;
use crate::secret::{PrivateKeyPem, ProxyUrl};

/// Default limit on a response body.
pub const DEFAULT_MAX_RESPONSE_BYTES: u64 = 1024 * 1024;
/// Default connect timeout.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default limit on one attempt of a call, from sending to the last body byte.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// How calls that failed in a retryable way are retried.
///
/// Reads are retried on connection errors, timeouts, HTTP 5xx without a SOAP
/// fault and 429, after a jittered, exponentially growing delay (or the
/// server's `Retry-After`, capped at `max_delay`). Calls that change state are
/// retried only when the connection failed before any of the request was
/// written. SOAP faults are never retried.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included; 1 means never retry.
    pub max_attempts: u32,
    /// Upper bound of the first delay; each later bound doubles.
    pub base_delay: Duration,
    /// No delay is longer than this.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 3,
            base_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(5),
        }
    }
}

impl RetryPolicy {
    /// Never retry.
    pub fn none() -> Self {
        RetryPolicy {
            max_attempts: 1,
            ..RetryPolicy::default()
        }
    }

    /// The delay before attempt `attempt + 1` after `err`, or `None` when the
    /// call must not be tried again.
    pub(crate) fn delay_after(
        &self,
        attempt: u32,
        err: &Error,
        idempotency: Idempotency,
    ) -> Option<Duration> {
        if attempt >= self.max_attempts || !retryable(err, idempotency) {
            return None;
        }
        if let Some(wait) = err.retry_after() {
            return Some(wait.min(self.max_delay));
        }
        let exp = self
            .base_delay
            .saturating_mul(1u32 << (attempt - 1).min(16));
        let bound = exp.min(self.max_delay);
        // Full jitter: spreads the retries of many clients that failed together.
        let nanos = u64::try_from(bound.as_nanos()).unwrap_or(u64::MAX);
        Some(Duration::from_nanos(fastrand::u64(0..=nanos)))
    }
}

fn retryable(err: &Error, idempotency: Idempotency) -> bool {
    match idempotency {
        // The only errors a state-changing call reports this way are those
        // where nothing was written: every other failure became OutcomeUnknown.
        Idempotency::NotIdempotent { .. } => matches!(
            err,
            Error::Transport { .. }
                | Error::Proxy {
                    refusal: ProxyRefusal::Unreachable,
                    ..
                }
                | Error::Timeout {
                    phase: TimeoutPhase::Connect,
                    ..
                }
        ),
        Idempotency::Idempotent => match err {
            Error::Transport { .. }
            | Error::Timeout { .. }
            | Error::Proxy {
                refusal: ProxyRefusal::Unreachable,
                ..
            } => true,
            Error::HttpStatus { status, .. } | Error::Rest { status, .. } => {
                *status == 429 || *status >= 500
            }
            _ => false,
        },
    }
}

/// The HTTP setters both client builders share; each builder has an
/// `http: HttpSettings` field.
macro_rules! http_setters {
    () => {
        /// Time allowed to open a connection (default 10 s).
        pub fn connect_timeout(mut self, timeout: std::time::Duration) -> Self {
            self.http.connect_timeout = timeout;
            self
        }

        /// Time allowed for one attempt, from sending to the last byte of the
        /// response (default 30 s).
        pub fn timeout(mut self, timeout: std::time::Duration) -> Self {
            self.http.timeout = timeout;
            self
        }

        /// The `User-Agent` header.
        pub fn user_agent(mut self, user_agent: impl Into<String>) -> Self {
            self.http.user_agent = user_agent.into();
            self
        }

        /// Largest response body read (default 1 MiB); larger ones fail with
        /// [`Error::LimitExceeded`](crate::Error::LimitExceeded) without being
        /// buffered.
        pub fn max_response_bytes(mut self, bytes: u64) -> Self {
            self.http.max_response_bytes = bytes;
            self
        }

        /// The retry policy (see [`RetryPolicy`](crate::RetryPolicy) for what
        /// is retried: never a call that changes state once any of it may have
        /// been sent, and never on a SOAP fault).
        pub fn retry(mut self, policy: crate::RetryPolicy) -> Self {
            self.http.retry = policy;
            self
        }

        /// Allows plain `http://` to a host that is not loopback. Off by
        /// default: session IDs and keys would cross the network unencrypted.
        pub fn allow_insecure_http(mut self, allow: bool) -> Self {
            self.http.allow_insecure_http = allow;
            self
        }

        /// Sends every request through this HTTP proxy
        /// (`http://[user:password@]host:port`); HTTPS endpoints are reached
        /// through a `CONNECT` tunnel. Credentials in the URL are sent as
        /// `Proxy-Authorization: Basic` and never shown (see
        /// [`ProxyUrl`](crate::ProxyUrl)). While the environment is honoured
        /// (see [`proxy_from_env`](Self::proxy_from_env)), hosts in `NO_PROXY`
        /// bypass it. A refusal by the proxy is
        /// [`Error::Proxy`](crate::Error::Proxy), not a service error.
        pub fn proxy(mut self, url: impl Into<String>) -> Self {
            self.http.proxy = Some(crate::ProxyUrl::new(url));
            self
        }

        /// Whether `HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY` and `NO_PROXY`
        /// (or their lowercase forms) are honoured: on by default. Off, no
        /// proxy is used unless [`proxy`](Self::proxy) names one.
        pub fn proxy_from_env(mut self, honour: bool) -> Self {
            self.http.proxy_from_env = honour;
            self
        }

        /// Trusts the PEM certificates in `pem` (one or several, a private
        /// root CA for instance) besides the platform's roots. May be called
        /// more than once.
        pub fn add_root_certificate(mut self, pem: impl Into<Vec<u8>>) -> Self {
            self.http.root_certs.push(crate::http::Pem(pem.into()));
            self
        }

        /// Offers this client certificate (PEM, chain allowed) with its
        /// private key (PEM: PKCS#8, PKCS#1 or SEC1) to servers that ask for
        /// one (mutual TLS).
        pub fn client_certificate(
            mut self,
            cert_pem: impl Into<Vec<u8>>,
            key_pem: crate::PrivateKeyPem,
        ) -> Self {
            self.http.client_identity = Some((crate::http::Pem(cert_pem.into()), key_pem));
            self
        }

        /// The lowest TLS version accepted (default TLS 1.2).
        pub fn tls_min_version(mut self, version: crate::TlsVersion) -> Self {
            self.http.tls_min = version;
            self
        }
    };
}
pub(crate) use http_setters;

/// A TLS protocol version.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
#[non_exhaustive]
pub enum TlsVersion {
    /// TLS 1.2 (the default minimum).
    #[default]
    Tls12,
    /// TLS 1.3.
    Tls13,
}

/// PEM text that is not secret (certificates); its `Debug` shows its size.
#[derive(Clone)]
pub(crate) struct Pem(pub Vec<u8>);

impl std::fmt::Debug for Pem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Pem({} bytes)", self.0.len())
    }
}

/// Settings of the HTTP layer, shared by both clients' builders.
#[derive(Clone, Debug)]
pub(crate) struct HttpSettings {
    pub connect_timeout: Duration,
    pub timeout: Duration,
    pub user_agent: String,
    pub max_response_bytes: u64,
    pub retry: RetryPolicy,
    pub allow_insecure_http: bool,
    pub proxy: Option<ProxyUrl>,
    pub proxy_from_env: bool,
    pub root_certs: Vec<Pem>,
    pub client_identity: Option<(Pem, PrivateKeyPem)>,
    pub tls_min: TlsVersion,
}

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings {
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            timeout: DEFAULT_TIMEOUT,
            user_agent: concat!("ecgridos-rs/", env!("CARGO_PKG_VERSION")).to_string(),
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
            retry: RetryPolicy::default(),
            allow_insecure_http: false,
            proxy: None,
            proxy_from_env: true,
            root_certs: Vec::new(),
            client_identity: None,
            tls_min: TlsVersion::default(),
        }
    }
}

/// A response read in full, within the limits.
pub(crate) struct HttpReply {
    pub status: u16,
    retry_after: Option<Duration>,
    pub body: Bytes,
}

fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?;
    parse_retry_after(value, std::time::SystemTime::now())
}

/// `Retry-After` in either form: delay seconds, or an HTTP-date (a date in
/// the past means now). The retry policy caps the result.
fn parse_retry_after(value: &str, now: std::time::SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

impl HttpReply {
    /// The server's `Retry-After`, in seconds form.
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }

    /// The whole body as text, for an error message. It is cut to a short
    /// snippet only after secrets were removed from it (see
    /// [`Error::redact`]), so that a secret cannot be cut in half and leak
    /// its start.
    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

tokio::task_local! {
    /// The attempt being polled, for the connector to report to. Each
    /// attempt has its own (no allocation: it lives in the attempt's future).
    static ATTEMPT: AttemptWatch;
}

/// What one attempt knows of the connection it may be opening.
#[derive(Default)]
struct AttemptWatch {
    /// How many times the attempt was polled.
    polls: Cell<u64>,
    /// The last poll of the attempt in which a connect of its own was polled
    /// and still pending.
    connect_pending_at: Cell<u64>,
}

impl AttemptWatch {
    /// True when the attempt's latest poll was still waiting for a
    /// connection it was opening. A connect whose request went out on a
    /// pooled connection instead is finished in the background, outside the
    /// attempt, and no longer counts.
    fn connecting(&self) -> bool {
        self.connect_pending_at.get() == self.polls.get()
    }
}

/// A connector layer that tells the attempt polling a connect that it is
/// still pending.
#[derive(Clone, Copy, Debug)]
struct ConnectWatchLayer;

impl<S> tower_layer::Layer<S> for ConnectWatchLayer {
    type Service = ConnectWatch<S>;
    fn layer(&self, inner: S) -> ConnectWatch<S> {
        ConnectWatch(inner)
    }
}

/// See [`ConnectWatchLayer`].
#[derive(Clone, Debug)]
struct ConnectWatch<S>(S);

impl<S, R> tower_service::Service<R> for ConnectWatch<S>
where
    S: tower_service::Service<R>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, request: R) -> Self::Future {
        let mut connect = Box::pin(self.0.call(request));
        Box::pin(std::future::poll_fn(move |cx| {
            let poll = connect.as_mut().poll(cx);
            if poll.is_pending() {
                let _ = ATTEMPT.try_with(|watch| watch.connect_pending_at.set(watch.polls.get()));
            }
            poll
        }))
    }
}

/// Why an exchange failed.
pub(crate) enum Failure {
    /// The connection failed before any of the request was written.
    NotSent {
        /// The limit that expired while connecting, if one did.
        timed_out: Option<Duration>,
        source: BoxError,
    },
    /// The request may have been (partly) written; no complete answer came.
    MaybeSent {
        phase: Option<TimeoutPhase>,
        /// True when a response status arrived before the failure.
        answered: bool,
        source: Option<BoxError>,
    },
    /// The response body exceeded the limit.
    TooLarge { answered: bool },
    /// The proxy refused or could not be reached; nothing reached the service.
    Proxy {
        refusal: ProxyRefusal,
        source: Option<BoxError>,
    },
    /// The TLS handshake failed; nothing was delivered.
    Tls {
        failure: TlsFailure,
        source: BoxError,
    },
}

/// One pooled HTTP client and the settings of the exchange.
#[derive(Clone, Debug)]
pub(crate) struct Http {
    pub client: reqwest::Client,
    pub settings: HttpSettings,
    pub host: String,
    /// The proxy requests to the endpoint go through, without credentials.
    pub proxy: Option<String>,
}

impl Http {
    pub fn new(endpoint: &Url, settings: HttpSettings) -> Result<Http, Error> {
        check_endpoint(endpoint, settings.allow_insecure_http)?;
        crate::netconf::install_crypto_provider();
        let builder = reqwest::Client::builder()
            .connect_timeout(settings.connect_timeout)
            .user_agent(settings.user_agent.clone())
            // A redirected POST turns into a GET; a SOAP call must not follow one.
            .redirect(reqwest::redirect::Policy::none())
            .pool_idle_timeout(Duration::from_secs(60))
            .connector_layer(ConnectWatchLayer);
        let builder = crate::netconf::apply(builder, &settings)?;
        let client = builder
            .build()
            .map_err(|e| Error::invalid_input("HTTP client", format!("cannot be built: {e}")))?;
        let proxy = crate::netconf::proxy_for(endpoint, &settings);
        if let Some(proxy) = &proxy {
            tracing::debug!(%proxy, "requests go through a proxy");
        }
        Ok(Http {
            client,
            host: endpoint.host_str().unwrap_or_default().to_string(),
            settings,
            proxy,
        })
    }

    /// Sends `request` and reads the whole response within the time and size
    /// limits of one attempt. One timer covers the attempt; the phase it was
    /// in when it expired is kept beside it. When it expires while the
    /// attempt is still opening its connection, nothing was written: that is
    /// a connect timeout, never a possibly-sent request.
    pub async fn exchange(&self, request: reqwest::RequestBuilder) -> Result<HttpReply, Failure> {
        ATTEMPT
            .scope(AttemptWatch::default(), self.exchange_watched(request))
            .await
    }

    async fn exchange_watched(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<HttpReply, Failure> {
        let deadline = Instant::now() + self.settings.timeout;
        // Set once the response headers are in: the timeout then expired
        // while reading the body.
        let answered = std::sync::atomic::AtomicBool::new(false);
        let mut untimed = std::pin::pin!(self.exchange_untimed(request, &answered));
        let counted = std::future::poll_fn(|cx| {
            let _ = ATTEMPT.try_with(|watch| watch.polls.set(watch.polls.get() + 1));
            untimed.as_mut().poll(cx)
        });
        match timeout_at(deadline, counted).await {
            Ok(result) => result,
            Err(_elapsed) if ATTEMPT.try_with(AttemptWatch::connecting).unwrap_or(false) => {
                Err(Failure::NotSent {
                    timed_out: Some(self.settings.timeout),
                    source: "the connection was still being opened".into(),
                })
            }
            Err(_elapsed) => {
                let answered = answered.load(std::sync::atomic::Ordering::Relaxed);
                Err(Failure::MaybeSent {
                    phase: Some(if answered {
                        TimeoutPhase::Body
                    } else {
                        TimeoutPhase::Response
                    }),
                    answered,
                    source: None,
                })
            }
        }
    }

    async fn exchange_untimed(
        &self,
        request: reqwest::RequestBuilder,
        answered: &std::sync::atomic::AtomicBool,
    ) -> Result<HttpReply, Failure> {
        let sent = match request.send().await {
            // Proxy refusals and TLS failures: nothing reached the service.
            Err(e) => match crate::netconf::classify(e, self.proxy.is_some()) {
                Ok(failure) => return Err(failure),
                Err(e) => Err(e),
            },
            sent => sent,
        };
        let mut response = match sent {
            Err(e) if e.is_connect() => {
                return Err(Failure::NotSent {
                    timed_out: e.is_timeout().then_some(self.settings.connect_timeout),
                    source: Box::new(e.without_url()),
                })
            }
            Err(e) => {
                return Err(Failure::MaybeSent {
                    phase: e.is_timeout().then_some(TimeoutPhase::Response),
                    answered: false,
                    source: Some(Box::new(e.without_url())),
                })
            }
            Ok(response) => response,
        };
        answered.store(true, std::sync::atomic::Ordering::Relaxed);
        let status = response.status().as_u16();
        if status == 407 && self.proxy.is_some() {
            // A forwarding proxy asks for credentials before it forwards
            // anything: the service has not seen the request.
            return Err(Failure::Proxy {
                refusal: ProxyRefusal::AuthenticationRequired,
                source: None,
            });
        }
        let retry_after = retry_after(response.headers());
        let limit = self.settings.max_response_bytes;
        let declared = response
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > limit) {
            return Err(Failure::TooLarge { answered: true });
        }
        let mut body = Vec::with_capacity(declared.unwrap_or(1024).min(limit) as usize);
        loop {
            match response.chunk().await {
                Err(e) => {
                    return Err(Failure::MaybeSent {
                        phase: None,
                        answered: true,
                        source: Some(Box::new(e.without_url())),
                    })
                }
                Ok(None) => break,
                Ok(Some(chunk)) => {
                    if body.len() as u64 + chunk.len() as u64 > limit {
                        return Err(Failure::TooLarge { answered: true });
                    }
                    body.extend_from_slice(&chunk);
                }
            }
        }
        Ok(HttpReply {
            status,
            retry_after,
            body: Bytes::from(body),
        })
    }

    /// Turns a failed exchange into the caller's error. For a call that changes
    /// state, any failure after the request may have been written becomes
    /// [`Error::OutcomeUnknown`]: it may have taken effect.
    pub fn failure_to_error(
        &self,
        operation: &'static str,
        idempotency: Idempotency,
        failure: Failure,
    ) -> Error {
        let settings = &self.settings;
        match (failure, idempotency) {
            (
                Failure::NotSent {
                    timed_out: Some(limit),
                    ..
                },
                _,
            ) => Error::Timeout {
                operation,
                phase: TimeoutPhase::Connect,
                limit,
            },
            (Failure::NotSent { source, .. }, _) => Error::Transport {
                operation,
                host: self.host.clone(),
                source,
            },
            (
                Failure::MaybeSent {
                    phase,
                    answered,
                    source,
                },
                Idempotency::NotIdempotent { if_unknown },
            ) => {
                let cause = match (phase, answered) {
                    (Some(phase), _) => format!("timed out {phase} after {:?}", settings.timeout),
                    (None, true) => "connection lost while reading the response".to_string(),
                    (None, false) => "connection lost after the request was sent".to_string(),
                };
                Error::OutcomeUnknown {
                    operation,
                    cause,
                    advice: if_unknown,
                    source,
                }
            }
            (
                Failure::MaybeSent {
                    phase: Some(phase), ..
                },
                Idempotency::Idempotent,
            ) => Error::Timeout {
                operation,
                phase,
                limit: settings.timeout,
            },
            (Failure::MaybeSent { source, .. }, Idempotency::Idempotent) => Error::Transport {
                operation,
                host: self.host.clone(),
                source: source.unwrap_or_else(|| "connection lost".into()),
            },
            (Failure::TooLarge { answered: true }, Idempotency::NotIdempotent { if_unknown }) => {
                Error::OutcomeUnknown {
                    operation,
                    cause: format!(
                        "the response exceeds the body size limit of {} bytes and was not read",
                        settings.max_response_bytes
                    ),
                    advice: if_unknown,
                    source: None,
                }
            }
            (Failure::TooLarge { .. }, _) => Error::LimitExceeded {
                operation,
                limit: Limit::BodyBytes(settings.max_response_bytes),
            },
            (Failure::Proxy { refusal, source }, _) => Error::Proxy {
                operation,
                proxy: self.proxy.clone().unwrap_or_default(),
                refusal,
                source,
            },
            (Failure::Tls { failure, source }, _) => Error::Tls {
                operation,
                host: self.host.clone(),
                failure,
                source,
            },
        }
    }
}

impl Http {
    /// Runs `attempt` until it succeeds or the retry policy says stop, inside
    /// one tracing span for the whole call (operation, host, attempts,
    /// elapsed time, outcome; never a secret).
    pub async fn with_retries<T, F, Fut>(
        &self,
        protocol: &'static str,
        operation: &'static str,
        idempotency: Idempotency,
        mut attempt: F,
    ) -> Result<T, Error>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, Error>>,
    {
        use tracing::Instrument;
        let span = tracing::info_span!(
            "ecgridos.call",
            protocol,
            operation,
            host = %self.host,
            attempt = tracing::field::Empty,
            elapsed_ms = tracing::field::Empty,
            outcome = tracing::field::Empty,
        );
        let started = std::time::Instant::now();
        let result = async {
            let mut n = 0;
            loop {
                n += 1;
                tracing::Span::current().record("attempt", n);
                let result = attempt().await;
                let Err(err) = &result else { return result };
                let Some(delay) = self.settings.retry.delay_after(n, err, idempotency) else {
                    return result;
                };
                tracing::debug!(error_kind = %err.kind(), delay_ms = delay.as_millis() as u64, "retrying");
                tokio::time::sleep(delay).await;
            }
        }
        .instrument(span.clone())
        .await;
        span.record("elapsed_ms", started.elapsed().as_millis() as u64);
        match &result {
            Ok(_) => span.record("outcome", "ok"),
            Err(e) => span.record("outcome", tracing::field::display(e.kind())),
        };
        result
    }
}

/// Refuses endpoints that are not http(s), and plain http to anything but
/// loopback unless the caller opted in.
pub(crate) fn check_endpoint(url: &Url, allow_insecure_http: bool) -> Result<(), Error> {
    let Some(loopback) = is_loopback(url) else {
        return Err(Error::invalid_input("endpoint", "has no host"));
    };
    match url.scheme() {
        "https" => Ok(()),
        "http" if loopback || allow_insecure_http => Ok(()),
        "http" => Err(Error::invalid_input(
            "endpoint",
            "plain http:// is refused for a non-loopback host (secrets would cross the network \
             unencrypted); use https:// or opt in with allow_insecure_http",
        )),
        other => Err(Error::invalid_input(
            "endpoint",
            format!("scheme {other:?} is not http or https"),
        )),
    }
}

/// Whether `url`'s host is this machine (`localhost` or a loopback
/// address); `None` when it has no host.
pub(crate) fn is_loopback(url: &Url) -> Option<bool> {
    Some(match url.host()? {
        Host::Domain(d) => d.eq_ignore_ascii_case("localhost"),
        Host::Ipv4(ip) => ip.is_loopback(),
        Host::Ipv6(ip) => ip.is_loopback(),
    })
}

/// Parses an endpoint URL.
pub(crate) fn parse_endpoint(url: &str) -> Result<Url, Error> {
    Url::parse(url).map_err(|e| Error::invalid_input("endpoint", format!("not a URL: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_rules() {
        let ok = |s: &str, insecure| check_endpoint(&parse_endpoint(s).unwrap(), insecure).is_ok();
        assert!(ok("https://os.ecgrid.io/v4.1/prod/ECGridOS.asmx", false));
        assert!(ok("http://127.0.0.1:8080/x", false));
        assert!(ok("http://localhost/x", false));
        assert!(ok("http://[::1]:9/x", false));
        assert!(!ok("http://os.ecgrid.io/x", false));
        assert!(ok("http://os.ecgrid.io/x", true));
        assert!(!ok("ftp://os.ecgrid.io/x", true));
        assert!(parse_endpoint("not a url").unwrap_err().is_invalid_input());
    }

    #[test]
    fn retry_after_in_both_forms_capped_by_the_policy() {
        use std::time::{SystemTime, UNIX_EPOCH};
        // Sun, 06 Nov 1994 08:49:37 GMT
        let now = UNIX_EPOCH + Duration::from_secs(784_111_777);
        assert_eq!(
            parse_retry_after(" 120 ", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:50:07 GMT", now),
            Some(Duration::from_secs(30))
        );
        // A date already past means now.
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
        // An hour ahead from the real clock, through the response headers,
        // then capped by the policy's max_delay.
        let mut headers = HeaderMap::new();
        let later = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(3600));
        headers.insert(RETRY_AFTER, later.parse().unwrap());
        let wait = retry_after(&headers).unwrap();
        assert!(wait > Duration::from_secs(3500), "{wait:?}");
        let busy = Error::HttpStatus {
            operation: "X",
            status: 503,
            snippet: String::new(),
            retry_after: Some(wait),
        };
        let policy = RetryPolicy::default();
        assert_eq!(
            policy.delay_after(1, &busy, Idempotency::Idempotent),
            Some(policy.max_delay)
        );
    }

    #[test]
    fn a_proxy_that_cannot_be_reached_is_retried_like_a_failed_connection() {
        let policy = RetryPolicy::default();
        let proxy = |refusal| Error::Proxy {
            operation: "X",
            proxy: String::new(),
            refusal,
            source: None,
        };
        let rotation = Idempotency::NotIdempotent { if_unknown: "" };
        assert!(policy
            .delay_after(1, &proxy(ProxyRefusal::Unreachable), rotation)
            .is_some());
        assert!(policy
            .delay_after(
                1,
                &proxy(ProxyRefusal::AuthenticationRequired),
                Idempotency::Idempotent
            )
            .is_none());
    }

    #[test]
    fn retry_classes() {
        let policy = RetryPolicy::default();
        let rotation = Idempotency::NotIdempotent { if_unknown: "" };
        let status = |s| Error::HttpStatus {
            operation: "X",
            status: s,
            snippet: String::new(),
            retry_after: None,
        };
        assert!(policy
            .delay_after(1, &status(503), Idempotency::Idempotent)
            .is_some());
        assert!(policy.delay_after(1, &status(503), rotation).is_none());
        assert!(policy
            .delay_after(3, &status(503), Idempotency::Idempotent)
            .is_none());
        assert!(policy
            .delay_after(1, &status(404), Idempotency::Idempotent)
            .is_none());
        let unknown = Error::OutcomeUnknown {
            operation: "X",
            cause: String::new(),
            advice: "",
            source: None,
        };
        assert!(policy.delay_after(1, &unknown, rotation).is_none());
        let connect = Error::Timeout {
            operation: "X",
            phase: TimeoutPhase::Connect,
            limit: Duration::ZERO,
        };
        assert!(policy.delay_after(1, &connect, rotation).is_some());
        let slow = Error::HttpStatus {
            operation: "X",
            status: 429,
            snippet: String::new(),
            retry_after: Some(Duration::from_secs(3600)),
        };
        assert_eq!(
            policy.delay_after(1, &slow, Idempotency::Idempotent),
            Some(policy.max_delay)
        );
        for attempt in 1..3 {
            let d = policy
                .delay_after(attempt, &status(500), Idempotency::Idempotent)
                .unwrap();
            assert!(d <= policy.base_delay * (1 << (attempt - 1)));
        }
    }
}
