//! The transcendental instructions: F2XM1 FYL2X FYL2XP1 FPTAN FPATAN FSIN
//! FCOS FSINCOS.
//!
//! Approximation: the core of each function is computed with the host's
//! f64 math (about 53 correct bits instead of the hardware's ~64), so the
//! low bits of results and C1 differ from a real FPU. Everything around it
//! is exact: operand classes, special values (SDM vol. 2 tables for each
//! instruction), exceptions, the 2^63 range limit of the trigonometric
//! instructions (C2), tiny arguments and the stack behaviour.

use super::f80::{self, Class, Const, FpEnv, Rounding, DE, F80, IE, PE, ZE};
use super::{FpuState, Kind};
use crate::cpu::decode::Insn;
use crate::cpu::{Cpu, Ctx, Res};

/// Biased exponent from which the trigonometric instructions refuse their
/// operand (|x| >= 2^63): C2 set, ST(0) unchanged.
const TRIG_LIMIT: u16 = 0x3FFF + 63;
/// Below 2^-40 sin x = x and cos x = 1 to well within the f64 precision.
const TINY: u16 = 0x3FFF - 40;

/// The common special operands of a one-operand function: the result when
/// `x` is unsupported or a NaN (raising IE as needed), DE for denormals.
fn special(x: F80, env: &mut FpEnv) -> Option<F80> {
    match x.class() {
        Class::Unsupported => {
            env.raise(IE);
            Some(F80::INDEFINITE)
        }
        Class::SNaN => {
            env.raise(IE);
            Some(x.quiet())
        }
        Class::QNaN => Some(x),
        Class::Denormal => {
            env.raise(DE);
            None
        }
        _ => None,
    }
}

/// sin x and tan x of a tiny x: x itself (normalized), inexact.
fn tiny(x: F80, env: &mut FpEnv) -> F80 {
    let mut e = env.extended_only();
    let r = f80::round_value(x, 64, &mut e);
    env.flags |= e.flags | PE;
    r
}

/// An approximated (inexact) result.
fn approx(v: f64, env: &mut FpEnv) -> F80 {
    env.raise(PE);
    env.round_up = false;
    f80::from_f64_exact(v)
}

fn invalid(env: &mut FpEnv) -> F80 {
    env.raise(IE);
    F80::INDEFINITE
}

/// A constant scaled by 2^k (pi/2, pi/4).
fn pi_scaled(k: i32, rc: Rounding) -> F80 {
    let p = f80::constant(Const::Pi, rc);
    F80::new(false, (p.exp() as i32 + k) as u16, p.mant)
}

/// 2^x - 1 for -1 <= x <= 1. Outside that range the result is undefined;
/// the host processors leave ST(0) unchanged, and so does this.
fn f2xm1_value(x: F80, env: &mut FpEnv) -> F80 {
    if let Some(r) = special(x, env) {
        return r;
    }
    match x.class() {
        Class::Zero => x,
        Class::Infinity if x.sign() => -F80::ONE,
        Class::Infinity => x,
        _ if x.exp() > 0x3FFF || (x.exp() == 0x3FFF && x.mant != 1 << 63) => x,
        _ if x.exp() < 0x3FFF - 60 => {
            // 2^x - 1 = x ln 2 (1 + x ln 2 / 2 + ...).
            let mut e = env.extended_only();
            let r = f80::mul(x, f80::constant(Const::Ln2, Rounding::Nearest), &mut e);
            env.flags |= e.flags | PE;
            r
        }
        _ => {
            let v = f80::to_f64_nearest(x);
            if v == 1.0 || v == -1.0 {
                return f80::from_f64_exact(if v > 0.0 { 1.0 } else { -0.5 });
            }
            let r = if v.abs() < 0.5 { (v * std::f64::consts::LN_2).exp_m1() } else { v.exp2() - 1.0 };
            approx(r, env)
        }
    }
}

/// One-operand instruction on ST(0) without a push: F2XM1, FSIN, FCOS.
fn unary(cpu: &mut Cpu, i: &Insn, trig: bool, op: fn(F80, &mut FpEnv) -> F80) -> Res<()> {
    cpu.fpu_start(i, Kind::Numeric)?;
    let f = &mut cpu.state.fpu;
    if f.is_empty(0) {
        if trig {
            f.sw &= !super::SW_C2;
        }
        if f.underflow() {
            f.set_st(0, F80::INDEFINITE);
        }
        return Ok(());
    }
    let x = f.st(0);
    if trig && out_of_range(f, x) {
        return Ok(());
    }
    let mut env = f.env();
    let r = op(x, &mut env);
    if f.finish(&env, super::REG_DEST) {
        f.set_st(0, r);
        if trig {
            f.sw &= !super::SW_C2;
        }
    }
    Ok(())
}

/// |x| >= 2^63 for a trigonometric instruction: C2 set, nothing else.
fn out_of_range(f: &mut FpuState, x: F80) -> bool {
    let finite = matches!(x.class(), Class::Normal | Class::Denormal);
    if finite && x.exp() >= TRIG_LIMIT {
        f.sw |= super::SW_C2;
        return true;
    }
    false
}

pub(super) fn f2xm1(cpu: &mut Cpu, _: &mut Ctx, i: &Insn) -> Res<()> {
    unary(cpu, i, false, f2xm1_value)
}

/// The 66-bit π of the x87's argument reduction, in units of 2^-64.
const PI66: u128 = 0x3_243F_6A88_85A3_08D3;

/// Reduce |x| < 2^63 by multiples of the x87's 66-bit π, exactly: the
/// remainder in [-π/2, π/2] (as f64) and whether the multiple is odd.
/// With it large arguments lose accuracy as on the real FPU.
fn reduce(x: F80) -> (f64, bool) {
    let e = x.exp() as i32 - 0x3FFF;
    if e < 1 {
        return (f80::to_f64_nearest(x), false);
    }
    let v = (x.mant as u128) << (e + 1);
    let (mut k, mut r) = (v / PI66, (v % PI66) as f64);
    if v % PI66 > PI66 / 2 {
        k += 1;
        r = -((PI66 - v % PI66) as f64);
    }
    let r = r * (-64f64).exp2();
    (if x.sign() { -r } else { r }, k & 1 != 0)
}

/// (sin x, cos x) for |x| < 2^63.
fn sin_cos(x: F80, env: &mut FpEnv) -> (F80, F80) {
    if let Some(r) = special(x, env) {
        return (r, r);
    }
    match x.class() {
        Class::Zero => (x, F80::ONE),
        Class::Infinity => {
            let r = invalid(env);
            (r, r)
        }
        _ if x.exp() < TINY => (tiny(x, env), F80::ONE),
        _ => {
            let (r, odd) = reduce(x);
            let sign = if odd { -1.0 } else { 1.0 };
            (approx(sign * r.sin(), env), approx(sign * r.cos(), env))
        }
    }
}

/// FSIN (`F` 0), FCOS (1), FSINCOS (2: ST(0) = sin, then cos pushed).
pub(super) fn fsin_cos<const F: u8>(cpu: &mut Cpu, _: &mut Ctx, i: &Insn) -> Res<()> {
    match F {
        0 => unary(cpu, i, true, |x, env| sin_cos(x, env).0),
        1 => unary(cpu, i, true, |x, env| sin_cos(x, env).1),
        _ => push_pair(cpu, i, sin_cos),
    }
}

/// An instruction that replaces ST(0) and pushes a second result
/// (FSINCOS, FPTAN), for |ST(0)| < 2^63.
fn push_pair(cpu: &mut Cpu, i: &Insn, op: fn(F80, &mut FpEnv) -> (F80, F80)) -> Res<()> {
    cpu.fpu_start(i, Kind::Numeric)?;
    let f = &mut cpu.state.fpu;
    if f.is_empty(0) || f.full() {
        f.sw &= !super::SW_C2;
        let masked = if f.is_empty(0) { f.underflow() } else { f.overflow() };
        if masked {
            f.set_st(0, F80::INDEFINITE);
            f.push(F80::INDEFINITE);
        }
        return Ok(());
    }
    let x = f.st(0);
    if out_of_range(f, x) {
        return Ok(());
    }
    let mut env = f.env();
    let (a, b) = op(x, &mut env);
    if f.finish(&env, super::REG_DEST) {
        f.sw &= !super::SW_C2;
        f.set_st(0, a);
        f.push(b);
    }
    Ok(())
}

/// (tan x, 1.0); a NaN result is pushed as is.
fn tan_one(x: F80, env: &mut FpEnv) -> (F80, F80) {
    if let Some(r) = special(x, env) {
        return (r, r);
    }
    match x.class() {
        Class::Zero => (x, F80::ONE),
        Class::Infinity => {
            let r = invalid(env);
            (r, r)
        }
        _ if x.exp() < TINY => (tiny(x, env), F80::ONE),
        _ => (approx(reduce(x).0.tan(), env), F80::ONE),
    }
}

pub(super) fn fptan(cpu: &mut Cpu, _: &mut Ctx, i: &Insn) -> Res<()> {
    push_pair(cpu, i, tan_one)
}

/// ST(1) = op(ST(0), ST(1)), then pop: FYL2X, FYL2XP1, FPATAN.
fn binary_pop(cpu: &mut Cpu, i: &Insn, op: fn(F80, F80, &mut FpEnv) -> F80) -> Res<()> {
    cpu.fpu_start(i, Kind::Numeric)?;
    let f = &mut cpu.state.fpu;
    if f.is_empty(0) || f.is_empty(1) {
        if f.underflow() {
            f.set_st(1, F80::INDEFINITE);
            f.pop();
        }
        return Ok(());
    }
    let mut env = f.env();
    let r = op(f.st(0), f.st(1), &mut env);
    if f.finish(&env, super::REG_DEST) {
        f.set_st(1, r);
        f.pop();
    }
    Ok(())
}

/// Both operands' special cases: unsupported, NaNs.
fn special2(x: F80, y: F80, env: &mut FpEnv) -> Option<F80> {
    if x.class() == Class::Unsupported || y.class() == Class::Unsupported {
        return Some(invalid(env));
    }
    if x.is_nan() || y.is_nan() {
        let mut e = *env;
        let r = f80::add(x, y, &mut e);
        env.flags |= e.flags & IE;
        return Some(r);
    }
    None
}

/// Compute `op` and raise DE for a denormal operand unless the result is
/// invalid or a pole (an invalid or zero-divide exception wins).
fn with_denormal(x: F80, y: F80, env: &mut FpEnv, op: impl FnOnce(&mut FpEnv) -> F80) -> F80 {
    let before = env.flags;
    let r = op(env);
    let den = x.class() == Class::Denormal || y.class() == Class::Denormal;
    if den && (env.flags & !before & (IE | ZE)) == 0 {
        env.raise(DE);
    }
    r
}

/// The logarithm factor of FYL2X/FYL2XP1.
enum Log {
    Invalid,
    Zero(bool),
    /// An infinity; `pole`: log of zero (zero-divide for finite nonzero y).
    Inf(bool, bool),
    /// A finite nonzero value and whether it is exact.
    Finite(F80, bool),
}

/// log2(x) of a positive finite nonzero x.
fn log2_finite(x: F80) -> (F80, bool) {
    let mut env = FpEnv::from_cw(0x037F);
    let (e, m) = f80::extract(x, &mut env);
    let e = f80::to_f64_nearest(e);
    if m.mant == 1 << 63 {
        return (f80::from_f64_exact(e), true);
    }
    if x.exp() == 0x3FFE || x.exp() == 0x3FFF {
        // Near 1: x - 1 is exact here, log2(x) = log1p(x - 1) / ln 2.
        let t = f80::to_f64_nearest(f80::sub(x, F80::ONE, &mut env));
        return (f80::from_f64_exact(t.ln_1p() / std::f64::consts::LN_2), false);
    }
    (f80::from_f64_exact(e + f80::to_f64_nearest(m).log2()), false)
}

fn y_log(y: F80, l: Log, env: &mut FpEnv) -> F80 {
    let finite_y = matches!(y.class(), Class::Normal | Class::Denormal);
    match l {
        Log::Invalid => invalid(env),
        Log::Zero(s) => match y.class() {
            Class::Infinity => invalid(env),
            _ => F80::ZERO.with_sign(y.sign() != s),
        },
        Log::Inf(s, pole) => match y.class() {
            Class::Zero => invalid(env),
            _ => {
                if pole && finite_y {
                    env.raise(ZE);
                }
                F80::INFINITY.with_sign(y.sign() != s)
            }
        },
        Log::Finite(v, exact) => match y.class() {
            Class::Infinity => F80::INFINITY.with_sign(y.sign() != v.sign()),
            Class::Zero => F80::ZERO.with_sign(y.sign() != v.sign()),
            _ => {
                let mut e = env.extended_only();
                let r = f80::mul(y, v, &mut e);
                env.flags |= e.flags;
                env.round_up = e.round_up;
                if !exact {
                    env.raise(PE);
                }
                r
            }
        },
    }
}

fn yl2x(x: F80, y: F80, env: &mut FpEnv) -> F80 {
    if let Some(r) = special2(x, y, env) {
        return r;
    }
    with_denormal(x, y, env, |env| yl2x_value(x, y, env))
}

fn yl2x_value(x: F80, y: F80, env: &mut FpEnv) -> F80 {
    let l = match x.class() {
        Class::Zero => Log::Inf(true, true),
        _ if x.sign() => Log::Invalid,
        Class::Infinity => Log::Inf(false, false),
        _ if x == F80::ONE => Log::Zero(false),
        _ => {
            let (v, exact) = log2_finite(x);
            Log::Finite(v, exact)
        }
    };
    y_log(y, l, env)
}

fn yl2xp1(x: F80, y: F80, env: &mut FpEnv) -> F80 {
    if let Some(r) = special2(x, y, env) {
        return r;
    }
    with_denormal(x, y, env, |env| yl2xp1_value(x, y, env))
}

fn yl2xp1_value(x: F80, y: F80, env: &mut FpEnv) -> F80 {
    let l = match x.class() {
        Class::Zero => Log::Zero(x.sign()),
        Class::Infinity if x.sign() => Log::Invalid,
        Class::Infinity => Log::Inf(false, false),
        _ if x.exp() < 0x3FFF - 60 && matches!(y.class(), Class::Normal | Class::Denormal) => {
            // y log2(1 + x) = y x log2(e) (1 - x/2 + ...), computed with x
            // scaled up so that no intermediate result is denormal.
            let mut e = env.extended_only();
            let v = f80::mul_pow2(x, f80::constant(Const::L2e, Rounding::Nearest), 256, &mut e);
            let r = f80::mul_pow2(y, v, -256, env);
            env.raise(PE);
            return r;
        }
        _ if x.exp() < 0x3FFF - 60 => {
            // log2(1 + x) = x log2(e) (1 - x/2 + ...).
            let mut e = env.extended_only();
            let v = f80::mul(x, f80::constant(Const::L2e, Rounding::Nearest), &mut e);
            Log::Finite(v, false)
        }
        _ => {
            let v = f80::to_f64_nearest(x);
            if v < -1.0 {
                Log::Invalid
            } else if v == -1.0 {
                Log::Inf(true, true)
            } else {
                Log::Finite(f80::from_f64_exact(v.ln_1p() / std::f64::consts::LN_2), false)
            }
        }
    };
    y_log(y, l, env)
}

/// FYL2X (`P1` false): ST(1) * log2(ST(0)); FYL2XP1: ST(1) * log2(ST(0) + 1).
pub(super) fn fyl2x<const P1: bool>(cpu: &mut Cpu, _: &mut Ctx, i: &Insn) -> Res<()> {
    binary_pop(cpu, i, if P1 { yl2xp1 } else { yl2x })
}

/// atan2(y, x) with the x87's special values (SDM vol. 2, FPATAN table).
fn atan2(x: F80, y: F80, env: &mut FpEnv) -> F80 {
    if let Some(r) = special2(x, y, env) {
        return r;
    }
    with_denormal(x, y, env, |env| atan2_value(x, y, env))
}

fn atan2_value(x: F80, y: F80, env: &mut FpEnv) -> F80 {
    let rc = env.rc;
    let (cx, cy) = (x.class(), y.class());
    let pi = || f80::constant(Const::Pi, rc);
    let r = match (cy, cx) {
        (Class::Zero, _) if x.sign() => pi(),
        (Class::Zero, _) => F80::ZERO,
        (Class::Infinity, Class::Infinity) if x.sign() => {
            let mut e = env.extended_only();
            f80::mul(pi(), f80::from_f64_exact(0.75), &mut e)
        }
        (Class::Infinity, Class::Infinity) => pi_scaled(-2, rc),
        (Class::Infinity, _) | (_, Class::Zero) => pi_scaled(-1, rc),
        (_, Class::Infinity) if x.sign() => pi(),
        (_, Class::Infinity) => F80::ZERO,
        _ if !x.sign() && (y.exp() as i32) < x.exp() as i32 - 62 => {
            // atan(y/x) = y/x (1 - (y/x)^2/3 + ...).
            let mut e = env.extended_only();
            let q = f80::div(y, x, &mut e);
            env.flags |= e.flags | PE;
            q
        }
        _ => {
            // Scale both to the f64 range; atan2 is invariant under it.
            let k = 0x3FFF - (x.exp().max(y.exp()).max(1) as i32);
            let v = scaled_f64(y, k).abs().atan2(scaled_f64(x, k));
            env.raise(PE);
            f80::from_f64_exact(v)
        }
    };
    env.raise(if matches!((cy, cx), (Class::Zero, _)) && !x.sign() { 0 } else { PE });
    r.with_sign(y.sign())
}

/// A finite value times 2^k as the nearest f64 (denormals included; what
/// the f64 range cannot hold goes to zero or infinity).
fn scaled_f64(v: F80, k: i32) -> f64 {
    let e = (v.exp().max(1) as i32 - 0x3FFF - 63 + k).clamp(-2400, 2400);
    let r = v.mant as f64 * 2f64.powi(e / 2) * 2f64.powi(e - e / 2);
    if v.sign() {
        -r
    } else {
        r
    }
}

/// FPATAN: ST(1) = atan2(ST(1), ST(0)), then pop.
pub(super) fn fpatan(cpu: &mut Cpu, _: &mut Ctx, i: &Insn) -> Res<()> {
    binary_pop(cpu, i, atan2)
}
