//! Generated operations end to end: through `Client::call`, `SessionClient`
//! and the blocking client against the fake's typed stubs; the fake's fault
//! for an operation it does not model; LogoutResult as an int; and the CLI's
//! `call` and `operations` commands.

use std::process::Command;
use std::sync::{Arc, Mutex};

use ecgridos::api::enums::{Status, UseType};
use ecgridos::api::mailbox::{MailboxAdd, MailboxInfo};
use ecgridos::api::misc::NowUtc;
use ecgridos::api::tp::TpSearch;
use ecgridos::api::types::MailboxIdInfo;
use ecgridos::fake::{FakeServer, StubFault};
use ecgridos::wire::{DateTime, FaultCategory};
use ecgridos::{blocking, Client, SessionClient};

const BIN: &str = env!("CARGO_BIN_EXE_ecgridos");

fn mailbox(id: i32) -> MailboxIdInfo {
    let mut m = MailboxIdInfo::default();
    m.mailbox_id = id;
    m.network_id = 3;
    m.name = Some("Acme & Co <EDI>".into());
    m.created = "2026-01-02T03:04:05.1234567-05:00".parse().unwrap();
    m.status = Status::Other("Archived".into());
    m.use_type = UseType::Production;
    m
}

#[tokio::test]
async fn stubbed_operation_through_session_client() {
    let server = FakeServer::start().await.unwrap();
    let alice = server.user("alice").unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    server.stub::<MailboxInfo>(move |request| {
        let session = request.session_id.as_ref().map(|s| s.expose().to_string());
        log.lock().unwrap().push((session, request.mailbox_id));
        if request.mailbox_id == 0 {
            return Err(StubFault::new(
                FaultCategory::ObjectNotFound,
                "no mailbox 0",
            ));
        }
        Ok(Some(mailbox(request.mailbox_id)))
    });
    let client = Client::builder()
        .endpoint(server.soap_url())
        .build()
        .unwrap();
    let key = alice.api_key.clone().unwrap();
    let session = SessionClient::with_api_key(client.clone(), key.clone());
    let mut request = MailboxInfo::default();
    request.mailbox_id = 77;
    let got = session.call(request).await.unwrap();
    assert_eq!(got, Some(mailbox(77)));
    assert_eq!(
        seen.lock().unwrap().as_slice(),
        [(Some(key.expose().to_string()), 77)],
        "SessionID filled from the credential"
    );
    let err = session.call(MailboxInfo::default()).await.unwrap_err();
    assert_eq!(err.kind(), ecgridos::ErrorKind::NotFound, "{err:?}");
    assert_eq!(server.soap_calls("MailboxInfo"), 2);
}

#[tokio::test]
async fn unmodelled_operation_is_a_fault_naming_it_and_a_panicking_stub_a_fault() {
    let server = FakeServer::start().await.unwrap();
    let client = Client::builder()
        .endpoint(server.soap_url())
        .build()
        .unwrap();
    let err = client.call(TpSearch::default()).await.unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("TPSearch") && text.contains("not modelled"),
        "{text}"
    );

    server.stub::<NowUtc>(|_| panic!("broken stub"));
    let err = client.call(NowUtc::default()).await.unwrap_err();
    assert!(err.to_string().contains("panicked"), "{err}");
    // The server still answers.
    assert_eq!(client.version().await.unwrap(), "4.1");
}

#[tokio::test]
async fn logout_result_is_an_int_on_the_wire() {
    let server = FakeServer::start().await.unwrap();
    let admin = server.user("admin").unwrap();
    let client = Client::builder()
        .endpoint(server.soap_url())
        .build()
        .unwrap();
    let session = client.login(&admin.login, &admin.password).await.unwrap();
    let body = format!(
        r#"<?xml version="1.0" encoding="utf-8"?><soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body><Logout xmlns="https://os.ecgrid.io/"><SessionID>{}</SessionID></Logout></soap:Body></soap:Envelope>"#,
        session.expose()
    );
    let reply = reqwest::Client::new()
        .post(server.soap_url())
        .header("Content-Type", "text/xml; charset=utf-8")
        .header("SOAPAction", "\"https://os.ecgrid.io/Logout\"")
        .body(body.clone())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(reply.contains("<LogoutResult>1</LogoutResult>"), "{reply}");
    // The typed client still answers bool; a second logout is 0 / false.
    assert!(!client.logout(&session).await.unwrap());
}

#[test]
fn blocking_client_calls_generated_operations() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let server = runtime.block_on(FakeServer::start()).unwrap();
    let now: DateTime = "2026-11-01T10:00:00.0000001Z".parse().unwrap();
    server.stub::<NowUtc>(move |_| Ok(now));
    let client = blocking::Client::new(Client::builder().endpoint(server.soap_url())).unwrap();
    assert_eq!(client.call(NowUtc::default()).unwrap(), now);
    drop(server);
}

fn call(server: &FakeServer, key: &str, args: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .args(args)
        .env_clear()
        .env("ECGRID_ENDPOINT", server.soap_url())
        .env("ECGRID_API_KEY", key)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_call_prints_the_result_as_json() {
    let server = FakeServer::start().await.unwrap();
    let key = server.user("alice").unwrap().api_key.unwrap();
    let seen = Arc::new(Mutex::new(None));
    let log = seen.clone();
    server.stub::<MailboxInfo>(move |request| {
        *log.lock().unwrap() = request.session_id.map(|s| s.expose().to_string());
        Ok(Some(mailbox(request.mailbox_id)))
    });
    let out = tokio::task::block_in_place(|| {
        call(
            &server,
            key.expose(),
            &["call", "MailboxInfo", "MailboxID=9"],
        )
    });
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["MailboxID"], 9);
    assert_eq!(json["Name"], "Acme & Co <EDI>");
    assert_eq!(json["Created"], "2026-01-02T03:04:05.1234567-05:00");
    assert_eq!(json["Status"], "Archived");
    assert_eq!(json["Description"], serde_json::Value::Null);
    assert_eq!(seen.lock().unwrap().as_deref(), Some(key.expose()));

    // Refusals: exit 2, nothing sent.
    let before = server.soap_requests();
    let server_ref = &server;
    for (args, needle) in [
        (&["call", "MailboxInfo"][..], "MailboxID"),
        (&["call", "MailboxInfo", "MailboxID=x"][..], "s:int"),
        (
            &["call", "MailboxInfo", "MailboxId=1"][..],
            "did you mean MailboxID",
        ),
        (&["call", "MailboxInf"][..], "did you mean MailboxInfo"),
        (&["call", "MailboxAdd", "UserID=1"][..], "--yes"),
    ] {
        let out = tokio::task::block_in_place(|| call(server_ref, key.expose(), args));
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
        assert!(!err.contains(key.expose()), "{err}");
    }
    assert_eq!(server.soap_requests(), before, "nothing was sent");

    // A write with --yes is sent; its integer result is printed as is.
    server.stub::<MailboxAdd>(|request| Ok(request.user_id + 1));
    let out = tokio::task::block_in_place(|| {
        call(
            server_ref,
            key.expose(),
            &["call", "MailboxAdd", "UserID=41", "--yes", "--json"],
        )
    });
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "42");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_lists_operations() {
    let server = FakeServer::start().await.unwrap();
    let out = tokio::task::block_in_place(|| call(&server, "k", &["operations", "--json"]));
    assert_eq!(out.status.code(), Some(0));
    let list: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(list.len(), 221);
    let download = list.iter().find(|o| o["name"] == "ParcelDownload").unwrap();
    assert_eq!(download["effect"], "write");
    assert_eq!(download["area"], "parcel");
    assert_eq!(download["parameters"][1]["name"], "ParcelID");
    assert_eq!(download["parameters"][1]["type"], "s:long");
    assert_eq!(download["result"]["type"], "tns:FileInfo");
    let out = tokio::task::block_in_place(|| call(&server, "k", &["operations", "--area", "key"]));
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.lines().count(), 2, "{text}");
    let out =
        tokio::task::block_in_place(|| call(&server, "k", &["operations", "--area", "parcels"]));
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn retry_class_and_advice_follow_the_contract_effect() {
    use ecgridos::api::{Effect, OPERATIONS};
    use ecgridos::operations::Idempotency;

    let contract: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/contract/ecgridos-v4.1-contract.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let ops = contract["operations"].as_array().unwrap();
    assert_eq!(OPERATIONS.len(), ops.len());
    for (entry, op) in OPERATIONS.iter().zip(ops) {
        assert_eq!(entry.info.name, op["name"]);
        assert_eq!(entry.info.area, op["area"]);
        assert_eq!(entry.info.effect.as_str(), op["effect"]);
        match entry.info.effect.idempotency() {
            Idempotency::Idempotent => assert_ne!(op["effect"], "write"),
            Idempotency::NotIdempotent { if_unknown } => {
                assert_eq!(op["effect"], "write");
                assert!(if_unknown.len() > 20, "{}", entry.info.name);
            }
        }
    }
    let advice = |name: &str| match ecgridos::api::request::find(name).unwrap().info.effect {
        Effect::Write { if_unknown } => if_unknown,
        other => panic!("{name} is {other:?}"),
    };
    assert!(advice("ParcelDownload").contains("ParcelDownloadNoUpdate"));
    assert!(advice("ParcelUploadEx").contains("ParcelOutBox"));
    assert!(advice("GenerateAPIKey").contains("UserGetAPIKey"));
}
