//! Runner for the SingleStepTests CPU suites (<https://github.com/singlesteptests>):
//! the hardware-captured 80286 real-mode set and the 80386 (386EX) real-mode
//! set.
//!
//! Each test gives an initial CPU state (registers and the RAM bytes the
//! instruction touches), the instruction bytes followed by a HLT, and the
//! final state as it differs from the initial one. The runner loads the
//! initial state into a fresh [`ferrite_core::Cpu`], steps until the CPU
//! halts, and compares registers and memory, masking the flags the suite's
//! `metadata.json` (286) or `80386.csv` (386) declares undefined.
//!
//! Module map:
//! - [`json`] and [`moo`] read the two file forms into one neutral
//!   [`TestCase`];
//! - [`metadata`] reads `metadata.json` (the 286 suite's undefined-flag
//!   masks per opcode) or `80386.csv` (the 386 suite's opcode database),
//!   `revocation_list.txt` and the opcode key a file name encodes;
//! - [`differences`] lists the documented behaviours in which a 286 or a
//!   386 differs from the P6 ferrite emulates; tests they select are skipped
//!   with a reason;
//! - [`adjustments`] rewrites the expected outcome of tests of some of those
//!   differences into what a P6 must do, so they run instead of being
//!   skipped;
//! - [`runner`] executes one test on the CPU and compares the result;
//! - [`suite`] runs whole files and directories, on several threads, and
//!   produces the per-file reports and the scoreboard.

pub mod adjustments;
pub mod differences;
pub mod insn;
pub mod json;
pub mod metadata;
pub mod moo;
pub mod runner;
pub mod suite;

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use ferrite_core::MemError;
use flate2::read::GzDecoder;

pub use adjustments::{AdjustedMasks, Adjustment, ADJUSTMENTS};
pub use differences::{Difference, DIFFERENCES};
pub use metadata::{CsvError, Metadata, OpcodeInfo, OpcodeKey, RevocationList};
pub use runner::{Failure, FailureKind, Machine, Mismatch};
pub use suite::{collect_inputs, run_suite, FileReport, Outcome, RunOptions, SkipReason, SuiteSummary, TestReport};

/// Errors of the SingleStepTests runner. Every variant that comes from a
/// file names it; the cause is the error's `source()`, so the message reads
/// well both alone and in a chain (see [`Error::full_message`]).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read {}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{}: invalid test JSON", path.display())]
    Json { path: PathBuf, source: serde_json::Error },
    #[error("{}: invalid MOO data", path.display())]
    Moo { path: PathBuf, source: moo::MooError },
    #[error("{}: invalid metadata", path.display())]
    Metadata { path: PathBuf, source: serde_json::Error },
    #[error("{}: invalid opcode database", path.display())]
    OpcodeDb { path: PathBuf, source: metadata::CsvError },
    #[error("{}: not a SingleStepTests file (expected .json, .json.gz, .MOO or .MOO.gz)", path.display())]
    UnknownFormat { path: PathBuf },
    #[error("{}: no SingleStepTests files found", path.display())]
    NoTests { path: PathBuf },
    #[error("cannot set up guest memory for the runner")]
    Memory(#[from] MemError),
}

impl Error {
    /// The message and its causes, joined with ": ".
    pub fn full_message(&self) -> String {
        let mut msg = self.to_string();
        let mut cause = std::error::Error::source(self);
        while let Some(c) = cause {
            msg.push_str(": ");
            msg.push_str(&c.to_string());
            cause = c.source();
        }
        msg
    }
}

/// The CPU a test was captured on, which decides the register file the
/// test gives and the rules that apply to it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Arch {
    /// The 80286 suite: the 16-bit register file (MOO `REGS`, JSON `ax`...).
    #[default]
    I286,
    /// The 80386 suite (captured on a 386EX): the 32-bit register file with
    /// FS, GS, CR0, CR3, DR6 and DR7 (MOO `RG32`, JSON `eax`...).
    I386,
}

impl Arch {
    /// The architecture a MOO header's CPU id names (`C286`, `386E`); CPUs
    /// before the 386 share the 16-bit register file.
    pub fn from_moo_cpu_id(id: &str) -> Arch {
        if id.trim().starts_with("386") {
            Arch::I386
        } else {
            Arch::I286
        }
    }

    /// The registers a test of this architecture gives.
    pub fn registers(self) -> &'static [Reg] {
        match self {
            Arch::I286 => &Reg::ALL[..NUM_REGS_286],
            Arch::I386 => &Reg::ALL,
        }
    }
}

/// The register file of the tests. The first fourteen are the 286 suite's,
/// in its order (the MOO `REGS` bitmask order); a 386 test keeps the full
/// 32-bit register in the same slot (`Ax` holds EAX, `Ip` EIP, `Flags`
/// EFLAGS) and adds the rest.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reg {
    Ax,
    Bx,
    Cx,
    Dx,
    Cs,
    Ss,
    Ds,
    Es,
    Sp,
    Bp,
    Si,
    Di,
    Ip,
    Flags,
    Fs,
    Gs,
    Cr0,
    Cr3,
    Dr6,
    Dr7,
}

/// Number of register slots in a test state.
pub const NUM_REGS: usize = 20;

/// Number of registers of the 286 suite (the first slots).
pub const NUM_REGS_286: usize = 14;

impl Reg {
    /// All registers: the 286 suite's in its order, then the 386 additions.
    pub const ALL: [Reg; NUM_REGS] = [
        Reg::Ax,
        Reg::Bx,
        Reg::Cx,
        Reg::Dx,
        Reg::Cs,
        Reg::Ss,
        Reg::Ds,
        Reg::Es,
        Reg::Sp,
        Reg::Bp,
        Reg::Si,
        Reg::Di,
        Reg::Ip,
        Reg::Flags,
        Reg::Fs,
        Reg::Gs,
        Reg::Cr0,
        Reg::Cr3,
        Reg::Dr6,
        Reg::Dr7,
    ];

    /// The 386 suite's register order (MOO `RG32` bitmask order).
    pub const ORDER_386: [Reg; 20] = [
        Reg::Cr0,
        Reg::Cr3,
        Reg::Ax,
        Reg::Bx,
        Reg::Cx,
        Reg::Dx,
        Reg::Si,
        Reg::Di,
        Reg::Bp,
        Reg::Sp,
        Reg::Cs,
        Reg::Ds,
        Reg::Es,
        Reg::Fs,
        Reg::Gs,
        Reg::Ss,
        Reg::Ip,
        Reg::Flags,
        Reg::Dr6,
        Reg::Dr7,
    ];

    /// The 286 suite's (lower-case, 16-bit) name of the register.
    pub fn name(self) -> &'static str {
        [
            "ax", "bx", "cx", "dx", "cs", "ss", "ds", "es", "sp", "bp", "si", "di", "ip", "flags", "fs", "gs", "cr0",
            "cr3", "dr6", "dr7",
        ][self as usize]
    }

    /// The 386 suite's (32-bit) name of the register.
    pub fn name32(self) -> &'static str {
        [
            "eax", "ebx", "ecx", "edx", "cs", "ss", "ds", "es", "esp", "ebp", "esi", "edi", "eip", "eflags", "fs",
            "gs", "cr0", "cr3", "dr6", "dr7",
        ][self as usize]
    }

    /// The register's name in tests of `arch`.
    pub fn name_for(self, arch: Arch) -> &'static str {
        match arch {
            Arch::I286 => self.name(),
            Arch::I386 => self.name32(),
        }
    }

    /// Position in [`Reg::ALL`] (for the 286 suite also the MOO `REGS`
    /// bitmask bit).
    pub fn index(self) -> usize {
        self as usize
    }

    /// CS, SS, DS, ES, FS or GS.
    pub fn is_segment(self) -> bool {
        matches!(self, Reg::Cs | Reg::Ss | Reg::Ds | Reg::Es | Reg::Fs | Reg::Gs)
    }
}

/// Registers and memory of one side (initial or final) of a test.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct State {
    /// Register values in [`Reg`] order; `None` where the state omits the
    /// register (a final state lists only the registers that changed). A
    /// 286 test's values fit 16 bits; segment selectors always do.
    pub regs: [Option<u32>; NUM_REGS],
    /// Physical address and byte value.
    pub ram: Vec<(u32, u8)>,
}

impl State {
    /// The low 16 bits of a register (the whole register in a 286 test).
    pub fn reg(&self, r: Reg) -> Option<u16> {
        self.regs[r.index()].map(|v| v as u16)
    }

    /// The whole register.
    pub fn reg32(&self, r: Reg) -> Option<u32> {
        self.regs[r.index()]
    }
}

/// An exception or interrupt the instruction raised, as the suite records it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Exception {
    pub number: u8,
    /// Physical address of the FLAGS word the CPU pushed.
    pub flag_address: u32,
}

/// One test, whatever file form it came from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TestCase {
    /// The CPU the test was captured on (the register file it gives).
    pub arch: Arch,
    pub idx: u32,
    /// Disassembly of the instruction, as the suite gives it.
    pub name: String,
    /// Instruction bytes (prefixes included, the terminating HLT included).
    pub bytes: Vec<u8>,
    pub initial: State,
    pub final_: State,
    pub exception: Option<Exception>,
    /// Hex SHA-1 identifying the test (empty when the file has none).
    pub hash: String,
    /// Per-test masks of the defined bits of each register (MOO `RMSK` or
    /// `RM32` in the final state); `None` compares all bits.
    pub masks: [Option<u32>; NUM_REGS],
    /// Physical addresses whose final byte is undefined and not compared
    /// (set by [`adjustments`] where the P6 rule leaves a byte undefined).
    pub undefined_ram: Vec<u32>,
}

impl TestCase {
    /// Expected final value of a register (low 16 bits): the final state's
    /// value, or the initial one when the instruction left it unchanged.
    pub fn expected_reg(&self, r: Reg) -> Option<u16> {
        self.final_.reg(r).or(self.initial.reg(r))
    }

    /// Expected final value of the whole register.
    pub fn expected_reg32(&self, r: Reg) -> Option<u32> {
        self.final_.reg32(r).or(self.initial.reg32(r))
    }

    /// A byte of the initial RAM state.
    pub fn initial_byte(&self, addr: u32) -> Option<u8> {
        self.initial.ram.iter().rev().find(|&&(a, _)| a == addr).map(|&(_, v)| v)
    }

    /// A byte of the expected final RAM: the final state's, else the
    /// initial one.
    pub fn expected_byte(&self, addr: u32) -> Option<u8> {
        self.final_.ram.iter().rev().find(|&&(a, _)| a == addr).map(|&(_, v)| v).or_else(|| self.initial_byte(addr))
    }

    /// A little-endian word of the initial RAM state.
    pub fn initial_word(&self, addr: u32) -> Option<u16> {
        let lo = self.initial_byte(addr)?;
        let hi = self.initial_byte(addr.wrapping_add(1))?;
        Some(u16::from_le_bytes([lo, hi]))
    }

    /// Short form of the hash for listings.
    pub fn hash_prefix(&self) -> &str {
        self.hash.get(..8).unwrap_or(&self.hash)
    }
}

/// The file forms the runner reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Json,
    JsonGz,
    Moo,
    MooGz,
}

impl Format {
    /// The form a file name denotes (case-insensitive), if any. The suite's
    /// own `metadata.json` is not a test file.
    pub fn from_path(path: &Path) -> Option<Format> {
        let name = path.file_name()?.to_str()?.to_ascii_lowercase();
        if name == "metadata.json" || name.ends_with(".csv") {
            return None;
        }
        if name.ends_with(".json.gz") {
            Some(Format::JsonGz)
        } else if name.ends_with(".json") {
            Some(Format::Json)
        } else if name.ends_with(".moo.gz") {
            Some(Format::MooGz)
        } else if name.ends_with(".moo") {
            Some(Format::Moo)
        } else {
            None
        }
    }

    fn gzipped(self) -> bool {
        matches!(self, Format::JsonGz | Format::MooGz)
    }
}

/// The tests of one file and what the file says about all of them.
#[derive(Clone, Debug)]
pub struct TestFile {
    pub path: PathBuf,
    pub format: Format,
    /// The CPU the file's tests were captured on (from the MOO header or
    /// the register file of the tests).
    pub arch: Arch,
    /// Mnemonic of the instruction under test, when the file names it (MOO
    /// `META`) or it can be read off the test names.
    pub mnemonic: Option<String>,
    /// Opcode the file holds tests for: from the file name, else from the
    /// MOO `META` chunk.
    pub opcode: Option<OpcodeKey>,
    /// File-wide masks of defined register bits (MOO top-level `RMSK` or
    /// `RM32`).
    pub masks: [Option<u32>; NUM_REGS],
    pub tests: Vec<TestCase>,
}

impl TestFile {
    /// Read and parse a test file (decompressing `.gz`).
    pub fn load(path: &Path) -> Result<TestFile, Error> {
        let format = Format::from_path(path).ok_or_else(|| Error::UnknownFormat { path: path.to_path_buf() })?;
        let io_err = |source| Error::Io { path: path.to_path_buf(), source };
        let mut data = Vec::new();
        let file = File::open(path).map_err(io_err)?;
        if format.gzipped() {
            GzDecoder::new(file).read_to_end(&mut data).map_err(io_err)?;
        } else {
            let mut file = file;
            file.read_to_end(&mut data).map_err(io_err)?;
        }
        Self::parse(path, format, &data)
    }

    /// Parse decompressed file contents; `path` names the file in errors and
    /// gives the opcode key.
    pub fn parse(path: &Path, format: Format, data: &[u8]) -> Result<TestFile, Error> {
        let from_name = OpcodeKey::from_file_name(path);
        let mut file = match format {
            Format::Json | Format::JsonGz => {
                let tests = json::parse(data).map_err(|source| Error::Json { path: path.to_path_buf(), source })?;
                TestFile {
                    path: path.to_path_buf(),
                    format,
                    arch: tests.first().map(|t| t.arch).unwrap_or_default(),
                    mnemonic: None,
                    opcode: from_name,
                    masks: [None; NUM_REGS],
                    tests,
                }
            }
            Format::Moo | Format::MooGz => {
                let moo = moo::parse(data).map_err(|source| Error::Moo { path: path.to_path_buf(), source })?;
                let opcode = from_name.or_else(|| moo.opcode.and_then(OpcodeKey::from_moo_opcode));
                TestFile {
                    path: path.to_path_buf(),
                    format,
                    arch: moo.tests.first().map(|t| t.arch).unwrap_or(Arch::from_moo_cpu_id(&moo.cpu)),
                    mnemonic: moo.mnemonic,
                    opcode,
                    masks: moo.masks,
                    tests: moo.tests,
                }
            }
        };
        if file.mnemonic.is_none() {
            file.mnemonic = mnemonic_from_names(&file.tests);
        }
        Ok(file)
    }

    /// The file name for listings.
    pub fn display_name(&self) -> String {
        display_name(&self.path)
    }
}

/// The file name part of a path, for listings.
pub fn display_name(path: &Path) -> String {
    path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| path.display().to_string())
}

/// The most common first word of the test names, prefixes left out (ties
/// go to the alphabetically first, so the result is deterministic).
fn mnemonic_from_names(tests: &[TestCase]) -> Option<String> {
    const PREFIXES: [&str; 6] = ["lock", "rep", "repe", "repz", "repne", "repnz"];
    let mut counts: std::collections::BTreeMap<&str, usize> = Default::default();
    for t in tests {
        let word = t.name.split_whitespace().find(|w| !PREFIXES.contains(w) && !w.ends_with(':'));
        if let Some(w) = word.filter(|w| !w.starts_with('(')) {
            *counts.entry(w).or_default() += 1;
        }
    }
    let best = counts.values().copied().max()?;
    counts.into_iter().find(|&(_, c)| c == best).map(|(w, _)| w.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_messages_name_the_file_and_chain_the_cause() {
        let e = TestFile::load(Path::new("/nonexistent/00.json.gz")).unwrap_err();
        assert_eq!(e.to_string(), "cannot read /nonexistent/00.json.gz");
        assert!(e.full_message().starts_with("cannot read /nonexistent/00.json.gz: "), "{}", e.full_message());
        let e = TestFile::parse(Path::new("x/00.json"), Format::Json, b"{").unwrap_err();
        assert!(e.full_message().starts_with("x/00.json: invalid test JSON: "), "{}", e.full_message());
        let e = TestFile::load(Path::new("notes.txt")).unwrap_err();
        assert!(e.to_string().starts_with("notes.txt: not a SingleStepTests file"), "{e}");
    }

    #[test]
    fn format_is_recognised_case_insensitively() {
        assert_eq!(Format::from_path(Path::new("a/00.json.gz")), Some(Format::JsonGz));
        assert_eq!(Format::from_path(Path::new("00.JSON")), Some(Format::Json));
        assert_eq!(Format::from_path(Path::new("00.MOO.gz")), Some(Format::MooGz));
        assert_eq!(Format::from_path(Path::new("00.moo")), Some(Format::Moo));
        assert_eq!(Format::from_path(Path::new("metadata.json")), None);
        assert_eq!(Format::from_path(Path::new("80386.csv")), None);
        assert_eq!(Format::from_path(Path::new("v1_ex_real_mode/676601.MOO.gz")), Some(Format::MooGz));
        assert_eq!(Format::from_path(Path::new("README.md")), None);
    }

    #[test]
    fn mnemonic_skips_prefix_words_and_bad_encodings() {
        let mk = |name: &str| TestCase { name: name.into(), ..TestCase::default() };
        let tests = [mk("lock add [bx],al"), mk("add al,bl"), mk("(bad)"), mk("es: sub x")];
        assert_eq!(mnemonic_from_names(&tests).as_deref(), Some("add"));
    }

    #[test]
    fn expected_register_falls_back_to_initial() {
        let mut initial = State::default();
        initial.regs[Reg::Ax.index()] = Some(1);
        initial.regs[Reg::Bx.index()] = Some(2);
        let mut final_ = State::default();
        final_.regs[Reg::Ax.index()] = Some(0x1234_0007);
        final_.ram = vec![(0x10, 0xAA)];
        initial.ram = vec![(0x10, 0x55), (0x11, 0x66)];
        let t = TestCase { initial, final_, hash: "0123456789abcdef".into(), ..TestCase::default() };
        assert_eq!(t.expected_reg(Reg::Ax), Some(7));
        assert_eq!(t.expected_reg32(Reg::Ax), Some(0x1234_0007));
        assert_eq!(t.expected_reg(Reg::Bx), Some(2));
        assert_eq!(t.expected_byte(0x10), Some(0xAA));
        assert_eq!(t.expected_byte(0x11), Some(0x66));
        assert_eq!(t.expected_byte(0x12), None);
        assert_eq!(t.hash_prefix(), "01234567");
    }

    #[test]
    fn register_names_and_orders() {
        assert_eq!(Reg::Sp.name(), "sp");
        assert_eq!(Reg::Sp.name32(), "esp");
        assert_eq!(Reg::Flags.name_for(Arch::I386), "eflags");
        assert_eq!(Reg::Dr7.name_for(Arch::I286), "dr7");
        assert_eq!(Arch::I286.registers().len(), 14);
        assert_eq!(Arch::I386.registers().len(), NUM_REGS);
        let mut sorted = Reg::ORDER_386;
        sorted.sort();
        assert_eq!(sorted, Reg::ALL, "the 386 order lists every register once");
        assert_eq!(Arch::from_moo_cpu_id("386E"), Arch::I386);
        assert_eq!(Arch::from_moo_cpu_id("C286"), Arch::I286);
        assert!(Reg::Gs.is_segment() && !Reg::Sp.is_segment());
    }
}
