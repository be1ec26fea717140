//! Small zero-copy header views over byte slices, in the style of smoltcp's `wire`:
//! a view per header with `new_checked` (length checked once) and getters at named
//! offsets, plus the helpers the stages share (checksum, address forms, extension walk).
//!
//! Nothing here allocates or panics on packet data: every view is created through
//! `new_checked`, and every variable-length walk is bounded by the slice it is given.

pub mod addr;
pub mod ethernet;
pub mod ext;
pub mod frag;
pub mod icmpv6;
pub mod ipv6;
pub mod nd;

/// The Internet checksum with the IPv6 pseudo-header: the workspace's one implementation,
/// from `proto` (the `&[u8; 16]` entry points [`checksum::compute`] and [`checksum::verify`]).
pub use proto::wire::checksum;

/// Why a header could not be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// The buffer ends before the header (or a length it announces) does.
    Truncated,
    /// A field holds a value the protocol forbids.
    Malformed,
    /// A well-formed header this router does not handle.
    Unrecognized,
}

/// Reads a big-endian u16 at `off`, if it fits.
#[inline]
pub(crate) fn be16(data: &[u8], off: usize) -> Option<u16> {
    match data.get(off..off + 2) {
        Some(&[a, b]) => Some(u16::from_be_bytes([a, b])),
        _ => None,
    }
}

/// Reads a 16-byte address at `off`, if it fits.
#[inline]
pub(crate) fn addr16(data: &[u8], off: usize) -> Option<[u8; 16]> {
    let s = data.get(off..off + 16)?;
    let mut a = [0u8; 16];
    a.copy_from_slice(s);
    Some(a)
}

/// Reads a 6-byte MAC address at `off`, if it fits.
#[inline]
pub(crate) fn mac6(data: &[u8], off: usize) -> Option<[u8; 6]> {
    let s = data.get(off..off + 6)?;
    let mut a = [0u8; 6];
    a.copy_from_slice(s);
    Some(a)
}

/// Writes `src` at `off`; false if it does not fit.
#[inline]
pub(crate) fn put(data: &mut [u8], off: usize, src: &[u8]) -> bool {
    match data.get_mut(off..off + src.len()) {
        Some(d) => {
            d.copy_from_slice(src);
            true
        }
        None => false,
    }
}
