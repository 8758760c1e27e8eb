//! Hostile servers: each case must end in the right typed error, within the
//! timeout, without buffering unbounded data and without a panic. Servers are
//! raw TCP on loopback; every loop is bounded in connections, bytes and time.

mod common;

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ecgridos::{
    ApiKey, Client, Credential, Error, ErrorKind, KeyClient, Limit, RetryPolicy, Rotation,
    Scenario, SessionId, SoapVersion, TimeoutPhase, UserId,
};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

/// What the server does with one request.
#[derive(Clone)]
enum Action {
    /// Send these bytes, then close.
    Send(Vec<u8>),
    /// Send headers with this Content-Length (or none), then up to 100 MB of body.
    Flood { declared: bool },
    /// Send the first `fast` bytes at once, then the rest one per `every`.
    Drip {
        bytes: Vec<u8>,
        fast: usize,
        every: Duration,
    },
    /// Close without answering (RST).
    Reset,
    /// Send the first `n` bytes of these, then reset.
    ResetAfter(Vec<u8>, usize),
}

type Script = Arc<dyn Fn(usize, &str) -> Action + Send + Sync>;

struct Hostile {
    url: String,
    /// The REST base URL of the same server.
    base: String,
    requests: Arc<AtomicUsize>,
    sent: Arc<AtomicU64>,
    seen: Arc<std::sync::Mutex<Vec<String>>>,
}

fn reset(sock: TcpStream) {
    // Linger 0: closing sends RST instead of FIN.
    let std = sock.into_std().unwrap();
    socket2::SockRef::from(&std)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(std);
}

async fn hostile(script: impl Fn(usize, &str) -> Action + Send + Sync + 'static) -> Hostile {
    let script: Script = Arc::new(script);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let url = format!("{base}/v4.1/prod/ECGridOS.asmx");
    let requests = Arc::new(AtomicUsize::new(0));
    let sent = Arc::new(AtomicU64::new(0));
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let (r, s, v) = (requests.clone(), sent.clone(), seen.clone());
    tokio::spawn(async move {
        for _ in 0..32 {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let (script, r, s, v) = (script.clone(), r.clone(), s.clone(), v.clone());
            tokio::spawn(async move {
                let Some(request) = common::read_http_request(&mut sock).await else {
                    return;
                };
                let n = r.fetch_add(1, Ordering::SeqCst);
                v.lock().unwrap().push(request.clone());
                match script(n, &request) {
                    Action::Send(bytes) => {
                        let _ = sock.write_all(&bytes).await;
                        s.fetch_add(bytes.len() as u64, Ordering::SeqCst);
                        let _ = sock.shutdown().await;
                    }
                    Action::Flood { declared } => {
                        let head = if declared {
                            "HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nContent-Length: 104857600\r\n\r\n"
                        } else {
                            "HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nConnection: close\r\n\r\n"
                        };
                        if sock.write_all(head.as_bytes()).await.is_err() {
                            return;
                        }
                        let chunk = vec![b'a'; 64 * 1024];
                        let _ = sock.write_all(b"<soap:Envelope xmlns:soap=\"http://schemas.xmlsoap.org/soap/envelope/\"><x>").await;
                        for _ in 0..1600 {
                            if sock.write_all(&chunk).await.is_err() {
                                return;
                            }
                            s.fetch_add(chunk.len() as u64, Ordering::SeqCst);
                        }
                    }
                    Action::Drip { bytes, fast, every } => {
                        let fast = fast.min(bytes.len());
                        if sock.write_all(&bytes[..fast]).await.is_err() {
                            return;
                        }
                        for b in bytes[fast..].iter().take(64) {
                            if sock.write_all(&[*b]).await.is_err() {
                                return;
                            }
                            s.fetch_add(1, Ordering::SeqCst);
                            tokio::time::sleep(every).await;
                        }
                    }
                    Action::Reset => reset(sock),
                    Action::ResetAfter(bytes, n) => {
                        let _ = sock.write_all(&bytes[..n.min(bytes.len())]).await;
                        let _ = sock.flush().await;
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        reset(sock);
                    }
                }
            });
        }
    });
    Hostile {
        url,
        base,
        requests,
        sent,
        seen,
    }
}

/// How many rotation requests the server has seen.
fn rotation_requests(server: &Hostile) -> usize {
    server
        .seen
        .lock()
        .unwrap()
        .iter()
        .filter(|r| r.contains("GenerateAPIKey"))
        .count()
}

fn http(status: &str, content_type: &str, body: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

fn soap_ok(op: &str, result: &str) -> Vec<u8> {
    http(
        "200 OK",
        "text/xml; charset=utf-8",
        format!(
            r#"<?xml version="1.0" encoding="utf-8"?><soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body><{op}Response xmlns="https://os.ecgrid.io/"><{op}Result>{result}</{op}Result></{op}Response></soap:Body></soap:Envelope>"#
        )
        .as_bytes(),
    )
}

/// A SOAP 1.1 fault under HTTP 500, with this code and detail markup.
fn soap_fault(code: &str, detail: &str) -> Vec<u8> {
    http(
        "500 Internal Server Error",
        "text/xml",
        format!(
            r#"<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body><soap:Fault><faultcode>{code}</faultcode><faultstring>x</faultstring>{detail}</soap:Fault></soap:Body></soap:Envelope>"#
        )
        .as_bytes(),
    )
}

fn client(url: &str) -> Client {
    Client::builder()
        .endpoint(url)
        .timeout(Duration::from_millis(1500))
        .retry(RetryPolicy::none())
        .build()
        .unwrap()
}

async fn version_error(action: Action) -> (Error, Hostile) {
    let server = hostile(move |_, _| action.clone()).await;
    let started = Instant::now();
    let err = client(&server.url).version().await.unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    (err, server)
}

const ENV_OPEN: &str =
    r#"<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body>"#;

#[tokio::test]
async fn entity_attacks_are_refused() {
    let laughs = format!(
        r#"<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;"><!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>{ENV_OPEN}<VersionResponse xmlns="https://os.ecgrid.io/"><VersionResult>&lol3;</VersionResult></VersionResponse></soap:Body></soap:Envelope>"#
    );
    let (err, _) = version_error(Action::Send(http("200 OK", "text/xml", laughs.as_bytes()))).await;
    assert!(
        err.is_malformed() && err.to_string().contains("DOCTYPE"),
        "{err}"
    );
    let xxe = format!(
        r#"<?xml version="1.0"?><!DOCTYPE x [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>{ENV_OPEN}<VersionResponse xmlns="https://os.ecgrid.io/"><VersionResult>&xxe;</VersionResult></VersionResponse></soap:Body></soap:Envelope>"#
    );
    let (err, _) = version_error(Action::Send(http("200 OK", "text/xml", xxe.as_bytes()))).await;
    assert!(err.is_malformed(), "{err}");
    assert!(!err.to_string().contains("root:"), "no file was read");
    // Without a DOCTYPE, an entity reference is simply undeclared.
    let bare = format!(
        r#"{ENV_OPEN}<VersionResponse xmlns="https://os.ecgrid.io/"><VersionResult>&xxe;</VersionResult></VersionResponse></soap:Body></soap:Envelope>"#
    );
    let (err, _) = version_error(Action::Send(http("200 OK", "text/xml", bare.as_bytes()))).await;
    assert!(err.to_string().contains("undeclared entity"), "{err}");
}

#[tokio::test]
async fn a_huge_body_is_cut_off_while_streaming() {
    for declared in [true, false] {
        let (err, server) = version_error(Action::Flood { declared }).await;
        assert!(
            matches!(
                err,
                Error::LimitExceeded {
                    limit: Limit::BodyBytes(1_048_576),
                    ..
                }
            ),
            "declared={declared}: {err:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
        let sent = server.sent.load(Ordering::SeqCst);
        assert!(
            sent < 32 * 1024 * 1024,
            "declared={declared}: the client kept reading ({sent} bytes)"
        );
    }
}

#[tokio::test]
async fn deep_nesting_is_a_limit() {
    let deep = format!(
        "{ENV_OPEN}<VersionResponse xmlns=\"https://os.ecgrid.io/\">{}{}</VersionResponse></soap:Body></soap:Envelope>",
        "<a>".repeat(100_000),
        "</a>".repeat(100_000)
    );
    let (err, _) = version_error(Action::Send(http("200 OK", "text/xml", deep.as_bytes()))).await;
    assert!(
        matches!(
            err,
            Error::LimitExceeded {
                limit: Limit::Depth(64),
                ..
            }
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn broken_bodies_are_typed() {
    let good = soap_ok("Version", "4.1");
    let body_start = good.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let truncated = {
        let body = &good[body_start..good.len() - 40];
        http("200 OK", "text/xml", body)
    };
    let wrong_ns = String::from_utf8(good.clone())
        .unwrap()
        .replace("https://os.ecgrid.io/", "http://www.ecgridos.net/");
    let cases: Vec<(&str, Vec<u8>, ErrorKind)> = vec![
        ("truncated", truncated, ErrorKind::MalformedResponse),
        (
            "html 200",
            http(
                "200 OK",
                "text/html",
                b"<html><body>Welcome to the proxy</body></html>",
            ),
            ErrorKind::MalformedResponse,
        ),
        (
            "empty 200",
            http("200 OK", "text/xml", b""),
            ErrorKind::MalformedResponse,
        ),
        (
            "500 without fault",
            http(
                "500 Internal Server Error",
                "text/html",
                b"<h1>Runtime Error</h1>",
            ),
            ErrorKind::HttpStatus,
        ),
        (
            "wrong namespace",
            wrong_ns.into_bytes(),
            ErrorKind::MalformedResponse,
        ),
        (
            "invalid utf-8",
            http("200 OK", "text/xml", b"<soap:Envelope \xff\xfe\xfd>"),
            ErrorKind::MalformedResponse,
        ),
    ];
    for (name, response, kind) in cases {
        let (err, _) = version_error(Action::Send(response)).await;
        assert_eq!(err.kind(), kind, "{name}: {err:?}");
    }
    // Two result elements: build with a correct length.
    let body = format!(
        r#"{ENV_OPEN}<VersionResponse xmlns="https://os.ecgrid.io/"><VersionResult>4.1</VersionResult><VersionResult>5</VersionResult></VersionResponse></soap:Body></soap:Envelope>"#
    );
    let (err, _) = version_error(Action::Send(http("200 OK", "text/xml", body.as_bytes()))).await;
    assert!(err.to_string().contains("more than one"), "{err}");
}

#[tokio::test]
async fn a_soap12_fault_to_a_soap11_request_is_still_the_fault() {
    let fault = r#"<?xml version="1.0"?><soap:Envelope xmlns:soap="http://www.w3.org/2003/05/soap-envelope"><soap:Body><soap:Fault><soap:Code><soap:Value>soap:VersionMismatch</soap:Value></soap:Code><soap:Reason><soap:Text xml:lang="en">Wrong version</soap:Text></soap:Reason></soap:Fault></soap:Body></soap:Envelope>"#;
    let (err, _) = version_error(Action::Send(http(
        "500 Internal Server Error",
        "application/soap+xml",
        fault.as_bytes(),
    )))
    .await;
    let f = err.fault().expect("a fault");
    assert_eq!(f.version, SoapVersion::V12);
    assert_eq!(f.code, ecgridos::FaultCode::VersionMismatch);
}

#[tokio::test]
async fn resets_and_drips() {
    let (err, _) = version_error(Action::Reset).await;
    assert!(err.is_transport(), "{err:?}");
    let (err, _) = version_error(Action::ResetAfter(soap_ok("Version", "4.1"), 120)).await;
    assert!(err.is_transport(), "{err:?}");
    // One byte per second from the start: the per-attempt timeout ends it
    // while waiting for the response headers.
    let drip = |fast| Action::Drip {
        bytes: soap_ok("Version", "4.1"),
        fast,
        every: Duration::from_secs(1),
    };
    let (err, _) = version_error(drip(0)).await;
    assert!(
        matches!(
            err,
            Error::Timeout {
                phase: TimeoutPhase::Response,
                ..
            }
        ),
        "{err:?}"
    );
    // Headers at once, then a dripping body: the body phase is named.
    let ok = soap_ok("Version", "4.1");
    let head = ok.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let (err, _) = version_error(drip(head)).await;
    assert!(
        matches!(
            err,
            Error::Timeout {
                phase: TimeoutPhase::Body,
                ..
            }
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_rotation_is_never_sent_twice() {
    for action in [
        Action::Reset,
        Action::ResetAfter(soap_ok("GenerateAPIKey", "NEW"), 60),
        Action::Send(http("503 Service Unavailable", "text/html", b"busy")),
        Action::Send(http("200 OK", "text/xml", b"<oops")),
        Action::Drip {
            bytes: soap_ok("GenerateAPIKey", "NEW"),
            fast: 0,
            every: Duration::from_secs(1),
        },
    ] {
        let server = hostile(move |_, _| action.clone()).await;
        let c = Client::builder()
            .endpoint(&server.url)
            .timeout(Duration::from_millis(800))
            .retry(RetryPolicy {
                max_attempts: 5,
                base_delay: Duration::from_millis(1),
                max_delay: Duration::from_millis(2),
            })
            .build()
            .unwrap();
        let err = c
            .generate_api_key(&SessionId::new("s"), UserId::from(1))
            .await
            .unwrap_err();
        assert!(
            matches!(
                err.kind(),
                ErrorKind::OutcomeUnknown | ErrorKind::HttpStatus
            ),
            "{err:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(server.requests.load(Ordering::SeqCst), 1, "{err:?}");
    }
}

#[tokio::test]
async fn reads_are_retried_with_backoff_and_recover() {
    // Reset, then 503, then the answer: three requests, success.
    let server = hostile(|n, _| match n {
        0 => Action::Reset,
        1 => Action::Send(http("503 Service Unavailable", "text/html", b"busy")),
        _ => Action::Send(soap_ok("UserGetAPIKey", "KEY")),
    })
    .await;
    let c = Client::builder()
        .endpoint(&server.url)
        .retry(RetryPolicy {
            max_attempts: 3,
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(5),
        })
        .build()
        .unwrap();
    assert_eq!(
        c.user_get_api_key(&SessionId::new("s"), UserId::from(1))
            .await
            .unwrap(),
        ApiKey::new("KEY")
    );
    assert_eq!(server.requests.load(Ordering::SeqCst), 3);
    // A fault is an answer, never retried.
    let fault = soap_fault("soap:Server", "");
    let server = hostile(move |_, _| Action::Send(fault.clone())).await;
    let c = Client::builder().endpoint(&server.url).build().unwrap();
    assert!(c.version().await.unwrap_err().is_fault());
    assert_eq!(server.requests.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn recovery_reads_the_key_instead_of_rotating_again() {
    for happened in [true, false] {
        let rotated = Arc::new(AtomicUsize::new(0));
        let r = rotated.clone();
        let server = hostile(move |_, request| {
            if request.contains("GenerateAPIKey") {
                if happened {
                    r.fetch_add(1, Ordering::SeqCst);
                }
                Action::ResetAfter(soap_ok("GenerateAPIKey", "NEW"), 40)
            } else if r.load(Ordering::SeqCst) > 0 {
                Action::Send(soap_ok("UserGetAPIKey", "NEW"))
            } else {
                Action::Send(soap_ok("UserGetAPIKey", "OLD"))
            }
        })
        .await;
        let key_client = KeyClient::from(client(&server.url));
        let outcome = key_client
            .generate_api_key_with_recovery(
                &Credential::Session(SessionId::new("admin")),
                UserId::from(9),
            )
            .await
            .unwrap();
        let expected = if happened {
            Rotation::Recovered(ApiKey::new("NEW"))
        } else {
            Rotation::NotRotated {
                current: ApiKey::new("OLD"),
            }
        };
        assert_eq!(outcome, expected);
        assert_eq!(
            rotation_requests(&server),
            1,
            "one rotation request, never a second"
        );
    }
}

/// A scenario rotating user 7 with a caller's API key.
fn scenario_for_user_7() -> Scenario {
    Scenario {
        credential: Credential::ApiKey(ApiKey::new("caller-key")),
        user_id: UserId::from(7),
        unknown_user_id: UserId::from(8),
        forbidden: None,
    }
}

/// Answers that may follow the service acting, for a SOAP state change.
fn unclear_soap_answers(op: &str) -> Vec<(&'static str, Action)> {
    let ok = soap_ok(op, "NEW");
    let head = ok.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let empty = soap_ok(op, "");
    vec![
        (
            "503 page",
            Action::Send(http("503 Service Unavailable", "text/html", b"busy")),
        ),
        (
            "500 without fault",
            Action::Send(http(
                "500 Internal Server Error",
                "text/html",
                b"<h1>Runtime Error</h1>",
            )),
        ),
        (
            "404 page",
            Action::Send(http("404 Not Found", "text/html", b"gone")),
        ),
        (
            "html 200",
            Action::Send(http("200 OK", "text/html", b"<html>proxy</html>")),
        ),
        ("blank result", Action::Send(empty)),
        ("cut short", Action::ResetAfter(ok.clone(), head + 20)),
    ]
}

/// The same for a REST state change whose data is a key.
fn unclear_rest_answers() -> Vec<(&'static str, Action)> {
    let json = |status, body: &str| Action::Send(http(status, "application/json", body.as_bytes()));
    vec![
        ("200 without success", json("200 OK", r#"{"data":"NEW"}"#)),
        (
            "200 blank key",
            json("200 OK", r#"{"success":true,"data":"  "}"#),
        ),
        ("200 missing key", json("200 OK", r#"{"success":true}"#)),
        (
            "200 null key",
            json("200 OK", r#"{"success":true,"data":null}"#),
        ),
        ("200 not json", json("200 OK", "<html>proxy</html>")),
        (
            "500 without errorCode",
            json("500 Internal Server Error", r#"{"success":false}"#),
        ),
        (
            "502 page",
            Action::Send(http("502 Bad Gateway", "text/html", b"bad gateway")),
        ),
        (
            "cut short",
            Action::ResetAfter(
                http(
                    "200 OK",
                    "application/json",
                    br#"{"success":true,"data":"NEW"}"#,
                ),
                80,
            ),
        ),
    ]
}

/// Retries quickly, so that a second attempt would show.
const RETRYING: RetryPolicy = RetryPolicy {
    max_attempts: 4,
    base_delay: Duration::from_millis(1),
    max_delay: Duration::from_millis(2),
};

fn rest_client(base: &str) -> ecgridos::RestClient {
    ecgridos::RestClient::builder()
        .base_url(base)
        .timeout(Duration::from_millis(1500))
        .retry(RETRYING)
        .build()
        .unwrap()
}

fn assert_unknown(what: &str, err: &Error, advice_mentions: &str) {
    assert_eq!(err.kind(), ErrorKind::OutcomeUnknown, "{what}: {err:?}");
    let advice = err.advice().unwrap();
    assert!(advice.contains(advice_mentions), "{what}: {advice}");
}

#[tokio::test]
async fn unclear_answers_to_state_changes_are_outcome_unknown_and_sent_once() {
    let retrying = |url: &str| {
        Client::builder()
            .endpoint(url)
            .timeout(Duration::from_millis(1500))
            .retry(RETRYING)
            .build()
            .unwrap()
    };
    let session = SessionId::new("s");
    let password = ecgridos::Password::new("pw");
    for op in ["GenerateAPIKey", "Login", "Logout"] {
        for (name, action) in unclear_soap_answers(op) {
            let server = hostile(move |_, _| action.clone()).await;
            let c = retrying(&server.url);
            let (err, advice) = match op {
                "GenerateAPIKey" => (
                    c.generate_api_key(&session, UserId::from(1))
                        .await
                        .unwrap_err(),
                    "UserGetAPIKey",
                ),
                "Login" => (
                    c.login("me", &password).await.unwrap_err(),
                    "session may have been opened",
                ),
                _ => (c.logout(&session).await.unwrap_err(), "may have ended"),
            };
            assert_unknown(&format!("{op} {name}"), &err, advice);
            assert_eq!(server.requests.load(Ordering::SeqCst), 1, "{op} {name}");
        }
    }
    for (name, action) in unclear_rest_answers() {
        let server = hostile(move |_, _| action.clone()).await;
        let err = rest_client(&server.base)
            .generate_api_key(&ApiKey::new("k"), UserId::from(1))
            .await
            .unwrap_err();
        assert_unknown(&format!("rest {name}"), &err, "UserGetAPIKey");
        assert_eq!(server.requests.load(Ordering::SeqCst), 1, "rest {name}");
    }
    let server = hostile(|_, _| {
        Action::Send(http(
            "200 OK",
            "application/json",
            br#"{"success":true,"data":{"token":""}}"#,
        ))
    })
    .await;
    let err = rest_client(&server.base)
        .login("me", &password)
        .await
        .unwrap_err();
    assert_unknown(
        "rest login blank token",
        &err,
        "session may have been opened",
    );
}

#[tokio::test]
async fn clear_refusals_of_state_changes_and_unclear_reads_keep_their_errors() {
    // A fault and a REST error body naming an errorCode are refusals.
    let fault = soap_fault(
        "soap:Client",
        "<detail><ECGridOSSOAPErrorCode>Authorization</ECGridOSSOAPErrorCode></detail>",
    );
    let server = hostile(move |_, _| Action::Send(fault.clone())).await;
    let err = client(&server.url)
        .generate_api_key(&SessionId::new("s"), UserId::from(1))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Authorization, "{err:?}");
    let server = hostile(|_, _| {
        Action::Send(http(
            "403 Forbidden",
            "application/json",
            br#"{"success":false,"errorCode":"AccessDenied","message":"no"}"#,
        ))
    })
    .await;
    let err = rest_client(&server.base)
        .generate_api_key(&ApiKey::new("k"), UserId::from(1))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Authorization, "{err:?}");
    // Reads: a bare error status stays an HTTP status, a body without
    // success stays a REST error.
    let server =
        hostile(|_, _| Action::Send(http("503 Service Unavailable", "text/html", b"busy"))).await;
    let err = client(&server.url)
        .user_get_api_key(&SessionId::new("s"), UserId::from(1))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::HttpStatus, "{err:?}");
    let err = rest_client(&server.base)
        .get_api_key(&ApiKey::new("k"), UserId::from(1))
        .await
        .unwrap_err();
    assert!(err.is_status(), "{err:?}");
    let server =
        hostile(|_, _| Action::Send(http("200 OK", "application/json", br#"{"data":"K"}"#))).await;
    let err = rest_client(&server.base)
        .get_api_key(&ApiKey::new("k"), UserId::from(1))
        .await
        .unwrap_err();
    assert!(err.is_rest(), "{err:?}");
}

#[tokio::test]
async fn recovery_covers_every_unclear_answer() {
    let soap = unclear_soap_answers("GenerateAPIKey")
        .into_iter()
        .map(|(name, action)| (ecgridos::Protocol::Soap, name, action));
    let rest = unclear_rest_answers()
        .into_iter()
        .map(|(name, action)| (ecgridos::Protocol::Rest, name, action));
    for (protocol, name, action) in soap.chain(rest) {
        let rotated = Arc::new(AtomicUsize::new(0));
        let r = rotated.clone();
        let server = hostile(move |_, request| {
            let read = |key: &str| match protocol {
                ecgridos::Protocol::Soap => Action::Send(soap_ok("UserGetAPIKey", key)),
                ecgridos::Protocol::Rest => Action::Send(http(
                    "200 OK",
                    "application/json",
                    format!(r#"{{"success":true,"data":"{key}"}}"#).as_bytes(),
                )),
            };
            if request.contains("GenerateAPIKey") || request.contains("key-generate") {
                r.fetch_add(1, Ordering::SeqCst);
                action.clone()
            } else if r.load(Ordering::SeqCst) > 0 {
                read("NEW")
            } else {
                read("OLD")
            }
        })
        .await;
        let key_client = match protocol {
            ecgridos::Protocol::Soap => KeyClient::from(client(&server.url)),
            ecgridos::Protocol::Rest => KeyClient::from(rest_client(&server.base)),
        };
        let outcome = key_client
            .generate_api_key_with_recovery(
                &Credential::ApiKey(ApiKey::new("admin")),
                UserId::from(9),
            )
            .await
            .unwrap_or_else(|e| panic!("{protocol} {name}: {e:?}"));
        assert_eq!(
            outcome,
            Rotation::Recovered(ApiKey::new("NEW")),
            "{protocol} {name}"
        );
        assert_eq!(rotated.load(Ordering::SeqCst), 1, "{protocol} {name}");
    }
}

#[tokio::test]
async fn the_scenario_hands_back_a_key_created_after_a_failed_read() {
    // Every call but the rotation gets a fault: the read before fails, the
    // rotation succeeds, and its key must not be dropped.
    let fault = r#"<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body><soap:Fault><faultcode>soap:Server</faultcode><faultstring>x</faultstring></soap:Fault></soap:Body></soap:Envelope>"#;
    let server = hostile(move |_, request| {
        if request.contains("GenerateAPIKey") {
            Action::Send(soap_ok("GenerateAPIKey", "the-new-key"))
        } else {
            Action::Send(http(
                "500 Internal Server Error",
                "text/xml; charset=utf-8",
                fault.as_bytes(),
            ))
        }
    })
    .await;
    let scenario = scenario_for_user_7();
    let run = scenario.run(&KeyClient::from(client(&server.url))).await;
    assert_eq!(run.new_key, Some(ApiKey::new("the-new-key")));
    assert!(!run.rotation_unknown);
    let rotate = run.steps.iter().find(|s| s.step == "rotate key").unwrap();
    assert!(rotate.passed(), "{rotate:?}");
    assert!(
        run.steps.iter().all(|s| s.step != "old key rejected"),
        "no old key to check"
    );
}

#[tokio::test]
async fn compare_stops_after_a_rotation_of_unknown_outcome() {
    // The rotation's request is read and the connection dropped: nobody
    // knows whether a key was created, so the next protocol must not rotate.
    let server = hostile(|_, request| {
        if request.contains("GenerateAPIKey") {
            Action::Reset
        } else {
            Action::Send(soap_ok("UserGetAPIKey", "the-old-key"))
        }
    })
    .await;
    let scenario = scenario_for_user_7();
    let soap = KeyClient::from(client(&server.url));
    let comparison = scenario.compare(&[soap.clone(), soap]).await;
    assert_eq!(comparison.stopped_after, Some(ecgridos::Protocol::Soap));
    assert!(comparison.new_keys.is_empty());
    assert_eq!(rotation_requests(&server), 1, "never rotated again");
}
