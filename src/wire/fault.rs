//! SOAP faults and the ECGridOS detail they carry.

use std::fmt;

use super::SoapVersion;

/// A SOAP fault returned by the service (HTTP 500 and a `Fault` body).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SoapFault {
    /// The envelope version the fault arrived in.
    pub version: SoapVersion,
    /// The fault code, with its prefix resolved.
    pub code: FaultCode,
    /// The human-readable reason (`faultstring`, or the SOAP 1.2 `Reason/Text`).
    pub message: String,
    /// The `faultactor` (1.1) or `Node` (1.2), when present.
    pub actor: Option<String>,
    /// The ECGridOS error detail, when the fault carries one. Framework faults
    /// (malformed envelope, unknown SOAPAction) raised by ASP.NET itself have none.
    pub detail: Option<EcgridDetail>,
}

/// The code of a SOAP fault, resolved against the SOAP envelope namespaces.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FaultCode {
    /// The caller's request was at fault (1.1 `Client`, 1.2 `Sender`).
    Client,
    /// The server failed (1.1 `Server`, 1.2 `Receiver`).
    Server,
    /// The envelope namespace was not the one the server speaks.
    VersionMismatch,
    /// A header marked `mustUnderstand` was not understood.
    MustUnderstand,
    /// Any other code, kept as written.
    Other(String),
}

impl FaultCode {
    /// The code as `soap:`-prefixed text, the way a SOAP 1.1 server writes it.
    pub fn as_soap11(&self) -> &str {
        match self {
            FaultCode::Client => "soap:Client",
            FaultCode::Server => "soap:Server",
            FaultCode::VersionMismatch => "soap:VersionMismatch",
            FaultCode::MustUnderstand => "soap:MustUnderstand",
            FaultCode::Other(s) => s,
        }
    }

    /// The code as `soap:`-prefixed text, the way a SOAP 1.2 server writes it.
    pub fn as_soap12(&self) -> &str {
        match self {
            FaultCode::Client => "soap:Sender",
            FaultCode::Server => "soap:Receiver",
            FaultCode::VersionMismatch => "soap:VersionMismatch",
            FaultCode::MustUnderstand => "soap:MustUnderstand",
            FaultCode::Other(s) => s,
        }
    }
}

impl fmt::Display for FaultCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FaultCode::Client => "Client",
            FaultCode::Server => "Server",
            FaultCode::VersionMismatch => "VersionMismatch",
            FaultCode::MustUnderstand => "MustUnderstand",
            FaultCode::Other(s) => s,
        })
    }
}

/// The ECGridOS-specific part of a fault's `detail`.
///
/// Two shapes are documented and both are read: the older one with
/// `ErrorCode`, `ErrorString`, `ErrorItem` and `ErrorMessage`, and the newer one
/// with a single `ECGridOSSOAPErrorCode` category.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EcgridDetail {
    /// `ErrorCode`: a number in the older shape.
    pub error_code: Option<String>,
    /// `ErrorString`: the error's short name in the older shape.
    pub error_string: Option<String>,
    /// `ErrorItem`: the parameter at fault, in the older shape.
    pub error_item: Option<String>,
    /// `ErrorMessage`: a longer explanation, in the older shape.
    pub error_message: Option<String>,
    /// `ECGridOSSOAPErrorCode`: the category, in the newer shape.
    pub category: Option<FaultCategory>,
}

impl EcgridDetail {
    /// True when no field was found.
    pub fn is_empty(&self) -> bool {
        *self == EcgridDetail::default()
    }
}

/// The ECGridOS error category (`ECGridOSSOAPErrorCode`).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FaultCategory {
    /// Missing, expired or invalid SessionID (or API key).
    Authentication,
    /// The caller may not do this.
    Authorization,
    /// The object named does not exist.
    ObjectNotFound,
    /// A parameter is out of range or malformed.
    InvalidParameter,
    /// The service failed.
    SystemError,
    /// A category this crate does not know, kept as written.
    Other(String),
}

impl FaultCategory {
    /// Reads a category as the service writes it.
    pub fn parse(s: &str) -> FaultCategory {
        match s.trim() {
            "Authentication" => FaultCategory::Authentication,
            "Authorization" => FaultCategory::Authorization,
            "ObjectNotFound" => FaultCategory::ObjectNotFound,
            "InvalidParameter" => FaultCategory::InvalidParameter,
            "SystemError" => FaultCategory::SystemError,
            other => FaultCategory::Other(other.to_string()),
        }
    }

    /// The category as the service writes it.
    pub fn as_str(&self) -> &str {
        match self {
            FaultCategory::Authentication => "Authentication",
            FaultCategory::Authorization => "Authorization",
            FaultCategory::ObjectNotFound => "ObjectNotFound",
            FaultCategory::InvalidParameter => "InvalidParameter",
            FaultCategory::SystemError => "SystemError",
            FaultCategory::Other(s) => s,
        }
    }
}

impl SoapFault {
    /// The fault's category: the newer shape's `ECGridOSSOAPErrorCode` when
    /// present; otherwise, for the older shape, `Authentication` when the item at
    /// fault is the `SessionID` (the only category that shape lets a client infer
    /// without the vendor's unpublished table of error numbers).
    pub fn category(&self) -> Option<FaultCategory> {
        let detail = self.detail.as_ref()?;
        if let Some(category) = &detail.category {
            return Some(category.clone());
        }
        match detail.error_item.as_deref() {
            Some(item) if item.trim().eq_ignore_ascii_case("SessionID") => {
                Some(FaultCategory::Authentication)
            }
            _ => None,
        }
    }

    /// True when the service rejected the credential (expired, unknown or
    /// missing session ID or API key). The call was refused before it acted.
    pub fn is_authentication(&self) -> bool {
        self.category() == Some(FaultCategory::Authentication)
    }

    /// Replaces every occurrence of each secret in the fault's texts with
    /// `<redacted>`, in case a server echoes a request value back.
    pub(crate) fn redact(&mut self, secrets: &[&str]) {
        if let FaultCode::Other(code) = &mut self.code {
            super::redact_in_place(code, secrets);
        }
        super::redact_in_place(&mut self.message, secrets);
        if let Some(actor) = &mut self.actor {
            super::redact_in_place(actor, secrets);
        }
        if let Some(d) = &mut self.detail {
            if let Some(FaultCategory::Other(category)) = &mut d.category {
                super::redact_in_place(category, secrets);
            }
            let fields = [
                &mut d.error_code,
                &mut d.error_string,
                &mut d.error_item,
                &mut d.error_message,
            ];
            for text in fields.into_iter().flatten() {
                super::redact_in_place(text, secrets);
            }
        }
    }
}

impl fmt::Display for SoapFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)?;
        if let Some(d) = &self.detail {
            let fields = [
                ("category", d.category.as_ref().map(FaultCategory::as_str)),
                ("ErrorCode", d.error_code.as_deref()),
                ("ErrorString", d.error_string.as_deref()),
                ("ErrorItem", d.error_item.as_deref()),
                ("ErrorMessage", d.error_message.as_deref()),
            ];
            let mut first = true;
            for (name, value) in fields {
                if let Some(value) = value {
                    f.write_str(if first { " [" } else { ", " })?;
                    write!(f, "{name}={value}")?;
                    first = false;
                }
            }
            if !first {
                f.write_str("]")?;
            }
        }
        Ok(())
    }
}
