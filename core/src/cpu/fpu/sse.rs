//! SSE (the Pentium III set: SDM vol. 1 ch. 10): XMM0-7 of four singles and
//! MXCSR; the integer additions on MMX registers are in `mmx.rs`.
//!
//! Checks, XMM forms: CPUID.SSE clear or CR0.EM or CR4.OSFXSR clear → #UD,
//! CR0.TS → #NM; then a misaligned 16-byte operand of an aligned form →
//! #GP(0). MMX-register forms check as MMX instructions do (and SSE).
//!
//! Arithmetic is exact: a single converts exactly into the x87's 80-bit
//! format, the x87 arithmetic (`f80`) computes to 64 bits, which, being at
//! least 2 x 24 + 2 bits, rounds once more to single precision with the
//! correctly rounded result (and flags); NaNs follow SSE's rule (the first
//! operand's, quieted), DAZ turns denormal operands into zeros, FTZ tiny
//! results. An unmasked exception leaves the destination and MXCSR's
//! other bits unchanged, sets the flags of all elements and raises #XM
//! (#UD when CR4.OSXMMEXCPT is clear).

use super::super::decode::{ExecFn, Insn, OpK};
use super::super::exec::ud;
use super::super::flags::{AF, CF, OF, PF, SF, ZF};
use super::super::state::{CR0_EM, CR0_TS};
use super::super::{Cpu, Ctx, Fault, Res};
use super::f80::{self, Class, FpEnv, Rounding, DE, IE, PE, SINGLE, UE, ZE};
use super::F80;
use iced_x86::{Instruction, Mnemonic as M};

/// MXCSR after RESET and after FXRSTOR of a fresh image.
pub const MXCSR_RESET: u32 = 0x1F80;
const MXCSR_DAZ: u32 = 1 << 6;
const MXCSR_FTZ: u32 = 1 << 15;
/// CR4.OSXMMEXCPT: unmasked SIMD exceptions raise #XM, not #UD.
pub const CR4_OSXMMEXCPT: u32 = 1 << 10;
const XM: Fault = Fault { vector: 19, error: None };

/// The SSE state (saved by FXSAVE at 24 and 160).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SseState {
    pub xmm: [u128; 8],
    pub mxcsr: u32,
}

impl Default for SseState {
    fn default() -> Self {
        SseState { xmm: [0; 8], mxcsr: MXCSR_RESET }
    }
}

/// The operation of an SSE instruction (`Insn::cc`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u8)]
pub(crate) enum Op {
    Add,
    Sub,
    Mul,
    Div,
    Sqrt,
    Max,
    Min,
    Rcp,
    Rsqrt,
    Cmp,
    And,
    AndN,
    Or,
    Xor,
    UnpckL,
    UnpckH,
    Shuf,
}

const OPS: [Op; 17] = [
    Op::Add,
    Op::Sub,
    Op::Mul,
    Op::Div,
    Op::Sqrt,
    Op::Max,
    Op::Min,
    Op::Rcp,
    Op::Rsqrt,
    Op::Cmp,
    Op::And,
    Op::AndN,
    Op::Or,
    Op::Xor,
    Op::UnpckL,
    Op::UnpckH,
    Op::Shuf,
];

/// Scalar forms operate on element 0 only (bit 7 of `Insn::cc`).
const SCALAR: u8 = 0x80;
/// Double-precision forms (SSE2; bit 6 of `Insn::cc`).
const DOUBLE: u8 = 0x40;
/// In `Insn::cc` of the handlers SSE and SSE2 share (all but `arith`,
/// whose double forms are the SSE2 ones): an SSE2 instruction (#UD on a
/// model without SSE2).
const SSE2_INSN: u8 = DOUBLE;
/// In `Insn::cc` of the handlers with two variants, chosen at decode time
/// (`handler`): the second (MOVUPS's unaligned access, MOVSD's 8 bytes,
/// MOVHPS's high half, MOVMSKPD, UCOMIS*, the truncating conversions,
/// MOVQ's 8 bytes).
const VARIANT: u8 = 0x01;

/// The semantics function of an SSE instruction (XMM registers decoded as
/// `OpK::Xmm`, MMX registers as `OpK::Mmx`).
pub(crate) fn handler(ins: &Instruction, insn: &mut Insn) -> ExecFn {
    let mmx_regs = insn.ops.iter().any(|o| o.kind == OpK::Mmx);
    let mmx_conv = matches!(
        ins.mnemonic(),
        M::Cvtpi2ps | M::Cvtps2pi | M::Cvttps2pi | M::Cvtpi2pd | M::Cvtpd2pi | M::Cvttpd2pi | M::Movq2dq | M::Movdq2q
    );
    if mmx_regs && !mmx_conv {
        return super::mmx::sse_handler(ins, insn);
    }
    if matches!(ins.mnemonic(), M::Movntq | M::Maskmovq) {
        return super::mmx::sse_handler(ins, insn);
    }
    if ins.cpuid_features() == [iced_x86::CpuidFeature::SSE2] {
        if let Some(f) = sse2_handler(ins, insn) {
            return f;
        }
    }
    // The flags of the handlers other than `arith` (which sets its own).
    let m = ins.mnemonic();
    let variant =
        matches!(m, M::Movups | M::Movhps | M::Movlhps | M::Movhpd | M::Ucomiss | M::Cvttss2si | M::Cvttps2pi);
    // (SSE2's forms in this table: MOVLPD, MOVHPD.)
    let sse2 = ins.cpuid_features() == [iced_x86::CpuidFeature::SSE2];
    insn.cc = (if variant { VARIANT } else { 0 }) | (if sse2 { SSE2_INSN } else { 0 });
    let mut op = |o: Op, scalar: bool| {
        insn.cc = o as u8 | if scalar { SCALAR } else { 0 };
        arith as ExecFn
    };
    match m {
        M::Addps => op(Op::Add, false),
        M::Addss => op(Op::Add, true),
        M::Subps => op(Op::Sub, false),
        M::Subss => op(Op::Sub, true),
        M::Mulps => op(Op::Mul, false),
        M::Mulss => op(Op::Mul, true),
        M::Divps => op(Op::Div, false),
        M::Divss => op(Op::Div, true),
        M::Sqrtps => op(Op::Sqrt, false),
        M::Sqrtss => op(Op::Sqrt, true),
        M::Maxps => op(Op::Max, false),
        M::Maxss => op(Op::Max, true),
        M::Minps => op(Op::Min, false),
        M::Minss => op(Op::Min, true),
        M::Rcpps => op(Op::Rcp, false),
        M::Rcpss => op(Op::Rcp, true),
        M::Rsqrtps => op(Op::Rsqrt, false),
        M::Rsqrtss => op(Op::Rsqrt, true),
        M::Cmpps => op(Op::Cmp, false),
        M::Cmpss => op(Op::Cmp, true),
        M::Andps => op(Op::And, false),
        M::Andnps => op(Op::AndN, false),
        M::Orps => op(Op::Or, false),
        M::Xorps => op(Op::Xor, false),
        M::Unpcklps => op(Op::UnpckL, false),
        M::Unpckhps => op(Op::UnpckH, false),
        M::Shufps => op(Op::Shuf, false),
        M::Movaps | M::Movups | M::Movntps => movps,
        M::Movss => movss,
        M::Movlps | M::Movhps | M::Movhlps | M::Movlhps | M::Movlpd | M::Movhpd => movhl,
        M::Movmskps => movmskps,
        M::Comiss | M::Ucomiss => comiss,
        M::Ldmxcsr => ldmxcsr,
        M::Stmxcsr => stmxcsr,
        M::Cvtsi2ss => cvtsi2ss,
        M::Cvtss2si | M::Cvttss2si => cvtss2si,
        M::Cvtpi2ps => cvtpi2ps,
        M::Cvtps2pi | M::Cvttps2pi => cvtps2pi,
        M::Sfence | M::Prefetchnta | M::Prefetcht0 | M::Prefetcht1 | M::Prefetcht2 => fence,
        _ => ud,
    }
}

impl Cpu {
    /// Whether the model has SSE (CPUID.1:EDX bit 25).
    pub fn has_sse(&self) -> bool {
        self.features & super::super::cpuid::FEAT_SSE != 0
    }

    /// Whether the model has SSE2 (CPUID.1:EDX bit 26).
    pub fn has_sse2(&self) -> bool {
        self.features & super::super::cpuid::FEAT_SSE2 != 0
    }

    /// `sse_start`, and #UD for an SSE2 instruction (`SSE2_INSN` in
    /// `Insn::cc`, set at decode time) on a model without.
    fn sse_start_i(&self, i: &Insn) -> Res<()> {
        if i.cc & SSE2_INSN != 0 && !self.has_sse2() {
            return Err(Fault::UD);
        }
        self.sse_start()
    }

    /// `sse_start` for the handlers only SSE2 instructions reach (their
    /// `Insn::cc` holds other things).
    fn sse2_start(&self) -> Res<()> {
        if !self.has_sse2() {
            return Err(Fault::UD);
        }
        self.sse_start()
    }

    /// The checks of an instruction on XMM registers or MXCSR.
    fn sse_start(&self) -> Res<()> {
        if !self.has_sse() || self.state.cr0 & CR0_EM != 0 || self.state.cr4 & super::super::state::CR4_OSFXSR == 0 {
            return Err(Fault::UD);
        }
        if self.state.cr0 & CR0_TS != 0 {
            return Err(Fault::NM);
        }
        Ok(())
    }

    /// The writable MXCSR bits (DAZ only with SSE2, as from the Pentium 4).
    pub fn mxcsr_mask(&self) -> u32 {
        if self.features & super::super::cpuid::FEAT_SSE2 != 0 {
            0xFFFF
        } else {
            0xFFBF
        }
    }

    /// The memory operand of `i` as `n` bytes (16 with `aligned`: #GP(0)
    /// unless the linear address is a multiple of 16).
    fn xmm_read(&mut self, ctx: &mut Ctx, i: &Insn, n: usize, aligned: bool) -> Res<u128> {
        if aligned {
            self.check_aligned16(i)?;
        }
        let mut b = [0u8; 16];
        self.fpu_read(ctx, i, &mut b[..n], n as u32)?;
        Ok(u128::from_le_bytes(b))
    }

    fn xmm_write(&mut self, ctx: &mut Ctx, i: &Insn, v: u128, n: usize, aligned: bool) -> Res<()> {
        if aligned {
            self.check_aligned16(i)?;
        }
        self.fpu_write(ctx, i, &v.to_le_bytes()[..n], n as u32)
    }

    fn check_aligned16(&mut self, i: &Insn) -> Res<()> {
        let off = self.ea(i);
        let lin = self.seg_check(i.seg as usize, off, 16, false)?;
        if lin & 15 != 0 {
            return Err(Fault::gp(0));
        }
        Ok(())
    }

    /// Source operand `n`: an XMM register, or memory of the operand's
    /// size (16 bytes aligned unless `unaligned`; 4 or 8 zero-extended).
    fn xmm_src(&mut self, ctx: &mut Ctx, i: &Insn, n: usize) -> Res<u128> {
        let o = i.ops[n];
        match o.kind {
            OpK::Xmm => Ok(self.state.sse.xmm[o.num as usize & 7]),
            OpK::Mmx => Ok(self.mmx(o.num) as u128),
            OpK::Reg => Ok(self.get_reg(o.num, 4) as u128),
            // The shifts' immediate count.
            OpK::Imm => Ok(i.imm as u8 as u128),
            _ => {
                let size = (o.size as usize).clamp(4, 16);
                self.xmm_read(ctx, i, size, size == 16)
            }
        }
    }

    /// Apply an operation's exceptions: with any unmasked, set all the
    /// flags and raise #XM (or #UD); else set them and let the caller
    /// write its result.
    fn simd_exceptions(&mut self, flags: u8) -> Res<()> {
        let m = &mut self.state.sse.mxcsr;
        *m |= flags as u32 & 0x3F;
        let unmasked = flags as u32 & !(*m >> 7) & 0x3F;
        if unmasked != 0 {
            return Err(if self.state.cr4 & CR4_OSXMMEXCPT != 0 { XM } else { Fault::UD });
        }
        Ok(())
    }
}

fn lanes(v: u128) -> [u32; 4] {
    std::array::from_fn(|k| (v >> (32 * k)) as u32)
}

fn from_lanes(l: [u32; 4]) -> u128 {
    l.iter().enumerate().fold(0, |a, (k, &x)| a | (x as u128) << (32 * k))
}

/// The environment of MXCSR (every exception masked; callers set the
/// masks and the destination format).
fn env_of(mxcsr: u32) -> FpEnv {
    let mut e = FpEnv::from_cw(0x037F);
    e.rc = Rounding::from_rc((mxcsr >> 13) as u16);
    e
}

/// An SSE floating-point format: single or double precision.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Fp {
    S,
    D,
}

impl Fp {
    fn sign(self) -> u64 {
        match self {
            Fp::S => 1 << 31,
            Fp::D => 1 << 63,
        }
    }
    /// The exponent field all ones: infinity's encoding.
    fn inf(self) -> u64 {
        match self {
            Fp::S => 0x7F80_0000,
            Fp::D => 0x7FF0_0000_0000_0000,
        }
    }
    fn quiet(self) -> u64 {
        match self {
            Fp::S => 0x0040_0000,
            Fp::D => 1 << 51,
        }
    }
    /// The QNaN floating-point indefinite.
    fn indefinite(self) -> u64 {
        self.sign() | self.inf() | self.quiet()
    }
    fn mag(self, x: u64) -> u64 {
        x & (self.sign() - 1)
    }
    fn is_nan(self, x: u64) -> bool {
        self.mag(x) > self.inf()
    }
    fn is_snan(self, x: u64) -> bool {
        self.is_nan(x) && x & self.quiet() == 0
    }
    fn is_denormal(self, x: u64) -> bool {
        x & self.inf() == 0 && self.mag(x) != 0
    }
    fn format(self) -> f80::Format {
        match self {
            Fp::S => SINGLE,
            Fp::D => f80::DOUBLE,
        }
    }
    /// The value, exactly, in the x87 format.
    fn to_f80(self, x: u64) -> F80 {
        match self {
            Fp::S => f80::from_f32(x as u32).0,
            Fp::D => f80::from_f64(x).0,
        }
    }
    /// The encoding of a value the format holds exactly.
    fn encode(self, r: F80) -> u64 {
        let mut env = FpEnv::from_cw(0x037F);
        f80::store_ieee(r, self.format(), &mut env)
    }
    /// A denormal operand read as a zero under MXCSR.DAZ.
    fn daz(self, x: u64, mxcsr: u32) -> u64 {
        if mxcsr & MXCSR_DAZ != 0 && self.is_denormal(x) {
            x & self.sign()
        } else {
            x
        }
    }
}

/// One element of a two-operand arithmetic operation (`a` the
/// destination's) in format `fp`: the result bits and the exceptions.
pub(crate) fn elem(op: Op, fp: Fp, a: u64, b: u64, imm: u8, mxcsr: u32) -> (u64, u8) {
    let (a, b) = (fp.daz(a, mxcsr), fp.daz(b, mxcsr));
    let unary = matches!(op, Op::Sqrt | Op::Rcp | Op::Rsqrt);
    let mut flags = 0u8;
    match op {
        Op::Cmp => {
            let pred = imm & 7;
            let unordered = fp.is_nan(a) || fp.is_nan(b);
            // LT, LE, NLT, NLE signal on any NaN; the rest on SNaNs; no
            // DE beside a NaN.
            if (unordered && matches!(pred, 1 | 2 | 5 | 6)) || fp.is_snan(a) || fp.is_snan(b) {
                flags |= IE;
            } else if !unordered && (fp.is_denormal(a) || fp.is_denormal(b)) {
                flags |= DE;
            }
            let (lt, eq) = if unordered { (false, false) } else { order(fp, a, b) };
            let r = match pred {
                0 => eq,
                1 => lt,
                2 => lt || eq,
                3 => unordered,
                4 => !eq,
                5 => !lt,
                6 => !(lt || eq),
                _ => !unordered,
            };
            return (if r { u64::MAX } else { 0 }, flags);
        }
        Op::Max | Op::Min => {
            if fp.is_nan(a) || fp.is_nan(b) {
                return (b, IE);
            }
            if fp.is_denormal(a) || fp.is_denormal(b) {
                flags |= DE;
            }
            let pick_a = if op == Op::Max { order(fp, b, a).0 } else { order(fp, a, b).0 };
            return (if pick_a { a } else { b }, flags);
        }
        Op::Rcp | Op::Rsqrt => return (approx(op, b as u32) as u64, 0),
        _ => {}
    }
    // NaN operands: the first one's, quieted (SNaNs raise IE).
    let ops: &[u64] = if unary { &[b] } else { &[a, b] };
    if let Some(&n) = ops.iter().find(|&&x| fp.is_nan(x)) {
        let ie = if ops.iter().any(|&x| fp.is_snan(x)) { IE } else { 0 };
        return (n | fp.quiet(), ie);
    }
    if ops.iter().any(|&x| fp.is_denormal(x)) {
        flags |= DE;
    }
    let (x, y) = (fp.to_f80(a), fp.to_f80(b));
    let (bits, f) = round_to(fp, mxcsr, |env| match op {
        Op::Add => f80::add(x, y, env),
        Op::Sub => f80::sub(x, y, env),
        Op::Mul => f80::mul(x, y, env),
        Op::Div => f80::div(x, y, env),
        _ => f80::sqrt(y, env),
    });
    if f & IE != 0 {
        // (Invalid beats denormal.)
        return (bits, IE);
    }
    if f & ZE != 0 {
        // (A denormal dividend is not reported then.)
        return ((a ^ b) & fp.sign() | fp.inf(), ZE);
    }
    (bits, flags | f)
}

/// Compute a result rounded once to `fp` under MXCSR (RC, masks, FTZ):
/// the encoding and the exceptions (IE gives the indefinite). Tininess is
/// detected after rounding; a masked underflow is reported when the
/// result is also inexact, an unmasked one whenever tiny.
fn round_to(fp: Fp, mxcsr: u32, f: impl Fn(&mut FpEnv) -> F80) -> (u64, u8) {
    let masks = (mxcsr >> 7) as u8 & 0x3F;
    let mut env = env_of(mxcsr);
    env.dest = Some(fp.format());
    // Underflow unmasked here: raised whenever the rounded result is tiny.
    env.masks = masks & !UE;
    let r = f(&mut env);
    if env.flags & IE != 0 {
        return (fp.indefinite(), IE);
    }
    if env.flags & UE == 0 {
        return (fp.encode(r), env.flags);
    }
    if masks & UE == 0 {
        return (0, UE | (env.flags & PE));
    }
    if mxcsr & MXCSR_FTZ != 0 {
        return (if r.sign() { fp.sign() } else { 0 }, UE | PE);
    }
    let mut env = env_of(mxcsr);
    env.dest = Some(fp.format());
    env.masks = masks;
    let r = f(&mut env);
    (fp.encode(r), env.flags)
}

/// (a < b, a == b) for ordered values (-0 == +0).
fn order(fp: Fp, a: u64, b: u64) -> (bool, bool) {
    let key = |x: u64| if x & fp.sign() != 0 { -(fp.mag(x) as i128) } else { x as i128 };
    let (ka, kb) = (key(a), key(b));
    (ka < kb, ka == kb)
}

/// RCP/RSQRT: 1/x and 1/sqrt(x) with a relative error below 1.5 x 2^-12,
/// as the SDM bounds them (the exact bits of Intel's tables are not
/// architectural: here the exact value's significand cut to 12 bits).
/// Denormal inputs count as zeros, results past the normal range flush
/// to zero; no exceptions.
fn approx(op: Op, b: u32) -> u32 {
    let sign = b & 0x8000_0000;
    if Fp::S.is_nan(b as u64) {
        return b | Fp::S.quiet() as u32;
    }
    let mag = b & 0x7FFF_FFFF;
    if mag < 0x0080_0000 {
        return sign | 0x7F80_0000;
    }
    if op == Op::Rsqrt && sign != 0 {
        return Fp::S.indefinite() as u32;
    }
    if mag == 0x7F80_0000 {
        return if op == Op::Rcp { sign } else { 0 };
    }
    let v = f32::from_bits(mag) as f64;
    let r = if op == Op::Rcp { 1.0 / v } else { 1.0 / v.sqrt() } as f32;
    let r = r.to_bits();
    if r < 0x0080_0000 {
        return sign;
    }
    (r & !0x7FF) | if op == Op::Rcp { sign } else { 0 }
}

/// `a op b` for whole registers (logic, unpacks, shuffles, arithmetic in
/// format `fp`). Returns the result and the exceptions of all elements.
pub(crate) fn compute(op: Op, fp: Fp, scalar: bool, a: u128, b: u128, imm: u8, mxcsr: u32) -> (u128, u8) {
    let (x, y) = (lanes(a), lanes(b));
    match op {
        Op::And => (a & b, 0),
        Op::AndN => (!a & b, 0),
        Op::Or => (a | b, 0),
        Op::Xor => (a ^ b, 0),
        Op::UnpckL if fp == Fp::D => ((a & u64::MAX as u128) | b << 64, 0),
        Op::UnpckH if fp == Fp::D => (a >> 64 | (b >> 64) << 64, 0),
        Op::Shuf if fp == Fp::D => {
            let lo = if imm & 1 != 0 { a >> 64 } else { a & u64::MAX as u128 };
            let hi = if imm & 2 != 0 { b >> 64 } else { b & u64::MAX as u128 };
            (lo | hi << 64, 0)
        }
        Op::UnpckL => (from_lanes([x[0], y[0], x[1], y[1]]), 0),
        Op::UnpckH => (from_lanes([x[2], y[2], x[3], y[3]]), 0),
        Op::Shuf => {
            let s = |k: u32| (imm as u32 >> (2 * k)) & 3;
            (from_lanes([x[s(0) as usize], x[s(1) as usize], y[s(2) as usize], y[s(3) as usize]]), 0)
        }
        _ => {
            let (w, n) = match fp {
                Fp::S => (32, 4),
                Fp::D => (64, 2),
            };
            let n = if scalar { 1 } else { n };
            let m = if w == 32 { u32::MAX as u128 } else { u64::MAX as u128 };
            let mut r = a;
            let mut flags = 0;
            for k in 0..n {
                let sh = w * k;
                let (v, f) = elem(op, fp, ((a >> sh) & m) as u64, ((b >> sh) & m) as u64, imm, mxcsr);
                r = (r & !(m << sh)) | ((v as u128 & m) << sh);
                flags |= f;
            }
            (r, flags)
        }
    }
}

fn xmm_dst(i: &Insn) -> Res<usize> {
    match i.ops[0] {
        o if o.kind == OpK::Xmm => Ok(o.num as usize & 7),
        _ => Err(Fault::UD),
    }
}

/// The arithmetic, logic, compare, unpack and shuffle instructions.
fn arith(cpu: &mut Cpu, ctx: &mut Ctx, i: &Insn) -> Res<()> {
    cpu.sse_start_i(i)?;
    let d = xmm_dst(i)?;
    let op = OPS.get((i.cc & !(SCALAR | DOUBLE)) as usize).copied().ok_or(Fault::UD)?;
    let scalar = i.cc & SCALAR != 0;
    let b = cpu.xmm_src(ctx, i, 1)?;
    let a = cpu.state.sse.xmm[d];
    let fp = if i.cc & DOUBLE != 0 { Fp::D } else { Fp::S };
    let (r, flags) = compute(op, fp, scalar, a, b, i.imm as u8, cpu.state.sse.mxcsr);
    cpu.simd_exceptions(flags)?;
    cpu.state.sse.xmm[d] = r;
    Ok(())
}

/// MOVAPS/MOVUPS/MOVNTPS: register to register, load, store (MOVAPS and
/// MOVNTPS with 16-byte alignment).
fn movps(cpu: &mut Cpu, ctx: &mut Ctx, i: &Insn) -> Res<()> {
    cpu.sse_start_i(i)?;
    let aligned = i.cc & VARIANT == 0;
    let src = match i.ops[1].kind {
        OpK::Xmm => cpu.state.sse.xmm[i.ops[1].num as usize & 7],
        _ => cpu.xmm_read(ctx, i, 16, aligned)?,
    };
    match i.ops[0].kind {
        OpK::Xmm => cpu.state.sse.xmm[i.ops[0].num as usize & 7] = src,
        _ => cpu.xmm_write(ctx, i, src, 16, aligned)?,
    }
    Ok(())
}

/// MOVSS (and SSE2's MOVSD): a load zeroes the rest of the register, a
/// register move keeps it.
fn movss(cpu: &mut Cpu, ctx: &mut Ctx, i: &Insn) -> Res<()> {
    cpu.sse_start_i(i)?;
    let n = if i.cc & VARIANT != 0 { 8 } else { 4 };
    let low = u128::MAX >> (128 - 8 * n);
    match (i.ops[0].kind, i.ops[1].kind) {
        (OpK::Xmm, OpK::Xmm) => {
            let d = i.ops[0].num as usize & 7;
            let s = cpu.state.sse.xmm[i.ops[1].num as usize & 7];
            cpu.state.sse.xmm[d] = (cpu.state.sse.xmm[d] & !low) | (s & low);
        }
        (OpK::Xmm, _) => {
            let v = cpu.xmm_read(ctx, i, n, false)?;
            cpu.state.sse.xmm[i.ops[0].num as usize & 7] = v;
        }
        _ => {
            let v = cpu.state.sse.xmm[i.ops[1].num as usize & 7];
            cpu.xmm_write(ctx, i, v, n, false)?;
        }
    }
    Ok(())
}

/// MOVLPS/MOVHPS (a 64-bit half to or from memory), MOVHLPS/MOVLHPS
/// (register halves).
fn movhl(cpu: &mut Cpu, ctx: &mut Ctx, i: &Insn) -> Res<()> {
    cpu.sse_start_i(i)?;
    let lo = u64::MAX as u128;
    let high = i.cc & VARIANT != 0;
    match (i.ops[0].kind, i.ops[1].kind) {
        (OpK::Xmm, OpK::Xmm) => {
            let d = i.ops[0].num as usize & 7;
            let s = cpu.state.sse.xmm[i.ops[1].num as usize & 7];
            let x = cpu.state.sse.xmm[d];
            // MOVLHPS: low half of the source to the high half; MOVHLPS:
            // high half of the source to the low half.
            cpu.state.sse.xmm[d] = if high { (x & lo) | (s << 64) } else { (x & !lo) | (s >> 64) };
        }
        (OpK::Xmm, _) => {
            let v = cpu.xmm_read(ctx, i, 8, false)?;
            let d = i.ops[0].num as usize & 7;
            let x = cpu.state.sse.xmm[d];
            cpu.state.sse.xmm[d] = if high { (x & lo) | (v << 64) } else { (x & !lo) | v };
        }
        _ => {
            let s = cpu.state.sse.xmm[i.ops[1].num as usize & 7];
            cpu.xmm_write(ctx, i, if high { s >> 64 } else { s }, 8, false)?;
        }
    }
    Ok(())
}

/// MOVMSKPS/MOVMSKPD: the elements' sign bits.
fn movmskps(cpu: &mut Cpu, _: &mut Ctx, i: &Insn) -> Res<()> {
    cpu.sse_start_i(i)?;
    let x = cpu.state.sse.xmm[i.ops[1].num as usize & 7];
    let m = if i.cc & VARIANT != 0 {
        ((x >> 63) & 1 | (x >> 126) & 2) as u32
    } else {
        let s = lanes(x);
        (0..4).fold(0, |a, k| a | (s[k] >> 31) << k)
    };
    cpu.set_reg(i.ops[0].num, 4, m);
    Ok(())
}

/// COMISS/UCOMISS (and SSE2's COMISD/UCOMISD): ZF, PF, CF from the
/// comparison (111 unordered, 000 greater, 001 less, 100 equal); OF, SF,
/// AF cleared.
fn comiss(cpu: &mut Cpu, ctx: &mut Ctx, i: &Insn) -> Res<()> {
    cpu.sse_start_i(i)?;
    let (fp, mask) = if i.cc & SSE2_INSN != 0 { (Fp::D, u64::MAX) } else { (Fp::S, u32::MAX as u64) };
    let mxcsr = cpu.state.sse.mxcsr;
    let a = fp.daz(cpu.state.sse.xmm[i.ops[0].num as usize & 7] as u64 & mask, mxcsr);
    let b = fp.daz(cpu.xmm_src(ctx, i, 1)? as u64 & mask, mxcsr);
    let quiet = i.cc & VARIANT != 0;
    let unordered = fp.is_nan(a) || fp.is_nan(b);
    let flags = if fp.is_snan(a) || fp.is_snan(b) || (unordered && !quiet) {
        IE
    } else if !unordered && (fp.is_denormal(a) || fp.is_denormal(b)) {
        DE
    } else {
        0
    };
    cpu.simd_exceptions(flags)?;
    let v = if unordered {
        ZF | PF | CF
    } else {
        match order(fp, a, b) {
            (_, true) => ZF,
            (true, _) => CF,
            _ => 0,
        }
    };
    cpu.state.flags.load(v, ZF | PF | CF | OF | SF | AF);
    Ok(())
}

fn ldmxcsr(cpu: &mut Cpu, ctx: &mut Ctx, i: &Insn) -> Res<()> {
    cpu.sse_start_i(i)?;
    let v = cpu.xmm_read(ctx, i, 4, false)? as u32;
    if v & !cpu.mxcsr_mask() != 0 {
        return Err(Fault::gp(0));
    }
    cpu.state.sse.mxcsr = v;
    Ok(())
}

fn stmxcsr(cpu: &mut Cpu, ctx: &mut Ctx, i: &Insn) -> Res<()> {
    cpu.sse_start_i(i)?;
    let v = cpu.state.sse.mxcsr;
    cpu.xmm_write(ctx, i, v as u128, 4, false)
}

/// CVTSI2SS xmm, r/m32: rounded per MXCSR.RC.
fn cvtsi2ss(cpu: &mut Cpu, ctx: &mut Ctx, i: &Insn) -> Res<()> {
    cpu.sse_start_i(i)?;
    let v = cpu.xmm_src(ctx, i, 1)? as u32 as i32;
    let (bits, flags) = int_to(Fp::S, v, cpu.state.sse.mxcsr);
    cpu.simd_exceptions(flags)?;
    let d = xmm_dst(i)?;
    cpu.state.sse.xmm[d] = (cpu.state.sse.xmm[d] & !0xFFFF_FFFFu128) | bits as u128;
    Ok(())
}

/// A 32-bit integer in format `fp`, rounded per MXCSR.RC.
fn int_to(fp: Fp, v: i32, mxcsr: u32) -> (u64, u8) {
    round_to(fp, mxcsr, |env| f80::add(F80::from_i64(v as i64), F80::ZERO, env))
}

/// A value of format `fp` to a 32-bit integer per MXCSR.RC (or
/// truncated): the integer indefinite 80000000h for NaNs and out-of-range
/// values (IE). No DE (denormals count under DAZ).
fn to_i32(fp: Fp, x: u64, truncate: bool, mxcsr: u32) -> (u32, u8) {
    let x = fp.daz(x, mxcsr);
    let mut env = env_of(mxcsr);
    if truncate {
        env.rc = Rounding::Zero;
    }
    let v = fp.to_f80(x);
    if matches!(v.class(), Class::QNaN | Class::SNaN | Class::Infinity) {
        return (0x8000_0000, IE);
    }
    match f80::to_int(v, 32, &mut env) {
        Some(n) => (n as u32, env.flags & PE),
        None => (0x8000_0000, IE),
    }
}

fn cvtss2si(cpu: &mut Cpu, ctx: &mut Ctx, i: &Insn) -> Res<()> {
    cpu.sse_start_i(i)?;
    let x = cpu.xmm_src(ctx, i, 1)? as u32;
    let t = i.cc & VARIANT != 0;
    let (v, flags) = to_i32(Fp::S, x as u64, t, cpu.state.sse.mxcsr);
    cpu.simd_exceptions(flags)?;
    cpu.set_reg(i.ops[0].num, 4, v);
    Ok(())
}

/// CVTPI2PS xmm, mm/m64: two integers to the low two elements (an MMX
/// register source makes the MMX transition).
fn cvtpi2ps(cpu: &mut Cpu, ctx: &mut Ctx, i: &Insn) -> Res<()> {
    cpu.sse_start_i(i)?;
    let mmx = i.ops[1].kind == OpK::Mmx;
    if mmx {
        cpu.fpu_pending()?;
    }
    let s = cpu.xmm_src(ctx, i, 1)? as u64;
    let mxcsr = cpu.state.sse.mxcsr;
    let (lo, f0) = int_to(Fp::S, s as u32 as i32, mxcsr);
    let (hi, f1) = int_to(Fp::S, (s >> 32) as u32 as i32, mxcsr);
    cpu.simd_exceptions(f0 | f1)?;
    let d = xmm_dst(i)?;
    cpu.state.sse.xmm[d] = (cpu.state.sse.xmm[d] & !(u64::MAX as u128)) | lo as u128 | (hi as u128) << 32;
    if mmx {
        cpu.mmx_done();
    }
    Ok(())
}

/// CVTPS2PI/CVTTPS2PI mm, xmm/m64: the low two elements to integers in
/// an MMX register.
fn cvtps2pi(cpu: &mut Cpu, ctx: &mut Ctx, i: &Insn) -> Res<()> {
    cpu.sse_start_i(i)?;
    cpu.fpu_pending()?;
    let s = cpu.xmm_src(ctx, i, 1)?;
    let t = i.cc & VARIANT != 0;
    let mxcsr = cpu.state.sse.mxcsr;
    let (lo, f0) = to_i32(Fp::S, s as u32 as u64, t, mxcsr);
    let (hi, f1) = to_i32(Fp::S, (s >> 32) as u32 as u64, t, mxcsr);
    cpu.simd_exceptions(f0 | f1)?;
    cpu.set_mmx(i.ops[0].num, lo as u64 | (hi as u64) << 32);
    cpu.mmx_done();
    Ok(())
}

/// SFENCE and the PREFETCH hints: ordering and caching only.
fn fence(cpu: &mut Cpu, _: &mut Ctx, i: &Insn) -> Res<()> {
    let sse2 = i.cc & SSE2_INSN != 0;
    if !cpu.has_sse() || (sse2 && !cpu.has_sse2()) {
        return Err(Fault::UD);
    }
    // (Nothing else to check, nothing to order.)
    Ok(())
}

/// SSE2's XMM forms: the double-precision twins of SSE's, the 128-bit
/// integer instructions, the conversions, the moves and the fences (None:
/// the forms SSE's table already has, MOVSD and the moves of halves).
fn sse2_handler(ins: &Instruction, insn: &mut Insn) -> Option<ExecFn> {
    let mut op = |o: Op, scalar: bool| {
        insn.cc = o as u8 | DOUBLE | if scalar { SCALAR } else { 0 };
        Some(arith as ExecFn)
    };
    let m = ins.mnemonic();
    match m {
        M::Addpd => op(Op::Add, false),
        M::Addsd => op(Op::Add, true),
        M::Subpd => op(Op::Sub, false),
        M::Subsd => op(Op::Sub, true),
        M::Mulpd => op(Op::Mul, false),
        M::Mulsd => op(Op::Mul, true),
        M::Divpd => op(Op::Div, false),
        M::Divsd => op(Op::Div, true),
        M::Sqrtpd => op(Op::Sqrt, false),
        M::Sqrtsd => op(Op::Sqrt, true),
        M::Maxpd => op(Op::Max, false),
        M::Maxsd => op(Op::Max, true),
        M::Minpd => op(Op::Min, false),
        M::Minsd => op(Op::Min, true),
        M::Cmppd => op(Op::Cmp, false),
        M::Cmpsd => op(Op::Cmp, true),
        M::Andpd => op(Op::And, false),
        M::Andnpd => op(Op::AndN, false),
        M::Orpd => op(Op::Or, false),
        M::Xorpd => op(Op::Xor, false),
        M::Unpcklpd => op(Op::UnpckL, false),
        M::Unpckhpd => op(Op::UnpckH, false),
        M::Shufpd => op(Op::Shuf, false),
        M::Movapd | M::Movupd | M::Movntpd | M::Movdqa | M::Movdqu | M::Movntdq => {
            insn.cc = SSE2_INSN | if matches!(m, M::Movupd | M::Movdqu) { VARIANT } else { 0 };
            Some(movps)
        }
        M::Movsd => {
            insn.cc = SSE2_INSN | VARIANT;
            Some(movss)
        }
        M::Movmskpd => {
            insn.cc = SSE2_INSN | VARIANT;
            Some(movmskps)
        }
        M::Comisd | M::Ucomisd => {
            insn.cc = SSE2_INSN | if m == M::Ucomisd { VARIANT } else { 0 };
            Some(comiss)
        }
        M::Punpcklqdq | M::Punpckhqdq => {
            insn.cc = (m == M::Punpckhqdq) as u8;
            Some(unpck_qdq)
        }
        M::Pshufd | M::Pshufhw | M::Pshuflw => {
            insn.cc = match m {
                M::Pshufd => 0,
                M::Pshufhw => 1,
                _ => 2,
            };
            Some(pshufd)
        }
        M::Pslldq | M::Psrldq => {
            insn.cc = (m == M::Psrldq) as u8;
            Some(shift_dq)
        }
        M::Pmovmskb => Some(pmovmskb128),
        M::Pextrw => Some(pextrw128),
        M::Pinsrw => Some(pinsrw128),
        M::Movd | M::Movq => {
            insn.cc = if m == M::Movq { VARIANT } else { 0 };
            Some(movdq)
        }
        M::Movq2dq | M::Movdq2q => Some(movq2dq),
        M::Maskmovdqu => Some(maskmovdqu),
        M::Movnti => Some(movnti),
        M::Clflush => Some(clflush),
        M::Lfence | M::Mfence => {
            insn.cc = SSE2_INSN;
            Some(fence)
        }
        _ => {
            if let Some(c) = Cvt::of(m) {
                insn.cc = c as u8;
                return Some(cvt);
            }
            let lane = super::mmx::lane_op(m)?;
            if insn.ops[0].kind != OpK::Xmm {
                return None;
            }
            insn.cc = lane as u8;
            Some(int128)
        }
    }
}

/// A 128-bit integer operation: the MMX lane operation on each half
/// (packs and unpacks across the halves as the 128-bit forms define them;
/// shift counts are the source's low 64 bits or the immediate).
fn int128(cpu: &mut Cpu, ctx: &mut Ctx, i: &Insn) -> Res<()> {
    cpu.sse2_start()?;
    let d = xmm_dst(i)?;
    let b = cpu.xmm_src(ctx, i, 1)?;
    let op = super::mmx::op_from(i.cc).ok_or(Fault::UD)?;
    let a = cpu.state.sse.xmm[d];
    cpu.state.sse.xmm[d] = int_compute(op, a, b);
    Ok(())
}

/// `a op b` on 128-bit integer registers.
pub(crate) fn int_compute(op: super::mmx::Op, a: u128, b: u128) -> u128 {
    use super::mmx::{compute as c, Op as I};
    let (al, ah, bl, bh) = (a as u64, (a >> 64) as u64, b as u64, (b >> 64) as u64);
    let pair = |lo: u64, hi: u64| lo as u128 | (hi as u128) << 64;
    match op {
        I::PackSSWB | I::PackSSDW | I::PackUSWB => pair(c(op, al, ah), c(op, bl, bh)),
        I::UnpckLBW => pair(c(I::UnpckLBW, al, bl), c(I::UnpckHBW, al, bl)),
        I::UnpckLWD => pair(c(I::UnpckLWD, al, bl), c(I::UnpckHWD, al, bl)),
        I::UnpckLDQ => pair(c(I::UnpckLDQ, al, bl), c(I::UnpckHDQ, al, bl)),
        I::UnpckHBW => pair(c(I::UnpckLBW, ah, bh), c(I::UnpckHBW, ah, bh)),
        I::UnpckHWD => pair(c(I::UnpckLWD, ah, bh), c(I::UnpckHWD, ah, bh)),
        I::UnpckHDQ => pair(c(I::UnpckLDQ, ah, bh), c(I::UnpckHDQ, ah, bh)),
        I::SllW | I::SllD | I::SllQ | I::SrlW | I::SrlD | I::SrlQ | I::SraW | I::SraD => {
            pair(c(op, al, bl), c(op, ah, bl))
        }
        _ => pair(c(op, al, bl), c(op, ah, bh)),
    }
}

/// PUNPCKLQDQ (cc 0) / PUNPCKHQDQ (cc 1).
fn unpck_qdq(cpu: &mut Cpu, ctx: &mut Ctx, i: &Insn) -> Res<()> {
    cpu.sse2_start()?;
    let d = xmm_dst(i)?;
    let b = cpu.xmm_src(ctx, i, 1)?;
    let a = cpu.state.sse.xmm[d];
    let lo = u64::MAX as u128;
    cpu.state.sse.xmm[d] = if i.cc == 0 { (a & lo) | b << 64 } else { a >> 64 | (b >> 64) << 64 };
    Ok(())
}

/// PSHUFD (cc 0), PSHUFHW (1), PSHUFLW (2).
fn pshufd(cpu: &mut Cpu, ctx: &mut Ctx, i: &Insn) -> Res<()> {
    cpu.sse2_start()?;
    let d = xmm_dst(i)?;
    let s = cpu.xmm_src(ctx, i, 1)?;
    let imm = i.imm as u8;
    let sel = |k: usize| (imm >> (2 * k)) as usize & 3;
    cpu.state.sse.xmm[d] = match i.cc {
        0 => {
            let l = lanes(s);
            from_lanes(std::array::from_fn(|k| l[sel(k)]))
        }
        cc => {
            let half = if cc == 1 { (s >> 64) as u64 } else { s as u64 };
            let w: [u16; 4] = std::array::from_fn(|k| (half >> (16 * k)) as u16);
            let r = (0..4).fold(0u64, |a, k| a | (w[sel(k)] as u64) << (16 * k));
            if cc == 1 {
                (s & u64::MAX as u128) | (r as u128) << 64
            } else {
                (s & !(u64::MAX as u128)) | r as u128
            }
        }
    };
    Ok(())
}

/// PSLLDQ (cc 0) / PSRLDQ (cc 1) xmm, imm8: by bytes; past 15, zero.
fn shift_dq(cpu: &mut Cpu, _: &mut Ctx, i: &Insn) -> Res<()> {
    cpu.sse2_start()?;
    let d = xmm_dst(i)?;
    let n = i.imm & 0xFF;
    let x = cpu.state.sse.xmm[d];
    cpu.state.sse.xmm[d] = match (n > 15, i.cc) {
        (true, _) => 0,
        (_, 0) => x << (8 * n),
        _ => x >> (8 * n),
    };
    Ok(())
}

fn pmovmskb128(cpu: &mut Cpu, _: &mut Ctx, i: &Insn) -> Res<()> {
    cpu.sse2_start()?;
    let b = cpu.state.sse.xmm[i.ops[1].num as usize & 7].to_le_bytes();
    let m = (0..16).fold(0u32, |a, k| a | ((b[k] >> 7) as u32) << k);
    cpu.set_reg(i.ops[0].num, 4, m);
    Ok(())
}

fn pextrw128(cpu: &mut Cpu, _: &mut Ctx, i: &Insn) -> Res<()> {
    cpu.sse2_start()?;
    let x = cpu.state.sse.xmm[i.ops[1].num as usize & 7];
    cpu.set_reg(i.ops[0].num, 4, (x >> (16 * (i.imm & 7))) as u16 as u32);
    Ok(())
}

fn pinsrw128(cpu: &mut Cpu, ctx: &mut Ctx, i: &Insn) -> Res<()> {
    cpu.sse2_start()?;
    let v = match i.ops[1].kind {
        OpK::Reg => cpu.get_reg(i.ops[1].num, 4) as u16,
        _ => {
            let off = cpu.ea(i);
            cpu.read_mem(ctx, i.seg as usize, off, 2)? as u16
        }
    };
    let d = xmm_dst(i)?;
    let sh = 16 * (i.imm & 7);
    cpu.state.sse.xmm[d] = (cpu.state.sse.xmm[d] & !(0xFFFFu128 << sh)) | (v as u128) << sh;
    Ok(())
}

/// MOVD xmm, r/m32 and MOVQ xmm, xmm/m64 (zero-extended to 128 bits);
/// MOVD r/m32, xmm and MOVQ xmm/m64, xmm (the low 32 or 64 bits; a
/// register destination's upper half is zeroed).
fn movdq(cpu: &mut Cpu, ctx: &mut Ctx, i: &Insn) -> Res<()> {
    cpu.sse2_start()?;
    let n = if i.cc & VARIANT != 0 { 8 } else { 4 };
    let mask = u128::MAX >> (128 - 8 * n);
    let v = match i.ops[1].kind {
        OpK::Xmm => cpu.state.sse.xmm[i.ops[1].num as usize & 7],
        OpK::Reg => cpu.get_reg(i.ops[1].num, 4) as u128,
        _ => cpu.xmm_read(ctx, i, n, false)?,
    } & mask;
    match i.ops[0].kind {
        OpK::Xmm => cpu.state.sse.xmm[i.ops[0].num as usize & 7] = v,
        OpK::Reg => cpu.set_reg(i.ops[0].num, 4, v as u32),
        _ => cpu.xmm_write(ctx, i, v, n, false)?,
    }
    Ok(())
}

/// MOVQ2DQ xmm, mm / MOVDQ2Q mm, xmm (the MMX transition either way).
fn movq2dq(cpu: &mut Cpu, _: &mut Ctx, i: &Insn) -> Res<()> {
    cpu.sse2_start()?;
    cpu.fpu_pending()?;
    let (d, s) = (i.ops[0], i.ops[1]);
    if d.kind == OpK::Xmm {
        cpu.state.sse.xmm[d.num as usize & 7] = cpu.mmx(s.num) as u128;
    } else {
        let v = cpu.state.sse.xmm[s.num as usize & 7] as u64;
        cpu.set_mmx(d.num, v);
    }
    cpu.mmx_done();
    Ok(())
}

/// MASKMOVDQU xmm1, xmm2: MASKMOVQ's 16-byte twin (DS:(E)DI).
fn maskmovdqu(cpu: &mut Cpu, ctx: &mut Ctx, i: &Insn) -> Res<()> {
    cpu.sse2_start()?;
    let v = cpu.state.sse.xmm[i.ops[1].num as usize & 7].to_le_bytes();
    let m = cpu.state.sse.xmm[i.ops[2].num as usize & 7].to_le_bytes();
    if m.iter().all(|b| b & 0x80 == 0) {
        return Ok(());
    }
    let di = cpu.state.regs[super::super::state::EDI];
    let off = if i.addr32 { di } else { di & 0xFFFF };
    let seg = i.seg as usize;
    for k in [0u32, 8] {
        cpu.mem_loc(ctx, seg, off.wrapping_add(k), 8, true)?;
    }
    for k in 0..16 {
        if m[k] & 0x80 != 0 {
            cpu.write_mem(ctx, seg, off.wrapping_add(k as u32), 1, v[k] as u32)?;
        }
    }
    Ok(())
}

/// MOVNTI m32, r32: a store (the hint aside).
fn movnti(cpu: &mut Cpu, ctx: &mut Ctx, i: &Insn) -> Res<()> {
    if !cpu.has_sse2() {
        return Err(Fault::UD);
    }
    let v = cpu.get_reg(i.ops[1].num, 4);
    let off = cpu.ea(i);
    cpu.write_mem(ctx, i.seg as usize, off, 4, v)
}

/// CLFLUSH m8: no cache to flush; the address is checked as for a read.
pub(crate) fn clflush(cpu: &mut Cpu, ctx: &mut Ctx, i: &Insn) -> Res<()> {
    if cpu.features & super::super::cpuid::FEAT_CLFSH == 0 || i.ops[0].kind != OpK::Mem {
        return Err(Fault::UD);
    }
    let off = cpu.ea(i);
    cpu.read_mem(ctx, i.seg as usize, off, 1).map(|_| ())
}

/// The SSE2 conversions (`Insn::cc`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u8)]
enum Cvt {
    Si2Sd,
    Sd2Si,
    TSd2Si,
    Ss2Sd,
    Sd2Ss,
    Ps2Pd,
    Pd2Ps,
    Dq2Ps,
    Dq2Pd,
    Ps2Dq,
    TPs2Dq,
    Pd2Dq,
    TPd2Dq,
    Pd2Pi,
    TPd2Pi,
    Pi2Pd,
}

const CVTS: [Cvt; 16] = [
    Cvt::Si2Sd,
    Cvt::Sd2Si,
    Cvt::TSd2Si,
    Cvt::Ss2Sd,
    Cvt::Sd2Ss,
    Cvt::Ps2Pd,
    Cvt::Pd2Ps,
    Cvt::Dq2Ps,
    Cvt::Dq2Pd,
    Cvt::Ps2Dq,
    Cvt::TPs2Dq,
    Cvt::Pd2Dq,
    Cvt::TPd2Dq,
    Cvt::Pd2Pi,
    Cvt::TPd2Pi,
    Cvt::Pi2Pd,
];

impl Cvt {
    fn of(m: M) -> Option<Cvt> {
        Some(match m {
            M::Cvtsi2sd => Cvt::Si2Sd,
            M::Cvtsd2si => Cvt::Sd2Si,
            M::Cvttsd2si => Cvt::TSd2Si,
            M::Cvtss2sd => Cvt::Ss2Sd,
            M::Cvtsd2ss => Cvt::Sd2Ss,
            M::Cvtps2pd => Cvt::Ps2Pd,
            M::Cvtpd2ps => Cvt::Pd2Ps,
            M::Cvtdq2ps => Cvt::Dq2Ps,
            M::Cvtdq2pd => Cvt::Dq2Pd,
            M::Cvtps2dq => Cvt::Ps2Dq,
            M::Cvttps2dq => Cvt::TPs2Dq,
            M::Cvtpd2dq => Cvt::Pd2Dq,
            M::Cvttpd2dq => Cvt::TPd2Dq,
            M::Cvtpd2pi => Cvt::Pd2Pi,
            M::Cvttpd2pi => Cvt::TPd2Pi,
            M::Cvtpi2pd => Cvt::Pi2Pd,
            _ => return None,
        })
    }
}

/// A value of format `from` in format `to`: NaNs quieted (SNaNs raise IE),
/// denormal operands raise DE (none under DAZ), rounding per MXCSR.
fn f2f(from: Fp, to: Fp, x: u64, mxcsr: u32) -> (u64, u8) {
    let x = from.daz(x, mxcsr);
    if from.is_nan(x) {
        let ie = if from.is_snan(x) { IE } else { 0 };
        return (to.encode(from.to_f80(x | from.quiet())), ie);
    }
    if from.mag(x) == 0 {
        return (if x != 0 { to.sign() } else { 0 }, 0);
    }
    let de = if from.is_denormal(x) { DE } else { 0 };
    let v = from.to_f80(x);
    let (bits, f) = round_to(to, mxcsr, |env| f80::add(v, F80::ZERO, env));
    (bits, f | de)
}

/// The conversions of SSE2 (all of them but CVTSI2SS's kind, which SSE
/// has): scalars merge into element 0, packed results to fewer elements
/// zero the rest, MMX destinations and sources make the MMX transition.
fn cvt(cpu: &mut Cpu, ctx: &mut Ctx, i: &Insn) -> Res<()> {
    cpu.sse2_start()?;
    let c = CVTS.get(i.cc as usize).copied().ok_or(Fault::UD)?;
    let mmx = i.ops.iter().any(|o| o.kind == OpK::Mmx);
    if mmx {
        cpu.fpu_pending()?;
    }
    let s = cpu.xmm_src(ctx, i, 1)?;
    let mxcsr = cpu.state.sse.mxcsr;
    let d = i.ops[0];
    let old = if d.kind == OpK::Xmm { cpu.state.sse.xmm[d.num as usize & 7] } else { 0 };
    let lo64 = u64::MAX as u128;
    let (q, q1) = (s as u64, (s >> 64) as u64);
    let (w0, w1, w2, w3) = (s as u32, (s >> 32) as u32, (s >> 64) as u32, (s >> 96) as u32);
    let i2d = |v: u32| int_to(Fp::D, v as i32, mxcsr);
    let (r, flags): (u128, u8) = match c {
        Cvt::Si2Sd => {
            let (v, f) = i2d(w0);
            ((old & !lo64) | v as u128, f)
        }
        Cvt::Sd2Si | Cvt::TSd2Si => {
            let (v, f) = to_i32(Fp::D, q, c == Cvt::TSd2Si, mxcsr);
            (v as u128, f)
        }
        Cvt::Ss2Sd => {
            let (v, f) = f2f(Fp::S, Fp::D, w0 as u64, mxcsr);
            ((old & !lo64) | v as u128, f)
        }
        Cvt::Sd2Ss => {
            let (v, f) = f2f(Fp::D, Fp::S, q, mxcsr);
            ((old & !(u32::MAX as u128)) | v as u128, f)
        }
        Cvt::Ps2Pd => {
            let (a, f0) = f2f(Fp::S, Fp::D, w0 as u64, mxcsr);
            let (b, f1) = f2f(Fp::S, Fp::D, w1 as u64, mxcsr);
            (a as u128 | (b as u128) << 64, f0 | f1)
        }
        Cvt::Pd2Ps => {
            let (a, f0) = f2f(Fp::D, Fp::S, q, mxcsr);
            let (b, f1) = f2f(Fp::D, Fp::S, q1, mxcsr);
            (a as u128 | (b as u128) << 32, f0 | f1)
        }
        Cvt::Dq2Ps => {
            let mut f = 0;
            let mut r = 0u128;
            for (k, w) in [w0, w1, w2, w3].into_iter().enumerate() {
                let (v, g) = int_to(Fp::S, w as i32, mxcsr);
                r |= (v as u128) << (32 * k);
                f |= g;
            }
            (r, f)
        }
        Cvt::Dq2Pd | Cvt::Pi2Pd => {
            let (a, f0) = i2d(w0);
            let (b, f1) = i2d(w1);
            (a as u128 | (b as u128) << 64, f0 | f1)
        }
        Cvt::Ps2Dq | Cvt::TPs2Dq => {
            let mut f = 0;
            let mut r = 0u128;
            for (k, w) in [w0, w1, w2, w3].into_iter().enumerate() {
                let (v, g) = to_i32(Fp::S, w as u64, c == Cvt::TPs2Dq, mxcsr);
                r |= (v as u128) << (32 * k);
                f |= g;
            }
            (r, f)
        }
        Cvt::Pd2Dq | Cvt::TPd2Dq | Cvt::Pd2Pi | Cvt::TPd2Pi => {
            let t = matches!(c, Cvt::TPd2Dq | Cvt::TPd2Pi);
            let (a, f0) = to_i32(Fp::D, q, t, mxcsr);
            let (b, f1) = to_i32(Fp::D, q1, t, mxcsr);
            (a as u128 | (b as u128) << 32, f0 | f1)
        }
    };
    cpu.simd_exceptions(flags)?;
    match d.kind {
        OpK::Xmm => cpu.state.sse.xmm[d.num as usize & 7] = r,
        OpK::Mmx => cpu.set_mmx(d.num, r as u64),
        _ => cpu.set_reg(d.num, 4, r as u32),
    }
    if mmx {
        cpu.mmx_done();
    }
    Ok(())
}

#[cfg(test)]
mod tests;
