//! The difference engine: a SOAP result (the contract's JSON form, as
//! `ecgridos call` prints it) against a REST result (the value at the
//! mapping's `result` pointer), field by field, after pairing names through
//! the mapping. Pure: no I/O.
//!
//! Each field is [`Class::Same`], [`Class::Renamed`] (same value under the
//! documented other name), [`Class::OnlySoap`], [`Class::OnlyRest`] or
//! [`Class::ValueDiffers`]; a step where one side failed, or both failed
//! differently, carries an [`ErrorKindDiff`]. Numbers compare by value (an
//! `int`, a `long` and a string of digits are equal when their values are),
//! dateTimes by instant, everything else as written (field names
//! case-insensitively only where the mapping says so).
//!
//! ```
//! use ecgridos::migrate::diff::compare;
//! use serde_json::json;
//!
//! let soap = Ok(json!({"UserID": 1002, "LoginName": "alice", "NetworkID": "1"}));
//! let rest = Ok(json!({"userId": 1002, "login": "alice", "networkId": 1}));
//! let step = compare("UserInfo", &soap, &rest);
//! assert!(step.is_same(), "{step:?}");
//! ```

use std::collections::HashSet;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::mapping::{Mapping, RestOperation};
use crate::error::ErrorKind;
use crate::wire::DateTime;

/// What a side answered: its result in JSON, or the kind of its error.
pub type Answer = std::result::Result<Value, ErrorKind>;

/// The text shown instead of a secret value.
pub const REDACTED: &str = crate::secret::REDACTED;

/// How one field compares.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "class", rename_all = "snake_case")]
pub enum Class {
    /// The same value under the same name (after camelCase).
    Same,
    /// The same value under the documented other name.
    Renamed {
        /// The SOAP name.
        soap: String,
        /// The REST name.
        rest: String,
    },
    /// Only the SOAP result has it.
    OnlySoap {
        /// The SOAP value (redacted when secret).
        soap: Value,
    },
    /// Only the REST result has it.
    OnlyRest {
        /// The REST value (redacted when secret).
        rest: Value,
    },
    /// Both have it, with different values.
    ValueDiffers {
        /// The SOAP value (redacted when secret).
        soap: Value,
        /// The REST value (redacted when secret).
        rest: Value,
    },
}

impl Class {
    /// The class name (`same`, `renamed`, `only_soap`, `only_rest`,
    /// `value_differs`).
    pub fn name(&self) -> &'static str {
        match self {
            Class::Same => "same",
            Class::Renamed { .. } => "renamed",
            Class::OnlySoap { .. } => "only_soap",
            Class::OnlyRest { .. } => "only_rest",
            Class::ValueDiffers { .. } => "value_differs",
        }
    }

    /// True for `Same` and `Renamed`.
    pub fn is_same(&self) -> bool {
        matches!(self, Class::Same | Class::Renamed { .. })
    }
}

/// One field of a step.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FieldDiff {
    /// The field's path in the SOAP result (`ParcelIDInfoList[0].ParcelID`;
    /// the REST name for a field only REST has; empty for the result
    /// itself).
    pub path: String,
    /// How it compares.
    #[serde(flatten)]
    pub class: Class,
    /// The vendor fact that documents this difference, when the mapping
    /// names one: a documented difference does not make a step differ.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub documented: Option<String>,
}

impl FieldDiff {
    /// True when the field is the same, renamed as documented, or differs
    /// in a documented way.
    pub fn is_accepted(&self) -> bool {
        self.class.is_same() || self.documented.is_some()
    }
}

/// One side failed, or both failed with different kinds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorKindDiff {
    /// The SOAP error kind (`None`: SOAP succeeded).
    pub soap: Option<String>,
    /// The REST error kind (`None`: REST succeeded).
    pub rest: Option<String>,
}

/// The comparison of one step.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StepDiff {
    /// The contract operation.
    pub operation: String,
    /// Set when the error kinds differ.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_kind_differs: Option<ErrorKindDiff>,
    /// The error kind both sides failed with, when they failed alike.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub both_failed: Option<String>,
    /// Every field, classified.
    pub fields: Vec<FieldDiff>,
}

impl StepDiff {
    /// True when nothing differs beyond documented renames and documented
    /// differences.
    pub fn is_same(&self) -> bool {
        self.error_kind_differs.is_none() && self.fields.iter().all(FieldDiff::is_accepted)
    }

    /// The fields that make the step differ.
    pub fn differences(&self) -> impl Iterator<Item = &FieldDiff> {
        self.fields.iter().filter(|f| !f.is_accepted())
    }

    /// One line per difference, for reports (values already redacted).
    pub fn describe(&self) -> Vec<String> {
        let mut lines = Vec::new();
        if let Some(e) = &self.error_kind_differs {
            let side = |k: &Option<String>| k.clone().unwrap_or_else(|| "success".to_string());
            lines.push(format!(
                "error kind differs: SOAP {}, REST {}",
                side(&e.soap),
                side(&e.rest)
            ));
        }
        for f in self.differences() {
            let path = if f.path.is_empty() {
                "(result)"
            } else {
                &f.path
            };
            lines.push(match &f.class {
                Class::OnlySoap { soap } => format!("{path}: only in SOAP ({soap})"),
                Class::OnlyRest { rest } => format!("{path}: only in REST ({rest})"),
                Class::ValueDiffers { soap, rest } => {
                    format!("{path}: value differs (SOAP {soap}, REST {rest})")
                }
                Class::Same | Class::Renamed { .. } => format!("{path}: same"),
            });
        }
        lines
    }
}

/// The name of an error kind in reports and recordings (`NotFound`, ...).
pub fn kind_name(kind: ErrorKind) -> String {
    kind.to_string()
}

/// The error kind named `name`: an [`ErrorKind`] name (`NotFound`) or a
/// service's own name of it (`ObjectNotFound`, `AccessDenied`,
/// `InvalidAPIKey`, `SystemError`, ...), case-insensitively.
pub fn parse_kind(name: &str) -> Option<ErrorKind> {
    let kinds = [
        ErrorKind::Authentication,
        ErrorKind::Authorization,
        ErrorKind::NotFound,
        ErrorKind::InvalidParameter,
        ErrorKind::ServiceError,
        ErrorKind::RateLimited,
        ErrorKind::OtherServiceError,
        ErrorKind::Transport,
        ErrorKind::Proxy,
        ErrorKind::Tls,
        ErrorKind::Timeout,
        ErrorKind::HttpStatus,
        ErrorKind::MalformedResponse,
        ErrorKind::LimitExceeded,
        ErrorKind::InvalidInput,
        ErrorKind::OutcomeUnknown,
    ];
    if let Some(kind) = kinds
        .into_iter()
        .find(|k| k.to_string().eq_ignore_ascii_case(name))
    {
        return Some(kind);
    }
    let aliases = [
        ("ObjectNotFound", ErrorKind::NotFound),
        ("AccessDenied", ErrorKind::Authorization),
        ("InvalidAPIKey", ErrorKind::Authentication),
        ("InvalidSession", ErrorKind::Authentication),
        ("SystemError", ErrorKind::ServiceError),
        ("InternalError", ErrorKind::ServiceError),
        ("RateLimitExceeded", ErrorKind::RateLimited),
    ];
    aliases
        .into_iter()
        .find(|(alias, _)| alias.eq_ignore_ascii_case(name))
        .map(|(_, kind)| kind)
}

/// Compares the answers of contract operation `op` over SOAP and REST,
/// with secret values redacted in the result.
pub fn compare(op: &str, soap: &Answer, rest: &Answer) -> StepDiff {
    compare_with(op, soap, rest, false)
}

/// [`compare`], with secret values shown when `show_secrets` (they are
/// compared either way).
pub fn compare_with(op: &str, soap: &Answer, rest: &Answer, show_secrets: bool) -> StepDiff {
    let options = CompareOptions {
        show_secrets,
        ..CompareOptions::default()
    };
    compare_with_options(op, soap, rest, &options)
}

/// What a comparison knows beyond the two answers.
#[derive(Clone, Debug, Default)]
pub struct CompareOptions {
    /// Show secret values in the result (they are compared either way).
    pub show_secrets: bool,
    /// Pairs of values that correspond although they differ: the SOAP and
    /// REST answers of an earlier step whose result differs by nature (a
    /// new key, a session). A field holding such a pair is the same: the
    /// key read back after a rotation is the key that rotation made, on
    /// each side.
    pub corresponding: Vec<(Value, Value)>,
}

/// [`compare`] with `options`.
pub fn compare_with_options(
    op: &str,
    soap: &Answer,
    rest: &Answer,
    options: &CompareOptions,
) -> StepDiff {
    let show_secrets = options.show_secrets;
    let mapping = Mapping::get().ok();
    let rest_op = mapping.and_then(|m| m.operation(op));
    let mut step = StepDiff {
        operation: op.to_string(),
        error_kind_differs: None,
        both_failed: None,
        fields: Vec::new(),
    };
    match (soap, rest) {
        (Ok(soap), Ok(rest)) => {
            let ctx = Ctx {
                mapping,
                op: rest_op,
                secrets: secret_names(mapping, op),
                show_secrets,
                corresponding: &options.corresponding,
            };
            ctx.top(soap, rest, &mut step.fields);
        }
        (Err(a), Err(b)) if a == b => step.both_failed = Some(kind_name(*a)),
        (soap, rest) => {
            step.error_kind_differs = Some(ErrorKindDiff {
                soap: soap.as_ref().err().map(|k| kind_name(*k)),
                rest: rest.as_ref().err().map(|k| kind_name(*k)),
            })
        }
    }
    step
}

/// The names whose values are credentials: the contract's secret fields
/// (with their REST names), the mapping's secret REST fields, and the
/// result itself when the operation's result is secret (`""`).
fn secret_names(mapping: Option<&Mapping>, op: &str) -> HashSet<String> {
    let mut names: HashSet<String> = crate::api::TYPES
        .iter()
        .flat_map(|t| t.fields.iter())
        .filter(|f| f.secret)
        .flat_map(|f| [f.name.to_string(), super::mapping::camel_case(f.name)])
        .collect();
    if let Some(m) = mapping {
        names.extend(m.secret_rest_fields.iter().cloned());
    }
    let result_secret = crate::api::request::find(op).is_some_and(|e| e.info.result.secret);
    if result_secret {
        names.insert(String::new());
    }
    names
}

/// True when field `name` of operation `op`'s result holds a credential
/// (`""`: the result itself).
pub fn is_secret(op: &str, name: &str) -> bool {
    secret_names(Mapping::get().ok(), op).contains(name)
}

/// `value`, an answer of `op` over either protocol, with every credential
/// in it replaced by [`REDACTED`].
///
/// ```
/// use ecgridos::migrate::diff::{redact, REDACTED};
/// use serde_json::json;
/// assert_eq!(redact("UserGetAPIKey", &json!("k-1")), json!(REDACTED));
/// let info = redact("WhoAmI", &json!({"SessionID": "s-1", "UserID": 7}));
/// assert_eq!(info, json!({"SessionID": REDACTED, "UserID": 7}));
/// ```
pub fn redact(op: &str, value: &Value) -> Value {
    fn walk(secrets: &HashSet<String>, value: &Value) -> Value {
        match value {
            Value::Object(map) => Value::Object(
                map.iter()
                    .map(|(k, v)| {
                        let v = if secrets.contains(k) && !v.is_null() {
                            Value::String(REDACTED.to_string())
                        } else {
                            walk(secrets, v)
                        };
                        (k.clone(), v)
                    })
                    .collect(),
            ),
            Value::Array(items) => Value::Array(items.iter().map(|v| walk(secrets, v)).collect()),
            other => other.clone(),
        }
    }
    let secrets = secret_names(Mapping::get().ok(), op);
    if secrets.contains("") && !value.is_null() {
        return Value::String(REDACTED.to_string());
    }
    walk(&secrets, value)
}

/// Strings longer than this are shortened in reports (parcel contents).
pub const SHOWN_CHARS: usize = 256;

/// `value` for a report: every string longer than [`SHOWN_CHARS`] cut to
/// its first 64 characters and its length (`"SVNB…(143360 chars)"`); the
/// comparison itself always sees the whole value.
pub fn abbreviate(value: &Value) -> Value {
    match value {
        Value::String(s) if s.chars().count() > SHOWN_CHARS => {
            let head: String = s.chars().take(64).collect();
            Value::String(format!("{head}…({} chars)", s.chars().count()))
        }
        Value::Array(items) => Value::Array(items.iter().map(abbreviate).collect()),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), abbreviate(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}

struct Ctx<'a> {
    mapping: Option<&'a Mapping>,
    op: Option<&'a RestOperation>,
    secrets: HashSet<String>,
    show_secrets: bool,
    corresponding: &'a [(Value, Value)],
}

impl Ctx<'_> {
    fn top(&self, soap: &Value, rest: &Value, out: &mut Vec<FieldDiff>) {
        let list = self.op.and_then(|o| o.result_list.as_deref());
        match (list, soap) {
            // A paged SOAP collection against a plain REST list: the list
            // compares with the list, the paging fields only SOAP has.
            (Some(list), Value::Object(fields)) if rest.is_array() => {
                for (name, value) in fields {
                    if name == list {
                        self.value(name, name, "", value, rest, false, out);
                    } else if !value.is_null() {
                        self.push(
                            out,
                            name,
                            name,
                            Class::OnlySoap {
                                soap: value.clone(),
                            },
                        );
                    }
                }
            }
            _ => self.value("", "", "", soap, rest, false, out),
        }
    }

    fn documented(&self, name: &str) -> Option<String> {
        self.op.and_then(|o| o.documented.get(name).cloned())
    }

    fn volatile(&self, name: &str) -> bool {
        if name.is_empty() {
            return self.op.is_some_and(|o| o.volatile_result);
        }
        self.mapping.is_some_and(|m| m.is_volatile(name))
    }

    fn shown(&self, name: &str, value: &Value) -> Value {
        if !self.show_secrets && !value.is_null() && self.secrets.contains(name) {
            Value::String(REDACTED.to_string())
        } else {
            abbreviate(value)
        }
    }

    fn push(&self, out: &mut Vec<FieldDiff>, path: &str, name: &str, class: Class) {
        let class = match class {
            Class::OnlySoap { soap } => Class::OnlySoap {
                soap: self.shown(name, &soap),
            },
            Class::OnlyRest { rest } => Class::OnlyRest {
                rest: self.shown(name, &rest),
            },
            Class::ValueDiffers { soap, rest } => Class::ValueDiffers {
                soap: self.shown(name, &soap),
                rest: self.shown(name, &rest),
            },
            other => other,
        };
        let documented = if class.is_same() {
            None
        } else {
            self.documented(name)
        };
        out.push(FieldDiff {
            path: path.to_string(),
            class,
            documented,
        });
    }

    /// Compares one value: `name` is its SOAP field name, `rest_name` its
    /// REST one (they differ when `renamed`).
    #[allow(clippy::too_many_arguments)]
    fn value(
        &self,
        path: &str,
        name: &str,
        rest_name: &str,
        soap: &Value,
        rest: &Value,
        renamed: bool,
        out: &mut Vec<FieldDiff>,
    ) {
        let same = || {
            if renamed {
                Class::Renamed {
                    soap: name.to_string(),
                    rest: rest_name.to_string(),
                }
            } else {
                Class::Same
            }
        };
        match (soap, rest) {
            (Value::Object(s), Value::Object(r)) => self.object(path, s, r, out),
            (Value::Array(s), Value::Array(r)) => {
                for i in 0..s.len().max(r.len()) {
                    let item = format!("{path}[{i}]");
                    match (s.get(i), r.get(i)) {
                        (Some(a), Some(b)) => self.value(&item, name, rest_name, a, b, false, out),
                        (Some(a), None) => {
                            self.push(out, &item, name, Class::OnlySoap { soap: a.clone() })
                        }
                        (None, Some(b)) => {
                            self.push(out, &item, name, Class::OnlyRest { rest: b.clone() })
                        }
                        (None, None) => {}
                    }
                }
            }
            _ if self.volatile(name) && !soap.is_null() && !rest.is_null() => {
                self.push(out, path, name, same())
            }
            _ if self
                .corresponding
                .iter()
                .any(|(s, r)| s == soap && r == rest) =>
            {
                self.push(out, path, name, same())
            }
            _ if scalars_equal(soap, rest, self.op.is_some_and(|o| o.case_insensitive)) => {
                self.push(out, path, name, same())
            }
            _ => self.push(
                out,
                path,
                name,
                Class::ValueDiffers {
                    soap: soap.clone(),
                    rest: rest.clone(),
                },
            ),
        }
    }

    fn object(
        &self,
        path: &str,
        soap: &serde_json::Map<String, Value>,
        rest: &serde_json::Map<String, Value>,
        out: &mut Vec<FieldDiff>,
    ) {
        let join = |name: &str| {
            if path.is_empty() {
                name.to_string()
            } else {
                format!("{path}.{name}")
            }
        };
        let insensitive = self.op.is_some_and(|o| o.case_insensitive);
        let mut used: HashSet<&str> = HashSet::new();
        for (name, value) in soap {
            let (rest_name, documented_rename) = match (self.op, self.mapping) {
                (Some(op), Some(m)) => op.rest_field(m, name),
                _ => (super::mapping::camel_case(name), false),
            };
            let found = rest
                .get_key_value(rest_name.as_str())
                .map(|(k, v)| (k.as_str(), v, documented_rename))
                .or_else(|| {
                    rest.get_key_value(name.as_str())
                        .map(|(k, v)| (k.as_str(), v, false))
                })
                .or_else(|| {
                    insensitive
                        .then(|| {
                            rest.iter()
                                .find(|(k, _)| k.eq_ignore_ascii_case(&rest_name))
                                .map(|(k, v)| (k.as_str(), v, true))
                        })
                        .flatten()
                });
            match found {
                Some((key, rest_value, renamed)) => {
                    used.insert(key);
                    let renamed = renamed && key != name;
                    self.value(&join(name), name, key, value, rest_value, renamed, out);
                }
                // An absent optional SOAP field (null) is not a difference.
                None if value.is_null() => {}
                None => self.push(
                    out,
                    &join(name),
                    name,
                    Class::OnlySoap {
                        soap: value.clone(),
                    },
                ),
            }
        }
        for (key, value) in rest {
            if !used.contains(key.as_str()) && !value.is_null() {
                self.push(
                    out,
                    &join(key),
                    key,
                    Class::OnlyRest {
                        rest: value.clone(),
                    },
                );
            }
        }
    }
}

/// Two scalars compared as the mapping says: numbers by value (digits in a
/// string count), booleans against `true`/`false`/`1`/`0`, dateTimes by
/// instant, strings as written (ignoring ASCII case when `insensitive`).
pub(crate) fn scalars_equal(a: &Value, b: &Value, insensitive: bool) -> bool {
    if a == b {
        return true;
    }
    if let (Some(x), Some(y)) = (number(a), number(b)) {
        return x == y;
    }
    if let (Some(x), Some(y)) = (boolean(a), boolean(b)) {
        return x == y;
    }
    match (a, b) {
        (Value::String(x), Value::String(y)) => {
            if let (Some(p), Some(q)) = (instant(x), instant(y)) {
                return p == q;
            }
            insensitive && x.eq_ignore_ascii_case(y)
        }
        _ => false,
    }
}

/// A number, or a string holding one, as a comparable value.
fn number(v: &Value) -> Option<Numeric> {
    match v {
        Value::Number(n) => n
            .as_i64()
            .map(|i| Numeric::Int(i128::from(i)))
            .or_else(|| n.as_u64().map(|u| Numeric::Int(i128::from(u))))
            .or_else(|| n.as_f64().map(Numeric::Float)),
        Value::String(s) => {
            let t = s.trim();
            if t.is_empty() {
                return None;
            }
            t.parse::<i128>().map(Numeric::Int).ok().or_else(|| {
                let digits = t.trim_start_matches(['-', '+']);
                let numeric = digits.chars().all(|c| c.is_ascii_digit() || c == '.')
                    && digits.chars().any(|c| c.is_ascii_digit());
                numeric
                    .then(|| t.parse::<f64>().ok().map(Numeric::Float))
                    .flatten()
            })
        }
        _ => None,
    }
}

#[derive(Clone, Copy, Debug)]
enum Numeric {
    Int(i128),
    Float(f64),
}

impl PartialEq for Numeric {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Numeric::Int(a), Numeric::Int(b)) => a == b,
            (Numeric::Int(a), Numeric::Float(b)) | (Numeric::Float(b), Numeric::Int(a)) => {
                *a as f64 == *b
            }
            (Numeric::Float(a), Numeric::Float(b)) => a == b,
        }
    }
}

fn boolean(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::String(s) => match s.trim() {
            "true" | "True" => Some(true),
            "false" | "False" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

/// A dateTime as 100 ns ticks since 0001-01-01 UTC; one with no offset is
/// read as UTC (the service writes UTC).
fn instant(text: &str) -> Option<i128> {
    let t: DateTime = text.trim().parse().ok()?;
    let seconds = t.unix_seconds();
    Some(i128::from(seconds) * 10_000_000 + i128::from(t.ticks()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn classes(step: &StepDiff) -> Vec<(String, &'static str)> {
        step.fields
            .iter()
            .map(|f| (f.path.clone(), f.class.name()))
            .collect()
    }

    #[test]
    fn numbers_by_value_datetimes_by_instant() {
        assert!(scalars_equal(&json!(5), &json!("5"), false));
        assert!(scalars_equal(
            &json!(5_000_000_000_i64),
            &json!("5000000000"),
            false
        ));
        assert!(scalars_equal(&json!(1.5), &json!("1.5"), false));
        assert!(!scalars_equal(&json!(5), &json!("05x"), false));
        assert!(scalars_equal(&json!(true), &json!("true"), false));
        assert!(scalars_equal(
            &json!("2026-11-23T12:00:00Z"),
            &json!("2026-11-23T13:30:00.000+01:30"),
            false
        ));
        assert!(!scalars_equal(
            &json!("2026-11-23T12:00:00Z"),
            &json!("2026-11-23T12:00:01Z"),
            false
        ));
        assert!(!scalars_equal(
            &json!("InBoxReady"),
            &json!("inboxready"),
            false
        ));
        assert!(scalars_equal(
            &json!("InBoxReady"),
            &json!("inboxready"),
            true
        ));
    }

    #[test]
    fn classifies_every_field() {
        let soap = json!({
            "UserID": 1002,
            "LoginName": "alice",
            "NetworkID": 1,
            "MailboxID": 101,
            "Company": "X",
            "FirstName": "alice",
            "AuthLevel": "MailboxUser"
        });
        let rest = json!({
            "userId": "1002",
            "login": "alice",
            "networkId": 2,
            "mailboxId": 101,
            "firstName": "alice",
            "authLevel": "MailboxUser",
            "status": "Active"
        });
        let step = compare("UserInfo", &Ok(soap), &Ok(rest));
        let c = classes(&step);
        assert!(c.contains(&("UserID".into(), "same")), "{c:?}");
        assert!(c.contains(&("LoginName".into(), "renamed")), "{c:?}");
        assert!(c.contains(&("NetworkID".into(), "value_differs")), "{c:?}");
        assert!(c.contains(&("Company".into(), "only_soap")), "{c:?}");
        assert!(c.contains(&("status".into(), "only_rest")), "{c:?}");
        // Company is documented as absent from REST; networkId and status are not.
        let documented: Vec<&str> = step
            .fields
            .iter()
            .filter(|f| f.documented.is_some())
            .map(|f| f.path.as_str())
            .collect();
        assert_eq!(documented, ["Company"]);
        assert!(!step.is_same());
        assert_eq!(step.differences().count(), 2);
        let text = step.describe().join("\n");
        assert!(
            text.contains("NetworkID: value differs (SOAP 1, REST 2)"),
            "{text}"
        );
    }

    #[test]
    fn error_kinds() {
        let ok = Ok(json!("x"));
        let nf = Err(ErrorKind::NotFound);
        let step = compare("UserGetAPIKey", &nf, &Err(ErrorKind::NotFound));
        assert!(step.is_same());
        assert_eq!(step.both_failed.as_deref(), Some("NotFound"));
        let step = compare("UserGetAPIKey", &nf, &Err(ErrorKind::Authorization));
        assert!(!step.is_same());
        let step = compare("UserGetAPIKey", &ok, &nf);
        let e = step.error_kind_differs.clone().unwrap();
        assert_eq!((e.soap, e.rest.as_deref()), (None, Some("NotFound")));
        assert_eq!(parse_kind("ObjectNotFound"), Some(ErrorKind::NotFound));
        assert_eq!(parse_kind("notfound"), Some(ErrorKind::NotFound));
        assert_eq!(parse_kind("AccessDenied"), Some(ErrorKind::Authorization));
        assert_eq!(parse_kind("Nope"), None);
        assert_eq!(
            parse_kind(&kind_name(ErrorKind::OutcomeUnknown)),
            Some(ErrorKind::OutcomeUnknown)
        );
    }

    #[test]
    fn secrets_are_compared_but_redacted() {
        let step = compare("UserGetAPIKey", &Ok(json!("key-a")), &Ok(json!("key-b")));
        assert!(!step.is_same());
        let json = serde_json::to_string(&step).unwrap();
        assert!(!json.contains("key-a") && !json.contains("key-b"), "{json}");
        assert!(json.contains(REDACTED));
        let shown = compare_with(
            "UserGetAPIKey",
            &Ok(json!("key-a")),
            &Ok(json!("key-b")),
            true,
        );
        assert!(serde_json::to_string(&shown).unwrap().contains("key-a"));
        // Volatile: a rotation's new keys differ by nature.
        assert!(compare("GenerateAPIKey", &Ok(json!("k1")), &Ok(json!("k2"))).is_same());
        // SessionInfo's SessionID is secret and volatile.
        let step = compare(
            "WhoAmI",
            &Ok(json!({"SessionID": "s-1", "UserID": 1})),
            &Ok(json!({"userId": 1, "token": "t-1"})),
        );
        let json = serde_json::to_string(&step).unwrap();
        assert!(!json.contains("s-1") && !json.contains("t-1"), "{json}");
    }

    #[test]
    fn case_insensitive_names_only_where_the_mapping_says() {
        let text = r#"{"about": "", "operations": [
            {"operation": "ParcelInfo", "rest": "GET /v2/parcels/{id}",
             "params": {"ParcelID": "path:id"}, "case_insensitive": true}]}"#;
        let mapping = Mapping::parse(text).unwrap();
        let (soap, rest) = (json!({"ParcelID": 7}), json!({"parcelID": 7}));
        let mut fields = Vec::new();
        let ctx = |op| Ctx {
            mapping: Some(&mapping),
            op,
            secrets: HashSet::new(),
            show_secrets: false,
            corresponding: &[],
        };
        ctx(mapping.operation("ParcelInfo")).top(&soap, &rest, &mut fields);
        assert_eq!(fields[0].class.name(), "renamed", "{fields:?}");
        // The real mapping does not say so for ParcelInfo: a different name.
        let step = compare("ParcelInfo", &Ok(soap), &Ok(rest));
        let c = classes(&step);
        assert!(c.contains(&("ParcelID".into(), "only_soap")), "{c:?}");
        assert!(c.contains(&("parcelID".into(), "only_rest")), "{c:?}");
    }

    #[test]
    fn long_values_are_shortened_in_reports_only() {
        let long = "A".repeat(1000);
        let step = compare(
            "ParcelDownload",
            &Ok(json!({"Content": long.clone()})),
            &Ok(json!({"content": format!("{long}B")})),
        );
        let Class::ValueDiffers { soap, rest } = &step.fields[0].class else {
            panic!("{step:?}");
        };
        assert_eq!(soap, &json!(format!("{}…(1000 chars)", "A".repeat(64))));
        assert_eq!(rest, &json!(format!("{}…(1001 chars)", "A".repeat(64))));
        assert_eq!(abbreviate(&json!(["short"])), json!(["short"]));
    }

    #[test]
    fn corresponding_values_are_the_same() {
        let options = CompareOptions {
            show_secrets: false,
            corresponding: vec![(json!("soap-key"), json!("rest-key"))],
        };
        let (a, b) = (Ok(json!("soap-key")), Ok(json!("rest-key")));
        assert!(compare_with_options("UserGetAPIKey", &a, &b, &options).is_same());
        assert!(!compare("UserGetAPIKey", &a, &b).is_same());
        let c = Ok(json!("other"));
        assert!(!compare_with_options("UserGetAPIKey", &a, &c, &options).is_same());
    }

    #[test]
    fn paged_collections_against_plain_lists() {
        let soap = json!({
            "PageSize": 25, "PageNumber": 1, "Count": 1, "TotalRecords": 1, "TotalPages": 1,
            "ParcelIDInfoList": [{"ParcelID": 7, "FileName": "a.edi"}]
        });
        let rest = json!([{"parcelId": 7, "fileName": "a.edi"}]);
        let step = compare("ParcelInBox", &Ok(soap), &Ok(rest));
        let c = classes(&step);
        assert!(
            c.contains(&("ParcelIDInfoList[0].ParcelID".into(), "same")),
            "{c:?}"
        );
        assert!(
            c.contains(&("ParcelIDInfoList[0].FileName".into(), "same")),
            "{c:?}"
        );
        assert!(c.contains(&("PageSize".into(), "only_soap")), "{c:?}");
        let soap = json!({"ParcelIDInfoList": [{"ParcelID": 7}, {"ParcelID": 8}]});
        let step = compare("ParcelInBox", &Ok(soap), &Ok(json!([{"parcelId": 7}])));
        assert!(classes(&step).contains(&("ParcelIDInfoList[1]".into(), "only_soap")));
    }

    #[test]
    fn serialises_with_class_tags() {
        let step = compare("Version", &Ok(json!("4.1")), &Ok(json!("2.6")));
        // Documented: each API reports its own version.
        assert!(step.is_same());
        let json = serde_json::to_value(&step).unwrap();
        assert_eq!(json["fields"][0]["class"], "value_differs");
        assert!(json["fields"][0]["documented"].is_string());
        let back: StepDiff = serde_json::from_value(json).unwrap();
        assert_eq!(back, step);
    }
}
