//! The SOAP <-> REST mapping, as data: `contract/rest-mapping.json`, beside
//! the contract. For each operation with a REST v2 twin it says which
//! method and path to call, where each contract parameter goes (the
//! credential header, a path segment, the query, a JSON body field), where
//! the result sits in the envelope's `data`, and which result fields carry
//! another name over REST. Everything not named there maps by camelCase
//! ([`camel_case`]).
//!
//! This module is pure data and lookups (no I/O): the REST client reads it
//! to build a request ([`RestOperation::request`]) the way the SOAP client
//! reads the generated operation table, and the difference engine reads it
//! to pair result fields.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde::Deserialize;
use serde_json::{Map, Number, Value};

use crate::api::{OperationInfo, Params};
use crate::error::{Error, Result};

/// The mapping file, embedded at build time.
pub const MAPPING_JSON: &str = include_str!("../contract/rest-mapping.json");

/// The whole mapping.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mapping {
    /// What the file is.
    pub about: String,
    /// Result fields whose REST name is not their camelCase name (SOAP name
    /// to REST name), for every operation.
    #[serde(default)]
    pub fields: BTreeMap<String, String>,
    /// Result fields whose value legitimately differs between two runs
    /// (session IDs, timestamps of creation): compared by presence only.
    #[serde(default)]
    pub volatile: Vec<String>,
    /// REST result fields that hold credentials (beside the contract's
    /// secret fields): redacted in reports.
    #[serde(default)]
    pub secret_rest_fields: Vec<String>,
    /// One entry per operation with a REST twin.
    pub operations: Vec<RestOperation>,
}

/// How one contract operation is called over REST.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestOperation {
    /// The contract operation name.
    pub operation: String,
    /// `METHOD /path/{hole}`.
    pub rest: String,
    /// True when the match is ours (the contract's `rest_inferred`), not the
    /// vendor's.
    #[serde(default)]
    pub inferred: bool,
    /// Where each contract parameter goes: `auth`, `path:NAME`,
    /// `query:NAME`, `body:NAME` or `none`.
    pub params: BTreeMap<String, String>,
    /// JSON pointer to the result inside `data` (empty: `data` itself).
    #[serde(default)]
    pub result: String,
    /// The SOAP result field that holds the list REST returns as `data`
    /// (a paged SOAP collection against a plain REST array).
    #[serde(default)]
    pub result_list: Option<String>,
    /// Result field renames of this operation (SOAP name to REST name).
    #[serde(default)]
    pub fields: BTreeMap<String, String>,
    /// Documented differences: a SOAP result field (`""` for the result
    /// itself) and the vendor fact that explains it.
    #[serde(default)]
    pub documented: BTreeMap<String, String>,
    /// The whole result differs between runs (a new key, a new session).
    #[serde(default)]
    pub volatile_result: bool,
    /// Field names may differ in case only (the vendor's pages spell
    /// `parcelID` and `parcelId`).
    #[serde(default)]
    pub case_insensitive: bool,
}

/// Where a contract parameter goes in a REST request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Placement<'a> {
    /// The credential header (`X-API-Key` or `Authorization: Bearer`).
    Auth,
    /// The `{NAME}` segment of the path.
    Path(&'a str),
    /// A query parameter.
    Query(&'a str),
    /// A field of the JSON body.
    Body(&'a str),
    /// Not sent: REST has no counterpart.
    None,
}

impl<'a> Placement<'a> {
    /// Parses `auth`, `path:NAME`, `query:NAME`, `body:NAME`, `none`.
    pub fn parse(text: &'a str) -> Option<Placement<'a>> {
        match text.split_once(':') {
            None if text == "auth" => Some(Placement::Auth),
            None if text == "none" => Some(Placement::None),
            Some(("path", n)) if !n.is_empty() => Some(Placement::Path(n)),
            Some(("query", n)) if !n.is_empty() => Some(Placement::Query(n)),
            Some(("body", n)) if !n.is_empty() => Some(Placement::Body(n)),
            _ => None,
        }
    }
}

/// A REST request built from contract parameters, before any I/O.
#[derive(Clone, PartialEq)]
pub struct RestRequest {
    /// The HTTP method.
    pub method: &'static str,
    /// The path segments (`["v2", "users", "key", "42"]`), not yet encoded.
    pub segments: Vec<String>,
    /// Query parameters.
    pub query: Vec<(String, String)>,
    /// The JSON body, when the method carries one.
    pub body: Option<Value>,
    /// The values of secret parameters, to keep out of errors.
    pub secrets: Vec<String>,
}

impl std::fmt::Debug for RestRequest {
    // The body and query may hold a password: names only.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RestRequest")
            .field("method", &self.method)
            .field("segments", &self.segments.len())
            .field(
                "query",
                &self.query.iter().map(|(n, _)| n).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

static MAPPING: OnceLock<std::result::Result<Mapping, String>> = OnceLock::new();

impl Mapping {
    /// The embedded mapping, parsed once.
    pub fn get() -> Result<&'static Mapping> {
        MAPPING
            .get_or_init(|| Mapping::parse(MAPPING_JSON))
            .as_ref()
            .map_err(|e| Error::invalid_input("contract/rest-mapping.json", e.clone()))
    }

    /// Parses a mapping document and checks every placement is readable.
    pub fn parse(text: &str) -> std::result::Result<Mapping, String> {
        let mapping: Mapping = serde_json::from_str(text).map_err(|e| e.to_string())?;
        for op in &mapping.operations {
            op.method()
                .ok_or_else(|| format!("{}: bad method in {:?}", op.operation, op.rest))?;
            for (param, place) in &op.params {
                Placement::parse(place)
                    .ok_or_else(|| format!("{}: {param}: bad placement {place:?}", op.operation))?;
            }
        }
        Ok(mapping)
    }

    /// The REST twin of contract operation `name`.
    pub fn operation(&self, name: &str) -> Option<&RestOperation> {
        self.operations.iter().find(|o| o.operation == name)
    }

    /// True when SOAP field `name` is volatile.
    pub fn is_volatile(&self, name: &str) -> bool {
        self.volatile.iter().any(|v| v == name)
    }
}

impl RestOperation {
    /// The HTTP method, when it is one REST uses.
    pub fn method(&self) -> Option<&'static str> {
        let method = self.rest.split_whitespace().next()?;
        ["GET", "POST", "PUT", "DELETE", "PATCH"]
            .into_iter()
            .find(|m| *m == method)
    }

    /// The path template (`/v2/users/key/{id}`).
    pub fn path(&self) -> &str {
        self.rest
            .split_once(' ')
            .map_or("", |(_, path)| path.trim())
    }

    /// Where contract parameter `name` goes; `None` when the mapping does
    /// not name it.
    pub fn placement(&self, name: &str) -> Option<Placement<'_>> {
        self.params.get(name).and_then(|p| Placement::parse(p))
    }

    /// The REST name of SOAP result field `soap`, and whether that name is
    /// a documented rename (rather than its camelCase form).
    pub fn rest_field(&self, mapping: &Mapping, soap: &str) -> (String, bool) {
        let camel = camel_case(soap);
        let renamed = self
            .fields
            .get(soap)
            .or_else(|| mapping.fields.get(soap))
            .filter(|r| **r != camel);
        match renamed {
            Some(r) => (r.clone(), true),
            None => (camel, false),
        }
    }

    /// The request for `params` (contract names, text values): path
    /// segments filled, query and JSON body built, values typed by the
    /// contract. Refuses a parameter the contract does not declare, one the
    /// mapping does not place, and a missing path value, before any I/O.
    pub fn request(&self, info: &OperationInfo, params: &Params) -> Result<RestRequest> {
        params.check_names(info.params)?;
        let method = self
            .method()
            .ok_or_else(|| Error::invalid_input(info.name, "the REST mapping has no method"))?;
        let mut holes: BTreeMap<&str, String> = BTreeMap::new();
        let mut query = Vec::new();
        let mut body = Map::new();
        let mut secrets = Vec::new();
        for name in params.names() {
            let Some(spec) = info.params.iter().find(|p| p.name == name) else {
                continue;
            };
            let value = params.get(name).unwrap_or_default();
            if spec.secret && !value.is_empty() {
                secrets.push(value.to_string());
            }
            let place = self.placement(name).ok_or_else(|| {
                Error::invalid_input(
                    name.to_string(),
                    format!("the REST mapping of {} does not place it", info.name),
                )
            })?;
            match place {
                Placement::Auth | Placement::None => {}
                Placement::Path(hole) => {
                    holes.insert(hole, value.to_string());
                }
                Placement::Query(q) => query.push((q.to_string(), value.to_string())),
                Placement::Body(field) => {
                    body.insert(field.to_string(), typed(spec.xsd_type, value));
                }
            }
        }
        let mut segments = Vec::new();
        for segment in self.path().split('/').filter(|s| !s.is_empty()) {
            match segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                Some(hole) => {
                    let value = holes.get(hole).filter(|v| !v.trim().is_empty());
                    let param = self
                        .params
                        .iter()
                        .find(|(_, p)| Placement::parse(p) == Some(Placement::Path(hole)))
                        .map_or(hole, |(n, _)| n.as_str());
                    let value = value.ok_or_else(|| {
                        Error::invalid_input(
                            param.to_string(),
                            format!("missing (the REST path of {} needs it)", info.name),
                        )
                    })?;
                    segments.push(value.trim().to_string());
                }
                None => segments.push(segment.to_string()),
            }
        }
        let body = match method {
            "GET" => None,
            _ if body.is_empty() && method == "DELETE" => None,
            _ => Some(Value::Object(body)),
        };
        Ok(RestRequest {
            method,
            segments,
            query,
            body,
            secrets,
        })
    }
}

/// A text parameter as the JSON value REST expects for its contract type:
/// numbers and booleans as such, everything else (strings, enumerations,
/// dateTimes, base64) as a string. Text that does not fit stays a string.
fn typed(xsd_type: &str, text: &str) -> Value {
    match xsd_type {
        "s:int" | "s:short" | "s:long" | "s:unsignedByte" => text
            .trim()
            .parse::<i64>()
            .map_or_else(|_| Value::String(text.to_string()), Value::from),
        "s:float" | "s:double" | "s:decimal" => text
            .trim()
            .parse::<f64>()
            .ok()
            .and_then(Number::from_f64)
            .map_or_else(|| Value::String(text.to_string()), Value::Number),
        "s:boolean" => match text.trim() {
            "true" | "1" => Value::Bool(true),
            "false" | "0" => Value::Bool(false),
            _ => Value::String(text.to_string()),
        },
        _ => Value::String(text.to_string()),
    }
}

/// The camelCase form of a contract name, with acronyms as words:
/// `ECGridIDFrom` -> `ecGridIdFrom`, `ParcelID` -> `parcelId`,
/// `X400Format` -> `x400Format`.
///
/// ```
/// use ecgridos::rest_mapping::camel_case;
/// assert_eq!(camel_case("ECGridIDFrom"), "ecGridIdFrom");
/// assert_eq!(camel_case("UserID"), "userId");
/// assert_eq!(camel_case("ip"), "ip");
/// ```
pub fn camel_case(name: &str) -> String {
    let chars: Vec<char> = name.chars().collect();
    let mut words: Vec<String> = Vec::new();
    let mut current = String::new();
    for (i, &c) in chars.iter().enumerate() {
        let prev = i.checked_sub(1).map(|p| chars[p]);
        let next = chars.get(i + 1).copied();
        let boundary = c.is_uppercase()
            && match prev {
                None => false,
                Some(p) if p.is_lowercase() || p.is_ascii_digit() => true,
                Some(p) if p.is_uppercase() => next.is_some_and(char::is_lowercase),
                Some(_) => false,
            };
        if boundary && !current.is_empty() {
            words.push(std::mem::take(&mut current));
        }
        if c != '_' {
            current.push(c);
        }
    }
    if !current.is_empty() {
        words.push(current);
    }
    let mut out = String::with_capacity(name.len());
    for (i, word) in words.iter().enumerate() {
        let lower = word.to_lowercase();
        if i == 0 {
            out.push_str(&lower);
        } else {
            let mut cs = lower.chars();
            if let Some(first) = cs.next() {
                out.extend(first.to_uppercase());
                out.push_str(cs.as_str());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::request::find;

    #[test]
    fn camel_case_of_contract_names() {
        for (soap, rest) in [
            ("ECGridIDFrom", "ecGridIdFrom"),
            ("ParcelID", "parcelId"),
            ("ParcelIDInfoList", "parcelIdInfoList"),
            ("EMail", "eMail"),
            ("HTTPUser", "httpUser"),
            ("X400Format", "x400Format"),
            ("ECGridID1", "ecGridId1"),
            ("routerArchive", "routerArchive"),
            ("ip", "ip"),
        ] {
            assert_eq!(camel_case(soap), rest, "{soap}");
        }
    }

    /// Every entry names a contract operation and only its parameters, places
    /// every one of them, and fills each path hole from one of them.
    #[test]
    fn every_entry_names_real_operations_and_parameters() {
        let mapping = Mapping::get().unwrap();
        assert!(
            mapping.operations.len() >= 160,
            "{}",
            mapping.operations.len()
        );
        let mut seen = std::collections::HashSet::new();
        for op in &mapping.operations {
            assert!(seen.insert(&op.operation), "{} twice", op.operation);
            let entry = find(&op.operation)
                .unwrap_or_else(|| panic!("{} is not a contract operation", op.operation));
            for name in op.params.keys() {
                assert!(
                    entry.info.params.iter().any(|p| p.name == name),
                    "{}: no parameter {name}",
                    op.operation
                );
            }
            for p in entry.info.params {
                assert!(
                    op.placement(p.name).is_some(),
                    "{}: {} unplaced",
                    op.operation,
                    p.name
                );
            }
            for hole in op.path().split('/').filter(|s| s.starts_with('{')) {
                let hole = hole.trim_matches(|c| c == '{' || c == '}');
                assert!(
                    op.params.values().any(|p| *p == format!("path:{hole}")),
                    "{}: nothing fills {{{hole}}}",
                    op.operation
                );
            }
        }
    }

    /// The mapping covers exactly the contract's operations that name a REST
    /// twin (`rest` or `rest_inferred`).
    #[test]
    fn covers_the_contract_twins() {
        let contract: Value =
            serde_json::from_str(include_str!("../contract/ecgridos-v4.1-contract.json")).unwrap();
        let mapping = Mapping::get().unwrap();
        for op in contract["operations"].as_array().unwrap() {
            let name = op["name"].as_str().unwrap();
            let twin = op
                .get("rest")
                .or_else(|| op.get("rest_inferred"))
                .and_then(Value::as_str);
            match (twin, mapping.operation(name)) {
                (Some(rest), Some(m)) => {
                    assert_eq!(m.rest, rest, "{name}");
                    assert_eq!(m.inferred, op.get("rest").is_none(), "{name}");
                }
                (None, None) => {}
                (twin, m) => panic!("{name}: contract {twin:?}, mapping {:?}", m.is_some()),
            }
        }
    }

    /// Renamed, volatile and documented fields name fields that exist: a
    /// contract field (SOAP side) or a camelCase REST name.
    #[test]
    fn result_field_names_exist() {
        let mapping = Mapping::get().unwrap();
        let contract: std::collections::HashSet<&str> = crate::api::TYPES
            .iter()
            .flat_map(|t| t.fields.iter().map(|f| f.name))
            .collect();
        let is_rest = |n: &str| n.chars().next().is_some_and(char::is_lowercase);
        let known = |n: &str| n.is_empty() || contract.contains(n) || is_rest(n);
        for name in mapping.fields.keys().chain(&mapping.volatile) {
            assert!(known(name), "{name}");
        }
        for op in &mapping.operations {
            for name in op.fields.keys().chain(op.documented.keys()) {
                assert!(known(name), "{}: {name}", op.operation);
            }
            if let Some(list) = &op.result_list {
                assert!(contract.contains(list.as_str()), "{}: {list}", op.operation);
            }
        }
    }

    #[test]
    fn builds_requests_from_contract_names() {
        let mapping = Mapping::get().unwrap();
        let entry = find("GenerateAPIKey").unwrap();
        let mut params = Params::new();
        params.set("SessionID", "secret-session");
        params.set("UserID", "42");
        let req = mapping
            .operation("GenerateAPIKey")
            .unwrap()
            .request(&entry.info, &params)
            .unwrap();
        assert_eq!(req.method, "POST");
        assert_eq!(req.segments, ["v2", "users", "key-generate", "42"]);
        assert_eq!(req.secrets, ["secret-session"]);
        assert!(!format!("{req:?}").contains("secret"));

        let login = find("Login").unwrap();
        let mut params = Params::new();
        params.set("LoginName", "alice");
        params.set("Password", "pw");
        let req = mapping
            .operation("Login")
            .unwrap()
            .request(&login.info, &params)
            .unwrap();
        assert_eq!(
            req.body,
            Some(serde_json::json!({"login": "alice", "password": "pw"}))
        );

        let upload = find("ParcelUploadMft").unwrap();
        let mut params = Params::new();
        params.set("FileName", "a.edi");
        params.set("Bytes", "3");
        params.set("ECGridIDTo", "77");
        let req = mapping
            .operation("ParcelUploadMft")
            .unwrap()
            .request(&upload.info, &params)
            .unwrap();
        assert_eq!(
            req.body,
            Some(serde_json::json!({"fileName": "a.edi", "bytes": 3, "ecGridIdTo": 77}))
        );

        // A missing path value and an unknown parameter are refused.
        let err = mapping
            .operation("GenerateAPIKey")
            .unwrap()
            .request(&entry.info, &Params::new())
            .unwrap_err();
        assert!(
            err.is_invalid_input() && err.to_string().contains("UserID"),
            "{err}"
        );
        let mut params = Params::new();
        params.set("UserId", "42");
        assert!(mapping
            .operation("GenerateAPIKey")
            .unwrap()
            .request(&entry.info, &params)
            .unwrap_err()
            .is_invalid_input());
    }

    #[test]
    fn placements_parse() {
        assert_eq!(Placement::parse("auth"), Some(Placement::Auth));
        assert_eq!(Placement::parse("path:id"), Some(Placement::Path("id")));
        assert_eq!(Placement::parse("body:"), None);
        assert_eq!(Placement::parse("header:x"), None);
        assert!(Mapping::parse(
            r#"{"about":"","operations":[{"operation":"X","rest":"FETCH /a","params":{}}]}"#
        )
        .is_err());
    }

    #[test]
    fn documented_renames_and_camel_case() {
        let mapping = Mapping::get().unwrap();
        let who = mapping.operation("WhoAmI").unwrap();
        assert_eq!(who.rest_field(mapping, "LoginName"), ("login".into(), true));
        assert_eq!(who.rest_field(mapping, "UserID"), ("userId".into(), false));
        assert_eq!(
            who.rest_field(mapping, "NetworkID"),
            ("networkId".into(), false)
        );
    }
}
