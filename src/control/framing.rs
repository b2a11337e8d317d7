//! Frames on the control socket: one line of UTF-8 text, read without ever buffering more than a
//! bound, so a peer that streams megabytes without a newline costs at most that bound.

use std::io;

use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWrite, AsyncWriteExt};

/// Why a frame could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The line reached `max` bytes (newline included) without ending. The rest of it is still
    /// unread, so the stream is mid-line: answer `bad_request` and close the connection.
    #[error("frame longer than {max} bytes")]
    TooLarge { max: usize },
    /// The line was read whole (the stream is still in sync) but is not UTF-8.
    #[error("frame is not valid UTF-8")]
    NotUtf8,
    #[error("read failed: {0}")]
    Io(#[from] io::Error),
}

impl FrameError {
    /// Whether the next read starts at a frame boundary, so the connection may carry on after
    /// the error is answered.
    pub fn leaves_stream_in_sync(&self) -> bool {
        matches!(self, Self::NotUtf8)
    }
}

/// Reads one frame: the bytes up to the next `\n` (which is dropped, as is a `\r` before it, for
/// peers that send CRLF). Never buffers more than `max` bytes, newline included, and never
/// consumes more than `max` bytes of one over-long line from `reader`.
///
/// `Ok(None)` is a clean end of stream. A last line without a newline is still returned as a
/// frame: a peer that writes its request and half-closes (`printf … | socat`) is answered, and a
/// truncated JSON object fails parsing like any other bad frame.
pub async fn read_frame<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    max: usize,
) -> Result<Option<String>, FrameError> {
    let mut line: Vec<u8> = Vec::new();
    loop {
        let available = reader.fill_buf().await?;
        if available.is_empty() {
            return if line.is_empty() {
                Ok(None)
            } else {
                into_text(line).map(Some)
            };
        }
        // Invariant: line.len() < max, so at least one more byte (the newline) fits.
        let room = max.saturating_sub(line.len());
        match available.iter().position(|&b| b == b'\n') {
            Some(newline) if newline < room => {
                line.extend_from_slice(&available[..newline]);
                reader.consume(newline + 1);
                return into_text(line).map(Some);
            }
            Some(_) => return Err(FrameError::TooLarge { max }),
            // Filling the remaining room without a newline leaves none for it.
            None if available.len() >= room => return Err(FrameError::TooLarge { max }),
            None => {
                let taken = available.len();
                line.extend_from_slice(available);
                reader.consume(taken);
            }
        }
    }
}

fn into_text(mut line: Vec<u8>) -> Result<String, FrameError> {
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    String::from_utf8(line).map_err(|_| FrameError::NotUtf8)
}

/// Writes one frame and flushes it. `line` is normally what `Response::to_line` returns; a
/// missing trailing newline is added. The whole frame goes out in one `write_all` on a writer
/// the caller holds exclusively (`&mut`), so two frames can never interleave on the wire.
pub async fn write_frame<W: AsyncWrite + Unpin>(writer: &mut W, line: &str) -> io::Result<()> {
    if line.ends_with('\n') {
        writer.write_all(line.as_bytes()).await?;
    } else {
        let mut framed = String::with_capacity(line.len() + 1);
        framed.push_str(line);
        framed.push('\n');
        writer.write_all(framed.as_bytes()).await?;
    }
    writer.flush().await
}
