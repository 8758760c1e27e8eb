//! Batch rotation with a resumable JSON Lines journal.
//!
//! For each user the journal gets a `started` record (with a SHA-256 of the
//! key in force before the rotation) before the rotation is sent, and a final
//! `rotated`, `failed` or `unknown` record after. Each record is written and
//! synced before the next step, so a crash or Ctrl-C loses nothing. A re-run
//! skips users recorded as rotated, retries users recorded as failed (the
//! service refused them; nothing changed), and for users whose rotation was
//! interrupted or of unknown outcome reads the current key: if it differs
//! from the one before, the rotation happened and the current key is
//! recorded; if not, it is rotated now. No user is rotated twice.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use ecgridos::{ApiKey, Credential, KeyClient, UserId};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;

use crate::cli::{GenerateArgs, Global};
use crate::output::{confirm, create_private, usage, Authed, Exit};

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum Outcome {
    Started,
    Rotated,
    Failed,
    Unknown,
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
#[derive(Clone, Debug)]
enum Prior {
    Done,
    Failed,
    /// Started or unknown: it may have happened. The hash of the key before.
    Pending(Option<String>),
}

fn sha256_hex(key: &ApiKey) -> String {
    Sha256::digest(key.expose().as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn read_user_ids(path: &Path) -> Result<Vec<UserId>, Exit> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| usage(format!("cannot read {}: {e}", path.display())))?;
    let mut seen = BTreeSet::new();
    let mut ids = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let id = line
            .parse::<UserId>()
            .map_err(|e| usage(format!("{}:{}: {e}", path.display(), n + 1)))?;
        // A user listed twice is still rotated once.
        if seen.insert(id) {
            ids.push(id);
        }
    }
    Ok(ids)
}

fn read_journal(path: &Path) -> Result<BTreeMap<i32, Prior>, Exit> {
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(e) => return Err(usage(format!("cannot read {}: {e}", path.display()))),
    };
    let mut state = BTreeMap::new();
    for (n, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|e| usage(format!("cannot read {}: {e}", path.display())))?;
        if line.trim().is_empty() {
            continue;
        }
        let Ok(record) = serde_json::from_str::<Record>(&line) else {
            // Only a crash mid-write leaves a partial line, and only as the last.
            eprintln!(
                "warning: {}:{}: unreadable record ignored",
                path.display(),
                n + 1
            );
            continue;
        };
        let prior = match record.outcome {
            Outcome::Rotated => Prior::Done,
            Outcome::Failed => Prior::Failed,
            Outcome::Started | Outcome::Unknown => Prior::Pending(record.old_key_sha256),
        };
        state.insert(record.user_id, prior);
    }
    Ok(state)
}

/// Appends records and syncs each one to disk before returning.
struct Journal {
    file: Mutex<std::fs::File>,
    path: PathBuf,
    protocol: String,
}

impl Journal {
    fn append(&self, mut record: Record) -> std::io::Result<()> {
        record.protocol = self.protocol.clone();
        let mut line = serde_json::to_string(&record).map_err(std::io::Error::other)?;
        line.push('\n');
        let mut file = self.file.lock().unwrap_or_else(|p| p.into_inner());
        file.write_all(line.as_bytes())?;
        file.sync_data()
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
            eprintln!("error: cannot write to {}: {e}", journal.path.display());
            if let Some(key) = key {
                eprintln!("the new key for user {user} (store it now): {key}");
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
    // The key in force now: to compare with after an interruption.
    let current = match client.get_api_key(credential, user).await {
        Ok(k) => k,
        Err(e) => {
            let outcome = if matches!(prior, Some(Prior::Pending(_))) {
                Outcome::Unknown
            } else {
                Outcome::Failed
            };
            let old = match &prior {
                Some(Prior::Pending(h)) => h.clone(),
                _ => None,
            };
            write_or_show(journal, failure(user, outcome.clone(), &e, old));
            return outcome;
        }
    };
    let current_hash = sha256_hex(&current);
    if let Some(Prior::Pending(Some(before))) = &prior {
        if *before != current_hash {
            // The interrupted rotation did happen: the key in force is its result.
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
    let started = Record {
        old_key_sha256: Some(current_hash.clone()),
        ..record(user, Outcome::Started)
    };
    if !write_or_show(journal, started) {
        // Without the record a crash could not be resumed safely: do not rotate.
        return Outcome::Failed;
    }
    match client.generate_api_key(credential, user).await {
        Ok(key) => {
            let rec = Record {
                api_key: Some(key.expose().to_string()),
                ..record(user, Outcome::Rotated)
            };
            if write_or_show(journal, rec) {
                Outcome::Rotated
            } else {
                Outcome::Unknown
            }
        }
        Err(e) if e.is_outcome_unknown() => {
            write_or_show(
                journal,
                failure(user, Outcome::Unknown, &e, Some(current_hash)),
            );
            Outcome::Unknown
        }
        Err(e) => {
            write_or_show(journal, failure(user, Outcome::Failed, &e, None));
            Outcome::Failed
        }
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
    let ids = match read_user_ids(&ids_file) {
        Ok(ids) => ids,
        Err(exit) => return exit,
    };
    let prior = match read_journal(&out) {
        Ok(p) => p,
        Err(exit) => return exit,
    };
    let todo: Vec<UserId> = ids
        .iter()
        .copied()
        .filter(|id| !matches!(prior.get(&id.get()), Some(Prior::Done)))
        .collect();
    let skipped = ids.len() - todo.len();
    if todo.is_empty() {
        eprintln!(
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
    let file = match create_private(&out, false) {
        Ok(f) => f,
        Err(e) => {
            eprintln!(
                "error: cannot open {}: {e} (nothing was sent)",
                out.display()
            );
            return Exit::Failure;
        }
    };
    let authed = match Authed::new(g).await {
        Ok(a) => a,
        Err(exit) => return exit,
    };
    let journal = Arc::new(Journal {
        file: Mutex::new(file),
        path: out.clone(),
        protocol: authed.client.protocol().to_string(),
    });
    let progress = if std::io::stderr().is_terminal() && !g.quiet {
        indicatif::ProgressBar::new(todo.len() as u64)
    } else {
        indicatif::ProgressBar::hidden()
    };
    let limit = Arc::new(Semaphore::new(usize::from(args.concurrency)));
    let client = Arc::new(authed.client.clone());
    let credential = Arc::new(authed.credential.clone());
    let mut tasks = tokio::task::JoinSet::new();
    for user in todo {
        let (limit, client, credential, journal) = (
            limit.clone(),
            client.clone(),
            credential.clone(),
            journal.clone(),
        );
        let prior = prior.get(&user.get()).cloned();
        tasks.spawn(async move {
            let _permit = limit.acquire_owned().await;
            rotate_one(&client, &credential, &journal, user, prior).await
        });
    }
    let (mut rotated, mut failed, mut unknown) = (0usize, 0usize, 0usize);
    while let Some(done) = tasks.join_next().await {
        match done {
            Ok(Outcome::Rotated) => rotated += 1,
            Ok(Outcome::Unknown) => unknown += 1,
            _ => failed += 1,
        }
        progress.inc(1);
    }
    progress.finish_and_clear();
    authed.close().await;
    if g.json {
        println!(
            "{}",
            serde_json::json!({ "rotated": rotated, "failed": failed, "unknown": unknown, "skipped": skipped, "output_file": out })
        );
    }
    if !g.quiet {
        eprintln!(
            "rotated {rotated}, failed {failed}, outcome unknown {unknown}, already done {skipped}; results in {}",
            out.display()
        );
        if unknown > 0 {
            eprintln!("re-run the same command to settle the unknown ones: it reads their keys and never rotates twice");
        }
    }
    if failed + unknown > 0 {
        Exit::Partial
    } else {
        Exit::Ok
    }
}
