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
pub use ecgridos::durable::{create_private, parent_dir, rename_no_replace, sync_dir};

/// Writes one line on stderr. A failure to write there is ignored: there is
/// nowhere left to report it, and a panic would lose more than the line.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr().lock(), $($arg)*);
    }};
}
pub(crate) use say;

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
    Interrupted = 130,
}

/// Writes one line on stdout and flushes it.
pub fn print_line(line: &str) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}")?;
    out.flush()
}

/// Prints a line that holds no secret; a failed write is reported and gives
/// exit code 1 (never a panic).
pub fn print_or_fail(line: &str) -> Exit {
    match print_line(line) {
        Ok(()) => Exit::Ok,
        Err(e) => {
            say!("error: cannot write to standard output: {e}");
            Exit::Failure
        }
    }
}

/// Prints a line holding a secret that exists nowhere else (a new key). When
/// standard output cannot take it (closed, /dev/null, a full disk, a closed
/// pipe), the line goes to stderr instead and the exit code is 1.
pub fn print_secret(line: &str, what: &str) -> Exit {
    let written = if stdout_discards() {
        Err(std::io::Error::other("it is closed or /dev/null"))
    } else {
        print_line(line)
    };
    match written {
        Ok(()) => Exit::Ok,
        Err(e) => {
            say!("error: cannot write {what} to standard output: {e}");
            say!("{what} (store it now): {line}");
            Exit::Failure
        }
    }
}

/// True when standard output throws away what is written to it: /dev/null,
/// or closed (the Rust runtime then opens /dev/null in its place).
fn stdout_discards() -> bool {
    #[cfg(unix)]
    {
        use std::os::fd::AsFd;
        use std::os::unix::fs::{FileTypeExt, MetadataExt};
        let Ok(fd) = std::io::stdout().as_fd().try_clone_to_owned() else {
            return true;
        };
        let Ok(meta) = std::fs::File::from(fd).metadata() else {
            return true;
        };
        let Ok(null) = std::fs::metadata("/dev/null") else {
            return false;
        };
        meta.file_type().is_char_device() && meta.rdev() == null.rdev()
    }
    #[cfg(not(unix))]
    {
        false
    }
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
        ErrorKind::Io => Exit::Failure,
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
/// returns its exit code. The error's own text carries the advice of the
/// operation that failed; `rotated_user` is given only for a key rotation,
/// and adds the command that reads that user's key in force.
pub fn fail(err: &Error, rotated_user: Option<UserId>) -> Exit {
    say!("error: {err}");
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        say!("  caused by: {cause}");
        source = cause.source();
    }
    if let Some(fault) = err.fault() {
        say!("  fault code: {}", fault.code);
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
                    say!("  {name}: {value}");
                }
            }
        }
    }
    if let (true, Some(user)) = (err.is_outcome_unknown(), rotated_user) {
        say!("  to see the key now in force, without rotating again: ecgridos get-api-key --user-id {user}");
    }
    exit_for(err)
}

pub fn usage(message: impl std::fmt::Display) -> Exit {
    say!("error: {message}");
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
        .max_response_bytes(g.max_response_bytes)
        .allow_insecure_http(g.allow_insecure_http);
    crate::net::with_net!(builder, g).build()
}

pub fn rest_client(g: &Global) -> Result<RestClient, Error> {
    let builder = RestClient::builder()
        .base_url(&g.rest_url)
        .timeout(Duration::from_secs_f64(g.timeout))
        .max_response_bytes(g.max_response_bytes)
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
        return stdin_secret("--password-stdin").map(Password::new);
    }
    match std::env::var("ECGRID_PASSWORD") {
        Ok(p) if !p.is_empty() => Ok(Password::new(p)),
        _ => Err(usage(
            "no password: set ECGRID_PASSWORD or pass --password-stdin",
        )),
    }
}

/// A secret read from the first line of standard input (without its line
/// end), for `what` (named in errors): secrets never come from a flag's
/// value, which shows in `ps`.
pub fn stdin_secret(what: &str) -> Result<String, Exit> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| usage(format!("{what}: cannot read standard input: {e}")))?;
    let line = line.trim_end_matches(['\r', '\n']);
    if line.is_empty() {
        return Err(usage(format!("{what}: standard input held no value")));
    }
    Ok(line.to_string())
}

/// A key a command created: for which user, over which protocol.
pub struct NewKey {
    pub user: String,
    pub protocol: String,
    pub key: ApiKey,
}

impl NewKey {
    /// True when no later key of `keys` (after index `n`) replaced it.
    fn in_force(keys: &[NewKey], n: usize) -> bool {
        !keys[n + 1..].iter().any(|k| k.user == keys[n].user)
    }
}

/// Every key a command created, in the order made, one line each, saying
/// whether it is in force now or was already replaced by a later one (a
/// command that rotates keys shows them all: an old key may still be
/// configured somewhere, and only the last one works).
pub fn new_key_lines(keys: &[NewKey]) -> Vec<String> {
    (0..keys.len())
        .map(|n| {
            let k = &keys[n];
            let state = if NewKey::in_force(keys, n) {
                "in force now"
            } else {
                "already replaced"
            };
            format!(
                "new key for user {} from the {} run ({state}): {}",
                k.user,
                k.protocol,
                k.key.expose()
            )
        })
        .collect()
}

/// [`new_key_lines`] for `--json`: `new_keys` (user, protocol, api_key,
/// in_force) and `api_key_in_force` (the last one made).
pub fn new_keys_json(keys: &[NewKey]) -> (serde_json::Value, serde_json::Value) {
    let list = (0..keys.len())
        .map(|n| {
            let k = &keys[n];
            serde_json::json!({
                "user": k.user, "protocol": k.protocol, "api_key": k.key.expose(),
                "in_force": NewKey::in_force(keys, n),
            })
        })
        .collect();
    let last = keys.last().map(|k| k.key.expose());
    (serde_json::Value::Array(list), serde_json::json!(last))
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
        let credential = client.login(login, &password).await.map_err(|e| {
            let exit = fail(&e, None);
            if !e.is_outcome_unknown() {
                return exit;
            }
            // The Login's own advice (a session may be open) is printed; the
            // command's call was never sent, so its outcome is known: the
            // service could not be used (exit 4), not "may have happened".
            say!("  the command stopped before its own call: nothing else was sent");
            Exit::Communication
        })?;
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
                say!("warning: could not end the session this command opened: {e}");
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
    {
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "{question} [y/N] ");
        let _ = err.flush();
    }
    let mut answer = String::new();
    let _ = std::io::stdin().lock().read_line(&mut answer);
    if matches!(answer.trim(), "y" | "Y" | "yes" | "YES" | "Yes") {
        Ok(())
    } else {
        say!("not confirmed; nothing was sent");
        Err(Exit::Usage)
    }
}

/// A file prepared before a key is rotated, so that the key can be stored
/// the moment it arrives: the temporary file exists (mode 0600) in the target's
/// directory, and the target is known to be a file name in an existing
/// directory and, unless `force`, absent.
/// Dropping it without [`commit`](PreparedFile::commit) removes the temporary
/// file.
pub struct PreparedFile {
    target: PathBuf,
    temp: PathBuf,
    file: std::fs::File,
    force: bool,
    committed: bool,
}

pub fn prepare_secret_file(target: &Path, force: bool) -> Result<PreparedFile, Exit> {
    let refuse = |why: &str| {
        Err(usage(format!(
            "--output-file {}: {why} (nothing was sent)",
            target.display()
        )))
    };
    if target.as_os_str().as_encoded_bytes().ends_with(b"/") || target.file_name().is_none() {
        return refuse("names a directory, not a file");
    }
    let dir = parent_dir(target);
    if !std::fs::metadata(&dir).is_ok_and(|m| m.is_dir()) {
        return refuse("its directory does not exist");
    }
    match std::fs::metadata(target) {
        Ok(m) if m.is_dir() => return refuse("is a directory"),
        Ok(_) if !force => {
            return Err(usage(format!(
                "{} already exists; pass --force to replace it (nothing was sent)",
                target.display()
            )))
        }
        _ => {}
    }
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let file = create_private(&temp, true).map_err(|e| {
        say!(
            "error: cannot create {}: {e} (nothing was sent)",
            temp.display()
        );
        Exit::Failure
    })?;
    crate::signals::register_temp(&temp);
    Ok(PreparedFile {
        target: target.to_path_buf(),
        temp,
        file,
        force,
        committed: false,
    })
}

impl PreparedFile {
    /// Writes, syncs and renames into place (replacing an existing file only
    /// with `force`), then syncs the directory; only then is the key safe.
    pub fn commit(mut self, contents: &str) -> std::io::Result<()> {
        self.file.write_all(contents.as_bytes())?;
        self.file.sync_all()?;
        if self.force {
            std::fs::rename(&self.temp, &self.target)?;
        } else {
            rename_no_replace(&self.temp, &self.target)?;
        }
        self.committed = true;
        crate::signals::forget_temp(&self.temp);
        sync_dir(&parent_dir(&self.target))
    }
}

impl Drop for PreparedFile {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_file(&self.temp);
            crate::signals::forget_temp(&self.temp);
        }
    }
}
