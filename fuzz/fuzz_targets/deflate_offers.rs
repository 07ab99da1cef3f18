//! `Sec-WebSocket-Extensions` parsing and permessage-deflate negotiation.
//!
//! The first byte picks the server's `DeflateConfig` (no-context-takeover
//! flags, window bits); the rest, read as (lossy) UTF-8, is split at `\n`
//! into header values.
//!
//! Invariants:
//! - `parse_offers` never panics; on success, names are tokens and writing
//!   the offers back out (quoting values) re-parses to the same offers; the
//!   values parse the same one by one as all together; an error points
//!   inside the value it names;
//! - `negotiate` with compression disabled is `None`; with a malformed
//!   header it is `None`;
//! - a negotiated result is within RFC 7692's ranges (server window 9-15 and
//!   at most the configured one, client window 8-15), keeps the configured
//!   no-context-takeover flags, and its `response_header()` re-parses as a
//!   single permessage-deflate offer that negotiates to the same parameters
//!   and the same response;
//! - compressors and decompressors set up from the result (ours, and a
//!   client's obeying it) round-trip two messages each way (the raw input,
//!   twice, exercising context takeover).

#![no_main]

use libfuzzer_sys::fuzz_target;
use wsbox::protocol::Deflate as _;
use wsbox::protocol::Inflate as _;
use wsbox::protocol::deflate::{
    DeflateConfig, EXTENSION_NAME, MessageDeflater, MessageInflater, Negotiated, Offer, accept_offer,
    negotiate, parse_offers,
};

fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Writes offers back as one header value, quoting every value.
fn render(offers: &[Offer]) -> String {
    let mut s = String::new();
    for (i, o) in offers.iter().enumerate() {
        if i > 0 {
            s.push_str(", ");
        }
        s.push_str(&o.name);
        for p in &o.params {
            s.push_str("; ");
            s.push_str(&p.name);
            if let Some(v) = &p.value {
                s.push_str("=\"");
                for c in v.chars() {
                    if c == '"' || c == '\\' {
                        s.push('\\');
                    }
                    s.push(c);
                }
                s.push('"');
            }
        }
    }
    s
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    let values: Vec<&str> = text.split('\n').collect();

    match parse_offers(&values) {
        Ok(offers) => {
            for o in &offers {
                assert!(is_token(&o.name), "{o:?}");
                for p in &o.params {
                    assert!(is_token(&p.name), "{o:?}");
                }
            }
            let one_by_one: Vec<Offer> = values
                .iter()
                .flat_map(|v| parse_offers(&[v]).expect("value parses alone"))
                .collect();
            assert_eq!(one_by_one, offers);
            let rendered = render(&offers);
            assert_eq!(parse_offers(&[&rendered]).as_ref(), Ok(&offers), "{rendered:?}");
        }
        Err(e) => {
            assert!(e.header < values.len());
            assert!(e.offset <= values[e.header].len(), "{e:?}");
            assert!(!e.to_string().is_empty());
            let mut config = DeflateConfig::default();
            assert_eq!(negotiate(&config, &values), None);
            config.server_no_context_takeover = true;
            assert_eq!(negotiate(&config, &values), None);
        }
    }

    let mut config = DeflateConfig::default();
    config.server_no_context_takeover = sel & 1 != 0;
    config.client_no_context_takeover = sel & 2 != 0;
    config.server_max_window_bits = 9 + (sel >> 2 & 7) % 7;
    config.client_max_window_bits = 8 + (sel >> 5);
    config.level = u32::from(sel % 10);
    config.min_size = 0;
    config.validate().expect("valid config");

    let mut disabled = config.clone();
    disabled.enabled = false;
    assert_eq!(negotiate(&disabled, &values), None);

    let Some(n) = negotiate(&config, &values) else {
        return;
    };
    assert!((9..=config.server_max_window_bits).contains(&n.server_max_window_bits), "{n:?}");
    assert!((8..=15).contains(&n.client_max_window_bits), "{n:?}");
    assert!(n.server_no_context_takeover >= config.server_no_context_takeover);
    assert!(n.client_no_context_takeover >= config.client_no_context_takeover);

    let header = n.response_header();
    let answer = parse_offers(&[&header]).expect("response header parses");
    assert_eq!(answer.len(), 1, "{header:?}");
    assert_eq!(answer[0].name, EXTENSION_NAME);
    // Read back as an offer, the answer negotiates to the same parameters
    // (announcing now every window it names) and the same answer.
    let back = accept_offer(&config, &answer[0]).expect("answer accepted as an offer");
    assert_eq!(back.response_header(), header);
    assert_eq!(
        (back.server_no_context_takeover, back.client_no_context_takeover),
        (n.server_no_context_takeover, n.client_no_context_takeover),
        "{header:?}"
    );
    assert_eq!(
        (back.server_max_window_bits, back.client_max_window_bits),
        (n.server_max_window_bits, n.client_max_window_bits),
        "{header:?}"
    );
    assert_eq!(negotiate(&config, &[&header]).as_ref(), Some(&back));

    // The negotiated parameters work end to end, both ways. Server to
    // client: our compressor into an inflater keeping or dropping context as
    // `server_no_context_takeover` tells the client. Client to server: a
    // compressor obeying the client's parameters (at least a 9-bit window:
    // zlib cannot compress with 8) into our inflater.
    let client_side = Negotiated {
        server_no_context_takeover: n.client_no_context_takeover,
        client_no_context_takeover: n.server_no_context_takeover,
        server_max_window_bits: n.client_max_window_bits.max(9),
        client_max_window_bits: n.server_max_window_bits,
        ..Negotiated::default()
    };
    let mut ours = (MessageDeflater::new(&n, &config), MessageInflater::new(&n));
    let mut theirs = (
        MessageDeflater::new(&client_side, &config),
        MessageInflater::new(&client_side),
    );
    for _ in 0..2 {
        for (deflater, inflater) in [(&mut ours.0, &mut theirs.1), (&mut theirs.0, &mut ours.1)] {
            let mut wire = Vec::new();
            deflater.deflate(rest, &mut wire).expect("deflate");
            let mut back = Vec::new();
            inflater
                .inflate(&wire, rest.len() as u64, &mut back)
                .expect("inflate");
            assert_eq!(back, rest);
        }
        ours.0.release();
        ours.1.release();
        theirs.0.release();
        theirs.1.release();
    }
});
