//! Writing SOAP envelopes: requests (client side) and responses and faults (the
//! embedded fake). Hand-written rather than through a generic serializer: the
//! shapes are few and fixed, and writing bytes directly is exact and cheap.

use super::fault::SoapFault;
use super::SoapVersion;

const DECLARATION: &[u8] = b"<?xml version=\"1.0\" encoding=\"utf-8\"?>";
const SCHEMA_DECLS: &[u8] = b" xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" xmlns:xsd=\"http://www.w3.org/2001/XMLSchema\"";

/// Appends XML elements and escaped text to a byte buffer.
///
/// Text must already have passed [`check_xml_text`](super::check_xml_text):
/// the writer escapes markup but does not re-validate characters.
pub struct XmlWriter<'b> {
    buf: &'b mut Vec<u8>,
}

impl<'b> XmlWriter<'b> {
    /// A writer appending to `buf`.
    pub fn new(buf: &'b mut Vec<u8>) -> Self {
        XmlWriter { buf }
    }

    /// Writes `<name>`.
    pub fn open(&mut self, name: &str) {
        self.buf.push(b'<');
        self.buf.extend_from_slice(name.as_bytes());
        self.buf.push(b'>');
    }

    /// Writes `</name>`.
    pub fn close(&mut self, name: &str) {
        self.buf.extend_from_slice(b"</");
        self.buf.extend_from_slice(name.as_bytes());
        self.buf.push(b'>');
    }

    /// Writes `<name>text</name>`, escaping `text`.
    pub fn leaf(&mut self, name: &str, text: &str) {
        self.open(name);
        self.text(text);
        self.close(name);
    }

    /// Writes markup as is (the caller makes sure it is well-formed).
    pub fn markup(&mut self, markup: &str) {
        self.raw(markup.as_bytes());
    }

    /// Writes escaped character data.
    ///
    /// `&`, `<` and `>` become entity references; a carriage return becomes
    /// `&#xD;` because XML parsers turn a literal CR (or CR LF) into LF, and the
    /// value must arrive unchanged. Other control characters (which only the
    /// embedded fake writes: the clients refuse them first) become character
    /// references such as `&#x0;` and `&#x1B;`, as .NET's serializer writes
    /// them, although XML 1.0 forbids them.
    pub fn text(&mut self, text: &str) {
        let bytes = text.as_bytes();
        let mut start = 0;
        let mut reference = [0u8; 6];
        for (i, &b) in bytes.iter().enumerate() {
            let replacement: &[u8] = match b {
                b'&' => b"&amp;",
                b'<' => b"&lt;",
                b'>' => b"&gt;",
                b'\r' => b"&#xD;",
                b'\t' | b'\n' => continue,
                0..=0x1f => control_reference(b, &mut reference),
                _ => continue,
            };
            self.buf.extend_from_slice(&bytes[start..i]);
            self.buf.extend_from_slice(replacement);
            start = i + 1;
        }
        self.buf.extend_from_slice(&bytes[start..]);
    }

    /// Writes an `<name>` start tag that declares `namespace` as the default.
    fn open_with_default_ns(&mut self, name: &str, namespace: &str) {
        self.buf.push(b'<');
        self.buf.extend_from_slice(name.as_bytes());
        self.buf.extend_from_slice(b" xmlns=\"");
        self.attr_value(namespace);
        self.buf.extend_from_slice(b"\">");
    }

    fn attr_value(&mut self, value: &str) {
        for &b in value.as_bytes() {
            match b {
                b'&' => self.buf.extend_from_slice(b"&amp;"),
                b'<' => self.buf.extend_from_slice(b"&lt;"),
                b'"' => self.buf.extend_from_slice(b"&quot;"),
                _ => self.buf.push(b),
            }
        }
    }

    fn raw(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }
}

/// `&#xN;` for a control character (below 0x20), in `buf`.
fn control_reference(b: u8, buf: &mut [u8; 6]) -> &[u8] {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    buf[..3].copy_from_slice(b"&#x");
    if b < 0x10 {
        buf[3] = HEX[usize::from(b)];
        buf[4] = b';';
        &buf[..5]
    } else {
        buf[3] = HEX[usize::from(b >> 4)];
        buf[4] = HEX[usize::from(b & 0xf)];
        buf[5] = b';';
        &buf[..6]
    }
}

fn envelope_prefix(version: SoapVersion) -> &'static str {
    match version {
        SoapVersion::V11 => "soap",
        SoapVersion::V12 => "soap12",
    }
}

/// Writes the declaration, `Envelope` and `Body` start tags; the `xsi`/`xsd`
/// declarations are written as the asmx help pages show them.
fn open_envelope(w: &mut XmlWriter<'_>, version: SoapVersion) {
    let prefix = envelope_prefix(version);
    w.raw(DECLARATION);
    w.raw(b"<");
    w.raw(prefix.as_bytes());
    w.raw(b":Envelope");
    w.raw(SCHEMA_DECLS);
    w.raw(b" xmlns:");
    w.raw(prefix.as_bytes());
    w.raw(b"=\"");
    w.raw(version.envelope_ns().as_bytes());
    w.raw(b"\"><");
    w.raw(prefix.as_bytes());
    w.raw(b":Body>");
}

fn close_envelope(w: &mut XmlWriter<'_>, version: SoapVersion) {
    let prefix = envelope_prefix(version);
    w.raw(b"</");
    w.raw(prefix.as_bytes());
    w.raw(b":Body></");
    w.raw(prefix.as_bytes());
    w.raw(b":Envelope>");
}

/// Writes a document/literal wrapped request: the operation element in
/// `namespace` (as the default namespace, so that every parameter element is
/// qualified too) holding whatever `params` writes.
///
/// ```
/// use ecgridos::wire::{write_request, SoapVersion};
/// let mut body = Vec::new();
/// write_request(&mut body, SoapVersion::V11, "https://os.ecgrid.io/", "Version", |_| {});
/// let text = String::from_utf8(body).unwrap();
/// assert!(text.ends_with(
///     "<soap:Body><Version xmlns=\"https://os.ecgrid.io/\"></Version></soap:Body></soap:Envelope>"
/// ));
/// ```
pub fn write_request(
    buf: &mut Vec<u8>,
    version: SoapVersion,
    namespace: &str,
    operation: &str,
    params: impl FnOnce(&mut XmlWriter<'_>),
) {
    let mut w = XmlWriter::new(buf);
    open_envelope(&mut w, version);
    w.open_with_default_ns(operation, namespace);
    params(&mut w);
    w.close(operation);
    close_envelope(&mut w, version);
}

/// Writes a success response shaped like .NET asmx output:
/// `<OpResponse xmlns="ns"><OpResult>…</OpResult></OpResponse>`.
pub fn write_response(
    buf: &mut Vec<u8>,
    version: SoapVersion,
    namespace: &str,
    operation: &str,
    result: impl FnOnce(&mut XmlWriter<'_>),
) {
    let mut w = XmlWriter::new(buf);
    open_envelope(&mut w, version);
    w.raw(b"<");
    w.raw(operation.as_bytes());
    w.raw(b"Response xmlns=\"");
    w.attr_value(namespace);
    w.raw(b"\"><");
    w.raw(operation.as_bytes());
    w.raw(b"Result>");
    result(&mut w);
    w.raw(b"</");
    w.raw(operation.as_bytes());
    w.raw(b"Result></");
    w.raw(operation.as_bytes());
    w.raw(b"Response>");
    close_envelope(&mut w, version);
}

/// Writes a fault envelope. The ECGridOS detail elements, when present, are
/// written unqualified inside `detail` (1.1) or `soap12:Detail` (1.2).
pub fn write_fault(buf: &mut Vec<u8>, version: SoapVersion, fault: &SoapFault) {
    let mut w = XmlWriter::new(buf);
    open_envelope(&mut w, version);
    match version {
        SoapVersion::V11 => {
            w.open("soap:Fault");
            w.leaf("faultcode", fault.code.as_soap11());
            w.leaf("faultstring", &fault.message);
            if let Some(actor) = &fault.actor {
                w.leaf("faultactor", actor);
            }
            write_detail(&mut w, "detail", fault);
            w.close("soap:Fault");
        }
        SoapVersion::V12 => {
            w.open("soap12:Fault");
            w.open("soap12:Code");
            w.leaf(
                "soap12:Value",
                &fault.code.as_soap12().replace("soap:", "soap12:"),
            );
            w.close("soap12:Code");
            w.open("soap12:Reason");
            w.raw(b"<soap12:Text xml:lang=\"en\">");
            w.text(&fault.message);
            w.close("soap12:Text");
            w.close("soap12:Reason");
            if let Some(actor) = &fault.actor {
                w.leaf("soap12:Node", actor);
            }
            write_detail(&mut w, "soap12:Detail", fault);
            w.close("soap12:Fault");
        }
    }
    close_envelope(&mut w, version);
}

fn write_detail(w: &mut XmlWriter<'_>, element: &str, fault: &SoapFault) {
    let Some(d) = &fault.detail else {
        // asmx writes an empty detail element on framework faults.
        w.raw(b"<");
        w.raw(element.as_bytes());
        w.raw(b" />");
        return;
    };
    w.open(element);
    let fields = [
        ("ErrorCode", d.error_code.as_deref()),
        ("ErrorString", d.error_string.as_deref()),
        ("ErrorItem", d.error_item.as_deref()),
        ("ErrorMessage", d.error_message.as_deref()),
        (
            "ECGridOSSOAPErrorCode",
            d.category.as_ref().map(|c| c.as_str()),
        ),
    ];
    for (name, value) in fields {
        if let Some(value) = value {
            w.leaf(name, value);
        }
    }
    w.close(element);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(version: SoapVersion) -> String {
        let mut buf = Vec::new();
        write_request(
            &mut buf,
            version,
            "https://os.ecgrid.io/",
            "GenerateAPIKey",
            |w| {
                w.leaf("SessionID", "a<b&c\"d'e>f\r");
                w.leaf("UserID", "42");
            },
        );
        String::from_utf8(buf).unwrap()
    }

    #[test]
    fn soap11_request_bytes() {
        assert_eq!(
            request(SoapVersion::V11),
            concat!(
                r#"<?xml version="1.0" encoding="utf-8"?>"#,
                r#"<soap:Envelope xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/">"#,
                r#"<soap:Body><GenerateAPIKey xmlns="https://os.ecgrid.io/">"#,
                r#"<SessionID>a&lt;b&amp;c"d'e&gt;f&#xD;</SessionID><UserID>42</UserID>"#,
                r#"</GenerateAPIKey></soap:Body></soap:Envelope>"#
            )
        );
    }

    #[test]
    fn soap12_request_bytes() {
        let text = request(SoapVersion::V12);
        assert!(text.contains(
            r#"xmlns:soap12="http://www.w3.org/2003/05/soap-envelope"><soap12:Body><GenerateAPIKey xmlns="https://os.ecgrid.io/">"#
        ));
        assert!(text.ends_with("</GenerateAPIKey></soap12:Body></soap12:Envelope>"));
    }

    #[test]
    fn response_is_asmx_shaped() {
        let mut buf = Vec::new();
        write_response(
            &mut buf,
            SoapVersion::V11,
            "https://os.ecgrid.io/",
            "Version",
            |w| w.text("4.1"),
        );
        assert!(String::from_utf8(buf).unwrap().contains(
            r#"<soap:Body><VersionResponse xmlns="https://os.ecgrid.io/"><VersionResult>4.1</VersionResult></VersionResponse></soap:Body>"#
        ));
    }
}

#[cfg(test)]
mod control_tests {
    use super::*;

    #[test]
    fn control_characters_become_character_references() {
        let mut buf = Vec::new();
        XmlWriter::new(&mut buf).text("a\u{0}b\u{1b}c\td\ne\u{1f}<");
        assert_eq!(buf, b"a&#x0;b&#x1B;c\td\ne&#x1F;&lt;");
    }
}
