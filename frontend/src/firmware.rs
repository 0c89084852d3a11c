//! The own BIOS on the PC board: the adapter that lets `ferrite-bios`
//! (which knows only the core) run its services against `ferrite-devices`'
//! board. Port I/O goes to the board's port map, INT 13h reads and writes
//! the block backends behind the IDE and floppy controllers directly, and
//! the BIOS console (teletype output while there is no display) goes to the
//! debug console and the serial sink.

use ferrite_bios::{Bios, BiosDisk, DiskIoError, DiskKind, Platform, SectorIo};
use ferrite_core::{AccessSize, Bus, Cpu, GuestMemory, PhysAddr};
use ferrite_devices::block::{BlockBackend, BlockError};
use ferrite_devices::ide::{DriveKind, DrivePosition, IdeChannel};
use ferrite_devices::pc::{Firmware, Pc};

/// The own BIOS as the board's firmware.
pub struct OwnBios {
    pub bios: Bios,
}

impl Firmware for OwnBios {
    fn trap(&mut self, cpu: &mut Cpu, mem: &mut GuestMemory, pc: &mut Pc) {
        let mut board = Board { pc };
        self.bios.trap(cpu, mem, &mut board);
    }
}

/// The board as the BIOS's platform.
struct Board<'a> {
    pc: &'a mut Pc,
}

fn ide_slot(d: BiosDisk) -> Option<(IdeChannel, DrivePosition)> {
    match d {
        BiosDisk::Ide { channel, slave } => Some((
            if channel == 0 { IdeChannel::Primary } else { IdeChannel::Secondary },
            if slave { DrivePosition::Slave } else { DrivePosition::Master },
        )),
        BiosDisk::Floppy(_) => None,
    }
}

impl Bus for Board<'_> {
    fn sync(&mut self, instret: u64) {
        self.pc.sync(instret)
    }
    fn io_read(&mut self, port: u16, size: AccessSize) -> u32 {
        self.pc.io_read(port, size)
    }
    fn io_write(&mut self, port: u16, size: AccessSize, value: u32) {
        self.pc.io_write(port, size, value)
    }
    fn needs_service(&self) -> bool {
        self.pc.needs_service()
    }
    fn mmio_read(&mut self, addr: PhysAddr, size: AccessSize) -> u32 {
        self.pc.mmio_read(addr, size)
    }
    fn mmio_write(&mut self, addr: PhysAddr, size: AccessSize, value: u32) {
        self.pc.mmio_write(addr, size, value)
    }
    fn acknowledge_interrupt(&mut self) -> Option<u8> {
        self.pc.acknowledge_interrupt()
    }
    fn interrupt_pending(&self) -> bool {
        self.pc.interrupt_pending()
    }
}

impl Platform for Board<'_> {
    fn as_bus(&mut self) -> &mut dyn Bus {
        self
    }

    fn disk_kind(&self, d: BiosDisk) -> Option<DiskKind> {
        match d {
            BiosDisk::Floppy(n) => self.pc.fdc.geometry(n as usize).map(|_| DiskKind::Floppy),
            _ => {
                let (ch, pos) = ide_slot(d)?;
                self.pc.ide.drive_kind(ch, pos).map(|k| match k {
                    DriveKind::Disk => DiskKind::HardDisk,
                    DriveKind::Cdrom => DiskKind::Cdrom,
                })
            }
        }
    }

    fn disk(&mut self, d: BiosDisk) -> Option<Box<dyn SectorIo + '_>> {
        let backend = match d {
            BiosDisk::Floppy(n) => self.pc.fdc.media_mut(n as usize)?,
            _ => {
                let (ch, pos) = ide_slot(d)?;
                self.pc.ide.backend_mut(ch, pos)?
            }
        };
        Some(Box::new(Medium(backend)))
    }

    fn console(&mut self, bytes: &[u8]) {
        self.pc.firmware_console(bytes);
    }

    fn now_ns(&self) -> u64 {
        self.pc.now().0
    }
}

/// A drive's backend as the BIOS's sector storage.
struct Medium<'a>(&'a mut (dyn BlockBackend + 'static));

fn io_error(e: BlockError) -> DiskIoError {
    match e {
        BlockError::OutOfRange { .. } => DiskIoError::OutOfRange,
        BlockError::ReadOnly => DiskIoError::ReadOnly,
        BlockError::Io(e) => DiskIoError::Io(e.to_string()),
    }
}

impl SectorIo for Medium<'_> {
    fn size(&self) -> u64 {
        self.0.size()
    }
    fn read_only(&self) -> bool {
        self.0.read_only()
    }
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), DiskIoError> {
        self.0.read_at(offset, buf).map_err(io_error)
    }
    fn write_at(&mut self, offset: u64, buf: &[u8]) -> Result<(), DiskIoError> {
        self.0.write_at(offset, buf).map_err(io_error)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_bios_and_the_board_agree_on_the_trap_port() {
        assert_eq!(ferrite_bios::own::TRAP_PORT, ferrite_devices::pc::FIRMWARE_TRAP_PORT);
    }
}
