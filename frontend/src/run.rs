//! `ferrite run`: start a machine. Until the PC board exists (the PC issue)
//! the machine is the CPU, RAM, an external BIOS image or one of the
//! built-in test programs, and the two debug devices (0xE9 console, 0xF4
//! exit) — enough for CPU test ROMs such as those written for QEMU's
//! isa-debug-exit.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::{Args, ValueEnum};
use ferrite_core::cpu::state::SegReg;
use ferrite_core::{AccessSize, Bus, Cpu, GuestMemory, PhysAddr, StepOutcome};
use ferrite_jit::JitMode;
use ferrite_test_roms::programs;

/// Exit status of a run stopped by `--timeout` (as coreutils' timeout).
const EXIT_TIMEOUT: u8 = 124;

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Guest RAM in MiB.
    #[arg(short = 'm', long = "memory", default_value_t = 32, value_name = "MIB")]
    pub memory: u32,
    /// External BIOS image (64-256 KiB), mapped below 4 GiB and at
    /// 0xE0000-0xFFFFF; execution starts at the reset vector F000:FFF0.
    #[arg(long, value_name = "FILE", conflicts_with = "program")]
    pub bios: Option<PathBuf>,
    /// Run one of the built-in CPU test programs instead of a BIOS.
    #[arg(long, value_name = "NAME")]
    pub program: Option<String>,
    /// Where bytes written to port 0xE9 go: stdio or file:PATH.
    #[arg(long, value_name = "stdio|file:PATH")]
    pub debugcon: Option<String>,
    /// A write of v to port 0xF4 ends the run with exit status (v<<1)|1.
    #[arg(long)]
    pub debug_exit: bool,
    /// Stop after this many seconds of wall time (exit status 124).
    #[arg(long, value_name = "SECONDS")]
    pub timeout: Option<f64>,
    /// Print instructions retired and speed at exit.
    #[arg(long)]
    pub stats: bool,
    /// Translate hot code to host code (the translator is a later issue).
    #[arg(long, value_enum, default_value_t = JitArg::Off)]
    pub jit: JitArg,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum JitArg {
    On,
    Off,
}

/// The devices of this minimal machine.
struct DebugDevices {
    console: Option<Box<dyn Write>>,
    exit_enabled: bool,
    exit: Option<u32>,
}

impl Bus for DebugDevices {
    fn io_read(&mut self, port: u16, size: AccessSize) -> u32 {
        match port {
            0xE9 if self.console.is_some() => 0xE9,
            _ => size.all_ones(),
        }
    }

    fn io_write(&mut self, port: u16, _size: AccessSize, value: u32) {
        match port {
            0xE9 => {
                if let Some(c) = self.console.as_mut() {
                    // A host write error must not stop the guest.
                    let _ = c.write_all(&[value as u8]);
                    if value as u8 == b'\n' {
                        let _ = c.flush();
                    }
                }
            }
            0xF4 if self.exit_enabled => self.exit = Some(value & 0xFF),
            _ => {}
        }
    }
}

fn open_debugcon(spec: &str) -> anyhow::Result<Box<dyn Write>> {
    if spec == "stdio" {
        return Ok(Box::new(std::io::stdout()));
    }
    if let Some(path) = spec.strip_prefix("file:") {
        let f = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(path)
            .with_context(|| format!("cannot open debug console file {path}"))?;
        return Ok(Box::new(std::io::BufWriter::new(f)));
    }
    bail!("--debugcon takes stdio or file:PATH, not {spec:?}")
}

pub fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    if args.jit == JitArg::On && !JitMode::On.available() {
        bail!("--jit on: the translator is not part of this build yet; use --jit off");
    }
    if args.memory == 0 || args.memory > 3072 {
        bail!("-m/--memory {} MiB: choose 1 to 3072", args.memory);
    }
    let mut mem = GuestMemory::new((args.memory as usize) << 20).context("cannot allocate guest RAM")?;
    let mut cpu = Cpu::new();
    match (&args.bios, &args.program) {
        (Some(path), _) => {
            let image = std::fs::read(path).with_context(|| format!("cannot read BIOS image {}", path.display()))?;
            ferrite_bios::map_external_bios(&mut mem, &image)
                .with_context(|| format!("BIOS image {}", path.display()))?;
        }
        (None, Some(name)) => {
            let Some(p) = programs::by_name(name) else {
                let names: Vec<_> = programs::all().iter().map(|p| p.name).collect();
                bail!("no built-in program {name:?}; there are: {}", names.join(", "));
            };
            mem.load(PhysAddr(p.load_addr), &p.image);
            cpu.state.load_seg_real(SegReg::Cs, 0);
            cpu.state.eip = p.load_addr;
        }
        (None, None) => bail!("nothing to run: give --bios FILE or --program NAME (the PC board comes later)"),
    }
    let console = args.debugcon.as_deref().map(open_debugcon).transpose()?;
    let mut bus = DebugDevices { console, exit_enabled: args.debug_exit, exit: None };
    let deadline = args.timeout.map(|s| Instant::now() + Duration::from_secs_f64(s.max(0.0)));
    let start = Instant::now();
    let stop = ctrl_c_flag();
    let status = loop {
        let (outcome, _) = cpu.run(&mut mem, &mut bus, 200_000);
        if let Some(v) = bus.exit {
            break ExitCode::from(((v << 1) | 1) as u8);
        }
        match outcome {
            StepOutcome::Continue => {}
            // Without a PIC nothing can wake a halted CPU: the run is over.
            StepOutcome::Halted => break ExitCode::SUCCESS,
            StepOutcome::Shutdown => {
                tracing::warn!("triple fault: resetting the machine");
                cpu.reset();
            }
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            break ExitCode::from(EXIT_TIMEOUT);
        }
        if stop.load(std::sync::atomic::Ordering::Relaxed) {
            break ExitCode::from(130);
        }
    };
    if let Some(c) = bus.console.as_mut() {
        c.flush().context("cannot flush the debug console")?;
    }
    if args.stats {
        let secs = start.elapsed().as_secs_f64();
        eprintln!(
            "stats: {} instructions retired in {:.3} s ({:.1} MIPS), all interpreted (no JIT in this build)",
            cpu.instret,
            secs,
            cpu.instret as f64 / secs.max(1e-9) / 1e6
        );
    }
    Ok(status)
}

/// A flag set by Ctrl-C so the run loop can stop cleanly.
fn ctrl_c_flag() -> std::sync::Arc<std::sync::atomic::AtomicBool> {
    let flag = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let f = flag.clone();
    // Without a handler Ctrl-C simply ends the process, which is acceptable
    // while there is no disk to flush; a failure to install is logged.
    if let Err(e) = ctrlc::set_handler(move || f.store(true, std::sync::atomic::Ordering::Relaxed)) {
        tracing::warn!("cannot install the Ctrl-C handler: {e}");
    }
    flag
}

/// `ferrite` with no arguments: run every built-in CPU test program and show
/// what it prints.
pub fn demo() -> anyhow::Result<ExitCode> {
    println!("ferrite {}: built-in CPU test programs on the interpreter\n", env!("CARGO_PKG_VERSION"));
    let mut failed = 0;
    for p in programs::all() {
        let mut bus = ferrite_test_roms::debug_ports::DebugPorts::new();
        let t = Instant::now();
        let r = programs::run(&p, &mut bus, 200_000_000);
        let secs = t.elapsed().as_secs_f64();
        println!("== {} ({} bytes at {:#x})", p.name, p.image.len(), p.load_addr);
        print!("{}", r.console_text());
        let verdict = match &r.exit {
            Ok(0) => "passed".to_string(),
            Ok(v) => {
                failed += 1;
                format!("FAILED (exit value {v})")
            }
            Err(e) => {
                failed += 1;
                format!("FAILED ({e})")
            }
        };
        println!("-- {}: {verdict}, {} instructions, {:.3} s\n", p.name, r.instructions, secs);
    }
    let total = programs::all().len();
    println!("{} passed, {} failed", total - failed, failed);
    Ok(if failed == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
