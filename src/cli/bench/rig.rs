//! The benchmark rig behind `znippy-uring bench`: generate (or take) a corpus, then
//! time pack, unpack, verify, list and cat of this tool, and with `compare` the same
//! jobs done by `tar | zstd -T0` and plain `tar`, alternating, several repetitions,
//! reporting medians and ratios.

use super::corpus::{self, Corpus};
use super::measure::{self, Run, median, quote, shell};
use serde::Serialize;
use std::fs;
use std::path::{Path, PathBuf};
use znippy_uring::Stage;
use znippy_uring::{Error, Result};

/// What to benchmark.
#[derive(Clone, Debug)]
pub struct BenchOptions {
    /// Scratch directory for corpora, archives and unpacked trees.
    pub scratch: PathBuf,
    /// Corpus size factor (1.0: the standard sizes).
    pub scale: f64,
    /// Seed of the corpus generators.
    pub seed: u64,
    /// Corpora to generate and run.
    pub corpora: Vec<Corpus>,
    /// A real tree to run instead of (or besides) generated corpora.
    pub dirs: Vec<PathBuf>,
    /// Repetitions of each job (medians are reported).
    pub reps: usize,
    /// Also run the peers.
    pub compare: bool,
    /// zstd level, for us and the peer.
    pub level: i32,
    /// Compressor threads for us (empty: all cores). With two or more counts, our pack
    /// is also timed at each ([`CorpusResult::scaling`]); other jobs use the last.
    pub threads: Vec<usize>,
    /// This tool's executable.
    pub exe: PathBuf,
    /// Drop the page cache before every timed job (root only), so reads come from disk.
    pub cold: bool,
    /// Where archives and unpacked trees go (default: under `scratch`); point it at
    /// another file system (tmpfs, say) to measure without that of the corpus.
    pub work: Option<PathBuf>,
}

/// Medians for one tool on one corpus.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ToolResult {
    /// `znippy-uring`, `tar+zstd` or `tar`.
    pub tool: String,
    /// Archive size in bytes.
    pub archive_bytes: u64,
    /// Input bytes / archive bytes.
    pub ratio: f64,
    /// Pack seconds (median).
    pub pack_s: f64,
    /// Pack throughput, input MB/s.
    pub pack_mb_s: f64,
    /// Pack throughput, files/s.
    pub pack_files_s: f64,
    /// Peak RSS while packing, MiB.
    pub pack_rss_mib: f64,
    /// Unpack seconds (median), if run.
    pub unpack_s: Option<f64>,
    /// Unpack throughput, output MB/s.
    pub unpack_mb_s: Option<f64>,
    /// Peak RSS while unpacking, MiB.
    pub unpack_rss_mib: Option<f64>,
    /// Verify (for tar+zstd: `zstd -t`) seconds.
    pub verify_s: Option<f64>,
    /// Verify throughput, MB/s of uncompressed data.
    pub verify_mb_s: Option<f64>,
    /// Listing milliseconds.
    pub list_ms: Option<f64>,
    /// Milliseconds to write one file (the middle one) to stdout.
    pub cat_ms: Option<f64>,
    /// Every pack time measured, seconds.
    pub pack_runs: Vec<f64>,
    /// Every unpack time measured, seconds.
    pub unpack_runs: Vec<f64>,
    /// Where our pack's time went (last repetition; empty for peers).
    pub pack_stages: Vec<Stage>,
    /// Where our unpack's time went (last repetition; empty for peers).
    pub unpack_stages: Vec<Stage>,
}

/// Our pack at one thread count, from a `--threads` list.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Scaling {
    /// Threads asked for.
    pub threads: usize,
    /// Compressors that ran (fewer when the memory budget is short).
    pub compressors: usize,
    /// Pack seconds (median).
    pub pack_s: f64,
    /// Pack seconds at the first count / at this one.
    pub speedup: f64,
    /// Speed-up over the ratio of thread counts (1.0: linear).
    pub efficiency: f64,
    /// Peak RSS, MiB.
    pub rss_mib: f64,
    /// Stages of the last run: utilization, work and waits.
    pub stages: Vec<Stage>,
}

/// One corpus's results.
#[derive(Clone, Debug, Default, Serialize)]
pub struct CorpusResult {
    /// Corpus name (or directory).
    pub corpus: String,
    /// Regular files in it.
    pub files: u64,
    /// Bytes in them.
    pub bytes: u64,
    /// The file `cat` wrote.
    pub cat_path: String,
    /// One result per tool.
    pub tools: Vec<ToolResult>,
    /// Peer pack seconds / our pack seconds (tar+zstd), when compared.
    pub pack_speedup: Option<f64>,
    /// Peer unpack seconds / our unpack seconds (tar+zstd).
    pub unpack_speedup: Option<f64>,
    /// Our archive size / the tar.zst size.
    pub size_ratio: Option<f64>,
    /// Our pack MB/s / plain `tar -cf` MB/s.
    pub pack_vs_tar: Option<f64>,
    /// Our pack at each count of a `--threads` list (empty without one).
    pub scaling: Vec<Scaling>,
}

/// The whole report.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Report {
    /// Machine description (cores, kernel).
    pub machine: String,
    /// zstd level used.
    pub level: i32,
    /// Repetitions per job.
    pub reps: usize,
    /// Whether the page cache was dropped before each job.
    pub cold: bool,
    /// Peers that were asked for but are not installed.
    pub missing_peers: Vec<String>,
    /// Per-corpus results.
    pub corpora: Vec<CorpusResult>,
}

/// Writes back dirty pages and empties the page cache (needs root).
fn drop_caches() -> Result<()> {
    // SAFETY: sync(2) takes no arguments and cannot fail.
    unsafe { libc::sync() };
    fs::write("/proc/sys/vm/drop_caches", b"3").map_err(|e| {
        Error::Invalid(format!(
            "--cold needs root to write /proc/sys/vm/drop_caches: {e}"
        ))
    })
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let kernel = fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!("{cores} cores, Linux {}", kernel.trim())
}

fn count_tree(dir: &Path) -> Result<corpus::Stats> {
    let mut stats = corpus::Stats::default();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).map_err(|e| Error::io(&d, "read directory", e))? {
            let e = e.map_err(|e| Error::io(&d, "read directory", e))?;
            let ft = e
                .file_type()
                .map_err(|err| Error::io(e.path(), "stat", err))?;
            if ft.is_dir() {
                stack.push(e.path());
            } else if ft.is_file() {
                stats.files += 1;
                stats.bytes += e
                    .metadata()
                    .map_err(|err| Error::io(e.path(), "stat", err))?
                    .len();
            }
        }
    }
    Ok(stats)
}

fn remove(p: &Path) -> Result<()> {
    match fs::symlink_metadata(p) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(p).map_err(|e| Error::io(p, "remove", e)),
        Ok(_) => fs::remove_file(p).map_err(|e| Error::io(p, "remove", e)),
        Err(_) => Ok(()),
    }
}

/// The jobs of one tool: shell scripts for pack, unpack, verify, list and cat.
struct Jobs {
    tool: &'static str,
    archive: PathBuf,
    pack: String,
    unpack: Option<String>,
    verify: Option<String>,
    list: Option<String>,
    /// The command that reads one file out, given the file's path (chosen after the
    /// first pack).
    cat: Option<CatCommand>,
}

/// Makes the command that reads the file at a path out of an archive.
type CatCommand = Box<dyn Fn(&str) -> String>;

impl Jobs {
    /// Timed jobs of this tool in one repetition.
    fn per_repetition(&self) -> u64 {
        1 + [&self.unpack, &self.verify, &self.list]
            .iter()
            .filter(|c| c.is_some())
            .count() as u64
            + u64::from(self.cat.is_some())
    }
}

/// What [`run`] tells its caller as it goes.
#[derive(Clone, Copy, Debug)]
pub enum Step<'a> {
    /// Something worth a line: a corpus being generated, a peer tool missing.
    Note(&'a str),
    /// How many timed jobs the run does in all (said once the corpora are ready).
    Total(u64),
    /// A timed job starts, e.g. `small: unpack tar+zstd (2/3)`.
    Job(&'a str),
}

/// Runs the benchmark and returns the report; `progress` hears of every step.
pub fn run(opts: &BenchOptions, mut progress: impl FnMut(Step)) -> Result<Report> {
    fs::create_dir_all(&opts.scratch).map_err(|e| Error::io(&opts.scratch, "mkdir", e))?;
    let mut report = Report {
        machine: machine(),
        level: opts.level,
        reps: opts.reps.max(1),
        cold: opts.cold,
        ..Report::default()
    };
    if opts.cold {
        drop_caches()?;
    }
    let peers_ok = opts.compare && {
        report.missing_peers = missing_peers(&mut progress);
        report.missing_peers.is_empty()
    };
    let targets = targets(opts, &mut progress)?;
    let sweep_jobs = if opts.threads.len() > 1 {
        opts.threads.len() as u64
    } else {
        0
    };
    let per_repetition: u64 = plan(opts, Path::new(""), Path::new(""), peers_ok)
        .iter()
        .map(Jobs::per_repetition)
        .sum::<u64>()
        + sweep_jobs;
    progress(Step::Total(
        targets.len() as u64 * report.reps as u64 * per_repetition,
    ));
    for (name, dir) in targets {
        report
            .corpora
            .push(run_corpus(opts, &name, &dir, peers_ok, &mut progress)?);
    }
    Ok(report)
}

/// The trees to run on: each corpus (generated unless a complete one is there), then
/// each `--dir`.
fn targets(opts: &BenchOptions, progress: &mut impl FnMut(Step)) -> Result<Vec<(String, PathBuf)>> {
    let mut targets: Vec<(String, PathBuf)> = Vec::new();
    for &c in &opts.corpora {
        let dir = opts.scratch.join(format!(
            "corpus-{}-s{}-seed{}",
            c.name(),
            opts.scale,
            opts.seed
        ));
        let marker = dir.join(".znippy-bench-complete");
        if !marker.exists() {
            progress(Step::Note(&format!(
                "generating corpus {} (scale {})",
                c.name(),
                opts.scale
            )));
            corpus::generate(c, &dir, opts.scale, opts.seed)?;
            fs::write(&marker, b"").map_err(|e| Error::io(&marker, "write", e))?;
        }
        targets.push((c.name().to_string(), dir));
    }
    for d in &opts.dirs {
        targets.push((d.display().to_string(), d.clone()));
    }
    Ok(targets)
}

/// The peer tools that are not installed, each said as a note.
fn missing_peers(progress: &mut impl FnMut(Step)) -> Vec<String> {
    let missing: Vec<String> = ["tar", "zstd"]
        .into_iter()
        .filter(|t| !measure::have(t))
        .map(String::from)
        .collect();
    for m in &missing {
        let note = format!("peer tool {m} is not installed: comparison skipped");
        progress(Step::Note(&note));
    }
    missing
}

/// The timings of every job of a corpus, by tool (in the order of [`plan`]).
struct Timings {
    packs: Vec<Vec<Run>>,
    unpacks: Vec<Vec<Run>>,
    /// verify, list and cat seconds.
    others: Vec<[Vec<f64>; 3]>,
    /// The file the cat jobs read.
    cat_path: String,
}

fn run_corpus(
    opts: &BenchOptions,
    name: &str,
    dir: &Path,
    peers: bool,
    progress: &mut impl FnMut(Step),
) -> Result<CorpusResult> {
    let mut stats = count_tree(dir)?;
    stats.files = stats
        .files
        .saturating_sub(u64::from(dir.join(".znippy-bench-complete").exists()));
    let work = opts
        .work
        .clone()
        .unwrap_or_else(|| opts.scratch.clone())
        .join("znippy-bench-work");
    remove(&work)?;
    fs::create_dir_all(&work).map_err(|e| Error::io(&work, "mkdir", e))?;
    let jobs = plan(opts, dir, &work, peers);
    let t = time_jobs(opts, name, &jobs, &work, progress)?;
    let mut result = CorpusResult {
        corpus: name.to_string(),
        files: stats.files,
        bytes: stats.bytes,
        ..CorpusResult::default()
    };
    for (j, job) in jobs.iter().enumerate() {
        result.tools.push(tool_result(job, &stats, &t, j, &work));
    }
    result.cat_path = t.cat_path;
    if let [us, tz, tar, ..] = result.tools.as_slice() {
        result.pack_speedup = Some(tz.pack_s / us.pack_s.max(1e-9));
        result.unpack_speedup = match (tz.unpack_s, us.unpack_s) {
            (Some(a), Some(b)) => Some(a / b.max(1e-9)),
            _ => None,
        };
        result.size_ratio = Some(us.archive_bytes as f64 / tz.archive_bytes.max(1) as f64);
        result.pack_vs_tar = Some(us.pack_mb_s / tar.pack_mb_s.max(1e-9));
    }
    if opts.threads.len() > 1 {
        result.scaling = sweep(opts, name, dir, &work, progress)?;
    }
    remove(&work)?;
    Ok(result)
}

/// Runs every job of every tool `opts.reps` times: all packs, then all unpacks, then
/// verify, list and cat, the tools in alternating order from one repetition to the
/// next so that neither always runs on a cache the other warmed.
fn time_jobs(
    opts: &BenchOptions,
    name: &str,
    jobs: &[Jobs],
    work: &Path,
    progress: &mut impl FnMut(Step),
) -> Result<Timings> {
    let (log, ours, out) = (
        work.join("stderr.log"),
        work.join("a.znippy"),
        work.join("out"),
    );
    let reps = opts.reps.max(1);
    let mut t = Timings {
        packs: vec![Vec::new(); jobs.len()],
        unpacks: vec![Vec::new(); jobs.len()],
        others: vec![Default::default(); jobs.len()],
        cat_path: String::new(),
    };
    let mut cats: Vec<Option<String>> = Vec::new();
    for rep in 0..reps {
        let mut job = |what: &str, tool: &str| {
            let step = format!("{name}: {what} {tool} ({}/{reps})", rep + 1);
            progress(Step::Job(&step));
        };
        let order: Vec<usize> = if rep % 2 == 0 {
            (0..jobs.len()).collect()
        } else {
            (0..jobs.len()).rev().collect()
        };
        for &j in &order {
            remove(&jobs[j].archive)?;
            job("pack", jobs[j].tool);
            t.packs[j].push(timed(opts, &jobs[j].pack, &log)?);
        }
        if rep == 0 {
            t.cat_path = pick_cat_path(&ours)?;
            let cat = |j: &Jobs| j.cat.as_ref().map(|cat| cat(&t.cat_path));
            cats = jobs.iter().map(cat).collect();
        }
        for &j in &order {
            if let Some(cmd) = &jobs[j].unpack {
                remove(&out)?;
                fs::create_dir_all(&out).map_err(|e| Error::io(&out, "mkdir", e))?;
                job("unpack", jobs[j].tool);
                t.unpacks[j].push(timed(opts, cmd, &log)?);
            }
        }
        remove(&out)?;
        for &j in &order {
            let commands = [&jobs[j].verify, &jobs[j].list, &cats[j]];
            for (k, (cmd, what)) in commands
                .into_iter()
                .zip(["verify", "list", "cat"])
                .enumerate()
            {
                if let Some(cmd) = cmd {
                    job(what, jobs[j].tool);
                    t.others[j][k].push(timed(opts, cmd, &log)?.secs);
                }
            }
        }
    }
    Ok(t)
}

/// Medians and peaks of tool `j`'s jobs on a corpus of `stats`.
fn tool_result(
    job: &Jobs,
    stats: &corpus::Stats,
    t: &Timings,
    j: usize,
    work: &Path,
) -> ToolResult {
    let mb = stats.bytes as f64 / 1e6;
    let size = fs::metadata(&job.archive).map(|m| m.len()).unwrap_or(0);
    let (packs, unpacks, others) = (&t.packs[j], &t.unpacks[j], &t.others[j]);
    let pack_runs: Vec<f64> = packs.iter().map(|r| r.secs).collect();
    let unpack_runs: Vec<f64> = unpacks.iter().map(|r| r.secs).collect();
    let pack_s = median(&pack_runs);
    let some = |v: &[f64]| (!v.is_empty()).then(|| median(v));
    let peak = |runs: &[Run]| runs.iter().map(|r| mib(r.max_rss_kib)).fold(0.0, f64::max);
    let verify_s = some(&others[0]);
    let unpack_s = some(&unpack_runs);
    ToolResult {
        tool: job.tool.to_string(),
        archive_bytes: size,
        ratio: stats.bytes as f64 / size.max(1) as f64,
        pack_s,
        pack_mb_s: mb / pack_s.max(1e-9),
        pack_files_s: stats.files as f64 / pack_s.max(1e-9),
        pack_rss_mib: peak(packs),
        unpack_s,
        unpack_mb_s: unpack_s.map(|s| mb / s.max(1e-9)),
        unpack_rss_mib: (!unpacks.is_empty()).then(|| peak(unpacks)),
        verify_s,
        verify_mb_s: verify_s.map(|s| mb / s.max(1e-9)),
        list_ms: some(&others[1]).map(|s| s * 1000.0),
        cat_ms: some(&others[2]).map(|s| s * 1000.0),
        pack_runs,
        unpack_runs,
        pack_stages: ours_only(job, &work.join(PACK_JSON)),
        unpack_stages: ours_only(job, &work.join(UNPACK_JSON)),
    }
}

/// Our stages, from the report our job left at `path`; none for a peer.
fn ours_only(job: &Jobs, path: &Path) -> Vec<Stage> {
    if job.tool == "znippy-uring" {
        stages_of(path)
    } else {
        Vec::new()
    }
}

/// Times our pack of `dir` at each count of the `--threads` list, the counts in
/// alternating order from one repetition to the next.
fn sweep(
    opts: &BenchOptions,
    name: &str,
    dir: &Path,
    work: &Path,
    progress: &mut impl FnMut(Step),
) -> Result<Vec<Scaling>> {
    let (archive, json, log) = (
        work.join("sweep.znippy"),
        work.join("sweep.json"),
        work.join("stderr.log"),
    );
    let reps = opts.reps.max(1);
    let counts = &opts.threads;
    let mut runs: Vec<Vec<Run>> = vec![Vec::new(); counts.len()];
    let mut stages: Vec<Vec<Stage>> = vec![Vec::new(); counts.len()];
    for rep in 0..reps {
        let order: Vec<usize> = if rep % 2 == 0 {
            (0..counts.len()).collect()
        } else {
            (0..counts.len()).rev().collect()
        };
        for i in order {
            let t = counts[i];
            progress(Step::Job(&format!(
                "{name}: pack --threads {t} ({}/{reps})",
                rep + 1
            )));
            remove(&archive)?;
            let script = format!(
                "{} pack {} -o {} --level {} --threads {t} --json > {}",
                quote(&opts.exe),
                quote(dir),
                quote(&archive),
                opts.level,
                quote(&json)
            );
            runs[i].push(timed(opts, &script, &log)?);
            stages[i] = stages_of(&json);
        }
    }
    remove(&archive)?;
    let secs: Vec<f64> = runs
        .iter()
        .map(|r| median(&r.iter().map(|r| r.secs).collect::<Vec<_>>()))
        .collect();
    let (t0, s0) = (counts[0].max(1) as f64, secs[0]);
    Ok(counts
        .iter()
        .zip(secs)
        .zip(runs.iter().zip(stages))
        .map(|((&t, pack_s), (runs, stages))| {
            let speedup = s0 / pack_s.max(1e-9);
            Scaling {
                threads: t,
                compressors: stages
                    .iter()
                    .find(|s| s.stage == "compress")
                    .map_or(0, |s| s.threads),
                pack_s,
                speedup,
                efficiency: speedup / (t.max(1) as f64 / t0),
                rss_mib: runs.iter().map(|r| mib(r.max_rss_kib)).fold(0.0, f64::max),
                stages,
            }
        })
        .collect())
}

/// The jobs of each tool on corpus `dir`, with archives and unpacked trees in `work`:
/// this tool's, then with `peers` those of `tar | zstd` and plain `tar`.
fn plan(opts: &BenchOptions, dir: &Path, work: &Path, peers: bool) -> Vec<Jobs> {
    let exe = quote(&opts.exe);
    let (d, l) = (quote(dir), opts.level);
    let threads = opts
        .threads
        .last()
        .map(|t| format!(" --threads {t}"))
        .unwrap_or_default();
    let ours = work.join("a.znippy");
    let out = work.join("out");
    let mut jobs = vec![Jobs {
        tool: "znippy-uring",
        archive: ours.clone(),
        pack: format!(
            "{exe} pack {d} -o {} --level {l}{threads} --json > {}",
            quote(&ours),
            quote(&work.join(PACK_JSON))
        ),
        unpack: Some(format!(
            "{exe} unpack {} -C {}{threads} --json > {}",
            quote(&ours),
            quote(&out),
            quote(&work.join(UNPACK_JSON))
        )),
        verify: Some(format!("{exe} verify {}", quote(&ours))),
        list: Some(format!("{exe} list {}", quote(&ours))),
        cat: Some(Box::new({
            let (exe, ours) = (exe.clone(), quote(&ours));
            move |path| format!("{exe} cat {ours} {}", quote(Path::new(path)))
        })),
    }];
    if peers {
        let tz = work.join("a.tar.zst");
        jobs.push(Jobs {
            tool: "tar+zstd",
            archive: tz.clone(),
            pack: format!("tar -cf - -C {d} . | zstd -T0 -{l} -q -f -o {}", quote(&tz)),
            unpack: Some(format!(
                "zstd -dcq {} | tar -xf - -C {}",
                quote(&tz),
                quote(&out)
            )),
            verify: Some(format!("zstd -tq {}", quote(&tz))),
            list: Some(format!("zstd -dcq {} | tar -tf -", quote(&tz))),
            cat: Some(Box::new({
                let tz = quote(&tz);
                move |path| {
                    let member = quote(Path::new(&format!("./{path}")));
                    format!("zstd -dcq {tz} | tar -xOf - {member}")
                }
            })),
        });
        let t = work.join("a.tar");
        jobs.push(Jobs {
            tool: "tar",
            archive: t.clone(),
            pack: format!("tar -cf {} -C {d} .", quote(&t)),
            unpack: None,
            verify: None,
            list: None,
            cat: None,
        });
    }
    jobs
}

/// Where our pack and unpack jobs leave their `--json` reports, in the work directory.
const PACK_JSON: &str = "pack.json";
const UNPACK_JSON: &str = "unpack.json";

/// The `stages` of a `--json` report left at `path` (none if it cannot be read).
fn stages_of(path: &Path) -> Vec<Stage> {
    #[derive(serde::Deserialize)]
    struct Reported {
        #[serde(default)]
        stages: Vec<Stage>,
    }
    fs::read(path)
        .ok()
        .and_then(|b| serde_json::from_slice::<Reported>(&b).ok())
        .map(|r| r.stages)
        .unwrap_or_default()
}

/// Runs one job, after emptying the page cache in cold mode.
fn timed(opts: &BenchOptions, script: &str, log: &Path) -> Result<Run> {
    if opts.cold {
        drop_caches()?;
    }
    shell(&opts.exe, script, log)
}

/// The path of the middle regular file of the archive, for `cat`.
fn pick_cat_path(archive: &Path) -> Result<String> {
    let a = znippy_uring::Archive::open(archive)?;
    let files: Vec<&znippy_uring::Entry> = a
        .entries()
        .iter()
        .filter(|e| e.kind == znippy_uring::EntryKind::File && std::str::from_utf8(&e.path).is_ok())
        .collect();
    Ok(files
        .get(files.len() / 2)
        .map(|e| e.display_path())
        .unwrap_or_default())
}
