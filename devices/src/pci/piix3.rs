//! The Intel 82371SB PIIX3 function 0: the PCI-to-ISA bridge at 00:01.0.
//!
//! Reference: Intel 82371FB (PIIX) and 82371SB (PIIX3) PCI ISA IDE
//! Xcelerator datasheet (order 290550), section 2.2 "PCI to ISA/EIDE Bridge
//! Configuration Registers (Function 0)": VID, DID, PCICMD, PCISTS, RID,
//! CLASSC, HEDT (2.2.1-2.2.7), IORT (2.2.8), XBCS (2.2.9), PIRQRC A-D
//! (2.2.10), TOM (2.2.11), MSTAT (2.2.12), MBIRQ0-1 (2.2.13), MBDMA0-1
//! (2.2.14), PCSC (2.2.15), APICBASE (2.2.16), DLC (2.2.17), SMICNTL,
//! SMIEN, SEE, FTMR, SMIREQ, CTLTMR, CTHTMR (2.2.18-2.2.24).
//!
//! The PIRQ route control registers steer the four PCI interrupt lines
//! PIRQA#-PIRQD# onto ISA IRQs: bit 7 = 1 disables routing, bits 3:0 name
//! the IRQ; 0-2, 8 and 13 are reserved encodings. A routed IRQ should be set
//! level-triggered in the ELCR ([`crate::pic`]); that is the guest's job.
//!
//! Not modelled (plain storage): ISA recovery timing (IORT), the X-bus chip
//! selects (XBCS: BIOS, keyboard controller, RTC, APIC decode are always on
//! in the board), ISA/DMA forwarding to PCI (TOM), type F DMA (MBDMA),
//! programmable chip select (PCSC), deterministic latency (DLC), power
//! management and SMI generation (SMICNTL..CTHTMR). The ISA-side registers
//! of the PIIX3 (DMA, PIT, PIC, ELCR, port 0x92, 0xCF9) live in their own
//! devices or in [`super::PciBus`].

use std::any::Any;

use super::{cmd, reg, status, ConfigSpace, PciFunction};
use crate::AccessSize;

/// PCI device ID of PIIX3 function 0.
pub const DEVICE_ID: u16 = 0x7000;

/// I/O recovery timer.
pub const IORT: u8 = 0x4C;
/// X-bus chip select (16 bits).
pub const XBCS: u8 = 0x4E;
/// PIRQA# route control (PIRQB#-PIRQD# follow).
pub const PIRQRC: u8 = 0x60;
/// Top of memory.
pub const TOM: u8 = 0x69;
/// Miscellaneous status (16 bits).
pub const MSTAT: u8 = 0x6A;
/// Motherboard device IRQ route control 0 (MBIRQ1 at 0x71).
pub const MBIRQ0: u8 = 0x70;
/// Motherboard device DMA control 0 (MBDMA1 at 0x77).
pub const MBDMA0: u8 = 0x76;
/// Programmable chip select control (16 bits).
pub const PCSC: u8 = 0x78;
/// APIC base address relocation.
pub const APICBASE: u8 = 0x80;
/// Deterministic latency control.
pub const DLC: u8 = 0x82;
/// SMI control.
pub const SMICNTL: u8 = 0xA0;
/// SMI enable (16 bits).
pub const SMIEN: u8 = 0xA2;
/// System event enable (32 bits).
pub const SEE: u8 = 0xA4;
/// Fast off timer.
pub const FTMR: u8 = 0xA8;
/// SMI request (16 bits).
pub const SMIREQ: u8 = 0xAA;
/// Clock scale STPCLK# low timer.
pub const CTLTMR: u8 = 0xAC;
/// Clock scale STPCLK# high timer.
pub const CTHTMR: u8 = 0xAE;

/// Route control bit 7: routing disabled.
const ROUTE_DISABLE: u8 = 0x80;

/// The ISA IRQ a route control byte (PIRQRC or MBIRQ) selects, if routing
/// is enabled and the encoding is not reserved.
fn decode_route(value: u8) -> Option<u8> {
    let irq = value & 0x0F;
    let usable = matches!(irq, 3..=7 | 9..=12 | 14 | 15);
    (value & ROUTE_DISABLE == 0 && usable).then_some(irq)
}

/// PIIX3 function 0.
#[derive(Clone, Debug)]
pub struct Piix3Isa {
    cfg: ConfigSpace,
}

impl Default for Piix3Isa {
    fn default() -> Self {
        Piix3Isa::new()
    }
}

impl Piix3Isa {
    /// Power-on values from the datasheet's register descriptions.
    pub fn new() -> Piix3Isa {
        use AccessSize::{Byte, Dword, Word};
        let mut cfg = ConfigSpace::new(super::host::VENDOR_INTEL, DEVICE_ID, 0x00, 0x06_01_00)
            // PCICMD default 0007h: I/O, memory and bus master are always on;
            // special cycle enable and SERR# enable are writable.
            .with_command(cmd::IO_SPACE | cmd::MEMORY_SPACE | cmd::BUS_MASTER, cmd::SPECIAL_CYCLES | cmd::SERR_ENABLE)
            // PCISTS default 0280h; abort and SERR# flags are R/WC.
            .with_status(
                status::FAST_BACK_TO_BACK | status::DEVSEL_MEDIUM,
                status::SIGNALED_SYSTEM_ERROR
                    | status::RECEIVED_MASTER_ABORT
                    | status::RECEIVED_TARGET_ABORT
                    | status::SIGNALED_TARGET_ABORT,
            )
            // HEDT: multi-function device (IDE at function 1, USB at 2).
            .with_header_type(0x80)
            .with_reg(reg::INTERRUPT_LINE, Byte, 0, 0);
        cfg.define(IORT, Byte, 0x4D, 0xFF);
        cfg.define(XBCS, Word, 0x0003, 0xFFFF);
        for i in 0..4u8 {
            // Bits 6:4 reserved.
            cfg.define(PIRQRC + i, Byte, 0x80, 0x8F);
        }
        // Bit 0 reserved.
        cfg.define(TOM, Byte, 0x02, 0xFE);
        cfg.define(MSTAT, Word, 0x0000, 0xFFFF);
        for i in 0..2u8 {
            // Bit 4 reserved.
            cfg.define(MBIRQ0 + i, Byte, 0x80, 0xEF);
            cfg.define(MBDMA0 + i, Byte, 0x0C, 0xFF);
        }
        cfg.define(PCSC, Word, 0x0002, 0xFFFF);
        cfg.define(APICBASE, Byte, 0x00, 0xFF);
        cfg.define(DLC, Byte, 0x00, 0xFF);
        cfg.define(SMICNTL, Byte, 0x08, 0xFF);
        cfg.define(SMIEN, Word, 0x0000, 0xFFFF);
        cfg.define(SEE, Dword, 0x0000_0000, 0xFFFF_FFFF);
        cfg.define(FTMR, Byte, 0x0F, 0xFF);
        cfg.define(SMIREQ, Word, 0x0000, 0xFFFF);
        cfg.define(CTLTMR, Byte, 0x00, 0xFF);
        cfg.define(CTHTMR, Byte, 0x00, 0xFF);
        Piix3Isa { cfg }
    }

    /// The raw PIRQRC register of PIRQ `pirq` (0-3 = PIRQA#-PIRQD#).
    pub fn pirq_register(&self, pirq: usize) -> Option<u8> {
        (pirq < 4).then(|| self.cfg.byte(PIRQRC + pirq as u8))
    }

    /// The ISA IRQ PIRQ `pirq` (0-3) is routed to; None when routing is
    /// disabled (bit 7) or the IRQ encoding is reserved.
    pub fn pirq_route(&self, pirq: usize) -> Option<u8> {
        decode_route(self.pirq_register(pirq)?)
    }

    /// The ISA IRQ motherboard interrupt MIRQ`n` (0-1) is routed to.
    pub fn mbirq_route(&self, n: usize) -> Option<u8> {
        if n >= 2 {
            return None;
        }
        decode_route(self.cfg.byte(MBIRQ0 + n as u8))
    }

    /// TOM register.
    pub fn tom(&self) -> u8 {
        self.cfg.byte(TOM)
    }

    /// Top of memory for ISA masters and DMA: bits 7:4 + 1 MiB.
    pub fn isa_top_of_memory(&self) -> u32 {
        (((self.tom() >> 4) as u32) + 1) << 20
    }

    /// XBCS register.
    pub fn xbcs(&self) -> u16 {
        self.cfg.read_u16(XBCS)
    }

    /// APICBASE register.
    pub fn apic_base(&self) -> u8 {
        self.cfg.byte(APICBASE)
    }
}

impl PciFunction for Piix3Isa {
    fn config(&self) -> &ConfigSpace {
        &self.cfg
    }

    fn config_mut(&mut self) -> &mut ConfigSpace {
        &mut self.cfg
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

    #[test]
    fn power_on_registers_match_the_datasheet() {
        let mut p = Piix3Isa::new();
        assert_eq!(p.config_read(0x00, AccessSize::Dword), 0x7000_8086);
        assert_eq!(p.config_read(0x04, AccessSize::Dword), 0x0280_0007);
        assert_eq!(p.config_read(0x08, AccessSize::Dword), 0x0601_0000);
        assert_eq!(p.config_read(0x0C, AccessSize::Dword), 0x0080_0000);
        assert_eq!(p.config_read(0x4C, AccessSize::Dword), 0x0003_004D);
        assert_eq!(p.config_read(0x60, AccessSize::Dword), 0x8080_8080);
        assert_eq!(p.config_read(0x68, AccessSize::Dword), 0x0000_0200);
        assert_eq!(p.config_read(0x70, AccessSize::Word), 0x8080);
        assert_eq!(p.config_read(0x76, AccessSize::Dword), 0x0002_0C0C);
        assert_eq!(p.config_read(0xA0, AccessSize::Byte), 0x08);
        assert_eq!(p.config_read(0xA8, AccessSize::Byte), 0x0F);
        assert_eq!(p.isa_top_of_memory(), 1 << 20);
        assert!((0..4).all(|i| p.pirq_route(i).is_none()));
    }

    #[test]
    fn reserved_registers_read_zero_and_ignore_writes() {
        let mut p = Piix3Isa::new();
        for offset in [0x40u8, 0x64, 0x6C, 0x90, 0xB0, 0xFC] {
            p.config_write(offset, AccessSize::Dword, 0xFFFF_FFFF);
            assert_eq!(p.config_read(offset, AccessSize::Dword), 0, "offset {offset:#x}");
        }
    }

    #[test]
    fn mbirq_routes_like_pirq() {
        let mut p = Piix3Isa::new();
        p.config_write(MBIRQ0 + 1, AccessSize::Byte, 0x0F);
        assert_eq!(p.mbirq_route(1), Some(15));
        assert_eq!(p.mbirq_route(0), None);
        assert_eq!(p.mbirq_route(2), None);
    }
}
