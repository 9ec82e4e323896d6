//! Keeps the answer of an upstream that declines a WebSocket upgrade.
//!
//! awc's WebSocket handshake turns any answer but `101` into `InvalidResponseStatus(status)`
//! and drops the connection with the head's headers and the body still on it, so the client
//! would get a bare status: `content-length: 0`, no `Content-Type`, no JSON error, no
//! `WWW-Authenticate`. This awc middleware sits between the handshake and the connector: a
//! tunnel answered with another status becomes [`SendRequestError::Custom`] carrying the
//! whole [`DeclinedUpgrade`], which [`super::websocket`] turns into an ordinary answer. Plain
//! requests pass through without a look.

use std::rc::Rc;

use actix_codec::Framed;
use actix_http::error::PayloadError;
use actix_http::h1::{ClientCodec, MessageType};
use actix_http::{ResponseHead, StatusCode};
use actix_service::Service;
use awc::error::SendRequestError;
use awc::middleware::Transform;
use awc::{BoxedSocket, ConnectRequest, ConnectResponse};
use bytes::Bytes;
use futures_util::future::{Either, LocalBoxFuture};
use futures_util::stream::LocalBoxStream;
use futures_util::{FutureExt as _, StreamExt as _};

/// An upstream's non-`101` answer to an upgrade: its head and the connection its body is on.
pub struct DeclinedUpgrade {
    pub head: ResponseHead,
    framed: Framed<BoxedSocket, ClientCodec>,
}

impl DeclinedUpgrade {
    /// The answer's body, as framed by its head (length, chunked, or none).
    pub fn body(self) -> Option<LocalBoxStream<'static, Result<Bytes, PayloadError>>> {
        if matches!(self.framed.codec_ref().message_type(), MessageType::None) {
            return None;
        }
        let payload = self.framed.into_map_codec(|c| c.into_payload_codec());
        let pieces = futures_util::stream::unfold(Some(payload), |state| async move {
            let mut payload = state?;
            match payload.next().await? {
                Ok(Some(piece)) => Some((Ok(piece), Some(payload))),
                // The end of the body.
                Ok(None) => None,
                // One error, then the end.
                Err(e) => Some((Err(e), None)),
            }
        });
        Some(pieces.boxed_local())
    }
}

impl std::fmt::Debug for DeclinedUpgrade {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DeclinedUpgrade({})", self.head.status)
    }
}

impl std::fmt::Display for DeclinedUpgrade {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the upgrade was answered with {}", self.head.status)
    }
}

impl std::error::Error for DeclinedUpgrade {}

/// The middleware; see the module doc.
pub struct KeepDeclinedUpgrades;

impl<S> Transform<S, ConnectRequest> for KeepDeclinedUpgrades
where
    S: Service<ConnectRequest, Response = ConnectResponse, Error = SendRequestError> + 'static,
{
    type Transform = KeepDeclinedService<S>;

    fn new_transform(self, service: S) -> Self::Transform {
        KeepDeclinedService {
            inner: Rc::new(service),
        }
    }
}

pub struct KeepDeclinedService<S> {
    inner: Rc<S>,
}

type Answer = Result<ConnectResponse, SendRequestError>;

impl<S> Service<ConnectRequest> for KeepDeclinedService<S>
where
    S: Service<ConnectRequest, Response = ConnectResponse, Error = SendRequestError> + 'static,
{
    type Response = ConnectResponse;
    type Error = SendRequestError;
    // Plain requests keep the connector's own future: no allocation on the hot path.
    type Future = Either<S::Future, LocalBoxFuture<'static, Answer>>;

    actix_service::forward_ready!(inner);

    fn call(&self, req: ConnectRequest) -> Self::Future {
        match req {
            ConnectRequest::Client(..) => Either::Left(self.inner.call(req)),
            ConnectRequest::Tunnel(..) => Either::Right(
                self.inner
                    .call(req)
                    .map(|answer| match answer? {
                        ConnectResponse::Tunnel(head, framed)
                            if head.status != StatusCode::SWITCHING_PROTOCOLS =>
                        {
                            Err(SendRequestError::Custom(
                                Box::new(DeclinedUpgrade { head, framed }),
                                Box::new("declined upgrade"),
                            ))
                        }
                        other => Ok(other),
                    })
                    .boxed_local(),
            ),
        }
    }
}
