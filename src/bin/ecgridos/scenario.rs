//! `ecgridos scenario run FILE`: a scenario file over SOAP and REST, against
//! a fresh embedded fake per protocol (the default) or the endpoints given by
//! the usual options, with a side-by-side table, `--json` or `--junit FILE`.

use ecgridos::api::{request::find, Effect};
use ecgridos::migrate::junit;
use ecgridos::migrate::scenario::{
    on_fake, Report, RunOptions, Scenario, ScenarioUser, StepComparison, StepRun, Target,
};
use ecgridos::secret::redact_url;
use ecgridos::{ApiKey, Credential, Protocol, SessionId};

use crate::cli::{Global, ProtocolArg, ScenarioCommand, ScenarioRunArgs};
use crate::output::{
    confirm, fail, new_key_lines, new_keys_json, print_or_fail, print_secret, rest_client, say,
    soap_client, usage, Exit, NewKey,
};

/// `ecgridos scenario ...`.
pub async fn scenario(g: &Global, command: &ScenarioCommand) -> Exit {
    match command {
        ScenarioCommand::Run(args) => run(g, args).await,
    }
}

/// True when the usual options name endpoints other than the defaults.
fn endpoints_given(g: &Global) -> bool {
    g.endpoint != ecgridos::DEFAULT_ENDPOINT || g.rest_url != ecgridos::DEFAULT_REST_URL
}

async fn run(g: &Global, args: &ScenarioRunArgs) -> Exit {
    let text = match std::fs::read_to_string(&args.file) {
        Ok(t) => t,
        Err(e) => {
            say!("error: cannot read {}: {e}", args.file.display());
            return Exit::Failure;
        }
    };
    let scenario = match Scenario::parse(&text) {
        Ok(s) => s,
        Err(e) => return usage(format!("{}: {e}", args.file.display())),
    };
    let mut protocols: Vec<Protocol> = Vec::new();
    for p in &args.over {
        let p = match p {
            ProtocolArg::Soap => Protocol::Soap,
            ProtocolArg::Rest => Protocol::Rest,
        };
        if !protocols.contains(&p) {
            protocols.push(p);
        }
    }
    // Everything that can be refused is refused before anything is sent.
    if let Err(e) = scenario.check(&protocols) {
        return usage(format!("{}: {e}", args.file.display()));
    }
    let options = RunOptions {
        show_secrets: args.show_secrets,
    };
    let remote = args.remote || endpoints_given(g);
    let report = if remote {
        match run_remote(g, args, &scenario, &protocols, options).await {
            Ok(r) => r,
            Err(exit) => return exit,
        }
    } else {
        match on_fake::run(&scenario, &protocols, options, |b| b).await {
            Ok(r) => r,
            Err(e) => return fail(&e, None),
        }
    };
    if let Some(path) = &args.junit {
        if let Err(e) = std::fs::write(path, junit::write(&report)) {
            say!("error: cannot write {}: {e}", path.display());
            return Exit::Failure;
        }
    }
    // Keys made on a real service are shown, as `compare` shows them: the
    // report redacts them, and the last one made is the one that works.
    let new_keys = if remote {
        new_keys(&scenario, &report)
    } else {
        Vec::new()
    };
    let printed = if g.json {
        let doc = serde_json::to_value(&report).map(|mut doc| {
            if let (false, Some(map)) = (new_keys.is_empty(), doc.as_object_mut()) {
                let (keys, in_force) = new_keys_json(&new_keys);
                map.insert("new_keys".into(), keys);
                map.insert("api_key_in_force".into(), in_force);
            }
            doc.to_string()
        });
        match doc {
            Ok(doc) if new_keys.is_empty() => print_or_fail(&doc),
            Ok(doc) => print_secret(&doc, "the report with the new keys"),
            Err(e) => {
                say!("error: cannot encode the report: {e}");
                Exit::Failure
            }
        }
    } else if new_keys.is_empty() {
        print_or_fail(&table(&report))
    } else {
        let mut text = table(&report);
        for line in new_key_lines(&new_keys) {
            text.push('\n');
            text.push_str(&line);
        }
        print_secret(&text, "the report with the new keys")
    };
    match (printed, report.passed) {
        (Exit::Ok, true) => Exit::Ok,
        (Exit::Ok, false) => Exit::Partial,
        (other, _) => other,
    }
}

/// True when `operation` rotates an API key: a write of the key area whose
/// result is a secret (the new key).
fn rotates_a_key(operation: &str) -> bool {
    find(operation).is_some_and(|e| {
        e.info.area == "key" && e.info.effect != Effect::Read && e.info.result.secret
    })
}

/// The keys the runs of `report` made, in the order made, each for the
/// user its step names (its `UserID` parameter as written).
fn new_keys(scenario: &Scenario, report: &Report) -> Vec<NewKey> {
    let mut keys = Vec::new();
    for run in &report.runs {
        for (step, decl) in run.steps.iter().zip(&scenario.steps) {
            let Some(Ok(serde_json::Value::String(key))) = &step.answer else {
                continue;
            };
            if !rotates_a_key(&step.operation) {
                continue;
            }
            let user = decl
                .params
                .get("UserID")
                .and_then(|v| {
                    v.as_integer()
                        .map(|i| i.to_string())
                        .or_else(|| v.as_str().map(str::to_string))
                })
                .unwrap_or_else(|| format!("of step {}", step.step));
            keys.push(NewKey {
                user,
                protocol: run.protocol.clone(),
                key: ApiKey::new(key.clone()),
            });
        }
    }
    keys
}

/// Against the endpoints of the usual options: the declared users' keys
/// from their `api_key_env`, the first user's from the usual credential.
/// Steps that change state are confirmed first (they run once per protocol).
async fn run_remote(
    g: &Global,
    args: &ScenarioRunArgs,
    scenario: &Scenario,
    protocols: &[Protocol],
    options: RunOptions,
) -> Result<Report, Exit> {
    let writes: Vec<&str> = scenario
        .steps
        .iter()
        .filter(|s| find(&s.operation).is_some_and(|e| e.info.effect != Effect::Read))
        .map(|s| s.name.as_str())
        .collect();
    if !writes.is_empty() {
        let endpoints: Vec<String> = protocols
            .iter()
            .map(|p| match p {
                Protocol::Soap => redact_url(&g.endpoint),
                Protocol::Rest => redact_url(&g.rest_url),
            })
            .collect();
        let mut question = format!(
            "Steps {} change state on {} (once per protocol).",
            writes.join(", "),
            endpoints.join(" and ")
        );
        for step in scenario
            .steps
            .iter()
            .filter(|s| rotates_a_key(&s.operation))
        {
            question.push_str(&format!(
                " Step {} rotates an API key (once per protocol): every new key is printed at the end, with the one in force.",
                step.name
            ));
        }
        confirm(args.yes, &question)?;
    }
    let global = g
        .api_key
        .as_deref()
        .filter(|k| !k.is_empty())
        .map(|k| Credential::ApiKey(ApiKey::new(k)))
        .or_else(|| {
            g.session_id
                .as_deref()
                .filter(|s| !s.is_empty())
                .map(|s| Credential::Session(SessionId::new(s)))
        });
    let mut users = Vec::new();
    for (i, decl) in scenario.users.iter().enumerate() {
        let from_env = decl
            .api_key_env
            .as_deref()
            .and_then(|v| std::env::var(v).ok())
            .filter(|k| !k.is_empty())
            .map(|k| Credential::ApiKey(ApiKey::new(k)));
        let credential = from_env.or_else(|| if i == 0 { global.clone() } else { None });
        users.push(ScenarioUser {
            name: decl.name.clone(),
            login: decl.login().to_string(),
            user_id: decl.user_id,
            mailbox_id: decl.mailbox_id,
            ecgrid_id: decl.ecgrid_id,
            credential,
            password: None,
        });
    }
    if users.is_empty() {
        users.push(ScenarioUser {
            name: "default".to_string(),
            login: g.login.clone().unwrap_or_default(),
            user_id: None,
            mailbox_id: None,
            ecgrid_id: None,
            credential: global,
            password: None,
        });
    }
    if users[0].credential.is_none() {
        return Err(usage(
            "no credential for the first user: set ECGRID_API_KEY or ECGRID_SESSION_ID (or its api_key_env)",
        ));
    }
    let mut runs = Vec::new();
    for protocol in protocols {
        let run = match protocol {
            Protocol::Soap => {
                let client = soap_client(g).map_err(|e| fail(&e, None))?;
                scenario.run(Target::Soap(&client), &users, options).await
            }
            Protocol::Rest => {
                let client = rest_client(g).map_err(|e| fail(&e, None))?;
                scenario.run(Target::Rest(&client), &users, options).await
            }
        };
        runs.push(run);
    }
    Ok(Report::new(scenario, runs, options))
}

/// A cell of the table: how a step went over one protocol.
fn cell(step: &StepRun) -> String {
    let what = match (&step.error_kind, step.sent) {
        (_, false) => "not sent".to_string(),
        (Some(kind), true) => format!("error {kind}"),
        (None, true) => "ok".to_string(),
    };
    if step.passed() {
        what
    } else {
        format!("FAIL ({what})")
    }
}

fn verdict(steps: &[Option<&StepRun>], row: Option<&StepComparison>) -> String {
    let all_passed = steps.iter().all(|s| s.is_some_and(StepRun::passed));
    let compared = match row.and_then(|r| r.diff.as_ref()) {
        None if row.is_some() => Some("not compared".to_string()),
        None => None,
        Some(d) if d.is_same() => Some("same".to_string()),
        Some(d) => Some(format!("differs ({})", d.describe().len())),
    };
    match (all_passed, compared) {
        (true, None) => "pass".to_string(),
        (true, Some(c)) => c,
        (false, Some(c)) if c != "same" => format!("fail, {c}"),
        (false, _) => "fail".to_string(),
    }
}

/// The side-by-side table, then the reasons of each failure and difference.
fn table(report: &Report) -> String {
    let mut rows: Vec<Vec<String>> = vec![{
        let mut head = vec!["step".to_string()];
        head.extend(report.runs.iter().map(|r| r.protocol.to_uppercase()));
        head.push("verdict".to_string());
        head
    }];
    let count = report.runs.first().map_or(0, |r| r.steps.len());
    for i in 0..count {
        let steps: Vec<Option<&StepRun>> = report.runs.iter().map(|r| r.steps.get(i)).collect();
        let name = steps
            .iter()
            .flatten()
            .next()
            .map_or(String::new(), |s| s.step.clone());
        let mut row = vec![name];
        row.extend(steps.iter().map(|s| s.map_or(String::new(), cell)));
        row.push(verdict(&steps, report.comparison.get(i)));
        rows.push(row);
    }
    let columns = rows.first().map_or(0, Vec::len);
    let widths: Vec<usize> = (0..columns)
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in &rows {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    let mut details = Vec::new();
    for run in &report.runs {
        for step in run.steps.iter().filter(|s| !s.passed()) {
            for failure in &step.failures {
                details.push(format!("{} over {}: {failure}", step.step, run.protocol));
            }
        }
    }
    for row in &report.comparison {
        if let Some(d) = row.diff.as_ref().filter(|d| !d.is_same()) {
            for line in d.describe() {
                details.push(format!("{}: {line}", row.step));
            }
        }
    }
    if !details.is_empty() {
        out.push('\n');
        out.push_str(&details.join("\n"));
        out.push('\n');
    }
    out.push_str(if report.passed {
        "\nscenario passed"
    } else {
        "\nscenario FAILED"
    });
    out
}
