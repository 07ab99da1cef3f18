//! `--static` request handling: `static_files::PlainRequest::parse` on
//! arbitrary bytes, and `static_files::safe_path` on arbitrary paths.
//!
//! The first byte is a selector: bit 0 parses the rest as a whole request
//! (then its path goes through `safe_path` too); else the rest, as UTF-8
//! (lossily), is the path.
//!
//! Invariants:
//! - nothing panics;
//! - a path `safe_path` accepts is relative and made of plain names only
//!   (no root, prefix, `.` or `..`), none empty or holding `/`, `\` or NUL,
//!   so joining it to the served directory cannot leave it;
//! - accepting is stable: the path re-encoded from its names (every byte
//!   percent-encoded) is accepted as the same path.

#![no_main]

use std::path::Component;

use libfuzzer_sys::fuzz_target;
use wsbox::protocol::handshake::HandshakeLimits;
use wsbox::protocol::static_files::{PlainRequest, safe_path};

fn check(path: &str) {
    let Ok(safe) = safe_path(path) else {
        return;
    };
    let mut reencoded = String::new();
    for component in safe.relative.components() {
        let Component::Normal(name) = component else {
            panic!("{path:?} gave a non-plain component {component:?}");
        };
        let name = name.to_str().expect("names are UTF-8");
        assert!(!name.is_empty() && name != "." && name != "..", "{path:?}");
        assert!(!name.contains(['/', '\\', '\0']), "{path:?}: {name:?}");
        reencoded.push('/');
        for byte in name.bytes() {
            reencoded.push_str(&format!("%{byte:02X}"));
        }
    }
    if safe.directory || reencoded.is_empty() {
        reencoded.push('/');
    }
    let again = safe_path(&reencoded).expect("a re-encoded safe path is accepted");
    assert_eq!(again.relative, safe.relative, "{path:?} vs {reencoded:?}");
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    if selector & 1 == 1 {
        if let Some(request) = PlainRequest::parse(rest, &HandshakeLimits::default()) {
            check(request.path());
        }
    } else {
        check(&String::from_utf8_lossy(rest));
    }
});
