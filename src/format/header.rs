//! The 16-byte header at byte 0: magic and format version.

/// Magic bytes at offset 0 of every archive.
pub const MAGIC: [u8; 8] = *b"ZNPYURNG";
/// The format version this build writes.
pub const VERSION: u32 = 4;
/// The oldest format version this build reads (it reads every version up to
/// [`VERSION`]).
pub const OLDEST: u32 = 1;
/// Length of the header; the first blob starts here.
pub const HEADER_LEN: u64 = 16;
/// Header flag: the archive is incremental; some of its files' data lies in the
/// archives its bases table names. Readers that do not know the flag refuse the
/// archive rather than read those files from the wrong one.
pub const FLAG_BASES: u32 = 1;

/// The header bytes: magic, version (u32 LE), flags (u32 LE).
pub fn encode(flags: u32) -> [u8; HEADER_LEN as usize] {
    let mut h = [0u8; HEADER_LEN as usize];
    h[..8].copy_from_slice(&MAGIC);
    h[8..12].copy_from_slice(&VERSION.to_le_bytes());
    h[12..16].copy_from_slice(&flags.to_le_bytes());
    h
}

/// Checks a header and returns its version, or says what is wrong.
pub fn decode(h: &[u8; HEADER_LEN as usize]) -> Result<u32, String> {
    let (magic, rest) = h.split_at(8);
    if magic != MAGIC {
        return Err("bad magic at byte 0".into());
    }
    let version = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]);
    if !(OLDEST..=VERSION).contains(&version) {
        return Err(format!(
            "format version {version} is not supported (this build reads {OLDEST} to {VERSION})"
        ));
    }
    let flags = u32::from_le_bytes([rest[4], rest[5], rest[6], rest[7]]);
    if flags & !FLAG_BASES != 0 {
        return Err(format!("unknown header flags {flags:#x}"));
    }
    Ok(version)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_rejects() {
        assert_eq!(decode(&encode(0)), Ok(VERSION));
        assert_eq!(decode(&encode(FLAG_BASES)), Ok(VERSION));
        let mut bad = encode(0);
        bad[0] ^= 1;
        assert!(decode(&bad).unwrap_err().contains("magic"));
        let mut v1 = encode(0);
        v1[8] = 1;
        assert_eq!(decode(&v1), Ok(1));
        for older in 2..VERSION {
            v1[8] = older as u8;
            assert_eq!(decode(&v1), Ok(older));
        }
        for unknown in [0u8, VERSION as u8 + 1] {
            let mut v = encode(0);
            v[8] = unknown;
            let err = decode(&v).unwrap_err();
            assert!(err.contains(&format!("version {unknown} ")), "{err}");
        }
        assert!(decode(&encode(2)).unwrap_err().contains("flags"));
    }
}
