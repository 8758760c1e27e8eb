//! A session-holding SOAP client for long-running integrations: it logs in on
//! first use, logs in again when the session expires (once, for all tasks that
//! notice together) and repeats the failed call once.

use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use tokio::sync::OnceCell;

use crate::api::Request;
use crate::error::{Error, Result};
use crate::operations::UserId;
use crate::secret::{ApiKey, Password, SessionId};
use crate::soap::Client;
use crate::wire::SessionInfo;

/// How a [`SessionClient`] authenticates.
#[derive(Clone, Debug)]
enum Auth {
    /// Used as the SessionID of every call; never logs in.
    ApiKey(ApiKey),
    /// Logs in on first use and after expiry.
    Login { login: String, password: Password },
}

type LoginResult = std::result::Result<(SessionId, u64), Error>;

/// One login in progress; every task that needs a session while it runs waits
/// for its result instead of logging in again.
#[derive(Default)]
struct Flight {
    result: OnceCell<LoginResult>,
}

#[derive(Default)]
struct State {
    /// The session in use and its generation (incremented by each login).
    current: Option<(SessionId, u64)>,
    generation: u64,
    flight: Option<Arc<Flight>>,
    last_used: Option<Instant>,
}

struct Inner {
    client: Client,
    auth: Auth,
    state: Mutex<State>,
}

impl Inner {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // Every critical section is a few assignments: a panic cannot leave
        // the state half-updated, so a poisoned lock is still consistent.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A SOAP client that holds a session.
///
/// - Built from credentials, it logs in on first use (not at construction).
///   Built from an API key, it never logs in: the key is the SessionID.
/// - When a call fails with an authentication fault (expired or unknown
///   session, either fault detail shape), it logs in again and repeats the call
///   once. That is safe even for `GenerateAPIKey`: the service refused the
///   request before acting. Any other failure, `OutcomeUnknown` included, is
///   returned as it is.
/// - When many tasks meet the expiry together, one `Login` is sent and the
///   others wait for its result; a failed `Login` is reported to each of them
///   and is not retried in a loop (the next call tries once more).
/// - [`close`](Self::close) logs out. Dropping the last clone without closing
///   neither blocks nor panics: the session stays open on the server until its
///   inactivity timeout ends it, and the keep-alive task (if any) stops.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use ecgridos::fake::FakeServer;
/// use ecgridos::{Client, SessionClient, UserId};
///
/// let fake = FakeServer::start().await?;
/// let admin = fake.user("admin").unwrap();
/// let client = Client::builder().endpoint(fake.soap_url()).build()?;
/// let session = SessionClient::with_login(client, &admin.login, admin.password.clone());
/// let me = session.who_am_i().await?; // logs in here, on first use
/// let key = session.user_get_api_key(UserId::from(me.user_id)).await?;
/// session.close().await?;
/// # let _ = key; Ok(()) }
/// ```
#[derive(Clone)]
pub struct SessionClient {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for SessionClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mode = match &self.inner.auth {
            Auth::ApiKey(_) => "api key",
            Auth::Login { .. } => "login",
        };
        f.debug_struct("SessionClient")
            .field("auth", &mode)
            .finish_non_exhaustive()
    }
}

impl SessionClient {
    /// A client that logs in as `login` on first use.
    pub fn with_login(client: Client, login: impl Into<String>, password: Password) -> Self {
        Self::new(
            client,
            Auth::Login {
                login: login.into(),
                password,
            },
        )
    }

    /// A client that sends `key` as the SessionID of every call and never
    /// logs in.
    pub fn with_api_key(client: Client, key: ApiKey) -> Self {
        Self::new(client, Auth::ApiKey(key))
    }

    fn new(client: Client, auth: Auth) -> Self {
        SessionClient {
            inner: Arc::new(Inner {
                client,
                auth,
                state: Mutex::new(State::default()),
            }),
        }
    }

    /// Refreshes an idle session with a cheap `WhoAmI` whenever it has been
    /// idle for `interval`, so that a long-idle integration does not pay a
    /// failed call. Off by default; pick an interval below the session's
    /// `TimeOut`. The task stops when the last clone is dropped.
    ///
    /// An `interval` of zero means off: no task is started. Outside a tokio
    /// runtime no task can be started either; the keep-alive is then off too
    /// (and a warning is logged).
    pub fn keep_alive(self, interval: Duration) -> Self {
        if interval.is_zero() {
            return self;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::warn!("keep-alive needs a tokio runtime; it stays off");
            return self;
        };
        // The idle state is checked four times per interval (at least every
        // millisecond apart: a zero period would be refused by tokio).
        let period = (interval / 4).max(Duration::from_millis(1));
        let weak: Weak<Inner> = Arc::downgrade(&self.inner);
        runtime.spawn(async move {
            let mut tick = tokio::time::interval(period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(inner) = weak.upgrade() else { return };
                let idle = {
                    let state = inner.state();
                    state.current.is_some()
                        && state.last_used.is_some_and(|t| t.elapsed() >= interval)
                };
                if idle {
                    let client = SessionClient { inner };
                    if let Err(e) = client.who_am_i().await {
                        tracing::debug!(error_kind = %e.kind(), "keep-alive WhoAmI failed");
                    }
                }
            }
        });
        self
    }

    /// The session in use, if one is open (a copy of the secret).
    pub fn current_session(&self) -> Option<SessionId> {
        self.inner.state().current.as_ref().map(|(s, _)| s.clone())
    }

    /// The underlying client.
    pub fn client(&self) -> &Client {
        &self.inner.client
    }

    /// The session, logging in if there is none.
    async fn session(&self) -> Result<(SessionId, u64)> {
        if let Some(current) = self.inner.state().current.clone() {
            return Ok(current);
        }
        self.login(None).await
    }

    /// Logs in, unless another task already replaced the session `stale` (or,
    /// with `None`, opened one), joining a login already in flight.
    async fn login(&self, stale: Option<u64>) -> Result<(SessionId, u64)> {
        let Auth::Login { login, password } = &self.inner.auth else {
            return Err(Error::invalid_input(
                "session",
                "an API-key client never logs in",
            ));
        };
        let flight = {
            let mut state = self.inner.state();
            match (&state.current, stale) {
                (Some((session, generation)), Some(stale)) if *generation != stale => {
                    return Ok((session.clone(), *generation));
                }
                (Some(current), None) => return Ok(current.clone()),
                _ => {}
            }
            state.current = None;
            state.flight.get_or_insert_with(Default::default).clone()
        };
        let result = flight
            .result
            .get_or_init(|| async {
                let result = self.inner.client.login(login, password).await;
                let mut state = self.inner.state();
                state.flight = None;
                result.map(|session| {
                    state.generation += 1;
                    let current = (session, state.generation);
                    state.current = Some(current.clone());
                    current
                })
            })
            .await;
        match result {
            Ok(current) => Ok(current.clone()),
            Err(e) => Err(e.duplicate()),
        }
    }

    /// Runs `call` with the session; on an authentication fault, logs in again
    /// (once for all tasks) and repeats it once.
    async fn run<T, F, Fut>(&self, call: F) -> Result<T>
    where
        F: Fn(Client, SessionId) -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        let client = self.inner.client.clone();
        if let Auth::ApiKey(key) = &self.inner.auth {
            return call(client, SessionId::from(key.clone())).await;
        }
        let (session, generation) = self.session().await?;
        let result = call(client.clone(), session).await;
        let result = match result {
            Err(e) if e.is_authentication() => {
                tracing::info!("session rejected; logging in again");
                let (session, _) = self.login(Some(generation)).await?;
                call(client, session).await
            }
            other => other,
        };
        self.inner.state().last_used = Some(Instant::now());
        result
    }

    /// See [`Client::generate_api_key`]. Sent at most once per session
    /// attempt: repeated only when the service refused the session itself.
    pub async fn generate_api_key(&self, user_id: UserId) -> Result<ApiKey> {
        self.run(|c, s| async move { c.generate_api_key(&s, user_id).await })
            .await
    }

    /// See [`Client::user_get_api_key`].
    pub async fn user_get_api_key(&self, user_id: UserId) -> Result<ApiKey> {
        self.run(|c, s| async move { c.user_get_api_key(&s, user_id).await })
            .await
    }

    /// See [`Client::who_am_i`].
    pub async fn who_am_i(&self) -> Result<SessionInfo> {
        self.run(|c, s| async move { c.who_am_i(&s).await }).await
    }

    /// Calls any generated operation ([`crate::api`]) with this client's
    /// session as `SessionID` (unless the request sets one). On an
    /// authentication fault it logs in again and repeats the call once.
    pub async fn call<R: Request>(&self, request: R) -> Result<R::Output>
    where
        R::Output: Send,
    {
        self.run(|c, s| {
            let mut request = request.clone();
            request.fill_session(&s);
            async move { c.call(request).await }
        })
        .await
    }

    /// Ends the session on the server (true when one was open and the server
    /// ended it). A later call logs in again.
    pub async fn close(&self) -> Result<bool> {
        let current = self.inner.state().current.take();
        match current {
            Some((session, _)) => self.inner.client.logout(&session).await,
            None => Ok(false),
        }
    }
}
