//! The fake's in-memory state and every rule of who may do what. Both
//! protocols call these methods; neither has rules of its own.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use bytes::Bytes;

use super::mailbox::{
    EcgridId, Filter, Listing, Mailbox, Mailboxes, Network, Parcel, ParcelEvent, ParcelEventKind,
    Refusal, DEFAULT_PAGE_SIZE, ECGRID_ID_BASE,
};
use crate::secret::{ApiKey, Password, SessionId};
use crate::wire::{AuthLevel, SessionInfo};

/// A user the fake starts with. This is also the format of the
/// `serve-mock --users FILE` file (a JSON array of these).
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct SeedUser {
    /// `UserID`.
    pub user_id: i32,
    /// `LoginName`.
    pub login: String,
    /// The password `Login` accepts.
    #[serde(serialize_with = "expose_password", deserialize_with = "password")]
    pub password: Password,
    /// The user's API key; generated when absent.
    #[serde(default, serialize_with = "expose_key", deserialize_with = "api_key")]
    pub api_key: Option<ApiKey>,
    /// The authority level, as the service names it (`NetworkAdmin`, …).
    #[serde(with = "auth_level_text")]
    pub auth_level: AuthLevel,
    /// `NetworkID`.
    #[serde(default = "one")]
    pub network_id: i32,
    /// `MailboxID`; 0 (the default) makes the fake assign the next free
    /// number from 100. Each user also gets an ECGrid ID, 500000 + UserID,
    /// qualifier `ZZ`, ID the login in capitals.
    #[serde(default)]
    pub mailbox_id: i32,
}

fn one() -> i32 {
    1
}

fn expose_password<S: serde::Serializer>(p: &Password, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(p.expose())
}

fn password<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Password, D::Error> {
    String::deserialize(d).map(Password::new)
}

fn expose_key<S: serde::Serializer>(k: &Option<ApiKey>, s: S) -> Result<S::Ok, S::Error> {
    match k {
        Some(k) => s.serialize_str(k.expose()),
        None => s.serialize_none(),
    }
}

fn api_key<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<ApiKey>, D::Error> {
    Ok(Option::<String>::deserialize(d)?.map(ApiKey::new))
}

mod auth_level_text {
    use super::*;
    pub fn serialize<S: serde::Serializer>(l: &AuthLevel, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(l.as_str())
    }
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<AuthLevel, D::Error> {
        let text = String::deserialize(d)?;
        match text.parse::<AuthLevel>() {
            Ok(AuthLevel::Unknown(other)) => Err(serde::de::Error::custom(format!(
                "unknown auth_level {other:?}"
            ))),
            Ok(level) => Ok(level),
            Err(never) => match never {},
        }
    }
}

impl SeedUser {
    /// The default users: one network administrator and two mailbox users, all
    /// in network 1, with random passwords and keys.
    pub fn defaults() -> Vec<SeedUser> {
        let user = |user_id, login: &str, auth_level, mailbox_id| SeedUser {
            user_id,
            login: login.to_string(),
            password: Password::new(random_token(16)),
            api_key: None,
            auth_level,
            network_id: 1,
            mailbox_id,
        };
        vec![
            user(1001, "admin", AuthLevel::NetworkAdmin, 100),
            user(1002, "alice", AuthLevel::MailboxUser, 101),
            user(1003, "bob", AuthLevel::MailboxUser, 102),
        ]
    }
}

/// Why the fake refused a request. Each protocol renders it its own way: a
/// SOAP fault with ECGridOS detail, or a REST error body and status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Denial {
    /// Missing, unknown or expired credential.
    Authentication(&'static str),
    /// The caller may not act on the target.
    Authorization(&'static str),
    /// The target does not exist.
    NotFound(&'static str),
    /// A parameter (or a file's content) is unusable; the text says why.
    InvalidParameter(String),
}

impl Denial {
    /// The message.
    pub fn message(&self) -> &str {
        match self {
            Denial::Authentication(m) | Denial::Authorization(m) | Denial::NotFound(m) => m,
            Denial::InvalidParameter(m) => m,
        }
    }
}

impl From<Refusal> for Denial {
    fn from(refusal: Refusal) -> Self {
        match refusal {
            Refusal::NotFound(m) => Denial::NotFound(m),
            Refusal::Invalid(m) => Denial::InvalidParameter(m),
        }
    }
}

struct UserRecord {
    seed: SeedUser,
    api_key: String,
    last_login: Option<SystemTime>,
}

struct SessionRecord {
    user_id: i32,
    event_id: i32,
    last_seen: Instant,
}

#[derive(Default)]
struct Inner {
    users: BTreeMap<i32, UserRecord>,
    by_key: HashMap<String, i32>,
    sessions: HashMap<String, SessionRecord>,
    next_event: i32,
    calls: HashMap<String, u64>,
    rotations: HashMap<i32, u64>,
    mail: Option<Mailboxes>,
}

impl Inner {
    fn mail(&mut self) -> &mut Mailboxes {
        self.mail
            .get_or_insert_with(|| Mailboxes::new(DEFAULT_PAGE_SIZE, SystemTime::now()))
    }
}

/// Who made a call, once authenticated.
struct Caller {
    user_id: i32,
    level: AuthLevel,
    network_id: i32,
    mailbox_id: i32,
}

/// The callback [`FakeServerBuilder::on_parcel_event`](super::FakeServerBuilder::on_parcel_event) installs.
pub type EventHook = Arc<dyn Fn(&ParcelEvent) + Send + Sync>;

/// The shared state.
pub struct State {
    inner: Mutex<Inner>,
    session_timeout: Duration,
    hook: Option<EventHook>,
}

/// A parcel as one of its ends sees it, with the names of both ends.
#[derive(Clone, Debug)]
pub struct ParcelView {
    /// The parcel.
    pub parcel: Parcel,
    /// The sender's ECGrid ID.
    pub from: EcgridId,
    /// The receiver's ECGrid ID.
    pub to: EcgridId,
    /// The sender's mailbox and network names.
    pub from_names: (String, String),
    /// The receiver's mailbox and network names.
    pub to_names: (String, String),
    /// Whether the viewer is the sender (and not the receiver).
    pub outbound: bool,
}

/// Where a seeded user's parcels live.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UserMailbox {
    /// `UserID`.
    pub user_id: i32,
    /// `NetworkID`.
    pub network_id: i32,
    /// `MailboxID`.
    pub mailbox_id: i32,
    /// The user's ECGrid ID (qualifier `ZZ`, ID the login in capitals).
    pub ecgrid_id: i32,
}

/// A user as `UserInfo` shows them: no password, no key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserView {
    /// `UserID`.
    pub user_id: i32,
    /// `LoginName`.
    pub login: String,
    /// `AuthLevel`.
    pub auth_level: AuthLevel,
    /// `NetworkID`.
    pub network_id: i32,
    /// `MailboxID`.
    pub mailbox_id: i32,
}

impl UserView {
    fn of(user: &UserRecord) -> UserView {
        UserView {
            user_id: user.seed.user_id,
            login: user.seed.login.clone(),
            auth_level: user.seed.auth_level.clone(),
            network_id: user.seed.network_id,
            mailbox_id: user.seed.mailbox_id,
        }
    }
}

impl State {
    /// A state seeded with `users`; fails on a duplicate ID, login or key.
    ///
    /// Every user gets a mailbox in its network (its `mailbox_id`, or the
    /// next free number from 100 when that is 0) and an ECGrid ID numbered
    /// [`ECGRID_ID_BASE`] + UserID, qualifier `ZZ`, ID the login in capitals.
    pub fn new(users: Vec<SeedUser>, session_timeout: Duration) -> Result<State, String> {
        let mut inner = Inner::default();
        let now = SystemTime::now();
        let mut next_mailbox = users
            .iter()
            .map(|u| u.mailbox_id)
            .max()
            .unwrap_or(0)
            .max(99)
            + 1;
        for mut seed in users {
            if seed.mailbox_id == 0 {
                seed.mailbox_id = next_mailbox;
                next_mailbox += 1;
            }
            let mail = inner.mail();
            mail.add_mailbox(seed.network_id, seed.mailbox_id, &seed.login, now);
            if mail.mailbox(seed.mailbox_id).map(|m| m.network_id) != Some(seed.network_id) {
                return Err(format!(
                    "mailbox {} of user {} belongs to another network",
                    seed.mailbox_id, seed.user_id
                ));
            }
            let ecgrid_id = ECGRID_ID_BASE.saturating_add(seed.user_id);
            if !mail.add_ecgrid_id(
                ecgrid_id,
                seed.mailbox_id,
                "ZZ",
                &seed.login.to_ascii_uppercase(),
            ) {
                return Err(format!("duplicate ECGrid ID for user {}", seed.user_id));
            }
            let api_key = seed
                .api_key
                .as_ref()
                .map(|k| k.expose().to_string())
                .unwrap_or_else(new_key);
            if inner
                .users
                .values()
                .any(|u| u.seed.login.eq_ignore_ascii_case(&seed.login))
            {
                return Err(format!("duplicate login {:?}", seed.login));
            }
            if inner.by_key.insert(api_key.clone(), seed.user_id).is_some() {
                return Err(format!("duplicate api_key for user {}", seed.user_id));
            }
            let id = seed.user_id;
            let record = UserRecord {
                seed,
                api_key,
                last_login: None,
            };
            if inner.users.insert(id, record).is_some() {
                return Err(format!("duplicate user_id {id}"));
            }
        }
        Ok(State {
            inner: Mutex::new(inner),
            session_timeout,
            hook: None,
        })
    }

    /// Sets the listing page size and the parcel event callback.
    pub fn with_parcels(mut self, page_size: usize, hook: Option<EventHook>) -> State {
        self.lock().mail().set_page_size(page_size);
        self.hook = hook;
        self
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the maps half-updated
        // (each update is a single insert/remove), so a poisoned lock is safe.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Counts one request under `name` (`GenerateAPIKey`, `REST POST key-generate`, …).
    pub fn count(&self, name: &str) {
        *self.lock().calls.entry(name.to_string()).or_default() += 1;
    }

    /// Requests counted under `name`.
    pub fn calls(&self, name: &str) -> u64 {
        self.lock().calls.get(name).copied().unwrap_or(0)
    }

    /// Successful key rotations of `user_id`, over both protocols.
    pub fn rotations(&self, user_id: i32) -> u64 {
        self.lock().rotations.get(&user_id).copied().unwrap_or(0)
    }

    /// The users as they are now (with their current keys).
    pub fn users(&self) -> Vec<SeedUser> {
        self.lock()
            .users
            .values()
            .map(|u| SeedUser {
                api_key: Some(ApiKey::new(u.api_key.clone())),
                ..u.seed.clone()
            })
            .collect()
    }

    /// The session inactivity timeout.
    pub fn session_timeout(&self) -> Duration {
        self.session_timeout
    }

    fn authenticate(&self, inner: &mut Inner, credential: Option<&str>) -> Result<Caller, Denial> {
        let credential = credential
            .filter(|c| !c.is_empty())
            .ok_or(Denial::Authentication("No SessionID or API key was given."))?;
        let now = Instant::now();
        let user_id = match inner.sessions.get_mut(credential) {
            Some(session) if now.duration_since(session.last_seen) > self.session_timeout => {
                inner.sessions.remove(credential);
                return Err(Denial::Authentication(
                    "The session has expired; log in again.",
                ));
            }
            Some(session) => {
                session.last_seen = now;
                session.user_id
            }
            None => *inner.by_key.get(credential).ok_or(Denial::Authentication(
                "The SessionID or API key is not valid.",
            ))?,
        };
        let user = inner.users.get(&user_id).ok_or(Denial::Authentication(
            "The SessionID or API key is not valid.",
        ))?;
        Ok(Caller {
            user_id,
            level: user.seed.auth_level.clone(),
            network_id: user.seed.network_id,
            mailbox_id: user.seed.mailbox_id,
        })
    }

    /// The rule for acting on another user's key: a user may act on their
    /// own; `NetOps` and above on anyone; `NetworkAdmin` on users of its own
    /// network; nobody else on anyone else. A caller who may not act on others
    /// learns nothing about whether the target exists.
    fn authorize_key_access<'i>(
        &self,
        inner: &'i mut Inner,
        caller: &Caller,
        target: i32,
    ) -> Result<&'i mut UserRecord, Denial> {
        if caller.user_id == target {
            return inner
                .users
                .get_mut(&target)
                .ok_or(Denial::NotFound("No such user."));
        }
        if !caller.level.is_at_least(&AuthLevel::NetworkAdmin) {
            return Err(Denial::Authorization(
                "Only administrators may act on another user's API key.",
            ));
        }
        let user = inner
            .users
            .get_mut(&target)
            .ok_or(Denial::NotFound("No user has that UserID."))?;
        if !caller.level.is_at_least(&AuthLevel::NetOps)
            && user.seed.network_id != caller.network_id
        {
            return Err(Denial::Authorization(
                "That user belongs to another network.",
            ));
        }
        Ok(user)
    }

    /// `Login`: a new session for the user whose login and password match.
    pub fn login(&self, login: Option<&str>, password: Option<&str>) -> Result<SessionId, Denial> {
        let mut inner = self.lock();
        let bad = Denial::Authentication("The login name or password is not valid.");
        let (Some(login), Some(password)) = (login, password) else {
            return Err(bad);
        };
        let user = inner
            .users
            .values_mut()
            .find(|u| u.seed.login.eq_ignore_ascii_case(login))
            .filter(|u| u.seed.password.expose() == password)
            .ok_or(bad)?;
        user.last_login = Some(SystemTime::now());
        let user_id = user.seed.user_id;
        self.purge_expired(&mut inner);
        let session = new_key();
        inner.next_event += 1;
        let event_id = inner.next_event;
        inner.sessions.insert(
            session.clone(),
            SessionRecord {
                user_id,
                event_id,
                last_seen: Instant::now(),
            },
        );
        Ok(SessionId::new(session))
    }

    /// Drops the sessions whose inactivity timeout has passed.
    fn purge_expired(&self, inner: &mut Inner) {
        let now = Instant::now();
        inner
            .sessions
            .retain(|_, s| now.duration_since(s.last_seen) <= self.session_timeout);
    }

    /// The sessions open now (expired ones purged first).
    pub fn open_sessions(&self) -> usize {
        let mut inner = self.lock();
        self.purge_expired(&mut inner);
        inner.sessions.len()
    }

    /// `Logout`: true when the session existed.
    pub fn logout(&self, credential: Option<&str>) -> bool {
        let mut inner = self.lock();
        credential.is_some_and(|c| inner.sessions.remove(c).is_some())
    }

    /// Ends every session of `target` without touching its key.
    pub fn reset_sessions(&self, credential: Option<&str>, target: i32) -> Result<bool, Denial> {
        let mut inner = self.lock();
        let caller = self.authenticate(&mut inner, credential)?;
        self.authorize_key_access(&mut inner, &caller, target)?;
        let before = inner.sessions.len();
        inner.sessions.retain(|_, s| s.user_id != target);
        Ok(inner.sessions.len() != before)
    }

    /// `WhoAmI`.
    pub fn who_am_i(&self, credential: Option<&str>, ip: &str) -> Result<SessionInfo, Denial> {
        let mut inner = self.lock();
        let caller = self.authenticate(&mut inner, credential)?;
        self.purge_expired(&mut inner);
        let open_sessions = inner
            .sessions
            .values()
            .filter(|s| s.user_id == caller.user_id)
            .count();
        let event_id = credential
            .and_then(|c| inner.sessions.get(c))
            .map(|s| s.event_id)
            .unwrap_or(0);
        let user = inner
            .users
            .get(&caller.user_id)
            .ok_or(Denial::Authentication(
                "The SessionID or API key is not valid.",
            ))?;
        let seed = &user.seed;
        Ok(SessionInfo {
            ecgridos_version: "4.1 (ecgridos fake)".to_string(),
            session_id: credential.map(SessionId::new),
            session_event_id: event_id,
            user_id: seed.user_id,
            login_name: seed.login.clone(),
            first_name: seed.login.clone(),
            last_name: String::new(),
            company: "Fake Company".to_string(),
            email: format!("{}@example.com", seed.login),
            phone: String::new(),
            time_zone_offset: 0.0,
            auth_level: Some(seed.auth_level.clone()),
            // .NET writes an unset DateTime as its minimum value.
            last_login: user
                .last_login
                .map(xsd_date_time)
                .unwrap_or_else(|| "0001-01-01T00:00:00".to_string()),
            open_sessions: i16::try_from(open_sessions).unwrap_or(i16::MAX),
            timeout_seconds: i16::try_from(self.session_timeout.as_secs()).unwrap_or(i16::MAX),
            network_id: seed.network_id,
            mailbox_id: seed.mailbox_id,
            ip: ip.to_string(),
        })
    }

    /// `UserGetAPIKey`.
    pub fn get_key(&self, credential: Option<&str>, target: i32) -> Result<ApiKey, Denial> {
        let mut inner = self.lock();
        let caller = self.authenticate(&mut inner, credential)?;
        let user = self.authorize_key_access(&mut inner, &caller, target)?;
        Ok(ApiKey::new(user.api_key.clone()))
    }

    /// `UserInfo`: a user the caller may act on (by the same rule as keys),
    /// without credentials.
    pub fn user_info(&self, credential: Option<&str>, target: i32) -> Result<UserView, Denial> {
        let mut inner = self.lock();
        let caller = self.authenticate(&mut inner, credential)?;
        let user = self.authorize_key_access(&mut inner, &caller, target)?;
        Ok(UserView::of(user))
    }

    /// `UserInfobyLogin` (`POST /v2/users/by-name`): the user with this
    /// login, when the caller may act on them.
    pub fn user_by_login(&self, credential: Option<&str>, login: &str) -> Result<UserView, Denial> {
        let mut inner = self.lock();
        let caller = self.authenticate(&mut inner, credential)?;
        let target = inner
            .users
            .values()
            .find(|u| u.seed.login.eq_ignore_ascii_case(login.trim()))
            .map(|u| u.seed.user_id);
        // Like the rule on IDs: who may not act on others learns nothing
        // about whether the login exists.
        let Some(target) = target else {
            return Err(if caller.level.is_at_least(&AuthLevel::NetworkAdmin) {
                Denial::NotFound("No user has that login name.")
            } else {
                Denial::Authorization("Only administrators may look up other users.")
            });
        };
        let user = self.authorize_key_access(&mut inner, &caller, target)?;
        Ok(UserView::of(user))
    }

    /// `UserList`/`UserListEx` (`POST /v2/users/list`): the users the caller
    /// may act on (everyone for `NetOps` and above, its network for
    /// `NetworkAdmin`, itself otherwise) whose login contains `name`
    /// (ignoring case), in a network and mailbox when not 0, by UserID.
    pub fn user_list(
        &self,
        credential: Option<&str>,
        name: &str,
        network_id: i32,
        mailbox_id: i32,
    ) -> Result<Vec<UserView>, Denial> {
        let mut inner = self.lock();
        let caller = self.authenticate(&mut inner, credential)?;
        let name = name.trim().to_lowercase();
        Ok(inner
            .users
            .values()
            .filter(|u| {
                let seed = &u.seed;
                let visible = seed.user_id == caller.user_id
                    || caller.level.is_at_least(&AuthLevel::NetOps)
                    || (caller.level.is_at_least(&AuthLevel::NetworkAdmin)
                        && seed.network_id == caller.network_id);
                visible
                    && seed.login.to_lowercase().contains(&name)
                    && (network_id == 0 || seed.network_id == network_id)
                    && (mailbox_id == 0 || seed.mailbox_id == mailbox_id)
            })
            .map(UserView::of)
            .collect())
    }

    /// `GenerateAPIKey`: atomically replaces the key; the old one is invalid
    /// from this moment on, over both protocols.
    pub fn generate_key(&self, credential: Option<&str>, target: i32) -> Result<ApiKey, Denial> {
        let mut inner = self.lock();
        let caller = self.authenticate(&mut inner, credential)?;
        let mut fresh = new_key();
        while inner.by_key.contains_key(&fresh) {
            fresh = new_key();
        }
        let user = self.authorize_key_access(&mut inner, &caller, target)?;
        let old = std::mem::replace(&mut user.api_key, fresh.clone());
        inner.by_key.remove(&old);
        inner.by_key.insert(fresh.clone(), target);
        *inner.rotations.entry(target).or_default() += 1;
        Ok(ApiKey::new(fresh))
    }
}

/// The mailbox side of the state: parcels, listings, the event log.
impl State {
    /// The mailboxes `caller` may look into: its own; with `NetworkAdmin`,
    /// every mailbox of its network; with `NetOps` and above, every one.
    fn mailboxes_of(inner: &mut Inner, caller: &Caller) -> Vec<i32> {
        let everything = caller.level.is_at_least(&AuthLevel::NetOps);
        let network = caller.level.is_at_least(&AuthLevel::NetworkAdmin);
        let mut seen: Vec<i32> = inner
            .mail()
            .mailboxes()
            .filter(|m| everything || (network && m.network_id == caller.network_id))
            .map(|m| m.id)
            .collect();
        seen.push(caller.mailbox_id);
        seen
    }

    /// Authenticates, then runs `f` on the model with the caller's mailbox
    /// and the mailboxes it may look into. Fires the events `f` returns,
    /// after the lock is released.
    fn on_mail<T>(
        &self,
        credential: Option<&str>,
        f: impl FnOnce(&mut Mailboxes, i32, &[i32]) -> Result<(T, Vec<ParcelEvent>), Denial>,
    ) -> Result<T, Denial> {
        let (value, events) = {
            let mut inner = self.lock();
            let caller = self.authenticate(&mut inner, credential)?;
            let seen = Self::mailboxes_of(&mut inner, &caller);
            f(inner.mail(), caller.mailbox_id, &seen)?
        };
        self.fire(&events);
        Ok(value)
    }

    fn fire(&self, events: &[ParcelEvent]) {
        if let Some(hook) = &self.hook {
            for event in events {
                hook(event);
            }
        }
    }

    /// The mailbox a mailbox-scoped call acts on: `0` is the caller's own.
    fn target_mailbox(own: i32, seen: &[i32], requested: i32) -> Result<i32, Denial> {
        match requested {
            0 => Ok(own),
            id if seen.contains(&id) => Ok(id),
            _ => Err(Denial::NotFound(
                "No mailbox with that MailboxID is visible to the caller.",
            )),
        }
    }

    fn view(mail: &Mailboxes, parcel: &Parcel, viewer: &[i32]) -> ParcelView {
        let end = |id: i32| {
            let e = mail.ecgrid_id(id).cloned().unwrap_or(EcgridId {
                ecgrid_id: id,
                network_id: 0,
                mailbox_id: 0,
                qualifier: String::new(),
                id: String::new(),
            });
            let mailbox = mail
                .mailbox(e.mailbox_id)
                .map(|m| m.name.clone())
                .unwrap_or_default();
            let network = mail
                .network(e.network_id)
                .map(|n| n.name.clone())
                .unwrap_or_default();
            (e, (mailbox, network))
        };
        let (from, from_names) = end(parcel.from);
        let (to, to_names) = end(parcel.to);
        let outbound = !viewer.contains(&to.mailbox_id);
        ParcelView {
            parcel: parcel.clone(),
            from,
            to,
            from_names,
            to_names,
            outbound,
        }
    }

    /// An upload by the caller, from its own mailbox or (the `...Ex` forms)
    /// from `mailbox` (`0`: its own), routed by `explicit` ECGrid IDs or the
    /// file's envelope.
    pub fn upload(
        &self,
        credential: Option<&str>,
        mailbox: i32,
        file_name: &str,
        bytes: Bytes,
        explicit: Option<(i32, i32)>,
    ) -> Result<i64, Denial> {
        self.on_mail(credential, |mail, own, seen| {
            let from = Self::target_mailbox(own, seen, mailbox)?;
            Ok(mail.upload(from, file_name, bytes, explicit, SystemTime::now())?)
        })
    }

    /// The parcels of a listing: for `mailbox` (`0`: the caller's own).
    pub fn list(
        &self,
        credential: Option<&str>,
        mailbox: i32,
        listing: Listing,
        filter: &Filter,
    ) -> Result<Vec<ParcelView>, Denial> {
        self.on_mail(credential, |mail, own, seen| {
            let target = Self::target_mailbox(own, seen, mailbox)?;
            let views = mail
                .list(target, listing, filter)
                .into_iter()
                .map(|p| Self::view(mail, p, &[target]))
                .collect();
            Ok((views, Vec::new()))
        })
    }

    /// The listing page size.
    pub fn page_size(&self) -> usize {
        self.lock().mail().page_size()
    }

    /// `ParcelInfo`: a parcel the caller sends or receives.
    pub fn parcel_info(
        &self,
        credential: Option<&str>,
        parcel_id: i64,
    ) -> Result<ParcelView, Denial> {
        self.on_mail(credential, |mail, _, seen| {
            let p = mail.visible(parcel_id, |m| seen.contains(&m))?;
            Ok((Self::view(mail, p, seen), Vec::new()))
        })
    }

    /// A download by the receiver; `no_update` leaves the status alone.
    pub fn download(
        &self,
        credential: Option<&str>,
        parcel_id: i64,
        no_update: bool,
    ) -> Result<ParcelView, Denial> {
        self.on_mail(credential, |mail, _, seen| {
            let (p, event) = mail.download(
                parcel_id,
                no_update,
                |m| seen.contains(&m),
                SystemTime::now(),
            )?;
            Ok((Self::view(mail, &p, seen), vec![event]))
        })
    }

    /// A confirm by the receiver: false when it was confirmed already. The
    /// event callback runs before the confirm takes effect.
    pub fn confirm(&self, credential: Option<&str>, parcel_id: i64) -> Result<bool, Denial> {
        let pending = self.on_mail(credential, |mail, _, seen| {
            let applies = mail.confirm_would_apply(parcel_id, |m| seen.contains(&m))?;
            Ok((applies.then(|| mail.next_seq()), Vec::new()))
        })?;
        if let (Some(seq), Some(hook)) = (pending, &self.hook) {
            hook(&ParcelEvent {
                seq,
                parcel_id,
                kind: ParcelEventKind::Confirmed,
                at: SystemTime::now(),
            });
        }
        // The log entry is made without firing the callback again.
        let mut inner = self.lock();
        let caller = self.authenticate(&mut inner, credential)?;
        let seen = Self::mailboxes_of(&mut inner, &caller);
        let done = inner
            .mail()
            .confirm(parcel_id, |m| seen.contains(&m), SystemTime::now())?;
        Ok(done.is_some())
    }

    /// `ParcelDownloadReset`: back to `InBoxReady` (true when it changed).
    pub fn reset_parcel(&self, credential: Option<&str>, parcel_id: i64) -> Result<bool, Denial> {
        self.on_mail(credential, |mail, _, seen| {
            let event = mail.reset(parcel_id, |m| seen.contains(&m), SystemTime::now())?;
            Ok((event.is_some(), event.into_iter().collect()))
        })
    }

    /// Cancels a parcel as its receiver or (`as_sender`) its sender.
    pub fn cancel_parcel(
        &self,
        credential: Option<&str>,
        parcel_id: i64,
        as_sender: bool,
    ) -> Result<bool, Denial> {
        self.on_mail(credential, |mail, _, seen| {
            let event = mail.cancel(
                parcel_id,
                as_sender,
                |m| seen.contains(&m),
                SystemTime::now(),
            )?;
            Ok((event.is_some(), event.into_iter().collect()))
        })
    }

    /// `MailboxInfo`: a mailbox the caller may look into.
    pub fn mailbox_info(
        &self,
        credential: Option<&str>,
        mailbox_id: i32,
    ) -> Result<(Mailbox, Network), Denial> {
        self.on_mail(credential, |mail, own, seen| {
            let target = Self::target_mailbox(own, seen, mailbox_id)?;
            let mailbox = mail
                .mailbox(target)
                .cloned()
                .ok_or(Denial::NotFound("No such mailbox."))?;
            let network = mail
                .network(mailbox.network_id)
                .cloned()
                .ok_or(Denial::NotFound("No such network."))?;
            Ok(((mailbox, network), Vec::new()))
        })
    }

    /// A parcel from the partner straight into the inbox of user `login`.
    pub fn deliver(&self, login: &str, file_name: &str, bytes: Bytes) -> Result<i64, Denial> {
        let (id, events) = {
            let mut inner = self.lock();
            let mailbox = inner
                .users
                .values()
                .find(|u| u.seed.login.eq_ignore_ascii_case(login))
                .map(|u| u.seed.mailbox_id)
                .ok_or(Denial::NotFound("No user has that login."))?;
            inner
                .mail()
                .deliver(mailbox, file_name, bytes, SystemTime::now())?
        };
        self.fire(&events);
        Ok(id)
    }

    /// A parcel, whatever its state, with the mailbox of its receiver.
    pub fn parcel(&self, parcel_id: i64) -> Option<(Parcel, i32)> {
        let mut inner = self.lock();
        let mail = inner.mail();
        let p = mail.parcel(parcel_id)?;
        Some((p.clone(), mail.mailbox_of(p, false)))
    }

    /// The event log (of one parcel, or all).
    pub fn events(&self, parcel_id: Option<i64>) -> Vec<ParcelEvent> {
        let mut inner = self.lock();
        inner
            .mail()
            .events()
            .iter()
            .filter(|e| parcel_id.is_none_or(|id| e.parcel_id == id))
            .copied()
            .collect()
    }

    /// Where each user's parcels live.
    pub fn user_mailboxes(&self) -> Vec<UserMailbox> {
        let inner = self.lock();
        let users: Vec<(i32, i32, i32)> = inner
            .users
            .values()
            .map(|u| (u.seed.user_id, u.seed.network_id, u.seed.mailbox_id))
            .collect();
        users
            .into_iter()
            .map(|(user_id, network_id, mailbox_id)| UserMailbox {
                user_id,
                network_id,
                mailbox_id,
                ecgrid_id: ECGRID_ID_BASE.saturating_add(user_id),
            })
            .collect()
    }
}

/// A random key in the GUID form the vendor's examples show.
fn new_key() -> String {
    let n = fastrand::u128(..);
    let hex = format!("{n:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

fn random_token(len: usize) -> String {
    std::iter::repeat_with(fastrand::alphanumeric)
        .take(len)
        .collect()
}

/// Seconds since the Unix epoch of a dateTime (an offset-less one is taken
/// as UTC), whole seconds.
pub(super) fn unix_seconds(t: &crate::wire::DateTime) -> i64 {
    t.unix_seconds()
}

/// The `SystemTime` of a count of seconds since the Unix epoch.
pub(super) fn seconds_to_system_time(secs: i64) -> SystemTime {
    match u64::try_from(secs) {
        Ok(s) => UNIX_EPOCH + Duration::from_secs(s),
        Err(_) => UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs()),
    }
}

/// `SystemTime` as an xsd:dateTime in UTC (`2026-11-23T12:00:00Z`).
pub(super) fn xsd_date_time(t: SystemTime) -> String {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    i64::try_from(secs)
        .ok()
        .and_then(crate::wire::DateTime::from_unix_seconds)
        .map(|d| d.to_string())
        .unwrap_or_else(|| "9999-12-31T23:59:59Z".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> State {
        State::new(SeedUser::defaults(), Duration::from_secs(60)).unwrap()
    }

    fn key_of(s: &State, id: i32) -> String {
        s.users()
            .into_iter()
            .find(|u| u.user_id == id)
            .and_then(|u| u.api_key)
            .unwrap()
            .into_exposed()
    }

    #[test]
    fn rotation_invalidates_the_old_key_at_once() {
        let s = state();
        let old = key_of(&s, 1002);
        let new = s.generate_key(Some(&old), 1002).unwrap();
        assert_ne!(new.expose(), old);
        assert!(matches!(
            s.who_am_i(Some(&old), "ip"),
            Err(Denial::Authentication(_))
        ));
        assert_eq!(s.who_am_i(Some(new.expose()), "ip").unwrap().user_id, 1002);
        assert_eq!(s.rotations(1002), 1);
    }

    #[test]
    fn authorization_rules() {
        let s = state();
        let alice = key_of(&s, 1002);
        let admin = key_of(&s, 1001);
        assert!(matches!(
            s.get_key(Some(&alice), 1003),
            Err(Denial::Authorization(_))
        ));
        assert!(matches!(
            s.get_key(Some(&alice), 999),
            Err(Denial::Authorization(_))
        ));
        assert!(s.get_key(Some(&admin), 1003).is_ok());
        assert!(matches!(
            s.get_key(Some(&admin), 999),
            Err(Denial::NotFound(_))
        ));
        assert!(matches!(
            s.get_key(None, 1003),
            Err(Denial::Authentication(_))
        ));
    }

    #[test]
    fn sessions_expire_after_inactivity() {
        let s = State::new(SeedUser::defaults(), Duration::from_millis(50)).unwrap();
        let admin = s.users().remove(0);
        let session = s
            .login(Some("ADMIN"), Some(admin.password.expose()))
            .unwrap();
        assert!(s.who_am_i(Some(session.expose()), "ip").is_ok());
        std::thread::sleep(Duration::from_millis(120));
        assert!(matches!(
            s.who_am_i(Some(session.expose()), "ip"),
            Err(Denial::Authentication(_))
        ));
        assert!(s.login(Some("admin"), Some("wrong")).is_err());
    }

    #[test]
    fn every_user_gets_a_mailbox_and_an_ecgrid_id() {
        let json = r#"[{"user_id":7,"login":"x","password":"p","auth_level":"Root"},
                       {"user_id":8,"login":"y","password":"p","auth_level":"Root","network_id":3}]"#;
        let users: Vec<SeedUser> = serde_json::from_str(json).unwrap();
        let s = State::new(users, Duration::from_secs(1)).unwrap();
        let boxes = s.user_mailboxes();
        assert_eq!(
            boxes,
            [
                UserMailbox {
                    user_id: 7,
                    network_id: 1,
                    mailbox_id: 100,
                    ecgrid_id: 500_007
                },
                UserMailbox {
                    user_id: 8,
                    network_id: 3,
                    mailbox_id: 101,
                    ecgrid_id: 500_008
                },
            ]
        );
        assert!(s.users().iter().all(|u| u.mailbox_id >= 100));
        // A mailbox cannot sit in two networks.
        let clash = r#"[{"user_id":1,"login":"a","password":"p","auth_level":"Root","mailbox_id":5},
                        {"user_id":2,"login":"b","password":"p","auth_level":"Root","mailbox_id":5,"network_id":2}]"#;
        let users: Vec<SeedUser> = serde_json::from_str(clash).unwrap();
        assert!(State::new(users, Duration::from_secs(1)).is_err());
    }

    #[test]
    fn date_time_format() {
        assert_eq!(xsd_date_time(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        assert_eq!(
            xsd_date_time(UNIX_EPOCH + Duration::from_secs(1_795_435_200)),
            "2026-11-23T12:00:00Z"
        );
    }

    #[test]
    fn seed_file_round_trip() {
        let json = r#"[{"user_id":7,"login":"x","password":"p","auth_level":"Root"}]"#;
        let users: Vec<SeedUser> = serde_json::from_str(json).unwrap();
        assert_eq!(users[0].network_id, 1);
        assert!(serde_json::from_str::<Vec<SeedUser>>(&json.replace("Root", "Boss")).is_err());
        assert!(State::new([users.clone(), users].concat(), Duration::from_secs(1)).is_err());
    }
}
