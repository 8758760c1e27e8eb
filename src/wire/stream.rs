//! Streaming codecs for parcel content, with no I/O: base64 decoded and
//! encoded in pieces of any size, and extractors that pull the base64
//! content out of a SOAP `FileInfo` answer or a REST download answer while
//! it arrives, so that a parcel of any size is never held whole.
//!
//! An extractor copies everything but the content text into a small
//! *skeleton* (the same document with the content element left empty), hands
//! the content text to a [`Base64Decoder`] piece by piece, and appends the
//! decoded bytes to the caller's buffer. The skeleton is then read by the
//! ordinary readers: a fault, the file name or the declared size come from
//! it, with the same rules as any other answer.
//!
//! ```
//! use ecgridos::wire::stream::{ContentExtractor, JsonContentExtractor};
//!
//! let body = br#"{"success":true,"data":{"content":"aGVsbG8=","parcelId":7,"bytes":5}}"#;
//! let mut extractor = JsonContentExtractor::new(4096);
//! let mut decoded = Vec::new();
//! for piece in body.chunks(3) {
//!     extractor.feed(piece, &mut decoded)?;
//! }
//! let extracted = extractor.finish(&mut decoded)?;
//! assert_eq!(decoded, b"hello");
//! assert_eq!(
//!     extracted.skeleton,
//!     br#"{"success":true,"data":{"content":"","parcelId":7,"bytes":5}}"#
//! );
//! # Ok::<(), ecgridos::wire::stream::StreamError>(())
//! ```

use std::borrow::Cow;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

/// Why a base64 text cannot be decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Base64Error {
    /// The offset of the offending byte in the base64 text (whitespace
    /// included), or the text's length when it ends too early.
    pub offset: u64,
    /// What is wrong.
    pub reason: &'static str,
}

impl std::fmt::Display for Base64Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "invalid base64 at offset {}: {}",
            self.offset, self.reason
        )
    }
}

impl std::error::Error for Base64Error {}

/// Why an extractor stopped.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum StreamError {
    /// The content is not valid base64.
    Base64(Base64Error),
    /// The document is not the expected shape.
    Malformed(Cow<'static, str>),
    /// The part of the document around the content (the skeleton) is larger
    /// than allowed.
    SkeletonTooLarge {
        /// The limit, in bytes.
        limit: usize,
    },
}

impl std::fmt::Display for StreamError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StreamError::Base64(e) => e.fmt(f),
            StreamError::Malformed(reason) => f.write_str(reason),
            StreamError::SkeletonTooLarge { limit } => write!(
                f,
                "the answer around the content exceeds the limit of {limit} bytes"
            ),
        }
    }
}

impl std::error::Error for StreamError {}

impl From<Base64Error> for StreamError {
    fn from(e: Base64Error) -> Self {
        StreamError::Base64(e)
    }
}

const INVALID: u8 = 0xff;
const SPACE: u8 = 0xfe;
const PAD: u8 = 0xfd;

/// Byte -> sextet, or one of the markers above.
const DECODE: [u8; 256] = {
    let mut table = [INVALID; 256];
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut i = 0;
    while i < 64 {
        table[alphabet[i] as usize] = i as u8;
        i += 1;
    }
    table[b' ' as usize] = SPACE;
    table[b'\t' as usize] = SPACE;
    table[b'\r' as usize] = SPACE;
    table[b'\n' as usize] = SPACE;
    table[b'=' as usize] = PAD;
    table
};

/// An incremental base64 decoder (standard alphabet, padded). Input comes in
/// pieces cut anywhere; spaces, tabs and line breaks are skipped (.NET may
/// wrap long base64 text).
///
/// ```
/// use ecgridos::wire::stream::Base64Decoder;
/// let mut decoder = Base64Decoder::new();
/// let mut out = Vec::new();
/// decoder.feed(b"aGVs\r\nbG", &mut out)?;
/// decoder.feed(b"8=", &mut out)?;
/// decoder.finish()?;
/// assert_eq!(out, b"hello");
/// # Ok::<(), ecgridos::wire::stream::Base64Error>(())
/// ```
#[derive(Clone, Debug, Default)]
pub struct Base64Decoder {
    quad: [u8; 4],
    filled: usize,
    /// `=` still expected after the first one; `Some(0)` once complete.
    padding: Option<u8>,
    offset: u64,
    saw_data: bool,
}

impl Base64Decoder {
    /// A decoder at the start of a text.
    pub fn new() -> Self {
        Base64Decoder::default()
    }

    /// True once any base64 character (not whitespace) was fed.
    pub fn saw_data(&self) -> bool {
        self.saw_data
    }

    /// Decodes `input`, appending the bytes to `out`.
    pub fn feed(&mut self, mut input: &[u8], out: &mut Vec<u8>) -> Result<(), Base64Error> {
        while !input.is_empty() {
            if self.filled == 0 && self.padding.is_none() {
                // Fast path: whole groups of alphabet characters at once.
                let run = input
                    .iter()
                    .position(|&b| DECODE[b as usize] >= 64)
                    .unwrap_or(input.len());
                let whole = run / 4 * 4;
                if whole > 0 {
                    let start = out.len();
                    out.resize(start + whole / 4 * 3, 0);
                    match STANDARD.decode_slice_unchecked(&input[..whole], &mut out[start..]) {
                        Ok(n) => out.truncate(start + n),
                        Err(_) => {
                            // Cannot happen for alphabet-only whole groups;
                            // fall back to the careful path all the same.
                            out.truncate(start);
                            return self.slow(input, out);
                        }
                    }
                    self.saw_data = true;
                    self.offset += whole as u64;
                    input = &input[whole..];
                    continue;
                }
            }
            let (&byte, rest) = match input.split_first() {
                Some(split) => split,
                None => break,
            };
            self.byte(byte, out)?;
            input = rest;
        }
        Ok(())
    }

    fn slow(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<(), Base64Error> {
        for &byte in input {
            self.byte(byte, out)?;
        }
        Ok(())
    }

    fn byte(&mut self, byte: u8, out: &mut Vec<u8>) -> Result<(), Base64Error> {
        let value = DECODE[byte as usize];
        let error = |reason| Base64Error {
            offset: self.offset,
            reason,
        };
        match value {
            SPACE => {}
            PAD => match (self.padding, self.filled) {
                (Some(0), _) => return Err(error("more padding than a group holds")),
                (Some(n), _) => self.padding = Some(n - 1),
                (None, 2) => {
                    out.push(self.quad[0] << 2 | self.quad[1] >> 4);
                    self.filled = 0;
                    self.padding = Some(1);
                }
                (None, 3) => {
                    out.push(self.quad[0] << 2 | self.quad[1] >> 4);
                    out.push(self.quad[1] << 4 | self.quad[2] >> 2);
                    self.filled = 0;
                    self.padding = Some(0);
                }
                (None, _) => return Err(error("padding in the wrong place")),
            },
            INVALID => return Err(error("not a base64 character")),
            sextet => {
                if self.padding.is_some() {
                    return Err(error("data after the padding"));
                }
                self.saw_data = true;
                self.quad[self.filled] = sextet;
                self.filled += 1;
                if self.filled == 4 {
                    let q = self.quad;
                    out.extend_from_slice(&[
                        q[0] << 2 | q[1] >> 4,
                        q[1] << 4 | q[2] >> 2,
                        q[2] << 6 | q[3],
                    ]);
                    self.filled = 0;
                }
            }
        }
        self.offset += 1;
        Ok(())
    }

    /// Checks that the text ended on a whole group.
    pub fn finish(&self) -> Result<(), Base64Error> {
        if self.filled != 0 || self.padding.is_some_and(|n| n > 0) {
            return Err(Base64Error {
                offset: self.offset,
                reason: "the text ends in the middle of a group",
            });
        }
        Ok(())
    }
}

/// An incremental base64 encoder (standard alphabet, padded, no line
/// breaks): the output is the same as encoding the whole input at once.
///
/// ```
/// use ecgridos::wire::stream::{encoded_len, Base64Encoder};
/// let mut encoder = Base64Encoder::new();
/// let mut out = Vec::new();
/// encoder.feed(b"hel", &mut out);
/// encoder.feed(b"lo", &mut out);
/// encoder.finish(&mut out);
/// assert_eq!(out, b"aGVsbG8=");
/// assert_eq!(encoded_len(5), 8);
/// ```
#[derive(Clone, Debug, Default)]
pub struct Base64Encoder {
    pending: [u8; 3],
    filled: usize,
}

/// The length of the base64 text of `bytes` bytes.
pub const fn encoded_len(bytes: u64) -> u64 {
    bytes.div_ceil(3) * 4
}

impl Base64Encoder {
    /// An encoder at the start of a text.
    pub fn new() -> Self {
        Base64Encoder::default()
    }

    /// Encodes `input`, appending text to `out`; up to two bytes wait for the
    /// next piece.
    pub fn feed(&mut self, mut input: &[u8], out: &mut Vec<u8>) {
        if self.filled > 0 {
            let take = (3 - self.filled).min(input.len());
            self.pending[self.filled..self.filled + take].copy_from_slice(&input[..take]);
            self.filled += take;
            input = &input[take..];
            if self.filled < 3 {
                return;
            }
            push_encoded(&self.pending, out);
            self.filled = 0;
        }
        let whole = input.len() / 3 * 3;
        push_encoded(&input[..whole], out);
        let rest = &input[whole..];
        self.pending[..rest.len()].copy_from_slice(rest);
        self.filled = rest.len();
    }

    /// Encodes what is left, with padding.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        push_encoded(&self.pending[..self.filled], out);
        self.filled = 0;
    }
}

fn push_encoded(input: &[u8], out: &mut Vec<u8>) {
    if input.is_empty() {
        return;
    }
    let start = out.len();
    out.resize(start + encoded_len(input.len() as u64) as usize, 0);
    let written = STANDARD
        .encode_slice(input, &mut out[start..])
        .unwrap_or_default();
    out.truncate(start + written);
}

/// Which element (or field) the content was decoded from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ContentSource {
    /// SOAP `<Content>` (`s:base64Binary`).
    Content,
    /// SOAP `<ContentBase64String>` (used when `Content` is empty or absent).
    ContentBase64String,
    /// REST `"content"`.
    Json,
}

/// What an extractor leaves once the whole answer went through it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Extracted {
    /// The answer with the content text removed, for the ordinary reader.
    pub skeleton: Vec<u8>,
    /// Where the content came from; `None` when there was none.
    pub source: Option<ContentSource>,
    /// The number of decoded bytes.
    pub decoded_bytes: u64,
}

/// An incremental reader of a download answer: content decoded into `out`,
/// the rest kept as a skeleton.
pub trait ContentExtractor {
    /// Reads the next piece of the answer, appending decoded content to `out`.
    fn feed(&mut self, chunk: &[u8], out: &mut Vec<u8>) -> Result<(), StreamError>;
    /// Ends the answer; `out` receives nothing more (it is taken for
    /// symmetry with [`feed`](Self::feed)).
    fn finish(self, out: &mut Vec<u8>) -> Result<Extracted, StreamError>;
}

/// Appends `bytes` to the skeleton within its limit.
fn keep(skeleton: &mut Vec<u8>, limit: usize, bytes: &[u8]) -> Result<(), StreamError> {
    if skeleton.len() + bytes.len() > limit {
        return Err(StreamError::SkeletonTooLarge { limit });
    }
    skeleton.extend_from_slice(bytes);
    Ok(())
}

/// What is done with the text of a content element or field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Sink {
    /// Decoded into the output.
    Decode(ContentSource),
    /// Dropped (the other content element was already decoded).
    Skip,
}

/// How the markup being read ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Markup {
    /// Not yet known (only `<` seen, or `<!` seen).
    Open,
    /// An element tag; `Some(quote)` inside an attribute value.
    Tag(Option<u8>),
    /// `<!-- ... -->`, `<![CDATA[ ... ]]>`, `<? ... ?>`: ends with this,
    /// once the markup is at least this long.
    Until(&'static [u8], usize),
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum XmlState {
    Text,
    Markup(Markup),
    /// Inside a content element's text; `entity` holds a reference being read.
    Stream {
        sink: Sink,
        entity: Option<Vec<u8>>,
    },
}

/// Extracts the content of a SOAP `FileInfo` result (`ParcelDownload` and
/// its kin) while the answer arrives.
///
/// `Content` is decoded; when it is empty or absent, `ContentBase64String`
/// is. When both carry text, `Content` wins and the other is skipped
/// unread. Neither is ever buffered. A fault, which has no content, is kept
/// whole in the skeleton (within its limit).
#[derive(Debug)]
pub struct SoapContentExtractor {
    skeleton: Vec<u8>,
    limit: usize,
    state: XmlState,
    /// The markup being read (a copy of what went into the skeleton).
    tag: Vec<u8>,
    /// Local names of the open elements.
    stack: Vec<String>,
    decoder: Base64Decoder,
    source: Option<ContentSource>,
    decoded: u64,
    /// A content element's text just ended: the next markup must close it.
    expect_close: bool,
}

impl SoapContentExtractor {
    /// An extractor whose skeleton may grow to `max_skeleton` bytes.
    pub fn new(max_skeleton: usize) -> Self {
        SoapContentExtractor {
            skeleton: Vec::with_capacity(1024),
            limit: max_skeleton,
            state: XmlState::Text,
            tag: Vec::with_capacity(128),
            stack: Vec::new(),
            decoder: Base64Decoder::new(),
            source: None,
            decoded: 0,
            expect_close: false,
        }
    }

    /// A complete markup item is in `self.tag`.
    fn markup_done(&mut self) -> Result<(), StreamError> {
        let tag = std::mem::take(&mut self.tag);
        let result = self.classify(&tag);
        self.tag = tag;
        self.tag.clear();
        result
    }

    fn classify(&mut self, tag: &[u8]) -> Result<(), StreamError> {
        let expect_close = std::mem::replace(&mut self.expect_close, false);
        if tag.starts_with(b"</") {
            self.stack.pop();
            return Ok(());
        }
        if expect_close {
            return Err(StreamError::Malformed(
                "markup inside a content element".into(),
            ));
        }
        if tag.starts_with(b"<!") || tag.starts_with(b"<?") {
            return Ok(());
        }
        let inner = &tag[1..tag.len() - 1];
        let empty = inner.ends_with(b"/");
        let name_end = inner
            .iter()
            .position(|b| b.is_ascii_whitespace() || *b == b'/')
            .unwrap_or(inner.len());
        let qname = &inner[..name_end];
        let local = match memchr::memchr(b':', qname) {
            Some(colon) => &qname[colon + 1..],
            None => qname,
        };
        let in_result = self.stack.last().is_some_and(|p| p.ends_with("Result"));
        let target = match local {
            b"Content" if in_result => Some(ContentSource::Content),
            b"ContentBase64String" if in_result => Some(ContentSource::ContentBase64String),
            _ => None,
        };
        if empty {
            return Ok(());
        }
        self.stack.push(String::from_utf8_lossy(local).into_owned());
        if let Some(target) = target {
            let sink = match (self.source, target) {
                (None, _) => Sink::Decode(target),
                (Some(ContentSource::Content), ContentSource::ContentBase64String) => Sink::Skip,
                _ => {
                    return Err(StreamError::Malformed(
                        "the content appears twice in the answer".into(),
                    ))
                }
            };
            self.decoder = Base64Decoder::new();
            self.state = XmlState::Stream { sink, entity: None };
        }
        Ok(())
    }

    /// Text of a content element, outside references.
    fn stream_text(
        &mut self,
        sink: Sink,
        text: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), StreamError> {
        if let Sink::Decode(_) = sink {
            let before = out.len();
            self.decoder.feed(text, out)?;
            self.decoded += (out.len() - before) as u64;
        }
        Ok(())
    }

    /// The content element's text ended.
    fn stream_done(&mut self, sink: Sink) -> Result<(), StreamError> {
        if let Sink::Decode(source) = sink {
            self.decoder.finish()?;
            if self.decoder.saw_data() {
                self.source = Some(source);
            }
        }
        self.expect_close = true;
        Ok(())
    }
}

/// The character a reference inside base64 text stands for (`&#xD;` for a
/// line break, say); `None` when it is not one character of ASCII.
fn resolve_reference(name: &[u8]) -> Option<u8> {
    let code = match name {
        b"amp" => u32::from(b'&'),
        b"lt" => u32::from(b'<'),
        b"gt" => u32::from(b'>'),
        b"quot" => u32::from(b'"'),
        b"apos" => u32::from(b'\''),
        [b'#', b'x' | b'X', hex @ ..] => {
            u32::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?
        }
        [b'#', dec @ ..] => std::str::from_utf8(dec).ok()?.parse().ok()?,
        _ => return None,
    };
    u8::try_from(code).ok().filter(u8::is_ascii)
}

impl ContentExtractor for SoapContentExtractor {
    fn feed(&mut self, mut chunk: &[u8], out: &mut Vec<u8>) -> Result<(), StreamError> {
        while !chunk.is_empty() {
            match &mut self.state {
                XmlState::Text => {
                    let end = memchr::memchr(b'<', chunk).unwrap_or(chunk.len());
                    keep(&mut self.skeleton, self.limit, &chunk[..end])?;
                    chunk = &chunk[end..];
                    if let Some(rest) = chunk.strip_prefix(b"<") {
                        keep(&mut self.skeleton, self.limit, b"<")?;
                        self.tag.push(b'<');
                        self.state = XmlState::Markup(Markup::Open);
                        chunk = rest;
                    }
                }
                XmlState::Markup(markup) => {
                    let byte = chunk[0];
                    chunk = &chunk[1..];
                    keep(&mut self.skeleton, self.limit, &[byte])?;
                    self.tag.push(byte);
                    let tag = &self.tag;
                    let done = match *markup {
                        Markup::Open => {
                            *markup = if tag.starts_with(b"<!--") {
                                Markup::Until(b"-->", 7)
                            } else if tag.starts_with(b"<![CDATA[") {
                                Markup::Until(b"]]>", 12)
                            } else if tag.starts_with(b"<?") {
                                Markup::Until(b"?>", 4)
                            } else if tag.starts_with(b"<!")
                                && (b"<!--".starts_with(tag) || b"<![CDATA[".starts_with(tag))
                            {
                                Markup::Open
                            } else if tag.starts_with(b"<!") {
                                return Err(StreamError::Malformed(
                                    "declarations are not allowed in an answer".into(),
                                ));
                            } else {
                                Markup::Tag(None)
                            };
                            byte == b'>' && matches!(*markup, Markup::Tag(None))
                        }
                        Markup::Tag(None) if byte == b'"' || byte == b'\'' => {
                            *markup = Markup::Tag(Some(byte));
                            false
                        }
                        Markup::Tag(Some(quote)) if byte == quote => {
                            *markup = Markup::Tag(None);
                            false
                        }
                        Markup::Tag(None) => byte == b'>',
                        Markup::Tag(Some(_)) => false,
                        Markup::Until(end, min) => tag.len() >= min && tag.ends_with(end),
                    };
                    if done {
                        self.state = XmlState::Text;
                        self.markup_done()?;
                    }
                }
                XmlState::Stream { sink, entity } => {
                    let sink = *sink;
                    if let Some(name) = entity {
                        let end = memchr::memchr(b';', chunk);
                        let take = end.unwrap_or(chunk.len());
                        name.extend_from_slice(&chunk[..take]);
                        if name.len() > 12 {
                            return Err(StreamError::Malformed(
                                "an overlong reference inside the content".into(),
                            ));
                        }
                        let Some(end) = end else {
                            return Ok(());
                        };
                        chunk = &chunk[end + 1..];
                        let name = std::mem::take(name);
                        self.state = XmlState::Stream { sink, entity: None };
                        let byte = resolve_reference(&name).ok_or_else(|| {
                            StreamError::Malformed(
                                "a reference inside the content that is not base64".into(),
                            )
                        })?;
                        self.stream_text(sink, &[byte], out)?;
                        continue;
                    }
                    let end = memchr::memchr2(b'<', b'&', chunk).unwrap_or(chunk.len());
                    self.stream_text(sink, &chunk[..end], out)?;
                    chunk = &chunk[end..];
                    match chunk.first() {
                        Some(b'&') => {
                            self.state = XmlState::Stream {
                                sink,
                                entity: Some(Vec::with_capacity(12)),
                            };
                            chunk = &chunk[1..];
                        }
                        Some(_) => {
                            self.state = XmlState::Text;
                            self.stream_done(sink)?;
                        }
                        None => {}
                    }
                }
            }
        }
        Ok(())
    }

    fn finish(self, _out: &mut Vec<u8>) -> Result<Extracted, StreamError> {
        if self.state != XmlState::Text {
            return Err(StreamError::Malformed(
                "the answer ends inside markup or content".into(),
            ));
        }
        Ok(Extracted {
            skeleton: self.skeleton,
            source: self.source,
            decoded_bytes: self.decoded,
        })
    }
}

/// One open JSON container.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Frame {
    /// An object; `key` is the key of the member being read (raw, as written).
    Object {
        key: Vec<u8>,
        want_key: bool,
    },
    Array,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum JsonState {
    /// Between tokens (numbers and literals are copied through here too).
    Between,
    /// Inside a string that is kept; `key` when it is an object key.
    Kept { key: bool, escaped: bool },
    /// Inside the content string; `escape` holds an escape being read.
    Stream { escape: Option<Vec<u8>> },
}

/// Extracts `data.content` of a REST download answer
/// (`{"success":..,"data":{"parcelId":..,"fileName":..,"content":"..","bytes":..}}`,
/// members in any order) while it arrives. The skeleton keeps the content
/// member with an empty string.
#[derive(Debug)]
pub struct JsonContentExtractor {
    skeleton: Vec<u8>,
    limit: usize,
    state: JsonState,
    stack: Vec<Frame>,
    decoder: Base64Decoder,
    source: Option<ContentSource>,
    decoded: u64,
}

/// Keys longer than this are not compared (and not kept for comparing).
const MAX_KEY: usize = 32;

impl JsonContentExtractor {
    /// An extractor whose skeleton may grow to `max_skeleton` bytes.
    pub fn new(max_skeleton: usize) -> Self {
        JsonContentExtractor {
            skeleton: Vec::with_capacity(512),
            limit: max_skeleton,
            state: JsonState::Between,
            stack: Vec::new(),
            decoder: Base64Decoder::new(),
            source: None,
            decoded: 0,
        }
    }

    /// True when a string value starting now is `data.content`.
    fn at_content(&self) -> bool {
        matches!(
            self.stack.as_slice(),
            [Frame::Object { key: outer, .. }, Frame::Object { key: inner, want_key: false }]
                if outer == b"data" && inner == b"content"
        )
    }

    fn decode(&mut self, text: &[u8], out: &mut Vec<u8>) -> Result<(), StreamError> {
        let before = out.len();
        self.decoder.feed(text, out)?;
        self.decoded += (out.len() - before) as u64;
        Ok(())
    }

    fn between(&mut self, byte: u8) -> Result<(), StreamError> {
        keep(&mut self.skeleton, self.limit, &[byte])?;
        match byte {
            b'{' => self.stack.push(Frame::Object {
                key: Vec::new(),
                want_key: true,
            }),
            b'[' => self.stack.push(Frame::Array),
            b'}' | b']' => {
                self.stack.pop();
            }
            b',' => {
                if let Some(Frame::Object { key, want_key }) = self.stack.last_mut() {
                    key.clear();
                    *want_key = true;
                }
            }
            b'"' => {
                let key = matches!(
                    self.stack.last(),
                    Some(Frame::Object { want_key: true, .. })
                );
                self.state = JsonState::Kept {
                    key,
                    escaped: false,
                };
            }
            _ => {}
        }
        Ok(())
    }
}

impl ContentExtractor for JsonContentExtractor {
    fn feed(&mut self, mut chunk: &[u8], out: &mut Vec<u8>) -> Result<(), StreamError> {
        while let Some(&byte) = chunk.first() {
            match &mut self.state {
                JsonState::Between => {
                    chunk = &chunk[1..];
                    if byte == b'"' && self.at_content() {
                        if self.source.is_some() {
                            return Err(StreamError::Malformed(
                                "the content appears twice in the answer".into(),
                            ));
                        }
                        keep(&mut self.skeleton, self.limit, b"\"")?;
                        self.decoder = Base64Decoder::new();
                        self.state = JsonState::Stream { escape: None };
                    } else {
                        self.between(byte)?;
                    }
                }
                JsonState::Kept { key, escaped } => {
                    chunk = &chunk[1..];
                    keep(&mut self.skeleton, self.limit, &[byte])?;
                    let is_key = *key;
                    let ends = !*escaped && byte == b'"';
                    *escaped = !*escaped && byte == b'\\';
                    if ends {
                        self.state = JsonState::Between;
                        if is_key {
                            if let Some(Frame::Object { want_key, .. }) = self.stack.last_mut() {
                                *want_key = false;
                            }
                        }
                    } else if is_key {
                        if let Some(Frame::Object { key, .. }) = self.stack.last_mut() {
                            if key.len() <= MAX_KEY {
                                key.push(byte);
                            }
                        }
                    }
                }
                JsonState::Stream {
                    escape: Some(escape),
                } => {
                    chunk = &chunk[1..];
                    escape.push(byte);
                    let resolved = match escape.as_slice() {
                        [b'n'] | [b'r'] | [b't'] => Some(b'\n'),
                        [b'/'] => Some(b'/'),
                        [b'u', hex @ ..] if hex.len() == 4 => Some(
                            std::str::from_utf8(hex)
                                .ok()
                                .and_then(|h| u32::from_str_radix(h, 16).ok())
                                .and_then(|c| u8::try_from(c).ok())
                                .filter(u8::is_ascii)
                                .ok_or_else(|| {
                                    StreamError::Malformed(
                                        "an escape inside the content that is not base64".into(),
                                    )
                                })?,
                        ),
                        [b'u', ..] => None,
                        _ => {
                            return Err(StreamError::Malformed(
                                "an escape inside the content that is not base64".into(),
                            ))
                        }
                    };
                    if let Some(byte) = resolved {
                        self.state = JsonState::Stream { escape: None };
                        self.decode(&[byte], out)?;
                    }
                }
                JsonState::Stream { escape: None } => {
                    let end = memchr::memchr2(b'"', b'\\', chunk).unwrap_or(chunk.len());
                    let (text, rest) = chunk.split_at(end);
                    self.decode(text, out)?;
                    chunk = rest;
                    match chunk.first() {
                        Some(b'\\') => {
                            self.state = JsonState::Stream {
                                escape: Some(Vec::with_capacity(5)),
                            };
                            chunk = &chunk[1..];
                        }
                        Some(_) => {
                            chunk = &chunk[1..];
                            keep(&mut self.skeleton, self.limit, b"\"")?;
                            self.decoder.finish()?;
                            self.source = Some(ContentSource::Json);
                            self.state = JsonState::Between;
                        }
                        None => {}
                    }
                }
            }
        }
        Ok(())
    }

    fn finish(self, _out: &mut Vec<u8>) -> Result<Extracted, StreamError> {
        if self.state != JsonState::Between {
            return Err(StreamError::Malformed(
                "the answer ends inside a string".into(),
            ));
        }
        Ok(Extracted {
            skeleton: self.skeleton,
            source: self.source,
            decoded_bytes: self.decoded,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(pieces: &[&[u8]]) -> Result<Vec<u8>, Base64Error> {
        let mut d = Base64Decoder::new();
        let mut out = Vec::new();
        for p in pieces {
            d.feed(p, &mut out)?;
        }
        d.finish()?;
        Ok(out)
    }

    #[test]
    fn decoder_handles_padding_whitespace_and_errors() {
        assert_eq!(decode_all(&[b"aGVsbG8="]).unwrap(), b"hello");
        assert_eq!(decode_all(&[b"aGVsbA=", b"="]).unwrap(), b"hell");
        assert_eq!(
            decode_all(&[b"aG", b"Vs\r\n", b" bG8h"]).unwrap(),
            b"hello!"
        );
        assert_eq!(decode_all(&[b""]).unwrap(), b"");
        let err = decode_all(&[b"aGVs", b"b*8="]).unwrap_err();
        assert_eq!(err.offset, 5);
        assert_eq!(decode_all(&[b"aGVsbA"]).unwrap_err().offset, 6);
        assert_eq!(decode_all(&[b"aGVsbA="]).unwrap_err().offset, 7);
        assert_eq!(decode_all(&[b"aGVsbA==QQ=="]).unwrap_err().offset, 8);
        assert_eq!(decode_all(&[b"a==="]).unwrap_err().offset, 1);
    }

    #[test]
    fn encoder_matches_one_shot_encoding() {
        let data: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
        for split in [0, 1, 2, 3, 7, 500, 999] {
            let mut e = Base64Encoder::new();
            let mut out = Vec::new();
            e.feed(&data[..split], &mut out);
            e.feed(&data[split..], &mut out);
            e.finish(&mut out);
            assert_eq!(out, STANDARD.encode(&data).as_bytes());
            assert_eq!(out.len() as u64, encoded_len(data.len() as u64));
        }
    }

    mod properties {
        use super::super::*;
        use proptest::prelude::*;

        /// Splits `data` at the (sorted, deduplicated) cut points.
        fn pieces(data: &[u8], mut cuts: Vec<usize>) -> Vec<&[u8]> {
            cuts.iter_mut().for_each(|c| *c %= data.len() + 1);
            cuts.sort_unstable();
            cuts.dedup();
            let mut out = Vec::new();
            let mut start = 0;
            for cut in cuts {
                out.push(&data[start..cut]);
                start = cut;
            }
            out.push(&data[start..]);
            out
        }

        proptest! {
            #[test]
            fn decoding_in_pieces_matches_the_base64_crate(
                data in proptest::collection::vec(any::<u8>(), 0..2000),
                wrap in 1usize..100,
                cuts in proptest::collection::vec(any::<usize>(), 0..20),
            ) {
                // .NET may wrap lines: CR LF every `wrap` characters.
                let text = STANDARD.encode(&data);
                let mut wrapped = Vec::new();
                for (i, b) in text.bytes().enumerate() {
                    if i > 0 && i % wrap == 0 {
                        wrapped.extend_from_slice(b"\r\n");
                    }
                    wrapped.push(b);
                }
                let mut decoder = Base64Decoder::new();
                let mut out = Vec::new();
                for piece in pieces(&wrapped, cuts) {
                    decoder.feed(piece, &mut out).unwrap();
                }
                decoder.finish().unwrap();
                prop_assert_eq!(out, data);
            }

            #[test]
            fn encoding_in_pieces_matches_the_base64_crate(
                data in proptest::collection::vec(any::<u8>(), 0..2000),
                cuts in proptest::collection::vec(any::<usize>(), 0..20),
            ) {
                let mut encoder = Base64Encoder::new();
                let mut out = Vec::new();
                for piece in pieces(&data, cuts) {
                    encoder.feed(piece, &mut out);
                }
                encoder.finish(&mut out);
                prop_assert_eq!(out, STANDARD.encode(&data).into_bytes());
            }

            #[test]
            fn an_invalid_byte_is_reported_at_its_offset(
                data in proptest::collection::vec(any::<u8>(), 3..600),
                at in any::<usize>(),
                bad in prop::sample::select(vec![b'*', b'-', b'_', b'"', 0u8, 0xc3]),
                cuts in proptest::collection::vec(any::<usize>(), 0..10),
            ) {
                let mut text = STANDARD.encode(&data).into_bytes();
                // Only before the padding, so the byte is the first fault.
                let body = text.iter().position(|&b| b == b'=').unwrap_or(text.len());
                let at = at % body;
                text[at] = bad;
                prop_assert!(STANDARD.decode(&text).is_err());
                let mut decoder = Base64Decoder::new();
                let mut out = Vec::new();
                let mut result = Ok(());
                for piece in pieces(&text, cuts) {
                    result = decoder.feed(piece, &mut out);
                    if result.is_err() {
                        break;
                    }
                }
                let err = result.unwrap_err();
                prop_assert_eq!(err.offset, at as u64);
            }

            #[test]
            fn extractors_decode_any_split_of_the_answer(
                data in proptest::collection::vec(any::<u8>(), 0..1500),
                cuts in proptest::collection::vec(any::<usize>(), 0..20),
            ) {
                let b64 = STANDARD.encode(&data);
                let soap = super::FILE_INFO.replace("aGVs&#xD;&#10;bG8=", &b64);
                let json = format!(r#"{{"data":{{"bytes":1,"content":"{b64}"}},"success":true}}"#);
                for (body, json_body) in [(soap.as_bytes(), false), (json.as_bytes(), true)] {
                    let mut out = Vec::new();
                    if json_body {
                        let mut e = JsonContentExtractor::new(4096);
                        for piece in pieces(body, cuts.clone()) {
                            e.feed(piece, &mut out).unwrap();
                        }
                        e.finish(&mut out).unwrap();
                    } else {
                        let mut e = SoapContentExtractor::new(4096);
                        for piece in pieces(body, cuts.clone()) {
                            e.feed(piece, &mut out).unwrap();
                        }
                        let x = e.finish(&mut out).unwrap();
                        let expected = if data.is_empty() {
                            ContentSource::ContentBase64String
                        } else {
                            ContentSource::Content
                        };
                        prop_assert_eq!(x.source, Some(expected));
                    }
                    if data.is_empty() && !json_body {
                        // Content empty: the base64 string is used instead.
                        prop_assert_eq!(out, b"Hello".to_vec());
                    } else {
                        prop_assert_eq!(out, data.clone());
                    }
                }
            }
        }
    }

    const FILE_INFO: &str = concat!(
        r#"<?xml version="1.0" encoding="utf-8"?>"#,
        r#"<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body>"#,
        r#"<ParcelDownloadResponse xmlns="https://os.ecgrid.io/"><ParcelDownloadResult>"#,
        r#"<ParcelID>7</ParcelID><FileName a="x>y">a&#x1B;b</FileName><!-- <Content>no</Content> -->"#,
        r#"<Bytes>5</Bytes><Content>aGVs&#xD;&#10;bG8=</Content><ContentBase64String>SGVsbG8=</ContentBase64String>"#,
        r#"<routerArchive>false</routerArchive></ParcelDownloadResult></ParcelDownloadResponse></soap:Body></soap:Envelope>"#
    );

    fn extract<E: ContentExtractor>(
        mut e: E,
        body: &[u8],
        piece: usize,
    ) -> Result<(Vec<u8>, Extracted), StreamError> {
        let mut out = Vec::new();
        for p in body.chunks(piece) {
            e.feed(p, &mut out)?;
        }
        let x = e.finish(&mut out)?;
        Ok((out, x))
    }

    #[test]
    fn soap_content_is_decoded_and_left_out_of_the_skeleton() {
        for piece in [1, 2, 3, 5, 64, 4096] {
            let (out, x) =
                extract(SoapContentExtractor::new(4096), FILE_INFO.as_bytes(), piece).unwrap();
            assert_eq!(out, b"hello", "piece {piece}");
            assert_eq!(x.source, Some(ContentSource::Content));
            assert_eq!(x.decoded_bytes, 5);
            let skeleton = String::from_utf8(x.skeleton).unwrap();
            assert!(
                skeleton.contains("<Content></Content><ContentBase64String></ContentBase64String>"),
                "{skeleton}"
            );
            assert!(skeleton.contains(r#"<FileName a="x>y">a&#x1B;b</FileName>"#));
        }
    }

    #[test]
    fn soap_falls_back_to_the_base64_string() {
        let body = FILE_INFO.replace("aGVs&#xD;&#10;bG8=", "");
        let (out, x) = extract(SoapContentExtractor::new(4096), body.as_bytes(), 3).unwrap();
        assert_eq!(out, b"Hello");
        assert_eq!(x.source, Some(ContentSource::ContentBase64String));
        let body = FILE_INFO.replace("<Content>aGVs&#xD;&#10;bG8=</Content>", "<Content />");
        let (out, _) = extract(SoapContentExtractor::new(4096), body.as_bytes(), 7).unwrap();
        assert_eq!(out, b"Hello");
    }

    #[test]
    fn soap_errors_name_the_problem() {
        let bad = FILE_INFO.replace("aGVs&#xD;", "a!Vs&#xD;");
        let err = extract(SoapContentExtractor::new(4096), bad.as_bytes(), 4).unwrap_err();
        assert_eq!(
            err,
            StreamError::Base64(Base64Error {
                offset: 1,
                reason: "not a base64 character"
            })
        );
        let cut = &FILE_INFO.as_bytes()[..FILE_INFO.find("bG8=").unwrap()];
        assert!(matches!(
            extract(SoapContentExtractor::new(4096), cut, 4),
            Err(StreamError::Malformed(_))
        ));
        assert_eq!(
            extract(SoapContentExtractor::new(100), FILE_INFO.as_bytes(), 4).unwrap_err(),
            StreamError::SkeletonTooLarge { limit: 100 }
        );
        let nested = FILE_INFO.replace("aGVs&#xD;&#10;bG8=", "aGVs<x/>bG8=");
        assert!(matches!(
            extract(SoapContentExtractor::new(4096), nested.as_bytes(), 4),
            Err(StreamError::Malformed(_))
        ));
    }

    #[test]
    fn a_fault_is_kept_whole() {
        let fault = r#"<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body><soap:Fault><faultcode>soap:Client</faultcode><faultstring>no</faultstring></soap:Fault></soap:Body></soap:Envelope>"#;
        let (out, x) = extract(SoapContentExtractor::new(4096), fault.as_bytes(), 5).unwrap();
        assert!(out.is_empty());
        assert_eq!(x.source, None);
        assert_eq!(x.skeleton, fault.as_bytes());
    }

    #[test]
    fn json_content_in_any_order_with_escapes() {
        let body = br#"{"success":true,"data":{"content":"aGVs\nbG8\u003d","parcelId":7,"x":{"content":"zz"},"fileName":"a\"b","bytes":5},"errorCode":null}"#;
        for piece in [1, 2, 3, 9, 4096] {
            let (out, x) = extract(JsonContentExtractor::new(4096), body, piece).unwrap();
            assert_eq!(out, b"hello");
            assert_eq!(x.source, Some(ContentSource::Json));
            assert_eq!(
                x.skeleton,
                br#"{"success":true,"data":{"content":"","parcelId":7,"x":{"content":"zz"},"fileName":"a\"b","bytes":5},"errorCode":null}"#
            );
        }
        let slashes = br#"{"data":{"content":"\/\/\/+"}}"#;
        let (out, _) = extract(JsonContentExtractor::new(4096), slashes, 1).unwrap();
        assert_eq!(out, [0xff, 0xff, 0xfe]);
        let err = br#"{"success":false,"errorCode":"ObjectNotFound","message":"no","data":null}"#;
        let (out, x) = extract(JsonContentExtractor::new(4096), err, 2).unwrap();
        assert!(out.is_empty());
        assert_eq!(x.skeleton, err);
        assert!(extract(
            JsonContentExtractor::new(4096),
            br#"{"data":{"content":"aGV"#,
            2
        )
        .is_err());
        let bad = br#"{"data":{"content":"aG\"Vs"}}"#;
        assert!(extract(JsonContentExtractor::new(4096), bad, 2).is_err());
    }
}
