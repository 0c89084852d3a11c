//! ATA commands of a hard disk (ATA/ATAPI-6 section 8) and the IDENTIFY
//! DEVICE data (ATA-6 8.15, table 16).

use super::{Drive, DriveKind, Xfer, DEV_LBA, ER_ABRT, ER_IDNF, ER_UNC, ST_DRDY, ST_DRQ, ST_DSC};
use crate::block::BlockError;

pub(super) const SECTOR: usize = 512;
pub(super) const DEFAULT_HEADS: u8 = 16;
pub(super) const DEFAULT_SPT: u8 = 63;
/// Largest READ/WRITE MULTIPLE block (IDENTIFY word 47).
const MAX_MULTIPLE: u8 = 16;
/// LBA28 addresses end here (ATA-6 8.15.33: words 60-61 saturate).
const LBA28_LIMIT: u64 = 0x0FFF_FFFF;

pub(super) const CMD_DEVICE_RESET: u8 = 0x08;
pub(super) const CMD_EXECUTE_DEVICE_DIAGNOSTIC: u8 = 0x90;
pub(super) const CMD_IDENTIFY_DEVICE: u8 = 0xEC;
pub(super) const CMD_READ_SECTORS: u8 = 0x20;

/// How a read/write command addresses and moves data.
#[derive(Clone, Copy)]
struct Access {
    ext: bool,
    /// Sectors per DRQ block, 0 = use the multiple mode setting.
    block: u32,
    dma: bool,
}

const PIO: Access = Access { ext: false, block: 1, dma: false };
const PIO_EXT: Access = Access { ext: true, block: 1, dma: false };
const MULT: Access = Access { ext: false, block: 0, dma: false };
const MULT_EXT: Access = Access { ext: true, block: 0, dma: false };
const DMA: Access = Access { ext: false, block: 1, dma: true };
const DMA_EXT: Access = Access { ext: true, block: 1, dma: true };

/// Write an ATA string: two characters per word, the first in the high
/// byte (ATA-6 3.2.9), padded with spaces.
fn put_string(id: &mut [u16; 256], word: usize, len_words: usize, s: &str) {
    let mut bytes = s.bytes().chain(std::iter::repeat(b' '));
    for w in &mut id[word..word + len_words] {
        let hi = bytes.next().unwrap_or(b' ');
        let lo = bytes.next().unwrap_or(b' ');
        *w = u16::from(hi) << 8 | u16::from(lo);
    }
}

/// ATA-6 8.15.68 word 255: signature A5h and a checksum byte making the
/// sum of all 512 bytes zero.
fn seal(id: &mut [u16; 256]) -> Vec<u8> {
    id[255] = 0x00A5;
    let sum = id.iter().flat_map(|w| w.to_le_bytes()).fold(0u8, u8::wrapping_add);
    id[255] |= u16::from(sum.wrapping_neg()) << 8;
    id.iter().flat_map(|w| w.to_le_bytes()).collect()
}

/// Identification strings shared by the disk and the CD-ROM.
pub(super) fn put_strings(id: &mut [u16; 256], unit: u8, model: &str) {
    put_string(id, 10, 10, &format!("FERRITE{:04}{:09}", 1, unit));
    put_string(id, 23, 4, env!("CARGO_PKG_VERSION"));
    put_string(id, 27, 20, model);
}

/// Word 93 (hardware reset result, ATA-6 8.15.52): bit 14 set, bit 13
/// 80-conductor cable, then the device 0 / device 1 halves: "determined by
/// jumper" (01b) and, for device 0, diagnostics passed.
pub(super) fn word93(unit: u8) -> u16 {
    if unit & 1 == 0 {
        0x6000 | 0x000B
    } else {
        0x6000 | 0x0300
    }
}

pub(super) fn identify_packet_bytes(id: &mut [u16; 256]) -> Vec<u8> {
    seal(id)
}

fn error_bits(e: &BlockError, write: bool) -> u8 {
    match e {
        BlockError::OutOfRange { .. } => ER_IDNF,
        BlockError::ReadOnly => ER_ABRT,
        BlockError::Io(_) if write => ER_ABRT,
        BlockError::Io(_) => ER_UNC,
    }
}

impl Drive {
    pub(super) fn total_sectors(&self) -> u64 {
        let sector = match self.s.kind {
            DriveKind::Disk => SECTOR as u64,
            DriveKind::Cdrom => super::atapi::CD_SECTOR as u64,
        };
        self.backend.as_ref().map_or(0, |b| b.size() / sector)
    }

    /// Default geometry (ATA-6 annex on CHS: 16 heads, 63 sectors per track,
    /// cylinders capped at 16383).
    fn default_cylinders(&self) -> u16 {
        (self.total_sectors() / (u64::from(DEFAULT_HEADS) * u64::from(DEFAULT_SPT))).clamp(1, 16383) as u16
    }

    fn current_cylinders(&self) -> u16 {
        let hs = u64::from(self.s.heads) * u64::from(self.s.spt);
        (self.total_sectors().min(16383 * 16 * 63) / hs.max(1)).min(65535) as u16
    }

    fn identify_device(&self) -> Vec<u8> {
        let mut id = [0u16; 256];
        let total = self.total_sectors();
        id[0] = 0x0040; // fixed device, ATA
        id[1] = self.default_cylinders();
        id[3] = u16::from(DEFAULT_HEADS);
        id[6] = u16::from(DEFAULT_SPT);
        put_strings(&mut id, self.s.unit, "FERRITE HARDDISK");
        id[47] = 0x8000 | u16::from(MAX_MULTIPLE);
        id[48] = 0x0001; // doubleword I/O (the PIIX 32-bit data port)
                         // Word 49: IORDY supported and disableable, LBA, DMA.
        id[49] = 0x0F00;
        id[50] = 0x4000;
        id[51] = 0x0200; // PIO timing mode 2 (obsolete field)
        id[53] = 0x0007; // words 54-58, 64-70 and 88 valid
        let cyl = self.current_cylinders();
        id[54] = cyl;
        id[55] = u16::from(self.s.heads);
        id[56] = u16::from(self.s.spt);
        let cur = u32::from(cyl) * u32::from(self.s.heads) * u32::from(self.s.spt);
        id[57] = cur as u16;
        id[58] = (cur >> 16) as u16;
        if self.s.multiple != 0 {
            id[59] = 0x0100 | u16::from(self.s.multiple);
        }
        let lba28 = total.min(LBA28_LIMIT) as u32;
        id[60] = lba28 as u16;
        id[61] = (lba28 >> 16) as u16;
        // Multiword DMA 0-2 supported; the selected mode in the high byte.
        let mode = self.s.xfer_mode;
        id[63] = 0x0007 | if mode & 0xF8 == 0x20 { 0x0100 << (mode & 7) } else { 0 };
        id[64] = 0x0003; // PIO 3 and 4
        id[65] = 120;
        id[66] = 120;
        id[67] = 120;
        id[68] = 120;
        id[80] = 0x007E; // ATA-1 .. ATA/ATAPI-6
        id[81] = 0;
        // Command sets: 82 power management; 83 bit 14 valid, FLUSH CACHE
        // EXT (13), FLUSH CACHE (12), 48-bit (10); 84 bit 14 valid.
        id[82] = 0x0008;
        id[83] = 0x7400;
        id[84] = 0x4000;
        id[85] = 0x0008;
        id[86] = 0x3400;
        id[87] = 0x4000;
        // UDMA 0-5 supported, the selected one in the high byte.
        id[88] = 0x003F | if mode & 0xF8 == 0x40 { 0x0100 << (mode & 7) } else { 0 };
        id[93] = word93(self.s.unit);
        for (i, w) in id[100..104].iter_mut().enumerate() {
            *w = (total >> (16 * i)) as u16;
        }
        seal(&mut id)
    }

    /// LBA or CHS address of an LBA28 command (ATA-6 7.1); None for a CHS
    /// address outside the current geometry.
    fn address28(&self) -> Option<u64> {
        let tf = &self.s.tf;
        if tf.device & DEV_LBA != 0 {
            return Some(
                u64::from(tf.device & 0x0F) << 24
                    | u64::from(tf.lba_high) << 16
                    | u64::from(tf.lba_mid) << 8
                    | u64::from(tf.lba_low),
            );
        }
        let cyl = u64::from(tf.lba_high) << 8 | u64::from(tf.lba_mid);
        let head = tf.device & 0x0F;
        let sector = tf.lba_low;
        if sector == 0 || sector > self.s.spt || head >= self.s.heads {
            return None;
        }
        Some((cyl * u64::from(self.s.heads) + u64::from(head)) * u64::from(self.s.spt) + u64::from(sector) - 1)
    }

    fn address48(&self) -> u64 {
        let tf = &self.s.tf;
        [tf.lba_low, tf.lba_mid, tf.lba_high, tf.hob_lba_low, tf.hob_lba_mid, tf.hob_lba_high]
            .iter()
            .enumerate()
            .fold(0, |a, (i, &b)| a | u64::from(b) << (8 * i))
    }

    /// Sector count: 0 means 256 (LBA28) or 65536 (LBA48).
    fn count(&self, ext: bool) -> u32 {
        if ext {
            let n = u32::from(self.s.tf.hob_count) << 8 | u32::from(self.s.tf.count);
            if n == 0 {
                65536
            } else {
                n
            }
        } else if self.s.tf.count == 0 {
            256
        } else {
            u32::from(self.s.tf.count)
        }
    }

    /// Validate a read/write/verify range: Some((lba, count)) or the
    /// command has already failed with IDNF.
    fn range(&mut self, ext: bool) -> Option<(u64, u32)> {
        let lba = if ext { Some(self.address48()) } else { self.address28() };
        let count = self.count(ext);
        match lba {
            Some(lba) if lba + u64::from(count) <= self.total_sectors() => Some((lba, count)),
            _ => {
                self.fail(ER_IDNF);
                None
            }
        }
    }

    fn block_size(&mut self, a: Access) -> Option<u32> {
        match a.block {
            0 if self.s.multiple == 0 => {
                self.fail(ER_ABRT);
                None
            }
            0 => Some(u32::from(self.s.multiple)),
            n => Some(n),
        }
    }

    fn start_read(&mut self, a: Access) {
        let Some(block) = self.block_size(a) else { return };
        let Some((lba, left)) = self.range(a.ext) else { return };
        self.s.xfer = Xfer::AtaIn { lba, left, block, dma: a.dma };
        self.ata_in_next();
    }

    /// Load the next data-in block, or finish (ATA-6 9.5: PIO interrupts at
    /// the start of each block and not at the end; 9.7: DMA interrupts at
    /// the end).
    pub(super) fn ata_in_next(&mut self) {
        let Xfer::AtaIn { lba, left, block, dma } = self.s.xfer else { return };
        if left == 0 {
            self.complete(dma);
            return;
        }
        let n = left.min(block.max(1));
        let mut buf = vec![0u8; n as usize * SECTOR];
        let r = match self.backend.as_mut() {
            Some(b) => b.read_at(lba * SECTOR as u64, &mut buf),
            None => Err(BlockError::OutOfRange { offset: 0, len: 0, size: 0 }),
        };
        if let Err(e) = r {
            tracing::debug!("ide: read at sector {lba} failed: {e}");
            self.fail(error_bits(&e, false));
            return;
        }
        self.s.xfer = Xfer::AtaIn { lba: lba + u64::from(n), left: left - n, block, dma };
        self.s.end = buf.len();
        self.s.buf = buf;
        self.s.pos = 0;
        self.s.tf.status = ST_DRDY | ST_DSC | ST_DRQ;
        if !dma {
            self.s.intrq = true;
        }
    }

    fn start_write(&mut self, a: Access) {
        if self.backend.as_ref().is_some_and(|b| b.read_only()) {
            // A fixed disk has no write-protect error (WP is for removable
            // media status notification): abort.
            self.fail(ER_ABRT);
            return;
        }
        let Some(block) = self.block_size(a) else { return };
        let Some((lba, left)) = self.range(a.ext) else { return };
        self.s.xfer = Xfer::AtaOut { lba, left, block, dma: a.dma };
        self.ata_out_block();
    }

    /// Open the next data-out block (ATA-6 9.6: no interrupt before the
    /// first block, one before each later block).
    fn ata_out_block(&mut self) {
        let Xfer::AtaOut { left, block, .. } = self.s.xfer else { return };
        let n = left.min(block.max(1)) as usize;
        self.s.buf = vec![0; n * SECTOR];
        self.s.pos = 0;
        self.s.end = n * SECTOR;
        self.s.tf.status = ST_DRDY | ST_DSC | ST_DRQ;
    }

    /// The host filled a data-out block: write it, then ask for the next
    /// block or post completion.
    pub(super) fn ata_out_commit(&mut self) {
        let Xfer::AtaOut { lba, left, block, dma } = self.s.xfer else { return };
        let n = (self.s.end / SECTOR) as u32;
        let r = match self.backend.as_mut() {
            Some(b) => b.write_at(lba * SECTOR as u64, &self.s.buf[..self.s.end]),
            None => Err(BlockError::ReadOnly),
        };
        if let Err(e) = r {
            tracing::debug!("ide: write at sector {lba} failed: {e}");
            self.fail(error_bits(&e, true));
            return;
        }
        let left = left.saturating_sub(n);
        if left == 0 {
            self.complete(true);
            return;
        }
        self.s.xfer = Xfer::AtaOut { lba: lba + u64::from(n), left, block, dma };
        self.ata_out_block();
        if !dma {
            self.s.intrq = true;
        }
    }

    fn flush(&mut self) {
        let r = self.backend.as_mut().map_or(Ok(()), |b| b.flush());
        match r {
            Ok(()) => self.complete(true),
            Err(e) => {
                tracing::warn!("ide: flush failed: {e}");
                self.fail(ER_ABRT);
            }
        }
    }

    /// SET FEATURES (ATA-6 8.37).
    fn set_features(&mut self) {
        let mode = self.s.tf.count;
        let ok = match self.s.tf.feature {
            0x03 => {
                let valid = match mode & 0xF8 {
                    0x00 => mode <= 1,
                    0x08 => mode & 7 <= 4,
                    0x20 => mode & 7 <= 2,
                    0x40 => mode & 7 <= 5 && self.s.kind == DriveKind::Disk,
                    _ => false,
                };
                if valid {
                    self.s.xfer_mode = mode;
                }
                valid
            }
            // Write cache, read look-ahead, revert to power-on defaults:
            // nothing to change in an emulated drive.
            0x02 | 0x82 | 0x55 | 0xAA | 0x66 | 0xCC => true,
            _ => false,
        };
        if ok {
            self.complete(true);
        } else {
            self.fail(ER_ABRT);
        }
    }

    fn read_native_max(&mut self, ext: bool) {
        let max = self.total_sectors().saturating_sub(1);
        let tf = &mut self.s.tf;
        if ext {
            tf.hob_lba_low = (max >> 24) as u8;
            tf.hob_lba_mid = (max >> 32) as u8;
            tf.hob_lba_high = (max >> 40) as u8;
        } else {
            let max = max.min(LBA28_LIMIT);
            tf.device = (tf.device & 0xF0) | ((max >> 24) as u8 & 0x0F);
        }
        tf.lba_low = max as u8;
        tf.lba_mid = (max >> 8) as u8;
        tf.lba_high = (max >> 16) as u8;
        self.complete(true);
    }

    pub(super) fn ata_command(&mut self, cmd: u8) {
        match cmd {
            CMD_IDENTIFY_DEVICE => {
                let data = self.identify_device();
                self.send_buffer(data);
            }
            0x20 | 0x21 => self.start_read(PIO),
            0x24 => self.start_read(PIO_EXT),
            0xC4 => self.start_read(MULT),
            0x29 => self.start_read(MULT_EXT),
            0xC8 | 0xC9 => self.start_read(DMA),
            0x25 => self.start_read(DMA_EXT),
            0x30 | 0x31 => self.start_write(PIO),
            0x34 => self.start_write(PIO_EXT),
            0xC5 => self.start_write(MULT),
            0x39 => self.start_write(MULT_EXT),
            0xCA | 0xCB => self.start_write(DMA),
            0x35 => self.start_write(DMA_EXT),
            // READ VERIFY SECTORS (EXT): check the range, move no data.
            0x40 | 0x41 => {
                if self.range(false).is_some() {
                    self.complete(true);
                }
            }
            0x42 => {
                if self.range(true).is_some() {
                    self.complete(true);
                }
            }
            0xE7 | 0xEA => self.flush(),
            0xEF => self.set_features(),
            // SET MULTIPLE MODE (ATA-6 8.39): a power of two up to word 47's
            // maximum; 0 turns multiple mode off.
            0xC6 => {
                let n = self.s.tf.count;
                if n <= MAX_MULTIPLE && (n == 0 || n.is_power_of_two()) {
                    self.s.multiple = n;
                    self.complete(true);
                } else {
                    self.fail(ER_ABRT);
                }
            }
            // INITIALIZE DEVICE PARAMETERS (ATA-4 8.16): CHS translation.
            0x91 => {
                let spt = self.s.tf.count;
                let heads = (self.s.tf.device & 0x0F) + 1;
                if spt == 0 {
                    self.fail(ER_ABRT);
                } else {
                    self.s.spt = spt;
                    self.s.heads = heads;
                    self.complete(true);
                }
            }
            // RECALIBRATE and SEEK: no heads to move.
            0x10..=0x1F => self.complete(true),
            0x70..=0x7F => {
                if self.address28().is_some() {
                    self.complete(true);
                } else {
                    self.fail(ER_IDNF);
                }
            }
            0xF8 => self.read_native_max(false),
            0x27 => self.read_native_max(true),
            // CHECK POWER MODE: FFh = active or idle.
            0xE5 | 0x98 => {
                self.complete(true);
                self.s.tf.count = 0xFF;
            }
            // STANDBY/IDLE (IMMEDIATE), SLEEP: accepted, the drive stays
            // ready (it spins up instantly on the next command anyway).
            0xE0..=0xE3 | 0x94..=0x97 | 0xE6 | 0x99 => self.complete(true),
            _ => {
                tracing::debug!("ide: unsupported ATA command {cmd:#04x}");
                self.fail(ER_ABRT);
            }
        }
    }

    /// Start a PIO data-in of a prepared buffer (one DRQ block).
    pub(super) fn send_buffer(&mut self, data: Vec<u8>) {
        self.s.end = data.len();
        self.s.buf = data;
        self.s.pos = 0;
        self.s.xfer = Xfer::BufferIn;
        self.s.tf.status = ST_DRDY | ST_DSC | ST_DRQ;
        self.s.intrq = true;
    }
}
