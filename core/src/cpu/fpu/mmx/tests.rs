//! MMX: the lane arithmetic against the host CPU (SSE2's integer forms,
//! the same operations on the low 64 bits), and the instructions in the
//! CPU: operand forms, the x87 side effects, the checks before them.

use super::super::tests::{divide_by_zero_unmasked, fault, read, run, DATA, NO_FAULT};
use super::{compute, Op, OPS};
use crate::cpu::state::{CR0_EM, CR0_NE, CR0_TS, EAX};
use iced_x86::code_asm::*;

#[test]
fn lane_arithmetic_at_the_edges() {
    // (The host CPU checks every operation on random and edge operands in
    // `core/tests/oracle/integer.rs`; these are the cases worth naming.)
    let cases: [(Op, u64, u64, u64); 12] = [
        // Two (-32768)^2 products sum to 2^31: the dword wraps.
        (Op::MAddWD, 0x8000_8000_0001_0002, 0x8000_8000_0003_0004, 0x8000_0000_0000_000B),
        (Op::PackUSWB, 0xFF80_0100_00FF_0001, 0x7FFF_0000_8000_0080, 0xFF00_0080_00FF_FF01),
        (Op::PackSSWB, 0xFF80_0100_00FF_0001, 0, 0x0000_0000_807F_7F01),
        (Op::PackSSDW, 0x8000_0000_0001_0000, 0xFFFF_FFFF_0000_7FFF, 0xFFFF_7FFF_8000_7FFF),
        (Op::MulHW, 0x8000_7FFF_FFFF_0002, 0x8000_7FFF_0002_0003, 0x4000_3FFF_FFFF_0000),
        (Op::MulLW, 0x8000_7FFF_FFFF_0002, 0x8000_7FFF_0002_0003, 0x0000_0001_FFFE_0006),
        (Op::SraW, 0x8000_7FFF_0001_FFFF, 99, 0xFFFF_0000_0000_FFFF),
        (Op::SrlW, 0x8000_7FFF_0001_FFFF, 16, 0),
        (Op::SllQ, 1, 63, 1 << 63),
        (Op::SllQ, 1, 1 << 32, 0),
        (Op::AddSB, 0x7F80_7F80_0000_0000, 0x0101_8080_0000_0000, 0x7F81_FF80_0000_0000),
        (Op::SubUSW, 0x0000_0005_FFFF_0000, 0x0001_0003_0001_0000, 0x0000_0002_FFFE_0000),
    ];
    for (op, a, b, want) in cases {
        assert_eq!(compute(op, a, b), want, "{op:?} {a:#018x} {b:#018x}");
    }
}

#[test]
fn every_operation_has_its_slot_in_the_table() {
    for (k, op) in OPS.iter().enumerate() {
        assert_eq!(*op as usize, k);
    }
}

fn qwords(mem: &crate::mem::GuestMemory, at: u32, n: usize) -> Vec<u64> {
    read(mem, at, 8 * n).chunks(8).map(|c| u64::from_le_bytes(c.try_into().unwrap())).collect()
}

fn data(words: &[u64]) -> Vec<u8> {
    words.iter().flat_map(|w| w.to_le_bytes()).collect()
}

#[test]
fn register_memory_and_immediate_forms_run_in_the_cpu() {
    let input = data(&[0x0001_0002_7FFF_8000, 0x0003_0004_0001_FFFF, 0x1234_5678_9ABC_DEF0]);
    let (cpu, mem) = run(0, &input, |a| {
        a.movq(mm0, qword_ptr(DATA))?;
        a.movq(mm1, qword_ptr(DATA + 8))?;
        a.paddsw(mm0, mm1)?; // saturating
        a.movq(qword_ptr(DATA + 0x20), mm0)?;
        a.movq(mm2, qword_ptr(DATA + 16))?;
        a.psrlq(mm2, 8)?;
        a.movq(qword_ptr(DATA + 0x28), mm2)?;
        a.mov(eax, 0x8000_0001u32)?;
        a.movd(mm3, eax)?;
        a.punpckldq(mm3, dword_ptr(DATA + 16))?;
        a.movq(qword_ptr(DATA + 0x30), mm3)?;
        a.movd(dword_ptr(DATA + 0x38), mm3)?;
        a.pcmpgtw(mm1, qword_ptr(DATA))?;
        a.movd(eax, mm1)
    });
    assert_eq!(fault(&cpu).0, NO_FAULT);
    let out = qwords(&mem, DATA + 0x20, 3);
    assert_eq!(out[0], 0x0004_0006_7FFF_8000);
    assert_eq!(out[1], 0x0012_3456_789A_BCDE);
    assert_eq!(out[2], 0x9ABC_DEF0_8000_0001);
    assert_eq!(read(&mem, DATA + 0x38, 4), 0x8000_0001u32.to_le_bytes());
    // 0x0001 > 0x8000 (signed), 0xFFFF > 0x7FFF? no; 4 > 2, 3 > 1.
    assert_eq!(cpu.state.regs[EAX], 0x0000_FFFF);
    assert_eq!(cpu.mmx(1), 0xFFFF_FFFF_0000_FFFF);
}

#[test]
fn mmx_instructions_take_over_the_x87_registers_and_emms_frees_them() {
    let (cpu, _) = run(0, &[], |a| {
        a.fninit()?;
        a.fld1()?; // TOP = 7, R7 valid
        a.pxor(mm5, mm5)
    });
    let f = &cpu.state.fpu;
    assert_eq!((f.top, f.empty), (0, 0), "TOP 0, every register valid");
    assert_eq!((f.regs[5].mant, f.regs[5].se), (0, 0xFFFF), "a written register's exponent is all ones");
    assert_eq!(f.regs[7].se, 0x3FFF, "the rest keep their contents");
    let (cpu, _) = run(0, &[], |a| {
        a.fninit()?;
        a.fld1()?;
        a.movd(eax, mm7)?; // a read also sets TOP and the tags
        a.emms()
    });
    assert_eq!((cpu.state.fpu.top, cpu.state.fpu.empty), (0, 0xFF));
    assert_eq!(cpu.state.regs[EAX], 0, "1.0's significand is 8000000000000000h");
}

#[test]
fn em_raises_ud_ts_raises_nm_and_a_pending_x87_exception_raises_mf() {
    for (bits, vector) in [(CR0_EM, 6), (CR0_TS, 7), (CR0_EM | CR0_TS, 6)] {
        let (cpu, _) = run(bits, &[], |a| a.paddb(mm0, mm1));
        assert_eq!(fault(&cpu), (vector, 0x1000), "CR0 bits {bits:#x}");
        let (cpu, _) = run(bits, &[], |a| a.emms());
        assert_eq!(fault(&cpu), (vector, 0x1000), "EMMS, CR0 bits {bits:#x}");
    }
    let cw = (super::super::CW_INIT & !0x04).to_le_bytes();
    let (cpu, _) = run(CR0_NE, &cw, |a| {
        divide_by_zero_unmasked(a)?;
        a.emms()
    });
    assert_eq!(fault(&cpu).0, 16);
    assert_eq!(cpu.state.fpu.empty & 0x80, 0, "EMMS did not run");
}

#[test]
fn a_faulting_memory_operand_leaves_the_fpu_state_alone() {
    // [0xFFFF] + 8 bytes crosses the 64 KiB real-mode limit: #GP.
    let (cpu, _) = run(0, &[], |a| {
        a.fninit()?;
        a.fld1()?;
        a.mov(bx, 0xFFFF)?;
        a.movq(mm0, qword_ptr(bx))
    });
    assert_eq!(fault(&cpu).0, 13);
    assert_eq!((cpu.state.fpu.top, cpu.state.fpu.empty), (7, 0x7F));
}

#[test]
fn forms_of_later_extensions_are_undefined() {
    // PADDQ mm (SSE2), PSHUFW and PMINUB mm (SSE), PAVGUSB (3DNow!).
    for code in [&[0x0F, 0xD4, 0xC1][..], &[0x0F, 0x70, 0xC1, 0x1B], &[0x0F, 0xDA, 0xC1], &[0x0F, 0x0F, 0xC1, 0xBF]] {
        let mut all = code.to_vec();
        all.push(0xF4);
        let (cpu, _) = super::super::tests::run_bytes(0, &[], &all);
        assert_eq!(fault(&cpu), (6, 0x1000), "{code:02x?}");
    }
}
