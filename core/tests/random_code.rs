//! Random bytes as code, in every mode the CPU supports: the only allowed
//! outcomes are architected ones (an instruction retires, an exception is
//! delivered, HLT, or a triple-fault shutdown). Any host panic fails the
//! test, and so does an EIP outside the CS limit after a step.

use ferrite_core::cpu::flags::VM;
use ferrite_core::cpu::state::{
    SegReg, Segment, CR0_PE, CR0_PG, CR4_PSE, SEG_ACCESSED, SEG_CODE, SEG_DB, SEG_G, SEG_P, SEG_RW, SEG_S,
};
use ferrite_core::{Cpu, GuestMemory, NullBus, PhysAddr, StepOutcome};

/// xorshift64*: deterministic, so a failure reproduces.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let v = self.next().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
}

#[derive(Clone, Copy, Debug)]
enum Mode {
    Real,
    Protected16,
    Protected32,
    Paged32,
    V86,
}

const RAM: usize = 4 << 20;
const CODE: u32 = 0x10000;
const CODE_LEN: usize = 0x10000;
const GDT: u32 = 0x800;
const IDT: u32 = 0x0;
const PD: u32 = 0x20_0000;

fn flat(selector: u16, code: bool, big: bool, dpl: u32) -> Segment {
    let ty = if code { SEG_CODE | SEG_RW } else { SEG_RW };
    let mut flags = ty | SEG_ACCESSED | SEG_S | SEG_P | (dpl << 13);
    if big {
        flags |= SEG_DB | SEG_G;
    }
    Segment { selector, base: 0, limit: if big { u32::MAX } else { 0xFFFF }, flags }
}

/// Descriptor bytes for a flat segment (for the in-memory GDT).
fn desc(code: bool, big: bool, dpl: u32) -> u64 {
    let ty: u64 = if code { 0xA } else { 0x2 };
    let access = 0x80 | (dpl as u64) << 5 | 0x10 | ty | 1;
    let gran: u64 = if big { 0xCF } else { 0x00 };
    0xFFFF | access << 40 | gran << 48
}

/// GDT (flat 32-bit code/data, 16-bit code/data based at CODE, a TSS),
/// an IDT whose 256 gates enter random points of the code region (so
/// exceptions keep the fuzzing going), and TR loaded.
fn protected_tables(cpu: &mut Cpu, mem: &mut GuestMemory, rng: &mut Rng, code_sel: u16, code16: bool) {
    const TSS: u32 = 0x3000;
    let tss_desc: u64 = 0x67 | ((TSS as u64) << 16) | (0x89u64 << 40);
    let mut c16 = desc(true, false, 0);
    c16 |= ((CODE as u64) & 0xFF_FFFF) << 16;
    let gdt: [u64; 6] = [0, desc(true, true, 0), desc(false, true, 0), c16, desc(false, false, 0), tss_desc];
    for (k, d) in gdt.iter().enumerate() {
        mem.load(PhysAddr(GDT + 8 * k as u32), &d.to_le_bytes());
    }
    let mut tss = [0u8; 0x68];
    tss[4..8].copy_from_slice(&0x30_0000u32.to_le_bytes()); // esp0
    tss[8..10].copy_from_slice(&0x10u16.to_le_bytes()); // ss0
    tss[0x66..0x68].copy_from_slice(&0x68u16.to_le_bytes()); // no I/O bitmap
    mem.load(PhysAddr(TSS), &tss);
    for v in 0..256u32 {
        let off = rng.next() as u32 % CODE_LEN as u32 + if code16 { 0 } else { CODE };
        // 32-bit interrupt/trap gate, DPL 3 so INT n works from any level.
        let ty: u64 = if rng.next() & 1 == 0 { 0xEE } else { 0xEF };
        let gate = (off as u64 & 0xFFFF) | (code_sel as u64) << 16 | ty << 40 | ((off as u64) >> 16) << 48;
        mem.load(PhysAddr(IDT + 8 * v), &gate.to_le_bytes());
    }
    cpu.state.gdtr.base = GDT;
    cpu.state.gdtr.limit = 0x2F;
    cpu.state.idtr.base = IDT;
    cpu.state.idtr.limit = 0x7FF;
    cpu.state.cr0 |= CR0_PE;
    cpu.state.tr = Segment { selector: 0x28, base: TSS, limit: 0x67, flags: SEG_P | (0xB << 8) };
}

fn setup(cpu: &mut Cpu, mem: &mut GuestMemory, rng: &mut Rng, mode: Mode) {
    cpu.reset();
    let mut code = vec![0u8; CODE_LEN];
    rng.fill(&mut code);
    mem.load(PhysAddr(CODE), &code);
    // Random interrupt table contents: handlers land anywhere.
    let mut ivt = vec![0u8; 0x800];
    rng.fill(&mut ivt);
    mem.load(PhysAddr(IDT), &ivt);
    for r in cpu.state.regs.iter_mut() {
        *r = rng.next() as u32;
    }
    cpu.state.set_eflags((rng.next() as u32) & 0x0CD5 | 2);
    let eip = CODE + (rng.next() as u32 % CODE_LEN as u32);
    match mode {
        Mode::Real => {
            cpu.state.load_seg_real(SegReg::Cs, (CODE >> 4) as u16);
            cpu.state.eip = eip - CODE;
            for s in [SegReg::Ds, SegReg::Es, SegReg::Ss, SegReg::Fs, SegReg::Gs] {
                cpu.state.load_seg_real(s, rng.next() as u16);
            }
        }
        Mode::Protected16 | Mode::Protected32 | Mode::Paged32 => {
            let big = !matches!(mode, Mode::Protected16);
            protected_tables(cpu, mem, rng, if big { 0x08 } else { 0x18 }, !big);
            let (cs, ds) = if big {
                (flat(0x08, true, true, 0), flat(0x10, false, true, 0))
            } else {
                let mut c = flat(0x18, true, false, 0);
                c.base = CODE;
                (c, flat(0x20, false, false, 0))
            };
            cpu.state.segs[SegReg::Cs as usize] = cs;
            for s in [SegReg::Ds, SegReg::Es, SegReg::Ss, SegReg::Fs, SegReg::Gs] {
                cpu.state.segs[s as usize] = ds;
            }
            cpu.state.eip = if big { eip } else { eip - CODE };
            if matches!(mode, Mode::Paged32) {
                // Identity-map the low 4 MiB with one 4 MiB page plus a few
                // random directory entries.
                let mut pd = vec![0u8; 4096];
                rng.fill(&mut pd);
                pd[..4].copy_from_slice(&0x0000_0087u32.to_le_bytes());
                mem.load(PhysAddr(PD), &pd);
                cpu.state.cr4 |= CR4_PSE;
                cpu.state.cr3 = PD;
                cpu.state.cr0 |= CR0_PG;
                cpu.flush_caches();
            }
        }
        Mode::V86 => {
            protected_tables(cpu, mem, rng, 0x08, false);
            let f = cpu.state.eflags() | VM;
            cpu.state.set_eflags(f);
            cpu.state.cpl = 3;
            cpu.state.load_seg_real(SegReg::Cs, (CODE >> 4) as u16);
            cpu.state.eip = eip - CODE;
            for s in [SegReg::Ds, SegReg::Es, SegReg::Ss, SegReg::Fs, SegReg::Gs] {
                cpu.state.load_seg_real(s, rng.next() as u16);
            }
        }
    }
}

fn fuzz(mode: Mode, seed: u64, trials: usize, steps: usize) {
    let scale: usize = std::env::var("FERRITE_FUZZ_SCALE").ok().and_then(|v| v.parse().ok()).unwrap_or(1);
    let trials = trials * scale.max(1);
    let mut rng = Rng(seed);
    let mut mem = GuestMemory::new(RAM).unwrap();
    let mut cpu = Cpu::new();
    let mut bus = NullBus;
    let mut retired = 0u64;
    let mut shutdowns = 0;
    for trial in 0..trials {
        setup(&mut cpu, &mut mem, &mut rng, mode);
        let start = cpu.instret;
        for _ in 0..steps {
            match cpu.step(&mut mem, &mut bus) {
                StepOutcome::Continue => {
                    let cs = cpu.state.seg(SegReg::Cs);
                    assert!(
                        cpu.state.eip <= cs.limit,
                        "{mode:?} trial {trial}: EIP {:#x} beyond CS limit {:#x}",
                        cpu.state.eip,
                        cs.limit
                    );
                }
                StepOutcome::Halted => break,
                StepOutcome::Shutdown => {
                    shutdowns += 1;
                    break;
                }
            }
        }
        retired += cpu.instret - start;
    }
    eprintln!("{mode:?}: {trials} trials, {retired} instructions retired, {shutdowns} shutdowns");
    assert!(retired > (trials as u64) * 2, "{mode:?}: random code retired almost nothing ({retired})");
}

// 64 trials x 64 KiB = 4 MiB of random code per mode.
#[test]
fn random_code_real_mode() {
    fuzz(Mode::Real, 0x1234_5678, 64, 20_000);
}

#[test]
fn random_code_protected_16() {
    fuzz(Mode::Protected16, 0xDEAD_BEEF, 64, 20_000);
}

#[test]
fn random_code_protected_32() {
    fuzz(Mode::Protected32, 0xFEED_F00D, 64, 20_000);
}

#[test]
fn random_code_paged_32() {
    fuzz(Mode::Paged32, 0xC0FF_EE00, 64, 20_000);
}

#[test]
fn random_code_v86() {
    fuzz(Mode::V86, 0xBAD_CAFE, 64, 20_000);
}
