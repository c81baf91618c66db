//! The 16-byte footer at the end: `ZNPYMIDX` and the manifest's offset.

/// Magic bytes that open the footer.
pub const MAGIC: [u8; 8] = *b"ZNPYMIDX";
/// Length of the footer.
pub const FOOTER_LEN: u64 = 16;

/// The footer bytes for a manifest starting at `manifest_offset`.
pub fn encode(manifest_offset: u64) -> [u8; FOOTER_LEN as usize] {
    let mut f = [0u8; FOOTER_LEN as usize];
    f[..8].copy_from_slice(&MAGIC);
    f[8..].copy_from_slice(&manifest_offset.to_le_bytes());
    f
}

/// The manifest offset from a footer, or what is wrong with it.
pub fn decode(f: &[u8; FOOTER_LEN as usize]) -> Result<u64, String> {
    let (magic, off) = f.split_at(8);
    if magic != MAGIC {
        return Err("footer magic ZNPYMIDX missing (truncated or not finished)".into());
    }
    let mut le = [0u8; 8];
    le.copy_from_slice(off);
    Ok(u64::from_le_bytes(le))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        assert_eq!(decode(&encode(12345)), Ok(12345));
        let mut bad = encode(1);
        bad[7] = b'Y';
        assert!(decode(&bad).is_err());
    }
}
