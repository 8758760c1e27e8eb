//! The fake's mailbox model: networks, mailboxes, trading-partner ECGrid IDs,
//! parcels, routing and the parcel event log. Pure state: no I/O, no clock
//! of its own (callers pass the time), no protocol. Who may call what is
//! decided in `state.rs`; this module only knows mailboxes.
//!
//! One upload makes one parcel with one ParcelID, seen by both ends: the
//! sender's mailbox lists it in its outbox, the receiver's in its inbox.
//! (The real service may number the two copies separately; the fake's single
//! number lets a test follow a file from one user to another.)
//!
//! Statuses use the contract's `ParcelStatus`: a delivered parcel is
//! `InBoxReady`; a download makes it `InBoxTransferred`; a confirm takes it
//! out of the inbox. The WSDL enumeration has no value for "confirmed" (the
//! docs name `InBoxArchived`, which the WSDL lacks), so a confirmed parcel
//! keeps `InBoxTransferred` and is marked confirmed.

use std::collections::BTreeMap;
use std::time::SystemTime;

use bytes::Bytes;

use crate::api::enums::ParcelStatus;

/// The default number of parcels per page of an inbox or outbox listing. The
/// real service's page size is not published.
pub const DEFAULT_PAGE_SIZE: usize = 25;

/// The network of the trading partner that `FakeServer::deliver`
/// sends from.
pub const PARTNER_NETWORK_ID: i32 = 2;
/// The partner's mailbox.
pub const PARTNER_MAILBOX_ID: i32 = 200;
/// The partner's ECGrid ID (`ZZ`/`PARTNER`).
pub const PARTNER_ECGRID_ID: i32 = 599_999;

/// The ECGrid ID a seeded user gets: this plus its UserID.
pub const ECGRID_ID_BASE: i32 = 500_000;

/// A network.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Network {
    /// `NetworkID`.
    pub id: i32,
    /// Its name.
    pub name: String,
}

/// A mailbox of a network.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mailbox {
    /// `MailboxID`.
    pub id: i32,
    /// The network it belongs to.
    pub network_id: i32,
    /// Its name.
    pub name: String,
    /// When it was made.
    pub created: SystemTime,
}

/// A trading partner's ECGrid ID: an EDI qualifier and ID living in a mailbox.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EcgridId {
    /// `ECGridID`.
    pub ecgrid_id: i32,
    /// The network of its mailbox.
    pub network_id: i32,
    /// The mailbox parcels addressed to it land in.
    pub mailbox_id: i32,
    /// The EDI qualifier (`ZZ`, `01`, ...).
    pub qualifier: String,
    /// The EDI ID (`ACME`).
    pub id: String,
}

/// A parcel (one file) as the fake holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Parcel {
    /// `ParcelID`.
    pub id: i64,
    /// The file name the uploader gave.
    pub file_name: String,
    /// The content.
    pub bytes: Bytes,
    /// When it was accepted.
    pub created: SystemTime,
    /// When its status last changed.
    pub status_date: SystemTime,
    /// The sender's ECGrid ID.
    pub from: i32,
    /// The receiver's ECGrid ID.
    pub to: i32,
    /// Whether it came from a user's upload (rather than from outside).
    pub uploaded: bool,
    /// Its inbound status.
    pub status: ParcelStatus,
    /// Confirmed: out of the inbox.
    pub confirmed: bool,
    /// Cancelled: out of both boxes.
    pub cancelled: bool,
}

/// What happened to a parcel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParcelEventKind {
    /// A user uploaded it.
    Uploaded,
    /// It reached the receiver's inbox (`InBoxReady`).
    Delivered,
    /// Its content was handed out; `no_update` when the status was left alone
    /// (`ParcelDownloadNoUpdate`).
    Downloaded {
        /// True for the downloads that change nothing.
        no_update: bool,
    },
    /// The receiver confirmed it.
    Confirmed,
    /// It went back to `InBoxReady`.
    Reset,
    /// It was cancelled.
    Cancelled,
}

impl ParcelEventKind {
    /// The kind's name (`Downloaded` for both kinds of download).
    pub fn as_str(&self) -> &'static str {
        match self {
            ParcelEventKind::Uploaded => "Uploaded",
            ParcelEventKind::Delivered => "Delivered",
            ParcelEventKind::Downloaded { .. } => "Downloaded",
            ParcelEventKind::Confirmed => "Confirmed",
            ParcelEventKind::Reset => "Reset",
            ParcelEventKind::Cancelled => "Cancelled",
        }
    }
}

/// One entry of the event log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ParcelEvent {
    /// Position in the fake's whole log, from 1, increasing.
    pub seq: u64,
    /// The parcel.
    pub parcel_id: i64,
    /// What happened.
    pub kind: ParcelEventKind,
    /// When.
    pub at: SystemTime,
}

/// Why the model refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// No such object, or not visible from the caller's mailbox.
    NotFound(&'static str),
    /// A parameter (or the file's content) is unusable; the text says why.
    Invalid(String),
}

/// One page of a listing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Page<T> {
    /// Items per page.
    pub page_size: usize,
    /// This page's number, from 1.
    pub page_number: usize,
    /// All items over all pages.
    pub total_records: usize,
    /// The number of pages (0 when there is nothing).
    pub total_pages: usize,
    /// This page's items.
    pub items: Vec<T>,
}

/// Page `page_number` (from 1; 0 counts as 1) of `items`, `page_size` a page.
pub fn page<T>(items: Vec<T>, page_number: usize, page_size: usize) -> Page<T> {
    let page_size = page_size.max(1);
    let page_number = page_number.max(1);
    let total_records = items.len();
    let total_pages = total_records.div_ceil(page_size);
    let items = items
        .into_iter()
        .skip((page_number - 1).saturating_mul(page_size))
        .take(page_size)
        .collect();
    Page {
        page_size,
        page_number,
        total_records,
        total_pages,
        items,
    }
}

/// Which parcels of a mailbox a listing shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Listing {
    /// Inbound, not confirmed, not cancelled (ready or downloaded).
    InBox,
    /// Inbound, any state but cancelled, created within the window.
    InBoxArchive(SystemTime, SystemTime),
    /// Outbound, not yet confirmed by the receiver, not cancelled.
    OutBoxInProcess,
    /// Outbound, any state, created within the window.
    OutBoxArchive(SystemTime, SystemTime),
}

/// Extra filters of a listing; `0`/`None` means any.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Filter {
    /// Only from this ECGrid ID.
    pub from: i32,
    /// Only to this ECGrid ID.
    pub to: i32,
    /// Only with this status.
    pub status: Option<ParcelStatus>,
}

/// Where a file goes, from its EDI envelope.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Address {
    /// The receiver's qualifier.
    pub qualifier: String,
    /// The receiver's ID.
    pub id: String,
}

/// The X12 ISA receiver (ISA07/ISA08) or the EDIFACT UNB recipient of
/// `content`, IDs trimmed.
pub fn address_of(content: &[u8]) -> Result<Address, String> {
    let start = content
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(content.len());
    let content = &content[start..];
    if content.starts_with(b"ISA") {
        x12_address(content)
    } else if content.starts_with(b"UNA") || content.starts_with(b"UNB") {
        edifact_address(content)
    } else {
        Err("the file starts with neither an X12 ISA nor an EDIFACT UNA/UNB segment, and no ECGrid IDs were given".into())
    }
}

fn x12_address(isa: &[u8]) -> Result<Address, String> {
    let separator = *isa
        .get(3)
        .ok_or("the ISA segment is cut short before its element separator")?;
    let mut elements = isa.split(|b| *b == separator);
    // ISA, ISA01 .. ISA08: the receiver qualifier is the 8th field, its ID the 9th.
    let fields: Vec<&[u8]> = elements.by_ref().take(9).collect();
    if fields.len() < 9 {
        return Err("the ISA segment is cut short before ISA08 (the receiver ID)".into());
    }
    address(fields[7], fields[8], "ISA07/ISA08")
}

fn edifact_address(content: &[u8]) -> Result<Address, String> {
    // Defaults of the UNA service string advice: component `:`, element `+`,
    // release `?`, segment terminator `'`.
    let (mut component, mut element, mut release, mut terminator) = (b':', b'+', b'?', b'\'');
    let mut rest = content;
    if let Some(una) = content.strip_prefix(b"UNA") {
        let advice = una
            .get(..6)
            .ok_or("the UNA service string advice is cut short")?;
        component = advice[0];
        element = advice[1];
        release = advice[3];
        terminator = advice[5];
        rest = &una[6..];
        let skip = rest
            .iter()
            .position(|b| !b.is_ascii_whitespace())
            .unwrap_or(rest.len());
        rest = &rest[skip..];
    }
    if !rest.starts_with(b"UNB") {
        return Err("no UNB segment follows the UNA service string advice".into());
    }
    // Split the UNB segment into elements and components, honouring the
    // release character.
    let mut elements: Vec<Vec<Vec<u8>>> = vec![vec![Vec::new()]];
    let mut escaped = false;
    // A UNB segment is short: a file with no terminator early on is not
    // scanned to its end.
    for &b in rest.iter().take(MAX_UNB) {
        if escaped {
            push_byte(&mut elements, b);
            escaped = false;
        } else if b == release {
            escaped = true;
        } else if b == terminator {
            break;
        } else if b == element {
            elements.push(vec![Vec::new()]);
        } else if b == component {
            if let Some(last) = elements.last_mut() {
                last.push(Vec::new());
            }
        } else {
            push_byte(&mut elements, b);
        }
    }
    // UNB, syntax, sender, recipient: the recipient is the 4th element,
    // `ID:QUALIFIER`.
    let recipient = elements
        .get(3)
        .ok_or("the UNB segment has no recipient element")?;
    let id = recipient.first().map(Vec::as_slice).unwrap_or_default();
    let qualifier = recipient.get(1).map(Vec::as_slice).unwrap_or_default();
    address(qualifier, id, "the UNB recipient")
}

/// The most bytes of a UNB segment read.
const MAX_UNB: usize = 4096;

fn push_byte(elements: &mut [Vec<Vec<u8>>], b: u8) {
    if let Some(component) = elements.last_mut().and_then(|e| e.last_mut()) {
        component.push(b);
    }
}

fn address(qualifier: &[u8], id: &[u8], what: &str) -> Result<Address, String> {
    let text = |b: &[u8]| String::from_utf8_lossy(b).trim().to_string();
    let (qualifier, id) = (text(qualifier), text(id));
    if id.is_empty() {
        return Err(format!("{what} names no receiver"));
    }
    Ok(Address { qualifier, id })
}

/// The whole mailbox model.
#[derive(Debug)]
pub struct Mailboxes {
    networks: BTreeMap<i32, Network>,
    mailboxes: BTreeMap<i32, Mailbox>,
    ids: BTreeMap<i32, EcgridId>,
    parcels: BTreeMap<i64, Parcel>,
    events: Vec<ParcelEvent>,
    next_parcel: i64,
    next_seq: u64,
    page_size: usize,
}

impl Mailboxes {
    /// An empty model with the partner network, mailbox and ECGrid ID that
    /// [`deliver`](Self::deliver) sends from.
    pub fn new(page_size: usize, now: SystemTime) -> Self {
        let mut model = Mailboxes {
            networks: BTreeMap::new(),
            mailboxes: BTreeMap::new(),
            ids: BTreeMap::new(),
            parcels: BTreeMap::new(),
            events: Vec::new(),
            next_parcel: 70_000_001,
            next_seq: 1,
            page_size: page_size.max(1),
        };
        model.add_mailbox(PARTNER_NETWORK_ID, PARTNER_MAILBOX_ID, "partner", now);
        model.add_ecgrid_id(PARTNER_ECGRID_ID, PARTNER_MAILBOX_ID, "ZZ", "PARTNER");
        model
    }

    /// The listing page size.
    pub fn page_size(&self) -> usize {
        self.page_size
    }

    /// Sets the listing page size (at least 1).
    pub fn set_page_size(&mut self, page_size: usize) {
        self.page_size = page_size.max(1);
    }

    /// Every mailbox.
    pub fn mailboxes(&self) -> impl Iterator<Item = &Mailbox> {
        self.mailboxes.values()
    }

    /// Adds a mailbox (and its network, when new); an existing one is kept.
    pub fn add_mailbox(&mut self, network_id: i32, mailbox_id: i32, name: &str, now: SystemTime) {
        self.networks.entry(network_id).or_insert_with(|| Network {
            id: network_id,
            name: format!("Network {network_id}"),
        });
        self.mailboxes.entry(mailbox_id).or_insert_with(|| Mailbox {
            id: mailbox_id,
            network_id,
            name: name.to_string(),
            created: now,
        });
    }

    /// Adds an ECGrid ID to an existing mailbox (false when the mailbox is
    /// unknown or the number or qualifier/ID pair is taken).
    pub fn add_ecgrid_id(
        &mut self,
        ecgrid_id: i32,
        mailbox_id: i32,
        qualifier: &str,
        id: &str,
    ) -> bool {
        let Some(mailbox) = self.mailboxes.get(&mailbox_id) else {
            return false;
        };
        if self.ids.contains_key(&ecgrid_id) || self.find_id(qualifier, id).is_some() {
            return false;
        }
        let network_id = mailbox.network_id;
        self.ids.insert(
            ecgrid_id,
            EcgridId {
                ecgrid_id,
                network_id,
                mailbox_id,
                qualifier: qualifier.to_string(),
                id: id.to_string(),
            },
        );
        true
    }

    /// A mailbox.
    pub fn mailbox(&self, mailbox_id: i32) -> Option<&Mailbox> {
        self.mailboxes.get(&mailbox_id)
    }

    /// A network.
    pub fn network(&self, network_id: i32) -> Option<&Network> {
        self.networks.get(&network_id)
    }

    /// An ECGrid ID.
    pub fn ecgrid_id(&self, ecgrid_id: i32) -> Option<&EcgridId> {
        self.ids.get(&ecgrid_id)
    }

    /// The first ECGrid ID of a mailbox: its address when it sends.
    pub fn mailbox_ecgrid_id(&self, mailbox_id: i32) -> Option<&EcgridId> {
        self.ids.values().find(|e| e.mailbox_id == mailbox_id)
    }

    fn find_id(&self, qualifier: &str, id: &str) -> Option<&EcgridId> {
        self.ids
            .values()
            .find(|e| e.qualifier.eq_ignore_ascii_case(qualifier) && e.id.eq_ignore_ascii_case(id))
    }

    fn log(&mut self, parcel_id: i64, kind: ParcelEventKind, at: SystemTime) -> ParcelEvent {
        let event = ParcelEvent {
            seq: self.next_seq,
            parcel_id,
            kind,
            at,
        };
        self.next_seq += 1;
        self.events.push(event);
        event
    }

    fn store(
        &mut self,
        file_name: &str,
        bytes: Bytes,
        from: i32,
        to: i32,
        uploaded: bool,
        now: SystemTime,
    ) -> (i64, Vec<ParcelEvent>) {
        let id = self.next_parcel;
        self.next_parcel += 1;
        self.parcels.insert(
            id,
            Parcel {
                id,
                file_name: file_name.to_string(),
                bytes,
                created: now,
                status_date: now,
                from,
                to,
                uploaded,
                status: ParcelStatus::InBoxReady,
                confirmed: false,
                cancelled: false,
            },
        );
        let mut events = Vec::with_capacity(2);
        if uploaded {
            events.push(self.log(id, ParcelEventKind::Uploaded, now));
        }
        events.push(self.log(id, ParcelEventKind::Delivered, now));
        (id, events)
    }

    /// An upload from `mailbox_id`: routed by `explicit` (`(from, to)` ECGrid
    /// IDs, `ParcelUploadMft`) or else by the file's EDI envelope. Nothing is
    /// stored when it cannot be routed.
    pub fn upload(
        &mut self,
        mailbox_id: i32,
        file_name: &str,
        bytes: Bytes,
        explicit: Option<(i32, i32)>,
        now: SystemTime,
    ) -> Result<(i64, Vec<ParcelEvent>), Refusal> {
        let (from, to) = match explicit {
            Some((from, to)) => {
                // ECGridIDFrom 0: the mailbox's own (first) ECGrid ID.
                let sender = if from == 0 {
                    self.mailbox_ecgrid_id(mailbox_id)
                } else {
                    self.ids.get(&from).filter(|e| e.mailbox_id == mailbox_id)
                };
                let sender = sender.ok_or_else(|| {
                    Refusal::Invalid(format!(
                        "ECGridIDFrom {from} is not an ECGrid ID of the caller's mailbox"
                    ))
                })?;
                let sender = sender.ecgrid_id;
                if !self.ids.contains_key(&to) {
                    return Err(Refusal::Invalid(format!(
                        "ECGridIDTo {to} is not a known ECGrid ID"
                    )));
                }
                (sender, to)
            }
            None => {
                let address = address_of(&bytes)
                    .map_err(|why| Refusal::Invalid(format!("the file cannot be routed: {why}")))?;
                let to = self
                    .find_id(&address.qualifier, &address.id)
                    .ok_or_else(|| {
                        Refusal::Invalid(format!(
                            "the file cannot be routed: no ECGrid ID has qualifier {:?} and ID {:?}",
                            address.qualifier, address.id
                        ))
                    })?
                    .ecgrid_id;
                let from = self
                    .mailbox_ecgrid_id(mailbox_id)
                    .ok_or(Refusal::NotFound("The caller's mailbox has no ECGrid ID."))?
                    .ecgrid_id;
                (from, to)
            }
        };
        Ok(self.store(file_name, bytes, from, to, true, now))
    }

    /// A parcel from the partner (`ZZ`/`PARTNER`) straight into `mailbox_id`'s
    /// inbox, addressed to the mailbox's first ECGrid ID.
    pub fn deliver(
        &mut self,
        mailbox_id: i32,
        file_name: &str,
        bytes: Bytes,
        now: SystemTime,
    ) -> Result<(i64, Vec<ParcelEvent>), Refusal> {
        let to = self
            .mailbox_ecgrid_id(mailbox_id)
            .ok_or(Refusal::NotFound("No such mailbox."))?
            .ecgrid_id;
        Ok(self.store(file_name, bytes, PARTNER_ECGRID_ID, to, false, now))
    }

    /// The mailbox a parcel's sender (`outbound`) or receiver lives in.
    pub fn mailbox_of(&self, parcel: &Parcel, outbound: bool) -> i32 {
        let id = if outbound { parcel.from } else { parcel.to };
        self.ids.get(&id).map(|e| e.mailbox_id).unwrap_or_default()
    }

    /// A parcel, whatever its state.
    pub fn parcel(&self, parcel_id: i64) -> Option<&Parcel> {
        self.parcels.get(&parcel_id)
    }

    /// The parcels of a listing for `mailbox_id`, in ParcelID order.
    pub fn list(&self, mailbox_id: i32, listing: Listing, filter: &Filter) -> Vec<&Parcel> {
        let within = |t: SystemTime, (begin, end): (SystemTime, SystemTime)| t >= begin && t <= end;
        self.parcels
            .values()
            .filter(|p| {
                let shown = match listing {
                    Listing::InBox => {
                        self.mailbox_of(p, false) == mailbox_id && !p.confirmed && !p.cancelled
                    }
                    Listing::InBoxArchive(b, e) => {
                        self.mailbox_of(p, false) == mailbox_id
                            && !p.cancelled
                            && within(p.created, (b, e))
                    }
                    Listing::OutBoxInProcess => {
                        p.uploaded
                            && self.mailbox_of(p, true) == mailbox_id
                            && !p.confirmed
                            && !p.cancelled
                    }
                    Listing::OutBoxArchive(b, e) => {
                        p.uploaded
                            && self.mailbox_of(p, true) == mailbox_id
                            && within(p.created, (b, e))
                    }
                };
                shown
                    && (filter.from == 0 || filter.from == p.from)
                    && (filter.to == 0 || filter.to == p.to)
                    && filter.status.as_ref().is_none_or(|s| *s == p.status)
            })
            .collect()
    }

    /// The inbound parcel `parcel_id` of a mailbox `may_see` accepts; cancelled
    /// parcels are gone.
    fn inbound(&self, parcel_id: i64, may_see: impl Fn(i32) -> bool) -> Result<&Parcel, Refusal> {
        self.parcels
            .get(&parcel_id)
            .filter(|p| !p.cancelled && may_see(self.mailbox_of(p, false)))
            .ok_or(Refusal::NotFound(
                "No parcel with that ParcelID is in the caller's inbox.",
            ))
    }

    /// A parcel visible to a mailbox `may_see` accepts, as sender or receiver.
    pub fn visible(
        &self,
        parcel_id: i64,
        may_see: impl Fn(i32) -> bool,
    ) -> Result<&Parcel, Refusal> {
        self.parcels
            .get(&parcel_id)
            .filter(|p| {
                may_see(self.mailbox_of(p, false))
                    || (p.uploaded && may_see(self.mailbox_of(p, true)))
            })
            .ok_or(Refusal::NotFound(
                "No parcel with that ParcelID is visible to the caller.",
            ))
    }

    /// Hands out an inbound parcel's content; unless `no_update`, an
    /// unconfirmed parcel becomes `InBoxTransferred`.
    pub fn download(
        &mut self,
        parcel_id: i64,
        no_update: bool,
        may_see: impl Fn(i32) -> bool,
        now: SystemTime,
    ) -> Result<(Parcel, ParcelEvent), Refusal> {
        self.inbound(parcel_id, may_see)?;
        if let Some(p) = self.parcels.get_mut(&parcel_id) {
            if !no_update && !p.confirmed && p.status != ParcelStatus::InBoxTransferred {
                p.status = ParcelStatus::InBoxTransferred;
                p.status_date = now;
            }
        }
        let event = self.log(parcel_id, ParcelEventKind::Downloaded { no_update }, now);
        let parcel = self
            .parcels
            .get(&parcel_id)
            .cloned()
            .ok_or(Refusal::NotFound("No such parcel."))?;
        Ok((parcel, event))
    }

    /// Checks a confirm without doing it: `Ok(false)` when the parcel is
    /// already confirmed (a repeat changes nothing).
    pub fn confirm_would_apply(
        &self,
        parcel_id: i64,
        may_see: impl Fn(i32) -> bool,
    ) -> Result<bool, Refusal> {
        Ok(!self.inbound(parcel_id, may_see)?.confirmed)
    }

    /// Confirms an inbound parcel: it leaves the inbox. `Ok(None)` when it
    /// was already confirmed.
    pub fn confirm(
        &mut self,
        parcel_id: i64,
        may_see: impl Fn(i32) -> bool,
        now: SystemTime,
    ) -> Result<Option<ParcelEvent>, Refusal> {
        if !self.confirm_would_apply(parcel_id, may_see)? {
            return Ok(None);
        }
        if let Some(p) = self.parcels.get_mut(&parcel_id) {
            p.confirmed = true;
            p.status = ParcelStatus::InBoxTransferred;
            p.status_date = now;
        }
        Ok(Some(self.log(parcel_id, ParcelEventKind::Confirmed, now)))
    }

    /// Puts an inbound parcel (downloaded or confirmed) back to `InBoxReady`.
    /// `Ok(None)` when it was ready already.
    pub fn reset(
        &mut self,
        parcel_id: i64,
        may_see: impl Fn(i32) -> bool,
        now: SystemTime,
    ) -> Result<Option<ParcelEvent>, Refusal> {
        let p = self.inbound(parcel_id, may_see)?;
        if p.status == ParcelStatus::InBoxReady && !p.confirmed {
            return Ok(None);
        }
        if let Some(p) = self.parcels.get_mut(&parcel_id) {
            p.status = ParcelStatus::InBoxReady;
            p.confirmed = false;
            p.status_date = now;
        }
        Ok(Some(self.log(parcel_id, ParcelEventKind::Reset, now)))
    }

    /// Cancels a parcel. The receiver (`ParcelDownloadCancel`) may cancel any
    /// parcel of its inbox; the sender (`POST /v2/parcels/cancel/{id}`) only
    /// one not yet downloaded or confirmed.
    pub fn cancel(
        &mut self,
        parcel_id: i64,
        as_sender: bool,
        may_see: impl Fn(i32) -> bool,
        now: SystemTime,
    ) -> Result<Option<ParcelEvent>, Refusal> {
        let p = if as_sender {
            self.parcels
                .get(&parcel_id)
                .filter(|p| p.uploaded && may_see(self.mailbox_of(p, true)))
                .ok_or(Refusal::NotFound(
                    "No parcel with that ParcelID is in the caller's outbox.",
                ))?
        } else {
            self.inbound(parcel_id, may_see)?
        };
        if p.cancelled {
            return Ok(None);
        }
        if as_sender
            && (p.confirmed
                || p.status != ParcelStatus::InBoxReady
                || self.was_downloaded(parcel_id))
        {
            return Err(Refusal::Invalid(
                "the parcel was already delivered: only an undelivered outbound parcel can be cancelled".into(),
            ));
        }
        if let Some(p) = self.parcels.get_mut(&parcel_id) {
            p.cancelled = true;
            p.status_date = now;
        }
        Ok(Some(self.log(parcel_id, ParcelEventKind::Cancelled, now)))
    }

    fn was_downloaded(&self, parcel_id: i64) -> bool {
        self.events.iter().any(|e| {
            e.parcel_id == parcel_id
                && matches!(e.kind, ParcelEventKind::Downloaded { no_update: false })
        })
    }

    /// The whole event log, in order.
    pub fn events(&self) -> &[ParcelEvent] {
        &self.events
    }

    /// The sequence number the next event will get.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ISA: &[u8] = b"ISA*00*          *00*          *ZZ*ALICE          *ZZ*BOB            *261123*1200*U*00401*000000001*0*P*>~GS*PO*X*Y~";

    fn model() -> Mailboxes {
        let now = SystemTime::UNIX_EPOCH;
        let mut m = Mailboxes::new(2, now);
        m.add_mailbox(1, 101, "alice", now);
        m.add_mailbox(1, 102, "bob", now);
        assert!(m.add_ecgrid_id(501, 101, "ZZ", "ALICE"));
        assert!(m.add_ecgrid_id(502, 102, "ZZ", "BOB"));
        assert!(!m.add_ecgrid_id(503, 102, "zz", "bob"), "pair taken");
        m
    }

    #[test]
    fn x12_and_edifact_addresses() {
        assert_eq!(
            address_of(ISA).unwrap(),
            Address {
                qualifier: "ZZ".into(),
                id: "BOB".into()
            }
        );
        let pipe = String::from_utf8(ISA.to_vec()).unwrap().replace('*', "|");
        assert_eq!(address_of(pipe.as_bytes()).unwrap().id, "BOB");
        let unb = b"UNB+UNOA:1+ALICE:ZZ+BOB:ZZ+261123:1200+1'UNH+1'";
        assert_eq!(
            address_of(unb).unwrap(),
            Address {
                qualifier: "ZZ".into(),
                id: "BOB".into()
            }
        );
        let una = b"UNA#*.? 'UNB*UNOA#1*ALICE#ZZ*B?*OB#ZZ*261123#1200*1'";
        assert_eq!(
            address_of(una).unwrap(),
            Address {
                qualifier: "ZZ".into(),
                id: "B*OB".into()
            }
        );
        assert!(address_of(b"ISA*00*").is_err());
        assert!(address_of(b"hello").is_err());
        assert!(address_of(b"UNB+UNOA:1+ALICE:ZZ'").is_err());
        // Only the first 4 KiB are read for the UNB segment.
        let long = format!("UNB+UNOA:1+{}:ZZ+BOB:ZZ'", "A".repeat(5000));
        assert!(address_of(long.as_bytes()).is_err());
    }

    #[test]
    fn life_cycle_and_listing() {
        let mut m = model();
        let t = SystemTime::UNIX_EPOCH;
        let mine = |id| move |mb: i32| mb == id;
        let (id, events) = m
            .upload(101, "a.x12", Bytes::from_static(ISA), None, t)
            .unwrap();
        assert_eq!(events.len(), 2);
        assert_eq!(m.list(102, Listing::InBox, &Filter::default()).len(), 1);
        assert_eq!(
            m.list(101, Listing::OutBoxInProcess, &Filter::default())
                .len(),
            1
        );
        assert!(
            m.download(id, false, mine(101), t).is_err(),
            "the sender cannot download"
        );
        let (p, _) = m.download(id, false, mine(102), t).unwrap();
        assert_eq!(p.status, ParcelStatus::InBoxTransferred);
        assert_eq!(
            m.list(102, Listing::InBox, &Filter::default()).len(),
            1,
            "at least once"
        );
        assert!(m.confirm(id, mine(102), t).unwrap().is_some());
        assert!(m.confirm(id, mine(102), t).unwrap().is_none());
        assert!(m.list(102, Listing::InBox, &Filter::default()).is_empty());
        assert!(m
            .list(101, Listing::OutBoxInProcess, &Filter::default())
            .is_empty());
        assert_eq!(
            m.list(101, Listing::OutBoxArchive(t, t), &Filter::default())
                .len(),
            1
        );
        assert!(m.reset(id, mine(102), t).unwrap().is_some());
        assert_eq!(m.parcel(id).unwrap().status, ParcelStatus::InBoxReady);
        assert!(m.cancel(id, false, mine(102), t).unwrap().is_some());
        assert!(m.download(id, true, mine(102), t).is_err());
        let kinds: Vec<_> = m.events().iter().map(|e| e.kind.as_str()).collect();
        assert_eq!(
            kinds,
            [
                "Uploaded",
                "Delivered",
                "Downloaded",
                "Confirmed",
                "Reset",
                "Cancelled"
            ]
        );
    }

    #[test]
    fn unroutable_stores_nothing() {
        let mut m = model();
        let t = SystemTime::UNIX_EPOCH;
        let nobody = String::from_utf8(ISA.to_vec())
            .unwrap()
            .replace("BOB   ", "CAROL ");
        assert!(matches!(
            m.upload(101, "x", Bytes::from(nobody), None, t),
            Err(Refusal::Invalid(_))
        ));
        assert!(matches!(
            m.upload(101, "x", Bytes::new(), Some((502, 501)), t),
            Err(Refusal::Invalid(_))
        ));
        assert!(m.events().is_empty());
        assert!(m
            .upload(101, "x", Bytes::new(), Some((501, 502)), t)
            .is_ok());
    }

    #[test]
    fn paging() {
        let p = page((1..=5).collect::<Vec<_>>(), 1, 2);
        assert_eq!(
            (p.total_records, p.total_pages, p.items),
            (5, 3, vec![1, 2])
        );
        assert_eq!(page((1..=5).collect::<Vec<_>>(), 3, 2).items, vec![5]);
        assert_eq!(page(Vec::<i32>::new(), 1, 2).total_pages, 0);
    }
}
