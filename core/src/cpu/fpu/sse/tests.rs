//! SSE in the CPU: the checks before an instruction, unmasked exceptions,
//! alignment, MXCSR, FXSAVE's SSE part, the approximations. The results
//! and flags of every form are checked against the host CPU in
//! `core/tests/oracle/integer.rs` (`gen_sse`).

use super::super::tests::{fault, read, run_with, DATA, NO_FAULT};
use super::{approx, Op, CR4_OSXMMEXCPT, MXCSR_RESET};
use crate::cpu::cpuid::{FEATURES_EDX, FEAT_SSE};
use crate::cpu::state::{CR0_EM, CR0_TS, CR4_OSFXSR};
use crate::cpu::Cpu;
use iced_x86::code_asm::*;

fn sse(cpu: &mut Cpu) {
    cpu.set_features(FEATURES_EDX | FEAT_SSE);
    cpu.state.cr4 |= CR4_OSFXSR | CR4_OSXMMEXCPT;
}

fn singles(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_bits().to_le_bytes()).collect()
}

#[test]
fn packed_arithmetic_runs_on_a_model_with_sse() {
    let data = singles(&[1.5, -2.0, 3.0, 0.25, 2.0, 2.0, 0.5, 4.0]);
    let (cpu, mem) = run_with(sse, 0, &data, |a| {
        a.movaps(xmm0, xmmword_ptr(DATA))?;
        a.mulps(xmm0, xmmword_ptr(DATA + 16))?;
        a.movups(xmmword_ptr(DATA + 0x20), xmm0)
    });
    assert_eq!(fault(&cpu).0, NO_FAULT);
    assert_eq!(read(&mem, DATA + 0x20, 16), singles(&[3.0, -4.0, 1.5, 1.0]));
    assert_eq!(cpu.state.sse.mxcsr, MXCSR_RESET, "exact: no flags");
}

#[test]
fn without_sse_or_osfxsr_the_instructions_are_undefined_and_ts_gives_nm() {
    let op = |a: &mut CodeAssembler| a.addps(xmm0, xmm1);
    let (cpu, _) = run_with(|_| {}, 0, &[], op);
    assert_eq!(fault(&cpu), (6, 0x1000), "a Pentium II has no SSE");
    let no_osfxsr = |c: &mut Cpu| {
        sse(c);
        c.state.cr4 &= !CR4_OSFXSR;
    };
    let (cpu, _) = run_with(no_osfxsr, 0, &[], op);
    assert_eq!(fault(&cpu), (6, 0x1000), "CR4.OSFXSR clear");
    let (cpu, _) = run_with(sse, CR0_EM, &[], op);
    assert_eq!(fault(&cpu), (6, 0x1000), "CR0.EM");
    let (cpu, _) = run_with(sse, CR0_TS, &[], op);
    assert_eq!(fault(&cpu), (7, 0x1000), "CR0.TS");
}

#[test]
fn aligned_forms_want_16_byte_operands() {
    let (cpu, _) = run_with(sse, 0, &[], |a| a.movaps(xmm0, xmmword_ptr(DATA + 8)));
    assert_eq!(fault(&cpu), (13, 0x1000));
    let (cpu, _) = run_with(sse, 0, &[], |a| a.addps(xmm0, xmmword_ptr(DATA + 4)));
    assert_eq!(fault(&cpu), (13, 0x1000));
    let (cpu, _) = run_with(sse, 0, &[], |a| a.movups(xmm0, xmmword_ptr(DATA + 8)));
    assert_eq!(fault(&cpu).0, NO_FAULT);
}

#[test]
fn an_unmasked_exception_leaves_the_destination_and_raises_xm_or_ud() {
    // MXCSR with ZE unmasked; 1/0 in element 2.
    let mxcsr = (MXCSR_RESET & !(1 << 9)).to_le_bytes();
    let mut data = singles(&[1.0, 1.0, 1.0, 1.0, 2.0, 2.0, 0.0, 2.0]);
    data.extend_from_slice(&mxcsr);
    let prog = |a: &mut CodeAssembler| {
        a.ldmxcsr(dword_ptr(DATA + 32))?;
        a.movaps(xmm0, xmmword_ptr(DATA))?;
        a.divps(xmm0, xmmword_ptr(DATA + 16))
    };
    let (cpu, _) = run_with(sse, 0, &data, prog);
    assert_eq!(fault(&cpu).0, 19, "#XM");
    assert_eq!(cpu.state.sse.xmm[0], u128::from_le_bytes(singles(&[1.0; 4]).try_into().unwrap()), "unchanged");
    assert_eq!(cpu.state.sse.mxcsr & 0x3F, 0x04, "ZE set");
    let no_xm = |c: &mut Cpu| {
        sse(c);
        c.state.cr4 &= !CR4_OSXMMEXCPT;
    };
    let (cpu, _) = run_with(no_xm, 0, &data, prog);
    assert_eq!(fault(&cpu).0, 6, "#UD without CR4.OSXMMEXCPT");
}

#[test]
fn ldmxcsr_rejects_reserved_bits_and_daz_on_a_pentium_iii() {
    for bad in [1u32 << 16, 1 << 6] {
        let (cpu, _) = run_with(sse, 0, &bad.to_le_bytes(), |a| a.ldmxcsr(dword_ptr(DATA)));
        assert_eq!(fault(&cpu), (13, 0x1000), "{bad:#x}");
    }
    let (cpu, mem) = run_with(sse, 0, &0x7F80u32.to_le_bytes(), |a| {
        a.ldmxcsr(dword_ptr(DATA))?;
        a.stmxcsr(dword_ptr(DATA + 4))
    });
    assert_eq!(fault(&cpu).0, NO_FAULT);
    assert_eq!(read(&mem, DATA + 4, 4), 0x7F80u32.to_le_bytes());
}

#[test]
fn fxsave_with_sse_stores_mxcsr_and_the_xmm_registers() {
    let data = singles(&[1.0, 2.0, 3.0, 4.0]);
    let (cpu, mem) = run_with(sse, 0, &data, |a| {
        a.movups(xmm7, xmmword_ptr(DATA))?;
        a.fxsave(ptr(DATA + 0x200))?;
        a.xorps(xmm7, xmm7)?;
        a.fxrstor(ptr(DATA + 0x200))
    });
    assert_eq!(fault(&cpu).0, NO_FAULT);
    let img = read(&mem, DATA + 0x200, 288);
    assert_eq!(&img[24..28], &MXCSR_RESET.to_le_bytes());
    assert_eq!(&img[28..32], &0xFFBFu32.to_le_bytes(), "MXCSR_MASK without DAZ");
    assert_eq!(&img[160 + 7 * 16..288], &data[..]);
    assert_eq!(cpu.state.sse.xmm[7].to_le_bytes().to_vec(), data, "FXRSTOR brought XMM7 back");
}

#[test]
fn reciprocal_approximations_stay_within_the_architected_error() {
    let mut x = 0x0080_0000u32;
    while x < 0x7F80_0000 {
        let v = f32::from_bits(x) as f64;
        for (op, exact) in [(Op::Rcp, 1.0 / v), (Op::Rsqrt, 1.0 / v.sqrt())] {
            let r = f32::from_bits(approx(op, x)) as f64;
            if exact < f32::MIN_POSITIVE as f64 {
                assert_eq!(r, 0.0, "{op:?} {v:e} flushes");
                continue;
            }
            assert!(((r - exact) / exact).abs() <= 1.5 * 2f64.powi(-12), "{op:?} {v:e}: {r:e} vs {exact:e}");
        }
        x += 0x0001_2345;
    }
    assert_eq!(approx(Op::Rcp, 0x8000_0000), 0xFF80_0000, "1/-0 = -inf");
    assert_eq!(approx(Op::Rsqrt, 0xBF80_0000), 0xFFC0_0000, "1/sqrt(-1): the indefinite");
    assert_eq!(approx(Op::Rcp, 0x7F80_0000), 0, "1/inf");
}
