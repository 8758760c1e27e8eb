//! Secret values: session IDs, API keys, passwords, private keys and proxy
//! URLs that may carry credentials.
//!
//! Each lives in a newtype whose `Debug` and `Display` print `<redacted>`, so a
//! secret cannot reach a log line, an error message or a panic by accident.
//! Reading the value takes an explicit [`expose`](ApiKey::expose) call.

use std::fmt;

macro_rules! secret_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash)]
        pub struct $name(String);

        impl $name {
            /// Wraps a secret value.
            pub fn new(value: impl Into<String>) -> Self {
                Self(value.into())
            }

            /// The secret itself. Every call site of this method is a place where
            /// the secret leaves its wrapper: keep them few and deliberate.
            pub fn expose(&self) -> &str {
                &self.0
            }

            /// Unwraps the secret.
            pub fn into_exposed(self) -> String {
                self.0
            }

            /// The first four characters followed by `…`, for showing a person
            /// which secret is meant without showing the secret.
            pub fn preview(&self) -> String {
                let head: String = self.0.chars().take(4).collect();
                format!("{head}…")
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(concat!(stringify!($name), "(<redacted>)"))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("<redacted>")
            }
        }
    };
}

secret_type! {
    /// An ECGridOS session ID, as returned by `Login`.
    SessionId
}

secret_type! {
    /// An ECGridOS API key, as returned by `GenerateAPIKey` and `UserGetAPIKey`.
    ///
    /// The service accepts an API key wherever it accepts a session ID.
    ApiKey
}

secret_type! {
    /// A user's password, sent only by `Login`.
    Password
}

secret_type! {
    /// A PEM-encoded private key (a TLS client certificate's key, or the
    /// fake server's CA key).
    PrivateKeyPem
}

/// A proxy URL, which may carry credentials (`http://user:password@host:port`).
///
/// `Debug` and `Display` show the scheme, host and port only, with any user
/// name and password replaced by `<redacted>`.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ProxyUrl(String);

impl ProxyUrl {
    /// Wraps a proxy URL.
    pub fn new(url: impl Into<String>) -> Self {
        Self(url.into())
    }

    /// The URL itself, credentials included.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The URL without credentials: `scheme://<redacted>@host:port` when it
    /// carries any, `scheme://host:port` otherwise, and `<unparsable proxy URL>`
    /// when it is not a URL (whose text could hold anything).
    pub fn redacted(&self) -> String {
        match url::Url::parse(&self.0) {
            Ok(url) => {
                let auth = if url.username().is_empty() && url.password().is_none() {
                    ""
                } else {
                    "<redacted>@"
                };
                let host = url.host_str().unwrap_or_default();
                match url.port_or_known_default() {
                    Some(port) => format!("{}://{auth}{host}:{port}", url.scheme()),
                    None => format!("{}://{auth}{host}", url.scheme()),
                }
            }
            Err(_) => "<unparsable proxy URL>".to_string(),
        }
    }
}

impl fmt::Debug for ProxyUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ProxyUrl({})", self.redacted())
    }
}

impl fmt::Display for ProxyUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

/// A borrowed credential sent as the `SessionID` parameter: either a
/// [`SessionId`] or an [`ApiKey`], which the service treats alike.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct SessionRef<'a>(&'a str);

impl<'a> SessionRef<'a> {
    /// The credential itself.
    pub fn expose(&self) -> &'a str {
        self.0
    }
}

impl<'a> From<&'a SessionId> for SessionRef<'a> {
    fn from(id: &'a SessionId) -> Self {
        SessionRef(id.expose())
    }
}

impl<'a> From<&'a ApiKey> for SessionRef<'a> {
    fn from(key: &'a ApiKey) -> Self {
        SessionRef(key.expose())
    }
}

impl fmt::Debug for SessionRef<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionRef(<redacted>)")
    }
}

secret_type! {
    /// Any other credential text the contract carries: shared secrets, access
    /// and secret keys of storage services, private keys given as base64 text.
    Secret
}

/// Secret bytes: a private key or certificate store (such as a PFX) sent or
/// received as `s:base64Binary`. `Debug` prints `<redacted>`.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct SecretBytes(Vec<u8>);

impl SecretBytes {
    /// Wraps secret bytes.
    pub fn new(value: impl Into<Vec<u8>>) -> Self {
        Self(value.into())
    }

    /// The bytes themselves; keep call sites few and deliberate.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretBytes(<redacted>)")
    }
}

impl From<ApiKey> for SessionId {
    /// An API key may stand in for a session ID.
    fn from(key: ApiKey) -> Self {
        SessionId(key.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_redact() {
        let key = ApiKey::new("sekrit-value-123");
        assert_eq!(format!("{key:?}"), "ApiKey(<redacted>)");
        assert_eq!(format!("{key}"), "<redacted>");
        let session = SessionId::new("sekrit-value-123");
        let r = SessionRef::from(&session);
        assert!(!format!("{session:?}{session}{r:?}").contains("sekrit"));
        assert_eq!(r.expose(), "sekrit-value-123");
        assert_eq!(key.preview(), "sekr…");
        let bytes = SecretBytes::new(b"pfx-bytes".to_vec());
        assert_eq!(format!("{bytes:?}"), "SecretBytes(<redacted>)");
        assert_eq!(bytes.expose(), b"pfx-bytes");
        assert_eq!(format!("{:?}", Secret::new("s3cr3t")), "Secret(<redacted>)");
    }

    #[test]
    fn proxy_url_hides_credentials() {
        let proxy = ProxyUrl::new("http://bob:pr0xy-sekrit@proxy.corp:3128");
        let shown = format!("{proxy:?} {proxy}");
        assert!(
            !shown.contains("pr0xy-sekrit") && !shown.contains("bob"),
            "{shown}"
        );
        assert!(shown.contains("proxy.corp:3128"), "{shown}");
        assert_eq!(ProxyUrl::new("http://p:8080").redacted(), "http://p:8080");
        assert_eq!(
            ProxyUrl::new("not a url sekrit").redacted(),
            "<unparsable proxy URL>"
        );
        let key = PrivateKeyPem::new("-----BEGIN PRIVATE KEY-----\nsekrit");
        assert!(!format!("{key:?}{key}").contains("sekrit"));
    }
}
