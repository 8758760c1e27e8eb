//! Parcels side by side in one run: a 100 MB parcel downloaded to disk and
//! uploaded from disk by the `ecgridos` CLI against the in-process fake, next
//! to a bare `curl` of the same request and response bytes (the practical
//! limit: no XML, no base64) and next to zeep; then a listing of 10,000
//! inbound parcels, the library against zeep on the same bytes.
//!
//! Peak RSS is each child's own `VmHWM` (the CLI, curl, python as zeep's
//! script reports it). Times are wall times, the best of three runs for the
//! CLI and curl, one for zeep. Run it by hand:
//!
//! ```text
//! python3 bench/compare_parcels_zeep.py --setup   # once: zeep into bench/.venv
//! cargo bench --bench parcels                     # ECGRID_BENCH_PARCEL_MB=100
//! ```
//!
//! Without curl or the venv their columns say so and the rest still runs.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use ecgridos::fake::FakeServer;
use ecgridos::parcels::ParcelClient;
use ecgridos::{Client, Credential};

/// The CLI under test (built with the bench profile).
const CLI: &str = env!("CARGO_BIN_EXE_ecgridos");
/// The peak RSS the CLI may reach for a 100 MB transfer.
const RSS_TARGET_KB: u64 = 32 * 1024;
/// Parcels in the listing.
const LISTED: usize = 10_000;

/// One child process's wall time and peak RSS.
#[derive(Clone, Copy, Debug)]
struct Run {
    seconds: f64,
    max_rss_kb: u64,
}

/// The high-water mark of a process's resident memory (`VmHWM`), in kB.
fn vm_hwm_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Runs `cmd` to completion: its wall time and peak RSS. The peak is the
/// child's own `VmHWM`, read every few milliseconds while it runs (it only
/// grows, so the last reading is the peak up to then): `wait4`'s
/// `ru_maxrss` would count the pages of this (large) bench process that the
/// child shared until its `exec`. `None` when it cannot be started or fails.
fn measure(mut cmd: Command) -> Option<Run> {
    let started = Instant::now();
    let mut child = cmd.stdout(Stdio::null()).spawn().ok()?;
    let pid = child.id();
    let mut peak = 0;
    let status = loop {
        if let Some(kb) = vm_hwm_kb(pid) {
            peak = peak.max(kb);
        }
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) => std::thread::sleep(Duration::from_millis(2)),
            Err(_) => return None,
        }
    };
    let seconds = started.elapsed().as_secs_f64();
    if !status.success() {
        eprintln!("  {:?} failed ({status})", cmd.get_program());
        return None;
    }
    Some(Run {
        seconds,
        max_rss_kb: peak,
    })
}

/// Times each transfer is repeated (the best time and the highest peak RSS
/// are kept: the machine is shared).
const RUNS: usize = 3;

/// [`measure`] `RUNS` times, each with a fresh command from `make` (which
/// may also reset what the previous run left).
fn best_of(mut make: impl FnMut() -> Command) -> Option<Run> {
    let mut best: Option<Run> = None;
    for _ in 0..RUNS {
        let run = measure(make())?;
        best = Some(match best {
            None => run,
            Some(b) => Run {
                seconds: b.seconds.min(run.seconds),
                max_rss_kb: b.max_rss_kb.max(run.max_rss_kb),
            },
        });
    }
    best
}

/// The venv's python with zeep, when it was set up.
fn zeep_python() -> Option<PathBuf> {
    let python = Path::new(env!("CARGO_MANIFEST_DIR")).join("bench/.venv/bin/python");
    let ok = Command::new(&python)
        .args(["-c", "import zeep"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    ok.then_some(python)
}

/// Runs the zeep script; its JSON answer.
fn zeep(python: &Path, args: &[&str]) -> Option<(Run, serde_json::Value)> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("bench/compare_parcels_zeep.py");
    let started = Instant::now();
    let child = Command::new(python)
        .arg(script)
        .args(args)
        .stdout(Stdio::piped())
        .spawn()
        .ok()?;
    let out = child.wait_with_output().ok()?;
    let wall = started.elapsed().as_secs_f64();
    if !out.status.success() {
        eprintln!("  zeep {} failed", args[0]);
        return None;
    }
    let value: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    let run = Run {
        seconds: value["seconds"].as_f64().unwrap_or(wall),
        max_rss_kb: value["max_rss_kb"].as_u64().unwrap_or(0),
    };
    Some((run, value))
}

fn has_curl() -> bool {
    Command::new("curl")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn curl(url: &str, action: &str, body: &Path, out: &Path) -> Command {
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "--fail", "-o"])
        .arg(out)
        .args(["-H", "Content-Type: text/xml; charset=utf-8", "-H"])
        .arg(format!("SOAPAction: \"https://os.ecgrid.io/{action}\""))
        // -T streams the body from the file (--data-binary @FILE would
        // read it whole first).
        .args(["-X", "POST", "-T"])
        .arg(body)
        .arg(url);
    cmd
}

fn envelope(operation: &str, params: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?><soap:Envelope xmlns:soap=\"http://schemas.xmlsoap.org/soap/envelope/\"><soap:Body><{operation} xmlns=\"https://os.ecgrid.io/\">{params}</{operation}></soap:Body></soap:Envelope>"
    )
}

fn mb(kb: u64) -> String {
    format!("{:.1} MB", kb as f64 / 1024.0)
}

/// "ecgridos 1.23 s, RSS 12.3 MB" and the ratios to the others.
fn row(what: &str, ours: Option<Run>, curl: Option<Run>, zeep: Option<Run>) {
    let Some(ours) = ours else {
        println!("{what:<26} ecgridos FAILED");
        return;
    };
    let mut line = format!(
        "{what:<26} ecgridos {:>7.2} s, RSS {:>9}",
        ours.seconds,
        mb(ours.max_rss_kb)
    );
    match curl {
        Some(c) => line.push_str(&format!(
            " | curl {:>6.2} s, RSS {:>9} (ecgridos takes {:.2}x curl's time)",
            c.seconds,
            mb(c.max_rss_kb),
            ours.seconds / c.seconds
        )),
        None => line.push_str(" | curl: not run"),
    }
    match zeep {
        Some(z) => line.push_str(&format!(
            " | zeep {:>6.2} s, RSS {:>9} (ecgridos {:.1}x faster, {:.0}x less memory)",
            z.seconds,
            mb(z.max_rss_kb),
            z.seconds / ours.seconds,
            z.max_rss_kb as f64 / ours.max_rss_kb.max(1) as f64
        )),
        None => line.push_str(" | zeep: not run (python3 bench/compare_parcels_zeep.py --setup)"),
    }
    println!("{line}");
    let verdict = if ours.max_rss_kb <= RSS_TARGET_KB {
        "met"
    } else {
        "NOT met"
    };
    println!(
        "{:<26} peak RSS target <= {}: {verdict}",
        "",
        mb(RSS_TARGET_KB)
    );
}

fn main() {
    // `cargo bench` passes --bench; a filter that is not ours skips the run.
    if std::env::args()
        .skip(1)
        .any(|a| !a.starts_with('-') && !"parcels".contains(&a))
    {
        return;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start a runtime: {e}");
            return;
        }
    };
    let megabytes: usize = std::env::var("ECGRID_BENCH_PARCEL_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    let size = megabytes * 1_000_000;
    let fake = runtime
        .block_on(
            FakeServer::builder()
                .inbox_page_size(LISTED)
                .max_upload_bytes(size * 2 + (1 << 20))
                .start(),
        )
        .expect("the fake starts");
    let work = std::env::temp_dir().join(format!("ecgridos-bench-parcels-{}", std::process::id()));
    let inbound = work.join("inbound");
    std::fs::create_dir_all(&inbound).expect("a scratch directory");
    let alice = fake.user("alice").expect("seeded");
    let key = alice.api_key.expect("seeded").expose().to_string();
    let url = fake.soap_url();
    let python = zeep_python();
    let curl_ok = has_curl();
    println!(
        "parcels bench: {megabytes} MB parcel, listing {LISTED} parcels; curl {}, zeep {}",
        if curl_ok { "found" } else { "NOT installed" },
        if python.is_some() {
            "found"
        } else {
            "not set up"
        }
    );

    let mut rng = fastrand::Rng::with_seed(14);
    let content: Vec<u8> = (0..size).map(|_| rng.u8(..)).collect();
    let parcel = fake
        .deliver("alice", "big.bin", content.clone())
        .expect("delivered");

    // Download to disk: the CLI (not confirming, so curl and zeep can fetch
    // the same parcel afterwards), curl, zeep.
    let stored = inbound.join(format!("{parcel}-big.bin"));
    let ours = best_of(|| {
        // A fresh directory each time: a stored parcel is not fetched again.
        let _ = std::fs::remove_file(&stored);
        let _ = std::fs::remove_file(inbound.join(".ecgridos-parcels.journal"));
        let mut cli = Command::new(CLI);
        cli.args([
            "parcels",
            "fetch",
            "--no-confirm",
            "--quiet",
            "--timeout",
            "600",
            "--to",
        ])
        .arg(&inbound)
        .env("ECGRID_ENDPOINT", &url)
        .env("ECGRID_API_KEY", &key);
        cli
    });
    let same = std::fs::read(&stored).is_ok_and(|b| b == content);
    if !same {
        eprintln!("  the stored file differs from the parcel");
    }
    let download_req = work.join("download.xml");
    let _ = std::fs::write(
        &download_req,
        envelope(
            "ParcelDownload",
            &format!("<SessionID>{key}</SessionID><ParcelID>{parcel}</ParcelID>"),
        ),
    );
    let curl_run = curl_ok
        .then(|| {
            best_of(|| {
                curl(
                    &url,
                    "ParcelDownload",
                    &download_req,
                    &work.join("curl-download.xml"),
                )
            })
        })
        .flatten();
    let _ = std::fs::remove_file(work.join("curl-download.xml"));
    let parcel_arg = parcel.to_string();
    let zeep_out = work.join("zeep-download.bin");
    let zeep_run = python
        .as_deref()
        .and_then(|p| {
            zeep(
                p,
                &["download", &url, &key, &parcel_arg, zeep_out.to_str()?],
            )
        })
        .map(|(run, _)| run);
    let _ = std::fs::remove_file(&zeep_out);
    row(
        &format!("download {megabytes} MB to disk"),
        ours.filter(|_| same),
        curl_run,
        zeep_run,
    );
    let _ = std::fs::remove_file(&stored);

    // Upload from disk, routed by explicit IDs.
    let upload_file = work.join("outbound.bin");
    std::fs::write(&upload_file, &content).expect("the file to upload");
    drop(content);
    let from = fake
        .mailbox_of("alice")
        .expect("seeded")
        .ecgrid_id
        .to_string();
    let to = fake
        .mailbox_of("bob")
        .expect("seeded")
        .ecgrid_id
        .to_string();
    let ours = best_of(|| {
        let mut cli = Command::new(CLI);
        cli.args(["parcels", "upload", "--yes", "--quiet", "--timeout", "600"])
            .arg(&upload_file)
            .args(["--from-ecgrid-id", &from, "--to-ecgrid-id", &to])
            .env("ECGRID_ENDPOINT", &url)
            .env("ECGRID_API_KEY", &key);
        cli
    });
    let curl_run = curl_ok
        .then(|| {
            // The same request body, prepared on disk beforehand.
            let body = work.join("upload.xml");
            let file = std::fs::read(&upload_file).ok()?;
            let params = format!(
                "<SessionID>{key}</SessionID><FileName>outbound.bin</FileName><Bytes>{}</Bytes><Content>{}</Content><ECGridIDFrom>{from}</ECGridIDFrom><ECGridIDTo>{to}</ECGridIDTo>",
                file.len(),
                base64::engine::general_purpose::STANDARD.encode(&file)
            );
            drop(file);
            std::fs::write(&body, envelope("ParcelUploadMft", &params)).ok()?;
            let run = best_of(|| {
                curl(&url, "ParcelUploadMft", &body, &work.join("curl-upload.xml"))
            });
            let _ = std::fs::remove_file(&body);
            run
        })
        .flatten();
    let zeep_run = python
        .as_deref()
        .and_then(|p| {
            zeep(
                p,
                &["upload", &url, &key, upload_file.to_str()?, &from, &to],
            )
        })
        .map(|(run, _)| run);
    row(
        &format!("upload {megabytes} MB from disk"),
        ours,
        curl_run,
        zeep_run,
    );
    let _ = std::fs::remove_file(&upload_file);

    // Listing 10,000 parcels: the library's typed read against zeep's, on the
    // same answer from the same fake (best of 3 each).
    for i in 0..LISTED {
        let _ = fake.deliver("bob", &format!("po-{i}.x12"), vec![b'x'; 64]);
    }
    let bob_key = fake
        .user("bob")
        .and_then(|u| u.api_key)
        .expect("seeded")
        .expose()
        .to_string();
    let client = Client::builder()
        .endpoint(&url)
        .max_response_bytes(512 << 20)
        .timeout(Duration::from_secs(120))
        .build()
        .expect("a client");
    let client = ParcelClient::from(client);
    let cred = Credential::ApiKey(ecgridos::ApiKey::new(bob_key.clone()));
    let mut best: Option<f64> = None;
    let mut count = 0;
    for _ in 0..3 {
        let started = Instant::now();
        match runtime.block_on(client.ready(&cred, None)) {
            Ok(listed) => count = listed.len(),
            Err(e) => {
                eprintln!("  listing failed: {e}");
                break;
            }
        }
        let t = started.elapsed().as_secs_f64();
        best = Some(best.map_or(t, |b: f64| b.min(t)));
    }
    let zeep_list = python
        .as_deref()
        .and_then(|p| zeep(p, &["inbox", &url, &bob_key, "3"]));
    match (best, count == LISTED) {
        (Some(ours), true) => {
            let mut line = format!(
                "{:<26} ecgridos {:>7.1} ms",
                format!("inbox of {LISTED}"),
                ours * 1e3
            );
            match zeep_list {
                Some((z, v)) if v["count"].as_u64() == Some(LISTED as u64) => {
                    line.push_str(&format!(
                        " | zeep {:>8.1} ms (ecgridos {:.1}x faster)",
                        z.seconds * 1e3,
                        z.seconds / ours
                    ))
                }
                _ => line.push_str(" | zeep: not run"),
            }
            println!("{line}");
        }
        _ => println!("inbox of {LISTED}: ecgridos FAILED (listed {count})"),
    }
    let _ = std::fs::remove_dir_all(&work);
}
