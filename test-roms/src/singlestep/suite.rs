//! Running whole files and directories: input discovery, metadata and
//! revocation lookup, the skip and adjustment decisions, threads, per-file
//! reports and the scoreboard.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};

use super::metadata::{find_beside, find_nearest};
use super::runner::{Failure, Machine};
use super::{
    adjustments, differences, display_name, insn, AdjustedMasks, Adjustment, Arch, Difference, Error, Format, Metadata,
    OpcodeKey, Reg, RevocationList, TestCase, TestFile, NUM_REGS,
};

/// How to run a suite.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// Only tests whose name contains this.
    pub filter: Option<String>,
    /// At most this many tests per file (after the filter).
    pub limit: Option<usize>,
    /// Worker threads (each with its own guest memory).
    pub jobs: usize,
    /// `metadata.json` or `80386.csv` to use instead of looking beside the
    /// files.
    pub metadata: Option<PathBuf>,
    /// `revocation_list.txt` to use instead of looking beside the files.
    pub revocations: Option<PathBuf>,
    /// Applied to each worker's fresh CPU (e.g. to install the JIT); the
    /// tests then run through `Cpu::run` instead of single steps.
    pub cpu_setup: Option<fn(&mut ferrite_core::Cpu)>,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions { filter: None, limit: None, jobs: 2, metadata: None, revocations: None, cpu_setup: None }
    }
}

/// Why a test was not run.
#[derive(Clone, Copy, Debug)]
pub enum SkipReason {
    /// Listed in the suite's revocation list.
    Revoked,
    /// A documented 286- or 386-versus-P6 difference.
    Difference(&'static Difference),
}

impl SkipReason {
    pub fn name(&self) -> &'static str {
        match self {
            SkipReason::Revoked => "revoked",
            SkipReason::Difference(d) => d.name,
        }
    }

    pub fn reason(&self) -> &'static str {
        match self {
            SkipReason::Revoked => "listed in the suite's revocation_list.txt as a bad capture",
            SkipReason::Difference(d) => d.reason,
        }
    }
}

/// What happened to one test.
#[derive(Clone, Debug)]
pub enum Outcome {
    Passed,
    Failed(Failure),
    Skipped(SkipReason),
}

/// A failed or skipped test (passes are only counted).
#[derive(Clone, Debug)]
pub struct TestReport {
    pub idx: u32,
    pub name: String,
    pub bytes: Vec<u8>,
    pub hash: String,
    /// Interrupt the suite says the instruction raised.
    pub exception: Option<u8>,
    pub outcome: Outcome,
}

impl TestReport {
    pub fn hash_prefix(&self) -> &str {
        self.hash.get(..8).unwrap_or(&self.hash)
    }
}

/// The result of one file.
#[derive(Clone, Debug)]
pub struct FileReport {
    pub path: PathBuf,
    pub name: String,
    /// The CPU the file's tests were captured on.
    pub arch: Arch,
    pub opcode: Option<OpcodeKey>,
    pub mnemonic: Option<String>,
    pub passed: usize,
    pub failed: usize,
    pub skipped: usize,
    /// Of the passed and failed tests, those checked against an
    /// [`Adjustment`]'s P6 outcome instead of the 286's or 386's.
    pub adjusted: usize,
    /// Adjusted tests by adjustment name: (reason, count).
    pub adjustments: BTreeMap<&'static str, (&'static str, usize)>,
    /// Failed and skipped tests, in file order.
    pub tests: Vec<TestReport>,
    /// The adjustment each failed adjusted test was checked against, by
    /// position in `tests` (see [`FileReport::adjustment_of`]).
    pub adjusted_failures: BTreeMap<usize, &'static Adjustment>,
}

impl FileReport {
    pub fn failures(&self) -> impl Iterator<Item = (&TestReport, &Failure)> {
        self.tests.iter().filter_map(|t| match &t.outcome {
            Outcome::Failed(f) => Some((t, f)),
            _ => None,
        })
    }

    /// The adjustment a failed test of this report was checked against,
    /// when it was adjusted.
    pub fn adjustment_of(&self, test: &TestReport) -> Option<&'static Adjustment> {
        let at = self.tests.iter().position(|t| std::ptr::eq(t, test))?;
        self.adjusted_failures.get(&at).copied()
    }
}

/// Counts of one file, for the summary and the scoreboard.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileSummary {
    pub name: String,
    /// The CPU the file's tests were captured on (`None` when the file
    /// could not be read).
    pub arch: Option<Arch>,
    pub mnemonic: Option<String>,
    pub passed: usize,
    pub failed: usize,
    pub skipped: usize,
    /// Of the passed and failed tests, those checked against an adjustment.
    pub adjusted: usize,
    /// Set when the file could not be read.
    pub error: Option<String>,
}

/// Totals of a run.
#[derive(Clone, Debug, Default)]
pub struct SuiteSummary {
    pub files: Vec<FileSummary>,
    pub passed: usize,
    pub failed: usize,
    pub skipped: usize,
    /// Of the passed and failed tests, those checked against an
    /// adjustment's P6 outcome instead of the 286's.
    pub adjusted: usize,
    /// Skips by reason name: (reason, count).
    pub skips: BTreeMap<&'static str, (&'static str, usize)>,
    /// Adjusted tests by adjustment name: (reason, count).
    pub adjustments: BTreeMap<&'static str, (&'static str, usize)>,
}

impl SuiteSummary {
    /// Files that could not be read.
    pub fn file_errors(&self) -> usize {
        self.files.iter().filter(|f| f.error.is_some()).count()
    }

    /// What adjusted tests replace: "the 286 result", "the 386 result" or
    /// "the 286 and 386 results", by the files run (the 286's when none was
    /// read).
    pub fn recorded_result(&self) -> &'static str {
        let has = |arch| self.files.iter().any(|f| f.arch == Some(arch));
        match (has(Arch::I286), has(Arch::I386)) {
            (true, true) => "the 286 and 386 results",
            (false, true) => "the 386 result",
            _ => "the 286 result",
        }
    }

    /// Tests counted (passed, failed or skipped).
    pub fn total(&self) -> usize {
        self.passed + self.failed + self.skipped
    }

    /// `N passed, N failed` plus `, N skipped` when any were skipped.
    pub fn final_line(&self) -> String {
        let mut line = format!("{} passed, {} failed", self.passed, self.failed);
        if self.skipped > 0 {
            let _ = write!(line, ", {} skipped", self.skipped);
        }
        line
    }

    /// The closing summary of a run: the skipped tests by reason, the
    /// adjusted tests by adjustment (each block only when not empty), and
    /// [`final_line`](Self::final_line).
    pub fn summary_text(&self) -> String {
        let mut out = String::new();
        let adjusted = format!("checked against the P6 rule instead of {}:", self.recorded_result());
        let blocks = [("skipped:", &self.skips), (adjusted.as_str(), &self.adjustments)];
        for (title, entries) in blocks {
            if !entries.is_empty() {
                let _ = writeln!(out, "{title}");
                for (name, (reason, count)) in entries {
                    let _ = writeln!(out, "  {count:>6} {name}: {reason}");
                }
            }
        }
        let _ = writeln!(out, "{}", self.final_line());
        out
    }

    /// The per-file scoreboard: a header with the totals and the adjusted
    /// tests, then one line per file (`name passed failed skipped
    /// adjusted`, adjusted counting tests already counted as passed or
    /// failed) sorted by name. Deterministic, so a checked-in copy diffs
    /// well in review.
    pub fn scoreboard(&self) -> String {
        let mut files: Vec<&FileSummary> = self.files.iter().collect();
        files.sort_by(|a, b| a.name.cmp(&b.name));
        let mut out = format!(
            "# total: {} files, {} tests: {}{}\n",
            files.len(),
            self.total(),
            self.final_line(),
            match self.file_errors() {
                0 => String::new(),
                n => format!(", {n} files unreadable"),
            }
        );
        let by_adjustment: Vec<String> = self.adjustments.iter().map(|(name, (_, n))| format!("{n} {name}")).collect();
        let _ = writeln!(
            out,
            "# checked against the P6 rule instead of {} (among passed and failed): {}{}",
            self.recorded_result(),
            self.adjusted,
            if by_adjustment.is_empty() { String::new() } else { format!(" ({})", by_adjustment.join(", ")) }
        );
        let _ = writeln!(out, "# columns: file passed failed skipped adjusted");
        let width = files.iter().map(|f| f.name.len()).max().unwrap_or(0);
        for f in files {
            match &f.error {
                None => {
                    let _ = writeln!(
                        out,
                        "{:width$} {:>5} {:>5} {:>5} {:>5}",
                        f.name, f.passed, f.failed, f.skipped, f.adjusted
                    );
                }
                Some(_) => {
                    let _ = writeln!(out, "{:width$} unreadable", f.name);
                }
            }
        }
        out
    }

    fn add(&mut self, result: &Result<FileReport, Error>, path: &Path) {
        match result {
            Ok(r) => {
                self.passed += r.passed;
                self.failed += r.failed;
                self.skipped += r.skipped;
                self.adjusted += r.adjusted;
                for t in &r.tests {
                    if let Outcome::Skipped(s) = t.outcome {
                        self.skips.entry(s.name()).or_insert((s.reason(), 0)).1 += 1;
                    }
                }
                for (name, (reason, n)) in &r.adjustments {
                    self.adjustments.entry(name).or_insert((reason, 0)).1 += n;
                }
                self.files.push(FileSummary {
                    name: r.name.clone(),
                    arch: Some(r.arch),
                    mnemonic: r.mnemonic.clone(),
                    passed: r.passed,
                    failed: r.failed,
                    skipped: r.skipped,
                    adjusted: r.adjusted,
                    error: None,
                });
            }
            Err(e) => self.files.push(FileSummary {
                name: display_name(path),
                arch: None,
                mnemonic: None,
                passed: 0,
                failed: 0,
                skipped: 0,
                adjusted: 0,
                error: Some(e.full_message()),
            }),
        }
    }
}

/// Expand the command line's paths: files are taken as given (any name),
/// directories contribute the test files inside them, recursively, sorted
/// by path.
pub fn collect_inputs(paths: &[PathBuf]) -> Result<Vec<PathBuf>, Error> {
    let mut out = Vec::new();
    for p in paths {
        let meta = std::fs::metadata(p).map_err(|source| Error::Io { path: p.clone(), source })?;
        if meta.is_dir() {
            let before = out.len();
            walk(p, &mut out)?;
            out[before..].sort();
            if out.len() == before {
                return Err(Error::NoTests { path: p.clone() });
            }
        } else {
            out.push(p.clone());
        }
    }
    Ok(out)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), Error> {
    let io = |source| Error::Io { path: dir.to_path_buf(), source };
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let path = entry.map_err(io)?.path();
        if path.is_dir() {
            walk(&path, out)?;
        } else if Format::from_path(&path).is_some() {
            out.push(path);
        }
    }
    Ok(())
}

/// Progress and results as a suite runs.
#[derive(Debug)]
pub enum SuiteEvent<'a> {
    /// A file finished (in completion order): for progress display.
    Progress { done: usize, total: usize, path: &'a Path },
    /// A file's result, delivered in input order.
    File { path: &'a Path, result: &'a Result<FileReport, Error> },
    /// No `metadata.json` or `80386.csv` for the files in this directory:
    /// all FLAGS bits are compared (reported once per directory).
    NoMetadata { dir: &'a Path },
}

/// What one file needs besides its path.
struct Job {
    path: PathBuf,
    metadata: Option<Arc<Metadata>>,
    revoked: Option<Arc<RevocationList>>,
}

/// Run the given test files (see [`collect_inputs`]) on `opts.jobs`
/// threads. `on_event` sees progress and each file's result in input order,
/// on the calling thread. Unreadable test files are reported as file
/// results; an unreadable metadata or revocation file fails the whole run
/// before any test runs.
pub fn run_suite(
    files: &[PathBuf],
    opts: &RunOptions,
    mut on_event: impl FnMut(SuiteEvent),
) -> Result<SuiteSummary, Error> {
    let jobs = prepare(files, opts, &mut on_event)?;
    let workers = opts.jobs.clamp(1, jobs.len().max(1));
    let machines = (0..workers).map(|_| Machine::with_setup(opts.cpu_setup)).collect::<Result<Vec<_>, _>>()?;

    let next = AtomicUsize::new(0);
    let mut summary = SuiteSummary::default();
    std::thread::scope(|scope| {
        let (tx, rx) = mpsc::channel();
        for mut machine in machines {
            let tx = tx.clone();
            let (jobs, next) = (&jobs, &next);
            scope.spawn(move || loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(job) = jobs.get(i) else { break };
                let result = run_file(&mut machine, job, opts);
                if tx.send((i, result)).is_err() {
                    break;
                }
            });
        }
        drop(tx);

        let mut pending = BTreeMap::new();
        let mut next_out = 0;
        for (done, (i, result)) in rx.into_iter().enumerate() {
            on_event(SuiteEvent::Progress { done: done + 1, total: jobs.len(), path: &jobs[i].path });
            pending.insert(i, result);
            while let Some(result) = pending.remove(&next_out) {
                let path = &jobs[next_out].path;
                on_event(SuiteEvent::File { path, result: &result });
                summary.add(&result, path);
                next_out += 1;
            }
        }
    });
    Ok(summary)
}

/// The names of the suites' opcode tables, looked for beside a test file,
/// then in its parent directory (the nearest wins; in one directory, in
/// this order): the 286 suite's `metadata.json`, the 386 suite's
/// `80386.csv`.
pub const METADATA_NAMES: [&str; 2] = ["metadata.json", "80386.csv"];

/// Find and load each file's metadata and revocation list (each distinct
/// file once).
fn prepare(files: &[PathBuf], opts: &RunOptions, on_event: &mut impl FnMut(SuiteEvent)) -> Result<Vec<Job>, Error> {
    let mut metadata: HashMap<PathBuf, Arc<Metadata>> = HashMap::new();
    let mut revocations: HashMap<PathBuf, Arc<RevocationList>> = HashMap::new();
    let mut warned: HashSet<PathBuf> = HashSet::new();
    let mut jobs = Vec::with_capacity(files.len());
    for path in files {
        let meta_path = opts.metadata.clone().or_else(|| find_nearest(path, &METADATA_NAMES));
        let meta = match meta_path {
            Some(p) => Some(match metadata.get(&p) {
                Some(m) => m.clone(),
                None => {
                    let m = Arc::new(Metadata::load(&p)?);
                    metadata.insert(p, m.clone());
                    m
                }
            }),
            None => {
                let dir = path.parent().unwrap_or(Path::new(".")).to_path_buf();
                if warned.insert(dir.clone()) {
                    on_event(SuiteEvent::NoMetadata { dir: &dir });
                }
                None
            }
        };
        let rev_path = opts.revocations.clone().or_else(|| find_beside(path, "revocation_list.txt"));
        let revoked = match rev_path {
            Some(p) => Some(match revocations.get(&p) {
                Some(r) => r.clone(),
                None => {
                    let r = Arc::new(RevocationList::load(&p)?);
                    revocations.insert(p, r.clone());
                    r
                }
            }),
            None => None,
        };
        jobs.push(Job { path: path.clone(), metadata: meta, revoked });
    }
    Ok(jobs)
}

/// Run one file's tests.
fn run_file(machine: &mut Machine, job: &Job, opts: &RunOptions) -> Result<FileReport, Error> {
    let file = TestFile::load(&job.path)?;
    let mut report = FileReport {
        path: job.path.clone(),
        name: file.display_name(),
        arch: file.arch,
        opcode: file.opcode.clone(),
        mnemonic: file.mnemonic.clone(),
        passed: 0,
        failed: 0,
        skipped: 0,
        adjusted: 0,
        adjustments: BTreeMap::new(),
        tests: Vec::new(),
        adjusted_failures: BTreeMap::new(),
    };
    let selected = file
        .tests
        .iter()
        .filter(|t| opts.filter.as_ref().is_none_or(|f| t.name.contains(f.as_str())))
        .take(opts.limit.unwrap_or(usize::MAX));
    for test in selected {
        let derived;
        let key = match &file.opcode {
            Some(k) => Some(k),
            None => {
                derived = OpcodeKey::from_bytes(&test.bytes);
                derived.as_ref()
            }
        };
        // An adjustment that selects the test and can rewrite it comes
        // first; a test it cannot rewrite is skipped under its difference.
        let mut adjusted = None;
        let outcome = if job.revoked.as_ref().is_some_and(|r| r.contains(&test.hash)) {
            Outcome::Skipped(SkipReason::Revoked)
        } else if let Some((a, p6_test)) = key.and_then(|k| adjustments::apply(test, k)) {
            adjusted = Some(a);
            let masks = match a.masks {
                AdjustedMasks::Suite => masks_for(&file, &p6_test, job.metadata.as_deref(), key),
                AdjustedMasks::AllBits => [u32::MAX; NUM_REGS],
            };
            match machine.run(&p6_test, &masks) {
                Ok(()) => Outcome::Passed,
                Err(f) => Outcome::Failed(f),
            }
        } else if let Some(d) = key.and_then(|k| differences::find(test, k)) {
            Outcome::Skipped(SkipReason::Difference(d))
        } else {
            let masks = masks_for(&file, test, job.metadata.as_deref(), key);
            match machine.run(test, &masks) {
                Ok(()) => Outcome::Passed,
                Err(f) => Outcome::Failed(f),
            }
        };
        if let Some(a) = adjusted {
            report.adjusted += 1;
            report.adjustments.entry(a.name).or_insert((a.reason, 0)).1 += 1;
        }
        match outcome {
            Outcome::Passed => {
                report.passed += 1;
                continue;
            }
            Outcome::Failed(_) => report.failed += 1,
            Outcome::Skipped(_) => report.skipped += 1,
        }
        if let (Some(a), Outcome::Failed(_)) = (adjusted, &outcome) {
            report.adjusted_failures.insert(report.tests.len(), a);
        }
        report.tests.push(TestReport {
            idx: test.idx,
            name: test.name.clone(),
            bytes: test.bytes.clone(),
            hash: test.hash.clone(),
            exception: test.exception.map(|e| e.number),
            outcome,
        });
    }
    Ok(report)
}

/// Defined bits of each register for a test: the file's and the test's
/// register masks (MOO `RMSK`/`RM32`) and the metadata's flags mask (which
/// covers the low 16 bits of EFLAGS).
pub fn masks_for(
    file: &TestFile,
    test: &TestCase,
    metadata: Option<&Metadata>,
    key: Option<&OpcodeKey>,
) -> [u32; NUM_REGS] {
    let mut masks = [u32::MAX; NUM_REGS];
    for (i, m) in masks.iter_mut().enumerate() {
        *m &= file.masks[i].unwrap_or(u32::MAX) & test.masks[i].unwrap_or(u32::MAX);
    }
    let info = metadata.zip(key).and_then(|(md, k)| md.lookup(k, insn::modrm_reg(&test.bytes)));
    if let Some(flags_mask) = info.and_then(|i| i.flags_mask) {
        masks[Reg::Flags.index()] &= flags_mask | 0xFFFF_0000;
    }
    masks
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::singlestep::moo;

    fn temp_dir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("ferrite-singlestep-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn directories_expand_to_sorted_test_files() {
        let dir = temp_dir("collect");
        for name in ["B1.json", "00.MOO.gz", "metadata.json", "README.md", "0A.json.gz"] {
            std::fs::write(dir.join(name), b"").unwrap();
        }
        std::fs::create_dir(dir.join("sub")).unwrap();
        std::fs::write(dir.join("sub/F6.4.moo"), b"").unwrap();
        let files = collect_inputs(std::slice::from_ref(&dir)).unwrap();
        let names: Vec<String> = files.iter().map(|p| p.strip_prefix(&dir).unwrap().display().to_string()).collect();
        assert_eq!(names, ["00.MOO.gz", "0A.json.gz", "B1.json", "sub/F6.4.moo"]);

        let empty = temp_dir("collect-empty");
        assert!(matches!(collect_inputs(std::slice::from_ref(&empty)), Err(Error::NoTests { .. })));
        assert!(matches!(collect_inputs(&[empty.join("missing")]), Err(Error::Io { .. })));
        let _ = std::fs::remove_dir_all(dir);
        let _ = std::fs::remove_dir_all(empty);
    }

    #[test]
    fn masks_combine_moo_masks_and_metadata() {
        let mut file = TestFile::parse(Path::new("F6.json"), Format::Json, b"[]").unwrap();
        file.masks[Reg::Ax.index()] = Some(0x00FF);
        // div cl: reg field 6
        let mut test = TestCase { bytes: vec![0xF6, 0xF1, 0xF4], ..TestCase::default() };
        test.masks[Reg::Flags.index()] = Some(0xFFFE);
        let md = Metadata::parse(r#"{"opcodes": {"F6": {"reg": {"6": {"status": "normal", "flags-mask": 63274}}}}}"#)
            .unwrap();
        let masks = masks_for(&file, &test, Some(&md), file.opcode.as_ref());
        assert_eq!(masks[Reg::Ax.index()], 0x00FF);
        assert_eq!(masks[Reg::Bx.index()], u32::MAX);
        assert_eq!(masks[Reg::Flags.index()], 63274 & 0xFFFE);
        let masks = masks_for(&file, &test, None, file.opcode.as_ref());
        assert_eq!(masks[Reg::Flags.index()], 0xFFFE);
    }

    #[test]
    fn scoreboard_is_sorted_with_totals_header() {
        let mut s = SuiteSummary::default();
        for (name, p, f, k) in [("FC.json.gz", 10, 0, 0), ("00.json.gz", 7, 2, 1)] {
            s.files.push(FileSummary {
                name: name.into(),
                arch: Some(Arch::I286),
                mnemonic: None,
                passed: p,
                failed: f,
                skipped: k,
                adjusted: f,
                error: None,
            });
            s.passed += p;
            s.failed += f;
            s.skipped += k;
            s.adjusted += f;
        }
        s.adjustments.insert("lock-on-non-lockable", ("why", 2));
        assert_eq!(
            s.scoreboard(),
            "# total: 2 files, 20 tests: 17 passed, 2 failed, 1 skipped\n\
             # checked against the P6 rule instead of the 286 result (among passed and failed): 2 \
             (2 lock-on-non-lockable)\n\
             # columns: file passed failed skipped adjusted\n\
             00.json.gz     7     2     1     2\n\
             FC.json.gz    10     0     0     0\n"
        );
        assert_eq!(s.final_line(), "17 passed, 2 failed, 1 skipped");
        s.skipped = 0;
        assert_eq!(s.final_line(), "17 passed, 2 failed");
    }

    /// Two HLT tests (the simplest instruction any CPU core runs), the
    /// second revoked by a list one directory up, as upstream lays it out.
    #[test]
    fn runs_tests_and_skips_revoked_ones() {
        let dir = temp_dir("run");
        std::fs::create_dir(dir.join("v1")).unwrap();
        let hlt = |idx: u32, hash: &str| {
            format!(
                r#"{{"idx": {idx}, "name": "hlt", "bytes": [244],
                "initial": {{"regs": {{"ax": 1, "bx": 2, "cx": 3, "dx": 4, "cs": 4096, "ss": 8192,
                    "ds": 12288, "es": 16384, "sp": 256, "bp": 5, "si": 6, "di": 7, "ip": 16,
                    "flags": 61442}}, "ram": [[65552, 244]]}},
                "final": {{"regs": {{"ip": 17, "flags": 2}}, "ram": []}},
                "hash": "{hash}"}}"#
            )
        };
        let json = format!("[{}, {}]", hlt(0, "aa11"), hlt(1, "bb22"));
        let file = dir.join("v1/F4.json");
        std::fs::write(&file, json).unwrap();
        std::fs::write(dir.join("revocation_list.txt"), "# bad captures\nBB22\n").unwrap();

        let mut events = Vec::new();
        let summary = run_suite(&[file], &RunOptions::default(), |e| match e {
            SuiteEvent::File { result, .. } => {
                let r = result.as_ref().unwrap();
                events.push(format!("{} {} {} {}", r.name, r.passed, r.failed, r.skipped));
            }
            SuiteEvent::NoMetadata { .. } => events.push("no metadata".into()),
            SuiteEvent::Progress { .. } => {}
        })
        .unwrap();
        assert_eq!(events, ["no metadata", "F4.json 1 0 1"]);
        assert_eq!(summary.final_line(), "1 passed, 0 failed, 1 skipped");
        assert_eq!(summary.skips.get("revoked").map(|s| s.1), Some(1));
        let _ = std::fs::remove_dir_all(dir);
    }

    /// One test in the suite's JSON form; registers not given are 0.
    fn json_test(idx: u32, name: &str, bytes: &[u8], regs: &[(&str, u16)], ram: &[(u32, u8)], fin: &str) -> String {
        let mut all: Vec<(&str, u16)> = Arch::I286.registers().iter().map(|r| (r.name(), 0)).collect();
        for &(n, v) in regs {
            all.iter_mut().find(|(m, _)| *m == n).unwrap().1 = v;
        }
        let regs: Vec<String> = all.iter().map(|(n, v)| format!(r#""{n}": {v}"#)).collect();
        let ram: Vec<String> = ram.iter().map(|(a, v)| format!("[{a}, {v}]")).collect();
        format!(
            r#"{{"idx": {idx}, "name": "{name}", "bytes": {bytes:?},
            "initial": {{"regs": {{{}}}, "ram": [{}]}}, "final": {fin}, "hash": "{idx:04x}"}}"#,
            regs.join(", "),
            ram.join(", ")
        )
    }

    /// A LOCK test and a POPF test as the 286 recorded them, run through
    /// ferrite's CPU: both pass against their P6 adjustments (and fail
    /// unadjusted, so the adjustment is what is checked).
    #[test]
    fn adjusted_tests_run_and_count_as_passed() {
        let dir = temp_dir("adjusted");
        // lock mov [bx],al at 1000:0100; the 286 stored AL at DS:BX.
        let lock = json_test(
            0,
            "lock mov [bx],al",
            &[0xF0, 0x88, 0x07, 0xF4],
            &[("ax", 0x1234), ("bx", 0x40), ("cs", 0x1000), ("ip", 0x100), ("ss", 0x2000), ("sp", 0x10)]
                .into_iter()
                .chain([("ds", 0x3000), ("flags", 0xF203)])
                .collect::<Vec<_>>(),
            &[(0x10100, 0xF0), (0x10101, 0x88), (0x10102, 0x07), (0x10103, 0xF4), (0x30040, 0x99)],
            r#"{"regs": {"ip": 260}, "ram": [[196672, 52]]}"#,
        );
        // popf at 1000:0200 popping 3001h; the 286 kept IOPL clear.
        let popf = json_test(
            1,
            "popf",
            &[0x9D, 0xF4],
            &[("cs", 0x1000), ("ip", 0x200), ("ss", 0x2000), ("sp", 0x100), ("flags", 0x0002)],
            &[(0x10200, 0x9D), (0x10201, 0xF4), (0x20100, 0x01), (0x20101, 0x30)],
            r#"{"regs": {"sp": 258, "ip": 514, "flags": 3}, "ram": []}"#,
        );
        let file = dir.join("tests.json");
        std::fs::write(&file, format!("[{lock}, {popf}]")).unwrap();
        let summary = run_suite(std::slice::from_ref(&file), &RunOptions::default(), |_| {}).unwrap();
        assert_eq!(summary.final_line(), "2 passed, 0 failed");
        assert_eq!(summary.adjusted, 2);
        assert_eq!(summary.files[0].adjusted, 2);
        let names: Vec<(&str, usize)> = summary.adjustments.iter().map(|(n, (_, c))| (*n, *c)).collect();
        assert_eq!(names, [("lock-on-non-lockable", 1), ("popf-iret-iopl-nt", 1)]);

        // As the 286 recorded them, both fail on a P6.
        let mut machine = Machine::new().unwrap();
        for test in TestFile::load(&file).unwrap().tests {
            assert!(machine.run(&test, &[0xFFFF; NUM_REGS]).is_err(), "{}", test.name);
        }
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn summary_text_lists_skips_then_adjustments_then_the_totals() {
        let mut s = SuiteSummary { passed: 5, failed: 1, skipped: 2, adjusted: 3, ..SuiteSummary::default() };
        s.skips.insert("revoked", ("bad capture", 2));
        s.adjustments.insert("popf-iret-iopl-nt", ("IOPL and NT", 3));
        assert_eq!(
            s.summary_text(),
            "skipped:\n\
             \x20      2 revoked: bad capture\n\
             checked against the P6 rule instead of the 286 result:\n\
             \x20      3 popf-iret-iopl-nt: IOPL and NT\n\
             5 passed, 1 failed, 2 skipped\n"
        );
        let none = SuiteSummary { passed: 1, ..SuiteSummary::default() };
        assert_eq!(none.summary_text(), "1 passed, 0 failed\n");

        // A run of 386 files names their result.
        let file = |arch| FileSummary {
            name: String::new(),
            arch,
            mnemonic: None,
            passed: 0,
            failed: 0,
            skipped: 0,
            adjusted: 0,
            error: None,
        };
        s.files = vec![file(Some(Arch::I386)), file(None)];
        assert!(s.summary_text().contains("\nchecked against the P6 rule instead of the 386 result:\n"));
        assert!(s.scoreboard().contains("# checked against the P6 rule instead of the 386 result (among"));
        s.files.push(file(Some(Arch::I286)));
        assert_eq!(s.recorded_result(), "the 286 and 386 results");
    }

    #[test]
    fn unreadable_file_is_a_file_error_naming_it() {
        let dir = temp_dir("bad");
        let bad = dir.join("00.MOO");
        std::fs::write(&bad, moo::tests::chunk(b"JUNK", &[1, 2, 3])).unwrap();
        let mut seen = Vec::new();
        let summary = run_suite(std::slice::from_ref(&bad), &RunOptions::default(), |e| {
            if let SuiteEvent::File { result, .. } = e {
                seen.push(result.as_ref().map(|_| ()).map_err(|e| e.full_message()));
            }
        })
        .unwrap();
        assert_eq!(summary.file_errors(), 1);
        let msg = seen[0].clone().unwrap_err();
        assert!(msg.contains("00.MOO") && msg.contains("not a MOO file"), "{msg}");
        let _ = std::fs::remove_dir_all(dir);
    }
}
