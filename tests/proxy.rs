//! Through a real HTTP proxy (tinyproxy, installed by `.ci/run`): SOAP over
//! CONNECT to the fake serving HTTPS, plain HTTP forwarded, basic
//! authentication right and wrong, a tunnel refused, `NO_PROXY` bypassing it,
//! and an unreachable proxy. The proxy's own log proves what went through it.
//! The CLI runs at TRACE with a proxy password and a client key, and neither
//! appears in its output.

use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod cli_support;

use ecgridos::fake::{FakeServer, FakeTls};
use ecgridos::{Client, ClientBuilder, ProxyRefusal, RetryPolicy, UserId};

use cli_support::{ecgridos, run};

const PROXY_PASSWORD: &str = "pr0xy-Pa55-sentinel";

/// A scratch directory of this test process.
fn scratch(name: &str) -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("ecgridos-proxy-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A tinyproxy of this test, on its own loopback port with its own config and
/// log; killed on drop.
struct Tinyproxy {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Tinyproxy {
    /// Starts tinyproxy allowing `CONNECT` to `connect_port`, with basic
    /// authentication when `auth` is set. `None` (after a notice) when
    /// tinyproxy is not installed outside CI; in CI that fails the test.
    fn start(name: &str, connect_port: u16, auth: bool) -> Option<Tinyproxy> {
        let installed = Command::new("tinyproxy")
            .arg("-v")
            .output()
            .is_ok_and(|o| o.status.success());
        if !installed {
            let in_ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
            assert!(
                !in_ci,
                "tinyproxy is not installed: .ci/run installs it (apt-get install tinyproxy); \
                 the proxy tests cannot run without it"
            );
            eprintln!("NOTICE: tinyproxy is not installed; skipping this proxy test");
            return None;
        }
        let dir = scratch(name);
        let log = dir.join("tinyproxy.log");
        let port = free_port();
        let mut config = format!(
            "Port {port}\nListen 127.0.0.1\nTimeout 30\nLogFile \"{}\"\nLogLevel Info\n\
             MaxClients 20\nAllow 127.0.0.1\nConnectPort {connect_port}\n",
            log.display()
        );
        if auth {
            config.push_str(&format!("BasicAuth proxyuser {PROXY_PASSWORD}\n"));
        }
        let conf = dir.join("tinyproxy.conf");
        std::fs::write(&conf, config).unwrap();
        let child = Command::new("tinyproxy")
            .arg("-d")
            .arg("-c")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "tinyproxy did not start listening"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(Tinyproxy { child, port, log })
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn url_with(&self, password: &str) -> String {
        format!("http://proxyuser:{password}@127.0.0.1:{}", self.port)
    }

    /// Asserts the proxy's log records a request line containing `needle`.
    fn assert_saw(&self, needle: &str) {
        let requests = self.requests();
        assert!(
            requests.iter().any(|l| l.contains(needle)),
            "no {needle:?} went through the proxy: {requests:?}"
        );
    }

    /// The proxy's log lines that record a request line.
    fn requests(&self) -> Vec<String> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("Request (file descriptor"))
            .map(str::to_string)
            .collect()
    }
}

impl Drop for Tinyproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn https_fake() -> FakeServer {
    FakeServer::builder()
        .tls(FakeTls::new())
        .start()
        .await
        .unwrap()
}

fn via(proxy: &str, server: &FakeServer) -> ClientBuilder {
    let mut builder = Client::builder()
        .endpoint(server.soap_url())
        .proxy(proxy)
        .proxy_from_env(false)
        .retry(RetryPolicy::none());
    if let Some(tls) = server.tls() {
        builder = builder.add_root_certificate(tls.ca_cert_pem());
    }
    builder
}

async fn rotate_alice(
    server: &FakeServer,
    client: &Client,
) -> Result<ecgridos::ApiKey, ecgridos::Error> {
    let alice = server.user("alice").unwrap();
    client
        .generate_api_key(&alice.api_key.unwrap(), UserId::from(alice.user_id))
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soap_over_connect_to_the_https_fake() {
    let server = https_fake().await;
    let port = server.addr().port();
    let Some(proxy) = Tinyproxy::start("connect", port, false) else {
        return;
    };
    let client = via(&proxy.url(), &server).build().unwrap();
    let key = rotate_alice(&server, &client).await.unwrap();
    assert_eq!(
        server.api_key(server.user("alice").unwrap().user_id),
        Some(key)
    );
    proxy.assert_saw(&format!("CONNECT 127.0.0.1:{port}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_is_forwarded() {
    let server = FakeServer::start().await.unwrap();
    let Some(proxy) = Tinyproxy::start("forward", 443, false) else {
        return;
    };
    let client = via(&proxy.url(), &server).build().unwrap();
    assert!(!client.version().await.unwrap().is_empty());
    proxy.assert_saw(&format!("POST {} HTTP/1.1", server.soap_url()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_authentication_right_and_wrong() {
    let server = https_fake().await;
    let port = server.addr().port();
    let Some(proxy) = Tinyproxy::start("auth", port, true) else {
        return;
    };

    // Wrong password over CONNECT: the proxy refuses, the service saw nothing,
    // and the rotation is known not to have happened. (tinyproxy answers a
    // wrong password with 401 rather than 407, so this is a refused tunnel;
    // missing credentials get the 407 below.)
    let wrong = via(&proxy.url_with("wrong-password"), &server)
        .build()
        .unwrap();
    let err = rotate_alice(&server, &wrong).await.unwrap_err();
    assert!(err.is_proxy(), "{err:?}");
    assert_eq!(err.proxy_refusal(), Some(ProxyRefusal::TunnelRefused));
    assert!(!err.is_outcome_unknown());
    assert_eq!(server.soap_requests(), 0);
    assert!(err.to_string().contains("proxy"), "{err}");
    // No credentials at all.
    let none = via(&proxy.url(), &server).build().unwrap();
    let err = none.version().await.unwrap_err();
    assert_eq!(
        err.proxy_refusal(),
        Some(ProxyRefusal::AuthenticationRequired),
        "{err:?}"
    );

    let right = via(&proxy.url_with(PROXY_PASSWORD), &server)
        .build()
        .unwrap();
    rotate_alice(&server, &right).await.unwrap();
    assert_eq!(server.rotations(server.user("alice").unwrap().user_id), 1);
    proxy.assert_saw(&format!("CONNECT 127.0.0.1:{port}"));

    // Plain HTTP forwarded: without credentials the proxy answers 407
    // itself, before forwarding: a proxy refusal, the rotation not sent.
    let plain = FakeServer::start().await.unwrap();
    let anonymous = via(&proxy.url(), &plain).build().unwrap();
    let err = rotate_alice(&plain, &anonymous).await.unwrap_err();
    assert_eq!(
        err.proxy_refusal(),
        Some(ProxyRefusal::AuthenticationRequired),
        "{err:?}"
    );
    assert!(!err.is_outcome_unknown());
    // A wrong password: tinyproxy answers 401 and resets the connection. A
    // 401 could as well be the service's, so the client does not call it
    // the proxy's; the call fails and the service saw nothing.
    let wrong = via(&proxy.url_with("wrong-password"), &plain)
        .build()
        .unwrap();
    let err = wrong.version().await.unwrap_err();
    assert!(!err.is_proxy(), "{err:?}");
    assert_eq!(plain.soap_requests(), 0);
    let right = via(&proxy.url_with(PROXY_PASSWORD), &plain)
        .build()
        .unwrap();
    assert!(right.version().await.is_ok());

    // Nothing shows the password: errors, Debug, the builder.
    let shown = format!(
        "{err} {err:?} {:?}",
        via(&proxy.url_with(PROXY_PASSWORD), &plain)
    );
    assert!(!shown.contains(PROXY_PASSWORD), "{shown}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_tunnel_is_the_proxys_refusal() {
    let server = https_fake().await;
    // CONNECT is allowed to port 443 only, not to the fake's port.
    let Some(proxy) = Tinyproxy::start("tunnel", 443, false) else {
        return;
    };
    let client = via(&proxy.url(), &server).build().unwrap();
    let err = rotate_alice(&server, &client).await.unwrap_err();
    assert_eq!(
        err.proxy_refusal(),
        Some(ProxyRefusal::TunnelRefused),
        "{err:?}"
    );
    assert_eq!(err.kind(), ecgridos::ErrorKind::Proxy);
    assert_eq!(server.soap_requests(), 0);
}

#[tokio::test]
async fn an_unreachable_proxy_is_the_proxys_fault_not_the_services() {
    let closed = format!("http://127.0.0.1:{}", free_port());
    for server in [FakeServer::start().await.unwrap(), https_fake().await] {
        let client = via(&closed, &server).build().unwrap();
        let err = rotate_alice(&server, &client).await.unwrap_err();
        assert_eq!(
            err.proxy_refusal(),
            Some(ProxyRefusal::Unreachable),
            "{err:?}"
        );
        assert!(!err.is_outcome_unknown());
        assert_eq!(server.soap_requests(), 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn environment_proxies_are_honoured_and_no_proxy_bypasses_them() {
    let Some(proxy) = Tinyproxy::start("env", 443, false) else {
        return;
    };
    // A host that is not loopback (and resolves nowhere): through the proxy
    // the request line reaches its log; direct, the lookup fails.
    let remote = "http://ecgrid.invalid:8080/v4.1/prod/ECGridOS.asmx";
    let version = |extra: &[(&str, &str)], flags: &[&str]| {
        let mut args = vec![
            "version",
            "--endpoint",
            remote,
            "--allow-insecure-http",
            "--timeout",
            "5",
        ];
        args.extend_from_slice(flags);
        let mut cmd = ecgridos(&args);
        for (k, v) in extra {
            cmd.env(k, v);
        }
        cmd
    };
    let proxied = run(version(&[("HTTP_PROXY", &proxy.url())], &[])).await;
    assert_ne!(proxied.status.code(), Some(0), "{proxied:?}");
    // (A read that failed is retried: each attempt went through it.)
    let through = proxy.requests().len();
    assert!(through >= 1, "HTTP_PROXY was not used");
    proxy.assert_saw("POST http://ecgrid.invalid:8080/");

    let bypassed = run(version(
        &[("HTTP_PROXY", &proxy.url()), ("NO_PROXY", "ecgrid.invalid")],
        &[],
    ))
    .await;
    assert_eq!(bypassed.status.code(), Some(4), "{bypassed:?}");
    let ignored = run(version(
        &[("HTTP_PROXY", &proxy.url())],
        &["--no-env-proxy"],
    ))
    .await;
    assert_eq!(ignored.status.code(), Some(4), "{ignored:?}");
    assert_eq!(
        proxy.requests().len(),
        through,
        "NO_PROXY and --no-env-proxy must bypass the proxy"
    );

    // --proxy / ECGRID_PROXY win over the environment.
    let flagged = run(version(
        &[("ECGRID_PROXY", &proxy.url())],
        &["--no-env-proxy"],
    ))
    .await;
    assert_ne!(flagged.status.code(), Some(0), "{flagged:?}");
    assert!(proxy.requests().len() > through);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loopback_endpoints_never_go_through_an_environment_proxy() {
    let server = FakeServer::start().await.unwrap();
    let Some(proxy) = Tinyproxy::start("loopback", 443, false) else {
        return;
    };
    let key = server.user("alice").unwrap().api_key.unwrap();
    let url = proxy.url();
    let env = [
        ("HTTP_PROXY", url.as_str()),
        ("http_proxy", url.as_str()),
        ("ALL_PROXY", url.as_str()),
        ("all_proxy", url.as_str()),
    ];
    let command = |args: &[&str]| {
        let mut cmd = ecgridos(args);
        cmd.env("ECGRID_API_KEY", key.expose())
            .env("ECGRID_REST_URL", server.rest_url());
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd
    };
    let soap = server.soap_url();
    let by_name = soap.replace("127.0.0.1", "localhost");
    for endpoint in [&soap, &by_name] {
        let out = run(command(&["whoami", "--endpoint", endpoint])).await;
        assert_eq!(out.status.code(), Some(0), "{endpoint}: {out:?}");
    }
    let out = run(command(&["whoami", "--protocol", "rest"])).await;
    assert_eq!(out.status.code(), Some(0), "rest: {out:?}");
    // A replay allowed to write, which it may only do against loopback.
    let recording = scratch("loopback-replay").join("calls.jsonl");
    std::fs::write(
        &recording,
        "{\"operation\":\"Version\",\"protocol\":\"1.1\",\"method\":\"POST\",\
         \"parameters\":{},\"result\":\"4.1\",\"status\":200,\"outcome\":\"complete\"}\n",
    )
    .unwrap();
    for over in ["soap", "rest"] {
        let out = run(command(&[
            "replay",
            recording.to_str().unwrap(),
            "--over",
            over,
            "--allow-writes",
            "--endpoint",
            &soap,
        ]))
        .await;
        assert_eq!(out.status.code(), Some(0), "replay over {over}: {out:?}");
    }
    assert_eq!(
        proxy.requests(),
        Vec::<String>::new(),
        "a loopback endpoint went through the environment's proxy"
    );
    assert_eq!(server.soap_calls("WhoAmI"), 2);
    assert_eq!(server.soap_calls("Version"), 1);

    // An explicit --proxy is what the user asked for: it still applies.
    let out = run(command(&["whoami", "--endpoint", &soap, "--proxy", &url])).await;
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(proxy.requests().len(), 1, "--proxy was not used");
    proxy.assert_saw(&format!("POST {soap} HTTP/1.1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_proxy_password_client_key_or_ca_key_in_trace_logs() {
    // serve-mock --tls --require-client-cert at TRACE, read its ready line.
    let mut mock = ecgridos(&["serve-mock", "--tls", "--require-client-cert", "-vvv"])
        .env("ECGRID_LOG", "trace")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(mock.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let ready: serde_json::Value = serde_json::from_str(&line).unwrap();
    let soap_url = ready["soap_url"].as_str().unwrap().to_string();
    assert!(soap_url.starts_with("https://127.0.0.1:"), "{soap_url}");
    let path = |name: &str| ready[name].as_str().unwrap().to_string();
    let (ca, cert, key) = (path("ca_cert"), path("client_cert"), path("client_key"));
    let key_text = std::fs::read_to_string(&key).unwrap();
    assert!(key_text.contains("PRIVATE KEY"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    let port = soap_url
        .trim_start_matches("https://127.0.0.1:")
        .split('/')
        .next()
        .unwrap()
        .parse::<u16>()
        .unwrap();
    let api_key = ready["users"][0]["api_key"].as_str().unwrap().to_string();

    let whoami = |flags: &[&str]| {
        let mut args = vec!["whoami", "-vvv", "--endpoint", soap_url.as_str()];
        args.extend_from_slice(flags);
        let mut cmd = ecgridos(&args);
        cmd.env("ECGRID_LOG", "trace")
            .env("ECGRID_API_KEY", &api_key);
        cmd
    };
    // Trusted and with the client certificate: accepted.
    let ok = run(whoami(&[
        "--ca-cert",
        &ca,
        "--client-cert",
        &cert,
        "--client-key",
        &key,
    ]))
    .await;
    assert_eq!(ok.status.code(), Some(0), "{ok:?}");
    // Without the client certificate: refused by TLS, exit 4, says which check.
    let no_cert = run(whoami(&["--ca-cert", &ca])).await;
    assert_eq!(no_cert.status.code(), Some(4), "{no_cert:?}");
    assert!(String::from_utf8_lossy(&no_cert.stderr).contains("client certificate"));
    // Without the CA: untrusted.
    let untrusted = run(whoami(&[])).await;
    assert_eq!(untrusted.status.code(), Some(4));
    assert!(String::from_utf8_lossy(&untrusted.stderr).contains("untrusted"));

    // Through an authenticating proxy, password in ECGRID_PROXY, wrong and right.
    let mut logs = Vec::new();
    if let Some(proxy) = Tinyproxy::start("leak", port, true) {
        let mut wrong = whoami(&[
            "--ca-cert",
            &ca,
            "--client-cert",
            &cert,
            "--client-key",
            &key,
        ]);
        wrong.env(
            "ECGRID_PROXY",
            format!(
                "http://proxyuser:{PROXY_PASSWORD}x@127.0.0.1:{}",
                proxy.port
            ),
        );
        let wrong = run(wrong).await;
        assert_eq!(wrong.status.code(), Some(4), "{wrong:?}");
        assert!(String::from_utf8_lossy(&wrong.stderr).contains("proxy"));
        let mut right = whoami(&[
            "--ca-cert",
            &ca,
            "--client-cert",
            &cert,
            "--client-key",
            &key,
        ]);
        right.env("ECGRID_PROXY", proxy.url_with(PROXY_PASSWORD));
        let right = run(right).await;
        assert_eq!(right.status.code(), Some(0), "{right:?}");
        assert!(proxy.requests().len() >= 2);
        logs.extend([wrong, right]);
    }

    let pid = mock.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let mock_out = tokio::task::spawn_blocking(move || mock.wait_with_output().unwrap())
        .await
        .unwrap();
    assert_eq!(mock_out.status.code(), Some(0));
    assert!(
        !Path::new(&key).exists(),
        "serve-mock removes the files it made"
    );

    // The key's base64 body, line by line, and the password: in no output.
    let key_lines: Vec<&str> = key_text
        .lines()
        .filter(|l| !l.starts_with("-----") && l.len() > 16)
        .collect();
    assert!(!key_lines.is_empty());
    for output in logs.iter().chain([&ok, &no_cert, &untrusted, &mock_out]) {
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(
            !text.contains(PROXY_PASSWORD),
            "proxy password leaked: {text}"
        );
        assert!(
            !text.contains("PRIVATE KEY"),
            "a private key leaked: {text}"
        );
        for line in &key_lines {
            assert!(!text.contains(line), "the client key leaked: {text}");
        }
    }
    // The logs were at TRACE: the call's span is there.
    assert!(String::from_utf8_lossy(&ok.stderr).contains("ecgridos.call"));
}
