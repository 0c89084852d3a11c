//! The PC floppy disk controller: an Intel 82077AA in AT mode at ports
//! 0x3F0-0x3F5 and 0x3F7 (0x3F6 belongs to the IDE controller), IRQ 6 and
//! 8237 DMA channel 2, with up to two drives (A: and B:).
//!
//! References: Intel 82077AA datasheet (order 290166): section 2 "Register
//! Description" (DOR, TDR, MSR, DSR, FIFO, DIR, CCR), section 5 "Command Set
//! Descriptions" (Table 5-1 command bytes, Table 5-2 status registers ST0-ST3),
//! 5.2.1 "Read Data" (multi-track, end of track, Table 5-7 result C/H/R/N),
//! 5.3.x "Configure", "Lock", "Dumpreg", "Version"; 8.0 "Reset" (a reset with
//! polling enabled raises the interrupt and four SENSE INTERRUPT STATUS
//! commands return ST0 = 0xC0 | drive); OSDev wiki "Floppy Disk Controller".
//!
//! Model: commands complete instantly. A SEEK/RECALIBRATE raises IRQ 6 as
//! soon as its last command byte arrives; READ/WRITE DATA and FORMAT TRACK
//! enter the execution phase and wait for the board to move bytes through
//! [`Fdc::service_dma`] (or, in non-DMA mode, for the CPU to move them
//! through the FIFO). The controller never touches memory itself.
//!
//! Board wiring: claim ports 0x3F0-0x3F5 and 0x3F7 for [`PortIo`]; the
//! device drives IRQ 6 on every access and in [`Fdc::service_dma`] (the
//! level is the interrupt request gated by DOR bit 3). Whenever
//! [`Fdc::dma_request`] is Some (after any FDC port write, after DMA port
//! writes that may unmask channel 2, or once per run-loop slice) call
//! [`Fdc::service_dma`] with the [`Dma`], guest memory and bus; it moves
//! what the channel accepts and ends the command at terminal count. Call
//! [`Fdc::flush`] on shutdown.
//!
//! Not modelled: data-rate matching against the medium (any rate reads any
//! image), head load/step timing, READ TRACK, VERIFY, SCAN and the deleted
//! data commands (they answer as invalid commands), CRC errors, the FIFO
//! threshold, PS/2 mode status registers (SRA/SRB read 0xFF as in AT mode),
//! drives 2 and 3 (the drive-select field's bit 1 is ignored, so they alias
//! drives 0 and 1); DIR bits 6-0 read 0.

use ferrite_core::{Bus, GuestMemory};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::block::BlockBackend;
use crate::dma::{Dma, DmaData};
use crate::{AccessSize, DevCtx, PortIo};

/// The controller's base port (0x3F0-0x3F5 and base + 7).
pub const FDC_BASE: u16 = 0x3F0;
/// The digital input / configuration control register port.
pub const FDC_DIR_PORT: u16 = 0x3F7;
/// The ISA interrupt line.
pub const FDC_IRQ: u8 = 6;
/// The 8237 channel the controller's DRQ/DACK are wired to.
pub const FDC_DMA_CHANNEL: u8 = 2;
/// Drives the board can attach.
pub const DRIVES: usize = 2;

const SECTOR: usize = 512;

// DOR bits (datasheet 2.1.2).
const DOR_SEL: u8 = 0x03;
const DOR_NRESET: u8 = 0x04;
const DOR_DMAGATE: u8 = 0x08;

// MSR bits (datasheet 2.1.4).
const MSR_RQM: u8 = 0x80;
const MSR_DIO: u8 = 0x40;
const MSR_NDMA: u8 = 0x20;
const MSR_CB: u8 = 0x10;

// ST0 interrupt codes and flags (Table 5-2).
const ST0_ABNORMAL: u8 = 0x40;
const ST0_INVALID: u8 = 0x80;
const ST0_RESET: u8 = 0xC0;
const ST0_SE: u8 = 0x20;
const ST0_NR: u8 = 0x08;
// ST1.
const ST1_EN: u8 = 0x80;
const ST1_ND: u8 = 0x04;
const ST1_NW: u8 = 0x02;
const ST1_MA: u8 = 0x01;
// ST2.
const ST2_WC: u8 = 0x10;
// ST3.
const ST3_WP: u8 = 0x40;
const ST3_RDY: u8 = 0x20;
const ST3_T0: u8 = 0x10;
const ST3_TS: u8 = 0x08;

/// A medium the controller cannot describe.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum FdcError {
    #[error("drive {0} does not exist (the controller has drives 0 and 1)")]
    NoSuchDrive(usize),
    #[error("a {0}-byte image is not a known floppy format")]
    UnknownFormat(u64),
}

/// Floppy geometry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Geometry {
    pub cylinders: u8,
    pub heads: u8,
    pub sectors: u8,
}

impl Geometry {
    /// The standard PC format of an image of `size` bytes.
    pub fn from_size(size: u64) -> Option<Geometry> {
        let (cylinders, heads, sectors) = match size {
            163_840 => (40, 1, 8),
            184_320 => (40, 1, 9),
            327_680 => (40, 2, 8),
            368_640 => (40, 2, 9),
            737_280 => (80, 2, 9),
            1_228_800 => (80, 2, 15),
            1_474_560 => (80, 2, 18),
            1_720_320 => (80, 2, 21),
            2_949_120 => (80, 2, 36),
            _ => return None,
        };
        Some(Geometry { cylinders, heads, sectors })
    }
}

/// Which way a data command moves bytes through the DMA channel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// READ DATA: controller to memory (channel in write mode).
    ToMemory,
    /// WRITE DATA, FORMAT TRACK: memory to controller.
    FromMemory,
}

/// Per-drive state a snapshot carries (the medium itself is the backend).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DriveState {
    /// Present cylinder number.
    pub pcn: u8,
    /// Head of the last access.
    pub head: u8,
    /// The DIR disk-change line: set on media change, cleared by a step.
    pub media_changed: bool,
    /// Geometry of the inserted medium (None: empty).
    pub geometry: Option<Geometry>,
    pub write_protected: bool,
    /// A seek finished and its interrupt is not yet sensed (MSR busy bit).
    pub seek_pending: bool,
}

/// What the execution phase is doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum XferKind {
    Read,
    Write,
    Format,
}

/// An in-progress data command.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Xfer {
    pub kind: XferKind,
    pub drive: u8,
    pub c: u8,
    pub h: u8,
    pub r: u8,
    pub n: u8,
    pub eot: u8,
    pub mt: bool,
    /// FORMAT TRACK: sectors left and fill byte.
    pub format_left: u8,
    pub fill: u8,
}

/// Controller phase (datasheet 4.0 "Controller Phases").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Phase {
    Command,
    Execution,
    Result,
}

/// Everything a snapshot of the controller carries.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FdcState {
    pub dor: u8,
    pub tdr: u8,
    pub dsr: u8,
    pub phase: Phase,
    pub command: Vec<u8>,
    pub result: Vec<u8>,
    pub result_pos: usize,
    pub buf: Vec<u8>,
    pub buf_pos: usize,
    pub xfer: Option<Xfer>,
    /// SENSE INTERRUPT STATUS answers owed after a reset.
    pub reset_senses: u8,
    /// The interrupt request (gated onto IRQ 6 by DOR bit 3).
    pub interrupt: bool,
    pub drives: [DriveState; DRIVES],
    /// SPECIFY bytes: SRT/HUT and HLT/ND.
    pub specify: [u8; 2],
    /// CONFIGURE byte 3: EIS, EFIFO, POLL, FIFOTHR.
    pub config: u8,
    pub pretrk: u8,
    pub lock: bool,
    pub perpendicular: u8,
}

impl Default for FdcState {
    fn default() -> Self {
        FdcState {
            dor: 0,
            tdr: 0,
            dsr: 0x02,
            phase: Phase::Command,
            command: Vec::new(),
            result: Vec::new(),
            result_pos: 0,
            buf: Vec::new(),
            buf_pos: 0,
            xfer: None,
            reset_senses: 0,
            interrupt: false,
            drives: Default::default(),
            specify: [0, 0],
            // EFIFO disabled (bit 5 set), polling enabled, threshold 1.
            config: 0x20,
            pretrk: 0,
            lock: false,
            perpendicular: 0,
        }
    }
}

/// The floppy disk controller with its two drives.
pub struct Fdc {
    s: FdcState,
    media: [Option<Box<dyn BlockBackend>>; DRIVES],
}

impl Default for Fdc {
    fn default() -> Self {
        Fdc::new()
    }
}

impl std::fmt::Debug for Fdc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fdc").field("state", &self.s).finish_non_exhaustive()
    }
}

/// Bytes in a command whose first byte is `b` (Table 5-1); None: invalid.
fn command_length(b: u8) -> Option<usize> {
    match b {
        0x03 => Some(3),                  // SPECIFY
        0x04 => Some(2),                  // SENSE DRIVE STATUS
        0x07 => Some(2),                  // RECALIBRATE
        0x08 => Some(1),                  // SENSE INTERRUPT STATUS
        0x0F => Some(3),                  // SEEK
        0x0E => Some(1),                  // DUMPREG
        0x10 => Some(1),                  // VERSION
        0x12 => Some(2),                  // PERPENDICULAR MODE
        0x13 => Some(4),                  // CONFIGURE
        0x14 | 0x94 => Some(1),           // LOCK
        _ if b & 0x1F == 0x06 => Some(9), // READ DATA (MT MFM SK)
        _ if b & 0x3F == 0x05 => Some(9), // WRITE DATA (MT MFM)
        _ if b & 0xBF == 0x0A => Some(2), // READ ID (MFM)
        _ if b & 0xBF == 0x0D => Some(6), // FORMAT TRACK (MFM)
        _ => None,
    }
}

impl Fdc {
    /// Power-on: DOR 0 holds the controller in reset, no media.
    pub fn new() -> Fdc {
        Fdc { s: FdcState::default(), media: [None, None] }
    }

    /// Insert a medium into `drive`; the geometry follows from its size.
    /// Sets the drive's disk-change line.
    pub fn insert(&mut self, drive: usize, media: Box<dyn BlockBackend>) -> Result<(), FdcError> {
        if drive >= DRIVES {
            return Err(FdcError::NoSuchDrive(drive));
        }
        let geometry = Geometry::from_size(media.size()).ok_or(FdcError::UnknownFormat(media.size()))?;
        let d = &mut self.s.drives[drive];
        d.geometry = Some(geometry);
        d.write_protected = media.read_only();
        d.media_changed = true;
        self.media[drive] = Some(media);
        Ok(())
    }

    /// Remove the medium of `drive`, returning it (to flush or reuse).
    pub fn eject(&mut self, drive: usize) -> Option<Box<dyn BlockBackend>> {
        let d = self.s.drives.get_mut(drive)?;
        d.geometry = None;
        d.media_changed = true;
        self.media[drive].take()
    }

    /// Flush every inserted medium (the board calls this on shutdown).
    pub fn flush(&mut self) {
        for m in self.media.iter_mut().flatten() {
            // A failed flush has no guest-visible effect on a floppy.
            let _ = m.flush();
        }
    }

    /// The medium in `drive`, for firmware that reads and writes sectors
    /// without going through the controller (the own BIOS's INT 13h).
    pub fn media_mut(&mut self, drive: usize) -> Option<&mut (dyn BlockBackend + 'static)> {
        self.media.get_mut(drive).and_then(|m| m.as_deref_mut())
    }

    /// Geometry of `drive`'s medium.
    pub fn geometry(&self, drive: usize) -> Option<Geometry> {
        self.s.drives.get(drive).and_then(|d| d.geometry)
    }

    /// The RESET line: the same as a DOR reset pulse, plus DOR cleared.
    pub fn reset(&mut self) {
        self.s.dor = 0;
        self.controller_reset();
    }

    pub fn save(&self) -> FdcState {
        self.s.clone()
    }

    /// Restore a snapshot; media stay as inserted (geometry follows them).
    pub fn restore(&mut self, state: FdcState) {
        let mut s = state;
        for (i, d) in s.drives.iter_mut().enumerate() {
            d.geometry = self.media[i].as_ref().and_then(|m| Geometry::from_size(m.size()));
        }
        // A snapshot naming a drive the controller lacks aborts its command.
        if s.xfer.as_ref().is_some_and(|x| x.drive as usize >= DRIVES) {
            s.xfer = None;
            s.phase = Phase::Command;
        }
        if s.phase == Phase::Execution && s.xfer.is_none() {
            s.phase = Phase::Command;
        }
        s.buf_pos = s.buf_pos.min(s.buf.len());
        s.result_pos = s.result_pos.min(s.result.len());
        self.s = s;
    }

    /// True when IRQ 6 is asserted.
    pub fn irq_level(&self) -> bool {
        self.s.interrupt && self.s.dor & DOR_DMAGATE != 0
    }

    /// The DMA request: Some while a data command in DMA mode waits for the
    /// board to call [`Fdc::service_dma`].
    pub fn dma_request(&self) -> Option<Direction> {
        if self.s.phase != Phase::Execution || self.ndma() || self.s.dor & DOR_DMAGATE == 0 {
            return None;
        }
        match self.s.xfer.as_ref()?.kind {
            XferKind::Read => Some(Direction::ToMemory),
            XferKind::Write | XferKind::Format => Some(Direction::FromMemory),
        }
    }

    /// Move bytes of the current data command through DMA channel 2 until
    /// the command ends (terminal count or end of track) or the channel
    /// stops taking bytes (masked, not yet programmed). Ending the command
    /// enters the result phase and raises IRQ 6.
    pub fn service_dma(&mut self, dma: &mut Dma, mem: &mut GuestMemory, bus: &mut dyn Bus, cx: &mut DevCtx) {
        dma.set_dreq(FDC_DMA_CHANNEL, self.dma_request().is_some());
        // Each round moves at least one byte or returns; the bound only
        // guards against a logic error looping forever.
        for _ in 0..100_000 {
            let Some(dir) = self.dma_request() else { break };
            let pos = self.s.buf_pos;
            let res = match dir {
                Direction::ToMemory => dma.transfer(FDC_DMA_CHANNEL, DmaData::ToMemory(&self.s.buf[pos..]), mem, bus),
                Direction::FromMemory => {
                    dma.transfer(FDC_DMA_CHANNEL, DmaData::FromMemory(&mut self.s.buf[pos..]), mem, bus)
                }
            };
            self.s.buf_pos += res.bytes;
            if res.bytes == 0 && !res.terminal_count {
                break;
            }
            self.buffer_progress(res.terminal_count);
        }
        dma.set_dreq(FDC_DMA_CHANNEL, self.dma_request().is_some());
        self.update_irq(cx);
    }

    // ---- internals ---------------------------------------------------------

    fn ndma(&self) -> bool {
        self.s.specify[1] & 1 != 0
    }

    fn update_irq(&self, cx: &mut DevCtx) {
        cx.irq.set(FDC_IRQ, self.irq_level());
    }

    /// Datasheet 8.0: a reset clears the command state, and with polling
    /// enabled the controller interrupts and owes four SENSE INTERRUPT
    /// STATUS answers (one per drive). LOCK keeps CONFIGURE's FIFO bits.
    fn controller_reset(&mut self) {
        let s = &mut self.s;
        s.phase = Phase::Command;
        s.command.clear();
        s.result.clear();
        s.result_pos = 0;
        s.buf.clear();
        s.buf_pos = 0;
        s.xfer = None;
        s.perpendicular = 0;
        if !s.lock {
            s.config = 0x20;
            s.pretrk = 0;
        }
        s.config &= !0x40; // EIS
        for d in s.drives.iter_mut() {
            d.seek_pending = false;
        }
        let polling = s.config & 0x10 == 0;
        s.reset_senses = if polling { 4 } else { 0 };
        s.interrupt = polling;
    }

    fn in_reset(&self) -> bool {
        self.s.dor & DOR_NRESET == 0
    }

    fn msr(&self) -> u8 {
        if self.in_reset() {
            return 0;
        }
        let busy = self.s.drives.iter().enumerate().fold(0, |acc, (i, d)| acc | (d.seek_pending as u8) << i);
        match self.s.phase {
            Phase::Command => MSR_RQM | if self.s.command.is_empty() { 0 } else { MSR_CB } | busy,
            Phase::Result => MSR_RQM | MSR_DIO | MSR_CB | busy,
            Phase::Execution => {
                let dio = matches!(self.s.xfer, Some(Xfer { kind: XferKind::Read, .. }));
                if self.ndma() {
                    MSR_RQM | MSR_NDMA | MSR_CB | if dio { MSR_DIO } else { 0 } | busy
                } else {
                    MSR_CB | if dio { MSR_DIO } else { 0 } | busy
                }
            }
        }
    }

    fn dir(&self) -> u8 {
        let sel = (self.s.dor & DOR_SEL) as usize;
        match self.s.drives.get(sel) {
            Some(d) if d.media_changed => 0x80,
            _ => 0,
        }
    }

    fn write_data(&mut self, v: u8) {
        match self.s.phase {
            Phase::Command => {
                self.s.command.push(v);
                let first = self.s.command[0];
                match command_length(first) {
                    None => self.finish_with(vec![ST0_INVALID]),
                    Some(n) if self.s.command.len() >= n => self.execute(),
                    Some(_) => {}
                }
            }
            Phase::Execution if self.pio_ready(false) => {
                self.s.buf[self.s.buf_pos] = v;
                self.s.buf_pos += 1;
                self.buffer_progress(false);
            }
            // Writes while the controller talks are ignored.
            _ => {}
        }
    }

    /// Non-DMA execution phase: the FIFO carries the data of a read
    /// (`read`) or of a write/format.
    fn pio_ready(&self, read: bool) -> bool {
        let is_read = matches!(self.s.xfer, Some(Xfer { kind: XferKind::Read, .. }));
        self.ndma() && self.s.xfer.is_some() && is_read == read && self.s.buf_pos < self.s.buf.len()
    }

    fn read_data(&mut self) -> u8 {
        match self.s.phase {
            Phase::Result => {
                // The result phase's first byte clears the interrupt.
                self.s.interrupt = false;
                let v = self.s.result.get(self.s.result_pos).copied().unwrap_or(0xFF);
                self.s.result_pos += 1;
                if self.s.result_pos >= self.s.result.len() {
                    self.s.phase = Phase::Command;
                    self.s.result.clear();
                    self.s.result_pos = 0;
                }
                v
            }
            Phase::Execution if self.pio_ready(true) => {
                let v = self.s.buf[self.s.buf_pos];
                self.s.buf_pos += 1;
                self.buffer_progress(false);
                v
            }
            _ => 0xFF,
        }
    }

    /// Enter the result phase with `bytes` (no bytes: back to idle).
    fn finish_with(&mut self, bytes: Vec<u8>) {
        self.s.command.clear();
        self.s.xfer = None;
        self.s.buf.clear();
        self.s.buf_pos = 0;
        self.s.result_pos = 0;
        if bytes.is_empty() {
            self.s.phase = Phase::Command;
            self.s.result.clear();
        } else {
            self.s.phase = Phase::Result;
            self.s.result = bytes;
        }
    }

    fn execute(&mut self) {
        let cmd = std::mem::take(&mut self.s.command);
        let drive = (cmd.get(1).copied().unwrap_or(0) & 1) as usize;
        let head = cmd.get(1).copied().unwrap_or(0) >> 2 & 1;
        match cmd[0] {
            0x03 => {
                self.s.specify = [cmd[1], cmd[2]];
                self.finish_with(vec![]);
            }
            0x04 => {
                let d = &mut self.s.drives[drive];
                d.head = head;
                let mut st3 = ST3_RDY | ST3_TS | head << 2 | drive as u8;
                if d.pcn == 0 {
                    st3 |= ST3_T0;
                }
                if d.write_protected || d.geometry.is_none() {
                    st3 |= ST3_WP;
                }
                self.finish_with(vec![st3]);
            }
            0x07 => self.seek(drive, head, 0),
            0x0F => self.seek(drive, head, cmd[2]),
            0x08 => self.sense_interrupt(),
            0x0E => {
                let s = &self.s;
                let eot = s.xfer.as_ref().map_or(0, |x| x.eot);
                let v = vec![
                    s.drives[0].pcn,
                    s.drives[1].pcn,
                    0,
                    0,
                    s.specify[0],
                    s.specify[1],
                    eot,
                    (s.lock as u8) << 7 | (s.perpendicular & 0x7F),
                    s.config,
                    s.pretrk,
                ];
                self.finish_with(v);
            }
            0x10 => self.finish_with(vec![0x90]),
            0x12 => {
                // Bit 7 (OW) gates whether the drive bits are updated.
                if cmd[1] & 0x80 != 0 {
                    self.s.perpendicular = cmd[1] & 0x3F;
                } else {
                    self.s.perpendicular = (self.s.perpendicular & 0x3C) | (cmd[1] & 0x03);
                }
                self.finish_with(vec![]);
            }
            0x13 => {
                self.s.config = cmd[2];
                self.s.pretrk = cmd[3];
                self.finish_with(vec![]);
            }
            0x14 | 0x94 => {
                self.s.lock = cmd[0] & 0x80 != 0;
                self.finish_with(vec![(self.s.lock as u8) << 4]);
            }
            b if b & 0xBF == 0x0A => self.read_id(drive, head),
            b if b & 0xBF == 0x0D => self.start_format(&cmd, drive, head),
            b => {
                let kind = if b & 0x1F == 0x06 { XferKind::Read } else { XferKind::Write };
                self.start_rw(kind, &cmd, drive, head);
            }
        }
    }

    fn seek(&mut self, drive: usize, head: u8, target: u8) {
        let d = &mut self.s.drives[drive];
        d.head = head;
        d.pcn = target;
        // The disk-change line resets when the drive steps with a disk in.
        if d.geometry.is_some() {
            d.media_changed = false;
        }
        d.seek_pending = true;
        self.finish_with(vec![]);
        self.s.interrupt = true;
    }

    fn sense_interrupt(&mut self) {
        self.s.interrupt = false;
        if self.s.reset_senses > 0 {
            let drive = 4 - self.s.reset_senses;
            self.s.reset_senses -= 1;
            let pcn = self.s.drives.get(drive as usize).map_or(0, |d| d.pcn);
            self.finish_with(vec![ST0_RESET | drive, pcn]);
            return;
        }
        if let Some(i) = self.s.drives.iter().position(|d| d.seek_pending) {
            let d = &mut self.s.drives[i];
            d.seek_pending = false;
            // A recalibrate that found no track 0 would set EC; an empty
            // drive still steps, so there is none here.
            let st0 = ST0_SE | d.head << 2 | i as u8;
            let pcn = d.pcn;
            self.finish_with(vec![st0, pcn]);
            return;
        }
        self.finish_with(vec![ST0_INVALID]);
    }

    fn error_result(&mut self, drive: usize, head: u8, st0: u8, st1: u8, st2: u8, chrn: [u8; 4]) {
        let v = vec![st0 | head << 2 | drive as u8, st1, st2, chrn[0], chrn[1], chrn[2], chrn[3]];
        self.finish_with(v);
        self.s.interrupt = true;
    }

    fn read_id(&mut self, drive: usize, head: u8) {
        let d = &mut self.s.drives[drive];
        d.head = head;
        let pcn = d.pcn;
        match d.geometry {
            Some(g) if head < g.heads && pcn < g.cylinders => {
                self.error_result(drive, head, 0, 0, 0, [pcn, head, 1, 2]);
            }
            Some(_) => self.error_result(drive, head, ST0_ABNORMAL, ST1_MA, 0, [pcn, head, 1, 2]),
            None => self.error_result(drive, head, ST0_ABNORMAL | ST0_NR, ST1_MA, 0, [pcn, head, 1, 2]),
        }
    }

    fn start_rw(&mut self, kind: XferKind, cmd: &[u8], drive: usize, head: u8) {
        let mt = cmd[0] & 0x80 != 0;
        let (c, h, r, n, eot) = (cmd[2], cmd[3], cmd[4], cmd[5], cmd[6]);
        // Implied seek (CONFIGURE EIS) moves the head to C first.
        if self.s.config & 0x40 != 0 {
            self.s.drives[drive].pcn = c;
        }
        self.s.drives[drive].head = head;
        let x = Xfer { kind, drive: drive as u8, c, h, r, n, eot, mt, format_left: 0, fill: 0 };
        if self.s.drives[drive].geometry.is_none() {
            self.error_result(drive, head, ST0_ABNORMAL | ST0_NR, ST1_MA, 0, [c, h, r, n]);
            return;
        }
        if kind == XferKind::Write && self.s.drives[drive].write_protected {
            self.error_result(drive, head, ST0_ABNORMAL, ST1_NW, 0, [c, h, r, n]);
            return;
        }
        self.s.xfer = Some(x);
        self.s.phase = Phase::Execution;
        self.begin_sector();
    }

    /// Byte offset of the current sector, or the error status (ST1, ST2)
    /// the controller reports when no such sector ID is on the track.
    fn locate(&self) -> Result<u64, (u8, u8)> {
        let x = self.s.xfer.as_ref().ok_or((ST1_ND, 0))?;
        let d = &self.s.drives[x.drive as usize];
        let g = d.geometry.ok_or((ST1_MA, 0))?;
        if d.pcn >= g.cylinders || d.head >= g.heads {
            return Err((ST1_MA, 0));
        }
        // The sector IDs of a PC format carry C = track, H = side, N = 2.
        if x.c != d.pcn {
            return Err((ST1_ND, ST2_WC));
        }
        if x.h != d.head || x.n != 2 || x.r == 0 || x.r > g.sectors {
            return Err((ST1_ND, 0));
        }
        let lba = (d.pcn as u64 * g.heads as u64 + d.head as u64) * g.sectors as u64 + (x.r - 1) as u64;
        Ok(lba * SECTOR as u64)
    }

    /// Prepare the buffer for the current sector; on failure end the
    /// command with an error result and return false.
    fn begin_sector(&mut self) -> bool {
        let Some(x) = self.s.xfer.clone() else { return false };
        let off = match self.locate() {
            Ok(off) => off,
            Err((st1, st2)) => {
                let head = self.s.drives[x.drive as usize].head;
                self.error_result(x.drive as usize, head, ST0_ABNORMAL, st1, st2, [x.c, x.h, x.r, x.n]);
                return false;
            }
        };
        self.s.buf = vec![0; SECTOR];
        self.s.buf_pos = 0;
        if x.kind == XferKind::Read {
            let ok = match self.media[x.drive as usize].as_mut() {
                Some(m) => m.read_at(off, &mut self.s.buf).is_ok(),
                None => false,
            };
            if !ok {
                let head = self.s.drives[x.drive as usize].head;
                self.error_result(x.drive as usize, head, ST0_ABNORMAL, ST1_ND, 0, [x.c, x.h, x.r, x.n]);
                return false;
            }
        }
        true
    }

    /// After bytes moved: finish the sector when the buffer is full or
    /// terminal count arrived, then either continue or end the command.
    fn buffer_progress(&mut self, tc: bool) {
        let Some(x) = self.s.xfer.clone() else { return };
        if self.s.buf_pos < self.s.buf.len() && !tc {
            return;
        }
        let drive = x.drive as usize;
        let head = self.s.drives[drive].head;
        match x.kind {
            XferKind::Format => return self.format_progress(tc),
            XferKind::Write => {
                // A sector cut short by terminal count is padded with zeros
                // (the controller writes the rest of the field with 00h).
                let pos = self.s.buf_pos;
                self.s.buf[pos..].fill(0);
                let ok = match (self.locate(), self.media[drive].as_mut()) {
                    (Ok(off), Some(m)) => m.write_at(off, &self.s.buf).is_ok(),
                    _ => false,
                };
                if !ok {
                    let nw = if self.media[drive].as_ref().is_some_and(|m| m.read_only()) { ST1_NW } else { ST1_ND };
                    self.error_result(drive, head, ST0_ABNORMAL, nw, 0, [x.c, x.h, x.r, x.n]);
                    return;
                }
            }
            XferKind::Read => {}
        }
        // Table 5-7: the result C/H/R/N name the sector after the last one
        // transferred.
        let mut nx = x.clone();
        let mut end_of_track = false;
        if x.r >= x.eot {
            nx.r = 1;
            if x.mt && x.h & 1 == 0 {
                nx.h = x.h | 1;
            } else {
                nx.c = x.c.wrapping_add(1);
                if x.mt {
                    nx.h = x.h & !1;
                }
                end_of_track = true;
            }
        } else {
            nx.r = x.r + 1;
        }
        let chrn = [nx.c, nx.h, nx.r, nx.n];
        if tc {
            self.error_result(drive, head, 0, 0, 0, chrn);
        } else if end_of_track {
            // Reaching EOT without terminal count is an abnormal end (EN).
            self.error_result(drive, head, ST0_ABNORMAL, ST1_EN, 0, chrn);
        } else {
            // Head switch under MT: sector 1 of side 1 of the same cylinder.
            self.s.drives[drive].head = nx.h & 1;
            self.s.xfer = Some(nx);
            self.begin_sector();
        }
    }

    fn start_format(&mut self, cmd: &[u8], drive: usize, head: u8) {
        let (n, sc, fill) = (cmd[2], cmd[3], cmd[5]);
        let d = &mut self.s.drives[drive];
        d.head = head;
        let pcn = d.pcn;
        if d.geometry.is_none() {
            self.error_result(drive, head, ST0_ABNORMAL | ST0_NR, ST1_MA, 0, [pcn, head, 1, n]);
            return;
        }
        if d.write_protected {
            self.error_result(drive, head, ST0_ABNORMAL, ST1_NW, 0, [pcn, head, 1, n]);
            return;
        }
        if sc == 0 {
            self.error_result(drive, head, 0, 0, 0, [pcn, head, 1, n]);
            return;
        }
        self.s.xfer = Some(Xfer {
            kind: XferKind::Format,
            drive: drive as u8,
            c: pcn,
            h: head,
            r: 1,
            n,
            eot: sc,
            mt: false,
            format_left: sc,
            fill,
        });
        self.s.phase = Phase::Execution;
        self.s.buf = vec![0; 4];
        self.s.buf_pos = 0;
    }

    /// FORMAT TRACK: each 4-byte C/H/R/N ID fills that sector with the fill
    /// byte (the image has no ID fields, so the IDs only pick the sector).
    fn format_progress(&mut self, tc: bool) {
        let Some(mut x) = self.s.xfer.clone() else { return };
        let drive = x.drive as usize;
        let head = self.s.drives[drive].head;
        if self.s.buf_pos == 4 {
            let id = [self.s.buf[0], self.s.buf[1], self.s.buf[2], self.s.buf[3]];
            let d = &self.s.drives[drive];
            if let Some(g) = d.geometry {
                if id[2] >= 1 && id[2] <= g.sectors && d.pcn < g.cylinders && head < g.heads {
                    let lba = (d.pcn as u64 * g.heads as u64 + head as u64) * g.sectors as u64 + (id[2] - 1) as u64;
                    if let Some(m) = self.media[drive].as_mut() {
                        let _ = m.write_at(lba * SECTOR as u64, &[x.fill; SECTOR]);
                    }
                }
            }
            x.r = id[2];
            x.format_left = x.format_left.saturating_sub(1);
            self.s.buf_pos = 0;
        }
        if x.format_left == 0 || tc {
            self.error_result(drive, head, 0, 0, 0, [x.c, x.h, x.r, x.n]);
        } else {
            self.s.xfer = Some(x);
        }
    }
}

impl PortIo for Fdc {
    fn io_read(&mut self, port: u16, size: AccessSize, cx: &mut DevCtx) -> u32 {
        let v = match port {
            0x3F0 | 0x3F1 => 0xFF, // SRA/SRB: not driven in AT mode
            0x3F2 => self.s.dor,
            0x3F3 => self.s.tdr & 0x03,
            0x3F4 => self.msr(),
            0x3F5 if !self.in_reset() => self.read_data(),
            0x3F7 => self.dir(),
            _ => 0xFF,
        };
        self.update_irq(cx);
        match size {
            AccessSize::Byte => v as u32,
            _ => v as u32 | (size.all_ones() & !0xFF),
        }
    }

    fn io_write(&mut self, port: u16, _size: AccessSize, value: u32, cx: &mut DevCtx) {
        let v = value as u8;
        match port {
            0x3F2 => {
                let was_reset = self.in_reset();
                self.s.dor = v;
                if !was_reset && self.in_reset() {
                    // Entering reset drops the interrupt and aborts the command.
                    self.controller_reset();
                    self.s.interrupt = false;
                    self.s.reset_senses = 0;
                } else if was_reset && !self.in_reset() {
                    self.controller_reset();
                }
            }
            0x3F3 => self.s.tdr = v & 0x03,
            0x3F4 => {
                // DSR: bit 7 is a self-clearing software reset.
                self.s.dsr = v & 0x7F;
                if v & 0x80 != 0 && !self.in_reset() {
                    self.controller_reset();
                }
            }
            0x3F5 if !self.in_reset() => self.write_data(v),
            0x3F7 => self.s.dsr = (self.s.dsr & !0x03) | (v & 0x03), // CCR: data rate
            _ => {}
        }
        self.update_irq(cx);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::MemBackend;
    use crate::dma::{MODE_CASCADE, PAGE_PORT};
    use crate::{IrqLines, Nanos};
    use ferrite_core::{NullBus, PhysAddr};

    const IMG_144: usize = 1_474_560;

    struct Bench {
        fdc: Fdc,
        dma: Dma,
        mem: GuestMemory,
        lines: IrqLines,
    }

    /// Byte `i` of the sector at `lba` in the test image.
    fn pat(lba: usize, i: usize) -> u8 {
        (lba * 3 + i * 7 + (i >> 8)) as u8
    }

    fn image(size: usize) -> Vec<u8> {
        (0..size).map(|o| pat(o / SECTOR, o % SECTOR)).collect()
    }

    impl Bench {
        fn new() -> Bench {
            let mut b = Bench {
                fdc: Fdc::new(),
                dma: Dma::new(),
                mem: GuestMemory::new(1 << 20).unwrap(),
                lines: IrqLines::default(),
            };
            // The cascade as every AT BIOS sets it up.
            b.dma_out(0xD6, MODE_CASCADE);
            b.dma_out(0xD4, 0x00);
            b
        }

        fn with_disk(read_only: bool) -> Bench {
            let mut b = Bench::new();
            let mut m = MemBackend::new(image(IMG_144));
            m.read_only = read_only;
            b.fdc.insert(0, Box::new(m)).unwrap();
            b.reset_and_sense();
            b
        }

        fn dma_out(&mut self, port: u16, v: u8) {
            let mut cx = DevCtx { now: Nanos(0), irq: &mut self.lines };
            self.dma.io_write(port, AccessSize::Byte, v as u32, &mut cx);
        }

        fn out(&mut self, port: u16, v: u8) {
            let mut cx = DevCtx { now: Nanos(0), irq: &mut self.lines };
            self.fdc.io_write(port, AccessSize::Byte, v as u32, &mut cx);
            self.service();
        }

        fn inp(&mut self, port: u16) -> u8 {
            let mut cx = DevCtx { now: Nanos(0), irq: &mut self.lines };
            let v = self.fdc.io_read(port, AccessSize::Byte, &mut cx) as u8;
            self.service();
            v
        }

        /// What the board does after every access: let a pending data
        /// command run its DMA.
        fn service(&mut self) {
            if self.fdc.dma_request().is_some() {
                let mut cx = DevCtx { now: Nanos(0), irq: &mut self.lines };
                self.fdc.service_dma(&mut self.dma, &mut self.mem, &mut NullBus, &mut cx);
            }
        }

        fn irq(&self) -> bool {
            self.lines.level(FDC_IRQ)
        }

        fn command(&mut self, bytes: &[u8]) {
            for &b in bytes {
                assert_eq!(self.inp(0x3F4) & (MSR_RQM | MSR_DIO), MSR_RQM, "controller not ready for {bytes:02x?}");
                self.out(0x3F5, b);
            }
        }

        fn results(&mut self) -> Vec<u8> {
            let mut v = Vec::new();
            while self.inp(0x3F4) & (MSR_RQM | MSR_DIO) == MSR_RQM | MSR_DIO {
                v.push(self.inp(0x3F5));
                assert!(v.len() <= 16);
            }
            v
        }

        fn reset_and_sense(&mut self) {
            self.out(0x3F2, 0x00);
            self.out(0x3F2, 0x1C);
            for d in 0..4 {
                self.command(&[0x08]);
                assert_eq!(self.results(), vec![0xC0 | d, 0]);
            }
        }

        /// Program channel 2 like the BIOS: single mode, `mode` (0x46 read
        /// into memory, 0x4A write from memory).
        fn program_dma(&mut self, mode: u8, addr: u32, len: usize) {
            let count = (len - 1) as u16;
            self.dma_out(0x0A, 0x06);
            self.dma_out(0x0C, 0x00);
            self.dma_out(0x0B, mode);
            self.dma_out(0x04, addr as u8);
            self.dma_out(0x04, (addr >> 8) as u8);
            self.dma_out(PAGE_PORT[2], (addr >> 16) as u8);
            self.dma_out(0x05, count as u8);
            self.dma_out(0x05, (count >> 8) as u8);
            self.dma_out(0x0A, 0x02);
        }

        fn seek(&mut self, cyl: u8, head: u8) {
            self.command(&[0x0F, head << 2, cyl]);
            assert!(self.irq());
            self.command(&[0x08]);
            assert_eq!(self.results(), vec![0x20 | head << 2, cyl]);
        }

        fn peek(&self, addr: u32) -> u8 {
            self.mem.peek(PhysAddr(addr))
        }
    }

    #[test]
    fn reset_raises_irq6_and_owes_four_sense_interrupts() {
        let mut b = Bench::new();
        b.out(0x3F2, 0x00);
        assert_eq!(b.inp(0x3F4), 0, "MSR reads 0 while held in reset");
        b.out(0x3F2, 0x0C);
        assert!(b.irq());
        assert_eq!(b.inp(0x3F4), MSR_RQM);
        for d in 0..4u8 {
            b.command(&[0x08]);
            assert!(!b.irq());
            assert_eq!(b.results(), vec![0xC0 | d, 0]);
        }
        b.command(&[0x08]);
        assert_eq!(b.results(), vec![0x80]);
    }

    #[test]
    fn irq_is_gated_by_dor_dma_enable() {
        let mut b = Bench::new();
        b.out(0x3F2, 0x04);
        assert!(!b.irq());
        b.out(0x3F2, 0x0C);
        assert!(b.irq());
    }

    #[test]
    fn recalibrate_and_seek_interrupt_and_sense_reports_pcn() {
        let mut b = Bench::with_disk(false);
        assert_eq!(b.inp(0x3F7) & 0x80, 0x80, "media change after insert");
        b.command(&[0x07, 0x00]);
        assert!(b.irq());
        assert_eq!(b.inp(0x3F4) & 0x01, 0x01, "drive 0 busy until sensed");
        b.command(&[0x08]);
        assert_eq!(b.results(), vec![0x20, 0]);
        assert!(!b.irq());
        assert_eq!(b.inp(0x3F7) & 0x80, 0, "a step clears disk change");
        b.seek(40, 1);
        b.command(&[0x04, 0x04]);
        assert_eq!(b.results(), vec![ST3_RDY | ST3_TS | 0x04]);
        b.seek(0, 0);
        b.command(&[0x04, 0x00]);
        assert_eq!(b.results(), vec![ST3_RDY | ST3_TS | ST3_T0]);
    }

    #[test]
    fn read_data_of_sector_1_lands_in_memory_through_dma_channel_2() {
        let mut b = Bench::with_disk(false);
        b.seek(0, 0);
        b.program_dma(0x46, 0x7C00, 512);
        b.command(&[0xE6, 0x00, 0, 0, 1, 2, 18, 0x1B, 0xFF]);
        assert!(b.irq());
        assert_eq!(b.results(), vec![0x00, 0x00, 0x00, 0, 0, 2, 2]);
        assert!(!b.irq());
        for i in 0..512 {
            assert_eq!(b.peek(0x7C00 + i as u32), pat(0, i));
        }
    }

    #[test]
    fn multi_track_read_continues_on_head_1_and_reports_next_sector() {
        let mut b = Bench::with_disk(false);
        b.seek(3, 0);
        b.program_dma(0x46, 0x10000, 4 * 512);
        b.command(&[0xC6, 0x00, 3, 0, 17, 2, 18, 0x1B, 0xFF]);
        assert_eq!(b.results(), vec![0x04, 0x00, 0x00, 3, 1, 3, 2]);
        let lba0 = (3 * 2) * 18 + 16;
        for s in 0..4 {
            for i in [0, 1, 511] {
                assert_eq!(b.peek(0x10000 + (s * 512 + i) as u32), pat(lba0 + s, i), "sector {s}");
            }
        }
    }

    #[test]
    fn read_waits_for_the_channel_to_be_unmasked() {
        let mut b = Bench::with_disk(false);
        b.seek(0, 0);
        b.dma_out(0x0A, 0x06);
        b.command(&[0x46, 0x00, 0, 0, 1, 2, 18, 0x1B, 0xFF]);
        assert_eq!(b.fdc.dma_request(), Some(Direction::ToMemory));
        assert_eq!(b.inp(0x3F4) & MSR_CB, MSR_CB);
        assert!(!b.irq());
        b.program_dma(0x46, 0x8000, 512);
        b.service();
        assert!(b.irq());
        assert_eq!(b.fdc.dma_request(), None);
        assert_eq!(b.results(), vec![0x00, 0, 0, 0, 0, 2, 2]);
        assert_eq!(b.peek(0x8000 + 511), pat(0, 511));
    }

    #[test]
    fn terminal_count_inside_a_sector_ends_the_command_after_it() {
        let mut b = Bench::with_disk(false);
        b.seek(0, 0);
        b.program_dma(0x46, 0x9000, 100);
        b.command(&[0x46, 0x00, 0, 0, 3, 2, 18, 0x1B, 0xFF]);
        assert_eq!(b.results(), vec![0x00, 0, 0, 0, 0, 4, 2]);
        assert_eq!(b.peek(0x9000 + 99), pat(2, 99));
        assert_eq!(b.peek(0x9000 + 100), 0);
    }

    #[test]
    fn read_to_end_of_track_without_terminal_count_reports_en() {
        let mut b = Bench::with_disk(false);
        b.seek(0, 0);
        b.program_dma(0x46, 0x20000, 8 * 512);
        b.command(&[0x46, 0x00, 0, 0, 17, 2, 18, 0x1B, 0xFF]);
        assert_eq!(b.results(), vec![0x40, ST1_EN, 0x00, 1, 0, 1, 2]);
    }

    #[test]
    fn write_data_reaches_the_backend_and_reads_back() {
        let mut b = Bench::with_disk(false);
        b.seek(1, 1);
        for i in 0..1024u32 {
            b.mem.load(PhysAddr(0x30000 + i), &[(i ^ 0x5A) as u8]);
        }
        b.program_dma(0x4A, 0x30000, 1024);
        b.command(&[0xC5, 0x04, 1, 1, 5, 2, 18, 0x1B, 0xFF]);
        assert_eq!(b.results(), vec![0x04, 0, 0, 1, 1, 7, 2]);
        b.program_dma(0x46, 0x40000, 1024);
        b.command(&[0xE6, 0x04, 1, 1, 5, 2, 18, 0x1B, 0xFF]);
        assert_eq!(b.results(), vec![0x04, 0, 0, 1, 1, 7, 2]);
        for i in 0..1024u32 {
            assert_eq!(b.peek(0x40000 + i), (i ^ 0x5A) as u8);
        }
        let m = b.fdc.eject(0).unwrap();
        let mut buf = [0u8; 2];
        let mut m = m;
        m.read_at(((18 * 3) + 4) * 512, &mut buf).unwrap();
        assert_eq!(buf, [0x5A, 0x5B]);
    }

    #[test]
    fn write_to_a_protected_disk_fails_with_nw() {
        let mut b = Bench::with_disk(true);
        b.seek(0, 0);
        b.program_dma(0x4A, 0x30000, 512);
        b.command(&[0x45, 0x00, 0, 0, 1, 2, 18, 0x1B, 0xFF]);
        assert!(b.irq());
        assert_eq!(b.results(), vec![0x40, ST1_NW, 0, 0, 0, 1, 2]);
        b.command(&[0x04, 0x00]);
        assert_eq!(b.results()[0] & ST3_WP, ST3_WP);
    }

    #[test]
    fn read_without_media_and_missing_sector_are_errors() {
        let mut b = Bench::new();
        b.reset_and_sense();
        b.program_dma(0x46, 0x7C00, 512);
        b.command(&[0x46, 0x01, 0, 0, 1, 2, 18, 0x1B, 0xFF]);
        assert!(b.irq());
        assert_eq!(b.results(), vec![0x40 | ST0_NR | 1, ST1_MA, 0, 0, 0, 1, 2]);
        let mut b = Bench::with_disk(false);
        b.seek(0, 0);
        b.command(&[0x46, 0x00, 0, 0, 19, 2, 19, 0x1B, 0xFF]);
        assert_eq!(b.results(), vec![0x40, ST1_ND, 0, 0, 0, 19, 2]);
        b.command(&[0x46, 0x00, 5, 0, 1, 2, 18, 0x1B, 0xFF]);
        assert_eq!(b.results(), vec![0x40, ST1_ND, ST2_WC, 5, 0, 1, 2]);
    }

    #[test]
    fn read_id_version_invalid_lock_and_dumpreg() {
        let mut b = Bench::with_disk(false);
        b.seek(7, 1);
        b.command(&[0x4A, 0x04]);
        assert!(b.irq());
        assert_eq!(b.results(), vec![0x04, 0, 0, 7, 1, 1, 2]);
        b.command(&[0x10]);
        assert_eq!(b.results(), vec![0x90]);
        b.command(&[0x1F]);
        assert_eq!(b.results(), vec![0x80]);
        b.command(&[0x94]);
        assert_eq!(b.results(), vec![0x10]);
        b.command(&[0x13, 0x00, 0x57, 0x00]);
        b.command(&[0x03, 0xDF, 0x02]);
        b.command(&[0x0E]);
        let r = b.results();
        assert_eq!(r.len(), 10);
        assert_eq!((r[0], r[4], r[5], r[7] & 0x80, r[8]), (7, 0xDF, 0x02, 0x80, 0x57));
        b.command(&[0x12, 0x00]);
        assert!(b.results().is_empty());
    }

    #[test]
    fn format_track_writes_the_fill_byte() {
        let mut b = Bench::with_disk(false);
        b.seek(2, 0);
        let ids: Vec<u8> = (1..=18u8).flat_map(|r| [2, 0, r, 2]).collect();
        b.mem.load(PhysAddr(0x50000), &ids);
        b.program_dma(0x4A, 0x50000, ids.len());
        b.command(&[0x4D, 0x00, 2, 18, 0x54, 0xF6]);
        assert_eq!(b.results()[..3], [0x00, 0, 0]);
        b.program_dma(0x46, 0x60000, 512);
        b.command(&[0x46, 0x00, 2, 0, 9, 2, 18, 0x1B, 0xFF]);
        assert_eq!(b.results()[0], 0x00);
        assert!((0..512).all(|i| b.peek(0x60000 + i) == 0xF6));
    }

    #[test]
    fn non_dma_read_moves_bytes_through_the_fifo() {
        let mut b = Bench::with_disk(false);
        b.command(&[0x03, 0xDF, 0x03]);
        b.seek(0, 0);
        b.command(&[0x46, 0x00, 0, 0, 2, 2, 2, 0x1B, 0xFF]);
        let mut data = Vec::new();
        while b.inp(0x3F4) & (MSR_RQM | MSR_NDMA) == MSR_RQM | MSR_NDMA {
            data.push(b.inp(0x3F5));
        }
        assert_eq!(data.len(), 512);
        assert!(data.iter().enumerate().all(|(i, &v)| v == pat(1, i)));
        // PIO has no terminal count: the command ends at EOT.
        assert_eq!(b.results(), vec![0x40, ST1_EN, 0, 1, 0, 1, 2]);
    }

    #[test]
    fn save_restore_round_trips_mid_command() {
        let mut b = Bench::with_disk(false);
        b.seek(4, 0);
        b.command(&[0x46, 0x00, 4, 0]);
        let state = b.fdc.save();
        let mut f = Fdc::new();
        f.insert(0, Box::new(MemBackend::new(image(IMG_144)))).unwrap();
        f.restore(state.clone());
        assert_eq!(f.save(), state);
        // The restored controller finishes the command.
        b.fdc = f;
        b.program_dma(0x46, 0x7000, 512);
        b.command(&[3, 2, 18, 0x1B, 0xFF]);
        assert_eq!(b.results(), vec![0x00, 0, 0, 4, 0, 4, 2]);
        assert_eq!(b.peek(0x7001), pat(4 * 36 + 2, 1));
    }

    #[test]
    fn geometry_follows_image_size() {
        assert_eq!(Geometry::from_size(1_474_560), Some(Geometry { cylinders: 80, heads: 2, sectors: 18 }));
        assert_eq!(Geometry::from_size(737_280), Some(Geometry { cylinders: 80, heads: 2, sectors: 9 }));
        assert_eq!(Geometry::from_size(1_228_800).map(|g| g.sectors), Some(15));
        assert_eq!(Geometry::from_size(2_949_120).map(|g| g.sectors), Some(36));
        assert_eq!(Geometry::from_size(368_640).map(|g| g.cylinders), Some(40));
        let mut f = Fdc::new();
        assert_eq!(f.insert(0, Box::new(MemBackend::new(vec![0; 1000]))), Err(FdcError::UnknownFormat(1000)));
        assert_eq!(f.insert(2, Box::new(MemBackend::new(vec![0; IMG_144]))), Err(FdcError::NoSuchDrive(2)));
    }

    #[test]
    fn garbage_on_every_port_never_panics_or_hangs() {
        let mut b = Bench::with_disk(false);
        b.fdc.insert(1, Box::new(MemBackend::new(image(737_280)))).unwrap();
        let mut x: u32 = 0x1234_5678;
        for _ in 0..200_000 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            let port = 0x3F0 + (x % 8) as u16;
            if x & 0x100 != 0 {
                b.out(port, (x >> 16) as u8);
            } else {
                b.inp(port);
            }
            if x & 0xF000 == 0 {
                b.program_dma(
                    if x & 1 != 0 { 0x46 } else { 0x4A },
                    (x >> 12) & 0xF_FFFF,
                    1 + (x >> 20) as usize % 4096,
                );
            }
        }
        b.reset_and_sense();
    }
}
