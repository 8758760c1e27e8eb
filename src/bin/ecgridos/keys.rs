//! The single-call commands.

use ecgridos::{Credential, KeyClient, Scenario, SessionId};
use serde_json::json;

use crate::cli::{CompareArgs, GenerateArgs, GetKeyArgs, Global};
use crate::output::{
    confirm, fail, key_client, parse_user_id, password, prepare_secret_file, usage, Authed, Exit,
};

pub async fn version(g: &Global) -> Exit {
    let result = match key_client(g) {
        Ok(KeyClient::Soap(c)) => c.version().await,
        Ok(KeyClient::Rest(c)) => c.version().await,
        Err(e) => Err(e),
    };
    match result {
        Ok(v) if g.json => print_json(&json!({ "version": v })),
        Ok(v) => println!("{v}"),
        Err(e) => return fail(&e, None),
    }
    Exit::Ok
}

fn print_json(value: &serde_json::Value) {
    println!("{value}");
}

/// Prints the new session ID alone: printing it is this command's job.
pub async fn login(g: &Global) -> Exit {
    let client = match key_client(g) {
        Ok(c) => c,
        Err(e) => return fail(&e, None),
    };
    let Some(login) = g.login.as_deref().filter(|l| !l.is_empty()) else {
        return usage("no login name: set ECGRID_LOGIN or pass --login");
    };
    let password = match password(g) {
        Ok(p) => p,
        Err(exit) => return exit,
    };
    match client.login(login, &password).await {
        Ok(Credential::Session(session)) if g.json => {
            print_json(&json!({ "session_id": session.expose() }))
        }
        Ok(Credential::Session(session)) => println!("{}", session.expose()),
        Ok(Credential::ApiKey(_)) => return Exit::Failure,
        Err(e) => return fail(&e, None),
    }
    Exit::Ok
}

pub async fn logout(g: &Global) -> Exit {
    let Some(session) = g.session_id.as_deref().filter(|s| !s.is_empty()) else {
        return usage("no session to end: set ECGRID_SESSION_ID or pass --session-id");
    };
    let client = match key_client(g) {
        Ok(c) => c,
        Err(e) => return fail(&e, None),
    };
    match client
        .logout(&Credential::Session(SessionId::new(session)))
        .await
    {
        Ok(ended) if g.json => print_json(&json!({ "ended": ended })),
        Ok(true) => eprintln!("session ended"),
        Ok(false) => eprintln!("the session had already ended"),
        Err(e) => return fail(&e, None),
    }
    Exit::Ok
}

pub async fn whoami(g: &Global) -> Exit {
    let authed = match Authed::new(g).await {
        Ok(a) => a,
        Err(exit) => return exit,
    };
    let result = authed.client.check_credential(&authed.credential).await;
    authed.close().await;
    match result {
        Ok(id) if g.json => print_json(&json!({
            "user_id": id.user_id,
            "login": id.login,
            "auth_level": id.auth_level.map(|l| l.to_string()),
            "network_id": id.network_id,
        })),
        Ok(id) => {
            let level = id
                .auth_level
                .map(|l| l.to_string())
                .unwrap_or_else(|| "unknown".into());
            println!(
                "user {} ({}), {level}, network {}",
                id.user_id, id.login, id.network_id
            );
        }
        Err(e) => return fail(&e, None),
    }
    Exit::Ok
}

pub async fn get_api_key(g: &Global, args: GetKeyArgs) -> Exit {
    let user = match parse_user_id(&args.user_id) {
        Ok(u) => u,
        Err(exit) => return exit,
    };
    let authed = match Authed::new(g).await {
        Ok(a) => a,
        Err(exit) => return exit,
    };
    let result = authed.client.get_api_key(&authed.credential, user).await;
    authed.close().await;
    match result {
        Ok(key) if g.json => print_json(&json!({ "user_id": user.get(), "api_key": key.expose() })),
        Ok(key) => println!("{}", key.expose()),
        Err(e) => return fail(&e, Some(user)),
    }
    Exit::Ok
}

pub async fn generate_api_key(g: &Global, args: GenerateArgs) -> Exit {
    let Some(user) = args.user_id.as_deref() else {
        return usage("--user-id or --user-ids-from is required");
    };
    let user = match parse_user_id(user) {
        Ok(u) => u,
        Err(exit) => return exit,
    };
    if args.force && args.output_file.is_none() {
        return usage("--force only applies with --output-file");
    }
    // Everything that can be refused locally is refused before the rotation.
    let prepared = match &args.output_file {
        Some(path) => match prepare_secret_file(path, args.force) {
            Ok(p) => Some(p),
            Err(exit) => return exit,
        },
        None => None,
    };
    let question =
        format!("Rotate the API key of user {user}? Its current key stops working at once.");
    if let Err(exit) = confirm(args.yes, &question) {
        return exit;
    }
    let authed = match Authed::new(g).await {
        Ok(a) => a,
        Err(exit) => {
            return exit;
        }
    };
    let result = authed
        .client
        .generate_api_key(&authed.credential, user)
        .await;
    authed.close().await;
    let key = match result {
        Ok(key) => key,
        Err(e) => {
            return fail(&e, Some(user));
        }
    };
    let line = if g.json {
        json!({ "user_id": user.get(), "api_key": key.expose() }).to_string()
    } else {
        key.expose().to_string()
    };
    match prepared {
        None => println!("{line}"),
        Some(file) => {
            let path = args.output_file.clone().unwrap_or_default();
            if let Err(e) = file.commit(&format!("{}\n", key.expose())) {
                // The old key is dead: losing the new one would lock the user
                // out, so it is shown here rather than lost.
                eprintln!(
                    "error: the key was rotated but could not be saved to {}: {e}",
                    path.display()
                );
                eprintln!(
                    "the new key for user {user} (store it now): {}",
                    key.expose()
                );
                return Exit::Failure;
            }
            if args.print {
                println!("{line}");
            } else if !g.quiet {
                eprintln!("new key for user {user} written to {}", path.display());
            }
        }
    }
    Exit::Ok
}

pub async fn compare(g: &Global, args: CompareArgs) -> Exit {
    let (user, unknown) = match (
        parse_user_id(&args.user_id),
        parse_user_id(&args.unknown_user_id),
    ) {
        (Ok(u), Ok(n)) => (u, n),
        (Err(exit), _) | (_, Err(exit)) => return exit,
    };
    let forbidden = match (&args.forbidden_user_id, &args.forbidden_api_key) {
        (Some(id), Some(key)) => match parse_user_id(id) {
            Ok(id) => Some((Credential::ApiKey(ecgridos::ApiKey::new(key.clone())), id)),
            Err(exit) => return exit,
        },
        (None, None) => None,
        _ => return usage("--forbidden-user-id needs ECGRID_FORBIDDEN_API_KEY, and the reverse"),
    };
    let question = format!(
        "The scenario rotates the API key of user {user} once over each protocol. Proceed?"
    );
    if let Err(exit) = confirm(args.yes, &question) {
        return exit;
    }
    let clients: Vec<KeyClient> =
        match (crate::output::soap_client(g), crate::output::rest_client(g)) {
            (Ok(s), Ok(r)) => vec![s.into(), r.into()],
            (Err(e), _) | (_, Err(e)) => return fail(&e, None),
        };
    let credential = match (&g.api_key, &g.session_id) {
        (Some(k), _) if !k.is_empty() => Credential::ApiKey(ecgridos::ApiKey::new(k.clone())),
        _ => return usage("compare needs an API key (ECGRID_API_KEY): a session of one protocol is not valid over the other"),
    };
    let scenario = Scenario {
        credential,
        user_id: user,
        unknown_user_id: unknown,
        forbidden,
    };
    let steps = scenario.compare(&clients).await;
    let all_same = steps.iter().all(|s| s.same());
    let all_passed = steps.iter().all(|s| s.passed());
    if g.json {
        let rows: Vec<_> = steps
            .iter()
            .map(|s| {
                let observed: serde_json::Map<_, _> = s
                    .observed
                    .iter()
                    .map(|(p, o)| (p.to_string(), json!(o.to_string())))
                    .collect();
                json!({ "step": s.step, "expected": s.expected.to_string(), "observed": observed, "same": s.same(), "passed": s.passed() })
            })
            .collect();
        print_json(&json!({ "steps": rows, "same": all_same, "passed": all_passed }));
    } else {
        println!("{:<30} {:<34} {:<34}", "step", "soap", "rest");
        for s in &steps {
            let cell = |p| {
                s.observed
                    .iter()
                    .find(|(q, _)| *q == p)
                    .map(|(_, o)| o.to_string())
                    .unwrap_or_else(|| "(not run)".into())
            };
            let verdict = match (s.same(), s.passed()) {
                (true, true) => "same, as expected",
                (true, false) => "same, NOT as expected",
                (false, _) => "DIFFERENT",
            };
            println!(
                "{:<30} {:<34} {:<34} {verdict}",
                s.step,
                cell(ecgridos::Protocol::Soap),
                cell(ecgridos::Protocol::Rest)
            );
        }
    }
    if all_same && all_passed {
        Exit::Ok
    } else {
        Exit::Partial
    }
}
