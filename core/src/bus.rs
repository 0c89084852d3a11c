//! The traits devices implement to be reached by the CPU: port I/O, MMIO and
//! interrupt delivery. The core never knows which device sits behind a port;
//! the board (in `ferrite-devices`) implements [`Bus`] over its port and MMIO
//! tables.

use crate::mem::PhysAddr;

/// Width of one bus access.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AccessSize {
    Byte = 1,
    Word = 2,
    Dword = 4,
}

impl AccessSize {
    /// Size in bytes.
    pub fn bytes(self) -> u32 {
        self as u32
    }

    /// All-ones value of this width: what an empty port or bus reads as.
    pub fn all_ones(self) -> u32 {
        match self {
            AccessSize::Byte => 0xFF,
            AccessSize::Word => 0xFFFF,
            AccessSize::Dword => 0xFFFF_FFFF,
        }
    }

    /// The access size for an operand of `bytes` bytes (1, 2 or 4).
    pub fn from_bytes(bytes: u32) -> AccessSize {
        match bytes {
            1 => AccessSize::Byte,
            2 => AccessSize::Word,
            _ => AccessSize::Dword,
        }
    }
}

/// Everything outside the CPU and RAM that an instruction can reach.
///
/// Called synchronously from the interpreter (and later from JIT helpers);
/// implementations must never panic on any port, address or value.
pub trait Bus {
    /// Called before every port access with the number of instructions
    /// the CPU has retired, so the board can bring virtual time (and the
    /// devices) up to the moment of the access.
    fn sync(&mut self, instret: u64) {
        let _ = instret;
    }
    /// `IN`: read a port. An unclaimed port reads all-ones.
    fn io_read(&mut self, port: u16, size: AccessSize) -> u32;
    /// `OUT`: write a port. Writes to unclaimed ports are dropped.
    fn io_write(&mut self, port: u16, size: AccessSize, value: u32);
    /// After a port write: true when the write changed something the
    /// machine must apply before the next instruction (memory map, A20,
    /// reset). The CPU then ends its run early.
    fn needs_service(&self) -> bool {
        false
    }
    /// Read from a page the memory map marks as MMIO (or unmapped).
    fn mmio_read(&mut self, addr: PhysAddr, size: AccessSize) -> u32 {
        let _ = addr;
        size.all_ones()
    }
    /// Write to a page the memory map marks as MMIO (or unmapped).
    fn mmio_write(&mut self, addr: PhysAddr, size: AccessSize, value: u32) {
        let _ = (addr, size, value);
    }
    /// The vector of a pending maskable interrupt, if any, acknowledged
    /// (INTA cycle). Only called when EFLAGS.IF allows delivery.
    fn acknowledge_interrupt(&mut self) -> Option<u8> {
        None
    }
    /// True when a maskable interrupt is waiting (INTR line high).
    fn interrupt_pending(&self) -> bool {
        false
    }
}

/// A bus with nothing on it: every port and MMIO read is all-ones, no
/// interrupts. Used by the conformance runners and benchmarks.
#[derive(Default, Debug)]
pub struct NullBus;

impl Bus for NullBus {
    fn io_read(&mut self, _port: u16, size: AccessSize) -> u32 {
        size.all_ones()
    }
    fn io_write(&mut self, _port: u16, _size: AccessSize, _value: u32) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn null_bus_reads_all_ones_at_every_width() {
        let mut bus = NullBus;
        assert_eq!(bus.io_read(0x60, AccessSize::Byte), 0xFF);
        assert_eq!(bus.io_read(0x60, AccessSize::Word), 0xFFFF);
        assert_eq!(bus.io_read(0x60, AccessSize::Dword), 0xFFFF_FFFF);
        assert_eq!(bus.mmio_read(PhysAddr(0xFEC0_0000), AccessSize::Word), 0xFFFF);
    }
}
