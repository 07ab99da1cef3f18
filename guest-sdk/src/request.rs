//! The client's opening handshake request.

use crate::bindings::wsbox::websocket::types as raw;

/// One HTTP header. Values are bytes because HTTP does not promise UTF-8.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Header {
    /// The header name (compared case-insensitively).
    pub name: String,
    /// The header value, without surrounding whitespace.
    pub value: Vec<u8>,
}

impl Header {
    /// A header from a name and a value (`&str`, `String`, `&[u8]`, `Vec<u8>`).
    pub fn new(name: impl Into<String>, value: impl Into<Vec<u8>>) -> Self {
        Header {
            name: name.into(),
            value: value.into(),
        }
    }

    /// The value as text, if it is valid UTF-8.
    pub fn value_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.value).ok()
    }

    pub(crate) fn as_param(&self) -> raw::HeaderParam<'_> {
        raw::HeaderParam {
            name: &self.name,
            value: &self.value,
        }
    }
}

/// The opening handshake request as the host parsed and validated it
/// (`pendingRequest` / `RequestHead` in the seed).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    target: String,
    headers: Vec<Header>,
    subprotocols: Vec<String>,
    extensions: Vec<String>,
    remote_address: String,
}

impl Request {
    /// The request target as sent: path and query, e.g. `/chat?room=1`
    /// (`requestPath` in the seed).
    pub fn target(&self) -> &str {
        &self.target
    }

    /// The path without the query, e.g. `/chat`. Not percent-decoded.
    pub fn path(&self) -> &str {
        match self.target.split_once('?') {
            Some((path, _)) => path,
            None => &self.target,
        }
    }

    /// The raw query string after `?`, if there is one.
    pub fn query(&self) -> Option<&str> {
        self.target.split_once('?').map(|(_, query)| query)
    }

    /// The query's `name=value` pairs, percent-decoded (`+` is a space),
    /// in order. A pair without `=` has an empty value.
    pub fn query_pairs(&self) -> impl Iterator<Item = (String, String)> + '_ {
        self.query()
            .unwrap_or("")
            .split('&')
            .filter(|pair| !pair.is_empty())
            .map(|pair| {
                let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
                (percent_decode(name), percent_decode(value))
            })
    }

    /// The first value of the query parameter `name`, percent-decoded:
    /// `query_param("token")` is `Some("a b")` for `/?token=a%20b`.
    pub fn query_param(&self, name: &str) -> Option<String> {
        self.query_pairs()
            .find(|(n, _)| n == name)
            .map(|(_, value)| value)
    }

    /// Every header, in the order received.
    pub fn headers(&self) -> &[Header] {
        &self.headers
    }

    /// The value of the first header called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.header_values(name).next()
    }

    /// The value of the first header called `name` (case-insensitive), if
    /// it is valid UTF-8.
    pub fn header_str(&self, name: &str) -> Option<&str> {
        self.header(name)
            .and_then(|value| std::str::from_utf8(value).ok())
    }

    /// The values of every header called `name` (case-insensitive), in order.
    pub fn header_values<'a>(&'a self, name: &str) -> impl Iterator<Item = &'a [u8]> {
        self.headers
            .iter()
            .filter(move |h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value.as_slice())
    }

    /// The subprotocols offered in `Sec-WebSocket-Protocol`, in the client's
    /// order of preference (`getRequestSubprotocols` in the seed).
    pub fn subprotocols(&self) -> &[String] {
        &self.subprotocols
    }

    /// Whether the client offered the subprotocol `name`.
    pub fn offers_subprotocol(&self, name: &str) -> bool {
        self.subprotocols.iter().any(|p| p == name)
    }

    /// The names of the extensions offered in `Sec-WebSocket-Extensions`
    /// (e.g. `permessage-deflate`), in the client's order.
    pub fn extensions(&self) -> &[String] {
        &self.extensions
    }

    /// The peer's address as `ip:port`.
    pub fn remote_address(&self) -> &str {
        &self.remote_address
    }
}

impl From<raw::Request> for Request {
    fn from(request: raw::Request) -> Self {
        Request {
            target: request.path,
            headers: request
                .headers
                .into_iter()
                .map(|h| Header {
                    name: h.name,
                    value: h.value,
                })
                .collect(),
            subprotocols: request.subprotocols,
            extensions: request.extensions,
            remote_address: request.remote_address,
        }
    }
}

/// Decodes `%XX` escapes and `+` (a space, as in HTML forms). Malformed
/// escapes are kept as they are; invalid UTF-8 becomes U+FFFD.
fn percent_decode(input: &str) -> String {
    fn hex(byte: u8) -> Option<u8> {
        match byte {
            b'0'..=b'9' => Some(byte - b'0'),
            b'a'..=b'f' => Some(byte - b'a' + 10),
            b'A'..=b'F' => Some(byte - b'A' + 10),
            _ => None,
        }
    }
    if !input.contains(['%', '+']) {
        return input.to_owned();
    }
    let bytes = input.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(hi), Some(lo)) => {
                    out.push(hi << 4 | lo);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            byte => out.push(byte),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(target: &str) -> Request {
        Request {
            target: target.into(),
            headers: vec![
                Header::new("Host", "example.com"),
                Header::new("X-Many", "1"),
                Header::new("x-many", b"\xff".to_vec()),
            ],
            subprotocols: vec!["chat.v1".into()],
            extensions: vec![],
            remote_address: "127.0.0.1:1234".into(),
        }
    }

    #[test]
    fn path_and_query() {
        let r = request("/chat?room=1&token=a%20b+c&flag&empty=&bad=%zz%4");
        assert_eq!(r.path(), "/chat");
        assert_eq!(r.query_param("room").as_deref(), Some("1"));
        assert_eq!(r.query_param("token").as_deref(), Some("a b c"));
        assert_eq!(r.query_param("flag").as_deref(), Some(""));
        assert_eq!(r.query_param("empty").as_deref(), Some(""));
        assert_eq!(r.query_param("bad").as_deref(), Some("%zz%4"));
        assert_eq!(r.query_param("missing"), None);
        assert_eq!(request("/").query(), None);
        assert_eq!(request("/").query_param("x"), None);
        assert_eq!(percent_decode("%E2%82%AC%"), "€%");
        assert_eq!(percent_decode("%4"), "%4");
        assert_eq!(percent_decode("%41"), "A");
    }

    #[test]
    fn headers_are_case_insensitive() {
        let r = request("/");
        assert_eq!(r.header("host"), Some(&b"example.com"[..]));
        assert_eq!(r.header_str("HOST"), Some("example.com"));
        assert_eq!(r.header_values("X-MANY").count(), 2);
        assert_eq!(r.header("nope"), None);
        assert!(r.offers_subprotocol("chat.v1"));
    }
}
