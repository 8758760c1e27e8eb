//! The blocking wrapper, and stopping the fake by dropping its handle.

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
