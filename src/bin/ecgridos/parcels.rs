//! `ecgridos parcels`: the mailbox from the command line. List the inbox,
//! fetch every ready parcel into a directory (stored durably, then
//! confirmed), upload files, and look at, confirm or reset one parcel.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use clap::{Args, Subcommand};
use ecgridos::parcels::inbound::{
    fetch_dir, Confirm, FetchObserver, FetchOptions, ParcelOutcome, ParcelResult,
};
use ecgridos::parcels::{
    ParcelClient, ParcelSummary, UploadObserver, UploadOutcome, UploadProbe, UploadRoute,
    UploadSearch,
};
use ecgridos::wire::DateTime;
use ecgridos::{Error, KeyClient};
use serde_json::json;

use crate::cli::Global;
use crate::output::{
    confirm, exit_for, fail, print_or_fail, print_secret, say, usage, Authed, Exit,
};
use crate::signals::{Busy, Uploading};

/// Transfers at least this large get a progress bar on a terminal.
const BAR_FROM_BYTES: u64 = 4 * 1024 * 1024;

/// `parcels`.
#[derive(Debug, Subcommand)]
pub enum ParcelsCommand {
    /// List the parcels ready in the inbox.
    Inbox(InboxArgs),
    /// Store every ready parcel in DIR as <ParcelID>-<safe name> (durably:
    /// temporary file, fsync, rename, directory fsync, journal), then confirm
    /// it; list again until nothing new is ready. Safe to re-run after a
    /// crash: nothing is stored twice, what is stored is confirmed.
    Fetch(FetchArgs),
    /// Upload files; each one is a new parcel, routed by its EDI envelope
    /// (ISA receiver, UNB recipient) or by --to-ecgrid-id. Never re-sent.
    Upload(UploadArgs),
    /// Tell whether an upload of unknown outcome arrived: look in the outbox
    /// for a parcel of this name and size created since --since that is none
    /// of --known-before (the command an interrupted upload prints). Prints
    /// its ParcelID (exit 0); exit 3 when none is listed, 5 when several are.
    Outbox(OutboxArgs),
    /// Show one parcel.
    Info(ParcelIdArgs),
    /// Confirm a downloaded parcel: the service will not hand it out again.
    /// Only once its bytes are stored.
    Confirm(ParcelIdArgs),
    /// Put a parcel back in the inbox, ready to be fetched again.
    Reset(ParcelIdArgs),
}

/// `parcels inbox`.
#[derive(Debug, Args)]
pub struct InboxArgs {
    /// List this mailbox (default: the credential's).
    #[arg(long)]
    pub mailbox_id: Option<i32>,
}

/// `parcels fetch`.
#[derive(Debug, Args)]
pub struct FetchArgs {
    /// The directory to store the parcels in (it must exist).
    #[arg(long, value_name = "DIR")]
    pub to: PathBuf,
    /// Store the parcels but do not confirm them (they stay in the inbox;
    /// only the first page of the listing is reachable).
    #[arg(long)]
    pub no_confirm: bool,
    /// Poll again every SECONDS until SIGINT or SIGTERM; the parcel in hand
    /// is finished first.
    #[arg(long, value_name = "SECONDS", value_parser = parse_interval)]
    pub watch: Option<f64>,
    /// Fetch from this mailbox (default: the credential's).
    #[arg(long)]
    pub mailbox_id: Option<i32>,
}

/// `parcels upload`.
#[derive(Debug, Args)]
pub struct UploadArgs {
    /// The files to upload (each one a parcel named after the file).
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Route to this ECGrid ID instead of by the file's EDI envelope
    /// (ParcelUploadMft); needs --from-ecgrid-id.
    #[arg(long, requires = "from_ecgrid_id")]
    pub to_ecgrid_id: Option<i32>,
    /// The sender's ECGrid ID (one of the caller's mailbox), with --to-ecgrid-id.
    #[arg(long, env = "ECGRID_FROM_ECGRID_ID", requires = "to_ecgrid_id")]
    pub from_ecgrid_id: Option<i32>,
    /// Do not ask for confirmation.
    #[arg(long, short = 'y')]
    pub yes: bool,
}

/// `parcels outbox`.
#[derive(Debug, Args)]
pub struct OutboxArgs {
    /// The name the file was uploaded under.
    #[arg(long)]
    pub file_name: String,
    /// The file's size in bytes.
    #[arg(long)]
    pub bytes: u64,
    /// The earliest creation time to look at (UTC, e.g. 2026-12-07T23:00:00Z).
    #[arg(long, value_parser = parse_datetime)]
    pub since: DateTime,
    /// ParcelIDs listed before the upload was sent: not this upload.
    #[arg(long, value_delimiter = ',', value_name = "IDS")]
    pub known_before: Vec<i64>,
}

fn parse_datetime(s: &str) -> Result<DateTime, String> {
    s.parse()
        .map_err(|_| "must be a date and time such as 2026-12-07T23:00:00Z".to_string())
}

/// `parcels info|confirm|reset`.
#[derive(Debug, Args)]
pub struct ParcelIdArgs {
    /// The parcel.
    #[arg(long)]
    pub parcel_id: i64,
}

fn parse_interval(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if (0.1..=86_400.0).contains(&v) => Ok(v),
        _ => Err("must be a number of seconds from 0.1 to 86400".into()),
    }
}

/// Runs a `parcels` command.
pub async fn run(g: &Global, command: ParcelsCommand) -> Exit {
    match command {
        ParcelsCommand::Inbox(args) => inbox(g, args).await,
        ParcelsCommand::Fetch(args) => fetch(g, args).await,
        ParcelsCommand::Upload(args) => upload(g, args).await,
        ParcelsCommand::Outbox(args) => outbox(g, args).await,
        ParcelsCommand::Info(args) => info(g, args).await,
        ParcelsCommand::Confirm(args) => confirm_one(g, args, false).await,
        ParcelsCommand::Reset(args) => confirm_one(g, args, true).await,
    }
}

/// The credential of the command and a parcel client over its protocol.
async fn connect(g: &Global) -> Result<(Authed, ParcelClient), Exit> {
    let authed = Authed::new(g).await?;
    let client = match &authed.client {
        KeyClient::Soap(c) => ParcelClient::from(c.clone()),
        KeyClient::Rest(c) => ParcelClient::from(c.clone()),
    };
    Ok((authed, client))
}

/// A name from the service, safe to show on a terminal: control characters
/// and direction marks are escaped.
fn printable(name: &str) -> String {
    let odd = |c: char| {
        c.is_control()
            || matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
    };
    if name.chars().any(odd) {
        name.escape_debug().to_string()
    } else {
        name.to_string()
    }
}

fn summary_json(p: &ParcelSummary) -> serde_json::Value {
    json!({
        "parcel_id": p.parcel_id,
        "file_name": p.file_name,
        "bytes": p.bytes,
        "status": p.status.as_ref().map(|s| s.as_str().to_string()),
        "mailbox_id": p.mailbox_id,
        "ecgrid_id_from": p.ecgrid_id_from,
        "ecgrid_id_to": p.ecgrid_id_to,
        "date": p.date.as_ref().map(|d| d.to_string()),
    })
}

fn summary_text(p: &ParcelSummary) -> String {
    let status = p.status.as_ref().map(|s| s.as_str()).unwrap_or("-");
    let date = p
        .date
        .as_ref()
        .map(|d| d.to_string())
        .unwrap_or_else(|| "-".into());
    format!(
        "{:>12}  {:>12}  {:<18}  {:<27}  {}",
        p.parcel_id,
        p.bytes,
        status,
        date,
        printable(&p.file_name)
    )
}

async fn inbox(g: &Global, args: InboxArgs) -> Exit {
    let (authed, client) = match connect(g).await {
        Ok(c) => c,
        Err(exit) => return exit,
    };
    let listed = client.ready(&authed.credential, args.mailbox_id).await;
    authed.close().await;
    let parcels = match listed {
        Ok(p) => p,
        Err(e) => return fail(&e, None),
    };
    let mut lines = Vec::with_capacity(parcels.len() + 1);
    if g.json {
        lines.extend(parcels.iter().map(|p| summary_json(p).to_string()));
    } else {
        lines.push(format!(
            "{:>12}  {:>12}  {:<18}  {:<27}  FILE NAME",
            "PARCEL ID", "BYTES", "STATUS", "DATE"
        ));
        lines.extend(parcels.iter().map(summary_text));
    }
    if lines.is_empty() {
        return Exit::Ok;
    }
    print_or_fail(&lines.join("\n"))
}

async fn info(g: &Global, args: ParcelIdArgs) -> Exit {
    let (authed, client) = match connect(g).await {
        Ok(c) => c,
        Err(exit) => return exit,
    };
    let found = client.info(&authed.credential, args.parcel_id).await;
    authed.close().await;
    match found {
        Ok(p) if g.json => print_or_fail(&summary_json(&p).to_string()),
        Ok(p) => print_or_fail(&summary_text(&p)),
        Err(e) => fail(&e, None),
    }
}

async fn confirm_one(g: &Global, args: ParcelIdArgs, reset: bool) -> Exit {
    let (authed, client) = match connect(g).await {
        Ok(c) => c,
        Err(exit) => return exit,
    };
    let id = args.parcel_id;
    let done = if reset {
        client.reset(&authed.credential, id).await
    } else {
        client.confirm(&authed.credential, id).await
    };
    authed.close().await;
    let what = if reset { "reset" } else { "confirmed" };
    match done {
        Ok(answer) if g.json => {
            let mut line = serde_json::Map::new();
            line.insert("parcel_id".into(), json!(id));
            line.insert(what.into(), json!(answer));
            let exit = print_or_fail(&serde_json::Value::Object(line).to_string());
            if answer {
                exit
            } else {
                Exit::Refused
            }
        }
        Ok(true) => {
            if !g.quiet {
                say!("parcel {id} {what}");
            }
            Exit::Ok
        }
        Ok(false) => {
            say!("error: the service answered false: parcel {id} was not {what} (already {what}, or not in a state that allows it)");
            Exit::Refused
        }
        Err(e) => fail(&e, None),
    }
}

/// Progress bars and a line per parcel on stderr; marks each parcel as in
/// hand for the signal handler.
struct FetchDisplay {
    bars: bool,
    quiet: bool,
    json: bool,
    /// Standard output could not take a line.
    stdout_failed: AtomicBool,
    bar: Mutex<Option<indicatif::ProgressBar>>,
    busy: Mutex<Option<Busy>>,
    /// The parcel's temporary file, removed if a second signal ends the
    /// process mid-transfer.
    temp: Mutex<Option<PathBuf>>,
}

impl FetchDisplay {
    fn new(g: &Global) -> FetchDisplay {
        FetchDisplay {
            bars: std::io::stderr().is_terminal() && !g.quiet,
            quiet: g.quiet,
            json: g.json,
            stdout_failed: AtomicBool::new(false),
            bar: Mutex::new(None),
            busy: Mutex::new(None),
            temp: Mutex::new(None),
        }
    }
}

/// A bar for a transfer of `bytes`, or none (not a terminal, or small).
fn transfer_bar(show: bool, bytes: u64, message: String) -> Option<indicatif::ProgressBar> {
    if !show || bytes < BAR_FROM_BYTES {
        return None;
    }
    let bar = indicatif::ProgressBar::new(bytes);
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{msg} {wide_bar} {bytes}/{total_bytes} {bytes_per_sec} {eta}",
    ) {
        bar.set_style(style);
    }
    bar.set_message(message);
    Some(bar)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl FetchObserver for FetchDisplay {
    fn started(&self, parcel: &ParcelSummary) {
        *lock(&self.busy) = Some(Busy::start());
        let bytes = u64::try_from(parcel.bytes).unwrap_or(0);
        *lock(&self.bar) = transfer_bar(self.bars, bytes, parcel.parcel_id.to_string());
    }

    fn writing(&self, _: i64, temp: &Path) {
        crate::signals::register_temp(temp);
        *lock(&self.temp) = Some(temp.to_path_buf());
    }

    fn progress(&self, _: i64, bytes: u64) {
        if let Some(bar) = lock(&self.bar).as_ref() {
            bar.set_position(bytes);
        }
    }

    fn finished(&self, result: &ParcelResult) {
        if let Some(bar) = lock(&self.bar).take() {
            bar.finish_and_clear();
        }
        if let Some(temp) = lock(&self.temp).take() {
            crate::signals::forget_temp(&temp);
        }
        report_parcel(result, self.quiet);
        // Printed while the parcel still counts as in hand, so that a signal
        // cannot end the process between storing a file and naming it.
        if let Some(line) = stdout_line(result, self.json) {
            if print_or_fail(&line) != Exit::Ok {
                self.stdout_failed.store(true, Ordering::SeqCst);
            }
        }
        lock(&self.busy).take();
    }
}

fn confirm_text(confirm: &Confirm) -> &'static str {
    match confirm {
        Confirm::Confirmed => "confirmed",
        Confirm::Skipped => "not confirmed (--no-confirm)",
        Confirm::Refused => "NOT confirmed: the service answered false",
        Confirm::Failed(_) => "NOT confirmed",
        _ => "",
    }
}

/// One line on stderr for a parcel; errors with their causes.
fn report_parcel(result: &ParcelResult, quiet: bool) {
    let id = result.parcel_id;
    let path = result.path.display();
    match &result.outcome {
        ParcelOutcome::Stored { bytes, confirm } if !quiet || result.error().is_some() => {
            say!(
                "parcel {id}: stored {path} ({bytes} bytes), {}",
                confirm_text(confirm)
            );
        }
        ParcelOutcome::AlreadyStored { bytes, confirm } if !quiet || result.error().is_some() => {
            say!(
                "parcel {id}: already stored as {path} ({bytes} bytes) by an earlier run, {}",
                confirm_text(confirm)
            );
        }
        ParcelOutcome::Failed(_) => {
            say!(
                "error: parcel {id} ({}): not stored, not confirmed",
                printable(&result.file_name)
            );
        }
        _ => {}
    }
    if let Some(e) = result.error() {
        print_error_chain(e);
    }
}

fn print_error_chain(e: &Error) {
    say!("  {e}");
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        say!("  caused by: {cause}");
        source = cause.source();
    }
}

fn fetch_json(result: &ParcelResult) -> serde_json::Value {
    let (state, bytes, confirm) = match &result.outcome {
        ParcelOutcome::Stored { bytes, confirm } => ("stored", Some(*bytes), Some(confirm)),
        ParcelOutcome::AlreadyStored { bytes, confirm } => {
            ("already_stored", Some(*bytes), Some(confirm))
        }
        _ => ("failed", None, None),
    };
    json!({
        "parcel_id": result.parcel_id,
        "file_name": result.file_name,
        "path": result.path,
        "state": state,
        "bytes": bytes,
        "confirmed": matches!(confirm, Some(Confirm::Confirmed)),
        "error": result.error().map(|e| e.to_string()),
    })
}

/// The line on stdout for a parcel: the path of its stored file (a JSON
/// line for every parcel with --json).
fn stdout_line(result: &ParcelResult, json: bool) -> Option<String> {
    if json {
        Some(fetch_json(result).to_string())
    } else if matches!(result.outcome, ParcelOutcome::Failed(_)) {
        None
    } else {
        Some(result.path.display().to_string())
    }
}

async fn fetch(g: &Global, args: FetchArgs) -> Exit {
    if !std::fs::metadata(&args.to).is_ok_and(|m| m.is_dir()) {
        return usage(format!(
            "--to {}: not an existing directory (nothing was fetched)",
            args.to.display()
        ));
    }
    crate::signals::install();
    let (authed, client) = match connect(g).await {
        Ok(c) => c,
        Err(exit) => return exit,
    };
    let display = Arc::new(FetchDisplay::new(g));
    let options = FetchOptions::new()
        .mailbox_id(args.mailbox_id)
        .no_confirm(args.no_confirm)
        .stop(crate::signals::stop_flag())
        .observer(display.clone());
    let (mut failed, mut stored, mut confirmed) = (0usize, 0usize, 0usize);
    let mut exit = Exit::Ok;
    loop {
        let report = match fetch_dir(&client, &authed.credential, &args.to, options.clone()).await {
            Ok(r) => r,
            Err(e) => {
                let busy = e
                    .io_error()
                    .is_some_and(|io| io.kind() == std::io::ErrorKind::WouldBlock);
                if busy {
                    exit = usage(format!(
                        "{} is in use by another `ecgridos parcels fetch`; wait for it to end",
                        args.to.display()
                    ));
                } else {
                    exit = fail(&e, None);
                }
                // A journal of another endpoint will not change by waiting.
                let foreign = e.kind() == ecgridos::ErrorKind::InvalidInput;
                if args.watch.is_none() || busy || foreign {
                    break;
                }
                // Watching: a failed poll is reported and the next one tried.
                exit = Exit::Ok;
                if !pause(args.watch).await {
                    break;
                }
                continue;
            }
        };
        failed += report.failed();
        stored += report.stored() + report.already_stored();
        confirmed += report.confirmed();
        if report.removed_leftovers > 0 && !g.quiet {
            say!(
                "removed {} temporary file(s) of an interrupted run",
                report.removed_leftovers
            );
        }
        if let Some(e) = &report.listing_error {
            say!("error: listing the inbox again failed; parcels may be left for the next run");
            print_error_chain(e);
            failed += 1;
        }
        if report.stopped || crate::signals::stopping() || !pause(args.watch).await {
            break;
        }
    }
    authed.close().await;
    if display.stdout_failed.load(Ordering::SeqCst) && exit == Exit::Ok {
        exit = Exit::Failure;
    }
    if !g.quiet {
        say!("stored {stored}, confirmed {confirmed}, failed {failed}");
    }
    if crate::signals::stopping() {
        return Exit::Interrupted;
    }
    if exit != Exit::Ok {
        return exit;
    }
    if failed > 0 {
        say!("the failed parcels stay in the inbox; run the command again to retry them");
        return Exit::Partial;
    }
    Exit::Ok
}

/// Waits for the next poll of `--watch`; false when there is none (no
/// --watch, or a signal came).
async fn pause(watch: Option<f64>) -> bool {
    let Some(seconds) = watch else {
        return false;
    };
    let until = tokio::time::Instant::now() + Duration::from_secs_f64(seconds);
    while tokio::time::Instant::now() < until {
        if crate::signals::stopping() {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100).min(until - tokio::time::Instant::now()))
            .await;
    }
    !crate::signals::stopping()
}

/// A file to upload, checked before anything is sent.
struct Outgoing {
    path: PathBuf,
    name: String,
    bytes: u64,
}

fn check_file(path: &Path) -> Result<Outgoing, Exit> {
    let meta = std::fs::metadata(path)
        .map_err(|e| usage(format!("{}: {e} (nothing was sent)", path.display())))?;
    if !meta.is_file() {
        return Err(usage(format!(
            "{}: not a regular file (nothing was sent)",
            path.display()
        )));
    }
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
        return Err(usage(format!(
            "{}: the file name is not valid UTF-8 (nothing was sent)",
            path.display()
        )));
    };
    Ok(Outgoing {
        path: path.to_path_buf(),
        name: name.to_string(),
        bytes: meta.len(),
    })
}

async fn upload(g: &Global, args: UploadArgs) -> Exit {
    let mut files = Vec::with_capacity(args.files.len());
    for path in &args.files {
        match check_file(path) {
            Ok(f) => files.push(f),
            Err(exit) => return exit,
        }
    }
    let route = match (args.from_ecgrid_id, args.to_ecgrid_id) {
        (Some(from), Some(to)) => UploadRoute::Ids { from, to },
        _ => UploadRoute::FromHeaders,
    };
    let total: u64 = files.iter().map(|f| f.bytes).sum();
    let question = format!(
        "Upload {} file(s), {total} bytes? Each one becomes a parcel sent on to the receiver; an upload is never re-sent.",
        files.len()
    );
    if let Err(exit) = confirm(args.yes, &question) {
        return exit;
    }
    crate::signals::install();
    let (authed, client) = match connect(g).await {
        Ok(c) => c,
        Err(exit) => return exit,
    };
    let bars = std::io::stderr().is_terminal() && !g.quiet;
    let mut exit = Exit::Ok;
    for file in &files {
        if crate::signals::stopping() {
            exit = Exit::Interrupted;
            break;
        }
        let outcome = upload_one(g, &client, &authed, file, &route, bars).await;
        exit = worse(exit, outcome);
    }
    authed.close().await;
    // A signal during the last file: it finished, and the command was
    // still interrupted (as fetch says).
    if crate::signals::stopping() && exit != Exit::OutcomeUnknown {
        exit = Exit::Interrupted;
    }
    exit
}

/// The exit code that says more: an unknown outcome above all, then the
/// first failure.
fn worse(a: Exit, b: Exit) -> Exit {
    match (a, b) {
        (Exit::OutcomeUnknown, _) | (_, Exit::OutcomeUnknown) => Exit::OutcomeUnknown,
        (Exit::Ok, other) => other,
        (first, _) => first,
    }
}

/// Tells the signal handler and the progress bar how an upload goes.
struct UploadDisplay {
    bar: Option<indicatif::ProgressBar>,
    uploading: Uploading,
}

impl UploadObserver for UploadDisplay {
    fn sending(&self, probe: &UploadProbe) {
        self.uploading.sending(check_command(probe));
    }

    fn progress(&self, bytes: u64) {
        if let Some(bar) = &self.bar {
            bar.set_position(bytes);
        }
    }

    fn answered(&self, parcel_id: i64) {
        self.uploading.answered(parcel_id);
    }
}

/// The command that tells whether the upload `probe` describes arrived.
fn check_command(probe: &UploadProbe) -> String {
    let mut command = format!(
        "ecgridos parcels outbox --file-name {} --bytes {} --since {}",
        shell_word(&probe.file_name),
        probe.bytes,
        probe.not_before
    );
    if !probe.known_before.is_empty() {
        let ids: Vec<String> = probe.known_before.iter().map(i64::to_string).collect();
        command.push_str(&format!(" --known-before {}", ids.join(",")));
    }
    printable(&command)
}

/// `word` as one word for a POSIX shell.
fn shell_word(word: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "._-+@%,:=/".contains(c);
    if !word.is_empty() && word.chars().all(plain) {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', "'\\''"))
    }
}

/// Reports on stderr what the outbox says of an upload of unknown outcome;
/// `check` is the command that looks again.
fn report_search(search: &Result<UploadSearch, Error>, check: &str) -> Exit {
    match search {
        Ok(UploadSearch::Found(p)) => {
            say!(
                "  it arrived: parcel {} ({} bytes); do not upload it again",
                p.parcel_id,
                p.bytes
            );
            Exit::Ok
        }
        Ok(UploadSearch::NotFound) => {
            say!("  not found: it did not arrive or is not listed yet (the outbox may lag); look again a little later before uploading it again: {check}");
            Exit::Refused
        }
        Ok(UploadSearch::Ambiguous(found)) => {
            let ids: Vec<String> = found.iter().map(|p| p.parcel_id.to_string()).collect();
            say!(
                "  several new parcels match its name and size ({}); check them before uploading it again",
                ids.join(", ")
            );
            Exit::OutcomeUnknown
        }
        Err(e) => {
            say!(
                "  the outbox could not be searched; look again before uploading it again: {check}"
            );
            print_error_chain(e);
            Exit::OutcomeUnknown
        }
    }
}

async fn upload_one(
    g: &Global,
    client: &ParcelClient,
    authed: &Authed,
    file: &Outgoing,
    route: &UploadRoute,
    bars: bool,
) -> Exit {
    let _busy = Busy::start();
    let display = UploadDisplay {
        bar: transfer_bar(bars, file.bytes, file.name.clone()),
        uploading: Uploading::start(printable(&file.path.display().to_string())),
    };
    let sent = client
        .upload_once(&authed.credential, &file.path, &file.name, route, &display)
        .await;
    if let Some(bar) = &display.bar {
        bar.finish_and_clear();
    }
    match sent {
        Ok(UploadOutcome::Sent(parcel_id)) => {
            let line = if g.json {
                json!({ "file": file.path, "file_name": file.name, "bytes": file.bytes, "parcel_id": parcel_id })
                    .to_string()
            } else {
                parcel_id.to_string()
            };
            // The ParcelID exists nowhere else: never lost with stdout.
            print_secret(
                &line,
                &format!("the new ParcelID of {}", file.path.display()),
            )
        }
        Ok(UploadOutcome::Unknown {
            error,
            search,
            probe,
        }) => {
            let exit = fail(&error, None);
            say!(
                "  {} was NOT sent again; looked for it in the outbox listings:",
                file.path.display()
            );
            report_search(&search, &check_command(&probe));
            exit
        }
        Ok(_) => Exit::Failure,
        Err(e) => {
            say!("error: {} was not uploaded:", file.path.display());
            print_error_chain(&e);
            exit_for(&e)
        }
    }
}

async fn outbox(g: &Global, args: OutboxArgs) -> Exit {
    let now = SystemTime::now();
    let probe = UploadProbe {
        file_name: args.file_name,
        bytes: args.bytes,
        not_before: args.since,
        not_after: UploadProbe::around("", 0, now, UploadProbe::SLACK).not_after,
        known_before: args.known_before.into_iter().collect(),
    };
    let (authed, client) = match connect(g).await {
        Ok(c) => c,
        Err(exit) => return exit,
    };
    let search = client.find_upload(&authed.credential, &probe).await;
    authed.close().await;
    let exit = report_search(&search, &check_command(&probe));
    match search {
        Ok(UploadSearch::Found(p)) if g.json => print_or_fail(&summary_json(&p).to_string()),
        Ok(UploadSearch::Found(p)) => print_or_fail(&p.parcel_id.to_string()),
        _ => exit,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_with_control_characters_are_escaped_for_the_terminal() {
        assert_eq!(printable("po.edi"), "po.edi");
        assert_eq!(printable("Müller.edi"), "Müller.edi");
        assert_eq!(printable("a\u{1b}[2Jb"), "a\\u{1b}[2Jb");
        assert_eq!(printable("x\0y"), "x\\0y");
    }
}
