//! Helpers shared by the raw-TCP test servers.

use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

/// Reads one HTTP request (headers and its Content-Length body), bounded in
/// size (1 MiB) and time (5 s). `None` when the peer closed or the bounds hit.
#[allow(dead_code)] // not every test binary that shares this module uses it
pub async fn read_http_request(sock: &mut TcpStream) -> Option<String> {
    read_http_message(sock, 1 << 20)
        .await
        .map(|buf| String::from_utf8_lossy(&buf).into_owned())
}

/// Reads one HTTP message (a request, or a response with a Content-Length)
/// as bytes, bounded in size (`max` bytes) and time (5 s). `None` when the
/// peer closed or the bounds hit.
pub async fn read_http_message(sock: &mut TcpStream, max: usize) -> Option<Vec<u8>> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let read = async {
        loop {
            let n = sock.read(&mut chunk).await.ok()?;
            if n == 0 {
                return None;
            }
            buf.extend_from_slice(&chunk[..n]);
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                let len: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0);
                if buf.len() >= end + 4 + len {
                    return Some(buf);
                }
            }
            if buf.len() > max {
                return None;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(5), read)
        .await
        .ok()
        .flatten()
}
