//! Data movement: MOV forms, stack operations, flag transfers, conversions,
//! string instructions with REP, port I/O.

use super::decode::{Insn, OpK, REP_E, REP_NE};
use super::exec::{mask, sext, sign};
use super::flags::{self, AF, ARITH, CF, PF, SF, ZF};
use super::mmu::Access;
use super::state::{SegReg, EAX, EBP, EBX, ECX, EDI, EDX, ESI, ESP};
use super::{Cpu, Ctx, Fault, Res};
use crate::bus::AccessSize;
use crate::mem::PAGE_SIZE;

pub(crate) fn mov(cpu: &mut Cpu, ctx: &mut Ctx, i: &Insn) -> Res<()> {
    let v = cpu.rd(ctx, i, 1)?;
    cpu.wr(ctx, i, 0, v)
}

/// MOV between two registers of `S` bytes.
pub(crate) fn mov_rr<const S: u32>(cpu: &mut Cpu, _: &mut Ctx, i: &Insn) -> Res<()> {
    let v = cpu.get_reg(i.ops[1].num, S);
    cpu.set_reg(i.ops[0].num, S, v);
    Ok(())
}

/// MOV of an immediate to a register of `S` bytes.
pub(crate) fn mov_ri<const S: u32>(cpu: &mut Cpu, _: &mut Ctx, i: &Insn) -> Res<()> {
    cpu.set_reg(i.ops[0].num, S, i.imm & mask(S));
    Ok(())
}

/// MOV from memory to a register of `S` bytes.
pub(crate) fn mov_rm<const S: u32>(cpu: &mut Cpu, ctx: &mut Ctx, i: &Insn) -> Res<()> {
    let off = cpu.ea(i);
    let v = cpu.read_mem(ctx, i.seg as usize, off, S)?;
    cpu.set_reg(i.ops[0].num, S, v);
    Ok(())
}

/// MOV from a register of `S` bytes to memory.
pub(crate) fn mov_mr<const S: u32>(cpu: &mut Cpu, ctx: &mut Ctx, i: &Insn) -> Res<()> {
    let off = cpu.ea(i);
    let v = cpu.get_reg(i.ops[1].num, S);
    cpu.write_mem(ctx, i.seg as usize, off, S, v)
}

/// The MOV handler specialised for its operand shapes.
pub(crate) fn mov_handler(i: &Insn) -> super::decode::ExecFn {
    let (a, b) = (i.ops[0], i.ops[1]);
    match (a.kind, b.kind, a.size, b.size) {
        (OpK::Reg, OpK::Reg, 4, 4) => mov_rr::<4>,
        (OpK::Reg, OpK::Reg, 2, 2) => mov_rr::<2>,
        (OpK::Reg, OpK::Reg, 1, 1) => mov_rr::<1>,
        (OpK::Reg, OpK::Imm, 4, _) => mov_ri::<4>,
        (OpK::Reg, OpK::Imm, 2, _) => mov_ri::<2>,
        (OpK::Reg, OpK::Imm, 1, _) => mov_ri::<1>,
        (OpK::Reg, OpK::Mem, 4, 4) => mov_rm::<4>,
        (OpK::Reg, OpK::Mem, 2, 2) => mov_rm::<2>,
        (OpK::Reg, OpK::Mem, 1, 1) => mov_rm::<1>,
        (OpK::Mem, OpK::Reg, 4, 4) => mov_mr::<4>,
        (OpK::Mem, OpK::Reg, 2, 2) => mov_mr::<2>,
        (OpK::Mem, OpK::Reg, 1, 1) => mov_mr::<1>,
        _ => mov,
    }
}

pub(crate) fn movzx(cpu: &mut Cpu, ctx: &mut Ctx, i: &Insn) -> Res<()> {
    let v = cpu.rd(ctx, i, 1)?;
    cpu.wr(ctx, i, 0, v)
}

pub(crate) fn movsx(cpu: &mut Cpu, ctx: &mut Ctx, i: &Insn) -> Res<()> {
    let v = sext(cpu.rd(ctx, i, 1)?, i.size(1));
    cpu.wr(ctx, i, 0, v & mask(i.size(0)))
}

pub(crate) fn mov_to_seg(cpu: &mut Cpu, ctx: &mut Ctx, i: &Insn) -> Res<()> {
    let seg = SegReg::from_index(i.ops[0].num as usize).ok_or(Fault::UD)?;
    if seg == SegReg::Cs {
        return Err(Fault::UD);
    }
    let sel = cpu.rd(ctx, i, 1)? as u16;
    cpu.load_seg(ctx, seg, sel)?;
    if seg == SegReg::Ss {
        cpu.state.int_shadow = true;
    }
    Ok(())
}

pub(crate) fn mov_from_seg(cpu: &mut Cpu, ctx: &mut Ctx, i: &Insn) -> Res<()> {
    let v = cpu.state.segs[i.ops[1].num as usize].selector as u32;
    // To a 32-bit register the P6 zero-extends; to memory it stores 16 bits.
    cpu.wr(ctx, i, 0, v)
}

pub(crate) fn xchg(cpu: &mut Cpu, ctx: &mut Ctx, i: &Insn) -> Res<()> {
    let size = i.size(0);
    let l = cpu.loc(ctx, i, 0, true)?;
    let a = cpu.rd_loc(ctx, l, size)?;
    let b = cpu.rd(ctx, i, 1)?;
    cpu.wr_loc(ctx, l, size, b)?;
    cpu.wr(ctx, i, 1, a)
}

pub(crate) fn lea(cpu: &mut Cpu, ctx: &mut Ctx, i: &Insn) -> Res<()> {
    if i.ops[1].kind != OpK::Mem {
        return Err(Fault::UD);
    }
    let v = cpu.ea(i);
    cpu.wr(ctx, i, 0, v & mask(i.size(0)))
}

pub(crate) fn push(cpu: &mut Cpu, ctx: &mut Ctx, i: &Insn) -> Res<()> {
    let op = i.ops[0];
    let (v, size) = match op.kind {
        // PUSH ESP pushes the value before the push (286 and later).
        OpK::Reg => (cpu.get_reg(op.num, op.size as u32), op.size as u32),
        // PUSH sreg with a 32-bit operand size writes a dword slot.
        OpK::Seg => (cpu.state.segs[op.num as usize].selector as u32, i.opsz as u32),
        OpK::Imm => (sext(i.imm, op.size as u32) & mask(i.opsz as u32), i.opsz as u32),
        _ => (cpu.rd(ctx, i, 0)?, op.size as u32),
    };
    if op.kind == OpK::Seg && size == 4 {
        // The P6 writes only the low word of the slot.
        let m = cpu.sp_mask();
        let sp = cpu.state.regs[ESP].wrapping_sub(4) & m;
        let lin = cpu.seg_check(SegReg::Ss as usize, sp, 4, true)?;
        cpu.probe_write(ctx, lin, 4)?;
        cpu.write_mem(ctx, SegReg::Ss as usize, sp, 2, v)?;
        cpu.set_sp(sp);
        return Ok(());
    }
    cpu.push(ctx, v, size)
}

pub(crate) fn pop(cpu: &mut Cpu, ctx: &mut Ctx, i: &Insn) -> Res<()> {
    let op = i.ops[0];
    let size = if op.kind == OpK::Seg { i.opsz as u32 } else { op.size as u32 };
    let old_esp = cpu.state.regs[ESP];
    let v = cpu.pop(ctx, size)?;
    let r = match op.kind {
        OpK::Seg => {
            let seg = SegReg::from_index(op.num as usize).ok_or(Fault::UD)?;
            let r = cpu.load_seg(ctx, seg, v as u16);
            if r.is_ok() && seg == SegReg::Ss {
                cpu.state.int_shadow = true;
            }
            r
        }
        // POP to memory computes the address with the incremented ESP.
        _ => cpu.wr(ctx, i, 0, v),
    };
    if r.is_err() {
        cpu.state.regs[ESP] = old_esp;
    }
    r
}

pub(crate) fn pusha(cpu: &mut Cpu, ctx: &mut Ctx, i: &Insn) -> Res<()> {
    let size = i.opsz as u32;
    let old_esp = cpu.state.regs[ESP];
    let m = cpu.sp_mask();
    // Check the whole frame first so the instruction is all-or-nothing.
    let low = old_esp.wrapping_sub(8 * size) & m;
    for k in 0..8 {
        cpu.seg_check(SegReg::Ss as usize, low.wrapping_add(k * size) & m, size, true)?;
    }
    for r in [EAX, ECX, EDX, EBX, ESP, EBP, ESI, EDI] {
        let v = if r == ESP { old_esp } else { cpu.state.regs[r] } & mask(size);
        if let Err(e) = cpu.push(ctx, v, size) {
            cpu.state.regs[ESP] = old_esp;
            return Err(e);
        }
    }
    Ok(())
}

pub(crate) fn popa(cpu: &mut Cpu, ctx: &mut Ctx, i: &Insn) -> Res<()> {
    let size = i.opsz as u32;
    let mut vals = [0u32; 8];
    for (k, v) in vals.iter_mut().enumerate() {
        *v = cpu.peek_stack(ctx, k as u32 * size, size)?;
    }
    for (k, r) in [EDI, ESI, EBP, ESP, EBX, EDX, ECX, EAX].into_iter().enumerate() {
        if r != ESP {
            cpu.set_reg(r as u8, size, vals[k]);
        }
    }
    let sp = cpu.state.regs[ESP].wrapping_add(8 * size);
    cpu.set_sp(sp);
    Ok(())
}

pub(crate) fn pushf(cpu: &mut Cpu, ctx: &mut Ctx, i: &Insn) -> Res<()> {
    if cpu.state.v86() && cpu.iopl() < 3 {
        return Err(Fault::gp(0));
    }
    // VM and RF are never pushed (SDM vol. 2 PUSHF).
    let v = cpu.state.eflags() & !(flags::VM | flags::RF);
    cpu.push(ctx, v & mask(i.opsz as u32), i.opsz as u32)
}

pub(crate) fn popf(cpu: &mut Cpu, ctx: &mut Ctx, i: &Insn) -> Res<()> {
    let size = i.opsz as u32;
    if cpu.state.v86() && cpu.iopl() < 3 {
        return Err(Fault::gp(0));
    }
    let v = cpu.pop(ctx, size)?;
    cpu.write_flags(v, size);
    Ok(())
}

impl Cpu {
    #[inline]
    pub(crate) fn iopl(&self) -> u32 {
        (self.state.flags.bits >> 12) & 3
    }

    /// Load EFLAGS as POPF does at the current privilege (SDM vol. 2
    /// POPF): IOPL only at CPL 0, IF only when CPL <= IOPL, VM/VIP/VIF
    /// never, RF cleared.
    pub(crate) fn write_flags(&mut self, v: u32, size: u32) {
        let mut m = flags::SETTABLE & !(flags::VM | flags::VIP | flags::VIF | flags::RF);
        if self.state.protected() {
            if self.state.cpl > 0 {
                m &= !flags::IOPL;
            }
            if self.state.cpl as u32 > self.iopl() {
                m &= !flags::IF;
            }
        }
        if size == 2 {
            m &= 0xFFFF;
        }
        self.state.flags.load(v, m | flags::RF);
        self.state.flags.set(flags::RF, false);
    }
}

pub(crate) fn lahf(cpu: &mut Cpu, _: &mut Ctx, _: &Insn) -> Res<()> {
    let f = cpu.state.eflags() as u8;
    cpu.state.set_reg8(4, f);
    Ok(())
}

pub(crate) fn sahf(cpu: &mut Cpu, _: &mut Ctx, _: &Insn) -> Res<()> {
    let ah = cpu.state.reg8(4) as u32;
    cpu.state.flags.load(ah, SF | ZF | AF | PF | CF);
    Ok(())
}

pub(crate) fn cbw(cpu: &mut Cpu, _: &mut Ctx, i: &Insn) -> Res<()> {
    let st = &mut cpu.state;
    if i.opsz == 2 {
        let v = st.regs[EAX] as u8 as i8 as i16 as u16;
        st.set_reg16(EAX, v);
    } else {
        st.regs[EAX] = st.regs[EAX] as u16 as i16 as i32 as u32;
    }
    Ok(())
}

pub(crate) fn cwd(cpu: &mut Cpu, _: &mut Ctx, i: &Insn) -> Res<()> {
    let st = &mut cpu.state;
    if i.opsz == 2 {
        let v = if st.regs[EAX] & 0x8000 != 0 { 0xFFFF } else { 0 };
        st.set_reg16(EDX, v);
    } else {
        st.regs[EDX] = if st.regs[EAX] & 0x8000_0000 != 0 { u32::MAX } else { 0 };
    }
    Ok(())
}

pub(crate) fn xlat(cpu: &mut Cpu, ctx: &mut Ctx, i: &Insn) -> Res<()> {
    let mut off = cpu.state.regs[EBX].wrapping_add(cpu.state.reg8(0) as u32);
    if !i.addr32 {
        off &= 0xFFFF;
    }
    let v = cpu.read_mem(ctx, i.seg as usize, off, 1)?;
    cpu.state.set_reg8(0, v as u8);
    Ok(())
}

pub(crate) fn bswap(cpu: &mut Cpu, _: &mut Ctx, i: &Insn) -> Res<()> {
    let r = i.ops[0].num as usize;
    if i.ops[0].size == 4 {
        cpu.state.regs[r] = cpu.state.regs[r].swap_bytes();
    } else {
        // BSWAP of a 16-bit register is undefined; a P6 clears the word.
        cpu.state.set_reg16(r, 0);
    }
    Ok(())
}

pub(crate) fn cmov(cpu: &mut Cpu, ctx: &mut Ctx, i: &Insn) -> Res<()> {
    // The source is read (and may fault) whatever the condition.
    let v = cpu.rd(ctx, i, 1)?;
    if cpu.state.flags.condition(i.cc) {
        cpu.wr(ctx, i, 0, v)?;
    }
    Ok(())
}

pub(crate) fn setcc(cpu: &mut Cpu, ctx: &mut Ctx, i: &Insn) -> Res<()> {
    let v = cpu.state.flags.condition(i.cc) as u32;
    cpu.wr(ctx, i, 0, v)
}

/// LDS/LES/LSS/LFS/LGS: offset then selector from memory.
fn load_far_ptr(cpu: &mut Cpu, ctx: &mut Ctx, i: &Insn, seg: SegReg) -> Res<()> {
    if i.ops[1].kind != OpK::Mem {
        return Err(Fault::UD);
    }
    let size = i.size(0);
    let off = cpu.ea(i);
    let v = cpu.read_mem(ctx, i.seg as usize, off, size)?;
    let next = if i.addr32 { off.wrapping_add(size) } else { off.wrapping_add(size) & 0xFFFF };
    let sel = cpu.read_mem(ctx, i.seg as usize, next, 2)? as u16;
    cpu.load_seg(ctx, seg, sel)?;
    if seg == SegReg::Ss {
        cpu.state.int_shadow = true;
    }
    cpu.wr(ctx, i, 0, v)
}

pub(crate) fn lptr_ds(cpu: &mut Cpu, ctx: &mut Ctx, i: &Insn) -> Res<()> {
    load_far_ptr(cpu, ctx, i, SegReg::Ds)
}
pub(crate) fn lptr_es(cpu: &mut Cpu, ctx: &mut Ctx, i: &Insn) -> Res<()> {
    load_far_ptr(cpu, ctx, i, SegReg::Es)
}
pub(crate) fn lptr_ss(cpu: &mut Cpu, ctx: &mut Ctx, i: &Insn) -> Res<()> {
    load_far_ptr(cpu, ctx, i, SegReg::Ss)
}
pub(crate) fn lptr_fs(cpu: &mut Cpu, ctx: &mut Ctx, i: &Insn) -> Res<()> {
    load_far_ptr(cpu, ctx, i, SegReg::Fs)
}
pub(crate) fn lptr_gs(cpu: &mut Cpu, ctx: &mut Ctx, i: &Insn) -> Res<()> {
    load_far_ptr(cpu, ctx, i, SegReg::Gs)
}

/// Port of IN/OUT: imm8 or DX.
fn io_port(cpu: &Cpu, i: &Insn, n: usize) -> u16 {
    if i.ops[n].kind == OpK::Imm {
        (i.imm & 0xFF) as u16
    } else {
        cpu.state.regs[EDX] as u16
    }
}

pub(crate) fn in_(cpu: &mut Cpu, ctx: &mut Ctx, i: &Insn) -> Res<()> {
    let size = i.size(0);
    let port = io_port(cpu, i, 1);
    cpu.check_io(ctx, port, size)?;
    ctx.bus.sync(cpu.instret);
    let v = ctx.bus.io_read(port, AccessSize::from_bytes(size)) & mask(size);
    cpu.set_reg(EAX as u8, size, v);
    Ok(())
}

pub(crate) fn out(cpu: &mut Cpu, ctx: &mut Ctx, i: &Insn) -> Res<()> {
    let size = i.size(1);
    let port = io_port(cpu, i, 0);
    cpu.check_io(ctx, port, size)?;
    let v = cpu.get_reg(EAX as u8, size);
    ctx.bus.sync(cpu.instret);
    ctx.bus.io_write(port, AccessSize::from_bytes(size), v);
    cpu.stop |= ctx.bus.needs_service();
    Ok(())
}

/// Iterations of a REP string instruction per step before it yields (so
/// interrupts are taken within a bounded time; SDM vol. 1, 7.3.9.2).
const REP_CHUNK: u32 = 1024;

/// Run one string iteration `body` under the instruction's REP prefix.
/// `body` returns false to end a REPE/REPNE loop. On a fault ECX/ESI/EDI
/// reflect the completed iterations and EIP still points at the
/// instruction, so it resumes where it stopped.
#[inline(always)]
fn rep(cpu: &mut Cpu, ctx: &mut Ctx, i: &Insn, mut body: impl FnMut(&mut Cpu, &mut Ctx) -> Res<bool>) -> Res<()> {
    if i.rep == 0 {
        body(cpu, ctx)?;
        return Ok(());
    }
    let cm = if i.addr32 { u32::MAX } else { 0xFFFF };
    let mut n = 0;
    while cpu.state.regs[ECX] & cm != 0 {
        let go_on = body(cpu, ctx)?;
        let c = cpu.state.regs[ECX];
        cpu.state.regs[ECX] = (c & !cm) | (c.wrapping_sub(1) & cm);
        if !go_on {
            break;
        }
        n += 1;
        if n >= REP_CHUNK && cpu.state.regs[ECX] & cm != 0 {
            cpu.next_eip = cpu.state.eip;
            break;
        }
    }
    Ok(())
}

/// Step an index register by the element size, honouring DF and the
/// address size.
#[inline]
fn advance(cpu: &mut Cpu, r: usize, size: u32, addr32: bool) {
    let delta = if cpu.state.flags.bits & flags::DF != 0 { size.wrapping_neg() } else { size };
    let v = cpu.state.regs[r];
    cpu.state.regs[r] =
        if addr32 { v.wrapping_add(delta) } else { (v & 0xFFFF_0000) | (v.wrapping_add(delta) & 0xFFFF) };
}

#[inline]
fn idx(cpu: &Cpu, r: usize, addr32: bool) -> u32 {
    if addr32 {
        cpu.state.regs[r]
    } else {
        cpu.state.regs[r] & 0xFFFF
    }
}

/// Element size of a string instruction (from its memory operand).
#[inline]
fn elem(i: &Insn) -> u32 {
    if i.ops[0].kind == OpK::Mem {
        i.size(0)
    } else {
        i.size(1)
    }
}

/// Bytes a REP MOVS/STOS may move in bulk per step (besides the REP_CHUNK
/// element-wise iterations), bounding the time between interrupt checks.
const BULK_BYTES: u32 = 64 << 10;

/// The bulk part of REP MOVS (`src` Some) or REP STOS (`src` None, `fill`
/// the element): while the next elements lie in one RAM page of each
/// operand, forward (DF clear), inside the segments and without alignment
/// checking, move them at once. Returns with ECX/ESI/EDI advanced past
/// what was moved; the element-wise loop does the rest (page crossings,
/// faults, MMIO, code pages), exactly as before.
fn rep_bulk(cpu: &mut Cpu, ctx: &mut Ctx, i: &Insn, size: u32, src: Option<usize>, fill: u32) {
    if i.rep == 0
        || cpu.state.flags.bits & flags::DF != 0
        || cpu.state.cpl == 3 && cpu.state.flags.bits & flags::AC != 0
    {
        return;
    }
    let cm = if i.addr32 { u32::MAX } else { 0xFFFF };
    let mut budget = BULK_BYTES;
    loop {
        let count = cpu.state.regs[ECX] & cm;
        let di = idx(cpu, EDI, i.addr32);
        let si = idx(cpu, ESI, i.addr32);
        // Elements whose bytes all lie at or below the index mask (no wrap).
        let room = |x: u32| ((cm as u64 + 1 - x as u64) / size as u64).min(u32::MAX as u64) as u32;
        let mut n = count.min(room(di)).min(budget / size);
        if src.is_some() {
            n = n.min(room(si));
        }
        if n == 0 {
            return;
        }
        let span = (n - 1) * size;
        let Ok(ld) = cpu.seg_check(Cpu::ES, di, size, true) else { return };
        if cpu.seg_check(Cpu::ES, di + span, size, true).is_err() {
            return;
        }
        n = n.min((PAGE_SIZE - (ld & 0xFFF)) / size);
        let ls = match src {
            Some(seg) => {
                let Ok(ls) = cpu.seg_check(seg, si, size, false) else { return };
                if cpu.seg_check(seg, si + span, size, false).is_err() {
                    return;
                }
                n = n.min((PAGE_SIZE - (ls & 0xFFF)) / size);
                Some(ls)
            }
            None => None,
        };
        if n == 0 {
            return;
        }
        // Translate as the element-wise accesses would (accessed and dirty
        // bits); a fault is left for the element-wise loop to raise.
        let cr2 = cpu.state.cr2;
        let Ok(pd) = cpu.translate(ctx, ld, Access::Write) else {
            cpu.state.cr2 = cr2;
            return;
        };
        let done = match ls {
            Some(ls) => {
                let Ok(ps) = cpu.translate(ctx, ls, Access::Read) else {
                    cpu.state.cr2 = cr2;
                    return;
                };
                ctx.mem.copy_ram(ps, pd, n * size)
            }
            None => ctx.mem.fill_ram(pd, &fill.to_le_bytes()[..size as usize], n),
        };
        if !done {
            return;
        }
        let bytes = n * size;
        let adv = |v: u32| (v & !cm) | (v.wrapping_add(bytes) & cm);
        cpu.state.regs[EDI] = adv(cpu.state.regs[EDI]);
        if src.is_some() {
            cpu.state.regs[ESI] = adv(cpu.state.regs[ESI]);
        }
        let c = cpu.state.regs[ECX];
        cpu.state.regs[ECX] = (c & !cm) | (c.wrapping_sub(n) & cm);
        budget -= bytes;
    }
}

pub(crate) fn movs(cpu: &mut Cpu, ctx: &mut Ctx, i: &Insn) -> Res<()> {
    let size = elem(i);
    rep_bulk(cpu, ctx, i, size, Some(Cpu::str_seg(i)), 0);
    rep(cpu, ctx, i, |cpu, ctx| {
        let v = cpu.read_mem(ctx, Cpu::str_seg(i), idx(cpu, ESI, i.addr32), size)?;
        cpu.write_mem(ctx, Cpu::ES, idx(cpu, EDI, i.addr32), size, v)?;
        advance(cpu, ESI, size, i.addr32);
        advance(cpu, EDI, size, i.addr32);
        Ok(true)
    })
}

pub(crate) fn stos(cpu: &mut Cpu, ctx: &mut Ctx, i: &Insn) -> Res<()> {
    let size = elem(i);
    let v = cpu.get_reg(EAX as u8, size);
    rep_bulk(cpu, ctx, i, size, None, v);
    rep(cpu, ctx, i, |cpu, ctx| {
        let v = cpu.get_reg(EAX as u8, size);
        cpu.write_mem(ctx, Cpu::ES, idx(cpu, EDI, i.addr32), size, v)?;
        advance(cpu, EDI, size, i.addr32);
        Ok(true)
    })
}

pub(crate) fn lods(cpu: &mut Cpu, ctx: &mut Ctx, i: &Insn) -> Res<()> {
    let size = elem(i);
    rep(cpu, ctx, i, |cpu, ctx| {
        let v = cpu.read_mem(ctx, Cpu::str_seg(i), idx(cpu, ESI, i.addr32), size)?;
        cpu.set_reg(EAX as u8, size, v);
        advance(cpu, ESI, size, i.addr32);
        Ok(true)
    })
}

#[inline]
fn rep_continue(cpu: &Cpu, i: &Insn) -> bool {
    match i.rep {
        REP_E => cpu.state.flags.get(ZF),
        REP_NE => !cpu.state.flags.get(ZF),
        _ => true,
    }
}

pub(crate) fn cmps(cpu: &mut Cpu, ctx: &mut Ctx, i: &Insn) -> Res<()> {
    let size = elem(i);
    rep(cpu, ctx, i, |cpu, ctx| {
        let a = cpu.read_mem(ctx, Cpu::str_seg(i), idx(cpu, ESI, i.addr32), size)?;
        let b = cpu.read_mem(ctx, Cpu::ES, idx(cpu, EDI, i.addr32), size)?;
        let r = a.wrapping_sub(b) & mask(size);
        cpu.state.flags.set_sub(a, b, r, false, sign(size), ARITH);
        advance(cpu, ESI, size, i.addr32);
        advance(cpu, EDI, size, i.addr32);
        Ok(rep_continue(cpu, i))
    })
}

pub(crate) fn scas(cpu: &mut Cpu, ctx: &mut Ctx, i: &Insn) -> Res<()> {
    let size = elem(i);
    rep(cpu, ctx, i, |cpu, ctx| {
        let a = cpu.get_reg(EAX as u8, size);
        let b = cpu.read_mem(ctx, Cpu::ES, idx(cpu, EDI, i.addr32), size)?;
        let r = a.wrapping_sub(b) & mask(size);
        cpu.state.flags.set_sub(a, b, r, false, sign(size), ARITH);
        advance(cpu, EDI, size, i.addr32);
        Ok(rep_continue(cpu, i))
    })
}

pub(crate) fn ins(cpu: &mut Cpu, ctx: &mut Ctx, i: &Insn) -> Res<()> {
    let size = elem(i);
    rep(cpu, ctx, i, |cpu, ctx| {
        let port = cpu.state.regs[EDX] as u16;
        cpu.check_io(ctx, port, size)?;
        // Check the destination before the port read has side effects.
        let off = idx(cpu, EDI, i.addr32);
        let lin = cpu.seg_check(Cpu::ES, off, size, true)?;
        cpu.probe_write(ctx, lin, size)?;
        ctx.bus.sync(cpu.instret);
        let v = ctx.bus.io_read(port, AccessSize::from_bytes(size)) & mask(size);
        cpu.write_mem(ctx, Cpu::ES, off, size, v)?;
        advance(cpu, EDI, size, i.addr32);
        Ok(true)
    })
}

pub(crate) fn outs(cpu: &mut Cpu, ctx: &mut Ctx, i: &Insn) -> Res<()> {
    let size = elem(i);
    rep(cpu, ctx, i, |cpu, ctx| {
        let port = cpu.state.regs[EDX] as u16;
        cpu.check_io(ctx, port, size)?;
        let v = cpu.read_mem(ctx, Cpu::str_seg(i), idx(cpu, ESI, i.addr32), size)?;
        ctx.bus.sync(cpu.instret);
        ctx.bus.io_write(port, AccessSize::from_bytes(size), v);
        cpu.stop |= ctx.bus.needs_service();
        advance(cpu, ESI, size, i.addr32);
        Ok(true)
    })
}
