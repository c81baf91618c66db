//! `--partition KEY=VALUE`: the levels of a catalog's hive layout, and the value of
//! each level for one archive (its placeholders filled in).

use anyhow::{Result, bail};
use std::path::Path;
use std::time::SystemTime;

/// The placeholders a value may use; braces mean nothing else.
const PLACEHOLDERS: [&str; 4] = ["{parent}", "{stem}", "{date}", "{id}"];

/// What every refused placeholder message lists.
const ALLOWED: &str = "the placeholders are {parent}, {stem}, {date} and {id}";

/// `KEY=VALUE`, with a key made of letters, digits and `_`, and a value that is one
/// directory name once its placeholders are filled in.
pub fn parse(p: &str) -> Result<(String, String)> {
    let Some((key, value)) = p.split_once('=') else {
        bail!("--partition {p:?}: expected KEY=VALUE, e.g. host={{parent}}");
    };
    let plain = |c: char| c.is_ascii_alphanumeric() || c == '_';
    if key.is_empty() || !key.chars().all(plain) || value.is_empty() {
        bail!("--partition {p:?}: the key must be letters, digits or _, and the value not empty");
    }
    let literal = literal_part(p, value)?;
    if let Some(c) = literal.chars().find(|&c| c.is_control()) {
        bail!(
            "--partition {p:?}: the value holds the control character {:?}; a partition value is a directory name",
            c
        );
    }
    if literal.contains(['/', '=']) || value == "." || value == ".." {
        bail!("--partition {p:?}: the value cannot be a directory name (no /, = or . alone)");
    }
    Ok((key.into(), value.into()))
}

/// `value` without its placeholders; refuses a brace that does not start one.
fn literal_part(p: &str, value: &str) -> Result<String> {
    let mut literal = String::new();
    let mut rest = value;
    while let Some(at) = rest.find(['{', '}']) {
        literal.push_str(&rest[..at]);
        let tail = &rest[at..];
        let Some(placeholder) = PLACEHOLDERS.iter().find(|ph| tail.starts_with(**ph)) else {
            let shown = match tail.find('}') {
                Some(end) if tail.starts_with('{') => &tail[..=end],
                _ => &tail[..1],
            };
            bail!("--partition {p:?}: {shown} is not a placeholder; {ALLOWED}");
        };
        rest = &tail[placeholder.len()..];
    }
    literal.push_str(rest);
    Ok(literal)
}

/// `value` with its placeholders filled in for the archive at `path`, whose id is
/// `id`. The result must be usable as one directory name of a hive partition.
pub fn expand(value: &str, path: &Path, id: &str) -> Result<String> {
    let parent = std::fs::canonicalize(path)
        .ok()
        .and_then(|p| p.parent().and_then(Path::file_name).map(|n| n.to_owned()));
    let stem = path.file_stem().map(|n| n.to_owned());
    let mtime = std::fs::metadata(path).and_then(|m| m.modified()).ok();
    let mut out = value.to_string();
    for (placeholder, filled) in [
        ("{parent}", parent),
        ("{stem}", stem),
        ("{date}", mtime.map(|t| day(t).into())),
        ("{id}", Some(id.into())),
    ] {
        if out.contains(placeholder) {
            let Some(filled) = filled else {
                bail!("{}: no value for {placeholder}", path.display());
            };
            let Some(filled) = filled.to_str() else {
                bail!(
                    "{}: the value for {placeholder}, {filled:?}, is not UTF-8, as a partition value must be",
                    path.display()
                );
            };
            out = out.replace(placeholder, filled);
        }
    }
    let awkward = |c: char| c.is_control() || c == '/' || c == '=';
    if out.is_empty() || out.contains(awkward) || out == "." || out == ".." {
        bail!(
            "{}: partition value {out:?} cannot be a directory name (no /, =, control characters or . alone)",
            path.display()
        );
    }
    Ok(out)
}

/// The UTC day of `t`, `YYYY-MM-DD`.
fn day(t: SystemTime) -> String {
    let secs = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let ((y, m, d), _) = super::super::utc::date(secs);
    format!("{y:04}-{m:02}-{d:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_and_days() {
        assert_eq!(parse("host=web1").unwrap(), ("host".into(), "web1".into()));
        assert!(parse("host").is_err());
        assert!(parse("a/b=c").is_err());
        assert!(parse("k=").is_err());
        let t = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_764_460_800);
        assert_eq!(day(t), "2025-11-30");
        assert_eq!(day(SystemTime::UNIX_EPOCH), "1970-01-01");
    }

    #[test]
    fn placeholders_are_the_four_named_ones() {
        assert!(parse("d={parent}-{stem}.{date}.{id}").is_ok());
        for bad in ["k={nonsense}", "k={parent", "k=a}b", "k={}", "k={Parent}"] {
            let e = parse(bad).unwrap_err().to_string();
            assert!(
                e.contains("is not a placeholder") && e.contains("{stem}"),
                "{bad}: {e}"
            );
        }
        let e = parse("k={nonsense}x").unwrap_err().to_string();
        assert!(e.contains("{nonsense} is not a placeholder"), "{e}");
    }

    #[test]
    fn control_characters_and_separators_are_refused() {
        for bad in [
            "k=a\nb", "k=a\tb", "k=\u{7f}", "k=a/b", "k=a=b", "k=..", "k=.",
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
        let e = parse("k=web\n1").unwrap_err().to_string();
        assert!(e.contains("control character"), "{e}");
    }
}
