//! Scenario files: steps named by the contract's operations, with
//! parameters (which may refer to earlier results and to the scenario's
//! users) and expectations, run over SOAP and REST and compared step by
//! step.
//!
//! ```toml
//! name = "read a key"
//!
//! [[user]]
//! name = "admin"
//!
//! [[user]]
//! name = "alice"
//!
//! [[step]]
//! name = "read"
//! operation = "UserGetAPIKey"
//! as = "admin"
//! params = { UserID = "${users.alice.user_id}" }
//!
//! [[step]]
//! name = "read-again"
//! operation = "UserGetAPIKey"
//! params = { UserID = "${users.alice.user_id}" }
//! expect = { result = "${read.result}" }
//!
//! [[step]]
//! name = "nobody"
//! operation = "UserGetAPIKey"
//! params = { UserID = 999999 }
//! expect = { error = "ObjectNotFound" }
//! ```
//!
//! A reference is `${STEP.result}` or a path into it in contract names
//! (`${inbox.result.ParcelIDInfoList[0].ParcelID}`: over REST the same path
//! is followed through the mapping's names), or `${users.NAME.FIELD}` with
//! `user_id`, `mailbox_id`, `ecgrid_id`, `login`, `password` or `api_key`. `expect` names
//! result fields by path (`result` is the result itself) or `error` (an
//! error kind: `NotFound` or the services' `ObjectNotFound`, ...). `as`
//! names the user whose credential the step uses (default: the first);
//! `credential` gives one instead (`"${login.result}"`), and so does an
//! explicit `SessionID` parameter.
//!
//! [`Scenario::check`] refuses an unknown operation or parameter, an unknown
//! user, a reference to a later step, and (over REST) an operation without
//! a REST twin, before anything is sent.

use std::collections::{BTreeMap, HashSet};
use std::time::Instant;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::diff::{self, Answer, StepDiff};
use super::mapping::{camel_case, Mapping, RestOperation};
use crate::api::request::find;
use crate::api::Params;
use crate::error::{Error, Result};
use crate::rest::{RestAuth, RestClient};
use crate::rotation::{Credential, Protocol};
use crate::secret::{ApiKey, Password, SessionId};
use crate::soap::Client;

/// A scenario file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Its name (default: none).
    #[serde(default)]
    pub name: String,
    /// What it shows.
    #[serde(default)]
    pub description: String,
    /// The users whose credentials the steps use (`[[user]]`), in order:
    /// the first is the default. Against the embedded fake, none declared
    /// means the fake's seeded users.
    #[serde(default, rename = "user")]
    pub users: Vec<UserDecl>,
    /// The steps (`[[step]]`), run in order.
    #[serde(default, rename = "step")]
    pub steps: Vec<Step>,
}

/// A user of a scenario.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserDecl {
    /// The name steps refer to (`as = "alice"`, `${users.alice.user_id}`).
    pub name: String,
    /// The login name (default: `name`); against the embedded fake, the
    /// seeded user with this login.
    #[serde(default)]
    pub login: Option<String>,
    /// Against real endpoints: the environment variable holding this user's
    /// API key (the first user falls back to the usual credential options).
    #[serde(default)]
    pub api_key_env: Option<String>,
    /// Against real endpoints: the user's ID.
    #[serde(default)]
    pub user_id: Option<i32>,
    /// Against real endpoints: the user's mailbox.
    #[serde(default)]
    pub mailbox_id: Option<i32>,
    /// The ECGrid ID of the user's mailbox, when the fake does not know it.
    #[serde(default)]
    pub ecgrid_id: Option<i64>,
}

impl UserDecl {
    /// The login name.
    pub fn login(&self) -> &str {
        self.login.as_deref().unwrap_or(&self.name)
    }
}

/// One step.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    /// Its name, unique in the file; later steps refer to its result by it.
    pub name: String,
    /// The contract operation.
    pub operation: String,
    /// Parameters by contract name; values may hold references.
    #[serde(default)]
    pub params: BTreeMap<String, toml::Value>,
    /// Expected result fields by path (`result` for the result itself), or
    /// `error` with an error kind.
    #[serde(default)]
    pub expect: BTreeMap<String, toml::Value>,
    /// The user whose credential the step uses (default: the first).
    #[serde(default, rename = "as")]
    pub as_user: Option<String>,
    /// A credential instead of the user's (a reference, usually).
    #[serde(default)]
    pub credential: Option<String>,
}

/// A user as a run sees them: what references and credentials need.
#[derive(Clone, Debug)]
pub struct ScenarioUser {
    /// The scenario's name for the user.
    pub name: String,
    /// The login name.
    pub login: String,
    /// The user's ID, when known.
    pub user_id: Option<i32>,
    /// The user's mailbox, when known.
    pub mailbox_id: Option<i32>,
    /// The ECGrid ID of the user's mailbox, when known.
    pub ecgrid_id: Option<i64>,
    /// The credential steps run with.
    pub credential: Option<Credential>,
    /// The password, when known (for `Login` steps).
    pub password: Option<Password>,
}

/// What to run a scenario with.
#[derive(Clone, Copy, Debug, Default)]
pub struct RunOptions {
    /// Show keys and session IDs in results and differences (they are
    /// compared either way).
    pub show_secrets: bool,
}

/// The client of one protocol run.
#[derive(Clone, Copy, Debug)]
pub enum Target<'a> {
    /// Over SOAP.
    Soap(&'a Client),
    /// Over REST.
    Rest(&'a RestClient),
}

impl Target<'_> {
    fn protocol(&self) -> Protocol {
        match self {
            Target::Soap(_) => Protocol::Soap,
            Target::Rest(_) => Protocol::Rest,
        }
    }
}

/// One step as run over one protocol.
#[derive(Clone, Debug, Serialize)]
pub struct StepRun {
    /// The step name.
    pub step: String,
    /// The contract operation.
    pub operation: String,
    /// True when it was sent (its references resolved).
    pub sent: bool,
    /// The result (credentials redacted unless asked, long strings such as
    /// parcel contents shortened).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    /// The error kind, when it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_kind: Option<String>,
    /// The error, when it failed (never holds a secret).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Unmet expectations (and why a step could not be sent).
    pub failures: Vec<String>,
    /// Milliseconds the call took.
    pub millis: u64,
    /// The answer, unredacted, for the comparison.
    #[serde(skip)]
    pub answer: Option<Answer>,
}

impl StepRun {
    /// True when the step was sent and met its expectations.
    pub fn passed(&self) -> bool {
        self.sent && self.failures.is_empty()
    }
}

/// All steps over one protocol.
#[derive(Clone, Debug, Serialize)]
pub struct ProtocolRun {
    /// `soap` or `rest`.
    pub protocol: String,
    /// The steps, in order.
    pub steps: Vec<StepRun>,
}

/// The comparison of one step over both protocols.
#[derive(Clone, Debug, Serialize)]
pub struct StepComparison {
    /// The step name.
    pub step: String,
    /// The classified differences, when the step was sent over both.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diff: Option<StepDiff>,
}

impl StepComparison {
    /// True when both answers compare as the same.
    pub fn is_same(&self) -> bool {
        self.diff.as_ref().is_some_and(StepDiff::is_same)
    }
}

/// The outcome of a scenario: each protocol's run and, over both, the
/// step-by-step comparison. Serialises to the `--json` document.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// The scenario's name.
    pub scenario: String,
    /// The runs, in the order made.
    pub runs: Vec<ProtocolRun>,
    /// The comparison (empty over one protocol).
    pub comparison: Vec<StepComparison>,
    /// True when every step met its expectations and the protocols agree.
    pub passed: bool,
}

impl Report {
    /// The report of `runs` of `scenario` (compared step by step when there
    /// are two).
    pub fn new(scenario: &Scenario, runs: Vec<ProtocolRun>, options: RunOptions) -> Report {
        Report::named(&scenario.name, runs, options)
    }

    /// The report of `runs` under `name` (compared step by step when there
    /// are two: the first is the SOAP side).
    pub fn named(name: &str, runs: Vec<ProtocolRun>, options: RunOptions) -> Report {
        let mut comparison = Vec::new();
        if let [soap, rest] = runs.as_slice() {
            let mapping = Mapping::get().ok();
            let mut compare = diff::CompareOptions {
                show_secrets: options.show_secrets,
                corresponding: Vec::new(),
            };
            for (a, b) in soap.steps.iter().zip(&rest.steps) {
                let diff = match (&a.answer, &b.answer) {
                    (Some(x), Some(y)) => {
                        let d = diff::compare_with_options(&a.operation, x, y, &compare);
                        // The answers of a step whose result differs by
                        // nature correspond in later steps.
                        let volatile = mapping
                            .and_then(|m| m.operation(&a.operation))
                            .is_some_and(|o| o.volatile_result);
                        if let (true, Ok(x), Ok(y)) = (volatile, x, y) {
                            compare.corresponding.push((x.clone(), y.clone()));
                        }
                        Some(d)
                    }
                    _ => None,
                };
                comparison.push(StepComparison {
                    step: a.step.clone(),
                    diff,
                });
            }
        }
        let passed = runs.iter().all(|r| r.steps.iter().all(StepRun::passed))
            && comparison.iter().all(StepComparison::is_same);
        Report {
            scenario: name.to_string(),
            runs,
            comparison,
            passed,
        }
    }
}

/// A parsed `${...}` reference.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Reference {
    Result { step: String, path: Vec<Segment> },
    User { user: String, field: String },
}

/// One segment of a path in contract names.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Segment {
    Name(String),
    Index(usize),
}

const USER_FIELDS: [&str; 6] = [
    "user_id",
    "mailbox_id",
    "ecgrid_id",
    "login",
    "password",
    "api_key",
];

fn parse_path(text: &str) -> std::result::Result<Vec<Segment>, String> {
    let mut out = Vec::new();
    for part in text.split('.').filter(|p| !p.is_empty()) {
        let (name, mut rest) = match part.find('[') {
            Some(i) => (&part[..i], &part[i..]),
            None => (part, ""),
        };
        if !name.is_empty() {
            out.push(Segment::Name(name.to_string()));
        }
        while let Some(r) = rest.strip_prefix('[') {
            let (index, tail) = r
                .split_once(']')
                .ok_or_else(|| format!("unclosed [ in {text:?}"))?;
            let index = index
                .trim()
                .parse()
                .map_err(|_| format!("{index:?} is not an index in {text:?}"))?;
            out.push(Segment::Index(index));
            rest = tail;
        }
        if !rest.is_empty() {
            return Err(format!("unexpected {rest:?} in {text:?}"));
        }
    }
    Ok(out)
}

fn parse_reference(inner: &str) -> std::result::Result<Reference, String> {
    let inner = inner.trim();
    if let Some(rest) = inner.strip_prefix("users.") {
        let (user, field) = rest
            .split_once('.')
            .ok_or_else(|| format!("${{{inner}}}: write users.NAME.FIELD"))?;
        if !USER_FIELDS.contains(&field) {
            return Err(format!(
                "${{{inner}}}: a user has {}",
                USER_FIELDS.join(", ")
            ));
        }
        return Ok(Reference::User {
            user: user.to_string(),
            field: field.to_string(),
        });
    }
    let (step, rest) = inner.split_once('.').unwrap_or((inner, ""));
    let path = rest
        .strip_prefix("result")
        .filter(|p| p.is_empty() || p.starts_with('.') || p.starts_with('['))
        .ok_or_else(|| format!("${{{inner}}}: write STEP.result or STEP.result.PATH"))?;
    Ok(Reference::Result {
        step: step.to_string(),
        path: parse_path(path)?,
    })
}

/// The references in `text`, with the text around them.
fn references(text: &str) -> std::result::Result<Vec<Reference>, String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        let after = &rest[start + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| format!("unclosed ${{ in {text:?}"))?;
        out.push(parse_reference(&after[..end])?);
        rest = &after[end + 1..];
    }
    Ok(out)
}

/// The strings of a TOML value (to find references in expectations).
fn strings(value: &toml::Value, out: &mut Vec<String>) {
    match value {
        toml::Value::String(s) => out.push(s.clone()),
        toml::Value::Array(items) => items.iter().for_each(|v| strings(v, out)),
        toml::Value::Table(t) => t.values().for_each(|v| strings(v, out)),
        _ => {}
    }
}

impl Scenario {
    /// Parses a scenario file (TOML).
    pub fn parse(text: &str) -> Result<Scenario> {
        toml::from_str(text).map_err(|e| Error::invalid_input("scenario", e.to_string()))
    }

    /// Refuses, before anything is sent, what cannot run over `protocols`:
    /// no step, a duplicate step or user name, an unknown operation,
    /// parameter or user, a reference to a step that does not come earlier,
    /// an unknown error kind, and an operation with no REST twin when REST
    /// is among the protocols. All problems are listed in one error.
    pub fn check(&self, protocols: &[Protocol]) -> Result<()> {
        let mut problems = Vec::new();
        if self.steps.is_empty() {
            problems.push("no [[step]]".to_string());
        }
        let mut users = HashSet::new();
        for u in &self.users {
            if !users.insert(u.name.as_str()) {
                problems.push(format!("user {:?} declared twice", u.name));
            }
        }
        let mapping = Mapping::get()?;
        let mut earlier: HashSet<&str> = HashSet::new();
        for step in &self.steps {
            let at = format!("step {:?}", step.name);
            if step.name.is_empty() || step.name.contains(['.', '$', '{', '}', '[']) {
                problems.push(format!(
                    "{at}: a step name is non-empty, without . $ {{ }} ["
                ));
            }
            match find(&step.operation) {
                None => problems.push(format!(
                    "{at}: no operation {:?} in the contract",
                    step.operation
                )),
                Some(entry) => {
                    for (name, value) in &step.params {
                        if toml_text(value).is_none() {
                            problems.push(format!(
                                "{at}: {name}: a parameter is a string, number or boolean"
                            ));
                        }
                        if !entry.info.params.iter().any(|p| p.name == name) {
                            let known: Vec<&str> =
                                entry.info.params.iter().map(|p| p.name).collect();
                            problems.push(format!(
                                "{at}: {} has no parameter {name:?} (it has: {})",
                                step.operation,
                                known.join(", ")
                            ));
                        }
                    }
                    if protocols.contains(&Protocol::Rest)
                        && mapping.operation(&step.operation).is_none()
                    {
                        problems.push(format!(
                            "{at}: {} has no REST twin in the mapping",
                            step.operation
                        ));
                    }
                }
            }
            if let Some(user) = &step.as_user {
                if !self.users.is_empty() && !users.contains(user.as_str()) {
                    problems.push(format!("{at}: as = {user:?} is not a declared user"));
                }
            }
            let mut texts = Vec::new();
            step.params.values().for_each(|v| strings(v, &mut texts));
            step.expect.values().for_each(|v| strings(v, &mut texts));
            texts.extend(step.credential.iter().cloned());
            for text in &texts {
                match references(text) {
                    Err(e) => problems.push(format!("{at}: {e}")),
                    Ok(refs) => {
                        for r in refs {
                            match r {
                                Reference::Result { step: s, .. }
                                    if !earlier.contains(s.as_str()) =>
                                {
                                    problems.push(format!(
                                        "{at}: ${{{s}.result}} does not name an earlier step"
                                    ))
                                }
                                Reference::User { user, .. }
                                    if !self.users.is_empty() && !users.contains(user.as_str()) =>
                                {
                                    problems.push(format!("{at}: no user {user:?} is declared"))
                                }
                                _ => {}
                            }
                        }
                    }
                }
            }
            for (key, value) in &step.expect {
                if key == "error" {
                    match value.as_str().map(diff::parse_kind) {
                        Some(Some(_)) => {}
                        _ => problems.push(format!("{at}: error = {value:?} is not an error kind")),
                    }
                } else if let Err(e) = parse_path(key) {
                    problems.push(format!("{at}: expect: {e}"));
                }
            }
            if !earlier.insert(step.name.as_str()) {
                problems.push(format!("{at}: the name is used twice"));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(Error::invalid_input("scenario", problems.join("; ")))
        }
    }

    /// Runs every step over `target`, as `users` (the first is the
    /// default). A step whose references do not resolve is not sent and
    /// fails; the run goes on.
    pub async fn run(
        &self,
        target: Target<'_>,
        users: &[ScenarioUser],
        options: RunOptions,
    ) -> ProtocolRun {
        let mut secrets: Vec<String> = Vec::new();
        for u in users {
            if let Some(c) = &u.credential {
                secrets.push(credential_text(c).to_string());
            }
            if let Some(p) = &u.password {
                secrets.push(p.expose().to_string());
            }
        }
        let mut ctx = RunContext {
            users,
            results: BTreeMap::new(),
            sessions: HashSet::new(),
            secrets,
        };
        let mut steps = Vec::new();
        for step in &self.steps {
            let run = ctx.step(step, target, options).await;
            steps.push(run);
        }
        ProtocolRun {
            protocol: target.protocol().to_string(),
            steps,
        }
    }
}

struct RunContext<'u> {
    users: &'u [ScenarioUser],
    /// Each step's answer, by step name, and its operation.
    results: BTreeMap<String, (String, Answer)>,
    /// Credentials that are sessions (results of `Login`), sent as bearer
    /// tokens over REST.
    sessions: HashSet<String>,
    /// Every secret value seen (the users' keys and passwords, secret
    /// results): kept out of failure messages.
    secrets: Vec<String>,
}

fn credential_text(c: &Credential) -> &str {
    match c {
        Credential::ApiKey(k) => k.expose(),
        Credential::Session(s) => s.expose(),
    }
}

/// The value at `path` (contract names) in an answer of `op` over either
/// protocol: names are matched as written, then through the mapping's
/// REST name, its camelCase form, and case-insensitively; a paged SOAP
/// list's name is skipped over a plain REST list.
fn lookup<'v>(op: &str, value: &'v Value, path: &[Segment]) -> Option<&'v Value> {
    let mapping = Mapping::get().ok();
    let rest_op: Option<&RestOperation> = mapping.and_then(|m| m.operation(op));
    let mut current = value;
    for (i, segment) in path.iter().enumerate() {
        current = match (segment, current) {
            (Segment::Index(n), Value::Array(items)) => items.get(*n)?,
            (Segment::Name(name), Value::Object(map)) => {
                let rest_name = match (rest_op, mapping) {
                    (Some(o), Some(m)) => o.rest_field(m, name).0,
                    _ => camel_case(name),
                };
                map.get(name)
                    .or_else(|| map.get(&rest_name))
                    .or_else(|| map.get(&camel_case(name)))
                    .or_else(|| {
                        map.iter()
                            .find(|(k, _)| k.eq_ignore_ascii_case(name))
                            .map(|(_, v)| v)
                    })?
            }
            (Segment::Name(name), Value::Array(_))
                if i == 0 && rest_op.and_then(|o| o.result_list.as_deref()) == Some(name) =>
            {
                current
            }
            _ => return None,
        };
    }
    Some(current)
}

/// A JSON value as parameter text; `None` for null, objects and arrays.
fn as_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// A TOML value as parameter text (strings as given).
fn toml_text(value: &toml::Value) -> Option<String> {
    match value {
        toml::Value::String(s) => Some(s.clone()),
        toml::Value::Integer(i) => Some(i.to_string()),
        toml::Value::Float(f) => Some(f.to_string()),
        toml::Value::Boolean(b) => Some(b.to_string()),
        toml::Value::Datetime(d) => Some(d.to_string()),
        _ => None,
    }
}

/// `expected` matches `actual`: objects by the fields expected, arrays item
/// by item (an empty list also matches an absent one), scalars as the
/// difference engine compares them.
fn matches(expected: &Value, actual: Option<&Value>) -> bool {
    match (expected, actual) {
        (Value::Array(e), None | Some(Value::Null)) => e.is_empty(),
        (_, None) => expected.is_null(),
        (Value::Object(e), Some(Value::Object(a))) => e.iter().all(|(k, v)| {
            let path = [Segment::Name(k.clone())];
            matches(v, lookup("", &Value::Object(a.clone()), &path))
        }),
        (Value::Array(e), Some(Value::Array(a))) => {
            e.len() == a.len() && e.iter().zip(a).all(|(x, y)| matches(x, Some(y)))
        }
        (e, Some(a)) => diff::scalars_equal(e, a, false),
    }
}

impl RunContext<'_> {
    fn user(&self, name: Option<&str>) -> std::result::Result<&ScenarioUser, String> {
        match name {
            None => self
                .users
                .first()
                .ok_or_else(|| "the scenario has no user".to_string()),
            Some(n) => self
                .users
                .iter()
                .find(|u| u.name == n)
                .ok_or_else(|| format!("no user {n:?}")),
        }
    }

    fn resolve_one(&self, reference: &Reference) -> std::result::Result<Value, String> {
        match reference {
            Reference::User { user, field } => {
                let u = self.user(Some(user))?;
                let value = match field.as_str() {
                    "user_id" => u.user_id.map(Value::from),
                    "mailbox_id" => u.mailbox_id.map(Value::from),
                    "ecgrid_id" => u.ecgrid_id.map(Value::from),
                    "login" => Some(Value::from(u.login.clone())),
                    "password" => u.password.as_ref().map(|p| Value::from(p.expose())),
                    _ => match &u.credential {
                        Some(Credential::ApiKey(k)) => Some(Value::from(k.expose())),
                        _ => None,
                    },
                };
                value.ok_or_else(|| format!("user {user:?} has no known {field}"))
            }
            Reference::Result { step, path } => {
                let (op, answer) = self
                    .results
                    .get(step)
                    .ok_or_else(|| format!("step {step:?} has not run"))?;
                let value = answer
                    .as_ref()
                    .map_err(|kind| format!("step {step:?} failed ({kind})"))?;
                lookup(op, value, path)
                    .cloned()
                    .ok_or_else(|| format!("step {step:?}'s result has no such field"))
            }
        }
    }

    /// `text` with its references replaced by their values.
    fn resolve(&self, text: &str) -> std::result::Result<String, String> {
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let end = after
                .find('}')
                .ok_or_else(|| format!("unclosed ${{ in {text:?}"))?;
            let reference = parse_reference(&after[..end])?;
            let value = self.resolve_one(&reference)?;
            let value = as_text(&value)
                .ok_or_else(|| format!("${{{}}} is not a single value", &after[..end]))?;
            out.push_str(&value);
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }

    /// `text` with every secret value seen replaced by [`diff::REDACTED`],
    /// in any form (see [`crate::secret::redact_text`]).
    fn scrub(&self, text: &str) -> String {
        let secrets: Vec<&str> = self.secrets.iter().map(String::as_str).collect();
        crate::secret::redact_text(text, &secrets)
    }

    /// An expected value with the references in its strings resolved.
    fn expected(&self, value: &toml::Value) -> std::result::Result<Value, String> {
        Ok(match value {
            toml::Value::String(s) => Value::String(self.resolve(s)?),
            toml::Value::Array(items) => Value::Array(
                items
                    .iter()
                    .map(|v| self.expected(v))
                    .collect::<std::result::Result<_, _>>()?,
            ),
            toml::Value::Table(t) => Value::Object(
                t.iter()
                    .map(|(k, v)| Ok((k.clone(), self.expected(v)?)))
                    .collect::<std::result::Result<_, String>>()?,
            ),
            other => serde_json::to_value(other).map_err(|e| e.to_string())?,
        })
    }

    /// The parameters and credential of `step`, references resolved.
    fn prepare(&self, step: &Step) -> std::result::Result<(Params, Option<Credential>), String> {
        let mut params = Params::new();
        for (name, value) in &step.params {
            let text = toml_text(value)
                .ok_or_else(|| format!("{name}: a parameter is a string, number or boolean"))?;
            params.set(name.clone(), self.resolve(&text)?);
        }
        let explicit = match (&step.credential, params.get("SessionID")) {
            (Some(c), _) => Some(self.resolve(c)?),
            (None, Some(s)) => Some(s.to_string()),
            (None, None) => None,
        };
        let credential = match explicit {
            Some(c) if self.sessions.contains(&c) => Some(Credential::Session(SessionId::new(c))),
            Some(c) => Some(Credential::ApiKey(ApiKey::new(c))),
            None => self.user(step.as_user.as_deref())?.credential.clone(),
        };
        Ok((params, credential))
    }

    async fn step(&mut self, step: &Step, target: Target<'_>, options: RunOptions) -> StepRun {
        let mut run = StepRun {
            step: step.name.clone(),
            operation: step.operation.clone(),
            sent: false,
            result: None,
            error_kind: None,
            error: None,
            failures: Vec::new(),
            millis: 0,
            answer: None,
        };
        let Some(entry) = find(&step.operation) else {
            run.failures
                .push(format!("no operation {:?}", step.operation));
            return run;
        };
        let (mut params, credential) = match self.prepare(step) {
            Ok(p) => p,
            Err(e) => {
                run.failures.push(format!("not sent: {e}"));
                return run;
            }
        };
        let started = Instant::now();
        let outcome = match target {
            Target::Soap(client) => {
                let has_session = entry.info.params.iter().any(|p| p.name == "SessionID");
                if has_session && params.get("SessionID").is_none() {
                    if let Some(c) = &credential {
                        params.set("SessionID", credential_text(c));
                    }
                }
                client.call_json(entry, &params).await
            }
            Target::Rest(client) => {
                let auth = credential.as_ref().map(|c| match c {
                    Credential::ApiKey(k) => RestAuth::ApiKey(k),
                    Credential::Session(s) => RestAuth::Bearer(s),
                });
                client.call_json(entry, &params, auth).await
            }
        };
        run.millis = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let answer: Answer = match outcome {
            Ok(value) => Ok(value),
            Err(e) if e.is_invalid_input() => {
                // Refused before sending: the step's own fault.
                run.failures.push(format!("not sent: {e}"));
                return run;
            }
            Err(e) => {
                run.error = Some(e.to_string());
                Err(e.kind())
            }
        };
        run.sent = true;
        if let Ok(value) = &answer {
            if entry.info.name == "Login" {
                if let Some(token) = value.as_str() {
                    self.sessions.insert(token.to_string());
                }
            }
            if diff::is_secret(&step.operation, "") {
                self.secrets.extend(value.as_str().map(str::to_string));
            }
            run.result = Some(diff::abbreviate(&if options.show_secrets {
                value.clone()
            } else {
                diff::redact(&step.operation, value)
            }));
        }
        if let Err(kind) = &answer {
            run.error_kind = Some(diff::kind_name(*kind));
        }
        self.check_expectations(step, &answer, options, &mut run.failures);
        if !options.show_secrets {
            for failure in &mut run.failures {
                *failure = self.scrub(failure);
            }
        }
        run.answer = Some(answer.clone());
        self.results
            .insert(step.name.clone(), (step.operation.clone(), answer));
        run
    }

    fn check_expectations(
        &self,
        step: &Step,
        answer: &Answer,
        options: RunOptions,
        failures: &mut Vec<String>,
    ) {
        let wanted_error = step
            .expect
            .get("error")
            .and_then(toml::Value::as_str)
            .and_then(diff::parse_kind);
        match (answer, wanted_error) {
            (Err(kind), Some(wanted)) if *kind == wanted => return,
            (Err(kind), Some(wanted)) => {
                failures.push(format!("expected error {wanted}, got error {kind}"));
                return;
            }
            (Ok(_), Some(wanted)) => {
                failures.push(format!("expected error {wanted}, got a result"));
                return;
            }
            (Err(kind), None) => {
                failures.push(format!("failed with {kind}"));
                return;
            }
            (Ok(_), None) => {}
        }
        let Ok(value) = answer else {
            return;
        };
        for (key, expected) in &step.expect {
            let path = if key == "result" {
                Vec::new()
            } else {
                match parse_path(key) {
                    Ok(p) => p,
                    Err(e) => {
                        failures.push(e);
                        continue;
                    }
                }
            };
            let expected = match self.expected(expected) {
                Ok(v) => v,
                Err(e) => {
                    failures.push(format!("{key}: {e}"));
                    continue;
                }
            };
            let actual = lookup(&step.operation, value, &path);
            if !matches(&expected, actual) {
                let field = match path.last() {
                    Some(Segment::Name(n)) => n.as_str(),
                    _ if path.is_empty() => "",
                    _ => key.as_str(),
                };
                let secret = !options.show_secrets && diff::is_secret(&step.operation, field);
                let show = |v: Option<&Value>| match v {
                    _ if secret => diff::REDACTED.to_string(),
                    Some(v) => v.to_string(),
                    None => "nothing".to_string(),
                };
                failures.push(format!(
                    "{key}: expected {}, got {}",
                    show(Some(&expected)),
                    show(actual)
                ));
            }
        }
    }
}

/// Running scenarios against the embedded fake: a fresh fake per protocol,
/// seeded with the same users (same passwords and keys), so that both runs
/// start from the same state.
#[cfg(feature = "fake")]
pub mod on_fake {
    use super::*;
    use crate::fake::{FakeServer, FakeServerBuilder, SeedUser, UserMailbox};

    /// The users of a scenario on the fake: the declared ones (by login),
    /// or all seeded users when none is declared; each with the ECGrid ID
    /// of its mailbox.
    pub fn users(
        scenario: &Scenario,
        seeds: &[SeedUser],
        mailboxes: &[UserMailbox],
    ) -> Result<Vec<ScenarioUser>> {
        let of = |name: &str, login: &str, ecgrid_id: Option<i64>| -> Result<ScenarioUser> {
            let seed = seeds
                .iter()
                .find(|s| s.login.eq_ignore_ascii_case(login))
                .ok_or_else(|| {
                    Error::invalid_input(
                        "scenario",
                        format!("user {name:?}: the fake has no login {login:?}"),
                    )
                })?;
            let own = mailboxes.iter().find(|m| m.user_id == seed.user_id);
            Ok(ScenarioUser {
                name: name.to_string(),
                login: seed.login.clone(),
                user_id: Some(seed.user_id),
                mailbox_id: own.map(|m| m.mailbox_id),
                ecgrid_id: ecgrid_id.or(own.map(|m| i64::from(m.ecgrid_id))),
                credential: seed.api_key.clone().map(Credential::ApiKey),
                password: Some(seed.password.clone()),
            })
        };
        if scenario.users.is_empty() {
            seeds.iter().map(|s| of(&s.login, &s.login, None)).collect()
        } else {
            scenario
                .users
                .iter()
                .map(|u| of(&u.name, u.login(), u.ecgrid_id))
                .collect()
        }
    }

    /// Runs `scenario` over each of `protocols`, each against a fresh fake
    /// made by `configure` from a builder already given the users, and
    /// reports. `configure` is where a test introduces a difference on
    /// purpose (`FakeServerBuilder::rest_override`).
    pub async fn run(
        scenario: &Scenario,
        protocols: &[Protocol],
        options: RunOptions,
        configure: impl Fn(FakeServerBuilder) -> FakeServerBuilder,
    ) -> Result<Report> {
        scenario.check(protocols)?;
        let mut seeds = SeedUser::defaults();
        for seed in &mut seeds {
            let key = format!("{:032x}", fastrand::u128(..));
            seed.api_key = Some(ApiKey::new(key));
        }
        let mut runs = Vec::new();
        for protocol in protocols {
            let server = configure(FakeServer::builder().users(seeds.clone()))
                .start()
                .await
                .map_err(|e| Error::invalid_input("fake", e.to_string()))?;
            let users = users(scenario, &seeds, &server.mailboxes())?;
            let run = match protocol {
                Protocol::Soap => {
                    let client = Client::builder().endpoint(server.soap_url()).build()?;
                    scenario.run(Target::Soap(&client), &users, options).await
                }
                Protocol::Rest => {
                    let client = RestClient::builder().base_url(server.rest_url()).build()?;
                    scenario.run(Target::Rest(&client), &users, options).await
                }
            };
            server.shutdown().await;
            runs.push(run);
        }
        Ok(Report::new(scenario, runs, options))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn references_parse() {
        assert_eq!(
            parse_reference("inbox.result.ParcelIDInfoList[0].ParcelID").unwrap(),
            Reference::Result {
                step: "inbox".into(),
                path: vec![
                    Segment::Name("ParcelIDInfoList".into()),
                    Segment::Index(0),
                    Segment::Name("ParcelID".into())
                ]
            }
        );
        assert_eq!(
            parse_reference("login.result").unwrap(),
            Reference::Result {
                step: "login".into(),
                path: vec![]
            }
        );
        assert!(parse_reference("users.alice.user_id").is_ok());
        assert!(parse_reference("users.alice.shoe_size").is_err());
        assert!(parse_reference("login.results").is_err());
        assert!(parse_path("a[x]").is_err());
        assert_eq!(
            references("a ${x.result} b ${users.u.login}")
                .unwrap()
                .len(),
            2
        );
        assert!(references("${x.result").is_err());
    }

    #[test]
    fn lookup_follows_contract_names_over_both_protocols() {
        let soap = json!({"PageSize": 1, "ParcelIDInfoList": [{"ParcelID": 7}]});
        let rest = json!([{"parcelId": 7}]);
        let path = parse_path("ParcelIDInfoList[0].ParcelID").unwrap();
        assert_eq!(lookup("ParcelInBox", &soap, &path), Some(&json!(7)));
        assert_eq!(lookup("ParcelInBox", &rest, &path), Some(&json!(7)));
        let who = json!({"login": "alice"});
        let path = parse_path("LoginName").unwrap();
        assert_eq!(lookup("WhoAmI", &who, &path), Some(&json!("alice")));
        assert_eq!(lookup("WhoAmI", &who, &parse_path("Nope").unwrap()), None);
    }

    #[test]
    fn expectations_match_leniently() {
        assert!(matches(&json!(1002), Some(&json!("1002"))));
        assert!(matches(&json!([]), None));
        assert!(matches(&json!([]), Some(&json!([]))));
        assert!(!matches(&json!([]), Some(&json!([1]))));
        assert!(matches(
            &json!({"UserID": 1}),
            Some(&json!({"userId": 1, "x": 2}))
        ));
        assert!(!matches(&json!("a"), None));
    }

    #[test]
    fn check_refuses_before_sending() {
        let text = r#"
            [[user]]
            name = "admin"
            [[step]]
            name = "a"
            operation = "UserGetAPIKey"
            params = { UserId = 1, UserID = "${b.result}", SessionID = [1] }
            [[step]]
            name = "b"
            operation = "NoSuchOperation"
            as = "carol"
            [[step]]
            name = "c"
            operation = "NowUTC"
            expect = { error = "Sad" }
        "#;
        let s = Scenario::parse(text).unwrap();
        let err = s.check(&[Protocol::Soap, Protocol::Rest]).unwrap_err();
        let text = err.to_string();
        for needle in [
            "no parameter \"UserId\"",
            "${b.result} does not name an earlier step",
            "no operation \"NoSuchOperation\"",
            "\"carol\" is not a declared user",
            "NowUTC has no REST twin",
            "is not an error kind",
            "SessionID: a parameter is a string, number or boolean",
        ] {
            assert!(text.contains(needle), "{needle} in {text}");
        }
        // Over SOAP alone, NowUTC is fine.
        assert!(!s
            .check(&[Protocol::Soap])
            .unwrap_err()
            .to_string()
            .contains("NowUTC"));
        assert!(Scenario::parse("[[step]]\nname = 1").is_err());
        assert!(Scenario::parse("unknown = 1").is_err());
    }
}
