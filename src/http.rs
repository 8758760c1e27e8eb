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
/// Default limit on the body of a parcel download (2 GiB, base64 and
/// envelope included): the answer streams to the caller's writer, so this
/// bounds disk use, not memory.
pub const DEFAULT_MAX_DOWNLOAD_BYTES: u64 = 2 * 1024 * 1024 * 1024;
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
        /// response (default 30 s). Parcel downloads and uploads, which may
        /// take long, use it as an idle limit instead: the time allowed
        /// without a byte moving (and for the answer once the upload is sent).
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

        /// Largest body of a parcel download (default 2 GiB, see
        /// [`DEFAULT_MAX_DOWNLOAD_BYTES`](crate::DEFAULT_MAX_DOWNLOAD_BYTES)).
        /// A download streams its decoded content to the caller's writer as
        /// it arrives, so this bounds what is written, not memory; a larger
        /// body stops with [`Error::LimitExceeded`](crate::Error::LimitExceeded).
        /// The rest of the answer (or a fault) stays within
        /// [`max_response_bytes`](Self::max_response_bytes).
        pub fn max_download_bytes(mut self, bytes: u64) -> Self {
            self.http.max_download_bytes = bytes;
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
        /// proxy is used unless [`proxy`](Self::proxy) names one. A loopback
        /// endpoint (`localhost`, `127.0.0.0/8`, `::1`) never goes through
        /// an environment proxy: its credentials would leave the machine,
        /// in clear over `http://`. [`proxy`](Self::proxy) still applies.
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
    pub max_download_bytes: u64,
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
            max_download_bytes: DEFAULT_MAX_DOWNLOAD_BYTES,
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
    /// A reply read elsewhere (the skeleton of a streamed download).
    pub fn new(status: u16, retry_after: Option<Duration>, body: Bytes) -> Self {
        HttpReply {
            status,
            retry_after,
            body,
        }
    }

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
    /// The response body exceeded `limit`.
    TooLarge { answered: bool, limit: u64 },
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
    /// The proxies' credentials, cleared from every error (see
    /// [`redact`](Self::redact)).
    pub proxy_secrets: Vec<crate::secret::Secret>,
}

impl Http {
    pub fn new(endpoint: &Url, mut settings: HttpSettings) -> Result<Http, Error> {
        check_endpoint(endpoint, settings.allow_insecure_http)?;
        // A proxy set for the whole session is meant for the outside world:
        // this machine is reached directly (each client has one endpoint).
        // An explicit proxy keeps NO_PROXY's say.
        if settings.proxy.is_none() && is_loopback(endpoint) == Some(true) {
            settings.proxy_from_env = false;
        }
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
        let proxy_secrets = crate::netconf::proxy_secrets(&settings);
        Ok(Http {
            client,
            host: endpoint.host_str().unwrap_or_default().to_string(),
            settings,
            proxy,
            proxy_secrets,
        })
    }

    /// `err` cleared of `secrets` (a request's) and of the proxies'
    /// credentials, in one pass: the error's snippet is cut only after every
    /// secret is gone from it.
    pub fn redact(&self, err: Error, secrets: &[&str]) -> Error {
        let mut all: Vec<&str> = secrets.to_vec();
        all.extend(self.proxy_secrets.iter().map(crate::secret::Secret::expose));
        err.redact(&all)
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
        let mut response = self.send_head(request).await?;
        answered.store(true, std::sync::atomic::Ordering::Relaxed);
        let status = response.status().as_u16();
        let retry_after = retry_after(response.headers());
        let limit = self.settings.max_response_bytes;
        let declared = response
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > limit) {
            return Err(Failure::TooLarge {
                answered: true,
                limit,
            });
        }
        let mut body = Vec::with_capacity(declared.unwrap_or(1024).min(limit) as usize);
        loop {
            match response.chunk().await {
                Err(e) => return Err(lost_in_body(e)),
                Ok(None) => break,
                Ok(Some(chunk)) => {
                    if body.len() as u64 + chunk.len() as u64 > limit {
                        return Err(Failure::TooLarge {
                            answered: true,
                            limit,
                        });
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

    /// Sends `request` and waits for the response head: classifies a failure
    /// by how far the request got, and a proxy's 407 as a proxy refusal.
    async fn send_head(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, Failure> {
        let sent = match request.send().await {
            // Proxy refusals and TLS failures: nothing reached the service.
            Err(e) => match crate::netconf::classify(e, self.proxy.is_some()) {
                Ok(failure) => return Err(failure),
                Err(e) => Err(e),
            },
            sent => sent,
        };
        let response = match sent {
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
        if response.status().as_u16() == 407 && self.proxy.is_some() {
            // A forwarding proxy asks for credentials before it forwards
            // anything: the service has not seen the request.
            return Err(Failure::Proxy {
                refusal: ProxyRefusal::AuthenticationRequired,
                source: None,
            });
        }
        Ok(response)
    }

    /// Sends `request` (whose body may be a stream) and returns once the
    /// response head is in, with the body still to read piece by piece under
    /// `limit` (see [`Streaming`]).
    ///
    /// The time limit is the client's `timeout`, counted from the last sign
    /// of progress rather than from the start: `progress` (when given) moves
    /// on each time a piece of the request body is read, so a long upload
    /// does not time out while it is moving, and `report` sees each value.
    /// As in [`exchange`](Self::exchange), a limit that expires while the
    /// connection is still being opened means nothing was sent.
    pub async fn open(
        &self,
        request: reqwest::RequestBuilder,
        limit: u64,
        progress: Option<tokio::sync::watch::Receiver<u64>>,
        report: Option<&(dyn Fn(u64) + Send + Sync)>,
    ) -> Result<Streaming, Failure> {
        ATTEMPT
            .scope(AttemptWatch::default(), async move {
                let mut send = std::pin::pin!(self.send_head(request));
                let counted = std::future::poll_fn(|cx| {
                    let _ = ATTEMPT.try_with(|watch| watch.polls.set(watch.polls.get() + 1));
                    send.as_mut().poll(cx)
                });
                let mut counted = std::pin::pin!(counted);
                let mut progress = progress;
                let idle = self.settings.timeout;
                let mut deadline = Instant::now() + idle;
                loop {
                    let watching = progress.is_some();
                    tokio::select! {
                        head = &mut counted => {
                            let response = head?;
                            return Ok(Streaming {
                                status: response.status().as_u16(),
                                retry_after: retry_after(response.headers()),
                                response,
                                idle,
                                limit,
                                received: 0,
                            });
                        }
                        () = tokio::time::sleep_until(deadline) => {
                            return Err(if ATTEMPT.try_with(AttemptWatch::connecting).unwrap_or(false) {
                                Failure::NotSent {
                                    timed_out: Some(idle),
                                    source: "the connection was still being opened".into(),
                                }
                            } else {
                                Failure::MaybeSent {
                                    phase: Some(TimeoutPhase::Response),
                                    answered: false,
                                    source: None,
                                }
                            });
                        }
                        changed = async {
                            match progress.as_mut() {
                                Some(rx) => rx.changed().await.map(|()| *rx.borrow_and_update()),
                                None => std::future::pending().await,
                            }
                        }, if watching => match changed {
                            Ok(sent) => {
                                deadline = Instant::now() + idle;
                                if let Some(report) = report {
                                    report(sent);
                                }
                            }
                            // The body was read to its end: the limit now
                            // runs from here until the answer comes.
                            Err(_) => {
                                progress = None;
                                deadline = Instant::now() + idle;
                            }
                        },
                    }
                }
            })
            .await
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
            (
                Failure::TooLarge {
                    answered: true,
                    limit,
                },
                Idempotency::NotIdempotent { if_unknown },
            ) => Error::OutcomeUnknown {
                operation,
                cause: format!(
                    "the response exceeds the body size limit of {limit} bytes and was not read"
                ),
                advice: if_unknown,
                source: None,
            },
            (Failure::TooLarge { limit, .. }, _) => Error::LimitExceeded {
                operation,
                limit: Limit::BodyBytes(limit),
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

/// The connection was lost while the body was being read.
fn lost_in_body(e: reqwest::Error) -> Failure {
    Failure::MaybeSent {
        phase: None,
        answered: true,
        source: Some(Box::new(e.without_url())),
    }
}

/// A response whose body is read piece by piece, under a size limit and an
/// idle time limit (no piece for the client's `timeout`).
pub(crate) struct Streaming {
    /// The HTTP status.
    pub status: u16,
    retry_after: Option<Duration>,
    response: reqwest::Response,
    idle: Duration,
    limit: u64,
    received: u64,
}

impl Streaming {
    /// The server's `Retry-After`.
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }

    /// The next piece of the body; `None` at its end.
    pub async fn chunk(&mut self) -> Result<Option<Bytes>, Failure> {
        let chunk = match tokio::time::timeout(self.idle, self.response.chunk()).await {
            Err(_elapsed) => {
                return Err(Failure::MaybeSent {
                    phase: Some(TimeoutPhase::Body),
                    answered: true,
                    source: None,
                })
            }
            Ok(Err(e)) => return Err(lost_in_body(e)),
            Ok(Ok(chunk)) => chunk,
        };
        if let Some(chunk) = &chunk {
            self.received += chunk.len() as u64;
            if self.received > self.limit {
                return Err(Failure::TooLarge {
                    answered: true,
                    limit: self.limit,
                });
            }
        }
        Ok(chunk)
    }

    /// Reads the rest of the body into memory (within the limit).
    pub async fn read_all(mut self) -> Result<HttpReply, Failure> {
        let mut body = Vec::new();
        while let Some(chunk) = self.chunk().await? {
            body.extend_from_slice(&chunk);
        }
        Ok(HttpReply {
            status: self.status,
            retry_after: self.retry_after,
            body: Bytes::from(body),
        })
    }
}

/// A file to upload: where it is and the size it had when the upload was
/// prepared (the request's length is computed from it).
#[derive(Clone, Debug)]
pub(crate) struct UploadFile {
    /// The file.
    pub path: std::path::PathBuf,
    /// Its size in bytes.
    pub size: u64,
}

impl Http {
    /// Sends `request` with a body of `prefix`, the base64 of `file` (read
    /// and encoded piece by piece) and `suffix`, and reads the (small)
    /// answer. The `Content-Length` is computed up front from the file's
    /// size; a file that turns out shorter or longer stops the request
    /// (it cannot have been complete) with [`Error::Io`]. `progress` sees
    /// the count of file bytes read.
    pub async fn upload(
        &self,
        spec: &crate::operations::OperationSpec,
        request: reqwest::RequestBuilder,
        prefix: Bytes,
        file: &UploadFile,
        suffix: Bytes,
        progress: Option<&(dyn Fn(u64) + Send + Sync)>,
    ) -> Result<HttpReply, Error> {
        let io = |context: &'static str| {
            move |source| Error::Io {
                operation: spec.name,
                context: context.into(),
                source,
            }
        };
        let opened = tokio::fs::File::open(&file.path)
            .await
            .map_err(io("opening the file to upload"))?;
        let length =
            prefix.len() as u64 + crate::wire::stream::encoded_len(file.size) + suffix.len() as u64;
        let (sent, watch) = tokio::sync::watch::channel(0u64);
        let failed = std::sync::Arc::new(std::sync::Mutex::new(None));
        let body = FileBody {
            stage: Stage::Prefix,
            prefix,
            suffix,
            file: opened,
            buf: vec![0; UPLOAD_PIECE],
            expected: file.size,
            read: 0,
            encoder: crate::wire::stream::Base64Encoder::new(),
            sent,
            failed: failed.clone(),
        };
        let request = request
            .header(CONTENT_LENGTH, length)
            .body(reqwest::Body::wrap_stream(body));
        let result = match self
            .open(
                request,
                self.settings.max_response_bytes,
                Some(watch),
                progress,
            )
            .await
        {
            Ok(streaming) => streaming.read_all().await,
            Err(failure) => Err(failure),
        };
        let failed = failed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(source) = failed {
            return Err(io("reading the file to upload")(source));
        }
        result.map_err(|f| self.failure_to_error(spec.name, spec.idempotency, f))
    }
}

/// File bytes read per piece of an upload body (its base64 is a third
/// larger).
const UPLOAD_PIECE: usize = 192 * 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    Prefix,
    File,
    Suffix,
    Done,
}

/// The body of an upload: prefix, the file's base64, suffix.
struct FileBody {
    stage: Stage,
    prefix: Bytes,
    suffix: Bytes,
    file: tokio::fs::File,
    buf: Vec<u8>,
    expected: u64,
    read: u64,
    encoder: crate::wire::stream::Base64Encoder,
    sent: tokio::sync::watch::Sender<u64>,
    /// Why reading the file failed, for the caller (hyper keeps only text).
    failed: std::sync::Arc<std::sync::Mutex<Option<std::io::Error>>>,
}

impl FileBody {
    fn fail(&mut self, error: std::io::Error) -> Poll<Option<std::io::Result<Bytes>>> {
        let copy = std::io::Error::new(error.kind(), error.to_string());
        *self
            .failed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(error);
        self.stage = Stage::Done;
        Poll::Ready(Some(Err(copy)))
    }
}

impl futures_core::Stream for FileBody {
    type Item = std::io::Result<Bytes>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        use tokio::io::AsyncRead;
        let this = self.get_mut();
        match this.stage {
            Stage::Prefix => {
                this.stage = Stage::File;
                Poll::Ready(Some(Ok(std::mem::take(&mut this.prefix))))
            }
            Stage::File => {
                let mut buf = tokio::io::ReadBuf::new(&mut this.buf);
                match Pin::new(&mut this.file).poll_read(cx, &mut buf) {
                    Poll::Pending => Poll::Pending,
                    Poll::Ready(Err(e)) => this.fail(e),
                    Poll::Ready(Ok(())) => {
                        let n = buf.filled().len();
                        let mut text = Vec::with_capacity(n / 3 * 4 + 4);
                        if n == 0 {
                            if this.read != this.expected {
                                return this.fail(changed_size(this.expected, this.read));
                            }
                            this.encoder.finish(&mut text);
                            this.stage = Stage::Suffix;
                        } else {
                            this.read += n as u64;
                            if this.read > this.expected {
                                return this.fail(changed_size(this.expected, this.read));
                            }
                            this.encoder.feed(&this.buf[..n], &mut text);
                            this.sent.send_replace(this.read);
                        }
                        Poll::Ready(Some(Ok(Bytes::from(text))))
                    }
                }
            }
            Stage::Suffix => {
                this.stage = Stage::Done;
                Poll::Ready(Some(Ok(std::mem::take(&mut this.suffix))))
            }
            Stage::Done => Poll::Ready(None),
        }
    }
}

fn changed_size(expected: u64, read: u64) -> std::io::Error {
    std::io::Error::other(format!(
        "the file changed size while it was read ({expected} bytes expected, {read} read so far)"
    ))
}

/// The retry class of a streamed download: sent again only when nothing
/// was sent, so that no byte reaches the caller's writer twice.
pub(crate) const ONLY_IF_NOT_SENT: Idempotency = Idempotency::NotIdempotent { if_unknown: "" };

/// A failed download exchange as the caller's error: the download limit is
/// always [`Error::LimitExceeded`] (raise it to fetch the parcel).
pub(crate) fn download_failure(
    http: &Http,
    spec: &crate::operations::OperationSpec,
    failure: Failure,
) -> Error {
    match failure {
        Failure::TooLarge { limit, .. } => Error::LimitExceeded {
            operation: spec.name,
            limit: Limit::BodyBytes(limit),
        },
        failure => http.failure_to_error(spec.name, spec.idempotency, failure),
    }
}

/// Why streaming a download stopped, as the caller's error.
pub(crate) fn stream_stop(
    http: &Http,
    spec: &crate::operations::OperationSpec,
    stop: StreamStop,
) -> Error {
    use crate::wire::stream::StreamError;
    match stop {
        StreamStop::Failure(failure) => download_failure(http, spec, failure),
        StreamStop::Extract(StreamError::SkeletonTooLarge { limit }) => Error::LimitExceeded {
            operation: spec.name,
            limit: Limit::BodyBytes(limit as u64),
        },
        StreamStop::Extract(e) => Error::MalformedResponse {
            operation: spec.name,
            reason: e.to_string().into(),
        },
        StreamStop::Write(source) => Error::Io {
            operation: spec.name,
            context: "writing the parcel's bytes".into(),
            source,
        },
    }
}

/// Why streaming a download's body stopped.
pub(crate) enum StreamStop {
    /// The exchange failed.
    Failure(Failure),
    /// The body is not a readable answer.
    Extract(crate::wire::stream::StreamError),
    /// Writing the decoded bytes failed.
    Write(std::io::Error),
}

/// Feeds the body of `streaming` through `extractor`, writing the decoded
/// content to `out` as it arrives (then flushing it) and calling `progress`
/// with the running count of decoded bytes. Memory use is one piece of the
/// body and its decoded bytes, whatever the size of the content.
pub(crate) async fn stream_content<E, W>(
    streaming: &mut Streaming,
    mut extractor: E,
    out: &mut W,
    progress: Option<&(dyn Fn(u64) + Send + Sync)>,
) -> Result<crate::wire::stream::Extracted, StreamStop>
where
    E: crate::wire::stream::ContentExtractor,
    W: tokio::io::AsyncWrite + Unpin + ?Sized,
{
    use tokio::io::AsyncWriteExt;
    let mut decoded = Vec::with_capacity(64 * 1024);
    let mut total = 0u64;
    while let Some(chunk) = streaming.chunk().await.map_err(StreamStop::Failure)? {
        extractor
            .feed(&chunk, &mut decoded)
            .map_err(StreamStop::Extract)?;
        if !decoded.is_empty() {
            out.write_all(&decoded).await.map_err(StreamStop::Write)?;
            total += decoded.len() as u64;
            decoded.clear();
            if let Some(progress) = progress {
                progress(total);
            }
        }
    }
    let extracted = extractor
        .finish(&mut decoded)
        .map_err(StreamStop::Extract)?;
    out.flush().await.map_err(StreamStop::Write)?;
    Ok(extracted)
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
