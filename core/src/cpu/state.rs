//! Architectural CPU state. `repr(C)` so translated code can address fields
//! by `offset_of!`. Register fields are 32 bits; widening for long mode later
//! touches this file and the accessors only.

use super::flags::Flags;

/// General-purpose register numbers in x86 encoding order.
pub const EAX: usize = 0;
pub const ECX: usize = 1;
pub const EDX: usize = 2;
pub const EBX: usize = 3;
pub const ESP: usize = 4;
pub const EBP: usize = 5;
pub const ESI: usize = 6;
pub const EDI: usize = 7;

/// Segment registers in x86 encoding order.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SegReg {
    Es = 0,
    Cs = 1,
    Ss = 2,
    Ds = 3,
    Fs = 4,
    Gs = 5,
}

impl SegReg {
    pub const ALL: [SegReg; 6] = [SegReg::Es, SegReg::Cs, SegReg::Ss, SegReg::Ds, SegReg::Fs, SegReg::Gs];

    pub fn from_index(i: usize) -> Option<SegReg> {
        SegReg::ALL.get(i).copied()
    }
}

// Descriptor access-rights bits as kept in `Segment::flags` (the second
// descriptor dword's bits 8..23, i.e. type, S, DPL, P, AVL, L, D/B, G).
pub const SEG_ACCESSED: u32 = 1 << 8;
pub const SEG_RW: u32 = 1 << 9;
pub const SEG_DC: u32 = 1 << 10;
pub const SEG_CODE: u32 = 1 << 11;
pub const SEG_S: u32 = 1 << 12;
pub const SEG_P: u32 = 1 << 15;
pub const SEG_DB: u32 = 1 << 22;
pub const SEG_G: u32 = 1 << 23;

/// A segment register with its hidden descriptor cache.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Segment {
    pub selector: u16,
    pub base: u32,
    /// Effective limit in bytes (granularity already applied).
    pub limit: u32,
    /// Descriptor dword 2 masked to bits 8..23 (type, S, DPL, P, D/B, G).
    pub flags: u32,
}

impl Segment {
    /// The descriptor cache real mode loads: base = selector * 16, 64 KiB
    /// limit, present writable data (CS keeps readable-code attributes).
    pub fn real_mode(selector: u16) -> Segment {
        Segment { selector, base: (selector as u32) << 4, limit: 0xFFFF, flags: SEG_P | SEG_S | SEG_RW | SEG_ACCESSED }
    }

    pub fn dpl(&self) -> u8 {
        ((self.flags >> 13) & 3) as u8
    }

    /// D/B bit: 32-bit default operand size (code) or stack size (SS).
    pub fn big(&self) -> bool {
        self.flags & SEG_DB != 0
    }
}

/// GDTR / IDTR.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TableReg {
    pub base: u32,
    pub limit: u32,
}

/// Model-specific registers that the P6 core keeps.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Msrs {
    pub sysenter_cs: u32,
    pub sysenter_esp: u32,
    pub sysenter_eip: u32,
    pub apic_base: u64,
    /// IA32_EFER (C0000080h): only NXE (bit 11) on a model with NX.
    pub efer: u64,
    /// IA32_MISC_ENABLE (1A0h) on a Pentium 4 model.
    pub misc_enable: u64,
}

/// EFER.NXE: the XD bit of PAE paging entries forbids instruction fetches.
pub const EFER_NXE: u64 = 1 << 11;

/// The architectural state of one x86 CPU.
#[repr(C)]
#[derive(Clone, Debug)]
pub struct CpuState {
    pub regs: [u32; 8],
    pub eip: u32,
    pub flags: Flags,
    pub segs: [Segment; 6],
    pub ldtr: Segment,
    pub tr: Segment,
    pub gdtr: TableReg,
    pub idtr: TableReg,
    pub cr0: u32,
    pub cr2: u32,
    pub cr3: u32,
    pub cr4: u32,
    pub dr: [u32; 8],
    /// Current privilege level (CS.RPL outside real mode, 0 in real mode,
    /// 3 in V86 mode).
    pub cpl: u8,
    /// Set by HLT, cleared by an interrupt or reset.
    pub halted: bool,
    /// Interrupts are inhibited for one instruction (after STI, MOV SS, POP SS).
    pub int_shadow: bool,
    /// Offset of the time-stamp counter from the retired-instruction count
    /// (see `Cpu::tsc`).
    pub tsc: u64,
    pub msr: Msrs,
    /// The x87 FPU.
    pub fpu: super::fpu::FpuState,
    /// XMM registers and MXCSR (used when the model has SSE).
    pub sse: super::fpu::sse::SseState,
}

pub const CR0_PE: u32 = 1 << 0;
pub const CR0_MP: u32 = 1 << 1;
pub const CR0_EM: u32 = 1 << 2;
pub const CR0_TS: u32 = 1 << 3;
pub const CR0_ET: u32 = 1 << 4;
pub const CR0_NE: u32 = 1 << 5;
pub const CR0_WP: u32 = 1 << 16;
pub const CR0_AM: u32 = 1 << 18;
pub const CR0_NW: u32 = 1 << 29;
pub const CR0_CD: u32 = 1 << 30;
pub const CR0_PG: u32 = 1 << 31;

pub const CR4_VME: u32 = 1 << 0;
pub const CR4_PVI: u32 = 1 << 1;
pub const CR4_TSD: u32 = 1 << 2;
pub const CR4_DE: u32 = 1 << 3;
pub const CR4_PSE: u32 = 1 << 4;
pub const CR4_PGE: u32 = 1 << 7;
/// Physical address extension: 64-bit paging entries, 2 MiB pages.
pub const CR4_PAE: u32 = 1 << 5;
/// The OS saves the x87/MMX (and SSE) state with FXSAVE/FXRSTOR.
pub const CR4_OSFXSR: u32 = 1 << 9;

impl Default for CpuState {
    fn default() -> Self {
        CpuState::reset()
    }
}

impl CpuState {
    /// The state after RESET (Intel SDM vol. 3, 9.1.1): real mode, CS:EIP =
    /// F000:FFF0 with CS base FFFF0000, EDX = processor signature.
    pub fn reset() -> CpuState {
        let mut segs = [Segment::real_mode(0); 6];
        segs[SegReg::Cs as usize] = Segment {
            selector: 0xF000,
            base: 0xFFFF_0000,
            limit: 0xFFFF,
            flags: Segment::real_mode(0).flags | SEG_CODE,
        };
        let mut regs = [0; 8];
        regs[EDX] = super::cpuid::SIGNATURE;
        CpuState {
            regs,
            eip: 0xFFF0,
            flags: Flags::default(),
            segs,
            ldtr: Segment { selector: 0, base: 0, limit: 0xFFFF, flags: SEG_P | 0x200 },
            tr: Segment { selector: 0, base: 0, limit: 0xFFFF, flags: SEG_P | 0xB00 },
            gdtr: TableReg { base: 0, limit: 0xFFFF },
            idtr: TableReg { base: 0, limit: 0x3FF },
            cr0: CR0_ET | CR0_CD | CR0_NW,
            cr2: 0,
            cr3: 0,
            cr4: 0,
            dr: [0, 0, 0, 0, 0, 0, 0xFFFF_0FF0, 0x400],
            cpl: 0,
            halted: false,
            int_shadow: false,
            tsc: 0,
            msr: Msrs { apic_base: 0xFEE0_0900, misc_enable: 1, ..Msrs::default() },
            fpu: super::fpu::FpuState::reset(),
            sse: super::fpu::sse::SseState::default(),
        }
    }

    #[inline]
    pub fn reg16(&self, r: usize) -> u16 {
        self.regs[r] as u16
    }

    #[inline]
    pub fn set_reg16(&mut self, r: usize, v: u16) {
        self.regs[r] = (self.regs[r] & 0xFFFF_0000) | v as u32;
    }

    /// 8-bit register by encoding: 0-3 = AL CL DL BL, 4-7 = AH CH DH BH.
    #[inline]
    pub fn reg8(&self, r: usize) -> u8 {
        if r < 4 {
            self.regs[r] as u8
        } else {
            (self.regs[r - 4] >> 8) as u8
        }
    }

    #[inline]
    pub fn set_reg8(&mut self, r: usize, v: u8) {
        if r < 4 {
            self.regs[r] = (self.regs[r] & !0xFF) | v as u32;
        } else {
            self.regs[r - 4] = (self.regs[r - 4] & !0xFF00) | ((v as u32) << 8);
        }
    }

    #[inline]
    pub fn seg(&self, s: SegReg) -> &Segment {
        &self.segs[s as usize]
    }

    /// True in protected mode (including V86).
    #[inline]
    pub fn protected(&self) -> bool {
        self.cr0 & CR0_PE != 0
    }

    /// True in virtual-8086 mode.
    #[inline]
    pub fn v86(&self) -> bool {
        self.flags.bits & super::flags::VM != 0
    }

    /// Real-mode or V86 style segment load: base = selector << 4, other cache
    /// fields kept as a real-mode load leaves them (SDM 3, 20.1.1: only the
    /// base and selector change in real mode).
    pub fn load_seg_real(&mut self, s: SegReg, selector: u16) {
        let seg = &mut self.segs[s as usize];
        seg.selector = selector;
        seg.base = (selector as u32) << 4;
        if self.flags.bits & super::flags::VM != 0 {
            seg.limit = 0xFFFF;
            seg.flags = Segment::real_mode(0).flags | if s == SegReg::Cs { SEG_CODE } else { 0 } | (3 << 13);
        }
    }

    /// The full EFLAGS value with lazy flags materialized.
    #[inline]
    pub fn eflags(&self) -> u32 {
        self.flags.value()
    }

    /// Set EFLAGS as a debugger or loader would (no privilege checks).
    pub fn set_eflags(&mut self, v: u32) {
        self.flags.load(v, u32::MAX);
    }

    /// Flat 32-bit protected mode without descriptor tables (tests,
    /// benchmarks): CR0.PE set and the segment caches loaded directly, CS
    /// (selector `code_sel`) an execute/read code segment and DS, ES, SS,
    /// FS, GS (selector `data_sel`) read/write data segments, all based at
    /// 0 with a 4 GiB limit, 32-bit. CPL stays as it is.
    pub fn enter_flat32(&mut self, code_sel: u16, data_sel: u16) {
        self.cr0 |= CR0_PE;
        let flat = |selector: u16, code: bool| Segment {
            selector,
            base: 0,
            limit: u32::MAX,
            flags: SEG_P | SEG_S | SEG_DB | SEG_G | SEG_RW | SEG_ACCESSED | if code { SEG_CODE } else { 0 },
        };
        self.segs[SegReg::Cs as usize] = flat(code_sel, true);
        for s in [SegReg::Ds, SegReg::Es, SegReg::Ss, SegReg::Fs, SegReg::Gs] {
            self.segs[s as usize] = flat(data_sel, false);
        }
    }

    /// Default operand/address size of the code segment is 32 bits.
    #[inline]
    pub fn code32(&self) -> bool {
        self.segs[SegReg::Cs as usize].big() && !self.v86()
    }

    /// Stack uses ESP (32-bit) rather than SP.
    #[inline]
    pub fn stack32(&self) -> bool {
        self.segs[SegReg::Ss as usize].big() && !self.v86()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_registers_alias_low_and_high_halves() {
        let mut s = CpuState::reset();
        s.regs[EAX] = 0x1234_5678;
        assert_eq!(s.reg8(0), 0x78);
        assert_eq!(s.reg8(4), 0x56);
        s.set_reg8(4, 0xAB);
        assert_eq!(s.regs[EAX], 0x1234_AB78);
        s.set_reg16(EAX, 0xBEEF);
        assert_eq!(s.regs[EAX], 0x1234_BEEF);
    }

    #[test]
    fn reset_starts_at_the_reset_vector() {
        let s = CpuState::reset();
        let cs = s.seg(SegReg::Cs);
        assert_eq!(cs.base.wrapping_add(s.eip), 0xFFFF_FFF0);
        assert_eq!(s.eflags(), 2);
        assert!(!s.protected());
    }
}
