//! Panic-free big-endian accessors over byte slices.
//!
//! Views never cast to packed structs (unaligned references are undefined behaviour); they
//! read fields with these helpers. A read past the end yields zeros and a write past the end
//! is dropped: a view built with `new_unchecked` over a short buffer is a caller bug, but it
//! must not become a panic on the packet path. `check_len` is how callers rule it out.

use core::net::Ipv6Addr;

/// `N` octets at `off`, or zeros if the buffer is too short.
#[inline]
pub(crate) fn array<const N: usize>(buf: &[u8], off: usize) -> [u8; N] {
    let mut out = [0u8; N];
    if let Some(src) = off.checked_add(N).and_then(|end| buf.get(off..end)) {
        out.copy_from_slice(src);
    }
    out
}

#[inline]
pub(crate) fn u8_at(buf: &[u8], off: usize) -> u8 {
    buf.get(off).copied().unwrap_or(0)
}

#[inline]
pub(crate) fn u16_at(buf: &[u8], off: usize) -> u16 {
    u16::from_be_bytes(array(buf, off))
}

#[inline]
pub(crate) fn u32_at(buf: &[u8], off: usize) -> u32 {
    u32::from_be_bytes(array(buf, off))
}

#[inline]
pub(crate) fn u64_at(buf: &[u8], off: usize) -> u64 {
    u64::from_be_bytes(array(buf, off))
}

#[inline]
pub(crate) fn addr_at(buf: &[u8], off: usize) -> Ipv6Addr {
    Ipv6Addr::from(array::<16>(buf, off))
}

/// Copies `val` to `off` if it fits; does nothing otherwise.
#[inline]
pub(crate) fn put(buf: &mut [u8], off: usize, val: &[u8]) {
    if let Some(dst) = off
        .checked_add(val.len())
        .and_then(|end| buf.get_mut(off..end))
    {
        dst.copy_from_slice(val);
    }
}

#[inline]
pub(crate) fn put_u8(buf: &mut [u8], off: usize, val: u8) {
    if let Some(b) = buf.get_mut(off) {
        *b = val;
    }
}

#[inline]
pub(crate) fn put_u16(buf: &mut [u8], off: usize, val: u16) {
    put(buf, off, &val.to_be_bytes());
}

#[inline]
pub(crate) fn put_u32(buf: &mut [u8], off: usize, val: u32) {
    put(buf, off, &val.to_be_bytes());
}

#[inline]
pub(crate) fn put_u64(buf: &mut [u8], off: usize, val: u64) {
    put(buf, off, &val.to_be_bytes());
}

#[inline]
pub(crate) fn put_addr(buf: &mut [u8], off: usize, val: &Ipv6Addr) {
    put(buf, off, &val.octets());
}

/// Sets `len` octets at `off` to zero (as far as they exist).
#[inline]
pub(crate) fn zero(buf: &mut [u8], off: usize, len: usize) {
    let end = off.saturating_add(len).min(buf.len());
    if let Some(dst) = buf.get_mut(off.min(end)..end) {
        dst.fill(0);
    }
}
