//! Typed handlers for the operations the fake does not model: a test gives
//! one with [`FakeServer::stub`](super::FakeServer::stub); the request
//! arrives decoded into the generated request struct and the handler's
//! result is encoded from the generated type. An operation with no handler is
//! answered with an asmx-style fault naming it as not modelled.

use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex, PoisonError};

use axum::response::Response;

use crate::api::{OperationEntry, Params, Request};
use crate::wire::{
    self, write_response, EcgridDetail, FaultCategory, FaultCode, ResultValue, SoapFault,
    SoapRequest, SoapVersion,
};

/// The fault a stub answers with instead of a result.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StubFault {
    /// The ECGridOS category written in the fault detail.
    pub category: FaultCategory,
    /// The fault message.
    pub message: String,
}

impl StubFault {
    /// A fault of `category` with `message`.
    pub fn new(category: FaultCategory, message: impl Into<String>) -> Self {
        StubFault {
            category,
            message: message.into(),
        }
    }
}

type Handler = dyn Fn(SoapVersion, &str, &Params) -> Response + Send + Sync;

/// The registered handlers, by operation name.
#[derive(Default)]
pub(super) struct Stubs(Mutex<HashMap<&'static str, Arc<Handler>>>);

impl Stubs {
    pub(super) fn insert<R: Request>(
        &self,
        handler: impl Fn(R) -> Result<R::Output, StubFault> + Send + Sync + 'static,
    ) {
        let name = R::INFO.name;
        let erased = move |version: SoapVersion, namespace: &str, params: &Params| {
            let request = match R::from_params(params) {
                Ok(request) => request,
                Err(e) => {
                    return fault(
                        version,
                        FaultCode::Client,
                        format!("Server was unable to read request. ---> {e}"),
                        None,
                    )
                }
            };
            match catch_unwind(AssertUnwindSafe(|| handler(request))) {
                Ok(Ok(output)) => success::<R>(version, namespace, &output),
                Ok(Err(f)) => fault(
                    version,
                    FaultCode::Client,
                    f.message,
                    Some(EcgridDetail {
                        category: Some(f.category),
                        ..EcgridDetail::default()
                    }),
                ),
                Err(_) => fault(
                    version,
                    FaultCode::Server,
                    format!(
                        "Server was unable to process request. ---> the stub of {name} panicked"
                    ),
                    None,
                ),
            }
        };
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(name, Arc::new(erased));
    }

    /// Whether operation `name` has a handler.
    pub(super) fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    fn get(&self, name: &str) -> Option<Arc<Handler>> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(name)
            .cloned()
    }
}

pub(super) fn success<R: Request>(
    version: SoapVersion,
    namespace: &str,
    output: &R::Output,
) -> Response {
    let mut body = Vec::with_capacity(1024);
    write_response(&mut body, version, namespace, R::SPEC.name, |w| {
        ResultValue::write(output, w)
    });
    super::soap::reply(version, axum::http::StatusCode::OK, body)
}

fn fault(
    version: SoapVersion,
    code: FaultCode,
    message: String,
    detail: Option<EcgridDetail>,
) -> Response {
    super::soap::fault_response(
        version,
        SoapFault {
            version,
            code,
            message,
            actor: None,
            detail,
        },
    )
}

/// The generated operation a request is for: by its action, or (SOAP 1.2
/// without one) by its body element. `None` for the operations the fake
/// models itself, and for anything unknown.
fn unmodelled(
    namespace: &str,
    action: Option<&str>,
    request: &SoapRequest,
) -> Option<&'static OperationEntry> {
    let entry = match action {
        Some(action) => crate::api::OPERATIONS
            .iter()
            .find(|e| wire::soap_action(namespace, e.info.name) == action)?,
        None => crate::api::request::find(&request.operation)?,
    };
    let modelled = crate::operations::CATALOG
        .iter()
        .any(|spec| spec.name == entry.info.name);
    (!modelled).then_some(entry)
}

/// Answers a request for an operation the fake does not model: its stub's
/// answer, or a fault naming it as not modelled. `None` when the request is
/// for a modelled operation or no known one (the caller answers those).
pub(super) fn answer(
    stubs: &Stubs,
    state: &super::state::State,
    version: SoapVersion,
    namespace: &str,
    action: Option<&str>,
    request: &SoapRequest,
) -> Option<Response> {
    let entry = unmodelled(namespace, action, request)?;
    let name = entry.info.name;
    if request.operation != name || !request.operation_qualified {
        // The mismatch fault of the modelled path applies alike.
        return Some(fault(
            version,
            FaultCode::Client,
            format!(
                "Server was unable to read request. ---> <{}> was not expected by {name}.",
                request.operation
            ),
            None,
        ));
    }
    state.count(name);
    let Some(handler) = stubs.get(name) else {
        return Some(fault(
            version,
            FaultCode::Server,
            format!(
                "Server was unable to process request. ---> Operation {name} is not modelled by this fake ECGridOS; a test can answer it with FakeServer::stub."
            ),
            None,
        ));
    };
    let mut params = Params::new();
    for p in request.params.iter().filter(|p| p.qualified) {
        params.set(p.name.clone(), p.value.clone());
    }
    Some(handler(version, namespace, &params))
}
