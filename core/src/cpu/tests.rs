//! Unit tests of the interpreter on small programs assembled in the test.

use super::state::{SegReg, EAX, EBX, ECX, ESP};
use super::{Cpu, StepOutcome};
use crate::bus::NullBus;
use crate::mem::{GuestMemory, PhysAddr};
use iced_x86::code_asm::*;

/// Assemble 16-bit code at `org` (CS = 0) and run it to HLT.
fn run16(org: u32, build: impl FnOnce(&mut CodeAssembler) -> Result<(), IcedError>) -> (Cpu, GuestMemory) {
    let mut a = CodeAssembler::new(16).unwrap();
    build(&mut a).unwrap();
    a.hlt().unwrap();
    let code = a.assemble(org as u64).unwrap();
    let mut mem = GuestMemory::new(1 << 20).unwrap();
    mem.load(PhysAddr(org), &code);
    let mut cpu = Cpu::new();
    cpu.state.load_seg_real(SegReg::Cs, 0);
    cpu.state.eip = org;
    cpu.state.regs[ESP] = 0x7000;
    let mut bus = NullBus;
    let (out, _) = cpu.run(&mut mem, &mut bus, 1_000_000);
    assert_eq!(out, StepOutcome::Halted, "program did not halt: {:?}", cpu.state);
    (cpu, mem)
}

#[test]
fn loop_sums_one_to_ten() {
    let (cpu, _) = run16(0x1000, |a| {
        let mut l = a.create_label();
        a.mov(cx, 10)?;
        a.xor(ax, ax)?;
        a.set_label(&mut l)?;
        a.add(ax, cx)?;
        a.loop_(l)
    });
    assert_eq!(cpu.state.regs[EAX] & 0xFFFF, 55);
    assert_eq!(cpu.state.regs[ECX] & 0xFFFF, 0);
}

#[test]
fn store_to_the_very_next_instruction_is_seen() {
    // mov byte [next+1], 0x42 ; next: mov al, 0 -> AL must be 0x42, even
    // though the page was already decoded.
    let (cpu, _) = run16(0x1000, |a| {
        let mut next = a.create_label();
        a.mov(al, 0)?; // makes sure the page is in the decode cache first
        a.mov(byte_ptr(0x1000 + 2 + 5 + 1), 0x42)?;
        a.set_label(&mut next)?;
        a.mov(al, 0)
    });
    assert_eq!(cpu.state.regs[EAX] & 0xFF, 0x42);
}

#[test]
fn code_rewritten_inside_a_loop_takes_effect_next_iteration() {
    // The loop body's "add bx, 1" immediate is bumped each time: 1+2+3.
    let (cpu, _) = run16(0x2000, |a| {
        let mut top = a.create_label();
        a.xor(bx, bx)?;
        a.mov(cx, 3)?;
        a.set_label(&mut top)?;
        a.add(bx, 1)?; // 83 C3 01
        a.inc(byte_ptr(0x2000 + 2 + 3 + 2))?;
        a.loop_(top)
    });
    assert_eq!(cpu.state.regs[EBX] & 0xFFFF, 6);
}

#[test]
fn divide_error_goes_through_the_ivt_with_the_faulting_ip() {
    let mut mem = GuestMemory::new(1 << 20).unwrap();
    // Handler at 0x3000: pop ip into BX, hlt.
    mem.load(PhysAddr(0x3000), &[0x5B, 0xF4]);
    mem.load(PhysAddr(0), &[0x00, 0x30, 0x00, 0x00]);
    // At 0x1000: xor cx,cx ; div cx
    mem.load(PhysAddr(0x1000), &[0x31, 0xC9, 0xF7, 0xF1]);
    let mut cpu = Cpu::new();
    cpu.state.load_seg_real(SegReg::Cs, 0);
    cpu.state.eip = 0x1000;
    cpu.state.regs[ESP] = 0x8000;
    let (out, _) = cpu.run(&mut mem, &mut NullBus, 100);
    assert_eq!(out, StepOutcome::Halted);
    assert_eq!(cpu.state.regs[EBX] & 0xFFFF, 0x1002, "pushed IP is the DIV itself");
}

#[test]
fn word_access_at_offset_ffff_raises_gp_in_real_mode() {
    let mut mem = GuestMemory::new(1 << 20).unwrap();
    mem.load(PhysAddr(0x3000), &[0xF4]);
    mem.load(PhysAddr(13 * 4), &[0x00, 0x30, 0x00, 0x00]);
    // mov bx, 0xffff ; mov ax, [bx]
    mem.load(PhysAddr(0x1000), &[0xBB, 0xFF, 0xFF, 0x8B, 0x07]);
    let mut cpu = Cpu::new();
    cpu.state.load_seg_real(SegReg::Cs, 0);
    cpu.state.eip = 0x1000;
    cpu.state.regs[ESP] = 0x8000;
    let (out, _) = cpu.run(&mut mem, &mut NullBus, 100);
    assert_eq!(out, StepOutcome::Halted);
    assert_eq!(cpu.state.eip, 0x3001);
    assert_eq!(mem.peek(PhysAddr(0x8000 - 6)), 0x03, "return IP points at the MOV");
}

#[test]
fn triple_fault_requests_shutdown() {
    let mut mem = GuestMemory::new(1 << 20).unwrap();
    // IDT limit 0: every exception fails to deliver.
    mem.load(PhysAddr(0x1000), &[0x31, 0xC9, 0xF7, 0xF1]);
    let mut cpu = Cpu::new();
    cpu.state.load_seg_real(SegReg::Cs, 0);
    cpu.state.eip = 0x1000;
    cpu.state.idtr.limit = 0;
    let (out, _) = cpu.run(&mut mem, &mut NullBus, 100);
    assert_eq!(out, StepOutcome::Shutdown);
}

#[test]
fn rep_movsb_copies_and_counts_down() {
    let (cpu, mem) = run16(0x1000, |a| {
        a.mov(si, 0x4000)?;
        a.mov(di, 0x5000)?;
        a.mov(cx, 5)?;
        a.cld()?;
        a.rep().movsb()
    });
    assert_eq!(cpu.state.regs[ECX] & 0xFFFF, 0);
    assert_eq!(mem.peek(PhysAddr(0x5004)), mem.peek(PhysAddr(0x4004)));
}

#[test]
fn cpuid_reports_the_vendor_and_family() {
    let (cpu, _) = run16(0x1000, |a| {
        a.mov(eax, 1)?;
        a.cpuid()
    });
    assert_eq!((cpu.state.regs[EAX] >> 8) & 0xF, 6);
}

#[test]
fn lock_on_a_register_destination_is_ud() {
    let mut mem = GuestMemory::new(1 << 20).unwrap();
    mem.load(PhysAddr(0x3000), &[0xF4]);
    mem.load(PhysAddr(6 * 4), &[0x00, 0x30, 0x00, 0x00]);
    mem.load(PhysAddr(0x1000), &[0xF0, 0x01, 0xC0]); // lock add ax, ax
    let mut cpu = Cpu::new();
    cpu.state.load_seg_real(SegReg::Cs, 0);
    cpu.state.eip = 0x1000;
    cpu.state.regs[ESP] = 0x8000;
    let (out, _) = cpu.run(&mut mem, &mut NullBus, 10);
    assert_eq!(out, StepOutcome::Halted);
    assert_eq!(cpu.state.eip, 0x3001);
}
