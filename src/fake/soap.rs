//! The fake's asmx-shaped SOAP endpoint. It reads requests and writes replies
//! with the crate's own codec, and answers malformed input the way an ASP.NET
//! asmx service does: HTTP 500 with a `soap:Client` fault and no ECGridOS detail.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, State as AxumState};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use std::time::SystemTime;

use super::mailbox::{Filter, Listing, Mailbox, Network, Parcel};
use super::state::{seconds_to_system_time, unix_seconds, xsd_date_time, Denial, ParcelView};
use super::upload::Format;
use super::{BodyError, DetailShape, Shared};
use crate::api::enums::{Direction, EdiStandard, ParcelStatus, ParcelValid, Status, UseType};
use crate::api::mailbox::MailboxInfo;
use crate::api::parcel;
use crate::api::types::{FileInfo, MailboxIdInfo, ParcelIdInfo, ParcelIdInfoCollection};
use crate::api::{Params, Request};
use crate::operations::{
    self, GenerateApiKey, Login, Logout, Operation, UserGetApiKey, Version, WhoAmI,
};
use crate::wire::{
    self, read_request, write_fault, write_response, EcgridDetail, FaultCategory, FaultCode,
    IntFlag, ResultValue, SoapFault, SoapRequest, SoapVersion,
};
use crate::wire::{Base64, DateTime};

pub(super) fn reply(version: SoapVersion, status: StatusCode, body: Vec<u8>) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, version.response_content_type())],
        body,
    )
        .into_response()
}

pub(super) fn fault_response(version: SoapVersion, fault: SoapFault) -> Response {
    let mut body = Vec::with_capacity(512);
    write_fault(&mut body, version, &fault);
    reply(version, StatusCode::INTERNAL_SERVER_ERROR, body)
}

/// A fault raised by the framework itself, before any ECGridOS code ran.
pub(super) fn framework_fault(version: SoapVersion, code: FaultCode, message: String) -> Response {
    fault_response(
        version,
        SoapFault {
            version,
            code,
            message,
            actor: None,
            detail: None,
        },
    )
}

fn denial_fault(version: SoapVersion, shape: DetailShape, denial: &Denial, item: &str) -> Response {
    let (category, number) = match denial {
        Denial::Authentication(_) => (FaultCategory::Authentication, "1"),
        Denial::Authorization(_) => (FaultCategory::Authorization, "2"),
        Denial::NotFound(_) => (FaultCategory::ObjectNotFound, "3"),
        Denial::InvalidParameter(_) => (FaultCategory::InvalidParameter, "4"),
    };
    // The older shape names the parameter at fault: the credential for an
    // authentication failure, the target user otherwise.
    let item = if matches!(denial, Denial::Authentication(_)) {
        "SessionID"
    } else {
        item
    };
    let legacy = matches!(shape, DetailShape::Legacy | DetailShape::Both);
    let newer = matches!(shape, DetailShape::Category | DetailShape::Both);
    let detail = EcgridDetail {
        error_code: legacy.then(|| number.to_string()),
        error_string: legacy.then(|| category.as_str().to_string()),
        error_item: legacy.then(|| item.to_string()),
        error_message: legacy.then(|| denial.message().to_string()),
        category: newer.then_some(category),
    };
    fault_response(
        version,
        SoapFault {
            version,
            code: FaultCode::Client,
            message: denial.message().to_string(),
            actor: None,
            detail: Some(detail),
        },
    )
}

fn success<T: ResultValue>(
    version: SoapVersion,
    namespace: &str,
    operation: &str,
    value: &T,
) -> Response {
    let mut body = Vec::with_capacity(512);
    write_response(&mut body, version, namespace, operation, |w| value.write(w));
    reply(version, StatusCode::OK, body)
}

/// The SOAP version a content type announces, and the `action` parameter of a
/// SOAP 1.2 content type.
fn version_of(headers: &HeaderMap) -> Option<(SoapVersion, Option<String>)> {
    let content_type = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    let mut parts = content_type.split(';').map(str::trim);
    let media = parts.next()?.to_ascii_lowercase();
    let action = parts
        .filter_map(|p| p.split_once('='))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("action"))
        .map(|(_, v)| v.trim().trim_matches('"').to_string());
    match media.as_str() {
        "text/xml" => Some((SoapVersion::V11, None)),
        "application/soap+xml" => Some((SoapVersion::V12, action)),
        _ => None,
    }
}

/// `UserID` bound the way .NET binds an `int`: absent is 0, anything that is
/// not an integer in range is a request-reading failure.
fn int_param(request: &SoapRequest, name: &str) -> Result<i32, String> {
    match request.param(name) {
        None => Ok(0),
        Some(text) => text
            .trim()
            .parse::<i32>()
            .map_err(|_| format!("Server was unable to read request. ---> Input string for {name} was not in a correct format.")),
    }
}

/// POST handler of the asmx path.
pub(super) async fn handle(
    AxumState(shared): AxumState<Arc<Shared>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: axum::extract::Request,
) -> Response {
    shared.state.count("soap");
    let headers = request.headers().clone();
    let Some((version, v12_action)) = version_of(&headers) else {
        return (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "The content type of a SOAP request must be text/xml or application/soap+xml.",
        )
            .into_response();
    };
    let (body, content) = match super::read_body(&shared, request, Format::Xml).await {
        Ok(read) => read,
        Err(BodyError::Refused(response)) => return response,
        Err(BodyError::Invalid(why)) => {
            return framework_fault(
                version,
                FaultCode::Client,
                format!("Server was unable to read request. ---> {why}"),
            )
        }
    };
    let namespace = shared.namespace.as_str();
    let request = match read_request(&body, namespace, 64) {
        Ok(request) => request,
        Err(e) => {
            return framework_fault(
                version,
                FaultCode::Client,
                format!("Server was unable to read request. ---> {e}"),
            )
        }
    };
    if request.version != version {
        return framework_fault(
            version,
            FaultCode::VersionMismatch,
            "The envelope's SOAP version does not match the content type.".to_string(),
        );
    }
    let action = match version {
        SoapVersion::V11 => headers
            .get("SOAPAction")
            .and_then(|v| v.to_str().ok())
            .map(|v| v.trim().trim_matches('"').to_string()),
        SoapVersion::V12 => v12_action,
    };
    let named = match action.as_deref() {
        Some(action) => crate::api::OPERATIONS
            .iter()
            .find(|e| wire::soap_action(namespace, e.info.name) == action),
        None => crate::api::request::find(&request.operation),
    };
    if let Some(name) = named
        .map(|e| e.info.name)
        .filter(|n| is_mailbox_operation(n) && !shared.stubs.contains(n))
    {
        if request.operation != name || !request.operation_qualified {
            return framework_fault(
                version,
                FaultCode::Client,
                format!(
                    "Server was unable to read request. ---> <{}> was not expected by {name}.",
                    request.operation
                ),
            );
        }
        shared.state.count(name);
        if let Some(response) = answer_mailbox(&shared, version, name, &request, content) {
            return response;
        }
    }
    if let Some(response) = super::stubs::answer(
        &shared.stubs,
        &shared.state,
        version,
        namespace,
        action.as_deref(),
        &request,
    ) {
        return response;
    }
    let by_action = action.as_deref().map(|action| {
        operations::CATALOG
            .iter()
            .find(|spec| wire::soap_action(namespace, spec.name) == action)
    });
    let spec = match (version, by_action) {
        (_, Some(Some(spec))) => spec,
        // SOAP 1.2 may leave the action out; the body element decides then.
        (SoapVersion::V12, None) => match operations::find(&request.operation) {
            Some(spec) => spec,
            None => {
                return framework_fault(
                    version,
                    FaultCode::Client,
                    format!(
                        "Server did not recognize the request element {}.",
                        request.operation
                    ),
                )
            }
        },
        (_, _) => {
            return framework_fault(
                version,
                FaultCode::Client,
                format!(
                    "Server did not recognize the value of HTTP Header SOAPAction: {}.",
                    action.unwrap_or_default()
                ),
            )
        }
    };
    if request.operation != spec.name || !request.operation_qualified {
        return framework_fault(
            version,
            FaultCode::Client,
            format!(
                "Server was unable to read request. ---> <{} xmlns='{}'> was not expected by {}.",
                request.operation,
                if request.operation_qualified {
                    namespace
                } else {
                    ""
                },
                spec.name
            ),
        );
    }
    shared.state.count(spec.name);
    let state = &shared.state;
    let shape = shared.detail_shape;
    let session = request.param("SessionID");
    macro_rules! answer {
        ($op:ty, $result:expr, $item:expr) => {
            match $result {
                Ok(value) => success(version, namespace, <$op as Operation>::SPEC.name, &value),
                Err(denial) => denial_fault(version, shape, &denial, $item),
            }
        };
    }
    match spec.name {
        n if n == GenerateApiKey::SPEC.name || n == UserGetApiKey::SPEC.name => {
            let user_id = match int_param(&request, "UserID") {
                Ok(id) => id,
                Err(message) => return framework_fault(version, FaultCode::Client, message),
            };
            if n == GenerateApiKey::SPEC.name {
                answer!(
                    GenerateApiKey,
                    state.generate_key(session, user_id),
                    "UserID"
                )
            } else {
                answer!(UserGetApiKey, state.get_key(session, user_id), "UserID")
            }
        }
        n if n == Login::SPEC.name => answer!(
            Login,
            state.login(request.param("LoginName"), request.param("Password")),
            "LoginName"
        ),
        n if n == Logout::SPEC.name => {
            success(version, namespace, n, &IntFlag(state.logout(session)))
        }
        n if n == WhoAmI::SPEC.name => answer!(
            WhoAmI,
            state.who_am_i(session, &peer.ip().to_string()),
            "SessionID"
        ),
        n if n == Version::SPEC.name => success(version, namespace, n, &"4.1".to_string()),
        other => framework_fault(
            version,
            FaultCode::Server,
            format!("Operation {other} is declared but the fake does not implement it."),
        ),
    }
}

/// GET handler of the asmx path: `?WSDL` serves the WSDL with this server's
/// address in it.
pub(super) async fn wsdl(
    AxumState(shared): AxumState<Arc<Shared>>,
    uri: axum::http::Uri,
) -> Response {
    let wants_wsdl = uri.query().is_some_and(|q| q.eq_ignore_ascii_case("wsdl"));
    if !wants_wsdl {
        return (
            StatusCode::NOT_FOUND,
            "Add ?WSDL for the service description.",
        )
            .into_response();
    }
    let text = super::WSDL
        .replace(wire::DEFAULT_ENDPOINT, &shared.soap_url)
        .replace(wire::DEFAULT_NAMESPACE, &shared.namespace);
    ([(header::CONTENT_TYPE, "text/xml; charset=utf-8")], text).into_response()
}

/// How one request is answered: its version, namespace and fault shape.
#[derive(Clone, Copy)]
struct Ctx<'a> {
    version: SoapVersion,
    namespace: &'a str,
    shape: DetailShape,
}

impl Ctx<'_> {
    /// A download: the `FileInfo` answer, its content streamed from the
    /// stored bytes (see `download.rs`).
    fn download<R: Request<Output = Option<FileInfo>>>(
        &self,
        state: &super::state::State,
        params: &Params,
        parcel_id: impl FnOnce(&R) -> i64,
        no_update: bool,
        as_string: bool,
    ) -> Response {
        let request = match R::from_params(params) {
            Ok(request) => request,
            Err(e) => {
                return framework_fault(
                    self.version,
                    FaultCode::Client,
                    format!("Server was unable to read request. ---> {e}"),
                )
            }
        };
        let view = match state.download(params.get("SessionID"), parcel_id(&request), no_update) {
            Ok(view) => view,
            Err(denial) => return denial_fault(self.version, self.shape, &denial, "ParcelID"),
        };
        let marker = super::download::marker();
        let text = marker.1.clone();
        let info = Some(file_info(&view, as_string, marker));
        let mut body = Vec::with_capacity(1024);
        write_response(&mut body, self.version, self.namespace, R::SPEC.name, |w| {
            ResultValue::write(&info, w)
        });
        super::download::base64_body(
            body,
            &text,
            view.parcel.bytes,
            self.version.response_content_type(),
        )
    }

    /// Decodes `params` into `R`, runs `f` with it and the credential, and
    /// answers with the generated result type or the denial as a fault
    /// naming `item`.
    fn typed<R: Request>(
        &self,
        params: &Params,
        item: &str,
        f: impl FnOnce(R, Option<&str>) -> Result<R::Output, Denial>,
    ) -> Response {
        let request = match R::from_params(params) {
            Ok(request) => request,
            Err(e) => {
                return framework_fault(
                    self.version,
                    FaultCode::Client,
                    format!("Server was unable to read request. ---> {e}"),
                )
            }
        };
        let credential = params.get("SessionID");
        match f(request, credential) {
            Ok(output) => super::stubs::success::<R>(self.version, self.namespace, &output),
            Err(denial) => denial_fault(self.version, self.shape, &denial, item),
        }
    }
}

/// The parcel and mailbox operations the fake models from its mailbox.
const MAILBOX_OPERATIONS: &[&str] = &[
    parcel::ParcelUpload::INFO.name,
    parcel::ParcelUploadA::INFO.name,
    parcel::ParcelUploadEx::INFO.name,
    parcel::ParcelUploadExA::INFO.name,
    parcel::ParcelUploadMft::INFO.name,
    parcel::ParcelUploadMftA::INFO.name,
    parcel::ParcelInBox::INFO.name,
    parcel::ParcelInBoxEx::INFO.name,
    parcel::ParcelInBoxExShort::INFO.name,
    parcel::ParcelInBoxArchive::INFO.name,
    parcel::ParcelInBoxArchiveEx::INFO.name,
    parcel::ParcelOutBoxInProcess::INFO.name,
    parcel::ParcelOutBoxInProcessEx::INFO.name,
    parcel::ParcelOutBoxArchive::INFO.name,
    parcel::ParcelOutBoxArchiveEx::INFO.name,
    parcel::ParcelDownload::INFO.name,
    parcel::ParcelDownloadA::INFO.name,
    parcel::ParcelDownloadNoUpdate::INFO.name,
    parcel::ParcelDownloadNoUpdateA::INFO.name,
    parcel::ParcelDownloadConfirm::INFO.name,
    parcel::ParcelDownloadReset::INFO.name,
    parcel::ParcelDownloadCancel::INFO.name,
    parcel::ParcelInfo::INFO.name,
    MailboxInfo::INFO.name,
];

/// Whether the operation is one the fake answers from its mailbox model.
pub(super) fn is_mailbox_operation(name: &str) -> bool {
    MAILBOX_OPERATIONS.contains(&name)
}

/// The SOAPAction names a parcel upload: those requests may carry large
/// bodies.
pub(super) fn is_upload_action(namespace: &str, action: &str) -> bool {
    [
        parcel::ParcelUpload::INFO.name,
        parcel::ParcelUploadA::INFO.name,
        parcel::ParcelUploadEx::INFO.name,
        parcel::ParcelUploadExA::INFO.name,
        parcel::ParcelUploadMft::INFO.name,
        parcel::ParcelUploadMftA::INFO.name,
    ]
    .iter()
    .any(|op| wire::soap_action(namespace, op) == action)
}

fn dt(t: SystemTime) -> DateTime {
    xsd_date_time(t).parse().unwrap_or_default()
}

fn system_time(t: &DateTime) -> SystemTime {
    seconds_to_system_time(unix_seconds(t))
}

fn clamp_i32(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

fn clamp_i16(n: usize) -> i16 {
    i16::try_from(n).unwrap_or(i16::MAX)
}

/// A parcel as the contract's `ParcelIDInfo`.
pub(super) fn parcel_id_info(view: &ParcelView) -> ParcelIdInfo {
    let p = &view.parcel;
    let size = clamp_i32(p.bytes.len());
    ParcelIdInfo {
        parcel_bytes: size,
        parcel_date: dt(p.created),
        actual_bytes: size,
        network_id_from: view.from.network_id,
        network_name_from: Some(view.from_names.1.clone()),
        mailbox_id_from: view.from.mailbox_id,
        mailbox_name_from: Some(view.from_names.0.clone()),
        network_id_to: view.to.network_id,
        network_name_to: Some(view.to_names.1.clone()),
        mailbox_id_to: view.to.mailbox_id,
        mailbox_name_to: Some(view.to_names.0.clone()),
        file_name: Some(p.file_name.clone()),
        mailbag_control_id: None,
        archive_date: if p.confirmed {
            dt(p.status_date)
        } else {
            DateTime::default()
        },
        status_date: dt(p.status_date),
        status_code: Some(p.status.as_str().to_string()),
        status_message: Some(status_message(&view.parcel).to_string()),
        local_status: 0,
        local_status_date: DateTime::default(),
        valid: ParcelValid::Valid,
        acknowledgment: None,
        direction: if view.outbound {
            Direction::OutBox
        } else {
            Direction::InBox
        },
        interchanges: None,
        log: None,
        parcel_id: p.id,
    }
}

/// The fake's words for a parcel's state.
pub(super) fn status_message(p: &Parcel) -> &'static str {
    match (p.cancelled, p.confirmed, &p.status) {
        (true, _, _) => "cancelled",
        (_, true, _) => "confirmed",
        (_, _, ParcelStatus::InBoxTransferred) => "downloaded, not confirmed",
        _ => "ready",
    }
}

/// The first page (or page `page_no`) of a listing as a collection.
fn collection(views: Vec<ParcelView>, page_no: usize, page_size: usize) -> ParcelIdInfoCollection {
    let page = super::mailbox::page(views, page_no, page_size);
    ParcelIdInfoCollection {
        page_size: clamp_i16(page.page_size),
        page_number: clamp_i16(page.page_number),
        count: clamp_i32(page.items.len()),
        total_records: clamp_i32(page.total_records),
        total_pages: clamp_i16(page.total_pages),
        parcel_id_info_list: Some(
            page.items
                .iter()
                .map(parcel_id_info)
                .collect::<Vec<_>>()
                .into(),
        ),
    }
}

/// The EDI standard of a file, from its first segment.
pub(super) fn standard(bytes: &[u8]) -> EdiStandard {
    let start = bytes
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(0);
    let head = &bytes[start..];
    if head.starts_with(b"ISA") {
        EdiStandard::X12
    } else if head.starts_with(b"UNA") || head.starts_with(b"UNB") {
        EdiStandard::Edifact
    } else if head.starts_with(b"<") {
        EdiStandard::Xml
    } else {
        EdiStandard::Binary
    }
}

/// A downloaded parcel as `FileInfo`, its content replaced by the marker
/// (in `Content` or, for the `A` forms, `ContentBase64String`).
fn file_info(view: &ParcelView, as_string: bool, marker: (Vec<u8>, String)) -> FileInfo {
    let p = &view.parcel;
    let (bytes, text) = marker;
    FileInfo {
        parcel_id: p.id,
        file_name: Some(p.file_name.clone()),
        file_date: dt(p.created),
        bytes: clamp_i32(p.bytes.len()),
        standard: standard(&p.bytes),
        content: (!as_string).then_some(Base64(bytes)),
        content_base64_string: as_string.then_some(text),
        router_archive: false,
    }
}

fn window(begin: &DateTime, end: &DateTime) -> (SystemTime, SystemTime) {
    (system_time(begin), system_time(end))
}

/// An upload's `Content`: the streamed bytes, or the parameter's.
fn binary(streamed: &Option<Bytes>, param: Option<Base64>) -> Bytes {
    match streamed {
        Some(bytes) => bytes.clone(),
        None => Bytes::from(param.unwrap_or_default().0),
    }
}

/// An upload's `ContentBase64`: the streamed bytes, or the parameter's text
/// decoded.
fn text(streamed: &Option<Bytes>, param: Option<String>) -> Result<Bytes, Denial> {
    match streamed {
        Some(bytes) => Ok(bytes.clone()),
        None => super::rest_parcels::decode_content(&param.unwrap_or_default(), "ContentBase64"),
    }
}

/// Answers a parcel or mailbox operation from the mailbox model; `None` for
/// any other operation.
///
/// `streamed` is an upload's content, decoded as it arrived (its element is
/// empty in `request`).
pub(super) fn answer_mailbox(
    shared: &Shared,
    version: SoapVersion,
    name: &str,
    request: &SoapRequest,
    streamed: Option<Bytes>,
) -> Option<Response> {
    if !is_mailbox_operation(name) {
        return None;
    }
    let state = &shared.state;
    let ctx = Ctx {
        version,
        namespace: &shared.namespace,
        shape: shared.detail_shape,
    };
    let mut params = Params::new();
    for p in request.params.iter().filter(|p| p.qualified) {
        params.set(p.name.clone(), p.value.clone());
    }
    let page_size = state.page_size();
    let any = Filter::default();
    let first_page = |views: Vec<ParcelView>| Some(collection(views, 1, page_size));
    let paged = |views: Vec<ParcelView>, page_no: i16, per_page: i16| {
        let per_page = usize::try_from(per_page)
            .ok()
            .filter(|n| *n > 0)
            .unwrap_or(page_size);
        Some(collection(
            views,
            usize::try_from(page_no).unwrap_or(1),
            per_page,
        ))
    };
    // An upload from `mailbox` (0: the caller's), routed by `ids` or by its
    // envelope.
    // `declared` is the `Bytes` parameter of the binary forms: it must match
    // the content, or nothing is stored.
    let upload = |c: Option<&str>,
                  mailbox: i32,
                  file: Option<String>,
                  (bytes, declared): (Bytes, Option<i32>),
                  ids| {
        if let Some(declared) = declared.filter(|d| usize::try_from(*d).ok() != Some(bytes.len())) {
            return Err(Denial::InvalidParameter(format!(
                "Bytes is {declared} but Content holds {} bytes",
                bytes.len()
            )));
        }
        state
            .upload(c, mailbox, &file.unwrap_or_default(), bytes, ids)
            .map(clamp_parcel_id)
    };
    // An archive listing of `mailbox`: inbound or outbound, within the
    // dates, filtered by ECGrid IDs, paged as asked.
    let archive = |c: Option<&str>,
                   mailbox: i32,
                   outbound: bool,
                   (begin, end): (&DateTime, &DateTime),
                   (from, to): (i32, i32),
                   (page_no, per_page): (i16, i16)| {
        let (b, e) = window(begin, end);
        let listing = if outbound {
            Listing::OutBoxArchive(b, e)
        } else {
            Listing::InBoxArchive(b, e)
        };
        let filter = Filter {
            from,
            to,
            status: None,
        };
        state
            .list(c, mailbox, listing, &filter)
            .map(|v| paged(v, page_no, per_page))
    };
    let response = match name {
        n if n == parcel::ParcelUpload::INFO.name => {
            ctx.typed(&params, "Content", |r: parcel::ParcelUpload, c| {
                upload(
                    c,
                    0,
                    r.file_name,
                    (binary(&streamed, r.content), Some(r.bytes)),
                    None,
                )
            })
        }
        n if n == parcel::ParcelUploadA::INFO.name => {
            ctx.typed(&params, "ContentBase64", |r: parcel::ParcelUploadA, c| {
                upload(
                    c,
                    0,
                    r.file_name,
                    (text(&streamed, r.content_base64)?, None),
                    None,
                )
            })
        }
        n if n == parcel::ParcelUploadEx::INFO.name => {
            ctx.typed(&params, "Content", |r: parcel::ParcelUploadEx, c| {
                let bytes = binary(&streamed, r.content);
                upload(c, r.mailbox_id, r.file_name, (bytes, Some(r.bytes)), None)
            })
        }
        n if n == parcel::ParcelUploadExA::INFO.name => {
            ctx.typed(&params, "ContentBase64", |r: parcel::ParcelUploadExA, c| {
                let bytes = text(&streamed, r.content_base64)?;
                upload(c, r.mailbox_id, r.file_name, (bytes, None), None)
            })
        }
        n if n == parcel::ParcelUploadMft::INFO.name => {
            ctx.typed(&params, "ECGridIDTo", |r: parcel::ParcelUploadMft, c| {
                let ids = Some((r.ec_grid_id_from, r.ec_grid_id_to));
                upload(
                    c,
                    0,
                    r.file_name,
                    (binary(&streamed, r.content), Some(r.bytes)),
                    ids,
                )
            })
        }
        n if n == parcel::ParcelUploadMftA::INFO.name => {
            ctx.typed(&params, "ECGridIDTo", |r: parcel::ParcelUploadMftA, c| {
                let ids = Some((r.ec_grid_id_from, r.ec_grid_id_to));
                upload(
                    c,
                    0,
                    r.file_name,
                    (text(&streamed, r.content_base64)?, None),
                    ids,
                )
            })
        }
        n if n == parcel::ParcelInBox::INFO.name => {
            ctx.typed(&params, "SessionID", |_: parcel::ParcelInBox, c| {
                state.list(c, 0, Listing::InBox, &any).map(first_page)
            })
        }
        n if n == parcel::ParcelInBoxEx::INFO.name => {
            ctx.typed(&params, "MailboxID", |r: parcel::ParcelInBoxEx, c| {
                let filter = Filter {
                    from: r.ec_grid_id_from,
                    to: r.ec_grid_id_to,
                    status: None,
                };
                state
                    .list(c, r.mailbox_id, Listing::InBox, &filter)
                    .map(first_page)
            })
        }
        n if n == parcel::ParcelInBoxExShort::INFO.name => {
            ctx.typed(&params, "MailboxID", |r: parcel::ParcelInBoxExShort, c| {
                let filter = Filter {
                    from: r.ec_grid_id_from,
                    to: r.ec_grid_id_to,
                    status: Some(r.status),
                };
                state
                    .list(c, r.mailbox_id, Listing::InBox, &filter)
                    .map(first_page)
            })
        }
        n if n == parcel::ParcelInBoxArchive::INFO.name => {
            ctx.typed(&params, "BeginDate", |r: parcel::ParcelInBoxArchive, c| {
                let span = (&r.begin_date, &r.end_date);
                let ids = (r.ec_grid_id_from, r.ec_grid_id_to);
                let page = (r.page_no, r.records_per_page);
                archive(c, 0, false, span, ids, page)
            })
        }
        n if n == parcel::ParcelInBoxArchiveEx::INFO.name => ctx.typed(
            &params,
            "MailboxID",
            |r: parcel::ParcelInBoxArchiveEx, c| {
                let span = (&r.begin_date, &r.end_date);
                let ids = (r.ec_grid_id_from, r.ec_grid_id_to);
                let page = (r.page_no, r.records_per_page);
                archive(c, r.mailbox_id, false, span, ids, page)
            },
        ),
        n if n == parcel::ParcelOutBoxInProcess::INFO.name => ctx.typed(
            &params,
            "SessionID",
            |_: parcel::ParcelOutBoxInProcess, c| {
                state
                    .list(c, 0, Listing::OutBoxInProcess, &any)
                    .map(first_page)
            },
        ),
        n if n == parcel::ParcelOutBoxInProcessEx::INFO.name => ctx.typed(
            &params,
            "MailboxID",
            |r: parcel::ParcelOutBoxInProcessEx, c| {
                state
                    .list(c, r.mailbox_id, Listing::OutBoxInProcess, &any)
                    .map(first_page)
            },
        ),
        n if n == parcel::ParcelOutBoxArchive::INFO.name => {
            ctx.typed(&params, "BeginDate", |r: parcel::ParcelOutBoxArchive, c| {
                let span = (&r.begin_date, &r.end_date);
                let ids = (r.ec_grid_id_from, r.ec_grid_id_to);
                let page = (r.page_no, r.records_per_page);
                archive(c, 0, true, span, ids, page)
            })
        }
        n if n == parcel::ParcelOutBoxArchiveEx::INFO.name => ctx.typed(
            &params,
            "MailboxID",
            |r: parcel::ParcelOutBoxArchiveEx, c| {
                let span = (&r.begin_date, &r.end_date);
                let ids = (r.ec_grid_id_from, r.ec_grid_id_to);
                let page = (r.page_no, r.records_per_page);
                archive(c, r.mailbox_id, true, span, ids, page)
            },
        ),
        n if n == parcel::ParcelDownload::INFO.name => ctx.download(
            state,
            &params,
            |r: &parcel::ParcelDownload| r.parcel_id,
            false,
            false,
        ),
        n if n == parcel::ParcelDownloadA::INFO.name => ctx.download(
            state,
            &params,
            |r: &parcel::ParcelDownloadA| r.parcel_id,
            false,
            true,
        ),
        n if n == parcel::ParcelDownloadNoUpdate::INFO.name => ctx.download(
            state,
            &params,
            |r: &parcel::ParcelDownloadNoUpdate| r.parcel_id,
            true,
            false,
        ),
        n if n == parcel::ParcelDownloadNoUpdateA::INFO.name => ctx.download(
            state,
            &params,
            |r: &parcel::ParcelDownloadNoUpdateA| r.parcel_id,
            true,
            true,
        ),
        n if n == parcel::ParcelDownloadConfirm::INFO.name => ctx.typed(
            &params,
            "ParcelID",
            |r: parcel::ParcelDownloadConfirm, c| state.confirm(c, r.parcel_id),
        ),
        n if n == parcel::ParcelDownloadReset::INFO.name => {
            ctx.typed(&params, "ParcelID", |r: parcel::ParcelDownloadReset, c| {
                state.reset_parcel(c, r.parcel_id)
            })
        }
        n if n == parcel::ParcelDownloadCancel::INFO.name => {
            ctx.typed(&params, "ParcelID", |r: parcel::ParcelDownloadCancel, c| {
                state.cancel_parcel(c, r.parcel_id, false)
            })
        }
        n if n == parcel::ParcelInfo::INFO.name => {
            ctx.typed(&params, "ParcelID", |r: parcel::ParcelInfo, c| {
                state
                    .parcel_info(c, r.parcel_id)
                    .map(|v| Some(parcel_id_info(&v)))
            })
        }
        _ => ctx.typed(&params, "MailboxID", |r: MailboxInfo, c| {
            state
                .mailbox_info(c, r.mailbox_id)
                .map(|(m, n)| Some(mailbox_id_info(&m, &n)))
        }),
    };
    Some(response)
}

/// The upload result is an `s:int` (the REST twin answers a long); the
/// fake's ParcelIDs start well below 2^31.
fn clamp_parcel_id(id: i64) -> i32 {
    i32::try_from(id).unwrap_or(i32::MAX)
}

/// A mailbox as `MailboxIDInfo`.
fn mailbox_id_info(m: &Mailbox, _network: &Network) -> MailboxIdInfo {
    MailboxIdInfo {
        mailbox_id: m.id,
        network_id: m.network_id,
        name: Some(m.name.clone()),
        created: dt(m.created),
        modified: dt(m.created),
        status: Status::Active,
        description: Some(format!("Mailbox {} of the fake ECGridOS", m.name)),
        managed: false,
        use_type: UseType::Production,
        ec_grid_account: true,
        ..MailboxIdInfo::default()
    }
}
