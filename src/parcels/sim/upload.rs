//! A deterministic fault simulator for uploads: [`send_once`] (the logic of
//! [`ParcelClient::upload_once`](crate::ParcelClient::upload_once)) runs
//! against a simulated service, seeded and reproducible.
//!
//! Each schedule draws, from its seed: earlier parcels of the same name and
//! size (and date), and others; then the user's runs ("asks") of one
//! upload, each of which may meet
//! - an answer lost before the service acted, or after it acted, or a
//!   plain refusal;
//! - an outbox listing that fails, lags (a new parcel is listed only after
//!   a delay) or lists parcels twice;
//! - a send that takes long, and a service clock that differs from ours;
//! - a crash of the client at any call (the run stops there; the user runs
//!   it again later).
//!
//! Invariants, checked after every run of every schedule:
//! 1. an upload is sent at most once per run (only the user asking again
//!    sends it again);
//! 2. "arrived" (`Sent`, `Found`, or a member of `Ambiguous`) is said only
//!    of a parcel the service created in that run, never of an earlier one;
//! 3. "not found" is never said when the service did create the parcel and
//!    the search's listing showed it;
//! 4. every send is announced to the observer first, with the probe that
//!    tells its outcome (what the CLI prints when a signal ends it).
//!
//! The model assumes what no search without an idempotency key can do
//! without: the outbox's lag is shorter than the time before the user's next
//! run (the CLI's advice is to look again later before sending again), so
//! the listing before a run shows every parcel of the earlier runs.

use std::cell::RefCell;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, SystemTime};

use super::run_schedules;
use crate::error::{Error, Result};
use crate::parcels::upload::{send_once, UploadService};
use crate::parcels::{ParcelSummary, UploadObserver, UploadOutcome, UploadProbe, UploadSearch};
use crate::wire::DateTime;

/// The most seconds a new parcel waits before the outbox lists it.
const MAX_LAG: u64 = 120;
/// The file every run uploads.
const NAME: &str = "po.edi";
const BYTES: u64 = 1482;

/// A parcel in the simulated outbox.
struct Parcel {
    id: i64,
    name: String,
    bytes: u64,
    /// Its creation time, by the service's clock.
    created: u64,
    /// Listed from this time on (our clock).
    listed_from: u64,
    /// The run that created it; `None` for the earlier parcels.
    run: Option<usize>,
}

/// The simulated service and the record of what it did.
struct World {
    rng: fastrand::Rng,
    /// Our clock, in seconds since the epoch.
    now: u64,
    /// The service's clock minus ours.
    skew: i64,
    parcels: Vec<Parcel>,
    next_id: i64,
    /// The run in progress.
    run: usize,
    /// Sends of the run in progress.
    sends: usize,
    /// Sends made before the observer heard of them.
    unannounced: usize,
    /// Set by the observer's `sending`.
    announced: Arc<AtomicBool>,
    /// The IDs of the last listing of the run in progress.
    last_listing: Vec<i64>,
    /// The call of the run in progress at which the client crashes.
    crash_at: Option<usize>,
    calls: usize,
    /// What happened, for the failure message.
    trace: Vec<String>,
}

impl World {
    fn tick(&mut self, most: u64) {
        self.now += self.rng.u64(0..=most);
    }

    /// True when this call is the one at which the client crashes.
    fn crashes(&mut self) -> bool {
        self.calls += 1;
        self.crash_at == Some(self.calls)
    }

    fn create(&mut self, run: Option<usize>) -> i64 {
        let id = self.next_id;
        self.next_id += 1 + i64::from(self.rng.u8(..3));
        let created = self.now.saturating_add_signed(self.skew);
        let listed_from = self.now + self.rng.u64(0..=MAX_LAG);
        self.parcels.push(Parcel {
            id,
            name: NAME.into(),
            bytes: BYTES,
            created,
            listed_from,
            run,
        });
        id
    }
}

/// [`World`] as the service [`send_once`] talks to.
struct Sim(RefCell<World>);

fn lost(what: &str) -> Error {
    Error::OutcomeUnknown {
        operation: "ParcelUpload",
        cause: format!("simulated: {what}"),
        advice: "look in the outbox",
        source: None,
    }
}

fn at(t: u64) -> DateTime {
    DateTime::from_unix_seconds(i64::try_from(t).unwrap_or(i64::MAX)).unwrap_or_default()
}

impl UploadService for Sim {
    async fn outbox(
        &self,
        not_before: DateTime,
        not_after: DateTime,
    ) -> Result<Vec<ParcelSummary>> {
        let crash = {
            let mut w = self.0.borrow_mut();
            w.tick(3);
            w.crashes()
        };
        if crash {
            self.0.borrow_mut().trace.push("crash while listing".into());
            return std::future::pending().await;
        }
        let mut w = self.0.borrow_mut();
        if w.rng.u8(..10) == 0 {
            w.trace.push("listing fails".into());
            return Err(Error::Io {
                operation: "ParcelOutBoxArchive",
                context: "simulated".into(),
                source: std::io::Error::other("connection lost"),
            });
        }
        let (from, to) = (not_before.unix_seconds(), not_after.unix_seconds());
        let mut listed: Vec<ParcelSummary> = w
            .parcels
            .iter()
            .filter(|p| p.listed_from <= w.now)
            .filter(|p| (from..=to).contains(&i64::try_from(p.created).unwrap_or(i64::MAX)))
            .map(|p| ParcelSummary {
                parcel_id: p.id,
                file_name: p.name.clone(),
                bytes: i64::try_from(p.bytes).unwrap_or(i64::MAX),
                status: None,
                mailbox_id: None,
                ecgrid_id_from: None,
                ecgrid_id_to: None,
                date: Some(at(p.created)),
            })
            .collect();
        // A listing that shows some parcels twice (in process and archived).
        if !listed.is_empty() && w.rng.u8(..4) == 0 {
            let twice = listed[w.rng.usize(..listed.len())].clone();
            listed.push(twice);
        }
        w.rng.shuffle(&mut listed);
        w.last_listing = listed.iter().map(|p| p.parcel_id).collect();
        let line = format!(
            "listed {:?} in {from}..={to} at {} ({:?})",
            w.last_listing,
            w.now,
            w.parcels
                .iter()
                .map(|p| (p.id, p.created, p.listed_from))
                .collect::<Vec<_>>()
        );
        w.trace.push(line);
        Ok(listed)
    }

    async fn send(&self) -> Result<i64> {
        let crashed = {
            let mut w = self.0.borrow_mut();
            w.sends += 1;
            if !w.announced.load(Ordering::SeqCst) {
                w.unannounced += 1;
            }
            // A long upload: the parcel is created near its end.
            w.tick(600);
            let run = w.run;
            let crashed = w.crashes();
            if crashed && w.rng.bool() {
                let id = w.create(Some(run));
                w.trace
                    .push(format!("crash while sending, parcel {id} created"));
            } else if crashed {
                w.trace.push("crash while sending, nothing created".into());
            }
            crashed
        };
        if crashed {
            return std::future::pending().await;
        }
        let mut w = self.0.borrow_mut();
        let run = w.run;
        let answer = match w.rng.u8(..5) {
            0 => {
                w.trace.push("send lost before the service acted".into());
                Err(lost("request lost"))
            }
            1 => {
                let id = w.create(Some(run));
                w.trace.push(format!("parcel {id} created, answer lost"));
                Err(lost("answer lost"))
            }
            2 => {
                w.trace.push("send refused".into());
                Err(Error::invalid_input("file", "simulated refusal"))
            }
            _ => {
                let id = w.create(Some(run));
                w.trace.push(format!("parcel {id} created and answered"));
                Ok(id)
            }
        };
        w.tick(3);
        answer
    }

    fn now(&self) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(self.0.borrow().now)
    }
}

/// The observer of a run: notes that the send was announced.
struct Announced(Arc<AtomicBool>);

impl UploadObserver for Announced {
    fn sending(&self, _: &UploadProbe) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// Polls `future` once: the simulated service never waits, except at a
/// crash, where the client stops (`None`).
fn run_to_end<F: Future>(future: F) -> Option<F::Output> {
    let mut future = std::pin::pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(out) => Some(out),
        Poll::Pending => None,
    }
}

/// The client logic a schedule runs.
#[derive(Clone, Copy)]
enum Client {
    /// The real one.
    Real,
    /// Issue 7's defect put back: no listing before sending, so the search
    /// takes any parcel of the same name and size for this upload.
    MatchesEarlier,
}

/// The flow of issue 7 before its fix, to show the simulator finds it.
async fn matches_earlier<S: UploadService>(service: &S) -> Result<UploadOutcome> {
    let started = service.now();
    match service.send().await {
        Ok(id) => Ok(UploadOutcome::Sent(id)),
        Err(error) if error.is_outcome_unknown() => {
            let elapsed = service.now().duration_since(started).unwrap_or_default();
            let probe = UploadProbe::around(NAME, BYTES, started, elapsed + UploadProbe::SLACK);
            let search = service
                .outbox(probe.not_before, probe.not_after)
                .await
                .map(|listed| probe.search(listed));
            Ok(UploadOutcome::Unknown {
                error,
                search,
                probe,
            })
        }
        Err(error) => Err(error),
    }
}

/// One schedule: its runs, each checked against the invariants.
fn schedule(seed: u64, client: Client) -> std::result::Result<Seen, String> {
    let mut seen = Seen::default();
    let mut rng = fastrand::Rng::with_seed(seed);
    let start = 1_795_000_000 + rng.u64(..1_000_000);
    let mut world = World {
        skew: rng.i64(-120..=120),
        rng: rng.fork(),
        now: start,
        parcels: Vec::new(),
        next_id: 70_000_001,
        run: 0,
        sends: 0,
        unannounced: 0,
        announced: Arc::new(AtomicBool::new(false)),
        last_listing: Vec::new(),
        crash_at: None,
        calls: 0,
        trace: Vec::new(),
    };
    // Earlier parcels of the same name and size, some within the window,
    // some at the very second the first run starts; and others.
    for _ in 0..rng.usize(0..4) {
        world.now = start - rng.u64(0..=250);
        world.create(None);
    }
    for _ in 0..rng.usize(0..3) {
        let id = world.create(None);
        if let Some(p) = world.parcels.iter_mut().find(|p| p.id == id) {
            p.bytes += 1 + rng.u64(..10);
        }
    }
    world.now = start + MAX_LAG + 1;
    let sim = Sim(RefCell::new(world));
    for run in 0..rng.usize(1..=4) {
        {
            let mut w = sim.0.borrow_mut();
            w.run = run;
            w.sends = 0;
            w.announced.store(false, Ordering::SeqCst);
            w.calls = 0;
            w.last_listing.clear();
            w.crash_at = (rng.u8(..5) == 0).then(|| rng.usize(1..=3));
            let line = format!("run {run} at {}", w.now);
            w.trace.push(line);
        }
        let outcome = match client {
            Client::Real => {
                let observer = Announced(Arc::clone(&sim.0.borrow().announced));
                run_to_end(send_once(&sim, NAME, BYTES, &observer))
            }
            Client::MatchesEarlier => run_to_end(matches_earlier(&sim)),
        };
        let w = sim.0.borrow();
        let fail = |what: String| Err(format!("run {run}: {what}; trace: {}", w.trace.join("; ")));
        let ours: Vec<i64> = w
            .parcels
            .iter()
            .filter(|p| p.run == Some(run))
            .map(|p| p.id)
            .collect();
        let earlier = w.parcels.iter().filter(|p| p.run != Some(run)).count();
        if w.sends > 1 {
            return fail(format!("sent {} times", w.sends));
        }
        if w.unannounced > 0 && matches!(client, Client::Real) {
            return fail("sent before the observer was told".into());
        }
        let claimed: Vec<i64> = match &outcome {
            Some(Ok(UploadOutcome::Sent(id))) => vec![*id],
            Some(Ok(UploadOutcome::Unknown { search: Ok(s), .. })) => match s {
                UploadSearch::Found(p) => {
                    seen.found_among_earlier |= earlier > 0;
                    vec![p.parcel_id]
                }
                UploadSearch::Ambiguous(all) => all.iter().map(|p| p.parcel_id).collect(),
                UploadSearch::NotFound => {
                    if let Some(id) = ours.iter().find(|id| w.last_listing.contains(id)) {
                        return fail(format!("not found, but parcel {id} was listed"));
                    }
                    seen.not_found_among_earlier |= earlier > 0 && ours.is_empty();
                    seen.not_found_while_lagging |= !ours.is_empty();
                    Vec::new()
                }
            },
            None => {
                seen.crashes += 1;
                Vec::new()
            }
            _ => Vec::new(),
        };
        if let Some(id) = claimed.iter().find(|id| !ours.contains(id)) {
            return fail(format!(
                "said to have arrived as parcel {id}, not created by this run"
            ));
        }
        drop(w);
        // The user's next run comes after the outbox caught up.
        let mut w = sim.0.borrow_mut();
        w.now += MAX_LAG + 1 + rng.u64(..600);
    }
    Ok(seen)
}

/// Which of the interesting cases a schedule met.
#[derive(Default)]
struct Seen {
    found_among_earlier: bool,
    not_found_among_earlier: bool,
    not_found_while_lagging: bool,
    crashes: usize,
}

#[test]
fn uploads_keep_their_invariants_under_faults() {
    run_schedules("parcels::sim::upload", 20_000, |seed| {
        schedule(seed, Client::Real).map(|_| ())
    });
}

/// The schedules reach the cases the invariants are about (a simulator that
/// never met them would prove nothing).
#[test]
fn the_schedules_reach_every_case() {
    let mut total = Seen::default();
    for seed in 0..2_000 {
        let seen = schedule(seed, Client::Real).unwrap_or_default();
        total.found_among_earlier |= seen.found_among_earlier;
        total.not_found_among_earlier |= seen.not_found_among_earlier;
        total.not_found_while_lagging |= seen.not_found_while_lagging;
        total.crashes += seen.crashes;
    }
    assert!(
        total.found_among_earlier,
        "no lost answer found among earlier parcels"
    );
    assert!(
        total.not_found_among_earlier,
        "no lost request among earlier parcels"
    );
    assert!(total.not_found_while_lagging, "no listing that lagged");
    assert!(total.crashes > 0, "no crash");
}

#[test]
fn the_simulator_finds_the_item_7_defect() {
    let found = (0..2_000).find(|&seed| schedule(seed, Client::MatchesEarlier).is_err());
    assert!(
        found.is_some(),
        "no schedule caught a search that matches earlier parcels"
    );
}
