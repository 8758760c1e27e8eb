//! Every file of the fuzz target's seed corpus goes through the readers, as
//! the fuzz target feeds them (the fuzzer itself is run by hand, see
//! fuzz/README.md). A panic fails the test; known seeds must read as expected.

use ecgridos::wire::{read_request, read_response, Reply, SessionInfo};
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
            _ => {}
        }
        count += 1;
    }
    assert!(
        count >= 10,
        "the seed corpus is in the repository ({count} files)"
    );
}
