//! A byte scanner for the content of a response in the canonical shape asmx
//! writes, and the reference resolution both readers share.
//!
//! Inside `<{Op}Response xmlns="{namespace}">` an asmx service writes
//! elements without prefixes or namespace declarations, whose only attribute
//! is `xsi:nil="true"`, and text with no comments, CDATA sections or
//! processing instructions. For that shape every element is in the service
//! namespace and `xsi` is the envelope's declaration, so the scanner reads
//! it byte by byte without a namespace table or per-event UTF-8 checks.
//!
//! The moment the input leaves that shape (a prefix, another attribute, a
//! comment, a reference it does not know, an element nested too deep, a
//! mismatched end tag) the scanner stops with an error and marks itself
//! [`left`](Scanner::left): the caller then reads the whole document again
//! with the full reader, so correctness never depends on the shape.

use std::borrow::Cow;

use super::reader::{Ns, Start};
use super::ReadError;

/// The character an entity or character reference stands for: one of the
/// five predefined entities, `#digits` or `#xhex`. Character references to
/// characters XML 1.0 forbids (`&#x0;`, `&#x1B;`, which .NET writes in
/// strings) resolve to the character; `None` for an undeclared entity, a
/// number that is not a Unicode scalar value, or a malformed reference.
pub(super) fn resolve_reference(name: &str) -> Option<char> {
    let Some(number) = name.strip_prefix('#') else {
        return match name {
            "lt" => Some('<'),
            "gt" => Some('>'),
            "amp" => Some('&'),
            "apos" => Some('\''),
            "quot" => Some('"'),
            _ => None,
        };
    };
    let (digits, radix) = match number.strip_prefix('x') {
        Some(hex) => (hex, 16),
        None => (number, 10),
    };
    if digits.is_empty() {
        return None;
    }
    let mut code: u32 = 0;
    for b in digits.bytes() {
        let digit = char::from(b).to_digit(radix)?;
        code = code.checked_mul(radix)?.checked_add(digit)?;
    }
    char::from_u32(code)
}

/// The longest reference the scanner resolves itself (`&#x10FFFF;` with
/// leading zeros is longer, and goes to the full reader).
const MAX_REFERENCE: usize = 12;

/// Byte classes, looked up once per byte in the scanner's loops.
const NAME: u8 = 1;
const NAME_START: u8 = 2;
/// Ends a run of plain text: `<`, `&` or a carriage return.
const SPECIAL: u8 = 4;

const CLASSES: [u8; 256] = {
    let mut classes = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        if c.is_ascii_alphabetic() || c == b'_' {
            classes[b] = NAME | NAME_START;
        } else if c.is_ascii_digit() || c == b'-' || c == b'.' {
            classes[b] = NAME;
        } else if c == b'<' || c == b'&' || c == b'\r' {
            classes[b] = SPECIAL;
        }
        b += 1;
    }
    classes
};

fn is(class: u8, b: u8) -> bool {
    CLASSES[usize::from(b)] & class != 0
}

/// The length of the prefix of `bytes` whose bytes are all of `class`
/// (`invert`: none of them are).
fn span(bytes: &[u8], class: u8, invert: bool) -> usize {
    let mut n = 0;
    for &b in bytes {
        if is(class, b) == invert {
            break;
        }
        n += 1;
    }
    n
}

/// The length of the plain text at the start of `bytes`: up to the first
/// `<`, `&` or carriage return. Reads eight bytes at a time: in a word
/// XORed with the byte sought, the lowest zero byte is the first match, and
/// `(x - 0x01..) & !x & 0x80..` marks it exactly (bits above it may be
/// false matches, bits below never are).
fn plain_run(bytes: &[u8]) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    fn zero_bytes(x: u64) -> u64 {
        x.wrapping_sub(ONES) & !x & HIGHS
    }
    let mut n = 0;
    for chunk in bytes.chunks_exact(8) {
        let Ok(word) = <[u8; 8]>::try_from(chunk) else {
            break;
        };
        let word = u64::from_le_bytes(word);
        let found = zero_bytes(word ^ (ONES * u64::from(b'<')))
            | zero_bytes(word ^ (ONES * u64::from(b'&')))
            | zero_bytes(word ^ (ONES * u64::from(b'\r')));
        if found != 0 {
            return n + (found.trailing_zeros() / 8) as usize;
        }
        n += 8;
    }
    n + span(bytes.get(n..).unwrap_or_default(), SPECIAL, true)
}

/// The tails of a start tag after its name that the scanner reads: its
/// bytes, whether the element is empty, whether it is nil.
const START_TAILS: [(&[u8], bool, bool); 5] = [
    (b">", false, false),
    (b"/>", true, false),
    (b" />", true, false),
    (b" xsi:nil=\"true\" />", true, true),
    (b" xsi:nil=\"true\">", false, true),
];

/// The scanner: a position in the input and the open elements.
pub(super) struct Scanner<'x> {
    input: &'x str,
    pos: usize,
    /// The names of the open elements, innermost last; the first is the
    /// response element.
    open: Vec<&'x str>,
    /// Nesting depth counted as the full reader counts it (the envelope is 1).
    depth: usize,
    max_depth: usize,
    left: bool,
}

impl<'x> Scanner<'x> {
    /// A scanner at byte `pos` of `input`, just after the start tag of the
    /// element `open` (the response element) at `depth`.
    pub(super) fn new(
        input: &'x str,
        pos: usize,
        open: &'x str,
        depth: usize,
        max_depth: usize,
    ) -> Self {
        let mut names = Vec::with_capacity(16);
        names.push(open);
        Scanner {
            input,
            pos,
            open: names,
            depth,
            max_depth,
            left: false,
        }
    }

    /// True once the input left the canonical shape: every error since is
    /// the scanner's, not the document's.
    pub(super) fn left(&self) -> bool {
        self.left
    }

    /// The byte offset just after what has been read.
    pub(super) fn position(&self) -> usize {
        self.pos
    }

    /// Marks the input as outside the canonical shape; the error only stops
    /// the typed reader, which is then run again by the full reader.
    pub(super) fn leave(&mut self) -> ReadError {
        self.left = true;
        ReadError::malformed("the response left the canonical asmx shape")
    }

    fn byte(&self, at: usize) -> Option<u8> {
        self.input.as_bytes().get(at).copied()
    }

    /// The next element start among the current element's children; `None`
    /// at the current element's end. Text between elements is ignored, as
    /// the full reader ignores it, unless it holds a reference.
    pub(super) fn next_child(&mut self) -> Result<Option<Start<'x>>, ReadError> {
        let bytes = self.input.as_bytes();
        let found = bytes
            .get(self.pos..)
            .and_then(|rest| rest.iter().position(|&b| b == b'<' || b == b'&'));
        let Some(lt) = found.map(|offset| self.pos + offset) else {
            return Err(self.leave());
        };
        match (self.byte(lt), self.byte(lt + 1)) {
            (Some(b'<'), Some(b'/')) => self.close(lt + 2).map(|()| None),
            (Some(b'<'), Some(b)) if is(NAME_START, b) => self.open(lt + 1).map(Some),
            _ => Err(self.leave()),
        }
    }

    /// Reads a start tag whose name begins at `at`.
    fn open(&mut self, at: usize) -> Result<Start<'x>, ReadError> {
        let bytes = self.input.as_bytes();
        let rest = bytes.get(at..).unwrap_or_default();
        let end = at + span(rest, NAME, false);
        let tail = bytes.get(end..).unwrap_or_default();
        let (text, empty, nil) = if tail.first() == Some(&b'>') {
            START_TAILS[0]
        } else {
            match START_TAILS.iter().find(|(t, _, _)| tail.starts_with(t)) {
                Some(&found) => found,
                None => return Err(self.leave()),
            }
        };
        let depth = self.depth + 1;
        let Some(local) = self.input.get(at..end).filter(|_| depth <= self.max_depth) else {
            return Err(self.leave());
        };
        if !empty {
            self.open.push(local);
            self.depth = depth;
        }
        self.pos = end + text.len();
        Ok(Start {
            ns: Ns::Service,
            local,
            empty,
            nil,
        })
    }

    /// Reads the end tag whose name begins at `at`: it must close the
    /// innermost open element.
    fn close(&mut self, at: usize) -> Result<(), ReadError> {
        let Some(&name) = self.open.last() else {
            return Err(self.leave());
        };
        let end = at + name.len();
        let bytes = self.input.as_bytes();
        if bytes.get(at..end) != Some(name.as_bytes()) || bytes.get(end) != Some(&b'>') {
            return Err(self.leave());
        }
        self.open.pop();
        self.depth -= 1;
        self.pos = end + 1;
        Ok(())
    }

    /// Skips the rest of an element whose start was just read.
    pub(super) fn skip(&mut self, start: &Start<'_>) -> Result<(), ReadError> {
        if start.empty {
            return Ok(());
        }
        while let Some(child) = self.next_child()? {
            self.skip(&child)?;
        }
        Ok(())
    }

    /// The text content of an element whose start was just read: borrowed
    /// from the input unless it holds a reference or a carriage return
    /// (line ends are normalized as XML 1.0 requires).
    pub(super) fn text(&mut self, start: &Start<'_>) -> Result<Cow<'x, str>, ReadError> {
        if start.empty {
            return Ok(Cow::Borrowed(""));
        }
        let from = self.pos;
        let run = self.run(from);
        let text = match self.byte(from + run) {
            Some(b'<') => match self.input.get(from..from + run) {
                Some(plain) => {
                    self.pos = from + run;
                    Cow::Borrowed(plain)
                }
                None => return Err(self.leave()),
            },
            _ => Cow::Owned(self.owned_text(from, run)?),
        };
        if self.byte(self.pos) != Some(b'<') || self.byte(self.pos + 1) != Some(b'/') {
            // A child element, a comment or CDATA: the full reader decides.
            return Err(self.leave());
        }
        self.close(self.pos + 2)?;
        Ok(text)
    }

    /// The length of the plain text starting at `from`.
    fn run(&self, from: usize) -> usize {
        plain_run(self.input.as_bytes().get(from..).unwrap_or_default())
    }

    /// Text with references or carriage returns, from `from` (whose first
    /// `run` bytes are plain) to the next `<`.
    fn owned_text(&mut self, from: usize, run: usize) -> Result<String, ReadError> {
        let mut text = String::with_capacity(run + 16);
        let mut at = from;
        let mut run = run;
        loop {
            let Some(plain) = self.input.get(at..at + run) else {
                return Err(self.leave());
            };
            text.push_str(plain);
            at += run;
            match self.byte(at) {
                Some(b'<') => break,
                Some(b'&') => {
                    let name = self.input.get(at + 1..).and_then(|rest| {
                        let semi = rest.bytes().take(MAX_REFERENCE).position(|b| b == b';')?;
                        rest.get(..semi)
                    });
                    let Some((name, ch)) = name.and_then(|n| Some((n, resolve_reference(n)?)))
                    else {
                        return Err(self.leave());
                    };
                    text.push(ch);
                    at += name.len() + 2;
                }
                Some(b'\r') => {
                    text.push('\n');
                    at += 1;
                    if self.byte(at) == Some(b'\n') {
                        at += 1;
                    }
                }
                _ => return Err(self.leave()),
            }
            run = self.run(at);
        }
        self.pos = at;
        Ok(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_resolve_leniently() {
        assert_eq!(resolve_reference("amp"), Some('&'));
        assert_eq!(resolve_reference("quot"), Some('"'));
        assert_eq!(resolve_reference("#65"), Some('A'));
        assert_eq!(resolve_reference("#x41"), Some('A'));
        assert_eq!(resolve_reference("#x0"), Some('\0'));
        assert_eq!(resolve_reference("#x1B"), Some('\u{1B}'));
        assert_eq!(resolve_reference("#27"), Some('\u{1B}'));
        assert_eq!(resolve_reference("#x0001F600"), Some('😀'));
        for bad in [
            "nbsp",
            "",
            "#",
            "#x",
            "#X41",
            "#+65",
            "#-1",
            "#xD800",
            "#x110000",
            "#99999999999",
            "#x4G",
            "#6 5",
        ] {
            assert_eq!(resolve_reference(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn plain_runs_end_at_the_first_special_byte() {
        let mut rng = fastrand::Rng::with_seed(13);
        let alphabet = b"ab<&\r\n \xc3\xa9>;";
        for _ in 0..20_000 {
            let len = rng.usize(0..40);
            let bytes: Vec<u8> = (0..len)
                .map(|_| alphabet[rng.usize(..alphabet.len())])
                .collect();
            let expected = bytes.iter().position(|&b| is(SPECIAL, b)).unwrap_or(len);
            assert_eq!(plain_run(&bytes), expected, "{bytes:?}");
        }
    }

    fn scanner(content: &str) -> Scanner<'_> {
        Scanner::new(content, 0, "R", 3, 64)
    }

    #[test]
    fn reads_elements_text_and_references() {
        let mut s = scanner("<A>1</A> <B/><C xsi:nil=\"true\" /><D>x&lt;&#x1B;y\r\nz</D></R>");
        let a = s.next_child().unwrap().unwrap();
        assert_eq!((a.local, a.empty), ("A", false));
        assert!(matches!(s.text(&a).unwrap(), Cow::Borrowed("1")));
        let b = s.next_child().unwrap().unwrap();
        assert_eq!((b.local, b.empty, b.nil), ("B", true, false));
        let c = s.next_child().unwrap().unwrap();
        assert_eq!((c.local, c.empty, c.nil), ("C", true, true));
        let d = s.next_child().unwrap().unwrap();
        assert_eq!(s.text(&d).unwrap(), "x<\u{1B}y\nz");
        assert!(s.next_child().unwrap().is_none());
        assert!(!s.left());
        assert_eq!(s.position(), s.input.len());
    }

    #[test]
    fn leaves_the_shape_on_anything_else() {
        for content in [
            "<p:A>1</p:A></R>",
            "<A xmlns=\"urn:x\">1</A></R>",
            "<A a=\"1\">1</A></R>",
            "<!-- c --><A>1</A></R>",
            "<A><![CDATA[1]]></A></R>",
            "<A>1</B></R>",
            "<A>1</A ></R>",
            "<A>&nbsp;</A></R>",
            "<A>&#xD800;</A></R>",
            "<A>a & b</A></R>",
            "<A>1<!-- c --></A></R>",
            "<?pi?><A>1</A></R>",
            "&amp;<A>1</A></R>",
            "<A>1</A>",
            "<A>1",
        ] {
            let mut s = scanner(content);
            let outcome = s
                .next_child()
                .and_then(|a| match a {
                    Some(a) => s.text(&a).map(|_| ()),
                    None => Ok(()),
                })
                .and_then(|()| s.next_child().map(|_| ()));
            assert!(outcome.is_err() && s.left(), "{content}");
        }
    }

    #[test]
    fn depth_beyond_the_limit_leaves_the_shape() {
        let mut s = Scanner::new("<A><B/></A></R>", 0, "R", 3, 4);
        let a = s.next_child().unwrap().unwrap();
        assert!(s.skip(&a).is_err());
        assert!(s.left());
    }
}
