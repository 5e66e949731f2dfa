//! Framing after the handshake: each frame is a 4-byte big-endian length;
//! length 0 is a tick, anything else is the pass-through byte 112 followed by
//! a control message and an optional payload, each in external term format.
//! We advertise neither the atom cache nor fragments, so no distribution
//! header ever arrives.

use super::term::{check_external_terms, TermError};
use erl_dist::message::Message;
use tokio::io::{AsyncRead, AsyncReadExt};

const PASS_THROUGH: u8 = 112;

/// The largest frame taken from a node. Its biggest honest answer carries
/// the node's own copies of the modules it runs (for a snapshot), some
/// megabytes; anything near this is a broken or hostile peer, and is not
/// read into memory.
pub const MAX_FRAME: usize = 256 << 20;

/// The four zero bytes of a tick.
pub const TICK: [u8; 4] = [0; 4];

#[derive(Debug)]
pub enum Frame {
    Tick,
    Message(Box<Message>),
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    #[error("the connection closed in the middle of a frame")]
    ClosedMidFrame,
    #[error("a frame of {0} bytes is over the limit of {max} MiB", max = MAX_FRAME >> 20)]
    TooLarge(usize),
    #[error("a frame starts with byte {0} instead of 112")]
    BadTag(u8),
    #[error("a frame holds malformed terms: {0}")]
    BadTerms(#[from] TermError),
    #[error("a frame could not be decoded: {0}")]
    Decode(String),
    #[error("a message could not be encoded: {0}")]
    Encode(String),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Reads one frame. `Ok(None)` is a clean close between frames; a close
/// inside a frame is an error.
pub async fn read_frame<R: AsyncRead + Unpin>(reader: &mut R) -> Result<Option<Frame>, FrameError> {
    let mut len = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        let n = reader.read(&mut len[got..]).await?;
        if n == 0 {
            return if got == 0 {
                Ok(None)
            } else {
                Err(FrameError::ClosedMidFrame)
            };
        }
        got += n;
    }
    let len = u32::from_be_bytes(len) as usize;
    if len == 0 {
        return Ok(Some(Frame::Tick));
    }
    if len > MAX_FRAME {
        return Err(FrameError::TooLarge(len));
    }
    // Grow with the data actually received: a garbage length of 4 GiB must
    // not allocate 4 GiB up front.
    let mut body = Vec::with_capacity(len.min(1 << 16));
    (&mut *reader)
        .take(len as u64)
        .read_to_end(&mut body)
        .await?;
    if body.len() < len {
        return Err(FrameError::ClosedMidFrame);
    }
    decode_frame(&body).map(|m| Some(Frame::Message(Box::new(m))))
}

/// Decodes the body of a non-tick frame. Safe on any input.
pub fn decode_frame(body: &[u8]) -> Result<Message, FrameError> {
    match body.first() {
        Some(&PASS_THROUGH) => {}
        Some(&other) => return Err(FrameError::BadTag(other)),
        None => return Err(FrameError::Decode("empty frame".into())),
    }
    let terms = &body[1..];
    check_external_terms(terms, 2)?;
    Message::read_from(&mut &terms[..]).map_err(|e| FrameError::Decode(e.to_string()))
}

/// Encodes a message as a whole frame, length included.
pub fn encode_frame(message: Message) -> Result<Vec<u8>, FrameError> {
    let mut buf = vec![0, 0, 0, 0, PASS_THROUGH];
    message
        .write_into(&mut buf)
        .map_err(|e| FrameError::Encode(e.to_string()))?;
    let len = u32::try_from(buf.len() - 4)
        .map_err(|_| FrameError::Encode(format!("message of {} bytes is over 4 GiB", buf.len())))?;
    buf[..4].copy_from_slice(&len.to_be_bytes());
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::peer::term::{atom_term, Pid};

    #[tokio::test]
    async fn round_trips_and_reports_closes() {
        let pid = Pid::new("a@b", 1, 0, 1);
        let frame = encode_frame(Message::send(pid, atom_term("hi"))).expect("encode");
        let mut input: Vec<u8> = TICK.to_vec();
        input.extend(&frame);
        let mut reader = &input[..];
        assert!(matches!(
            read_frame(&mut reader).await,
            Ok(Some(Frame::Tick))
        ));
        match read_frame(&mut reader).await {
            Ok(Some(Frame::Message(m))) => assert!(matches!(*m, Message::Send(_))),
            other => panic!("expected a SEND message, got {other:?}"),
        }
        assert!(matches!(read_frame(&mut reader).await, Ok(None)));
        let mut cut = &frame[..frame.len() - 1];
        assert!(matches!(
            read_frame(&mut cut).await,
            Err(FrameError::ClosedMidFrame)
        ));
        let mut short_len = &frame[..2];
        assert!(matches!(
            read_frame(&mut short_len).await,
            Err(FrameError::ClosedMidFrame)
        ));
    }

    #[tokio::test]
    async fn a_frame_over_the_limit_is_refused_before_its_body_is_read() {
        let len = u32::try_from(MAX_FRAME + 1).expect("fits");
        let mut input = len.to_be_bytes().to_vec();
        input.extend([PASS_THROUGH; 64]);
        let mut reader = &input[..];
        let err = read_frame(&mut reader).await.expect_err("too large");
        assert!(
            matches!(err, FrameError::TooLarge(n) if n == MAX_FRAME + 1),
            "{err}"
        );
        assert!(err.to_string().contains("256 MiB"), "{err}");
        assert_eq!(reader.len(), 64, "the body was not read");
    }
}
