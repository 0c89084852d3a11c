//! MMX (the Pentium II's set: SDM vol. 1 ch. 9, vol. 3 ch. 12). MM0-MM7 are
//! the significands of the physical x87 registers R0-R7 (not ST(i): the
//! mapping ignores TOP). Every MMX instruction but EMMS sets TOP to 0 and
//! tags all registers valid; a write also sets the register's sign and
//! exponent bits to ones; EMMS tags them all empty (and sets TOP to 0).
//! FIP/FDP/FOP and the rest of the status word are left alone.
//!
//! Checks before anything else: CR0.EM → #UD, CR0.TS → #NM, then a pending
//! unmasked x87 exception → #MF (with CR0.NE set; FERR# otherwise). A fault
//! of the memory operand leaves the FPU state unchanged.

use super::super::decode::{Insn, OpK};
use super::super::exec::ud;
use super::super::state::{CR0_EM, CR0_TS};
use super::super::{Cpu, Ctx, Fault, Res};
use super::F80;
use crate::cpu::decode::ExecFn;
use iced_x86::{Instruction, Mnemonic as M};

/// The operation of a two-operand MMX instruction (`Insn::cc`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u8)]
pub(crate) enum Op {
    AddB,
    AddW,
    AddD,
    AddSB,
    AddSW,
    AddUSB,
    AddUSW,
    SubB,
    SubW,
    SubD,
    SubSB,
    SubSW,
    SubUSB,
    SubUSW,
    And,
    AndN,
    Or,
    Xor,
    CmpEqB,
    CmpEqW,
    CmpEqD,
    CmpGtB,
    CmpGtW,
    CmpGtD,
    MulLW,
    MulHW,
    MAddWD,
    PackSSWB,
    PackSSDW,
    PackUSWB,
    UnpckLBW,
    UnpckLWD,
    UnpckLDQ,
    UnpckHBW,
    UnpckHWD,
    UnpckHDQ,
    SllW,
    SllD,
    SllQ,
    SrlW,
    SrlD,
    SrlQ,
    SraW,
    SraD,
    // SSE's additions (#UD on a model without SSE).
    AvgB,
    AvgW,
    MaxSW,
    MaxUB,
    MinSW,
    MinUB,
    MulHUW,
    SadBW,
    // SSE2's (#UD on a model without SSE2).
    AddQ,
    SubQ,
    MulUDQ,
}

/// The first of SSE's additions in [`Op`].
const FIRST_SSE: u8 = Op::AvgB as u8;
/// The first of SSE2's.
const FIRST_SSE2: u8 = Op::AddQ as u8;

const OPS: [Op; 55] = [
    Op::AddB,
    Op::AddW,
    Op::AddD,
    Op::AddSB,
    Op::AddSW,
    Op::AddUSB,
    Op::AddUSW,
    Op::SubB,
    Op::SubW,
    Op::SubD,
    Op::SubSB,
    Op::SubSW,
    Op::SubUSB,
    Op::SubUSW,
    Op::And,
    Op::AndN,
    Op::Or,
    Op::Xor,
    Op::CmpEqB,
    Op::CmpEqW,
    Op::CmpEqD,
    Op::CmpGtB,
    Op::CmpGtW,
    Op::CmpGtD,
    Op::MulLW,
    Op::MulHW,
    Op::MAddWD,
    Op::PackSSWB,
    Op::PackSSDW,
    Op::PackUSWB,
    Op::UnpckLBW,
    Op::UnpckLWD,
    Op::UnpckLDQ,
    Op::UnpckHBW,
    Op::UnpckHWD,
    Op::UnpckHDQ,
    Op::SllW,
    Op::SllD,
    Op::SllQ,
    Op::SrlW,
    Op::SrlD,
    Op::SrlQ,
    Op::SraW,
    Op::SraD,
    Op::AvgB,
    Op::AvgW,
    Op::MaxSW,
    Op::MaxUB,
    Op::MinSW,
    Op::MinUB,
    Op::MulHUW,
    Op::SadBW,
    Op::AddQ,
    Op::SubQ,
    Op::MulUDQ,
];

/// The operation with code `cc` (as `Insn::cc` holds it).
pub(crate) fn op_from(cc: u8) -> Option<Op> {
    OPS.get(cc as usize).copied()
}

/// The lane operation of an MMX (or SSE/SSE2 integer) mnemonic.
pub(crate) fn lane_op(m: M) -> Option<Op> {
    Some(match m {
        M::Paddb => Op::AddB,
        M::Paddw => Op::AddW,
        M::Paddd => Op::AddD,
        M::Paddsb => Op::AddSB,
        M::Paddsw => Op::AddSW,
        M::Paddusb => Op::AddUSB,
        M::Paddusw => Op::AddUSW,
        M::Psubb => Op::SubB,
        M::Psubw => Op::SubW,
        M::Psubd => Op::SubD,
        M::Psubsb => Op::SubSB,
        M::Psubsw => Op::SubSW,
        M::Psubusb => Op::SubUSB,
        M::Psubusw => Op::SubUSW,
        M::Pand => Op::And,
        M::Pandn => Op::AndN,
        M::Por => Op::Or,
        M::Pxor => Op::Xor,
        M::Pcmpeqb => Op::CmpEqB,
        M::Pcmpeqw => Op::CmpEqW,
        M::Pcmpeqd => Op::CmpEqD,
        M::Pcmpgtb => Op::CmpGtB,
        M::Pcmpgtw => Op::CmpGtW,
        M::Pcmpgtd => Op::CmpGtD,
        M::Pmullw => Op::MulLW,
        M::Pmulhw => Op::MulHW,
        M::Pmaddwd => Op::MAddWD,
        M::Packsswb => Op::PackSSWB,
        M::Packssdw => Op::PackSSDW,
        M::Packuswb => Op::PackUSWB,
        M::Punpcklbw => Op::UnpckLBW,
        M::Punpcklwd => Op::UnpckLWD,
        M::Punpckldq => Op::UnpckLDQ,
        M::Punpckhbw => Op::UnpckHBW,
        M::Punpckhwd => Op::UnpckHWD,
        M::Punpckhdq => Op::UnpckHDQ,
        M::Psllw => Op::SllW,
        M::Pslld => Op::SllD,
        M::Psllq => Op::SllQ,
        M::Psrlw => Op::SrlW,
        M::Psrld => Op::SrlD,
        M::Psrlq => Op::SrlQ,
        M::Psraw => Op::SraW,
        M::Psrad => Op::SraD,
        M::Pavgb => Op::AvgB,
        M::Pavgw => Op::AvgW,
        M::Pmaxsw => Op::MaxSW,
        M::Pmaxub => Op::MaxUB,
        M::Pminsw => Op::MinSW,
        M::Pminub => Op::MinUB,
        M::Pmulhuw => Op::MulHUW,
        M::Psadbw => Op::SadBW,
        M::Paddq => Op::AddQ,
        M::Psubq => Op::SubQ,
        M::Pmuludq => Op::MulUDQ,
        _ => return None,
    })
}

/// SSE's integer instructions on MMX registers (`sse::handler` sends them
/// here): PAVGB/W, PMAX/PMIN, PMULHUW, PSADBW through [`binop`], and
/// PSHUFW, PEXTRW, PINSRW, PMOVMSKB, MASKMOVQ, MOVNTQ.
pub(crate) fn sse_handler(ins: &Instruction, insn: &mut Insn) -> ExecFn {
    let op = match ins.mnemonic() {
        M::Pshufw => return pshufw,
        M::Pextrw => return pextrw,
        M::Pinsrw => return pinsrw,
        M::Pmovmskb => return pmovmskb,
        M::Maskmovq => return maskmovq,
        M::Movntq => {
            insn.cc = MOV_SSE;
            return mov;
        }
        m => match lane_op(m) {
            Some(op) if (op as u8) >= FIRST_SSE => op,
            _ => return ud,
        },
    };
    if insn.ops[0].kind != OpK::Mmx {
        return ud;
    }
    insn.cc = op as u8;
    binop
}

/// The semantics function of an MMX instruction (operands already decoded
/// into `insn`, MMX registers as `OpK::Mmx`); forms of later extensions
/// (SSE's integer additions, SSE2's PADDQ/PSUBQ/PMULUDQ on MMX registers)
/// are #UD on this model.
pub(crate) fn handler(ins: &Instruction, insn: &mut Insn) -> ExecFn {
    use iced_x86::CpuidFeature as F;
    if ins.cpuid_features() != [F::MMX] {
        return ud;
    }
    let op = match ins.mnemonic() {
        M::Emms => return emms,
        M::Movd | M::Movq => {
            insn.cc = 0;
            return mov;
        }
        // (iced-x86 lists SSE2's PADDQ/PSUBQ/PMULUDQ on MMX registers as
        // MMX: `binop` checks the model.)
        m => match lane_op(m) {
            Some(op) if (op as u8) < FIRST_SSE || (op as u8) >= FIRST_SSE2 => op,
            _ => return ud,
        },
    };
    if insn.ops[0].kind != OpK::Mmx {
        return ud;
    }
    insn.cc = op as u8;
    binop
}

impl Cpu {
    /// The checks every MMX instruction makes first.
    fn mmx_start(&self) -> Res<()> {
        if self.state.cr0 & CR0_EM != 0 {
            return Err(Fault::UD);
        }
        if self.state.cr0 & CR0_TS != 0 {
            return Err(Fault::NM);
        }
        self.fpu_pending()
    }

    /// The x87 side effects of an MMX instruction other than EMMS.
    pub(super) fn mmx_done(&mut self) {
        self.state.fpu.top = 0;
        self.state.fpu.empty = 0;
    }

    /// MMi (the significand of physical register Ri).
    pub fn mmx(&self, n: u8) -> u64 {
        self.state.fpu.regs[n as usize & 7].mant
    }

    pub(super) fn set_mmx(&mut self, n: u8, v: u64) {
        self.state.fpu.regs[n as usize & 7] = F80 { mant: v, se: 0xFFFF };
    }

    /// Operand `n` of `i` (an MMX register, or memory of the operand's
    /// size, 4 or 8 bytes, zero-extended).
    fn mmx_src(&mut self, ctx: &mut Ctx, i: &Insn, n: usize) -> Res<u64> {
        let o = i.ops[n];
        match o.kind {
            OpK::Mmx => Ok(self.mmx(o.num)),
            OpK::Reg => Ok(self.get_reg(o.num, 4) as u64),
            OpK::Mem if o.size == 8 => {
                let mut b = [0u8; 8];
                self.fpu_read(ctx, i, &mut b, 8)?;
                Ok(u64::from_le_bytes(b))
            }
            OpK::Mem => {
                let off = self.ea(i);
                Ok(self.read_mem(ctx, i.seg as usize, off, 4)? as u64)
            }
            // The shifts' immediate count.
            _ => Ok(i.imm as u8 as u64),
        }
    }
}

fn emms(cpu: &mut Cpu, _: &mut Ctx, _: &Insn) -> Res<()> {
    cpu.mmx_start()?;
    cpu.state.fpu.top = 0;
    cpu.state.fpu.empty = 0xFF;
    Ok(())
}

/// `Insn::cc` of `mov` for SSE's MOVNTQ (#UD on a model without SSE).
const MOV_SSE: u8 = 1;

/// MOVD and MOVQ in all directions (MMX register, 32-bit register,
/// memory), and SSE's MOVNTQ (a store).
fn mov(cpu: &mut Cpu, ctx: &mut Ctx, i: &Insn) -> Res<()> {
    if i.cc == MOV_SSE && !cpu.has_sse() {
        return Err(Fault::UD);
    }
    cpu.mmx_start()?;
    let v = cpu.mmx_src(ctx, i, 1)?;
    let d = i.ops[0];
    match d.kind {
        OpK::Mmx => cpu.set_mmx(d.num, v),
        OpK::Reg => cpu.set_reg(d.num, 4, v as u32),
        _ if d.size == 8 => cpu.fpu_write(ctx, i, &v.to_le_bytes(), 8)?,
        _ => {
            let off = cpu.ea(i);
            cpu.write_mem(ctx, i.seg as usize, off, 4, v as u32)?;
        }
    }
    cpu.mmx_done();
    Ok(())
}

/// The two-operand arithmetic, logic, compare, pack, unpack and shift
/// instructions: MMi := MMi op source.
fn binop(cpu: &mut Cpu, ctx: &mut Ctx, i: &Insn) -> Res<()> {
    if (i.cc >= FIRST_SSE && !cpu.has_sse()) || (i.cc >= FIRST_SSE2 && !cpu.has_sse2()) {
        return Err(Fault::UD);
    }
    cpu.mmx_start()?;
    let b = cpu.mmx_src(ctx, i, 1)?;
    let d = i.ops[0].num;
    let a = cpu.mmx(d);
    let op = OPS.get(i.cc as usize).copied().ok_or(Fault::UD)?;
    cpu.set_mmx(d, compute(op, a, b));
    cpu.mmx_done();
    Ok(())
}

fn bytes(v: u64) -> [u8; 8] {
    v.to_le_bytes()
}

fn words(v: u64) -> [u16; 4] {
    std::array::from_fn(|k| (v >> (16 * k)) as u16)
}

fn dwords(v: u64) -> [u32; 2] {
    [v as u32, (v >> 32) as u32]
}

fn from_bytes(b: [u8; 8]) -> u64 {
    u64::from_le_bytes(b)
}

fn from_words(w: [u16; 4]) -> u64 {
    w.iter().enumerate().fold(0, |acc, (k, &x)| acc | (x as u64) << (16 * k))
}

fn from_dwords(d: [u32; 2]) -> u64 {
    d[0] as u64 | (d[1] as u64) << 32
}

fn map8(a: u64, b: u64, f: impl Fn(u8, u8) -> u8) -> u64 {
    let (x, y) = (bytes(a), bytes(b));
    from_bytes(std::array::from_fn(|k| f(x[k], y[k])))
}

fn map16(a: u64, b: u64, f: impl Fn(u16, u16) -> u16) -> u64 {
    let (x, y) = (words(a), words(b));
    from_words(std::array::from_fn(|k| f(x[k], y[k])))
}

fn map32(a: u64, b: u64, f: impl Fn(u32, u32) -> u32) -> u64 {
    let (x, y) = (dwords(a), dwords(b));
    from_dwords(std::array::from_fn(|k| f(x[k], y[k])))
}

/// All ones for true (truncated to the lane).
fn ones(c: bool) -> u64 {
    if c {
        u64::MAX
    } else {
        0
    }
}

fn sat_i8(v: i32) -> u8 {
    v.clamp(-128, 127) as i8 as u8
}

fn sat_u8(v: i32) -> u8 {
    v.clamp(0, 255) as u8
}

fn sat_i16(v: i32) -> u16 {
    v.clamp(-32768, 32767) as i16 as u16
}

/// `a op b` for the two-operand instructions (a: the destination).
pub(crate) fn compute(op: Op, a: u64, b: u64) -> u64 {
    // Shift counts are the whole 64-bit source (or the immediate).
    let shl = |bits: u32, a: u64, f: &dyn Fn(u64, u32) -> u64| if b >= bits as u64 { 0 } else { f(a, b as u32) };
    match op {
        Op::AddB => map8(a, b, u8::wrapping_add),
        Op::AddW => map16(a, b, u16::wrapping_add),
        Op::AddD => map32(a, b, u32::wrapping_add),
        Op::AddSB => map8(a, b, |x, y| (x as i8).saturating_add(y as i8) as u8),
        Op::AddSW => map16(a, b, |x, y| (x as i16).saturating_add(y as i16) as u16),
        Op::AddUSB => map8(a, b, u8::saturating_add),
        Op::AddUSW => map16(a, b, u16::saturating_add),
        Op::SubB => map8(a, b, u8::wrapping_sub),
        Op::SubW => map16(a, b, u16::wrapping_sub),
        Op::SubD => map32(a, b, u32::wrapping_sub),
        Op::SubSB => map8(a, b, |x, y| (x as i8).saturating_sub(y as i8) as u8),
        Op::SubSW => map16(a, b, |x, y| (x as i16).saturating_sub(y as i16) as u16),
        Op::SubUSB => map8(a, b, u8::saturating_sub),
        Op::SubUSW => map16(a, b, u16::saturating_sub),
        Op::And => a & b,
        Op::AndN => !a & b,
        Op::Or => a | b,
        Op::Xor => a ^ b,
        Op::CmpEqB => map8(a, b, |x, y| ones(x == y) as u8),
        Op::CmpEqW => map16(a, b, |x, y| ones(x == y) as u16),
        Op::CmpEqD => map32(a, b, |x, y| ones(x == y) as u32),
        Op::CmpGtB => map8(a, b, |x, y| ones(x as i8 > y as i8) as u8),
        Op::CmpGtW => map16(a, b, |x, y| ones(x as i16 > y as i16) as u16),
        Op::CmpGtD => map32(a, b, |x, y| ones(x as i32 > y as i32) as u32),
        Op::MulLW => map16(a, b, |x, y| (x as i16 as i32).wrapping_mul(y as i16 as i32) as u16),
        Op::MulHW => map16(a, b, |x, y| ((x as i16 as i32 * y as i16 as i32) >> 16) as u16),
        Op::MAddWD => {
            let (x, y) = (words(a), words(b));
            let p = |k: usize| (x[k] as i16 as i32).wrapping_mul(y[k] as i16 as i32);
            from_dwords([p(0).wrapping_add(p(1)) as u32, p(2).wrapping_add(p(3)) as u32])
        }
        Op::PackSSWB => {
            let (x, y) = (words(a), words(b));
            from_bytes(std::array::from_fn(|k| sat_i8(if k < 4 { x[k] } else { y[k - 4] } as i16 as i32)))
        }
        Op::PackUSWB => {
            let (x, y) = (words(a), words(b));
            from_bytes(std::array::from_fn(|k| sat_u8(if k < 4 { x[k] } else { y[k - 4] } as i16 as i32)))
        }
        Op::PackSSDW => {
            let (x, y) = (dwords(a), dwords(b));
            let v = [x[0], x[1], y[0], y[1]];
            from_words(std::array::from_fn(|k| sat_i16(v[k] as i32)))
        }
        Op::UnpckLBW | Op::UnpckHBW => {
            let h = if op == Op::UnpckHBW { 4 } else { 0 };
            let (x, y) = (bytes(a), bytes(b));
            from_bytes(std::array::from_fn(|k| if k % 2 == 0 { x[h + k / 2] } else { y[h + k / 2] }))
        }
        Op::UnpckLWD | Op::UnpckHWD => {
            let h = if op == Op::UnpckHWD { 2 } else { 0 };
            let (x, y) = (words(a), words(b));
            from_words(std::array::from_fn(|k| if k % 2 == 0 { x[h + k / 2] } else { y[h + k / 2] }))
        }
        Op::UnpckLDQ => from_dwords([dwords(a)[0], dwords(b)[0]]),
        Op::UnpckHDQ => from_dwords([dwords(a)[1], dwords(b)[1]]),
        Op::SllW => shl(16, a, &|a, n| map16(a, 0, |x, _| x << n)),
        Op::SllD => shl(32, a, &|a, n| map32(a, 0, |x, _| x << n)),
        Op::SllQ => shl(64, a, &|a, n| a << n),
        Op::SrlW => shl(16, a, &|a, n| map16(a, 0, |x, _| x >> n)),
        Op::SrlD => shl(32, a, &|a, n| map32(a, 0, |x, _| x >> n)),
        Op::SrlQ => shl(64, a, &|a, n| a >> n),
        Op::SraW => {
            let n = b.min(15) as u32;
            map16(a, 0, |x, _| ((x as i16) >> n) as u16)
        }
        Op::SraD => {
            let n = b.min(31) as u32;
            map32(a, 0, |x, _| ((x as i32) >> n) as u32)
        }
        Op::AvgB => map8(a, b, |x, y| ((x as u16 + y as u16 + 1) >> 1) as u8),
        Op::AvgW => map16(a, b, |x, y| ((x as u32 + y as u32 + 1) >> 1) as u16),
        Op::MaxSW => map16(a, b, |x, y| (x as i16).max(y as i16) as u16),
        Op::MaxUB => map8(a, b, u8::max),
        Op::MinSW => map16(a, b, |x, y| (x as i16).min(y as i16) as u16),
        Op::MinUB => map8(a, b, u8::min),
        Op::MulHUW => map16(a, b, |x, y| ((x as u32 * y as u32) >> 16) as u16),
        Op::SadBW => {
            let (x, y) = (bytes(a), bytes(b));
            (0..8).map(|k| x[k].abs_diff(y[k]) as u64).sum()
        }
        Op::AddQ => a.wrapping_add(b),
        Op::SubQ => a.wrapping_sub(b),
        Op::MulUDQ => (a as u32 as u64) * (b as u32 as u64),
    }
}

/// The checks of SSE's MMX-register instructions.
fn sse_mmx_start(cpu: &Cpu) -> Res<()> {
    if !cpu.has_sse() {
        return Err(Fault::UD);
    }
    cpu.mmx_start()
}

/// PSHUFW mm, mm/m64, imm8: word k of the result is word (imm >> 2k) & 3.
fn pshufw(cpu: &mut Cpu, ctx: &mut Ctx, i: &Insn) -> Res<()> {
    sse_mmx_start(cpu)?;
    let w = words(cpu.mmx_src(ctx, i, 1)?);
    let imm = i.imm as u8;
    let r = from_words(std::array::from_fn(|k| w[(imm >> (2 * k)) as usize & 3]));
    cpu.set_mmx(i.ops[0].num, r);
    cpu.mmx_done();
    Ok(())
}

/// PEXTRW r32, mm, imm8: word imm & 3, zero-extended.
fn pextrw(cpu: &mut Cpu, _: &mut Ctx, i: &Insn) -> Res<()> {
    sse_mmx_start(cpu)?;
    let w = words(cpu.mmx(i.ops[1].num))[i.imm as usize & 3];
    cpu.set_reg(i.ops[0].num, 4, w as u32);
    cpu.mmx_done();
    Ok(())
}

/// PINSRW mm, r32/m16, imm8: the low word of the source into word imm & 3.
fn pinsrw(cpu: &mut Cpu, ctx: &mut Ctx, i: &Insn) -> Res<()> {
    sse_mmx_start(cpu)?;
    let v = match i.ops[1].kind {
        OpK::Reg => cpu.get_reg(i.ops[1].num, 4) as u16,
        _ => {
            let off = cpu.ea(i);
            cpu.read_mem(ctx, i.seg as usize, off, 2)? as u16
        }
    };
    let d = i.ops[0].num;
    let mut w = words(cpu.mmx(d));
    w[i.imm as usize & 3] = v;
    cpu.set_mmx(d, from_words(w));
    cpu.mmx_done();
    Ok(())
}

/// PMOVMSKB r32, mm: the bytes' sign bits.
fn pmovmskb(cpu: &mut Cpu, _: &mut Ctx, i: &Insn) -> Res<()> {
    sse_mmx_start(cpu)?;
    let b = bytes(cpu.mmx(i.ops[1].num));
    let m = (0..8).fold(0u32, |a, k| a | ((b[k] >> 7) as u32) << k);
    cpu.set_reg(i.ops[0].num, 4, m);
    cpu.mmx_done();
    Ok(())
}

/// MASKMOVQ mm1, mm2: the bytes of mm1 whose byte in mm2 has its sign bit
/// set, stored at DS:(E)DI (segment overridable). With an all-zero mask
/// nothing is accessed; otherwise the eight bytes are checked for writing
/// first, so a fault writes none.
fn maskmovq(cpu: &mut Cpu, ctx: &mut Ctx, i: &Insn) -> Res<()> {
    sse_mmx_start(cpu)?;
    // (Decoded as [DS:(E)DI], mm1, mm2.)
    let (v, m) = (bytes(cpu.mmx(i.ops[1].num)), bytes(cpu.mmx(i.ops[2].num)));
    if m.iter().all(|b| b & 0x80 == 0) {
        cpu.mmx_done();
        return Ok(());
    }
    let di = cpu.state.regs[super::super::state::EDI];
    let off = if i.addr32 { di } else { di & 0xFFFF };
    // (Write intent for all eight bytes before any is written.)
    let seg = i.seg as usize;
    cpu.mem_loc(ctx, seg, off, 8, true)?;
    for k in 0..8 {
        if m[k] & 0x80 != 0 {
            cpu.write_mem(ctx, seg, off.wrapping_add(k as u32), 1, v[k] as u32)?;
        }
    }
    cpu.mmx_done();
    Ok(())
}

#[cfg(test)]
mod tests;
