//! The contract file, as data: `contract/ecgridos-v4.1-contract.json`.

use serde::Deserialize;

/// The whole contract.
#[derive(Debug, Deserialize)]
pub struct Contract {
    pub namespace: String,
    pub endpoint: String,
    pub service: String,
    pub soap11: Binding,
    pub soap12: Binding,
    pub operations: Vec<Operation>,
    pub complex_types: Vec<ComplexType>,
    pub enumerations: Vec<Enumeration>,
}

/// A binding and its port.
#[derive(Debug, Deserialize)]
pub struct Binding {
    pub binding: String,
    pub port: String,
}

/// One operation.
#[derive(Debug, Deserialize)]
pub struct Operation {
    pub name: String,
    pub soap_action: String,
    pub params: Vec<Field>,
    pub result: Option<Field>,
    pub effect: String,
    pub area: String,
    #[serde(default)]
    pub rest: Option<String>,
    #[serde(default)]
    pub rest_inferred: Option<String>,
}

/// A parameter, a result or a field of a complex type.
#[derive(Debug, Deserialize)]
pub struct Field {
    pub name: String,
    #[serde(rename = "type")]
    pub ty: String,
    pub min: u32,
    pub max: String,
    #[serde(default)]
    pub nillable: bool,
}

impl Field {
    /// True for `maxOccurs="unbounded"`.
    pub fn repeated(&self) -> bool {
        self.max != "1"
    }
}

/// A complex type.
#[derive(Debug, Deserialize)]
pub struct ComplexType {
    pub name: String,
    pub fields: Vec<Field>,
}

/// An enumeration (restriction of `s:string`).
#[derive(Debug, Deserialize)]
pub struct Enumeration {
    pub name: String,
    pub base: String,
    pub values: Vec<String>,
}

/// The path of the contract inside the repository.
pub const PATH: &str = "contract/ecgridos-v4.1-contract.json";

/// Reads and parses the contract.
pub fn load(root: &std::path::Path) -> Result<Contract, String> {
    let path = root.join(PATH);
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
}
