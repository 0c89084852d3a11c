//! `ferrite conformance ...`: external CPU conformance suites.

use std::fmt::Write as _;
use std::io::{self, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};
use ferrite_test_roms::singlestep::suite::SuiteEvent;
use ferrite_test_roms::singlestep::{
    collect_inputs, run_suite, Arch, Failure, FailureKind, FileReport, Mismatch, Outcome, Reg, RunOptions,
    SuiteSummary, TestReport,
};

#[derive(Debug, Subcommand)]
pub enum ConformanceCommand {
    /// Run SingleStepTests files (.json, .json.gz, .MOO, .MOO.gz) or
    /// directories of them: the 80286 suite (v1_real_mode, moo) and the
    /// 80386 suite (v1_ex_real_mode: files such as 01.MOO.gz, 676601.MOO.gz,
    /// 0FA0.MOO.gz, 80.4.MOO.gz). The opcode table with the undefined flags
    /// (the 286's metadata.json, the 386's 80386.csv) and
    /// revocation_list.txt are found beside the files or in their parent
    /// directory.
    Singlestep(SinglestepArgs),
}

#[derive(Debug, Args)]
pub struct SinglestepArgs {
    /// Test files and directories (searched recursively).
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// Only run tests whose name contains SUBSTR.
    #[arg(long, value_name = "SUBSTR")]
    pub filter: Option<String>,
    /// Run at most N tests of each file (after --filter).
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
    /// List failing and skipped tests (index, name, bytes, hash prefix).
    #[arg(short, long)]
    pub verbose: bool,
    /// Also show, per failing test, the registers and memory that differ.
    #[arg(long)]
    pub diff: bool,
    /// Write a per-file scoreboard (`name passed failed skipped`) to FILE.
    #[arg(long, value_name = "FILE")]
    pub scoreboard: Option<PathBuf>,
    /// Print only the skip summary and the final line.
    #[arg(short, long, conflicts_with_all = ["verbose", "diff"])]
    pub quiet: bool,
    /// Worker threads [default: 2, or fewer on a smaller machine].
    #[arg(short, long, value_name = "N")]
    pub jobs: Option<usize>,
    /// Use this opcode table instead of looking beside the files: a 286
    /// suite metadata.json, or an 80386.csv (any FILE ending in .csv),
    /// whose f_umask column gives the undefined flags.
    #[arg(long, value_name = "FILE", visible_alias = "opcode-db")]
    pub metadata: Option<PathBuf>,
    /// Use this revocation list instead of looking beside the files.
    #[arg(long, value_name = "FILE")]
    pub revocations: Option<PathBuf>,
}

pub fn run(cmd: ConformanceCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        ConformanceCommand::Singlestep(args) => singlestep(args),
    }
}

fn singlestep(args: SinglestepArgs) -> anyhow::Result<ExitCode> {
    let files = collect_inputs(&args.paths)?;
    let jobs = args.jobs.unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get().min(2)).unwrap_or(1));
    let opts = RunOptions {
        filter: args.filter.clone(),
        limit: args.limit,
        jobs,
        metadata: args.metadata.clone(),
        revocations: args.revocations.clone(),
        cpu_setup: None,
    };
    let progress = !args.quiet && std::io::stderr().is_terminal();
    let clear_progress = || {
        if progress {
            eprint!("\r\x1b[K");
        }
    };

    // Output goes through `out`; once stdout fails (a closed pipe, as with
    // `| head`) printing stops but the run, the scoreboard and the exit
    // status still complete.
    let mut out = Output::default();
    let start = std::time::Instant::now();
    let summary = run_suite(&files, &opts, |event| match event {
        SuiteEvent::Progress { done, total, path } => {
            if progress {
                let name = path.file_name().unwrap_or_default().to_string_lossy();
                eprint!("\r\x1b[K[{done}/{total}] {name}");
            }
        }
        SuiteEvent::File { result, .. } => {
            clear_progress();
            match result {
                Ok(report) => out.print(|w| print_file(w, report, &args)),
                Err(e) => eprintln!("error: {}", e.full_message()),
            }
        }
        SuiteEvent::NoMetadata { dir } => {
            clear_progress();
            eprintln!(
                "warning: no metadata.json or 80386.csv beside or above the files in {}: all \
                 FLAGS bits are compared (--metadata FILE names one)",
                dir.display()
            );
        }
    })?;
    clear_progress();
    tracing::info!(seconds = start.elapsed().as_secs_f64(), files = files.len(), "suite finished");

    if let Some(path) = &args.scoreboard {
        std::fs::write(path, summary.scoreboard())
            .with_context(|| format!("cannot write the scoreboard to {}", path.display()))?;
    }
    out.print(|w| print_summary(w, &summary));
    if summary.file_errors() > 0 {
        eprintln!("error: {} file(s) could not be read", summary.file_errors());
    }
    out.finish()?;
    Ok(if summary.file_errors() > 0 {
        ExitCode::from(crate::EXIT_ERROR)
    } else if summary.failed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// Stdout that goes quiet after the first write error.
#[derive(Default)]
struct Output {
    error: Option<io::Error>,
}

impl Output {
    fn print(&mut self, f: impl FnOnce(&mut dyn Write) -> io::Result<()>) {
        if self.error.is_none() {
            let mut stdout = io::stdout().lock();
            if let Err(e) = f(&mut stdout).and_then(|()| stdout.flush()) {
                self.error = Some(e);
            }
        }
    }

    /// A closed pipe is how a reader says it has seen enough: not an error.
    fn finish(self) -> anyhow::Result<()> {
        match self.error {
            Some(e) if e.kind() != io::ErrorKind::BrokenPipe => Err(e).context("cannot write to stdout"),
            _ => Ok(()),
        }
    }
}

fn print_file(w: &mut dyn Write, report: &FileReport, args: &SinglestepArgs) -> io::Result<()> {
    if args.quiet {
        return Ok(());
    }
    let mnemonic = report.mnemonic.as_deref().map(|m| format!(" ({m})")).unwrap_or_default();
    writeln!(
        w,
        "{}: {} passed, {} failed, {} skipped{mnemonic}",
        report.name, report.passed, report.failed, report.skipped
    )?;
    if !(args.verbose || args.diff) {
        return Ok(());
    }
    for t in &report.tests {
        match &t.outcome {
            Outcome::Failed(f) => {
                writeln!(w, "  FAIL {}: {}", test_title(t), failure_summary(f))?;
                if args.diff {
                    write!(w, "{}", failure_diff(t, f))?;
                }
            }
            Outcome::Skipped(reason) if args.verbose => {
                writeln!(w, "  SKIP {}: {}", test_title(t), reason.name())?;
            }
            _ => {}
        }
    }
    Ok(())
}

/// `#12 add [bx+0Eh],bl [00 5f 0e f4] (626be508)`
fn test_title(t: &TestReport) -> String {
    let bytes: Vec<String> = t.bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("#{} {} [{}] ({})", t.idx, t.name, bytes.join(" "), t.hash_prefix())
}

fn failure_summary(f: &Failure) -> String {
    let mut regs = Vec::new();
    let mut bytes = 0;
    for m in &f.mismatches {
        match m {
            Mismatch::Reg { reg, arch, .. } => regs.push(reg.name_for(*arch).to_string()),
            Mismatch::Mem { .. } => bytes += 1,
            Mismatch::PushedFlags { .. } => regs.push("pushed flags".into()),
        }
    }
    if bytes > 0 {
        regs.push(format!("{bytes} memory byte{}", if bytes == 1 { "" } else { "s" }));
    }
    let differs = if regs.is_empty() { String::new() } else { format!("differs: {}", regs.join(", ")) };
    let kind = match &f.kind {
        FailureKind::Mismatch => return differs,
        FailureKind::Panicked(msg) => format!("panicked: {msg}"),
        FailureKind::Shutdown => "CPU shut down (triple fault)".into(),
        FailureKind::DidNotHalt => "did not halt".into(),
    };
    if differs.is_empty() {
        kind
    } else {
        format!("{kind}; {differs}")
    }
}

/// Expected-versus-got lines of a failure, indented under its FAIL line.
fn failure_diff(t: &TestReport, f: &Failure) -> String {
    let mut out = String::new();
    if let Some(n) = t.exception {
        let _ = writeln!(out, "      (the suite's CPU raised interrupt {n})");
    }
    for m in &f.mismatches {
        let _ = match *m {
            Mismatch::Reg { reg, arch, expected, got, mask } => {
                // 16-bit values as 4 digits, 32-bit registers as 8.
                let full = match arch {
                    Arch::I286 => 0xFFFF,
                    Arch::I386 if reg.is_segment() => 0xFFFF,
                    Arch::I386 => u32::MAX,
                };
                let width = if got > 0xFFFF || full > 0xFFFF { 8 } else { 4 } + 2;
                let mut line =
                    format!("      {:<6} expected {expected:#0w$x}  got {got:#0w$x}", reg.name_for(arch), w = width);
                if mask != full {
                    let _ = write!(line, "  (mask {mask:#0w$x})", w = if full > 0xFFFF { 10 } else { 6 });
                }
                if reg == Reg::Flags {
                    let _ = write!(line, "  [{}]", flag_names(((expected ^ got) & mask) as u16));
                }
                writeln!(out, "{line}")
            }
            Mismatch::Mem { addr, expected, got } => {
                writeln!(out, "      [{addr:#08x}] expected {expected:#04x}  got {got:#04x}")
            }
            Mismatch::PushedFlags { addr, expected, got, mask } => writeln!(
                out,
                "      pushed flags [{addr:#08x}] expected {expected:#06x}  got {got:#06x}  \
                 (mask {mask:#06x})  [{}]",
                flag_names((expected ^ got) & mask)
            ),
        };
    }
    out
}

/// Names of the FLAGS bits set in `bits`.
fn flag_names(bits: u16) -> String {
    const NAMES: [&str; 16] =
        ["CF", "b1", "PF", "b3", "AF", "b5", "ZF", "SF", "TF", "IF", "DF", "OF", "IOPL0", "IOPL1", "NT", "b15"];
    let names: Vec<&str> = (0..16).filter(|i| bits & (1 << i) != 0).map(|i| NAMES[i]).collect();
    names.join(" ")
}

fn print_summary(w: &mut dyn Write, summary: &SuiteSummary) -> io::Result<()> {
    write!(w, "{}", summary.summary_text())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flag_names_list_set_bits() {
        assert_eq!(flag_names(0x0801), "CF OF");
        assert_eq!(flag_names(0x7000), "IOPL0 IOPL1 NT");
        assert_eq!(flag_names(0), "");
    }

    #[test]
    fn failure_lines_show_expected_and_got() {
        let t = TestReport {
            idx: 4,
            name: "add al,bl".into(),
            bytes: vec![0x00, 0xD8, 0xF4],
            hash: "626be5084b331080".into(),
            exception: None,
            outcome: Outcome::Passed,
        };
        let f = Failure {
            kind: FailureKind::Mismatch,
            mismatches: vec![
                Mismatch::Reg { reg: Reg::Flags, arch: Arch::I286, expected: 0x0046, got: 0x0047, mask: 0xFFEF },
                Mismatch::Mem { addr: 0x10A5B0, expected: 0x12, got: 0 },
            ],
        };
        assert_eq!(test_title(&t), "#4 add al,bl [00 d8 f4] (626be508)");
        assert_eq!(failure_summary(&f), "differs: flags, 1 memory byte");
        let diff = failure_diff(&t, &f);
        assert!(diff.contains("flags  expected 0x0046  got 0x0047  (mask 0xffef)  [CF]"), "{diff}");
        assert!(diff.contains("[0x10a5b0] expected 0x12  got 0x00"), "{diff}");
        let panicked = Failure { kind: FailureKind::Panicked("boom".into()), mismatches: vec![] };
        assert_eq!(failure_summary(&panicked), "panicked: boom");
    }

    #[test]
    fn failure_lines_of_386_tests_name_32_bit_registers() {
        let t = TestReport {
            idx: 1,
            name: "add eax,ebx".into(),
            bytes: vec![0x66, 0x01, 0xD8, 0xF4],
            hash: String::new(),
            exception: Some(13),
            outcome: Outcome::Passed,
        };
        let f = Failure {
            kind: FailureKind::Mismatch,
            mismatches: vec![
                Mismatch::Reg { reg: Reg::Ax, arch: Arch::I386, expected: 0x1234_5678, got: 0x5678, mask: u32::MAX },
                Mismatch::Reg { reg: Reg::Flags, arch: Arch::I386, expected: 0x46, got: 0x47, mask: 0x0003_7FD5 },
                Mismatch::Reg { reg: Reg::Fs, arch: Arch::I386, expected: 0x10, got: 0x20, mask: 0xFFFF },
            ],
        };
        assert_eq!(failure_summary(&f), "differs: eax, eflags, fs");
        let diff = failure_diff(&t, &f);
        assert!(diff.contains("eax    expected 0x12345678  got 0x00005678\n"), "{diff}");
        assert!(diff.contains("eflags expected 0x00000046  got 0x00000047  (mask 0x00037fd5)  [CF]"), "{diff}");
        assert!(diff.contains("fs     expected 0x0010  got 0x0020\n"), "{diff}");
        assert!(diff.contains("(the suite's CPU raised interrupt 13)"), "{diff}");
    }
}
