//! The generic codec of the generated API (`crate::api`): how every contract
//! type is read from and written to XML, and shown as JSON.
//!
//! Text values (numbers, booleans, strings, dateTimes, base64, enumerations,
//! secrets) implement [`TextValue`]; complex types, arrays and enumerations are
//! declared with the macros of this module, which the generator calls once per
//! type. Unknown child elements are skipped; a missing required field or a
//! value that does not fit its type is a [`ReadError::Field`] naming the field.

use std::borrow::Cow;

use base64::Engine as _;
use serde_json::Value;

use super::reader::{Start, XmlCursor};
use super::{DateTime, ReadError, XmlWriter};
use crate::secret::{ApiKey, Password, Secret, SecretBytes, SessionId};

/// A value read from and written to an XML element.
pub trait XmlValue: Sized {
    /// Reads the value from the element whose start `start` was just read.
    fn read_xml(cur: &mut XmlCursor<'_>, start: &Start<'_>) -> Result<Self, ReadError>;
    /// Writes the element's content (not its tags).
    fn write_content(&self, w: &mut XmlWriter<'_>);
    /// The value in the contract's JSON form.
    fn to_json(&self) -> Value;
}

/// A value carried as element text.
pub trait TextValue: Sized {
    /// True when the text form may hold any characters (strings, secrets,
    /// enumerations, which keep unknown values): those are checked before
    /// sending. Numbers, booleans, dateTimes and base64 cannot hold a
    /// character XML forbids.
    const FREE_TEXT: bool = true;
    /// The value of `text`, or why it does not fit.
    fn parse_text(text: &str) -> Result<Self, String>;
    /// The value of text the reader already owns (it held a reference);
    /// strings take it over instead of copying it.
    fn parse_cow(text: Cow<'_, str>) -> Result<Self, String> {
        Self::parse_text(&text)
    }
    /// The text form.
    fn to_text(&self) -> Cow<'_, str>;
    /// The JSON form; a string by default.
    fn text_json(&self) -> Value {
        Value::String(self.to_text().into_owned())
    }
}

impl<T: TextValue> XmlValue for T {
    fn read_xml(cur: &mut XmlCursor<'_>, start: &Start<'_>) -> Result<Self, ReadError> {
        let text = cur.text(start)?;
        T::parse_cow(text).map_err(|reason| ReadError::Malformed(reason.into()))
    }
    fn write_content(&self, w: &mut XmlWriter<'_>) {
        w.text(&self.to_text());
    }
    fn to_json(&self) -> Value {
        self.text_json()
    }
}

impl TextValue for String {
    fn parse_text(text: &str) -> Result<Self, String> {
        Ok(text.to_string())
    }
    fn parse_cow(text: Cow<'_, str>) -> Result<Self, String> {
        Ok(text.into_owned())
    }
    fn to_text(&self) -> Cow<'_, str> {
        Cow::Borrowed(self)
    }
}

/// The value of an integer written the way .NET writes one: an optional
/// `-` and 1 to 18 ASCII digits, nothing else. Anything else (`+`, spaces,
/// more digits) is `None` and left to `str::parse`, which reads these the
/// same way, only slower.
fn plain_integer(text: &str) -> Option<i64> {
    let (negative, digits) = match text.as_bytes() {
        [b'-', rest @ ..] => (true, rest),
        all => (false, all),
    };
    if digits.is_empty() || digits.len() > 18 {
        return None;
    }
    let mut value: i64 = 0;
    for &b in digits {
        if !b.is_ascii_digit() {
            return None;
        }
        value = value * 10 + i64::from(b - b'0');
    }
    match (negative, value) {
        // `-0` is not an unsignedByte for `str::parse`.
        (true, 0) => None,
        (true, v) => Some(-v),
        (false, v) => Some(v),
    }
}

macro_rules! integer {
    ($($ty:ty => $xsd:literal),*) => {$(
        impl TextValue for $ty {
            const FREE_TEXT: bool = false;
            fn parse_text(text: &str) -> Result<Self, String> {
                if let Some(value) = plain_integer(text).and_then(|v| <$ty>::try_from(v).ok()) {
                    return Ok(value);
                }
                text.trim()
                    .parse()
                    .map_err(|_| format!("{text:?} is not an {} ({}..={})", $xsd, <$ty>::MIN, <$ty>::MAX))
            }
            fn to_text(&self) -> Cow<'_, str> {
                Cow::Owned(itoa::Buffer::new().format(*self).to_string())
            }
            fn text_json(&self) -> Value {
                Value::from(*self)
            }
        }
    )*};
}

integer!(i16 => "s:short", i32 => "s:int", i64 => "s:long", u8 => "s:unsignedByte");

impl TextValue for f32 {
    const FREE_TEXT: bool = false;
    fn parse_text(text: &str) -> Result<Self, String> {
        match text.trim() {
            "INF" => Ok(f32::INFINITY),
            "-INF" => Ok(f32::NEG_INFINITY),
            "NaN" => Ok(f32::NAN),
            t => t
                .parse()
                .ok()
                .filter(|v: &f32| v.is_finite())
                .ok_or_else(|| format!("{text:?} is not an s:float")),
        }
    }
    fn to_text(&self) -> Cow<'_, str> {
        Cow::Owned(match *self {
            v if v.is_nan() => "NaN".to_string(),
            v if v == f32::INFINITY => "INF".to_string(),
            v if v == f32::NEG_INFINITY => "-INF".to_string(),
            v => v.to_string(),
        })
    }
    fn text_json(&self) -> Value {
        // The shortest text of the f32, not the widened f64's digits.
        self.to_string()
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map_or(Value::Null, Value::Number)
    }
}

impl TextValue for bool {
    const FREE_TEXT: bool = false;
    fn parse_text(text: &str) -> Result<Self, String> {
        match text.trim() {
            "true" | "1" => Ok(true),
            "false" | "0" => Ok(false),
            _ => Err(format!("{text:?} is not an s:boolean (true/false)")),
        }
    }
    fn to_text(&self) -> Cow<'_, str> {
        Cow::Borrowed(if *self { "true" } else { "false" })
    }
    fn text_json(&self) -> Value {
        Value::Bool(*self)
    }
}

impl TextValue for DateTime {
    const FREE_TEXT: bool = false;
    fn parse_text(text: &str) -> Result<Self, String> {
        text.parse().map_err(|e| format!("{text:?}: {e}"))
    }
    fn to_text(&self) -> Cow<'_, str> {
        Cow::Owned(self.to_string())
    }
}

fn base64_decode(text: &str) -> Result<Vec<u8>, String> {
    let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    base64::engine::general_purpose::STANDARD
        .decode(compact)
        .map_err(|e| format!("not s:base64Binary: {e}"))
}

fn base64_encode(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// `s:base64Binary`: bytes written as base64 text.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Base64(pub Vec<u8>);

impl TextValue for Base64 {
    const FREE_TEXT: bool = false;
    fn parse_text(text: &str) -> Result<Self, String> {
        base64_decode(text).map(Base64)
    }
    fn to_text(&self) -> Cow<'_, str> {
        Cow::Owned(base64_encode(&self.0))
    }
}

impl TextValue for SecretBytes {
    const FREE_TEXT: bool = false;
    fn parse_text(text: &str) -> Result<Self, String> {
        base64_decode(text).map(SecretBytes::new)
    }
    fn to_text(&self) -> Cow<'_, str> {
        Cow::Owned(base64_encode(self.expose()))
    }
}

macro_rules! secret_text {
    ($($ty:ty),*) => {$(
        impl TextValue for $ty {
            fn parse_text(text: &str) -> Result<Self, String> {
                Ok(<$ty>::new(text))
            }
            fn to_text(&self) -> Cow<'_, str> {
                Cow::Borrowed(self.expose())
            }
        }
    )*};
}

secret_text!(SessionId, ApiKey, Password, Secret);

/// How often a field occurs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Occurs {
    /// `minOccurs="1" maxOccurs="1"`.
    Required,
    /// `minOccurs="0" maxOccurs="1"`.
    Optional,
    /// `maxOccurs="unbounded"` (nillable items).
    Repeated,
}

/// The declaration of one field of a complex type or one parameter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FieldSpec {
    /// The element name, exactly as in the contract.
    pub name: &'static str,
    /// The contract type (`s:int`, `tns:MailboxIDInfo`).
    pub xsd_type: &'static str,
    /// How often it occurs.
    pub occurs: Occurs,
    /// True when it carries a credential (a redacted type).
    pub secret: bool,
}

/// Where a field's values collect while its parent is read.
pub trait Slot: Default {
    /// The element value.
    type Item: XmlValue;
    /// Stores one value.
    fn put(&mut self, item: Self::Item);
}

impl<T: XmlValue> Slot for Option<T> {
    type Item = T;
    fn put(&mut self, item: T) {
        *self = Some(item);
    }
}

impl<T: XmlValue> Slot for Vec<T> {
    type Item = T;
    fn put(&mut self, item: T) {
        self.push(item);
    }
}

/// Names the field in an error from reading it (the innermost field wins).
pub fn in_field(err: ReadError, field: &'static str) -> ReadError {
    match err {
        ReadError::Malformed(reason) => ReadError::Field {
            field,
            reason: reason.into_owned(),
        },
        other => other,
    }
}

/// The position in `fields` of the field called `local`. Elements come in
/// contract order, so the field after the previous one (`next`) is tried
/// first; `next` then moves past the field found.
#[inline]
pub fn field_position(fields: &[FieldSpec], local: &str, next: &mut usize) -> Option<usize> {
    let position = match fields.get(*next) {
        Some(expected) if expected.name == local => *next,
        _ => fields.iter().position(|f| f.name == local)?,
    };
    *next = position + 1;
    Some(position)
}

/// Reads one child element into its slot; a nil element leaves it empty.
pub fn read_slot<S: Slot>(
    slot: &mut S,
    cur: &mut XmlCursor<'_>,
    child: &Start<'_>,
    field: &'static str,
) -> Result<(), ReadError> {
    if child.nil {
        return cur.skip(child);
    }
    let item = S::Item::read_xml(cur, child).map_err(|e| in_field(e, field))?;
    slot.put(item);
    Ok(())
}

/// The value of a required field, or an error naming it.
pub fn required<T>(value: Option<T>, field: &'static str) -> Result<T, ReadError> {
    value.ok_or_else(|| ReadError::Field {
        field,
        reason: "required element is missing".to_string(),
    })
}

/// Writes `<name>content</name>`.
pub fn write_element<T: XmlValue>(w: &mut XmlWriter<'_>, name: &str, value: &T) {
    w.open(name);
    value.write_content(w);
    w.close(name);
}

/// Writes an optional element (nothing when absent).
pub fn write_optional<T: XmlValue>(w: &mut XmlWriter<'_>, name: &str, value: &Option<T>) {
    if let Some(v) = value {
        write_element(w, name, v);
    }
}

/// Writes each item as `<name>item</name>`.
pub fn write_repeated<T: XmlValue>(w: &mut XmlWriter<'_>, name: &str, items: &[T]) {
    for item in items {
        write_element(w, name, item);
    }
}

/// Reads the items called `item` of a list element; a nil item is `None`,
/// other children are skipped.
pub fn read_items<T: XmlValue>(
    cur: &mut XmlCursor<'_>,
    start: &Start<'_>,
    item: &str,
    field: &'static str,
) -> Result<Vec<Option<T>>, ReadError> {
    let mut items = Vec::new();
    if start.empty {
        return Ok(items);
    }
    while let Some(child) = cur.next_child()? {
        if child.local != item {
            cur.skip(&child)?;
        } else if child.nil {
            cur.skip(&child)?;
            items.push(None);
        } else {
            items.push(Some(
                T::read_xml(cur, &child).map_err(|e| in_field(e, field))?,
            ));
        }
    }
    Ok(items)
}

/// Writes list items; a `None` as `<item xsi:nil="true" />` (the envelope
/// declares `xsi`).
pub fn write_items<T: XmlValue>(w: &mut XmlWriter<'_>, item: &str, items: &[Option<T>]) {
    for value in items {
        match value {
            Some(v) => write_element(w, item, v),
            None => {
                w.markup("<");
                w.markup(item);
                w.markup(" xsi:nil=\"true\" />");
            }
        }
    }
}

/// The JSON of an optional value: `null` when absent.
pub fn json_optional<T: XmlValue>(value: &Option<T>) -> Value {
    value.as_ref().map_or(Value::Null, XmlValue::to_json)
}

/// The JSON array of repeated values.
pub fn json_repeated<T: XmlValue>(items: &[T]) -> Value {
    Value::Array(items.iter().map(XmlValue::to_json).collect())
}

/// Declares a complex type: the struct, its reader, writer, JSON form and
/// field table. Field kinds: `req` (`T`), `opt` (`Option<T>`), `many` (`Vec<T>`).
macro_rules! xml_struct {
    (@decl $(#[$doc:meta])* $name:ident {
        $( $(#[$fdoc:meta])* $field:ident : $kind:ident $fty:ty ),*
    }) => {
        $(#[$doc])*
        #[derive(Clone, Debug, Default, PartialEq)]
        #[non_exhaustive]
        pub struct $name {
            $( $(#[$fdoc])* pub $field: $crate::wire::xml_struct!(@ty $kind $fty), )*
        }
    };
    (@ty req $t:ty) => { $t };
    (@ty opt $t:ty) => { Option<$t> };
    (@ty many $t:ty) => { Vec<$t> };
    (@slot req $t:ty) => { Option<$t> };
    (@slot opt $t:ty) => { Option<$t> };
    (@slot many $t:ty) => { Vec<$t> };
    (@occurs req) => { $crate::wire::Occurs::Required };
    (@occurs opt) => { $crate::wire::Occurs::Optional };
    (@occurs many) => { $crate::wire::Occurs::Repeated };
    (@finish req $v:expr, $f:expr) => { $crate::wire::required($v, $f)? };
    (@finish opt $v:expr, $f:expr) => { $v };
    (@finish many $v:expr, $f:expr) => { $v };
    (@write req $w:ident $n:literal $v:expr) => { $crate::wire::write_element($w, $n, $v) };
    (@write opt $w:ident $n:literal $v:expr) => { $crate::wire::write_optional($w, $n, $v) };
    (@write many $w:ident $n:literal $v:expr) => { $crate::wire::write_repeated($w, $n, $v) };
    (@json req $v:expr) => { $crate::wire::XmlValue::to_json($v) };
    (@json opt $v:expr) => { $crate::wire::json_optional($v) };
    (@json many $v:expr) => { $crate::wire::json_repeated($v) };
    (
        $(#[$doc:meta])*
        $name:ident = $xml:literal {
            $(
                $(#[$fdoc:meta])*
                $field:ident : $kind:ident $fty:ty = $fname:literal $xsd:literal $secret:literal
            ),* $(,)?
        }
    ) => {
        $crate::wire::xml_struct!(@decl $(#[$doc])* $name {
            $( $(#[$fdoc])* $field : $kind $fty ),*
        });

        impl $name {
            /// The contract name of this type.
            pub const XML_NAME: &'static str = $xml;
            /// The fields, in contract order.
            pub const FIELDS: &'static [$crate::wire::FieldSpec] = &[
                $( $crate::wire::FieldSpec {
                    name: $fname,
                    xsd_type: $xsd,
                    occurs: $crate::wire::xml_struct!(@occurs $kind),
                    secret: $secret,
                }, )*
            ];
        }

        impl $crate::wire::XmlValue for $name {
            #[allow(unused_variables, unused_mut)]
            fn read_xml(
                cur: &mut $crate::wire::XmlCursor<'_>,
                start: &$crate::wire::Start<'_>,
            ) -> Result<Self, $crate::wire::ReadError> {
                /// The fields by position in `FIELDS`.
                #[allow(non_camel_case_types, dead_code)]
                enum Position { $( $field, )* }
                $( let mut $field = <$crate::wire::xml_struct!(@slot $kind $fty)>::default(); )*
                if !start.empty {
                    let mut next = 0;
                    while let Some(child) = cur.next_child()? {
                        match $crate::wire::field_position(Self::FIELDS, child.local, &mut next) {
                            $( Some(i) if i == Position::$field as usize => $crate::wire::read_slot(
                                &mut $field, cur, &child, concat!($xml, ".", $fname))?, )*
                            _ => cur.skip(&child)?,
                        }
                    }
                }
                Ok($name {
                    $( $field: $crate::wire::xml_struct!(@finish $kind $field, concat!($xml, ".", $fname)), )*
                })
            }

            #[allow(unused_variables)]
            fn write_content(&self, w: &mut $crate::wire::XmlWriter<'_>) {
                $( $crate::wire::xml_struct!(@write $kind w $fname &self.$field); )*
            }

            fn to_json(&self) -> serde_json::Value {
                #[allow(unused_mut)]
                let mut map = serde_json::Map::new();
                $( map.insert($fname.to_string(), $crate::wire::xml_struct!(@json $kind &self.$field)); )*
                serde_json::Value::Object(map)
            }
        }

        $crate::wire::result_value!($name, concat!("tns:", $xml));
    };
}

/// Declares an `ArrayOf…` type: a list of items named `$item`. The items
/// are nillable in the contract, so each is an `Option` (`None` for
/// `xsi:nil="true"`, written back as such).
macro_rules! xml_array {
    ($(#[$doc:meta])* $name:ident = $xml:literal [$ty:ty; $item:literal]) => {
        $(#[$doc])*
        #[derive(Clone, Debug, Default, PartialEq)]
        pub struct $name(pub Vec<Option<$ty>>);

        impl $name {
            /// The contract name of this type.
            pub const XML_NAME: &'static str = $xml;
            /// The element name of each item.
            pub const ITEM: &'static str = $item;

            /// The items that are not nil.
            pub fn items(&self) -> impl Iterator<Item = &$ty> {
                self.0.iter().flatten()
            }
        }

        impl std::ops::Deref for $name {
            type Target = Vec<Option<$ty>>;
            fn deref(&self) -> &Vec<Option<$ty>> {
                &self.0
            }
        }

        impl From<Vec<$ty>> for $name {
            fn from(items: Vec<$ty>) -> Self {
                $name(items.into_iter().map(Some).collect())
            }
        }

        impl $crate::wire::XmlValue for $name {
            fn read_xml(
                cur: &mut $crate::wire::XmlCursor<'_>,
                start: &$crate::wire::Start<'_>,
            ) -> Result<Self, $crate::wire::ReadError> {
                $crate::wire::read_items(cur, start, $item, concat!($xml, ".", $item)).map($name)
            }

            fn write_content(&self, w: &mut $crate::wire::XmlWriter<'_>) {
                $crate::wire::write_items(w, $item, &self.0);
            }

            fn to_json(&self) -> serde_json::Value {
                serde_json::Value::Array(
                    self.0.iter().map($crate::wire::json_optional).collect(),
                )
            }
        }

        $crate::wire::result_value!($name, concat!("tns:", $xml));
    };
}

/// Declares an enumeration: known values as variants, any other value kept in
/// `Other`.
macro_rules! xml_enum {
    ($(#[$doc:meta])* $name:ident = $xml:literal { $( $variant:ident = $value:literal ),* $(,)? }) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash)]
        pub enum $name {
            $(
                #[doc = concat!("`", $value, "`")]
                $variant,
            )*
            /// A value the contract does not list, kept as sent.
            Other(String),
        }

        impl $name {
            /// The contract name of this type.
            pub const XML_NAME: &'static str = $xml;
            /// The values the contract lists, in order.
            pub const VALUES: &'static [&'static str] = &[$($value),*];

            /// The value as written on the wire.
            pub fn as_str(&self) -> &str {
                match self {
                    $( $name::$variant => $value, )*
                    $name::Other(other) => other,
                }
            }
        }

        impl Default for $name {
            /// The first value the contract lists.
            fn default() -> Self {
                $crate::wire::xml_enum!(@first $name $($variant)*)
            }
        }

        impl std::str::FromStr for $name {
            type Err = std::convert::Infallible;
            fn from_str(text: &str) -> Result<Self, Self::Err> {
                Ok(match text.trim() {
                    $( $value => $name::$variant, )*
                    other => $name::Other(other.to_string()),
                })
            }
        }

        impl $crate::wire::TextValue for $name {
            fn parse_text(text: &str) -> Result<Self, String> {
                Ok(match text.parse() {
                    Ok(v) => v,
                    Err(never) => match never {},
                })
            }
            fn to_text(&self) -> std::borrow::Cow<'_, str> {
                std::borrow::Cow::Borrowed(self.as_str())
            }
        }

        $crate::wire::result_value!($name, concat!("tns:", $xml));
    };
    (@first $name:ident $first:ident $($rest:ident)*) => { $name::$first };
}

/// Makes an [`XmlValue`] usable as an operation result.
macro_rules! result_value {
    ($ty:ty, $xsd:expr) => {
        impl $crate::wire::ResultValue for $ty {
            const XSD_TYPE: &'static str = $xsd;
            fn read(
                cur: &mut $crate::wire::XmlCursor<'_>,
                start: &$crate::wire::Start<'_>,
            ) -> Result<Self, $crate::wire::ReadError> {
                <$ty as $crate::wire::XmlValue>::read_xml(cur, start)
            }
            fn write(&self, w: &mut $crate::wire::XmlWriter<'_>) {
                $crate::wire::XmlValue::write_content(self, w)
            }
        }
    };
}

pub(crate) use {result_value, xml_array, xml_enum, xml_struct};

result_value!(i16, "s:short");
result_value!(i32, "s:int");
result_value!(i64, "s:long");
result_value!(u8, "s:unsignedByte");
result_value!(f32, "s:float");
result_value!(DateTime, "s:dateTime");
result_value!(Base64, "s:base64Binary");
result_value!(Password, "s:string");

#[cfg(test)]
mod tests {
    use super::*;

    /// The integer fast path reads exactly what `str::parse` reads, for
    /// every integer type, and leaves everything else to it.
    #[test]
    fn plain_integers_read_as_str_parse_reads_them() {
        fn same<T: TextValue + std::str::FromStr + PartialEq + std::fmt::Debug>(text: &str) {
            let expected = text.trim().parse::<T>().ok();
            assert_eq!(T::parse_text(text).ok(), expected, "{text:?}");
        }
        for text in [
            "0",
            "-0",
            "7",
            "-7",
            "255",
            "256",
            "-1",
            "-128",
            "-129",
            "32767",
            "32768",
            "-32768",
            "2147483647",
            "2147483648",
            "-2147483648",
            "-2147483649",
            "999999999999999999",
            "-999999999999999999",
            "9223372036854775807",
            "9223372036854775808",
            "-9223372036854775808",
            "0000000000000000000001",
            "+5",
            " 5",
            "5 ",
            "",
            "-",
            "5a",
            "٣",
            "1_000",
        ] {
            same::<u8>(text);
            same::<i16>(text);
            same::<i32>(text);
            same::<i64>(text);
        }
        assert_eq!(plain_integer("-0"), None);
        assert_eq!(plain_integer("+1"), None);
        assert_eq!(plain_integer("1234567890123456789"), None);
        assert_eq!(plain_integer("-42"), Some(-42));
    }

    #[test]
    fn field_positions_try_the_next_field_first() {
        const FIELDS: &[FieldSpec] = &[
            FieldSpec {
                name: "A",
                xsd_type: "s:int",
                occurs: Occurs::Required,
                secret: false,
            },
            FieldSpec {
                name: "B",
                xsd_type: "s:int",
                occurs: Occurs::Repeated,
                secret: false,
            },
            FieldSpec {
                name: "C",
                xsd_type: "s:int",
                occurs: Occurs::Optional,
                secret: false,
            },
        ];
        let mut next = 0;
        let seen: Vec<_> = ["A", "B", "B", "X", "C", "A"]
            .iter()
            .map(|name| field_position(FIELDS, name, &mut next))
            .collect();
        assert_eq!(seen, [Some(0), Some(1), Some(1), None, Some(2), Some(0)]);
    }
}
