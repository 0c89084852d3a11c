//! SSE and SSE2 instructions on XMM registers lowered to Cranelift vector
//! operations: the moves (all widths, loads and stores, halves, MOVD/MOVQ),
//! the logic operations, the 128-bit integer arithmetic and compares, the
//! shifts, shuffles, unpacks and packs, PMOVMSKB/MOVMSKPS/MOVMSKPD and
//! PEXTRW/PINSRW.
//!
//! The floating-point arithmetic, compares and conversions stay calls into
//! the interpreter's semantics (`Lower::helper`): they round as MXCSR says,
//! set its sticky flags, honour DAZ/FTZ and raise unmasked exceptions, none
//! of which a host vector operation reports; nor do hosts agree on NaN
//! results (x86 and ARM differ).
//!
//! XMM registers are vector variables while a region runs (`Lower::xvars`,
//! `loaded[8..]`), read from `CpuState` once per stretch of code and
//! written through to it at every write, so helpers, faults and exits find
//! them there with nothing to spill. Functions holding vector values call
//! the helpers through trampolines that save the vector registers
//! (`helpers::entry_vec`).
//!
//! An instruction takes its inline path when its checks pass there: CR0.EM
//! and CR0.TS clear and CR4.OSFXSR set (tested once per stretch, as
//! segments are), and for a memory operand the fast TLB and segment checks
//! of every inline access plus, for the aligned 16-byte forms, a linear
//! address that is a multiple of 16. Otherwise the interpreter runs the
//! instruction (raising what it raises) and the region is left.

use super::{GuestInsn, Lower, CR0, CR4};
use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{types, ConstantData, Endianness, InstBuilder, MemFlagsData, Type, Value};
use ferrite_core::cpu::decode::{Insn, OpK};
use ferrite_core::cpu::state::{CR0_EM, CR0_TS, CR4_OSFXSR};
use ferrite_core::Cpu;
use iced_x86::{Code, CpuidFeature, Mnemonic as M};
use std::mem::offset_of;

const XMM: i32 = offset_of!(Cpu, state.sse.xmm) as i32;

/// Where a lowered instruction's source comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Src {
    Xmm(u8),
    /// `n` bytes of memory, zero-extended (2: a scalar for PINSRW);
    /// `aligned`: a 16-byte operand that must be aligned.
    Mem {
        n: u32,
        aligned: bool,
    },
    Gpr(u8),
    Imm(u32),
}

/// Where its result goes: an XMM register, memory (the result's low `n`
/// bytes) or a general register (its low 32 bits).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Dst {
    Xmm(u8),
    Mem { n: u32, aligned: bool },
    Gpr(u8),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Bin {
    And,
    AndN,
    Or,
    Xor,
    Add,
    Sub,
    AddSat,
    AddUsat,
    SubSat,
    SubUsat,
    Eq,
    Gt,
    Mul,
    Umin,
    Umax,
    Smin,
    Smax,
    Avg,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Sh {
    Left,
    Right,
    Arith,
}

/// The operation: `a` is the destination register's value (when the
/// destination is one), `b` the source's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Vop {
    /// `b`; from a register, only its low `keep` bytes (zero-extended).
    Copy {
        keep: u32,
    },
    /// Byte k of the result is byte `mask[k]` of `a` (0-15) or `b`
    /// (16-31).
    Shuffle([u8; 16]),
    Bin(Bin, Type),
    /// `a` shifted in lanes of the type by `b` (an immediate or the low
    /// 64 bits of a vector).
    Shift(Sh, Type),
    /// PSLLDQ/PSRLDQ: `a` shifted by the immediate in bytes.
    ByteShift {
        left: bool,
    },
    /// PACKSS (signed) / PACKUS: `a` and `b` narrowed with saturation.
    Pack {
        signed: bool,
        ty: Type,
    },
    /// The sign bits of `b`'s lanes (into a general register).
    Mask(Type),
    /// PEXTRW: word `k` of `b`.
    ExtractW(u8),
    /// PINSRW: `a` with word `k` replaced by `b`'s low 16 bits.
    InsertW(u8),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Plan {
    src: Src,
    dst: Dst,
    op: Vop,
}

/// Whether instruction `i` is lowered to vector operations on a model of
/// SSE level `level`.
pub(super) fn lowered(i: &Insn, level: u8) -> bool {
    plan(i, level).is_some()
}

/// Whether any of `insns` is lowered to vector operations (the function
/// then holds vector values).
pub(crate) fn holds_vectors(insns: &[Insn], level: u8) -> bool {
    insns.iter().any(|i| lowered(i, level))
}

/// A shuffle mask from one by lanes of `w` bytes (lane numbers over the
/// 32 bytes of `a` then `b`).
fn by_lanes(w: usize, lanes: &[usize]) -> [u8; 16] {
    std::array::from_fn(|k| (lanes[k / w] * w + k % w) as u8)
}

/// The interleave of the low (`high` false) or high halves of `a` and `b`
/// in lanes of `w` bytes (PUNPCKL*/H*, UNPCKL*/H*).
fn unpack(w: usize, high: bool) -> [u8; 16] {
    let n = 16 / w;
    let first = if high { n / 2 } else { 0 };
    let lanes: Vec<usize> = (0..n).map(|k| if k % 2 == 0 { first + k / 2 } else { n + first + k / 2 }).collect();
    by_lanes(w, &lanes)
}

/// The lowering of instruction `i` (None: a helper call). Only XMM forms
/// of the model's level; the MMX-register forms touch the x87 state.
fn plan(i: &Insn, level: u8) -> Option<Plan> {
    if level == 0 || i.lock || i.ops.iter().any(|o| o.kind == OpK::Mmx) {
        return None;
    }
    let code = Code::try_from(i.code as usize).ok()?;
    let features = code.cpuid_features();
    let need = if features.contains(&CpuidFeature::SSE2) {
        2
    } else if features.contains(&CpuidFeature::SSE) {
        1
    } else {
        return None;
    };
    if level < need {
        return None;
    }
    let m = code.mnemonic();
    let unaligned = matches!(m, M::Movups | M::Movupd | M::Movdqu);
    let (d, s) = (i.ops[0], i.ops[1]);
    let mem = |size: u8| {
        let n = size as u32;
        matches!(n, 2 | 4 | 8 | 16).then_some((n, n == 16 && !unaligned))
    };
    let src = match s.kind {
        OpK::Xmm => Src::Xmm(s.num & 7),
        OpK::Mem => {
            let (n, aligned) = mem(s.size)?;
            Src::Mem { n, aligned }
        }
        OpK::Reg => Src::Gpr(s.num),
        OpK::Imm => Src::Imm(i.imm),
        _ => return None,
    };
    let dst = match d.kind {
        OpK::Xmm => Dst::Xmm(d.num & 7),
        OpK::Mem => {
            let (n, aligned) = mem(d.size)?;
            Dst::Mem { n, aligned }
        }
        OpK::Reg if d.size == 4 => Dst::Gpr(d.num),
        _ => return None,
    };
    let to_xmm = matches!(dst, Dst::Xmm(_));
    let src_mem = matches!(src, Src::Mem { .. });
    let imm = i.imm as usize & 0xFF;
    let sel = |k: usize| (imm >> (2 * k)) & 3;
    let shuffle = |w: usize, lanes: &[usize]| Some(Vop::Shuffle(by_lanes(w, lanes)));
    let bin = |b: Bin, ty: Type| Some(Vop::Bin(b, ty));
    use types::{I16X8, I32X4, I64X2, I8X16};
    let op = match m {
        M::Movaps | M::Movapd | M::Movdqa | M::Movups | M::Movupd | M::Movdqu => Some(Vop::Copy { keep: 16 }),
        M::Movntps | M::Movntpd | M::Movntdq if !to_xmm => Some(Vop::Copy { keep: 16 }),
        M::Movd => Some(Vop::Copy { keep: 4 }),
        M::Movq => Some(Vop::Copy { keep: 8 }),
        // Register to register: the low element merged in; else a load
        // (zero-extended) or a store.
        M::Movss if to_xmm && !src_mem => shuffle(4, &[4, 1, 2, 3]),
        M::Movsd if to_xmm && !src_mem => shuffle(8, &[2, 1]),
        M::Movss | M::Movsd => Some(Vop::Copy { keep: 16 }),
        M::Movlps | M::Movlpd if to_xmm => shuffle(8, &[2, 1]),
        M::Movhps | M::Movhpd if to_xmm => shuffle(8, &[0, 2]),
        M::Movlps | M::Movlpd => Some(Vop::Copy { keep: 16 }),
        // The store of the high half: moved down first.
        M::Movhps | M::Movhpd => shuffle(8, &[3, 3]),
        M::Movhlps => shuffle(8, &[3, 1]),
        M::Movlhps => shuffle(8, &[0, 2]),
        M::Andps | M::Andpd | M::Pand => bin(Bin::And, I8X16),
        M::Andnps | M::Andnpd | M::Pandn => bin(Bin::AndN, I8X16),
        M::Orps | M::Orpd | M::Por => bin(Bin::Or, I8X16),
        M::Xorps | M::Xorpd | M::Pxor => bin(Bin::Xor, I8X16),
        M::Paddb => bin(Bin::Add, I8X16),
        M::Paddw => bin(Bin::Add, I16X8),
        M::Paddd => bin(Bin::Add, I32X4),
        M::Paddq => bin(Bin::Add, I64X2),
        M::Psubb => bin(Bin::Sub, I8X16),
        M::Psubw => bin(Bin::Sub, I16X8),
        M::Psubd => bin(Bin::Sub, I32X4),
        M::Psubq => bin(Bin::Sub, I64X2),
        M::Paddsb => bin(Bin::AddSat, I8X16),
        M::Paddsw => bin(Bin::AddSat, I16X8),
        M::Paddusb => bin(Bin::AddUsat, I8X16),
        M::Paddusw => bin(Bin::AddUsat, I16X8),
        M::Psubsb => bin(Bin::SubSat, I8X16),
        M::Psubsw => bin(Bin::SubSat, I16X8),
        M::Psubusb => bin(Bin::SubUsat, I8X16),
        M::Psubusw => bin(Bin::SubUsat, I16X8),
        M::Pcmpeqb => bin(Bin::Eq, I8X16),
        M::Pcmpeqw => bin(Bin::Eq, I16X8),
        M::Pcmpeqd => bin(Bin::Eq, I32X4),
        M::Pcmpgtb => bin(Bin::Gt, I8X16),
        M::Pcmpgtw => bin(Bin::Gt, I16X8),
        M::Pcmpgtd => bin(Bin::Gt, I32X4),
        M::Pmullw => bin(Bin::Mul, I16X8),
        M::Pminub => bin(Bin::Umin, I8X16),
        M::Pmaxub => bin(Bin::Umax, I8X16),
        M::Pminsw => bin(Bin::Smin, I16X8),
        M::Pmaxsw => bin(Bin::Smax, I16X8),
        M::Pavgb => bin(Bin::Avg, I8X16),
        M::Pavgw => bin(Bin::Avg, I16X8),
        M::Psllw => Some(Vop::Shift(Sh::Left, I16X8)),
        M::Pslld => Some(Vop::Shift(Sh::Left, I32X4)),
        M::Psllq => Some(Vop::Shift(Sh::Left, I64X2)),
        M::Psrlw => Some(Vop::Shift(Sh::Right, I16X8)),
        M::Psrld => Some(Vop::Shift(Sh::Right, I32X4)),
        M::Psrlq => Some(Vop::Shift(Sh::Right, I64X2)),
        M::Psraw => Some(Vop::Shift(Sh::Arith, I16X8)),
        M::Psrad => Some(Vop::Shift(Sh::Arith, I32X4)),
        M::Pslldq | M::Psrldq => Some(Vop::ByteShift { left: m == M::Pslldq }),
        M::Punpcklbw => Some(Vop::Shuffle(unpack(1, false))),
        M::Punpckhbw => Some(Vop::Shuffle(unpack(1, true))),
        M::Punpcklwd => Some(Vop::Shuffle(unpack(2, false))),
        M::Punpckhwd => Some(Vop::Shuffle(unpack(2, true))),
        M::Punpckldq | M::Unpcklps => Some(Vop::Shuffle(unpack(4, false))),
        M::Punpckhdq | M::Unpckhps => Some(Vop::Shuffle(unpack(4, true))),
        M::Punpcklqdq | M::Unpcklpd => Some(Vop::Shuffle(unpack(8, false))),
        M::Punpckhqdq | M::Unpckhpd => Some(Vop::Shuffle(unpack(8, true))),
        M::Shufps => shuffle(4, &[sel(0), sel(1), 4 + sel(2), 4 + sel(3)]),
        M::Shufpd => shuffle(8, &[imm & 1, 2 + (imm >> 1 & 1)]),
        M::Pshufd => shuffle(4, &[4 + sel(0), 4 + sel(1), 4 + sel(2), 4 + sel(3)]),
        M::Pshuflw => shuffle(2, &[8 + sel(0), 8 + sel(1), 8 + sel(2), 8 + sel(3), 12, 13, 14, 15]),
        M::Pshufhw => shuffle(2, &[8, 9, 10, 11, 12 + sel(0), 12 + sel(1), 12 + sel(2), 12 + sel(3)]),
        M::Packsswb => Some(Vop::Pack { signed: true, ty: I16X8 }),
        M::Packssdw => Some(Vop::Pack { signed: true, ty: I32X4 }),
        M::Packuswb => Some(Vop::Pack { signed: false, ty: I16X8 }),
        M::Pmovmskb => Some(Vop::Mask(I8X16)),
        M::Movmskps => Some(Vop::Mask(I32X4)),
        M::Movmskpd => Some(Vop::Mask(I64X2)),
        M::Pextrw => Some(Vop::ExtractW(imm as u8 & 7)),
        M::Pinsrw => Some(Vop::InsertW(imm as u8 & 7)),
        _ => None,
    }?;
    // The operand shapes each operation takes (anything else: a helper).
    let ok = match op {
        Vop::Copy { .. } => match (src, dst) {
            (Src::Xmm(_), _) => true,
            (Src::Mem { n, .. }, Dst::Xmm(_)) => n >= 4,
            (Src::Gpr(_), Dst::Xmm(_)) => m == M::Movd,
            _ => false,
        },
        Vop::Shuffle(_) => {
            let mem_ok = |n: u32| n == if matches!(m, M::Movlps | M::Movlpd | M::Movhps | M::Movhpd) { 8 } else { 16 };
            match (src, dst) {
                (Src::Xmm(_), Dst::Xmm(_)) => true,
                (Src::Mem { n, .. }, Dst::Xmm(_)) => mem_ok(n),
                (Src::Xmm(_), Dst::Mem { n, .. }) => n == 8,
                _ => false,
            }
        }
        Vop::Bin(..) | Vop::Pack { .. } => {
            matches!(dst, Dst::Xmm(_)) && matches!(src, Src::Xmm(_) | Src::Mem { n: 16, .. })
        }
        Vop::Shift(..) => {
            matches!(dst, Dst::Xmm(_)) && matches!(src, Src::Xmm(_) | Src::Mem { n: 16, .. } | Src::Imm(_))
        }
        Vop::ByteShift { .. } => matches!(dst, Dst::Xmm(_)) && matches!(src, Src::Imm(_)),
        Vop::Mask(_) | Vop::ExtractW(_) => matches!((src, dst), (Src::Xmm(_), Dst::Gpr(_))),
        Vop::InsertW(_) => matches!(dst, Dst::Xmm(_)) && matches!(src, Src::Gpr(_) | Src::Mem { n: 2, .. }),
    };
    ok.then_some(Plan { src, dst, op })
}

/// A value of the source: a vector (I8X16), a 32-bit scalar or an
/// immediate.
#[derive(Clone, Copy)]
enum Val {
    V(Value),
    S(Value),
    Imm(u32),
}

/// Flags of the accesses to `CpuState`'s XMM registers (16-byte aligned
/// there, but nothing relies on it).
fn state_mf() -> MemFlagsData {
    MemFlagsData::new().with_notrap()
}

/// The flags of bit casts between vector types (their lane order).
fn cast_mf() -> MemFlagsData {
    MemFlagsData::new().with_endianness(Endianness::Little)
}

impl Lower<'_> {
    /// XMM register `r` (I8X16).
    fn xmm(&mut self, r: u8) -> Value {
        let r = r as usize & 7;
        if !self.loaded[8 + r] {
            let v = self.b.ins().load(types::I8X16, state_mf(), self.cpu, XMM + 16 * r as i32);
            self.b.def_var(self.xvars[r], v);
            self.loaded[8 + r] = true;
        }
        self.b.use_var(self.xvars[r])
    }

    /// XMM register `r` := `v` (I8X16), written through to `CpuState`.
    fn set_xmm(&mut self, r: u8, v: Value) {
        let r = r as usize & 7;
        self.b.ins().store(state_mf(), v, self.cpu, XMM + 16 * r as i32);
        self.b.def_var(self.xvars[r], v);
        self.loaded[8 + r] = true;
    }

    /// `v` as a vector of type `ty`.
    fn cast(&mut self, v: Value, ty: Type) -> Value {
        if self.b.func.dfg.value_type(v) == ty {
            v
        } else {
            self.b.ins().bitcast(ty, cast_mf(), v)
        }
    }

    /// A 16-byte constant.
    fn vconst(&mut self, bytes: [u8; 16]) -> Value {
        let c = self.b.func.dfg.constants.insert(ConstantData::from(&bytes[..]));
        self.b.ins().vconst(types::I8X16, c)
    }

    /// Whether SSE instructions may run now (I8 0/1): CR0.EM and TS clear,
    /// CR4.OSFXSR set.
    fn simd_ok(&mut self) -> Value {
        let cr0 = self.load32(CR0);
        let cr4 = self.load32(CR4);
        let em_ts = self.b.ins().band_imm_u(cr0, (CR0_EM | CR0_TS) as i64);
        let clear = self.b.ins().icmp_imm_u(IntCC::Equal, em_ts, 0);
        let fxsr = self.b.ins().band_imm_u(cr4, CR4_OSFXSR as i64);
        let set = self.b.ins().icmp_imm_u(IntCC::NotEqual, fxsr, 0);
        self.b.ins().band(clear, set)
    }

    /// Lower SSE instruction `g` (`lowered` said yes).
    pub(super) fn simd(&mut self, g: &GuestInsn, i: &Insn) {
        let Some(p) = plan(i, self.simd) else {
            self.helper(g);
            return;
        };
        // The checks: control registers once per stretch, a memory operand
        // each time. When one fails the interpreter runs the instruction
        // (and, for a memory operand, fills the fast TLB for it, so that
        // the next run takes the inline path) and the region is left.
        let mut ok = (!self.simd_checked).then(|| self.simd_ok());
        let access = match (p.src, p.dst) {
            (Src::Mem { n, aligned }, _) => Some((n, aligned, false)),
            (_, Dst::Mem { n, aligned }) => Some((n, aligned, true)),
            _ => None,
        };
        let mut host = None;
        if let Some((n, aligned, write)) = access {
            self.sync_before_access();
            let off = self.ea(i);
            let (hit, lin, e) = self.fast_check(i.seg, off, n, write);
            let mut all = ok.map_or(hit, |c| self.b.ins().band(c, hit));
            if aligned {
                let low = self.b.ins().band_imm_u(lin, 15);
                let al = self.b.ins().icmp_imm_u(IntCC::Equal, low, 0);
                all = self.b.ins().band(all, al);
            }
            let (slow, fast) = self.fork_not(all);
            self.b.switch_to_block(slow);
            self.step_leave_for(g, i.seg, off, n, write);
            self.b.switch_to_block(fast);
            host = Some(self.host_addr(e));
            ok = None;
        }
        if let Some(ok) = ok {
            let bad = self.b.ins().icmp_imm_u(IntCC::Equal, ok, 0);
            self.step_if(g, bad);
        }
        self.simd_checked = true;
        let gm = MemFlagsData::new().with_notrap();
        let b = match p.src {
            Src::Xmm(r) => Val::V(self.xmm(r)),
            Src::Gpr(r) => Val::S(self.full(r)),
            Src::Imm(k) => Val::Imm(k),
            Src::Mem { n, .. } => {
                let h = host.expect("a memory operand has its host address");
                match n {
                    2 => Val::S(self.b.ins().uload16(types::I32, gm, h, 0)),
                    4 | 8 => {
                        let ty = if n == 4 { types::I32 } else { types::I64 };
                        let s = self.b.ins().load(ty, gm, h, 0);
                        let vty = if n == 4 { types::I32X4 } else { types::I64X2 };
                        let v = self.b.ins().scalar_to_vector(vty, s);
                        Val::V(self.cast(v, types::I8X16))
                    }
                    _ => Val::V(self.b.ins().load(types::I8X16, gm, h, 0)),
                }
            }
        };
        let from_reg = matches!(p.src, Src::Xmm(_));
        let a = |s: &mut Self| match p.dst {
            Dst::Xmm(r) => s.xmm(r),
            // (Store forms: an operation of the source alone.)
            _ => match b {
                Val::V(v) => v,
                _ => s.vconst([0; 16]),
            },
        };
        let vec = |s: &mut Self, v: Val| match v {
            Val::V(v) => v,
            Val::S(x) => {
                let v = s.b.ins().scalar_to_vector(types::I32X4, x);
                s.cast(v, types::I8X16)
            }
            Val::Imm(k) => {
                let x = s.konst(k as i64);
                let v = s.b.ins().scalar_to_vector(types::I32X4, x);
                s.cast(v, types::I8X16)
            }
        };
        let r = match p.op {
            Vop::Copy { keep } => {
                let v = vec(self, b);
                if from_reg && keep < 16 {
                    let m: [u8; 16] = std::array::from_fn(|k| if (k as u32) < keep { 0xFF } else { 0 });
                    let m = self.vconst(m);
                    Val::V(self.b.ins().band(v, m))
                } else {
                    Val::V(v)
                }
            }
            Vop::Shuffle(mask) => {
                let bv = vec(self, b);
                let av = if mask.iter().any(|&k| k < 16) { a(self) } else { bv };
                let imm = self.b.func.dfg.immediates.push(ConstantData::from(&mask[..]));
                Val::V(self.b.ins().shuffle(av, bv, imm))
            }
            Vop::Bin(op, ty) => {
                let av = a(self);
                let bv = vec(self, b);
                let (x, y) = (self.cast(av, ty), self.cast(bv, ty));
                let r = match op {
                    Bin::And => self.b.ins().band(x, y),
                    Bin::AndN => self.b.ins().band_not(y, x),
                    Bin::Or => self.b.ins().bor(x, y),
                    Bin::Xor => self.b.ins().bxor(x, y),
                    Bin::Add => self.b.ins().iadd(x, y),
                    Bin::Sub => self.b.ins().isub(x, y),
                    Bin::AddSat => self.b.ins().sadd_sat(x, y),
                    Bin::AddUsat => self.b.ins().uadd_sat(x, y),
                    Bin::SubSat => self.b.ins().ssub_sat(x, y),
                    Bin::SubUsat => self.b.ins().usub_sat(x, y),
                    Bin::Eq => self.b.ins().icmp(IntCC::Equal, x, y),
                    Bin::Gt => self.b.ins().icmp(IntCC::SignedGreaterThan, x, y),
                    Bin::Mul => self.b.ins().imul(x, y),
                    Bin::Umin => self.b.ins().umin(x, y),
                    Bin::Umax => self.b.ins().umax(x, y),
                    Bin::Smin => self.b.ins().smin(x, y),
                    Bin::Smax => self.b.ins().smax(x, y),
                    Bin::Avg => self.b.ins().avg_round(x, y),
                };
                Val::V(self.cast(r, types::I8X16))
            }
            Vop::Shift(sh, ty) => {
                let av = a(self);
                Val::V(self.vshift(sh, ty, av, b))
            }
            Vop::ByteShift { left } => {
                let av = a(self);
                let n = (i.imm & 0xFF) as usize;
                let zero = self.vconst([0; 16]);
                if n > 15 {
                    Val::V(zero)
                } else {
                    let mask: [u8; 16] = std::array::from_fn(|k| match left {
                        true if k >= n => (k - n) as u8,
                        false if k + n < 16 => (k + n) as u8,
                        _ => 16,
                    });
                    let imm = self.b.func.dfg.immediates.push(ConstantData::from(&mask[..]));
                    Val::V(self.b.ins().shuffle(av, zero, imm))
                }
            }
            Vop::Pack { signed, ty } => {
                let av = a(self);
                let bv = vec(self, b);
                let (x, y) = (self.cast(av, ty), self.cast(bv, ty));
                let r = if signed { self.b.ins().snarrow(x, y) } else { self.b.ins().unarrow(x, y) };
                Val::V(self.cast(r, types::I8X16))
            }
            Vop::Mask(ty) => {
                let bv = vec(self, b);
                let x = self.cast(bv, ty);
                Val::S(self.b.ins().vhigh_bits(types::I32, x))
            }
            Vop::ExtractW(k) => {
                let bv = vec(self, b);
                let x = self.cast(bv, types::I16X8);
                let w = self.b.ins().extractlane(x, k);
                Val::S(self.b.ins().uextend(types::I32, w))
            }
            Vop::InsertW(k) => {
                let av = a(self);
                let x = self.cast(av, types::I16X8);
                let Val::S(s) = b else { unreachable!("PINSRW's source is a scalar") };
                let w = self.b.ins().ireduce(types::I16, s);
                let r = self.b.ins().insertlane(x, w, k);
                Val::V(self.cast(r, types::I8X16))
            }
        };
        match p.dst {
            Dst::Xmm(d) => {
                let v = vec(self, r);
                self.set_xmm(d, v);
            }
            Dst::Gpr(d) => {
                let s = match r {
                    Val::S(s) => s,
                    other => {
                        let v = vec(self, other);
                        let x = self.cast(v, types::I32X4);
                        self.b.ins().extractlane(x, 0)
                    }
                };
                self.set_full(d, s);
            }
            Dst::Mem { n, .. } => {
                let h = host.expect("a memory operand has its host address");
                let v = vec(self, r);
                match n {
                    16 => {
                        self.b.ins().store(gm, v, h, 0);
                    }
                    _ => {
                        let ty = if n == 8 { types::I64X2 } else { types::I32X4 };
                        let x = self.cast(v, ty);
                        let s = self.b.ins().extractlane(x, 0);
                        self.b.ins().store(gm, s, h, 0);
                    }
                }
            }
        }
    }

    /// `a` (I8X16) shifted in lanes of `ty` by `count` (an immediate, or
    /// a vector whose low 64 bits are the count): a count past the lane's
    /// last bit gives zeros, or copies of the sign for `Sh::Arith`.
    fn vshift(&mut self, sh: Sh, ty: Type, a: Value, count: Val) -> Value {
        let bits = ty.lane_bits() as i64;
        let x = self.cast(a, ty);
        let shift = |s: &mut Self, n: Value| match sh {
            Sh::Left => s.b.ins().ishl(x, n),
            Sh::Right => s.b.ins().ushr(x, n),
            Sh::Arith => s.b.ins().sshr(x, n),
        };
        let r = match count {
            Val::Imm(k) => {
                let k = k as i64 & 0xFF;
                if k >= bits && sh != Sh::Arith {
                    return self.vconst([0; 16]);
                }
                let n = self.konst(k.min(bits - 1));
                shift(self, n)
            }
            Val::V(v) => {
                let c = self.cast(v, types::I64X2);
                let c = self.b.ins().extractlane(c, 0);
                let past = self.b.ins().icmp_imm_u(IntCC::UnsignedGreaterThan, c, bits - 1);
                let last = self.b.ins().iconst(types::I64, bits - 1);
                let n = self.b.ins().select(past, last, c);
                let n = self.b.ins().ireduce(types::I32, n);
                let r = shift(self, n);
                if sh == Sh::Arith {
                    r
                } else {
                    let zero = self.vconst([0; 16]);
                    let zero = self.cast(zero, ty);
                    self.b.ins().select(past, zero, r)
                }
            }
            Val::S(_) => unreachable!("shift counts are immediates or vectors"),
        };
        self.cast(r, types::I8X16)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unpack_masks_interleave_halves() {
        assert_eq!(unpack(1, false), [0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23]);
        assert_eq!(unpack(4, true), [8, 9, 10, 11, 24, 25, 26, 27, 12, 13, 14, 15, 28, 29, 30, 31]);
        assert_eq!(unpack(8, false), [0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23]);
    }

    #[test]
    fn lane_masks_expand_to_bytes() {
        assert_eq!(by_lanes(4, &[4, 1, 2, 3]), [16, 17, 18, 19, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15]);
        assert_eq!(by_lanes(8, &[3, 1]), [24, 25, 26, 27, 28, 29, 30, 31, 8, 9, 10, 11, 12, 13, 14, 15]);
    }
}
