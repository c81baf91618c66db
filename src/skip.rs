//! The skip list: file types that are already compressed and are stored as-is.

/// Extensions (lower case, without the dot) of formats that are already compressed.
pub const COMPRESSED_EXTENSIONS: &[&str] = &[
    // archives and compressed streams
    "7z", "apk", "br", "bz2", "cab", "crate", "deb", "ear", "gem", "gz", "jar", "lz", "lz4", "lzma",
    "lzo", "nupkg", "rar", "rpm", "sz", "tbz2", "tgz", "txz", "tzst", "war", "whl", "xz", "z",
    "zip", "zipx", "zst", "znippy", // images
    "avif", "gif", "heic", "jpeg", "jpg", "jxl", "png", "webp", // audio and video
    "aac", "flac", "m4a", "m4v", "mkv", "mov", "mp3", "mp4", "ogg", "opus", "webm", "wmv",
    // documents and data containers that compress internally
    "docx", "epub", "odt", "ods", "parquet", "pptx", "xlsx", "woff", "woff2",
];

/// Whether a file with this name is of a known already-compressed type (by extension,
/// in any case; `.gz` alone is a hidden file, not an extension).
pub fn is_compressed_name(path: &[u8]) -> bool {
    let name = path.rsplit(|&b| b == b'/').next().unwrap_or(path);
    // A dot that starts the name makes it hidden, not an extension.
    let Some((_, ext)) = name
        .iter()
        .rposition(|&b| b == b'.')
        .filter(|&dot| dot > 0)
        .and_then(|dot| name.split_at_checked(dot + 1))
    else {
        return false;
    };
    if ext.is_empty() || ext.len() > 8 {
        return false;
    }
    COMPRESSED_EXTENSIONS
        .iter()
        .any(|known| known.as_bytes().eq_ignore_ascii_case(ext))
}

#[cfg(test)]
mod tests {
    use super::is_compressed_name;

    #[test]
    fn recognizes_extensions_case_insensitively() {
        assert!(is_compressed_name(b"dir/a.JPG"));
        assert!(is_compressed_name(b"x.tar.gz"));
        assert!(!is_compressed_name(b"notes.txt"));
        assert!(!is_compressed_name(b"Makefile"));
        assert!(!is_compressed_name(b"trailing."));
        assert!(!is_compressed_name(b"random.bin"));
    }

    #[test]
    fn a_hidden_name_has_no_extension() {
        assert!(!is_compressed_name(b".gz"));
        assert!(!is_compressed_name(b"dir.zip/.jpg"));
        assert!(is_compressed_name(b"dir/.cache.zst"));
        assert!(!is_compressed_name(b"photos.zip/readme"));
    }
}
