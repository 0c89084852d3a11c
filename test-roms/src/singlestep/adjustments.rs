//! Where the 286's or 386's result is not what a P6 must do, but the P6's
//! result can still be stated exactly: instead of skipping such a test (see
//! [`differences`](super::differences)), its expected outcome is rewritten
//! into the P6's architected one and the test runs like any other, counted
//! as passed or failed. Where the P6's result is undefined, the rewrite
//! masks exactly the undefined bits or bytes and compares the rest.
//!
//! Each adjustment shares its name with the entry of
//! [`DIFFERENCES`](super::DIFFERENCES) that describes the 286's or 386's
//! behaviour. A test the adjustment selects but cannot rewrite (its
//! `adjust` returns `None`) falls through to that entry and is skipped
//! under it.

use ferrite_core::cpu::state::CpuState;

use super::runner::{
    loaded_cr0, loaded_dr6, loaded_dr7, loaded_eflags, pushed_flags_address, CR0_COMPARED_386, CR3_COMPARED_386,
    DR6_COMPARED_386, DR7_COMPARED_386,
};
use super::{differences, insn, Arch, Exception, OpcodeKey, Reg, State, TestCase, NUM_REGS};

/// One rewrite of the 286's or 386's expected outcome into the P6's.
#[derive(Debug)]
pub struct Adjustment {
    /// Short stable name: the name of the [`Difference`](super::Difference)
    /// it checks instead of skipping.
    pub name: &'static str,
    /// One sentence: what a P6 must do instead, and where that is
    /// documented.
    pub reason: &'static str,
    /// True for the tests this adjustment applies to.
    pub selects: fn(&TestCase, &OpcodeKey) -> bool,
    /// The test as a P6 must complete it, or `None` when the rewrite cannot
    /// express it (the test is then skipped under the difference).
    pub adjust: fn(&TestCase, &OpcodeKey) -> Option<TestCase>,
    /// Which register bits the adjusted test compares.
    pub masks: AdjustedMasks,
}

/// The register masks an adjusted test is compared under.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AdjustedMasks {
    /// As for the unadjusted test: the suite's masks and the metadata's
    /// undefined flags for the opcode (and the adjusted test's own masks).
    Suite,
    /// Every bit: the instruction did not run, so nothing it leaves
    /// undefined applies.
    AllBits,
}

/// The list, checked in order; the first that selects and can rewrite the
/// test applies.
pub static ADJUSTMENTS: &[Adjustment] = &[
    Adjustment {
        name: "instruction-over-15-bytes",
        reason: "a P6 raises #GP (interrupt 13) for an instruction over 15 bytes before executing \
                 anything (SDM vol. 2, 2.3.11; vol. 3, 6.15 interrupt 13), so the test expects that \
                 interrupt's real-mode frame and a planted handler's HLT",
        selects: differences::over_15_bytes_not_gp,
        adjust: |t, _| fault_frame(t, 13),
        masks: AdjustedMasks::AllBits,
    },
    Adjustment {
        name: "lock-on-non-lockable",
        reason: "a P6 raises #UD (interrupt 6) before executing anything for LOCK on an instruction \
                 other than a read-modify-write of a memory destination by ADD ADC AND BTC BTR BTS \
                 CMPXCHG CMPXCHG8B DEC INC NEG NOT OR SBB SUB XOR XADD XCHG (SDM vol. 2, LOCK; \
                 vol. 3, 6.15 interrupt 6), so the test expects that interrupt's real-mode frame and \
                 a planted handler's HLT",
        selects: differences::lock_on_non_lockable,
        adjust: |t, _| fault_frame(t, 6),
        masks: AdjustedMasks::AllBits,
    },
    Adjustment {
        name: "popf-iret-iopl-nt",
        reason: "a P6 in real mode loads IOPL and NT from the FLAGS image POPF and IRET pop \
                 (SDM vol. 2, POPF and IRET operation, real-address mode: all non-reserved bits of \
                 the 16-bit image), so the test expects the 286's FLAGS with bits 12-14 taken from \
                 the popped image",
        selects: differences::popf_iret_sets_iopl_nt,
        adjust: |t, _| popped_iopl_nt(t),
        masks: AdjustedMasks::Suite,
    },
    Adjustment {
        name: "aam-zero-flags",
        reason: "a P6's #DE fault for AAM 0 leaves FLAGS as they were (SDM vol. 3, 6.5), so the \
                 386 test expects its final and pushed FLAGS with the arithmetic flags of the \
                 initial state",
        selects: differences::aam_zero,
        adjust: |t, _| aam_flags_unchanged(t),
        masks: AdjustedMasks::Suite,
    },
    Adjustment {
        name: "mov-test-register",
        reason: "a P6 raises #UD (interrupt 6) for MOV to or from a test register (SDM vol. 3, \
                 chapter 22: test registers), so the test expects that interrupt's real-mode frame \
                 and a planted handler's HLT",
        selects: differences::mov_test_register,
        adjust: |t, _| fault_frame(t, 6),
        masks: AdjustedMasks::AllBits,
    },
    Adjustment {
        name: "umov",
        reason: "a P6 (Pentium Pro, Pentium II) raises #UD (interrupt 6) for 0F 10 to 0F 13 \
                 (SDM vol. 2, opcode map table A-3: SSE moves, absent before the Pentium III), so \
                 the test expects that interrupt's real-mode frame and a planted handler's HLT",
        selects: differences::umov,
        adjust: |t, _| fault_frame(t, 6),
        masks: AdjustedMasks::AllBits,
    },
    Adjustment {
        name: "mov-cr4",
        reason: "a P6 completes MOV r32,CR4 (SDM vol. 2, MOV control registers) with the CR4 the \
                 runner leaves (0, as after RESET) in the destination and the arithmetic flags \
                 undefined, so the test expects that instead of the 386's #UD; MOV CR4,r32 is \
                 skipped (its outcome depends on which reserved bits the model checks)",
        selects: differences::mov_cr4,
        adjust: |t, _| mov_from_cr4_completes(t),
        masks: AdjustedMasks::Suite,
    },
    Adjustment {
        name: "mov-cr0-cache-bits",
        reason: "a P6 raises #GP (interrupt 13) for MOV CR0 with NW set and CD clear (SDM vol. 2, \
                 MOV control registers), so the test expects that interrupt's real-mode frame and \
                 a planted handler's HLT",
        selects: differences::mov_cr0_nw_without_cd,
        adjust: |t, _| fault_frame(t, 13),
        masks: AdjustedMasks::AllBits,
    },
    Adjustment {
        name: "cr-dr-reserved-bits",
        reason: "a P6 reads its own reserved bits and the values the runner loaded (SDM vol. 3, 2.5 \
                 and 17.2), so the test expects the 386's result in the bits both define (CR0 PE MP \
                 EM TS PG, CR3 base, DR6 B0-B3 BD BS BT, DR7 enables, GD and breakpoint fields) and \
                 the P6's elsewhere: CR0 bits 4-30 of its RESET value, DR6 reserved bits as ones but \
                 bit 12, DR7 bit 10 set, CR2 and DR0-DR3 zero, DR4/DR5 read as DR6/DR7 (CR4.DE \
                 clear); SMSW r32 leaves bits 16-31 undefined (SDM vol. 2, SMSW)",
        selects: differences::reads_control_or_debug_register,
        adjust: p6_register_read,
        masks: AdjustedMasks::Suite,
    },
    Adjustment {
        name: "descriptor-table-store",
        reason: "a P6 stores the GDTR or IDTR it holds, the runner's RESET values (GDTR base 0 \
                 limit FFFFh, IDTR base 0 limit 3FFh; SDM vol. 3, 9.1.1), with the full 32-bit base \
                 whatever the operand size (SDM vol. 2, SGDT/SIDT), so the test expects those six \
                 bytes",
        selects: differences::stores_descriptor_table,
        adjust: |t, _| p6_descriptor_table_store(t),
        masks: AdjustedMasks::Suite,
    },
    Adjustment {
        name: "bit-scan-zero-source",
        reason: "the destination of BSF/BSR with a zero source is undefined (SDM vol. 2, BSF/BSR), \
                 so the test compares everything but it (the upper half of a 16-bit destination's \
                 register is still compared)",
        selects: differences::bit_scan_zero_source,
        adjust: |t, _| undefined_bit_scan_destination(t),
        masks: AdjustedMasks::Suite,
    },
    Adjustment {
        name: "shift-double-over-16",
        reason: "the result and flags of a 16-bit SHLD/SHRD by a count over 16 are undefined \
                 (SDM vol. 2, SHLD/SHRD), so the test compares everything but the destination \
                 word and the arithmetic flags",
        selects: differences::shift_double_over_16,
        adjust: |t, _| undefined_shift_double_result(t),
        masks: AdjustedMasks::Suite,
    },
    Adjustment {
        name: "segment-push-padding",
        reason: "the upper two bytes of the 4-byte slot PUSH Sreg and CALL FAR write for a selector \
                 with a 32-bit operand size are zeroed or left unwritten (SDM vol. 2, PUSH: either \
                 is allowed), so the test compares everything but those two bytes",
        selects: differences::segment_push_padding,
        adjust: |t, _| undefined_selector_padding(t),
        masks: AdjustedMasks::Suite,
    },
    Adjustment {
        name: "mov-sreg-r32-upper",
        reason: "a P6 zero-extends the selector MOV r32,Sreg stores (SDM vol. 2, MOV: P6 family), \
                 so the test expects the upper half of the destination cleared",
        selects: differences::mov_sreg_to_r32,
        adjust: |t, _| zero_extended_selector(t),
        masks: AdjustedMasks::Suite,
    },
    Adjustment {
        name: "pushf-reserved-bits",
        reason: "a P6 stores the FLAGS image with bit 1 set, bits 3, 5 and 15 clear, bits 16-31 as \
                 it holds them (the runner loads none of AC, VIF, VIP, ID) and VM and RF cleared \
                 (SDM vol. 2, PUSHF), so the test expects the 386's image with those bits replaced",
        selects: differences::pushf_reserved_bits,
        adjust: p6_pushf,
        masks: AdjustedMasks::Suite,
    },
];

/// The first adjustment that selects the test and can rewrite it, with the
/// rewritten test.
pub fn apply(test: &TestCase, key: &OpcodeKey) -> Option<(&'static Adjustment, TestCase)> {
    ADJUSTMENTS.iter().filter(|a| (a.selects)(test, key)).find_map(|a| Some((a, (a.adjust)(test, key)?)))
}

/// The adjustment of this name.
pub fn by_name(name: &str) -> Option<&'static Adjustment> {
    ADJUSTMENTS.iter().find(|a| a.name == name)
}

/// HLT, which ends every test.
const HLT: u8 = 0xF4;

/// FLAGS bits an interrupt clears in real mode: TF and IF (SDM vol. 2, INT n
/// operation, real-address mode; AC too, which the runner never sets).
const INTERRUPT_CLEARS: u16 = 0x0300;

/// EFLAGS bits an interrupt in real mode leaves clear on a P6: TF, IF, RF
/// (cleared as the handler's HLT completes) and AC.
const INTERRUPT_CLEARS_386: u32 = 0x0005_0300;

/// The arithmetic flags: CF PF AF ZF SF OF.
const ARITH: u32 = 0x08D5;

/// Where the planted handler (a single HLT) may go, tried in order: the
/// first whose byte collides with nothing the test lists is taken.
const HANDLER_CANDIDATES: [(u16, u16); 5] =
    [(0x0050, 0x0000), (0x0070, 0x0100), (0x1000, 0x0010), (0x7000, 0xABCD), (0xE000, 0x5555)];

/// FLAGS as the runner leaves them in the CPU before the first instruction
/// of a 286 test (see [`loaded_eflags`]).
pub fn loaded_flags(initial: u16) -> u16 {
    loaded_eflags(Arch::I286, initial as u32) as u16
}

/// Real-mode linear address of `seg:off`.
fn linear(seg: u16, off: u16) -> u32 {
    ((seg as u32) << 4) + off as u32
}

/// Replace (or add) a byte of the expected final RAM.
fn set_final_byte(test: &mut TestCase, addr: u32, value: u8) {
    test.final_.ram.retain(|&(a, _)| a != addr);
    test.final_.ram.push((addr, value));
}

/// The instruction raises interrupt `vector` at its first byte, before it
/// executes anything (LOCK misuse, over-long instructions, removed or
/// invalid encodings). A handler (one HLT) is planted and the IVT entry
/// pointed at it; the P6 pushes FLAGS, CS and IP (the address of the first
/// prefix) below SS:SP, clears IF and TF, and halts at the handler. Nothing
/// the 286 or 386 wrote is expected.
///
/// Not expressible (`None`): the IVT entry is already in the test's RAM,
/// IP is beyond 16 bits, a #UD-class instruction is over 15 bytes (#GP on a
/// P6) or runs past CS:FFFF (a P6 faults on the code fetch first; SDM vol.
/// 3, 6.9 priorities), a push word would straddle offset FFFFh (SP 1, 3 or
/// 5), a pushed byte lands in the IVT entry (the order of the pushes and the
/// vector read would matter), or no handler address is free.
fn fault_frame(test: &TestCase, vector: u8) -> Option<TestCase> {
    let reg = |r| test.initial.reg(r);
    let (cs, ip, ss, sp) = (reg(Reg::Cs)?, reg(Reg::Ip)?, reg(Reg::Ss)?, reg(Reg::Sp)?);
    let eflags = test.initial.reg32(Reg::Flags)?;
    let entry = vector as u32 * 4;
    let ivt = entry..entry + 4;
    if test.initial.reg32(Reg::Ip)? > 0xFFFF || test.initial.ram.iter().any(|&(a, _)| ivt.contains(&a)) {
        return None;
    }
    if vector != 13 {
        let len = match test.arch {
            Arch::I286 => insn::decode(&test.bytes).len(),
            Arch::I386 => insn::length(&test.bytes)?,
        } as u32;
        if len > 15 || ip as u32 + len > 0x1_0000 {
            return None;
        }
    }
    // SP-6 (IP), SP-4 (CS), SP-2 (FLAGS), each wrapping within SS.
    let slot = |k: u16| sp.wrapping_sub(k);
    if [2, 4, 6].into_iter().any(|k| slot(k) == 0xFFFF) {
        return None;
    }
    let loaded = loaded_eflags(test.arch, eflags);
    let pushed_flags = loaded as u16;
    let mut pushes = Vec::with_capacity(6);
    for (k, value) in [(6, ip), (4, cs), (2, pushed_flags)] {
        let [lo, hi] = value.to_le_bytes();
        pushes.push((linear(ss, slot(k)), lo));
        pushes.push((linear(ss, slot(k) + 1), hi));
    }
    if pushes.iter().any(|(a, _)| ivt.contains(a)) {
        return None;
    }

    let taken = |addr: u32| {
        ivt.contains(&addr)
            || pushes.iter().any(|&(a, _)| a == addr)
            || test.initial.ram.iter().chain(&test.final_.ram).any(|&(a, _)| a == addr)
    };
    let &(handler_cs, handler_ip) = HANDLER_CANDIDATES.iter().find(|&&(s, o)| !taken(linear(s, o)))?;

    let mut initial = test.initial.clone();
    let [ip_lo, ip_hi] = handler_ip.to_le_bytes();
    let [cs_lo, cs_hi] = handler_cs.to_le_bytes();
    initial.ram.extend([
        (entry, ip_lo),
        (entry + 1, ip_hi),
        (entry + 2, cs_lo),
        (entry + 3, cs_hi),
        (linear(handler_cs, handler_ip), HLT),
    ]);

    let mut final_ = State::default();
    final_.regs[Reg::Cs.index()] = Some(handler_cs.into());
    final_.regs[Reg::Ip.index()] = Some(handler_ip.wrapping_add(1).into());
    let (sp_after, flags_after) = match test.arch {
        Arch::I286 => (slot(6) as u32, (pushed_flags & !INTERRUPT_CLEARS) as u32),
        Arch::I386 => {
            let esp = test.initial.reg32(Reg::Sp)?;
            ((esp & 0xFFFF_0000) | slot(6) as u32, loaded & !INTERRUPT_CLEARS_386)
        }
    };
    final_.regs[Reg::Sp.index()] = Some(sp_after);
    final_.regs[Reg::Flags.index()] = Some(flags_after);
    final_.ram = pushes;

    Some(TestCase {
        arch: test.arch,
        idx: test.idx,
        name: test.name.clone(),
        bytes: test.bytes.clone(),
        initial,
        final_,
        exception: Some(Exception { number: vector, flag_address: linear(ss, slot(2)) }),
        hash: test.hash.clone(),
        masks: [None; NUM_REGS],
        undefined_ram: Vec::new(),
    })
}

/// popf-iret-iopl-nt: the 286's final FLAGS with bits 12-14 (IOPL, NT)
/// replaced by the popped image's; bit 15 stays clear.
///
/// Not expressible (`None`): the image is not in the test's RAM, or the
/// 286's FLAGS disagree with the image in a bit both load (then something
/// else is going on than the IOPL/NT difference).
fn popped_iopl_nt(test: &TestCase) -> Option<TestCase> {
    let image = differences::popped_flags_image(test)?;
    let flags = test.expected_reg(Reg::Flags)?;
    // The bits a 286 and a P6 both load from the image in real mode:
    // everything but bits 1, 3, 5 and 12-15.
    const BOTH_LOAD: u16 = 0x0FD5;
    if (flags ^ image) & BOTH_LOAD != 0 || flags & 0xF02A != 0x0002 {
        return None;
    }
    let mut adjusted = test.clone();
    adjusted.final_.regs[Reg::Flags.index()] = Some(((flags & !0x7000) | (image & 0x7000)).into());
    Some(adjusted)
}

/// aam-zero-flags (386 tests; the 286's stay skipped): the final EFLAGS
/// and the pushed FLAGS word keep the 386's other bits and take the
/// arithmetic flags the CPU was loaded with.
///
/// Not expressible (`None`): a 286 test, or the pushed word is not in the
/// test's RAM.
fn aam_flags_unchanged(test: &TestCase) -> Option<TestCase> {
    if test.arch != Arch::I386 {
        return None;
    }
    let loaded = loaded_eflags(Arch::I386, test.initial.reg32(Reg::Flags)?);
    let mut adjusted = test.clone();
    let final_flags = test.expected_reg32(Reg::Flags)?;
    adjusted.final_.regs[Reg::Flags.index()] = Some((final_flags & !ARITH) | (loaded & ARITH));
    let at = pushed_flags_address(test)?;
    let pushed = u16::from_le_bytes([test.expected_byte(at)?, test.expected_byte(at.wrapping_add(1))?]);
    let [lo, hi] = ((pushed & !ARITH as u16) | (loaded & ARITH) as u16).to_le_bytes();
    set_final_byte(&mut adjusted, at, lo);
    set_final_byte(&mut adjusted, at.wrapping_add(1), hi);
    Some(adjusted)
}

/// mov-cr4: MOV r32,CR4 completes: the destination holds the runner's CR4
/// (0), the instruction's HLT halts the CPU, nothing is written to memory,
/// and the arithmetic flags are undefined (SDM vol. 2, MOV control
/// registers: flags affected).
///
/// Not expressible (`None`): MOV CR4,r32, or the HLT after the instruction
/// is not where the test's bytes put it, or IP would pass FFFFh.
fn mov_from_cr4_completes(test: &TestCase) -> Option<TestCase> {
    if insn::opcode_of(&test.bytes)?.1 != 0x0F20 {
        return None;
    }
    let len = insn::length(&test.bytes)?;
    if test.bytes.get(len) != Some(&HLT) {
        return None;
    }
    let instr = insn::decode(&test.bytes);
    let dest = insn::gpr_slot(instr.op0_register())?;
    let eip = test.initial.reg32(Reg::Ip)? + len as u32 + 1;
    if eip > 0xFFFF {
        return None;
    }
    let cr4 = CpuState::reset().cr4;
    let mut final_ = State::default();
    final_.regs[dest.index()] = Some(cr4);
    final_.regs[Reg::Ip.index()] = Some(eip);
    let mut adjusted = test.clone();
    adjusted.final_ = final_;
    adjusted.exception = None;
    adjusted.masks[Reg::Flags.index()] = Some(!ARITH);
    Some(adjusted)
}

/// cr-dr-reserved-bits: the destination of SMSW or MOV r32,CRn/DRn takes
/// the 386's result in the bits both CPUs define and the value the runner
/// loaded into the P6 elsewhere.
///
/// Not expressible (`None`): the result or the memory operand is not in the
/// test, or it is another register than CR0, CR2, CR3, DR0-DR7.
fn p6_register_read(test: &TestCase, key: &OpcodeKey) -> Option<TestCase> {
    let instr = insn::decode(&test.bytes);
    let n = insn::modrm_reg(&test.bytes)?;
    let initial = |r| test.initial.reg32(r);
    let mut adjusted = test.clone();
    if key.value() == 0x0F01 {
        // SMSW: the low 16 bits of CR0.
        let p6 = loaded_cr0(initial(Reg::Cr0)?);
        let msw = |res: u32| (res & 0xF) | (p6 & 0xFFF0);
        if instr.op0_kind() == iced_x86::OpKind::Register {
            let dest = insn::gpr_slot(instr.op0_register())?;
            let res = test.expected_reg32(dest)?;
            adjusted.final_.regs[dest.index()] = Some((res & 0xFFFF_0000) | msw(res));
            if instr.op0_register().size() == 4 {
                adjusted.masks[dest.index()] = Some(0x0000_FFFF);
            }
        } else {
            let access = insn::memory_accesses(test).into_iter().next().filter(|a| !a.overruns())?;
            let at = insn::physical_address(test, &access)?;
            let res = u16::from_le_bytes([test.expected_byte(at)?, test.expected_byte(at + 1)?]);
            let [lo, hi] = (msw(res as u32) as u16).to_le_bytes();
            set_final_byte(&mut adjusted, at, lo);
            set_final_byte(&mut adjusted, at + 1, hi);
        }
        return Some(adjusted);
    }
    let dest = insn::gpr_slot(instr.op0_register())?;
    let res = test.expected_reg32(dest)?;
    let keep = |defined: u32, p6: u32| (res & defined) | (p6 & !defined);
    let value = match (key.value(), n) {
        (0x0F20, 0) => keep(CR0_COMPARED_386, loaded_cr0(initial(Reg::Cr0)?)),
        (0x0F20, 2) => CpuState::reset().cr2,
        (0x0F20, 3) => keep(CR3_COMPARED_386, initial(Reg::Cr3)?),
        (0x0F21, 0..=3) => CpuState::reset().dr[n as usize],
        // DR4 and DR5 alias DR6 and DR7 with CR4.DE clear (SDM vol. 3,
        // 17.2.2), as on the 386 and 486.
        (0x0F21, 4 | 6) => keep(DR6_COMPARED_386, loaded_dr6(initial(Reg::Dr6)?)),
        (0x0F21, 5 | 7) => keep(DR7_COMPARED_386, loaded_dr7(initial(Reg::Dr7)?)),
        _ => return None,
    };
    adjusted.final_.regs[dest.index()] = Some(value);
    Some(adjusted)
}

/// descriptor-table-store: the six bytes SGDT/SIDT store are the P6's
/// limit and 32-bit base.
///
/// Not expressible (`None`): the operand overruns offset FFFFh or its
/// address cannot be computed.
fn p6_descriptor_table_store(test: &TestCase) -> Option<TestCase> {
    let access = insn::memory_accesses(test).into_iter().next().filter(|a| !a.overruns())?;
    let at = insn::physical_address(test, &access)?;
    let reset = CpuState::reset();
    let table = if insn::modrm_reg(&test.bytes)? == 0 { reset.gdtr } else { reset.idtr };
    let mut adjusted = test.clone();
    let bytes = (table.limit as u16).to_le_bytes().into_iter().chain(table.base.to_le_bytes());
    for (i, b) in bytes.enumerate() {
        set_final_byte(&mut adjusted, at + i as u32, b);
    }
    Some(adjusted)
}

/// bit-scan-zero-source: the destination register is not compared (its low
/// half only, for a 16-bit operand).
fn undefined_bit_scan_destination(test: &TestCase) -> Option<TestCase> {
    let instr = insn::decode(&test.bytes);
    let dest = insn::gpr_slot(instr.op0_register())?;
    let mut adjusted = test.clone();
    adjusted.masks[dest.index()] = Some(if instr.op0_register().size() == 2 { 0xFFFF_0000 } else { 0 });
    Some(adjusted)
}

/// shift-double-over-16: the destination word (register or memory) and the
/// arithmetic flags are not compared.
///
/// Not expressible (`None`): a memory destination whose address cannot be
/// computed.
fn undefined_shift_double_result(test: &TestCase) -> Option<TestCase> {
    let instr = insn::decode(&test.bytes);
    let mut adjusted = test.clone();
    adjusted.masks[Reg::Flags.index()] = Some(!ARITH);
    if instr.op0_kind() == iced_x86::OpKind::Register {
        let dest = insn::gpr_slot(instr.op0_register())?;
        adjusted.masks[dest.index()] = Some(0xFFFF_0000);
    } else {
        let access = insn::memory_accesses(test).into_iter().next().filter(|a| !a.overruns())?;
        let at = insn::physical_address(test, &access)?;
        adjusted.undefined_ram.extend([at, at + 1]);
    }
    Some(adjusted)
}

/// segment-push-padding: the bytes at SS:SP-2 and SS:SP-1 (the upper half
/// of the first 4-byte slot pushed) are not compared.
fn undefined_selector_padding(test: &TestCase) -> Option<TestCase> {
    let (ss, sp) = (test.initial.reg(Reg::Ss)?, test.initial.reg(Reg::Sp)?);
    let mut adjusted = test.clone();
    adjusted.undefined_ram.extend([linear(ss, sp.wrapping_sub(2)), linear(ss, sp.wrapping_sub(1))]);
    Some(adjusted)
}

/// mov-sreg-r32-upper: the destination's upper half is zero.
fn zero_extended_selector(test: &TestCase) -> Option<TestCase> {
    let instr = insn::decode(&test.bytes);
    let dest = insn::gpr_slot(instr.op0_register())?;
    let res = test.expected_reg32(dest)?;
    let mut adjusted = test.clone();
    adjusted.final_.regs[dest.index()] = Some(res & 0xFFFF);
    Some(adjusted)
}

/// pushf-reserved-bits: the stored image is the P6's
/// ([`differences::p6_pushf_image`]).
fn p6_pushf(test: &TestCase, key: &OpcodeKey) -> Option<TestCase> {
    let (at, size, image) = differences::pushf_image(test, key)?;
    let p6 = differences::p6_pushf_image(test, size, image)?;
    let mut adjusted = test.clone();
    for (i, b) in p6.to_le_bytes().into_iter().take(size as usize).enumerate() {
        set_final_byte(&mut adjusted, at + i as u32, b);
    }
    Some(adjusted)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(op: &str) -> OpcodeKey {
        OpcodeKey::new(op, None)
    }

    fn test_with(bytes: &[u8], regs: &[(Reg, u16)], ram: &[(u32, u8)]) -> TestCase {
        let mut initial = State::default();
        for r in Reg::ALL {
            initial.regs[r.index()] = Some(0);
        }
        for &(r, v) in regs {
            initial.regs[r.index()] = Some(v.into());
        }
        initial.ram = ram.to_vec();
        TestCase {
            idx: 7,
            name: "test".into(),
            bytes: bytes.to_vec(),
            initial,
            hash: "abcdef0123".into(),
            ..TestCase::default()
        }
    }

    #[test]
    fn every_adjustment_has_a_reason_and_a_difference_to_fall_back_on() {
        for a in ADJUSTMENTS {
            assert!(a.reason.len() > 40 && a.reason.contains("SDM"), "{a:?}");
            assert!(differences::by_name(a.name).is_some(), "{} has no difference", a.name);
            assert!(by_name(a.name).is_some());
        }
    }

    /// `lock mov [bx],al` at 1000:0100 with SS:SP = 2000:0010: the 286
    /// stored AL; a P6 raises #UD at the LOCK prefix.
    fn lock_mov() -> TestCase {
        let code = linear(0x1000, 0x0100);
        let regs = [
            (Reg::Ax, 0x1234),
            (Reg::Bx, 0x0040),
            (Reg::Cs, 0x1000),
            (Reg::Ip, 0x0100),
            (Reg::Ss, 0x2000),
            (Reg::Sp, 0x0010),
            (Reg::Ds, 0x3000),
            // IOPL, NT and bit 15 set (the runner clears them), IF, TF, CF.
            (Reg::Flags, 0xF303),
        ];
        let ram = [(code, 0xF0), (code + 1, 0x88), (code + 2, 0x07), (code + 3, HLT), (0x30040, 0x99)];
        let mut t = test_with(&[0xF0, 0x88, 0x07, HLT], &regs, &ram);
        t.final_.regs[Reg::Ip.index()] = Some(0x0104);
        t.final_.ram = vec![(0x30040, 0x34)];
        t.masks[Reg::Flags.index()] = Some(0x00FF);
        t
    }

    #[test]
    fn lock_test_becomes_an_invalid_opcode_frame() {
        let t = lock_mov();
        let (a, adj) = apply(&t, &key("88")).expect("lock mov is adjusted");
        assert_eq!(a.name, "lock-on-non-lockable");
        assert_eq!(a.masks, AdjustedMasks::AllBits);

        // IVT entry 6 -> 0050:0000, where a HLT is planted; the rest of the
        // initial state is the test's.
        let mut ram = t.initial.ram.clone();
        ram.extend([(0x18, 0x00), (0x19, 0x00), (0x1A, 0x50), (0x1B, 0x00), (0x500, HLT)]);
        assert_eq!(adj.initial.ram, ram);
        assert_eq!(adj.initial.regs, t.initial.regs);

        // Halted after the handler's HLT, three words pushed, IF and TF clear.
        let mut regs = [None; NUM_REGS];
        regs[Reg::Cs.index()] = Some(0x0050);
        regs[Reg::Ip.index()] = Some(0x0001);
        regs[Reg::Sp.index()] = Some(0x000A);
        regs[Reg::Flags.index()] = Some(0x0003);
        assert_eq!(adj.final_.regs, regs);
        let frame = [
            (0x2000A, 0x00), // IP: the LOCK prefix
            (0x2000B, 0x01),
            (0x2000C, 0x00), // CS
            (0x2000D, 0x10),
            (0x2000E, 0x03), // FLAGS as loaded: F303 & 0FFF
            (0x2000F, 0x03),
        ];
        assert_eq!(adj.final_.ram, frame);
        // The 286's store to DS:BX is not expected: 0x30040 keeps 0x99.
        assert_eq!(adj.expected_reg(Reg::Ax), Some(0x1234));
        assert_eq!(adj.exception, Some(Exception { number: 6, flag_address: 0x2000E }));
        assert_eq!(super::super::runner::pushed_flags_address(&adj), Some(0x2000E));
        assert_eq!(adj.masks, [None; NUM_REGS]);
        assert_eq!((adj.idx, adj.hash.as_str(), adj.bytes.as_slice()), (7, "abcdef0123", t.bytes.as_slice()));
    }

    #[test]
    fn lock_frame_wraps_sp_and_avoids_taken_handler_addresses() {
        let mut t = lock_mov();
        t.initial.regs[Reg::Sp.index()] = Some(0x0002);
        // The first candidate handler byte is taken by the test.
        t.initial.ram.push((0x500, 0x11));
        let (_, adj) = apply(&t, &key("88")).unwrap();
        assert_eq!(adj.final_.regs[Reg::Sp.index()], Some(0xFFFC));
        let addrs: Vec<u32> = adj.final_.ram.iter().map(|&(a, _)| a).collect();
        assert_eq!(addrs, [0x2FFFC, 0x2FFFD, 0x2FFFE, 0x2FFFF, 0x20000, 0x20001]);
        assert_eq!(adj.final_.regs[Reg::Cs.index()], Some(0x0070));
        assert_eq!(adj.final_.regs[Reg::Ip.index()], Some(0x0101));
        assert!(adj.initial.ram.contains(&(0x800, HLT)) && adj.initial.ram.contains(&(0x500, 0x11)));
        assert_eq!(adj.exception.map(|e| e.flag_address), Some(0x20000));
    }

    #[test]
    fn lock_frame_overrides_initial_bytes_it_pushes_over() {
        let mut t = lock_mov();
        t.initial.ram.push((0x2000F, 0x55));
        let (_, adj) = apply(&t, &key("88")).unwrap();
        assert!(adj.final_.ram.contains(&(0x2000F, 0x03)));
    }

    #[test]
    fn inexpressible_lock_tests_fall_back_to_the_skip() {
        // IVT entry 6 is part of the test.
        let mut t = lock_mov();
        t.initial.ram.push((0x1A, 0x00));
        assert!(apply(&t, &key("88")).is_none());
        assert_eq!(differences::find(&t, &key("88")).map(|d| d.name), Some("lock-on-non-lockable"));
        // A push word would straddle SS:FFFF.
        for sp in [1, 3, 5] {
            let mut t = lock_mov();
            t.initial.regs[Reg::Sp.index()] = Some(sp);
            assert!(apply(&t, &key("88")).is_none(), "sp {sp}");
        }
        // The pushes would overwrite IVT entry 6.
        let mut t = lock_mov();
        t.initial.regs[Reg::Ss.index()] = Some(0x0000);
        t.initial.regs[Reg::Sp.index()] = Some(0x001E);
        assert!(apply(&t, &key("88")).is_none());
        // The instruction runs past CS:FFFF.
        let mut t = lock_mov();
        t.initial.regs[Reg::Ip.index()] = Some(0xFFFE);
        assert!(apply(&t, &key("88")).is_none());
    }

    #[test]
    fn lockable_instructions_are_not_adjusted() {
        // lock add [bx],al
        let t = test_with(&[0xF0, 0x00, 0x07, HLT], &[(Reg::Bx, 0x10)], &[]);
        assert!(apply(&t, &key("00")).is_none());
    }

    /// POPF at SS:SP = 1000:FFFE popping `image`; the 286 loads it without
    /// bits 12-15.
    fn popf(image: u16) -> TestCase {
        let [lo, hi] = image.to_le_bytes();
        let regs = [(Reg::Ss, 0x1000), (Reg::Sp, 0xFFFE), (Reg::Flags, 0x0002)];
        let mut t = test_with(&[0x9D, HLT], &regs, &[(0x1FFFE, lo), (0x1FFFF, hi)]);
        t.final_.regs[Reg::Sp.index()] = Some(0x0000);
        t.final_.regs[Reg::Flags.index()] = Some(((image & 0x0FD5) | 2).into());
        t
    }

    #[test]
    fn popf_expects_iopl_and_nt_from_the_image() {
        let t = popf(0xB2C1); // bit 15, IOPL 3, IF, SF, ZF, CF
        let (a, adj) = apply(&t, &key("9D")).expect("popf is adjusted");
        assert_eq!(a.name, "popf-iret-iopl-nt");
        assert_eq!(a.masks, AdjustedMasks::Suite);
        assert_eq!(adj.expected_reg(Reg::Flags), Some(0x32C3));
        assert_eq!(adj.expected_reg(Reg::Sp), Some(0x0000));
        assert_eq!((&adj.initial, &adj.final_.ram), (&t.initial, &t.final_.ram));
        let (_, adj) = apply(&popf(0x4000), &key("9D")).unwrap();
        assert_eq!(adj.expected_reg(Reg::Flags), Some(0x4002));
        // Nothing to adjust without IOPL or NT in the image.
        assert!(apply(&popf(0x8FFF), &key("9D")).is_none());
    }

    #[test]
    fn iret_expects_iopl_and_nt_from_the_image_after_ip_and_cs() {
        // SP=FFFC: FLAGS at offset 0000 (SP wraps).
        let regs = [(Reg::Ss, 0x0200), (Reg::Sp, 0xFFFC)];
        let mut t = test_with(&[0xCF], &regs, &[(0x2000, 0x01), (0x2001, 0x50)]);
        t.final_.regs[Reg::Flags.index()] = Some(0x0003);
        let (_, adj) = apply(&t, &key("CF")).unwrap();
        assert_eq!(adj.expected_reg(Reg::Flags), Some(0x5003));
    }

    #[test]
    fn popf_whose_286_flags_disagree_elsewhere_is_not_adjusted() {
        let mut t = popf(0x3001);
        t.final_.regs[Reg::Flags.index()] = Some(0x0002); // CF lost: not the IOPL/NT difference
        assert!(apply(&t, &key("9D")).is_none());
        assert_eq!(differences::find(&t, &key("9D")).map(|d| d.name), Some("popf-iret-iopl-nt"));
    }

    #[test]
    fn loaded_flags_are_what_a_p6_holds() {
        assert_eq!(loaded_flags(0xF02A), 0x0002);
        assert_eq!(loaded_flags(0x0FD5), 0x0FD7);
    }

    /// A 386 test at 1000:0100 with SS:ESP = 2000:ABCD0010 and the 386EX's
    /// reserved EFLAGS and CR0 ones.
    fn test_386(bytes: &[u8]) -> TestCase {
        let mut t = test_with(bytes, &[(Reg::Cs, 0x1000), (Reg::Ip, 0x0100), (Reg::Ss, 0x2000)], &[]);
        t.arch = Arch::I386;
        t.initial.regs[Reg::Sp.index()] = Some(0xABCD_0010);
        t.initial.regs[Reg::Flags.index()] = Some(0xFFFC_0203);
        t.initial.regs[Reg::Cr0.index()] = Some(0x7FFE_FFF0);
        t.initial.regs[Reg::Dr6.index()] = Some(0xFFFF_0FF0);
        t.initial.regs[Reg::Ax.index()] = Some(0x1234_5678);
        let code = linear(0x1000, 0x0100);
        t.initial.ram = bytes.iter().enumerate().map(|(i, &b)| (code + i as u32, b)).collect();
        t
    }

    fn key386(name: &str) -> OpcodeKey {
        OpcodeKey::from_file_name(std::path::Path::new(name)).unwrap()
    }

    #[test]
    fn a_386_fault_frame_keeps_the_upper_half_of_esp() {
        // lock bt [bx],ax: the 386 executed it.
        let mut t = test_386(&[0xF0, 0x0F, 0xA3, 0x07, HLT]);
        t.final_.regs[Reg::Ip.index()] = Some(0x0105);
        let (a, adj) = apply(&t, &key386("0FA3.MOO")).expect("lock bt is adjusted");
        assert_eq!(a.name, "lock-on-non-lockable");
        assert_eq!(adj.arch, Arch::I386);
        assert_eq!(adj.final_.regs[Reg::Sp.index()], Some(0xABCD_000A));
        assert_eq!(adj.final_.regs[Reg::Ip.index()], Some(0x0001));
        // IF cleared; the 386EX's reserved ones not expected.
        assert_eq!(adj.final_.regs[Reg::Flags.index()], Some(0x0003));
        assert!(adj.final_.ram.contains(&(0x2000E, 0x03)) && adj.final_.ram.contains(&(0x2000F, 0x02)));
        assert_eq!(adj.exception, Some(Exception { number: 6, flag_address: 0x2000E }));
    }

    #[test]
    fn an_instruction_over_15_bytes_expects_the_general_protection_frame() {
        // 11 ES prefixes and add eax,11223344h: 18 bytes; the suite
        // recorded interrupt 6.
        let mut bytes = vec![0x26; 11];
        bytes.extend_from_slice(&[0x66, 0x05, 0x44, 0x33, 0x22, 0x11, HLT]);
        let mut t = test_386(&bytes);
        t.exception = Some(Exception { number: 6, flag_address: 0x2000E });
        t.initial.ram.extend([(0x18, 0x00), (0x19, 0x00), (0x1A, 0x50), (0x1B, 0x00)]);
        let (a, adj) = apply(&t, &key386("6605.MOO")).expect("adjusted");
        assert_eq!(a.name, "instruction-over-15-bytes");
        assert_eq!(adj.exception.map(|e| e.number), Some(13));
        assert!(adj.initial.ram.contains(&(13 * 4 + 2, 0x50)));
        // The suite's #GP is what a P6 does: nothing to adjust.
        t.exception = Some(Exception { number: 13, flag_address: 0x2000E });
        assert!(apply(&t, &key386("6605.MOO")).is_none());
        assert!(differences::find(&t, &key386("6605.MOO")).is_none());
        // 15 bytes run on both.
        let mut t = test_386(&bytes[3..]);
        t.exception = None;
        assert!(apply(&t, &key386("6605.MOO")).is_none());
        // A 286 test is the 10-byte rule's.
        let mut t = test_386(&bytes);
        t.arch = Arch::I286;
        assert!(apply(&t, &key386("6605.MOO")).is_none());
    }

    #[test]
    fn control_and_debug_register_reads_expect_the_p6_bits() {
        let mov_cr0 = |res: u32| {
            let mut t = test_386(&[0x0F, 0x20, 0xC3, HLT]); // mov ebx,cr0
            t.final_.regs[Reg::Bx.index()] = Some(res);
            t
        };
        let (_, adj) = apply(&mov_cr0(0x7FFE_FFF8), &key386("0F20.MOO")).unwrap();
        // TS from the 386's result, the rest the P6's RESET CR0.
        assert_eq!(adj.final_.regs[Reg::Bx.index()], Some(0x6000_0018));
        let mut t = test_386(&[0x0F, 0x21, 0xD1, HLT]); // mov ecx,dr2
        t.final_.regs[Reg::Cx.index()] = Some(0x1234);
        assert_eq!(apply(&t, &key386("0F21.MOO")).unwrap().1.final_.regs[Reg::Cx.index()], Some(0));
        // smsw eax (66): bits 16-31 undefined.
        let mut t = test_386(&[0x66, 0x0F, 0x01, 0xE0, HLT]);
        t.final_.regs[Reg::Ax.index()] = Some(0x7FFE_FFF0);
        let (_, adj) = apply(&t, &key386("660F01.4.MOO")).unwrap();
        assert_eq!(adj.final_.regs[Reg::Ax.index()], Some(0x7FFE_0010));
        assert_eq!(adj.masks[Reg::Ax.index()], Some(0xFFFF));
        // A read that faulted is not adjusted.
        let mut t = mov_cr0(0);
        t.exception = Some(Exception { number: 6, flag_address: 0 });
        assert!(apply(&t, &key386("0F20.MOO")).is_none());
    }

    #[test]
    fn pushf_image_takes_the_p6_reserved_bits() {
        let mut t = test_386(&[0x66, 0x9C, HLT]);
        t.final_.ram = vec![(0x2000C, 0x03), (0x2000D, 0x82), (0x2000E, 0xFC), (0x2000F, 0xFF)];
        let (a, adj) = apply(&t, &key386("669C.MOO")).unwrap();
        assert_eq!(a.name, "pushf-reserved-bits");
        // Bit 15 and bits 18-31 cleared, bit 1 set.
        assert_eq!(adj.final_.ram, vec![(0x2000C, 0x03), (0x2000D, 0x02), (0x2000E, 0x00), (0x2000F, 0x00)]);
        // An image a P6 would store is left alone.
        t.final_.ram = adj.final_.ram.clone();
        assert!(apply(&t, &key386("669C.MOO")).is_none());
    }

    #[test]
    fn aam_zero_on_the_386_expects_the_initial_arithmetic_flags() {
        let mut t = test_386(&[0xD4, 0x00, HLT]);
        t.exception = Some(Exception { number: 0, flag_address: 0x2000E });
        // The 386 set ZF and PF in FLAGS and in the pushed word.
        t.final_.regs[Reg::Flags.index()] = Some(0xFFFC_0047);
        t.final_.ram = vec![(0x2000E, 0x47), (0x2000F, 0x02)];
        let (a, adj) = apply(&t, &key386("D4.MOO")).unwrap();
        assert_eq!(a.name, "aam-zero-flags");
        assert_eq!(adj.final_.regs[Reg::Flags.index()], Some(0xFFFC_0003));
        assert!(adj.final_.ram.contains(&(0x2000E, 0x03)) && adj.final_.ram.contains(&(0x2000F, 0x02)));
        // Flags the 386 left alone: nothing to adjust.
        t.final_.regs[Reg::Flags.index()] = Some(0xFFFC_0003);
        t.final_.ram = vec![(0x2000E, 0x03), (0x2000F, 0x02)];
        assert!(apply(&t, &key386("D4.MOO")).is_none());
    }

    #[test]
    fn undefined_results_are_masked() {
        // shld ax,bx,20: AX and the arithmetic flags undefined.
        let t = test_386(&[0x0F, 0xA4, 0xD8, 0x14, HLT]);
        let (_, adj) = apply(&t, &key386("0FA4.MOO")).unwrap();
        assert_eq!(adj.masks[Reg::Ax.index()], Some(0xFFFF_0000));
        assert_eq!(adj.masks[Reg::Flags.index()], Some(!0x08D5));
        // By 16: defined.
        assert!(apply(&test_386(&[0x0F, 0xA4, 0xD8, 0x10, HLT]), &key386("0FA4.MOO")).is_none());
        // shrd [bx],ax,cl with CL=31 (the 32-bit form never is undefined).
        let mut t = test_386(&[0x0F, 0xAD, 0x07, HLT]);
        t.initial.regs[Reg::Cx.index()] = Some(0x1F);
        t.initial.regs[Reg::Bx.index()] = Some(0x0040);
        t.initial.regs[Reg::Ds.index()] = Some(0x3000);
        let (_, adj) = apply(&t, &key386("0FAD.MOO")).unwrap();
        assert_eq!(adj.undefined_ram, vec![0x30040, 0x30041]);
        assert!(apply(&test_386(&[0x66, 0x0F, 0xAD, 0x07, HLT]), &key386("660FAD.MOO")).is_none());
        // push gs (66): SS:SP-2 and SS:SP-1.
        let (_, adj) = apply(&test_386(&[0x66, 0x0F, 0xA8, HLT]), &key386("660FA8.MOO")).unwrap();
        assert_eq!(adj.undefined_ram, vec![0x2000E, 0x2000F]);
        assert!(apply(&test_386(&[0x0F, 0xA8, HLT]), &key386("0FA8.MOO")).is_none());
        // bsf eax,[bx] of a zero dword.
        let mut t = test_386(&[0x66, 0x0F, 0xBC, 0x07, HLT]);
        t.initial.regs[Reg::Bx.index()] = Some(0x0040);
        t.initial.regs[Reg::Ds.index()] = Some(0x3000);
        t.initial.ram.extend((0x30040..0x30044).map(|a| (a, 0)));
        let (_, adj) = apply(&t, &key386("660FBC.MOO")).unwrap();
        assert_eq!(adj.masks[Reg::Ax.index()], Some(0));
        t.initial.ram.push((0x30043, 0x80));
        assert!(apply(&t, &key386("660FBC.MOO")).is_none());
    }

    #[test]
    fn sgdt_expects_the_reset_table_register() {
        let mut t = test_386(&[0x0F, 0x01, 0x0F, HLT]); // sidt [bx]
        t.initial.regs[Reg::Bx.index()] = Some(0x0100);
        t.initial.regs[Reg::Ds.index()] = Some(0x3000);
        let (a, adj) = apply(&t, &key386("0F01.1.MOO")).unwrap();
        assert_eq!(a.name, "descriptor-table-store");
        let stored: Vec<(u32, u8)> = (0..6).map(|i| (0x30100 + i, [0xFF, 0x03, 0, 0, 0, 0][i as usize])).collect();
        assert_eq!(adj.final_.ram, stored);
        // LGDT (reg 2) and a register operand are not stores.
        assert!(apply(&test_386(&[0x0F, 0x01, 0x17, HLT]), &key386("0F01.2.MOO")).is_none());
    }

    #[test]
    fn mov_from_cr4_completes_on_a_p6() {
        let mut t = test_386(&[0x0F, 0x20, 0xE2, HLT]); // mov edx,cr4
        t.exception = Some(Exception { number: 6, flag_address: 0x2000E });
        t.final_.ram = vec![(0x2000E, 0x03)];
        let (a, adj) = apply(&t, &key386("0F20.MOO")).unwrap();
        assert_eq!(a.name, "mov-cr4");
        assert_eq!(adj.exception, None);
        assert_eq!(adj.final_.regs[Reg::Dx.index()], Some(0));
        assert_eq!(adj.final_.regs[Reg::Ip.index()], Some(0x0104));
        assert!(adj.final_.ram.is_empty());
        // MOV CR4,r32 is skipped.
        let t = test_386(&[0x0F, 0x22, 0xE2, HLT]);
        assert!(apply(&t, &key386("0F22.MOO")).is_none());
        assert_eq!(differences::find(&t, &key386("0F22.MOO")).map(|d| d.name), Some("mov-cr4"));
    }
}
