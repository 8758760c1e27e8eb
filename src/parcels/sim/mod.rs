//! Deterministic fault simulators for the parcel loops, in the manner of
//! FoundationDB's simulation or TigerBeetle's VOPR: each loop's side effects
//! go through narrow traits that a simulator implements in memory, a seed
//! decides every fault, and a failing seed replays exactly.
//!
//! - [`inbound`]: `parcels fetch` (see its documentation for the faults and
//!   the invariants).
//! - [`upload`]: `parcels upload` (likewise).
//!
//! Runs: `cargo test --all-features --lib sim::` runs the default count of
//! schedules; `ECGRIDOS_SIM_SCHEDULES=1000000 cargo test --release
//! --all-features --lib sim::` a long run; `ECGRIDOS_SIM_SEED=N` replays one
//! seed, and `ECGRIDOS_SIM_BASE=B` shifts the seeds to `B..B+count`.

mod inbound;
mod upload;

/// Runs `check` once per seed; the seeds are `0..count` offset by a base. `ECGRIDOS_SIM_SCHEDULES`
/// overrides `default_count`, `ECGRIDOS_SIM_SEED=N` runs only seed N. On the first failing seed it
/// panics with the seed, the failure, and the command that replays it.
pub(crate) fn run_schedules(
    name: &str,
    default_count: u64,
    check: impl Fn(u64) -> Result<(), String>,
) {
    let number = |var: &str| {
        std::env::var(var)
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
    };
    let seeds: Box<dyn Iterator<Item = u64>> = match number("ECGRIDOS_SIM_SEED") {
        Some(seed) => Box::new(std::iter::once(seed)),
        None => {
            let base = number("ECGRIDOS_SIM_BASE").unwrap_or(0);
            let count = number("ECGRIDOS_SIM_SCHEDULES").unwrap_or(default_count);
            Box::new((0..count).map(move |i| base.wrapping_add(i)))
        }
    };
    for seed in seeds {
        if let Err(failure) = check(seed) {
            panic!(
                "simulation {name}: seed {seed} failed: {failure}\n\
                 replay it with: ECGRIDOS_SIM_SEED={seed} cargo test --all-features --lib {name}"
            );
        }
    }
}
