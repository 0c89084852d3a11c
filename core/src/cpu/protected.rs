//! Protected-mode mechanisms (SDM vol. 3, chapters 5-7): descriptor loads
//! with privilege checks, far transfers through call gates, returns to
//! outer levels, IDT delivery with stack switches, IRET (including to V86
//! and task returns), hardware task switches, and the I/O permission check.

use super::flags::{self, IF, NT, RF, TF, VM};
use super::state::{
    SegReg, Segment, CR0_TS, EAX, EBP, EBX, ECX, EDI, EDX, ESI, ESP, SEG_ACCESSED, SEG_CODE, SEG_DB, SEG_DC, SEG_G,
    SEG_P, SEG_RW, SEG_S,
};
use super::{Cpu, Ctx, Fault, IntSource, Res};

/// A raw 8-byte descriptor.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Desc {
    pub lo: u32,
    pub hi: u32,
}

impl Desc {
    pub fn present(&self) -> bool {
        self.hi & SEG_P != 0
    }
    pub fn dpl(&self) -> u8 {
        ((self.hi >> 13) & 3) as u8
    }
    /// S bit: code/data (true) or system (false).
    pub fn is_seg(&self) -> bool {
        self.hi & SEG_S != 0
    }
    pub fn is_code(&self) -> bool {
        self.is_seg() && self.hi & SEG_CODE != 0
    }
    pub fn is_data(&self) -> bool {
        self.is_seg() && self.hi & SEG_CODE == 0
    }
    pub fn conforming(&self) -> bool {
        self.is_code() && self.hi & SEG_DC != 0
    }
    pub fn readable(&self) -> bool {
        self.hi & SEG_RW != 0
    }
    /// System descriptor type (low 4 bits of the type field).
    pub fn sys_type(&self) -> u32 {
        (self.hi >> 8) & 0xF
    }
    pub fn base(&self) -> u32 {
        (self.lo >> 16) | ((self.hi & 0xFF) << 16) | (self.hi & 0xFF00_0000)
    }
    pub fn limit(&self) -> u32 {
        let l = (self.lo & 0xFFFF) | (self.hi & 0xF_0000);
        if self.hi & SEG_G != 0 {
            (l << 12) | 0xFFF
        } else {
            l
        }
    }
    pub fn segment(&self, selector: u16) -> Segment {
        Segment { selector, base: self.base(), limit: self.limit(), flags: self.hi & 0x00F0_FF00 }
    }
    /// Gate fields: target selector, offset, parameter count.
    pub fn gate_selector(&self) -> u16 {
        (self.lo >> 16) as u16
    }
    pub fn gate_offset(&self) -> u32 {
        if self.sys_type() & 8 != 0 {
            (self.lo & 0xFFFF) | (self.hi & 0xFFFF_0000)
        } else {
            self.lo & 0xFFFF
        }
    }
}

/// Why a task switch happens (SDM vol. 3, 7.3).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum SwitchKind {
    Jmp,
    Call,
    Iret,
}

const SEL_ERR: fn(u16) -> u32 = |s| (s & 0xFFFC) as u32;

impl Cpu {
    /// Read the descriptor for `sel` from the GDT or LDT; #GP(sel) beyond
    /// the table limit (the caller handles the null selector).
    pub(crate) fn read_desc(&mut self, ctx: &mut Ctx, sel: u16) -> Res<Desc> {
        self.read_desc_or(ctx, sel, Fault::gp(SEL_ERR(sel)))
    }

    fn read_desc_or(&mut self, ctx: &mut Ctx, sel: u16, err: Fault) -> Res<Desc> {
        let (base, limit) = if sel & 4 != 0 {
            if self.state.ldtr.selector & 0xFFFC == 0 {
                return Err(err);
            }
            (self.state.ldtr.base, self.state.ldtr.limit)
        } else {
            (self.state.gdtr.base, self.state.gdtr.limit)
        };
        let off = (sel & 0xFFF8) as u32;
        if off + 7 > limit {
            return Err(err);
        }
        let lo = self.read_lin_sys(ctx, base.wrapping_add(off), 4)?;
        let hi = self.read_lin_sys(ctx, base.wrapping_add(off + 4), 4)?;
        Ok(Desc { lo, hi })
    }

    /// Set the accessed bit of a code/data descriptor in memory.
    fn set_accessed(&mut self, ctx: &mut Ctx, sel: u16, d: &mut Desc) -> Res<()> {
        if d.hi & SEG_ACCESSED == 0 {
            d.hi |= SEG_ACCESSED;
            let base = if sel & 4 != 0 { self.state.ldtr.base } else { self.state.gdtr.base };
            self.write_lin_as(ctx, base.wrapping_add((sel & 0xFFF8) as u32 + 4), 4, d.hi, false)?;
        }
        Ok(())
    }

    /// Load a data or stack segment register (MOV, POP, LDS.. ).
    pub(crate) fn load_seg(&mut self, ctx: &mut Ctx, seg: SegReg, sel: u16) -> Res<()> {
        if !self.state.protected() || self.state.v86() {
            self.state.load_seg_real(seg, sel);
            return Ok(());
        }
        let cpl = self.state.cpl;
        let rpl = (sel & 3) as u8;
        if seg == SegReg::Ss {
            if sel & 0xFFFC == 0 {
                return Err(Fault::gp(0));
            }
            let mut d = self.read_desc(ctx, sel)?;
            if rpl != cpl || !d.is_data() || !d.readable() || d.dpl() != cpl {
                return Err(Fault::gp(SEL_ERR(sel)));
            }
            if !d.present() {
                return Err(Fault::ss(SEL_ERR(sel)));
            }
            self.set_accessed(ctx, sel, &mut d)?;
            self.state.segs[seg as usize] = d.segment(sel);
            return Ok(());
        }
        if sel & 0xFFFC == 0 {
            self.state.segs[seg as usize] = Segment { selector: sel, base: 0, limit: 0, flags: 0 };
            return Ok(());
        }
        let mut d = self.read_desc(ctx, sel)?;
        let ok_type = d.is_data() || (d.is_code() && d.readable());
        let ok_priv = (d.is_code() && d.conforming()) || d.dpl() >= cpl.max(rpl);
        if !ok_type || !ok_priv {
            return Err(Fault::gp(SEL_ERR(sel)));
        }
        if !d.present() {
            return Err(Fault::np(SEL_ERR(sel)));
        }
        self.set_accessed(ctx, sel, &mut d)?;
        self.state.segs[seg as usize] = d.segment(sel);
        Ok(())
    }

    /// Load CS with a checked code descriptor at privilege `cpl`.
    fn set_cs(&mut self, ctx: &mut Ctx, sel: u16, mut d: Desc, cpl: u8) -> Res<()> {
        self.set_accessed(ctx, sel, &mut d)?;
        let mut s = d.segment((sel & 0xFFFC) | cpl as u16);
        s.flags |= SEG_ACCESSED;
        self.state.segs[SegReg::Cs as usize] = s;
        self.state.cpl = cpl;
        Ok(())
    }

    /// Checks on a code-segment target of JMP/CALL (SDM vol. 3, 5.8.1).
    fn check_code_target(&self, sel: u16, d: &Desc) -> Res<()> {
        let cpl = self.state.cpl;
        if !d.is_code() {
            return Err(Fault::gp(SEL_ERR(sel)));
        }
        if d.conforming() {
            if d.dpl() > cpl {
                return Err(Fault::gp(SEL_ERR(sel)));
            }
        } else if (sel & 3) as u8 > cpl || d.dpl() != cpl {
            return Err(Fault::gp(SEL_ERR(sel)));
        }
        if !d.present() {
            return Err(Fault::np(SEL_ERR(sel)));
        }
        Ok(())
    }

    /// JMP ptr16:16/32 and JMP m16:16/32.
    pub(crate) fn far_jump(&mut self, ctx: &mut Ctx, sel: u16, off: u32, opsz: u32) -> Res<()> {
        let off = if opsz == 2 { off & 0xFFFF } else { off };
        if !self.state.protected() || self.state.v86() {
            // The target must lie within the CS limit, checked before the
            // transfer (the limit survives a real-mode CS load).
            if off > self.state.segs[SegReg::Cs as usize].limit {
                return Err(Fault::gp(0));
            }
            self.state.load_seg_real(SegReg::Cs, sel);
            self.next_eip = off;
            return Ok(());
        }
        if sel & 0xFFFC == 0 {
            return Err(Fault::gp(0));
        }
        let d = self.read_desc(ctx, sel)?;
        if d.is_seg() {
            self.check_code_target(sel, &d)?;
            if off > d.limit() {
                return Err(Fault::gp(0));
            }
            let cpl = self.state.cpl;
            self.set_cs(ctx, sel, d, cpl)?;
            self.next_eip = off;
            return Ok(());
        }
        match d.sys_type() {
            4 | 0xC => {
                let cpl = self.state.cpl;
                if d.dpl() < cpl || d.dpl() < (sel & 3) as u8 {
                    return Err(Fault::gp(SEL_ERR(sel)));
                }
                if !d.present() {
                    return Err(Fault::np(SEL_ERR(sel)));
                }
                let tsel = d.gate_selector();
                if tsel & 0xFFFC == 0 {
                    return Err(Fault::gp(0));
                }
                let td = self.read_desc(ctx, tsel)?;
                if !td.is_code() || (td.conforming() && td.dpl() > cpl) || (!td.conforming() && td.dpl() != cpl) {
                    return Err(Fault::gp(SEL_ERR(tsel)));
                }
                if !td.present() {
                    return Err(Fault::np(SEL_ERR(tsel)));
                }
                let toff = d.gate_offset();
                if toff > td.limit() {
                    return Err(Fault::gp(0));
                }
                self.set_cs(ctx, tsel, td, cpl)?;
                self.next_eip = toff;
                Ok(())
            }
            1 | 9 | 5 => self.task_gate_or_tss(ctx, sel, d, SwitchKind::Jmp),
            _ => Err(Fault::gp(SEL_ERR(sel))),
        }
    }

    /// JMP/CALL to a TSS or task gate.
    fn task_gate_or_tss(&mut self, ctx: &mut Ctx, sel: u16, d: Desc, kind: SwitchKind) -> Res<()> {
        let cpl = self.state.cpl;
        if d.dpl() < cpl || d.dpl() < (sel & 3) as u8 {
            return Err(Fault::gp(SEL_ERR(sel)));
        }
        if !d.present() {
            return Err(Fault::np(SEL_ERR(sel)));
        }
        let (tss_sel, tss) = if d.sys_type() == 5 {
            let tsel = d.gate_selector();
            if tsel & 4 != 0 || tsel & 0xFFFC == 0 {
                return Err(Fault::gp(SEL_ERR(tsel)));
            }
            let td = self.read_desc(ctx, tsel)?;
            (tsel, td)
        } else {
            (sel, d)
        };
        self.task_switch(ctx, tss_sel, tss, kind, None)
    }

    /// CALL ptr16:16/32 and CALL m16:16/32.
    pub(crate) fn far_call(&mut self, ctx: &mut Ctx, sel: u16, off: u32, opsz: u32) -> Res<()> {
        let off = if opsz == 2 { off & 0xFFFF } else { off };
        if !self.state.protected() || self.state.v86() {
            if off > self.state.segs[SegReg::Cs as usize].limit {
                return Err(Fault::gp(0));
            }
            let (old_esp, cs) = (self.state.regs[ESP], self.state.segs[SegReg::Cs as usize].selector);
            self.push(ctx, cs as u32, opsz)?;
            if let Err(e) = self.push(ctx, self.next_eip, opsz) {
                self.state.regs[ESP] = old_esp;
                return Err(e);
            }
            self.state.load_seg_real(SegReg::Cs, sel);
            self.next_eip = off;
            return Ok(());
        }
        if sel & 0xFFFC == 0 {
            return Err(Fault::gp(0));
        }
        let d = self.read_desc(ctx, sel)?;
        let cpl = self.state.cpl;
        if d.is_seg() {
            self.check_code_target(sel, &d)?;
            if off > d.limit() {
                return Err(Fault::gp(0));
            }
            self.push_return(ctx, opsz)?;
            self.set_cs(ctx, sel, d, cpl)?;
            self.next_eip = off;
            return Ok(());
        }
        match d.sys_type() {
            4 | 0xC => {
                if d.dpl() < cpl || d.dpl() < (sel & 3) as u8 {
                    return Err(Fault::gp(SEL_ERR(sel)));
                }
                if !d.present() {
                    return Err(Fault::np(SEL_ERR(sel)));
                }
                let tsel = d.gate_selector();
                if tsel & 0xFFFC == 0 {
                    return Err(Fault::gp(0));
                }
                let td = self.read_desc(ctx, tsel)?;
                if !td.is_code() || td.dpl() > cpl {
                    return Err(Fault::gp(SEL_ERR(tsel)));
                }
                if !td.present() {
                    return Err(Fault::np(SEL_ERR(tsel)));
                }
                let toff = d.gate_offset();
                let gsize = if d.sys_type() & 8 != 0 { 4 } else { 2 };
                if !td.conforming() && td.dpl() < cpl {
                    self.call_gate_inner(ctx, &d, tsel, td, toff, gsize)
                } else {
                    if toff > td.limit() {
                        return Err(Fault::gp(0));
                    }
                    self.push_return(ctx, gsize)?;
                    self.set_cs(ctx, tsel, td, cpl)?;
                    self.next_eip = toff;
                    Ok(())
                }
            }
            1 | 9 | 5 => self.task_gate_or_tss(ctx, sel, d, SwitchKind::Call),
            _ => Err(Fault::gp(SEL_ERR(sel))),
        }
    }

    /// Push CS and the return EIP, all-or-nothing.
    fn push_return(&mut self, ctx: &mut Ctx, size: u32) -> Res<()> {
        let old = self.state.regs[ESP];
        let cs = self.state.segs[SegReg::Cs as usize].selector as u32;
        let r = self.push(ctx, cs, size).and_then(|_| self.push(ctx, self.next_eip, size));
        if r.is_err() {
            self.state.regs[ESP] = old;
        }
        r
    }

    /// Stack for privilege level `dpl` from the current TSS.
    fn tss_stack(&mut self, ctx: &mut Ctx, dpl: u8) -> Res<(u16, u32)> {
        let tr = self.state.tr;
        let tss32 = tr.flags & (8 << 8) != 0;
        let (off, ssoff, size) = if tss32 {
            (4 + dpl as u32 * 8, 8 + dpl as u32 * 8, 4)
        } else {
            (2 + dpl as u32 * 4, 4 + dpl as u32 * 4, 2)
        };
        if ssoff + 1 > tr.limit {
            return Err(Fault::ts(SEL_ERR(tr.selector)));
        }
        let esp = self.read_lin_sys(ctx, tr.base.wrapping_add(off), size)?;
        let ss = self.read_lin_sys(ctx, tr.base.wrapping_add(ssoff), 2)? as u16;
        Ok((ss, esp))
    }

    /// Check and build the inner stack segment for a privilege change.
    fn inner_stack(&mut self, ctx: &mut Ctx, ss: u16, dpl: u8, ext: u32) -> Res<Segment> {
        if ss & 0xFFFC == 0 {
            return Err(Fault::ts(ext));
        }
        let mut d = self.read_desc_or(ctx, ss, Fault::ts(SEL_ERR(ss) | ext))?;
        if (ss & 3) as u8 != dpl || d.dpl() != dpl || !d.is_data() || !d.readable() {
            return Err(Fault::ts(SEL_ERR(ss) | ext));
        }
        if !d.present() {
            return Err(Fault::ss(SEL_ERR(ss) | ext));
        }
        self.set_accessed(ctx, ss, &mut d)?;
        Ok(d.segment(ss))
    }

    /// Call through a gate to a more privileged non-conforming segment:
    /// switch stacks, copy parameters (SDM vol. 3, 5.8.5).
    fn call_gate_inner(&mut self, ctx: &mut Ctx, gate: &Desc, tsel: u16, td: Desc, toff: u32, gsize: u32) -> Res<()> {
        let dpl = td.dpl();
        let (nss, nesp) = self.tss_stack(ctx, dpl)?;
        let new_ss = self.inner_stack(ctx, nss, dpl, 0)?;
        if toff > td.limit() {
            return Err(Fault::gp(0));
        }
        let nparams = gate.hi & 0x1F;
        let mut params = [0u32; 32];
        for (k, p) in params.iter_mut().enumerate().take(nparams as usize) {
            *p = self.peek_stack(ctx, k as u32 * gsize, gsize)?;
        }
        let saved = self.save_for_rollback();
        let old_ss = self.state.segs[SegReg::Ss as usize].selector as u32;
        let old_esp = self.state.regs[ESP];
        let old_cs = self.state.segs[SegReg::Cs as usize].selector as u32;
        self.state.segs[SegReg::Ss as usize] = new_ss;
        self.state.regs[ESP] = nesp;
        self.state.cpl = dpl;
        let r = (|| {
            self.push(ctx, old_ss, gsize)?;
            self.push(ctx, old_esp, gsize)?;
            for k in (0..nparams as usize).rev() {
                self.push(ctx, params[k], gsize)?;
            }
            self.push(ctx, old_cs, gsize)?;
            self.push(ctx, self.next_eip, gsize)?;
            self.set_cs(ctx, tsel, td, dpl)
        })();
        match r {
            Ok(()) => {
                self.next_eip = toff;
                Ok(())
            }
            Err(e) => {
                self.rollback(saved);
                Err(e)
            }
        }
    }

    fn save_for_rollback(&self) -> ([Segment; 6], u32, u8, u32) {
        (self.state.segs, self.state.regs[ESP], self.state.cpl, self.state.flags.value())
    }

    fn rollback(&mut self, s: ([Segment; 6], u32, u8, u32)) {
        self.state.segs = s.0;
        self.state.regs[ESP] = s.1;
        self.state.cpl = s.2;
        self.state.flags.load(s.3, u32::MAX);
    }

    /// After a return to an outer level: data segments the new CPL may not
    /// use become null (SDM vol. 3, 5.8.6 step 10).
    fn null_inaccessible_segs(&mut self) {
        let cpl = self.state.cpl;
        for s in [SegReg::Es, SegReg::Ds, SegReg::Fs, SegReg::Gs] {
            let seg = &mut self.state.segs[s as usize];
            let conforming_code = seg.flags & SEG_CODE != 0 && seg.flags & SEG_DC != 0;
            if seg.flags & SEG_P != 0 && !conforming_code && seg.dpl() < cpl {
                *seg = Segment { selector: 0, base: 0, limit: 0, flags: 0 };
            }
        }
    }

    /// RETF [imm16].
    pub(crate) fn far_return(&mut self, ctx: &mut Ctx, opsz: u32, extra: u32) -> Res<()> {
        let eip = self.peek_stack(ctx, 0, opsz)?;
        let sel = self.peek_stack(ctx, opsz, opsz)? as u16;
        if !self.state.protected() || self.state.v86() {
            let eip = if opsz == 2 { eip & 0xFFFF } else { eip };
            if eip > 0xFFFF && !self.state.v86() && eip > self.state.segs[SegReg::Cs as usize].limit {
                return Err(Fault::gp(0));
            }
            self.state.load_seg_real(SegReg::Cs, sel);
            self.next_eip = eip;
            let sp = self.state.regs[ESP].wrapping_add(2 * opsz + extra);
            self.set_sp(sp);
            return Ok(());
        }
        self.return_protected(ctx, eip, sel, opsz, extra, None)
    }

    /// Common tail of RETF/IRET in protected mode; `flags` is the popped
    /// EFLAGS for IRET.
    fn return_protected(
        &mut self,
        ctx: &mut Ctx,
        eip: u32,
        sel: u16,
        opsz: u32,
        extra: u32,
        flags: Option<u32>,
    ) -> Res<()> {
        let cpl = self.state.cpl;
        if sel & 0xFFFC == 0 {
            return Err(Fault::gp(0));
        }
        let d = self.read_desc(ctx, sel)?;
        let rpl = (sel & 3) as u8;
        if !d.is_code() || rpl < cpl || (d.conforming() && d.dpl() > rpl) || (!d.conforming() && d.dpl() != rpl) {
            return Err(Fault::gp(SEL_ERR(sel)));
        }
        if !d.present() {
            return Err(Fault::np(SEL_ERR(sel)));
        }
        let eip = if opsz == 2 { eip & 0xFFFF } else { eip };
        let frame = if flags.is_some() { 3 * opsz } else { 2 * opsz };
        if rpl == cpl {
            if eip > d.limit() {
                return Err(Fault::gp(0));
            }
            self.set_cs(ctx, sel, d, cpl)?;
            let sp = self.state.regs[ESP].wrapping_add(frame + extra);
            self.set_sp(sp);
            if let Some(f) = flags {
                self.write_flags_iret(f, opsz, cpl);
            }
            self.next_eip = eip;
            return Ok(());
        }
        // Return to an outer level: pop the outer SS:ESP too.
        let nesp = self.peek_stack(ctx, frame + extra, opsz)?;
        let nss = self.peek_stack(ctx, frame + extra + opsz, opsz)? as u16;
        if nss & 0xFFFC == 0 {
            return Err(Fault::gp(0));
        }
        let sd = self.read_desc(ctx, nss)?;
        if (nss & 3) as u8 != rpl || !sd.is_data() || !sd.readable() || sd.dpl() != rpl {
            return Err(Fault::gp(SEL_ERR(nss)));
        }
        if !sd.present() {
            return Err(Fault::ss(SEL_ERR(nss)));
        }
        if eip > d.limit() {
            return Err(Fault::gp(0));
        }
        if let Some(f) = flags {
            // Flags are loaded with the privilege of the current level.
            self.write_flags_iret(f, opsz, cpl);
        }
        self.set_cs(ctx, sel, d, rpl)?;
        let mut sd = sd;
        self.set_accessed(ctx, nss, &mut sd)?;
        self.state.segs[SegReg::Ss as usize] = sd.segment(nss);
        let big = sd.hi & SEG_DB != 0;
        let nesp = if opsz == 2 { nesp & 0xFFFF } else { nesp };
        let nesp = nesp.wrapping_add(extra);
        if big {
            self.state.regs[ESP] = nesp;
        } else {
            self.state.set_reg16(ESP, nesp as u16);
        }
        self.null_inaccessible_segs();
        self.next_eip = eip;
        Ok(())
    }

    /// EFLAGS as IRET loads them in protected mode (SDM vol. 2 IRET).
    fn write_flags_iret(&mut self, v: u32, opsz: u32, cpl: u8) {
        let mut m = flags::SETTABLE & !(VM | flags::VIP | flags::VIF);
        if opsz == 2 {
            m &= 0xFFFF;
        } else {
            m |= flags::VIP | flags::VIF;
        }
        if cpl > 0 {
            m &= !flags::IOPL;
            m &= !(flags::VIP | flags::VIF);
        }
        if cpl as u32 > self.iopl() {
            m &= !IF;
        }
        self.state.flags.load(v, m);
    }

    /// IRET / IRETD.
    pub(crate) fn iret(&mut self, ctx: &mut Ctx, opsz: u32) -> Res<()> {
        if !self.state.protected() {
            let eip = self.peek_stack(ctx, 0, opsz)?;
            let sel = self.peek_stack(ctx, opsz, opsz)? as u16;
            let fl = self.peek_stack(ctx, 2 * opsz, opsz)?;
            let eip = if opsz == 2 { eip & 0xFFFF } else { eip };
            if eip > self.state.segs[SegReg::Cs as usize].limit {
                return Err(Fault::gp(0));
            }
            self.state.load_seg_real(SegReg::Cs, sel);
            let sp = self.state.regs[ESP].wrapping_add(3 * opsz);
            self.set_sp(sp);
            if opsz == 2 {
                self.state.flags.load(fl, 0xFFFF);
            } else {
                // Real-mode IRETD keeps VM, VIP and VIF (SDM vol. 2 IRET).
                self.state.flags.load(fl, 0x0025_7FD5);
            }
            self.next_eip = eip;
            return Ok(());
        }
        if self.state.v86() {
            if self.iopl() < 3 {
                return Err(Fault::gp(0));
            }
            let eip = self.peek_stack(ctx, 0, opsz)?;
            let sel = self.peek_stack(ctx, opsz, opsz)? as u16;
            let fl = self.peek_stack(ctx, 2 * opsz, opsz)?;
            let eip = if opsz == 2 { eip & 0xFFFF } else { eip };
            if eip > 0xFFFF {
                return Err(Fault::gp(0));
            }
            self.state.load_seg_real(SegReg::Cs, sel);
            let sp = self.state.regs[ESP].wrapping_add(3 * opsz);
            self.set_sp(sp);
            let mut m = flags::SETTABLE & !(VM | flags::IOPL | flags::VIP | flags::VIF);
            if opsz == 2 {
                m &= 0xFFFF;
            }
            self.state.flags.load(fl, m);
            self.next_eip = eip;
            return Ok(());
        }
        if self.state.flags.bits & NT != 0 {
            // Return from a nested task through the TSS back link.
            let tr = self.state.tr;
            let link = self.read_lin_sys(ctx, tr.base, 2)? as u16;
            if link & 4 != 0 || link & 0xFFFC == 0 {
                return Err(Fault::ts(SEL_ERR(link)));
            }
            let d = self.read_desc_or(ctx, link, Fault::ts(SEL_ERR(link)))?;
            if d.is_seg() || !(d.sys_type() == 3 || d.sys_type() == 0xB) {
                return Err(Fault::ts(SEL_ERR(link)));
            }
            return self.task_switch(ctx, link, d, SwitchKind::Iret, None);
        }
        let eip = self.peek_stack(ctx, 0, opsz)?;
        let sel = self.peek_stack(ctx, opsz, opsz)? as u16;
        let fl = self.peek_stack(ctx, 2 * opsz, opsz)?;
        if opsz == 4 && fl & VM != 0 && self.state.cpl == 0 {
            return self.iret_to_v86(ctx, eip, sel, fl);
        }
        self.return_protected(ctx, eip, sel, opsz, 0, Some(fl))
    }

    /// IRETD from CPL 0 with VM set in the popped EFLAGS (SDM vol. 3, 20.3.3).
    fn iret_to_v86(&mut self, ctx: &mut Ctx, eip: u32, cs: u16, fl: u32) -> Res<()> {
        let mut vals = [0u32; 6];
        for (k, v) in vals.iter_mut().enumerate() {
            *v = self.peek_stack(ctx, 12 + 4 * k as u32, 4)?;
        }
        let [esp, ss, es, ds, fs, gs] = vals;
        self.state.flags.load(fl, flags::SETTABLE);
        self.state.cpl = 3;
        for (s, v) in [
            (SegReg::Cs, cs as u32),
            (SegReg::Ss, ss),
            (SegReg::Es, es),
            (SegReg::Ds, ds),
            (SegReg::Fs, fs),
            (SegReg::Gs, gs),
        ] {
            self.state.load_seg_real(s, v as u16);
        }
        self.state.regs[ESP] = esp;
        self.next_eip = eip & 0xFFFF;
        Ok(())
    }

    /// Deliver an interrupt or exception through the IDT (SDM vol. 3, 6.12).
    pub(crate) fn deliver_protected(
        &mut self,
        ctx: &mut Ctx,
        vector: u8,
        error: Option<u32>,
        ret_eip: u32,
        src: IntSource,
    ) -> Res<()> {
        // EXT: the event being delivered is external to the program -- a
        // hardware interrupt or an exception, with or without an error
        // code; only INT n/INT3/INTO clear it (SDM vol. 3, 6.13).
        let ext = (src != IntSource::Software) as u32;
        let idt_err = vector as u32 * 8 + 2 + ext;
        if vector as u32 * 8 + 7 > self.state.idtr.limit {
            return Err(Fault::gp(idt_err));
        }
        let base = self.state.idtr.base.wrapping_add(vector as u32 * 8);
        let gate = Desc { lo: self.read_lin_sys(ctx, base, 4)?, hi: self.read_lin_sys(ctx, base.wrapping_add(4), 4)? };
        let ty = gate.sys_type();
        if gate.is_seg() || !matches!(ty, 5 | 6 | 7 | 0xE | 0xF) {
            return Err(Fault::gp(idt_err));
        }
        if src == IntSource::Software && gate.dpl() < self.state.cpl {
            return Err(Fault::gp(idt_err));
        }
        if !gate.present() {
            return Err(Fault::np(idt_err));
        }
        if ty == 5 {
            let tsel = gate.gate_selector();
            let td = self.read_desc_or(ctx, tsel, Fault::gp(SEL_ERR(tsel)))?;
            self.next_eip = ret_eip;
            self.task_switch(ctx, tsel, td, SwitchKind::Call, error)?;
            self.state.eip = self.next_eip;
            return Ok(());
        }
        let gsize = if ty & 8 != 0 { 4 } else { 2 };
        let tsel = gate.gate_selector();
        if tsel & 0xFFFC == 0 {
            return Err(Fault::gp(ext));
        }
        let td = self.read_desc_or(ctx, tsel, Fault::gp(SEL_ERR(tsel) | ext))?;
        if !td.is_code() || td.dpl() > self.state.cpl {
            return Err(Fault::gp(SEL_ERR(tsel) | ext));
        }
        if !td.present() {
            return Err(Fault::np(SEL_ERR(tsel) | ext));
        }
        let toff = gate.gate_offset();
        let old_flags = self.state.eflags();
        let from_v86 = self.state.v86();
        let saved = self.save_for_rollback();
        let old_ss = self.state.segs[SegReg::Ss as usize].selector as u32;
        let old_esp = self.state.regs[ESP];
        let old_cs = self.state.segs[SegReg::Cs as usize].selector as u32;
        let r = (|| {
            if !td.conforming() && td.dpl() < self.state.cpl {
                let dpl = td.dpl();
                if from_v86 && dpl != 0 {
                    return Err(Fault::gp(SEL_ERR(tsel) | ext));
                }
                let (nss, nesp) = self.tss_stack(ctx, dpl)?;
                let new_ss = self.inner_stack(ctx, nss, dpl, ext)?;
                self.state.segs[SegReg::Ss as usize] = new_ss;
                self.state.regs[ESP] = nesp;
                self.state.cpl = dpl;
                self.state.flags.set(VM, false);
                if from_v86 {
                    for s in [SegReg::Gs, SegReg::Fs, SegReg::Ds, SegReg::Es] {
                        let v = self.state.segs[s as usize].selector as u32;
                        self.push(ctx, v, gsize)?;
                    }
                }
                self.push(ctx, old_ss, gsize)?;
                self.push(ctx, old_esp, gsize)?;
            } else if from_v86 {
                return Err(Fault::gp(SEL_ERR(tsel) | ext));
            }
            self.push(ctx, old_flags, gsize)?;
            self.push(ctx, old_cs, gsize)?;
            self.push(ctx, ret_eip, gsize)?;
            if let Some(e) = error {
                self.push(ctx, e, gsize)?;
            }
            if toff > td.limit() {
                return Err(Fault::gp(ext));
            }
            let cpl = self.state.cpl;
            self.set_cs(ctx, tsel, td, cpl)
        })();
        if let Err(e) = r {
            self.rollback(saved);
            return Err(e);
        }
        if from_v86 {
            for s in [SegReg::Gs, SegReg::Fs, SegReg::Ds, SegReg::Es] {
                self.state.segs[s as usize] = Segment { selector: 0, base: 0, limit: 0, flags: 0 };
            }
        }
        self.state.flags.set(TF, false);
        self.state.flags.set(NT, false);
        self.state.flags.set(RF, false);
        self.state.flags.set(VM, false);
        if ty & 1 == 0 {
            self.state.flags.set(IF, false);
        }
        self.state.eip = toff;
        Ok(())
    }

    /// Hardware task switch (SDM vol. 3, 7.3). `tss` is the descriptor of
    /// the new task's TSS; `error` is pushed on the new stack for
    /// exceptions delivered through a task gate.
    pub(crate) fn task_switch(
        &mut self,
        ctx: &mut Ctx,
        sel: u16,
        tss: Desc,
        kind: SwitchKind,
        error: Option<u32>,
    ) -> Res<()> {
        let ty = tss.sys_type();
        let busy = ty == 3 || ty == 0xB;
        if tss.is_seg() || !matches!(ty, 1 | 3 | 9 | 0xB) || (kind == SwitchKind::Iret) != busy {
            return Err(Fault::gp(SEL_ERR(sel)));
        }
        if !tss.present() {
            return Err(Fault::np(SEL_ERR(sel)));
        }
        let new32 = ty & 8 != 0;
        let min_limit = if new32 { 0x67 } else { 0x2B };
        if tss.limit() < min_limit {
            return Err(Fault::ts(SEL_ERR(sel)));
        }
        // Save the outgoing task.
        let old = self.state.tr;
        let old32 = old.flags & (8 << 8) != 0;
        let mut fl = self.state.eflags();
        if kind == SwitchKind::Iret {
            fl &= !NT;
        }
        let regs = self.state.regs;
        let b = old.base;
        if old32 {
            self.write_lin_as(ctx, b.wrapping_add(0x20), 4, self.next_eip, false)?;
            self.write_lin_as(ctx, b.wrapping_add(0x24), 4, fl, false)?;
            for (k, r) in regs.iter().enumerate() {
                self.write_lin_as(ctx, b.wrapping_add(0x28 + 4 * k as u32), 4, *r, false)?;
            }
            for k in 0..6 {
                self.write_lin_as(
                    ctx,
                    b.wrapping_add(0x48 + 4 * k as u32),
                    2,
                    self.state.segs[k].selector as u32,
                    false,
                )?;
            }
        } else {
            self.write_lin_as(ctx, b.wrapping_add(0x0E), 2, self.next_eip, false)?;
            self.write_lin_as(ctx, b.wrapping_add(0x10), 2, fl, false)?;
            for (k, r) in regs.iter().enumerate() {
                self.write_lin_as(ctx, b.wrapping_add(0x12 + 2 * k as u32), 2, *r, false)?;
            }
            for k in 0..4 {
                self.write_lin_as(
                    ctx,
                    b.wrapping_add(0x22 + 2 * k as u32),
                    2,
                    self.state.segs[k].selector as u32,
                    false,
                )?;
            }
        }
        // Busy bits: clear the old one on JMP/IRET, set the new one unless IRET.
        if kind != SwitchKind::Call {
            let mut od = self.read_desc(ctx, old.selector)?;
            od.hi &= !(2 << 8);
            self.write_lin_as(
                ctx,
                self.state.gdtr.base.wrapping_add((old.selector & 0xFFF8) as u32 + 4),
                4,
                od.hi,
                false,
            )?;
        }
        let nb = tss.base();
        let mut nd = tss;
        if kind != SwitchKind::Iret {
            nd.hi |= 2 << 8;
            self.write_lin_as(ctx, self.state.gdtr.base.wrapping_add((sel & 0xFFF8) as u32 + 4), 4, nd.hi, false)?;
        }
        if matches!(kind, SwitchKind::Call) {
            self.write_lin_as(ctx, nb, 2, old.selector as u32, false)?;
        }
        // Load the incoming task.
        let (cr3, eip, nfl, nregs, sels, ldt) = if new32 {
            let mut r = [0u32; 8];
            for (k, v) in r.iter_mut().enumerate() {
                *v = self.read_lin_sys(ctx, nb.wrapping_add(0x28 + 4 * k as u32), 4)?;
            }
            let mut s = [0u16; 6];
            for (k, v) in s.iter_mut().enumerate() {
                *v = self.read_lin_sys(ctx, nb.wrapping_add(0x48 + 4 * k as u32), 2)? as u16;
            }
            (
                Some(self.read_lin_sys(ctx, nb.wrapping_add(0x1C), 4)?),
                self.read_lin_sys(ctx, nb.wrapping_add(0x20), 4)?,
                self.read_lin_sys(ctx, nb.wrapping_add(0x24), 4)?,
                r,
                s,
                self.read_lin_sys(ctx, nb.wrapping_add(0x60), 2)? as u16,
            )
        } else {
            let mut r = [0u32; 8];
            for (k, v) in r.iter_mut().enumerate() {
                *v = 0xFFFF_0000 | self.read_lin_sys(ctx, nb.wrapping_add(0x12 + 2 * k as u32), 2)?;
            }
            let mut s = [0u16; 6];
            for (k, v) in s.iter_mut().enumerate().take(4) {
                *v = self.read_lin_sys(ctx, nb.wrapping_add(0x22 + 2 * k as u32), 2)? as u16;
            }
            (
                None,
                self.read_lin_sys(ctx, nb.wrapping_add(0x0E), 2)?,
                self.read_lin_sys(ctx, nb.wrapping_add(0x10), 2)? | (fl & 0xFFFF_0000 & !VM),
                r,
                s,
                self.read_lin_sys(ctx, nb.wrapping_add(0x2A), 2)? as u16,
            )
        };
        self.state.tr = nd.segment(sel);
        self.state.cr0 |= CR0_TS;
        // Local breakpoint enables belong to the old task (SDM 3, 17.2.4).
        self.state.dr[7] &= !0x55;
        if let Some(cr3) = cr3 {
            if self.state.cr0 & super::state::CR0_PG != 0 {
                self.state.cr3 = cr3;
                self.tlb.flush_non_global();
            }
        }
        for (k, v) in nregs.iter().enumerate() {
            if new32 {
                self.state.regs[k] = *v;
            } else {
                self.state.regs[k] = (self.state.regs[k] & 0xFFFF_0000) | (*v & 0xFFFF);
            }
        }
        let mut nfl = nfl;
        if kind == SwitchKind::Call {
            nfl |= NT;
        }
        self.state.flags.load(nfl, flags::SETTABLE);
        self.next_eip = eip;
        // Segment registers: load selectors first, then check descriptors
        // in the new task's context (faults now belong to the new task).
        let v86 = nfl & VM != 0;
        self.state.cpl = if v86 { 3 } else { (sels[SegReg::Cs as usize] & 3) as u8 };
        self.state.ldtr = Segment { selector: ldt, base: 0, limit: 0, flags: 0 };
        if ldt & 0xFFFC != 0 {
            let d = self.read_desc_or(ctx, ldt, Fault::ts(SEL_ERR(ldt)))?;
            if d.is_seg() || d.sys_type() != 2 {
                return Err(Fault::ts(SEL_ERR(ldt)));
            }
            self.state.ldtr = d.segment(ldt);
        }
        if v86 {
            for s in SegReg::ALL {
                self.state.load_seg_real(s, sels[s as usize]);
            }
        } else {
            let cs = sels[SegReg::Cs as usize];
            let cd = self.read_desc_or(ctx, cs, Fault::ts(SEL_ERR(cs)))?;
            if !cd.is_code() || cs & 0xFFFC == 0 {
                return Err(Fault::ts(SEL_ERR(cs)));
            }
            let cpl = (cs & 3) as u8;
            self.set_cs(ctx, cs, cd, cpl)?;
            for s in [SegReg::Ss, SegReg::Ds, SegReg::Es, SegReg::Fs, SegReg::Gs] {
                let sv = sels[s as usize];
                if s != SegReg::Ss && !new32 && (s == SegReg::Fs || s == SegReg::Gs) {
                    self.state.segs[s as usize] = Segment::default();
                    continue;
                }
                self.load_seg(ctx, s, sv).map_err(|f| if f.vector == 13 { Fault::ts(SEL_ERR(sv)) } else { f })?;
            }
        }
        if let Some(e) = error {
            let size = if new32 { 4 } else { 2 };
            self.push(ctx, e, size)?;
        }
        let _ = (EAX, EBX, ECX, EDX, EBP, ESI, EDI);
        Ok(())
    }

    /// I/O permission: CPL <= IOPL in protected mode, otherwise (and always
    /// in V86 mode) the TSS I/O bitmap decides (SDM vol. 1, 18.5).
    pub(crate) fn check_io(&mut self, ctx: &mut Ctx, port: u16, size: u32) -> Res<()> {
        if !self.state.protected() || (!self.state.v86() && self.state.cpl as u32 <= self.iopl()) {
            return Ok(());
        }
        let tr = self.state.tr;
        if tr.flags & (8 << 8) == 0 || tr.limit < 0x67 {
            return Err(Fault::gp(0));
        }
        let map = self.read_lin_sys(ctx, tr.base.wrapping_add(0x66), 2)?;
        let byte = map + port as u32 / 8;
        if byte + 1 > tr.limit {
            return Err(Fault::gp(0));
        }
        let bits = self.read_lin_sys(ctx, tr.base.wrapping_add(byte), 2)?;
        let want = ((1u32 << size) - 1) << (port & 7);
        if bits & want != 0 {
            return Err(Fault::gp(0));
        }
        Ok(())
    }
}

#[allow(dead_code)]
const _UNUSED: IntSource = IntSource::Software;
