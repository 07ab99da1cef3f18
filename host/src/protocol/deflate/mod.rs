//! The `permessage-deflate` extension (RFC 7692), sans-IO.
//!
//! Three parts, a file each (with its tests beside it):
//!
//! - `config.rs`: [`DeflateConfig`], what the server is willing to
//!   negotiate.
//! - `negotiate.rs`: [`parse_offers`] reads `Sec-WebSocket-Extensions`
//!   request headers (RFC 6455 §9.1 grammar, through [`super::header`]),
//!   [`negotiate()`] picks the first `permessage-deflate` offer the
//!   configuration can honour (RFC 7692 §7.1) and
//!   [`Negotiated::response_header`] is the value the handshake sends back.
//! - `codec.rs`: [`MessageDeflater`] (implements [`Deflate`], server to
//!   client) and [`MessageInflater`] (implements [`Inflate`], client to
//!   server), one message at a time (RFC 7692 §7.2).
//!
//! # Decisions
//!
//! - **Window of 8 bits.** zlib (and zlib-rs) cannot *compress* with an 8-bit
//!   window (it silently uses 9), so an offer with `server_max_window_bits=8`
//!   is declined: accepting it would break the promise "at most 8".
//!   For *decompression* the window size is irrelevant to us: the inflater
//!   always uses 15 bits, which decodes any stream made with a window of
//!   8..=15 bits (zlib-rs allocates the full 32 KiB inflate window whatever
//!   the window bits, so a smaller value would save nothing).
//! - **`client_max_window_bits` not offered.** The server may then not answer
//!   with the parameter, so the client may use a 15-bit window. We still
//!   accept such offers even when [`DeflateConfig::client_max_window_bits`]
//!   is below 15 (our inflater handles any window); the configured value is
//!   only imposed on clients that offered the parameter.
//! - **What the response announces.** `server_no_context_takeover` and
//!   `client_no_context_takeover` whenever they apply (requested by the client
//!   or required by the configuration: RFC 7692 §7.1.1 lets the server add
//!   both unasked). `server_max_window_bits=N` whenever the client offered
//!   the parameter, even when N is 15: "A server accepts an extension
//!   negotiation offer with this parameter by including the
//!   "server_max_window_bits" extension parameter in the extension
//!   negotiation response" (§7.1.2.1), and clients that check it (Python's
//!   `websockets`) refuse an answer without it. Also whenever N < 15, so a
//!   configured `server_max_window_bits < 15` is announced even to clients
//!   that did not offer it (allowed by §7.1.2.1, but a few client libraries
//!   refuse it). `client_max_window_bits=N` only to a client that offered
//!   the parameter (§7.1.2.2: without it in the offer the response "MUST
//!   NOT include" it): always when the offer carried a value (N is at most
//!   that value; an explicit 15 is an answer too), and when N < 15 for an
//!   offer without a value. The values are always written (a response's
//!   window parameters have a value) and never with a leading zero.
//! - **Window values.** Offered window bits must be decimal 8..=15 "without
//!   leading zeroes" (§7.1.2.1, §7.1.2.2), as a token or a quoted-string
//!   (RFC 6455 §9.1); `09` or `015` is an invalid value, and "A server MUST
//!   decline an extension negotiation offer for this extension if ... The
//!   negotiation offer contains an extension parameter with an invalid
//!   value" (RFC 7692 §7).
//! - **Final blocks.** A sender may end a message with a `BFINAL` block
//!   (RFC 7692 §7.2.3.4). The inflater then starts a new DEFLATE stream
//!   (for the rest of the message, or for the next one) whose dictionary is
//!   the last 32 KiB of *this* message's output: back-references into earlier
//!   messages across a final block cannot be followed (flate2 does not expose
//!   `inflateGetDictionary`) and fail as corrupt data.
//! - **Errors.** Corrupt data is [`ProtocolError::Compression`]; a message
//!   inflating past the limit is [`ProtocolError::MessageTooLarge`],
//!   detected while inflating: the output buffer never grows past
//!   `limit + 1` bytes. After an error the codec drops its zlib state (the
//!   connection is being failed anyway).
//!
//! # Memory
//!
//! Both codecs are created without zlib state; it is allocated on first use
//! (and freed again after every message when no context is kept, so an
//! idle no-context-takeover connection holds none). A compressor's state is
//! several times a decompressor's and shrinks only a little with the window
//! bits: zlib-rs sizes the compressor as the sum of a `2·2^w` byte window,
//! `2·2^w` bytes of hash chains, 128 KiB of hash heads (a fixed 64 Ki
//! entries, unlike zlib's `2^(memLevel+7)`) and `7·2^(memLevel+6)` bytes of
//! pending and symbol buffers (112 KiB at the default memLevel 8); the
//! decompressor is its state plus a 32 KiB window whatever the window bits.
//! So the window bits matter little and memLevel would matter more (memLevel
//! 1 saves ~111 KiB), but flate2 1.1 does not expose it: that would take
//! `zlib_rs::Deflate::new_with_config(zlib_rs::DeflateConfig { level,
//! window_bits: -bits, mem_level, .. })`, i.e. a direct dependency on
//! `zlib-rs` 0.6 (already in the lock file through flate2). Measured sizes:
//! `host/benches/README.md`, "permessage-deflate: zlib state sizes".
//!
//! # Speed
//!
//! The default level is 1: on the short, repetitive messages WebSockets
//! carry it compresses nearly as well as 6 for a small fraction of the CPU,
//! and inflating costs the same either way. Level 1 is zlib-rs's
//! `deflate_quick` (fixed Huffman codes only), which expands incompressible
//! data a little where level 2 and up fall back to stored blocks. Without
//! context takeover every message also pays for a reset (zlib-rs clears its
//! 128 KiB hash table). Measured figures: `host/benches/README.md`,
//! "permessage-deflate: compression level 1 against 6".

mod codec;
mod config;
mod negotiate;

#[cfg(doc)]
use super::{Deflate, Inflate, ProtocolError};

pub use codec::{MessageDeflater, MessageInflater};
pub use config::{DeflateConfig, DeflateConfigError};
pub use negotiate::{
    EXTENSION_NAME, ExtensionHeaderError, ExtensionHeaderErrorKind, ExtensionParam, Negotiated,
    Offer, accept_offer, negotiate, parse_offers,
};

/// The largest LZ77 window, in bits.
const MAX_WINDOW_BITS: u8 = 15;
/// The smallest window zlib can compress with.
const MIN_DEFLATE_WINDOW_BITS: u8 = 9;
/// The smallest window RFC 7692 allows.
const MIN_WINDOW_BITS: u8 = 8;

/// Helpers shared by the three parts' tests.
#[cfg(test)]
mod test_support {
    use super::{DeflateConfig, Negotiated};

    pub(super) fn n(snct: bool, cnct: bool, sbits: u8, cbits: u8) -> Negotiated {
        Negotiated {
            server_no_context_takeover: snct,
            client_no_context_takeover: cnct,
            server_max_window_bits: sbits,
            client_max_window_bits: cbits,
            ..Negotiated::default()
        }
    }

    /// `x` with its window parameters announced even at 15.
    pub(super) fn announce(x: Negotiated, server: bool, client: bool) -> Negotiated {
        Negotiated {
            announce_server_max_window_bits: server,
            announce_client_max_window_bits: client,
            ..x
        }
    }

    pub(super) fn config_level(level: u32) -> DeflateConfig {
        DeflateConfig {
            level,
            ..DeflateConfig::default()
        }
    }

    /// Text that compresses like real messages: repetitive but not trivial.
    pub(super) fn corpus(seed: usize, len: usize) -> Vec<u8> {
        let mut s = String::new();
        let mut k = seed;
        while s.len() < len {
            s.push_str(&format!(
                "{{\"id\":{k},\"user\":\"u{}\",\"text\":\"hello number {}\"}},",
                k % 17,
                k * 7919 % 1000
            ));
            k += 1;
        }
        s.truncate(len);
        s.into_bytes()
    }

    /// Pseudo-random bytes (incompressible).
    pub(super) fn noise(seed: u64, len: usize) -> Vec<u8> {
        let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    pub(super) fn hex(s: &str) -> Vec<u8> {
        s.split_whitespace()
            .map(|b| u8::from_str_radix(b, 16).expect("hex"))
            .collect()
    }
}
