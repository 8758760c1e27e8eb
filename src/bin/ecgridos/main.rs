//! `ecgridos`: rotate ECGridOS API keys safely, and run an embedded fake.

mod batch;
mod call;
mod cli;
mod keys;
mod mock;
mod net;
mod output;
mod parcels;
mod record;
mod replay;
mod scenario;
mod signals;

use std::process::ExitCode;

use clap::Parser;

use cli::{Cli, Command};
use output::Exit;

fn main() -> ExitCode {
    // Before anything reads a secret (the environment is read while parsing).
    signals::harden();
    let cli = Cli::parse();
    init_logging(cli.global.verbose, cli.global.quiet);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            output::say!("error: cannot start the async runtime: {e}");
            return Exit::Failure.into();
        }
    };
    let exit = runtime.block_on(run(cli));
    exit.into()
}

async fn run(cli: Cli) -> Exit {
    let g = &cli.global;
    if matches!(
        cli.command,
        Command::GenerateApiKey(_) | Command::Compare(_)
    ) {
        signals::install();
    }
    match cli.command {
        Command::Demo => mock::demo(g).await,
        Command::ServeMock(args) => mock::serve(g, args).await,
        Command::Version => keys::version(g).await,
        Command::Login => keys::login(g).await,
        Command::Logout => keys::logout(g).await,
        Command::Whoami => keys::whoami(g).await,
        Command::GetApiKey(args) => keys::get_api_key(g, args).await,
        Command::GenerateApiKey(args) => match args.user_ids_from.clone() {
            Some(file) => batch::rotate_many(g, args, file).await,
            None => keys::generate_api_key(g, args).await,
        },
        Command::Compare(args) => keys::compare(g, args).await,
        Command::Operations(args) => call::operations(g, &args),
        Command::Call(args) => call::call(g, &args).await,
        Command::Record(args) => record::record(g, &args).await,
        Command::Replay(args) => replay::replay(g, &args).await,
        Command::Scenario(command) => scenario::scenario(g, &command).await,
        Command::Parcels(command) => parcels::run(g, command).await,
    }
}

fn init_logging(verbose: u8, quiet: bool) {
    let level = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "info",
        (false, 2) => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("ECGRID_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(format!("ecgridos={level}")));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour codes are for a terminal; in a file or a pipe they are noise.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        // Closing a call's span prints its attempts, elapsed time and outcome.
        .with_span_events(tracing_subscriber::fmt::format::FmtSpan::CLOSE)
        .try_init();
}
