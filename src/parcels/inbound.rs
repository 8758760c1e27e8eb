//! The inbound loop for a directory: list the ready parcels, store each one
//! durably under a safe name, and only then confirm it.
//!
//! [`fetch_dir`] runs the whole loop. For each ready parcel it downloads
//! into a hidden temporary file in the directory (`.<name>.partial-<random>`),
//! hashing it (SHA-256) as it goes, checks the byte count (the service's
//! declared size, the listing's, the bytes received and the file's length
//! must agree), syncs the file, records `stored` (size and SHA-256) in the
//! directory's journal, renames it to `<ParcelID>-<safe file name>` (never
//! replacing a file already there, see [`super::names`]), syncs the
//! directory, confirms, and records `confirmed`. The record comes before the
//! rename: no file appears under a final name that the journal does not know
//! of, and a record whose rename never happened only costs a download. Then
//! it lists again: the inbox listing is paged and takes no page number, so
//! the next page only shows up once the parcels of the first are confirmed.
//! Without confirming (`no_confirm`) only the first page is reachable.
//!
//! The journal (`.ecgridos-parcels.journal` in the directory, JSON Lines,
//! each record synced, never through a symbolic link) starts with a header
//! naming the protocol and endpoint; a run against another is refused
//! ([`Error::InvalidInput`]). It is locked for the whole run: two fetches
//! into one directory cannot run at once. A parcel listed again is handled
//! by these rules:
//!
//! - recorded `stored` and not `confirmed` (a crash or failure between the
//!   store and the confirm), of the size listed now, and its file still holds
//!   the recorded size and SHA-256: it is synced again and confirmed, not
//!   downloaded;
//! - anything else (our confirm recorded, then reset by an operator or
//!   delivered again by the service; the file moved away or changed; no
//!   record): it is downloaded again. If its final name already holds the
//!   same bytes, no second copy is made; if it holds other bytes, the parcel
//!   fails and that file is left as it is.
//!
//! A path is reported only for a file that is there. After a crash the next
//! run removes leftover temporary files. A write to the journal that fails
//! midway leaves a torn line, closed before the next record; a torn or
//! damaged line is skipped (the parcel it named is downloaded again).
//!
//! Retention: when a run opens a journal holding more than
//! `2 × pending + 1001` lines (pending: the parcels recorded stored and not
//! confirmed), it is compacted atomically (written to a temporary file,
//! synced, renamed over, directory synced) to its header and the pending
//! records whose file is still there with the recorded size; confirmed
//! parcels leave no record (listed again, they are downloaded again anyway).
//! The journal is read one line at a time, so a poll's memory stays bounded
//! by the pending parcels, not by the directory's history.
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
    /// Compact the journal past this many lines of slack (the simulator
    /// makes it small); `COMPACT_AFTER` when `None`.
    pub(crate) compact_after: Option<usize>,
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
/// implementation outside tests (the simulator in `super::sim` is another).
pub(crate) trait Inbox {
    /// The protocol (`soap`, `rest`) and endpoint the parcels come from: a
    /// directory's journal is bound to them.
    fn service(&self) -> (String, String);
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
    /// Puts a parcel back in the inbox (an operator's `parcels reset`; the
    /// loop itself never resets).
    #[cfg_attr(not(test), allow(dead_code))]
    async fn reset(&self, cred: &Credential, parcel_id: i64) -> Result<bool>;
}

impl Inbox for super::ParcelClient {
    fn service(&self) -> (String, String) {
        let endpoint = match self {
            super::ParcelClient::Soap(c) => c.endpoint().to_string(),
            super::ParcelClient::Rest(c) => url::Url::parse(c.base_url())
                .map(|u| u.to_string())
                .unwrap_or_else(|_| c.base_url().to_string()),
        };
        (self.protocol().to_string(), endpoint)
    }

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

    async fn reset(&self, cred: &Credential, parcel_id: i64) -> Result<bool> {
        super::ParcelClient::reset(self, cred, parcel_id).await
    }
}

/// The size and SHA-256 of a file's bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Digest {
    /// The byte count.
    pub(crate) bytes: u64,
    /// The SHA-256.
    pub(crate) sha256: [u8; 32],
}

impl Digest {
    /// The digest of `bytes`.
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) fn of(bytes: &[u8]) -> Digest {
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        ctx.update(bytes);
        Digest::finish(ctx, bytes.len() as u64)
    }

    fn finish(ctx: ring::digest::Context, bytes: u64) -> Digest {
        let mut sha256 = [0u8; 32];
        sha256.copy_from_slice(ctx.finish().as_ref());
        Digest { bytes, sha256 }
    }

    fn hex(&self) -> String {
        self.sha256.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn from_hex(bytes: u64, hex: &str) -> Option<Digest> {
        if hex.len() != 64 {
            return None;
        }
        let mut sha256 = [0u8; 32];
        for (i, out) in sha256.iter_mut().enumerate() {
            *out = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
        }
        Some(Digest { bytes, sha256 })
    }
}

/// The directory operations of the loop, by entry name inside the
/// directory. [`RealDir`] does them with `std::fs` and [`crate::durable`];
/// the simulator in `super::sim` models their durability and faults. Each
/// one says what it makes durable: nothing else is.
pub(crate) trait Dir {
    /// A temporary file being written.
    type Temp: AsyncWrite + Unpin + Send;
    /// The path of an entry, for reports and the observer.
    fn path(&self, name: &str) -> PathBuf;
    /// The names in the directory.
    fn list(&self) -> std::io::Result<Vec<String>>;
    /// Removes an entry (not durable until [`sync`](Dir::sync)).
    fn remove(&self, name: &str) -> std::io::Result<()>;
    /// Creates a new file, failing if the name exists.
    fn create_temp(&self, name: &str) -> std::io::Result<Self::Temp>;
    /// Syncs a temporary file's bytes to disk and closes it; its length.
    async fn sync_temp(&self, temp: Self::Temp) -> std::io::Result<u64>;
    /// Renames `from` to `to` unless `to` exists (`AlreadyExists`); durable
    /// after [`sync`](Dir::sync).
    fn rename_no_replace(&self, from: &str, to: &str) -> std::io::Result<()>;
    /// Syncs the directory: its entries' creations, renames and removals.
    fn sync(&self) -> std::io::Result<()>;
    /// Syncs a file's bytes.
    fn sync_file(&self, name: &str) -> std::io::Result<()>;
    /// The length of a regular file, `None` when there is none by that name.
    fn len(&self, name: &str) -> std::io::Result<Option<u64>>;
    /// The size and SHA-256 of a regular file, `None` when there is no entry
    /// by that name; an entry of another kind is an `AlreadyExists` error.
    fn digest(&self, name: &str) -> std::io::Result<Option<Digest>>;
    /// Opens (creating it durably) and locks the journal for this value's
    /// life; `WouldBlock` when another run holds it.
    fn journal_open(&mut self) -> std::io::Result<()>;
    /// Hands each journal line to `each`, one at a time.
    fn journal_read(&mut self, each: &mut dyn FnMut(&str)) -> std::io::Result<()>;
    /// Appends a line and syncs it; a torn last line is closed first, and a
    /// failed append leaves the journal marked torn.
    fn journal_append(&mut self, line: &str) -> std::io::Result<()>;
    /// Replaces the journal by `lines` atomically and durably (or not at
    /// all).
    fn journal_replace(&mut self, lines: &mut dyn Iterator<Item = String>) -> std::io::Result<()>;
}

/// A real directory.
pub(crate) struct RealDir {
    dir: PathBuf,
    journal: Option<JournalFile>,
}

impl RealDir {
    pub(crate) fn new(dir: &Path) -> RealDir {
        RealDir {
            dir: dir.to_path_buf(),
            journal: None,
        }
    }

    fn journal(&mut self) -> std::io::Result<&mut JournalFile> {
        self.journal
            .as_mut()
            .ok_or_else(|| std::io::Error::other("the journal is not open"))
    }

    /// Opens an entry for reading, never through a symbolic link.
    fn open_read(&self, name: &str) -> std::io::Result<Option<std::fs::File>> {
        let mut options = std::fs::OpenOptions::new();
        options.read(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK);
        }
        match options.open(self.path(name)) {
            Ok(f) if f.metadata()?.is_file() => Ok(Some(f)),
            Ok(_) => Err(not_ours()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            #[cfg(unix)]
            Err(e) if e.raw_os_error() == Some(libc::ELOOP) => Err(not_ours()),
            Err(e) => Err(e),
        }
    }
}

fn not_ours() -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::AlreadyExists,
        "another file already has this parcel's name; it was left as it is and the parcel was not confirmed",
    )
}

impl Dir for RealDir {
    type Temp = tokio::fs::File;

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn list(&self) -> std::io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(&self.dir)? {
            if let Some(name) = entry?.file_name().to_str() {
                names.push(name.to_string());
            }
        }
        Ok(names)
    }

    fn remove(&self, name: &str) -> std::io::Result<()> {
        std::fs::remove_file(self.path(name))
    }

    fn create_temp(&self, name: &str) -> std::io::Result<tokio::fs::File> {
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(self.path(name))?;
        Ok(tokio::fs::File::from_std(file))
    }

    async fn sync_temp(&self, temp: tokio::fs::File) -> std::io::Result<u64> {
        temp.sync_all().await?;
        Ok(temp.metadata().await?.len())
    }

    fn rename_no_replace(&self, from: &str, to: &str) -> std::io::Result<()> {
        rename_no_replace(&self.path(from), &self.path(to))
    }

    fn sync(&self) -> std::io::Result<()> {
        sync_dir(&self.dir)
    }

    fn sync_file(&self, name: &str) -> std::io::Result<()> {
        match self.open_read(name)? {
            Some(f) => f.sync_all(),
            None => Err(std::io::ErrorKind::NotFound.into()),
        }
    }

    fn len(&self, name: &str) -> std::io::Result<Option<u64>> {
        match std::fs::symlink_metadata(self.path(name)) {
            Ok(m) if m.is_file() => Ok(Some(m.len())),
            Ok(_) => Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn digest(&self, name: &str) -> std::io::Result<Option<Digest>> {
        use std::io::Read;
        let Some(mut file) = self.open_read(name)? else {
            return Ok(None);
        };
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        let mut buf = vec![0u8; 64 * 1024];
        let mut bytes = 0u64;
        loop {
            let n = file.read(&mut buf)?;
            if n == 0 {
                break;
            }
            ctx.update(&buf[..n]);
            bytes += n as u64;
        }
        Ok(Some(Digest::finish(ctx, bytes)))
    }

    fn journal_open(&mut self) -> std::io::Result<()> {
        self.journal = Some(JournalFile::open(&self.path(JOURNAL_NAME))?);
        Ok(())
    }

    fn journal_read(&mut self, each: &mut dyn FnMut(&str)) -> std::io::Result<()> {
        self.journal()?.for_each_line(each)
    }

    fn journal_append(&mut self, line: &str) -> std::io::Result<()> {
        self.journal()?.append_line(line)
    }

    fn journal_replace(&mut self, lines: &mut dyn Iterator<Item = String>) -> std::io::Result<()> {
        let temp = self.path(&names::temp_name(JOURNAL_NAME, fastrand::u64(..)));
        self.journal()?.replace(&temp, lines)
    }
}

/// A writer that hashes what its inner writer accepted.
struct Hashing<W> {
    inner: W,
    ctx: ring::digest::Context,
    bytes: u64,
}

impl<W: AsyncWrite + Unpin> AsyncWrite for Hashing<W> {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let polled = std::pin::Pin::new(&mut this.inner).poll_write(cx, buf);
        if let std::task::Poll::Ready(Ok(n)) = &polled {
            this.ctx.update(&buf[..*n]);
            this.bytes += *n as u64;
        }
        polled
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// The journal's first line: the service its records are about.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
struct Header {
    journal: String,
    version: u32,
    protocol: String,
    endpoint: String,
}

/// The header's `journal` value.
const JOURNAL_KIND: &str = "ecgridos-parcels";

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
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sha256: Option<String>,
}

/// A parcel recorded as stored and not (yet) as confirmed.
#[derive(Clone, Debug)]
struct Pending {
    file: String,
    digest: Digest,
}

/// A journal is compacted when it holds more than this many lines beyond
/// twice the records it must keep.
const COMPACT_AFTER: usize = 1000;

/// The directory's journal, locked for the run: what it must remember is
/// the parcels stored and not confirmed (with their size and SHA-256); a
/// confirmed parcel needs no record (listed again, it is downloaded again).
struct Journal {
    path: PathBuf,
    pending: HashMap<i64, Pending>,
    header: Header,
}

impl Journal {
    /// Opens, checks the header against `service`, reads the pending
    /// parcels, and compacts when the journal has grown.
    fn open<D: Dir>(
        dir: &mut D,
        service: (String, String),
        compact_after: usize,
    ) -> Result<Journal> {
        let path = dir.path(JOURNAL_NAME);
        dir.journal_open().map_err(|e| {
            let what = if e.kind() == std::io::ErrorKind::WouldBlock {
                "cannot lock (another fetch into this directory is running)"
            } else {
                "cannot open"
            };
            local(what, &path, e)
        })?;
        let header = Header {
            journal: JOURNAL_KIND.into(),
            version: 2,
            protocol: service.0,
            endpoint: service.1,
        };
        let mut found: Option<std::result::Result<Header, String>> = None;
        let mut pending: HashMap<i64, Pending> = HashMap::new();
        let (mut lines, mut unreadable) = (0usize, 0usize);
        dir.journal_read(&mut |line| {
            if line.trim().is_empty() {
                return;
            }
            lines += 1;
            if found.is_none() {
                found = Some(serde_json::from_str::<Header>(line).map_err(|_| line.to_string()));
                if matches!(found, Some(Ok(_))) {
                    return;
                }
            }
            match serde_json::from_str::<Record>(line) {
                Ok(Record {
                    parcel_id,
                    event: Event::Stored,
                    file: Some(file),
                    bytes: Some(bytes),
                    sha256: Some(sha),
                }) => match Digest::from_hex(bytes, &sha) {
                    Some(digest) => {
                        pending.insert(parcel_id, Pending { file, digest });
                    }
                    None => unreadable += 1,
                },
                Ok(Record {
                    parcel_id,
                    event: Event::Confirmed,
                    ..
                }) => {
                    pending.remove(&parcel_id);
                }
                // A record of an older version (no SHA-256) proves nothing:
                // such a parcel is downloaded again if it is listed.
                Ok(_) => {}
                // A torn or damaged line: the parcel it named is downloaded
                // again if it is listed.
                Err(_) => unreadable += 1,
            }
        })
        .map_err(|e| local("cannot read", &path, e))?;
        if unreadable > 0 {
            tracing::warn!(unreadable, journal = %path.display(), "skipped journal lines that cannot be read");
        }
        let headed = match found {
            Some(Ok(h)) => {
                if h.journal != JOURNAL_KIND
                    || h.protocol != header.protocol
                    || h.endpoint != header.endpoint
                {
                    return Err(Error::InvalidInput {
                        field: "the directory's journal".into(),
                        reason: format!(
                            "{} is the journal of parcels fetched from {} over {}; this run fetches from {} over {}: its records do not apply (use another directory; nothing was fetched)",
                            path.display(),
                            h.endpoint,
                            h.protocol,
                            header.endpoint,
                            header.protocol
                        )
                        .into(),
                    });
                }
                true
            }
            _ => false,
        };
        let mut journal = Journal {
            path,
            pending,
            header,
        };
        if !headed && lines == 0 {
            let line = serde_json::to_string(&journal.header)
                .map_err(|e| local("cannot write", &journal.path, std::io::Error::other(e)))?;
            dir.journal_append(&line)
                .map_err(|e| local("cannot write", &journal.path, e))?;
        } else if !headed || lines > 2 * journal.pending.len() + 1 + compact_after {
            // A journal of an older version gets its header here too.
            if let Err(e) = journal.compact(dir) {
                if !headed {
                    return Err(e);
                }
                tracing::warn!(error = %e, "the journal could not be compacted; it is left as it was");
            }
        }
        Ok(journal)
    }

    /// Rewrites the journal with its header and the pending parcels whose
    /// file is still there with the recorded size (a pending record whose
    /// file is gone cannot spare a download any more).
    fn compact<D: Dir>(&mut self, dir: &mut D) -> Result<()> {
        let mut keep: Vec<(i64, Pending)> = Vec::new();
        for (id, p) in &self.pending {
            let len = dir
                .len(&p.file)
                .map_err(|e| local("cannot read", dir.path(&p.file), e))?;
            if len == Some(p.digest.bytes) {
                keep.push((*id, p.clone()));
            }
        }
        keep.sort_by_key(|(id, _)| *id);
        let header = serde_json::to_string(&self.header)
            .map_err(|e| local("cannot write", &self.path, std::io::Error::other(e)))?;
        let mut lines = std::iter::once(header).chain(
            keep.iter()
                .filter_map(|(id, p)| serde_json::to_string(&stored_record(*id, p)).ok()),
        );
        dir.journal_replace(&mut lines)
            .map_err(|e| local("cannot write", &self.path, e))?;
        self.pending = keep.into_iter().collect();
        Ok(())
    }

    fn append<D: Dir>(&mut self, dir: &mut D, record: &Record) -> Result<()> {
        let line = serde_json::to_string(record)
            .map_err(|e| local("cannot write", &self.path, std::io::Error::other(e)))?;
        dir.journal_append(&line)
            .map_err(|e| local("cannot write", &self.path, e))
    }

    fn stored<D: Dir>(&mut self, dir: &mut D, parcel_id: i64, pending: Pending) -> Result<()> {
        self.append(dir, &stored_record(parcel_id, &pending))?;
        self.pending.insert(parcel_id, pending);
        Ok(())
    }

    fn confirmed<D: Dir>(&mut self, dir: &mut D, parcel_id: i64) -> Result<()> {
        self.pending.remove(&parcel_id);
        let record = Record {
            parcel_id,
            event: Event::Confirmed,
            file: None,
            bytes: None,
            sha256: None,
        };
        self.append(dir, &record)
    }
}

fn stored_record(parcel_id: i64, p: &Pending) -> Record {
    Record {
        parcel_id,
        event: Event::Stored,
        file: Some(p.file.clone()),
        bytes: Some(p.digest.bytes),
        sha256: Some(p.digest.hex()),
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
/// [`WouldBlock`](std::io::ErrorKind::WouldBlock); its journal bound to
/// another endpoint or protocol: [`Error::InvalidInput`]) or the first
/// listing fails; every other failure is per parcel, in the report.
pub async fn fetch_dir(
    client: &super::ParcelClient,
    cred: &Credential,
    dir: &Path,
    options: FetchOptions,
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
    run(client, cred, &mut RealDir::new(dir), &options).await
}

/// The loop over any mailbox and directory (the real ones, or the
/// simulator's).
pub(crate) async fn run<I: Inbox, D: Dir>(
    inbox: &I,
    cred: &Credential,
    dir: &mut D,
    options: &FetchOptions,
) -> Result<FetchReport> {
    let compact_after = options.compact_after.unwrap_or(COMPACT_AFTER);
    let mut journal = Journal::open(dir, inbox.service(), compact_after)?;
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
fn remove_leftovers<D: Dir>(dir: &D) -> Result<usize> {
    let root = dir.path("");
    let mut removed = 0;
    for name in dir.list().map_err(|e| local("cannot read", &root, e))? {
        if names::is_temp_name(&name) {
            dir.remove(&name)
                .map_err(|e| local("cannot write", dir.path(&name), e))?;
            removed += 1;
        }
    }
    if removed > 0 {
        dir.sync().map_err(|e| local("cannot write", &root, e))?;
        tracing::info!(removed, "removed temporary files of an interrupted run");
    }
    Ok(removed)
}

async fn handle<I: Inbox, D: Dir>(
    inbox: &I,
    cred: &Credential,
    dir: &mut D,
    journal: &mut Journal,
    parcel: &ParcelSummary,
    options: &FetchOptions,
) -> ParcelResult {
    let name = names::local_name(parcel.parcel_id, &parcel.file_name);
    let path = dir.path(&name);
    let result = |outcome| ParcelResult {
        parcel_id: parcel.parcel_id,
        file_name: parcel.file_name.clone(),
        path: path.clone(),
        outcome,
    };
    let outcome = match stored_earlier(dir, journal, parcel, &name) {
        Err(e) => ParcelOutcome::Failed(e),
        Ok(Some(bytes)) => {
            tracing::info!(
                parcel_id = parcel.parcel_id,
                "stored by an earlier run and still intact; not downloading it again"
            );
            let confirm = confirm(inbox, cred, dir, journal, parcel.parcel_id, options).await;
            ParcelOutcome::AlreadyStored { bytes, confirm }
        }
        Ok(None) => match store(inbox, cred, dir, journal, parcel, &name, options).await {
            Ok(bytes) => {
                let confirm = confirm(inbox, cred, dir, journal, parcel.parcel_id, options).await;
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

/// The size of the parcel's file when an earlier run stored it and did not
/// record its confirm (a crash or failure in between), and the file is
/// still there with the recorded size and SHA-256, of the size listed now;
/// it is made durable again before it is confirmed. `None`: download it.
fn stored_earlier<D: Dir>(
    dir: &D,
    journal: &Journal,
    parcel: &ParcelSummary,
    name: &str,
) -> Result<Option<u64>> {
    let Some(pending) = journal.pending.get(&parcel.parcel_id) else {
        return Ok(None);
    };
    if pending.file != name || u64::try_from(parcel.bytes).ok() != Some(pending.digest.bytes) {
        return Ok(None);
    }
    match dir.digest(name) {
        Ok(Some(found)) if found == pending.digest => {}
        Ok(_) => return Ok(None),
        Err(e) => return Err(local("cannot read", dir.path(name), e)),
    }
    make_durable(dir, name)?;
    Ok(Some(pending.digest.bytes))
}

/// Syncs a file found in place and the directory: an earlier run may have
/// ended before it did.
fn make_durable<D: Dir>(dir: &D, name: &str) -> Result<()> {
    dir.sync_file(name)
        .map_err(|e| local("cannot write", dir.path(name), e))?;
    dir.sync()
        .map_err(|e| local("cannot write", dir.path(""), e))
}

/// Downloads into a temporary file (hashing it), verifies, syncs it,
/// records it as stored, renames it into place and syncs the directory.
/// Returns its size. The record comes before the rename, so that no file
/// appears under a final name that the journal does not know of; a record
/// whose rename never happened only costs a download.
async fn store<I: Inbox, D: Dir>(
    inbox: &I,
    cred: &Credential,
    dir: &mut D,
    journal: &mut Journal,
    parcel: &ParcelSummary,
    name: &str,
    options: &FetchOptions,
) -> Result<u64> {
    let temp = names::temp_name(name, fastrand::u64(..));
    let temp_path = dir.path(&temp);
    let file = dir
        .create_temp(&temp)
        .map_err(|e| local("cannot write", &temp_path, e))?;
    let stored = write_temp(inbox, cred, dir, parcel, &temp, file, options).await;
    let digest = match stored {
        Ok(d) => d,
        Err(e) => {
            let _ = dir.remove(&temp);
            return Err(e);
        }
    };
    let placed = place(dir, journal, parcel.parcel_id, &temp, name, digest);
    if placed.is_err() {
        let _ = dir.remove(&temp);
    }
    placed
}

/// Writes the download into the temporary file and syncs it: its digest.
async fn write_temp<I: Inbox, D: Dir>(
    inbox: &I,
    cred: &Credential,
    dir: &D,
    parcel: &ParcelSummary,
    temp: &str,
    file: D::Temp,
    options: &FetchOptions,
) -> Result<Digest> {
    let temp_path = dir.path(temp);
    if let Some(o) = &options.observer {
        o.writing(parcel.parcel_id, &temp_path);
    }
    let observer = options.observer.clone();
    let id = parcel.parcel_id;
    let progress = move |n: u64| {
        if let Some(o) = &observer {
            o.progress(id, n);
        }
    };
    let mut out = Hashing {
        inner: file,
        ctx: ring::digest::Context::new(&ring::digest::SHA256),
        bytes: 0,
    };
    let downloaded = inbox
        .download_to(cred, parcel.parcel_id, &mut out, Some(&progress))
        .await?;
    {
        use tokio::io::AsyncWriteExt;
        out.flush()
            .await
            .map_err(|e| local("cannot write", &temp_path, e))?;
    }
    // The client checks the answer's own declared size; the listing's must
    // agree too, and so must what reached the file.
    let listed = u64::try_from(parcel.bytes).ok();
    for declared in [Some(downloaded.declared_bytes), listed, Some(out.bytes)]
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
    let digest = Digest::finish(out.ctx, out.bytes);
    let len = dir
        .sync_temp(out.inner)
        .await
        .map_err(|e| local("cannot write", &temp_path, e))?;
    if len != digest.bytes {
        return Err(local(
            "cannot write",
            &temp_path,
            std::io::Error::other(format!(
                "the file holds {len} bytes where {} were written",
                digest.bytes
            )),
        ));
    }
    Ok(digest)
}

/// Puts a synced temporary file in place under `name` (or finds the same
/// bytes already there) with its `stored` record written first.
fn place<D: Dir>(
    dir: &mut D,
    journal: &mut Journal,
    parcel_id: i64,
    temp: &str,
    name: &str,
    digest: Digest,
) -> Result<u64> {
    let path = dir.path(name);
    let existing = dir
        .digest(name)
        .map_err(|e| local("cannot write", &path, e))?;
    let pending = Pending {
        file: name.to_string(),
        digest,
    };
    match existing {
        // The same bytes are already there (stored before a crash, a reset
        // or a lost journal): no second copy.
        Some(found) if found == digest => {
            dir.remove(temp)
                .map_err(|e| local("cannot write", dir.path(temp), e))?;
            journal.stored(dir, parcel_id, pending)?;
            make_durable(dir, name)?;
        }
        Some(_) => return Err(local("cannot write", &path, not_ours())),
        None => {
            journal.stored(dir, parcel_id, pending)?;
            dir.rename_no_replace(temp, name)
                .map_err(|e| local("cannot write", &path, e))?;
            // Renamed: if the directory cannot be synced the parcel is not
            // confirmed; the next run finds it by its record and confirms it.
            dir.sync()
                .map_err(|e| local("cannot write", dir.path(""), e))?;
        }
    }
    Ok(digest.bytes)
}

async fn confirm<I: Inbox, D: Dir>(
    inbox: &I,
    cred: &Credential,
    dir: &mut D,
    journal: &mut Journal,
    parcel_id: i64,
    options: &FetchOptions,
) -> Confirm {
    if options.no_confirm {
        return Confirm::Skipped;
    }
    match inbox.confirm(cred, parcel_id).await {
        Ok(true) => {
            if let Err(e) = journal.confirmed(dir, parcel_id) {
                // Confirmed all the same; without the record a re-delivery
                // is taken for an interrupted run, and its bytes are checked.
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
        fn service(&self) -> (String, String) {
            ("soap".into(), "http://mailbox.test/".into())
        }

        async fn reset(&self, _: &Credential, parcel_id: i64) -> Result<bool> {
            let mut parcels = self.parcels.lock().unwrap();
            let p = parcels.iter_mut().find(|p| p.id == parcel_id).unwrap();
            let was = p.confirmed;
            p.confirmed = false;
            Ok(was)
        }

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
        let report = run(
            &mailbox,
            &cred(),
            &mut RealDir::new(&dir),
            &FetchOptions::new(),
        )
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
        // The header, then a stored and a confirmed record per parcel.
        assert_eq!(journal.lines().count(), 121);
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
        let report = run(
            &mailbox,
            &cred(),
            &mut RealDir::new(&dir),
            &FetchOptions::new(),
        )
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

    /// A `stored` record as a run that crashed before its confirm left it.
    fn stored_line(id: i64, file: &str, bytes: &[u8]) -> String {
        let p = Pending {
            file: file.into(),
            digest: Digest::of(bytes),
        };
        serde_json::to_string(&stored_record(id, &p)).unwrap() + "\n"
    }

    fn header_line(mailbox: &Mailbox) -> String {
        let (protocol, endpoint) = mailbox.service();
        format!("{{\"journal\":\"ecgridos-parcels\",\"version\":2,\"protocol\":\"{protocol}\",\"endpoint\":\"{endpoint}\"}}\n")
    }

    #[tokio::test]
    async fn a_rerun_confirms_only_what_is_stored_intact() {
        let dir = scratch();
        let mailbox = Mailbox::new(&dir, 25);
        let one = mailbox.add(1, "one.edi", 500, Fault::None);
        mailbox.add(2, "two.edi", 700, Fault::None);
        let three = mailbox.add(3, "three.edi", 900, Fault::None);
        let four = mailbox.add(4, "four.edi", 300, Fault::None);
        // A crash after the record and the rename, before the confirm.
        std::fs::write(dir.join("1-one.edi"), &one).unwrap();
        // A crash mid-download: a temporary file.
        std::fs::write(dir.join(names::temp_name("2-two.edi", 7)), b"half").unwrap();
        // Parcel 3 was recorded, but its file was since moved away by the
        // consumer; parcel 4's was since changed.
        std::fs::write(dir.join("4-four.edi"), vec![b'x'; 300]).unwrap();
        let journal = header_line(&mailbox)
            + &stored_line(1, "1-one.edi", &one)
            + &stored_line(3, "3-three.edi", &three)
            + &stored_line(4, "4-four.edi", &four)
            + "{\"parcel_id\":2,\"ev";
        std::fs::write(dir.join(JOURNAL_NAME), journal).unwrap();
        let report = run(
            &mailbox,
            &cred(),
            &mut RealDir::new(&dir),
            &FetchOptions::new(),
        )
        .await
        .unwrap();
        assert_eq!(report.removed_leftovers, 1);
        assert_eq!((report.already_stored(), report.stored()), (1, 2));
        assert_eq!(report.failed(), 1, "{report:?}");
        // Never confirmed without its bytes, never replaced.
        assert_eq!(mailbox.downloads(), [2, 3, 4]);
        assert_eq!(mailbox.confirmed(), [1, 2, 3]);
        assert!(mailbox.confirms_before_stored.lock().unwrap().is_empty());
        assert_eq!(
            listing(&dir),
            ["1-one.edi", "2-two.edi", "3-three.edi", "4-four.edi"]
        );
        assert_eq!(
            std::fs::read(dir.join("4-four.edi")).unwrap(),
            vec![b'x'; 300]
        );
        let journal = std::fs::read_to_string(dir.join(JOURNAL_NAME)).unwrap();
        // The torn line was closed before the first new record.
        assert!(
            journal.lines().nth(4).unwrap().ends_with("\"ev"),
            "{journal}"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[tokio::test]
    async fn a_long_journal_is_compacted_to_what_is_pending() {
        let dir = scratch();
        let mailbox = Mailbox::new(&dir, 25);
        let kept = mailbox.add(9, "kept.edi", 40, Fault::None);
        std::fs::write(dir.join("9-kept.edi"), &kept).unwrap();
        let mut journal = header_line(&mailbox);
        for id in 100..3100 {
            journal += &stored_line(id, &format!("{id}-x"), b"x");
            journal += &format!("{{\"parcel_id\":{id},\"event\":\"confirmed\"}}\n");
        }
        // Pending, its file gone: nothing left to spare.
        journal += &stored_line(8, "8-gone.edi", b"gone");
        journal += &stored_line(9, "9-kept.edi", &kept);
        std::fs::write(dir.join(JOURNAL_NAME), journal).unwrap();
        let options = FetchOptions::new().no_confirm(true);
        let report = run(&mailbox, &cred(), &mut RealDir::new(&dir), &options)
            .await
            .unwrap();
        assert_eq!(report.already_stored(), 1, "{report:?}");
        assert!(mailbox.downloads().is_empty());
        let after = std::fs::read_to_string(dir.join(JOURNAL_NAME)).unwrap();
        assert_eq!(
            after,
            header_line(&mailbox) + &stored_line(9, "9-kept.edi", &kept)
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[tokio::test]
    async fn another_file_under_the_final_name_is_never_replaced() {
        let dir = scratch();
        let mailbox = Mailbox::new(&dir, 25);
        mailbox.add(1, "x.edi", 100, Fault::None);
        std::fs::write(dir.join("1-x.edi"), b"someone else's").unwrap();
        let report = run(
            &mailbox,
            &cred(),
            &mut RealDir::new(&dir),
            &FetchOptions::new(),
        )
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
        // Downloaded to compare, then left unstored.
        assert_eq!(mailbox.downloads(), [1]);
        assert_eq!(listing(&dir), ["1-x.edi"]);
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
        let report = run(&mailbox, &cred(), &mut RealDir::new(&dir), &options)
            .await
            .unwrap();
        assert!(report.all_ok());
        assert_eq!(
            (report.stored(), report.confirmed(), report.listings),
            (3, 0, 1)
        );
        assert!(mailbox.confirmed().is_empty());
        // A second run finds them stored and downloads nothing again.
        let again = run(
            &mailbox,
            &cred(),
            &mut RealDir::new(&dir),
            &FetchOptions::new(),
        )
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
        let report = run(&mailbox, &cred(), &mut RealDir::new(&dir), &options)
            .await
            .unwrap();
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
        let mut held = RealDir::new(&dir);
        held.journal_open().unwrap();
        let err = run(
            &mailbox,
            &cred(),
            &mut RealDir::new(&dir),
            &FetchOptions::new(),
        )
        .await
        .unwrap_err();
        assert!(err.is_io(), "{err:?}");
        assert_eq!(
            err.io_error().unwrap().kind(),
            std::io::ErrorKind::WouldBlock
        );
        drop(held);
        assert!(run(
            &mailbox,
            &cred(),
            &mut RealDir::new(&dir),
            &FetchOptions::new()
        )
        .await
        .is_ok());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
