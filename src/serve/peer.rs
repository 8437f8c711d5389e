//! The peer identity of a connection, in each of its requests' extensions.
//!
//! [`WithPeer`] wraps the service of one connection: every request it
//! passes on carries the identity of the client certificate the TLS
//! handshake verified ([`PeerIdentity`]), or none. It removes any identity
//! a request already carries first, so only the handshake can set one:
//! nothing a client sends (a header, say) becomes an extension.
//!
//! Over gRPC, tonic hands the HTTP request's extensions to the call
//! (`tonic::Request::extensions`); the HTTP gateway copies the identity
//! into its in-process call.

use std::task::{Context, Poll};

use http::Request;
use tower::Service;

use crate::auth::PeerIdentity;

/// `inner`, with the connection's peer identity in every request.
#[derive(Debug, Clone)]
pub struct WithPeer<S> {
    inner: S,
    peer: Option<PeerIdentity>,
}

impl<S> WithPeer<S> {
    /// `inner` for a connection whose client is `peer` (`None`: no
    /// verified client certificate, or plaintext).
    pub fn new(inner: S, peer: Option<PeerIdentity>) -> Self {
        Self { inner, peer }
    }
}

impl<S, B> Service<Request<B>> for WithPeer<S>
where
    S: Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        let extensions = request.extensions_mut();
        extensions.remove::<PeerIdentity>();
        if let Some(peer) = &self.peer {
            extensions.insert(peer.clone());
        }
        self.inner.call(request)
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use tower::{ServiceExt as _, service_fn};

    use super::*;

    /// What the wrapped service saw of the request's identity.
    async fn seen(peer: Option<&str>, request: Request<()>) -> Option<PeerIdentity> {
        let inner = service_fn(|request: Request<()>| async move {
            Ok::<_, Infallible>(request.extensions().get::<PeerIdentity>().cloned())
        });
        let Ok(seen) = WithPeer::new(inner, peer.map(|p| PeerIdentity(p.to_owned())))
            .oneshot(request)
            .await;
        seen
    }

    #[tokio::test]
    async fn every_request_carries_the_connections_identity() {
        let peer = "spiffe://example.org/ns/prod/sa/billing";
        assert_eq!(
            seen(Some(peer), Request::new(())).await,
            Some(PeerIdentity(peer.to_owned()))
        );
        assert_eq!(seen(None, Request::new(())).await, None);
    }

    #[tokio::test]
    async fn an_identity_the_request_already_carries_is_replaced_or_removed() {
        let forged = || {
            let mut request = Request::builder()
                .header("x-peer-identity", "spiffe://example.org/admin")
                .body(())
                .unwrap_or_else(|e| panic!("{e}"));
            request
                .extensions_mut()
                .insert(PeerIdentity("spiffe://example.org/admin".to_owned()));
            request
        };
        assert_eq!(seen(None, forged()).await, None);
        assert_eq!(
            seen(Some("client.example.org"), forged()).await,
            Some(PeerIdentity("client.example.org".to_owned()))
        );
    }
}
