//! `ecgridos parcels` against the embedded fake: the inbound loop killed at
//! random points, hostile names and answers, a full disk, uploads whose
//! answer is lost, and SOAP against REST.

mod cli_support;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ecgridos::fake::{FakeServer, FakeServerBuilder, ParcelEvent, ParcelEventKind};
use ecgridos::parcels::names::local_name;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use cli_support::{ecgridos, on_terminal, run, run_into, Sink};

const JOURNAL: &str = ".ecgridos-parcels.journal";

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

/// A fresh directory under the system's temporary directory.
fn scratch(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "ecgridos-parcels-{tag}-{}-{}",
        std::process::id(),
        fastrand::u64(..)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The names in `dir`, sorted.
fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Content that differs from parcel to parcel.
fn content(seed: u64, len: usize) -> Vec<u8> {
    let mut rng = fastrand::Rng::with_seed(seed);
    (0..len).map(|_| rng.u8(..)).collect()
}

/// Each parcel's final path and bytes, by ParcelID.
type Expected = HashMap<i64, (PathBuf, Vec<u8>)>;

/// At every confirm the fake reports, the parcel's file must already be in
/// DIR with all its bytes; the violations are collected here.
#[derive(Clone, Default)]
struct ConfirmWatch {
    expected: Arc<Mutex<Expected>>,
    violations: Arc<Mutex<Vec<String>>>,
    confirms: Arc<Mutex<HashMap<i64, usize>>>,
}

impl ConfirmWatch {
    fn hook(&self) -> impl Fn(&ParcelEvent) + Send + Sync + 'static {
        let watch = self.clone();
        move |event| {
            if event.kind != ParcelEventKind::Confirmed {
                return;
            }
            *watch
                .confirms
                .lock()
                .unwrap()
                .entry(event.parcel_id)
                .or_default() += 1;
            let expected = watch.expected.lock().unwrap();
            let Some((path, bytes)) = expected.get(&event.parcel_id) else {
                return;
            };
            match std::fs::read(path) {
                Ok(found) if found == *bytes => {}
                Ok(found) => watch.violations.lock().unwrap().push(format!(
                    "parcel {} confirmed with {} of {} bytes on disk",
                    event.parcel_id,
                    found.len(),
                    bytes.len()
                )),
                Err(e) => watch.violations.lock().unwrap().push(format!(
                    "parcel {} confirmed before its file existed: {e}",
                    event.parcel_id
                )),
            }
        }
    }

    fn expect(&self, id: i64, path: PathBuf, bytes: Vec<u8>) {
        self.expected.lock().unwrap().insert(id, (path, bytes));
    }
}

/// The fake and commands pointed at it with a user's API key.
struct Env {
    fake: FakeServer,
}

impl Env {
    /// The variables that point a command at the fake as `login`.
    fn vars(&self, login: &str) -> Vec<(&'static str, String)> {
        let key = self.fake.user(login).unwrap().api_key.unwrap();
        vec![
            ("ECGRID_ENDPOINT", self.fake.soap_url()),
            ("ECGRID_API_KEY", key.expose().to_string()),
        ]
    }

    async fn start(builder: FakeServerBuilder) -> Env {
        Env {
            fake: builder.start().await.unwrap(),
        }
    }

    /// `ecgridos ARGS` as `login`, over `protocol`, against `endpoint` (the
    /// fake's own URLs when `None`).
    fn cmd_via(
        &self,
        login: &str,
        protocol: &str,
        endpoint: Option<SocketAddr>,
        args: &[&str],
    ) -> Command {
        let (soap, rest) = match endpoint {
            Some(addr) => (
                format!("http://{addr}/v4.1/prod/ECGridOS.asmx"),
                format!("http://{addr}"),
            ),
            None => (self.fake.soap_url(), self.fake.rest_url()),
        };
        let key = self.fake.user(login).unwrap().api_key.unwrap();
        let mut cmd = ecgridos(args);
        cmd.env("ECGRID_ENDPOINT", soap)
            .env("ECGRID_REST_URL", rest)
            .env("ECGRID_API_KEY", key.expose())
            .args(["--protocol", protocol]);
        cmd
    }

    fn cmd(&self, login: &str, args: &[&str]) -> Command {
        self.cmd_via(login, "soap", None, args)
    }

    /// Delivers `bytes` as `name` to `login`; returns the ParcelID.
    fn deliver(&self, login: &str, name: &str, bytes: &[u8]) -> i64 {
        self.fake.deliver(login, name, bytes.to_vec()).unwrap()
    }
}

/// Waits for `child` to end for at most `limit`; kills it after that.
async fn wait_for(child: &mut std::process::Child, limit: Duration) -> Option<i32> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_killed_at_random_points_stores_every_parcel_once_and_confirms_after_storing() {
    let seed: u64 = std::env::var("ECGRID_KILL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| fastrand::u64(..));
    eprintln!("kill test seed: {seed} (set ECGRID_KILL_SEED to repeat)");
    let mut rng = fastrand::Rng::with_seed(seed);
    let watch = ConfirmWatch::default();
    let env = Env::start(
        FakeServer::builder()
            .inbox_page_size(5)
            .latency(Duration::from_millis(10))
            .on_parcel_event(watch.hook()),
    )
    .await;
    let dir = scratch("kill");
    let mut parcels = Vec::new();
    for i in 0..24u64 {
        let len = match i % 4 {
            0 => rng.usize(0..200),
            1 => rng.usize(1_000..50_000),
            2 => rng.usize(200_000..900_000),
            _ => rng.usize(1_000_000..2_500_000),
        };
        // Three parcels share one name.
        let name = if i % 8 == 0 {
            "same.edi".to_string()
        } else {
            format!("po-{i}.x12")
        };
        let bytes = content(seed ^ i, len);
        let id = env.deliver("alice", &name, &bytes);
        watch.expect(id, dir.join(local_name(id, &name)), bytes.clone());
        parcels.push((id, name, bytes));
    }
    let dir_arg = dir.to_str().unwrap().to_string();
    let (mut kills, mut finished) = (0, false);
    for _round in 0..60 {
        let mut child = env
            .cmd("alice", &["parcels", "fetch", "--to", &dir_arg])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        if kills < 12 {
            let delay = Duration::from_millis(rng.u64(5..400));
            let code = wait_for(&mut child, delay).await;
            if code.is_none() {
                kills += 1;
                continue;
            }
            if code == Some(0) {
                finished = true;
                break;
            }
            panic!("fetch exited with {code:?} (seed {seed})");
        }
        let code = wait_for(&mut child, Duration::from_secs(120)).await;
        assert_eq!(code, Some(0), "seed {seed}");
        finished = true;
        break;
    }
    assert!(finished, "seed {seed}");
    assert!(kills > 0, "no run was killed (seed {seed})");
    eprintln!("killed {kills} runs");
    let violations = watch.violations.lock().unwrap().clone();
    assert!(violations.is_empty(), "seed {seed}: {violations:?}");
    let mut expected_names: Vec<String> = parcels
        .iter()
        .map(|(id, name, _)| local_name(*id, name))
        .collect();
    expected_names.push(JOURNAL.to_string());
    expected_names.sort();
    // Every parcel exactly once; no temporary file left.
    assert_eq!(entries(&dir), expected_names, "seed {seed}");
    let confirms = watch.confirms.lock().unwrap().clone();
    for (id, name, bytes) in &parcels {
        let stored = std::fs::read(dir.join(local_name(*id, name))).unwrap();
        assert!(stored == *bytes, "parcel {id} differs (seed {seed})");
        assert!(
            env.fake.parcel(*id).unwrap().confirmed,
            "parcel {id} (seed {seed})"
        );
        assert_eq!(confirms.get(id), Some(&1), "parcel {id} (seed {seed})");
    }
    std::fs::remove_dir_all(dir).unwrap();
}

/// What the relay does with one request.
#[derive(Clone, Copy)]
enum Action {
    /// Passes it on and the answer back.
    Forward,
    /// Passes it on, then resets the client's connection without answering.
    Reset,
    /// Passes the answer back with its body changed (same length).
    Mangle(fn(&mut [u8])),
    /// Passes back the head and half the body, then closes.
    CutShort,
    /// Never passes it on: resets the client's connection (the request was
    /// lost before the service saw it).
    Swallow,
    /// Passes it on, then keeps the client's connection open without an
    /// answer (for at most 30 s).
    Hold,
}

/// A relay in front of the fake: one request per connection, each one
/// treated as `decide` says from the request head, once the whole request
/// is in.
async fn relay(
    target: SocketAddr,
    decide: impl Fn(&str) -> Action + Send + Sync + 'static,
) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let decide = Arc::new(decide);
    tokio::spawn(async move {
        loop {
            let Ok((client, _)) = listener.accept().await else {
                return;
            };
            let decide = decide.clone();
            tokio::spawn(async move {
                let _ = relay_one(client, target, &*decide).await;
            });
        }
    });
    addr
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

async fn relay_one(
    mut client: TcpStream,
    target: SocketAddr,
    decide: &(dyn Fn(&str) -> Action + Send + Sync),
) -> std::io::Result<()> {
    let mut request = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    let head_end = loop {
        let n = client.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        request.extend_from_slice(&buf[..n]);
        if let Some(at) = find(&request, b"\r\n\r\n") {
            break at + 4;
        }
    };
    let head = String::from_utf8_lossy(&request[..head_end]).into_owned();
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().ok())?
        })
        .unwrap_or(0);
    while request.len() < head_end + length {
        let n = client.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        request.extend_from_slice(&buf[..n]);
    }
    // One request per connection, both ways.
    let mut forwarded: Vec<u8> = head
        .split("\r\n")
        .filter(|l| !l.to_ascii_lowercase().starts_with("connection:") && !l.is_empty())
        .flat_map(|l| [l, "\r\n"])
        .collect::<String>()
        .into_bytes();
    forwarded.extend_from_slice(b"Connection: close\r\n\r\n");
    forwarded.extend_from_slice(&request[head_end..]);
    let action = decide(&head);
    if matches!(action, Action::Swallow) {
        socket2::SockRef::from(&client).set_linger(Some(Duration::ZERO))?;
        return Ok(());
    }
    let mut server = TcpStream::connect(target).await?;
    server.write_all(&forwarded).await?;
    let mut answer = Vec::new();
    server.read_to_end(&mut answer).await?;
    let body_at = find(&answer, b"\r\n\r\n").map_or(answer.len(), |at| at + 4);
    match action {
        Action::Forward => client.write_all(&answer).await?,
        Action::Hold => {
            tokio::time::sleep(Duration::from_secs(30)).await;
            return Ok(());
        }
        Action::Reset | Action::Swallow => {
            socket2::SockRef::from(&client).set_linger(Some(Duration::ZERO))?;
            drop(client);
            return Ok(());
        }
        Action::Mangle(change) => {
            change(&mut answer[body_at..]);
            client.write_all(&answer).await?;
        }
        Action::CutShort => {
            let half = body_at + (answer.len() - body_at) / 2;
            client.write_all(&answer[..half]).await?;
        }
    }
    client.shutdown().await
}

fn is_download(head: &str) -> bool {
    let head = head.to_ascii_lowercase();
    (head.contains("soapaction") && head.contains("parceldownload\""))
        || head.starts_with("post /v2/parcels/download ")
}

fn is_upload(head: &str) -> bool {
    let head = head.to_ascii_lowercase();
    (head.contains("soapaction") && head.contains("parcelupload"))
        || head.starts_with("post /v2/parcels/upload ")
}

/// Changes the last digit of the first number after `marker`, keeping the
/// length.
fn bump_number_after(body: &mut [u8], marker: &[u8]) {
    let Some(at) = find(body, marker) else { return };
    let mut end = at + marker.len();
    while end < body.len() && body[end].is_ascii_digit() {
        end += 1;
    }
    let last = end - 1;
    body[last] = if body[last] == b'9' {
        b'8'
    } else {
        body[last] + 1
    };
}

fn bump_declared_size(body: &mut [u8]) {
    bump_number_after(body, b"<Bytes>");
    bump_number_after(body, b"\"bytes\":");
}

/// Puts a character that is not base64 inside the content.
fn corrupt_base64(body: &mut [u8]) {
    for marker in [&b"<Content>"[..], b"\"content\":\""] {
        if let Some(at) = find(body, marker) {
            body[at + marker.len() + 8] = b'!';
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_names_each_land_in_dir_under_a_safe_name() {
    let env = Env::start(FakeServer::builder()).await;
    let dir = scratch("names");
    let long = format!("{}.edi", "n".repeat(10_000));
    let hostile = [
        "../../etc/passwd",
        "/etc/shadow",
        "..\\..\\boot.ini",
        "..",
        "",
        "CON",
        "nul.txt",
        "com1.edi",
        "trailing. . ",
        "nul\0byte.edi",
        "esc\u{1b}[31mred.edi",
        long.as_str(),
        "same.edi",
        "same.edi",
        "ORDERS 850.x12",
        "Bestellung-Müller.edi",
    ];
    let mut expected = Vec::new();
    for (i, name) in hostile.iter().enumerate() {
        let bytes = content(i as u64, 100 + i);
        let id = env.deliver("alice", name, &bytes);
        expected.push((local_name(id, name), bytes));
    }
    let out = run(env.cmd(
        "alice",
        &["parcels", "fetch", "--to", dir.to_str().unwrap()],
    ))
    .await;
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    // Everything is inside DIR, nothing outside it was touched.
    let mut names: Vec<String> = expected.iter().map(|(n, _)| n.clone()).collect();
    names.push(JOURNAL.into());
    names.sort();
    assert_eq!(entries(&dir), names);
    for (name, bytes) in &expected {
        assert_eq!(std::fs::read(dir.join(name)).unwrap(), *bytes, "{name}");
    }
    // Ordinary names are kept as they are; the printed paths are the files.
    assert!(expected.iter().any(|(n, _)| n.ends_with("-ORDERS 850.x12")));
    assert!(expected
        .iter()
        .any(|(n, _)| n.ends_with("-Bestellung-Müller.edi")));
    assert_eq!(stdout(&out).lines().count(), hostile.len());
    // The listing with control characters in it is readable as a whole.
    let listed = run(env.cmd("alice", &["parcels", "inbox", "--json"])).await;
    assert_eq!(code(&listed), 0, "{}", stderr(&listed));
    assert_eq!(stdout(&listed), "", "all confirmed");
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inbox_with_control_characters_in_names_lists_every_parcel() {
    let env = Env::start(FakeServer::builder()).await;
    let a = env.deliver("alice", "nul\0byte.edi", b"a");
    let b = env.deliver("alice", "esc\u{1b}.edi", b"bb");
    let out = run(env.cmd("alice", &["parcels", "inbox", "--json"])).await;
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let lines: Vec<serde_json::Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["parcel_id"], a);
    assert_eq!(lines[0]["file_name"], "nul\0byte.edi");
    assert_eq!(lines[1]["parcel_id"], b);
    assert_eq!(lines[1]["bytes"], 2);
    // On a terminal-bound text listing the escape is shown, not obeyed.
    let text = run(env.cmd("alice", &["parcels", "inbox"])).await;
    assert_eq!(code(&text), 0);
    assert!(!stdout(&text).contains('\u{1b}'));
    assert!(stdout(&text).contains("esc\\u{1b}.edi"));
}

/// A fetch through a relay that spoils the download of one parcel: that
/// parcel is not stored and not confirmed, the others are.
async fn spoiled_download(action: Action, protocol: &str) {
    let watch = ConfirmWatch::default();
    let env = Env::start(FakeServer::builder().on_parcel_event(watch.hook())).await;
    let dir = scratch("spoiled");
    let good = env.deliver("alice", "good.edi", &content(1, 5_000));
    // The relay spoils every download, then forwards them untouched (the
    // directory's journal is bound to the endpoint, the relay's).
    let bad = env.deliver("alice", "bad.edi", &content(2, 60_000));
    let spoil = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let spoiling = spoil.clone();
    let via = relay(env.fake.addr(), move |head| {
        if is_download(head) && spoiling.load(std::sync::atomic::Ordering::SeqCst) {
            action
        } else {
            Action::Forward
        }
    })
    .await;
    let out = run(env.cmd_via(
        "alice",
        protocol,
        Some(via),
        &["parcels", "fetch", "--to", dir.to_str().unwrap()],
    ))
    .await;
    assert_eq!(code(&out), 6, "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains(&format!("parcel {bad}")), "{err}");
    assert!(err.contains("not stored, not confirmed"), "{err}");
    assert_eq!(
        entries(&dir),
        [JOURNAL],
        "nothing stored, no temporary file"
    );
    assert!(!env.fake.parcel(bad).unwrap().confirmed);
    assert!(!env.fake.parcel(good).unwrap().confirmed);
    assert!(watch.confirms.lock().unwrap().is_empty());
    // Unspoiled, both arrive.
    spoil.store(false, std::sync::atomic::Ordering::SeqCst);
    let out = run(env.cmd_via(
        "alice",
        protocol,
        Some(via),
        &["parcels", "fetch", "--to", dir.to_str().unwrap()],
    ))
    .await;
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(
        entries(&dir),
        [
            JOURNAL.to_string(),
            local_name(good, "good.edi"),
            local_name(bad, "bad.edi")
        ]
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_declared_size_that_differs_is_not_stored_or_confirmed() {
    spoiled_download(Action::Mangle(bump_declared_size), "soap").await;
    spoiled_download(Action::Mangle(bump_declared_size), "rest").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_base64_is_not_stored_or_confirmed() {
    spoiled_download(Action::Mangle(corrupt_base64), "soap").await;
    spoiled_download(Action::Mangle(corrupt_base64), "rest").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_cut_short_is_not_stored_or_confirmed() {
    spoiled_download(Action::CutShort, "soap").await;
    spoiled_download(Action::CutShort, "rest").await;
}

#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_leaves_no_partial_file_and_confirms_nothing_unstored() {
    use std::os::unix::process::CommandExt;
    let watch = ConfirmWatch::default();
    let env = Env::start(FakeServer::builder().on_parcel_event(watch.hook())).await;
    let dir = scratch("full");
    let small = env.deliver("alice", "small.edi", &content(1, 2_000));
    let big = env.deliver("alice", "big.edi", &content(2, 300_000));
    let after = env.deliver("alice", "after.edi", &content(3, 3_000));
    let mut cmd = env.cmd(
        "alice",
        &["parcels", "fetch", "--to", dir.to_str().unwrap()],
    );
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            // No file may grow past 100 kB. SIGXFSZ keeps its default
            // action (as for a user under `ulimit -f`): the binary must
            // ignore it itself to see EFBIG instead of being killed.
            let limit = libc::rlimit {
                rlim_cur: 100_000,
                rlim_max: 100_000,
            };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            libc::signal(libc::SIGXFSZ, libc::SIG_DFL);
            Ok(())
        });
    }
    let out = run(cmd).await;
    {
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(
            out.status.signal(),
            None,
            "killed by a signal: {}",
            stderr(&out)
        );
    }
    assert_eq!(code(&out), 6, "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains(&format!("parcel {big}")), "{err}");
    assert!(err.to_lowercase().contains("file too large"), "{err}");
    // Said once, without colour codes (stderr is not a terminal).
    assert_eq!(err.matches("not stored, not confirmed").count(), 1, "{err}");
    assert!(!err.contains('\x1b'), "{err:?}");
    assert_eq!(
        entries(&dir),
        [
            JOURNAL.to_string(),
            local_name(small, "small.edi"),
            local_name(after, "after.edi")
        ]
    );
    assert!(env.fake.parcel(small).unwrap().confirmed);
    assert!(env.fake.parcel(after).unwrap().confirmed);
    assert!(!env.fake.parcel(big).unwrap().confirmed);
    assert!(watch.violations.lock().unwrap().is_empty());
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soap_and_rest_store_the_same_files() {
    let env = Env::start(FakeServer::builder().inbox_page_size(4)).await;
    let mut delivered = Vec::new();
    for i in 0..7u64 {
        let name = format!("file-{i}.edi");
        let bytes = content(i, (i as usize) * 7_777);
        delivered.push(env.deliver("alice", &name, &bytes));
    }
    let (soap_dir, rest_dir) = (scratch("soap"), scratch("rest"));
    // Over SOAP without confirming (only the first page is reachable) ...
    let out = run(env.cmd_via(
        "alice",
        "soap",
        None,
        &[
            "parcels",
            "fetch",
            "--no-confirm",
            "--to",
            soap_dir.to_str().unwrap(),
        ],
    ))
    .await;
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(entries(&soap_dir).len(), 1 + 4);
    // ... then over REST, confirming: every page.
    let out = run(env.cmd_via(
        "alice",
        "rest",
        None,
        &["parcels", "fetch", "--to", rest_dir.to_str().unwrap()],
    ))
    .await;
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(entries(&rest_dir).len(), 1 + 7);
    // SOAP again, now that REST confirmed them all: nothing new.
    let out = run(env.cmd_via(
        "alice",
        "soap",
        None,
        &["parcels", "fetch", "--to", soap_dir.to_str().unwrap()],
    ))
    .await;
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    for name in entries(&soap_dir) {
        if name == JOURNAL {
            continue;
        }
        assert_eq!(
            std::fs::read(soap_dir.join(&name)).unwrap(),
            std::fs::read(rest_dir.join(&name)).unwrap(),
            "{name}"
        );
    }
    for id in delivered {
        assert!(env.fake.parcel(id).unwrap().confirmed);
    }
    std::fs::remove_dir_all(soap_dir).unwrap();
    std::fs::remove_dir_all(rest_dir).unwrap();
}

/// An X12 interchange from alice to bob (routed by ISA07/ISA08).
fn x12_to_bob() -> Vec<u8> {
    b"ISA*00*          *00*          *ZZ*ALICE          *ZZ*BOB            *261123*1200*U*00401*000000001*0*P*>~GS*PO*ALICE*BOB*20261123*1200*1*X*004010~ST*850*0001~SE*2*0001~GE*1*1~IEA*1*000000001~".to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_prints_the_parcel_id_and_json_lines_and_routes_to_the_partner() {
    let env = Env::start(FakeServer::builder()).await;
    let dir = scratch("upload");
    let (one, two) = (dir.join("po-1.x12"), dir.join("po-2.x12"));
    std::fs::write(&one, x12_to_bob()).unwrap();
    std::fs::write(&two, x12_to_bob()).unwrap();
    let out = run(env.cmd(
        "alice",
        &["parcels", "upload", one.to_str().unwrap(), "--yes"],
    ))
    .await;
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let id: i64 = stdout(&out).trim().parse().unwrap();
    let parcel = env.fake.parcel(id).unwrap();
    assert_eq!(parcel.owner.as_deref(), Some("bob"));
    assert_eq!(&parcel.bytes[..], &x12_to_bob()[..]);
    assert_eq!(parcel.file_name, "po-1.x12");

    let out = run(env.cmd(
        "alice",
        &[
            "parcels",
            "upload",
            one.to_str().unwrap(),
            two.to_str().unwrap(),
            "--yes",
            "--json",
        ],
    ))
    .await;
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let lines: Vec<serde_json::Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[1]["file_name"], "po-2.x12");
    let second = lines[1]["parcel_id"].as_i64().unwrap();
    assert_eq!(env.fake.parcel(second).unwrap().file_name, "po-2.x12");

    // Explicit IDs instead of the envelope.
    let alice = env.fake.mailbox_of("alice").unwrap();
    let bob = env.fake.mailbox_of("bob").unwrap();
    let plain = dir.join("note.txt");
    std::fs::write(&plain, b"no envelope at all").unwrap();
    let (from, to) = (alice.ecgrid_id.to_string(), bob.ecgrid_id.to_string());
    let out = run(env.cmd(
        "alice",
        &[
            "parcels",
            "upload",
            plain.to_str().unwrap(),
            "--from-ecgrid-id",
            &from,
            "--to-ecgrid-id",
            &to,
            "--yes",
        ],
    ))
    .await;
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let id: i64 = stdout(&out).trim().parse().unwrap();
    assert_eq!(env.fake.parcel(id).unwrap().to_ecgrid_id, bob.ecgrid_id);

    // Bob's inbox shows the three, and info reads one.
    let out = run(env.cmd("bob", &["parcels", "inbox", "--json"])).await;
    assert_eq!(stdout(&out).lines().count(), 4, "{}", stdout(&out));
    let out = run(env.cmd(
        "bob",
        &["parcels", "info", "--parcel-id", &id.to_string(), "--json"],
    ))
    .await;
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let info: serde_json::Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    assert_eq!(info["parcel_id"], id);
    assert_eq!(info["file_name"], "note.txt");
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_without_yes_and_without_a_terminal_is_refused() {
    let env = Env::start(FakeServer::builder()).await;
    let dir = scratch("refuse");
    let file = dir.join("po.x12");
    std::fs::write(&file, x12_to_bob()).unwrap();
    let out = run(env.cmd("alice", &["parcels", "upload", file.to_str().unwrap()])).await;
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(stderr(&out).contains("--yes"), "{}", stderr(&out));
    assert!(env.fake.events().is_empty(), "nothing was uploaded");
    // A file that does not exist is refused before anything is sent.
    let missing = dir.join("missing.x12");
    let out = run(env.cmd(
        "alice",
        &[
            "parcels",
            "upload",
            file.to_str().unwrap(),
            missing.to_str().unwrap(),
            "--yes",
        ],
    ))
    .await;
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(env.fake.events().is_empty());
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_whose_answer_is_lost_is_not_resent_and_is_found() {
    for protocol in ["soap", "rest"] {
        let env = Env::start(FakeServer::builder()).await;
        let dir = scratch("lost");
        let file = dir.join("po.x12");
        std::fs::write(&file, x12_to_bob()).unwrap();
        let via = relay(env.fake.addr(), |head| {
            if is_upload(head) {
                Action::Reset
            } else {
                Action::Forward
            }
        })
        .await;
        let out = run(env.cmd_via(
            "alice",
            protocol,
            Some(via),
            &["parcels", "upload", file.to_str().unwrap(), "--yes"],
        ))
        .await;
        assert_eq!(code(&out), 5, "{protocol}: {}", stderr(&out));
        let uploads: Vec<_> = env
            .fake
            .events()
            .into_iter()
            .filter(|e| e.kind == ParcelEventKind::Uploaded)
            .collect();
        assert_eq!(
            uploads.len(),
            1,
            "{protocol}: exactly one upload reached it"
        );
        let err = stderr(&out);
        assert!(err.contains("NOT sent again"), "{err}");
        assert!(
            err.contains(&format!("it arrived: parcel {}", uploads[0].parcel_id)),
            "{protocol}: {err}"
        );
        assert_eq!(stdout(&out), "");
        std::fs::remove_dir_all(dir).unwrap();
    }
}

/// The same interchange as [`x12_to_bob`] with another control number:
/// the same size, other content.
fn other_x12_to_bob() -> Vec<u8> {
    let text = String::from_utf8(x12_to_bob()).unwrap();
    let other = text.replace("000000001", "000000002").into_bytes();
    assert_eq!(other.len(), x12_to_bob().len());
    other
}

/// The ParcelIDs the fake created from uploads.
fn uploaded_ids(fake: &FakeServer) -> Vec<i64> {
    fake.events()
        .into_iter()
        .filter(|e| e.kind == ParcelEventKind::Uploaded)
        .map(|e| e.parcel_id)
        .collect()
}

/// Issue 7: `a/po.x12` is uploaded, then `b/po.x12` (same name and size,
/// other content) through a relay that loses its upload. (a) The request
/// never reached the service: the earlier parcel must not be taken for it.
/// (b) The service acted and the answer was lost: the new parcel is found.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_upload_is_never_taken_for_an_earlier_one_of_the_same_name_and_size() {
    for protocol in ["soap", "rest"] {
        let env = Env::start(FakeServer::builder()).await;
        let dir = scratch("same-name");
        std::fs::create_dir_all(dir.join("a")).unwrap();
        std::fs::create_dir_all(dir.join("b")).unwrap();
        let (a, b) = (dir.join("a/po.x12"), dir.join("b/po.x12"));
        std::fs::write(&a, x12_to_bob()).unwrap();
        std::fs::write(&b, other_x12_to_bob()).unwrap();
        let out = run(env.cmd_via(
            "alice",
            protocol,
            None,
            &["parcels", "upload", a.to_str().unwrap(), "--yes"],
        ))
        .await;
        assert_eq!(code(&out), 0, "{protocol}: {}", stderr(&out));
        let earlier: i64 = stdout(&out).trim().parse().unwrap();

        // (a) The request is lost on its way: nothing arrives.
        let swallow = relay(env.fake.addr(), |head| {
            if is_upload(head) {
                Action::Swallow
            } else {
                Action::Forward
            }
        })
        .await;
        let out = run(env.cmd_via(
            "alice",
            protocol,
            Some(swallow),
            &["parcels", "upload", b.to_str().unwrap(), "--yes"],
        ))
        .await;
        let err = stderr(&out);
        assert_eq!(code(&out), 5, "{protocol}: {err}");
        assert_eq!(uploaded_ids(&env.fake), [earlier], "{protocol}: {err}");
        assert!(!err.contains("it arrived"), "{protocol}: {err}");
        assert!(
            err.contains("not found: it did not arrive or is not listed yet"),
            "{protocol}: {err}"
        );

        // (b) The service acts, the answer is lost: the new parcel is found.
        let lose_answer = relay(env.fake.addr(), |head| {
            if is_upload(head) {
                Action::Reset
            } else {
                Action::Forward
            }
        })
        .await;
        let out = run(env.cmd_via(
            "alice",
            protocol,
            Some(lose_answer),
            &["parcels", "upload", b.to_str().unwrap(), "--yes"],
        ))
        .await;
        let err = stderr(&out);
        assert_eq!(code(&out), 5, "{protocol}: {err}");
        let ids = uploaded_ids(&env.fake);
        assert_eq!(ids.len(), 2, "{protocol}: {err}");
        assert_eq!(
            &env.fake.parcel(ids[1]).unwrap().bytes[..],
            &other_x12_to_bob()[..]
        );
        assert!(
            err.contains(&format!("it arrived: parcel {}", ids[1])),
            "{protocol}: {err}"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }
}

/// Issue 9: the new ParcelID exists nowhere else; when stdout cannot take
/// it (closed, /dev/full) it goes to stderr and the exit code is 1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parcel_id_that_stdout_cannot_take_goes_to_stderr() {
    let env = Env::start(FakeServer::builder()).await;
    let dir = scratch("sink");
    let file = dir.join("po.x12");
    std::fs::write(&file, x12_to_bob()).unwrap();
    for sink in [Sink::Closed, Sink::Full] {
        for json in [false, true] {
            let mut args = vec!["parcels", "upload", file.to_str().unwrap(), "--yes"];
            if json {
                args.push("--json");
            }
            let out = run_into(env.cmd("alice", &args), sink).await;
            let err = stderr(&out);
            assert!(!err.contains("panicked"), "{err}");
            assert_eq!(code(&out), 1, "{sink:?}: {err}");
            let id = *uploaded_ids(&env.fake).last().unwrap();
            assert!(err.contains(&id.to_string()), "{sink:?}: {err}");
        }
    }
    assert_eq!(uploaded_ids(&env.fake).len(), 4);
    std::fs::remove_dir_all(dir).unwrap();
}

/// Sends `signal` to the process `pid` (a child of the test).
#[cfg(unix)]
fn kill(pid: u32, signal: i32) {
    // SAFETY: a plain kill(2) of the test's own child.
    unsafe {
        libc::kill(pid as i32, signal);
    }
}

/// Issue 10: one SIGINT while the last file is uploaded lets it finish
/// (its ParcelID printed), then exits 130, as fetch does.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_sigint_during_the_last_upload_finishes_it_and_exits_130() {
    use std::sync::atomic::{AtomicU32, Ordering};
    let env = Env::start(FakeServer::builder()).await;
    let dir = scratch("sigint-last");
    let file = dir.join("po.x12");
    std::fs::write(&file, x12_to_bob()).unwrap();
    let child_pid = Arc::new(AtomicU32::new(0));
    let pid = child_pid.clone();
    // The whole request is in the relay's hands: the CLI waits for the answer.
    let via = relay(env.fake.addr(), move |head| {
        if is_upload(head) {
            kill(pid.load(Ordering::SeqCst), libc::SIGINT);
        }
        Action::Forward
    })
    .await;
    let child = env
        .cmd_via(
            "alice",
            "soap",
            Some(via),
            &["parcels", "upload", file.to_str().unwrap(), "--yes"],
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child_pid.store(child.id(), Ordering::SeqCst);
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    let err = stderr(&out);
    assert!(err.contains("finishing the parcel in hand"), "{err}");
    assert_eq!(uploaded_ids(&env.fake).len(), 1, "{err}");
    assert_eq!(
        stdout(&out).trim(),
        uploaded_ids(&env.fake)[0].to_string(),
        "{err}"
    );
    assert_eq!(code(&out), 130, "{err}");
    std::fs::remove_dir_all(dir).unwrap();
}

/// Issue 8: a second SIGINT while an upload's answer is awaited ends the
/// process at once, saying the outcome is unknown, naming the file and the
/// check to run; that check, run as printed, finds the parcel the service
/// created (and not the earlier one of the same name and size).
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_sigint_during_an_upload_names_the_file_and_the_check_to_run() {
    use std::io::{BufRead, BufReader, Read};
    use std::sync::atomic::{AtomicBool, Ordering};
    for protocol in ["soap", "rest"] {
        let env = Env::start(FakeServer::builder()).await;
        let dir = scratch("sigint-twice");
        std::fs::create_dir_all(dir.join("a")).unwrap();
        let (a, b) = (dir.join("a/po.x12"), dir.join("po.x12"));
        std::fs::write(&a, x12_to_bob()).unwrap();
        std::fs::write(&b, other_x12_to_bob()).unwrap();
        let out = run(env.cmd_via(
            "alice",
            protocol,
            None,
            &["parcels", "upload", a.to_str().unwrap(), "--yes"],
        ))
        .await;
        assert_eq!(code(&out), 0, "{protocol}: {}", stderr(&out));
        let held = Arc::new(AtomicBool::new(false));
        let seen = held.clone();
        // The service acts; its answer is held back.
        let via = relay(env.fake.addr(), move |head| {
            if is_upload(head) {
                seen.store(true, Ordering::SeqCst);
                Action::Hold
            } else {
                Action::Forward
            }
        })
        .await;
        let mut child = env
            .cmd_via(
                "alice",
                protocol,
                Some(via),
                &["parcels", "upload", b.to_str().unwrap(), "--yes"],
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while !(held.load(Ordering::SeqCst) && uploaded_ids(&env.fake).len() == 2) {
            assert!(
                Instant::now() < deadline,
                "{protocol}: the upload never came"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let pid = child.id();
        let mut lines = BufReader::new(child.stderr.take().unwrap());
        let err = tokio::task::spawn_blocking(move || {
            kill(pid, libc::SIGINT);
            // The second signal only once the first one was heard.
            let mut text = String::new();
            while !text.contains("finishing the parcel in hand") {
                if lines.read_line(&mut text).unwrap() == 0 {
                    break;
                }
            }
            kill(pid, libc::SIGINT);
            lines.read_to_string(&mut text).unwrap();
            text
        })
        .await
        .unwrap();
        let status = child.wait().unwrap();
        assert_eq!(status.code(), Some(130), "{protocol}: {err}");
        assert!(err.contains("outcome is unknown"), "{protocol}: {err}");
        assert!(err.contains(&b.display().to_string()), "{protocol}: {err}");
        let check = err
            .lines()
            .find_map(|l| {
                l.split_once("ecgridos parcels outbox ")
                    .map(|(_, rest)| rest)
            })
            .unwrap_or_else(|| panic!("{protocol}: no check to run: {err}"));
        let mut args = vec!["parcels", "outbox"];
        args.extend(check.split_whitespace());
        let out = run(env.cmd_via("alice", protocol, None, &args)).await;
        let new = uploaded_ids(&env.fake)[1];
        assert_eq!(code(&out), 0, "{protocol}: {check}: {}", stderr(&out));
        assert_eq!(
            stdout(&out).trim(),
            new.to_string(),
            "{protocol}: {}",
            stderr(&out)
        );
        assert!(
            stderr(&out).contains(&format!("it arrived: parcel {new}")),
            "{protocol}: {}",
            stderr(&out)
        );
        std::fs::remove_dir_all(dir).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confirm_and_reset_by_hand() {
    let env = Env::start(FakeServer::builder()).await;
    let id = env.deliver("alice", "po.edi", b"hello").to_string();
    let out = run(env.cmd("alice", &["parcels", "confirm", "--parcel-id", &id])).await;
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(env.fake.parcel(id.parse().unwrap()).unwrap().confirmed);
    // A second confirm: the service answers false.
    let out = run(env.cmd("alice", &["parcels", "confirm", "--parcel-id", &id])).await;
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    let out = run(env.cmd("alice", &["parcels", "reset", "--parcel-id", &id])).await;
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let out = run(env.cmd("alice", &["parcels", "inbox", "--json"])).await;
    assert_eq!(stdout(&out).lines().count(), 1, "back in the inbox");
    // Another user's parcel is not found.
    let out = run(env.cmd("bob", &["parcels", "info", "--parcel-id", &id])).await;
    assert_eq!(code(&out), 3, "{}", stderr(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_fetch_into_the_same_directory_is_refused() {
    let env = Env::start(FakeServer::builder()).await;
    let dir = scratch("locked");
    let journal = ecgridos::durable::JournalFile::open(&dir.join(JOURNAL)).unwrap();
    let out = run(env.cmd(
        "alice",
        &["parcels", "fetch", "--to", dir.to_str().unwrap()],
    ))
    .await;
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(stderr(&out).contains("in use"), "{}", stderr(&out));
    drop(journal);
    let missing = dir.join("nope");
    let out = run(env.cmd(
        "alice",
        &["parcels", "fetch", "--to", missing.to_str().unwrap()],
    ))
    .await;
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    std::fs::remove_dir_all(dir).unwrap();
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_polls_until_sigterm_and_exits_130() {
    let env = Env::start(FakeServer::builder()).await;
    let dir = scratch("watch");
    let first = env.deliver("alice", "first.edi", b"1");
    let child = env
        .cmd(
            "alice",
            &[
                "parcels",
                "fetch",
                "--watch",
                "0.2",
                "--to",
                dir.to_str().unwrap(),
            ],
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !env.fake.parcel(first).unwrap().confirmed {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Delivered while it watches: picked up by a later poll.
    let second = env.deliver("alice", "second.edi", b"22");
    while !env.fake.parcel(second).unwrap().confirmed {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // SAFETY: a plain kill(2) of our own child.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    assert_eq!(code(&out), 130, "{}", stderr(&out));
    assert_eq!(stdout(&out).lines().count(), 2, "{}", stdout(&out));
    assert_eq!(entries(&dir).len(), 3);
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_transfer_shows_a_progress_bar_on_a_terminal_only() {
    let env = Env::start(FakeServer::builder()).await;
    let bytes = content(9, 6_000_000);
    let id = env.deliver("alice", "big.edi", &bytes);
    let (tty_dir, pipe_dir) = (scratch("tty"), scratch("pipe"));
    let args = format!("parcels fetch --no-confirm --to {}", tty_dir.display());
    let (status, screen) = on_terminal(&env.vars("alice"), &args, "").await;
    assert_eq!(status, 0, "{screen}");
    assert!(screen.contains("MiB"), "a bar counting bytes: {screen}");
    let out = run(env.cmd(
        "alice",
        &["parcels", "fetch", "--to", pipe_dir.to_str().unwrap()],
    ))
    .await;
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(!stderr(&out).contains("MiB"), "{}", stderr(&out));
    assert!(!stderr(&out).contains('\u{1b}'), "{}", stderr(&out));
    let name = local_name(id, "big.edi");
    assert_eq!(std::fs::read(tty_dir.join(&name)).unwrap(), bytes);
    assert_eq!(std::fs::read(pipe_dir.join(&name)).unwrap(), bytes);
    std::fs::remove_dir_all(tty_dir).unwrap();
    std::fs::remove_dir_all(pipe_dir).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_asks_on_a_terminal() {
    let env = Env::start(FakeServer::builder()).await;
    let dir = scratch("ask");
    let file = dir.join("po.x12");
    std::fs::write(&file, x12_to_bob()).unwrap();
    let args = format!("parcels upload {}", file.display());
    let (code, screen) = on_terminal(&env.vars("alice"), &args, "n\n").await;
    assert_eq!(code, 2, "{screen}");
    assert!(screen.contains("[y/N]"), "{screen}");
    assert!(env.fake.events().is_empty());
    let (code, screen) = on_terminal(&env.vars("alice"), &args, "y\n").await;
    assert_eq!(code, 0, "{screen}");
    let uploaded: Vec<_> = env
        .fake
        .events()
        .into_iter()
        .filter(|e| e.kind == ParcelEventKind::Uploaded)
        .collect();
    assert_eq!(uploaded.len(), 1);
    assert!(
        screen.contains(&uploaded[0].parcel_id.to_string()),
        "{screen}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_a_transfer_finishes_that_parcel_and_starts_no_other() {
    use std::sync::atomic::{AtomicU32, Ordering};
    let child_pid = Arc::new(AtomicU32::new(0));
    let pid = child_pid.clone();
    let watch = ConfirmWatch::default();
    let confirmed_hook = watch.hook();
    let env = Env::start(FakeServer::builder().on_parcel_event(move |event| {
        // The first download starts: the parcel is in the CLI's hands.
        if matches!(event.kind, ParcelEventKind::Downloaded { .. }) {
            let pid = pid.swap(0, Ordering::SeqCst);
            if pid != 0 {
                // SAFETY: a plain kill(2) of the test's own child.
                unsafe {
                    libc::kill(pid as i32, libc::SIGTERM);
                }
            }
        }
        confirmed_hook(event);
    }))
    .await;
    let dir = scratch("sigterm");
    let big = content(5, 20_000_000);
    let first = env.deliver("alice", "first.edi", &big);
    let second = env.deliver("alice", "second.edi", b"second");
    watch.expect(first, dir.join(local_name(first, "first.edi")), big.clone());
    let child = env
        .cmd(
            "alice",
            &["parcels", "fetch", "--to", dir.to_str().unwrap()],
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child_pid.store(child.id(), Ordering::SeqCst);
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    assert_eq!(code(&out), 130, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("finishing the parcel in hand"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        std::fs::read(dir.join(local_name(first, "first.edi"))).unwrap(),
        big
    );
    assert!(env.fake.parcel(first).unwrap().confirmed);
    assert!(watch.violations.lock().unwrap().is_empty());
    // The second parcel was not started.
    assert!(env
        .fake
        .parcel_events(second)
        .iter()
        .all(|e| !matches!(e.kind, ParcelEventKind::Downloaded { .. })));
    assert_eq!(
        entries(&dir),
        [JOURNAL.to_string(), local_name(first, "first.edi")]
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_signal_mid_transfer_ends_at_once_and_leaves_no_temporary_file() {
    use std::sync::atomic::{AtomicU32, Ordering};
    let child_pid = Arc::new(AtomicU32::new(0));
    let pid = child_pid.clone();
    let env = Env::start(FakeServer::builder().on_parcel_event(move |event| {
        if matches!(event.kind, ParcelEventKind::Downloaded { .. }) {
            let pid = pid.swap(0, Ordering::SeqCst);
            if pid != 0 {
                std::thread::spawn(move || {
                    // SAFETY: plain kill(2) calls on the test's own child.
                    unsafe { libc::kill(pid as i32, libc::SIGTERM) };
                    std::thread::sleep(Duration::from_millis(30));
                    unsafe { libc::kill(pid as i32, libc::SIGINT) };
                });
            }
        }
    }))
    .await;
    let dir = scratch("twice");
    let id = env.deliver("alice", "huge.edi", &content(6, 60_000_000));
    let child = env
        .cmd(
            "alice",
            &["parcels", "fetch", "--to", dir.to_str().unwrap()],
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child_pid.store(child.id(), Ordering::SeqCst);
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    assert_eq!(code(&out), 130, "{}", stderr(&out));
    assert!(!env.fake.parcel(id).unwrap().confirmed);
    // Neither a temporary file nor a file under the final name.
    assert_eq!(entries(&dir), [JOURNAL], "{}", stderr(&out));
    std::fs::remove_dir_all(dir).unwrap();
}

/// A listing longer than the default 1 MiB answer cap is refused as such
/// (exit 4, nothing half-printed); `--max-response-bytes` (or its variable)
/// lets the whole page through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_listing_needs_and_gets_a_larger_answer_cap() {
    let env = Env::start(FakeServer::builder().inbox_page_size(1_200)).await;
    let name = format!("{}.edi", "n".repeat(200));
    for _ in 0..1_200 {
        env.deliver("alice", &name, b"x");
    }
    let refused = run(env.cmd("alice", &["parcels", "inbox", "--json"])).await;
    assert_eq!(code(&refused), 4, "{}", stderr(&refused));
    assert!(stderr(&refused).contains("exceeds"), "{}", stderr(&refused));
    assert_eq!(stdout(&refused), "");

    let listed = run(env.cmd(
        "alice",
        &[
            "parcels",
            "inbox",
            "--json",
            "--max-response-bytes",
            "16000000",
        ],
    ))
    .await;
    assert_eq!(code(&listed), 0, "{}", stderr(&listed));
    assert_eq!(stdout(&listed).lines().count(), 1_200);

    let mut via_env = env.cmd("alice", &["parcels", "inbox", "--json"]);
    via_env.env("ECGRID_MAX_RESPONSE_BYTES", "16000000");
    let listed = run(via_env).await;
    assert_eq!(code(&listed), 0, "{}", stderr(&listed));
    assert_eq!(stdout(&listed).lines().count(), 1_200);
}

/// The paths `parcels fetch` printed on stdout (one a line).
fn printed_paths(out: &Output) -> Vec<PathBuf> {
    stdout(out).lines().map(PathBuf::from).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_journal_of_another_endpoint_is_refused_and_nothing_is_confirmed() {
    let (one, two) = (
        Env::start(FakeServer::builder()).await,
        Env::start(FakeServer::builder()).await,
    );
    let dir = scratch("endpoints");
    let first = one.deliver("alice", "orders.x12", &content(11, 16));
    let second = two.deliver("alice", "invoice.x12", &content(12, 900));
    assert_eq!(first, second, "both fakes number their first parcel alike");
    let dir_arg = dir.to_str().unwrap().to_string();
    let out = run(one.cmd("alice", &["parcels", "fetch", "--to", &dir_arg])).await;
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    // The consumer takes the file away.
    std::fs::remove_file(dir.join(local_name(first, "orders.x12"))).unwrap();
    let out = run(two.cmd("alice", &["parcels", "fetch", "--to", &dir_arg])).await;
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&two.fake.soap_url()),
        "{}",
        stderr(&out)
    );
    assert_eq!(stdout(&out), "");
    assert!(!two.fake.parcel(second).unwrap().confirmed);
    assert_eq!(entries(&dir), [JOURNAL.to_string()]);
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parcel_reset_after_its_confirm_is_fetched_again() {
    let env = Env::start(FakeServer::builder()).await;
    let dir = scratch("reset");
    let bytes = content(21, 16);
    let id = env.deliver("alice", "orders.x12", &bytes);
    let path = dir.join(local_name(id, "orders.x12"));
    let dir_arg = dir.to_str().unwrap().to_string();
    let out = run(env.cmd("alice", &["parcels", "fetch", "--to", &dir_arg])).await;
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(printed_paths(&out), std::slice::from_ref(&path));
    std::fs::remove_file(&path).unwrap();
    let id_arg = id.to_string();
    let out = run(env.cmd("alice", &["parcels", "reset", "--parcel-id", &id_arg])).await;
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let out = run(env.cmd("alice", &["parcels", "fetch", "--to", &dir_arg])).await;
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    for printed in printed_paths(&out) {
        assert!(
            printed.exists(),
            "printed {} which does not exist",
            printed.display()
        );
    }
    assert_eq!(std::fs::read(&path).unwrap(), bytes, "fetched again");
    assert!(env.fake.parcel(id).unwrap().confirmed);
    std::fs::remove_dir_all(dir).unwrap();
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_journal_that_is_a_symlink_is_refused() {
    let env = Env::start(FakeServer::builder()).await;
    let dir = scratch("symlink");
    let outside = scratch("outside").join("victim");
    std::fs::write(&outside, b"").unwrap();
    std::os::unix::fs::symlink(&outside, dir.join(JOURNAL)).unwrap();
    let id = env.deliver("alice", "orders.x12", &content(31, 16));
    let out = run(env.cmd(
        "alice",
        &["parcels", "fetch", "--to", dir.to_str().unwrap()],
    ))
    .await;
    assert_ne!(code(&out), 0, "{}", stderr(&out));
    assert!(stderr(&out).contains("symbolic link"), "{}", stderr(&out));
    assert_eq!(std::fs::read(&outside).unwrap(), b"");
    assert!(!env.fake.parcel(id).unwrap().confirmed);
    assert_eq!(entries(&dir), [JOURNAL.to_string()]);
    std::fs::remove_dir_all(dir).unwrap();
    std::fs::remove_dir_all(outside.parent().unwrap()).unwrap();
}

#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_at_the_journal_leaves_no_unrecorded_file_and_no_copy() {
    use std::os::unix::process::CommandExt;
    let env = Env::start(FakeServer::builder()).await;
    let dir = scratch("journal-full");
    let bytes = content(41, 16);
    let id = env.deliver("alice", "orders.x12", &bytes);
    let dir_arg = dir.to_str().unwrap().to_string();
    // A first run writes the journal's beginning; a confirmed record of
    // another parcel pads it.
    let out = run(env.cmd("alice", &["parcels", "fetch", "--to", &dir_arg])).await;
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let pad = format!(
        "{{\"parcel_id\":1,\"event\":\"confirmed\",\"note\":\"{}\"}}\n",
        "x".repeat(200)
    );
    let journal = dir.join(JOURNAL);
    let mut text = std::fs::read_to_string(&journal).unwrap();
    text.push_str(&pad);
    std::fs::write(&journal, &text).unwrap();
    std::fs::remove_file(dir.join(local_name(id, "orders.x12"))).unwrap();
    let id_arg = id.to_string();
    let out = run(env.cmd("alice", &["parcels", "reset", "--parcel-id", &id_arg])).await;
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    // The journal may grow by 10 bytes: its next record is torn.
    let limit = text.len() as u64 + 10;
    for _ in 0..3 {
        let mut cmd = env.cmd("alice", &["parcels", "fetch", "--to", &dir_arg]);
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                let l = libc::rlimit {
                    rlim_cur: limit,
                    rlim_max: limit,
                };
                if libc::setrlimit(libc::RLIMIT_FSIZE, &l) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
                Ok(())
            });
        }
        let out = run(cmd).await;
        assert_ne!(code(&out), 0, "{}", stderr(&out));
        assert_eq!(stdout(&out), "");
        // The consumer sees no file the journal does not know of.
        assert_eq!(entries(&dir), [JOURNAL.to_string()], "{}", stderr(&out));
        assert!(!env.fake.parcel(id).unwrap().confirmed);
    }
    let out = run(env.cmd("alice", &["parcels", "fetch", "--to", &dir_arg])).await;
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(
        entries(&dir),
        [JOURNAL.to_string(), local_name(id, "orders.x12")]
    );
    assert_eq!(
        std::fs::read(dir.join(local_name(id, "orders.x12"))).unwrap(),
        bytes
    );
    assert!(env.fake.parcel(id).unwrap().confirmed);
    // Every line of the journal but the torn ones reads as JSON.
    let after = std::fs::read_to_string(&journal).unwrap();
    let unreadable = after
        .lines()
        .filter(|l| !l.trim().is_empty() && serde_json::from_str::<serde_json::Value>(l).is_err())
        .count();
    assert!(unreadable <= 3, "{after}");
    assert!(after.ends_with("\"event\":\"confirmed\"}\n"), "{after}");
    std::fs::remove_dir_all(dir).unwrap();
}
