//! Command-line arguments.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{ArgAction, Args, Parser, Subcommand, ValueEnum};

const EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  local failure (a file could not be read or written, standard output could not take a
     new key: it is then shown on stderr)
  2  usage error or refused input (bad option, invalid user ID, no --yes without a terminal,
     output file exists without --force, journal of another endpoint or in use by another
     run, empty user list); nothing was sent
  3  the service refused the call (SOAP fault or REST error); nothing changed
  4  the service could not be reached or its answer could not be read (connection, timeout,
     HTTP status, malformed response, size limit)
  5  outcome unknown: a key rotation may or may not have happened; read the current key with
     `ecgridos get-api-key --user-id N` (it does not rotate) instead of rotating again; an
     upload may or may not have arrived (the command searches the outbox and says)
  6  batch rotation finished, but some users failed or are unknown (see the output file);
     `parcels fetch` finished, but some parcels failed (they stay in the inbox); a scenario
     finished with a failed step or a difference between the protocols; or a replay found
     answers that differ from the recording
130  interrupted by SIGINT or SIGTERM (a rotation in flight was let finish and its key saved,
     unless interrupted twice)";

/// Rotate ECGridOS API keys safely, over SOAP (v4.1) or REST (v2).
///
/// Credentials come from the environment: ECGRID_API_KEY, or ECGRID_SESSION_ID,
/// or ECGRID_LOGIN with ECGRID_PASSWORD (or --password-stdin), in that order.
/// With a login and password the command opens its own session and closes it
/// at the end. Secrets are never printed unless the command's job is to print
/// one (login, get-api-key, generate-api-key).
#[derive(Debug, Parser)]
#[command(name = "ecgridos", version, after_long_help = EXIT_CODES, after_help = EXIT_CODES)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command accepts, before or after its name.
#[derive(Debug, Args)]
pub struct Global {
    /// The SOAP endpoint.
    #[arg(long, global = true, env = "ECGRID_ENDPOINT", default_value = ecgridos::DEFAULT_ENDPOINT)]
    pub endpoint: String,

    /// The REST base URL (for --protocol rest).
    #[arg(long, global = true, env = "ECGRID_REST_URL", default_value = ecgridos::DEFAULT_REST_URL)]
    pub rest_url: String,

    /// A session ID to use (prefer the environment variable: a flag value is
    /// visible to other users of this machine).
    #[arg(long, global = true, env = "ECGRID_SESSION_ID", hide_env_values = true)]
    pub session_id: Option<String>,

    /// An API key to use as the credential: read from ECGRID_API_KEY only,
    /// never from a flag (a flag value shows in `ps`).
    #[arg(skip = std::env::var("ECGRID_API_KEY").ok())]
    pub api_key: Option<String>,

    /// Login name for commands that open their own session.
    #[arg(long, global = true, env = "ECGRID_LOGIN")]
    pub login: Option<String>,

    /// Read the password from the first line of standard input (otherwise
    /// ECGRID_PASSWORD).
    #[arg(long, global = true)]
    pub password_stdin: bool,

    /// Seconds allowed for one attempt of a call.
    #[arg(long, global = true, default_value_t = 30.0, value_parser = parse_seconds)]
    pub timeout: f64,

    /// The largest answer read into memory, in bytes (a long inbox or
    /// outbox listing may need more than the default 1 MiB). Parcel
    /// downloads stream to disk and are not bound by it.
    #[arg(long, global = true, env = "ECGRID_MAX_RESPONSE_BYTES",
          default_value_t = ecgridos::DEFAULT_MAX_RESPONSE_BYTES,
          value_parser = clap::value_parser!(u64).range(1024..))]
    pub max_response_bytes: u64,

    /// SOAP version.
    #[arg(long, global = true, value_enum, default_value = "1.1")]
    pub soap_version: SoapVersionArg,

    /// The SOAP service namespace (the SOAPAction follows it).
    #[arg(long, global = true, default_value = ecgridos::wire::DEFAULT_NAMESPACE)]
    pub namespace: String,

    /// Protocol for key and identity calls.
    #[arg(long, global = true, value_enum, default_value = "soap")]
    pub protocol: ProtocolArg,

    /// Allow plain http:// to a host that is not loopback.
    #[arg(long, global = true)]
    pub allow_insecure_http: bool,

    /// HTTP proxy for every request: http://[user:password@]host:port (HTTPS
    /// endpoints go through a CONNECT tunnel). Without it, HTTPS_PROXY,
    /// HTTP_PROXY and NO_PROXY are honoured. Prefer the environment variable
    /// when the URL holds a password: a flag value is visible to other users.
    #[arg(
        long,
        global = true,
        env = "ECGRID_PROXY",
        hide_env_values = true,
        value_name = "URL"
    )]
    pub proxy: Option<String>,

    /// Ignore HTTPS_PROXY, HTTP_PROXY, ALL_PROXY and NO_PROXY.
    #[arg(long, global = true)]
    pub no_env_proxy: bool,

    /// Trust the PEM certificate(s) in FILE besides the system's roots (a
    /// private root CA); may be given several times.
    #[arg(long, global = true, value_name = "FILE")]
    pub ca_cert: Vec<PathBuf>,

    /// Client certificate (PEM) for servers that require one; needs --client-key.
    #[arg(long, global = true, value_name = "FILE", requires = "client_key")]
    pub client_cert: Option<PathBuf>,

    /// Private key (PEM) of --client-cert; never printed or logged.
    #[arg(long, global = true, value_name = "FILE", requires = "client_cert")]
    pub client_key: Option<PathBuf>,

    /// Lowest TLS version accepted.
    #[arg(long, global = true, value_enum, default_value = "1.2")]
    pub tls_min: TlsMinArg,

    /// Print machine-readable JSON on stdout.
    #[arg(long, global = true)]
    pub json: bool,

    /// More logging on stderr (-v, -vv, -vvv).
    #[arg(short, long, global = true, action = ArgAction::Count)]
    pub verbose: u8,

    /// Only errors on stderr.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
}

fn parse_seconds(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 && v <= 3600.0 => Ok(v),
        _ => Err("must be a number of seconds above 0 and at most 3600".into()),
    }
}

/// `--soap-version`.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum SoapVersionArg {
    /// SOAP 1.1.
    #[value(name = "1.1")]
    V11,
    /// SOAP 1.2.
    #[value(name = "1.2")]
    V12,
}

/// `--tls-min`.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum TlsMinArg {
    /// TLS 1.2.
    #[value(name = "1.2")]
    V12,
    /// TLS 1.3.
    #[value(name = "1.3")]
    V13,
}

/// `--protocol`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ProtocolArg {
    /// SOAP v4.1.
    Soap,
    /// REST v2.
    Rest,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the whole rotation story against an embedded fake server: no
    /// network, no configuration.
    Demo,
    /// Serve the embedded fake (SOAP + REST) until SIGINT or SIGTERM.
    ServeMock(ServeMockArgs),
    /// Print the service version.
    Version,
    /// Open a session and print its ID alone (for ECGRID_SESSION_ID).
    Login,
    /// End the session given by ECGRID_SESSION_ID / --session-id.
    Logout,
    /// Show who the credential belongs to.
    Whoami,
    /// Print a user's current API key alone, without rotating it.
    GetApiKey(GetKeyArgs),
    /// Replace a user's API key (or many users' keys). The old key stops
    /// working at once.
    #[command(visible_alias = "rotate-key")]
    GenerateApiKey(GenerateArgs),
    /// Run the migration scenario over SOAP and REST and compare each step.
    /// It rotates the user's key once per protocol and prints every key it
    /// created (the last is in force); the user's own key is refused as the
    /// credential.
    Compare(CompareArgs),
    /// List the contract's operations: name, area, effect, parameters, result.
    Operations(OperationsArgs),
    /// Call any operation: parameters as NAME=VALUE, the result as one JSON
    /// document on stdout. SessionID comes from the credential unless given.
    Call(CallArgs),
    /// Move EDI files (parcels) through the mailbox: list the inbox, fetch
    /// into a directory (stored durably, then confirmed), upload.
    #[command(subcommand)]
    Parcels(crate::parcels::ParcelsCommand),
    /// A pass-through SOAP proxy that records each exchange as one JSON line
    /// (credentials as keyed fingerprints, parcel content as size and SHA-256),
    /// until SIGINT or SIGTERM. Prints a ready line with the address.
    Record(RecordArgs),
    /// Send each call of a recording again over REST or SOAP with this
    /// credential and compare the answers with the recorded ones (reads
    /// only, unless --allow-writes against a loopback fake). Exit 6 when any
    /// answer differs.
    Replay(ReplayArgs),
    /// Scenario files: steps named by the contract's operations, run over
    /// SOAP and REST and compared step by step.
    #[command(subcommand)]
    Scenario(ScenarioCommand),
}

/// `scenario`.
#[derive(Debug, Subcommand)]
pub enum ScenarioCommand {
    /// Run a scenario file against a fresh embedded fake per protocol (the
    /// default), or against the endpoints of --endpoint / --rest-url. Exit 6
    /// when a step fails its expectations or the protocols differ.
    Run(ScenarioRunArgs),
}

/// `scenario run`.
#[derive(Debug, Args)]
pub struct ScenarioRunArgs {
    /// The scenario file (TOML).
    pub file: PathBuf,
    /// The protocols, run in this order (over both, each step is compared).
    #[arg(long, value_enum, value_delimiter = ',', default_value = "soap,rest")]
    pub over: Vec<ProtocolArg>,
    /// Also write the report as JUnit XML to FILE.
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// Show keys and session IDs in results and differences (they are
    /// compared either way).
    #[arg(long)]
    pub show_secrets: bool,
    /// Use the endpoints of --endpoint / --rest-url even when they are the
    /// defaults (production).
    #[arg(long)]
    pub remote: bool,
    /// Do not ask before steps that change state on a remote service.
    #[arg(long, short = 'y')]
    pub yes: bool,
}

/// `operations`.
#[derive(Debug, Args)]
pub struct OperationsArgs {
    /// Only the operations of this area (parcel, mailbox, user, ...).
    #[arg(long)]
    pub area: Option<String>,
}

/// `call`.
#[derive(Debug, Args)]
pub struct CallArgs {
    /// The operation, as the contract names it (`ParcelInBox`).
    pub operation: String,
    /// Parameters: strings as given, integers in decimal, true/false,
    /// dateTime in ISO 8601, base64Binary as @PATH or base64 text,
    /// enumerations by value name. A secret parameter (Password,
    /// NewPassword, SharedSecret, ...) may be given as NAME=@env:VAR (the
    /// environment variable VAR) or NAME=- (the first line of standard
    /// input), out of sight of `ps`.
    #[arg(value_name = "NAME=VALUE")]
    pub params: Vec<String>,
    /// Do not ask for confirmation of an operation that changes state.
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Show the secret fields of a read's result (keys, session IDs); the
    /// credential in use is never shown. A write's result (a new key) is
    /// always shown: it exists nowhere else.
    #[arg(long)]
    pub show_secrets: bool,
}

/// `serve-mock`.
#[derive(Debug, Args)]
pub struct ServeMockArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,
    /// JSON file with the users to seed (an array of {user_id, login, password,
    /// auth_level, network_id?, mailbox_id?, api_key?}).
    #[arg(long)]
    pub users: Option<PathBuf>,
    /// Seconds of inactivity after which a session expires.
    #[arg(long, default_value_t = 1200.0, value_parser = parse_seconds)]
    pub session_timeout: f64,
    /// Serve HTTPS with a certificate issued by a CA made at start; the CA
    /// certificate's path is given in the ready line ("ca_cert").
    #[arg(long)]
    pub tls: bool,
    /// Require a client certificate (mutual TLS); a client certificate and key
    /// the server accepts are written beside the CA certificate ("client_cert",
    /// "client_key" in the ready line).
    #[arg(long, requires = "tls")]
    pub require_client_cert: bool,
    /// Directory for the certificate files (default: a new directory under
    /// the system's temporary directory).
    #[arg(long, requires = "tls", value_name = "DIR")]
    pub tls_dir: Option<PathBuf>,
    /// Deliver every regular file of DIR (in name order) into a user's inbox
    /// before the ready line; their ParcelIDs are in it ("seeded_parcels").
    #[arg(long, value_name = "DIR")]
    pub seed_parcels: Option<PathBuf>,
    /// The login whose inbox --seed-parcels fills (default: the first user).
    #[arg(long, value_name = "LOGIN", requires = "seed_parcels")]
    pub seed_to: Option<String>,
    /// Parcels per page of the inbox and outbox listings.
    #[arg(long, value_name = "N", default_value_t = ecgridos::fake::DEFAULT_PAGE_SIZE)]
    pub inbox_page_size: usize,
    /// The largest parcel upload body, in bytes (other requests: 2 MiB).
    #[arg(long, value_name = "BYTES", default_value_t = ecgridos::fake::DEFAULT_MAX_UPLOAD_BYTES)]
    pub max_upload_bytes: usize,
}

/// `get-api-key`.
#[derive(Debug, Args)]
pub struct GetKeyArgs {
    /// The user whose key is read.
    #[arg(long)]
    pub user_id: String,
}

/// `generate-api-key`.
#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// The user whose key is replaced.
    #[arg(
        long,
        required_unless_present = "user_ids_from",
        conflicts_with = "user_ids_from"
    )]
    pub user_id: Option<String>,
    /// Rotate every user ID listed in FILE (one a line; blank lines and # comments
    /// are ignored). Needs --output-file, where results go as JSON Lines.
    #[arg(long, requires = "output_file")]
    pub user_ids_from: Option<PathBuf>,
    /// Do not ask for confirmation.
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Write the new key to PATH (atomically, mode 0600) instead of stdout; for a
    /// batch, the JSON Lines results file (appended to, and read on re-runs to
    /// skip users already done).
    #[arg(long)]
    pub output_file: Option<PathBuf>,
    /// Replace an existing --output-file (single rotation only).
    #[arg(long)]
    pub force: bool,
    /// Also print the key on stdout when --output-file is given.
    #[arg(long)]
    pub print: bool,
    /// Rotations in flight at once in a batch.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub concurrency: u16,
}

/// `compare`.
#[derive(Debug, Args)]
pub struct CompareArgs {
    /// The user whose key the scenario rotates (must be one the credential may rotate).
    #[arg(long)]
    pub user_id: String,
    /// A user ID that does not exist, for the not-found step.
    #[arg(long, default_value = "2147483647")]
    pub unknown_user_id: String,
    /// A user the credential may not act on, for the forbidden step (skipped when absent).
    #[arg(long)]
    pub forbidden_user_id: Option<String>,
    /// A credential of the forbidden step's caller: read from
    /// ECGRID_FORBIDDEN_API_KEY only, never from a flag.
    #[arg(skip = std::env::var("ECGRID_FORBIDDEN_API_KEY").ok())]
    pub forbidden_api_key: Option<String>,
    /// Skip the confirmation: the scenario rotates the user's key once per protocol.
    #[arg(long, short = 'y')]
    pub yes: bool,
}

/// `record`.
#[derive(Debug, Args)]
pub struct RecordArgs {
    /// Address to listen on (plain HTTP).
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,
    /// The SOAP endpoint requests are forwarded to (http or https; the
    /// network options apply). Requests keep their own path and query.
    #[arg(long, value_name = "URL")]
    pub upstream: String,
    /// The recording: JSON Lines, appended to (created with mode 0600).
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// Seconds a client connection may stay open with no request.
    #[arg(long, env = "ECGRID_RECORD_IDLE_TIMEOUT", value_name = "SECS", default_value_t = 30.0, value_parser = parse_seconds)]
    pub idle_timeout: f64,
    /// Seconds a request's headers may take to arrive.
    #[arg(long, env = "ECGRID_RECORD_HEADER_TIMEOUT", value_name = "SECS", default_value_t = 10.0, value_parser = parse_seconds)]
    pub header_timeout: f64,
    /// Seconds a request body may go without sending anything.
    #[arg(long, env = "ECGRID_RECORD_BODY_TIMEOUT", value_name = "SECS", default_value_t = 10.0, value_parser = parse_seconds)]
    pub body_timeout: f64,
    /// Client connections served at once (capped by half the file descriptor
    /// limit); more wait to be accepted.
    #[arg(long, env = "ECGRID_RECORD_MAX_CONNECTIONS", value_name = "N", default_value_t = ecgridos::migrate::record::DEFAULT_MAX_CONNECTIONS)]
    pub max_connections: usize,
    /// Memory all exchanges together may hold to read their messages, in
    /// bytes; past it an exchange is recorded with its parameters or result
    /// omitted.
    #[arg(long, env = "ECGRID_RECORD_MAX_HELD_BYTES", value_name = "BYTES", default_value_t = ecgridos::migrate::record::DEFAULT_MAX_HELD_BYTES)]
    pub max_held_bytes: usize,
}

/// `replay`.
#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// The recording (JSON Lines written by `ecgridos record`).
    pub file: PathBuf,
    /// The protocol to replay over (REST through --rest-url, SOAP through
    /// --endpoint).
    #[arg(long, value_enum)]
    pub over: ProtocolArg,
    /// Also write the report as JUnit XML to FILE.
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// Send writes too; accepted only for a loopback endpoint (a fake), and
    /// each recorded write is sent at most once.
    #[arg(long)]
    pub allow_writes: bool,
    /// Count an operation with no REST twin as a failure.
    #[arg(long)]
    pub strict: bool,
}
