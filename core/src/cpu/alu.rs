//! Arithmetic, logic, shifts/rotates, multiply/divide, BCD adjust and bit
//! instructions (SDM vol. 2). Undefined flags take the values a P6 produces
//! where known; SingleStepTests masks the rest.

use super::decode::{Insn, OpK};
use super::exec::{mask, sext, sign, Loc};
use super::flags::{Flags, AF, ARITH, CF, OF, ZF};
use super::state::{EAX, EBX, ECX, EDX};
use super::{Cpu, Ctx, Fault, Res};

/// Shared body of two-operand ALU instructions: `f` returns the value to
/// write back, or None (CMP/TEST).
#[inline(always)]
fn binop(
    cpu: &mut Cpu,
    ctx: &mut Ctx,
    i: &Insn,
    write: bool,
    f: impl FnOnce(&mut Flags, u32, u32, u32) -> u32,
) -> Res<()> {
    let size = i.size(0);
    let l = cpu.loc(ctx, i, 0, write)?;
    let a = cpu.rd_loc(ctx, l, size)?;
    let b = cpu.rd(ctx, i, 1)?;
    let r = f(&mut cpu.state.flags, a, b, size) & mask(size);
    if write {
        cpu.wr_loc(ctx, l, size, r)?;
    }
    Ok(())
}

#[inline(always)]
fn unop(cpu: &mut Cpu, ctx: &mut Ctx, i: &Insn, f: impl FnOnce(&mut Flags, u32, u32) -> u32) -> Res<()> {
    let size = i.size(0);
    let l = cpu.loc(ctx, i, 0, true)?;
    let a = cpu.rd_loc(ctx, l, size)?;
    let r = f(&mut cpu.state.flags, a, size) & mask(size);
    cpu.wr_loc(ctx, l, size, r)
}

/// Two-operand ALU operations, numbered for the const-generic handlers.
pub(crate) const ADD: u8 = 0;
pub(crate) const OR: u8 = 1;
pub(crate) const ADC: u8 = 2;
pub(crate) const SBB: u8 = 3;
pub(crate) const AND: u8 = 4;
pub(crate) const SUB: u8 = 5;
pub(crate) const XOR: u8 = 6;
pub(crate) const CMP: u8 = 7;
pub(crate) const TEST: u8 = 8;

/// The semantics of ALU operation `OP` on `a` and `b` of `s` bytes: the
/// result and the flags record.
#[inline(always)]
fn alu_apply<const OP: u8>(f: &mut Flags, a: u32, b: u32, s: u32) -> u32 {
    let m = mask(s);
    match OP {
        ADD => {
            let r = a.wrapping_add(b) & m;
            f.set_add(a, b, r, false, sign(s), ARITH);
            r
        }
        ADC => {
            let c = f.cf();
            let r = a.wrapping_add(b).wrapping_add(c as u32) & m;
            f.set_add(a, b, r, c, sign(s), ARITH);
            r
        }
        SUB | CMP => {
            let r = a.wrapping_sub(b) & m;
            f.set_sub(a, b, r, false, sign(s), ARITH);
            r
        }
        SBB => {
            let c = f.cf();
            let r = a.wrapping_sub(b).wrapping_sub(c as u32) & m;
            f.set_sub(a, b, r, c, sign(s), ARITH);
            r
        }
        OR => {
            f.set_logic(a | b, sign(s));
            a | b
        }
        XOR => {
            f.set_logic(a ^ b, sign(s));
            a ^ b
        }
        _ => {
            f.set_logic(a & b, sign(s));
            a & b
        }
    }
}

/// ALU operation with a general operand 0 (register or memory).
pub(crate) fn alu<const OP: u8>(cpu: &mut Cpu, ctx: &mut Ctx, i: &Insn) -> Res<()> {
    binop(cpu, ctx, i, OP != CMP && OP != TEST, alu_apply::<OP>)
}

/// ALU operation on two registers of `S` bytes.
pub(crate) fn alu_rr<const OP: u8, const S: u32>(cpu: &mut Cpu, _: &mut Ctx, i: &Insn) -> Res<()> {
    let a = cpu.get_reg(i.ops[0].num, S);
    let b = cpu.get_reg(i.ops[1].num, S);
    let r = alu_apply::<OP>(&mut cpu.state.flags, a, b, S);
    if OP != CMP && OP != TEST {
        cpu.set_reg(i.ops[0].num, S, r);
    }
    Ok(())
}

/// ALU operation on a register of `S` bytes and an immediate.
pub(crate) fn alu_ri<const OP: u8, const S: u32>(cpu: &mut Cpu, _: &mut Ctx, i: &Insn) -> Res<()> {
    let a = cpu.get_reg(i.ops[0].num, S);
    let b = i.imm & mask(S);
    let r = alu_apply::<OP>(&mut cpu.state.flags, a, b, S);
    if OP != CMP && OP != TEST {
        cpu.set_reg(i.ops[0].num, S, r);
    }
    Ok(())
}

/// The handler for ALU operation `OP` specialised for the operand shapes.
pub(crate) fn alu_handler<const OP: u8>(i: &Insn) -> super::decode::ExecFn {
    let (a, b) = (i.ops[0], i.ops[1]);
    match (a.kind, b.kind, a.size) {
        (OpK::Reg, OpK::Reg, 4) if b.size == 4 => alu_rr::<OP, 4>,
        (OpK::Reg, OpK::Reg, 2) if b.size == 2 => alu_rr::<OP, 2>,
        (OpK::Reg, OpK::Reg, 1) if b.size == 1 => alu_rr::<OP, 1>,
        (OpK::Reg, OpK::Imm, 4) => alu_ri::<OP, 4>,
        (OpK::Reg, OpK::Imm, 2) => alu_ri::<OP, 2>,
        (OpK::Reg, OpK::Imm, 1) => alu_ri::<OP, 1>,
        _ => alu::<OP>,
    }
}

/// INC/DEC of a register of `S` bytes.
pub(crate) fn incdec_r<const DEC: bool, const S: u32>(cpu: &mut Cpu, _: &mut Ctx, i: &Insn) -> Res<()> {
    let r = i.ops[0].num;
    let a = cpu.get_reg(r, S);
    let f = &mut cpu.state.flags;
    let v = if DEC {
        let v = a.wrapping_sub(1) & mask(S);
        f.set_sub(a, 1, v, false, sign(S), ARITH & !CF);
        v
    } else {
        let v = a.wrapping_add(1) & mask(S);
        f.set_add(a, 1, v, false, sign(S), ARITH & !CF);
        v
    };
    cpu.set_reg(r, S, v);
    Ok(())
}

/// The handler for INC (`dec` false) or DEC specialised for the operand.
pub(crate) fn incdec_handler(i: &Insn, dec_: bool) -> super::decode::ExecFn {
    match (i.ops[0].kind, i.ops[0].size, dec_) {
        (OpK::Reg, 4, false) => incdec_r::<false, 4>,
        (OpK::Reg, 2, false) => incdec_r::<false, 2>,
        (OpK::Reg, 4, true) => incdec_r::<true, 4>,
        (OpK::Reg, 2, true) => incdec_r::<true, 2>,
        (_, _, false) => inc,
        (_, _, true) => dec,
    }
}

pub(crate) fn inc(cpu: &mut Cpu, ctx: &mut Ctx, i: &Insn) -> Res<()> {
    unop(cpu, ctx, i, |f, a, s| {
        let r = a.wrapping_add(1) & mask(s);
        f.set_add(a, 1, r, false, sign(s), ARITH & !CF);
        r
    })
}

pub(crate) fn dec(cpu: &mut Cpu, ctx: &mut Ctx, i: &Insn) -> Res<()> {
    unop(cpu, ctx, i, |f, a, s| {
        let r = a.wrapping_sub(1) & mask(s);
        f.set_sub(a, 1, r, false, sign(s), ARITH & !CF);
        r
    })
}

pub(crate) fn neg(cpu: &mut Cpu, ctx: &mut Ctx, i: &Insn) -> Res<()> {
    unop(cpu, ctx, i, |f, a, s| {
        let r = 0u32.wrapping_sub(a) & mask(s);
        f.set_sub(0, a, r, false, sign(s), ARITH);
        r
    })
}

pub(crate) fn not(cpu: &mut Cpu, ctx: &mut Ctx, i: &Insn) -> Res<()> {
    unop(cpu, ctx, i, |_, a, _| !a)
}

/// Set CF and OF together, SF/ZF/PF from `res` (MUL/IMUL: the P6 leaves
/// SF/ZF/AF/PF undefined; this follows the low half of the result).
fn set_mul_flags(f: &mut Flags, res: u32, size: u32, overflow: bool) {
    f.set_szp(res & mask(size), sign(size));
    f.set(CF, overflow);
    f.set(OF, overflow);
    f.set(AF, false);
}

pub(crate) fn mul(cpu: &mut Cpu, ctx: &mut Ctx, i: &Insn) -> Res<()> {
    let size = i.size(0);
    let b = cpu.rd(ctx, i, 0)? as u64;
    let st = &mut cpu.state;
    match size {
        1 => {
            let r = (st.regs[EAX] & 0xFF) as u64 * b;
            st.set_reg16(EAX, r as u16);
            set_mul_flags(&mut st.flags, r as u32, 1, r > 0xFF);
        }
        2 => {
            let r = (st.regs[EAX] & 0xFFFF) as u64 * b;
            st.set_reg16(EAX, r as u16);
            st.set_reg16(EDX, (r >> 16) as u16);
            set_mul_flags(&mut st.flags, r as u32, 2, r > 0xFFFF);
        }
        _ => {
            let r = st.regs[EAX] as u64 * b;
            st.regs[EAX] = r as u32;
            st.regs[EDX] = (r >> 32) as u32;
            set_mul_flags(&mut st.flags, r as u32, 4, r > 0xFFFF_FFFF);
        }
    }
    Ok(())
}

pub(crate) fn imul1(cpu: &mut Cpu, ctx: &mut Ctx, i: &Insn) -> Res<()> {
    let size = i.size(0);
    let b = sext(cpu.rd(ctx, i, 0)?, size) as i32 as i64;
    let st = &mut cpu.state;
    match size {
        1 => {
            let r = (st.regs[EAX] as u8 as i8 as i64) * b;
            st.set_reg16(EAX, r as u16);
            set_mul_flags(&mut st.flags, r as u32, 1, r != r as i8 as i64);
        }
        2 => {
            let r = (st.regs[EAX] as u16 as i16 as i64) * b;
            st.set_reg16(EAX, r as u16);
            st.set_reg16(EDX, (r >> 16) as u16);
            set_mul_flags(&mut st.flags, r as u32, 2, r != r as i16 as i64);
        }
        _ => {
            let r = (st.regs[EAX] as i32 as i64) * b;
            st.regs[EAX] = r as u32;
            st.regs[EDX] = (r >> 32) as u32;
            set_mul_flags(&mut st.flags, r as u32, 4, r != r as i32 as i64);
        }
    }
    Ok(())
}

/// IMUL r, r/m (, imm): truncated signed product.
pub(crate) fn imul_n(cpu: &mut Cpu, ctx: &mut Ctx, i: &Insn) -> Res<()> {
    let size = i.size(0);
    let (a, b) = if i.ops[2].kind == OpK::None {
        (cpu.rd(ctx, i, 0)?, cpu.rd(ctx, i, 1)?)
    } else {
        (cpu.rd(ctx, i, 1)?, cpu.rd(ctx, i, 2)?)
    };
    let r = sext(a, size) as i32 as i64 * sext(b, size) as i32 as i64;
    let truncated = r as u32 & mask(size);
    let overflow = sext(truncated, size) as i32 as i64 != r;
    set_mul_flags(&mut cpu.state.flags, truncated, size, overflow);
    cpu.wr(ctx, i, 0, truncated)
}

pub(crate) fn div(cpu: &mut Cpu, ctx: &mut Ctx, i: &Insn) -> Res<()> {
    let size = i.size(0);
    let d = cpu.rd(ctx, i, 0)? as u64;
    if d == 0 {
        return Err(Fault::DE);
    }
    let st = &mut cpu.state;
    match size {
        1 => {
            let n = (st.regs[EAX] & 0xFFFF) as u64;
            let q = n / d;
            if q > 0xFF {
                return Err(Fault::DE);
            }
            st.set_reg16(EAX, (((n % d) << 8) | q) as u16);
        }
        2 => {
            let n = ((st.regs[EDX] & 0xFFFF) as u64) << 16 | (st.regs[EAX] & 0xFFFF) as u64;
            let q = n / d;
            if q > 0xFFFF {
                return Err(Fault::DE);
            }
            st.set_reg16(EAX, q as u16);
            st.set_reg16(EDX, (n % d) as u16);
        }
        _ => {
            let n = (st.regs[EDX] as u64) << 32 | st.regs[EAX] as u64;
            let q = n / d;
            if q > 0xFFFF_FFFF {
                return Err(Fault::DE);
            }
            st.regs[EAX] = q as u32;
            st.regs[EDX] = (n % d) as u32;
        }
    }
    Ok(())
}

pub(crate) fn idiv(cpu: &mut Cpu, ctx: &mut Ctx, i: &Insn) -> Res<()> {
    let size = i.size(0);
    let d = sext(cpu.rd(ctx, i, 0)?, size) as i32 as i64;
    if d == 0 {
        return Err(Fault::DE);
    }
    let st = &mut cpu.state;
    match size {
        1 => {
            let n = st.regs[EAX] as u16 as i16 as i64;
            let q = n / d;
            if q != q as i8 as i64 {
                return Err(Fault::DE);
            }
            st.set_reg16(EAX, (((n % d) as u8 as u16) << 8) | q as u8 as u16);
        }
        2 => {
            let n = ((st.regs[EDX] << 16) | (st.regs[EAX] & 0xFFFF)) as i32 as i64;
            let q = n / d;
            if q != q as i16 as i64 {
                return Err(Fault::DE);
            }
            st.set_reg16(EAX, q as u16);
            st.set_reg16(EDX, (n % d) as u16);
        }
        _ => {
            let n = ((st.regs[EDX] as u64) << 32 | st.regs[EAX] as u64) as i64;
            // i64::MIN / -1 overflows the host too: it is #DE for the guest.
            let (q, r) = match (n.checked_div(d), n.checked_rem(d)) {
                (Some(q), Some(r)) => (q, r),
                _ => return Err(Fault::DE),
            };
            if q != q as i32 as i64 {
                return Err(Fault::DE);
            }
            st.regs[EAX] = q as u32;
            st.regs[EDX] = r as u32;
        }
    }
    Ok(())
}

pub(crate) fn daa(cpu: &mut Cpu, _: &mut Ctx, _: &Insn) -> Res<()> {
    let st = &mut cpu.state;
    let old_al = st.reg8(0) as u32;
    let old_cf = st.flags.cf();
    let mut al = old_al;
    let mut cf = false;
    let af = (al & 0xF) > 9 || st.flags.get(AF);
    if af {
        al += 6;
        cf = old_cf || al > 0xFF;
    }
    if old_al > 0x99 || old_cf {
        al += 0x60;
        cf = true;
    }
    let al = al & 0xFF;
    st.set_reg8(0, al as u8);
    st.flags.set_szp(al, 0x80);
    st.flags.set(CF, cf);
    st.flags.set(AF, af);
    // OF is undefined; a P6 sets it as the signed overflow of the adjustment.
    st.flags.set(OF, (old_al & 0x80) == 0 && (al & 0x80) != 0);
    Ok(())
}

pub(crate) fn das(cpu: &mut Cpu, _: &mut Ctx, _: &Insn) -> Res<()> {
    let st = &mut cpu.state;
    let old_al = st.reg8(0) as u32;
    let old_cf = st.flags.cf();
    let mut al = old_al;
    let mut cf = false;
    let af = (al & 0xF) > 9 || st.flags.get(AF);
    if af {
        cf = old_cf || al < 6;
        al = al.wrapping_sub(6) & 0xFF;
    }
    if old_al > 0x99 || old_cf {
        al = al.wrapping_sub(0x60) & 0xFF;
        cf = true;
    }
    st.set_reg8(0, al as u8);
    st.flags.set_szp(al, 0x80);
    st.flags.set(CF, cf);
    st.flags.set(AF, af);
    st.flags.set(OF, (old_al & 0x80) != 0 && (al & 0x80) == 0);
    Ok(())
}

pub(crate) fn aaa(cpu: &mut Cpu, _: &mut Ctx, _: &Insn) -> Res<()> {
    let st = &mut cpu.state;
    let adj = (st.reg8(0) & 0xF) > 9 || st.flags.get(AF);
    let mut ax = st.reg16(EAX);
    if adj {
        ax = ax.wrapping_add(0x106);
    }
    ax &= 0xFF0F;
    st.set_reg16(EAX, ax);
    st.flags.set_szp(ax as u32 & 0xFF, 0x80);
    st.flags.set(AF, adj);
    st.flags.set(CF, adj);
    st.flags.set(OF, false);
    Ok(())
}

pub(crate) fn aas(cpu: &mut Cpu, _: &mut Ctx, _: &Insn) -> Res<()> {
    let st = &mut cpu.state;
    let adj = (st.reg8(0) & 0xF) > 9 || st.flags.get(AF);
    let mut ax = st.reg16(EAX);
    if adj {
        ax = ax.wrapping_sub(6);
        ax = ax.wrapping_sub(0x100);
    }
    ax &= 0xFF0F;
    st.set_reg16(EAX, ax);
    st.flags.set_szp(ax as u32 & 0xFF, 0x80);
    st.flags.set(AF, adj);
    st.flags.set(CF, adj);
    st.flags.set(OF, false);
    Ok(())
}

pub(crate) fn aam(cpu: &mut Cpu, _: &mut Ctx, i: &Insn) -> Res<()> {
    let base = i.imm & 0xFF;
    if base == 0 {
        return Err(Fault::DE);
    }
    let st = &mut cpu.state;
    let al = st.reg8(0) as u32;
    let (ah, al) = (al / base, al % base);
    st.set_reg16(EAX, ((ah << 8) | al) as u16);
    st.flags.set_szp(al, 0x80);
    st.flags.set(CF, false);
    st.flags.set(OF, false);
    st.flags.set(AF, false);
    Ok(())
}

pub(crate) fn aad(cpu: &mut Cpu, _: &mut Ctx, i: &Insn) -> Res<()> {
    let base = i.imm & 0xFF;
    let st = &mut cpu.state;
    let al = st.reg8(0) as u32;
    let ah = st.reg8(4) as u32;
    // The P6 computes AL + AH*imm with an 8-bit add; flags follow that add.
    let prod = (ah * base) & 0xFF;
    let r = (al + prod) & 0xFF;
    st.set_reg16(EAX, r as u16);
    st.flags.set_add(al, prod, r, false, 0x80, ARITH);
    Ok(())
}

/// Shift/rotate count operand, masked to 5 bits (all IA-32 processors from
/// the 286 on, SDM vol. 2 SAL/SAR/SHL/SHR).
#[inline]
fn count(cpu: &mut Cpu, ctx: &mut Ctx, i: &Insn) -> Res<u32> {
    Ok(if i.ops[1].kind == OpK::None { 1 } else { cpu.rd(ctx, i, 1)? & 0x1F })
}

#[inline(always)]
fn shift_op(cpu: &mut Cpu, ctx: &mut Ctx, i: &Insn, f: impl FnOnce(&mut Flags, u32, u32, u32) -> u32) -> Res<()> {
    let size = i.size(0);
    let l = cpu.loc(ctx, i, 0, true)?;
    let a = cpu.rd_loc(ctx, l, size)?;
    let c = count(cpu, ctx, i)?;
    if c == 0 {
        return Ok(());
    }
    let r = f(&mut cpu.state.flags, a, c, size) & mask(size);
    cpu.wr_loc(ctx, l, size, r)
}

pub(crate) fn shl(cpu: &mut Cpu, ctx: &mut Ctx, i: &Insn) -> Res<()> {
    shift_op(cpu, ctx, i, |f, a, c, s| {
        let bits = s * 8;
        let wide = (a as u64) << c;
        let r = wide as u32 & mask(s);
        let cf = (wide >> bits) & 1 != 0;
        f.set_szp(r, sign(s));
        f.set(CF, cf);
        f.set(OF, (r & sign(s) != 0) != cf);
        f.set(AF, false);
        r
    })
}

pub(crate) fn shr(cpu: &mut Cpu, ctx: &mut Ctx, i: &Insn) -> Res<()> {
    shift_op(cpu, ctx, i, |f, a, c, s| {
        let r = ((a as u64) >> c) as u32;
        let cf = ((a as u64) >> (c - 1)) & 1 != 0;
        f.set_szp(r, sign(s));
        f.set(CF, cf);
        // OF = the top two result bits XORed: the original MSB for a count
        // of 1 (SDM), 0 for larger counts (undefined in the SDM; what the
        // 286 and later produce).
        f.set(OF, (r & sign(s) != 0) != (r & (sign(s) >> 1) != 0));
        f.set(AF, false);
        r
    })
}

pub(crate) fn sar(cpu: &mut Cpu, ctx: &mut Ctx, i: &Insn) -> Res<()> {
    shift_op(cpu, ctx, i, |f, a, c, s| {
        let sa = sext(a, s) as i32 as i64;
        let r = (sa >> c) as u32 & mask(s);
        let cf = (sa >> (c - 1)) & 1 != 0;
        f.set_szp(r, sign(s));
        f.set(CF, cf);
        f.set(OF, false);
        f.set(AF, false);
        r
    })
}

pub(crate) fn rol(cpu: &mut Cpu, ctx: &mut Ctx, i: &Insn) -> Res<()> {
    shift_op(cpu, ctx, i, |f, a, c, s| {
        let bits = s * 8;
        let n = c % bits;
        let r = if n == 0 { a } else { ((a << n) | (a >> (bits - n))) & mask(s) };
        let cf = r & 1 != 0;
        f.set(CF, cf);
        f.set(OF, (r & sign(s) != 0) != cf);
        r
    })
}

pub(crate) fn ror(cpu: &mut Cpu, ctx: &mut Ctx, i: &Insn) -> Res<()> {
    shift_op(cpu, ctx, i, |f, a, c, s| {
        let bits = s * 8;
        let n = c % bits;
        let r = if n == 0 { a } else { ((a >> n) | (a << (bits - n))) & mask(s) };
        let msb = r & sign(s) != 0;
        f.set(CF, msb);
        f.set(OF, msb != (r & (sign(s) >> 1) != 0));
        r
    })
}

pub(crate) fn rcl(cpu: &mut Cpu, ctx: &mut Ctx, i: &Insn) -> Res<()> {
    shift_op(cpu, ctx, i, |f, a, c, s| {
        let bits = s * 8;
        let n = (c % (bits + 1)) as u64;
        let m = (1u64 << (bits + 1)) - 1;
        let v = ((f.cf() as u64) << bits) | a as u64;
        let v = if n == 0 { v } else { ((v << n) | (v >> (bits as u64 + 1 - n))) & m };
        let r = v as u32 & mask(s);
        let cf = (v >> bits) & 1 != 0;
        f.set(CF, cf);
        f.set(OF, (r & sign(s) != 0) != cf);
        r
    })
}

pub(crate) fn rcr(cpu: &mut Cpu, ctx: &mut Ctx, i: &Insn) -> Res<()> {
    shift_op(cpu, ctx, i, |f, a, c, s| {
        let bits = s * 8;
        let n = (c % (bits + 1)) as u64;
        let m = (1u64 << (bits + 1)) - 1;
        let old_cf = f.cf();
        let v = ((old_cf as u64) << bits) | a as u64;
        let v = if n == 0 { v } else { ((v >> n) | (v << (bits as u64 + 1 - n))) & m };
        let r = v as u32 & mask(s);
        f.set(CF, (v >> bits) & 1 != 0);
        f.set(OF, (r & sign(s) != 0) != (r & (sign(s) >> 1) != 0));
        r
    })
}

/// SHLD/SHRD: count from imm8 or CL, masked to 5 bits.
fn double_shift(cpu: &mut Cpu, ctx: &mut Ctx, i: &Insn, left: bool) -> Res<()> {
    let size = i.size(0);
    let bits = size * 8;
    let l = cpu.loc(ctx, i, 0, true)?;
    let a = cpu.rd_loc(ctx, l, size)?;
    let b = cpu.rd(ctx, i, 1)?;
    let c = cpu.rd(ctx, i, 2)? & 0x1F;
    if c == 0 {
        return Ok(());
    }
    // For 16-bit operands with count > 16 the result is undefined; the P6
    // shifts through a 48-bit pattern of dest:src:dest, which this mirrors.
    let (r, cf) = if left {
        let wide: u128 = ((a as u128) << (2 * bits)) | ((b as u128) << bits) | a as u128;
        let total = 3 * bits;
        let sh = wide << c;
        let r = (sh >> (2 * bits)) as u32 & mask(size);
        let cf = (sh >> total) & 1 != 0;
        (r, cf)
    } else {
        // dest is the low part of dest:src:dest, shifted right.
        let pat: u128 = ((a as u128) << (2 * bits)) | ((b as u128) << bits) | a as u128;
        let r = (pat >> c) as u32 & mask(size);
        let cf = (pat >> (c - 1)) & 1 != 0;
        (r, cf)
    };
    let f = &mut cpu.state.flags;
    f.set_szp(r, sign(size));
    f.set(CF, cf);
    f.set(OF, (r & sign(size)) != (a & sign(size)));
    f.set(AF, false);
    cpu.wr_loc(ctx, l, size, r)
}

pub(crate) fn shld(cpu: &mut Cpu, ctx: &mut Ctx, i: &Insn) -> Res<()> {
    double_shift(cpu, ctx, i, true)
}

pub(crate) fn shrd(cpu: &mut Cpu, ctx: &mut Ctx, i: &Insn) -> Res<()> {
    double_shift(cpu, ctx, i, false)
}

/// BT family: locate the bit (register bit offsets address memory beyond
/// the operand, SDM vol. 2 BT), then apply `op` (None for BT).
fn bit_op(cpu: &mut Cpu, ctx: &mut Ctx, i: &Insn, op: Option<fn(u32, u32) -> u32>) -> Res<()> {
    let size = i.size(0);
    let bits = size * 8;
    let off = cpu.rd(ctx, i, 1)?;
    let (l, bit) = if i.ops[0].kind == OpK::Reg {
        (Loc::Reg(i.ops[0].num), off & (bits - 1))
    } else if i.ops[1].kind == OpK::Imm {
        let l = cpu.loc(ctx, i, 0, op.is_some())?;
        (l, off & (bits - 1))
    } else {
        let soff = sext(off, size) as i32;
        let disp = (soff >> (if bits == 16 { 4 } else { 5 })).wrapping_mul(size as i32) as u32;
        let mut ea = cpu.ea(i).wrapping_add(disp);
        if !i.addr32 {
            ea &= 0xFFFF;
        }
        (cpu.mem_loc(ctx, i.seg as usize, ea, size, op.is_some())?, soff as u32 & (bits - 1))
    };
    let v = cpu.rd_loc(ctx, l, size)?;
    cpu.state.flags.set(CF, (v >> bit) & 1 != 0);
    if let Some(f) = op {
        cpu.wr_loc(ctx, l, size, f(v, 1 << bit))?;
    }
    Ok(())
}

pub(crate) fn bt(cpu: &mut Cpu, ctx: &mut Ctx, i: &Insn) -> Res<()> {
    bit_op(cpu, ctx, i, None)
}

pub(crate) fn bts(cpu: &mut Cpu, ctx: &mut Ctx, i: &Insn) -> Res<()> {
    bit_op(cpu, ctx, i, Some(|v, m| v | m))
}

pub(crate) fn btr(cpu: &mut Cpu, ctx: &mut Ctx, i: &Insn) -> Res<()> {
    bit_op(cpu, ctx, i, Some(|v, m| v & !m))
}

pub(crate) fn btc(cpu: &mut Cpu, ctx: &mut Ctx, i: &Insn) -> Res<()> {
    bit_op(cpu, ctx, i, Some(|v, m| v ^ m))
}

fn bit_scan(cpu: &mut Cpu, ctx: &mut Ctx, i: &Insn, forward: bool) -> Res<()> {
    let size = i.size(0);
    let v = cpu.rd(ctx, i, 1)?;
    if v == 0 {
        // Destination unchanged on a P6; ZF set.
        cpu.state.flags.set_logic(0, sign(size));
        return Ok(());
    }
    let r = if forward { v.trailing_zeros() } else { 31 - v.leading_zeros() };
    cpu.state.flags.set_logic(1, sign(size));
    cpu.wr(ctx, i, 0, r)
}

pub(crate) fn bsf(cpu: &mut Cpu, ctx: &mut Ctx, i: &Insn) -> Res<()> {
    bit_scan(cpu, ctx, i, true)
}

pub(crate) fn bsr(cpu: &mut Cpu, ctx: &mut Ctx, i: &Insn) -> Res<()> {
    bit_scan(cpu, ctx, i, false)
}

pub(crate) fn salc(cpu: &mut Cpu, _: &mut Ctx, _: &Insn) -> Res<()> {
    let v = if cpu.state.flags.cf() { 0xFF } else { 0 };
    cpu.state.set_reg8(0, v);
    Ok(())
}

pub(crate) fn cmpxchg(cpu: &mut Cpu, ctx: &mut Ctx, i: &Insn) -> Res<()> {
    let size = i.size(0);
    let l = cpu.loc(ctx, i, 0, true)?;
    let dest = cpu.rd_loc(ctx, l, size)?;
    let src = cpu.rd(ctx, i, 1)?;
    let acc = cpu.get_reg(EAX as u8, size);
    let r = acc.wrapping_sub(dest) & mask(size);
    cpu.state.flags.set_sub(acc, dest, r, false, sign(size), ARITH);
    if acc == dest {
        cpu.wr_loc(ctx, l, size, src)
    } else {
        // The P6 writes the old value back to a memory destination.
        if !matches!(l, Loc::Reg(_)) {
            cpu.wr_loc(ctx, l, size, dest)?;
        }
        cpu.set_reg(EAX as u8, size, dest);
        Ok(())
    }
}

pub(crate) fn cmpxchg8b(cpu: &mut Cpu, ctx: &mut Ctx, i: &Insn) -> Res<()> {
    if i.ops[0].kind != OpK::Mem {
        return Err(Fault::UD);
    }
    let off = cpu.ea(i);
    let lin = cpu.seg_check(i.seg as usize, off, 8, true)?;
    cpu.probe_write(ctx, lin, 8)?;
    let lo = cpu.read_lin(ctx, lin, 4)?;
    let hi = cpu.read_lin(ctx, lin.wrapping_add(4), 4)?;
    let st = &cpu.state;
    let eq = lo == st.regs[EAX] && hi == st.regs[EDX];
    let (wlo, whi) = if eq { (st.regs[EBX], st.regs[ECX]) } else { (lo, hi) };
    cpu.write_lin(ctx, lin, 4, wlo)?;
    cpu.write_lin(ctx, lin.wrapping_add(4), 4, whi)?;
    if !eq {
        cpu.state.regs[EAX] = lo;
        cpu.state.regs[EDX] = hi;
    }
    cpu.state.flags.set(ZF, eq);
    Ok(())
}

pub(crate) fn xadd(cpu: &mut Cpu, ctx: &mut Ctx, i: &Insn) -> Res<()> {
    let size = i.size(0);
    let l = cpu.loc(ctx, i, 0, true)?;
    let a = cpu.rd_loc(ctx, l, size)?;
    let b = cpu.rd(ctx, i, 1)?;
    let r = a.wrapping_add(b) & mask(size);
    cpu.state.flags.set_add(a, b, r, false, sign(size), ARITH);
    cpu.wr(ctx, i, 1, a)?;
    cpu.wr_loc(ctx, l, size, r)
}
