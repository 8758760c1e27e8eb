//! Parcels: the EDI files that move through an ECGridOS mailbox.
//!
//! (The protocol-neutral `ParcelClient` comes from the `pclient` branch; until
//! it is merged these are the shapes the inbound loop is written against.)

pub mod inbound;
pub mod names;

use crate::api::enums::ParcelStatus;
use crate::wire::DateTime;

/// A parcel as the inbox listing shows it.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct ParcelSummary {
    /// The parcel's ID.
    pub parcel_id: i64,
    /// The file name, untrusted.
    pub file_name: String,
    /// The declared size in bytes.
    pub bytes: i64,
    /// The status.
    pub status: Option<ParcelStatus>,
    /// The mailbox.
    pub mailbox_id: Option<i32>,
    /// The sender's ECGrid ID.
    pub ecgrid_id_from: Option<i32>,
    /// The receiver's ECGrid ID.
    pub ecgrid_id_to: Option<i32>,
    /// The parcel's date.
    pub date: Option<DateTime>,
}

/// What a download wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Downloaded {
    /// The parcel's ID.
    pub parcel_id: i64,
    /// The file name, untrusted.
    pub file_name: String,
    /// The size the service declared.
    pub declared_bytes: u64,
    /// The bytes written.
    pub received_bytes: u64,
}

/// Placeholder until the `pclient` branch is merged.
#[derive(Clone, Debug)]
pub enum ParcelClient {}

impl inbound::Inbox for ParcelClient {
    async fn ready(
        &self,
        _: &crate::Credential,
        _: Option<i32>,
    ) -> crate::Result<Vec<ParcelSummary>> {
        match *self {}
    }
    async fn download_to<W: tokio::io::AsyncWrite + Unpin + Send>(
        &self,
        _: &crate::Credential,
        _: i64,
        _: &mut W,
        _: Option<&(dyn Fn(u64) + Send + Sync)>,
    ) -> crate::Result<Downloaded> {
        match *self {}
    }
    async fn confirm(&self, _: &crate::Credential, _: i64) -> crate::Result<bool> {
        match *self {}
    }
}
