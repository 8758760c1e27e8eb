//! `ecgridos operations` and `ecgridos call`: any of the contract's
//! operations, with parameters as NAME=VALUE and the result as one JSON
//! document on stdout.

use base64::Engine as _;
use ecgridos::api::request::find;
use ecgridos::api::{Effect, OperationEntry, OperationInfo, Params, OPERATIONS};
use ecgridos::secret::redact_text;
use ecgridos::wire::{FieldSpec, Occurs};
use ecgridos::Credential;
use serde_json::{json, Value};

use crate::cli::{CallArgs, Global, OperationsArgs};
use crate::output::{
    confirm, exit_for, fail, print_or_fail, print_secret, say, soap_client, stdin_secret, usage,
    Authed, Exit,
};

/// The edit distance of two names, ignoring case.
fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.to_lowercase().chars().collect();
    let b: Vec<char> = b.to_lowercase().chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

/// Up to three names nearest to `wanted`, as "did you mean" text.
fn suggest<'a>(wanted: &str, names: impl Iterator<Item = &'a str>) -> String {
    let mut scored: Vec<(usize, &str)> = names
        .map(|n| {
            let d = distance(wanted, n);
            // A name that contains the wanted text is close whatever its length.
            let contains = n.to_lowercase().contains(&wanted.to_lowercase());
            (if contains { d.min(2) } else { d }, n)
        })
        .collect();
    scored.sort();
    let near: Vec<&str> = scored
        .iter()
        .take_while(|(d, _)| *d <= wanted.len().max(3) / 2 + 1)
        .take(3)
        .map(|(_, n)| *n)
        .collect();
    if near.is_empty() {
        String::new()
    } else {
        format!("; did you mean {}?", near.join(", "))
    }
}

fn occurs(spec: &FieldSpec) -> (u8, &'static str) {
    match spec.occurs {
        Occurs::Required => (1, "1"),
        Occurs::Optional => (0, "1"),
        Occurs::Repeated => (0, "unbounded"),
    }
}

fn field_json(spec: &FieldSpec) -> Value {
    let (min, max) = occurs(spec);
    json!({ "name": spec.name, "type": spec.xsd_type, "minOccurs": min, "maxOccurs": max })
}

fn info_json(info: &OperationInfo) -> Value {
    json!({
        "name": info.name,
        "area": info.area,
        "effect": info.effect.as_str(),
        "parameters": info.params.iter().map(field_json).collect::<Vec<_>>(),
        "result": field_json(&info.result),
    })
}

fn info_line(info: &OperationInfo) -> String {
    let params: Vec<String> = info
        .params
        .iter()
        .map(|p| {
            let optional = if p.occurs == Occurs::Required {
                ""
            } else {
                "?"
            };
            format!("{}{optional}: {}", p.name, p.xsd_type)
        })
        .collect();
    format!(
        "{}\t{}\t{}\t({}) -> {}",
        info.name,
        info.area,
        info.effect.as_str(),
        params.join(", "),
        info.result.xsd_type
    )
}

/// `ecgridos operations [--area AREA] [--json]`.
pub fn operations(g: &Global, args: &OperationsArgs) -> Exit {
    let mut areas: Vec<&str> = OPERATIONS.iter().map(|e| e.info.area).collect();
    areas.sort_unstable();
    areas.dedup();
    if let Some(area) = args.area.as_deref() {
        if !areas.contains(&area) {
            return usage(format!(
                "no area {area:?}{} (areas: {})",
                suggest(area, areas.iter().copied()),
                areas.join(", ")
            ));
        }
    }
    let listed: Vec<&OperationEntry> = OPERATIONS
        .iter()
        .filter(|e| args.area.as_deref().is_none_or(|a| a == e.info.area))
        .collect();
    if g.json {
        let list: Vec<Value> = listed.iter().map(|e| info_json(&e.info)).collect();
        print_or_fail(&Value::Array(list).to_string())
    } else {
        let lines: Vec<String> = listed.iter().map(|e| info_line(&e.info)).collect();
        print_or_fail(&lines.join("\n"))
    }
}

/// The largest file `NAME=@PATH` reads: it is sent base64-encoded inside
/// one SOAP body held in memory. `ecgridos parcels upload` streams larger
/// parcels.
const MAX_FILE_PARAM: u64 = 64 * 1024 * 1024;

/// A stand-in for a file's content until it is read (after confirmation):
/// valid base64, so that the other parameters can be checked first.
const UNREAD_FILE: &str = "AA==";

/// A secret parameter's value given out of sight of `ps`: `@env:VAR` is the
/// environment variable VAR, `-` the first line of standard input (as
/// `--password-stdin` reads the password; standard input serves one of
/// them only). `None`: the value is given as is.
fn secret_value(name: &str, value: &str, stdin_taken: &mut bool) -> Result<Option<String>, Exit> {
    if let Some(var) = value.strip_prefix("@env:") {
        return match std::env::var(var) {
            Ok(v) if !v.is_empty() => Ok(Some(v)),
            _ => Err(usage(format!(
                "{name}=@env:{var}: the environment variable {var} is not set (nothing was sent)"
            ))),
        };
    }
    if value != "-" {
        return Ok(None);
    }
    if std::mem::replace(stdin_taken, true) {
        return Err(usage(format!(
            "{name}=-: standard input is already read for another secret (nothing was sent)"
        )));
    }
    stdin_secret(&format!("{name}=-")).map(Some)
}

/// `NAME=@PATH` parameters to read: each name and path.
type FileParams<'a> = Vec<(&'a str, &'a str)>;

/// The parameters of `NAME=VALUE` arguments, checked against the operation:
/// known names, each once; secrets from the environment or stdin (see
/// [`secret_value`]). A base64Binary `@PATH` is returned beside them, its
/// value a stand-in until [`read_files`] reads it.
fn parse_params<'a>(
    info: &OperationInfo,
    args: &'a [String],
    password_stdin: bool,
) -> Result<(Params, FileParams<'a>), Exit> {
    let mut stdin_taken = password_stdin;
    let mut params = Params::new();
    let mut files = Vec::new();
    for arg in args {
        let Some((name, value)) = arg.split_once('=') else {
            return Err(usage(format!(
                "{arg:?} is not NAME=VALUE (parameters of {}: {})",
                info.name,
                param_names(info)
            )));
        };
        let Some(spec) = info.params.iter().find(|p| p.name == name) else {
            return Err(usage(format!(
                "{} has no parameter {name:?}{} (parameters: {})",
                info.name,
                suggest(name, info.params.iter().map(|p| p.name)),
                param_names(info)
            )));
        };
        if params.get(name).is_some() {
            return Err(usage(format!("parameter {name} given twice")));
        }
        if spec.secret {
            if let Some(secret) = secret_value(name, value, &mut stdin_taken)? {
                params.set(name, secret);
                continue;
            }
        }
        let value = match value.strip_prefix('@') {
            Some(path) if spec.xsd_type == "s:base64Binary" => {
                files.push((name, path));
                UNREAD_FILE.to_string()
            }
            _ => value.to_string(),
        };
        params.set(name, value);
    }
    Ok((params, files))
}

/// Reads each `@PATH` parameter, at most [`MAX_FILE_PARAM`] bytes (a device
/// or a pipe has no length: the bound applies while reading).
fn read_files(params: &mut Params, files: &[(&str, &str)]) -> Result<(), Exit> {
    use std::io::Read as _;
    for &(name, path) in files {
        let cannot = |e: std::io::Error| {
            say!("error: {name}: cannot read {path}: {e}");
            Exit::Failure
        };
        let file = std::fs::File::open(path).map_err(cannot)?;
        let mut bytes = Vec::new();
        file.take(MAX_FILE_PARAM + 1)
            .read_to_end(&mut bytes)
            .map_err(cannot)?;
        if bytes.len() as u64 > MAX_FILE_PARAM {
            return Err(usage(format!(
                "{name}: {path} is larger than {} MiB, the most `call` sends in one body \
                 (`ecgridos parcels upload` streams larger parcels); nothing was sent",
                MAX_FILE_PARAM / 1024 / 1024
            )));
        }
        params.set(
            name,
            base64::engine::general_purpose::STANDARD.encode(bytes),
        );
    }
    Ok(())
}

fn param_names(info: &OperationInfo) -> String {
    if info.params.is_empty() {
        return "none".to_string();
    }
    info.params
        .iter()
        .map(|p| p.name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// `ecgridos call OPERATION [NAME=VALUE ...] [--yes]`.
pub async fn call(g: &Global, args: &CallArgs) -> Exit {
    let Some(entry) = find(&args.operation) else {
        return usage(format!(
            "no operation {:?}{} (list them with `ecgridos operations`)",
            args.operation,
            suggest(&args.operation, OPERATIONS.iter().map(|e| e.info.name))
        ));
    };
    let info = &entry.info;
    let (mut params, files) = match parse_params(info, &args.params, g.password_stdin) {
        Ok(p) => p,
        Err(exit) => return exit,
    };
    // Everything that can be refused is refused before a login or a send.
    if let Err(e) = (entry.check)(&params) {
        return fail(&e, None);
    }
    let needs_session =
        info.params.iter().any(|p| p.name == "SessionID") && params.get("SessionID").is_none();
    if let Effect::Write { .. } = info.effect {
        let question = format!(
            "Call {}? It changes state on the service and is not sent again if its outcome is unknown.",
            info.name
        );
        if let Err(exit) = confirm(args.yes, &question) {
            return exit;
        }
    }
    // Files are read once the call is confirmed, and checked again with
    // their content.
    if !files.is_empty() {
        if let Err(exit) = read_files(&mut params, &files) {
            return exit;
        }
        if let Err(e) = (entry.check)(&params) {
            return fail(&e, None);
        }
    }
    let client = match soap_client(g) {
        Ok(c) => c,
        Err(e) => return fail(&e, None),
    };
    let authed = if needs_session {
        match Authed::new(g).await {
            Ok(a) => {
                let credential = match &a.credential {
                    Credential::ApiKey(k) => k.expose().to_string(),
                    Credential::Session(s) => s.expose().to_string(),
                };
                params.set("SessionID", credential);
                Some(a)
            }
            Err(exit) => return exit,
        }
    } else {
        None
    };
    // The credential in use is never printed, not even with --show-secrets
    // (`whoami --json` does not show it either).
    let in_use: Vec<String> = params
        .get("SessionID")
        .map(str::to_string)
        .into_iter()
        .collect();
    let in_use: Vec<&str> = in_use.iter().map(String::as_str).collect();
    let result = client.call_json(entry, &params).await;
    // The result is delivered before the session is closed: a write's
    // result (a new key, a parcel ID) may exist nowhere else, and is shown
    // whole; a read's secrets only when asked.
    let exit = match result {
        Ok(value) if info.effect == Effect::Read => {
            let value = if args.show_secrets {
                value
            } else {
                ecgridos::migrate::diff::redact(info.name, &value)
            };
            print_or_fail(&redact_text(&value.to_string(), &in_use))
        }
        Ok(value) => print_secret(&redact_text(&value.to_string(), &in_use), "the result"),
        Err(e) if e.is_outcome_unknown() => {
            // The advice in the error names the read that tells the truth.
            say!("error: {e}");
            exit_for(&e)
        }
        Err(e) => fail(&e, None),
    };
    if let Some(a) = authed {
        a.close().await;
    }
    exit
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions_are_near_names() {
        assert_eq!(distance("ParcelInbox", "ParcelInBox"), 0);
        assert_eq!(distance("kitten", "sitting"), 3);
        let s = suggest("ParcelInbx", OPERATIONS.iter().map(|e| e.info.name));
        assert!(s.contains("ParcelInBox"), "{s}");
        assert_eq!(suggest("Zzzzzzzzzzzzzzzz", ["A", "B"].into_iter()), "");
    }
}
