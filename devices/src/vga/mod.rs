//! The VGA adapter at register level: sequencer, graphics controller,
//! CRT controller, attribute controller, DAC and the 256 KiB of video
//! memory in four planes, reached through ports 0x3B4/0x3B5/0x3BA (mono
//! addressing) or 0x3D4/0x3D5/0x3DA (colour addressing) and 0x3C0-0x3CF,
//! and through the memory window at 0xA0000-0xBFFFF.
//!
//! What a guest can program, following the IBM VGA register descriptions
//! (register names as in IBM's "VGA Technical Reference"):
//! - CPU reads and writes in every addressing mode (planar, odd/even,
//!   chain-4), read modes 0 and 1 (colour compare with don't-care), write
//!   modes 0-3 with data rotate, set/reset and enable set/reset, the four
//!   logical operations on the latches, the bit mask and the map mask.
//! - The memory map select of GR6 (128 KiB at A0000, 64 KiB at A0000,
//!   32 KiB at B0000 or B8000) and the RAM enable bit of the miscellaneous
//!   output register.
//! - Display (see [`render`]): text with fonts in plane 2 (two character
//!   maps, 8 or 9 dots, line-graphics column, blink, cursor, underline),
//!   planar 16-colour, CGA-style 2-bit interleaved and 256-colour pixels,
//!   byte/word/doubleword address modes, the CGA/Hercules row-scan address
//!   substitution, start address, offset, preset row scan, byte and pixel
//!   panning, line compare (split screen), double scan, the attribute
//!   palette, colour plane enable and colour select, the PEL mask and the
//!   DAC.
//! - Input status 1: vertical retrace and display-disable bits follow the
//!   programmed CRTC timing and dot clock in virtual time.
//!
//! Not modelled: the vertical retrace interrupt (CR11 bits 4-5, IRQ2), the
//! CRTC count-by-two/-four bits, light pen registers.
//!
//! Storage: one `u32` per plane offset holds the four plane bytes (byte n =
//! plane n), so the 32-bit latch loads in one read and the write modes work
//! on all planes at once.

mod render;
#[cfg(test)]
mod tests;
pub mod vbe;

pub use render::Frame;
pub use vbe::{Dispi, DispiEffect};

use crate::{AccessSize, DevCtx, Nanos, PortIo};

/// Bytes per plane.
pub const PLANE_BYTES: usize = 0x1_0000;
/// Start of the legacy memory window.
pub const WINDOW_BASE: u32 = 0xA_0000;
/// Length of the legacy memory window.
pub const WINDOW_LEN: u32 = 0x2_0000;

/// Granularity of display dirty tracking, in plane offsets.
const DIRTY_SHIFT: u32 = 7;
const DIRTY_WORDS: usize = (PLANE_BYTES >> DIRTY_SHIFT) / 64;

// Sequencer registers.
const SR_CLOCKING: usize = 1;
const SR_MAP_MASK: usize = 2;
const SR_CHAR_MAP: usize = 3;
const SR_MEM_MODE: usize = 4;
// Graphics controller registers.
const GR_SET_RESET: usize = 0;
const GR_ENABLE_SR: usize = 1;
const GR_COLOR_CMP: usize = 2;
const GR_ROTATE: usize = 3;
const GR_READ_MAP: usize = 4;
const GR_MODE: usize = 5;
const GR_MISC: usize = 6;
const GR_DONT_CARE: usize = 7;
const GR_BIT_MASK: usize = 8;

/// The adapter's registers (everything but video memory).
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct VgaRegs {
    pub misc: u8,
    pub seq_index: u8,
    pub seq: [u8; 8],
    pub gc_index: u8,
    pub gc: [u8; 16],
    pub crtc_index: u8,
    pub crtc: [u8; 32],
    /// Attribute index register (bit 5 = palette address source).
    pub attr_index: u8,
    /// The attribute flip-flop: false = next 0x3C0 write is an index.
    pub attr_data_next: bool,
    pub attr: [u8; 32],
    /// DAC: 256 entries of 6-bit red, green, blue.
    #[serde(with = "serde_dac")]
    pub dac: [[u8; 3]; 256],
    pub dac_write: u8,
    pub dac_read: u8,
    /// Which component (0-2) the next 0x3C9 access is.
    pub dac_write_sub: u8,
    pub dac_read_sub: u8,
    /// 0x3C7 read: 3 after a read index was set, 0 after a write index.
    pub dac_state: u8,
    pub pel_mask: u8,
    pub feature: u8,
    /// 0x3C3: the adapter responds to memory and I/O.
    pub enable: u8,
}

mod serde_dac {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(dac: &[[u8; 3]; 256], s: S) -> Result<S::Ok, S::Error> {
        dac.iter().flatten().copied().collect::<Vec<u8>>().serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[[u8; 3]; 256], D::Error> {
        let v = Vec::<u8>::deserialize(d)?;
        let mut dac = [[0u8; 3]; 256];
        for (i, b) in v.into_iter().take(768).enumerate() {
            dac[i / 3][i % 3] = b;
        }
        Ok(dac)
    }
}

impl Default for VgaRegs {
    fn default() -> Self {
        VgaRegs {
            misc: 0,
            seq_index: 0,
            seq: [0; 8],
            gc_index: 0,
            gc: [0; 16],
            crtc_index: 0,
            crtc: [0; 32],
            attr_index: 0,
            attr_data_next: false,
            attr: [0; 32],
            dac: [[0; 3]; 256],
            dac_write: 0,
            dac_read: 0,
            dac_write_sub: 0,
            dac_read_sub: 0,
            dac_state: 0,
            pel_mask: 0xFF,
            feature: 0,
            enable: 1,
        }
    }
}

/// The VGA adapter.
pub struct Vga {
    pub regs: VgaRegs,
    /// Plane bytes per offset (byte n = plane n).
    vram: Box<[u32]>,
    latch: u32,
    /// Plane offsets written since the last render, one bit per
    /// `1 << DIRTY_SHIFT` offsets.
    dirty: Box<[u64; DIRTY_WORDS]>,
    /// A register that changes the picture was written since the last
    /// render (everything is redrawn).
    all_dirty: bool,
    /// A write reached plane 2 (the font in text modes).
    plane2_written: bool,
    frame: Frame,
    /// Display state the last frame was drawn with (blink phase).
    last_blink: u32,
    /// The Bochs VBE registers.
    pub dispi: Dispi,
    /// What DISPI writes asked of the board since it last looked.
    effects: DispiEffect,
    /// The VBE picture as last drawn (video memory bytes per line), to
    /// find the lines that changed.
    vbe_shadow: Vec<u8>,
}

impl Default for Vga {
    fn default() -> Self {
        Vga::new()
    }
}

impl Vga {
    pub fn new() -> Vga {
        Vga {
            regs: VgaRegs::default(),
            vram: vec![0u32; PLANE_BYTES].into_boxed_slice(),
            latch: 0,
            dirty: Box::new([0; DIRTY_WORDS]),
            all_dirty: true,
            plane2_written: false,
            frame: Frame::default(),
            last_blink: u32::MAX,
            dispi: Dispi::default(),
            effects: DispiEffect::default(),
            vbe_shadow: Vec::new(),
        }
    }

    /// What DISPI writes asked of the board (remap the bank window, clear
    /// video memory) since the last call.
    pub fn take_effects(&mut self) -> DispiEffect {
        std::mem::take(&mut self.effects)
    }

    /// The DAC holds 8-bit components (VBE DAC width 8).
    fn dac8(&self) -> bool {
        self.dispi.enable & vbe::DAC_8BIT != 0
    }

    /// Power-on state of the registers (video memory keeps its contents,
    /// as DRAM does across a reset).
    pub fn reset(&mut self) {
        self.regs = VgaRegs::default();
        self.latch = 0;
        self.all_dirty = true;
        if self.dispi.enabled() {
            self.effects.remap = true;
        }
        self.dispi = Dispi::default();
    }

    /// The four plane bytes at a plane offset (for tests and debuggers).
    pub fn planes_at(&self, offset: u16) -> [u8; 4] {
        self.vram[offset as usize].to_le_bytes()
    }

    /// Colour (true) or mono (false) I/O addressing (misc bit 0).
    fn color_io(&self) -> bool {
        self.regs.misc & 1 != 0
    }

    // ---- memory -------------------------------------------------------

    /// Where a CPU address in the window lands: Some((offset within the
    /// selected window)) or None when GR6 does not decode it.
    fn window_offset(&self, addr: u32) -> Option<u32> {
        if self.regs.misc & 2 == 0 || self.regs.enable & 1 == 0 {
            return None;
        }
        let a = addr.wrapping_sub(WINDOW_BASE);
        let (start, len) = match (self.regs.gc[GR_MISC] >> 2) & 3 {
            0 => (0, 0x2_0000),
            1 => (0, 0x1_0000),
            2 => (0x1_0000, 0x8000),
            _ => (0x1_8000, 0x8000),
        };
        a.checked_sub(start).filter(|&o| o < len)
    }

    /// Read one byte of the memory window.
    pub fn mem_read(&mut self, addr: u32) -> u8 {
        let Some(off) = self.window_offset(addr) else {
            return 0xFF;
        };
        let r = &self.regs;
        let (plane, poff) = if r.seq[SR_MEM_MODE] & 0x08 != 0 {
            // Chain-4: address bits 1:0 select the plane.
            (off & 3, off & !3)
        } else if r.gc[GR_MODE] & 0x10 != 0 {
            // Odd/even reads: bit 0 picks within the pair GR4 bit 1 selects.
            ((r.gc[GR_READ_MAP] as u32 & 2) | (off & 1), off & !1)
        } else {
            (r.gc[GR_READ_MAP] as u32 & 3, off)
        };
        let latch = self.vram[(poff as usize) & (PLANE_BYTES - 1)];
        self.latch = latch;
        if r.gc[GR_MODE] & 0x08 == 0 {
            (latch >> (8 * plane)) as u8
        } else {
            // Read mode 1: a bit is 1 where every plane enabled by the
            // colour don't-care register matches the colour compare.
            let cmp = expand(r.gc[GR_COLOR_CMP]);
            let care = expand(r.gc[GR_DONT_CARE]);
            let diff = (latch ^ cmp) & care;
            let any = diff | (diff >> 8) | (diff >> 16) | (diff >> 24);
            !(any as u8)
        }
    }

    /// Write one byte of the memory window.
    pub fn mem_write(&mut self, addr: u32, value: u8) {
        let Some(off) = self.window_offset(addr) else {
            return;
        };
        let r = &self.regs;
        let mut planes = r.seq[SR_MAP_MASK] & 0x0F;
        let poff = if r.seq[SR_MEM_MODE] & 0x08 != 0 {
            planes &= 1 << (off & 3);
            off & !3
        } else if r.seq[SR_MEM_MODE] & 0x04 == 0 {
            // Odd/even writes: even addresses reach planes 0 and 2, odd
            // ones planes 1 and 3.
            planes &= if off & 1 == 0 { 0x5 } else { 0xA };
            off & !1
        } else {
            off
        };
        let poff = (poff as usize) & (PLANE_BYTES - 1);
        if planes == 0 {
            return;
        }
        let latch = self.latch;
        let rotate = r.gc[GR_ROTATE] & 7;
        let rotated = value.rotate_right(rotate as u32);
        let mut mask = r.gc[GR_BIT_MASK];
        let data: u32 = match r.gc[GR_MODE] & 3 {
            0 => {
                let sr = expand(r.gc[GR_SET_RESET]);
                let en = expand(r.gc[GR_ENABLE_SR]);
                (sr & en) | (u32::from_ne_bytes([rotated; 4]) & !en)
            }
            1 => latch,
            2 => expand(value),
            _ => {
                mask &= rotated;
                expand(r.gc[GR_SET_RESET])
            }
        };
        let data = if r.gc[GR_MODE] & 3 == 1 {
            data
        } else {
            let d = match (r.gc[GR_ROTATE] >> 3) & 3 {
                0 => data,
                1 => data & latch,
                2 => data | latch,
                _ => data ^ latch,
            };
            let m = u32::from_ne_bytes([mask; 4]);
            (d & m) | (latch & !m)
        };
        let pm = expand(planes);
        let old = self.vram[poff];
        let new = (old & !pm) | (data & pm);
        if new != old {
            self.vram[poff] = new;
            let chunk = poff >> DIRTY_SHIFT;
            self.dirty[chunk / 64] |= 1 << (chunk % 64);
            if (old ^ new) & 0x00FF_0000 != 0 {
                self.plane2_written = true;
            }
        }
    }

    /// Read from the memory window with the width of a CPU access.
    pub fn mmio_read(&mut self, addr: u32, size: AccessSize) -> u32 {
        (0..size.bytes()).fold(0, |v, i| v | (self.mem_read(addr.wrapping_add(i)) as u32) << (8 * i))
    }

    /// Write to the memory window with the width of a CPU access (bytes
    /// in ascending address order, as the bus splits them).
    pub fn mmio_write(&mut self, addr: u32, size: AccessSize, value: u32) {
        for i in 0..size.bytes() {
            self.mem_write(addr.wrapping_add(i), (value >> (8 * i)) as u8);
        }
    }

    // ---- ports --------------------------------------------------------

    fn read_port(&mut self, port: u16, now: Nanos) -> u8 {
        let color = self.color_io();
        match port {
            0x3C0 => self.regs.attr_index,
            0x3C1 => self.regs.attr[(self.regs.attr_index & 0x1F) as usize],
            // Input status 0: bit 4 = switch sense (a colour monitor).
            0x3C2 => 0x10,
            0x3C3 => self.regs.enable,
            0x3C4 => self.regs.seq_index,
            0x3C5 => self.regs.seq[(self.regs.seq_index & 7) as usize],
            0x3C6 => self.regs.pel_mask,
            0x3C7 => self.regs.dac_state,
            0x3C8 => self.regs.dac_write,
            0x3C9 => {
                let r = &mut self.regs;
                let v = r.dac[r.dac_read as usize][r.dac_read_sub as usize];
                r.dac_read_sub += 1;
                if r.dac_read_sub == 3 {
                    r.dac_read_sub = 0;
                    r.dac_read = r.dac_read.wrapping_add(1);
                }
                v
            }
            0x3CA => self.regs.feature,
            0x3CC => self.regs.misc,
            0x3CE => self.regs.gc_index,
            0x3CF => self.regs.gc[(self.regs.gc_index & 0xF) as usize],
            0x3B4 | 0x3D4 if (port == 0x3D4) == color => self.regs.crtc_index,
            0x3B5 | 0x3D5 if (port == 0x3D5) == color => {
                let i = self.regs.crtc_index as usize;
                if i < 0x19 {
                    self.regs.crtc[i]
                } else {
                    0xFF
                }
            }
            0x3BA | 0x3DA if (port == 0x3DA) == color => {
                self.regs.attr_data_next = false;
                self.input_status_1(now)
            }
            _ => 0xFF,
        }
    }

    fn write_port(&mut self, port: u16, v: u8) {
        let color = self.color_io();
        let r = &mut self.regs;
        match port {
            0x3C0 => {
                if r.attr_data_next {
                    let i = (r.attr_index & 0x1F) as usize;
                    if i < 0x15 {
                        // Palette registers hold 6 bits.
                        r.attr[i] = if i < 16 { v & 0x3F } else { v };
                    }
                    self.all_dirty = true;
                } else {
                    if (v ^ r.attr_index) & 0x20 != 0 {
                        self.all_dirty = true;
                    }
                    r.attr_index = v & 0x3F;
                }
                r.attr_data_next = !r.attr_data_next;
            }
            0x3C2 => {
                r.misc = v;
                self.all_dirty = true;
            }
            0x3C3 => r.enable = v & 1,
            0x3C4 => r.seq_index = v,
            0x3C5 => {
                let i = (r.seq_index & 7) as usize;
                r.seq[i] = v;
                if i == SR_CLOCKING || i == SR_CHAR_MAP || i == SR_MEM_MODE {
                    self.all_dirty = true;
                }
            }
            0x3C6 => {
                r.pel_mask = v;
                self.all_dirty = true;
            }
            0x3C7 => {
                r.dac_read = v;
                r.dac_read_sub = 0;
                r.dac_state = 3;
            }
            0x3C8 => {
                r.dac_write = v;
                r.dac_write_sub = 0;
                r.dac_state = 0;
            }
            0x3C9 => {
                let mask = if self.dac8() { 0xFF } else { 0x3F };
                let r = &mut self.regs;
                r.dac[r.dac_write as usize][r.dac_write_sub as usize] = v & mask;
                r.dac_write_sub += 1;
                if r.dac_write_sub == 3 {
                    r.dac_write_sub = 0;
                    r.dac_write = r.dac_write.wrapping_add(1);
                }
                self.all_dirty = true;
            }
            0x3CE => r.gc_index = v,
            0x3CF => {
                let i = (r.gc_index & 0xF) as usize;
                r.gc[i] = v;
                if i == GR_MODE || i == GR_MISC {
                    self.all_dirty = true;
                }
            }
            0x3B4 | 0x3D4 if (port == 0x3D4) == color => r.crtc_index = v,
            0x3B5 | 0x3D5 if (port == 0x3D5) == color => {
                let i = r.crtc_index as usize;
                if i >= 0x19 {
                    return;
                }
                // CR11 bit 7 write-protects CR00-CR07, except the line
                // compare bit 8 in CR07 (bit 4).
                if r.crtc[0x11] & 0x80 != 0 && i <= 7 {
                    if i == 7 {
                        r.crtc[7] = (r.crtc[7] & !0x10) | (v & 0x10);
                        self.all_dirty = true;
                    }
                    return;
                }
                r.crtc[i] = v;
                self.all_dirty = true;
            }
            0x3BA | 0x3DA if (port == 0x3DA) == color => r.feature = v,
            _ => {}
        }
    }

    /// Input status 1: bit 0 = display disabled (blanking), bit 3 =
    /// vertical retrace, from the position of the beam at `now`.
    fn input_status_1(&self, now: Nanos) -> u8 {
        let t = self.timing();
        let pos = now.0 % t.frame_ns;
        let line = (pos / t.line_ns) as u32;
        let in_line = pos % t.line_ns;
        let vretrace = line.wrapping_sub(t.vretrace_start) < t.vretrace_lines;
        let blank = line >= t.vdisplay || in_line >= t.hdisplay_ns;
        (blank as u8) | (vretrace as u8) << 3
    }

    /// Beam timing from the CRTC and the dot clock (with sane limits so a
    /// half-programmed CRTC still yields a frame).
    fn timing(&self) -> Timing {
        let r = &self.regs;
        let c = &r.crtc;
        let dot_hz: u64 = if (r.misc >> 2) & 3 == 1 { 28_322_000 } else { 25_175_000 };
        let dot_hz = if r.seq[SR_CLOCKING] & 0x08 != 0 { dot_hz / 2 } else { dot_hz };
        let char_dots: u64 = if r.seq[SR_CLOCKING] & 1 != 0 { 8 } else { 9 };
        let htotal = (c[0] as u64 + 5) * char_dots;
        let hdisp = (c[1] as u64 + 1) * char_dots;
        let line_ns = (htotal * 1_000_000_000 / dot_hz).max(1000);
        let hdisplay_ns = (hdisp * 1_000_000_000 / dot_hz).min(line_ns - 1).max(1);
        let vtotal = (c[6] as u32 | (c[7] as u32 & 1) << 8 | (c[7] as u32 & 0x20) << 4) + 2;
        let vtotal = vtotal.max(100);
        let vdisplay = (vertical_display_end(c) + 1).min(vtotal - 2);
        let vrs = c[0x10] as u32 | (c[7] as u32 & 4) << 6 | (c[7] as u32 & 0x80) << 2;
        let vre = (c[0x11] & 0xF) as u32;
        let vretrace_lines = ((vre.wrapping_sub(vrs)) & 0xF).max(1);
        let vretrace_start = if vrs >= vtotal { vdisplay } else { vrs };
        Timing { line_ns, hdisplay_ns, frame_ns: line_ns * vtotal as u64, vdisplay, vretrace_start, vretrace_lines }
    }

    /// Frames since time zero (blink phase, frame pacing).
    pub fn frame_number(&self, now: Nanos) -> u64 {
        now.0 / self.timing().frame_ns
    }

    /// Length of one frame at the programmed timing.
    pub fn frame_ns(&self) -> u64 {
        self.timing().frame_ns
    }
}

/// Beam timing of the programmed mode.
#[derive(Clone, Copy, Debug)]
struct Timing {
    line_ns: u64,
    hdisplay_ns: u64,
    frame_ns: u64,
    vdisplay: u32,
    vretrace_start: u32,
    vretrace_lines: u32,
}

/// CR12 with its overflow bits 8 (CR07 bit 1) and 9 (CR07 bit 6).
fn vertical_display_end(c: &[u8; 32]) -> u32 {
    c[0x12] as u32 | (c[7] as u32 & 2) << 7 | (c[7] as u32 & 0x40) << 3
}

/// Spread the low four bits of `bits` to all-ones bytes per plane.
fn expand(bits: u8) -> u32 {
    let b = |n: u8| if bits & (1 << n) != 0 { 0xFFu32 } else { 0 };
    b(0) | b(1) << 8 | b(2) << 16 | b(3) << 24
}

impl PortIo for Vga {
    fn io_read(&mut self, port: u16, size: AccessSize, cx: &mut DevCtx) -> u32 {
        match port {
            0x1CE => return self.dispi.index as u32,
            0x1CF => return self.dispi.read(self.dispi.index) as u32,
            _ => {}
        }
        (0..size.bytes() as u16).fold(0, |v, i| v | (self.read_port(port.wrapping_add(i), cx.now) as u32) << (8 * i))
    }

    fn io_write(&mut self, port: u16, size: AccessSize, value: u32, _cx: &mut DevCtx) {
        match port {
            0x1CE => {
                self.dispi.index = value as u16;
                return;
            }
            0x1CF => {
                let fx = self.dispi.write(self.dispi.index, value as u16);
                self.effects.remap |= fx.remap;
                self.effects.clear = fx.clear.or(self.effects.clear);
                if fx.redraw {
                    self.all_dirty = true;
                    self.vbe_shadow.clear();
                }
                return;
            }
            _ => {}
        }
        // A 16-bit OUT to an index port writes index then data (the usual
        // `out dx, ax` to 0x3C4/0x3CE/0x3D4).
        for i in 0..size.bytes() as u16 {
            self.write_port(port.wrapping_add(i), (value >> (8 * i)) as u8);
        }
    }
}
