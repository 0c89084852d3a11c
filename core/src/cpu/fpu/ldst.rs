//! Data transfer: FLD FILD FBLD, FST FSTP FIST FISTP FBSTP, the constant
//! loads, FXCH and FCMOVcc.

use super::f80::{self, Const, F80};
use super::{Kind, LOAD, M16INT, M32FP, M32INT, M64FP, M64INT, M80FP, MEM_DEST, NO_CHECK, POP};
use crate::cpu::decode::Insn;
use crate::cpu::{Cpu, Ctx, Res};

/// Size and #AC alignment of a memory operand type (SDM vol. 3, table
/// 6-7).
fn layout(t: u8) -> (usize, u32) {
    match t {
        M16INT => (2, 2),
        M32FP | M32INT => (4, 4),
        M64FP | M64INT => (8, 8),
        _ => (10, 8),
    }
}

/// Read a memory operand of type `T`: its value and whether it was a
/// single or double denormal (DE is the caller's to raise). Floating-point
/// SNaNs stay signaling.
pub(super) fn read_value<const T: u8>(cpu: &mut Cpu, ctx: &mut Ctx, i: &Insn) -> Res<(F80, bool)> {
    let (n, align) = layout(T);
    let mut b = [0u8; 10];
    cpu.fpu_read(ctx, i, &mut b[..n], align)?;
    let q = u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]);
    Ok(match T {
        M32FP => f80::from_f32(q as u32),
        M64FP => f80::from_f64(q),
        M80FP => (F80::from_bytes(b), false),
        M16INT => (F80::from_i64(q as u16 as i16 as i64), false),
        M32INT => (F80::from_i64(q as u32 as i32 as i64), false),
        M64INT => (F80::from_i64(q as i64), false),
        _ => (f80::from_bcd(b), false),
    })
}

/// FLD m32fp/m64fp/m80fp, FILD m16/m32/m64, FBLD m80.
pub(super) fn fld_mem<const T: u8>(cpu: &mut Cpu, ctx: &mut Ctx, i: &Insn) -> Res<()> {
    cpu.fpu_start(i, Kind::Numeric)?;
    let (v, denormal) = read_value::<T>(cpu, ctx, i)?;
    cpu.fpu_note(i);
    let f = &mut cpu.state.fpu;
    if f.full() {
        if f.overflow() {
            f.push(F80::INDEFINITE);
        }
        return Ok(());
    }
    let mut env = f.env();
    // Only the single and double conversions can raise anything; an m80
    // operand is loaded as is, SNaNs included.
    let v = if T == M32FP || T == M64FP { f80::load(v, denormal, &mut env) } else { v };
    if f.finish(&env, LOAD) {
        f.push(v);
    }
    Ok(())
}

/// FLD ST(i).
pub(super) fn fld_reg(cpu: &mut Cpu, _: &mut Ctx, i: &Insn) -> Res<()> {
    cpu.fpu_start(i, Kind::Numeric)?;
    let s = i.ops[0].num;
    let f = &mut cpu.state.fpu;
    if f.is_empty(s) || f.full() {
        let masked = if f.is_empty(s) { f.underflow() } else { f.overflow() };
        if masked {
            f.push(F80::INDEFINITE);
        }
        return Ok(());
    }
    let v = f.st(s);
    f.set_c1(false);
    f.push(v);
    Ok(())
}

/// The memory image of the masked response to an invalid store.
fn indefinite(t: u8) -> [u8; 10] {
    let mut b = [0u8; 10];
    match t {
        M32FP => b[..4].copy_from_slice(&0xFFC0_0000u32.to_le_bytes()),
        M64FP => b[..8].copy_from_slice(&0xFFF8_0000_0000_0000u64.to_le_bytes()),
        M80FP => b = F80::INDEFINITE.to_bytes(),
        M16INT => b[..2].copy_from_slice(&0x8000u16.to_le_bytes()),
        M32INT => b[..4].copy_from_slice(&0x8000_0000u32.to_le_bytes()),
        M64INT => b[..8].copy_from_slice(&0x8000_0000_0000_0000u64.to_le_bytes()),
        _ => b = f80::BCD_INDEFINITE,
    }
    b
}

/// Convert ST(0) for a store of type `t`.
fn encode(t: u8, x: F80, env: &mut f80::FpEnv) -> [u8; 10] {
    let mut b = [0u8; 10];
    let int = |v: Option<i64>, n: usize, b: &mut [u8; 10]| match v {
        Some(v) => b[..n].copy_from_slice(&v.to_le_bytes()[..n]),
        None => *b = indefinite(t),
    };
    match t {
        M32FP => b[..4].copy_from_slice(&(f80::store_ieee(x, f80::SINGLE, env) as u32).to_le_bytes()),
        M64FP => b[..8].copy_from_slice(&f80::store_ieee(x, f80::DOUBLE, env).to_le_bytes()),
        M80FP => b = x.to_bytes(),
        M16INT => int(f80::to_int(x, 16, env), 2, &mut b),
        M32INT => int(f80::to_int(x, 32, env), 4, &mut b),
        M64INT => int(f80::to_int(x, 64, env), 8, &mut b),
        _ => b = f80::to_bcd(x, env).unwrap_or(f80::BCD_INDEFINITE),
    }
    b
}

/// FST/FSTP m32fp/m64fp/m80fp, FIST/FISTP m16/m32/m64, FBSTP m80 (`cc`:
/// POP). The destination is checked before anything changes; an unmasked
/// exception stores nothing and does not pop.
pub(super) fn fst_mem<const T: u8>(cpu: &mut Cpu, ctx: &mut Ctx, i: &Insn) -> Res<()> {
    cpu.fpu_start(i, Kind::Numeric)?;
    let (n, align) = layout(T);
    let at = cpu.fpu_probe(ctx, i, n as u32, align)?;
    cpu.fpu_note(i);
    let f = &mut cpu.state.fpu;
    let bytes = if f.is_empty(0) {
        if !f.underflow() {
            return Ok(());
        }
        indefinite(T)
    } else {
        let mut env = f.env();
        let b = encode(T, f.st(0), &mut env);
        if !f.finish(&env, MEM_DEST) {
            return Ok(());
        }
        b
    };
    cpu.fpu_store(ctx, at, &bytes[..n])?;
    if i.cc & POP != 0 {
        cpu.state.fpu.pop();
    }
    Ok(())
}

/// FST/FSTP ST(i) (`cc`: POP, NO_CHECK). The FSTP alias D9 D8+i does not
/// check for an empty ST(0): it then only pops (host behaviour).
pub(super) fn fst_reg(cpu: &mut Cpu, _: &mut Ctx, i: &Insn) -> Res<()> {
    cpu.fpu_start(i, Kind::Numeric)?;
    let d = i.ops[0].num;
    let f = &mut cpu.state.fpu;
    if i.cc & NO_CHECK != 0 && f.is_empty(0) {
        f.set_c1(false);
        f.pop();
        return Ok(());
    }
    let v = if f.is_empty(0) {
        if !f.underflow() {
            return Ok(());
        }
        F80::INDEFINITE
    } else {
        f.set_c1(false);
        f.st(0)
    };
    f.set_st(d, v);
    if i.cc & POP != 0 {
        f.pop();
    }
    Ok(())
}

/// FLD1 (0), FLDL2T, FLDL2E, FLDPI, FLDLG2, FLDLN2, FLDZ (6).
pub(super) fn fld_const<const K: u8>(cpu: &mut Cpu, _: &mut Ctx, i: &Insn) -> Res<()> {
    cpu.fpu_start(i, Kind::Numeric)?;
    let f = &mut cpu.state.fpu;
    if f.full() {
        if f.overflow() {
            f.push(F80::INDEFINITE);
        }
        return Ok(());
    }
    let rc = f.env().rc;
    let v = match K {
        0 => F80::ONE,
        1 => f80::constant(Const::L2t, rc),
        2 => f80::constant(Const::L2e, rc),
        3 => f80::constant(Const::Pi, rc),
        4 => f80::constant(Const::Lg2, rc),
        5 => f80::constant(Const::Ln2, rc),
        _ => F80::ZERO,
    };
    f.set_c1(false);
    f.push(v);
    Ok(())
}

/// FXCH ST(i): an empty operand is replaced by the indefinite when
/// underflow is masked.
pub(super) fn fxch(cpu: &mut Cpu, _: &mut Ctx, i: &Insn) -> Res<()> {
    cpu.fpu_start(i, Kind::Numeric)?;
    let s = i.ops[1].num;
    let f = &mut cpu.state.fpu;
    let (e0, es) = (f.is_empty(0), f.is_empty(s));
    if e0 || es {
        if !f.underflow() {
            return Ok(());
        }
    } else {
        f.set_c1(false);
    }
    let a = if e0 { F80::INDEFINITE } else { f.st(0) };
    let b = if es { F80::INDEFINITE } else { f.st(s) };
    f.set_st(0, b);
    f.set_st(s, a);
    Ok(())
}

/// FCMOVcc ST(0), ST(i): `CC` is the Jcc condition number. C1 is kept.
pub(super) fn fcmov<const CC: u8>(cpu: &mut Cpu, _: &mut Ctx, i: &Insn) -> Res<()> {
    cpu.fpu_start(i, Kind::Numeric)?;
    let s = i.ops[1].num;
    let take = cpu.state.flags.condition(CC);
    let f = &mut cpu.state.fpu;
    if f.is_empty(0) || f.is_empty(s) {
        if f.underflow() {
            f.set_st(0, F80::INDEFINITE);
        }
        return Ok(());
    }
    if take {
        let v = f.st(s);
        f.set_st(0, v);
    }
    Ok(())
}
