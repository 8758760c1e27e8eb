//! The migration harness: the generic REST call path against the fake, the
//! difference engine on real answers of both protocols, and scenario files
//! run over both protocols by the library and the CLI.

use ecgridos::api::request::find;
use ecgridos::api::Params;
use ecgridos::fake::FakeServer;
use ecgridos::migrate::diff::compare;
use ecgridos::{Client, ErrorKind, RestAuth, RestClient};

fn params(pairs: &[(&str, &str)]) -> Params {
    let mut p = Params::new();
    for (n, v) in pairs {
        p.set(*n, *v);
    }
    p
}

/// Both clients of one fake.
fn clients(server: &FakeServer) -> (Client, RestClient) {
    let soap = Client::builder()
        .endpoint(server.soap_url())
        .build()
        .unwrap();
    let rest = RestClient::builder()
        .base_url(server.rest_url())
        .build()
        .unwrap();
    (soap, rest)
}

#[tokio::test]
async fn call_json_over_rest_follows_the_mapping() {
    let server = FakeServer::start().await.unwrap();
    let (soap, rest) = clients(&server);
    let admin = server.user("admin").unwrap();
    let alice = server.user("alice").unwrap();
    let key = admin.api_key.clone().unwrap();
    let entry = find("UserGetAPIKey").unwrap();
    let id = alice.user_id.to_string();

    let over_rest = rest
        .call_json(entry, &params(&[("UserID", &id)]), RestAuth::ApiKey(&key))
        .await
        .unwrap();
    assert_eq!(over_rest, alice.api_key.as_ref().unwrap().expose());
    assert_eq!(server.rest_calls("key"), 1);

    // The same call over SOAP compares as the same, field by field.
    let over_soap = soap
        .call_json(
            entry,
            &params(&[("SessionID", key.expose()), ("UserID", &id)]),
        )
        .await
        .unwrap();
    assert!(compare("UserGetAPIKey", &Ok(over_soap), &Ok(over_rest)).is_same());

    // A result inside data (Login's token) and a call without credential.
    let login = rest
        .call_json(
            find("Login").unwrap(),
            &params(&[
                ("LoginName", "alice"),
                ("Password", alice.password.expose()),
            ]),
            None,
        )
        .await
        .unwrap();
    assert!(login.as_str().is_some_and(|t| !t.is_empty()));
    let version = rest
        .call_json(find("Version").unwrap(), &Params::new(), None)
        .await
        .unwrap();
    assert_eq!(version, "2.6");
}

#[tokio::test]
async fn rest_errors_have_the_kinds_of_soap_faults() {
    let server = FakeServer::start().await.unwrap();
    let (soap, rest) = clients(&server);
    let alice = server.user("alice").unwrap();
    let key = alice.api_key.clone().unwrap();
    let entry = find("UserGetAPIKey").unwrap();
    for (target, kind) in [
        ("1003", ErrorKind::Authorization),
        ("1002", ErrorKind::Authentication),
    ] {
        let bad = ecgridos::ApiKey::new("not-a-key");
        let auth = if kind == ErrorKind::Authentication {
            &bad
        } else {
            &key
        };
        let r = rest
            .call_json(
                entry,
                &params(&[("UserID", target)]),
                RestAuth::ApiKey(auth),
            )
            .await
            .unwrap_err();
        let s = soap
            .call_json(
                entry,
                &params(&[("SessionID", auth.expose()), ("UserID", target)]),
            )
            .await
            .unwrap_err();
        assert_eq!((r.kind(), s.kind()), (kind, kind), "{r} / {s}");
        assert!(r.is_rest() && s.is_fault());
        assert!(!r.to_string().contains(auth.expose()), "{r}");
    }
}

#[tokio::test]
async fn call_json_refuses_before_sending() {
    let server = FakeServer::start().await.unwrap();
    let (_, rest) = clients(&server);
    let key = server.user("admin").unwrap().api_key.unwrap();
    let auth = RestAuth::ApiKey(&key);
    // No REST twin.
    let no_twin = find("NowUTC").unwrap();
    let err = rest
        .call_json(no_twin, &Params::new(), auth)
        .await
        .unwrap_err();
    assert!(err.is_invalid_input(), "{err}");
    // An unknown parameter, a value that does not fit, a missing path value.
    let entry = find("GenerateAPIKey").unwrap();
    for p in [
        params(&[("UserId", "1002")]),
        params(&[("UserID", "many")]),
        Params::new(),
    ] {
        let err = rest.call_json(entry, &p, auth).await.unwrap_err();
        assert!(err.is_invalid_input(), "{err}");
    }
    assert_eq!(server.rest_calls("key-generate"), 0);
    assert_eq!(server.rotations(1002), 0);
}
