//! The generated types: write-after-read of every complex type and
//! enumeration with random values (a property test driven by the contract
//! file, independent of the generator), DataSets, and bad answers.

use base64::Engine as _;
use ecgridos::api::types::{ArrayOfString, MailboxIdInfo};
use ecgridos::api::{enums, TYPES};
use ecgridos::wire::{
    read_response, write_response, DataSet, DataTable, ReadError, Reply, SoapVersion,
};
use proptest::prelude::*;
use serde_json::Value;

const NS: &str = "https://os.ecgrid.io/";

fn contract() -> Value {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/contract/ecgridos-v4.1-contract.json"
    ))
    .unwrap();
    serde_json::from_str(&text).unwrap()
}

/// Text escaped the way the crate's writer escapes it.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('\r', "&#xD;")
}

struct Gen<'c> {
    contract: &'c Value,
    rng: fastrand::Rng,
}

impl<'c> Gen<'c> {
    fn complex(&self, name: &str) -> Option<&Value> {
        self.contract["complex_types"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == name)
    }

    fn enumeration(&self, name: &str) -> Option<&'c Value> {
        self.contract["enumerations"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == name)
    }

    fn simple(&mut self, ty: &str) -> String {
        let r = &mut self.rng;
        match ty {
            "s:string" => {
                let choices = ["", "plain", "a&b<c>d", "ünï 😀", "cr\rlf\n", " spaced "];
                escape(choices[r.usize(..choices.len())])
            }
            "s:int" => r.i32(..).to_string(),
            "s:long" => r.i64(..).to_string(),
            "s:short" => r.i16(..).to_string(),
            "s:unsignedByte" => r.u8(..).to_string(),
            "s:boolean" => r.bool().to_string(),
            "s:float" => loop {
                let v = f32::from_bits(r.u32(..));
                if v.is_finite() {
                    break v.to_string();
                }
            },
            "s:base64Binary" => {
                let bytes: Vec<u8> = (0..r.usize(0..20)).map(|_| r.u8(..)).collect();
                base64::engine::general_purpose::STANDARD.encode(bytes)
            }
            "s:dateTime" => {
                let mut t = format!(
                    "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
                    r.u16(1..=9999),
                    r.u8(1..=12),
                    r.u8(1..=28),
                    r.u8(0..24),
                    r.u8(0..60),
                    r.u8(0..60)
                );
                let digits = r.usize(0..=7);
                if digits > 0 {
                    t.push('.');
                    for _ in 0..digits {
                        t.push(char::from(b'0' + r.u8(0..10)));
                    }
                }
                match r.u8(0..3) {
                    0 => {}
                    1 => t.push('Z'),
                    _ => t.push_str(&format!(
                        "{}{:02}:{:02}",
                        if r.bool() { '+' } else { '-' },
                        r.u8(0..=14),
                        r.u8(0..60)
                    )),
                }
                t
            }
            other => panic!("no generator for {other}"),
        }
    }

    /// The content of an element of type `ty`.
    fn value(&mut self, ty: &str, depth: usize) -> String {
        let local = ty.trim_start_matches("tns:");
        if let Some(e) = self.enumeration(local).cloned() {
            let values = e["values"].as_array().unwrap();
            if self.rng.u8(0..5) == 0 {
                return "NotInTheContract".to_string();
            }
            return values[self.rng.usize(..values.len())]
                .as_str()
                .unwrap()
                .to_string();
        }
        let Some(t) = self.complex(local) else {
            return self.simple(ty);
        };
        let t = t.clone();
        let mut out = String::new();
        for f in t["fields"].as_array().unwrap() {
            let name = f["name"].as_str().unwrap();
            let fty = f["type"].as_str().unwrap();
            let nested = self.complex(fty.trim_start_matches("tns:")).is_some();
            let count = if f["max"] == "unbounded" {
                if depth > 3 && nested {
                    0
                } else {
                    self.rng.usize(0..3)
                }
            } else if f["min"] == 1 {
                1
            } else if depth > 3 && nested {
                0
            } else {
                usize::from(self.rng.u8(0..5) < 3)
            };
            for _ in 0..count {
                if f["nillable"] == true && self.rng.u8(0..4) == 0 {
                    out.push_str(&format!("<{name} xsi:nil=\"true\" />"));
                } else {
                    let inner = self.value(fty, depth + 1);
                    out.push_str(&format!("<{name}>{inner}</{name}>"));
                }
            }
        }
        out
    }
}

fn envelope(content: &str) -> Vec<u8> {
    let mut buf = Vec::new();
    write_response(&mut buf, SoapVersion::V11, NS, "Probe", |w| {
        w.markup(content)
    });
    buf
}

#[test]
fn every_type_is_listed_once() {
    let c = contract();
    let mut names: Vec<&str> = c["complex_types"]
        .as_array()
        .unwrap()
        .iter()
        .chain(c["enumerations"].as_array().unwrap())
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    let mut listed: Vec<&str> = TYPES.iter().map(|t| t.name).collect();
    assert_eq!(listed.len(), 73 + 44);
    names.sort_unstable();
    listed.sort_unstable();
    assert_eq!(listed, names);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// For every generated type: a value written in the canonical form,
    /// read and written again, gives the same bytes: every field, its order,
    /// nil items, unknown enumeration values, all dateTime digits and offsets.
    #[test]
    fn every_type_round_trips(seed in any::<u64>()) {
        let c = contract();
        for entry in TYPES {
            let mut gen = Gen { contract: &c, rng: fastrand::Rng::with_seed(seed) };
            let content = gen.value(&format!("tns:{}", entry.name), 0);
            let xml = envelope(&content);
            let back = (entry.round_trip)(&xml, NS)
                .unwrap_or_else(|e| panic!("{}: {e}\n{content}", entry.name));
            prop_assert_eq!(
                String::from_utf8(back).unwrap(),
                String::from_utf8(xml).unwrap(),
                "{}", entry.name
            );
        }
    }
}

/// A piece of canonical content: a tag (with its `<` and `>`) or text.
#[derive(Clone, Copy, PartialEq)]
enum Piece<'a> {
    Tag(&'a str),
    Text(&'a str),
}

fn pieces(content: &str) -> Vec<Piece<'_>> {
    let mut out = Vec::new();
    let mut rest = content;
    while !rest.is_empty() {
        let (piece, len) = if rest.starts_with('<') {
            let end = rest.find('>').unwrap() + 1;
            (Piece::Tag(&rest[..end]), end)
        } else {
            let end = rest.find('<').unwrap_or(rest.len());
            (Piece::Text(&rest[..end]), end)
        };
        out.push(piece);
        rest = &rest[len..];
    }
    out
}

fn is_start(tag: &str) -> bool {
    !tag.starts_with("</") && !tag.ends_with("/>")
}

/// The ways of writing the same content: the first four are in the shape
/// the fast path reads itself, the others leave it.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Rendering {
    Canonical,
    /// Whitespace (with CR LF) between elements.
    Spaced,
    /// An unknown element, with text and a child, before every element.
    Unknown,
    /// The first character of every text as a character reference.
    CharRefs,
    /// The first element with a prefix bound to the service namespace.
    Prefixed,
    /// A comment before the first element.
    Comment,
    /// The first text without references as CDATA.
    Cdata,
}

impl Rendering {
    const ALL: [Rendering; 7] = [
        Rendering::Canonical,
        Rendering::Spaced,
        Rendering::Unknown,
        Rendering::CharRefs,
        Rendering::Prefixed,
        Rendering::Comment,
        Rendering::Cdata,
    ];

    fn canonical(self) -> bool {
        matches!(
            self,
            Rendering::Canonical | Rendering::Spaced | Rendering::Unknown | Rendering::CharRefs
        )
    }

    fn render(self, content: &str) -> String {
        let parts = pieces(content);
        let mut out = String::with_capacity(content.len() * 2);
        let mut done = false;
        let mut first_end: Option<(usize, String)> = None;
        let mut depth = 0usize;
        for (i, piece) in parts.iter().enumerate() {
            match (self, *piece) {
                (Rendering::Spaced, Piece::Tag(tag)) => {
                    let empty_leaf = i > 0
                        && matches!(parts[i - 1], Piece::Tag(prev) if is_start(prev))
                        && tag.starts_with("</");
                    if i > 0 && matches!(parts[i - 1], Piece::Tag(_)) && !empty_leaf {
                        out.push_str("\r\n\t ");
                    }
                    out.push_str(tag);
                }
                (Rendering::Unknown, Piece::Tag(tag)) if !tag.starts_with("</") => {
                    out.push_str(
                        "<ZzUnknownExtra>text<Deeper><Deepest /></Deeper></ZzUnknownExtra>",
                    );
                    out.push_str(tag);
                }
                (Rendering::CharRefs, Piece::Text(text)) if !text.starts_with('&') => {
                    let ch = text.chars().next().unwrap();
                    out.push_str(&format!(
                        "&#x{:X};{}",
                        u32::from(ch),
                        &text[ch.len_utf8()..]
                    ));
                }
                (Rendering::Prefixed, Piece::Tag(tag)) if !done && is_start(tag) => {
                    let name = &tag[1..tag.len() - 1];
                    out.push_str(&format!("<t:{name} xmlns:t=\"{NS}\">"));
                    first_end = Some((depth, format!("</{name}>")));
                    done = true;
                    depth += 1;
                }
                (Rendering::Prefixed, Piece::Tag(tag)) => {
                    if tag.starts_with("</") {
                        depth -= 1;
                    } else if is_start(tag) {
                        depth += 1;
                    }
                    match &first_end {
                        Some((d, end)) if *d == depth && tag == end => {
                            out.push_str(&format!("</t:{}", &tag[2..]));
                            first_end = None;
                        }
                        _ => out.push_str(tag),
                    }
                }
                (Rendering::Comment, Piece::Tag(tag)) if !done && !tag.starts_with("</") => {
                    out.push_str("<!-- a comment -->");
                    out.push_str(tag);
                    done = true;
                }
                (Rendering::Cdata, Piece::Text(text)) if !done && !text.contains('&') => {
                    out.push_str(&format!("<![CDATA[{text}]]>"));
                    done = true;
                }
                (_, Piece::Tag(t) | Piece::Text(t)) => out.push_str(t),
            }
        }
        out
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]

    /// For every generated type and every rendering of a random value: the
    /// full reader reads the same value as from the canonical rendering;
    /// the fast path reads the canonical-shaped renderings itself, with the
    /// same result, and leaves the others to the full reader.
    #[test]
    fn fast_path_and_full_reader_agree(seed in any::<u64>()) {
        let c = contract();
        for entry in TYPES {
            let mut gen = Gen { contract: &c, rng: fastrand::Rng::with_seed(seed) };
            let content = gen.value(&format!("tns:{}", entry.name), 0);
            let expected = (entry.round_trip)(&envelope(&content), NS)
                .unwrap_or_else(|e| panic!("{}: {e}\n{content}", entry.name));
            for rendering in Rendering::ALL {
                let rendered = rendering.render(&content);
                let xml = envelope(&rendered);
                let context = format!("{} {rendering:?}\n{rendered}", entry.name);
                let full = (entry.round_trip)(&xml, NS);
                prop_assert_eq!(full.as_ref().ok(), Some(&expected), "full reader: {}", context);
                match (entry.canonical_round_trip)(&xml, NS) {
                    Some(fast) => {
                        prop_assert!(rendering.canonical() || rendered == content, "{}", context);
                        prop_assert_eq!(fast, full, "fast path: {}", context);
                    }
                    None => prop_assert!(
                        !rendering.canonical() && rendered != content,
                        "left the fast path: {}", context
                    ),
                }
            }
        }
    }
}

#[test]
fn unknown_children_are_skipped() {
    let xml = envelope(
        "<Extra><Deep>1</Deep></Extra><string>a</string><Other /><string xsi:nil=\"true\" />",
    );
    let Reply::Result(list) = read_response::<ArrayOfString>(&xml, NS, "Probe", 64).unwrap() else {
        panic!("fault")
    };
    assert_eq!(list.0, vec![Some("a".to_string()), None]);
}

fn mailbox(fields: &str) -> Result<Reply<MailboxIdInfo>, ReadError> {
    read_response::<MailboxIdInfo>(&envelope(fields), NS, "Probe", 64)
}

const MAILBOX: &str = "<MailboxID>7</MailboxID><NetworkID>1</NetworkID><Created>0001-01-01T00:00:00</Created><Modified>2026-01-02T03:04:05.1234567Z</Modified><Status>Active</Status><Managed>true</Managed><UseType>Production</UseType><ECGridAccount>false</ECGridAccount>";

#[test]
fn bad_answers_are_typed_errors_naming_the_field() {
    let Reply::Result(ok) = mailbox(MAILBOX).unwrap() else {
        panic!("fault")
    };
    assert_eq!(ok.mailbox_id, 7);
    assert!(ok.created.is_never());
    assert_eq!(ok.modified.to_string(), "2026-01-02T03:04:05.1234567Z");

    let text_in_int = MAILBOX.replace("<MailboxID>7<", "<MailboxID>seven<");
    match mailbox(&text_in_int).unwrap_err() {
        ReadError::Field { field, reason } => {
            assert_eq!(field, "MailboxIDInfo.MailboxID");
            assert!(reason.contains("seven"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    let too_big = MAILBOX.replace("<MailboxID>7<", "<MailboxID>2147483648<");
    assert!(matches!(
        mailbox(&too_big),
        Err(ReadError::Field {
            field: "MailboxIDInfo.MailboxID",
            ..
        })
    ));

    let missing = MAILBOX.replace("<Created>0001-01-01T00:00:00</Created>", "");
    match mailbox(&missing).unwrap_err() {
        ReadError::Field { field, reason } => {
            assert_eq!(field, "MailboxIDInfo.Created");
            assert!(reason.contains("missing"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    let bad_date = MAILBOX.replace("2026-01-02T03:04:05.1234567Z", "yesterday");
    assert!(matches!(
        mailbox(&bad_date),
        Err(ReadError::Field {
            field: "MailboxIDInfo.Modified",
            ..
        })
    ));

    // A nested field is named by the innermost type.
    let nested = format!("{MAILBOX}<OwnerUserID><UserID>x</UserID></OwnerUserID>");
    let err = mailbox(&nested).unwrap_err();
    assert!(
        matches!(
            err,
            ReadError::Field {
                field: "UserIDInfo.UserID",
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn unknown_enumeration_values_are_kept() {
    let unknown = MAILBOX.replace("<Status>Active<", "<Status>Archived<");
    let Reply::Result(m) = mailbox(&unknown).unwrap() else {
        panic!("fault")
    };
    assert_eq!(m.status, enums::Status::Other("Archived".into()));
    assert_eq!(m.status.as_str(), "Archived");
    // Values that are not Rust identifiers, and case-only differences.
    assert_eq!(
        "_3DES_SHA1"
            .parse::<enums::NetworkVpnEncryptionMethod>()
            .unwrap(),
        enums::NetworkVpnEncryptionMethod::V3DesSha1
    );
    assert_eq!(enums::NetworkGatewayCommChannel::VALUES[0], "none");
}

#[test]
fn a_hundred_thousand_items_are_read() {
    let mut content = String::with_capacity(100_000 * 20);
    for i in 0..100_000 {
        content.push_str(&format!("<string>{i}</string>"));
    }
    let Reply::Result(list) =
        read_response::<ArrayOfString>(&envelope(&content), NS, "Probe", 64).unwrap()
    else {
        panic!("fault")
    };
    assert_eq!(list.len(), 100_000);
    assert_eq!(list[99_999].as_deref(), Some("99999"));
}

#[test]
fn datasets_read_tables_rows_and_typed_cells() {
    // The shape an asmx service writes: inline schema, then the diffgram.
    let content = r#"<xs:schema id="NewDataSet" xmlns="" xmlns:xs="http://www.w3.org/2001/XMLSchema" xmlns:msdata="urn:schemas-microsoft-com:xml-msdata"><xs:element name="NewDataSet" msdata:IsDataSet="true"><xs:complexType><xs:choice minOccurs="0" maxOccurs="unbounded"><xs:element name="Table"><xs:complexType><xs:sequence><xs:element name="Month" type="xs:dateTime" minOccurs="0" /><xs:element name="Count" type="xs:long" minOccurs="0" /></xs:sequence></xs:complexType></xs:element></xs:choice></xs:complexType></xs:element></xs:schema><diffgr:diffgram xmlns:msdata="urn:schemas-microsoft-com:xml-msdata" xmlns:diffgr="urn:schemas-microsoft-com:xml-diffgram-v1"><NewDataSet xmlns=""><Table diffgr:id="Table1" msdata:rowOrder="0"><Month>2026-01-01T00:00:00-05:00</Month><Count>9007199254740993</Count></Table><Table diffgr:id="Table2" msdata:rowOrder="1"><Count>2</Count></Table><Totals diffgr:id="Totals1" msdata:rowOrder="0"><All>3</All></Totals></NewDataSet></diffgr:diffgram>"#;
    let Reply::Result(set) = read_response::<DataSet>(&envelope(content), NS, "Probe", 64).unwrap()
    else {
        panic!("fault")
    };
    let table = set.table("Table").unwrap();
    assert_eq!(table.columns, ["Month", "Count"]);
    assert_eq!(table.rows.len(), 2);
    assert_eq!(
        table.get::<i64>(0, "Count"),
        Some(Ok(9_007_199_254_740_993))
    );
    assert_eq!(table.text(1, "Month"), None);
    assert!(table.get::<i32>(0, "Month").unwrap().is_err());
    assert_eq!(set.table("Totals").unwrap().text(0, "All"), Some("3"));
    let json = ecgridos::wire::XmlValue::to_json(&set);
    assert_eq!(
        json,
        serde_json::json!({
            "Table": [{"Month": "2026-01-01T00:00:00-05:00", "Count": "9007199254740993"}, {"Month": null, "Count": "2"}],
            "Totals": [{"All": "3"}]
        })
    );
    // Written and read again: the same tables.
    let mut written = Vec::new();
    write_response(&mut written, SoapVersion::V11, NS, "Probe", |w| {
        ecgridos::wire::XmlValue::write_content(&set, w)
    });
    let Reply::Result(again) = read_response::<DataSet>(&written, NS, "Probe", 64).unwrap() else {
        panic!("fault")
    };
    assert_eq!(again, set);
    let empty = DataTable::default();
    assert!(empty.get::<i32>(0, "x").is_none());
}
