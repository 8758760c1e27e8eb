//! The fake's REST v2 endpoints, over the same state as its SOAP endpoint.

use std::sync::Arc;

use axum::extract::{Path, State as AxumState};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::state::{Denial, State};
use super::Shared;

pub(super) fn ok(data: Value) -> Response {
    Json(json!({ "success": true, "data": data, "errorCode": "", "message": "" })).into_response()
}

pub(super) fn error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        Json(json!({ "success": false, "errorCode": code, "message": message, "data": null })),
    )
        .into_response()
}

/// The credential a REST call carries, and whether it came as a bearer token.
pub(super) fn credential(headers: &HeaderMap) -> (Option<String>, bool) {
    if let Some(key) = headers.get("X-API-Key").and_then(|v| v.to_str().ok()) {
        return (Some(key.trim().to_string()), false);
    }
    let bearer = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|t| t.trim().to_string());
    let is_bearer = bearer.is_some();
    (bearer, is_bearer)
}

pub(super) fn denied(denial: &Denial, bearer: bool) -> Response {
    match denial {
        Denial::Authentication(m) if bearer => error(StatusCode::UNAUTHORIZED, "InvalidSession", m),
        Denial::Authentication(m) => error(StatusCode::UNAUTHORIZED, "InvalidAPIKey", m),
        Denial::Authorization(m) => error(StatusCode::FORBIDDEN, "AccessDenied", m),
        Denial::NotFound(m) => error(StatusCode::NOT_FOUND, "ObjectNotFound", m),
        Denial::InvalidParameter(m) => error(StatusCode::BAD_REQUEST, "InvalidParameter", m),
    }
}

pub(super) fn respond<T>(
    result: Result<T, Denial>,
    bearer: bool,
    data: impl FnOnce(T) -> Value,
) -> Response {
    match result {
        Ok(value) => ok(data(value)),
        Err(denial) => denied(&denial, bearer),
    }
}

/// The shared shape of the `/v2/users/…/{id}` endpoints: count, authenticate,
/// parse the id, act on the state.
fn on_user<T>(
    shared: &Shared,
    name: &str,
    headers: &HeaderMap,
    raw_id: &str,
    action: impl FnOnce(&State, Option<&str>, i32) -> Result<T, Denial>,
    data: impl FnOnce(T) -> Value,
) -> Response {
    shared.state.count(name);
    let (cred, bearer) = credential(headers);
    match raw_id.trim().parse::<i32>() {
        Ok(id) => respond(action(&shared.state, cred.as_deref(), id), bearer, data),
        Err(_) => error(
            StatusCode::BAD_REQUEST,
            "InvalidParameter",
            "The user id must be an integer.",
        ),
    }
}

/// `POST /v2/users/key-generate/{id}`.
pub(super) async fn key_generate(
    AxumState(shared): AxumState<Arc<Shared>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    on_user(
        &shared,
        "REST key-generate",
        &headers,
        &id,
        State::generate_key,
        |k| json!(k.expose()),
    )
}

/// `GET /v2/users/key/{id}`.
pub(super) async fn key_read(
    AxumState(shared): AxumState<Arc<Shared>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    on_user(&shared, "REST key", &headers, &id, State::get_key, |k| {
        json!(k.expose())
    })
}

/// `POST /v2/users/reset/{id}`.
pub(super) async fn reset(
    AxumState(shared): AxumState<Arc<Shared>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    on_user(
        &shared,
        "REST reset",
        &headers,
        &id,
        State::reset_sessions,
        |b| json!(b),
    )
}

fn session_json(info: crate::wire::SessionInfo) -> Value {
    json!({
        "userId": info.user_id,
        "login": info.login_name,
        "networkId": info.network_id,
        "mailboxId": info.mailbox_id,
        "authLevel": info.auth_level.map(|l| l.as_str().to_string()),
        "email": info.email,
    })
}

/// `GET /v2/users/me` and `POST /v2/auth/session`.
pub(super) async fn me(AxumState(shared): AxumState<Arc<Shared>>, headers: HeaderMap) -> Response {
    shared.state.count("REST me");
    let (cred, bearer) = credential(&headers);
    respond(
        shared.state.who_am_i(cred.as_deref(), ""),
        bearer,
        session_json,
    )
}

#[derive(Deserialize)]
pub(super) struct LoginBody {
    login: String,
    password: String,
}

/// `POST /v2/auth/login`.
pub(super) async fn login(
    AxumState(shared): AxumState<Arc<Shared>>,
    body: Option<Json<LoginBody>>,
) -> Response {
    shared.state.count("REST login");
    let Some(Json(body)) = body else {
        return error(
            StatusCode::BAD_REQUEST,
            "InvalidParameter",
            "Expected a JSON body with login and password.",
        );
    };
    match shared.state.login(Some(&body.login), Some(&body.password)) {
        Ok(session) => {
            let user_id = shared
                .state
                .who_am_i(Some(session.expose()), "")
                .map(|i| i.user_id)
                .unwrap_or(0);
            ok(json!({ "token": session.expose(), "userId": user_id, "expiresAt": null }))
        }
        Err(denial) => denied(&denial, true),
    }
}

/// `POST /v2/auth/logout`.
pub(super) async fn logout(
    AxumState(shared): AxumState<Arc<Shared>>,
    headers: HeaderMap,
) -> Response {
    shared.state.count("REST logout");
    let (cred, _) = credential(&headers);
    ok(json!(shared.state.logout(cred.as_deref())))
}

/// `GET /v2/auth/version`.
pub(super) async fn version(AxumState(shared): AxumState<Arc<Shared>>) -> Response {
    shared.state.count("REST version");
    ok(json!({ "version": "2.6" }))
}

/// Any other path.
pub(super) async fn not_found() -> Response {
    error(StatusCode::NOT_FOUND, "ObjectNotFound", "No such endpoint.")
}

/// Wrong method on a known path (e.g. `GET` on key-generate, as one vendor
/// sample wrongly does).
pub(super) async fn method_not_allowed() -> Response {
    error(
        StatusCode::METHOD_NOT_ALLOWED,
        "InvalidParameter",
        "Method not allowed on this endpoint.",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credential_sources() {
        let mut h = HeaderMap::new();
        assert_eq!(credential(&h), (None, false));
        h.insert("authorization", "Bearer tok".parse().unwrap());
        assert_eq!(credential(&h), (Some("tok".into()), true));
        h.insert("x-api-key", "key".parse().unwrap());
        assert_eq!(credential(&h), (Some("key".into()), false));
    }
}
