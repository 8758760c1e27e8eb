//! Running the `ecgridos` binary from a test, shared by the CLI and proxy tests.

use std::process::{Command, Output, Stdio};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_ecgridos");

/// A command with no `ECGRID_*` or proxy variables inherited from the
/// environment, and no stdin.
pub fn ecgridos<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Command {
    let mut cmd = Command::new(BIN);
    forget_inherited_settings(&mut cmd);
    cmd.args(args).stdin(Stdio::null());
    cmd
}

/// Removes the `ECGRID_*` and proxy variables this process inherited from
/// `cmd`'s environment, so that only what a test sets reaches the binary.
pub fn forget_inherited_settings(cmd: &mut Command) {
    for (name, _) in std::env::vars_os() {
        let Some(text) = name.to_str() else { continue };
        if text.starts_with("ECGRID_") || text.to_ascii_lowercase().ends_with("_proxy") {
            cmd.env_remove(&name);
        }
    }
}

/// Runs `cmd` to completion off the async runtime's threads.
pub async fn run(mut cmd: Command) -> Output {
    tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap()
}
