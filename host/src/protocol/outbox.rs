//! Bytes waiting for the socket, in order, without copying large payloads.
//!
//! Frame headers, control frames and small messages are appended to one
//! contiguous buffer: a single write sends many of them, and copying a few
//! bytes costs less than describing them. A payload of at least
//! [`OUT_OF_LINE_MIN`] bytes is not copied: it stays in the allocation it
//! came in (a guest's message, moved; a published frame, shared by
//! reference count) and the writer sends it beside the buffer with one
//! vectored write.

use std::collections::VecDeque;
use std::io::IoSlice;

use bytes::{Buf as _, Bytes};

/// Payloads at least this long are written from where they are instead
/// of being copied into the buffer. Below it, a copy is cheaper than the
/// bookkeeping and the extra `iovec`.
pub const OUT_OF_LINE_MIN: usize = 4 << 10;

/// Bytes queued for writing: a buffer, with large payloads kept out of
/// line at their places in it.
#[derive(Debug, Default)]
pub struct Outbox {
    /// Small frames and every frame header, in order.
    inline: Vec<u8>,
    /// How much of `inline` has been written.
    inline_written: usize,
    /// Out-of-line payloads, each with the `inline` offset it is written
    /// before (offsets never decrease; a partly written payload has been
    /// advanced past its written part).
    chunks: VecDeque<(usize, Bytes)>,
    /// Unwritten bytes in `chunks`.
    chunk_bytes: usize,
}

impl Outbox {
    /// An empty outbox.
    pub fn new() -> Self {
        Self::default()
    }

    /// Bytes not yet written.
    pub fn len(&self) -> usize {
        self.inline.len() - self.inline_written + self.chunk_bytes
    }

    /// Whether everything has been written.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The buffer to append small things to (headers, control frames, an
    /// HTTP response).
    pub fn inline_mut(&mut self) -> &mut Vec<u8> {
        &mut self.inline
    }

    /// Append `payload`: copied if short, else kept out of line.
    pub fn push_payload(&mut self, payload: Bytes) {
        if payload.len() < OUT_OF_LINE_MIN {
            self.inline.extend_from_slice(&payload);
        } else {
            self.chunk_bytes += payload.len();
            self.chunks.push_back((self.inline.len(), payload));
        }
    }

    /// Append a copy of `payload`: inline if short, else out of line in a
    /// buffer of its own (so the inline buffer stays small).
    pub fn push_payload_from(&mut self, payload: &[u8]) {
        if payload.len() < OUT_OF_LINE_MIN {
            self.inline.extend_from_slice(payload);
        } else {
            self.push_payload(Bytes::copy_from_slice(payload));
        }
    }

    /// Forget everything, keeping the buffer's allocation unless it grew
    /// past `retain` bytes.
    pub fn clear(&mut self, retain: usize) {
        self.inline.clear();
        if self.inline.capacity() > retain {
            self.inline = Vec::new();
        }
        self.inline_written = 0;
        self.chunks.clear();
        self.chunk_bytes = 0;
    }

    /// The unwritten bytes as one slice, when they are all in the buffer
    /// (no payload out of line): the common case, written without an
    /// I/O vector.
    pub fn contiguous(&self) -> Option<&[u8]> {
        self.chunks
            .is_empty()
            .then(|| &self.inline[self.inline_written..])
    }

    /// Fill `slices` with the unwritten bytes, in order, as far as they go;
    /// how many were filled (0 only when empty or `slices` is).
    pub fn io_slices<'a>(&'a self, slices: &mut [IoSlice<'a>]) -> usize {
        let mut filled = 0;
        let mut from = self.inline_written;
        let mut chunks = self.chunks.iter();
        while filled < slices.len() {
            let next = chunks.next();
            let to = next.map_or(self.inline.len(), |(offset, _)| *offset);
            if to > from {
                slices[filled] = IoSlice::new(&self.inline[from..to]);
                filled += 1;
                from = to;
            }
            match next {
                Some((_, chunk)) if filled < slices.len() => {
                    slices[filled] = IoSlice::new(chunk);
                    filled += 1;
                }
                _ => break,
            }
        }
        filled
    }

    /// Mark the first `written` unwritten bytes as written.
    pub fn advance(&mut self, mut written: usize) {
        debug_assert!(written <= self.len(), "{written} > {}", self.len());
        while written > 0 {
            let to = self
                .chunks
                .front()
                .map_or(self.inline.len(), |(offset, _)| *offset);
            if to > self.inline_written {
                let step = written.min(to - self.inline_written);
                self.inline_written += step;
                written -= step;
                continue;
            }
            let Some((_, chunk)) = self.chunks.front_mut() else {
                break;
            };
            let step = written.min(chunk.len());
            chunk.advance(step);
            self.chunk_bytes -= step;
            written -= step;
            if chunk.is_empty() {
                self.chunks.pop_front();
            }
        }
    }

    /// Everything unwritten, copied into one buffer (for tests and for
    /// callers that need contiguous bytes).
    pub fn to_vec(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.len());
        let mut from = self.inline_written;
        for (offset, chunk) in &self.chunks {
            out.extend_from_slice(&self.inline[from..*offset]);
            out.extend_from_slice(chunk);
            from = *offset;
        }
        out.extend_from_slice(&self.inline[from..]);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn big(byte: u8) -> Bytes {
        Bytes::from(vec![byte; OUT_OF_LINE_MIN])
    }

    /// An outbox holding `a` | BIG(1) | `bc` | BIG(2) | BIG(3) | `d`.
    fn sample() -> (Outbox, Vec<u8>) {
        let mut outbox = Outbox::new();
        let mut expected = Vec::new();
        outbox.inline_mut().push(b'a');
        outbox.push_payload(big(1));
        outbox.push_payload(Bytes::from_static(b"bc"));
        outbox.push_payload(big(2));
        outbox.push_payload(big(3));
        outbox.inline_mut().push(b'd');
        for part in [&b"a"[..], &big(1), b"bc", &big(2), &big(3), b"d"] {
            expected.extend_from_slice(part);
        }
        (outbox, expected)
    }

    #[test]
    fn small_payloads_are_copied_and_large_ones_kept_in_order() {
        let (outbox, expected) = sample();
        assert_eq!(outbox.len(), expected.len());
        let mut slices = [IoSlice::new(&[]); 16];
        let filled = outbox.io_slices(&mut slices);
        let lens: Vec<usize> = slices[..filled].iter().map(|s| s.len()).collect();
        let big = OUT_OF_LINE_MIN;
        assert_eq!(lens, [1, big, 2, big, big, 1]);
        assert_eq!(outbox.to_vec(), expected);
    }

    #[test]
    fn partial_writes_of_every_size_resume_where_they_stopped() {
        let (_, expected) = sample();
        for step in [1, 2, 3, 7, 4095, 4096, 4097, 10_000, expected.len()] {
            for slots in 1..=7 {
                let (mut outbox, _) = sample();
                let mut written = Vec::new();
                while !outbox.is_empty() {
                    let mut slices = [IoSlice::new(&[]); 7];
                    let filled = outbox.io_slices(&mut slices[..slots]);
                    assert!(filled > 0);
                    // A write that takes at most `step` bytes of what it was
                    // offered.
                    let mut budget = step;
                    for slice in &slices[..filled] {
                        let take = budget.min(slice.len());
                        written.extend_from_slice(&slice[..take]);
                        budget -= take;
                    }
                    outbox.advance(step - budget);
                }
                assert_eq!(written, expected, "step {step}, {slots} slots");
                assert_eq!(outbox.len(), 0);
            }
        }
    }

    #[test]
    fn the_bytes_are_contiguous_once_no_payload_is_out_of_line() {
        let (mut outbox, expected) = sample();
        let mut written = 0;
        while !outbox.is_empty() {
            match outbox.contiguous() {
                Some(bytes) => assert_eq!(bytes, &expected[written..]),
                None => assert!(expected.len() - written > 1, "a chunk is left"),
            }
            outbox.advance(1000.min(outbox.len()));
            written += 1000.min(expected.len() - written);
        }
        assert_eq!(outbox.contiguous(), Some(&b""[..]));
        let mut small = Outbox::new();
        small.push_payload_from(b"abc");
        small.inline_mut().push(b'd');
        assert_eq!(small.contiguous(), Some(&b"abcd"[..]));
        small.push_payload_from(&[0; OUT_OF_LINE_MIN]);
        assert_eq!(small.contiguous(), None);
    }

    #[test]
    fn clear_empties_and_gives_back_a_grown_buffer() {
        let (mut outbox, _) = sample();
        outbox.inline_mut().extend_from_slice(&[0; 100]);
        outbox.clear(1 << 20);
        assert!(outbox.is_empty());
        assert!(outbox.inline_mut().capacity() >= 100);
        outbox.inline_mut().extend_from_slice(&[0; 100]);
        outbox.clear(10);
        assert_eq!(outbox.inline_mut().capacity(), 0);
        let mut slices = [IoSlice::new(&[]); 2];
        assert_eq!(outbox.io_slices(&mut slices), 0);
    }
}
