//! Deterministic fault simulators for the parcel loops: seeded schedules
//! of faults run against the real logic, invariants checked after each.

mod upload;

/// Runs `check` once per seed; the seeds are `0..count` offset by a base. `ECGRIDOS_SIM_SCHEDULES`
/// overrides `default_count`, `ECGRIDOS_SIM_SEED=N` runs only seed N. On the first failing seed it
/// panics with the seed, the failure, and the command that replays it.
pub(crate) fn run_schedules(
    name: &str,
    default_count: u64,
    check: impl Fn(u64) -> Result<(), String>,
) {
    // A base of its own per simulator, so that two never walk the same seeds.
    let base = name.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    let var = |key: &str| {
        std::env::var(key)
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
    };
    let seeds: Vec<u64> = match var("ECGRIDOS_SIM_SEED") {
        Some(seed) => vec![seed],
        None => {
            let count = var("ECGRIDOS_SIM_SCHEDULES").unwrap_or(default_count);
            (0..count).map(|i| base.wrapping_add(i)).collect()
        }
    };
    for seed in seeds {
        if let Err(failure) = check(seed) {
            panic!(
                "{name}: seed {seed} fails: {failure}\nreplay: ECGRIDOS_SIM_SEED={seed} cargo test --all-features --lib {name}"
            );
        }
    }
}
