//! `permessage-deflate` negotiation (RFC 7692 §5, §7.1): reading the
//! client's `Sec-WebSocket-Extensions` offers, choosing one, and the
//! response that says what was agreed.

use std::borrow::Cow;

use super::{DeflateConfig, MAX_WINDOW_BITS, MIN_DEFLATE_WINDOW_BITS, MIN_WINDOW_BITS};
use crate::protocol::header::{self, HeaderError};

/// The extension token, as it appears in `Sec-WebSocket-Extensions`.
pub const EXTENSION_NAME: &str = "permessage-deflate";

const SERVER_NO_CONTEXT_TAKEOVER: &str = "server_no_context_takeover";
const CLIENT_NO_CONTEXT_TAKEOVER: &str = "client_no_context_takeover";
const SERVER_MAX_WINDOW_BITS: &str = "server_max_window_bits";
const CLIENT_MAX_WINDOW_BITS: &str = "client_max_window_bits";

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
pub use crate::protocol::header::HeaderErrorKind as ExtensionHeaderErrorKind;

/// Parses `Sec-WebSocket-Extensions` header values into extension offers, in
/// order, with the shared header grammar ([`header`]): several header
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

#[cfg(test)]
mod tests {
    use super::super::test_support::{announce, n};
    use super::*;
    use proptest::prelude::*;

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

    // -- properties ---------------------------------------------------------

    proptest! {
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

    #[test]
    fn out_of_range_config_is_clamped() {
        // Negotiation clamps what `validate` would refuse, never a panic.
        let config = DeflateConfig {
            server_max_window_bits: 0,
            client_max_window_bits: 200,
            level: 99,
            ..DeflateConfig::default()
        };
        let got =
            neg_with(&config, &["permessage-deflate; client_max_window_bits"]).expect("accepted");
        assert_eq!(got, n(false, false, 9, 15));
    }
}
