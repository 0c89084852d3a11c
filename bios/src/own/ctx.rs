//! The view a service has of the machine while it runs: registers, the
//! interrupt frame on the caller's stack, guest memory by linear address
//! (through the page tables when the caller runs in V86 mode under a
//! paging monitor, as a ROM BIOS's own accesses would), the BIOS data
//! area and port I/O.
//!
//! Nothing here can fail in a way the guest could turn into a host panic:
//! an address that does not translate reads as 0xFF and drops writes.

use ferrite_core::cpu::state::{SegReg, CR0_PG, CR4_PSE, EAX, EBP, EBX, ECX, EDI, EDX, ESI, ESP};
use ferrite_core::{AccessSize, Cpu, GuestMemory, PhysAddr};

use super::platform::Platform;

/// EFLAGS bits the services return.
pub const CF: u16 = 1 << 0;
pub const ZF: u16 = 1 << 6;

/// Linear address of the BIOS data area (segment 0x40).
pub const BDA: u32 = 0x400;

pub(crate) struct Ctx<'a> {
    pub cpu: &'a mut Cpu,
    pub mem: &'a mut GuestMemory,
    pub p: &'a mut dyn Platform,
}

macro_rules! reg16 {
    ($get:ident, $set:ident, $idx:expr) => {
        pub fn $get(&self) -> u16 {
            self.cpu.state.regs[$idx] as u16
        }
        pub fn $set(&mut self, v: u16) {
            let r = &mut self.cpu.state.regs[$idx];
            *r = (*r & 0xFFFF_0000) | v as u32;
        }
    };
}

macro_rules! reg8 {
    ($lo:ident, $set_lo:ident, $hi:ident, $set_hi:ident, $idx:expr) => {
        pub fn $lo(&self) -> u8 {
            self.cpu.state.regs[$idx] as u8
        }
        pub fn $set_lo(&mut self, v: u8) {
            let r = &mut self.cpu.state.regs[$idx];
            *r = (*r & !0xFF) | v as u32;
        }
        pub fn $hi(&self) -> u8 {
            (self.cpu.state.regs[$idx] >> 8) as u8
        }
        pub fn $set_hi(&mut self, v: u8) {
            let r = &mut self.cpu.state.regs[$idx];
            *r = (*r & !0xFF00) | (v as u32) << 8;
        }
    };
}

/// The register set: not every service needs every accessor.
#[allow(dead_code)]
impl Ctx<'_> {
    reg16!(ax, set_ax, EAX);
    reg16!(bx, set_bx, EBX);
    reg16!(cx, set_cx, ECX);
    reg16!(dx, set_dx, EDX);
    reg16!(si, set_si, ESI);
    reg16!(di, set_di, EDI);
    reg16!(bp, set_bp, EBP);
    reg8!(al, set_al, ah, set_ah, EAX);
    reg8!(bl, set_bl, bh, set_bh, EBX);
    reg8!(cl, set_cl, ch, set_ch, ECX);
    reg8!(dl, set_dl, dh, set_dh, EDX);
}

impl Ctx<'_> {
    // ---- registers -------------------------------------------------------

    pub fn reg32(&self, r: usize) -> u32 {
        self.cpu.state.regs[r]
    }

    pub fn set_reg32(&mut self, r: usize, v: u32) {
        self.cpu.state.regs[r] = v;
    }

    /// Load a segment register as real (or V86) mode does. A caller in
    /// protected mode (a 16-bit selector based at F0000h reaching a stub)
    /// keeps its segments: a real-mode load would corrupt the descriptor
    /// cache.
    pub fn set_sel(&mut self, s: SegReg, v: u16) {
        if self.cpu.state.protected() && !self.cpu.state.v86() {
            tracing::debug!("own BIOS: segment {s:?} not loaded for a protected-mode caller");
            return;
        }
        self.cpu.state.load_seg_real(s, v);
    }

    /// Linear address of `seg:off` through the segment's cached base (so
    /// "unreal" segments with a big base work as on hardware).
    pub fn lin(&self, s: SegReg, off: u16) -> u32 {
        self.cpu.state.seg(s).base.wrapping_add(off as u32)
    }

    /// Continue at CS:IP.
    pub fn jump(&mut self, cs: u16, ip: u16) {
        self.set_sel(SegReg::Cs, cs);
        self.cpu.state.eip = ip as u32;
    }

    /// Continue at offset `ip` in the current code segment.
    pub fn jump_near(&mut self, ip: u16) {
        self.cpu.state.eip = ip as u32;
    }

    // ---- the interrupt frame ---------------------------------------------

    /// Linear address of the stack top.
    pub fn stack_top(&self) -> u32 {
        let sp = if self.cpu.state.stack32() { self.cpu.state.regs[ESP] } else { self.cpu.state.regs[ESP] & 0xFFFF };
        self.cpu.state.seg(SegReg::Ss).base.wrapping_add(sp)
    }

    /// Linear address of the FLAGS word the INT pushed (the trap stubs
    /// push nothing before their OUT).
    fn frame_flags(&self) -> u32 {
        self.stack_top().wrapping_add(4)
    }

    /// Set or clear bits of the FLAGS the stub's IRET will restore.
    pub fn set_flag(&mut self, bit: u16, on: bool) {
        let at = self.frame_flags();
        let f = self.rd16(at);
        self.wr16(at, if on { f | bit } else { f & !bit });
    }

    /// Success: AH = 0, CF clear.
    pub fn ok(&mut self) {
        self.set_ah(0);
        self.set_flag(CF, false);
    }

    /// Failure: AH = `code`, CF set.
    pub fn fail(&mut self, code: u8) {
        self.set_ah(code);
        self.set_flag(CF, true);
    }

    /// Push a word on the caller's 16-bit stack.
    pub fn push16(&mut self, v: u16) {
        let sp = self.sp().wrapping_sub(2);
        self.set_sp(sp);
        let at = self.stack_top();
        self.wr16(at, v);
    }

    pub fn pop16(&mut self) -> u16 {
        let at = self.stack_top();
        let v = self.rd16(at);
        let sp = self.sp().wrapping_add(2);
        self.set_sp(sp);
        v
    }

    pub fn sp(&self) -> u16 {
        self.cpu.state.regs[ESP] as u16
    }

    pub fn set_sp(&mut self, v: u16) {
        let r = &mut self.cpu.state.regs[ESP];
        *r = (*r & 0xFFFF_0000) | v as u32;
    }

    // ---- memory ----------------------------------------------------------

    /// Physical address of linear `lin`: the identity (under the A20 gate)
    /// without paging, else a walk of the caller's page tables (4 KiB and
    /// 4 MiB pages) that sets the accessed and, for writes, dirty bits as
    /// the MMU would. None when the page is not present.
    pub fn phys(&mut self, lin: u32, write: bool) -> Option<u32> {
        let st = &self.cpu.state;
        let a20 = self.mem.a20_mask();
        if st.cr0 & CR0_PG == 0 {
            return Some(lin & a20);
        }
        let pse = st.cr4 & CR4_PSE != 0;
        let pde_at = ((st.cr3 & !0xFFF) | ((lin >> 22) << 2)) & a20;
        let pde = self.mem.read(PhysAddr(pde_at), AccessSize::Dword, self.p.as_bus());
        if pde & 1 == 0 {
            return None;
        }
        if pse && pde & 0x80 != 0 {
            let set = 0x20 | if write { 0x40 } else { 0 };
            if pde & set != set {
                self.mem.write(PhysAddr(pde_at), AccessSize::Dword, pde | set, self.p.as_bus());
            }
            return Some(((pde & 0xFFC0_0000) | (lin & 0x3F_FFFF)) & a20);
        }
        if pde & 0x20 == 0 {
            self.mem.write(PhysAddr(pde_at), AccessSize::Dword, pde | 0x20, self.p.as_bus());
        }
        let pte_at = ((pde & !0xFFF) | (((lin >> 12) & 0x3FF) << 2)) & a20;
        let pte = self.mem.read(PhysAddr(pte_at), AccessSize::Dword, self.p.as_bus());
        if pte & 1 == 0 {
            return None;
        }
        let set = 0x20 | if write { 0x40 } else { 0 };
        if pte & set != set {
            self.mem.write(PhysAddr(pte_at), AccessSize::Dword, pte | set, self.p.as_bus());
        }
        Some(((pte & !0xFFF) | (lin & 0xFFF)) & a20)
    }

    pub fn rd8(&mut self, lin: u32) -> u8 {
        match self.phys(lin, false) {
            Some(a) => self.mem.read(PhysAddr(a), AccessSize::Byte, self.p.as_bus()) as u8,
            None => 0xFF,
        }
    }

    pub fn wr8(&mut self, lin: u32, v: u8) {
        if let Some(a) = self.phys(lin, true) {
            self.mem.write(PhysAddr(a), AccessSize::Byte, v as u32, self.p.as_bus());
        }
    }

    pub fn rd16(&mut self, lin: u32) -> u16 {
        u16::from_le_bytes([self.rd8(lin), self.rd8(lin.wrapping_add(1))])
    }

    pub fn wr16(&mut self, lin: u32, v: u16) {
        let b = v.to_le_bytes();
        self.wr8(lin, b[0]);
        self.wr8(lin.wrapping_add(1), b[1]);
    }

    pub fn rd32(&mut self, lin: u32) -> u32 {
        self.rd16(lin) as u32 | (self.rd16(lin.wrapping_add(2)) as u32) << 16
    }

    pub fn wr32(&mut self, lin: u32, v: u32) {
        self.wr16(lin, v as u16);
        self.wr16(lin.wrapping_add(2), (v >> 16) as u16);
    }

    /// Copy guest memory at `lin` into `buf` (one translation per page).
    pub fn read_bytes(&mut self, lin: u32, buf: &mut [u8]) {
        let mut done = 0usize;
        while done < buf.len() {
            let at = lin.wrapping_add(done as u32);
            let n = ((0x1000 - (at & 0xFFF)) as usize).min(buf.len() - done);
            match self.phys(at, false) {
                Some(p) => {
                    for (i, b) in buf[done..done + n].iter_mut().enumerate() {
                        *b = self.mem.read(PhysAddr(p.wrapping_add(i as u32)), AccessSize::Byte, self.p.as_bus()) as u8;
                    }
                }
                None => buf[done..done + n].fill(0xFF),
            }
            done += n;
        }
    }

    /// Copy `bytes` into guest memory at `lin` (ROM and unmapped pages drop
    /// the write; code on written pages is invalidated by the memory).
    pub fn write_bytes(&mut self, lin: u32, bytes: &[u8]) {
        let mut done = 0usize;
        while done < bytes.len() {
            let at = lin.wrapping_add(done as u32);
            let n = ((0x1000 - (at & 0xFFF)) as usize).min(bytes.len() - done);
            if let Some(p) = self.phys(at, true) {
                for (i, b) in bytes[done..done + n].iter().enumerate() {
                    self.mem.write(PhysAddr(p.wrapping_add(i as u32)), AccessSize::Byte, *b as u32, self.p.as_bus());
                }
            }
            done += n;
        }
    }

    /// Physical memory, bypassing paging and the A20 gate (INT 15h AH=87h
    /// copies between protected-mode addresses).
    pub fn phys_rd8(&mut self, addr: u32) -> u8 {
        self.mem.read(PhysAddr(addr), AccessSize::Byte, self.p.as_bus()) as u8
    }

    pub fn phys_wr8(&mut self, addr: u32, v: u8) {
        self.mem.write(PhysAddr(addr), AccessSize::Byte, v as u32, self.p.as_bus());
    }

    // ---- BIOS data area --------------------------------------------------

    pub fn bda8(&mut self, off: u16) -> u8 {
        self.rd8(BDA + off as u32)
    }

    pub fn set_bda8(&mut self, off: u16, v: u8) {
        self.wr8(BDA + off as u32, v)
    }

    pub fn bda16(&mut self, off: u16) -> u16 {
        self.rd16(BDA + off as u32)
    }

    pub fn set_bda16(&mut self, off: u16, v: u16) {
        self.wr16(BDA + off as u32, v)
    }

    pub fn bda32(&mut self, off: u16) -> u32 {
        self.rd32(BDA + off as u32)
    }

    pub fn set_bda32(&mut self, off: u16, v: u32) {
        self.wr32(BDA + off as u32, v)
    }

    /// A function the BIOS does not implement (logged at debug level).
    pub fn log_unsupported(&self, int: u8, ah: u8) {
        tracing::debug!("own BIOS: INT {int:02X}h AH={ah:02X}h is not implemented");
    }

    // ---- ports -----------------------------------------------------------

    pub fn inb(&mut self, port: u16) -> u8 {
        self.p.io_read(port, AccessSize::Byte) as u8
    }

    pub fn outb(&mut self, port: u16, v: u8) {
        self.p.io_write(port, AccessSize::Byte, v as u32)
    }

    pub fn inw(&mut self, port: u16) -> u16 {
        self.p.io_read(port, AccessSize::Word) as u16
    }

    pub fn outw(&mut self, port: u16, v: u16) {
        self.p.io_write(port, AccessSize::Word, v as u32)
    }

    pub fn inl(&mut self, port: u16) -> u32 {
        self.p.io_read(port, AccessSize::Dword)
    }

    pub fn outl(&mut self, port: u16, v: u32) {
        self.p.io_write(port, AccessSize::Dword, v)
    }

    /// Read CMOS register `reg` through ports 0x70/0x71.
    pub fn cmos(&mut self, reg: u8) -> u8 {
        self.outb(0x70, reg & 0x7F);
        self.inb(0x71)
    }

    pub fn set_cmos(&mut self, reg: u8, v: u8) {
        self.outb(0x70, reg & 0x7F);
        self.outb(0x71, v);
    }
}
