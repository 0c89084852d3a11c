//! An instruction that starts in one page and ends in the next cannot be
//! in a block (blocks stay in one page): the interpreter runs just that
//! instruction, and the code after it is translated as a block of its own
//! rather than interpreted up to the next branch.

use ferrite_core::{Cpu, GuestMemory, NullBus, PhysAddr, StepOutcome};
use ferrite_jit::{Jit, JitMode};
use iced_x86::code_asm::*;

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
    let mut mem = GuestMemory::new(4 << 20).expect("guest RAM");
    mem.load(PhysAddr(start), &code);
    let mut cpu = Cpu::new();
    cpu.state.enter_flat32(8, 16);
    cpu.state.eip = start;
    cpu.state.regs[3] = 3;
    Jit::install(&mut cpu, mode).expect("translator");
    let (out, _) = cpu.run(&mut mem, &mut NullBus, 10_000);
    assert_eq!(out, StepOutcome::Halted);
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
