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

/// A bus whose interrupt line can be raised by the test.
#[derive(Default)]
struct IrqBus {
    pending: Option<u8>,
    acks: u32,
}

impl crate::bus::Bus for IrqBus {
    fn io_read(&mut self, _: u16, size: crate::bus::AccessSize) -> u32 {
        size.all_ones()
    }
    fn io_write(&mut self, _: u16, _: crate::bus::AccessSize, _: u32) {}
    fn interrupt_pending(&self) -> bool {
        self.pending.is_some()
    }
    fn acknowledge_interrupt(&mut self) -> Option<u8> {
        self.acks += 1;
        self.pending.take()
    }
}

/// Real-mode machine with an IVT entry for `vector` pointing at a handler
/// that increments BX and IRETs.
fn irq_machine(code: &[u8], vector: u8) -> (Cpu, GuestMemory) {
    handler_machine(code, vector, 0x3000, &[0x43, 0xCF]) // inc bx ; iret
}

/// Real-mode machine: `code` at 0000:1000, SP = 0x8000, and the IVT entry
/// for `vector` pointing at `handler` placed at 0000:`at`.
fn handler_machine(code: &[u8], vector: u8, at: u16, handler: &[u8]) -> (Cpu, GuestMemory) {
    let mut mem = GuestMemory::new(1 << 20).unwrap();
    mem.load(PhysAddr(at as u32), handler);
    let [lo, hi] = at.to_le_bytes();
    mem.load(PhysAddr(vector as u32 * 4), &[lo, hi, 0x00, 0x00]);
    mem.load(PhysAddr(0x1000), code);
    let mut cpu = Cpu::new();
    cpu.state.load_seg_real(SegReg::Cs, 0);
    cpu.state.eip = 0x1000;
    cpu.state.regs[ESP] = 0x8000;
    (cpu, mem)
}

#[test]
fn external_interrupt_is_taken_only_with_if_set_and_after_the_sti_shadow() {
    // cli ; nop ; sti ; nop ; nop ; hlt
    let (mut cpu, mut mem) = irq_machine(&[0xFA, 0x90, 0xFB, 0x90, 0x90, 0xF4], 0x20);
    let mut bus = IrqBus { pending: Some(0x20), acks: 0 };
    cpu.step(&mut mem, &mut bus); // cli
    cpu.step(&mut mem, &mut bus); // nop: IF clear, not taken
    assert_eq!(bus.acks, 0);
    cpu.step(&mut mem, &mut bus); // sti
    cpu.step(&mut mem, &mut bus); // nop in the STI shadow: not taken yet
    assert_eq!(bus.acks, 0);
    assert_eq!(cpu.state.eip, 0x1004);
    cpu.step(&mut mem, &mut bus); // now the interrupt is delivered
    assert_eq!(bus.acks, 1);
    assert_eq!(cpu.state.eip, 0x3000);
    let (out, _) = cpu.run(&mut mem, &mut bus, 10);
    assert_eq!(out, StepOutcome::Halted);
    assert_eq!(cpu.state.regs[EBX] & 0xFFFF, 1);
    assert_eq!(cpu.state.eip, 0x1006, "handler returned to the second nop, then HLT ran");
}

#[test]
fn interrupt_wakes_a_halted_cpu_and_returns_after_hlt() {
    // sti ; hlt ; inc cx ; hlt
    let (mut cpu, mut mem) = irq_machine(&[0xFB, 0xF4, 0x41, 0xF4], 0x08);
    let mut bus = IrqBus::default();
    let (out, _) = cpu.run(&mut mem, &mut bus, 10);
    assert_eq!(out, StepOutcome::Halted);
    assert_eq!(cpu.state.eip, 0x1002);
    bus.pending = Some(0x08);
    let (out, _) = cpu.run(&mut mem, &mut bus, 10);
    assert_eq!(out, StepOutcome::Halted);
    assert_eq!(cpu.state.regs[EBX] & 0xFFFF, 1);
    assert_eq!(cpu.state.regs[ECX] & 0xFFFF, 1);
    assert_eq!(cpu.state.eip, 0x1004);
}

#[test]
fn trap_flag_single_steps_through_int1_after_each_instruction() {
    // pushf ; pop ax ; or ax, 0x100 ; push ax ; popf ; nop ; nop ; hlt
    let code = [0x9C, 0x58, 0x0D, 0x00, 0x01, 0x50, 0x9D, 0x90, 0x90, 0xF4];
    let (mut cpu, mut mem) = irq_machine(&code, 1);
    // pushf, pop, or, push, popf: POPF sets TF but started with TF clear,
    // so no trap after it. Each NOP then traps (the step that retires it
    // also delivers #DB), and the handler's INC and IRET run without TF.
    let (out, n) = cpu.run(&mut mem, &mut NullBus, 11);
    assert_eq!((out, n), (StepOutcome::Continue, 11));
    assert_eq!(cpu.state.eip, 0x1009, "stopped at the HLT, TF still set");
    assert_ne!(cpu.state.eflags() & super::flags::TF, 0);
    assert_eq!(cpu.state.regs[EBX] & 0xFFFF, 2);
}

#[test]
fn long_rep_stosb_yields_and_resumes_with_the_right_count() {
    let (cpu, mem) = run16(0x1000, |a| {
        a.mov(di, 0x4000)?;
        a.mov(cx, 3000)?;
        a.mov(al, 0xAB)?;
        a.cld()?;
        a.rep().stosb()
    });
    assert_eq!(cpu.state.regs[ECX] & 0xFFFF, 0);
    assert_eq!(cpu.state.regs[super::state::EDI] & 0xFFFF, 0x4000 + 3000);
    assert_eq!(mem.peek(PhysAddr(0x4000 + 2999)), 0xAB);
    assert_eq!(mem.peek(PhysAddr(0x4000 + 3000)), 0);
}

#[test]
fn a_handler_that_faults_again_loops_instead_of_shutting_down() {
    // #UD handler at 0x3000 is itself UD2: every delivery succeeds, so the
    // CPU keeps delivering #UD (pushing frames) and must not triple-fault.
    let mut mem = GuestMemory::new(1 << 20).unwrap();
    mem.load(PhysAddr(0x3000), &[0x0F, 0x0B]);
    mem.load(PhysAddr(6 * 4), &[0x00, 0x30, 0x00, 0x00]);
    mem.load(PhysAddr(0x1000), &[0x0F, 0x0B]);
    let mut cpu = Cpu::new();
    cpu.state.load_seg_real(SegReg::Cs, 0);
    cpu.state.eip = 0x1000;
    cpu.state.regs[ESP] = 0x8000;
    let (out, n) = cpu.run(&mut mem, &mut NullBus, 50);
    assert_eq!((out, n), (StepOutcome::Continue, 50));
    assert_eq!(cpu.state.regs[ESP] & 0xFFFF, 0x8000 - 6 * 50);
}

#[test]
fn cached_instruction_crossing_a_lowered_cs_limit_faults() {
    let mut mem = GuestMemory::new(1 << 20).unwrap();
    // The #GP handler must lie below the lowered limit: real mode keeps
    // the CS limit across the far transfer.
    mem.load(PhysAddr(0x0500), &[0xF4]);
    mem.load(PhysAddr(13 * 4), &[0x00, 0x05, 0x00, 0x00]);
    // mov ax, 0x1234 at 0x1000 (3 bytes), then hlt.
    mem.load(PhysAddr(0x1000), &[0xB8, 0x34, 0x12, 0xF4]);
    let mut cpu = Cpu::new();
    cpu.state.load_seg_real(SegReg::Cs, 0);
    cpu.state.eip = 0x1000;
    cpu.state.regs[ESP] = 0x8000;
    assert_eq!(cpu.run(&mut mem, &mut NullBus, 10).0, StepOutcome::Halted);
    // Same bytes, now cached, with a limit that cuts the MOV in half.
    cpu.state.halted = false;
    cpu.state.eip = 0x1000;
    cpu.state.segs[SegReg::Cs as usize].limit = 0x1001;
    assert_eq!(cpu.run(&mut mem, &mut NullBus, 10).0, StepOutcome::Halted);
    assert_eq!(cpu.state.eip, 0x0501, "#GP(0) delivered instead of executing");
}

/// Real-mode machine whose handler for `vector` is a HLT at 0x0500.
fn fault_machine(code: &[u8], vector: u8) -> (Cpu, GuestMemory) {
    handler_machine(code, vector, 0x0500, &[0xF4])
}

#[test]
fn instruction_longer_than_15_bytes_is_gp_not_ud() {
    // 10 ES prefixes + 66 81 C0 imm32 (add eax, imm32) = 17 bytes.
    let mut code = vec![0x26; 10];
    code.extend_from_slice(&[0x66, 0x81, 0xC0, 0x44, 0x33, 0x22, 0x11]);
    let (mut cpu, mut mem) = fault_machine(&code, 13);
    assert_eq!(cpu.run(&mut mem, &mut NullBus, 10).0, StepOutcome::Halted);
    assert_eq!(cpu.state.eip, 0x0501, "#GP(0) delivered");
    assert_eq!(mem.peek(PhysAddr(0x8000 - 6)), 0x00, "pushed IP points at the first prefix");
    assert_eq!(mem.peek(PhysAddr(0x8000 - 5)), 0x10);
    // 15 bytes exactly is fine: 8 prefixes + the 7-byte ADD.
    let mut code = vec![0x26; 8];
    code.extend_from_slice(&[0x66, 0x81, 0xC0, 0x44, 0x33, 0x22, 0x11, 0xF4]);
    let (mut cpu, mut mem) = fault_machine(&code, 13);
    assert_eq!(cpu.run(&mut mem, &mut NullBus, 10).0, StepOutcome::Halted);
    assert_eq!(cpu.state.regs[EAX], 0x1122_3344);
}

#[test]
fn real_mode_far_call_beyond_the_cs_limit_faults_before_pushing() {
    // o32 call far 2000:00012345
    let code = [0x66, 0x9A, 0x45, 0x23, 0x01, 0x00, 0x00, 0x20];
    let (mut cpu, mut mem) = fault_machine(&code, 13);
    assert_eq!(cpu.run(&mut mem, &mut NullBus, 10).0, StepOutcome::Halted);
    assert_eq!(cpu.state.eip, 0x0501);
    assert_eq!(cpu.state.regs[ESP] & 0xFFFF, 0x8000 - 6, "only the #GP frame was pushed");
    assert_eq!(mem.peek(PhysAddr(0x8000 - 6)), 0x00, "frame points at the CALL");
}

#[test]
fn instruction_breakpoint_faults_before_the_instruction() {
    // Handler: inc bx ; clear DR7 (so the instruction can run) ; iret.
    let mut mem = GuestMemory::new(1 << 20).unwrap();
    mem.load(PhysAddr(0x3000), &[0x43, 0x66, 0x31, 0xC0, 0x0F, 0x23, 0xF8, 0xCF]);
    mem.load(PhysAddr(4), &[0x00, 0x30, 0x00, 0x00]);
    // 0x1000: nop ; 0x1001: inc cx (breakpoint) ; hlt
    mem.load(PhysAddr(0x1000), &[0x90, 0x41, 0xF4]);
    let mut cpu = Cpu::new();
    cpu.state.load_seg_real(SegReg::Cs, 0);
    cpu.state.eip = 0x1000;
    cpu.state.regs[ESP] = 0x8000;
    cpu.state.dr[0] = 0x1001;
    cpu.state.dr[7] = 0x401; // L0, execute, 1 byte
    assert_eq!(cpu.run(&mut mem, &mut NullBus, 100).0, StepOutcome::Halted);
    assert_eq!(cpu.state.regs[EBX] & 0xFFFF, 1, "one #DB");
    assert_eq!(cpu.state.regs[ECX] & 0xFFFF, 1, "the instruction ran after the handler");
    assert_eq!(cpu.state.dr[6] & 0xF, 1, "B0 reported");
}

#[test]
fn data_breakpoint_traps_after_the_writing_instruction() {
    // Handler: pop ax (return IP) into DX via mov, push back, iret.
    let mut mem = GuestMemory::new(1 << 20).unwrap();
    // pop dx ; push dx ; inc bx ; iret
    mem.load(PhysAddr(0x3000), &[0x5A, 0x52, 0x43, 0xCF]);
    mem.load(PhysAddr(4), &[0x00, 0x30, 0x00, 0x00]);
    // 0x1000: mov [0x2000], ax (3 bytes) ; mov cx, [0x2100] (4 bytes) ; hlt
    mem.load(PhysAddr(0x1000), &[0xA3, 0x00, 0x20, 0x8B, 0x0E, 0x00, 0x21, 0xF4]);
    let mut cpu = Cpu::new();
    cpu.state.load_seg_real(SegReg::Cs, 0);
    cpu.state.eip = 0x1000;
    cpu.state.regs[ESP] = 0x8000;
    cpu.state.dr[1] = 0x2001; // watch the word at 0x2000 (LEN 2 aligns down)
    cpu.state.dr[7] = (0b0101 << 20) | 0x4; // L1, RW=01 write, LEN=01
    assert_eq!(cpu.run(&mut mem, &mut NullBus, 100).0, StepOutcome::Halted);
    assert_eq!(cpu.state.regs[EBX] & 0xFFFF, 1, "only the write trapped, not the read elsewhere");
    assert_eq!(cpu.state.regs[super::state::EDX] & 0xFFFF, 0x1003, "trap returns after the store");
    assert_eq!(cpu.state.dr[6] & 0xF, 2, "B1 reported");
}

#[test]
fn general_detect_faults_on_debug_register_access() {
    let mut mem = GuestMemory::new(1 << 20).unwrap();
    mem.load(PhysAddr(0x3000), &[0xF4]);
    mem.load(PhysAddr(4), &[0x00, 0x30, 0x00, 0x00]);
    mem.load(PhysAddr(0x1000), &[0x0F, 0x21, 0xC0]); // mov eax, dr0
    let mut cpu = Cpu::new();
    cpu.state.load_seg_real(SegReg::Cs, 0);
    cpu.state.eip = 0x1000;
    cpu.state.regs[ESP] = 0x8000;
    cpu.state.dr[7] |= 1 << 13;
    assert_eq!(cpu.run(&mut mem, &mut NullBus, 10).0, StepOutcome::Halted);
    assert_eq!(cpu.state.eip, 0x3001);
    assert_ne!(cpu.state.dr[6] & (1 << 13), 0, "BD set");
    assert_eq!(cpu.state.dr[7] & (1 << 13), 0, "GD cleared for the handler");
    assert_eq!(mem.peek(PhysAddr(0x8000 - 6)), 0x00, "a fault: return IP is the MOV");
}

/// REP MOVS/STOS take a bulk path inside RAM pages; whatever path runs,
/// memory and registers must be what the element-wise definition gives:
/// random counts, element sizes, overlapping operands (the repeating
/// pattern of a destination just above the source included), page
/// crossings and 16-bit offset wrap, checked against a model.
#[test]
fn rep_movs_and_stos_match_the_element_wise_definition() {
    use super::state::{EDI, ESI};
    let mut seed = 0x1234_5678_9ABC_DEF1u64;
    let mut rnd = move |n: u32| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % n as u64) as u32
    };
    for trial in 0..300 {
        let size = [1u32, 2, 4][rnd(3) as usize];
        let stos = rnd(3) == 0;
        let dseg = 0x1000 + rnd(0x10) * 0x100;
        let eseg = if rnd(2) == 0 { dseg } else { 0x3000 + rnd(0x10) * 0x100 };
        let src = rnd(0x10000) & !(size - 1);
        let dst = match rnd(3) {
            0 => src.wrapping_add(size) & 0xFFFF, // just above: pattern repeat
            1 => src.wrapping_sub(size * (1 + rnd(8))) & 0xFFFF & !(size - 1),
            _ => rnd(0x10000) & !(size - 1),
        };
        let cnt = if rnd(4) == 0 { rnd(0x10000) } else { rnd(3000) };
        let acc = rnd(u32::MAX);
        let mut a = CodeAssembler::new(16).unwrap();
        a.cld().unwrap();
        match (stos, size) {
            (false, 1) => a.rep().movsb(),
            (false, 2) => a.rep().movsw(),
            (false, _) => a.rep().movsd(),
            (true, 1) => a.rep().stosb(),
            (true, 2) => a.rep().stosw(),
            (true, _) => a.rep().stosd(),
        }
        .unwrap();
        a.hlt().unwrap();
        let code = a.assemble(0x500).unwrap();
        let mut mem = GuestMemory::new(1 << 20).unwrap();
        let fill: Vec<u8> = (0..0x40000).map(|_| rnd(256) as u8).collect();
        mem.load(PhysAddr(0x10000), &fill);
        mem.load(PhysAddr(0x500), &code);
        // The model: a flat copy of memory, element by element.
        let mut want: Vec<u8> = (0..0x60000).map(|p| mem.peek(PhysAddr(p))).collect();
        let (mut s, mut d) = (src, dst);
        for _ in 0..cnt {
            for b in 0..size {
                let v = if stos { (acc >> (8 * b)) as u8 } else { want[((dseg << 4) + ((s + b) & 0xFFFF)) as usize] };
                want[((eseg << 4) + ((d + b) & 0xFFFF)) as usize] = v;
            }
            s = (s + size) & 0xFFFF;
            d = (d + size) & 0xFFFF;
        }
        let mut cpu = Cpu::new();
        cpu.state.load_seg_real(SegReg::Cs, 0);
        cpu.state.load_seg_real(SegReg::Ds, dseg as u16);
        cpu.state.load_seg_real(SegReg::Es, eseg as u16);
        cpu.state.eip = 0x500;
        cpu.state.regs[ESP] = 0x7000;
        cpu.state.regs[ESI] = 0xABCD_0000 | src;
        cpu.state.regs[EDI] = 0x1234_0000 | dst;
        cpu.state.regs[ECX] = 0x5555_0000 | cnt;
        cpu.state.regs[EAX] = acc;
        let (out, _) = cpu.run(&mut mem, &mut NullBus, 1_000_000);
        assert_eq!(out, StepOutcome::Halted, "trial {trial}");
        let ctx = format!(
            "trial {trial}: size {size} stos {stos} dseg {dseg:#x} eseg {eseg:#x} src {src:#x} dst {dst:#x} cnt {cnt}"
        );
        assert_eq!(cpu.state.regs[ECX], 0x5555_0000, "{ctx}");
        assert_eq!(cpu.state.regs[EDI], 0x1234_0000 | (dst.wrapping_add(cnt * size) & 0xFFFF), "{ctx}");
        if !stos {
            assert_eq!(cpu.state.regs[ESI], 0xABCD_0000 | (src.wrapping_add(cnt * size) & 0xFFFF), "{ctx}");
        }
        for (p, w) in want.iter().enumerate() {
            assert_eq!(mem.peek(PhysAddr(p as u32)), *w, "{ctx}: byte {p:#x}");
        }
    }
}

/// REP MOVS onto a page holding decoded code still invalidates it: the
/// copy overwrites the instruction after the REP, which must then run as
/// the new bytes.
#[test]
fn rep_movs_over_following_code_runs_the_new_code() {
    let mut mem = GuestMemory::new(1 << 20).unwrap();
    // 0x1000: rep movsb; then 0x1002: inc bx (0x43); hlt.
    mem.load(PhysAddr(0x1000), &[0xF3, 0xA4, 0x43, 0xF4]);
    // Source: 0x41 (inc cx) to replace the inc bx.
    mem.load(PhysAddr(0x2000), &[0x41]);
    let mut cpu = Cpu::new();
    cpu.state.load_seg_real(SegReg::Cs, 0);
    cpu.state.eip = 0x1000;
    cpu.state.regs[ESP] = 0x7000;
    cpu.state.regs[super::state::ESI] = 0x2000;
    cpu.state.regs[super::state::EDI] = 0x1002;
    cpu.state.regs[ECX] = 1;
    let (out, _) = cpu.run(&mut mem, &mut NullBus, 100);
    assert_eq!(out, StepOutcome::Halted);
    assert_eq!(cpu.state.regs[ECX], 1, "inc cx ran (ECX went 1 -> 0 -> 1)");
    assert_eq!(cpu.state.regs[EBX], 0);
}
