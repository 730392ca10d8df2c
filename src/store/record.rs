//! How tokens and grants are stored: a compact binary record, because every `/userinfo` and
//! `/introspect` decodes one of each, and decoding them from JSON was 18 % of `/userinfo`'s
//! instructions (BENCHMARKS.md). Codes, users and throttle entries stay JSON: they are read once
//! per sign-in or exchange, where argon2 and fsync dwarf decoding.
//!
//! Layout: a version byte, then the fields in a fixed order; integers are little-endian `u64`,
//! strings a `u32` length and UTF-8 bytes. Records written by earlier versions of linkgate are
//! JSON, which starts with `{`; they are still read, and become binary when next rewritten, so an
//! upgrade needs no migration step. (A downgrade does: restore a backup taken before upgrading.)

use super::{Grant, Rotation, StoreError, TokenKind, TokenRecord};

/// The first byte of a binary record. JSON records start with `{` (0x7b). Version 2 (grants
/// only) adds the user's generation, the refresh-token secret and the rotation state.
const V1: u8 = 1;
const V2: u8 = 2;
/// Version 3 (grants only) adds the RFC 8707 resource.
const V3: u8 = 3;

/// A record with a binary encoding (and, for records written before it, a JSON one).
pub(super) trait Record: Sized + serde::de::DeserializeOwned {
    /// The version `write` writes.
    const VERSION: u8 = V1;
    fn write(&self, out: &mut Writer);
    /// Reads a record written as `version` (1 up to `VERSION`).
    fn read(input: &mut Reader<'_>, version: u8) -> Option<Self>;
}

pub(super) fn encode<T: Record>(record: &T) -> Vec<u8> {
    let mut out = Writer(Vec::with_capacity(96));
    out.0.push(T::VERSION);
    record.write(&mut out);
    out.0
}

pub(super) fn decode<T: Record>(bytes: &[u8]) -> Result<T, StoreError> {
    match bytes.split_first() {
        Some((&version, rest)) if (V1..=T::VERSION).contains(&version) => {
            let mut input = Reader(rest);
            match T::read(&mut input, version) {
                Some(record) if input.0.is_empty() => Ok(record),
                _ => Err(StoreError::Corrupt(format!(
                    "a binary record of {} bytes does not decode",
                    bytes.len()
                ))),
            }
        }
        Some((b'{', _)) => super::decode(bytes),
        _ => Err(StoreError::Corrupt(format!(
            "unknown record format (first byte {:?})",
            bytes.first()
        ))),
    }
}

pub(super) struct Writer(Vec<u8>);

impl Writer {
    fn u8(&mut self, value: u8) {
        self.0.push(value);
    }

    fn u64(&mut self, value: u64) {
        self.0.extend_from_slice(&value.to_le_bytes());
    }

    fn str(&mut self, value: &str) {
        // Every stored string is far below 4 GiB (requests are bounded by max_body_bytes).
        let len = u32::try_from(value.len()).unwrap_or(u32::MAX);
        self.0.extend_from_slice(&len.to_le_bytes());
        self.0.extend_from_slice(&value.as_bytes()[..len as usize]);
    }
}

pub(super) struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (head, rest) = self.0.split_first_chunk::<N>()?;
        self.0 = rest;
        Some(*head)
    }

    fn u8(&mut self) -> Option<u8> {
        self.take::<1>().map(|[b]| b)
    }

    fn u64(&mut self) -> Option<u64> {
        self.take().map(u64::from_le_bytes)
    }

    fn str(&mut self) -> Option<String> {
        let len = usize::try_from(u32::from_le_bytes(self.take()?)).ok()?;
        let (bytes, rest) = self.0.split_at_checked(len)?;
        self.0 = rest;
        String::from_utf8(bytes.to_vec()).ok()
    }
}

impl Record for Grant {
    const VERSION: u8 = V3;

    fn write(&self, out: &mut Writer) {
        out.u64(self.created_at);
        out.u64(self.expires_at);
        out.str(&self.id);
        out.str(&self.sub);
        out.str(&self.username);
        out.str(&self.client_id);
        out.str(&self.scope);
        // Version 2.
        out.u64(self.generation);
        match &self.secret {
            Some(secret) => {
                out.u8(1);
                out.0.extend_from_slice(secret);
            }
            None => out.u8(0),
        }
        out.u64(self.rotation.seq);
        match &self.rotation.used {
            Some(nonce) => {
                out.u8(1);
                out.0.extend_from_slice(nonce);
            }
            None => out.u8(0),
        }
        // Version 3.
        match &self.resource {
            Some(resource) => {
                out.u8(1);
                out.str(resource);
            }
            None => out.u8(0),
        }
    }

    fn read(input: &mut Reader<'_>, version: u8) -> Option<Self> {
        let mut grant = Grant {
            created_at: input.u64()?,
            expires_at: input.u64()?,
            id: input.str()?,
            sub: input.str()?,
            username: input.str()?,
            client_id: input.str()?,
            scope: input.str()?,
            generation: 0,
            secret: None,
            rotation: Rotation::default(),
            resource: None,
        };
        if version >= V2 {
            grant.generation = input.u64()?;
            grant.secret = match input.u8()? {
                0 => None,
                1 => Some(input.take()?),
                _ => return None,
            };
            grant.rotation.seq = input.u64()?;
            grant.rotation.used = match input.u8()? {
                0 => None,
                1 => Some(input.take()?),
                _ => return None,
            };
        }
        if version >= V3 {
            grant.resource = match input.u8()? {
                0 => None,
                1 => Some(input.str()?),
                _ => return None,
            };
        }
        Some(grant)
    }
}

/// Bits of a token record's flags byte.
const REFRESH: u8 = 1;
const RETIRED: u8 = 2;
const HAS_PARENT: u8 = 4;

impl Record for TokenRecord {
    fn write(&self, out: &mut Writer) {
        let mut flags = 0;
        if self.kind == TokenKind::Refresh {
            flags |= REFRESH;
        }
        if self.retired {
            flags |= RETIRED;
        }
        if self.parent.is_some() {
            flags |= HAS_PARENT;
        }
        out.u8(flags);
        out.u64(self.issued_at);
        out.u64(self.expires_at);
        out.str(&self.grant_id);
        out.str(&self.scope);
        if let Some(parent) = &self.parent {
            out.str(parent);
        }
        out.u64(self.children.len() as u64);
        for child in &self.children {
            out.str(child);
        }
    }

    fn read(input: &mut Reader<'_>, _version: u8) -> Option<Self> {
        let flags = input.u8()?;
        if flags & !(REFRESH | RETIRED | HAS_PARENT) != 0 {
            return None;
        }
        let issued_at = input.u64()?;
        let expires_at = input.u64()?;
        let grant_id = input.str()?;
        let scope = input.str()?;
        let parent = match flags & HAS_PARENT {
            0 => None,
            _ => Some(input.str()?),
        };
        let count = input.u64()?;
        // Each child takes at least 4 bytes: a hostile count cannot make us allocate much.
        if count > (input.0.len() / 4) as u64 {
            return None;
        }
        let children = (0..count).map(|_| input.str()).collect::<Option<_>>()?;
        Some(TokenRecord {
            kind: match flags & REFRESH {
                0 => TokenKind::Access,
                _ => TokenKind::Refresh,
            },
            grant_id,
            scope,
            issued_at,
            expires_at,
            parent,
            children,
            retired: flags & RETIRED != 0,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant() -> Grant {
        Grant {
            id: "g1".into(),
            sub: "sub-ü".into(),
            username: "alice".into(),
            client_id: "alexa-skill".into(),
            scope: "profile offline_access".into(),
            created_at: 1_764_000_000,
            expires_at: 0,
            generation: 42,
            secret: Some([7; 32]),
            rotation: Rotation {
                seq: 3,
                used: Some([9; 16]),
            },
            resource: Some("https://mcp.example.com/mcp".into()),
        }
    }

    fn rotated() -> TokenRecord {
        let mut token = TokenRecord::refresh(&grant(), "profile", 1_764_000_001);
        token.parent = Some("ab".repeat(32));
        token.children = vec!["cd".repeat(32), "ef".repeat(32)];
        token.retired = true;
        token
    }

    #[test]
    fn records_survive_a_round_trip() {
        let g: Grant = decode(&encode(&grant())).unwrap();
        assert_eq!(format!("{g:?}"), format!("{:?}", grant()));
        for token in [
            TokenRecord::access(&grant(), "profile", 5, 3600),
            TokenRecord::refresh(&grant(), "", 5),
            rotated(),
        ] {
            let back: TokenRecord = decode(&encode(&token)).unwrap();
            assert_eq!(format!("{back:?}"), format!("{token:?}"));
        }
    }

    #[test]
    fn records_written_as_json_by_earlier_versions_are_still_read() {
        let old = serde_json::to_vec(&rotated()).unwrap();
        let back: TokenRecord = decode(&old).unwrap();
        assert_eq!(format!("{back:?}"), format!("{:?}", rotated()));
        let old = br#"{"id":"g1","sub":"s","username":"alice","client_id":"c","scope":"profile","created_at":1,"expires_at":0}"#;
        let back: Grant = decode(old).unwrap();
        assert_eq!((back.username.as_str(), back.created_at), ("alice", 1));
    }

    /// Grants written by the previous release (record version 1) read with generation 0, no
    /// refresh-token secret and no rotation yet (the layout of the grant in tests/fixtures'
    /// backup-v2.linkgate-backup).
    #[test]
    fn version_1_grants_are_still_read() {
        let mut v1 = vec![1u8];
        v1.extend_from_slice(&1_795_618_672u64.to_le_bytes());
        v1.extend_from_slice(&0u64.to_le_bytes());
        for field in ["g1", "sub", "alice", "alexa-skill", "profile"] {
            v1.extend_from_slice(&(field.len() as u32).to_le_bytes());
            v1.extend_from_slice(field.as_bytes());
        }
        let grant: Grant = decode(&v1).unwrap();
        assert_eq!(
            (
                grant.id.as_str(),
                grant.generation,
                grant.secret,
                grant.rotation.clone()
            ),
            ("g1", 0, None, Rotation::default())
        );
        // Rewritten, it is the current version and keeps everything.
        let again = encode(&grant);
        assert_eq!(again[0], 3);
        assert_eq!(
            format!("{:?}", decode::<Grant>(&again).unwrap()),
            format!("{grant:?}")
        );
    }

    /// Version 2 grants (every release before resource indicators) read with no resource, and
    /// everything else as written.
    #[test]
    fn version_2_grants_are_read_without_a_resource() {
        let mut current = grant();
        current.resource = None;
        let mut v2 = encode(&current);
        // Version 3 ends with the resource flag (0: none); version 2 ends before it.
        assert_eq!(v2.pop(), Some(0));
        v2[0] = 2;
        let back: Grant = decode(&v2).unwrap();
        assert_eq!(format!("{back:?}"), format!("{current:?}"));
        // A version 2 record with the flag is one byte too long.
        let mut long = v2.clone();
        long.push(0);
        assert!(decode::<Grant>(&long).is_err());
    }

    #[test]
    fn damaged_records_are_an_error_not_a_panic() {
        let good = encode(&rotated());
        // Every truncation, and a byte too many, is refused.
        for len in 0..good.len() {
            assert!(decode::<TokenRecord>(&good[..len]).is_err(), "length {len}");
        }
        let mut long = good.clone();
        long.push(0);
        assert!(decode::<TokenRecord>(&long).is_err());
        // Unknown version, unknown flags, a huge length or child count, invalid UTF-8.
        assert!(decode::<TokenRecord>(&[9, 0, 0]).is_err());
        let mut flags = good.clone();
        flags[1] |= 0x80;
        assert!(decode::<TokenRecord>(&flags).is_err());
        let mut huge = encode(&grant());
        huge[17..21].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(decode::<Grant>(&huge).is_err());
        let mut count = encode(&TokenRecord::access(&grant(), "", 0, 0));
        let at = count.len() - 8;
        count[at..].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(decode::<TokenRecord>(&count).is_err());
        let mut utf8 = encode(&grant());
        utf8[21] = 0xff;
        assert!(decode::<Grant>(&utf8).is_err());
    }

    #[test]
    fn binary_records_are_smaller_than_json() {
        let token = TokenRecord::access(&grant(), "profile", 1_764_000_000, 3600);
        let (binary, json) = (
            encode(&token).len(),
            serde_json::to_vec(&token).unwrap().len(),
        );
        assert!(binary * 2 < json, "binary {binary} bytes, JSON {json}");
    }
}
