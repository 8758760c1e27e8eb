//! The fake's mailbox: routing, statuses, listings and the event log, over
//! SOAP (the crate's typed calls and raw envelopes) and REST (raw JSON).

use std::sync::{Arc, Mutex};

use ecgridos::api::enums::ParcelStatus;
use ecgridos::api::mailbox::MailboxInfo;
use ecgridos::api::parcel::{
    ParcelDownload, ParcelDownloadA, ParcelDownloadCancel, ParcelDownloadConfirm,
    ParcelDownloadNoUpdate, ParcelDownloadReset, ParcelInBox, ParcelInBoxEx, ParcelInfo,
    ParcelOutBoxArchiveEx, ParcelOutBoxInProcess, ParcelUpload, ParcelUploadA, ParcelUploadMft,
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
