//! Segmentation, paging with a software TLB, and the memory/stack access
//! helpers every instruction uses. All checks happen before any state
//! changes, so a faulting access leaves the instruction restartable.

use super::flags;
use super::state::{SegReg, CR0_PG, CR0_WP, CR4_PGE, CR4_PSE, ESP, SEG_CODE, SEG_DC, SEG_P, SEG_RW, SEG_S};
use super::{Cpu, Ctx, Fault, Res};
use crate::bus::AccessSize;
use crate::mem::{PhysAddr, PAGE_MASK};

const TLB_SIZE: usize = 1024;
const TLB_VALID: u32 = 1;
const TLB_USER: u32 = 1 << 1;
const TLB_WRITE: u32 = 1 << 2;
const TLB_DIRTY: u32 = 1 << 3;
const TLB_GLOBAL: u32 = 1 << 4;
/// The translation came from a 4 MiB page.
const TLB_LARGE: u32 = 1 << 5;

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
            if ok_user && ok_write {
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
        let u = rights_raw & 4 != 0;
        let w = rights_raw & 2 != 0;
        if user && !u {
            return fault(self, true, false);
        }
        let rights = if w { TLB_WRITE } else { 0 };
        if write && !self.write_allowed(rights, user) {
            return fault(self, true, false);
        }
        // Accessed bits on both levels, dirty on the last on a write.
        if pde & 0x20 == 0 && !pse {
            ctx.mem.write(pde_addr, AccessSize::Dword, pde | 0x20, ctx.bus);
        }
        let mut new = pte | 0x20;
        if write {
            new |= 0x40;
        }
        if new != pte {
            ctx.mem.write(pte_addr, AccessSize::Dword, new, ctx.bus);
        }
        let mut bits = rights_bits(u, rights);
        if new & 0x40 != 0 {
            bits |= TLB_DIRTY;
        }
        if global && self.state.cr4 & CR4_PGE != 0 {
            bits |= TLB_GLOBAL;
        }
        if pse {
            bits |= TLB_LARGE;
            self.tlb.has_large = true;
        }
        self.tlb.entries[(lin >> 12) as usize % TLB_SIZE] =
            TlbEntry { tag: (lin & !PAGE_MASK) | TLB_VALID, phys: phys_page | bits };
        Ok(PhysAddr((phys_page | (lin & PAGE_MASK)) & a20))
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
    use crate::cpu::state::CR0_PE;
    use crate::mem::GuestMemory;

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
