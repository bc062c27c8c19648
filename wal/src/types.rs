//! Domain types shared by every crate: LSNs, relation tags, page keys, tenant and timeline ids.
//!
//! They mirror PostgreSQL's buffer tags (`RelFileLocator` + fork + block) so that real
//! PostgreSQL WAL can be ingested later without a translation layer. Raw integers do not cross
//! module lines: an LSN is an [`Lsn`], a block number a [`BlockNumber`].

use std::fmt;
use std::str::FromStr;

/// Size of one page in bytes, as in PostgreSQL's default `BLCKSZ`.
pub const PAGE_SIZE: usize = 8192;

/// Position in a timeline's WAL stream. Printed `X/Y` in hex, as PostgreSQL prints it, so our
/// logs grep against compute-node logs.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Lsn(pub u64);

impl Lsn {
    /// The smallest LSN; no record may carry it (records start above it).
    pub const INVALID: Lsn = Lsn(0);
    pub const MAX: Lsn = Lsn(u64::MAX);

    pub fn get(self) -> u64 {
        self.0
    }

    /// The LSN `bytes` further on, saturating at [`Lsn::MAX`].
    pub fn advanced_by(self, bytes: u64) -> Lsn {
        Lsn(self.0.saturating_add(bytes))
    }

    /// Distance in bytes from `earlier` to `self`, or 0 if `earlier` is later.
    pub fn distance_from(self, earlier: Lsn) -> u64 {
        self.0.saturating_sub(earlier.0)
    }
}

impl fmt::Display for Lsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:X}/{:X}", self.0 >> 32, self.0 & 0xffff_ffff)
    }
}

impl fmt::Debug for Lsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Error from parsing a textual id or LSN.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {what}: {input:?}")]
pub struct ParseError {
    pub what: &'static str,
    pub input: String,
}

impl FromStr for Lsn {
    type Err = ParseError;
    /// Accepts PostgreSQL's `X/Y` form and, for convenience, a plain decimal number.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || ParseError { what: "LSN", input: s.to_string() };
        if let Some((hi, lo)) = s.split_once('/') {
            let hi = u32::from_str_radix(hi, 16).map_err(|_| err())?;
            let lo = u32::from_str_radix(lo, 16).map_err(|_| err())?;
            Ok(Lsn((u64::from(hi) << 32) | u64::from(lo)))
        } else {
            s.parse::<u64>().map(Lsn).map_err(|_| err())
        }
    }
}

/// PostgreSQL object id (tablespace, database).
pub type Oid = u32;

/// Relation fork, as PostgreSQL's `ForkNumber`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
#[repr(u8)]
pub enum Fork {
    Main = 0,
    FreeSpaceMap = 1,
    VisibilityMap = 2,
    Init = 3,
}

impl Fork {
    pub fn from_u8(value: u8) -> Option<Fork> {
        match value {
            0 => Some(Fork::Main),
            1 => Some(Fork::FreeSpaceMap),
            2 => Some(Fork::VisibilityMap),
            3 => Some(Fork::Init),
            _ => None,
        }
    }
}

/// Identifies one fork of one relation: PostgreSQL's `RelFileLocator` plus the fork.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct RelTag {
    pub spc_oid: Oid,
    pub db_oid: Oid,
    pub rel_number: u32,
    pub fork: Fork,
}

impl fmt::Display for RelTag {
    /// `spc/db/rel` like PostgreSQL's `relpathperm`, with `_fsm`/`_vm`/`_init` for other forks.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.spc_oid, self.db_oid, self.rel_number)?;
        match self.fork {
            Fork::Main => Ok(()),
            Fork::FreeSpaceMap => f.write_str("_fsm"),
            Fork::VisibilityMap => f.write_str("_vm"),
            Fork::Init => f.write_str("_init"),
        }
    }
}

/// Block number within a relation fork.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Default)]
pub struct BlockNumber(pub u32);

impl fmt::Display for BlockNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// One page of one relation fork: PostgreSQL's `BufferTag`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct PageKey {
    pub rel: RelTag,
    pub block: BlockNumber,
}

impl fmt::Display for PageKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} blk {}", self.rel, self.block)
    }
}

macro_rules! id128 {
    ($name:ident, $what:literal) => {
        #[doc = concat!("128-bit ", $what, " id, printed as 32 lowercase hex digits.")]
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
        pub struct $name(pub [u8; 16]);

        impl $name {
            pub fn from_u128(value: u128) -> Self {
                Self(value.to_be_bytes())
            }
            pub fn as_u128(&self) -> u128 {
                u128::from_be_bytes(self.0)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{:032x}", self.as_u128())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(self, f)
            }
        }

        impl FromStr for $name {
            type Err = ParseError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                if s.len() != 32 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(ParseError { what: $what, input: s.to_string() });
                }
                u128::from_str_radix(s, 16)
                    .map(Self::from_u128)
                    .map_err(|_| ParseError { what: $what, input: s.to_string() })
            }
        }
    };
}

id128!(TenantId, "tenant");
id128!(TimelineId, "timeline");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lsn_prints_like_postgres() {
        assert_eq!(Lsn(0x1_0000_00A8).to_string(), "1/A8");
        assert_eq!(Lsn(0).to_string(), "0/0");
        assert_eq!("16/B374D848".parse::<Lsn>(), Ok(Lsn(0x16_B374_D848)));
        assert_eq!("42".parse::<Lsn>(), Ok(Lsn(42)));
        assert!("1/".parse::<Lsn>().is_err());
    }

    #[test]
    fn ids_round_trip_as_hex() {
        let id = TenantId::from_u128(0x0123_4567_89ab_cdef_0011_2233_4455_6677);
        let text = id.to_string();
        assert_eq!(text, "0123456789abcdef0011223344556677");
        assert_eq!(text.parse::<TenantId>(), Ok(id));
        assert!("xyz".parse::<TenantId>().is_err());
        assert!("0123456789abcdef00112233445566770".parse::<TimelineId>().is_err());
    }

    #[test]
    fn reltag_prints_like_relpath() {
        let rel = RelTag { spc_oid: 1663, db_oid: 5, rel_number: 16384, fork: Fork::VisibilityMap };
        assert_eq!(rel.to_string(), "1663/5/16384_vm");
    }
}
