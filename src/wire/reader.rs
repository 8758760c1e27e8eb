//! Reading SOAP envelopes with quick-xml: responses and faults (client side) and
//! requests (the embedded fake).
//!
//! Namespaces are resolved, never matched as prefixes: a server may write
//! `soap:`, `s:`, `SOAP-ENV:` or a default namespace. A DOCTYPE is refused
//! outright, so no entity is ever declared, expanded or fetched; nesting depth
//! is bounded.

use std::borrow::Cow;

use quick_xml::events::{BytesStart, Event};
use quick_xml::name::{NamespaceResolver, QName, ResolveResult};
use quick_xml::Reader;

use super::canonical::{resolve_reference, Scanner};
use super::fault::{EcgridDetail, FaultCategory, FaultCode, SoapFault};
use super::values::ResultValue;
use super::{ReadError, SoapVersion, SOAP11_ENVELOPE_NS, SOAP12_ENVELOPE_NS, XSI_NS};

/// What a response held: the operation's result, or a fault.
#[derive(Clone, Debug, PartialEq)]
pub enum Reply<T> {
    /// The `<Op>Result` value.
    Result(T),
    /// A SOAP fault.
    Fault(SoapFault),
}

/// The namespace of an element, classified against the ones this codec knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ns {
    /// The service namespace the cursor was created with.
    Service,
    /// The SOAP 1.1 envelope namespace.
    Soap11,
    /// The SOAP 1.2 envelope namespace.
    Soap12,
    /// No namespace.
    None,
    /// Any other namespace, or an undeclared prefix.
    Other,
}

impl Ns {
    fn envelope_version(self) -> Option<SoapVersion> {
        match self {
            Ns::Soap11 => Some(SoapVersion::V11),
            Ns::Soap12 => Some(SoapVersion::V12),
            _ => None,
        }
    }
}

/// An element start as the cursor reports it.
#[derive(Clone, Copy, Debug)]
pub struct Start<'x> {
    /// The element's namespace.
    pub ns: Ns,
    /// The element's local name.
    pub local: &'x str,
    /// True for `<a/>`: no content and no end event follows.
    pub empty: bool,
    /// True when the element carries `xsi:nil="true"`.
    pub nil: bool,
}

enum Item<'x> {
    Start(Start<'x>),
    End,
    Text(Cow<'x, str>),
    /// A character or predefined entity reference, resolved.
    Char(char),
    Eof,
}

/// A pull cursor over one XML document, with namespaces classified and
/// nesting depth bounded. Result readers ([`ResultValue`]) use it.
///
/// It drives quick-xml's namespace resolver itself: a scope is opened only
/// for an element whose attributes may declare a namespace, and the
/// classification of the default namespace is kept until the scopes change,
/// so that the common element (no prefix, no declaration) is classified
/// without a lookup.
///
/// A cursor over a response in the canonical asmx shape reads through a
/// byte scanner instead (see `canonical.rs`), and the quick-xml reader is
/// left unused.
pub struct XmlCursor<'x> {
    /// Set for a canonical response: the scanner reads the elements.
    scan: Option<Scanner<'x>>,
    input: &'x str,
    reader: Reader<&'x [u8]>,
    resolver: NamespaceResolver,
    /// Bit `d` set: the open element at depth `d` (as counted by `depth`)
    /// opened a resolver scope. Deeper elements are kept in `deep_scopes`,
    /// innermost last; neither allocates for the depths SOAP answers use.
    scopes: u128,
    deep_scopes: Vec<usize>,
    /// The classification of the default namespace in the current scopes.
    default_ns: Option<Ns>,
    /// A scope to close before the next event: the declarations of an
    /// element stay in force until then, so a QName in its text (a fault
    /// code) resolves against them.
    pending_pop: bool,
    service_ns: &'x str,
    depth: usize,
    max_depth: usize,
}

impl<'x> XmlCursor<'x> {
    fn new(input: &'x str, service_ns: &'x str, max_depth: usize) -> Self {
        XmlCursor {
            scan: None,
            input,
            reader: Reader::from_str(input),
            resolver: NamespaceResolver::default(),
            scopes: 0,
            deep_scopes: Vec::new(),
            default_ns: None,
            pending_pop: false,
            service_ns,
            depth: 0,
            max_depth,
        }
    }

    /// A cursor that reads through `scan`.
    fn scanning(input: &'x str, scan: Scanner<'x>) -> Self {
        let mut cur = XmlCursor::new(input, "", 0);
        cur.scan = Some(scan);
        cur
    }

    /// Reads the result element of a canonical response through the
    /// scanner. The response element must hold exactly one result element,
    /// not nil; anything else leaves the canonical path.
    fn read_canonical_result<T: ResultValue>(&mut self, operation: &str) -> Result<T, ReadError> {
        let start = match self.next_child()? {
            Some(start) if start.local.strip_prefix(operation) == Some("Result") && !start.nil => {
                start
            }
            _ => return Err(self.leave_canonical()),
        };
        let value = T::read(self, &start)?;
        if self.next_child()?.is_some() {
            return Err(self.leave_canonical());
        }
        Ok(value)
    }

    fn leave_canonical(&mut self) -> ReadError {
        match &mut self.scan {
            Some(scan) => scan.leave(),
            None => ReadError::malformed("not a canonical response"),
        }
    }

    /// Opens a resolver scope for the element `e` at `depth` when it may
    /// declare namespaces, and reads its start.
    fn enter(
        &mut self,
        e: &BytesStart<'_>,
        depth: usize,
        empty: bool,
    ) -> Result<Start<'x>, ReadError> {
        if may_declare_ns(e.attributes_raw()) {
            self.resolver
                .push(e)
                .map_err(|err| malformed_xml(&quick_xml::Error::from(err)))?;
            match u32::try_from(depth).ok().and_then(|d| 1u128.checked_shl(d)) {
                Some(bit) => self.scopes |= bit,
                None => self.deep_scopes.push(depth),
            }
            self.default_ns = None;
        }
        let (local, prefix) = e.name().decompose();
        let ns = match (prefix, self.default_ns) {
            (None, Some(ns)) => ns,
            (None, None) => {
                let ns = classify(self.service_ns, &self.resolver.resolve_prefix(None, true));
                self.default_ns = Some(ns);
                ns
            }
            (Some(_), _) => classify(self.service_ns, &self.resolver.resolve_prefix(prefix, true)),
        };
        self.start(ns, local.into_inner(), e, empty)
    }

    /// Marks the resolver scope of the element at `depth`, if it opened one,
    /// to close before the next event.
    fn leave(&mut self, depth: usize) {
        let opened = match u32::try_from(depth).ok().and_then(|d| 1u128.checked_shl(d)) {
            Some(bit) => {
                let opened = self.scopes & bit != 0;
                self.scopes &= !bit;
                opened
            }
            None => self.deep_scopes.last() == Some(&depth) && self.deep_scopes.pop().is_some(),
        };
        self.pending_pop |= opened;
    }

    fn classify(&self, resolved: &ResolveResult<'_>) -> Ns {
        classify(self.service_ns, resolved)
    }

    /// Resolves a QName written as text (a fault code such as `soap:Client`)
    /// against the namespace declarations in scope.
    fn classify_qname<'t>(&self, text: &'t str) -> (Ns, &'t str) {
        let (resolved, local) = self.resolver.resolve_element(QName(text));
        (self.classify(&resolved), local.into_inner())
    }

    /// Gives a slice of the input the lifetime of the input. Events of a slice
    /// reader borrow the input; this recovers that borrow from a shorter one.
    fn input_slice(&self, part: &str) -> Result<&'x str, ReadError> {
        let base = self.input.as_ptr() as usize;
        let start = (part.as_ptr() as usize).wrapping_sub(base);
        self.input
            .get(start..start.saturating_add(part.len()))
            .filter(|s| s.as_ptr() == part.as_ptr())
            .ok_or_else(|| ReadError::malformed("element name outside the input"))
    }

    fn start(
        &self,
        ns: Ns,
        local: &str,
        e: &BytesStart<'_>,
        empty: bool,
    ) -> Result<Start<'x>, ReadError> {
        let local = self.input_slice(local)?;
        let mut nil = false;
        // Attributes are parsed only when one may be xsi:nil: most elements
        // carry only namespace declarations, which the resolver already read.
        let mut attributes = e.attributes();
        let raw = e.attributes_raw();
        let wanted = if !raw.is_empty() && raw.contains("nil") {
            usize::MAX
        } else {
            0
        };
        for attr in attributes.with_checks(false).take(wanted) {
            let attr =
                attr.map_err(|err| ReadError::Malformed(format!("bad attribute: {err}").into()))?;
            let (attr_ns, attr_local) = self.resolver.resolve_attribute(attr.key);
            if attr_local.into_inner() == "nil"
                && matches!(attr_ns, ResolveResult::Bound(ns) if ns.into_inner() == XSI_NS)
            {
                nil = matches!(attr.value.trim(), "true" | "1");
            }
        }
        Ok(Start {
            ns,
            local,
            empty,
            nil,
        })
    }

    fn next(&mut self) -> Result<Item<'x>, ReadError> {
        loop {
            if self.pending_pop {
                self.pending_pop = false;
                self.resolver.pop();
                self.default_ns = None;
            }
            let event = self.reader.read_event().map_err(|e| malformed_xml(&e))?;
            match event {
                Event::Start(e) => {
                    let depth = self.depth + 1;
                    let start = self.enter(&e, depth, false)?;
                    self.depth = depth;
                    if self.depth > self.max_depth {
                        return Err(ReadError::TooDeep {
                            limit: self.max_depth,
                        });
                    }
                    return Ok(Item::Start(start));
                }
                Event::Empty(e) => {
                    let depth = self.depth + 1;
                    let start = self.enter(&e, depth, true);
                    self.leave(depth);
                    if depth > self.max_depth {
                        return Err(ReadError::TooDeep {
                            limit: self.max_depth,
                        });
                    }
                    return start.map(Item::Start);
                }
                Event::End(_) => {
                    self.leave(self.depth);
                    self.depth = self.depth.saturating_sub(1);
                    return Ok(Item::End);
                }
                Event::Text(t) => return Ok(Item::Text(t.xml10_content())),
                Event::CData(t) => return Ok(Item::Text(t.xml10_content())),
                Event::GeneralRef(r) => {
                    return match resolve_reference(&r) {
                        Some(ch) => Ok(Item::Char(ch)),
                        None if r.starts_with('#') => Err(ReadError::Malformed(
                            format!("bad character reference &{};", &*r).into(),
                        )),
                        None => Err(ReadError::Malformed(
                            format!("undeclared entity &{};", &*r).into(),
                        )),
                    };
                }
                Event::DocType(_) => {
                    return Err(ReadError::malformed(
                        "DOCTYPE refused: a SOAP message may not carry a document type declaration",
                    ))
                }
                Event::Decl(d) => {
                    if let Some(Ok(encoding)) = d.encoding() {
                        if !encoding.eq_ignore_ascii_case("utf-8") {
                            return Err(ReadError::Malformed(
                                format!("unsupported encoding {encoding:?}: only UTF-8 is read")
                                    .into(),
                            ));
                        }
                    }
                }
                Event::Comment(_) | Event::PI(_) => {}
                Event::Eof => return Ok(Item::Eof),
            }
        }
    }

    /// The next element start among the current element's children, skipping
    /// text and comments; `None` at the current element's end.
    #[inline]
    pub fn next_child(&mut self) -> Result<Option<Start<'x>>, ReadError> {
        match &mut self.scan {
            Some(scan) => scan.next_child(),
            None => self.next_child_event(),
        }
    }

    fn next_child_event(&mut self) -> Result<Option<Start<'x>>, ReadError> {
        loop {
            match self.next()? {
                Item::Start(start) => return Ok(Some(start)),
                Item::End => return Ok(None),
                Item::Text(_) | Item::Char(_) => {}
                Item::Eof => return Err(ReadError::malformed("document ends inside an element")),
            }
        }
    }

    /// Skips the rest of an element whose start was just read.
    pub fn skip(&mut self, start: &Start<'_>) -> Result<(), ReadError> {
        if let Some(scan) = &mut self.scan {
            return scan.skip(start);
        }
        if start.empty {
            return Ok(());
        }
        let target = self.depth - 1;
        while self.depth > target {
            if let Item::Eof = self.next()? {
                return Err(ReadError::malformed("document ends inside an element"));
            }
        }
        Ok(())
    }

    /// The text content of an element whose start was just read, with
    /// character and entity references resolved and CDATA included. A child
    /// element inside it is an error.
    #[inline]
    pub fn text(&mut self, start: &Start<'_>) -> Result<Cow<'x, str>, ReadError> {
        match &mut self.scan {
            Some(scan) => scan.text(start),
            None => self.text_event(start),
        }
    }

    fn text_event(&mut self, start: &Start<'_>) -> Result<Cow<'x, str>, ReadError> {
        if start.empty {
            return Ok(Cow::Borrowed(""));
        }
        let mut text: Cow<'x, str> = Cow::Borrowed("");
        loop {
            match self.next()? {
                Item::Text(piece) if text.is_empty() => text = piece,
                Item::Text(piece) => owned(&mut text, piece.len()).push_str(&piece),
                Item::Char(ch) => owned(&mut text, ch.len_utf8()).push(ch),
                Item::End => return Ok(text),
                Item::Start(child) => {
                    return Err(ReadError::Malformed(
                        format!(
                            "unexpected element <{}> inside text of <{}>",
                            child.local, start.local
                        )
                        .into(),
                    ))
                }
                Item::Eof => return Err(ReadError::malformed("document ends inside an element")),
            }
        }
    }

    /// After the root element closed: only comments, whitespace and the end of
    /// the document may follow.
    fn finish(&mut self) -> Result<(), ReadError> {
        loop {
            match self.next()? {
                Item::Eof => return Ok(()),
                Item::Text(t) if t.trim().is_empty() => {}
                Item::Char(ch) if ch.is_whitespace() => {}
                _ => {
                    return Err(ReadError::malformed(
                        "content after the end of the envelope",
                    ))
                }
            }
        }
    }

    /// Reads the root `Envelope` and its children up to the `Body` start;
    /// returns the envelope's SOAP version.
    fn open_body(&mut self) -> Result<SoapVersion, ReadError> {
        let root = loop {
            match self.next()? {
                Item::Start(s) => break s,
                Item::Text(t) if t.trim().is_empty() => {}
                Item::Char(ch) if ch.is_whitespace() => {}
                Item::Text(_) | Item::Char(_) => {
                    return Err(ReadError::malformed("text before the root element"))
                }
                Item::End | Item::Eof => {
                    return Err(ReadError::malformed("no root element: empty or not XML"))
                }
            }
        };
        let version = match (root.local, root.ns.envelope_version()) {
            ("Envelope", Some(v)) if !root.empty => v,
            _ => {
                return Err(ReadError::Malformed(
                    format!(
                        "root element <{}> is not a SOAP 1.1 or 1.2 Envelope",
                        root.local
                    )
                    .into(),
                ))
            }
        };
        while let Some(child) = self.next_child()? {
            if child.ns.envelope_version() == Some(version) && child.local == "Body" {
                if child.empty {
                    return Err(ReadError::malformed("empty SOAP Body"));
                }
                return Ok(version);
            }
            // Header and anything else before the Body carry nothing we use.
            self.skip(&child)?;
        }
        Err(ReadError::malformed("SOAP Envelope without a Body"))
    }

    /// Closes Body and Envelope after their content was read.
    fn close_body(&mut self) -> Result<(), ReadError> {
        while let Some(extra) = self.next_child()? {
            self.skip(&extra)?;
        }
        while let Some(extra) = self.next_child()? {
            self.skip(&extra)?;
        }
        self.finish()
    }
}

/// The text being collected, made owned when a second piece arrives, with
/// room for a few more pieces (text split by references comes in several).
fn owned<'t>(text: &'t mut Cow<'_, str>, more: usize) -> &'t mut String {
    if let Cow::Borrowed(first) = *text {
        let mut s = String::with_capacity(first.len() + more.max(16));
        s.push_str(first);
        *text = Cow::Owned(s);
    }
    text.to_mut()
}

/// True when raw attribute text may hold a namespace declaration.
fn may_declare_ns(raw: &str) -> bool {
    !raw.is_empty() && raw.contains("xmlns")
}

fn malformed_xml(e: &quick_xml::Error) -> ReadError {
    ReadError::Malformed(format!("not well-formed XML: {e}").into())
}

fn classify(service_ns: &str, resolved: &ResolveResult<'_>) -> Ns {
    match resolved {
        ResolveResult::Bound(ns) => {
            let ns = ns.into_inner();
            if ns == service_ns {
                Ns::Service
            } else if ns == SOAP11_ENVELOPE_NS {
                Ns::Soap11
            } else if ns == SOAP12_ENVELOPE_NS {
                Ns::Soap12
            } else {
                Ns::Other
            }
        }
        ResolveResult::Unbound => Ns::None,
        ResolveResult::Unknown(_) => Ns::Other,
    }
}

fn document(xml: &[u8]) -> Result<&str, ReadError> {
    utf8(xml).map(without_bom)
}

/// The input without its byte order mark.
fn without_bom(input: &str) -> &str {
    input.strip_prefix('\u{FEFF}').unwrap_or(input)
}

/// The input as text, validated once for both the fast path and the full
/// reader.
fn utf8(xml: &[u8]) -> Result<&str, ReadError> {
    std::str::from_utf8(xml).map_err(|e| {
        ReadError::Malformed(
            format!(
                "not UTF-8 (invalid byte sequence at byte {})",
                e.valid_up_to()
            )
            .into(),
        )
    })
}

/// Reads a response to `operation`: the value of `<{operation}Result>` inside
/// `<{operation}Response>` (both in `namespace`), or a SOAP fault of either
/// version.
///
/// ```
/// use ecgridos::wire::{read_response, Reply};
/// let xml = br#"<?xml version="1.0" encoding="utf-8"?>
/// <s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>
/// <VersionResponse xmlns="https://os.ecgrid.io/"><VersionResult>4.1</VersionResult></VersionResponse>
/// </s:Body></s:Envelope>"#;
/// let reply: Reply<String> = read_response(xml, "https://os.ecgrid.io/", "Version", 64).unwrap();
/// assert_eq!(reply, Reply::Result("4.1".to_string()));
/// ```
pub fn read_response<T: ResultValue>(
    xml: &[u8],
    namespace: &str,
    operation: &str,
    max_depth: usize,
) -> Result<Reply<T>, ReadError> {
    let input = utf8(xml)?;
    if let Some(body) = Canonical::open(input, namespace, operation) {
        if let Some(value) = body.text_result(operation).and_then(T::from_text) {
            return value.map(Reply::Result);
        }
        if let Some(reply) = body.read(operation, max_depth) {
            return reply;
        }
    }
    read_document(without_bom(input), namespace, operation, max_depth)
}

/// [`read_response`] through the canonical path only: `None` when the
/// response is not in the canonical asmx shape (or leaves it anywhere), where
/// [`read_response`] would use the full reader. Public so that tests and
/// benchmarks can compare the two paths on the same input.
pub fn read_response_canonical<T: ResultValue>(
    xml: &[u8],
    namespace: &str,
    operation: &str,
    max_depth: usize,
) -> Option<Result<Reply<T>, ReadError>> {
    let body = Canonical::open(std::str::from_utf8(xml).ok()?, namespace, operation)?;
    if let Some(value) = body.text_result(operation).and_then(T::from_text) {
        return Some(value.map(Reply::Result));
    }
    body.read(operation, max_depth)
}

/// The whitespace XML allows between elements.
const XML_SPACE: [char; 4] = [' ', '\t', '\n', '\r'];

/// The envelope openings asmx writes (and this crate's fake), for the fast
/// path: declarations in either of the two orders .NET uses.
const CANONICAL_OPENINGS: [(&str, &str); 4] = [
    (
        "soap",
        r#"<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:xsd="http://www.w3.org/2001/XMLSchema">"#,
    ),
    (
        "soap",
        r#"<soap:Envelope xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/">"#,
    ),
    (
        "soap12",
        r#"<soap12:Envelope xmlns:soap12="http://www.w3.org/2003/05/soap-envelope" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:xsd="http://www.w3.org/2001/XMLSchema">"#,
    ),
    (
        "soap12",
        r#"<soap12:Envelope xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:soap12="http://www.w3.org/2003/05/soap-envelope">"#,
    ),
];

/// A response in the exact shape asmx writes, up to the start tag of the
/// response element: a fixed declaration, one of the known envelope
/// openings, the Body, and `<{operation}Response xmlns="{namespace}">`.
/// Because every prefix in such a document is declared by this fixed text,
/// reading it byte for byte reads it exactly as the full reader would.
/// Anything else (faults included) goes to the full reader.
struct Canonical<'x> {
    input: &'x str,
    /// The envelope's prefix.
    prefix: &'static str,
    /// The name of the response element, as written in the input.
    response: &'x str,
    /// The input after the response element's start tag and whitespace.
    rest: &'x str,
}

/// Strips `parts` in order, then any whitespace; `None` when one is missing.
fn expect_parts(rest: &mut &str, parts: &[&str]) -> Option<()> {
    for part in parts {
        *rest = rest.strip_prefix(part)?;
    }
    *rest = rest.trim_start_matches(XML_SPACE);
    Some(())
}

impl<'x> Canonical<'x> {
    fn open(input: &'x str, namespace: &str, operation: &str) -> Option<Self> {
        if namespace.contains(['&', '<', '"']) {
            return None;
        }
        let mut rest = input
            .strip_prefix(r#"<?xml version="1.0" encoding="utf-8"?>"#)
            .unwrap_or(input)
            .trim_start_matches(XML_SPACE);
        let (prefix, opening) = CANONICAL_OPENINGS
            .iter()
            .find(|(_, o)| rest.starts_with(o))?;
        rest = rest[opening.len()..].trim_start_matches(XML_SPACE);
        expect_parts(&mut rest, &["<", prefix, ":Body>"])?;
        let response = rest.get(1..1 + operation.len() + "Response".len())?;
        expect_parts(
            &mut rest,
            &["<", operation, "Response xmlns=\"", namespace, "\">"],
        )?;
        Some(Canonical {
            input,
            prefix,
            response,
            rest,
        })
    }

    /// The closing tags after the response element: true when `rest`
    /// (after the response's end tag) holds only them and whitespace.
    fn closes(&self, mut rest: &str) -> bool {
        rest = rest.trim_start_matches(XML_SPACE);
        let prefix = self.prefix;
        expect_parts(&mut rest, &["</", prefix, ":Body>"]).is_some()
            && expect_parts(&mut rest, &["</", prefix, ":Envelope>"]).is_some()
            && rest.is_empty()
    }

    /// For a result that is plain text (no markup, reference or carriage
    /// return), that text.
    fn text_result(&self, operation: &str) -> Option<&'x str> {
        let rest = self
            .rest
            .strip_prefix("<")?
            .strip_prefix(operation)?
            .strip_prefix("Result>")?;
        let end = rest.find('<')?;
        let (text, mut rest) = rest.split_at(end);
        if text.contains(['&', '\r']) || text.contains("]]>") {
            return None;
        }
        expect_parts(&mut rest, &["</", operation, "Result>"])?;
        expect_parts(&mut rest, &["</", operation, "Response>"])?;
        self.closes(rest).then_some(text)
    }

    /// Reads the result element with the byte scanner; `None` when the
    /// response leaves the canonical shape anywhere (the full reader then
    /// reads it), including a result that is absent, nil or followed by
    /// other elements.
    fn read<T: ResultValue>(
        &self,
        operation: &str,
        max_depth: usize,
    ) -> Option<Result<Reply<T>, ReadError>> {
        let at = self.input.len() - self.rest.len();
        // Envelope, Body and the response element are open: depth 3.
        let mut cur = XmlCursor::scanning(
            self.input,
            Scanner::new(self.input, at, self.response, 3, max_depth),
        );
        let outcome = cur.read_canonical_result::<T>(operation);
        let scan = cur.scan.as_ref()?;
        if scan.left() || !self.closes(self.input.get(scan.position()..)?) {
            return None;
        }
        Some(outcome.map(Reply::Result))
    }
}

/// [`read_response`] without the fast path: every response goes through the
/// namespace-resolving reader. Public so that tests and benchmarks can compare
/// the two.
pub fn read_response_in_full<T: ResultValue>(
    xml: &[u8],
    namespace: &str,
    operation: &str,
    max_depth: usize,
) -> Result<Reply<T>, ReadError> {
    read_document(document(xml)?, namespace, operation, max_depth)
}

/// The full reader over an input already checked to be UTF-8.
fn read_document<T: ResultValue>(
    input: &str,
    namespace: &str,
    operation: &str,
    max_depth: usize,
) -> Result<Reply<T>, ReadError> {
    let mut cur = XmlCursor::new(input, namespace, max_depth);
    let version = cur.open_body()?;
    let Some(first) = cur.next_child()? else {
        return Err(ReadError::malformed("SOAP Body is empty"));
    };
    if first.local == "Fault" && first.ns.envelope_version() == Some(version) {
        let fault = read_fault(&mut cur, version, &first)?;
        cur.close_body()?;
        return Ok(Reply::Fault(fault));
    }
    if first.ns != Ns::Service || first.local.strip_prefix(operation) != Some("Response") {
        let where_ = match first.ns {
            Ns::Service => "in the service namespace",
            Ns::None => "in no namespace",
            _ => "in another namespace",
        };
        return Err(ReadError::Malformed(
            format!(
                "expected <{operation}Response> in {namespace}, found <{}> {where_}",
                first.local
            )
            .into(),
        ));
    }
    let mut result = None;
    if !first.empty {
        while let Some(child) = cur.next_child()? {
            if child.ns == Ns::Service && child.local.strip_prefix(operation) == Some("Result") {
                if result.is_some() {
                    return Err(ReadError::Malformed(
                        format!("more than one <{operation}Result>").into(),
                    ));
                }
                if child.nil {
                    cur.skip(&child)?;
                    result = Some(T::absent().ok_or_else(|| {
                        ReadError::Malformed(format!("<{operation}Result> is nil").into())
                    })?);
                    continue;
                }
                result = Some(T::read(&mut cur, &child)?);
            } else {
                cur.skip(&child)?;
            }
        }
    }
    let result = match result.or_else(T::absent) {
        Some(result) => result,
        None => {
            return Err(ReadError::Malformed(
                format!("no <{operation}Result> in the response").into(),
            ))
        }
    };
    cur.close_body()?;
    Ok(Reply::Result(result))
}

fn read_fault(
    cur: &mut XmlCursor<'_>,
    version: SoapVersion,
    start: &Start<'_>,
) -> Result<SoapFault, ReadError> {
    let mut fault = SoapFault {
        version,
        code: FaultCode::Other(String::new()),
        message: String::new(),
        actor: None,
        detail: None,
    };
    if start.empty {
        return Ok(fault);
    }
    let envelope_ns = match version {
        SoapVersion::V11 => Ns::Soap11,
        SoapVersion::V12 => Ns::Soap12,
    };
    while let Some(child) = cur.next_child()? {
        // SOAP 1.1 fault children are unqualified; SOAP 1.2 ones are in the
        // envelope namespace. Accept either, as servers differ.
        if child.ns != Ns::None && child.ns != envelope_ns {
            cur.skip(&child)?;
            continue;
        }
        match child.local {
            "faultcode" => {
                let text = cur.text(&child)?;
                fault.code = fault_code(cur, text.trim());
            }
            "faultstring" => fault.message = cur.text(&child)?.into_owned(),
            "faultactor" | "Node" => fault.actor = Some(cur.text(&child)?.into_owned()),
            "Code" if !child.empty => {
                while let Some(part) = cur.next_child()? {
                    if part.local == "Value" {
                        let text = cur.text(&part)?;
                        fault.code = fault_code(cur, text.trim());
                    } else {
                        cur.skip(&part)?;
                    }
                }
            }
            "Reason" if !child.empty => {
                while let Some(part) = cur.next_child()? {
                    if part.local == "Text" && fault.message.is_empty() {
                        fault.message = cur.text(&part)?.into_owned();
                    } else {
                        cur.skip(&part)?;
                    }
                }
            }
            "detail" | "Detail" => {
                let detail = read_detail(cur, &child)?;
                fault.detail = (!detail.is_empty()).then_some(detail);
            }
            _ => cur.skip(&child)?,
        }
    }
    Ok(fault)
}

fn fault_code(cur: &XmlCursor<'_>, text: &str) -> FaultCode {
    let (ns, local) = cur.classify_qname(text);
    let prefixed = text.contains(':');
    if ns.envelope_version().is_some() || !prefixed {
        match local {
            "Client" | "Sender" => return FaultCode::Client,
            "Server" | "Receiver" => return FaultCode::Server,
            "VersionMismatch" => return FaultCode::VersionMismatch,
            "MustUnderstand" => return FaultCode::MustUnderstand,
            _ => {}
        }
    }
    FaultCode::Other(text.to_string())
}

/// Collects the ECGridOS detail fields wherever they sit below `detail`, so
/// that a wrapper element around them does not hide them.
fn read_detail(cur: &mut XmlCursor<'_>, start: &Start<'_>) -> Result<EcgridDetail, ReadError> {
    let mut detail = EcgridDetail::default();
    if start.empty {
        return Ok(detail);
    }
    let mut open = 1usize;
    while open > 0 {
        match cur.next()? {
            Item::Start(child) => {
                let field = match child.local {
                    "ErrorCode" => &mut detail.error_code,
                    "ErrorString" => &mut detail.error_string,
                    "ErrorItem" => &mut detail.error_item,
                    "ErrorMessage" => &mut detail.error_message,
                    "ECGridOSSOAPErrorCode" => {
                        detail.category = Some(FaultCategory::parse(&cur.text(&child)?));
                        continue;
                    }
                    _ => {
                        open += usize::from(!child.empty);
                        continue;
                    }
                };
                *field = Some(cur.text(&child)?.trim().to_string());
            }
            Item::End => open -= 1,
            Item::Text(_) | Item::Char(_) => {}
            Item::Eof => return Err(ReadError::malformed("document ends inside a fault detail")),
        }
    }
    Ok(detail)
}

/// A request as the embedded fake reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SoapRequest {
    /// The envelope's SOAP version.
    pub version: SoapVersion,
    /// The local name of the Body's first element.
    pub operation: String,
    /// Whether that element is in the service namespace.
    pub operation_qualified: bool,
    /// The operation element's children, in document order.
    pub params: Vec<RequestParam>,
}

/// One parameter element of a [`SoapRequest`].
#[derive(Clone, PartialEq, Eq)]
pub struct RequestParam {
    /// Local name.
    pub name: String,
    /// Whether it is in the service namespace. A .NET asmx service reads an
    /// unqualified parameter as absent.
    pub qualified: bool,
    /// Text content.
    pub value: String,
}

impl std::fmt::Debug for RequestParam {
    // Parameter values include session IDs and passwords: never print them.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestParam")
            .field("name", &self.name)
            .field("qualified", &self.qualified)
            .finish_non_exhaustive()
    }
}

impl SoapRequest {
    /// The value of the qualified parameter `name`, as asmx would bind it:
    /// `None` when absent or unqualified.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|p| p.qualified && p.name == name)
            .map(|p| p.value.as_str())
    }
}

/// Reads a request envelope (used by the embedded fake server).
pub fn read_request(
    xml: &[u8],
    namespace: &str,
    max_depth: usize,
) -> Result<SoapRequest, ReadError> {
    let input = document(xml)?;
    let mut cur = XmlCursor::new(input, namespace, max_depth);
    let version = cur.open_body()?;
    let Some(op) = cur.next_child()? else {
        return Err(ReadError::malformed("SOAP Body is empty"));
    };
    let mut request = SoapRequest {
        version,
        operation: op.local.to_string(),
        operation_qualified: op.ns == Ns::Service,
        params: Vec::new(),
    };
    if !op.empty {
        while let Some(param) = cur.next_child()? {
            let value = cur.text(&param)?.into_owned();
            request.params.push(RequestParam {
                name: param.local.to_string(),
                qualified: param.ns == Ns::Service,
                value,
            });
        }
    }
    cur.close_body()?;
    Ok(request)
}
