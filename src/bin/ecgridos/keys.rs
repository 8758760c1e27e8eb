//! The single-call commands.

use ecgridos::{Credential, KeyClient, Scenario, SessionId};
use serde_json::json;

use crate::cli::{CompareArgs, GenerateArgs, GetKeyArgs, Global};
use crate::output::{
    confirm, fail, key_client, new_key_lines, new_keys_json, parse_user_id, password,
    prepare_secret_file, print_or_fail, print_secret, say, usage, Authed, Exit, NewKey,
};
use crate::signals::InFlight;

pub async fn version(g: &Global) -> Exit {
    let result = match key_client(g) {
        Ok(KeyClient::Soap(c)) => c.version().await,
        Ok(KeyClient::Rest(c)) => c.version().await,
        Err(e) => Err(e),
    };
    match result {
        Ok(v) if g.json => print_or_fail(&json!({ "version": v }).to_string()),
        Ok(v) => print_or_fail(&v),
        Err(e) => fail(&e, None),
    }
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
    let credential = match client.login(login, &password).await {
        Ok(c) => c,
        Err(e) => return fail(&e, None),
    };
    let Credential::Session(session) = &credential else {
        return Exit::Failure;
    };
    let line = if g.json {
        json!({ "session_id": session.expose() }).to_string()
    } else {
        session.expose().to_string()
    };
    if let Err(e) = crate::output::print_line(&line) {
        // Nobody can use a session whose ID was not delivered: end it
        // rather than leave it open.
        say!("error: cannot write the session ID to standard output: {e}");
        match client.logout(&credential).await {
            Ok(_) => say!("the session was ended"),
            Err(e) => {
                // Still open: its ID must reach someone, to use or end it.
                say!("error: could not end the session either: {e}");
                say!("the open session's ID: {}", session.expose());
            }
        }
        return Exit::Failure;
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
        Ok(ended) if g.json => print_or_fail(&json!({ "ended": ended }).to_string()),
        Ok(true) => {
            say!("session ended");
            Exit::Ok
        }
        Ok(false) => {
            say!("the session had already ended");
            Exit::Ok
        }
        Err(e) => fail(&e, None),
    }
}

pub async fn whoami(g: &Global) -> Exit {
    let authed = match Authed::new(g).await {
        Ok(a) => a,
        Err(exit) => return exit,
    };
    let result = authed.client.check_credential(&authed.credential).await;
    authed.close().await;
    match result {
        Ok(id) if g.json => print_or_fail(
            &json!({
                "user_id": id.user_id,
                "login": id.login,
                "auth_level": id.auth_level.map(|l| l.to_string()),
                "network_id": id.network_id,
            })
            .to_string(),
        ),
        Ok(id) => {
            let level = id
                .auth_level
                .map(|l| l.to_string())
                .unwrap_or_else(|| "unknown".into());
            print_or_fail(&format!(
                "user {} ({}), {level}, network {}",
                id.user_id, id.login, id.network_id
            ))
        }
        Err(e) => fail(&e, None),
    }
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
        Ok(key) if g.json => {
            print_or_fail(&json!({ "user_id": user.get(), "api_key": key.expose() }).to_string())
        }
        Ok(key) => print_or_fail(key.expose()),
        Err(e) => fail(&e, None),
    }
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
        Err(exit) => return exit,
    };
    if crate::signals::stopping() {
        authed.close().await;
        return Exit::Interrupted;
    }
    let in_flight = InFlight::start(user);
    let result = authed
        .client
        .generate_api_key(&authed.credential, user)
        .await;
    // The key is stored before the session is closed: closing can take up to
    // --timeout, and the old key is already dead.
    let exit = match result {
        Ok(key) => {
            in_flight.received(&key);
            let exit = deliver_key(g, &args, user, &key, prepared);
            in_flight.stored();
            exit
        }
        Err(e) => {
            drop(in_flight);
            fail(&e, Some(user))
        }
    };
    authed.close().await;
    exit
}

/// Stores or prints a new key; when that fails, shows it on stderr rather
/// than lose it (exit 1).
fn deliver_key(
    g: &Global,
    args: &GenerateArgs,
    user: ecgridos::UserId,
    key: &ecgridos::ApiKey,
    prepared: Option<crate::output::PreparedFile>,
) -> Exit {
    let line = if g.json {
        json!({ "user_id": user.get(), "api_key": key.expose() }).to_string()
    } else {
        key.expose().to_string()
    };
    let what = format!("the new key for user {user}");
    let (Some(file), Some(path)) = (prepared, &args.output_file) else {
        return print_secret(&line, &what);
    };
    if let Err(e) = file.commit(&format!("{}\n", key.expose())) {
        say!(
            "error: the key was rotated but could not be saved to {}: {e}",
            path.display()
        );
        say!("{what} (store it now): {}", key.expose());
        return Exit::Failure;
    }
    if args.print {
        return print_secret(&line, &what);
    }
    if !g.quiet {
        say!("new key for user {user} written to {}", path.display());
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
    let clients: Vec<KeyClient> =
        match (crate::output::soap_client(g), crate::output::rest_client(g)) {
            (Ok(s), Ok(r)) => vec![s.into(), r.into()],
            (Err(e), _) | (_, Err(e)) => return fail(&e, None),
        };
    let credential = match (&g.api_key, &g.session_id) {
        (Some(k), _) if !k.is_empty() => Credential::ApiKey(ecgridos::ApiKey::new(k.clone())),
        _ => return usage("compare needs an API key (ECGRID_API_KEY): a session of one protocol is not valid over the other"),
    };
    // With the user's own key, each rotation kills the credential the next
    // step needs: refuse rather than depend on carrying the new key along.
    match clients[0].check_credential(&credential).await {
        Ok(me) if me.user_id == user.get() => {
            return usage(format!(
                "ECGRID_API_KEY is user {user}'s own key, and compare rotates that key twice; use an administrator's key (nothing was sent)"
            ))
        }
        Ok(_) => {}
        Err(e) => return fail(&e, None),
    }
    let question = format!(
        "The scenario rotates the API key of user {user} once over each protocol. Proceed?"
    );
    if let Err(exit) = confirm(args.yes, &question) {
        return exit;
    }
    let scenario = Scenario {
        credential,
        user_id: user,
        unknown_user_id: unknown,
        forbidden,
    };
    // Run by run, so that a signal stops the scenario between two rotations;
    // every key stays guarded until the report holding it is printed.
    let mut comparison = ecgridos::Comparison::default();
    let mut scenario = scenario;
    let mut guards = Vec::new();
    for client in &clients {
        if crate::signals::stopping() || comparison.stopped_after.is_some() {
            break;
        }
        let guard = InFlight::start(user);
        let run = scenario.run(client).await;
        if let Some(key) = &run.new_key {
            guard.received(key);
            guards.push(guard);
        }
        scenario.credential = comparison.record(client.protocol(), run);
    }
    let new_keys: Vec<NewKey> = comparison
        .new_keys
        .iter()
        .map(|(p, k)| NewKey {
            user: user.to_string(),
            protocol: p.to_string(),
            key: k.clone(),
        })
        .collect();
    let steps = &comparison.steps;
    let all_same = steps.iter().all(|s| s.same());
    let all_passed = steps.iter().all(|s| s.passed()) && comparison.stopped_after.is_none();
    let table = if g.json {
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
        let (keys, in_force) = new_keys_json(&new_keys);
        json!({
            "steps": rows, "same": all_same, "passed": all_passed,
            "new_keys": keys, "api_key_in_force": in_force,
            "stopped_after": comparison.stopped_after.map(|p| p.to_string()),
        })
        .to_string()
    } else {
        let mut text = format!("{:<30} {:<34} {:<34}", "step", "soap", "rest");
        for s in steps {
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
            text.push_str(&format!(
                "\n{:<30} {:<34} {:<34} {verdict}",
                s.step,
                cell(ecgridos::Protocol::Soap),
                cell(ecgridos::Protocol::Rest)
            ));
        }
        for line in new_key_lines(&new_keys) {
            text.push('\n');
            text.push_str(&line);
        }
        text
    };
    let printed = print_secret(
        &table,
        &format!("the scenario's results with user {user}'s new keys"),
    );
    guards.into_iter().for_each(InFlight::stored);
    if let Some(protocol) = comparison.stopped_after {
        say!("stopped after the {protocol} run: its rotation's outcome is unknown; to see the key now in force, without rotating again: ecgridos get-api-key --user-id {user}");
        return Exit::OutcomeUnknown;
    }
    if printed != Exit::Ok {
        return printed;
    }
    if all_same && all_passed {
        Exit::Ok
    } else {
        Exit::Partial
    }
}
