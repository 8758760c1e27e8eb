//! Corporate-network options (`--proxy`, `--ca-cert`, `--client-cert`,
//! `--client-key`, `--tls-min`, `--no-env-proxy`) applied to both clients.

use std::path::Path;

use ecgridos::{Error, PrivateKeyPem, TlsVersion};

use crate::cli::{Global, TlsMinArg};

/// The network options with their files read.
pub struct Net {
    pub proxy: Option<String>,
    pub proxy_from_env: bool,
    pub roots: Vec<Vec<u8>>,
    pub identity: Option<(Vec<u8>, PrivateKeyPem)>,
    pub tls_min: TlsVersion,
}

fn read(flag: &'static str, path: &Path) -> Result<Vec<u8>, Error> {
    // Only the path and the OS error are shown, never the content.
    std::fs::read(path).map_err(|e| Error::InvalidInput {
        field: flag.into(),
        reason: format!("cannot read {}: {e}", path.display()).into(),
    })
}

impl Net {
    /// Reads the files the options name.
    pub fn from_global(g: &Global) -> Result<Net, Error> {
        let roots = g
            .ca_cert
            .iter()
            .map(|path| read("--ca-cert", path))
            .collect::<Result<Vec<_>, _>>()?;
        let identity = match (&g.client_cert, &g.client_key) {
            (Some(cert), Some(key)) => {
                let key = read("--client-key", key)?;
                let key = String::from_utf8(key).map_err(|_| Error::InvalidInput {
                    field: "--client-key".into(),
                    reason: "is not a PEM file".into(),
                })?;
                Some((read("--client-cert", cert)?, PrivateKeyPem::new(key)))
            }
            _ => None,
        };
        Ok(Net {
            proxy: g.proxy.clone(),
            proxy_from_env: !g.no_env_proxy,
            roots,
            identity,
            tls_min: match g.tls_min {
                TlsMinArg::V12 => TlsVersion::Tls12,
                TlsMinArg::V13 => TlsVersion::Tls13,
            },
        })
    }
}

/// Applies the network options of `g` to a `ClientBuilder` or a
/// `RestClientBuilder` (they share these setters, not a trait).
macro_rules! with_net {
    ($builder:expr, $g:expr) => {{
        let net = crate::net::Net::from_global($g)?;
        let mut builder = $builder
            .proxy_from_env(net.proxy_from_env)
            .tls_min_version(net.tls_min);
        if let Some(proxy) = net.proxy {
            builder = builder.proxy(proxy);
        }
        for root in net.roots {
            builder = builder.add_root_certificate(root);
        }
        if let Some((cert, key)) = net.identity {
            builder = builder.client_certificate(cert, key);
        }
        builder
    }};
}
pub(crate) use with_net;
