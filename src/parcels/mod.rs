//! Parcels (EDI files) over either protocol: list the ready ones, download
//! one to any writer with constant memory, confirm it, upload a file with
//! constant memory, and find an upload whose outcome was lost.
//!
//! # The inbound loop
//!
//! The service delivers at least once: a parcel downloaded but not
//! confirmed is handed out again, and a parcel confirmed is gone from the
//! inbox for good. So an inbound loop follows three rules:
//!
//! 1. **List again until nothing new is ready.** The inbox listings
//!    (`ParcelInBox`, `ParcelInBoxEx`, `pending-inbox-list`) are paged but
//!    take no page number: the next page shows up only once the parcels of
//!    the first are confirmed. Without confirming, only the first page is
//!    ever reachable.
//! 2. **Never confirm before the bytes are durable and verified.**
//!    [`ParcelClient::download_to`] checks the byte count against the
//!    parcel's declared size and flushes the writer, but it cannot make the
//!    bytes durable: write to a temporary file, fsync it, rename it, fsync
//!    the directory, and only then [`confirm`](ParcelClient::confirm). Any
//!    error from `download_to` means: do not confirm (the parcel stays in
//!    the inbox and comes back on the next listing).
//!    [`inbound::fetch_dir`] (the CLI's `parcels fetch`) does all of this
//!    for a directory, with a journal and safe file names.
//! 3. **De-duplicate by parcel ID**: a parcel stored but not confirmed
//!    (a crash in between) is handed out again.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use std::collections::HashSet;
//! use ecgridos::{ApiKey, Client, Credential, ParcelClient};
//! use tokio::io::AsyncWriteExt;
//!
//! let parcels = ParcelClient::from(Client::builder().build()?);
//! let cred = Credential::ApiKey(ApiKey::new("my-key"));
//! let dir = std::path::Path::new("inbound");
//! let mut done = HashSet::new();
//! loop {
//!     let ready = parcels.ready(&cred, None).await?;
//!     let fresh: Vec<_> = ready.into_iter().filter(|p| !done.contains(&p.parcel_id)).collect();
//!     if fresh.is_empty() {
//!         break; // nothing new: the inbox is drained
//!     }
//!     for parcel in fresh {
//!         let id = parcel.parcel_id;
//!         let tmp = dir.join(format!(".{id}.part"));
//!         let mut file = tokio::fs::File::create(&tmp).await?;
//!         // Streams and verifies the size; on any error, do not confirm.
//!         parcels.download_to(&cred, id, &mut file, None).await?;
//!         file.sync_all().await?;
//!         // A real loop makes the name safe first (the CLI does).
//!         tokio::fs::rename(&tmp, dir.join(format!("{id}.edi"))).await?;
//!         tokio::fs::File::open(dir).await?.sync_all().await?;
//!         parcels.confirm(&cred, id).await?; // only now
//!         done.insert(id);
//!     }
//! }
//! # Ok(()) }
//! ```
//!
//! # Uploads
//!
//! [`ParcelClient::upload_file`] streams the file's base64 into the request
//! and is never sent twice: uploads carry no idempotency key, so a blind
//! retry sends the file again. When the answer is lost the call fails with
//! [`Error::OutcomeUnknown`]; look for the
//! parcel with [`ParcelClient::find_upload`] before sending it again, with
//! a probe that excludes the parcels listed before the send began (an
//! earlier upload of the same name and size is not this one).
//! [`ParcelClient::upload_once`] does all three steps; a seeded fault
//! simulator checks it (`sim::upload`, in the crate's tests).

pub mod inbound;
pub mod names;
#[cfg(test)]
mod sim;
mod upload;

use crate::api::enums::{Direction, ParcelStatus};
use crate::api::parcel::{
    ParcelDownload, ParcelDownloadConfirm, ParcelDownloadReset, ParcelInBox, ParcelInBoxEx,
    ParcelInfo,
};
use crate::api::types::{ParcelIdInfo, ParcelIdInfoCollection};
use crate::error::{Error, Result};
use crate::rest::{RestAuth, RestClient, RestParcel};
use crate::rotation::{Credential, Protocol};
use crate::secret::SessionId;
use crate::soap::Client;
use crate::wire::DateTime;

pub use upload::{UploadObserver, UploadOutcome, UploadProbe, UploadRoute, UploadSearch};

/// A parcel as a listing or `ParcelInfo` describes it, the same over both
/// protocols.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ParcelSummary {
    /// The parcel's ID.
    pub parcel_id: i64,
    /// The file name, as the service has it (untrusted: make it safe before
    /// using it as a path).
    pub file_name: String,
    /// The size in bytes the service declares.
    pub bytes: i64,
    /// The status, when the listing gives one.
    pub status: Option<ParcelStatus>,
    /// The mailbox it is in (inbound: the receiver's; outbound: the
    /// sender's).
    pub mailbox_id: Option<i32>,
    /// The sender's ECGrid ID, when the listing gives it (REST does, SOAP's
    /// `ParcelIDInfo` does not).
    pub ecgrid_id_from: Option<i32>,
    /// The receiver's ECGrid ID, when the listing gives it.
    pub ecgrid_id_to: Option<i32>,
    /// When the parcel was created.
    pub date: Option<DateTime>,
}

impl ParcelSummary {
    /// A summary of a SOAP `ParcelIDInfo`.
    pub fn from_soap(info: &ParcelIdInfo) -> Self {
        let mailbox_id = match info.direction {
            Direction::OutBox => info.mailbox_id_from,
            _ => info.mailbox_id_to,
        };
        ParcelSummary {
            parcel_id: info.parcel_id,
            file_name: info.file_name.clone().unwrap_or_default(),
            bytes: i64::from(info.parcel_bytes),
            status: info
                .status_code
                .as_deref()
                .filter(|s| !s.trim().is_empty())
                .and_then(|s| s.parse().ok()),
            mailbox_id: Some(mailbox_id),
            ecgrid_id_from: None,
            ecgrid_id_to: None,
            date: (!info.parcel_date.is_never()).then_some(info.parcel_date),
        }
    }

    /// A summary of a REST parcel.
    pub fn from_rest(parcel: &RestParcel) -> Self {
        ParcelSummary {
            parcel_id: parcel.parcel_id,
            file_name: parcel.file_name.clone().unwrap_or_default(),
            bytes: parcel.bytes.unwrap_or_default(),
            status: parcel
                .status
                .as_deref()
                .filter(|s| !s.trim().is_empty())
                .and_then(|s| s.parse().ok()),
            mailbox_id: parcel.mailbox_id,
            ecgrid_id_from: parcel.ec_grid_id_from,
            ecgrid_id_to: parcel.ec_grid_id_to,
            date: parcel.created.as_deref().and_then(|d| d.parse().ok()),
        }
    }
}

/// The parcels of a SOAP collection.
fn summaries(collection: Option<ParcelIdInfoCollection>) -> Vec<ParcelSummary> {
    collection
        .and_then(|c| c.parcel_id_info_list)
        .map(|list| {
            list.0
                .iter()
                .flatten()
                .map(ParcelSummary::from_soap)
                .collect()
        })
        .unwrap_or_default()
}

/// What [`ParcelClient::download_to`] wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Downloaded {
    /// The parcel's ID.
    pub parcel_id: i64,
    /// The file name the service gave (untrusted).
    pub file_name: String,
    /// The size the service declared.
    pub declared_bytes: u64,
    /// The bytes written (equal to `declared_bytes`, or the call failed).
    pub received_bytes: u64,
}

/// Parcel operations over SOAP or REST, with the same types and errors (as
/// [`KeyClient`](crate::KeyClient) for keys). See the [module
/// documentation](self) for the inbound loop's rules.
#[derive(Clone, Debug)]
pub enum ParcelClient {
    /// Over SOAP.
    Soap(Client),
    /// Over REST.
    Rest(RestClient),
}

impl From<Client> for ParcelClient {
    fn from(client: Client) -> Self {
        ParcelClient::Soap(client)
    }
}

impl From<RestClient> for ParcelClient {
    fn from(client: RestClient) -> Self {
        ParcelClient::Rest(client)
    }
}

/// The credential as a SOAP `SessionID`.
fn session(cred: &Credential) -> SessionId {
    match cred {
        Credential::ApiKey(k) => SessionId::new(k.expose()),
        Credential::Session(s) => s.clone(),
    }
}

/// The credential as REST authentication.
fn rest_auth(cred: &Credential) -> RestAuth<'_> {
    match cred {
        Credential::ApiKey(k) => RestAuth::ApiKey(k),
        Credential::Session(s) => RestAuth::Bearer(s),
    }
}

/// The declared size of a parcel as a count of bytes.
fn declared(operation: &'static str, bytes: i64) -> Result<u64> {
    u64::try_from(bytes).map_err(|_| Error::MalformedResponse {
        operation,
        reason: format!("the parcel's declared size {bytes} is negative").into(),
    })
}

impl ParcelClient {
    /// The protocol spoken.
    pub fn protocol(&self) -> Protocol {
        match self {
            ParcelClient::Soap(_) => Protocol::Soap,
            ParcelClient::Rest(_) => Protocol::Rest,
        }
    }

    /// The parcels in the inbox ready to download (`ParcelInBox`, or
    /// `ParcelInBoxEx` for `mailbox_id`; REST `pending-inbox-list`). Only
    /// the first page is listed: list again after confirming to see more.
    pub async fn ready(
        &self,
        cred: &Credential,
        mailbox_id: Option<i32>,
    ) -> Result<Vec<ParcelSummary>> {
        match self {
            ParcelClient::Soap(c) => {
                let session_id = Some(session(cred));
                let collection = match mailbox_id {
                    None => c.call(ParcelInBox { session_id }).await?,
                    Some(mailbox_id) => {
                        c.call(ParcelInBoxEx {
                            session_id,
                            mailbox_id,
                            ..ParcelInBoxEx::default()
                        })
                        .await?
                    }
                };
                Ok(summaries(collection))
            }
            ParcelClient::Rest(c) => Ok(c
                .pending_inbox_list(rest_auth(cred), mailbox_id)
                .await?
                .iter()
                .map(ParcelSummary::from_rest)
                .collect()),
        }
    }

    /// Downloads a parcel (`ParcelDownload`; REST `POST
    /// /v2/parcels/download`) into `out`, decoding the base64 as it streams
    /// (memory stays constant whatever the size), checks that the bytes
    /// received match the declared size, and flushes `out`. `progress` sees
    /// the running count of bytes written. Never confirms.
    ///
    /// Any error means the parcel must not be confirmed: discard what was
    /// written. [`Error::SizeMismatch`] when the count differs,
    /// [`Error::MalformedResponse`] for invalid base64 (naming its offset),
    /// [`Error::LimitExceeded`] above the download limit
    /// ([`ClientBuilder::max_download_bytes`](crate::ClientBuilder::max_download_bytes)),
    /// [`Error::Io`] when `out` fails, [`Error::OutcomeUnknown`] when the
    /// answer was cut short. Never sent twice once any of it may have left;
    /// the parcel stays in the inbox until confirmed, so it can be
    /// downloaded again.
    pub async fn download_to<W>(
        &self,
        cred: &Credential,
        parcel_id: i64,
        out: &mut W,
        progress: Option<&(dyn Fn(u64) + Send + Sync)>,
    ) -> Result<Downloaded>
    where
        W: tokio::io::AsyncWrite + Unpin + Send,
    {
        let (operation, id, file_name, bytes, received) = match self {
            ParcelClient::Soap(c) => {
                let op = ParcelDownload {
                    session_id: Some(session(cred)),
                    parcel_id,
                };
                let (info, received) = c.download_into(op, out, progress).await?;
                (
                    "ParcelDownload",
                    info.parcel_id,
                    info.file_name,
                    i64::from(info.bytes),
                    received,
                )
            }
            ParcelClient::Rest(c) => {
                let (data, received) = c
                    .download_into(rest_auth(cred), parcel_id, out, progress)
                    .await?;
                let bytes = data.bytes.ok_or_else(|| Error::MalformedResponse {
                    operation: "POST /v2/parcels/download",
                    reason: "the answer declares no size (bytes)".into(),
                })?;
                (
                    "POST /v2/parcels/download",
                    data.parcel_id,
                    data.file_name,
                    bytes,
                    received,
                )
            }
        };
        if id != parcel_id {
            return Err(Error::MalformedResponse {
                operation,
                reason: format!("asked for parcel {parcel_id}, the answer is parcel {id}").into(),
            });
        }
        let declared = declared(operation, bytes)?;
        if declared != received {
            return Err(Error::SizeMismatch {
                operation,
                parcel_id,
                declared,
                received,
            });
        }
        Ok(Downloaded {
            parcel_id,
            file_name: file_name.unwrap_or_default(),
            declared_bytes: declared,
            received_bytes: received,
        })
    }

    /// Confirms a parcel stored durably (`ParcelDownloadConfirm`; REST
    /// `POST /v2/parcels/confirm`): it leaves the inbox for good. Never sent
    /// twice; when its outcome is unknown, [`info`](Self::info) tells.
    pub async fn confirm(&self, cred: &Credential, parcel_id: i64) -> Result<bool> {
        match self {
            ParcelClient::Soap(c) => {
                c.call(ParcelDownloadConfirm {
                    session_id: Some(session(cred)),
                    parcel_id,
                })
                .await
            }
            ParcelClient::Rest(c) => c.confirm_parcel(rest_auth(cred), parcel_id).await,
        }
    }

    /// Puts a parcel back in the inbox, ready (`ParcelDownloadReset`; REST
    /// `POST /v2/parcels/reset-to-inbox/{id}`).
    pub async fn reset(&self, cred: &Credential, parcel_id: i64) -> Result<bool> {
        match self {
            ParcelClient::Soap(c) => {
                c.call(ParcelDownloadReset {
                    session_id: Some(session(cred)),
                    parcel_id,
                })
                .await
            }
            ParcelClient::Rest(c) => c.reset_parcel(rest_auth(cred), parcel_id).await,
        }
    }

    /// One parcel (`ParcelInfo`; REST `GET /v2/parcels/{id}`). A read.
    pub async fn info(&self, cred: &Credential, parcel_id: i64) -> Result<ParcelSummary> {
        match self {
            ParcelClient::Soap(c) => {
                let info = c
                    .call(ParcelInfo {
                        session_id: Some(session(cred)),
                        parcel_id,
                    })
                    .await?;
                info.as_ref().map(ParcelSummary::from_soap).ok_or_else(|| {
                    Error::MalformedResponse {
                        operation: "ParcelInfo",
                        reason: "the answer holds no ParcelIDInfo".into(),
                    }
                })
            }
            ParcelClient::Rest(c) => Ok(ParcelSummary::from_rest(
                &c.parcel_info(rest_auth(cred), parcel_id).await?,
            )),
        }
    }
}
