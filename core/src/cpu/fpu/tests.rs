//! The FPU in the CPU: exceptions and their delivery, CR0 control, the
//! real-mode image layouts and decoding. The arithmetic itself is checked
//! against the host's FPU in `core/tests/oracle/x87.rs`.

use super::f80::F80;
use super::{CW_INIT, SW_B, SW_C1, SW_ES, SW_SF};
use crate::bus::NullBus;
use crate::cpu::state::{SegReg, CR0_EM, CR0_MP, CR0_NE, CR0_TS, EAX, EBX, EDX, ESP};
use crate::cpu::{Cpu, StepOutcome};
use crate::mem::{GuestMemory, PhysAddr};
use iced_x86::code_asm::*;

/// The vector a planted handler saw (in DX) and the faulting IP (BX).
pub(super) const NO_FAULT: u32 = 0xFFFF;
pub(super) const DATA: u32 = 0x800;

/// Run 16-bit real-mode code at 0000:1000 with `cr0` bits set, to HLT.
/// Handlers for #UD, #NM, #GP and #MF store their vector in DX and the
/// faulting IP in BX, then halt.
pub(super) fn run(
    cr0_bits: u32,
    data: &[u8],
    build: impl FnOnce(&mut CodeAssembler) -> Result<(), IcedError>,
) -> (Cpu, GuestMemory) {
    run_with(|_| {}, cr0_bits, data, build)
}

pub(super) fn run_bytes(cr0_bits: u32, data: &[u8], code: &[u8]) -> (Cpu, GuestMemory) {
    run_bytes_with(|_| {}, cr0_bits, data, code)
}

/// `run` on a CPU that `setup` prepared first (features, CR4).
pub(super) fn run_with(
    setup: impl FnOnce(&mut Cpu),
    cr0_bits: u32,
    data: &[u8],
    build: impl FnOnce(&mut CodeAssembler) -> Result<(), IcedError>,
) -> (Cpu, GuestMemory) {
    let mut a = CodeAssembler::new(16).unwrap();
    build(&mut a).unwrap();
    a.hlt().unwrap();
    let code = a.assemble(0x1000).unwrap();
    run_bytes_with(setup, cr0_bits, data, &code)
}

pub(super) fn run_bytes_with(
    setup: impl FnOnce(&mut Cpu),
    cr0_bits: u32,
    data: &[u8],
    code: &[u8],
) -> (Cpu, GuestMemory) {
    let mut mem = GuestMemory::new(1 << 20).unwrap();
    mem.load(PhysAddr(0x1000), code);
    mem.load(PhysAddr(DATA), data);
    for (k, v) in [6u8, 7, 13, 16, 19].into_iter().enumerate() {
        let h = 0x3000 + 8 * k as u32;
        // mov dx, v ; pop bx ; hlt
        mem.load(PhysAddr(h), &[0xBA, v, 0, 0x5B, 0xF4]);
        mem.load(PhysAddr(4 * v as u32), &(h as u16).to_le_bytes());
        mem.load(PhysAddr(4 * v as u32 + 2), &[0, 0]);
    }
    let mut cpu = Cpu::new();
    setup(&mut cpu);
    cpu.state.cr0 |= cr0_bits;
    cpu.state.load_seg_real(SegReg::Cs, 0);
    cpu.state.eip = 0x1000;
    cpu.state.regs[ESP] = 0x7000;
    cpu.state.regs[EDX] = NO_FAULT;
    let (out, _) = cpu.run(&mut mem, &mut NullBus, 100_000);
    assert_eq!(out, StepOutcome::Halted, "program did not halt: {:?}", cpu.state);
    (cpu, mem)
}

pub(super) fn fault(cpu: &Cpu) -> (u32, u32) {
    (cpu.state.regs[EDX] & 0xFFFF, cpu.state.regs[EBX] & 0xFFFF)
}

pub(super) fn read(mem: &GuestMemory, at: u32, n: usize) -> Vec<u8> {
    let page = mem.page_slice(at >> 12).unwrap();
    let o = (at & 0xFFF) as usize;
    page[o..o + n].to_vec()
}

fn word(mem: &GuestMemory, at: u32) -> u16 {
    let b = read(mem, at, 2);
    u16::from_le_bytes([b[0], b[1]])
}

#[test]
fn reset_leaves_cw_0040_and_registers_tagged_valid_zero() {
    let cpu = Cpu::new();
    assert_eq!(cpu.state.fpu.cw, 0x0040);
    assert_eq!(cpu.state.fpu.status(), 0);
    assert_eq!(cpu.state.fpu.tag_word(), 0x5555);
}

#[test]
fn fninit_satisfies_the_linux_fpu_probe() {
    let (cpu, mem) = run(0, &[0xFF; 4], |a| {
        a.fninit()?;
        a.fnstsw(word_ptr(DATA))?;
        a.fnstcw(word_ptr(DATA + 2))
    });
    assert_eq!(fault(&cpu).0, NO_FAULT);
    let (fsw, fcw) = (word(&mem, DATA), word(&mem, DATA + 2));
    assert_eq!((fsw, fcw), (0, CW_INIT));
    assert_eq!(fcw & 0x103F, 0x003F);
    assert_eq!(cpu.state.fpu.tag_word(), 0xFFFF);
}

#[test]
fn double_arithmetic_through_memory() {
    let mut data = Vec::new();
    for v in [1.5f64, 2.25, 0.0] {
        data.extend_from_slice(&v.to_le_bytes());
    }
    let (_, mem) = run(0, &data, |a| {
        a.fninit()?;
        a.fld(qword_ptr(DATA))?;
        a.fmul(qword_ptr(DATA + 8))?;
        a.fldpi()?;
        a.faddp(st1, st0)?;
        a.fstp(qword_ptr(DATA + 16))
    });
    let r = f64::from_le_bytes(read(&mem, DATA + 16, 8).try_into().unwrap());
    assert_eq!(r, 1.5 * 2.25 + std::f64::consts::PI);
}

#[test]
fn cr0_em_or_ts_make_every_escape_raise_nm() {
    for bit in [CR0_EM, CR0_TS] {
        let (cpu, _) = run(bit, &[], |a| {
            a.nop()?;
            a.fnstsw(ax)
        });
        assert_eq!(fault(&cpu), (7, 0x1001), "CR0 bit {bit:#x}");
    }
}

#[test]
fn wait_raises_nm_only_with_both_mp_and_ts() {
    let (cpu, _) = run(CR0_TS | CR0_EM, &[], |a| a.wait());
    assert_eq!(fault(&cpu).0, NO_FAULT, "TS without MP: WAIT runs");
    let (cpu, _) = run(CR0_TS | CR0_MP, &[], |a| a.wait());
    assert_eq!(fault(&cpu), (7, 0x1000));
}

/// FLDCW with ZE unmasked, then 1/0: a pending unmasked exception.
pub(super) fn divide_by_zero_unmasked(a: &mut CodeAssembler) -> Result<(), IcedError> {
    a.fninit()?;
    a.fldcw(word_ptr(DATA))?;
    a.fldz()?;
    a.fld1()?;
    a.fdivrp(st1, st0)?;
    a.fnstsw(ax)
}

#[test]
fn an_unmasked_exception_raises_mf_at_the_next_waiting_instruction() {
    let cw = (CW_INIT & !0x04).to_le_bytes();
    let (cpu, _) = run(CR0_NE, &cw, |a| {
        divide_by_zero_unmasked(a)?;
        a.fnclex()?; // non-waiting: clears the pending exception
        a.fldz()?;
        a.fld1()?;
        a.fdivrp(st1, st0)?;
        a.nop()?;
        a.fnstenv(ptr(DATA + 0x10))?; // non-waiting: no #MF
        a.fld1() // waiting: #MF here
    });
    let sw = cpu.state.regs[EAX] as u16;
    assert_eq!(sw & (0x04 | SW_ES | SW_B), 0x04 | SW_ES | SW_B);
    let (vector, ip) = fault(&cpu);
    assert_eq!(vector, 16);
    let f = &cpu.state.fpu;
    // The divide stored nothing: 1 and 0 are still on the stack.
    assert_eq!((f.st(0), f.st(1)), (F80::ONE, F80::ZERO));
    // FNSTENV masked everything, but the exception stays pending.
    assert_eq!(f.cw & 0x3F, 0x3F);
    assert_ne!(f.sw & SW_ES, 0);
    // #MF is a fault on the FLD1 (the instruction after FNSTENV).
    assert_eq!(ip, 0x1000 + cpu_len_before_fault());
}

/// Bytes before the final FLD1 of the previous test's program.
fn cpu_len_before_fault() -> u32 {
    let mut a = CodeAssembler::new(16).unwrap();
    divide_by_zero_unmasked(&mut a).unwrap();
    a.fnclex().unwrap();
    a.fldz().unwrap();
    a.fld1().unwrap();
    a.fdivrp(st1, st0).unwrap();
    a.nop().unwrap();
    a.fnstenv(ptr(DATA + 0x10)).unwrap();
    a.assemble(0x1000).unwrap().len() as u32
}

#[test]
fn without_ne_the_exception_asserts_ferr_and_execution_continues() {
    let cw = (CW_INIT & !0x04).to_le_bytes();
    let mut a = CodeAssembler::new(16).unwrap();
    divide_by_zero_unmasked(&mut a).unwrap();
    a.wait().unwrap();
    a.fld1().unwrap();
    a.hlt().unwrap();
    let code = a.assemble(0x1000).unwrap();
    let (cpu, _) = run_bytes(0, &cw, &code);
    assert_eq!(fault(&cpu).0, NO_FAULT);
    assert!(cpu.ferr_asserted());
    let (cpu, _) = run(0, &cw, |a| {
        divide_by_zero_unmasked(a)?;
        a.fnclex()
    });
    assert!(!cpu.ferr_asserted(), "FNCLEX clears ES and with it FERR#");
}

#[test]
fn masked_stack_overflow_pushes_the_indefinite_and_sets_c1() {
    let (cpu, _) = run(0, &[], |a| {
        a.fninit()?;
        for _ in 0..9 {
            a.fld1()?;
        }
        Ok(())
    });
    let f = &cpu.state.fpu;
    assert_eq!(f.st(0), F80::INDEFINITE);
    assert_eq!(f.sw & (0x01 | SW_SF | SW_C1), 0x01 | SW_SF | SW_C1);
}

#[test]
fn fcomi_sets_zf_pf_cf() {
    let (cpu, _) = run(0, &[], |a| {
        a.fninit()?;
        a.fld1()?;
        a.fldz()?;
        a.fcomi(st0, st1)?; // 0 < 1: CF
        a.setb(bl)?;
        a.fcomip(st0, st0)?; // equal: ZF
        a.sete(bh)
    });
    assert_eq!(cpu.state.regs[EBX] & 0xFFFF, 0x0101);
    assert_eq!(cpu.state.fpu.st(0), F80::ONE, "FCOMIP popped");
}

#[test]
fn real_mode_environment_holds_linear_pointers() {
    // CS = 0x0080 (base 0x800): FLD1 at 0080:0800 is linear 0x1000.
    let mut a = CodeAssembler::new(16).unwrap();
    a.fninit().unwrap();
    a.fld1().unwrap();
    a.fnstenv(ptr(DATA)).unwrap();
    a.db(&[0x66]).unwrap();
    a.fnstenv(ptr(DATA + 0x20)).unwrap();
    a.hlt().unwrap();
    let code = a.assemble(0x800).unwrap();
    let mut mem = GuestMemory::new(1 << 20).unwrap();
    mem.load(PhysAddr(0x1000 - 2), &code);
    let mut cpu = Cpu::new();
    cpu.state.load_seg_real(SegReg::Cs, 0x80);
    cpu.state.eip = 0x800 - 2;
    cpu.run(&mut mem, &mut NullBus, 100);
    let fld1_lin = 0x1000u32;
    // 16-bit: FIP[15:0], then FIP[19:16] << 12 | FOP (D9 E8).
    assert_eq!(word(&mem, DATA + 6), fld1_lin as u16);
    assert_eq!(word(&mem, DATA + 8), (((fld1_lin >> 16) & 0xF) << 12) as u16 | 0x1E8);
    assert_eq!(word(&mem, DATA + 4), 0x3FFF, "tag: ST(0) valid, the rest empty");
    // 32-bit: FIP[15:0] with reserved ones, then FIP[31:16] << 12 | FOP.
    let d = |k: u32| u32::from_le_bytes(read(&mem, DATA + 0x20 + 4 * k, 4).try_into().unwrap());
    assert_eq!(d(0), 0xFFFF_0000 | CW_INIT as u32);
    assert_eq!(d(3), 0xFFFF_0000 | (fld1_lin & 0xFFFF));
    assert_eq!(d(4), ((fld1_lin >> 16) << 12) | 0x1E8);
}

#[test]
fn fnsave_then_frstor_restores_registers_tags_and_top() {
    for op32 in [false, true] {
        let (cpu, mem) = run(0, &[], |a| {
            a.fninit()?;
            a.fldpi()?;
            a.fldz()?;
            a.fld1()?;
            a.fchs()?;
            if op32 {
                a.db(&[0x66])?;
            }
            a.fnsave(ptr(DATA))?;
            a.fnstsw(word_ptr(DATA + 0x100))?;
            if op32 {
                a.db(&[0x66])?;
            }
            a.frstor(ptr(DATA))
        });
        assert_eq!(word(&mem, DATA + 0x100), 0, "FNSAVE reinitializes");
        let f = &cpu.state.fpu;
        assert_eq!(f.top, 5);
        assert_eq!(f.st(0), -F80::ONE);
        assert_eq!(f.st(1), F80::ZERO);
        // R5 = -1 valid, R6 = 0 zero, R7 = pi valid, R0-R4 empty.
        assert_eq!(f.tag_word(), 0x13FF, "op32 {op32}");
        assert_eq!(f.cw, CW_INIT);
    }
}

#[test]
fn undefined_escapes_raise_ud_but_nm_first() {
    // D9 D1 is undefined; DB /1 is SSE3's FISTTP; LOCK FADD is invalid.
    for code in [&[0xD9, 0xD1][..], &[0xDB, 0x0E, 0x00, 0x08], &[0xF0, 0xD8, 0x06, 0x00, 0x08]] {
        let mut c = code.to_vec();
        c.push(0xF4);
        let (cpu, _) = run_bytes(0, &[], &c);
        assert_eq!(fault(&cpu), (6, 0x1000), "{code:02x?}");
        // LOCK is a decode-time #UD; other undefined ESC opcodes #NM.
        let (cpu, _) = run_bytes(CR0_TS, &[], &c);
        let expect = if code[0] == 0xF0 { 6 } else { 7 };
        assert_eq!(fault(&cpu).0, expect, "{code:02x?} with TS");
    }
}

#[test]
fn pointers_name_the_first_prefix_and_the_operand() {
    // ES: FLD dword [0x810] at 1000: FIP 1000 (the prefix), FDP 0x810, FDS ES.
    let (cpu, _) = run(0, &[0; 32], |a| {
        a.fninit()?;
        a.mov(ax, 0x0000)?;
        a.mov(es, ax)?;
        a.db(&[0x26])?;
        a.fld(dword_ptr(DATA + 0x10))
    });
    let f = &cpu.state.fpu;
    assert_eq!(f.fip, 0x1000 + 2 + 3 + 2);
    assert_eq!(f.fop, 0x106, "D9 /0 with ModRM 06");
    assert_eq!((f.fdp, f.fds), (DATA + 0x10, 0));
}

#[test]
fn a_faulting_memory_operand_leaves_the_pointers_alone() {
    let (cpu, _) = run(0, &[], |a| {
        a.fninit()?;
        a.fld1()?;
        a.fld(dword_ptr(0xFFFE))
    });
    assert_eq!(fault(&cpu), (13, 0x1004));
    let f = &cpu.state.fpu;
    assert_eq!((f.fip, f.fop), (0x1002, 0x1E8), "still FLD1's");
    assert_eq!(f.top, 7, "nothing pushed");
}

#[test]
fn fxsave_stores_the_x87_state_and_keeps_it() {
    let (cpu, mem) = run(0, &[], |a| {
        a.fninit()?;
        a.fld1()?;
        a.fldpi()?;
        a.fxsave(ptr(DATA + 0x100))
    });
    assert_eq!(fault(&cpu).0, NO_FAULT);
    let img = read(&mem, DATA + 0x100, 160);
    assert_eq!(u16::from_le_bytes([img[0], img[1]]), CW_INIT);
    assert_eq!(u16::from_le_bytes([img[2], img[3]]) >> 11 & 7, 6, "TOP");
    assert_eq!(img[4], 0xC0, "abridged tags: R6 and R7 hold values");
    assert_eq!(&img[32..42], &cpu.state.fpu.st(0).to_bytes(), "ST(0), pi");
    assert_eq!(&img[48..58], &F80::ONE.to_bytes(), "ST(1)");
    assert_eq!(cpu.state.fpu.top, 6, "FXSAVE does not reinitialize");
}

#[test]
fn fxrstor_brings_back_what_fxsave_stored() {
    let cw = (CW_INIT & !0x04).to_le_bytes();
    let (cpu, _) = run(0, &cw, |a| {
        divide_by_zero_unmasked(a)?; // ES pending, stack 1 and 0
        a.fxsave(ptr(DATA + 0x100))?;
        a.fninit()?;
        a.fldpi()?;
        a.fxrstor(ptr(DATA + 0x100))
    });
    assert_eq!(fault(&cpu).0, NO_FAULT, "FXSAVE and FXRSTOR do not wait");
    let f = &cpu.state.fpu;
    assert_eq!((f.st(0), f.st(1)), (F80::ONE, F80::ZERO));
    assert_eq!(f.cw & 0x04, 0, "the unmasked ZE came back");
    assert_ne!(f.sw & SW_ES, 0, "and the exception is pending again");
    assert_eq!(f.empty, 0x3F);
}

#[test]
fn fxsave_wants_16_byte_alignment_and_honours_ts_and_em() {
    let (cpu, _) = run(0, &[], |a| a.fxsave(ptr(DATA + 0x108)));
    assert_eq!(fault(&cpu), (13, 0x1000));
    for bit in [CR0_TS, CR0_EM] {
        let (cpu, _) = run(bit, &[], |a| a.fxrstor(ptr(DATA + 0x100)));
        assert_eq!(fault(&cpu), (7, 0x1000));
    }
}
