//! RDTSC in translated code reads the same time stamp as the interpreter:
//! the TSC counts retired instructions, so the value depends on exactly
//! where in a block it runs, across slices of any size.

use ferrite_core::{Cpu, GuestMemory, NullBus, PhysAddr, StepOutcome};
use ferrite_jit::{Jit, JitMode};
use iced_x86::code_asm::*;

const BASE: u32 = 0x10_0000;

fn machine(mode: Option<JitMode>) -> (Cpu, GuestMemory) {
    let mut a = CodeAssembler::new(32).unwrap();
    let mut top = a.create_label();
    a.mov(ecx, 300u32).unwrap();
    a.set_label(&mut top).unwrap();
    a.rdtsc().unwrap();
    a.mov(esi, eax).unwrap();
    a.add(edi, edx).unwrap();
    a.push(eax).unwrap();
    a.pop(ebx).unwrap();
    a.rdtsc().unwrap();
    a.rdtsc().unwrap();
    a.sub(eax, esi).unwrap();
    a.add(ebp, eax).unwrap();
    a.dec(ecx).unwrap();
    a.jnz(top).unwrap();
    a.hlt().unwrap();
    let code = a.assemble(BASE as u64).unwrap();
    let mut mem = GuestMemory::new(4 << 20).expect("guest RAM");
    mem.load(PhysAddr(BASE), &code);
    let mut cpu = Cpu::new();
    cpu.state.enter_flat32(8, 16);
    cpu.state.eip = BASE;
    cpu.state.regs[4] = 0x8_0000;
    // A TSC near a 32-bit carry, so EDX moves during the loop.
    cpu.state.tsc = 0xFFFF_F000;
    if let Some(m) = mode {
        Jit::install(&mut cpu, m).expect("translator");
    }
    (cpu, mem)
}

#[test]
fn rdtsc_reads_the_same_count_translated_and_interpreted() {
    for slice in [1u64, 7, 64, 100_000] {
        let (mut i, mut mi) = machine(None);
        let (mut j, mut mj) = machine(Some(JitMode::Force));
        loop {
            let (oi, _) = i.run(&mut mi, &mut NullBus, slice);
            let (oj, _) = j.run(&mut mj, &mut NullBus, slice);
            assert_eq!(i.state.regs, j.state.regs, "slice {slice}: registers differ at instret {}", i.instret);
            assert_eq!((i.state.eip, i.instret), (j.state.eip, j.instret), "slice {slice}");
            assert_eq!(oi, oj);
            if oi == StepOutcome::Halted {
                break;
            }
        }
        assert_eq!(j.state.regs[1], 0);
        // The last RDTSC of a pass runs six instructions after the first.
        assert_eq!(j.state.regs[5], 300 * 6, "slice {slice}");
        let translated = j.accel_stats().map_or(0, |s| s.insns_translated);
        if slice >= 64 {
            assert!(translated * 2 > j.instret, "slice {slice}: {translated} of {} translated", j.instret);
        }
    }
}
