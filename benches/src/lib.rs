//! ferrite-benches: shared set-up for the criterion micro benchmarks in
//! `benches/` and, later, the whole-guest benchmarks.

use ferrite_core::{Cpu, GuestMemory, PhysAddr};
use iced_x86::code_asm::{CodeAssembler, IcedError};

/// Where benchmark code is loaded.
pub const CODE_BASE: u32 = 0x10_0000;

/// A CPU in flat 32-bit protected mode (no tables needed: the segment
/// caches are set directly) with `code` at [`CODE_BASE`] and 16 MiB of RAM.
pub fn flat32(code: &[u8]) -> (Cpu, GuestMemory) {
    let mut mem = GuestMemory::new(16 << 20).expect("16 MiB of guest RAM");
    mem.load(PhysAddr(CODE_BASE), code);
    let mut cpu = Cpu::new();
    cpu.state.enter_flat32(8, 16);
    cpu.state.eip = CODE_BASE;
    cpu.state.regs[ferrite_core::cpu::state::ESP] = 0x8_0000;
    (cpu, mem)
}

/// Assemble 32-bit code for [`CODE_BASE`], ending in HLT.
pub fn assemble32(build: impl FnOnce(&mut CodeAssembler) -> Result<(), IcedError>) -> Vec<u8> {
    let mut a = CodeAssembler::new(32).expect("32-bit assembler");
    build(&mut a).expect("benchmark code assembles");
    a.hlt().expect("hlt");
    a.assemble(CODE_BASE as u64).expect("benchmark code assembles")
}

/// Tight integer loop: 4 instructions per iteration, `iters` iterations.
pub fn integer_loop(iters: u32) -> Vec<u8> {
    use iced_x86::code_asm::*;
    assemble32(|a| {
        let mut l = a.create_label();
        a.mov(ecx, iters)?;
        a.mov(ebx, 0x9E37_79B9u32)?;
        a.set_label(&mut l)?;
        a.add(eax, ebx)?;
        a.xor(edx, eax)?;
        a.dec(ecx)?;
        a.jnz(l)
    })
}

/// Memory-heavy loop: load, read-modify-write store, pointer bumps over a
/// 64 KiB window; 7 instructions per iteration.
pub fn memory_loop(iters: u32) -> Vec<u8> {
    use iced_x86::code_asm::*;
    assemble32(|a| {
        let mut l = a.create_label();
        a.mov(ecx, iters)?;
        a.mov(esi, 0x20_0000u32)?;
        a.mov(edi, 0x30_0000u32)?;
        a.set_label(&mut l)?;
        a.mov(eax, dword_ptr(esi))?;
        a.add(dword_ptr(edi), eax)?;
        a.add(esi, 4)?;
        a.add(edi, 4)?;
        a.and(esi, 0x20_FFFFu32)?;
        a.dec(ecx)?;
        a.jnz(l)
    })
}

/// [`flat32`] on a Pentium 4 model with CR4.OSFXSR set (SSE and SSE2 run),
/// and 4 KiB of data at 0x20_0000 (bytes of a simple sequence).
pub fn flat32_sse2(code: &[u8]) -> (Cpu, GuestMemory) {
    let (mut cpu, mut mem) = flat32(code);
    let data: Vec<u8> = (0..4096u32).map(|k| (k.wrapping_mul(0x9E37_79B9) >> 24) as u8).collect();
    mem.load(PhysAddr(0x20_0000), &data);
    cpu.set_model(ferrite_core::cpu::cpuid::CpuModel::Pentium4);
    cpu.state.cr4 |= ferrite_core::cpu::state::CR4_OSFXSR;
    (cpu, mem)
}

/// SSE2 integer loop over a 4 KiB buffer: two aligned loads, byte and
/// dword additions, a shuffle, a shift, logic and an aligned store;
/// 13 instructions per iteration.
pub fn sse2_loop(iters: u32) -> Vec<u8> {
    use iced_x86::code_asm::*;
    assemble32(|a| {
        let mut l = a.create_label();
        a.mov(ecx, iters)?;
        a.mov(esi, 0x20_0000u32)?;
        a.pxor(xmm7, xmm7)?;
        a.set_label(&mut l)?;
        a.movdqa(xmm0, xmmword_ptr(esi))?;
        a.movdqa(xmm1, xmmword_ptr(esi + 16))?;
        a.paddb(xmm0, xmm1)?;
        a.pxor(xmm7, xmm0)?;
        a.pshufd(xmm2, xmm7, 0x4E)?;
        a.paddd(xmm7, xmm2)?;
        a.psrlq(xmm2, 7)?;
        a.por(xmm7, xmm2)?;
        a.movdqa(xmmword_ptr(esi + 32), xmm7)?;
        a.add(esi, 16)?;
        a.and(esi, 0x20_0FBFu32)?;
        a.dec(ecx)?;
        a.jnz(l)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferrite_core::{NullBus, StepOutcome};

    #[test]
    fn benchmark_loops_run_to_hlt_with_the_expected_instruction_count() {
        for (code, per_iter, setup) in [(integer_loop(1000), 4, 2), (memory_loop(1000), 7, 3)] {
            let (mut cpu, mut mem) = flat32(&code);
            let (out, n) = cpu.run(&mut mem, &mut NullBus, 1_000_000);
            assert_eq!(out, StepOutcome::Halted);
            assert_eq!(n, 1000 * per_iter + setup + 1);
        }
        let (mut cpu, mut mem) = flat32_sse2(&sse2_loop(1000));
        let (out, n) = cpu.run(&mut mem, &mut NullBus, 1_000_000);
        assert_eq!(out, StepOutcome::Halted);
        assert_eq!(n, 1000 * 13 + 3 + 1);
        assert_ne!(cpu.state.sse.xmm[7], 0, "the loop computed nothing");
    }
}
