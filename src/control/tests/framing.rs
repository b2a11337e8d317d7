use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncBufRead, AsyncRead, BufReader, ReadBuf};

use crate::control::{
    parse_request, read_frame, write_frame, ErrorCode, FrameError, MAX_FRAME_BYTES,
};

/// An endless (up to `total`) stream of one byte value, handed out `chunk` bytes at a time,
/// that counts how many bytes its reader consumed.
struct CountingReader {
    chunk: Vec<u8>,
    total: usize,
    consumed: usize,
}

impl CountingReader {
    fn new(byte: u8, chunk: usize, total: usize) -> Self {
        Self {
            chunk: vec![byte; chunk],
            total,
            consumed: 0,
        }
    }
}

impl AsyncRead for CountingReader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let left = self.total - self.consumed;
        let n = left.min(self.chunk.len()).min(buf.remaining());
        buf.put_slice(&self.chunk[..n]);
        self.consumed += n;
        Poll::Ready(Ok(()))
    }
}

impl AsyncBufRead for CountingReader {
    fn poll_fill_buf(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<&[u8]>> {
        let this = self.get_mut();
        let left = this.total - this.consumed;
        let n = left.min(this.chunk.len());
        Poll::Ready(Ok(&this.chunk[..n]))
    }

    fn consume(mut self: Pin<&mut Self>, amt: usize) {
        self.consumed += amt;
    }
}

const TEN_MB: usize = 10 * 1024 * 1024;

#[tokio::test]
async fn a_ten_megabyte_line_without_newline_is_refused_after_at_most_the_bound() {
    // Chunk sizes below, at and above the bound, and one that does not divide it.
    for chunk in [1_000, 8 * 1024, MAX_FRAME_BYTES, 7_777, 1024 * 1024] {
        let mut reader = CountingReader::new(b'x', chunk, TEN_MB);
        let result = read_frame(&mut reader, MAX_FRAME_BYTES).await;
        assert!(
            matches!(
                result,
                Err(FrameError::TooLarge {
                    max: MAX_FRAME_BYTES
                })
            ),
            "chunk {chunk}: {result:?}"
        );
        assert!(
            reader.consumed <= MAX_FRAME_BYTES,
            "chunk {chunk}: consumed {} bytes",
            reader.consumed
        );
    }
}

#[tokio::test]
async fn a_buffered_socket_reader_stops_reading_the_source_near_the_bound() {
    // Through tokio's BufReader the source is read at most one buffer beyond the bound.
    let source = CountingReader::new(b'y', 4096, TEN_MB);
    let mut reader = BufReader::new(source);
    let result = read_frame(&mut reader, MAX_FRAME_BYTES).await;
    assert!(matches!(result, Err(FrameError::TooLarge { .. })));
    const DEFAULT_BUF_READER_CAPACITY: usize = 8 * 1024;
    assert!(reader.get_ref().consumed <= MAX_FRAME_BYTES + DEFAULT_BUF_READER_CAPACITY);
}

#[tokio::test]
async fn a_frame_of_exactly_the_bound_fits_and_one_byte_more_does_not() {
    let mut fits: &[u8] = b"1234567\n";
    assert_eq!(
        read_frame(&mut fits, 8).await.unwrap().as_deref(),
        Some("1234567")
    );
    let mut too_long: &[u8] = b"12345678\n";
    assert!(matches!(
        read_frame(&mut too_long, 8).await,
        Err(FrameError::TooLarge { max: 8 })
    ));
}

#[tokio::test]
async fn lines_split_over_many_small_reads_are_reassembled_and_crlf_is_accepted() {
    let data: &[u8] = b"{\"type\":\"status\"}\r\nsecond line\n\nlast";
    let mut reader = BufReader::with_capacity(3, data);
    let mut frames = Vec::new();
    while let Some(frame) = read_frame(&mut reader, MAX_FRAME_BYTES).await.unwrap() {
        frames.push(frame);
    }
    assert_eq!(frames, ["{\"type\":\"status\"}", "second line", "", "last"]);
}

#[tokio::test]
async fn invalid_utf8_is_refused_and_the_next_frame_still_reads() {
    let mut data: &[u8] = b"\xff\xfe{\"type\":\"status\"}\n{}\n";
    let err = read_frame(&mut data, MAX_FRAME_BYTES).await.unwrap_err();
    assert!(matches!(err, FrameError::NotUtf8));
    assert!(err.leaves_stream_in_sync());
    assert_eq!(
        read_frame(&mut data, MAX_FRAME_BYTES)
            .await
            .unwrap()
            .as_deref(),
        Some("{}")
    );
    assert_eq!(read_frame(&mut data, MAX_FRAME_BYTES).await.unwrap(), None);
}

#[tokio::test]
async fn a_too_large_frame_leaves_the_stream_out_of_sync() {
    let err = FrameError::TooLarge { max: 1 };
    assert!(!err.leaves_stream_in_sync());
    assert!(!FrameError::Io(io::Error::other("x")).leaves_stream_in_sync());
}

#[tokio::test]
async fn binary_garbage_yields_only_bounded_frames_that_fail_to_parse() {
    // A deterministic pseudo-random megabyte (with newlines and NULs among it).
    let mut state: u32 = 0x1234_5678;
    let garbage: Vec<u8> = (0..1024 * 1024)
        .map(|_| {
            state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (state >> 24) as u8
        })
        .collect();
    let mut reader: &[u8] = &garbage;
    let mut frames = 0;
    loop {
        match read_frame(&mut reader, MAX_FRAME_BYTES).await {
            Ok(None) => break,
            Ok(Some(frame)) => {
                assert!(frame.len() < MAX_FRAME_BYTES);
                let err = parse_request(&frame).unwrap_err();
                assert_eq!(err.code, ErrorCode::BadRequest);
                frames += 1;
            }
            Err(FrameError::NotUtf8) => frames += 1,
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    assert!(frames > 100, "{frames}");

    // Garbage without a newline never becomes a frame.
    let no_newline: Vec<u8> = garbage.iter().copied().filter(|&b| b != b'\n').collect();
    let mut reader: &[u8] = &no_newline;
    assert!(matches!(
        read_frame(&mut reader, MAX_FRAME_BYTES).await,
        Err(FrameError::TooLarge { .. })
    ));
}

#[tokio::test]
async fn end_of_stream_mid_line_returns_the_partial_frame_then_the_end() {
    let mut data: &[u8] = b"{\"type\":\"sta";
    let partial = read_frame(&mut data, MAX_FRAME_BYTES)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(partial, "{\"type\":\"sta");
    assert_eq!(
        parse_request(&partial).unwrap_err().code,
        ErrorCode::BadRequest
    );
    assert_eq!(read_frame(&mut data, MAX_FRAME_BYTES).await.unwrap(), None);

    let mut empty: &[u8] = b"";
    assert_eq!(read_frame(&mut empty, MAX_FRAME_BYTES).await.unwrap(), None);
}

#[tokio::test]
async fn write_frame_terminates_every_frame_with_one_newline() {
    let mut out = Vec::new();
    write_frame(&mut out, "{\"a\":1}").await.unwrap();
    write_frame(&mut out, "{\"b\":2}\n").await.unwrap();
    assert_eq!(out, b"{\"a\":1}\n{\"b\":2}\n");
}
