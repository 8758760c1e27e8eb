//! A rotation whose answer never arrives is reported as an unknown outcome and
//! is never sent twice. The servers here are raw TCP on loopback, each
//! bounded in connections and time.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ecgridos::{Client, ErrorKind, RetryPolicy, SessionId, TimeoutPhase, UserId};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;

#[derive(Clone, Copy)]
enum Behaviour {
    /// Read the whole request, then close without answering.
    DropAfterRequest,
    /// Read the request, send headers and half a body, then close.
    DropMidBody,
    /// Read the request and never answer.
    Silent,
}

async fn serve(behaviour: Behaviour) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "http://{}/v4.1/prod/ECGridOS.asmx",
        listener.local_addr().unwrap()
    );
    let requests = Arc::new(AtomicUsize::new(0));
    let counter = requests.clone();
    tokio::spawn(async move {
        // At most 8 connections; the test runtime ends the task afterwards.
        for _ in 0..8 {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let counter = counter.clone();
            tokio::spawn(async move {
                if common::read_http_request(&mut sock).await.is_some() {
                    counter.fetch_add(1, Ordering::SeqCst);
                }
                match behaviour {
                    Behaviour::DropAfterRequest => {}
                    Behaviour::DropMidBody => {
                        let _ = sock
                            .write_all(b"HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nContent-Length: 500\r\n\r\n<?xml version=\"1.0\"?><soap:Env")
                            .await;
                    }
                    Behaviour::Silent => tokio::time::sleep(Duration::from_secs(10)).await,
                }
            });
        }
    });
    (url, requests)
}

fn client(url: &str) -> Client {
    Client::builder()
        .endpoint(url)
        .timeout(Duration::from_millis(500))
        .retry(RetryPolicy {
            max_attempts: 3,
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(5),
        })
        .build()
        .unwrap()
}

#[tokio::test]
async fn dropped_after_request_is_outcome_unknown_and_sent_once() {
    for behaviour in [
        Behaviour::DropAfterRequest,
        Behaviour::DropMidBody,
        Behaviour::Silent,
    ] {
        let (url, requests) = serve(behaviour).await;
        let err = client(&url)
            .generate_api_key(&SessionId::new("S"), UserId::from(1))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::OutcomeUnknown, "{err:?}");
        let text = err.to_string();
        assert!(
            text.contains("may have been rotated") && text.contains("UserGetAPIKey"),
            "{text}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(
            requests.load(Ordering::SeqCst),
            1,
            "a rotation must reach the server exactly once"
        );
    }
}

#[tokio::test]
async fn reads_are_retried_and_report_the_phase() {
    let (url, requests) = serve(Behaviour::DropAfterRequest).await;
    let err = client(&url)
        .user_get_api_key(&SessionId::new("S"), UserId::from(1))
        .await
        .unwrap_err();
    assert!(err.is_transport(), "{err:?}");
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(requests.load(Ordering::SeqCst), 3);

    let (url, _) = serve(Behaviour::Silent).await;
    let c = Client::builder()
        .endpoint(url)
        .timeout(Duration::from_millis(200))
        .retry(RetryPolicy::none())
        .build()
        .unwrap();
    match c.version().await.unwrap_err() {
        ecgridos::Error::Timeout { phase, .. } => assert_eq!(phase, TimeoutPhase::Response),
        other => panic!("expected a timeout, got {other:?}"),
    }
}

#[tokio::test]
async fn refused_connection_is_transport_for_every_call() {
    // Bind then drop, so nothing listens on the port.
    let port = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}/x");
    let err = client(&url)
        .generate_api_key(&SessionId::new("S"), UserId::from(1))
        .await
        .unwrap_err();
    // Nothing was written, so this is a plain transport error, not an unknown outcome.
    assert!(err.is_transport(), "{err:?}");
}

/// A loopback address whose connects never complete: a listener with a
/// backlog of one that never accepts, its queue filled. Keep the returned
/// values alive while it is used.
fn blackhole() -> (
    socket2::Socket,
    Vec<std::net::TcpStream>,
    std::net::SocketAddr,
) {
    use socket2::{Domain, Socket, Type};
    let listener = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    listener
        .bind(&std::net::SocketAddr::from(([127, 0, 0, 1], 0)).into())
        .unwrap();
    listener.listen(1).unwrap();
    let addr = listener.local_addr().unwrap().as_socket().unwrap();
    let mut queued = Vec::new();
    // Connect until one does not complete: from then on the queue is full.
    for _ in 0..16 {
        match std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
            Ok(stream) => queued.push(stream),
            Err(_) => return (listener, queued, addr),
        }
    }
    panic!("the listen queue never filled");
}

#[tokio::test]
async fn a_connect_that_never_completes_is_a_connect_timeout_not_an_unknown_outcome() {
    let (_listener, _queued, addr) = blackhole();
    let url = format!("http://{addr}/v4.1/prod/ECGridOS.asmx");
    // The attempt limit is shorter than the connect limit: still, nothing
    // was sent, and the phase is named.
    let c = Client::builder()
        .endpoint(&url)
        .connect_timeout(Duration::from_millis(300))
        .timeout(Duration::from_millis(200))
        .retry(RetryPolicy::none())
        .build()
        .unwrap();
    let started = std::time::Instant::now();
    for err in [
        c.generate_api_key(&SessionId::new("S"), UserId::from(1))
            .await
            .unwrap_err(),
        c.login("me", &ecgridos::Password::new("pw"))
            .await
            .unwrap_err(),
        c.user_get_api_key(&SessionId::new("S"), UserId::from(1))
            .await
            .unwrap_err(),
    ] {
        match &err {
            ecgridos::Error::Timeout { phase, .. } => {
                assert_eq!(*phase, TimeoutPhase::Connect, "{err:?}")
            }
            other => panic!("expected a connect timeout, got {other:?}"),
        }
    }
    assert!(started.elapsed() < Duration::from_secs(3));
    let rest = ecgridos::RestClient::builder()
        .base_url(format!("http://{addr}"))
        .connect_timeout(Duration::from_millis(300))
        .timeout(Duration::from_millis(200))
        .retry(RetryPolicy::none())
        .build()
        .unwrap();
    let err = rest
        .generate_api_key(&ecgridos::ApiKey::new("k"), UserId::from(1))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ecgridos::Error::Timeout {
                phase: TimeoutPhase::Connect,
                ..
            }
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_silent_answer_on_a_pooled_connection_is_still_an_unknown_outcome() {
    // One keep-alive connection: the first request is answered, the second
    // (a rotation sent on the pooled connection) never is. No connection is
    // being opened when the time runs out, so it must not pass for a
    // connect timeout.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "http://{}/v4.1/prod/ECGridOS.asmx",
        listener.local_addr().unwrap()
    );
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        let Ok((mut sock, _)) = listener.accept().await else {
            return;
        };
        count.fetch_add(1, Ordering::SeqCst);
        if common::read_http_request(&mut sock).await.is_none() {
            return;
        }
        let body = r#"<?xml version="1.0" encoding="utf-8"?><soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body><VersionResponse xmlns="https://os.ecgrid.io/"><VersionResult>4.1</VersionResult></VersionResponse></soap:Body></soap:Envelope>"#;
        let head = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/xml; charset=utf-8\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        let _ = sock.write_all(format!("{head}{body}").as_bytes()).await;
        let _ = common::read_http_request(&mut sock).await;
        tokio::time::sleep(Duration::from_secs(5)).await;
    });
    let c = Client::builder()
        .endpoint(&url)
        .timeout(Duration::from_millis(300))
        .retry(RetryPolicy::none())
        .build()
        .unwrap();
    assert_eq!(c.version().await.unwrap(), "4.1");
    let err = c
        .generate_api_key(&SessionId::new("S"), UserId::from(1))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::OutcomeUnknown, "{err:?}");
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        1,
        "the connection was pooled"
    );
}

#[tokio::test]
async fn generated_writes_are_sent_once_with_advice_and_reads_retried() {
    use ecgridos::api::parcel::{ParcelDownload, ParcelInBox, ParcelUpload};
    use ecgridos::api::Request;

    let (url, requests) = serve(Behaviour::DropAfterRequest).await;
    let mut download = ParcelDownload::default();
    download.session_id = Some(SessionId::new("S"));
    download.parcel_id = 42;
    let err = client(&url).call(download).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::OutcomeUnknown, "{err:?}");
    assert!(err.to_string().contains("ParcelDownloadNoUpdate"), "{err}");
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(requests.load(Ordering::SeqCst), 1, "a write is sent once");

    let upload = ParcelUpload::INFO.effect;
    assert!(
        matches!(upload, ecgridos::api::Effect::Write { if_unknown } if if_unknown.contains("ParcelOutBox")),
        "{upload:?}"
    );

    let (url, requests) = serve(Behaviour::DropAfterRequest).await;
    let mut inbox = ParcelInBox::default();
    inbox.session_id = Some(SessionId::new("S"));
    let err = client(&url).call(inbox).await.unwrap_err();
    assert_ne!(err.kind(), ErrorKind::OutcomeUnknown, "{err:?}");
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(requests.load(Ordering::SeqCst), 3, "a read is retried");
}
