//! The IDE controller: two ATA channels (the legacy ISA-compatible ports
//! the PIIX3 IDE function decodes), each with a master and a slave slot
//! holding nothing, an ATA hard disk or an ATAPI CD-ROM.
//!
//! References: ATA/ATAPI-6 (T13/1410D rev 3b): section 7 (register
//! descriptions), section 8 (commands), section 9 (protocols: 9.5 PIO
//! data-in, 9.6 PIO data-out, 9.7 DMA, 9.8 PACKET, 9.2 software reset and
//! 9.12 signatures), 6.2.7 (device 0 answering for an absent device 1).
//! SFF-8020i / MMC-2 for the packet commands (see `atapi.rs`).
//!
//! Model:
//! - Each drive holds its own task file (ATA-6 7.1: the command block
//!   registers are written to both devices; reads come from the selected
//!   one), so a master disk and a slave CD-ROM show their own signatures.
//! - Commands complete synchronously: BSY is never observed between a
//!   command write and the next access (a drive that is infinitely fast).
//!   FLUSH CACHE calls [`BlockBackend::flush`] before its status is posted.
//! - INTRQ is a per-drive "interrupt pending" bit; the channel's IRQ line
//!   is the selected drive's bit gated by nIEN (ATA-6 7.9.6/5.2.9), driven
//!   as a level after every access. Reading Status clears it, reading
//!   Alternate Status does not (ATA-6 7.15, 7.2).
//! - An absent device 1 behind a present device 0 reads Status and
//!   Alternate Status as 00h and the other registers from device 0
//!   (ATA-6 6.2.7 / 9.16). A channel with no device at all floats: the
//!   host's pull-down on DD7 (ATA-6 5.2.13) makes every register read 7Fh
//!   (BSY clear, so probing drivers don't wait; the read-back of the
//!   sector count/LBA registers fails, so they find no device).
//! - Byte accesses to the data port move one word (the low byte is
//!   returned); dword accesses move two words (PIIX 32-bit data port).
//! - DMA commands (READ/WRITE DMA (EXT)) leave the drive with DRQ set and
//!   the data pending; a bus-master engine moves it with
//!   [`IdeController::dma_pending`], [`IdeController::dma_read`] and
//!   [`IdeController::dma_write`]. The drive posts its completion
//!   interrupt when the last byte has moved.

mod ata;
mod atapi;
#[cfg(test)]
mod tests;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::block::BlockBackend;
use crate::{AccessSize, DevCtx, PortIo};

/// Primary channel: command block base, control block (alternate status /
/// device control) port, IRQ.
pub const PRIMARY_CMD: u16 = 0x1F0;
pub const PRIMARY_CTRL: u16 = 0x3F6;
pub const PRIMARY_IRQ: u8 = 14;
/// Secondary channel.
pub const SECONDARY_CMD: u16 = 0x170;
pub const SECONDARY_CTRL: u16 = 0x376;
pub const SECONDARY_IRQ: u8 = 15;
/// Ports decoded from a command block base.
pub const CMD_PORTS: u16 = 8;

/// Status register bits (ATA-6 7.15).
pub const ST_BSY: u8 = 0x80;
pub const ST_DRDY: u8 = 0x40;
pub const ST_DF: u8 = 0x20;
pub const ST_DSC: u8 = 0x10;
pub const ST_DRQ: u8 = 0x08;
pub const ST_ERR: u8 = 0x01;

/// Error register bits (ATA-6 7.11).
pub const ER_AMNF: u8 = 0x01;
pub const ER_ABRT: u8 = 0x04;
pub const ER_IDNF: u8 = 0x10;
pub const ER_UNC: u8 = 0x40;

/// Device control register bits (ATA-6 7.9).
pub const DC_NIEN: u8 = 0x02;
pub const DC_SRST: u8 = 0x04;
pub const DC_HOB: u8 = 0x80;

/// Device register bits (ATA-6 7.10).
pub const DEV_LBA: u8 = 0x40;
pub const DEV_DEV: u8 = 0x10;
/// Bits 7 and 5 are obsolete and read back as one on the drives of the era.
const DEV_OBSOLETE: u8 = 0xA0;

/// What a channel with no device reads (DD7 pulled down, the rest floating).
const FLOATING: u8 = 0x7F;

/// One of the two channels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum IdeChannel {
    Primary,
    Secondary,
}

impl IdeChannel {
    fn index(self) -> usize {
        self as usize
    }

    /// The ISA interrupt line of the channel in compatibility mode.
    pub fn irq(self) -> u8 {
        match self {
            IdeChannel::Primary => PRIMARY_IRQ,
            IdeChannel::Secondary => SECONDARY_IRQ,
        }
    }
}

/// Master (device 0) or slave (device 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum DrivePosition {
    Master,
    Slave,
}

/// A drive to attach.
pub enum IdeDevice {
    /// An ATA hard disk on 512-byte sectors.
    Disk(Box<dyn BlockBackend>),
    /// An ATAPI CD-ROM on 2048-byte sectors, with or without a disc.
    Cdrom(Option<Box<dyn BlockBackend>>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum DriveKind {
    Disk,
    Cdrom,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum IdeError {
    #[error("no drive at {0:?} {1:?}")]
    NoDrive(IdeChannel, DrivePosition),
    #[error("the drive at {0:?} {1:?} has no removable media")]
    NotRemovable(IdeChannel, DrivePosition),
    #[error("the snapshot's drives differ from the attached ones")]
    LayoutMismatch,
}

/// Direction of a pending DMA transfer, seen from guest memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DmaDirection {
    /// Device to memory (READ DMA).
    ToMemory,
    /// Memory to device (WRITE DMA).
    FromMemory,
}

/// The task file of one device (ATA-6 7.1), with the previous contents of
/// the 48-bit registers ("HOB", read with device control bit 7 set).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskFile {
    pub feature: u8,
    pub hob_feature: u8,
    pub count: u8,
    pub hob_count: u8,
    pub lba_low: u8,
    pub hob_lba_low: u8,
    pub lba_mid: u8,
    pub hob_lba_mid: u8,
    pub lba_high: u8,
    pub hob_lba_high: u8,
    pub device: u8,
    pub status: u8,
    pub error: u8,
}

/// What the data port is doing for a drive.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Xfer {
    #[default]
    Idle,
    /// ATA data-in: `buf[pos..end]` is the current block; `left` sectors
    /// from `lba` are not loaded yet; blocks are `block` sectors.
    AtaIn { lba: u64, left: u32, block: u32, dma: bool },
    /// ATA data-out: `buf` collects the block for `lba`; `left` counts the
    /// sectors still to be written, this block included.
    AtaOut { lba: u64, left: u32, block: u32, dma: bool },
    /// A prepared buffer to the host (IDENTIFY): done when drained.
    BufferIn,
    /// Receiving the 12-byte ATAPI command packet.
    Packet,
    /// ATAPI data-in: `buf[pos..end]` is the current DRQ block, `buf[end..]`
    /// data already loaded; `left` 2048-byte sectors from `lba` still to
    /// load; `remain` bytes to send after this block; `limit` the host's
    /// byte count limit.
    AtapiIn { lba: u32, left: u32, remain: u32, limit: u16 },
}

/// Snapshot state of one drive (the backend is not part of it).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DriveState {
    pub kind: DriveKind,
    pub tf: TaskFile,
    /// Interrupt pending (INTRQ before the nIEN gate).
    pub intrq: bool,
    pub(crate) xfer: Xfer,
    pub(crate) buf: Vec<u8>,
    pub(crate) pos: usize,
    pub(crate) end: usize,
    /// Sectors per block of READ/WRITE MULTIPLE (0: multiple mode off).
    pub multiple: u8,
    /// CHS translation set by INITIALIZE DEVICE PARAMETERS.
    pub heads: u8,
    pub spt: u8,
    /// SET FEATURES transfer mode (ATA-6 8.37.10 encoding).
    pub xfer_mode: u8,
    /// Drive number 0-3 (channel * 2 + position): serial number, word 93.
    pub unit: u8,
    /// ATAPI: sense key, additional sense code and qualifier.
    pub sense: [u8; 3],
    /// ATAPI: a media change the host has not been told about.
    pub unit_attention: bool,
    /// ATAPI: PREVENT ALLOW MEDIUM REMOVAL state.
    pub locked: bool,
    /// ATAPI: tray opened by START STOP UNIT.
    pub tray_open: bool,
}

impl DriveState {
    fn new(kind: DriveKind, unit: u8) -> DriveState {
        let mut s = DriveState {
            kind,
            tf: TaskFile::default(),
            intrq: false,
            xfer: Xfer::Idle,
            buf: Vec::new(),
            pos: 0,
            end: 0,
            multiple: 0,
            heads: ata::DEFAULT_HEADS,
            spt: ata::DEFAULT_SPT,
            xfer_mode: 0,
            unit,
            sense: [0; 3],
            unit_attention: false,
            locked: false,
            tray_open: false,
        };
        s.set_signature();
        s.tf.status = match kind {
            DriveKind::Disk => ST_DRDY | ST_DSC,
            DriveKind::Cdrom => 0,
        };
        s
    }

    /// ATA-6 9.12: the signature a device leaves after reset and
    /// EXECUTE DEVICE DIAGNOSTIC; error 01h = "device passed".
    fn set_signature(&mut self) {
        self.tf.count = 1;
        self.tf.lba_low = 1;
        let (mid, high) = match self.kind {
            DriveKind::Disk => (0x00, 0x00),
            DriveKind::Cdrom => (0x14, 0xEB),
        };
        self.tf.lba_mid = mid;
        self.tf.lba_high = high;
        self.tf.device = DEV_OBSOLETE;
        self.tf.error = 0x01;
    }

    fn is_data_in(&self) -> bool {
        self.tf.status & ST_DRQ != 0
            && matches!(self.xfer, Xfer::AtaIn { dma: false, .. } | Xfer::BufferIn | Xfer::AtapiIn { .. })
    }

    fn is_data_out(&self) -> bool {
        self.tf.status & ST_DRQ != 0 && matches!(self.xfer, Xfer::AtaOut { dma: false, .. } | Xfer::Packet)
    }

    /// Make restored state consistent (a snapshot is guest-influenced data).
    fn sanitize(&mut self) {
        self.end = self.end.min(self.buf.len());
        self.pos = self.pos.min(self.end);
        if self.heads == 0 || self.heads > 16 || self.spt == 0 {
            self.heads = ata::DEFAULT_HEADS;
            self.spt = ata::DEFAULT_SPT;
        }
    }
}

pub(crate) struct Drive {
    backend: Option<Box<dyn BlockBackend>>,
    s: DriveState,
}

impl Drive {
    /// Move one word from the drive to the host (ATA-6 9.5 / 9.8).
    fn read_word(&mut self) -> u16 {
        if !self.s.is_data_in() {
            return 0;
        }
        let lo = self.s.buf.get(self.s.pos).copied().unwrap_or(0);
        let hi = if self.s.pos + 1 < self.s.end { self.s.buf.get(self.s.pos + 1).copied().unwrap_or(0) } else { 0 };
        self.s.pos = (self.s.pos + 2).min(self.s.end);
        if self.s.pos >= self.s.end {
            self.block_drained();
        }
        u16::from_le_bytes([lo, hi])
    }

    /// Move one word from the host to the drive.
    fn write_word(&mut self, w: u16) {
        if !self.s.is_data_out() {
            return;
        }
        for b in w.to_le_bytes() {
            if let Some(slot) = self.s.buf.get_mut(self.s.pos) {
                *slot = b;
                self.s.pos += 1;
            }
        }
        if self.s.pos >= self.s.end {
            self.block_filled();
        }
    }

    fn block_drained(&mut self) {
        match self.s.xfer {
            Xfer::AtaIn { .. } => self.ata_in_next(),
            Xfer::AtapiIn { .. } => self.atapi_in_next(),
            _ => self.complete(false),
        }
    }

    fn block_filled(&mut self) {
        match self.s.xfer {
            Xfer::AtaOut { .. } => self.ata_out_commit(),
            Xfer::Packet => self.run_packet(),
            _ => self.complete(false),
        }
    }

    /// End a command successfully: ready, no data, optional interrupt.
    fn complete(&mut self, irq: bool) {
        self.s.xfer = Xfer::Idle;
        self.s.buf.clear();
        self.s.pos = 0;
        self.s.end = 0;
        self.s.tf.status = ST_DRDY | ST_DSC;
        self.s.tf.error = 0;
        if irq {
            self.s.intrq = true;
        }
    }

    /// End a command with an error (ATA-6 7.11 error bits), interrupting.
    fn fail(&mut self, error: u8) {
        self.complete(true);
        self.s.tf.status = ST_DRDY | ST_ERR;
        self.s.tf.error = error;
    }

    /// SRST asserted or DEVICE RESET: stop whatever was going on.
    fn reset_begin(&mut self) {
        self.s.xfer = Xfer::Idle;
        self.s.buf.clear();
        self.s.pos = 0;
        self.s.end = 0;
        self.s.intrq = false;
        self.s.tf.status = ST_BSY;
    }

    /// Reset done: signature in the task file (ATA-6 9.2, 9.12). Packet
    /// devices leave DRDY clear (ATA-6 9.12: status 00h).
    fn reset_end(&mut self) {
        self.reset_begin();
        self.s.set_signature();
        self.s.tf.status = match self.s.kind {
            DriveKind::Disk => ST_DRDY | ST_DSC,
            DriveKind::Cdrom => 0,
        };
    }

    fn command(&mut self, cmd: u8) {
        self.s.tf.error = 0;
        match self.s.kind {
            DriveKind::Disk => self.ata_command(cmd),
            DriveKind::Cdrom => self.atapi_ata_command(cmd),
        }
    }
}

struct Channel {
    drives: [Option<Drive>; 2],
    devctl: u8,
    sel: usize,
}

/// Snapshot state of one channel.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelState {
    pub devctl: u8,
    pub selected: u8,
    pub drives: [Option<DriveState>; 2],
}

/// Snapshot state of the controller.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdeState {
    pub channels: [ChannelState; 2],
}

impl Channel {
    fn empty() -> Channel {
        Channel { drives: [None, None], devctl: 0, sel: 0 }
    }

    fn no_devices(&self) -> bool {
        self.drives.iter().all(Option::is_none)
    }

    /// The device answering register reads other than Status: the selected
    /// one, or device 0 on behalf of an absent device 1 (ATA-6 6.2.7).
    fn responder(&self) -> Option<&Drive> {
        self.drives[self.sel].as_ref().or(self.drives[0].as_ref())
    }

    fn read_data(&mut self, size: AccessSize) -> u32 {
        if self.no_devices() {
            return size.all_ones() & 0xFF7F_FF7F;
        }
        let Some(d) = self.drives[self.sel].as_mut() else { return 0 };
        match size {
            AccessSize::Byte => u32::from(d.read_word() & 0xFF),
            AccessSize::Word => u32::from(d.read_word()),
            AccessSize::Dword => {
                let lo = d.read_word();
                let hi = d.read_word();
                u32::from(lo) | u32::from(hi) << 16
            }
        }
    }

    fn write_data(&mut self, size: AccessSize, value: u32) {
        let Some(d) = self.drives[self.sel].as_mut() else { return };
        d.write_word(value as u16);
        if size == AccessSize::Dword {
            d.write_word((value >> 16) as u16);
        }
    }

    /// Read command block register `reg` (1-7).
    fn read_reg(&mut self, reg: u16) -> u8 {
        if self.no_devices() {
            return FLOATING;
        }
        if reg == 7 {
            // ATA-6 7.15: reading Status clears the pending interrupt.
            return match self.drives[self.sel].as_mut() {
                Some(d) => {
                    d.s.intrq = false;
                    d.s.tf.status
                }
                None => 0,
            };
        }
        let hob = self.devctl & DC_HOB != 0;
        let Some(d) = self.responder() else { return 0 };
        let tf = &d.s.tf;
        match (reg, hob) {
            (1, false) => tf.error,
            (1, true) => tf.hob_feature,
            (2, false) => tf.count,
            (2, true) => tf.hob_count,
            (3, false) => tf.lba_low,
            (3, true) => tf.hob_lba_low,
            (4, false) => tf.lba_mid,
            (4, true) => tf.hob_lba_mid,
            (5, false) => tf.lba_high,
            (5, true) => tf.hob_lba_high,
            _ => tf.device,
        }
    }

    /// Write command block register `reg` (1-7).
    fn write_reg(&mut self, reg: u16, v: u8) {
        // ATA-6 7.9: a write to any command block register clears HOB.
        self.devctl &= !DC_HOB;
        if reg == 7 {
            self.command(v);
            return;
        }
        if reg == 6 {
            self.sel = usize::from(v & DEV_DEV != 0);
        }
        for d in self.drives.iter_mut().flatten() {
            // Registers are latched by both devices; a busy one ignores them.
            if d.s.tf.status & ST_BSY != 0 {
                continue;
            }
            let tf = &mut d.s.tf;
            match reg {
                1 => {
                    tf.hob_feature = tf.feature;
                    tf.feature = v;
                }
                2 => {
                    tf.hob_count = tf.count;
                    tf.count = v;
                }
                3 => {
                    tf.hob_lba_low = tf.lba_low;
                    tf.lba_low = v;
                }
                4 => {
                    tf.hob_lba_mid = tf.lba_mid;
                    tf.lba_mid = v;
                }
                5 => {
                    tf.hob_lba_high = tf.lba_high;
                    tf.lba_high = v;
                }
                _ => tf.device = v | DEV_OBSOLETE,
            }
        }
    }

    fn command(&mut self, cmd: u8) {
        if cmd == ata::CMD_EXECUTE_DEVICE_DIAGNOSTIC {
            // ATA-6 8.11: both devices run it whichever is selected; device
            // 0 posts the result and the interrupt, and device 0 ends up
            // selected by the signature's device register of 00h.
            if self.drives[self.sel].is_none() {
                return;
            }
            for d in self.drives.iter_mut().flatten() {
                d.reset_end();
            }
            self.sel = 0;
            if let Some(d) = self.drives[0].as_mut() {
                d.s.intrq = true;
            } else if let Some(d) = self.drives[1].as_mut() {
                d.s.intrq = true;
            }
            return;
        }
        if let Some(d) = self.drives[self.sel].as_mut() {
            if d.s.tf.status & ST_BSY == 0 {
                d.command(cmd);
            }
        }
    }

    fn read_alt_status(&self) -> u8 {
        if self.no_devices() {
            return FLOATING;
        }
        self.drives[self.sel].as_ref().map_or(0, |d| d.s.tf.status)
    }

    fn write_devctl(&mut self, v: u8) {
        let old = self.devctl;
        self.devctl = v;
        // ATA-6 9.2: SRST set puts both devices in reset; its clearing ends
        // the reset, with device 0 selected.
        if v & DC_SRST != 0 && old & DC_SRST == 0 {
            for d in self.drives.iter_mut().flatten() {
                d.reset_begin();
            }
        } else if v & DC_SRST == 0 && old & DC_SRST != 0 {
            for d in self.drives.iter_mut().flatten() {
                d.reset_end();
            }
            self.sel = 0;
        }
    }

    fn irq_level(&self) -> bool {
        self.devctl & DC_NIEN == 0 && self.drives[self.sel].as_ref().is_some_and(|d| d.s.intrq)
    }
}

/// The two-channel IDE controller.
pub struct IdeController {
    channels: [Channel; 2],
}

impl Default for IdeController {
    fn default() -> Self {
        Self::new()
    }
}

impl IdeController {
    /// A controller with all four slots empty.
    pub fn new() -> IdeController {
        IdeController { channels: [Channel::empty(), Channel::empty()] }
    }

    /// Put `device` in a slot, replacing whatever was there (machine
    /// construction; the drive starts in its power-on state).
    pub fn attach(&mut self, ch: IdeChannel, pos: DrivePosition, device: IdeDevice) {
        let unit = (ch.index() * 2 + pos as usize) as u8;
        let (kind, backend) = match device {
            IdeDevice::Disk(b) => (DriveKind::Disk, Some(b)),
            IdeDevice::Cdrom(b) => (DriveKind::Cdrom, b),
        };
        self.channels[ch.index()].drives[pos as usize] = Some(Drive { backend, s: DriveState::new(kind, unit) });
    }

    /// Remove the drive in a slot, returning its backend.
    pub fn detach(&mut self, ch: IdeChannel, pos: DrivePosition) -> Option<Box<dyn BlockBackend>> {
        self.channels[ch.index()].drives[pos as usize].take().and_then(|d| d.backend)
    }

    /// Change the disc of a CD-ROM (None: eject). Returns the old disc. A
    /// new disc raises UNIT ATTENTION for the next packet command.
    pub fn change_media(
        &mut self,
        ch: IdeChannel,
        pos: DrivePosition,
        media: Option<Box<dyn BlockBackend>>,
    ) -> Result<Option<Box<dyn BlockBackend>>, IdeError> {
        let d = self.channels[ch.index()].drives[pos as usize].as_mut().ok_or(IdeError::NoDrive(ch, pos))?;
        if d.s.kind != DriveKind::Cdrom {
            return Err(IdeError::NotRemovable(ch, pos));
        }
        let inserted = media.is_some();
        let old = std::mem::replace(&mut d.backend, media);
        d.s.tf_changed_media(inserted);
        Ok(old)
    }

    /// What is in a slot (None: empty).
    pub fn drive_kind(&self, ch: IdeChannel, pos: DrivePosition) -> Option<DriveKind> {
        self.channels[ch.index()].drives[pos as usize].as_ref().map(|d| d.s.kind)
    }

    /// The storage behind a drive, for firmware that reads and writes
    /// sectors without going through the task file (the own BIOS's INT
    /// 13h). None for an empty slot or a CD-ROM without a disc. The drive's
    /// register state is not touched.
    pub fn backend_mut(&mut self, ch: IdeChannel, pos: DrivePosition) -> Option<&mut (dyn BlockBackend + 'static)> {
        self.channels[ch.index()].drives[pos as usize].as_mut().and_then(|d| d.backend.as_deref_mut())
    }

    /// Flush every backend (host shutdown).
    pub fn flush_all(&mut self) -> Result<(), crate::block::BlockError> {
        for d in self.channels.iter_mut().flat_map(|c| c.drives.iter_mut().flatten()) {
            if let Some(b) = d.backend.as_mut() {
                b.flush()?;
            }
        }
        Ok(())
    }

    /// Read command block register `reg` (0 = data .. 7 = status) of a
    /// channel. The board calls this for `base + reg` (also usable when a
    /// PCI IDE function moves the channel to native-mode ports).
    pub fn read_cmd(&mut self, ch: IdeChannel, reg: u16, size: AccessSize, cx: &mut DevCtx) -> u32 {
        let c = &mut self.channels[ch.index()];
        let v = match reg & 7 {
            0 => c.read_data(size),
            r => u32::from(c.read_reg(r)),
        };
        self.update_irq(ch, cx);
        v
    }

    pub fn write_cmd(&mut self, ch: IdeChannel, reg: u16, size: AccessSize, value: u32, cx: &mut DevCtx) {
        let c = &mut self.channels[ch.index()];
        match reg & 7 {
            0 => c.write_data(size, value),
            r => c.write_reg(r, value as u8),
        }
        self.update_irq(ch, cx);
    }

    /// Read the control block port (alternate status).
    pub fn read_ctrl(&mut self, ch: IdeChannel, cx: &mut DevCtx) -> u32 {
        let v = self.channels[ch.index()].read_alt_status();
        self.update_irq(ch, cx);
        u32::from(v)
    }

    /// Write the control block port (device control).
    pub fn write_ctrl(&mut self, ch: IdeChannel, value: u32, cx: &mut DevCtx) {
        self.channels[ch.index()].write_devctl(value as u8);
        self.update_irq(ch, cx);
    }

    /// Level of a channel's INTRQ (after nIEN), for a bus master's
    /// interrupt status bit.
    pub fn irq_level(&self, ch: IdeChannel) -> bool {
        self.channels[ch.index()].irq_level()
    }

    fn update_irq(&self, ch: IdeChannel, cx: &mut DevCtx) {
        cx.irq.set(ch.irq(), self.irq_level(ch));
    }

    /// The direction of the DMA transfer the selected drive of `ch` waits
    /// for, if any.
    pub fn dma_pending(&self, ch: IdeChannel) -> Option<DmaDirection> {
        let c = &self.channels[ch.index()];
        let d = c.drives[c.sel].as_ref()?;
        if d.s.tf.status & ST_DRQ == 0 {
            return None;
        }
        match d.s.xfer {
            Xfer::AtaIn { dma: true, .. } => Some(DmaDirection::ToMemory),
            Xfer::AtaOut { dma: true, .. } => Some(DmaDirection::FromMemory),
            _ => None,
        }
    }

    /// Device-to-memory DMA: fill `buf` with the next bytes of the pending
    /// READ DMA. Returns the number of bytes moved (less than `buf.len()`
    /// when the command ends, successfully or with an error).
    pub fn dma_read(&mut self, ch: IdeChannel, buf: &mut [u8], cx: &mut DevCtx) -> usize {
        let mut done = 0;
        while done < buf.len() && self.dma_pending(ch) == Some(DmaDirection::ToMemory) {
            let c = &mut self.channels[ch.index()];
            let Some(d) = c.drives[c.sel].as_mut() else { break };
            let n = (d.s.end - d.s.pos).min(buf.len() - done);
            buf[done..done + n].copy_from_slice(&d.s.buf[d.s.pos..d.s.pos + n]);
            d.s.pos += n;
            done += n;
            if d.s.pos >= d.s.end {
                d.ata_in_next();
            }
        }
        self.update_irq(ch, cx);
        done
    }

    /// Memory-to-device DMA: give the pending WRITE DMA its next bytes.
    /// Returns the number of bytes taken.
    pub fn dma_write(&mut self, ch: IdeChannel, buf: &[u8], cx: &mut DevCtx) -> usize {
        let mut done = 0;
        while done < buf.len() && self.dma_pending(ch) == Some(DmaDirection::FromMemory) {
            let c = &mut self.channels[ch.index()];
            let Some(d) = c.drives[c.sel].as_mut() else { break };
            let n = (d.s.end - d.s.pos).min(buf.len() - done);
            d.s.buf[d.s.pos..d.s.pos + n].copy_from_slice(&buf[done..done + n]);
            d.s.pos += n;
            done += n;
            if d.s.pos >= d.s.end {
                d.ata_out_commit();
            }
        }
        self.update_irq(ch, cx);
        done
    }

    pub fn state(&self) -> IdeState {
        let ch = |c: &Channel| ChannelState {
            devctl: c.devctl,
            selected: c.sel as u8,
            drives: [c.drives[0].as_ref().map(|d| d.s.clone()), c.drives[1].as_ref().map(|d| d.s.clone())],
        };
        IdeState { channels: [ch(&self.channels[0]), ch(&self.channels[1])] }
    }

    /// Load register state into a controller built with the same drives.
    pub fn restore(&mut self, state: &IdeState) -> Result<(), IdeError> {
        for (c, cs) in self.channels.iter().zip(&state.channels) {
            for (d, ds) in c.drives.iter().zip(&cs.drives) {
                if d.as_ref().map(|d| d.s.kind) != ds.as_ref().map(|s| s.kind) {
                    return Err(IdeError::LayoutMismatch);
                }
            }
        }
        for (c, cs) in self.channels.iter_mut().zip(&state.channels) {
            c.devctl = cs.devctl;
            c.sel = usize::from(cs.selected & 1);
            for (d, ds) in c.drives.iter_mut().zip(&cs.drives) {
                if let (Some(d), Some(ds)) = (d.as_mut(), ds.as_ref()) {
                    d.s = ds.clone();
                    d.s.sanitize();
                }
            }
        }
        Ok(())
    }
}

impl PortIo for IdeController {
    fn io_read(&mut self, port: u16, size: AccessSize, cx: &mut DevCtx) -> u32 {
        match port {
            PRIMARY_CMD..=0x1F7 => self.read_cmd(IdeChannel::Primary, port - PRIMARY_CMD, size, cx),
            SECONDARY_CMD..=0x177 => self.read_cmd(IdeChannel::Secondary, port - SECONDARY_CMD, size, cx),
            PRIMARY_CTRL => self.read_ctrl(IdeChannel::Primary, cx),
            SECONDARY_CTRL => self.read_ctrl(IdeChannel::Secondary, cx),
            _ => size.all_ones(),
        }
    }

    fn io_write(&mut self, port: u16, size: AccessSize, value: u32, cx: &mut DevCtx) {
        match port {
            PRIMARY_CMD..=0x1F7 => self.write_cmd(IdeChannel::Primary, port - PRIMARY_CMD, size, value, cx),
            SECONDARY_CMD..=0x177 => self.write_cmd(IdeChannel::Secondary, port - SECONDARY_CMD, size, value, cx),
            PRIMARY_CTRL => self.write_ctrl(IdeChannel::Primary, value, cx),
            SECONDARY_CTRL => self.write_ctrl(IdeChannel::Secondary, value, cx),
            _ => {}
        }
    }
}
