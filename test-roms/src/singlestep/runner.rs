//! Running one test on ferrite's CPU and comparing the outcome.
//!
//! A [`Machine`] owns the guest memory (16 MiB, the 286's 24-bit space) and
//! a CPU, both reused from test to test: each test writes its initial bytes,
//! runs on the CPU after [`Cpu::reset`] (the RESET state with the decode
//! cache and TLB flushed, so nothing carries over) until HLT, is compared,
//! and then zeroes every byte it listed so the next test starts from clean
//! memory. A CPU that panicked is dropped and replaced by a new one.

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Once;

use ferrite_core::cpu::state::{SegReg, EAX, EBP, EBX, ECX, EDI, EDX, ESI, ESP};
use ferrite_core::{Cpu, GuestMemory, MemError, NullBus, PhysAddr, StepOutcome};

use super::{Reg, TestCase, NUM_REGS};

/// Guest memory of the runner: the 286's whole 24-bit physical space.
pub const MEMORY_BYTES: usize = 16 << 20;

/// Instructions executed before a test counts as not halting. Every test
/// ends in HLT within a few hundred instructions (REP counts are capped at
/// 127 by the suite).
pub const STEP_LIMIT: u64 = 100_000;

/// FLAGS bits the runner loads from a real-mode test's initial state: the
/// suite's README says to mask off the top four bits (IOPL, NT and bit 15
/// cannot be set in real mode; the initial value is what LOADALL got).
pub const INITIAL_FLAGS_MASK: u16 = 0x0FFF;

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

const SEGS: [(Reg, SegReg); 4] =
    [(Reg::Cs, SegReg::Cs), (Reg::Ss, SegReg::Ss), (Reg::Ds, SegReg::Ds), (Reg::Es, SegReg::Es)];

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
    /// A register differs under `mask` (the defined bits). `got` is
    /// ferrite's value, wider than 16 bits only for IP and FLAGS.
    Reg { reg: Reg, expected: u16, got: u32, mask: u16 },
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
}

impl std::fmt::Debug for Machine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Machine").field("mem", &self.mem).finish()
    }
}

impl Machine {
    pub fn new() -> Result<Machine, MemError> {
        Ok(Machine { mem: GuestMemory::new(MEMORY_BYTES)?, bus: NullBus, cpu: None })
    }

    /// Run one test. `masks` gives the defined bits of each register (the
    /// metadata's flags mask folded into the FLAGS entry).
    pub fn run(&mut self, test: &TestCase, masks: &[u16; NUM_REGS]) -> Result<(), Failure> {
        install_panic_hook();
        for &(addr, value) in &test.initial.ram {
            self.mem.load(PhysAddr(addr), &[value]);
        }

        let mut cpu = self.cpu.take();
        let mem = &mut self.mem;
        let bus = &mut self.bus;
        // Ok(None): halted; Ok(Some(kind)): stopped otherwise; Err: panicked.
        let ended = catch_panic(|| {
            let cpu = match &mut cpu {
                Some(cpu) => {
                    cpu.reset();
                    cpu
                }
                none => none.insert(Cpu::new()),
            };
            load_state(cpu, test);
            for _ in 0..STEP_LIMIT {
                match cpu.step(mem, bus) {
                    StepOutcome::Continue => {}
                    StepOutcome::Halted => return None,
                    StepOutcome::Shutdown => return Some(FailureKind::Shutdown),
                }
            }
            Some(FailureKind::DidNotHalt)
        });
        let regs = cpu.as_ref().and_then(|c| catch_panic(|| snapshot(c)).ok());
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
    let reg = |r: Reg| test.initial.reg(r).unwrap_or(0);
    for (r, n) in GPRS {
        cpu.state.set_reg16(n, reg(r));
    }
    for (r, s) in SEGS {
        cpu.state.load_seg_real(s, reg(r));
    }
    cpu.state.eip = reg(Reg::Ip) as u32;
    cpu.state.set_eflags((reg(Reg::Flags) & INITIAL_FLAGS_MASK) as u32);
}

/// Read the registers back in the suite's order.
fn snapshot(cpu: &Cpu) -> Snapshot {
    let mut regs = [0u32; NUM_REGS];
    for (r, n) in GPRS {
        regs[r.index()] = cpu.state.reg16(n) as u32;
    }
    for (r, s) in SEGS {
        regs[r.index()] = cpu.state.seg(s).selector as u32;
    }
    regs[Reg::Ip.index()] = cpu.state.eip;
    regs[Reg::Flags.index()] = cpu.state.eflags();
    regs
}

/// Compare a finished test: every register (initial overridden by final)
/// under its mask, every RAM byte the test lists (initial overridden by
/// final), and an exception's pushed FLAGS under the FLAGS mask. `regs` is
/// `None` when the registers could not be read back.
pub fn compare(
    test: &TestCase,
    masks: &[u16; NUM_REGS],
    regs: Option<&Snapshot>,
    read: impl Fn(u32) -> u8,
) -> Vec<Mismatch> {
    let mut out = Vec::new();
    if let Some(regs) = regs {
        for r in Reg::ALL {
            let Some(expected) = test.expected_reg(r) else {
                continue;
            };
            let mask = masks[r.index()];
            let got = regs[r.index()];
            let equal = match r {
                // FLAGS: the 16-bit FLAGS register; EFLAGS' upper half has
                // no counterpart on a 286.
                Reg::Flags => (got as u16 & mask) == (expected & mask),
                // IP must not have left the 16-bit range.
                _ => got >> 16 == 0 && (got as u16 & mask) == (expected & mask),
            };
            if !equal {
                out.push(Mismatch::Reg { reg: r, expected, got, mask });
            }
        }
    }

    let mut expected: BTreeMap<u32, u8> = test.initial.ram.iter().copied().collect();
    expected.extend(test.final_.ram.iter().copied());
    if let Some(addr) = pushed_flags_address(test) {
        let hi_addr = addr.wrapping_add(1);
        if let (Some(lo), Some(hi)) = (expected.remove(&addr), expected.remove(&hi_addr)) {
            let mask = masks[Reg::Flags.index()];
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
        for (i, r) in initial.regs.iter_mut().enumerate() {
            *r = Some(0x1000 + i as u16);
        }
        initial.ram = vec![(0x500, 0xAA), (0x501, 0xBB), (0x600, 0x11)];
        let mut final_ = State::default();
        final_.regs[Reg::Ax.index()] = Some(0x4242);
        final_.regs[Reg::Flags.index()] = Some(0x0046);
        final_.ram = vec![(0x501, 0xCC), (0x700, 0x46), (0x701, 0x08)];
        TestCase {
            idx: 3,
            name: "sample".into(),
            bytes: vec![0xF4],
            initial,
            final_,
            exception: None,
            hash: String::new(),
            masks: [None; NUM_REGS],
        }
    }

    /// The registers a correct CPU would end with.
    fn correct_regs(t: &TestCase) -> Snapshot {
        let mut s = [0; NUM_REGS];
        for r in Reg::ALL {
            s[r.index()] = t.expected_reg(r).unwrap() as u32;
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

    const ALL_BITS: [u16; NUM_REGS] = [0xFFFF; NUM_REGS];

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
                Mismatch::Reg { reg: Reg::Ax, expected: 0x4242, got: 0x4243, mask: 0xFFFF },
                Mismatch::Reg { reg: Reg::Si, expected: 0x100A, got: 0x100B, mask: 0xFFFF },
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
