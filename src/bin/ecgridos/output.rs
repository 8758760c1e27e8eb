//! Exit codes, error reports, prompts, credentials and safe file writing.

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use ecgridos::{
    ApiKey, Client, Credential, Error, ErrorKind, KeyClient, Password, RestClient, SessionId,
    SoapVersion, UserId,
};

use crate::cli::{Global, ProtocolArg, SoapVersionArg};

/// The documented exit codes (see `ecgridos --help`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    Ok = 0,
    Failure = 1,
    Usage = 2,
    Refused = 3,
    Communication = 4,
    OutcomeUnknown = 5,
    Partial = 6,
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> Self {
        ExitCode::from(exit as u8)
    }
}

pub fn exit_for(err: &Error) -> Exit {
    match err.kind() {
        ErrorKind::InvalidInput => Exit::Usage,
        ErrorKind::OutcomeUnknown => Exit::OutcomeUnknown,
        ErrorKind::Authentication
        | ErrorKind::Authorization
        | ErrorKind::NotFound
        | ErrorKind::InvalidParameter
        | ErrorKind::ServiceError
        | ErrorKind::RateLimited
        | ErrorKind::OtherServiceError => Exit::Refused,
        _ => Exit::Communication,
    }
}

/// Prints the error on stderr (never a secret: the error type holds none) and
/// returns its exit code.
pub fn fail(err: &Error, user_id: Option<UserId>) -> Exit {
    eprintln!("error: {err}");
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        eprintln!("  caused by: {cause}");
        source = cause.source();
    }
    if let Some(fault) = err.fault() {
        eprintln!("  fault code: {}", fault.code);
        if let Some(detail) = &fault.detail {
            let fields = [
                (
                    "ECGridOSSOAPErrorCode",
                    detail.category.as_ref().map(|c| c.as_str().to_string()),
                ),
                ("ErrorCode", detail.error_code.clone()),
                ("ErrorString", detail.error_string.clone()),
                ("ErrorItem", detail.error_item.clone()),
                ("ErrorMessage", detail.error_message.clone()),
            ];
            for (name, value) in fields {
                if let Some(value) = value {
                    eprintln!("  {name}: {value}");
                }
            }
        }
    }
    if err.is_outcome_unknown() {
        let user = user_id.map(|u| u.to_string()).unwrap_or_else(|| "N".into());
        eprintln!("  to see the key now in force, without rotating again: ecgridos get-api-key --user-id {user}");
    }
    exit_for(err)
}

pub fn usage(message: impl std::fmt::Display) -> Exit {
    eprintln!("error: {message}");
    Exit::Usage
}

pub fn soap_client(g: &Global) -> Result<Client, Error> {
    let builder = Client::builder()
        .endpoint(&g.endpoint)
        .namespace(&g.namespace)
        .soap_version(match g.soap_version {
            SoapVersionArg::V11 => SoapVersion::V11,
            SoapVersionArg::V12 => SoapVersion::V12,
        })
        .timeout(Duration::from_secs_f64(g.timeout))
        .allow_insecure_http(g.allow_insecure_http);
    crate::net::with_net!(builder, g).build()
}

pub fn rest_client(g: &Global) -> Result<RestClient, Error> {
    let builder = RestClient::builder()
        .base_url(&g.rest_url)
        .timeout(Duration::from_secs_f64(g.timeout))
        .allow_insecure_http(g.allow_insecure_http);
    crate::net::with_net!(builder, g).build()
}

pub fn key_client(g: &Global) -> Result<KeyClient, Error> {
    Ok(match g.protocol {
        ProtocolArg::Soap => soap_client(g)?.into(),
        ProtocolArg::Rest => rest_client(g)?.into(),
    })
}

pub fn parse_user_id(text: &str) -> Result<UserId, Exit> {
    text.parse::<UserId>().map_err(usage)
}

/// The password: the first line of stdin with --password-stdin, else
/// ECGRID_PASSWORD. Never a flag value (it would show in `ps`).
pub fn password(g: &Global) -> Result<Password, Exit> {
    if g.password_stdin {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(|e| usage(format!("cannot read the password from stdin: {e}")))?;
        let line = line.trim_end_matches(['\r', '\n']);
        if line.is_empty() {
            return Err(usage("--password-stdin: standard input held no password"));
        }
        return Ok(Password::new(line));
    }
    match std::env::var("ECGRID_PASSWORD") {
        Ok(p) if !p.is_empty() => Ok(Password::new(p)),
        _ => Err(usage(
            "no password: set ECGRID_PASSWORD or pass --password-stdin",
        )),
    }
}

/// A credential for one command, with the session the command opened itself
/// (closed by [`Authed::close`]).
pub struct Authed {
    pub client: KeyClient,
    pub credential: Credential,
    opened: bool,
}

impl Authed {
    pub async fn new(g: &Global) -> Result<Authed, Exit> {
        let client = key_client(g).map_err(|e| fail(&e, None))?;
        if let Some(key) = g.api_key.as_deref().filter(|k| !k.is_empty()) {
            return Ok(Authed {
                client,
                credential: Credential::ApiKey(ApiKey::new(key)),
                opened: false,
            });
        }
        if let Some(session) = g.session_id.as_deref().filter(|s| !s.is_empty()) {
            return Ok(Authed {
                client,
                credential: Credential::Session(SessionId::new(session)),
                opened: false,
            });
        }
        let Some(login) = g.login.as_deref().filter(|l| !l.is_empty()) else {
            return Err(usage(
                "no credential: set ECGRID_API_KEY, or ECGRID_SESSION_ID, or ECGRID_LOGIN with ECGRID_PASSWORD",
            ));
        };
        let password = password(g)?;
        let credential = client
            .login(login, &password)
            .await
            .map_err(|e| fail(&e, None))?;
        tracing::info!("opened a session for this command");
        Ok(Authed {
            client,
            credential,
            opened: true,
        })
    }

    /// Ends the session this command opened, if it opened one.
    pub async fn close(self) {
        if self.opened {
            if let Err(e) = self.client.logout(&self.credential).await {
                eprintln!("warning: could not end the session this command opened: {e}");
            }
        }
    }
}

/// Asks on the terminal; without one, refuses unless --yes was given.
pub fn confirm(yes: bool, question: &str) -> Result<(), Exit> {
    if yes {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() || !std::io::stderr().is_terminal() {
        return Err(usage(format!(
            "{question}\nrefusing without confirmation: there is no terminal to ask on; pass --yes to proceed"
        )));
    }
    eprint!("{question} [y/N] ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    let _ = std::io::stdin().lock().read_line(&mut answer);
    if matches!(answer.trim(), "y" | "Y" | "yes" | "YES" | "Yes") {
        Ok(())
    } else {
        eprintln!("not confirmed; nothing was sent");
        Err(Exit::Usage)
    }
}

/// A file prepared before a key is rotated, so that the key can be stored
/// the moment it arrives: the temporary file exists (mode 0600) in the target's
/// directory, and the target is known to be writable and, unless `force`,
/// absent.
/// Dropping it without [`commit`](PreparedFile::commit) removes the temporary
/// file.
pub struct PreparedFile {
    target: PathBuf,
    temp: PathBuf,
    file: std::fs::File,
    committed: bool,
}

pub fn prepare_secret_file(target: &Path, force: bool) -> Result<PreparedFile, Exit> {
    if target.exists() && !force {
        return Err(usage(format!(
            "{} already exists; pass --force to replace it (nothing was sent)",
            target.display()
        )));
    }
    let dir = match target.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let file = create_private(&temp, true).map_err(|e| {
        eprintln!(
            "error: cannot create {}: {e} (nothing was sent)",
            temp.display()
        );
        Exit::Failure
    })?;
    Ok(PreparedFile {
        target: target.to_path_buf(),
        temp,
        file,
        committed: false,
    })
}

/// Creates a file readable and writable by its owner only.
pub fn create_private(path: &Path, exclusive: bool) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true);
    if exclusive {
        options.create_new(true);
    } else {
        options.create(true).append(true);
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)
}

impl PreparedFile {
    /// Writes, syncs and renames into place; only then is the key safe.
    pub fn commit(mut self, contents: &str) -> std::io::Result<()> {
        self.file.write_all(contents.as_bytes())?;
        self.file.sync_all()?;
        std::fs::rename(&self.temp, &self.target)?;
        self.committed = true;
        if let Some(dir) = self.target.parent().filter(|p| !p.as_os_str().is_empty()) {
            // Persist the rename itself; not every platform can open a directory.
            if let Ok(d) = std::fs::File::open(dir) {
                let _ = d.sync_all();
            }
        }
        Ok(())
    }
}

impl Drop for PreparedFile {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_file(&self.temp);
        }
    }
}
