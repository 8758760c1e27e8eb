//! The REST v2 client: the migration target of the SOAP calls, with the same
//! error type, limits, timeouts and retry rules.

use std::sync::Arc;

use reqwest::Method;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::Value;
use url::Url;

use crate::error::{Error, Result};
use crate::http::{parse_endpoint, Http, HttpReply, HttpSettings};
use crate::operations::{Idempotency, UserId, ROTATION_UNKNOWN};
use crate::secret::{ApiKey, Password, SessionId};
use crate::wire::stream::JsonContentExtractor;
use crate::wire::AuthLevel;

/// The production REST base URL.
pub const DEFAULT_REST_URL: &str = "https://rest.ecgrid.io";

/// How a REST call authenticates.
#[derive(Clone, Copy, Debug)]
pub enum RestAuth<'a> {
    /// `X-API-Key: KEY`.
    ApiKey(&'a ApiKey),
    /// `Authorization: Bearer TOKEN`, with a token from [`RestClient::login`].
    Bearer(&'a SessionId),
}

impl<'a> From<&'a ApiKey> for RestAuth<'a> {
    fn from(key: &'a ApiKey) -> Self {
        RestAuth::ApiKey(key)
    }
}

impl<'a> From<&'a SessionId> for RestAuth<'a> {
    fn from(token: &'a SessionId) -> Self {
        RestAuth::Bearer(token)
    }
}

impl RestAuth<'_> {
    fn secret(&self) -> &str {
        match self {
            RestAuth::ApiKey(k) => k.expose(),
            RestAuth::Bearer(t) => t.expose(),
        }
    }
}

/// The caller as `GET /v2/users/me` describes it.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RestUser {
    /// The user's ID.
    pub user_id: i32,
    /// The login name.
    #[serde(default)]
    pub login: String,
    /// The network.
    #[serde(default)]
    pub network_id: i32,
    /// The mailbox.
    #[serde(default)]
    pub mailbox_id: i32,
    /// The authority level.
    #[serde(default, deserialize_with = "auth_level")]
    pub auth_level: Option<AuthLevel>,
}

fn auth_level<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<Option<AuthLevel>, D::Error> {
    Ok(Option::<String>::deserialize(d)?.and_then(|s| s.parse().ok()))
}

/// Builds a [`RestClient`].
#[derive(Clone, Debug)]
#[must_use]
pub struct RestClientBuilder {
    base_url: String,
    http: HttpSettings,
}

impl Default for RestClientBuilder {
    fn default() -> Self {
        RestClientBuilder {
            base_url: DEFAULT_REST_URL.to_string(),
            http: HttpSettings::default(),
        }
    }
}

impl RestClientBuilder {
    /// The base URL (default [`DEFAULT_REST_URL`]), optionally with a path
    /// prefix. [`build`](Self::build) refuses one with a query or fragment:
    /// the endpoint paths are appended to its path as segments.
    pub fn base_url(mut self, url: impl Into<String>) -> Self {
        self.base_url = url.into();
        self
    }

    crate::http::http_setters!();

    /// Builds the client; fails on an invalid base URL (one with a query or
    /// fragment included).
    pub fn build(self) -> Result<RestClient> {
        let mut url = parse_endpoint(&self.base_url)?;
        if url.query().is_some() || url.fragment().is_some() {
            return Err(Error::invalid_input(
                "base URL",
                "must not have a query or fragment (the API paths are appended to its path)",
            ));
        }
        if url.cannot_be_a_base() {
            return Err(Error::invalid_input("base URL", "cannot carry a path"));
        }
        // One trailing slash at most is dropped, so that the segments follow
        // the prefix directly.
        if let Ok(mut segments) = url.path_segments_mut() {
            segments.pop_if_empty();
        }
        if self.http.retry.max_attempts == 0 {
            return Err(Error::invalid_input(
                "retry",
                "max_attempts must be at least 1",
            ));
        }
        let http = Http::new(&url, self.http)?;
        Ok(RestClient {
            inner: Arc::new(RestInner {
                http,
                base: url.as_str().trim_end_matches('/').to_string(),
                url,
            }),
        })
    }
}

#[derive(Debug)]
struct RestInner {
    http: Http,
    /// The base URL as given (without a trailing slash), for display.
    base: String,
    /// The parsed base URL; call URLs are built from it segment by segment.
    url: Url,
}

/// An async client of the ECGridOS REST v2 API. Cheap to clone.
///
/// ```no_run
/// # async fn run() -> Result<(), ecgridos::Error> {
/// use ecgridos::{ApiKey, RestClient, UserId};
/// let rest = RestClient::builder().build()?;
/// let key = ApiKey::new("my-key");
/// let new_key = rest.generate_api_key(&key, UserId::from(42)).await?;
/// # let _ = new_key; Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct RestClient {
    inner: Arc<RestInner>,
}

/// One REST endpoint: what the error messages and spans call it, and whether
/// it may be retried.
struct Endpoint {
    name: &'static str,
    method: Method,
    idempotency: Idempotency,
}

const KEY_GENERATE: Endpoint = Endpoint {
    name: "POST /v2/users/key-generate",
    method: Method::POST,
    idempotency: Idempotency::NotIdempotent {
        if_unknown: ROTATION_UNKNOWN,
    },
};
const KEY_READ: Endpoint = Endpoint {
    name: "GET /v2/users/key",
    method: Method::GET,
    idempotency: Idempotency::Idempotent,
};
const ME: Endpoint = Endpoint {
    name: "GET /v2/users/me",
    method: Method::GET,
    idempotency: Idempotency::Idempotent,
};
const LOGIN: Endpoint = Endpoint {
    name: "POST /v2/auth/login",
    method: Method::POST,
    idempotency: Idempotency::NotIdempotent {
        if_unknown: "a session may have been opened; it ends by itself when it expires",
    },
};
const LOGOUT: Endpoint = Endpoint {
    name: "POST /v2/auth/logout",
    method: Method::POST,
    idempotency: Idempotency::NotIdempotent {
        if_unknown: "the session may have ended",
    },
};
const VERSION: Endpoint = Endpoint {
    name: "GET /v2/auth/version",
    method: Method::GET,
    idempotency: Idempotency::Idempotent,
};

/// What to say when an upload's outcome is unknown.
pub(crate) const UPLOAD_UNKNOWN: &str = "the parcel may have been accepted; look for it in the outbox \
before uploading again, counting only a parcel that was not listed before the send (ParcelClient::upload_once \
does both; ParcelClient::find_upload takes the IDs listed before with UploadProbe::with_known_before)";

const PARCEL_PENDING: Endpoint = Endpoint {
    name: "POST /v2/parcels/pending-inbox-list",
    method: Method::POST,
    idempotency: Idempotency::Idempotent,
};
const PARCEL_OUTBOX: Endpoint = Endpoint {
    name: "POST /v2/parcels/outbox-list",
    method: Method::POST,
    idempotency: Idempotency::Idempotent,
};
const PARCEL_INFO: Endpoint = Endpoint {
    name: "GET /v2/parcels",
    method: Method::GET,
    idempotency: Idempotency::Idempotent,
};
const PARCEL_DOWNLOAD: Endpoint = Endpoint {
    name: "POST /v2/parcels/download",
    method: Method::POST,
    idempotency: Idempotency::NotIdempotent {
        if_unknown: "the parcel may now be marked downloaded; it stays in the inbox until it is \
confirmed, so do not confirm it: download it again (GET /v2/parcels/{id} shows its status)",
    },
};
const PARCEL_CONFIRM: Endpoint = Endpoint {
    name: "POST /v2/parcels/confirm",
    method: Method::POST,
    idempotency: Idempotency::NotIdempotent {
        if_unknown: "the parcel may now be confirmed; GET /v2/parcels/{id} shows its status, \
so read it before confirming again",
    },
};
const PARCEL_RESET: Endpoint = Endpoint {
    name: "POST /v2/parcels/reset-to-inbox",
    method: Method::POST,
    idempotency: Idempotency::NotIdempotent {
        if_unknown: "the parcel may be back in the inbox; GET /v2/parcels/{id} shows its status",
    },
};
const PARCEL_UPLOAD: Endpoint = Endpoint {
    name: "POST /v2/parcels/upload",
    method: Method::POST,
    idempotency: Idempotency::NotIdempotent {
        if_unknown: UPLOAD_UNKNOWN,
    },
};

/// A parcel as the REST parcel endpoints describe it (`ParcelIDInfo`);
/// fields the service leaves out are `None`, unknown fields are ignored.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
#[non_exhaustive]
pub struct RestParcel {
    /// The parcel's ID.
    #[serde(alias = "parcelID")]
    pub parcel_id: i64,
    /// Its mailbox.
    #[serde(alias = "mailboxID")]
    pub mailbox_id: Option<i32>,
    /// Its network.
    #[serde(alias = "networkID")]
    pub network_id: Option<i32>,
    /// The file name.
    pub file_name: Option<String>,
    /// The size in bytes.
    pub bytes: Option<i64>,
    /// The status (a `ParcelStatus` value), absent from the pending list.
    pub status: Option<String>,
    /// The sender's ECGrid ID.
    #[serde(alias = "ecGridIDFrom", alias = "fromECGridId")]
    pub ec_grid_id_from: Option<i32>,
    /// The receiver's ECGrid ID.
    #[serde(alias = "ecGridIDTo", alias = "toECGridId")]
    pub ec_grid_id_to: Option<i32>,
    /// When it was created (ISO 8601).
    pub created: Option<String>,
    /// When it last changed (ISO 8601).
    pub modified: Option<String>,
}

/// The filters of `POST /v2/parcels/inbox-list` and `outbox-list`; `None`
/// fields are left out of the request.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct RestParcelQuery {
    /// The mailbox (the caller's when absent).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mailbox_id: Option<i32>,
    /// Only parcels created at or after this ISO 8601 time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub begin_date: Option<String>,
    /// Only parcels created at or before this ISO 8601 time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_date: Option<String>,
    /// The page, from 1.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub page_no: Option<u32>,
    /// Parcels per page (the service's default is 25).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub records_per_page: Option<u32>,
}

/// What `POST /v2/parcels/download` says besides the content.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(crate) struct RestDownload {
    #[serde(alias = "parcelID")]
    pub parcel_id: i64,
    pub file_name: Option<String>,
    #[serde(alias = "size")]
    pub bytes: Option<i64>,
}

/// Where a REST upload is routed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RestRoute {
    /// By the file's own headers.
    Headers,
    /// Into this mailbox.
    Mailbox { network_id: i32, mailbox_id: i32 },
    /// Between these ECGrid IDs.
    Ids { from: i32, to: i32 },
}

#[derive(Deserialize)]
struct Envelope {
    #[serde(default)]
    success: bool,
    #[serde(default)]
    data: Value,
    #[serde(default, rename = "errorCode")]
    error_code: Option<String>,
    #[serde(default)]
    message: Option<String>,
}

#[derive(Deserialize)]
struct LoginData {
    token: String,
}

#[derive(Deserialize)]
struct VersionData {
    version: String,
}

impl RestClient {
    /// A builder with the production defaults.
    pub fn builder() -> RestClientBuilder {
        RestClientBuilder::default()
    }

    /// The base URL.
    pub fn base_url(&self) -> &str {
        &self.inner.base
    }

    /// `POST /v2/users/key-generate/{id}`: replaces the user's key and returns
    /// the new one. Never retried once any of the request may have been sent,
    /// and never on 429.
    pub async fn generate_api_key<'a>(
        &self,
        auth: impl Into<RestAuth<'a>>,
        user_id: UserId,
    ) -> Result<ApiKey> {
        let id = user_id.to_string();
        let path = ["v2", "users", "key-generate", &id];
        self.key_call(&KEY_GENERATE, &path, auth.into()).await
    }

    /// `GET /v2/users/key/{id}`: the user's current key, without rotating.
    pub async fn get_api_key<'a>(
        &self,
        auth: impl Into<RestAuth<'a>>,
        user_id: UserId,
    ) -> Result<ApiKey> {
        let id = user_id.to_string();
        let path = ["v2", "users", "key", &id];
        self.key_call(&KEY_READ, &path, auth.into()).await
    }

    /// `POST /v2/parcels/pending-inbox-list`: the parcels ready to download
    /// (`mailbox_id`: the caller's mailbox when `None`). A read.
    pub async fn pending_inbox_list<'a>(
        &self,
        auth: impl Into<RestAuth<'a>>,
        mailbox_id: Option<i32>,
    ) -> Result<Vec<RestParcel>> {
        let mut body = serde_json::Map::new();
        if let Some(id) = mailbox_id {
            body.insert("mailboxId".into(), id.into());
        }
        let path = ["v2", "parcels", "pending-inbox-list"];
        let list: Option<Vec<RestParcel>> = self
            .call(
                &PARCEL_PENDING,
                &path,
                Some(auth.into()),
                Some((body.into(), "")),
            )
            .await?;
        Ok(list.unwrap_or_default())
    }

    /// `POST /v2/parcels/outbox-list`: one page of the parcels sent. A read.
    pub async fn outbox_list<'a>(
        &self,
        auth: impl Into<RestAuth<'a>>,
        query: &RestParcelQuery,
    ) -> Result<Vec<RestParcel>> {
        let body = serde_json::to_value(query)
            .map_err(|e| Error::invalid_input("query", e.to_string()))?;
        let path = ["v2", "parcels", "outbox-list"];
        let list: Option<Vec<RestParcel>> = self
            .call(&PARCEL_OUTBOX, &path, Some(auth.into()), Some((body, "")))
            .await?;
        Ok(list.unwrap_or_default())
    }

    /// `GET /v2/parcels/{id}`: one parcel. A read.
    pub async fn parcel_info<'a>(
        &self,
        auth: impl Into<RestAuth<'a>>,
        parcel_id: i64,
    ) -> Result<RestParcel> {
        let id = parcel_id.to_string();
        let path = ["v2", "parcels", &id];
        self.call(&PARCEL_INFO, &path, Some(auth.into()), None)
            .await
    }

    /// `POST /v2/parcels/confirm`: the parcel was stored; it leaves the
    /// inbox. Never sent twice. True when confirmed (a body naming the
    /// parcel and its status counts as true too).
    pub async fn confirm_parcel<'a>(
        &self,
        auth: impl Into<RestAuth<'a>>,
        parcel_id: i64,
    ) -> Result<bool> {
        let body = serde_json::json!({ "parcelId": parcel_id });
        let path = ["v2", "parcels", "confirm"];
        let data: Value = self
            .call(&PARCEL_CONFIRM, &path, Some(auth.into()), Some((body, "")))
            .await?;
        Ok(flag(&data))
    }

    /// `POST /v2/parcels/reset-to-inbox/{id}`: puts the parcel back in the
    /// inbox, ready. Never sent twice.
    pub async fn reset_parcel<'a>(
        &self,
        auth: impl Into<RestAuth<'a>>,
        parcel_id: i64,
    ) -> Result<bool> {
        let id = parcel_id.to_string();
        let path = ["v2", "parcels", "reset-to-inbox", &id];
        let data: Value = self
            .call(&PARCEL_RESET, &path, Some(auth.into()), None)
            .await?;
        Ok(flag(&data))
    }

    /// `POST /v2/parcels/download`, streamed: the decoded content goes to
    /// `out` as it arrives; returns what the answer says besides, and the
    /// number of bytes decoded. Sent again only when nothing was sent.
    pub(crate) async fn download_into<W>(
        &self,
        auth: RestAuth<'_>,
        parcel_id: i64,
        out: &mut W,
        progress: Option<&(dyn Fn(u64) + Send + Sync)>,
    ) -> Result<(RestDownload, u64)>
    where
        W: tokio::io::AsyncWrite + Unpin + Send + ?Sized,
    {
        self.check_auth(Some(&auth))?;
        let endpoint = &PARCEL_DOWNLOAD;
        let url = self.url(&["v2", "parcels", "download"]);
        let body = serde_json::json!({ "parcelId": parcel_id }).to_string();
        let http = &self.inner.http;
        let out = tokio::sync::Mutex::new(out);
        let spec = endpoint.spec();
        let result = http
            .with_retries(
                "rest",
                endpoint.name,
                crate::http::ONLY_IF_NOT_SENT,
                || async {
                    let mut out = out.lock().await;
                    let request = self
                        .request(endpoint, &url, Some(auth))
                        .header(reqwest::header::CONTENT_TYPE, "application/json")
                        .body(body.clone());
                    let mut streaming = http
                        .open(request, http.settings.max_download_bytes, None, None)
                        .await
                        .map_err(|f| crate::http::download_failure(http, &spec, f))?;
                    let skeleton_limit =
                        usize::try_from(http.settings.max_response_bytes).unwrap_or(usize::MAX);
                    let extractor = JsonContentExtractor::new(skeleton_limit);
                    let extracted = crate::http::stream_content(
                        &mut streaming,
                        extractor,
                        &mut **out,
                        progress,
                    )
                    .await
                    .map_err(|stop| crate::http::stream_stop(http, &spec, stop))?;
                    let reply = HttpReply::new(
                        streaming.status,
                        streaming.retry_after(),
                        extracted.skeleton.into(),
                    );
                    let data: RestDownload = interpret(endpoint, &reply)?;
                    Ok((data, extracted.decoded_bytes))
                },
            )
            .await;
        result.map_err(|e| self.inner.http.redact(e, &[auth.secret()]))
    }

    /// `POST /v2/parcels/upload` with the base64 of `file` streamed into
    /// `content`. Never sent again once any of it may have left.
    pub(crate) async fn upload_from(
        &self,
        auth: RestAuth<'_>,
        file_name: &str,
        route: RestRoute,
        file: &crate::http::UploadFile,
        progress: Option<&(dyn Fn(u64) + Send + Sync)>,
    ) -> Result<i64> {
        self.check_auth(Some(&auth))?;
        let endpoint = &PARCEL_UPLOAD;
        let url = self.url(&["v2", "parcels", "upload"]);
        let mut fields = serde_json::Map::new();
        fields.insert("fileName".into(), file_name.into());
        fields.insert("bytes".into(), file.size.into());
        match route {
            RestRoute::Headers => {}
            RestRoute::Mailbox {
                network_id,
                mailbox_id,
            } => {
                fields.insert("networkId".into(), network_id.into());
                fields.insert("mailboxId".into(), mailbox_id.into());
            }
            RestRoute::Ids { from, to } => {
                fields.insert("ecGridIdFrom".into(), from.into());
                fields.insert("ecGridIdTo".into(), to.into());
            }
        }
        // `{...fields,"content":"` + base64 + `"}`
        let mut prefix = Value::Object(fields).to_string();
        prefix.pop();
        prefix.push_str(",\"content\":\"");
        let prefix = bytes::Bytes::from(prefix);
        let suffix = bytes::Bytes::from_static(b"\"}");
        let http = &self.inner.http;
        let spec = endpoint.spec();
        let result = http
            .with_retries("rest", endpoint.name, endpoint.idempotency, || async {
                let request = self
                    .request(endpoint, &url, Some(auth))
                    .header(reqwest::header::CONTENT_TYPE, "application/json");
                let reply = http
                    .upload(
                        &spec,
                        request,
                        prefix.clone(),
                        file,
                        suffix.clone(),
                        progress,
                    )
                    .await?;
                let data: Value = interpret(endpoint, &reply)?;
                upload_id(&data).ok_or_else(|| {
                    unreadable(endpoint, "the answer holds no parcel ID".to_string())
                })
            })
            .await;
        result.map_err(|e| self.inner.http.redact(e, &[auth.secret()]))
    }

    /// A call whose `data` is a key.
    async fn key_call(
        &self,
        endpoint: &Endpoint,
        path: &[&str],
        auth: RestAuth<'_>,
    ) -> Result<ApiKey> {
        let key: String = self.call(endpoint, path, Some(auth), None).await?;
        secret_result(endpoint, key).map(ApiKey::new)
    }

    /// `GET /v2/users/me`: who the credential belongs to.
    pub async fn me<'a>(&self, auth: impl Into<RestAuth<'a>>) -> Result<RestUser> {
        self.call(&ME, &["v2", "users", "me"], Some(auth.into()), None)
            .await
    }

    /// `POST /v2/auth/login`: a bearer token.
    pub async fn login(&self, login: &str, password: &Password) -> Result<SessionId> {
        for (field, value) in [("login", login), ("password", password.expose())] {
            if value.is_empty() {
                return Err(Error::invalid_input(field, "must not be empty"));
            }
        }
        let body = serde_json::json!({ "login": login, "password": password.expose() });
        let data: LoginData = self
            .call(
                &LOGIN,
                &["v2", "auth", "login"],
                None,
                Some((body, password.expose())),
            )
            .await?;
        secret_result(&LOGIN, data.token).map(SessionId::new)
    }

    /// `POST /v2/auth/logout`: ends the bearer session.
    pub async fn logout(&self, token: &SessionId) -> Result<bool> {
        self.call(
            &LOGOUT,
            &["v2", "auth", "logout"],
            Some(RestAuth::Bearer(token)),
            None,
        )
        .await
    }

    /// `GET /v2/auth/version`.
    pub async fn version(&self) -> Result<String> {
        let data: VersionData = self
            .call(&VERSION, &["v2", "auth", "version"], None, None)
            .await?;
        Ok(data.version)
    }

    /// One call: `body` is a JSON body and the secret it carries. Every
    /// error is redacted of the credential and that secret.
    async fn call<T: DeserializeOwned>(
        &self,
        endpoint: &Endpoint,
        path: &[&str],
        auth: Option<RestAuth<'_>>,
        body: Option<(Value, &str)>,
    ) -> Result<T> {
        let url = self.url(path);
        let secrets: Vec<&str> = body.as_ref().map(|(_, s)| *s).into_iter().collect();
        self.call_url(
            endpoint,
            &url,
            auth,
            body.as_ref().map(|(json, _)| json),
            &secrets,
        )
        .await
    }

    /// One call to `url`, with retries by the endpoint's idempotency; every
    /// error is redacted of the credential and of `secrets`.
    async fn call_url<T: DeserializeOwned>(
        &self,
        endpoint: &Endpoint,
        url: &Url,
        auth: Option<RestAuth<'_>>,
        body: Option<&Value>,
        secrets: &[&str],
    ) -> Result<T> {
        self.check_auth(auth.as_ref())?;
        let http = &self.inner.http;
        let result = http
            .with_retries("rest", endpoint.name, endpoint.idempotency, || {
                self.attempt(endpoint, url, auth, body)
            })
            .await;
        result.map_err(|e| {
            let mut all: Vec<&str> = auth.as_ref().map(RestAuth::secret).into_iter().collect();
            all.extend(secrets.iter().copied().filter(|s| !s.is_empty()));
            http.redact(e, &all)
        })
    }

    /// Calls the REST twin of the contract operation of `entry` (a row of
    /// [`api::OPERATIONS`](crate::api::OPERATIONS)) with named text
    /// parameters, as `contract/rest-mapping.json` says: method and path,
    /// each parameter in its path segment, query or JSON body field. Returns
    /// the result (the value at the mapping's `result` pointer inside the
    /// envelope's `data`) in REST's own JSON form; compare it with a SOAP
    /// answer through [`migrate::diff`](crate::migrate::diff).
    ///
    /// Parameters that do not fit the contract, an operation with no REST
    /// twin and a missing path value are refused before any I/O. The call
    /// goes through the same transport as every other (limits, timeouts);
    /// it is retried by the contract's `effect`, so a `write` is never sent
    /// again once any of it may have left. REST errors are
    /// [`Error::Rest`], whose [`kind`](Error::kind) matches the SOAP fault
    /// of the same failure. `auth` is `None` only for the calls that need
    /// no credential (`Login`, `Version`); a `SessionID` parameter is never
    /// sent (the credential travels in `auth`).
    ///
    /// ```no_run
    /// # async fn run(rest: ecgridos::RestClient, key: ecgridos::ApiKey) -> Result<(), ecgridos::Error> {
    /// use ecgridos::api::{request::find, Params};
    /// use ecgridos::RestAuth;
    ///
    /// let entry = find("UserGetAPIKey").expect("in the contract");
    /// let mut params = Params::new();
    /// params.set("UserID", "42");
    /// let key = rest.call_json(entry, &params, RestAuth::ApiKey(&key)).await?;
    /// # let _ = key; Ok(()) }
    /// ```
    pub async fn call_json<'a>(
        &self,
        entry: &crate::api::OperationEntry,
        params: &crate::api::Params,
        auth: impl Into<Option<RestAuth<'a>>>,
    ) -> Result<Value> {
        let auth = auth.into();
        (entry.check)(params)?;
        let mapping = crate::rest_mapping::Mapping::get()?;
        let op = mapping.operation(entry.info.name).ok_or_else(|| {
            Error::invalid_input(
                entry.info.name,
                "has no REST twin in contract/rest-mapping.json",
            )
        })?;
        let request = op.request(&entry.info, params)?;
        let method = Method::from_bytes(request.method.as_bytes())
            .map_err(|_| Error::invalid_input(entry.info.name, "the REST method is not valid"))?;
        let endpoint = Endpoint {
            name: op.rest.as_str(),
            method,
            idempotency: entry.spec.idempotency,
        };
        let mut url = self.inner.url.clone();
        if let Ok(mut segments) = url.path_segments_mut() {
            segments.extend(&request.segments);
        }
        if !request.query.is_empty() {
            url.query_pairs_mut().extend_pairs(&request.query);
        }
        let secrets: Vec<&str> = request.secrets.iter().map(String::as_str).collect();
        let data: Value = self
            .call_url(&endpoint, &url, auth, request.body.as_ref(), &secrets)
            .await?;
        if op.result.is_empty() {
            return Ok(data);
        }
        match data.pointer(&op.result) {
            Some(value) => Ok(value.clone()),
            None => {
                Err(unreadable(&endpoint, format!("data has no {}", op.result)).redact(&secrets))
            }
        }
    }

    /// Refuses a credential that cannot be sent in a header.
    fn check_auth(&self, auth: Option<&RestAuth<'_>>) -> Result<()> {
        if let Some(auth) = auth {
            let secret = auth.secret();
            if secret.is_empty() || reqwest::header::HeaderValue::from_str(secret).is_err() {
                return Err(Error::invalid_input(
                    "credential",
                    "must be non-empty and carry only characters an HTTP header allows",
                ));
            }
        }
        Ok(())
    }

    /// A request to `url` with the credential, the body still to set.
    fn request(
        &self,
        endpoint: &Endpoint,
        url: &Url,
        auth: Option<RestAuth<'_>>,
    ) -> reqwest::RequestBuilder {
        let mut request = self
            .inner
            .http
            .client
            .request(endpoint.method.clone(), url.clone())
            .header(reqwest::header::ACCEPT, "application/json");
        match auth {
            Some(RestAuth::ApiKey(key)) => request = request.header("X-API-Key", key.expose()),
            Some(RestAuth::Bearer(token)) => request = request.bearer_auth(token.expose()),
            None => {}
        }
        request
    }

    /// The URL of `path` under the base URL.
    fn url(&self, path: &[&str]) -> Url {
        let mut url = self.inner.url.clone();
        if let Ok(mut segments) = url.path_segments_mut() {
            segments.extend(path);
        }
        url
    }

    async fn attempt<T: DeserializeOwned>(
        &self,
        endpoint: &Endpoint,
        url: &Url,
        auth: Option<RestAuth<'_>>,
        body: Option<&Value>,
    ) -> Result<T> {
        let http = &self.inner.http;
        let mut request = self.request(endpoint, url, auth);
        if let Some(body) = body {
            request = request
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.to_string());
        }
        let reply = http
            .exchange(request)
            .await
            .map_err(|f| http.failure_to_error(endpoint.name, endpoint.idempotency, f))?;
        interpret(endpoint, &reply)
    }
}

/// The answer of `endpoint` as its `data` or an error: for a state change
/// only an error body naming an `errorCode` is a clear refusal.
fn interpret<T: DeserializeOwned>(endpoint: &Endpoint, reply: &HttpReply) -> Result<T> {
    let success = (200..300).contains(&reply.status);
    let state_change = matches!(endpoint.idempotency, Idempotency::NotIdempotent { .. });
    match (serde_json::from_slice::<Envelope>(&reply.body), success) {
        (Ok(env), true) if env.success => serde_json::from_value(env.data)
            .map_err(|e| unreadable(endpoint, format!("unexpected data: {e}"))),
        // An error body, under an error status or (oddly) under a success
        // one. For a state change only a body naming an `errorCode` is a
        // clear refusal; anything else may follow the service acting.
        (Ok(env), _) => match env.error_code.filter(|c| !c.is_empty()) {
            None if state_change => Err(unreadable(
                endpoint,
                format!("HTTP {} with neither success nor errorCode", reply.status),
            )),
            code => Err(Error::Rest {
                operation: endpoint.name,
                status: reply.status,
                code: code.unwrap_or_else(|| "Unknown".to_string()),
                message: env.message.unwrap_or_default(),
                retry_after: reply.retry_after(),
            }),
        },
        (Err(_), false) if state_change => Err(unreadable(
            endpoint,
            format!("HTTP {} without a REST error body", reply.status),
        )),
        (Err(_), false) => Err(Error::HttpStatus {
            operation: endpoint.name,
            status: reply.status,
            snippet: reply.body_text(),
            retry_after: reply.retry_after(),
        }),
        (Err(e), true) => Err(unreadable(endpoint, format!("not a JSON envelope: {e}"))),
    }
}

/// A boolean answer: `true`, or an object (a parcel and its new status).
fn flag(data: &Value) -> bool {
    match data {
        Value::Bool(b) => *b,
        Value::Object(_) => true,
        _ => false,
    }
}

/// The new parcel's ID: a bare number or an object naming it.
fn upload_id(data: &Value) -> Option<i64> {
    match data {
        Value::Number(n) => n.as_i64(),
        Value::Object(map) => ["parcelId", "parcelID", "ParcelID"]
            .iter()
            .find_map(|k| map.get(*k))
            .and_then(Value::as_i64),
        _ => None,
    }
}

impl Endpoint {
    /// The declaration the transport's error mapping takes.
    fn spec(&self) -> crate::operations::OperationSpec {
        crate::operations::OperationSpec {
            name: self.name,
            params: &[],
            result_type: "json",
            idempotency: self.idempotency,
        }
    }
}

/// An answer that is neither a readable success nor a clear refusal: for a
/// state change the outcome is unknown, for a read it is a malformed response.
fn unreadable(endpoint: &Endpoint, reason: String) -> Error {
    match endpoint.idempotency {
        Idempotency::NotIdempotent { if_unknown } => Error::OutcomeUnknown {
            operation: endpoint.name,
            cause: format!("the response is not a clear answer: {reason}"),
            advice: if_unknown,
            source: None,
        },
        Idempotency::Idempotent => Error::MalformedResponse {
            operation: endpoint.name,
            reason: reason.into(),
        },
    }
}

/// The credential of a success answer; a blank one is unreadable (for a
/// rotation or a login, the outcome is then unknown).
fn secret_result(endpoint: &Endpoint, value: String) -> Result<String> {
    let trimmed = value.trim();
    if trimmed.is_empty() {
        return Err(unreadable(
            endpoint,
            "empty credential in the response".to_string(),
        ));
    }
    Ok(trimmed.to_string())
}
