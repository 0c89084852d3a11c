//! IDE controller tests: ATA PIO/DMA protocols, IDENTIFY, resets and
//! signatures, ATAPI packet commands, snapshots, port fuzz.

use std::sync::{Arc, Mutex};

use super::*;
use crate::block::{BlockError, MemBackend};
use crate::{IrqLines, Nanos};

/// A backend the test can still look into after handing it to a drive.
#[derive(Clone)]
struct Shared(Arc<Mutex<MemBackend>>);

impl Shared {
    fn new(data: Vec<u8>) -> Shared {
        Shared(Arc::new(Mutex::new(MemBackend::new(data))))
    }
    fn with<R>(&self, f: impl FnOnce(&mut MemBackend) -> R) -> R {
        f(&mut self.0.lock().unwrap())
    }
}

impl BlockBackend for Shared {
    fn size(&self) -> u64 {
        self.with(|b| b.size())
    }
    fn read_only(&self) -> bool {
        self.with(|b| b.read_only())
    }
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), BlockError> {
        self.with(|b| b.read_at(offset, buf))
    }
    fn write_at(&mut self, offset: u64, buf: &[u8]) -> Result<(), BlockError> {
        self.with(|b| b.write_at(offset, buf))
    }
    fn flush(&mut self) -> Result<(), BlockError> {
        self.with(|b| b.flush())
    }
}

/// Image whose every sector is tagged with its number.
fn pattern(sectors: usize, sector: usize) -> Vec<u8> {
    let mut v = vec![0u8; sectors * sector];
    for (i, chunk) in v.chunks_mut(sector).enumerate() {
        chunk[..4].copy_from_slice(&(i as u32).to_le_bytes());
        for (j, b) in chunk.iter_mut().enumerate().skip(4) {
            *b = (i + j) as u8;
        }
    }
    v
}

struct Rig {
    ide: IdeController,
    irq: IrqLines,
}

impl Rig {
    fn new() -> Rig {
        Rig { ide: IdeController::new(), irq: IrqLines::default() }
    }

    fn with_disk(sectors: usize) -> (Rig, Shared) {
        let mut r = Rig::new();
        let b = Shared::new(pattern(sectors, 512));
        r.ide.attach(IdeChannel::Primary, DrivePosition::Master, IdeDevice::Disk(Box::new(b.clone())));
        (r, b)
    }

    fn with_cd(media: Option<usize>) -> (Rig, Option<Shared>) {
        let mut r = Rig::new();
        let b = media.map(|n| Shared::new(pattern(n, 2048)));
        let dev = IdeDevice::Cdrom(b.clone().map(|b| Box::new(b) as Box<dyn BlockBackend>));
        r.ide.attach(IdeChannel::Secondary, DrivePosition::Master, dev);
        (r, b)
    }

    fn read(&mut self, port: u16, size: AccessSize) -> u32 {
        let mut cx = DevCtx { now: Nanos::default(), irq: &mut self.irq };
        self.ide.io_read(port, size, &mut cx)
    }
    fn write(&mut self, port: u16, size: AccessSize, v: u32) {
        let mut cx = DevCtx { now: Nanos::default(), irq: &mut self.irq };
        self.ide.io_write(port, size, v, &mut cx);
    }
    fn inb(&mut self, port: u16) -> u8 {
        self.read(port, AccessSize::Byte) as u8
    }
    fn outb(&mut self, port: u16, v: u8) {
        self.write(port, AccessSize::Byte, u32::from(v));
    }
    fn inw(&mut self, port: u16) -> u16 {
        self.read(port, AccessSize::Word) as u16
    }
    fn outw(&mut self, port: u16, v: u16) {
        self.write(port, AccessSize::Word, u32::from(v));
    }

    /// Read `n` bytes from a channel's data port with word accesses.
    fn read_data(&mut self, base: u16, n: usize) -> Vec<u8> {
        (0..n / 2).flat_map(|_| self.inw(base).to_le_bytes()).collect()
    }

    fn lba28(&mut self, lba: u32, count: u8) {
        self.outb(0x1F6, 0xE0 | (lba >> 24) as u8 & 0x0F);
        self.outb(0x1F2, count);
        self.outb(0x1F3, lba as u8);
        self.outb(0x1F4, (lba >> 8) as u8);
        self.outb(0x1F5, (lba >> 16) as u8);
    }

    fn lba48(&mut self, lba: u64, count: u16) {
        self.outb(0x1F6, 0xE0);
        self.outb(0x1F2, (count >> 8) as u8);
        self.outb(0x1F3, (lba >> 24) as u8);
        self.outb(0x1F4, (lba >> 32) as u8);
        self.outb(0x1F5, (lba >> 40) as u8);
        self.outb(0x1F2, count as u8);
        self.outb(0x1F3, lba as u8);
        self.outb(0x1F4, (lba >> 8) as u8);
        self.outb(0x1F5, (lba >> 16) as u8);
    }

    fn identify(&mut self) -> Vec<u16> {
        self.outb(0x1F7, 0xEC);
        assert_eq!(self.inb(0x1F7), 0x58);
        (0..256).map(|_| self.inw(0x1F0)).collect()
    }

    /// Send a 12-byte packet to the secondary master with a byte count limit.
    fn packet(&mut self, cmd: [u8; 12], limit: u16) {
        self.outb(0x176, 0x00);
        self.outb(0x171, 0);
        self.outb(0x174, limit as u8);
        self.outb(0x175, (limit >> 8) as u8);
        self.outb(0x177, 0xA0);
        assert_eq!(self.inb(0x177) & (ST_DRQ | ST_BSY), ST_DRQ, "waiting for the packet");
        assert_eq!(self.inb(0x172) & 3, IR_COD_TEST);
        for w in cmd.chunks(2) {
            self.outw(0x170, u16::from_le_bytes([w[0], w[1]]));
        }
    }

    /// Read the whole data-in phase of a packet command; returns the data.
    fn packet_data(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        while self.inb(0x177) & ST_DRQ != 0 {
            assert_eq!(self.inb(0x172) & 3, 2, "data phase: IO set, CoD clear");
            let n = usize::from(self.inb(0x174)) | usize::from(self.inb(0x175)) << 8;
            let words = n.div_ceil(2);
            let mut chunk: Vec<u8> = (0..words).flat_map(|_| self.inw(0x170).to_le_bytes()).collect();
            chunk.truncate(n);
            out.extend(chunk);
        }
        out
    }

    fn request_sense(&mut self) -> [u8; 3] {
        self.packet([0x03, 0, 0, 0, 18, 0, 0, 0, 0, 0, 0, 0], 0xFFFE);
        let d = self.packet_data();
        assert_eq!(d.len(), 18);
        [d[2] & 0x0F, d[12], d[13]]
    }
}

const IR_COD_TEST: u8 = 1;

fn words_string(id: &[u16], from: usize, n: usize) -> String {
    id[from..from + n].iter().flat_map(|w| w.to_be_bytes()).map(char::from).collect::<String>().trim_end().to_string()
}

#[test]
fn identify_device_reports_geometry_capacity_and_features() {
    let (mut r, _) = Rig::with_disk(20_000);
    let id = r.identify();
    assert_eq!(id[0] & 0x8000, 0, "ATA device");
    assert_eq!(id[1], (20_000 / (16 * 63)) as u16);
    assert_eq!((id[3], id[6]), (16, 63));
    assert_eq!(words_string(&id, 27, 20), "FERRITE HARDDISK");
    assert!(words_string(&id, 10, 10).starts_with("FERRITE"));
    assert_ne!(id[49] & 0x0300, 0, "LBA and DMA");
    assert_eq!(u32::from(id[60]) | u32::from(id[61]) << 16, 20_000);
    assert_eq!(id[83] & 0x0400, 0x0400, "48-bit supported");
    assert_eq!(id[86] & 0x0400, 0x0400, "48-bit enabled");
    let lba48 = (0..4).fold(0u64, |a, i| a | u64::from(id[100 + i]) << (16 * i));
    assert_eq!(lba48, 20_000);
    assert_eq!(id[47] & 0xFF, 16);
    assert_eq!(id[88] & 0x3F, 0x3F);
    assert_eq!(id[80] & 0x0040, 0x0040, "ATA/ATAPI-6");
    assert_eq!(id[93] & 0x6000, 0x6000);
    let sum = id.iter().flat_map(|w| w.to_le_bytes()).fold(0u8, u8::wrapping_add);
    assert_eq!((id[255] & 0xFF, sum), (0xA5, 0), "integrity word");
    assert_eq!(r.inb(0x1F7), 0x50, "DRQ clears after the last word");
}

#[test]
fn identify_caps_lba28_count_and_cylinders_on_big_disks() {
    let mut r = Rig::new();
    // A backend that claims 2^33 sectors without holding them.
    struct Big;
    impl BlockBackend for Big {
        fn size(&self) -> u64 {
            0x2_0000_0000 * 512
        }
        fn read_only(&self) -> bool {
            false
        }
        fn read_at(&mut self, _: u64, buf: &mut [u8]) -> Result<(), BlockError> {
            buf.fill(0);
            Ok(())
        }
        fn write_at(&mut self, _: u64, _: &[u8]) -> Result<(), BlockError> {
            Ok(())
        }
        fn flush(&mut self) -> Result<(), BlockError> {
            Ok(())
        }
    }
    r.ide.attach(IdeChannel::Primary, DrivePosition::Master, IdeDevice::Disk(Box::new(Big)));
    let id = r.identify();
    assert_eq!(id[1], 16383);
    assert_eq!(u32::from(id[60]) | u32::from(id[61]) << 16, 0x0FFF_FFFF);
    assert_eq!(id[102], 2);
}

#[test]
fn lba28_read_round_trips_with_drq_and_irq_per_sector() {
    let (mut r, _) = Rig::with_disk(100);
    r.lba28(10, 3);
    r.outb(0x1F7, 0x20);
    for s in 10..13u32 {
        assert!(r.irq.level(14), "interrupt before sector {s}");
        assert_eq!(r.inb(0x3F6), 0x58, "alt status does not clear INTRQ");
        assert!(r.irq.level(14));
        assert_eq!(r.inb(0x1F7), 0x58);
        assert!(!r.irq.level(14), "status read clears INTRQ");
        let d = r.read_data(0x1F0, 512);
        assert_eq!(u32::from_le_bytes(d[..4].try_into().unwrap()), s);
    }
    assert_eq!(r.inb(0x1F7), 0x50);
    assert!(!r.irq.level(14), "no interrupt after the last PIO data-in block");
}

#[test]
fn lba28_write_round_trips_and_interrupts_after_each_block() {
    let (mut r, b) = Rig::with_disk(100);
    r.lba28(5, 2);
    r.outb(0x1F7, 0x30);
    assert_eq!(r.inb(0x1F7), 0x58);
    assert!(!r.irq.level(14), "no interrupt before the first data-out block");
    for _ in 0..256 {
        r.outw(0x1F0, 0xA55A);
    }
    assert!(r.irq.level(14));
    assert_eq!(r.inb(0x1F7), 0x58);
    // Second sector with 32-bit accesses.
    for _ in 0..128 {
        r.write(0x1F0, AccessSize::Dword, 0x1234_5678);
    }
    assert!(r.irq.level(14));
    assert_eq!(r.inb(0x1F7), 0x50);
    b.with(|m| {
        assert!(m.data[5 * 512..6 * 512].chunks(2).all(|w| w == [0x5A, 0xA5]));
        assert!(m.data[6 * 512..7 * 512].chunks(4).all(|w| w == [0x78, 0x56, 0x34, 0x12]));
        assert_eq!(m.data[7 * 512], 7, "next sector untouched");
    });
    r.lba28(6, 1);
    r.outb(0x1F7, 0x20);
    assert_eq!(r.read(0x1F0, AccessSize::Dword), 0x1234_5678);
}

#[test]
fn chs_read_uses_the_default_translation() {
    let (mut r, _) = Rig::with_disk(16 * 63 * 3);
    // Cylinder 1, head 2, sector 5 = (1*16 + 2)*63 + 4.
    r.outb(0x1F6, 0xA2);
    r.outb(0x1F2, 1);
    r.outb(0x1F3, 5);
    r.outb(0x1F4, 1);
    r.outb(0x1F5, 0);
    r.outb(0x1F7, 0x20);
    let d = r.read_data(0x1F0, 512);
    assert_eq!(u32::from_le_bytes(d[..4].try_into().unwrap()), 18 * 63 + 4);
    // Sector 0 does not exist in CHS.
    r.outb(0x1F3, 0);
    r.outb(0x1F7, 0x20);
    assert_eq!(r.inb(0x1F7), 0x41);
    assert_eq!(r.inb(0x1F1), ER_IDNF);
}

#[test]
fn initialize_device_parameters_changes_the_chs_translation() {
    let (mut r, _) = Rig::with_disk(4000);
    r.outb(0x1F6, 0xA0 | 3); // 4 heads
    r.outb(0x1F2, 17);
    r.outb(0x1F7, 0x91);
    assert_eq!(r.inb(0x1F7), 0x50);
    let id = r.identify();
    assert_eq!((id[54], id[55], id[56]), (4000 / 68, 4, 17));
    r.outb(0x1F6, 0xA1);
    r.outb(0x1F2, 1);
    r.outb(0x1F3, 2);
    r.outb(0x1F4, 2);
    r.outb(0x1F5, 0);
    r.outb(0x1F7, 0x20);
    let d = r.read_data(0x1F0, 512);
    assert_eq!(u32::from_le_bytes(d[..4].try_into().unwrap()), (2 * 4 + 1) * 17 + 1);
}

#[test]
fn lba48_read_and_write_use_the_hob_registers() {
    let (mut r, b) = Rig::with_disk(600);
    r.lba48(300, 257);
    r.outb(0x3F6, DC_HOB);
    assert_eq!(r.inb(0x1F2), 1, "HOB count");
    r.outb(0x3F6, 0);
    assert_eq!(r.inb(0x1F2), 1, "low count");
    r.outb(0x1F7, 0x24);
    let mut seen = 0;
    while r.inb(0x1F7) & ST_DRQ != 0 {
        let d = r.read_data(0x1F0, 512);
        assert_eq!(u32::from_le_bytes(d[..4].try_into().unwrap()), 300 + seen);
        seen += 1;
    }
    assert_eq!(seen, 257);

    r.lba48(599, 1);
    r.outb(0x1F7, 0x34);
    for _ in 0..256 {
        r.outw(0x1F0, 0xBEEF);
    }
    assert_eq!(r.inb(0x1F7), 0x50);
    b.with(|m| assert_eq!(&m.data[599 * 512..599 * 512 + 2], &[0xEF, 0xBE]));
}

#[test]
fn read_multiple_needs_set_multiple_and_moves_blocks() {
    let (mut r, _) = Rig::with_disk(100);
    r.lba28(0, 10);
    r.outb(0x1F7, 0xC4);
    assert_eq!((r.inb(0x1F7), r.inb(0x1F1)), (0x41, ER_ABRT), "multiple mode off");
    r.outb(0x1F2, 3);
    r.outb(0x1F7, 0xC6);
    assert_eq!(r.inb(0x1F7), 0x41, "3 is not a power of two");
    r.outb(0x1F2, 4);
    r.outb(0x1F7, 0xC6);
    assert_eq!(r.inb(0x1F7), 0x50);
    r.lba28(0, 10);
    r.outb(0x1F7, 0xC4);
    let mut blocks = Vec::new();
    while r.irq.level(14) {
        assert_eq!(r.inb(0x1F7), 0x58);
        let mut n = 0;
        while r.inb(0x3F6) & ST_DRQ != 0 && !r.irq.level(14) {
            r.read_data(0x1F0, 512);
            n += 1;
        }
        blocks.push(n);
    }
    assert_eq!(blocks, vec![4, 4, 2]);
    assert_eq!(r.identify()[59], 0x0104);
}

#[test]
fn write_multiple_ext_writes_every_block() {
    let (mut r, b) = Rig::with_disk(100);
    r.outb(0x1F2, 2);
    r.outb(0x1F7, 0xC6);
    r.lba48(20, 3);
    r.outb(0x1F7, 0x39);
    for i in 0..3 * 256u16 {
        r.outw(0x1F0, i);
    }
    assert_eq!(r.inb(0x1F7), 0x50);
    b.with(|m| {
        assert_eq!(&m.data[20 * 512..20 * 512 + 2], &[0, 0]);
        assert_eq!(&m.data[22 * 512..22 * 512 + 2], &(512u16).to_le_bytes());
    });
}

#[test]
fn flush_cache_reaches_the_backend_before_completion() {
    let (mut r, b) = Rig::with_disk(10);
    r.outb(0x1F7, 0xE7);
    assert_eq!(b.with(|m| m.flushes), 1);
    assert!(r.irq.level(14));
    assert_eq!(r.inb(0x1F7), 0x50);
    r.outb(0x1F7, 0xEA);
    assert_eq!(b.with(|m| m.flushes), 2);
    r.ide.flush_all().unwrap();
    assert_eq!(b.with(|m| m.flushes), 3);
}

#[test]
fn writes_to_a_read_only_disk_abort() {
    let (mut r, b) = Rig::with_disk(10);
    b.with(|m| m.read_only = true);
    r.lba28(0, 1);
    r.outb(0x1F7, 0x30);
    assert_eq!(r.inb(0x1F7), 0x41);
    assert_eq!(r.inb(0x1F1), ER_ABRT);
    assert!(b.with(|m| m.data[4..8] == pattern(1, 512)[4..8]));
}

#[test]
fn out_of_range_addresses_fail_with_idnf() {
    let (mut r, _) = Rig::with_disk(10);
    r.lba28(9, 2);
    r.outb(0x1F7, 0x20);
    assert_eq!((r.inb(0x1F7), r.inb(0x1F1)), (0x41, ER_IDNF));
    r.lba48(1 << 40, 1);
    r.outb(0x1F7, 0x34);
    assert_eq!((r.inb(0x1F7), r.inb(0x1F1)), (0x41, ER_IDNF));
    r.lba28(10, 1);
    r.outb(0x1F7, 0x40);
    assert_eq!((r.inb(0x1F7), r.inb(0x1F1)), (0x41, ER_IDNF));
    r.lba28(9, 1);
    r.outb(0x1F7, 0x40);
    assert_eq!(r.inb(0x1F7), 0x50);
}

#[test]
fn unknown_commands_abort_and_misc_commands_complete() {
    let (mut r, _) = Rig::with_disk(4096);
    for cmd in [0x00, 0xA0, 0xA1, 0x08, 0xFF, 0xF9] {
        r.outb(0x1F7, cmd);
        assert_eq!((r.inb(0x1F7), r.inb(0x1F1)), (0x41, ER_ABRT), "command {cmd:#x}");
    }
    for cmd in [0x10, 0x70, 0xE0, 0xE1, 0xE3, 0xE2] {
        r.outb(0x1F7, cmd);
        assert_eq!(r.inb(0x1F7), 0x50, "command {cmd:#x}");
    }
    r.outb(0x1F7, 0xE5);
    assert_eq!(r.inb(0x1F2), 0xFF);
    r.outb(0x1F1, 0x03);
    r.outb(0x1F2, 0x45); // UDMA 5
    r.outb(0x1F7, 0xEF);
    assert_eq!(r.inb(0x1F7), 0x50);
    assert_eq!(r.identify()[88], 0x203F);
    r.outb(0x1F6, 0xE0);
    r.outb(0x1F7, 0xF8);
    assert_eq!((r.inb(0x1F3), r.inb(0x1F4), r.inb(0x1F6) & 0x0F), (0xFF, 0x0F, 0));
    r.outb(0x1F7, 0x27);
    r.outb(0x3F6, DC_HOB);
    assert_eq!(r.inb(0x1F3), 0);
}

#[test]
fn dma_read_and_write_move_data_through_the_bus_master_interface() {
    let (mut r, b) = Rig::with_disk(100);
    let mut cx_irq = IrqLines::default();
    r.lba28(3, 2);
    r.outb(0x1F7, 0xC8);
    assert_eq!(r.ide.dma_pending(IdeChannel::Primary), Some(DmaDirection::ToMemory));
    assert!(!r.irq.level(14));
    let mut buf = vec![0u8; 1500];
    let n = r.ide.dma_read(IdeChannel::Primary, &mut buf, &mut DevCtx { now: Nanos::default(), irq: &mut cx_irq });
    assert_eq!(n, 1024);
    assert_eq!(buf[512], 4);
    assert!(cx_irq.level(14), "completion interrupt");
    assert_eq!(r.ide.dma_pending(IdeChannel::Primary), None);

    r.lba48(50, 1);
    r.outb(0x1F7, 0x35);
    assert_eq!(r.ide.dma_pending(IdeChannel::Primary), Some(DmaDirection::FromMemory));
    let mut cx = DevCtx { now: Nanos::default(), irq: &mut cx_irq };
    assert_eq!(r.ide.dma_write(IdeChannel::Primary, &[7; 300], &mut cx), 300);
    assert_eq!(r.ide.dma_write(IdeChannel::Primary, &[8; 300], &mut cx), 212);
    assert_eq!(r.inb(0x1F7), 0x50);
    b.with(|m| assert_eq!((m.data[50 * 512 + 299], m.data[50 * 512 + 300]), (7, 8)));
}

#[test]
fn soft_reset_leaves_signatures_for_disk_and_cdrom() {
    let mut r = Rig::new();
    r.ide.attach(IdeChannel::Primary, DrivePosition::Master, IdeDevice::Disk(Box::new(MemBackend::new(vec![0; 4096]))));
    r.ide.attach(IdeChannel::Primary, DrivePosition::Slave, IdeDevice::Cdrom(None));
    r.outb(0x1F6, 0xB0);
    r.outb(0x1F2, 0x55);
    r.outb(0x3F6, DC_SRST);
    assert_eq!(r.inb(0x3F6) & ST_BSY, ST_BSY);
    r.outb(0x3F6, 0);
    assert_eq!(r.inb(0x1F6) & DEV_DEV, 0, "device 0 selected after reset");
    assert_eq!((r.inb(0x1F2), r.inb(0x1F3), r.inb(0x1F4), r.inb(0x1F5)), (1, 1, 0, 0));
    assert_eq!((r.inb(0x1F7), r.inb(0x1F1)), (0x50, 0x01));
    r.outb(0x1F6, 0xB0);
    assert_eq!((r.inb(0x1F2), r.inb(0x1F3), r.inb(0x1F4), r.inb(0x1F5)), (1, 1, 0x14, 0xEB));
    assert_eq!(r.inb(0x1F7), 0x00);
    assert!(!r.irq.level(14), "reset posts no interrupt");
    // The packet device aborts IDENTIFY DEVICE with its signature.
    r.outb(0x1F7, 0xEC);
    assert_eq!(r.inb(0x1F7) & ST_ERR, ST_ERR);
    assert_eq!((r.inb(0x1F4), r.inb(0x1F5)), (0x14, 0xEB));
    // EXECUTE DEVICE DIAGNOSTIC: signatures, error 01h, device 0 interrupts.
    r.outb(0x1F7, 0x90);
    assert!(r.irq.level(14));
    assert_eq!((r.inb(0x1F1), r.inb(0x1F4)), (0x01, 0));
}

#[test]
fn absent_drives_read_as_specified() {
    let (mut r, _) = Rig::with_disk(10);
    r.outb(0x1F2, 0x55);
    r.outb(0x1F6, 0xB0);
    assert_eq!(r.inb(0x1F7), 0, "absent device 1 status");
    assert_eq!(r.inb(0x3F6), 0);
    assert_eq!(r.inb(0x1F2), 0x55, "device 0 answers for device 1");
    r.outb(0x1F7, 0xEC);
    assert_eq!(r.inb(0x1F7), 0, "commands to device 1 are ignored");
    assert!(!r.irq.level(14));
    // Empty secondary channel: floating bus.
    r.outb(0x172, 0x55);
    assert_eq!(r.inb(0x172), 0x7F);
    assert_eq!(r.inb(0x177), 0x7F);
    assert_eq!(r.inb(0x376), 0x7F);
    // Unclaimed ports read all-ones.
    assert_eq!(r.inb(0x3F7), 0xFF);
}

#[test]
fn nien_masks_the_interrupt_line_but_keeps_it_pending() {
    let (mut r, _) = Rig::with_disk(10);
    r.outb(0x3F6, DC_NIEN);
    r.outb(0x1F7, 0xE7);
    assert!(!r.irq.level(14));
    r.outb(0x3F6, 0);
    assert!(r.irq.level(14), "pending interrupt shows once enabled");
    r.inb(0x1F7);
    assert!(!r.irq.level(14));
}

#[test]
fn atapi_identify_packet_device() {
    let (mut r, _) = Rig::with_cd(None);
    r.outb(0x176, 0);
    r.outb(0x177, 0xA1);
    assert!(r.irq.level(15));
    assert_eq!(r.inb(0x177), 0x58);
    let id: Vec<u16> = (0..256).map(|_| r.inw(0x170)).collect();
    assert_eq!(id[0], 0x85C0);
    assert_eq!(id[0] >> 14, 2);
    assert_eq!((id[0] >> 8) & 0x1F, 5);
    assert_eq!(words_string(&id, 27, 20), "FERRITE CD-ROM");
    assert_eq!(r.inb(0x177), 0x50);
}

#[test]
fn atapi_inquiry_reports_a_removable_cdrom() {
    let (mut r, _) = Rig::with_cd(None);
    r.packet([0x12, 0, 0, 0, 36, 0, 0, 0, 0, 0, 0, 0], 0xFFFE);
    assert!(r.irq.level(15));
    let d = r.packet_data();
    assert_eq!(d.len(), 36);
    assert_eq!((d[0], d[1]), (0x05, 0x80));
    assert_eq!(&d[8..15], b"FERRITE");
    assert_eq!(r.inb(0x177), 0x50);
    assert_eq!(r.inb(0x172) & 3, 3, "status phase: IO and CoD");
    // Allocation length cuts the reply.
    r.packet([0x12, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0], 0xFFFE);
    assert_eq!(r.packet_data().len(), 5);
}

#[test]
fn atapi_without_media_reports_not_ready() {
    let (mut r, _) = Rig::with_cd(None);
    r.packet([0; 12], 0xFFFE);
    assert_eq!(r.inb(0x177), 0x41);
    assert_eq!(r.inb(0x171) >> 4, 2);
    assert_eq!(r.request_sense(), [2, 0x3A, 0x01]);
    assert_eq!(r.request_sense(), [0, 0, 0], "sense is cleared once read");
    r.packet([0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], 0xFFFE);
    assert_eq!(r.inb(0x177) & ST_ERR, ST_ERR);
}

#[test]
fn atapi_media_change_raises_unit_attention() {
    let (mut r, _) = Rig::with_cd(None);
    let old = r
        .ide
        .change_media(IdeChannel::Secondary, DrivePosition::Master, Some(Box::new(MemBackend::new(vec![0; 2048 * 4]))))
        .unwrap();
    assert!(old.is_none());
    r.packet([0; 12], 0xFFFE);
    assert_eq!(r.inb(0x177) & ST_ERR, ST_ERR);
    assert_eq!(r.request_sense(), [6, 0x28, 0]);
    r.packet([0; 12], 0xFFFE);
    assert_eq!(r.inb(0x177), 0x50, "ready after the attention");
    assert_eq!(
        r.ide.change_media(IdeChannel::Primary, DrivePosition::Master, None).err(),
        Some(IdeError::NoDrive(IdeChannel::Primary, DrivePosition::Master))
    );
}

#[test]
fn atapi_read_capacity_and_read10_across_byte_count_blocks() {
    let (mut r, _) = Rig::with_cd(Some(40));
    r.packet([0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], 0xFFFE);
    assert_eq!(r.packet_data(), [0, 0, 0, 39, 0, 0, 8, 0]);
    // READ(10) of 3 sectors from LBA 5 with a 3000-byte limit: DRQ
    // blocks of 3000, 3000, 144 bytes, each announced by an interrupt.
    r.packet([0x28, 0, 0, 0, 0, 5, 0, 0, 3, 0, 0, 0], 3001);
    let mut sizes = Vec::new();
    let mut data = Vec::new();
    while r.inb(0x376) & ST_DRQ != 0 {
        assert!(r.irq.level(15));
        r.inb(0x177);
        let n = usize::from(r.inb(0x174)) | usize::from(r.inb(0x175)) << 8;
        sizes.push(n);
        data.extend(r.read_data(0x170, n));
    }
    assert_eq!(sizes, vec![3000, 3000, 144]);
    assert!(r.irq.level(15), "completion interrupt");
    assert_eq!(r.inb(0x177), 0x50);
    assert_eq!(data.len(), 3 * 2048);
    for (i, s) in data.chunks(2048).enumerate() {
        assert_eq!(u32::from_le_bytes(s[..4].try_into().unwrap()), 5 + i as u32);
    }
    // READ(12) past the end.
    r.packet([0xA8, 0, 0, 0, 0, 39, 0, 0, 0, 2, 0, 0], 0xFFFE);
    assert_eq!(r.inb(0x177) & ST_ERR, ST_ERR);
    assert_eq!(r.request_sense(), [5, 0x21, 0]);
    // READ(12) of the last sector.
    r.packet([0xA8, 0, 0, 0, 0, 39, 0, 0, 0, 1, 0, 0], 0xFFFE);
    assert_eq!(r.packet_data()[..4], 39u32.to_le_bytes());
}

#[test]
fn atapi_toc_mode_sense_config_and_tray() {
    let (mut r, _) = Rig::with_cd(Some(1000));
    r.packet([0x43, 0, 0, 0, 0, 0, 0, 0, 100, 0, 0, 0], 0xFFFE);
    let toc = r.packet_data();
    assert_eq!(toc.len(), 20);
    assert_eq!(&toc[..4], &[0, 18, 1, 1]);
    assert_eq!(toc[14], 0xAA);
    assert_eq!(&toc[16..20], &1000u32.to_be_bytes());
    r.packet([0x43, 2, 0, 0, 0, 0, 0, 0, 100, 0, 0, 0], 0xFFFE);
    let toc = r.packet_data();
    assert_eq!(&toc[8..12], &[0, 0, 2, 0], "track 1 at 00:02:00");
    r.packet([0x43, 0, 1, 0, 0, 0, 0, 0, 100, 0, 0, 0], 0xFFFE);
    assert_eq!(r.packet_data().len(), 12);

    r.packet([0x5A, 0, 0x2A, 0, 0, 0, 0, 0, 64, 0, 0, 0], 0xFFFE);
    let ms = r.packet_data();
    assert_eq!((ms[8], ms[9]), (0x2A, 0x12));
    r.packet([0x5A, 0, 0x3F, 0, 0, 0, 0, 1, 0, 0, 0, 0], 0xFFFE);
    assert_eq!(r.packet_data().len(), 8 + 8 + 8 + 20);
    r.packet([0x5A, 0, 0x05, 0, 0, 0, 0, 0, 64, 0, 0, 0], 0xFFFE);
    assert_eq!(r.request_sense(), [5, 0x24, 0]);

    r.packet([0x46, 0, 0, 0, 0, 0, 0, 0, 64, 0, 0, 0], 0xFFFE);
    let cfg = r.packet_data();
    assert_eq!(&cfg[6..8], &[0, 8]);

    r.packet([0x1E, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0], 0xFFFE);
    r.packet([0x1B, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0], 0xFFFE);
    assert_eq!(r.request_sense(), [5, 0x53, 2], "locked tray stays shut");
    r.packet([0x1E, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], 0xFFFE);
    r.packet([0x1B, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0], 0xFFFE);
    assert_eq!(r.inb(0x177), 0x50);
    r.packet([0; 12], 0xFFFE);
    assert_eq!(r.request_sense(), [2, 0x3A, 2], "tray open");
    r.packet([0x1B, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0], 0xFFFE);
    r.packet([0; 12], 0xFFFE);
    assert_eq!(r.request_sense(), [6, 0x28, 0]);

    r.packet([0xBE, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], 0xFFFE);
    assert_eq!(r.request_sense(), [5, 0x20, 0]);
}

#[test]
fn atapi_device_reset_and_dma_packets() {
    let (mut r, _) = Rig::with_cd(Some(4));
    r.outb(0x176, 0);
    r.outb(0x171, 1);
    r.outb(0x177, 0xA0);
    assert_eq!((r.inb(0x177), r.inb(0x171)), (0x41, ER_ABRT), "no ATAPI DMA");
    r.outb(0x177, 0x08);
    assert_eq!((r.inb(0x177), r.inb(0x174), r.inb(0x175)), (0, 0x14, 0xEB));
}

#[test]
fn snapshot_round_trips_mid_transfer() {
    let (mut r, b) = Rig::with_disk(100);
    r.lba28(7, 2);
    r.outb(0x1F7, 0x20);
    r.read_data(0x1F0, 100);
    let st = r.ide.state();
    let mut r2 = Rig::new();
    r2.ide.attach(IdeChannel::Primary, DrivePosition::Master, IdeDevice::Disk(Box::new(b.clone())));
    r2.ide.restore(&st).unwrap();
    assert_eq!(r2.ide.state(), st);
    assert_eq!(r.read_data(0x1F0, 924), r2.read_data(0x1F0, 924));
    assert_eq!(r2.inb(0x1F7), 0x50);
    let mut r3 = Rig::new();
    assert_eq!(r3.ide.restore(&st), Err(IdeError::LayoutMismatch));
    r3.ide.attach(IdeChannel::Primary, DrivePosition::Master, IdeDevice::Cdrom(None));
    assert_eq!(r3.ide.restore(&st), Err(IdeError::LayoutMismatch));
    fn assert_serde<T: serde::Serialize + for<'de> serde::Deserialize<'de>>() {}
    assert_serde::<IdeState>();
}

#[test]
fn garbage_on_every_port_never_panics() {
    let mut r = Rig::new();
    r.ide.attach(
        IdeChannel::Primary,
        DrivePosition::Master,
        IdeDevice::Disk(Box::new(MemBackend::new(vec![0; 512 * 64]))),
    );
    r.ide.attach(
        IdeChannel::Primary,
        DrivePosition::Slave,
        IdeDevice::Cdrom(Some(Box::new(MemBackend::new(vec![0; 2048 * 8])))),
    );
    r.ide.attach(IdeChannel::Secondary, DrivePosition::Slave, IdeDevice::Cdrom(None));
    let ports: Vec<u16> = (0x1F0..=0x1F7).chain(0x170..=0x177).chain([0x3F6, 0x376, 0x3F7, 0x377]).collect();
    let mut x: u32 = 0x1234_5678;
    for _ in 0..300_000 {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        let port = ports[(x as usize >> 8) % ports.len()];
        let size = [AccessSize::Byte, AccessSize::Word, AccessSize::Dword][(x % 3) as usize];
        // Mostly avoid SRST so commands get to run.
        let v = if port == 0x3F6 || port == 0x376 { x >> 16 & !u32::from(DC_SRST) } else { x >> 12 };
        if x & 1 == 0 {
            r.read(port, size);
        } else {
            r.write(port, size, v);
        }
    }
    let st = r.ide.state();
    r.ide.restore(&st).unwrap();
}

#[test]
fn backend_errors_become_unc_or_abort() {
    struct Broken;
    impl BlockBackend for Broken {
        fn size(&self) -> u64 {
            512 * 8
        }
        fn read_only(&self) -> bool {
            false
        }
        fn read_at(&mut self, _: u64, _: &mut [u8]) -> Result<(), BlockError> {
            Err(BlockError::Io(std::io::Error::other("bad sector")))
        }
        fn write_at(&mut self, _: u64, _: &[u8]) -> Result<(), BlockError> {
            Err(BlockError::Io(std::io::Error::other("bad sector")))
        }
        fn flush(&mut self) -> Result<(), BlockError> {
            Err(BlockError::Io(std::io::Error::other("gone")))
        }
    }
    let mut r = Rig::new();
    r.ide.attach(IdeChannel::Primary, DrivePosition::Master, IdeDevice::Disk(Box::new(Broken)));
    r.lba28(0, 1);
    r.outb(0x1F7, 0x20);
    assert!(r.irq.level(14));
    assert_eq!((r.inb(0x1F7), r.inb(0x1F1)), (0x41, ER_UNC));
    r.outb(0x1F7, 0x30);
    for _ in 0..256 {
        r.outw(0x1F0, 0);
    }
    assert_eq!((r.inb(0x1F7), r.inb(0x1F1)), (0x41, ER_ABRT));
    r.outb(0x1F7, 0xE7);
    assert_eq!((r.inb(0x1F7), r.inb(0x1F1)), (0x41, ER_ABRT));
}

#[test]
fn doctored_snapshots_do_not_panic() {
    let (mut r, _) = Rig::with_cd(Some(4));
    r.packet([0x12, 0, 0, 0, 36, 0, 0, 0, 0, 0, 0, 0], 0xFFFE);
    let mut st = r.ide.state();
    let d = st.channels[1].drives[0].as_mut().unwrap();
    d.buf.truncate(3);
    d.end = 1000;
    d.pos = 2000;
    r.ide.restore(&st).unwrap();
    r.read_data(0x170, 64);
    r.outb(0x177, 0xA0);
    r.outb(0x177, 0xA0);
    let mut st = r.ide.state();
    st.channels[1].drives[0].as_mut().unwrap().buf.clear();
    r.ide.restore(&st).unwrap();
    for _ in 0..6 {
        r.outw(0x170, 0);
    }
    r.inb(0x177);
}
