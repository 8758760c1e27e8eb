//! The real `ecgridos` binary never prints or stores a credential in any
//! form a server may echo it in: in clear, in another case, base64 (alone or
//! as `Basic base64(user:password)`), URL-encoded; nor the credentials of an
//! endpoint URL; nor, unless asked, a secret it reads.

#![cfg(all(feature = "cli", feature = "fake"))]

mod cli_support;

use std::process::Output;

use base64::Engine as _;
use ecgridos::fake::FakeServer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use cli_support::{ecgridos, run, run_with_stdin, secret_forms};

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

fn assert_absent(what: &str, text: &str, secret: &str) {
    for form in secret_forms(secret) {
        assert!(
            !text.contains(&form),
            "{what}: {secret:?} leaked as {form:?} in:\n{text}"
        );
    }
}

/// A loopback HTTP server answering every request with `status` and the
/// body `page` makes of the request (its head and body, as text).
async fn hostile(status: u16, page: fn(&str) -> String) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 8192];
                // The head, then as much body as it declares.
                let (head_end, declared) = loop {
                    let Ok(n) = sock.read(&mut chunk).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                        let len: usize = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .and_then(|v| v.trim().parse().ok())
                            .unwrap_or(0);
                        break (end + 4, len);
                    }
                };
                while buf.len() < head_end + declared {
                    match sock.read(&mut chunk).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let body = page(&String::from_utf8_lossy(&buf));
                let reply = format!(
                    "HTTP/1.1 {status} Echo\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = sock.write_all(reply.as_bytes()).await;
                let _ = sock.shutdown().await;
            });
        }
    });
    format!("127.0.0.1:{}", addr.port())
}

const PROXY_USER: &str = "puser";
const PROXY_PASSWORD: &str = "Pr0xyPW";

/// A forwarding proxy's error page that quotes the request's
/// `Proxy-Authorization` header first (an error snippet shows only the start
/// of a page), then the rest of the head.
fn echo_headers(request: &str) -> String {
    let head = request.split("\r\n\r\n").next().unwrap_or_default();
    let auth = head
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("proxy-authorization:"))
        .unwrap_or("no proxy-authorization");
    format!("<html><h1>502 Bad Gateway</h1><pre>{auth}\n{head}</pre></html>")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_error_page_quoting_the_proxy_authorization_shows_no_proxy_credential() {
    let proxy = hostile(502, echo_headers).await;
    let url = format!("http://{PROXY_USER}:{PROXY_PASSWORD}@{proxy}");
    let mut cmd = ecgridos(&[
        "version",
        "--endpoint",
        "http://127.0.0.1:9/v4.1/prod/ECGridOS.asmx",
        "--no-env-proxy",
    ]);
    cmd.env("ECGRID_PROXY", &url);
    let out = run(cmd).await;
    let err = stderr(&out);
    // The page did reach the error report: the proxy did answer it.
    assert_eq!(code(&out), 4, "{err}");
    assert!(err.contains("502") && err.contains("Bad Gateway"), "{err}");
    let basic = format!("{PROXY_USER}:{PROXY_PASSWORD}");
    assert_absent("stderr", &err, &basic);
    assert_absent("stderr", &err, PROXY_PASSWORD);
    assert_absent("stdout", &stdout(&out), PROXY_PASSWORD);
}

const SESSION: &str = "5f0c1e2a-9b7d-4c3e-8a61-d2f4b6a8c0e1";

/// A server error page that echoes the request's `SessionID` in upper
/// case, base64 (alone and inside a longer text) and URL-encoded.
fn echo_body_forms(request: &str) -> String {
    let session = request
        .split("SessionID>")
        .nth(1)
        .and_then(|rest| rest.split('<').next())
        .unwrap_or("no session");
    let b64 = base64::engine::general_purpose::STANDARD;
    let url: String = session
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02x}")
            }
        })
        .collect();
    format!(
        "<html>invalid request: session {} b64={} sid={} url={url}</html>",
        session.to_ascii_uppercase(),
        b64.encode(session),
        b64.encode(format!("sid={session}")),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_error_page_echoing_the_session_id_in_another_form_does_not_show_it() {
    let server = hostile(500, echo_body_forms).await;
    let mut cmd = ecgridos(&["whoami"]);
    cmd.env(
        "ECGRID_ENDPOINT",
        format!("http://{server}/v4.1/prod/ECGridOS.asmx"),
    )
    .env("ECGRID_SESSION_ID", SESSION);
    let out = run(cmd).await;
    let err = stderr(&out);
    assert_eq!(code(&out), 4, "{err}");
    assert!(err.contains("invalid request"), "{err}");
    assert_absent("stderr", &err, SESSION);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_redacts_secret_results_and_never_shows_the_credential_in_use() {
    let server = FakeServer::start().await.unwrap();
    let admin_key = server.user("admin").unwrap().api_key.unwrap();
    let alice = server.user("alice").unwrap();
    let alice_key = alice.api_key.unwrap();
    let user = format!("UserID={}", alice.user_id);
    let cmd = |args: &[&str]| {
        let mut cmd = ecgridos(args);
        cmd.env("ECGRID_ENDPOINT", server.soap_url())
            .env("ECGRID_API_KEY", admin_key.expose());
        cmd
    };
    for extra in [&[][..], &["--show-secrets"][..]] {
        let mut args = vec!["call", "WhoAmI"];
        args.extend_from_slice(extra);
        let out = run(cmd(&args)).await;
        assert_eq!(code(&out), 0, "{}", stderr(&out));
        let shown = stdout(&out);
        assert!(shown.contains("\"LoginName\":\"admin\""), "{shown}");
        assert!(shown.contains("<redacted>"), "{shown}");
        assert_absent("call WhoAmI stdout", &shown, admin_key.expose());
        assert_absent("call WhoAmI stderr", &stderr(&out), admin_key.expose());
    }
    let out = run(cmd(&["call", "UserGetAPIKey", &user])).await;
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "\"<redacted>\"");
    let out = run(cmd(&["call", "UserGetAPIKey", &user, "--show-secrets"])).await;
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(
        stdout(&out).trim(),
        format!("\"{}\"", alice_key.expose()),
        "asked for, a secret that is not the credential in use is shown"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_takes_secret_parameters_from_the_environment_or_stdin() {
    let server = FakeServer::start().await.unwrap();
    let admin = server.user("admin").unwrap();
    let password = admin.password.expose().to_string();
    let login = |value: &str| {
        let mut cmd = ecgridos(&[
            "call",
            "Login",
            "LoginName=admin",
            &format!("Password={value}"),
            "--yes",
        ]);
        cmd.env("ECGRID_ENDPOINT", server.soap_url())
            .env("TEST_LOGIN_PASSWORD", &password);
        cmd
    };
    let out = run(login("@env:TEST_LOGIN_PASSWORD")).await;
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(stdout(&out).trim().len() > 10, "{}", stdout(&out));
    let out = run(login("@env:TEST_NO_SUCH_VARIABLE")).await;
    assert_eq!(
        code(&out),
        2,
        "an unset variable is refused: {}",
        stderr(&out)
    );
    assert!(
        stderr(&out).contains("TEST_NO_SUCH_VARIABLE"),
        "{}",
        stderr(&out)
    );

    let line: &'static str = Box::leak(format!("{password}\n").into_boxed_str());
    let out = run_with_stdin(login("-"), line).await;
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(stdout(&out).trim().len() > 10, "{}", stdout(&out));
    assert_absent("stderr", &stderr(&out), &password);
}

const URL_USER: &str = "urluser";
const URL_PASSWORD: &str = "Url-Pa55-sentinel";

/// `url` with `user:password@` before its host.
fn with_userinfo(url: &str) -> String {
    url.replacen("http://", &format!("http://{URL_USER}:{URL_PASSWORD}@"), 1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_credentials_of_an_endpoint_url_are_never_printed_or_stored() {
    let server = FakeServer::start().await.unwrap();
    let soap = with_userinfo(&server.soap_url());
    let rest = with_userinfo(&server.rest_url());

    // The confirmation of a scenario's writes names the endpoint.
    let scenario = std::env::temp_dir().join(format!(
        "ecgridos-redaction-{}-{:08x}.toml",
        std::process::id(),
        fastrand::u32(..)
    ));
    std::fs::write(
        &scenario,
        "name = \"w\"\n[[step]]\nname = \"rotate\"\noperation = \"GenerateAPIKey\"\nparams = { UserID = 1 }\n",
    )
    .unwrap();
    let mut cmd = ecgridos(&[
        "scenario".as_ref(),
        "run".as_ref(),
        scenario.as_os_str(),
        "--endpoint".as_ref(),
        soap.as_ref(),
        "--rest-url".as_ref(),
        rest.as_ref(),
    ]);
    cmd.env(
        "ECGRID_API_KEY",
        server.user("admin").unwrap().api_key.unwrap().expose(),
    );
    let out = run(cmd).await;
    let err = stderr(&out);
    assert_eq!(code(&out), 2, "refused without a terminal: {err}");
    assert!(err.contains("change state on"), "{err}");
    assert!(
        err.contains(&server.soap_url()[7..]),
        "the host is named: {err}"
    );
    assert_absent("scenario confirmation", &err, URL_PASSWORD);
    assert!(!err.contains(URL_USER), "{err}");

    // The batch journal's header names the endpoint.
    let dir = scenario.with_extension("d");
    std::fs::create_dir_all(&dir).unwrap();
    let ids = dir.join("ids.txt");
    let alice = server.user("alice").unwrap().user_id.to_string();
    std::fs::write(&ids, format!("{alice}\n")).unwrap();
    let journal = dir.join("journal.jsonl");
    let mut cmd = ecgridos(&[
        "generate-api-key".as_ref(),
        "--user-ids-from".as_ref(),
        ids.as_os_str(),
        "--output-file".as_ref(),
        journal.as_os_str(),
        "--yes".as_ref(),
        "--endpoint".as_ref(),
        soap.as_ref(),
    ]);
    cmd.env(
        "ECGRID_API_KEY",
        server.user("admin").unwrap().api_key.unwrap().expose(),
    );
    let out = run(cmd).await;
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let stored = std::fs::read_to_string(&journal).unwrap();
    let header = stored.lines().next().unwrap();
    assert!(header.contains("127.0.0.1"), "{header}");
    assert_absent("journal header", header, URL_PASSWORD);
    assert!(!header.contains(URL_USER), "{header}");
    assert_absent("stderr", &stderr(&out), URL_PASSWORD);
    assert_absent("stdout", &stdout(&out), URL_PASSWORD);
}
