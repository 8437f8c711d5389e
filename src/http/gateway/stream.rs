//! Server-streaming replies: the RPC's messages written out as they
//! arrive, one at a time, each handed to the connection on its own so that
//! clients read it live, as newline-delimited JSON or as Server-Sent
//! Events, and the stream's end (its status) written as its last line or
//! event.
//!
//! Two conventions make a stream resumable over HTTP, and are the only
//! places the gateway reads a field by name besides `etag`: a reply's
//! top-level string field `cursor` is the SSE event id, and the request's
//! `cursor` is where a `Last-Event-ID` goes, replacing any start the URL
//! gives (`cursor`, or a boolean `start_from_*` field). A stream without
//! them is served all the same, without ids.

use std::convert::Infallible;

use axum::{
    body::{Body as AxumBody, Bytes},
    response::Response,
};
use futures_util::stream;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use http_body_util::BodyExt as _;
use prost_reflect::{DescriptorPool, DynamicMessage, Kind, MessageDescriptor, ReflectMessage as _};
use serde_json::{Map, Value as Json, json};
use tonic::{Code, Status};

use super::{failure::internal_error, reply::message_json};
use crate::http::status::{HttpError, status_json};

/// The media type of newline-delimited JSON, the default.
pub const NDJSON: &str = "application/x-ndjson";
/// The media type of Server-Sent Events.
pub const EVENT_STREAM: &str = "text/event-stream";

/// How long an `EventSource` waits before it reconnects after its stream
/// ended (the `retry` field sent first): long enough that clients of a
/// server shutting down do not all come back at once, short enough that a
/// browser resumes promptly on another replica.
const SSE_RETRY_MS: u32 = 2_000;

/// The request field a resumed stream starts after, and the reply field
/// that names each message's position (the SSE event id).
const CURSOR: &str = "cursor";
/// The prefix of the request's boolean fields that choose another start,
/// which a `Last-Event-ID` overrides.
const START_PREFIX: &str = "start_from_";
/// The request header an `EventSource` resumes with.
const LAST_EVENT_ID: &str = "last-event-id";

/// How a stream is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Format {
    /// `application/x-ndjson`: `{"result": …}` per message, a last
    /// `{"error": …}` if the stream fails (grpc-gateway's form).
    Ndjson,
    /// `text/event-stream`: one event per message, `event: error` if the
    /// stream fails.
    Sse,
}

impl Format {
    /// The format the client's `Accept` asks for: Server-Sent Events when
    /// it accepts `text/event-stream` and does not prefer
    /// `application/x-ndjson` (on a tie, or when neither is named,
    /// newline-delimited JSON).
    pub(super) fn negotiate(headers: &HeaderMap) -> Self {
        let mut sse = 0.0_f32;
        let mut ndjson = 0.0_f32;
        for value in headers.get_all(header::ACCEPT) {
            let Ok(value) = value.to_str() else {
                continue;
            };
            for range in value.split(',') {
                let mut parameters = range.split(';');
                let media = parameters.next().unwrap_or_default().trim();
                let quality = parameters
                    .filter_map(|parameter| parameter.split_once('='))
                    .find(|(name, _)| name.trim().eq_ignore_ascii_case("q"))
                    .map_or(Some(1.0), |(_, q)| q.trim().parse::<f32>().ok())
                    .unwrap_or(0.0);
                if media.eq_ignore_ascii_case(EVENT_STREAM) {
                    sse = sse.max(quality);
                } else if media.eq_ignore_ascii_case(NDJSON) {
                    ndjson = ndjson.max(quality);
                }
            }
        }
        if sse > 0.0 && sse > ndjson {
            Self::Sse
        } else {
            Self::Ndjson
        }
    }

    fn content_type(self) -> &'static str {
        match self {
            Self::Ndjson => NDJSON,
            Self::Sse => EVENT_STREAM,
        }
    }
}

/// Places a non-empty `Last-Event-ID` (the id of the last event an
/// `EventSource` received, which it sends when it reconnects to the same
/// URL) as the request's `cursor`. It wins over any start the URL gives:
/// the URL is the one the client first opened, perhaps with
/// `start_from_now`, and resuming where it stopped is what the header
/// asks. Refused when given twice, or for a method with no `cursor` to
/// resume from: ignoring it would restart the stream where the URL says.
pub(super) fn apply_last_event_id(
    root: &mut Map<String, Json>,
    input: &MessageDescriptor,
    headers: &HeaderMap,
) -> Result<(), HttpError> {
    let mut values = headers.get_all(LAST_EVENT_ID).iter();
    let Some(value) = values.next() else {
        return Ok(());
    };
    if values.next().is_some() {
        return Err(HttpError::invalid(
            "Last-Event-ID",
            "Last-Event-ID is given more than once",
        ));
    }
    let Ok(id) = value.to_str() else {
        return Err(HttpError::invalid(
            "Last-Event-ID",
            "Last-Event-ID is not visible ASCII",
        ));
    };
    if id.is_empty() {
        return Ok(());
    }
    let Some(cursor) = input
        .get_field_by_name(CURSOR)
        .filter(|field| field.kind() == Kind::String && !field.is_list())
    else {
        return Err(HttpError::invalid(
            "Last-Event-ID",
            "this method cannot resume from an event id",
        ));
    };
    for field in input.fields() {
        let starts = field.name() == CURSOR
            || (field.name().starts_with(START_PREFIX)
                && field.kind() == Kind::Bool
                && !field.is_list());
        if starts {
            root.remove(field.name());
            root.remove(field.json_name());
        }
    }
    root.insert(cursor.json_name().to_owned(), Json::String(id.to_owned()));
    Ok(())
}

/// The 200 response of an opened stream: `body` (the RPC's gRPC reply
/// body, whose headers said OK) read frame by frame, each message of type
/// `output` written in `format` as soon as it is whole.
pub(super) fn stream_response(
    body: tonic::body::Body,
    output: MessageDescriptor,
    format: Format,
) -> Response {
    let reading = Reading {
        body,
        pool: output.parent_pool().clone(),
        output,
        format,
        buffer: Vec::new(),
        started: false,
        ended: false,
    };
    let pieces = stream::unfold(reading, |mut reading| async move {
        let piece = reading.next_piece().await?;
        Some((Ok::<_, Infallible>(piece), reading))
    });
    let mut response = Response::new(AxumBody::from_stream(pieces));
    *response.status_mut() = StatusCode::OK;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(format.content_type()),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    // Reverse proxies of the nginx family buffer replies unless told not
    // to, which would hold the lines back from the client.
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}

/// A stream being read from the RPC and written out.
struct Reading {
    body: tonic::body::Body,
    output: MessageDescriptor,
    /// Where the `google.rpc` detail types of an error are.
    pool: DescriptorPool,
    format: Format,
    /// What has arrived of the next gRPC message (at most one message and
    /// the start of the next, since a piece is written per message).
    buffer: Vec<u8>,
    /// The SSE preamble (`retry`) was written.
    started: bool,
    /// The last piece was written: nothing follows.
    ended: bool,
}

impl Reading {
    /// The next piece of the HTTP body: a message, the stream's error, or
    /// `None` once the stream is over.
    async fn next_piece(&mut self) -> Option<Bytes> {
        if self.ended {
            return None;
        }
        if self.format == Format::Sse && !self.started {
            self.started = true;
            return Some(Bytes::from(format!("retry: {SSE_RETRY_MS}\n\n")));
        }
        loop {
            match take_message(&mut self.buffer) {
                Ok(Some(message)) => return Some(self.message_piece(&message)),
                Ok(None) => {}
                Err(cause) => return Some(self.failed(&internal_status(cause))),
            }
            match self.body.frame().await {
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => self.buffer.extend_from_slice(&data),
                    Err(frame) => {
                        let status = frame
                            .trailers_ref()
                            .and_then(Status::from_header_map)
                            .unwrap_or_else(|| internal_status("a reply frame of no known kind"));
                        return self.ended_with(&status);
                    }
                },
                Some(Err(status)) => return Some(self.failed(&status)),
                None => {
                    return Some(self.failed(&internal_status("the reply ended without a status")));
                }
            }
        }
    }

    /// The end of the stream, with the status of its trailers: nothing
    /// more when it is OK, else the error piece.
    fn ended_with(&mut self, status: &Status) -> Option<Bytes> {
        if status.code() != Code::Ok {
            return Some(self.failed(status));
        }
        self.ended = true;
        if !self.buffer.is_empty() {
            return Some(self.failed(&internal_status("the reply ended inside a message")));
        }
        None
    }

    /// One message, in the stream's format.
    fn message_piece(&mut self, bytes: &[u8]) -> Bytes {
        let message = match DynamicMessage::decode(self.output.clone(), bytes) {
            Ok(message) => message,
            Err(_) => return self.failed(&internal_status("a reply message could not be decoded")),
        };
        let json = match message_json(&message) {
            Ok(json) => json,
            Err(cause) => return self.failed(&internal_status(cause)),
        };
        match self.format {
            Format::Ndjson => line(&json!({"result": json})),
            Format::Sse => {
                let mut event = String::new();
                if let Some(name) = event_name(&message) {
                    event.push_str("event: ");
                    event.push_str(&name);
                    event.push('\n');
                }
                if let Some(id) = event_id(&message) {
                    event.push_str("id: ");
                    event.push_str(&id);
                    event.push('\n');
                }
                event.push_str("data: ");
                event.push_str(&json.to_string());
                event.push_str("\n\n");
                Bytes::from(event)
            }
        }
    }

    /// The stream's error, as its last piece.
    fn failed(&mut self, status: &Status) -> Bytes {
        self.ended = true;
        let error = status_json(&self.pool, status);
        match self.format {
            Format::Ndjson => line(&json!({"error": error})),
            Format::Sse => Bytes::from(format!("event: error\ndata: {error}\n\n")),
        }
    }
}

/// The gateway's own failure while reading a stream, logged, as the
/// status its client reads: a bare INTERNAL.
fn internal_status(cause: impl AsRef<str>) -> Status {
    internal_error(cause.as_ref()).status
}

/// `value` as one line of newline-delimited JSON.
fn line(value: &Json) -> Bytes {
    let mut bytes = serde_json::to_vec(value).unwrap_or_default();
    bytes.push(b'\n');
    Bytes::from(bytes)
}

/// Takes the first whole gRPC message out of `buffer`, if it holds one
/// (a gRPC frame: a compression flag, a four-byte length, the message).
/// A compressed message is an error: the call does not offer compression.
fn take_message(buffer: &mut Vec<u8>) -> Result<Option<Vec<u8>>, &'static str> {
    let Some(header) = buffer.get(..5) else {
        return Ok(None);
    };
    if header[0] != 0 {
        return Err("a reply message is compressed");
    }
    let length = u32::from_be_bytes([header[1], header[2], header[3], header[4]]);
    let end = usize::try_from(length)
        .ok()
        .and_then(|length| length.checked_add(5))
        .ok_or("a reply message is too large")?;
    if buffer.len() < end {
        return Ok(None);
    }
    let message = buffer[5..end].to_vec();
    buffer.drain(..end);
    Ok(Some(message))
}

/// The SSE event name of a message: the field set in its oneof (`change`,
/// `heartbeat`); none when it has no oneof set, which an `EventSource`
/// dispatches as `message`.
fn event_name(message: &DynamicMessage) -> Option<String> {
    message
        .descriptor()
        .oneofs()
        .filter(|oneof| !oneof.is_synthetic())
        .flat_map(|oneof| oneof.fields().collect::<Vec<_>>())
        .find(|field| message.has_field(field))
        .map(|field| field.name().to_owned())
}

/// The SSE event id of a message: its `cursor`, when it has a non-empty
/// one that can stand on an SSE line (no line break, no NUL).
fn event_id(message: &DynamicMessage) -> Option<String> {
    let field = message.descriptor().get_field_by_name(CURSOR)?;
    let value = message.get_field(&field);
    let id = value.as_str()?;
    (!id.is_empty() && !id.contains(['\n', '\r', '\0'])).then(|| id.to_owned())
}

#[cfg(test)]
mod tests {
    use prost::Message as _;

    use super::*;
    use crate::pb;

    fn accepting(values: &[&str]) -> Format {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(header::ACCEPT, HeaderValue::from_str(value).unwrap());
        }
        Format::negotiate(&headers)
    }

    #[test]
    fn event_streams_are_sent_to_clients_that_ask_for_them() {
        assert_eq!(accepting(&[]), Format::Ndjson);
        assert_eq!(accepting(&["*/*"]), Format::Ndjson);
        assert_eq!(accepting(&["application/json"]), Format::Ndjson);
        assert_eq!(accepting(&["text/event-stream"]), Format::Sse);
        assert_eq!(
            accepting(&["Text/Event-Stream; charset=utf-8"]),
            Format::Sse
        );
        assert_eq!(accepting(&["text/html", "text/event-stream"]), Format::Sse);
        assert_eq!(accepting(&["text/event-stream;q=0"]), Format::Ndjson);
        assert_eq!(
            accepting(&["application/x-ndjson, text/event-stream"]),
            Format::Ndjson
        );
        assert_eq!(
            accepting(&["application/x-ndjson;q=0.5, text/event-stream"]),
            Format::Sse
        );
        assert_eq!(
            accepting(&["application/x-ndjson, text/event-stream;Q=0.9"]),
            Format::Ndjson
        );
    }

    fn watch_input() -> MessageDescriptor {
        crate::http::descriptors::descriptor_pool()
            .unwrap()
            .get_message_by_name("groups.v1.WatchGroupChangesRequest")
            .unwrap()
    }

    fn with_last_event_id(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(LAST_EVENT_ID, HeaderValue::from_str(value).unwrap());
        }
        headers
    }

    #[test]
    fn last_event_id_replaces_every_start_the_url_gives() {
        let input = watch_input();
        let mut root = json!({
            "start_from_now": true,
            "startFromOldest": true,
            "cursor": "from-the-url",
            "filter": "state = ACTIVE",
            "heartbeatInterval": "5s",
        });
        let Json::Object(map) = &mut root else {
            unreachable!()
        };
        apply_last_event_id(map, &input, &with_last_event_id(&["resumed"])).unwrap();
        assert_eq!(
            root,
            json!({"cursor": "resumed", "filter": "state = ACTIVE", "heartbeatInterval": "5s"})
        );
    }

    #[test]
    fn an_empty_last_event_id_changes_nothing_and_two_are_refused() {
        let input = watch_input();
        let mut map = Map::new();
        map.insert("startFromNow".into(), Json::Bool(true));
        apply_last_event_id(&mut map, &input, &with_last_event_id(&[""])).unwrap();
        apply_last_event_id(&mut map, &input, &HeaderMap::new()).unwrap();
        assert_eq!(Json::Object(map.clone()), json!({"startFromNow": true}));
        let refused =
            apply_last_event_id(&mut map, &input, &with_last_event_id(&["a", "b"])).unwrap_err();
        assert_eq!(refused.status.code(), Code::InvalidArgument);
        // A method with no cursor cannot resume: the header is refused,
        // not ignored.
        let get = crate::http::descriptors::descriptor_pool()
            .unwrap()
            .get_message_by_name("groups.v1.GetGroupRequest")
            .unwrap();
        assert!(apply_last_event_id(&mut Map::new(), &get, &with_last_event_id(&["a"])).is_err());
    }

    fn frame(message: &impl prost::Message) -> Vec<u8> {
        let mut frame = vec![0];
        frame.extend_from_slice(&u32::try_from(message.encoded_len()).unwrap().to_be_bytes());
        frame.extend_from_slice(&message.encode_to_vec());
        frame
    }

    #[test]
    fn messages_are_taken_whole_however_the_bytes_arrive() {
        let one = pb::WatchGroupChangesResponse {
            cursor: "c1".into(),
            ..Default::default()
        };
        let two = pb::WatchGroupChangesResponse {
            cursor: "c2".into(),
            group_id: "g".into(),
            ..Default::default()
        };
        let mut bytes = frame(&one);
        bytes.extend(frame(&two));
        for split in 0..bytes.len() {
            let mut buffer = bytes[..split].to_vec();
            let mut found = Vec::new();
            while let Some(message) = take_message(&mut buffer).unwrap() {
                found.push(message);
            }
            buffer.extend_from_slice(&bytes[split..]);
            while let Some(message) = take_message(&mut buffer).unwrap() {
                found.push(message);
            }
            assert_eq!(found, [one.encode_to_vec(), two.encode_to_vec()], "{split}");
            assert!(buffer.is_empty());
        }
        assert!(take_message(&mut vec![1, 0, 0, 0, 0]).is_err());
    }

    #[test]
    fn sse_events_are_named_by_their_oneof_and_identified_by_their_cursor() {
        let pool = crate::http::descriptors::descriptor_pool().unwrap();
        let output = pool
            .get_message_by_name("groups.v1.WatchGroupChangesResponse")
            .unwrap();
        let heartbeat = pb::WatchGroupChangesResponse {
            cursor: "AAAB".into(),
            group_id: String::new(),
            event: Some(pb::watch_group_changes_response::Event::Heartbeat(
                pb::Heartbeat {},
            )),
        };
        let message = DynamicMessage::decode(output.clone(), &*heartbeat.encode_to_vec()).unwrap();
        assert_eq!(event_name(&message).as_deref(), Some("heartbeat"));
        assert_eq!(event_id(&message).as_deref(), Some("AAAB"));
        let bare = DynamicMessage::new(output);
        assert_eq!(event_name(&bare), None);
        assert_eq!(event_id(&bare), None);
    }
}
