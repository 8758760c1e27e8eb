//! Safe local names for parcels: `<ParcelID>-<safe file name>`.
//!
//! A parcel's file name comes from whoever sent it and is untrusted. The name
//! made here is always exactly one normal path component (never `.` or `..`,
//! never a separator), at most [`MAX_NAME_BYTES`] bytes, and the same for the
//! same input; an ordinary name (`ORDERS 850.x12`, `invoice-2026.edi`,
//! `Bestellung-Müller.edi`) is kept as it is. The ParcelID prefix makes two
//! parcels with the same name land in two files.
//!
//! What is changed, and why:
//! - `/`, `\`, control characters (C0, DEL, C1: NUL and ESC included), the
//!   characters Windows forbids in names (`<>:"|?*`) and invisible
//!   direction/format marks (which can disguise an extension) become `_`;
//! - trailing dots and spaces are removed (Windows drops them silently);
//! - a Windows reserved device name (`CON`, `PRN`, `AUX`, `NUL`, `COM1`-`COM9`,
//!   `LPT1`-`LPT9`, any case, with or without an extension) gets a `_` in
//!   front, even though the ParcelID prefix already defuses it;
//! - an empty name becomes `unnamed`;
//! - a name too long for the file system is cut on a character boundary to
//!   fit, keeping its extension (up to [`MAX_EXTENSION_BYTES`] bytes).

/// The longest file name, in bytes, made here (the usual file-system limit).
pub const MAX_NAME_BYTES: usize = 255;

/// The longest extension (with its dot) kept when a long name is cut.
pub const MAX_EXTENSION_BYTES: usize = 32;

/// The name given to a parcel whose file name is empty (or nothing but
/// dots and spaces).
const UNNAMED: &str = "unnamed";

/// What marks a temporary file of the inbound loop (after a leading dot).
const PARTIAL_MARK: &str = ".partial-";

/// The local file name of a parcel: `<ParcelID>-<safe file name>`.
///
/// ```
/// use ecgridos::parcels::names::local_name;
/// assert_eq!(local_name(42, "ORDERS 850.x12"), "42-ORDERS 850.x12");
/// assert_eq!(local_name(42, "../../etc/passwd"), "42-.._.._etc_passwd");
/// assert_eq!(local_name(43, "CON.txt"), "43-_CON.txt");
/// assert_eq!(local_name(44, ""), "44-unnamed");
/// ```
pub fn local_name(parcel_id: i64, untrusted: &str) -> String {
    let prefix = format!("{parcel_id}-");
    let mut name = clean(untrusted);
    if is_reserved(&name) {
        name.insert(0, '_');
    }
    if name.is_empty() {
        name.push_str(UNNAMED);
    }
    let name = fit(&name, MAX_NAME_BYTES - prefix.len());
    prefix + &name
}

/// The hidden temporary name under which a parcel with local name `local`
/// is written before it is renamed into place:
/// `.<local name>.partial-<random, 16 hex digits>`, the local name cut so the
/// whole stays within [`MAX_NAME_BYTES`].
pub fn temp_name(local: &str, random: u64) -> String {
    let suffix = format!("{PARTIAL_MARK}{random:016x}");
    let room = MAX_NAME_BYTES - 1 - suffix.len();
    format!(".{}{suffix}", cut(local, room))
}

/// True for a name [`temp_name`] makes: a leftover of an interrupted run.
pub fn is_temp_name(name: &str) -> bool {
    let Some(rest) = name.strip_prefix('.') else {
        return false;
    };
    let Some(at) = rest.rfind(PARTIAL_MARK) else {
        return false;
    };
    let random = &rest[at + PARTIAL_MARK.len()..];
    random.len() == 16 && random.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Replaces what cannot be in a single safe component and drops trailing
/// dots and spaces.
fn clean(untrusted: &str) -> String {
    let mapped: String = untrusted
        .chars()
        .map(|c| if is_unsafe(c) { '_' } else { c })
        .collect();
    mapped.trim_end_matches(['.', ' ']).to_string()
}

fn is_unsafe(c: char) -> bool {
    c.is_control()
        || matches!(c, '/' | '\\' | '<' | '>' | ':' | '"' | '|' | '?' | '*')
        // Zero-width and bidirectional marks: they can make `exe.txt` look
        // like `txt.exe`.
        || matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{FEFF}')
}

/// True when Windows would take the name for a device.
fn is_reserved(name: &str) -> bool {
    let stem = name.split('.').next().unwrap_or("").trim_end_matches(' ');
    let upper = stem.to_ascii_uppercase();
    match upper.as_str() {
        "CON" | "PRN" | "AUX" | "NUL" => true,
        _ => {
            let (Some(kind), Some(digit)) = (upper.get(..3), upper.get(3..)) else {
                return false;
            };
            matches!(kind, "COM" | "LPT")
                && matches!(
                    digit,
                    "1" | "2" | "3" | "4" | "5" | "6" | "7" | "8" | "9" | "¹" | "²" | "³"
                )
        }
    }
}

/// Cuts `name` to at most `budget` bytes, keeping a short extension.
fn fit(name: &str, budget: usize) -> String {
    if name.len() <= budget {
        return name.to_string();
    }
    let extension = match name.rfind('.') {
        Some(dot) if dot > 0 && name.len() - dot <= MAX_EXTENSION_BYTES => &name[dot..],
        _ => "",
    };
    let stem = &name[..name.len() - extension.len()];
    let stem = cut(stem, budget - extension.len()).trim_end_matches(['.', ' ']);
    let stem = if stem.is_empty() { UNNAMED } else { stem };
    format!("{stem}{extension}")
}

/// The longest prefix of `text` of at most `max` bytes that ends on a
/// character boundary.
fn cut(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::path::{Component, Path};

    fn single_component(name: &str) -> bool {
        let mut parts = Path::new(name).components();
        matches!(parts.next(), Some(Component::Normal(n)) if n == name) && parts.next().is_none()
    }

    #[test]
    fn ordinary_names_are_kept_exactly() {
        for name in [
            "ORDERS 850.x12",
            "invoice-2026.edi",
            "Bestellung-Müller.edi",
            "注文書.edi",
            "Ελλάδα 810.txt",
            ".hidden",
            "a..b",
        ] {
            assert_eq!(local_name(7, name), format!("7-{name}"));
        }
    }

    #[test]
    fn hostile_names_stay_one_component() {
        let cases = [
            ("..", "9-unnamed"),
            (".", "9-unnamed"),
            ("../../etc/passwd", "9-.._.._etc_passwd"),
            ("/etc/passwd", "9-_etc_passwd"),
            ("..\\..\\windows\\win.ini", "9-.._.._windows_win.ini"),
            ("C:\\temp\\x.edi", "9-C__temp_x.edi"),
            ("a\0b", "9-a_b"),
            ("esc\u{1b}[31mred", "9-esc_[31mred"),
            ("tab\tnew\nline", "9-tab_new_line"),
            ("bell\u{7}del\u{7f}c1\u{85}", "9-bell_del_c1_"),
            ("name. . .", "9-name"),
            ("name   ", "9-name"),
            ("", "9-unnamed"),
            ("   ", "9-unnamed"),
            ("what?*<>|\"", "9-what______"),
            ("invoice\u{202E}txt.exe", "9-invoice_txt.exe"),
        ];
        for (input, expected) in cases {
            let name = local_name(9, input);
            assert_eq!(name, expected, "{input:?}");
            assert!(single_component(&name), "{input:?} -> {name:?}");
        }
    }

    #[test]
    fn reserved_windows_names_are_defused_in_any_case() {
        for name in [
            "CON",
            "con",
            "Prn.txt",
            "aux.tar.gz",
            "NUL",
            "com1",
            "COM9.edi",
            "lpt1",
            "LPT9.x12",
            "nul .txt",
            "COM¹",
        ] {
            let local = local_name(5, name);
            assert_eq!(local, format!("5-_{name}"), "{name}");
        }
        for name in [
            "CONSOLE",
            "COM10",
            "LPT0",
            "com",
            "auxiliary.txt",
            "ééé",
            "aé",
        ] {
            assert_eq!(local_name(5, name), format!("5-{name}"), "{name}");
        }
    }

    #[test]
    fn a_huge_name_is_cut_on_a_char_boundary_keeping_its_extension() {
        let name = format!("{}.x12", "é".repeat(5_000));
        let local = local_name(123_456_789_012, &name);
        assert!(local.len() <= MAX_NAME_BYTES, "{}", local.len());
        assert!(local.len() >= MAX_NAME_BYTES - 1);
        assert!(local.starts_with("123456789012-éé"));
        assert!(local.ends_with(".x12"));
        let plain = local_name(1, &"x".repeat(10_000));
        assert_eq!(plain.len(), MAX_NAME_BYTES);
        // An "extension" longer than the kept length is cut as part of the name.
        let long_ext = format!("a.{}", "e".repeat(10_000));
        assert_eq!(local_name(1, &long_ext).len(), MAX_NAME_BYTES);
    }

    #[test]
    fn two_parcels_with_one_name_get_two_files() {
        assert_ne!(local_name(1, "po.edi"), local_name(2, "po.edi"));
        assert_ne!(
            local_name(i64::MIN, "po.edi"),
            local_name(i64::MAX, "po.edi")
        );
    }

    #[test]
    fn temp_names_are_hidden_bounded_and_recognised() {
        let local = local_name(77, &"y".repeat(10_000));
        let temp = temp_name(&local, 0xdead_beef);
        assert!(temp.starts_with(".77-yyy"));
        assert!(temp.ends_with(".partial-00000000deadbeef"));
        assert!(temp.len() <= MAX_NAME_BYTES);
        assert!(is_temp_name(&temp));
        assert!(is_temp_name(&temp_name("1-é.edi", u64::MAX)));
        for other in [
            "77-po.edi",
            ".ecgridos-parcels.journal",
            ".x.partial-123",
            "x.partial-00000000deadbeef",
        ] {
            assert!(!is_temp_name(other), "{other}");
        }
        // A local name can never be taken for a temporary file.
        assert!(!is_temp_name(&local_name(1, ".x.partial-00000000deadbeef")));
    }

    proptest! {
        #[test]
        fn any_input_gives_one_bounded_stable_component(input in ".*", id in any::<i64>()) {
            let name = local_name(id, &input);
            prop_assert!(single_component(&name), "{:?}", name);
            prop_assert!(!name.contains(['/', '\\', '\0']));
            prop_assert!(name.len() <= MAX_NAME_BYTES);
            let prefix = format!("{id}-");
            prop_assert!(name.starts_with(&prefix));
            prop_assert!(!name.ends_with(['.', ' ']));
            prop_assert!(!is_temp_name(&name));
            prop_assert_eq!(&name, &local_name(id, &input));
            let temp = temp_name(&name, 1);
            prop_assert!(single_component(&temp));
            prop_assert!(temp.len() <= MAX_NAME_BYTES);
            prop_assert!(is_temp_name(&temp));
        }

        #[test]
        fn long_inputs_are_cut_within_the_limit(
            stem in "[a-zA-Zé注 .]{200,600}",
            ext in "[a-z0-9]{1,8}",
        ) {
            let name = local_name(1, &format!("{stem}.{ext}"));
            prop_assert!(name.len() <= MAX_NAME_BYTES);
            prop_assert!(single_component(&name));
        }
    }
}
