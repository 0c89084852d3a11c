//! Translated code keeps one fast TLB per privilege class (the mode key
//! fixes a block's CPL), and they are not emptied when the CPL changes:
//! a page the kernel read must still fault for user code that reads it
//! when the page is supervisor-only, with no TLB flush in between.

use ferrite_core::cpu::state::{CR0_PG, CR4_PSE};
use ferrite_core::{Cpu, GuestMemory, NullBus, PhysAddr, StepOutcome};
use ferrite_jit::{Jit, JitMode};
use iced_x86::code_asm::*;

const KERNEL: u32 = 0x10_0000;
const USER: u32 = 0x10_0100;
const PD: u32 = 0x1000;
/// Mapped supervisor-only (the second 4 MiB page).
const SECRET: u32 = 0x40_0000;

fn code(at: u32, f: impl FnOnce(&mut CodeAssembler) -> Result<(), IcedError>) -> Vec<u8> {
    let mut a = CodeAssembler::new(32).unwrap();
    f(&mut a).unwrap();
    a.assemble(at as u64).unwrap()
}

/// The kernel reads SECRET and halts; then, at CPL 3 and with the same
/// TLB, user code reads it.
fn run(mode: JitMode) -> (Cpu, StepOutcome) {
    let mut mem = GuestMemory::new(8 << 20).expect("guest RAM");
    // 4 MiB pages: the first user-accessible, the second supervisor-only.
    let mut pd = vec![0u8; 8];
    pd[..4].copy_from_slice(&0x0000_0087u32.to_le_bytes());
    pd[4..].copy_from_slice(&(SECRET | 0x83).to_le_bytes());
    mem.load(PhysAddr(PD), &pd);
    mem.load(PhysAddr(SECRET), &0xDEAD_BEEFu32.to_le_bytes());
    mem.load(
        PhysAddr(KERNEL),
        &code(KERNEL, |a| {
            a.mov(eax, dword_ptr(SECRET))?;
            a.hlt()
        }),
    );
    mem.load(
        PhysAddr(USER),
        &code(USER, |a| {
            a.mov(ebx, dword_ptr(SECRET))?;
            a.hlt()
        }),
    );
    let mut cpu = Cpu::new();
    cpu.state.enter_flat32(8, 16);
    cpu.state.cr4 |= CR4_PSE;
    cpu.state.cr3 = PD;
    cpu.state.cr0 |= CR0_PG;
    cpu.flush_caches();
    cpu.state.eip = KERNEL;
    Jit::install(&mut cpu, mode).expect("translator");
    let (out, _) = cpu.run(&mut mem, &mut NullBus, 1000);
    assert_eq!(out, StepOutcome::Halted);
    assert_eq!(cpu.state.regs[0], 0xDEAD_BEEF, "the kernel reads the page");
    // To user mode without touching the TLB (as IRET to CPL 3 would).
    cpu.state.halted = false;
    cpu.state.cpl = 3;
    cpu.state.eip = USER;
    let (out, _) = cpu.run(&mut mem, &mut NullBus, 1000);
    (cpu, out)
}

#[test]
fn user_code_does_not_use_what_the_kernel_put_in_the_fast_tlb() {
    let (jit, out) = run(JitMode::Force);
    assert_ne!(jit.state.regs[3], 0xDEAD_BEEF, "user code read a supervisor-only page");
    // The read faulted (no IDT here: the fault escalates to a shutdown).
    assert_eq!(jit.state.cr2, SECRET);
    assert!(jit.accel_stats().is_some_and(|s| s.insns_translated >= 1), "the kernel's read ran translated");
    let (interp, out_i) = run(JitMode::Off);
    assert_eq!(out, out_i);
    assert_eq!(jit.state.regs, interp.state.regs);
    assert_eq!(jit.state.eip, interp.state.eip);
}
