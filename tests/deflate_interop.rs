//! permessage-deflate (RFC 7692) against clients no one here wrote: Python's
//! `websockets` and Node's `ws` (scripts in tests/interop/), tokio-tungstenite
//! (0.28 has no permessage-deflate, no `deflate` feature or any extension
//! option, so it is tested without the extension), and hand-built
//! compressed frames through the raw client.
//!
//! Each client makes every offer it can: every combination of
//! `server_no_context_takeover`, `client_no_context_takeover`,
//! `server_max_window_bits` and `client_max_window_bits` its API allows (one
//! test per offered server window, one client process looping over the
//! combinations), its default, no offer at all, and for websockets and the
//! raw client several offers in one request; the raw client also writes
//! offers in forms no library uses (several headers, quoted values, invalid
//! offers before a valid one). On each connection the tests check:
//!
//! - the answer: the server accepts the first offer it can honour (it
//!   declines `server_max_window_bits=8` and invalid offers) with what RFC
//!   7692 §7.1 allows for that offer, and adds nothing unasked in its default
//!   configuration ([`answer_problems`]);
//! - the client took the answer, and every text and binary message of 10 B
//!   and 10 KiB (and 1 MiB on a few connections) came back exactly, each sent
//!   twice so that context takeover is exercised;
//! - compression was used both ways (RSV1 on both sides' frames, fewer bytes
//!   on the wire) and context kept exactly when allowed ([`echo_problems`]).
//!
//! The Python and Node clients are installed on first use, at pinned
//! versions (`WEBSOCKETS_VERSION`, [`WS_VERSION`]): a venv with `websockets`
//! from PyPI in `<target>/interop/venv`, and `ws` from npm in
//! `<target>/interop/node`, each guarded by a file lock so that parallel test
//! binaries do not race, and marked ready by a file written last that names
//! the version (so changing a pin reinstalls). Without `python3` (or
//! `node`/`npm`) the tests print SKIP and pass, unless `CI` is set: then they
//! fail.

#[path = "interop/deflate_codec.rs"]
mod deflate_codec;
mod support;

use std::fs;
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use deflate_codec::{deflate_message, inflate_message, xorshift};
use flate2::{Compress, Compression, Decompress};
use futures_util::{SinkExt, StreamExt};
use support::interop::{WEBSOCKETS_VERSION, install_once, python};
use support::{Host, RawClient, op, run_checked, runs};
use tokio_tungstenite::tungstenite::Message;

/// Message sizes of the hand-written raw client tests and of the few large
/// combinations.
const SIZES: [usize; 3] = [10, 10 << 10, 1 << 20];
/// Message sizes of most combinations: all but the 1 MiB one.
const SMALL_SIZES: [usize; 2] = [10, 10 << 10];
/// The release of Node's `ws` the tests install.
const WS_VERSION: &str = "8.23.0";
/// RSV1 as `encode_frame` takes it and `Frame::rsv` reports it.
const RSV1: u8 = 0b100;

// ---------------------------------------------------------------------------
// Environment: target dir, CI, tool installation
// ---------------------------------------------------------------------------

fn scripts_dir() -> PathBuf {
    support::workspace().join("tests").join("interop")
}

/// A missing tool: fail under CI, else say SKIP.
fn missing(tool: &str) -> Option<PathBuf> {
    support::missing_tool(tool, "the permessage-deflate interop tests that need it")
}

/// A folder whose node_modules/ holds `ws` [`WS_VERSION`], or None (SKIP)
/// without node or npm.
fn node_modules() -> Option<PathBuf> {
    static NODE: OnceLock<Option<PathBuf>> = OnceLock::new();
    NODE.get_or_init(|| {
        if !runs("node") {
            return missing("node");
        }
        if !runs("npm") {
            return missing("npm");
        }
        let package = format!("ws@{WS_VERSION}");
        Some(install_once("node", &package, |dir| {
            fs::create_dir_all(dir).expect("creating <target>/interop/node");
            fs::write(
                dir.join("package.json"),
                b"{\"name\": \"wsbox-interop\", \"private\": true}\n",
            )
            .expect("writing package.json");
            let mut cmd = Command::new("npm");
            cmd.args([
                "install",
                "--no-audit",
                "--no-fund",
                "--silent",
                "--save-exact",
                &package,
            ])
            .current_dir(dir);
            run_checked(cmd, &format!("npm install {package}"));
        }))
    })
    .clone()
}

// ---------------------------------------------------------------------------
// A small JSON reader for the scripts' reports (no serde_json here)
// ---------------------------------------------------------------------------

#[derive(Clone, Debug, PartialEq)]
enum Json {
    Null,
    Bool(bool),
    Num(f64),
    Str(String),
    Arr(Vec<Json>),
    Obj(Vec<(String, Json)>),
}

impl Json {
    fn parse(text: &str) -> Result<Json, String> {
        let mut p = JsonParser {
            s: text.as_bytes(),
            i: 0,
        };
        let v = p.value()?;
        p.ws();
        if p.i != p.s.len() {
            return Err(format!("trailing data at {}", p.i));
        }
        Ok(v)
    }

    fn get(&self, key: &str) -> &Json {
        match self {
            Json::Obj(fields) => fields
                .iter()
                .find(|(k, _)| k == key)
                .map_or(&Json::Null, |(_, v)| v),
            _ => &Json::Null,
        }
    }

    fn str(&self) -> Option<&str> {
        match self {
            Json::Str(s) => Some(s),
            _ => None,
        }
    }

    fn num(&self) -> Option<f64> {
        match self {
            Json::Num(n) => Some(*n),
            _ => None,
        }
    }

    fn bool(&self) -> Option<bool> {
        match self {
            Json::Bool(b) => Some(*b),
            _ => None,
        }
    }

    fn arr(&self) -> &[Json] {
        match self {
            Json::Arr(items) => items,
            _ => &[],
        }
    }
}

struct JsonParser<'a> {
    s: &'a [u8],
    i: usize,
}

impl JsonParser<'_> {
    fn ws(&mut self) {
        while self.s.get(self.i).is_some_and(|b| b.is_ascii_whitespace()) {
            self.i += 1;
        }
    }

    fn eat(&mut self, lit: &str) -> Result<(), String> {
        if self.s[self.i..].starts_with(lit.as_bytes()) {
            self.i += lit.len();
            Ok(())
        } else {
            Err(format!("expected {lit} at {}", self.i))
        }
    }

    /// The comma-separated items of an array or object, each read by `item`,
    /// from its opening bracket through its closing one, `close`.
    fn items<T>(
        &mut self,
        close: u8,
        mut item: impl FnMut(&mut Self) -> Result<T, String>,
    ) -> Result<Vec<T>, String> {
        self.i += 1;
        let mut items = Vec::new();
        self.ws();
        if self.s.get(self.i) == Some(&close) {
            self.i += 1;
            return Ok(items);
        }
        loop {
            items.push(item(self)?);
            self.ws();
            match self.s.get(self.i) {
                Some(b',') => self.i += 1,
                Some(&b) if b == close => {
                    self.i += 1;
                    return Ok(items);
                }
                _ => return Err(format!("expected , or {} at {}", close as char, self.i)),
            }
        }
    }

    fn value(&mut self) -> Result<Json, String> {
        self.ws();
        match self.s.get(self.i) {
            None => Err("unexpected end".into()),
            Some(b'n') => self.eat("null").map(|()| Json::Null),
            Some(b't') => self.eat("true").map(|()| Json::Bool(true)),
            Some(b'f') => self.eat("false").map(|()| Json::Bool(false)),
            Some(b'"') => self.string().map(Json::Str),
            Some(b'[') => self.items(b']', Self::value).map(Json::Arr),
            Some(b'{') => self
                .items(b'}', |p| {
                    p.ws();
                    let key = p.string()?;
                    p.ws();
                    p.eat(":")?;
                    Ok((key, p.value()?))
                })
                .map(Json::Obj),
            Some(_) => {
                let start = self.i;
                while self
                    .s
                    .get(self.i)
                    .is_some_and(|b| b"+-.eE0123456789".contains(b))
                {
                    self.i += 1;
                }
                std::str::from_utf8(&self.s[start..self.i])
                    .ok()
                    .and_then(|n| n.parse().ok())
                    .map(Json::Num)
                    .ok_or_else(|| format!("bad value at {start}"))
            }
        }
    }

    fn hex4(&mut self) -> Result<u32, String> {
        let h = self
            .s
            .get(self.i..self.i + 4)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u32::from_str_radix(h, 16).ok())
            .ok_or_else(|| format!("bad \\u escape at {}", self.i))?;
        self.i += 4;
        Ok(h)
    }

    fn string(&mut self) -> Result<String, String> {
        self.eat("\"")?;
        let mut out = Vec::new();
        loop {
            let Some(&b) = self.s.get(self.i) else {
                return Err("unterminated string".into());
            };
            self.i += 1;
            match b {
                b'"' => return String::from_utf8(out).map_err(|e| e.to_string()),
                b'\\' => {
                    let Some(&e) = self.s.get(self.i) else {
                        return Err("unterminated escape".into());
                    };
                    self.i += 1;
                    let c = match e {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => {
                            let hi = self.hex4()?;
                            let code = if (0xd800..0xdc00).contains(&hi) {
                                self.eat("\\u")?;
                                let lo = self.hex4()?;
                                0x10000 + ((hi - 0xd800) << 10) + (lo.wrapping_sub(0xdc00) & 0x3ff)
                            } else {
                                hi
                            };
                            char::from_u32(code).unwrap_or('\u{fffd}')
                        }
                        _ => return Err(format!("bad escape at {}", self.i)),
                    };
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                }
                _ => out.push(b),
            }
        }
    }
}

#[test]
fn json_reader_reads_what_the_scripts_print() {
    let v = Json::parse(
        r#"{"a": [1, 2.5e3, -3], "b": {"c": "x\"\u00e9\ud83d\ude00"}, "d": null, "e": true, "f": false, "g": []}"#,
    )
    .unwrap();
    assert_eq!(v.get("a").arr()[1].num(), Some(2500.0));
    assert_eq!(v.get("b").get("c").str(), Some("x\"é😀"));
    assert_eq!(v.get("d"), &Json::Null);
    assert_eq!(v.get("e").bool(), Some(true));
    assert_eq!(v.get("missing"), &Json::Null);
    assert!(Json::parse("{\"a\": 1,}").is_err());
}

// ---------------------------------------------------------------------------
// Sec-WebSocket-Extensions, and what RFC 7692 allows in an answer
// ---------------------------------------------------------------------------

const PERMESSAGE_DEFLATE: &str = "permessage-deflate";
const SERVER_NO_CONTEXT_TAKEOVER: &str = "server_no_context_takeover";
const CLIENT_NO_CONTEXT_TAKEOVER: &str = "client_no_context_takeover";
const SERVER_MAX_WINDOW_BITS: &str = "server_max_window_bits";
const CLIENT_MAX_WINDOW_BITS: &str = "client_max_window_bits";

/// One element of a `Sec-WebSocket-Extensions` list (RFC 6455 §9.1): an
/// extension and its parameters, names lowercased, quoted values unquoted.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Extension {
    name: String,
    params: Vec<(String, Option<String>)>,
}

impl Extension {
    /// Whether parameter `name` is present, with or without a value.
    fn has(&self, name: &str) -> bool {
        self.params.iter().any(|(n, _)| n == name)
    }

    /// Parameter `name`: None if absent, `Some(None)` if without a value.
    fn param(&self, name: &str) -> Option<Option<&str>> {
        self.params
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_deref())
    }

    /// Parameter `name`'s value as window bits, if present with a valid one.
    fn window_bits(&self, name: &str) -> Option<u8> {
        self.param(name).flatten().and_then(window_bits)
    }
}

impl std::fmt::Display for Extension {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name)?;
        for (name, value) in &self.params {
            match value {
                Some(value) => write!(f, "; {name}={value}")?,
                None => write!(f, "; {name}")?,
            }
        }
        Ok(())
    }
}

/// `s` split at every `separator` outside a quoted string.
fn split_unquoted(s: &str, separator: char) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, c) in s.char_indices() {
        if escaped {
            escaped = false;
        } else if quoted && c == '\\' {
            escaped = true;
        } else if c == '"' {
            quoted = !quoted;
        } else if c == separator && !quoted {
            parts.push(&s[start..i]);
            start = i + c.len_utf8();
        }
    }
    parts.push(&s[start..]);
    parts
}

/// Whether `s` is a token (RFC 7230 §3.2.6).
fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// A parameter value: a token, or a quoted string, unescaped.
fn unquote(value: &str) -> Result<String, String> {
    if is_token(value) {
        return Ok(value.to_owned());
    }
    let inner = value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .ok_or_else(|| format!("bad parameter value {value:?}"))?;
    let mut out = String::new();
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.push(chars.next().ok_or("a quoted value ends in \\")?),
            '"' => return Err(format!("bad quoted value {value:?}")),
            c => out.push(c),
        }
    }
    Ok(out)
}

/// Parse a `Sec-WebSocket-Extensions` value (several header lines joined
/// with ", ").
fn parse_extensions(value: &str) -> Result<Vec<Extension>, String> {
    split_unquoted(value, ',')
        .into_iter()
        .map(|element| {
            let mut parts = split_unquoted(element, ';').into_iter().map(str::trim);
            let name = parts.next().unwrap_or_default();
            if !is_token(name) {
                return Err(format!("bad extension name {name:?} in {value:?}"));
            }
            let params = parts
                .map(|param| {
                    let (name, value) = match param.split_once('=') {
                        Some((name, value)) => (name.trim(), Some(unquote(value.trim())?)),
                        None => (param, None),
                    };
                    if !is_token(name) {
                        return Err(format!("bad parameter name {name:?} in {value:?}"));
                    }
                    Ok((name.to_ascii_lowercase(), value))
                })
                .collect::<Result<_, String>>()?;
            Ok(Extension {
                name: name.to_ascii_lowercase(),
                params,
            })
        })
        .collect()
}

/// A window-bits value as RFC 7692 §7.1.2 allows it: a decimal 8..=15
/// without leading zeros.
fn window_bits(value: &str) -> Option<u8> {
    value
        .parse()
        .ok()
        .filter(|bits: &u8| (8..=15).contains(bits) && bits.to_string() == value)
}

/// Why the server declines `offer`: because RFC 7692 §7.1 requires it (an
/// unknown, repeated or badly valued parameter) or because it documents
/// doing so (`server_max_window_bits=8`: zlib cannot compress with an 8-bit
/// window). None: the server accepts it.
fn why_declined(offer: &Extension) -> Option<String> {
    if offer.name != PERMESSAGE_DEFLATE {
        return Some(format!("{} is another extension", offer.name));
    }
    for (i, (name, value)) in offer.params.iter().enumerate() {
        if offer.params[..i].iter().any(|(n, _)| n == name) {
            return Some(format!("{name} is given twice"));
        }
        let name = name.as_str();
        match (name, value.as_deref()) {
            (SERVER_NO_CONTEXT_TAKEOVER | CLIENT_NO_CONTEXT_TAKEOVER, None)
            | (CLIENT_MAX_WINDOW_BITS, None) => {}
            (SERVER_NO_CONTEXT_TAKEOVER | CLIENT_NO_CONTEXT_TAKEOVER, Some(v)) => {
                return Some(format!("{name}={v} has a value"));
            }
            (SERVER_MAX_WINDOW_BITS, None) => return Some(format!("{name} has no value")),
            (SERVER_MAX_WINDOW_BITS | CLIENT_MAX_WINDOW_BITS, Some(v)) => match window_bits(v) {
                None => return Some(format!("{name}={v} is not within 8..15")),
                Some(8) if name == SERVER_MAX_WINDOW_BITS => {
                    return Some(format!(
                        "{name}=8: the server cannot compress with an 8-bit window"
                    ));
                }
                Some(_) => {}
            },
            _ => return Some(format!("{name} is not a permessage-deflate parameter")),
        }
    }
    None
}

/// The offer among `offered` (a request's `Sec-WebSocket-Extensions`) that
/// the server must accept: the first permessage-deflate offer it does not
/// decline (see [`why_declined`]); None if it must decline them all.
fn offer_to_accept(offered: Option<&str>) -> Result<Option<Extension>, String> {
    let Some(offered) = offered else {
        return Ok(None);
    };
    Ok(parse_extensions(offered)?
        .into_iter()
        .find(|offer| why_declined(offer).is_none()))
}

/// Everything wrong with `answered` as the server's answer to `offered`:
/// accepting or declining against [`offer_to_accept`], and the answer's
/// parameters against what RFC 7692 §7.1 allows for the offer it accepts
/// (`server_no_context_takeover` and `server_max_window_bits` kept when
/// offered, `client_max_window_bits` only if offered), plus
/// `client_no_context_takeover` echoed when offered (allowed to be left out
/// by §7.1.1.2, but this server promises it). With `nothing_unasked` (the
/// server's default configuration) it must also add no parameter the client
/// did not offer.
fn answer_problems(
    offered: Option<&str>,
    answered: Option<&str>,
    nothing_unasked: bool,
) -> Vec<String> {
    let offer = match offer_to_accept(offered) {
        Ok(offer) => offer,
        Err(e) => return vec![format!("the test cannot read the offer: {e}")],
    };
    let (offer, answered) = match (offer, answered) {
        (None, None) => return Vec::new(),
        (None, Some(_)) => {
            let reasons: Vec<String> = offered
                .and_then(|o| parse_extensions(o).ok())
                .unwrap_or_default()
                .iter()
                .filter_map(why_declined)
                .collect();
            return vec![format!(
                "answered, but must decline every offer ({})",
                if reasons.is_empty() {
                    "none was made".to_owned()
                } else {
                    reasons.join("; ")
                }
            )];
        }
        (Some(offer), None) => {
            return vec![format!("declined, but must accept the offer `{offer}`")];
        }
        (Some(offer), Some(answered)) => (offer, answered),
    };
    let answer = match parse_extensions(answered) {
        Ok(mut list) if list.len() == 1 && list[0].name == PERMESSAGE_DEFLATE => list.remove(0),
        Ok(_) => {
            return vec![format!(
                "RFC 7692 §5: the answer to `{offer}` must be one permessage-deflate element"
            )];
        }
        Err(e) => return vec![format!("the answer is not a valid extension list: {e}")],
    };
    let mut problems = Vec::new();
    for (i, (name, value)) in answer.params.iter().enumerate() {
        if answer.params[..i].iter().any(|(n, _)| n == name) {
            problems.push(format!("RFC 7692 §7.1: {name} is in the answer twice"));
        }
        let name = name.as_str();
        match (name, value.as_deref()) {
            (SERVER_NO_CONTEXT_TAKEOVER | CLIENT_NO_CONTEXT_TAKEOVER, None) => {}
            (SERVER_MAX_WINDOW_BITS | CLIENT_MAX_WINDOW_BITS, Some(v))
                if window_bits(v).is_some() => {}
            (SERVER_NO_CONTEXT_TAKEOVER | CLIENT_NO_CONTEXT_TAKEOVER, Some(v)) => problems.push(
                format!("RFC 7692 §7.1.1: {name} takes no value, the answer has {name}={v}"),
            ),
            (SERVER_MAX_WINDOW_BITS | CLIENT_MAX_WINDOW_BITS, v) => problems.push(format!(
                "RFC 7692 §7.1.2: {name} in an answer needs a value within 8..15, it has {v:?}"
            )),
            _ => problems.push(format!(
                "RFC 7692 §7.1: {name} is not a permessage-deflate parameter"
            )),
        }
    }
    if offer.has(SERVER_NO_CONTEXT_TAKEOVER) && !answer.has(SERVER_NO_CONTEXT_TAKEOVER) {
        problems.push(
            "RFC 7692 §7.1.1.1: server_no_context_takeover was offered, so the answer must have it; \
             it has not"
                .to_owned(),
        );
    }
    if offer.has(CLIENT_NO_CONTEXT_TAKEOVER) && !answer.has(CLIENT_NO_CONTEXT_TAKEOVER) {
        problems.push(
            "client_no_context_takeover was offered but not echoed (RFC 7692 §7.1.1.2 allows \
             that, this server promises to echo it)"
                .to_owned(),
        );
    }
    if let Some(offered_bits) = offer.window_bits(SERVER_MAX_WINDOW_BITS) {
        match answer.window_bits(SERVER_MAX_WINDOW_BITS) {
            None => problems.push(format!(
                "RFC 7692 §7.1.2.1: server_max_window_bits={offered_bits} was offered, so the answer \
                 must have server_max_window_bits with a value of at most {offered_bits}; it has none"
            )),
            Some(bits) if bits > offered_bits => problems.push(format!(
                "RFC 7692 §7.1.2.1: server_max_window_bits={offered_bits} was offered, the answer has \
                 the larger server_max_window_bits={bits}"
            )),
            Some(_) => {}
        }
    }
    match (
        offer.param(CLIENT_MAX_WINDOW_BITS),
        answer.window_bits(CLIENT_MAX_WINDOW_BITS),
    ) {
        (None, _) if answer.has(CLIENT_MAX_WINDOW_BITS) => problems.push(
            "RFC 7692 §7.1.2.2: client_max_window_bits was not offered, so the answer must not \
             have it; it has"
                .to_owned(),
        ),
        (Some(Some(offered)), Some(bits)) if window_bits(offered).is_some_and(|o| bits > o) => {
            problems.push(format!(
                "RFC 7692 §7.1.2.2: client_max_window_bits={offered} was offered, the answer has \
                 the larger client_max_window_bits={bits}"
            ));
        }
        _ => {}
    }
    if nothing_unasked {
        for name in [
            SERVER_NO_CONTEXT_TAKEOVER,
            CLIENT_NO_CONTEXT_TAKEOVER,
            SERVER_MAX_WINDOW_BITS,
        ] {
            if answer.has(name) && !offer.has(name) {
                problems.push(format!(
                    "the answer has {name}, which was not offered (the default configuration \
                     imposes nothing)"
                ));
            }
        }
    }
    problems
}

/// What a permessage-deflate answer puts in force (RFC 7692 §7.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct InForce {
    server_no_context_takeover: bool,
    client_no_context_takeover: bool,
    /// The largest window the server compresses with (15 when not answered).
    server_window: u8,
    /// The largest window the client may compress with, if the answer says.
    client_window: Option<u8>,
}

impl InForce {
    /// What `answered` puts in force; None if it is not one usable
    /// permessage-deflate element.
    fn from_answer(answered: &str) -> Option<InForce> {
        let list = parse_extensions(answered).ok()?;
        let [answer] = list.as_slice() else {
            return None;
        };
        (answer.name == PERMESSAGE_DEFLATE).then(|| InForce {
            server_no_context_takeover: answer.has(SERVER_NO_CONTEXT_TAKEOVER),
            client_no_context_takeover: answer.has(CLIENT_NO_CONTEXT_TAKEOVER),
            server_window: answer.window_bits(SERVER_MAX_WINDOW_BITS).unwrap_or(15),
            client_window: answer.window_bits(CLIENT_MAX_WINDOW_BITS),
        })
    }
}

#[test]
fn extension_lists_are_read_with_quotes_and_several_offers() {
    let list = parse_extensions(
        r#"x-foo; a="1,2;3", permessage-deflate; Server_Max_Window_Bits="10"; client_max_window_bits"#,
    )
    .unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0].param("a"), Some(Some("1,2;3")));
    assert_eq!(list[1].window_bits(SERVER_MAX_WINDOW_BITS), Some(10));
    assert_eq!(list[1].param(CLIENT_MAX_WINDOW_BITS), Some(None));
    assert!(parse_extensions("permessage-deflate; a=\"1").is_err());
    assert_eq!(window_bits("08"), None);
    assert_eq!(window_bits("16"), None);
}

#[test]
fn answer_rules_follow_rfc_7692() {
    let offer = Some("permessage-deflate; server_max_window_bits=15; client_max_window_bits");
    assert_eq!(
        answer_problems(
            offer,
            Some("permessage-deflate; server_max_window_bits=15"),
            true
        ),
        Vec::<String>::new()
    );
    assert_eq!(
        answer_problems(offer, Some("permessage-deflate"), true).len(),
        1
    );
    assert_eq!(answer_problems(offer, None, true).len(), 1);
    let offer = Some("permessage-deflate; server_no_context_takeover; client_no_context_takeover");
    assert_eq!(
        answer_problems(
            offer,
            Some("permessage-deflate; client_max_window_bits=9"),
            true
        )
        .len(),
        3
    );
    assert_eq!(
        answer_problems(
            offer,
            Some("permessage-deflate; server_no_context_takeover; client_no_context_takeover"),
            true
        ),
        Vec::<String>::new()
    );
    // The first offer declined, the second accepted.
    let offers = Some(
        "permessage-deflate; server_max_window_bits=8, permessage-deflate; client_max_window_bits=10",
    );
    assert_eq!(
        answer_problems(
            offers,
            Some("permessage-deflate; client_max_window_bits=10"),
            true
        ),
        Vec::<String>::new()
    );
    assert_eq!(
        answer_problems(
            offers,
            Some("permessage-deflate; client_max_window_bits=11"),
            true
        )
        .len(),
        1
    );
    assert_eq!(
        answer_problems(
            Some("permessage-deflate; x=1"),
            Some("permessage-deflate"),
            true
        )
        .len(),
        1
    );
    // Parameters the server imposes unasked.
    let offer = Some("permessage-deflate; client_max_window_bits");
    let imposed = Some("permessage-deflate; server_no_context_takeover; server_max_window_bits=9");
    assert_eq!(answer_problems(offer, imposed, false), Vec::<String>::new());
    assert_eq!(answer_problems(offer, imposed, true).len(), 2);
}

// ---------------------------------------------------------------------------
// Offers and the clients that make them
// ---------------------------------------------------------------------------

/// `server_max_window_bits` as a client is told to offer it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ServerWindow {
    NotOffered,
    /// Without a value (ws: `serverMaxWindowBits: true`), which RFC 7692
    /// §7.1.2.1 does not allow: the server must decline the offer.
    Bare,
    Bits(u8),
}

/// `client_max_window_bits` as a client is told to offer it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ClientWindow {
    NotOffered,
    /// Without a value: the client can take a limit.
    Bare,
    Bits(u8),
}

/// The parameters of one permessage-deflate offer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct OfferParams {
    server_no_context_takeover: bool,
    client_no_context_takeover: bool,
    server_window: ServerWindow,
    client_window: ClientWindow,
}

impl OfferParams {
    /// What both libraries offer by default: `permessage-deflate;
    /// client_max_window_bits`.
    const USUAL: OfferParams = OfferParams {
        server_no_context_takeover: false,
        client_no_context_takeover: false,
        server_window: ServerWindow::NotOffered,
        client_window: ClientWindow::Bare,
    };

    /// The offers whose connections also exchange 1 MiB messages: the usual
    /// one, the tightest (both flags, 9-bit windows) and a 10-bit server
    /// window. The others keep to 10 B and 10 KiB to keep the run short.
    fn large(&self) -> bool {
        let tightest = OfferParams {
            server_no_context_takeover: true,
            client_no_context_takeover: true,
            server_window: ServerWindow::Bits(9),
            client_window: ClientWindow::Bits(9),
        };
        let narrow_server = OfferParams {
            server_window: ServerWindow::Bits(10),
            ..OfferParams::USUAL
        };
        [OfferParams::USUAL, tightest, narrow_server].contains(self)
    }

    /// The `Sec-WebSocket-Extensions` value making this offer.
    fn header_value(&self) -> String {
        let mut value = PERMESSAGE_DEFLATE.to_owned();
        if self.server_no_context_takeover {
            value.push_str("; server_no_context_takeover");
        }
        if self.client_no_context_takeover {
            value.push_str("; client_no_context_takeover");
        }
        match self.server_window {
            ServerWindow::NotOffered => {}
            ServerWindow::Bare => value.push_str("; server_max_window_bits"),
            ServerWindow::Bits(bits) => value.push_str(&format!("; server_max_window_bits={bits}")),
        }
        match self.client_window {
            ClientWindow::NotOffered => {}
            ClientWindow::Bare => value.push_str("; client_max_window_bits"),
            ClientWindow::Bits(bits) => value.push_str(&format!("; client_max_window_bits={bits}")),
        }
        value
    }
}

/// Every combination of the two flags and the `client_windows` with
/// `server_window`.
fn offers_with(server_window: ServerWindow, client_windows: &[ClientWindow]) -> Vec<OfferParams> {
    let mut offers = Vec::new();
    for server_no_context_takeover in [false, true] {
        for client_no_context_takeover in [false, true] {
            for &client_window in client_windows {
                offers.push(OfferParams {
                    server_no_context_takeover,
                    client_no_context_takeover,
                    server_window,
                    client_window,
                });
            }
        }
    }
    offers
}

/// What a client is told to do on one connection.
#[derive(Clone, Debug)]
enum ClientRequest {
    /// For a script: the JSON item it takes (see the script's usage).
    Script(String),
    /// For the raw client: the `Sec-WebSocket-Extensions` values, one per
    /// header line.
    Headers(Vec<String>),
}

/// One way to offer permessage-deflate, as one client is told to make it.
#[derive(Clone, Debug)]
struct Combination {
    /// What the client is told, in its own terms.
    label: String,
    request: ClientRequest,
    /// Whether the connection also exchanges 1 MiB messages.
    large: bool,
}

/// The clients the combinations run with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Client {
    /// Python's `websockets` (tests/interop/websockets_client.py).
    Python,
    /// Node's `ws` (tests/interop/ws_client.mjs).
    Node,
    /// The hand-written client in tests/support, compressing with flate2.
    Raw,
}

impl Client {
    /// The name failures give the client.
    fn name(self) -> String {
        match self {
            Client::Python => format!("websockets {WEBSOCKETS_VERSION}"),
            Client::Node => format!("ws {WS_VERSION}"),
            Client::Raw => "the raw client".to_owned(),
        }
    }

    /// The `client_max_window_bits` settings the client can make.
    fn client_windows(self) -> Vec<ClientWindow> {
        let bits = |from: u8| (from..=15).map(ClientWindow::Bits);
        match self {
            // ClientPerMessageDeflateFactory takes None, True or 9..=15 (it
            // refuses 8: zlib cannot compress with an 8-bit window).
            Client::Python => [ClientWindow::NotOffered, ClientWindow::Bare]
                .into_iter()
                .chain(bits(9))
                .collect(),
            // clientMaxWindowBits: undefined (the bare parameter), false (not
            // offered) or 8..=15; `true` offers the same as undefined.
            Client::Node => [ClientWindow::Bare, ClientWindow::NotOffered]
                .into_iter()
                .chain(bits(8))
                .collect(),
            Client::Raw => [ClientWindow::NotOffered, ClientWindow::Bare]
                .into_iter()
                .chain(bits(8))
                .collect(),
        }
    }

    /// The combination making `offer` with this client.
    fn combination(self, offer: OfferParams) -> Combination {
        let large = offer.large();
        match self {
            Client::Python => {
                let (label, json) = python_factory(offer);
                Combination {
                    label,
                    request: ClientRequest::Script(format!(
                        "{{\"offers\": [{json}], \"large\": {large}}}"
                    )),
                    large,
                }
            }
            Client::Node => {
                let mut label = vec!["threshold: 0".to_owned()];
                let mut json = vec!["\"threshold\": 0".to_owned()];
                let mut option = |name: &str, value: String| {
                    label.push(format!("{name}: {value}"));
                    json.push(format!("\"{name}\": {value}"));
                };
                if offer.server_no_context_takeover {
                    option("serverNoContextTakeover", "true".into());
                }
                if offer.client_no_context_takeover {
                    option("clientNoContextTakeover", "true".into());
                }
                match offer.server_window {
                    ServerWindow::NotOffered => {}
                    ServerWindow::Bare => option("serverMaxWindowBits", "true".into()),
                    ServerWindow::Bits(bits) => option("serverMaxWindowBits", bits.to_string()),
                }
                match offer.client_window {
                    ClientWindow::Bare => {}
                    ClientWindow::NotOffered => option("clientMaxWindowBits", "false".into()),
                    ClientWindow::Bits(bits) => option("clientMaxWindowBits", bits.to_string()),
                }
                Combination {
                    label: format!("perMessageDeflate: {{ {} }}", label.join(", ")),
                    request: ClientRequest::Script(format!(
                        "{{\"perMessageDeflate\": {{{}}}, \"large\": {large}}}",
                        json.join(", ")
                    )),
                    large,
                }
            }
            Client::Raw => raw_combination(&[offer.header_value()], large),
        }
    }

    /// Make one connection per combination to `host`, in order; None (SKIP)
    /// without the client's runtime.
    fn connect_all(self, host: &Host, combinations: &[Combination]) -> Option<Vec<Connection>> {
        let cmd = match self {
            Client::Python => {
                let mut cmd = Command::new(python()?);
                cmd.arg(scripts_dir().join("websockets_client.py"));
                cmd
            }
            Client::Node => {
                let modules = node_modules()?;
                let mut cmd = Command::new("node");
                cmd.arg(scripts_dir().join("ws_client.mjs"))
                    .env("WS_NODE_MODULES", modules);
                cmd
            }
            Client::Raw => return Some(raw_connections(host.addr, combinations)),
        };
        Some(run_script(self, host, cmd, combinations))
    }
}

/// A `ClientPerMessageDeflateFactory` making `offer`: its label (the
/// arguments that differ from the defaults) and its JSON for the script.
fn python_factory(offer: OfferParams) -> (String, String) {
    let mut args = Vec::new();
    if offer.server_no_context_takeover {
        args.push("server_no_context_takeover=True".to_owned());
    }
    if offer.client_no_context_takeover {
        args.push("client_no_context_takeover=True".to_owned());
    }
    let server_bits = match offer.server_window {
        ServerWindow::NotOffered => "null".to_owned(),
        ServerWindow::Bare => {
            panic!("websockets cannot offer server_max_window_bits without a value")
        }
        ServerWindow::Bits(bits) => {
            args.push(format!("server_max_window_bits={bits}"));
            bits.to_string()
        }
    };
    let client_bits = match offer.client_window {
        ClientWindow::NotOffered => {
            args.push("client_max_window_bits=None".to_owned());
            "null".to_owned()
        }
        ClientWindow::Bare => "true".to_owned(),
        ClientWindow::Bits(bits) => {
            args.push(format!("client_max_window_bits={bits}"));
            bits.to_string()
        }
    };
    (
        format!("ClientPerMessageDeflateFactory({})", args.join(", ")),
        format!(
            "{{\"server_no_context_takeover\": {}, \"client_no_context_takeover\": {}, \
             \"server_max_window_bits\": {server_bits}, \"client_max_window_bits\": {client_bits}}}",
            offer.server_no_context_takeover, offer.client_no_context_takeover
        ),
    )
}

/// The raw client offering `values`, one `Sec-WebSocket-Extensions` line
/// each.
fn raw_combination(values: &[impl AsRef<str>], large: bool) -> Combination {
    let values: Vec<String> = values.iter().map(|v| v.as_ref().to_owned()).collect();
    Combination {
        label: values
            .iter()
            .map(|v| format!("Sec-WebSocket-Extensions: {v}"))
            .collect::<Vec<_>>()
            .join(" + "),
        request: ClientRequest::Headers(values),
        large,
    }
}

// ---------------------------------------------------------------------------
// Connections, and what they must show
// ---------------------------------------------------------------------------

/// One echo on a connection.
#[derive(Debug)]
struct Echo {
    kind: String,
    size: usize,
    round: usize,
    /// The echo is exactly the message (type and bytes).
    ok: bool,
    /// RSV1 on the server's (first) frame: the echo was compressed.
    rsv1: bool,
    /// RSV1 on the client's frame: the message was compressed.
    sent_rsv1: bool,
    /// Bytes of the echo on the wire: its frames' payload (websockets, raw
    /// client) or all the socket read meanwhile (ws); None when websockets
    /// negotiated nothing.
    wire: Option<usize>,
}

/// One connection a client made, as its script (or the raw client) reports
/// it.
#[derive(Debug, Default)]
struct Connection {
    /// The `Sec-WebSocket-Extensions` the client sent (several lines joined
    /// with ", "), if any.
    offered: Option<String>,
    /// The `Sec-WebSocket-Extensions` the server answered, if any.
    answered: Option<String>,
    echoes: Vec<Echo>,
    /// What went wrong on the client's side: a refused answer, a differing
    /// echo, a failed connection.
    errors: Vec<String>,
}

impl Connection {
    fn echo(&self, kind: &str, size: usize, round: usize) -> Option<&Echo> {
        self.echoes
            .iter()
            .find(|e| e.kind == kind && e.size == size && e.round == round)
    }

    /// What the answer put in force; None without (usable) permessage-deflate.
    fn in_force(&self) -> Option<InForce> {
        self.answered.as_deref().and_then(InForce::from_answer)
    }

    /// Read one item of a script's `combinations`.
    fn from_json(item: &Json) -> Connection {
        let text = |key: &str| item.get(key).str().map(str::to_owned);
        Connection {
            offered: text("offered"),
            answered: text("response_extensions"),
            echoes: item
                .get("echoes")
                .arr()
                .iter()
                .map(|e| Echo {
                    kind: e.get("kind").str().unwrap_or_default().to_owned(),
                    size: e.get("size").num().unwrap_or(-1.0) as usize,
                    round: e.get("round").num().unwrap_or(-1.0) as usize,
                    ok: e.get("ok").bool() == Some(true),
                    rsv1: e.get("rsv1").bool() == Some(true),
                    sent_rsv1: e.get("sent_rsv1").bool() == Some(true),
                    wire: e
                        .get("wire_size")
                        .num()
                        .or_else(|| e.get("wire_read").num())
                        .map(|n| n as usize),
                })
                .collect(),
            errors: item
                .get("errors")
                .arr()
                .iter()
                .map(|e| e.str().unwrap_or("?").to_owned())
                .collect(),
        }
    }
}

/// The message sizes of a connection (each sent as text and as binary).
fn sizes_for(large: bool) -> &'static [usize] {
    if large { &SIZES } else { &SMALL_SIZES }
}

/// Run a client script over `combinations` against `host` and read its
/// report; panics (with the script's output and the host's logs) if there is
/// no report, or it is from another version of the library.
fn run_script(
    client: Client,
    host: &Host,
    mut cmd: Command,
    combinations: &[Combination],
) -> Vec<Connection> {
    let items: Vec<&str> = combinations
        .iter()
        .map(|c| match &c.request {
            ClientRequest::Script(json) => json.as_str(),
            ClientRequest::Headers(_) => panic!("{} is a raw client combination", c.label),
        })
        .collect();
    cmd.arg(host.url("/"))
        .arg(format!("[{}]", items.join(", ")));
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let line = stdout.lines().last().unwrap_or_default();
    let report = Json::parse(line).unwrap_or_else(|e| {
        panic!(
            "{} printed no report ({e}; exit {}):\nstdout: {stdout}\nstderr: {stderr}\nhost logs:\n{}",
            client.name(),
            out.status,
            host.logs().join("\n")
        )
    });
    assert_eq!(
        report.get("library").str(),
        Some(client.name().as_str()),
        "the installed library is not the pinned one"
    );
    let connections: Vec<Connection> = report
        .get("combinations")
        .arr()
        .iter()
        .map(Connection::from_json)
        .collect();
    assert_eq!(
        connections.len(),
        combinations.len(),
        "one report per combination: {line}"
    );
    connections
}

/// The server compresses messages under this many bytes plainly
/// (`--deflate-min-size` left at its default).
const SERVER_MIN_COMPRESSED_SIZE: usize = 64;

/// A compressed 10 KiB or 1 MiB echo must take less than this share of the
/// message's bytes on the wire: windows under 12 bits (4 KiB) find fewer
/// repeats in the binary messages.
fn max_compressed_ratio(server_window: u8) -> f64 {
    if server_window >= 12 { 0.5 } else { 0.9 }
}

/// Everything wrong with `connection`'s echoes given what the answer put in
/// force: each message echoed exactly; with permessage-deflate, the server
/// compressed every echo of 10 KiB and more (RSV1, and fewer bytes on the
/// wire) and none under [`SERVER_MIN_COMPRESSED_SIZE`], the client
/// compressed its messages (so the server inflated them), and the server
/// kept context across messages exactly when allowed to (the repeated 10 KiB
/// echo is as large as the first with `server_no_context_takeover`, and much
/// smaller without it when the window reaches back over the first, i.e. 14
/// bits and more); without it, no RSV1 either way.
fn echo_problems(connection: &Connection, in_force: Option<InForce>, large: bool) -> Vec<String> {
    let mut problems = Vec::new();
    for kind in ["text", "binary"] {
        for &size in sizes_for(large) {
            for round in 0..2 {
                let what = format!("{kind} {size} B round {round}");
                let Some(echo) = connection.echo(kind, size, round) else {
                    problems.push(format!("{what}: no echo"));
                    continue;
                };
                if !echo.ok {
                    problems.push(format!("{what}: the echo differs from the message"));
                }
                let Some(in_force) = in_force else {
                    if echo.rsv1 || echo.sent_rsv1 {
                        problems.push(format!("{what}: RSV1 set without permessage-deflate"));
                    }
                    continue;
                };
                if size < SERVER_MIN_COMPRESSED_SIZE && echo.rsv1 {
                    problems.push(format!(
                        "{what}: the server compressed an echo under --deflate-min-size ({SERVER_MIN_COMPRESSED_SIZE} B)"
                    ));
                }
                if size < 10 << 10 {
                    continue;
                }
                if !echo.rsv1 {
                    problems.push(format!("{what}: the server's echo is not compressed"));
                }
                if !echo.sent_rsv1 {
                    problems.push(format!(
                        "{what}: the client did not compress its message, so the server's inflater went untested"
                    ));
                }
                let ratio = max_compressed_ratio(in_force.server_window);
                match echo.wire {
                    Some(wire) if (wire as f64) < size as f64 * ratio => {}
                    Some(wire) => problems.push(format!(
                        "{what}: the server's echo took {wire} B on the wire (expected under {ratio} of the message)"
                    )),
                    None => problems.push(format!("{what}: no wire size reported")),
                }
            }
        }
    }
    let Some(in_force) = in_force else {
        return problems;
    };
    for kind in ["text", "binary"] {
        let wire = |round| connection.echo(kind, 10 << 10, round).and_then(|e| e.wire);
        let (Some(first), Some(second)) = (wire(0), wire(1)) else {
            continue;
        };
        if in_force.server_no_context_takeover && first != second {
            problems.push(format!(
                "{kind}: server_no_context_takeover is in force, yet the repeated 10240 B message \
                 compressed differently ({first} then {second} B): the server kept context"
            ));
        }
        if !in_force.server_no_context_takeover
            && in_force.server_window >= 14
            && second * 3 >= first
        {
            problems.push(format!(
                "{kind}: context takeover is in force, yet the repeated 10240 B message did not \
                 refer back to the first ({first} then {second} B)"
            ));
        }
    }
    problems
}

/// Everything wrong with one connection: its answer ([`answer_problems`]),
/// what the client reported failing, and its echoes ([`echo_problems`];
/// left out when the connection failed before any echo, which the client's
/// errors then explain).
fn connection_problems(connection: &Connection, large: bool, nothing_unasked: bool) -> Vec<String> {
    let mut problems = answer_problems(
        connection.offered.as_deref(),
        connection.answered.as_deref(),
        nothing_unasked,
    );
    problems.extend(
        connection
            .errors
            .iter()
            .map(|e| format!("the client failed: {e}")),
    );
    if !connection.echoes.is_empty() || connection.errors.is_empty() {
        problems.extend(echo_problems(connection, connection.in_force(), large));
    }
    problems
}

/// Start the echo guest with `host_args`, make every combination's
/// connection with `client` (one client process for all), and check each
/// ([`connection_problems`]); panics listing every combination that failed
/// and why. `nothing_unasked`: the host runs with the default deflate
/// configuration, so the answers must add nothing the client did not offer.
/// Returns the connections; None (SKIP) without the client's runtime.
fn check_combinations(
    client: Client,
    host_args: &[&str],
    combinations: &[Combination],
    nothing_unasked: bool,
) -> Option<Vec<Connection>> {
    let host = Host::start("echo", host_args);
    let connections = client.connect_all(&host, combinations)?;
    let mut failures = Vec::new();
    // Each distinct problem and how many combinations have it.
    let mut tally: Vec<(String, usize)> = Vec::new();
    for (combination, connection) in combinations.iter().zip(&connections) {
        let problems = connection_problems(connection, combination.large, nothing_unasked);
        if problems.is_empty() {
            continue;
        }
        for problem in &problems {
            match tally.iter_mut().find(|(p, _)| p == problem) {
                Some((_, count)) => *count += 1,
                None => tally.push((problem.clone(), 1)),
            }
        }
        failures.push(format!(
            "{}\n  offered:  {}\n  answered: {}\n{}",
            combination.label,
            connection.offered.as_deref().unwrap_or("(nothing)"),
            connection.answered.as_deref().unwrap_or("(nothing)"),
            problems
                .iter()
                .map(|p| format!("  - {p}"))
                .collect::<Vec<_>>()
                .join("\n")
        ));
    }
    tally.sort_by_key(|(_, count)| std::cmp::Reverse(*count));
    assert!(
        failures.is_empty(),
        "{}: {} of {} combinations failed against the echo guest (host args: {host_args:?}).\n\
         Most frequent problems (number of combinations):\n{}\n\nEach failed combination:\n\n{}",
        client.name(),
        failures.len(),
        combinations.len(),
        tally
            .iter()
            .take(5)
            .map(|(problem, count)| format!("  {count:>3} × {problem}"))
            .collect::<Vec<_>>()
            .join("\n"),
        failures.join("\n\n")
    );
    Some(connections)
}

/// The answer of `connection` has exactly `params` (in any order).
fn assert_answer_params(connection: &Connection, params: &[&str]) {
    let answered = connection.answered.as_deref().expect("an answer");
    let answer = parse_extensions(answered).expect("a valid answer");
    let mut got: Vec<String> = answer[0]
        .params
        .iter()
        .map(|(name, value)| match value {
            Some(value) => format!("{name}={value}"),
            None => name.clone(),
        })
        .collect();
    let mut want: Vec<String> = params.iter().map(|p| p.to_string()).collect();
    got.sort_unstable();
    want.sort_unstable();
    assert_eq!(got, want, "answered: {answered}");
}

// ---------------------------------------------------------------------------
// Every offer each client can make
// ---------------------------------------------------------------------------

/// `client` offers every combination of the two no-context-takeover flags
/// and its `client_max_window_bits` settings with `server_window`, one
/// connection each, against the default configuration.
fn offer_matrix(client: Client, server_window: ServerWindow) {
    let combinations: Vec<Combination> = offers_with(server_window, &client.client_windows())
        .into_iter()
        .map(|offer| client.combination(offer))
        .collect();
    check_combinations(client, &[], &combinations, true);
}

/// `test: Client, ServerWindow;` defines each `#[test] fn test()` as
/// [`offer_matrix`]`(Client, ServerWindow)`: one test per server window, so
/// that a failure names the window.
macro_rules! offer_matrix_tests {
    ($($test:ident: $client:ident, $server_window:expr;)+) => {
        $(
            #[test]
            fn $test() {
                offer_matrix(Client::$client, $server_window);
            }
        )+
    };
}

offer_matrix_tests! {
    websockets_offers_without_server_max_window_bits: Python, ServerWindow::NotOffered;
    websockets_offers_server_max_window_bits_8: Python, ServerWindow::Bits(8);
    websockets_offers_server_max_window_bits_9: Python, ServerWindow::Bits(9);
    websockets_offers_server_max_window_bits_10: Python, ServerWindow::Bits(10);
    websockets_offers_server_max_window_bits_11: Python, ServerWindow::Bits(11);
    websockets_offers_server_max_window_bits_12: Python, ServerWindow::Bits(12);
    websockets_offers_server_max_window_bits_13: Python, ServerWindow::Bits(13);
    websockets_offers_server_max_window_bits_14: Python, ServerWindow::Bits(14);
    websockets_offers_server_max_window_bits_15: Python, ServerWindow::Bits(15);
    ws_offers_without_server_max_window_bits: Node, ServerWindow::NotOffered;
    ws_offers_server_max_window_bits_without_a_value: Node, ServerWindow::Bare;
    ws_offers_server_max_window_bits_8: Node, ServerWindow::Bits(8);
    ws_offers_server_max_window_bits_9: Node, ServerWindow::Bits(9);
    ws_offers_server_max_window_bits_10: Node, ServerWindow::Bits(10);
    ws_offers_server_max_window_bits_11: Node, ServerWindow::Bits(11);
    ws_offers_server_max_window_bits_12: Node, ServerWindow::Bits(12);
    ws_offers_server_max_window_bits_13: Node, ServerWindow::Bits(13);
    ws_offers_server_max_window_bits_14: Node, ServerWindow::Bits(14);
    ws_offers_server_max_window_bits_15: Node, ServerWindow::Bits(15);
    raw_client_offers_without_server_max_window_bits: Raw, ServerWindow::NotOffered;
    raw_client_offers_server_max_window_bits_8: Raw, ServerWindow::Bits(8);
    raw_client_offers_server_max_window_bits_9: Raw, ServerWindow::Bits(9);
    raw_client_offers_server_max_window_bits_10: Raw, ServerWindow::Bits(10);
    raw_client_offers_server_max_window_bits_11: Raw, ServerWindow::Bits(11);
    raw_client_offers_server_max_window_bits_12: Raw, ServerWindow::Bits(12);
    raw_client_offers_server_max_window_bits_13: Raw, ServerWindow::Bits(13);
    raw_client_offers_server_max_window_bits_14: Raw, ServerWindow::Bits(14);
    raw_client_offers_server_max_window_bits_15: Raw, ServerWindow::Bits(15);
}

/// websockets' own default (`compression="deflate"`), no compression, and
/// several factories in one request (several offers: the server takes the
/// first it accepts, websockets the first factory that accepts the answer).
#[test]
fn websockets_default_offer_no_compression_and_several_offers() {
    let script = |label: &str, json: String, large: bool| Combination {
        label: label.to_owned(),
        request: ClientRequest::Script(json),
        large,
    };
    let factories = |offers: &[OfferParams]| {
        let (labels, jsons): (Vec<String>, Vec<String>) =
            offers.iter().map(|&o| python_factory(o)).unzip();
        script(
            &format!("extensions=[{}]", labels.join(", ")),
            format!("{{\"offers\": [{}], \"large\": false}}", jsons.join(", ")),
            false,
        )
    };
    let usual = OfferParams::USUAL;
    let combinations = [
        script(
            "connect(compression=\"deflate\") (the default)",
            "{\"compression\": \"deflate\", \"large\": true}".to_owned(),
            true,
        ),
        script(
            "connect(compression=None)",
            "{\"compression\": null, \"large\": true}".to_owned(),
            true,
        ),
        // The first offer declined (8-bit server window), the second taken.
        factories(&[
            OfferParams {
                server_window: ServerWindow::Bits(8),
                ..usual
            },
            usual,
        ]),
        // The first offer taken.
        factories(&[
            OfferParams {
                server_no_context_takeover: true,
                client_window: ClientWindow::NotOffered,
                ..usual
            },
            OfferParams {
                server_window: ServerWindow::Bits(12),
                ..usual
            },
        ]),
        factories(&[
            OfferParams {
                server_window: ServerWindow::Bits(9),
                client_window: ClientWindow::Bits(9),
                ..usual
            },
            OfferParams {
                client_no_context_takeover: true,
                ..usual
            },
        ]),
    ];
    check_combinations(Client::Python, &[], &combinations, true);
}

/// ws's own default (`perMessageDeflate: true`: threshold 1024) and no
/// compression (`perMessageDeflate: false`).
#[test]
fn ws_default_options_and_no_compression() {
    let combinations = [
        Combination {
            label: "perMessageDeflate: true (the default)".to_owned(),
            request: ClientRequest::Script(
                "{\"perMessageDeflate\": true, \"large\": true}".to_owned(),
            ),
            large: true,
        },
        Combination {
            label: "perMessageDeflate: false".to_owned(),
            request: ClientRequest::Script(
                "{\"perMessageDeflate\": false, \"large\": true}".to_owned(),
            ),
            large: true,
        },
    ];
    check_combinations(Client::Node, &[], &combinations, true);
}

/// Offers written as no library writes them, each with the offer the server
/// must take (None: decline them all).
const RAW_HEADER_FORMS: &[(&[&str], Option<&str>)] = &[
    // Several offers in one header: the first is taken.
    (
        &["permessage-deflate; server_max_window_bits=10, permessage-deflate"],
        Some("permessage-deflate; server_max_window_bits=10"),
    ),
    // Offers in two header lines: the first is taken.
    (
        &[
            "permessage-deflate; client_no_context_takeover",
            "permessage-deflate; server_no_context_takeover",
        ],
        Some("permessage-deflate; client_no_context_takeover"),
    ),
    // Another extension in the first line, the offer in the second.
    (
        &[
            "x-webkit-deflate-frame",
            "permessage-deflate; client_max_window_bits=11",
        ],
        Some("permessage-deflate; client_max_window_bits=11"),
    ),
    // A quoted comma and semicolon in another extension's parameter.
    (
        &[r#"x-foo; a="1,2;3", permessage-deflate; client_max_window_bits"#],
        Some("permessage-deflate; client_max_window_bits"),
    ),
    // Quoted window values (RFC 7692 §7.1: the unquoted value counts).
    (
        &[r#"permessage-deflate; server_max_window_bits="10"; client_max_window_bits="12""#],
        Some("permessage-deflate; server_max_window_bits=10; client_max_window_bits=12"),
    ),
    // No spaces.
    (
        &["permessage-deflate;server_no_context_takeover;client_max_window_bits=9"],
        Some("permessage-deflate; server_no_context_takeover; client_max_window_bits=9"),
    ),
    // Unacceptable first offers, then an acceptable one.
    (
        &[
            "permessage-deflate; server_max_window_bits=8, permessage-deflate; client_max_window_bits=9",
        ],
        Some("permessage-deflate; client_max_window_bits=9"),
    ),
    (
        &["permessage-deflate; x_unknown, permessage-deflate; server_no_context_takeover"],
        Some("permessage-deflate; server_no_context_takeover"),
    ),
    (
        &[
            "permessage-deflate; server_max_window_bits, permessage-deflate; server_max_window_bits=12",
        ],
        Some("permessage-deflate; server_max_window_bits=12"),
    ),
    (
        &[
            "permessage-deflate; client_max_window_bits=16, permessage-deflate; client_max_window_bits=10",
        ],
        Some("permessage-deflate; client_max_window_bits=10"),
    ),
    (
        &[
            "permessage-deflate; server_no_context_takeover; server_no_context_takeover, permessage-deflate",
        ],
        Some("permessage-deflate"),
    ),
    (
        &[
            "permessage-deflate; client_no_context_takeover=1, permessage-deflate; client_no_context_takeover",
        ],
        Some("permessage-deflate; client_no_context_takeover"),
    ),
    // The unacceptable offer in the first line, the acceptable in the second.
    (
        &[
            "permessage-deflate; server_max_window_bits=8",
            "permessage-deflate; server_max_window_bits=9",
        ],
        Some("permessage-deflate; server_max_window_bits=9"),
    ),
    // Only unacceptable offers: plain frames.
    (
        &[
            "permessage-deflate; server_max_window_bits=8, permessage-deflate; client_max_window_bits=7",
        ],
        None,
    ),
];

#[test]
fn raw_client_header_forms() {
    let combinations: Vec<Combination> = RAW_HEADER_FORMS
        .iter()
        .map(|&(values, accepted)| {
            // The offer the checks derive must be the one this table states.
            let derived = offer_to_accept(Some(values.join(", ").as_str())).unwrap();
            assert_eq!(
                derived.map(|offer| offer.to_string()).as_deref(),
                accepted,
                "{values:?}"
            );
            raw_combination(values, false)
        })
        .collect();
    check_combinations(Client::Raw, &[], &combinations, true);
}

// ---------------------------------------------------------------------------
// Parameters the server imposes
// ---------------------------------------------------------------------------

/// Parameters the server imposes unasked (RFC 7692 §7.1.1.1, §7.1.1.2,
/// §7.1.2.1): the client must accept them and the server honour them.
fn against_server_side_limits(client: Client) {
    let host_args = [
        "--deflate-server-no-context-takeover",
        "--deflate-client-no-context-takeover",
        "--deflate-server-max-window-bits",
        "9",
        "--deflate-client-max-window-bits",
        "10",
    ];
    let combinations = [client.combination(OfferParams::USUAL)];
    let Some(connections) = check_combinations(client, &host_args, &combinations, false) else {
        return;
    };
    assert_answer_params(
        &connections[0],
        &[
            "server_no_context_takeover",
            "client_no_context_takeover",
            "server_max_window_bits=9",
            "client_max_window_bits=10",
        ],
    );
}

/// zlib-based clients (Python websockets) cannot compress with an 8-bit
/// window and refuse an answer of 8: the server answers 9 unless the client
/// offered 8 itself.
fn against_client_max_window_bits_8(client: Client) {
    let host_args = ["--deflate-client-max-window-bits", "8"];
    let combinations = [client.combination(OfferParams::USUAL)];
    let Some(connections) = check_combinations(client, &host_args, &combinations, false) else {
        return;
    };
    assert_answer_params(&connections[0], &["client_max_window_bits=9"]);
}

/// `scenario: test(Client), …;` defines each `#[test] fn test()` as
/// `scenario(Client::…)`.
macro_rules! client_tests {
    ($($scenario:ident: $($test:ident($client:ident)),+;)+) => {
        $($(
            #[test]
            fn $test() {
                $scenario(Client::$client);
            }
        )+)+
    };
}

client_tests! {
    against_server_side_limits:
        websockets_against_server_side_limits(Python),
        ws_against_server_side_limits(Node),
        raw_client_against_server_side_limits(Raw);
    against_client_max_window_bits_8:
        websockets_against_client_max_window_bits_8(Python),
        ws_against_client_max_window_bits_8(Node),
        raw_client_against_client_max_window_bits_8(Raw);
}

// ---------------------------------------------------------------------------
// tokio-tungstenite (no extension) and the raw client
// ---------------------------------------------------------------------------

/// Compressible JSON-like text of exactly `size` bytes.
fn text_message(size: usize, seed: u64) -> String {
    let mut next = xorshift(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let words = ["alpha", "beta", "gamma", "état", "Grüße", "日本語", "ok"];
    let mut s = String::new();
    let mut i = 0;
    while s.len() < size {
        let w = |n: u64| words[(n % words.len() as u64) as usize];
        s.push_str(&format!(
            "{{\"id\":{i},\"name\":\"{}\",\"tags\":[\"{}\"],\"value\":{}}},",
            w(next()),
            w(next()),
            next() % 100_000
        ));
        i += 1;
    }
    let mut cut = size;
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    s.truncate(cut);
    while s.len() < size {
        s.push('x');
    }
    s
}

/// Compressible binary: runs of a few pseudo-random patterns.
fn binary_message(size: usize, seed: u64) -> Vec<u8> {
    let mut next = xorshift(seed.wrapping_mul(0x2545_f491_4f6c_dd1d) | 1);
    let patterns: Vec<Vec<u8>> = (0..16)
        .map(|_| {
            let len = 4 + (next() % 60) as usize;
            (0..len).map(|_| next() as u8).collect()
        })
        .collect();
    let mut out = Vec::with_capacity(size + 64);
    while out.len() < size {
        out.extend_from_slice(&patterns[(next() % 16) as usize]);
        out.push(next() as u8);
    }
    out.truncate(size);
    out
}

/// The messages of `sizes` (some of [`SIZES`]): (opcode, payload), text
/// and binary of each size.
fn messages(sizes: &[usize]) -> Vec<(u8, Vec<u8>)> {
    let mut out = Vec::new();
    for &size in sizes {
        let seed = SIZES.iter().position(|&s| s == size).expect("one of SIZES") as u64;
        out.push((op::TEXT, text_message(size, seed + 1).into_bytes()));
        out.push((op::BINARY, binary_message(size, seed + 11)));
    }
    out
}

/// The value of response header `name` (case-insensitive), if present.
fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().skip(1).find_map(|line| {
        let (n, v) = line.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// Inflate one of the server's messages; panics if it does not inflate.
fn inflate(d: &mut Decompress, compressed: &[u8], expected_len: usize) -> Vec<u8> {
    inflate_message(d, compressed, expected_len)
        .unwrap_or_else(|e| panic!("the server's message does not inflate: {e}"))
}

/// Read one whole message: (opcode, RSV bits of its first frame, payload as
/// received).
async fn read_message(client: &mut RawClient) -> (u8, u8, Vec<u8>) {
    let first = client.read_frame().await.expect("a frame");
    assert_ne!(first.opcode, op::CLOSE, "closed: {:?}", first.close_code());
    let (opcode, rsv, mut payload) = (first.opcode, first.rsv, first.payload);
    let mut fin = first.fin;
    while !fin {
        let next = client.read_frame().await.expect("a continuation frame");
        assert_eq!(next.opcode, op::CONTINUATION);
        assert_eq!(next.rsv, 0, "RSV bits on a continuation frame");
        payload.extend_from_slice(&next.payload);
        fin = next.fin;
    }
    (opcode, rsv, payload)
}

const MASK: Option<[u8; 4]> = Some([0x5a, 0xc3, 0x17, 0x8e]);

/// Start the echo guest with `host_args` and open a raw connection with
/// extra handshake `headers`; checks the 101 and the
/// `Sec-WebSocket-Extensions` answer (`answer`, or none).
async fn open(host_args: &[&str], headers: &[&str], answer: Option<&str>) -> (Host, RawClient) {
    let host = Host::start("echo", host_args);
    let (client, head) = RawClient::handshake(host.addr, "/", headers).await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert_eq!(header(&head, "Sec-WebSocket-Extensions"), answer, "{head}");
    (host, client)
}

/// On a connection without the extension: every message comes back exactly,
/// in plain frames, and a compressed frame (RSV1 was not negotiated) fails
/// the connection.
async fn assert_plain_connection(host_args: &[&str], headers: &[&str]) {
    let (_host, mut client) = open(host_args, headers, None).await;
    for (opcode, payload) in messages(&SIZES) {
        client
            .send_raw(&support::encode_frame(true, 0, opcode, &payload, MASK))
            .await;
        let (got_opcode, rsv, echo) = read_message(&mut client).await;
        assert_eq!((got_opcode, rsv), (opcode, 0), "plain frames only");
        assert!(echo == payload, "{} B echo differs", payload.len());
    }
    let mut c = Compress::new(Compression::default(), false);
    let z = deflate_message(&mut c, b"hello hello hello");
    client
        .send_raw(&support::encode_frame(true, RSV1, op::TEXT, &z, MASK))
        .await;
    assert_eq!(client.expect_close().await.0, 1002);
}

/// Send `payload` compressed with `c` in one frame and check its echo,
/// inflated with `d` (the server sends echoes under 64 bytes plain);
/// returns the echo's payload bytes on the wire.
async fn compressed_echo(
    client: &mut RawClient,
    c: &mut Compress,
    d: &mut Decompress,
    opcode: u8,
    payload: &[u8],
) -> usize {
    let z = deflate_message(c, payload);
    client
        .send_raw(&support::encode_frame(true, RSV1, opcode, &z, MASK))
        .await;
    let (got_opcode, rsv, wire) = read_message(client).await;
    assert_eq!(got_opcode, opcode);
    let echo = if rsv == RSV1 {
        inflate(d, &wire, payload.len())
    } else {
        assert_eq!(rsv, 0);
        assert!(
            payload.len() < 64,
            "{} B echo sent uncompressed",
            payload.len()
        );
        wire.clone()
    };
    assert!(echo == payload, "{} B echo differs", payload.len());
    wire.len()
}

/// `Sec-WebSocket-Extensions` (every line of it, joined with ", ") in a
/// response head, if present.
fn extensions_header(head: &str) -> Option<String> {
    let values: Vec<&str> = head
        .lines()
        .skip(1)
        .filter_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.trim()
                .eq_ignore_ascii_case("Sec-WebSocket-Extensions")
                .then(|| value.trim())
        })
        .collect();
    (!values.is_empty()).then(|| values.join(", "))
}

/// A compressor for the raw client's messages with at most a `bits`-bit
/// window. zlib cannot compress with an 8-bit window: for 8 it writes stored
/// blocks only, which refer back to nothing and so keep within any window.
fn raw_compressor(bits: u8) -> Compress {
    if bits <= 8 {
        Compress::new_with_window_bits(Compression::none(), false, 9)
    } else {
        Compress::new_with_window_bits(Compression::new(6), false, bits)
    }
}

/// The raw client offering `offers` (one `Sec-WebSocket-Extensions` line
/// each): sends every message of `sizes_for(large)` twice, compressed as the
/// answer allows (a fresh compressor per message under
/// `client_no_context_takeover`, windows as answered), and inflates each echo
/// with a fresh decompressor per message under `server_no_context_takeover`,
/// so an echo referring back into an earlier message fails to inflate.
///
/// The decompressor is made with the answered server window, but zlib-rs
/// keeps 32 KiB of history whatever its window bits and so does not catch a
/// server exceeding its window; the websockets and ws connections do (zlib
/// refuses a reference into an earlier message beyond its window).
async fn raw_connection(
    addr: std::net::SocketAddr,
    offers: Vec<String>,
    large: bool,
) -> Connection {
    let lines: Vec<String> = offers
        .iter()
        .map(|value| format!("Sec-WebSocket-Extensions: {value}"))
        .collect();
    let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
    let (mut client, head) = RawClient::handshake(addr, "/", &lines).await;
    let offered = (!offers.is_empty()).then(|| offers.join(", "));
    let mut connection = Connection {
        offered: offered.clone(),
        answered: extensions_header(&head),
        ..Connection::default()
    };
    if !head.starts_with("HTTP/1.1 101") {
        connection.errors.push(format!("no 101: {head}"));
        return connection;
    }
    let in_force = match connection.answered.as_deref() {
        None => None,
        Some(answered) => match InForce::from_answer(answered) {
            Some(in_force) => Some(in_force),
            None => {
                connection
                    .errors
                    .push("the raw client cannot use the answer".to_owned());
                return connection;
            }
        },
    };
    // The client's window: the answer's limit, else its own offer's, else 15.
    let offered_client_window = offer_to_accept(offered.as_deref())
        .ok()
        .flatten()
        .and_then(|offer| offer.window_bits(CLIENT_MAX_WINDOW_BITS));
    let client_window = in_force
        .and_then(|f| f.client_window)
        .or(offered_client_window)
        .unwrap_or(15);
    let server_window = in_force.map_or(15, |f| f.server_window);
    let mut compressor = raw_compressor(client_window);
    // flate2 takes 9..=15; the server never answers 8 (it declines such
    // offers), and a 9-bit decompressor takes any 8-bit stream anyway.
    let server_window = server_window.max(9);
    let mut decompressor = Decompress::new_with_window_bits(false, server_window);
    for (opcode, payload) in messages(sizes_for(large)) {
        let kind = if opcode == op::TEXT { "text" } else { "binary" };
        for round in 0..2 {
            let what = format!("{kind} {} B round {round}", payload.len());
            let frame = match in_force {
                Some(in_force) => {
                    if in_force.client_no_context_takeover {
                        compressor = raw_compressor(client_window);
                    }
                    if in_force.server_no_context_takeover {
                        decompressor = Decompress::new_with_window_bits(false, server_window);
                    }
                    let compressed = deflate_message(&mut compressor, &payload);
                    support::encode_frame(true, RSV1, opcode, &compressed, MASK)
                }
                None => support::encode_frame(true, 0, opcode, &payload, MASK),
            };
            client.send_raw(&frame).await;
            let (echo_opcode, rsv, wire) = read_message(&mut client).await;
            let echo = if rsv == RSV1 {
                match inflate_message(&mut decompressor, &wire, payload.len()) {
                    Ok(echo) => echo,
                    Err(e) => {
                        connection.errors.push(format!(
                            "{what}: the echo does not inflate with a {server_window}-bit window{}: {e}",
                            if in_force.is_some_and(|f| f.server_no_context_takeover) {
                                " and no context"
                            } else {
                                ""
                            }
                        ));
                        return connection;
                    }
                }
            } else {
                wire.clone()
            };
            let ok = echo_opcode == opcode && (rsv == 0 || rsv == RSV1) && echo == payload;
            if !ok {
                connection.errors.push(format!(
                    "{what}: the echo differs (opcode {echo_opcode}, RSV {rsv:#05b})"
                ));
            }
            connection.echoes.push(Echo {
                kind: kind.to_owned(),
                size: payload.len(),
                round,
                ok,
                rsv1: rsv == RSV1,
                sent_rsv1: in_force.is_some(),
                wire: Some(wire.len()),
            });
        }
    }
    client
        .send_raw(&support::encode_frame(
            true,
            0,
            op::CLOSE,
            &1000u16.to_be_bytes(),
            MASK,
        ))
        .await;
    let (code, _) = client.expect_close().await;
    if code != 1000 {
        connection.errors.push(format!("closed with {code}"));
    }
    connection
}

/// The raw client's connections for `combinations`, one after another, each
/// on a task of its own so that a panic (a timeout, an unexpected close)
/// fails only its combination.
fn raw_connections(addr: std::net::SocketAddr, combinations: &[Combination]) -> Vec<Connection> {
    let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime");
    runtime.block_on(async {
        let mut connections = Vec::new();
        for combination in combinations {
            let ClientRequest::Headers(offers) = &combination.request else {
                panic!("{} is not a raw client combination", combination.label);
            };
            let task = tokio::spawn(raw_connection(addr, offers.clone(), combination.large));
            connections.push(task.await.unwrap_or_else(|e| {
                let panic = e.into_panic();
                let message = panic
                    .downcast_ref::<String>()
                    .map(String::as_str)
                    .or_else(|| panic.downcast_ref::<&str>().copied())
                    .unwrap_or("?");
                Connection {
                    offered: (!offers.is_empty()).then(|| offers.join(", ")),
                    errors: vec![format!("the raw client panicked: {message}")],
                    ..Connection::default()
                }
            }));
        }
        connections
    })
}

/// The raw client's check of `server_no_context_takeover` has teeth: a
/// fresh decompressor refuses a message that refers back into an earlier
/// one, which the decompressor that inflated the earlier one takes.
#[test]
fn a_fresh_decompressor_refuses_references_into_earlier_messages() {
    let message = text_message(10 << 10, 5).into_bytes();
    let mut c = Compress::new(Compression::new(6), false);
    let first = deflate_message(&mut c, &message);
    let repeat = deflate_message(&mut c, &message);
    let mut d = Decompress::new(false);
    assert!(inflate_message(&mut d, &first, message.len()).is_ok_and(|m| m == message));
    assert!(inflate_message(&mut d, &repeat, message.len()).is_ok_and(|m| m == message));
    assert!(inflate_message(&mut Decompress::new(false), &repeat, message.len()).is_err());
}

#[tokio::test]
async fn tokio_tungstenite_without_the_extension_gets_plain_frames() {
    let host = Host::start("echo", &[]);
    let (mut ws, response) = tokio_tungstenite::connect_async(host.url("/"))
        .await
        .unwrap();
    assert!(
        response.headers().get("sec-websocket-extensions").is_none(),
        "{response:?}"
    );
    // tungstenite fails the connection on any RSV bit it did not negotiate,
    // so exact echoes also show the frames were plain.
    for (opcode, payload) in messages(&SIZES) {
        for _ in 0..2 {
            let message = if opcode == op::TEXT {
                Message::text(String::from_utf8(payload.clone()).unwrap())
            } else {
                Message::binary(payload.clone())
            };
            ws.send(message.clone()).await.unwrap();
            let echo = ws.next().await.expect("an echo").expect("a valid echo");
            assert!(echo == message, "{} B echo differs", payload.len());
        }
    }
    ws.close(None).await.unwrap();
}

#[tokio::test]
async fn raw_client_without_an_offer_gets_plain_frames() {
    assert_plain_connection(&[], &[]).await;
}

#[tokio::test]
async fn raw_client_offer_is_refused_with_deflate_false() {
    assert_plain_connection(
        &["--deflate", "false"],
        &["Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits"],
    )
    .await;
}

#[tokio::test]
async fn raw_client_compressed_frames_round_trip() {
    let (_host, mut client) = open(
        &[],
        &["Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits"],
        Some("permessage-deflate"),
    )
    .await;
    // Context takeover both ways: one compressor and one decompressor for
    // the whole connection.
    let mut c = Compress::new(Compression::new(6), false);
    let mut d = Decompress::new(false);
    let mut sizes_10k = Vec::new();
    for (opcode, payload) in messages(&SIZES) {
        for round in 0..2 {
            let wire = compressed_echo(&mut client, &mut c, &mut d, opcode, &payload).await;
            if payload.len() >= 64 {
                assert!(wire < payload.len() / 2, "{} B", payload.len());
            }
            if payload.len() == 10 << 10 {
                sizes_10k.push((opcode, round, wire));
            }
        }
    }
    // The second, identical 10 KiB message refers back to the first.
    for pair in sizes_10k.chunks(2) {
        assert!(pair[1].2 * 3 < pair[0].2, "{sizes_10k:?}");
    }

    // A compressed message in three fragments: RSV1 on the first only.
    let message = text_message(30_000, 99).into_bytes();
    let z = deflate_message(&mut c, &message);
    let third = z.len() / 3;
    let parts = [&z[..third], &z[third..2 * third], &z[2 * third..]];
    for (i, part) in parts.iter().enumerate() {
        let (rsv, opcode) = if i == 0 {
            (RSV1, op::TEXT)
        } else {
            (0, op::CONTINUATION)
        };
        client
            .send_raw(&support::encode_frame(i == 2, rsv, opcode, part, MASK))
            .await;
    }
    let (opcode, rsv, wire) = read_message(&mut client).await;
    assert_eq!((opcode, rsv), (op::TEXT, RSV1));
    assert!(inflate(&mut d, &wire, message.len()) == message);

    // An uncompressed message on a compressed connection is fine too.
    let plain = text_message(5000, 7).into_bytes();
    client
        .send_raw(&support::encode_frame(true, 0, op::TEXT, &plain, MASK))
        .await;
    let (opcode, rsv, wire) = read_message(&mut client).await;
    assert_eq!((opcode, rsv), (op::TEXT, RSV1));
    assert!(inflate(&mut d, &wire, plain.len()) == plain);

    client
        .send_raw(&support::encode_frame(
            true,
            0,
            op::CLOSE,
            &1000u16.to_be_bytes(),
            MASK,
        ))
        .await;
    assert_eq!(client.expect_close().await.0, 1000);
}

#[tokio::test]
async fn raw_client_server_no_context_takeover_and_9_bit_window() {
    // Each echo must inflate on its own, with a fresh decompressor: no
    // reference into earlier messages. (zlib-rs does not enforce the 9-bit
    // window; the websockets and ws tests of server_max_window_bits do.)
    let (_host, mut client) = open(
        &[
            "--deflate-server-no-context-takeover",
            "--deflate-server-max-window-bits",
            "9",
        ],
        &["Sec-WebSocket-Extensions: permessage-deflate"],
        Some("permessage-deflate; server_no_context_takeover; server_max_window_bits=9"),
    )
    .await;
    let mut c = Compress::new(Compression::new(6), false);
    for (opcode, payload) in messages(&SIZES) {
        for _ in 0..2 {
            let mut d = Decompress::new_with_window_bits(false, 9);
            compressed_echo(&mut client, &mut c, &mut d, opcode, &payload).await;
        }
    }
}

#[tokio::test]
async fn a_guest_can_turn_compression_off_for_its_connection() {
    let host = Host::start("misbehave", &[]);
    let offer = "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits";
    let (mut client, head) = RawClient::handshake(host.addr, "/no-compression", &[offer]).await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert_eq!(header(&head, "Sec-WebSocket-Extensions"), None, "{head}");
    let payload = text_message(10 << 10, 7).into_bytes();
    client
        .send_raw(&support::encode_frame(true, 0, op::TEXT, &payload, MASK))
        .await;
    let (opcode, rsv, echo) = read_message(&mut client).await;
    assert_eq!((opcode, rsv), (op::TEXT, 0), "plain frames only");
    assert!(echo == payload, "the echo differs");
}
