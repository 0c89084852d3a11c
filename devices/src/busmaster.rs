//! PIIX3 bus-master IDE (82371SB function 1, BAR4; the SFF-8038i register
//! set): per channel a command register (bit 0 start/stop, bit 3 direction:
//! 1 = write to memory), a status register (bit 0 active, bit 1 error,
//! bit 2 interrupt — write 1 to clear, bits 5/6 drive DMA capable) and the
//! physical address of a PRD table (entries: base, byte count (0 = 64 KiB),
//! bit 31 of the second dword = end of table).
//!
//! The register file is plain port I/O; the transfer itself needs guest
//! memory, so the board runs [`BusMaster::service`] from the machine loop
//! whenever a channel is active.

use crate::ide::{DmaDirection, IdeChannel, IdeController};
use crate::{AccessSize, DevCtx};
use ferrite_core::{Bus, GuestMemory, PhysAddr};

const CMD_START: u8 = 1 << 0;
const CMD_TO_MEMORY: u8 = 1 << 3;
const ST_ACTIVE: u8 = 1 << 0;
const ST_ERROR: u8 = 1 << 1;
const ST_IRQ: u8 = 1 << 2;
const ST_CAPABLE: u8 = 0x60;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct Channel {
    command: u8,
    status: u8,
    prd: u32,
}

/// The two bus-master channels.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BusMaster {
    ch: [Channel; 2],
}

impl BusMaster {
    pub fn new() -> BusMaster {
        let c = Channel { command: 0, status: ST_CAPABLE, prd: 0 };
        BusMaster { ch: [c, c] }
    }

    /// Read register `off` (0..16 inside BAR4).
    pub fn read(&self, off: u16, size: AccessSize) -> u32 {
        let c = &self.ch[(off as usize >> 3) & 1];
        let v = match off & 7 {
            0 => c.command as u32,
            2 => c.status as u32,
            4..=7 => c.prd >> (8 * (off & 3)),
            _ => 0,
        };
        v & size.all_ones()
    }

    /// Write register `off`.
    pub fn write(&mut self, off: u16, size: AccessSize, value: u32) {
        let c = &mut self.ch[(off as usize >> 3) & 1];
        match off & 7 {
            0 => {
                let v = value as u8 & (CMD_START | CMD_TO_MEMORY);
                if v & CMD_START != 0 && c.command & CMD_START == 0 {
                    c.status |= ST_ACTIVE;
                }
                if v & CMD_START == 0 {
                    c.status &= !ST_ACTIVE;
                }
                c.command = v;
                if size != AccessSize::Byte {
                    // A word/dword write at 0 also reaches the status byte.
                    self.write(off + 2, AccessSize::Byte, value >> 16);
                }
            }
            2 => {
                // Active is read-only, error and interrupt clear on 1,
                // the drive-capable bits are plain storage.
                let v = value as u8;
                let old = c.status;
                c.status = (old & ST_ACTIVE) | (v & ST_CAPABLE) | (old & (ST_ERROR | ST_IRQ) & !v);
            }
            4..=7 => {
                let shift = 8 * (off & 3) as u32;
                let mask = size.all_ones().checked_shl(shift).unwrap_or(0);
                c.prd = ((c.prd & !mask) | ((value << shift) & mask)) & !3;
            }
            _ => {}
        }
    }

    /// True when a channel has been started and not finished.
    pub fn active(&self) -> bool {
        self.ch.iter().any(|c| c.command & CMD_START != 0 && c.status & ST_ACTIVE != 0)
    }

    /// Move the data of started channels through their PRD tables.
    pub fn service(&mut self, ide: &mut IdeController, mem: &mut GuestMemory, bus: &mut dyn Bus, cx: &mut DevCtx) {
        for (i, ch) in [IdeChannel::Primary, IdeChannel::Secondary].into_iter().enumerate() {
            let c = self.ch[i];
            if c.command & CMD_START == 0 || c.status & ST_ACTIVE == 0 {
                continue;
            }
            let Some(dir) = ide.dma_pending(ch) else {
                continue;
            };
            let to_mem = c.command & CMD_TO_MEMORY != 0;
            if to_mem != (dir == DmaDirection::ToMemory) {
                // Direction mismatch: the transfer cannot proceed.
                self.ch[i].status |= ST_ERROR;
                self.ch[i].status &= !ST_ACTIVE;
                continue;
            }
            let mut prd = c.prd;
            // A PRD table has at most 64 KiB / 8 entries that make sense;
            // the bound keeps a looping table from hanging the host.
            for _ in 0..8192 {
                let base = mem.read(PhysAddr(prd), AccessSize::Dword, bus) & !1;
                let word = mem.read(PhysAddr(prd.wrapping_add(4)), AccessSize::Dword, bus);
                let len = match word & 0xFFFE {
                    0 => 0x10000,
                    n => n as usize,
                };
                let mut buf = vec![0u8; len];
                let moved = if to_mem {
                    let n = ide.dma_read(ch, &mut buf, cx);
                    for (k, b) in buf[..n].iter().enumerate() {
                        mem.write(PhysAddr(base.wrapping_add(k as u32)), AccessSize::Byte, *b as u32, bus);
                    }
                    n
                } else {
                    for (k, b) in buf.iter_mut().enumerate() {
                        *b = mem.read(PhysAddr(base.wrapping_add(k as u32)), AccessSize::Byte, bus) as u8;
                    }
                    ide.dma_write(ch, &buf, cx)
                };
                let end_of_table = word & 0x8000_0000 != 0;
                if moved < len || end_of_table || ide.dma_pending(ch).is_none() {
                    break;
                }
                prd = prd.wrapping_add(8);
            }
            // The drive finished (or the table ran out): stop the engine and
            // latch the interrupt bit if the drive raised its line.
            if ide.dma_pending(ch).is_none() {
                self.ch[i].status &= !ST_ACTIVE;
            }
            if ide.irq_level(ch) {
                self.ch[i].status |= ST_IRQ;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::MemBackend;
    use crate::ide::{DrivePosition, IdeDevice};
    use crate::{IrqLines, Nanos, PortIo};
    use ferrite_core::NullBus;

    #[test]
    fn read_dma_moves_sectors_through_the_prd_table() {
        let mut disk = vec![0u8; 64 * 512];
        for (i, b) in disk.iter_mut().enumerate() {
            *b = (i / 512) as u8;
        }
        let mut ide = IdeController::new();
        ide.attach(IdeChannel::Primary, DrivePosition::Master, IdeDevice::Disk(Box::new(MemBackend::new(disk))));
        let mut mem = GuestMemory::new(1 << 20).unwrap();
        let mut bus = NullBus;
        // Two PRD entries: 512 bytes at 0x10000, 512 bytes at 0x20000 (end).
        mem.write(PhysAddr(0x8000), AccessSize::Dword, 0x10000, &mut bus);
        mem.write(PhysAddr(0x8004), AccessSize::Dword, 512, &mut bus);
        mem.write(PhysAddr(0x8008), AccessSize::Dword, 0x20000, &mut bus);
        mem.write(PhysAddr(0x800C), AccessSize::Dword, 0x8000_0200, &mut bus);
        let mut irq = IrqLines::default();
        let mut cx = DevCtx { now: Nanos::ZERO, irq: &mut irq };
        // READ DMA, LBA 5, 2 sectors.
        for (port, v) in [(0x1F6u16, 0xE0u32), (0x1F2, 2), (0x1F3, 5), (0x1F4, 0), (0x1F5, 0), (0x1F7, 0xC8)] {
            ide.io_write(port, AccessSize::Byte, v, &mut cx);
        }
        let mut bm = BusMaster::new();
        bm.write(4, AccessSize::Dword, 0x8000);
        bm.write(0, AccessSize::Byte, (CMD_START | CMD_TO_MEMORY) as u32);
        assert!(bm.active());
        bm.service(&mut ide, &mut mem, &mut bus, &mut cx);
        assert_eq!(mem.peek(PhysAddr(0x10000)), 5);
        assert_eq!(mem.peek(PhysAddr(0x101FF)), 5);
        assert_eq!(mem.peek(PhysAddr(0x20000)), 6);
        let st = bm.read(2, AccessSize::Byte) as u8;
        assert_eq!(st & ST_ACTIVE, 0, "engine stopped");
        assert_ne!(st & ST_IRQ, 0, "interrupt latched");
        bm.write(2, AccessSize::Byte, ST_CAPABLE as u32);
        assert_ne!(bm.read(2, AccessSize::Byte) as u8 & ST_IRQ, 0, "write 0 keeps the interrupt bit");
        bm.write(2, AccessSize::Byte, ST_IRQ as u32);
        assert_eq!(bm.read(2, AccessSize::Byte) as u8 & ST_IRQ, 0, "write 1 clears");
        assert!(!bm.active());
    }

    #[test]
    fn registers_keep_prd_alignment_and_capable_bits() {
        let mut bm = BusMaster::new();
        bm.write(0xC, AccessSize::Dword, 0x1234_5677);
        assert_eq!(bm.read(0xC, AccessSize::Dword), 0x1234_5674);
        bm.write(0xA, AccessSize::Byte, 0x20);
        assert_eq!(bm.read(0xA, AccessSize::Byte), 0x20);
        assert_eq!(bm.read(0x2, AccessSize::Byte), 0x60);
    }
}
