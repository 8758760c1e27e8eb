//! The real `ecgridos` binary against the embedded fake: every subcommand and
//! every exit code.

mod cli_support;
mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use ecgridos::fake::{FakeServer, SeedUser};
use ecgridos::{ApiKey, AuthLevel, Client, Password};

use cli_support::{ecgridos, on_terminal, run, run_into, run_with_stdin, Sink};

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

/// The fake plus a command already pointed at it with the admin's API key.
struct Env {
    server: FakeServer,
}

impl Env {
    async fn new() -> Env {
        Env {
            server: FakeServer::start().await.unwrap(),
        }
    }

    fn key(&self, login: &str) -> ApiKey {
        self.server.user(login).unwrap().api_key.unwrap()
    }

    fn id(&self, login: &str) -> String {
        self.server.user(login).unwrap().user_id.to_string()
    }

    fn cmd<S: AsRef<std::ffi::OsStr>>(&self, as_user: &str, args: &[S]) -> Command {
        let mut cmd = ecgridos(args);
        cmd.env("ECGRID_ENDPOINT", self.server.soap_url())
            .env("ECGRID_REST_URL", self.server.rest_url())
            .env("ECGRID_API_KEY", self.key(as_user).expose());
        cmd
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_runs_and_shows_no_whole_secret() {
    let out = run(ecgridos(&["demo"])).await;
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let text = stdout(&out);
    for needle in [
        "GenerateAPIKey(alice)",
        "WhoAmI with the old key",
        "rejected: Authentication",
        "= the rotated key",
        "Logout",
    ] {
        assert!(text.contains(needle), "{needle} missing from:\n{text}");
    }
    // Keys and sessions are 36-character GUIDs; none may appear whole.
    let guid = |w: &str| w.len() == 36 && w.matches('-').count() == 4;
    assert!(
        !text
            .split(|c: char| c.is_whitespace() || c == '(' || c == ')')
            .any(guid),
        "{text}"
    );
}

/// Starts `serve-mock` and reads the line it prints once it is ready.
fn serve_mock(mut cmd: Command) -> (std::process::Child, serde_json::Value) {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    (child, serde_json::from_str(&line).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_mock_prints_one_json_line_and_stops_on_sigterm() {
    let users = tempfile("users.json");
    std::fs::write(
        &users,
        r#"[{"user_id":5,"login":"root","password":"pw","auth_level":"Root"},{"user_id":6,"login":"u","password":"pw2","auth_level":"General","api_key":"fixed-key"}]"#,
    )
    .unwrap();
    let (mut child, ready) = serve_mock(ecgridos(&[
        "serve-mock",
        "--listen",
        "127.0.0.1:0",
        "--users",
        users.to_str().unwrap(),
    ]));
    let soap_url = ready["soap_url"].as_str().unwrap().to_string();
    assert!(ready["rest_url"]
        .as_str()
        .unwrap()
        .starts_with("http://127.0.0.1:"));
    let listed = ready["users"].as_array().unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[1]["api_key"], "fixed-key");
    assert_eq!(listed[0]["auth_level"], "Root");
    let mut keys: Vec<_> = listed[0].as_object().unwrap().keys().cloned().collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "api_key",
            "auth_level",
            "ecgrid_id",
            "login",
            "mailbox_id",
            "network_id",
            "password",
            "user_id"
        ]
    );

    let client = Client::builder().endpoint(&soap_url).build().unwrap();
    let session = client.login("root", &Password::new("pw")).await.unwrap();
    assert_eq!(client.who_am_i(&session).await.unwrap().user_id, 5);

    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    assert_eq!(status.code(), Some(0));
    assert!(client.version().await.is_err(), "the server is gone");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_commands() {
    let env = Env::new().await;
    let admin = env.server.user("admin").unwrap();
    let mut login = ecgridos(&["login", "--password-stdin"]);
    login
        .env("ECGRID_ENDPOINT", env.server.soap_url())
        .env("ECGRID_LOGIN", "admin");
    let leaked: &'static str = Box::leak(format!("{}\n", admin.password.expose()).into_boxed_str());
    let out = run_with_stdin(login, leaked).await;
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let session = stdout(&out).trim().to_string();
    assert_eq!(
        stdout(&out),
        format!("{session}\n"),
        "the session ID alone on one line"
    );

    let mut whoami = ecgridos(&["whoami", "--json"]);
    whoami
        .env("ECGRID_ENDPOINT", env.server.soap_url())
        .env("ECGRID_SESSION_ID", &session);
    let out = run(whoami).await;
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let me: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(me["login"], "admin");
    assert!(!stdout(&out).contains(&session));

    let mut logout = ecgridos(&["logout", "--session-id", &session]);
    logout.env("ECGRID_ENDPOINT", env.server.soap_url());
    assert_eq!(code(&run(logout).await), 0);

    let mut whoami = ecgridos(&["whoami"]);
    whoami
        .env("ECGRID_ENDPOINT", env.server.soap_url())
        .env("ECGRID_SESSION_ID", &session);
    let out = run(whoami).await;
    assert_eq!(code(&out), 3, "an ended session is refused by the service");
    assert!(stdout(&out).is_empty());
    assert!(!stderr(&out).contains(&session), "{}", stderr(&out));

    // Login + password from the environment: the command manages its own session.
    let mut get = ecgridos(&["get-api-key", "--user-id", &env.id("bob")]);
    get.env("ECGRID_ENDPOINT", env.server.soap_url())
        .env("ECGRID_LOGIN", "admin")
        .env("ECGRID_PASSWORD", admin.password.expose());
    let out = run(get).await;
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), env.key("bob").expose());
    assert_eq!(env.server.soap_calls("Login"), 2);
    assert_eq!(
        env.server.soap_calls("Logout"),
        2,
        "the command logged out at the end"
    );

    let out = run(env.cmd("admin", &["version"])).await;
    assert_eq!((code(&out), stdout(&out)), (0, "4.1\n".to_string()));
    let out = run(env.cmd("admin", &["--protocol", "rest", "version", "--json"])).await;
    assert_eq!(stdout(&out).trim(), r#"{"version":"2.6"}"#);

    let out = run(ecgridos(&["whoami"])
        .env("ECGRID_ENDPOINT", env.server.soap_url())
        .to_owned_cmd())
    .await;
    assert_eq!(code(&out), 2, "no credential is a usage error");
}

/// `Command` is not Clone; this rebuilds one from a `&mut Command` chain.
trait ToOwnedCmd {
    fn to_owned_cmd(&mut self) -> Command;
}

impl ToOwnedCmd for Command {
    fn to_owned_cmd(&mut self) -> Command {
        let mut cmd = Command::new(self.get_program());
        cmd.args(self.get_args()).stdin(Stdio::null());
        for (k, v) in self.get_envs() {
            match v {
                Some(v) => cmd.env(k, v),
                None => cmd.env_remove(k),
            };
        }
        cmd
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_prints_the_key_alone_and_needs_confirmation() {
    let env = Env::new().await;
    let alice = env.id("alice");
    let alice_id: i32 = alice.parse().unwrap();

    let out = run(env.cmd("admin", &["generate-api-key", "--user-id", &alice])).await;
    assert_eq!(code(&out), 2);
    assert!(stderr(&out).contains("--yes"), "{}", stderr(&out));
    assert_eq!(env.server.rotations(alice_id), 0, "refused before sending");

    let out = run(env.cmd("admin", &["generate-api-key", "--user-id", &alice, "--yes"])).await;
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(stdout(&out), format!("{}\n", env.key("alice").expose()));

    let out = run(env.cmd(
        "admin",
        &["rotate-key", "--user-id", &alice, "-y", "--json"],
    ))
    .await;
    let json: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(json["user_id"], alice_id);
    assert_eq!(json["api_key"], env.key("alice").expose());

    let out = run(env.cmd("admin", &["get-api-key", "--user-id", &alice])).await;
    assert_eq!(stdout(&out).trim(), env.key("alice").expose());
    assert_eq!(
        env.server.rotations(alice_id),
        2,
        "get-api-key does not rotate"
    );

    for bad in ["abc", "2147483648", "-2147483649"] {
        let out = run(env.cmd("admin", &["generate-api-key", "--user-id", bad, "--yes"])).await;
        assert_eq!(code(&out), 2, "{bad}: {}", stderr(&out));
    }
    assert_eq!(env.server.soap_calls("GenerateAPIKey"), 2);

    // Over REST, same command, same outcome.
    let out = run(env.cmd(
        "admin",
        &[
            "--protocol",
            "rest",
            "generate-api-key",
            "--user-id",
            &alice,
            "--yes",
        ],
    ))
    .await;
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), env.key("alice").expose());
    assert_eq!(env.server.rest_calls("key-generate"), 1);
}

fn tempfile(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "ecgridos-cli-{}-{}",
        std::process::id(),
        fastrand::u64(..)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_file_is_private_atomic_and_not_overwritten() {
    let env = Env::new().await;
    let bob = env.id("bob");
    let bob_id: i32 = bob.parse().unwrap();
    let path = tempfile("bob.key");
    let p = path.to_str().unwrap();
    let to_file = [
        "generate-api-key",
        "--user-id",
        &bob,
        "--yes",
        "--output-file",
        p,
    ];

    let out = run(env.cmd("admin", &to_file)).await;
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(stdout(&out).is_empty(), "the key goes to the file only");
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        format!("{}\n", env.key("bob").expose())
    );
    #[cfg(unix)]
    assert_eq!(mode(&path), 0o600);

    let out = run(env.cmd("admin", &to_file)).await;
    assert_eq!(code(&out), 2);
    assert!(stderr(&out).contains("--force"));
    assert_eq!(env.server.rotations(bob_id), 1, "refused before sending");

    let out = run(env.cmd(
        "admin",
        &[
            "generate-api-key",
            "--user-id",
            &bob,
            "--yes",
            "--output-file",
            p,
            "--force",
            "--print",
        ],
    ))
    .await;
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), env.key("bob").expose());
    assert_eq!(
        std::fs::read_to_string(&path).unwrap().trim(),
        env.key("bob").expose()
    );
    let leftovers = std::fs::read_dir(path.parent().unwrap()).unwrap().count();
    assert_eq!(leftovers, 1, "no temporary file is left behind");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_have_their_exit_codes() {
    let env = Env::new().await;
    // The service refuses: alice may not rotate bob's key.
    let out = run(env.cmd(
        "alice",
        &["generate-api-key", "--user-id", &env.id("bob"), "--yes"],
    ))
    .await;
    assert_eq!(code(&out), 3);
    assert!(stdout(&out).is_empty());
    let err = stderr(&out);
    assert!(
        err.contains("Only administrators") && err.contains("ECGridOSSOAPErrorCode: Authorization"),
        "{err}"
    );
    assert!(!err.contains(env.key("alice").expose()));

    // Nothing listens: communication failure.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut cmd = env.cmd("admin", &["get-api-key", "--user-id", "1"]);
    cmd.env("ECGRID_ENDPOINT", format!("http://127.0.0.1:{port}/x"));
    assert_eq!(code(&run(cmd).await), 4);

    // The server reads the request and hangs up: outcome unknown.
    let url = hang_up_server().await;
    let mut cmd = env.cmd("admin", &["generate-api-key", "--user-id", "77", "--yes"]);
    cmd.env("ECGRID_ENDPOINT", url);
    let out = run(cmd).await;
    assert_eq!(code(&out), 5, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("ecgridos get-api-key --user-id 77"),
        "{}",
        stderr(&out)
    );
    assert!(stdout(&out).is_empty());

    // Plain http to a remote host is refused before sending.
    let mut cmd = env.cmd("admin", &["version"]);
    cmd.env("ECGRID_ENDPOINT", "http://example.invalid/x");
    assert_eq!(code(&run(cmd).await), 2);
}

/// A `Root` user (ID 1, login `root`) and one mailbox user per ID, for batches.
fn root_and_users(ids: impl Iterator<Item = i32>) -> Vec<SeedUser> {
    let user = |user_id, login: String, auth_level| SeedUser {
        user_id,
        login,
        password: Password::new("pw"),
        api_key: None,
        auth_level,
        network_id: 1,
        mailbox_id: user_id,
    };
    std::iter::once(user(1, "root".into(), AuthLevel::Root))
        .chain(ids.map(|id| user(id, format!("user{id}"), AuthLevel::MailboxUser)))
        .collect()
}

/// The journal's user records (its header left out).
fn read_records(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|r| r.get("user_id").is_some())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_killed_part_way_then_resumed_rotates_everyone_exactly_once() {
    let users = root_and_users(100..140);
    let server = FakeServer::builder()
        .users(users)
        .latency(Duration::from_millis(15))
        .start()
        .await
        .unwrap();
    let root_key = server.user("root").unwrap().api_key.unwrap();
    let ids_file = tempfile("ids.txt");
    let mut ids = String::from("# users to rotate\n\n");
    for id in 100..140 {
        ids.push_str(&format!("{id}\n"));
    }
    ids.push_str("100  # listed twice, rotated once\n");
    std::fs::write(&ids_file, ids).unwrap();
    let journal = tempfile("rotated.jsonl");
    let args = [
        "generate-api-key",
        "--user-ids-from",
        ids_file.to_str().unwrap(),
        "--output-file",
        journal.to_str().unwrap(),
        "--concurrency",
        "3",
        "--yes",
    ];
    let command = || {
        let mut cmd = ecgridos(&args);
        cmd.env("ECGRID_ENDPOINT", server.soap_url())
            .env("ECGRID_API_KEY", root_key.expose())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        cmd
    };

    // Start, let some users finish, then kill it hard.
    let mut child = command().spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while read_records(&journal)
        .iter()
        .filter(|r| r["outcome"] == "rotated")
        .count()
        < 10
    {
        assert!(Instant::now() < deadline, "the batch made no progress");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    child.kill().unwrap();
    let _ = child.wait();
    let done_before: usize = (100..140).map(|id| server.rotations(id) as usize).sum();
    assert!(
        (10..40).contains(&done_before),
        "killed part-way: {done_before} rotated"
    );
    #[cfg(unix)]
    assert_eq!(mode(&journal), 0o600);

    // Resume: the same command.
    let out = run(command()).await;
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    for id in 100..140 {
        assert_eq!(
            server.rotations(id),
            1,
            "user {id} must be rotated exactly once"
        );
    }
    // The last record of each user holds the key in force now.
    let mut last = std::collections::BTreeMap::new();
    for r in read_records(&journal) {
        last.insert(r["user_id"].as_i64().unwrap() as i32, r);
    }
    assert_eq!(last.len(), 40);
    for (id, r) in &last {
        assert_eq!(r["outcome"], "rotated", "{r}");
        assert_eq!(
            r["api_key"].as_str(),
            Some(server.api_key(*id).unwrap().expose()),
            "user {id}"
        );
    }

    // A third run has nothing to do and sends no rotation.
    let before = server.soap_calls("GenerateAPIKey");
    let out = run(command()).await;
    assert_eq!(code(&out), 0);
    assert!(stderr(&out).contains("already rotated"), "{}", stderr(&out));
    assert_eq!(server.soap_calls("GenerateAPIKey"), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_that_times_out_before_a_rotation_exits_4_with_its_own_advice() {
    // A service that takes every connection and never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((sock, _)) = listener.accept().await {
            held.push(sock);
        }
    });
    let endpoint = format!("http://{addr}/v4.1/prod/ECGridOS.asmx");
    for args in [
        vec!["generate-api-key", "--user-id", "8", "--yes"],
        vec!["whoami"],
    ] {
        let mut cmd = ecgridos(&args);
        cmd.env("ECGRID_ENDPOINT", &endpoint)
            .env("ECGRID_LOGIN", "admin")
            .env("ECGRID_PASSWORD", "pw")
            .args(["--timeout", "1"]);
        let out = run(cmd).await;
        let err = stderr(&out);
        assert_eq!(code(&out), 4, "{args:?}: nothing was rotated: {err}");
        assert!(err.contains("Login"), "{err}");
        assert!(err.contains("a session may have been opened"), "{err}");
        assert!(!err.contains("get-api-key"), "{err}");
    }
    // `login` itself is the call whose outcome is unknown: exit 5.
    let mut cmd = ecgridos(&["login", "--timeout", "1"]);
    cmd.env("ECGRID_ENDPOINT", &endpoint)
        .env("ECGRID_LOGIN", "admin")
        .env("ECGRID_PASSWORD", "pw");
    let out = run(cmd).await;
    assert_eq!(code(&out), 5, "{}", stderr(&out));
    holder.abort();
}

#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_content_from_a_file_is_read_after_confirmation_and_bounded() {
    use std::os::unix::process::CommandExt;
    let env = Env::new().await;
    let call = |extra: &[&str]| {
        let mut args = vec![
            "call",
            "ParcelUpload",
            "FileName=x.edi",
            "Bytes=1",
            "Content=@/dev/zero",
        ];
        args.extend_from_slice(extra);
        let mut cmd = env.cmd("alice", &args);
        // SAFETY: only async-signal-safe calls between fork and exec. A
        // reader without bound dies on this limit rather than take the
        // machine's memory.
        unsafe {
            cmd.pre_exec(|| {
                let limit = libc::rlimit {
                    rlim_cur: 1 << 30,
                    rlim_max: 1 << 30,
                };
                if libc::setrlimit(libc::RLIMIT_AS, &limit) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        cmd
    };
    // Not confirmed (no terminal, no --yes): refused before reading it.
    let out = run(call(&[])).await;
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(stderr(&out).contains("--yes"), "{}", stderr(&out));
    // Confirmed: what is read is bounded; nothing is sent.
    let out = run(call(&["--yes"])).await;
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(stderr(&out).contains("larger than"), "{}", stderr(&out));
    assert_eq!(env.server.soap_calls("ParcelUpload"), 0);
    // A file within the bound is read and sent (the fake reads its ISA
    // segment, cut short here).
    let file = tempfile("small.edi");
    std::fs::write(&file, b"ISA*hello\n").unwrap();
    let content = format!("Content=@{}", file.display());
    let out = run(env.cmd(
        "alice",
        &[
            "call",
            "ParcelUpload",
            "FileName=small.edi",
            "Bytes=10",
            &content,
            "--yes",
        ],
    ))
    .await;
    assert!(stderr(&out).contains("ISA segment"), "{}", stderr(&out));
    assert_eq!(env.server.soap_calls("ParcelUpload"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_lines_are_coloured_only_on_a_terminal() {
    let env = Env::new().await;
    // stderr a pipe: plain text.
    let out = run(env.cmd("alice", &["-v", "whoami"])).await;
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(stderr(&out).contains("ecgridos.call"), "{}", stderr(&out));
    assert!(!stderr(&out).contains('\x1b'), "{:?}", stderr(&out));
    // stderr a terminal: coloured.
    let (code, screen) = on_terminal(
        &[
            ("ECGRID_ENDPOINT", env.server.soap_url()),
            ("ECGRID_API_KEY", env.key("alice").expose().to_string()),
        ],
        "-v whoami",
        "",
    )
    .await;
    assert_eq!(code, 0, "{screen}");
    assert!(screen.contains("\x1b["), "{screen:?}");
}

/// Runs a one-user batch rotation of bob as the admin into `journal`, under
/// a file-size limit when one is given (SIGXFSZ left at its default action,
/// as for a user under `ulimit -f`).
async fn batch_of_bob(env: &Env, journal: &Path, fsize: Option<u64>) -> Output {
    let ids_file = tempfile("ids.txt");
    std::fs::write(&ids_file, format!("{}\n", env.id("bob"))).unwrap();
    let mut cmd = env.cmd(
        "admin",
        &[
            "generate-api-key",
            "--user-ids-from",
            ids_file.to_str().unwrap(),
            "--output-file",
            journal.to_str().unwrap(),
            "--yes",
        ],
    );
    if let Some(fsize) = fsize {
        use std::os::unix::process::CommandExt;
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                let limit = libc::rlimit {
                    rlim_cur: fsize,
                    rlim_max: fsize,
                };
                if libc::setrlimit(libc::RLIMIT_FSIZE, &limit) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                libc::signal(libc::SIGXFSZ, libc::SIG_DFL);
                Ok(())
            });
        }
    }
    run(cmd).await
}

#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_size_limit_during_a_batch_shows_the_new_key_and_leaves_no_torn_line() {
    use std::os::unix::process::ExitStatusExt;
    // Where the `rotated` record starts in a journal written without limit.
    let free = Env::new().await;
    let journal = tempfile("free.jsonl");
    let out = batch_of_bob(&free, &journal, None).await;
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let text = std::fs::read_to_string(&journal).unwrap();
    let rotated_at = text.find("\"outcome\":\"rotated\"").unwrap();
    let line_start = text[..rotated_at].rfind('\n').unwrap() + 1;
    let line_len = text[line_start..].find('\n').unwrap();
    assert!(line_len > 40, "{text}");

    // The same run with room for the records before it, not for it.
    let env = Env::new().await;
    let journal = tempfile("limited.jsonl");
    let out = batch_of_bob(&env, &journal, Some(line_start as u64 + 20)).await;
    let err = stderr(&out);
    assert_eq!(out.status.signal(), None, "killed by a signal: {err}");
    assert_ne!(code(&out), 0, "{err}");
    assert!(err.to_lowercase().contains("file too large"), "{err}");
    let key = env.key("bob");
    assert_eq!(env.server.rotations(env.id("bob").parse().unwrap()), 1);
    assert!(
        err.contains(&format!("(store it now): {}", key.expose())),
        "the key in force is shown: {err}"
    );
    // Every line of the journal is whole.
    let text = std::fs::read_to_string(&journal).unwrap();
    for line in text.lines() {
        serde_json::from_str::<serde_json::Value>(line).expect("a whole JSON line");
    }
    assert!(text.ends_with('\n'), "{text:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_with_failures_exits_6_and_retries_them_later() {
    let env = Env::new().await;
    let ids_file = tempfile("ids.txt");
    std::fs::write(
        &ids_file,
        format!("{}\n{}\n", env.id("bob"), env.id("alice")),
    )
    .unwrap();
    let journal = tempfile("out.jsonl");
    let args = [
        "generate-api-key",
        "--user-ids-from",
        ids_file.to_str().unwrap(),
        "--output-file",
        journal.to_str().unwrap(),
        "--yes",
    ];
    // alice may rotate her own key, not bob's.
    let out = run(env.cmd("alice", &args)).await;
    assert_eq!(code(&out), 6, "{}", stderr(&out));
    let records = read_records(&journal);
    let bob: i64 = env.id("bob").parse().unwrap();
    let failed = records
        .iter()
        .find(|r| r["user_id"] == bob && r["outcome"] == "failed")
        .unwrap();
    assert_eq!(failed["error_kind"], "Authorization");
    // Re-run as the admin: bob (failed) is retried, alice (done) is skipped.
    let out = run(env.cmd("admin", &args)).await;
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(env.server.rotations(bob as i32), 1);
    assert_eq!(env.server.rotations(env.id("alice").parse().unwrap()), 1);
}

/// The caller's own key is rotated last, alone: once it changes the API key
/// in use stops working, and the rotations after it (or still in flight)
/// would fail for want of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_rotates_the_callers_own_key_last() {
    let env = Env::new().await;
    let ids_file = tempfile("ids.txt");
    std::fs::write(
        &ids_file,
        format!(
            "{}\n{}\n{}\n",
            env.id("admin"),
            env.id("alice"),
            env.id("bob")
        ),
    )
    .unwrap();
    let journal = tempfile("out.jsonl");
    let args = [
        "generate-api-key",
        "--user-ids-from",
        ids_file.to_str().unwrap(),
        "--output-file",
        journal.to_str().unwrap(),
        "--concurrency",
        "1",
        "--yes",
    ];
    let out = run(env.cmd("admin", &args)).await;
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    for user in ["admin", "alice", "bob"] {
        let id: i32 = env.id(user).parse().unwrap();
        assert_eq!(env.server.rotations(id), 1, "{user}");
    }
    let records = read_records(&journal);
    let rotated: Vec<i64> = records
        .iter()
        .filter(|r| r["outcome"] == "rotated")
        .map(|r| r["user_id"].as_i64().unwrap())
        .collect();
    let admin: i64 = env.id("admin").parse().unwrap();
    assert_eq!(rotated.last(), Some(&admin), "{records:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn asks_for_confirmation_on_a_terminal() {
    let env = Env::new().await;
    let alice = env.id("alice");
    let vars = [
        ("ECGRID_ENDPOINT", env.server.soap_url()),
        ("ECGRID_API_KEY", env.key("admin").expose().to_string()),
    ];
    let (code_no, screen) =
        on_terminal(&vars, &format!("generate-api-key --user-id {alice}"), "n\n").await;
    assert_eq!(code_no, 2, "{screen}");
    assert!(
        screen.contains("[y/N]") && screen.contains("nothing was sent"),
        "{screen}"
    );
    assert_eq!(env.server.rotations(alice.parse().unwrap()), 0);

    let (code_yes, screen) =
        on_terminal(&vars, &format!("generate-api-key --user-id {alice}"), "y\n").await;
    assert_eq!(code_yes, 0, "{screen}");
    assert!(screen.contains(env.key("alice").expose()), "{screen}");
    assert_eq!(env.server.rotations(alice.parse().unwrap()), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_shows_progress_on_a_terminal() {
    let users = root_and_users(2..=41);
    let server = FakeServer::builder()
        .users(users)
        .latency(Duration::from_millis(10))
        .start()
        .await
        .unwrap();
    let ids = tempfile("ids.txt");
    std::fs::write(&ids, (2..=41).map(|i| format!("{i}\n")).collect::<String>()).unwrap();
    let journal = tempfile("out.jsonl");
    let vars = [
        ("ECGRID_ENDPOINT", server.soap_url()),
        (
            "ECGRID_API_KEY",
            server
                .user("root")
                .unwrap()
                .api_key
                .unwrap()
                .expose()
                .to_string(),
        ),
    ];
    let args = format!(
        "generate-api-key --user-ids-from {} --output-file {} --concurrency 2 --yes",
        ids.display(),
        journal.display()
    );
    let (code, screen) = on_terminal(&vars, &args, "").await;
    assert_eq!(code, 0, "{screen}");
    assert!(
        screen.contains("/40"),
        "a progress bar with the total: {screen}"
    );
    assert!(screen.contains("rotated 40, failed 0"), "{screen}");
}

// ---- Key safety (issue 12) ----

impl Env {
    /// The default users behind a fake that answers every request after `latency`.
    async fn slow(latency: Duration) -> Env {
        Env {
            server: FakeServer::builder()
                .latency(latency)
                .start()
                .await
                .unwrap(),
        }
    }

    /// A command authenticated with the user's login and password (the command
    /// opens and closes its own session).
    fn cmd_login<S: AsRef<std::ffi::OsStr>>(&self, login: &str, args: &[S]) -> Command {
        let mut cmd = ecgridos(args);
        cmd.env("ECGRID_ENDPOINT", self.server.soap_url())
            .env("ECGRID_LOGIN", login)
            .env(
                "ECGRID_PASSWORD",
                self.server.user(login).unwrap().password.expose(),
            );
        cmd
    }
}

fn assert_no_panic(out: &Output) {
    let err = stderr(out);
    assert!(
        !err.contains("panicked") && code(out) != 101,
        "exit {}: {err}",
        code(out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_key_that_stdout_cannot_take_goes_to_stderr() {
    let env = Env::new().await;
    let alice = env.id("alice");
    for sink in [Sink::Closed, Sink::Full, Sink::BrokenPipe] {
        for json in [false, true] {
            let mut args = vec!["generate-api-key", "--user-id", &alice, "--yes"];
            if json {
                args.push("--json");
            }
            let out = run_into(env.cmd("admin", &args), sink).await;
            assert_no_panic(&out);
            assert_eq!(code(&out), 1, "{sink:?}: {}", stderr(&out));
            let err = stderr(&out);
            assert!(
                err.contains(&format!("the new key for user {alice} (store it now): "))
                    && err.contains(env.key("alice").expose()),
                "{sink:?}: the key in force must be on stderr: {err}"
            );
        }
    }
    assert_eq!(env.server.rotations(alice.parse().unwrap()), 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_delivers_a_write_result_that_stdout_cannot_take_on_stderr() {
    let env = Env::new().await;
    let alice = env.id("alice");
    let user = format!("UserID={alice}");
    for sink in [Sink::Closed, Sink::Full, Sink::BrokenPipe] {
        let args = ["call", "GenerateAPIKey", user.as_str(), "--yes"];
        let out = run_into(env.cmd("admin", &args), sink).await;
        assert_no_panic(&out);
        assert_eq!(code(&out), 1, "{sink:?}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(
            err.contains("the result (store it now): ")
                && err.contains(&format!("\"{}\"", env.key("alice").expose())),
            "{sink:?}: the key in force must be on stderr: {err}"
        );
        // A read's result is not a secret to rescue: a failed write is exit
        // 1 (a closed stdout reads as /dev/null, as for the other reads).
        let out = run_into(env.cmd("admin", &["call", "Version"]), sink).await;
        assert_no_panic(&out);
        let expected = if matches!(sink, Sink::Closed) { 0 } else { 1 };
        assert_eq!(code(&out), expected, "{sink:?}: {}", stderr(&out));
    }
    assert_eq!(env.server.rotations(alice.parse().unwrap()), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_commands_fail_cleanly_on_an_unwritable_stdout() {
    let env = Env::new().await;
    // login: the session whose ID could not be delivered is ended again.
    let out = run_into(env.cmd_login("admin", &["login"]), Sink::Full).await;
    assert_no_panic(&out);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("the session was ended"),
        "{}",
        stderr(&out)
    );
    assert_eq!(env.server.soap_calls("Logout"), 1);
    // When the session cannot be ended either, its ID goes to stderr.
    let url = canned_server(|request| {
        request.contains("Login\"").then(|| {
            r#"<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body><LoginResponse xmlns="https://os.ecgrid.io/"><LoginResult>open-session-id</LoginResult></LoginResponse></soap:Body></soap:Envelope>"#.to_string()
        })
    })
    .await;
    let mut cmd = ecgridos(&["login"]);
    cmd.env("ECGRID_ENDPOINT", url)
        .env("ECGRID_LOGIN", "admin")
        .env("ECGRID_PASSWORD", "pw");
    let out = run_into(cmd, Sink::Full).await;
    assert_no_panic(&out);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("the open session's ID: open-session-id"),
        "{}",
        stderr(&out)
    );

    for sink in [Sink::Full, Sink::BrokenPipe] {
        let out = run_into(env.cmd("admin", &["version"]), sink).await;
        assert_no_panic(&out);
        assert_eq!(code(&out), 1, "{sink:?}: {}", stderr(&out));
    }

    // A batch's JSON summary: the keys are in the journal; exit 1, no panic.
    let ids = tempfile("ids.txt");
    std::fs::write(&ids, format!("{}\n", env.id("bob"))).unwrap();
    let journal = tempfile("out.jsonl");
    let mut cmd = env.cmd("admin", &batch_args(&ids, &journal));
    cmd.arg("--json");
    let out = run_into(cmd, Sink::Full).await;
    assert_no_panic(&out);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    let rotated = read_records(&journal)
        .into_iter()
        .find(|r| r["outcome"] == "rotated")
        .unwrap();
    assert_eq!(rotated["api_key"].as_str(), Some(env.key("bob").expose()));
}

/// Sends `signal` (e.g. "INT") to the process.
fn kill(pid: u32, signal: &str) {
    assert!(Command::new("kill")
        .args([&format!("-{signal}"), &pid.to_string()])
        .status()
        .unwrap()
        .success());
}

/// Files left in a directory besides `keep`.
fn others_in(dir: &Path, keep: &Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p != keep)
        .collect()
}

/// `generate-api-key` of alice's key into `path`, confirmed.
fn rotate_alice_to(env: &Env, path: &Path) -> Vec<String> {
    [
        "generate-api-key",
        "--user-id",
        &env.id("alice"),
        "--yes",
        "--output-file",
        path.to_str().unwrap(),
    ]
    .map(String::from)
    .to_vec()
}

/// Starts `cmd`, sends the signals after the given delays, and waits.
async fn signalled(mut cmd: Command, signals: &[(u64, &'static str)]) -> Output {
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    for (at_ms, signal) in signals {
        let at = Duration::from_millis(*at_ms);
        tokio::time::sleep(at.saturating_sub(started.elapsed())).await;
        kill(child.id(), signal);
    }
    tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signal_while_a_key_is_at_stake_lets_it_be_stored() {
    // SIGINT while the rotation is in flight (API key, one 2 s call); SIGTERM
    // while the logout after the rotation is in flight (login, rotation and
    // logout take 1 s each): the key must be stored either way.
    for (with_login, latency_ms, at_ms, signal) in
        [(false, 2000, 700, "INT"), (true, 1000, 2500, "TERM")]
    {
        let env = Env::slow(Duration::from_millis(latency_ms)).await;
        let path = tempfile("alice.key");
        let args = rotate_alice_to(&env, &path);
        let cmd = if with_login {
            env.cmd_login("admin", &args)
        } else {
            env.cmd("admin", &args)
        };
        let out = signalled(cmd, &[(at_ms, signal)]).await;
        assert_eq!(code(&out), 130, "{signal}: {}", stderr(&out));
        assert_eq!(env.server.rotations(env.id("alice").parse().unwrap()), 1);
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            format!("{}\n", env.key("alice").expose()),
            "{signal}: {}",
            stderr(&out)
        );
        assert!(others_in(path.parent().unwrap(), &path).is_empty());
        if !with_login {
            assert!(stderr(&out).contains("letting the rotation in flight finish"));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_signal_aborts_and_says_how_to_find_the_key() {
    let env = Env::slow(Duration::from_millis(2000)).await;
    let alice = env.id("alice");
    let path = tempfile("alice.key");
    let cmd = env.cmd("admin", &rotate_alice_to(&env, &path));
    let out = signalled(cmd, &[(600, "INT"), (900, "TERM")]).await;
    assert_eq!(code(&out), 130, "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!("ecgridos get-api-key --user-id {alice}")),
        "{}",
        stderr(&out)
    );
    assert!(
        std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .next()
            .is_none(),
        "no key file and no temporary file"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signal_before_anything_is_sent_ends_at_once_without_leftovers() {
    let env = Env::slow(Duration::from_millis(2000)).await;
    let path = tempfile("alice.key");
    // Logging in takes 2 s; the signal comes during the login.
    let cmd = env.cmd_login("admin", &rotate_alice_to(&env, &path));
    let started = Instant::now();
    let out = signalled(cmd, &[(600, "INT")]).await;
    assert_eq!(code(&out), 130, "{}", stderr(&out));
    assert!(started.elapsed() < Duration::from_millis(1900));
    assert!(std::fs::read_dir(path.parent().unwrap())
        .unwrap()
        .next()
        .is_none());
    assert_eq!(env.server.rotations(env.id("alice").parse().unwrap()), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compare_delivers_every_key_and_refuses_the_users_own_key() {
    let env = Env::new().await;
    let alice = env.id("alice");
    let alice_id: i32 = alice.parse().unwrap();
    let out = run(env.cmd("admin", &["compare", "--user-id", &alice, "--yes"])).await;
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let text = stdout(&out);
    let keys: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with(&format!("new key for user {alice} from the ")))
        .map(|l| l.rsplit(' ').next().unwrap())
        .collect();
    assert_eq!(keys.len(), 2, "{text}");
    assert_ne!(keys[0], keys[1]);
    assert!(text.contains("(in force now)"), "{text}");
    assert_eq!(keys[1], env.key("alice").expose());

    let out = run(env.cmd(
        "admin",
        &["compare", "--user-id", &alice, "--yes", "--json"],
    ))
    .await;
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    assert_eq!(report["new_keys"].as_array().unwrap().len(), 2);
    assert_eq!(
        report["api_key_in_force"].as_str(),
        Some(env.key("alice").expose())
    );
    assert_eq!(env.server.rotations(alice_id), 4);

    // With alice's own key the scenario would rotate its own credential away.
    let out = run(env.cmd("alice", &["compare", "--user-id", &alice, "--yes"])).await;
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(stderr(&out).contains("own key"), "{}", stderr(&out));
    assert_eq!(env.server.rotations(alice_id), 4, "nothing was sent");
}

/// The arguments of a confirmed batch over `ids` into `journal`.
fn batch_args(ids: &Path, journal: &Path) -> Vec<String> {
    [
        "generate-api-key",
        "--user-ids-from",
        ids.to_str().unwrap(),
        "--output-file",
        journal.to_str().unwrap(),
        "--yes",
    ]
    .map(String::from)
    .to_vec()
}

/// A batch over `ids` into `journal`, as root of `server`.
fn batch_cmd(server: &FakeServer, ids: &Path, journal: &Path) -> Command {
    let mut cmd = ecgridos(&batch_args(ids, journal));
    cmd.env("ECGRID_ENDPOINT", server.soap_url()).env(
        "ECGRID_API_KEY",
        server.user("root").unwrap().api_key.unwrap().expose(),
    );
    cmd
}

/// A fake with root and users 100..=103, and a file listing `ids`.
async fn batch_setup(ids: &[i32]) -> (FakeServer, std::path::PathBuf) {
    let server = FakeServer::builder()
        .users(root_and_users(100..=103))
        .start()
        .await
        .unwrap();
    let file = tempfile("ids.txt");
    std::fs::write(
        &file,
        ids.iter().map(|i| format!("{i}\n")).collect::<String>(),
    )
    .unwrap();
    (server, file)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_journal_of_another_endpoint_is_refused() {
    let (first, ids) = batch_setup(&[100, 101]).await;
    let journal = tempfile("out.jsonl");
    let out = run(batch_cmd(&first, &ids, &journal)).await;
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let header: serde_json::Value = serde_json::from_str(
        std::fs::read_to_string(&journal)
            .unwrap()
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(header["protocol"], "soap");
    assert_eq!(header["endpoint"], first.soap_url());

    let (second, _) = batch_setup(&[]).await;
    let out = run(batch_cmd(&second, &ids, &journal)).await;
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&first.soap_url()) && stderr(&out).contains(&second.soap_url()),
        "{}",
        stderr(&out)
    );
    assert_eq!(second.rotations(100) + second.rotations(101), 0);
    // The same journal over REST against the first server is another service too.
    let mut cmd = batch_cmd(&first, &ids, &journal);
    cmd.args(["--protocol", "rest"])
        .env("ECGRID_REST_URL", first.rest_url());
    assert_eq!(code(&run(cmd).await), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_torn_journal_line_blocks_its_user_and_the_next_record_starts_a_new_line() {
    let (server, ids) = batch_setup(&[100]).await;
    let journal = tempfile("out.jsonl");
    assert_eq!(code(&run(batch_cmd(&server, &ids, &journal)).await), 0);
    // A crash mid-write: user 101's record is cut off, without its newline.
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&journal)
        .unwrap();
    f.write_all(br#"{"user_id":101,"outcome":"star"#).unwrap();
    drop(f);
    std::fs::write(&ids, "100\n101\n102\n").unwrap();
    let out = run(batch_cmd(&server, &ids, &journal)).await;
    assert_eq!(code(&out), 6, "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!("{}:4", journal.display())),
        "names the line: {}",
        stderr(&out)
    );
    assert_eq!(server.rotations(101), 0, "never rotated blind");
    assert_eq!(server.rotations(102), 1);
    let text = std::fs::read_to_string(&journal).unwrap();
    assert!(text.contains("\"outcome\":\"star\n{"), "{text}");
    let r102 = read_records(&journal)
        .into_iter()
        .rfind(|r| r["user_id"] == 102)
        .unwrap();
    assert_eq!(
        r102["api_key"].as_str(),
        Some(server.api_key(102).unwrap().expose())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_run_on_the_same_journal_is_refused() {
    let server = FakeServer::builder()
        .users(root_and_users(100..=103))
        .latency(Duration::from_millis(400))
        .start()
        .await
        .unwrap();
    let ids = tempfile("ids.txt");
    std::fs::write(&ids, "100\n101\n102\n103\n").unwrap();
    let journal = tempfile("out.jsonl");
    let mut first = batch_cmd(&server, &ids, &journal);
    first.args(["--concurrency", "1"]).stderr(Stdio::piped());
    let first = first.spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while read_records(&journal).is_empty() {
        assert!(Instant::now() < deadline, "the first run made no progress");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let out = run(batch_cmd(&server, &ids, &journal)).await;
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("in use by another"),
        "{}",
        stderr(&out)
    );
    let first = tokio::task::spawn_blocking(move || first.wait_with_output().unwrap())
        .await
        .unwrap();
    assert_eq!(code(&first), 0, "{}", stderr(&first));
    for id in 100..=103 {
        assert_eq!(server.rotations(id), 1, "user {id}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_recorded_failed_whose_key_changed_is_recovered_not_rotated() {
    let (server, ids) = batch_setup(&[100]).await;
    let journal = tempfile("out.jsonl");
    // As a run that saw an ambiguous answer would have left it: the key before
    // (whose hash differs from the key in force) and then `failed`.
    let header = serde_json::json!({
        "journal": "ecgridos-batch-rotation", "version": 1, "protocol": "soap",
        "endpoint": server.soap_url(),
    });
    let started = serde_json::json!({
        "user_id": 100, "outcome": "started", "protocol": "soap",
        "old_key_sha256": "0".repeat(64),
    });
    let failed = serde_json::json!({
        "user_id": 100, "outcome": "failed", "protocol": "soap",
        "error_kind": "ServiceError", "error": "HTTP 500",
    });
    std::fs::write(&journal, format!("{header}\n{started}\n{failed}\n")).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&journal, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let out = run(batch_cmd(&server, &ids, &journal)).await;
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(
        server.rotations(100),
        0,
        "the service had acted: never again"
    );
    let last = read_records(&journal).pop().unwrap();
    assert_eq!(last["outcome"], "rotated");
    assert_eq!(last["recovered"], true);
    assert_eq!(
        last["api_key"].as_str(),
        Some(server.api_key(100).unwrap().expose())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_output_file_that_cannot_be_a_file_is_refused_before_sending() {
    let env = Env::new().await;
    let alice = env.id("alice");
    let dir = tempfile("x").parent().unwrap().to_path_buf();
    let existing_dir = dir.join("existing");
    std::fs::create_dir(&existing_dir).unwrap();
    let cases = [
        (format!("{}/newdir/", dir.display()), vec![]),
        (existing_dir.display().to_string(), vec!["--force"]),
        (format!("{}/", existing_dir.display()), vec!["--force"]),
        (format!("{}/missing/key.txt", dir.display()), vec![]),
    ];
    for (path, extra) in cases {
        let mut args = vec![
            "generate-api-key",
            "--user-id",
            &alice,
            "--yes",
            "--output-file",
            &path,
        ];
        args.extend(extra);
        let out = run(env.cmd("admin", &args)).await;
        assert_eq!(code(&out), 2, "{path}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("nothing was sent"),
            "{}",
            stderr(&out)
        );
    }
    assert_eq!(env.server.rotations(alice.parse().unwrap()), 0);
    assert_eq!(
        others_in(&dir, &existing_dir),
        Vec::<std::path::PathBuf>::new()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_created_during_the_rotation_is_not_replaced() {
    let env = Env::slow(Duration::from_millis(1500)).await;
    let path = tempfile("alice.key");
    let mut cmd = env.cmd("admin", &rotate_alice_to(&env, &path));
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(600)).await;
    std::fs::write(&path, "someone else's\n").unwrap();
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "someone else's\n");
    assert!(
        stderr(&out).contains(env.key("alice").expose()),
        "the key goes to stderr instead: {}",
        stderr(&out)
    );
    assert!(others_in(path.parent().unwrap(), &path).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_input_is_bounded_and_must_not_be_empty() {
    let (server, _) = batch_setup(&[]).await;
    let journal = tempfile("out.jsonl");
    let empty = tempfile("empty.txt");
    std::fs::write(&empty, "# nobody\n\n").unwrap();
    let huge = tempfile("huge.txt");
    std::fs::File::create(&huge)
        .unwrap()
        .set_len(65 * 1024 * 1024)
        .unwrap();
    let long = tempfile("long.txt");
    std::fs::write(&long, format!("100\n{}\n", "1".repeat(5000))).unwrap();
    for (ids, says) in [
        (empty.as_path(), "lists no user ID"),
        (huge.as_path(), "larger than 64 MiB"),
        (long.as_path(), "line 2 is longer than"),
        (Path::new("/dev/zero"), "line 1 is longer than"),
    ] {
        let started = Instant::now();
        let out = run(batch_cmd(&server, ids, &journal)).await;
        assert_eq!(code(&out), 2, "{}: {}", ids.display(), stderr(&out));
        assert!(stderr(&out).contains(says), "{}", stderr(&out));
        assert!(started.elapsed() < Duration::from_secs(10));
    }
    assert!(!journal.exists(), "no journal for a refused run");
    assert_eq!(server.soap_requests(), 0);
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_readable_journal_is_made_private_and_the_id_list_is_not_the_journal() {
    use std::os::unix::fs::PermissionsExt;
    let (server, ids) = batch_setup(&[100]).await;
    let journal = tempfile("out.jsonl");
    assert_eq!(code(&run(batch_cmd(&server, &ids, &journal)).await), 0);
    std::fs::set_permissions(&journal, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::write(&ids, "101\n").unwrap();
    let out = run(batch_cmd(&server, &ids, &journal)).await;
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(stderr(&out).contains("mode is now 600"), "{}", stderr(&out));
    assert_eq!(mode(&journal), 0o600);

    // The same file under another name.
    let alias = ids.parent().unwrap().join("alias.jsonl");
    std::fs::hard_link(&ids, &alias).unwrap();
    let out = run(batch_cmd(&server, &ids, &alias)).await;
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(stderr(&out).contains("same file"), "{}", stderr(&out));
    assert_eq!(std::fs::read_to_string(&ids).unwrap(), "101\n");
    assert_eq!(server.rotations(101), 1);
}

/// A raw SOAP server on loopback: reads each request (up to 8 connections)
/// and sends the response `answer` gives for it, or hangs up without one.
async fn canned_server(answer: impl Fn(&str) -> Option<String> + Send + Sync + 'static) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/x", listener.local_addr().unwrap());
    let answer = std::sync::Arc::new(answer);
    tokio::spawn(async move {
        use tokio::io::AsyncWriteExt;
        for _ in 0..8 {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let answer = answer.clone();
            tokio::spawn(async move {
                let Some(request) = common::read_http_request(&mut sock).await else {
                    return;
                };
                if let Some(body) = answer(&request) {
                    let response = format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: text/xml; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = sock.write_all(response.as_bytes()).await;
                }
            });
        }
    });
    url
}

/// A server that reads each request and hangs up without answering.
async fn hang_up_server() -> String {
    canned_server(|_| None).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_login_outcome_gives_the_logins_own_advice() {
    let mut cmd = ecgridos(&["login"]);
    cmd.env("ECGRID_ENDPOINT", hang_up_server().await)
        .env("ECGRID_LOGIN", "admin")
        .env("ECGRID_PASSWORD", "pw");
    let out = run(cmd).await;
    assert_eq!(code(&out), 5, "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("a session may have been opened"), "{err}");
    assert!(!err.contains("get-api-key"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_keys_are_taken_from_the_environment_only() {
    let env = Env::new().await;
    let key = env.key("admin");
    for args in [
        vec!["--api-key-from-env", key.expose(), "whoami"],
        vec![
            "compare",
            "--user-id",
            "1002",
            "--forbidden-user-id",
            "1003",
            "--forbidden-api-key-from-env",
            key.expose(),
        ],
    ] {
        let mut cmd = ecgridos(&args);
        cmd.env("ECGRID_ENDPOINT", env.server.soap_url());
        let out = run(cmd).await;
        assert_eq!(code(&out), 2, "{}", stderr(&out));
        assert!(
            stderr(&out).contains("unexpected argument"),
            "{}",
            stderr(&out)
        );
    }
    assert_eq!(env.server.soap_requests(), 0);
}

/// Runs `args` in `dir` under strace and returns strace's log.
async fn traced(mut cmd: Command, dir: &Path) -> (Output, String) {
    let log = dir.join("strace.log");
    let mut st = Command::new("strace");
    st.args(["-f", "-e", "trace=openat,fsync,rename,renameat2,link", "-o"])
        .arg(&log)
        .arg(cmd.get_program())
        .args(cmd.get_args())
        .current_dir(dir)
        .stdin(Stdio::null());
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => st.env(k, v),
            None => st.env_remove(k),
        };
    }
    cmd = st;
    let out = run(cmd).await;
    let text = std::fs::read_to_string(&log).unwrap();
    std::fs::remove_file(&log).unwrap();
    (out, text)
}

/// The descriptor of the last `openat` of "." before `after`, and whether an
/// `fsync` of it follows.
fn dot_synced_after(log: &str, after: &str) -> bool {
    let Some(start) = log.find(after) else {
        return false;
    };
    let rest = &log[start..];
    rest.lines().any(|l| {
        l.contains("openat(AT_FDCWD, \".\"")
            && l.rsplit("= ").next().is_some_and(|fd| {
                let fd = fd.trim();
                rest.contains(&format!("fsync({fd})"))
            })
    })
}

#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_directory_is_synced_after_renaming_a_key_file_and_creating_a_journal() {
    assert!(
        Command::new("strace").arg("-V").output().is_ok(),
        "strace is needed for this test"
    );
    let env = Env::new().await;
    let dir = tempfile("x").parent().unwrap().to_path_buf();
    let cmd = env.cmd("admin", &rotate_alice_to(&env, Path::new("alice.key")));
    let (out, log) = traced(cmd, &dir).await;
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(dot_synced_after(&log, "\"alice.key\""), "{log}");

    std::fs::write(dir.join("ids.txt"), format!("{}\n", env.id("bob"))).unwrap();
    let cmd = env.cmd(
        "admin",
        &[
            "generate-api-key",
            "--user-ids-from",
            "ids.txt",
            "--output-file",
            "out.jsonl",
            "--yes",
        ],
    );
    let (out, log) = traced(cmd, &dir).await;
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(dot_synced_after(&log, "\"out.jsonl\", O_"), "{log}");
}

#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_process_cannot_dump_core() {
    // The /proc entries of a non-dumpable process belong to root instead of
    // the process's user; as root, the child runs as an unprivileged user so
    // that the difference shows.
    use std::os::unix::fs::MetadataExt;
    use std::os::unix::process::CommandExt;
    let mut cmd = ecgridos(&["serve-mock"]);
    if std::fs::metadata("/proc/self").unwrap().uid() == 0 {
        cmd.uid(65534).gid(65534);
    }
    let (mut child, _) = serve_mock(cmd);
    let pid = child.id();
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let core = limits
        .lines()
        .find(|l| l.starts_with("Max core file size"))
        .unwrap();
    let values: Vec<&str> = core.split_whitespace().skip(4).take(2).collect();
    assert_eq!(values, ["0", "0"], "{core}");
    let owner = std::fs::metadata(format!("/proc/{pid}/environ"))
        .unwrap()
        .uid();
    kill(pid, "TERM");
    let _ = child.wait();
    assert_eq!(owner, 0, "non-dumpable: /proc entries belong to root");
}

#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_id_list_does_not_spawn_a_task_per_user_up_front() {
    // 300,000 users, one rotation at a time against a server that takes 3 s
    // a call: only a handful of tasks may exist, whatever the list's length.
    let server = FakeServer::builder()
        .users(root_and_users(std::iter::empty()))
        .latency(Duration::from_secs(3))
        .start()
        .await
        .unwrap();
    let ids = tempfile("ids.txt");
    std::fs::write(
        &ids,
        (2..300_002).map(|i| format!("{i}\n")).collect::<String>(),
    )
    .unwrap();
    let journal = tempfile("out.jsonl");
    let mut cmd = batch_cmd(&server, &ids, &journal);
    cmd.args(["--concurrency", "1"])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut child = cmd.spawn().unwrap();
    // Wait until the first call is in flight (the journal is locked and
    // opened by then), then a little longer.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !journal.exists() {
        assert!(Instant::now() < deadline, "the batch did not start");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let status = std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap();
    child.kill().unwrap();
    let _ = child.wait();
    let peak_kib: u64 = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
        .unwrap();
    assert!(
        peak_kib < 150 * 1024,
        "peak memory {} MiB for a list of 300,000 users",
        peak_kib / 1024
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signal_during_compare_finishes_the_run_and_starts_no_other_rotation() {
    // Each call takes 300 ms; the signal comes during the SOAP run.
    let env = Env::slow(Duration::from_millis(300)).await;
    let alice = env.id("alice");
    let cmd = env.cmd("admin", &["compare", "--user-id", &alice, "--yes"]);
    let out = signalled(cmd, &[(800, "INT")]).await;
    assert_eq!(code(&out), 130, "{}", stderr(&out));
    assert_eq!(env.server.rotations(alice.parse().unwrap()), 1);
    assert!(
        stdout(&out).contains(&format!(
            "new key for user {alice} from the soap run (in force now): {}",
            env.key("alice").expose()
        )),
        "{}",
        stdout(&out)
    );
}
