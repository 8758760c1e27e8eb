//! `ecgridos record` (a recording pass-through SOAP proxy, spawned as the
//! real binary) between clients and the in-process fake or scripted loopback
//! upstreams, and `ecgridos replay` of what it recorded.

#![cfg(feature = "cli")]

#[path = "cli_support/mod.rs"]
mod cli_support;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::Engine as _;
use ecgridos::api::{request::find, Params};
use ecgridos::fake::{FakeServer, SeedUser};
use ecgridos::{ApiKey, Client, Password, UserId};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use cli_support::ecgridos;

/// Secrets seeded into the fake: none may appear in a recording.
const SENTINEL_PASSWORD: &str = "Sentinel-Password-7f3a9c";
const SENTINEL_KEY: &str = "SentinelApiKey4d1e8b2c6a";

fn tempfile(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "ecgridos-record-{}-{:08x}",
        std::process::id(),
        fastrand::u32(..)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

/// A running `ecgridos record` and its ready line.
struct Proxy {
    child: Option<Child>,
    soap_url: String,
    addr: String,
    out: PathBuf,
}

impl Proxy {
    fn start(upstream: &str) -> Proxy {
        Proxy::start_with(upstream, &[])
    }

    /// With more options (the network options for the upstream).
    fn start_with(upstream: &str, extra: &[&str]) -> Proxy {
        Proxy::start_configured(upstream, extra, |_| {})
    }

    /// With more options, and `configure` applied to the command.
    fn start_configured(
        upstream: &str,
        extra: &[&str],
        configure: impl FnOnce(&mut Command),
    ) -> Proxy {
        let out = tempfile("calls.jsonl");
        let mut args = vec![
            "record",
            "--listen",
            "127.0.0.1:0",
            "--upstream",
            upstream,
            "--out",
            out.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        let mut cmd = ecgridos(&args);
        configure(&mut cmd);
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let ready: Value = serde_json::from_str(&line).expect("a ready line");
        Proxy {
            child: Some(child),
            soap_url: ready["soap_url"].as_str().unwrap().to_string(),
            addr: ready["listen"].as_str().unwrap().to_string(),
            out,
        }
    }

    /// The proxy's peak resident set size (VmHWM), in kB.
    fn peak_rss_kb(&self) -> u64 {
        let pid = self.child.as_ref().unwrap().id();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    }

    /// SIGTERM; waits for a clean exit and returns the recording's bytes and
    /// its records.
    async fn stop(self) -> (Vec<u8>, Vec<Value>) {
        self.stop_with("-TERM").await
    }

    /// Like [`stop`](Self::stop), with another signal.
    async fn stop_with(mut self, signal: &str) -> (Vec<u8>, Vec<Value>) {
        let mut child = self.child.take().unwrap();
        let pid = child.id().to_string();
        assert!(Command::new("kill")
            .args([signal, &pid])
            .status()
            .unwrap()
            .success());
        let status = tokio::task::spawn_blocking(move || child.wait().unwrap())
            .await
            .unwrap();
        assert_eq!(status.code(), Some(0), "record exits 0 on {signal}");
        let bytes = std::fs::read(&self.out).unwrap();
        let records = String::from_utf8(bytes.clone())
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).expect("one JSON document a line"))
            .collect();
        (bytes, records)
    }
}

impl Drop for Proxy {
    /// A test that failed half-way leaves no proxy running.
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn sentinel_fake() -> ecgridos::fake::FakeServerBuilder {
    let users: Vec<SeedUser> = serde_json::from_value(json!([
        {"user_id": 7, "login": "root", "password": SENTINEL_PASSWORD, "auth_level": "Root",
         "api_key": SENTINEL_KEY},
        {"user_id": 8, "login": "carol", "password": "carol-pw-1", "auth_level": "MailboxUser",
         "mailbox_id": 101},
    ]))
    .unwrap();
    FakeServer::builder().users(users)
}

fn assert_absent(bytes: &[u8], secret: &str) {
    let text = String::from_utf8_lossy(bytes);
    for form in cli_support::secret_forms(secret) {
        assert!(!text.contains(&form), "a secret leaked as {form:?}");
    }
}

fn operations(records: &[Value]) -> Vec<&str> {
    records
        .iter()
        .map(|r| r["operation"].as_str().unwrap_or("-"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_crate_through_the_proxy_is_recorded_without_a_secret() {
    let fake = sentinel_fake().start().await.unwrap();
    let proxy = Proxy::start(&fake.soap_url());
    let client = Client::builder().endpoint(&proxy.soap_url).build().unwrap();

    let version = client.version().await.unwrap();
    let session = client
        .login("root", &Password::new(SENTINEL_PASSWORD))
        .await
        .unwrap();
    let me = client.who_am_i(&session).await.unwrap();
    assert_eq!(me.user_id, 7);
    let carol = UserId::from(8);
    let old_key = client.user_get_api_key(&session, carol).await.unwrap();
    let new_key = client.generate_api_key(&session, carol).await.unwrap();
    let by_key = client.who_am_i(&ApiKey::new(SENTINEL_KEY)).await.unwrap();
    assert_eq!(by_key.user_id, 7);
    let refused = client
        .who_am_i(&ApiKey::new("no-such-key-xyz"))
        .await
        .unwrap_err();
    assert!(refused.is_authentication());
    // A call by name, with a typed parameter, as `ecgridos call` makes it.
    let mut params = Params::new();
    params.set("SessionID", session.expose());
    params.set("UserID", "8");
    client
        .call_json(find("UserGetAPIKey").unwrap(), &params)
        .await
        .unwrap();
    assert!(client.logout(&session).await.unwrap());

    let out = proxy.out.clone();
    let (bytes, records) = proxy.stop().await;
    assert_eq!(
        operations(&records),
        [
            "Version",
            "Login",
            "WhoAmI",
            "UserGetAPIKey",
            "GenerateAPIKey",
            "WhoAmI",
            "WhoAmI",
            "UserGetAPIKey",
            "Logout"
        ]
    );
    for secret in [
        SENTINEL_PASSWORD,
        SENTINEL_KEY,
        session.expose(),
        old_key.expose(),
        new_key.expose(),
        "no-such-key-xyz",
    ] {
        assert_absent(&bytes, secret);
    }
    for r in &records {
        assert_eq!(r["outcome"], "complete", "{r}");
        assert_eq!(r["protocol"], "1.1");
        assert_eq!(r["method"], "POST");
        assert!(r["time"].as_str().unwrap().ends_with('Z'));
        assert!(r["duration_ms"].as_f64().unwrap() >= 0.0);
    }
    assert_eq!(records[0]["result"], json!(version));
    assert_eq!(records[0]["status"], 200);
    // One session, one fingerprint: from Login's result to Logout.
    let fp = records[1]["result"].as_str().unwrap();
    assert!(fp.starts_with("<secret:") && fp.len() == "<secret:12345678>".len());
    assert_eq!(records[2]["parameters"]["SessionID"], fp);
    assert_eq!(records[8]["parameters"]["SessionID"], fp);
    assert_eq!(records[1]["parameters"]["LoginName"], "root");
    assert!(records[1]["parameters"]["Password"]
        .as_str()
        .unwrap()
        .starts_with("<secret:"));
    // The key used as a credential is another secret, with its own print.
    assert_ne!(records[5]["parameters"]["SessionID"], fp);
    // Results in the contract's JSON form, credentials fingerprinted.
    assert_eq!(records[2]["result"]["UserID"], 7);
    assert_eq!(records[2]["result"]["LoginName"], "root");
    assert_eq!(records[2]["result"]["SessionID"], fp);
    assert_eq!(records[3]["parameters"]["UserID"], 8);
    let old = records[3]["result"].as_str().unwrap();
    let new = records[4]["result"].as_str().unwrap();
    assert!(old.starts_with("<secret:") && new.starts_with("<secret:"));
    assert_ne!(old, new, "the rotation shows as a new key");
    assert_eq!(records[7]["result"], new);
    assert_eq!(records[6]["status"], 500);
    assert_eq!(records[6]["fault"]["category"], "Authentication");
    assert!(records[6].get("result").is_none());
    // Logout's result as `ecgridos call` prints it (the fake answers 1).
    assert!(
        records[8]["result"] == true || records[8]["result"] == 1,
        "{}",
        records[8]
    );
    // The file is the owner's alone.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&out).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    fake.shutdown().await;
}

/// What a scripted upstream saw of one request.
#[derive(Debug)]
struct Seen {
    declared: usize,
    received: usize,
    closed_early: bool,
}

/// Reads a request head; returns the declared length and the body bytes
/// already read past the head.
async fn read_head(sock: &mut TcpStream) -> Option<(String, usize, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        let n = sock.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let len = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            return Some((head, len, buf[end + 4..].to_vec()));
        }
    }
}

/// Reads a request body of `declared` bytes (some already in `got`),
/// feeding each piece to `each`; reports whether the peer closed first.
async fn read_body(
    sock: &mut TcpStream,
    declared: usize,
    got: Vec<u8>,
    mut each: impl FnMut(&[u8]),
) -> Seen {
    each(&got);
    let mut received = got.len();
    let mut chunk = vec![0u8; 64 * 1024];
    while received < declared {
        match sock.read(&mut chunk).await {
            Ok(0) | Err(_) => {
                return Seen {
                    declared,
                    received,
                    closed_early: true,
                }
            }
            Ok(n) => {
                each(&chunk[..n]);
                received += n;
            }
        }
    }
    Seen {
        declared,
        received,
        closed_early: false,
    }
}

/// The parcel's first bytes: an X12 interchange header from carol's
/// ECGrid ID to the fake's trading partner, so that the fake routes it.
const ISA: &[u8] = b"ISA*00*          *00*          *ZZ*CAROL          *ZZ*PARTNER        \
*261123*1200*U*00401*000000001*0*P*>~";

/// A deterministic parcel of `len` bytes from `offset`, produced piece by
/// piece: the header, then bytes of every value.
fn parcel_piece(offset: usize, len: usize) -> Vec<u8> {
    (offset..offset + len)
        .map(|i| match ISA.get(i) {
            Some(b) => *b,
            None => (i.wrapping_mul(2_654_435_761) >> 13) as u8,
        })
        .collect()
}

const PARCEL: usize = 50 * 1024 * 1024;
/// Parcel bytes per base64 piece (a multiple of 3).
const PIECE: usize = 3 * 64 * 1024;

fn parcel_sha256() -> String {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    let mut off = 0;
    while off < PARCEL {
        let n = PIECE.min(PARCEL - off);
        ctx.update(&parcel_piece(off, n));
        off += n;
    }
    hex(ctx.finish().as_ref())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Writes the parcel as base64, piece by piece.
async fn write_parcel_base64(sock: &mut TcpStream) {
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut off = 0;
    while off < PARCEL {
        let n = PIECE.min(PARCEL - off);
        sock.write_all(b64.encode(parcel_piece(off, n)).as_bytes())
            .await
            .unwrap();
        off += n;
    }
}

fn base64_len(n: usize) -> usize {
    n.div_ceil(3) * 4
}

const NS: &str = "https://os.ecgrid.io/";

fn envelope_parts(op: &str, params: &str) -> (String, String) {
    (
        format!(
            "<?xml version=\"1.0\" encoding=\"utf-8\"?><soap:Envelope \
             xmlns:soap=\"http://schemas.xmlsoap.org/soap/envelope/\"><soap:Body>\
             <{op} xmlns=\"{NS}\">{params}"
        ),
        format!("</{op}></soap:Body></soap:Envelope>"),
    )
}

fn response_parts(op: &str) -> (String, String) {
    (
        format!(
            "<?xml version=\"1.0\" encoding=\"utf-8\"?><soap:Envelope \
             xmlns:soap=\"http://schemas.xmlsoap.org/soap/envelope/\"><soap:Body>\
             <{op}Response xmlns=\"{NS}\"><{op}Result>"
        ),
        format!("</{op}Result></{op}Response></soap:Body></soap:Envelope>"),
    )
}

/// Sends a SOAP 1.1 request whose body is `head`, the parcel as base64
/// (when `parcel`), and `tail`.
async fn send_request(sock: &mut TcpStream, op: &str, head: &str, tail: &str, parcel: bool) {
    let len = head.len() + tail.len() + if parcel { base64_len(PARCEL) } else { 0 };
    let start = format!(
        "POST /v4.1/prod/ECGridOS.asmx HTTP/1.1\r\nHost: x\r\nContent-Type: text/xml; \
         charset=utf-8\r\nSOAPAction: \"{NS}{op}\"\r\nContent-Length: {len}\r\n\r\n{head}"
    );
    sock.write_all(start.as_bytes()).await.unwrap();
    if parcel {
        write_parcel_base64(sock).await;
    }
    sock.write_all(tail.as_bytes()).await.unwrap();
}

/// Reads a whole response (Content-Length framed); returns the status, the
/// body length and a hash of the body.
async fn read_response(sock: &mut TcpStream) -> (u16, usize, usize) {
    let (head, len, got) = read_head(sock).await.expect("a response head");
    let status = head[9..12].parse().unwrap();
    let seen = read_body(sock, len, got, |_| {}).await;
    (status, seen.received, len)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_50_mb_parcel_streams_through_both_ways_in_bounded_memory() {
    let users: Vec<SeedUser> = serde_json::from_value(json!([
        {"user_id": 8, "login": "carol", "password": "carol-pw-1", "auth_level": "MailboxUser",
         "mailbox_id": 101, "api_key": SENTINEL_KEY},
    ]))
    .unwrap();
    let fake = FakeServer::builder().users(users).start().await.unwrap();
    let proxy = Proxy::start(&fake.soap_url());
    let baseline = proxy.peak_rss_kb();

    // An upload, streamed by the client piece by piece.
    let mut sock = TcpStream::connect(&proxy.addr).await.unwrap();
    let (h, t) = envelope_parts(
        "ParcelUpload",
        &format!(
            "<SessionID>{SENTINEL_KEY}</SessionID><FileName>big.edi</FileName>\
             <Bytes>{PARCEL}</Bytes><Content>"
        ),
    );
    let t = format!("</Content>{t}");
    send_request(&mut sock, "ParcelUpload", &h, &t, true).await;
    let (status, _, _) = read_response(&mut sock).await;
    assert_eq!(status, 200);
    drop(sock);

    // A download of a parcel of the same bytes delivered to carol.
    let mut parcel = Vec::with_capacity(PARCEL);
    let mut off = 0;
    while off < PARCEL {
        let n = PIECE.min(PARCEL - off);
        parcel.extend_from_slice(&parcel_piece(off, n));
        off += n;
    }
    let inbound = fake.deliver("carol", "in.edi", parcel).unwrap();
    let mut sock = TcpStream::connect(&proxy.addr).await.unwrap();
    let (h, t) = envelope_parts(
        "ParcelDownload",
        &format!("<SessionID>{SENTINEL_KEY}</SessionID><ParcelID>{inbound}</ParcelID>"),
    );
    send_request(&mut sock, "ParcelDownload", &h, &t, false).await;
    let (status, received, declared) = read_response(&mut sock).await;
    assert_eq!(status, 200);
    assert_eq!(received, declared);
    assert!(received > base64_len(PARCEL));
    drop(sock);

    let peak = proxy.peak_rss_kb();
    println!(
        "record: peak RSS {:.1} MB after a 50 MB upload and download (at start {:.1} MB)",
        peak as f64 / 1024.0,
        baseline as f64 / 1024.0
    );
    assert!(peak < 64 * 1024, "peak RSS {peak} kB");

    let (bytes, records) = proxy.stop().await;
    assert!(bytes.len() < 10_000, "no content in the recording");
    assert_absent(&bytes, SENTINEL_KEY);
    let sha = parcel_sha256();
    assert_eq!(operations(&records), ["ParcelUpload", "ParcelDownload"]);
    let content = json!({"bytes": PARCEL, "sha256": sha});
    assert_eq!(records[0]["parameters"]["Content"], content, "{records:?}");
    assert_eq!(records[0]["parameters"]["Bytes"], PARCEL);
    assert_eq!(records[0]["parameters"]["FileName"], "big.edi");
    let uploaded = records[0]["result"].as_i64().expect("a parcel ID");
    // The fake received the parcel unchanged.
    let stored = fake.parcel(uploaded).unwrap().bytes;
    assert_eq!(
        hex(ring::digest::digest(&ring::digest::SHA256, &stored).as_ref()),
        sha
    );
    assert_eq!(records[1]["parameters"]["ParcelID"], inbound);
    assert_eq!(records[1]["result"]["Content"], content, "{records:?}");
    assert_eq!(records[1]["result"]["FileName"], "in.edi");
    assert_eq!(records[1]["result"]["Bytes"], PARCEL);
    assert!(records[1]["response_bytes"].as_u64().unwrap() > base64_len(PARCEL) as u64);
    fake.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drops_on_either_side_are_forwarded_and_recorded() {
    let upstream = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let upstream_url = format!(
        "http://{}/v4.1/prod/ECGridOS.asmx",
        upstream.local_addr().unwrap()
    );
    let (seen_tx, mut seen_rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let (mut sock, _) = upstream.accept().await.unwrap();
            let seen_tx = seen_tx.clone();
            tokio::spawn(async move {
                let Some((head, len, got)) = read_head(&mut sock).await else {
                    return;
                };
                let seen = read_body(&mut sock, len, got, |_| {}).await;
                let closed_early = seen.closed_early;
                let _ = seen_tx.send(seen);
                if closed_early {
                    return;
                }
                if head.contains("version") {
                    // Promises 5000 bytes, sends 1000, and goes away.
                    let (h, _) = response_parts("Version");
                    let mut reply = format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: text/xml; charset=utf-8\r\n\
                         Content-Length: 5000\r\n\r\n{h}"
                    )
                    .into_bytes();
                    reply.resize(reply.len() + 1000 - h.len(), b'x');
                    sock.write_all(&reply).await.unwrap();
                }
            });
        }
    });
    let proxy = Proxy::start(&upstream_url);

    // A client that sends half a request and goes away.
    let mut sock = TcpStream::connect(&proxy.addr).await.unwrap();
    let (h, _) = envelope_parts("WhoAmI", "<SessionID>half-sent-session-99</SessionID>");
    let start = format!(
        "POST /v4.1/prod/ECGridOS.asmx HTTP/1.1\r\nHost: x\r\nContent-Type: text/xml; \
         charset=utf-8\r\nSOAPAction: \"{NS}WhoAmI\"\r\nContent-Length: 100000\r\n\r\n{h}"
    );
    sock.write_all(start.as_bytes()).await.unwrap();
    sock.write_all(&[b' '; 20_000]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    drop(sock);
    let seen = tokio::time::timeout(Duration::from_secs(10), seen_rx.recv())
        .await
        .expect("the upstream saw the drop")
        .unwrap();
    assert!(seen.closed_early, "{seen:?}");
    assert_eq!(seen.declared, 100_000);
    assert!(seen.received < 100_000, "{seen:?}");

    // An upstream that drops mid-response: the client sees a drop too.
    let mut sock = TcpStream::connect(&proxy.addr).await.unwrap();
    let (h, t) = envelope_parts("Version", "");
    send_request(&mut sock, "Version", &h, &t, false).await;
    let (head, len, got) = read_head(&mut sock).await.unwrap();
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert_eq!(len, 5000);
    let client_side = read_body(&mut sock, len, got, |_| {}).await;
    assert!(client_side.closed_early, "{client_side:?}");
    assert_eq!(client_side.received, 1000);

    let (bytes, records) = proxy.stop_with("-INT").await;
    assert_absent(&bytes, "half-sent-session-99");
    assert_eq!(records.len(), 2, "{records:?}");
    let of = |op: &str| records.iter().find(|r| r["operation"] == op).unwrap();
    assert_eq!(of("WhoAmI")["outcome"], "client_dropped");
    assert_eq!(of("WhoAmI")["request_complete"], false);
    assert_eq!(of("Version")["outcome"], "upstream_dropped");
    assert_eq!(of("Version")["status"], 200);
    assert!(of("Version").get("result").is_none());
}

#[tokio::test]
async fn record_refuses_an_upstream_it_cannot_use_before_listening() {
    let out = tempfile("refused.jsonl");
    for upstream in [
        "ftp://example.com/x",
        "http://example.com/ECGridOS.asmx",
        "not a url",
    ] {
        let output = cli_support::run(ecgridos(&[
            "record",
            "--upstream",
            upstream,
            "--out",
            out.to_str().unwrap(),
        ]))
        .await;
        assert_eq!(output.status.code(), Some(2), "{upstream}");
        assert!(output.stdout.is_empty(), "no ready line for {upstream}");
        assert!(!out.exists(), "no recording is opened for {upstream}");
    }
}

/// Records a session of the crate's client against `fake` through the
/// proxy: reads, a refused credential, one key rotation.
async fn record_session(fake: &FakeServer) -> PathBuf {
    let proxy = Proxy::start(&fake.soap_url());
    let client = Client::builder().endpoint(&proxy.soap_url).build().unwrap();
    let key = ApiKey::new(SENTINEL_KEY);
    client.version().await.unwrap();
    let session = client
        .login("root", &Password::new(SENTINEL_PASSWORD))
        .await
        .unwrap();
    client.who_am_i(&key).await.unwrap();
    client
        .user_get_api_key(&key, UserId::from(8))
        .await
        .unwrap();
    client
        .who_am_i(&ApiKey::new("no-such-key-xyz"))
        .await
        .unwrap_err();
    client
        .generate_api_key(&session, UserId::from(8))
        .await
        .unwrap();
    let unknown = client
        .user_get_api_key(&session, UserId::from(999_999))
        .await
        .unwrap_err();
    assert_eq!(unknown.kind(), ecgridos::ErrorKind::NotFound);
    client.logout(&session).await.unwrap();
    let out = proxy.out.clone();
    let (_, records) = proxy.stop().await;
    assert_eq!(records.len(), 8);
    out
}

/// `ecgridos replay` with root's key, over `over`, against `fake`.
async fn replay(fake: &FakeServer, file: &Path, over: &str, extra: &[&str]) -> (i32, Value) {
    let mut args = vec!["replay", file.to_str().unwrap(), "--over", over, "--json"];
    args.extend_from_slice(extra);
    let rest = fake.rest_url();
    let soap = fake.soap_url();
    args.extend_from_slice(&["--rest-url", &rest, "--endpoint", &soap]);
    let mut cmd = ecgridos(&args);
    cmd.env("ECGRID_API_KEY", SENTINEL_KEY);
    let output = cli_support::run(cmd).await;
    let stdout = String::from_utf8(output.stdout).unwrap();
    let report = serde_json::from_str(&stdout).unwrap_or_else(|_| {
        panic!(
            "not a JSON report: {stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        )
    });
    (output.status.code().unwrap(), report)
}

fn statuses(report: &Value) -> Vec<(String, String)> {
    report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["operation"].as_str().unwrap_or("-").to_string(),
                s["status"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recording_replays_over_rest_and_soap_without_differences() {
    let fake = sentinel_fake().start().await.unwrap();
    let file = record_session(&fake).await;
    let expected = [
        ("Version", "same"),
        ("Login", "skipped"),
        ("WhoAmI", "same"),
        ("UserGetAPIKey", "same"),
        ("WhoAmI", "skipped"),
        ("GenerateAPIKey", "skipped_write"),
        ("UserGetAPIKey", "same"),
        ("Logout", "skipped"),
    ];
    let expected: Vec<(String, String)> = expected
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    for over in ["soap", "rest"] {
        let rotations = fake.rotations(8);
        let (code, report) = replay(&fake, &file, over, &[]).await;
        assert_eq!(statuses(&report), expected, "over {over}: {report:#}");
        assert_eq!(code, 0, "over {over}: {report:#}");
        assert_eq!(report["over"], over);
        assert_eq!(fake.rotations(8), rotations, "no write is sent by default");
    }
    fake.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_are_replayed_only_against_a_loopback_fake_and_once() {
    let fake = sentinel_fake().start().await.unwrap();
    let file = record_session(&fake).await;

    // Not loopback: refused before anything is sent (exit 2).
    let rotations = fake.rotations(8);
    for over in ["rest", "soap"] {
        let mut cmd = ecgridos(&[
            "replay",
            file.to_str().unwrap(),
            "--over",
            over,
            "--allow-writes",
            "--rest-url",
            "https://ecgrid.example.invalid",
            "--endpoint",
            "https://ecgrid.example.invalid/v4.1/prod/ECGridOS.asmx",
        ]);
        cmd.env("ECGRID_API_KEY", SENTINEL_KEY);
        let output = cli_support::run(cmd).await;
        assert_eq!(output.status.code(), Some(2), "over {over}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("loopback"), "{stderr}");
        assert!(output.stdout.is_empty());
    }

    // Against the fake: the recorded rotation is sent once, and compares
    // (a new key against a new key: by presence).
    let rest_calls = fake.rest_calls("key-generate");
    let (code, report) = replay(&fake, &file, "rest", &["--allow-writes"]).await;
    assert_eq!(code, 0, "{report:#}");
    let statuses = statuses(&report);
    assert_eq!(statuses[5], ("GenerateAPIKey".into(), "same".into()));
    assert_eq!(fake.rotations(8), rotations + 1, "sent once");
    assert_eq!(fake.rest_calls("key-generate"), rest_calls + 1);
    // Login and Logout stay the replayer's own business.
    assert_eq!(statuses[1].1, "skipped");
    assert_eq!(statuses[7].1, "skipped");
    fake.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_answer_is_reported_classified_and_fails_the_replay() {
    let fake = sentinel_fake().start().await.unwrap();
    let file = record_session(&fake).await;
    fake.shutdown().await;
    // The same service, but REST answers WhoAmI with another login name.
    let changed = sentinel_fake()
        .rest_override("/v2/users/me", "/data/login", "root-renamed")
        .start()
        .await
        .unwrap();
    let junit = tempfile("replay.xml");
    let (code, report) = replay(
        &changed,
        &file,
        "rest",
        &["--junit", junit.to_str().unwrap()],
    )
    .await;
    assert_eq!(code, 6, "{report:#}");
    let who = &report["steps"][2];
    assert_eq!(who["operation"], "WhoAmI");
    assert_eq!(who["status"], "differs");
    let fields = who["diff"]["fields"].as_array().unwrap();
    let login = fields.iter().find(|f| f["path"] == "LoginName").unwrap();
    assert_eq!(login["class"], "value_differs", "{login}");
    assert_eq!(login["soap"], "root");
    assert_eq!(login["rest"], "root-renamed");
    // Only that step differs.
    let differing: Vec<_> = report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["status"] == "differs")
        .collect();
    assert_eq!(differing.len(), 1, "{report:#}");
    // The JUnit file says so too, and parses.
    let xml = std::fs::read_to_string(&junit).unwrap();
    let doc = roxmltree::Document::parse(&xml).unwrap();
    let suite = doc
        .descendants()
        .find(|n| n.has_tag_name("testsuite"))
        .unwrap();
    assert_eq!(suite.attribute("failures"), Some("1"));
    assert_eq!(suite.attribute("tests"), Some("8"));
    let failed: Vec<_> = doc
        .descendants()
        .filter(|n| n.has_tag_name("failure"))
        .map(|n| n.parent().unwrap().attribute("name").unwrap().to_string())
        .collect();
    assert_eq!(failed, ["line 3 WhoAmI"]);
    assert!(xml.contains("root-renamed"));
    assert_absent(xml.as_bytes(), SENTINEL_KEY);

    // SOAP answers are untouched: the same recording replays clean there.
    let (code, report) = replay(&changed, &file, "soap", &[]).await;
    assert_eq!(code, 0, "{report:#}");

    // The table names the difference for a person.
    let rest_url = changed.rest_url();
    let mut cmd = ecgridos(&[
        "replay",
        file.to_str().unwrap(),
        "--over",
        "rest",
        "--rest-url",
        &rest_url,
    ]);
    cmd.env("ECGRID_API_KEY", SENTINEL_KEY);
    let output = cli_support::run(cmd).await;
    assert_eq!(output.status.code(), Some(6));
    let table = String::from_utf8(output.stdout).unwrap();
    assert!(
        table.contains("LoginName: value differs: recorded \"root\", REST \"root-renamed\""),
        "{table}"
    );
    assert!(table.contains("1 differ"), "{table}");
    assert_absent(table.as_bytes(), SENTINEL_KEY);
    changed.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_waits_for_100_continue_is_served() {
    // .NET clients send `Expect: 100-continue` before a POST body.
    let fake = sentinel_fake().start().await.unwrap();
    let proxy = Proxy::start(&fake.soap_url());
    let mut sock = TcpStream::connect(&proxy.addr).await.unwrap();
    let (h, t) = envelope_parts("Version", "");
    let body = format!("{h}{t}");
    let head = format!(
        "POST /v4.1/prod/ECGridOS.asmx HTTP/1.1\r\nHost: x\r\nContent-Type: text/xml; \
         charset=utf-8\r\nSOAPAction: \"{NS}Version\"\r\nExpect: 100-continue\r\n\
         Content-Length: {}\r\n\r\n",
        body.len()
    );
    sock.write_all(head.as_bytes()).await.unwrap();
    let mut interim = [0u8; 25];
    tokio::time::timeout(Duration::from_secs(5), sock.read_exact(&mut interim))
        .await
        .expect("an interim answer")
        .unwrap();
    assert!(interim.starts_with(b"HTTP/1.1 100 Continue\r\n\r\n"));
    sock.write_all(body.as_bytes()).await.unwrap();
    let (status, _, _) = read_response(&mut sock).await;
    assert_eq!(status, 200);
    drop(sock);
    let (_, records) = proxy.stop().await;
    assert_eq!(operations(&records), ["Version"]);
    assert_eq!(records[0]["outcome"], "complete");
    fake.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operations_without_a_rest_twin_are_listed_and_fail_only_when_strict() {
    let fake = sentinel_fake().start().await.unwrap();
    let file = tempfile("no-twin.jsonl");
    // A read with no REST twin in the mapping, as the recorder writes it.
    let record = json!({
        "time": "2026-11-24T00:00:00.000Z", "operation": "ParcelOutBoxInProcess",
        "protocol": "1.1", "method": "POST", "path": "/v4.1/prod/ECGridOS.asmx",
        "parameters": {"SessionID": "<secret:0badf00d>"}, "result": [],
        "status": 200, "duration_ms": 1.0, "outcome": "complete",
        "request_bytes": 300, "response_bytes": 300
    });
    std::fs::write(&file, format!("{record}\n\n")).unwrap();
    let (code, report) = replay(&fake, &file, "rest", &[]).await;
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(
        statuses(&report),
        [(
            "ParcelOutBoxInProcess".to_string(),
            "no_rest_twin".to_string()
        )]
    );
    let (code, report) = replay(&fake, &file, "rest", &["--strict"]).await;
    assert_eq!(code, 6, "{report:#}");
    // A line that is not a record fails the replay.
    std::fs::write(&file, format!("{record}\n{{not json\n")).unwrap();
    let (code, report) = replay(&fake, &file, "rest", &[]).await;
    assert_eq!(code, 6);
    assert_eq!(report["steps"][1]["status"], "unreadable");
    assert_eq!(report["steps"][1]["line"], 2);
    fake.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_https_upstream_is_reached_with_the_network_options() {
    let fake = sentinel_fake()
        .tls(ecgridos::fake::FakeTls::new())
        .start()
        .await
        .unwrap();
    let ca = tempfile("ca.pem");
    std::fs::write(&ca, fake.tls().unwrap().ca_cert_pem()).unwrap();
    let proxy = Proxy::start_with(&fake.soap_url(), &["--ca-cert", ca.to_str().unwrap()]);
    assert!(proxy.soap_url.starts_with("http://127.0.0.1:"));
    let client = Client::builder().endpoint(&proxy.soap_url).build().unwrap();
    let me = client.who_am_i(&ApiKey::new(SENTINEL_KEY)).await.unwrap();
    assert_eq!(me.user_id, 7);
    let (bytes, records) = proxy.stop().await;
    assert_eq!(operations(&records), ["WhoAmI"]);
    assert_eq!(records[0]["result"]["UserID"], 7);
    assert_absent(&bytes, SENTINEL_KEY);

    // Without the CA the upstream is not trusted: the client gets a 502,
    // and the exchange is recorded as unreachable.
    let proxy = Proxy::start(&fake.soap_url());
    let client = Client::builder().endpoint(&proxy.soap_url).build().unwrap();
    let err = client.version().await.unwrap_err();
    assert!(
        matches!(err, ecgridos::Error::HttpStatus { status: 502, .. }),
        "{err:?}"
    );
    let (_, records) = proxy.stop().await;
    assert_eq!(records[0]["outcome"], "upstream_unreachable");
    fake.shutdown().await;
}

/// Runs `cmd` to its end with its output in files; its exit code, its
/// output and its peak resident set size in kB. The peak is the child's
/// VmHWM, read until it exits: it starts at its exec (the rusage of `wait4`
/// would count the pages it shared with this process before it).
#[cfg(target_os = "linux")]
fn run_measured(mut cmd: Command) -> (i32, String, u64) {
    let dir = tempfile("out");
    let (out, err) = (dir.with_extension("stdout"), dir.with_extension("stderr"));
    cmd.stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap());
    let mut child = cmd.spawn().unwrap();
    let status_file = format!("/proc/{}/status", child.id());
    let mut peak_kb = 0;
    let status = loop {
        if let Some(kb) = std::fs::read_to_string(&status_file)
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        {
            peak_kb = peak_kb.max(kb);
        }
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let output = std::fs::read_to_string(&out).unwrap() + &std::fs::read_to_string(&err).unwrap();
    (status.code().unwrap_or(-1), output, peak_kb)
}

#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_recording_is_replayed_in_bounded_memory() {
    use std::io::Write as _;
    let fake = sentinel_fake().start().await.unwrap();
    // 120 MB of lines the replay skips (Login), each with a long field,
    // around one call it sends.
    let file = tempfile("large.jsonl");
    let mut out = std::io::BufWriter::new(std::fs::File::create(&file).unwrap());
    let version = json!({"operation": "Version", "protocol": "1.1", "method": "POST",
        "parameters": {}, "result": "4.1", "status": 200, "outcome": "complete"});
    writeln!(out, "{version}").unwrap();
    let pad = "x".repeat(500_000);
    for _ in 0..240 {
        let login = json!({"operation": "Login", "protocol": "1.1", "method": "POST",
            "parameters": {"LoginName": pad}, "status": 200, "outcome": "complete"});
        writeln!(out, "{login}").unwrap();
    }
    writeln!(out, "{version}").unwrap();
    drop(out);
    assert!(std::fs::metadata(&file).unwrap().len() > 120_000_000);
    let soap = fake.soap_url();
    let mut cmd = ecgridos(&[
        "replay",
        file.to_str().unwrap(),
        "--over",
        "soap",
        "--endpoint",
        &soap,
    ]);
    cmd.env("ECGRID_API_KEY", SENTINEL_KEY);
    let (code, output, peak_kb) = tokio::task::spawn_blocking(move || run_measured(cmd))
        .await
        .unwrap();
    assert_eq!(code, 0, "{output}");
    assert_eq!(fake.soap_calls("Version"), 2);
    // Far less than the file: it is read a line at a time.
    assert!(
        peak_kb < 60_000,
        "peak RSS {peak_kb} kB for a 120 MB recording"
    );
    std::fs::remove_file(&file).unwrap();
}

#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_connections_past_the_descriptor_limit_do_not_stop_the_recorder() {
    use std::os::unix::process::CommandExt;
    let fake = FakeServer::start().await.unwrap();
    let proxy = Proxy::start_configured(&fake.soap_url(), &[], |cmd| {
        // Short limits (set the way a user may); few descriptors, as under a
        // default `ulimit -n` against many more half-sent requests.
        cmd.env("ECGRID_RECORD_HEADER_TIMEOUT", "1")
            .env("ECGRID_RECORD_IDLE_TIMEOUT", "1");
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                let limit = libc::rlimit {
                    rlim_cur: 200,
                    rlim_max: 200,
                };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    });
    let mut stalled = Vec::new();
    for _ in 0..250 {
        let mut sock = TcpStream::connect(&proxy.addr).await.unwrap();
        sock.write_all(b"POST /v4.1/prod/ECGridOS.asmx HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        stalled.push(sock);
    }
    // A normal client is answered once the header timeout closed enough of
    // them (its own timeout is only a bound on a broken proxy).
    let client = Client::builder()
        .endpoint(&proxy.soap_url)
        .timeout(Duration::from_secs(60))
        .retry(ecgridos::RetryPolicy::none())
        .build()
        .unwrap();
    assert_eq!(client.version().await.unwrap(), "4.1");
    // The stalled ones were closed without an answer.
    for mut sock in stalled.drain(..10) {
        let mut answer = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(60), sock.read_to_end(&mut answer));
        assert!(read.await.is_ok(), "a stalled connection stayed open");
        assert!(answer.is_empty(), "{}", String::from_utf8_lossy(&answer));
    }
    drop(stalled);
    let (_, records) = proxy.stop().await;
    assert_eq!(operations(&records), ["Version"]);
}

#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_senders_hold_bounded_memory() {
    // An upstream that reads whatever it is sent and never answers.
    let sink = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sink_addr = sink.local_addr().unwrap();
    let sink_task = tokio::spawn(async move {
        while let Ok((mut sock, _)) = sink.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 * 1024];
                while matches!(sock.read(&mut buf).await, Ok(n) if n > 0) {}
            });
        }
    });
    let proxy = Proxy::start_configured(
        &format!("http://{sink_addr}/v4.1/prod/ECGridOS.asmx"),
        &[],
        |cmd| {
            cmd.env("ECGRID_RECORD_BODY_TIMEOUT", "120");
        },
    );
    // Each client sends 17 MiB of small elements (more than one exchange
    // keeps), of a body it never finishes.
    const CLIENTS: usize = 24;
    const SENT: usize = 17 * 1024 * 1024;
    let (head, _) = envelope_parts("ParcelInBox", "");
    let mut clients = Vec::new();
    for _ in 0..CLIENTS {
        let addr = proxy.addr.clone();
        let head = head.clone();
        clients.push(tokio::spawn(async move {
            let mut sock = TcpStream::connect(&addr).await.unwrap();
            let request = format!(
                "POST /v4.1/prod/ECGridOS.asmx HTTP/1.1\r\nHost: x\r\n\
                 Content-Type: text/xml; charset=utf-8\r\nSOAPAction: \"https://os.ecgrid.io/ParcelInBox\"\r\n\
                 Content-Length: {}\r\n\r\n{head}",
                SENT * 2
            );
            sock.write_all(request.as_bytes()).await.unwrap();
            let chunk = "<a>1</a>".repeat(8 * 1024);
            let mut sent = 0;
            while sent < SENT {
                sock.write_all(chunk.as_bytes()).await.unwrap();
                sent += chunk.len();
            }
            sock
        }));
    }
    let mut held = Vec::new();
    for client in clients {
        held.push(client.await.unwrap());
    }
    // What the sockets still buffer reaches the proxy.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let peak_kb = proxy.peak_rss_kb();
    eprintln!("record peak RSS with {CLIENTS} slow senders: {peak_kb} kB");
    assert!(
        peak_kb < 160_000,
        "peak RSS {peak_kb} kB with {CLIENTS} clients each past 16 MiB"
    );
    drop(held);
    proxy.stop().await;
    sink_task.abort();
}

/// Sends one SOAP 1.1 request of `op` to `addr` and reads the whole answer.
async fn post_soap(addr: &str, op: &str, params: &str) -> Vec<u8> {
    let (head, tail) = envelope_parts(op, params);
    let body = format!("{head}{tail}");
    let request = format!(
        "POST /v4.1/prod/ECGridOS.asmx HTTP/1.1\r\nHost: x\r\nContent-Type: text/xml; \
         charset=utf-8\r\nSOAPAction: \"{NS}{op}\"\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    );
    let mut sock = TcpStream::connect(addr).await.unwrap();
    sock.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    sock.read_to_end(&mut answer).await.unwrap();
    answer
}

/// An upstream that answers every request with a SOAP fault quoting the
/// request's body in upper case, in base64 and URL-encoded.
async fn echoing_upstream() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            tokio::spawn(async move {
                let Some((_, declared, got)) = read_head(&mut sock).await else {
                    return;
                };
                let mut body = Vec::new();
                read_body(&mut sock, declared, got, |piece| {
                    body.extend_from_slice(piece)
                })
                .await;
                let b64 = base64::engine::general_purpose::STANDARD.encode(&body);
                let url: String = body
                    .iter()
                    .map(|b| {
                        if b.is_ascii_alphanumeric() {
                            (*b as char).to_string()
                        } else {
                            format!("%{b:02x}")
                        }
                    })
                    .collect();
                let upper = String::from_utf8_lossy(&body)
                    .to_ascii_uppercase()
                    .replace('&', "&amp;")
                    .replace('<', "&lt;");
                let fault = format!(
                    "<?xml version=\"1.0\" encoding=\"utf-8\"?><soap:Envelope \
                     xmlns:soap=\"http://schemas.xmlsoap.org/soap/envelope/\"><soap:Body>\
                     <soap:Fault><faultcode>soap:Client</faultcode><faultstring>refused \
                     {upper} b64={b64} url={url}</faultstring></soap:Fault></soap:Body>\
                     </soap:Envelope>"
                );
                let reply = format!(
                    "HTTP/1.1 500 Internal Server Error\r\nContent-Type: text/xml; \
                     charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{fault}",
                    fault.len()
                );
                let _ = sock.write_all(reply.as_bytes()).await;
                let _ = sock.shutdown().await;
            });
        }
    });
    format!("http://127.0.0.1:{}/v4.1/prod/ECGridOS.asmx", addr.port())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_under_other_names_short_or_echoed_in_other_forms_are_not_recorded() {
    const SESSION: &str = "5f0c1e2a-9b7d-4c3e-8a61-d2f4b6a8c0e1";
    const PASSWORD: &str = "Lower Name&Pw/3141";
    const UNKNOWN_PWD: &str = "Unknown-Pwd-2718";
    const UNKNOWN_KEY: &str = "UnknownKey1618";
    let upstream = echoing_upstream().await;
    let proxy = Proxy::start(&upstream);
    let addr = proxy.addr.clone();
    // A contract name in another case, a short secret, names the contract
    // does not know.
    let requests = [
        ("WhoAmI", format!("<sessionID>{SESSION}</sessionID>")),
        (
            "Login",
            "<LoginName>carol</LoginName><password>Lower Name&amp;Pw/3141</password>".to_string(),
        ),
        (
            "Login",
            "<LoginName>carol</LoginName><Password>q7</Password>".to_string(),
        ),
        (
            "FrobnicateWidget",
            format!("<Pwd>{UNKNOWN_PWD}</Pwd><APIKey>{UNKNOWN_KEY}</APIKey><Color>blue</Color>"),
        ),
    ];
    for (op, params) in &requests {
        let answer = post_soap(&addr, op, params).await;
        assert!(answer.starts_with(b"HTTP/1.1 500"), "{op}");
    }
    let (bytes, records) = proxy.stop().await;
    assert_eq!(
        operations(&records),
        ["WhoAmI", "Login", "Login", "FrobnicateWidget"]
    );
    let fingerprint = |v: &Value| v.as_str().is_some_and(|s| s.starts_with("<secret:"));
    let params = |i: usize| &records[i]["parameters"];
    assert!(fingerprint(&params(0)["sessionID"]), "{}", params(0));
    assert!(fingerprint(&params(1)["password"]), "{}", params(1));
    assert!(fingerprint(&params(2)["Password"]), "{}", params(2));
    assert!(fingerprint(&params(3)["Pwd"]), "{}", params(3));
    assert!(fingerprint(&params(3)["APIKey"]), "{}", params(3));
    assert_eq!(params(3)["Color"], "blue");
    assert_eq!(params(1)["LoginName"], "carol");
    // The faults were recorded, their echoes of the secrets replaced.
    let message = records[0]["fault"]["message"].as_str().unwrap();
    assert!(message.starts_with("refused"), "{message}");
    for secret in [SESSION, PASSWORD, UNKNOWN_PWD, UNKNOWN_KEY] {
        assert_absent(&bytes, secret);
    }
}
