//! The inbound loop for a directory: list the ready parcels, store each one
//! durably under a safe name, and only then confirm it.
//!
//! [`fetch_dir`] runs the whole loop. For each ready parcel not already
//! stored it downloads into a hidden temporary file in the directory
//! (`.<name>.partial-<random>`), checks the byte count (the service's
//! declared size, the bytes received and the file's length must agree),
//! syncs the file, renames it to `<ParcelID>-<safe file name>` (never
//! replacing a file already there, see [`super::names`]), syncs the
//! directory, records `stored` in the directory's journal, confirms, and
//! records `confirmed`. Then it lists again: the inbox listing is paged and
//! takes no page number, so the next page only shows up once the parcels of
//! the first are confirmed. Without confirming (`no_confirm`) only the first
//! page is reachable.
//!
//! The journal (`.ecgridos-parcels.journal` in the directory, JSON Lines,
//! each record synced) is locked for the whole run: two fetches into one
//! directory cannot run at once. After a crash the next run removes leftover
//! temporary files and, for a parcel still listed whose file is already
//! stored (a `stored` record, or with no record a file of the declared size
//! under its final name), confirms it without downloading it again. Nothing
//! is stored twice and nothing is confirmed before it is durable. Delivery is
//! still at least once from the service's side: a parcel confirmed in a run
//! that crashed before the `confirmed` record is simply not listed again.
//!
//! A parcel that fails (a size that does not match, invalid base64, a body
//! cut short, a full disk) is not confirmed, leaves no file under its final
//! name, and the loop goes on with the next one; the [`FetchReport`] lists
//! each parcel's outcome.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::io::AsyncWrite;

use super::names;
use super::{Downloaded, ParcelSummary};
use crate::durable::{rename_no_replace, sync_dir, JournalFile};
use crate::error::{Error, Result};
use crate::rotation::Credential;

/// The journal's file name inside the directory.
pub const JOURNAL_NAME: &str = ".ecgridos-parcels.journal";

/// Callbacks for progress displays; every method has an empty default.
pub trait FetchObserver: Send + Sync {
    /// A parcel is about to be handled (downloaded, or confirmed when it is
    /// already stored).
    fn started(&self, parcel: &ParcelSummary) {
        let _ = parcel;
    }
    /// The parcel is being written to the temporary file `temp` (renamed
    /// into place, or removed, before [`finished`](FetchObserver::finished)).
    /// A process that may end abruptly can remove it then; a later run
    /// removes it anyway.
    fn writing(&self, parcel_id: i64, temp: &Path) {
        let _ = (parcel_id, temp);
    }
    /// `bytes` of the parcel's content have been written so far (a running
    /// count).
    fn progress(&self, parcel_id: i64, bytes: u64) {
        let _ = (parcel_id, bytes);
    }
    /// The parcel is done with.
    fn finished(&self, result: &ParcelResult) {
        let _ = result;
    }
}

/// How [`fetch_dir`] runs.
#[derive(Clone, Default)]
#[non_exhaustive]
pub struct FetchOptions {
    /// List this mailbox only (`ParcelInBoxEx`); the credential's own when
    /// `None`.
    pub mailbox_id: Option<i32>,
    /// Store but do not confirm: the parcels stay in the inbox (and only the
    /// first page of the listing is reachable).
    pub no_confirm: bool,
    /// List once and handle what that listing shows, instead of listing again
    /// until nothing new is ready.
    pub once: bool,
    /// Checked before each parcel: once set, the loop ends after the parcel
    /// in hand (a signal handler sets it).
    pub stop: Option<Arc<AtomicBool>>,
    /// Progress callbacks.
    pub observer: Option<Arc<dyn FetchObserver>>,
}

impl std::fmt::Debug for FetchOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FetchOptions")
            .field("mailbox_id", &self.mailbox_id)
            .field("no_confirm", &self.no_confirm)
            .field("once", &self.once)
            .field("stop", &self.stop)
            .field("observer", &self.observer.is_some())
            .finish()
    }
}

impl FetchOptions {
    /// The defaults: the credential's mailbox, confirm, list until nothing
    /// new is ready, no stop flag, no observer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets [`mailbox_id`](FetchOptions::mailbox_id).
    pub fn mailbox_id(mut self, mailbox_id: Option<i32>) -> Self {
        self.mailbox_id = mailbox_id;
        self
    }

    /// Sets [`no_confirm`](FetchOptions::no_confirm).
    pub fn no_confirm(mut self, no_confirm: bool) -> Self {
        self.no_confirm = no_confirm;
        self
    }

    /// Sets [`once`](FetchOptions::once).
    pub fn once(mut self, once: bool) -> Self {
        self.once = once;
        self
    }

    /// Sets [`stop`](FetchOptions::stop).
    pub fn stop(mut self, stop: Arc<AtomicBool>) -> Self {
        self.stop = Some(stop);
        self
    }

    /// Sets [`observer`](FetchOptions::observer).
    pub fn observer(mut self, observer: Arc<dyn FetchObserver>) -> Self {
        self.observer = Some(observer);
        self
    }

    fn stopping(&self) -> bool {
        self.stop.as_ref().is_some_and(|s| s.load(Ordering::SeqCst))
    }
}

/// What became of the confirm of a stored parcel.
#[derive(Debug)]
#[non_exhaustive]
pub enum Confirm {
    /// Confirmed: the service will not hand the parcel out again.
    Confirmed,
    /// Not asked (`no_confirm`).
    Skipped,
    /// The service answered `false`: the parcel may still be in the inbox.
    Refused,
    /// The confirm failed; the parcel stays in the inbox and the next run
    /// confirms it without downloading it again.
    Failed(Error),
}

/// What became of one parcel.
#[derive(Debug)]
#[non_exhaustive]
pub enum ParcelOutcome {
    /// Downloaded, verified and durably stored now.
    Stored {
        /// Its size.
        bytes: u64,
        /// The confirm that followed.
        confirm: Confirm,
    },
    /// Stored by an earlier run (found in the journal or on disk): not
    /// downloaded again.
    AlreadyStored {
        /// Its size.
        bytes: u64,
        /// The confirm that followed.
        confirm: Confirm,
    },
    /// Not stored and not confirmed; no file was left under its final name.
    Failed(Error),
}

/// One parcel handled by [`fetch_dir`].
#[derive(Debug)]
#[non_exhaustive]
pub struct ParcelResult {
    /// The parcel's ID.
    pub parcel_id: i64,
    /// The file name as the service gave it (untrusted).
    pub file_name: String,
    /// Where it is (or would have been) stored.
    pub path: PathBuf,
    /// What happened.
    pub outcome: ParcelOutcome,
}

impl ParcelResult {
    /// True when the parcel is stored and, unless confirming was skipped,
    /// confirmed.
    pub fn succeeded(&self) -> bool {
        match &self.outcome {
            ParcelOutcome::Stored { confirm, .. }
            | ParcelOutcome::AlreadyStored { confirm, .. } => {
                matches!(confirm, Confirm::Confirmed | Confirm::Skipped)
            }
            ParcelOutcome::Failed(_) => false,
        }
    }

    /// The error, when the parcel or its confirm failed.
    pub fn error(&self) -> Option<&Error> {
        match &self.outcome {
            ParcelOutcome::Failed(e)
            | ParcelOutcome::Stored {
                confirm: Confirm::Failed(e),
                ..
            }
            | ParcelOutcome::AlreadyStored {
                confirm: Confirm::Failed(e),
                ..
            } => Some(e),
            _ => None,
        }
    }
}

/// What [`fetch_dir`] did.
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct FetchReport {
    /// Each parcel handled, in order.
    pub parcels: Vec<ParcelResult>,
    /// How many listings were read.
    pub listings: usize,
    /// A listing after the first failed: the loop ended there.
    pub listing_error: Option<Error>,
    /// The stop flag ended the loop early.
    pub stopped: bool,
    /// Leftover temporary files of an interrupted run that were removed.
    pub removed_leftovers: usize,
}

impl FetchReport {
    /// Parcels downloaded and stored by this run.
    pub fn stored(&self) -> usize {
        self.count(|o| matches!(o, ParcelOutcome::Stored { .. }))
    }

    /// Parcels found stored by an earlier run (only confirmed now).
    pub fn already_stored(&self) -> usize {
        self.count(|o| matches!(o, ParcelOutcome::AlreadyStored { .. }))
    }

    /// Parcels confirmed by this run.
    pub fn confirmed(&self) -> usize {
        self.count(|o| {
            matches!(
                o,
                ParcelOutcome::Stored {
                    confirm: Confirm::Confirmed,
                    ..
                } | ParcelOutcome::AlreadyStored {
                    confirm: Confirm::Confirmed,
                    ..
                }
            )
        })
    }

    /// Parcels that failed, or whose confirm failed or was refused.
    pub fn failed(&self) -> usize {
        self.parcels.iter().filter(|p| !p.succeeded()).count()
    }

    /// True when every parcel succeeded and every listing was read.
    pub fn all_ok(&self) -> bool {
        self.failed() == 0 && self.listing_error.is_none()
    }

    fn count(&self, f: impl Fn(&ParcelOutcome) -> bool) -> usize {
        self.parcels.iter().filter(|p| f(&p.outcome)).count()
    }
}

/// The mailbox calls the loop needs; `ParcelClient` is the one
/// implementation outside tests.
pub(crate) trait Inbox {
    /// The ready parcels.
    async fn ready(&self, cred: &Credential, mailbox_id: Option<i32>)
        -> Result<Vec<ParcelSummary>>;
    /// Writes the content to `out`, checking the declared size; never confirms.
    async fn download_to<W: AsyncWrite + Unpin + Send>(
        &self,
        cred: &Credential,
        parcel_id: i64,
        out: &mut W,
        progress: Option<&(dyn Fn(u64) + Send + Sync)>,
    ) -> Result<Downloaded>;
    /// Confirms the download.
    async fn confirm(&self, cred: &Credential, parcel_id: i64) -> Result<bool>;
}

impl Inbox for super::ParcelClient {
    async fn ready(
        &self,
        cred: &Credential,
        mailbox_id: Option<i32>,
    ) -> Result<Vec<ParcelSummary>> {
        super::ParcelClient::ready(self, cred, mailbox_id).await
    }

    async fn download_to<W: AsyncWrite + Unpin + Send>(
        &self,
        cred: &Credential,
        parcel_id: i64,
        out: &mut W,
        progress: Option<&(dyn Fn(u64) + Send + Sync)>,
    ) -> Result<Downloaded> {
        super::ParcelClient::download_to(self, cred, parcel_id, out, progress).await
    }

    async fn confirm(&self, cred: &Credential, parcel_id: i64) -> Result<bool> {
        super::ParcelClient::confirm(self, cred, parcel_id).await
    }
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum Event {
    Stored,
    Confirmed,
}

#[derive(Debug, Serialize, Deserialize)]
struct Record {
    parcel_id: i64,
    event: Event,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    file: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    bytes: Option<u64>,
    /// A file found stored with no record (a crash before the record).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    recovered: bool,
}

/// What the journal says about one parcel.
#[derive(Clone, Copy, Debug, Default)]
struct Known {
    /// The size recorded as stored.
    stored: Option<u64>,
}

/// The directory's journal, locked for the run.
struct Journal {
    file: JournalFile,
    known: HashMap<i64, Known>,
}

impl Journal {
    fn open(dir: &Path) -> Result<Journal> {
        let path = dir.join(JOURNAL_NAME);
        let mut file = JournalFile::open(&path).map_err(|e| {
            let what = if e.kind() == std::io::ErrorKind::WouldBlock {
                "cannot lock (another fetch into this directory is running)"
            } else {
                "cannot open"
            };
            local(what, &path, e)
        })?;
        let text = file
            .read_all()
            .map_err(|e| local("cannot read", &path, e))?;
        let mut known: HashMap<i64, Known> = HashMap::new();
        for (n, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            match serde_json::from_str::<Record>(line) {
                Ok(record) => {
                    let entry = known.entry(record.parcel_id).or_default();
                    if record.event == Event::Stored {
                        entry.stored = record.bytes;
                    }
                }
                // A torn or damaged line: what it said is recovered from the
                // files themselves (a stored file has its declared size).
                Err(_) => tracing::warn!(
                    line = n + 1,
                    journal = %path.display(),
                    "skipping a journal line that cannot be read"
                ),
            }
        }
        Ok(Journal { file, known })
    }

    fn record(&mut self, record: Record) -> Result<()> {
        self.file
            .append(&record)
            .map_err(|e| local("cannot write", self.file.path(), e))?;
        if record.event == Event::Stored {
            self.known.entry(record.parcel_id).or_default().stored = record.bytes;
        }
        Ok(())
    }
}

/// The operation named in the loop's own errors.
const OPERATION: &str = "ParcelDownload";

/// A local failure of the loop, naming the file.
fn local(what: &str, path: impl AsRef<Path>, source: std::io::Error) -> Error {
    Error::Io {
        operation: OPERATION,
        context: format!("{what} {}", path.as_ref().display()).into(),
        source,
    }
}

/// Runs the inbound loop for `dir` (see the [module documentation](self)).
///
/// Fails as a whole only when the directory cannot be used (not a directory,
/// its journal held by another run: [`Error::Io`] whose
/// [`io_error`](Error::io_error) is of kind
/// [`WouldBlock`](std::io::ErrorKind::WouldBlock)) or the first listing fails; every other failure is
/// per parcel, in the report.
pub async fn fetch_dir(
    client: &super::ParcelClient,
    cred: &Credential,
    dir: &Path,
    options: FetchOptions,
) -> Result<FetchReport> {
    run(client, cred, dir, &options).await
}

pub(crate) async fn run<I: Inbox>(
    inbox: &I,
    cred: &Credential,
    dir: &Path,
    options: &FetchOptions,
) -> Result<FetchReport> {
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => {
            return Err(local(
                "cannot read",
                dir,
                std::io::Error::new(std::io::ErrorKind::NotADirectory, "not a directory"),
            ))
        }
        Err(e) => return Err(local("cannot read", dir, e)),
    }
    let mut journal = Journal::open(dir)?;
    let mut report = FetchReport {
        removed_leftovers: remove_leftovers(dir)?,
        ..FetchReport::default()
    };
    let mut handled = HashSet::new();
    loop {
        if options.stopping() {
            report.stopped = true;
            break;
        }
        let listed = match inbox.ready(cred, options.mailbox_id).await {
            Ok(listed) => listed,
            Err(e) if report.listings == 0 => return Err(e),
            Err(e) => {
                report.listing_error = Some(e);
                break;
            }
        };
        report.listings += 1;
        let fresh: Vec<_> = listed
            .into_iter()
            .filter(|p| handled.insert(p.parcel_id))
            .collect();
        if fresh.is_empty() {
            break;
        }
        for parcel in fresh {
            if options.stopping() {
                report.stopped = true;
                return Ok(report);
            }
            if let Some(o) = &options.observer {
                o.started(&parcel);
            }
            let result = handle(inbox, cred, dir, &mut journal, &parcel, options).await;
            if let Some(o) = &options.observer {
                o.finished(&result);
            }
            report.parcels.push(result);
        }
        // Without confirming the listing shows the same page again.
        if options.once || options.no_confirm {
            break;
        }
    }
    Ok(report)
}

/// Removes the temporary files an interrupted run left (only this loop's:
/// hidden `.…partial-<16 hex digits>` names); the journal's lock guarantees no
/// other run is writing them.
fn remove_leftovers(dir: &Path) -> Result<usize> {
    let entries = std::fs::read_dir(dir).map_err(|e| local("cannot read", dir, e))?;
    let mut removed = 0;
    for entry in entries {
        let entry = entry.map_err(|e| local("cannot read", dir, e))?;
        let name = entry.file_name();
        if name.to_str().is_some_and(names::is_temp_name) {
            let path = entry.path();
            std::fs::remove_file(&path).map_err(|e| local("cannot write", &path, e))?;
            removed += 1;
        }
    }
    if removed > 0 {
        sync_dir(dir).map_err(|e| local("cannot write", dir, e))?;
        tracing::info!(removed, "removed temporary files of an interrupted run");
    }
    Ok(removed)
}

async fn handle<I: Inbox>(
    inbox: &I,
    cred: &Credential,
    dir: &Path,
    journal: &mut Journal,
    parcel: &ParcelSummary,
    options: &FetchOptions,
) -> ParcelResult {
    let path = dir.join(names::local_name(parcel.parcel_id, &parcel.file_name));
    let result = |outcome| ParcelResult {
        parcel_id: parcel.parcel_id,
        file_name: parcel.file_name.clone(),
        path: path.clone(),
        outcome,
    };
    let stored = match already_stored(journal, parcel, &path) {
        Ok(Some(bytes)) => Some(bytes),
        Ok(None) => None,
        Err(e) => return result(ParcelOutcome::Failed(e)),
    };
    let outcome = match stored {
        Some(bytes) => {
            tracing::info!(
                parcel_id = parcel.parcel_id,
                "already stored by an earlier run; not downloading it again"
            );
            let confirm = confirm(inbox, cred, journal, parcel.parcel_id, options).await;
            ParcelOutcome::AlreadyStored { bytes, confirm }
        }
        None => match store(inbox, cred, dir, journal, parcel, &path, options).await {
            Ok(bytes) => {
                let confirm = confirm(inbox, cred, journal, parcel.parcel_id, options).await;
                ParcelOutcome::Stored { bytes, confirm }
            }
            Err(e) => {
                // The caller has the error in the result (the CLI reports it).
                tracing::debug!(parcel_id = parcel.parcel_id, error = %e, "parcel not stored, not confirmed");
                ParcelOutcome::Failed(e)
            }
        },
    };
    result(outcome)
}

/// The size of the parcel's stored file when an earlier run stored it: a
/// `stored` record (the file may since have been moved away by whoever
/// processes the directory), or with no record a file of the declared size
/// under the final name (a crash between the rename and the record). A
/// different file under the final name is an error: it is never replaced.
fn already_stored(
    journal: &mut Journal,
    parcel: &ParcelSummary,
    path: &Path,
) -> Result<Option<u64>> {
    let recorded = journal.known.get(&parcel.parcel_id).and_then(|k| k.stored);
    let on_disk = match std::fs::symlink_metadata(path) {
        Ok(m) => Some(m),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(local("cannot read", path, e)),
    };
    let Some(meta) = on_disk else {
        return Ok(recorded);
    };
    let len = meta.len();
    let declared = u64::try_from(parcel.bytes).ok();
    let ours = meta.is_file()
        && match recorded {
            Some(bytes) => bytes == len,
            None => declared == Some(len),
        };
    if !ours {
        return Err(local("cannot write",
            path,
            std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                "another file already has this parcel's name; it was left as it is and the parcel was not confirmed",
            ),
        ));
    }
    if recorded.is_none() {
        journal.record(Record {
            parcel_id: parcel.parcel_id,
            event: Event::Stored,
            file: file_name_of(path),
            bytes: Some(len),
            recovered: true,
        })?;
    }
    Ok(Some(len))
}

fn file_name_of(path: &Path) -> Option<String> {
    path.file_name().map(|n| n.to_string_lossy().into_owned())
}

/// A temporary file removed when dropped, unless it was renamed into place.
struct Temp {
    path: PathBuf,
    keep: bool,
}

impl Drop for Temp {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Downloads into a temporary file, verifies, syncs and renames it into
/// place, syncs the directory and records it as stored. Returns its size.
async fn store<I: Inbox>(
    inbox: &I,
    cred: &Credential,
    dir: &Path,
    journal: &mut Journal,
    parcel: &ParcelSummary,
    path: &Path,
    options: &FetchOptions,
) -> Result<u64> {
    let stored_name = file_name_of(path).unwrap_or_default();
    let mut temp = Temp {
        path: dir.join(names::temp_name(&stored_name, fastrand::u64(..))),
        keep: false,
    };
    let write_err = |p: &Path| {
        let p = p.to_path_buf();
        move |e| local("cannot write", p, e)
    };
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&temp.path)
        .map_err(write_err(&temp.path))?;
    let mut file = tokio::fs::File::from_std(file);
    if let Some(o) = &options.observer {
        o.writing(parcel.parcel_id, &temp.path);
    }
    let observer = options.observer.clone();
    let id = parcel.parcel_id;
    let progress = move |n: u64| {
        if let Some(o) = &observer {
            o.progress(id, n);
        }
    };
    let downloaded = inbox
        .download_to(cred, parcel.parcel_id, &mut file, Some(&progress))
        .await?;
    {
        use tokio::io::AsyncWriteExt;
        file.flush().await.map_err(write_err(&temp.path))?;
    }
    let file = file.into_std().await;
    // The client checks the answer's own declared size; the listing's must
    // agree too.
    let listed = u64::try_from(parcel.bytes).ok();
    for declared in [Some(downloaded.declared_bytes), listed]
        .into_iter()
        .flatten()
    {
        if declared != downloaded.received_bytes {
            return Err(Error::SizeMismatch {
                operation: OPERATION,
                parcel_id: parcel.parcel_id,
                declared,
                received: downloaded.received_bytes,
            });
        }
    }
    let (temp_path, final_path, dir_path) =
        (temp.path.clone(), path.to_path_buf(), dir.to_path_buf());
    let received = downloaded.received_bytes;
    let durable = tokio::task::spawn_blocking(move || -> Result<u64> {
        let len = file
            .metadata()
            .map_err(|e| local("cannot read", &temp_path, e))?
            .len();
        if len != received {
            return Err(local(
                "cannot write",
                &temp_path,
                std::io::Error::other(format!(
                    "the file holds {len} bytes where {received} were written"
                )),
            ));
        }
        file.sync_all()
            .map_err(|e| local("cannot write", &temp_path, e))?;
        drop(file);
        rename_no_replace(&temp_path, &final_path)
            .map_err(|e| local("cannot write", &final_path, e))?;
        Ok(len)
    })
    .await
    .map_err(|e| local("cannot write", path, std::io::Error::other(e)))?;
    let len = durable?;
    temp.keep = true;
    // Renamed: from here the file is complete under its final name. If the
    // directory cannot be synced or the record written, it is not confirmed;
    // the next run finds it (of the declared size) and confirms it then.
    let dir_for_sync = dir_path.clone();
    tokio::task::spawn_blocking(move || sync_dir(&dir_for_sync))
        .await
        .map_err(std::io::Error::other)
        .and_then(|r| r)
        .map_err(|e| local("cannot write", &dir_path, e))?;
    journal.record(Record {
        parcel_id: parcel.parcel_id,
        event: Event::Stored,
        file: Some(stored_name),
        bytes: Some(len),
        recovered: false,
    })?;
    Ok(len)
}

async fn confirm<I: Inbox>(
    inbox: &I,
    cred: &Credential,
    journal: &mut Journal,
    parcel_id: i64,
    options: &FetchOptions,
) -> Confirm {
    if options.no_confirm {
        return Confirm::Skipped;
    }
    match inbox.confirm(cred, parcel_id).await {
        Ok(true) => {
            let record = Record {
                parcel_id,
                event: Event::Confirmed,
                file: None,
                bytes: None,
                recovered: false,
            };
            if let Err(e) = journal.record(record) {
                // Confirmed all the same; the record only saves a listing.
                tracing::warn!(parcel_id, error = %e, "confirmed, but the journal record could not be written");
            }
            Confirm::Confirmed
        }
        Ok(false) => Confirm::Refused,
        Err(e) => Confirm::Failed(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use tokio::io::AsyncWriteExt;

    /// How a test mailbox answers one parcel's download.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    enum Fault {
        None,
        /// Declares one byte more than it sends.
        ShortByOne,
        /// Sends half, then fails as a body cut short does.
        CutShort,
    }

    struct Parcel {
        id: i64,
        name: String,
        bytes: Vec<u8>,
        fault: Fault,
        confirmed: bool,
    }

    /// An in-memory mailbox with a paged listing, counting calls; at each
    /// confirm it checks that the parcel's file is complete on disk.
    struct Mailbox {
        parcels: Mutex<Vec<Parcel>>,
        page: usize,
        dir: PathBuf,
        downloads: Mutex<Vec<i64>>,
        confirms_before_stored: Mutex<Vec<i64>>,
    }

    impl Mailbox {
        fn new(dir: &Path, page: usize) -> Mailbox {
            Mailbox {
                parcels: Mutex::new(Vec::new()),
                page,
                dir: dir.to_path_buf(),
                downloads: Mutex::new(Vec::new()),
                confirms_before_stored: Mutex::new(Vec::new()),
            }
        }

        fn add(&self, id: i64, name: &str, len: usize, fault: Fault) -> Vec<u8> {
            let bytes: Vec<u8> = (0..len)
                .map(|i| (i as u64 * 31 + id as u64) as u8)
                .collect();
            self.parcels.lock().unwrap().push(Parcel {
                id,
                name: name.into(),
                bytes: bytes.clone(),
                fault,
                confirmed: false,
            });
            bytes
        }

        fn confirmed(&self) -> Vec<i64> {
            let parcels = self.parcels.lock().unwrap();
            parcels
                .iter()
                .filter(|p| p.confirmed)
                .map(|p| p.id)
                .collect()
        }

        fn downloads(&self) -> Vec<i64> {
            self.downloads.lock().unwrap().clone()
        }
    }

    impl Inbox for Mailbox {
        async fn ready(&self, _: &Credential, _: Option<i32>) -> Result<Vec<ParcelSummary>> {
            let parcels = self.parcels.lock().unwrap();
            Ok(parcels
                .iter()
                .filter(|p| !p.confirmed)
                .take(self.page)
                .map(|p| ParcelSummary {
                    parcel_id: p.id,
                    file_name: p.name.clone(),
                    bytes: p.bytes.len() as i64 + i64::from(p.fault == Fault::ShortByOne),
                    status: None,
                    mailbox_id: None,
                    ecgrid_id_from: None,
                    ecgrid_id_to: None,
                    date: None,
                })
                .collect())
        }

        async fn download_to<W: AsyncWrite + Unpin + Send>(
            &self,
            _: &Credential,
            parcel_id: i64,
            out: &mut W,
            progress: Option<&(dyn Fn(u64) + Send + Sync)>,
        ) -> Result<Downloaded> {
            self.downloads.lock().unwrap().push(parcel_id);
            let (name, bytes, fault) = {
                let parcels = self.parcels.lock().unwrap();
                let p = parcels.iter().find(|p| p.id == parcel_id).unwrap();
                (p.name.clone(), p.bytes.clone(), p.fault)
            };
            let io = |e| local("cannot write", "test", e);
            let sent = if fault == Fault::CutShort {
                &bytes[..bytes.len() / 2]
            } else {
                &bytes[..]
            };
            let mut written = 0u64;
            for chunk in sent.chunks(1000) {
                out.write_all(chunk).await.map_err(io)?;
                written += chunk.len() as u64;
                if let Some(p) = progress {
                    p(written);
                }
            }
            out.flush().await.map_err(io)?;
            match fault {
                Fault::CutShort => Err(Error::MalformedResponse {
                    operation: "ParcelDownload",
                    reason: "the body ended early".into(),
                }),
                _ => Ok(Downloaded {
                    parcel_id,
                    file_name: name,
                    declared_bytes: bytes.len() as u64 + u64::from(fault == Fault::ShortByOne),
                    received_bytes: bytes.len() as u64,
                }),
            }
        }

        async fn confirm(&self, _: &Credential, parcel_id: i64) -> Result<bool> {
            let mut parcels = self.parcels.lock().unwrap();
            let p = parcels.iter_mut().find(|p| p.id == parcel_id).unwrap();
            let path = self.dir.join(names::local_name(p.id, &p.name));
            if std::fs::read(&path).ok().as_deref() != Some(&p.bytes[..]) {
                self.confirms_before_stored.lock().unwrap().push(parcel_id);
            }
            let first = !p.confirmed;
            p.confirmed = true;
            Ok(first)
        }
    }

    fn scratch() -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "ecgridos-inbound-{}-{}",
            std::process::id(),
            fastrand::u64(..)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn cred() -> Credential {
        Credential::ApiKey(crate::ApiKey::new("k"))
    }

    /// The directory's entries other than the journal.
    fn listing(dir: &Path) -> Vec<String> {
        let mut names: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n != JOURNAL_NAME)
            .collect();
        names.sort();
        names
    }

    #[tokio::test]
    async fn every_page_is_stored_then_confirmed() {
        let dir = scratch();
        let mailbox = Mailbox::new(&dir, 25);
        let mut expected = Vec::new();
        for id in 1..=60 {
            let bytes = mailbox.add(id, "po.edi", (id as usize * 97) % 5000, Fault::None);
            expected.push((id, bytes));
        }
        let report = run(&mailbox, &cred(), &dir, &FetchOptions::new())
            .await
            .unwrap();
        assert!(report.all_ok(), "{report:?}");
        assert_eq!((report.stored(), report.confirmed()), (60, 60));
        // 25 + 25 + 10, then an empty listing.
        assert_eq!(report.listings, 4);
        assert!(mailbox.confirms_before_stored.lock().unwrap().is_empty());
        for (id, bytes) in expected {
            assert_eq!(
                std::fs::read(dir.join(format!("{id}-po.edi"))).unwrap(),
                bytes
            );
        }
        assert_eq!(listing(&dir).len(), 60);
        let journal = std::fs::read_to_string(dir.join(JOURNAL_NAME)).unwrap();
        assert_eq!(journal.lines().count(), 120);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[tokio::test]
    async fn a_failed_parcel_leaves_nothing_and_the_loop_goes_on() {
        let dir = scratch();
        let mailbox = Mailbox::new(&dir, 25);
        mailbox.add(1, "a.edi", 3000, Fault::None);
        mailbox.add(2, "cut.edi", 3000, Fault::CutShort);
        mailbox.add(3, "short.edi", 3000, Fault::ShortByOne);
        mailbox.add(4, "b.edi", 10, Fault::None);
        let report = run(&mailbox, &cred(), &dir, &FetchOptions::new())
            .await
            .unwrap();
        assert_eq!((report.stored(), report.failed()), (2, 2), "{report:?}");
        assert!(!report.all_ok());
        let failed: Vec<_> = report
            .parcels
            .iter()
            .filter(|p| !p.succeeded())
            .map(|p| p.parcel_id)
            .collect();
        assert_eq!(failed, [2, 3]);
        assert!(report.parcels[2].error().unwrap().is_size_mismatch());
        assert_eq!(mailbox.confirmed(), [1, 4]);
        // No temporary file, nothing under the failed parcels' names.
        assert_eq!(listing(&dir), ["1-a.edi", "4-b.edi"]);
        // The failed ones are tried once per run, not in a loop.
        assert_eq!(mailbox.downloads(), [1, 2, 3, 4]);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[tokio::test]
    async fn a_rerun_confirms_what_is_stored_without_downloading_it() {
        let dir = scratch();
        let mailbox = Mailbox::new(&dir, 25);
        let one = mailbox.add(1, "one.edi", 500, Fault::None);
        mailbox.add(2, "two.edi", 700, Fault::None);
        mailbox.add(3, "three.edi", 900, Fault::None);
        // A crash after the rename, before the record: the file, no record.
        std::fs::write(dir.join("1-one.edi"), &one).unwrap();
        // A crash mid-download: a temporary file.
        std::fs::write(dir.join(names::temp_name("2-two.edi", 7)), b"half").unwrap();
        // A crash after the record, before the confirm; the file was since
        // moved away by whoever processes the directory.
        std::fs::write(
            dir.join(JOURNAL_NAME),
            "{\"parcel_id\":3,\"event\":\"stored\",\"bytes\":900}\n{\"parcel_id\":2,\"ev",
        )
        .unwrap();
        let report = run(&mailbox, &cred(), &dir, &FetchOptions::new())
            .await
            .unwrap();
        assert!(report.all_ok(), "{report:?}");
        assert_eq!(report.removed_leftovers, 1);
        assert_eq!((report.already_stored(), report.stored()), (2, 1));
        assert_eq!(mailbox.downloads(), [2]);
        assert_eq!(mailbox.confirmed(), [1, 2, 3]);
        assert_eq!(listing(&dir), ["1-one.edi", "2-two.edi"]);
        let journal = std::fs::read_to_string(dir.join(JOURNAL_NAME)).unwrap();
        assert!(journal.contains("\"parcel_id\":1,\"event\":\"stored\",\"file\":\"1-one.edi\",\"bytes\":500,\"recovered\":true"), "{journal}");
        // The torn line was closed before the first new record.
        assert!(journal.lines().nth(1).unwrap().ends_with("\"ev"));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[tokio::test]
    async fn another_file_under_the_final_name_is_never_replaced() {
        let dir = scratch();
        let mailbox = Mailbox::new(&dir, 25);
        mailbox.add(1, "x.edi", 100, Fault::None);
        std::fs::write(dir.join("1-x.edi"), b"someone else's").unwrap();
        let report = run(&mailbox, &cred(), &dir, &FetchOptions::new())
            .await
            .unwrap();
        assert_eq!(report.failed(), 1);
        let err = report.parcels[0].error().unwrap();
        assert_eq!(err.kind(), crate::ErrorKind::Io);
        assert_eq!(
            std::fs::read(dir.join("1-x.edi")).unwrap(),
            b"someone else's"
        );
        assert!(mailbox.confirmed().is_empty());
        assert!(mailbox.downloads().is_empty());
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[tokio::test]
    async fn without_confirming_only_the_first_page_is_reachable() {
        let dir = scratch();
        let mailbox = Mailbox::new(&dir, 3);
        for id in 1..=5 {
            mailbox.add(id, "f", 10, Fault::None);
        }
        let options = FetchOptions::new().no_confirm(true);
        let report = run(&mailbox, &cred(), &dir, &options).await.unwrap();
        assert!(report.all_ok());
        assert_eq!(
            (report.stored(), report.confirmed(), report.listings),
            (3, 0, 1)
        );
        assert!(mailbox.confirmed().is_empty());
        // A second run finds them stored and downloads nothing again.
        let again = run(&mailbox, &cred(), &dir, &FetchOptions::new())
            .await
            .unwrap();
        assert_eq!((again.already_stored(), again.stored()), (3, 2));
        assert_eq!(mailbox.downloads(), [1, 2, 3, 4, 5]);
        std::fs::remove_dir_all(dir).unwrap();
    }

    struct StopAfterFirst(Arc<AtomicBool>);

    impl FetchObserver for StopAfterFirst {
        fn finished(&self, _: &ParcelResult) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    #[tokio::test]
    async fn the_stop_flag_ends_the_loop_after_the_parcel_in_hand() {
        let dir = scratch();
        let mailbox = Mailbox::new(&dir, 25);
        for id in 1..=3 {
            mailbox.add(id, "f", 10, Fault::None);
        }
        let stop = Arc::new(AtomicBool::new(false));
        let options = FetchOptions::new()
            .stop(stop.clone())
            .observer(Arc::new(StopAfterFirst(stop)));
        let report = run(&mailbox, &cred(), &dir, &options).await.unwrap();
        assert!(report.stopped);
        assert_eq!(report.parcels.len(), 1);
        assert!(report.parcels[0].succeeded());
        assert_eq!(mailbox.confirmed(), [1]);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[tokio::test]
    async fn two_runs_on_one_directory_cannot_overlap() {
        let dir = scratch();
        let mailbox = Mailbox::new(&dir, 25);
        let held = Journal::open(&dir).unwrap();
        let err = run(&mailbox, &cred(), &dir, &FetchOptions::new())
            .await
            .unwrap_err();
        assert!(err.is_io(), "{err:?}");
        assert_eq!(
            err.io_error().unwrap().kind(),
            std::io::ErrorKind::WouldBlock
        );
        drop(held);
        assert!(run(&mailbox, &cred(), &dir, &FetchOptions::new())
            .await
            .is_ok());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
