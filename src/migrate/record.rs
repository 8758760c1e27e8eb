//! The recording proxy behind `ecgridos record`: a pass-through SOAP proxy
//! that forwards each exchange unchanged and appends one JSON line per
//! exchange to a file, without credentials and without parcel content.
//!
//! ```no_run
//! # async fn run() -> std::io::Result<()> {
//! use ecgridos::migrate::record::Recorder;
//!
//! let recorder = Recorder::builder("https://os.ecgrid.io/v4.1/prod/ECGridOS.asmx", "calls.jsonl")
//!     .listen("127.0.0.1:8080".parse().expect("an address"))
//!     .start()
//!     .await?;
//! println!("point the integration at {}", recorder.soap_url());
//! // ... later:
//! let summary = recorder.shutdown().await;
//! println!("{} exchanges recorded", summary.records);
//! # Ok(()) }
//! ```
//!
//! Each line holds: `time` (RFC 3339, UTC), `operation` (from the body's
//! first element, else the SOAPAction), `protocol` (`"1.1"` or `"1.2"`),
//! `method`, `path`, `parameters` (contract names; integers and booleans as
//! JSON numbers and booleans, other values as the text sent), `result` (the
//! contract's JSON form, as `ecgridos call` prints it) or `fault` (`code`,
//! `category`, `message`), `status`, `duration_ms`, `outcome` (`complete`,
//! `client_dropped`, `upstream_dropped`, `upstream_unreachable`), and the
//! byte counts of both bodies.
//!
//! Credentials (`SessionID`, passwords, API keys, every field the contract
//! marks secret, whatever the case of its name, and every name the contract
//! does not know that looks like a credential, see
//! [`is_credential_name`](crate::secret::is_credential_name)) are written
//! as `"<secret:1a2b3c4d>"`, whatever their length: the first 8
//! hex digits of an HMAC-SHA256 under a key drawn at start and held only in
//! memory, so the same secret has the same fingerprint within one recording
//! (sessions can be told apart) and cannot be guessed back from it. Echoes
//! of those values anywhere else in the record (a fault quoting the session
//! ID in upper case, in base64, URL-encoded) are replaced by the same
//! fingerprint (see [`redact_text_with`](crate::secret::redact_text_with)).
//! Parcel
//! content (`s:base64Binary` fields, `Content`, `ContentBase64String`) is
//! written as `{"bytes": N, "sha256": "..."}` of the decoded bytes; any
//! other value over 64 KiB as `{"text_bytes": N, "sha256": "..."}` of its
//! text. A message is read from what is kept of it: its tags and small
//! values, at most 16 MiB (a listing larger than that is forwarded whole,
//! and recorded with its parameters or result as `{"omitted": ...}`).
//!
//! Its connections have the fake's time limits (idle, request headers, a
//! request body that stops arriving) and a cap on how many are served at
//! once; what all exchanges keep together is bounded by a budget
//! ([`RecorderBuilder::max_held_bytes`]), past which an exchange is only
//! counted and recorded with `{"omitted": ...}`.

use std::collections::{HashMap, VecDeque};
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt as _, Full};
use serde_json::{json, Map, Value};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use url::Url;

use super::scan::{is_secret_name, Scanner, CONTENT_NAMES};
use crate::api::request::find;
use crate::error::BoxError;
use crate::fake::conn::{self, ConnService, Received, Timeouts};
use crate::http::{Http, HttpSettings};
use crate::wire::{read_request, Reply, DEFAULT_MAX_DEPTH};

/// Headers that belong to one connection and are not forwarded (`Expect:
/// 100-continue` is answered by the proxy's own server as the body is read).
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "expect",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
];

/// How long connections may take to finish their exchange at shutdown.
const DRAIN: Duration = Duration::from_secs(5);

/// The default [`RecorderBuilder::max_connections`].
pub const DEFAULT_MAX_CONNECTIONS: usize = 512;

/// The default [`RecorderBuilder::max_held_bytes`]: 64 MiB.
pub const DEFAULT_MAX_HELD_BYTES: usize = 64 * 1024 * 1024;

/// Memory is taken from the budget in pieces this large.
const BUDGET_PIECE: usize = 64 * 1024;

/// Configures and starts a [`Recorder`].
#[derive(Debug)]
#[must_use]
pub struct RecorderBuilder {
    listen: SocketAddr,
    upstream: String,
    out: PathBuf,
    namespace: String,
    http: HttpSettings,
    timeouts: Timeouts,
    max_connections: usize,
    max_held_bytes: usize,
}

impl RecorderBuilder {
    conn::timeout_setters!();

    /// How many client connections are served at once (default
    /// [`DEFAULT_MAX_CONNECTIONS`], and never more than half the process's
    /// file descriptor limit allows: each may hold an upstream connection
    /// too). More wait to be accepted until the time limits close some.
    pub fn max_connections(mut self, max: usize) -> Self {
        self.max_connections = max;
        self
    }

    /// How much memory all exchanges together may hold to read their
    /// messages (default [`DEFAULT_MAX_HELD_BYTES`]); an exchange that would
    /// take more is only counted from then on, and recorded with its
    /// parameters or result `{"omitted": ...}`.
    pub fn max_held_bytes(mut self, max: usize) -> Self {
        self.max_held_bytes = max;
        self
    }

    /// Address to listen on (default `127.0.0.1:0`, an ephemeral port).
    pub fn listen(mut self, addr: SocketAddr) -> Self {
        self.listen = addr;
        self
    }

    /// The service namespace used to read answers (default
    /// `https://os.ecgrid.io/`).
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = namespace.into();
        self
    }

    crate::http::http_setters!();

    /// Opens the recording (appended to; created with mode 0600), binds the
    /// listening socket and starts serving.
    pub async fn start(self) -> std::io::Result<Recorder> {
        let invalid = |e: crate::Error| std::io::Error::new(std::io::ErrorKind::InvalidInput, e);
        let upstream = crate::http::parse_endpoint(&self.upstream).map_err(invalid)?;
        // Reading a large answer is the client's business, not the proxy's;
        // the timeout of one attempt does not apply to a stream either.
        let http = Http::new(&upstream, self.http).map_err(invalid)?;
        let file = open_private(&self.out)?;
        let listener = TcpListener::bind(self.listen).await?;
        let addr = listener.local_addr()?;
        let (records, receiver) = mpsc::unbounded_channel();
        let writer = tokio::task::spawn_blocking(move || write_records(file, receiver));
        let key_bytes: [u8; 32] = ring::rand::generate(&ring::rand::SystemRandom::new())
            .map_err(|_| std::io::Error::other("no random numbers for the fingerprint key"))?
            .expose();
        let shared = Arc::new(Shared {
            client: http.client,
            upstream: upstream.clone(),
            namespace: self.namespace,
            key: ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &key_bytes),
            records,
            budget: Budget {
                limit: self.max_held_bytes,
                held: AtomicUsize::new(0),
            },
        });
        let (stop, stopped) = watch::channel(false);
        let max_connections = self.max_connections.min(descriptor_room());
        // No handler answers 408 here: a stalled body closes its connection.
        let timeouts = Timeouts {
            body_stall: Some(self.timeouts.body),
            ..self.timeouts
        };
        let server = tokio::spawn(conn::serve(
            conn::Incoming::Plain(listener),
            RecorderService(shared),
            timeouts,
            max_connections,
            stopped,
        ));
        tracing::info!(%addr, upstream = %origin(&upstream), max_connections, "recording proxy listening");
        Ok(Recorder {
            addr,
            upstream,
            stop,
            server,
            writer,
        })
    }
}

/// How many connections the file descriptor limit leaves room for: each
/// client connection may hold an upstream one, and some are kept for the
/// rest (the recording, the runtime).
fn descriptor_room() -> usize {
    #[cfg(unix)]
    {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit writes into the local it is given.
        if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0 {
            let fds = usize::try_from(limit.rlim_cur).unwrap_or(usize::MAX);
            return (fds.saturating_sub(32) / 2).max(1);
        }
    }
    usize::MAX
}

/// Opens `path` for appending, creating it readable by its owner only.
fn open_private(path: &std::path::Path) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.append(true).create(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)
}

/// Appends each record as one line, flushed before the next; returns how
/// many were written and how many could not be.
fn write_records(
    mut file: std::fs::File,
    mut receiver: mpsc::UnboundedReceiver<Value>,
) -> RecordSummary {
    let mut summary = RecordSummary::default();
    while let Some(record) = receiver.blocking_recv() {
        let mut line = record.to_string();
        line.push('\n');
        match file.write_all(line.as_bytes()).and_then(|()| file.flush()) {
            Ok(()) => summary.records += 1,
            Err(e) => {
                summary.failed += 1;
                tracing::error!(error = %e, "a record could not be written");
            }
        }
    }
    summary
}

/// What a recording held when it was closed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RecordSummary {
    /// Records written.
    pub records: u64,
    /// Records that could not be written (the file refused them).
    pub failed: u64,
}

/// A running recording proxy.
#[derive(Debug)]
pub struct Recorder {
    addr: SocketAddr,
    upstream: Url,
    stop: watch::Sender<bool>,
    server: JoinHandle<()>,
    writer: JoinHandle<RecordSummary>,
}

impl Recorder {
    /// A builder forwarding to `upstream` (the SOAP endpoint URL) and
    /// recording into `out`.
    pub fn builder(upstream: impl Into<String>, out: impl Into<PathBuf>) -> RecorderBuilder {
        RecorderBuilder {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            upstream: upstream.into(),
            out: out.into(),
            namespace: crate::wire::DEFAULT_NAMESPACE.to_string(),
            http: HttpSettings::default(),
            timeouts: Timeouts::default(),
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_held_bytes: DEFAULT_MAX_HELD_BYTES,
        }
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The URL to give the integration: this proxy with the upstream's path
    /// (requests keep their own path and query when forwarded).
    pub fn soap_url(&self) -> String {
        let mut path = self.upstream.path().to_string();
        if let Some(query) = self.upstream.query() {
            path.push('?');
            path.push_str(query);
        }
        format!("http://{}{path}", self.addr)
    }

    /// Stops accepting, lets exchanges in progress finish (a few seconds
    /// at most), and closes the recording once every record is written.
    pub async fn shutdown(mut self) -> RecordSummary {
        let _ = self.stop.send(true);
        if tokio::time::timeout(DRAIN, &mut self.server).await.is_err() {
            // Aborted exchanges are recorded as dropped when their bodies go.
            self.server.abort();
            let _ = (&mut self.server).await;
        }
        self.writer.await.unwrap_or_default()
    }
}

/// What every exchange of one recorder shares.
struct Shared {
    client: reqwest::Client,
    upstream: Url,
    namespace: String,
    key: ring::hmac::Key,
    records: mpsc::UnboundedSender<Value>,
    budget: Budget,
}

/// The memory all exchanges may hold together to read their messages.
struct Budget {
    limit: usize,
    held: AtomicUsize,
}

impl Budget {
    /// Takes `bytes`, unless that would pass the limit.
    fn take(&self, bytes: usize) -> bool {
        self.held
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| {
                held.checked_add(bytes).filter(|&n| n <= self.limit)
            })
            .is_ok()
    }

    fn give_back(&self, bytes: usize) {
        self.held.fetch_sub(bytes, Ordering::AcqRel);
    }
}

/// The recorder's handler as a connection's service.
#[derive(Clone)]
struct RecorderService(Arc<Shared>);

impl ConnService for RecorderService {
    type Body = ProxyBody;
    type BodyError = BoxError;
    type Future = Pin<
        Box<dyn std::future::Future<Output = Result<hyper::Response<ProxyBody>, BoxError>> + Send>,
    >;

    fn call(&self, request: hyper::Request<Received>, _peer: SocketAddr) -> Self::Future {
        Box::pin(handle(self.0.clone(), request))
    }
}

impl Shared {
    /// The short keyed fingerprint of a secret.
    fn fingerprint(&self, secret: &[u8]) -> String {
        let tag = ring::hmac::sign(&self.key, secret);
        format!("<secret:{}>", &super::scan::hex(&tag.as_ref()[..4]))
    }
}

/// `scheme://host:port` of a URL, without credentials.
fn origin(url: &Url) -> String {
    url.origin().ascii_serialization()
}

type ProxyBody = BoxBody<Bytes, BoxError>;

/// Forwards one exchange; the record is written when its response ends.
async fn handle(
    shared: Arc<Shared>,
    request: hyper::Request<Received>,
) -> Result<hyper::Response<ProxyBody>, BoxError> {
    let (parts, body) = request.into_parts();
    let mut url = shared.upstream.clone();
    url.set_path(parts.uri.path());
    url.set_query(parts.uri.query());
    let headers = &parts.headers;
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let content_type = header("content-type").unwrap_or_default();
    let (protocol, action) = if content_type.starts_with("application/soap+xml") {
        let action = content_type
            .split(';')
            .filter_map(|p| p.trim().strip_prefix("action="))
            .next()
            .map(|a| a.trim_matches('"').to_string());
        (Some("1.2"), action)
    } else if content_type.starts_with("text/xml") {
        let action = header("soapaction").map(|a| a.trim_matches('"').to_string());
        (Some("1.1"), action)
    } else {
        (None, None)
    };
    let exchange = Arc::new(Exchange {
        shared: shared.clone(),
        started: Instant::now(),
        time: SystemTime::now(),
        method: parts.method.to_string(),
        path: parts.uri.path().to_string(),
        protocol,
        action,
        state: Mutex::new(ExchangeState {
            request: Scanner::new(&CONTENT_NAMES),
            response: Scanner::new(&CONTENT_NAMES),
            request_complete: false,
            client_dropped: false,
            status: None,
            recorded: false,
            held: 0,
        }),
    });
    let mut forward = reqwest::header::HeaderMap::new();
    for (name, value) in headers {
        if !HOP_BY_HOP.contains(&name.as_str()) {
            forward.append(name.clone(), value.clone());
        }
    }
    let observed = Observed::new(body, exchange.clone(), Side::Request);
    let sent = shared
        .client
        .request(parts.method.clone(), url)
        .headers(forward)
        .body(reqwest::Body::wrap(observed))
        .send()
        .await;
    let response = match sent {
        Ok(response) => response,
        Err(e) => {
            let client_dropped = exchange.state().client_dropped;
            if client_dropped {
                exchange.record(Outcome::ClientDropped);
                return Err("the client dropped the request".into());
            }
            if e.is_connect() {
                exchange.record(Outcome::UpstreamUnreachable);
                let body = Full::new(Bytes::from_static(
                    b"ecgridos record: the upstream could not be reached\n",
                ))
                .map_err(|never| match never {})
                .boxed();
                let mut reply = hyper::Response::new(body);
                *reply.status_mut() = hyper::StatusCode::BAD_GATEWAY;
                return Ok(reply);
            }
            // The upstream took the request and dropped: so does the proxy.
            exchange.record(Outcome::UpstreamDropped);
            return Err(Box::new(e.without_url()));
        }
    };
    let response: http::Response<reqwest::Body> = response.into();
    let (parts, body) = response.into_parts();
    exchange.state().status = Some(parts.status.as_u16());
    let body = Observed::new(body, exchange, Side::Response);
    let mut reply = hyper::Response::new(body.map_err(Into::into).boxed());
    *reply.status_mut() = parts.status;
    for (name, value) in &parts.headers {
        if !HOP_BY_HOP.contains(&name.as_str()) {
            reply.headers_mut().append(name.clone(), value.clone());
        }
    }
    Ok(reply)
}

/// How an exchange ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    Complete,
    ClientDropped,
    UpstreamDropped,
    UpstreamUnreachable,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Outcome::Complete => "complete",
            Outcome::ClientDropped => "client_dropped",
            Outcome::UpstreamDropped => "upstream_dropped",
            Outcome::UpstreamUnreachable => "upstream_unreachable",
        }
    }
}

/// One request and its response, observed as they pass.
struct Exchange {
    shared: Arc<Shared>,
    started: Instant,
    time: SystemTime,
    method: String,
    path: String,
    protocol: Option<&'static str>,
    action: Option<String>,
    state: Mutex<ExchangeState>,
}

struct ExchangeState {
    request: Scanner,
    response: Scanner,
    request_complete: bool,
    client_dropped: bool,
    status: Option<u16>,
    recorded: bool,
    /// Bytes taken from the recorder's budget.
    held: usize,
}

/// Which body an [`Observed`] carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Side {
    Request,
    Response,
}

impl Exchange {
    fn state(&self) -> MutexGuard<'_, ExchangeState> {
        // Every update leaves the state consistent: a poisoned lock is fine.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn observe(&self, side: Side, bytes: &[u8]) {
        let mut state = self.state();
        let scanner = match side {
            Side::Request => &mut state.request,
            Side::Response => &mut state.response,
        };
        scanner.feed(bytes);
        let need = state.request.footprint() + state.response.footprint();
        if need <= state.held {
            return;
        }
        let more = (need - state.held).next_multiple_of(BUDGET_PIECE);
        if self.shared.budget.take(more) {
            state.held += more;
            return;
        }
        // Over the budget: this side is only counted from now on.
        match side {
            Side::Request => state.request.give_up(),
            Side::Response => state.response.give_up(),
        }
        let need = state.request.footprint() + state.response.footprint();
        let spare = state
            .held
            .saturating_sub(need.next_multiple_of(BUDGET_PIECE));
        state.held -= spare;
        self.shared.budget.give_back(spare);
    }

    /// The body of `side` ended (`ok`), failed, or was dropped unfinished.
    fn body_done(&self, side: Side, how: BodyEnd) {
        match (side, how) {
            (Side::Request, BodyEnd::Ended) => self.state().request_complete = true,
            (Side::Request, BodyEnd::Failed) => self.state().client_dropped = true,
            (Side::Request, BodyEnd::Dropped) => {}
            (Side::Response, BodyEnd::Ended) => self.record(Outcome::Complete),
            (Side::Response, BodyEnd::Failed) => self.record(Outcome::UpstreamDropped),
            (Side::Response, BodyEnd::Dropped) => self.record(Outcome::ClientDropped),
        }
    }

    /// Writes the exchange's record (once).
    fn record(&self, outcome: Outcome) {
        let mut state = self.state();
        if std::mem::replace(&mut state.recorded, true) {
            return;
        }
        let record = self.build(&mut state, outcome);
        drop(state);
        // The writer is gone only after shutdown, when nothing is recorded.
        let _ = self.shared.records.send(record);
    }

    fn build(&self, state: &mut ExchangeState, outcome: Outcome) -> Value {
        let shared = &*self.shared;
        let operation = state.request.body_child().map(str::to_string).or_else(|| {
            let action = self.action.as_deref()?;
            Some(action.rsplit('/').next().unwrap_or(action).to_string())
        });
        let entry = operation.as_deref().and_then(find);
        let mut secrets = Secrets::default();
        let mut record = Map::new();
        record.insert("time".into(), json!(crate::wire::rfc3339_utc(self.time)));
        record.insert("operation".into(), json!(operation));
        record.insert("protocol".into(), json!(self.protocol));
        record.insert("method".into(), json!(self.method));
        record.insert("path".into(), json!(self.path));
        let request_digests = by_name(state.request.take_digests());
        let parameters = match state.request.kept() {
            Some(kept) if self.method == "POST" => parameters(
                kept,
                &shared.namespace,
                entry,
                request_digests,
                &mut secrets,
                shared,
            ),
            Some(_) => Value::Null,
            None => json!({ "omitted": "the request is larger than the recorder keeps" }),
        };
        record.insert("parameters".into(), parameters);
        let response_digests = by_name(state.response.take_digests());
        if outcome == Outcome::Complete && entry.is_some() && state.response.kept().is_none() {
            record.insert(
                "result".into(),
                json!({ "omitted": "the answer is larger than the recorder keeps" }),
            );
        }
        if let (Some(entry), true, Some(kept)) =
            (entry, outcome == Outcome::Complete, state.response.kept())
        {
            let digests = response_digests;
            match (entry.read_json)(kept, &shared.namespace, DEFAULT_MAX_DEPTH) {
                Ok(Reply::Result(mut value)) => {
                    if entry.info.result.secret {
                        secret_field(&mut value, &mut secrets, shared);
                    }
                    let mut digests = digests;
                    patch(&mut value, &mut digests, &mut secrets, shared);
                    record.insert("result".into(), value);
                }
                Ok(Reply::Fault(fault)) => {
                    record.insert(
                        "fault".into(),
                        json!({
                            "code": fault.code.as_soap11(),
                            "category": fault.category().map(|c| c.as_str().to_string()),
                            "message": fault.message,
                        }),
                    );
                }
                Err(e) => {
                    record.insert("unreadable".into(), json!(e.to_string()));
                }
            }
        }
        record.insert("status".into(), json!(state.status));
        let millis = self.started.elapsed().as_secs_f64() * 1000.0;
        record.insert(
            "duration_ms".into(),
            json!((millis * 1000.0).round() / 1000.0),
        );
        record.insert("outcome".into(), json!(outcome.as_str()));
        record.insert("request_bytes".into(), json!(state.request.seen()));
        record.insert("response_bytes".into(), json!(state.response.seen()));
        if outcome == Outcome::ClientDropped && !state.request_complete {
            record.insert("request_complete".into(), json!(false));
        }
        let mut record = Value::Object(record);
        secrets.replace_in(&mut record, shared);
        record
    }
}

impl Drop for Exchange {
    fn drop(&mut self) {
        let held = self.state().held;
        self.shared.budget.give_back(held);
    }
}

/// Secret values met in one exchange, replaced by their fingerprints
/// wherever they occur in its record.
#[derive(Default)]
struct Secrets {
    values: Vec<String>,
}

impl Secrets {
    fn add(&mut self, value: &Value) {
        match value {
            Value::String(s) if !s.is_empty() => self.values.push(s.clone()),
            Value::Number(n) => self.values.push(n.to_string()),
            _ => {}
        }
    }

    /// Replaces every occurrence of a secret, in any form an echo may take
    /// (see [`crate::secret::redact_text_with`]), in the strings of `value`.
    fn replace_in(&self, value: &mut Value, shared: &Shared) {
        if self.values.is_empty() {
            return;
        }
        let secrets: Vec<&str> = self.values.iter().map(String::as_str).collect();
        let prints: Vec<String> = secrets
            .iter()
            .map(|s| shared.fingerprint(s.as_bytes()))
            .collect();
        walk_strings(value, &mut |text| {
            // A fingerprint already stands for a secret: searching it would
            // only find hex digits a short secret may share with it.
            if text.starts_with("<secret:") && text.ends_with('>') && text.len() == 17 {
                return;
            }
            let redacted = crate::secret::redact_text_with(text, &secrets, |i| prints[i].clone());
            if redacted != *text {
                *text = redacted;
            }
        });
    }
}

fn walk_strings(value: &mut Value, f: &mut dyn FnMut(&mut String)) {
    match value {
        Value::String(s) => f(s),
        Value::Array(items) => items.iter_mut().for_each(|v| walk_strings(v, f)),
        Value::Object(map) => map.values_mut().for_each(|v| walk_strings(v, f)),
        _ => {}
    }
}

/// Digests by element name, each name's in document order.
fn by_name(digests: Vec<(String, Value)>) -> HashMap<String, VecDeque<Value>> {
    let mut map: HashMap<String, VecDeque<Value>> = HashMap::new();
    for (name, digest) in digests {
        map.entry(name).or_default().push_back(digest);
    }
    map
}

/// Puts the digests of hashed values where the reduced document left them
/// empty, and replaces (and notes) the values of secret fields.
fn patch(
    value: &mut Value,
    digests: &mut HashMap<String, VecDeque<Value>>,
    secrets: &mut Secrets,
    shared: &Shared,
) {
    match value {
        Value::Array(items) => items
            .iter_mut()
            .for_each(|v| patch(v, digests, secrets, shared)),
        Value::Object(map) => {
            for (name, field) in map.iter_mut() {
                if field.as_str() == Some("") {
                    if let Some(digest) = digests.get_mut(name).and_then(VecDeque::pop_front) {
                        *field = digest;
                    }
                }
                if is_secret_name(name) {
                    secret_field(field, secrets, shared);
                } else {
                    patch(field, digests, secrets, shared);
                }
            }
        }
        _ => {}
    }
}

/// A secret field's value, replaced by its fingerprint whatever its length
/// (a digest of hashed content stands in for its text); the value is noted
/// so that its echoes elsewhere in the record are replaced too.
fn secret_field(field: &mut Value, secrets: &mut Secrets, shared: &Shared) {
    let text = match field {
        Value::Object(digest) => {
            let sha = digest.get("sha256").and_then(Value::as_str).unwrap_or("");
            format!("sha256:{sha}")
        }
        Value::String(s) if s.is_empty() => return,
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => return,
    };
    secrets.add(&Value::String(text.clone()));
    *field = Value::String(shared.fingerprint(text.as_bytes()));
}

/// The parameters of a request, by contract name.
fn parameters(
    kept: &[u8],
    namespace: &str,
    entry: Option<&crate::api::OperationEntry>,
    mut digests: HashMap<String, VecDeque<Value>>,
    secrets: &mut Secrets,
    shared: &Shared,
) -> Value {
    let request = match read_request(kept, namespace, DEFAULT_MAX_DEPTH) {
        Ok(r) => r,
        Err(e) => return json!({ "unreadable": e.to_string() }),
    };
    let mut params = Map::new();
    for param in request.params {
        let spec = entry.and_then(|e| {
            e.info
                .params
                .iter()
                .find(|p| p.name.eq_ignore_ascii_case(&param.name))
        });
        let hashed = param
            .value
            .is_empty()
            .then(|| digests.get_mut(&param.name).and_then(VecDeque::pop_front))
            .flatten();
        let mut value = match (hashed, spec.map(|s| s.xsd_type)) {
            (Some(digest), _) => digest,
            (None, Some("s:int" | "s:long" | "s:short" | "s:unsignedByte")) => param
                .value
                .trim()
                .parse::<i64>()
                .map_or_else(|_| Value::String(param.value.clone()), Value::from),
            (None, Some("s:boolean")) => match param.value.trim() {
                "true" | "1" => Value::Bool(true),
                "false" | "0" => Value::Bool(false),
                _ => Value::String(param.value.clone()),
            },
            (None, _) => Value::String(param.value),
        };
        if spec.is_some_and(|s| s.secret) || is_secret_name(&param.name) {
            secret_field(&mut value, secrets, shared);
        }
        params.insert(param.name, value);
    }
    Value::Object(params)
}

/// How a body stream ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum BodyEnd {
    Ended,
    Failed,
    Dropped,
}

/// A body passed through while the exchange observes its bytes.
struct Observed<B> {
    inner: B,
    exchange: Arc<Exchange>,
    side: Side,
    ended: bool,
    /// The length it declared, when it did: once that much has passed it
    /// is whole, even if it is dropped without being polled to its end.
    declared: Option<u64>,
    passed: u64,
}

impl<B: Body> Observed<B> {
    fn new(inner: B, exchange: Arc<Exchange>, side: Side) -> Self {
        let declared = inner.size_hint().exact();
        Observed {
            inner,
            exchange,
            side,
            ended: false,
            declared,
            passed: 0,
        }
    }
}

impl<B> Body for Observed<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.exchange.observe(this.side, data);
                    this.passed += data.len() as u64;
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                this.ended = true;
                this.exchange.body_done(this.side, BodyEnd::Failed);
                Poll::Ready(Some(Err(e.into())))
            }
            Poll::Ready(None) => {
                this.ended = true;
                this.exchange.body_done(this.side, BodyEnd::Ended);
                Poll::Ready(None)
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl<B> Drop for Observed<B> {
    fn drop(&mut self) {
        if !self.ended {
            let how = if self.declared.is_some_and(|n| self.passed >= n) {
                BodyEnd::Ended
            } else {
                BodyEnd::Dropped
            };
            self.exchange.body_done(self.side, how);
        }
    }
}
