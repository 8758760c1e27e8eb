//! The response reader against responses shaped like real .NET asmx output and
//! the variations other servers and proxies produce.

use ecgridos::wire::{read_request, read_response, ReadError, Reply, SoapVersion};
use ecgridos::{ApiKey, AuthLevel, FaultCategory, FaultCode, SessionInfo, SoapFault};

const NS: &str = "https://os.ecgrid.io/";

fn key(xml: &str) -> Result<Reply<ApiKey>, ReadError> {
    read_response(xml.as_bytes(), NS, "GenerateAPIKey", 64)
}

fn expect_key(xml: &str) -> String {
    match key(xml) {
        Ok(Reply::Result(k)) => k.expose().to_string(),
        other => panic!("expected a key, got {other:?}"),
    }
}

fn expect_fault(xml: &str) -> SoapFault {
    match key(xml) {
        Ok(Reply::Fault(f)) => f,
        other => panic!("expected a fault, got {other:?}"),
    }
}

fn expect_malformed(xml: &[u8]) -> String {
    match read_response::<ApiKey>(xml, NS, "GenerateAPIKey", 64) {
        Err(ReadError::Malformed(reason)) => reason.into_owned(),
        other => panic!("expected malformed, got {other:?}"),
    }
}

const ASMX_OK: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:xsd="http://www.w3.org/2001/XMLSchema">
  <soap:Body>
    <GenerateAPIKeyResponse xmlns="https://os.ecgrid.io/">
      <GenerateAPIKeyResult>a1b2c3d4-e5f6-7890-abcd-ef1234567890</GenerateAPIKeyResult>
    </GenerateAPIKeyResponse>
  </soap:Body>
</soap:Envelope>"#;

#[test]
fn asmx_shaped_success() {
    assert_eq!(expect_key(ASMX_OK), "a1b2c3d4-e5f6-7890-abcd-ef1234567890");
}

#[test]
fn other_prefixes_and_default_namespaces() {
    let variants = [
        r#"<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><GenerateAPIKeyResponse xmlns="https://os.ecgrid.io/"><GenerateAPIKeyResult>K1</GenerateAPIKeyResult></GenerateAPIKeyResponse></s:Body></s:Envelope>"#,
        r#"<SOAP-ENV:Envelope xmlns:SOAP-ENV="http://schemas.xmlsoap.org/soap/envelope/"><SOAP-ENV:Header/><SOAP-ENV:Body><e:GenerateAPIKeyResponse xmlns:e="https://os.ecgrid.io/"><e:GenerateAPIKeyResult>K1</e:GenerateAPIKeyResult></e:GenerateAPIKeyResponse></SOAP-ENV:Body></SOAP-ENV:Envelope>"#,
        r#"<Envelope xmlns="http://schemas.xmlsoap.org/soap/envelope/"><Body><GenerateAPIKeyResponse xmlns="https://os.ecgrid.io/"><GenerateAPIKeyResult>K1</GenerateAPIKeyResult></GenerateAPIKeyResponse></Body></Envelope>"#,
        r#"<soap12:Envelope xmlns:soap12="http://www.w3.org/2003/05/soap-envelope"><soap12:Body><GenerateAPIKeyResponse xmlns="https://os.ecgrid.io/"><GenerateAPIKeyResult>K1</GenerateAPIKeyResult></GenerateAPIKeyResponse></soap12:Body></soap12:Envelope>"#,
    ];
    for xml in variants {
        assert_eq!(expect_key(xml), "K1", "{xml}");
    }
}

#[test]
fn bom_whitespace_cdata_and_entities() {
    let bom = format!("\u{feff}{ASMX_OK}");
    assert_eq!(expect_key(&bom), "a1b2c3d4-e5f6-7890-abcd-ef1234567890");
    let body = |result: &str| {
        format!(
            r#"<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body><GenerateAPIKeyResponse xmlns="https://os.ecgrid.io/"><GenerateAPIKeyResult>{result}</GenerateAPIKeyResult></GenerateAPIKeyResponse></soap:Body></soap:Envelope>"#
        )
    };
    assert_eq!(expect_key(&body("\n   KEY-1\n  ")), "KEY-1");
    assert_eq!(expect_key(&body("<![CDATA[a<b&c]]>")), "a<b&c");
    // Since quick-xml 0.38 each reference is its own event: none may be dropped.
    assert_eq!(
        expect_key(&body("a&amp;b&lt;c&gt;d&quot;e&apos;f&#65;&#x42;")),
        "a&b<c>d\"e'fAB"
    );
    assert_eq!(expect_key(&body("x<!-- note -->y")), "xy");
}

#[test]
fn fault_with_newer_detail() {
    let f = expect_fault(
        r#"<?xml version="1.0" encoding="utf-8"?><soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:xsd="http://www.w3.org/2001/XMLSchema"><soap:Body><soap:Fault><faultcode>soap:Client</faultcode><faultstring>Session expired</faultstring><detail><ECGridOSSOAPErrorCode>Authentication</ECGridOSSOAPErrorCode></detail></soap:Fault></soap:Body></soap:Envelope>"#,
    );
    assert_eq!(f.version, SoapVersion::V11);
    assert_eq!(f.code, FaultCode::Client);
    assert_eq!(f.message, "Session expired");
    assert_eq!(f.category(), Some(FaultCategory::Authentication));
    assert!(f.is_authentication());
}

#[test]
fn fault_with_older_detail_and_resolved_code_prefix() {
    let f = expect_fault(
        r#"<e:Envelope xmlns:e="http://schemas.xmlsoap.org/soap/envelope/"><e:Body><e:Fault><faultcode>e:Server</faultcode><faultstring>Access denied</faultstring><faultactor>https://os.ecgrid.io/x</faultactor><detail><x:ECGridOSError xmlns:x="urn:x"><x:ErrorCode>21</x:ErrorCode><x:ErrorString>AccessDenied</x:ErrorString><x:ErrorItem>UserID</x:ErrorItem><x:ErrorMessage>Not your user &amp; not your network</x:ErrorMessage></x:ECGridOSError></detail></e:Fault></e:Body></e:Envelope>"#,
    );
    assert_eq!(f.code, FaultCode::Server);
    let d = f.detail.clone().unwrap();
    assert_eq!(d.error_code.as_deref(), Some("21"));
    assert_eq!(d.error_string.as_deref(), Some("AccessDenied"));
    assert_eq!(d.error_item.as_deref(), Some("UserID"));
    assert_eq!(
        d.error_message.as_deref(),
        Some("Not your user & not your network")
    );
    assert_eq!(f.actor.as_deref(), Some("https://os.ecgrid.io/x"));
    assert_eq!(f.category(), None);
    let text = f.to_string();
    assert!(
        text.contains("ErrorCode=21") && text.contains("ErrorItem=UserID"),
        "{text}"
    );
}

#[test]
fn older_detail_naming_the_session_is_an_authentication_fault() {
    let f = expect_fault(
        r#"<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body><soap:Fault><faultcode>soap:Client</faultcode><faultstring>x</faultstring><detail><ErrorCode>3</ErrorCode><ErrorItem>SessionID</ErrorItem></detail></soap:Fault></soap:Body></soap:Envelope>"#,
    );
    assert!(f.is_authentication());
}

#[test]
fn framework_fault_without_detail() {
    let f = expect_fault(
        r#"<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body><soap:Fault><faultcode>soap:Client</faultcode><faultstring>Server did not recognize the value of HTTP Header SOAPAction: x.</faultstring><detail /></soap:Fault></soap:Body></soap:Envelope>"#,
    );
    assert_eq!(f.detail, None);
    assert_eq!(f.category(), None);
}

#[test]
fn soap12_fault() {
    let f = expect_fault(
        r#"<?xml version="1.0" encoding="utf-8"?><soap:Envelope xmlns:soap="http://www.w3.org/2003/05/soap-envelope"><soap:Body><soap:Fault><soap:Code><soap:Value>soap:Sender</soap:Value><soap:Subcode><soap:Value>x:y</soap:Value></soap:Subcode></soap:Code><soap:Reason><soap:Text xml:lang="en">Not found</soap:Text></soap:Reason><soap:Detail><ECGridOSSOAPErrorCode>ObjectNotFound</ECGridOSSOAPErrorCode></soap:Detail></soap:Fault></soap:Body></soap:Envelope>"#,
    );
    assert_eq!(f.version, SoapVersion::V12);
    assert_eq!(f.code, FaultCode::Client);
    assert_eq!(f.message, "Not found");
    assert_eq!(f.category(), Some(FaultCategory::ObjectNotFound));
}

#[test]
fn unknown_fault_code_is_kept() {
    let f = expect_fault(
        r#"<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/" xmlns:q="urn:q"><soap:Body><soap:Fault><faultcode>q:Throttled</faultcode><faultstring>slow down</faultstring></soap:Fault></soap:Body></soap:Envelope>"#,
    );
    assert_eq!(f.code, FaultCode::Other("q:Throttled".into()));
}

#[test]
fn shapes_that_must_be_refused() {
    // Wrong namespace on the response element.
    let wrong_ns = ASMX_OK.replace(
        r#"xmlns="https://os.ecgrid.io/""#,
        r#"xmlns="http://www.ecgridos.net/""#,
    );
    assert!(expect_malformed(wrong_ns.as_bytes()).contains("expected <GenerateAPIKeyResponse>"));
    // Two result elements.
    let two = ASMX_OK.replace(
        "</GenerateAPIKeyResponse>",
        "<GenerateAPIKeyResult>other</GenerateAPIKeyResult></GenerateAPIKeyResponse>",
    );
    assert!(expect_malformed(two.as_bytes()).contains("more than one"));
    // The response to another operation.
    let other_op = ASMX_OK.replace("GenerateAPIKey", "UserGetAPIKey");
    assert!(expect_malformed(other_op.as_bytes()).contains("found <UserGetAPIKeyResponse>"));
    // Truncated.
    assert!(!expect_malformed(&ASMX_OK.as_bytes()[..ASMX_OK.len() - 30]).is_empty());
    // Empty, HTML, not UTF-8, empty result, missing result, DOCTYPE.
    assert!(expect_malformed(b"").contains("no root element"));
    assert!(expect_malformed(b"<html><body>Bad gateway</body></html>").contains("not a SOAP"));
    assert!(expect_malformed(b"<a>\xff\xfe</a>").contains("not UTF-8"));
    let empty = ASMX_OK.replace("a1b2c3d4-e5f6-7890-abcd-ef1234567890", "");
    assert!(expect_malformed(empty.as_bytes()).contains("empty API key"));
    let missing = ASMX_OK.replace(
        "<GenerateAPIKeyResult>a1b2c3d4-e5f6-7890-abcd-ef1234567890</GenerateAPIKeyResult>",
        "",
    );
    assert!(expect_malformed(missing.as_bytes()).contains("no <GenerateAPIKeyResult>"));
    let doctype = format!("<!DOCTYPE x [<!ENTITY a \"b\">]>{ASMX_OK}")
        .replace("<?xml version=\"1.0\" encoding=\"utf-8\"?>", "");
    assert!(expect_malformed(doctype.as_bytes()).contains("DOCTYPE"));
    let entity = ASMX_OK.replace("a1b2c3d4-e5f6-7890-abcd-ef1234567890", "&xxe;");
    assert!(expect_malformed(entity.as_bytes()).contains("undeclared entity"));
    let utf16 = ASMX_OK.replace("encoding=\"utf-8\"", "encoding=\"utf-16\"");
    assert!(expect_malformed(utf16.as_bytes()).contains("encoding"));
}

#[test]
fn nesting_is_bounded() {
    let deep = format!(
        r#"<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body><GenerateAPIKeyResponse xmlns="https://os.ecgrid.io/"><Junk>{}{}</Junk></GenerateAPIKeyResponse></soap:Body></soap:Envelope>"#,
        "<a>".repeat(100_000),
        "</a>".repeat(100_000)
    );
    assert_eq!(
        read_response::<ApiKey>(deep.as_bytes(), NS, "GenerateAPIKey", 64),
        Err(ReadError::TooDeep { limit: 64 })
    );
    let deep_empty = deep.replace("<a></a>", "<a/>");
    assert!(read_response::<ApiKey>(deep_empty.as_bytes(), NS, "GenerateAPIKey", 64).is_err());
}

const WHOAMI: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:xsd="http://www.w3.org/2001/XMLSchema">
<soap:Body><WhoAmIResponse xmlns="https://os.ecgrid.io/"><WhoAmIResult>
<ECGridOSVersion>4.1.123</ECGridOSVersion><SessionID>sess-1</SessionID><SessionEventID>77</SessionEventID>
<UserID>1002</UserID><LoginName>alice</LoginName><FirstName>Alice</FirstName><LastName>Liddell</LastName>
<Company>Wonder &amp; Co</Company><EMail>alice@example.com</EMail><Phone>555</Phone>
<TimeZoneOffset>-300.5</TimeZoneOffset><AuthLevel>MailboxAdmin</AuthLevel><LastLogin>2026-11-01T10:00:00</LastLogin>
<OpenSessions>2</OpenSessions><TimeOut>1200</TimeOut><NetworkID>10</NetworkID><MailboxID>20</MailboxID>
<ip>203.0.113.9</ip><SomethingNew><Nested>ignored</Nested></SomethingNew>
</WhoAmIResult></WhoAmIResponse></soap:Body></soap:Envelope>"#;

#[test]
fn session_info_all_fields_and_unknown_children() {
    let Ok(Reply::Result(info)) = read_response::<SessionInfo>(WHOAMI.as_bytes(), NS, "WhoAmI", 64)
    else {
        panic!("expected SessionInfo");
    };
    assert_eq!(info.ecgridos_version, "4.1.123");
    assert_eq!(info.session_id.as_ref().map(|s| s.expose()), Some("sess-1"));
    assert_eq!(info.session_event_id, 77);
    assert_eq!(info.user_id, 1002);
    assert_eq!(info.login_name, "alice");
    assert_eq!(
        (info.first_name.as_str(), info.last_name.as_str()),
        ("Alice", "Liddell")
    );
    assert_eq!(info.company, "Wonder & Co");
    assert_eq!(info.email, "alice@example.com");
    assert_eq!(info.phone, "555");
    assert_eq!(info.time_zone_offset, -300.5);
    assert_eq!(info.auth_level, Some(AuthLevel::MailboxAdmin));
    assert_eq!(info.last_login, "2026-11-01T10:00:00");
    assert_eq!((info.open_sessions, info.timeout_seconds), (2, 1200));
    assert_eq!((info.network_id, info.mailbox_id), (10, 20));
    assert_eq!(info.ip, "203.0.113.9");
    assert!(!format!("{info:?}").contains("sess-1"));

    let bad = WHOAMI.replace("<UserID>1002</UserID>", "<UserID>x</UserID>");
    assert!(read_response::<SessionInfo>(bad.as_bytes(), NS, "WhoAmI", 64).is_err());
    let short = WHOAMI.replace(
        "<TimeZoneOffset>-300.5</TimeZoneOffset>",
        "<TimeZoneOffset>60</TimeZoneOffset>",
    );
    let Ok(Reply::Result(info)) = read_response::<SessionInfo>(short.as_bytes(), NS, "WhoAmI", 64)
    else {
        panic!()
    };
    assert_eq!(info.time_zone_offset, 60.0);
}

#[test]
fn logout_reads_booleans_and_integers() {
    let logout = |v: &str| {
        let xml = format!(
            r#"<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body><LogoutResponse xmlns="https://os.ecgrid.io/"><LogoutResult>{v}</LogoutResult></LogoutResponse></soap:Body></soap:Envelope>"#
        );
        read_response::<bool>(xml.as_bytes(), NS, "Logout", 64)
    };
    assert_eq!(logout("true"), Ok(Reply::Result(true)));
    assert_eq!(logout("false"), Ok(Reply::Result(false)));
    assert_eq!(logout(" 1 "), Ok(Reply::Result(true)));
    assert_eq!(logout("0"), Ok(Reply::Result(false)));
    assert_eq!(logout("-3"), Ok(Reply::Result(true)));
    assert!(logout("maybe").is_err());
}

#[test]
fn request_reader_sees_qualification() {
    let xml = r#"<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body><GenerateAPIKey xmlns="https://os.ecgrid.io/"><SessionID>s&amp;1</SessionID><UserID xmlns="">5</UserID></GenerateAPIKey></soap:Body></soap:Envelope>"#;
    let req = read_request(xml.as_bytes(), NS, 64).unwrap();
    assert_eq!(req.version, SoapVersion::V11);
    assert_eq!(req.operation, "GenerateAPIKey");
    assert!(req.operation_qualified);
    assert_eq!(req.param("SessionID"), Some("s&1"));
    // Unqualified: asmx binds it as absent.
    assert_eq!(req.param("UserID"), None);
    assert!(!format!("{req:?}").contains("s&1"));
}

#[test]
fn namespace_scopes_close_with_their_element() {
    // A declaration on an element (empty or not) holds for it alone: the
    // siblings after it are back in the service namespace.
    let xml = r#"<Envelope xmlns="http://schemas.xmlsoap.org/soap/envelope/"><Body><GenerateAPIKeyResponse xmlns="https://os.ecgrid.io/"><X xmlns="urn:other"/><GenerateAPIKeyResult xmlns="urn:other">WRONG</GenerateAPIKeyResult><GenerateAPIKeyResult>K1</GenerateAPIKeyResult></GenerateAPIKeyResponse></Body></Envelope>"#;
    assert_eq!(expect_key(xml), "K1");
    // Back outside the response, the envelope's default namespace holds again.
    let xml = r#"<Envelope xmlns="http://schemas.xmlsoap.org/soap/envelope/"><Body><GenerateAPIKeyResponse xmlns="https://os.ecgrid.io/"><GenerateAPIKeyResult>K2</GenerateAPIKeyResult></GenerateAPIKeyResponse></Body><Other xmlns="urn:x"/></Envelope>"#;
    assert_eq!(expect_key(xml), "K2");
}

#[test]
fn fault_code_prefix_declared_on_the_code_element() {
    let f = expect_fault(
        r#"<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body><soap:Fault><faultcode xmlns:f="http://schemas.xmlsoap.org/soap/envelope/">f:Server</faultcode><faultstring>x</faultstring></soap:Fault></soap:Body></soap:Envelope>"#,
    );
    assert_eq!(f.code, FaultCode::Server);
}

/// .NET writes characters XML 1.0 forbids in strings as character
/// references (`&#x0;`, `&#x1B;`): they decode to the character in the fast
/// path for canonical responses and in the full reader alike, instead of
/// failing the whole document. A reference to no character at all still
/// fails.
#[test]
fn control_character_references_decode_in_both_paths() {
    use ecgridos::api::types::ArrayOfString;
    use ecgridos::wire::{read_response_canonical, read_response_in_full};

    let canonical = |items: &str| {
        format!(
            r#"<?xml version="1.0" encoding="utf-8"?><soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:xsd="http://www.w3.org/2001/XMLSchema"><soap:Body><ProbeResponse xmlns="https://os.ecgrid.io/"><ProbeResult>{items}</ProbeResult></ProbeResponse></soap:Body></soap:Envelope>"#
        )
    };
    let xml = canonical("<string>a&#x0;b&#x1B;c</string><string>&#27;&#0;</string>");
    let expected = ArrayOfString(vec![
        Some("a\0b\u{1B}c".to_string()),
        Some("\u{1B}\0".to_string()),
    ]);
    let fast = read_response_canonical::<ArrayOfString>(xml.as_bytes(), NS, "Probe", 64);
    assert_eq!(fast, Some(Ok(Reply::Result(expected.clone()))));
    let full = read_response_in_full::<ArrayOfString>(xml.as_bytes(), NS, "Probe", 64);
    assert_eq!(full, Ok(Reply::Result(expected)));

    // A text result too (the fast path for plain text results leaves it to
    // the scanner, which decodes it).
    let text = ASMX_OK.replace("a1b2c3d4-e5f6-7890-abcd-ef1234567890", "k&#x1B;&#x0;");
    assert_eq!(expect_key(&text), "k\u{1B}\0");

    for bad in ["&#xD800;", "&#x110000;", "&#;", "&#x;", "&#-1;"] {
        let xml = canonical(&format!("<string>{bad}</string>"));
        let full = read_response_in_full::<ArrayOfString>(xml.as_bytes(), NS, "Probe", 64);
        assert!(
            matches!(&full, Err(e) if e.to_string().contains("bad character reference")),
            "{bad}: {full:?}"
        );
        assert_eq!(
            read_response_canonical::<ArrayOfString>(xml.as_bytes(), NS, "Probe", 64),
            None,
            "{bad}"
        );
        assert_eq!(
            read_response::<ArrayOfString>(xml.as_bytes(), NS, "Probe", 64),
            full
        );
    }
}
