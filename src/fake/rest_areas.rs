//! The fake's REST v2 routes for the users area that the mapping names
//! beside the key and session routes (`GET /v2/users/{id}`,
//! `POST /v2/users/by-name`, `POST /v2/users/list`), with the vendor's envelope, error codes and
//! statuses; and the test-only knob that rewrites one field of REST
//! responses ([`FakeServerBuilder::rest_override`]), for tests that need a
//! difference between the protocols on purpose.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Request, State as AxumState};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;
use serde_json::{json, Value};

use super::rest::{error, method_not_allowed, on_user};
use super::rest_parcels::call;
use super::state::{State, UserView};
use super::{FakeServerBuilder, Shared};

/// The users routes.
pub(super) fn router() -> Router<Arc<Shared>> {
    Router::new()
        .route("/v2/users/{id}", get(user).fallback(method_not_allowed))
        .route(
            "/v2/users/by-name",
            post(by_name).fallback(method_not_allowed),
        )
        .route("/v2/users/list", post(list).fallback(method_not_allowed))
}

/// A user as the REST pages show `UserIDInfo` (10 fields).
fn user_json(u: UserView) -> Value {
    json!({
        "userId": u.user_id,
        "login": u.login,
        "email": format!("{}@example.com", u.login),
        "firstName": u.login,
        "lastName": "",
        "networkId": u.network_id,
        "mailboxId": u.mailbox_id,
        "authLevel": u.auth_level.as_str(),
        "status": "Active",
        "created": "0001-01-01T00:00:00",
    })
}

/// `GET /v2/users/{id}`.
async fn user(
    AxumState(shared): AxumState<Arc<Shared>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    on_user(
        &shared,
        "REST user",
        &headers,
        &id,
        State::user_info,
        user_json,
    )
}

#[derive(Deserialize)]
struct ByName {
    login: String,
}

/// `POST /v2/users/by-name` with `{login}`: an array (the vendor's page
/// allows several users of one login in several networks; the fake's logins
/// are unique).
async fn by_name(
    AxumState(shared): AxumState<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    call(&shared, "by-name", &headers, &body, |cred, b: ByName| {
        let user = shared.state.user_by_login(cred, &b.login)?;
        Ok(json!([user_json(user)]))
    })
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct ListBody {
    name: String,
    network_id: i32,
    mailbox_id: i32,
}

/// `POST /v2/users/list` with `{name?, networkId?, mailboxId?}`: a plain
/// array (the vendor's page; paging fields are accepted and ignored: the
/// fake has few users).
async fn list(
    AxumState(shared): AxumState<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    call(&shared, "list", &headers, &body, |cred, b: ListBody| {
        let users = shared
            .state
            .user_list(cred, &b.name, b.network_id, b.mailbox_id)?;
        Ok(Value::Array(users.into_iter().map(user_json).collect()))
    })
}

/// One rewrite of REST responses: at paths matching `pattern`, the JSON
/// value at `pointer` in the body becomes `value`.
#[derive(Clone, Debug)]
pub(super) struct RestOverride {
    pattern: String,
    pointer: String,
    value: Value,
}

impl RestOverride {
    /// `pattern` matches `path` segment by segment; `*` or `{name}` matches
    /// any one segment.
    fn matches(&self, path: &str) -> bool {
        let mut want = self.pattern.split('/').filter(|s| !s.is_empty());
        let mut got = path.split('/').filter(|s| !s.is_empty());
        loop {
            match (want.next(), got.next()) {
                (None, None) => return true,
                (Some(w), Some(g)) => {
                    let any = w == "*" || (w.starts_with('{') && w.ends_with('}'));
                    if !any && w != g {
                        return false;
                    }
                }
                _ => return false,
            }
        }
    }

    /// Sets the value at the pointer; a missing last field is added to its
    /// object.
    fn apply(&self, body: &mut Value) {
        if let Some(slot) = body.pointer_mut(&self.pointer) {
            *slot = self.value.clone();
            return;
        }
        let Some((parent, last)) = self.pointer.rsplit_once('/') else {
            return;
        };
        let last = last.replace("~1", "/").replace("~0", "~");
        if let Some(Value::Object(map)) = body.pointer_mut(parent) {
            map.insert(last, self.value.clone());
        }
    }
}

/// The largest response body an override rewrites (a bigger one passes
/// unchanged).
const MAX_REWRITTEN: usize = 16 * 1024 * 1024;

/// Wraps `app` so that the REST responses at paths an override names are
/// rewritten; `app` itself when there is none.
pub(super) fn with_overrides(app: Router, overrides: Vec<RestOverride>) -> Router {
    if overrides.is_empty() {
        return app;
    }
    let overrides = Arc::new(overrides);
    app.layer(axum::middleware::from_fn(
        move |request: Request, next: Next| {
            let overrides = overrides.clone();
            async move {
                let path = request.uri().path().to_string();
                let response = next.run(request).await;
                let matching: Vec<&RestOverride> =
                    overrides.iter().filter(|o| o.matches(&path)).collect();
                if matching.is_empty() {
                    return response;
                }
                let (mut parts, body) = response.into_parts();
                let bytes = match axum::body::to_bytes(body, MAX_REWRITTEN).await {
                    Ok(b) => b,
                    Err(_) => {
                        return error(
                            StatusCode::INTERNAL_SERVER_ERROR,
                            "InternalError",
                            "The response was too large for the fake's rest_override.",
                        )
                    }
                };
                let Ok(mut json) = serde_json::from_slice::<Value>(&bytes) else {
                    return Response::from_parts(parts, Body::from(bytes));
                };
                for o in matching {
                    o.apply(&mut json);
                }
                parts.headers.remove(header::CONTENT_LENGTH);
                Response::from_parts(parts, Body::from(json.to_string()))
            }
        },
    ))
}

impl FakeServerBuilder {
    /// **Test only**: rewrites one field of the fake's REST responses, so
    /// that a test can make REST answer differently from SOAP on purpose
    /// (a migration harness must then report the difference). At every
    /// path matching `path_pattern` (segments; `*` or `{id}` matches any
    /// one), the value at `json_pointer` in the response body (envelope
    /// included: `/data/networkId`) becomes `value`; a missing last field
    /// is added. May be given several times; SOAP answers are untouched.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use ecgridos::fake::FakeServer;
    /// use ecgridos::RestClient;
    ///
    /// let server = FakeServer::builder()
    ///     .rest_override("/v2/auth/version", "/data/version", "9.9")
    ///     .start()
    ///     .await?;
    /// let rest = RestClient::builder().base_url(server.rest_url()).build()?;
    /// assert_eq!(rest.version().await?, "9.9");
    /// # Ok(()) }
    /// ```
    pub fn rest_override(
        mut self,
        path_pattern: impl Into<String>,
        json_pointer: impl Into<String>,
        value: impl Into<Value>,
    ) -> Self {
        self.rest_overrides.push(RestOverride {
            pattern: path_pattern.into(),
            pointer: json_pointer.into(),
            value: value.into(),
        });
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn o(pattern: &str, pointer: &str) -> RestOverride {
        RestOverride {
            pattern: pattern.into(),
            pointer: pointer.into(),
            value: json!(7),
        }
    }

    #[test]
    fn patterns_match_by_segment() {
        assert!(o("/v2/users/{id}", "").matches("/v2/users/1002"));
        assert!(o("/v2/users/*", "").matches("/v2/users/me"));
        assert!(!o("/v2/users/{id}", "").matches("/v2/users/key/1002"));
        assert!(!o("/v2/users", "").matches("/v2/users/1"));
        assert!(o("/v2/auth/version", "").matches("/v2/auth/version/"));
    }

    #[test]
    fn pointers_replace_or_add() {
        let mut body = json!({"data": {"a": 1}});
        o("", "/data/a").apply(&mut body);
        o("", "/data/b").apply(&mut body);
        o("", "/nothing/here").apply(&mut body);
        assert_eq!(body, json!({"data": {"a": 7, "b": 7}}));
        let mut list = json!({"data": [{"x": 1}]});
        o("", "/data/0/x").apply(&mut list);
        assert_eq!(list, json!({"data": [{"x": 7}]}));
    }
}
