//! Peak heap of the library during a 100 MB parcel download to disk and a
//! 100 MB upload from disk, over SOAP and REST, against a loopback server
//! that generates (and swallows) the base64 as it goes, so that only the
//! client's memory is in the figure. Prints the peak above the heap in use
//! before each transfer, and the throughput.
//!
//! `cargo bench --bench parcel_memory`; `PARCEL_MB` changes the size.

use std::alloc::{GlobalAlloc, Layout, System};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use ecgridos::wire::stream::{encoded_len, Base64Encoder};
use ecgridos::{ApiKey, Client, Credential, ParcelClient, Protocol, RestClient, UploadRoute};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Tracks the heap bytes in use and their peak.
struct PeakBytes;

static IN_USE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grew(by: usize) {
    let now = IN_USE.fetch_add(by, Ordering::Relaxed) + by;
    PEAK.fetch_max(now, Ordering::Relaxed);
}

unsafe impl GlobalAlloc for PeakBytes {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        grew(layout.size());
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        IN_USE.fetch_sub(layout.size(), Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        IN_USE.fetch_sub(layout.size(), Ordering::Relaxed);
        grew(new_size);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: PeakBytes = PeakBytes;

/// Starts a new peak from the bytes in use now; returns them.
fn reset_peak() -> usize {
    let now = IN_USE.load(Ordering::Relaxed);
    PEAK.store(now, Ordering::Relaxed);
    now
}

/// Bytes of file content per generated piece (a multiple of 3, so that the
/// pieces' base64 joins up).
const PIECE: usize = 48 * 1024;

/// The generated content's byte at `i`.
fn content_byte(i: usize) -> u8 {
    (i.wrapping_mul(2_654_435_761) >> 13) as u8
}

/// Reads a request's head; returns its Content-Length and the body bytes
/// that came with the head.
async fn read_head(sock: &mut TcpStream) -> Option<(usize, usize)> {
    let mut head = Vec::with_capacity(4096);
    let mut piece = [0u8; 4096];
    loop {
        let n = sock.read(&mut piece).await.ok()?;
        if n == 0 {
            return None;
        }
        head.extend_from_slice(&piece[..n]);
        if let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n") {
            let text = String::from_utf8_lossy(&head[..end]).to_ascii_lowercase();
            let len = text
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            return Some((len, head.len() - end - 4));
        }
    }
}

/// What the server writes around the content, per protocol.
fn frame(protocol: Protocol, size: usize) -> (String, String, &'static str) {
    match protocol {
        Protocol::Soap => (
            concat!(
                r#"<?xml version="1.0" encoding="utf-8"?><soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/">"#,
                r#"<soap:Body><ParcelDownloadResponse xmlns="https://os.ecgrid.io/"><ParcelDownloadResult>"#,
                r#"<ParcelID>1</ParcelID><FileName>big.edi</FileName><FileDate>2026-11-01T00:00:00</FileDate>"#
            )
            .to_string()
                + &format!("<Bytes>{size}</Bytes><Standard>X12</Standard><Content>"),
            concat!(
                r#"</Content><routerArchive>false</routerArchive></ParcelDownloadResult>"#,
                r#"</ParcelDownloadResponse></soap:Body></soap:Envelope>"#
            )
            .to_string(),
            "text/xml; charset=utf-8",
        ),
        Protocol::Rest => (
            format!(r#"{{"success":true,"data":{{"parcelId":1,"fileName":"big.edi","bytes":{size},"content":""#),
            r#""}}"#.to_string(),
            "application/json",
        ),
    }
}

/// Serves every connection: an upload (a body over 1 MB) is read and
/// dropped, then answered with parcel ID 1; anything else gets a download
/// of `size` bytes of generated content, its base64 written piece by piece.
async fn serve(listener: TcpListener, protocol: Protocol, size: usize) {
    while let Ok((mut sock, _)) = listener.accept().await {
        tokio::spawn(async move {
            let Some((len, mut got)) = read_head(&mut sock).await else {
                return;
            };
            let mut sink = vec![0u8; 64 * 1024];
            while got < len {
                match sock.read(&mut sink).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => got += n,
                }
            }
            let _ = if len > 1 << 20 {
                let body = match protocol {
                    Protocol::Soap => concat!(
                        r#"<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body>"#,
                        r#"<ParcelUploadResponse xmlns="https://os.ecgrid.io/"><ParcelUploadResult>1</ParcelUploadResult>"#,
                        r#"</ParcelUploadResponse></soap:Body></soap:Envelope>"#
                    ),
                    Protocol::Rest => r#"{"success":true,"data":1}"#,
                };
                let ct = frame(protocol, 0).2;
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: {ct}\r\nContent-Length: {}\r\n\r\n",
                    body.len()
                );
                sock.write_all((head + body).as_bytes()).await
            } else {
                download(&mut sock, protocol, size).await
            };
        });
    }
}

async fn download(sock: &mut TcpStream, protocol: Protocol, size: usize) -> std::io::Result<()> {
    let (prefix, suffix, ct) = frame(protocol, size);
    let length = prefix.len() + encoded_len(size as u64) as usize + suffix.len();
    let head = format!("HTTP/1.1 200 OK\r\nContent-Type: {ct}\r\nContent-Length: {length}\r\n\r\n");
    sock.write_all(head.as_bytes()).await?;
    sock.write_all(prefix.as_bytes()).await?;
    let mut encoder = Base64Encoder::new();
    let mut raw = vec![0u8; PIECE];
    let mut text = Vec::with_capacity(PIECE / 3 * 4 + 4);
    let mut at = 0;
    while at < size {
        let n = PIECE.min(size - at);
        for (k, b) in raw[..n].iter_mut().enumerate() {
            *b = content_byte(at + k);
        }
        text.clear();
        encoder.feed(&raw[..n], &mut text);
        sock.write_all(&text).await?;
        at += n;
    }
    text.clear();
    encoder.finish(&mut text);
    sock.write_all(&text).await?;
    sock.write_all(suffix.as_bytes()).await
}

/// Writes `size` bytes of generated content to `path`, piece by piece.
fn write_file(path: &Path, size: usize) {
    use std::io::Write;
    let mut file = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    for i in 0..size {
        file.write_all(&[content_byte(i)]).unwrap();
    }
    file.flush().unwrap();
}

fn mb(bytes: usize) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn main() {
    // `cargo bench` passes `--bench`; a filter argument is ignored.
    let size_mb: usize = std::env::var("PARCEL_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    let size = size_mb * 1_000_000;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = std::env::temp_dir().join(format!("ecgridos-parcel-memory-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let upload_path = dir.join("upload.edi");
    write_file(&upload_path, size);
    let cred = Credential::ApiKey(ApiKey::new("bench-key"));
    println!("parcel of {size_mb} MB (10^6 bytes), peak heap above the heap in use before each transfer:");
    for protocol in [Protocol::Soap, Protocol::Rest] {
        let listener = runtime.block_on(TcpListener::bind("127.0.0.1:0")).unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        runtime.spawn(serve(listener, protocol, size));
        let client: ParcelClient = match protocol {
            Protocol::Soap => Client::builder().endpoint(&url).build().unwrap().into(),
            Protocol::Rest => RestClient::builder().base_url(&url).build().unwrap().into(),
        };
        let target = dir.join(format!("download-{protocol}.edi"));
        let base = reset_peak();
        let started = Instant::now();
        let got = runtime
            .block_on(async {
                let mut file = tokio::fs::File::create(&target).await?;
                client
                    .download_to(&cred, 1, &mut file, None)
                    .await
                    .map_err(std::io::Error::other)
            })
            .unwrap();
        let elapsed = started.elapsed();
        let peak = PEAK.load(Ordering::Relaxed) - base;
        assert_eq!(got.received_bytes, size as u64);
        assert_eq!(std::fs::metadata(&target).unwrap().len(), size as u64);
        println!(
            "  {protocol} download to disk: peak heap {:.2} MiB, {:.0} MB/s",
            mb(peak),
            size as f64 / 1e6 / elapsed.as_secs_f64()
        );
        std::fs::remove_file(&target).unwrap();

        let base = reset_peak();
        let started = Instant::now();
        let id = runtime
            .block_on(client.upload_file(
                &cred,
                &upload_path,
                "big.edi",
                &UploadRoute::FromHeaders,
                None,
            ))
            .unwrap();
        let elapsed = started.elapsed();
        let peak = PEAK.load(Ordering::Relaxed) - base;
        assert_eq!(id, 1);
        println!(
            "  {protocol} upload from disk: peak heap {:.2} MiB, {:.0} MB/s",
            mb(peak),
            size as f64 / 1e6 / elapsed.as_secs_f64()
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
