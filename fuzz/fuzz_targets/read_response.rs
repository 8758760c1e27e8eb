//! Feeds arbitrary bytes to the response and request readers, for every
//! result type. Any panic, hang or unbounded allocation is a bug.
#![no_main]

use ecgridos::api::types::ParcelIdInfoCollection;
use ecgridos::wire::{read_request, read_response, read_response_in_full, SessionInfo};
use ecgridos::{ApiKey, SessionId};
use libfuzzer_sys::fuzz_target;

const NS: &str = "https://os.ecgrid.io/";

fuzz_target!(|data: &[u8]| {
    let _ = read_response::<ApiKey>(data, NS, "GenerateAPIKey", 64);
    let _ = read_response::<SessionId>(data, NS, "Login", 64);
    let _ = read_response::<SessionInfo>(data, NS, "WhoAmI", 64);
    let _ = read_response::<bool>(data, NS, "Logout", 64);
    let _ = read_response::<String>(data, NS, "Version", 64);
    // The fast path for canonical responses must read exactly as the full reader.
    assert_eq!(
        read_response::<String>(data, NS, "GenerateAPIKey", 64),
        read_response_in_full::<String>(data, NS, "GenerateAPIKey", 64)
    );
    // So must the byte scanner for typed results in the canonical shape.
    assert_eq!(
        read_response::<Option<ParcelIdInfoCollection>>(data, NS, "ParcelInBoxEx", 64),
        read_response_in_full::<Option<ParcelIdInfoCollection>>(data, NS, "ParcelInBoxEx", 64)
    );
    let _ = read_request(data, NS, 64);
});
