//! IP networks as written in the config (`10.0.0.0/8`, `2001:db8::/32`, or
//! one address), for `[login] trusted_networks`. Twenty lines of masking
//! are not worth a crate.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// An address prefix: every address whose first `prefix` bits are those of
/// `addr`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network {
    addr: IpAddr,
    prefix: u8,
}

impl Network {
    /// Whether `ip` is in this network. An IPv4 address seen as IPv6
    /// (`::ffff:10.0.0.1`, from a dual-stack socket) counts as IPv4.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl FromStr for Network {
    type Err = String;

    fn from_str(text: &str) -> Result<Network, String> {
        let (addr_text, prefix_text) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text, None),
        };
        let addr = IpAddr::from_str(addr_text)
            .map_err(|_| format!("`{}` is not an IP address", addr_text.escape_debug()))?;
        // Peers are compared as IPv4 (`contains`), so a mapped network
        // would never match: ask for the IPv4 form.
        if let IpAddr::V6(v6) = addr
            && let Some(v4) = v6.to_ipv4_mapped()
        {
            return Err(format!(
                "`{}` is an IPv4 address written as IPv6: write it as IPv4 ({v4}, with the \
                 prefix less 96)",
                text.escape_debug()
            ));
        }
        let max: u8 = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix_text {
            None => max,
            Some(p) => match p.parse::<u8>() {
                Ok(n) if n <= max && !p.starts_with('+') => n,
                _ => {
                    return Err(format!(
                        "`/{}` is not a prefix length, expected /0 to /{max}",
                        p.escape_debug()
                    ));
                }
            },
        };
        let network = Network { addr, prefix };
        // `10.0.0.1/8` is most likely a typo for one of two things.
        let base = Network {
            addr: network.base(),
            prefix,
        };
        if base.addr != addr {
            return Err(format!(
                "`{text}` has bits set after the prefix: write {base} for the network, \
                 or {addr} alone for the one address"
            ));
        }
        Ok(network)
    }
}

impl Network {
    /// The network's first address (host bits cleared).
    fn base(&self) -> IpAddr {
        match self.addr {
            IpAddr::V4(a) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                IpAddr::V4((u32::from(a) & mask).into())
            }
            IpAddr::V6(a) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                IpAddr::V6((u128::from(a) & mask).into())
            }
        }
    }
}

impl fmt::Display for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> Network {
        s.parse().unwrap()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn prefixes_match_what_they_cover() {
        let lan = net("192.168.1.0/24");
        assert!(lan.contains(ip("192.168.1.0")));
        assert!(lan.contains(ip("192.168.1.254")));
        assert!(!lan.contains(ip("192.168.2.1")));
        assert!(
            lan.contains(ip("::ffff:192.168.1.7")),
            "v4-mapped counts as v4"
        );
        assert!(!lan.contains(ip("2001:db8::1")));
        assert!(net("0.0.0.0/0").contains(ip("203.0.113.9")));
        assert!(!net("0.0.0.0/0").contains(ip("::1")));
        let one = net("10.1.2.3");
        assert!(one.contains(ip("10.1.2.3")) && !one.contains(ip("10.1.2.4")));
        let v6 = net("2001:db8::/32");
        assert!(v6.contains(ip("2001:db8:ffff::1")));
        assert!(!v6.contains(ip("2001:db9::1")));
        assert!(net("::/0").contains(ip("::1")));
        assert!(net("::1").contains(ip("::1")));
    }

    #[test]
    fn bad_networks_say_what_is_wrong() {
        let err = |s: &str| s.parse::<Network>().unwrap_err();
        assert!(
            err("10.0.0.0/33").contains("expected /0 to /32"),
            "{}",
            err("10.0.0.0/33")
        );
        assert!(err("::/129").contains("expected /0 to /128"));
        assert!(err("10.0.0.0/").contains("not a prefix length"));
        assert!(err("10.0.0.0/+8").contains("not a prefix length"));
        assert!(err("10.0.0.0/x").contains("not a prefix length"));
        assert!(err("pbx.example.com").contains("not an IP address"));
        assert!(err("").contains("not an IP address"));
        assert!(err("::ffff:10.0.0.0/104").contains("write it as IPv4 (10.0.0.0"));
        let e = err("10.0.0.1/8");
        assert!(
            e.contains("write 10.0.0.0/8") && e.contains("10.0.0.1 alone"),
            "{e}"
        );
    }
}
