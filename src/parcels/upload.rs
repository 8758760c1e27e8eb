//! Outbound: streamed uploads, and the search that tells whether an upload
//! whose answer was lost arrived.

use std::path::Path;
use std::time::{Duration, SystemTime};

use super::{rest_auth, session, summaries, ParcelClient, ParcelSummary};
use crate::api::parcel::{
    ParcelOutBoxArchive, ParcelOutBoxInProcess, ParcelUpload, ParcelUploadEx, ParcelUploadMft,
};
use crate::error::{Error, Result};
use crate::http::UploadFile;
use crate::rest::{RestParcelQuery, RestRoute};
use crate::rotation::Credential;
use crate::wire::{Base64, DateTime};

/// Where an upload goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UploadRoute {
    /// By the file's own envelope: the X12 ISA receiver, the EDIFACT UNB
    /// recipient (`ParcelUpload`; REST without IDs).
    FromHeaders,
    /// Sent from this mailbox of the caller's (one who may act for
    /// several), then routed by the file's envelope (`ParcelUploadEx`; REST
    /// `networkId`, `mailboxId`).
    Mailbox {
        /// The network.
        network_id: i32,
        /// The mailbox.
        mailbox_id: i32,
    },
    /// Between two ECGrid IDs (`ParcelUploadMft`; REST `ecGridIdFrom`,
    /// `ecGridIdTo`).
    Ids {
        /// The sender's ECGrid ID.
        from: i32,
        /// The receiver's ECGrid ID.
        to: i32,
    },
}

/// What to look for in the outbox: an upload of `bytes` bytes named
/// `file_name`, created between `not_before` and `not_after`.
///
/// After [`upload_file`](ParcelClient::upload_file) fails with
/// [`Error::OutcomeUnknown`], build a probe from the file and the time the
/// upload was sent, with some slack for the clocks, and call
/// [`find_upload`](ParcelClient::find_upload): `Found` means the parcel
/// arrived (keep its ID, do not upload again); `NotFound` means it did not
/// arrive (yet: the outbox may lag, so look again a little later before
/// sending it again); `Ambiguous` means several parcels match (the same file
/// sent twice before), and a person should decide.
///
/// ```no_run
/// # async fn run(parcels: ecgridos::ParcelClient, cred: ecgridos::Credential) -> Result<(), ecgridos::Error> {
/// use std::time::{Duration, SystemTime};
/// use ecgridos::{UploadProbe, UploadRoute, UploadSearch};
///
/// let path = std::path::Path::new("out/order.edi");
/// let sent_at = SystemTime::now();
/// match parcels.upload_file(&cred, path, "order.edi", &UploadRoute::FromHeaders, None).await {
///     Ok(id) => println!("parcel {id}"),
///     Err(e) if e.is_outcome_unknown() => {
///         let bytes = std::fs::metadata(path).map(|m| m.len()).unwrap_or_default();
///         let probe = UploadProbe::around("order.edi", bytes, sent_at, Duration::from_secs(300));
///         match parcels.find_upload(&cred, &probe).await? {
///             UploadSearch::Found(p) => println!("it arrived as parcel {}", p.parcel_id),
///             UploadSearch::NotFound => println!("not there: safe to send again later"),
///             UploadSearch::Ambiguous(all) => println!("{} candidates: check by hand", all.len()),
///         }
///     }
///     Err(e) => return Err(e),
/// }
/// # Ok(()) }
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UploadProbe {
    /// The file name the upload was sent under.
    pub file_name: String,
    /// The file's size in bytes.
    pub bytes: u64,
    /// The earliest creation time that matches.
    pub not_before: DateTime,
    /// The latest creation time that matches.
    pub not_after: DateTime,
}

impl UploadProbe {
    /// A probe for an upload sent at `sent_at`, matching creation times
    /// within `slack` on either side (in UTC).
    pub fn around(
        file_name: impl Into<String>,
        bytes: u64,
        sent_at: SystemTime,
        slack: Duration,
    ) -> Self {
        let earliest = sent_at.checked_sub(slack).unwrap_or(SystemTime::UNIX_EPOCH);
        let latest = sent_at.checked_add(slack).unwrap_or(sent_at);
        UploadProbe {
            file_name: file_name.into(),
            bytes,
            not_before: utc(earliest),
            not_after: utc(latest),
        }
    }

    /// True when `parcel` is what this probe looks for. A parcel without a
    /// date matches on name and size alone.
    pub fn matches(&self, parcel: &ParcelSummary) -> bool {
        let in_window = parcel.date.as_ref().is_none_or(|d| {
            let t = d.unix_seconds();
            self.not_before.unix_seconds() <= t && t <= self.not_after.unix_seconds()
        });
        parcel.file_name == self.file_name
            && u64::try_from(parcel.bytes).ok() == Some(self.bytes)
            && in_window
    }
}

/// What [`find_upload`](ParcelClient::find_upload) found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UploadSearch {
    /// Exactly one parcel matches: the upload arrived.
    Found(ParcelSummary),
    /// No parcel matches.
    NotFound,
    /// Several parcels match; they are all here.
    Ambiguous(Vec<ParcelSummary>),
}

/// `t` as a UTC dateTime, to the second.
pub(crate) fn utc(t: SystemTime) -> DateTime {
    let secs = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or_default();
    DateTime::from_unix_seconds(secs).unwrap_or_default()
}

impl ParcelClient {
    /// Uploads the file at `path` under `file_name` (`ParcelUpload`,
    /// `ParcelUploadEx` or `ParcelUploadMft` by `route`; REST `POST
    /// /v2/parcels/upload`) and returns the new parcel's ID. The file is
    /// read and base64-encoded into the request as it is sent (memory stays
    /// constant); `progress` sees the count of file bytes sent. A file that
    /// changes size meanwhile stops the upload with [`Error::Io`].
    ///
    /// Never sent twice once any of it may have left: when the answer is
    /// lost the call fails with [`Error::OutcomeUnknown`]; then look for
    /// the parcel with [`find_upload`](Self::find_upload) instead of
    /// uploading again.
    pub async fn upload_file(
        &self,
        cred: &Credential,
        path: &Path,
        file_name: &str,
        route: &UploadRoute,
        progress: Option<&(dyn Fn(u64) + Send + Sync)>,
    ) -> Result<i64> {
        if file_name.is_empty() {
            return Err(Error::invalid_input("file name", "must not be empty"));
        }
        crate::operations::check_xml_chars("file name", file_name, false)?;
        let size = tokio::fs::metadata(path)
            .await
            .map_err(|source| Error::Io {
                operation: "upload",
                context: "reading the size of the file to upload".into(),
                source,
            })?
            .len();
        // The SOAP `Bytes` parameter is an `s:int`.
        let bytes = i32::try_from(size).map_err(|_| {
            Error::invalid_input(
                "file",
                format!("{size} bytes is more than a parcel may hold ({})", i32::MAX),
            )
        })?;
        let file = UploadFile {
            path: path.to_path_buf(),
            size,
        };
        let file_name = file_name.to_string();
        match self {
            ParcelClient::Soap(c) => {
                let session_id = Some(session(cred));
                let content = Some(Base64::default());
                let id = match *route {
                    UploadRoute::FromHeaders => {
                        let op = ParcelUpload {
                            session_id,
                            file_name: Some(file_name),
                            bytes,
                            content,
                        };
                        c.upload_from(op, &file, progress).await?
                    }
                    UploadRoute::Mailbox {
                        network_id,
                        mailbox_id,
                    } => {
                        let op = ParcelUploadEx {
                            session_id,
                            network_id,
                            mailbox_id,
                            file_name: Some(file_name),
                            bytes,
                            content,
                        };
                        c.upload_from(op, &file, progress).await?
                    }
                    UploadRoute::Ids { from, to } => {
                        let op = ParcelUploadMft {
                            session_id,
                            file_name: Some(file_name),
                            bytes,
                            content,
                            ec_grid_id_from: from,
                            ec_grid_id_to: to,
                        };
                        c.upload_from(op, &file, progress).await?
                    }
                };
                Ok(i64::from(id))
            }
            ParcelClient::Rest(c) => {
                let route = match *route {
                    UploadRoute::FromHeaders => RestRoute::Headers,
                    UploadRoute::Mailbox {
                        network_id,
                        mailbox_id,
                    } => RestRoute::Mailbox {
                        network_id,
                        mailbox_id,
                    },
                    UploadRoute::Ids { from, to } => RestRoute::Ids { from, to },
                };
                c.upload_from(rest_auth(cred), &file_name, route, &file, progress)
                    .await
            }
        }
    }

    /// Looks for an upload in the outbox listings by file name, size and
    /// time window (SOAP: `ParcelOutBoxInProcess`, then
    /// `ParcelOutBoxArchive` over the window, page by page; REST:
    /// `outbox-list` over the window, page by page). See [`UploadProbe`]
    /// for how to use it after an upload whose outcome is unknown.
    pub async fn find_upload(
        &self,
        cred: &Credential,
        probe: &UploadProbe,
    ) -> Result<UploadSearch> {
        let mut found: Vec<ParcelSummary> = Vec::new();
        let mut keep = |parcels: Vec<ParcelSummary>| {
            for p in parcels {
                if probe.matches(&p) && !found.iter().any(|f| f.parcel_id == p.parcel_id) {
                    found.push(p);
                }
            }
        };
        match self {
            ParcelClient::Soap(c) => {
                let session_id = Some(session(cred));
                keep(summaries(
                    c.call(ParcelOutBoxInProcess {
                        session_id: session_id.clone(),
                    })
                    .await?,
                ));
                for page_no in 1..=MAX_PAGES {
                    let page = c
                        .call(ParcelOutBoxArchive {
                            session_id: session_id.clone(),
                            begin_date: probe.not_before,
                            end_date: probe.not_after,
                            page_no,
                            records_per_page: PAGE,
                            ..ParcelOutBoxArchive::default()
                        })
                        .await?;
                    let pages = page.as_ref().map_or(0, |p| p.total_pages);
                    let parcels = summaries(page);
                    let last = parcels.len() < PAGE as usize || page_no >= pages;
                    keep(parcels);
                    if last {
                        break;
                    }
                }
            }
            ParcelClient::Rest(c) => {
                for page_no in 1..=MAX_PAGES as u32 {
                    let query = RestParcelQuery {
                        begin_date: Some(probe.not_before.to_string()),
                        end_date: Some(probe.not_after.to_string()),
                        page_no: Some(page_no),
                        records_per_page: Some(PAGE as u32),
                        ..RestParcelQuery::default()
                    };
                    let parcels = c.outbox_list(rest_auth(cred), &query).await?;
                    let last = parcels.len() < PAGE as usize;
                    keep(parcels.iter().map(ParcelSummary::from_rest).collect());
                    if last {
                        break;
                    }
                }
            }
        }
        Ok(match found.len() {
            0 => UploadSearch::NotFound,
            1 => UploadSearch::Found(found.remove(0)),
            _ => UploadSearch::Ambiguous(found),
        })
    }
}

/// Parcels per page asked of the outbox listings.
const PAGE: i16 = 100;
/// The most pages read in one search (a bound on a service that never ends
/// its listing).
const MAX_PAGES: i16 = 1000;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_and_seconds_agree() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_000_000);
        let dt = utc(t);
        assert_eq!(dt.to_string(), "2026-11-18T11:06:40Z");
        assert_eq!(dt.unix_seconds(), 1_795_000_000);
        let shifted: DateTime = "2026-11-18T12:06:40+01:00".parse().unwrap();
        assert_eq!(shifted.unix_seconds(), 1_795_000_000);
        assert_eq!(utc(SystemTime::UNIX_EPOCH).unix_seconds(), 0);
        let leap: DateTime = "2024-02-29T00:00:00Z".parse().unwrap();
        assert_eq!(leap.unix_seconds(), 1_709_164_800);
        assert_eq!(DateTime::from_unix_seconds(1_709_164_800), Some(leap));
        assert_eq!(DateTime::from_unix_seconds(-62_135_596_801), None);
    }

    #[test]
    fn a_probe_matches_name_size_and_window() {
        let sent = SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_000_000);
        let probe = UploadProbe::around("a.edi", 10, sent, Duration::from_secs(60));
        let mut p = ParcelSummary {
            parcel_id: 1,
            file_name: "a.edi".into(),
            bytes: 10,
            status: None,
            mailbox_id: None,
            ecgrid_id_from: None,
            ecgrid_id_to: None,
            date: Some(utc(sent + Duration::from_secs(30))),
        };
        assert!(probe.matches(&p));
        p.date = Some(utc(sent + Duration::from_secs(90)));
        assert!(!probe.matches(&p));
        p.date = None;
        assert!(probe.matches(&p));
        p.bytes = 11;
        assert!(!probe.matches(&p));
        p.bytes = 10;
        p.file_name = "b.edi".into();
        assert!(!probe.matches(&p));
    }
}
