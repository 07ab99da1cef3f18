//! The header-value grammar of the opening handshake, in one place (RFC 7230):
//!
//! - lists, `#rule` (§7): comma-separated elements, optional whitespace
//!   around them, empty elements skipped ("a recipient MUST parse and ignore
//!   a reasonable number of empty list elements"); a comma inside a
//!   quoted-string does not separate ([`list`], [`list_bytes`],
//!   [`list_contains`]);
//! - tokens and quoted-strings (§3.2.6) ([`is_token`]);
//! - elements with `;`-parameters, `token *( OWS ";" OWS token [ OWS "=" OWS
//!   ( token / quoted-string ) ] )`, the `Sec-WebSocket-Extensions` grammar
//!   of RFC 6455 §9.1 (whitespace around `=` tolerated) ([`element`]).
//!
//! [`super::handshake`] reads `Connection`, `Upgrade`,
//! `Sec-WebSocket-Protocol` and `Sec-WebSocket-Extensions` with it, and
//! [`super::deflate`] reads extension offers with it.

use std::borrow::Cow;

/// `tchar` (RFC 7230 §3.2.6): `!#$%&'*+-.^_`|~`, digits and letters.
pub fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// `token = 1*tchar` (RFC 7230 §3.2.6).
pub fn is_token(s: &[u8]) -> bool {
    !s.is_empty() && s.iter().all(|&b| is_tchar(b))
}

/// `qdtext = HTAB / SP / %x21 / %x23-5B / %x5D-7E / obs-text` (RFC 7230
/// §3.2.6).
fn is_qdtext(b: u8) -> bool {
    matches!(b, b'\t' | b' ' | 0x21 | 0x23..=0x5b | 0x5d..=0x7e | 0x80..=0xff)
}

/// The second byte of `quoted-pair = "\" ( HTAB / SP / VCHAR / obs-text )`.
fn is_quotable(b: u8) -> bool {
    b == b'\t' || (b >= 0x20 && b != 0x7f)
}

/// `OWS = *( SP / HTAB )` (RFC 7230 §3.2.3).
fn is_ows(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

// ---------------------------------------------------------------------------
// Lists (RFC 7230 §7)
// ---------------------------------------------------------------------------

/// The elements of a list header value (RFC 7230 §7), each with its byte
/// offset in `value`: split at commas outside quoted-strings, optional
/// whitespace trimmed, empty elements skipped.
///
/// Never fails: what an element must look like is the caller's business
/// (an unterminated quoted-string simply runs to the end of the value).
pub fn list_bytes(value: &[u8]) -> ListBytes<'_> {
    ListBytes { value, pos: 0 }
}

/// [`list_bytes`] over a `str`.
pub fn list(value: &str) -> impl Iterator<Item = (usize, &str)> {
    // Elements start and end at ASCII bytes, so these are char boundaries.
    list_bytes(value.as_bytes())
        .filter_map(move |(at, item)| Some((at, value.get(at..at.checked_add(item.len())?)?)))
}

/// Whether the list `value` has an element equal to `token`, ASCII
/// case-insensitively (`Connection: keep-alive, Upgrade` contains
/// `upgrade`).
pub fn list_contains(value: &[u8], token: &str) -> bool {
    list_bytes(value).any(|(_, item)| item.eq_ignore_ascii_case(token.as_bytes()))
}

/// The iterator of [`list_bytes`].
#[derive(Clone, Debug)]
pub struct ListBytes<'a> {
    value: &'a [u8],
    pos: usize,
}

impl<'a> Iterator for ListBytes<'a> {
    type Item = (usize, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        while self.pos < self.value.len() {
            let start = self.pos;
            let (mut quoted, mut escaped) = (false, false);
            while let Some(&b) = self.value.get(self.pos) {
                if escaped {
                    escaped = false;
                } else if quoted && b == b'\\' {
                    escaped = true;
                } else if b == b'"' {
                    quoted = !quoted;
                } else if b == b',' && !quoted {
                    break;
                }
                self.pos += 1;
            }
            let end = self.pos;
            // Step over the comma (if any).
            self.pos = self.pos.saturating_add(1);
            let raw = self.value.get(start..end).unwrap_or_default();
            let lead = raw.iter().take_while(|&&b| is_ows(b)).count();
            let trail = raw.iter().rev().take_while(|&&b| is_ows(b)).count();
            if lead < raw.len() {
                let item = raw.get(lead..raw.len() - trail).unwrap_or_default();
                return Some((start + lead, item));
            }
        }
        None
    }
}

// ---------------------------------------------------------------------------
// Elements with parameters (RFC 6455 §9.1)
// ---------------------------------------------------------------------------

/// A list element that does not follow the element grammar.
#[derive(thiserror::Error, Clone, Copy, Debug, PartialEq, Eq)]
#[error("{kind} at byte {offset}")]
pub struct HeaderError {
    /// Byte offset of the problem within the element given to [`element`].
    pub offset: usize,
    /// What was wrong.
    pub kind: HeaderErrorKind,
}

/// What was wrong in a [`HeaderError`].
#[derive(thiserror::Error, Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum HeaderErrorKind {
    /// A token (element or parameter name, or an unquoted value) was
    /// expected.
    #[error("expected a token")]
    ExpectedToken,
    /// A character that cannot appear here (e.g. a second token without a
    /// separator).
    #[error("unexpected character")]
    UnexpectedChar,
    /// A quoted-string without its closing quote.
    #[error("unterminated quoted string")]
    UnterminatedQuotedString,
    /// A control character inside a quoted-string.
    #[error("invalid character in quoted string")]
    InvalidQuotedChar,
}

/// One `name[=value]` parameter of an [`Element`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Param<'a> {
    /// The parameter token, as written.
    pub name: &'a str,
    /// The value, if any: a token, or a quoted-string's content with its
    /// quotes and escapes removed (not required to be a token here, though
    /// RFC 6455 §9.1 asks for it: callers check the values they use).
    pub value: Option<Cow<'a, str>>,
}

/// A list element `token *( OWS ";" OWS param )` whose name has been read;
/// its parameters are read by [`Element::params`].
#[derive(Clone, Debug)]
pub struct Element<'a> {
    /// The element's token, as written.
    pub name: &'a str,
    cursor: Cursor<'a>,
}

/// Reads the name of one list element (as [`list`] yields them): a token
/// followed by the end or by `;` (optional whitespace allowed before it).
/// The parameters are left to [`Element::params`], so a caller that only
/// needs the name does not fail on them.
pub fn element(item: &str) -> Result<Element<'_>, HeaderError> {
    let mut cursor = Cursor { src: item, pos: 0 };
    cursor.skip_ows();
    let name = cursor.token()?;
    cursor.skip_ows();
    match cursor.peek() {
        None | Some(b';') => Ok(Element { name, cursor }),
        Some(_) => Err(cursor.err(HeaderErrorKind::UnexpectedChar)),
    }
}

impl<'a> Element<'a> {
    /// The parameters in order, duplicates kept; reading stops at the first
    /// error.
    pub fn params(&self) -> Params<'a> {
        Params {
            cursor: self.cursor.clone(),
            failed: false,
        }
    }
}

/// The iterator of [`Element::params`].
#[derive(Clone, Debug)]
pub struct Params<'a> {
    cursor: Cursor<'a>,
    failed: bool,
}

impl<'a> Iterator for Params<'a> {
    type Item = Result<Param<'a>, HeaderError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let item = self.cursor.param().transpose();
        self.failed = matches!(item, Some(Err(_)));
        item
    }
}

#[derive(Clone, Debug)]
struct Cursor<'a> {
    src: &'a str,
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn err(&self, kind: HeaderErrorKind) -> HeaderError {
        HeaderError {
            offset: self.pos,
            kind,
        }
    }

    fn peek(&self) -> Option<u8> {
        self.src.as_bytes().get(self.pos).copied()
    }

    fn skip_ows(&mut self) {
        while self.peek().is_some_and(is_ows) {
            self.pos += 1;
        }
    }

    fn token(&mut self) -> Result<&'a str, HeaderError> {
        let start = self.pos;
        while self.peek().is_some_and(is_tchar) {
            self.pos += 1;
        }
        // Only ASCII was skipped, so both ends are char boundaries.
        match self.src.get(start..self.pos) {
            Some(t) if !t.is_empty() => Ok(t),
            _ => Err(self.err(HeaderErrorKind::ExpectedToken)),
        }
    }

    /// A quoted-string starting at the opening quote.
    fn quoted_string(&mut self) -> Result<Cow<'a, str>, HeaderError> {
        self.pos += 1; // the opening quote
        let start = self.pos;
        let mut unescaped: Option<Vec<u8>> = None;
        loop {
            match self.peek() {
                None => return Err(self.err(HeaderErrorKind::UnterminatedQuotedString)),
                Some(b'"') => break,
                Some(b'\\') => {
                    let copy = unescaped.get_or_insert_with(|| {
                        self.src
                            .as_bytes()
                            .get(start..self.pos)
                            .unwrap_or_default()
                            .to_vec()
                    });
                    self.pos += 1;
                    match self.peek() {
                        None => return Err(self.err(HeaderErrorKind::UnterminatedQuotedString)),
                        Some(c) if is_quotable(c) => copy.push(c),
                        Some(_) => return Err(self.err(HeaderErrorKind::InvalidQuotedChar)),
                    }
                }
                Some(c) if is_qdtext(c) => {
                    if let Some(copy) = &mut unescaped {
                        copy.push(c);
                    }
                }
                Some(_) => return Err(self.err(HeaderErrorKind::InvalidQuotedChar)),
            }
            self.pos += 1;
        }
        let end = self.pos;
        self.pos += 1; // the closing quote
        match unescaped {
            // Quotes are ASCII, so both ends are char boundaries.
            None => Ok(Cow::Borrowed(self.src.get(start..end).unwrap_or_default())),
            // Whole UTF-8 sequences were copied (only ASCII backslashes
            // dropped), so this cannot fail.
            Some(bytes) => String::from_utf8(bytes)
                .map(Cow::Owned)
                .map_err(|_| self.err(HeaderErrorKind::InvalidQuotedChar)),
        }
    }

    /// The next `; name[=value]`, or `None` at the end.
    fn param(&mut self) -> Result<Option<Param<'a>>, HeaderError> {
        self.skip_ows();
        match self.peek() {
            None => return Ok(None),
            Some(b';') => self.pos += 1,
            Some(_) => return Err(self.err(HeaderErrorKind::UnexpectedChar)),
        }
        self.skip_ows();
        let name = self.token()?;
        self.skip_ows();
        let value = if self.peek() == Some(b'=') {
            self.pos += 1;
            self.skip_ows();
            Some(if self.peek() == Some(b'"') {
                self.quoted_string()?
            } else {
                Cow::Borrowed(self.token()?)
            })
        } else {
            None
        };
        Ok(Some(Param { name, value }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn items(value: &str) -> Vec<(usize, &str)> {
        list(value).collect()
    }

    /// An element's parameters as `(name, value)`, values owned.
    type Owned<'a> = Vec<(&'a str, Option<String>)>;

    /// An element's name and parameters.
    fn parse(item: &str) -> Result<(&str, Owned<'_>), HeaderError> {
        let e = element(item)?;
        let params = e
            .params()
            .map(|p| p.map(|p| (p.name, p.value.map(Cow::into_owned))))
            .collect::<Result<_, _>>()?;
        Ok((e.name, params))
    }

    #[test]
    fn tokens() {
        assert!(is_token(b"permessage-deflate"));
        assert!(is_token(b"!#$%&'*+-.^_`|~09azAZ"));
        for bad in [
            &b""[..],
            b"a b",
            b"a,b",
            b"a;b",
            b"a=b",
            b"\"a\"",
            b"a/b",
            b"\xc3\xa9",
        ] {
            assert!(!is_token(bad), "{bad:?}");
        }
        for b in 0..=255u8 {
            let delimiter = b"\"(),/:;<=>?@[\\]{}".contains(&b);
            let want = b.is_ascii_graphic() && !delimiter;
            assert_eq!(is_tchar(b), want, "{b:#x}");
        }
    }

    #[test]
    fn list_splits_at_commas_and_trims() {
        assert_eq!(items("a"), [(0, "a")]);
        assert_eq!(items("a,b"), [(0, "a"), (2, "b")]);
        assert_eq!(items(" a \t,\tb c , d"), [(1, "a"), (6, "b c"), (12, "d")]);
    }

    #[test]
    fn list_skips_empty_elements() {
        // RFC 7230 §7: "a recipient MUST parse and ignore a reasonable
        // number of empty list elements".
        assert_eq!(items(""), []);
        assert_eq!(items(" , ,, \t"), []);
        assert_eq!(items(",a,,b,"), [(1, "a"), (4, "b")]);
    }

    #[test]
    fn list_keeps_quoted_commas() {
        assert_eq!(items(r#"a; b="1,2", c"#), [(0, r#"a; b="1,2""#), (12, "c")]);
        // An escaped quote does not end the quoted-string.
        assert_eq!(items(r#"a="x\",y", z"#), [(0, r#"a="x\",y""#), (11, "z")]);
        // An unterminated quoted-string runs to the end.
        assert_eq!(items(r#"a, b="x, y"#), [(0, "a"), (3, r#"b="x, y"#)]);
        // A backslash outside quotes is an ordinary byte.
        assert_eq!(items(r"a\, b"), [(0, r"a\"), (4, "b")]);
    }

    #[test]
    fn list_handles_non_ascii() {
        assert_eq!(items("é, ü "), [(0, "é"), (4, "ü")]);
        let bytes: Vec<(usize, &[u8])> = list_bytes(b"\xff, a").collect();
        assert_eq!(bytes, [(0, &b"\xff"[..]), (3, b"a")]);
    }

    #[test]
    fn list_contains_is_case_insensitive() {
        assert!(list_contains(b"keep-alive, Upgrade", "upgrade"));
        assert!(list_contains(b"UPGRADE", "upgrade"));
        assert!(list_contains(b"h2c,  websocket ,", "websocket"));
        assert!(!list_contains(b"websockets", "websocket"));
        assert!(!list_contains(b"keep-alive upgrade", "upgrade"));
        assert!(!list_contains(b"", "upgrade"));
    }

    #[test]
    fn element_name_alone() {
        assert_eq!(
            parse("permessage-deflate"),
            Ok(("permessage-deflate", vec![]))
        );
        assert_eq!(parse(" x-foo \t"), Ok(("x-foo", vec![])));
    }

    #[test]
    fn element_params_with_and_without_values() {
        assert_eq!(
            parse("e; a; b=1;c = \"x y\" ;d= tok"),
            Ok((
                "e",
                vec![
                    ("a", None),
                    ("b", Some("1".into())),
                    ("c", Some("x y".into())),
                    ("d", Some("tok".into())),
                ]
            ))
        );
    }

    #[test]
    fn quoted_strings_unescape() {
        assert_eq!(
            parse(r#"a; b="1\0"; c="x,y;z=\"q\""; d="""#),
            Ok((
                "a",
                vec![
                    ("b", Some("10".into())),
                    ("c", Some("x,y;z=\"q\"".into())),
                    ("d", Some(String::new())),
                ]
            ))
        );
        // obs-text passes through, escaped or not.
        assert_eq!(
            parse("a; b=\"é\\é\""),
            Ok(("a", vec![("b", Some("éé".into()))]))
        );
        // Without escapes the value borrows from the input.
        let e = element("a; b=\"plain\"").expect("parses");
        let p = e.params().next().expect("one").expect("valid");
        assert!(matches!(p.value, Some(Cow::Borrowed("plain"))));
    }

    #[test]
    fn element_name_is_read_even_if_params_are_bad() {
        let e = element("x-foo; a b").expect("the name is fine");
        assert_eq!(e.name, "x-foo");
        let got: Vec<_> = e.params().collect();
        assert_eq!(
            got,
            [
                Ok(Param {
                    name: "a",
                    value: None
                }),
                Err(HeaderError {
                    offset: 9,
                    kind: HeaderErrorKind::UnexpectedChar
                })
            ]
        );
    }

    #[test]
    fn malformed_elements() {
        use HeaderErrorKind::*;
        let cases: &[(&str, usize, HeaderErrorKind)] = &[
            ("", 0, ExpectedToken),
            ("; a", 0, ExpectedToken),
            ("a b", 2, UnexpectedChar),
            ("a, b", 1, UnexpectedChar),
            ("a;", 2, ExpectedToken),
            ("a;;b", 2, ExpectedToken),
            ("a; =1", 3, ExpectedToken),
            ("a; b=", 5, ExpectedToken),
            ("a; b==1", 5, ExpectedToken),
            ("a; b=\"1", 7, UnterminatedQuotedString),
            ("a; b=\"1\\", 8, UnterminatedQuotedString),
            ("a; b=\"\u{1}\"", 6, InvalidQuotedChar),
            ("a; b=\"\\\u{7f}\"", 7, InvalidQuotedChar),
            ("a; b=\"1\"x", 8, UnexpectedChar),
            ("(a)", 0, ExpectedToken),
            ("é", 0, ExpectedToken),
            ("a; b=1 2", 7, UnexpectedChar),
        ];
        for &(item, offset, kind) in cases {
            assert_eq!(parse(item), Err(HeaderError { offset, kind }), "{item:?}");
        }
    }

    #[test]
    fn error_messages() {
        let e = HeaderError {
            offset: 3,
            kind: HeaderErrorKind::ExpectedToken,
        };
        assert_eq!(e.to_string(), "expected a token at byte 3");
    }

    proptest! {
        #[test]
        fn list_items_are_trimmed_slices_of_the_value(v in "[a\" ,\t\\\\é;=]{0,40}") {
            let mut last_end = 0;
            for (at, item) in list(&v) {
                prop_assert!(at >= last_end);
                prop_assert_eq!(v.get(at..at + item.len()), Some(item));
                prop_assert!(!item.is_empty());
                prop_assert!(!item.starts_with([' ', '\t']) && !item.ends_with([' ', '\t']));
                last_end = at + item.len();
            }
        }

        #[test]
        fn token_lists_round_trip(tokens in proptest::collection::vec("[a-zA-Z0-9!#$%&'*+.^_`|~-]{1,8}", 0..6)) {
            let value = tokens.join(" ,\t");
            let got: Vec<&str> = list(&value).map(|(_, t)| t).collect();
            prop_assert_eq!(got, tokens.iter().map(String::as_str).collect::<Vec<_>>());
        }

        #[test]
        fn elements_never_panic(item in "\\PC{0,40}", item2 in "[a-z;=, \"\\\\\t]{0,40}") {
            for i in [item.as_str(), item2.as_str()] {
                if let Ok(e) = element(i) {
                    prop_assert!(is_token(e.name.as_bytes()));
                    for p in e.params() {
                        match p {
                            Ok(p) => prop_assert!(is_token(p.name.as_bytes())),
                            Err(err) => prop_assert!(err.offset <= i.len()),
                        }
                    }
                }
            }
        }
    }
}
