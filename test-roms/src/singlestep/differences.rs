//! Where a 286 in real mode behaves differently from the P6 ferrite
//! emulates. The suite was captured on a real 286; ferrite's CPU is meant to
//! match a P6, so tests that hit one of these behaviours are reported as
//! skipped with the reason, never counted as passes or failures.
//!
//! Each entry cites the behaviour and selects its tests by a rule over the
//! test (initial state and instruction bytes) and the opcode of its file.
//! Keep the rules narrow: a rule that selects tests a P6 would pass hides
//! coverage.

use iced_x86::{Mnemonic, OpKind, Register};

use super::insn;
use super::{OpcodeKey, Reg, TestCase};

/// One documented 286-versus-P6 difference.
#[derive(Debug)]
pub struct Difference {
    /// Short stable name, used in listings and the scoreboard.
    pub name: &'static str,
    /// One sentence: what the 286 does, what a P6 does, and where that is
    /// documented.
    pub reason: &'static str,
    /// True for the tests this difference affects.
    pub selects: fn(&TestCase, &OpcodeKey) -> bool,
}

/// The list, checked in order; the first match names the skip.
pub static DIFFERENCES: &[Difference] = &[
    Difference {
        name: "popf-iret-iopl-nt",
        reason: "a P6 in real mode loads IOPL and NT from the FLAGS image POPF/IRET pop \
                 (SDM vol. 2, POPF: real-address mode loads all non-reserved flags), \
                 while the 286 keeps bits 12-14 clear in real mode",
        selects: popf_iret_sets_iopl_nt,
    },
    Difference {
        name: "lock-on-non-lockable",
        reason: "a P6 raises #UD for LOCK on anything but a read-modify-write of a memory \
                 destination by ADD ADC AND BTC BTR BTS CMPXCHG CMPXCHG8B DEC INC NEG NOT OR \
                 SBB SUB XOR XADD XCHG (SDM vol. 2, LOCK), while the 286 executes the instruction",
        selects: lock_on_non_lockable,
    },
    Difference {
        name: "mov-sreg-fs-gs",
        reason: "the 286 has four segment registers and raises #UD (interrupt 6) for MOV \
                 to/from segment register encodings 4 and 5, which a P6 decodes as FS and GS \
                 (SDM vol. 2, MOV: move to/from segment registers)",
        selects: mov_sreg_fs_gs,
    },
    Difference {
        name: "ss-overrun-vector",
        reason: "the 286 in real mode raises interrupt 13 for any access past offset FFFFh, \
                 including through SS, where a P6 raises #SS, interrupt 12 \
                 (SDM vol. 3, 6.15 Interrupt 12: stack-segment limit violations)",
        selects: ss_overrun_vector,
    },
    Difference {
        name: "esc-operand-overrun",
        reason: "the 286 suite's machine has no 80287, so an ESC instruction only faults when \
                 the first word of its memory operand overruns offset FFFFh, while a P6 FPU \
                 accesses the whole 4/8/10-byte operand and faults when any of it does \
                 (SDM vol. 3, 20.1.1 segment limit checks in real mode)",
        selects: esc_operand_overrun,
    },
];

/// The first difference that selects the test, if any.
pub fn find(test: &TestCase, key: &OpcodeKey) -> Option<&'static Difference> {
    DIFFERENCES.iter().find(|d| (d.selects)(test, key))
}

/// The difference of this name.
pub fn by_name(name: &str) -> Option<&'static Difference> {
    DIFFERENCES.iter().find(|d| d.name == name)
}

fn expected_vector(test: &TestCase) -> Option<u8> {
    test.exception.map(|e| e.number)
}

/// POPF (9D) or IRET (CF) completing normally with a FLAGS image that has
/// any of IOPL (bits 12-13) or NT (bit 14) set. The image is at SS:SP for
/// POPF and SS:SP+4 for IRET (after IP and CS), in the initial RAM.
fn popf_iret_sets_iopl_nt(test: &TestCase, key: &OpcodeKey) -> bool {
    let offset: u16 = match key.value() {
        0x9D => 0,
        0xCF => 4,
        _ => return false,
    };
    if test.exception.is_some() {
        return false;
    }
    let (Some(ss), Some(sp)) = (test.initial.reg(Reg::Ss), test.initial.reg(Reg::Sp)) else {
        return false;
    };
    let addr = ((ss as u32) << 4) + sp.wrapping_add(offset) as u32;
    test.initial_word(addr).is_some_and(|w| w & 0x7000 != 0)
}

/// Instructions a P6 accepts a LOCK prefix on, when the destination
/// (operand 0) is memory (SDM vol. 2, LOCK).
const LOCKABLE: [Mnemonic; 17] = [
    Mnemonic::Add,
    Mnemonic::Adc,
    Mnemonic::And,
    Mnemonic::Btc,
    Mnemonic::Btr,
    Mnemonic::Bts,
    Mnemonic::Cmpxchg,
    Mnemonic::Cmpxchg8b,
    Mnemonic::Dec,
    Mnemonic::Inc,
    Mnemonic::Neg,
    Mnemonic::Not,
    Mnemonic::Or,
    Mnemonic::Sbb,
    Mnemonic::Sub,
    Mnemonic::Xor,
    Mnemonic::Xadd,
];

/// A LOCK prefix on an instruction a P6 rejects it for, unless the 286
/// raised #UD anyway (then both agree).
fn lock_on_non_lockable(test: &TestCase, _key: &OpcodeKey) -> bool {
    if !insn::has_lock_prefix(&test.bytes) || expected_vector(test) == Some(6) {
        return false;
    }
    let instr = insn::decode(&test.bytes);
    let lockable = LOCKABLE.contains(&instr.mnemonic()) || instr.mnemonic() == Mnemonic::Xchg;
    !(lockable && instr.op0_kind() == OpKind::Memory)
}

/// MOV r/m16,Sreg (8C) and MOV Sreg,r/m16 (8E) with reg field 4 or 5.
fn mov_sreg_fs_gs(test: &TestCase, key: &OpcodeKey) -> bool {
    matches!(key.value(), 0x8C | 0x8E) && matches!(insn::modrm_reg(&test.bytes), Some(4 | 5))
}

/// The 286 raised interrupt 13 and the only overrunning access is through
/// SS (stack operations, BP-based or SS-overridden operands).
fn ss_overrun_vector(test: &TestCase, _key: &OpcodeKey) -> bool {
    if expected_vector(test) != Some(13) {
        return false;
    }
    let accesses = insn::memory_accesses(test);
    let through_ss = accesses.iter().any(|a| a.segment == Register::SS && a.overruns());
    let elsewhere = accesses.iter().any(|a| a.segment != Register::SS && a.overruns());
    through_ss && !elsewhere
}

/// An ESC (D8-DF) memory operand that overruns offset FFFFh although it
/// starts below FFFFh: a P6 faults, the coprocessor-less 286 does not.
fn esc_operand_overrun(test: &TestCase, _key: &OpcodeKey) -> bool {
    if !matches!(insn::opcode_of(&test.bytes), Some((_, 0xD8..=0xDF))) {
        return false;
    }
    insn::memory_accesses(test).iter().any(|a| a.overruns() && a.offset != 0xFFFF)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::singlestep::{Exception, State, NUM_REGS};

    fn key(op: &str) -> OpcodeKey {
        OpcodeKey { opcode: op.into(), reg: None }
    }

    fn test_with(bytes: &[u8], regs: &[(Reg, u16)], ram: &[(u32, u8)]) -> TestCase {
        let mut initial = State::default();
        for &(r, v) in regs {
            initial.regs[r.index()] = Some(v);
        }
        initial.ram = ram.to_vec();
        TestCase {
            idx: 0,
            name: String::new(),
            bytes: bytes.to_vec(),
            initial,
            final_: State::default(),
            exception: None,
            hash: String::new(),
            masks: [None; NUM_REGS],
        }
    }

    fn raising(mut t: TestCase, number: u8) -> TestCase {
        t.exception = Some(Exception { number, flag_address: 0 });
        t
    }

    fn selected_by(t: &TestCase, k: &OpcodeKey) -> Option<&'static str> {
        find(t, k).map(|d| d.name)
    }

    #[test]
    fn every_difference_has_a_name_and_a_reason() {
        for d in DIFFERENCES {
            assert!(!d.name.is_empty() && d.reason.len() > 40, "{d:?}");
            assert!(by_name(d.name).is_some());
        }
    }

    #[test]
    fn popf_selected_only_when_popped_flags_set_iopl_or_nt() {
        // SS=0x1000 SP=0xFFFE: the image is at 0x1FFFE.
        let regs = [(Reg::Ss, 0x1000), (Reg::Sp, 0xFFFE)];
        let popf = |hi: u8| test_with(&[0x9D, 0xF4], &regs, &[(0x1FFFE, 0x02), (0x1FFFF, hi)]);
        assert_eq!(selected_by(&popf(0x10), &key("9D")), Some("popf-iret-iopl-nt"));
        assert_eq!(selected_by(&popf(0x40), &key("9D")), Some("popf-iret-iopl-nt"));
        assert_eq!(selected_by(&popf(0x8F), &key("9D")), None);
        // The same bytes in another opcode's file are not POPF.
        assert_eq!(selected_by(&popf(0x10), &key("9C")), None);
    }

    #[test]
    fn iret_reads_flags_after_ip_and_cs_with_sp_wrapping() {
        // SP=0xFFFC: IP at FFFC, CS at FFFE, FLAGS at offset 0 (SP wraps).
        let regs = [(Reg::Ss, 0x0200), (Reg::Sp, 0xFFFC)];
        let t = test_with(&[0xCF], &regs, &[(0x2000, 0x00), (0x2001, 0x30)]);
        assert_eq!(selected_by(&t, &key("CF")), Some("popf-iret-iopl-nt"));
        let t = test_with(&[0xCF], &regs, &[(0x2000, 0xFF), (0x2001, 0x0F)]);
        assert_eq!(selected_by(&t, &key("CF")), None);
    }

    #[test]
    fn lock_selected_for_non_lockable_instructions_only() {
        // lock mov [bx],al
        let t = test_with(&[0xF0, 0x88, 0x07, 0xF4], &[(Reg::Bx, 0x10)], &[]);
        assert_eq!(selected_by(&t, &key("88")), Some("lock-on-non-lockable"));
        // es: lock add [bx],al is fine on a P6.
        let t = test_with(&[0x26, 0xF0, 0x00, 0x07, 0xF4], &[(Reg::Bx, 0x10)], &[]);
        assert_eq!(selected_by(&t, &key("00")), None);
        // lock add al,bl: register destination.
        let t = test_with(&[0xF0, 0x00, 0xD8, 0xF4], &[], &[]);
        assert_eq!(selected_by(&t, &key("00")), Some("lock-on-non-lockable"));
        // lock xchg [bx],ax is lockable; lock xchg ax,cx is not.
        let t = test_with(&[0xF0, 0x87, 0x07, 0xF4], &[(Reg::Bx, 0x10)], &[]);
        assert_eq!(selected_by(&t, &key("87")), None);
        let t = test_with(&[0xF0, 0x91, 0xF4], &[], &[]);
        assert_eq!(selected_by(&t, &key("91")), Some("lock-on-non-lockable"));
        // An F0 byte that is an immediate, not a prefix.
        let t = test_with(&[0xB0, 0xF0, 0xF4], &[], &[]);
        assert_eq!(selected_by(&t, &key("B0")), None);
        // The 286 raised #UD itself (lock mov cs,ax): both agree.
        let t = raising(test_with(&[0xF0, 0x8E, 0xC8, 0xF4], &[], &[]), 6);
        assert_eq!(selected_by(&t, &key("8E")), None);
    }

    #[test]
    fn mov_sreg_selected_for_fs_and_gs_encodings() {
        let t = raising(test_with(&[0x8C, 0xE0, 0xF4], &[], &[]), 6);
        assert_eq!(selected_by(&t, &key("8C")), Some("mov-sreg-fs-gs"));
        let t = raising(test_with(&[0x2E, 0x8E, 0x2F, 0xF4], &[], &[]), 6);
        assert_eq!(selected_by(&t, &key("8E")), Some("mov-sreg-fs-gs"));
        let t = raising(test_with(&[0x8C, 0xF0, 0xF4], &[], &[]), 6);
        assert_eq!(selected_by(&t, &key("8C")), None);
        let t = test_with(&[0x8C, 0xD8, 0xF4], &[], &[]);
        assert_eq!(selected_by(&t, &key("8C")), None);
    }

    #[test]
    fn ss_overrun_selected_only_for_stack_segment_faults() {
        // leave with BP=FFFF: the pop reads SS:FFFF.
        let leave = test_with(&[0xC9, 0xF4], &[(Reg::Bp, 0xFFFF), (Reg::Sp, 0x100)], &[]);
        assert_eq!(selected_by(&raising(leave.clone(), 13), &key("C9")), Some("ss-overrun-vector"));
        assert_eq!(selected_by(&leave, &key("C9")), None);
        // mov ax,[bp+di] with BP+DI=FFFF is SS-relative.
        let t = test_with(&[0x8B, 0x03, 0xF4], &[(Reg::Bp, 0xFFF0), (Reg::Di, 0xF)], &[]);
        assert_eq!(selected_by(&raising(t, 13), &key("8B")), Some("ss-overrun-vector"));
        // mov ax,[bx] with BX=FFFF is DS-relative: a P6 raises #GP too.
        let t = test_with(&[0x8B, 0x07, 0xF4], &[(Reg::Bx, 0xFFFF)], &[]);
        assert_eq!(selected_by(&raising(t, 13), &key("8B")), None);
        // pop ax with SP=FFFF.
        let t = test_with(&[0x58, 0xF4], &[(Reg::Sp, 0xFFFF)], &[]);
        assert_eq!(selected_by(&raising(t, 13), &key("58")), Some("ss-overrun-vector"));
    }

    #[test]
    fn esc_selected_when_only_the_tail_of_the_operand_overruns() {
        // fadd dword [bx]
        let at = |bx| test_with(&[0xD8, 0x07, 0xF4], &[(Reg::Bx, bx)], &[]);
        assert_eq!(selected_by(&at(0xFFFE), &key("D8")), Some("esc-operand-overrun"));
        assert_eq!(selected_by(&at(0xFFFD), &key("D8")), Some("esc-operand-overrun"));
        assert_eq!(selected_by(&at(0xFFFC), &key("D8")), None);
        assert_eq!(selected_by(&raising(at(0xFFFF), 13), &key("D8")), None);
        // Register forms have no operand in memory.
        let t = test_with(&[0xD8, 0xC1, 0xF4], &[], &[]);
        assert_eq!(selected_by(&t, &key("D8")), None);
    }
}
