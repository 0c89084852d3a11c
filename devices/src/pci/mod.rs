//! PCI bus 0 of the i440FX/PIIX3 PC: configuration mechanism #1 at
//! 0xCF8/0xCFC, a generic 256-byte configuration space per function, the
//! i440FX host bridge at 00:00.0 ([`host`]), the PIIX3 PCI-to-ISA bridge at
//! 00:01.0 ([`piix3`]) and the PIIX3 reset control register at 0xCF9.
//!
//! References: PCI Local Bus Specification rev. 2.1, section 3.7.4.1
//! "Configuration Mechanism #1" (CONFIG_ADDRESS/CONFIG_DATA) and chapter 6
//! "Configuration Space" (6.1 header, 6.2.2 Command, 6.2.3 Status, 6.2.5.1
//! Base Addresses, 6.2.5.2 Expansion ROM, 6.2.4 Interrupt Line/Pin); Intel
//! 82441FX PMC datasheet (order 290549), section 3.1 "I/O Mapped Registers"
//! (CONFADD, CONFDATA); Intel 82371FB/SB PIIX/PIIX3 datasheet (order 290550),
//! section 2.3 "ISA-Compatible Registers", "RC - Reset Control Register".
//!
//! How the board uses it:
//! - [`PciBus::new`] builds the bus with the host bridge and the PIIX3
//!   function 0 already plugged in; further functions (the PIIX3 IDE at
//!   00:01.1, a VGA or NIC) are added with [`PciBus::add`] as boxed
//!   [`PciFunction`]s. A function whose configuration space is plain storage
//!   is a [`GenericFunction`] built from a [`ConfigSpace`].
//! - The board claims ports 0xCF8-0xCFF for the bus ([`PortIo`]).
//! - After port writes it checks [`PciBus::take_pam_changed`] (re-map shadow
//!   RAM from [`PciBus::pam_regions`]), [`PciBus::take_config_changed`]
//!   (re-derive BAR routing from [`ConfigSpace::active_bar`]) and
//!   [`PciBus::take_reset_request`].
//! - A PCI INTx# pin reaches an ISA IRQ through [`PciBus::intx_irq`].
//!
//! Not modelled: bus numbers other than 0 (no PCI-to-PCI bridges: type 1
//! cycles master-abort and read all-ones), configuration mechanism #2, the
//! special cycle through CONFIG_DATA with device 31 function 7, the received
//! master abort status bit for configuration cycles that find no function,
//! parity and SERR# signalling, 64-bit BARs.

pub mod host;
pub mod piix3;

use std::any::Any;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::{AccessSize, DevCtx, PortIo};

pub use host::{I440fx, PamRegion};
pub use piix3::Piix3Isa;

/// CONFIG_ADDRESS (dword accesses only).
pub const CONFIG_ADDRESS: u16 = 0xCF8;
/// PIIX3 reset control register (byte), inside the CONFIG_ADDRESS dword.
pub const RESET_CONTROL: u16 = 0xCF9;
/// CONFIG_DATA, 0xCFC-0xCFF.
pub const CONFIG_DATA: u16 = 0xCFC;
/// Every port the bus claims.
pub const PORTS: std::ops::RangeInclusive<u16> = 0xCF8..=0xCFF;

/// CONFIG_ADDRESS bit 31: configuration cycles enabled.
const CONFADD_ENABLE: u32 = 1 << 31;
/// Bits of CONFIG_ADDRESS that hold a value: enable, bus, device, function,
/// register. Bits 30:24 are reserved and bits 1:0 read 0 (PCI 2.1, 3.7.4.1).
const CONFADD_MASK: u32 = 0x80FF_FFFC;

/// RC bit 1: SRST, 1 = hard (system) reset, 0 = soft reset (INIT).
const RC_SRST: u8 = 0x02;
/// RC bit 2: RCPU, a 0-to-1 transition starts the reset.
const RC_RCPU: u8 = 0x04;

/// Configuration header offsets (PCI 2.1, figure 6-1).
pub mod reg {
    pub const VENDOR_ID: u8 = 0x00;
    pub const DEVICE_ID: u8 = 0x02;
    pub const COMMAND: u8 = 0x04;
    pub const STATUS: u8 = 0x06;
    pub const REVISION: u8 = 0x08;
    pub const CLASS_CODE: u8 = 0x09;
    pub const CACHE_LINE_SIZE: u8 = 0x0C;
    pub const LATENCY_TIMER: u8 = 0x0D;
    pub const HEADER_TYPE: u8 = 0x0E;
    pub const BIST: u8 = 0x0F;
    pub const BAR0: u8 = 0x10;
    pub const SUBSYSTEM_VENDOR_ID: u8 = 0x2C;
    pub const SUBSYSTEM_ID: u8 = 0x2E;
    pub const EXPANSION_ROM: u8 = 0x30;
    pub const INTERRUPT_LINE: u8 = 0x3C;
    pub const INTERRUPT_PIN: u8 = 0x3D;
}

/// Command register bits (PCI 2.1, 6.2.2).
pub mod cmd {
    pub const IO_SPACE: u16 = 1 << 0;
    pub const MEMORY_SPACE: u16 = 1 << 1;
    pub const BUS_MASTER: u16 = 1 << 2;
    pub const SPECIAL_CYCLES: u16 = 1 << 3;
    pub const PARITY_ERROR_RESPONSE: u16 = 1 << 6;
    pub const SERR_ENABLE: u16 = 1 << 8;
}

/// Status register bits (PCI 2.1, 6.2.3).
pub mod status {
    pub const FAST_BACK_TO_BACK: u16 = 1 << 7;
    pub const DATA_PARITY_DETECTED: u16 = 1 << 8;
    /// DEVSEL# timing "medium" (bits 10:9 = 01).
    pub const DEVSEL_MEDIUM: u16 = 1 << 9;
    pub const SIGNALED_TARGET_ABORT: u16 = 1 << 11;
    pub const RECEIVED_TARGET_ABORT: u16 = 1 << 12;
    pub const RECEIVED_MASTER_ABORT: u16 = 1 << 13;
    pub const SIGNALED_SYSTEM_ERROR: u16 = 1 << 14;
    pub const DETECTED_PARITY_ERROR: u16 = 1 << 15;
    /// The error bits software clears by writing 1 (the "R/WC" bits).
    pub const WRITE_ONE_TO_CLEAR: u16 = DATA_PARITY_DETECTED
        | SIGNALED_TARGET_ABORT
        | RECEIVED_TARGET_ABORT
        | RECEIVED_MASTER_ABORT
        | SIGNALED_SYSTEM_ERROR
        | DETECTED_PARITY_ERROR;
}

/// Errors of bus construction and snapshot restore.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PciError {
    #[error("PCI function {0} is already present")]
    Occupied(PciAddress),
    #[error("PCI address {0} is not on bus 0 or is out of range")]
    InvalidAddress(PciAddress),
    #[error("snapshot holds PCI function {0}, which this bus does not have")]
    UnknownFunction(PciAddress),
    #[error("snapshot has no state for PCI function {0}")]
    MissingFunction(PciAddress),
    #[error(
        "snapshot of PCI function {addr} is device {found:08x}, the bus has {expected:08x} (device << 16 | vendor)"
    )]
    IdMismatch { addr: PciAddress, expected: u32, found: u32 },
    #[error("snapshot of PCI function {0} has {1} configuration bytes, not 256")]
    BadLength(PciAddress, usize),
}

/// Bus, device and function of one PCI function.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PciAddress {
    pub bus: u8,
    /// 0-31.
    pub device: u8,
    /// 0-7.
    pub function: u8,
}

impl PciAddress {
    pub const fn new(bus: u8, device: u8, function: u8) -> PciAddress {
        PciAddress { bus, device, function }
    }

    /// The function CONFIG_ADDRESS selects (bus 23:16, device 15:11,
    /// function 10:8).
    pub fn from_config_address(value: u32) -> PciAddress {
        PciAddress::new((value >> 16) as u8, ((value >> 11) & 0x1F) as u8, ((value >> 8) & 7) as u8)
    }

    fn is_valid(self) -> bool {
        self.bus == 0 && self.device < 32 && self.function < 8
    }
}

impl fmt::Display for PciAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02x}:{:02x}.{}", self.bus, self.device, self.function)
    }
}

/// What a base address register decodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BarKind {
    /// I/O space; bit 0 reads 1 (PCI 2.1, 6.2.5.1).
    Io,
    /// 32-bit memory space anywhere below 4 GiB (type 00).
    Mem32,
    /// 32-bit prefetchable memory (bit 3 set).
    Mem32Prefetchable,
}

/// The layout of one BAR: what it decodes and how large the block is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bar {
    pub kind: BarKind,
    /// Size in bytes, a power of two (I/O at least 4, memory at least 16).
    pub size: u32,
}

impl Bar {
    /// An I/O BAR of `size` bytes (rounded up to a power of two, at least 4).
    pub fn io(size: u32) -> Bar {
        Bar { kind: BarKind::Io, size: pow2_at_least(size, 4) }
    }

    /// A 32-bit memory BAR of `size` bytes (rounded up to a power of two, at
    /// least 16).
    pub fn mem32(size: u32) -> Bar {
        Bar { kind: BarKind::Mem32, size: pow2_at_least(size, 16) }
    }

    /// A 32-bit prefetchable memory BAR.
    pub fn mem32_prefetchable(size: u32) -> Bar {
        Bar { kind: BarKind::Mem32Prefetchable, size: pow2_at_least(size, 16) }
    }

    /// The read-only type bits in the low bits of the register.
    fn type_bits(self) -> u32 {
        match self.kind {
            BarKind::Io => 0x1,
            BarKind::Mem32 => 0x0,
            BarKind::Mem32Prefetchable => 0x8,
        }
    }

    /// The bits that hold the base address: the size alignment decides how
    /// many low bits are hardwired to 0, which is what sizing reads back.
    fn address_mask(self) -> u32 {
        let low = match self.kind {
            BarKind::Io => 0x3,
            _ => 0xF,
        };
        !(self.size - 1) & !low
    }
}

fn pow2_at_least(size: u32, min: u32) -> u32 {
    size.max(min).checked_next_power_of_two().unwrap_or(1 << 31)
}

/// The decoded value of a BAR.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BarValue {
    pub kind: BarKind,
    /// Base address (the type bits removed).
    pub base: u32,
    pub size: u32,
}

/// 256 bytes of configuration space with per-byte write behaviour.
///
/// Every byte has a reset value, a mask of bits software can write and a
/// mask of bits that clear when written with 1 (the status register's R/WC
/// bits). All other bits are read-only; reserved registers are read-only 0.
/// BARs are plain bytes whose writable mask is the base-address field, so a
/// write of all-ones reads back the size mask with the type bits
/// (PCI 2.1, 6.2.5.1).
#[derive(Clone, Debug)]
pub struct ConfigSpace {
    regs: [u8; 256],
    reset: [u8; 256],
    writable: [u8; 256],
    write_one_clear: [u8; 256],
    bars: [Option<Bar>; 6],
    /// Expansion ROM size, if the function has one.
    rom: Option<u32>,
    /// A write changed a byte since the last [`ConfigSpace::take_changed`].
    changed: bool,
}

impl ConfigSpace {
    /// A type 0 header: vendor and device ID, revision, class code (base
    /// class << 16 | sub-class << 8 | programming interface). The command
    /// register's I/O, memory, bus master, parity and SERR# enables are
    /// writable, the status error bits are write-1-to-clear, the interrupt
    /// line is writable; everything else is read-only 0 until defined.
    pub fn new(vendor: u16, device: u16, revision: u8, class_code: u32) -> ConfigSpace {
        let mut cs = ConfigSpace {
            regs: [0; 256],
            reset: [0; 256],
            writable: [0; 256],
            write_one_clear: [0; 256],
            bars: [None; 6],
            rom: None,
            changed: false,
        };
        cs.define(reg::VENDOR_ID, AccessSize::Word, vendor as u32, 0);
        cs.define(reg::DEVICE_ID, AccessSize::Word, device as u32, 0);
        cs.define(reg::REVISION, AccessSize::Byte, revision as u32, 0);
        for i in 0..3u8 {
            cs.define(reg::CLASS_CODE + i, AccessSize::Byte, class_code >> (8 * i), 0);
        }
        let cmd_writable =
            cmd::IO_SPACE | cmd::MEMORY_SPACE | cmd::BUS_MASTER | cmd::PARITY_ERROR_RESPONSE | cmd::SERR_ENABLE;
        cs.define(reg::COMMAND, AccessSize::Word, 0, cmd_writable as u32);
        cs.define_w1c(reg::STATUS, AccessSize::Word, 0, status::WRITE_ONE_TO_CLEAR as u32);
        cs.define(reg::INTERRUPT_LINE, AccessSize::Byte, 0, 0xFF);
        cs
    }

    /// Define a register: its reset value and the bits software may write.
    /// The current value becomes the reset value.
    pub fn define(&mut self, offset: u8, size: AccessSize, reset: u32, writable: u32) {
        for i in 0..size.bytes() as usize {
            let Some(idx) = (offset as usize).checked_add(i).filter(|&x| x < 256) else { break };
            self.reset[idx] = (reset >> (8 * i)) as u8;
            self.regs[idx] = self.reset[idx];
            self.writable[idx] = (writable >> (8 * i)) as u8;
            self.write_one_clear[idx] = 0;
        }
    }

    /// Define a register whose `w1c` bits clear when written with 1 (and are
    /// otherwise read-only).
    pub fn define_w1c(&mut self, offset: u8, size: AccessSize, reset: u32, w1c: u32) {
        self.define(offset, size, reset, 0);
        for i in 0..size.bytes() as usize {
            let Some(idx) = (offset as usize).checked_add(i).filter(|&x| x < 256) else { break };
            self.write_one_clear[idx] = (w1c >> (8 * i)) as u8;
        }
    }

    /// Builder form of [`ConfigSpace::define`].
    pub fn with_reg(mut self, offset: u8, size: AccessSize, reset: u32, writable: u32) -> ConfigSpace {
        self.define(offset, size, reset, writable);
        self
    }

    /// Builder form of [`ConfigSpace::define_w1c`].
    pub fn with_w1c(mut self, offset: u8, size: AccessSize, reset: u32, w1c: u32) -> ConfigSpace {
        self.define_w1c(offset, size, reset, w1c);
        self
    }

    /// Header type byte (bit 7 = multi-function device).
    pub fn with_header_type(self, header_type: u8) -> ConfigSpace {
        self.with_reg(reg::HEADER_TYPE, AccessSize::Byte, header_type as u32, 0)
    }

    /// Command register reset value and writable bits.
    pub fn with_command(self, reset: u16, writable: u16) -> ConfigSpace {
        self.with_reg(reg::COMMAND, AccessSize::Word, reset as u32, writable as u32)
    }

    /// Status register reset value and write-1-to-clear bits.
    pub fn with_status(self, reset: u16, w1c: u16) -> ConfigSpace {
        self.with_w1c(reg::STATUS, AccessSize::Word, reset as u32, w1c as u32)
    }

    /// Interrupt pin (1 = INTA# .. 4 = INTD#, 0 = none); read-only.
    pub fn with_interrupt_pin(self, pin: u8) -> ConfigSpace {
        self.with_reg(reg::INTERRUPT_PIN, AccessSize::Byte, pin.min(4) as u32, 0)
    }

    /// Subsystem vendor and subsystem ID (read-only).
    pub fn with_subsystem(self, vendor: u16, id: u16) -> ConfigSpace {
        self.with_reg(reg::SUBSYSTEM_VENDOR_ID, AccessSize::Word, vendor as u32, 0).with_reg(
            reg::SUBSYSTEM_ID,
            AccessSize::Word,
            id as u32,
            0,
        )
    }

    /// Give BAR `index` (0-5) a layout. Its base resets to 0.
    pub fn with_bar(mut self, index: usize, bar: Bar) -> ConfigSpace {
        debug_assert!(index < 6, "BAR index {index} out of range");
        if index < 6 {
            self.bars[index] = Some(bar);
            self.define(bar_offset(index), AccessSize::Dword, bar.type_bits(), bar.address_mask());
        }
        self
    }

    /// Give the function an expansion ROM BAR of `size` bytes (at least
    /// 2 KiB, a power of two); bit 0 is the ROM address decode enable
    /// (PCI 2.1, 6.2.5.2).
    pub fn with_rom(mut self, size: u32) -> ConfigSpace {
        let size = pow2_at_least(size, 2048);
        self.rom = Some(size);
        self.define(reg::EXPANSION_ROM, AccessSize::Dword, 0, !(size - 1) | 1);
        self
    }

    /// Read `size` bytes at `offset` (any alignment; bytes past 0xFF read
    /// 0xFF).
    pub fn read(&self, offset: u8, size: AccessSize) -> u32 {
        (0..size.bytes() as usize).fold(0, |acc, i| {
            let b = self.regs.get(offset as usize + i).copied().unwrap_or(0xFF);
            acc | (b as u32) << (8 * i)
        })
    }

    /// A software write of `size` bytes at `offset`: writable bits take the
    /// new value, write-1-to-clear bits written with 1 clear, the rest keep
    /// their value.
    pub fn write(&mut self, offset: u8, size: AccessSize, value: u32) {
        for i in 0..size.bytes() as usize {
            let idx = offset as usize + i;
            if idx >= 256 {
                break;
            }
            let v = (value >> (8 * i)) as u8;
            let old = self.regs[idx];
            let wm = self.writable[idx];
            let new = ((old & !wm) | (v & wm)) & !(v & self.write_one_clear[idx]);
            if new != old {
                self.regs[idx] = new;
                self.changed = true;
            }
        }
    }

    /// One byte as stored.
    pub fn byte(&self, offset: u8) -> u8 {
        self.regs[offset as usize]
    }

    pub fn read_u16(&self, offset: u8) -> u16 {
        self.read(offset, AccessSize::Word) as u16
    }

    pub fn read_u32(&self, offset: u8) -> u32 {
        self.read(offset, AccessSize::Dword)
    }

    /// Device-side store, ignoring the write masks (a device setting its own
    /// read-only status bits, a board strapping a value).
    pub fn set_byte(&mut self, offset: u8, value: u8) {
        let idx = offset as usize;
        if self.regs[idx] != value {
            self.regs[idx] = value;
            self.changed = true;
        }
    }

    /// Device-side store of a little-endian value of `size` bytes.
    pub fn set(&mut self, offset: u8, size: AccessSize, value: u32) {
        for i in 0..size.bytes() as usize {
            if let Some(o) = (offset as usize).checked_add(i).filter(|&x| x < 256) {
                self.set_byte(o as u8, (value >> (8 * i)) as u8);
            }
        }
    }

    /// Device-side: raise status bits (e.g. received master abort).
    pub fn set_status_bits(&mut self, bits: u16) {
        let s = self.status() | bits;
        self.set(reg::STATUS, AccessSize::Word, s as u32);
    }

    /// Back to the reset values.
    pub fn reset(&mut self) {
        if self.regs != self.reset {
            self.regs = self.reset;
            self.changed = true;
        }
    }

    /// Whether a write or reset changed any byte since the last call.
    pub fn take_changed(&mut self) -> bool {
        std::mem::take(&mut self.changed)
    }

    pub fn vendor_id(&self) -> u16 {
        self.read_u16(reg::VENDOR_ID)
    }

    pub fn device_id(&self) -> u16 {
        self.read_u16(reg::DEVICE_ID)
    }

    pub fn command(&self) -> u16 {
        self.read_u16(reg::COMMAND)
    }

    pub fn status(&self) -> u16 {
        self.read_u16(reg::STATUS)
    }

    /// Command bit 0: the function responds to its I/O BARs.
    pub fn io_enabled(&self) -> bool {
        self.command() & cmd::IO_SPACE != 0
    }

    /// Command bit 1: the function responds to its memory BARs.
    pub fn mem_enabled(&self) -> bool {
        self.command() & cmd::MEMORY_SPACE != 0
    }

    /// Command bit 2: the function may master the bus (DMA).
    pub fn bus_master(&self) -> bool {
        self.command() & cmd::BUS_MASTER != 0
    }

    pub fn interrupt_line(&self) -> u8 {
        self.byte(reg::INTERRUPT_LINE)
    }

    /// 0 = none, 1-4 = INTA#-INTD#.
    pub fn interrupt_pin(&self) -> u8 {
        self.byte(reg::INTERRUPT_PIN)
    }

    /// The layout of BAR `index`, if it has one.
    pub fn bar_layout(&self, index: usize) -> Option<Bar> {
        self.bars.get(index).copied().flatten()
    }

    /// The programmed value of BAR `index`, whether or not decoding is on.
    pub fn bar(&self, index: usize) -> Option<BarValue> {
        let bar = self.bar_layout(index)?;
        let base = self.read_u32(bar_offset(index)) & bar.address_mask();
        Some(BarValue { kind: bar.kind, base, size: bar.size })
    }

    /// BAR `index` if the function decodes it now: the command register
    /// enables its space, the base is not 0 and the block fits in its space
    /// (I/O below 0x10000; a BAR still holding the all-ones sizing pattern
    /// does not). This is what the board routes.
    pub fn active_bar(&self, index: usize) -> Option<BarValue> {
        let v = self.bar(index)?;
        let (enabled, limit) = match v.kind {
            BarKind::Io => (self.io_enabled(), 0x1_0000u64),
            _ => (self.mem_enabled(), 1u64 << 32),
        };
        let fits = v.base as u64 + v.size as u64 <= limit;
        (enabled && v.base != 0 && fits).then_some(v)
    }

    /// The expansion ROM window if decoding is on (ROM enable bit 0 and the
    /// memory space enable, PCI 2.1, 6.2.5.2).
    pub fn active_rom(&self) -> Option<BarValue> {
        let size = self.rom?;
        let raw = self.read_u32(reg::EXPANSION_ROM);
        let base = raw & !(size - 1) & !0x7FF;
        let on = raw & 1 != 0 && self.mem_enabled() && base != 0 && base as u64 + size as u64 <= 1 << 32;
        on.then_some(BarValue { kind: BarKind::Mem32, base, size })
    }

    /// The 256 bytes as stored.
    pub fn bytes(&self) -> &[u8; 256] {
        &self.regs
    }

    /// Load saved bytes (a snapshot from the same function).
    fn load(&mut self, bytes: &[u8]) {
        let n = bytes.len().min(256);
        self.regs[..n].copy_from_slice(&bytes[..n]);
        self.changed = true;
    }
}

fn bar_offset(index: usize) -> u8 {
    reg::BAR0 + 4 * index as u8
}

/// One function on the bus. Configuration accesses arrive here already
/// decoded to a register offset; `offset` + `size` stays within one dword but
/// need not be aligned (the byte enables of a PCI configuration cycle).
///
/// The default methods treat the configuration space as plain storage; a
/// function with side effects overrides [`PciFunction::config_write`] (and
/// calls [`ConfigSpace::write`] itself). State beyond the 256 bytes is the
/// function's own to snapshot; the bus saves the bytes.
pub trait PciFunction {
    fn config(&self) -> &ConfigSpace;
    fn config_mut(&mut self) -> &mut ConfigSpace;

    fn config_read(&mut self, offset: u8, size: AccessSize) -> u32 {
        self.config().read(offset, size)
    }

    fn config_write(&mut self, offset: u8, size: AccessSize, value: u32) {
        self.config_mut().write(offset, size, value);
    }

    /// PCIRST#: back to the power-on values.
    fn reset(&mut self) {
        self.config_mut().reset();
    }

    /// Called after a snapshot loaded the configuration bytes, to recompute
    /// derived state.
    fn restored(&mut self) {}

    /// For [`PciBus::function_as`]: `fn as_any(&self) -> &dyn Any { self }`.
    fn as_any(&self) -> &dyn Any;
    fn as_any_mut(&mut self) -> &mut dyn Any;
}

/// A function whose configuration space is plain storage (BARs, command,
/// interrupt line); the device behind it is driven by the board.
#[derive(Clone, Debug)]
pub struct GenericFunction {
    pub cfg: ConfigSpace,
}

impl GenericFunction {
    pub fn new(cfg: ConfigSpace) -> GenericFunction {
        GenericFunction { cfg }
    }
}

impl PciFunction for GenericFunction {
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

/// Which reset a write to the reset control register asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ResetKind {
    /// SRST = 1: system reset (PCIRST# and CPU reset).
    Hard,
    /// SRST = 0: soft reset, the CPU's INIT.
    Soft,
}

/// Configuration bytes of one function in a snapshot.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FunctionState {
    pub addr: PciAddress,
    /// The 256 configuration bytes.
    pub config: Vec<u8>,
}

/// Snapshot of the bus.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PciBusState {
    pub config_address: u32,
    /// PIIX3 RC register (0xCF9).
    pub reset_control: u8,
    pub functions: Vec<FunctionState>,
}

/// Host bridge address.
pub const HOST_BRIDGE: PciAddress = PciAddress::new(0, 0, 0);
/// PIIX3 PCI-to-ISA bridge address.
pub const PIIX3_ISA: PciAddress = PciAddress::new(0, 1, 0);

/// PCI bus 0 with configuration mechanism #1.
pub struct PciBus {
    config_address: u32,
    reset_control: u8,
    reset_request: Option<ResetKind>,
    host: I440fx,
    isa: Piix3Isa,
    /// Functions added by the board, in insertion order.
    others: Vec<(PciAddress, Box<dyn PciFunction>)>,
    config_changed: bool,
    /// Pass-through ports already logged (bit n = port 0xCF8 + n).
    logged: u8,
}

impl Default for PciBus {
    fn default() -> Self {
        PciBus::new()
    }
}

impl PciBus {
    /// The bus at power-on with the i440FX at 00:00.0 and PIIX3 function 0
    /// at 00:01.0.
    pub fn new() -> PciBus {
        PciBus {
            config_address: 0,
            reset_control: 0,
            reset_request: None,
            host: I440fx::new(),
            isa: Piix3Isa::new(),
            others: Vec::new(),
            config_changed: true,
            logged: 0,
        }
    }

    /// Plug a function in at `addr` (bus 0, device 0-31, function 0-7).
    /// A multi-function device must set bit 7 of function 0's header type
    /// for software to look at its other functions.
    pub fn add(&mut self, addr: PciAddress, function: Box<dyn PciFunction>) -> Result<(), PciError> {
        if !addr.is_valid() {
            return Err(PciError::InvalidAddress(addr));
        }
        if self.function(addr).is_some() {
            return Err(PciError::Occupied(addr));
        }
        self.others.push((addr, function));
        self.config_changed = true;
        Ok(())
    }

    pub fn host(&self) -> &I440fx {
        &self.host
    }

    pub fn host_mut(&mut self) -> &mut I440fx {
        &mut self.host
    }

    pub fn isa(&self) -> &Piix3Isa {
        &self.isa
    }

    pub fn isa_mut(&mut self) -> &mut Piix3Isa {
        &mut self.isa
    }

    /// The function at `addr`.
    pub fn function(&self, addr: PciAddress) -> Option<&dyn PciFunction> {
        match addr {
            HOST_BRIDGE => Some(&self.host),
            PIIX3_ISA => Some(&self.isa),
            _ => self.others.iter().find(|(a, _)| *a == addr).map(|(_, f)| f.as_ref()),
        }
    }

    pub fn function_mut(&mut self, addr: PciAddress) -> Option<&mut dyn PciFunction> {
        match addr {
            HOST_BRIDGE => Some(&mut self.host),
            PIIX3_ISA => Some(&mut self.isa),
            _ => self.others.iter_mut().find(|(a, _)| *a == addr).map(|(_, f)| f.as_mut() as &mut dyn PciFunction),
        }
    }

    /// The function at `addr` as its concrete type.
    pub fn function_as<T: 'static>(&self, addr: PciAddress) -> Option<&T> {
        self.function(addr)?.as_any().downcast_ref()
    }

    pub fn function_as_mut<T: 'static>(&mut self, addr: PciAddress) -> Option<&mut T> {
        self.function_mut(addr)?.as_any_mut().downcast_mut()
    }

    /// Addresses of every function, host bridge first.
    pub fn addresses(&self) -> Vec<PciAddress> {
        let mut v = vec![HOST_BRIDGE, PIIX3_ISA];
        v.extend(self.others.iter().map(|(a, _)| *a));
        v
    }

    /// Shadow RAM attributes of 0xC0000-0xFFFFF (see [`I440fx::pam_regions`]).
    pub fn pam_regions(&self) -> [PamRegion; host::PAM_REGIONS] {
        self.host.pam_regions()
    }

    /// The PAM or SMRAM registers changed since the last call (true once
    /// after construction, reset and restore).
    pub fn take_pam_changed(&mut self) -> bool {
        self.host.take_pam_changed()
    }

    /// The ISA IRQ PIRQ `pirq` (0-3 = PIRQA#-PIRQD#) is routed to.
    pub fn pirq_route(&self, pirq: usize) -> Option<u8> {
        self.isa.pirq_route(pirq)
    }

    /// The PIRQ line (0-3) INTx# pin `pin` (1 = INTA# .. 4 = INTD#) of
    /// device `device` is wired to. The board wiring is the rotation
    /// SeaBIOS and the usual i440FX boards assume: device 1's INTA# on
    /// PIRQA#, and each further device and pin one PIRQ further on.
    pub fn intx_pirq(device: u8, pin: u8) -> Option<usize> {
        if !(1..=4).contains(&pin) || device >= 32 {
            return None;
        }
        // (device - 1 + pin - 1) mod 4, written without underflow.
        Some((device as usize + pin as usize + 2) & 3)
    }

    /// The ISA IRQ a PCI device's INTx# pin reaches through the PIIX3, if
    /// routing is enabled.
    pub fn intx_irq(&self, device: u8, pin: u8) -> Option<u8> {
        self.isa.pirq_route(PciBus::intx_pirq(device, pin)?)
    }

    /// A write to 0xCF9 asked for a reset since the last call.
    pub fn take_reset_request(&mut self) -> Option<ResetKind> {
        self.reset_request.take()
    }

    /// Some function's configuration bytes changed since the last call (the
    /// board re-derives its BAR routing).
    pub fn take_config_changed(&mut self) -> bool {
        std::mem::take(&mut self.config_changed)
    }

    /// The current CONFIG_ADDRESS.
    pub fn config_address(&self) -> u32 {
        self.config_address
    }

    /// PCIRST#: every function to its power-on values, CONFIG_ADDRESS and
    /// the reset control register to 0.
    pub fn reset(&mut self) {
        self.config_address = 0;
        self.reset_control = 0;
        self.reset_request = None;
        self.host.reset();
        self.isa.reset();
        for (_, f) in self.others.iter_mut() {
            f.reset();
        }
        self.collect_changes();
        self.config_changed = true;
    }

    pub fn save(&self) -> PciBusState {
        let mut functions = vec![
            FunctionState { addr: HOST_BRIDGE, config: self.host.config().bytes().to_vec() },
            FunctionState { addr: PIIX3_ISA, config: self.isa.config().bytes().to_vec() },
        ];
        functions
            .extend(self.others.iter().map(|(a, f)| FunctionState { addr: *a, config: f.config().bytes().to_vec() }));
        PciBusState { config_address: self.config_address, reset_control: self.reset_control, functions }
    }

    /// Load a snapshot into a bus the board built with the same functions.
    /// Nothing changes unless every function matches.
    pub fn restore(&mut self, state: &PciBusState) -> Result<(), PciError> {
        for fs in &state.functions {
            let f = self.function(fs.addr).ok_or(PciError::UnknownFunction(fs.addr))?;
            if fs.config.len() != 256 {
                return Err(PciError::BadLength(fs.addr, fs.config.len()));
            }
            let expected = f.config().read_u32(reg::VENDOR_ID);
            let found = u32::from_le_bytes([fs.config[0], fs.config[1], fs.config[2], fs.config[3]]);
            if expected != found {
                return Err(PciError::IdMismatch { addr: fs.addr, expected, found });
            }
        }
        for addr in self.addresses() {
            if !state.functions.iter().any(|fs| fs.addr == addr) {
                return Err(PciError::MissingFunction(addr));
            }
        }
        for fs in &state.functions {
            if let Some(f) = self.function_mut(fs.addr) {
                f.config_mut().load(&fs.config);
                f.restored();
            }
        }
        self.config_address = state.config_address & CONFADD_MASK;
        self.reset_control = state.reset_control & (RC_SRST | RC_RCPU);
        self.reset_request = None;
        self.collect_changes();
        self.config_changed = true;
        Ok(())
    }

    /// The function and register CONFIG_ADDRESS selects, if configuration
    /// cycles are enabled.
    fn target(&self) -> Option<(PciAddress, u8)> {
        let a = self.config_address;
        (a & CONFADD_ENABLE != 0).then(|| (PciAddress::from_config_address(a), (a & 0xFC) as u8))
    }

    /// Read `size` bytes of CONFIG_DATA starting at byte lane `lane`.
    fn data_read(&mut self, lane: u8, size: AccessSize) -> u32 {
        let Some((addr, register)) = self.target() else {
            // Configuration disabled: an ordinary I/O read nobody claims.
            return size.all_ones();
        };
        match self.function_mut(addr) {
            Some(f) => f.config_read(register + lane, size) & size.all_ones(),
            // Master abort: the host bridge returns all-ones (PCI 2.1,
            // 3.7.4.1 and 6.1: a read of a missing function's vendor ID
            // gives 0xFFFF).
            None => size.all_ones(),
        }
    }

    fn data_write(&mut self, lane: u8, size: AccessSize, value: u32) {
        let Some((addr, register)) = self.target() else { return };
        if let Some(f) = self.function_mut(addr) {
            f.config_write(register + lane, size, value & size.all_ones());
        }
        self.collect_changes();
    }

    /// Fold the functions' change flags into the bus flag.
    fn collect_changes(&mut self) {
        let mut any = self.host.config_mut().take_changed();
        any |= self.isa.config_mut().take_changed();
        for (_, f) in self.others.iter_mut() {
            any |= f.config_mut().take_changed();
        }
        self.config_changed |= any;
    }

    fn write_reset_control(&mut self, value: u8) {
        let old = self.reset_control;
        let new = value & (RC_SRST | RC_RCPU);
        self.reset_control = new;
        // PIIX3 RC register: RCPU going 0 -> 1 starts the reset SRST
        // selects. The register keeps its value; a hard reset clears it
        // through PciBus::reset.
        if old & RC_RCPU == 0 && new & RC_RCPU != 0 {
            self.reset_request = Some(if new & RC_SRST != 0 { ResetKind::Hard } else { ResetKind::Soft });
        }
    }

    fn log_pass_through(&mut self, port: u16, write: bool) {
        let bit = 1u8 << (port.wrapping_sub(CONFIG_ADDRESS) & 7);
        if self.logged & bit == 0 {
            self.logged |= bit;
            let what = if write { "write" } else { "read" };
            tracing::debug!("PCI: non-dword {what} at port {port:#06x} reaches no register");
        }
    }
}

/// The part of an access that starts at CONFIG_DATA byte lane `lane` with
/// `remaining` bytes left: a configuration cycle covers the lanes up to
/// 0xCFF, as one access of 1, 2 or 4 bytes.
fn data_chunk(lane: u8, remaining: u32) -> AccessSize {
    match remaining.min(4 - lane as u32) {
        4 => AccessSize::Dword,
        2 | 3 => AccessSize::Word,
        _ => AccessSize::Byte,
    }
}

impl PortIo for PciBus {
    /// CONFIG_ADDRESS is only decoded for dword accesses at 0xCF8 (82441FX
    /// CONFADD: "accessed only as a Dword"); other accesses are split per
    /// byte, where 0xCF9 is the PIIX3 reset control register and 0xCF8,
    /// 0xCFA, 0xCFB read 0xFF.
    fn io_read(&mut self, port: u16, size: AccessSize, _cx: &mut DevCtx) -> u32 {
        if port == CONFIG_ADDRESS && size == AccessSize::Dword {
            return self.config_address;
        }
        let n = size.bytes();
        let mut value = 0u32;
        let mut i = 0;
        while i < n {
            let p = port.wrapping_add(i as u16);
            let (v, len) = match p {
                CONFIG_DATA..=0xCFF => {
                    let lane = (p - CONFIG_DATA) as u8;
                    let chunk = data_chunk(lane, n - i);
                    (self.data_read(lane, chunk), chunk.bytes())
                }
                RESET_CONTROL => (self.reset_control as u32, 1),
                _ => {
                    self.log_pass_through(p, false);
                    (0xFF, 1)
                }
            };
            value |= v << (8 * i);
            i += len;
        }
        value
    }

    fn io_write(&mut self, port: u16, size: AccessSize, value: u32, _cx: &mut DevCtx) {
        if port == CONFIG_ADDRESS && size == AccessSize::Dword {
            self.config_address = value & CONFADD_MASK;
            return;
        }
        let n = size.bytes();
        let mut i = 0;
        while i < n {
            let p = port.wrapping_add(i as u16);
            let part = value >> (8 * i);
            match p {
                CONFIG_DATA..=0xCFF => {
                    let lane = (p - CONFIG_DATA) as u8;
                    let chunk = data_chunk(lane, n - i);
                    self.data_write(lane, chunk, part);
                    i += chunk.bytes();
                    continue;
                }
                RESET_CONTROL => self.write_reset_control(part as u8),
                _ => self.log_pass_through(p, true),
            }
            i += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::IrqLines;
    use ferrite_core::Nanos;

    /// The test function: a 256-byte I/O BAR and a 4 KiB memory BAR.
    const TEST_FN: PciAddress = PciAddress::new(0, 3, 0);

    fn test_function() -> Box<dyn PciFunction> {
        let cfg = ConfigSpace::new(0x1234, 0x5678, 0x01, 0x02_00_00)
            .with_bar(0, Bar::io(256))
            .with_bar(1, Bar::mem32(4096))
            .with_rom(0x8000)
            .with_interrupt_pin(1);
        Box::new(GenericFunction::new(cfg))
    }

    struct Bench {
        bus: PciBus,
        lines: IrqLines,
    }

    impl Bench {
        fn new() -> Bench {
            let mut bus = PciBus::new();
            bus.add(TEST_FN, test_function()).unwrap();
            Bench { bus, lines: IrqLines::default() }
        }

        fn out(&mut self, port: u16, size: AccessSize, value: u32) {
            let mut cx = DevCtx { now: Nanos::ZERO, irq: &mut self.lines };
            self.bus.io_write(port, size, value, &mut cx);
        }

        fn inp(&mut self, port: u16, size: AccessSize) -> u32 {
            let mut cx = DevCtx { now: Nanos::ZERO, irq: &mut self.lines };
            self.bus.io_read(port, size, &mut cx)
        }

        fn select(&mut self, addr: PciAddress, register: u8) {
            let v = CONFADD_ENABLE
                | (addr.bus as u32) << 16
                | (addr.device as u32) << 11
                | (addr.function as u32) << 8
                | register as u32;
            self.out(CONFIG_ADDRESS, AccessSize::Dword, v);
        }

        /// A configuration read the way a BIOS does it: select the dword,
        /// then access CONFIG_DATA at the byte offset within it.
        fn cfg_read(&mut self, addr: PciAddress, register: u8, size: AccessSize) -> u32 {
            self.select(addr, register & 0xFC);
            self.inp(CONFIG_DATA + (register & 3) as u16, size)
        }

        fn cfg_write(&mut self, addr: PciAddress, register: u8, size: AccessSize, value: u32) {
            self.select(addr, register & 0xFC);
            self.out(CONFIG_DATA + (register & 3) as u16, size, value);
        }
    }

    #[test]
    fn config_address_is_dword_only_with_reserved_bits_zero() {
        let mut b = Bench::new();
        b.out(CONFIG_ADDRESS, AccessSize::Dword, 0xFFFF_FFFF);
        assert_eq!(b.inp(CONFIG_ADDRESS, AccessSize::Dword), 0x80FF_FFFC);
        // Byte and word accesses at 0xCF8 do not reach CONFIG_ADDRESS.
        b.out(CONFIG_ADDRESS, AccessSize::Byte, 0x00);
        b.out(CONFIG_ADDRESS + 2, AccessSize::Word, 0x0000);
        assert_eq!(b.inp(CONFIG_ADDRESS, AccessSize::Dword), 0x80FF_FFFC);
        assert_eq!(b.inp(CONFIG_ADDRESS, AccessSize::Byte), 0xFF);
        assert_eq!(b.inp(CONFIG_ADDRESS + 2, AccessSize::Word), 0xFFFF);
    }

    #[test]
    fn enable_bit_off_reads_all_ones_and_ignores_writes() {
        let mut b = Bench::new();
        b.out(CONFIG_ADDRESS, AccessSize::Dword, 0x0000_0058);
        assert_eq!(b.inp(CONFIG_DATA, AccessSize::Dword), 0xFFFF_FFFF);
        assert_eq!(b.inp(CONFIG_DATA + 2, AccessSize::Word), 0xFFFF);
        assert_eq!(b.inp(CONFIG_DATA + 3, AccessSize::Byte), 0xFF);
        b.out(CONFIG_DATA + 1, AccessSize::Byte, 0x30);
        assert_eq!(b.bus.host().pam(0), 0x00);
    }

    #[test]
    fn reads_host_bridge_and_piix3_ids() {
        let mut b = Bench::new();
        assert_eq!(b.cfg_read(HOST_BRIDGE, 0x00, AccessSize::Dword), 0x1237_8086);
        assert_eq!(b.cfg_read(HOST_BRIDGE, 0x08, AccessSize::Dword), 0x0600_0002);
        assert_eq!(b.cfg_read(HOST_BRIDGE, 0x0E, AccessSize::Byte), 0x00);
        assert_eq!(b.cfg_read(PIIX3_ISA, 0x00, AccessSize::Dword), 0x7000_8086);
        assert_eq!(b.cfg_read(PIIX3_ISA, 0x0A, AccessSize::Word), 0x0601);
        assert_eq!(b.cfg_read(PIIX3_ISA, 0x0E, AccessSize::Byte), 0x80);
        assert_eq!(b.cfg_read(TEST_FN, 0x00, AccessSize::Dword), 0x5678_1234);
    }

    #[test]
    fn byte_and_word_accesses_pick_lanes_within_the_dword() {
        let mut b = Bench::new();
        b.select(HOST_BRIDGE, 0x00);
        assert_eq!(b.inp(CONFIG_DATA, AccessSize::Byte), 0x86);
        assert_eq!(b.inp(CONFIG_DATA + 1, AccessSize::Byte), 0x80);
        assert_eq!(b.inp(CONFIG_DATA + 2, AccessSize::Word), 0x1237);
        assert_eq!(b.inp(CONFIG_DATA + 3, AccessSize::Byte), 0x12);
        // Unaligned word inside the dword: byte enables 0110.
        assert_eq!(b.inp(CONFIG_DATA + 1, AccessSize::Word), 0x3780);
        // Beyond 0xCFF the access leaves the bus: those bytes read 0xFF.
        assert_eq!(b.inp(CONFIG_DATA + 3, AccessSize::Word), 0xFF12);
        assert_eq!(b.inp(CONFIG_DATA + 1, AccessSize::Dword), 0xFF12_3780);
        // Writes use the same lanes: PAM1 is byte 2 of dword 0x58.
        b.select(HOST_BRIDGE, 0x58);
        b.out(CONFIG_DATA + 2, AccessSize::Byte, 0x11);
        b.out(CONFIG_DATA + 1, AccessSize::Word, 0x3330);
        assert_eq!(b.bus.host().pam(0), 0x30);
        assert_eq!(b.bus.host().pam(1), 0x33);
        assert_eq!(b.cfg_read(HOST_BRIDGE, 0x58, AccessSize::Dword), 0x0033_3010);
    }

    #[test]
    fn register_bits_one_and_zero_are_ignored() {
        let mut b = Bench::new();
        // Register 0x5B selects dword 0x58.
        b.out(CONFIG_ADDRESS, AccessSize::Dword, CONFADD_ENABLE | 0x5B);
        assert_eq!(b.inp(CONFIG_ADDRESS, AccessSize::Dword), CONFADD_ENABLE | 0x58);
        assert_eq!(b.inp(CONFIG_DATA, AccessSize::Dword), 0x0000_0010);
    }

    #[test]
    fn absent_functions_read_all_ones() {
        let mut b = Bench::new();
        for addr in [PciAddress::new(0, 0x1F, 0), PciAddress::new(0, 0, 1), PciAddress::new(1, 0, 0)] {
            assert_eq!(b.cfg_read(addr, 0x00, AccessSize::Dword), 0xFFFF_FFFF, "{addr}");
            assert_eq!(b.cfg_read(addr, 0x02, AccessSize::Word), 0xFFFF, "{addr}");
            b.cfg_write(addr, 0x04, AccessSize::Dword, 0x0000_0007);
            assert_eq!(b.cfg_read(addr, 0x04, AccessSize::Dword), 0xFFFF_FFFF, "{addr}");
        }
    }

    #[test]
    fn ids_and_class_are_read_only() {
        let mut b = Bench::new();
        b.cfg_write(HOST_BRIDGE, 0x00, AccessSize::Dword, 0);
        b.cfg_write(HOST_BRIDGE, 0x08, AccessSize::Dword, 0);
        b.cfg_write(PIIX3_ISA, 0x0E, AccessSize::Byte, 0);
        assert_eq!(b.cfg_read(HOST_BRIDGE, 0x00, AccessSize::Dword), 0x1237_8086);
        assert_eq!(b.cfg_read(HOST_BRIDGE, 0x08, AccessSize::Dword), 0x0600_0002);
        assert_eq!(b.cfg_read(PIIX3_ISA, 0x0E, AccessSize::Byte), 0x80);
    }

    #[test]
    fn bar_sizing_round_trip() {
        let mut b = Bench::new();
        // Size: write all-ones, read back the size mask and type bits.
        b.cfg_write(TEST_FN, 0x10, AccessSize::Dword, 0xFFFF_FFFF);
        b.cfg_write(TEST_FN, 0x14, AccessSize::Dword, 0xFFFF_FFFF);
        b.cfg_write(TEST_FN, 0x18, AccessSize::Dword, 0xFFFF_FFFF);
        b.cfg_write(TEST_FN, 0x30, AccessSize::Dword, 0xFFFF_FFFE);
        assert_eq!(b.cfg_read(TEST_FN, 0x10, AccessSize::Dword), 0xFFFF_FF01);
        assert_eq!(b.cfg_read(TEST_FN, 0x14, AccessSize::Dword), 0xFFFF_F000);
        assert_eq!(b.cfg_read(TEST_FN, 0x18, AccessSize::Dword), 0, "no BAR 2");
        assert_eq!(b.cfg_read(TEST_FN, 0x30, AccessSize::Dword), 0xFFFF_8000);
        // Program bases; low bits below the size stay zero.
        b.cfg_write(TEST_FN, 0x10, AccessSize::Dword, 0x0000_C0FF);
        b.cfg_write(TEST_FN, 0x14, AccessSize::Dword, 0xFEBF_0FFF);
        b.cfg_write(TEST_FN, 0x30, AccessSize::Dword, 0xFEB0_0001);
        assert_eq!(b.cfg_read(TEST_FN, 0x10, AccessSize::Dword), 0x0000_C001);
        assert_eq!(b.cfg_read(TEST_FN, 0x14, AccessSize::Dword), 0xFEBF_0000);
        let cfg = b.bus.function(TEST_FN).unwrap().config();
        assert_eq!(cfg.bar(0), Some(BarValue { kind: BarKind::Io, base: 0xC000, size: 256 }));
        assert_eq!(cfg.active_bar(0), None, "I/O decode still off");
        assert!(b.bus.take_config_changed());
        // Enable I/O and memory decode.
        b.cfg_write(TEST_FN, 0x04, AccessSize::Word, 0x0003);
        assert!(b.bus.take_config_changed());
        let cfg = b.bus.function(TEST_FN).unwrap().config();
        assert!(cfg.io_enabled() && cfg.mem_enabled() && !cfg.bus_master());
        assert_eq!(cfg.active_bar(0), Some(BarValue { kind: BarKind::Io, base: 0xC000, size: 256 }));
        assert_eq!(cfg.active_bar(1), Some(BarValue { kind: BarKind::Mem32, base: 0xFEBF_0000, size: 4096 }));
        assert_eq!(cfg.active_rom(), Some(BarValue { kind: BarKind::Mem32, base: 0xFEB0_0000, size: 0x8000 }));
        assert_eq!(cfg.active_bar(2), None);
        // An I/O BAR still holding the sizing pattern is not decoded.
        b.cfg_write(TEST_FN, 0x10, AccessSize::Dword, 0xFFFF_FFFF);
        assert_eq!(b.bus.function(TEST_FN).unwrap().config().active_bar(0), None);
    }

    #[test]
    fn interrupt_line_is_writable_and_pin_is_not() {
        let mut b = Bench::new();
        b.cfg_write(TEST_FN, 0x3C, AccessSize::Word, 0x030B);
        assert_eq!(b.cfg_read(TEST_FN, 0x3C, AccessSize::Word), 0x010B);
        let cfg = b.bus.function(TEST_FN).unwrap().config();
        assert_eq!((cfg.interrupt_line(), cfg.interrupt_pin()), (11, 1));
    }

    #[test]
    fn status_bits_are_write_one_to_clear() {
        let mut b = Bench::new();
        b.bus
            .function_mut(HOST_BRIDGE)
            .unwrap()
            .config_mut()
            .set_status_bits(status::RECEIVED_MASTER_ABORT | status::RECEIVED_TARGET_ABORT);
        assert_eq!(b.cfg_read(HOST_BRIDGE, 0x06, AccessSize::Word), 0x3280);
        // Writing 0s changes nothing; a 1 clears only its bit; the read-only
        // DEVSEL and fast back-to-back bits stay.
        b.cfg_write(HOST_BRIDGE, 0x06, AccessSize::Word, 0x0000);
        assert_eq!(b.cfg_read(HOST_BRIDGE, 0x06, AccessSize::Word), 0x3280);
        b.cfg_write(HOST_BRIDGE, 0x06, AccessSize::Word, 0x2000 | 0x0280);
        assert_eq!(b.cfg_read(HOST_BRIDGE, 0x06, AccessSize::Word), 0x1280);
        // A dword write to the command register with status 0 keeps status.
        b.cfg_write(HOST_BRIDGE, 0x04, AccessSize::Dword, 0x0000_0140);
        assert_eq!(b.cfg_read(HOST_BRIDGE, 0x04, AccessSize::Dword), 0x1280_0146);
    }

    #[test]
    fn pam0_0x30_maps_the_bios_area_to_ram() {
        let mut b = Bench::new();
        assert!(b.bus.take_pam_changed(), "new bus asks for an initial map");
        assert!(!b.bus.take_pam_changed());
        b.cfg_write(HOST_BRIDGE, 0x59, AccessSize::Byte, 0x30);
        assert!(b.bus.take_pam_changed());
        let bios = b.bus.pam_regions()[12];
        assert_eq!(bios, PamRegion { base: 0xF0000, len: 0x10000, read_ram: true, write_ram: true });
        assert!(b.bus.pam_regions()[..12].iter().all(|r| !r.read_ram && !r.write_ram));
        // Read-only shadow: PAM0 = 0x10.
        b.cfg_write(HOST_BRIDGE, 0x59, AccessSize::Byte, 0x1F);
        assert!(b.bus.take_pam_changed());
        let bios = b.bus.pam_regions()[12];
        assert!(bios.read_ram && !bios.write_ram);
        assert_eq!(b.cfg_read(HOST_BRIDGE, 0x59, AccessSize::Byte), 0x10);
    }

    #[test]
    fn pirq_routing_and_disable_bit() {
        let mut b = Bench::new();
        assert_eq!(b.bus.pirq_route(0), None, "reset value 80h: disabled");
        b.cfg_write(PIIX3_ISA, 0x60, AccessSize::Dword, 0x0B0A_0B0A);
        assert_eq!((0..4).map(|i| b.bus.pirq_route(i)).collect::<Vec<_>>(), [Some(10), Some(11), Some(10), Some(11)]);
        b.cfg_write(PIIX3_ISA, 0x61, AccessSize::Byte, 0x8B);
        assert_eq!(b.bus.pirq_route(1), None);
        // Reserved encodings route nowhere; reserved bits 6:4 read 0.
        b.cfg_write(PIIX3_ISA, 0x62, AccessSize::Byte, 0x72);
        assert_eq!(b.cfg_read(PIIX3_ISA, 0x62, AccessSize::Byte), 0x02);
        assert_eq!(b.bus.pirq_route(2), None);
        b.cfg_write(PIIX3_ISA, 0x63, AccessSize::Byte, 0x0D);
        assert_eq!(b.bus.pirq_route(3), None);
        assert_eq!(b.bus.pirq_route(4), None);
        // Device 1 INTA# is PIRQA#; device 2 INTA# is PIRQB#; pins rotate.
        assert_eq!(PciBus::intx_pirq(1, 1), Some(0));
        assert_eq!(PciBus::intx_pirq(2, 1), Some(1));
        assert_eq!(PciBus::intx_pirq(3, 3), Some(0));
        assert_eq!(PciBus::intx_pirq(3, 4), Some(1));
        assert_eq!(PciBus::intx_pirq(0, 1), Some(3));
        assert_eq!(PciBus::intx_pirq(3, 0), None);
        assert_eq!(PciBus::intx_pirq(3, 5), None);
        assert_eq!(b.bus.intx_irq(1, 1), Some(10));
        assert_eq!(b.bus.intx_irq(2, 1), None);
    }

    #[test]
    fn reset_control_requests_on_rising_rcpu() {
        let mut b = Bench::new();
        assert_eq!(b.inp(RESET_CONTROL, AccessSize::Byte), 0x00);
        // Linux reboot=pci: SRST first, then SRST | RCPU.
        b.out(RESET_CONTROL, AccessSize::Byte, 0x02);
        assert_eq!(b.bus.take_reset_request(), None);
        b.out(RESET_CONTROL, AccessSize::Byte, 0x06);
        assert_eq!(b.bus.take_reset_request(), Some(ResetKind::Hard));
        assert_eq!(b.bus.take_reset_request(), None);
        assert_eq!(b.inp(RESET_CONTROL, AccessSize::Byte), 0x06);
        // RCPU already 1: no new edge.
        b.out(RESET_CONTROL, AccessSize::Byte, 0xFE);
        assert_eq!(b.bus.take_reset_request(), None);
        // A word write at 0xCF8 reaches 0xCF9 in its high byte.
        b.out(RESET_CONTROL, AccessSize::Byte, 0x00);
        b.out(CONFIG_ADDRESS, AccessSize::Word, 0x0400);
        assert_eq!(b.bus.take_reset_request(), Some(ResetKind::Soft));
        assert_eq!(b.inp(CONFIG_ADDRESS, AccessSize::Word), 0x04FF);
        // Dword accesses at 0xCF8 are CONFIG_ADDRESS, not RC.
        b.out(CONFIG_ADDRESS, AccessSize::Dword, 0x0000_0000);
        assert_eq!(b.inp(RESET_CONTROL, AccessSize::Byte), 0x04);
        b.bus.reset();
        assert_eq!(b.inp(RESET_CONTROL, AccessSize::Byte), 0x00);
    }

    #[test]
    fn bus_reset_restores_power_on_values() {
        let mut b = Bench::new();
        b.cfg_write(HOST_BRIDGE, 0x59, AccessSize::Byte, 0x30);
        b.cfg_write(PIIX3_ISA, 0x60, AccessSize::Byte, 0x0B);
        b.cfg_write(TEST_FN, 0x04, AccessSize::Word, 0x0007);
        b.bus.take_pam_changed();
        b.bus.take_config_changed();
        b.bus.reset();
        assert!(b.bus.take_pam_changed());
        assert!(b.bus.take_config_changed());
        assert_eq!(b.bus.config_address(), 0);
        assert_eq!(b.bus.host().pam(0), 0);
        assert_eq!(b.bus.pirq_route(0), None);
        assert_eq!(b.bus.function(TEST_FN).unwrap().config().command(), 0);
    }

    #[test]
    fn adding_functions_checks_the_address() {
        let mut bus = PciBus::new();
        assert_eq!(bus.add(HOST_BRIDGE, test_function()), Err(PciError::Occupied(HOST_BRIDGE)));
        let bad = PciAddress::new(0, 32, 0);
        assert_eq!(bus.add(bad, test_function()), Err(PciError::InvalidAddress(bad)));
        let bad = PciAddress::new(1, 2, 0);
        assert_eq!(bus.add(bad, test_function()), Err(PciError::InvalidAddress(bad)));
        let ide = PciAddress::new(0, 1, 1);
        bus.add(ide, test_function()).unwrap();
        assert_eq!(bus.add(ide, test_function()), Err(PciError::Occupied(ide)));
        assert_eq!(bus.addresses(), [HOST_BRIDGE, PIIX3_ISA, ide]);
        assert!(bus.function_as::<GenericFunction>(ide).is_some());
        assert!(bus.function_as::<I440fx>(HOST_BRIDGE).is_some());
        assert!(bus.function_as_mut::<Piix3Isa>(PIIX3_ISA).is_some());
        assert!(bus.function_as::<I440fx>(ide).is_none());
        assert_eq!(ide.to_string(), "00:01.1");
    }

    #[test]
    fn snapshot_round_trip() {
        let mut b = Bench::new();
        b.cfg_write(HOST_BRIDGE, 0x59, AccessSize::Dword, 0x3333_3330);
        b.cfg_write(HOST_BRIDGE, 0x72, AccessSize::Byte, 0x4A);
        b.cfg_write(PIIX3_ISA, 0x60, AccessSize::Dword, 0x0B0A_0B0A);
        b.cfg_write(TEST_FN, 0x10, AccessSize::Dword, 0xC001);
        b.cfg_write(TEST_FN, 0x04, AccessSize::Word, 0x0001);
        b.out(RESET_CONTROL, AccessSize::Byte, 0x02);
        b.select(TEST_FN, 0x10);
        let state = b.bus.save();

        let mut other = Bench::new();
        other.bus.take_pam_changed();
        other.bus.restore(&state).unwrap();
        assert_eq!(other.bus.save(), state);
        assert!(other.bus.take_pam_changed());
        assert!(other.bus.take_config_changed());
        assert_eq!(other.inp(CONFIG_DATA, AccessSize::Dword), 0xC001);
        assert_eq!(other.inp(RESET_CONTROL, AccessSize::Byte), 0x02);
        assert_eq!(other.bus.pam_regions(), b.bus.pam_regions());
        assert!(other.bus.host().smram_open());
        assert_eq!(other.bus.pirq_route(1), Some(11));
        let cfg = other.bus.function(TEST_FN).unwrap().config();
        assert_eq!(cfg.active_bar(0), Some(BarValue { kind: BarKind::Io, base: 0xC000, size: 256 }));
    }

    #[test]
    fn restore_rejects_a_different_bus() {
        let state = Bench::new().bus.save();
        // The snapshot has a function this bus lacks.
        let mut bare = PciBus::new();
        assert_eq!(bare.restore(&state), Err(PciError::UnknownFunction(TEST_FN)));
        // This bus has a function the snapshot lacks.
        let mut bigger = Bench::new();
        let extra = PciAddress::new(0, 4, 0);
        bigger.bus.add(extra, test_function()).unwrap();
        assert_eq!(bigger.bus.restore(&state), Err(PciError::MissingFunction(extra)));
        // Wrong device, wrong length; nothing was loaded.
        let mut wrong = state.clone();
        wrong.functions[2].config[2] = 0;
        let mut b = Bench::new();
        b.cfg_write(HOST_BRIDGE, 0x59, AccessSize::Byte, 0x30);
        assert!(matches!(b.bus.restore(&wrong), Err(PciError::IdMismatch { addr: TEST_FN, .. })));
        let mut short = state.clone();
        short.functions[0].config.truncate(16);
        assert_eq!(b.bus.restore(&short), Err(PciError::BadLength(HOST_BRIDGE, 16)));
        assert_eq!(b.bus.host().pam(0), 0x30);
    }

    #[test]
    fn state_is_serde_serializable() {
        fn assert_serde<T: Serialize + for<'de> Deserialize<'de>>() {}
        assert_serde::<PciBusState>();
    }

    #[test]
    fn garbage_on_every_port_never_panics() {
        let mut b = Bench::new();
        let mut x: u32 = 0x9E37_79B9;
        let sizes = [AccessSize::Byte, AccessSize::Word, AccessSize::Dword];
        for _ in 0..50_000 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            let port = 0xCF8 + (x & 7) as u16;
            let size = sizes[((x >> 3) % 3) as usize];
            let value = x.rotate_left(11);
            match (x >> 5) % 4 {
                0 => {
                    b.inp(port, size);
                }
                // Point CONFIG_ADDRESS at one of the first few devices so
                // the data writes land on real functions.
                1 => b.out(CONFIG_ADDRESS, AccessSize::Dword, value & 0x8000_1BFC),
                _ => b.out(port, size, value),
            }
            b.bus.take_reset_request();
        }
        let state = b.bus.save();
        let mut other = Bench::new();
        other.bus.restore(&state).unwrap();
        // Identity registers survived.
        assert_eq!(other.cfg_read(HOST_BRIDGE, 0, AccessSize::Dword), 0x1237_8086);
        assert_eq!(other.cfg_read(PIIX3_ISA, 0, AccessSize::Dword), 0x7000_8086);
        assert_eq!(other.cfg_read(TEST_FN, 0, AccessSize::Dword), 0x5678_1234);
        let regions = other.bus.pam_regions();
        assert_eq!(regions.len(), 13);
    }
}
