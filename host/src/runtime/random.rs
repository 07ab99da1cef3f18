//! `wasi:random/random` for every guest, drawn from the serving thread's
//! CSPRNG instead of a generator of the connection's own.
//!
//! wasmtime-wasi gives each context a seeded `StdRng` (ChaCha12 and its
//! block buffer, about 0.3 KiB on the heap) for as long as the connection
//! lives, whether or not its guest ever asks for a random byte; most do
//! not. rand's `ThreadRng` is the same generator, once per thread,
//! reseeded from the operating system, so guests get the same quality of
//! randomness for nothing per connection.

use std::convert::Infallible;

use rand::{Rng as _, TryRng};

/// A zero-sized handle on the current thread's CSPRNG (`rand::rng()`):
/// boxing it costs no allocation, and it is `Send` where `ThreadRng` is not
/// (it looks the thread's generator up on each call, on whichever thread
/// the guest runs).
#[derive(Clone, Copy, Debug, Default)]
pub struct ThreadRandom;

impl TryRng for ThreadRandom {
    type Error = Infallible;

    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        Ok(rand::rng().next_u32())
    }

    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        Ok(rand::rng().next_u64())
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
        rand::rng().fill_bytes(dst);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn is_zero_sized_and_draws_fresh_bytes_each_call() {
        assert_eq!(std::mem::size_of::<ThreadRandom>(), 0);
        let mut random = ThreadRandom;
        let mut first = [0u8; 32];
        let mut second = [0u8; 32];
        random.fill_bytes(&mut first);
        random.fill_bytes(&mut second);
        // 2^-256 to fail by chance.
        assert_ne!(first, second);
        assert_ne!(first, [0u8; 32]);
        assert_ne!(random.next_u64(), random.next_u64());
    }
}
