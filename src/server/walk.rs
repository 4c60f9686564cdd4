//! Walking a DNS message's bytes without parsing it: what the fast path, the front door and the
//! cookie check need on every datagram, where building a hickory `Message` would cost more
//! than the rest of their work. Every function stops at the end of the slice: a truncated or
//! malformed message yields `None`, never a panic.

/// Skips a (possibly compressed) name at `position`; the position after it.
pub fn skip_name(message: &[u8], mut position: usize) -> Option<usize> {
    loop {
        let length = *message.get(position)?;
        match length & 0xc0 {
            0xc0 => return (position + 2 <= message.len()).then_some(position + 2),
            0x00 if length == 0 => return Some(position + 1),
            0x00 => position += 1 + usize::from(length),
            _ => return None,
        }
    }
}
