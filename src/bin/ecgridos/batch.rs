//! Batch rotation with a resumable JSON Lines journal.
//!
//! The journal's first line is a header naming the endpoint (without the
//! URL's user name and password) and protocol it belongs to; a run against
//! another refuses it. For each user the journal
//! then gets a `started` record (with a SHA-256 of the key in force before the
//! rotation) before the rotation is sent, and a final `rotated`, `failed` or
//! `unknown` record after. Each record is written and synced before the next
//! step, so a crash or Ctrl-C loses nothing. A re-run skips users recorded as
//! rotated; for users recorded as failed, interrupted or of unknown outcome it
//! reads the current key: if it differs from the one before, the rotation
//! happened and the current key is recorded; if not, it is rotated now. No
//! user is rotated twice. A user named on a journal line that cannot be read
//! is not rotated at all. One run at a time holds the journal (flock).

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, IsTerminal, Read};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use ecgridos::{ApiKey, Credential, KeyClient, UserId};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::cli::{GenerateArgs, Global, ProtocolArg};
use crate::output::{confirm, print_or_fail, say, usage, Authed, Exit};
use crate::signals::InFlight;
use ecgridos::durable::JournalFile;

/// The largest user-ID file read.
const MAX_IDS_FILE: u64 = 64 * 1024 * 1024;
/// The longest line of a user-ID file.
const MAX_IDS_LINE: usize = 1024;
/// The header's `journal` value.
const JOURNAL_KIND: &str = "ecgridos-batch-rotation";

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum Outcome {
    Started,
    Rotated,
    Failed,
    Unknown,
}

/// The journal's first line: which service its records are about.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
struct Header {
    journal: String,
    version: u32,
    protocol: String,
    endpoint: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Record {
    user_id: i32,
    outcome: Outcome,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    api_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    old_key_sha256: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    error_kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    /// True when a rotation interrupted earlier was found to have happened.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    recovered: bool,
    protocol: String,
}

/// The last thing the journal says about a user.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Prior {
    Done,
    /// Recorded as failed, with the hash of the key before when known: if the
    /// key changed since, the service did act.
    Failed(Option<String>),
    /// Started or unknown: it may have happened. The hash of the key before.
    Pending(Option<String>),
    /// Named on this (1-based) line, which cannot be read: never rotated.
    Unreadable(usize),
}

impl Prior {
    fn old_hash(&self) -> Option<&String> {
        match self {
            Prior::Failed(h) | Prior::Pending(h) => h.as_ref(),
            _ => None,
        }
    }
}

fn sha256_hex(key: &ApiKey) -> String {
    Sha256::digest(key.expose().as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Reads the user IDs, bounded in size and line length; a user listed twice
/// is kept once. An empty list is refused.
fn read_user_ids(path: &Path) -> Result<Vec<UserId>, Exit> {
    let refuse = |why: String| usage(format!("{}: {why} (nothing was sent)", path.display()));
    let file = std::fs::File::open(path).map_err(|e| refuse(format!("cannot read it: {e}")))?;
    if file.metadata().is_ok_and(|m| m.len() > MAX_IDS_FILE) {
        return Err(refuse(format!(
            "larger than {} MiB",
            MAX_IDS_FILE / 1024 / 1024
        )));
    }
    // A device or pipe has no length: the bound applies while reading.
    let mut reader = std::io::BufReader::new(file.take(MAX_IDS_FILE + 1));
    let (mut seen, mut ids, mut total) = (BTreeSet::new(), Vec::new(), 0u64);
    let mut line = Vec::new();
    for n in 1.. {
        line.clear();
        let read = (&mut reader)
            .take(MAX_IDS_LINE as u64 + 1)
            .read_until(b'\n', &mut line)
            .map_err(|e| refuse(format!("cannot read it: {e}")))?;
        if read == 0 {
            break;
        }
        total += read as u64;
        if total > MAX_IDS_FILE {
            return Err(refuse(format!(
                "larger than {} MiB",
                MAX_IDS_FILE / 1024 / 1024
            )));
        }
        if line.len() > MAX_IDS_LINE {
            return Err(refuse(format!(
                "line {n} is longer than {MAX_IDS_LINE} bytes"
            )));
        }
        let text = String::from_utf8_lossy(&line);
        let text = text.split('#').next().unwrap_or("").trim();
        if text.is_empty() {
            continue;
        }
        let id = text
            .parse::<UserId>()
            .map_err(|e| usage(format!("{}:{n}: {e}", path.display())))?;
        if seen.insert(id) {
            ids.push(id);
        }
    }
    if ids.is_empty() {
        return Err(refuse("lists no user ID".into()));
    }
    Ok(ids)
}

/// The user IDs a line that is not a valid record mentions (`"user_id":N`).
fn users_named(line: &str) -> Vec<i32> {
    line.match_indices("\"user_id\":")
        .filter_map(|(i, m)| {
            let rest = line[i + m.len()..].trim_start();
            let end = rest
                .find(|c: char| !(c.is_ascii_digit() || c == '-'))
                .unwrap_or(rest.len());
            rest[..end].parse().ok()
        })
        .collect()
}

/// What an existing journal holds.
#[derive(Debug, Default)]
struct JournalState {
    prior: BTreeMap<i32, Prior>,
    header: bool,
}

fn parse_journal(text: &str, path: &Path, expected: &Header) -> Result<JournalState, Exit> {
    let mut state = JournalState::default();
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        if line.trim().is_empty() {
            continue;
        }
        if !state.header {
            let found = serde_json::from_str::<Header>(line).map_err(|_| {
                usage(format!(
                    "{}:{n}: not an ecgridos journal header (endpoint and protocol); use another --output-file (nothing was sent)",
                    path.display()
                ))
            })?;
            if found.journal != JOURNAL_KIND
                || found.protocol != expected.protocol
                || found.endpoint != expected.endpoint
            {
                return Err(usage(format!(
                    "{} is the journal of a run against {} over {}; this run is against {} over {}: its records do not apply (nothing was sent)",
                    path.display(),
                    found.endpoint,
                    found.protocol,
                    expected.endpoint,
                    expected.protocol
                )));
            }
            state.header = true;
            continue;
        }
        let Ok(record) = serde_json::from_str::<Record>(line) else {
            let users = users_named(line);
            if users.is_empty() {
                return Err(usage(format!(
                    "{}:{n}: this line cannot be read and names no user: repair or remove it (nothing was sent)",
                    path.display()
                )));
            }
            for user in users {
                state.prior.insert(user, Prior::Unreadable(n));
            }
            continue;
        };
        let earlier = state.prior.get(&record.user_id).and_then(Prior::old_hash);
        let hash = record.old_key_sha256.clone().or_else(|| earlier.cloned());
        let prior = match record.outcome {
            Outcome::Rotated => Prior::Done,
            Outcome::Failed => Prior::Failed(hash),
            Outcome::Started | Outcome::Unknown => Prior::Pending(hash),
        };
        state.prior.insert(record.user_id, prior);
    }
    Ok(state)
}

/// Appends records and syncs each one to disk before returning.
struct Journal {
    file: Mutex<JournalFile>,
    path: PathBuf,
    protocol: String,
}

impl Journal {
    fn file(&self) -> std::sync::MutexGuard<'_, JournalFile> {
        self.file.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn append(&self, mut record: Record) -> std::io::Result<()> {
        record.protocol = self.protocol.clone();
        self.file().append(&record)
    }
}

fn record(user: UserId, outcome: Outcome) -> Record {
    Record {
        user_id: user.get(),
        outcome,
        api_key: None,
        old_key_sha256: None,
        error_kind: None,
        error: None,
        recovered: false,
        protocol: String::new(),
    }
}

fn failure(user: UserId, outcome: Outcome, err: &ecgridos::Error, old: Option<String>) -> Record {
    Record {
        error_kind: Some(err.kind().to_string()),
        error: Some(err.to_string()),
        old_key_sha256: old,
        ..record(user, outcome)
    }
}

/// Writes a record; when it is the only copy of a new key and cannot be
/// written, shows the key on stderr rather than lose it.
fn write_or_show(journal: &Journal, rec: Record) -> bool {
    let key = rec.api_key.clone();
    let user = rec.user_id;
    match journal.append(rec) {
        Ok(()) => true,
        Err(e) => {
            say!("error: cannot write to {}: {e}", journal.path.display());
            if let Some(key) = key {
                say!("the new key for user {user} (store it now): {key}");
            }
            false
        }
    }
}

async fn rotate_one(
    client: &KeyClient,
    credential: &Credential,
    journal: &Journal,
    user: UserId,
    prior: Option<Prior>,
) -> Outcome {
    let old = prior.as_ref().and_then(Prior::old_hash).cloned();
    // The key in force now: to compare with after an interruption.
    let current = match client.get_api_key(credential, user).await {
        Ok(k) => k,
        Err(e) => {
            let outcome = if matches!(prior, Some(Prior::Pending(_))) {
                Outcome::Unknown
            } else {
                Outcome::Failed
            };
            write_or_show(journal, failure(user, outcome.clone(), &e, old));
            return outcome;
        }
    };
    let current_hash = sha256_hex(&current);
    if let Some(before) = &old {
        // Recorded as interrupted, unknown or failed, and the key changed
        // since: the service did act, and the key in force is its result.
        if *before != current_hash {
            let rec = Record {
                api_key: Some(current.expose().to_string()),
                recovered: true,
                ..record(user, Outcome::Rotated)
            };
            return if write_or_show(journal, rec) {
                Outcome::Rotated
            } else {
                Outcome::Unknown
            };
        }
    }
    if let Some(Prior::Pending(None)) = &prior {
        // No hash to compare with: never guess, never rotate twice.
        let rec = Record {
            error_kind: Some("OutcomeUnknown".into()),
            error: Some(
                "earlier rotation interrupted without a record of the key before it; check by hand"
                    .into(),
            ),
            ..record(user, Outcome::Unknown)
        };
        write_or_show(journal, rec);
        return Outcome::Unknown;
    }
    if crate::signals::stopping() {
        return Outcome::Unknown;
    }
    let started = Record {
        old_key_sha256: Some(current_hash.clone()),
        ..record(user, Outcome::Started)
    };
    if !write_or_show(journal, started) {
        // Without the record a crash could not be resumed safely: do not rotate.
        return Outcome::Failed;
    }
    let in_flight = InFlight::start(user);
    match client.generate_api_key(credential, user).await {
        Ok(key) => {
            in_flight.received(&key);
            let rec = Record {
                api_key: Some(key.expose().to_string()),
                ..record(user, Outcome::Rotated)
            };
            // Written, or else shown on stderr: stored either way.
            let written = write_or_show(journal, rec);
            in_flight.stored();
            if written {
                Outcome::Rotated
            } else {
                Outcome::Unknown
            }
        }
        Err(e) => {
            // A clear refusal is `failed`, anything else `unknown`; both keep
            // the hash before, so that a re-run checks before rotating again.
            let outcome = if e.is_outcome_unknown() {
                Outcome::Unknown
            } else {
                Outcome::Failed
            };
            write_or_show(
                journal,
                failure(user, outcome.clone(), &e, Some(current_hash)),
            );
            drop(in_flight);
            outcome
        }
    }
}

/// Opens (or creates) the journal and takes an exclusive lock on it; refuses
/// when another run holds it. An existing journal readable by others is made
/// private first.
fn open_journal(path: &Path) -> Result<JournalFile, Exit> {
    let journal = JournalFile::open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::WouldBlock {
            usage(format!(
                "{} is in use by another ecgridos run; wait for it to end (nothing was sent)",
                path.display()
            ))
        } else {
            say!(
                "error: cannot open {}: {e} (nothing was sent)",
                path.display()
            );
            Exit::Failure
        }
    })?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let file = journal.file();
        let mode = file.metadata().map(|m| m.permissions().mode()).unwrap_or(0);
        if mode & 0o077 != 0 {
            if let Err(e) = file.set_permissions(std::fs::Permissions::from_mode(0o600)) {
                say!(
                    "error: {} is readable by others (mode {:o}) and cannot be made private: {e} (nothing was sent)",
                    path.display(),
                    mode & 0o777
                );
                return Err(Exit::Failure);
            }
            say!(
                "warning: {} was readable by others (mode {:o}); it holds keys, so its mode is now 600",
                path.display(),
                mode & 0o777
            );
        }
    }
    Ok(journal)
}

/// True when both paths name the same file (device and inode), whatever
/// the paths say.
fn same_file(a: &Path, b: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        match (std::fs::metadata(a), std::fs::metadata(b)) {
            (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino(),
            _ => false,
        }
    }
    #[cfg(not(unix))]
    {
        a == b
    }
}

/// The header this run's journal must carry.
fn expected_header(g: &Global) -> Header {
    let (protocol, endpoint) = match g.protocol {
        ProtocolArg::Soap => ("soap", &g.endpoint),
        ProtocolArg::Rest => ("rest", &g.rest_url),
    };
    Header {
        journal: JOURNAL_KIND.into(),
        version: 1,
        protocol: protocol.into(),
        // Without the URL's user name and password: the journal is a file
        // that outlives the run.
        endpoint: ecgridos::secret::redact_url(
            &url::Url::parse(endpoint)
                .map(|u| u.to_string())
                .unwrap_or_else(|_| endpoint.clone()),
        ),
    }
}

pub async fn rotate_many(g: &Global, args: GenerateArgs, ids_file: PathBuf) -> Exit {
    let Some(out) = args.output_file.clone() else {
        return usage("--user-ids-from needs --output-file");
    };
    if args.force || args.print {
        return usage(
            "--force and --print do not apply to a batch: its output file is a resumable journal",
        );
    }
    if same_file(&ids_file, &out) {
        return usage(format!(
            "--output-file {} is the same file as --user-ids-from: the journal would overwrite the list (nothing was sent)",
            out.display()
        ));
    }
    let ids = match read_user_ids(&ids_file) {
        Ok(ids) => ids,
        Err(exit) => return exit,
    };
    let journal = match open_journal(&out) {
        Ok(j) => j,
        Err(exit) => return exit,
    };
    let created = journal.created();
    let exit = run_batch(g, &args, &out, ids, journal).await;
    if created && std::fs::metadata(&out).is_ok_and(|m| m.len() == 0) {
        // This run created the journal and sent nothing: leave no trace.
        let _ = std::fs::remove_file(&out);
    }
    exit
}

async fn run_batch(
    g: &Global,
    args: &GenerateArgs,
    out: &Path,
    ids: Vec<UserId>,
    mut file: JournalFile,
) -> Exit {
    let header = expected_header(g);
    let text = match file.read_all() {
        Ok(text) => text,
        Err(e) => return usage(format!("cannot read {}: {e}", out.display())),
    };
    let state = match parse_journal(&text, out, &header) {
        Ok(s) => s,
        Err(exit) => return exit,
    };
    drop(text);
    let mut blocked = 0usize;
    let mut todo = Vec::new();
    for id in &ids {
        match state.prior.get(&id.get()) {
            Some(Prior::Done) => {}
            Some(Prior::Unreadable(line)) => {
                blocked += 1;
                say!(
                    "error: user {id} is not rotated: {}:{line} names it but cannot be read; check the user's key by hand, then repair or remove that line",
                    out.display()
                );
            }
            _ => todo.push(*id),
        }
    }
    let skipped = ids.len() - todo.len() - blocked;
    if todo.is_empty() {
        if blocked > 0 {
            return Exit::Partial;
        }
        say!(
            "all {} users are already rotated according to {}",
            ids.len(),
            out.display()
        );
        return Exit::Ok;
    }
    let question = format!(
        "Rotate the API keys of {} users ({} already done)? Their current keys stop working at once.",
        todo.len(),
        skipped
    );
    if let Err(exit) = confirm(args.yes, &question) {
        return exit;
    }
    let authed = match Authed::new(g).await {
        Ok(a) => a,
        Err(exit) => return exit,
    };
    // The caller's own key goes last, alone: once it is rotated the API key
    // in use stops working, and every rotation after it (or still in flight)
    // would fail for want of it.
    let own = match authed.client.check_credential(&authed.credential).await {
        Ok(me) => todo
            .iter()
            .position(|u| u.get() == me.user_id)
            .map(|i| todo.remove(i)),
        Err(e) => {
            let exit = crate::output::fail(&e, None);
            say!("nothing was rotated");
            authed.close().await;
            return exit;
        }
    };
    let journal = Arc::new(Journal {
        file: Mutex::new(file),
        path: out.to_path_buf(),
        protocol: authed.client.protocol().to_string(),
    });
    // A new journal starts with its header. (A torn last line, from a crash
    // mid-write, is closed by the first append.)
    if !state.header {
        let written = journal.file().append(&header);
        if let Err(e) = written {
            say!(
                "error: cannot write to {}: {e} (nothing was sent)",
                out.display()
            );
            authed.close().await;
            return Exit::Failure;
        }
    }
    let progress = if std::io::stderr().is_terminal() && !g.quiet {
        indicatif::ProgressBar::new((todo.len() + usize::from(own.is_some())) as u64)
    } else {
        indicatif::ProgressBar::hidden()
    };
    let client = Arc::new(authed.client.clone());
    let credential = Arc::new(authed.credential.clone());
    let mut tasks = tokio::task::JoinSet::new();
    let mut queue = todo.into_iter();
    let mut own = own;
    let (mut rotated, mut failed, mut unknown) = (0usize, 0usize, blocked);
    loop {
        // At most --concurrency tasks exist at once; none starts after a signal.
        while tasks.len() < usize::from(args.concurrency) && !crate::signals::stopping() {
            let next = queue.next().or_else(|| {
                // Only once every other rotation has finished.
                if tasks.is_empty() {
                    own.take()
                } else {
                    None
                }
            });
            let Some(user) = next else {
                break;
            };
            let (client, credential, journal) =
                (client.clone(), credential.clone(), journal.clone());
            let prior = state.prior.get(&user.get()).cloned();
            tasks.spawn(
                async move { rotate_one(&client, &credential, &journal, user, prior).await },
            );
        }
        let Some(done) = tasks.join_next().await else {
            break;
        };
        match done {
            Ok(Outcome::Rotated) => rotated += 1,
            Ok(Outcome::Unknown) => unknown += 1,
            _ => failed += 1,
        }
        progress.inc(1);
    }
    progress.finish_and_clear();
    authed.close().await;
    let mut exit = if failed + unknown > 0 {
        Exit::Partial
    } else {
        Exit::Ok
    };
    if g.json {
        let summary = serde_json::json!({ "rotated": rotated, "failed": failed, "unknown": unknown, "skipped": skipped, "output_file": out });
        if print_or_fail(&summary.to_string()) != Exit::Ok && exit == Exit::Ok {
            exit = Exit::Failure;
        }
    }
    if !g.quiet {
        say!(
            "rotated {rotated}, failed {failed}, outcome unknown {unknown}, already done {skipped}; results in {}",
            out.display()
        );
        if unknown > 0 {
            say!("re-run the same command to settle the unknown ones: it reads their keys and never rotates twice");
        }
    }
    exit
}
