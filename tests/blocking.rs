//! The blocking wrapper, and stopping the fake by dropping its handle.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ecgridos::fake::FakeServer;
use ecgridos::{blocking, Client, UserId};

#[test]
fn blocking_client_runs_the_whole_cycle() {
    // The fake runs on its own runtime thread; the blocking client has its own.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let server = runtime.block_on(FakeServer::start()).unwrap();
    let admin = server.user("admin").unwrap();
    let alice = UserId::from(server.user("alice").unwrap().user_id);

    let client = blocking::Client::new(Client::builder().endpoint(server.soap_url())).unwrap();
    assert_eq!(client.version().unwrap(), "4.1");
    let session = client.login(&admin.login, &admin.password).unwrap();
    let old = client.user_get_api_key(&session, alice).unwrap();
    let new = client.generate_api_key(&session, alice).unwrap();
    assert_ne!(old, new);
    assert!(client.who_am_i(&old).unwrap_err().is_authentication());
    assert_eq!(client.who_am_i(&new).unwrap().user_id, alice.get());
    assert!(client.logout(&session).unwrap());
    drop(server);
}

#[test]
fn blocking_client_refuses_to_block_inside_a_runtime() {
    let client = blocking::Client::new(Client::builder()).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let err = runtime.block_on(async { client.version() }).unwrap_err();
    assert!(err.is_invalid_input(), "{err:?}");
    // Dropping a runtime inside a runtime would panic: drop it outside.
    std::thread::spawn(move || drop(client)).join().unwrap();
}

#[tokio::test]
async fn dropping_the_handle_stops_the_fake() {
    let server = FakeServer::start().await.unwrap();
    let client = Client::builder()
        .endpoint(server.soap_url())
        .retry(ecgridos::RetryPolicy::none())
        .build()
        .unwrap();
    client.version().await.unwrap();
    let url = server.soap_url();
    drop(server);
    // Stopping is asynchronous after a drop; poll, bounded.
    let fresh = Client::builder()
        .endpoint(url)
        .retry(ecgridos::RetryPolicy::none())
        .build()
        .unwrap();
    let mut stopped = false;
    for _ in 0..100 {
        if fresh.version().await.is_err() {
            stopped = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        stopped,
        "the fake still answers after its handle was dropped"
    );
}

/// A keep-alive SOAP server (raw TCP on loopback) that closes a connection
/// after `idle` without a request, the way IIS and most proxies do. Every
/// `GenerateAPIKey` gets a fresh key. Serves until the runtime is dropped.
fn keep_alive_server(
    runtime: &tokio::runtime::Runtime,
    idle: Duration,
) -> (String, Arc<AtomicUsize>) {
    use tokio::io::AsyncWriteExt;
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let url = format!(
        "http://{}/v4.1/prod/ECGridOS.asmx",
        listener.local_addr().unwrap()
    );
    let rotations = Arc::new(AtomicUsize::new(0));
    let counter = rotations.clone();
    runtime.spawn(async move {
        for _ in 0..16 {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let counter = counter.clone();
            tokio::spawn(async move {
                while let Ok(Some(request)) =
                    tokio::time::timeout(idle, common::read_http_request(&mut sock)).await
                {
                    assert!(request.contains("GenerateAPIKey"));
                    let n = counter.fetch_add(1, Ordering::SeqCst);
                    let body = format!(
                        r#"<?xml version="1.0" encoding="utf-8"?><soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body><GenerateAPIKeyResponse xmlns="https://os.ecgrid.io/"><GenerateAPIKeyResult>KEY-{n}</GenerateAPIKeyResult></GenerateAPIKeyResponse></soap:Body></soap:Envelope>"#
                    );
                    let head = format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: text/xml; charset=utf-8\r\nContent-Length: {}\r\n\r\n",
                        body.len()
                    );
                    if sock.write_all(format!("{head}{body}").as_bytes()).await.is_err() {
                        return;
                    }
                }
                // Idle for too long: close, as servers do.
            });
        }
    });
    (url, rotations)
}

#[test]
fn blocking_client_notices_a_pooled_connection_closed_while_idle() {
    let server_runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let (url, rotations) = keep_alive_server(&server_runtime, Duration::from_secs(1));
    let client = blocking::Client::new(
        Client::builder()
            .endpoint(url)
            .timeout(Duration::from_secs(2)),
    )
    .unwrap();
    for n in 0..3 {
        if n > 0 {
            // Longer than the server's idle limit: it closed the pooled
            // connection meanwhile.
            std::thread::sleep(Duration::from_millis(2500));
        }
        let key = client
            .generate_api_key(&ecgridos::SessionId::new("session"), UserId::from(1))
            .unwrap_or_else(|e| panic!("rotation {n}: {e:?}"));
        assert_eq!(key, ecgridos::ApiKey::new(format!("KEY-{n}")));
    }
    assert_eq!(rotations.load(Ordering::SeqCst), 3);
}
