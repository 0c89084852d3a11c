//! x87 instructions with memory operands in translated code. When the
//! operand's page is in the translator's fast TLB the instruction reads or
//! writes it there without translating its address again
//! (`Cpu::exec_one_fpu_at`); otherwise it makes every check itself and the
//! page goes into the fast TLB. Either way the results must be exactly
//! the interpreter's: memory, registers and the whole x87 state.

use ferrite_core::{Cpu, GuestMemory, NullBus, PhysAddr, StepOutcome};
use ferrite_jit::{Jit, JitMode};
use iced_x86::code_asm::*;

const CODE: u32 = 0x10_0000;
const INPUT: u32 = 0x20_0000;
const OUTPUT: u32 = 0x30_0000;
const PASSES: u32 = 96;

/// A loop over input records (24 bytes: an int32, a double, a float and
/// an int16) that loads, converts and combines them with every operand
/// size and stores the results in every format to output records of 0x50
/// bytes, which cross pages now and then. Each pass flips the rounding
/// control, so conversions round both ways.
fn program() -> Vec<u8> {
    let mut a = CodeAssembler::new(32).unwrap();
    let mut top = a.create_label();
    a.fninit().unwrap();
    a.mov(esi, INPUT).unwrap();
    a.mov(edi, OUTPUT).unwrap();
    a.mov(ecx, PASSES).unwrap();
    a.set_label(&mut top).unwrap();
    a.fild(dword_ptr(esi)).unwrap();
    a.fld(qword_ptr(esi + 8)).unwrap();
    a.fmulp(st1, st0).unwrap();
    a.fadd(dword_ptr(esi + 16)).unwrap();
    a.fiadd(word_ptr(esi + 20)).unwrap();
    a.fcom(qword_ptr(esi + 8)).unwrap();
    a.fnstsw(word_ptr(edi + 0x40)).unwrap();
    a.fst(dword_ptr(edi)).unwrap();
    a.fst(qword_ptr(edi + 8)).unwrap();
    a.fld(st0).unwrap();
    a.fstp(tword_ptr(edi + 16)).unwrap();
    a.fld(tword_ptr(edi + 16)).unwrap();
    a.fistp(dword_ptr(edi + 32)).unwrap();
    a.fld(st0).unwrap();
    a.fistp(word_ptr(edi + 36)).unwrap();
    a.fld(st0).unwrap();
    a.fistp(qword_ptr(edi + 0x48)).unwrap();
    a.fbstp(tword_ptr(edi + 0x26)).unwrap();
    a.fbld(tword_ptr(edi + 0x26)).unwrap();
    a.fidiv(dword_ptr(esi)).unwrap();
    a.fdivr(qword_ptr(esi + 8)).unwrap();
    a.fisub(word_ptr(esi + 20)).unwrap();
    a.fstp(qword_ptr(edi + 0x30)).unwrap();
    a.fnstcw(word_ptr(edi + 0x44)).unwrap();
    a.xor(word_ptr(edi + 0x44), 0x0C00).unwrap();
    a.fldcw(word_ptr(edi + 0x44)).unwrap();
    a.add(esi, 24).unwrap();
    a.add(edi, 0x50).unwrap();
    a.dec(ecx).unwrap();
    a.jnz(top).unwrap();
    a.hlt().unwrap();
    a.assemble(CODE as u64).unwrap()
}

/// Input records: small and large integers, doubles of all magnitudes and
/// signs (some zero, some huge), from a fixed generator.
fn input() -> Vec<u8> {
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut out = Vec::new();
    for k in 0..PASSES {
        let r = next();
        let int = if k % 7 == 0 { 0 } else { (r as i32) >> (r >> 59) };
        let dbl = match k % 5 {
            0 => (r as i64 as f64) / 3.0,
            1 => f64::from_bits(next()),
            2 => -0.1 * k as f64,
            3 => 1e300,
            _ => (r >> 40) as f64 + 0.5,
        };
        let flt = (next() as i16) as f32 / 7.0;
        let i16v = next() as i16;
        out.extend(int.to_le_bytes());
        out.extend([0u8; 4]);
        out.extend(dbl.to_le_bytes());
        out.extend(flt.to_le_bytes());
        out.extend(i16v.to_le_bytes());
        out.extend([0u8; 2]);
    }
    out
}

fn run(mode: JitMode) -> (Cpu, Vec<u8>) {
    let mut mem = GuestMemory::new(8 << 20).expect("guest RAM");
    mem.load(PhysAddr(CODE), &program());
    mem.load(PhysAddr(INPUT), &input());
    let mut cpu = Cpu::new();
    cpu.state.enter_flat32(8, 16);
    cpu.state.eip = CODE;
    Jit::install(&mut cpu, mode).expect("translator");
    let (out, _) = cpu.run(&mut mem, &mut NullBus, 1_000_000);
    assert_eq!(out, StepOutcome::Halted);
    let bytes = (OUTPUT..OUTPUT + PASSES * 0x50).map(|a| mem.peek(PhysAddr(a))).collect();
    (cpu, bytes)
}

#[test]
fn x87_memory_operands_in_translated_code_match_the_interpreter() {
    let (interp, want) = run(JitMode::Off);
    let (jit, got) = run(JitMode::Force);
    assert_eq!(interp.state.fpu, jit.state.fpu, "x87 state");
    assert_eq!(interp.state.regs, jit.state.regs);
    assert_eq!(interp.state.eflags(), jit.state.eflags());
    let first = want.iter().zip(&got).position(|(a, b)| a != b);
    assert!(first.is_none(), "output differs from byte {:#x} on", first.unwrap_or(0));
    // The loop ran translated, and did something (results in every format).
    let translated = jit.accel_stats().map_or(0, |s| s.insns_translated);
    assert!(translated > PASSES as u64 * 30, "only {translated} instructions translated");
    assert!(want.iter().filter(|&&b| b != 0).count() > want.len() / 4, "the output is mostly empty");
    // (Every pass leaves the register stack as it found it: empty.)
    assert_eq!(jit.state.fpu.empty, 0xFF, "x87 stack not empty at the end");
}
