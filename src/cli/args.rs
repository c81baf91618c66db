//! Argument types that several commands share.

/// Parses a size with an optional binary suffix: `4M`, `256K`, `1G`, `1MiB`, `4096`.
pub fn parse_size(s: &str) -> Result<usize, String> {
    let lower = s.trim().to_ascii_lowercase();
    let (num, mult) = [
        ("kib", 1usize << 10),
        ("mib", 1 << 20),
        ("gib", 1 << 30),
        ("k", 1 << 10),
        ("m", 1 << 20),
        ("g", 1 << 30),
    ]
    .iter()
    .find_map(|(suf, m)| lower.strip_suffix(suf).map(|n| (n, *m)))
    .unwrap_or((&lower, 1));
    num.trim()
        .parse::<usize>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .ok_or_else(|| format!("invalid size {s:?} (examples: 1M, 256K, 1048576)"))
}

/// Parses `--max-size`: a size as [`parse_size`] takes it, or `unlimited`.
pub fn parse_max_size(s: &str) -> Result<znippy_uring::MaxSize, String> {
    if s.trim().eq_ignore_ascii_case("unlimited") {
        return Ok(znippy_uring::MaxSize::Unlimited);
    }
    parse_size(s)
        .map(|n| znippy_uring::MaxSize::Bytes(n as u64))
        .map_err(|e| format!("{e}, or unlimited"))
}

/// `--threads`, or all cores when not given.
pub fn threads(t: Option<usize>) -> usize {
    t.unwrap_or_else(|| znippy_uring::UnpackOptions::default().threads)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1M"), Ok(1 << 20));
        assert_eq!(parse_size("256k"), Ok(256 << 10));
        assert_eq!(parse_size("2GiB"), Ok(2 << 30));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert!(parse_size("x").is_err());
        assert!(parse_size("99999999999999999999G").is_err());
    }

    #[test]
    fn max_sizes() {
        use znippy_uring::MaxSize;
        assert_eq!(parse_max_size("unlimited"), Ok(MaxSize::Unlimited));
        assert_eq!(parse_max_size("2G"), Ok(MaxSize::Bytes(2 << 30)));
        assert_eq!(parse_max_size("0"), Ok(MaxSize::Bytes(0)));
        assert!(parse_max_size("lots").is_err());
    }
}
