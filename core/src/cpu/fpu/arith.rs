//! Arithmetic (FADD FSUB FSUBR FMUL FDIV FDIVR and their P/I forms),
//! comparisons (FCOM FUCOM FICOM FCOMI FUCOMI FTST), FXAM and the one- and
//! two-operand operations on the stack top (FSQRT FRNDINT FSCALE FXTRACT
//! FPREM FPREM1 FCHS FABS).

use super::f80::{self, Cmp, FpEnv, Operand, F80};
use super::ldst::read_value;
use super::{FpuState, Kind, OP_ADD, OP_DIV, OP_MUL, OP_SUB, OP_SUBR, POP, REG_DEST, SW_C1, SW_C2};
use crate::cpu::decode::{Insn, OpK};
use crate::cpu::flags::{AF, CF, OF, PF, SF, ZF};
use crate::cpu::{Cpu, Ctx, Res};

fn binop(op: u8, d: Operand, s: Operand, env: &mut FpEnv) -> F80 {
    match op {
        OP_ADD => f80::add(d, s, env),
        OP_MUL => f80::mul(d, s, env),
        OP_SUB => f80::sub(d, s, env),
        OP_SUBR => f80::sub(s, d, env),
        OP_DIV => f80::div(d, s, env),
        _ => f80::div(s, d, env),
    }
}

/// ST(d) = ST(d) op ST(s), popping for the P forms.
pub(super) fn arith_reg(cpu: &mut Cpu, _: &mut Ctx, i: &Insn) -> Res<()> {
    cpu.fpu_start(i, Kind::Numeric)?;
    let (d, s) = (i.ops[0].num, i.ops[1].num);
    let pop = i.cc & POP != 0;
    let f = &mut cpu.state.fpu;
    let r = if f.is_empty(d) || f.is_empty(s) {
        if !f.underflow() {
            return Ok(());
        }
        F80::INDEFINITE
    } else {
        let mut env = f.env();
        let r = binop(i.cc & 7, f.st(d).into(), f.st(s).into(), &mut env);
        if !f.finish(&env, REG_DEST) {
            return Ok(());
        }
        r
    };
    f.set_st(d, r);
    if pop {
        f.pop();
    }
    Ok(())
}

/// ST(0) = ST(0) op m32fp/m64fp/m16int/m32int.
pub(super) fn arith_mem<const T: u8>(cpu: &mut Cpu, ctx: &mut Ctx, i: &Insn) -> Res<()> {
    cpu.fpu_start(i, Kind::Numeric)?;
    let (src, denormal) = read_value::<T>(cpu, ctx, i)?;
    cpu.fpu_note(i);
    let f = &mut cpu.state.fpu;
    if f.is_empty(0) {
        if f.underflow() {
            f.set_st(0, F80::INDEFINITE);
        }
        return Ok(());
    }
    let mut env = f.env();
    let r = binop(i.cc & 7, f.st(0).into(), Operand { v: src, den: denormal }, &mut env);
    if f.finish(&env, REG_DEST) {
        f.set_st(0, r);
    }
    Ok(())
}

/// C3 C2 C0 of a comparison (SDM vol. 2, FCOM table 3-21); C1 clear.
fn set_compare(f: &mut FpuState, c: Cmp) {
    let (c3, c2, c0) = match c {
        Cmp::Greater => (false, false, false),
        Cmp::Less => (false, false, true),
        Cmp::Equal => (true, false, false),
        Cmp::Unordered => (true, true, true),
    };
    f.set_cc(c3, c2, false, c0);
}

/// Compare ST(0) with `src` (None: an empty source register) into C3 C2
/// C0 and pop `pops` times. The condition codes are written even when an
/// unmasked exception stops the pops (unordered after an invalid one).
fn compare_into_cc(f: &mut FpuState, src: Option<Operand>, quiet: bool, pops: u8) {
    let (c, ok) = match src {
        Some(s) if !f.is_empty(0) => {
            let mut env = f.env();
            let c = f80::compare(f.st(0), s, quiet, &mut env);
            (c, f.finish(&env, REG_DEST))
        }
        _ => (Cmp::Unordered, f.underflow()),
    };
    set_compare(f, c);
    if ok {
        for _ in 0..pops {
            f.pop();
        }
    }
}

/// The source register of a register comparison: ST(i), or ST(1) for
/// FCOMPP/FUCOMPP.
fn source_reg(i: &Insn) -> u8 {
    if i.ops[1].kind == OpK::St {
        i.ops[1].num
    } else {
        1
    }
}

fn compare_regs(cpu: &mut Cpu, i: &Insn, quiet: bool, pops: u8) -> Res<()> {
    cpu.fpu_start(i, Kind::Numeric)?;
    let s = source_reg(i);
    let f = &mut cpu.state.fpu;
    let src = (!f.is_empty(s)).then(|| f.st(s).into());
    compare_into_cc(f, src, quiet, pops);
    Ok(())
}

/// FCOM/FCOMP/FCOMPP ST(i) (`cc`: number of pops).
pub(super) fn fcom_reg(cpu: &mut Cpu, _: &mut Ctx, i: &Insn) -> Res<()> {
    compare_regs(cpu, i, false, i.cc)
}

/// FUCOM/FUCOMP/FUCOMPP: only SNaNs are invalid.
pub(super) fn fcom_reg_quiet<const POPS: u8>(cpu: &mut Cpu, _: &mut Ctx, i: &Insn) -> Res<()> {
    compare_regs(cpu, i, true, POPS)
}

/// FCOM/FCOMP/FICOM/FICOMP with a memory operand (`cc`: pops).
pub(super) fn fcom_mem<const T: u8>(cpu: &mut Cpu, ctx: &mut Ctx, i: &Insn) -> Res<()> {
    cpu.fpu_start(i, Kind::Numeric)?;
    let (src, denormal) = read_value::<T>(cpu, ctx, i)?;
    cpu.fpu_note(i);
    compare_into_cc(&mut cpu.state.fpu, Some(Operand { v: src, den: denormal }), false, i.cc);
    Ok(())
}

/// FTST: compare ST(0) with +0.0.
pub(super) fn ftst(cpu: &mut Cpu, _: &mut Ctx, i: &Insn) -> Res<()> {
    cpu.fpu_start(i, Kind::Numeric)?;
    compare_into_cc(&mut cpu.state.fpu, Some(F80::ZERO.into()), false, 0);
    Ok(())
}

/// FCOMI/FCOMIP/FUCOMI/FUCOMIP: the result in ZF PF CF, OF SF AF clear
/// (SDM vol. 2, FCOMI table 3-22). The flags are written even when an
/// unmasked exception stops the pop; C1 is only cleared by a stack fault
/// (as the host processors do).
pub(super) fn fcomi<const QUIET: bool, const POP1: bool>(cpu: &mut Cpu, _: &mut Ctx, i: &Insn) -> Res<()> {
    cpu.fpu_start(i, Kind::Numeric)?;
    let s = i.ops[1].num;
    let f = &mut cpu.state.fpu;
    let (c, ok) = if f.is_empty(0) || f.is_empty(s) {
        (Cmp::Unordered, f.underflow())
    } else {
        let c1 = f.sw & SW_C1;
        let mut env = f.env();
        let c = f80::compare(f.st(0), f.st(s), QUIET, &mut env);
        let ok = f.finish(&env, REG_DEST);
        f.sw = (f.sw & !SW_C1) | c1;
        (c, ok)
    };
    if POP1 && ok {
        f.pop();
    }
    let v = match c {
        Cmp::Greater => 0,
        Cmp::Less => CF,
        Cmp::Equal => ZF,
        Cmp::Unordered => ZF | PF | CF,
    };
    cpu.state.flags.load(v, ZF | PF | CF | OF | SF | AF);
    Ok(())
}

/// FXAM: the class of ST(0) in C3 C2 C0 and its sign in C1.
pub(super) fn fxam(cpu: &mut Cpu, _: &mut Ctx, i: &Insn) -> Res<()> {
    cpu.fpu_start(i, Kind::Numeric)?;
    let f = &mut cpu.state.fpu;
    let v = f.st(0);
    let (c3, c2, c0) = if f.is_empty(0) {
        (true, false, true)
    } else {
        match v.class() {
            f80::Class::Unsupported => (false, false, false),
            f80::Class::QNaN | f80::Class::SNaN => (false, false, true),
            f80::Class::Normal => (false, true, false),
            f80::Class::Infinity => (false, true, true),
            f80::Class::Zero => (true, false, false),
            f80::Class::Denormal => (true, true, false),
        }
    };
    f.set_cc(c3, c2, v.sign(), c0);
    Ok(())
}

/// ST(0) = op(ST(0)).
fn unary(cpu: &mut Cpu, i: &Insn, op: fn(F80, &mut FpEnv) -> F80) -> Res<()> {
    cpu.fpu_start(i, Kind::Numeric)?;
    let f = &mut cpu.state.fpu;
    if f.is_empty(0) {
        if f.underflow() {
            f.set_st(0, F80::INDEFINITE);
        }
        return Ok(());
    }
    let mut env = f.env();
    let r = op(f.st(0), &mut env);
    if f.finish(&env, REG_DEST) {
        f.set_st(0, r);
    }
    Ok(())
}

pub(super) fn fsqrt(cpu: &mut Cpu, _: &mut Ctx, i: &Insn) -> Res<()> {
    unary(cpu, i, f80::sqrt)
}

pub(super) fn frndint(cpu: &mut Cpu, _: &mut Ctx, i: &Insn) -> Res<()> {
    unary(cpu, i, f80::round_to_int)
}

/// FCHS and FABS change the sign bit only: no exceptions but underflow.
pub(super) fn fchs(cpu: &mut Cpu, _: &mut Ctx, i: &Insn) -> Res<()> {
    unary(cpu, i, |x, _| -x)
}

pub(super) fn fabs(cpu: &mut Cpu, _: &mut Ctx, i: &Insn) -> Res<()> {
    unary(cpu, i, |x, _| x.abs())
}

/// The two-operand operations on ST(0) and ST(1): None after a stack
/// underflow (handled), else the operands and the environment.
fn two_operands(f: &mut FpuState) -> Option<(F80, F80, FpEnv)> {
    if f.is_empty(0) || f.is_empty(1) {
        if f.underflow() {
            f.set_st(0, F80::INDEFINITE);
        }
        return None;
    }
    Some((f.st(0), f.st(1), f.env()))
}

/// FSCALE: ST(0) = ST(0) * 2^trunc(ST(1)).
pub(super) fn fscale(cpu: &mut Cpu, _: &mut Ctx, i: &Insn) -> Res<()> {
    cpu.fpu_start(i, Kind::Numeric)?;
    let f = &mut cpu.state.fpu;
    let Some((a, b, mut env)) = two_operands(f) else {
        return Ok(());
    };
    let r = f80::scale(a, b, &mut env);
    if f.finish(&env, REG_DEST) {
        f.set_st(0, r);
    }
    Ok(())
}

/// FPREM (`IEEE` false) and FPREM1: partial remainder of ST(0) by ST(1);
/// C2 set while the reduction is incomplete, else C0 C3 C1 = Q2 Q1 Q0.
pub(super) fn fprem<const IEEE: bool>(cpu: &mut Cpu, _: &mut Ctx, i: &Insn) -> Res<()> {
    cpu.fpu_start(i, Kind::Numeric)?;
    let f = &mut cpu.state.fpu;
    let Some((a, b, mut env)) = two_operands(f) else {
        f.sw &= !SW_C2;
        return Ok(());
    };
    let r = f80::rem(a, b, IEEE, &mut env);
    if !f.finish(&env, REG_DEST) {
        f.sw &= !SW_C2;
        return Ok(());
    }
    f.set_st(0, r.value);
    match (r.complete, r.q) {
        (true, Some(q)) => f.set_cc(q & 2 != 0, false, q & 1 != 0, q & 4 != 0),
        // An incomplete reduction reports no quotient bits (host behaviour).
        (false, _) => f.set_cc(false, true, false, false),
        // A NaN or invalid result: C0 and C3 unchanged.
        (true, None) => f.sw &= !(SW_C1 | SW_C2),
    }
    Ok(())
}

/// FXTRACT: ST(0) becomes the exponent, then the significand is pushed.
pub(super) fn fxtract(cpu: &mut Cpu, _: &mut Ctx, i: &Insn) -> Res<()> {
    cpu.fpu_start(i, Kind::Numeric)?;
    let f = &mut cpu.state.fpu;
    if f.is_empty(0) || f.full() {
        let masked = if f.is_empty(0) { f.underflow() } else { f.overflow() };
        if masked {
            f.set_st(0, F80::INDEFINITE);
            f.push(F80::INDEFINITE);
        }
        return Ok(());
    }
    let mut env = f.env();
    let (e, s) = f80::extract(f.st(0), &mut env);
    if f.finish(&env, REG_DEST) {
        f.set_st(0, e);
        f.push(s);
    }
    Ok(())
}
