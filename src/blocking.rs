//! A blocking wrapper around the async [`Client`](crate::Client), for programs
//! without an async runtime. It runs its own tokio runtime with one worker
//! thread, which keeps driving the pooled connections between calls.

use crate::error::{Error, Result};
use crate::operations::{Operation, UserId};
use crate::secret::{ApiKey, Password, SessionId, SessionRef};
use crate::wire::SessionInfo;
use crate::ClientBuilder;

/// A blocking ECGridOS SOAP client. Must not be used from inside an async
/// runtime: there each call fails with [`Error::InvalidInput`] rather than
/// blocking the runtime's thread.
///
/// ```no_run
/// use ecgridos::{blocking, Password, UserId};
/// let client = blocking::Client::new(ecgridos::Client::builder())?;
/// let session = client.login("me", &Password::new("secret"))?;
/// let key = client.user_get_api_key(&session, UserId::from(42))?;
/// # let _ = key; Ok::<(), ecgridos::Error>(())
/// ```
#[derive(Debug)]
pub struct Client {
    inner: crate::Client,
    runtime: tokio::runtime::Runtime,
}

impl Client {
    /// Builds the client from an async client's builder.
    ///
    /// Its runtime has one worker thread of its own, so that connections
    /// stay driven while no call is running: a pooled connection the server
    /// closed while idle is noticed and dropped, instead of being picked for
    /// the next call and failing it (for a rotation, with a false
    /// [`Error::OutcomeUnknown`]).
    pub fn new(builder: ClientBuilder) -> Result<Client> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("ecgridos-blocking")
            .enable_all()
            .build()
            .map_err(|e| Error::invalid_input("runtime", format!("cannot start: {e}")))?;
        Ok(Client {
            inner: builder.build()?,
            runtime,
        })
    }

    fn block_on<T>(&self, fut: impl std::future::Future<Output = Result<T>>) -> Result<T> {
        if tokio::runtime::Handle::try_current().is_ok() {
            return Err(Error::invalid_input(
                "blocking client",
                "called from inside an async runtime; use ecgridos::Client there",
            ));
        }
        self.runtime.block_on(fut)
    }

    /// See [`crate::Client::generate_api_key`].
    pub fn generate_api_key<'a>(
        &self,
        session: impl Into<SessionRef<'a>>,
        user_id: UserId,
    ) -> Result<ApiKey> {
        self.block_on(self.inner.generate_api_key(session, user_id))
    }

    /// See [`crate::Client::user_get_api_key`].
    pub fn user_get_api_key<'a>(
        &self,
        session: impl Into<SessionRef<'a>>,
        user_id: UserId,
    ) -> Result<ApiKey> {
        self.block_on(self.inner.user_get_api_key(session, user_id))
    }

    /// See [`crate::Client::login`].
    pub fn login(&self, login_name: &str, password: &Password) -> Result<SessionId> {
        self.block_on(self.inner.login(login_name, password))
    }

    /// See [`crate::Client::logout`].
    pub fn logout<'a>(&self, session: impl Into<SessionRef<'a>>) -> Result<bool> {
        self.block_on(self.inner.logout(session))
    }

    /// See [`crate::Client::who_am_i`].
    pub fn who_am_i<'a>(&self, session: impl Into<SessionRef<'a>>) -> Result<SessionInfo> {
        self.block_on(self.inner.who_am_i(session))
    }

    /// See [`crate::Client::version`].
    pub fn version(&self) -> Result<String> {
        self.block_on(self.inner.version())
    }

    /// See [`crate::Client::call`].
    pub fn call<O: Operation>(&self, op: O) -> Result<O::Output> {
        self.block_on(self.inner.call(op))
    }
}
