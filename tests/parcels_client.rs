//! The protocol-neutral parcel client: streamed downloads and uploads, their
//! limits and failures, and the upload search, over SOAP and REST.

mod common;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use ecgridos::api::types::{ArrayOfParcelIdInfo, ParcelIdInfo, ParcelIdInfoCollection};
use ecgridos::fake::FakeServer;
use ecgridos::{
    ApiKey, Client, Credential, ErrorKind, ParcelClient, Protocol, RestClient, RetryPolicy,
    UploadProbe, UploadRoute, UploadSearch,
};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

/// A directory of its own under the system's temporary directory.
fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "ecgridos-parcels-{name}-{}-{}",
        std::process::id(),
        fastrand::u64(..)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Bytes that look like nothing in particular.
fn payload(len: usize) -> Vec<u8> {
    let mut rng = fastrand::Rng::with_seed(len as u64);
    (0..len).map(|_| rng.u8(..)).collect()
}

fn cred() -> Credential {
    Credential::ApiKey(ApiKey::new("test-key"))
}

/// An X12 interchange from `from` to `to` (ZZ qualifiers), routed by its
/// ISA header.
fn x12(from: &str, to: &str, body: &str) -> Vec<u8> {
    format!(
        "ISA*00*          *00*          *ZZ*{from:<15}*ZZ*{to:<15}*261123*1200*U*00401*000000001*0*P*>~{body}IEA*1*000000001~"
    )
    .into_bytes()
}

#[tokio::test]
async fn download_writes_the_exact_bytes_small_and_large_over_both_protocols() {
    let server = FakeServer::start().await.unwrap();
    let bob = key_of(&server, "bob");
    let small = payload(1000);
    let large = payload(20 * 1024 * 1024 + 1);
    let dir = temp_dir("download");
    for protocol in [Protocol::Soap, Protocol::Rest] {
        let client = fake_client(&server, protocol, None);
        for expected in [&small, &large] {
            let id = server.deliver("bob", "a.edi", expected.clone()).unwrap();
            let path = dir.join(format!("{protocol}-{id}.edi"));
            let seen = AtomicU64::new(0);
            let progress = |n: u64| seen.store(n, Ordering::Relaxed);
            let mut file = tokio::fs::File::create(&path).await.unwrap();
            let got = client
                .download_to(&bob, id, &mut file, Some(&progress))
                .await
                .unwrap();
            assert_eq!(got.parcel_id, id);
            assert_eq!(got.file_name, "a.edi");
            assert_eq!(got.declared_bytes, expected.len() as u64);
            assert_eq!(got.received_bytes, expected.len() as u64);
            assert_eq!(seen.load(Ordering::Relaxed), expected.len() as u64);
            assert!(std::fs::read(&path).unwrap() == *expected, "{protocol}");
        }
        assert_eq!(client.protocol(), protocol);
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn a_declared_size_that_differs_is_refused_over_both_protocols() {
    for protocol in [Protocol::Soap, Protocol::Rest] {
        // "hello" is five bytes; the answer declares six.
        let (body, ct) = download_answer(protocol, "aGVsbG8=", 6);
        let (url, _) = raw_server(http_response(ct, &body, None), Ending::Respond).await;
        let client = clients_for(&url, protocol);
        let mut out = Vec::new();
        let err = client
            .download_to(&cred(), 5, &mut out, None)
            .await
            .unwrap_err();
        assert!(err.is_size_mismatch(), "{protocol}: {err}");
        assert_eq!(err.kind(), ErrorKind::SizeMismatch);
        assert!(
            err.to_string().contains("declares 6 bytes but 5 arrived"),
            "{err}"
        );
    }
}

#[tokio::test]
async fn downloading_an_unknown_parcel_is_a_refusal_over_both_protocols() {
    let server = FakeServer::start().await.unwrap();
    let bob = key_of(&server, "bob");
    for protocol in [Protocol::Soap, Protocol::Rest] {
        let client = fake_client(&server, protocol, None);
        let mut out = Vec::new();
        let err = client
            .download_to(&bob, 987_654, &mut out, None)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound, "{protocol}: {err}");
        assert!(out.is_empty());
    }
}

#[tokio::test]
async fn uploads_stream_the_file_once_by_each_route_over_both_protocols() {
    let server = FakeServer::start().await.unwrap();
    let alice = key_of(&server, "alice");
    let from = server.mailbox_of("alice").unwrap().ecgrid_id;
    let alice_box = server.mailbox_of("alice").unwrap();
    let bob_box = server.mailbox_of("bob").unwrap();
    let dir = temp_dir("upload");
    let data = x12("ALICE", "BOB", &"ST*850*0001~".repeat(50_000));
    let path = dir.join("out.edi");
    std::fs::write(&path, &data).unwrap();
    let routes = [
        UploadRoute::FromHeaders,
        UploadRoute::Mailbox {
            network_id: alice_box.network_id,
            mailbox_id: alice_box.mailbox_id,
        },
        UploadRoute::Ids {
            from,
            to: bob_box.ecgrid_id,
        },
    ];
    for protocol in [Protocol::Soap, Protocol::Rest] {
        let client = fake_client(&server, protocol, None);
        for route in &routes {
            let seen = AtomicU64::new(0);
            let progress = |n: u64| seen.store(n, Ordering::Relaxed);
            let id = client
                .upload_file(&alice, &path, "out & <1>.edi", route, Some(&progress))
                .await
                .unwrap();
            let stored = server.parcel(id).unwrap();
            assert_eq!(stored.file_name, "out & <1>.edi", "{protocol} {route:?}");
            assert!(stored.bytes == data, "{protocol} {route:?}");
            assert_eq!(
                stored.mailbox_id, bob_box.mailbox_id,
                "{protocol} {route:?}"
            );
            assert_eq!(seen.load(Ordering::Relaxed), data.len() as u64);
        }
    }
    for op in ["ParcelUpload", "ParcelUploadEx", "ParcelUploadMft"] {
        assert_eq!(server.soap_calls(op), 1, "{op}");
    }
    // A missing file is a local error, and nothing is sent.
    let client = fake_client(&server, Protocol::Soap, None);
    let err = client
        .upload_file(
            &alice,
            &dir.join("nope"),
            "x",
            &UploadRoute::FromHeaders,
            None,
        )
        .await
        .unwrap_err();
    assert!(err.is_io(), "{err}");
    assert_eq!(server.soap_calls("ParcelUpload"), 1);
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn ready_lists_the_inbox_with_sizes_and_statuses_over_both_protocols() {
    let server = FakeServer::start().await.unwrap();
    let bob = key_of(&server, "bob");
    let a = server
        .deliver("bob", "nul\u{0}esc\u{1b}.edi", b"abc".to_vec())
        .unwrap();
    let b = server
        .deliver("bob", "plain.edi", b"hello".to_vec())
        .unwrap();
    for protocol in [Protocol::Soap, Protocol::Rest] {
        let client = fake_client(&server, protocol, None);
        let ready = client.ready(&bob, None).await.unwrap();
        let got: Vec<_> = ready
            .iter()
            .map(|p| (p.parcel_id, p.file_name.as_str(), p.bytes))
            .collect();
        assert_eq!(
            got,
            [(a, "nul\u{0}esc\u{1b}.edi", 3), (b, "plain.edi", 5)],
            "{protocol}"
        );
        assert!(ready
            .iter()
            .all(|p| p.mailbox_id == Some(server.mailbox_of("bob").unwrap().mailbox_id)));
        if protocol == Protocol::Rest {
            assert!(ready
                .iter()
                .all(|p| p.ecgrid_id_to == Some(server.mailbox_of("bob").unwrap().ecgrid_id)));
        }
        // The same listing named by its mailbox (ParcelInBoxEx, mailboxId).
        let mailbox = server.mailbox_of("bob").unwrap().mailbox_id;
        let by_mailbox = client.ready(&bob, Some(mailbox)).await.unwrap();
        assert_eq!(by_mailbox, ready, "{protocol}");
    }
}

/// One canned HTTP exchange on a raw socket: the request as received, and
/// how the server ends it.
#[derive(Clone, Copy, Debug)]
enum Ending {
    /// Writes this response and closes.
    Respond,
    /// Reads the whole request, then resets the connection.
    Reset,
    /// Writes the response in this many pieces, pausing this long between
    /// two.
    Trickle(usize, Duration),
}

/// Reads one request (or response) with its Content-Length body.
async fn read_request(sock: &mut TcpStream) -> Option<Vec<u8>> {
    common::read_http_message(sock, 64 << 20).await
}

/// A raw server answering every request with `response` (or resetting);
/// returns its URL and the requests it received.
async fn raw_server(response: Vec<u8>, ending: Ending) -> (String, Arc<Mutex<Vec<Vec<u8>>>>) {
    raw_server_seq(vec![(response, ending)]).await
}

/// A raw server answering the n-th request with the n-th of `script` (the
/// last one once the script runs out).
async fn raw_server_seq(script: Vec<(Vec<u8>, Ending)>) -> (String, Arc<Mutex<Vec<Vec<u8>>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    let requests = Arc::new(Mutex::new(Vec::new()));
    let log = requests.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let log = log.clone();
            let script = script.clone();
            tokio::spawn(async move {
                let Some(request) = read_request(&mut sock).await else {
                    return;
                };
                let (response, ending) = {
                    let mut log = log.lock().unwrap();
                    log.push(request);
                    script[(log.len() - 1).min(script.len() - 1)].clone()
                };
                match ending {
                    Ending::Respond => {
                        let _ = sock.write_all(&response).await;
                        let _ = sock.shutdown().await;
                    }
                    Ending::Reset => {
                        // SO_LINGER 0: the close sends a reset.
                        let _ = socket2::SockRef::from(&sock).set_linger(Some(Duration::ZERO));
                        drop(sock);
                    }
                    Ending::Trickle(pieces, pause) => {
                        let size = response.len().div_ceil(pieces);
                        for (i, piece) in response.chunks(size).enumerate() {
                            if i > 0 {
                                tokio::time::sleep(pause).await;
                            }
                            if sock.write_all(piece).await.is_err() {
                                return;
                            }
                        }
                        let _ = sock.shutdown().await;
                    }
                }
            });
        }
    });
    (url, requests)
}

fn http_response(content_type: &str, body: &[u8], declared_len: Option<usize>) -> Vec<u8> {
    http_status(200, content_type, body, declared_len)
}

fn http_status(
    status: u16,
    content_type: &str,
    body: &[u8],
    declared_len: Option<usize>,
) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {status} X\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        declared_len.unwrap_or(body.len())
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

fn soap_download_body(content_b64: &str, declared: usize) -> Vec<u8> {
    format!(
        concat!(
            r#"<?xml version="1.0" encoding="utf-8"?><soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/">"#,
            r#"<soap:Body><ParcelDownloadResponse xmlns="https://os.ecgrid.io/"><ParcelDownloadResult>"#,
            r#"<ParcelID>5</ParcelID><FileName>x.edi</FileName><FileDate>2026-11-01T00:00:00</FileDate>"#,
            r#"<Bytes>{}</Bytes><Standard>X12</Standard><Content>{}</Content><routerArchive>false</routerArchive>"#,
            r#"</ParcelDownloadResult></ParcelDownloadResponse></soap:Body></soap:Envelope>"#
        ),
        declared, content_b64
    )
    .into_bytes()
}

fn rest_download_body(content_b64: &str, declared: usize) -> Vec<u8> {
    format!(
        r#"{{"success":true,"data":{{"content":"{content_b64}","parcelId":5,"fileName":"x.edi","bytes":{declared}}}}}"#
    )
    .into_bytes()
}

/// The settings a test changes from the defaults.
#[derive(Clone, Copy, Debug, Default)]
struct Settings {
    retry: Option<RetryPolicy>,
    max_download: Option<u64>,
    max_response: Option<u64>,
}

/// A client of `protocol` at `url` with `settings`.
fn client_at(url: &str, protocol: Protocol, settings: Settings) -> ParcelClient {
    macro_rules! build {
        ($builder:expr) => {{
            let mut builder = $builder;
            if let Some(retry) = settings.retry {
                builder = builder.retry(retry);
            }
            if let Some(n) = settings.max_download {
                builder = builder.max_download_bytes(n);
            }
            if let Some(n) = settings.max_response {
                builder = builder.max_response_bytes(n);
            }
            builder.build().unwrap().into()
        }};
    }
    match protocol {
        Protocol::Soap => build!(Client::builder().endpoint(url)),
        Protocol::Rest => build!(RestClient::builder().base_url(url)),
    }
}

/// A client of `protocol` at `url` that never retries.
fn clients_for(url: &str, protocol: Protocol) -> ParcelClient {
    let retry = Some(RetryPolicy::none());
    client_at(
        url,
        protocol,
        Settings {
            retry,
            ..Settings::default()
        },
    )
}

fn download_answer(
    protocol: Protocol,
    content_b64: &str,
    declared: usize,
) -> (Vec<u8>, &'static str) {
    match protocol {
        Protocol::Soap => (
            soap_download_body(content_b64, declared),
            "text/xml; charset=utf-8",
        ),
        Protocol::Rest => (
            rest_download_body(content_b64, declared),
            "application/json",
        ),
    }
}

#[tokio::test]
async fn raw_download_over_both_protocols() {
    for protocol in [Protocol::Soap, Protocol::Rest] {
        let (body, ct) = download_answer(protocol, "aGVs\\nbG8=".replace("\\n", "\n").as_str(), 5);
        let (url, requests) = raw_server(http_response(ct, &body, None), Ending::Respond).await;
        let client = clients_for(&url, protocol);
        let mut out = Vec::new();
        let got = client
            .download_to(&cred(), 5, &mut out, None)
            .await
            .unwrap();
        assert_eq!(out, b"hello", "{protocol}");
        assert_eq!(got.file_name, "x.edi");
        assert_eq!(requests.lock().unwrap().len(), 1);
    }
}

#[tokio::test]
async fn invalid_base64_is_malformed_and_names_the_offset() {
    for protocol in [Protocol::Soap, Protocol::Rest] {
        let (body, ct) = download_answer(protocol, "aGVsb*8=", 5);
        let (url, _) = raw_server(http_response(ct, &body, None), Ending::Respond).await;
        let client = clients_for(&url, protocol);
        let mut out = Vec::new();
        let err = client
            .download_to(&cred(), 5, &mut out, None)
            .await
            .unwrap_err();
        assert!(err.is_malformed(), "{protocol}: {err}");
        assert!(err.to_string().contains("offset 5"), "{err}");
    }
}

#[tokio::test]
async fn a_body_cut_short_is_an_unknown_outcome() {
    for protocol in [Protocol::Soap, Protocol::Rest] {
        let (body, ct) = download_answer(protocol, &"QUJD".repeat(1000), 3000);
        // Declares the whole length but sends only half of it.
        let cut = http_response(ct, &body[..body.len() / 2], Some(body.len()));
        let (url, requests) = raw_server(cut, Ending::Respond).await;
        // Retries on: a download is still not sent twice.
        let client = client_at(&url, protocol, Settings::default());
        let mut out = Vec::new();
        let err = client
            .download_to(&cred(), 5, &mut out, None)
            .await
            .unwrap_err();
        assert!(err.is_outcome_unknown(), "{protocol}: {err}");
        assert!(err.advice().is_some());
        assert_eq!(requests.lock().unwrap().len(), 1, "never sent twice");
    }
}

#[tokio::test]
async fn the_download_limit_stops_a_large_parcel_and_small_answers_keep_theirs() {
    for protocol in [Protocol::Soap, Protocol::Rest] {
        let (body, ct) = download_answer(protocol, &"QUJD".repeat(100_000), 300_000);
        let (url, _) = raw_server(http_response(ct, &body, None), Ending::Respond).await;
        let limited = client_at(
            &url,
            protocol,
            Settings {
                max_download: Some(100_000),
                ..Settings::default()
            },
        );
        let mut out = Vec::new();
        let err = limited
            .download_to(&cred(), 5, &mut out, None)
            .await
            .unwrap_err();
        assert!(err.is_limit_exceeded(), "{protocol}: {err}");
        assert!(err.to_string().contains("100000"), "{err}");
        // The same 400 KB answer is fine under the default download limit,
        // although it is larger than a small answer may be.
        let roomy = client_at(
            &url,
            protocol,
            Settings {
                max_response: Some(1000),
                ..Settings::default()
            },
        );
        let mut out = Vec::new();
        roomy.download_to(&cred(), 5, &mut out, None).await.unwrap();
        assert_eq!(out.len(), 300_000);
        // The small-answer limit still holds for the rest of the answer.
        let (big_name, _) = download_answer(protocol, "", 0);
        let padded = String::from_utf8(big_name)
            .unwrap()
            .replace("x.edi", &"n".repeat(5000));
        let (url, _) =
            raw_server(http_response(ct, padded.as_bytes(), None), Ending::Respond).await;
        let client = client_at(
            &url,
            protocol,
            Settings {
                max_response: Some(1000),
                ..Settings::default()
            },
        );
        let err = client
            .download_to(&cred(), 5, &mut Vec::new(), None)
            .await
            .unwrap_err();
        assert!(err.is_limit_exceeded(), "{protocol}: {err}");
    }
}

#[tokio::test]
async fn an_upload_reset_after_the_request_is_unknown_and_sent_once() {
    let dir = temp_dir("reset");
    let path = dir.join("order.edi");
    let data = payload(300_000);
    std::fs::write(&path, &data).unwrap();
    for protocol in [Protocol::Soap, Protocol::Rest] {
        let (url, requests) = raw_server(Vec::new(), Ending::Reset).await;
        // Retries on: an upload must still go out once.
        let client = client_at(&url, protocol, Settings::default());
        let err = client
            .upload_file(&cred(), &path, "order.edi", &UploadRoute::FromHeaders, None)
            .await
            .unwrap_err();
        assert!(err.is_outcome_unknown(), "{protocol}: {err}");
        assert!(err.advice().unwrap().contains("outbox"), "{err}");
        let requests = requests.lock().unwrap();
        assert_eq!(requests.len(), 1, "{protocol}: sent once");
        // The server got the file's whole base64, once.
        let text = String::from_utf8_lossy(&requests[0]);
        let b64 = base64_of(&data);
        assert_eq!(text.matches(&b64).count(), 1, "{protocol}");
    }
    std::fs::remove_dir_all(dir).unwrap();
}

fn base64_of(data: &[u8]) -> String {
    let mut out = Vec::new();
    let mut e = ecgridos::wire::stream::Base64Encoder::new();
    e.feed(data, &mut out);
    e.finish(&mut out);
    String::from_utf8(out).unwrap()
}

#[tokio::test]
async fn a_file_that_shrinks_while_uploading_stops_with_a_local_error() {
    let dir = temp_dir("shrink");
    let big = dir.join("big.edi");
    std::fs::write(&big, payload(8 * 1024 * 1024)).unwrap();
    let (url, requests) = raw_server(Vec::new(), Ending::Reset).await;
    let client = clients_for(&url, Protocol::Soap);
    let err = upload_with_shrink(&client, &big).await;
    assert!(err.is_io(), "{err}");
    assert!(err.to_string().contains("changed size"), "{err}");
    // The request could not be complete: the server never read a whole one.
    assert!(requests.lock().unwrap().is_empty());
    std::fs::remove_dir_all(dir).unwrap();
}

/// Uploads `path` while another task truncates it as soon as the upload's
/// progress shows the first piece was read.
async fn upload_with_shrink(client: &ParcelClient, path: &Path) -> ecgridos::Error {
    let p = path.to_path_buf();
    let shrunk = std::sync::atomic::AtomicBool::new(false);
    let progress = move |_n: u64| {
        if !shrunk.swap(true, Ordering::Relaxed) {
            std::fs::OpenOptions::new()
                .write(true)
                .open(&p)
                .unwrap()
                .set_len(10)
                .unwrap();
        }
    };
    client
        .upload_file(
            &cred(),
            path,
            "big.edi",
            &UploadRoute::FromHeaders,
            Some(&progress),
        )
        .await
        .unwrap_err()
}

#[test]
fn a_probe_is_built_around_the_time_of_sending() {
    let sent = SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_000_000);
    let probe = UploadProbe::around("a.edi", 3, sent, Duration::from_secs(60));
    assert_eq!(probe.not_before.to_string(), "2026-11-18T11:05:40Z");
    assert_eq!(probe.not_after.to_string(), "2026-11-18T11:07:40Z");
    let _ = UploadSearch::NotFound;
}

/// A `ParcelInBox` answer whose first file name holds NUL, ESC and BEL as
/// the character references .NET writes for them.
fn listing() -> String {
    let mut a = ParcelIdInfo::default();
    a.parcel_id = 1;
    a.file_name = Some("nul\u{0}esc\u{1b}bell\u{7}.edi".into());
    a.parcel_bytes = 3;
    let mut b = ParcelIdInfo::default();
    b.parcel_id = 2;
    b.file_name = Some("plain.edi".into());
    let mut c = ParcelIdInfoCollection::default();
    c.parcel_id_info_list = Some(ArrayOfParcelIdInfo(vec![Some(a), Some(b)]));
    let mut body = Vec::new();
    ecgridos::wire::write_response(
        &mut body,
        ecgridos::SoapVersion::V11,
        "https://os.ecgrid.io/",
        "ParcelInBox",
        |w| ecgridos::wire::ResultValue::write(&Some(c), w),
    );
    // .NET's way: NUL &#x0;, ESC &#x1B;, and a decimal one for good measure.
    let text = String::from_utf8(body)
        .unwrap()
        .replace('\u{0}', "&#x0;")
        .replace('\u{1b}', "&#x1B;")
        .replace('\u{7}', "&#7;")
        .replace("&#x7;", "&#7;");
    assert!(text.contains("nul&#x0;esc&#x1B;bell&#7;.edi"), "{text}");
    assert!(!text.bytes().any(|b| b < 0x20));
    text
}

#[tokio::test]
async fn control_character_references_in_a_listing_decode() {
    let (url, _) = raw_server(
        http_response("text/xml; charset=utf-8", listing().as_bytes(), None),
        Ending::Respond,
    )
    .await;
    let client = clients_for(&url, Protocol::Soap);
    let ready = client.ready(&cred(), None).await.unwrap();
    let names: Vec<_> = ready.iter().map(|p| p.file_name.as_str()).collect();
    assert_eq!(names, ["nul\u{0}esc\u{1b}bell\u{7}.edi", "plain.edi"]);
}

#[tokio::test]
async fn listings_are_retried_like_any_read() {
    let busy = http_status(503, "text/html", b"<html>busy</html>", None);
    let ok = http_response("text/xml; charset=utf-8", listing().as_bytes(), None);
    let (url, requests) =
        raw_server_seq(vec![(busy, Ending::Respond), (ok, Ending::Respond)]).await;
    let client: ParcelClient = Client::builder()
        .endpoint(&url)
        .retry(RetryPolicy {
            max_attempts: 3,
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(5),
        })
        .build()
        .unwrap()
        .into();
    assert_eq!(client.ready(&cred(), None).await.unwrap().len(), 2);
    assert_eq!(requests.lock().unwrap().len(), 2);
}

/// A parcel client of `protocol` for the fake (or a proxy of it at `via`).
fn fake_client(server: &FakeServer, protocol: Protocol, via: Option<&str>) -> ParcelClient {
    let direct = server.addr().to_string();
    let at = |url: String| match via {
        Some(proxy) => url.replace(&direct, proxy),
        None => url,
    };
    let url = match protocol {
        Protocol::Soap => server.soap_url(),
        Protocol::Rest => server.rest_url(),
    };
    client_at(&at(url), protocol, Settings::default())
}

fn key_of(server: &FakeServer, login: &str) -> Credential {
    Credential::ApiKey(server.user(login).unwrap().api_key.unwrap())
}

#[tokio::test]
async fn upload_route_download_confirm_against_the_fake_over_both_protocols() {
    let server = FakeServer::start().await.unwrap();
    let (alice, bob) = (key_of(&server, "alice"), key_of(&server, "bob"));
    let from = server.mailbox_of("alice").unwrap().ecgrid_id;
    let to = server.mailbox_of("bob").unwrap().ecgrid_id;
    let dir = temp_dir("fake-round-trip");
    let data = payload(20 * 1024 * 1024 + 5);
    let path = dir.join("big.edi");
    std::fs::write(&path, &data).unwrap();
    for protocol in [Protocol::Soap, Protocol::Rest] {
        let client = fake_client(&server, protocol, None);
        let route = UploadRoute::Ids { from, to };
        let id = client
            .upload_file(&alice, &path, "big.edi", &route, None)
            .await
            .unwrap();
        let ready = client.ready(&bob, None).await.unwrap();
        let listed = ready.iter().find(|p| p.parcel_id == id).unwrap();
        assert_eq!(
            (listed.file_name.as_str(), listed.bytes),
            ("big.edi", data.len() as i64)
        );
        let out = dir.join(format!("{protocol}.edi"));
        let mut file = tokio::fs::File::create(&out).await.unwrap();
        let got = client.download_to(&bob, id, &mut file, None).await.unwrap();
        assert_eq!(got.received_bytes, data.len() as u64, "{protocol}");
        assert!(
            std::fs::read(&out).unwrap() == data,
            "{protocol}: bytes differ"
        );
        let info = client.info(&bob, id).await.unwrap();
        assert_eq!(
            info.status,
            Some(ecgridos::api::enums::ParcelStatus::InBoxTransferred)
        );
        assert!(client.confirm(&bob, id).await.unwrap());
        assert!(!client
            .ready(&bob, None)
            .await
            .unwrap()
            .iter()
            .any(|p| p.parcel_id == id));
        let kinds: Vec<_> = server
            .parcel_events(id)
            .iter()
            .map(|e| e.kind.as_str())
            .collect();
        let downloaded = kinds.iter().position(|k| *k == "Downloaded").unwrap();
        let confirmed = kinds.iter().position(|k| *k == "Confirmed").unwrap();
        assert!(downloaded < confirmed, "{kinds:?}");
        assert!(server.parcel(id).unwrap().confirmed);
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn reset_puts_a_downloaded_parcel_back_over_both_protocols() {
    let server = FakeServer::start().await.unwrap();
    let bob = key_of(&server, "bob");
    for protocol in [Protocol::Soap, Protocol::Rest] {
        let id = server.deliver("bob", "in.edi", b"hello".to_vec()).unwrap();
        let client = fake_client(&server, protocol, None);
        let mut out = Vec::new();
        client.download_to(&bob, id, &mut out, None).await.unwrap();
        assert_eq!(out, b"hello");
        assert!(client.reset(&bob, id).await.unwrap(), "{protocol}");
        let info = client.info(&bob, id).await.unwrap();
        assert_eq!(
            info.status,
            Some(ecgridos::api::enums::ParcelStatus::InBoxReady)
        );
        assert_eq!(info.bytes, 5);
    }
}

/// A proxy in front of `upstream` that forwards one whole request, reads the
/// whole answer, and then resets the client's connection instead of passing
/// the answer on. Returns its address and the requests it forwarded.
async fn answer_losing_proxy(upstream: std::net::SocketAddr) -> (String, Arc<Mutex<Vec<Vec<u8>>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let forwarded = Arc::new(Mutex::new(Vec::new()));
    let log = forwarded.clone();
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            let log = log.clone();
            tokio::spawn(async move {
                let Some(request) = read_request(&mut client).await else {
                    return;
                };
                let mut server = TcpStream::connect(upstream).await.unwrap();
                server.write_all(&request).await.unwrap();
                log.lock().unwrap().push(request);
                // The answer comes back to the proxy, and is lost there.
                let _ =
                    tokio::time::timeout(Duration::from_secs(5), read_request(&mut server)).await;
                let _ = socket2::SockRef::from(&client).set_linger(Some(Duration::ZERO));
                drop(client);
            });
        }
    });
    (addr, forwarded)
}

#[tokio::test]
async fn a_lost_upload_answer_is_unknown_sent_once_and_found_in_the_outbox() {
    let server = FakeServer::start().await.unwrap();
    let alice = key_of(&server, "alice");
    let from = server.mailbox_of("alice").unwrap().ecgrid_id;
    let to = server.mailbox_of("bob").unwrap().ecgrid_id;
    let (proxy, forwarded) = answer_losing_proxy(server.addr()).await;
    let dir = temp_dir("lost-answer");
    let data = payload(500_000);
    let path = dir.join("order.edi");
    std::fs::write(&path, &data).unwrap();
    for (n, protocol) in [Protocol::Soap, Protocol::Rest].into_iter().enumerate() {
        let name = format!("order-{protocol}.edi");
        let sent_at = SystemTime::now();
        let lossy = fake_client(&server, protocol, Some(&proxy));
        let err = lossy
            .upload_file(&alice, &path, &name, &UploadRoute::Ids { from, to }, None)
            .await
            .unwrap_err();
        assert!(err.is_outcome_unknown(), "{protocol}: {err}");
        assert_eq!(
            forwarded.lock().unwrap().len(),
            n + 1,
            "{protocol}: sent once"
        );
        // The fake has it: the search finds exactly that parcel.
        let client = fake_client(&server, protocol, None);
        let probe =
            UploadProbe::around(&name, data.len() as u64, sent_at, Duration::from_secs(120));
        let found = match client.find_upload(&alice, &probe).await.unwrap() {
            UploadSearch::Found(p) => p,
            other => panic!("{protocol}: {other:?}"),
        };
        let stored = server.parcel(found.parcel_id).unwrap();
        assert_eq!(stored.file_name, name);
        assert!(stored.bytes == data, "{protocol}");
        // Another name, or another size, is not there.
        let mut other = probe.clone();
        other.file_name = "nothing.edi".into();
        assert_eq!(
            client.find_upload(&alice, &other).await.unwrap(),
            UploadSearch::NotFound
        );
        let mut other = probe.clone();
        other.bytes += 1;
        assert_eq!(
            client.find_upload(&alice, &other).await.unwrap(),
            UploadSearch::NotFound
        );
        // Sent again (by hand), the same file makes the search ambiguous.
        let again = client
            .upload_file(&alice, &path, &name, &UploadRoute::Ids { from, to }, None)
            .await
            .unwrap();
        match client.find_upload(&alice, &probe).await.unwrap() {
            UploadSearch::Ambiguous(all) => {
                let mut ids: Vec<_> = all.iter().map(|p| p.parcel_id).collect();
                ids.sort_unstable();
                let mut expected = vec![found.parcel_id, again];
                expected.sort_unstable();
                assert_eq!(ids, expected, "{protocol}");
            }
            other => panic!("{protocol}: {other:?}"),
        }
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn a_transfer_may_outlast_the_timeout_while_it_moves_but_not_stall() {
    let (body, ct) = download_answer(Protocol::Soap, &"QUJD".repeat(10_000), 30_000);
    let response = http_response(ct, &body, None);
    // Ten pieces 100 ms apart: a second in all, never 400 ms without a byte.
    let (url, _) = raw_server(
        response.clone(),
        Ending::Trickle(10, Duration::from_millis(100)),
    )
    .await;
    let client: ParcelClient = Client::builder()
        .endpoint(&url)
        .timeout(Duration::from_millis(400))
        .build()
        .unwrap()
        .into();
    let mut out = Vec::new();
    client
        .download_to(&cred(), 5, &mut out, None)
        .await
        .unwrap();
    assert_eq!(out.len(), 30_000);
    // Two pieces a second apart: the body stalls beyond the limit.
    let (url, requests) = raw_server(response, Ending::Trickle(2, Duration::from_secs(1))).await;
    let client: ParcelClient = Client::builder()
        .endpoint(&url)
        .timeout(Duration::from_millis(400))
        .build()
        .unwrap()
        .into();
    let err = client
        .download_to(&cred(), 5, &mut Vec::new(), None)
        .await
        .unwrap_err();
    assert!(err.is_outcome_unknown(), "{err}");
    assert!(
        err.to_string()
            .contains("timed out reading the response body"),
        "{err}"
    );
    assert_eq!(requests.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn soap_12_downloads_and_uploads_the_same_way() {
    let server = FakeServer::start().await.unwrap();
    let (alice, bob) = (key_of(&server, "alice"), key_of(&server, "bob"));
    let client: ParcelClient = Client::builder()
        .endpoint(server.soap_url())
        .soap_version(ecgridos::SoapVersion::V12)
        .build()
        .unwrap()
        .into();
    let dir = temp_dir("soap12");
    let data = x12("ALICE", "BOB", &"ST*850*0001~".repeat(1000));
    let path = dir.join("v12.edi");
    std::fs::write(&path, &data).unwrap();
    let id = client
        .upload_file(&alice, &path, "v12.edi", &UploadRoute::FromHeaders, None)
        .await
        .unwrap();
    let mut out = Vec::new();
    let got = client.download_to(&bob, id, &mut out, None).await.unwrap();
    assert_eq!(got.file_name, "v12.edi");
    assert!(out == data);
    std::fs::remove_dir_all(dir).unwrap();
}
