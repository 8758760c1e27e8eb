//! The SOAP client: envelopes from [`crate::wire`], posted with reqwest.

use std::sync::Arc;

use bytes::Bytes;
use reqwest::header::{HeaderValue, CONTENT_TYPE};
use url::Url;

use crate::api::types::FileInfo;
use crate::error::{Error, Result};
use crate::http::{parse_endpoint, Http, HttpReply, HttpSettings};
use crate::operations::{
    GenerateApiKey, Idempotency, Login, Logout, Operation, OperationSpec, UserGetApiKey, UserId,
    Version, WhoAmI,
};
use crate::secret::{ApiKey, Password, SessionId, SessionRef};
use crate::wire::stream::SoapContentExtractor;
use crate::wire::{self, read_response, write_request, Reply, SessionInfo, SoapVersion};

pub use crate::wire::DEFAULT_ENDPOINT;

/// Reads a response body, given the namespace and depth limit.
pub(crate) type ReadWith<'a, T> =
    dyn Fn(&[u8], &str, usize) -> std::result::Result<Reply<T>, wire::ReadError> + Sync + 'a;
/// Reads a response body.
type ReadBody<'a, T> = dyn Fn(&[u8]) -> std::result::Result<Reply<T>, wire::ReadError> + Sync + 'a;
/// Calls its argument with each secret of a request.
pub(crate) type SecretsOf<'a> = dyn Fn(&mut dyn FnMut(&str)) + Sync + 'a;

/// Builds a [`Client`]. Every setting has a default that talks to the
/// production service.
#[derive(Clone, Debug)]
#[must_use]
pub struct ClientBuilder {
    endpoint: String,
    namespace: String,
    version: SoapVersion,
    http: HttpSettings,
    max_depth: usize,
}

impl Default for ClientBuilder {
    fn default() -> Self {
        ClientBuilder {
            endpoint: DEFAULT_ENDPOINT.to_string(),
            namespace: wire::DEFAULT_NAMESPACE.to_string(),
            version: SoapVersion::V11,
            http: HttpSettings::default(),
            max_depth: wire::DEFAULT_MAX_DEPTH,
        }
    }
}

impl ClientBuilder {
    /// The asmx endpoint URL (default [`DEFAULT_ENDPOINT`]).
    pub fn endpoint(mut self, url: impl Into<String>) -> Self {
        self.endpoint = url.into();
        self
    }

    /// The service namespace (default `https://os.ecgrid.io/`). Older service
    /// versions used `http://ecgridos.net/`; the SOAPAction follows it.
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = namespace.into();
        self
    }

    /// SOAP 1.1 (default) or 1.2.
    pub fn soap_version(mut self, version: SoapVersion) -> Self {
        self.version = version;
        self
    }

    crate::http::http_setters!();

    /// Deepest element nesting read (default 64).
    pub fn max_depth(mut self, depth: usize) -> Self {
        self.max_depth = depth;
        self
    }

    /// Builds the client; fails on an invalid endpoint or namespace.
    pub fn build(self) -> Result<Client> {
        let endpoint = parse_endpoint(&self.endpoint)?;
        if self.namespace.is_empty() || wire::check_xml_text(&self.namespace).is_err() {
            return Err(Error::invalid_input(
                "namespace",
                "must be a non-empty XML-safe URI",
            ));
        }
        if self.http.retry.max_attempts == 0 {
            return Err(Error::invalid_input(
                "retry",
                "max_attempts must be at least 1",
            ));
        }
        let http = Http::new(&endpoint, self.http)?;
        // Header values of the declared operations, built once.
        let headers = crate::operations::CATALOG
            .iter()
            .map(|spec| {
                Ok((
                    spec.name,
                    request_headers(self.version, &self.namespace, spec.name)?,
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Client {
            inner: Arc::new(Inner {
                http,
                endpoint,
                namespace: self.namespace,
                version: self.version,
                max_depth: self.max_depth,
                headers,
            }),
        })
    }
}

#[derive(Debug)]
struct Inner {
    http: Http,
    endpoint: Url,
    namespace: String,
    version: SoapVersion,
    max_depth: usize,
    headers: Vec<(&'static str, RequestHeaders)>,
}

/// The `Content-Type` and (SOAP 1.1) `SOAPAction` of one operation.
#[derive(Clone, Debug)]
struct RequestHeaders {
    content_type: HeaderValue,
    soap_action: Option<HeaderValue>,
}

fn request_headers(
    version: SoapVersion,
    namespace: &str,
    operation: &str,
) -> Result<RequestHeaders> {
    let action = wire::soap_action(namespace, operation);
    let (content_type, soap_action) = version.request_headers(&action);
    Ok(RequestHeaders {
        content_type: header_value(&content_type)?,
        soap_action: soap_action.as_deref().map(header_value).transpose()?,
    })
}

/// An async ECGridOS SOAP client. Cheap to clone: clones share one connection
/// pool.
///
/// ```no_run
/// # async fn run() -> Result<(), ecgridos::Error> {
/// use ecgridos::{Client, Password, UserId};
/// let client = Client::builder().build()?;
/// let session = client.login("me", &Password::new("secret")).await?;
/// let new_key = client.generate_api_key(&session, UserId::from(42)).await?;
/// println!("new key starts {}", new_key.preview());
/// client.logout(&session).await?;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct Client {
    inner: Arc<Inner>,
}

impl Client {
    /// A builder with the production defaults.
    pub fn builder() -> ClientBuilder {
        ClientBuilder::default()
    }

    /// The endpoint this client posts to.
    pub fn endpoint(&self) -> &Url {
        &self.inner.endpoint
    }

    /// The service namespace.
    pub fn namespace(&self) -> &str {
        &self.inner.namespace
    }

    /// The SOAP version spoken.
    pub fn soap_version(&self) -> SoapVersion {
        self.inner.version
    }

    /// Replaces `user_id`'s API key and returns the new one. The old key stops
    /// working at once.
    ///
    /// This call is never sent twice by the client. When the request may have
    /// reached the service but no clear answer came (neither the new key nor a
    /// fault), it fails with
    /// [`Error::OutcomeUnknown`]: read the current key with
    /// [`user_get_api_key`](Self::user_get_api_key) rather than rotating again.
    pub async fn generate_api_key<'a>(
        &self,
        session: impl Into<SessionRef<'a>>,
        user_id: UserId,
    ) -> Result<ApiKey> {
        self.call(GenerateApiKey {
            session_id: session.into(),
            user_id,
        })
        .await
    }

    /// Reads `user_id`'s current API key without rotating it.
    pub async fn user_get_api_key<'a>(
        &self,
        session: impl Into<SessionRef<'a>>,
        user_id: UserId,
    ) -> Result<ApiKey> {
        self.call(UserGetApiKey {
            session_id: session.into(),
            user_id,
        })
        .await
    }

    /// Opens a session.
    pub async fn login(&self, login_name: &str, password: &Password) -> Result<SessionId> {
        self.call(Login {
            login_name,
            password,
        })
        .await
    }

    /// Ends a session: true when it ended, false when it was already gone.
    pub async fn logout<'a>(&self, session: impl Into<SessionRef<'a>>) -> Result<bool> {
        self.call(Logout {
            session_id: session.into(),
        })
        .await
        .map(|ended| ended.0)
    }

    /// What the service knows of the session (or API key).
    pub async fn who_am_i<'a>(&self, session: impl Into<SessionRef<'a>>) -> Result<SessionInfo> {
        self.call(WhoAmI {
            session_id: session.into(),
        })
        .await
    }

    /// The service version.
    pub async fn version(&self) -> Result<String> {
        self.call(Version {}).await
    }

    /// Calls any declared operation.
    pub async fn call<O: Operation>(&self, op: O) -> Result<O::Output> {
        let spec = O::SPEC;
        op.check()?;
        let inner = &*self.inner;
        let mut body = Vec::with_capacity(512);
        write_request(&mut body, inner.version, &inner.namespace, spec.name, |w| {
            op.write_params(w)
        });
        let read = |xml: &[u8]| {
            read_response::<O::Output>(xml, &inner.namespace, spec.name, inner.max_depth)
        };
        self.send(&spec, Bytes::from(body), &read, move |f| {
            op.for_each_secret(f)
        })
        .await
    }

    /// Calls the operation of `entry` (a row of
    /// [`api::OPERATIONS`](crate::api::OPERATIONS)) with named text
    /// parameters, and returns its result in the contract's JSON form
    /// (objects keyed by element names). Parameters that do not fit the
    /// contract are refused before any I/O. This is what `ecgridos call`
    /// does; typed code should use [`call`](Self::call) instead.
    ///
    /// ```no_run
    /// # async fn run(client: ecgridos::Client) -> Result<(), ecgridos::Error> {
    /// use ecgridos::api::{self, Params};
    ///
    /// let entry = api::request::find("Version").expect("in the contract");
    /// let version = client.call_json(entry, &Params::default()).await?;
    /// println!("{version}");
    /// # Ok(()) }
    /// ```
    pub async fn call_json(
        &self,
        entry: &crate::api::OperationEntry,
        params: &crate::api::Params,
    ) -> Result<serde_json::Value> {
        let request = (entry.build)(params)?;
        self.call_with::<serde_json::Value>(
            &entry.spec,
            &|w| request.write_params(w),
            &entry.read_json,
            &|f| request.for_each_secret(f),
        )
        .await
    }

    /// Calls an operation whose parameters `write_params` writes, reading
    /// the result with `read`: the one path (not generic over the operation)
    /// that the table of all operations uses, so that 221 operations do not
    /// make 221 copies of the transport.
    pub(crate) async fn call_with<T>(
        &self,
        spec: &OperationSpec,
        write_params: &(dyn Fn(&mut wire::XmlWriter<'_>) + Sync),
        read: &ReadWith<'_, T>,
        for_each_secret: &SecretsOf<'_>,
    ) -> Result<T> {
        let inner = &*self.inner;
        let mut body = Vec::with_capacity(512);
        write_request(&mut body, inner.version, &inner.namespace, spec.name, |w| {
            write_params(w)
        });
        let read = |xml: &[u8]| read(xml, &inner.namespace, inner.max_depth);
        self.send(spec, Bytes::from(body), &read, for_each_secret)
            .await
    }

    /// Sends `body` with retries by the operation's idempotency and reads
    /// the answer with `read`; errors are cleared of the request's secrets.
    async fn send<T, S: Fn(&mut dyn FnMut(&str))>(
        &self,
        spec: &OperationSpec,
        body: Bytes,
        read: &ReadBody<'_, T>,
        for_each_secret: S,
    ) -> Result<T> {
        let result = self
            .inner
            .http
            .with_retries("soap", spec.name, spec.idempotency, || {
                self.attempt(spec, body.clone(), read)
            })
            .await;
        result.map_err(|err| {
            let mut secrets = Vec::new();
            for_each_secret(&mut |s| secrets.push(s.to_string()));
            let secrets: Vec<&str> = secrets.iter().map(String::as_str).collect();
            self.inner.http.redact(err, &secrets)
        })
    }

    async fn attempt<T>(
        &self,
        spec: &OperationSpec,
        body: Bytes,
        read: &ReadBody<'_, T>,
    ) -> Result<T> {
        let inner = &*self.inner;
        let request = self.post(spec)?.body(body);
        let reply = match inner.http.exchange(request).await {
            Ok(reply) => reply,
            Err(failure) => {
                return Err(inner
                    .http
                    .failure_to_error(spec.name, spec.idempotency, failure))
            }
        };
        interpret(spec, &reply, read)
    }

    /// A POST of operation `spec` to the endpoint with its headers, the body
    /// still to set.
    fn post(&self, spec: &OperationSpec) -> Result<reqwest::RequestBuilder> {
        let inner = &*self.inner;
        let headers = match inner.headers.iter().find(|(name, _)| *name == spec.name) {
            Some((_, headers)) => headers.clone(),
            // An operation declared outside this crate.
            None => request_headers(inner.version, &inner.namespace, spec.name)?,
        };
        let mut request = inner
            .http
            .client
            .post(inner.endpoint.clone())
            .header(CONTENT_TYPE, headers.content_type);
        if let Some(soap_action) = headers.soap_action {
            request = request.header("SOAPAction", soap_action);
        }
        Ok(request)
    }

    /// The envelope of `op`.
    fn envelope<O: Operation>(&self, op: &O) -> Vec<u8> {
        let inner = &*self.inner;
        let mut body = Vec::with_capacity(512);
        write_request(
            &mut body,
            inner.version,
            &inner.namespace,
            O::SPEC.name,
            |w| op.write_params(w),
        );
        body
    }

    /// Calls `op`, whose result is a `FileInfo`, writing the decoded content
    /// to `out` as it arrives instead of holding it: the `FileInfo` comes
    /// back with its content empty, beside the number of bytes decoded. The
    /// body may be as large as the download limit; the rest of the answer
    /// (or a fault) stays within the ordinary response limit.
    ///
    /// Sent again only when nothing was sent (whatever the operation's
    /// effect): a retry after bytes reached `out` would write them twice.
    pub(crate) async fn download_into<O, W>(
        &self,
        op: O,
        out: &mut W,
        progress: Option<&(dyn Fn(u64) + Send + Sync)>,
    ) -> Result<(FileInfo, u64)>
    where
        O: Operation<Output = Option<FileInfo>> + Sync,
        W: tokio::io::AsyncWrite + Unpin + Send + ?Sized,
    {
        let spec = O::SPEC;
        op.check()?;
        let inner = &*self.inner;
        let body = Bytes::from(self.envelope(&op));
        let out = tokio::sync::Mutex::new(out);
        let result = inner
            .http
            .with_retries("soap", spec.name, crate::http::ONLY_IF_NOT_SENT, || async {
                let mut out = out.lock().await;
                let request = self.post(&spec)?.body(body.clone());
                let limit = inner.http.settings.max_download_bytes;
                let to_error = |f| crate::http::download_failure(&inner.http, &spec, f);
                let mut streaming = inner
                    .http
                    .open(request, limit, None, None)
                    .await
                    .map_err(to_error)?;
                let skeleton_limit =
                    usize::try_from(inner.http.settings.max_response_bytes).unwrap_or(usize::MAX);
                let extractor = SoapContentExtractor::new(skeleton_limit);
                let extracted =
                    crate::http::stream_content(&mut streaming, extractor, &mut **out, progress)
                        .await
                        .map_err(|stop| crate::http::stream_stop(&inner.http, &spec, stop))?;
                let reply = HttpReply::new(
                    streaming.status,
                    streaming.retry_after(),
                    extracted.skeleton.into(),
                );
                let read = |xml: &[u8]| {
                    read_response::<Option<FileInfo>>(
                        xml,
                        &inner.namespace,
                        spec.name,
                        inner.max_depth,
                    )
                };
                match interpret(&spec, &reply, &read)? {
                    Some(info) => Ok((info, extracted.decoded_bytes)),
                    None => Err(Error::MalformedResponse {
                        operation: spec.name,
                        reason: "the answer holds no FileInfo".into(),
                    }),
                }
            })
            .await;
        result.map_err(|err| redact_op(&inner.http, err, &op))
    }

    /// Calls `op`, an upload whose `Content` is present and empty, with the
    /// base64 of `file` streamed into that element: the request is built
    /// around the file as it is read, never held whole. Never sent again
    /// once any of it may have left.
    pub(crate) async fn upload_from<O>(
        &self,
        op: O,
        file: &crate::http::UploadFile,
        progress: Option<&(dyn Fn(u64) + Send + Sync)>,
    ) -> Result<i32>
    where
        O: Operation<Output = i32> + Sync,
    {
        let spec = O::SPEC;
        op.check()?;
        let inner = &*self.inner;
        let envelope = self.envelope(&op);
        const EMPTY: &[u8] = b"<Content></Content>";
        let Some(at) = memchr::memmem::find(&envelope, EMPTY) else {
            return Err(Error::invalid_input(
                "Content",
                "the upload has no content element",
            ));
        };
        let prefix = Bytes::copy_from_slice(&envelope[..at + b"<Content>".len()]);
        let suffix = Bytes::copy_from_slice(&envelope[at + b"<Content>".len()..]);
        let result = inner
            .http
            .with_retries("soap", spec.name, spec.idempotency, || async {
                let request = self.post(&spec)?;
                let read = |xml: &[u8]| {
                    read_response::<i32>(xml, &inner.namespace, spec.name, inner.max_depth)
                };
                let reply = inner
                    .http
                    .upload(
                        &spec,
                        request,
                        prefix.clone(),
                        file,
                        suffix.clone(),
                        progress,
                    )
                    .await?;
                interpret(&spec, &reply, &read)
            })
            .await;
        result.map_err(|err| redact_op(&inner.http, err, &op))
    }
}

/// Clears the secrets of `op` (and the proxies' credentials) from `err`.
fn redact_op<O: Operation>(http: &Http, err: Error, op: &O) -> Error {
    let mut secrets = Vec::new();
    op.for_each_secret(&mut |s| secrets.push(s.to_string()));
    let secrets: Vec<&str> = secrets.iter().map(String::as_str).collect();
    http.redact(err, &secrets)
}

/// The answer of `spec` as its result or error: under an error status only
/// a fault is a clear refusal of a state change.
fn interpret<T>(spec: &OperationSpec, reply: &HttpReply, read: &ReadBody<'_, T>) -> Result<T> {
    let read = read(&reply.body);
    let fault = |fault| Error::Fault {
        operation: spec.name,
        fault: Box::new(fault),
    };
    if !(200..300).contains(&reply.status) {
        // asmx sends faults with HTTP 500; anything else under an error
        // status (an HTML page from a proxy, say) is reported as the
        // status. For a state change only a fault is a clear refusal: a
        // bare error status may come from a proxy after the service acted.
        return Err(match (read, spec.idempotency) {
            (Ok(Reply::Fault(f)), _) => fault(f),
            (_, Idempotency::NotIdempotent { if_unknown }) => Error::OutcomeUnknown {
                operation: spec.name,
                cause: format!("HTTP {} without a SOAP fault", reply.status),
                advice: if_unknown,
                source: None,
            },
            (_, Idempotency::Idempotent) => Error::HttpStatus {
                operation: spec.name,
                status: reply.status,
                snippet: reply.body_text(),
                retry_after: reply.retry_after(),
            },
        });
    }
    match read {
        Ok(Reply::Result(value)) => Ok(value),
        Ok(Reply::Fault(f)) => Err(fault(f)),
        Err(err) => match spec.idempotency {
            // The service answered success, so it acted, but the answer
            // cannot be read: for a state change the outcome is unknown.
            Idempotency::NotIdempotent { if_unknown } => Err(Error::OutcomeUnknown {
                operation: spec.name,
                cause: format!("the success response cannot be read: {err}"),
                advice: if_unknown,
                source: None,
            }),
            Idempotency::Idempotent => Err(Error::from_read(spec.name, err)),
        },
    }
}

fn header_value(value: &str) -> Result<HeaderValue> {
    HeaderValue::from_str(value)
        .map_err(|_| Error::invalid_input("namespace", "cannot be carried in an HTTP header"))
}
