//! The ATAPI CD-ROM: the ATA commands a packet device accepts (ATA-6
//! 8.13 DEVICE RESET, 8.16 IDENTIFY PACKET DEVICE, 8.24 PACKET), the
//! PACKET protocol (ATA-6 9.8: interrupt reason in the sector count
//! register, byte count in LBA mid/high, one DRQ block per byte-count
//! chunk) and the packet commands of SFF-8020i / MMC-2 that BIOSes and the
//! Linux and DOS CD drivers use.
//!
//! Only PIO is offered: IDENTIFY PACKET DEVICE reports no DMA modes, and a
//! PACKET with the DMA feature bit aborts.

use super::ata::{self, CMD_DEVICE_RESET, CMD_IDENTIFY_DEVICE, CMD_READ_SECTORS};
use super::{Drive, DriveState, Xfer, ER_ABRT, ST_DRDY, ST_DRQ, ST_DSC, ST_ERR};

pub(super) const CD_SECTOR: usize = 2048;

/// Interrupt reason bits (ATA-6 9.8, sector count register).
const IR_COD: u8 = 0x01;
const IR_IO: u8 = 0x02;

/// Sense keys (SPC/MMC).
const SK_NOT_READY: u8 = 0x02;
const SK_MEDIUM_ERROR: u8 = 0x03;
const SK_ILLEGAL_REQUEST: u8 = 0x05;
const SK_UNIT_ATTENTION: u8 = 0x06;

/// Additional sense codes.
const ASC_INVALID_OPCODE: u8 = 0x20;
const ASC_LBA_OUT_OF_RANGE: u8 = 0x21;
const ASC_INVALID_FIELD: u8 = 0x24;
const ASC_MEDIUM_CHANGED: u8 = 0x28;
const ASC_SAVING_NOT_SUPPORTED: u8 = 0x39;
const ASC_NO_MEDIUM: u8 = 0x3A;
const ASC_REMOVAL_PREVENTED: u8 = 0x53;
const ASC_UNRECOVERED_READ: u8 = 0x11;

impl DriveState {
    /// The host changed the disc: tell the guest with UNIT ATTENTION.
    pub(super) fn tf_changed_media(&mut self, inserted: bool) {
        self.tray_open = false;
        self.locked = false;
        if inserted {
            self.unit_attention = true;
        }
    }
}

fn be16(v: &[u8]) -> u32 {
    u32::from(v[0]) << 8 | u32::from(v[1])
}

fn be32(v: &[u8]) -> u32 {
    u32::from_be_bytes([v[0], v[1], v[2], v[3]])
}

/// LBA to MSF (the 2-second lead-in is 150 frames).
fn msf(lba: u32) -> [u8; 4] {
    let f = lba + 150;
    [0, (f / (75 * 60)) as u8, (f / 75 % 60) as u8, (f % 75) as u8]
}

impl Drive {
    fn has_media(&self) -> bool {
        self.backend.is_some() && !self.s.tray_open
    }

    /// ATA commands sent to the packet device.
    pub(super) fn atapi_ata_command(&mut self, cmd: u8) {
        match cmd {
            0xA0 => self.packet(),
            0xA1 => {
                let data = self.identify_packet();
                self.send_buffer(data);
            }
            CMD_DEVICE_RESET => {
                // ATA-6 8.13: no interrupt; the signature and status 00h.
                self.reset_end();
            }
            0xEF => {
                // SET FEATURES: only PIO modes are reachable here.
                let m = self.s.tf.count;
                if self.s.tf.feature == 0x03 && (m <= 1 || m & 0xF8 == 0x08) {
                    self.s.xfer_mode = m;
                    self.complete(true);
                } else if matches!(self.s.tf.feature, 0x02 | 0x82 | 0x55 | 0xAA | 0x66 | 0xCC) {
                    self.complete(true);
                } else {
                    self.fail(ER_ABRT);
                }
            }
            0xE5 | 0x98 => {
                self.complete(true);
                self.s.tf.count = 0xFF;
            }
            0xE0..=0xE3 | 0x94..=0x97 | 0xE6 | 0x99 | 0xE7 => self.complete(true),
            // ATA-6 9.12: a packet device aborts IDENTIFY DEVICE and READ
            // SECTORS with its signature in the task file, which is how
            // drivers tell it from a disk.
            CMD_IDENTIFY_DEVICE | CMD_READ_SECTORS => {
                self.fail(ER_ABRT);
                self.s.set_signature();
                self.s.tf.error = ER_ABRT;
            }
            _ => self.fail(ER_ABRT),
        }
    }

    /// IDENTIFY PACKET DEVICE data (ATA-6 8.16, table 17).
    fn identify_packet(&self) -> Vec<u8> {
        let mut id = [0u16; 256];
        // ATAPI, CD-ROM (05h), removable, accelerated DRQ, 12-byte packets.
        id[0] = 0x85C0;
        ata::put_strings(&mut id, self.s.unit, "FERRITE CD-ROM");
        id[49] = 0x0200; // LBA; no DMA
        id[53] = 0x0002; // words 64-70 valid
        id[64] = 0x0003;
        id[65] = 120;
        id[66] = 120;
        id[67] = 120;
        id[68] = 120;
        id[80] = 0x0070; // ATA/ATAPI-4 .. 6
        id[82] = 0x0210; // DEVICE RESET, PACKET
        id[83] = 0x4000;
        id[84] = 0x4000;
        id[85] = 0x0210;
        id[87] = 0x4000;
        id[93] = ata::word93(self.s.unit);
        ata::identify_packet_bytes(&mut id)
    }

    /// PACKET (ATA-6 9.8): wait for the 12-byte command with DRQ, CoD set
    /// and no interrupt (IDENTIFY word 0 advertises accelerated DRQ).
    fn packet(&mut self) {
        if self.s.tf.feature & 0x01 != 0 {
            self.fail(ER_ABRT);
            return;
        }
        self.s.buf = vec![0; 12];
        self.s.pos = 0;
        self.s.end = 12;
        self.s.xfer = Xfer::Packet;
        self.s.tf.count = IR_COD;
        self.s.tf.status = ST_DRDY | ST_DSC | ST_DRQ;
    }

    /// The command completed with GOOD status.
    fn atapi_ok(&mut self) {
        self.complete(true);
        self.s.tf.count = IR_IO | IR_COD;
        self.s.sense = [0; 3];
    }

    /// CHECK CONDITION: sense key in error bits 7-4 (ATA-6 8.24.5).
    fn check_condition(&mut self, key: u8, asc: u8, ascq: u8) {
        self.complete(true);
        self.s.tf.status = ST_DRDY | ST_ERR;
        self.s.tf.error = key << 4 | if key == SK_ILLEGAL_REQUEST { ER_ABRT } else { 0 };
        self.s.tf.count = IR_IO | IR_COD;
        self.s.sense = [key, asc, ascq];
    }

    fn not_ready(&mut self) {
        let ascq = if self.s.tray_open { 0x02 } else { 0x01 };
        self.check_condition(SK_NOT_READY, ASC_NO_MEDIUM, ascq);
    }

    fn invalid_field(&mut self) {
        self.check_condition(SK_ILLEGAL_REQUEST, ASC_INVALID_FIELD, 0);
    }

    /// Send `data` (cut to the allocation length) to the host.
    fn reply(&mut self, mut data: Vec<u8>, alloc: usize) {
        data.truncate(alloc);
        self.start_data_in(data, 0, 0);
    }

    /// Begin an ATAPI data-in of `data` followed by `left` sectors from `lba`.
    fn start_data_in(&mut self, data: Vec<u8>, lba: u32, left: u32) {
        let total = data.len() as u64 + u64::from(left) * CD_SECTOR as u64;
        let limit = u16::from(self.s.tf.lba_high) << 8 | u16::from(self.s.tf.lba_mid);
        self.s.buf = data;
        self.s.pos = 0;
        self.s.end = 0;
        self.s.sense = [0; 3];
        self.s.xfer = Xfer::AtapiIn { lba, left, remain: total.min(u64::from(u32::MAX)) as u32, limit };
        self.atapi_in_next();
    }

    /// Present the next DRQ block, or post completion (ATA-6 9.8: an
    /// interrupt before each block and at the end).
    pub(super) fn atapi_in_next(&mut self) {
        let Xfer::AtapiIn { mut lba, mut left, remain, limit } = self.s.xfer else { return };
        if remain == 0 {
            self.atapi_ok();
            return;
        }
        self.s.buf.drain(..self.s.pos.min(self.s.buf.len()));
        self.s.pos = 0;
        // The byte count limit: 0 is treated as the maximum; an odd limit
        // is rounded down unless it covers the rest (ATA-6 8.24.3).
        let limit = u32::from(if limit == 0 { 0xFFFE } else { limit });
        let size = if remain <= limit { remain } else { (limit & !1).max(2) };
        while self.s.buf.len() < size as usize && left > 0 {
            let mut sector = vec![0u8; CD_SECTOR];
            let r = match self.backend.as_mut() {
                Some(b) if !self.s.tray_open => b.read_at(u64::from(lba) * CD_SECTOR as u64, &mut sector),
                _ => {
                    self.not_ready();
                    return;
                }
            };
            if r.is_err() {
                self.check_condition(SK_MEDIUM_ERROR, ASC_UNRECOVERED_READ, 0);
                return;
            }
            self.s.buf.extend_from_slice(&sector);
            lba += 1;
            left -= 1;
        }
        let size = size.min(self.s.buf.len() as u32);
        self.s.end = size as usize;
        self.s.xfer = Xfer::AtapiIn { lba, left, remain: remain - size, limit: limit as u16 };
        self.s.tf.lba_mid = size as u8;
        self.s.tf.lba_high = (size >> 8) as u8;
        self.s.tf.count = IR_IO;
        self.s.tf.status = ST_DRDY | ST_DSC | ST_DRQ;
        self.s.intrq = true;
        if size == 0 {
            self.atapi_ok();
        }
    }

    /// The 12-byte packet arrived: run it.
    pub(super) fn run_packet(&mut self) {
        let mut p = [0u8; 12];
        match self.s.buf.get(..12) {
            Some(src) => p.copy_from_slice(src),
            // Only a doctored snapshot gets here.
            None => return self.fail(ER_ABRT),
        }
        let op = p[0];
        // Commands that report rather than clear a pending unit attention.
        let ua_exempt = matches!(op, 0x03 | 0x12 | 0x46 | 0x4A);
        if self.s.unit_attention && !ua_exempt {
            self.s.unit_attention = false;
            self.check_condition(SK_UNIT_ATTENTION, ASC_MEDIUM_CHANGED, 0);
            return;
        }
        let needs_media = matches!(op, 0x00 | 0x25 | 0x28 | 0xA8 | 0x43 | 0x2B);
        if needs_media && !self.has_media() {
            self.not_ready();
            return;
        }
        match op {
            0x00 => self.atapi_ok(), // TEST UNIT READY
            0x03 => {
                // REQUEST SENSE, fixed format (SPC 4.5.3); reading it clears it.
                let mut d = vec![0u8; 18];
                d[0] = 0x70;
                d[2] = self.s.sense[0];
                d[7] = 10;
                d[12] = self.s.sense[1];
                d[13] = self.s.sense[2];
                self.reply(d, usize::from(p[4]));
            }
            0x12 => {
                // INQUIRY (SPC 6.4): CD-ROM device, removable.
                if p[1] & 0x01 != 0 || p[2] != 0 {
                    self.invalid_field();
                    return;
                }
                let mut d = vec![0u8; 36];
                d[0] = 0x05;
                d[1] = 0x80;
                d[2] = 0x00;
                d[3] = 0x21; // ATAPI transport, response data format 1
                d[4] = 31;
                d[8..16].copy_from_slice(b"FERRITE ");
                d[16..32].copy_from_slice(b"CD-ROM          ");
                let mut rev = *b"    ";
                for (r, b) in rev.iter_mut().zip(env!("CARGO_PKG_VERSION").bytes()) {
                    *r = b;
                }
                d[32..36].copy_from_slice(&rev);
                self.reply(d, usize::from(p[4]));
            }
            0x25 => {
                // READ CAPACITY (MMC-2 6.1.17): last LBA, block length.
                let last = (self.total_sectors().saturating_sub(1)).min(u64::from(u32::MAX)) as u32;
                let mut d = last.to_be_bytes().to_vec();
                d.extend_from_slice(&(CD_SECTOR as u32).to_be_bytes());
                self.reply(d, 8);
            }
            0x28 => self.read(be32(&p[2..6]), be16(&p[7..9])),
            0xA8 => self.read(be32(&p[2..6]), be32(&p[6..10])),
            0x2B => self.atapi_ok(), // SEEK(10)
            0x1B => self.start_stop(p[4]),
            0x1E => {
                // PREVENT ALLOW MEDIUM REMOVAL.
                self.s.locked = p[4] & 0x01 != 0;
                self.atapi_ok();
            }
            0x5A => self.mode_sense(&p),
            0x43 => self.read_toc(&p),
            0x46 => self.get_configuration(&p),
            _ => {
                tracing::debug!("ide: unsupported packet command {op:#04x}");
                self.check_condition(SK_ILLEGAL_REQUEST, ASC_INVALID_OPCODE, 0);
            }
        }
    }

    fn read(&mut self, lba: u32, count: u32) {
        if u64::from(lba) + u64::from(count) > self.total_sectors() {
            self.check_condition(SK_ILLEGAL_REQUEST, ASC_LBA_OUT_OF_RANGE, 0);
            return;
        }
        self.start_data_in(Vec::new(), lba, count);
    }

    /// START STOP UNIT (MMC-2 6.1.29): LoEj with Start clear opens the
    /// tray (refused while locked), with Start set closes it.
    fn start_stop(&mut self, b4: u8) {
        let (start, loej) = (b4 & 0x01 != 0, b4 & 0x02 != 0);
        if loej {
            if !start && self.s.locked {
                self.check_condition(SK_ILLEGAL_REQUEST, ASC_REMOVAL_PREVENTED, 0x02);
                return;
            }
            let was_open = self.s.tray_open;
            self.s.tray_open = !start;
            if was_open && start && self.backend.is_some() {
                self.s.unit_attention = true;
            }
        }
        self.atapi_ok();
    }

    /// MODE SENSE(10) (SPC 6.7, MMC-2 5.5): error recovery (01h), CD
    /// parameters (0Dh), capabilities (2Ah), or all (3Fh).
    fn mode_sense(&mut self, p: &[u8; 12]) {
        let pc = p[2] >> 6;
        let page = p[2] & 0x3F;
        if pc == 3 {
            self.check_condition(SK_ILLEGAL_REQUEST, ASC_SAVING_NOT_SUPPORTED, 0);
            return;
        }
        let changeable = pc == 1;
        let page01 = || {
            let mut v = vec![0x01, 0x06, 0, 5, 0, 0, 0, 0];
            if changeable {
                v[2..].fill(0);
            }
            v
        };
        let page0d = || {
            let mut v = vec![0x0D, 0x06, 0, 0, 0, 60, 0, 75];
            if changeable {
                v[2..].fill(0);
            }
            v
        };
        let page2a = |locked: bool| {
            let mut v = vec![0u8; 20];
            v[0] = 0x2A;
            v[1] = 0x12;
            v[2] = 0x03; // reads CD-R/RW
            v[4] = 0x71; // audio play, mode 2 form 1/2, multi-session
            v[5] = 0x00;
            // Lock supported, lock state, eject, tray loading mechanism.
            v[6] = 0x29 | if locked { 0x02 } else { 0 };
            v[8..10].copy_from_slice(&706u16.to_be_bytes()); // 4x, kB/s
            v[10..12].copy_from_slice(&256u16.to_be_bytes());
            v[12..14].copy_from_slice(&512u16.to_be_bytes());
            v[14..16].copy_from_slice(&706u16.to_be_bytes());
            if changeable {
                v[2..].fill(0);
            }
            v
        };
        let body = match page {
            0x01 => page01(),
            0x0D => page0d(),
            0x2A => page2a(self.s.locked),
            0x3F => [page01(), page0d(), page2a(self.s.locked)].concat(),
            _ => {
                self.invalid_field();
                return;
            }
        };
        let mut d = vec![0u8; 8];
        let len = (body.len() + 6) as u16;
        d[0..2].copy_from_slice(&len.to_be_bytes());
        // Medium type: 01h = 120 mm data CD, 70h = no disc (MMC-2 5.5.2).
        d[2] = if self.has_media() { 0x01 } else { 0x70 };
        d.extend_from_slice(&body);
        self.reply(d, be16(&p[7..9]) as usize);
    }

    /// READ TOC (MMC-2 6.1.31): format 0 (one data track and the lead-out)
    /// and 1 (session info).
    fn read_toc(&mut self, p: &[u8; 12]) {
        let use_msf = p[1] & 0x02 != 0;
        // Format in byte 2 bits 3-0, or the SFF-8020i form in byte 9 bits 7-6.
        let format = if p[2] & 0x0F != 0 { p[2] & 0x0F } else { p[9] >> 6 };
        let alloc = be16(&p[7..9]) as usize;
        let addr = |lba: u32| if use_msf { msf(lba) } else { lba.to_be_bytes() };
        let leadout = self.total_sectors().min(u64::from(u32::MAX - 150)) as u32;
        let mut d = vec![0u8, 0, 1, 1];
        match format {
            0 => {
                let start = p[6];
                if start > 1 && start != 0xAA {
                    self.invalid_field();
                    return;
                }
                if start <= 1 {
                    d.extend_from_slice(&[0, 0x14, 1, 0]);
                    d.extend_from_slice(&addr(0));
                }
                d.extend_from_slice(&[0, 0x14, 0xAA, 0]);
                d.extend_from_slice(&addr(leadout));
            }
            1 => {
                d.extend_from_slice(&[0, 0x14, 1, 0]);
                d.extend_from_slice(&addr(0));
            }
            _ => {
                self.invalid_field();
                return;
            }
        }
        let len = (d.len() - 2) as u16;
        d[0..2].copy_from_slice(&len.to_be_bytes());
        self.reply(d, alloc);
    }

    /// GET CONFIGURATION (MMC-3 6.6): the header with the current profile
    /// (0008h CD-ROM) and the profile list feature.
    fn get_configuration(&mut self, p: &[u8; 12]) {
        let current: u16 = if self.has_media() { 0x0008 } else { 0 };
        let mut d = vec![0u8; 8];
        d[6..8].copy_from_slice(&current.to_be_bytes());
        let start = be16(&p[2..4]);
        if start == 0 {
            d.extend_from_slice(&[0x00, 0x00, 0x03, 0x04, 0x00, 0x08, u8::from(current != 0), 0]);
        }
        let len = (d.len() - 4) as u32;
        d[0..4].copy_from_slice(&len.to_be_bytes());
        self.reply(d, be16(&p[7..9]) as usize);
    }
}
