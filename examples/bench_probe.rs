//! Our side of `bench/compare_zeep.py`: codec cost per GenerateAPIKey
//! (build + read) and sequential calls per second against a running server.
//! Prints one JSON object.
//!
//! `cargo run --release --example bench_probe -- SOAP_URL API_KEY USER_ID SECONDS CALLERS`
//!
//! The API key must not be the rotated user's own (callers run at once).

use std::hint::black_box;
use std::time::{Duration, Instant};

use ecgridos::operations::{GenerateApiKey, Operation};
use ecgridos::wire::{read_response, write_request, Reply, SoapVersion, DEFAULT_NAMESPACE};
use ecgridos::{ApiKey, Client, RetryPolicy, SessionRef, UserId};

const REPLY: &[u8] = br#"<?xml version="1.0" encoding="utf-8"?><soap:Envelope xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body><GenerateAPIKeyResponse xmlns="https://os.ecgrid.io/"><GenerateAPIKeyResult>a1b2c3d4-e5f6-7890-abcd-ef1234567890</GenerateAPIKeyResult></GenerateAPIKeyResponse></soap:Body></soap:Envelope>"#;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, url, key, user, seconds, callers] = args.as_slice() else {
        return Err("usage: bench_probe SOAP_URL API_KEY USER_ID SECONDS CALLERS".into());
    };
    let callers: usize = callers.parse()?;
    let key = ApiKey::new(key.as_str());
    let user: UserId = user.parse()?;
    let seconds: f64 = seconds.parse()?;

    // Codec: build the request and read a reply, per call.
    let codec = |n: u32| {
        let started = Instant::now();
        for _ in 0..n {
            let op = GenerateApiKey {
                session_id: SessionRef::from(&key),
                user_id: user,
            };
            let mut body = Vec::with_capacity(512);
            if op.check().is_ok() {
                write_request(
                    &mut body,
                    SoapVersion::V11,
                    DEFAULT_NAMESPACE,
                    "GenerateAPIKey",
                    |w| op.write_params(w),
                );
            }
            black_box(&body);
            let reply =
                read_response::<ApiKey>(black_box(REPLY), DEFAULT_NAMESPACE, "GenerateAPIKey", 64);
            assert!(matches!(reply, Ok(Reply::Result(_))));
        }
        started.elapsed().as_nanos() as f64 / f64::from(n)
    };
    codec(20_000);
    let codec_ns = codec(200_000);

    // Calls against the server from `callers` tasks on one thread.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let client = Client::builder()
        .endpoint(url.as_str())
        .retry(RetryPolicy::none())
        .build()?;
    let run = |duration: Duration| {
        runtime.block_on(async {
            let started = Instant::now();
            let mut tasks = Vec::new();
            for _ in 0..callers {
                let (client, key) = (client.clone(), key.clone());
                tasks.push(tokio::spawn(async move {
                    let mut calls = 0u64;
                    while started.elapsed() < duration {
                        client.generate_api_key(&key, user).await?;
                        calls += 1;
                    }
                    Ok::<_, ecgridos::Error>(calls)
                }));
            }
            let mut calls = 0;
            for task in tasks {
                calls += task
                    .await
                    .map_err(|e| e.to_string())?
                    .map_err(|e| e.to_string())?;
            }
            Ok::<_, String>(calls as f64 / started.elapsed().as_secs_f64())
        })
    };
    run(Duration::from_millis(200))?;
    let calls_per_sec = run(Duration::from_secs_f64(seconds))?;
    println!("{{\"codec_ns\": {codec_ns:.1}, \"calls_per_sec\": {calls_per_sec:.1}}}");
    Ok(())
}
