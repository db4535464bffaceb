//! Security group rules as a set: each IpPermission AWS returns is split into single rules
//! (one protocol, port range and peer), so the desired and observed rules compare exactly and
//! the difference is what to authorize and what to revoke.

use std::collections::BTreeSet;

use aws_sdk_ec2::types::{IpPermission, IpRange, PrefixListId, UserIdGroupPair};

/// Who a rule lets in (ingress) or out to (egress).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Peer {
    /// A security group.
    Group(String),
    /// An IPv4 CIDR.
    Cidr(String),
    /// A managed prefix list (the S3 prefix list).
    PrefixList(String),
}

/// One security group rule.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Rule {
    /// `tcp`, `udp`, `icmp` or `-1` (all).
    pub protocol: String,
    /// Port range; `None` for all ports.
    pub ports: Option<(i32, i32)>,
    /// The peer.
    pub peer: Peer,
}

impl Rule {
    /// All traffic with `peer`.
    pub fn all(peer: Peer) -> Self {
        Self { protocol: "-1".into(), ports: None, peer }
    }

    /// TCP on one port with `peer`.
    pub fn tcp(port: i32, peer: Peer) -> Self {
        Self { protocol: "tcp".into(), ports: Some((port, port)), peer }
    }

    fn permission(&self) -> IpPermission {
        let mut p = IpPermission::builder().ip_protocol(&self.protocol);
        if let Some((from, to)) = self.ports {
            p = p.from_port(from).to_port(to);
        }
        match &self.peer {
            Peer::Group(id) => p.user_id_group_pairs(UserIdGroupPair::builder().group_id(id).build()),
            Peer::Cidr(cidr) => p.ip_ranges(IpRange::builder().cidr_ip(cidr).build()),
            Peer::PrefixList(id) => p.prefix_list_ids(PrefixListId::builder().prefix_list_id(id).build()),
        }
        .build()
    }
}

/// Splits AWS's permissions into single rules (IPv6 ranges are ignored: sagekeeper never
/// writes them, and a group it owns with one would show as drift on the IPv4 side anyway).
pub fn observed(permissions: &[IpPermission]) -> BTreeSet<Rule> {
    let mut rules = BTreeSet::new();
    for p in permissions {
        let protocol = match p.ip_protocol().unwrap_or("-1") {
            "6" => "tcp",
            "17" => "udp",
            other => other,
        }
        .to_owned();
        let ports = match (protocol.as_str(), p.from_port(), p.to_port()) {
            ("-1", _, _) | (_, None, _) | (_, _, None) => None,
            (_, Some(from), Some(to)) => Some((from, to)),
        };
        let peers = p
            .user_id_group_pairs()
            .iter()
            .filter_map(|g| g.group_id().map(|id| Peer::Group(id.to_owned())))
            .chain(p.ip_ranges().iter().filter_map(|r| r.cidr_ip().map(|c| Peer::Cidr(c.to_owned()))))
            .chain(
                p.prefix_list_ids().iter().filter_map(|l| l.prefix_list_id().map(|id| Peer::PrefixList(id.to_owned()))),
            );
        rules.extend(peers.map(|peer| Rule { protocol: protocol.clone(), ports, peer }));
    }
    rules
}

/// What to authorize (desired but missing) and what to revoke (present but not desired).
pub fn diff(desired: &BTreeSet<Rule>, observed: &BTreeSet<Rule>) -> (Vec<IpPermission>, Vec<IpPermission>) {
    let add = desired.difference(observed).map(Rule::permission).collect();
    let remove = observed.difference(desired).map(Rule::permission).collect();
    (add, remove)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn permission(protocol: &str, ports: Option<(i32, i32)>) -> aws_sdk_ec2::types::builders::IpPermissionBuilder {
        let p = IpPermission::builder().ip_protocol(protocol);
        match ports {
            Some((a, b)) => p.from_port(a).to_port(b),
            None => p,
        }
    }

    #[test]
    fn one_permission_with_several_peers_is_several_rules() {
        let p = permission("tcp", Some((443, 443)))
            .user_id_group_pairs(UserIdGroupPair::builder().group_id("sg-1").build())
            .ip_ranges(IpRange::builder().cidr_ip("10.0.0.0/19").build())
            .ip_ranges(IpRange::builder().cidr_ip("10.0.32.0/19").build())
            .build();
        let rules = observed(&[p]);
        assert_eq!(rules.len(), 3);
        assert!(rules.contains(&Rule::tcp(443, Peer::Group("sg-1".into()))));
        assert!(rules.contains(&Rule::tcp(443, Peer::Cidr("10.0.32.0/19".into()))));
    }

    #[test]
    fn all_traffic_ignores_ports_and_numeric_protocols_are_named() {
        let all = permission("-1", Some((0, 65535))).ip_ranges(IpRange::builder().cidr_ip("0.0.0.0/0").build()).build();
        let tcp =
            permission("6", Some((2049, 2049))).ip_ranges(IpRange::builder().cidr_ip("10.0.0.0/19").build()).build();
        let rules = observed(&[all, tcp]);
        assert!(rules.contains(&Rule::all(Peer::Cidr("0.0.0.0/0".into()))));
        assert!(rules.contains(&Rule::tcp(2049, Peer::Cidr("10.0.0.0/19".into()))));
    }

    #[test]
    fn diff_authorizes_missing_and_revokes_extra_only() {
        let desired: BTreeSet<Rule> =
            [Rule::all(Peer::Group("sg-1".into())), Rule::tcp(443, Peer::PrefixList("pl-1".into()))].into();
        let present: BTreeSet<Rule> =
            [Rule::all(Peer::Group("sg-1".into())), Rule::all(Peer::Cidr("0.0.0.0/0".into()))].into();
        let (add, remove) = diff(&desired, &present);
        assert_eq!(add.len(), 1);
        assert_eq!(add[0].prefix_list_ids()[0].prefix_list_id(), Some("pl-1"));
        assert_eq!((add[0].from_port(), add[0].to_port()), (Some(443), Some(443)));
        assert_eq!(remove.len(), 1);
        assert_eq!(remove[0].ip_ranges()[0].cidr_ip(), Some("0.0.0.0/0"));
        let (add, remove) = diff(&desired, &desired);
        assert!(add.is_empty() && remove.is_empty(), "equal sets need no writes");
    }
}
