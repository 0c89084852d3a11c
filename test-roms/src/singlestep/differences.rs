//! Where a 286 in real mode behaves differently from the P6 ferrite
//! emulates. The suite was captured on a real 286; ferrite's CPU is meant to
//! match a P6, so tests that hit one of these behaviours are reported as
//! skipped with the reason, never counted as passes or failures.
//!
//! Each entry cites the behaviour and selects its tests by a rule over the
//! test (initial state and instruction bytes) and the opcode of its file.
//! Keep the rules narrow: a rule that selects tests a P6 would pass hides
//! coverage.
//!
//! Where a P6's outcome can be stated exactly, an entry of
//! [`ADJUSTMENTS`](super::ADJUSTMENTS) of the same name rewrites the test's
//! expectation into it and the test runs; the difference here then only
//! skips the tests the adjustment cannot express.

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
        name: "instruction-over-10-bytes",
        reason: "the 286 limits an instruction, prefixes included, to 10 bytes and raises \
                 interrupt 13 for a longer one (80286 PRM, exception 13; the suite shows 13), \
                 while a P6 allows 15 bytes (SDM vol. 2, 2.3.11 instruction length)",
        selects: longer_than_10_bytes,
    },
    Difference {
        name: "lock-on-non-lockable",
        reason: "a P6 raises #UD for LOCK on anything but a read-modify-write of a memory \
                 destination by ADD ADC AND BTC BTR BTS CMPXCHG CMPXCHG8B DEC INC NEG NOT OR \
                 SBB SUB XOR XADD XCHG (SDM vol. 2, LOCK), while the 286 executes the instruction",
        selects: lock_on_non_lockable,
    },
    Difference {
        name: "popf-iret-iopl-nt",
        reason: "a P6 in real mode loads IOPL and NT from the FLAGS image POPF/IRET pop \
                 (SDM vol. 2, POPF: real-address mode loads all non-reserved flags), \
                 while the 286 keeps bits 12-14 clear in real mode",
        selects: popf_iret_sets_iopl_nt,
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
        name: "string-overrun-registers",
        reason: "when a word string instruction overruns offset FFFFh the 286 raises interrupt \
                 13 with SI/DI (and CX under REP) already advanced past the faulting iteration, \
                 while a P6 faults with that iteration's registers unchanged \
                 (SDM vol. 3, 6.5: a fault restores the state before the faulting instruction)",
        selects: string_overrun,
    },
    Difference {
        name: "pop-mem-overrun-sp",
        reason: "POP to a memory operand past offset FFFFh raises interrupt 13 on the 286 with \
                 SP already incremented, while a P6 faults with SP unchanged \
                 (SDM vol. 3, 6.5: a fault restores the state before the faulting instruction)",
        selects: pop_mem_overrun,
    },
    Difference {
        name: "aam-zero-flags",
        reason: "AAM with a zero immediate updates SF, ZF and PF on the 286 before it raises the \
                 divide error, while a P6's #DE fault leaves FLAGS as they were \
                 (SDM vol. 2, AAM; vol. 3, 6.5)",
        selects: aam_zero,
    },
    Difference {
        name: "idiv-quotient-overflow",
        reason: "the 286 completed some IDIVs whose true quotient does not fit the destination \
                 without raising the divide error (F6.7 #952: AX=81C1h / 124 = -260 stored \
                 AX=C180h), while a P6 raises #DE whenever the quotient overflows \
                 (SDM vol. 2, IDIV)",
        selects: idiv_quotient_overflow,
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

/// More than 10 bytes from the first prefix to the end of the instruction.
fn longer_than_10_bytes(test: &TestCase, _key: &OpcodeKey) -> bool {
    insn::decode(&test.bytes).len() > 10
}

/// POPF (9D) or IRET (CF) completing normally with a FLAGS image that has
/// any of IOPL (bits 12-13) or NT (bit 14) set. The image is at SS:SP for
/// POPF and SS:SP+4 for IRET (after IP and CS), in the initial RAM.
pub(crate) fn popf_iret_sets_iopl_nt(test: &TestCase, key: &OpcodeKey) -> bool {
    matches!(key.value(), 0x9D | 0xCF)
        && test.exception.is_none()
        && popped_flags_image(test).is_some_and(|w| w & 0x7000 != 0)
}

/// The FLAGS image a POPF (9D) or IRET (CF) test pops, from the initial
/// RAM: at SS:SP for POPF, SS:SP+4 for IRET (offsets wrap within SS).
pub(crate) fn popped_flags_image(test: &TestCase) -> Option<u16> {
    let offset: u16 = match insn::opcode_of(&test.bytes)?.1 {
        0x9D => 0,
        0xCF => 4,
        _ => return None,
    };
    let (ss, sp) = (test.initial.reg(Reg::Ss)?, test.initial.reg(Reg::Sp)?);
    let at = sp.wrapping_add(offset);
    let lo = test.initial_byte(((ss as u32) << 4) + at as u32)?;
    let hi = test.initial_byte(((ss as u32) << 4) + at.wrapping_add(1) as u32)?;
    Some(u16::from_le_bytes([lo, hi]))
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
pub(crate) fn lock_on_non_lockable(test: &TestCase, _key: &OpcodeKey) -> bool {
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

/// INS, OUTS, MOVS, CMPS, STOS, LODS, SCAS that raised interrupt 13 (only a
/// word access at offset FFFFh does in real mode).
fn string_overrun(test: &TestCase, key: &OpcodeKey) -> bool {
    matches!(key.value(), 0x6C..=0x6F | 0xA4..=0xA7 | 0xAA..=0xAF) && expected_vector(test) == Some(13)
}

/// POP r/m16 (8F) that raised interrupt 13.
fn pop_mem_overrun(test: &TestCase, key: &OpcodeKey) -> bool {
    key.value() == 0x8F && expected_vector(test) == Some(13)
}

/// AAM (D4) that raised the divide error (immediate 0).
fn aam_zero(test: &TestCase, key: &OpcodeKey) -> bool {
    key.value() == 0xD4 && expected_vector(test) == Some(0)
}

/// IDIV (F6 /7, F7 /7) that completed without an exception although its
/// true quotient does not fit AL (AX) or the divisor is zero, computed from
/// the initial registers and RAM.
fn idiv_quotient_overflow(test: &TestCase, key: &OpcodeKey) -> bool {
    let word = match key.value() {
        0xF6 => false,
        0xF7 => true,
        _ => return false,
    };
    if insn::modrm_reg(&test.bytes) != Some(7) || test.exception.is_some() {
        return false;
    }
    let instr = insn::decode(&test.bytes);
    let (Some(divisor), Some(ax)) = (insn::initial_operand(test, &instr, 0), test.initial.reg(Reg::Ax)) else {
        return false;
    };
    let (dividend, divisor, range) = if word {
        let Some(dx) = test.initial.reg(Reg::Dx) else { return false };
        let dividend = (((dx as u32) << 16) | ax as u32) as i32 as i64;
        (dividend, divisor as i16 as i64, i16::MIN as i64..=i16::MAX as i64)
    } else {
        (ax as i16 as i64, divisor as u8 as i8 as i64, i8::MIN as i64..=i8::MAX as i64)
    };
    // Rust's division truncates toward zero, as IDIV does.
    divisor == 0 || !range.contains(&(dividend / divisor))
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
    fn instructions_over_10_bytes_selected() {
        // 5 segment prefixes + add word [si+1DDFh],7693h: 11 bytes.
        let long = [0x2E, 0x36, 0x2E, 0x3E, 0x3E, 0x81, 0x84, 0xDF, 0x1D, 0x93, 0x76, 0xF4];
        let t = raising(test_with(&long, &[], &[]), 13);
        assert_eq!(selected_by(&t, &key("81")), Some("instruction-over-10-bytes"));
        // One prefix fewer: 10 bytes, which the 286 runs.
        let t = test_with(&long[1..], &[], &[]);
        assert_eq!(selected_by(&t, &key("81")), None);
    }

    #[test]
    fn string_overrun_selected_for_string_faults_only() {
        let movsw = test_with(&[0xA5, 0xF4], &[(Reg::Si, 0xFFFF)], &[]);
        assert_eq!(selected_by(&raising(movsw.clone(), 13), &key("A5")), Some("string-overrun-registers"));
        assert_eq!(selected_by(&movsw, &key("A5")), None);
        let insw = raising(test_with(&[0xF3, 0x6D, 0xF4], &[(Reg::Di, 0xFFFF)], &[]), 13);
        assert_eq!(selected_by(&insw, &key("6D")), Some("string-overrun-registers"));
        // A word access at FFFF through DS by a non-string instruction.
        let t = raising(test_with(&[0x8B, 0x07, 0xF4], &[(Reg::Bx, 0xFFFF)], &[]), 13);
        assert_eq!(selected_by(&t, &key("8B")), None);
    }

    #[test]
    fn pop_to_memory_and_aam_faults_selected() {
        let pop = test_with(&[0x8F, 0x04, 0xF4], &[(Reg::Si, 0xFFFF), (Reg::Sp, 0x100)], &[]);
        assert_eq!(selected_by(&raising(pop.clone(), 13), &key("8F")), Some("pop-mem-overrun-sp"));
        assert_eq!(selected_by(&pop, &key("8F")), None);
        // 8F /1 is #UD on both.
        let t = raising(test_with(&[0x8F, 0x0C, 0xF4], &[], &[]), 6);
        assert_eq!(selected_by(&t, &key("8F")), None);

        let aam = test_with(&[0xD4, 0x00, 0xF4], &[], &[]);
        assert_eq!(selected_by(&raising(aam.clone(), 0), &key("D4")), Some("aam-zero-flags"));
        assert_eq!(selected_by(&test_with(&[0xD4, 0x0A, 0xF4], &[], &[]), &key("D4")), None);
    }

    #[test]
    fn idiv_selected_when_the_quotient_overflows_without_an_exception() {
        // F6.7 #952: idiv byte [si], AX=81C1h (-32319), [DS:SI]=124: -260.
        let regs = [(Reg::Ax, 0x81C1), (Reg::Ds, 0x9AF7), (Reg::Si, 0x4CF2)];
        let t = test_with(&[0xF6, 0x3C, 0xF4], &regs, &[(0x9FC62, 124)]);
        let f67 = OpcodeKey { opcode: "F6".into(), reg: Some(7) };
        assert_eq!(selected_by(&t, &f67), Some("idiv-quotient-overflow"));
        // The same with the #DE the 286 should have raised: both agree.
        assert_eq!(selected_by(&raising(t, 0), &f67), None);
        // -128 fits a signed byte: -256 / 2.
        let t = test_with(&[0xF6, 0xF9, 0xF4], &[(Reg::Ax, 0xFF00), (Reg::Cx, 0x0002)], &[]);
        assert_eq!(selected_by(&t, &f67), None);
        // -258 / 2 = -129 does not (idiv cl).
        let t = test_with(&[0xF6, 0xF9, 0xF4], &[(Reg::Ax, 0xFEFE), (Reg::Cx, 0x0002)], &[]);
        assert_eq!(selected_by(&t, &f67), Some("idiv-quotient-overflow"));
        // idiv ch: the divisor is the high byte.
        let t = test_with(&[0xF6, 0xFD, 0xF4], &[(Reg::Ax, 0x0100), (Reg::Cx, 0x0201)], &[]);
        assert_eq!(selected_by(&t, &f67), Some("idiv-quotient-overflow"));
        // Word: DX:AX = 0001_0000h / 2 = 8000h overflows; / 4 = 4000h fits.
        let f77 = OpcodeKey { opcode: "F7".into(), reg: Some(7) };
        let regs = |bx| [(Reg::Dx, 0x0001), (Reg::Ax, 0x0000), (Reg::Bx, bx)];
        let idiv_bx = |bx| test_with(&[0xF7, 0xFB, 0xF4], &regs(bx), &[]);
        assert_eq!(selected_by(&idiv_bx(2), &f77), Some("idiv-quotient-overflow"));
        assert_eq!(selected_by(&idiv_bx(4), &f77), None);
        // div (reg 6) is another rule's business.
        let t = test_with(&[0xF7, 0xF3, 0xF4], &regs(2), &[]);
        assert_eq!(selected_by(&t, &key("F7")), None);
    }
}
