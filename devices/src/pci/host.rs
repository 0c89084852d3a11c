//! The Intel 82441FX PCI and Memory Controller (PMC), the host bridge of the
//! i440FX chipset, as PCI function 00:00.0.
//!
//! Reference: Intel 440FX PCIset 82441FX PMC and 82442FX DBX datasheet
//! (order 290549), section 3.2 "PCI Configuration Space Mapped Registers":
//! VID/DID/PCICMD/PCISTS/RID/CLASSC/MLT/HEDT/BIST (3.2.1-3.2.9), PMCCFG,
//! DETURBO, DBC, AXC, DRAMR, DRAMC, DRAMT, PAM0-PAM6 (3.2.17), DRB0-DRB7,
//! FDHC, MTT, CLT, SMRAM (3.2.23), ERRCMD, ERRSTS, TRC.
//!
//! The PAM registers decide whether CPU accesses to 0xC0000-0xFFFFF go to
//! DRAM (shadow RAM) or to PCI/ISA (the ROMs): each nibble has RE (bit 0) and
//! WE (bit 1); bits 2 and 3 of a nibble are reserved on the 82441FX
//! (cacheability comes from the CPU's MTRRs). PAM0 bits 3:0 are reserved;
//! PAM0 bits 7:4 control the BIOS area 0xF0000-0xFFFFF; PAM1-PAM6 control
//! 16 KiB segments from 0xC0000 up, low nibble first.
//!
//! Not modelled (plain storage): DRAM timing and refresh, the DRB row
//! boundaries (the board sizes RAM itself), the fixed DRAM hole (FDHC), the
//! turbo-reset control register, error reporting. SMRAM decoding is exposed
//! ([`I440fx::smram_open`]) but routing 0xA0000-0xBFFFF is the board's.

use std::any::Any;

use super::{cmd, reg, status, ConfigSpace, PciFunction};
use crate::AccessSize;

/// PCI device ID of the 82441FX.
pub const DEVICE_ID: u16 = 0x1237;
/// Intel's vendor ID.
pub const VENDOR_INTEL: u16 = 0x8086;

/// PAM0 (PAM1-PAM6 follow at 0x5A-0x5F).
pub const PAM0: u8 = 0x59;
/// DRAM row boundary registers DRB0-DRB7 (8 MiB units, cumulative).
pub const DRB0: u8 = 0x60;
/// System management RAM control.
pub const SMRAM: u8 = 0x72;

/// SMRAM bit 6: SMM space open to non-SMM accesses.
pub const SMRAM_D_OPEN: u8 = 0x40;
/// SMRAM bit 5: SMM space closed to data accesses.
pub const SMRAM_D_CLS: u8 = 0x20;
/// SMRAM bit 4: lock (only a power-on reset clears it).
pub const SMRAM_D_LCK: u8 = 0x10;
/// SMRAM bit 3: global SMRAM enable.
pub const SMRAM_G_SMRAME: u8 = 0x08;
/// SMRAM bits 2:0: C_BASE_SEG, hardwired to 010 (0xA0000-0xBFFFF).
pub const SMRAM_C_BASE_SEG: u8 = 0x02;

/// Number of PAM-controlled regions: the BIOS area and twelve 16 KiB
/// segments.
pub const PAM_REGIONS: usize = 13;

/// One shadow-RAM region and where CPU accesses to it go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PamRegion {
    pub base: u32,
    pub len: u32,
    /// RE: reads come from DRAM (else from PCI/ISA, i.e. the ROM).
    pub read_ram: bool,
    /// WE: writes go to DRAM (else to PCI/ISA, where ROM ignores them).
    pub write_ram: bool,
}

/// The i440FX host bridge.
#[derive(Clone, Debug)]
pub struct I440fx {
    cfg: ConfigSpace,
    /// PAM or SMRAM changed since the board last looked.
    pam_changed: bool,
}

impl Default for I440fx {
    fn default() -> Self {
        I440fx::new()
    }
}

impl I440fx {
    /// Power-on values from the datasheet's register descriptions.
    pub fn new() -> I440fx {
        use AccessSize::{Byte, Word};
        let mut cfg = ConfigSpace::new(VENDOR_INTEL, DEVICE_ID, 0x02, 0x06_00_00)
            // PCICMD (3.2.3): MAE and BME hardwired to 1, only PERR# and SERR#
            // enable are writable.
            .with_command(cmd::MEMORY_SPACE | cmd::BUS_MASTER, cmd::PARITY_ERROR_RESPONSE | cmd::SERR_ENABLE)
            // PCISTS (3.2.4): fast back-to-back capable, medium DEVSEL#; the
            // error bits are R/WC. Default 0280h.
            .with_status(
                status::FAST_BACK_TO_BACK | status::DEVSEL_MEDIUM,
                status::DETECTED_PARITY_ERROR
                    | status::SIGNALED_SYSTEM_ERROR
                    | status::RECEIVED_MASTER_ABORT
                    | status::RECEIVED_TARGET_ABORT
                    | status::DATA_PARITY_DETECTED,
            )
            .with_header_type(0x00)
            // MLT: master latency timer, bits 7:3 writable.
            .with_reg(reg::LATENCY_TIMER, Byte, 0x00, 0xF8)
            // The host bridge has no interrupt line register (reserved).
            .with_reg(reg::INTERRUPT_LINE, Byte, 0, 0);
        // PMCCFG, DETURBO, DBC, AXC, DRAMR, DRAMC, DRAMT: plain storage with
        // the datasheet defaults.
        cfg.define(0x50, Word, 0x0000, 0xFFFF);
        cfg.define(0x52, Byte, 0x00, 0xFF);
        cfg.define(0x53, Byte, 0x80, 0xFF);
        cfg.define(0x54, Byte, 0x00, 0xFF);
        cfg.define(0x55, Word, 0x0000, 0xFFFF);
        cfg.define(0x57, Byte, 0x01, 0xFF);
        cfg.define(0x58, Byte, 0x10, 0xFF);
        // PAM0: only the BIOS area nibble (7:4) exists; RE/WE per nibble.
        cfg.define(PAM0, Byte, 0x00, 0x30);
        for i in 1..7u8 {
            cfg.define(PAM0 + i, Byte, 0x00, 0x33);
        }
        // DRB0-7 reset to 01h (8 MiB each, cumulative).
        for i in 0..8u8 {
            cfg.define(DRB0 + i, Byte, 0x01, 0xFF);
        }
        // FDHC: bits 7:6 select the memory hole.
        cfg.define(0x68, Byte, 0x00, 0xC0);
        // MTT, CLT.
        cfg.define(0x70, Byte, 0x20, 0xF8);
        cfg.define(0x71, Byte, 0x10, 0xFF);
        // SMRAM: D_OPEN, D_CLS, D_LCK, G_SMRAME writable, C_BASE_SEG fixed.
        // The lock rules are applied in config_write.
        cfg.define(SMRAM, Byte, SMRAM_C_BASE_SEG as u32, 0x78);
        // ERRCMD; ERRSTS (error flags, write 1 to clear); TRC.
        cfg.define(0x90, Byte, 0x00, 0xFF);
        cfg.define_w1c(0x91, Byte, 0x00, 0xFF);
        cfg.define(0x93, Byte, 0x00, 0xFF);
        I440fx { cfg, pam_changed: true }
    }

    /// PAMn (n = 0-6).
    pub fn pam(&self, n: usize) -> u8 {
        if n < 7 {
            self.cfg.byte(PAM0 + n as u8)
        } else {
            0
        }
    }

    /// The thirteen PAM regions in address order: 0xC0000-0xEFFFF in 16 KiB
    /// segments (PAM1 low nibble .. PAM6 high nibble), then the 64 KiB BIOS
    /// area at 0xF0000 (PAM0 high nibble).
    pub fn pam_regions(&self) -> [PamRegion; PAM_REGIONS] {
        let mut out = [PamRegion { base: 0, len: 0, read_ram: false, write_ram: false }; PAM_REGIONS];
        for (i, r) in out.iter_mut().enumerate().take(12) {
            let byte = self.pam(1 + i / 2);
            let nibble = if i % 2 == 0 { byte & 0xF } else { byte >> 4 };
            *r = PamRegion {
                base: 0xC0000 + 0x4000 * i as u32,
                len: 0x4000,
                read_ram: nibble & 1 != 0,
                write_ram: nibble & 2 != 0,
            };
        }
        let bios = self.pam(0) >> 4;
        out[12] = PamRegion { base: 0xF0000, len: 0x10000, read_ram: bios & 1 != 0, write_ram: bios & 2 != 0 };
        out
    }

    /// Whether the PAM or SMRAM registers changed since the last call.
    pub fn take_pam_changed(&mut self) -> bool {
        std::mem::take(&mut self.pam_changed)
    }

    /// The SMRAM register.
    pub fn smram(&self) -> u8 {
        self.cfg.byte(SMRAM)
    }

    /// SMM space (0xA0000-0xBFFFF DRAM) visible to non-SMM accesses:
    /// G_SMRAME and D_OPEN set (D_LCK forces D_OPEN to 0).
    pub fn smram_open(&self) -> bool {
        let s = self.smram();
        s & SMRAM_G_SMRAME != 0 && s & SMRAM_D_OPEN != 0
    }

    /// DRBn (n = 0-7): cumulative top of row n in 8 MiB units.
    pub fn drb(&self, n: usize) -> u8 {
        if n < 8 {
            self.cfg.byte(DRB0 + n as u8)
        } else {
            0
        }
    }

    /// The bytes whose change re-maps memory: PAM0-6 and SMRAM.
    fn memory_map_bytes(&self) -> [u8; 8] {
        let mut b = [0u8; 8];
        for (i, v) in b.iter_mut().enumerate().take(7) {
            *v = self.cfg.byte(PAM0 + i as u8);
        }
        b[7] = self.cfg.byte(SMRAM);
        b
    }
}

impl PciFunction for I440fx {
    fn config(&self) -> &ConfigSpace {
        &self.cfg
    }

    fn config_mut(&mut self) -> &mut ConfigSpace {
        &mut self.cfg
    }

    fn config_write(&mut self, offset: u8, size: AccessSize, value: u32) {
        let before = self.memory_map_bytes();
        let old_smram = self.cfg.byte(SMRAM);
        self.cfg.write(offset, size, value);
        let mut smram = self.cfg.byte(SMRAM);
        // SMRAM (3.2.23): once D_LCK is set, D_LCK, D_OPEN and G_SMRAME are
        // read-only (only D_CLS stays writable) until power-on reset; setting
        // D_LCK clears D_OPEN.
        if old_smram & SMRAM_D_LCK != 0 {
            smram = (old_smram & !SMRAM_D_CLS) | (smram & SMRAM_D_CLS);
        }
        if smram & SMRAM_D_LCK != 0 {
            smram &= !SMRAM_D_OPEN;
        }
        self.cfg.set_byte(SMRAM, smram);
        if self.memory_map_bytes() != before {
            self.pam_changed = true;
        }
    }

    fn reset(&mut self) {
        let before = self.memory_map_bytes();
        self.cfg.reset();
        if self.memory_map_bytes() != before {
            self.pam_changed = true;
        }
    }

    fn restored(&mut self) {
        self.pam_changed = true;
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(h: &mut I440fx, offset: u8, value: u8) {
        h.config_write(offset, AccessSize::Byte, value as u32);
    }

    #[test]
    fn power_on_registers_match_the_datasheet() {
        let mut h = I440fx::new();
        assert_eq!(h.config_read(0x00, AccessSize::Dword), 0x1237_8086);
        assert_eq!(h.config_read(0x04, AccessSize::Dword), 0x0280_0006);
        assert_eq!(h.config_read(0x08, AccessSize::Dword), 0x0600_0002);
        assert_eq!(h.config_read(0x0C, AccessSize::Dword), 0x0000_0000);
        assert_eq!(h.config_read(0x50, AccessSize::Dword), 0x8000_0000);
        assert_eq!(h.config_read(0x54, AccessSize::Dword), 0x0100_0000);
        assert_eq!(h.config_read(0x58, AccessSize::Dword), 0x0000_0010);
        assert_eq!(h.config_read(0x60, AccessSize::Dword), 0x0101_0101);
        assert_eq!(h.smram(), 0x02);
        assert!(h.pam_regions().iter().all(|r| !r.read_ram && !r.write_ram));
    }

    #[test]
    fn pam_nibbles_map_to_their_segments() {
        let mut h = I440fx::new();
        h.take_pam_changed();
        // PAM1 = 0x12: 0xC0000 write-only, 0xC4000 read-only.
        write(&mut h, PAM0 + 1, 0x12);
        // PAM6 = 0x30: 0xEC000 read/write; reserved bits 2, 3 stay 0.
        write(&mut h, PAM0 + 6, 0x3C);
        assert!(h.take_pam_changed());
        let r = h.pam_regions();
        assert_eq!(r[0], PamRegion { base: 0xC0000, len: 0x4000, read_ram: false, write_ram: true });
        assert_eq!(r[1], PamRegion { base: 0xC4000, len: 0x4000, read_ram: true, write_ram: false });
        assert_eq!(r[10], PamRegion { base: 0xE8000, len: 0x4000, read_ram: false, write_ram: false });
        assert_eq!(r[11], PamRegion { base: 0xEC000, len: 0x4000, read_ram: true, write_ram: true });
        assert_eq!(h.pam(6), 0x30);
        // The same value again is no change.
        write(&mut h, PAM0 + 6, 0x30);
        assert!(!h.take_pam_changed());
    }

    #[test]
    fn smram_lock_freezes_open_and_enable() {
        let mut h = I440fx::new();
        write(&mut h, SMRAM, 0x4F);
        assert_eq!(h.smram(), 0x4A, "C_BASE_SEG stays 010");
        assert!(h.smram_open());
        write(&mut h, SMRAM, 0x58);
        assert_eq!(h.smram(), 0x1A, "setting D_LCK clears D_OPEN");
        assert!(!h.smram_open());
        write(&mut h, SMRAM, 0x60);
        assert_eq!(h.smram(), 0x3A, "only D_CLS is writable when locked");
        h.reset();
        assert_eq!(h.smram(), 0x02);
        assert!(h.take_pam_changed());
    }
}
