//! TLS against the fake serving HTTPS with its own CA: trusted with the CA,
//! refused without it, on a name mismatch and an expired certificate; mutual
//! TLS accepted with the client certificate and refused without one. Every
//! refusal is typed with the check that failed and reached nothing.

use ecgridos::fake::{FakeServer, FakeTls};
use ecgridos::{Client, ClientBuilder, RestClient, RetryPolicy, TlsFailure, TlsVersion, UserId};

async fn fake(tls: FakeTls) -> FakeServer {
    FakeServer::builder().tls(tls).start().await.unwrap()
}

fn client_for(server: &FakeServer) -> ClientBuilder {
    Client::builder()
        .endpoint(server.soap_url())
        .proxy_from_env(false)
        .retry(RetryPolicy::none())
}

fn trusting(server: &FakeServer) -> ClientBuilder {
    let ca = server.tls().unwrap().ca_cert_pem().to_string();
    client_for(server).add_root_certificate(ca)
}

/// A client of `server` trusting its CA and offering the client certificate
/// `issuer` made.
fn with_client_cert(server: &FakeServer, issuer: &FakeServer) -> Client {
    let material = issuer.tls().unwrap();
    trusting(server)
        .client_certificate(
            material.client_cert_pem().unwrap(),
            material.client_key_pem().unwrap().clone(),
        )
        .build()
        .unwrap()
}

#[tokio::test]
async fn trusted_with_the_fakes_ca_over_soap_and_rest() {
    let server = fake(FakeTls::new()).await;
    assert!(server.soap_url().starts_with("https://127.0.0.1:"));
    let client = trusting(&server).build().unwrap();
    let alice = server.user("alice").unwrap();
    let key = alice.api_key.clone().unwrap();
    let new_key = client
        .generate_api_key(&key, UserId::from(alice.user_id))
        .await
        .unwrap();
    assert_eq!(server.api_key(alice.user_id), Some(new_key.clone()));

    let rest = RestClient::builder()
        .base_url(server.rest_url())
        .proxy_from_env(false)
        .add_root_certificate(server.tls().unwrap().ca_cert_pem().as_bytes().to_vec())
        .tls_min_version(TlsVersion::Tls13)
        .build()
        .unwrap();
    assert_eq!(rest.me(&new_key).await.unwrap().login, "alice");
}

/// Rotates alice's key with `client`, expecting a TLS refusal of `failure`
/// that changed nothing.
async fn refused(server: &FakeServer, client: Client, failure: TlsFailure) {
    let alice = server.user("alice").unwrap();
    let err = client
        .generate_api_key(&alice.api_key.clone().unwrap(), UserId::from(alice.user_id))
        .await
        .unwrap_err();
    assert!(err.is_tls(), "{err:?}");
    assert!(!err.is_outcome_unknown());
    assert_eq!(err.tls_failure(), Some(failure), "{err}");
    assert_eq!(err.kind(), ecgridos::ErrorKind::Tls);
    assert!(err.to_string().contains("TLS"), "{err}");
    assert_eq!(
        server.soap_requests(),
        0,
        "the request must not reach the service"
    );
    assert_eq!(server.rotations(alice.user_id), 0);
}

#[tokio::test]
async fn refused_without_the_ca_as_an_untrusted_chain() {
    let server = fake(FakeTls::new()).await;
    refused(
        &server,
        client_for(&server).build().unwrap(),
        TlsFailure::UntrustedChain,
    )
    .await;
}

#[tokio::test]
async fn refused_on_a_name_mismatch() {
    // The certificate names localhost only; the URL names 127.0.0.1.
    let server = fake(FakeTls::new().names(["localhost"])).await;
    refused(
        &server,
        trusting(&server).build().unwrap(),
        TlsFailure::NameMismatch,
    )
    .await;
}

#[tokio::test]
async fn refused_on_an_expired_certificate() {
    let server = fake(FakeTls::new().expired(true)).await;
    refused(
        &server,
        trusting(&server).build().unwrap(),
        TlsFailure::Expired,
    )
    .await;
}

#[tokio::test]
async fn mutual_tls_accepts_the_client_certificate_and_refuses_its_absence() {
    let server = fake(FakeTls::new().require_client_cert(true)).await;
    let without = trusting(&server).build().unwrap();
    refused(&server, without, TlsFailure::NoClientCertificate).await;

    // A certificate from another CA is refused too.
    let other = fake(FakeTls::new().require_client_cert(true)).await;
    let wrong = with_client_cert(&server, &other);
    refused(&server, wrong, TlsFailure::ClientCertificateRejected).await;

    let with = with_client_cert(&server, &server);
    let alice = server.user("alice").unwrap();
    let key = with
        .generate_api_key(&alice.api_key.clone().unwrap(), UserId::from(alice.user_id))
        .await
        .unwrap();
    assert_eq!(server.api_key(alice.user_id), Some(key));
    assert_eq!(server.rotations(alice.user_id), 1);
}

#[tokio::test]
async fn the_minimum_tls_version_is_enforced() {
    let server = fake(FakeTls::new().tls12_only(true)).await;
    // Refused when the client asks for TLS 1.3 at least ...
    let strict = trusting(&server)
        .tls_min_version(TlsVersion::Tls13)
        .build()
        .unwrap();
    refused(&server, strict, TlsFailure::ProtocolVersion).await;
    // ... accepted by default.
    let default = trusting(&server).build().unwrap();
    assert!(default.version().await.is_ok());
}

#[tokio::test]
async fn bad_pem_is_refused_at_build_without_quoting_the_key() {
    let err = Client::builder()
        .add_root_certificate("not a certificate")
        .build()
        .unwrap_err();
    assert!(err.is_invalid_input(), "{err:?}");
    let err = Client::builder()
        .client_certificate(
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
            ecgridos::PrivateKeyPem::new("sekrit-key-material"),
        )
        .build()
        .unwrap_err();
    assert!(err.is_invalid_input(), "{err:?}");
    assert!(!format!("{err} {err:?}").contains("sekrit"));
}

#[tokio::test]
async fn the_builder_debug_shows_no_key_and_no_proxy_password() {
    let builder = Client::builder()
        .proxy("http://bob:pr0xy-pass@proxy.corp:3128")
        .client_certificate("CERT", ecgridos::PrivateKeyPem::new("sekrit-key-material"));
    let shown = format!("{builder:?}");
    assert!(
        !shown.contains("pr0xy-pass") && !shown.contains("sekrit"),
        "{shown}"
    );
    assert!(shown.contains("proxy.corp:3128"), "{shown}");
}
