//! The client against the embedded fake, end to end over loopback HTTP.

use std::collections::HashSet;

use ecgridos::fake::{DetailShape, FakeServer, SeedUser};
use ecgridos::{
    ApiKey, AuthLevel, Client, ErrorKind, FaultCategory, FaultCode, Password, SoapVersion, UserId,
};

fn soap_client(server: &FakeServer) -> Client {
    Client::builder()
        .endpoint(server.soap_url())
        .build()
        .unwrap()
}

async fn setup() -> (FakeServer, Client) {
    let server = FakeServer::start().await.unwrap();
    let client = soap_client(&server);
    (server, client)
}

fn key(server: &FakeServer, login: &str) -> (ApiKey, UserId) {
    let user = server.user(login).unwrap();
    (user.api_key.unwrap(), UserId::from(user.user_id))
}

#[tokio::test]
async fn session_life_cycle_and_rotation() {
    let (server, client) = setup().await;
    let admin = server.user("admin").unwrap();
    assert_eq!(client.version().await.unwrap(), "4.1");

    let session = client.login("admin", &admin.password).await.unwrap();
    let me = client.who_am_i(&session).await.unwrap();
    assert_eq!(me.user_id, admin.user_id);
    assert_eq!(me.auth_level, Some(AuthLevel::NetworkAdmin));
    assert_eq!(me.timeout_seconds, 1200);
    assert_eq!(me.open_sessions, 1);
    assert_eq!(me.ip, "127.0.0.1");

    let (alice_old, alice) = key(&server, "alice");
    let read = client.user_get_api_key(&session, alice).await.unwrap();
    assert_eq!(read, alice_old);
    let new = client.generate_api_key(&session, alice).await.unwrap();
    assert_ne!(new, alice_old);
    assert_eq!(server.api_key(alice.get()), Some(new.clone()));
    assert_eq!(server.rotations(alice.get()), 1);

    // The old key is refused at once; the new one works.
    let err = client.who_am_i(&alice_old).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Authentication);
    assert_eq!(client.who_am_i(&new).await.unwrap().login_name, "alice");
    assert_eq!(client.user_get_api_key(&session, alice).await.unwrap(), new);

    assert!(client.logout(&session).await.unwrap());
    assert!(!client.logout(&session).await.unwrap());
    assert!(client
        .who_am_i(&session)
        .await
        .unwrap_err()
        .is_authentication());
    assert_eq!(server.soap_calls("GenerateAPIKey"), 1);
    server.shutdown().await;
}

#[tokio::test]
async fn faults_carry_category_and_legacy_detail() {
    let server = FakeServer::builder()
        .detail_shape(DetailShape::Both)
        .start()
        .await
        .unwrap();
    let client = soap_client(&server);
    let (alice_key, _) = key(&server, "alice");
    let (_, bob) = key(&server, "bob");

    let err = client.generate_api_key(&alice_key, bob).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Authorization);
    let fault = err.fault().unwrap();
    assert_eq!(fault.code, FaultCode::Client);
    let detail = fault.detail.as_ref().unwrap();
    assert_eq!(detail.category, Some(FaultCategory::Authorization));
    assert_eq!(detail.error_item.as_deref(), Some("UserID"));
    assert!(detail.error_code.is_some() && detail.error_message.is_some());
    assert_eq!(server.rotations(bob.get()), 0);

    let (admin_key, _) = key(&server, "admin");
    let err = client
        .user_get_api_key(&admin_key, UserId::from(4242))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);

    let err = client
        .login("admin", &Password::new("wrong"))
        .await
        .unwrap_err();
    assert!(err.is_authentication());
    // The message names the operation and the fault, never the password.
    assert!(err.to_string().contains("Login") && !err.to_string().contains("wrong"));
}

#[tokio::test]
async fn legacy_detail_alone_still_classifies_authentication() {
    let server = FakeServer::builder()
        .detail_shape(DetailShape::Legacy)
        .start()
        .await
        .unwrap();
    let client = soap_client(&server);
    let err = client.who_am_i(&ApiKey::new("nope")).await.unwrap_err();
    let detail = err.fault().unwrap().detail.clone().unwrap();
    assert_eq!(detail.category, None);
    assert_eq!(detail.error_item.as_deref(), Some("SessionID"));
    assert!(err.is_authentication());
}

#[tokio::test]
async fn soap12_end_to_end() {
    let server = FakeServer::start().await.unwrap();
    let client = Client::builder()
        .endpoint(server.soap_url())
        .soap_version(SoapVersion::V12)
        .build()
        .unwrap();
    let (k, id) = key(&server, "bob");
    let new = client.generate_api_key(&k, id).await.unwrap();
    assert_eq!(client.who_am_i(&new).await.unwrap().user_id, id.get());
    let err = client.who_am_i(&k).await.unwrap_err();
    assert_eq!(err.fault().unwrap().version, SoapVersion::V12);
    assert!(err.is_authentication());
}

#[tokio::test]
async fn markup_characters_in_a_credential_arrive_intact() {
    let tricky = "a<b&c\"d'e>f\r\n\tü😀";
    let users = vec![SeedUser {
        user_id: 9,
        login: "x<&>y".into(),
        password: Password::new("p&<>\"'ss"),
        api_key: Some(ApiKey::new(tricky)),
        auth_level: AuthLevel::MailboxUser,
        network_id: 1,
        mailbox_id: 1,
    }];
    let server = FakeServer::builder().users(users).start().await.unwrap();
    let client = soap_client(&server);
    // The fake looks the key up after parsing the envelope: a match means every
    // character survived escaping and parsing.
    let me = client.who_am_i(&ApiKey::new(tricky)).await.unwrap();
    assert_eq!(me.login_name, "x<&>y");
    assert_eq!(me.session_id.unwrap().expose(), tricky);
    client
        .login("x<&>y", &Password::new("p&<>\"'ss"))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_rotations_leave_exactly_one_valid_key() {
    let (server, client) = setup().await;
    let (admin_key, _) = key(&server, "admin");
    let (_, alice) = key(&server, "alice");
    let tasks: Vec<_> = (0..64)
        .map(|_| {
            let client = client.clone();
            let admin_key = admin_key.clone();
            tokio::spawn(async move { client.generate_api_key(&admin_key, alice).await })
        })
        .collect();
    let mut keys = Vec::new();
    for task in tasks {
        keys.push(task.await.unwrap().unwrap());
    }
    let distinct: HashSet<_> = keys.iter().map(|k| k.expose().to_string()).collect();
    assert_eq!(distinct.len(), 64);
    assert_eq!(server.rotations(alice.get()), 64);
    let mut valid = Vec::new();
    for k in &keys {
        if client.who_am_i(k).await.is_ok() {
            valid.push(k.clone());
        }
    }
    assert_eq!(valid.len(), 1);
    assert_eq!(server.api_key(alice.get()), Some(valid[0].clone()));
}

/// A fake whose sessions expire after 200 ms, a client of it, and its admin.
async fn short_sessions() -> (FakeServer, Client, SeedUser) {
    let server = FakeServer::builder()
        .session_timeout(std::time::Duration::from_millis(200))
        .start()
        .await
        .unwrap();
    let client = soap_client(&server);
    let admin = server.user("admin").unwrap();
    (server, client, admin)
}

#[tokio::test]
async fn expired_sessions_are_refused() {
    let (_server, client, admin) = short_sessions().await;
    let session = client.login("admin", &admin.password).await.unwrap();
    client.who_am_i(&session).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    assert!(client
        .who_am_i(&session)
        .await
        .unwrap_err()
        .is_authentication());
}

/// Raw requests, to check the fake answers like asmx where a client would not
/// go.
mod raw {
    use super::*;

    async fn post(
        server: &FakeServer,
        content_type: &str,
        action: Option<&str>,
        body: &str,
    ) -> (u16, String) {
        let mut req = reqwest::Client::new()
            .post(server.soap_url())
            .header("Content-Type", content_type)
            .body(body.to_string());
        if let Some(action) = action {
            req = req.header("SOAPAction", action);
        }
        let resp = req.send().await.unwrap();
        (resp.status().as_u16(), resp.text().await.unwrap())
    }

    fn envelope(inner: &str) -> String {
        format!(
            r#"<?xml version="1.0" encoding="utf-8"?><soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body>{inner}</soap:Body></soap:Envelope>"#
        )
    }

    const XML: &str = "text/xml; charset=utf-8";
    const ACTION: &str = "\"https://os.ecgrid.io/UserGetAPIKey\"";

    #[tokio::test]
    async fn success_is_asmx_shaped() {
        let server = FakeServer::start().await.unwrap();
        let (status, body) = post(
            &server,
            XML,
            Some("\"https://os.ecgrid.io/Version\""),
            &envelope(r#"<Version xmlns="https://os.ecgrid.io/" />"#),
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(
            body,
            concat!(
                r#"<?xml version="1.0" encoding="utf-8"?>"#,
                r#"<soap:Envelope xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/">"#,
                r#"<soap:Body><VersionResponse xmlns="https://os.ecgrid.io/"><VersionResult>4.1</VersionResult></VersionResponse></soap:Body></soap:Envelope>"#
            )
        );
    }

    #[tokio::test]
    async fn framework_faults() {
        let server = FakeServer::start().await.unwrap();
        let admin = server.user("admin").unwrap().api_key.unwrap();
        let call = |user: &str| {
            envelope(&format!(
                r#"<UserGetAPIKey xmlns="https://os.ecgrid.io/"><SessionID>{}</SessionID>{user}</UserGetAPIKey>"#,
                admin.expose()
            ))
        };
        let cases: Vec<(&str, Option<&str>, String, &str)> = vec![
            (
                XML,
                Some(ACTION),
                "<not-closed".into(),
                "unable to read request",
            ),
            (
                XML,
                Some("\"https://os.ecgrid.io/Nope\""),
                call("<UserID>1002</UserID>"),
                "did not recognize the value of HTTP Header SOAPAction",
            ),
            (
                XML,
                None,
                call("<UserID>1002</UserID>"),
                "did not recognize the value of HTTP Header SOAPAction",
            ),
            (
                XML,
                Some("\"https://os.ecgrid.io/Version\""),
                call("<UserID>1002</UserID>"),
                "was not expected",
            ),
            (
                XML,
                Some(ACTION),
                call("<UserID>12a</UserID>"),
                "not in a correct format",
            ),
            (
                XML,
                Some(ACTION),
                envelope(
                    r#"<UserGetAPIKey xmlns="http://www.ecgridos.net/"><SessionID>x</SessionID></UserGetAPIKey>"#,
                ),
                "was not expected",
            ),
            (
                "application/soap+xml; charset=utf-8",
                None,
                call("<UserID>1002</UserID>"),
                "does not match",
            ),
        ];
        for (content_type, action, body, expect) in cases {
            let (status, text) = post(&server, content_type, action, &body).await;
            assert_eq!(status, 500, "{body}");
            assert!(
                text.contains("<faultcode>soap:Client</faultcode>")
                    || text.contains("VersionMismatch"),
                "{text}"
            );
            assert!(text.contains(expect), "{expect} not in {text}");
            assert!(
                !text.contains("ECGridOSSOAPErrorCode"),
                "framework faults carry no ECGridOS detail"
            );
        }
        // A missing UserID binds as 0, like .NET: an ECGridOS fault, not a framework one.
        let (status, text) = post(&server, XML, Some(ACTION), &call("")).await;
        assert_eq!(status, 500);
        assert!(
            text.contains("<ECGridOSSOAPErrorCode>ObjectNotFound</ECGridOSSOAPErrorCode>"),
            "{text}"
        );
        // An unqualified UserID is read as absent, too.
        let (_, text) = post(
            &server,
            XML,
            Some(ACTION),
            &call(r#"<UserID xmlns="">1002</UserID>"#),
        )
        .await;
        assert!(text.contains("ObjectNotFound"), "{text}");
        let (status, _) = post(&server, "application/json", None, "{}").await;
        assert_eq!(status, 415);
    }

    #[tokio::test]
    async fn wsdl_is_served_with_the_fake_address() {
        let server = FakeServer::start().await.unwrap();
        let text = reqwest::get(format!("{}?WSDL", server.soap_url()))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(text.contains(&format!("location=\"{}\"", server.soap_url())));
        assert!(text.contains("soapAction=\"https://os.ecgrid.io/GenerateAPIKey\""));
    }
}

#[tokio::test]
async fn expired_sessions_are_purged_and_not_counted() {
    let (server, client, admin) = short_sessions().await;
    for _ in 0..5 {
        client.login("admin", &admin.password).await.unwrap();
    }
    assert_eq!(server.open_sessions(), 5);
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    assert_eq!(server.open_sessions(), 0, "expired sessions were purged");
    let session = client.login("admin", &admin.password).await.unwrap();
    let me = client.who_am_i(&session).await.unwrap();
    assert_eq!(me.open_sessions, 1, "only the live session is counted");
}

#[tokio::test]
async fn idle_and_slow_connections_are_closed_and_never_stop_the_fake() {
    use std::time::{Duration, Instant};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    let limit = Duration::from_millis(400);
    let server = FakeServer::builder()
        .idle_timeout(limit)
        .header_timeout(limit)
        .body_timeout(limit)
        .start()
        .await
        .unwrap();
    let addr = server.addr();
    let mut held = Vec::new();
    for _ in 0..300 {
        held.push(("idle", TcpStream::connect(addr).await.unwrap()));
    }
    for _ in 0..20 {
        let mut sock = TcpStream::connect(addr).await.unwrap();
        sock.write_all(b"POST /v4.1/prod/ECGridOS.asmx HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        held.push(("slow header", sock));
    }
    for _ in 0..20 {
        let mut sock = TcpStream::connect(addr).await.unwrap();
        sock.write_all(
            b"POST /v2/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"login\":",
        )
        .await
        .unwrap();
        held.push(("slow body", sock));
    }
    // With all of them open, a normal call is answered at once.
    let client = Client::builder()
        .endpoint(server.soap_url())
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let started = Instant::now();
    assert_eq!(client.version().await.unwrap(), "4.1");
    assert!(started.elapsed() < limit, "took {:?}", started.elapsed());
    // The fake closes each of them once its limit passed.
    let deadline = Instant::now() + limit * 6;
    for (what, mut sock) in held {
        let mut answer = Vec::new();
        let read = tokio::time::timeout_at(deadline.into(), sock.read_to_end(&mut answer)).await;
        assert!(read.is_ok(), "{what}: still open after {:?}", limit * 6);
        let answer = String::from_utf8_lossy(&answer);
        match what {
            "slow body" => assert!(answer.starts_with("HTTP/1.1 408"), "{answer}"),
            _ => assert!(answer.is_empty(), "{what}: {answer}"),
        }
    }
    // A keep-alive connection survives shorter pauses between requests,
    // longer than a third of the limit in all.
    let mut sock = TcpStream::connect(addr).await.unwrap();
    let mut buf = [0u8; 4096];
    for _ in 0..3 {
        tokio::time::sleep(limit / 2).await;
        sock.write_all(b"GET /v2/auth/version HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let n = tokio::time::timeout(limit, sock.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(buf[..n].starts_with(b"HTTP/1.1 200"), "{:?}", &buf[..n]);
    }
}
