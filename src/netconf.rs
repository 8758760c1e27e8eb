//! Corporate-network settings of the HTTP layer: proxies (explicit and from
//! the environment), extra roots, client certificates, the minimum TLS
//! version, and the typing of proxy and TLS failures.
//!
//! TLS is rustls with the `ring` provider (see the README, "TLS backend").

use url::Url;

use crate::error::{BoxError, Error, ProxyRefusal, TlsFailure};
use crate::http::{Failure, HttpSettings, TlsVersion};

/// Makes `ring` the process's default rustls provider, unless the
/// application installed one first (then that one is used).
pub(crate) fn install_crypto_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Fails only when another thread installed one in between: fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}

/// The `ring` provider, for TLS configurations built by this crate.
#[cfg(feature = "fake")]
pub(crate) fn crypto_provider() -> std::sync::Arc<rustls::crypto::CryptoProvider> {
    std::sync::Arc::new(rustls::crypto::ring::default_provider())
}

/// Applies the proxy and TLS settings to a reqwest builder.
pub(crate) fn apply(
    mut builder: reqwest::ClientBuilder,
    settings: &HttpSettings,
) -> Result<reqwest::ClientBuilder, Error> {
    match &settings.proxy {
        Some(url) => {
            check_proxy_url(url.expose())?;
            let proxy = reqwest::Proxy::all(url.expose())
                .map_err(|_| Error::invalid_input("proxy", "is not a usable proxy URL"))?;
            let bypass = if settings.proxy_from_env {
                reqwest::NoProxy::from_env()
            } else {
                None
            };
            builder = builder.proxy(proxy.no_proxy(bypass));
        }
        // reqwest reads the environment's proxies by default.
        None if settings.proxy_from_env => {}
        None => builder = builder.no_proxy(),
    }
    for pem in &settings.root_certs {
        let certs = reqwest::Certificate::from_pem_bundle(&pem.0)
            .map_err(|e| Error::invalid_input("root certificate", format!("is not PEM: {e}")))?;
        if certs.is_empty() {
            return Err(Error::invalid_input(
                "root certificate",
                "holds no PEM certificate",
            ));
        }
        for cert in certs {
            builder = builder.add_root_certificate(cert);
        }
    }
    if let Some((cert, key)) = &settings.client_identity {
        let mut pem = cert.0.clone();
        pem.push(b'\n');
        pem.extend_from_slice(key.expose().as_bytes());
        // The parser's message is not shown: it could quote the key.
        let identity = reqwest::Identity::from_pem(&pem).map_err(|_| {
            Error::invalid_input(
                "client certificate",
                "needs a PEM certificate and its PEM private key (PKCS#8, PKCS#1 or SEC1)",
            )
        })?;
        builder = builder.identity(identity);
    }
    let min = match settings.tls_min {
        TlsVersion::Tls12 => reqwest::tls::Version::TLS_1_2,
        TlsVersion::Tls13 => reqwest::tls::Version::TLS_1_3,
    };
    Ok(builder.tls_version_min(min))
}

/// Refuses proxy URLs this client cannot use; the message never quotes the
/// URL, which may hold a password.
fn check_proxy_url(url: &str) -> Result<(), Error> {
    let parsed = Url::parse(url)
        .map_err(|_| Error::invalid_input("proxy", "is not a URL (http://host:port)"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(Error::invalid_input(
            "proxy",
            "scheme must be http or https",
        ));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(Error::invalid_input("proxy", "has no host"));
    }
    Ok(())
}

/// The credentials of the proxies `settings` may send requests through (the
/// explicit one, else those of HTTPS_PROXY, HTTP_PROXY and ALL_PROXY when
/// the environment is honoured): each password as written in the URL and
/// decoded, and `user:password` (what `Proxy-Authorization: Basic` carries
/// in base64). A proxy's error page may quote that header back.
pub(crate) fn proxy_secrets(settings: &HttpSettings) -> Vec<crate::secret::Secret> {
    let mut urls: Vec<String> = settings
        .proxy
        .iter()
        .map(|p| p.expose().to_string())
        .collect();
    if settings.proxy_from_env {
        for name in [
            "HTTPS_PROXY",
            "https_proxy",
            "HTTP_PROXY",
            "http_proxy",
            "ALL_PROXY",
            "all_proxy",
        ] {
            urls.extend(std::env::var(name).ok());
        }
    }
    let mut secrets = Vec::new();
    for url in urls {
        let Ok(parsed) = Url::parse(&url) else {
            continue;
        };
        let Some(password) = parsed.password() else {
            continue;
        };
        let decode = crate::secret::percent_decode;
        let (user, clear) = (decode(parsed.username()), decode(password));
        for text in [password.to_string(), format!("{user}:{clear}"), clear] {
            secrets.push(crate::secret::Secret::new(text));
        }
    }
    secrets
}

/// The proxy requests to `endpoint` go through under `settings` (the same
/// rules reqwest applies), as `scheme://host:port` with any credentials
/// replaced by `<redacted>`; `None` when they go direct.
pub(crate) fn proxy_for(endpoint: &Url, settings: &HttpSettings) -> Option<String> {
    use hyper_util::client::proxy::matcher::Matcher;
    let matcher = match (&settings.proxy, settings.proxy_from_env) {
        (Some(url), honour_env) => {
            let bypass = if honour_env {
                std::env::var("NO_PROXY")
                    .or_else(|_| std::env::var("no_proxy"))
                    .unwrap_or_default()
            } else {
                String::new()
            };
            Matcher::builder()
                .all(url.expose().to_string())
                .no(bypass)
                .build()
        }
        (None, true) => Matcher::from_env(),
        (None, false) => return None,
    };
    let uri = endpoint.as_str().parse::<http::Uri>().ok()?;
    let intercept = matcher.intercept(&uri)?;
    let proxy = intercept.uri();
    let auth = if intercept.basic_auth().is_some() || intercept.raw_auth().is_some() {
        "<redacted>@"
    } else {
        ""
    };
    Some(format!(
        "{}://{auth}{}:{}",
        proxy.scheme_str().unwrap_or("http"),
        proxy.host().unwrap_or_default(),
        proxy
            .port_u16()
            .unwrap_or(if proxy.scheme_str() == Some("https") {
                443
            } else {
                80
            })
    ))
}

/// A send error that is a proxy refusal or a TLS failure (in both cases
/// nothing reached the service) as that failure; any other error back.
pub(crate) fn classify(err: reqwest::Error, via_proxy: bool) -> Result<Failure, reqwest::Error> {
    if let Some(failure) = find_rustls_error(&err).and_then(|e| tls_failure(e, err.is_connect())) {
        return Ok(Failure::Tls {
            failure,
            source: Box::new(err.without_url()),
        });
    }
    if !via_proxy {
        return Err(err);
    }
    // The CONNECT tunnel's errors are not public types; their text is
    // hyper-util's ("tunnel error: ...").
    let tunnel = chain(&err).find_map(|e| {
        let text = e.to_string();
        text.strip_prefix("tunnel error: ").map(str::to_string)
    });
    let refusal = match tunnel.as_deref() {
        Some("proxy authorization required") => ProxyRefusal::AuthenticationRequired,
        Some("unsuccessful") => ProxyRefusal::TunnelRefused,
        Some(_) => ProxyRefusal::Unreachable,
        // Plain HTTP through a proxy: the only connection opened is to the
        // proxy, so a connection failure is the proxy's.
        None if err.is_connect() => ProxyRefusal::Unreachable,
        None => return Err(err),
    };
    let source: BoxError = Box::new(err.without_url());
    Ok(Failure::Proxy {
        refusal,
        source: Some(source),
    })
}

/// The error and its sources; an `io::Error` wrapping another error counts
/// that one too (its `source()` skips it).
fn chain<'a>(
    err: &'a (dyn std::error::Error + 'static),
) -> impl Iterator<Item = &'a (dyn std::error::Error + 'static)> {
    let mut pending: Vec<&'a (dyn std::error::Error + 'static)> = vec![err];
    std::iter::from_fn(move || {
        let current = pending.pop()?;
        if let Some(next) = current.source() {
            pending.push(next);
        }
        if let Some(inner) = current
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            pending.push(inner);
        }
        Some(current)
    })
}

fn find_rustls_error(err: &reqwest::Error) -> Option<&rustls::Error> {
    chain(err).find_map(|e| e.downcast_ref::<rustls::Error>())
}

/// Which check a rustls error reports; `None` when it does not prove the
/// handshake failed (a failure on an established connection).
fn tls_failure(err: &rustls::Error, during_connect: bool) -> Option<TlsFailure> {
    use rustls::{AlertDescription as Alert, CertificateError as Cert};
    Some(match err {
        rustls::Error::InvalidCertificate(cert) => match cert {
            Cert::UnknownIssuer | Cert::BadSignature => TlsFailure::UntrustedChain,
            Cert::NotValidForName | Cert::NotValidForNameContext { .. } => TlsFailure::NameMismatch,
            Cert::Expired
            | Cert::ExpiredContext { .. }
            | Cert::NotValidYet
            | Cert::NotValidYetContext { .. } => TlsFailure::Expired,
            _ => TlsFailure::Other,
        },
        rustls::Error::PeerIncompatible(_)
        | rustls::Error::AlertReceived(Alert::ProtocolVersion) => TlsFailure::ProtocolVersion,
        // With TLS 1.3 the server judges the client certificate after the
        // client finished its side of the handshake, so these alerts can
        // arrive while the request is being sent; the server's TLS layer
        // refused the connection before any request byte reached the service.
        rustls::Error::AlertReceived(Alert::CertificateRequired) => TlsFailure::NoClientCertificate,
        rustls::Error::AlertReceived(
            Alert::BadCertificate
            | Alert::UnknownCA
            | Alert::CertificateUnknown
            | Alert::UnsupportedCertificate
            | Alert::CertificateRevoked
            | Alert::CertificateExpired
            | Alert::AccessDenied,
        ) => TlsFailure::ClientCertificateRejected,
        // Alerts only sent during a handshake.
        rustls::Error::AlertReceived(
            Alert::HandshakeFailure | Alert::DecryptError | Alert::IllegalParameter,
        ) => TlsFailure::Other,
        _ if during_connect => TlsFailure::Other,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::ProxyUrl;

    #[test]
    fn proxy_route_follows_settings_and_hides_credentials() {
        let endpoint = Url::parse("https://os.ecgrid.io/v4.1/prod/ECGridOS.asmx").unwrap();
        let settings = HttpSettings {
            proxy: Some(ProxyUrl::new("http://bob:sekrit@proxy.corp:3128")),
            proxy_from_env: false,
            ..HttpSettings::default()
        };
        let route = proxy_for(&endpoint, &settings).unwrap();
        assert_eq!(route, "http://<redacted>@proxy.corp:3128");
        let direct = HttpSettings {
            proxy_from_env: false,
            ..HttpSettings::default()
        };
        assert_eq!(proxy_for(&endpoint, &direct), None);
    }

    #[test]
    fn bad_proxy_urls_are_refused_without_quoting_them() {
        for url in [
            "not a url sekrit",
            "ftp://u:sekrit@p:21",
            "socks5://u:sekrit@p:1",
        ] {
            let err = check_proxy_url(url).unwrap_err();
            assert!(err.is_invalid_input());
            assert!(!format!("{err} {err:?}").contains("sekrit"));
        }
        assert!(check_proxy_url("http://u:p@proxy:3128").is_ok());
    }

    #[test]
    fn rustls_errors_name_the_failed_check() {
        use rustls::{AlertDescription as Alert, CertificateError as Cert};
        let cert = |c| rustls::Error::InvalidCertificate(c);
        assert_eq!(
            tls_failure(&cert(Cert::UnknownIssuer), true),
            Some(TlsFailure::UntrustedChain)
        );
        assert_eq!(
            tls_failure(&cert(Cert::NotValidForName), true),
            Some(TlsFailure::NameMismatch)
        );
        assert_eq!(
            tls_failure(&cert(Cert::Expired), true),
            Some(TlsFailure::Expired)
        );
        assert_eq!(
            tls_failure(
                &rustls::Error::AlertReceived(Alert::CertificateRequired),
                false
            ),
            Some(TlsFailure::NoClientCertificate)
        );
        assert_eq!(
            tls_failure(&rustls::Error::AlertReceived(Alert::UnknownCA), false),
            Some(TlsFailure::ClientCertificateRejected)
        );
        assert_eq!(
            tls_failure(&rustls::Error::AlertReceived(Alert::DecryptError), false),
            Some(TlsFailure::Other)
        );
        // A decryption error on an established connection proves nothing
        // about delivery: left to the outcome-unknown rules.
        assert_eq!(tls_failure(&rustls::Error::DecryptError, false), None);
        assert_eq!(
            tls_failure(&rustls::Error::DecryptError, true),
            Some(TlsFailure::Other)
        );
    }

    #[test]
    fn io_errors_wrapping_rustls_errors_are_walked() {
        let io = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer),
        );
        let found = chain(&io).find_map(|e| e.downcast_ref::<rustls::Error>());
        assert!(found.is_some());
    }
}
