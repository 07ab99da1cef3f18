//! The `permessage-deflate` extension (RFC 7692), sans-IO.
//!
//! Three parts:
//!
//! - [`DeflateConfig`]: what the server is willing to negotiate.
//! - Negotiation: [`parse_offers`] reads `Sec-WebSocket-Extensions` request
//!   headers (RFC 6455 §9.1 grammar), [`negotiate`] picks the first
//!   `permessage-deflate` offer the configuration can honour (RFC 7692 §7.1)
//!   and [`Negotiated::response_header`] is the value the handshake sends back.
//! - The codec: [`MessageDeflater`] (implements [`Deflate`], server to
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
//!   inflating past the limit is [`ProtocolError::MessageTooLarge`], detected
//!   while inflating: the output buffer never grows past `limit + 1` bytes.
//!   After an error the codec drops its zlib state (the connection is being
//!   failed anyway).
//!
//! # Memory
//!
//! Both codecs are created without zlib state; it is allocated on first use
//! (and freed again after every message when no context is kept, so an
//! idle no-context-takeover connection holds none). Heap held by one state, measured with a counting global allocator
//! (zlib-rs 0.6.8 through flate2 1.1.11, one allocation each):
//!
//! | state                               | heap                 |
//! |-------------------------------------|----------------------|
//! | compressor, 15-bit window           | 380,032 B (371 KiB)  |
//! | compressor, 12-bit window           | 265,344 B (259 KiB)  |
//! | compressor, 9-bit window            | 251,008 B (245 KiB)  |
//! | decompressor (any window)           | 47,552 B (46 KiB)    |
//!
//! zlib-rs sizes the compressor as the sum of a `2·2^w` byte window, `2·2^w`
//! bytes of hash chains, 128 KiB of hash heads (a fixed 64 Ki entries, unlike
//! zlib's `2^(memLevel+7)`) and `7·2^(memLevel+6)` bytes of pending and
//! symbol buffers (112 KiB at the default memLevel 8); the decompressor is its
//! state plus a 32 KiB window whatever the window bits. So the window bits
//! matter little and memLevel would matter more (memLevel 1 saves ~111 KiB),
//! but flate2 1.1 does not expose it: that would take
//! `zlib_rs::Deflate::new_with_config(zlib_rs::DeflateConfig { level,
//! window_bits: -bits, mem_level, .. })`, i.e. a direct dependency on
//! `zlib-rs` 0.6 (already in the lock file through flate2).
//!
//! # Speed
//!
//! Level 1 against 6 on JSON-like messages with context takeover (release
//! build, one core of the development machine): 100 B 0.3 µs against 4.2 µs
//! (compressed to 24.5 % against 22.7 %), 300 B 0.5 against 10 µs (19.5 %
//! against 17.1 %), 2 KB 2.6 against 31 µs (17.3 % against 10.7 %). Level 1
//! is zlib-rs's `deflate_quick` (fixed Huffman codes only), which expands
//! incompressible data by ~5.5 % where level 2 and up fall back to stored
//! blocks (+0.03 %). Without context takeover every message also pays ~3 µs
//! for the reset (zlib-rs clears its 128 KiB hash table). Inflating the same
//! messages: 0.25 µs, 0.5 µs and 3.8 µs.

use std::borrow::Cow;

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

use super::decoder::Inflate;
use super::encoder::Deflate;
use super::error::ProtocolError;
use super::header::{self, HeaderError};

/// The extension token, as it appears in `Sec-WebSocket-Extensions`.
pub const EXTENSION_NAME: &str = "permessage-deflate";

const SERVER_NO_CONTEXT_TAKEOVER: &str = "server_no_context_takeover";
const CLIENT_NO_CONTEXT_TAKEOVER: &str = "client_no_context_takeover";
const SERVER_MAX_WINDOW_BITS: &str = "server_max_window_bits";
const CLIENT_MAX_WINDOW_BITS: &str = "client_max_window_bits";

/// The empty stored block a sync flush ends with; RFC 7692 §7.2.1 strips it
/// on send and §7.2.2 appends it on receive.
const TRAILER: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// The largest LZ77 window, in bits and bytes.
const MAX_WINDOW_BITS: u8 = 15;
const MAX_WINDOW: usize = 1 << MAX_WINDOW_BITS;
/// The smallest window zlib can compress with.
const MIN_DEFLATE_WINDOW_BITS: u8 = 9;
/// The smallest window RFC 7692 allows.
const MIN_WINDOW_BITS: u8 = 8;

/// The most DEFLATE streams (final blocks) one message may hold. A conforming
/// sender uses at most one; each restart copies up to 32 KiB of history into
/// the new stream's dictionary, so the cap keeps a message made of tiny final
/// blocks from costing far more CPU than its size.
const MAX_STREAMS_PER_MESSAGE: usize = 64;

/// The smallest amount by which the inflater grows its output buffer.
const MIN_CHUNK: usize = 256;
/// The largest first guess of a message's inflated size.
const MAX_FIRST_CHUNK: usize = 64 * 1024;

// ---------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------

/// What the server is willing to negotiate for `permessage-deflate`.
///
/// Build it from [`DeflateConfig::default`] and change fields; check it with
/// [`DeflateConfig::validate`] at start-up (negotiation clamps out-of-range
/// values instead of failing).
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct DeflateConfig {
    /// Accept `permessage-deflate` offers at all. Default: `true`.
    pub enabled: bool,
    /// Reset the server's compressor after every message, even when the
    /// client did not ask for it. Costs compression ratio (no reuse of
    /// earlier messages) and a 128 KiB `memset` per message, but makes
    /// [`MessageDeflater::release`] possible between messages.
    /// Default: `false`.
    pub server_no_context_takeover: bool,
    /// Ask the client to reset its compressor after every message (always
    /// announced when set). Lets [`MessageInflater::release`] free the 46 KiB
    /// inflate state between messages. Default: `false`.
    pub client_no_context_takeover: bool,
    /// The largest LZ77 window the server compresses with, in bits, 9..=15
    /// (zlib cannot compress with 8). Announced when below 15.
    /// Default: `15`.
    pub server_max_window_bits: u8,
    /// The largest window the server asks the client to compress with,
    /// 8..=15; only imposed on clients that offered `client_max_window_bits`.
    /// It does not change the server's memory (the inflater always holds a
    /// 32 KiB window). Default: `15`.
    pub client_max_window_bits: u8,
    /// zlib compression level, 0 (stored) ..= 9 (best). Default: `1`: for the
    /// short, repetitive messages WebSockets carry (JSON and the like) it
    /// compresses nearly as well as 6 at a tenth of the CPU (figures in the
    /// module docs), and with context takeover most of the gain comes from
    /// the shared window anyway. Use 2 or more for mostly incompressible
    /// payloads: level 1 expands those by ~5.5 %.
    pub level: u32,
    /// Messages shorter than this many bytes are sent uncompressed (see
    /// [`MessageDeflater::should_compress`]): below it the frame's saving
    /// rarely pays for the compressor's fixed cost. Default: `64`.
    pub min_size: usize,
}

impl Default for DeflateConfig {
    fn default() -> Self {
        DeflateConfig {
            enabled: true,
            server_no_context_takeover: false,
            client_no_context_takeover: false,
            server_max_window_bits: MAX_WINDOW_BITS,
            client_max_window_bits: MAX_WINDOW_BITS,
            level: 1,
            min_size: 64,
        }
    }
}

/// A [`DeflateConfig`] field out of range.
#[derive(thiserror::Error, Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DeflateConfigError {
    /// `server_max_window_bits` outside 9..=15.
    #[error("server_max_window_bits must be within 9..=15, got {0}")]
    ServerMaxWindowBits(u8),
    /// `client_max_window_bits` outside 8..=15.
    #[error("client_max_window_bits must be within 8..=15, got {0}")]
    ClientMaxWindowBits(u8),
    /// `level` above 9.
    #[error("compression level must be within 0..=9, got {0}")]
    Level(u32),
}

impl DeflateConfig {
    /// Checks every field's range.
    pub fn validate(&self) -> Result<(), DeflateConfigError> {
        if !(MIN_DEFLATE_WINDOW_BITS..=MAX_WINDOW_BITS).contains(&self.server_max_window_bits) {
            return Err(DeflateConfigError::ServerMaxWindowBits(
                self.server_max_window_bits,
            ));
        }
        if !(MIN_WINDOW_BITS..=MAX_WINDOW_BITS).contains(&self.client_max_window_bits) {
            return Err(DeflateConfigError::ClientMaxWindowBits(
                self.client_max_window_bits,
            ));
        }
        if self.level > 9 {
            return Err(DeflateConfigError::Level(self.level));
        }
        Ok(())
    }

    fn server_bits(&self) -> u8 {
        self.server_max_window_bits
            .clamp(MIN_DEFLATE_WINDOW_BITS, MAX_WINDOW_BITS)
    }

    fn client_bits(&self) -> u8 {
        self.client_max_window_bits
            .clamp(MIN_WINDOW_BITS, MAX_WINDOW_BITS)
    }
}

// ---------------------------------------------------------------------------
// Sec-WebSocket-Extensions parsing (RFC 6455 §9.1)
// ---------------------------------------------------------------------------

/// One extension in a `Sec-WebSocket-Extensions` header: a token and its
/// `;`-separated parameters, in order, as written (names are not lowercased).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Offer {
    /// The extension token, e.g. `permessage-deflate`.
    pub name: String,
    /// The parameters, in order of appearance, duplicates kept.
    pub params: Vec<ExtensionParam>,
}

/// One `name[=value]` extension parameter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExtensionParam {
    /// The parameter token.
    pub name: String,
    /// The value, if any, with a quoted-string's quotes and escapes removed.
    pub value: Option<String>,
}

/// A `Sec-WebSocket-Extensions` value that does not follow RFC 6455 §9.1.
#[derive(thiserror::Error, Clone, Debug, PartialEq, Eq)]
#[error("malformed Sec-WebSocket-Extensions header (value {header}, byte {offset}): {kind}")]
pub struct ExtensionHeaderError {
    /// Index of the offending header value in the slice given to
    /// [`parse_offers`].
    pub header: usize,
    /// Byte offset of the problem within that value.
    pub offset: usize,
    /// What was wrong.
    pub kind: ExtensionHeaderErrorKind,
}

/// What was wrong in an [`ExtensionHeaderError`].
pub use super::header::HeaderErrorKind as ExtensionHeaderErrorKind;

/// Parses `Sec-WebSocket-Extensions` header values into extension offers, in
/// order, with the shared header grammar ([`super::header`]): several header
/// values, comma-separated extensions (empty list elements are skipped,
/// RFC 7230 §7), `;`-separated parameters with or without a value, values
/// as tokens or quoted-strings, optional whitespace around separators.
///
/// Accepts `&[String]` as well as `&[&str]`. Unescaped quoted values are not
/// required to be tokens here (RFC 6455 asks for it); negotiation checks the
/// values it uses.
pub fn parse_offers<S: AsRef<str>>(
    header_values: &[S],
) -> Result<Vec<Offer>, ExtensionHeaderError> {
    let mut offers = Vec::new();
    for (header, value) in header_values.iter().enumerate() {
        for (at, item) in header::list(value.as_ref()) {
            let located = |e: HeaderError| ExtensionHeaderError {
                header,
                offset: at.saturating_add(e.offset),
                kind: e.kind,
            };
            let element = header::element(item).map_err(located)?;
            let params = element
                .params()
                .map(|p| {
                    p.map(|p| ExtensionParam {
                        name: p.name.to_owned(),
                        value: p.value.map(Cow::into_owned),
                    })
                })
                .collect::<Result<_, _>>()
                .map_err(located)?;
            offers.push(Offer {
                name: element.name.to_owned(),
                params,
            });
        }
    }
    Ok(offers)
}

// ---------------------------------------------------------------------------
// Negotiation (RFC 7692 §7.1)
// ---------------------------------------------------------------------------

/// The parameters in effect on a connection after negotiation.
///
/// `Default` is a plain `permessage-deflate` (context takeover both ways,
/// 15-bit windows).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Negotiated {
    /// The server resets its compressor after every message.
    pub server_no_context_takeover: bool,
    /// The client resets its compressor after every message, so the server
    /// resets its decompressor too.
    pub client_no_context_takeover: bool,
    /// The largest window the server compresses with, 9..=15.
    pub server_max_window_bits: u8,
    /// The largest window the client may compress with, 8..=15 (15 when the
    /// client did not offer `client_max_window_bits`).
    pub client_max_window_bits: u8,
    /// The response carries `server_max_window_bits` even when it is 15.
    /// [`negotiate`] sets it when the client offered the parameter: "A
    /// server accepts an extension negotiation offer with this parameter by
    /// including the "server_max_window_bits" extension parameter in the
    /// extension negotiation response" (RFC 7692 §7.1.2.1). Below 15 the
    /// parameter is carried anyway.
    pub announce_server_max_window_bits: bool,
    /// The response carries `client_max_window_bits` even when it is 15.
    /// [`negotiate`] sets it when the client offered the parameter with a
    /// value, and never sets it (nor lowers `client_max_window_bits`) for a
    /// client that did not offer the parameter: the response then "MUST NOT
    /// include the "client_max_window_bits" extension parameter" (§7.1.2.2).
    pub announce_client_max_window_bits: bool,
}

impl Default for Negotiated {
    fn default() -> Self {
        Negotiated {
            server_no_context_takeover: false,
            client_no_context_takeover: false,
            server_max_window_bits: MAX_WINDOW_BITS,
            client_max_window_bits: MAX_WINDOW_BITS,
            announce_server_max_window_bits: false,
            announce_client_max_window_bits: false,
        }
    }
}

impl Negotiated {
    /// The `Sec-WebSocket-Extensions` response value, e.g.
    /// `permessage-deflate; server_no_context_takeover; client_max_window_bits=10`:
    /// one element, each parameter at most once, the window parameters with
    /// a value.
    ///
    /// A window parameter is written when its bits are below 15 (15 is what
    /// its absence means) or when its `announce_*` field asks for it.
    pub fn response_header(&self) -> String {
        let mut s = String::from(EXTENSION_NAME);
        if self.server_no_context_takeover {
            s.push_str("; ");
            s.push_str(SERVER_NO_CONTEXT_TAKEOVER);
        }
        if self.client_no_context_takeover {
            s.push_str("; ");
            s.push_str(CLIENT_NO_CONTEXT_TAKEOVER);
        }
        if self.server_max_window_bits < MAX_WINDOW_BITS || self.announce_server_max_window_bits {
            s.push_str(&format!(
                "; {SERVER_MAX_WINDOW_BITS}={}",
                self.server_max_window_bits.min(MAX_WINDOW_BITS)
            ));
        }
        if self.client_max_window_bits < MAX_WINDOW_BITS || self.announce_client_max_window_bits {
            s.push_str(&format!(
                "; {CLIENT_MAX_WINDOW_BITS}={}",
                self.client_max_window_bits.min(MAX_WINDOW_BITS)
            ));
        }
        s
    }
}

/// Picks the first `permessage-deflate` offer in the request's
/// `Sec-WebSocket-Extensions` values that `config` can honour (see
/// [`accept_offer`]).
///
/// `None` when compression is disabled, nothing acceptable was offered, or
/// the header is malformed (the handshake then simply proceeds without
/// compression).
pub fn negotiate<S: AsRef<str>>(config: &DeflateConfig, header_values: &[S]) -> Option<Negotiated> {
    if !config.enabled {
        return None;
    }
    let offers = parse_offers(header_values).ok()?;
    offers.iter().find_map(|offer| accept_offer(config, offer))
}

/// Accepts one offer if it is a valid `permessage-deflate` offer `config`
/// can honour, per RFC 7692 §7.1:
///
/// - declined: another extension; an unknown parameter; a parameter given
///   twice; `*_no_context_takeover` with a value; `server_max_window_bits`
///   without a value; a window value that is not decimal 8..=15 without
///   leading zeroes; `server_max_window_bits=8` (zlib cannot compress with
///   an 8-bit window);
/// - the server window is the smaller of the offer's and the configured
///   one, announced whenever the offer had the parameter;
/// - the client window is 15 if the client did not offer
///   `client_max_window_bits`, else the smaller of its value (if any) and the
///   configured one, announced whenever the offer gave a value;
/// - no-context-takeover applies if the offer or the configuration asks for
///   it.
pub fn accept_offer(config: &DeflateConfig, offer: &Offer) -> Option<Negotiated> {
    if !offer.name.eq_ignore_ascii_case(EXTENSION_NAME) {
        return None;
    }
    let mut server_no_context_takeover = false;
    let mut client_no_context_takeover = false;
    let mut server_max_window_bits: Option<u8> = None;
    // Outer Some: offered; inner: its value, if any.
    let mut client_max_window_bits: Option<Option<u8>> = None;
    for param in &offer.params {
        let name = param.name.as_str();
        if name.eq_ignore_ascii_case(SERVER_NO_CONTEXT_TAKEOVER) {
            if server_no_context_takeover || param.value.is_some() {
                return None;
            }
            server_no_context_takeover = true;
        } else if name.eq_ignore_ascii_case(CLIENT_NO_CONTEXT_TAKEOVER) {
            if client_no_context_takeover || param.value.is_some() {
                return None;
            }
            client_no_context_takeover = true;
        } else if name.eq_ignore_ascii_case(SERVER_MAX_WINDOW_BITS) {
            if server_max_window_bits.is_some() {
                return None;
            }
            server_max_window_bits = Some(parse_window_bits(param.value.as_deref()?)?);
        } else if name.eq_ignore_ascii_case(CLIENT_MAX_WINDOW_BITS) {
            if client_max_window_bits.is_some() {
                return None;
            }
            client_max_window_bits = Some(match param.value.as_deref() {
                None => None,
                Some(v) => Some(parse_window_bits(v)?),
            });
        } else {
            return None;
        }
    }
    let server_bits = match server_max_window_bits {
        Some(n) if n < MIN_DEFLATE_WINDOW_BITS => return None,
        Some(n) => n.min(config.server_bits()),
        None => config.server_bits(),
    };
    let client_bits = match client_max_window_bits {
        None => MAX_WINDOW_BITS,
        // zlib cannot compress with an 8-bit window, and clients built on it
        // refuse an answer of 8: impose 8 only on a client that offered 8.
        Some(None) => config.client_bits().max(MIN_DEFLATE_WINDOW_BITS),
        Some(Some(n)) => n.min(config.client_bits().max(MIN_DEFLATE_WINDOW_BITS)),
    };
    Some(Negotiated {
        server_no_context_takeover: server_no_context_takeover || config.server_no_context_takeover,
        client_no_context_takeover: client_no_context_takeover || config.client_no_context_takeover,
        server_max_window_bits: server_bits,
        client_max_window_bits: client_bits,
        announce_server_max_window_bits: server_max_window_bits.is_some(),
        announce_client_max_window_bits: matches!(client_max_window_bits, Some(Some(_))),
    })
}

/// "a decimal integer value without leading zeroes between 8 to 15,
/// inclusive" (RFC 7692 §7.1.2.1 and §7.1.2.2): `8`..`15`, so `08` is
/// invalid.
fn parse_window_bits(value: &str) -> Option<u8> {
    if value.is_empty()
        || value.len() > 2
        || value.starts_with('0')
        || !value.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let bits: u8 = value.parse().ok()?;
    (MIN_WINDOW_BITS..=MAX_WINDOW_BITS)
        .contains(&bits)
        .then_some(bits)
}

// ---------------------------------------------------------------------------
// Codec (RFC 7692 §7.2)
// ---------------------------------------------------------------------------

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
/// Cheap to create: the 245-371 KiB zlib state is allocated by the first
/// non-empty message. With `server_no_context_takeover` the compressor is
/// freed after each message.
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
    /// (which [`negotiate`] never produces) makes every non-empty message
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
            // Nothing carries over to the next message: free the ~370 KiB
            // of zlib state rather than keep it for an idle connection (a
            // reset would clear the same tables anyway).
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
/// Cheap to create: the 46 KiB zlib state is allocated by the first
/// message. With `client_no_context_takeover` it is freed after each message.
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
    use super::*;
    use proptest::prelude::*;

    // -- helpers ------------------------------------------------------------

    fn offers(headers: &[&str]) -> Vec<Offer> {
        parse_offers(headers).expect("parses")
    }

    fn offer(name: &str, params: &[(&str, Option<&str>)]) -> Offer {
        Offer {
            name: name.into(),
            params: params
                .iter()
                .map(|(n, v)| ExtensionParam {
                    name: (*n).into(),
                    value: v.map(Into::into),
                })
                .collect(),
        }
    }

    fn neg(headers: &[&str]) -> Option<Negotiated> {
        negotiate(&DeflateConfig::default(), headers)
    }

    fn neg_with(config: &DeflateConfig, headers: &[&str]) -> Option<Negotiated> {
        negotiate(config, headers)
    }

    fn n(snct: bool, cnct: bool, sbits: u8, cbits: u8) -> Negotiated {
        Negotiated {
            server_no_context_takeover: snct,
            client_no_context_takeover: cnct,
            server_max_window_bits: sbits,
            client_max_window_bits: cbits,
            ..Negotiated::default()
        }
    }

    /// `x` with its window parameters announced even at 15.
    fn announce(x: Negotiated, server: bool, client: bool) -> Negotiated {
        Negotiated {
            announce_server_max_window_bits: server,
            announce_client_max_window_bits: client,
            ..x
        }
    }

    fn config_level(level: u32) -> DeflateConfig {
        DeflateConfig {
            level,
            ..DeflateConfig::default()
        }
    }

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

    /// Text that compresses like real messages: repetitive but not trivial.
    fn corpus(seed: usize, len: usize) -> Vec<u8> {
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
    fn noise(seed: u64, len: usize) -> Vec<u8> {
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

    fn hex(s: &str) -> Vec<u8> {
        s.split_whitespace()
            .map(|b| u8::from_str_radix(b, 16).expect("hex"))
            .collect()
    }

    // -- parsing ------------------------------------------------------------

    #[test]
    fn parses_a_bare_offer() {
        assert_eq!(
            offers(&["permessage-deflate"]),
            [offer("permessage-deflate", &[])]
        );
    }

    #[test]
    fn parses_params_with_and_without_values() {
        assert_eq!(
            offers(&["permessage-deflate; client_max_window_bits; server_max_window_bits=10"]),
            [offer(
                "permessage-deflate",
                &[
                    ("client_max_window_bits", None),
                    ("server_max_window_bits", Some("10"))
                ]
            )]
        );
    }

    #[test]
    fn parses_several_offers_and_headers() {
        let got = offers(&[
            "permessage-deflate; server_no_context_takeover, permessage-deflate",
            "x-webkit-deflate-frame,foo;bar=\"baz\"",
        ]);
        assert_eq!(
            got,
            [
                offer(
                    "permessage-deflate",
                    &[("server_no_context_takeover", None)]
                ),
                offer("permessage-deflate", &[]),
                offer("x-webkit-deflate-frame", &[]),
                offer("foo", &[("bar", Some("baz"))]),
            ]
        );
    }

    #[test]
    fn parses_quoted_strings_with_escapes() {
        assert_eq!(
            offers(&[r#"a; b="1\0"; c="x,y;z=\"q\""; d="""#]),
            [offer(
                "a",
                &[
                    ("b", Some("10")),
                    ("c", Some("x,y;z=\"q\"")),
                    ("d", Some(""))
                ]
            )]
        );
        // obs-text passes through a quoted string.
        assert_eq!(offers(&["a; b=\"é\""]), [offer("a", &[("b", Some("é"))])]);
    }

    #[test]
    fn tolerates_whitespace_and_empty_elements() {
        assert_eq!(
            offers(&[
                " , permessage-deflate \t;\tclient_max_window_bits = 9 ,, ,",
                "",
                "  "
            ]),
            [offer(
                "permessage-deflate",
                &[("client_max_window_bits", Some("9"))]
            )]
        );
    }

    #[test]
    fn keeps_duplicates_and_case() {
        assert_eq!(
            offers(&["Permessage-Deflate; A; a"]),
            [offer("Permessage-Deflate", &[("A", None), ("a", None)])]
        );
    }

    #[test]
    fn rejects_malformed_headers() {
        use ExtensionHeaderErrorKind::*;
        let cases: &[(&str, usize, ExtensionHeaderErrorKind)] = &[
            ("a b", 2, UnexpectedChar),
            ("a;", 2, ExpectedToken),
            ("a;;b", 2, ExpectedToken),
            ("a; =1", 3, ExpectedToken),
            ("a; b=", 5, ExpectedToken),
            ("a; b==1", 5, ExpectedToken),
            ("a; b=\"1", 7, UnterminatedQuotedString),
            ("a; b=\"1\\", 8, UnterminatedQuotedString),
            ("a; b=\"\u{1}\"", 6, InvalidQuotedChar),
            ("a; b=\"1\"x", 8, UnexpectedChar),
            ("(a)", 0, ExpectedToken),
            ("a, é", 3, ExpectedToken),
            ("a; b=1 2", 7, UnexpectedChar),
        ];
        for &(h, offset, kind) in cases {
            assert_eq!(
                parse_offers(&["ok", h]),
                Err(ExtensionHeaderError {
                    header: 1,
                    offset,
                    kind
                }),
                "{h:?}"
            );
        }
    }

    #[test]
    fn accepts_string_slices_and_strings() {
        let owned = vec![String::from("permessage-deflate")];
        assert_eq!(parse_offers(&owned).map(|o| o.len()), Ok(1));
        assert!(negotiate(&DeflateConfig::default(), &owned).is_some());
        let none: [&str; 0] = [];
        assert_eq!(parse_offers(&none), Ok(vec![]));
        assert_eq!(negotiate(&DeflateConfig::default(), &none), None);
    }

    // -- negotiation --------------------------------------------------------

    #[test]
    fn plain_offer_gets_plain_answer() {
        let got = neg(&["permessage-deflate"]).expect("accepted");
        assert_eq!(got, Negotiated::default());
        assert_eq!(got.response_header(), "permessage-deflate");
    }

    #[test]
    fn disabled_config_declines_everything() {
        let config = DeflateConfig {
            enabled: false,
            ..DeflateConfig::default()
        };
        assert_eq!(neg_with(&config, &["permessage-deflate"]), None);
    }

    #[test]
    fn other_extensions_are_ignored() {
        assert_eq!(neg(&["x-webkit-deflate-frame", "foo; bar"]), None);
        assert_eq!(
            neg(&["x-webkit-deflate-frame, permessage-deflate; client_no_context_takeover"]),
            Some(n(false, true, 15, 15))
        );
    }

    #[test]
    fn malformed_header_means_no_compression() {
        assert_eq!(
            neg(&["permessage-deflate", "permessage-deflate; x=\"unterminated"]),
            None
        );
    }

    #[test]
    fn names_match_case_insensitively() {
        assert_eq!(
            neg(&["PerMessage-Deflate; Server_Max_Window_Bits=10"]),
            Some(announce(n(false, false, 10, 15), true, false))
        );
    }

    #[test]
    fn context_takeover_requests_are_honoured() {
        let got =
            neg(&["permessage-deflate; server_no_context_takeover; client_no_context_takeover"])
                .expect("accepted");
        assert_eq!(got, n(true, true, 15, 15));
        assert_eq!(
            got.response_header(),
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
        );
    }

    #[test]
    fn configured_no_context_takeover_is_announced_unasked() {
        let config = DeflateConfig {
            server_no_context_takeover: true,
            client_no_context_takeover: true,
            ..DeflateConfig::default()
        };
        let got = neg_with(&config, &["permessage-deflate"]).expect("accepted");
        assert_eq!(got, n(true, true, 15, 15));
        assert_eq!(
            got.response_header(),
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
        );
    }

    #[test]
    fn server_window_is_the_smaller_of_offer_and_config() {
        assert_eq!(
            neg(&["permessage-deflate; server_max_window_bits=10"]),
            Some(announce(n(false, false, 10, 15), true, false))
        );
        let config = DeflateConfig {
            server_max_window_bits: 11,
            ..DeflateConfig::default()
        };
        assert_eq!(
            neg_with(&config, &["permessage-deflate; server_max_window_bits=13"]),
            Some(announce(n(false, false, 11, 15), true, false))
        );
        assert_eq!(
            neg_with(&config, &["permessage-deflate; server_max_window_bits=9"]),
            Some(announce(n(false, false, 9, 15), true, false))
        );
        // Announced unasked when configured below 15.
        let got = neg_with(&config, &["permessage-deflate"]).expect("accepted");
        assert_eq!(got, n(false, false, 11, 15));
        assert_eq!(
            got.response_header(),
            "permessage-deflate; server_max_window_bits=11"
        );
    }

    #[test]
    fn server_window_of_8_is_declined() {
        assert_eq!(neg(&["permessage-deflate; server_max_window_bits=8"]), None);
        // ... in favour of the next acceptable offer.
        assert_eq!(
            neg(&[
                "permessage-deflate; server_max_window_bits=8, permessage-deflate; server_max_window_bits=9"
            ]),
            Some(announce(n(false, false, 9, 15), true, false))
        );
    }

    #[test]
    fn client_window_without_value() {
        // The client supports the parameter; with the default config we
        // leave its window at 15 and do not mention it.
        let got = neg(&["permessage-deflate; client_max_window_bits"]).expect("accepted");
        assert_eq!(got, n(false, false, 15, 15));
        assert_eq!(got.response_header(), "permessage-deflate");
        // A configured smaller client window is imposed.
        let config = DeflateConfig {
            client_max_window_bits: 10,
            ..DeflateConfig::default()
        };
        let got =
            neg_with(&config, &["permessage-deflate; client_max_window_bits"]).expect("accepted");
        assert_eq!(got, n(false, false, 15, 10));
        assert_eq!(
            got.response_header(),
            "permessage-deflate; client_max_window_bits=10"
        );
        // Down to 8: answered as 9 unless the client itself offered 8.
        let config = DeflateConfig {
            client_max_window_bits: 8,
            ..DeflateConfig::default()
        };
        assert_eq!(
            neg_with(&config, &["permessage-deflate; client_max_window_bits"]),
            Some(n(false, false, 15, 9))
        );
        assert_eq!(
            neg_with(&config, &["permessage-deflate; client_max_window_bits=8"]),
            Some(announce(n(false, false, 15, 8), false, true))
        );
    }

    #[test]
    fn client_window_with_value() {
        let got = neg(&["permessage-deflate; client_max_window_bits=9"]).expect("accepted");
        assert_eq!(got, announce(n(false, false, 15, 9), false, true));
        assert_eq!(
            got.response_header(),
            "permessage-deflate; client_max_window_bits=9"
        );
        assert_eq!(
            neg(&["permessage-deflate; client_max_window_bits=8"]),
            Some(announce(n(false, false, 15, 8), false, true))
        );
        let config = DeflateConfig {
            client_max_window_bits: 10,
            ..DeflateConfig::default()
        };
        assert_eq!(
            neg_with(&config, &["permessage-deflate; client_max_window_bits=12"]),
            Some(announce(n(false, false, 15, 10), false, true))
        );
        assert_eq!(
            neg_with(&config, &["permessage-deflate; client_max_window_bits=9"]),
            Some(announce(n(false, false, 15, 9), false, true))
        );
    }

    #[test]
    fn invalid_offers_are_declined() {
        let bad = [
            "permessage-deflate; foo",
            "permessage-deflate; foo=1",
            "permessage-deflate; server_no_context_takeover=1",
            "permessage-deflate; client_no_context_takeover=\"\"",
            "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
            "permessage-deflate; client_no_context_takeover; client_no_context_takeover",
            "permessage-deflate; server_max_window_bits",
            "permessage-deflate; server_max_window_bits=10; server_max_window_bits=10",
            "permessage-deflate; client_max_window_bits; client_max_window_bits",
            "permessage-deflate; client_max_window_bits=10; client_max_window_bits",
            "permessage-deflate; server_max_window_bits=7",
            "permessage-deflate; server_max_window_bits=16",
            "permessage-deflate; server_max_window_bits=0",
            "permessage-deflate; server_max_window_bits=09",
            "permessage-deflate; server_max_window_bits=010",
            "permessage-deflate; server_max_window_bits=1a",
            "permessage-deflate; server_max_window_bits=-9",
            "permessage-deflate; server_max_window_bits=+9",
            "permessage-deflate; server_max_window_bits=\"\"",
            "permessage-deflate; server_max_window_bits=\" 9\"",
            "permessage-deflate; client_max_window_bits=7",
            "permessage-deflate; client_max_window_bits=08",
            "permessage-deflate; client_max_window_bits=16",
            "permessage-deflate; client_max_window_bits=abc",
            "permessage-deflate; client_max_window_bits=\"\"",
        ];
        for b in bad {
            assert_eq!(neg(&[b]), None, "{b}");
            // A bad offer does not spoil a later good one.
            assert_eq!(
                neg(&[b, "permessage-deflate; client_max_window_bits=12"]),
                Some(announce(n(false, false, 15, 12), false, true)),
                "{b}"
            );
        }
    }

    #[test]
    fn window_values_may_be_quoted() {
        // RFC 6455 §9.1: "When using the quoted-string syntax variant, the
        // value after quoted-string unescaping MUST conform to the 'token'
        // ABNF."
        assert_eq!(
            neg(&[
                "permessage-deflate; server_max_window_bits=\"10\"; client_max_window_bits=\"9\""
            ]),
            Some(announce(n(false, false, 10, 9), true, true))
        );
    }

    #[test]
    fn first_acceptable_offer_wins() {
        assert_eq!(
            neg(&[
                "permessage-deflate; server_max_window_bits=12; client_no_context_takeover",
                "permessage-deflate",
            ]),
            Some(announce(n(false, true, 12, 15), true, false))
        );
    }

    #[test]
    fn full_response_header() {
        let got = n(true, true, 10, 9).response_header();
        assert_eq!(
            got,
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; \
             server_max_window_bits=10; client_max_window_bits=9"
        );
        // The response parses back to an offer we would accept as is.
        let back = negotiate(&DeflateConfig::default(), &[&got]).expect("accepted");
        assert_eq!(back, announce(n(true, true, 10, 9), true, true));
        assert_eq!(back.response_header(), got);
        // Announced at 15.
        assert_eq!(
            announce(n(false, false, 15, 15), true, true).response_header(),
            "permessage-deflate; server_max_window_bits=15; client_max_window_bits=15"
        );
    }

    #[test]
    fn config_validation_and_clamping() {
        assert_eq!(DeflateConfig::default().validate(), Ok(()));
        let bad = |f: fn(&mut DeflateConfig)| {
            let mut c = DeflateConfig::default();
            f(&mut c);
            c.validate()
        };
        assert_eq!(
            bad(|c| c.server_max_window_bits = 8),
            Err(DeflateConfigError::ServerMaxWindowBits(8))
        );
        assert_eq!(
            bad(|c| c.server_max_window_bits = 16),
            Err(DeflateConfigError::ServerMaxWindowBits(16))
        );
        assert_eq!(
            bad(|c| c.client_max_window_bits = 7),
            Err(DeflateConfigError::ClientMaxWindowBits(7))
        );
        assert_eq!(bad(|c| c.level = 10), Err(DeflateConfigError::Level(10)));
        assert_eq!(bad(|c| c.client_max_window_bits = 8), Ok(()));
        // Out-of-range values are clamped by negotiation, never a panic.
        let config = DeflateConfig {
            server_max_window_bits: 0,
            client_max_window_bits: 200,
            level: 99,
            ..DeflateConfig::default()
        };
        let got =
            neg_with(&config, &["permessage-deflate; client_max_window_bits"]).expect("accepted");
        assert_eq!(got, n(false, false, 9, 15));
        let mut d = MessageDeflater::new(&got, &config);
        let mut i = MessageInflater::new(&got);
        let msg = corpus(0, 1000);
        assert_eq!(inflate(&mut i, &deflate(&mut d, &msg)), Ok(msg));
    }

    #[test]
    fn defaults_are_as_documented() {
        let c = DeflateConfig::default();
        assert!(c.enabled);
        assert!(!c.server_no_context_takeover && !c.client_no_context_takeover);
        assert_eq!(
            (c.server_max_window_bits, c.client_max_window_bits),
            (15, 15)
        );
        assert_eq!((c.level, c.min_size), (1, 64));
        let d = MessageDeflater::new(&Negotiated::default(), &c);
        assert!(!d.should_compress(63));
        assert!(d.should_compress(64));
    }

    // -- RFC 7692 negotiation rules, one test each ----------------------------

    /// The response's parameters as `(name, value)`, checking it is one
    /// `permessage-deflate` element.
    fn answer_params(header: &str) -> Vec<(String, Option<String>)> {
        let offers = parse_offers(&[header]).expect("response parses");
        assert_eq!(offers.len(), 1, "{header}");
        assert_eq!(offers[0].name, EXTENSION_NAME, "{header}");
        offers[0]
            .params
            .iter()
            .map(|p| (p.name.clone(), p.value.clone()))
            .collect()
    }

    /// The value of `name` in `header`: `None` if absent, `Some(None)` if
    /// present without a value.
    fn answer(header: &str, name: &str) -> Option<Option<String>> {
        answer_params(header)
            .into_iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v)
    }

    fn answer_to(config: &DeflateConfig, offer: &str) -> String {
        neg_with(config, &[offer])
            .expect("accepted")
            .response_header()
    }

    #[test]
    fn section_5_acceptance_names_the_extension() {
        // §5: "To accept the use of an offered PMCE, a server MUST include
        // the extension name of the PMCE in the "Sec-WebSocket-Extensions"
        // header field of its opening handshake of the WebSocket connection."
        for offer in [
            "permessage-deflate",
            "x-foo, permessage-deflate; server_max_window_bits=12",
            "PERMESSAGE-DEFLATE",
        ] {
            let header = answer_to(&DeflateConfig::default(), offer);
            assert!(header.starts_with("permessage-deflate"), "{header}");
        }
    }

    #[test]
    fn section_5_preceding_element_has_higher_preference() {
        // §5: "The order of elements is important as it specifies the
        // client's preference. An element preceding another element has
        // higher preference. It is recommended that a server accepts PMCEs
        // with higher preference if the server supports them."
        let got = neg(&[
            "permessage-deflate; server_max_window_bits=8",
            "permessage-deflate; client_no_context_takeover, permessage-deflate",
        ])
        .expect("accepted");
        assert_eq!(got, n(false, true, 15, 15));
    }

    #[test]
    fn section_7_1_3_response_is_one_element() {
        // §7.1.3: "The server can accept "permessage-deflate" by picking any
        // supported one from the listed offers." One offer is picked, so the
        // response is one element: several would contradict each other.
        let header = answer_to(
            &DeflateConfig::default(),
            "permessage-deflate; client_max_window_bits, permessage-deflate, x-foo",
        );
        answer_params(&header);
        assert!(!header.contains(','), "{header}");
    }

    #[test]
    fn section_7_decline_unknown_parameter() {
        // §7: "A server MUST decline an extension negotiation offer for this
        // extension if any of the following conditions are met: The
        // negotiation offer contains an extension parameter not defined for
        // use in an offer."
        for offer in [
            "permessage-deflate; foo",
            "permessage-deflate; foo=1",
            "permessage-deflate; client_no_context_takeover; x",
            // Defined for other extensions only.
            "permessage-deflate; max_window_bits=10",
        ] {
            assert_eq!(neg(&[offer]), None, "{offer}");
        }
    }

    #[test]
    fn section_7_decline_invalid_value() {
        // §7: "The negotiation offer contains an extension parameter with an
        // invalid value."
        for offer in [
            "permessage-deflate; server_no_context_takeover=x",
            "permessage-deflate; client_no_context_takeover=\"\"",
            "permessage-deflate; server_max_window_bits",
            "permessage-deflate; server_max_window_bits=16",
            "permessage-deflate; client_max_window_bits=7",
            "permessage-deflate; client_max_window_bits=x",
        ] {
            assert_eq!(neg(&[offer]), None, "{offer}");
        }
    }

    #[test]
    fn section_7_decline_duplicate_parameters() {
        // §7: "The negotiation offer contains multiple extension parameters
        // with the same name."
        for p in [
            "server_no_context_takeover",
            "client_no_context_takeover",
            "server_max_window_bits=10",
            "client_max_window_bits",
            "client_max_window_bits=10",
        ] {
            let offer = format!("permessage-deflate; {p}; {p}");
            assert_eq!(neg(&[&offer]), None, "{offer}");
        }
        // Names compare case-insensitively, so these are duplicates too.
        assert_eq!(
            neg(&["permessage-deflate; client_max_window_bits; Client_Max_Window_Bits=9"]),
            None
        );
    }

    #[test]
    fn section_7_decline_unsupported_configuration() {
        // §7: "The server doesn't support the offered configuration." zlib
        // cannot compress with an 8-bit window; and a server with
        // compression disabled supports nothing.
        assert_eq!(neg(&["permessage-deflate; server_max_window_bits=8"]), None);
        let off = DeflateConfig {
            enabled: false,
            ..DeflateConfig::default()
        };
        assert_eq!(neg_with(&off, &["permessage-deflate"]), None);
    }

    #[test]
    fn section_7_response_has_only_defined_unique_valid_parameters() {
        // §7: "A client MUST _Fail the WebSocket Connection_ if the peer
        // server accepted an extension negotiation offer for this extension
        // with an extension negotiation response meeting any of the following
        // conditions: The negotiation response contains an extension
        // parameter not defined for use in a response. The negotiation
        // response contains an extension parameter with an invalid value.
        // The negotiation response contains multiple extension parameters
        // with the same name."
        let config = DeflateConfig {
            server_no_context_takeover: true,
            client_no_context_takeover: true,
            server_max_window_bits: 10,
            client_max_window_bits: 9,
            ..DeflateConfig::default()
        };
        let header = answer_to(
            &config,
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; \
             server_max_window_bits=12; client_max_window_bits=11",
        );
        let params = answer_params(&header);
        assert_eq!(params.len(), 4, "{header}");
        let mut names: Vec<&str> = params.iter().map(|(n, _)| n.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), 4, "{header}");
        for (name, value) in &params {
            match name.as_str() {
                SERVER_NO_CONTEXT_TAKEOVER | CLIENT_NO_CONTEXT_TAKEOVER => {
                    assert_eq!(value, &None, "{header}");
                }
                SERVER_MAX_WINDOW_BITS | CLIENT_MAX_WINDOW_BITS => {
                    assert!(value.as_deref().and_then(parse_window_bits).is_some());
                }
                _ => panic!("{header}"),
            }
        }
    }

    #[test]
    fn section_7_1_1_1_offer_has_no_value() {
        // §7.1.1.1: "A client MAY include the "server_no_context_takeover"
        // extension parameter in an extension negotiation offer. This
        // extension parameter has no value."
        assert_eq!(
            neg(&["permessage-deflate; server_no_context_takeover=true"]),
            None
        );
        assert_eq!(
            neg(&["permessage-deflate; server_no_context_takeover"]),
            Some(n(true, false, 15, 15))
        );
    }

    #[test]
    fn section_7_1_1_1_accepting_includes_server_no_context_takeover() {
        // §7.1.1.1: "A server accepts an extension negotiation offer that
        // includes the "server_no_context_takeover" extension parameter by
        // including the "server_no_context_takeover" extension parameter in
        // the corresponding extension negotiation response to send back to
        // the client."
        let got = neg(&["permessage-deflate; server_no_context_takeover"]).expect("accepted");
        assert!(got.server_no_context_takeover, "the deflater resets");
        let header = got.response_header();
        assert_eq!(answer(&header, SERVER_NO_CONTEXT_TAKEOVER), Some(None));
    }

    #[test]
    fn section_7_1_1_1_response_has_no_value() {
        // §7.1.1.1: "The "server_no_context_takeover" extension parameter in
        // an extension negotiation response has no value."
        let header = n(true, false, 15, 15).response_header();
        assert_eq!(answer(&header, SERVER_NO_CONTEXT_TAKEOVER), Some(None));
    }

    #[test]
    fn section_7_1_1_1_server_may_include_it_unasked() {
        // §7.1.1.1: "A server MAY include the "server_no_context_takeover"
        // extension parameter in an extension negotiation response even if
        // the extension negotiation offer being accepted by the extension
        // negotiation response didn't include the
        // "server_no_context_takeover" extension parameter."
        let config = DeflateConfig {
            server_no_context_takeover: true,
            ..DeflateConfig::default()
        };
        let header = answer_to(&config, "permessage-deflate");
        assert_eq!(answer(&header, SERVER_NO_CONTEXT_TAKEOVER), Some(None));
        // Not configured and not asked: not announced.
        let header = answer_to(&DeflateConfig::default(), "permessage-deflate");
        assert_eq!(answer(&header, SERVER_NO_CONTEXT_TAKEOVER), None);
    }

    #[test]
    fn section_7_1_1_2_offer_has_no_value() {
        // §7.1.1.2: "A client MAY include the "client_no_context_takeover"
        // extension parameter in an extension negotiation offer. This
        // extension parameter has no value."
        assert_eq!(
            neg(&["permessage-deflate; client_no_context_takeover=1"]),
            None
        );
        assert_eq!(
            neg(&["permessage-deflate; client_no_context_takeover"]),
            Some(n(false, true, 15, 15))
        );
    }

    #[test]
    fn section_7_1_1_2_server_may_include_client_no_context_takeover() {
        // §7.1.1.2: "A server MAY include the "client_no_context_takeover"
        // extension parameter in an extension negotiation response. If the
        // received extension negotiation offer includes the
        // "client_no_context_takeover" extension parameter, the server may
        // either ignore the parameter or use the parameter to avoid taking
        // over the LZ77 sliding window unnecessarily by including the
        // "client_no_context_takeover" extension parameter in the
        // corresponding extension negotiation response to the offer."
        // We use it (so the inflater can free its state between messages).
        let got = neg(&["permessage-deflate; client_no_context_takeover"]).expect("accepted");
        assert!(got.client_no_context_takeover);
        assert_eq!(
            answer(&got.response_header(), CLIENT_NO_CONTEXT_TAKEOVER),
            Some(None)
        );
        // And include it unasked when configured.
        let config = DeflateConfig {
            client_no_context_takeover: true,
            ..DeflateConfig::default()
        };
        let header = answer_to(&config, "permessage-deflate");
        assert_eq!(answer(&header, CLIENT_NO_CONTEXT_TAKEOVER), Some(None));
    }

    #[test]
    fn section_7_1_1_2_response_has_no_value() {
        // §7.1.1.2: "The "client_no_context_takeover" extension parameter in
        // an extension negotiation response has no value."
        let header = n(false, true, 15, 15).response_header();
        assert_eq!(answer(&header, CLIENT_NO_CONTEXT_TAKEOVER), Some(None));
    }

    #[test]
    fn section_7_1_2_1_offer_value_is_8_to_15_without_leading_zeroes() {
        // §7.1.2.1: "This parameter has a decimal integer value without
        // leading zeroes between 8 to 15, inclusive, indicating the base-2
        // logarithm of the LZ77 sliding window size, and MUST conform to the
        // ABNF below. server-max-window-bits = 1*DIGIT"
        for v in ["", "7", "16", "09", "015", "0", "1a", "+9", "9.0", "\"\""] {
            let offer = format!("permessage-deflate; server_max_window_bits={v}");
            assert_eq!(neg(&[&offer]), None, "{offer}");
        }
        assert_eq!(neg(&["permessage-deflate; server_max_window_bits"]), None);
        for bits in 9..=15 {
            let offer = format!("permessage-deflate; server_max_window_bits={bits}");
            assert!(neg(&[&offer]).is_some(), "{offer}");
        }
    }

    #[test]
    fn section_7_1_2_1_server_declines_what_it_does_not_support() {
        // §7.1.2.1: "A server declines an extension negotiation offer with
        // this parameter if the server doesn't support it." We support 9..=15
        // but cannot compress with an 8-bit window.
        assert_eq!(neg(&["permessage-deflate; server_max_window_bits=8"]), None);
    }

    #[test]
    fn section_7_1_2_1_accepting_includes_server_max_window_bits() {
        // §7.1.2.1: "A server accepts an extension negotiation offer with this
        // parameter by including the "server_max_window_bits" extension
        // parameter in the extension negotiation response to send back to
        // the client with the same or smaller value as the offer."
        // The bug this pins: an offer of 15 was answered without it.
        for offer in [
            "permessage-deflate; server_max_window_bits=15",
            "permessage-deflate; server_max_window_bits=15; client_max_window_bits=15",
            "permessage-deflate; server_max_window_bits=15; client_max_window_bits",
        ] {
            let header = answer_to(&DeflateConfig::default(), offer);
            assert_eq!(
                answer(&header, SERVER_MAX_WINDOW_BITS),
                Some(Some("15".into())),
                "{offer}: {header}"
            );
        }
        for cfg in 9..=15 {
            let config = DeflateConfig {
                server_max_window_bits: cfg,
                ..DeflateConfig::default()
            };
            for offered in 9..=15u8 {
                let header = answer_to(
                    &config,
                    &format!("permessage-deflate; server_max_window_bits={offered}"),
                );
                let value = answer(&header, SERVER_MAX_WINDOW_BITS)
                    .flatten()
                    .and_then(|v| parse_window_bits(&v))
                    .expect("carries a valid value");
                assert!(value <= offered, "{header}");
                assert_eq!(value, offered.min(cfg), "{header}");
            }
        }
    }

    #[test]
    fn section_7_1_2_1_response_value_is_8_to_15_without_leading_zeroes() {
        // §7.1.2.1: "The "server_max_window_bits" extension parameter in an
        // extension negotiation response has a decimal integer value without
        // leading zeroes between 8 to 15, inclusive".
        for bits in 9..=15 {
            let header = announce(n(false, false, bits, 15), true, false).response_header();
            assert_eq!(
                answer(&header, SERVER_MAX_WINDOW_BITS),
                Some(Some(bits.to_string()))
            );
        }
    }

    #[test]
    fn section_7_1_2_1_server_may_include_it_unasked() {
        // §7.1.2.1: "A server MAY include the "server_max_window_bits"
        // extension parameter in an extension negotiation response even if
        // the extension negotiation offer being accepted by the response
        // didn't include the "server_max_window_bits" extension parameter."
        let config = DeflateConfig {
            server_max_window_bits: 11,
            ..DeflateConfig::default()
        };
        let header = answer_to(&config, "permessage-deflate");
        assert_eq!(
            answer(&header, SERVER_MAX_WINDOW_BITS),
            Some(Some("11".into()))
        );
        // At 15 and not offered, nothing to say.
        let header = answer_to(&DeflateConfig::default(), "permessage-deflate");
        assert_eq!(answer(&header, SERVER_MAX_WINDOW_BITS), None);
    }

    #[test]
    fn section_7_1_2_2_offer_value_is_absent_or_8_to_15_without_leading_zeroes() {
        // §7.1.2.2: "This parameter has no value or a decimal integer value
        // without leading zeroes between 8 to 15 inclusive indicating the
        // base-2 logarithm of the LZ77 sliding window size. If a value is
        // specified for this parameter, the value MUST conform to the ABNF
        // below."
        for v in ["", "7", "16", "08", "015", "x", "\"\""] {
            let offer = format!("permessage-deflate; client_max_window_bits={v}");
            assert_eq!(neg(&[&offer]), None, "{offer}");
        }
        assert!(neg(&["permessage-deflate; client_max_window_bits"]).is_some());
        for bits in 8..=15 {
            let offer = format!("permessage-deflate; client_max_window_bits={bits}");
            assert!(neg(&[&offer]).is_some(), "{offer}");
        }
    }

    #[test]
    fn section_7_1_2_2_server_may_include_it_when_offered() {
        // §7.1.2.2: "If a received extension negotiation offer has the
        // "client_max_window_bits" extension parameter, the server MAY
        // include the "client_max_window_bits" extension parameter in the
        // corresponding extension negotiation response to the offer."
        let config = DeflateConfig {
            client_max_window_bits: 10,
            ..DeflateConfig::default()
        };
        let header = answer_to(&config, "permessage-deflate; client_max_window_bits");
        assert_eq!(
            answer(&header, CLIENT_MAX_WINDOW_BITS),
            Some(Some("10".into()))
        );
        // At 15 and offered without a value, we leave it out.
        let header = answer_to(
            &DeflateConfig::default(),
            "permessage-deflate; client_max_window_bits",
        );
        assert_eq!(answer(&header, CLIENT_MAX_WINDOW_BITS), None);
    }

    #[test]
    fn section_7_1_2_2_answer_at_most_the_offered_value() {
        // §7.1.2.2: "If the "client_max_window_bits" extension parameter in a
        // received extension negotiation offer has a value, the server may
        // either ignore this value or use this value to avoid allocating an
        // unnecessarily big LZ77 sliding window by including the
        // "client_max_window_bits" extension parameter in the corresponding
        // extension negotiation response to the offer with a value equal to
        // or smaller than the received value."
        for cfg in 8..=15 {
            let config = DeflateConfig {
                client_max_window_bits: cfg,
                ..DeflateConfig::default()
            };
            for offered in 8..=15u8 {
                let header = answer_to(
                    &config,
                    &format!("permessage-deflate; client_max_window_bits={offered}"),
                );
                // Always answered explicitly, even at 15.
                let value = answer(&header, CLIENT_MAX_WINDOW_BITS)
                    .flatten()
                    .and_then(|v| parse_window_bits(&v))
                    .expect("carries a valid value");
                assert!(value <= offered, "{header}");
            }
        }
    }

    #[test]
    fn section_7_1_2_2_response_value_is_8_to_15_without_leading_zeroes() {
        // §7.1.2.2: "The "client_max_window_bits" extension parameter in an
        // extension negotiation response has a decimal integer value without
        // leading zeroes between 8 to 15 inclusive indicating the base-2
        // logarithm of the LZ77 sliding window size".
        for bits in 8..=15 {
            let header = announce(n(false, false, 15, bits), false, true).response_header();
            assert_eq!(
                answer(&header, CLIENT_MAX_WINDOW_BITS),
                Some(Some(bits.to_string()))
            );
        }
    }

    #[test]
    fn section_7_1_2_2_must_not_include_it_unless_offered() {
        // §7.1.2.2: "If a received extension negotiation offer doesn't have
        // the "client_max_window_bits" extension parameter, the
        // corresponding extension negotiation response to the offer MUST NOT
        // include the "client_max_window_bits" extension parameter."
        for cfg in 8..=15 {
            let config = DeflateConfig {
                client_max_window_bits: cfg,
                ..DeflateConfig::default()
            };
            for offer in [
                "permessage-deflate",
                "permessage-deflate; server_max_window_bits=10",
                "permessage-deflate; client_no_context_takeover",
            ] {
                let got = neg_with(&config, &[offer]).expect("accepted");
                // The inflater takes any window anyway.
                assert_eq!(got.client_max_window_bits, 15);
                let header = got.response_header();
                assert_eq!(answer(&header, CLIENT_MAX_WINDOW_BITS), None, "{header}");
            }
        }
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
        // by ~5.5 %.
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

        #[test]
        fn header_parser_never_panics(h in "\\PC{0,60}", h2 in "[a-z;=, \"\\\\]{0,40}") {
            let _ = parse_offers(&[h.as_str(), h2.as_str()]);
            let _ = negotiate(&DeflateConfig::default(), &[h, h2]);
        }

        #[test]
        fn negotiated_answer_is_consistent(
            snct in any::<bool>(),
            cnct in any::<bool>(),
            sbits in proptest::option::of(8u8..=15),
            cbits in proptest::option::of(proptest::option::of(8u8..=15)),
            cfg_s in 9u8..=15,
            cfg_c in 8u8..=15,
        ) {
            let shape = OfferShape { snct, cnct, sbits, cbits };
            let config = DeflateConfig {
                server_max_window_bits: cfg_s,
                client_max_window_bits: cfg_c,
                ..DeflateConfig::default()
            };
            let got = negotiate(&config, &[shape.header()]);
            if sbits == Some(8) {
                prop_assert_eq!(got, None);
                return Ok(());
            }
            let got = got.expect("accepted");
            prop_assert!(got.server_max_window_bits <= cfg_s);
            prop_assert!(got.server_max_window_bits <= sbits.unwrap_or(15));
            prop_assert!(got.server_max_window_bits >= 9);
            prop_assert_eq!(got.server_no_context_takeover, snct);
            prop_assert_eq!(got.client_no_context_takeover, cnct);
            if cbits.is_none() {
                prop_assert_eq!(got.client_max_window_bits, 15);
            } else {
                // 8 is imposed only on clients that offered 8 themselves.
                prop_assert!(got.client_max_window_bits <= cfg_c.max(9));
            }
            if let Some(Some(b)) = cbits {
                prop_assert!(got.client_max_window_bits <= b);
            }
        }

        #[test]
        fn every_answer_is_a_valid_response(
            shape in offer_shape(),
            cfg_snct in any::<bool>(),
            cfg_cnct in any::<bool>(),
            cfg_s in 9u8..=15,
            cfg_c in 8u8..=15,
        ) {
            let config = DeflateConfig {
                server_no_context_takeover: cfg_snct,
                client_no_context_takeover: cfg_cnct,
                server_max_window_bits: cfg_s,
                client_max_window_bits: cfg_c,
                ..DeflateConfig::default()
            };
            check_answer(&shape, &config).map_err(TestCaseError::fail)?;
        }
    }

    /// The parameters of one `permessage-deflate` offer: both flags,
    /// `server_max_window_bits` (absent or a value), `client_max_window_bits`
    /// (absent, without a value, or a value).
    #[derive(Clone, Copy, Debug)]
    struct OfferShape {
        snct: bool,
        cnct: bool,
        sbits: Option<u8>,
        cbits: Option<Option<u8>>,
    }

    impl OfferShape {
        fn header(&self) -> String {
            let mut h = String::from("permessage-deflate");
            if self.snct {
                h.push_str("; server_no_context_takeover");
            }
            if self.cnct {
                h.push_str("; client_no_context_takeover");
            }
            if let Some(b) = self.sbits {
                h.push_str(&format!("; server_max_window_bits={b}"));
            }
            match self.cbits {
                Some(Some(b)) => h.push_str(&format!("; client_max_window_bits={b}")),
                Some(None) => h.push_str("; client_max_window_bits"),
                None => {}
            }
            h
        }
    }

    /// Every offer we accept: server bits absent or 9..=15 (8 is declined),
    /// client bits absent, valueless or 8..=15.
    fn offer_shape() -> impl Strategy<Value = OfferShape> {
        (
            any::<bool>(),
            any::<bool>(),
            proptest::option::of(9u8..=15),
            proptest::option::of(proptest::option::of(8u8..=15)),
        )
            .prop_map(|(snct, cnct, sbits, cbits)| OfferShape {
                snct,
                cnct,
                sbits,
                cbits,
            })
    }

    /// Negotiates `shape` under `config` and checks the response as a client
    /// that sent it would (RFC 7692 §7, §7.1.1, §7.1.2), and that it says
    /// what the server will do.
    fn check_answer(shape: &OfferShape, config: &DeflateConfig) -> Result<(), String> {
        let offer = shape.header();
        let got = negotiate(config, &[&offer]).ok_or(format!("{offer}: declined"))?;
        let header = got.response_header();
        let fail = |what: &str| Err(format!("{offer} ({config:?}) -> {header}: {what}"));
        let offers = match parse_offers(&[&header]) {
            Ok(o) => o,
            Err(_) => return fail("does not parse"),
        };
        let [answer] = offers.as_slice() else {
            return fail("not exactly one element");
        };
        if answer.name != EXTENSION_NAME {
            return fail("not permessage-deflate");
        }
        let mut seen: Vec<&str> = Vec::new();
        let (mut snct, mut cnct) = (false, false);
        let (mut sbits, mut cbits) = (None, None);
        for p in &answer.params {
            if seen.contains(&p.name.as_str()) {
                return fail("duplicate parameter");
            }
            seen.push(&p.name);
            let bits = || p.value.as_deref().and_then(parse_window_bits);
            match p.name.as_str() {
                SERVER_NO_CONTEXT_TAKEOVER if p.value.is_none() => snct = true,
                CLIENT_NO_CONTEXT_TAKEOVER if p.value.is_none() => cnct = true,
                SERVER_MAX_WINDOW_BITS if bits().is_some() => sbits = bits(),
                CLIENT_MAX_WINDOW_BITS if bits().is_some() => cbits = bits(),
                _ => return fail("unknown parameter or invalid value"),
            }
        }
        // §7.1.1.1: accepted means included; the server may add it unasked.
        if snct != (shape.snct || config.server_no_context_takeover)
            || snct != got.server_no_context_takeover
        {
            return fail("server_no_context_takeover");
        }
        // §7.1.1.2: the server may include it (we do when asked or configured).
        if cnct != (shape.cnct || config.client_no_context_takeover)
            || cnct != got.client_no_context_takeover
        {
            return fail("client_no_context_takeover");
        }
        // §7.1.2.1: present when offered, "with the same or smaller value";
        // present unasked only to announce a configured window below 15.
        match (shape.sbits, sbits) {
            (Some(_), None) => return fail("offered server_max_window_bits not answered"),
            (Some(o), Some(a)) if a > o => return fail("server_max_window_bits above the offer"),
            (None, Some(15)) => return fail("server_max_window_bits=15 unasked"),
            (None, None) if config.server_max_window_bits < 15 => {
                return fail("configured server window not announced");
            }
            _ => {}
        }
        if sbits.unwrap_or(15) > config.server_max_window_bits
            || sbits.unwrap_or(15) != got.server_max_window_bits
            || got.server_max_window_bits < 9
        {
            return fail("server window");
        }
        // §7.1.2.2: never unless offered; at most the offered value.
        match (shape.cbits, cbits) {
            (None, Some(_)) => return fail("client_max_window_bits not offered"),
            (Some(Some(o)), Some(a)) if a > o => {
                return fail("client_max_window_bits above the offer");
            }
            (Some(Some(_)), None) => return fail("offered value not answered explicitly"),
            (Some(None), None) if config.client_max_window_bits.max(9) < 15 => {
                return fail("configured client window not imposed");
            }
            _ => {}
        }
        // 8 is imposed only on a client that offered 8 itself.
        if cbits.unwrap_or(15) != got.client_max_window_bits
            || cbits.is_some_and(|c| c > config.client_max_window_bits.max(9))
        {
            return fail("client window");
        }
        Ok(())
    }

    #[test]
    fn every_offer_and_config_gets_a_valid_response() {
        // The proptest above, exhaustively: 4 flag pairs × 8 server windows ×
        // 10 client windows offered, 4 flag pairs × 7 × 8 windows configured.
        let mut checked = 0;
        for (snct, cnct, cfg_snct, cfg_cnct) in
            (0..16).map(|k| (k & 1 != 0, k & 2 != 0, k & 4 != 0, k & 8 != 0))
        {
            for sbits in std::iter::once(None).chain((9..=15).map(Some)) {
                for cbits in [None, Some(None)]
                    .into_iter()
                    .chain((8..=15).map(|b| Some(Some(b))))
                {
                    for cfg_s in 9..=15 {
                        for cfg_c in 8..=15 {
                            let shape = OfferShape {
                                snct,
                                cnct,
                                sbits,
                                cbits,
                            };
                            let config = DeflateConfig {
                                server_no_context_takeover: cfg_snct,
                                client_no_context_takeover: cfg_cnct,
                                server_max_window_bits: cfg_s,
                                client_max_window_bits: cfg_c,
                                ..DeflateConfig::default()
                            };
                            if let Err(e) = check_answer(&shape, &config) {
                                panic!("{e}");
                            }
                            checked += 1;
                        }
                    }
                }
            }
        }
        assert_eq!(checked, 16 * 8 * 10 * 7 * 8);
    }
}
