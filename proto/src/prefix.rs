//! IPv6 prefixes as the operator writes them ("2001:db8:1::/48").

use std::fmt;
use std::net::Ipv6Addr;
use std::str::FromStr;

/// An IPv6 prefix: a network address with its host bits zero, and a length.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Ipv6Prefix {
    network: u128,
    len: u8,
}

/// Why a prefix string was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PrefixError {
    MissingSlash,
    BadAddress,
    BadLength,
    HostBitsSet,
}

impl fmt::Display for PrefixError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PrefixError::MissingSlash => "no '/length'",
            PrefixError::BadAddress => "the address part is not an IPv6 address",
            PrefixError::BadLength => "the length is not a number from 0 to 128",
            PrefixError::HostBitsSet => "bits beyond the prefix length are set",
        })
    }
}

impl Ipv6Prefix {
    /// A prefix from an address and length; host bits must be zero.
    pub fn new(addr: Ipv6Addr, len: u8) -> Result<Self, PrefixError> {
        if len > 128 {
            return Err(PrefixError::BadLength);
        }
        let bits = u128::from(addr);
        if bits & !Self::mask(len) != 0 {
            return Err(PrefixError::HostBitsSet);
        }
        Ok(Ipv6Prefix { network: bits, len })
    }

    fn mask(len: u8) -> u128 {
        if len == 0 {
            0
        } else {
            u128::MAX << (128 - u32::from(len))
        }
    }

    pub fn network(&self) -> Ipv6Addr {
        Ipv6Addr::from(self.network)
    }

    /// The prefix length in bits (named for what it is, not a collection size).
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> u8 {
        self.len
    }

    /// True for ::/0, the prefix that holds every address.
    pub fn is_default(&self) -> bool {
        self.len == 0
    }

    pub fn contains(&self, addr: &Ipv6Addr) -> bool {
        u128::from(*addr) & Self::mask(self.len) == self.network
    }

    /// Whether the two prefixes share any address (one contains the other).
    pub fn overlaps(&self, other: &Ipv6Prefix) -> bool {
        let shorter = self.len.min(other.len);
        let mask = Self::mask(shorter);
        self.network & mask == other.network & mask
    }

    /// `addr` with its top `len` bits replaced by this prefix: the same interface id
    /// under another provider's prefix (used when rewriting source locators).
    pub fn with_host_bits_of(&self, addr: &Ipv6Addr) -> Ipv6Addr {
        let mask = Self::mask(self.len);
        Ipv6Addr::from(self.network | (u128::from(*addr) & !mask))
    }
}

impl FromStr for Ipv6Prefix {
    type Err = PrefixError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (addr, len) = s.trim().split_once('/').ok_or(PrefixError::MissingSlash)?;
        let addr: Ipv6Addr = addr.parse().map_err(|_| PrefixError::BadAddress)?;
        let len: u8 = len.parse().map_err(|_| PrefixError::BadLength)?;
        Ipv6Prefix::new(addr, len)
    }
}

impl fmt::Display for Ipv6Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network(), self.len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Ipv6Prefix {
        s.parse().unwrap()
    }

    #[test]
    fn parses_and_displays() {
        assert_eq!(p("2001:db8:1::/48").to_string(), "2001:db8:1::/48");
        assert_eq!(p("::/0").len(), 0);
    }

    #[test]
    fn refuses_bad_text() {
        assert_eq!(
            "2001:db8::".parse::<Ipv6Prefix>(),
            Err(PrefixError::MissingSlash)
        );
        assert_eq!(
            "2001:zz::/48".parse::<Ipv6Prefix>(),
            Err(PrefixError::BadAddress)
        );
        assert_eq!(
            "2001:db8::/129".parse::<Ipv6Prefix>(),
            Err(PrefixError::BadLength)
        );
        assert_eq!(
            "2001:db8::1/48".parse::<Ipv6Prefix>(),
            Err(PrefixError::HostBitsSet)
        );
    }

    #[test]
    fn contains_and_overlaps() {
        let pa1 = p("2001:db8:1::/48");
        assert!(pa1.contains(&"2001:db8:1:ffff::1".parse().unwrap()));
        assert!(!pa1.contains(&"2001:db8:2::1".parse().unwrap()));
        assert!(pa1.overlaps(&p("2001:db8::/32")));
        assert!(pa1.overlaps(&p("2001:db8:1:5::/64")));
        assert!(!pa1.overlaps(&p("2001:db8:2::/48")));
        assert!(p("::/0").contains(&"::1".parse().unwrap()));
    }

    #[test]
    fn rewrites_prefix_keeping_interface_id() {
        let pa2 = p("2001:db8:2::/48");
        let a: Ipv6Addr = "2001:db8:1:7::42".parse().unwrap();
        assert_eq!(
            pa2.with_host_bits_of(&a),
            "2001:db8:2:7::42".parse::<Ipv6Addr>().unwrap()
        );
    }
}
