//! The fake's asmx-shaped SOAP endpoint. It reads requests and writes replies
//! with the crate's own codec, and answers malformed input the way an ASP.NET
//! asmx service does: HTTP 500 with a `soap:Client` fault and no ECGridOS detail.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, State as AxumState};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use super::state::Denial;
use super::{DetailShape, Shared};
use crate::operations::{
    self, GenerateApiKey, Login, Logout, Operation, UserGetApiKey, Version, WhoAmI,
};
use crate::wire::{
    self, read_request, write_fault, write_response, EcgridDetail, FaultCategory, FaultCode,
    IntFlag, ResultValue, SoapFault, SoapRequest, SoapVersion,
};

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
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    shared.state.count("soap");
    let Some((version, v12_action)) = version_of(&headers) else {
        return (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "The content type of a SOAP request must be text/xml or application/soap+xml.",
        )
            .into_response();
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
