//! The pure SOAP codec: request and response envelopes as bytes, with no I/O.
//!
//! Everything here is synchronous and allocation-light so that it can be tested
//! byte for byte and benchmarked on its own. It depends on nothing else in the
//! crate but [`crate::secret`].

mod canonical;
mod dataset;
mod datetime;
mod envelope;
mod fault;
mod reader;
pub mod stream;
mod typed;
mod values;

pub use dataset::{DataSet, DataTable};
pub(crate) use datetime::rfc3339_utc;
pub use datetime::{DateTime, DateTimeError, Offset};
pub use envelope::{write_fault, write_request, write_response, XmlWriter};
pub use fault::{EcgridDetail, FaultCategory, FaultCode, SoapFault};
pub use reader::{
    read_request, read_response, read_response_canonical, read_response_in_full, Ns, Reply,
    RequestParam, SoapRequest, Start, XmlCursor,
};
pub use typed::{
    field_position, in_field, json_optional, json_repeated, read_items, read_slot, required,
    write_element, write_items, write_optional, write_repeated, Base64, FieldSpec, Occurs, Slot,
    TextValue, XmlValue,
};
pub(crate) use typed::{result_value, xml_array, xml_enum, xml_struct};
pub use values::{AuthLevel, IntFlag, ResultValue, SessionInfo};

use std::borrow::Cow;

/// The production SOAP endpoint of ECGridOS v4.1.
pub const DEFAULT_ENDPOINT: &str = "https://os.ecgrid.io/v4.1/prod/ECGridOS.asmx";

/// The default ECGridOS v4.1 service namespace, as the live asmx pages give it.
pub const DEFAULT_NAMESPACE: &str = "https://os.ecgrid.io/";
/// The SOAP 1.1 envelope namespace.
pub const SOAP11_ENVELOPE_NS: &str = "http://schemas.xmlsoap.org/soap/envelope/";
/// The SOAP 1.2 envelope namespace.
pub const SOAP12_ENVELOPE_NS: &str = "http://www.w3.org/2003/05/soap-envelope";
/// The XML Schema instance namespace (`xsi:`).
pub const XSI_NS: &str = "http://www.w3.org/2001/XMLSchema-instance";
/// The XML Schema namespace (`xsd:`).
pub const XSD_NS: &str = "http://www.w3.org/2001/XMLSchema";

/// Default limit on element nesting when reading a response.
pub const DEFAULT_MAX_DEPTH: usize = 64;

/// The SOAP protocol version of an envelope.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum SoapVersion {
    /// SOAP 1.1: `text/xml` with a `SOAPAction` header. The default.
    #[default]
    V11,
    /// SOAP 1.2: `application/soap+xml` with the action in the content type.
    V12,
}

impl SoapVersion {
    /// The envelope namespace of this version.
    pub fn envelope_ns(self) -> &'static str {
        match self {
            SoapVersion::V11 => SOAP11_ENVELOPE_NS,
            SoapVersion::V12 => SOAP12_ENVELOPE_NS,
        }
    }

    /// The media type (without parameters) of this version's messages.
    pub fn media_type(self) -> &'static str {
        match self {
            SoapVersion::V11 => "text/xml",
            SoapVersion::V12 => "application/soap+xml",
        }
    }

    /// The `Content-Type` of a response of this version.
    pub fn response_content_type(self) -> &'static str {
        match self {
            SoapVersion::V11 => "text/xml; charset=utf-8",
            SoapVersion::V12 => "application/soap+xml; charset=utf-8",
        }
    }

    /// The `Content-Type` and, for SOAP 1.1, the `SOAPAction` header value of a
    /// request whose action is `action` (namespace + operation name).
    pub fn request_headers(self, action: &str) -> (String, Option<String>) {
        match self {
            SoapVersion::V11 => (
                "text/xml; charset=utf-8".to_string(),
                Some(format!("\"{action}\"")),
            ),
            SoapVersion::V12 => (
                format!("application/soap+xml; charset=utf-8; action=\"{action}\""),
                None,
            ),
        }
    }
}

impl std::fmt::Display for SoapVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SoapVersion::V11 => "1.1",
            SoapVersion::V12 => "1.2",
        })
    }
}

/// The SOAP action of an operation: the namespace followed by the operation
/// name (`https://os.ecgrid.io/GenerateAPIKey`).
pub fn soap_action(namespace: &str, operation: &str) -> String {
    let mut action = String::with_capacity(namespace.len() + operation.len() + 1);
    action.push_str(namespace);
    if !namespace.ends_with('/') {
        action.push('/');
    }
    action.push_str(operation);
    action
}

/// Why a string cannot be sent as XML 1.0 text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InvalidXmlChar {
    /// The offending character.
    pub ch: char,
    /// Its character (not byte) position in the string.
    pub position: usize,
}

impl std::fmt::Display for InvalidXmlChar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "character U+{:04X} at position {} cannot be carried by XML 1.0",
            self.ch as u32, self.position
        )
    }
}

/// Checks that every character of `text` is allowed in an XML 1.0 document
/// (`#x9 | #xA | #xD | [#x20-#xD7FF] | [#xE000-#xFFFD] | [#x10000-#x10FFFF]`).
pub fn check_xml_text(text: &str) -> Result<(), InvalidXmlChar> {
    // Fast path: printable ASCII is the common case for IDs and keys.
    if text.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        return Ok(());
    }
    for (position, ch) in text.chars().enumerate() {
        if !is_xml_char(ch) {
            return Err(InvalidXmlChar { ch, position });
        }
    }
    Ok(())
}

fn is_xml_char(ch: char) -> bool {
    matches!(ch, '\u{9}' | '\u{A}' | '\u{D}' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

/// Why a response could not be read.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReadError {
    /// Not a well-formed SOAP response of the expected shape.
    Malformed(Cow<'static, str>),
    /// Elements nested deeper than the configured limit.
    TooDeep {
        /// The limit in force.
        limit: usize,
    },
    /// A field of a typed result is missing or its value does not fit its
    /// type.
    Field {
        /// The field, as `Type.Element` in the contract's names.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
}

impl ReadError {
    pub(crate) fn malformed(reason: impl Into<Cow<'static, str>>) -> Self {
        ReadError::Malformed(reason.into())
    }
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadError::Malformed(reason) => f.write_str(reason),
            ReadError::TooDeep { limit } => write!(f, "elements nested deeper than {limit}"),
            ReadError::Field { field, reason } => write!(f, "{field}: {reason}"),
        }
    }
}

impl std::error::Error for ReadError {}

/// Replaces each secret found in `text`, in any form an echo may take,
/// with `<redacted>` (see [`crate::secret::redact_text`]).
pub(crate) fn redact_in_place(text: &mut String, secrets: &[&str]) {
    *text = crate::secret::redact_text(text, secrets);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xml_text_rules() {
        assert!(check_xml_text("plain ascii").is_ok());
        assert!(check_xml_text("tab\tnewline\ncr\r ünïcødé 😀 \u{E000}").is_ok());
        let err = check_xml_text("ab\u{1}c").unwrap_err();
        assert_eq!((err.ch, err.position), ('\u{1}', 2));
        assert!(check_xml_text("\u{FFFE}").is_err());
        assert!(check_xml_text("\u{FFFF}").is_err());
        assert!(check_xml_text("\0").is_err());
    }

    #[test]
    fn soap_action_joins_namespace_and_name() {
        assert_eq!(
            soap_action("https://os.ecgrid.io/", "GenerateAPIKey"),
            "https://os.ecgrid.io/GenerateAPIKey"
        );
        assert_eq!(soap_action("urn:example", "Version"), "urn:example/Version");
    }

    #[test]
    fn redaction_replaces_every_occurrence() {
        let mut text = String::from("bad session abc and abc again");
        redact_in_place(&mut text, &["abc", ""]);
        assert_eq!(text, "bad session <redacted> and <redacted> again");
    }
}
