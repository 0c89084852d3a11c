//! What the own BIOS needs from the machine it runs on, beyond the CPU and
//! guest memory: port I/O (the [`Bus`] supertrait: PIC, PIT, CMOS, 8042,
//! PCI configuration cycles all go through the board's ports, exactly as a
//! ROM BIOS would reach them), the storage behind the drives (INT 13h reads
//! the images directly, not through the controllers), a console sink for
//! teletype output while there is no display, and virtual time.
//!
//! The board adapter lives in the frontend (`frontend/src/firmware.rs`);
//! the unit tests use a fake (`own/tests.rs`).

use ferrite_core::Bus;
use thiserror::Error;

/// A drive slot the BIOS knows about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum BiosDisk {
    /// Floppy drive 0 (A:) or 1 (B:).
    Floppy(u8),
    /// IDE channel 0 (primary) or 1 (secondary), master or slave.
    Ide { channel: u8, slave: bool },
}

impl BiosDisk {
    /// The four IDE slots in BIOS probing order.
    pub const IDE: [BiosDisk; 4] = [
        BiosDisk::Ide { channel: 0, slave: false },
        BiosDisk::Ide { channel: 0, slave: true },
        BiosDisk::Ide { channel: 1, slave: false },
        BiosDisk::Ide { channel: 1, slave: true },
    ];
}

/// What sits in a slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DiskKind {
    Floppy,
    HardDisk,
    /// A CD-ROM drive (2048-byte sectors); it may hold no disc.
    Cdrom,
}

/// A failed transfer, reported to the guest as a BIOS disk error.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum DiskIoError {
    #[error("access outside the medium")]
    OutOfRange,
    #[error("the medium is write-protected")]
    ReadOnly,
    #[error("host I/O error: {0}")]
    Io(String),
}

/// Byte-addressed storage of one medium.
pub trait SectorIo {
    /// Size in bytes.
    fn size(&self) -> u64;
    fn read_only(&self) -> bool;
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), DiskIoError>;
    fn write_at(&mut self, offset: u64, buf: &[u8]) -> Result<(), DiskIoError>;
}

/// The machine as the BIOS sees it.
pub trait Platform: Bus {
    /// This platform as a plain bus (for guest memory accesses that may hit
    /// MMIO).
    fn as_bus(&mut self) -> &mut dyn Bus;
    /// What is attached at `d` (None: nothing).
    fn disk_kind(&self, d: BiosDisk) -> Option<DiskKind>;
    /// The medium in `d` (None: no drive or no medium).
    fn disk(&mut self, d: BiosDisk) -> Option<Box<dyn SectorIo + '_>>;
    /// Text for the console sink (teletype output mirrored while no display
    /// is attached: the debug console and the serial sink).
    fn console(&mut self, bytes: &[u8]);
    /// Current virtual time in nanoseconds.
    fn now_ns(&self) -> u64;
}
