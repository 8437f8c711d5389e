//! Connections to groupd, and requests carrying the bearer token.

use anyhow::Context as _;
use groupd::pb::group_service_client::GroupServiceClient;
use tonic::{
    Request, Status,
    metadata::{Ascii, MetadataValue},
    transport::{Channel, Endpoint},
};

use crate::stats::Outcome;

/// A GroupService client on one connection, adding the `authorization`
/// header, when there is a token, to each request.
#[derive(Debug, Clone)]
pub struct Client {
    grpc: GroupServiceClient<Channel>,
    authorization: Option<MetadataValue<Ascii>>,
}

impl Client {
    pub fn new(channel: Channel, authorization: Option<MetadataValue<Ascii>>) -> Self {
        Self {
            // Replies of a few megabytes (pages of large groups) are fine.
            grpc: GroupServiceClient::new(channel).max_decoding_message_size(64 * 1024 * 1024),
            authorization,
        }
    }

    /// The generated client, to call with [`Self::request`]'s requests.
    pub fn grpc(&mut self) -> &mut GroupServiceClient<Channel> {
        &mut self.grpc
    }

    /// `message` as a request with the token.
    pub fn request<T>(&self, message: T) -> Request<T> {
        let mut request = Request::new(message);
        if let Some(value) = &self.authorization {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        request
    }
}

/// The `authorization` header of bearer `token`.
pub fn bearer(token: Option<&str>) -> anyhow::Result<Option<MetadataValue<Ascii>>> {
    token
        .map(|token| {
            MetadataValue::try_from(format!("Bearer {}", token.trim()))
                .map_err(|_| anyhow::anyhow!("the token holds characters a header cannot carry"))
        })
        .transpose()
}

/// `count` HTTP/2 connections to `target`, each its own TCP connection.
pub async fn connect(target: &str, count: usize) -> anyhow::Result<Vec<Channel>> {
    let endpoint = Endpoint::from_shared(target.to_owned())
        .with_context(|| format!("`{target}` is not a URL such as http://127.0.0.1:50051"))?
        .tcp_nodelay(true);
    let mut channels = Vec::with_capacity(count);
    for _ in 0..count {
        channels.push(
            endpoint
                .connect()
                .await
                .with_context(|| format!("cannot connect to {target}"))?,
        );
    }
    Ok(channels)
}

/// A call that was not answered OK, counted by its code.
pub fn not_ok(status: &Status) -> Outcome {
    let mut message = status.message().to_owned();
    if message.len() > 300 {
        let mut end = 300;
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        message.truncate(end);
    }
    Outcome::NotOk {
        code: format!("{:?}", status.code()),
        message,
    }
}
