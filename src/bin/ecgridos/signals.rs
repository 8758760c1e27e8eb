//! SIGINT and SIGTERM around key rotations, and the process's own hardening.
//!
//! A rotation kills the old key the moment the service acts, so the process
//! must not die between sending it and storing its answer. Commands that
//! rotate call [`install`]; from then on:
//!
//! - a signal while nothing is in flight ends the process at once (exit 130),
//!   removing the temporary files it registered;
//! - a first signal while a rotation is in flight or its key is unsaved lets
//!   that work finish (no new rotation starts), then ends the process;
//! - a second signal in that window ends it at once: keys already received
//!   but not yet stored go to stderr, and each rotation still in flight is
//!   named with the command that reads the key now in force.
//!
//! `parcels fetch` and `parcels upload` use the same handler: a first signal
//! while a parcel is in hand ([`Busy`]) lets it finish (stored and confirmed,
//! or uploaded) and then the command ends; the loop reads [`stop_flag`]. A
//! second signal during an upload ([`Uploading`]) names the file: its new
//! ParcelID if the answer came, else that the outcome is unknown and the
//! command that tells whether it arrived.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock, Mutex, MutexGuard};

use ecgridos::{ApiKey, UserId};

use crate::output::{say, Exit};

#[derive(Default)]
struct Pending {
    /// Rotations sent and not answered yet.
    in_flight: Vec<UserId>,
    /// Keys received and not stored yet.
    unsaved: Vec<(UserId, ApiKey)>,
    /// Temporary files to remove if the process ends early.
    temps: Vec<PathBuf>,
    /// Parcels being transferred.
    busy: usize,
    /// Uploads in hand, by token.
    uploads: Vec<(u64, UploadNote)>,
    /// The token of the next upload.
    next_upload: u64,
}

/// What a second signal says of an upload in hand.
enum UploadNote {
    /// Not sent yet.
    NotSent { file: String },
    /// Sent: the outcome is unknown until the answer comes; `check` is the
    /// command that tells.
    Sent { file: String, check: String },
    /// The service answered with this ParcelID.
    Answered { file: String, parcel_id: i64 },
}

impl Pending {
    fn idle(&self) -> bool {
        self.in_flight.is_empty() && self.unsaved.is_empty() && self.busy == 0
    }
}

static PENDING: Mutex<Pending> = Mutex::new(Pending {
    in_flight: Vec::new(),
    unsaved: Vec::new(),
    temps: Vec::new(),
    busy: 0,
    uploads: Vec::new(),
    next_upload: 0,
});
static STOPPING: LazyLock<Arc<AtomicBool>> = LazyLock::new(|| Arc::new(AtomicBool::new(false)));

fn pending() -> MutexGuard<'static, Pending> {
    PENDING.lock().unwrap_or_else(|p| p.into_inner())
}

/// Makes the process non-dumpable and sets its core size limit to 0: a core
/// file would hold the password, session ID and keys it has in memory. Also
/// ignores SIGXFSZ: under a file-size limit (`ulimit -f`) a write past it
/// then fails with EFBIG, which every writer handles (the parcel is not
/// stored, the new key is shown), instead of killing the process mid-write.
pub fn harden() {
    #[cfg(unix)]
    // SAFETY: setting a signal's disposition to SIG_IGN runs no code of ours.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
    #[cfg(target_os = "linux")]
    {
        let none = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: both calls take plain values (and a pointer to a local that
        // outlives the call) and touch no memory of ours.
        let (limit, dumpable) = unsafe {
            (
                libc::setrlimit(libc::RLIMIT_CORE, &none),
                libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0),
            )
        };
        if limit != 0 || dumpable != 0 {
            tracing::warn!("could not disable core dumps for this process");
        }
    }
}

/// Takes over SIGINT and SIGTERM for the rest of the process (see the module
/// documentation).
pub fn install() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut int), Ok(mut term)) = (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) else {
            tracing::warn!(
                "cannot watch for SIGINT/SIGTERM; an interrupt ends the process at once"
            );
            return;
        };
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = int.recv() => {}
                    _ = term.recv() => {}
                }
                on_signal();
            }
        });
    }
}

fn on_signal() {
    let first = !STOPPING.swap(true, Ordering::SeqCst);
    let mut state = pending();
    if state.idle() {
        end(&mut state);
    }
    if first {
        if state.in_flight.is_empty() && state.unsaved.is_empty() {
            say!("interrupted: finishing the parcel in hand first (interrupt again to abort)");
        } else {
            say!("interrupted: letting the rotation in flight finish so that its key is stored (interrupt again to abort)");
        }
        return;
    }
    for (user, key) in &state.unsaved {
        say!(
            "the new key for user {user} (store it now): {}",
            key.expose()
        );
    }
    for user in &state.in_flight {
        say!("aborted while rotating user {user}: the outcome is unknown; to see the key now in force, without rotating again: ecgridos get-api-key --user-id {user}");
    }
    for (_, note) in &state.uploads {
        match note {
            UploadNote::NotSent { file } => say!("aborted before {file} was sent: nothing was sent"),
            UploadNote::Sent { file, check } => say!("aborted while uploading {file}: the outcome is unknown (it may have arrived); do not upload it again before checking: {check}"),
            UploadNote::Answered { file, parcel_id } => say!("aborted after uploading {file}: it arrived as parcel {parcel_id}; do not upload it again"),
        }
    }
    end(&mut state);
}

/// Removes the registered temporary files and exits with 130.
fn end(state: &mut Pending) -> ! {
    for temp in state.temps.drain(..) {
        let _ = std::fs::remove_file(temp);
    }
    say!("interrupted");
    std::process::exit(Exit::Interrupted as i32)
}

/// True once a signal asked the process to stop: start no new rotation.
pub fn stopping() -> bool {
    STOPPING.load(Ordering::SeqCst)
}

/// The flag [`stopping`] reads, for loops that take one.
pub fn stop_flag() -> Arc<AtomicBool> {
    Arc::clone(&STOPPING)
}

/// A parcel in transfer: a first signal lets it finish. Unlike [`InFlight`],
/// ending it does not end the process: the command reports, then exits.
pub struct Busy(());

impl Busy {
    /// Marks a parcel transfer as started.
    pub fn start() -> Busy {
        pending().busy += 1;
        Busy(())
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        let mut state = pending();
        state.busy = state.busy.saturating_sub(1);
    }
}

/// An upload in hand, from before it is sent until its result is reported:
/// a second signal names it (see the module documentation).
pub struct Uploading(u64);

impl Uploading {
    /// Marks the upload of `file` (as shown to the user) as started.
    pub fn start(file: String) -> Uploading {
        let mut state = pending();
        let token = state.next_upload;
        state.next_upload += 1;
        state.uploads.push((token, UploadNote::NotSent { file }));
        Uploading(token)
    }

    fn update(&self, change: impl FnOnce(String) -> UploadNote) {
        let mut state = pending();
        if let Some((_, note)) = state.uploads.iter_mut().find(|(t, _)| *t == self.0) {
            let file = match note {
                UploadNote::NotSent { file }
                | UploadNote::Sent { file, .. }
                | UploadNote::Answered { file, .. } => std::mem::take(file),
            };
            *note = change(file);
        }
    }

    /// It is being sent; `check` is the command that tells whether it
    /// arrived.
    pub fn sending(&self, check: String) {
        self.update(|file| UploadNote::Sent { file, check });
    }

    /// The service answered with `parcel_id`.
    pub fn answered(&self, parcel_id: i64) {
        self.update(|file| UploadNote::Answered { file, parcel_id });
    }
}

impl Drop for Uploading {
    fn drop(&mut self) {
        pending().uploads.retain(|(t, _)| *t != self.0);
    }
}

/// Registers a temporary file to remove if the process is interrupted.
pub fn register_temp(path: &Path) {
    pending().temps.push(path.to_path_buf());
}

/// Forgets a temporary file (renamed into place or removed).
pub fn forget_temp(path: &Path) {
    pending().temps.retain(|p| p != path);
}

/// A rotation from the moment it is sent until its key is stored. Dropping it
/// ends that window; if a signal came meanwhile and nothing else is pending,
/// the process then ends (exit 130).
pub struct InFlight {
    user: UserId,
    stored: bool,
}

impl InFlight {
    /// Marks the rotation of `user` as sent.
    pub fn start(user: UserId) -> InFlight {
        pending().in_flight.push(user);
        InFlight {
            user,
            stored: false,
        }
    }

    /// The answer arrived: the key is held in memory until [`stored`](Self::stored).
    pub fn received(&self, key: &ApiKey) {
        let mut state = pending();
        remove_first(&mut state.in_flight, |u| *u == self.user);
        state.unsaved.push((self.user, key.clone()));
    }

    /// The key is stored (or shown on stderr): nothing is left to lose.
    pub fn stored(mut self) {
        self.stored = true;
    }
}

fn remove_first<T>(items: &mut Vec<T>, matches: impl Fn(&T) -> bool) {
    if let Some(i) = items.iter().position(matches) {
        items.remove(i);
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut state = pending();
        remove_first(&mut state.in_flight, |u| *u == self.user);
        if let Some(i) = state.unsaved.iter().position(|(u, _)| *u == self.user) {
            let (user, key) = state.unsaved.remove(i);
            if !self.stored {
                // A path that forgot to store the key: showing it beats losing it.
                say!(
                    "the new key for user {user} (store it now): {}",
                    key.expose()
                );
            }
        }
        if stopping() && state.idle() {
            end(&mut state);
        }
    }
}
