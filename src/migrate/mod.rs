//! The migration harness: one name for each call on both protocols (the
//! contract's), the SOAP <-> REST mapping as data ([`mapping`]), the
//! difference engine that classifies every field of two answers ([`diff`]),
//! scenario files run over both protocols ([`scenario`]) and their JUnit
//! report ([`junit`]); and what a legacy integration really sends, recorded
//! by a pass-through proxy ([`record`]) and replayed over REST or SOAP
//! ([`replay`]).

pub mod diff;
pub mod junit;
// The mapping sits below the clients (RestClient::call_json reads it), so it
// lives at the crate root; here under its harness name too.
pub use crate::rest_mapping as mapping;
pub mod scenario;

mod scan;

#[cfg(feature = "fake")]
pub mod record;
pub mod replay;
