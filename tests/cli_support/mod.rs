//! Running the `ecgridos` binary from a test, shared by the CLI and proxy tests.

use std::io::Write;
use std::process::{Command, Output, Stdio};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_ecgridos");

/// A command with no `ECGRID_*` or proxy variables inherited from the
/// environment, and no stdin.
pub fn ecgridos<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Command {
    let mut cmd = Command::new(BIN);
    forget_inherited_settings(&mut cmd);
    cmd.args(args).stdin(Stdio::null());
    cmd
}

/// Removes the `ECGRID_*` and proxy variables this process inherited from
/// `cmd`'s environment, so that only what a test sets reaches the binary.
pub fn forget_inherited_settings(cmd: &mut Command) {
    for (name, _) in std::env::vars_os() {
        let Some(text) = name.to_str() else { continue };
        if text.starts_with("ECGRID_") || text.to_ascii_lowercase().ends_with("_proxy") {
            cmd.env_remove(&name);
        }
    }
}

/// Runs `cmd` to completion off the async runtime's threads.
pub async fn run(mut cmd: Command) -> Output {
    tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap()
}

/// Runs `cmd` to completion with `input` on its stdin.
#[allow(dead_code)] // not every test file types on stdin
pub async fn run_with_stdin(mut cmd: Command, input: &'static str) -> Output {
    tokio::task::spawn_blocking(move || {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap()
}

/// Runs `args` under a pseudo-terminal (util-linux `script`), typing
/// `input`: the exit code and the screen (stdout and stderr together).
#[allow(dead_code)] // not every test file needs a terminal
pub async fn on_terminal(env: &[(&str, String)], args: &str, input: &'static str) -> (i32, String) {
    let mut cmd = Command::new("script");
    cmd.args(["-qec", &format!("{BIN} {args}"), "/dev/null"]);
    forget_inherited_settings(&mut cmd);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = run_with_stdin(cmd, input).await;
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// Where the child's standard output goes.
#[allow(dead_code)] // not every test file needs every sink
#[derive(Clone, Copy, Debug)]
pub enum Sink {
    /// File descriptor 1 closed.
    Closed,
    /// `/dev/full`: every write fails with ENOSPC.
    Full,
    /// A pipe whose reader is already gone: EPIPE.
    BrokenPipe,
}

/// Runs `cmd` with its standard output pointing at `sink`.
#[allow(dead_code)] // not every test file writes into a sink
pub async fn run_into(cmd: Command, sink: Sink) -> Output {
    let mut cmd = match sink {
        Sink::Closed => {
            // The same program, arguments and environment, behind a shell
            // that closes descriptor 1 before exec.
            let mut sh = Command::new("sh");
            sh.arg("-c")
                .arg("exec \"$0\" \"$@\" >&-")
                .arg(cmd.get_program())
                .args(cmd.get_args());
            for (k, v) in cmd.get_envs() {
                match v {
                    Some(v) => sh.env(k, v),
                    None => sh.env_remove(k),
                };
            }
            sh.stdin(Stdio::null());
            sh
        }
        _ => cmd,
    };
    tokio::task::spawn_blocking(move || {
        cmd.stderr(Stdio::piped());
        match sink {
            Sink::Closed => {}
            Sink::Full => {
                cmd.stdout(std::fs::File::create("/dev/full").unwrap());
            }
            Sink::BrokenPipe => {
                cmd.stdout(Stdio::piped());
            }
        }
        let mut child = cmd.spawn().unwrap();
        drop(child.stdout.take());
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap()
}

/// Every form a text may carry `secret` in: as is, upper and lower case,
/// base64 (standard and URL-safe, and the part that stands for it inside a
/// longer base64 text at each of the 3 alignments), percent-encoded (upper
/// and lower hex), XML-escaped.
#[allow(dead_code)] // not every test file looks for leaks
pub fn secret_forms(secret: &str) -> Vec<String> {
    use base64::Engine as _;
    let mut all = vec![
        secret.to_string(),
        secret.to_ascii_uppercase(),
        secret.to_ascii_lowercase(),
    ];
    for engine in [
        base64::engine::general_purpose::STANDARD,
        base64::engine::general_purpose::URL_SAFE,
    ] {
        all.push(engine.encode(secret));
        for offset in 0..3usize {
            let mut bytes = vec![0u8; offset];
            bytes.extend_from_slice(secret.as_bytes());
            let text = engine.encode(&bytes);
            // The characters that depend on the secret's bits alone.
            let start = (offset * 8).div_ceil(6);
            let end = (offset + secret.len()) * 8 / 6;
            all.push(text[start..end].to_string());
        }
    }
    let percent: String = secret
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    all.push(percent.to_ascii_lowercase());
    all.push(percent);
    let xml = secret
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    all.push(xml.to_ascii_uppercase());
    all.push(xml);
    all
}
