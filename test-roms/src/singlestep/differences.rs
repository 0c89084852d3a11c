//! Where a 286 or a 386 in real mode behaves differently from the P6
//! ferrite emulates. The suites were captured on a real 286 and a 386EX;
//! ferrite's CPU is meant to match a P6, so tests that hit one of these
//! behaviours are reported as skipped with the reason, never counted as
//! passes or failures.
//!
//! Each entry cites the behaviour and selects its tests by a rule over the
//! test (its [`Arch`], initial state and instruction bytes) and the opcode
//! of its file. Rules about one CPU check the test's architecture: the 386
//! shares some of the P6's behaviours the 286 lacks (IOPL and NT in real
//! mode, FS and GS, the 15-byte limit) and has differences of its own
//! (test registers, reserved bits of CR0, DR6 and DR7, undefined results).
//! Keep the rules narrow: a rule that selects tests a P6 would pass hides
//! coverage.
//!
//! Where a P6's outcome can be stated exactly, an entry of
//! [`ADJUSTMENTS`](super::ADJUSTMENTS) of the same name rewrites the test's
//! expectation into it and the test runs; the difference here then only
//! skips the tests the adjustment cannot express.

use iced_x86::{Mnemonic, OpKind, Register};

use super::insn;
use super::{Arch, OpcodeKey, Reg, TestCase};

/// One documented 286- or 386-versus-P6 difference.
#[derive(Debug)]
pub struct Difference {
    /// Short stable name, used in listings and the scoreboard.
    pub name: &'static str,
    /// One sentence: what the 286 or 386 does, what a P6 does, and where
    /// that is documented.
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
        name: "instruction-over-15-bytes",
        reason: "an instruction longer than 15 bytes, prefixes included, raises #GP (interrupt 13) \
                 on a P6 (SDM vol. 2, 2.3.11 instruction length; vol. 3, 6.15 interrupt 13), \
                 while the 386EX suite records another outcome (its README: interrupt 6)",
        selects: over_15_bytes_not_gp,
    },
    Difference {
        name: "lock-on-non-lockable",
        reason: "a P6 raises #UD for LOCK on anything but a read-modify-write of a memory \
                 destination by ADD ADC AND BTC BTR BTS CMPXCHG CMPXCHG8B DEC INC NEG NOT OR \
                 SBB SUB XOR XADD XCHG (SDM vol. 2, LOCK), while the 286 executes the instruction \
                 and the 386 also accepts LOCK BT (386 PRM, LOCK)",
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
        reason: "AAM with a zero immediate updates SF, ZF and PF on the 286 (and where the suite \
                 shows it, the 386) before it raises the divide error, while a P6's #DE fault \
                 leaves FLAGS as they were (SDM vol. 2, AAM; vol. 3, 6.5)",
        selects: aam_zero,
    },
    Difference {
        name: "idiv-quotient-overflow",
        reason: "the 286 completed some IDIVs whose true quotient does not fit the destination \
                 without raising the divide error (F6.7 #952: AX=81C1h / 124 = -260 stored \
                 AX=C180h; the rule also selects 386 tests that show it), while a P6 raises #DE \
                 whenever the quotient overflows (SDM vol. 2, IDIV)",
        selects: idiv_quotient_overflow,
    },
    Difference {
        name: "mov-test-register",
        reason: "the 386 has the TLB test registers TR6 and TR7 (MOV 0F 24 and 0F 26; 386 PRM, \
                 test registers), which a P6 no longer has: it raises #UD for these encodings \
                 (SDM vol. 3, chapter 22 architecture compatibility: test registers)",
        selects: mov_test_register,
    },
    Difference {
        name: "umov",
        reason: "the 386 executes the undocumented UMOV (0F 10 to 0F 13, a MOV for in-circuit \
                 emulators), while a P6 raises #UD for these opcodes (Pentium Pro and Pentium II; \
                 later CPUs decode SSE moves there; SDM vol. 2, opcode map table A-3)",
        selects: umov,
    },
    Difference {
        name: "mov-cr4",
        reason: "the 386 has no CR4 and raises #UD for MOV to or from it (0F 20 and 0F 22 with \
                 reg field 4), while a P6 reads CR4 and loads it, raising #GP for reserved bits \
                 (SDM vol. 2, MOV control registers)",
        selects: mov_cr4,
    },
    Difference {
        name: "mov-cr0-cache-bits",
        reason: "MOV CR0 with NW set and CD clear raises #GP on a P6 (SDM vol. 2, MOV control \
                 registers: invalid bit combination), while the 386, where both bits are \
                 reserved, loads the value",
        selects: mov_cr0_nw_without_cd,
    },
    Difference {
        name: "cr-dr-reserved-bits",
        reason: "SMSW and MOV from CR0, CR2, CR3 and DR0-DR7 read what the register holds: the \
                 386EX returns its reserved bits (ones in CR0 bits 5-30, its own in DR6 and \
                 DR7) and registers the suite does not list (CR2, DR0-DR3), while a P6 returns \
                 its defined bits and the values the runner loaded \
                 (SDM vol. 3, 2.5 control registers and 17.2 debug registers)",
        selects: reads_control_or_debug_register,
    },
    Difference {
        name: "descriptor-table-store",
        reason: "SGDT and SIDT store GDTR and IDTR, which the suite does not list: the 386EX \
                 stores what its test generator loaded, a P6 what the runner's RESET state \
                 holds (GDTR base 0 limit FFFFh, IDTR base 0 limit 3FFh; SDM vol. 3, 9.1.1), \
                 the base in full with either operand size (SDM vol. 2, SGDT)",
        selects: stores_descriptor_table,
    },
    Difference {
        name: "bit-scan-zero-source",
        reason: "BSF and BSR with a zero source leave the destination undefined \
                 (SDM vol. 2, BSF/BSR), where the 386 and a P6 may differ",
        selects: bit_scan_zero_source,
    },
    Difference {
        name: "shift-double-over-16",
        reason: "SHLD and SHRD of a 16-bit operand by a (5-bit masked) count over 16 leave the \
                 destination and the flags undefined (SDM vol. 2, SHLD/SHRD), where the 386 \
                 and a P6 may differ",
        selects: shift_double_over_16,
    },
    Difference {
        name: "segment-push-padding",
        reason: "with a 32-bit operand size PUSH Sreg and CALL FAR (for CS) fill a 4-byte stack \
                 slot whose upper two bytes a P6 either zeroes or leaves unwritten \
                 (SDM vol. 2, PUSH and CALL), so they are undefined",
        selects: segment_push_padding,
    },
    Difference {
        name: "mov-sreg-r32-upper",
        reason: "MOV r32,Sreg fills the upper half of the register with zeros on a P6 \
                 (SDM vol. 2, MOV: P6 family), while it is undefined on the 386",
        selects: mov_sreg_to_r32,
    },
    Difference {
        name: "pushf-reserved-bits",
        reason: "PUSHF and PUSHFD store the FLAGS image with the reserved bits as the CPU holds \
                 them: a P6 stores bit 1 set, bits 3, 5, 15 and 22-31 clear and VM and RF \
                 cleared in the image (SDM vol. 2, PUSHF), while the 386EX stores its own \
                 (the suite reports its reserved EFLAGS bits as ones)",
        selects: pushf_reserved_bits,
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

/// A 286 test: more than 10 bytes from the first prefix to the end of the
/// instruction.
fn longer_than_10_bytes(test: &TestCase, _key: &OpcodeKey) -> bool {
    test.arch == Arch::I286 && insn::decode(&test.bytes).len() > 10
}

/// A 386 test of an instruction over 15 bytes whose recorded outcome is not
/// the P6's #GP.
pub(crate) fn over_15_bytes_not_gp(test: &TestCase, _key: &OpcodeKey) -> bool {
    test.arch == Arch::I386 && expected_vector(test) != Some(13) && insn::length(&test.bytes).is_some_and(|n| n > 15)
}

/// A 286 test of POPF (9D) or IRET (CF) completing normally with a FLAGS
/// image that has any of IOPL (bits 12-13) or NT (bit 14) set. The image is
/// at SS:SP for POPF and SS:SP+4 for IRET (after IP and CS), in the initial
/// RAM. (The 386 loads IOPL and NT in real mode, as a P6 does.)
pub(crate) fn popf_iret_sets_iopl_nt(test: &TestCase, key: &OpcodeKey) -> bool {
    test.arch == Arch::I286
        && matches!(key.value(), 0x9D | 0xCF)
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

/// A LOCK prefix on an instruction a P6 rejects it for, unless the 286 or
/// 386 raised #UD anyway (then both agree).
pub(crate) fn lock_on_non_lockable(test: &TestCase, _key: &OpcodeKey) -> bool {
    if !insn::has_lock_prefix(&test.bytes) || expected_vector(test) == Some(6) {
        return false;
    }
    let instr = insn::decode(&test.bytes);
    let lockable = LOCKABLE.contains(&instr.mnemonic()) || instr.mnemonic() == Mnemonic::Xchg;
    !(lockable && instr.op0_kind() == OpKind::Memory)
}

/// A 286 test of MOV r/m16,Sreg (8C) or MOV Sreg,r/m16 (8E) with reg field
/// 4 or 5.
fn mov_sreg_fs_gs(test: &TestCase, key: &OpcodeKey) -> bool {
    test.arch == Arch::I286 && matches!(key.value(), 0x8C | 0x8E) && matches!(insn::modrm_reg(&test.bytes), Some(4 | 5))
}

/// A 286 test that raised interrupt 13 where the only overrunning access
/// is through SS (stack operations, BP-based or SS-overridden operands).
fn ss_overrun_vector(test: &TestCase, _key: &OpcodeKey) -> bool {
    if test.arch != Arch::I286 || expected_vector(test) != Some(13) {
        return false;
    }
    let accesses = insn::memory_accesses(test);
    let through_ss = accesses.iter().any(|a| a.segment == Register::SS && a.overruns());
    let elsewhere = accesses.iter().any(|a| a.segment != Register::SS && a.overruns());
    through_ss && !elsewhere
}

/// A 286 test of INS, OUTS, MOVS, CMPS, STOS, LODS, SCAS that raised
/// interrupt 13 (only a word access at offset FFFFh does in real mode).
fn string_overrun(test: &TestCase, key: &OpcodeKey) -> bool {
    test.arch == Arch::I286
        && matches!(key.value(), 0x6C..=0x6F | 0xA4..=0xA7 | 0xAA..=0xAF)
        && expected_vector(test) == Some(13)
}

/// A 286 test of POP r/m16 (8F) that raised interrupt 13.
fn pop_mem_overrun(test: &TestCase, key: &OpcodeKey) -> bool {
    test.arch == Arch::I286 && key.value() == 0x8F && expected_vector(test) == Some(13)
}

/// AAM (D4) that raised the divide error (immediate 0): every 286 test, and
/// the 386 tests whose FLAGS (final or pushed) show arithmetic flags other
/// than the initial ones.
pub(crate) fn aam_zero(test: &TestCase, key: &OpcodeKey) -> bool {
    if key.value() != 0xD4 || expected_vector(test) != Some(0) {
        return false;
    }
    match test.arch {
        Arch::I286 => true,
        Arch::I386 => aam_changed_flags(test),
    }
}

/// The arithmetic flags (SF, ZF, PF: those AAM defines) of the final FLAGS
/// or the pushed FLAGS word differ from the initial ones.
fn aam_changed_flags(test: &TestCase) -> bool {
    const AAM_DEFINED: u32 = 0x00C4;
    let Some(initial) = test.initial.reg32(Reg::Flags) else { return false };
    let final_differs = test.expected_reg32(Reg::Flags).is_some_and(|f| (f ^ initial) & AAM_DEFINED != 0);
    let pushed = test.exception.and_then(|e| {
        let lo = test.expected_byte(e.flag_address)?;
        let hi = test.expected_byte(e.flag_address.wrapping_add(1))?;
        Some(u16::from_le_bytes([lo, hi]) as u32)
    });
    final_differs || pushed.is_some_and(|p| (p ^ initial) & AAM_DEFINED != 0)
}

/// IDIV (F6 /7, F7 /7, with 66 the 32-bit form) that completed without an
/// exception although its true quotient does not fit AL, AX or EAX or the
/// divisor is zero, computed from the initial registers and RAM.
fn idiv_quotient_overflow(test: &TestCase, key: &OpcodeKey) -> bool {
    if !matches!(key.value(), 0xF6 | 0xF7) || insn::modrm_reg(&test.bytes) != Some(7) || test.exception.is_some() {
        return false;
    }
    let instr = insn::decode(&test.bytes);
    let (Some(divisor), Some(eax)) = (insn::initial_operand(test, &instr, 0), test.initial.reg32(Reg::Ax)) else {
        return false;
    };
    let edx = test.initial.reg32(Reg::Dx);
    let (dividend, divisor, bits) = match operand_mask(&instr, 0) {
        0xFF => (eax as u16 as i16 as i128, divisor as u8 as i8 as i128, 8),
        0xFFFF => {
            let Some(dx) = edx else { return false };
            ((((dx & 0xFFFF) << 16) | (eax & 0xFFFF)) as i32 as i128, divisor as u16 as i16 as i128, 16)
        }
        _ => {
            let Some(edx) = edx else { return false };
            ((((edx as u64) << 32) | eax as u64) as i64 as i128, divisor as i32 as i128, 32)
        }
    };
    let range = -(1i128 << (bits - 1))..=(1i128 << (bits - 1)) - 1;
    // Rust's division truncates toward zero, as IDIV does.
    divisor == 0 || !range.contains(&(dividend / divisor))
}

/// A 386 test of MOV to or from a test register (0F 24, 0F 26) that the
/// 386 executed.
pub(crate) fn mov_test_register(test: &TestCase, key: &OpcodeKey) -> bool {
    test.arch == Arch::I386 && matches!(key.value(), 0x0F24 | 0x0F26) && test.exception.is_none()
}

/// A 386 test of UMOV (0F 10 to 0F 13) that the 386 executed.
pub(crate) fn umov(test: &TestCase, key: &OpcodeKey) -> bool {
    test.arch == Arch::I386 && matches!(key.value(), 0x0F10..=0x0F13) && test.exception.is_none()
}

/// A 386 test of MOV from or to CR4 (0F 20 /4, 0F 22 /4).
pub(crate) fn mov_cr4(test: &TestCase, key: &OpcodeKey) -> bool {
    test.arch == Arch::I386 && matches!(key.value(), 0x0F20 | 0x0F22) && insn::modrm_reg(&test.bytes) == Some(4)
}

/// The source value of a MOV CR0,r32 (0F 22 /0) a 386 test executed.
fn mov_to_cr0_value(test: &TestCase, key: &OpcodeKey) -> Option<u32> {
    if test.arch != Arch::I386 || key.value() != 0x0F22 || test.exception.is_some() {
        return None;
    }
    if insn::modrm_reg(&test.bytes) != Some(0) {
        return None;
    }
    let instr = insn::decode(&test.bytes);
    insn::initial_register(test, instr.op1_register())
}

/// A 386 test of MOV CR0,r32 that completed with NW (bit 29) set and CD
/// (bit 30) clear in the value.
pub(crate) fn mov_cr0_nw_without_cd(test: &TestCase, key: &OpcodeKey) -> bool {
    mov_to_cr0_value(test, key).is_some_and(|v| v & (3 << 29) == 1 << 29)
}

/// A 386 test that completed an SMSW (0F 01 /4) or a MOV from CR0, CR2,
/// CR3 (0F 20) or a debug register (0F 21).
pub(crate) fn reads_control_or_debug_register(test: &TestCase, key: &OpcodeKey) -> bool {
    if test.arch != Arch::I386 || test.exception.is_some() {
        return false;
    }
    let reg = insn::modrm_reg(&test.bytes);
    match key.value() {
        0x0F01 => reg == Some(4),
        0x0F20 => matches!(reg, Some(0 | 2 | 3)),
        0x0F21 => reg.is_some(),
        _ => false,
    }
}

/// A 386 test that completed an SGDT (0F 01 /0) or SIDT (0F 01 /1) to
/// memory.
pub(crate) fn stores_descriptor_table(test: &TestCase, key: &OpcodeKey) -> bool {
    test.arch == Arch::I386
        && key.value() == 0x0F01
        && test.exception.is_none()
        && matches!(insn::modrm(&test.bytes), Some(m) if m >> 6 != 3 && (m >> 3) & 7 <= 1)
}

/// A 386 test that completed a BSF or BSR (0F BC, 0F BD) of a zero source.
pub(crate) fn bit_scan_zero_source(test: &TestCase, key: &OpcodeKey) -> bool {
    if test.arch != Arch::I386 || !matches!(key.value(), 0x0FBC | 0x0FBD) || test.exception.is_some() {
        return false;
    }
    let instr = insn::decode(&test.bytes);
    insn::initial_operand(test, &instr, 1).is_some_and(|v| v & operand_mask(&instr, 1) == 0)
}

/// The bits of operand `n` (by its size: 8, 16 or 32 bits).
fn operand_mask(instr: &iced_x86::Instruction, n: u32) -> u32 {
    let bytes = match instr.op_kind(n) {
        OpKind::Register => instr.op_register(n).size(),
        OpKind::Memory => instr.memory_size().size(),
        _ => 4,
    };
    match bytes {
        1 => 0xFF,
        2 => 0xFFFF,
        _ => u32::MAX,
    }
}

/// The shift count of a 386 test's SHLD or SHRD of a 16-bit operand (0F A4,
/// 0F AC with an immediate, 0F A5, 0F AD with CL), masked to 5 bits as the
/// CPU does.
fn shift_double_16_count(test: &TestCase, key: &OpcodeKey) -> Option<u32> {
    if test.arch != Arch::I386 || test.exception.is_some() {
        return None;
    }
    let instr = insn::decode(&test.bytes);
    if operand_mask(&instr, 0) != 0xFFFF {
        return None;
    }
    let count = match key.value() {
        0x0FA4 | 0x0FAC => instr.immediate8() as u32,
        0x0FA5 | 0x0FAD => test.initial.reg32(Reg::Cx)? & 0xFF,
        _ => return None,
    };
    Some(count & 31)
}

/// A 386 test of a 16-bit SHLD or SHRD by a count over 16.
pub(crate) fn shift_double_over_16(test: &TestCase, key: &OpcodeKey) -> bool {
    shift_double_16_count(test, key).is_some_and(|c| c > 16)
}

/// A 386 test that completed a PUSH Sreg (06 0E 16 1E, 0F A0, 0F A8) or a
/// CALL FAR (9A, FF /3) with a 32-bit operand size: the first slot it
/// pushes holds a selector.
pub(crate) fn segment_push_padding(test: &TestCase, key: &OpcodeKey) -> bool {
    if test.arch != Arch::I386 || test.exception.is_some() || !insn::has_operand_size_prefix(&test.bytes) {
        return false;
    }
    match key.value() {
        0x06 | 0x0E | 0x16 | 0x1E | 0x0FA0 | 0x0FA8 | 0x9A => true,
        0xFF => insn::modrm_reg(&test.bytes) == Some(3),
        _ => false,
    }
}

/// A 386 test that completed a MOV r32,Sreg (66 8C with a register
/// operand).
pub(crate) fn mov_sreg_to_r32(test: &TestCase, key: &OpcodeKey) -> bool {
    test.arch == Arch::I386
        && key.value() == 0x8C
        && test.exception.is_none()
        && insn::has_operand_size_prefix(&test.bytes)
        && insn::modrm(&test.bytes).is_some_and(|m| m >> 6 == 3)
}

/// A 386 test that completed a PUSHF or PUSHFD (9C) storing an image whose
/// reserved bits differ from what a P6 stores ([`p6_pushf_image`]).
pub(crate) fn pushf_reserved_bits(test: &TestCase, key: &OpcodeKey) -> bool {
    pushf_image(test, key).is_some_and(|(_, size, image)| p6_pushf_image(test, size, image) != Some(image))
}

/// The FLAGS image a 386 test's PUSHF (2 bytes) or PUSHFD (4 bytes) stored:
/// its physical address, size and value from the expected RAM.
pub(crate) fn pushf_image(test: &TestCase, key: &OpcodeKey) -> Option<(u32, u32, u32)> {
    if test.arch != Arch::I386 || key.value() != 0x9C || test.exception.is_some() {
        return None;
    }
    let size = if insn::has_operand_size_prefix(&test.bytes) { 4 } else { 2 };
    let (ss, sp) = (test.initial.reg(Reg::Ss)? as u32, test.initial.reg(Reg::Sp)?);
    let slot = sp.wrapping_sub(size as u16);
    let mut bytes = [0u8; 4];
    for (i, b) in bytes.iter_mut().take(size as usize).enumerate() {
        *b = test.expected_byte((ss << 4) + slot.wrapping_add(i as u16) as u32)?;
    }
    // A slot straddling offset FFFFh faults on a P6.
    (slot as u32 + size <= 0x1_0000).then_some(((ss << 4) + slot as u32, size, u32::from_le_bytes(bytes)))
}

/// What a P6 stores for a PUSHF(D) whose 386 image is `image`: the flags
/// both define from the image, the reserved bits as the P6 holds them (the
/// runner loaded none of bits 18-31, bit 1 reads as one, 3, 5 and 15 as
/// zero) and VM and RF cleared (SDM vol. 2, PUSHF).
pub(crate) fn p6_pushf_image(test: &TestCase, size: u32, image: u32) -> Option<u32> {
    const BOTH_DEFINE: u32 = 0x0000_7FD5;
    let loaded = super::runner::loaded_eflags(Arch::I386, test.initial.reg32(Reg::Flags)?);
    let p6 = (image & BOTH_DEFINE) | (loaded & !BOTH_DEFINE & 0x00FC_FFFF);
    Some(if size == 2 { p6 & 0xFFFF } else { p6 })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::singlestep::{Exception, State};

    fn key(op: &str) -> OpcodeKey {
        OpcodeKey::new(op, None)
    }

    fn test_with(bytes: &[u8], regs: &[(Reg, u16)], ram: &[(u32, u8)]) -> TestCase {
        let mut initial = State::default();
        for &(r, v) in regs {
            initial.regs[r.index()] = Some(v.into());
        }
        initial.ram = ram.to_vec();
        TestCase { bytes: bytes.to_vec(), initial, ..TestCase::default() }
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
    fn rules_about_the_286_do_not_select_386_tests() {
        let as_386 = |mut t: TestCase| {
            t.arch = Arch::I386;
            t
        };
        // POPF loading IOPL: the 386 does so too.
        let regs = [(Reg::Ss, 0x1000), (Reg::Sp, 0xFFFE)];
        let popf = test_with(&[0x9D, 0xF4], &regs, &[(0x1FFFE, 0x02), (0x1FFFF, 0x30)]);
        assert_eq!(selected_by(&popf, &key("9D")), Some("popf-iret-iopl-nt"));
        assert_eq!(selected_by(&as_386(popf), &key("9D")), None);
        // MOV to FS, SS overruns, string faults, POP to memory, 11 bytes.
        let mov_fs = raising(test_with(&[0x8E, 0xE0, 0xF4], &[], &[]), 6);
        assert_eq!(selected_by(&as_386(mov_fs), &key("8E")), None);
        let leave = raising(test_with(&[0xC9, 0xF4], &[(Reg::Bp, 0xFFFF), (Reg::Sp, 0x100)], &[]), 13);
        assert_eq!(selected_by(&as_386(leave), &key("C9")), None);
        let movsw = raising(test_with(&[0xA5, 0xF4], &[(Reg::Si, 0xFFFF)], &[]), 13);
        assert_eq!(selected_by(&as_386(movsw), &key("A5")), None);
        let pop = raising(test_with(&[0x8F, 0x04, 0xF4], &[(Reg::Si, 0xFFFF)], &[]), 13);
        assert_eq!(selected_by(&as_386(pop), &key("8F")), None);
        let long = [0x2E, 0x36, 0x2E, 0x3E, 0x3E, 0x81, 0x84, 0xDF, 0x1D, 0x93, 0x76, 0xF4];
        assert_eq!(selected_by(&as_386(test_with(&long, &[], &[])), &key("81")), None);
        // LOCK misuse applies to both.
        let lock = test_with(&[0xF0, 0x88, 0x07, 0xF4], &[(Reg::Bx, 0x10)], &[]);
        assert_eq!(selected_by(&as_386(lock), &key("88")), Some("lock-on-non-lockable"));
    }

    #[test]
    fn rules_about_the_386_do_not_select_286_tests() {
        let t = test_with(&[0x0F, 0x24, 0xF0, 0xF4], &[], &[]);
        assert_eq!(selected_by(&t, &key("0F24")), None);
        let mut t386 = t.clone();
        t386.arch = Arch::I386;
        assert_eq!(selected_by(&t386, &key("0F24")), Some("mov-test-register"));
        let pushf =
            test_with(&[0x9C, 0xF4], &[(Reg::Ss, 0x1000), (Reg::Sp, 0x10)], &[(0x1000E, 0xFF), (0x1000F, 0xFF)]);
        assert_eq!(selected_by(&pushf, &key("9C")), None);
    }

    #[test]
    fn lock_bt_is_lockable_on_the_386_but_not_on_a_p6() {
        let mut t = test_with(&[0xF0, 0x0F, 0xBA, 0x27, 0x03, 0xF4], &[(Reg::Bx, 0x10)], &[]);
        t.arch = Arch::I386;
        assert_eq!(selected_by(&t, &key("0FBA")), Some("lock-on-non-lockable"));
        // lock bts [bx],3 is lockable on both.
        let mut t = test_with(&[0xF0, 0x0F, 0xBA, 0x2F, 0x03, 0xF4], &[(Reg::Bx, 0x10)], &[]);
        t.arch = Arch::I386;
        assert_eq!(selected_by(&t, &key("0FBA")), None);
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
        let f67 = OpcodeKey::new("F6", Some(7));
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
        // A 386 test of the 32-bit form: EDX:EAX = 1_0000_0000h / 2 overflows.
        let mut t = test_with(&[0x66, 0xF7, 0xFB, 0xF4], &[], &[]);
        t.arch = Arch::I386;
        t.initial.regs[Reg::Dx.index()] = Some(1);
        t.initial.regs[Reg::Ax.index()] = Some(0);
        t.initial.regs[Reg::Bx.index()] = Some(2);
        assert_eq!(selected_by(&t, &OpcodeKey::new("F7", Some(7))), Some("idiv-quotient-overflow"));
        t.initial.regs[Reg::Bx.index()] = Some(4);
        assert_eq!(selected_by(&t, &OpcodeKey::new("F7", Some(7))), None);
        // Word: DX:AX = 0001_0000h / 2 = 8000h overflows; / 4 = 4000h fits.
        let f77 = OpcodeKey::new("F7", Some(7));
        let regs = |bx| [(Reg::Dx, 0x0001), (Reg::Ax, 0x0000), (Reg::Bx, bx)];
        let idiv_bx = |bx| test_with(&[0xF7, 0xFB, 0xF4], &regs(bx), &[]);
        assert_eq!(selected_by(&idiv_bx(2), &f77), Some("idiv-quotient-overflow"));
        assert_eq!(selected_by(&idiv_bx(4), &f77), None);
        // div (reg 6) is another rule's business.
        let t = test_with(&[0xF7, 0xF3, 0xF4], &regs(2), &[]);
        assert_eq!(selected_by(&t, &key("F7")), None);
    }
}
