//! Repository tasks. `cargo xtask codegen` reads the contract
//! (`contract/ecgridos-v4.1-contract.json`) and writes `wsdl/ECGridOS.wsdl` and
//! the generated Rust under `src/api/`; `cargo xtask codegen --check` fails
//! when the committed files differ from what it would write.

mod contract;
mod rust;
mod wsdl;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

/// The repository root (the parent of this crate).
fn root() -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    here.parent().unwrap_or(here).to_path_buf()
}

/// Formats Rust source with `rustfmt --edition 2021`, as `cargo fmt` would.
fn rustfmt(source: &str) -> Result<String, String> {
    let mut child = Command::new("rustfmt")
        .args(["--edition", "2021", "--emit", "stdout"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run rustfmt: {e}"))?;
    let mut stdin = child.stdin.take().ok_or("rustfmt has no stdin")?;
    let input = source.to_string();
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let output = child
        .wait_with_output()
        .map_err(|e| format!("rustfmt: {e}"))?;
    writer
        .join()
        .map_err(|_| "rustfmt writer thread failed".to_string())?
        .map_err(|e| format!("rustfmt stdin: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "rustfmt failed: {}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    String::from_utf8(output.stdout).map_err(|e| format!("rustfmt output: {e}"))
}

/// Every generated file: its path relative to the root and its content.
pub fn generate(root: &Path) -> Result<Vec<(PathBuf, String)>, String> {
    let c = contract::load(root)?;
    let mut files = vec![(PathBuf::from("wsdl/ECGridOS.wsdl"), wsdl::generate(&c))];
    for (path, source) in rust::generate(&c)? {
        files.push((path, rustfmt(&source)?));
    }
    Ok(files)
}

/// The generated files whose committed content differs from `files`.
pub fn stale(root: &Path, files: &[(PathBuf, String)]) -> Vec<PathBuf> {
    files
        .iter()
        .filter(|(path, content)| {
            std::fs::read_to_string(root.join(path)).ok().as_deref() != Some(content.as_str())
        })
        .map(|(path, _)| path.clone())
        .collect()
}

fn codegen(check: bool) -> Result<(), String> {
    let root = root();
    let files = generate(&root)?;
    if check {
        let stale = stale(&root, &files);
        if stale.is_empty() {
            println!("generated files are up to date ({} files)", files.len());
            return Ok(());
        }
        let list: Vec<String> = stale.iter().map(|p| p.display().to_string()).collect();
        return Err(format!(
            "generated files are stale, run `cargo xtask codegen`: {}",
            list.join(", ")
        ));
    }
    for (path, content) in &files {
        let full = root.join(path);
        if let Some(dir) = full.parent() {
            std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        std::fs::write(&full, content).map_err(|e| format!("{}: {e}", full.display()))?;
    }
    println!("wrote {} files", files.len());
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["codegen"] => codegen(false),
        ["codegen", "--check"] => codegen(true),
        _ => Err("usage: cargo xtask codegen [--check]".to_string()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_files_are_up_to_date() {
        let root = root();
        let files = generate(&root).unwrap();
        let stale = stale(&root, &files);
        assert!(
            stale.is_empty(),
            "run `cargo xtask codegen`; stale: {stale:?}"
        );
    }

    #[test]
    fn staleness_is_detected() {
        let root = root();
        let mut files = generate(&root).unwrap();
        files[0].1.push_str("<!-- changed -->");
        assert_eq!(stale(&root, &files), vec![files[0].0.clone()]);
    }
}
