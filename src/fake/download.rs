//! Download answers streamed from a parcel's stored bytes: the rendered
//! envelope (or JSON) around the content is written as is, and the content
//! is base64-encoded chunk by chunk into the body as the client reads it, so
//! a 200 MB parcel never becomes a 267 MB string. The length is known up
//! front and sent as `Content-Length`.

use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::Bytes;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use hyper::body::{Frame, SizeHint};

/// Raw bytes encoded per frame: a multiple of 3, so only the last frame is
/// padded; 48 KiB in, 64 KiB out.
const CHUNK: usize = 48 * 1024;

/// A marker to render in place of the content, found again afterwards: 24
/// random bytes and their base64 text (32 characters, no padding).
pub(super) fn marker() -> (Vec<u8>, String) {
    let bytes: Vec<u8> = std::iter::repeat_with(|| fastrand::u8(..))
        .take(24)
        .collect();
    let text = base64::engine::general_purpose::STANDARD.encode(&bytes);
    (bytes, text)
}

/// The answer `rendered` with the base64 of `content` where `marker` is,
/// streamed. A rendering without the marker is a bug of the caller, and
/// answered with a 500.
pub(super) fn base64_body(
    rendered: Vec<u8>,
    marker: &str,
    content: Bytes,
    content_type: &'static str,
) -> Response {
    let Some(at) = rendered
        .windows(marker.len())
        .position(|w| w == marker.as_bytes())
    else {
        tracing::error!("fake: the content marker is missing from a download answer");
        return (StatusCode::INTERNAL_SERVER_ERROR, "content marker missing").into_response();
    };
    let mut rendered = Bytes::from(rendered);
    let suffix = rendered.split_off(at + marker.len());
    rendered.truncate(at);
    let body = Base64Body {
        length: (rendered.len() + base64_len(content.len()) + suffix.len()) as u64,
        prefix: Some(rendered),
        content,
        position: 0,
        suffix: Some(suffix),
    };
    (
        [(header::CONTENT_TYPE, content_type)],
        axum::body::Body::new(body),
    )
        .into_response()
}

/// The length of the padded base64 text of `n` bytes.
fn base64_len(n: usize) -> usize {
    n.div_ceil(3) * 4
}

/// Prefix, then the content's base64 in chunks, then the suffix.
struct Base64Body {
    length: u64,
    prefix: Option<Bytes>,
    content: Bytes,
    position: usize,
    suffix: Option<Bytes>,
}

impl hyper::body::Body for Base64Body {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        if let Some(prefix) = this.prefix.take() {
            return Poll::Ready(Some(Ok(Frame::data(prefix))));
        }
        if this.position < this.content.len() {
            let end = (this.position + CHUNK).min(this.content.len());
            let text =
                base64::engine::general_purpose::STANDARD.encode(&this.content[this.position..end]);
            this.position = end;
            return Poll::Ready(Some(Ok(Frame::data(Bytes::from(text)))));
        }
        Poll::Ready(this.suffix.take().map(|s| Ok(Frame::data(s))))
    }

    fn is_end_stream(&self) -> bool {
        self.prefix.is_none() && self.position >= self.content.len() && self.suffix.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.length)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::body::Body as _;

    #[tokio::test]
    async fn streams_the_content_in_place_of_the_marker() {
        let (_, mark) = marker();
        let rendered = format!("<a>{mark}</a>").into_bytes();
        let content = Bytes::from((0..200_000u32).map(|i| i as u8).collect::<Vec<_>>());
        let response = base64_body(rendered, &mark, content.clone(), "text/xml");
        let body = response.into_body();
        let expected_len = 3 + base64_len(content.len()) + 4;
        assert_eq!(body.size_hint().exact(), Some(expected_len as u64));
        let bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap();
        let text = std::str::from_utf8(&bytes).unwrap();
        let inner = text
            .strip_prefix("<a>")
            .unwrap()
            .strip_suffix("</a>")
            .unwrap();
        assert_eq!(
            base64::engine::general_purpose::STANDARD
                .decode(inner)
                .unwrap(),
            content
        );
        assert_eq!(bytes.len(), expected_len);
    }
}
