//! Result values: how each result type is read from, and written into, its
//! `<Op>Result` element.

use std::fmt;
use std::str::FromStr;

use super::reader::{Ns, Start, XmlCursor};
use super::{ReadError, XmlWriter};
use crate::secret::{ApiKey, SessionId};

/// A type that can be the result of an operation.
pub trait ResultValue: Sized {
    /// The XML Schema type of the result element in the WSDL (`s:string`,
    /// `s:boolean`, `tns:SessionInfo`).
    const XSD_TYPE: &'static str;

    /// Reads the value from the result element whose start `start` the cursor
    /// just returned. By default: the element's text, through
    /// [`from_text`](Self::from_text). Structured results override it.
    fn read(cur: &mut XmlCursor<'_>, start: &Start<'_>) -> Result<Self, ReadError> {
        let text = cur.text(start)?;
        Self::from_text(&text)
            .unwrap_or_else(|| Err(ReadError::malformed("a structured result has no text form")))
    }

    /// For a result that is plain text, the value that text stands for;
    /// `None` for a structured result. The full reader and the fast path for
    /// canonical responses both go through it, so they cannot disagree.
    fn from_text(text: &str) -> Option<Result<Self, ReadError>> {
        let _ = text;
        None
    }

    /// Writes the content of the result element.
    fn write(&self, w: &mut XmlWriter<'_>);

    /// The value of an absent or nil result element; `None` (an error) for a
    /// result that must be present.
    fn absent() -> Option<Self> {
        None
    }
}

/// A result with `minOccurs="0"`: `None` when the element is absent or nil.
impl<T: ResultValue> ResultValue for Option<T> {
    const XSD_TYPE: &'static str = T::XSD_TYPE;

    fn read(cur: &mut XmlCursor<'_>, start: &Start<'_>) -> Result<Self, ReadError> {
        T::read(cur, start).map(Some)
    }

    fn from_text(text: &str) -> Option<Result<Self, ReadError>> {
        T::from_text(text).map(|r| r.map(Some))
    }

    fn write(&self, w: &mut XmlWriter<'_>) {
        if let Some(v) = self {
            v.write(w);
        }
    }

    fn absent() -> Option<Self> {
        Some(None)
    }
}

impl ResultValue for String {
    const XSD_TYPE: &'static str = "s:string";

    fn from_text(text: &str) -> Option<Result<Self, ReadError>> {
        Some(Ok(text.to_string()))
    }

    fn write(&self, w: &mut XmlWriter<'_>) {
        w.text(self);
    }
}

macro_rules! secret_result {
    ($ty:ty, $what:literal) => {
        impl ResultValue for $ty {
            const XSD_TYPE: &'static str = "s:string";

            fn from_text(text: &str) -> Option<Result<Self, ReadError>> {
                // Keys and session IDs carry no meaningful surrounding
                // whitespace; an empty one would be a disaster to store.
                let value = text.trim();
                Some(if value.is_empty() {
                    Err(ReadError::malformed(concat!(
                        "empty ",
                        $what,
                        " in the response"
                    )))
                } else {
                    Ok(<$ty>::new(value))
                })
            }

            fn write(&self, w: &mut XmlWriter<'_>) {
                w.text(self.expose());
            }
        }
    };
}

secret_result!(ApiKey, "API key");
secret_result!(SessionId, "session ID");

impl ResultValue for bool {
    const XSD_TYPE: &'static str = "s:boolean";

    /// Reads `true`/`false` and, because an older service version answered
    /// with an integer, any integer (non-zero is true).
    fn from_text(text: &str) -> Option<Result<Self, ReadError>> {
        Some(match text.trim() {
            "true" => Ok(true),
            "false" => Ok(false),
            other => other.parse::<i64>().map(|n| n != 0).map_err(|_| {
                ReadError::malformed("boolean result is neither true/false nor an integer")
            }),
        })
    }

    fn write(&self, w: &mut XmlWriter<'_>) {
        w.text(if *self { "true" } else { "false" });
    }
}

/// A yes/no answer the contract types as `s:int` (`LogoutResult`): written
/// as `1` or `0`; read from any integer (non-zero is yes) and, for services
/// that answer `true`/`false`, from those too.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IntFlag(pub bool);

impl ResultValue for IntFlag {
    const XSD_TYPE: &'static str = "s:int";

    fn from_text(text: &str) -> Option<Result<Self, ReadError>> {
        bool::from_text(text).map(|r| r.map(IntFlag))
    }

    fn write(&self, w: &mut XmlWriter<'_>) {
        w.text(if self.0 { "1" } else { "0" });
    }
}

/// A user's authority level, highest first.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AuthLevel {
    /// Only meaningful in updates: leave the level as it is.
    NoChange,
    /// The service operator's top level.
    Root,
    /// Technical operations staff.
    TechOps,
    /// Network operations staff.
    NetOps,
    /// Administrator of one network.
    NetworkAdmin,
    /// User of one network.
    NetworkUser,
    /// Administrator of one mailbox.
    MailboxAdmin,
    /// User of one mailbox.
    MailboxUser,
    /// Trading-partner user.
    TPUser,
    /// The lowest level.
    General,
    /// A level this crate does not know, kept as written.
    Unknown(String),
}

impl AuthLevel {
    /// All known levels, highest first.
    pub const KNOWN: [AuthLevel; 10] = [
        AuthLevel::NoChange,
        AuthLevel::Root,
        AuthLevel::TechOps,
        AuthLevel::NetOps,
        AuthLevel::NetworkAdmin,
        AuthLevel::NetworkUser,
        AuthLevel::MailboxAdmin,
        AuthLevel::MailboxUser,
        AuthLevel::TPUser,
        AuthLevel::General,
    ];

    /// The level's name as the service writes it.
    pub fn as_str(&self) -> &str {
        match self {
            AuthLevel::NoChange => "NoChange",
            AuthLevel::Root => "Root",
            AuthLevel::TechOps => "TechOps",
            AuthLevel::NetOps => "NetOps",
            AuthLevel::NetworkAdmin => "NetworkAdmin",
            AuthLevel::NetworkUser => "NetworkUser",
            AuthLevel::MailboxAdmin => "MailboxAdmin",
            AuthLevel::MailboxUser => "MailboxUser",
            AuthLevel::TPUser => "TPUser",
            AuthLevel::General => "General",
            AuthLevel::Unknown(s) => s,
        }
    }

    /// Rank from 0 (highest, `NoChange`) down; unknown levels rank lowest.
    fn rank(&self) -> usize {
        AuthLevel::KNOWN
            .iter()
            .position(|l| l == self)
            .unwrap_or(AuthLevel::KNOWN.len())
    }

    /// True when `self` is `other` or a higher level. `NoChange` is not a
    /// real level and is never at least anything.
    pub fn is_at_least(&self, other: &AuthLevel) -> bool {
        *self != AuthLevel::NoChange && self.rank() <= other.rank()
    }
}

impl FromStr for AuthLevel {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        Ok(AuthLevel::KNOWN
            .iter()
            .find(|l| l.as_str() == s)
            .cloned()
            .unwrap_or_else(|| AuthLevel::Unknown(s.to_string())))
    }
}

impl fmt::Display for AuthLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What `WhoAmI` tells about a session. A field the response leaves out keeps
/// its default (empty text, zero).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SessionInfo {
    /// `ECGridOSVersion`: the service version serving the session.
    pub ecgridos_version: String,
    /// `SessionID`: the session's ID (for a call made with an API key, what
    /// the service put there). Absent when the response had none.
    pub session_id: Option<SessionId>,
    /// `SessionEventID`.
    pub session_event_id: i32,
    /// `UserID`.
    pub user_id: i32,
    /// `LoginName`.
    pub login_name: String,
    /// `FirstName`.
    pub first_name: String,
    /// `LastName`.
    pub last_name: String,
    /// `Company`.
    pub company: String,
    /// `EMail`.
    pub email: String,
    /// `Phone`.
    pub phone: String,
    /// `TimeZoneOffset`: an `s:float` in the contract (integers are read too).
    pub time_zone_offset: f32,
    /// `AuthLevel`.
    pub auth_level: Option<AuthLevel>,
    /// `LastLogin`, as the xsd:dateTime text the service sent.
    pub last_login: String,
    /// `OpenSessions`: this user's open sessions.
    pub open_sessions: i16,
    /// `TimeOut`: the most seconds allowed between calls before the session
    /// expires.
    pub timeout_seconds: i16,
    /// `NetworkID`.
    pub network_id: i32,
    /// `MailboxID`.
    pub mailbox_id: i32,
    /// `ip`: the session's IP address.
    pub ip: String,
}

impl SessionInfo {
    /// The children of the `SessionInfo` type, in schema order.
    pub const FIELDS: [&'static str; 18] = [
        "ECGridOSVersion",
        "SessionID",
        "SessionEventID",
        "UserID",
        "LoginName",
        "FirstName",
        "LastName",
        "Company",
        "EMail",
        "Phone",
        "TimeZoneOffset",
        "AuthLevel",
        "LastLogin",
        "OpenSessions",
        "TimeOut",
        "NetworkID",
        "MailboxID",
        "ip",
    ];
}

fn number<T: FromStr>(field: &'static str, text: &str) -> Result<T, ReadError> {
    text.trim()
        .parse()
        .map_err(|_| ReadError::Malformed(format!("SessionInfo.{field} is not a number").into()))
}

impl ResultValue for SessionInfo {
    const XSD_TYPE: &'static str = "tns:SessionInfo";

    fn read(cur: &mut XmlCursor<'_>, start: &Start<'_>) -> Result<Self, ReadError> {
        let mut info = SessionInfo::default();
        if start.empty {
            return Ok(info);
        }
        while let Some(child) = cur.next_child()? {
            // Unknown children are ignored, as are ones outside the service
            // namespace: a newer service may add fields.
            let known = SessionInfo::FIELDS.iter().position(|f| *f == child.local);
            let (Ns::Service, Some(index)) = (child.ns, known) else {
                cur.skip(&child)?;
                continue;
            };
            let text = cur.text(&child)?;
            let field = SessionInfo::FIELDS[index];
            match index {
                0 => info.ecgridos_version = text.into_owned(),
                1 => {
                    info.session_id =
                        Some(SessionId::new(text.trim())).filter(|s| !s.expose().is_empty())
                }
                2 => info.session_event_id = number(field, &text)?,
                3 => info.user_id = number(field, &text)?,
                4 => info.login_name = text.into_owned(),
                5 => info.first_name = text.into_owned(),
                6 => info.last_name = text.into_owned(),
                7 => info.company = text.into_owned(),
                8 => info.email = text.into_owned(),
                9 => info.phone = text.into_owned(),
                10 => info.time_zone_offset = number(field, &text)?,
                11 => info.auth_level = text.parse().ok(),
                12 => info.last_login = text.into_owned(),
                13 => info.open_sessions = number(field, &text)?,
                14 => info.timeout_seconds = number(field, &text)?,
                15 => info.network_id = number(field, &text)?,
                16 => info.mailbox_id = number(field, &text)?,
                _ => info.ip = text.into_owned(),
            }
        }
        Ok(info)
    }

    fn write(&self, w: &mut XmlWriter<'_>) {
        let numbers = |n: &dyn fmt::Display| n.to_string();
        let values: [String; 18] = [
            self.ecgridos_version.clone(),
            self.session_id
                .as_ref()
                .map(|s| s.expose().to_string())
                .unwrap_or_default(),
            numbers(&self.session_event_id),
            numbers(&self.user_id),
            self.login_name.clone(),
            self.first_name.clone(),
            self.last_name.clone(),
            self.company.clone(),
            self.email.clone(),
            self.phone.clone(),
            numbers(&self.time_zone_offset),
            self.auth_level
                .as_ref()
                .map(|l| l.as_str().to_string())
                .unwrap_or_default(),
            self.last_login.clone(),
            numbers(&self.open_sessions),
            numbers(&self.timeout_seconds),
            numbers(&self.network_id),
            numbers(&self.mailbox_id),
            self.ip.clone(),
        ];
        for (name, value) in SessionInfo::FIELDS.iter().zip(values.iter()) {
            w.leaf(name, value);
        }
    }
}
