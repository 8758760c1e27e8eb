//! The generated Rust API under `src/api/`.

use std::path::PathBuf;

use crate::contract::Contract;

/// The generated Rust files (not yet formatted).
pub fn generate(_c: &Contract) -> Result<Vec<(PathBuf, String)>, String> {
    Ok(Vec::new())
}
