//! The migration harness: recording what a SOAP integration sends
//! ([`record`]) and replaying it over REST or SOAP ([`replay`]).

#[cfg(feature = "fake")]
mod scan;

#[cfg(feature = "fake")]
pub mod record;
