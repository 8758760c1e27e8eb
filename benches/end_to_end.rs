//! End to end on loopback against the embedded fake: our client's
//! GenerateAPIKey calls per second, side by side in the same run with a
//! baseline that posts a precomputed body with a bare reqwest client and does
//! no XML work. Prints calls/s and the overhead ratio at 1 and 32 callers.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion};
use ecgridos::fake::FakeServer;
use ecgridos::operations::{GenerateApiKey, Operation};
use ecgridos::wire::{write_request, SoapVersion};
use ecgridos::{Client, RetryPolicy, SessionId, SessionRef, UserId};

struct Setup {
    _server_runtime: tokio::runtime::Runtime,
    _server: FakeServer,
    runtime: tokio::runtime::Runtime,
    ours: Client,
    bare: reqwest::Client,
    url: String,
    body: Bytes,
    session: SessionId,
    user: UserId,
}

fn setup() -> Setup {
    // The server gets its own runtime thread, the clients another.
    let server_runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let server = server_runtime.block_on(FakeServer::start()).unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let url = server.soap_url();
    let admin = server.user("admin").unwrap();
    let user = UserId::from(server.user("alice").unwrap().user_id);
    let ours = Client::builder()
        .endpoint(&url)
        .retry(RetryPolicy::none())
        .build()
        .unwrap();
    let session = runtime
        .block_on(ours.login(&admin.login, &admin.password))
        .unwrap();
    let op = GenerateApiKey {
        session_id: SessionRef::from(&session),
        user_id: user,
    };
    let mut body = Vec::new();
    write_request(
        &mut body,
        SoapVersion::V11,
        ecgridos::wire::DEFAULT_NAMESPACE,
        "GenerateAPIKey",
        |w| op.write_params(w),
    );
    let bare = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    Setup {
        _server_runtime: server_runtime,
        _server: server,
        runtime,
        ours,
        bare,
        url,
        body: Bytes::from(body),
        session,
        user,
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Side {
    Ours,
    Baseline,
}

/// Runs `calls` calls spread over `callers` tasks; returns the elapsed time.
fn run(s: &Setup, side: Side, callers: usize, calls: usize) -> Duration {
    let s_ours = s.ours.clone();
    let session = Arc::new(s.session.clone());
    s.runtime.block_on(async {
        let started = Instant::now();
        let mut tasks = Vec::new();
        for i in 0..callers {
            let share = calls / callers + usize::from(i < calls % callers);
            let (ours, bare, url, body, session, user) = (
                s_ours.clone(),
                s.bare.clone(),
                s.url.clone(),
                s.body.clone(),
                session.clone(),
                s.user,
            );
            tasks.push(tokio::spawn(async move {
                for _ in 0..share {
                    match side {
                        Side::Ours => {
                            ours.generate_api_key(&*session, user).await.unwrap();
                        }
                        Side::Baseline => {
                            let response = bare
                                .post(&url)
                                .header("Content-Type", "text/xml; charset=utf-8")
                                .header("SOAPAction", "\"https://os.ecgrid.io/GenerateAPIKey\"")
                                .body(body.clone())
                                .send()
                                .await
                                .unwrap();
                            assert_eq!(response.status(), 200);
                            let _ = response.bytes().await.unwrap();
                        }
                    }
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        started.elapsed()
    })
}

fn end_to_end(c: &mut Criterion) {
    let s = setup();
    let mut group = c.benchmark_group("end_to_end");
    group.measurement_time(Duration::from_secs(4));
    for callers in [1usize, 32] {
        for (name, side) in [("ecgridos", Side::Ours), ("bare reqwest", Side::Baseline)] {
            group.bench_function(format!("{name}, {callers} callers, per call"), |b| {
                b.iter_custom(|iters| run(&s, side, callers, iters as usize))
            });
        }
    }
    group.finish();

    // Interleaved rounds, so that both sides see the same machine state.
    for callers in [1usize, 32] {
        let calls = 3000;
        let (mut ours, mut base) = (Duration::ZERO, Duration::ZERO);
        run(&s, Side::Ours, callers, 500);
        run(&s, Side::Baseline, callers, 500);
        for _ in 0..5 {
            ours += run(&s, Side::Ours, callers, calls);
            base += run(&s, Side::Baseline, callers, calls);
        }
        let rate = |d: Duration| (5 * calls) as f64 / d.as_secs_f64();
        println!(
            "end-to-end figures, {callers} callers: ecgridos {:.0} calls/s, bare reqwest {:.0} calls/s, \
             ecgridos time per call / baseline = {:.3} (overhead {:+.1}%)",
            rate(ours),
            rate(base),
            ours.as_secs_f64() / base.as_secs_f64(),
            (ours.as_secs_f64() / base.as_secs_f64() - 1.0) * 100.0
        );
    }
}

criterion_group!(benches, end_to_end);
criterion_main!(benches);
