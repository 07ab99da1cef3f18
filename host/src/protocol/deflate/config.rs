//! What the server is willing to negotiate for `permessage-deflate`.

use super::{MAX_WINDOW_BITS, MIN_DEFLATE_WINDOW_BITS, MIN_WINDOW_BITS};
#[cfg(doc)]
use super::{MessageDeflater, MessageInflater};

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
    /// announced when set). Lets [`MessageInflater::release`] free the
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
    /// compresses nearly as well as 6 for a small fraction of the CPU
    /// (figures in `host/benches/README.md`), and with context takeover most
    /// of the gain comes from the shared window anyway. Use 2 or more for
    /// mostly incompressible payloads: level 1 expands those a little.
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

    /// `server_max_window_bits` clamped to 9..=15.
    pub(super) fn server_bits(&self) -> u8 {
        self.server_max_window_bits
            .clamp(MIN_DEFLATE_WINDOW_BITS, MAX_WINDOW_BITS)
    }

    /// `client_max_window_bits` clamped to 8..=15.
    pub(super) fn client_bits(&self) -> u8 {
        self.client_max_window_bits
            .clamp(MIN_WINDOW_BITS, MAX_WINDOW_BITS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_checks_every_range() {
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
    }

    #[test]
    fn out_of_range_windows_are_clamped() {
        let config = DeflateConfig {
            server_max_window_bits: 0,
            client_max_window_bits: 200,
            ..DeflateConfig::default()
        };
        assert_eq!((config.server_bits(), config.client_bits()), (9, 15));
        let config = DeflateConfig {
            server_max_window_bits: 8,
            client_max_window_bits: 0,
            ..DeflateConfig::default()
        };
        assert_eq!((config.server_bits(), config.client_bits()), (9, 8));
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
    }
}
