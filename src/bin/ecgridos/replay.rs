//! `ecgridos replay`: each call of a recording sent again over REST or SOAP
//! with the replayer's own credential, its answer compared with the
//! recorded one.

use ecgridos::migrate::diff::Class;
use ecgridos::migrate::replay::{replay_from, ReplayOptions, ReplayReport, Status, Target};

use crate::cli::{Global, ProtocolArg, ReplayArgs};
use crate::output::{fail, print_or_fail, rest_client, say, soap_client, usage, Authed, Exit};

pub async fn replay(g: &Global, args: &ReplayArgs) -> Exit {
    // Read a line at a time as it is replayed: a recording can be large.
    let recording = match tokio::fs::File::open(&args.file).await {
        Ok(file) => tokio::io::BufReader::new(file),
        Err(e) => {
            say!("error: cannot read {}: {e}", args.file.display());
            return Exit::Failure;
        }
    };
    let options = ReplayOptions::new()
        .allow_writes(args.allow_writes)
        .strict(args.strict);
    let (soap, rest) = match args.over {
        ProtocolArg::Soap => (soap_client(g).map(Some), Ok(None)),
        ProtocolArg::Rest => (Ok(None), rest_client(g).map(Some)),
    };
    let (soap, rest) = match (soap, rest) {
        (Ok(soap), Ok(rest)) => (soap, rest),
        (Err(e), _) | (_, Err(e)) => return fail(&e, None),
    };
    let target = match (&soap, &rest) {
        (Some(client), _) => Target::Soap(client),
        (None, Some(client)) => Target::Rest(client),
        (None, None) => return usage("no endpoint"),
    };
    let authed = match Authed::new(g).await {
        Ok(a) => a,
        Err(exit) => return exit,
    };
    let result = replay_from(recording, target, &authed.credential, options).await;
    authed.close().await;
    let report = match result {
        Ok(report) => report,
        Err(e) => return fail(&e, None),
    };
    if let Some(path) = &args.junit {
        if let Err(e) = std::fs::write(path, report.junit()) {
            say!("error: cannot write {}: {e}", path.display());
            return Exit::Failure;
        }
    }
    let printed = if g.json {
        match serde_json::to_string(&report) {
            Ok(text) => print_or_fail(&text),
            Err(e) => {
                say!("error: cannot show the report: {e}");
                Exit::Failure
            }
        }
    } else {
        print_or_fail(&table(&report))
    };
    match printed {
        Exit::Ok if report.failed() => Exit::Partial,
        other => other,
    }
}

/// One row per recorded line, then a summary.
fn table(report: &ReplayReport) -> String {
    let (ours, theirs) = (
        "recorded",
        if report.over == "rest" {
            "REST"
        } else {
            "SOAP"
        },
    );
    let width = report
        .steps
        .iter()
        .filter_map(|s| s.operation.as_deref().map(str::len))
        .max()
        .unwrap_or(9)
        .max(9);
    // Details start under the result column.
    let indent = width + 9;
    let mut out = format!("{:>5}  {:<width$}  result\n", "line", "operation");
    for step in &report.steps {
        let op = step.operation.as_deref().unwrap_or("-");
        let mut result = step.status.as_str().replace('_', " ");
        if let Some(reason) = &step.reason {
            result.push_str(": ");
            result.push_str(reason);
        }
        out.push_str(&format!("{:>5}  {op:<width$}  {result}\n", step.line));
        let Some(diff) = &step.diff else { continue };
        if let Some(kinds) = &diff.error_kind_differs {
            let side = |k: &Option<String>| k.clone().unwrap_or_else(|| "success".into());
            out.push_str(&format!(
                "{:indent$}error kind: {ours} {}, {theirs} {}\n",
                "",
                side(&kinds.soap),
                side(&kinds.rest)
            ));
        }
        for field in diff.differences() {
            let path = if field.path.is_empty() {
                "(result)"
            } else {
                &field.path
            };
            let what = match &field.class {
                Class::OnlySoap { soap } => format!("only {ours} ({soap})"),
                Class::OnlyRest { rest } => format!("only {theirs} ({rest})"),
                Class::ValueDiffers { soap, rest } => {
                    format!("value differs: {ours} {soap}, {theirs} {rest}")
                }
                other => other.name().to_string(),
            };
            out.push_str(&format!("{:indent$}{path}: {what}\n", ""));
        }
    }
    out.push_str(&format!(
        "over {}: {} same, {} differ, {} writes not sent, {} without a REST twin, {} skipped, {} unreadable",
        report.over,
        report.count(Status::Same),
        report.count(Status::Differs),
        report.count(Status::SkippedWrite),
        report.count(Status::NoRestTwin),
        report.count(Status::Skipped),
        report.count(Status::Unreadable),
    ));
    out
}
