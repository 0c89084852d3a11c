//! Control instructions: FNINIT FNCLEX FNSTSW FNSTCW FLDCW, the
//! environment and state images (FNSTENV FLDENV FNSAVE FRSTOR, FXSAVE
//! FXRSTOR), FFREE, FINCSTP FDECSTP and FNOP.

use super::f80::F80;
use super::{FpuState, Kind, EXC_MASK, SW_B, SW_ES, SW_SF};
use crate::cpu::decode::{Insn, OpK};
use crate::cpu::state::{CR0_EM, CR0_TS, EAX};
use crate::cpu::{Cpu, Ctx, Fault, Res};

pub(super) fn fninit(cpu: &mut Cpu, _: &mut Ctx, i: &Insn) -> Res<()> {
    cpu.fpu_start(i, Kind::NoWait)?;
    cpu.state.fpu.init();
    Ok(())
}

/// FNCLEX: exception flags, SF, ES and B cleared.
pub(super) fn fnclex(cpu: &mut Cpu, _: &mut Ctx, i: &Insn) -> Res<()> {
    cpu.fpu_start(i, Kind::NoWait)?;
    cpu.state.fpu.sw &= !(EXC_MASK | SW_SF | SW_ES | SW_B);
    Ok(())
}

/// FNSTSW AX / m16.
pub(super) fn fnstsw(cpu: &mut Cpu, ctx: &mut Ctx, i: &Insn) -> Res<()> {
    cpu.fpu_start(i, Kind::NoWait)?;
    let sw = cpu.state.fpu.status();
    if i.ops[0].kind == OpK::Reg {
        cpu.state.set_reg16(EAX, sw);
        return Ok(());
    }
    cpu.fpu_write(ctx, i, &sw.to_le_bytes(), 2)
}

pub(super) fn fnstcw(cpu: &mut Cpu, ctx: &mut Ctx, i: &Insn) -> Res<()> {
    cpu.fpu_start(i, Kind::NoWait)?;
    let cw = cpu.state.fpu.cw;
    cpu.fpu_write(ctx, i, &cw.to_le_bytes(), 2)
}

pub(super) fn fldcw(cpu: &mut Cpu, ctx: &mut Ctx, i: &Insn) -> Res<()> {
    cpu.fpu_start(i, Kind::Control)?;
    let mut b = [0u8; 2];
    cpu.fpu_read(ctx, i, &mut b, 2)?;
    cpu.state.fpu.set_control(u16::from_le_bytes(b));
    Ok(())
}

/// Real-address and virtual-8086 mode use the real-mode layouts, which
/// hold linear pointers.
fn real_layout(cpu: &Cpu) -> bool {
    !cpu.state.protected() || cpu.state.v86()
}

/// The environment image (SDM vol. 1, 8.1.10, figures 8-9 to 8-12): 28
/// bytes with a 32-bit operand size, 14 with a 16-bit one. Reserved high
/// halves of 16-bit fields are stored as ones, as the processor does.
fn env_image(f: &FpuState, op32: bool, real: bool) -> Vec<u8> {
    let ip = if real { ((f.fcs as u32) << 4).wrapping_add(f.fip) } else { f.fip };
    let dp = if real { ((f.fds as u32) << 4).wrapping_add(f.fdp) } else { f.fdp };
    let fop = f.fop as u32 & 0x7FF;
    let ones = if op32 { 0xFFFF_0000 } else { 0 };
    let (cw, sw, tw) = (f.cw as u32 | ones, f.status() as u32 | ones, f.tag_word() as u32 | ones);
    let words: [u32; 7] = match (real, op32) {
        (true, true) => [cw, sw, tw, ip & 0xFFFF | ones, (ip >> 16) << 12 | fop, dp & 0xFFFF | ones, (dp >> 16) << 12],
        (true, false) => [cw, sw, tw, ip & 0xFFFF, (ip >> 16 & 0xF) << 12 | fop, dp & 0xFFFF, (dp >> 16 & 0xF) << 12],
        (false, true) => [cw, sw, tw, ip, f.fcs as u32 | fop << 16, dp, f.fds as u32 | ones],
        (false, false) => [cw, sw, tw, ip & 0xFFFF, f.fcs as u32, dp & 0xFFFF, f.fds as u32],
    };
    let mut out = Vec::with_capacity(28);
    for w in words {
        if op32 {
            out.extend_from_slice(&w.to_le_bytes());
        } else {
            out.extend_from_slice(&(w as u16).to_le_bytes());
        }
    }
    out
}

/// Load an environment image.
fn load_env(f: &mut FpuState, img: &[u8], op32: bool, real: bool) {
    let word = |k: usize| -> u32 {
        if op32 {
            u32::from_le_bytes([img[4 * k], img[4 * k + 1], img[4 * k + 2], img[4 * k + 3]])
        } else {
            u16::from_le_bytes([img[2 * k], img[2 * k + 1]]) as u32
        }
    };
    f.set_tag_word(word(2) as u16);
    if real {
        let (ip, dp) = if op32 {
            (
                (word(3) & 0xFFFF) | ((word(4) >> 12) & 0xFFFF) << 16,
                (word(5) & 0xFFFF) | ((word(6) >> 12) & 0xFFFF) << 16,
            )
        } else {
            (word(3) | ((word(4) >> 12) & 0xF) << 16, word(5) | ((word(6) >> 12) & 0xF) << 16)
        };
        f.fip = ip;
        f.fcs = 0;
        f.fop = (word(4) & 0x7FF) as u16;
        f.fdp = dp;
        f.fds = 0;
    } else {
        f.fip = word(3);
        f.fcs = word(4) as u16;
        f.fop = if op32 { ((word(4) >> 16) & 0x7FF) as u16 } else { f.fop };
        f.fdp = word(5);
        f.fds = word(6) as u16;
    }
    // The control word first, so ES follows the loaded flags and masks.
    f.set_control(word(0) as u16);
    f.set_status(word(1) as u16);
}

fn env_len(i: &Insn) -> usize {
    if i.opsz == 4 {
        28
    } else {
        14
    }
}

/// The alignment #AC checks for the images.
fn env_align(i: &Insn) -> u32 {
    if i.opsz == 4 {
        4
    } else {
        2
    }
}

/// FNSTENV: store the environment, then mask all exceptions.
pub(super) fn fnstenv(cpu: &mut Cpu, ctx: &mut Ctx, i: &Insn) -> Res<()> {
    cpu.fpu_start(i, Kind::NoWait)?;
    let img = env_image(&cpu.state.fpu, i.opsz == 4, real_layout(cpu));
    cpu.fpu_write(ctx, i, &img, env_align(i))?;
    cpu.state.fpu.cw |= EXC_MASK;
    Ok(())
}

pub(super) fn fldenv(cpu: &mut Cpu, ctx: &mut Ctx, i: &Insn) -> Res<()> {
    cpu.fpu_start(i, Kind::Control)?;
    let mut img = [0u8; 28];
    let n = env_len(i);
    cpu.fpu_read(ctx, i, &mut img[..n], env_align(i))?;
    let real = real_layout(cpu);
    load_env(&mut cpu.state.fpu, &img[..n], i.opsz == 4, real);
    Ok(())
}

/// FNSAVE: the environment and ST(0)..ST(7), then FNINIT.
pub(super) fn fnsave(cpu: &mut Cpu, ctx: &mut Ctx, i: &Insn) -> Res<()> {
    cpu.fpu_start(i, Kind::NoWait)?;
    let f = &cpu.state.fpu;
    let mut img = env_image(f, i.opsz == 4, real_layout(cpu));
    for k in 0..8 {
        img.extend_from_slice(&f.st(k).to_bytes());
    }
    cpu.fpu_write(ctx, i, &img, env_align(i))?;
    cpu.state.fpu.init();
    Ok(())
}

pub(super) fn frstor(cpu: &mut Cpu, ctx: &mut Ctx, i: &Insn) -> Res<()> {
    cpu.fpu_start(i, Kind::Control)?;
    let mut img = [0u8; 108];
    let n = env_len(i);
    cpu.fpu_read(ctx, i, &mut img[..n + 80], env_align(i))?;
    let real = real_layout(cpu);
    let f = &mut cpu.state.fpu;
    load_env(f, &img[..n], i.opsz == 4, real);
    // ST(0)..ST(7) of the loaded TOP; the tags come from the image.
    for k in 0..8u8 {
        let at = n + 10 * k as usize;
        let mut b = [0u8; 10];
        b.copy_from_slice(&img[at..at + 10]);
        let p = f.phys(k);
        f.regs[p] = F80::from_bytes(b);
    }
    Ok(())
}

/// FFREE ST(i) (and the undocumented FFREEP, which also pops). C1 is
/// cleared (host behaviour).
pub(super) fn ffree<const POP1: bool>(cpu: &mut Cpu, _: &mut Ctx, i: &Insn) -> Res<()> {
    cpu.fpu_start(i, Kind::Numeric)?;
    let f = &mut cpu.state.fpu;
    let p = f.phys(i.ops[0].num);
    f.empty |= 1 << p;
    f.set_c1(false);
    if POP1 {
        f.pop();
    }
    Ok(())
}

pub(super) fn fincstp(cpu: &mut Cpu, _: &mut Ctx, i: &Insn) -> Res<()> {
    cpu.fpu_start(i, Kind::Numeric)?;
    let f = &mut cpu.state.fpu;
    f.top = f.top.wrapping_add(1) & 7;
    f.set_c1(false);
    Ok(())
}

pub(super) fn fdecstp(cpu: &mut Cpu, _: &mut Ctx, i: &Insn) -> Res<()> {
    cpu.fpu_start(i, Kind::Numeric)?;
    let f = &mut cpu.state.fpu;
    f.top = f.top.wrapping_sub(1) & 7;
    f.set_c1(false);
    Ok(())
}

pub(super) fn fnop(cpu: &mut Cpu, _: &mut Ctx, i: &Insn) -> Res<()> {
    cpu.fpu_start(i, Kind::Numeric)
}

/// FNENI, FNDISI, FNSETPM: no-ops since the 387.
pub(super) fn fnop_nowait(cpu: &mut Cpu, _: &mut Ctx, i: &Insn) -> Res<()> {
    cpu.fpu_start(i, Kind::NoWait)
}

/// Bytes of the FXSAVE image a model without SSE writes and reads: the
/// x87 and MMX state; with SSE also MXCSR, MXCSR_MASK (at 24 and 28) and
/// XMM0-7 (from 160). The rest of the 512 bytes is left alone.
const FX_X87: usize = 160;
const FX_SSE: usize = 288;

/// The checks of FXSAVE/FXRSTOR: a memory operand, CR0.EM or TS → #NM,
/// then #GP(0) unless the operand's linear address is 16-byte aligned
/// (whatever the alignment-check setting). They wait for nothing: a
/// pending x87 exception stays pending (SDM vol. 2, FXSAVE).
fn fx_start(cpu: &mut Cpu, i: &Insn) -> Res<()> {
    if i.ops[0].kind != OpK::Mem {
        return Err(Fault::UD);
    }
    if cpu.state.cr0 & (CR0_EM | CR0_TS) != 0 {
        return Err(Fault::NM);
    }
    let off = cpu.ea(i);
    let lin = cpu.seg_check(i.seg as usize, off, 512, false)?;
    if lin & 15 != 0 {
        return Err(Fault::gp(0));
    }
    Ok(())
}

/// FXSAVE m512byte (the 32-bit layout): FCW, FSW, the abridged tag byte
/// (bit n set: Rn is not empty), FOP, FIP, FCS, FDP, FDS, then ST(0) to
/// ST(7) in 16-byte slots. Unlike FNSAVE it leaves the FPU as it is.
pub(crate) fn fxsave(cpu: &mut Cpu, ctx: &mut Ctx, i: &Insn) -> Res<()> {
    fx_start(cpu, i)?;
    let f = &cpu.state.fpu;
    let mut img = [0u8; FX_SSE];
    img[0..2].copy_from_slice(&f.cw.to_le_bytes());
    img[2..4].copy_from_slice(&f.status().to_le_bytes());
    img[4] = !f.empty;
    img[6..8].copy_from_slice(&(f.fop & 0x7FF).to_le_bytes());
    img[8..12].copy_from_slice(&f.fip.to_le_bytes());
    img[12..14].copy_from_slice(&f.fcs.to_le_bytes());
    img[16..20].copy_from_slice(&f.fdp.to_le_bytes());
    img[20..22].copy_from_slice(&f.fds.to_le_bytes());
    for k in 0..8u8 {
        let at = 32 + 16 * k as usize;
        img[at..at + 10].copy_from_slice(&f.st(k).to_bytes());
    }
    if !cpu.has_sse() {
        return cpu.fpu_write(ctx, i, &img[..FX_X87], 16);
    }
    img[24..28].copy_from_slice(&cpu.state.sse.mxcsr.to_le_bytes());
    img[28..32].copy_from_slice(&cpu.mxcsr_mask().to_le_bytes());
    for (k, x) in cpu.state.sse.xmm.iter().enumerate() {
        img[FX_X87 + 16 * k..FX_X87 + 16 * k + 16].copy_from_slice(&x.to_le_bytes());
    }
    cpu.fpu_write(ctx, i, &img, 16)
}

/// FXRSTOR m512byte: the state FXSAVE stores (ES and B follow from the
/// loaded flags and masks; the abridged tags say only empty or not).
pub(crate) fn fxrstor(cpu: &mut Cpu, ctx: &mut Ctx, i: &Insn) -> Res<()> {
    fx_start(cpu, i)?;
    let mut img = [0u8; FX_SSE];
    let n = if cpu.has_sse() { FX_SSE } else { FX_X87 };
    cpu.fpu_read(ctx, i, &mut img[..n], 16)?;
    if cpu.has_sse() {
        let mxcsr = u32::from_le_bytes([img[24], img[25], img[26], img[27]]);
        if mxcsr & !cpu.mxcsr_mask() != 0 {
            return Err(Fault::gp(0));
        }
        cpu.state.sse.mxcsr = mxcsr;
        for k in 0..8 {
            let at = FX_X87 + 16 * k;
            cpu.state.sse.xmm[k] = u128::from_le_bytes(img[at..at + 16].try_into().unwrap_or([0; 16]));
        }
    }
    let half = |at: usize| u16::from_le_bytes([img[at], img[at + 1]]);
    let word = |at: usize| u32::from_le_bytes([img[at], img[at + 1], img[at + 2], img[at + 3]]);
    let f = &mut cpu.state.fpu;
    f.set_control(half(0));
    f.set_status(half(2));
    f.empty = !img[4];
    f.fop = half(6) & 0x7FF;
    f.fip = word(8);
    f.fcs = half(12);
    f.fdp = word(16);
    f.fds = half(20);
    for k in 0..8u8 {
        let at = 32 + 16 * k as usize;
        let mut b = [0u8; 10];
        b.copy_from_slice(&img[at..at + 10]);
        let p = f.phys(k);
        f.regs[p] = F80::from_bytes(b);
    }
    Ok(())
}
