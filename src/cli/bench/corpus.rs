//! The standard benchmark corpora, generated deterministically from a seed.
//!
//! The generators are written here rather than taken from `rand` so that a corpus is
//! the same bytes for a given seed in every version of this tool.

use std::fs;
use std::io::{BufWriter, Write};
use std::path::Path;
use znippy_uring::{Error, Result};

/// The corpora `bench` knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Corpus {
    /// About 500 MB of natural-language-like text in 50 files.
    Text,
    /// About 256 MB of structured binary records.
    Binary,
    /// About 256 MB of random bytes in `.bin` files (only detection can skip them).
    Random,
    /// 100,000 files of 10 KiB: text, source code and JSON.
    Small,
    /// A repository: jars and `.tar.gz` (incompressible), sources, XML.
    Mixed,
    /// One 2 GiB file of alternating text and binary blocks.
    Big,
}

impl Corpus {
    /// Every corpus, in report order.
    pub const ALL: [Corpus; 6] = [
        Corpus::Text,
        Corpus::Binary,
        Corpus::Random,
        Corpus::Small,
        Corpus::Mixed,
        Corpus::Big,
    ];

    /// The corpus's name.
    pub fn name(self) -> &'static str {
        match self {
            Corpus::Text => "text",
            Corpus::Binary => "binary",
            Corpus::Random => "random",
            Corpus::Small => "small",
            Corpus::Mixed => "mixed",
            Corpus::Big => "big",
        }
    }
}

impl std::str::FromStr for Corpus {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Corpus::ALL
            .into_iter()
            .find(|c| c.name() == s)
            .ok_or_else(|| {
                Error::Invalid(format!(
                    "unknown corpus {s:?} (text, binary, random, small, mixed, big)"
                ))
            })
    }
}

/// xorshift64*: small, fast, and fixed forever.
pub struct Rng(u64);

impl Rng {
    /// A generator for `seed` and `stream` (distinct streams are independent).
    pub fn new(seed: u64, stream: u64) -> Rng {
        Rng(
            (seed ^ stream.wrapping_mul(0x9E37_79B9_7F4A_7C15)).wrapping_mul(0xD134_2543_DE82_EF95)
                | 1,
        )
    }
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// A number in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        ((self.next_u64() >> 32) * n) >> 32
    }
}

/// Text with a Zipf-distributed vocabulary of syllable words, in sentences and
/// paragraphs, so it compresses like prose (about 3-4x at zstd level 3).
pub struct TextGen {
    rng: Rng,
    words: Vec<Vec<u8>>,
    cumulative: Vec<u32>,
}

impl TextGen {
    /// A text generator.
    pub fn new(seed: u64, stream: u64) -> TextGen {
        const SYL: [&str; 24] = [
            "ka", "to", "ri", "an", "mo", "sel", "ver", "un", "de", "la", "po", "tra", "in", "es",
            "con", "ti", "or", "mi", "sa", "ber", "gen", "al", "ro", "ne",
        ];
        let mut rng = Rng::new(seed, 0x7e47);
        let mut words = Vec::with_capacity(6000);
        let mut cumulative = Vec::with_capacity(6000);
        let mut total = 0u32;
        for rank in 1..=6000u32 {
            let n = 1 + rng.below(4) as usize;
            let w: String = (0..n)
                .map(|_| SYL[rng.below(SYL.len() as u64) as usize])
                .collect();
            words.push(w.into_bytes());
            total += 1_000_000 / rank;
            cumulative.push(total);
        }
        TextGen {
            rng: Rng::new(seed, stream),
            words,
            cumulative,
        }
    }

    fn word(&mut self) -> &[u8] {
        let total = self.cumulative.last().copied().unwrap_or(1);
        let x = self.rng.below(u64::from(total)) as u32;
        let i = self.cumulative.partition_point(|&c| c <= x);
        &self.words[i.min(self.words.len() - 1)]
    }

    /// Appends about `len` bytes of text to `out`.
    pub fn fill(&mut self, out: &mut Vec<u8>, len: usize) {
        let end = out.len() + len;
        while out.len() < end {
            let sentences = 3 + self.rng.below(6);
            for _ in 0..sentences {
                let words = 5 + self.rng.below(15);
                for w in 0..words {
                    let start = out.len();
                    let word = self.word().to_vec();
                    out.extend_from_slice(&word);
                    if w == 0 {
                        out[start] = out[start].to_ascii_uppercase();
                    }
                    out.push(if w + 1 == words { b'.' } else { b' ' });
                }
                out.push(b' ');
            }
            out.extend_from_slice(b"\n\n");
        }
        out.truncate(end);
    }
}

/// Structured binary records (counters, timestamps, smooth values, small enums).
fn binary_records(rng: &mut Rng, out: &mut Vec<u8>, len: usize, base: u64) {
    let end = out.len() + len;
    let mut i = base;
    while out.len() < end {
        out.extend_from_slice(&i.to_le_bytes());
        out.extend_from_slice(&(1_700_000_000_000 + i * 17 + rng.below(5)).to_le_bytes());
        out.extend_from_slice(&((i as f64) * 0.001).sin().to_le_bytes());
        out.extend_from_slice(&(rng.below(64) as u32).to_le_bytes());
        out.extend_from_slice(&(rng.below(4) as u32).to_le_bytes());
        i += 1;
    }
    out.truncate(end);
}

fn random_bytes(rng: &mut Rng, out: &mut Vec<u8>, len: usize) {
    let end = out.len() + len;
    while out.len() < end {
        out.extend_from_slice(&rng.next_u64().to_le_bytes());
    }
    out.truncate(end);
}

fn source_code(rng: &mut Rng, text: &mut TextGen, out: &mut Vec<u8>, len: usize) {
    let end = out.len() + len;
    let mut n = rng.below(1000);
    while out.len() < end {
        let mut name = Vec::new();
        text.fill(&mut name, 12);
        name.retain(u8::is_ascii_alphabetic);
        let name = String::from_utf8_lossy(&name).to_lowercase();
        out.extend_from_slice(
            format!(
                "/* {name}: compute the {n}th value */\nstatic int {name}_{n}(int a, int b)\n{{\n\tif (a > {}) \n\t\treturn a - b;\n\treturn a + b * {n};\n}}\n\n",
                rng.below(100)
            )
            .as_bytes(),
        );
        n += 1;
    }
    out.truncate(end);
}

fn json_records(rng: &mut Rng, text: &mut TextGen, out: &mut Vec<u8>, len: usize) {
    let end = out.len() + len;
    while out.len() < end {
        let mut desc = Vec::new();
        text.fill(&mut desc, 40 + rng.below(80) as usize);
        desc.retain(|&b| b != b'\n' && b != b'"');
        out.extend_from_slice(
            format!(
                "{{\"id\": {}, \"name\": \"item-{}\", \"price\": {}.{:02}, \"tags\": [\"t{}\", \"t{}\"], \"description\": \"{}\"}}\n",
                rng.below(1_000_000),
                rng.below(5000),
                rng.below(500),
                rng.below(100),
                rng.below(30),
                rng.below(30),
                String::from_utf8_lossy(&desc)
            )
            .as_bytes(),
        );
    }
    out.truncate(end);
}

fn xml(rng: &mut Rng, text: &mut TextGen, out: &mut Vec<u8>, len: usize) {
    let end = out.len() + len;
    out.extend_from_slice(
        b"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<project>\n  <dependencies>\n",
    );
    while out.len() < end {
        let mut w = Vec::new();
        text.fill(&mut w, 10);
        w.retain(u8::is_ascii_alphabetic);
        let w = String::from_utf8_lossy(&w).to_lowercase();
        out.extend_from_slice(
            format!(
                "    <dependency>\n      <groupId>org.{w}</groupId>\n      <artifactId>{w}-core</artifactId>\n      <version>{}.{}.{}</version>\n    </dependency>\n",
                rng.below(5),
                rng.below(20),
                rng.below(10)
            )
            .as_bytes(),
        );
    }
    out.truncate(end);
}

/// What a generated corpus holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Regular files.
    pub files: u64,
    /// Bytes in them.
    pub bytes: u64,
}

struct Writer<'a> {
    root: &'a Path,
    stats: Stats,
}

impl Writer<'_> {
    fn file(&mut self, rel: &str, data: &[u8]) -> Result<()> {
        let p = self.root.join(rel);
        if let Some(parent) = p.parent() {
            fs::create_dir_all(parent).map_err(|e| Error::io(parent, "mkdir", e))?;
        }
        fs::write(&p, data).map_err(|e| Error::io(&p, "write", e))?;
        self.stats.files += 1;
        self.stats.bytes += data.len() as u64;
        Ok(())
    }
}

const MB: f64 = 1_000_000.0;

fn scaled(n: f64, scale: f64) -> usize {
    ((n * scale).round() as usize).max(1)
}

/// Generates `corpus` at `scale` into `dir` (emptied first), deterministic from `seed`.
pub fn generate(corpus: Corpus, dir: &Path, scale: f64, seed: u64) -> Result<Stats> {
    if dir.exists() {
        fs::remove_dir_all(dir).map_err(|e| Error::io(dir, "remove", e))?;
    }
    fs::create_dir_all(dir).map_err(|e| Error::io(dir, "mkdir", e))?;
    let mut g = Gen {
        w: Writer {
            root: dir,
            stats: Stats::default(),
        },
        rng: Rng::new(seed, corpus as u64),
        text: TextGen::new(seed, 100 + corpus as u64),
        buf: Vec::new(),
        scale,
    };
    match corpus {
        Corpus::Text => g.text()?,
        Corpus::Binary => g.binary()?,
        Corpus::Random => g.random()?,
        Corpus::Small => g.small()?,
        Corpus::Mixed => g.mixed()?,
        Corpus::Big => g.big()?,
    }
    Ok(g.w.stats)
}

/// A corpus being generated: one method per corpus.
struct Gen<'a> {
    w: Writer<'a>,
    rng: Rng,
    text: TextGen,
    buf: Vec<u8>,
    scale: f64,
}

impl Gen<'_> {
    fn scaled(&self, n: f64) -> usize {
        scaled(n, self.scale)
    }

    /// 50 books of 10 MB of text.
    fn text(&mut self) -> Result<()> {
        for i in 0..self.scaled(50.0) {
            self.buf.clear();
            self.text.fill(&mut self.buf, (10.0 * MB) as usize);
            self.w
                .file(&format!("books/vol{:02}/part{i:03}.txt", i / 10), &self.buf)?;
        }
        Ok(())
    }

    /// 16 shards of 16 MB of binary records.
    fn binary(&mut self) -> Result<()> {
        for i in 0..self.scaled(16.0) {
            self.buf.clear();
            binary_records(
                &mut self.rng,
                &mut self.buf,
                (16.0 * MB) as usize,
                i as u64 * 1_000_000,
            );
            self.w
                .file(&format!("records/shard{i:03}.dat"), &self.buf)?;
        }
        Ok(())
    }

    /// 8 files of 32 MB of random bytes.
    fn random(&mut self) -> Result<()> {
        for i in 0..self.scaled(8.0) {
            self.buf.clear();
            random_bytes(&mut self.rng, &mut self.buf, (32.0 * MB) as usize);
            self.w.file(&format!("blobs/random{i:02}.bin"), &self.buf)?;
        }
        Ok(())
    }

    /// 100,000 files of 10 KiB: text, source code and JSON.
    fn small(&mut self) -> Result<()> {
        for i in 0..self.scaled(100_000.0) {
            self.buf.clear();
            match i % 3 {
                0 => self.text.fill(&mut self.buf, 10 << 10),
                1 => source_code(&mut self.rng, &mut self.text, &mut self.buf, 10 << 10),
                _ => json_records(&mut self.rng, &mut self.text, &mut self.buf, 10 << 10),
            }
            let ext = ["txt", "c", "json"][i % 3];
            self.w
                .file(&format!("d{:04}/f{i:06}.{ext}", i / 100), &self.buf)?;
        }
        Ok(())
    }

    /// A repository: jars and tarballs (incompressible), Java sources, XML and Markdown.
    fn mixed(&mut self) -> Result<()> {
        for i in 0..self.scaled(40.0) {
            self.buf.clear();
            let len = 1_000_000 + self.rng.below(4_000_000) as usize;
            random_bytes(&mut self.rng, &mut self.buf, len);
            self.w
                .file(&format!("libs/lib{i:02}-1.{}.jar", i % 7), &self.buf)?;
        }
        for i in 0..self.scaled(20.0) {
            self.buf.clear();
            random_bytes(&mut self.rng, &mut self.buf, 4_000_000);
            self.w
                .file(&format!("dist/release-{i:02}.tar.gz"), &self.buf)?;
        }
        for i in 0..self.scaled(2000.0) {
            self.buf.clear();
            let len = 2_000 + self.rng.below(60_000) as usize;
            source_code(&mut self.rng, &mut self.text, &mut self.buf, len);
            self.w.file(
                &format!("src/module{:02}/File{i:04}.java", i / 100),
                &self.buf,
            )?;
        }
        for i in 0..self.scaled(1000.0) {
            self.buf.clear();
            let len = 5_000 + self.rng.below(45_000) as usize;
            xml(&mut self.rng, &mut self.text, &mut self.buf, len);
            self.w
                .file(&format!("modules/m{:03}/pom.xml", i), &self.buf)?;
        }
        for i in 0..self.scaled(500.0) {
            self.buf.clear();
            let len = 1_000 + self.rng.below(20_000) as usize;
            self.text.fill(&mut self.buf, len);
            self.w.file(&format!("docs/page{i:03}.md"), &self.buf)?;
        }
        Ok(())
    }

    /// One 2 GiB file of alternating text and binary blocks.
    fn big(&mut self) -> Result<()> {
        let path = self.w.root.join("big.dat");
        let f = fs::File::create(&path).map_err(|e| Error::io(&path, "create", e))?;
        let mut out = BufWriter::with_capacity(4 << 20, f);
        let blocks = self.scaled(2048.0);
        for i in 0..blocks {
            self.buf.clear();
            if i % 2 == 0 {
                self.text.fill(&mut self.buf, 1 << 20);
            } else {
                binary_records(&mut self.rng, &mut self.buf, 1 << 20, i as u64 * 40_000);
            }
            out.write_all(&self.buf)
                .map_err(|e| Error::io(&path, "write", e))?;
        }
        out.flush().map_err(|e| Error::io(&path, "write", e))?;
        self.w.stats = Stats {
            files: 1,
            bytes: (blocks as u64) << 20,
        };
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generators_are_deterministic_and_text_compresses_like_text() {
        let mut a = Vec::new();
        let mut b = Vec::new();
        TextGen::new(1, 2).fill(&mut a, 200_000);
        TextGen::new(1, 2).fill(&mut b, 200_000);
        assert_eq!(a, b);
        assert_eq!(a.len(), 200_000);
        let ratio = a.len() as f64 / zstd::bulk::compress(&a, 3).unwrap().len() as f64;
        assert!((2.0..6.0).contains(&ratio), "text ratio {ratio}");
        let mut r = Vec::new();
        random_bytes(&mut Rng::new(1, 1), &mut r, 100_000);
        assert!(zstd::bulk::compress(&r, 3).unwrap().len() > 99_000);
    }
}
