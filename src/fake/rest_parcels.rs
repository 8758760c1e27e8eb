//! The fake's REST v2 parcel and mailbox routes, over the same mailbox state
//! as the SOAP parcel operations, plus the fake-only event log endpoint.
//!
//! Choices where the vendor's pages leave room (see the README's "The
//! fake's mailbox"): `pending-inbox-list` answers what is there to fetch
//! (ready, or downloaded and not confirmed: delivery is at least once), the
//! first page of it; `inbox-list` and `outbox-list` answer every inbound or
//! outbound parcel (confirmed ones too), filtered and paged by the body; a
//! repeated `confirm` succeeds and changes nothing.

use std::sync::Arc;
use std::time::SystemTime;

use axum::body::Bytes;
use axum::extract::{Path, State as AxumState};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};

use super::mailbox::{Filter, Listing, ParcelEvent, ParcelEventKind};
use super::rest::{credential, denied, error, method_not_allowed, ok};
use super::state::{seconds_to_system_time, unix_seconds, xsd_date_time, Denial, ParcelView};
use super::upload::Format;
use super::{BodyError, Shared};
use crate::api::enums::ParcelStatus;

/// The path of the upload route (its body may be as large as
/// `FakeServerBuilder::max_upload_bytes`).
pub(super) const UPLOAD_PATH: &str = "/v2/parcels/upload";

/// The path of the fake-only event log.
pub const EVENTS_PATH: &str = "/__fake/events";

/// The parcel and mailbox routes.
pub(super) fn router() -> Router<Arc<Shared>> {
    Router::new()
        .route(UPLOAD_PATH, post(upload).fallback(method_not_allowed))
        .route(
            "/v2/parcels/pending-inbox-list",
            post(pending_inbox_list).fallback(method_not_allowed),
        )
        .route(
            "/v2/parcels/inbox-list",
            post(inbox_list).fallback(method_not_allowed),
        )
        .route(
            "/v2/parcels/outbox-list",
            post(outbox_list).fallback(method_not_allowed),
        )
        .route(
            "/v2/parcels/download",
            post(download).fallback(method_not_allowed),
        )
        .route(
            "/v2/parcels/confirm",
            post(confirm).fallback(method_not_allowed),
        )
        .route("/v2/parcels/{id}", get(info).fallback(method_not_allowed))
        .route(
            "/v2/parcels/reset-to-inbox/{id}",
            post(reset_to_inbox).fallback(method_not_allowed),
        )
        .route(
            "/v2/parcels/cancel/{id}",
            post(cancel).fallback(method_not_allowed),
        )
        .route(
            "/v2/mailboxes/{id}",
            get(mailbox).fallback(method_not_allowed),
        )
        .route(EVENTS_PATH, get(events))
}

/// Counts the call, reads the credential and the JSON body, runs `action`.
fn call<B: DeserializeOwned>(
    shared: &Shared,
    name: &str,
    headers: &HeaderMap,
    body: &[u8],
    action: impl FnOnce(Option<&str>, B) -> Result<Value, Denial>,
) -> Response {
    shared.state.count(&format!("REST {name}"));
    let (cred, bearer) = credential(headers);
    let body: B = match serde_json::from_slice(if body.is_empty() { b"{}" } else { body }) {
        Ok(body) => body,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                "InvalidParameter",
                &format!("The request body is not the expected JSON: {e}"),
            )
        }
    };
    match action(cred.as_deref(), body) {
        Ok(data) => ok(data),
        Err(denial) => denied(&denial, bearer),
    }
}

/// The same for the routes that take the id in the path.
fn on_id(
    shared: &Shared,
    name: &str,
    headers: &HeaderMap,
    raw_id: &str,
    action: impl FnOnce(Option<&str>, i64) -> Result<Value, Denial>,
) -> Response {
    match raw_id.trim().parse::<i64>() {
        Ok(id) => call(shared, name, headers, b"{}", |cred, Empty {}| {
            action(cred, id)
        }),
        Err(_) => {
            shared.state.count(&format!("REST {name}"));
            error(
                StatusCode::BAD_REQUEST,
                "InvalidParameter",
                "The id in the path must be an integer.",
            )
        }
    }
}

#[derive(Deserialize)]
struct Empty {}

fn time(t: SystemTime) -> Value {
    json!(xsd_date_time(t))
}

/// A parcel as the REST pages show `ParcelIDInfo`: the mailbox and network
/// are the viewer's end.
pub(super) fn parcel_json(view: &ParcelView) -> Value {
    let p = &view.parcel;
    let end = if view.outbound { &view.from } else { &view.to };
    json!({
        "parcelId": p.id,
        "mailboxId": end.mailbox_id,
        "networkId": end.network_id,
        "fileName": p.file_name,
        "bytes": p.bytes.len(),
        "status": p.status.as_str(),
        "ecGridIdFrom": view.from.ecgrid_id,
        "ecGridIdTo": view.to.ecgrid_id,
        "created": time(p.created),
        "modified": time(p.status_date),
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct UploadBody {
    file_name: Option<String>,
    content: Option<String>,
    bytes: Option<u64>,
    ec_grid_id_from: Option<i32>,
    ec_grid_id_to: Option<i32>,
    mailbox_id: Option<i32>,
}

/// Decodes base64 `content`, ignoring whitespace.
pub(super) fn decode_content(content: &str, field: &str) -> Result<Bytes, Denial> {
    let clean: String = content
        .chars()
        .filter(|c| !c.is_ascii_whitespace())
        .collect();
    base64::Engine::decode(&base64::engine::general_purpose::STANDARD, clean)
        .map(Bytes::from)
        .map_err(|e| Denial::InvalidParameter(format!("{field} is not base64: {e}")))
}

async fn upload(
    AxumState(shared): AxumState<Arc<Shared>>,
    request: axum::extract::Request,
) -> Response {
    let headers = request.headers().clone();
    // The content is decoded as it arrives; the rest is read as usual.
    let (body, streamed) = match super::read_body(&shared, request, Format::Json).await {
        Ok(read) => read,
        Err(BodyError::Refused(response)) => return response,
        Err(BodyError::Invalid(why)) => {
            shared.state.count("REST upload");
            return error(StatusCode::BAD_REQUEST, "InvalidParameter", &why);
        }
    };
    call(&shared, "upload", &headers, &body, |cred, b: UploadBody| {
        let bytes = match streamed {
            Some(bytes) => bytes,
            None => decode_content(
                b.content
                    .as_deref()
                    .ok_or_else(|| Denial::InvalidParameter("content is missing".into()))?,
                "content",
            )?,
        };
        if let Some(declared) = b.bytes.filter(|n| *n != bytes.len() as u64) {
            return Err(Denial::InvalidParameter(format!(
                "bytes is {declared} but content holds {} bytes",
                bytes.len()
            )));
        }
        let explicit = b
            .ec_grid_id_to
            .filter(|to| *to != 0)
            .map(|to| (b.ec_grid_id_from.unwrap_or(0), to));
        let file_name = b.file_name.unwrap_or_default();
        let mailbox = b.mailbox_id.unwrap_or(0);
        shared
            .state
            .upload(cred, mailbox, &file_name, bytes, explicit)
            .map(|id| json!(id))
    })
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct ListBody {
    mailbox_id: Option<i32>,
    ec_grid_id_from: Option<i32>,
    ec_grid_id_to: Option<i32>,
    status: Option<String>,
    begin_date: Option<String>,
    end_date: Option<String>,
    page_no: Option<usize>,
    records_per_page: Option<usize>,
}

fn date(text: Option<&str>, field: &str, default: SystemTime) -> Result<SystemTime, Denial> {
    match text {
        None => Ok(default),
        Some(text) => text
            .parse::<crate::wire::DateTime>()
            .map(|t| seconds_to_system_time(unix_seconds(&t)))
            .map_err(|e| Denial::InvalidParameter(format!("{field} is not an ISO 8601 date: {e}"))),
    }
}

/// Answers a listing: `pending` is the first page of what is there to fetch;
/// otherwise every inbound (or `outbound`) parcel within the body's dates,
/// paged by the body.
fn list(
    shared: &Shared,
    name: &str,
    headers: &HeaderMap,
    body: &[u8],
    outbound: bool,
    pending: bool,
) -> Response {
    call(shared, name, headers, body, |cred, b: ListBody| {
        let filter = Filter {
            from: b.ec_grid_id_from.unwrap_or(0),
            to: b.ec_grid_id_to.unwrap_or(0),
            status: b
                .status
                .as_deref()
                .map(|s| s.parse::<ParcelStatus>().unwrap_or_else(|n| match n {})),
        };
        let begin = date(b.begin_date.as_deref(), "beginDate", SystemTime::UNIX_EPOCH)?;
        let end = date(
            b.end_date.as_deref(),
            "endDate",
            seconds_to_system_time(i64::from(i32::MAX) * 4),
        )?;
        let listing = match (pending, outbound) {
            (true, _) => Listing::InBox,
            (false, false) => Listing::InBoxArchive(begin, end),
            (false, true) => Listing::OutBoxArchive(begin, end),
        };
        let views = shared
            .state
            .list(cred, b.mailbox_id.unwrap_or(0), listing, &filter)?;
        let page_size = shared.state.page_size();
        let (page_no, per_page) = if pending {
            (1, page_size)
        } else {
            (
                b.page_no.unwrap_or(1),
                b.records_per_page
                    .filter(|n| *n > 0)
                    .unwrap_or(super::mailbox::DEFAULT_PAGE_SIZE),
            )
        };
        let page = super::mailbox::page(views, page_no, per_page);
        Ok(Value::Array(page.items.iter().map(parcel_json).collect()))
    })
}

async fn pending_inbox_list(
    AxumState(shared): AxumState<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    list(&shared, "pending-inbox-list", &headers, &body, false, true)
}

async fn inbox_list(
    AxumState(shared): AxumState<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    list(&shared, "inbox-list", &headers, &body, false, false)
}

async fn outbox_list(
    AxumState(shared): AxumState<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    list(&shared, "outbox-list", &headers, &body, true, false)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ParcelBody {
    parcel_id: i64,
}

async fn download(
    AxumState(shared): AxumState<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    // Rendered with a marker in place of the content, which is then streamed
    // from the stored bytes (see `download.rs`).
    let mut streamed = None;
    let marker = super::download::marker().1;
    let rendered = call(
        &shared,
        "download",
        &headers,
        &body,
        |cred, b: ParcelBody| {
            let view = shared.state.download(cred, b.parcel_id, false)?;
            let p = &view.parcel;
            let data = json!({
                "parcelId": p.id,
                "fileName": p.file_name,
                "content": marker,
                "bytes": p.bytes.len(),
            });
            streamed = Some(view.parcel.bytes);
            Ok(data)
        },
    );
    let Some(content) = streamed else {
        return rendered;
    };
    match axum::body::to_bytes(rendered.into_body(), 64 * 1024).await {
        Ok(rendered) => {
            super::download::base64_body(rendered.to_vec(), &marker, content, "application/json")
        }
        Err(_) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalError",
            "The download answer could not be rendered.",
        ),
    }
}

async fn confirm(
    AxumState(shared): AxumState<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    // A repeated confirm succeeds and changes nothing, as the REST pages say.
    call(
        &shared,
        "confirm",
        &headers,
        &body,
        |cred, b: ParcelBody| shared.state.confirm(cred, b.parcel_id).map(|_| json!(true)),
    )
}

async fn info(
    AxumState(shared): AxumState<Arc<Shared>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    on_id(&shared, "parcel", &headers, &id, |cred, id| {
        shared.state.parcel_info(cred, id).map(|v| parcel_json(&v))
    })
}

async fn reset_to_inbox(
    AxumState(shared): AxumState<Arc<Shared>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    on_id(&shared, "reset-to-inbox", &headers, &id, |cred, id| {
        shared
            .state
            .reset_parcel(cred, id)
            .map(|changed| json!(changed))
    })
}

async fn cancel(
    AxumState(shared): AxumState<Arc<Shared>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    on_id(&shared, "cancel", &headers, &id, |cred, id| {
        shared
            .state
            .cancel_parcel(cred, id, true)
            .map(|changed| json!(changed))
    })
}

async fn mailbox(
    AxumState(shared): AxumState<Arc<Shared>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    on_id(&shared, "mailbox", &headers, &id, |cred, id| {
        let id = i32::try_from(id).map_err(|_| Denial::NotFound("No such mailbox."))?;
        let (m, n) = shared.state.mailbox_info(cred, id)?;
        Ok(json!({
            "mailboxId": m.id,
            "networkId": m.network_id,
            "uniqueId": m.name,
            "companyName": format!("{} ({})", m.name, n.name),
            "status": "Active",
            "created": time(m.created),
            "modified": time(m.created),
        }))
    })
}

/// One event as the events endpoint writes it.
pub(super) fn event_json(e: &ParcelEvent) -> Value {
    let no_update = match e.kind {
        ParcelEventKind::Downloaded { no_update } => Some(no_update),
        _ => None,
    };
    json!({
        "seq": e.seq,
        "parcelId": e.parcel_id,
        "kind": e.kind.as_str(),
        "noUpdate": no_update,
        "at": time(e.at),
        "atUnixNanos": e
            .at
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
            .unwrap_or(0),
    })
}

/// `GET /__fake/events[?parcelId=N][&since=SEQ]`: the fake's parcel event
/// log (of one parcel; after sequence number `since`), for tests of a
/// separate `serve-mock` process. Each event: `seq`, `parcelId`, `kind`,
/// `noUpdate` (downloads), `at` and `atUnixNanos`. Fake-only: the real
/// service has nothing like it. Needs no credential.
async fn events(AxumState(shared): AxumState<Arc<Shared>>, uri: axum::http::Uri) -> Response {
    let query = |name: &str| {
        uri.query().and_then(|q| {
            q.split('&')
                .filter_map(|kv| kv.split_once('='))
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .and_then(|(_, v)| v.parse::<i64>().ok())
        })
    };
    let since = query("since").unwrap_or(0);
    let log = shared.state.events(query("parcelId"));
    ok(Value::Array(
        log.iter()
            .filter(|e| i64::try_from(e.seq).unwrap_or(i64::MAX) > since)
            .map(event_json)
            .collect(),
    ))
}
