//! The protocol-neutral parcel client: streamed downloads and uploads, their
//! limits and failures, and the upload search, over SOAP and REST.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use ecgridos::api::enums::EdiStandard;
use ecgridos::api::parcel::{ParcelDownload, ParcelInBox, ParcelUpload, ParcelUploadMft};
use ecgridos::api::types::{ArrayOfParcelIdInfo, FileInfo, ParcelIdInfo, ParcelIdInfoCollection};
use ecgridos::fake::FakeServer;
use ecgridos::wire::Base64;
use ecgridos::{
    ApiKey, Client, Credential, ErrorKind, ParcelClient, Protocol, RestClient, RetryPolicy,
    UploadProbe, UploadRoute, UploadSearch,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
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

fn file_info(id: i64, name: &str, content: &[u8], declared: i32) -> FileInfo {
    let mut info = FileInfo::default();
    info.parcel_id = id;
    info.file_name = Some(name.to_string());
    info.bytes = declared;
    info.standard = EdiStandard::X12;
    info.content = Some(Base64(content.to_vec()));
    info
}

async fn soap_fake() -> (FakeServer, ParcelClient) {
    let server = FakeServer::start().await.unwrap();
    let client = Client::builder()
        .endpoint(server.soap_url())
        .build()
        .unwrap();
    (server, ParcelClient::from(client))
}

#[tokio::test]
async fn soap_download_writes_the_exact_bytes_small_and_large() {
    let (server, client) = soap_fake().await;
    let small = payload(1000);
    let large = payload(20 * 1024 * 1024 + 1);
    let (s, l) = (small.clone(), large.clone());
    server.stub::<ParcelDownload>(move |r| {
        let content = if r.parcel_id == 1 { &s } else { &l };
        Ok(Some(file_info(
            r.parcel_id,
            "a.edi",
            content,
            content.len() as i32,
        )))
    });
    let dir = temp_dir("soap-download");
    for (id, expected) in [(1, &small), (2, &large)] {
        let path = dir.join(format!("{id}.edi"));
        let seen = AtomicU64::new(0);
        let progress = |n: u64| seen.store(n, Ordering::Relaxed);
        let mut file = tokio::fs::File::create(&path).await.unwrap();
        let got = client
            .download_to(&cred(), id, &mut file, Some(&progress))
            .await
            .unwrap();
        assert_eq!(got.parcel_id, id);
        assert_eq!(got.file_name, "a.edi");
        assert_eq!(got.declared_bytes, expected.len() as u64);
        assert_eq!(got.received_bytes, expected.len() as u64);
        assert_eq!(seen.load(Ordering::Relaxed), expected.len() as u64);
        assert!(std::fs::read(&path).unwrap() == *expected);
    }
    assert_eq!(client.protocol(), Protocol::Soap);
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn soap_download_with_a_declared_size_that_differs_is_refused() {
    let (server, client) = soap_fake().await;
    server.stub::<ParcelDownload>(|r| Ok(Some(file_info(r.parcel_id, "a.edi", b"12345", 6))));
    let mut out = Vec::new();
    let err = client
        .download_to(&cred(), 9, &mut out, None)
        .await
        .unwrap_err();
    assert!(err.is_size_mismatch(), "{err}");
    assert_eq!(err.kind(), ErrorKind::SizeMismatch);
    assert!(
        err.to_string().contains("declares 6 bytes but 5 arrived"),
        "{err}"
    );
}

#[tokio::test]
async fn soap_download_fault_is_a_fault() {
    let (_server, client) = soap_fake().await;
    // No stub: the fake answers with a fault naming the operation.
    let mut out = Vec::new();
    let err = client
        .download_to(&cred(), 9, &mut out, None)
        .await
        .unwrap_err();
    assert!(err.is_fault(), "{err}");
    assert!(out.is_empty());
}

#[tokio::test]
async fn soap_upload_streams_the_file_once() {
    let (server, client) = soap_fake().await;
    let received = Arc::new(Mutex::new(Vec::new()));
    let log = received.clone();
    server.stub::<ParcelUploadMft>(move |r| {
        log.lock().unwrap().push((
            r.file_name.clone(),
            r.bytes,
            r.content.clone().unwrap_or_default().0,
            r.ec_grid_id_from,
            r.ec_grid_id_to,
        ));
        Ok(4242)
    });
    let dir = temp_dir("soap-upload");
    let path = dir.join("out.edi");
    let data = payload(1024 * 1024 + 2);
    std::fs::write(&path, &data).unwrap();
    let seen = AtomicU64::new(0);
    let progress = |n: u64| seen.store(n, Ordering::Relaxed);
    let id = client
        .upload_file(
            &cred(),
            &path,
            "out & <1>.edi",
            &UploadRoute::Ids { from: 11, to: 22 },
            Some(&progress),
        )
        .await
        .unwrap();
    assert_eq!(id, 4242);
    let received = received.lock().unwrap();
    assert_eq!(received.len(), 1);
    let (name, bytes, content, from, to) = &received[0];
    assert_eq!(name.as_deref(), Some("out & <1>.edi"));
    assert_eq!(*bytes, data.len() as i32);
    assert!(*content == data);
    assert_eq!((*from, *to), (11, 22));
    assert_eq!(server.soap_calls("ParcelUploadMft"), 1);
    assert_eq!(seen.load(Ordering::Relaxed), data.len() as u64);
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn soap_upload_from_headers_and_an_empty_file() {
    let (server, client) = soap_fake().await;
    let received = Arc::new(Mutex::new(Vec::new()));
    let log = received.clone();
    server.stub::<ParcelUpload>(move |r| {
        log.lock()
            .unwrap()
            .push((r.bytes, r.content.unwrap_or_default().0));
        Ok(7)
    });
    let dir = temp_dir("soap-upload-empty");
    let path = dir.join("empty.edi");
    std::fs::write(&path, b"").unwrap();
    let id = client
        .upload_file(&cred(), &path, "empty.edi", &UploadRoute::FromHeaders, None)
        .await
        .unwrap();
    assert_eq!(id, 7);
    assert_eq!(received.lock().unwrap().as_slice(), [(0, Vec::new())]);
    // A missing file is a local error, and nothing is sent.
    let err = client
        .upload_file(
            &cred(),
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
async fn soap_ready_lists_the_inbox_with_sizes_and_statuses() {
    let (server, client) = soap_fake().await;
    server.stub::<ParcelInBox>(|_| {
        let mut a = ParcelIdInfo::default();
        a.parcel_id = 1;
        a.file_name = Some("nul\u{0}esc\u{1b}.edi".into());
        a.parcel_bytes = 3;
        a.status_code = Some("InBoxReady".into());
        let mut b = ParcelIdInfo::default();
        b.parcel_id = 2;
        b.file_name = Some("plain.edi".into());
        let mut c = ParcelIdInfoCollection::default();
        c.parcel_id_info_list = Some(ArrayOfParcelIdInfo(vec![Some(a), Some(b)]));
        Ok(Some(c))
    });
    let ready = client.ready(&cred(), None).await.unwrap();
    let names: Vec<_> = ready.iter().map(|p| p.file_name.as_str()).collect();
    assert_eq!(names, ["nul\u{0}esc\u{1b}.edi", "plain.edi"]);
    assert_eq!(ready[0].bytes, 3);
    assert_eq!(
        ready[0].status,
        Some(ecgridos::api::enums::ParcelStatus::InBoxReady)
    );
}

/// One canned HTTP exchange on a raw socket: the request as received, and
/// how the server ends it.
#[derive(Clone, Copy, Debug)]
enum Ending {
    /// Writes this response and closes.
    Respond,
    /// Reads the whole request, then resets the connection.
    Reset,
}

/// Reads one request with its Content-Length body (no size bound).
async fn read_request(sock: &mut TcpStream) -> Option<Vec<u8>> {
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let n = sock.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            if buf.len() >= end + 4 + len {
                return Some(buf);
            }
        }
    }
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

/// Both protocols against one raw server: (client, body of a download
/// answer with this base64 content and declared size, its content type).
fn clients_for(url: &str, protocol: Protocol) -> ParcelClient {
    match protocol {
        Protocol::Soap => Client::builder()
            .endpoint(url)
            .retry(RetryPolicy::none())
            .build()
            .unwrap()
            .into(),
        Protocol::Rest => RestClient::builder()
            .base_url(url)
            .retry(RetryPolicy::none())
            .build()
            .unwrap()
            .into(),
    }
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
        let client: ParcelClient = match protocol {
            Protocol::Soap => Client::builder().endpoint(&url).build().unwrap().into(),
            Protocol::Rest => RestClient::builder().base_url(&url).build().unwrap().into(),
        };
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
        let limited: ParcelClient = match protocol {
            Protocol::Soap => Client::builder()
                .endpoint(&url)
                .max_download_bytes(100_000)
                .build()
                .unwrap()
                .into(),
            Protocol::Rest => RestClient::builder()
                .base_url(&url)
                .max_download_bytes(100_000)
                .build()
                .unwrap()
                .into(),
        };
        let mut out = Vec::new();
        let err = limited
            .download_to(&cred(), 5, &mut out, None)
            .await
            .unwrap_err();
        assert!(err.is_limit_exceeded(), "{protocol}: {err}");
        assert!(err.to_string().contains("100000"), "{err}");
        // The same 400 KB answer is fine under the default download limit,
        // although it is larger than a small answer may be.
        let roomy: ParcelClient = match protocol {
            Protocol::Soap => Client::builder()
                .endpoint(&url)
                .max_response_bytes(1000)
                .build()
                .unwrap()
                .into(),
            Protocol::Rest => RestClient::builder()
                .base_url(&url)
                .max_response_bytes(1000)
                .build()
                .unwrap()
                .into(),
        };
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
        let client: ParcelClient = match protocol {
            Protocol::Soap => Client::builder()
                .endpoint(&url)
                .max_response_bytes(1000)
                .build()
                .unwrap()
                .into(),
            Protocol::Rest => RestClient::builder()
                .base_url(&url)
                .max_response_bytes(1000)
                .build()
                .unwrap()
                .into(),
        };
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
        let client: ParcelClient = match protocol {
            Protocol::Soap => Client::builder().endpoint(&url).build().unwrap().into(),
            Protocol::Rest => RestClient::builder().base_url(&url).build().unwrap().into(),
        };
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
    let text = String::from_utf8(body)
        .unwrap()
        .replace('\u{0}', "&#x0;")
        .replace('\u{1b}', "&#x1B;")
        .replace('\u{7}', "&#7;");
    assert!(text.contains("nul&#x0;esc&#x1B;bell&#7;.edi"));
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
