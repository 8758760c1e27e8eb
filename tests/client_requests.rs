//! The exact HTTP requests the client sends, checked against a mock server,
//! and how it reads what comes back.

use httpmock::prelude::*;

use ecgridos::{ApiKey, Client, ErrorKind, Password, SessionId, SoapVersion, UserId};

const ENVELOPE_OPEN: &str = concat!(
    r#"<?xml version="1.0" encoding="utf-8"?>"#,
    r#"<soap:Envelope xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body>"#
);
const ENVELOPE_CLOSE: &str = "</soap:Body></soap:Envelope>";
const PATH: &str = "/v4.1/prod/ECGridOS.asmx";

fn request_body(inner: &str) -> String {
    format!("{ENVELOPE_OPEN}{inner}{ENVELOPE_CLOSE}")
}

fn response(op: &str, result: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="utf-8"?><soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:xsd="http://www.w3.org/2001/XMLSchema"><soap:Body><{op}Response xmlns="https://os.ecgrid.io/"><{op}Result>{result}</{op}Result></{op}Response></soap:Body></soap:Envelope>"#
    )
}

fn client(server: &MockServer) -> Client {
    Client::builder()
        .endpoint(server.url(PATH))
        .build()
        .unwrap()
}

/// Mocks one exact request and its reply; returns the mock to assert on.
async fn expect<'a>(
    server: &'a MockServer,
    op: &str,
    inner: &str,
    result: &str,
) -> httpmock::Mock<'a> {
    let body = request_body(inner);
    let action = format!("\"https://os.ecgrid.io/{op}\"");
    let reply = response(op, result);
    server
        .mock_async(|when, then| {
            when.method(POST)
                .path(PATH)
                .header("content-type", "text/xml; charset=utf-8")
                .header("soapaction", action)
                .body(body);
            then.status(200)
                .header("content-type", "text/xml; charset=utf-8")
                .body(reply);
        })
        .await
}

#[tokio::test]
async fn every_operation_sends_exact_bytes() {
    let server = MockServer::start_async().await;
    let c = client(&server);
    let session = SessionId::new("S-1&2");

    let m = expect(
        &server,
        "GenerateAPIKey",
        r#"<GenerateAPIKey xmlns="https://os.ecgrid.io/"><SessionID>S-1&amp;2</SessionID><UserID>42</UserID></GenerateAPIKey>"#,
        "NEW-KEY",
    )
    .await;
    assert_eq!(
        c.generate_api_key(&session, UserId::from(42))
            .await
            .unwrap(),
        ApiKey::new("NEW-KEY")
    );
    m.assert_calls_async(1).await;

    let m = expect(
        &server,
        "UserGetAPIKey",
        r#"<UserGetAPIKey xmlns="https://os.ecgrid.io/"><SessionID>S-1&amp;2</SessionID><UserID>-7</UserID></UserGetAPIKey>"#,
        "CUR-KEY",
    )
    .await;
    assert_eq!(
        c.user_get_api_key(&session, UserId::from(-7))
            .await
            .unwrap(),
        ApiKey::new("CUR-KEY")
    );
    m.assert_calls_async(1).await;

    let m = expect(
        &server,
        "Login",
        r#"<Login xmlns="https://os.ecgrid.io/"><LoginName>me</LoginName><Password>p&lt;w&gt;</Password></Login>"#,
        "SESSION",
    )
    .await;
    assert_eq!(
        c.login("me", &Password::new("p<w>")).await.unwrap(),
        SessionId::new("SESSION")
    );
    m.assert_calls_async(1).await;

    let m = expect(
        &server,
        "Logout",
        r#"<Logout xmlns="https://os.ecgrid.io/"><SessionID>S-1&amp;2</SessionID></Logout>"#,
        "true",
    )
    .await;
    assert!(c.logout(&session).await.unwrap());
    m.assert_calls_async(1).await;

    let m = expect(
        &server,
        "WhoAmI",
        r#"<WhoAmI xmlns="https://os.ecgrid.io/"><SessionID>S-1&amp;2</SessionID></WhoAmI>"#,
        "<UserID>5</UserID><AuthLevel>Root</AuthLevel>",
    )
    .await;
    assert_eq!(c.who_am_i(&session).await.unwrap().user_id, 5);
    m.assert_calls_async(1).await;

    let m = expect(
        &server,
        "Version",
        r#"<Version xmlns="https://os.ecgrid.io/"></Version>"#,
        "4.1",
    )
    .await;
    assert_eq!(c.version().await.unwrap(), "4.1");
    m.assert_calls_async(1).await;
}

#[tokio::test]
async fn soap12_and_a_configured_namespace() {
    let server = MockServer::start_async().await;
    let body = concat!(
        r#"<?xml version="1.0" encoding="utf-8"?>"#,
        r#"<soap12:Envelope xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:soap12="http://www.w3.org/2003/05/soap-envelope"><soap12:Body>"#,
        r#"<Version xmlns="http://ecgridos.net/"></Version></soap12:Body></soap12:Envelope>"#
    );
    let m = server
        .mock_async(|when, then| {
            when.method(POST)
                .path(PATH)
                .header("content-type", r#"application/soap+xml; charset=utf-8; action="http://ecgridos.net/Version""#)
                .header_missing("soapaction")
                .body(body);
            then.status(200).body(
                r#"<e:Envelope xmlns:e="http://www.w3.org/2003/05/soap-envelope"><e:Body><VersionResponse xmlns="http://ecgridos.net/"><VersionResult>3.0</VersionResult></VersionResponse></e:Body></e:Envelope>"#,
            );
        })
        .await;
    let c = Client::builder()
        .endpoint(server.url(PATH))
        .namespace("http://ecgridos.net/")
        .soap_version(SoapVersion::V12)
        .build()
        .unwrap();
    assert_eq!(c.version().await.unwrap(), "3.0");
    m.assert_async().await;
}

#[tokio::test]
async fn fault_under_http_500_is_a_fault() {
    let server = MockServer::start_async().await;
    server
        .mock_async(|when, then| {
            when.method(POST).path(PATH);
            then.status(500).header("content-type", "text/xml; charset=utf-8").body(
                r#"<?xml version="1.0" encoding="utf-8"?><soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body><soap:Fault><faultcode>soap:Client</faultcode><faultstring>Access denied for S-SECRET</faultstring><detail><ErrorCode>5</ErrorCode><ErrorString>AccessDenied</ErrorString><ErrorItem>UserID</ErrorItem><ErrorMessage>no</ErrorMessage></detail></soap:Fault></soap:Body></soap:Envelope>"#,
            );
        })
        .await;
    let err = client(&server)
        .generate_api_key(&SessionId::new("S-SECRET"), UserId::from(1))
        .await
        .unwrap_err();
    assert!(err.is_fault(), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains("ErrorCode=5") && text.contains("ErrorItem=UserID"),
        "{text}"
    );
    // The server echoed the session ID: it is redacted from the error.
    assert!(
        !text.contains("S-SECRET") && !format!("{err:?}").contains("S-SECRET"),
        "{text}"
    );
}

#[tokio::test]
async fn html_error_page_is_an_http_status_with_snippet() {
    let server = MockServer::start_async().await;
    let m = server
        .mock_async(|when, then| {
            when.method(POST).path(PATH);
            then.status(502)
                .header("content-type", "text/html")
                .body("<html><head><title>502 Bad Gateway</title></head><body>upstream down</body></html>");
        })
        .await;
    let c = Client::builder()
        .endpoint(server.url(PATH))
        .retry(ecgridos::RetryPolicy {
            max_attempts: 2,
            base_delay: std::time::Duration::from_millis(1),
            max_delay: std::time::Duration::from_millis(1),
        })
        .build()
        .unwrap();
    let err = c.version().await.unwrap_err();
    assert_eq!(err.status(), Some(502));
    assert!(err.to_string().contains("502 Bad Gateway"), "{err}");
    // A read is retried on 5xx ...
    m.assert_calls_async(2).await;
    // ... a rotation never is, and a bare error page is no refusal: the
    // proxy may have answered after the service acted.
    let err = c
        .generate_api_key(&SessionId::new("s"), UserId::from(1))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::OutcomeUnknown);
    m.assert_calls_async(3).await;
}

#[tokio::test]
async fn invalid_input_is_refused_before_any_request() {
    let server = MockServer::start_async().await;
    let m = server
        .mock_async(|when, then| {
            when.any_request();
            then.status(500);
        })
        .await;
    let c = client(&server);
    let errors = [
        c.generate_api_key(&SessionId::new(""), UserId::from(1))
            .await
            .unwrap_err(),
        c.generate_api_key(&SessionId::new("ok\u{0}bad"), UserId::from(1))
            .await
            .unwrap_err(),
        c.login("me\u{1b}", &Password::new("x")).await.unwrap_err(),
        c.login("me", &Password::new("")).await.unwrap_err(),
    ];
    for err in errors {
        assert!(err.is_invalid_input(), "{err:?}");
    }
    assert!(UserId::new(1 << 40).unwrap_err().is_invalid_input());
    m.assert_calls_async(0).await;
    assert!(Client::builder()
        .endpoint("http://example.com/x")
        .build()
        .unwrap_err()
        .is_invalid_input());
    assert!(Client::builder()
        .namespace("")
        .build()
        .unwrap_err()
        .is_invalid_input());
}

#[tokio::test]
async fn rest_base_url_with_query_or_fragment_is_refused_and_ids_land_in_the_path() {
    use ecgridos::RestClient;
    for bad in [
        "http://127.0.0.1:1/v2/users/key-generate/1003?",
        "http://127.0.0.1:1/api?x=1",
        "http://127.0.0.1:1/api#frag",
        "http://127.0.0.1:1/#",
    ] {
        let err = RestClient::builder().base_url(bad).build().unwrap_err();
        assert!(err.is_invalid_input(), "{bad}: {err:?}");
    }
    let server = MockServer::start_async().await;
    let rotate = server
        .mock_async(|when, then| {
            when.method(POST)
                .path("/prefix/v2/users/key-generate/1002")
                .header("x-api-key", "K");
            then.status(200)
                .json_body(serde_json::json!({"success": true, "data": "NEW"}));
        })
        .await;
    let read = server
        .mock_async(|when, then| {
            when.method(GET).path("/prefix/v2/users/key/-7");
            then.status(200)
                .json_body(serde_json::json!({"success": true, "data": "CUR"}));
        })
        .await;
    // With and without a trailing slash on the prefix.
    for base in [server.url("/prefix"), server.url("/prefix/")] {
        let rest = RestClient::builder().base_url(base).build().unwrap();
        let key = ApiKey::new("K");
        assert_eq!(
            rest.generate_api_key(&key, UserId::from(1002))
                .await
                .unwrap(),
            ApiKey::new("NEW")
        );
        assert_eq!(
            rest.get_api_key(&key, UserId::from(-7)).await.unwrap(),
            ApiKey::new("CUR")
        );
    }
    rotate.assert_calls_async(2).await;
    read.assert_calls_async(2).await;
}
