//! Outbound: streamed uploads, and the search that tells whether an upload
//! whose answer was lost arrived.

use std::collections::BTreeSet;
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
/// `file_name`, created between `not_before` and `not_after`, that is none
/// of the parcels in `known_before`.
///
/// Uploads carry no idempotency key: an earlier parcel of the same name and
/// size (the same file sent an hour ago, or another file of that name) looks
/// just like this upload. Only a parcel that did not exist before the send
/// began may count as it, so note the matching ParcelIDs of the outbox before
/// sending ([`with_known_before`](Self::with_known_before)).
/// [`upload_once`](ParcelClient::upload_once) does all of this: it lists the
/// outbox, uploads, and when the answer is lost searches with such a probe.
///
/// By hand: after [`upload_file`](ParcelClient::upload_file) fails with
/// [`Error::OutcomeUnknown`], call [`find_upload`](ParcelClient::find_upload)
/// with the probe: `Found` means the parcel arrived (keep its ID, do not
/// upload again); `NotFound` means it did not arrive or is not listed yet
/// (the outbox may lag: look again a little later before sending it again);
/// `Ambiguous` means several new parcels match, and a person should decide.
///
/// ```no_run
/// # async fn run(parcels: ecgridos::ParcelClient, cred: ecgridos::Credential) -> Result<(), ecgridos::Error> {
/// use std::time::SystemTime;
/// use ecgridos::{UploadProbe, UploadRoute, UploadSearch};
///
/// let path = std::path::Path::new("out/order.edi");
/// let bytes = std::fs::metadata(path).map(|m| m.len()).unwrap_or_default();
/// let sent_at = SystemTime::now();
/// let window = UploadProbe::around("order.edi", bytes, sent_at, UploadProbe::SLACK);
/// // Before sending: the parcels that already match are not this upload.
/// let before = parcels.outbox(&cred, window.not_before, window.not_after).await?;
/// let probe = window.with_known_before(&before);
/// match parcels.upload_file(&cred, path, "order.edi", &UploadRoute::FromHeaders, None).await {
///     Ok(id) => println!("parcel {id}"),
///     Err(e) if e.is_outcome_unknown() => match parcels.find_upload(&cred, &probe).await? {
///         UploadSearch::Found(p) => println!("it arrived as parcel {}", p.parcel_id),
///         UploadSearch::NotFound => println!("not found: look again later before sending again"),
///         UploadSearch::Ambiguous(all) => println!("{} candidates: check by hand", all.len()),
///     },
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
    /// ParcelIDs listed before the upload was sent: none of them is this
    /// upload, whatever its name, size and date.
    pub known_before: BTreeSet<i64>,
}

impl UploadProbe {
    /// How far around the time of an upload the outbox is searched: the
    /// service's clock and ours may differ.
    pub const SLACK: Duration = Duration::from_secs(300);

    /// A probe for an upload sent at `sent_at`, matching creation times
    /// within `slack` on either side (in UTC). It knows no earlier parcel:
    /// give it those listed before sending with
    /// [`with_known_before`](Self::with_known_before).
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
            known_before: BTreeSet::new(),
        }
    }

    /// This probe, knowing that the parcels of `listed` (the outbox as
    /// listed before the upload was sent) are not the upload. Only those
    /// that match are kept.
    pub fn with_known_before<'a>(
        mut self,
        listed: impl IntoIterator<Item = &'a ParcelSummary>,
    ) -> Self {
        let ids: Vec<i64> = listed
            .into_iter()
            .filter(|p| self.matches(p))
            .map(|p| p.parcel_id)
            .collect();
        self.known_before.extend(ids);
        self
    }

    /// True when `parcel` is what this probe looks for: the same name and
    /// size, created in the window, and not known before. A parcel without
    /// a date matches on the rest alone.
    pub fn matches(&self, parcel: &ParcelSummary) -> bool {
        let in_window = parcel.date.as_ref().is_none_or(|d| {
            let t = d.unix_seconds();
            self.not_before.unix_seconds() <= t && t <= self.not_after.unix_seconds()
        });
        parcel.file_name == self.file_name
            && u64::try_from(parcel.bytes).ok() == Some(self.bytes)
            && in_window
            && !self.known_before.contains(&parcel.parcel_id)
    }

    /// What an outbox listing says of this upload (a parcel listed twice
    /// counts once).
    pub fn search(&self, listed: impl IntoIterator<Item = ParcelSummary>) -> UploadSearch {
        let mut found: Vec<ParcelSummary> = Vec::new();
        for p in listed {
            if self.matches(&p) && !found.iter().any(|f| f.parcel_id == p.parcel_id) {
                found.push(p);
            }
        }
        match found.len() {
            0 => UploadSearch::NotFound,
            1 => UploadSearch::Found(found.remove(0)),
            _ => UploadSearch::Ambiguous(found),
        }
    }
}

/// What [`find_upload`](ParcelClient::find_upload) found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UploadSearch {
    /// Exactly one new parcel matches: the upload arrived.
    Found(ParcelSummary),
    /// No new parcel matches: the upload did not arrive, or is not listed
    /// yet.
    NotFound,
    /// Several new parcels match; they are all here.
    Ambiguous(Vec<ParcelSummary>),
}

/// `t` as a UTC dateTime, to the second.
/// The size of the file to upload.
async fn file_size(path: &Path) -> Result<u64> {
    let meta = tokio::fs::metadata(path)
        .await
        .map_err(|source| Error::Io {
            operation: "upload",
            context: "reading the size of the file to upload".into(),
            source,
        })?;
    Ok(meta.len())
}

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
    /// the parcel with [`find_upload`](Self::find_upload) (with the parcels
    /// listed before sending excluded, see [`UploadProbe`]) instead of
    /// uploading again. [`upload_once`](Self::upload_once) does both.
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
        let size = file_size(path).await?;
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

    /// The parcels of the outbox created between `not_before` and
    /// `not_after` (SOAP: `ParcelOutBoxInProcess`, then
    /// `ParcelOutBoxArchive` over the window, page by page; REST:
    /// `outbox-list` over the window, page by page). A parcel may be listed
    /// twice. A read.
    pub async fn outbox(
        &self,
        cred: &Credential,
        not_before: DateTime,
        not_after: DateTime,
    ) -> Result<Vec<ParcelSummary>> {
        let mut listed = Vec::new();
        match self {
            ParcelClient::Soap(c) => {
                let session_id = Some(session(cred));
                listed.extend(summaries(
                    c.call(ParcelOutBoxInProcess {
                        session_id: session_id.clone(),
                    })
                    .await?,
                ));
                for page_no in 1..=MAX_PAGES {
                    let page = c
                        .call(ParcelOutBoxArchive {
                            session_id: session_id.clone(),
                            begin_date: not_before,
                            end_date: not_after,
                            page_no,
                            records_per_page: PAGE,
                            ..ParcelOutBoxArchive::default()
                        })
                        .await?;
                    let pages = page.as_ref().map_or(0, |p| p.total_pages);
                    let parcels = summaries(page);
                    let last = parcels.len() < PAGE as usize || page_no >= pages;
                    listed.extend(parcels);
                    if last {
                        break;
                    }
                }
            }
            ParcelClient::Rest(c) => {
                for page_no in 1..=MAX_PAGES as u32 {
                    let query = RestParcelQuery {
                        begin_date: Some(not_before.to_string()),
                        end_date: Some(not_after.to_string()),
                        page_no: Some(page_no),
                        records_per_page: Some(PAGE as u32),
                        ..RestParcelQuery::default()
                    };
                    let parcels = c.outbox_list(rest_auth(cred), &query).await?;
                    let last = parcels.len() < PAGE as usize;
                    listed.extend(parcels.iter().map(ParcelSummary::from_rest));
                    if last {
                        break;
                    }
                }
            }
        }
        Ok(listed)
    }

    /// Looks for an upload in the outbox listings ([`outbox`](Self::outbox)
    /// over the probe's window, then [`UploadProbe::search`]). See
    /// [`UploadProbe`] for how to use it after an upload whose outcome is
    /// unknown.
    pub async fn find_upload(
        &self,
        cred: &Credential,
        probe: &UploadProbe,
    ) -> Result<UploadSearch> {
        let listed = self.outbox(cred, probe.not_before, probe.not_after).await?;
        Ok(probe.search(listed))
    }

    /// Uploads a file at most once and, when the answer is lost, tells
    /// whether it arrived: lists the outbox (the parcels already there of
    /// the same name and size are not this upload), uploads with
    /// [`upload_file`](Self::upload_file), and on [`Error::OutcomeUnknown`]
    /// searches the outbox once with a probe that excludes them.
    ///
    /// `Err` means no parcel was created from this call: nothing was sent
    /// (the outbox could not be listed first, or the file could not be
    /// read), or the service refused it.
    pub async fn upload_once(
        &self,
        cred: &Credential,
        path: &Path,
        file_name: &str,
        route: &UploadRoute,
        observer: &dyn UploadObserver,
    ) -> Result<UploadOutcome> {
        let bytes = file_size(path).await?;
        let service = Service {
            client: self,
            cred,
            path,
            file_name,
            route,
            observer,
        };
        send_once(&service, file_name, bytes, observer).await
    }
}

/// Told of an upload's progress by [`ParcelClient::upload_once`]; every
/// method does nothing by default (`()` is the observer that does nothing).
pub trait UploadObserver: Send + Sync {
    /// The file is about to be sent: from now until [`answered`](Self::answered),
    /// a process that ends leaves an upload of unknown outcome, which
    /// `probe` (and [`ParcelClient::find_upload`]) can tell later.
    fn sending(&self, probe: &UploadProbe) {
        let _ = probe;
    }

    /// The count of file bytes sent so far.
    fn progress(&self, bytes: u64) {
        let _ = bytes;
    }

    /// The service answered with the new parcel's ID.
    fn answered(&self, parcel_id: i64) {
        let _ = parcel_id;
    }
}

impl UploadObserver for () {}

/// What [`ParcelClient::upload_once`] did.
#[derive(Debug)]
#[non_exhaustive]
#[allow(clippy::large_enum_variant)] // one per upload: its size does not matter
pub enum UploadOutcome {
    /// The service answered: the new parcel's ID.
    Sent(i64),
    /// The answer was lost and the file was not sent again.
    Unknown {
        /// Why the outcome is unknown ([`Error::OutcomeUnknown`]).
        error: Error,
        /// What the outbox showed right afterwards.
        search: Result<UploadSearch>,
        /// The search, to run again later with
        /// [`find_upload`](ParcelClient::find_upload) (a listing may lag).
        probe: UploadProbe,
    },
}

/// The side effects of one upload, all that [`send_once`] does to the
/// world: [`ParcelClient`] in real use, a simulator in tests (see
/// `sim::upload`).
pub(crate) trait UploadService {
    /// The outbox's parcels created in the window (see
    /// [`ParcelClient::outbox`]).
    async fn outbox(&self, not_before: DateTime, not_after: DateTime)
        -> Result<Vec<ParcelSummary>>;
    /// Sends the file once (see [`ParcelClient::upload_file`]).
    async fn send(&self) -> Result<i64>;
    /// The time now.
    fn now(&self) -> SystemTime;
}

/// The real service: one file through a [`ParcelClient`].
struct Service<'a> {
    client: &'a ParcelClient,
    cred: &'a Credential,
    path: &'a Path,
    file_name: &'a str,
    route: &'a UploadRoute,
    observer: &'a dyn UploadObserver,
}

impl UploadService for Service<'_> {
    async fn outbox(
        &self,
        not_before: DateTime,
        not_after: DateTime,
    ) -> Result<Vec<ParcelSummary>> {
        self.client.outbox(self.cred, not_before, not_after).await
    }

    async fn send(&self) -> Result<i64> {
        let progress = |n: u64| self.observer.progress(n);
        self.client
            .upload_file(
                self.cred,
                self.path,
                self.file_name,
                self.route,
                Some(&progress),
            )
            .await
    }

    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// The logic of [`ParcelClient::upload_once`] over any [`UploadService`]:
/// one listing before, at most one send, one search when the answer is
/// lost.
pub(crate) async fn send_once<S: UploadService>(
    service: &S,
    file_name: &str,
    bytes: u64,
    observer: &dyn UploadObserver,
) -> Result<UploadOutcome> {
    let sent_at = service.now();
    let window = UploadProbe::around(file_name, bytes, sent_at, UploadProbe::SLACK);
    let before = service.outbox(window.not_before, window.not_after).await?;
    let mut probe = window.with_known_before(&before);
    observer.sending(&probe);
    match service.send().await {
        Ok(parcel_id) => {
            observer.answered(parcel_id);
            Ok(UploadOutcome::Sent(parcel_id))
        }
        Err(error) if error.is_outcome_unknown() => {
            // The parcel was created between the start and now, give or
            // take the clocks' difference. The window starts where the
            // listing before began: a parcel older than that was never
            // checked against the earlier ones.
            let now = service.now().max(sent_at);
            probe.not_after = utc(now.checked_add(UploadProbe::SLACK).unwrap_or(now));
            let search = service
                .outbox(probe.not_before, probe.not_after)
                .await
                .map(|listed| probe.search(listed));
            Ok(UploadOutcome::Unknown {
                error,
                search,
                probe,
            })
        }
        Err(error) => Err(error),
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

    #[test]
    fn a_parcel_known_before_the_send_is_never_the_upload() {
        let sent = SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_000_000);
        let parcel = |id: i64, bytes: i64| ParcelSummary {
            parcel_id: id,
            file_name: "po.edi".into(),
            bytes,
            status: None,
            mailbox_id: None,
            ecgrid_id_from: None,
            ecgrid_id_to: None,
            date: Some(utc(sent)),
        };
        let probe = UploadProbe::around("po.edi", 10, sent, UploadProbe::SLACK);
        // Only the parcels that match are remembered.
        let probe = probe.with_known_before(&[parcel(1, 10), parcel(2, 11)]);
        assert_eq!(probe.known_before, BTreeSet::from([1]));
        assert_eq!(probe.search([parcel(1, 10)]), UploadSearch::NotFound);
        // Listed twice, counted once.
        assert_eq!(
            probe.search([parcel(1, 10), parcel(3, 10), parcel(3, 10)]),
            UploadSearch::Found(parcel(3, 10))
        );
        assert_eq!(
            probe.search([parcel(3, 10), parcel(4, 10)]),
            UploadSearch::Ambiguous(vec![parcel(3, 10), parcel(4, 10)])
        );
    }
}
