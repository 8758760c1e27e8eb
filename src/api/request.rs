//! The mechanism behind the generated requests: the [`Request`] trait, the
//! operation table entries used by tools (the CLI's `call`, the fake's
//! stubs), named text parameters, and the `operation!` macro the generated
//! area modules call once per operation.

use serde_json::Value;

use crate::error::Error;
use crate::operations::{Idempotency, Operation, OperationSpec};
use crate::secret::SessionId;
use crate::wire::{read_response, FieldSpec, ReadError, Reply, TextValue};

/// What calling an operation does, from the contract's `effect`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Effect {
    /// Reads only; retried like any read.
    Read,
    /// Changes state, but sending it twice leaves the same state; retried.
    WriteIdempotent,
    /// Changes state; never sent again once any byte may have left. When its
    /// outcome is unknown, the error carries `if_unknown`.
    Write {
        /// Which read tells the truth after an unknown outcome.
        if_unknown: &'static str,
    },
}

impl Effect {
    /// The contract's name of this effect.
    pub fn as_str(&self) -> &'static str {
        match self {
            Effect::Read => "read",
            Effect::WriteIdempotent => "write-idempotent",
            Effect::Write { .. } => "write",
        }
    }

    /// The retry class of the transport.
    pub const fn idempotency(&self) -> Idempotency {
        match self {
            Effect::Read | Effect::WriteIdempotent => Idempotency::Idempotent,
            Effect::Write { if_unknown } => Idempotency::NotIdempotent { if_unknown },
        }
    }
}

/// The contract facts of one operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OperationInfo {
    /// The operation name.
    pub name: &'static str,
    /// The contract's area (`parcel`, `mailbox`, ...).
    pub area: &'static str,
    /// What calling it does.
    pub effect: Effect,
    /// The parameters, in contract order.
    pub params: &'static [FieldSpec],
    /// The result element.
    pub result: FieldSpec,
}

/// Named parameter values as text (`NAME=VALUE` on the command line, or the
/// parameter elements of a request the fake received).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Params(Vec<(String, String)>);

impl std::fmt::Debug for Params {
    // Values include session IDs and passwords: print names only.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|(n, _)| n))
            .finish()
    }
}

impl Params {
    /// No parameters.
    pub fn new() -> Self {
        Params::default()
    }

    /// Adds (or replaces) a parameter.
    pub fn set(&mut self, name: impl Into<String>, value: impl Into<String>) {
        let name = name.into();
        let value = value.into();
        match self.0.iter_mut().find(|(n, _)| *n == name) {
            Some(slot) => slot.1 = value,
            None => self.0.push((name, value)),
        }
    }

    /// The value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The names given, in order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|(n, _)| n.as_str())
    }

    /// Refuses a name that is not among `specs`.
    pub fn check_names(&self, specs: &[FieldSpec]) -> Result<(), Error> {
        match self.names().find(|n| !specs.iter().any(|s| s.name == *n)) {
            Some(unknown) => Err(Error::invalid_input(
                unknown.to_string(),
                "no such parameter",
            )),
            None => Ok(()),
        }
    }

    /// The value of parameter `spec` parsed as `T`; `None` when not given.
    #[inline(never)]
    pub fn parse<T: TextValue>(&self, spec: &FieldSpec) -> Result<Option<T>, Error> {
        let Some(text) = self.get(spec.name) else {
            return Ok(None);
        };
        T::parse_text(text).map(Some).map_err(|reason| {
            let reason = if spec.secret {
                format!("does not fit {}", spec.xsd_type)
            } else {
                reason
            };
            Error::invalid_input(spec.name, reason)
        })
    }

    /// The value of a required parameter.
    #[inline(never)]
    pub fn require<T: TextValue>(&self, spec: &FieldSpec) -> Result<T, Error> {
        self.parse(spec)?
            .ok_or_else(|| Error::invalid_input(spec.name, "missing (its minOccurs is 1)"))
    }
}

/// Refuses text the service cannot be sent, without echoing a secret.
/// Numbers, booleans and dateTimes cannot hold such text and are not looked at.
#[inline(never)]
pub fn check_param<T: TextValue>(spec: &FieldSpec, value: &T) -> Result<(), Error> {
    if !T::FREE_TEXT {
        return Ok(());
    }
    crate::operations::check_xml_chars(spec.name, &value.to_text(), spec.secret)
}

/// A generated request: an [`Operation`] with its contract facts, built from
/// named text parameters, with its result shown as JSON.
pub trait Request: Operation + Clone + Default + Send + Sync + 'static {
    /// The contract facts.
    const INFO: OperationInfo;

    /// The request from named text parameters: every minOccurs-1 parameter
    /// present, every value fitting its type, no unknown name.
    fn from_params(params: &Params) -> Result<Self, Error>;

    /// The request's parameters as named text (the inverse of
    /// [`from_params`](Self::from_params)).
    fn to_params(&self) -> Params;

    /// Fills `SessionID` with `session` unless it is set; false when the
    /// operation has no `SessionID`.
    fn fill_session(&mut self, session: &SessionId) -> bool;

    /// The result in the contract's JSON form.
    fn output_json(output: &Self::Output) -> Value;
}

/// One row of [`OPERATIONS`](crate::api::OPERATIONS): the facts of an
/// operation and what calling it with text parameters needs, without any
/// I/O here: [`Client::call_json`](crate::Client::call_json) does the call.
#[derive(Clone, Copy)]
pub struct OperationEntry {
    /// The contract facts.
    pub info: OperationInfo,
    /// Builds the request from `params` and checks it, without any I/O.
    pub check: fn(&Params) -> Result<(), Error>,
    /// The declaration the transport needs (name, retry class).
    pub(crate) spec: OperationSpec,
    /// Builds and checks the request, its type erased.
    pub(crate) build: fn(&Params) -> Result<Box<dyn ErasedRequest>, Error>,
    /// Reads the answer into the contract's JSON form.
    pub(crate) read_json: JsonReader,
}

impl std::fmt::Debug for OperationEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OperationEntry")
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

impl OperationEntry {
    /// The entry of request type `R`.
    pub const fn of<R: Request>() -> Self {
        OperationEntry {
            info: R::INFO,
            check: check::<R>,
            spec: R::SPEC,
            build: build::<R>,
            read_json: read_json::<R>,
        }
    }
}

fn check<R: Request>(params: &Params) -> Result<(), Error> {
    R::from_params(params)?.check()
}

/// A request whose type is erased: what the one transport path needs of it.
/// Only building and reading are per operation; the call itself is one
/// function for all of them (221 copies of it would double the binary).
pub(crate) trait ErasedRequest: Send + Sync {
    /// Writes the parameter elements.
    fn write_params(&self, w: &mut crate::wire::XmlWriter<'_>);
    /// Calls `f` with each secret parameter value.
    fn for_each_secret(&self, f: &mut dyn FnMut(&str));
}

impl<R: Operation + Send + Sync> ErasedRequest for R {
    fn write_params(&self, w: &mut crate::wire::XmlWriter<'_>) {
        Operation::write_params(self, w)
    }
    fn for_each_secret(&self, f: &mut dyn FnMut(&str)) {
        Operation::for_each_secret(self, f)
    }
}

/// Reads an answer (bytes, service namespace, depth limit) into JSON.
pub(crate) type JsonReader = fn(&[u8], &str, usize) -> Result<Reply<Value>, ReadError>;

fn build<R: Request>(params: &Params) -> Result<Box<dyn ErasedRequest>, Error> {
    let request = R::from_params(params)?;
    request.check()?;
    Ok(Box::new(request))
}

fn read_json<R: Request>(
    xml: &[u8],
    namespace: &str,
    max_depth: usize,
) -> Result<Reply<Value>, ReadError> {
    Ok(
        match read_response::<R::Output>(xml, namespace, R::SPEC.name, max_depth)? {
            Reply::Result(output) => Reply::Result(R::output_json(&output)),
            Reply::Fault(fault) => Reply::Fault(fault),
        },
    )
}

/// The entry of the operation called `name`.
pub fn find(name: &str) -> Option<&'static OperationEntry> {
    crate::api::OPERATIONS.iter().find(|e| e.info.name == name)
}

/// Declares one operation's request struct and its [`Request`] and
/// [`Operation`] implementations.
macro_rules! operation {
    (@effect Read) => { $crate::api::Effect::Read };
    (@effect WriteIdempotent) => { $crate::api::Effect::WriteIdempotent };
    (@effect Write($advice:literal)) => { $crate::api::Effect::Write { if_unknown: $advice } };
    (@get req $p:ident $spec:expr) => { $p.require(&$spec)? };
    (@get opt $p:ident $spec:expr) => { $p.parse(&$spec)? };
    (@check req $spec:expr, $v:expr) => { $crate::api::request::check_param(&$spec, $v)? };
    (@check opt $spec:expr, $v:expr) => {
        if let Some(v) = $v { $crate::api::request::check_param(&$spec, v)? }
    };
    (@text req $p:ident $n:literal $v:expr) => {
        $p.set($n, $crate::wire::TextValue::to_text($v).into_owned())
    };
    (@text opt $p:ident $n:literal $v:expr) => {
        if let Some(v) = $v { $p.set($n, $crate::wire::TextValue::to_text(v).into_owned()) }
    };
    (@secret req $f:ident $v:expr) => { $f(&$crate::wire::TextValue::to_text($v)) };
    (@secret opt $f:ident $v:expr) => {
        if let Some(v) = $v { $f(&$crate::wire::TextValue::to_text(v)) }
    };
    (@out req $t:ty) => { $t };
    (@out opt $t:ty) => { Option<$t> };
    (@json req $v:expr) => { $crate::wire::XmlValue::to_json($v) };
    (@json opt $v:expr) => { $crate::wire::json_optional($v) };
    (@session session_id $s:ident $this:ident) => {{
        if $this.session_id.is_none() {
            $this.session_id = Some($s.clone());
        }
        true
    }};
    (@session $other:ident $s:ident $this:ident) => {{ false }};
    (@has_session) => { false };
    (
        $(#[$doc:meta])*
        $name:ident = $xml:literal in $area:literal, $effect:ident $(($advice:literal))? {
            $(
                $(#[$fdoc:meta])*
                $field:ident : $kind:ident $fty:ty = $fname:literal $xsd:literal $secret:literal
            ),* $(,)?
        } -> $rkind:ident $rty:ty = $rname:literal $rxsd:literal $rsecret:literal;
    ) => {
        $crate::wire::xml_struct!(@decl $(#[$doc])* $name {
            $( $(#[$fdoc])* $field : $kind $fty ),*
        });

        impl $name {
            const PARAMS: &'static [$crate::wire::FieldSpec] = &[
                $( $crate::wire::FieldSpec {
                    name: $fname,
                    xsd_type: $xsd,
                    occurs: $crate::wire::xml_struct!(@occurs $kind),
                    secret: $secret,
                }, )*
            ];
            const PARAM_SPECS: &'static [$crate::operations::ParamSpec] = &[
                $( $crate::operations::ParamSpec { name: $fname, xsd_type: $xsd }, )*
            ];
        }

        impl $crate::operations::Operation for $name {
            type Output = $crate::api::request::operation!(@out $rkind $rty);
            const SPEC: $crate::operations::OperationSpec = $crate::operations::OperationSpec {
                name: $xml,
                params: Self::PARAM_SPECS,
                result_type: $rxsd,
                idempotency: $crate::api::request::operation!(@effect $effect $(($advice))?).idempotency(),
            };

            #[allow(unused_variables, unused_mut, unused_assignments)]
            fn check(&self) -> Result<(), $crate::Error> {
                let mut i = 0;
                $(
                    $crate::api::request::operation!(@check $kind Self::PARAMS[i], &self.$field);
                    i += 1;
                )*
                Ok(())
            }

            #[allow(unused_variables)]
            fn write_params(&self, w: &mut $crate::wire::XmlWriter<'_>) {
                $( $crate::wire::xml_struct!(@write $kind w $fname &self.$field); )*
            }

            #[allow(unused_variables)]
            fn for_each_secret(&self, f: &mut dyn FnMut(&str)) {
                $( if $secret {
                    $crate::api::request::operation!(@secret $kind f &self.$field);
                } )*
            }
        }

        impl $crate::api::Request for $name {
            const INFO: $crate::api::OperationInfo = $crate::api::OperationInfo {
                name: $xml,
                area: $area,
                effect: $crate::api::request::operation!(@effect $effect $(($advice))?),
                params: Self::PARAMS,
                result: $crate::wire::FieldSpec {
                    name: $rname,
                    xsd_type: $rxsd,
                    occurs: $crate::wire::xml_struct!(@occurs $rkind),
                    secret: $rsecret,
                },
            };

            #[allow(unused_variables, unused_mut, unused_assignments)]
            fn from_params(params: &$crate::api::Params) -> Result<Self, $crate::Error> {
                params.check_names(Self::PARAMS)?;
                let mut request = Self::default();
                let mut i = 0;
                $(
                    request.$field = $crate::api::request::operation!(@get $kind params Self::PARAMS[i]);
                    i += 1;
                )*
                Ok(request)
            }

            #[allow(unused_mut)]
            fn to_params(&self) -> $crate::api::Params {
                let mut params = $crate::api::Params::new();
                $( $crate::api::request::operation!(@text $kind params $fname &self.$field); )*
                params
            }

            #[allow(unused_variables)]
            fn fill_session(&mut self, session: &$crate::secret::SessionId) -> bool {
                $crate::api::request::operation!(@fill self session $($field)*)
            }

            fn output_json(output: &Self::Output) -> serde_json::Value {
                $crate::api::request::operation!(@json $rkind output)
            }
        }
    };
    (@fill $this:ident $s:ident session_id $($rest:ident)*) => {
        $crate::api::request::operation!(@session session_id $s $this)
    };
    (@fill $this:ident $s:ident $first:ident $($rest:ident)*) => {
        $crate::api::request::operation!(@fill $this $s $($rest)*)
    };
    (@fill $this:ident $s:ident) => { false };
}

pub(crate) use operation;

/// One row of [`TYPES`](crate::api::TYPES): a generated complex type or
/// enumeration and a write-after-read of it, for tests of every type.
#[derive(Clone, Copy)]
pub struct TypeEntry {
    /// The contract name of the type.
    pub name: &'static str,
    /// The fields of a complex type (empty for lists and enumerations).
    pub fields: &'static [FieldSpec],
    /// Reads a SOAP response whose `<ProbeResult>` holds a value of this
    /// type, and writes the value back into a response of the same shape.
    pub round_trip: fn(&[u8], &str) -> Written,
    /// The same through the fast path for canonical responses only
    /// ([`read_response_canonical`](crate::wire::read_response_canonical)):
    /// `None` when the response is not in the canonical shape.
    pub canonical_round_trip: fn(&[u8], &str) -> Option<Written>,
}

/// What a [`TypeEntry`] write-after-read gives: the response written back,
/// or why the value could not be read.
pub type Written = Result<Vec<u8>, crate::wire::ReadError>;

impl std::fmt::Debug for TypeEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TypeEntry")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl TypeEntry {
    /// The entry of type `T`, called `name` in the contract, with `fields`.
    pub const fn of<T: crate::wire::ResultValue>(
        name: &'static str,
        fields: &'static [FieldSpec],
    ) -> Self {
        TypeEntry {
            name,
            fields,
            round_trip: round_trip::<T>,
            canonical_round_trip: canonical_round_trip::<T>,
        }
    }
}

fn round_trip<T: crate::wire::ResultValue>(
    xml: &[u8],
    namespace: &str,
) -> Result<Vec<u8>, crate::wire::ReadError> {
    let reply = crate::wire::read_response_in_full::<T>(xml, namespace, "Probe", 256);
    write_back(reply, namespace, xml.len())
}

fn canonical_round_trip<T: crate::wire::ResultValue>(
    xml: &[u8],
    namespace: &str,
) -> Option<Result<Vec<u8>, crate::wire::ReadError>> {
    let reply = crate::wire::read_response_canonical::<T>(xml, namespace, "Probe", 256)?;
    Some(write_back(reply, namespace, xml.len()))
}

fn write_back<T: crate::wire::ResultValue>(
    reply: Result<crate::wire::Reply<T>, crate::wire::ReadError>,
    namespace: &str,
    size: usize,
) -> Result<Vec<u8>, crate::wire::ReadError> {
    use crate::wire::{write_response, Reply, SoapVersion};
    let value = match reply? {
        Reply::Result(value) => value,
        Reply::Fault(_) => return Err(crate::wire::ReadError::Malformed("a fault".into())),
    };
    let mut out = Vec::with_capacity(size);
    write_response(&mut out, SoapVersion::V11, namespace, "Probe", |w| {
        value.write(w)
    });
    Ok(out)
}
