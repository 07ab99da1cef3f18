//! A test guest that misbehaves on request, for the host's end-to-end tests.
//! What it does depends on the request path (the query is ignored):
//!
//! | path | behaviour |
//! | --- | --- |
//! | `/panic` | accept, then panic ("guest panicked on purpose") on the first message |
//! | `/panic-before-accept` | panic at once, before answering the handshake |
//! | `/loop` | accept, then spin forever on the first message |
//! | `/import-loop` | accept, then on the first message call a host function that never waits (`id`) forever |
//! | `/work` | accept; for each text message `N`, spin `N` rounds without calling the host, then answer `done N` |
//! | `/copy-loop` | accept, then copy memory forever on the first message (`memory.copy`, a call into the runtime that is not an import) |
//! | `/sleep` | accept, then echo every message after sleeping 400 ms (WASI `poll` on a monotonic-clock pollable) |
//! | `/alloc` | accept, then on the first message allocate 1 MiB chunks forever, keeping them alive |
//! | `/return` | accept, then return after the first message without closing |
//! | `/no-answer` | return without accepting or rejecting |
//! | `/pongs` | accept with `receive_pongs`, send a ping `hello`, then echo every message, pongs as the text `pong:<payload>` |
//! | `/close-first` | accept, close with 1000 `done`, then receive until the client's close or the connection ends |
//! | `/max-message` | accept with `max_message_size` 1000, then echo |
//! | `/no-compression` | accept with compression turned off, then echo |
//! | `/bad-utf8` | accept, then on the first message `send` a text that is not UTF-8 (which only a broken guest can) |
//! | `/bad-utf8-batch` | the same with `send-all`, behind a valid text |
//! | `/random` | accept; answer every message with 32 bytes from WASI's secure random generator (`wasi:random/random`) |
//! | `/recurse` | accept; for each text message `N`, recurse N calls deep on the wasm stack and answer `depth N` |
//! | anything else | accept and echo |
//!
//! "Echo" sends every text and binary message back until the connection ends,
//! and logs `close-request CODE REASON` when the client's close arrives.

use std::hint::black_box;

use guest_sdk::{AcceptOptions, Connection, Message, PendingConnection};

guest_sdk::export_handler!(handle);

fn handle(pending: PendingConnection) -> guest_sdk::Result<()> {
    let request = pending.request();
    match request.path() {
        "/panic" => {
            let conn = pending.accept()?;
            conn.receive()?;
            panic!("guest panicked on purpose");
        }
        "/panic-before-accept" => panic!("guest panicked on purpose"),
        "/loop" => {
            let conn = pending.accept()?;
            conn.receive()?;
            let mut spins = 0u64;
            loop {
                spins = black_box(spins.wrapping_add(1));
            }
        }
        "/import-loop" => {
            let conn = pending.accept()?;
            conn.receive()?;
            loop {
                black_box(conn.as_raw().id());
            }
        }
        "/random" => {
            let conn = pending.accept()?;
            loop {
                conn.receive()?;
                let mut bytes = [0u8; 32];
                if let Err(error) = getrandom::fill(&mut bytes) {
                    conn.send_close_code(1011, &format!("no randomness: {error}"))?;
                    return Ok(());
                }
                conn.send_binary(bytes)?;
            }
        }
        "/work" => {
            let conn = pending.accept()?;
            loop {
                let text: String = conn.receive_data()?;
                let rounds: u64 = text.trim().parse().unwrap_or(0);
                let mut state = 0u64;
                for round in 0..rounds {
                    state = black_box(state.rotate_left(5) ^ round);
                }
                conn.send_text(format!("done {rounds}"))?;
            }
        }
        "/copy-loop" => {
            let conn = pending.accept()?;
            conn.receive()?;
            let source = vec![7u8; 64 << 10];
            let mut target = vec![0u8; 64 << 10];
            loop {
                let len = black_box(source.len());
                target[..len].copy_from_slice(&source[..len]);
                black_box(&mut target);
            }
        }
        "/sleep" => {
            let conn = pending.accept()?;
            loop {
                let message = conn.receive()?;
                std::thread::sleep(std::time::Duration::from_millis(400));
                conn.send(message)?;
            }
        }
        "/alloc" => {
            let conn = pending.accept()?;
            conn.receive()?;
            let mut chunks: Vec<Vec<u8>> = Vec::new();
            loop {
                chunks.push(vec![1; 1 << 20]);
                black_box(&mut chunks);
            }
        }
        "/return" => {
            let conn = pending.accept()?;
            conn.receive()?;
            Ok(())
        }
        "/no-answer" => Ok(()),
        "/recurse" => {
            let conn = pending.accept()?;
            loop {
                let Message::Text(text) = conn.receive()? else {
                    continue;
                };
                let depth: u32 = text.trim().parse().unwrap_or(0);
                conn.send(Message::Text(format!("depth {}", recurse(depth))))?;
            }
        }
        "/pongs" => {
            let conn = pending.accept_with(AcceptOptions::default().receive_pongs(true))?;
            conn.send_ping("hello")?;
            loop {
                match conn.receive()? {
                    Message::Pong(payload) => {
                        conn.send_text(format!("pong:{}", String::from_utf8_lossy(&payload)))?
                    }
                    message => conn.send(message)?,
                }
            }
        }
        "/close-first" => {
            let conn = pending.accept()?;
            conn.send_close_code(1000, "done")?;
            while conn.receive().is_ok() {}
            Ok(())
        }
        "/bad-utf8" => {
            let conn = pending.accept()?;
            conn.receive()?;
            conn.send(Message::Text(not_utf8()))?;
            Ok(())
        }
        "/bad-utf8-batch" => {
            let conn = pending.accept()?;
            conn.receive()?;
            conn.send_messages([Message::Text("fine".into()), Message::Text(not_utf8())])?;
            Ok(())
        }
        "/max-message" => {
            echo(&pending.accept_with(AcceptOptions::default().max_message_size(1000))?)
        }
        "/no-compression" => {
            echo(&pending.accept_with(AcceptOptions::default().compression(false))?)
        }
        _ => echo(&pending.accept()?),
    }
}

/// A `String` that is not UTF-8, as a guest whose bindings or memory are
/// broken would pass to the host, which must refuse it.
fn not_utf8() -> String {
    let bytes = vec![b'o', b'k', 0xff, 0xfe];
    // SAFETY: deliberately not UTF-8, to play a broken guest. The string is
    // never read as text here: it only goes to the bindings, which copy its
    // bytes to the host without looking at them.
    unsafe { String::from_utf8_unchecked(bytes) }
}

/// Recurse `depth` calls deep on the wasm stack (values only, nothing
/// whose address is taken, so none of it goes to the shadow stack in
/// linear memory); returns `depth`.
#[inline(never)]
fn recurse(depth: u32) -> u32 {
    fn down(depth: u32, a: u64, b: u64, c: u64, d: u64) -> u64 {
        if depth == 0 {
            return a ^ b ^ c ^ d;
        }
        // Every argument is used after the call: it is not a tail call and
        // all four stay live in this frame.
        let below = down(depth - 1, b.rotate_left(1), c ^ a, d.wrapping_add(3), a);
        below.wrapping_mul(a | 1) ^ b ^ c.rotate_right(7) ^ d
    }
    let mixed = down(depth, u64::from(depth), 2, 3, 4);
    // `mixed` is never 1 << 63 for the depths used; the branch keeps the
    // work from being optimised away.
    if mixed == 1 << 63 { 0 } else { depth }
}

fn echo(conn: &Connection) -> guest_sdk::Result<()> {
    loop {
        match conn.receive() {
            Ok(message) => conn.send(message)?,
            // Say what the close request carried, so tests can see the
            // guest got it.
            Err(guest_sdk::ConnectionError::CloseRequest { code, reason }) => {
                guest_sdk::log::info(format!("close-request {code} {reason}"));
                return Ok(());
            }
            Err(error) => return Err(error.into()),
        }
    }
}
