//! The fetch journal at scale: builds the journal a directory has after
//! 1,000,000 parcels were fetched and confirmed (no compaction), then runs
//! two polls of `fetch_dir` over it, each in a child process, against the
//! embedded fake (an empty inbox). Prints the journal's size before and
//! after each poll and each poll's peak RSS (VmHWM): the first poll reads
//! the long journal and compacts it, the second reads the compacted one.
//!
//! `cargo run --release --example fetch_journal [-- PARCELS]`

use std::io::{BufWriter, Write};
use std::path::Path;

use ecgridos::fake::FakeServer;
use ecgridos::parcels::inbound::{fetch_dir, FetchOptions, JOURNAL_NAME};
use ecgridos::parcels::ParcelClient;
use ecgridos::{ApiKey, Client, Credential};

/// Peak resident set size of this process, in kB.
fn vm_hwm_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn poll(dir: &Path, url: &str, key: &str) -> Result<(), Box<dyn std::error::Error>> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let client = ParcelClient::from(Client::builder().endpoint(url).build()?);
    let cred = Credential::ApiKey(ApiKey::new(key));
    let report = rt.block_on(fetch_dir(&client, &cred, dir, FetchOptions::new()))?;
    println!(
        "poll: {} parcels, peak RSS {} kB",
        report.parcels.len(),
        vm_hwm_kb()
    );
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if let [_, mode, dir, url, key] = args.as_slice() {
        if mode == "poll" {
            return poll(Path::new(dir), url, key);
        }
    }
    let parcels: i64 = args
        .get(1)
        .map(|n| n.parse())
        .transpose()?
        .unwrap_or(1_000_000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let fake = rt.block_on(FakeServer::builder().start())?;
    let url = fake.soap_url();
    let key = fake
        .user("alice")
        .and_then(|u| u.api_key)
        .ok_or("the fake has no alice")?;
    let dir = std::env::temp_dir().join(format!("ecgridos-fetch-journal-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let journal = dir.join(JOURNAL_NAME);
    {
        let endpoint = url::Url::parse(&url)?.to_string();
        let mut out = BufWriter::new(std::fs::File::create(&journal)?);
        writeln!(
            out,
            "{{\"journal\":\"ecgridos-parcels\",\"version\":2,\"protocol\":\"soap\",\"endpoint\":\"{endpoint}\"}}"
        )?;
        let sha = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
        for id in 70_000_001..70_000_001 + parcels {
            writeln!(
                out,
                "{{\"parcel_id\":{id},\"event\":\"stored\",\"file\":\"{id}-ORDERS 850.x12\",\"bytes\":48213,\"sha256\":\"{sha}\"}}"
            )?;
            writeln!(out, "{{\"parcel_id\":{id},\"event\":\"confirmed\"}}")?;
        }
        out.flush()?;
    }
    let exe = std::env::current_exe()?;
    for round in [
        "first poll (long journal, compacts it)",
        "second poll (compacted journal)",
    ] {
        let before = std::fs::metadata(&journal)?.len();
        let out = std::process::Command::new(&exe)
            .args(["poll", dir.to_str().ok_or("path")?, &url, key.expose()])
            .output()?;
        let after = std::fs::metadata(&journal)?.len();
        println!(
            "{round}: journal {before} bytes before, {after} bytes after; {}",
            String::from_utf8_lossy(&out.stdout).trim()
        );
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).into_owned().into());
        }
    }
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
