//! The generated Rust API under `src/api/`: one module per contract area with
//! that area's request structs, `types.rs` (complex types), `enums.rs`
//! (enumerations) and `mod.rs` with the catalog of all operations.
//!
//! The generated code only declares: it calls the codec macros of
//! `ecgridos::wire` and `ecgridos::api::request`, which hold the mechanism.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;
use std::path::PathBuf;

use crate::contract::{Contract, Field, Operation};

/// Fields and parameters that carry a credential, and their redacted type.
/// `*` as owner: every parameter and field of that name. Everything else
/// whose name merely looks like a credential (`Key` of the key-value store,
/// `KeyId`, `CertKeyID`, `PublicCertificate`, the public `Cert` of
/// `CertificateAddPublic`, counters such as `OpenSessions`) is not secret; the
/// crate's `tests/secrets.rs` lists those exceptions.
const SECRETS: &[(&str, &str, &str)] = &[
    ("*", "SessionID", "SessionId"),
    ("*", "Password", "Password"),
    ("*", "OldPassword", "Password"),
    ("*", "NewPassword", "Password"),
    ("*", "HTTPPassword", "Password"),
    ("*", "LegacyPassword", "Password"),
    ("*", "passwordFrom", "Password"),
    ("*", "passwordTo", "Password"),
    ("*", "RecoveryAnswer", "Password"),
    ("*", "CurrentRecoveryAnswer", "Password"),
    ("*", "AccessKey", "Secret"),
    ("*", "SecretKey", "Secret"),
    ("*", "SharedSecret", "Secret"),
    ("*", "PrivatePFX", "SecretBytes"),
    ("CertAddPrivate", "Cert", "SecretBytes"),
    ("CertAddPrivateA", "CertBase64", "Secret"),
    ("GenerateAPIKey", "GenerateAPIKeyResult", "ApiKey"),
    ("UserGetAPIKey", "UserGetAPIKeyResult", "ApiKey"),
    ("Login", "LoginResult", "SessionId"),
    ("GeneratePassword", "GeneratePasswordResult", "Password"),
];

/// What to do when a `write` operation's outcome is unknown: the read that
/// tells the truth. First matching prefix wins.
const ADVICE: &[(&str, &str)] = &[
    ("ParcelDownloadConfirm", "the parcel may now be confirmed; ParcelInfo shows its status, so read it before confirming again"),
    ("ParcelDownloadS3", "the parcel may have been copied and marked downloaded; fetch it with ParcelDownloadNoUpdate, which changes nothing, instead of calling ParcelDownloadS3 again"),
    ("ParcelDownload", "the parcel may now be marked downloaded; fetch it with ParcelDownloadNoUpdate, which changes nothing, instead of calling ParcelDownload again"),
    ("ParcelUpload", "the parcel may have been accepted; look for it in the outbox listings (ParcelOutBoxInProcess, ParcelOutBoxArchive, ParcelOutBoxError) before uploading again"),
    ("Parcel", "the parcel's state may have changed; ParcelInfo shows its status, so read it before sending this again"),
    ("InterchangeResend", "the interchange may have been queued again; InterchangeInfo shows its status, so read it before resending"),
    ("GenerateAPIKey", "the key may have been rotated, so the old key may no longer work; read the current key with UserGetAPIKey, which does not rotate, instead of calling GenerateAPIKey again"),
    ("Login", "a session may have been opened; it ends by itself after its inactivity timeout"),
    ("UserSendSMS", "the message may have been sent; sending again may send it twice"),
    ("UserAdd", "the user may have been created; look for it with UserList before adding again"),
    ("MailboxAdd", "the mailbox may have been created; look for it with MailboxList before adding again"),
    ("TP", "the trading partner may have been added or moved; look for it with TPSearch before sending this again"),
    ("Interconnect", "the interconnect may have been changed; InterconnectInfo or InterconnectListByStatus shows it, so read before sending this again"),
    ("Migration", "the migration may have been recorded; look for it with MigrationList before sending this again"),
    ("CarbonCopy", "the carbon copy may have been created; look for it with CarbonCopyList before adding again"),
    ("CallBack", "the callback may have been created or fired; look for it with CallBackEventListEx before sending this again"),
    ("Comm", "the comm channel may have been created; look for it with CommList before adding again"),
    ("Cert", "the certificate may have been added; CommInfo with its certificates shows it, so read it before sending this again"),
];

/// The advice of a `write` operation.
fn advice(op: &Operation, names: &BTreeSet<&str>) -> Result<&'static str, String> {
    let (_, text) = ADVICE
        .iter()
        .find(|(prefix, _)| op.name.starts_with(prefix))
        .ok_or_else(|| format!("no outcome-unknown advice for write operation {}", op.name))?;
    // Every operation an advice names must exist.
    for word in text.split(|c: char| !c.is_ascii_alphanumeric()) {
        let looks_like_op = word.len() > 3
            && word.chars().next().is_some_and(|c| c.is_ascii_uppercase())
            && word.chars().skip(1).any(|c| c.is_ascii_uppercase());
        if looks_like_op && !names.contains(word) && word != "TP" {
            return Err(format!(
                "advice for {} names unknown operation {word}",
                op.name
            ));
        }
    }
    Ok(text)
}

/// The redacted type of a parameter or field, when it carries a credential.
fn secret(owner: &str, name: &str) -> Option<&'static str> {
    SECRETS
        .iter()
        .find(|(o, n, _)| *n == name && (*o == "*" || *o == owner))
        .map(|(_, _, ty)| *ty)
}

/// Splits a contract name into words: `ECGridIDInfo` -> EC, Grid, ID, Info.
fn words(name: &str) -> Vec<String> {
    let chars: Vec<char> = name.chars().collect();
    let mut out: Vec<String> = Vec::new();
    let mut cur = String::new();
    for (i, &c) in chars.iter().enumerate() {
        if c == '_' {
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            continue;
        }
        let prev = if i > 0 { chars[i - 1] } else { '_' };
        let next = chars.get(i + 1).copied().unwrap_or('_');
        let boundary = c.is_ascii_uppercase()
            && (prev.is_ascii_lowercase()
                || prev.is_ascii_digit()
                || (prev.is_ascii_uppercase() && next.is_ascii_lowercase()));
        if boundary && !cur.is_empty() {
            out.push(std::mem::take(&mut cur));
        }
        cur.push(c);
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

const KEYWORDS: &[&str] = &[
    "as", "break", "const", "continue", "crate", "else", "enum", "extern", "false", "fn", "for",
    "if", "impl", "in", "let", "loop", "match", "mod", "move", "mut", "pub", "ref", "return",
    "self", "static", "struct", "super", "trait", "true", "type", "unsafe", "use", "where",
    "while", "async", "await", "dyn", "abstract", "become", "box", "do", "final", "macro",
    "override", "priv", "typeof", "unsized", "virtual", "yield", "try",
];

/// `MailboxIDInfo` -> `MailboxIdInfo`; a leading digit gets a `V` prefix.
pub fn camel(name: &str) -> String {
    let mut out = String::new();
    for w in words(name) {
        let mut cs = w.chars();
        if let Some(first) = cs.next() {
            out.push(first.to_ascii_uppercase());
            out.extend(cs.map(|c| c.to_ascii_lowercase()));
        }
    }
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, 'V');
    }
    if out == "Self" {
        out.push('_');
    }
    out
}

/// `ECGridIDFrom` -> `ecgrid_id_from`; keywords become raw identifiers.
pub fn snake(name: &str) -> String {
    let out = words(name)
        .iter()
        .map(|w| w.to_ascii_lowercase())
        .collect::<Vec<_>>()
        .join("_");
    let out = if out.starts_with(|c: char| c.is_ascii_digit()) {
        format!("v{out}")
    } else {
        out
    };
    if KEYWORDS.contains(&out.as_str()) {
        format!("r#{out}")
    } else {
        out
    }
}

/// The module of an area (`carbon-copy` -> `carbon_copy`).
fn module(area: &str) -> String {
    area.replace('-', "_")
}

struct Names<'c> {
    enums: BTreeMap<&'c str, String>,
    types: BTreeMap<&'c str, String>,
    arrays: BTreeSet<&'c str>,
}

impl Names<'_> {
    /// The Rust type of a contract type (seen from a generated module).
    fn rust_type(&self, xsd: &str, secret: Option<&str>) -> Result<String, String> {
        if let Some(s) = secret {
            return Ok(format!("crate::secret::{s}"));
        }
        Ok(match xsd {
            "s:string" => "String".into(),
            "s:int" => "i32".into(),
            "s:long" => "i64".into(),
            "s:short" => "i16".into(),
            "s:unsignedByte" => "u8".into(),
            "s:float" => "f32".into(),
            "s:boolean" => "bool".into(),
            "s:dateTime" => "crate::wire::DateTime".into(),
            "s:base64Binary" => "crate::wire::Base64".into(),
            "dataset" => "crate::wire::DataSet".into(),
            other => {
                let local = other
                    .strip_prefix("tns:")
                    .ok_or_else(|| format!("unknown type {other}"))?;
                if let Some(e) = self.enums.get(local) {
                    format!("crate::api::enums::{e}")
                } else if let Some(t) = self.types.get(local) {
                    format!("crate::api::types::{t}")
                } else {
                    return Err(format!("unknown type {other}"));
                }
            }
        })
    }
}

fn kind(f: &Field) -> &'static str {
    if f.repeated() {
        "many"
    } else if f.min == 0 {
        "opt"
    } else {
        "req"
    }
}

fn occurs(f: &Field) -> String {
    let mut s = format!("minOccurs {}, maxOccurs {}", f.min, f.max);
    if f.nillable {
        s.push_str(", nillable");
    }
    s
}

/// Appends the declaration of one field or parameter of `owner` (its doc
/// line and its macro line: Rust name, kind, type, XML name, contract type,
/// whether it is secret).
fn field_lines(out: &mut String, names: &Names<'_>, owner: &str, f: &Field) -> Result<(), String> {
    let secret = secret(owner, &f.name);
    let ty = names.rust_type(&f.ty, secret)?;
    let redacted = if secret.is_some() { " Redacted." } else { "" };
    let _ = writeln!(
        out,
        "        /// `{}`: `{}`, {}.{redacted}",
        f.name,
        f.ty,
        occurs(f)
    );
    let _ = writeln!(
        out,
        "        {}: {} {ty} = \"{}\" \"{}\" {},",
        snake(&f.name),
        kind(f),
        f.name,
        f.ty,
        secret.is_some()
    );
    Ok(())
}

/// Checks that no two names in `names` map to the same Rust identifier.
fn unique<'a>(what: &str, names: impl Iterator<Item = (&'a str, String)>) -> Result<(), String> {
    let mut seen = BTreeMap::new();
    for (xml, rust) in names {
        if let Some(other) = seen.insert(rust.clone(), xml) {
            return Err(format!("{what}: {other} and {xml} both become {rust}"));
        }
    }
    Ok(())
}

fn header(out: &mut String, doc: &str) {
    out.push_str("// @generated by `cargo xtask codegen` from contract/ecgridos-v4.1-contract.json.\n// Do not edit: change the contract or the generator and run it again.\n\n");
    for line in doc.lines() {
        let _ = writeln!(out, "//! {line}");
    }
    out.push('\n');
}

/// The enum variant names of an enumeration, collisions resolved by
/// suffixing the lower-case value's variant with `Lower`.
fn variants(values: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for v in values {
        let mut name = camel(v);
        if name == "Other" {
            name = "OtherValue".into();
        }
        if out.contains(&name) {
            name.push_str(if v.chars().all(|c| !c.is_ascii_uppercase()) {
                "Lower"
            } else {
                "Alt"
            });
        }
        out.push(name);
    }
    out
}

fn enums_file(c: &Contract, names: &Names<'_>) -> Result<String, String> {
    let mut out = String::new();
    header(
        &mut out,
        "The contract's 44 enumerations. Each keeps a value it does not know in\n`Other`, as the service sends statuses its WSDL does not list.",
    );
    for e in &c.enumerations {
        let rust = &names.enums[e.name.as_str()];
        let vs = variants(&e.values);
        let _ = writeln!(out, "crate::wire::xml_enum! {{");
        let _ = writeln!(out, "    /// `{}` (restriction of `{}`).", e.name, e.base);
        let _ = writeln!(out, "    {rust} = \"{}\" {{", e.name);
        for (v, value) in vs.iter().zip(&e.values) {
            let _ = writeln!(out, "        {v} = \"{value}\",");
        }
        out.push_str("    }\n}\n\n");
    }
    Ok(out)
}

fn types_file(c: &Contract, names: &Names<'_>) -> Result<String, String> {
    let mut out = String::new();
    header(
        &mut out,
        "The contract's 73 complex types. Field names follow Rust; the element\nnames are the contract's, listed in each type's `FIELDS`. `ArrayOf…`\ntypes are lists; unknown child elements are skipped when reading.",
    );
    for t in &c.complex_types {
        let rust = &names.types[t.name.as_str()];
        if names.arrays.contains(t.name.as_str()) {
            let f = &t.fields[0];
            let item = names.rust_type(&f.ty, None)?;
            let _ = writeln!(out, "crate::wire::xml_array! {{");
            let _ = writeln!(
                out,
                "    /// `{}`: a list of `<{}>` items of type `{}` (a nil item is `None`).",
                t.name, f.name, f.ty
            );
            let _ = writeln!(out, "    {rust} = \"{}\" [{item}; \"{}\"]", t.name, f.name);
            out.push_str("}\n\n");
            continue;
        }
        unique(
            &t.name,
            t.fields.iter().map(|f| (f.name.as_str(), snake(&f.name))),
        )?;
        let _ = writeln!(out, "crate::wire::xml_struct! {{");
        let _ = writeln!(out, "    /// `{}`.", t.name);
        let _ = writeln!(out, "    {rust} = \"{}\" {{", t.name);
        for f in &t.fields {
            field_lines(&mut out, names, &t.name, f)?;
        }
        out.push_str("    }\n}\n\n");
    }
    Ok(out)
}

fn area_file(
    area: &str,
    ops: &[&Operation],
    names: &Names<'_>,
    all: &BTreeSet<&str>,
) -> Result<String, String> {
    let mut out = String::new();
    header(
        &mut out,
        &format!("The `{area}` operations of the contract, one request struct each."),
    );
    for op in ops {
        unique(
            &op.name,
            op.params.iter().map(|f| (f.name.as_str(), snake(&f.name))),
        )?;
        let result = op
            .result
            .as_ref()
            .ok_or_else(|| format!("{} has no result", op.name))?;
        let rsecret = secret(&op.name, &result.name);
        let rty = names.rust_type(&result.ty, rsecret)?;
        let signature: Vec<&str> = op.params.iter().map(|p| p.name.as_str()).collect();
        let _ = writeln!(out, "crate::api::request::operation! {{");
        let _ = writeln!(
            out,
            "    /// `{}({})` -> `{}` (`{}`).",
            op.name,
            signature.join(", "),
            result.name,
            result.ty
        );
        out.push_str("    ///\n");
        let _ = writeln!(out, "    /// Area `{}`, effect `{}`.", op.area, op.effect);
        if let Some(rest) = op.rest.as_deref().or(op.rest_inferred.as_deref()) {
            let how = if op.rest.is_some() {
                "named by the vendor"
            } else {
                "matched by us"
            };
            let _ = writeln!(out, "    /// REST v2 equivalent ({how}): `{rest}`.");
        }
        let effect = match op.effect.as_str() {
            "read" => "Read".to_string(),
            "write-idempotent" => "WriteIdempotent".to_string(),
            "write" => format!("Write({:?})", advice(op, all)?),
            other => return Err(format!("{}: unknown effect {other}", op.name)),
        };
        let _ = writeln!(
            out,
            "    {} = \"{}\" in \"{}\", {effect} {{",
            camel(&op.name),
            op.name,
            op.area
        );
        for p in &op.params {
            field_lines(&mut out, names, &op.name, p)?;
        }
        let _ = writeln!(
            out,
            "    }} -> {} {rty} = \"{}\" \"{}\" {};",
            kind(result),
            result.name,
            result.ty,
            rsecret.is_some()
        );
        out.push_str("}\n\n");
    }
    Ok(out)
}

fn mod_file(c: &Contract, names: &Names<'_>, areas: &BTreeMap<String, Vec<&Operation>>) -> String {
    let mut out = String::new();
    header(
        &mut out,
        "Every operation of the ECGridOS v4.1 contract as a typed request, one\nmodule per area, with the contract's complex types ([`types`]) and\nenumerations ([`enums`]). Call one with [`Client::call`](crate::Client::call),\n[`SessionClient::call`](crate::SessionClient::call) (fills `SessionID`) or the\nblocking client; [`OPERATIONS`] lists them all for tools.\n\n```no_run\n# async fn run() -> Result<(), ecgridos::Error> {\nuse ecgridos::api::mailbox::MailboxInfo;\nuse ecgridos::{ApiKey, Client, SessionClient};\n\nlet client = SessionClient::with_api_key(Client::builder().build()?, ApiKey::new(\"…\"));\nlet mut request = MailboxInfo::default();\nrequest.mailbox_id = 1234;\nlet mailbox = client.call(request).await?;\nif let Some(mailbox) = mailbox {\n    println!(\"{:?} {}\", mailbox.name, mailbox.status.as_str());\n}\n# Ok(()) }\n```",
    );
    out.push_str("pub mod enums;\npub mod request;\npub mod types;\n\n");
    for area in areas.keys() {
        let _ = writeln!(out, "/// The `{area}` operations.");
        let _ = writeln!(out, "pub mod {};", module(area));
    }
    out.push_str(
        "\npub use request::{Effect, OperationEntry, OperationInfo, Params, Request};\n\n",
    );
    let _ = writeln!(
        out,
        "/// All {} operations, in contract order.",
        c.operations.len()
    );
    out.push_str("pub const OPERATIONS: &[OperationEntry] = &[\n");
    for op in &c.operations {
        let _ = writeln!(
            out,
            "    OperationEntry::of::<{}::{}>(),",
            module(&op.area),
            camel(&op.name)
        );
    }
    out.push_str("];\n\n");
    let _ = writeln!(
        out,
        "/// All {} complex types and {} enumerations, in contract order.",
        c.complex_types.len(),
        c.enumerations.len()
    );
    out.push_str("pub const TYPES: &[request::TypeEntry] = &[\n");
    for t in &c.complex_types {
        let rust = camel(&t.name);
        let fields = if names.arrays.contains(t.name.as_str()) {
            "&[]".to_string()
        } else {
            format!("types::{rust}::FIELDS")
        };
        let _ = writeln!(
            out,
            "    request::TypeEntry::of::<types::{rust}>(\"{}\", {fields}),",
            t.name
        );
    }
    for e in &c.enumerations {
        let _ = writeln!(
            out,
            "    request::TypeEntry::of::<enums::{}>(\"{}\", &[]),",
            camel(&e.name),
            e.name
        );
    }
    out.push_str("];\n");
    out
}

/// The generated Rust files (not yet formatted).
pub fn generate(c: &Contract) -> Result<Vec<(PathBuf, String)>, String> {
    let mut names = Names {
        enums: BTreeMap::new(),
        types: BTreeMap::new(),
        arrays: BTreeSet::new(),
    };
    for e in &c.enumerations {
        names.enums.insert(&e.name, camel(&e.name));
    }
    for t in &c.complex_types {
        names.types.insert(&t.name, camel(&t.name));
        if t.name.starts_with("ArrayOf") && t.fields.len() == 1 && t.fields[0].repeated() {
            names.arrays.insert(&t.name);
        }
    }
    unique(
        "types",
        names
            .enums
            .iter()
            .chain(names.types.iter())
            .map(|(k, v)| (*k, v.clone())),
    )?;
    for e in &c.enumerations {
        let vs = variants(&e.values);
        unique(
            &e.name,
            e.values.iter().map(String::as_str).zip(vs.iter().cloned()),
        )?;
    }
    let all: BTreeSet<&str> = c.operations.iter().map(|o| o.name.as_str()).collect();
    let mut areas: BTreeMap<String, Vec<&Operation>> = BTreeMap::new();
    for op in &c.operations {
        areas.entry(op.area.clone()).or_default().push(op);
    }
    unique(
        "operations",
        c.operations
            .iter()
            .map(|o| (o.name.as_str(), camel(&o.name))),
    )?;
    let mut files = vec![
        (PathBuf::from("src/api/mod.rs"), mod_file(c, &names, &areas)),
        (PathBuf::from("src/api/enums.rs"), enums_file(c, &names)?),
        (PathBuf::from("src/api/types.rs"), types_file(c, &names)?),
    ];
    for (area, ops) in &areas {
        files.push((
            PathBuf::from(format!("src/api/{}.rs", module(area))),
            area_file(area, ops, &names, &all)?,
        ));
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_rust_conventions() {
        assert_eq!(camel("ECGridIDInfo"), "EcGridIdInfo");
        assert_eq!(camel("as2CommInfo"), "As2CommInfo");
        assert_eq!(camel("_3DES_SHA1"), "V3DesSha1");
        assert_eq!(camel("GenerateAPIKey"), "GenerateApiKey");
        assert_eq!(snake("SessionID"), "session_id");
        assert_eq!(snake("ECGridIDFrom"), "ec_grid_id_from");
        assert_eq!(snake("Type"), "r#type");
        assert_eq!(snake("ip"), "ip");
        assert_eq!(
            variants(&["None".into(), "none".into()]),
            ["None", "NoneLower"]
        );
    }
}
