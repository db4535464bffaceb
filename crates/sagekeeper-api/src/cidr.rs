//! Subnet layout, derived from the VPC CIDR rather than configured: private subnet `i` is the
//! `i`th block of prefix +3 from the start (a /16 gives /19s), public subnet `i` (NAT only) the
//! `i`th block of prefix +4 from the middle of the range, as the reference solution lays them out.

use std::net::Ipv4Addr;

/// Most availability zones an environment spans (four private /+3 blocks fill half the VPC).
pub const MAX_ZONES: usize = 4;

/// An IPv4 network `address/prefix`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    address: u32,
    prefix: u8,
}

impl Cidr {
    /// Parses `a.b.c.d/p`; `None` unless it is a network address with a prefix from 0 to 32.
    pub fn parse(text: &str) -> Option<Self> {
        let (address, prefix) = text.split_once('/')?;
        let address = u32::from(address.parse::<Ipv4Addr>().ok()?);
        let prefix: u8 = prefix.parse().ok().filter(|p| *p <= 32)?;
        (address & mask(prefix) == address).then_some(Self { address, prefix })
    }

    /// The `index`th block of `prefix + extra` starting `offset` blocks of that size in.
    fn block(self, extra: u8, offset: u32, index: usize) -> Option<Self> {
        let prefix = self.prefix.checked_add(extra).filter(|p| *p <= 28)?;
        let size = 1u32.checked_shl(u32::from(32 - prefix))?;
        let step = offset.checked_add(u32::try_from(index).ok()?)?;
        let count = 1u32.checked_shl(u32::from(extra))?;
        (step < count).then(|| Self { address: self.address + size * step, prefix })
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", Ipv4Addr::from(self.address), self.prefix)
    }
}

fn mask(prefix: u8) -> u32 {
    if prefix == 0 { 0 } else { u32::MAX << (32 - prefix) }
}

/// The CIDR of private subnet `index` of a VPC (`None` past the layout or for a bad CIDR).
pub fn private_subnet(vpc_cidr: &str, index: usize) -> Option<String> {
    (index < MAX_ZONES).then_some(())?;
    Cidr::parse(vpc_cidr)?.block(3, 0, index).map(|c| c.to_string())
}

/// The CIDR of public subnet `index` of a VPC: blocks of prefix +4 from the middle.
pub fn public_subnet(vpc_cidr: &str, index: usize) -> Option<String> {
    (index < MAX_ZONES).then_some(())?;
    Cidr::parse(vpc_cidr)?.block(4, 8, index).map(|c| c.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_16_gives_the_reference_layout() {
        let private: Vec<_> = (0..4).filter_map(|i| private_subnet("10.0.0.0/16", i)).collect();
        assert_eq!(private, ["10.0.0.0/19", "10.0.32.0/19", "10.0.64.0/19", "10.0.96.0/19"]);
        let public: Vec<_> = (0..4).filter_map(|i| public_subnet("10.0.0.0/16", i)).collect();
        assert_eq!(public, ["10.0.128.0/20", "10.0.144.0/20", "10.0.160.0/20", "10.0.176.0/20"]);
    }

    #[test]
    fn a_24_still_fits_and_public_subnets_stay_at_least_28() {
        assert_eq!(private_subnet("192.168.5.0/24", 1).as_deref(), Some("192.168.5.32/27"));
        assert_eq!(public_subnet("192.168.5.0/24", 0).as_deref(), Some("192.168.5.128/28"));
        assert_eq!(public_subnet("192.168.5.0/24", 3).as_deref(), Some("192.168.5.176/28"));
    }

    #[test]
    fn private_and_public_blocks_never_overlap() {
        for vpc in ["10.0.0.0/16", "172.16.0.0/20", "192.168.5.0/24"] {
            let cidrs: Vec<Cidr> = (0..4)
                .flat_map(|i| [private_subnet(vpc, i), public_subnet(vpc, i)])
                .map(|c| Cidr::parse(&c.expect("block")).expect("cidr"))
                .collect();
            for (i, a) in cidrs.iter().enumerate() {
                for b in &cidrs[i + 1..] {
                    let (small, big) = if a.prefix >= b.prefix { (a, b) } else { (b, a) };
                    assert_ne!(small.address & mask(big.prefix), big.address, "{vpc}: {a} overlaps {b}");
                }
            }
        }
    }

    #[test]
    fn out_of_range_and_invalid_inputs_give_none() {
        assert_eq!(private_subnet("10.0.0.0/16", 4), None);
        assert_eq!(private_subnet("10.0.0.1/16", 0), None, "not a network address");
        assert_eq!(private_subnet("nonsense", 0), None);
        assert_eq!(public_subnet("10.0.0.0/26", 0), None, "would be smaller than /28");
    }
}
