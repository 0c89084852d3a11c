//! Running one test on ferrite's CPU and comparing the outcome.
//!
//! A [`Machine`] owns the guest memory (16 MiB, the 286's 24-bit space and
//! the part of the 386EX's the suite captures) and a CPU, both reused from
//! test to test: each test writes its initial bytes, runs on the CPU after
//! [`Cpu::reset`] (the RESET state with the decode cache and TLB flushed, so
//! nothing carries over) until HLT, is compared, and then zeroes every byte
//! it listed so the next test starts from clean memory. A CPU that panicked
//! is dropped and replaced by a new one.
//!
//! What is loaded and compared depends on the test's [`Arch`]:
//! - a 286 test gives 16-bit registers: they are loaded into the low halves
//!   (FLAGS without bits 12-15, [`INITIAL_FLAGS_MASK`]) and compared as 16
//!   bits, IP also required to be below 10000h;
//! - a 386 test gives the 32-bit register file, loaded whole except for
//!   the bits a P6 holds differently from the 386EX (see the `*_LOADED_386`
//!   constants), and compared under the bits both define the same way (the
//!   `*_COMPARED_386` constants); selectors are compared as 16 bits.

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Once;

use ferrite_core::cpu::state::{SegReg, EAX, EBP, EBX, ECX, EDI, EDX, ESI, ESP};
use ferrite_core::{Cpu, GuestMemory, MemError, NullBus, PhysAddr, StepOutcome};

use super::{Arch, Reg, TestCase, NUM_REGS};

/// Guest memory of the runner: the 286's whole 24-bit physical space, and
/// the 16 MiB the 386 suite assumes.
pub const MEMORY_BYTES: usize = 16 << 20;

/// Instructions executed before a test counts as not halting. Every test
/// ends in HLT within a few hundred instructions (REP counts are capped at
/// 127 by the suite).
pub const STEP_LIMIT: u64 = 100_000;

/// FLAGS bits the runner loads from a real-mode test's initial state: the
/// suite's README says to mask off the top four bits (IOPL, NT and bit 15
/// cannot be set in real mode; the initial value is what LOADALL got).
pub const INITIAL_FLAGS_MASK: u16 = 0x0FFF;

/// EFLAGS bits loaded from a 386 test: the arithmetic flags, TF, IF, DF,
/// IOPL, NT (a 386 keeps IOPL and NT in real mode, as a P6 does) and RF.
/// Not loaded: VM (the real-mode suite never sets it), bits 18-31 (reserved
/// on a 386, where the 386EX reports them as ones: AC, VIF, VIP and ID on a
/// P6) and the reserved bits 1, 3, 5 and 15 (a P6 holds them as 1, 0, 0, 0).
pub const EFLAGS_LOADED_386: u32 = 0x0001_7FD5;

/// EFLAGS bits compared in a 386 test: those both CPUs define (SDM vol. 1,
/// 3.4.3; 386 PRM 2.3.4): the arithmetic flags, TF, IF, DF, IOPL, NT, RF and
/// VM. The undefined flags of the instruction are masked on top.
pub const EFLAGS_COMPARED_386: u32 = 0x0003_7FD5;

/// CR0 bits loaded from a 386 test: MP, EM and TS. PE and PG stay clear
/// (the suite is real-mode) and the rest keeps the P6's RESET value: on the
/// 386 bits 5-30 are reserved (the 386EX reads them as ones, a P6 defines
/// NE, WP, AM, NW and CD there) and ET is writable, where a P6 hardwires it
/// to 1 (SDM vol. 3, 2.5).
pub const CR0_LOADED_386: u32 = 0x0000_000E;

/// CR0 bits compared in a 386 test: PE, MP, EM, TS and PG, the bits the 386
/// and a P6 define identically.
pub const CR0_COMPARED_386: u32 = 0x8000_000F;

/// CR3 bits compared in a 386 test: the page-directory base. Bits 0-11 are
/// reserved on a 386; a P6 defines PWT and PCD there.
pub const CR3_COMPARED_386: u32 = 0xFFFF_F000;

/// DR6 bits loaded and compared in a 386 test: B0-B3, BD, BS and BT. The
/// reserved bits read as ones on a P6 except bit 12 (SDM vol. 3, 17.2.3);
/// the 386's reserved bits are undefined.
pub const DR6_COMPARED_386: u32 = 0x0000_E00F;

/// DR7 bits loaded and compared in a 386 test: L0-G3, LE, GE, GD and the
/// R/W and LEN fields. Bit 10 reads as one on a P6 and the other reserved
/// bits as zero (SDM vol. 3, 17.2.4); they are reserved on a 386.
pub const DR7_COMPARED_386: u32 = 0xFFFF_23FF;

/// The P6's RESET CR0: CD, NW and ET set (SDM vol. 3, 9.1.1).
fn reset_cr0() -> u32 {
    ferrite_core::cpu::state::CpuState::reset().cr0
}

/// EFLAGS as the runner leaves them in the CPU before the first
/// instruction, for a test of `arch` with the given initial value: a 286's
/// FLAGS without bits 12-15 ([`INITIAL_FLAGS_MASK`]) or a 386's EFLAGS under
/// [`EFLAGS_LOADED_386`], with the reserved bits as a P6 holds them (bit 1
/// set, bits 3 and 5 clear).
pub fn loaded_eflags(arch: Arch, initial: u32) -> u32 {
    match arch {
        Arch::I286 => (initial & INITIAL_FLAGS_MASK as u32 & !0x0028) | 0x0002,
        Arch::I386 => (initial & EFLAGS_LOADED_386) | 0x0002,
    }
}

/// CR0 as the runner leaves it for a 386 test with this initial CR0.
pub fn loaded_cr0(initial: u32) -> u32 {
    (reset_cr0() & !CR0_LOADED_386) | (initial & CR0_LOADED_386)
}

/// DR6 as the runner leaves it for a 386 test with this initial DR6: the
/// defined bits, with the reserved bits as a P6 reads them.
pub fn loaded_dr6(initial: u32) -> u32 {
    (initial & DR6_COMPARED_386) | 0xFFFF_0FF0
}

/// DR7 as the runner leaves it for a 386 test with this initial DR7.
pub fn loaded_dr7(initial: u32) -> u32 {
    (initial & DR7_COMPARED_386) | 0x0000_0400
}

/// The bits of a register compared in a test of `arch` (before the
/// instruction's undefined bits are masked): 16 bits for the 286; for the
/// 386 the bits both the 386 and a P6 define the same way.
pub fn compared_bits(arch: Arch, r: Reg) -> u32 {
    match arch {
        Arch::I286 => 0xFFFF,
        Arch::I386 => match r {
            r if r.is_segment() => 0xFFFF,
            Reg::Flags => EFLAGS_COMPARED_386,
            Reg::Cr0 => CR0_COMPARED_386,
            Reg::Cr3 => CR3_COMPARED_386,
            Reg::Dr6 => DR6_COMPARED_386,
            Reg::Dr7 => DR7_COMPARED_386,
            _ => u32::MAX,
        },
    }
}

/// General registers in the suite's order, with ferrite's register numbers.
const GPRS: [(Reg, usize); 8] = [
    (Reg::Ax, EAX),
    (Reg::Bx, EBX),
    (Reg::Cx, ECX),
    (Reg::Dx, EDX),
    (Reg::Sp, ESP),
    (Reg::Bp, EBP),
    (Reg::Si, ESI),
    (Reg::Di, EDI),
];

const SEGS: [(Reg, SegReg); 6] = [
    (Reg::Cs, SegReg::Cs),
    (Reg::Ss, SegReg::Ss),
    (Reg::Ds, SegReg::Ds),
    (Reg::Es, SegReg::Es),
    (Reg::Fs, SegReg::Fs),
    (Reg::Gs, SegReg::Gs),
];

/// Why a test failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FailureKind {
    /// The CPU halted but registers or memory differ.
    Mismatch,
    /// The CPU panicked (message and location).
    Panicked(String),
    /// The CPU shut down (triple fault).
    Shutdown,
    /// No HLT within [`STEP_LIMIT`] instructions.
    DidNotHalt,
}

/// One difference between the expected and the actual final state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mismatch {
    /// A register differs under `mask` (the compared bits). `got` is
    /// ferrite's value: in a 286 test wider than 16 bits only for IP and
    /// FLAGS. `arch` is the test's, which names the register.
    Reg { reg: Reg, arch: Arch, expected: u32, got: u32, mask: u32 },
    /// A RAM byte differs.
    Mem { addr: u32, expected: u8, got: u8 },
    /// The FLAGS word an exception pushed differs under `mask`.
    PushedFlags { addr: u32, expected: u16, got: u16, mask: u16 },
}

/// A failed test: why, and what differed (registers are compared even when
/// the CPU did not halt, so the state it was left in shows).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    pub kind: FailureKind,
    pub mismatches: Vec<Mismatch>,
}

/// Registers read back from the CPU, in [`Reg`] order.
pub type Snapshot = [u32; NUM_REGS];

/// The guest memory and bus tests run against.
pub struct Machine {
    mem: GuestMemory,
    bus: NullBus,
    /// Reused across tests: `Cpu::new` allocates the decode cache's page
    /// table, which costs more than most tests.
    cpu: Option<Cpu>,
    /// Applied to a new CPU; with it the tests run through `Cpu::run`
    /// (where an installed accelerator takes part).
    setup: Option<fn(&mut Cpu)>,
}

impl std::fmt::Debug for Machine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Machine").field("mem", &self.mem).finish()
    }
}

impl Machine {
    pub fn new() -> Result<Machine, MemError> {
        Machine::with_setup(None)
    }

    /// A machine whose CPU gets `setup` applied when it is made.
    pub fn with_setup(setup: Option<fn(&mut Cpu)>) -> Result<Machine, MemError> {
        Ok(Machine { mem: GuestMemory::new(MEMORY_BYTES)?, bus: NullBus, cpu: None, setup })
    }

    /// Run one test. `masks` gives the defined bits of each register (the
    /// metadata's flags mask folded into the FLAGS entry); only the
    /// [`compared_bits`] of a register count in any case.
    pub fn run(&mut self, test: &TestCase, masks: &[u32; NUM_REGS]) -> Result<(), Failure> {
        install_panic_hook();
        for &(addr, value) in &test.initial.ram {
            self.mem.load(PhysAddr(addr), &[value]);
        }

        let mut cpu = self.cpu.take();
        let mem = &mut self.mem;
        let bus = &mut self.bus;
        let setup = self.setup;
        // Ok(None): halted; Ok(Some(kind)): stopped otherwise; Err: panicked.
        let ended = catch_panic(|| {
            let cpu = match &mut cpu {
                Some(cpu) => {
                    cpu.reset();
                    cpu
                }
                none => {
                    let cpu = none.insert(Cpu::new());
                    if let Some(f) = setup {
                        f(cpu);
                    }
                    cpu
                }
            };
            load_state(cpu, test);
            if setup.is_some() {
                return match cpu.run(mem, bus, STEP_LIMIT).0 {
                    StepOutcome::Halted => None,
                    StepOutcome::Shutdown => Some(FailureKind::Shutdown),
                    StepOutcome::Continue => Some(FailureKind::DidNotHalt),
                };
            }
            for _ in 0..STEP_LIMIT {
                match cpu.step(mem, bus) {
                    StepOutcome::Continue => {}
                    StepOutcome::Halted => return None,
                    StepOutcome::Shutdown => return Some(FailureKind::Shutdown),
                }
            }
            Some(FailureKind::DidNotHalt)
        });
        let regs = cpu.as_ref().and_then(|c| catch_panic(|| snapshot(c, test.arch)).ok());
        if ended.is_ok() && regs.is_some() {
            self.cpu = cpu;
        }

        let mem = &self.mem;
        let mismatches = compare(test, masks, regs.as_ref(), |a| mem.peek(PhysAddr(a)));

        for &(addr, _) in test.initial.ram.iter().chain(&test.final_.ram) {
            self.mem.load(PhysAddr(addr), &[0]);
        }

        let kind = match ended {
            Ok(None) if mismatches.is_empty() => return Ok(()),
            Ok(None) => FailureKind::Mismatch,
            Ok(Some(kind)) => kind,
            Err(message) => FailureKind::Panicked(message),
        };
        Err(Failure { kind, mismatches })
    }
}

/// Put the test's initial registers into a reset CPU (real mode).
fn load_state(cpu: &mut Cpu, test: &TestCase) {
    let reg = |r: Reg| test.initial.reg32(r).unwrap_or(0);
    match test.arch {
        Arch::I286 => {
            for (r, n) in GPRS {
                cpu.state.set_reg16(n, reg(r) as u16);
            }
            for (r, s) in &SEGS[..4] {
                cpu.state.load_seg_real(*s, reg(*r) as u16);
            }
            cpu.state.eip = reg(Reg::Ip) & 0xFFFF;
        }
        Arch::I386 => {
            for (r, n) in GPRS {
                cpu.state.regs[n] = reg(r);
            }
            for (r, s) in SEGS {
                cpu.state.load_seg_real(s, reg(r) as u16);
            }
            cpu.state.eip = reg(Reg::Ip);
            if let Some(cr0) = test.initial.reg32(Reg::Cr0) {
                cpu.state.cr0 = loaded_cr0(cr0);
            }
            cpu.state.cr3 = reg(Reg::Cr3);
            if let Some(dr6) = test.initial.reg32(Reg::Dr6) {
                cpu.state.dr[6] = loaded_dr6(dr6);
            }
            if let Some(dr7) = test.initial.reg32(Reg::Dr7) {
                cpu.state.dr[7] = loaded_dr7(dr7);
            }
        }
    }
    cpu.state.set_eflags(loaded_eflags(test.arch, reg(Reg::Flags)));
}

/// Read the registers back in [`Reg`] order. For a 286 test the general
/// registers are read as 16 bits.
fn snapshot(cpu: &Cpu, arch: Arch) -> Snapshot {
    let mut regs = [0u32; NUM_REGS];
    for (r, n) in GPRS {
        regs[r.index()] = match arch {
            Arch::I286 => cpu.state.reg16(n) as u32,
            Arch::I386 => cpu.state.regs[n],
        };
    }
    for (r, s) in SEGS {
        regs[r.index()] = cpu.state.seg(s).selector as u32;
    }
    regs[Reg::Ip.index()] = cpu.state.eip;
    regs[Reg::Flags.index()] = cpu.state.eflags();
    regs[Reg::Cr0.index()] = cpu.state.cr0;
    regs[Reg::Cr3.index()] = cpu.state.cr3;
    regs[Reg::Dr6.index()] = cpu.state.dr[6];
    regs[Reg::Dr7.index()] = cpu.state.dr[7];
    regs
}

/// Compare a finished test: every register of the test's architecture
/// (initial overridden by final) under its mask and [`compared_bits`],
/// every RAM byte the test lists (initial overridden by final) except the
/// test's undefined ones, and an exception's pushed FLAGS under the FLAGS
/// mask. `regs` is `None` when the registers could not be read back.
pub fn compare(
    test: &TestCase,
    masks: &[u32; NUM_REGS],
    regs: Option<&Snapshot>,
    read: impl Fn(u32) -> u8,
) -> Vec<Mismatch> {
    let mut out = Vec::new();
    if let Some(regs) = regs {
        for &r in test.arch.registers() {
            let Some(expected) = test.expected_reg32(r) else {
                continue;
            };
            let mask = masks[r.index()] & compared_bits(test.arch, r);
            let got = regs[r.index()];
            let equal = match (test.arch, r) {
                // IP must not have left the 16-bit range. (FLAGS: EFLAGS'
                // upper half has no counterpart on a 286.)
                (Arch::I286, Reg::Ip) => got >> 16 == 0 && (got ^ expected) & mask == 0,
                _ => (got ^ expected) & mask == 0,
            };
            if !equal {
                out.push(Mismatch::Reg { reg: r, arch: test.arch, expected, got, mask });
            }
        }
    }

    let mut expected: BTreeMap<u32, u8> = test.initial.ram.iter().copied().collect();
    expected.extend(test.final_.ram.iter().copied());
    for addr in &test.undefined_ram {
        expected.remove(addr);
    }
    if let Some(addr) = pushed_flags_address(test) {
        let hi_addr = addr.wrapping_add(1);
        if let (Some(lo), Some(hi)) = (expected.remove(&addr), expected.remove(&hi_addr)) {
            let mask = (masks[Reg::Flags.index()] & compared_bits(test.arch, Reg::Flags)) as u16;
            let want = u16::from_le_bytes([lo, hi]);
            let got = u16::from_le_bytes([read(addr), read(hi_addr)]);
            if want & mask != got & mask {
                out.push(Mismatch::PushedFlags { addr, expected: want, got, mask });
            }
        }
    }
    for (addr, want) in expected {
        let got = read(addr);
        if got != want {
            out.push(Mismatch::Mem { addr, expected: want, got });
        }
    }
    out
}

/// Where the FLAGS word pushed by the test's exception is. The real-mode
/// frame leaves it at SS:SP+4 of the final state; the suite's
/// `flag_address` agrees except when SP is odd, where it is rounded down to
/// the even address below (839 of the 8443 exception tests in
/// v1_real_mode). The frame's address is used when it is the suite's or one
/// above, the suite's otherwise.
pub fn pushed_flags_address(test: &TestCase) -> Option<u32> {
    let given = test.exception?.flag_address;
    let frame = match (test.expected_reg(Reg::Ss), test.expected_reg(Reg::Sp)) {
        (Some(ss), Some(sp)) => ((ss as u32) << 4) + sp.wrapping_add(4) as u32,
        _ => return Some(given),
    };
    Some(if frame == given || frame == given.wrapping_add(1) { frame } else { given })
}

thread_local! {
    /// Set while this thread runs guest code under [`catch_panic`]: the hook
    /// then records the location instead of printing.
    static CAPTURING: Cell<bool> = const { Cell::new(false) };
    static PANIC_LOCATION: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Route panics raised while a test runs into the test's failure instead of
/// stderr; panics anywhere else still reach the previous hook.
fn install_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if CAPTURING.with(Cell::get) {
                let location = info.location().map(|l| l.to_string());
                PANIC_LOCATION.with(|p| *p.borrow_mut() = location);
            } else {
                previous(info);
            }
        }));
    });
}

/// Run `f`, turning a panic into its message (with the location when the
/// hook caught it).
fn catch_panic<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    CAPTURING.with(|c| c.set(true));
    PANIC_LOCATION.with(|p| p.borrow_mut().take());
    let result = panic::catch_unwind(AssertUnwindSafe(f));
    CAPTURING.with(|c| c.set(false));
    result.map_err(|payload| {
        let message = panic_message(payload.as_ref());
        match PANIC_LOCATION.with(|p| p.borrow_mut().take()) {
            Some(loc) => format!("{message} (at {loc})"),
            None => message,
        }
    })
}

fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic with a non-string payload".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::singlestep::{Exception, State};

    fn sample() -> TestCase {
        let mut initial = State::default();
        for (i, r) in initial.regs.iter_mut().enumerate().take(14) {
            *r = Some(0x1000 + i as u32);
        }
        initial.ram = vec![(0x500, 0xAA), (0x501, 0xBB), (0x600, 0x11)];
        let mut final_ = State::default();
        final_.regs[Reg::Ax.index()] = Some(0x4242);
        final_.regs[Reg::Flags.index()] = Some(0x0046);
        final_.ram = vec![(0x501, 0xCC), (0x700, 0x46), (0x701, 0x08)];
        TestCase { idx: 3, name: "sample".into(), bytes: vec![0xF4], initial, final_, ..TestCase::default() }
    }

    /// The registers a correct CPU would end with.
    fn correct_regs(t: &TestCase) -> Snapshot {
        let mut s = [0; NUM_REGS];
        for &r in t.arch.registers() {
            s[r.index()] = t.expected_reg32(r).unwrap();
        }
        s
    }

    fn correct_memory(addr: u32) -> u8 {
        match addr {
            0x500 => 0xAA,
            0x501 => 0xCC,
            0x600 => 0x11,
            0x700 => 0x46,
            0x701 => 0x08,
            _ => 0,
        }
    }

    const ALL_BITS: [u32; NUM_REGS] = [u32::MAX; NUM_REGS];

    #[test]
    fn correct_state_has_no_mismatch() {
        let t = sample();
        assert_eq!(compare(&t, &ALL_BITS, Some(&correct_regs(&t)), correct_memory), vec![]);
    }

    #[test]
    fn register_changed_by_mistake_is_caught() {
        let t = sample();
        let mut regs = correct_regs(&t);
        regs[Reg::Si.index()] ^= 1; // not in the final state: must keep its initial value
        regs[Reg::Ax.index()] = 0x4243;
        let m = compare(&t, &ALL_BITS, Some(&regs), correct_memory);
        assert_eq!(
            m,
            vec![
                Mismatch::Reg { reg: Reg::Ax, arch: Arch::I286, expected: 0x4242, got: 0x4243, mask: 0xFFFF },
                Mismatch::Reg { reg: Reg::Si, arch: Arch::I286, expected: 0x100A, got: 0x100B, mask: 0xFFFF },
            ]
        );
    }

    #[test]
    fn flags_compare_under_mask_and_ignore_eflags_upper_half() {
        let t = sample();
        let mut regs = correct_regs(&t);
        regs[Reg::Flags.index()] = 0x0004_0056; // AC set, AF differs
        let mut masks = ALL_BITS;
        masks[Reg::Flags.index()] = 0xFFEF; // AF undefined
        assert_eq!(compare(&t, &masks, Some(&regs), correct_memory), vec![]);
        let m = compare(&t, &ALL_BITS, Some(&regs), correct_memory);
        assert_eq!(m.len(), 1);
    }

    #[test]
    fn ip_beyond_16_bits_is_a_mismatch() {
        let t = sample();
        let mut regs = correct_regs(&t);
        regs[Reg::Ip.index()] += 0x1_0000;
        let m = compare(&t, &ALL_BITS, Some(&regs), correct_memory);
        assert!(matches!(m[..], [Mismatch::Reg { reg: Reg::Ip, .. }]), "{m:?}");
    }

    #[test]
    fn memory_expected_is_initial_overridden_by_final() {
        let t = sample();
        let regs = correct_regs(&t);
        // 0x501 still holds its initial value; 0x600 was clobbered.
        let mem = |a| match a {
            0x501 => 0xBB,
            0x600 => 0x00,
            a => correct_memory(a),
        };
        assert_eq!(
            compare(&t, &ALL_BITS, Some(&regs), mem),
            vec![
                Mismatch::Mem { addr: 0x501, expected: 0xCC, got: 0xBB },
                Mismatch::Mem { addr: 0x600, expected: 0x11, got: 0x00 },
            ]
        );
    }

    #[test]
    fn pushed_flags_compare_under_flags_mask() {
        let mut t = sample();
        t.exception = Some(Exception { number: 0, flag_address: 0x700 });
        let regs = correct_regs(&t);
        // The pushed FLAGS word 0x0846 comes back as 0x0856 (AF differs).
        let mem = |a| if a == 0x700 { 0x56 } else { correct_memory(a) };
        let mut masks = ALL_BITS;
        masks[Reg::Flags.index()] = 0xFFEF;
        assert_eq!(compare(&t, &masks, Some(&regs), mem), vec![]);
        assert_eq!(
            compare(&t, &ALL_BITS, Some(&regs), mem),
            vec![Mismatch::PushedFlags { addr: 0x700, expected: 0x0846, got: 0x0856, mask: 0xFFFF }]
        );
    }

    #[test]
    fn pushed_flags_found_at_frame_when_suite_rounds_odd_sp_down() {
        // Final SS:SP = 1000:00F9 (odd): the FLAGS word is at 0x100FD, the
        // suite says 0x100FC.
        let mut t = sample();
        t.final_.regs[Reg::Ss.index()] = Some(0x1000);
        t.final_.regs[Reg::Sp.index()] = Some(0x00F9);
        t.exception = Some(Exception { number: 0, flag_address: 0x100FC });
        assert_eq!(pushed_flags_address(&t), Some(0x100FD));
        // Even SP: the suite's address is the frame's.
        t.final_.regs[Reg::Sp.index()] = Some(0x00F8);
        t.exception = Some(Exception { number: 0, flag_address: 0x100FC });
        assert_eq!(pushed_flags_address(&t), Some(0x100FC));
        // A frame elsewhere (not a plain real-mode frame): trust the suite.
        t.exception = Some(Exception { number: 0, flag_address: 0x2000 });
        assert_eq!(pushed_flags_address(&t), Some(0x2000));
        t.exception = None;
        assert_eq!(pushed_flags_address(&t), None);
    }

    /// A 386 test whose final state is the initial one with EAX changed.
    fn sample_386() -> TestCase {
        let mut t = sample();
        t.arch = Arch::I386;
        for (i, r) in t.initial.regs.iter_mut().enumerate() {
            *r = Some(0x1234_0000 + i as u32);
        }
        for r in Reg::ALL.into_iter().filter(|r| r.is_segment()) {
            t.initial.regs[r.index()] = Some(0x1000 + r.index() as u32);
        }
        t.initial.regs[Reg::Cr0.index()] = Some(0x7FFE_FFF0);
        t.initial.regs[Reg::Flags.index()] = Some(0xFFFC_0893);
        t.initial.regs[Reg::Dr6.index()] = Some(0xFFFF_0FF0);
        t.initial.regs[Reg::Dr7.index()] = Some(0);
        t.final_.regs = [None; NUM_REGS];
        t.final_.regs[Reg::Ax.index()] = Some(0xDEAD_BEEF);
        t
    }

    #[test]
    fn a_386_test_compares_all_32_bits_and_the_added_registers() {
        let t = sample_386();
        let regs = correct_regs(&t);
        assert_eq!(compare(&t, &ALL_BITS, Some(&regs), correct_memory), vec![]);
        let mut bad = regs;
        bad[Reg::Ax.index()] = 0x0000_BEEF;
        bad[Reg::Gs.index()] ^= 1;
        bad[Reg::Ip.index()] = 0x0001_0000 | (regs[Reg::Ip.index()] & 0xFFFF);
        let m = compare(&t, &ALL_BITS, Some(&bad), correct_memory);
        let names: Vec<&str> = m
            .iter()
            .map(|m| match m {
                Mismatch::Reg { reg, arch, .. } => reg.name_for(*arch),
                _ => "memory",
            })
            .collect();
        assert_eq!(names, ["eax", "eip", "gs"]);
    }

    #[test]
    fn a_386_test_ignores_the_bits_the_386ex_and_a_p6_hold_differently() {
        let t = sample_386();
        let mut regs = correct_regs(&t);
        // EFLAGS: reserved bits 1, 3, 5, 15 and 18-31; CR0 bits 4-30; CR3
        // bits 0-11; DR6 and DR7 reserved bits; selector upper halves.
        regs[Reg::Flags.index()] = (regs[Reg::Flags.index()] & EFLAGS_COMPARED_386) | 0x0004_8028;
        regs[Reg::Cr0.index()] = loaded_cr0(0x7FFE_FFF0);
        regs[Reg::Cr3.index()] ^= 0xFFF;
        regs[Reg::Dr6.index()] = loaded_dr6(0xFFFF_0FF0) & !0x1000;
        regs[Reg::Dr7.index()] = loaded_dr7(0);
        regs[Reg::Cs.index()] |= 0xABCD_0000;
        assert_eq!(compare(&t, &ALL_BITS, Some(&regs), correct_memory), vec![]);
        // The bits both define still count: CR0.TS, DR7.L0, EFLAGS.VM.
        for (r, bit) in [(Reg::Cr0, 1 << 3), (Reg::Dr7, 1), (Reg::Flags, 1 << 17), (Reg::Cr3, 1 << 12)] {
            let mut bad = regs;
            bad[r.index()] ^= bit;
            let m = compare(&t, &ALL_BITS, Some(&bad), correct_memory);
            assert!(matches!(m[..], [Mismatch::Reg { reg, .. }] if reg == r), "{r:?}: {m:?}");
        }
    }

    #[test]
    fn undefined_bytes_are_not_compared() {
        let mut t = sample();
        t.undefined_ram = vec![0x501, 0x700];
        let regs = correct_regs(&t);
        let mem = |a| if a == 0x501 || a == 0x700 { 0x99 } else { correct_memory(a) };
        assert_eq!(compare(&t, &ALL_BITS, Some(&regs), mem), vec![]);
    }

    #[test]
    fn pushed_flags_of_a_386_test_ignore_reserved_bits() {
        let mut t = sample_386();
        t.exception = Some(Exception { number: 0, flag_address: 0x700 });
        let regs = correct_regs(&t);
        // The frame's FLAGS word 0846h comes back with bit 15 and bit 3 set.
        let mem = |a| {
            if a == 0x701 {
                0x88
            } else if a == 0x700 {
                0x4E
            } else {
                correct_memory(a)
            }
        };
        assert_eq!(compare(&t, &ALL_BITS, Some(&regs), mem), vec![]);
        let mem = |a| if a == 0x700 { 0x47 } else { correct_memory(a) };
        assert!(matches!(compare(&t, &ALL_BITS, Some(&regs), mem)[..], [Mismatch::PushedFlags { .. }]));
    }

    #[test]
    fn loaded_values_keep_what_a_p6_defines() {
        assert_eq!(loaded_eflags(Arch::I386, 0xFFFC_0C93), 0x0000_0C93);
        assert_eq!(loaded_eflags(Arch::I386, 0xFFFF_FFFF), 0x0001_7FD7);
        assert_eq!(loaded_eflags(Arch::I286, 0xF0FF), 0x00D7);
        // The 386EX's CR0: none of its reserved ones, MP EM TS taken.
        assert_eq!(loaded_cr0(0x7FFE_FFF0), 0x6000_0010);
        assert_eq!(loaded_cr0(0x7FFE_FFFF), 0x6000_001E);
        assert_eq!(loaded_dr6(0), 0xFFFF_0FF0);
        assert_eq!(loaded_dr6(0xFFFF_FFFF), 0xFFFF_EFFF);
        assert_eq!(loaded_dr7(0xFFFF_FFFF), 0xFFFF_27FF);
        assert_eq!(compared_bits(Arch::I286, Reg::Ax), 0xFFFF);
        assert_eq!(compared_bits(Arch::I386, Reg::Ax), u32::MAX);
        assert_eq!(compared_bits(Arch::I386, Reg::Fs), 0xFFFF);
    }

    /// `mov eax,cr0` and `mov ebx,dr7` (0F 20 C0, 0F 21 FB) on the CPU: what
    /// the runner loaded for a 386 test is what a P6 reads back.
    #[test]
    fn a_386_test_loads_the_32_bit_state_into_the_cpu() {
        let mut t = sample_386();
        let code = (0x1000 + Reg::Cs.index() as u32) * 16 + 0x0100;
        t.initial.regs[Reg::Ip.index()] = Some(0x0100);
        t.initial.regs[Reg::Sp.index()] = Some(0x5678_1000);
        t.initial.regs[Reg::Dr7.index()] = Some(0x0000_0003);
        t.bytes = vec![0x0F, 0x20, 0xC0, 0x0F, 0x21, 0xFB, 0xF4];
        t.initial.ram = t.bytes.iter().enumerate().map(|(i, &b)| (code + i as u32, b)).collect();
        t.final_.regs = [None; NUM_REGS];
        t.final_.regs[Reg::Ax.index()] = Some(0x6000_0010);
        t.final_.regs[Reg::Bx.index()] = Some(0x0000_0403);
        t.final_.regs[Reg::Ip.index()] = Some(0x0107);
        t.final_.ram = vec![];
        let mut machine = Machine::new().unwrap();
        assert_eq!(machine.run(&t, &ALL_BITS), Ok(()));
        // Every 32-bit register came through whole.
        t.final_.regs[Reg::Sp.index()] = Some(0x1678_1000);
        let err = machine.run(&t, &ALL_BITS).unwrap_err();
        assert!(matches!(
            err.mismatches[..],
            [Mismatch::Reg { reg: Reg::Sp, expected: 0x1678_1000, got: 0x5678_1000, .. }]
        ));
    }

    #[test]
    fn missing_registers_still_compare_memory() {
        let t = sample();
        let m = compare(&t, &ALL_BITS, None, |_| 0);
        assert_eq!(m.len(), 5);
        assert!(m.iter().all(|m| matches!(m, Mismatch::Mem { .. })));
    }

    #[test]
    fn panics_become_messages_with_location() {
        install_panic_hook();
        let r: Result<(), String> = catch_panic(|| panic!("decoder exploded"));
        let msg = r.unwrap_err();
        assert!(msg.starts_with("decoder exploded (at "), "{msg}");
        assert!(msg.contains("runner.rs"), "{msg}");
        assert_eq!(catch_panic(|| 5), Ok(5));
    }
}
