//! The ECGridOS operations this crate supports, one declaration each.
//!
//! A declaration names the operation, its parameters in WSDL order, its result
//! type and whether it may be retried. Everything else (envelope, validation,
//! redaction, retries, the WSDL check) is derived from it. To add an operation,
//! add a declaration here and its entry to `wsdl/ECGridOS.wsdl`.

use crate::error::Error;
use crate::secret::{ApiKey, Password, SessionId, SessionRef};
use crate::wire::{check_xml_text, IntFlag, ResultValue, SessionInfo, XmlWriter};

/// A user's numeric ID (`UserID`, an xsd `int` on the wire).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UserId(i32);

impl UserId {
    /// A user ID, refused when outside the service's `int` range.
    ///
    /// ```
    /// use ecgridos::UserId;
    /// assert_eq!(UserId::new(42).unwrap().get(), 42);
    /// assert!(UserId::new(i64::from(i32::MAX) + 1).unwrap_err().is_invalid_input());
    /// ```
    pub fn new(id: i64) -> Result<UserId, Error> {
        i32::try_from(id).map(UserId).map_err(|_| {
            Error::invalid_input(
                "UserID",
                format!(
                    "{id} is outside the service's int range ({}..={})",
                    i32::MIN,
                    i32::MAX
                ),
            )
        })
    }

    /// The numeric value.
    pub fn get(self) -> i32 {
        self.0
    }
}

impl From<i32> for UserId {
    fn from(id: i32) -> Self {
        UserId(id)
    }
}

impl std::str::FromStr for UserId {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        let n: i64 = s
            .trim()
            .parse()
            .map_err(|_| Error::invalid_input("UserID", format!("{s:?} is not an integer")))?;
        UserId::new(n)
    }
}

impl std::fmt::Display for UserId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// Whether an operation may be sent again after a failure that leaves its
/// outcome open.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Idempotency {
    /// A read: sending it twice does no harm.
    Idempotent,
    /// Changes state: sent again only when the connection failed before any
    /// of the request was written. Otherwise the caller gets
    /// [`Error::OutcomeUnknown`] carrying `if_unknown` as advice.
    NotIdempotent {
        /// What the caller should do when the outcome is unknown.
        if_unknown: &'static str,
    },
}

/// The declaration of one parameter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ParamSpec {
    /// The element name.
    pub name: &'static str,
    /// The XML Schema type in the WSDL (`s:string`, `s:int`).
    pub xsd_type: &'static str,
}

/// The declaration of one operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OperationSpec {
    /// The operation name, as in the WSDL and the SOAPAction.
    pub name: &'static str,
    /// The parameters, in WSDL order.
    pub params: &'static [ParamSpec],
    /// The XML Schema type of `<Name>Result`.
    pub result_type: &'static str,
    /// Retry class.
    pub idempotency: Idempotency,
}

/// A parameter value: how it is checked and written.
pub trait Param {
    /// The XML Schema type in the WSDL.
    const XSD_TYPE: &'static str;
    /// Refuses a value the service cannot be sent, before any I/O.
    fn check(&self, name: &'static str) -> Result<(), Error>;
    /// Writes `<name>value</name>`.
    fn write(&self, name: &str, w: &mut XmlWriter<'_>);
    /// The value, when it is a secret that must never appear in an error.
    fn secret(&self) -> Option<&str> {
        None
    }
}

fn check_text(name: &'static str, value: &str, secret: bool) -> Result<(), Error> {
    if value.is_empty() {
        return Err(Error::invalid_input(name, "must not be empty"));
    }
    check_xml_chars(name, value, secret)
}

/// Refuses text XML 1.0 cannot carry; for a secret, the error says which
/// character is bad but not what is around it.
pub(crate) fn check_xml_chars(name: &'static str, value: &str, secret: bool) -> Result<(), Error> {
    check_xml_text(value).map_err(|bad| {
        let reason = if secret {
            format!(
                "contains a character XML 1.0 cannot carry (U+{:04X})",
                bad.ch as u32
            )
        } else {
            bad.to_string()
        };
        Error::invalid_input(name, reason)
    })
}

/// A secret text parameter: checked without echoing it, never in errors.
macro_rules! secret_param {
    ($ty:ty) => {
        impl Param for $ty {
            const XSD_TYPE: &'static str = "s:string";
            fn check(&self, name: &'static str) -> Result<(), Error> {
                check_text(name, self.expose(), true)
            }
            fn write(&self, name: &str, w: &mut XmlWriter<'_>) {
                w.leaf(name, self.expose());
            }
            fn secret(&self) -> Option<&str> {
                Some(self.expose())
            }
        }
    };
}

secret_param!(SessionRef<'_>);
secret_param!(&Password);

impl Param for &str {
    const XSD_TYPE: &'static str = "s:string";
    fn check(&self, name: &'static str) -> Result<(), Error> {
        check_text(name, self, false)
    }
    fn write(&self, name: &str, w: &mut XmlWriter<'_>) {
        w.leaf(name, self);
    }
}

impl Param for UserId {
    const XSD_TYPE: &'static str = "s:int";
    fn check(&self, _name: &'static str) -> Result<(), Error> {
        Ok(())
    }
    fn write(&self, name: &str, w: &mut XmlWriter<'_>) {
        w.leaf(name, itoa::Buffer::new().format(self.0));
    }
}

/// An ECGridOS operation: its declaration and its typed parameters.
pub trait Operation {
    /// The typed result.
    type Output: ResultValue;
    /// The declaration.
    const SPEC: OperationSpec;
    /// Refuses invalid parameters before any I/O.
    fn check(&self) -> Result<(), Error>;
    /// Writes the parameter elements, in WSDL order.
    fn write_params(&self, w: &mut XmlWriter<'_>);
    /// Calls `f` with each secret parameter value (for redaction).
    fn for_each_secret(&self, f: &mut dyn FnMut(&str));
}

macro_rules! operations {
    ($(
        $(#[$doc:meta])*
        $name:literal => $ty:ident $(<$lt:lifetime>)? {
            $( $(#[$fdoc:meta])* $field:ident : $fty:ty = $pname:literal ),* $(,)?
        } -> $out:ty, $idem:expr;
    )*) => {
        $(
            $(#[$doc])*
            #[derive(Clone, Copy, Debug)]
            pub struct $ty $(<$lt>)? {
                $( $(#[$fdoc])* pub $field: $fty, )*
            }

            impl $(<$lt>)? Operation for $ty $(<$lt>)? {
                type Output = $out;
                const SPEC: OperationSpec = OperationSpec {
                    name: $name,
                    params: &[$( ParamSpec { name: $pname, xsd_type: <$fty as Param>::XSD_TYPE } ),*],
                    result_type: <$out as ResultValue>::XSD_TYPE,
                    idempotency: $idem,
                };
                fn check(&self) -> Result<(), Error> {
                    $( Param::check(&self.$field, $pname)?; )*
                    Ok(())
                }
                #[allow(unused_variables)]
                fn write_params(&self, w: &mut XmlWriter<'_>) {
                    $( Param::write(&self.$field, $pname, w); )*
                }
                #[allow(unused_variables)]
                fn for_each_secret(&self, f: &mut dyn FnMut(&str)) {
                    $( if let Some(s) = Param::secret(&self.$field) { f(s) } )*
                }
            }
        )*

        /// Every supported operation, in WSDL order.
        pub const CATALOG: &[OperationSpec] = &[ $( <$ty as Operation>::SPEC ),* ];
    };
}

pub(crate) const ROTATION_UNKNOWN: &str = "the key may have been rotated, so the old key may no longer work; \
read the current key with UserGetAPIKey (get-api-key), which does not rotate, instead of calling GenerateAPIKey again";

operations! {
    /// `GenerateAPIKey(SessionID, UserID)`: replaces the user's API key with a
    /// new one and returns it. The previous key stops working at once. Never
    /// retried once any of the request may have been sent.
    "GenerateAPIKey" => GenerateApiKey<'a> {
        /// The caller's session ID or API key.
        session_id: SessionRef<'a> = "SessionID",
        /// The user whose key is replaced.
        user_id: UserId = "UserID",
    } -> ApiKey, Idempotency::NotIdempotent { if_unknown: ROTATION_UNKNOWN };

    /// `UserGetAPIKey(SessionID, UserID)`: the user's current API key, without
    /// rotating it.
    "UserGetAPIKey" => UserGetApiKey<'a> {
        /// The caller's session ID or API key.
        session_id: SessionRef<'a> = "SessionID",
        /// The user whose key is read.
        user_id: UserId = "UserID",
    } -> ApiKey, Idempotency::Idempotent;

    /// `Login(LoginName, Password)`: opens a session and returns its ID.
    "Login" => Login<'a> {
        /// The login name.
        login_name: &'a str = "LoginName",
        /// The password.
        password: &'a Password = "Password",
    } -> SessionId, Idempotency::NotIdempotent {
        if_unknown: "a session may have been opened; it ends by itself after its inactivity timeout",
    };

    /// `Logout(SessionID)`: ends the session. The result is an `s:int`: 1 when
    /// it ended, 0 when it was already gone.
    "Logout" => Logout<'a> {
        /// The session to end.
        session_id: SessionRef<'a> = "SessionID",
    } -> IntFlag, Idempotency::NotIdempotent {
        if_unknown: "the session may have ended; WhoAmI tells whether it is still open",
    };

    /// `WhoAmI(SessionID)`: what the service knows about the session.
    "WhoAmI" => WhoAmI<'a> {
        /// The caller's session ID or API key.
        session_id: SessionRef<'a> = "SessionID",
    } -> SessionInfo, Idempotency::Idempotent;

    /// `Version()`: the service version, such as `4.1`. Needs no session.
    "Version" => Version {} -> String, Idempotency::Idempotent;
}

/// The declaration of the operation called `name`.
pub fn find(name: &str) -> Option<&'static OperationSpec> {
    CATALOG.iter().find(|spec| spec.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_id_range() {
        assert!(UserId::new(i64::from(i32::MIN)).is_ok());
        assert!(UserId::new(i64::from(i32::MIN) - 1)
            .unwrap_err()
            .is_invalid_input());
        assert!("12x".parse::<UserId>().unwrap_err().is_invalid_input());
        assert_eq!(" 7 ".parse::<UserId>().unwrap(), UserId::from(7));
    }

    #[test]
    fn user_id_writes_every_i32() {
        for n in [0, 7, -1, i32::MAX, i32::MIN] {
            let mut buf = Vec::new();
            UserId(n).write("UserID", &mut XmlWriter::new(&mut buf));
            assert_eq!(
                String::from_utf8(buf).unwrap(),
                format!("<UserID>{n}</UserID>")
            );
        }
    }

    #[test]
    fn catalog_lists_each_operation_once() {
        let names: Vec<_> = CATALOG.iter().map(|s| s.name).collect();
        assert_eq!(
            names,
            [
                "GenerateAPIKey",
                "UserGetAPIKey",
                "Login",
                "Logout",
                "WhoAmI",
                "Version"
            ]
        );
        assert_eq!(find("Version").map(|s| s.params.len()), Some(0));
        assert!(find("Nope").is_none());
    }

    #[test]
    fn secrets_are_checked_without_echo() {
        let key = ApiKey::new("ab\u{1}cd");
        let op = WhoAmI {
            session_id: SessionRef::from(&key),
        };
        let err = op.check().unwrap_err();
        assert!(err.is_invalid_input());
        assert!(!err.to_string().contains("ab"), "{err}");
        let empty = SessionId::new("");
        assert!(WhoAmI {
            session_id: (&empty).into()
        }
        .check()
        .is_err());
    }
}
