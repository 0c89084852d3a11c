//! The PC/AT's two cascaded Intel 8237A DMA controllers and the 74LS612 DMA
//! page registers.
//!
//! - DMA1 (ports 0x00-0x0F, aliased at 0x10-0x1F) serves the 8-bit channels
//!   0-3: the physical address is `page << 16 | address`, so a transfer
//!   wraps inside its 64 KiB page.
//! - DMA2 (ports 0xC0-0xDF, register n at 0xC0 + 2n; the AT wires its A0-A3
//!   to SA1-SA4, so odd ports alias the even one below) serves the 16-bit
//!   channels 4-7. Its address and count registers count words: the
//!   physical address is `page[7:1] << 17 | address << 1`, so a transfer
//!   wraps inside its 128 KiB page. Channel 4 is the cascade input driven by
//!   DMA1's HRQ: masking it (or disabling DMA2) stops channels 0-3 too.
//! - The page registers are 16 latches at 0x80-0x8F: channel 0 at 0x87, 1 at
//!   0x83, 2 at 0x81, 3 at 0x82, 5 at 0x8B, 6 at 0x89, 7 at 0x8A; 0x8F is the
//!   AT's refresh page (here channel 4's, which never transfers); the others
//!   are plain scratch latches, and 0x80 is the POST code port.
//!
//! References: Intel 8237A datasheet (order 231466): "Register Description"
//! (Current Address, Current Word Count, Base Address and Base Word Count,
//! Command, Mode, Request, Mask, Status and Temporary registers), "Software
//! Commands" (Clear First/Last Flip-Flop, Master Clear, Clear Mask
//! Register), Figure 6 "Software Command Codes", Figure 7 "Word Count and
//! Address Register Command Codes", "Transfer Types" (verify is a pseudo
//! transfer with memory and I/O strobes inactive), "Autoinitialize";
//! IBM PC AT Technical Reference, "DMA Controller" (page registers, DMA2
//! address shifted by one bit); Intel 82378 SIO datasheet section 3.2 (the
//! register set the PIIX family inherits: the write-all-mask register reads
//! back, and masking channel 4 masks channels 0-3).
//!
//! Model: the controller never touches memory on its own. A device that has
//! data (or wants data) calls [`Dma::transfer`] with the guest memory and
//! the bus; the controller runs as many cycles as the device offers, up to
//! terminal count, through [`GuestMemory::read`]/[`GuestMemory::write`], so
//! DMA reaches MMIO like a CPU access and DMA into a page holding decoded
//! code queues an invalidation exactly like a CPU store. DMA addresses are
//! not gated by A20 (on the AT the gate sits on the CPU's A20 line only).
//!
//! Not modelled: bus timing, HRQ/HLDA arbitration and channel priority (a
//! transfer happens when the device asks; demand, single and block mode all
//! move what the device offers); memory-to-memory transfers, channel 0
//! address hold, compressed timing, extended write and the DREQ/DACK
//! polarity bits (the command register stores them; only "controller
//! disable" acts); software requests do not start transfers by themselves
//! (they show in the status register and are cleared at terminal count); an
//! external EOP from a device; the temporary register therefore stays 0;
//! EISA high page registers (0x480-0x48F), so DMA reaches the low 16 MiB.

use std::ops::RangeInclusive;

use ferrite_core::{Bus, GuestMemory, PhysAddr};
use serde::{Deserialize, Serialize};

use crate::{AccessSize, DevCtx, PortIo};

/// Ports of DMA1 (channels 0-3); 0x10-0x1F alias them on the AT.
pub const DMA1_PORTS: RangeInclusive<u16> = 0x00..=0x0F;
/// Ports of DMA2 (channels 4-7), registers on even addresses.
pub const DMA2_PORTS: RangeInclusive<u16> = 0xC0..=0xDF;
/// The page register latches.
pub const PAGE_PORTS: RangeInclusive<u16> = 0x80..=0x8F;
/// The POST code port, one of the page-register latches.
pub const POST_PORT: u16 = 0x80;
/// Page register port of each channel (channel 4's is the AT's refresh
/// page, which no transfer uses).
pub const PAGE_PORT: [u16; 8] = [0x87, 0x83, 0x81, 0x82, 0x8F, 0x8B, 0x89, 0x8A];
/// The DMA2 channel DMA1 cascades into.
pub const CASCADE_CHANNEL: u8 = 4;

// Register numbers (A3-A0), Figures 6 and 7. Registers 0-7 are the address
// (even) and word count (odd) registers of channels 0-3.
const REG_STATUS_COMMAND: u8 = 0x8;
const REG_REQUEST: u8 = 0x9;
const REG_SINGLE_MASK: u8 = 0xA;
const REG_MODE: u8 = 0xB;
const REG_CLEAR_FLIP_FLOP: u8 = 0xC;
const REG_MASTER_CLEAR_TEMP: u8 = 0xD;
const REG_CLEAR_MASK: u8 = 0xE;
const REG_ALL_MASK: u8 = 0xF;

/// Command register bit 2: controller disable.
pub const CMD_DISABLE: u8 = 0x04;

/// Mode register bits 3:2 (transfer type).
pub const MODE_VERIFY: u8 = 0x00;
pub const MODE_WRITE: u8 = 0x04;
pub const MODE_READ: u8 = 0x08;
/// Mode register bit 4: autoinitialize.
pub const MODE_AUTOINIT: u8 = 0x10;
/// Mode register bit 5: address decrement.
pub const MODE_DECREMENT: u8 = 0x20;
/// Mode register bits 7:6 (request mode).
pub const MODE_DEMAND: u8 = 0x00;
pub const MODE_SINGLE: u8 = 0x40;
pub const MODE_BLOCK: u8 = 0x80;
pub const MODE_CASCADE: u8 = 0xC0;

/// What a channel does with memory in each cycle (mode bits 3:2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransferType {
    /// Pseudo transfer: addresses and count advance, memory and I/O strobes
    /// stay inactive.
    Verify,
    /// I/O device to memory (MEMW + IOR).
    Write,
    /// Memory to I/O device (MEMR + IOW).
    Read,
    /// Bits 11, which the datasheet calls illegal; treated as verify.
    Illegal,
}

/// How a channel requests the bus (mode bits 7:6).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestMode {
    Demand,
    Single,
    Block,
    /// The channel passes the bus to another master (DMA2 channel 4 on the
    /// AT); it never transfers data itself.
    Cascade,
}

/// A decoded mode register.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChannelMode {
    pub transfer: TransferType,
    pub autoinit: bool,
    pub decrement: bool,
    pub request: RequestMode,
}

impl ChannelMode {
    /// Decode a mode register value (bits 1:0, the channel select, are
    /// ignored).
    pub fn from_register(mode: u8) -> ChannelMode {
        ChannelMode {
            transfer: match (mode >> 2) & 3 {
                0 => TransferType::Verify,
                1 => TransferType::Write,
                2 => TransferType::Read,
                _ => TransferType::Illegal,
            },
            autoinit: mode & MODE_AUTOINIT != 0,
            decrement: mode & MODE_DECREMENT != 0,
            request: match mode >> 6 {
                0 => RequestMode::Demand,
                1 => RequestMode::Single,
                2 => RequestMode::Block,
                _ => RequestMode::Cascade,
            },
        }
    }
}

/// The data of one [`Dma::transfer`] call, named from the device's side.
#[derive(Debug)]
pub enum DmaData<'a> {
    /// Device to memory (a channel in write mode): the device offers these
    /// bytes.
    ToMemory(&'a [u8]),
    /// Memory to device (a channel in read mode): the controller fills this
    /// buffer.
    FromMemory(&'a mut [u8]),
}

/// What one [`Dma::transfer`] call did.
#[must_use]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DmaResult {
    /// Bytes moved (the device's buffer prefix that was consumed or
    /// filled); always even on a 16-bit channel.
    pub bytes: usize,
    /// The transfer ended at terminal count (the TC/EOP pulse a device
    /// such as the floppy controller sees).
    pub terminal_count: bool,
}

/// Registers of one channel.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelState {
    pub base_address: u16,
    pub base_count: u16,
    pub current_address: u16,
    pub current_count: u16,
    /// Mode register bits 7:2 (bits 1:0 only select the channel on write).
    pub mode: u8,
}

/// Registers of one 8237A.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ControllerState {
    pub channels: [ChannelState; 4],
    pub command: u8,
    /// Status bits 3:0: channel reached terminal count since the last
    /// status read.
    pub tc: u8,
    /// Request register bits 3:0 (software requests).
    pub request: u8,
    /// DREQ inputs as devices drive them, bits 3:0.
    pub dreq: u8,
    /// Mask register bits 3:0, 1 = masked.
    pub mask: u8,
    pub temporary: u8,
    /// Byte pointer flip-flop: the next address/count access is the high
    /// byte.
    pub high_byte: bool,
}

impl ControllerState {
    /// Power-on: the datasheet leaves address, count and mode undefined
    /// (zero here); RESET does what Master Clear does.
    fn power_on() -> ControllerState {
        let mut c = ControllerState {
            channels: Default::default(),
            command: 0,
            tc: 0,
            request: 0,
            dreq: 0,
            mask: 0,
            temporary: 0,
            high_byte: false,
        };
        c.master_clear();
        c
    }

    /// "Master Clear: ... the same effect as the hardware Reset. The
    /// Command, Status, Request, Temporary, and Internal First/Last
    /// Flip-Flop registers are cleared and the Mask register is set."
    fn master_clear(&mut self) {
        self.command = 0;
        self.tc = 0;
        self.request = 0;
        self.temporary = 0;
        self.high_byte = false;
        self.mask = 0xF;
    }

    fn enabled(&self) -> bool {
        self.command & CMD_DISABLE == 0
    }

    /// Status register: bits 7:4 a channel requests service (DREQ or a
    /// software request), bits 3:0 terminal count reached.
    fn status(&self) -> u8 {
        ((self.dreq | self.request) & 0xF) << 4 | (self.tc & 0xF)
    }

    /// Address and count registers are 16 bits reached a byte at a time;
    /// the flip-flop picks the byte and toggles on every access (Figure 7).
    fn toggle(&mut self) -> bool {
        let high = self.high_byte;
        self.high_byte = !high;
        high
    }

    fn read(&mut self, reg: u8) -> u8 {
        match reg {
            0..=7 => {
                let ch = &self.channels[(reg >> 1) as usize];
                let value = if reg & 1 == 0 { ch.current_address } else { ch.current_count };
                if self.toggle() {
                    (value >> 8) as u8
                } else {
                    value as u8
                }
            }
            // "These bits are cleared upon Reset and on each Status Read."
            REG_STATUS_COMMAND => {
                let s = self.status();
                self.tc = 0;
                s
            }
            REG_MASTER_CLEAR_TEMP => self.temporary,
            // The SIO/PIIX write-all-mask register reads back (bits 7:4 are
            // 0); on a discrete 8237A this read is illegal.
            REG_ALL_MASK => self.mask & 0xF,
            // Figure 6 lists the remaining reads as illegal: nothing drives
            // the bus.
            _ => 0xFF,
        }
    }

    fn write(&mut self, reg: u8, value: u8) {
        match reg {
            // Writes load the base and the current register together.
            0..=7 => {
                let high = self.toggle();
                let ch = &mut self.channels[(reg >> 1) as usize];
                let (base, current) = if reg & 1 == 0 {
                    (&mut ch.base_address, &mut ch.current_address)
                } else {
                    (&mut ch.base_count, &mut ch.current_count)
                };
                *base = set_byte(*base, high, value);
                *current = set_byte(*current, high, value);
            }
            REG_STATUS_COMMAND => self.command = value,
            // Request and single mask: bits 1:0 select the channel, bit 2
            // sets (1) or resets (0) its bit.
            REG_REQUEST => set_bit(&mut self.request, value),
            REG_SINGLE_MASK => set_bit(&mut self.mask, value),
            REG_MODE => self.channels[(value & 3) as usize].mode = value & !3,
            REG_CLEAR_FLIP_FLOP => self.high_byte = false,
            REG_MASTER_CLEAR_TEMP => self.master_clear(),
            REG_CLEAR_MASK => self.mask = 0,
            REG_ALL_MASK => self.mask = value & 0xF,
            _ => {}
        }
    }

    /// Terminal count on channel `i`: the status bit is set and the
    /// software request cleared; with autoinitialize the current registers
    /// reload from the base registers and the channel stays unmasked,
    /// otherwise its mask bit is set ("Mask Register", "Autoinitialize").
    fn terminal_count(&mut self, i: usize, autoinit: bool) {
        let bit = 1 << i;
        self.tc |= bit;
        self.request &= !bit;
        if autoinit {
            let ch = &mut self.channels[i];
            ch.current_address = ch.base_address;
            ch.current_count = ch.base_count;
        } else {
            self.mask |= bit;
        }
    }

    /// Bring restored values into range.
    fn sanitize(&mut self) {
        self.tc &= 0xF;
        self.request &= 0xF;
        self.dreq &= 0xF;
        self.mask &= 0xF;
        for ch in &mut self.channels {
            ch.mode &= !3;
        }
    }
}

fn set_byte(word: u16, high: bool, value: u8) -> u16 {
    if high {
        (word & 0x00FF) | (value as u16) << 8
    } else {
        (word & 0xFF00) | value as u16
    }
}

fn set_bit(bits: &mut u8, value: u8) {
    let bit = 1 << (value & 3);
    if value & 4 != 0 {
        *bits |= bit;
    } else {
        *bits &= !bit;
    }
}

/// Controller index and channel index within it, for channels 0-7.
fn split(channel: u8) -> Option<(usize, usize)> {
    (channel < 8).then_some(((channel >> 2) as usize, (channel & 3) as usize))
}

/// Page-register latch index (port - 0x80) of a channel.
fn page_index(channel: u8) -> usize {
    (PAGE_PORT[(channel & 7) as usize] - POST_PORT) as usize
}

/// The physical address of a cycle: 8-bit channels put the page on A23-A16
/// and the address on A15-A0; 16-bit channels put page bits 7:1 on A23-A17
/// and the address on A16-A1, with A0 = 0.
fn physical(wide: bool, page: u8, address: u16) -> PhysAddr {
    if wide {
        PhysAddr(((page as u32 & 0xFE) << 16) | (address as u32) << 1)
    } else {
        PhysAddr((page as u32) << 16 | address as u32)
    }
}

/// Snapshot of both controllers and the page registers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DmaState {
    /// DMA1 (channels 0-3) and DMA2 (channels 4-7).
    pub controllers: [ControllerState; 2],
    /// The latches at 0x80-0x8F, index = port - 0x80.
    pub pages: [u8; 16],
}

/// The DMA subsystem of an AT: two 8237As and the page registers.
#[derive(Clone, Debug)]
pub struct Dma {
    s: DmaState,
}

impl Default for Dma {
    fn default() -> Self {
        Dma::new()
    }
}

/// What a port decodes to.
enum Target {
    Controller(usize, u8),
    Page(usize),
}

fn decode(port: u16) -> Option<Target> {
    match port {
        0x00..=0x1F => Some(Target::Controller(0, (port & 0xF) as u8)),
        0x80..=0x8F => Some(Target::Page((port - POST_PORT) as usize)),
        0xC0..=0xDF => Some(Target::Controller(1, ((port - 0xC0) >> 1) as u8)),
        _ => None,
    }
}

impl Dma {
    /// Power-on state: both controllers reset (all channels masked), page
    /// registers 0.
    pub fn new() -> Dma {
        Dma { s: DmaState { controllers: [ControllerState::power_on(), ControllerState::power_on()], pages: [0; 16] } }
    }

    /// The RESET line: both controllers as after Master Clear. The page
    /// latches have no reset input and keep their values.
    pub fn reset(&mut self) {
        self.s.controllers.iter_mut().for_each(ControllerState::master_clear);
    }

    pub fn save(&self) -> DmaState {
        self.s.clone()
    }

    pub fn restore(state: DmaState) -> Dma {
        let mut s = state;
        s.controllers.iter_mut().for_each(ControllerState::sanitize);
        Dma { s }
    }

    /// The last value written to port 0x80.
    pub fn post_code(&self) -> u8 {
        self.s.pages[0]
    }

    /// Page register of `channel` (0-7).
    pub fn page(&self, channel: u8) -> Option<u8> {
        split(channel).map(|_| self.s.pages[page_index(channel)])
    }

    /// The decoded mode register of `channel` (0-7).
    pub fn channel_mode(&self, channel: u8) -> Option<ChannelMode> {
        let (c, i) = split(channel)?;
        Some(ChannelMode::from_register(self.s.controllers[c].channels[i].mode))
    }

    /// Current address register of `channel` (words on channels 4-7).
    pub fn current_address(&self, channel: u8) -> Option<u16> {
        let (c, i) = split(channel)?;
        Some(self.s.controllers[c].channels[i].current_address)
    }

    /// Current word count register of `channel`: one less than the cycles
    /// left before terminal count.
    pub fn current_count(&self, channel: u8) -> Option<u16> {
        let (c, i) = split(channel)?;
        Some(self.s.controllers[c].channels[i].current_count)
    }

    /// Physical address of the next cycle on `channel`.
    pub fn physical_address(&self, channel: u8) -> Option<PhysAddr> {
        let (c, i) = split(channel)?;
        Some(physical(c == 1, self.s.pages[page_index(channel)], self.s.controllers[c].channels[i].current_address))
    }

    /// Bytes the channel moves before terminal count (2 per cycle on
    /// channels 4-7); 0 when it is not ready.
    pub fn bytes_until_tc(&self, channel: u8) -> usize {
        match split(channel) {
            Some((c, i)) if self.channel_ready(channel) => {
                (self.s.controllers[c].channels[i].current_count as usize + 1) << c
            }
            _ => 0,
        }
    }

    /// True when a transfer on `channel` would move data: the channel is
    /// unmasked (programmed and released by the guest), its controller is
    /// enabled, it is not in cascade mode, and for channels 0-3 the cascade
    /// path through DMA2 channel 4 is open as well.
    pub fn channel_ready(&self, channel: u8) -> bool {
        let Some((c, i)) = split(channel) else {
            return false;
        };
        let ctl = &self.s.controllers[c];
        let mode = ChannelMode::from_register(ctl.channels[i].mode);
        if channel == CASCADE_CHANNEL
            || !ctl.enabled()
            || ctl.mask & (1 << i) != 0
            || mode.request == RequestMode::Cascade
        {
            return false;
        }
        // DMA1's HRQ is DMA2's DREQ4: DMA1 only gets the bus through
        // channel 4 (SIO 3.2.6: "masking DMA channel 4 ... will
        // automatically mask DMA channels [3:0]").
        let dma2 = &self.s.controllers[1];
        c == 1 || (dma2.enabled() && dma2.mask & 1 == 0)
    }

    /// Drive the DREQ input of `channel`, as a device requesting service
    /// does; it shows in status bits 7:4. Transfers happen through
    /// [`Dma::transfer`] whatever the level.
    pub fn set_dreq(&mut self, channel: u8, active: bool) {
        if let Some((c, i)) = split(channel) {
            let ctl = &mut self.s.controllers[c];
            if active {
                ctl.dreq |= 1 << i;
            } else {
                ctl.dreq &= !(1 << i);
            }
        }
    }

    /// Run DMA cycles on `channel` for the device: one cycle per byte (per
    /// little-endian byte pair on channels 4-7) of `data`, stopping early at
    /// terminal count. A channel that is not [`Dma::channel_ready`] moves
    /// nothing.
    ///
    /// Each cycle follows the channel's programmed transfer type: a write
    /// channel stores [`DmaData::ToMemory`] bytes, a read channel loads
    /// [`DmaData::FromMemory`] bytes. Verify cycles (and cycles whose
    /// direction disagrees with the mode) advance address and count but
    /// leave memory alone; a `FromMemory` buffer then reads 0xFF, since
    /// nothing drives the data bus.
    pub fn transfer(
        &mut self,
        channel: u8,
        mut data: DmaData<'_>,
        mem: &mut GuestMemory,
        bus: &mut dyn Bus,
    ) -> DmaResult {
        if !self.channel_ready(channel) {
            return DmaResult::default();
        }
        let Some((c, i)) = split(channel) else {
            return DmaResult::default();
        };
        let wide = c == 1;
        let (width, size) = if wide { (2, AccessSize::Word) } else { (1, AccessSize::Byte) };
        let page = self.s.pages[page_index(channel)];
        let ctl = &mut self.s.controllers[c];
        let mode = ChannelMode::from_register(ctl.channels[i].mode);
        let cycles = match &data {
            DmaData::ToMemory(b) => b.len(),
            DmaData::FromMemory(b) => b.len(),
        } / width;
        let ch = &mut ctl.channels[i];
        let mut done = 0;
        let mut tc = false;
        while done < cycles && !tc {
            let addr = physical(wide, page, ch.current_address);
            let at = done * width;
            match (&mut data, mode.transfer) {
                (DmaData::ToMemory(b), TransferType::Write) => {
                    let v = if wide { u16::from_le_bytes([b[at], b[at + 1]]) as u32 } else { b[at] as u32 };
                    mem.write(addr, size, v, bus);
                }
                (DmaData::FromMemory(b), TransferType::Read) => {
                    let v = mem.read(addr, size, bus);
                    b[at..at + width].copy_from_slice(&v.to_le_bytes()[..width]);
                }
                (DmaData::FromMemory(b), _) => b[at..at + width].fill(0xFF),
                (DmaData::ToMemory(_), _) => {}
            }
            // The address register is 16 bits and the page latch does not
            // count, so a transfer wraps inside its 64 KiB (128 KiB) page.
            ch.current_address =
                if mode.decrement { ch.current_address.wrapping_sub(1) } else { ch.current_address.wrapping_add(1) };
            // "When the value in the register goes from zero to FFFFH, a TC
            // will be generated."
            ch.current_count = ch.current_count.wrapping_sub(1);
            tc = ch.current_count == 0xFFFF;
            done += 1;
        }
        if tc {
            ctl.terminal_count(i, mode.autoinit);
        }
        DmaResult { bytes: done * width, terminal_count: tc }
    }

    /// Device to memory: [`Dma::transfer`] with [`DmaData::ToMemory`].
    pub fn write_to_memory(&mut self, channel: u8, data: &[u8], mem: &mut GuestMemory, bus: &mut dyn Bus) -> DmaResult {
        self.transfer(channel, DmaData::ToMemory(data), mem, bus)
    }

    /// Memory to device: [`Dma::transfer`] with [`DmaData::FromMemory`].
    pub fn read_from_memory(
        &mut self,
        channel: u8,
        buf: &mut [u8],
        mem: &mut GuestMemory,
        bus: &mut dyn Bus,
    ) -> DmaResult {
        self.transfer(channel, DmaData::FromMemory(buf), mem, bus)
    }

    fn read_byte(&mut self, port: u16) -> u8 {
        match decode(port) {
            Some(Target::Controller(c, reg)) => self.s.controllers[c].read(reg),
            Some(Target::Page(p)) => self.s.pages[p],
            None => 0xFF,
        }
    }

    fn write_byte(&mut self, port: u16, value: u8) {
        match decode(port) {
            Some(Target::Controller(c, reg)) => self.s.controllers[c].write(reg, value),
            Some(Target::Page(p)) => self.s.pages[p] = value,
            None => {}
        }
    }
}

impl PortIo for Dma {
    /// Wider accesses are split into byte cycles on consecutive ports, as
    /// the ISA bus does for an 8-bit device.
    fn io_read(&mut self, port: u16, size: AccessSize, _cx: &mut DevCtx) -> u32 {
        (0..size.bytes()).fold(0u32, |acc, i| acc | (self.read_byte(port.wrapping_add(i as u16)) as u32) << (8 * i))
    }

    fn io_write(&mut self, port: u16, size: AccessSize, value: u32, _cx: &mut DevCtx) {
        for i in 0..size.bytes() {
            self.write_byte(port.wrapping_add(i as u16), (value >> (8 * i)) as u8);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{IrqLines, Nanos};
    use ferrite_core::NullBus;

    const RAM: usize = 4 << 20;

    struct Bench {
        dma: Dma,
        mem: GuestMemory,
        lines: IrqLines,
    }

    impl Bench {
        /// Power-on DMA with the cascade set up as every AT BIOS does it:
        /// channel 4 in cascade mode and unmasked.
        fn new() -> Bench {
            let mut b = Bench { dma: Dma::new(), mem: GuestMemory::new(RAM).unwrap(), lines: IrqLines::default() };
            b.out(0xD6, MODE_CASCADE);
            b.out(0xD4, 0x00);
            b
        }

        fn out(&mut self, port: u16, value: u8) {
            let mut cx = DevCtx { now: Nanos(0), irq: &mut self.lines };
            self.dma.io_write(port, AccessSize::Byte, value as u32, &mut cx);
        }

        fn inp(&mut self, port: u16) -> u8 {
            let mut cx = DevCtx { now: Nanos(0), irq: &mut self.lines };
            self.dma.io_read(port, AccessSize::Byte, &mut cx) as u8
        }

        /// Two byte reads through the flip-flop, low byte first.
        fn read16(&mut self, port: u16) -> u16 {
            let lo = self.inp(port) as u16;
            lo | (self.inp(port) as u16) << 8
        }

        /// Program `channel` the way the BIOS does: mask, clear the
        /// flip-flop, mode, address, page, count (cycles - 1), unmask.
        fn program(&mut self, channel: u8, mode: u8, page: u8, address: u16, count: u16) {
            let (base, stride) = if channel < 4 { (0x00u16, 1u16) } else { (0xC0, 2) };
            let i = (channel & 3) as u16;
            let reg = |r: u16| base + r * stride;
            self.out(reg(0xA), 0x04 | i as u8);
            self.out(reg(0xC), 0);
            self.out(reg(0xB), mode | i as u8);
            self.out(reg(2 * i), address as u8);
            self.out(reg(2 * i), (address >> 8) as u8);
            self.out(PAGE_PORT[channel as usize], page);
            self.out(reg(2 * i + 1), count as u8);
            self.out(reg(2 * i + 1), (count >> 8) as u8);
            self.out(reg(0xA), i as u8);
        }

        fn dev_writes(&mut self, channel: u8, data: &[u8]) -> DmaResult {
            self.dma.write_to_memory(channel, data, &mut self.mem, &mut NullBus)
        }

        fn dev_reads(&mut self, channel: u8, buf: &mut [u8]) -> DmaResult {
            self.dma.read_from_memory(channel, buf, &mut self.mem, &mut NullBus)
        }

        fn peek(&self, addr: u32) -> u8 {
            self.mem.peek(PhysAddr(addr))
        }
    }

    fn pattern(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 7 + 3) as u8).collect()
    }

    #[test]
    fn bios_floppy_read_programming_reads_back_through_the_flip_flop() {
        let mut b = Bench::new();
        // INT 13h AH=02h, one sector to 1000:7C00 = 0x17C00, in the order
        // an AT BIOS writes the ports.
        b.out(0x0A, 0x06); // mask channel 2
        b.out(0x0C, 0x00); // clear the byte pointer flip-flop
        b.out(0x0B, 0x46); // single mode, write to memory, channel 2
        b.out(0x04, 0x00); // address low, then high
        b.out(0x04, 0x7C);
        b.out(0x81, 0x01); // page
        b.out(0x05, 0xFF); // count = 512 - 1, low then high
        b.out(0x05, 0x01);
        b.out(0x0A, 0x02); // unmask channel 2
        assert_eq!(b.dma.page(2), Some(0x01));
        assert_eq!(b.inp(0x81), 0x01);
        b.out(0x0C, 0);
        assert_eq!(b.read16(0x04), 0x7C00);
        assert_eq!(b.read16(0x05), 511);
        let mode = b.dma.channel_mode(2).unwrap();
        assert_eq!(mode.transfer, TransferType::Write);
        assert_eq!(mode.request, RequestMode::Single);
        assert!(!mode.autoinit && !mode.decrement);
        assert_eq!(b.dma.save().controllers[0].channels[2].mode, 0x44);
        assert!(b.dma.channel_ready(2));
        assert_eq!(b.dma.physical_address(2), Some(PhysAddr(0x17C00)));
        assert_eq!(b.dma.bytes_until_tc(2), 512);
    }

    #[test]
    fn device_to_memory_sector_lands_at_page_and_address_and_sets_tc() {
        let mut b = Bench::new();
        b.program(2, MODE_SINGLE | MODE_WRITE, 0x01, 0x7C00, 511);
        let sector = pattern(512);
        let r = b.dev_writes(2, &sector);
        assert_eq!(r, DmaResult { bytes: 512, terminal_count: true });
        assert!((0..512).all(|i| b.peek(0x17C00 + i) == sector[i as usize]));
        assert_eq!(b.peek(0x17C00 + 512), 0);
        // TC in the status register, cleared by the read.
        assert_eq!(b.inp(0x08) & 0x0F, 0x04);
        assert_eq!(b.inp(0x08) & 0x0F, 0x00);
        // Without autoinitialize the channel masks itself at TC; address
        // is one past the block and the count has wrapped to FFFF.
        assert!(!b.dma.channel_ready(2));
        assert_eq!(b.dma.current_address(2), Some(0x7E00));
        assert_eq!(b.dma.current_count(2), Some(0xFFFF));
        assert_eq!(b.dev_writes(2, &sector), DmaResult::default());
    }

    #[test]
    fn transfers_split_across_calls_and_stop_at_terminal_count() {
        let mut b = Bench::new();
        b.program(2, MODE_SINGLE | MODE_WRITE, 0x00, 0x1000, 99);
        let data = pattern(300);
        let first = b.dev_writes(2, &data[..60]);
        assert_eq!(first, DmaResult { bytes: 60, terminal_count: false });
        assert_eq!(b.inp(0x08) & 0x04, 0);
        let rest = b.dev_writes(2, &data[60..]);
        assert_eq!(rest, DmaResult { bytes: 40, terminal_count: true });
        assert!((0..100).all(|i| b.peek(0x1000 + i) == data[i as usize]));
        assert_eq!(b.peek(0x1000 + 100), 0);
    }

    #[test]
    fn memory_to_device_reads_guest_memory() {
        let mut b = Bench::new();
        let data = pattern(512);
        b.mem.load(PhysAddr(0x23400), &data);
        b.program(2, MODE_SINGLE | MODE_READ, 0x02, 0x3400, 511);
        let mut buf = vec![0u8; 512];
        let r = b.dev_reads(2, &mut buf);
        assert_eq!(r, DmaResult { bytes: 512, terminal_count: true });
        assert_eq!(buf, data);
        assert_eq!(b.inp(0x08) & 0x0F, 0x04);
    }

    #[test]
    fn sixteen_bit_channel_counts_words_and_shifts_the_address() {
        let mut b = Bench::new();
        // Page 0x13: bit 0 is ignored, so the 128 KiB page is 0x120000;
        // word address 0x8000 is byte offset 0x10000.
        b.program(5, MODE_SINGLE | MODE_WRITE, 0x13, 0x8000, 3);
        assert_eq!(b.dma.physical_address(5), Some(PhysAddr(0x130000)));
        assert_eq!(b.dma.bytes_until_tc(5), 8);
        let data = pattern(10);
        let r = b.dev_writes(5, &data);
        assert_eq!(r, DmaResult { bytes: 8, terminal_count: true });
        assert!((0..8).all(|i| b.peek(0x130000 + i) == data[i as usize]));
        assert_eq!(b.peek(0x130008), 0);
        assert_eq!(b.dma.current_address(5), Some(0x8004));
        // DMA2's status register is at 0xD0; channel 5 is bit 1.
        assert_eq!(b.inp(0xD0) & 0x0F, 0x02);
        // DMA2 registers sit on even ports: 0xC4 is channel 5's address.
        b.out(0xD8, 0);
        assert_eq!(b.read16(0xC4), 0x8004);
        assert_eq!(b.read16(0xC6), 0xFFFF);
    }

    #[test]
    fn sixteen_bit_transfer_wraps_inside_its_128k_page() {
        let mut b = Bench::new();
        b.program(6, MODE_SINGLE | MODE_WRITE, 0x02, 0xFFFF, 1);
        let r = b.dev_writes(6, &[0x11, 0x22, 0x33, 0x44]);
        assert_eq!(r.bytes, 4);
        assert_eq!((b.peek(0x3FFFE), b.peek(0x3FFFF)), (0x11, 0x22));
        assert_eq!((b.peek(0x20000), b.peek(0x20001)), (0x33, 0x44));
        assert_eq!(b.peek(0x40000), 0);
    }

    #[test]
    fn sixteen_bit_channel_ignores_an_odd_trailing_byte() {
        let mut b = Bench::new();
        b.program(7, MODE_SINGLE | MODE_READ, 0x00, 0x100, 9);
        let mut buf = [0u8; 5];
        assert_eq!(b.dev_reads(7, &mut buf).bytes, 4);
    }

    #[test]
    fn eight_bit_transfer_wraps_inside_its_64k_page() {
        let mut b = Bench::new();
        b.program(1, MODE_BLOCK | MODE_WRITE, 0x02, 0xFFFF, 1);
        let r = b.dev_writes(1, &[0xAA, 0xBB]);
        assert_eq!(r, DmaResult { bytes: 2, terminal_count: true });
        assert_eq!(b.peek(0x2FFFF), 0xAA);
        assert_eq!(b.peek(0x20000), 0xBB);
        assert_eq!(b.peek(0x30000), 0);
    }

    #[test]
    fn decrement_mode_fills_memory_downwards() {
        let mut b = Bench::new();
        b.program(3, MODE_SINGLE | MODE_WRITE | MODE_DECREMENT, 0x00, 0x2003, 3);
        let r = b.dev_writes(3, &[1, 2, 3, 4]);
        assert!(r.terminal_count);
        assert_eq!([b.peek(0x2003), b.peek(0x2002), b.peek(0x2001), b.peek(0x2000)], [1, 2, 3, 4]);
        assert_eq!(b.dma.current_address(3), Some(0x1FFF));
    }

    #[test]
    fn autoinit_reloads_and_keeps_the_channel_unmasked() {
        let mut b = Bench::new();
        b.mem.load(PhysAddr(0x5000), &[10, 20, 30, 40]);
        b.program(1, MODE_SINGLE | MODE_READ | MODE_AUTOINIT, 0x00, 0x5000, 3);
        let mut buf = [0u8; 6];
        let r = b.dev_reads(1, &mut buf);
        assert_eq!(r, DmaResult { bytes: 4, terminal_count: true });
        assert_eq!(&buf[..4], &[10, 20, 30, 40]);
        assert!(b.dma.channel_ready(1));
        assert_eq!(b.dma.current_address(1), Some(0x5000));
        assert_eq!(b.dma.current_count(1), Some(3));
        assert_eq!(b.inp(0x08) & 0x0F, 0x02);
        let r = b.dev_reads(1, &mut buf[..2]);
        assert_eq!(r, DmaResult { bytes: 2, terminal_count: false });
        assert_eq!(&buf[..2], &[10, 20]);
    }

    #[test]
    fn verify_mode_advances_without_touching_memory() {
        let mut b = Bench::new();
        b.mem.load(PhysAddr(0x6000), &[9; 16]);
        b.program(2, MODE_SINGLE | MODE_VERIFY, 0x00, 0x6000, 15);
        let r = b.dev_writes(2, &[0x55; 16]);
        assert_eq!(r, DmaResult { bytes: 16, terminal_count: true });
        assert!((0..16).all(|i| b.peek(0x6000 + i) == 9));
        assert_eq!(b.dma.current_address(2), Some(0x6010));
        // A device reading through a verify channel gets nothing driven.
        b.program(2, MODE_SINGLE | MODE_VERIFY, 0x00, 0x6000, 15);
        let mut buf = [0u8; 4];
        assert_eq!(b.dev_reads(2, &mut buf).bytes, 4);
        assert_eq!(buf, [0xFF; 4]);
    }

    #[test]
    fn direction_mismatch_runs_cycles_but_leaves_memory_alone() {
        let mut b = Bench::new();
        b.program(2, MODE_SINGLE | MODE_READ, 0x00, 0x6000, 3);
        let r = b.dev_writes(2, &[1, 2, 3, 4]);
        assert!(r.terminal_count);
        assert!((0..4).all(|i| b.peek(0x6000 + i) == 0));
    }

    #[test]
    fn single_mask_clear_mask_all_mask_and_master_clear() {
        let mut b = Bench::new();
        b.program(2, MODE_SINGLE | MODE_WRITE, 0x00, 0x1000, 0xFF);
        assert!(b.dma.channel_ready(2));
        // Single mask set, then reset.
        b.out(0x0A, 0x06);
        assert!(!b.dma.channel_ready(2));
        assert_eq!(b.dev_writes(2, &[1, 2, 3]), DmaResult::default());
        assert_eq!(b.peek(0x1000), 0);
        b.out(0x0A, 0x02);
        assert!(b.dma.channel_ready(2));
        // Write all mask bits, read back (SIO/PIIX behaviour).
        b.out(0x0F, 0x0F);
        assert_eq!(b.inp(0x0F), 0x0F);
        assert!(!b.dma.channel_ready(2));
        b.out(0x0F, 0x0B);
        assert!(b.dma.channel_ready(2));
        assert_eq!(b.inp(0x0F), 0x0B);
        // Clear mask register.
        b.out(0x0E, 0);
        assert_eq!(b.inp(0x0F), 0x00);
        // Master clear: all masked, command, request and flip-flop cleared,
        // address registers kept.
        b.out(0x08, 0x10);
        b.out(0x09, 0x05);
        b.inp(0x04); // flip-flop now at the high byte
        b.out(0x0D, 0);
        assert_eq!(b.inp(0x0F), 0x0F);
        assert_eq!(b.inp(0x08), 0x00);
        assert_eq!(b.read16(0x04), 0x1000);
        assert_eq!(b.dma.save().controllers[0].command, 0);
        assert!(!b.dma.channel_ready(2));
        // DMA2 mirrors at 0xD4 (single), 0xDC (clear), 0xDE (all), 0xDA.
        b.out(0xDE, 0x0E);
        assert_eq!(b.inp(0xDE), 0x0E);
        b.out(0xDC, 0);
        assert_eq!(b.inp(0xDE), 0x00);
        b.out(0xD4, 0x05);
        assert_eq!(b.inp(0xDE), 0x02);
        b.out(0xDA, 0);
        assert_eq!(b.inp(0xDE), 0x0F);
    }

    #[test]
    fn channel_4_mask_and_controller_disable_gate_the_cascade() {
        let mut b = Bench::new();
        b.program(2, MODE_SINGLE | MODE_WRITE, 0x00, 0x1000, 0xFF);
        b.program(5, MODE_SINGLE | MODE_WRITE, 0x00, 0x1000, 0xFF);
        b.out(0xD4, 0x04);
        assert!(!b.dma.channel_ready(2));
        assert!(b.dma.channel_ready(5));
        b.out(0xD4, 0x00);
        assert!(b.dma.channel_ready(2));
        // Disabling DMA2 stops everything; disabling DMA1 only 0-3.
        b.out(0xD0, CMD_DISABLE);
        assert!(!b.dma.channel_ready(2) && !b.dma.channel_ready(5));
        b.out(0xD0, 0);
        b.out(0x08, CMD_DISABLE);
        assert!(!b.dma.channel_ready(2) && b.dma.channel_ready(5));
        assert_eq!(b.dev_writes(2, &[1]), DmaResult::default());
        // The cascade channel itself never transfers, nor does a channel
        // in cascade mode.
        assert!(!b.dma.channel_ready(CASCADE_CHANNEL));
        b.out(0xD6, MODE_CASCADE | 1);
        assert!(!b.dma.channel_ready(5));
        assert!(!b.dma.channel_ready(8));
        assert_eq!(b.dev_writes(9, &[1]), DmaResult::default());
    }

    #[test]
    fn power_on_masks_every_channel() {
        let dma = Dma::new();
        assert!((0..8).all(|c| !dma.channel_ready(c)));
    }

    #[test]
    fn request_register_and_dreq_show_in_status() {
        let mut b = Bench::new();
        b.program(1, MODE_BLOCK | MODE_WRITE, 0x00, 0x3000, 1);
        b.out(0x09, 0x04 | 1);
        assert_eq!(b.inp(0x08), 0x20);
        b.out(0x09, 1);
        assert_eq!(b.inp(0x08), 0x00);
        b.dma.set_dreq(3, true);
        b.dma.set_dreq(6, true);
        assert_eq!(b.inp(0x08), 0x80);
        assert_eq!(b.inp(0xD0), 0x40);
        b.dma.set_dreq(3, false);
        assert_eq!(b.inp(0x08), 0x00);
        // Terminal count clears the software request.
        b.out(0x09, 0x04 | 1);
        assert!(b.dev_writes(1, &[7, 8]).terminal_count);
        assert_eq!(b.inp(0x08), 0x02);
    }

    #[test]
    fn page_latches_and_post_code_read_back() {
        let mut b = Bench::new();
        for port in PAGE_PORTS {
            b.out(port, (port as u8) ^ 0x5A);
        }
        for port in PAGE_PORTS {
            assert_eq!(b.inp(port), (port as u8) ^ 0x5A);
        }
        b.out(POST_PORT, 0x3C);
        assert_eq!(b.inp(POST_PORT), 0x3C);
        assert_eq!(b.dma.post_code(), 0x3C);
        // Scratch latches don't change any channel's page.
        let pages: Vec<_> = (0..8).map(|c| b.dma.page(c)).collect();
        for port in [0x84, 0x85, 0x86, 0x88, 0x8C, 0x8D, 0x8E] {
            b.out(port, 0);
        }
        assert_eq!((0..8).map(|c| b.dma.page(c)).collect::<Vec<_>>(), pages);
        assert_eq!(b.dma.page(0), Some(0x87 ^ 0x5A));
        assert_eq!(b.dma.page(5), Some(0x8B ^ 0x5A));
        assert_eq!(b.dma.page(8), None);
    }

    #[test]
    fn aliases_and_word_accesses() {
        let mut b = Bench::new();
        // DMA1 at 0x10-0x1F mirrors 0x00-0x0F; DMA2's odd ports mirror the
        // even ones, so a word write to 0xC4 fills channel 5's address.
        b.out(0x1C, 0);
        b.out(0x12, 0x34);
        b.out(0x12, 0x12);
        assert_eq!(b.read16(0x02), 0x1234);
        let mut cx = DevCtx { now: Nanos(0), irq: &mut b.lines };
        b.dma.io_write(0xD8, AccessSize::Byte, 0, &mut cx);
        b.dma.io_write(0xC4, AccessSize::Word, 0xBEEF, &mut cx);
        assert_eq!(b.dma.current_address(5), Some(0xBEEF));
        assert_eq!(b.dma.io_read(0xC4, AccessSize::Word, &mut cx), 0xBEEF);
        assert_eq!(b.dma.io_read(0x300, AccessSize::Byte, &mut cx), 0xFF);
    }

    #[test]
    fn dma_reaches_mmio_through_the_bus() {
        #[derive(Default)]
        struct Recorder {
            writes: Vec<(u32, u32)>,
        }
        impl Bus for Recorder {
            fn io_read(&mut self, _port: u16, size: AccessSize) -> u32 {
                size.all_ones()
            }
            fn io_write(&mut self, _port: u16, _size: AccessSize, _value: u32) {}
            fn mmio_read(&mut self, addr: PhysAddr, _size: AccessSize) -> u32 {
                addr.0 & 0xFF
            }
            fn mmio_write(&mut self, addr: PhysAddr, _size: AccessSize, value: u32) {
                self.writes.push((addr.0, value));
            }
        }
        let mut b = Bench::new();
        b.mem.map_mmio(PhysAddr(0xA0000), 0x20000).unwrap();
        let mut bus = Recorder::default();
        b.program(2, MODE_SINGLE | MODE_WRITE, 0x0A, 0x0010, 1);
        let r = b.dma.write_to_memory(2, &[0x12, 0x34], &mut b.mem, &mut bus);
        assert!(r.terminal_count);
        assert_eq!(bus.writes, [(0xA0010, 0x12), (0xA0011, 0x34)]);
        b.program(5, MODE_SINGLE | MODE_READ, 0x0A, 0x0040, 0);
        let mut buf = [0u8; 2];
        let r = b.dma.read_from_memory(5, &mut buf, &mut b.mem, &mut bus);
        assert_eq!(r.bytes, 2);
        assert_eq!(buf, [0x80, 0x00]);
    }

    #[test]
    fn dma_write_into_a_code_page_queues_an_invalidation() {
        let mut b = Bench::new();
        b.mem.mark_code(PhysAddr(0x7000));
        b.mem.mark_code(PhysAddr(0x9000));
        b.program(2, MODE_SINGLE | MODE_WRITE, 0x00, 0x7C00, 511);
        assert!(b.dev_writes(2, &pattern(512)).terminal_count);
        assert_eq!(b.mem.take_invalidated(), vec![7]);
        // Reading code out by DMA invalidates nothing.
        b.program(2, MODE_SINGLE | MODE_READ, 0x00, 0x9000, 15);
        let mut buf = [0u8; 16];
        let _ = b.dev_reads(2, &mut buf);
        assert!(!b.mem.has_invalidated());
    }

    #[test]
    fn snapshot_round_trip_keeps_programming_and_flip_flop() {
        let mut b = Bench::new();
        b.program(2, MODE_SINGLE | MODE_WRITE | MODE_AUTOINIT, 0x01, 0x2000, 15);
        b.program(5, MODE_SINGLE | MODE_READ, 0x04, 0x0100, 7);
        let _ = b.dev_writes(2, &[1, 2, 3]);
        b.dma.set_dreq(2, true);
        b.out(POST_PORT, 0x42);
        b.out(0x0C, 0);
        b.out(0x06, 0x55); // half of a two-byte write
        let state = b.dma.save();
        let mut other = Bench { dma: Dma::restore(state.clone()), mem: GuestMemory::new(RAM).unwrap(), lines: b.lines };
        assert_eq!(other.dma.save(), state);
        for bench in [&mut b, &mut other] {
            bench.out(0x06, 0x66);
            let r = bench.dev_writes(2, &[4; 20]);
            assert_eq!(r, DmaResult { bytes: 13, terminal_count: true });
        }
        assert_eq!(b.read16(0x06), other.read16(0x06));
        assert_eq!(b.inp(0x08), other.inp(0x08));
        assert_eq!(b.dma.save(), other.dma.save());
    }

    #[test]
    fn restore_sanitizes_out_of_range_fields() {
        let mut state = Dma::new().save();
        state.controllers[0].mask = 0xF0;
        state.controllers[1].tc = 0xFF;
        state.controllers[1].channels[1].mode = 0xFF;
        let dma = Dma::restore(state);
        let s = dma.save();
        assert_eq!(s.controllers[0].mask, 0);
        assert_eq!(s.controllers[1].tc, 0x0F);
        assert_eq!(s.controllers[1].channels[1].mode, 0xFC);
    }

    #[test]
    fn state_is_serde_serializable() {
        fn assert_serde<T: Serialize + for<'de> Deserialize<'de>>() {}
        assert_serde::<DmaState>();
    }

    #[test]
    fn garbage_on_every_port_and_transfer_never_panics() {
        let mut b = Bench::new();
        let mut x: u64 = 0x2545_F491_4F6C_DD1D;
        let ports: Vec<u16> = (0x00..=0x1F).chain(0x80..=0x8F).chain(0xC0..=0xDF).chain([0x20, 0xFFFF]).collect();
        let sizes = [AccessSize::Byte, AccessSize::Word, AccessSize::Dword];
        for _ in 0..50_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let port = ports[(x % ports.len() as u64) as usize];
            let size = sizes[((x >> 8) % 3) as usize];
            let channel = ((x >> 12) % 10) as u8;
            let len = ((x >> 20) % 700) as usize;
            match (x >> 32) % 6 {
                0 => {
                    let mut cx = DevCtx { now: Nanos(0), irq: &mut b.lines };
                    b.dma.io_read(port, size, &mut cx);
                }
                1 => {
                    let data = vec![(x >> 40) as u8; len];
                    let r = b.dev_writes(channel, &data);
                    assert!(r.bytes <= len);
                }
                2 => {
                    let mut buf = vec![0u8; len];
                    let r = b.dev_reads(channel, &mut buf);
                    assert!(r.bytes <= len);
                }
                3 => b.dma.set_dreq(channel, x & 1 != 0),
                _ => {
                    let mut cx = DevCtx { now: Nanos(0), irq: &mut b.lines };
                    b.dma.io_write(port, size, (x >> 24) as u32, &mut cx);
                }
            }
        }
        let restored = Dma::restore(b.dma.save());
        assert_eq!(restored.save(), b.dma.save());
        for c in 0..=255 {
            restored.channel_ready(c);
            restored.bytes_until_tc(c);
            restored.physical_address(c);
        }
    }
}
