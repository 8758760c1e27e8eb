//! SOAP and REST give the same observable outcomes over one fake.

use std::time::Duration;

use ecgridos::fake::FakeServer;
use ecgridos::{
    ApiKey, Client, Credential, ErrorKind, KeyClient, Observed, Protocol, RestClient, RetryPolicy,
    Scenario, UserId,
};
use httpmock::prelude::*;

struct Both {
    server: FakeServer,
    soap: KeyClient,
    rest: KeyClient,
}

async fn both() -> Both {
    let server = FakeServer::start().await.unwrap();
    let soap = Client::builder()
        .endpoint(server.soap_url())
        .build()
        .unwrap()
        .into();
    let rest = RestClient::builder()
        .base_url(server.rest_url())
        .build()
        .unwrap()
        .into();
    Both { server, soap, rest }
}

fn cred(server: &FakeServer, login: &str) -> Credential {
    Credential::ApiKey(server.user(login).unwrap().api_key.unwrap())
}

fn uid(server: &FakeServer, login: &str) -> UserId {
    UserId::from(server.user(login).unwrap().user_id)
}

#[tokio::test]
async fn the_scenario_is_the_same_over_both_protocols() {
    let b = both().await;
    let alice = uid(&b.server, "alice");
    // An administrator rotating another user's key, then a user rotating their
    // own key with that key (the credential changes mid-way).
    for caller in ["admin", "alice"] {
        let scenario = Scenario {
            credential: cred(&b.server, caller),
            user_id: alice,
            unknown_user_id: UserId::from(4242),
            forbidden: Some((cred(&b.server, "bob"), alice)),
        };
        let comparison = scenario.compare(&[b.soap.clone(), b.rest.clone()]).await;
        let steps = &comparison.steps;
        assert_eq!(steps.len(), 7);
        // Both keys the scenario created are handed back; the last is in force.
        let protocols: Vec<_> = comparison.new_keys.iter().map(|(p, _)| *p).collect();
        assert_eq!(protocols, [Protocol::Soap, Protocol::Rest]);
        assert_eq!(
            Some(&comparison.new_keys[1].1),
            b.server.api_key(alice.get()).as_ref()
        );
        for step in steps {
            assert_eq!(step.observed.len(), 2);
            assert!(step.same(), "{step:?}");
            if caller == "alice" && step.step == "unknown user" {
                // A non-administrator learns nothing about other users, over
                // either protocol: refused, not "not found".
                assert_eq!(
                    step.observed[0].1,
                    Observed::Failure(ErrorKind::Authorization)
                );
            } else {
                assert!(step.passed(), "{step:?}");
            }
        }
        let kinds: Vec<_> = steps.iter().map(|s| s.expected.clone()).collect();
        assert!(kinds.contains(&Observed::Failure(ErrorKind::NotFound)));
        assert!(kinds.contains(&Observed::Failure(ErrorKind::Authorization)));
        assert!(kinds.contains(&Observed::Failure(ErrorKind::Authentication)));
    }
    assert_eq!(b.server.rotations(alice.get()), 4);
    assert_eq!(b.server.rest_calls("key-generate"), 2);
    assert_eq!(b.server.soap_calls("GenerateAPIKey"), 2);
}

#[tokio::test]
async fn a_rotation_over_one_protocol_kills_the_old_key_over_the_other() {
    let b = both().await;
    for (first, second) in [(&b.soap, &b.rest), (&b.rest, &b.soap)] {
        let bob = uid(&b.server, "bob");
        let old = cred(&b.server, "bob");
        let new = first.generate_api_key(&old, bob).await.unwrap();
        let err = second.check_credential(&old).await.unwrap_err();
        assert_eq!(
            err.kind(),
            ErrorKind::Authentication,
            "{} then {}",
            first.protocol(),
            second.protocol()
        );
        let me = second
            .check_credential(&Credential::ApiKey(new.clone()))
            .await
            .unwrap();
        assert_eq!((me.user_id, me.login.as_str()), (bob.get(), "bob"));
        assert_eq!(
            second
                .get_api_key(&Credential::ApiKey(new.clone()), bob)
                .await
                .unwrap(),
            new
        );
    }
}

#[tokio::test]
async fn rest_errors_map_to_the_same_kinds_as_soap_faults() {
    let b = both().await;
    let bad = Credential::ApiKey(ApiKey::new("not-a-key"));
    let alice = cred(&b.server, "alice");
    let admin = cred(&b.server, "admin");
    let bob = uid(&b.server, "bob");
    for client in [&b.soap, &b.rest] {
        let p = client.protocol();
        let e = client.get_api_key(&bad, bob).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Authentication, "{p}");
        let e = client.generate_api_key(&alice, bob).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Authorization, "{p}");
        let e = client
            .get_api_key(&admin, UserId::from(-5))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotFound, "{p}");
        if p == Protocol::Rest {
            assert_eq!(e.status(), Some(404));
            assert!(matches!(&e, ecgridos::Error::Rest { code, .. } if code == "ObjectNotFound"));
        }
    }
    // REST sessions: bearer login, me, logout.
    let rest = RestClient::builder()
        .base_url(b.server.rest_url())
        .build()
        .unwrap();
    let admin_user = b.server.user("admin").unwrap();
    let token = rest
        .login(&admin_user.login, &admin_user.password)
        .await
        .unwrap();
    assert_eq!(rest.me(&token).await.unwrap().login, "admin");
    assert!(rest.logout(&token).await.unwrap());
    let e = rest.me(&token).await.unwrap_err();
    assert!(
        matches!(&e, ecgridos::Error::Rest { code, status: 401, .. } if code == "InvalidSession"),
        "{e:?}"
    );
    assert_eq!(rest.version().await.unwrap(), "2.6");
}

#[tokio::test]
async fn the_fake_refuses_get_on_key_generate_and_bad_ids() {
    let b = both().await;
    let key = b.server.user("admin").unwrap().api_key.unwrap();
    let http = reqwest::Client::new();
    let url = |path: &str| format!("{}{path}", b.server.rest_url());
    let r = http
        .get(url("/v2/users/key-generate/1002"))
        .header("X-API-Key", key.expose())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 405);
    let r = http
        .post(url("/v2/users/key-generate/abc"))
        .header("X-API-Key", key.expose())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let body: serde_json::Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
    assert_eq!(body["errorCode"], "InvalidParameter");
    assert_eq!(body["success"], false);
    assert_eq!(b.server.rotations(1002), 0);
}

#[tokio::test]
async fn rest_requests_are_exact_and_429_is_honoured_for_reads_only() {
    let server = MockServer::start_async().await;
    let generate = server
        .mock_async(|when, then| {
            when.method(POST).path("/v2/users/key-generate/42").header("x-api-key", "K-1");
            then.status(429).header("Retry-After", "0").json_body(serde_json::json!({
                "success": false, "errorCode": "RateLimitExceeded", "message": "slow down", "data": null
            }));
        })
        .await;
    let read = server
        .mock_async(|when, then| {
            when.method(GET).path("/v2/users/key/42").header("x-api-key", "K-1");
            then.status(429).header("Retry-After", "0").json_body(serde_json::json!({
                "success": false, "errorCode": "RateLimitExceeded", "message": "slow down", "data": null
            }));
        })
        .await;
    let rest = RestClient::builder()
        .base_url(server.base_url())
        .retry(RetryPolicy {
            max_attempts: 3,
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(5),
        })
        .build()
        .unwrap();
    let key = ApiKey::new("K-1");
    let e = rest
        .generate_api_key(&key, UserId::from(42))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::RateLimited);
    assert_eq!(e.retry_after(), Some(Duration::ZERO));
    generate.assert_calls_async(1).await;
    let e = rest.get_api_key(&key, UserId::from(42)).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::RateLimited);
    read.assert_calls_async(3).await;

    // Success envelope unwrapped; a non-JSON success to a rotation is an unknown outcome.
    let ok = server
        .mock_async(|when, then| {
            when.method(POST).path("/v2/users/key-generate/7");
            then.status(200).json_body(serde_json::json!({ "success": true, "data": "NEW", "errorCode": "", "message": "" }));
        })
        .await;
    assert_eq!(
        rest.generate_api_key(&key, UserId::from(7)).await.unwrap(),
        ApiKey::new("NEW")
    );
    ok.assert_async().await;
    server
        .mock_async(|when, then| {
            when.method(POST).path("/v2/users/key-generate/8");
            then.status(200).body("<html>proxy</html>");
        })
        .await;
    let e = rest
        .generate_api_key(&key, UserId::from(8))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::OutcomeUnknown);
    assert!(e.to_string().contains("UserGetAPIKey"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_compare_reports_identical_steps() {
    let b = both().await;
    let out = tokio::task::spawn_blocking({
        let soap = b.server.soap_url();
        let rest = b.server.rest_url();
        let key = b.server.user("admin").unwrap().api_key.unwrap();
        let forbidden = b.server.user("bob").unwrap().api_key.unwrap();
        move || {
            std::process::Command::new(env!("CARGO_BIN_EXE_ecgridos"))
                .args([
                    "compare",
                    "--user-id",
                    "1002",
                    "--forbidden-user-id",
                    "1002",
                    "--yes",
                    "--json",
                ])
                .env("ECGRID_ENDPOINT", soap)
                .env("ECGRID_REST_URL", rest)
                .env("ECGRID_API_KEY", key.expose())
                .env("ECGRID_FORBIDDEN_API_KEY", forbidden.expose())
                .env_remove("ECGRID_SESSION_ID")
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["same"], true);
    assert_eq!(report["passed"], true);
    assert_eq!(report["steps"].as_array().unwrap().len(), 7);
    assert_eq!(
        report["steps"][2]["observed"]["rest"],
        "error: Authentication"
    );
}
