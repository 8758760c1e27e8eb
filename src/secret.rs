//! Secret values: session IDs, API keys, passwords, private keys and proxy
//! URLs that may carry credentials.
//!
//! Each lives in a newtype whose `Debug` and `Display` print `<redacted>`, so a
//! secret cannot reach a log line, an error message or a panic by accident.
//! Reading the value takes an explicit [`expose`](ApiKey::expose) call.
//!
//! Text that may hold a secret echoed by a server (an error page, a fault, a
//! recording) goes through [`redact_text`]; a URL that may carry a user name
//! and password through [`redact_url`].

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

/// What a redacted secret is replaced by in text meant for people.
pub const REDACTED: &str = "<redacted>";

/// Secrets shorter than this (in characters) are not searched for in their
/// other forms: three characters or fewer (and their few base64 or
/// percent-encoded characters) occur by chance in any page, so replacing
/// them would garble it and, by what it garbled, point at the secret.
/// [`redact_text`] still replaces such a secret as it is (an error message
/// is short and read by people); [`redact_text_with`] (recordings) leaves
/// it, and the recorder replaces it wherever it stands as a named field's
/// value, whatever its length.
pub const ECHO_MIN_CHARS: usize = 4;

/// `text` with every occurrence of each of `secrets` replaced by
/// [`REDACTED`], in every form a server may echo it in (see
/// [`redact_text_with`]).
///
/// ```
/// use ecgridos::secret::redact_text;
/// let page = "bad session 5F0C1E2A-9B7D, auth Basic cHVzZXI6UHIweHlQVw==";
/// let shown = redact_text(page, &["5f0c1e2a-9b7d", "puser:Pr0xyPW"]);
/// assert_eq!(shown, "bad session <redacted>, auth Basic <redacted>");
/// ```
pub fn redact_text(text: &str, secrets: &[&str]) -> String {
    replace_forms(text, secrets, |_| REDACTED.to_string(), true)
}

/// `text` with every occurrence of `secrets[i]` replaced by
/// `replacement(i)`: the one redaction routine of the crate (error messages,
/// recordings, reports, the CLI's output).
///
/// A secret is found in each form it can take in an echo:
/// - as is, and ASCII case-insensitively (session IDs and keys are GUIDs or
///   hex, which servers may echo in another case);
/// - XML-escaped (`&amp;`, `&lt;`, ...);
/// - percent-encoded, with upper or lower hex, with or without the RFC 3986
///   unreserved characters encoded, with `+` or `%20` for a space;
/// - base64, standard and URL-safe, with or without padding, and inside a
///   longer base64 text at each of the three byte alignments (a
///   `Basic base64(user:password)` header holds the password at any of
///   them): the characters that carry only the secret's bits are searched,
///   and the one character on each side that carries part of them is taken
///   too, with any padding, so that no part of the secret is left.
///
/// Overlapping finds are merged into one replacement (by the first
/// secret's). Secrets shorter than [`ECHO_MIN_CHARS`] are not searched.
pub fn redact_text_with(
    text: &str,
    secrets: &[&str],
    replacement: impl Fn(usize) -> String,
) -> String {
    replace_forms(text, secrets, replacement, false)
}

/// [`redact_text_with`]; short secrets replaced as they are when
/// `short_as_is`.
fn replace_forms(
    text: &str,
    secrets: &[&str],
    replacement: impl Fn(usize) -> String,
    short_as_is: bool,
) -> String {
    let patterns = echo_patterns(secrets, short_as_is);
    if patterns.is_empty() {
        return text.to_string();
    }
    let bytes = text.as_bytes();
    let folded = text.to_ascii_lowercase();
    let mut found: Vec<(usize, usize, usize)> = Vec::new();
    for p in &patterns {
        let (haystack, needle) = if p.fold {
            (folded.as_str(), p.text.to_ascii_lowercase())
        } else {
            (text, p.text.clone())
        };
        for (at, _) in haystack.match_indices(needle.as_str()) {
            let (mut start, mut end) = (at, at + needle.len());
            // Only ASCII bytes are taken in: the ends stay on char boundaries.
            if let Some(alphabet) = p.base64 {
                if p.lead && start > 0 && alphabet.contains(bytes[start - 1]) {
                    start -= 1;
                }
                if p.trail && end < bytes.len() && alphabet.contains(bytes[end]) {
                    end += 1;
                }
                while end < bytes.len() && bytes[end] == b'=' {
                    end += 1;
                }
            }
            found.push((start, end, p.secret));
        }
    }
    if found.is_empty() {
        return text.to_string();
    }
    found.sort_by_key(|&(start, end, _)| (start, std::cmp::Reverse(end)));
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    let mut current: Option<(usize, usize, usize)> = None;
    for (start, end, secret) in found {
        match &mut current {
            Some((_, cur_end, _)) if start < *cur_end => *cur_end = (*cur_end).max(end),
            _ => {
                if let Some((s, e, i)) = current.take() {
                    out.push_str(&text[copied..s]);
                    out.push_str(&replacement(i));
                    copied = e;
                }
                current = Some((start, end, secret));
            }
        }
    }
    if let Some((s, e, i)) = current {
        out.push_str(&text[copied..s]);
        out.push_str(&replacement(i));
        copied = e;
    }
    out.push_str(&text[copied..]);
    out
}

/// A base64 alphabet, for taking in the characters next to a find.
#[derive(Clone, Copy)]
struct Alphabet(&'static [u8; 2]);

impl Alphabet {
    const STANDARD: Alphabet = Alphabet(b"+/");
    const URL_SAFE: Alphabet = Alphabet(b"-_");

    fn contains(self, b: u8) -> bool {
        b.is_ascii_alphanumeric() || self.0.contains(&b)
    }
}

/// One form of one secret.
struct Pattern {
    text: String,
    /// Matched ASCII case-insensitively.
    fold: bool,
    /// Base64 text: its alphabet, and whether the character before (`lead`)
    /// and after (`trail`) it carry part of the secret.
    base64: Option<Alphabet>,
    lead: bool,
    trail: bool,
    secret: usize,
}

/// Every form of every secret long enough to search for (and short ones as
/// they are, when `short_as_is`), longest first.
fn echo_patterns(secrets: &[&str], short_as_is: bool) -> Vec<Pattern> {
    use base64::Engine as _;
    let mut patterns: Vec<Pattern> = Vec::new();
    for (i, secret) in secrets.iter().enumerate() {
        if secret.chars().count() < ECHO_MIN_CHARS {
            if short_as_is && !secret.is_empty() {
                patterns.push(Pattern {
                    text: secret.to_string(),
                    fold: false,
                    base64: None,
                    lead: false,
                    trail: false,
                    secret: i,
                });
            }
            continue;
        }
        let escaped = xml_escape(secret);
        let variants: Vec<&str> = if escaped == *secret {
            vec![secret]
        } else {
            vec![secret, &escaped]
        };
        for variant in variants {
            let mut texts = vec![variant.to_string()];
            for (keep_unreserved, plus) in
                [(true, false), (true, true), (false, false), (false, true)]
            {
                texts.push(percent_encode(variant, keep_unreserved, plus));
            }
            texts.sort();
            texts.dedup();
            patterns.extend(texts.into_iter().map(|text| Pattern {
                text,
                fold: true,
                base64: None,
                lead: false,
                trail: false,
                secret: i,
            }));
            let engines = [
                (
                    base64::engine::general_purpose::STANDARD_NO_PAD,
                    Alphabet::STANDARD,
                ),
                (
                    base64::engine::general_purpose::URL_SAFE_NO_PAD,
                    Alphabet::URL_SAFE,
                ),
            ];
            for (engine, alphabet) in engines {
                for offset in 0..3usize {
                    let mut bytes = vec![0u8; offset];
                    bytes.extend_from_slice(variant.as_bytes());
                    let encoded = engine.encode(&bytes);
                    // Character k carries bits 6k..6k+6; the secret has bits
                    // 8*offset..8*(offset+len).
                    let (first, last) = (offset * 8, bytes.len() * 8);
                    let (start, end) = (first.div_ceil(6), last / 6);
                    let Some(core) = encoded.get(start..end) else {
                        continue;
                    };
                    // A short run of base64 occurs by chance in any content.
                    if core.len() < 4 {
                        continue;
                    }
                    patterns.push(Pattern {
                        text: core.to_string(),
                        fold: false,
                        base64: Some(alphabet),
                        lead: first % 6 != 0,
                        trail: last % 6 != 0,
                        secret: i,
                    });
                }
            }
        }
    }
    patterns.sort_by_key(|p| std::cmp::Reverse(p.text.len()));
    patterns
}

/// `text` as XML character data or an attribute value.
fn xml_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// `text` percent-encoded: ASCII letters and digits as they are, the RFC
/// 3986 unreserved `-._~` too when `keep_unreserved`, a space as `+` when
/// `plus`, every other byte as `%XX`.
fn percent_encode(text: &str, keep_unreserved: bool, plus: bool) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(text.len() * 3);
    for b in text.bytes() {
        match b {
            b if b.is_ascii_alphanumeric() => out.push(b as char),
            b'-' | b'.' | b'_' | b'~' if keep_unreserved => out.push(b as char),
            b' ' if plus => out.push('+'),
            b => {
                let _ = write!(out, "%{b:02X}");
            }
        }
    }
    out
}

/// `text` with its `%XX` escapes decoded (as in a URL's user name and
/// password); an escape that is not one stays as it is.
pub(crate) fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `text` (a URL, or text that may be one) with the user name and password
/// of its authority replaced by [`REDACTED`]: `http://user:pw@host/p` is
/// shown as `http://<redacted>@host/p`. Every URL the crate and the CLI
/// print or store goes through it. It does not parse: a URL too broken to
/// parse is redacted all the same.
///
/// ```
/// use ecgridos::secret::redact_url;
/// assert_eq!(redact_url("https://u:p%40ss@h:8/x?q=1"), "https://<redacted>@h:8/x?q=1");
/// assert_eq!(redact_url("https://h/x@y"), "https://h/x@y");
/// ```
pub fn redact_url(text: &str) -> String {
    let Some(scheme_end) = text.find("://") else {
        return text.to_string();
    };
    let authority_start = scheme_end + 3;
    let rest = &text[authority_start..];
    let authority_len = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..authority_len].rfind('@') {
        Some(at) => format!("{}{REDACTED}{}", &text[..authority_start], &rest[at..]),
        None => text.to_string(),
    }
}

/// True when `name`, a parameter or field name the contract does not know,
/// looks like it carries a credential (the contract's own names are
/// classified by the contract). The rule works on the name's ASCII letters
/// and digits in lower case, so that `API_Key`, `api-key` and `APIKey` are
/// alike: it is a credential when it contains `password`, `passwd`, `pwd`,
/// `secret`, `sessionid`, `apikey`, `token`, `credential` or `privatekey`,
/// ends with `key` (`AccessKey`, `SigningKey`), or begins with `auth`
/// (`Authorization`, `AuthToken`). A name wrongly taken for one costs a
/// fingerprint in a recording; one wrongly missed costs a leak.
///
/// ```
/// use ecgridos::secret::is_credential_name;
/// assert!(is_credential_name("Pwd") && is_credential_name("APIKey"));
/// assert!(is_credential_name("session_id") && is_credential_name("Authorization"));
/// assert!(!is_credential_name("Color") && !is_credential_name("KeyboardLayout"));
/// ```
pub fn is_credential_name(name: &str) -> bool {
    const CONTAINS: &[&str] = &[
        "password",
        "passwd",
        "pwd",
        "secret",
        "sessionid",
        "apikey",
        "token",
        "credential",
        "privatekey",
    ];
    let folded: String = name
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect();
    CONTAINS.iter().any(|p| folded.contains(p))
        || folded.ends_with("key")
        || folded.starts_with("auth")
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

    #[test]
    fn every_form_of_a_secret_is_replaced_whole() {
        use base64::Engine as _;
        let secret = "Se cr&t/5f0C1e2a";
        let b64 = base64::engine::general_purpose::STANDARD;
        let url = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let echoes = vec![
            secret.to_string(),
            secret.to_ascii_uppercase(),
            secret.to_ascii_lowercase(),
            "Se cr&amp;t/5f0C1e2a".to_string(),
            "Se%20cr%26t%2F5f0C1e2a".to_string(),
            "se+cr%26t%2f5f0c1e2a".to_string(),
            b64.encode(secret),
            url.encode(secret),
        ];
        // Inside a longer base64 text, at each alignment: only characters
        // that carry none of the secret's bits may stay around it.
        for prefix in ["", "x", "xy", "xyz:"] {
            for tail in ["", "tail"] {
                let echo = b64.encode(format!("{prefix}{secret}{tail}"));
                let shown = redact_text(&echo, &[secret]);
                let (head, rest) = shown.split_once("<redacted>").unwrap_or(("none", "none"));
                assert!(head.len() <= prefix.len() * 8 / 6, "{shown}");
                assert!(rest.len() <= (tail.len() * 8).div_ceil(6) + 2, "{shown}");
            }
        }
        for echo in &echoes {
            let text = format!("before {echo} after");
            assert_eq!(
                redact_text(&text, &[secret]),
                "before <redacted> after",
                "{echo}"
            );
        }
        // A pair given as user:password is found in a Basic header.
        let basic = format!("Basic {}", b64.encode("puser:Pr0xyPW"));
        assert_eq!(
            redact_text(&basic, &["Pr0xyPW", "puser:Pr0xyPW"]),
            "Basic <redacted>"
        );
        // Each secret has its own replacement; short ones are not searched.
        let text = "a KEY-one and key-two and abc";
        let shown = redact_text_with(text, &["key-one", "key-two", "abc"], |i| format!("#{i}"));
        assert_eq!(shown, "a #0 and #1 and abc");
        assert_eq!(
            redact_text(text, &["abc", ""]),
            "a KEY-one and key-two and <redacted>"
        );
        assert_eq!(
            redact_text("ünïcødé key-one ü", &["KEY-ONE"]),
            "ünïcødé <redacted> ü"
        );
    }

    #[test]
    fn urls_lose_their_user_name_and_password() {
        assert_eq!(
            redact_url("http://user:pw@host:8080/p?q=a@b"),
            "http://<redacted>@host:8080/p?q=a@b"
        );
        assert_eq!(redact_url("http://host/p"), "http://host/p");
        assert_eq!(redact_url("not a url user:pw@x"), "not a url user:pw@x");
        assert_eq!(redact_url("h://a@b@c"), "h://<redacted>@c");
        assert_eq!(percent_decode("p%40ss%2Fw%zz%4"), "p@ss/w%zz%4");
    }
}
