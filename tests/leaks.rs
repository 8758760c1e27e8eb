//! A sentinel secret driven through every error path must never appear in
//! `Display`, `Debug`, an error's source chain, or `tracing` output at TRACE.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ecgridos::fake::{FakeServer, SeedUser};
use ecgridos::{
    ApiKey, AuthLevel, Client, Credential, Error, KeyClient, Password, RestClient, RetryPolicy,
    SessionClient, SessionId, UserId,
};
use httpmock::prelude::*;

const SENTINEL: &str = "SENTINEL-7f3a9c-SECRET";

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn check(what: &str, err: &Error) {
    let mut texts = vec![err.to_string(), format!("{err:?}"), format!("{err:#?}")];
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        texts.push(cause.to_string());
        texts.push(format!("{cause:?}"));
        source = cause.source();
    }
    for text in texts {
        // Its start is enough to leak: a snippet cut in the middle of the
        // secret must not show the part before the cut.
        assert!(!text.contains(&SENTINEL[..8]), "{what}: secret in {text}");
    }
}

fn fast(url: &str) -> Client {
    Client::builder()
        .endpoint(url)
        .timeout(Duration::from_millis(500))
        .retry(RetryPolicy {
            max_attempts: 2,
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(1),
        })
        .build()
        .unwrap()
}

#[test]
fn no_secret_leaks_anywhere() {
    let capture = Capture::default();
    let writer = capture.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_span_events(tracing_subscriber::fmt::format::FmtSpan::CLOSE)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(drive_every_path());
    drop(_guard);
    let logs = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("ecgridos.call"),
        "spans were captured:\n{logs}"
    );
    assert!(
        logs.contains("operation=") && logs.contains("outcome="),
        "{logs}"
    );
    assert!(!logs.contains(SENTINEL), "secret in the logs:\n{logs}");
}

async fn drive_every_path() {
    let session = SessionId::new(SENTINEL);
    let key = ApiKey::new(SENTINEL);
    let password = Password::new(SENTINEL);
    let user = UserId::from(1);

    // Invalid input: a control character next to the secret.
    let c = Client::builder().build().unwrap();
    check(
        "invalid input",
        &c.generate_api_key(&SessionId::new(format!("{SENTINEL}\u{1}")), user)
            .await
            .unwrap_err(),
    );
    check(
        "invalid password",
        &c.login("x", &Password::new(format!("{SENTINEL}\u{0}")))
            .await
            .unwrap_err(),
    );

    // A server that echoes the secret back in a fault, an error page, a REST body.
    let echo = MockServer::start_async().await;
    echo.mock_async(|when, then| {
        when.method(POST).path("/fault");
        then.status(500).body(format!(
            r#"<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body><soap:Fault><faultcode>soap:Client</faultcode><faultstring>bad session {SENTINEL}</faultstring><detail><ErrorCode>1</ErrorCode><ErrorString>{SENTINEL}</ErrorString><ErrorItem>SessionID={SENTINEL}</ErrorItem><ErrorMessage>{SENTINEL} is invalid</ErrorMessage></detail></soap:Fault></soap:Body></soap:Envelope>"#
        ));
    })
    .await;
    echo.mock_async(|when, then| {
        when.method(POST).path("/page");
        then.status(502)
            .body(format!("<html>upstream said {SENTINEL}</html>"));
    })
    .await;
    echo.mock_async(|when, then| {
        when.method(POST).path("/malformed");
        then.status(200).body(format!(r#"<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body><{SENTINEL}/></soap:Body></soap:Envelope>"#));
    })
    .await;
    // The secret as the fault code, and as an unknown fault category.
    echo.mock_async(|when, then| {
        when.method(POST).path("/code");
        then.status(500).body(format!(
            r#"<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body><soap:Fault><faultcode>{SENTINEL}</faultcode><faultstring>no</faultstring><detail><ECGridOSSOAPErrorCode>{SENTINEL}</ECGridOSSOAPErrorCode></detail></soap:Fault></soap:Body></soap:Envelope>"#
        ));
    })
    .await;
    // An error page whose snippet would be cut in the middle of the secret.
    echo.mock_async(|when, then| {
        when.method(POST).path("/cut");
        then.status(502)
            .body(format!("{}{SENTINEL} and more", "x".repeat(190)));
    })
    .await;
    echo.mock_async(|when, then| {
        when.path_includes("/rest-code/v2/");
        then.status(403).json_body(serde_json::json!({
            "success": false, "errorCode": SENTINEL, "message": "no", "data": null
        }));
    })
    .await;
    echo.mock_async(|when, then| {
        when.path_includes("/rest-cut/v2/");
        then.status(502)
            .body(format!("{}{SENTINEL} and more", "x".repeat(190)));
    })
    .await;
    echo.mock_async(|when, then| {
        when.path_includes("/v2/");
        then.status(401).json_body(serde_json::json!({
            "success": false, "errorCode": "InvalidAPIKey", "message": format!("key {SENTINEL} unknown"), "data": null
        }));
    })
    .await;
    for path in ["/fault", "/page", "/malformed", "/code", "/cut"] {
        let c = fast(&echo.url(path));
        check(path, &c.who_am_i(&session).await.unwrap_err());
        check(path, &c.generate_api_key(&key, user).await.unwrap_err());
        check(path, &c.login("someone", &password).await.unwrap_err());
    }
    let rest = RestClient::builder()
        .base_url(echo.base_url())
        .build()
        .unwrap();
    check(
        "rest error",
        &rest.get_api_key(&key, user).await.unwrap_err(),
    );
    check(
        "rest rotation",
        &rest.generate_api_key(&key, user).await.unwrap_err(),
    );
    check(
        "rest login",
        &rest.login("someone", &password).await.unwrap_err(),
    );
    check("rest bearer", &rest.me(&session).await.unwrap_err());
    for prefix in ["/rest-code", "/rest-cut"] {
        let rest = RestClient::builder()
            .base_url(echo.url(prefix))
            .build()
            .unwrap();
        check(prefix, &rest.get_api_key(&key, user).await.unwrap_err());
        check(
            prefix,
            &rest.generate_api_key(&key, user).await.unwrap_err(),
        );
        check(prefix, &rest.login("someone", &password).await.unwrap_err());
        check(prefix, &rest.me(&session).await.unwrap_err());
    }

    // Connection refused, reset after the request (outcome unknown), timeout.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let refused = fast(&format!("http://127.0.0.1:{port}/x"));
    check(
        "refused",
        &refused.generate_api_key(&session, user).await.unwrap_err(),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        use tokio::io::AsyncReadExt;
        for n in 0..6 {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let mut buf = vec![0u8; 65536];
            let _ = sock.read(&mut buf).await;
            if n % 2 == 1 {
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        }
    });
    let dropper = fast(&format!("http://{addr}/x"));
    check(
        "outcome unknown",
        &dropper.generate_api_key(&session, user).await.unwrap_err(),
    );
    check(
        "timeout or reset",
        &dropper.who_am_i(&key).await.unwrap_err(),
    );

    // The fake: wrong password, a rejected key, a session client.
    let users = vec![SeedUser {
        user_id: 5,
        login: "u".into(),
        password: Password::new("right"),
        api_key: Some(ApiKey::new("k-5")),
        auth_level: AuthLevel::General,
        network_id: 1,
        mailbox_id: 1,
    }];
    let fake = FakeServer::builder().users(users).start().await.unwrap();
    let c = Client::builder().endpoint(fake.soap_url()).build().unwrap();
    check("fake login", &c.login("u", &password).await.unwrap_err());
    check("fake key", &c.who_am_i(&key).await.unwrap_err());
    let sc = SessionClient::with_login(c.clone(), "u", password.clone());
    check("session client", &sc.who_am_i().await.unwrap_err());
    let kc = KeyClient::from(c.clone());
    let cred = Credential::ApiKey(key.clone());
    check(
        "key client",
        &kc.generate_api_key_with_recovery(&cred, user)
            .await
            .unwrap_err(),
    );

    // Debug of every value that holds a secret.
    let debug = format!(
        "{session:?}{key:?}{password:?}{cred:?}{sc:?}{kc:?}{:?}{:?}{:?}",
        Credential::Session(session.clone()),
        SeedUser {
            user_id: 1,
            login: "x".into(),
            password: password.clone(),
            api_key: Some(key.clone()),
            auth_level: AuthLevel::Root,
            network_id: 1,
            mailbox_id: 1,
        },
        ecgridos::operations::Login {
            login_name: "x",
            password: &password
        },
    );
    assert!(!debug.contains(SENTINEL), "{debug}");
}
