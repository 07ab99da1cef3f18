//! Reading a host's `--metrics-listen` port: its address from the log, a
//! plain HTTP GET, and one sample out of the Prometheus text.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};

use super::Host;

/// GET `path` on the metrics port: (status, body).
pub fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).expect("connecting to the metrics port");
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response[9..12].parse().expect("a status code");
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// The metrics address the host logged.
pub fn metrics_addr(host: &Host) -> SocketAddr {
    let line = host.wait_for_log(&["metrics on http://"]);
    let rest = line.split("metrics on http://").nth(1).unwrap();
    rest.split('/').next().unwrap().parse().unwrap()
}

/// The value of the sample line that starts with `series` (name and
/// labels), or 0 when it is missing.
pub fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .map_or(0.0, |value| value.parse().expect("a sample value"))
}
