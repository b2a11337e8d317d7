//! One `StreamDeviceEvents` call, read frame by frame: the gRPC message framing (a flag byte,
//! a 4-byte length, the message) undone here instead of by `tonic::Streaming`.
//!
//! Why not tonic's reader: it keeps a receive buffer per stream for the life of the stream,
//! grown to the largest burst it ever held (2-4 KiB with the 2 KiB window), and offers no
//! way to let it go. A gateway holds a stream per device, idle for a minute between events:
//! 10,000 such buffers were ~20 MB of its resident memory (heaptrack, docs/performance.md).
//! Here the bytes of a message wait only while it is incomplete; between messages the
//! stream holds no buffer at all.

use chirpstack_api::api::LogItem;
use http_body_util::BodyExt;
use prost::Message;
use tonic::codegen::http::{HeaderMap, StatusCode};
use tonic::{Code, Status};

/// The largest event accepted (tonic's default for a decoded message): a larger one fails
/// the stream instead of growing a buffer without end.
pub const MAX_EVENT_BYTES: usize = 4 * 1024 * 1024;

/// The flag byte and the big-endian length before every message.
const PREFIX_BYTES: usize = 5;

/// `message` as gRPC sends it: uncompressed, behind its length.
pub fn framed(message: &impl Message) -> Vec<u8> {
    let length = message.encoded_len();
    let mut bytes = Vec::with_capacity(PREFIX_BYTES + length);
    bytes.push(0);
    bytes.extend_from_slice(&u32::try_from(length).unwrap_or(u32::MAX).to_be_bytes());
    message.encode_raw(&mut bytes);
    bytes
}

/// The events of one device, as the server sends them.
#[derive(Debug)]
pub struct EventStream {
    body: tonic::body::Body,
    /// What the server answered the call with (the status when no `grpc-status` comes).
    http_status: StatusCode,
    /// Bytes received and not yet taken as a message (empty, and unallocated, between
    /// messages).
    pending: Vec<u8>,
    ended: bool,
}

impl EventStream {
    /// Reads the answer to a `StreamDeviceEvents` call: an error status in its headers (a
    /// "trailers-only" answer) fails it at once.
    pub fn from_response(
        response: tonic::codegen::http::Response<tonic::body::Body>,
    ) -> Result<Self, Status> {
        let http_status = response.status();
        let ended = match Status::from_header_map(response.headers()) {
            Some(status) if status.code() != Code::Ok => return Err(status),
            Some(_) => true,
            None => false,
        };
        Ok(Self {
            body: response.into_body(),
            http_status,
            pending: Vec::new(),
            ended,
        })
    }

    /// The next event; `None` when the server ended the stream with an OK status.
    pub async fn message(&mut self) -> Result<Option<LogItem>, Status> {
        loop {
            if let Some(item) = self.take_message()? {
                return Ok(Some(item));
            }
            if self.ended {
                return Ok(None);
            }
            match self.body.frame().await {
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => self.pending.extend_from_slice(&data),
                    Err(frame) => {
                        if let Ok(trailers) = frame.into_trailers() {
                            return self.finish(Some(&trailers));
                        }
                    }
                },
                Some(Err(status)) => return Err(status),
                None => return self.finish(None),
            }
        }
    }

    /// Bytes this stream holds for a message not yet whole (0 between messages).
    pub fn pending_capacity(&self) -> usize {
        self.pending.capacity()
    }

    /// One whole message off the front of what was received, if there is one.
    fn take_message(&mut self) -> Result<Option<LogItem>, Status> {
        let Some(prefix) = self.pending.first_chunk::<PREFIX_BYTES>() else {
            return Ok(None);
        };
        if prefix[0] != 0 {
            return Err(Status::internal(
                "the server sent a compressed event, and none was asked for",
            ));
        }
        let length = u32::from_be_bytes([prefix[1], prefix[2], prefix[3], prefix[4]]) as usize;
        if length > MAX_EVENT_BYTES {
            return Err(Status::out_of_range(format!(
                "an event of {length} bytes is over the {MAX_EVENT_BYTES}-byte limit"
            )));
        }
        let end = PREFIX_BYTES + length;
        if self.pending.len() < end {
            return Ok(None);
        }
        let item = LogItem::decode(&self.pending[PREFIX_BYTES..end])
            .map_err(|error| Status::internal(format!("an event could not be decoded: {error}")))?;
        if self.pending.len() == end {
            // Let the buffer go: the next message may be a minute away.
            self.pending = Vec::new();
        } else {
            self.pending.drain(..end);
        }
        Ok(Some(item))
    }

    /// The end of the body: the status in its trailers, else one inferred from the answer.
    fn finish(&mut self, trailers: Option<&HeaderMap>) -> Result<Option<LogItem>, Status> {
        self.ended = true;
        if let Some(status) = trailers.and_then(Status::from_header_map) {
            if status.code() != Code::Ok {
                return Err(status);
            }
            if !self.pending.is_empty() {
                return Err(Status::internal("the event stream ended inside an event"));
            }
            return Ok(None);
        }
        let code = match self.http_status {
            StatusCode::UNAUTHORIZED => Code::Unauthenticated,
            StatusCode::FORBIDDEN => Code::PermissionDenied,
            StatusCode::NOT_FOUND => Code::Unimplemented,
            // An answer of 200 that ends without a status was cut off on the way.
            StatusCode::OK
            | StatusCode::TOO_MANY_REQUESTS
            | StatusCode::BAD_GATEWAY
            | StatusCode::SERVICE_UNAVAILABLE
            | StatusCode::GATEWAY_TIMEOUT => Code::Unavailable,
            _ => Code::Unknown,
        };
        Err(Status::new(
            code,
            format!(
                "the event stream ended without a gRPC status (HTTP {})",
                self.http_status.as_u16()
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::body::{Bytes, Frame};
    use tonic::codegen::http::{HeaderValue, Response};

    fn item(n: usize) -> LogItem {
        LogItem {
            id: format!("event-{n}"),
            description: "up".into(),
            body: "x".repeat(n * 100),
            ..LogItem::default()
        }
    }

    fn trailers(code: Code, message: &str) -> HeaderMap {
        let mut map = HeaderMap::new();
        map.insert("grpc-status", HeaderValue::from(code as i32));
        if !message.is_empty() {
            map.insert("grpc-message", HeaderValue::from_str(message).unwrap());
        }
        map
    }

    fn stream_of(frames: Vec<Frame<Bytes>>, http: StatusCode) -> EventStream {
        let body = http_body_util::StreamBody::new(tokio_stream::iter(
            frames.into_iter().map(Ok::<_, Status>),
        ));
        let mut response = Response::new(tonic::body::Body::new(body));
        *response.status_mut() = http;
        EventStream::from_response(response).unwrap()
    }

    /// The error a stream of `frames` (answered with `http`) ends with.
    async fn error_of(frames: Vec<Frame<Bytes>>, http: StatusCode) -> Status {
        stream_of(frames, http).message().await.unwrap_err()
    }

    /// Messages split over frames and several in one frame come out whole and in order, and
    /// between them the stream holds no buffer.
    #[tokio::test]
    async fn messages_come_whole_whatever_the_frames_and_no_buffer_stays_between_them() {
        let mut bytes = Vec::new();
        for n in 1..=4 {
            bytes.extend(framed(&item(n)));
        }
        // Frames of 7 bytes (every message split, prefixes too), then the rest in one.
        let split = bytes.len() / 2;
        let mut frames: Vec<Frame<Bytes>> = bytes[..split]
            .chunks(7)
            .map(|chunk| Frame::data(Bytes::copy_from_slice(chunk)))
            .collect();
        frames.push(Frame::data(Bytes::copy_from_slice(&bytes[split..])));
        frames.push(Frame::trailers(trailers(Code::Ok, "")));
        let mut stream = stream_of(frames, StatusCode::OK);
        let mut ids = Vec::new();
        while let Some(event) = stream.message().await.unwrap() {
            assert_eq!(event, item(ids.len() + 1));
            ids.push(event.id);
            if ids.len() == 4 {
                assert_eq!(stream.pending_capacity(), 0, "nothing held after the last");
            }
        }
        assert_eq!(ids, ["event-1", "event-2", "event-3", "event-4"]);
        assert_eq!(
            stream.message().await.unwrap(),
            None,
            "an ended stream stays ended"
        );

        let mut stream = stream_of(
            vec![
                Frame::data(Bytes::from(framed(&item(3)))),
                Frame::data(Bytes::from(framed(&item(5)))),
            ],
            StatusCode::OK,
        );
        stream.message().await.unwrap().unwrap();
        assert_eq!(
            stream.pending_capacity(),
            0,
            "a whole frame leaves nothing behind"
        );
        stream.message().await.unwrap().unwrap();
        assert_eq!(stream.pending_capacity(), 0);
    }

    /// How a stream ends: the trailers' status, a trailers-only answer, an end without any
    /// status, and bad framing each give the error an operator can read.
    #[tokio::test]
    async fn a_stream_ends_with_the_servers_status_or_a_clear_error() {
        let mut stream = stream_of(
            vec![
                Frame::data(Bytes::from(framed(&item(1)))),
                Frame::trailers(trailers(Code::Unauthenticated, "bad token")),
            ],
            StatusCode::OK,
        );
        assert!(stream.message().await.unwrap().is_some());
        let error = stream.message().await.unwrap_err();
        assert_eq!(
            (error.code(), error.message()),
            (Code::Unauthenticated, "bad token")
        );

        let mut headers_only = Response::new(tonic::body::Body::empty());
        *headers_only.headers_mut() = trailers(Code::PermissionDenied, "no");
        let error = EventStream::from_response(headers_only).unwrap_err();
        assert_eq!(error.code(), Code::PermissionDenied);

        let error = error_of(vec![], StatusCode::SERVICE_UNAVAILABLE).await;
        assert_eq!(error.code(), Code::Unavailable);
        assert!(error.message().contains("HTTP 503"), "{}", error.message());
        let error = error_of(vec![], StatusCode::OK).await;
        assert_eq!(
            error.code(),
            Code::Unavailable,
            "an end without a status is a cut"
        );

        let mut cut = framed(&item(2));
        cut.truncate(20);
        let error = error_of(
            vec![
                Frame::data(Bytes::from(cut)),
                Frame::trailers(trailers(Code::Ok, "")),
            ],
            StatusCode::OK,
        )
        .await;
        assert!(
            error.message().contains("inside an event"),
            "{}",
            error.message()
        );

        let mut compressed = framed(&item(1));
        compressed[0] = 1;
        let error = error_of(vec![Frame::data(Bytes::from(compressed))], StatusCode::OK).await;
        assert!(
            error.message().contains("compressed"),
            "{}",
            error.message()
        );

        let mut huge = vec![0];
        huge.extend_from_slice(&((MAX_EVENT_BYTES + 1) as u32).to_be_bytes());
        let error = error_of(vec![Frame::data(Bytes::from(huge))], StatusCode::OK).await;
        assert_eq!(error.code(), Code::OutOfRange);

        let garbage = vec![0, 0, 0, 0, 3, 0xff, 0xff, 0xff];
        let error = error_of(vec![Frame::data(Bytes::from(garbage))], StatusCode::OK).await;
        assert!(
            error.message().contains("could not be decoded"),
            "{}",
            error.message()
        );
    }
}
