//! Upload bodies read as they arrive: the base64 content (the `Content` or
//! `ContentBase64` element of a SOAP upload, the `"content"` string of a
//! REST upload) is decoded chunk by chunk into the parcel's bytes, and only
//! the rest of the document (the "skeleton", with that element or string
//! left empty) is kept as text, to be read by the ordinary request readers.
//! So the fake holds the decoded bytes and a few KiB, never the base64 text
//! whole.

use std::time::Duration;

use axum::body::{Body, Bytes};
use base64::Engine;

/// Base64 characters decoded at a time.
const BLOCK: usize = 64 * 1024;
/// The largest skeleton kept (everything but the content).
const MAX_SKELETON: usize = 2 * 1024 * 1024;

/// Which document the splitter reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Format {
    /// A SOAP envelope: the content is the text of the first element named
    /// `Content` or `ContentBase64` (any prefix).
    Xml,
    /// A JSON object: the content is the string value of its `"content"` key.
    Json,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// Copying the skeleton.
    Outside,
    /// Inside a tag (`<` seen, `>` not yet).
    Tag,
    /// Inside the content.
    Content,
    /// Inside an entity or character reference within the content.
    Reference,
    /// JSON: inside a string that is not the content.
    String { escaped: bool },
    /// JSON: inside the content, after a backslash.
    ContentEscape,
}

/// Splits an upload body into the skeleton and the decoded content.
pub(super) struct Splitter {
    format: Format,
    mode: Mode,
    skeleton: Vec<u8>,
    /// The current tag (XML) or the last short string token (JSON).
    token: Vec<u8>,
    /// JSON nesting depth outside strings.
    depth: usize,
    /// JSON: the last string was the key `content` and a `:` followed.
    after_content_key: bool,
    /// JSON: the last string token ended and may be a key.
    key_ended: bool,
    pending: Vec<u8>,
    decoded: Vec<u8>,
    padded: bool,
    found: bool,
}

impl Splitter {
    /// A splitter for `format`.
    pub(super) fn new(format: Format) -> Self {
        Splitter {
            format,
            mode: Mode::Outside,
            skeleton: Vec::with_capacity(4096),
            token: Vec::new(),
            depth: 0,
            after_content_key: false,
            key_ended: false,
            pending: Vec::with_capacity(BLOCK + 4),
            decoded: Vec::new(),
            padded: false,
            found: false,
        }
    }

    /// Room for `n` decoded bytes, so a large upload is not copied as its
    /// buffer grows.
    pub(super) fn reserve(&mut self, n: usize) {
        self.decoded.reserve_exact(n);
    }

    /// Reads the next piece of the body.
    pub(super) fn feed(&mut self, chunk: &[u8]) -> Result<(), String> {
        match self.format {
            Format::Xml => self.feed_xml(chunk)?,
            Format::Json => self.feed_json(chunk)?,
        }
        if self.skeleton.len() > MAX_SKELETON {
            return Err("the request is too large outside its content".into());
        }
        Ok(())
    }

    fn feed_xml(&mut self, chunk: &[u8]) -> Result<(), String> {
        let mut i = 0;
        while i < chunk.len() {
            let b = chunk[i];
            match self.mode {
                Mode::Outside => {
                    // Copy up to the next tag in one go.
                    let end = chunk[i..]
                        .iter()
                        .position(|&c| c == b'<')
                        .map_or(chunk.len(), |p| i + p);
                    self.skeleton.extend_from_slice(&chunk[i..end]);
                    i = end;
                    if i < chunk.len() {
                        self.skeleton.push(b'<');
                        self.token.clear();
                        self.mode = Mode::Tag;
                        i += 1;
                    }
                    continue;
                }
                Mode::Tag => {
                    self.skeleton.push(b);
                    if b == b'>' {
                        self.mode = if !self.found && is_content_start(&self.token) {
                            self.found = true;
                            Mode::Content
                        } else {
                            Mode::Outside
                        };
                    } else if self.token.len() < 256 {
                        self.token.push(b);
                    }
                }
                Mode::Content => {
                    let end = chunk[i..]
                        .iter()
                        .position(|&c| c == b'<' || c == b'&')
                        .map_or(chunk.len(), |p| i + p);
                    self.base64(&chunk[i..end])?;
                    i = end;
                    if i < chunk.len() {
                        if chunk[i] == b'<' {
                            self.mode = Mode::Outside;
                        } else {
                            self.token.clear();
                            self.mode = Mode::Reference;
                            i += 1;
                        }
                    }
                    continue;
                }
                Mode::Reference => {
                    if b == b';' {
                        // Only references to white space may occur in base64.
                        match self.token.as_slice() {
                            b"#xD" | b"#xd" | b"#13" | b"#xA" | b"#xa" | b"#10" | b"#x9"
                            | b"#9" | b"#x20" | b"#32" => {}
                            _ => {
                                return Err(
                                    "the content holds a reference that is not white space".into()
                                )
                            }
                        }
                        self.mode = Mode::Content;
                    } else if self.token.len() > 8 {
                        return Err("the content holds a malformed reference".into());
                    } else {
                        self.token.push(b);
                    }
                }
                Mode::String { .. } | Mode::ContentEscape => {
                    return Err("internal: JSON state in an XML body".into())
                }
            }
            i += 1;
        }
        Ok(())
    }

    fn feed_json(&mut self, chunk: &[u8]) -> Result<(), String> {
        let mut i = 0;
        while i < chunk.len() {
            let b = chunk[i];
            match self.mode {
                Mode::Outside => {
                    self.skeleton.push(b);
                    match b {
                        b'"' => {
                            if self.after_content_key && self.depth == 1 && !self.found {
                                self.found = true;
                                self.mode = Mode::Content;
                            } else {
                                self.token.clear();
                                self.mode = Mode::String { escaped: false };
                            }
                            self.after_content_key = false;
                            self.key_ended = false;
                        }
                        b':' => {
                            self.after_content_key = self.key_ended && self.token == b"content";
                            self.key_ended = false;
                        }
                        b'{' | b'[' => {
                            self.depth += 1;
                            self.after_content_key = false;
                            self.key_ended = false;
                        }
                        b'}' | b']' => {
                            self.depth = self.depth.saturating_sub(1);
                            self.after_content_key = false;
                            self.key_ended = false;
                        }
                        b' ' | b'\t' | b'\r' | b'\n' => {}
                        _ => {
                            self.after_content_key = false;
                            self.key_ended = false;
                        }
                    }
                }
                Mode::String { escaped } => {
                    self.skeleton.push(b);
                    if escaped {
                        self.mode = Mode::String { escaped: false };
                        self.token.push(b'\\');
                        self.token.push(b);
                    } else if b == b'\\' {
                        self.mode = Mode::String { escaped: true };
                    } else if b == b'"' {
                        self.mode = Mode::Outside;
                        self.key_ended = true;
                    } else if self.token.len() < 16 {
                        self.token.push(b);
                    }
                }
                Mode::Content => {
                    let end = chunk[i..]
                        .iter()
                        .position(|&c| c == b'"' || c == b'\\')
                        .map_or(chunk.len(), |p| i + p);
                    self.base64(&chunk[i..end])?;
                    i = end;
                    if i < chunk.len() {
                        if chunk[i] == b'"' {
                            self.skeleton.push(b'"');
                            self.mode = Mode::Outside;
                        } else {
                            self.mode = Mode::ContentEscape;
                        }
                        i += 1;
                    }
                    continue;
                }
                Mode::ContentEscape => {
                    match b {
                        b'/' => self.base64(b"/")?,
                        b'n' | b'r' | b't' => {}
                        _ => return Err("the content holds an escape base64 cannot hold".into()),
                    }
                    self.mode = Mode::Content;
                }
                Mode::Tag | Mode::Reference => {
                    return Err("internal: XML state in a JSON body".into())
                }
            }
            i += 1;
        }
        Ok(())
    }

    /// Takes base64 text (white space is skipped) and decodes whole blocks.
    fn base64(&mut self, text: &[u8]) -> Result<(), String> {
        for &c in text {
            match c {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'+' | b'/' => {
                    if self.padded {
                        return Err("the content goes on after its base64 padding".into());
                    }
                    self.pending.push(c);
                }
                b'=' => {
                    self.padded = true;
                    self.pending.push(c);
                }
                b' ' | b'\t' | b'\r' | b'\n' => {}
                _ => return Err(format!("the content is not base64 (byte 0x{c:02X})")),
            }
        }
        if self.pending.len() >= BLOCK {
            let whole = self.pending.len() / 4 * 4;
            self.decode(whole)?;
        }
        Ok(())
    }

    fn decode(&mut self, n: usize) -> Result<(), String> {
        base64::engine::general_purpose::STANDARD
            .decode_vec(&self.pending[..n], &mut self.decoded)
            .map_err(|e| format!("the content is not base64: {e}"))?;
        self.pending.drain(..n);
        Ok(())
    }

    /// The skeleton and, when the content was found, its decoded bytes.
    pub(super) fn finish(mut self) -> Result<(Bytes, Option<Bytes>), String> {
        if matches!(
            self.mode,
            Mode::Content | Mode::Reference | Mode::ContentEscape
        ) {
            return Err("the body ends inside the content".into());
        }
        let n = self.pending.len();
        self.decode(n)?;
        let content = self.found.then(|| Bytes::from(self.decoded));
        Ok((Bytes::from(self.skeleton), content))
    }
}

/// Whether a start tag (the text between `<` and `>`) opens the content
/// element: local name `Content` or `ContentBase64`, not self-closing.
fn is_content_start(tag: &[u8]) -> bool {
    if tag.first().is_some_and(|b| matches!(b, b'/' | b'?' | b'!')) || tag.ends_with(b"/") {
        return false;
    }
    let name_end = tag
        .iter()
        .position(|b| b.is_ascii_whitespace() || *b == b'/')
        .unwrap_or(tag.len());
    let name = &tag[..name_end];
    let local = name
        .iter()
        .rposition(|b| *b == b':')
        .map_or(name, |p| &name[p + 1..]);
    local == b"Content" || local == b"ContentBase64"
}

/// Why an upload body could not be read.
#[derive(Debug)]
pub(super) enum ReadFailure {
    /// Larger than the cap.
    TooLarge,
    /// No data for longer than the body timeout.
    Stalled,
    /// The connection broke.
    Broken,
    /// The content is not readable; the text says why.
    Invalid(String),
}

/// Reads `body` through a splitter: at most `max` bytes, none of its pieces
/// more than `idle` after the previous one.
pub(super) async fn read(
    body: Body,
    format: Format,
    max: usize,
    idle: Duration,
) -> Result<(Bytes, Option<Bytes>), ReadFailure> {
    use hyper::body::Body as _;
    let mut body = std::pin::pin!(body);
    let mut splitter = Splitter::new(format);
    // The declared length bounds the content: three bytes per four characters.
    if let Some(length) = body.size_hint().exact() {
        let length = usize::try_from(length).unwrap_or(usize::MAX);
        if length > max {
            return Err(ReadFailure::TooLarge);
        }
        splitter.reserve(length / 4 * 3);
    }
    let mut total = 0usize;
    loop {
        let frame = tokio::time::timeout(
            idle,
            std::future::poll_fn(|cx| body.as_mut().poll_frame(cx)),
        )
        .await
        .map_err(|_| ReadFailure::Stalled)?;
        let Some(frame) = frame else { break };
        let frame = frame.map_err(|_| ReadFailure::Broken)?;
        if let Ok(data) = frame.into_data() {
            total = total.saturating_add(data.len());
            if total > max {
                return Err(ReadFailure::TooLarge);
            }
            splitter.feed(&data).map_err(ReadFailure::Invalid)?;
        }
    }
    splitter.finish().map_err(ReadFailure::Invalid)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(
        format: Format,
        text: &str,
        piece: usize,
    ) -> Result<(String, Option<Vec<u8>>), String> {
        let mut s = Splitter::new(format);
        for chunk in text.as_bytes().chunks(piece) {
            s.feed(chunk)?;
        }
        let (skeleton, content) = s.finish()?;
        Ok((
            String::from_utf8(skeleton.to_vec()).unwrap(),
            content.map(|c| c.to_vec()),
        ))
    }

    #[test]
    fn xml_content_is_decoded_and_left_out() {
        let doc = "<s:Envelope><s:Body><ParcelUpload xmlns=\"x\"><FileName>a&amp;b</FileName><Bytes>5</Bytes><Content>aGVs&#xD;\nbG8=</Content></ParcelUpload></s:Body></s:Envelope>";
        for piece in [1, 3, 7, 1000] {
            let (skeleton, content) = split(Format::Xml, doc, piece).unwrap();
            assert_eq!(content.as_deref(), Some(&b"hello"[..]));
            assert_eq!(skeleton, doc.replace("aGVs&#xD;\nbG8=", ""));
        }
        let prefixed = "<a><p:ContentBase64 xmlns:p=\"x\">aGk=</p:ContentBase64><Content/></a>";
        assert_eq!(
            split(Format::Xml, prefixed, 2).unwrap().1.as_deref(),
            Some(&b"hi"[..])
        );
        assert_eq!(
            split(Format::Xml, "<a><ContentType>x</ContentType></a>", 4)
                .unwrap()
                .1,
            None
        );
        assert!(split(Format::Xml, "<a><Content>a*b=</Content></a>", 4).is_err());
        assert!(split(Format::Xml, "<a><Content>aGk=aGk=</Content></a>", 4).is_err());
        assert!(split(Format::Xml, "<a><Content>aGk", 4).is_err());
        assert!(split(Format::Xml, "<a><Content>a&amp;</Content></a>", 4).is_err());
    }

    #[test]
    fn json_content_is_decoded_and_left_out() {
        let doc =
            r#"{"fileName":"content","nested":{"content":"x"},"content":"aGVs\/w==","bytes":5}"#;
        for piece in [1, 5, 1000] {
            let (skeleton, content) = split(Format::Json, doc, piece).unwrap();
            assert_eq!(content.as_deref(), Some(&[0x68, 0x65, 0x6c, 0xff][..]));
            assert_eq!(skeleton, doc.replace(r"aGVs\/w==", ""));
            let parsed: serde_json::Value = serde_json::from_str(&skeleton).unwrap();
            assert_eq!(parsed["nested"]["content"], "x");
        }
        assert_eq!(
            split(Format::Json, r#"{"content": null}"#, 3).unwrap().1,
            None
        );
        assert!(split(Format::Json, r#"{"content":"a\u0041"}"#, 3).is_err());
    }

    #[test]
    fn large_content_in_blocks() {
        let raw: Vec<u8> = (0..300_000u32).map(|i| (i * 7) as u8).collect();
        let text = base64::engine::general_purpose::STANDARD.encode(&raw);
        let doc = format!("<a><Content>{text}</Content></a>");
        let (_, content) = split(Format::Xml, &doc, 8191).unwrap();
        assert_eq!(content.unwrap(), raw);
    }
}
