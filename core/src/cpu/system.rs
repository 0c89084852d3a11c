//! System instructions: control/debug registers, descriptor-table
//! registers, LDT/TR, access checks (VERR/VERW/LAR/LSL/ARPL), CPUID, MSRs,
//! TSC, SYSENTER/SYSEXIT, cache and TLB control.

use super::decode::{Insn, OpK};
use super::flags::{self, ZF};
use super::protected::Desc;
use super::state::{
    SegReg, Segment, CR0_CD, CR0_ET, CR0_NW, CR0_PE, CR0_PG, CR0_TS, CR0_WP, CR4_DE, CR4_TSD, EAX, ECX, EDX, ESP,
    SEG_ACCESSED, SEG_CODE, SEG_DB, SEG_G, SEG_P, SEG_RW, SEG_S,
};
use super::{cpuid as id, Cpu, Ctx, Fault, Res};

/// #GP(0) unless at CPL 0 (also #GP in V86 mode, where CPL is 3).
fn require_cpl0(cpu: &Cpu) -> Res<()> {
    if cpu.state.cpl != 0 {
        return Err(Fault::gp(0));
    }
    Ok(())
}

/// #UD in real and V86 mode (the LDT/TR/access-check group).
fn require_protected(cpu: &Cpu) -> Res<()> {
    if !cpu.state.protected() || cpu.state.v86() {
        return Err(Fault::UD);
    }
    Ok(())
}

/// CR4 bits this model implements: TSD, PSE, PGE, PCE, OSFXSR (VME, PVI
/// and DE are not, so setting them is #GP as on a CPU without those
/// features; OSXMMEXCPT waits for SSE).
const CR4_VALID: u32 =
    super::state::CR4_TSD | super::state::CR4_PSE | super::state::CR4_PGE | (1 << 8) | super::state::CR4_OSFXSR;

impl Cpu {
    /// Write CR0 with the architectural checks (SDM vol. 3, 2.5).
    pub(crate) fn write_cr0(&mut self, v: u32) -> Res<()> {
        let v = v | CR0_ET;
        if (v & CR0_PG != 0 && v & CR0_PE == 0) || (v & CR0_NW != 0 && v & CR0_CD == 0) {
            return Err(Fault::gp(0));
        }
        let old = self.state.cr0;
        self.state.cr0 = v & 0xE005_003F;
        if (old ^ self.state.cr0) & (CR0_PG | CR0_WP | CR0_PE) != 0 {
            self.tlb.flush_all();
        }
        if self.state.cr0 & CR0_PE == 0 {
            self.state.cpl = 0;
        }
        Ok(())
    }
}

impl Cpu {
    /// The CR3 bits kept: the page directory base, PWT and PCD; with PAE
    /// the PDPT base from bit 5.
    pub(crate) fn cr3_mask(&self) -> u32 {
        if self.features & id::FEAT_PAE != 0 {
            0xFFFF_FFF8
        } else {
            0xFFFF_F018
        }
    }
}

pub(crate) fn mov_to_cr(cpu: &mut Cpu, _: &mut Ctx, i: &Insn) -> Res<()> {
    require_cpl0(cpu)?;
    let v = cpu.state.regs[i.ops[1].num as usize];
    match i.ops[0].num {
        0 => cpu.write_cr0(v)?,
        2 => cpu.state.cr2 = v,
        3 => {
            cpu.state.cr3 = v & cpu.cr3_mask();
            cpu.tlb.flush_non_global();
        }
        4 => {
            let mut valid = CR4_VALID;
            if cpu.has_sse() {
                valid |= super::fpu::sse::CR4_OSXMMEXCPT;
            }
            if cpu.features & id::FEAT_PAE != 0 {
                valid |= super::state::CR4_PAE;
            }
            if v & !valid != 0 {
                return Err(Fault::gp(0));
            }
            cpu.state.cr4 = v;
            cpu.tlb.flush_all();
        }
        _ => return Err(Fault::UD),
    }
    Ok(())
}

pub(crate) fn mov_from_cr(cpu: &mut Cpu, _: &mut Ctx, i: &Insn) -> Res<()> {
    require_cpl0(cpu)?;
    let v = match i.ops[1].num {
        0 => cpu.state.cr0,
        2 => cpu.state.cr2,
        3 => cpu.state.cr3,
        4 => cpu.state.cr4,
        _ => return Err(Fault::UD),
    };
    cpu.state.regs[i.ops[0].num as usize] = v;
    Ok(())
}

/// DR4/DR5 alias DR6/DR7 unless CR4.DE makes them #UD.
fn dr_index(cpu: &Cpu, n: u8) -> Res<usize> {
    match n {
        0..=3 | 6 | 7 => Ok(n as usize),
        4 | 5 if cpu.state.cr4 & CR4_DE == 0 => Ok(n as usize + 2),
        _ => Err(Fault::UD),
    }
}

pub(crate) fn mov_to_dr(cpu: &mut Cpu, _: &mut Ctx, i: &Insn) -> Res<()> {
    require_cpl0(cpu)?;
    cpu.general_detect()?;
    let n = dr_index(cpu, i.ops[0].num)?;
    let v = cpu.state.regs[i.ops[1].num as usize];
    cpu.state.dr[n] = match n {
        6 => (v & 0x0000_E00F) | 0xFFFF_0FF0,
        7 => (v & 0xFFFF_2BFF) | 0x400,
        _ => v,
    };
    Ok(())
}

pub(crate) fn mov_from_dr(cpu: &mut Cpu, _: &mut Ctx, i: &Insn) -> Res<()> {
    require_cpl0(cpu)?;
    cpu.general_detect()?;
    let n = dr_index(cpu, i.ops[1].num)?;
    cpu.state.regs[i.ops[0].num as usize] = cpu.state.dr[n];
    Ok(())
}

pub(crate) fn clts(cpu: &mut Cpu, _: &mut Ctx, _: &Insn) -> Res<()> {
    require_cpl0(cpu)?;
    cpu.state.cr0 &= !CR0_TS;
    Ok(())
}

pub(crate) fn lmsw(cpu: &mut Cpu, ctx: &mut Ctx, i: &Insn) -> Res<()> {
    require_cpl0(cpu)?;
    let v = cpu.rd(ctx, i, 0)? & 0xF;
    // LMSW can set PE but never clear it.
    let cr0 = (cpu.state.cr0 & !0xE) | v | (cpu.state.cr0 & CR0_PE);
    cpu.write_cr0(cr0)
}

pub(crate) fn smsw(cpu: &mut Cpu, ctx: &mut Ctx, i: &Insn) -> Res<()> {
    // To a register SMSW stores all of CR0 with a 32-bit operand size.
    let v = cpu.state.cr0;
    let v = if i.ops[0].kind == OpK::Mem || i.size(0) == 2 { v & 0xFFFF } else { v };
    cpu.wr(ctx, i, 0, v)
}

/// LGDT/LIDT operand: limit16 then base (24 bits with a 16-bit operand).
fn read_table_operand(cpu: &mut Cpu, ctx: &mut Ctx, i: &Insn) -> Res<(u32, u32)> {
    if i.ops[0].kind != OpK::Mem {
        return Err(Fault::UD);
    }
    require_cpl0(cpu)?;
    let off = cpu.ea(i);
    let limit = cpu.read_mem(ctx, i.seg as usize, off, 2)?;
    let next = if i.addr32 { off.wrapping_add(2) } else { off.wrapping_add(2) & 0xFFFF };
    let mut base = cpu.read_mem(ctx, i.seg as usize, next, 4)?;
    if i.opsz == 2 {
        base &= 0x00FF_FFFF;
    }
    Ok((limit, base))
}

pub(crate) fn lgdt(cpu: &mut Cpu, ctx: &mut Ctx, i: &Insn) -> Res<()> {
    let (limit, base) = read_table_operand(cpu, ctx, i)?;
    cpu.state.gdtr = super::state::TableReg { base, limit };
    Ok(())
}

pub(crate) fn lidt(cpu: &mut Cpu, ctx: &mut Ctx, i: &Insn) -> Res<()> {
    let (limit, base) = read_table_operand(cpu, ctx, i)?;
    cpu.state.idtr = super::state::TableReg { base, limit };
    Ok(())
}

fn store_table(cpu: &mut Cpu, ctx: &mut Ctx, i: &Insn, limit: u32, base: u32) -> Res<()> {
    if i.ops[0].kind != OpK::Mem {
        return Err(Fault::UD);
    }
    let off = cpu.ea(i);
    let next = if i.addr32 { off.wrapping_add(2) } else { off.wrapping_add(2) & 0xFFFF };
    // Check both parts before writing either.
    let l1 = cpu.seg_check(i.seg as usize, off, 2, true)?;
    let l2 = cpu.seg_check(i.seg as usize, next, 4, true)?;
    cpu.probe_write(ctx, l1, 2)?;
    cpu.probe_write(ctx, l2, 4)?;
    cpu.write_mem(ctx, i.seg as usize, off, 2, limit)?;
    cpu.write_mem(ctx, i.seg as usize, next, 4, base)
}

pub(crate) fn sgdt(cpu: &mut Cpu, ctx: &mut Ctx, i: &Insn) -> Res<()> {
    let t = cpu.state.gdtr;
    store_table(cpu, ctx, i, t.limit, t.base)
}

pub(crate) fn sidt(cpu: &mut Cpu, ctx: &mut Ctx, i: &Insn) -> Res<()> {
    let t = cpu.state.idtr;
    store_table(cpu, ctx, i, t.limit, t.base)
}

pub(crate) fn invlpg(cpu: &mut Cpu, _: &mut Ctx, i: &Insn) -> Res<()> {
    if i.ops[0].kind != OpK::Mem {
        return Err(Fault::UD);
    }
    require_cpl0(cpu)?;
    let lin = cpu.state.segs[i.seg as usize].base.wrapping_add(cpu.ea(i));
    cpu.tlb.flush_page(lin);
    Ok(())
}

pub(crate) fn invd(cpu: &mut Cpu, _: &mut Ctx, _: &Insn) -> Res<()> {
    require_cpl0(cpu)
}

pub(crate) fn cpuid(cpu: &mut Cpu, _: &mut Ctx, _: &Insn) -> Res<()> {
    let (a, b, c, d) = id::cpuid_ext(cpu.state.regs[EAX], cpu.signature, cpu.features, cpu.ext_features);
    let r = &mut cpu.state.regs;
    r[EAX] = a;
    r[super::state::EBX] = b;
    r[ECX] = c;
    r[EDX] = d;
    Ok(())
}

pub(crate) fn rdtsc(cpu: &mut Cpu, _: &mut Ctx, _: &Insn) -> Res<()> {
    if cpu.state.cr4 & CR4_TSD != 0 && cpu.state.cpl != 0 && cpu.state.protected() {
        return Err(Fault::gp(0));
    }
    let t = cpu.tsc();
    cpu.state.regs[EAX] = t as u32;
    cpu.state.regs[EDX] = (t >> 32) as u32;
    Ok(())
}

/// RDPMC: the P6's two performance counters (ECX 0 or 1). No events are
/// modelled, so the counters never count and read as zero; CR4.PCE (bit 8)
/// lets CPL > 0 read them (SDM vol. 2, RDPMC).
pub(crate) fn rdpmc(cpu: &mut Cpu, _: &mut Ctx, _: &Insn) -> Res<()> {
    let pce = cpu.state.cr4 & (1 << 8) != 0;
    if (cpu.state.cpl != 0 && !pce && cpu.state.protected()) || cpu.state.regs[ECX] > 1 {
        return Err(Fault::gp(0));
    }
    cpu.state.regs[EAX] = 0;
    cpu.state.regs[EDX] = 0;
    Ok(())
}

const MSR_TSC: u32 = 0x10;
const MSR_PLATFORM_ID: u32 = 0x17;
const MSR_EBL_CR_POWERON: u32 = 0x2A;
const MSR_BIOS_SIGN_ID: u32 = 0x8B;
const MSR_SYSENTER_CS: u32 = 0x174;
const MSR_SYSENTER_ESP: u32 = 0x175;
const MSR_SYSENTER_EIP: u32 = 0x176;
const MSR_EFER: u32 = 0xC000_0080;
/// IA32_MISC_ENABLE (from the Pentium 4): here fast strings on (bit 0) and
/// XD not disabled (bit 34 clear); writes are kept.
const MSR_MISC_ENABLE: u32 = 0x1A0;

pub(crate) fn rdmsr(cpu: &mut Cpu, _: &mut Ctx, _: &Insn) -> Res<()> {
    require_cpl0(cpu)?;
    let v: u64 = match cpu.state.regs[ECX] {
        MSR_TSC => cpu.tsc(),
        MSR_PLATFORM_ID | MSR_EBL_CR_POWERON | MSR_BIOS_SIGN_ID => 0,
        MSR_SYSENTER_CS => cpu.state.msr.sysenter_cs as u64,
        MSR_SYSENTER_ESP => cpu.state.msr.sysenter_esp as u64,
        MSR_SYSENTER_EIP => cpu.state.msr.sysenter_eip as u64,
        MSR_EFER if cpu.ext_features & id::EXT_NX != 0 => cpu.state.msr.efer,
        MSR_MISC_ENABLE if cpu.ext_features & id::EXT_NX != 0 => cpu.state.msr.misc_enable,
        _ => return Err(Fault::gp(0)),
    };
    cpu.state.regs[EAX] = v as u32;
    cpu.state.regs[EDX] = (v >> 32) as u32;
    Ok(())
}

pub(crate) fn wrmsr(cpu: &mut Cpu, _: &mut Ctx, _: &Insn) -> Res<()> {
    require_cpl0(cpu)?;
    let v = (cpu.state.regs[EDX] as u64) << 32 | cpu.state.regs[EAX] as u64;
    match cpu.state.regs[ECX] {
        MSR_TSC => cpu.state.tsc = v.wrapping_sub(cpu.instret),
        MSR_BIOS_SIGN_ID | MSR_EBL_CR_POWERON => {}
        MSR_SYSENTER_CS => cpu.state.msr.sysenter_cs = v as u32,
        MSR_SYSENTER_ESP => cpu.state.msr.sysenter_esp = v as u32,
        MSR_SYSENTER_EIP => cpu.state.msr.sysenter_eip = v as u32,
        MSR_EFER if cpu.ext_features & id::EXT_NX != 0 => {
            // Only NXE exists here (no long mode): other bits are reserved.
            if v & !super::state::EFER_NXE != 0 {
                return Err(Fault::gp(0));
            }
            cpu.state.msr.efer = v;
            cpu.tlb.flush_all();
        }
        // (XD disable, bit 34, is not modelled: NX stays available.)
        MSR_MISC_ENABLE if cpu.ext_features & id::EXT_NX != 0 => cpu.state.msr.misc_enable = v & !(1 << 34),
        _ => return Err(Fault::gp(0)),
    }
    Ok(())
}

/// A flat 4 GiB segment as SYSENTER/SYSEXIT load it.
fn flat(selector: u16, code: bool, dpl: u32) -> Segment {
    let ty = if code { SEG_CODE | SEG_RW | SEG_ACCESSED } else { SEG_RW | SEG_ACCESSED };
    Segment { selector, base: 0, limit: u32::MAX, flags: ty | SEG_S | SEG_P | SEG_DB | SEG_G | (dpl << 13) }
}

pub(crate) fn sysenter(cpu: &mut Cpu, _: &mut Ctx, _: &Insn) -> Res<()> {
    let cs = cpu.state.msr.sysenter_cs as u16;
    if !cpu.state.protected() || cs & 0xFFFC == 0 {
        return Err(Fault::gp(0));
    }
    cpu.state.flags.set(flags::VM, false);
    cpu.state.flags.set(flags::IF, false);
    cpu.state.flags.set(flags::RF, false);
    cpu.state.segs[SegReg::Cs as usize] = flat(cs & 0xFFFC, true, 0);
    cpu.state.segs[SegReg::Ss as usize] = flat((cs & 0xFFFC) + 8, false, 0);
    cpu.state.cpl = 0;
    cpu.state.regs[ESP] = cpu.state.msr.sysenter_esp;
    cpu.next_eip = cpu.state.msr.sysenter_eip;
    Ok(())
}

pub(crate) fn sysexit(cpu: &mut Cpu, _: &mut Ctx, _: &Insn) -> Res<()> {
    let cs = cpu.state.msr.sysenter_cs as u16;
    if !cpu.state.protected() || cpu.state.v86() || cpu.state.cpl != 0 || cs & 0xFFFC == 0 {
        return Err(Fault::gp(0));
    }
    cpu.state.segs[SegReg::Cs as usize] = flat(((cs & 0xFFFC) + 16) | 3, true, 3);
    cpu.state.segs[SegReg::Ss as usize] = flat(((cs & 0xFFFC) + 24) | 3, false, 3);
    cpu.state.cpl = 3;
    cpu.state.regs[ESP] = cpu.state.regs[ECX];
    cpu.next_eip = cpu.state.regs[EDX];
    Ok(())
}

pub(crate) fn sldt(cpu: &mut Cpu, ctx: &mut Ctx, i: &Insn) -> Res<()> {
    require_protected(cpu)?;
    let v = cpu.state.ldtr.selector as u32;
    cpu.wr(ctx, i, 0, v)
}

pub(crate) fn str_(cpu: &mut Cpu, ctx: &mut Ctx, i: &Insn) -> Res<()> {
    require_protected(cpu)?;
    let v = cpu.state.tr.selector as u32;
    cpu.wr(ctx, i, 0, v)
}

pub(crate) fn lldt(cpu: &mut Cpu, ctx: &mut Ctx, i: &Insn) -> Res<()> {
    require_protected(cpu)?;
    require_cpl0(cpu)?;
    let sel = cpu.rd(ctx, i, 0)? as u16;
    if sel & 0xFFFC == 0 {
        cpu.state.ldtr = Segment { selector: sel, base: 0, limit: 0, flags: 0 };
        return Ok(());
    }
    if sel & 4 != 0 {
        return Err(Fault::gp((sel & 0xFFFC) as u32));
    }
    let d = cpu.read_desc(ctx, sel)?;
    if d.is_seg() || d.sys_type() != 2 {
        return Err(Fault::gp((sel & 0xFFFC) as u32));
    }
    if !d.present() {
        return Err(Fault::np((sel & 0xFFFC) as u32));
    }
    cpu.state.ldtr = d.segment(sel);
    Ok(())
}

pub(crate) fn ltr(cpu: &mut Cpu, ctx: &mut Ctx, i: &Insn) -> Res<()> {
    require_protected(cpu)?;
    require_cpl0(cpu)?;
    let sel = cpu.rd(ctx, i, 0)? as u16;
    if sel & 0xFFFC == 0 {
        return Err(Fault::gp(0));
    }
    if sel & 4 != 0 {
        return Err(Fault::gp((sel & 0xFFFC) as u32));
    }
    let mut d = cpu.read_desc(ctx, sel)?;
    if d.is_seg() || !(d.sys_type() == 1 || d.sys_type() == 9) {
        return Err(Fault::gp((sel & 0xFFFC) as u32));
    }
    if !d.present() {
        return Err(Fault::np((sel & 0xFFFC) as u32));
    }
    d.hi |= 2 << 8;
    let addr = cpu.state.gdtr.base.wrapping_add((sel & 0xFFF8) as u32 + 4);
    cpu.write_lin_as(ctx, addr, 4, d.hi, false)?;
    cpu.state.tr = d.segment(sel);
    Ok(())
}

/// Descriptor for VERR/VERW/LAR/LSL: None when the selector is null or
/// beyond the table (those only clear ZF).
fn probe_desc(cpu: &mut Cpu, ctx: &mut Ctx, sel: u16) -> Res<Option<Desc>> {
    if sel & 0xFFFC == 0 {
        return Ok(None);
    }
    match cpu.read_desc(ctx, sel) {
        Ok(d) => Ok(Some(d)),
        Err(f) if f.vector == 13 => Ok(None),
        Err(f) => Err(f),
    }
}

/// Visible at the current CPL and the selector's RPL (conforming code
/// always is).
fn visible(cpu: &Cpu, sel: u16, d: &Desc) -> bool {
    d.conforming() || d.dpl() >= cpu.state.cpl.max((sel & 3) as u8)
}

fn verify(cpu: &mut Cpu, ctx: &mut Ctx, i: &Insn, write: bool) -> Res<()> {
    require_protected(cpu)?;
    let sel = cpu.rd(ctx, i, 0)? as u16;
    let ok = match probe_desc(cpu, ctx, sel)? {
        Some(d) if d.is_seg() && visible(cpu, sel, &d) => {
            if write {
                d.is_data() && d.readable()
            } else {
                d.is_data() || d.readable()
            }
        }
        _ => false,
    };
    cpu.state.flags.set(ZF, ok);
    Ok(())
}

pub(crate) fn verr(cpu: &mut Cpu, ctx: &mut Ctx, i: &Insn) -> Res<()> {
    verify(cpu, ctx, i, false)
}

pub(crate) fn verw(cpu: &mut Cpu, ctx: &mut Ctx, i: &Insn) -> Res<()> {
    verify(cpu, ctx, i, true)
}

fn lar_lsl(cpu: &mut Cpu, ctx: &mut Ctx, i: &Insn, lar: bool) -> Res<()> {
    require_protected(cpu)?;
    let sel = cpu.rd(ctx, i, 1)? as u16;
    let d = probe_desc(cpu, ctx, sel)?;
    let val = d.and_then(|d| {
        let valid_sys = if lar {
            matches!(d.sys_type(), 1..=5 | 9 | 0xB | 0xC)
        } else {
            matches!(d.sys_type(), 1 | 2 | 3 | 9 | 0xB)
        };
        if (d.is_seg() || valid_sys) && visible(cpu, sel, &d) {
            Some(if lar { d.hi & 0x00F0_FF00 } else { d.limit() })
        } else {
            None
        }
    });
    match val {
        Some(v) => {
            cpu.state.flags.set(ZF, true);
            let size = i.size(0);
            cpu.wr(ctx, i, 0, if size == 2 { v & 0xFFFF } else { v })
        }
        None => {
            cpu.state.flags.set(ZF, false);
            Ok(())
        }
    }
}

pub(crate) fn lar(cpu: &mut Cpu, ctx: &mut Ctx, i: &Insn) -> Res<()> {
    lar_lsl(cpu, ctx, i, true)
}

pub(crate) fn lsl(cpu: &mut Cpu, ctx: &mut Ctx, i: &Insn) -> Res<()> {
    lar_lsl(cpu, ctx, i, false)
}

pub(crate) fn arpl(cpu: &mut Cpu, ctx: &mut Ctx, i: &Insn) -> Res<()> {
    require_protected(cpu)?;
    let l = cpu.loc(ctx, i, 0, true)?;
    let dest = cpu.rd_loc(ctx, l, 2)?;
    let src = cpu.rd(ctx, i, 1)?;
    if dest & 3 < src & 3 {
        cpu.state.flags.set(ZF, true);
        cpu.wr_loc(ctx, l, 2, (dest & !3) | (src & 3))
    } else {
        cpu.state.flags.set(ZF, false);
        Ok(())
    }
}
