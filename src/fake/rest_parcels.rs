//! The fake's REST v2 parcel and mailbox routes, over the same mailbox state
//! as the SOAP parcel operations.

/// The path of the upload route (its body may be as large as
/// `FakeServerBuilder::max_upload_bytes`).
pub(super) const UPLOAD_PATH: &str = "/v2/parcels/upload";
