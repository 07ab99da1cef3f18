//! permessage-deflate (RFC 7692) against clients no one here wrote: Python's
//! `websockets` and Node's `ws` (scripts in tests/interop/), tokio-tungstenite
//! without the extension, and hand-built compressed frames through the raw
//! client.
//!
//! Every client exchanges text and binary messages of 10 B, 10 KiB and 1 MiB
//! with the echo guest (each message twice, so that context takeover is
//! exercised) and checks exact echoes; the tests also check that compression
//! was negotiated (the `Sec-WebSocket-Extensions` answer) and actually used
//! (RSV1 on the server's frames, or bytes on the wire).
//!
//! The Python and Node clients are installed on first use, at pinned
//! versions ([`WEBSOCKETS_VERSION`], [`WS_VERSION`]): a venv with `websockets`
//! from PyPI in `<target>/interop/venv`, and `ws` from npm in
//! `<target>/interop/node`, each guarded by a file lock so that parallel test
//! binaries do not race, and marked ready by a file written last that names
//! the version (so changing a pin reinstalls). Without `python3` (or
//! `node`/`npm`) the tests print SKIP and pass, unless `CI` is set: then they
//! fail.

#[path = "interop/deflate_codec.rs"]
mod deflate_codec;
mod support;

use std::fs::{self, File};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use deflate_codec::{deflate_message, inflate_message, xorshift};
use flate2::{Compress, Compression, Decompress};
use futures_util::{SinkExt, StreamExt};
use support::{Host, RawClient, op};
use tokio_tungstenite::tungstenite::Message;

const SIZES: [usize; 3] = [10, 10 << 10, 1 << 20];
/// The release of Python's `websockets` the tests install.
const WEBSOCKETS_VERSION: &str = "17.4";
/// The release of Node's `ws` the tests install.
const WS_VERSION: &str = "8.23.0";
/// RSV1 as `encode_frame` takes it and `Frame::rsv` reports it.
const RSV1: u8 = 0b100;

// ---------------------------------------------------------------------------
// Environment: target dir, CI, tool installation
// ---------------------------------------------------------------------------

/// The cargo target dir (`<target>/release/host` is the binary under test).
fn target_dir() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_host"))
        .parent()
        .and_then(Path::parent)
        .expect("the host binary lives in <target>/<profile>/")
        .to_path_buf()
}

fn interop_dir() -> PathBuf {
    let dir = target_dir().join("interop");
    fs::create_dir_all(&dir).expect("creating <target>/interop");
    dir
}

fn scripts_dir() -> PathBuf {
    support::workspace().join("tests").join("interop")
}

/// `CI` set (to anything but empty, `0` or `false`).
fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "0" && !v.eq_ignore_ascii_case("false"))
}

/// Whether `program --version` runs.
fn runs(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A missing tool: fail under CI, else say SKIP (once per tool and process).
fn missing(tool: &str) -> Option<PathBuf> {
    assert!(
        !in_ci(),
        "{tool} is required for the permessage-deflate interop tests when CI is set"
    );
    // Straight to stderr: libtest's capture would hide an `eprintln!`.
    let _ = writeln!(
        std::io::stderr(),
        "SKIP: {tool} not found; the permessage-deflate interop tests that need it are skipped \
         (set CI to make this an error)"
    );
    None
}

/// Run `cmd` and panic with its output unless it succeeds.
fn run_checked(mut cmd: Command, what: &str) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}):\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Under an exclusive lock on `<interop>/NAME.lock`: unless `<dir>/.ready`
/// holds `installed` (what the install makes, e.g. `websockets==17.4`),
/// remove whatever `dir` holds (a failed attempt or another version), run
/// `install`, then write `installed` to `.ready`. Readers only trust `dir`
/// once `.ready` says what they need.
fn install_once(name: &str, installed: &str, install: impl FnOnce(&Path)) -> PathBuf {
    let interop = interop_dir();
    let dir = interop.join(name);
    let ready = dir.join(".ready");
    let lock = File::create(interop.join(format!("{name}.lock"))).expect("creating the lock file");
    lock.lock()
        .expect("locking the install of the interop clients");
    if fs::read_to_string(&ready).ok().as_deref() != Some(installed) {
        if dir.exists() {
            fs::remove_dir_all(&dir).expect("removing a half-made or outdated install");
        }
        install(&dir);
        fs::write(&ready, installed).expect("marking the install ready");
    }
    drop(lock);
    dir
}

/// The venv's python with `websockets` [`WEBSOCKETS_VERSION`], or None
/// (SKIP) without python3.
fn python() -> Option<PathBuf> {
    static PYTHON: OnceLock<Option<PathBuf>> = OnceLock::new();
    PYTHON
        .get_or_init(|| {
            if !runs("python3") {
                return missing("python3");
            }
            let requirement = format!("websockets=={WEBSOCKETS_VERSION}");
            let venv = install_once("venv", &requirement, |venv| {
                let mut cmd = Command::new("python3");
                cmd.args(["-m", "venv"]).arg(venv);
                run_checked(cmd, "creating the Python venv (python3 -m venv)");
                let mut cmd = Command::new(venv.join("bin").join("python"));
                cmd.args([
                    "-m",
                    "pip",
                    "install",
                    "--disable-pip-version-check",
                    "--quiet",
                    &requirement,
                ]);
                run_checked(cmd, &format!("pip install {requirement}"));
            });
            Some(venv.join("bin").join("python"))
        })
        .clone()
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
// Running the client scripts
// ---------------------------------------------------------------------------

/// One echo as a script reports it.
#[derive(Debug)]
struct Echo {
    kind: String,
    size: usize,
    round: usize,
    ok: bool,
    /// RSV1 on the server's (first) frame (websockets only).
    rsv1: Option<bool>,
    /// Compressed payload bytes of the echo (websockets) or bytes the
    /// socket read during the exchange (ws).
    wire: Option<usize>,
}

#[derive(Debug)]
struct Report {
    raw: String,
    response_extensions: Option<String>,
    echoes: Vec<Echo>,
}

impl Report {
    fn echo(&self, kind: &str, size: usize, round: usize) -> &Echo {
        self.echoes
            .iter()
            .find(|e| e.kind == kind && e.size == size && e.round == round)
            .unwrap_or_else(|| panic!("no {kind} {size} round {round} echo in {}", self.raw))
    }

    /// Every kind/size/round was echoed exactly.
    fn assert_all_echoed(&self) {
        for kind in ["text", "binary"] {
            for size in SIZES {
                for round in 0..2 {
                    assert!(
                        self.echo(kind, size, round).ok,
                        "{kind} {size} B round {round} not echoed exactly: {}",
                        self.raw
                    );
                }
            }
        }
    }

    /// The server answered with `permessage-deflate`, whatever the parameters.
    fn assert_negotiated(&self) {
        let header = self.response_extensions.as_deref().unwrap_or_default();
        assert!(
            header.split(';').next().map(str::trim) == Some("permessage-deflate"),
            "permessage-deflate was not negotiated: {}",
            self.raw
        );
    }

    /// The negotiated response has the extension and exactly `params`
    /// (order-insensitive).
    fn assert_extension(&self, params: &[&str]) {
        let header = self
            .response_extensions
            .as_deref()
            .unwrap_or_else(|| panic!("no Sec-WebSocket-Extensions answer: {}", self.raw));
        let mut parts = header.split(';').map(str::trim);
        assert_eq!(parts.next(), Some("permessage-deflate"), "{header}");
        let mut got: Vec<&str> = parts.collect();
        let mut want = params.to_vec();
        got.sort_unstable();
        want.sort_unstable();
        assert_eq!(got, want, "answered: {header}");
    }
}

/// Run a client script against `host` and parse its report; panics (with
/// the script's output and the host's logs) if it failed.
fn run_script(host: &Host, mut cmd: Command, mode: &str) -> Report {
    cmd.arg(host.url("/")).arg(mode);
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    eprintln!("[{mode}] {}", stdout.trim());
    assert!(
        out.status.success(),
        "client {cmd:?} failed ({}):\nstdout: {stdout}\nstderr: {stderr}\nhost logs:\n{}",
        out.status,
        host.logs().join("\n")
    );
    let line = stdout.lines().last().unwrap_or_default();
    let json = Json::parse(line).unwrap_or_else(|e| panic!("bad report ({e}): {stdout}"));
    let echoes = json
        .get("echoes")
        .arr()
        .iter()
        .map(|e| Echo {
            kind: e.get("kind").str().unwrap_or_default().to_owned(),
            size: e.get("size").num().unwrap_or(-1.0) as usize,
            round: e.get("round").num().unwrap_or(-1.0) as usize,
            ok: e.get("ok").bool() == Some(true),
            rsv1: e.get("rsv1").bool(),
            wire: e
                .get("wire_size")
                .num()
                .or_else(|| e.get("wire_read").num())
                .map(|n| n as usize),
        })
        .collect();
    Report {
        raw: line.to_owned(),
        response_extensions: json.get("response_extensions").str().map(str::to_owned),
        echoes,
    }
}

/// The client libraries the scripts in tests/interop/ drive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Client {
    /// Python's `websockets` (websockets_client.py).
    Python,
    /// Node's `ws` (ws_client.mjs).
    Node,
}

impl Client {
    /// Run this client's script against `host` offering `mode`; None (SKIP)
    /// without its runtime.
    fn run(self, host: &Host, mode: &str) -> Option<Report> {
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
        };
        Some(run_script(host, cmd, mode))
    }
}

/// Start the echo guest with `host_args`, run `client` offering `mode` and
/// check that every message came back exactly; None (SKIP) without the
/// client's runtime.
fn echoed(client: Client, host_args: &[&str], mode: &str) -> Option<Report> {
    let host = Host::start("echo", host_args);
    let report = client.run(&host, mode)?;
    report.assert_all_echoed();
    Some(report)
}

/// The server compressed every echo of 10 KiB and more: RSV1 set (if the
/// client reports it) and fewer than `max_ratio` times the message's bytes
/// on the wire.
fn assert_server_compressed(report: &Report, max_ratio: f64) {
    for kind in ["text", "binary"] {
        for size in [10 << 10, 1 << 20] {
            for round in 0..2 {
                let echo = report.echo(kind, size, round);
                if let Some(rsv1) = echo.rsv1 {
                    assert!(rsv1, "{kind} {size} B echo not compressed: {}", report.raw);
                }
                let wire = echo.wire.expect("wire bytes reported");
                assert!(
                    (wire as f64) < size as f64 * max_ratio,
                    "{kind} {size} B echo took {wire} bytes on the wire: {}",
                    report.raw
                );
            }
        }
    }
}

/// With context takeover the second, identical 10 KiB echo refers back to
/// the first and is much smaller; without it, both compress the same.
fn assert_server_context_takeover(report: &Report, takeover: bool) {
    for kind in ["text", "binary"] {
        let first = report.echo(kind, 10 << 10, 0).wire.expect("wire bytes");
        let second = report.echo(kind, 10 << 10, 1).wire.expect("wire bytes");
        if takeover {
            assert!(
                second * 3 < first,
                "{kind}: the repeated message did not use the first one ({first} then {second} bytes): {}",
                report.raw
            );
        } else {
            assert_eq!(
                first, second,
                "{kind}: the server kept context across messages: {}",
                report.raw
            );
        }
    }
}

// ---------------------------------------------------------------------------
// Scenarios for the Python websockets and Node ws clients
// ---------------------------------------------------------------------------

fn default_offer(client: Client) {
    let Some(report) = echoed(client, &[], "default") else {
        return;
    };
    // What the client offers by default is its choice (today both offer
    // `client_max_window_bits` without a value, answered with nothing).
    report.assert_negotiated();
    assert_server_compressed(&report, 0.5);
    assert_server_context_takeover(&report, true);
    // Below --deflate-min-size (64) the server sends plain frames (only
    // websockets reports RSV1).
    if client == Client::Python {
        assert_eq!(
            report.echo("text", 10, 0).rsv1,
            Some(false),
            "{}",
            report.raw
        );
    }
}

/// The client offers `param` alone and the server answers with exactly it,
/// compressing every echo; None (SKIP) without the client's runtime.
fn offer_answered(client: Client, param: &str) -> Option<Report> {
    let report = echoed(client, &[], param)?;
    report.assert_extension(&[param]);
    assert_server_compressed(&report, 0.5);
    Some(report)
}

fn client_no_context_takeover(client: Client) {
    // Checked with websockets only.
    if let Some(report) = offer_answered(client, "client_no_context_takeover")
        && client == Client::Python
    {
        assert_server_context_takeover(&report, true);
    }
}

fn server_no_context_takeover(client: Client) {
    if let Some(report) = offer_answered(client, "server_no_context_takeover") {
        assert_server_context_takeover(&report, false);
    }
}

fn client_max_window_bits_9(client: Client) {
    offer_answered(client, "client_max_window_bits=9");
}

/// The client inflates with a 10-bit window: a server reference further
/// back than 1 KiB would fail the 1 MiB echoes.
fn server_max_window_bits_10(client: Client) {
    offer_answered(client, "server_max_window_bits=10");
}

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
    let Some(report) = echoed(client, &host_args, "default") else {
        return;
    };
    report.assert_extension(&[
        "server_no_context_takeover",
        "client_no_context_takeover",
        "server_max_window_bits=9",
        "client_max_window_bits=10",
    ]);
    // A 512-byte window finds few repeats in the binary messages.
    assert_server_compressed(&report, 0.9);
    assert_server_context_takeover(&report, false);
}

/// zlib-based clients (Python websockets) cannot compress with an 8-bit
/// window and refuse an answer of 8: the server answers 9 unless the client
/// offered 8 itself.
fn against_client_max_window_bits_8(client: Client) {
    let host_args = ["--deflate-client-max-window-bits", "8"];
    let Some(report) = echoed(client, &host_args, "default") else {
        return;
    };
    assert_server_compressed(&report, 0.5);
}

fn without_compression(client: Client) {
    let Some(report) = echoed(client, &[], "none") else {
        return;
    };
    assert_eq!(report.response_extensions, None, "{}", report.raw);
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
    default_offer: websockets_default_offer(Python), ws_default_offer(Node);
    client_no_context_takeover:
        websockets_client_no_context_takeover(Python), ws_client_no_context_takeover(Node);
    server_no_context_takeover:
        websockets_server_no_context_takeover(Python), ws_server_no_context_takeover(Node);
    client_max_window_bits_9:
        websockets_client_max_window_bits_9(Python), ws_client_max_window_bits_9(Node);
    server_max_window_bits_10:
        websockets_server_max_window_bits_10(Python), ws_server_max_window_bits_10(Node);
    against_server_side_limits:
        websockets_against_server_side_limits(Python), ws_against_server_side_limits(Node);
    against_client_max_window_bits_8: websockets_against_client_max_window_bits_8(Python);
    without_compression: websockets_without_compression(Python);
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

/// All messages a test sends: (opcode, payload), text and binary of each size.
fn messages() -> Vec<(u8, Vec<u8>)> {
    let mut out = Vec::new();
    for (i, size) in SIZES.into_iter().enumerate() {
        out.push((op::TEXT, text_message(size, i as u64 + 1).into_bytes()));
        out.push((op::BINARY, binary_message(size, i as u64 + 11)));
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
    for (opcode, payload) in messages() {
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
    for (opcode, payload) in messages() {
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
    for (opcode, payload) in messages() {
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
    // Each echo must inflate on its own, with a fresh 9-bit-window
    // decompressor: no reference into earlier messages, none further back
    // than 512 bytes.
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
    for (opcode, payload) in messages() {
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
