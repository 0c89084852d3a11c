//! Segmentation, paging with a software TLB, and the memory/stack access
//! helpers every instruction uses. All checks happen before any state
//! changes, so a faulting access leaves the instruction restartable.

use super::flags;
use super::state::{
    SegReg, CR0_PG, CR0_WP, CR4_PAE, CR4_PGE, CR4_PSE, EFER_NXE, ESP, SEG_CODE, SEG_DC, SEG_P, SEG_RW, SEG_S,
};
use super::{Cpu, Ctx, Fault, Res};
use crate::bus::AccessSize;
use crate::mem::{PhysAddr, PAGE_MASK};

const TLB_SIZE: usize = 1024;
const TLB_VALID: u32 = 1;
const TLB_USER: u32 = 1 << 1;
const TLB_WRITE: u32 = 1 << 2;
const TLB_DIRTY: u32 = 1 << 3;
const TLB_GLOBAL: u32 = 1 << 4;
/// The translation came from a 4 MiB (or PAE 2 MiB) page.
const TLB_LARGE: u32 = 1 << 5;
/// Instruction fetches are forbidden (PAE paging with EFER.NXE: XD set).
const TLB_NX: u32 = 1 << 6;

#[derive(Clone, Copy, Default)]
struct TlbEntry {
    /// Linear page base | TLB_VALID.
    tag: u32,
    /// Physical page base | rights bits.
    phys: u32,
}

/// A direct-mapped software TLB of linear-to-physical translations with the
/// combined rights of both paging levels.
pub struct Tlb {
    entries: Box<[TlbEntry; TLB_SIZE]>,
    /// Bumped by every flush, so cached fetch translations can be checked.
    pub(crate) gen: u32,
    /// Entries filled from 4 MiB pages may be present (INVLPG must then
    /// look for the other 4 KiB pieces of the same large page).
    has_large: bool,
}

impl Default for Tlb {
    fn default() -> Self {
        Tlb::new()
    }
}

impl Tlb {
    pub fn new() -> Tlb {
        Tlb { entries: Box::new([TlbEntry::default(); TLB_SIZE]), gen: 0, has_large: false }
    }

    /// Drop all entries (CR3 load with PGE off, CR0.PG/CR4 changes).
    pub fn flush_all(&mut self) {
        self.gen = self.gen.wrapping_add(1);
        self.entries.fill(TlbEntry::default());
        self.has_large = false;
    }

    /// Drop non-global entries (CR3 load).
    pub fn flush_non_global(&mut self) {
        self.gen = self.gen.wrapping_add(1);
        for e in self.entries.iter_mut() {
            if e.phys & TLB_GLOBAL == 0 {
                *e = TlbEntry::default();
            }
        }
    }

    /// INVLPG: drop the translation of one linear address. A 4 MiB page
    /// is cached as 4 KiB pieces, and INVLPG of any address in it drops
    /// the whole page (SDM vol. 3, 4.10.4.1).
    pub fn flush_page(&mut self, lin: u32) {
        self.gen = self.gen.wrapping_add(1);
        let e = &mut self.entries[(lin >> 12) as usize % TLB_SIZE];
        if e.tag & !PAGE_MASK == lin & !PAGE_MASK {
            *e = TlbEntry::default();
        }
        if self.has_large {
            for e in self.entries.iter_mut() {
                if e.phys & TLB_LARGE != 0 && e.tag & TLB_VALID != 0 && (e.tag ^ lin) & 0xFFC0_0000 == 0 {
                    *e = TlbEntry::default();
                }
            }
        }
    }
}

/// What a walk found for a page (`Cpu::fill_tlb`).
#[derive(Clone, Copy)]
struct Page {
    /// Physical page base.
    phys: u32,
    user: bool,
    /// TLB_WRITE or 0.
    rights: u32,
    dirty: bool,
    global: bool,
    large: bool,
    nx: bool,
}

/// The entries a walk ended with (`Cpu::finish_walk`): the PDE and the
/// PTE (for a large page the PDE twice) with their addresses (A20
/// applied), their low dwords (where the accessed and dirty bits are) and
/// what they map.
struct Leaf {
    pde_at: PhysAddr,
    pde: u32,
    pte_at: PhysAddr,
    pte: u32,
    large: bool,
    /// Physical page base.
    phys: u32,
    /// The U/S and R/W bits of both levels combined (ANDed).
    rights_raw: u32,
    global: bool,
    /// Execute-disable in effect (PAE with EFER.NXE).
    nx: bool,
}

/// Kind of memory access for paging checks.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Access {
    Read,
    Write,
    Fetch,
}

impl Cpu {
    /// Linear → physical for an access at the current privilege.
    #[inline]
    pub(crate) fn translate(&mut self, ctx: &mut Ctx, lin: u32, acc: Access) -> Res<PhysAddr> {
        let user = self.state.cpl == 3;
        self.translate_as(ctx, lin, acc, user)
    }

    /// Linear → physical for an instruction fetch.
    #[inline]
    pub(crate) fn translate_fetch(&mut self, ctx: &mut Ctx, lin: u32) -> Res<PhysAddr> {
        self.translate(ctx, lin, Access::Fetch)
    }

    /// Linear → physical with explicit user/supervisor rights (descriptor
    /// table and TSS accesses are supervisor accesses even at CPL 3).
    pub(crate) fn translate_as(&mut self, ctx: &mut Ctx, lin: u32, acc: Access, user: bool) -> Res<PhysAddr> {
        if self.state.cr0 & CR0_PG == 0 {
            return Ok(PhysAddr(lin & ctx.mem.a20_mask()));
        }
        let e = self.tlb.entries[(lin >> 12) as usize % TLB_SIZE];
        if e.tag == (lin & !PAGE_MASK) | TLB_VALID {
            let ok_user = !user || e.phys & TLB_USER != 0;
            let ok_write = acc != Access::Write || (e.phys & TLB_DIRTY != 0 && self.write_allowed(e.phys, user));
            let ok_fetch = acc != Access::Fetch || e.phys & TLB_NX == 0;
            if ok_user && ok_write && ok_fetch {
                return Ok(PhysAddr(((e.phys & !PAGE_MASK) | (lin & PAGE_MASK)) & ctx.mem.a20_mask()));
            }
        }
        self.walk(ctx, lin, acc, user)
    }

    #[inline]
    fn write_allowed(&self, rights: u32, user: bool) -> bool {
        rights & TLB_WRITE != 0 || (!user && self.state.cr0 & CR0_WP == 0)
    }

    /// Page-table walk (SDM 3, 4.3): sets accessed/dirty bits, fills the TLB
    /// or raises #PF with CR2 and the error code.
    fn walk(&mut self, ctx: &mut Ctx, lin: u32, acc: Access, user: bool) -> Res<PhysAddr> {
        if self.state.cr4 & CR4_PAE != 0 {
            return self.walk_pae(ctx, lin, acc, user);
        }
        let a20 = ctx.mem.a20_mask();
        let write = acc == Access::Write;
        let err_bits = ((write as u32) << 1) | ((user as u32) << 2);
        let fault = |cpu: &mut Cpu, present: bool, rsvd: bool| {
            cpu.state.cr2 = lin;
            Err(Fault::pf(err_bits | present as u32 | ((rsvd as u32) << 3)))
        };
        let pde_addr = PhysAddr(((self.state.cr3 & !PAGE_MASK) | ((lin >> 20) & 0xFFC)) & a20);
        let pde = ctx.mem.read(pde_addr, AccessSize::Dword, ctx.bus);
        if pde & 1 == 0 {
            return fault(self, false, false);
        }
        let pse = self.state.cr4 & CR4_PSE != 0 && pde & 0x80 != 0;
        let (phys_page, rights_raw, global, pte_addr, pte) = if pse {
            if pde & 0x003F_E000 != 0 {
                // Bits 21:13 of a 4 MiB PDE are reserved (no PSE-36 here).
                return fault(self, true, true);
            }
            ((pde & 0xFFC0_0000) | (lin & 0x003F_F000), pde, pde & 0x100 != 0, pde_addr, pde)
        } else {
            let pte_addr = PhysAddr(((pde & !PAGE_MASK) | ((lin >> 10) & 0xFFC)) & a20);
            let pte = ctx.mem.read(pte_addr, AccessSize::Dword, ctx.bus);
            if pte & 1 == 0 {
                return fault(self, false, false);
            }
            (pte & !PAGE_MASK, pde & pte, pte & 0x100 != 0, pte_addr, pte)
        };
        let leaf = Leaf {
            pde_at: pde_addr,
            pde,
            pte_at: pte_addr,
            pte,
            large: pse,
            phys: phys_page,
            rights_raw,
            global,
            nx: false,
        };
        self.finish_walk(ctx, lin, acc, user, err_bits, leaf)
    }

    /// The checks and updates both walk formats end with: the privilege
    /// and write checks (and, in PAE, execute-disable), the accessed bits
    /// on both levels and dirty on the last on a write, the TLB fill.
    fn finish_walk(
        &mut self,
        ctx: &mut Ctx,
        lin: u32,
        acc: Access,
        user: bool,
        err_bits: u32,
        leaf: Leaf,
    ) -> Res<PhysAddr> {
        let write = acc == Access::Write;
        let denied = |cpu: &mut Cpu| {
            cpu.state.cr2 = lin;
            Err(Fault::pf(err_bits | 1))
        };
        let u = leaf.rights_raw & 4 != 0;
        let w = leaf.rights_raw & 2 != 0;
        if user && !u {
            return denied(self);
        }
        let rights = if w { TLB_WRITE } else { 0 };
        if write && !self.write_allowed(rights, user) {
            return denied(self);
        }
        if leaf.nx && acc == Access::Fetch {
            return denied(self);
        }
        if leaf.pde & 0x20 == 0 && !leaf.large {
            ctx.mem.write(leaf.pde_at, AccessSize::Dword, leaf.pde | 0x20, ctx.bus);
        }
        let mut new = leaf.pte | 0x20;
        if write {
            new |= 0x40;
        }
        if new != leaf.pte {
            ctx.mem.write(leaf.pte_at, AccessSize::Dword, new, ctx.bus);
        }
        let page = Page {
            phys: leaf.phys,
            user: u,
            rights,
            dirty: new & 0x40 != 0,
            global: leaf.global,
            large: leaf.large,
            nx: leaf.nx,
        };
        Ok(PhysAddr(self.fill_tlb(lin, page) & ctx.mem.a20_mask()))
    }

    /// The end of a walk: the TLB entry for `lin` from the page's rights
    /// (global only with CR4.PGE); the physical address of `lin`.
    fn fill_tlb(&mut self, lin: u32, p: Page) -> u32 {
        let mut bits = rights_bits(p.user, p.rights);
        if p.dirty {
            bits |= TLB_DIRTY;
        }
        if p.global && self.state.cr4 & CR4_PGE != 0 {
            bits |= TLB_GLOBAL;
        }
        if p.large {
            bits |= TLB_LARGE;
            self.tlb.has_large = true;
        }
        if p.nx {
            bits |= TLB_NX;
        }
        self.tlb.entries[(lin >> 12) as usize % TLB_SIZE] =
            TlbEntry { tag: (lin & !PAGE_MASK) | TLB_VALID, phys: p.phys | bits };
        p.phys | (lin & PAGE_MASK)
    }

    /// The PAE walk (SDM 3, 4.4): the PDPTE (read at each walk: this model
    /// has no PDPTE registers loaded by MOV CR3), then 64-bit PDE and PTE;
    /// PS in the PDE maps 2 MiB. Reserved bits (above the 36-bit physical
    /// address width, a 2 MiB PDE's bits 20:13, XD without EFER.NXE, the
    /// PDPTE's bits 2:1 and 8:5) raise #PF with RSVD; an instruction fetch
    /// from a page whose entries have XD, with EFER.NXE, raises #PF with I/D.
    /// Physical addresses above 4 GiB (no RAM can be there) are cut to 32
    /// bits.
    fn walk_pae(&mut self, ctx: &mut Ctx, lin: u32, acc: Access, user: bool) -> Res<PhysAddr> {
        let a20 = ctx.mem.a20_mask() as u64;
        let write = acc == Access::Write;
        let nxe = self.state.msr.efer & EFER_NXE != 0;
        let fetch_bit = if nxe && acc == Access::Fetch { 1 << 4 } else { 0 };
        let err_bits = ((write as u32) << 1) | ((user as u32) << 2) | fetch_bit;
        let fault = |cpu: &mut Cpu, present: bool, rsvd: bool| {
            cpu.state.cr2 = lin;
            Err(Fault::pf(err_bits | present as u32 | ((rsvd as u32) << 3)))
        };
        let read64 = |ctx: &mut Ctx, at: u64| -> u64 {
            let at = (at & a20) as u32;
            let lo = ctx.mem.read(PhysAddr(at), AccessSize::Dword, ctx.bus) as u64;
            let hi = ctx.mem.read(PhysAddr(at + 4), AccessSize::Dword, ctx.bus) as u64;
            lo | hi << 32
        };
        // Bits 62:36 (and 63 without NXE) are reserved in PDEs and PTEs.
        let high_rsvd: u64 = !((1u64 << 36) - 1) & if nxe { !(1u64 << 63) } else { u64::MAX };
        let pdpte_at = (self.state.cr3 & 0xFFFF_FFE0) as u64 + 8 * ((lin >> 30) & 3) as u64;
        let pdpte = read64(ctx, pdpte_at);
        if pdpte & 1 == 0 {
            return fault(self, false, false);
        }
        if pdpte & (0x1E6 | !((1u64 << 36) - 1)) != 0 {
            return fault(self, true, true);
        }
        let pde_at = (pdpte & 0xF_FFFF_F000) + 8 * ((lin >> 21) & 0x1FF) as u64;
        let pde = read64(ctx, pde_at);
        if pde & 1 == 0 {
            return fault(self, false, false);
        }
        let large = pde & 0x80 != 0;
        if pde & high_rsvd != 0 || (large && pde & 0x001F_E000 != 0) {
            return fault(self, true, true);
        }
        let (page, rights_raw, nx, global, pte_at, pte) = if large {
            let page = (pde & 0xF_FFE0_0000) | (lin & 0x001F_F000) as u64;
            (page, pde, pde >> 63 != 0, pde & 0x100 != 0, pde_at, pde)
        } else {
            let pte_at = (pde & 0xF_FFFF_F000) + 8 * ((lin >> 12) & 0x1FF) as u64;
            let pte = read64(ctx, pte_at);
            if pte & 1 == 0 {
                return fault(self, false, false);
            }
            if pte & high_rsvd != 0 {
                return fault(self, true, true);
            }
            let nx = (pde | pte) >> 63 != 0;
            (pte & 0xF_FFFF_F000, pde & pte, nx, pte & 0x100 != 0, pte_at, pte)
        };
        let at = |a: u64| PhysAddr((a & a20) as u32);
        let leaf = Leaf {
            pde_at: at(pde_at),
            pde: pde as u32,
            pte_at: at(pte_at),
            pte: pte as u32,
            large,
            phys: page as u32,
            rights_raw: rights_raw as u32,
            global,
            nx: nx && nxe,
        };
        self.finish_walk(ctx, lin, acc, user, err_bits, leaf)
    }

    /// Segment checks for an access of `size` bytes at `off` (SDM 3, 5.3).
    /// Returns the linear address.
    #[inline]
    pub(crate) fn seg_check(&self, seg: usize, off: u32, size: u32, write: bool) -> Res<u32> {
        let s = &self.state.segs[seg];
        let fault = || if seg == SegReg::Ss as usize { Fault::ss(0) } else { Fault::gp(0) };
        let last = off.wrapping_add(size - 1);
        if self.state.protected() && !self.state.v86() {
            if s.flags & SEG_P == 0 || s.flags & SEG_S == 0 {
                // Null selector (cache marked not present) or system segment.
                return Err(fault());
            }
            if s.flags & SEG_CODE != 0 {
                if write || s.flags & SEG_RW == 0 {
                    return Err(fault());
                }
            } else if write && s.flags & SEG_RW == 0 {
                return Err(fault());
            }
            if s.flags & SEG_CODE == 0 && s.flags & SEG_DC != 0 {
                // Expand-down data: valid offsets are limit+1 ..= upper bound.
                let upper = if s.big() { u32::MAX } else { 0xFFFF };
                if off <= s.limit || last > upper || last < off {
                    return Err(fault());
                }
                return Ok(s.base.wrapping_add(off));
            }
        }
        if last > s.limit || last < off {
            return Err(fault());
        }
        Ok(s.base.wrapping_add(off))
    }

    /// Read `size` (1, 2 or 4) bytes at linear `lin` with the current
    /// privilege.
    #[inline]
    pub(crate) fn read_lin(&mut self, ctx: &mut Ctx, lin: u32, size: u32) -> Res<u32> {
        let user = self.state.cpl == 3;
        self.read_lin_as(ctx, lin, size, user)
    }

    pub(crate) fn read_lin_as(&mut self, ctx: &mut Ctx, lin: u32, size: u32, user: bool) -> Res<u32> {
        self.watch(lin, size, false);
        let sz = AccessSize::from_bytes(size);
        if (lin & PAGE_MASK) + size <= 0x1000 {
            let pa = self.translate_as(ctx, lin, Access::Read, user)?;
            return Ok(ctx.mem.read(pa, sz, ctx.bus));
        }
        // Crossing a page: translate both halves before touching memory.
        let lo = self.translate_as(ctx, lin, Access::Read, user)?;
        let hi_lin = (lin | PAGE_MASK).wrapping_add(1);
        let hi = self.translate_as(ctx, hi_lin, Access::Read, user)?;
        let nlo = hi_lin.wrapping_sub(lin);
        let mut v = 0;
        for i in 0..size {
            let pa = if i < nlo { PhysAddr(lo.0.wrapping_add(i)) } else { PhysAddr(hi.0.wrapping_add(i - nlo)) };
            v |= ctx.mem.read(pa, AccessSize::Byte, ctx.bus) << (8 * i);
        }
        Ok(v)
    }

    /// Supervisor read of linear memory (IVT, descriptor tables, TSS).
    pub(crate) fn read_lin_sys(&mut self, ctx: &mut Ctx, lin: u32, size: u32) -> Res<u32> {
        self.read_lin_as(ctx, lin, size, false)
    }

    #[inline]
    pub(crate) fn write_lin(&mut self, ctx: &mut Ctx, lin: u32, size: u32, v: u32) -> Res<()> {
        let user = self.state.cpl == 3;
        self.write_lin_as(ctx, lin, size, v, user)
    }

    pub(crate) fn write_lin_as(&mut self, ctx: &mut Ctx, lin: u32, size: u32, v: u32, user: bool) -> Res<()> {
        self.watch(lin, size, true);
        let sz = AccessSize::from_bytes(size);
        if (lin & PAGE_MASK) + size <= 0x1000 {
            let pa = self.translate_as(ctx, lin, Access::Write, user)?;
            ctx.mem.write(pa, sz, v, ctx.bus);
            return Ok(());
        }
        let lo = self.translate_as(ctx, lin, Access::Write, user)?;
        let hi_lin = (lin | PAGE_MASK).wrapping_add(1);
        let hi = self.translate_as(ctx, hi_lin, Access::Write, user)?;
        let nlo = hi_lin.wrapping_sub(lin);
        for i in 0..size {
            let pa = if i < nlo { PhysAddr(lo.0.wrapping_add(i)) } else { PhysAddr(hi.0.wrapping_add(i - nlo)) };
            ctx.mem.write(pa, AccessSize::Byte, (v >> (8 * i)) & 0xFF, ctx.bus);
        }
        Ok(())
    }

    /// Check that a write of `size` bytes at linear `lin` would succeed
    /// (used before multi-part stores so they are all-or-nothing).
    pub(crate) fn probe_write(&mut self, ctx: &mut Ctx, lin: u32, size: u32) -> Res<()> {
        self.translate(ctx, lin, Access::Write)?;
        let last = lin.wrapping_add(size - 1);
        if last & !PAGE_MASK != lin & !PAGE_MASK {
            self.translate(ctx, last, Access::Write)?;
        }
        Ok(())
    }

    /// Read through segment `seg` at offset `off`.
    #[inline]
    pub(crate) fn read_mem(&mut self, ctx: &mut Ctx, seg: usize, off: u32, size: u32) -> Res<u32> {
        let lin = self.seg_check(seg, off, size, false)?;
        self.check_align(lin, size)?;
        self.read_lin(ctx, lin, size)
    }

    /// Write through segment `seg` at offset `off`.
    #[inline]
    pub(crate) fn write_mem(&mut self, ctx: &mut Ctx, seg: usize, off: u32, size: u32, v: u32) -> Res<()> {
        let lin = self.seg_check(seg, off, size, true)?;
        self.check_align(lin, size)?;
        self.write_lin(ctx, lin, size, v)
    }

    /// Alignment check (#AC(0)) at CPL 3 with CR0.AM and EFLAGS.AC.
    #[inline]
    pub(crate) fn check_align(&self, lin: u32, size: u32) -> Res<()> {
        if size > 1
            && lin & (size - 1) != 0
            && self.state.cpl == 3
            && self.state.cr0 & super::state::CR0_AM != 0
            && self.state.flags.bits & flags::AC != 0
        {
            return Err(Fault { vector: 17, error: Some(0) });
        }
        Ok(())
    }

    /// Stack pointer mask for the current stack size.
    #[inline]
    pub(crate) fn sp_mask(&self) -> u32 {
        if self.state.stack32() {
            u32::MAX
        } else {
            0xFFFF
        }
    }

    #[inline]
    pub(crate) fn set_sp(&mut self, v: u32) {
        let m = self.sp_mask();
        self.state.regs[ESP] = (self.state.regs[ESP] & !m) | (v & m);
    }

    /// Push `size` bytes.
    #[inline]
    pub(crate) fn push(&mut self, ctx: &mut Ctx, v: u32, size: u32) -> Res<()> {
        let m = self.sp_mask();
        let sp = self.state.regs[ESP].wrapping_sub(size) & m;
        self.write_mem(ctx, SegReg::Ss as usize, sp, size, v)?;
        self.set_sp(sp);
        Ok(())
    }

    pub(crate) fn push16(&mut self, ctx: &mut Ctx, v: u16) -> Res<()> {
        self.push(ctx, v as u32, 2)
    }

    /// Pop `size` bytes.
    #[inline]
    pub(crate) fn pop(&mut self, ctx: &mut Ctx, size: u32) -> Res<u32> {
        let m = self.sp_mask();
        let sp = self.state.regs[ESP] & m;
        let v = self.read_mem(ctx, SegReg::Ss as usize, sp, size)?;
        self.set_sp(sp.wrapping_add(size));
        Ok(v)
    }

    /// Read the stack at SP + `offset` without popping.
    pub(crate) fn peek_stack(&mut self, ctx: &mut Ctx, offset: u32, size: u32) -> Res<u32> {
        let m = self.sp_mask();
        let sp = self.state.regs[ESP].wrapping_add(offset) & m;
        self.read_mem(ctx, SegReg::Ss as usize, sp, size)
    }
}

#[inline]
fn rights_bits(user: bool, rights: u32) -> u32 {
    rights | if user { TLB_USER } else { 0 }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bus::NullBus;
    use crate::cpu::state::{CR0_PE, CR4_PAE, EFER_NXE};
    use crate::mem::GuestMemory;

    /// A Pentium 4 with PAE paging on: PDPT at 0x1020 (32-byte aligned
    /// inside a page), page directory for the first GiB at 0x2000, a page
    /// table at 0x3000.
    fn pae_cpu(mem: &mut GuestMemory, nxe: bool) -> Cpu {
        let mut bus = NullBus;
        let mut put = |at: u32, v: u64| {
            mem.write(PhysAddr(at), AccessSize::Dword, v as u32, &mut bus);
            mem.write(PhysAddr(at + 4), AccessSize::Dword, (v >> 32) as u32, &mut bus);
        };
        put(0x1020, 0x2001);
        // PDE 0: the page table; PDE 1: a 2 MiB page at 4 MiB, XD set.
        put(0x2000, 0x3007);
        put(0x2008, 0x8000_0000_0040_0087);
        // PTE 5: physical 0x9000, user, read-only; PTE 6: XD, writable.
        put(0x3000 + 5 * 8, 0x9005);
        put(0x3000 + 6 * 8, 0x8000_0000_0000_A007);
        // PTE 7: a reserved bit (bit 40).
        put(0x3000 + 7 * 8, 0x0000_0100_0000_B007);
        let mut cpu = Cpu::new();
        cpu.set_model(crate::cpu::cpuid::CpuModel::Pentium4);
        cpu.state.cr3 = 0x1020;
        cpu.state.cr4 = CR4_PAE;
        cpu.state.cr0 |= CR0_PE | CR0_PG;
        if nxe {
            cpu.state.msr.efer = EFER_NXE;
        }
        cpu
    }

    #[test]
    fn pae_walks_4k_and_2m_pages_and_sets_accessed_and_dirty() {
        let mut mem = GuestMemory::new(16 << 20).unwrap();
        let mut cpu = pae_cpu(&mut mem, true);
        let mut bus = NullBus;
        let mut ctx = Ctx { mem: &mut mem, bus: &mut bus };
        assert_eq!(cpu.translate_as(&mut ctx, 0x5123, Access::Read, true), Ok(PhysAddr(0x9123)));
        assert_eq!(ctx.mem.read(PhysAddr(0x3028), AccessSize::Dword, ctx.bus) & 0x60, 0x20, "accessed");
        assert_eq!(cpu.translate_as(&mut ctx, 0x2A_BCDE, Access::Write, false), Ok(PhysAddr(0x4A_BCDE)));
        assert_eq!(ctx.mem.read(PhysAddr(0x2008), AccessSize::Dword, ctx.bus) & 0x60, 0x60, "2 MiB page dirty");
        // A user write to the read-only page: #PF, present, write, user.
        assert_eq!(cpu.translate_as(&mut ctx, 0x5000, Access::Write, true), Err(Fault::pf(7)));
        assert_eq!(cpu.state.cr2, 0x5000);
    }

    #[test]
    fn nx_forbids_fetches_with_nxe_and_is_reserved_without() {
        let mut mem = GuestMemory::new(16 << 20).unwrap();
        let mut cpu = pae_cpu(&mut mem, true);
        let mut bus = NullBus;
        let mut ctx = Ctx { mem: &mut mem, bus: &mut bus };
        assert_eq!(cpu.translate_as(&mut ctx, 0x6010, Access::Read, false), Ok(PhysAddr(0xA010)));
        // Cached now, but a fetch must still fault: present, I/D.
        assert_eq!(cpu.translate_as(&mut ctx, 0x6010, Access::Fetch, false), Err(Fault::pf(0x11)));
        assert_eq!(cpu.translate_as(&mut ctx, 0x20_0000, Access::Fetch, true), Err(Fault::pf(0x15)));
        assert_eq!(cpu.translate_as(&mut ctx, 0x5000, Access::Fetch, true), Ok(PhysAddr(0x9000)));
        // Reserved address bits: present, RSVD.
        assert_eq!(cpu.translate_as(&mut ctx, 0x7000, Access::Read, false), Err(Fault::pf(0x9)));
        let mut cpu = pae_cpu(&mut mem, false);
        let mut ctx = Ctx { mem: &mut mem, bus: &mut bus };
        assert_eq!(cpu.translate_as(&mut ctx, 0x6010, Access::Read, false), Err(Fault::pf(0x9)), "XD reserved");
    }

    #[test]
    fn invlpg_anywhere_in_a_4mib_page_drops_all_its_pieces() {
        let mut mem = GuestMemory::new(16 << 20).unwrap();
        let mut bus = NullBus;
        let mut cpu = Cpu::new();
        // Page directory at 0x1000; PDE 4 maps linear 16 MiB to physical 4 MiB.
        mem.write(PhysAddr(0x1000 + 4 * 4), AccessSize::Dword, 0x0040_0083, &mut bus);
        cpu.state.cr3 = 0x1000;
        cpu.state.cr4 = CR4_PSE;
        cpu.state.cr0 |= CR0_PE | CR0_PG;
        let mut ctx = Ctx { mem: &mut mem, bus: &mut bus };
        let lin = 0x0100_1234;
        assert_eq!(cpu.translate_as(&mut ctx, lin, Access::Read, false), Ok(PhysAddr(0x0040_1234)));
        ctx.mem.write(PhysAddr(0x1000 + 4 * 4), AccessSize::Dword, 0x0080_0083, ctx.bus);
        assert_eq!(
            cpu.translate_as(&mut ctx, lin, Access::Read, false),
            Ok(PhysAddr(0x0040_1234)),
            "stale until INVLPG"
        );
        cpu.tlb.flush_page(0x0100_0000);
        assert_eq!(cpu.translate_as(&mut ctx, lin, Access::Read, false), Ok(PhysAddr(0x0080_1234)));
    }
}
