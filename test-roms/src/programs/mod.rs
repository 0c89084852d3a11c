//! The project's own CPU test programs: boot-sector style images (loaded
//! at physical 0x7C00, entered in real mode at 0000:7C00 with no BIOS)
//! built with iced-x86's code assembler. They cover what no external suite
//! does: protected-mode entry and exit, paging, gates and privilege
//! changes, task switches, V86 mode and self-modifying code.
//!
//! Each program checks its own results, prints `ok <prog> <check>` or
//! `FAIL <prog>: ...` lines to the debug console (port 0xE9) and ends by
//! writing its failure count to the exit device (port 0xF4): 0 means every
//! check passed (exit status 1 under QEMU's isa-debug-exit).

mod asm;
pub mod bios_disk;
pub mod bios_kbd;
pub mod bios_mem;
pub mod bios_misc;
pub mod bios_pci;
pub mod bios_rt;
pub mod bios_time;
pub mod bios_video;
mod boot;
pub mod bootcd;
pub mod bootdisk;
pub mod bootfloppy;
pub mod demo;
pub mod ferr;
mod gates;
mod hello;
pub mod multiboot;
mod paging;
mod pmode;
mod rt;
mod smc;
pub mod sse2_user;
mod tasks;
pub mod timer;
mod v86;
pub mod vga;

use crate::debug_ports::{DEBUGCON_PORT, EXIT_PORT};
use ferrite_core::cpu::state::SegReg;
use ferrite_core::{AccessSize, Bus, Cpu, GuestMemory, MemError, PhysAddr, StepOutcome};

/// One test program image.
#[derive(Clone, Debug)]
pub struct Program {
    pub name: &'static str,
    pub image: Vec<u8>,
    /// Physical load address; execution starts at 0000:load_addr.
    pub load_addr: u32,
}

/// Every test program, `hello` first.
pub fn all() -> Vec<Program> {
    vec![
        hello::program(),
        pmode::program(),
        paging::program(),
        gates::program(),
        tasks::program(),
        v86::program(),
        smc::program(),
    ]
}

/// Programs that need the PC board (PIC, PIT, UART): not part of [`all`],
/// which runs on the bare CPU.
pub fn board_programs() -> Vec<Program> {
    vec![timer::program(), ferr::program()]
}

/// The program called `name`.
pub fn by_name(name: &str) -> Option<Program> {
    all().into_iter().chain(board_programs()).find(|p| p.name == name)
}

/// Guest RAM the harness gives a program.
pub const RAM_BYTES: usize = 16 << 20;

/// Why a run ended without an exit-device write.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("the CPU shut down (triple fault)")]
    Shutdown,
    #[error("no exit-device write within the instruction budget")]
    Timeout,
    #[error("the CPU halted without writing the exit device")]
    Halted,
    #[error(transparent)]
    Memory(#[from] MemError),
}

/// What a run produced.
#[derive(Debug)]
pub struct RunResult {
    /// Bytes written to the debug console.
    pub console: Vec<u8>,
    /// The value written to the exit device (0 = all checks passed).
    pub exit: Result<u32, RunError>,
    /// Instructions executed.
    pub instructions: u64,
    /// The accelerator's counters when one was installed.
    pub accel: Option<ferrite_core::cpu::accel::AccelStats>,
}

impl RunResult {
    /// The console output as text.
    pub fn console_text(&self) -> String {
        String::from_utf8_lossy(&self.console).into_owned()
    }
}

/// Forwards every access to the caller's bus and taps the debug console
/// and the exit device on the way.
struct Tap<'a> {
    inner: &'a mut dyn Bus,
    console: Vec<u8>,
    exit: Option<u32>,
}

impl Bus for Tap<'_> {
    fn sync(&mut self, instret: u64) {
        self.inner.sync(instret)
    }
    fn io_read(&mut self, port: u16, size: AccessSize) -> u32 {
        self.inner.io_read(port, size)
    }
    fn io_write(&mut self, port: u16, size: AccessSize, value: u32) {
        match port {
            DEBUGCON_PORT => self.console.push(value as u8),
            EXIT_PORT => self.exit = Some(value & size.all_ones()),
            _ => {}
        }
        self.inner.io_write(port, size, value)
    }
    fn mmio_read(&mut self, addr: PhysAddr, size: AccessSize) -> u32 {
        self.inner.mmio_read(addr, size)
    }
    fn mmio_write(&mut self, addr: PhysAddr, size: AccessSize, value: u32) {
        self.inner.mmio_write(addr, size, value)
    }
    fn acknowledge_interrupt(&mut self) -> Option<u8> {
        self.inner.acknowledge_interrupt()
    }
    fn interrupt_pending(&self) -> bool {
        self.inner.interrupt_pending()
    }
}

/// Run `program` on a fresh CPU with [`RAM_BYTES`] of RAM and `bus` until
/// it writes the exit device, for at most `max_instructions`.
pub fn run(program: &Program, bus: &mut dyn Bus, max_instructions: u64) -> RunResult {
    run_with(program, bus, max_instructions, |_| {})
}

/// [`run`] with `setup` applied to the fresh CPU first (e.g. to install
/// the JIT); the CPU comes back in the result's `cpu` for inspection.
pub fn run_with(
    program: &Program,
    bus: &mut dyn Bus,
    max_instructions: u64,
    setup: impl FnOnce(&mut Cpu),
) -> RunResult {
    let mut tap = Tap { inner: bus, console: Vec::new(), exit: None };
    let mut mem = match GuestMemory::new(RAM_BYTES) {
        Ok(m) => m,
        Err(e) => return RunResult { console: Vec::new(), exit: Err(e.into()), instructions: 0, accel: None },
    };
    mem.load(PhysAddr(program.load_addr), &program.image);
    let mut cpu = Cpu::new();
    setup(&mut cpu);
    cpu.state.load_seg_real(SegReg::Cs, 0);
    cpu.state.eip = program.load_addr;
    const CHUNK: u64 = 10_000;
    let mut done = 0u64;
    let exit = loop {
        if let Some(v) = tap.exit {
            break Ok(v);
        }
        if done >= max_instructions {
            break Err(RunError::Timeout);
        }
        let (outcome, n) = cpu.run(&mut mem, &mut tap, CHUNK.min(max_instructions - done));
        done += n;
        match (tap.exit, outcome) {
            (Some(v), _) => break Ok(v),
            (None, StepOutcome::Continue) => {}
            (None, StepOutcome::Halted) => break Err(RunError::Halted),
            (None, StepOutcome::Shutdown) => break Err(RunError::Shutdown),
        }
    };
    RunResult { console: tap.console, exit, instructions: done, accel: cpu.accel_stats() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_program_assembles_at_its_load_address() {
        for p in all() {
            assert_eq!(p.load_addr, 0x7C00, "{}", p.name);
            assert!(!p.image.is_empty() && p.image.len() < 0x8_0000, "{} is {} bytes", p.name, p.image.len());
        }
    }

    /// A program whose checks are wrong must say so: the runtime's own
    /// test.
    fn broken_program(unexpected_fault: bool) -> Program {
        use iced_x86::code_asm::*;
        let image = rt::protected_program(
            "selftest",
            |c, img| {
                c.section()?;
                c.mov(eax, 5u32)?;
                c.check_r32(eax, 6, "five is six")?;
                c.fault(img, "NOP faults", 13, Some(0), |c| c.nop())?;
                c.mov(eax, 7u32)?;
                c.check_r32(eax, 7, "seven is seven")?;
                c.section_ok("never")?;
                if unexpected_fault {
                    c.ud2()?;
                }
                rt::finish(c)
            },
            |_, _| {},
            rt::Tss32::default(),
            |_| Ok(()),
        );
        Program { name: "selftest", image, load_addr: rt::LOAD }
    }

    #[test]
    fn failed_checks_are_printed_and_counted_in_the_exit_code() {
        let mut bus = crate::debug_ports::DebugPorts::new();
        let r = run(&broken_program(false), &mut bus, 100_000);
        let text = r.console_text();
        assert!(matches!(r.exit, Ok(3)), "{:?}: {text}", r.exit);
        assert!(text.contains("FAIL selftest: five is six: expected 00000006 got 00000005\n"), "{text}");
        assert!(text.contains("FAIL selftest: NOP faults: vector: expected 0000000D got FFFFFFFF\n"), "{text}");
        assert!(!text.contains("seven"), "{text}");
        assert!(!text.contains("ok selftest never"), "{text}");
        assert!(text.ends_with("FAIL selftest: 00000003 checks failed\n"), "{text}");
    }

    #[test]
    fn an_unexpected_exception_ends_the_program() {
        let mut bus = crate::debug_ports::DebugPorts::new();
        let r = run(&broken_program(true), &mut bus, 100_000);
        let text = r.console_text();
        assert!(matches!(r.exit, Ok(0xFE)), "{:?}: {text}", r.exit);
        assert!(text.contains("FAIL selftest: unexpected exception 00000006 error 00000000 at 00000008:"), "{text}");
    }

    #[test]
    fn a_program_that_never_exits_times_out() {
        let mut bus = crate::debug_ports::DebugPorts::new();
        let spin = Program { name: "spin", image: vec![0xEB, 0xFE], load_addr: rt::LOAD };
        let r = run(&spin, &mut bus, 25_000);
        assert!(matches!(r.exit, Err(RunError::Timeout)), "{:?}", r.exit);
        assert_eq!(r.instructions, 25_000);
        let halt = Program { name: "halt", image: vec![0xFA, 0xF4], load_addr: rt::LOAD };
        let r = run(&halt, &mut bus, 25_000);
        assert!(matches!(r.exit, Err(RunError::Halted)), "{:?}", r.exit);
    }

    #[test]
    fn hello_prints_and_exits_with_zero() {
        let mut bus = crate::debug_ports::DebugPorts::new();
        let r = run(&hello::program(), &mut bus, 10_000);
        assert!(matches!(r.exit, Ok(0)), "{:?}", r.exit);
        assert_eq!(r.console_text(), hello::MESSAGE);
        assert_eq!(bus.exit_status(), Some(1));
    }
}
