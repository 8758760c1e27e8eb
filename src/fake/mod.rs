//! An embedded fake ECGridOS: the SOAP endpoint and the REST v2 endpoints over
//! one in-memory state, for tests and migration harnesses that must never
//! touch the real service (where each `GenerateAPIKey` destroys a live key).
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use ecgridos::fake::FakeServer;
//! use ecgridos::{Client, UserId};
//!
//! let server = FakeServer::start().await?;
//! let client = Client::builder().endpoint(server.soap_url()).build()?;
//! let alice = server.user("alice").expect("seeded");
//! let new_key = client.generate_api_key(&alice.api_key.clone().unwrap(), UserId::from(alice.user_id)).await?;
//! assert_eq!(server.api_key(alice.user_id), Some(new_key));
//! server.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! It speaks plain HTTP by default; [`FakeServerBuilder::tls`] makes it serve
//! HTTPS with a CA made at start ([`FakeServer::tls`] gives the CA
//! certificate to trust, and the client certificate when it requires one).
//!
//! Authorization follows the service's documented levels: a user may read and
//! rotate their own key; `NetworkAdmin` may act on users of its own network;
//! `NetOps`, `TechOps` and `Root` on anyone; everyone else only on themselves.
//!
//! It also models the mailbox: every user has a network, a mailbox and an
//! ECGrid ID; uploads are routed by their EDI envelope or explicit ECGrid
//! IDs; the SOAP parcel operations and the REST v2 parcel routes share one
//! state; downloads and uploads stream. [`FakeServer::deliver`] fills an
//! inbox, and [`FakeServer::parcel`], [`FakeServer::events`] and
//! [`FakeServerBuilder::on_parcel_event`] let a test check what happened and
//! in which order:
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use ecgridos::api::parcel::{ParcelDownloadConfirm, ParcelInBox};
//! use ecgridos::fake::{FakeServer, ParcelEventKind};
//! use ecgridos::{Client, SessionId};
//!
//! let server = FakeServer::start().await?;
//! let id = server.deliver("bob", "order.edi", b"UNB+UNOA:1+ACME:ZZ+BOB:ZZ'".to_vec()).expect("bob exists");
//! let client = Client::builder().endpoint(server.soap_url()).build()?;
//! let bob = SessionId::from(server.user("bob").expect("seeded").api_key.expect("has a key"));
//! let mut list = ParcelInBox::default();
//! list.session_id = Some(bob.clone());
//! let inbox = client.call(list).await?.expect("a collection");
//! assert_eq!(inbox.total_records, 1);
//! let mut confirm = ParcelDownloadConfirm::default();
//! confirm.session_id = Some(bob);
//! confirm.parcel_id = id;
//! assert!(client.call(confirm).await?);
//! let kinds: Vec<_> = server.parcel_events(id).iter().map(|e| e.kind).collect();
//! assert_eq!(kinds, [ParcelEventKind::Delivered, ParcelEventKind::Confirmed]);
//! # Ok(()) }
//! ```

pub(crate) mod conn;
mod download;
mod mailbox;
mod rest;
mod rest_areas;
mod rest_parcels;
mod soap;
mod state;
mod stubs;
mod tls;
mod upload;

pub use mailbox::{
    ParcelEvent, ParcelEventKind, DEFAULT_PAGE_SIZE, ECGRID_ID_BASE, PARTNER_ECGRID_ID,
    PARTNER_MAILBOX_ID, PARTNER_NETWORK_ID,
};
pub use rest_parcels::EVENTS_PATH;
pub use state::{SeedUser, UserMailbox};
pub use stubs::StubFault;
pub use tls::{FakeTls, TlsMaterial};

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::routing::{get, post};
use axum::Router;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::secret::ApiKey;
use state::State;

/// The WSDL this crate ships, served by the fake at `…/ECGridOS.asmx?WSDL`.
pub const WSDL: &str = include_str!("../../wsdl/ECGridOS.wsdl");

/// The path of the SOAP endpoint.
pub const SOAP_PATH: &str = "/v4.1/prod/ECGridOS.asmx";

/// Which documented shape of ECGridOS fault detail the fake writes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DetailShape {
    /// The newer `ECGridOSSOAPErrorCode` category alone (the default).
    #[default]
    Category,
    /// The older `ErrorCode`/`ErrorString`/`ErrorItem`/`ErrorMessage`.
    Legacy,
    /// Both at once.
    Both,
}

struct Shared {
    state: State,
    stubs: stubs::Stubs,
    namespace: String,
    detail_shape: DetailShape,
    soap_url: String,
    /// The cap of an upload body.
    max_upload: usize,
    /// How long an upload body may stall between two pieces.
    body_timeout: Duration,
}

/// Why a request body was not read.
enum BodyError {
    /// Too large, too slow or broken: this answer, closing the connection.
    Refused(axum::response::Response),
    /// An upload whose content is not base64; the text says why.
    Invalid(String),
}

/// Reads a request body: an upload (see [`is_upload`]) through the content
/// splitter, decoding its base64 as it arrives; anything else whole (the
/// middleware already read it within the 2 MiB cap). Returns the body (the
/// skeleton, for an upload) and the decoded content.
async fn read_body(
    shared: &Shared,
    request: axum::extract::Request,
    format: upload::Format,
) -> Result<(axum::body::Bytes, Option<bytes::Bytes>), BodyError> {
    use axum::http::{header, StatusCode};
    use axum::response::IntoResponse;
    let refuse = |status: StatusCode, why: String| {
        BodyError::Refused((status, [(header::CONNECTION, "close")], why).into_response())
    };
    if !is_upload(&request, &shared.namespace) {
        return axum::body::to_bytes(request.into_body(), conn::MAX_BODY)
            .await
            .map(|body| (body, None))
            .map_err(|e| refuse(StatusCode::BAD_REQUEST, e.to_string()));
    }
    let read = upload::read(
        request.into_body(),
        format,
        shared.max_upload,
        shared.body_timeout,
    );
    match read.await {
        Ok(split) => Ok(split),
        Err(upload::ReadFailure::TooLarge) => Err(refuse(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body larger than {} bytes", shared.max_upload),
        )),
        Err(upload::ReadFailure::Stalled) => Err(refuse(
            StatusCode::REQUEST_TIMEOUT,
            "request body too slow".to_string(),
        )),
        Err(upload::ReadFailure::Broken) => Err(refuse(
            StatusCode::BAD_REQUEST,
            "request body broken".to_string(),
        )),
        Err(upload::ReadFailure::Invalid(why)) => Err(BodyError::Invalid(why)),
    }
}

/// Configures and starts a [`FakeServer`].
#[must_use]
pub struct FakeServerBuilder {
    listen: SocketAddr,
    users: Option<Vec<SeedUser>>,
    session_timeout: Duration,
    detail_shape: DetailShape,
    namespace: String,
    latency: Duration,
    timeouts: conn::Timeouts,
    tls: Option<FakeTls>,
    inbox_page_size: usize,
    max_upload_bytes: usize,
    on_parcel_event: Option<state::EventHook>,
    rest_overrides: Vec<rest_areas::RestOverride>,
}

impl std::fmt::Debug for FakeServerBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeServerBuilder")
            .field("listen", &self.listen)
            .field("inbox_page_size", &self.inbox_page_size)
            .field("max_upload_bytes", &self.max_upload_bytes)
            .finish_non_exhaustive()
    }
}

/// The default [`FakeServerBuilder::max_upload_bytes`]: 256 MiB.
pub const DEFAULT_MAX_UPLOAD_BYTES: usize = 256 * 1024 * 1024;

impl Default for FakeServerBuilder {
    fn default() -> Self {
        FakeServerBuilder {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            users: None,
            session_timeout: Duration::from_secs(20 * 60),
            detail_shape: DetailShape::default(),
            namespace: crate::wire::DEFAULT_NAMESPACE.to_string(),
            latency: Duration::ZERO,
            timeouts: conn::Timeouts::default(),
            tls: None,
            inbox_page_size: DEFAULT_PAGE_SIZE,
            max_upload_bytes: DEFAULT_MAX_UPLOAD_BYTES,
            on_parcel_event: None,
            rest_overrides: Vec::new(),
        }
    }
}

impl FakeServerBuilder {
    /// Address to listen on (default `127.0.0.1:0`, an ephemeral port).
    pub fn listen(mut self, addr: SocketAddr) -> Self {
        self.listen = addr;
        self
    }

    /// The users to seed (default [`SeedUser::defaults`]).
    pub fn users(mut self, users: Vec<SeedUser>) -> Self {
        self.users = Some(users);
        self
    }

    /// Inactivity after which a session expires (default 20 minutes).
    pub fn session_timeout(mut self, timeout: Duration) -> Self {
        self.session_timeout = timeout;
        self
    }

    /// The fault detail shape (default [`DetailShape::Category`]).
    pub fn detail_shape(mut self, shape: DetailShape) -> Self {
        self.detail_shape = shape;
        self
    }

    /// The service namespace (default `https://os.ecgrid.io/`).
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = namespace.into();
        self
    }

    /// Delay before each request is handled (default none): makes races and
    /// interruptions reproducible in tests.
    pub fn latency(mut self, latency: Duration) -> Self {
        self.latency = latency;
        self
    }

    conn::timeout_setters!();

    /// Serve HTTPS instead of plain HTTP, with certificates made at start
    /// (see [`FakeServer::tls`] for the CA certificate to trust).
    pub fn tls(mut self, tls: FakeTls) -> Self {
        self.tls = Some(tls);
        self
    }

    /// Parcels per page of the inbox and outbox listings (default
    /// [`DEFAULT_PAGE_SIZE`], 25; the real service's page size is not
    /// published). `ParcelInBox` and its kin take no page number, so they
    /// answer the first page of unconfirmed parcels.
    pub fn inbox_page_size(mut self, page_size: usize) -> Self {
        self.inbox_page_size = page_size.max(1);
        self
    }

    /// The largest request body of a parcel upload (the `ParcelUpload…` SOAP
    /// operations and `POST /v2/parcels/upload`); default
    /// [`DEFAULT_MAX_UPLOAD_BYTES`], 256 MiB. Every other request keeps the
    /// 2 MiB cap.
    pub fn max_upload_bytes(mut self, max: usize) -> Self {
        self.max_upload_bytes = max;
        self
    }

    /// Calls `callback` for every parcel event, synchronously, on the task
    /// handling the request: for a confirm BEFORE it takes effect (so a test
    /// can check, at that moment, that the client already stored the file),
    /// for every other event right after. The callback must not block for
    /// long; it may call the [`FakeServer`]'s methods.
    pub fn on_parcel_event(
        mut self,
        callback: impl Fn(&ParcelEvent) + Send + Sync + 'static,
    ) -> Self {
        self.on_parcel_event = Some(Arc::new(callback));
        self
    }

    /// Binds and starts serving on the current tokio runtime.
    pub async fn start(self) -> std::io::Result<FakeServer> {
        let users = self.users.unwrap_or_else(SeedUser::defaults);
        let state = State::new(users, self.session_timeout)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?
            .with_parcels(self.inbox_page_size, self.on_parcel_event.clone());
        let tls = self.tls.as_ref().map(tls::make).transpose()?;
        let listener = tokio::net::TcpListener::bind(self.listen).await?;
        let addr = listener.local_addr()?;
        let scheme = if tls.is_some() { "https" } else { "http" };
        let shared = Arc::new(Shared {
            state,
            stubs: stubs::Stubs::default(),
            namespace: self.namespace,
            detail_shape: self.detail_shape,
            soap_url: format!("{scheme}://{addr}{SOAP_PATH}"),
            max_upload: self.max_upload_bytes,
            body_timeout: self.timeouts.body,
        });
        let app = Router::new()
            .route(SOAP_PATH, post(soap::handle).get(soap::wsdl))
            .route(
                "/v2/users/key-generate/{id}",
                post(rest::key_generate).fallback(rest::method_not_allowed),
            )
            .route(
                "/v2/users/key/{id}",
                get(rest::key_read).fallback(rest::method_not_allowed),
            )
            .route(
                "/v2/users/reset/{id}",
                post(rest::reset).fallback(rest::method_not_allowed),
            )
            .route("/v2/users/me", get(rest::me))
            .route("/v2/auth/session", post(rest::me))
            .route("/v2/auth/login", post(rest::login))
            .route("/v2/auth/logout", post(rest::logout))
            .route("/v2/auth/version", get(rest::version))
            .merge(rest_parcels::router())
            .merge(rest_areas::router())
            .fallback(rest::not_found)
            .with_state(shared.clone());
        let app = rest_areas::with_overrides(app, self.rest_overrides);
        // The middleware below keeps the body limits; axum's own 2 MiB
        // default would refuse every larger upload.
        let app = app.layer(axum::extract::DefaultBodyLimit::disable());
        let body_timeout = self.timeouts.body;
        let namespace = shared.namespace.clone();
        let app = app.layer(axum::middleware::from_fn(
            move |request: axum::extract::Request, next: axum::middleware::Next| {
                // An upload is read by its handler as it arrives (see
                // `read_body`), within the same limits.
                let upload = is_upload(&request, &namespace);
                conn::body_within(body_timeout, conn::MAX_BODY, upload, request, next)
            },
        ));
        let latency = self.latency;
        let app = if latency.is_zero() {
            app
        } else {
            app.layer(axum::middleware::from_fn(
                move |request: axum::extract::Request, next: axum::middleware::Next| async move {
                    tokio::time::sleep(latency).await;
                    next.run(request).await
                },
            ))
        };
        let (stop, stopped) = watch::channel(false);
        let (incoming, material) = match tls {
            None => (conn::Incoming::Plain(listener), None),
            Some((material, config)) => (
                conn::Incoming::Tls(tls::TlsListener::new(listener, config)?),
                Some(material),
            ),
        };
        let task = tokio::spawn(conn::serve(
            incoming,
            conn::RouterService(app),
            self.timeouts,
            usize::MAX,
            stopped,
        ));
        Ok(FakeServer {
            addr,
            scheme,
            shared,
            tls: material,
            stop: Some(stop),
            task: Some(task),
        })
    }
}

/// Whether a request is a parcel upload: `POST /v2/parcels/upload`, or a
/// SOAP request whose action (the `SOAPAction` header, or the `action`
/// parameter of a SOAP 1.2 content type) names a `ParcelUpload…` operation.
fn is_upload(request: &axum::extract::Request, namespace: &str) -> bool {
    let path = request.uri().path();
    if path == rest_parcels::UPLOAD_PATH {
        return true;
    }
    if path != SOAP_PATH {
        return false;
    }
    let headers = request.headers();
    let header_action = headers
        .get("SOAPAction")
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().trim_matches('"').to_string());
    let type_action = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|ct| {
            ct.split(';')
                .filter_map(|p| p.split_once('='))
                .find(|(k, _)| k.trim().eq_ignore_ascii_case("action"))
                .map(|(_, v)| v.trim().trim_matches('"').to_string())
        });
    header_action
        .or(type_action)
        .is_some_and(|action| soap::is_upload_action(namespace, &action))
}

/// A parcel as the fake holds it, for tests.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct FakeParcel {
    /// `ParcelID`.
    pub id: i64,
    /// The file name as uploaded.
    pub file_name: String,
    /// The content.
    pub bytes: bytes::Bytes,
    /// The inbound status (`InBoxReady`, `InBoxTransferred`).
    pub status: crate::api::enums::ParcelStatus,
    /// Confirmed by the receiver (out of its inbox).
    pub confirmed: bool,
    /// Cancelled.
    pub cancelled: bool,
    /// The sender's ECGrid ID.
    pub from_ecgrid_id: i32,
    /// The receiver's ECGrid ID.
    pub to_ecgrid_id: i32,
    /// The receiver's mailbox.
    pub mailbox_id: i32,
    /// The login of the (first) user of the receiver's mailbox, if any.
    pub owner: Option<String>,
}

/// A running fake ECGridOS. Dropping it stops the server (in the background);
/// [`shutdown`](Self::shutdown) stops it and waits.
pub struct FakeServer {
    addr: SocketAddr,
    scheme: &'static str,
    shared: Arc<Shared>,
    tls: Option<TlsMaterial>,
    stop: Option<watch::Sender<bool>>,
    task: Option<JoinHandle<()>>,
}

/// A seeded user as a test sees it: the credentials and the current key.
pub type FakeUser = SeedUser;

impl FakeServer {
    /// A builder.
    pub fn builder() -> FakeServerBuilder {
        FakeServerBuilder::default()
    }

    /// Starts a fake with the default settings on an ephemeral loopback port.
    pub async fn start() -> std::io::Result<FakeServer> {
        FakeServerBuilder::default().start().await
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The certificates made at start, when it serves HTTPS.
    pub fn tls(&self) -> Option<&TlsMaterial> {
        self.tls.as_ref()
    }

    /// The SOAP endpoint URL (`http://127.0.0.1:PORT/v4.1/prod/ECGridOS.asmx`,
    /// `https://` with TLS).
    pub fn soap_url(&self) -> String {
        self.shared.soap_url.clone()
    }

    /// The REST base URL (`http://127.0.0.1:PORT`, `https://` with TLS).
    pub fn rest_url(&self) -> String {
        format!("{}://{}", self.scheme, self.addr)
    }

    /// All users, with their current keys.
    pub fn users(&self) -> Vec<FakeUser> {
        self.shared.state.users()
    }

    /// The user with this login name.
    pub fn user(&self, login: &str) -> Option<FakeUser> {
        self.users()
            .into_iter()
            .find(|u| u.login.eq_ignore_ascii_case(login))
    }

    /// The user's current API key.
    pub fn api_key(&self, user_id: i32) -> Option<ApiKey> {
        self.users()
            .into_iter()
            .find(|u| u.user_id == user_id)?
            .api_key
    }

    /// Requests received for a SOAP operation (`"GenerateAPIKey"`), counted
    /// once the request was read and dispatched, whatever the outcome.
    pub fn soap_calls(&self, operation: &str) -> u64 {
        self.shared.state.calls(operation)
    }

    /// Every request that reached the SOAP endpoint, readable or not.
    pub fn soap_requests(&self) -> u64 {
        self.shared.state.calls("soap")
    }

    /// Requests received by a REST endpoint: `"key-generate"`, `"key"`,
    /// `"reset"`, `"me"`, `"login"`, `"logout"`, `"version"`, and the parcel
    /// routes `"upload"`, `"pending-inbox-list"`, `"inbox-list"`,
    /// `"outbox-list"`, `"download"`, `"confirm"`, `"parcel"` (`GET
    /// /v2/parcels/{id}`), `"reset-to-inbox"`, `"cancel"`, `"mailbox"`.
    pub fn rest_calls(&self, endpoint: &str) -> u64 {
        self.shared.state.calls(&format!("REST {endpoint}"))
    }

    /// Successful key rotations of `user_id`, over both protocols.
    pub fn rotations(&self, user_id: i32) -> u64 {
        self.shared.state.rotations(user_id)
    }

    /// Sessions open now. Expired sessions are purged (here and whenever a
    /// session is opened or counted), never counted.
    pub fn open_sessions(&self) -> usize {
        self.shared.state.open_sessions()
    }

    /// The session inactivity timeout in force.
    pub fn session_timeout(&self) -> Duration {
        self.shared.state.session_timeout()
    }

    /// Answers operation `R` (one the fake does not model) with `handler`:
    /// the request arrives decoded into its generated struct; the handler's
    /// result is encoded from the generated type, or its [`StubFault`] sent
    /// as a fault. Replaces an earlier handler of `R`.
    ///
    /// A stub also overrides a parcel or mailbox operation the fake models
    /// (over SOAP; REST keeps the model), so a test can answer, say, a
    /// `ParcelDownload` whose `Bytes` disagree with its content. A stubbed
    /// upload's content arrives empty: the fake decodes it as it streams in
    /// and hands it only to its own model.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use ecgridos::api::misc::NowUtc;
    /// use ecgridos::fake::FakeServer;
    /// use ecgridos::Client;
    ///
    /// let server = FakeServer::start().await?;
    /// server.stub::<NowUtc>(|_request| Ok("2026-11-01T10:00:00.1234567Z".parse().unwrap()));
    /// let client = Client::builder().endpoint(server.soap_url()).build()?;
    /// let now = client.call(NowUtc::default()).await?;
    /// assert_eq!(now.to_string(), "2026-11-01T10:00:00.1234567Z");
    /// # Ok(()) }
    /// ```
    pub fn stub<R: crate::api::Request>(
        &self,
        handler: impl Fn(R) -> Result<R::Output, StubFault> + Send + Sync + 'static,
    ) {
        self.shared.stubs.insert(handler);
    }

    /// Puts a parcel from the trading partner (`ZZ`/`PARTNER`, ECGrid ID
    /// [`PARTNER_ECGRID_ID`]) straight into the inbox of the user `to_login`,
    /// `InBoxReady`; returns its ParcelID. For tests and benches that need
    /// inbound parcels without an upload.
    pub fn deliver(
        &self,
        to_login: &str,
        file_name: &str,
        bytes: impl Into<bytes::Bytes>,
    ) -> Option<i64> {
        self.shared
            .state
            .deliver(to_login, file_name, bytes.into())
            .ok()
    }

    /// A parcel, whatever its state (`None` when no such ParcelID exists).
    pub fn parcel(&self, id: i64) -> Option<FakeParcel> {
        let (p, mailbox_id) = self.shared.state.parcel(id)?;
        let owner = self
            .users()
            .into_iter()
            .find(|u| u.mailbox_id == mailbox_id)
            .map(|u| u.login);
        Some(FakeParcel {
            id: p.id,
            file_name: p.file_name,
            bytes: p.bytes,
            status: p.status,
            confirmed: p.confirmed,
            cancelled: p.cancelled,
            from_ecgrid_id: p.from,
            to_ecgrid_id: p.to,
            mailbox_id,
            owner,
        })
    }

    /// The events of one parcel, in order.
    pub fn parcel_events(&self, id: i64) -> Vec<ParcelEvent> {
        self.shared.state.events(Some(id))
    }

    /// Every parcel event so far, in order of their sequence numbers.
    pub fn events(&self) -> Vec<ParcelEvent> {
        self.shared.state.events(None)
    }

    /// Where each user's parcels live: network, mailbox, ECGrid ID.
    pub fn mailboxes(&self) -> Vec<UserMailbox> {
        self.shared.state.user_mailboxes()
    }

    /// Where the parcels of the user `login` live.
    pub fn mailbox_of(&self, login: &str) -> Option<UserMailbox> {
        let user = self.user(login)?;
        self.mailboxes()
            .into_iter()
            .find(|m| m.user_id == user.user_id)
    }

    /// Stops the server and waits until it has stopped.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(true);
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(true);
        }
    }
}

impl std::fmt::Debug for FakeServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeServer")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}
