//! Reading a large typed answer: a `ParcelInBoxEx` response with 1,000
//! `ParcelIDInfo` records of 2 interchanges each, through the generated
//! codec. Prints time per response and heap allocations per record, and
//! writes the response to `target/bench-inbox-1000.xml` so that
//! `bench/compare_inbox_zeep.py` reads the same bytes with zeep.

use std::hint::black_box;
use std::time::Instant;

use ecgridos::api::types::ParcelIdInfoCollection;
use ecgridos::wire::{read_response, Reply};

#[path = "alloc_counter.rs"]
mod alloc_counter;

#[global_allocator]
static ALLOC: alloc_counter::Counting = alloc_counter::Counting;

const NS: &str = "https://os.ecgrid.io/";
const RECORDS: usize = 1_000;

fn interchange(i: usize, j: usize) -> String {
    format!(
        "<InterchangeIDInfo><InterchangeID>{id}</InterchangeID><InterchangeProcessDate>2026-11-01T10:00:{s:02}.1234567</InterchangeProcessDate><NetworkIDFrom>1</NetworkIDFrom><NetworkNameFrom>Loren Data</NetworkNameFrom><MailboxIDFrom>{i}</MailboxIDFrom><NetworkIDTo>2</NetworkIDTo><NetworkNameTo>Other VAN</NetworkNameTo><MailboxIDTo>77</MailboxIDTo><Standard>X12</Standard><Bytes>1482</Bytes><InterchangeControlID>{id:09}</InterchangeControlID><InterchangeDateTime>2026-11-01T09:59:00</InterchangeDateTime><ArchiveDate>0001-01-01T00:00:00</ArchiveDate><StatusDate>2026-11-01T10:00:00Z</StatusDate><StatusCode>Delivered</StatusCode><StatusMessage>OK</StatusMessage><DocumentType>850</DocumentType><Header>ISA*00*          *00*          *ZZ*SENDER         *ZZ*RECEIVER       *261101*0959*U*00401*{id:09}*0*P*&gt;~</Header></InterchangeIDInfo>",
        id = i * 2 + j,
        s = (i + j) % 60
    )
}

fn response() -> String {
    let mut body = String::with_capacity(RECORDS * 3_000);
    body.push_str(r#"<?xml version="1.0" encoding="utf-8"?><soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:xsd="http://www.w3.org/2001/XMLSchema"><soap:Body><ParcelInBoxExResponse xmlns="https://os.ecgrid.io/"><ParcelInBoxExResult><PageSize>1000</PageSize><PageNumber>1</PageNumber><Count>1000</Count><TotalRecords>1000</TotalRecords><TotalPages>1</TotalPages><ParcelIDInfoList>"#);
    for i in 0..RECORDS {
        body.push_str(&format!(
            "<ParcelIDInfo><ParcelBytes>2964</ParcelBytes><ParcelDate>2026-11-01T10:00:00.1234567-05:00</ParcelDate><ActualBytes>2964</ActualBytes><NetworkIDFrom>1</NetworkIDFrom><NetworkNameFrom>Loren Data</NetworkNameFrom><MailboxIDFrom>{i}</MailboxIDFrom><MailboxNameFrom>Sender {i}</MailboxNameFrom><NetworkIDTo>2</NetworkIDTo><NetworkNameTo>Other VAN</NetworkNameTo><MailboxIDTo>77</MailboxIDTo><MailboxNameTo>Receiver</MailboxNameTo><FileName>parcel-{i}.edi</FileName><MailbagControlID>MB{i:06}</MailbagControlID><ArchiveDate>0001-01-01T00:00:00</ArchiveDate><StatusDate>2026-11-01T10:00:01Z</StatusDate><StatusCode>InBoxReady</StatusCode><StatusMessage>Ready</StatusMessage><LocalStatus>0</LocalStatus><LocalStatusDate>2026-11-01T10:00:01</LocalStatusDate><Valid>Valid</Valid><Acknowledgment>None</Acknowledgment><Direction>InBox</Direction><Interchanges>{}{}</Interchanges><ParcelID>{}</ParcelID></ParcelIDInfo>",
            interchange(i, 0),
            interchange(i, 1),
            9_007_199_254_740_000_i64 + i as i64
        ));
    }
    body.push_str("</ParcelIDInfoList></ParcelInBoxExResult></ParcelInBoxExResponse></soap:Body></soap:Envelope>");
    body
}

fn read(xml: &[u8]) -> Option<ParcelIdInfoCollection> {
    match read_response::<Option<ParcelIdInfoCollection>>(xml, NS, "ParcelInBoxEx", 64) {
        Ok(Reply::Result(value)) => value,
        other => panic!("bench input must read: {other:?}"),
    }
}

fn main() {
    let xml = response();
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/target/bench-inbox-1000.xml");
    if let Err(e) = std::fs::write(path, &xml) {
        eprintln!("cannot write {path}: {e}");
    }
    let bytes = xml.as_bytes();
    let first = read(bytes).expect("a collection");
    let list = first.parcel_id_info_list.as_ref().expect("a list");
    assert_eq!(list.len(), RECORDS);
    assert!(list
        .items()
        .all(|p| p.interchanges.as_ref().map(|i| i.len()) == Some(2)));

    for _ in 0..3 {
        black_box(read(black_box(bytes)));
    }
    let runs: u32 = 30;
    let before = alloc_counter::allocations();
    let started = Instant::now();
    for _ in 0..runs {
        black_box(read(black_box(bytes)));
    }
    let elapsed = started.elapsed() / runs;
    let allocs = (alloc_counter::allocations() - before) as f64 / f64::from(runs);
    println!(
        "inbox figures: {:.3} ms per ParcelInBoxEx response ({} records, 2 interchanges each, {} KiB), {:.1} heap allocations per record",
        elapsed.as_secs_f64() * 1e3,
        RECORDS,
        bytes.len() / 1024,
        allocs / RECORDS as f64
    );
    println!("ecgridos_ns_per_response={}", elapsed.as_nanos());
}
