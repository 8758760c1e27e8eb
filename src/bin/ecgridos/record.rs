//! `ecgridos record`: a pass-through SOAP proxy that records each exchange
//! as one JSON line, without credentials or parcel content.

use std::time::Duration;

use ecgridos::migrate::record::Recorder;
use serde_json::json;

use crate::cli::{Global, RecordArgs};
use crate::net::with_net;
use crate::output::{print_or_fail, say, usage, Exit};

pub async fn record(g: &Global, args: &RecordArgs) -> Exit {
    let builder = || -> Result<_, ecgridos::Error> {
        Ok(with_net!(
            Recorder::builder(&args.upstream, &args.out)
                .listen(args.listen)
                .namespace(&g.namespace)
                .idle_timeout(Duration::from_secs_f64(args.idle_timeout))
                .header_timeout(Duration::from_secs_f64(args.header_timeout))
                .body_timeout(Duration::from_secs_f64(args.body_timeout))
                .max_connections(args.max_connections)
                .max_held_bytes(args.max_held_bytes)
                .connect_timeout(Duration::from_secs_f64(g.timeout))
                .allow_insecure_http(g.allow_insecure_http),
            g
        ))
    };
    let builder = match builder() {
        Ok(b) => b,
        Err(e) => return usage(e),
    };
    let recorder = match builder.start().await {
        Ok(r) => r,
        Err(e) if e.kind() == std::io::ErrorKind::InvalidInput => return usage(e),
        Err(e) => {
            say!(
                "error: cannot start recording on {} into {}: {e}",
                args.listen,
                args.out.display()
            );
            return Exit::Failure;
        }
    };
    if !args.listen.ip().is_loopback() {
        say!(
            "warning: listening on {}: clients reach this proxy over plain HTTP, so their \
             credentials cross the network unencrypted",
            args.listen
        );
    }
    // Signals are listened for before the ready line tells anyone to send one.
    let signalled = crate::mock::shutdown_signal();
    let ready = json!({
        "listen": recorder.addr().to_string(),
        "soap_url": recorder.soap_url(),
        "out": args.out.display().to_string(),
    });
    if print_or_fail(&ready.to_string()) != Exit::Ok {
        recorder.shutdown().await;
        return Exit::Failure;
    }
    signalled.await;
    let summary = recorder.shutdown().await;
    if !g.quiet {
        say!(
            "recorded {} exchanges into {}",
            summary.records,
            args.out.display()
        );
    }
    if summary.failed > 0 {
        say!("error: {} records could not be written", summary.failed);
        return Exit::Failure;
    }
    Exit::Ok
}
