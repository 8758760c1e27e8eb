//! `serve-mock` and `demo`: the embedded fake, standalone or in a guided run.

use std::time::Duration;

use std::path::{Path, PathBuf};

use ecgridos::fake::{FakeServer, FakeTls, SeedUser, TlsMaterial};
use ecgridos::{ApiKey, Client, Error, SessionId, UserId};
use serde_json::json;

use crate::cli::{Global, ServeMockArgs};
use crate::output::{fail, print_line, print_or_fail, say, usage, Exit};

pub async fn serve(g: &Global, args: ServeMockArgs) -> Exit {
    let mut builder = FakeServer::builder()
        .listen(args.listen)
        .session_timeout(Duration::from_secs_f64(args.session_timeout))
        .namespace(&g.namespace)
        .inbox_page_size(args.inbox_page_size)
        .max_upload_bytes(args.max_upload_bytes);
    if let Some(path) = &args.users {
        let users = std::fs::read_to_string(path)
            .map_err(|e| e.to_string())
            .and_then(|text| {
                serde_json::from_str::<Vec<SeedUser>>(&text).map_err(|e| e.to_string())
            });
        match users {
            Ok(users) => builder = builder.users(users),
            Err(e) => return usage(format!("--users {}: {e}", path.display())),
        }
    }
    if args.tls {
        builder = builder.tls(FakeTls::new().require_client_cert(args.require_client_cert));
    }
    let server = match builder.start().await {
        Ok(s) => s,
        Err(e) => {
            say!(
                "error: cannot start the fake server on {}: {e}",
                args.listen
            );
            return Exit::Failure;
        }
    };
    let mailboxes = server.mailboxes();
    let users: Vec<_> = server
        .users()
        .into_iter()
        .map(|u| {
            let mailbox = mailboxes.iter().find(|m| m.user_id == u.user_id);
            json!({
                "user_id": u.user_id,
                "login": u.login,
                "password": u.password.expose(),
                "api_key": u.api_key.as_ref().map(ApiKey::expose),
                "auth_level": u.auth_level.as_str(),
                "network_id": mailbox.map(|m| m.network_id),
                "mailbox_id": mailbox.map(|m| m.mailbox_id),
                "ecgrid_id": mailbox.map(|m| m.ecgrid_id),
            })
        })
        .collect();
    let mut ready = json!({
        "soap_url": server.soap_url(),
        "rest_url": server.rest_url(),
        "events_url": format!("{}{}", server.rest_url(), ecgridos::fake::EVENTS_PATH),
        "users": users,
    });
    if let Some(dir) = &args.seed_parcels {
        match seed_parcels(&server, dir, args.seed_to.as_deref()) {
            Ok(ids) => ready["seeded_parcels"] = json!(ids),
            Err(e) => {
                server.shutdown().await;
                return usage(format!("--seed-parcels {}: {e}", dir.display()));
            }
        }
    }
    let mut made_dir = None;
    if let Some(material) = server.tls() {
        let (dir, made) = match &args.tls_dir {
            Some(dir) => (dir.clone(), false),
            None => (
                std::env::temp_dir().join(format!(
                    "ecgridos-mock-{}-{:08x}",
                    std::process::id(),
                    fastrand::u32(..)
                )),
                true,
            ),
        };
        match write_tls_files(&dir, material) {
            Ok(paths) => {
                for (name, path) in paths {
                    ready[name] = json!(path.display().to_string());
                }
            }
            Err(e) => {
                say!(
                    "error: cannot write the certificates to {}: {e}",
                    dir.display()
                );
                return Exit::Failure;
            }
        }
        made_dir = made.then_some(dir);
    }
    // Exactly one line, printed once the server accepts connections: printing
    // the seeded credentials (and the certificate paths) is this command's job.
    if print_or_fail(&ready.to_string()) != Exit::Ok {
        server.shutdown().await;
        return Exit::Failure;
    }
    wait_for_signal().await;
    if !g.quiet {
        say!("stopping");
    }
    server.shutdown().await;
    if let Some(dir) = made_dir {
        let _ = std::fs::remove_dir_all(dir);
    }
    Exit::Ok
}

/// Delivers every regular file of `dir`, in name order, into the inbox of
/// `to` (default: the first user); returns the ParcelIDs.
fn seed_parcels(server: &FakeServer, dir: &Path, to: Option<&str>) -> Result<Vec<i64>, String> {
    let login = match to {
        Some(login) => server
            .user(login)
            .map(|u| u.login)
            .ok_or_else(|| format!("no user has the login {login:?}"))?,
        None => server
            .users()
            .into_iter()
            .next()
            .map(|u| u.login)
            .ok_or("the fake has no users")?,
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| e.to_string())?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    files
        .iter()
        .map(|path| {
            let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            server
                .deliver(&login, &name, bytes)
                .ok_or_else(|| format!("cannot deliver to {login}"))
        })
        .collect()
}

/// Writes the CA certificate (and, with mutual TLS, the client CA, client
/// certificate and its key, mode 0600) into `dir`; returns the ready line's
/// names and the paths.
fn write_tls_files(
    dir: &Path,
    material: &TlsMaterial,
) -> std::io::Result<Vec<(&'static str, PathBuf)>> {
    std::fs::create_dir_all(dir)?;
    let mut written = Vec::new();
    let mut write = |name: &'static str, file: &str, text: &str, private: bool| {
        let path = dir.join(file);
        let _ = std::fs::remove_file(&path);
        let mut out = if private {
            crate::output::create_private(&path, true)?
        } else {
            std::fs::File::create(&path)?
        };
        std::io::Write::write_all(&mut out, text.as_bytes())?;
        written.push((name, path));
        std::io::Result::Ok(())
    };
    write("ca_cert", "ca.pem", material.ca_cert_pem(), false)?;
    if let (Some(ca), Some(cert), Some(key)) = (
        material.client_ca_cert_pem(),
        material.client_cert_pem(),
        material.client_key_pem(),
    ) {
        write("client_ca_cert", "client-ca.pem", ca, false)?;
        write("client_cert", "client.pem", cert, false)?;
        write("client_key", "client-key.pem", key.expose(), true)?;
    }
    Ok(written)
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// The demo's output: numbered steps, and whether stdout refused a line.
struct Steps {
    shown: usize,
    write_failed: bool,
}

impl Steps {
    fn line(&mut self, text: &str) {
        if let Err(e) = print_line(text) {
            if !self.write_failed {
                say!("error: cannot write to standard output: {e}");
            }
            self.write_failed = true;
        }
    }

    fn show(&mut self, what: &str, result: impl std::fmt::Display) {
        self.shown += 1;
        let text = format!("{:>2}. {what:<38} {result}", self.shown);
        self.line(&text);
    }
}

/// A demo expectation that did not hold: the fake or the client is broken.
fn broken(what: &str) -> Exit {
    say!("demo failed: {what}");
    Exit::Failure
}

pub async fn demo(g: &Global) -> Exit {
    let server = match FakeServer::start().await {
        Ok(s) => s,
        Err(e) => {
            say!("error: cannot start the embedded fake server: {e}");
            return Exit::Failure;
        }
    };
    let result = run_demo(g, &server).await;
    server.shutdown().await;
    match result {
        Ok(exit) => exit,
        Err(e) => fail(&e, None),
    }
}

async fn run_demo(g: &Global, server: &FakeServer) -> Result<Exit, Error> {
    let client = Client::builder()
        .endpoint(server.soap_url())
        .namespace(&g.namespace)
        .timeout(Duration::from_secs(10))
        .build()?;
    let (Some(admin), Some(alice)) = (server.user("admin"), server.user("alice")) else {
        return Ok(broken("the fake has no seeded admin and alice"));
    };
    let alice_id = UserId::from(alice.user_id);
    let mut steps = Steps {
        shown: 0,
        write_failed: false,
    };
    steps.line(&format!(
        "ecgridos demo: an embedded fake ECGridOS at {}",
        server.soap_url()
    ));
    steps.line(
        "(SOAP 1.1, nothing leaves this machine; secrets are shown by their first 4 characters)\n",
    );

    steps.show("Version", client.version().await?);

    let session: SessionId = client.login(&admin.login, &admin.password).await?;
    steps.show(
        &format!("Login as {}", admin.login),
        format!("session {}", session.preview()),
    );

    let me = client.who_am_i(&session).await?;
    let level = me
        .auth_level
        .as_ref()
        .map(|l| l.to_string())
        .unwrap_or_default();
    steps.show(
        "WhoAmI",
        format!("{} (user {}, {level})", me.login_name, me.user_id),
    );

    let old = client.user_get_api_key(&session, alice_id).await?;
    steps.show(
        &format!("UserGetAPIKey({})", alice.login),
        format!("current key {}", old.preview()),
    );

    let new = client.generate_api_key(&session, alice_id).await?;
    steps.show(
        &format!("GenerateAPIKey({})", alice.login),
        format!("new key {}", new.preview()),
    );
    if new == old {
        return Ok(broken("the new key equals the old one"));
    }

    match client.who_am_i(&old).await {
        Err(e) if e.is_authentication() => {
            let why = e.fault().map(|f| f.message.clone()).unwrap_or_default();
            steps.show(
                "WhoAmI with the old key",
                format!("rejected: {} ({why})", e.kind()),
            );
        }
        Err(e) => return Err(e),
        Ok(_) => return Ok(broken("the old key still works after rotation")),
    }

    let with_new = client.who_am_i(&new).await?;
    if with_new.user_id != alice.user_id {
        return Ok(broken("the new key belongs to another user"));
    }
    steps.show(
        "WhoAmI with the new key",
        format!(
            "accepted: {} (user {})",
            with_new.login_name, with_new.user_id
        ),
    );

    let read_back = client.user_get_api_key(&session, alice_id).await?;
    if read_back != new {
        return Ok(broken("UserGetAPIKey does not return the rotated key"));
    }
    steps.show(
        "UserGetAPIKey again",
        format!("{} = the rotated key", read_back.preview()),
    );

    let ended = client.logout(&session).await?;
    steps.show(
        "Logout",
        if ended {
            "session ended"
        } else {
            "session was already gone"
        },
    );
    match client.who_am_i(&session).await {
        Err(e) if e.is_authentication() => steps.show("WhoAmI with the ended session", "rejected"),
        Err(e) => return Err(e),
        Ok(_) => return Ok(broken("the session still works after Logout")),
    }
    steps.line(
        "\nOne rotation; the old key died at once. Against the real service: set ECGRID_LOGIN and \
         ECGRID_PASSWORD, then `ecgridos generate-api-key --user-id N --output-file key.txt`.",
    );
    Ok(if steps.write_failed {
        Exit::Failure
    } else {
        Exit::Ok
    })
}
