//! The fake's mailbox: routing, statuses, listings and the event log, over
//! SOAP (the crate's typed calls and raw envelopes) and REST (raw JSON).

use std::sync::{Arc, Mutex};

use ecgridos::api::enums::ParcelStatus;
use ecgridos::api::mailbox::MailboxInfo;
use ecgridos::api::parcel::{
    ParcelDownload, ParcelDownloadA, ParcelDownloadCancel, ParcelDownloadConfirm,
    ParcelDownloadNoUpdate, ParcelDownloadReset, ParcelInBox, ParcelInBoxArchiveEx, ParcelInBoxEx,
    ParcelInBoxExShort, ParcelInfo, ParcelOutBoxArchiveEx, ParcelOutBoxInProcess,
    ParcelOutBoxInProcessEx, ParcelUpload, ParcelUploadA, ParcelUploadMft,
};
use ecgridos::api::types::ParcelIdInfoCollection;
use ecgridos::fake::{FakeServer, ParcelEventKind, PARTNER_ECGRID_ID};
use ecgridos::wire::Base64;
use ecgridos::{ApiKey, Client, FaultCategory, SessionId};

/// A generated request (its struct is non-exhaustive) from field values.
macro_rules! req {
    ($ty:ident { $($field:ident : $value:expr),* $(,)? }) => {{
        let mut request = $ty::default();
        $( request.$field = $value; )*
        request
    }};
}

/// An X12 interchange from `from` to `to` (both qualifier `ZZ`), with `body`.
fn x12(from: &str, to: &str, body: &str) -> Vec<u8> {
    format!(
        "ISA*00*          *00*          *ZZ*{from:<15}*ZZ*{to:<15}*261123*1200*U*00401*000000001*0*P*>~{body}IEA*1*000000001~"
    )
    .into_bytes()
}

fn client(server: &FakeServer) -> Client {
    Client::builder()
        .endpoint(server.soap_url())
        .build()
        .unwrap()
}

fn session(server: &FakeServer, login: &str) -> Option<SessionId> {
    let key: ApiKey = server.user(login).unwrap().api_key.unwrap();
    Some(SessionId::from(key))
}

fn ids(collection: &Option<ParcelIdInfoCollection>) -> Vec<i64> {
    collection
        .as_ref()
        .and_then(|c| c.parcel_id_info_list.as_ref())
        .map(|l| l.items().map(|p| p.parcel_id).collect())
        .unwrap_or_default()
}

async fn upload(
    c: &Client,
    s: &Option<SessionId>,
    name: &str,
    content: Vec<u8>,
) -> ecgridos::Result<i32> {
    let bytes = i32::try_from(content.len()).unwrap();
    c.call(req!(ParcelUpload {
        session_id: s.clone(),
        file_name: Some(name.to_string()),
        bytes: bytes,
        content: Some(Base64(content)),
    }))
    .await
}

async fn inbox(c: &Client, s: &Option<SessionId>) -> Vec<i64> {
    ids(&c
        .call(req!(ParcelInBox {
            session_id: s.clone(),
        }))
        .await
        .unwrap())
}

#[tokio::test]
async fn soap_upload_routes_by_isa_and_the_loop_runs() {
    let server = FakeServer::start().await.unwrap();
    let c = client(&server);
    let (alice, bob) = (session(&server, "alice"), session(&server, "bob"));
    let content = x12("ALICE", "BOB", "GS*PO~");
    let id = upload(&c, &alice, "po.x12", content.clone()).await.unwrap();
    let id = i64::from(id);

    // The receiver sees it ready; the sender sees it in process.
    assert_eq!(inbox(&c, &bob).await, vec![id]);
    assert!(inbox(&c, &alice).await.is_empty());
    let in_process = c
        .call(req!(ParcelOutBoxInProcess {
            session_id: alice.clone(),
        }))
        .await
        .unwrap();
    assert_eq!(ids(&in_process), vec![id]);
    let fake = server.parcel(id).unwrap();
    assert_eq!(fake.status, ParcelStatus::InBoxReady);
    assert_eq!(fake.owner.as_deref(), Some("bob"));
    assert_eq!(fake.bytes.as_ref(), content.as_slice());

    // Download: transferred, still listed (at least once) until confirmed.
    let file = c
        .call(req!(ParcelDownload {
            session_id: bob.clone(),
            parcel_id: id,
        }))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(file.content.unwrap().0, content);
    assert_eq!(file.bytes as usize, content.len());
    assert_eq!(file.file_name.as_deref(), Some("po.x12"));
    assert_eq!(
        server.parcel(id).unwrap().status,
        ParcelStatus::InBoxTransferred
    );
    assert_eq!(
        inbox(&c, &bob).await,
        vec![id],
        "downloaded, unconfirmed: listed again"
    );
    let info = c
        .call(req!(ParcelInfo {
            session_id: bob.clone(),
            parcel_id: id,
        }))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(info.status_code.as_deref(), Some("InBoxTransferred"));

    // Confirm: gone from the inbox; a second confirm answers false.
    let confirm = req!(ParcelDownloadConfirm {
        session_id: bob.clone(),
        parcel_id: id,
    });
    assert!(c.call(confirm.clone()).await.unwrap());
    assert!(!c.call(confirm).await.unwrap());
    assert!(inbox(&c, &bob).await.is_empty());
    assert!(server.parcel(id).unwrap().confirmed);

    // Reset brings it back ready; cancel takes it away for good.
    assert!(c
        .call(req!(ParcelDownloadReset {
            session_id: bob.clone(),
            parcel_id: id,
        }))
        .await
        .unwrap());
    assert_eq!(server.parcel(id).unwrap().status, ParcelStatus::InBoxReady);
    assert_eq!(inbox(&c, &bob).await, vec![id]);
    assert!(c
        .call(req!(ParcelDownloadCancel {
            session_id: bob.clone(),
            parcel_id: id,
        }))
        .await
        .unwrap());
    assert!(inbox(&c, &bob).await.is_empty());

    let kinds: Vec<_> = server.parcel_events(id).iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        [
            ParcelEventKind::Uploaded,
            ParcelEventKind::Delivered,
            ParcelEventKind::Downloaded { no_update: false },
            ParcelEventKind::Confirmed,
            ParcelEventKind::Reset,
            ParcelEventKind::Cancelled,
        ]
    );
    let seqs: Vec<_> = server.events().iter().map(|e| e.seq).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
}

#[tokio::test]
async fn a_user_sees_only_its_own_mailbox() {
    let server = FakeServer::start().await.unwrap();
    let c = client(&server);
    let id = server.deliver("bob", "in.edi", b"hello".to_vec()).unwrap();
    let alice = session(&server, "alice");
    for result in [
        c.call(req!(ParcelDownload {
            session_id: alice.clone(),
            parcel_id: id,
        }))
        .await
        .map(|_| ()),
        c.call(req!(ParcelInfo {
            session_id: alice.clone(),
            parcel_id: id,
        }))
        .await
        .map(|_| ()),
        c.call(req!(ParcelDownloadConfirm {
            session_id: alice.clone(),
            parcel_id: id,
        }))
        .await
        .map(|_| ()),
    ] {
        let err = result.unwrap_err();
        assert_eq!(
            err.fault().unwrap().category(),
            Some(FaultCategory::ObjectNotFound)
        );
    }
    let bob_box = server.mailbox_of("bob").unwrap();
    let listed = c
        .call(req!(ParcelInBoxEx {
            session_id: alice.clone(),
            network_id: bob_box.network_id,
            mailbox_id: bob_box.mailbox_id,
            ec_grid_id_from: 0,
            ec_grid_id_to: 0,
        }))
        .await
        .unwrap_err();
    assert_eq!(
        listed.fault().unwrap().category(),
        Some(FaultCategory::ObjectNotFound)
    );
    // The network administrator may look into bob's mailbox.
    let admin = session(&server, "admin");
    let listed = c
        .call(req!(ParcelInBoxEx {
            session_id: admin,
            network_id: bob_box.network_id,
            mailbox_id: bob_box.mailbox_id,
            ec_grid_id_from: PARTNER_ECGRID_ID,
            ec_grid_id_to: 0,
        }))
        .await
        .unwrap();
    assert_eq!(ids(&listed), vec![id]);
    assert_eq!(server.parcel(id).unwrap().status, ParcelStatus::InBoxReady);
    assert!(
        server.parcel_events(id).len() == 1,
        "looking changes nothing"
    );
}

#[tokio::test]
async fn unroutable_files_are_refused_and_nothing_is_stored() {
    let server = FakeServer::start().await.unwrap();
    let c = client(&server);
    let alice = session(&server, "alice");
    for content in [
        x12("ALICE", "NOBODY", ""),
        b"just some text".to_vec(),
        b"ISA*00*".to_vec(),
        b"UNB+UNOA:1+ALICE:ZZ+NOBODY:ZZ+261123:1200+1'".to_vec(),
    ] {
        let err = upload(&c, &alice, "x", content).await.unwrap_err();
        let fault = err.fault().unwrap();
        assert_eq!(
            fault.category(),
            Some(FaultCategory::InvalidParameter),
            "{}",
            fault.message
        );
        assert!(
            fault.message.contains("cannot be routed"),
            "{}",
            fault.message
        );
    }
    // Mft with an ECGrid ID that is not the caller's, or unknown.
    let alice_id = server.mailbox_of("alice").unwrap().ecgrid_id;
    let bob_id = server.mailbox_of("bob").unwrap().ecgrid_id;
    for (from, to) in [(bob_id, alice_id), (alice_id, 42)] {
        let err = c
            .call(req!(ParcelUploadMft {
                session_id: alice.clone(),
                file_name: Some("m".into()),
                bytes: 1,
                content: Some(Base64(b"x".to_vec())),
                ec_grid_id_from: from,
                ec_grid_id_to: to,
            }))
            .await
            .unwrap_err();
        assert_eq!(
            err.fault().unwrap().category(),
            Some(FaultCategory::InvalidParameter)
        );
    }
    // A declared size that is not the content's.
    let content = x12("ALICE", "BOB", "");
    let err = c
        .call(req!(ParcelUpload {
            session_id: alice.clone(),
            file_name: Some("short".into()),
            bytes: i32::try_from(content.len()).unwrap() + 1,
            content: Some(Base64(content)),
        }))
        .await
        .unwrap_err();
    let fault = err.fault().unwrap();
    assert_eq!(fault.category(), Some(FaultCategory::InvalidParameter));
    assert!(fault.message.contains("Bytes is"), "{}", fault.message);
    assert!(server.events().is_empty());
    assert!(inbox(&c, &session(&server, "bob")).await.is_empty());
}

#[tokio::test]
async fn edifact_with_and_without_una_and_mft_route() {
    let server = FakeServer::start().await.unwrap();
    let c = client(&server);
    let (alice, bob) = (session(&server, "alice"), session(&server, "bob"));
    let plain = b"UNB+UNOA:1+ALICE:ZZ+BOB :ZZ+261123:1200+1'UNH+1+ORDERS'".to_vec();
    let una = b"UNA|#.? 'UNB#UNOA|1#ALICE|ZZ#BOB|ZZ#261123|1200#1'".to_vec();
    let a = upload(&c, &alice, "plain.edi", plain).await.unwrap();
    let b = c
        .call(req!(ParcelUploadA {
            session_id: alice.clone(),
            file_name: Some("una.edi".into()),
            content_base64: Some(base64_text(&una)),
        }))
        .await
        .unwrap();
    let alice_id = server.mailbox_of("alice").unwrap().ecgrid_id;
    let bob_id = server.mailbox_of("bob").unwrap().ecgrid_id;
    let m = c
        .call(req!(ParcelUploadMft {
            session_id: alice.clone(),
            file_name: Some("any.bin".into()),
            bytes: 3,
            content: Some(Base64(b"\x00\x01\x02".to_vec())),
            ec_grid_id_from: alice_id,
            ec_grid_id_to: bob_id,
        }))
        .await
        .unwrap();
    let expected: Vec<i64> = [a, b, m].into_iter().map(i64::from).collect();
    assert_eq!(inbox(&c, &bob).await, expected);
    let una_back = c
        .call(req!(ParcelDownloadA {
            session_id: bob.clone(),
            parcel_id: i64::from(b),
        }))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(una_back.content_base64_string, Some(base64_text(&una)));
    // The outbox archive finds all three in a window around now.
    let now: ecgridos::wire::DateTime = "2000-01-01T00:00:00Z".parse().unwrap();
    let later: ecgridos::wire::DateTime = "2100-01-01T00:00:00Z".parse().unwrap();
    let archive = c
        .call(req!(ParcelOutBoxArchiveEx {
            session_id: alice.clone(),
            network_id: 0,
            mailbox_id: 0,
            begin_date: now,
            end_date: later,
            ec_grid_id_from: 0,
            ec_grid_id_to: 0,
            mailbag_control_id: None,
            page_no: 1,
            records_per_page: 2,
        }))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (archive.total_records, archive.total_pages, archive.count),
        (3, 2, 2)
    );
    // A window in the past finds none.
    let archive = c
        .call(req!(ParcelOutBoxArchiveEx {
            session_id: alice,
            network_id: 0,
            mailbox_id: 0,
            begin_date: now,
            end_date: "2001-01-01T00:00:00Z".parse().unwrap(),
            ec_grid_id_from: 0,
            ec_grid_id_to: 0,
            mailbag_control_id: None,
            page_no: 1,
            records_per_page: 25,
        }))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(archive.total_records, 0);
}

fn base64_text(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[tokio::test]
async fn only_the_first_page_until_confirmed() {
    let server = FakeServer::builder()
        .inbox_page_size(3)
        .start()
        .await
        .unwrap();
    let c = client(&server);
    let bob = session(&server, "bob");
    let all: Vec<i64> = (0..7)
        .map(|i| {
            server
                .deliver("bob", &format!("f{i}"), vec![b'x'; i])
                .unwrap()
        })
        .collect();
    let page = c
        .call(req!(ParcelInBox {
            session_id: bob.clone(),
        }))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (
            page.page_size,
            page.page_number,
            page.count,
            page.total_records,
            page.total_pages
        ),
        (3, 1, 3, 7, 3)
    );
    // Downloading without confirming shows the same page again.
    for id in &all[..3] {
        c.call(req!(ParcelDownloadNoUpdate {
            session_id: bob.clone(),
            parcel_id: *id,
        }))
        .await
        .unwrap();
        c.call(req!(ParcelDownload {
            session_id: bob.clone(),
            parcel_id: *id,
        }))
        .await
        .unwrap();
    }
    assert_eq!(inbox(&c, &bob).await, all[..3]);
    let mut seen = Vec::new();
    loop {
        let ids = inbox(&c, &bob).await;
        if ids.is_empty() {
            break;
        }
        for id in ids {
            assert!(c
                .call(req!(ParcelDownloadConfirm {
                    session_id: bob.clone(),
                    parcel_id: id,
                }))
                .await
                .unwrap());
            seen.push(id);
        }
    }
    assert_eq!(seen, all);
    let no_update = server.parcel_events(all[0]);
    assert_eq!(
        no_update[1].kind,
        ParcelEventKind::Downloaded { no_update: true }
    );
}

#[tokio::test]
async fn the_hook_runs_before_the_confirm_takes_effect() {
    let seen: Arc<Mutex<Vec<(ParcelEventKind, bool)>>> = Arc::default();
    let slot: Arc<Mutex<Option<Arc<FakeServer>>>> = Arc::default();
    let (log, server_slot) = (seen.clone(), slot.clone());
    let server = Arc::new(
        FakeServer::builder()
            .on_parcel_event(move |event| {
                let server = server_slot.lock().unwrap().clone();
                let confirmed = server
                    .and_then(|s| s.parcel(event.parcel_id))
                    .is_some_and(|p| p.confirmed);
                log.lock().unwrap().push((event.kind, confirmed));
            })
            .start()
            .await
            .unwrap(),
    );
    *slot.lock().unwrap() = Some(server.clone());
    let c = client(&server);
    let bob = session(&server, "bob");
    let id = server.deliver("bob", "a", b"abc".to_vec()).unwrap();
    c.call(req!(ParcelDownload {
        session_id: bob.clone(),
        parcel_id: id,
    }))
    .await
    .unwrap();
    assert!(c
        .call(req!(ParcelDownloadConfirm {
            session_id: bob.clone(),
            parcel_id: id,
        }))
        .await
        .unwrap());
    let log = seen.lock().unwrap().clone();
    assert_eq!(
        log,
        [
            (ParcelEventKind::Delivered, false),
            (ParcelEventKind::Downloaded { no_update: false }, false),
            (ParcelEventKind::Confirmed, false),
        ],
        "the confirm hook saw the parcel still unconfirmed"
    );
    assert!(server.parcel(id).unwrap().confirmed);
    *slot.lock().unwrap() = None;
}

#[tokio::test]
async fn mailbox_info_of_the_seeded_mailboxes() {
    let server = FakeServer::start().await.unwrap();
    let c = client(&server);
    let alice = server.mailbox_of("alice").unwrap();
    assert_eq!((alice.network_id, alice.mailbox_id), (1, 101));
    let info = c
        .call(req!(MailboxInfo {
            session_id: session(&server, "alice"),
            mailbox_id: alice.mailbox_id,
        }))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((info.mailbox_id, info.network_id), (101, 1));
    assert_eq!(info.name.as_deref(), Some("alice"));
    let err = c
        .call(req!(MailboxInfo {
            session_id: session(&server, "alice"),
            mailbox_id: server.mailbox_of("bob").unwrap().mailbox_id,
        }))
        .await
        .unwrap_err();
    assert_eq!(
        err.fault().unwrap().category(),
        Some(FaultCategory::ObjectNotFound)
    );
}

/// A plain HTTP client (with the crypto provider reqwest needs installed).
fn http() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

/// A REST call with `login`'s API key: (HTTP status, JSON body).
async fn rest(
    server: &FakeServer,
    login: &str,
    method: &str,
    path: &str,
    body: Option<serde_json::Value>,
) -> (u16, serde_json::Value) {
    let key = server.user(login).unwrap().api_key.unwrap();
    let url = format!("{}{path}", server.rest_url());
    let http = http();
    let request = match method {
        "GET" => http.get(url),
        _ => http.post(url),
    }
    .header("X-API-Key", key.expose())
    .header("Content-Type", "application/json");
    let request = match body {
        Some(body) => request.body(body.to_string()),
        None => request,
    };
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let bytes = response.bytes().await.unwrap();
    (status, serde_json::from_slice(&bytes).unwrap())
}

fn rest_ids(data: &serde_json::Value) -> Vec<i64> {
    data["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["parcelId"].as_i64().unwrap())
        .collect()
}

#[tokio::test]
async fn soap_and_rest_see_the_same_mailbox() {
    use serde_json::json;
    let server = FakeServer::start().await.unwrap();
    let c = client(&server);
    let (alice, bob) = (session(&server, "alice"), session(&server, "bob"));

    // Upload over SOAP, fetch over REST.
    let content = x12("ALICE", "BOB", "GS*IN~");
    let id = i64::from(
        upload(&c, &alice, "inv.x12", content.clone())
            .await
            .unwrap(),
    );
    let (status, pending) = rest(
        &server,
        "bob",
        "POST",
        "/v2/parcels/pending-inbox-list",
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(rest_ids(&pending), vec![id]);
    assert_eq!(pending["data"][0]["status"], "InBoxReady");
    assert_eq!(pending["data"][0]["bytes"], content.len());
    let (_, file) = rest(
        &server,
        "bob",
        "POST",
        "/v2/parcels/download",
        Some(json!({"parcelId": id})),
    )
    .await;
    assert_eq!(file["success"], true);
    assert_eq!(file["data"]["content"], base64_text(&content));
    assert_eq!(file["data"]["fileName"], "inv.x12");
    assert_eq!(file["data"]["bytes"], content.len());
    let (_, info) = rest(&server, "bob", "GET", &format!("/v2/parcels/{id}"), None).await;
    assert_eq!(info["data"]["status"], "InBoxTransferred");
    // Still pending until confirmed (at least once), over both protocols.
    assert_eq!(inbox(&c, &bob).await, vec![id]);
    let (_, pending) = rest(
        &server,
        "bob",
        "POST",
        "/v2/parcels/pending-inbox-list",
        None,
    )
    .await;
    assert_eq!(rest_ids(&pending), vec![id]);
    for _ in 0..2 {
        // A repeated confirm succeeds and changes nothing.
        let (status, confirmed) = rest(
            &server,
            "bob",
            "POST",
            "/v2/parcels/confirm",
            Some(json!({"parcelId": id})),
        )
        .await;
        assert_eq!((status, &confirmed["data"]), (200, &json!(true)));
    }
    assert!(inbox(&c, &bob).await.is_empty());
    assert_eq!(
        server
            .parcel_events(id)
            .iter()
            .filter(|e| e.kind == ParcelEventKind::Confirmed)
            .count(),
        1
    );
    let (_, all) = rest(
        &server,
        "bob",
        "POST",
        "/v2/parcels/inbox-list",
        Some(json!({})),
    )
    .await;
    assert_eq!(
        rest_ids(&all),
        vec![id],
        "inbox-list shows confirmed parcels too"
    );
    let (_, out) = rest(
        &server,
        "alice",
        "POST",
        "/v2/parcels/outbox-list",
        Some(json!({"pageNo": 1, "recordsPerPage": 25})),
    )
    .await;
    assert_eq!(rest_ids(&out), vec![id]);
    let (_, reset) = rest(
        &server,
        "bob",
        "POST",
        &format!("/v2/parcels/reset-to-inbox/{id}"),
        None,
    )
    .await;
    assert_eq!(reset["data"], true);
    assert_eq!(inbox(&c, &bob).await, vec![id]);

    // Upload over REST (by explicit ECGrid ID), fetch over SOAP.
    let bob_id = server.mailbox_of("bob").unwrap().ecgrid_id;
    let raw = b"\x00binary\xff".to_vec();
    let (status, up) = rest(&server, "alice", "POST", "/v2/parcels/upload", Some(json!({
        "fileName": "b.bin", "content": base64_text(&raw), "bytes": raw.len(), "ecGridIdTo": bob_id
    }))).await;
    assert_eq!(status, 200, "{up}");
    let second = up["data"].as_i64().unwrap();
    let file = c
        .call(req!(ParcelDownload {
            session_id: bob.clone(),
            parcel_id: second
        }))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(file.content.unwrap().0, raw);
    // ... and by ISA header, with no IDs.
    let (_, up) = rest(
        &server,
        "alice",
        "POST",
        "/v2/parcels/upload",
        Some(json!({
            "fileName": "c.x12", "content": base64_text(&x12("ALICE", "BOB", ""))
        })),
    )
    .await;
    assert_eq!(
        inbox(&c, &bob).await,
        vec![id, second, up["data"].as_i64().unwrap()]
    );

    // The sender may cancel only what was not delivered yet.
    let (status, refused) = rest(
        &server,
        "alice",
        "POST",
        &format!("/v2/parcels/cancel/{second}"),
        None,
    )
    .await;
    assert_eq!(
        (status, refused["errorCode"].as_str()),
        (400, Some("InvalidParameter"))
    );
    let third = up["data"].as_i64().unwrap();
    let (status, cancelled) = rest(
        &server,
        "alice",
        "POST",
        &format!("/v2/parcels/cancel/{third}"),
        None,
    )
    .await;
    assert_eq!((status, &cancelled["data"]), (200, &json!(true)));
    assert_eq!(inbox(&c, &bob).await, vec![id, second]);

    let (status, mailbox) = rest(&server, "bob", "GET", "/v2/mailboxes/102", None).await;
    assert_eq!(
        (status, mailbox["data"]["networkId"].as_i64()),
        (200, Some(1))
    );
    let (status, hidden) = rest(&server, "alice", "GET", &format!("/v2/parcels/{id}"), None).await;
    assert_eq!(status, 200, "the sender sees its own parcel: {hidden}");
    let (status, hidden) = rest(
        &server,
        "admin",
        "POST",
        "/v2/parcels/download",
        Some(json!({"parcelId": 1})),
    )
    .await;
    assert_eq!(
        (status, hidden["errorCode"].as_str()),
        (404, Some("ObjectNotFound"))
    );
}

#[tokio::test]
async fn rest_refuses_what_it_cannot_route_or_read() {
    use serde_json::json;
    let server = FakeServer::start().await.unwrap();
    for body in [
        json!({"fileName": "x", "content": base64_text(b"no envelope")}),
        json!({"fileName": "x", "content": "***not base64***"}),
        json!({"fileName": "x", "content": base64_text(&x12("ALICE", "BOB", "")), "bytes": 3}),
        json!({"fileName": "x"}),
    ] {
        let (status, answer) =
            rest(&server, "alice", "POST", "/v2/parcels/upload", Some(body)).await;
        assert_eq!(
            (status, answer["errorCode"].as_str()),
            (400, Some("InvalidParameter")),
            "{answer}"
        );
        assert_eq!(answer["success"], false);
    }
    assert!(server.events().is_empty());
    let (_, events) = rest(&server, "alice", "GET", ecgridos::fake::EVENTS_PATH, None).await;
    assert_eq!(events["data"], json!([]));
    let id = server.deliver("alice", "a", b"1".to_vec()).unwrap();
    let http = http();
    let text = http
        .get(format!(
            "{}{}?parcelId={id}",
            server.rest_url(),
            ecgridos::fake::EVENTS_PATH
        ))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let events: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(events["data"][0]["kind"], "Delivered");
    assert_eq!(events["data"][0]["parcelId"], id);
    assert_eq!(events["data"][0]["seq"], 1);
    assert!(events["data"][0]["atUnixNanos"].as_u64().unwrap() > 1_700_000_000_000_000_000);
    server.deliver("alice", "b", b"2".to_vec()).unwrap();
    let (_, later) = rest(
        &server,
        "alice",
        "GET",
        &format!("{}?since=1", ecgridos::fake::EVENTS_PATH),
        None,
    )
    .await;
    assert_eq!(later["data"].as_array().unwrap().len(), 1);
    assert_eq!(later["data"][0]["seq"], 2);
}

/// A fresh directory under the system's temporary directory.
fn temp_dir(tag: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "ecgridos-fake-parcels-{tag}-{}-{:08x}",
        std::process::id(),
        fastrand::u32(..)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `ecgridos serve-mock ARGS`, and the ready line it prints.
fn serve_mock(args: &[&str]) -> (std::process::Child, serde_json::Value) {
    use std::io::BufRead;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_ecgridos"))
        .arg("serve-mock")
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    (child, serde_json::from_str(&line).unwrap())
}

/// A POST of `body` to `url` with `key`: the JSON answer.
async fn post_json(url: &str, key: &str, body: serde_json::Value) -> serde_json::Value {
    let text = http()
        .post(url)
        .header("X-API-Key", key)
        .header("Content-Type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    serde_json::from_str(&text).unwrap()
}

#[tokio::test]
async fn serve_mock_tells_where_each_user_lives_and_seeds_parcels() {
    use serde_json::json;
    let dir = temp_dir("seed");
    std::fs::write(dir.join("b.edi"), b"second").unwrap();
    std::fs::write(dir.join("a.edi"), b"first").unwrap();
    let dir_text = dir.display().to_string();
    let (mut child, ready) = serve_mock(&[
        "--seed-parcels",
        &dir_text,
        "--seed-to",
        "bob",
        "--max-upload-bytes",
        "4096",
    ]);
    let users = ready["users"].as_array().unwrap();
    let user = |login: &str| users.iter().find(|u| u["login"] == login).unwrap().clone();
    let (alice, bob) = (user("alice"), user("bob"));
    assert_eq!(
        (bob["network_id"].as_i64(), bob["mailbox_id"].as_i64()),
        (Some(1), Some(102))
    );
    assert_eq!(bob["ecgrid_id"].as_i64(), Some(501_003));
    assert_eq!(alice["ecgrid_id"].as_i64(), Some(501_002));
    let seeded: Vec<i64> = ready["seeded_parcels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_i64().unwrap())
        .collect();
    assert_eq!(seeded.len(), 2);
    let rest = ready["rest_url"].as_str().unwrap();
    let bob_key = bob["api_key"].as_str().unwrap();
    let pending = post_json(
        &format!("{rest}/v2/parcels/pending-inbox-list"),
        bob_key,
        json!({}),
    )
    .await;
    assert_eq!(rest_ids(&pending), seeded);
    assert_eq!(pending["data"][0]["fileName"], "a.edi", "name order");

    // Route a file from alice to bob by the IDs of the ready line.
    let up = post_json(
        &format!("{rest}/v2/parcels/upload"),
        alice["api_key"].as_str().unwrap(),
        json!({"fileName": "m", "content": base64_text(b"mft"), "ecGridIdFrom": alice["ecgrid_id"], "ecGridIdTo": bob["ecgrid_id"]}),
    )
    .await;
    let id = up["data"].as_i64().unwrap();
    let download = post_json(
        &format!("{rest}/v2/parcels/download"),
        bob_key,
        json!({"parcelId": id}),
    )
    .await;
    assert_eq!(download["data"]["content"], base64_text(b"mft"));
    // --max-upload-bytes: a larger upload is refused before it is read.
    let refused = http()
        .post(format!("{rest}/v2/parcels/upload"))
        .header("X-API-Key", bob_key)
        .body(json!({"fileName": "big", "content": base64_text(&[0u8; 4096])}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status().as_u16(), 413);
    let events_url = ready["events_url"].as_str().unwrap();
    let events: serde_json::Value = serde_json::from_str(
        &reqwest::get(events_url)
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
    )
    .unwrap();
    let kinds: Vec<&str> = events["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "Delivered",
            "Delivered",
            "Uploaded",
            "Delivered",
            "Downloaded"
        ]
    );
    child.kill().unwrap();
    child.wait().unwrap();
    std::fs::remove_dir_all(dir).unwrap();
}

/// Byte `i` of the large parcel: an ISA header routing it to bob, then a
/// pattern that is not all one byte.
fn big_byte(header: &[u8], i: usize) -> u8 {
    match header.get(i) {
        Some(b) => *b,
        None => (i.wrapping_mul(31) ^ (i >> 11)) as u8,
    }
}

/// Peak and current resident memory of process `pid`, in bytes (Linux).
fn memory_of(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<u64>().ok())
            .map(|kb| kb * 1024)
    };
    Some((field("VmHWM:")?, field("VmRSS:")?))
}

/// Writes a raw HTTP/1.1 POST with a body made of `prefix`, the base64 of
/// the big parcel (`size` bytes) and `suffix`; returns the answer's status
/// line and body.
async fn post_big(
    addr: &str,
    path: &str,
    headers: &str,
    prefix: &str,
    size: usize,
    header: &[u8],
    suffix: &str,
) -> (String, String) {
    use base64::Engine;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut sock = tokio::net::TcpStream::connect(addr).await.unwrap();
    let length = prefix.len() + size.div_ceil(3) * 4 + suffix.len();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\n{headers}Content-Length: {length}\r\nConnection: close\r\n\r\n{prefix}"
    );
    sock.write_all(head.as_bytes()).await.unwrap();
    const STEP: usize = 3 * 64 * 1024;
    let mut raw = Vec::with_capacity(STEP);
    let mut text = String::with_capacity(STEP / 3 * 4);
    let mut at = 0;
    while at < size {
        let end = (at + STEP).min(size);
        raw.clear();
        raw.extend((at..end).map(|i| big_byte(header, i)));
        text.clear();
        base64::engine::general_purpose::STANDARD.encode_string(&raw, &mut text);
        sock.write_all(text.as_bytes()).await.unwrap();
        at = end;
    }
    sock.write_all(suffix.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    sock.read_to_end(&mut answer).await.unwrap();
    let answer = String::from_utf8(answer).unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    (head.lines().next().unwrap().to_string(), body.to_string())
}

/// Posts a small raw request and checks the answer's base64 content against
/// the big parcel as it streams in, without holding it: returns the number
/// of bytes checked and the declared Content-Length.
async fn download_big(
    addr: &str,
    path: &str,
    headers: &str,
    body: &str,
    open: &str,
    close: u8,
    header: &[u8],
) -> (usize, usize) {
    use base64::Engine;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut sock = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    sock.write_all(request.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 256 * 1024];
    let mut content_length = 0;
    let mut checked = 0usize;
    let mut inside = false;
    let mut done = false;
    let mut pending: Vec<u8> = Vec::new();
    let mut decoded = Vec::new();
    loop {
        let n = sock.read(&mut chunk).await.unwrap();
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
        if !inside && !done {
            let text = String::from_utf8_lossy(&buf);
            if content_length == 0 {
                if let Some((head, _)) = text.split_once("\r\n\r\n") {
                    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
                    content_length = head
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length: ")
                                .map(|v| v.trim().parse().unwrap())
                        })
                        .unwrap();
                }
            }
            if let Some(at) = text.find(open) {
                let start = at + open.len();
                buf.drain(..start);
                inside = true;
            } else {
                continue;
            }
        }
        if inside {
            let end = buf.iter().position(|b| *b == close);
            let take = end.unwrap_or(buf.len());
            pending.extend_from_slice(&buf[..take]);
            buf.drain(..take);
            let whole = if end.is_some() {
                pending.len()
            } else {
                pending.len() / 4 * 4
            };
            decoded.clear();
            base64::engine::general_purpose::STANDARD
                .decode_vec(&pending[..whole], &mut decoded)
                .unwrap();
            pending.drain(..whole);
            for (k, b) in decoded.iter().enumerate() {
                assert_eq!(*b, big_byte(header, checked + k), "byte {}", checked + k);
            }
            checked += decoded.len();
            if end.is_some() {
                inside = false;
                done = true;
            }
        }
    }
    (checked, content_length)
}

/// 200 MB up and down through a separate `serve-mock` process, over SOAP
/// and REST, with the fake's peak resident memory measured: the content is
/// decoded as it arrives and encoded as it leaves, so the fake holds about
/// one copy of the bytes, never the base64 text.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_200_mb_parcel_goes_up_and_down_without_copies() {
    const SIZE: usize = 200_000_000;
    let (mut child, ready) = serve_mock(&[]);
    let pid = child.id();
    let users = ready["users"].as_array().unwrap();
    let key = |login: &str| {
        users.iter().find(|u| u["login"] == login).unwrap()["api_key"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let (alice, bob) = (key("alice"), key("bob"));
    let soap_url = ready["soap_url"].as_str().unwrap();
    let addr = soap_url
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap()
        .to_string();
    let header = x12("ALICE", "BOB", "");
    let header = &header[..header.len() - "IEA*1*000000001~".len()];
    let (_, baseline) = memory_of(pid).unwrap();

    // SOAP up.
    let ns = "https://os.ecgrid.io/";
    let soap_headers =
        format!("Content-Type: text/xml; charset=utf-8\r\nSOAPAction: \"{ns}ParcelUpload\"\r\n");
    let prefix = format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?><soap:Envelope xmlns:soap=\"http://schemas.xmlsoap.org/soap/envelope/\"><soap:Body><ParcelUpload xmlns=\"{ns}\"><SessionID>{alice}</SessionID><FileName>big.x12</FileName><Bytes>{SIZE}</Bytes><Content>"
    );
    let suffix = "</Content></ParcelUpload></soap:Body></soap:Envelope>";
    let (status, body) = post_big(
        &addr,
        "/v4.1/prod/ECGridOS.asmx",
        &soap_headers,
        &prefix,
        SIZE,
        header,
        suffix,
    )
    .await;
    assert!(status.contains("200"), "{status} {body}");
    let id: i64 = body
        .split("<ParcelUploadResult>")
        .nth(1)
        .and_then(|r| r.split('<').next())
        .unwrap()
        .parse()
        .unwrap();
    let (after_upload, _) = memory_of(pid).unwrap();

    // SOAP down, as bob.
    let download = format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?><soap:Envelope xmlns:soap=\"http://schemas.xmlsoap.org/soap/envelope/\"><soap:Body><ParcelDownload xmlns=\"{ns}\"><SessionID>{bob}</SessionID><ParcelID>{id}</ParcelID></ParcelDownload></soap:Body></soap:Envelope>"
    );
    let soap_download =
        format!("Content-Type: text/xml; charset=utf-8\r\nSOAPAction: \"{ns}ParcelDownload\"\r\n");
    let (checked, length) = download_big(
        &addr,
        "/v4.1/prod/ECGridOS.asmx",
        &soap_download,
        &download,
        "<Content>",
        b'<',
        header,
    )
    .await;
    assert_eq!(checked, SIZE);
    assert!(
        length > SIZE / 3 * 4,
        "Content-Length {length} sent up front"
    );

    // REST down the same parcel (delivery is at least once).
    let rest_headers = format!("Content-Type: application/json\r\nX-API-Key: {bob}\r\n");
    let (checked, _) = download_big(
        &addr,
        "/v2/parcels/download",
        &rest_headers,
        &format!("{{\"parcelId\":{id}}}"),
        "\"content\":\"",
        b'"',
        header,
    )
    .await;
    assert_eq!(checked, SIZE);
    let (peak, _) = memory_of(pid).unwrap();

    let mb = |b: u64| b as f64 / 1e6;
    eprintln!(
        "serve-mock memory: baseline {:.0} MB, peak after a 200 MB SOAP upload {:.0} MB, peak after two downloads {:.0} MB",
        mb(baseline),
        mb(after_upload),
        mb(peak)
    );
    // One copy of the bytes plus a little; the base64 text (267 MB) is never
    // held, so two copies of the content would already mean a regression.
    assert!(
        peak - baseline < 2 * SIZE as u64,
        "the fake held {:.0} MB for a {:.0} MB parcel",
        mb(peak - baseline),
        mb(SIZE as u64)
    );
    child.kill().unwrap();
    child.wait().unwrap();
}

/// A raw SOAP 1.1 request: (HTTP status, body text).
async fn raw_soap(server: &FakeServer, operation: &str, params: &str) -> (u16, String) {
    let ns = "https://os.ecgrid.io/";
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?><soap:Envelope xmlns:soap=\"http://schemas.xmlsoap.org/soap/envelope/\"><soap:Body><{operation} xmlns=\"{ns}\">{params}</{operation}></soap:Body></soap:Envelope>"
    );
    let response = http()
        .post(server.soap_url())
        .header("Content-Type", "text/xml; charset=utf-8")
        .header("SOAPAction", format!("\"{ns}{operation}\""))
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

#[tokio::test]
async fn control_characters_in_file_names_are_written_as_character_references() {
    let server = FakeServer::start().await.unwrap();
    let id = server
        .deliver("bob", "a\u{0}b\u{1b}c.edi", b"x".to_vec())
        .unwrap();
    let key = server.user("bob").unwrap().api_key.unwrap();
    let session = format!("<SessionID>{}</SessionID>", key.expose());
    let (status, listing) = raw_soap(&server, "ParcelInBox", &session).await;
    assert_eq!(status, 200);
    assert!(
        listing.contains("<FileName>a&#x0;b&#x1B;c.edi</FileName>"),
        "{listing}"
    );
    let (_, info) = raw_soap(
        &server,
        "ParcelInfo",
        &format!("{session}<ParcelID>{id}</ParcelID>"),
    )
    .await;
    assert!(
        info.contains("<FileName>a&#x0;b&#x1B;c.edi</FileName>"),
        "{info}"
    );
    let (_, file) = raw_soap(
        &server,
        "ParcelDownload",
        &format!("{session}<ParcelID>{id}</ParcelID>"),
    )
    .await;
    assert!(
        file.contains("<FileName>a&#x0;b&#x1B;c.edi</FileName><FileDate>"),
        "{file}"
    );
    assert!(file.contains("<Content>eA==</Content>"), "{file}");
    let (_, rest_listing) = rest(
        &server,
        "bob",
        "POST",
        "/v2/parcels/pending-inbox-list",
        None,
    )
    .await;
    assert_eq!(rest_listing["data"][0]["fileName"], "a\u{0}b\u{1b}c.edi");
}

#[tokio::test]
async fn only_uploads_get_the_large_cap() {
    use serde_json::json;
    let server = FakeServer::builder()
        .max_upload_bytes(6 * 1024 * 1024)
        .start()
        .await
        .unwrap();
    let bob_id = server.mailbox_of("bob").unwrap().ecgrid_id;
    let big = vec![7u8; 3 * 1024 * 1024];
    // 4 MiB of base64: over the 2 MiB cap of other requests, under the upload cap.
    let (status, up) = rest(
        &server,
        "alice",
        "POST",
        "/v2/parcels/upload",
        Some(json!({
            "fileName": "big.bin", "content": base64_text(&big), "ecGridIdTo": bob_id
        })),
    )
    .await;
    assert_eq!(status, 200, "{up}");
    let id = up["data"].as_i64().unwrap();
    assert_eq!(server.parcel(id).unwrap().bytes.len(), big.len());
    let c = client(&server);
    let soap_id = upload(&c, &session(&server, "alice"), "big.x12", {
        let mut content = x12("ALICE", "BOB", "");
        content.extend_from_slice(&big);
        content
    })
    .await
    .unwrap();
    assert_eq!(
        server.parcel(i64::from(soap_id)).unwrap().bytes.len(),
        big.len() + x12("ALICE", "BOB", "").len()
    );

    // The same size elsewhere is refused, and so is an upload over its cap.
    let key = server.user("alice").unwrap().api_key.unwrap();
    let padded = json!({"mailboxId": 0, "status": base64_text(&big)}).to_string();
    let refused = http()
        .post(format!("{}/v2/parcels/inbox-list", server.rest_url()))
        .header("X-API-Key", key.expose())
        .body(padded)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status().as_u16(), 413);
    let too_big = base64_text(&vec![1u8; 5 * 1024 * 1024]);
    let refused = http()
        .post(format!("{}/v2/parcels/upload", server.rest_url()))
        .header("X-API-Key", key.expose())
        .body(json!({"fileName": "x", "content": too_big, "ecGridIdTo": bob_id}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status().as_u16(), 413);
    assert_eq!(
        server.events().len(),
        4,
        "two uploads, nothing from the refused ones"
    );
}

#[tokio::test]
async fn a_stalled_upload_is_cut() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = FakeServer::builder()
        .body_timeout(std::time::Duration::from_millis(300))
        .start()
        .await
        .unwrap();
    let mut sock = tokio::net::TcpStream::connect(server.addr()).await.unwrap();
    let head = "POST /v2/parcels/upload HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"fileName\":\"x\",\"content\":\"QUJD";
    sock.write_all(head.as_bytes()).await.unwrap();
    let mut answer = String::new();
    let read = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        sock.read_to_string(&mut answer),
    )
    .await;
    assert!(read.is_ok(), "the fake closed the stalled upload");
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(server.events().is_empty());
}

#[tokio::test]
async fn a_stub_overrides_a_modelled_parcel_operation() {
    use ecgridos::api::types::FileInfo;
    let server = FakeServer::start().await.unwrap();
    let id = server.deliver("bob", "a.edi", b"abc".to_vec()).unwrap();
    server.stub::<ParcelDownload>(|request| {
        let mut lying = FileInfo::default();
        lying.parcel_id = request.parcel_id;
        lying.bytes = 1000;
        lying.content = Some(Base64(b"abc".to_vec()));
        Ok(Some(lying))
    });
    let c = client(&server);
    let bob = session(&server, "bob");
    let file = c
        .call(req!(ParcelDownload {
            session_id: bob.clone(),
            parcel_id: id
        }))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (file.bytes, file.content.unwrap().0),
        (1000, b"abc".to_vec())
    );
    assert_eq!(
        server.parcel(id).unwrap().status,
        ParcelStatus::InBoxReady,
        "the model was not asked"
    );
    // Other parcel operations keep the model.
    assert_eq!(inbox(&c, &bob).await, vec![id]);
}

#[tokio::test]
async fn short_and_archive_listings_filter() {
    let server = FakeServer::start().await.unwrap();
    let c = client(&server);
    let bob = session(&server, "bob");
    let (a, b) = (
        server.deliver("bob", "a", b"1".to_vec()).unwrap(),
        server.deliver("bob", "b", b"2".to_vec()).unwrap(),
    );
    c.call(req!(ParcelDownload {
        session_id: bob.clone(),
        parcel_id: b
    }))
    .await
    .unwrap();
    let short = |status| {
        req!(ParcelInBoxExShort {
            session_id: bob.clone(),
            status: status,
        })
    };
    let ready = c.call(short(ParcelStatus::InBoxReady)).await.unwrap();
    assert_eq!(ids(&ready), vec![a]);
    let transferred = c.call(short(ParcelStatus::InBoxTransferred)).await.unwrap();
    assert_eq!(ids(&transferred), vec![b]);
    c.call(req!(ParcelDownloadConfirm {
        session_id: bob.clone(),
        parcel_id: b
    }))
    .await
    .unwrap();
    let archive = c
        .call(req!(ParcelInBoxArchiveEx {
            session_id: bob.clone(),
            begin_date: "2000-01-01T00:00:00Z".parse().unwrap(),
            end_date: "2100-01-01T00:00:00Z".parse().unwrap(),
            page_no: 1,
            records_per_page: 10,
        }))
        .await
        .unwrap();
    assert_eq!(
        ids(&archive),
        vec![a, b],
        "the archive keeps confirmed parcels"
    );
    let processing = c
        .call(req!(ParcelOutBoxInProcessEx {
            session_id: bob.clone()
        }))
        .await
        .unwrap();
    assert!(
        ids(&processing).is_empty(),
        "delivered parcels are in no outbox"
    );
}

#[tokio::test]
async fn a_slow_download_is_not_cut_as_idle() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = FakeServer::builder()
        .idle_timeout(std::time::Duration::from_millis(200))
        .start()
        .await
        .unwrap();
    let content = vec![5u8; 16 * 1024 * 1024];
    let id = server.deliver("bob", "slow.bin", content.clone()).unwrap();
    let key = server.user("bob").unwrap().api_key.unwrap();
    let body = format!("{{\"parcelId\":{id}}}");
    let mut sock = tokio::net::TcpStream::connect(server.addr()).await.unwrap();
    let request = format!(
        "POST /v2/parcels/download HTTP/1.1\r\nHost: x\r\nX-API-Key: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        key.expose(),
        body.len()
    );
    sock.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let mut chunk = vec![0u8; 512 * 1024];
    loop {
        // A slow reader: the fake waits on a full socket for longer than
        // its idle timeout, again and again.
        tokio::time::sleep(std::time::Duration::from_millis(30)).await;
        let n = sock.read(&mut chunk).await.unwrap();
        if n == 0 {
            break;
        }
        answer.extend_from_slice(&chunk[..n]);
    }
    let text = String::from_utf8(answer).unwrap();
    let (_, json) = text.split_once("\r\n\r\n").unwrap();
    let json: serde_json::Value = serde_json::from_str(json).unwrap();
    assert_eq!(json["data"]["content"], base64_text(&content));
}

#[tokio::test]
async fn a_soap_12_upload_is_streamed_under_the_upload_cap() {
    let server = FakeServer::start().await.unwrap();
    let c = Client::builder()
        .endpoint(server.soap_url())
        .soap_version(ecgridos::SoapVersion::V12)
        .build()
        .unwrap();
    // 3 MiB of content: 4 MiB of base64, over the 2 MiB cap of other requests.
    let mut content = x12("ALICE", "BOB", "");
    content.extend(std::iter::repeat_n(b'z', 3 * 1024 * 1024));
    let id = upload(&c, &session(&server, "alice"), "v12.x12", content.clone())
        .await
        .unwrap();
    assert_eq!(
        server.parcel(i64::from(id)).unwrap().bytes.as_ref(),
        content.as_slice()
    );
}

#[tokio::test]
async fn a_download_nobody_reads_is_cut_after_the_idle_timeout() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = FakeServer::builder()
        .idle_timeout(std::time::Duration::from_millis(200))
        .start()
        .await
        .unwrap();
    let id = server
        .deliver("bob", "big.bin", vec![5u8; 32 * 1024 * 1024])
        .unwrap();
    let key = server.user("bob").unwrap().api_key.unwrap();
    let body = format!("{{\"parcelId\":{id}}}");
    let mut sock = tokio::net::TcpStream::connect(server.addr()).await.unwrap();
    let request = format!(
        "POST /v2/parcels/download HTTP/1.1\r\nHost: x\r\nX-API-Key: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        key.expose(),
        body.len()
    );
    sock.write_all(request.as_bytes()).await.unwrap();
    let mut chunk = vec![0u8; 64 * 1024];
    let first = sock.read(&mut chunk).await.unwrap();
    assert!(first > 0);
    // Stop reading for well over the idle timeout: the fake gives up.
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let mut rest = Vec::new();
    let _ = sock.read_to_end(&mut rest).await;
    let received = first + rest.len();
    assert!(
        received < 32 * 1024 * 1024 / 3 * 4,
        "the whole answer ({received} bytes) arrived although nobody read it"
    );
}
