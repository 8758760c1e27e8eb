//! Every parameter, result and field that carries a credential is a
//! redacted type. The contract is scanned here for credential-like names,
//! independently of the generator; each must be secret in the generated API
//! or be listed below as a deliberate exception.

use ecgridos::api::{OPERATIONS, TYPES};
use ecgridos::wire::FieldSpec;

/// Name fragments that suggest a credential.
const CREDENTIAL_LIKE: &[&str] = &[
    "session",
    "password",
    "passwd",
    "apikey",
    "secret",
    "token",
    "private",
    "key",
    "cert",
    "pfx",
    "recovery",
    "credential",
    "passphrase",
    "pin",
];

/// Credential-like names that are not credentials: (owner or `*`, element).
const NOT_SECRET: &[(&str, &str, &str)] = &[
    ("*", "Key", "the name of a key-value entry"),
    ("*", "KeyID", "a certificate's key identifier"),
    ("*", "KeyId", "a certificate's key identifier"),
    ("*", "PublicCertificate", "a public certificate"),
    ("*", "RecoveryQuestion", "the question, not the answer"),
    ("CertificateAddPublic", "Cert", "a public certificate"),
    (
        "CertificateAddPublicA",
        "CertBase64",
        "a public certificate",
    ),
];

/// Secrets whose names do not look like credentials.
const ALSO_SECRET: &[(&str, &str)] = &[("Login", "LoginResult")];

fn credential_like(spec: &FieldSpec) -> bool {
    // Numbers, booleans, enumerations and structures cannot hold a
    // credential themselves (a structure's fields are checked on their own).
    let text = matches!(spec.xsd_type, "s:string" | "s:base64Binary");
    let name = spec.name.to_ascii_lowercase();
    text && CREDENTIAL_LIKE.iter().any(|p| name.contains(p))
}

fn excepted(owner: &str, spec: &FieldSpec) -> bool {
    NOT_SECRET
        .iter()
        .any(|(o, n, _)| *n == spec.name && (*o == "*" || *o == owner))
}

fn all_fields() -> Vec<(&'static str, FieldSpec)> {
    let mut all = Vec::new();
    for e in OPERATIONS {
        for p in e.info.params {
            all.push((e.info.name, *p));
        }
        all.push((e.info.name, e.info.result));
    }
    for t in TYPES {
        for f in t.fields {
            all.push((t.name, *f));
        }
    }
    all
}

#[test]
fn every_credential_is_redacted() {
    let mut wrong = Vec::new();
    let mut secrets = Vec::new();
    for (owner, spec) in all_fields() {
        let expected = (credential_like(&spec) && !excepted(owner, &spec))
            || ALSO_SECRET.contains(&(owner, spec.name));
        if spec.secret != expected {
            wrong.push(format!("{owner}.{} secret={}", spec.name, spec.secret));
        }
        if spec.secret {
            secrets.push(format!("{owner}.{}", spec.name));
        }
    }
    assert!(
        wrong.is_empty(),
        "fields whose redaction is wrong: {wrong:#?}"
    );
    // 215 SessionID parameters and the rest; printed by --nocapture for the record.
    println!("{} secret parameters, results and fields", secrets.len());
    assert!(secrets.contains(&"GenerateAPIKey.GenerateAPIKeyResult".to_string()));
    assert!(secrets.contains(&"CertificateRoot.PrivatePFX".to_string()));
    assert!(secrets.contains(&"NetworkVPN.SharedSecret".to_string()));
    // Every exception names something that exists.
    for (owner, name, _) in NOT_SECRET {
        assert!(
            all_fields()
                .iter()
                .any(|(o, s)| s.name == *name && (*owner == "*" || o == owner)),
            "{owner}.{name}"
        );
    }
}

#[test]
fn secret_values_never_reach_debug_output() {
    use ecgridos::api::certificate::CertAddPrivate;
    use ecgridos::api::types::{CertificateRoot, SessionInfo};
    use ecgridos::secret::{Password, SecretBytes, SessionId};

    let mut info = SessionInfo::default();
    info.session_id = Some(SessionId::new("sekrit-session"));
    let mut root = CertificateRoot::default();
    root.password = Some(Password::new("sekrit-password"));
    root.private_pfx = Some(SecretBytes::new(b"sekrit-pfx".to_vec()));
    let mut request = CertAddPrivate::default();
    request.session_id = Some(SessionId::new("sekrit-session"));
    request.password = Some(Password::new("sekrit-password"));
    request.cert = Some(SecretBytes::new(b"sekrit-pfx".to_vec()));
    let text = format!("{info:?}{root:?}{request:?}");
    assert!(!text.contains("sekrit"), "{text}");

    // A secret XML cannot carry is refused without echoing it.
    use ecgridos::operations::Operation;
    request.password = Some(Password::new("sekrit\u{1}password"));
    let err = request.check().unwrap_err();
    assert!(err.is_invalid_input());
    assert!(!format!("{err} {err:?}").contains("sekrit"), "{err}");
    request.password = Some(Password::new(""));
    assert!(
        request.check().is_ok(),
        "an empty optional value may be sent"
    );
}
