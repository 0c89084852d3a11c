//! Control transfer and flag-control instructions: jumps, calls, returns,
//! loops, software interrupts, ENTER/LEAVE, HLT, CLI/STI and friends.

use super::decode::{Insn, OpK};
use super::exec::{mask, sext};
use super::flags::{self, CF, DF, OF};
use super::state::{SegReg, EBP, ECX, ESP};
use super::{Cpu, Ctx, Fault, IntSource, Res};

impl Cpu {
    /// Near jump to `target` (already masked to the operand size): #GP(0)
    /// beyond the CS limit.
    #[inline]
    pub(crate) fn jump_near(&mut self, target: u32) -> Res<()> {
        if target > self.state.segs[SegReg::Cs as usize].limit {
            return Err(Fault::gp(0));
        }
        self.next_eip = target;
        Ok(())
    }

    /// Relative branch target of `i`.
    #[inline]
    fn rel_target(&self, i: &Insn) -> u32 {
        self.next_eip.wrapping_add(i.imm) & mask(i.opsz as u32)
    }

    /// INT n / INT3 / INTO / INT1: deliver with the next instruction as the
    /// return address; a fault during delivery is a fault of this
    /// instruction.
    pub(crate) fn soft_int(&mut self, ctx: &mut Ctx, vector: u8, src: IntSource) -> Res<()> {
        let ret = self.next_eip;
        if self.state.protected() {
            self.deliver_protected(ctx, vector, None, ret, src)?;
        } else {
            self.deliver_real(ctx, vector, ret)?;
        }
        self.next_eip = self.state.eip;
        Ok(())
    }
}

pub(crate) fn jmp_rel(cpu: &mut Cpu, _: &mut Ctx, i: &Insn) -> Res<()> {
    let t = cpu.rel_target(i);
    cpu.jump_near(t)
}

pub(crate) fn jmp_near_ind(cpu: &mut Cpu, ctx: &mut Ctx, i: &Insn) -> Res<()> {
    let t = cpu.rd(ctx, i, 0)?;
    cpu.jump_near(t)
}

pub(crate) fn call_rel(cpu: &mut Cpu, ctx: &mut Ctx, i: &Insn) -> Res<()> {
    let t = cpu.rel_target(i);
    if t > cpu.state.segs[SegReg::Cs as usize].limit {
        return Err(Fault::gp(0));
    }
    cpu.push(ctx, cpu.next_eip, i.opsz as u32)?;
    cpu.next_eip = t;
    Ok(())
}

pub(crate) fn call_near_ind(cpu: &mut Cpu, ctx: &mut Ctx, i: &Insn) -> Res<()> {
    let t = cpu.rd(ctx, i, 0)?;
    if t > cpu.state.segs[SegReg::Cs as usize].limit {
        return Err(Fault::gp(0));
    }
    cpu.push(ctx, cpu.next_eip, i.opsz as u32)?;
    cpu.next_eip = t;
    Ok(())
}

/// Far pointer operand in memory: offset (operand size) then selector.
fn far_ptr_mem(cpu: &mut Cpu, ctx: &mut Ctx, i: &Insn) -> Res<(u16, u32)> {
    if i.ops[0].kind != OpK::Mem {
        return Err(Fault::UD);
    }
    let size = i.opsz as u32;
    let off = cpu.ea(i);
    let o = cpu.read_mem(ctx, i.seg as usize, off, size)?;
    let next = if i.addr32 { off.wrapping_add(size) } else { off.wrapping_add(size) & 0xFFFF };
    let sel = cpu.read_mem(ctx, i.seg as usize, next, 2)? as u16;
    Ok((sel, o))
}

pub(crate) fn jmp_far_imm(cpu: &mut Cpu, ctx: &mut Ctx, i: &Insn) -> Res<()> {
    cpu.far_jump(ctx, i.imm2 as u16, i.imm, i.opsz as u32)
}

pub(crate) fn jmp_far_mem(cpu: &mut Cpu, ctx: &mut Ctx, i: &Insn) -> Res<()> {
    let (sel, off) = far_ptr_mem(cpu, ctx, i)?;
    cpu.far_jump(ctx, sel, off, i.opsz as u32)
}

pub(crate) fn call_far_imm(cpu: &mut Cpu, ctx: &mut Ctx, i: &Insn) -> Res<()> {
    cpu.far_call(ctx, i.imm2 as u16, i.imm, i.opsz as u32)
}

pub(crate) fn call_far_mem(cpu: &mut Cpu, ctx: &mut Ctx, i: &Insn) -> Res<()> {
    let (sel, off) = far_ptr_mem(cpu, ctx, i)?;
    cpu.far_call(ctx, sel, off, i.opsz as u32)
}

pub(crate) fn jcc(cpu: &mut Cpu, _: &mut Ctx, i: &Insn) -> Res<()> {
    if cpu.state.flags.condition(i.cc) {
        let t = cpu.rel_target(i);
        cpu.jump_near(t)?;
    }
    Ok(())
}

pub(crate) fn jcxz(cpu: &mut Cpu, _: &mut Ctx, i: &Insn) -> Res<()> {
    let c = if i.addr32 { cpu.state.regs[ECX] } else { cpu.state.regs[ECX] & 0xFFFF };
    if c == 0 {
        let t = cpu.rel_target(i);
        cpu.jump_near(t)?;
    }
    Ok(())
}

/// LOOP (cc 0), LOOPE (1), LOOPNE (2): the count register follows the
/// address size.
pub(crate) fn loop_(cpu: &mut Cpu, _: &mut Ctx, i: &Insn) -> Res<()> {
    let cm = if i.addr32 { u32::MAX } else { 0xFFFF };
    let old = cpu.state.regs[ECX];
    let c = old.wrapping_sub(1) & cm;
    let zf = cpu.state.flags.get(flags::ZF);
    let take = c != 0
        && match i.cc {
            1 => zf,
            2 => !zf,
            _ => true,
        };
    if take {
        let t = cpu.rel_target(i);
        cpu.jump_near(t)?;
    }
    cpu.state.regs[ECX] = (old & !cm) | c;
    Ok(())
}

pub(crate) fn ret_near(cpu: &mut Cpu, ctx: &mut Ctx, i: &Insn) -> Res<()> {
    let size = i.opsz as u32;
    let t = cpu.peek_stack(ctx, 0, size)?;
    if t > cpu.state.segs[SegReg::Cs as usize].limit {
        return Err(Fault::gp(0));
    }
    let extra = if i.ops[0].kind == OpK::Imm { i.imm & 0xFFFF } else { 0 };
    let sp = cpu.state.regs[ESP].wrapping_add(size).wrapping_add(extra);
    cpu.set_sp(sp);
    cpu.next_eip = t;
    Ok(())
}

pub(crate) fn ret_far(cpu: &mut Cpu, ctx: &mut Ctx, i: &Insn) -> Res<()> {
    let extra = if i.ops[0].kind == OpK::Imm { i.imm & 0xFFFF } else { 0 };
    cpu.far_return(ctx, i.opsz as u32, extra)
}

pub(crate) fn iret(cpu: &mut Cpu, ctx: &mut Ctx, i: &Insn) -> Res<()> {
    cpu.iret(ctx, i.opsz as u32)
}

pub(crate) fn int_n(cpu: &mut Cpu, ctx: &mut Ctx, i: &Insn) -> Res<()> {
    if cpu.state.v86() && cpu.iopl() < 3 {
        return Err(Fault::gp(0));
    }
    cpu.soft_int(ctx, i.imm as u8, IntSource::Software)
}

pub(crate) fn int3(cpu: &mut Cpu, ctx: &mut Ctx, _: &Insn) -> Res<()> {
    cpu.soft_int(ctx, 3, IntSource::Software)
}

/// INT1/ICEBP (F1): a #DB trap delivered like a hardware exception (no
/// gate DPL check).
pub(crate) fn int1(cpu: &mut Cpu, ctx: &mut Ctx, _: &Insn) -> Res<()> {
    cpu.soft_int(ctx, 1, IntSource::Exception)
}

pub(crate) fn into(cpu: &mut Cpu, ctx: &mut Ctx, _: &Insn) -> Res<()> {
    if cpu.state.flags.get(OF) {
        cpu.soft_int(ctx, 4, IntSource::Software)?;
    }
    Ok(())
}

pub(crate) fn bound(cpu: &mut Cpu, ctx: &mut Ctx, i: &Insn) -> Res<()> {
    if i.ops[1].kind != OpK::Mem {
        return Err(Fault::UD);
    }
    let size = i.size(0);
    let idx = sext(cpu.rd(ctx, i, 0)?, size) as i32;
    let off = cpu.ea(i);
    let lo = sext(cpu.read_mem(ctx, i.seg as usize, off, size)?, size) as i32;
    let hi_off = if i.addr32 { off.wrapping_add(size) } else { off.wrapping_add(size) & 0xFFFF };
    let hi = sext(cpu.read_mem(ctx, i.seg as usize, hi_off, size)?, size) as i32;
    if idx < lo || idx > hi {
        return Err(Fault::BR);
    }
    Ok(())
}

pub(crate) fn enter(cpu: &mut Cpu, ctx: &mut Ctx, i: &Insn) -> Res<()> {
    let size = i.opsz as u32;
    let alloc = i.imm & 0xFFFF;
    let level = i.imm2 & 0x1F;
    let (old_esp, old_ebp) = (cpu.state.regs[ESP], cpu.state.regs[EBP]);
    let r = (|| {
        let sm = cpu.sp_mask();
        cpu.push(ctx, cpu.state.regs[EBP] & mask(size), size)?;
        let frame = cpu.state.regs[ESP] & sm;
        if level > 0 {
            let mut bp = cpu.state.regs[EBP];
            for _ in 1..level {
                bp = bp.wrapping_sub(size);
                let v = cpu.read_mem(ctx, SegReg::Ss as usize, bp & sm, size)?;
                cpu.push(ctx, v, size)?;
            }
            cpu.push(ctx, frame & mask(size), size)?;
        }
        // The new stack pointer must be writable: the P6 checks it.
        let new_sp = cpu.state.regs[ESP].wrapping_sub(alloc) & sm;
        let lin = cpu.seg_check(SegReg::Ss as usize, new_sp, size, true)?;
        cpu.probe_write(ctx, lin, size)?;
        cpu.set_reg(EBP as u8, size, frame);
        cpu.set_sp(new_sp);
        Ok(())
    })();
    if r.is_err() {
        cpu.state.regs[ESP] = old_esp;
        cpu.state.regs[EBP] = old_ebp;
    }
    r
}

pub(crate) fn leave(cpu: &mut Cpu, ctx: &mut Ctx, i: &Insn) -> Res<()> {
    let size = i.opsz as u32;
    let old_esp = cpu.state.regs[ESP];
    let sm = cpu.sp_mask();
    cpu.set_sp(cpu.state.regs[EBP] & sm);
    match cpu.pop(ctx, size) {
        Ok(v) => {
            cpu.set_reg(EBP as u8, size, v);
            Ok(())
        }
        Err(e) => {
            cpu.state.regs[ESP] = old_esp;
            Err(e)
        }
    }
}

pub(crate) fn hlt(cpu: &mut Cpu, _: &mut Ctx, _: &Insn) -> Res<()> {
    if cpu.state.cpl != 0 {
        return Err(Fault::gp(0));
    }
    cpu.state.halted = true;
    Ok(())
}

pub(crate) fn nop(_: &mut Cpu, _: &mut Ctx, _: &Insn) -> Res<()> {
    Ok(())
}

pub(crate) fn clc(cpu: &mut Cpu, _: &mut Ctx, _: &Insn) -> Res<()> {
    cpu.state.flags.set(CF, false);
    Ok(())
}

pub(crate) fn stc(cpu: &mut Cpu, _: &mut Ctx, _: &Insn) -> Res<()> {
    cpu.state.flags.set(CF, true);
    Ok(())
}

pub(crate) fn cmc(cpu: &mut Cpu, _: &mut Ctx, _: &Insn) -> Res<()> {
    let c = cpu.state.flags.cf();
    cpu.state.flags.set(CF, !c);
    Ok(())
}

pub(crate) fn cld(cpu: &mut Cpu, _: &mut Ctx, _: &Insn) -> Res<()> {
    cpu.state.flags.set(DF, false);
    Ok(())
}

pub(crate) fn std_(cpu: &mut Cpu, _: &mut Ctx, _: &Insn) -> Res<()> {
    cpu.state.flags.set(DF, true);
    Ok(())
}

/// CLI/STI are IOPL-sensitive in protected and V86 mode.
fn if_allowed(cpu: &Cpu) -> Res<()> {
    if cpu.state.protected() && cpu.state.cpl as u32 > cpu.iopl() {
        return Err(Fault::gp(0));
    }
    Ok(())
}

pub(crate) fn cli(cpu: &mut Cpu, _: &mut Ctx, _: &Insn) -> Res<()> {
    if_allowed(cpu)?;
    cpu.state.flags.set(flags::IF, false);
    Ok(())
}

pub(crate) fn sti(cpu: &mut Cpu, _: &mut Ctx, _: &Insn) -> Res<()> {
    if_allowed(cpu)?;
    if cpu.state.flags.bits & flags::IF == 0 {
        // Interrupts stay blocked until after the next instruction.
        cpu.state.int_shadow = true;
    }
    cpu.state.flags.set(flags::IF, true);
    Ok(())
}
