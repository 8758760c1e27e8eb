//! A client, command-line tool and embedded fake server for the ECGridOS v4.1
//! SOAP API, centred on safe API-key rotation.
//!
//! ```no_run
//! # async fn run() -> Result<(), ecgridos::Error> {
//! use ecgridos::{ApiKey, Client, UserId};
//!
//! let client = Client::builder().build()?;
//! // An API key is accepted wherever a session ID is.
//! let key = ApiKey::new(std::env::var("ECGRID_API_KEY").unwrap_or_default());
//! let me = client.who_am_i(&key).await?;
//! let new_key = client.generate_api_key(&key, UserId::from(me.user_id)).await?;
//! // `key` is now dead; store `new_key` before doing anything else.
//! # let _ = new_key; Ok(()) }
//! ```
//!
//! The layers, each in its own module, data flowing one way:
//! [`wire`] (pure codec) → [`operations`] (one declaration per call) →
//! [`Client`] (HTTP, timeouts, retries by idempotency) → typed results or one
//! [`Error`] type.

#![warn(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

// The README's examples are compiled and run as doctests.
#[cfg(all(doctest, feature = "fake"))]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

pub mod api;
pub mod durable;
pub mod error;
mod http;
pub mod migrate;
mod netconf;
pub mod operations;
pub mod parcels;
pub mod rest;
pub mod rest_mapping;
pub mod rotation;
pub mod secret;
mod session;
mod soap;
pub mod wire;

#[cfg(feature = "fake")]
pub mod fake;

#[cfg(feature = "blocking")]
pub mod blocking;

pub use error::{Error, ErrorKind, Limit, ProxyRefusal, Result, TimeoutPhase, TlsFailure};
pub use http::{
    RetryPolicy, TlsVersion, DEFAULT_CONNECT_TIMEOUT, DEFAULT_MAX_DOWNLOAD_BYTES,
    DEFAULT_MAX_RESPONSE_BYTES, DEFAULT_TIMEOUT,
};
pub use operations::UserId;
pub use parcels::{
    Downloaded, ParcelClient, ParcelSummary, UploadObserver, UploadOutcome, UploadProbe,
    UploadRoute, UploadSearch,
};
pub use rest::{
    RestAuth, RestClient, RestClientBuilder, RestParcel, RestParcelQuery, RestUser,
    DEFAULT_REST_URL,
};
pub use rotation::{
    Comparison, Credential, Identity, KeyClient, Observed, Protocol, Rotation, Scenario,
    ScenarioRun, StepComparison, StepResult,
};
pub use secret::{ApiKey, Password, PrivateKeyPem, ProxyUrl, SessionId, SessionRef};
pub use session::SessionClient;
pub use soap::{Client, ClientBuilder, DEFAULT_ENDPOINT};
pub use wire::{
    AuthLevel, EcgridDetail, FaultCategory, FaultCode, SessionInfo, SoapFault, SoapVersion,
};
