//! SSE and SSE2 in translated code (`lower::simd`): a loop that runs every
//! form the translator lowers to vector operations — loads and stores of
//! every width (aligned, unaligned, crossing pages), the integer
//! arithmetic, logic, shifts by immediates, registers and memory (counts
//! past the lane width too), shuffles, unpacks, packs, mask extraction,
//! word inserts and extracts — with floating-point forms (helper calls)
//! between them. Memory, general registers, flags and the whole XMM state
//! must be exactly the interpreter's, which the host CPU oracle
//! (`core/tests/oracle/integer.rs`) checks against hardware.

use ferrite_core::cpu::cpuid::CpuModel;
use ferrite_core::cpu::state::CR4_OSFXSR;
use ferrite_core::{Cpu, GuestMemory, NullBus, PhysAddr, StepOutcome};
use ferrite_jit::{Jit, JitMode};
use iced_x86::code_asm::*;

const CODE: u32 = 0x10_0000;
const INPUT: u32 = 0x20_0000;
const OUTPUT: u32 = 0x30_0000;
const PASSES: u32 = 80;
/// Input and output record sizes: multiples of 16 (aligned operands),
/// the output's not a divisor of the page size (records cross pages).
const IN_REC: u32 = 0x60;
const OUT_REC: u32 = 0xB0;

fn program() -> Vec<u8> {
    let mut a = CodeAssembler::new(32).unwrap();
    build(&mut a).unwrap();
    a.assemble(CODE as u64).unwrap()
}

fn build(a: &mut CodeAssembler) -> Result<(), IcedError> {
    let mut top = a.create_label();
    a.mov(esi, INPUT)?;
    a.mov(edi, OUTPUT)?;
    a.mov(ecx, PASSES)?;
    a.set_label(&mut top)?;
    // Loads of every width.
    a.movdqa(xmm0, xmmword_ptr(esi))?;
    a.movdqu(xmm1, xmmword_ptr(esi + 0x11))?;
    a.movq(xmm2, qword_ptr(esi + 0x20))?;
    a.movd(xmm3, dword_ptr(esi + 0x28))?;
    a.movss(xmm4, dword_ptr(esi + 0x2C))?;
    a.movsd_2(xmm5, qword_ptr(esi + 0x30))?;
    a.movhps(xmm5, qword_ptr(esi + 0x38))?;
    a.movlps(xmm4, qword_ptr(esi + 0x40))?;
    a.movhpd(xmm3, qword_ptr(esi + 0x18))?;
    a.movlpd(xmm2, qword_ptr(esi + 0x08))?;
    a.movd(xmm7, dword_ptr(esi + 0x48))?;
    a.movups(xmm6, xmmword_ptr(esi + 0x03))?;
    a.movapd(xmm6, xmm6)?;
    // Integer arithmetic and compares, register and memory sources.
    a.paddb(xmm0, xmm1)?;
    a.paddw(xmm1, xmm2)?;
    a.paddd(xmm2, xmmword_ptr(esi + 0x40))?;
    a.paddq(xmm3, xmm0)?;
    a.psubb(xmm4, xmm3)?;
    a.psubw(xmm5, xmmword_ptr(esi + 0x10))?;
    a.psubd(xmm0, xmm5)?;
    a.psubq(xmm1, xmm4)?;
    a.paddsb(xmm2, xmm6)?;
    a.paddsw(xmm3, xmm1)?;
    a.paddusb(xmm4, xmm0)?;
    a.paddusw(xmm5, xmm2)?;
    a.psubsb(xmm6, xmm3)?;
    a.psubsw(xmm0, xmm4)?;
    a.psubusb(xmm1, xmm5)?;
    a.psubusw(xmm2, xmm6)?;
    a.pcmpeqb(xmm3, xmm0)?;
    a.pcmpeqw(xmm4, xmm4)?;
    a.pcmpeqd(xmm5, xmm1)?;
    a.pcmpgtb(xmm6, xmm2)?;
    a.pcmpgtw(xmm0, xmm3)?;
    a.pcmpgtd(xmm1, xmmword_ptr(esi + 0x20))?;
    a.pmullw(xmm2, xmm0)?;
    a.pminub(xmm3, xmm1)?;
    a.pmaxub(xmm4, xmm2)?;
    a.pminsw(xmm5, xmm3)?;
    a.pmaxsw(xmm6, xmm4)?;
    a.pavgb(xmm0, xmm5)?;
    a.pavgw(xmm1, xmm6)?;
    // Logic.
    a.pand(xmm2, xmm1)?;
    a.pandn(xmm3, xmm0)?;
    a.por(xmm4, xmm2)?;
    a.pxor(xmm5, xmm3)?;
    a.andps(xmm6, xmm4)?;
    a.andnpd(xmm0, xmm5)?;
    a.orps(xmm1, xmmword_ptr(esi + 0x30))?;
    a.xorpd(xmm2, xmm6)?;
    // Shifts: immediates (some past the lane), a register count (the
    // low dword of the record, 0-39), a memory count.
    a.psllw(xmm0, 3)?;
    a.psrld(xmm1, 31)?;
    a.psraw(xmm2, 16)?;
    a.psllq(xmm3, 64)?;
    a.psrlq(xmm4, 33)?;
    a.psrad(xmm5, 40)?;
    a.pslld(xmm6, 32)?;
    a.movdqu(xmmword_ptr(edi + 0x90), xmm3)?;
    a.movdqu(xmmword_ptr(edi + 0xA0), xmm6)?;
    a.psrlw(xmm0, xmm7)?;
    a.psllq(xmm1, xmm7)?;
    a.psrad(xmm2, xmm7)?;
    a.psraw(xmm3, xmmword_ptr(esi + 0x50))?;
    a.pslldq(xmm4, 5)?;
    a.psrldq(xmm5, 11)?;
    a.psrldq(xmm6, 17)?;
    // Shuffles, unpacks, packs.
    a.punpcklbw(xmm0, xmm1)?;
    a.punpckhbw(xmm1, xmm2)?;
    a.punpcklwd(xmm2, xmm3)?;
    a.punpckhwd(xmm3, xmm4)?;
    a.punpckldq(xmm4, xmmword_ptr(esi))?;
    a.punpckhdq(xmm5, xmm0)?;
    a.punpcklqdq(xmm6, xmm1)?;
    a.punpckhqdq(xmm0, xmm2)?;
    a.unpcklps(xmm1, xmm3)?;
    a.unpckhps(xmm2, xmm4)?;
    a.unpcklpd(xmm3, xmm5)?;
    a.unpckhpd(xmm4, xmm6)?;
    a.shufps(xmm5, xmm0, 0x1B)?;
    a.shufpd(xmm6, xmm1, 1)?;
    a.pshufd(xmm0, xmmword_ptr(esi + 0x10), 0x4E)?;
    a.pshuflw(xmm1, xmm2, 0xB1)?;
    a.pshufhw(xmm2, xmm3, 0x6C)?;
    a.packsswb(xmm3, xmm4)?;
    a.packssdw(xmm4, xmm5)?;
    a.packuswb(xmm5, xmm6)?;
    a.movhlps(xmm6, xmm0)?;
    a.movlhps(xmm0, xmm1)?;
    a.movss(xmm1, xmm2)?;
    a.movsd_2(xmm2, xmm3)?;
    a.movq(xmm3, xmm4)?;
    // A floating-point helper between them (MXCSR flags).
    a.mulps(xmm6, xmm5)?;
    a.addsd(xmm4, xmm1)?;
    // To general registers and back.
    a.pmovmskb(eax, xmm0)?;
    a.movmskps(ebx, xmm1)?;
    a.movmskpd(edx, xmm2)?;
    a.pextrw(ebp, xmm3, 5)?;
    a.add(eax, ebp)?;
    a.pinsrw(xmm4, eax, 2)?;
    a.pinsrw(xmm5, word_ptr(esi + 6), 7)?;
    a.movd(ebp, xmm5)?;
    a.add(ebx, edx)?;
    a.xor(ebx, ebp)?;
    // Stores of every width (some cross a page).
    a.movdqa(xmmword_ptr(edi), xmm0)?;
    a.movdqu(xmmword_ptr(edi + 0x11), xmm1)?;
    a.movq(qword_ptr(edi + 0x22), xmm2)?;
    a.movd(dword_ptr(edi + 0x2A), xmm3)?;
    a.movss(dword_ptr(edi + 0x2E), xmm4)?;
    a.movsd_2(qword_ptr(edi + 0x32), xmm5)?;
    a.movhps(qword_ptr(edi + 0x3A), xmm6)?;
    a.movlps(qword_ptr(edi + 0x42), xmm0)?;
    a.movhpd(qword_ptr(edi + 0x4A), xmm1)?;
    a.movaps(xmmword_ptr(edi + 0x50), xmm2)?;
    a.movntdq(xmmword_ptr(edi + 0x60), xmm3)?;
    a.movups(xmmword_ptr(edi + 0x71), xmm4)?;
    a.mov(dword_ptr(edi + 0x84), eax)?;
    a.mov(dword_ptr(edi + 0x88), ebx)?;
    a.add(esi, IN_REC)?;
    a.add(edi, OUT_REC)?;
    a.dec(ecx)?;
    a.jnz(top)?;
    a.hlt()
}

/// Input records of random bytes, with the shift counts at 0x48 (a
/// dword) and 0x50 (a qword) 0-39 and some records of equal, extreme or
/// sign-flipped values (saturation, compares).
fn input() -> Vec<u8> {
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut out = Vec::new();
    for k in 0..PASSES {
        let mut rec: Vec<u8> = (0..IN_REC / 8).flat_map(|_| next().to_le_bytes()).collect();
        match k % 4 {
            0 => rec[..0x40].fill(0x7F),
            1 => rec[0x10..0x30].fill(0x80),
            _ => {}
        }
        rec[0x48..0x4C].copy_from_slice(&(k % 40).to_le_bytes());
        rec[0x50..0x58].copy_from_slice(&((k * 7) as u64 % 40).to_le_bytes());
        out.extend(rec);
    }
    out
}

fn run(mode: JitMode) -> (Cpu, Vec<u8>) {
    let mut mem = GuestMemory::new(8 << 20).expect("guest RAM");
    mem.load(PhysAddr(CODE), &program());
    mem.load(PhysAddr(INPUT), &input());
    let mut cpu = Cpu::new();
    cpu.set_model(CpuModel::Pentium4);
    cpu.reset();
    cpu.state.enter_flat32(8, 16);
    cpu.state.cr4 |= CR4_OSFXSR;
    cpu.state.eip = CODE;
    Jit::install(&mut cpu, mode).expect("translator");
    let (out, _) = cpu.run(&mut mem, &mut NullBus, 1_000_000);
    assert_eq!(out, StepOutcome::Halted, "{mode:?}: the program did not run to its end");
    let bytes = (OUTPUT..OUTPUT + PASSES * OUT_REC).map(|a| mem.peek(PhysAddr(a))).collect();
    (cpu, bytes)
}

#[test]
fn sse2_in_translated_code_matches_the_interpreter() {
    let (interp, want) = run(JitMode::Off);
    let (jit, got) = run(JitMode::Force);
    assert_eq!(interp.state.sse, jit.state.sse, "XMM state or MXCSR");
    assert_eq!(interp.state.regs, jit.state.regs);
    assert_eq!(interp.state.eflags(), jit.state.eflags());
    let first = want.iter().zip(&got).position(|(a, b)| a != b);
    assert!(first.is_none(), "output differs from byte {:#x} on", first.unwrap_or(0));
    let translated = jit.accel_stats().map_or(0, |s| s.insns_translated);
    assert!(translated > PASSES as u64 * 100, "only {translated} instructions translated");
    let nz = want.iter().filter(|&&b| b != 0).count();
    // (Shifts past the lanes store zeros by design.)
    assert!(nz > want.len() / 4, "the output is mostly empty ({nz} of {} bytes)", want.len());
}

/// With CR0.TS set the first SSE instruction raises #NM (through the
/// IDT, here to a HLT), in translated code as in the interpreter, and
/// changes nothing.
#[test]
fn sse_with_ts_set_faults_before_touching_anything() {
    let run = |mode: JitMode| {
        let mut a = CodeAssembler::new(32).unwrap();
        a.mov(eax, 1).unwrap();
        a.paddd(xmm0, xmm1).unwrap();
        a.movdqu(xmmword_ptr(esi), xmm0).unwrap();
        a.hlt().unwrap();
        let code = a.assemble(CODE as u64).unwrap();
        let mut mem = GuestMemory::new(8 << 20).expect("guest RAM");
        mem.load(PhysAddr(CODE), &code);
        // IDT at 0: vector 7 (#NM) to a HLT at 0x2000 (interrupt gate).
        let handler = 0x2000u32;
        mem.load(PhysAddr(handler), &[0xF4]);
        let gate = (handler as u64 & 0xFFFF) | 8 << 16 | 0x8E << 40 | ((handler as u64) >> 16) << 48;
        mem.load(PhysAddr(7 * 8), &gate.to_le_bytes());
        // GDT at 0x1000: flat code (8) and data (16).
        let gdt = [0u64, 0x00CF_9A00_0000_FFFF, 0x00CF_9200_0000_FFFF];
        let gdt: Vec<u8> = gdt.iter().flat_map(|d| d.to_le_bytes()).collect();
        mem.load(PhysAddr(0x1000), &gdt);
        let mut cpu = Cpu::new();
        cpu.set_model(CpuModel::Pentium4);
        cpu.reset();
        cpu.state.enter_flat32(8, 16);
        cpu.state.gdtr.base = 0x1000;
        cpu.state.gdtr.limit = 0x17;
        cpu.state.idtr.base = 0;
        cpu.state.idtr.limit = 0xFF;
        cpu.state.cr4 |= CR4_OSFXSR;
        cpu.state.cr0 |= ferrite_core::cpu::state::CR0_TS;
        cpu.state.regs[6] = OUTPUT;
        cpu.state.regs[4] = 0x8_0000;
        cpu.state.sse.xmm[1] = 5;
        cpu.state.eip = CODE;
        Jit::install(&mut cpu, mode).expect("translator");
        let (out, _) = cpu.run(&mut mem, &mut NullBus, 1000);
        assert_eq!(out, StepOutcome::Halted);
        (cpu.state.eip, cpu.state.regs, cpu.state.sse, mem.peek(PhysAddr(0x8_0000 - 12)))
    };
    let interp = run(JitMode::Off);
    assert_eq!(interp.0, 0x2001, "#NM reached its handler");
    assert_eq!(interp.1[0], 1, "the MOV before it ran");
    assert_eq!(interp.2.xmm[0], 0, "PADDD did not run");
    assert_eq!(run(JitMode::Force), interp);
}
