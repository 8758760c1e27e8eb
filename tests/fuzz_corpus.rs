//! Every file of the fuzz target's seed corpus goes through the readers, as
//! the fuzz target feeds them (the fuzzer itself is run by hand, see
//! fuzz/README.md). A panic fails the test; known seeds must read as expected.

use ecgridos::api::types::ParcelIdInfoCollection;
use ecgridos::wire::{
    read_request, read_response, read_response_canonical, read_response_in_full, Reply, SessionInfo,
};
use ecgridos::{ApiKey, SessionId};

const NS: &str = "https://os.ecgrid.io/";

#[test]
fn every_corpus_file_reads_without_panic() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz/corpus/read_response");
    let mut count = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        let key = read_response::<ApiKey>(&data, NS, "GenerateAPIKey", 64);
        let _ = read_response::<SessionId>(&data, NS, "Login", 64);
        let info = read_response::<SessionInfo>(&data, NS, "WhoAmI", 64);
        let _ = read_response::<bool>(&data, NS, "Logout", 64);
        let _ = read_response::<String>(&data, NS, "Version", 64);
        let _ = read_request(&data, NS, 64);
        // The fast paths read every seed exactly as the full reader does.
        let inbox = read_response::<Option<ParcelIdInfoCollection>>(&data, NS, "ParcelInBoxEx", 64);
        assert_eq!(
            inbox,
            read_response_in_full::<Option<ParcelIdInfoCollection>>(&data, NS, "ParcelInBoxEx", 64),
            "{path:?}"
        );
        assert_eq!(
            read_response::<String>(&data, NS, "GenerateAPIKey", 64),
            read_response_in_full::<String>(&data, NS, "GenerateAPIKey", 64),
            "{path:?}"
        );
        match path.file_stem().and_then(|s| s.to_str()) {
            Some("generate_ok" | "bom") => assert!(matches!(key, Ok(Reply::Result(_))), "{path:?}"),
            Some("whoami_full") => assert!(
                matches!(info, Ok(Reply::Result(ref i)) if i.user_id == 1002),
                "{path:?}"
            ),
            Some("fault_legacy" | "fault_category") => {
                assert!(matches!(key, Ok(Reply::Fault(_))), "{path:?}")
            }
            Some("doctype") => assert!(key.is_err()),
            Some("inbox_canonical") => {
                // Read by the scanner, not by the fallback.
                assert!(read_response_canonical::<Option<ParcelIdInfoCollection>>(
                    &data,
                    NS,
                    "ParcelInBoxEx",
                    64
                )
                .is_some());
                let Ok(Reply::Result(Some(inbox))) = inbox else {
                    panic!("{path:?}: {inbox:?}")
                };
                let list = inbox.parcel_id_info_list.unwrap();
                let parcel = list[0].as_ref().unwrap();
                assert_eq!(parcel.parcel_id, 9_007_199_254_740_993);
                let interchanges = parcel.interchanges.as_ref().unwrap();
                assert_eq!(interchanges.len(), 2);
                let first = interchanges[0].as_ref().unwrap();
                assert_eq!(first.status_message.as_deref(), Some("a\u{1B}b\0"));
                assert_eq!(first.header.as_deref(), Some("ISA*00*>~"));
                assert!(interchanges[1].is_none());
            }
            _ => {}
        }
        count += 1;
    }
    assert!(
        count >= 10,
        "the seed corpus is in the repository ({count} files)"
    );
}
