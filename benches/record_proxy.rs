//! `ecgridos record` beside a direct call, in one run: N sequential
//! `Version` calls to the embedded fake, direct and through the recording
//! proxy (the real binary), with the added latency per exchange; then the
//! proxy's peak resident memory (VmHWM) while slow clients each send 17 MiB
//! of small elements of a body they never finish, to an upstream that reads
//! and never answers.
//!
//! The binary measured is `ECGRIDOS_BIN` (default: the one built with this
//! bench), so the same run can measure an older build:
//!
//! ```sh
//! cargo bench --profile release --bench record_proxy
//! ECGRIDOS_BIN=/path/to/old/ecgridos cargo bench --profile release --bench record_proxy
//! ```

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ecgridos::fake::FakeServer;
use ecgridos::{Client, RetryPolicy};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const CALLS: usize = 500;
const SLOW_CLIENTS: usize = 24;
const SENT: usize = 17 * 1024 * 1024;

/// A running `ecgridos record`: the child and its SOAP URL.
struct Recorder {
    child: Child,
    soap_url: String,
    addr: String,
}

impl Recorder {
    fn start(bin: &str, upstream: &str) -> Recorder {
        let out = std::env::temp_dir().join(format!(
            "ecgridos-bench-record-{}-{}.jsonl",
            std::process::id(),
            fastrand::u32(..)
        ));
        let mut child = Command::new(bin)
            .args(["record", "--upstream", upstream, "--out"])
            .arg(&out)
            .env("ECGRID_RECORD_BODY_TIMEOUT", "120")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the ecgridos binary runs");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("a piped stdout"))
            .read_line(&mut line)
            .expect("a ready line");
        let ready: serde_json::Value = serde_json::from_str(&line).expect("a JSON ready line");
        Recorder {
            child,
            soap_url: ready["soap_url"].as_str().unwrap_or_default().to_string(),
            addr: ready["listen"].as_str().unwrap_or_default().to_string(),
        }
    }

    fn peak_rss_kb(&self) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Microseconds of each of `CALLS` sequential calls.
async fn timings(url: &str) -> Vec<f64> {
    let client = Client::builder()
        .endpoint(url)
        .retry(RetryPolicy::none())
        .build()
        .expect("a client");
    // Warm the connection up first.
    for _ in 0..20 {
        client.version().await.expect("an answer");
    }
    let mut micros = Vec::with_capacity(CALLS);
    for _ in 0..CALLS {
        let started = Instant::now();
        client.version().await.expect("an answer");
        micros.push(started.elapsed().as_secs_f64() * 1e6);
    }
    micros.sort_by(f64::total_cmp);
    micros
}

fn summary(micros: &[f64]) -> (f64, f64) {
    let mean = micros.iter().sum::<f64>() / micros.len() as f64;
    (mean, micros[micros.len() / 2])
}

async fn latency(bin: &str) {
    let fake = FakeServer::start().await.expect("the fake starts");
    let recorder = Recorder::start(bin, &fake.soap_url());
    let direct = timings(&fake.soap_url()).await;
    let proxied = timings(&recorder.soap_url).await;
    let ((dm, dp), (pm, pp)) = (summary(&direct), summary(&proxied));
    println!("{CALLS} sequential Version calls (µs per call):");
    println!("  direct        mean {dm:8.1}  median {dp:8.1}");
    println!("  through record mean {pm:7.1}  median {pp:8.1}");
    println!(
        "  added by record: mean {:.1} µs, median {:.1} µs per exchange",
        pm - dm,
        pp - dp
    );
}

async fn slow_senders(bin: &str) {
    let sink = TcpListener::bind("127.0.0.1:0").await.expect("a port");
    let sink_addr = sink.local_addr().expect("an address");
    let sink_task = tokio::spawn(async move {
        while let Ok((mut sock, _)) = sink.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 * 1024];
                while matches!(sock.read(&mut buf).await, Ok(n) if n > 0) {}
            });
        }
    });
    let recorder = Recorder::start(bin, &format!("http://{sink_addr}/v4.1/prod/ECGridOS.asmx"));
    let before = recorder.peak_rss_kb();
    let mut clients = Vec::new();
    for _ in 0..SLOW_CLIENTS {
        let addr = recorder.addr.clone();
        clients.push(tokio::spawn(async move {
            let mut sock = TcpStream::connect(&addr).await.expect("a connection");
            let head = format!(
                "POST /v4.1/prod/ECGridOS.asmx HTTP/1.1\r\nHost: x\r\n\
                 Content-Type: text/xml; charset=utf-8\r\nContent-Length: {}\r\n\r\n\
                 <soap:Envelope xmlns:soap=\"http://schemas.xmlsoap.org/soap/envelope/\">\
                 <soap:Body><ParcelInBox xmlns=\"https://os.ecgrid.io/\">",
                SENT * 2
            );
            sock.write_all(head.as_bytes()).await.expect("sent");
            let chunk = "<a>1</a>".repeat(8 * 1024);
            let mut sent = 0;
            while sent < SENT {
                sock.write_all(chunk.as_bytes()).await.expect("sent");
                sent += chunk.len();
            }
            sock
        }));
    }
    let mut held = Vec::new();
    for client in clients {
        held.push(client.await.expect("a client"));
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    println!(
        "record peak RSS: {} kB at start, {} kB with {SLOW_CLIENTS} clients each 17 MiB into an unfinished body",
        before,
        recorder.peak_rss_kb()
    );
    drop(held);
    sink_task.abort();
}

fn main() {
    let bin = std::env::var("ECGRIDOS_BIN")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_ecgridos").to_string());
    println!("binary: {bin}");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(latency(&bin));
    runtime.block_on(slow_senders(&bin));
}
