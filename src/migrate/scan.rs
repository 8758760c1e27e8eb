//! An incremental observer of a SOAP message as its bytes pass through the
//! recording proxy: it keeps a reduced copy of the document (every tag, and
//! the text of small values) and replaces the text of parcel content and of
//! any very large value by its size and SHA-256, so that a 50 MB upload is
//! observed in constant memory. The reduced copy is then read with the
//! crate's ordinary readers.
//!
//! The scanner does not check well-formedness: the upstream and the client
//! do. It only needs to know where tags and text are, which element is open,
//! and where the parcel content starts and ends.

use std::collections::BTreeSet;
use std::sync::LazyLock;

use base64::Engine as _;
use ring::digest::{Context, SHA256};
use serde_json::{json, Value};

use crate::api::{OPERATIONS, TYPES};

/// Local names whose text is parcel content: every `s:base64Binary`
/// parameter or field of the contract, and `ContentBase64String`.
pub(crate) static CONTENT_NAMES: LazyLock<Vec<&'static str>> = LazyLock::new(|| {
    let params = OPERATIONS.iter().flat_map(|e| e.info.params.iter());
    let fields = TYPES.iter().flat_map(|t| t.fields.iter());
    let mut names: BTreeSet<&'static str> = params
        .chain(fields)
        .filter(|f| f.xsd_type == "s:base64Binary")
        .map(|f| f.name)
        .collect();
    names.insert("ContentBase64String");
    names.into_iter().collect()
});

/// Names of parameters, fields and results that carry a credential: every
/// one the contract marks secret, and the `SessionInfo` session ID.
pub(crate) static SECRET_NAMES: LazyLock<BTreeSet<&'static str>> = LazyLock::new(|| {
    let params = OPERATIONS.iter().flat_map(|e| e.info.params.iter());
    let results = OPERATIONS.iter().map(|e| &e.info.result);
    let fields = TYPES.iter().flat_map(|t| t.fields.iter());
    let mut names: BTreeSet<&'static str> = params
        .chain(results)
        .chain(fields)
        .filter(|f| f.secret)
        .map(|f| f.name)
        .collect();
    names.insert("SessionID");
    names
});

/// [`SECRET_NAMES`] in ASCII lower case: an element's name is matched
/// whatever its case (a client may write `sessionID` or `password`).
static SECRET_NAMES_FOLDED: LazyLock<BTreeSet<String>> = LazyLock::new(|| {
    SECRET_NAMES
        .iter()
        .map(|n| n.to_ascii_lowercase())
        .collect()
});

/// Every name the contract gives a parameter, result or field, in ASCII
/// lower case: names it does not know are judged by their look.
static KNOWN_NAMES_FOLDED: LazyLock<BTreeSet<String>> = LazyLock::new(|| {
    let params = OPERATIONS.iter().flat_map(|e| e.info.params.iter());
    let results = OPERATIONS.iter().map(|e| &e.info.result);
    let fields = TYPES.iter().flat_map(|t| t.fields.iter());
    params
        .chain(results)
        .chain(fields)
        .map(|f| f.name.to_ascii_lowercase())
        .collect()
});

/// True when an element named `name` carries a credential: a name of
/// [`SECRET_NAMES`] in any case, or a name the contract does not know that
/// looks like one ([`crate::secret::is_credential_name`]).
pub(crate) fn is_secret_name(name: &str) -> bool {
    let folded = name.to_ascii_lowercase();
    SECRET_NAMES_FOLDED.contains(&folded)
        || (!KNOWN_NAMES_FOLDED.contains(&folded) && crate::secret::is_credential_name(name))
}

/// Text of an element that is not parcel content, above which it is hashed
/// rather than kept.
pub(crate) const SMALL_TEXT: usize = 64 * 1024;

/// The most the reduced copy keeps; past it the message is only counted.
pub(crate) const KEPT_LIMIT: usize = 16 * 1024 * 1024;

/// The longest tag (name and attributes) kept.
const TAG_LIMIT: usize = 64 * 1024;

/// Base64 text decoded per batch.
const BATCH: usize = 16 * 1024;

/// Where the scanner is in the markup.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// Between tags.
    Text,
    /// Inside `<...>`; `quote` is the open attribute quote, if any.
    Tag { quote: Option<u8> },
    /// Inside a character or entity reference of parcel content.
    Reference,
}

/// The size and SHA-256 of one value, as it is written in a record.
struct Digest {
    /// Parcel content: decoded from base64 as it arrives.
    content: bool,
    /// The raw text.
    raw: Context,
    raw_bytes: u64,
    /// The decoded bytes (content only).
    decoded: Context,
    decoded_bytes: u64,
    /// base64 characters waiting for a full batch (always fewer than
    /// `BATCH` + 4).
    pending: Vec<u8>,
    scratch: Vec<u8>,
    /// False once the text is seen not to be base64.
    valid: bool,
}

impl Digest {
    fn new(content: bool) -> Digest {
        Digest {
            content,
            raw: Context::new(&SHA256),
            raw_bytes: 0,
            decoded: Context::new(&SHA256),
            decoded_bytes: 0,
            pending: Vec::new(),
            scratch: Vec::new(),
            valid: true,
        }
    }

    /// Raw text of the value (references already resolved for content).
    fn raw(&mut self, text: &[u8]) {
        self.raw.update(text);
        self.raw_bytes += text.len() as u64;
        if !(self.content && self.valid) {
            return;
        }
        for &b in text {
            match b {
                b' ' | b'\t' | b'\r' | b'\n' => {}
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'+' | b'/' | b'=' => {
                    self.pending.push(b)
                }
                _ => {
                    self.valid = false;
                    return;
                }
            }
        }
        if self.pending.len() >= BATCH {
            let whole = self.pending.len() / 4 * 4;
            // A `=` may only end the value: a batch that holds one and is
            // followed by more text fails below, as it should.
            self.decode(whole);
        }
    }

    /// Decodes the first `n` pending characters (a multiple of 4).
    fn decode(&mut self, n: usize) {
        self.scratch.resize(n / 4 * 3 + 3, 0);
        match base64::engine::general_purpose::STANDARD
            .decode_slice(&self.pending[..n], &mut self.scratch)
        {
            Ok(len) => {
                self.decoded.update(&self.scratch[..len]);
                self.decoded_bytes += len as u64;
                self.pending.drain(..n);
            }
            Err(_) => self.valid = false,
        }
    }

    fn finish(mut self) -> Value {
        if self.content && self.valid {
            let n = self.pending.len();
            if n % 4 == 0 {
                self.decode(n);
            } else {
                self.valid = false;
            }
        }
        if self.content && self.valid {
            json!({ "bytes": self.decoded_bytes, "sha256": hex(self.decoded.finish().as_ref()) })
        } else {
            // Large text, or content that is not base64: its text as sent.
            json!({ "text_bytes": self.raw_bytes, "sha256": hex(self.raw.finish().as_ref()) })
        }
    }
}

/// How a value of parcel content is written in a record: its size and
/// SHA-256 (of the decoded bytes when the text is base64).
pub(crate) fn content_digest(text: &str) -> Value {
    let mut digest = Digest::new(true);
    digest.raw(text.as_bytes());
    digest.finish()
}

/// Lowercase hexadecimal.
pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// Observes one SOAP message, chunk by chunk.
pub(crate) struct Scanner {
    /// Local names whose text is parcel content.
    content_names: &'static [&'static str],
    mode: Mode,
    /// The tag being read (from its `<`).
    tag: Vec<u8>,
    /// The reference being read (from its `&`), inside content.
    reference: Vec<u8>,
    /// Local names of the open elements.
    open: Vec<String>,
    /// The reduced document.
    kept: Vec<u8>,
    /// Text of the current element not yet written to `kept`.
    text: Vec<u8>,
    /// The value of the current element being hashed, when it is.
    digest: Option<Digest>,
    /// Digests of hashed values, with the element's local name, in
    /// document order.
    digests: Vec<(String, Value)>,
    /// The first element inside `Body`: the operation (or its response).
    body_child: Option<String>,
    /// Bytes seen.
    seen: u64,
    /// True once `kept` was given up (over [`KEPT_LIMIT`], or a tag over its
    /// limit).
    overflow: bool,
    /// True once the scanner gave up observing ([`Scanner::give_up`]).
    counting_only: bool,
}

impl Scanner {
    /// A scanner that treats the text of elements named `content_names`
    /// (local names) as base64 parcel content.
    pub(crate) fn new(content_names: &'static [&'static str]) -> Scanner {
        Scanner {
            content_names,
            mode: Mode::Text,
            tag: Vec::new(),
            reference: Vec::new(),
            open: Vec::new(),
            kept: Vec::new(),
            text: Vec::new(),
            digest: None,
            digests: Vec::new(),
            body_child: None,
            seen: 0,
            overflow: false,
            counting_only: false,
        }
    }

    /// Bytes observed so far.
    pub(crate) fn seen(&self) -> u64 {
        self.seen
    }

    /// The first element of the SOAP Body, once seen.
    pub(crate) fn body_child(&self) -> Option<&str> {
        self.body_child.as_deref()
    }

    /// The reduced document, unless it had to be given up.
    pub(crate) fn kept(&self) -> Option<&[u8]> {
        (!self.overflow).then_some(self.kept.as_slice())
    }

    /// About how many bytes of memory the scanner holds (what it keeps,
    /// the open elements, the digests), for the recorder's memory budget.
    pub(crate) fn footprint(&self) -> usize {
        let open: usize = self.open.iter().map(|n| n.capacity() + 24).sum();
        self.kept.capacity()
            + self.text.capacity()
            + self.tag.capacity()
            + open
            + self.digests.len() * 256
    }

    /// Stops observing (the recorder's memory budget is spent): what was
    /// kept is dropped, and from now on bytes are only counted.
    pub(crate) fn give_up(&mut self) {
        self.overflow = true;
        self.counting_only = true;
        self.kept = Vec::new();
        self.text = Vec::new();
        self.tag = Vec::new();
        self.open = Vec::new();
        self.digest = None;
    }

    /// Takes the digests of hashed values, in document order.
    pub(crate) fn take_digests(&mut self) -> Vec<(String, Value)> {
        std::mem::take(&mut self.digests)
    }

    fn keep(&mut self, bytes: &[u8]) {
        if self.overflow {
            return;
        }
        if self.kept.len() + bytes.len() > KEPT_LIMIT {
            self.overflow = true;
            self.kept = Vec::new();
            return;
        }
        self.kept.extend_from_slice(bytes);
    }

    fn in_content(&self) -> bool {
        self.open
            .last()
            .is_some_and(|name| self.content_names.contains(&name.as_str()))
    }

    /// Observes the next bytes of the message.
    pub(crate) fn feed(&mut self, mut bytes: &[u8]) {
        self.seen += bytes.len() as u64;
        if self.counting_only {
            return;
        }
        while !bytes.is_empty() {
            match self.mode {
                Mode::Text => {
                    let content = self.digest_is_content() || self.in_content();
                    let stop = bytes
                        .iter()
                        .position(|&b| b == b'<' || (b == b'&' && content));
                    let (text, rest) = bytes.split_at(stop.unwrap_or(bytes.len()));
                    self.on_text(text);
                    bytes = rest;
                    if let Some(&first) = bytes.first() {
                        if first == b'<' {
                            self.flush_text();
                            self.tag.clear();
                            self.tag.push(b'<');
                            self.mode = Mode::Tag { quote: None };
                        } else {
                            self.reference.clear();
                            self.mode = Mode::Reference;
                        }
                        bytes = &bytes[1..];
                    }
                }
                Mode::Reference => {
                    let b = bytes[0];
                    bytes = &bytes[1..];
                    if b == b';' {
                        self.on_reference();
                        self.mode = Mode::Text;
                    } else if self.reference.len() < 16 {
                        self.reference.push(b);
                    }
                }
                Mode::Tag { quote } => {
                    let b = bytes[0];
                    bytes = &bytes[1..];
                    if self.tag.len() >= TAG_LIMIT {
                        // Too long to keep: its start (the name, or the kind
                        // of markup) and its last bytes (where it ends) are
                        // enough to follow the document.
                        self.overflow = true;
                        let tail = self.tag.len() - 8;
                        self.tag.drain(16..tail);
                    }
                    self.tag.push(b);
                    let quote = match (quote, b) {
                        (Some(q), b) if b == q => None,
                        (Some(q), _) => Some(q),
                        (None, b'"' | b'\'') if !self.special_tag() => Some(b),
                        (None, _) => None,
                    };
                    if quote.is_none() && self.tag_complete() {
                        self.on_tag();
                        self.mode = Mode::Text;
                    } else {
                        self.mode = Mode::Tag { quote };
                    }
                }
            }
        }
    }

    fn digest_is_content(&self) -> bool {
        self.digest.as_ref().is_some_and(|d| d.content)
    }

    /// A comment, CDATA section, declaration or processing instruction
    /// (quotes inside them are not attribute quotes).
    fn special_tag(&self) -> bool {
        self.tag.get(1).is_some_and(|&b| b == b'!' || b == b'?')
    }

    fn tag_complete(&self) -> bool {
        let t = &self.tag;
        if t.last() != Some(&b'>') {
            return false;
        }
        if t.starts_with(b"<!--") {
            t.len() >= 7 && t.ends_with(b"-->")
        } else if t.starts_with(b"<![CDATA[") {
            t.ends_with(b"]]>")
        } else if b"<!--".starts_with(t) || b"<![CDATA[".starts_with(t) {
            false
        } else if t.starts_with(b"<?") {
            t.ends_with(b"?>")
        } else {
            true
        }
    }

    fn on_text(&mut self, text: &[u8]) {
        if text.is_empty() {
            return;
        }
        if let Some(digest) = &mut self.digest {
            digest.raw(text);
            return;
        }
        if self.in_content() {
            let mut digest = Digest::new(true);
            digest.raw(text);
            self.digest = Some(digest);
            return;
        }
        self.text.extend_from_slice(text);
        if self.text.len() > SMALL_TEXT {
            let mut digest = Digest::new(false);
            digest.raw(&self.text);
            self.text = Vec::new();
            self.digest = Some(digest);
        }
    }

    /// A character reference inside parcel content: white space is skipped
    /// like white space; anything else cannot be base64.
    fn on_reference(&mut self) {
        let whitespace = matches!(
            self.reference.as_slice(),
            b"#xD" | b"#xd" | b"#xA" | b"#xa" | b"#x9" | b"#13" | b"#10" | b"#9" | b"#x20" | b"#32"
        );
        let mut raw = Vec::with_capacity(self.reference.len() + 2);
        raw.push(b'&');
        raw.extend_from_slice(&self.reference);
        raw.push(b';');
        if self.digest.is_none() {
            self.digest = Some(Digest::new(true));
        }
        if let Some(digest) = &mut self.digest {
            if whitespace {
                digest.raw.update(&raw);
                digest.raw_bytes += raw.len() as u64;
            } else {
                digest.raw(&raw);
            }
        }
    }

    fn flush_text(&mut self) {
        if !self.text.is_empty() {
            let text = std::mem::take(&mut self.text);
            self.keep(&text);
        }
    }

    fn finish_value(&mut self) {
        if let Some(digest) = self.digest.take() {
            let name = self.open.last().cloned().unwrap_or_default();
            self.digests.push((name, digest.finish()));
        }
    }

    fn on_tag(&mut self) {
        let tag = std::mem::take(&mut self.tag);
        match tag.get(1) {
            Some(b'/') => {
                self.finish_value();
                self.open.pop();
            }
            Some(b'!' | b'?') => {}
            _ => {
                self.finish_value();
                let name_end = tag[1..]
                    .iter()
                    .position(|b| b.is_ascii_whitespace() || *b == b'/' || *b == b'>')
                    .map_or(tag.len(), |i| i + 1);
                let qname = String::from_utf8_lossy(&tag[1..name_end]);
                let local = qname.rsplit(':').next().unwrap_or_default().to_string();
                if self.body_child.is_none() && self.open.last().is_some_and(|p| p == "Body") {
                    self.body_child = Some(local.clone());
                }
                let empty = tag.ends_with(b"/>");
                if !empty {
                    self.open.push(local);
                }
            }
        }
        if !self.overflow {
            self.keep(&tag);
        }
        self.tag = tag;
        self.tag.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONTENT: &[&str] = &["Content", "ContentBase64String"];

    fn sha(bytes: &[u8]) -> String {
        hex(ring::digest::digest(&SHA256, bytes).as_ref())
    }

    fn scan_in_pieces(doc: &[u8], piece: usize) -> Scanner {
        let mut s = Scanner::new(CONTENT);
        for chunk in doc.chunks(piece) {
            s.feed(chunk);
        }
        s
    }

    #[test]
    fn content_is_hashed_and_left_out_whatever_the_chunking() {
        let payload: Vec<u8> = (0..50_000u32).map(|i| (i % 251) as u8).collect();
        let b64 = base64::engine::general_purpose::STANDARD.encode(&payload);
        let doc = format!(
            "<?xml version=\"1.0\"?><s:Envelope xmlns:s=\"e\"><s:Body><ParcelUpload xmlns=\"n\">\
             <FileName>a&amp;b.edi</FileName><Bytes>50000</Bytes><Content>{b64}</Content>\
             </ParcelUpload></s:Body></s:Envelope>"
        );
        for piece in [1, 7, 4096, doc.len()] {
            let mut s = scan_in_pieces(doc.as_bytes(), piece);
            assert_eq!(s.body_child(), Some("ParcelUpload"));
            let kept = String::from_utf8(s.kept().unwrap().to_vec()).unwrap();
            assert!(kept.contains("<Content></Content>"), "{kept}");
            assert!(kept.contains("<FileName>a&amp;b.edi</FileName>"), "{kept}");
            let digests = s.take_digests();
            assert_eq!(digests.len(), 1, "piece {piece}");
            assert_eq!(digests[0].0, "Content");
            assert_eq!(
                digests[0].1,
                json!({"bytes": 50_000, "sha256": sha(&payload)})
            );
            assert_eq!(s.seen(), doc.len() as u64);
        }
    }

    #[test]
    fn content_with_line_breaks_and_references_decodes() {
        let doc = "<a><Content>aGVs&#xD;&#xA;bG8=\n</Content></a>";
        let mut s = scan_in_pieces(doc.as_bytes(), 3);
        let d = s.take_digests();
        assert_eq!(d[0].1, json!({"bytes": 5, "sha256": sha(b"hello")}));
    }

    #[test]
    fn text_that_is_not_base64_is_hashed_as_text() {
        let doc = "<a><Content>not base64!</Content></a>";
        let mut s = scan_in_pieces(doc.as_bytes(), 2);
        let d = s.take_digests();
        assert_eq!(
            d[0].1,
            json!({"text_bytes": 11, "sha256": sha(b"not base64!")})
        );
    }

    #[test]
    fn large_ordinary_text_is_hashed_small_text_is_kept() {
        let big = "x".repeat(SMALL_TEXT + 10);
        let doc = format!("<a><Note>{big}</Note><Small>y</Small><Empty/></a>");
        let mut s = scan_in_pieces(doc.as_bytes(), 1000);
        let kept = String::from_utf8(s.kept().unwrap().to_vec()).unwrap();
        assert_eq!(kept, "<a><Note></Note><Small>y</Small><Empty/></a>");
        let d = s.take_digests();
        assert_eq!(d[0].0, "Note");
        assert_eq!(
            d[0].1,
            json!({"text_bytes": big.len(), "sha256": sha(big.as_bytes())})
        );
    }

    #[test]
    fn a_document_too_large_to_keep_is_only_counted() {
        let mut s = Scanner::new(CONTENT);
        s.feed(b"<a>");
        let item = b"<i>0123456789</i>";
        for _ in 0..=KEPT_LIMIT / item.len() {
            s.feed(item);
        }
        s.feed(b"<Content>aGVsbG8=</Content></a>");
        assert!(s.kept().is_none());
        assert!(s.seen() > KEPT_LIMIT as u64);
        // Content is still hashed.
        assert_eq!(s.take_digests()[0].1["bytes"], 5);
    }

    #[test]
    fn a_tag_too_long_to_keep_is_still_followed() {
        let long = "x".repeat(TAG_LIMIT * 2);
        let doc =
            format!("<a><!-- {long} --><b attr=\"{long}\">t</b><Content>aGVsbG8=</Content></a>");
        let mut s = scan_in_pieces(doc.as_bytes(), 5000);
        assert!(s.kept().is_none());
        assert!(s.open.is_empty());
        assert_eq!(s.take_digests()[0].1["bytes"], 5);
    }

    #[test]
    fn quotes_comments_and_cdata_do_not_confuse_it() {
        let doc = "<a attr='x>y' b=\"<\"><!-- <Content> --><![CDATA[<b>]]><c>t</c></a>";
        let s = scan_in_pieces(doc.as_bytes(), 1);
        assert_eq!(s.kept().unwrap(), doc.as_bytes());
        assert!(s.open.is_empty());
    }
}
