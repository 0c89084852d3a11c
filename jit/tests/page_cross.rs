//! An instruction that starts in one page and ends in the next cannot be
//! in a block (blocks stay in one page): its entry gets a stub that has
//! the interpreter fetch and run just that instruction (as its bytes are
//! at the time) and goes on into translated code, and the code after it
//! is translated as a block of its own rather than interpreted up to the
//! next branch.

use ferrite_core::{Cpu, GuestMemory, NullBus, PhysAddr, StepOutcome};
use ferrite_jit::{Jit, JitMode};
use iced_x86::code_asm::*;

/// Flat 32-bit code `code` at `start` with the translator in `mode`, run
/// to its HLT within `max` instructions (EBX = `ebx_value` first).
fn run_code(code: &[u8], start: u32, mode: JitMode, ebx_value: u32, max: u64) -> Cpu {
    let mut mem = GuestMemory::new(4 << 20).expect("guest RAM");
    mem.load(PhysAddr(start), code);
    let mut cpu = Cpu::new();
    cpu.state.enter_flat32(8, 16);
    cpu.state.eip = start;
    cpu.state.regs[3] = ebx_value;
    Jit::install(&mut cpu, mode).expect("translator");
    let (out, _) = cpu.run(&mut mem, &mut NullBus, max);
    assert_eq!(out, StepOutcome::Halted);
    cpu
}

/// `MOV EAX, imm32` (5 bytes) two bytes before a page end, then `n`
/// register additions and HLT in the next page.
fn run(mode: JitMode, n: usize) -> (Cpu, u64) {
    let start = 0x10_0FFEu32;
    let mut a = CodeAssembler::new(32).unwrap();
    a.mov(eax, 0x1234_5678u32).unwrap();
    for _ in 0..n {
        a.add(eax, ebx).unwrap();
    }
    a.hlt().unwrap();
    let code = a.assemble(start as u64).unwrap();
    let cpu = run_code(&code, start, mode, 3, 10_000);
    let translated = cpu.accel_stats().map_or(0, |s| s.insns_translated);
    (cpu, translated)
}

#[test]
fn code_after_a_page_crossing_instruction_runs_translated() {
    let n = 40;
    let (cpu, translated) = run(JitMode::Force, n);
    assert_eq!(cpu.state.regs[0], 0x1234_5678u32.wrapping_add(3 * n as u32));
    // The MOV is interpreted; the additions (and the HLT) are not.
    assert!(translated >= n as u64, "only {translated} of {} instructions translated", n + 2);
    let (interp, _) = run(JitMode::Off, n);
    assert_eq!(interp.state.regs, cpu.state.regs);
    assert_eq!(interp.state.eip, cpu.state.eip);
}

/// A loop through a page-crossing `MOV EAX, imm32` (opcode and one byte
/// of the immediate at the end of one page, three in the next) whose body
/// increments the immediate's third byte, in the second page, every pass:
/// each pass must run the instruction as its bytes are then.
fn crossing_loop(mode: JitMode, passes: u32) -> Cpu {
    let start = 0x10_0FF0u32;
    let mut a = CodeAssembler::new(32).unwrap();
    let mut top = a.create_label();
    a.mov(ecx, passes).unwrap(); // 5 bytes: the loop starts at ..FF5
    a.set_label(&mut top).unwrap();
    for _ in 0..9 {
        a.nop().unwrap();
    }
    a.mov(eax, 0x1234_5678u32).unwrap(); // at ..FFE
    a.add(ebx, eax).unwrap();
    a.inc(byte_ptr(0x10_1001u32)).unwrap();
    a.dec(ecx).unwrap();
    a.jnz(top).unwrap();
    a.hlt().unwrap();
    let code = a.assemble(start as u64).unwrap();
    assert_eq!(code[0xE], 0xB8, "the MOV is at the page's last two bytes");
    run_code(&code, start, mode, 0, 1_000_000)
}

#[test]
fn a_page_crossing_instruction_runs_as_its_bytes_are_now() {
    let passes = 100u32;
    let want = (0..passes).fold(0u32, |s, k| s.wrapping_add(0x1234_5678 + (k << 16)));
    for mode in [JitMode::Off, JitMode::Force, JitMode::On] {
        let cpu = crossing_loop(mode, passes);
        assert_eq!(cpu.state.regs[3], want, "{mode:?}");
        assert_eq!(cpu.state.regs[0], 0x1234_5678 + ((passes - 1) << 16), "{mode:?}");
    }
}

/// Without the store into the code, the loop goes round in translated code
/// (the crossing instruction through its stub) without returning to the
/// dispatcher at every pass.
#[test]
fn a_loop_through_a_page_crossing_instruction_stays_translated() {
    let start = 0x10_0FF0u32;
    let passes = 1000u32;
    let mut a = CodeAssembler::new(32).unwrap();
    let mut top = a.create_label();
    a.mov(ecx, passes).unwrap();
    a.set_label(&mut top).unwrap();
    for _ in 0..9 {
        a.nop().unwrap();
    }
    a.mov(eax, 0x1234_5678u32).unwrap();
    a.add(ebx, eax).unwrap();
    a.dec(ecx).unwrap();
    a.jnz(top).unwrap();
    a.hlt().unwrap();
    let code = a.assemble(start as u64).unwrap();
    let cpu = run_code(&code, start, JitMode::Force, 0, 1_000_000);
    assert_eq!(cpu.state.regs[3], 0x1234_5678u32.wrapping_mul(passes));
    let s = cpu.accel_stats().expect("installed");
    assert!(s.block_runs < 20, "{} dispatcher entries for {passes} passes", s.block_runs);
    assert!(s.insns_translated * 10 > cpu.instret * 9, "{s:?} of {}", cpu.instret);
}
