//! The session-holding client against the fake with a short inactivity expiry.

use std::time::Duration;

use ecgridos::fake::{DetailShape, FakeServer};
use ecgridos::{Client, ErrorKind, Password, SessionClient, UserId};

const EXPIRY: Duration = Duration::from_millis(300);

async fn fake(shape: DetailShape) -> FakeServer {
    FakeServer::builder()
        .session_timeout(EXPIRY)
        .detail_shape(shape)
        .start()
        .await
        .unwrap()
}

fn admin_session(server: &FakeServer) -> SessionClient {
    let admin = server.user("admin").unwrap();
    let client = Client::builder()
        .endpoint(server.soap_url())
        .build()
        .unwrap();
    SessionClient::with_login(client, admin.login, admin.password)
}

async fn let_it_expire() {
    tokio::time::sleep(EXPIRY * 2).await;
}

#[tokio::test]
async fn logs_in_on_first_use_and_once_more_after_expiry() {
    for shape in [DetailShape::Category, DetailShape::Legacy] {
        let server = fake(shape).await;
        let session = admin_session(&server);
        assert_eq!(server.soap_calls("Login"), 0, "no login at construction");
        session.who_am_i().await.unwrap();
        assert_eq!(server.soap_calls("Login"), 1);
        let first = session.current_session().unwrap();
        let_it_expire().await;
        assert_eq!(session.who_am_i().await.unwrap().login_name, "admin");
        assert_eq!(
            server.soap_calls("Login"),
            2,
            "exactly one extra Login ({shape:?})"
        );
        assert_ne!(session.current_session().unwrap(), first);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_calls_on_an_expired_session_share_one_login() {
    let server = fake(DetailShape::Category).await;
    let session = admin_session(&server);
    let bob = UserId::from(server.user("bob").unwrap().user_id);
    session.who_am_i().await.unwrap();
    let_it_expire().await;
    let tasks: Vec<_> = (0..32)
        .map(|_| {
            let session = session.clone();
            tokio::spawn(async move { session.user_get_api_key(bob).await })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    assert_eq!(
        server.soap_calls("Login"),
        2,
        "one Login at start, one for all 32 after expiry"
    );
}

#[tokio::test]
async fn rotation_on_an_expired_session_rotates_exactly_once() {
    let server = fake(DetailShape::Category).await;
    let session = admin_session(&server);
    let alice = server.user("alice").unwrap().user_id;
    session.who_am_i().await.unwrap();
    let_it_expire().await;
    let key = session.generate_api_key(UserId::from(alice)).await.unwrap();
    assert_eq!(server.rotations(alice), 1);
    assert_eq!(
        server.soap_calls("GenerateAPIKey"),
        2,
        "the refused attempt and the one that acted"
    );
    assert_eq!(server.api_key(alice), Some(key));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_reaches_every_waiter_once() {
    // Latency keeps the Login in flight while all eight callers arrive.
    let server = FakeServer::builder()
        .latency(Duration::from_millis(200))
        .start()
        .await
        .unwrap();
    let client = Client::builder()
        .endpoint(server.soap_url())
        .build()
        .unwrap();
    let session = SessionClient::with_login(client, "admin", Password::new("wrong"));
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let session = session.clone();
            tokio::spawn(async move { session.who_am_i().await })
        })
        .collect();
    for task in tasks {
        let err = task.await.unwrap().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Authentication);
        assert_eq!(
            err.fault().unwrap().message,
            "The login name or password is not valid."
        );
        assert!(!err.to_string().contains("wrong"));
    }
    assert_eq!(server.soap_calls("Login"), 1, "one Login for eight waiters");
    // No loop: a later call makes one more attempt and stops.
    assert!(session.who_am_i().await.is_err());
    assert_eq!(server.soap_calls("Login"), 2);
    assert_eq!(server.soap_calls("WhoAmI"), 0);
}

#[tokio::test]
async fn close_ends_the_session_on_the_server() {
    let server = fake(DetailShape::Category).await;
    let session = admin_session(&server);
    session.who_am_i().await.unwrap();
    let id = session.current_session().unwrap();
    assert!(session.close().await.unwrap());
    let client = Client::builder()
        .endpoint(server.soap_url())
        .build()
        .unwrap();
    assert!(client.who_am_i(&id).await.unwrap_err().is_authentication());
    assert!(!session.close().await.unwrap(), "nothing left to close");
}

#[tokio::test]
async fn an_api_key_client_never_logs_in() {
    let server = fake(DetailShape::Category).await;
    let bob = server.user("bob").unwrap();
    let client = Client::builder()
        .endpoint(server.soap_url())
        .build()
        .unwrap();
    let session = SessionClient::with_api_key(client, bob.api_key.clone().unwrap());
    let_it_expire().await;
    assert_eq!(session.who_am_i().await.unwrap().user_id, bob.user_id);
    let new = session
        .generate_api_key(UserId::from(bob.user_id))
        .await
        .unwrap();
    // The old key is dead now, and a key client cannot log in to recover.
    assert!(session.who_am_i().await.unwrap_err().is_authentication());
    assert_eq!(server.soap_calls("Login"), 0);
    assert_eq!(server.api_key(bob.user_id), Some(new));
}

#[tokio::test]
async fn keep_alive_holds_an_idle_session_open() {
    let server = fake(DetailShape::Category).await;
    let session = admin_session(&server).keep_alive(EXPIRY / 3);
    session.who_am_i().await.unwrap();
    tokio::time::sleep(EXPIRY * 3).await;
    session.who_am_i().await.unwrap();
    assert_eq!(server.soap_calls("Login"), 1, "never expired");
    assert!(
        server.soap_calls("WhoAmI") >= 3,
        "keep-alive calls were made"
    );
    drop(session);
}

#[tokio::test]
async fn keep_alive_of_zero_is_off_and_never_panics() {
    // A panic in the keep-alive task would only be logged by tokio: count the
    // panics of this thread (the runtime's only one) with a hook, chained so
    // that other tests' panics still print.
    static PANICS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let previous = std::sync::Arc::new(std::panic::take_hook());
    let chained = previous.clone();
    let this_thread = std::thread::current().id();
    std::panic::set_hook(Box::new(move |info| {
        if std::thread::current().id() == this_thread {
            PANICS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
        chained(info)
    }));
    let server = fake(DetailShape::Category).await;
    let session = admin_session(&server).keep_alive(Duration::ZERO);
    session.who_am_i().await.unwrap();
    let tiny = admin_session(&server).keep_alive(Duration::from_nanos(3));
    tiny.who_am_i().await.unwrap();
    tokio::time::sleep(EXPIRY / 2).await;
    let _ = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| previous(info)));
    assert_eq!(PANICS.load(std::sync::atomic::Ordering::SeqCst), 0);
    // Off: no keep-alive WhoAmI beyond the two calls made here.
    assert!(server.soap_calls("WhoAmI") >= 2);
    session.who_am_i().await.unwrap();
    drop((session, tiny));
}
