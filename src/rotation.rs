//! One key API over both protocols, for code (and migration harnesses) that
//! must run the same steps over SOAP and REST.
//!
//! It is an enum rather than a trait: there are exactly two protocols, callers
//! can match on them, and async methods need no boxing.

use std::fmt;

use crate::error::Result;
use crate::operations::UserId;
use crate::rest::{RestAuth, RestClient};
use crate::secret::{ApiKey, SessionId, SessionRef};
use crate::soap::Client;
use crate::wire::AuthLevel;

/// The protocol a [`KeyClient`] speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// SOAP v4.1 (asmx).
    Soap,
    /// REST v2.
    Rest,
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Soap => "soap",
            Protocol::Rest => "rest",
        })
    }
}

impl std::str::FromStr for Protocol {
    type Err = crate::Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "soap" => Ok(Protocol::Soap),
            "rest" => Ok(Protocol::Rest),
            _ => Err(crate::Error::invalid_input(
                "protocol",
                "must be soap or rest",
            )),
        }
    }
}

/// A credential: an API key (both protocols) or a session (a SOAP SessionID,
/// or a REST bearer token).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Credential {
    /// An API key: `SessionID` over SOAP, `X-API-Key` over REST.
    ApiKey(ApiKey),
    /// A session: `SessionID` over SOAP, `Authorization: Bearer` over REST.
    Session(SessionId),
}

impl Credential {
    fn soap(&self) -> SessionRef<'_> {
        match self {
            Credential::ApiKey(k) => k.into(),
            Credential::Session(s) => s.into(),
        }
    }

    fn rest(&self) -> RestAuth<'_> {
        match self {
            Credential::ApiKey(k) => RestAuth::ApiKey(k),
            Credential::Session(s) => RestAuth::Bearer(s),
        }
    }
}

impl From<ApiKey> for Credential {
    fn from(key: ApiKey) -> Self {
        Credential::ApiKey(key)
    }
}

impl From<SessionId> for Credential {
    fn from(session: SessionId) -> Self {
        Credential::Session(session)
    }
}

/// What [`KeyClient::generate_api_key_with_recovery`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rotation {
    /// Rotated; this is the new key.
    Rotated(ApiKey),
    /// The answer was lost, but the key changed: the rotation happened and
    /// this is the key now in force.
    Recovered(ApiKey),
    /// The answer was lost and the key did not change: the rotation did not
    /// happen (or was undone), so rotating again is safe.
    NotRotated {
        /// The key still in force.
        current: ApiKey,
    },
}

/// Who a credential belongs to, as either protocol reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// The user's ID.
    pub user_id: i32,
    /// The login name.
    pub login: String,
    /// The authority level.
    pub auth_level: Option<AuthLevel>,
    /// The network.
    pub network_id: i32,
}

/// Key operations over SOAP or REST, with the same types and errors.
///
/// ```no_run
/// # async fn run() -> Result<(), ecgridos::Error> {
/// use ecgridos::{ApiKey, Client, Credential, KeyClient, RestClient, UserId};
/// let clients = [
///     KeyClient::from(Client::builder().build()?),
///     KeyClient::from(RestClient::builder().build()?),
/// ];
/// let cred = Credential::ApiKey(ApiKey::new("my-key"));
/// for client in &clients {
///     let me = client.check_credential(&cred).await?;
///     println!("{}: {} is user {}", client.protocol(), me.login, me.user_id);
/// }
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub enum KeyClient {
    /// Over SOAP.
    Soap(Client),
    /// Over REST.
    Rest(RestClient),
}

impl From<Client> for KeyClient {
    fn from(client: Client) -> Self {
        KeyClient::Soap(client)
    }
}

impl From<RestClient> for KeyClient {
    fn from(client: RestClient) -> Self {
        KeyClient::Rest(client)
    }
}

impl KeyClient {
    /// The protocol spoken.
    pub fn protocol(&self) -> Protocol {
        match self {
            KeyClient::Soap(_) => Protocol::Soap,
            KeyClient::Rest(_) => Protocol::Rest,
        }
    }

    /// Replaces the user's key and returns the new one (`GenerateAPIKey` /
    /// `POST /v2/users/key-generate/{id}`). Never sent twice.
    pub async fn generate_api_key(
        &self,
        credential: &Credential,
        user_id: UserId,
    ) -> Result<ApiKey> {
        match self {
            KeyClient::Soap(c) => c.generate_api_key(credential.soap(), user_id).await,
            KeyClient::Rest(c) => c.generate_api_key(credential.rest(), user_id).await,
        }
    }

    /// Rotates with recovery: reads the key in force, rotates, and when the
    /// rotation's outcome is unknown reads the key again (a read, safe to
    /// retry) instead of rotating again. Comparing the two reads tells
    /// whether the rotation happened. Costs one extra read per rotation.
    ///
    /// Fails with the original [`Error::OutcomeUnknown`](crate::Error) only
    /// when the recovery read fails too.
    pub async fn generate_api_key_with_recovery(
        &self,
        credential: &Credential,
        user_id: UserId,
    ) -> Result<Rotation> {
        let before = self.get_api_key(credential, user_id).await?;
        let unknown = match self.generate_api_key(credential, user_id).await {
            Ok(key) => return Ok(Rotation::Rotated(key)),
            Err(e) if e.is_outcome_unknown() => e,
            Err(e) => return Err(e),
        };
        tracing::warn!(
            user_id = user_id.get(),
            "rotation outcome unknown; reading the key in force"
        );
        // If the rotation happened with the caller's own key, only the new
        // key (unknown to us) works: the read then fails and the error stands.
        match self.get_api_key(credential, user_id).await {
            Ok(now) if now == before => Ok(Rotation::NotRotated { current: now }),
            Ok(now) => Ok(Rotation::Recovered(now)),
            Err(_) => Err(unknown),
        }
    }

    /// Reads the user's current key without rotating (`UserGetAPIKey` /
    /// `GET /v2/users/key/{id}`).
    pub async fn get_api_key(&self, credential: &Credential, user_id: UserId) -> Result<ApiKey> {
        match self {
            KeyClient::Soap(c) => c.user_get_api_key(credential.soap(), user_id).await,
            KeyClient::Rest(c) => c.get_api_key(credential.rest(), user_id).await,
        }
    }

    /// Opens a session (`Login` / `POST /v2/auth/login`).
    pub async fn login(&self, login: &str, password: &crate::Password) -> Result<Credential> {
        let session = match self {
            KeyClient::Soap(c) => c.login(login, password).await?,
            KeyClient::Rest(c) => c.login(login, password).await?,
        };
        Ok(Credential::Session(session))
    }

    /// Ends a session (`Logout` / `POST /v2/auth/logout`); an API key has no
    /// session to end and gives `false`.
    pub async fn logout(&self, credential: &Credential) -> Result<bool> {
        let Credential::Session(session) = credential else {
            return Ok(false);
        };
        match self {
            KeyClient::Soap(c) => c.logout(session).await,
            KeyClient::Rest(c) => c.logout(session).await,
        }
    }

    /// Checks that the credential is accepted and says whose it is (`WhoAmI`
    /// / `GET /v2/users/me`).
    pub async fn check_credential(&self, credential: &Credential) -> Result<Identity> {
        match self {
            KeyClient::Soap(c) => {
                let info = c.who_am_i(credential.soap()).await?;
                Ok(Identity {
                    user_id: info.user_id,
                    login: info.login_name,
                    auth_level: info.auth_level,
                    network_id: info.network_id,
                })
            }
            KeyClient::Rest(c) => {
                let me = c.me(credential.rest()).await?;
                Ok(Identity {
                    user_id: me.user_id,
                    login: me.login,
                    auth_level: me.auth_level,
                    network_id: me.network_id,
                })
            }
        }
    }
}

/// The migration scenario: the same steps over each protocol, so that a team
/// moving from SOAP to REST can see that nothing observable changed.
///
/// Steps: read the user's key; rotate it; the old key is rejected; the new key
/// is accepted (as the right user); reading the key back gives the rotated
/// one; an unknown user is not found; and, when configured, a caller who may
/// not act on another user is refused. The forbidden step reads the key
/// rather than rotating it, so that a misconfigured scenario cannot destroy a
/// real key.
#[derive(Clone, Debug)]
pub struct Scenario {
    /// The caller. When it is the rotated user's own API key, the scenario
    /// carries on with the new key after the rotation.
    pub credential: Credential,
    /// The user whose key is rotated (once per protocol run).
    pub user_id: UserId,
    /// A user ID that does not exist.
    pub unknown_user_id: UserId,
    /// A caller and a user that caller may not act on.
    pub forbidden: Option<(Credential, UserId)>,
}

/// What one step showed: success with a protocol-neutral description, or the
/// kind of error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Observed {
    /// The step succeeded; the text is the same for equal outcomes over
    /// either protocol (never a secret).
    Success(String),
    /// The step failed with this kind of error.
    Failure(crate::ErrorKind),
}

impl fmt::Display for Observed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Observed::Success(s) => write!(f, "ok: {s}"),
            Observed::Failure(kind) => write!(f, "error: {kind}"),
        }
    }
}

/// One step of one protocol's run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StepResult {
    /// The step's name.
    pub step: &'static str,
    /// What it showed.
    pub observed: Observed,
    /// What the scenario expects (the step passes when they are equal).
    pub expected: Observed,
}

impl StepResult {
    /// True when the step showed what the scenario expects.
    pub fn passed(&self) -> bool {
        self.observed == self.expected
    }
}

/// One step compared across protocols.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StepComparison {
    /// The step's name.
    pub step: &'static str,
    /// The expected outcome.
    pub expected: Observed,
    /// What each protocol showed.
    pub observed: Vec<(Protocol, Observed)>,
}

impl StepComparison {
    /// True when every protocol showed the same outcome.
    pub fn same(&self) -> bool {
        self.observed.windows(2).all(|w| w[0].1 == w[1].1)
    }

    /// True when every protocol showed the expected outcome.
    pub fn passed(&self) -> bool {
        self.observed.iter().all(|(_, o)| *o == self.expected)
    }
}

fn observe<T>(result: &Result<T>, describe: impl FnOnce(&T) -> String) -> Observed {
    match result {
        Ok(v) => Observed::Success(describe(v)),
        Err(e) => Observed::Failure(e.kind()),
    }
}

/// One protocol's run of a [`Scenario`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[must_use = "a run may have created a key that exists nowhere else"]
pub struct ScenarioRun {
    /// The steps, in order (steps that could not run are left out).
    pub steps: Vec<StepResult>,
    /// The credential to use afterwards (the new key, when the caller rotated
    /// their own).
    pub credential: Credential,
    /// The key the rotation step created, whatever happened before or after
    /// it. It is the user's only valid key until the next rotation.
    pub new_key: Option<ApiKey>,
    /// True when the rotation's outcome is unknown: a key may have been
    /// created that nobody received, and rotating again is not safe.
    pub rotation_unknown: bool,
}

/// The scenario over several protocols.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[must_use = "the comparison holds the keys the scenario created"]
pub struct Comparison {
    /// Each step compared across protocols.
    pub steps: Vec<StepComparison>,
    /// Every key the scenario created, in the order created; the last one is
    /// the key in force.
    pub new_keys: Vec<(Protocol, ApiKey)>,
    /// Set when a run stopped the comparison because its rotation's outcome
    /// was unknown (the later protocols did not run).
    pub stopped_after: Option<Protocol>,
}

impl Scenario {
    /// Runs the scenario over one protocol. The result carries the key the
    /// rotation created even when an earlier or later step failed.
    pub async fn run(&self, client: &KeyClient) -> ScenarioRun {
        let mut steps = Vec::new();
        let mut credential = self.credential.clone();
        let user = self.user_id;
        let mut push = |step, observed, expected| {
            steps.push(StepResult {
                step,
                observed,
                expected,
            })
        };
        let ok = |s: &str| Observed::Success(s.to_string());

        let before = client.get_api_key(&credential, user).await;
        push(
            "read key before rotating",
            observe(&before, |_| "key read".into()),
            ok("key read"),
        );
        let rotated = client.generate_api_key(&credential, user).await;
        push(
            "rotate key",
            observe(&rotated, |_| "new key".into()),
            ok("new key"),
        );
        let new = match rotated {
            Ok(new) => new,
            Err(e) => {
                return ScenarioRun {
                    steps,
                    credential,
                    new_key: None,
                    rotation_unknown: e.is_outcome_unknown(),
                }
            }
        };
        if let Ok(old) = before {
            if matches!(&credential, Credential::ApiKey(k) if *k == old) {
                credential = Credential::ApiKey(new.clone());
            }
            let old_check = client.check_credential(&Credential::ApiKey(old)).await;
            push(
                "old key rejected",
                observe(&old_check, |_| "accepted".into()),
                Observed::Failure(crate::ErrorKind::Authentication),
            );
        }
        let new_check = client
            .check_credential(&Credential::ApiKey(new.clone()))
            .await;
        let expected_user = format!("accepted as user {user}");
        push(
            "new key accepted",
            observe(&new_check, |id| format!("accepted as user {}", id.user_id)),
            Observed::Success(expected_user),
        );
        let read_back = client.get_api_key(&credential, user).await;
        push(
            "read-back equals rotated key",
            observe(&read_back, |k| {
                if *k == new { "equal" } else { "different" }.to_string()
            }),
            ok("equal"),
        );
        let unknown = client.get_api_key(&credential, self.unknown_user_id).await;
        push(
            "unknown user",
            observe(&unknown, |_| "key read".into()),
            Observed::Failure(crate::ErrorKind::NotFound),
        );
        if let Some((forbidden_caller, target)) = &self.forbidden {
            let refused = client.get_api_key(forbidden_caller, *target).await;
            push(
                "forbidden user",
                observe(&refused, |_| "key read".into()),
                Observed::Failure(crate::ErrorKind::Authorization),
            );
        }
        ScenarioRun {
            steps,
            credential,
            new_key: Some(new),
            rotation_unknown: false,
        }
    }

    /// Runs the scenario over each client in turn (the credential carried
    /// from one run to the next) and compares the steps. Stops after a run
    /// whose rotation's outcome is unknown, so that no key is rotated again
    /// blind.
    pub async fn compare(&self, clients: &[KeyClient]) -> Comparison {
        let mut scenario = self.clone();
        let mut comparison = Comparison::default();
        for client in clients {
            if comparison.stopped_after.is_some() {
                break;
            }
            let run = scenario.run(client).await;
            scenario.credential = comparison.record(client.protocol(), run);
        }
        comparison
    }
}

impl Comparison {
    /// Adds one protocol's run (for callers that drive the runs themselves,
    /// e.g. to stop between them) and returns the credential for the next
    /// run. Once [`stopped_after`](Self::stopped_after) is set, no further
    /// run may rotate the key.
    pub fn record(&mut self, protocol: Protocol, run: ScenarioRun) -> Credential {
        if let Some(key) = run.new_key {
            self.new_keys.push((protocol, key));
        }
        for step in run.steps {
            match self.steps.iter_mut().find(|c| c.step == step.step) {
                Some(c) => c.observed.push((protocol, step.observed)),
                None => self.steps.push(StepComparison {
                    step: step.step,
                    expected: step.expected,
                    observed: vec![(protocol, step.observed)],
                }),
            }
        }
        if run.rotation_unknown {
            self.stopped_after = Some(protocol);
        }
        run.credential
    }
}
