//! The `permessage-deflate` codec (RFC 7692 §7.2): one message at a time,
//! [`MessageDeflater`] server to client and [`MessageInflater`] client to
//! server.

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

use super::{DeflateConfig, MAX_WINDOW_BITS, MIN_DEFLATE_WINDOW_BITS, Negotiated};
use crate::protocol::decoder::Inflate;
use crate::protocol::encoder::Deflate;
use crate::protocol::error::ProtocolError;

/// The empty stored block a sync flush ends with; RFC 7692 §7.2.1 strips it
/// on send and §7.2.2 appends it on receive.
const TRAILER: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// The largest LZ77 window, in bytes.
const MAX_WINDOW: usize = 1 << MAX_WINDOW_BITS;

/// The most DEFLATE streams (final blocks) one message may hold. A conforming
/// sender uses at most one; each restart copies up to 32 KiB of history into
/// the new stream's dictionary, so the cap keeps a message made of tiny final
/// blocks from costing far more CPU than its size.
const MAX_STREAMS_PER_MESSAGE: usize = 64;

/// The smallest amount by which the inflater grows its output buffer.
const MIN_CHUNK: usize = 256;
/// The largest first guess of a message's inflated size.
const MAX_FIRST_CHUNK: usize = 64 * 1024;

fn delta(after: u64, before: u64) -> usize {
    usize::try_from(after.saturating_sub(before)).unwrap_or(usize::MAX)
}

fn zlib_error(what: &str, message: Option<&str>) -> ProtocolError {
    ProtocolError::Compression(format!("{what}: {}", message.unwrap_or("failed")))
}

/// Compresses outgoing messages (server to client), RFC 7692 §7.2.1: raw
/// DEFLATE with the negotiated server window and the configured level, each
/// message ended by a sync flush whose `00 00 ff ff` is stripped.
///
/// Cheap to create: the zlib state (a few hundred KiB, see the module docs)
/// is allocated by the first non-empty message. With
/// `server_no_context_takeover` the compressor is freed after each message.
pub struct MessageDeflater {
    window_bits: u8,
    level: u32,
    no_context_takeover: bool,
    min_size: usize,
    state: Option<Compress>,
}

impl std::fmt::Debug for MessageDeflater {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MessageDeflater")
            .field("window_bits", &self.window_bits)
            .field("level", &self.level)
            .field("no_context_takeover", &self.no_context_takeover)
            .field("min_size", &self.min_size)
            .field("allocated", &self.state.is_some())
            .finish()
    }
}

impl MessageDeflater {
    /// A compressor for `negotiated`, with `config`'s level (clamped to 9)
    /// and `min_size`. Allocates nothing.
    ///
    /// A `server_max_window_bits` above 15 is treated as 15; one below 9
    /// (which [`negotiate`](super::negotiate()) never produces) makes every non-empty message
    /// fail with [`ProtocolError::Compression`].
    pub fn new(negotiated: &Negotiated, config: &DeflateConfig) -> Self {
        MessageDeflater {
            window_bits: negotiated.server_max_window_bits.min(MAX_WINDOW_BITS),
            level: config.level.min(9),
            no_context_takeover: negotiated.server_no_context_takeover,
            min_size: config.min_size,
            state: None,
        }
    }

    /// Whether a message of `payload_len` bytes is worth compressing
    /// (`payload_len >= min_size`). A message sent uncompressed (RSV1 clear)
    /// leaves the compression context untouched, so skipping is always safe.
    pub fn should_compress(&self, payload_len: usize) -> bool {
        payload_len >= self.min_size
    }

    /// Whether the zlib state is currently allocated.
    pub fn is_allocated(&self) -> bool {
        self.state.is_some()
    }

    /// Frees the zlib state if it carries nothing into the next message
    /// (`server_no_context_takeover`); returns whether the state is now
    /// free. With context takeover the state is the connection's history
    /// and is kept (`false`).
    pub fn release(&mut self) -> bool {
        if self.no_context_takeover {
            self.state = None;
        }
        self.state.is_none()
    }

    fn compress(&mut self, payload: &[u8], out: &mut Vec<u8>) -> Result<(), ProtocolError> {
        if self.window_bits < MIN_DEFLATE_WINDOW_BITS {
            return Err(ProtocolError::Compression(format!(
                "cannot compress with a {}-bit window",
                self.window_bits
            )));
        }
        let (level, bits) = (self.level, self.window_bits);
        let c = self.state.get_or_insert_with(|| {
            Compress::new_with_window_bits(Compression::new(level), false, bits)
        });
        let start = out.len();
        out.reserve(payload.len() / 2 + 64);
        let mut pos = 0;
        loop {
            if out.len() == out.capacity() {
                out.reserve((out.len() - start).max(256));
            }
            let (in0, out0) = (c.total_in(), c.total_out());
            let input = payload.get(pos..).unwrap_or_default();
            c.compress_vec(input, out, FlushCompress::Sync)
                .map_err(|e| zlib_error("deflate", e.message()))?;
            let consumed = delta(c.total_in(), in0);
            let produced = delta(c.total_out(), out0);
            pos = pos.saturating_add(consumed);
            let room_left = out.len() < out.capacity();
            if pos >= payload.len() && room_left {
                break;
            }
            if consumed == 0 && produced == 0 && room_left {
                return Err(ProtocolError::Compression(
                    "deflate made no progress".into(),
                ));
            }
        }
        // A sync flush always ends with an empty stored block.
        if !out.get(start..).is_some_and(|o| o.ends_with(&TRAILER)) {
            return Err(ProtocolError::Compression(
                "deflate output does not end with a sync flush".into(),
            ));
        }
        out.truncate(out.len() - TRAILER.len());
        if self.no_context_takeover {
            // Nothing carries over to the next message: free the zlib
            // state rather than keep it for an idle connection (a reset
            // would clear the same tables anyway).
            self.state = None;
        }
        Ok(())
    }
}

impl Deflate for MessageDeflater {
    /// Appends the compressed form of `payload` to `out` (whose existing
    /// content is kept). An empty payload becomes the single byte `00` (an
    /// empty stored block without its `00 00 ff ff`, RFC 7692 §7.2.3.6)
    /// without touching, or allocating, the compressor.
    fn deflate(&mut self, payload: &[u8], out: &mut Vec<u8>) -> Result<(), ProtocolError> {
        if payload.is_empty() {
            out.push(0x00);
            return Ok(());
        }
        let start = out.len();
        let result = self.compress(payload, out);
        if result.is_err() {
            out.truncate(start);
            self.state = None;
        }
        result
    }
}

/// Decompresses incoming messages (client to server), RFC 7692 §7.2.2:
/// appends `00 00 ff ff` and inflates, with a 15-bit window whatever the
/// negotiated client window (see the module docs).
///
/// Cheap to create: the zlib state (a window and tables, much smaller than
/// a compressor's) is allocated by the first message. With
/// `client_no_context_takeover` it is freed after each message.
pub struct MessageInflater {
    no_context_takeover: bool,
    state: Option<Decompress>,
}

impl std::fmt::Debug for MessageInflater {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MessageInflater")
            .field("no_context_takeover", &self.no_context_takeover)
            .field("allocated", &self.state.is_some())
            .finish()
    }
}

impl MessageInflater {
    /// A decompressor for `negotiated`. Allocates nothing.
    pub fn new(negotiated: &Negotiated) -> Self {
        MessageInflater {
            no_context_takeover: negotiated.client_no_context_takeover,
            state: None,
        }
    }

    /// Whether the zlib state is currently allocated.
    pub fn is_allocated(&self) -> bool {
        self.state.is_some()
    }

    /// Frees the zlib state if it carries nothing into the next message
    /// (`client_no_context_takeover`); returns whether the state is now
    /// free.
    pub fn release(&mut self) -> bool {
        if self.no_context_takeover {
            self.state = None;
        }
        self.state.is_none()
    }
}

impl Inflate for MessageInflater {
    /// Appends the decompressed message to `out` (whose existing content is
    /// kept). An empty `compressed` is an empty message and leaves the
    /// context untouched. More than `limit` decompressed bytes is
    /// [`ProtocolError::MessageTooLarge`], detected while inflating: `out`
    /// grows by at most `limit + 1` bytes. Corrupt data is
    /// [`ProtocolError::Compression`]. On error `out` is truncated back to
    /// its original length.
    fn inflate(
        &mut self,
        compressed: &[u8],
        limit: u64,
        out: &mut Vec<u8>,
    ) -> Result<(), ProtocolError> {
        if compressed.is_empty() {
            // Not what a conforming sender produces for an empty message
            // (that is `00`), but unambiguous: feeding the inflater just
            // `00 00 ff ff` would leave it inside a stored block header.
            return Ok(());
        }
        let start = out.len();
        let d = self.state.get_or_insert_with(|| Decompress::new(false));
        let cap = usize::try_from(limit).unwrap_or(usize::MAX);
        let result = match inflate_message(d, compressed, cap, out, start) {
            Ok(()) => {
                if self.no_context_takeover {
                    // Free the state between messages, as for the deflater.
                    self.state = None;
                }
                return Ok(());
            }
            Err(InflateFailure::TooLarge) => Err(ProtocolError::MessageTooLarge { limit }),
            Err(InflateFailure::Other(e)) => Err(e),
        };
        out.truncate(start);
        self.state = None;
        result
    }
}

enum InflateFailure {
    TooLarge,
    Other(ProtocolError),
}

impl From<ProtocolError> for InflateFailure {
    fn from(e: ProtocolError) -> Self {
        InflateFailure::Other(e)
    }
}

/// Inflates `compressed` followed by [`TRAILER`] into `out[start..]`,
/// producing at most `limit` bytes.
///
/// `out` is grown (zero-filled) in chunks that double with the output so
/// far, each capped so that the region never exceeds `limit + 1` bytes; the
/// extra byte is how "more than `limit`" is seen. At the end `out` is
/// truncated to what was produced.
fn inflate_message(
    d: &mut Decompress,
    compressed: &[u8],
    limit: usize,
    out: &mut Vec<u8>,
    start: usize,
) -> Result<(), InflateFailure> {
    let first_guess = compressed.len().saturating_mul(4).min(MAX_FIRST_CHUNK);
    let mut filled = 0usize;
    let mut input = compressed;
    let mut in_trailer = false;
    let mut streams = 1;
    loop {
        let at = start.saturating_add(filled);
        if out.len() <= at {
            let budget = limit.saturating_sub(filled).saturating_add(1);
            let want = if filled == 0 { first_guess } else { filled };
            let step = want.max(MIN_CHUNK).min(budget);
            out.reserve_exact(step);
            out.resize(at.saturating_add(step), 0);
        }
        let Some(room) = out.get_mut(at..) else {
            return Err(ProtocolError::Compression("inflate buffer out of step".into()).into());
        };
        let room_len = room.len();
        let (in0, out0) = (d.total_in(), d.total_out());
        let status = d.decompress(input, room, FlushDecompress::Sync);
        let consumed = delta(d.total_in(), in0);
        let produced = delta(d.total_out(), out0);
        filled = filled.saturating_add(produced);
        input = input.get(consumed..).unwrap_or_default();
        if filled > limit {
            return Err(InflateFailure::TooLarge);
        }
        match status {
            Err(e) => return Err(zlib_error("inflate", e.message()).into()),
            Ok(Status::StreamEnd) => {
                // A final block (RFC 7692 §7.2.3.4): start a new stream,
                // primed with what this message produced so far.
                let produced_so_far = out
                    .get(start..start.saturating_add(filled))
                    .unwrap_or_default();
                restart(d, produced_so_far)?;
                // Nothing, or the single 0x00 §7.2.3.4 puts after the final
                // block, left: the message is complete. Anything else is a
                // new stream within the same message.
                if in_trailer || input.is_empty() || input == [0x00] {
                    break;
                }
                streams += 1;
                if streams > MAX_STREAMS_PER_MESSAGE {
                    return Err(ProtocolError::Compression(
                        "too many final blocks in one message".into(),
                    )
                    .into());
                }
            }
            Ok(Status::Ok | Status::BufError) => {
                if input.is_empty() && produced < room_len {
                    if in_trailer {
                        break;
                    }
                    input = &TRAILER;
                    in_trailer = true;
                } else if consumed == 0 && produced == 0 {
                    return Err(
                        ProtocolError::Compression("inflate made no progress".into()).into(),
                    );
                }
            }
        }
    }
    out.truncate(start.saturating_add(filled));
    Ok(())
}

/// Resets `d` for a new raw DEFLATE stream whose history is the last 32 KiB
/// of `history`.
fn restart(d: &mut Decompress, history: &[u8]) -> Result<(), ProtocolError> {
    d.reset(false);
    let dict = history
        .get(history.len().saturating_sub(MAX_WINDOW)..)
        .unwrap_or_default();
    if !dict.is_empty() {
        d.set_dictionary(dict)
            .map_err(|e| zlib_error("inflate dictionary", e.message()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{config_level, corpus, hex, n, noise};
    use super::*;
    use proptest::prelude::*;

    fn deflate(d: &mut MessageDeflater, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        d.deflate(payload, &mut out).expect("deflates");
        out
    }

    fn inflate(i: &mut MessageInflater, compressed: &[u8]) -> Result<Vec<u8>, ProtocolError> {
        let mut out = Vec::new();
        i.inflate(compressed, u64::MAX, &mut out)?;
        Ok(out)
    }

    // -- RFC 7692 §7.2.3 examples -------------------------------------------

    #[test]
    fn rfc_hello_compressed() {
        // §7.2.3.1, at zlib's default level (6).
        let mut d = MessageDeflater::new(&Negotiated::default(), &config_level(6));
        assert_eq!(deflate(&mut d, b"Hello"), hex("f2 48 cd c9 c9 07 00"));
        // §7.2.3.2: the second "Hello" refers back into the first.
        assert_eq!(deflate(&mut d, b"Hello"), hex("f2 00 11 00 00"));
        // Without context takeover both messages are the same.
        let mut d = MessageDeflater::new(&n(true, false, 15, 15), &config_level(6));
        assert_eq!(deflate(&mut d, b"Hello"), hex("f2 48 cd c9 c9 07 00"));
        assert_eq!(deflate(&mut d, b"Hello"), hex("f2 48 cd c9 c9 07 00"));
    }

    #[test]
    fn rfc_examples_inflate() {
        let mut i = MessageInflater::new(&Negotiated::default());
        // §7.2.3.1 and §7.2.3.2 (shared window).
        assert_eq!(
            inflate(&mut i, &hex("f2 48 cd c9 c9 07 00")).as_deref(),
            Ok(&b"Hello"[..])
        );
        assert_eq!(
            inflate(&mut i, &hex("f2 00 11 00 00")).as_deref(),
            Ok(&b"Hello"[..])
        );
        // §7.2.3.3: a stored block.
        assert_eq!(
            inflate(&mut i, &hex("00 05 00 fa ff 48 65 6c 6c 6f 00")).as_deref(),
            Ok(&b"Hello"[..])
        );
        // §7.2.3.5: two blocks in one message.
        assert_eq!(
            inflate(&mut i, &hex("f2 48 05 00 00 00 ff ff ca c9 c9 07 00")).as_deref(),
            Ok(&b"Hello"[..])
        );
        // §7.2.3.4: BFINAL set, then the connection goes on.
        assert_eq!(
            inflate(&mut i, &hex("f3 48 cd c9 c9 07 00 00")).as_deref(),
            Ok(&b"Hello"[..])
        );
        assert_eq!(
            inflate(&mut i, &hex("f2 48 cd c9 c9 07 00")).as_deref(),
            Ok(&b"Hello"[..])
        );
        // ... the history survives the final block (primed from the message).
        assert_eq!(
            inflate(&mut i, &hex("f2 00 11 00 00")).as_deref(),
            Ok(&b"Hello"[..])
        );
        assert_eq!(
            inflate(&mut i, &hex("f3 48 cd c9 c9 07 00 00")).as_deref(),
            Ok(&b"Hello"[..])
        );
        assert_eq!(
            inflate(&mut i, &hex("f2 00 11 00 00")).as_deref(),
            Ok(&b"Hello"[..])
        );
        // A final block without the §7.2.3.4 padding byte.
        assert_eq!(
            inflate(&mut i, &hex("f3 48 cd c9 c9 07 00")).as_deref(),
            Ok(&b"Hello"[..])
        );
        assert_eq!(
            inflate(&mut i, &hex("f2 48 cd c9 c9 07 00")).as_deref(),
            Ok(&b"Hello"[..])
        );
    }

    #[test]
    fn final_block_followed_by_more_data_in_the_same_message() {
        // "Hello" in a final block, then " Hello" as a new stream that
        // refers back into the first.
        let mut c = Compress::new(Compression::new(6), false);
        let mut first = Vec::with_capacity(64);
        c.compress_vec(b"Hello", &mut first, FlushCompress::Finish)
            .expect("compresses");
        let mut c = Compress::new(Compression::new(6), false);
        c.set_dictionary(b"Hello").expect("dictionary");
        let mut second = Vec::with_capacity(64);
        c.compress_vec(b" Hello", &mut second, FlushCompress::Sync)
            .expect("compresses");
        assert!(second.ends_with(&TRAILER));
        second.truncate(second.len() - 4);
        let mut msg = first;
        msg.extend_from_slice(&second);
        let mut i = MessageInflater::new(&Negotiated::default());
        assert_eq!(inflate(&mut i, &msg).as_deref(), Ok(&b"Hello Hello"[..]));
        assert_eq!(
            inflate(&mut i, &hex("f2 00 11 00 00")).as_deref(),
            Ok(&b"Hello"[..])
        );
    }

    #[test]
    fn final_blocks_per_message_are_capped() {
        // "03 00": an empty final block with fixed codes.
        let ok = [0x03, 0x00].repeat(MAX_STREAMS_PER_MESSAGE);
        let mut i = MessageInflater::new(&Negotiated::default());
        assert_eq!(inflate(&mut i, &ok), Ok(vec![]));
        let too_many = [0x03, 0x00].repeat(MAX_STREAMS_PER_MESSAGE + 1);
        assert!(matches!(
            inflate(&mut i, &too_many),
            Err(ProtocolError::Compression(_))
        ));
    }

    #[test]
    fn empty_messages() {
        let mut d = MessageDeflater::new(&Negotiated::default(), &DeflateConfig::default());
        assert_eq!(deflate(&mut d, b""), [0x00]);
        assert!(!d.is_allocated(), "an empty message needs no compressor");
        let mut i = MessageInflater::new(&Negotiated::default());
        assert_eq!(inflate(&mut i, &[0x00]), Ok(vec![]));
        assert_eq!(inflate(&mut i, &[]), Ok(vec![]));
        let mut fresh = MessageInflater::new(&Negotiated::default());
        assert_eq!(inflate(&mut fresh, &[]), Ok(vec![]));
        assert!(!fresh.is_allocated(), "an empty payload needs no inflater");
        // Between other messages, with context takeover.
        let a = deflate(&mut d, b"Hello");
        let e = deflate(&mut d, b"");
        let b = deflate(&mut d, b"Hello");
        assert_eq!(e, [0x00]);
        for (m, want) in [(a, &b"Hello"[..]), (e, b""), (vec![], b""), (b, b"Hello")] {
            assert_eq!(inflate(&mut i, &m).as_deref(), Ok(want));
        }
        // flate2's own empty sync flush is the same byte.
        let mut c = Compress::new(Compression::new(6), false);
        let mut out = Vec::with_capacity(16);
        c.compress_vec(b"", &mut out, FlushCompress::Sync)
            .expect("compresses");
        assert_eq!(out, [0x00, 0x00, 0x00, 0xff, 0xff]);
    }

    // -- codec --------------------------------------------------------------

    #[test]
    fn round_trips_every_window_level_and_takeover() {
        let msgs: Vec<Vec<u8>> = vec![
            corpus(0, 10),
            corpus(1, 300),
            corpus(1, 300),
            noise(3, 1000),
            corpus(2, 40_000), // longer than any window
            vec![0; 20_000],
            noise(4, 5_000),
            corpus(5, 5),
        ];
        for bits in 9..=15 {
            for level in [0, 1, 6, 9] {
                // The deflater plays the client: the inflater may only
                // forget history if the deflater does.
                for (forget_d, forget_i) in [(false, false), (true, true), (true, false)] {
                    let mut d =
                        MessageDeflater::new(&n(forget_d, false, bits, 15), &config_level(level));
                    let mut i = MessageInflater::new(&n(false, forget_i, 15, bits));
                    for m in &msgs {
                        let c = deflate(&mut d, m);
                        assert_eq!(
                            inflate(&mut i, &c).as_deref(),
                            Ok(&m[..]),
                            "bits {bits} level {level} forget {forget_d} {forget_i} len {}",
                            m.len()
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn context_takeover_is_used() {
        let msg = corpus(7, 500);
        let mut d = MessageDeflater::new(&Negotiated::default(), &DeflateConfig::default());
        let first = deflate(&mut d, &msg);
        let second = deflate(&mut d, &msg);
        assert!(
            second.len() * 4 < first.len(),
            "{} vs {}",
            second.len(),
            first.len()
        );
        let mut i = MessageInflater::new(&Negotiated::default());
        assert_eq!(inflate(&mut i, &first).as_deref(), Ok(&msg[..]));
        assert_eq!(inflate(&mut i, &second).as_deref(), Ok(&msg[..]));

        // Without it, both messages compress to the same bytes, and each
        // decodes on its own.
        let forget = n(true, true, 15, 15);
        let mut d = MessageDeflater::new(&forget, &DeflateConfig::default());
        let first = deflate(&mut d, &msg);
        let second = deflate(&mut d, &msg);
        assert_eq!(first, second);
        let mut i = MessageInflater::new(&forget);
        assert_eq!(inflate(&mut i, &first).as_deref(), Ok(&msg[..]));
        assert_eq!(inflate(&mut i, &second).as_deref(), Ok(&msg[..]));
    }

    #[test]
    fn inflater_without_takeover_forgets_history() {
        // The second message refers back into the first: fine with context
        // takeover, corrupt once the client promised not to do that.
        let mut i = MessageInflater::new(&n(false, true, 15, 15));
        assert_eq!(
            inflate(&mut i, &hex("f2 48 cd c9 c9 07 00")).as_deref(),
            Ok(&b"Hello"[..])
        );
        assert!(matches!(
            inflate(&mut i, &hex("f2 00 11 00 00")),
            Err(ProtocolError::Compression(_))
        ));
    }

    #[test]
    fn appends_to_existing_output() {
        let mut d = MessageDeflater::new(&Negotiated::default(), &config_level(6));
        let mut out = b"head".to_vec();
        d.deflate(b"Hello", &mut out).expect("deflates");
        assert_eq!(out, [&b"head"[..], &hex("f2 48 cd c9 c9 07 00")].concat());
        let mut i = MessageInflater::new(&Negotiated::default());
        let mut out = b"head".to_vec();
        i.inflate(&hex("f2 48 cd c9 c9 07 00"), 5, &mut out)
            .expect("inflates");
        assert_eq!(out, b"headHello");
    }

    #[test]
    fn decompression_bomb_stops_at_the_limit() {
        let bomb = {
            let mut d = MessageDeflater::new(&Negotiated::default(), &config_level(1));
            deflate(&mut d, &vec![0; 10 << 20])
        };
        assert!(bomb.len() < 200_000, "{}", bomb.len());
        let limit = 1u64 << 20;
        let mut i = MessageInflater::new(&Negotiated::default());
        let mut out = Vec::new();
        assert_eq!(
            i.inflate(&bomb, limit, &mut out),
            Err(ProtocolError::MessageTooLarge { limit })
        );
        assert!(out.is_empty());
        assert!(
            out.capacity() <= (1 << 20) + 1,
            "capacity {}",
            out.capacity()
        );
        assert!(!i.is_allocated(), "state dropped after an error");

        // The limit counts only this message, not what `out` held before.
        let mut out = vec![7; 100];
        assert_eq!(
            i.inflate(&bomb, limit, &mut out),
            Err(ProtocolError::MessageTooLarge { limit })
        );
        assert_eq!(out, vec![7; 100]);
        assert!(
            out.capacity() <= 100 + (1 << 20) + 1,
            "capacity {}",
            out.capacity()
        );
    }

    #[test]
    fn limit_is_inclusive() {
        let msg = corpus(9, 5000);
        for takeover in [false, true] {
            let negotiated = n(!takeover, !takeover, 15, 15);
            let mut d = MessageDeflater::new(&negotiated, &DeflateConfig::default());
            let c = deflate(&mut d, &msg);
            let mut i = MessageInflater::new(&negotiated);
            let mut out = Vec::new();
            assert_eq!(i.inflate(&c, 5000, &mut out), Ok(()));
            assert_eq!(out, msg);
            let mut i = MessageInflater::new(&negotiated);
            let mut out = Vec::new();
            assert_eq!(
                i.inflate(&c, 4999, &mut out),
                Err(ProtocolError::MessageTooLarge { limit: 4999 })
            );
            assert!(out.capacity() <= 5000);
        }
        // Limit 0: only empty messages pass.
        let mut i = MessageInflater::new(&Negotiated::default());
        let mut out = Vec::new();
        assert_eq!(i.inflate(&[0x00], 0, &mut out), Ok(()));
        assert_eq!(
            i.inflate(&hex("f2 48 cd c9 c9 07 00"), 0, &mut out),
            Err(ProtocolError::MessageTooLarge { limit: 0 })
        );
    }

    #[test]
    fn corrupt_data_is_a_compression_error() {
        let cases = [
            hex("ff ff ff ff"),       // reserved block type 3
            hex("00 05 00 00 00 48"), // stored length mismatch
            hex("f2 00 11 00 00"),    // refers back into nothing
            hex("07"),                // BTYPE 11 in a final block
        ];
        for c in cases {
            let mut i = MessageInflater::new(&Negotiated::default());
            let mut out = b"keep".to_vec();
            let err = i.inflate(&c, 1 << 20, &mut out).expect_err("corrupt");
            assert!(
                matches!(err, ProtocolError::Compression(_)),
                "{c:02x?}: {err:?}"
            );
            assert_eq!(out, b"keep");
            assert!(!i.is_allocated());
        }
    }

    #[test]
    fn truncated_message_does_not_hang() {
        // A message cut short: the trailer then lands inside a block and
        // may even decode as something. Any outcome is fine as long as it
        // returns within the limit.
        let msg = corpus(11, 3000);
        let mut d = MessageDeflater::new(&Negotiated::default(), &DeflateConfig::default());
        let c = deflate(&mut d, &msg);
        for cut in 1..c.len() {
            let mut i = MessageInflater::new(&Negotiated::default());
            let mut out = Vec::new();
            if i.inflate(&c[..cut], 3000, &mut out).is_ok() {
                assert!(out.len() <= 3000);
            }
        }
    }

    #[test]
    fn lazy_allocation_and_release() {
        let shared = Negotiated::default();
        let mut d = MessageDeflater::new(&shared, &DeflateConfig::default());
        let mut i = MessageInflater::new(&shared);
        assert!(!d.is_allocated() && !i.is_allocated());
        let c = deflate(&mut d, b"Hello Hello Hello");
        inflate(&mut i, &c).expect("inflates");
        assert!(d.is_allocated() && i.is_allocated());
        // History is kept with context takeover.
        assert!(!d.release() && !i.release());
        assert!(d.is_allocated() && i.is_allocated());

        let fresh = n(true, true, 15, 15);
        let mut d = MessageDeflater::new(&fresh, &DeflateConfig::default());
        let mut i = MessageInflater::new(&fresh);
        let c = deflate(&mut d, b"Hello Hello Hello");
        assert_eq!(
            inflate(&mut i, &c).as_deref(),
            Ok(&b"Hello Hello Hello"[..])
        );
        assert!(d.release() && i.release());
        assert!(!d.is_allocated() && !i.is_allocated());
        // ... and they work again afterwards.
        let c2 = deflate(&mut d, b"Hello Hello Hello");
        assert_eq!(c, c2);
        assert_eq!(
            inflate(&mut i, &c2).as_deref(),
            Ok(&b"Hello Hello Hello"[..])
        );
        // Without context takeover nothing is held between messages.
        assert!(!d.is_allocated() && !i.is_allocated());
    }

    #[test]
    fn installs_as_boxed_hooks() {
        // What the decoder and encoder hold: `Box<dyn Inflate/Deflate + Send>`.
        let negotiated = Negotiated::default();
        let mut d: Box<dyn Deflate + Send> =
            Box::new(MessageDeflater::new(&negotiated, &DeflateConfig::default()));
        let mut i: Box<dyn Inflate + Send> = Box::new(MessageInflater::new(&negotiated));
        let mut c = Vec::new();
        d.deflate(b"Hello", &mut c).expect("deflates");
        let mut out = Vec::new();
        i.inflate(&c, 5, &mut out).expect("inflates");
        assert_eq!(out, b"Hello");
    }

    #[test]
    fn window_of_8_cannot_compress() {
        let negotiated = n(false, false, 8, 8);
        let mut d = MessageDeflater::new(&negotiated, &DeflateConfig::default());
        let mut out = Vec::new();
        assert!(matches!(
            d.deflate(b"Hello", &mut out),
            Err(ProtocolError::Compression(_))
        ));
        assert!(out.is_empty());
        // An 8-bit client stream (zlib makes it with 9 bits) inflates.
        let mut c = Compress::new_with_window_bits(Compression::new(6), false, 9);
        let msg = corpus(1, 2000);
        let mut z = Vec::with_capacity(4000);
        c.compress_vec(&msg, &mut z, FlushCompress::Sync)
            .expect("compresses");
        z.truncate(z.len() - 4);
        let mut i = MessageInflater::new(&negotiated);
        assert_eq!(inflate(&mut i, &z), Ok(msg));
    }

    #[test]
    fn interop_with_plain_flate2_streams() {
        // A client using flate2 defaults (raw deflate, level 6, 15 bits,
        // one sync flush per message, trailer stripped).
        let mut c = Compress::new(Compression::default(), false);
        let mut i = MessageInflater::new(&Negotiated::default());
        for k in 0..20 {
            let msg = corpus(k, 100 + k * 300);
            let mut z = Vec::with_capacity(msg.len() + 64);
            c.compress_vec(&msg, &mut z, FlushCompress::Sync)
                .expect("compresses");
            assert!(z.ends_with(&TRAILER));
            z.truncate(z.len() - 4);
            assert_eq!(inflate(&mut i, &z), Ok(msg));
        }
        // Our output through a plain flate2 inflater, trailer appended.
        let mut d = MessageDeflater::new(&Negotiated::default(), &DeflateConfig::default());
        let mut plain = Decompress::new(false);
        for k in 0..20 {
            let msg = corpus(k, 100 + k * 300);
            let mut z = deflate(&mut d, &msg);
            z.extend_from_slice(&TRAILER);
            let mut back = Vec::with_capacity(msg.len() + 16);
            plain
                .decompress_vec(&z, &mut back, FlushDecompress::Sync)
                .expect("inflates");
            assert_eq!(back, msg);
        }
    }

    #[test]
    fn large_incompressible_message_grows_output() {
        let msg = noise(42, 1 << 20);
        // Level 6 falls back to stored blocks; level 1 (zlib-rs's
        // deflate_quick) always uses fixed Huffman codes and expands noise
        // by a few percent (host/benches/README.md has the figure).
        for (level, max_growth) in [(6, 0.001), (1, 0.06)] {
            let mut d = MessageDeflater::new(&Negotiated::default(), &config_level(level));
            let c = deflate(&mut d, &msg);
            let growth = c.len() as f64 / msg.len() as f64 - 1.0;
            assert!(
                (0.0..max_growth).contains(&growth),
                "level {level}: {growth}"
            );
            let mut i = MessageInflater::new(&Negotiated::default());
            assert_eq!(inflate(&mut i, &c).as_deref(), Ok(&msg[..]));
        }
    }

    // -- properties ---------------------------------------------------------

    fn payload() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..2000),
            proptest::collection::vec(0u8..4, 0..5000),
            (0usize..50, 0usize..20_000).prop_map(|(seed, len)| corpus(seed, len)),
        ]
    }

    fn negotiated() -> impl Strategy<Value = Negotiated> {
        (any::<bool>(), any::<bool>(), 9u8..=15, 8u8..=15)
            .prop_map(|(s, c, sb, cb)| n(s, c, sb, cb))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn round_trip(
            negotiated in negotiated(),
            forget in any::<bool>(),
            level in 0u32..=9,
            messages in proptest::collection::vec(payload(), 1..6),
        ) {
            // Roles mirrored: the deflater plays the client.
            let mut d = MessageDeflater::new(&negotiated, &config_level(level));
            let mut i = MessageInflater::new(&n(
                false,
                negotiated.server_no_context_takeover && forget,
                15,
                negotiated.server_max_window_bits,
            ));
            for m in &messages {
                let c = deflate(&mut d, m);
                let mut out = Vec::new();
                prop_assert_eq!(i.inflate(&c, m.len() as u64, &mut out), Ok(()));
                prop_assert_eq!(&out, m);
            }
        }

        #[test]
        fn garbage_never_panics(
            messages in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 1..4),
            limit in 0u64..100_000,
        ) {
            let mut i = MessageInflater::new(&Negotiated::default());
            for m in &messages {
                let mut out = Vec::new();
                match i.inflate(m, limit, &mut out) {
                    Ok(()) => prop_assert!(out.len() as u64 <= limit),
                    Err(e) => {
                        prop_assert!(
                            matches!(
                                e,
                                ProtocolError::MessageTooLarge { .. } | ProtocolError::Compression(_)
                            ),
                            "unexpected {:?}",
                            e
                        );
                        prop_assert!(out.is_empty());
                        prop_assert!(out.capacity() as u64 <= limit + 1);
                    }
                }
            }
        }
    }

    #[test]
    fn config_level_is_clamped_and_min_size_applies() {
        let config = DeflateConfig {
            level: 99,
            ..DeflateConfig::default()
        };
        let negotiated = n(false, false, 9, 15);
        let mut d = MessageDeflater::new(&negotiated, &config);
        let mut i = MessageInflater::new(&negotiated);
        let msg = corpus(0, 1000);
        assert_eq!(inflate(&mut i, &deflate(&mut d, &msg)), Ok(msg));
        let d = MessageDeflater::new(&Negotiated::default(), &DeflateConfig::default());
        assert!(!d.should_compress(63));
        assert!(d.should_compress(64));
    }
}
