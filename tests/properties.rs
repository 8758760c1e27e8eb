//! Properties of the codec: any string XML can carry survives the envelope
//! builder and an independent parser (roxmltree) unchanged; strings XML cannot
//! carry are refused before anything is built.

use ecgridos::operations::{GenerateApiKey, Login, Operation};
use ecgridos::wire::{
    read_response, read_response_in_full, write_request, write_response, Reply, SoapVersion,
    XmlWriter,
};
use ecgridos::{ApiKey, Password, SessionId, SessionRef, UserId};
use proptest::prelude::*;

const NS: &str = "https://os.ecgrid.io/";

/// Characters XML 1.0 allows, weighted towards markup and edge cases.
fn xml_char() -> impl Strategy<Value = char> {
    prop_oneof![
        3 => prop::sample::select(vec!['<', '>', '&', '"', '\'', '\t', '\n', '\r', ' ', ']', ';', '#']),
        3 => any::<char>().prop_filter("XML 1.0 char", |c| matches!(*c, '\u{9}' | '\u{A}' | '\u{D}' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)),
        1 => prop::sample::select(vec!['\u{FFFD}', '\u{E000}', '\u{10FFFF}', '\u{D7FF}', '\u{85}', '\u{2028}']),
    ]
}

fn xml_string() -> impl Strategy<Value = String> {
    prop::collection::vec(xml_char(), 1..64).prop_map(|v| v.into_iter().collect())
}

fn request_for(session: &str, user: i32) -> Vec<u8> {
    let id = SessionId::new(session);
    let op = GenerateApiKey {
        session_id: SessionRef::from(&id),
        user_id: UserId::from(user),
    };
    op.check().expect("valid input");
    let mut body = Vec::new();
    write_request(&mut body, SoapVersion::V11, NS, "GenerateAPIKey", |w| {
        op.write_params(w)
    });
    body
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn request_values_round_trip_through_an_independent_parser(session in xml_string(), user in any::<i32>()) {
        let body = request_for(&session, user);
        let text = String::from_utf8(body).unwrap();
        let doc = roxmltree::Document::parse(&text).unwrap();
        let op = doc.descendants().find(|n| n.has_tag_name((NS, "GenerateAPIKey"))).unwrap();
        let session_el = op.children().find(|n| n.has_tag_name((NS, "SessionID"))).unwrap();
        prop_assert_eq!(session_el.text().unwrap_or(""), session.as_str());
        let user_el = op.children().find(|n| n.has_tag_name((NS, "UserID"))).unwrap();
        prop_assert_eq!(user_el.text().unwrap(), user.to_string());
    }

    #[test]
    fn responses_round_trip_through_our_reader(value in xml_string()) {
        let mut body = Vec::new();
        write_response(&mut body, SoapVersion::V12, NS, "Version", |w: &mut XmlWriter<'_>| w.text(&value));
        let reply: Reply<String> = read_response(&body, NS, "Version", 64).unwrap();
        prop_assert_eq!(reply, Reply::Result(value));
    }

    #[test]
    fn the_fast_path_agrees_with_the_full_reader(
        value in prop_oneof![xml_string(), "[ a-zA-Z0-9-]{0,40}", Just("true".to_string()), Just(" 1 ".to_string())],
        v12 in any::<bool>(),
        spacing in prop::sample::select(vec!["", "\n", " \r\n  ", "\u{a0}"]),
    ) {
        let version = if v12 { SoapVersion::V12 } else { SoapVersion::V11 };
        let mut body = Vec::new();
        write_response(&mut body, version, NS, "GenerateAPIKey", |w: &mut XmlWriter<'_>| w.text(&value));
        let text = String::from_utf8(body).unwrap().replace("><", &format!(">{spacing}<"));
        let xml = text.as_bytes();
        prop_assert_eq!(
            read_response::<ApiKey>(xml, NS, "GenerateAPIKey", 64),
            read_response_in_full::<ApiKey>(xml, NS, "GenerateAPIKey", 64)
        );
        prop_assert_eq!(
            read_response::<String>(xml, NS, "GenerateAPIKey", 64),
            read_response_in_full::<String>(xml, NS, "GenerateAPIKey", 64)
        );
        prop_assert_eq!(
            read_response::<bool>(xml, NS, "GenerateAPIKey", 64),
            read_response_in_full::<bool>(xml, NS, "GenerateAPIKey", 64)
        );
    }

    #[test]
    fn strings_xml_cannot_carry_are_refused(prefix in "[Q-Z]{6}", bad in prop::sample::select(vec!['\u{0}', '\u{1}', '\u{8}', '\u{B}', '\u{C}', '\u{1F}', '\u{FFFE}', '\u{FFFF}'])) {
        let password = Password::new(format!("{prefix}{bad}"));
        let op = Login { login_name: "user", password: &password };
        let err = op.check().unwrap_err();
        prop_assert!(err.is_invalid_input());
        prop_assert!(!err.to_string().contains(&prefix), "the secret leaked into {}", err);
    }
}
