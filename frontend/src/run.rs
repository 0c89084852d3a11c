//! `ferrite run`: start a machine: the CPU, RAM and the PC board so far
//! (PIC, PIT, CMOS/RTC, COM1/COM2, port 0x61/0x92, the 0xE9 debug console
//! and the 0xF4 exit device), booting ferrite's own BIOS (the default), an
//! external BIOS image or one of the built-in test programs. The display
//! comes with the rest of the PC issue.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::{Args, ValueEnum};
use ferrite_core::cpu::state::SegReg;
use ferrite_core::{GuestMemory, PhysAddr};
use ferrite_devices::pc::{Machine, PcConfig, RunExit};

use crate::disk::FileBackend;
use ferrite_jit::{Jit, JitMode};
use ferrite_test_roms::programs;

/// Exit status of a run stopped by `--timeout` (as coreutils' timeout).
const EXIT_TIMEOUT: u8 = 124;

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Guest RAM in MiB (default 32; 128 with --kernel).
    #[arg(short = 'm', long = "memory", value_name = "MIB")]
    pub memory: Option<u32>,
    /// External BIOS image (64-256 KiB), mapped below 4 GiB and at
    /// 0xE0000-0xFFFFF; execution starts at the reset vector F000:FFF0.
    #[arg(long, value_name = "FILE", conflicts_with = "program")]
    pub bios: Option<PathBuf>,
    /// VGA option ROM image (2-128 KiB, 55AAh signature) mapped read-only
    /// at 0xC0000, where a BIOS's option ROM scan finds it.
    #[arg(long, value_name = "FILE", conflicts_with = "program")]
    pub vga_bios: Option<PathBuf>,
    /// Floppy image for drive A: (raw; 1.44 MB and the other PC sizes).
    #[arg(long, value_name = "FILE")]
    pub fda: Option<PathBuf>,
    /// Primary master hard-disk image (raw).
    #[arg(long, value_name = "FILE")]
    pub hda: Option<PathBuf>,
    /// Primary slave hard-disk image (raw).
    #[arg(long, value_name = "FILE")]
    pub hdb: Option<PathBuf>,
    /// CD-ROM image (ISO 9660), secondary master, read-only.
    #[arg(long, value_name = "FILE")]
    pub cdrom: Option<PathBuf>,
    /// Boot device for the BIOS: a (floppy), c (hard disk), d (CD-ROM).
    #[arg(long, value_name = "a|c|d", default_value = "c")]
    pub boot: String,
    /// Boot this kernel (Linux bzImage or multiboot) after POST instead of a
    /// boot sector.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["program", "bios"])]
    pub kernel: Option<PathBuf>,
    /// Initial RAM disk for --kernel (multiboot: module 0).
    #[arg(long, value_name = "FILE", requires = "kernel")]
    pub initrd: Option<PathBuf>,
    /// Kernel command line for --kernel.
    #[arg(long, value_name = "CMDLINE", requires = "kernel", default_value = "")]
    pub append: String,
    /// Run one of the built-in CPU test programs instead of a BIOS.
    #[arg(long, value_name = "NAME")]
    pub program: Option<String>,
    /// Display: `window` (a desktop window showing the VGA; falls back to
    /// headless when no display is available) or `none` (headless).
    #[arg(long, value_enum, default_value_t = DisplayArg::None)]
    pub display: DisplayArg,
    /// Where bytes written to port 0xE9 go: stdio, file:PATH or none.
    #[arg(long, value_name = "stdio|file:PATH|none")]
    pub debugcon: Option<String>,
    /// Where COM1 output goes: stdio, file:PATH or none (default none).
    #[arg(long, value_name = "stdio|file:PATH|none")]
    pub serial: Option<String>,
    /// Run as fast as possible instead of pacing virtual time to real time.
    #[arg(long)]
    pub no_pacing: bool,
    /// A write of v to port 0xF4 ends the run with exit status (v<<1)|1.
    #[arg(long)]
    pub debug_exit: bool,
    /// Stop after this many seconds of wall time (exit status 124).
    #[arg(long, value_name = "SECONDS")]
    pub timeout: Option<f64>,
    /// When the run ends, save the VGA picture as a PNG (works headless).
    #[arg(long, value_name = "PATH.png")]
    pub screenshot_on_exit: Option<PathBuf>,
    /// Print instructions retired and speed at exit.
    #[arg(long)]
    pub stats: bool,
    /// Translate hot guest code to host code (Cranelift); `force`
    /// translates every block on its first execution (for tests).
    #[arg(long, value_enum, default_value_t = JitArg::On)]
    pub jit: JitArg,
    /// The processor (QEMU's names): `pentium2` (x87, MMX), `pentium3`
    /// (and SSE) or `pentium4` (and SSE2, PAE, NX).
    #[arg(long, value_enum, default_value_t = CpuArg::Pentium2)]
    pub cpu: CpuArg,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum CpuArg {
    Pentium2,
    Pentium3,
    Pentium4,
}

impl CpuArg {
    pub fn model(self) -> ferrite_core::cpu::cpuid::CpuModel {
        use ferrite_core::cpu::cpuid::CpuModel;
        match self {
            CpuArg::Pentium2 => CpuModel::Pentium2,
            CpuArg::Pentium3 => CpuModel::Pentium3,
            CpuArg::Pentium4 => CpuModel::Pentium4,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum DisplayArg {
    Window,
    None,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum JitArg {
    On,
    Off,
    Force,
}

impl JitArg {
    pub fn mode(self) -> JitMode {
        match self {
            JitArg::On => JitMode::On,
            JitArg::Off => JitMode::Off,
            JitArg::Force => JitMode::Force,
        }
    }
}

/// Install the translator into the machine's CPU for `--jit`.
pub fn install_jit(m: &mut Machine, jit: JitArg) -> anyhow::Result<()> {
    Jit::install(&mut m.cpu, jit.mode()).context("cannot start the JIT on this host (use --jit off)")
}

/// The `--stats` line of a finished run.
fn print_stats(m: &Machine, secs: f64) {
    eprintln!(
        "stats: {} instructions retired in {:.3} s ({:.1} MIPS), {:.3} s of virtual time",
        m.cpu.instret,
        secs,
        m.cpu.instret as f64 / secs.max(1e-9) / 1e6,
        m.pc.now().0 as f64 / 1e9
    );
    match m.cpu.accel_stats() {
        Some(s) => {
            let total = m.cpu.instret.max(1);
            eprintln!(
                "stats: JIT: {} instructions in translated code ({:.1}%), {} interpreted; {} blocks compiled in {:.3} s; {} block runs; {} invalidations; {} flushes",
                s.insns_translated,
                s.insns_translated as f64 * 100.0 / total as f64,
                m.cpu.instret.saturating_sub(s.insns_translated),
                s.blocks_compiled,
                s.compile_ns as f64 / 1e9,
                s.block_runs,
                s.invalidations,
                s.flushes
            );
        }
        None => eprintln!("stats: JIT off: all {} instructions interpreted", m.cpu.instret),
    }
}

fn open_sink(spec: &str, what: &str) -> anyhow::Result<Option<Box<dyn Write>>> {
    if spec == "none" {
        return Ok(None);
    }
    if spec == "stdio" {
        return Ok(Some(Box::new(std::io::stdout())));
    }
    if let Some(path) = spec.strip_prefix("file:") {
        let f = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(path)
            .with_context(|| format!("cannot open {what} file {path}"))?;
        return Ok(Some(Box::new(std::io::BufWriter::new(f))));
    }
    bail!("{what} takes stdio, file:PATH or none, not {spec:?}")
}

fn write_all(sink: &mut Option<Box<dyn Write>>, bytes: &[u8]) {
    if let Some(s) = sink.as_mut() {
        if !bytes.is_empty() {
            // A host write error must not stop the guest.
            let _ = s.write_all(bytes);
            let _ = s.flush();
        }
    }
}

pub fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let memory = args.memory.unwrap_or(if args.kernel.is_some() { 128 } else { 32 });
    if memory == 0 || memory > 3072 {
        bail!("-m/--memory {memory} MiB: choose 1 to 3072");
    }
    let mut mem = GuestMemory::new((memory as usize) << 20).context("cannot allocate guest RAM")?;
    let mut start_at = None;
    let mut own_bios = None;
    let kernel = load_kernel(&args)?;
    match (&args.bios, &args.program) {
        (Some(path), _) => {
            let image = std::fs::read(path).with_context(|| format!("cannot read BIOS image {}", path.display()))?;
            ferrite_bios::map_external_bios(&mut mem, &image)
                .with_context(|| format!("BIOS image {}", path.display()))?;
        }
        (None, Some(name)) => {
            let Some(p) = programs::by_name(name) else {
                let names: Vec<_> = programs::all().iter().chain(&programs::board_programs()).map(|p| p.name).collect();
                bail!("no built-in program {name:?}; there are: {}", names.join(", "));
            };
            mem.load(PhysAddr(p.load_addr), &p.image);
            start_at = Some(p.load_addr);
        }
        (None, None) => {
            let mut bios = ferrite_bios::Bios::new().context("building the own BIOS")?;
            if let Some(k) = kernel.clone() {
                // POST runs as usual; INT 19h then loads the kernel instead
                // of reading a boot sector.
                let map = ferrite_bios::e820::memory_map(mem.ram_size());
                let what = kernel_context(&args);
                bios.set_boot_hook(Box::new(move |cpu, mem| {
                    k.start(cpu, mem, &map).map_err(|e| {
                        // Also on stderr: without a display the guest's
                        // console may go nowhere.
                        eprintln!("ferrite: {what}: {e}");
                        e.to_string()
                    })
                }));
            }
            bios.map(&mut mem).context("mapping the own BIOS")?;
            own_bios = Some(bios);
        }
    }
    let mut vga_rom = None;
    if let Some(path) = &args.vga_bios {
        let image = std::fs::read(path).with_context(|| format!("cannot read VGA BIOS image {}", path.display()))?;
        let first = ferrite_bios::map_vga_rom(&mut mem, &image)
            .with_context(|| format!("VGA BIOS image {}", path.display()))?;
        vga_rom = Some((first, image.len().div_ceil(4096) as u32));
    }
    let debugcon = args.debugcon.as_deref().map(|s| open_sink(s, "--debugcon")).transpose()?.flatten();
    let serial = open_sink(args.serial.as_deref().unwrap_or("none"), "--serial")?;
    // The RTC starts at the host's time; from then on only virtual time counts.
    let unix = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    // Serial lines run 100x their baud rate: the host end is a terminal or a
    // file, not a modem, and a serial console should not slow the guest.
    let cfg =
        PcConfig { debug_exit: args.debug_exit, rtc_start_unix: unix, serial_speedup: 100, ..PcConfig::default() };
    let mut m = Machine::new(mem, &cfg);
    if let Some((first, pages)) = vga_rom {
        // Also behind the adapter's ROM BAR, where SeaBIOS looks for it.
        m.pc.attach_vga_rom(first, pages);
    }
    m.cpu.set_model(args.cpu.model());
    install_jit(&mut m, args.jit)?;
    if let Some(bios) = own_bios {
        m.firmware = Some(Box::new(crate::firmware::OwnBios { bios }));
    }
    attach_drives(&mut m, &args)?;
    if let Some(addr) = start_at {
        m.cpu.state.load_seg_real(SegReg::Cs, 0);
        m.cpu.state.eip = addr;
    }
    let mut session = Session {
        m,
        debugcon,
        serial,
        deadline: args.timeout.map(|s| Instant::now() + Duration::from_secs_f64(s.max(0.0))),
        start: Instant::now(),
        stop: ctrl_c_flag(),
        pacing: !args.no_pacing,
        speaker: None,
    };
    let status = match args.display {
        DisplayArg::Window => match crate::window::run(&mut session, &vm_name(&args)) {
            Ok(status) => status,
            Err(e) => {
                // No display to open a window on (e.g. no X server): go on
                // headless, as the run was asked for.
                eprintln!("ferrite: warning: no window ({e}); running headless");
                session.run_headless()
            }
        },
        DisplayArg::None => session.run_headless(),
    };
    let m = &mut session.m;
    if let Err(e) = m.pc.ide.flush_all() {
        eprintln!("warning: flushing disk images failed: {e}");
    }
    m.pc.fdc.flush();
    if let Some(path) = &args.screenshot_on_exit {
        crate::screenshot::write_png(path, m.display())?;
    }
    if args.stats {
        print_stats(m, session.start.elapsed().as_secs_f64());
    }
    Ok(status)
}

/// A name for the machine (window title): the boot medium's or kernel's
/// file name.
fn vm_name(args: &RunArgs) -> String {
    [&args.hda, &args.cdrom, &args.fda, &args.kernel, &args.bios]
        .into_iter()
        .flatten()
        .next()
        .and_then(|p| p.file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "ferrite BIOS".to_string())
}

/// A running machine with its output sinks and run limits.
pub struct Session {
    pub m: Machine,
    debugcon: Option<Box<dyn Write>>,
    serial: Option<Box<dyn Write>>,
    deadline: Option<Instant>,
    pub start: Instant,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    pacing: bool,
    /// The PC speaker's audio output (window mode, when there is one).
    pub speaker: Option<crate::audio::Speaker>,
}

impl Session {
    /// Run one slice of the guest (a million instructions at most) and pass
    /// its output on. Some(status) when the run is over.
    pub fn slice(&mut self) -> Option<ExitCode> {
        let exit = self.m.run(1_000_000);
        if let Some(s) = self.speaker.as_mut() {
            s.feed(&mut self.m.pc);
        }
        write_all(&mut self.debugcon, &self.m.pc.take_debugcon());
        write_all(&mut self.serial, &self.m.pc.com[0].take_output());
        write_all(&mut self.serial, &self.m.pc.take_firmware_serial());
        match exit {
            RunExit::Exit(v) => return Some(ExitCode::from(((v << 1) | 1) as u8)),
            RunExit::HaltedForever => return Some(ExitCode::SUCCESS),
            RunExit::Budget => {}
        }
        if self.deadline.is_some_and(|d| Instant::now() >= d) {
            return Some(ExitCode::from(EXIT_TIMEOUT));
        }
        if self.stop.load(std::sync::atomic::Ordering::Relaxed) {
            return Some(ExitCode::from(130));
        }
        None
    }

    /// How far virtual time is ahead of the wall clock (zero without
    /// pacing): the caller waits that long before the next slice.
    pub fn ahead(&self) -> Duration {
        if !self.pacing {
            return Duration::ZERO;
        }
        Duration::from_nanos(self.m.pc.now().0).saturating_sub(self.start.elapsed())
    }

    /// The run loop without a window.
    pub fn run_headless(&mut self) -> ExitCode {
        loop {
            if let Some(status) = self.slice() {
                return status;
            }
            // Pace virtual time to real time: never run ahead of the wall clock.
            let ahead = self.ahead();
            if ahead > Duration::from_millis(1) {
                std::thread::sleep(ahead.min(Duration::from_millis(50)));
            }
        }
    }
}

fn kernel_context(args: &RunArgs) -> String {
    format!("kernel {}", args.kernel.as_deref().unwrap_or(std::path::Path::new("")).display())
}

/// Read and recognise `--kernel` and `--initrd`.
fn load_kernel(args: &RunArgs) -> anyhow::Result<Option<ferrite_bios::linux::KernelBoot>> {
    let Some(path) = &args.kernel else { return Ok(None) };
    let kernel = std::fs::read(path).with_context(|| format!("cannot read kernel {}", path.display()))?;
    let initrd = match &args.initrd {
        Some(p) => Some(std::fs::read(p).with_context(|| format!("cannot read initrd {}", p.display()))?),
        None => None,
    };
    let boot = ferrite_bios::linux::KernelBoot::new(kernel, initrd, args.append.clone())
        .with_context(|| kernel_context(args))?;
    Ok(Some(boot))
}

/// Attach the disk and CD images and set the BIOS boot order in CMOS.
fn attach_drives(m: &mut Machine, args: &RunArgs) -> anyhow::Result<()> {
    use ferrite_devices::ide::{DrivePosition, IdeChannel, IdeDevice};
    for (path, pos) in [(&args.hda, DrivePosition::Master), (&args.hdb, DrivePosition::Slave)] {
        if let Some(p) = path {
            let b = FileBackend::open(p, true)?;
            m.pc.ide.attach(IdeChannel::Primary, pos, IdeDevice::Disk(Box::new(b)));
        }
    }
    if let Some(p) = &args.cdrom {
        let b = FileBackend::open(p, false)?;
        m.pc.ide.attach(IdeChannel::Secondary, DrivePosition::Master, IdeDevice::Cdrom(Some(Box::new(b))));
    }
    if let Some(p) = &args.fda {
        let b = FileBackend::open(p, true)?;
        m.pc.fdc.insert(0, Box::new(b)).map_err(|e| anyhow::anyhow!("floppy image {}: {e}", p.display()))?;
    }
    // The CMOS drive and equipment fields follow what is attached.
    let ram = m.mem.ram_size();
    m.pc.init_cmos(ram);
    // QEMU's CMOS boot-order layout, which SeaBIOS reads: 1 = floppy,
    // 2 = hard disk, 3 = CD.
    let first = match args.boot.as_str() {
        "a" => 1,
        "c" => 2,
        "d" => 3,
        other => bail!("--boot takes a, c or d, not {other:?}"),
    };
    m.pc.set_boot_order(first);
    Ok(())
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

/// `ferrite` with no arguments: the own BIOS boots the demo floppy that
/// test-roms builds (POST, then a tour of the machine through the BIOS
/// services and a timed sieve), then the built-in CPU test programs run on
/// the bare CPU. Needs no download.
pub fn demo() -> anyhow::Result<ExitCode> {
    use ferrite_devices::block::MemBackend;
    println!("ferrite {}: the own BIOS boots a demo floppy built into the binary\n", env!("CARGO_PKG_VERSION"));
    let mut mem = GuestMemory::new(32 << 20).context("cannot allocate guest RAM")?;
    let bios = ferrite_bios::Bios::new().context("building the own BIOS")?;
    bios.map(&mut mem).context("mapping the own BIOS")?;
    let unix = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let cfg = PcConfig { debug_exit: true, rtc_start_unix: unix, serial_speedup: 100, ..PcConfig::default() };
    let mut m = Machine::new(mem, &cfg);
    install_jit(&mut m, JitArg::On)?;
    m.firmware = Some(Box::new(crate::firmware::OwnBios { bios }));
    m.pc.fdc
        .insert(0, Box::new(MemBackend::new(programs::demo::image())))
        .map_err(|e| anyhow::anyhow!("demo floppy: {e}"))?;
    let ram = m.mem.ram_size();
    m.pc.init_cmos(ram);
    m.pc.set_boot_order(1);
    let t = Instant::now();
    let mut out = std::io::stdout();
    let status = loop {
        let exit = m.run(1_000_000);
        let text = m.pc.take_debugcon();
        let _ = out.write_all(&text);
        let _ = out.flush();
        match exit {
            RunExit::Exit(v) => break Some(v),
            RunExit::HaltedForever => break None,
            RunExit::Budget if m.cpu.instret > 5_000_000_000 => break None,
            RunExit::Budget => {}
        }
    };
    let secs = t.elapsed().as_secs_f64();
    let verdict = match status {
        Some(0) => "passed",
        Some(_) => "FAILED (a check failed)",
        None => "FAILED (did not finish)",
    };
    println!(
        "-- boot demo: {verdict}, {} instructions in {secs:.2} s ({:.0} MIPS, JIT on)\n",
        m.cpu.instret,
        m.cpu.instret as f64 / secs.max(1e-9) / 1e6
    );
    let mut failed = usize::from(status != Some(0));

    println!("Built-in CPU test programs (bare CPU, no BIOS):");
    for p in programs::all() {
        let mut bus = ferrite_test_roms::debug_ports::DebugPorts::new();
        let t = Instant::now();
        let r = programs::run(&p, &mut bus, 200_000_000);
        let secs = t.elapsed().as_secs_f64();
        let verdict = match &r.exit {
            Ok(0) => "passed".to_string(),
            Ok(v) => {
                failed += 1;
                format!("FAILED (exit value {v})\n{}", r.console_text())
            }
            Err(e) => {
                failed += 1;
                format!("FAILED ({e})\n{}", r.console_text())
            }
        };
        println!("  {:8} {verdict} ({} instructions, {:.3} s)", p.name, r.instructions, secs);
    }
    println!("\n{}", if failed == 0 { "all passed" } else { "some FAILED" });
    Ok(if failed == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
