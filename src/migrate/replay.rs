//! Replaying a recording of [`record`](super::record): each recorded call is
//! sent again, over REST (through the mapping and
//! [`RestClient::call_json`]) or over SOAP (through
//! [`Client::call_json`]), with the replayer's own credential, and its
//! answer is compared with the recorded one by the difference engine
//! ([`diff::compare`]).
//!
//! What is sent:
//! - reads (the contract's `effect`); a write (`write` or
//!   `write-idempotent`) is skipped and listed unless
//!   [`ReplayOptions::allow_writes`], which is refused unless the endpoint
//!   is loopback (a fake); each write line is then sent at most once, and
//!   never retried;
//! - not `Login` and `Logout`: the replay has its own credential and
//!   session;
//! - not a call whose recorded parameters it cannot rebuild: a credential
//!   other than `SessionID` (recorded as a fingerprint), or parcel content
//!   (recorded as size and SHA-256);
//! - not an exchange that did not complete, or whose answer was not read;
//! - not a call the service refused for its credential (an
//!   `Authentication` fault): that answer is about the recorded
//!   credential, not the call.
//!
//! How answers compare: as [`diff::compare`] does (names through the
//! mapping for REST, numbers by value, dateTimes by instant), with two
//! rules for what depends on the credential or the time:
//! - **credentials** (every field the contract or the mapping marks secret,
//!   a result that is a credential, and any value recorded as a
//!   fingerprint) compare by presence only: they are the recording's and
//!   the replayer's own, and differ by design;
//! - **volatile fields** (the mapping's `volatile` list: `SessionID`,
//!   `SessionEventID`, `LastLogin`, `Created`, `Modified`, the parcel and
//!   status dates, `expiresAt`) compare by presence only.
//!
//! Parcel content in an answer is compared as size and SHA-256, the form
//! it was recorded in.

use std::collections::{BTreeSet, HashSet};

use serde::Serialize;
use serde_json::Value;

use super::diff::{self, Answer, StepDiff};
use super::mapping::{camel_case, Mapping};
use super::scan::{content_digest, CONTENT_NAMES, SECRET_NAMES};
use crate::api::{request::find, Effect, OperationEntry, Params};
use crate::error::{Error, ErrorKind};
use crate::rest::{RestAuth, RestClient};
use crate::rotation::Credential;
use crate::soap::Client;

/// Where a replay sends its calls.
#[derive(Clone, Copy, Debug)]
pub enum Target<'a> {
    /// Over SOAP.
    Soap(&'a Client),
    /// Over REST v2.
    Rest(&'a RestClient),
}

impl Target<'_> {
    /// `soap` or `rest`.
    pub fn name(&self) -> &'static str {
        match self {
            Target::Soap(_) => "soap",
            Target::Rest(_) => "rest",
        }
    }

    fn is_loopback(&self) -> bool {
        let url = match self {
            Target::Soap(c) => Some(c.endpoint().clone()),
            Target::Rest(c) => url::Url::parse(c.base_url()).ok(),
        };
        url.as_ref()
            .and_then(crate::http::is_loopback)
            .unwrap_or(false)
    }
}

/// How a replay runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReplayOptions {
    /// Send writes too (only to a loopback endpoint; each line at most once).
    pub allow_writes: bool,
    /// Count an operation with no REST twin as a failure.
    pub strict: bool,
}

impl ReplayOptions {
    /// Reads only, operations with no REST twin reported but not failed.
    pub fn new() -> Self {
        ReplayOptions::default()
    }

    /// See [`ReplayOptions::allow_writes`].
    pub fn allow_writes(mut self, allow: bool) -> Self {
        self.allow_writes = allow;
        self
    }

    /// See [`ReplayOptions::strict`].
    pub fn strict(mut self, strict: bool) -> Self {
        self.strict = strict;
        self
    }
}

/// What became of one recorded line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Status {
    /// Replayed; the answer is the recorded one.
    Same,
    /// Replayed; the answer differs.
    Differs,
    /// A write, not sent (no `allow_writes`).
    SkippedWrite,
    /// The operation has no REST twin in the mapping.
    NoRestTwin,
    /// Not replayed, for the reason given.
    Skipped,
    /// The line is not a record.
    Unreadable,
}

impl Status {
    /// The name used in reports.
    pub fn as_str(&self) -> &'static str {
        match self {
            Status::Same => "same",
            Status::Differs => "differs",
            Status::SkippedWrite => "skipped_write",
            Status::NoRestTwin => "no_rest_twin",
            Status::Skipped => "skipped",
            Status::Unreadable => "unreadable",
        }
    }
}

/// One recorded line and what its replay showed.
#[derive(Clone, Debug, Serialize)]
#[non_exhaustive]
pub struct ReplayStep {
    /// The line of the recording (from 1).
    pub line: usize,
    /// The recorded operation, when there is one.
    pub operation: Option<String>,
    /// What became of it.
    pub status: Status,
    /// Why it was skipped, or what was wrong with the line.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The comparison, when it was replayed (recorded answer on the SOAP
    /// side, the replay's on the other).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diff: Option<StepDiff>,
}

/// A whole replay.
#[derive(Clone, Debug, Serialize)]
#[non_exhaustive]
pub struct ReplayReport {
    /// `soap` or `rest`.
    pub over: &'static str,
    /// Whether operations with no REST twin count as failures.
    pub strict: bool,
    /// One step per line of the recording.
    pub steps: Vec<ReplayStep>,
}

impl ReplayReport {
    /// How many steps have `status`.
    pub fn count(&self, status: Status) -> usize {
        self.steps.iter().filter(|s| s.status == status).count()
    }

    /// True when a replayed answer differs, a line is unreadable, or (when
    /// strict) an operation has no REST twin.
    pub fn failed(&self) -> bool {
        self.steps.iter().any(|s| match s.status {
            Status::Differs | Status::Unreadable => true,
            Status::NoRestTwin => self.strict,
            _ => false,
        })
    }
}

impl ReplayReport {
    /// The report as JUnit XML: one `<testsuite>`, one `<testcase>` per
    /// recorded call; a difference (or, when strict, a missing REST twin)
    /// is a `<failure>`, an unreadable line an `<error>`, a call not sent
    /// `<skipped>` with the reason.
    pub fn junit(&self) -> String {
        use super::junit::escape;
        let suite = format!("replay over {}", self.over);
        let failures = self
            .steps
            .iter()
            .filter(|s| {
                s.status == Status::Differs || (self.strict && s.status == Status::NoRestTwin)
            })
            .count();
        let mut out = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"ecgridos replay\">\n  \
             <testsuite name=\"{}\" tests=\"{}\" failures=\"{failures}\" errors=\"{}\" skipped=\"{}\">\n",
            escape(&suite),
            self.steps.len(),
            self.count(Status::Unreadable),
            self.steps
                .iter()
                .filter(|s| matches!(s.status, Status::Skipped | Status::SkippedWrite)
                    || (!self.strict && s.status == Status::NoRestTwin))
                .count(),
        );
        for step in &self.steps {
            let name = format!(
                "line {} {}",
                step.line,
                step.operation.as_deref().unwrap_or("-")
            );
            out.push_str(&format!(
                "    <testcase name=\"{}\" classname=\"{}\"",
                escape(&name),
                escape(&suite)
            ));
            let reason = escape(step.reason.as_deref().unwrap_or_default());
            let body = match step.status {
                Status::Same => None,
                Status::Differs => {
                    let lines = step
                        .diff
                        .as_ref()
                        .map(StepDiff::describe)
                        .unwrap_or_default();
                    Some(format!(
                        "<failure message=\"the answer differs from the recording\" type=\"difference\">{}</failure>",
                        escape(&lines.join("\n"))
                    ))
                }
                Status::NoRestTwin if self.strict => Some(format!(
                    "<failure message=\"{reason}\" type=\"no_rest_twin\"/>"
                )),
                Status::Unreadable => Some(format!("<error message=\"{reason}\"/>")),
                _ => Some(format!("<skipped message=\"{reason}\"/>")),
            };
            match body {
                None => out.push_str("/>\n"),
                Some(body) => out.push_str(&format!(">\n      {body}\n    </testcase>\n")),
            }
        }
        out.push_str("  </testsuite>\n</testsuites>\n");
        out
    }
}

/// The longest recording line read; a longer one is an unreadable step
/// (the recorder keeps at most 16 MiB of a message).
pub const MAX_LINE_BYTES: usize = 64 * 1024 * 1024;

/// Replays `recording` (the JSON Lines of `ecgridos record`) against
/// `target` with `credential`.
///
/// Refuses `allow_writes` for an endpoint that is not loopback before
/// anything is sent.
pub async fn replay(
    recording: &str,
    target: Target<'_>,
    credential: &Credential,
    options: ReplayOptions,
) -> Result<ReplayReport, Error> {
    replay_from(recording.as_bytes(), target, credential, options).await
}

/// Like [`replay`], reading the recording a line at a time from `reader`
/// (a file, say), so that its size does not matter; a line longer than
/// [`MAX_LINE_BYTES`] is an unreadable step. A read error ends the replay
/// with [`Error::Io`].
pub async fn replay_from<R>(
    reader: R,
    target: Target<'_>,
    credential: &Credential,
    options: ReplayOptions,
) -> Result<ReplayReport, Error>
where
    R: tokio::io::AsyncBufRead + Unpin,
{
    if options.allow_writes && !target.is_loopback() {
        return Err(Error::invalid_input(
            "--allow-writes",
            "is accepted only for a loopback endpoint (a fake): a replayed write changes the \
             service's state",
        ));
    }
    let mapping = Mapping::get()?;
    let mut sent_writes: HashSet<usize> = HashSet::new();
    let mut steps = Vec::new();
    let mut lines = Lines {
        reader,
        buf: Vec::new(),
    };
    let mut number = 0;
    while let Some(line) = lines.next().await? {
        number += 1;
        let text = match line {
            Line::Text(text) => text,
            Line::TooLong => {
                steps.push(unreadable(
                    number,
                    format!("longer than {} MiB", MAX_LINE_BYTES / 1024 / 1024),
                ));
                continue;
            }
        };
        if text.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let step = match serde_json::from_slice::<Value>(text) {
            Ok(record) => {
                step(
                    number,
                    &record,
                    target,
                    credential,
                    options,
                    mapping,
                    &mut sent_writes,
                )
                .await
            }
            Err(e) => unreadable(number, format!("not a JSON record: {e}")),
        };
        steps.push(step);
    }
    Ok(ReplayReport {
        over: target.name(),
        strict: options.strict,
        steps,
    })
}

fn unreadable(line: usize, reason: String) -> ReplayStep {
    ReplayStep {
        line,
        operation: None,
        status: Status::Unreadable,
        reason: Some(reason),
        diff: None,
    }
}

/// One line of a recording.
enum Line<'a> {
    /// Its bytes, without the line end.
    Text(&'a [u8]),
    /// Longer than [`MAX_LINE_BYTES`] (skipped without being kept).
    TooLong,
}

/// The lines of a recording, each read into one reused buffer.
struct Lines<R> {
    reader: R,
    buf: Vec<u8>,
}

impl<R: tokio::io::AsyncBufRead + Unpin> Lines<R> {
    async fn next(&mut self) -> Result<Option<Line<'_>>, Error> {
        use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _};
        let failed = |source| Error::Io {
            operation: "replay",
            context: "reading the recording".into(),
            source,
        };
        self.buf.clear();
        let limit = MAX_LINE_BYTES as u64 + 1;
        let read = (&mut self.reader)
            .take(limit)
            .read_until(b'\n', &mut self.buf)
            .await
            .map_err(failed)?;
        if read == 0 {
            return Ok(None);
        }
        if self.buf.len() > MAX_LINE_BYTES && self.buf.last() != Some(&b'\n') {
            // The rest of the line is read and dropped, a bounded piece at a
            // time.
            loop {
                self.buf.clear();
                let read = (&mut self.reader)
                    .take(limit)
                    .read_until(b'\n', &mut self.buf)
                    .await
                    .map_err(failed)?;
                if read == 0 || self.buf.last() == Some(&b'\n') {
                    break;
                }
            }
            self.buf = Vec::new();
            return Ok(Some(Line::TooLong));
        }
        let mut text = self.buf.as_slice();
        text = text.strip_suffix(b"\n").unwrap_or(text);
        text = text.strip_suffix(b"\r").unwrap_or(text);
        Ok(Some(Line::Text(text)))
    }
}

/// What a recorded line asks for, before anything is sent.
enum Plan {
    Send {
        entry: &'static OperationEntry,
        params: Params,
        recorded: Answer,
    },
    Done(Status, String),
}

fn plan(
    record: &Value,
    target: Target<'_>,
    options: ReplayOptions,
    mapping: &Mapping,
) -> (Option<String>, Plan) {
    let skip = |why: String| Plan::Done(Status::Skipped, why);
    let Some(op) = record.get("operation").and_then(Value::as_str) else {
        return (None, skip("not a SOAP call (no operation)".into()));
    };
    let name = Some(op.to_string());
    let Some(entry) = find(op) else {
        return (name, skip(format!("{op} is not in the contract")));
    };
    let outcome = record.get("outcome").and_then(Value::as_str).unwrap_or("");
    if outcome != "complete" {
        return (
            name,
            skip(format!(
                "the recorded exchange did not complete ({outcome})"
            )),
        );
    }
    if matches!(op, "Login" | "Logout") {
        return (
            name,
            skip("session management: the replay uses its own credential".into()),
        );
    }
    let recorded: Answer = match (record.get("fault"), record.get("result")) {
        (Some(fault), _) => Err(fault
            .get("category")
            .and_then(Value::as_str)
            .and_then(diff::parse_kind)
            .unwrap_or(ErrorKind::OtherServiceError)),
        (None, Some(result)) if is_placeholder(result) => {
            return (name, skip("the answer was too large to record".into()))
        }
        (None, Some(result)) => Ok(result.clone()),
        (None, None) => return (name, skip("no answer was recorded".into())),
    };
    if recorded == Err(ErrorKind::Authentication) {
        return (
            name,
            skip("the recorded credential was refused; the replay's own credential tells nothing about it".into()),
        );
    }
    if matches!(target, Target::Rest(_)) && mapping.operation(op).is_none() {
        return (
            name,
            Plan::Done(
                Status::NoRestTwin,
                "no REST twin in contract/rest-mapping.json".into(),
            ),
        );
    }
    if entry.info.effect != Effect::Read && !options.allow_writes {
        return (
            name,
            Plan::Done(
                Status::SkippedWrite,
                format!(
                    "{} changes state: replayed only with --allow-writes, against a fake",
                    entry.info.effect.as_str()
                ),
            ),
        );
    }
    match params(record.get("parameters")) {
        Ok(params) => (
            name,
            Plan::Send {
                entry,
                params,
                recorded,
            },
        ),
        Err(why) => (name, skip(why)),
    }
}

/// What the recorder writes instead of parameters or a result it could not
/// keep or read: `{"omitted": "..."}` or `{"unreadable": "..."}`.
fn is_placeholder(value: &Value) -> bool {
    matches!(value, Value::Object(map) if map.len() == 1
        && ["omitted", "unreadable"].iter().any(|k| map.get(*k).is_some_and(Value::is_string)))
}

/// The text parameters of a record, without `SessionID` (the replayer's
/// credential takes its place).
fn params(recorded: Option<&Value>) -> Result<Params, String> {
    let mut params = Params::new();
    let Some(Value::Object(map)) = recorded else {
        return Ok(params);
    };
    if recorded.is_some_and(is_placeholder) {
        return Err("the recording does not hold its parameters".into());
    }
    for (name, value) in map {
        if name == "SessionID" {
            continue;
        }
        let text = match value {
            Value::String(s) if s.starts_with("<secret:") => {
                return Err(format!(
                    "needs {name}, a credential the recording does not hold"
                ))
            }
            Value::Object(_) => {
                return Err(format!(
                    "needs {name}, whose content the recording does not hold"
                ))
            }
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            Value::Null | Value::Array(_) => continue,
        };
        params.set(name.clone(), text);
    }
    Ok(params)
}

async fn step(
    line: usize,
    record: &Value,
    target: Target<'_>,
    credential: &Credential,
    options: ReplayOptions,
    mapping: &Mapping,
    sent_writes: &mut HashSet<usize>,
) -> ReplayStep {
    let (operation, plan) = plan(record, target, options, mapping);
    let done = |status, reason| ReplayStep {
        line,
        operation: operation.clone(),
        status,
        reason: Some(reason),
        diff: None,
    };
    let (entry, mut params, recorded) = match plan {
        Plan::Done(status, reason) => return done(status, reason),
        Plan::Send {
            entry,
            params,
            recorded,
        } => (entry, params, recorded),
    };
    if entry.info.effect != Effect::Read && !sent_writes.insert(line) {
        return done(Status::Skipped, "this write was already sent".into());
    }
    let takes_session = entry.info.params.iter().any(|p| p.name == "SessionID");
    let fresh = match target {
        Target::Soap(client) => {
            if takes_session {
                params.set("SessionID", credential_text(credential));
            }
            client.call_json(entry, &params).await
        }
        Target::Rest(client) => {
            let auth = takes_session.then_some(match credential {
                Credential::ApiKey(k) => RestAuth::ApiKey(k),
                Credential::Session(s) => RestAuth::Bearer(s),
            });
            client.call_json(entry, &params, auth).await
        }
    };
    let fresh: Answer = fresh.map_err(|e| e.kind());
    let secrets = secret_names(mapping);
    let result_secret = entry.info.result.secret;
    let recorded = recorded.map(|v| normalized(v, result_secret, &secrets));
    let fresh = fresh.map(|v| normalized(v, result_secret, &secrets));
    let diff = diff::compare(entry.info.name, &recorded, &fresh);
    ReplayStep {
        line,
        operation,
        status: if diff.is_same() {
            Status::Same
        } else {
            Status::Differs
        },
        reason: None,
        diff: Some(diff),
    }
}

fn credential_text(credential: &Credential) -> String {
    match credential {
        Credential::ApiKey(k) => k.expose().to_string(),
        Credential::Session(s) => s.expose().to_string(),
    }
}

/// Names (SOAP and REST) whose values are credentials.
fn secret_names(mapping: &Mapping) -> BTreeSet<String> {
    SECRET_NAMES
        .iter()
        .flat_map(|n| [n.to_string(), camel_case(n)])
        .chain(mapping.secret_rest_fields.iter().cloned())
        .collect()
}

/// The placeholder every credential compares as.
const CREDENTIAL: &str = "<credential>";

/// An answer in the form both sides compare in: credentials as a
/// placeholder, parcel content as size and SHA-256.
fn normalized(mut value: Value, result_secret: bool, secrets: &BTreeSet<String>) -> Value {
    if result_secret && !value.is_null() {
        return Value::String(CREDENTIAL.into());
    }
    normalize(&mut value, secrets);
    value
}

fn normalize(value: &mut Value, secrets: &BTreeSet<String>) {
    match value {
        Value::String(s) if s.starts_with("<secret:") => *value = Value::String(CREDENTIAL.into()),
        Value::Array(items) => items.iter_mut().for_each(|v| normalize(v, secrets)),
        Value::Object(map) => {
            for (name, field) in map.iter_mut() {
                if field.is_null() {
                    continue;
                }
                if secrets.contains(name.as_str()) {
                    *field = Value::String(CREDENTIAL.into());
                } else if let (true, Some(text)) = (is_content(name), field.as_str()) {
                    if !text.is_empty() {
                        *field = content_digest(text);
                    }
                } else {
                    normalize(field, secrets);
                }
            }
        }
        _ => {}
    }
}

fn is_content(name: &str) -> bool {
    CONTENT_NAMES
        .iter()
        .any(|c| *c == name || camel_case(c) == name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn plan_of(record: Value, options: ReplayOptions) -> (Status, String) {
        let mapping = Mapping::get().unwrap();
        let client = RestClient::builder()
            .base_url("http://127.0.0.1:9")
            .build()
            .unwrap();
        match plan(&record, Target::Rest(&client), options, mapping).1 {
            Plan::Done(status, why) => (status, why),
            Plan::Send { params, .. } => (Status::Same, format!("{params:?}")),
        }
    }

    #[test]
    fn what_is_not_sent_and_why() {
        let ok = |op: &str, params: Value| json!({"operation": op, "outcome": "complete", "parameters": params, "result": 1});
        let reads = ReplayOptions::new();
        let (s, why) = plan_of(ok("Login", json!({})), reads);
        assert_eq!(s, Status::Skipped);
        assert!(why.contains("session"));
        let (s, _) = plan_of(
            ok(
                "GenerateAPIKey",
                json!({"SessionID": "<secret:00000000>", "UserID": 8}),
            ),
            reads,
        );
        assert_eq!(s, Status::SkippedWrite);
        let (s, why) = plan_of(
            ok(
                "UserGetAPIKey",
                json!({"SessionID": "<secret:00000000>", "UserID": 8}),
            ),
            reads,
        );
        assert_eq!(s, Status::Same, "{why}");
        assert_eq!(why, "[\"UserID\"]", "SessionID is the replayer's");
        let mut dropped = ok("WhoAmI", json!({}));
        dropped["outcome"] = json!("client_dropped");
        assert_eq!(plan_of(dropped, reads).0, Status::Skipped);
        assert_eq!(
            plan_of(json!({"operation": null, "outcome": "complete"}), reads).0,
            Status::Skipped
        );
        let (s, why) = plan_of(
            ok(
                "ParcelUpload",
                json!({"Bytes": 3, "Content": {"bytes": 3, "sha256": "ab"}}),
            ),
            ReplayOptions::new().allow_writes(true),
        );
        assert_eq!(s, Status::Skipped);
        assert!(why.contains("Content"), "{why}");
        let omitted = json!({"omitted": "the request is larger than the recorder keeps"});
        assert_eq!(
            plan_of(ok("UserGetAPIKey", omitted), reads).0,
            Status::Skipped
        );
        let mut big = ok("UserGetAPIKey", json!({"UserID": 8}));
        big["result"] = json!({"omitted": "the answer is larger than the recorder keeps"});
        let (s, why) = plan_of(big, reads);
        assert_eq!(s, Status::Skipped);
        assert!(why.contains("too large"), "{why}");
    }

    #[test]
    fn credentials_compare_by_presence_and_content_by_digest() {
        let secrets = secret_names(Mapping::get().unwrap());
        let recorded = json!({"SessionID": "<secret:1a2b3c4d>", "UserID": 7,
                              "Content": {"bytes": 5, "sha256": content_digest("aGVsbG8=")["sha256"]}});
        let fresh = json!({"SessionID": "real-session", "UserID": 7, "Content": "aGVsbG8="});
        assert_eq!(
            normalized(recorded, false, &secrets),
            normalized(fresh, false, &secrets)
        );
        assert_eq!(
            normalized(json!("<secret:1a2b3c4d>"), true, &secrets),
            normalized(json!("a-new-key"), true, &secrets)
        );
    }

    #[test]
    fn reports_fail_on_differences_and_only_strictly_on_missing_twins() {
        let step = |status| ReplayStep {
            line: 1,
            operation: None,
            status,
            reason: None,
            diff: None,
        };
        let report = |strict, status| ReplayReport {
            over: "rest",
            strict,
            steps: vec![step(Status::Same), step(status)],
        };
        assert!(!report(false, Status::NoRestTwin).failed());
        assert!(report(true, Status::NoRestTwin).failed());
        assert!(report(false, Status::Differs).failed());
        assert!(!report(false, Status::SkippedWrite).failed());
    }
}
