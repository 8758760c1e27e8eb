//! The migration harness: the generic REST call path against the fake, the
//! difference engine on real answers of both protocols, and scenario files
//! run over both protocols by the library and the CLI.

mod cli_support;
mod common;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use cli_support::{ecgridos, run};
use ecgridos::api::request::find;
use ecgridos::api::Params;
use ecgridos::fake::{FakeServer, FakeServerBuilder};
use ecgridos::migrate::diff::compare;
use ecgridos::migrate::scenario::{on_fake, Report, RunOptions, Scenario};
use ecgridos::{Client, ErrorKind, Protocol, RestAuth, RestClient, RetryPolicy};
use quick_xml::events::Event;
use serde_json::Value;
use tokio::io::AsyncWriteExt;

const BOTH: [Protocol; 2] = [Protocol::Soap, Protocol::Rest];

fn shipped() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    files
}

/// Runs `text` over both protocols against fresh fakes made by `configure`.
async fn run_text(
    text: &str,
    configure: impl Fn(FakeServerBuilder) -> FakeServerBuilder,
) -> Report {
    let scenario = Scenario::parse(text).unwrap();
    on_fake::run(&scenario, &BOTH, RunOptions::default(), configure)
        .await
        .unwrap()
}

/// What went wrong in a report, for assertion messages.
fn problems(report: &Report) -> String {
    serde_json::to_string_pretty(report).unwrap()
}

fn temp_file(name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "ecgridos-scenario-{}-{}",
        std::process::id(),
        fastrand::u64(..)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn params(pairs: &[(&str, &str)]) -> Params {
    let mut p = Params::new();
    for (n, v) in pairs {
        p.set(*n, *v);
    }
    p
}

/// Both clients of one fake.
fn clients(server: &FakeServer) -> (Client, RestClient) {
    let soap = Client::builder()
        .endpoint(server.soap_url())
        .build()
        .unwrap();
    let rest = RestClient::builder()
        .base_url(server.rest_url())
        .build()
        .unwrap();
    (soap, rest)
}

#[tokio::test]
async fn call_json_over_rest_follows_the_mapping() {
    let server = FakeServer::start().await.unwrap();
    let (soap, rest) = clients(&server);
    let admin = server.user("admin").unwrap();
    let alice = server.user("alice").unwrap();
    let key = admin.api_key.clone().unwrap();
    let entry = find("UserGetAPIKey").unwrap();
    let id = alice.user_id.to_string();

    let over_rest = rest
        .call_json(entry, &params(&[("UserID", &id)]), RestAuth::ApiKey(&key))
        .await
        .unwrap();
    assert_eq!(over_rest, alice.api_key.as_ref().unwrap().expose());
    assert_eq!(server.rest_calls("key"), 1);

    // The same call over SOAP compares as the same, field by field.
    let over_soap = soap
        .call_json(
            entry,
            &params(&[("SessionID", key.expose()), ("UserID", &id)]),
        )
        .await
        .unwrap();
    assert!(compare("UserGetAPIKey", &Ok(over_soap), &Ok(over_rest)).is_same());

    // A result inside data (Login's token) and a call without credential.
    let login = rest
        .call_json(
            find("Login").unwrap(),
            &params(&[
                ("LoginName", "alice"),
                ("Password", alice.password.expose()),
            ]),
            None,
        )
        .await
        .unwrap();
    assert!(login.as_str().is_some_and(|t| !t.is_empty()));
    let version = rest
        .call_json(find("Version").unwrap(), &Params::new(), None)
        .await
        .unwrap();
    assert_eq!(version, "2.6");
}

#[tokio::test]
async fn rest_errors_have_the_kinds_of_soap_faults() {
    let server = FakeServer::start().await.unwrap();
    let (soap, rest) = clients(&server);
    let alice = server.user("alice").unwrap();
    let key = alice.api_key.clone().unwrap();
    let entry = find("UserGetAPIKey").unwrap();
    for (target, kind) in [
        ("1003", ErrorKind::Authorization),
        ("1002", ErrorKind::Authentication),
    ] {
        let bad = ecgridos::ApiKey::new("not-a-key");
        let auth = if kind == ErrorKind::Authentication {
            &bad
        } else {
            &key
        };
        let r = rest
            .call_json(
                entry,
                &params(&[("UserID", target)]),
                RestAuth::ApiKey(auth),
            )
            .await
            .unwrap_err();
        let s = soap
            .call_json(
                entry,
                &params(&[("SessionID", auth.expose()), ("UserID", target)]),
            )
            .await
            .unwrap_err();
        assert_eq!((r.kind(), s.kind()), (kind, kind), "{r} / {s}");
        assert!(r.is_rest() && s.is_fault());
        assert!(!r.to_string().contains(auth.expose()), "{r}");
    }
}

/// A REST server that answers every request with HTTP 500 and an
/// `InternalError` body, counting the requests.
async fn failing_rest() -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let requests = Arc::new(AtomicUsize::new(0));
    let counter = requests.clone();
    tokio::spawn(async move {
        for _ in 0..8 {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let counter = counter.clone();
            tokio::spawn(async move {
                while common::read_http_request(&mut sock).await.is_some() {
                    counter.fetch_add(1, Ordering::SeqCst);
                    let body = r#"{"success":false,"errorCode":"InternalError","message":"down","data":null}"#;
                    let reply = format!(
                        "HTTP/1.1 500 Internal Server Error\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                        body.len()
                    );
                    if sock.write_all(reply.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (url, requests)
}

#[tokio::test]
async fn call_json_retries_by_the_contracts_effect() {
    let (url, requests) = failing_rest().await;
    let rest = RestClient::builder()
        .base_url(url)
        .retry(RetryPolicy {
            max_attempts: 3,
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(5),
        })
        .build()
        .unwrap();
    let key = ecgridos::ApiKey::new("k");
    let id = params(&[("UserID", "1002")]);
    // A read is retried on 5xx...
    let err = rest
        .call_json(find("UserGetAPIKey").unwrap(), &id, RestAuth::ApiKey(&key))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ServiceError, "{err}");
    assert_eq!(requests.swap(0, Ordering::SeqCst), 3);
    // ...a write (effect "write") is sent once, whatever the answer.
    let err = rest
        .call_json(find("GenerateAPIKey").unwrap(), &id, RestAuth::ApiKey(&key))
        .await
        .unwrap_err();
    assert!(err.is_rest(), "{err}");
    assert_eq!(requests.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn call_json_refuses_before_sending() {
    let server = FakeServer::start().await.unwrap();
    let (_, rest) = clients(&server);
    let key = server.user("admin").unwrap().api_key.unwrap();
    let auth = RestAuth::ApiKey(&key);
    // No REST twin.
    let no_twin = find("NowUTC").unwrap();
    let err = rest
        .call_json(no_twin, &Params::new(), auth)
        .await
        .unwrap_err();
    assert!(err.is_invalid_input(), "{err}");
    // An unknown parameter, a value that does not fit, a missing path value.
    let entry = find("GenerateAPIKey").unwrap();
    for p in [
        params(&[("UserId", "1002")]),
        params(&[("UserID", "many")]),
        Params::new(),
    ] {
        let err = rest.call_json(entry, &p, auth).await.unwrap_err();
        assert!(err.is_invalid_input(), "{err}");
    }
    assert_eq!(server.rest_calls("key-generate"), 0);
    assert_eq!(server.rotations(1002), 0);
}

#[tokio::test]
async fn every_shipped_scenario_passes_over_both_protocols() {
    let files = shipped();
    let names: Vec<String> = files
        .iter()
        .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    for wanted in [
        "inbound-parcels.toml",
        "key-rotation.toml",
        "upload-to-partner.toml",
    ] {
        assert!(names.iter().any(|n| n == wanted), "{wanted} in {names:?}");
    }
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let report = run_text(&text, |b| b).await;
        assert!(report.passed, "{}: {}", file.display(), problems(&report));
        assert_eq!(report.runs.len(), 2);
        // Every step was sent over both and compared.
        assert!(report.comparison.iter().all(|c| c.diff.is_some()));
        // Over one protocol: no comparison.
        let scenario = Scenario::parse(&text).unwrap();
        let one = on_fake::run(&scenario, &[Protocol::Rest], RunOptions::default(), |b| b)
            .await
            .unwrap();
        assert!(one.passed && one.comparison.is_empty() && one.runs.len() == 1);
        assert_eq!(one.runs[0].protocol, "rest");
    }
}

#[tokio::test]
async fn the_cli_runs_a_shipped_scenario_without_showing_keys() {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/key-rotation.toml");
    let out = run(ecgridos(&[
        "scenario".as_ref(),
        "run".as_ref(),
        file.as_os_str(),
    ]))
    .await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("scenario passed"), "{stdout}");
    let header = stdout.lines().next().unwrap();
    for column in ["step", "SOAP", "REST", "verdict"] {
        assert!(header.contains(column), "{header}");
    }
    assert!(stdout
        .lines()
        .any(|l| l.starts_with("rotate") && l.ends_with("same")));

    let out = run(ecgridos(&[
        "scenario".as_ref(),
        "run".as_ref(),
        file.as_os_str(),
        "--json".as_ref(),
    ]))
    .await;
    assert_eq!(out.status.code(), Some(0));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    // The keys read and made are shown redacted (and still compared).
    let read = &doc["runs"][0]["steps"][1];
    assert_eq!(read["step"], "read-key");
    assert_eq!(read["result"], "<redacted>");
    // The fake's keys for scenarios are 32 hex digits: none is printed.
    let hex_run = stdout_hex_run(&out.stdout);
    assert!(hex_run < 32, "{hex_run}");
    assert!(doc["comparison"]
        .as_array()
        .unwrap()
        .iter()
        .all(|c| c["diff"]["fields"].is_array()));
}

/// The longest run of hex digits in `bytes`.
fn stdout_hex_run(bytes: &[u8]) -> usize {
    let (mut longest, mut current) = (0, 0);
    for b in bytes {
        current = if b.is_ascii_hexdigit() {
            current + 1
        } else {
            0
        };
        longest = longest.max(current);
    }
    longest
}

/// A read-only scenario for remote runs against a test's own fake: the
/// credential comes from the environment.
const READS: &str = r#"
name = "reads"

[[user]]
name = "admin"
api_key_env = "SCENARIO_TEST_ADMIN_KEY"
user_id = 1001

[[step]]
name = "whoami"
operation = "WhoAmI"
expect = { LoginName = "admin" }

[[step]]
name = "alice"
operation = "UserInfo"
params = { UserID = 1002 }
expect = { LoginName = "alice", NetworkID = 1 }
"#;

/// Runs `scenario run FILE ARGS` against `server`'s endpoints, as its admin.
async fn run_remote(
    server: &FakeServer,
    file: &Path,
    args: &[&std::ffi::OsStr],
) -> std::process::Output {
    let (soap, rest) = (server.soap_url(), server.rest_url());
    let mut all: Vec<&std::ffi::OsStr> =
        vec!["scenario".as_ref(), "run".as_ref(), file.as_os_str()];
    all.extend(args);
    for arg in ["--endpoint", &soap, "--rest-url", &rest] {
        all.push(arg.as_ref());
    }
    let mut cmd = ecgridos(&all);
    let key = server.user("admin").unwrap().api_key.unwrap();
    cmd.env("SCENARIO_TEST_ADMIN_KEY", key.expose());
    run(cmd).await
}

/// Counts the `<testsuite>`, `<testcase>` and `<failure>` elements of a
/// JUnit document, with each suite's name and declared counts.
fn junit_counts(xml: &str) -> (Vec<(String, String, String)>, usize, usize) {
    let mut reader = quick_xml::Reader::from_str(xml);
    let (mut suites, mut cases, mut failures) = (Vec::new(), 0, 0);
    loop {
        match reader.read_event().unwrap() {
            Event::Start(e) | Event::Empty(e) => {
                let attr = |name: &str| {
                    e.attributes()
                        .map(|a| a.unwrap())
                        .find(|a| a.key.0 == name)
                        .map(|a| {
                            let version = quick_xml::XmlVersion::default();
                            a.normalized_value(version).unwrap().into_owned()
                        })
                        .unwrap_or_default()
                };
                match e.name().0 {
                    "testsuite" => suites.push((attr("name"), attr("tests"), attr("failures"))),
                    "testcase" => cases += 1,
                    "failure" => failures += 1,
                    _ => {}
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    (suites, cases, failures)
}

#[tokio::test]
async fn a_difference_made_on_purpose_fails_with_its_classification() {
    // REST says alice is in network 42; SOAP says 1.
    let server = FakeServer::builder()
        .rest_override("/v2/users/1002", "/data/networkId", 42)
        .start()
        .await
        .unwrap();
    let admin_key = server.user("admin").unwrap().api_key.unwrap();
    let file = temp_file("reads.toml", READS);
    let junit = file.with_file_name("junit.xml");
    let out = run_remote(
        &server,
        &file,
        &["--json".as_ref(), "--junit".as_ref(), junit.as_os_str()],
    )
    .await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(6),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(doc["passed"], false);
    // The REST side was reached (the override applies to REST only) and
    // the difference is classified on the field that differs.
    assert!(server.rest_calls("user") >= 1);
    let alice = &doc["comparison"][1];
    assert_eq!(alice["step"], "alice");
    let fields = alice["diff"]["fields"].as_array().unwrap();
    let network = fields.iter().find(|f| f["path"] == "NetworkID").unwrap();
    assert_eq!(network["class"], "value_differs");
    assert_eq!(
        (network["soap"].clone(), network["rest"].clone()),
        (1.into(), 42.into())
    );
    let login = fields.iter().find(|f| f["path"] == "LoginName").unwrap();
    assert_eq!(
        (login["class"].as_str(), login["rest"].as_str()),
        (Some("renamed"), Some("login"))
    );
    // The expectation NetworkID = 1 fails over REST only.
    let rest_step = &doc["runs"][1]["steps"][1];
    assert_eq!(rest_step["failures"][0], "NetworkID: expected 1, got 42");
    assert!(doc["runs"][0]["steps"][1]["failures"]
        .as_array()
        .unwrap()
        .is_empty());
    // Nothing of the credential in the report.
    assert!(!stdout.contains(admin_key.expose()));

    let xml = std::fs::read_to_string(&junit).unwrap();
    let (suites, cases, failures) = junit_counts(&xml);
    let names: Vec<&str> = suites.iter().map(|s| s.0.as_str()).collect();
    assert_eq!(names, ["soap", "rest", "comparison"]);
    assert_eq!(cases, 6);
    // REST's "alice" fails its expectation; the comparison's "alice" differs.
    assert_eq!(failures, 2, "{xml}");
    assert_eq!(suites[1], ("rest".into(), "2".into(), "1".into()));
    assert_eq!(suites[2], ("comparison".into(), "2".into(), "1".into()));
    assert!(
        xml.contains("NetworkID: value differs (SOAP 1, REST 42)"),
        "{xml}"
    );
}

#[tokio::test]
async fn unmet_expectations_fail_the_step_and_say_why_without_secrets() {
    let report = run_text(
        r#"
        [[step]]
        name = "me"
        operation = "WhoAmI"
        expect = { LoginName = "bob" }

        [[step]]
        name = "key"
        operation = "UserGetAPIKey"
        params = { UserID = 1002 }
        expect = { result = "not-the-key" }

        [[step]]
        name = "missing"
        operation = "UserGetAPIKey"
        params = { UserID = 1002 }
        expect = { error = "ObjectNotFound" }

        [[step]]
        name = "fails"
        operation = "UserGetAPIKey"
        params = { UserID = 999999 }

        [[step]]
        name = "leaky"
        operation = "WhoAmI"
        expect = { LoginName = "${users.alice.password}" }
        "#,
        |b| b,
    )
    .await;
    assert!(!report.passed);
    for run in &report.runs {
        let f: Vec<&Vec<String>> = run.steps.iter().map(|s| &s.failures).collect();
        assert_eq!(
            f[0],
            &vec!["LoginName: expected \"bob\", got \"admin\"".to_string()]
        );
        assert_eq!(
            f[1],
            &vec!["result: expected <redacted>, got <redacted>".to_string()]
        );
        assert_eq!(
            f[2],
            &vec!["expected error NotFound, got a result".to_string()]
        );
        assert_eq!(f[3], &vec!["failed with NotFound".to_string()]);
        // A secret used where none is expected is still not shown.
        assert_eq!(
            f[4],
            &vec!["LoginName: expected \"<redacted>\", got \"admin\"".to_string()]
        );
    }
    // The protocols agree: only expectations failed.
    assert!(
        report.comparison.iter().all(|c| c.is_same()),
        "{}",
        problems(&report)
    );
}

#[tokio::test]
async fn references_reach_earlier_results_through_either_protocol() {
    let report = run_text(
        r#"
        [[user]]
        name = "admin"
        [[user]]
        name = "bob"

        [[step]]
        name = "login"
        operation = "Login"
        params = { LoginName = "bob", Password = "${users.bob.password}" }

        [[step]]
        name = "me"
        operation = "WhoAmI"
        credential = "${login.result}"
        expect = { UserID = "${users.bob.user_id}", LoginName = "${users.bob.login}" }

        [[step]]
        name = "info"
        operation = "UserInfo"
        params = { UserID = "${me.result.UserID}" }
        expect = { LoginName = "bob", MailboxID = "${me.result.MailboxID}" }

        [[step]]
        name = "logout"
        operation = "Logout"
        params = { SessionID = "${login.result}" }

        [[step]]
        name = "session-ended"
        operation = "WhoAmI"
        credential = "${login.result}"
        expect = { error = "Authentication" }

        [[step]]
        name = "nothing-there"
        operation = "UserInfo"
        params = { UserID = "${me.result.NoSuchField}" }
        "#,
        |b| b,
    )
    .await;
    for run in &report.runs {
        let s = &run.steps;
        // The session from Login went as a bearer token over REST, and
        // Logout ended it over both.
        assert!(s[..5].iter().all(|s| s.passed()), "{}", problems(&report));
        assert!(!s[5].sent);
        assert_eq!(
            s[5].failures,
            ["not sent: step \"me\"'s result has no such field"]
        );
    }
    let same: Vec<bool> = report
        .comparison
        .iter()
        .map(|c| c.diff.as_ref().is_some_and(|d| d.is_same()))
        .collect();
    // Logout answers an int over SOAP and a boolean over REST: documented.
    let logout = report.comparison[3].diff.as_ref().unwrap();
    assert!(logout.fields[0].documented.is_some(), "{logout:?}");
    assert_eq!(same, [true, true, true, true, true, false]);
}

#[tokio::test]
async fn unknown_operations_and_parameters_are_refused_before_anything_is_sent() {
    let server = FakeServer::start().await.unwrap();
    let bad = READS
        .replace("UserID = 1002", "UserId = 1002")
        .replace("operation = \"WhoAmI\"", "operation = \"WhoAmEye\"");
    let file = temp_file("bad.toml", &bad);
    let out = run_remote(&server, &file, &[]).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("no operation \"WhoAmEye\""), "{stderr}");
    assert!(
        stderr.contains("UserInfo has no parameter \"UserId\""),
        "{stderr}"
    );
    assert_eq!(server.soap_requests(), 0);
    assert_eq!(server.rest_calls("me") + server.rest_calls("user"), 0);

    // An operation without a REST twin is refused over REST only.
    let soap_only = READS.replace("operation = \"WhoAmI\"", "operation = \"NowUTC\"");
    let scenario = Scenario::parse(&soap_only).unwrap();
    assert!(scenario.check(&[Protocol::Soap]).is_ok());
    let err = scenario.check(&BOTH).unwrap_err();
    assert!(err.is_invalid_input() && err.to_string().contains("NowUTC has no REST twin"));
}

#[tokio::test]
async fn the_users_area_answers_alike_over_both_protocols() {
    let report = run_text(
        r#"
        [[user]]
        name = "admin"
        [[user]]
        name = "alice"

        [[step]]
        name = "everyone"
        operation = "UserList"
        params = { Name = "" }
        expect = { "[0].LoginName" = "admin", "[2].LoginName" = "bob" }

        [[step]]
        name = "only-me"
        operation = "UserListEx"
        as = "alice"
        params = { NetworkID = 0, MailboxID = 0, Name = "" }
        expect = { "[0].UserID" = "${users.alice.user_id}" }

        [[step]]
        name = "by-id"
        operation = "UserInfo"
        params = { UserID = "${users.alice.user_id}" }
        expect = { LoginName = "alice", AuthLevel = "MailboxUser" }

        [[step]]
        name = "by-login"
        operation = "UserInfobyLogin"
        params = { LoginName = "ALICE" }
        expect = { UserID = "${users.alice.user_id}" }

        [[step]]
        name = "unknown-login"
        operation = "UserInfobyLogin"
        params = { LoginName = "nobody" }
        expect = { error = "ObjectNotFound" }

        [[step]]
        name = "not-yours"
        operation = "UserInfo"
        as = "alice"
        params = { UserID = "${users.admin.user_id}" }
        expect = { error = "AccessDenied" }

        [[step]]
        name = "reset"
        operation = "UserReset"
        params = { UserID = "${users.alice.user_id}" }
        "#,
        |b| b,
    )
    .await;
    assert!(report.passed, "{}", problems(&report));
    for run in &report.runs {
        let listed = |i: usize| {
            run.steps[i]
                .result
                .as_ref()
                .unwrap()
                .as_array()
                .unwrap()
                .len()
        };
        assert_eq!((listed(0), listed(1)), (3, 1), "{}", run.protocol);
    }
    // The renames are classified as such.
    let by_id = report.comparison[2].diff.as_ref().unwrap();
    let login = by_id.fields.iter().find(|f| f.path == "LoginName").unwrap();
    assert_eq!(login.class.name(), "renamed");
}

/// A remote scenario that rotates alice's key (once per protocol).
const ROTATES: &str = r#"
name = "rotates"

[[user]]
name = "admin"
api_key_env = "SCENARIO_TEST_ADMIN_KEY"
user_id = 1001

[[step]]
name = "rotate"
operation = "GenerateAPIKey"
params = { UserID = 1002 }
"#;

#[tokio::test]
async fn a_remote_run_that_rotates_keys_warns_and_prints_every_new_key() {
    let server = FakeServer::start().await.unwrap();
    let file = temp_file("rotates.toml", ROTATES);
    // Without --yes the question is shown (and refused): it says so.
    let out = run_remote(&server, &file, &[]).await;
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("rotates an API key"), "{err}");
    assert!(err.contains("every new key is printed"), "{err}");
    assert_eq!(server.rotations(1002), 0);

    let out = run_remote(&server, &file, &["--yes".as_ref()]).await;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let in_force = server.user("alice").unwrap().api_key.unwrap();
    let lines: Vec<&str> = text.lines().filter(|l| l.contains("new key")).collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(lines[0].contains("soap") && lines[0].contains("already replaced"));
    assert!(
        lines[1].contains("rest")
            && lines[1].contains("in force now")
            && lines[1].ends_with(in_force.expose()),
        "{text}"
    );

    let out = run_remote(&server, &file, &["--yes".as_ref(), "--json".as_ref()]).await;
    assert_eq!(out.status.code(), Some(0));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    let in_force = server.user("alice").unwrap().api_key.unwrap();
    assert_eq!(doc["new_keys"].as_array().map(Vec::len), Some(2), "{doc}");
    assert_eq!(doc["api_key_in_force"], in_force.expose());
    assert_eq!(doc["new_keys"][1]["api_key"], in_force.expose());
    assert_eq!(server.rotations(1002), 4);
}
