//! Turning the adapter state into pixels: one pass over the displayed scan
//! lines as the CRT controller would scan them (start address, offset,
//! row scan counter, line compare, double scan), drawing only the lines
//! whose video memory changed since the last frame unless a register that
//! affects every line changed.
//!
//! The frame is the picture at its own resolution: text modes at dots per
//! character x scan lines (720x400 for mode 3), graphics modes at their
//! pixel resolution (scan lines repeated by double scan or by a row scan
//! counter without address substitution are drawn once: 320x200 for mode
//! 13h). Scaling to a window is the frontend's.

use super::{vertical_display_end, Vga, DIRTY_SHIFT, PLANE_BYTES};
use crate::Nanos;

/// A rendered picture: `pixels` holds `width * height` RGBA values, each a
/// `u32` whose little-endian bytes are red, green, blue, alpha (so the
/// buffer is RGBA8 in memory order).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Frame {
    pub width: u32,
    pub height: u32,
    pub pixels: Vec<u32>,
    /// Rows redrawn by the last render, as a half-open range (empty when
    /// nothing changed).
    pub changed: std::ops::Range<u32>,
}

impl Frame {
    /// The pixels as RGBA8 bytes.
    pub fn rgba_bytes(&self) -> Vec<u8> {
        self.pixels.iter().flat_map(|p| p.to_le_bytes()).collect()
    }

    /// The pixel at (x, y) as (red, green, blue).
    pub fn rgb(&self, x: u32, y: u32) -> (u8, u8, u8) {
        let [r, g, b, _] = self.pixels[(y * self.width + x) as usize].to_le_bytes();
        (r, g, b)
    }
}

/// Largest picture drawn (a CRTC programmed beyond this is clipped).
const MAX_W: u32 = 2048;
const MAX_H: u32 = 1536;

/// How the attribute controller and the shift registers form pixels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Text,
    /// Four planes, one bit each per pixel.
    Planar,
    /// CGA 4-colour: two bits per pixel, even/odd planes interleaved.
    Cga2,
    /// One byte per pixel, four pixels per character clock.
    Byte,
}

/// Everything the scan needs, read from the registers once per frame.
#[derive(Clone, Copy, Debug)]
struct Geometry {
    kind: Kind,
    width: u32,
    height: u32,
    /// Character clocks per scan line.
    chars: u32,
    /// Dots per character in text modes (8 or 9).
    dots: u32,
    /// Physical scan lines per output row.
    scale_y: u32,
    vdisplay: u32,
    max_scan: u32,
    double_scan: bool,
    start: u32,
    /// Memory address increment per character row.
    pitch: u32,
    preset_row: u32,
    byte_pan: u32,
    line_compare: u32,
    /// Address output: 0 byte, 1 word, 2 doubleword.
    addr_mode: u8,
    /// Word mode puts MA15 (true) or MA13 (false) into bit 0.
    wrap15: bool,
    /// CR17 bit 0 clear: MA13 replaced by row scan bit 0 (CGA banks).
    cms: bool,
    /// CR17 bit 1 clear: MA14 replaced by row scan bit 1 (Hercules).
    sri: bool,
    blank: bool,
}

impl Vga {
    fn geometry(&self) -> Geometry {
        let r = &self.regs;
        let c = &r.crtc;
        let kind = if r.attr[0x10] & 1 == 0 {
            Kind::Text
        } else if r.gc[5] & 0x40 != 0 {
            Kind::Byte
        } else if r.gc[5] & 0x20 != 0 {
            Kind::Cga2
        } else {
            Kind::Planar
        };
        let chars = (c[1] as u32 + 1).min(MAX_W / 4);
        let dots = if r.seq[1] & 1 != 0 { 8 } else { 9 };
        let width = match kind {
            Kind::Text => chars * dots,
            Kind::Byte => chars * 4,
            _ => chars * 8,
        }
        .min(MAX_W);
        let vdisplay = (vertical_display_end(c) + 1).min(MAX_H * 2);
        let max_scan = (c[9] & 0x1F) as u32;
        let double_scan = c[9] & 0x80 != 0;
        let cms = c[0x17] & 1 == 0;
        let sri = c[0x17] & 2 == 0;
        let mut scale_y = if double_scan { 2 } else { 1 };
        if kind != Kind::Text && !cms && !sri {
            // The same memory is shown max_scan + 1 times.
            scale_y *= max_scan + 1;
        }
        let height = (vdisplay / scale_y).min(MAX_H);
        let addr_mode = if c[0x14] & 0x40 != 0 {
            2
        } else if c[0x17] & 0x40 == 0 {
            1
        } else {
            0
        };
        let line_compare = c[0x18] as u32 | (c[7] as u32 & 0x10) << 4 | (c[9] as u32 & 0x40) << 3;
        Geometry {
            kind,
            width,
            height,
            chars,
            dots,
            scale_y,
            vdisplay,
            max_scan,
            double_scan,
            start: (c[0xC] as u32) << 8 | c[0xD] as u32,
            pitch: (c[0x13] as u32) * 2,
            preset_row: (c[8] & 0x1F) as u32,
            byte_pan: ((c[8] >> 5) & 3) as u32,
            line_compare,
            addr_mode,
            wrap15: c[0x17] & 0x20 != 0,
            cms,
            sri,
            blank: r.seq[1] & 0x20 != 0 || r.attr_index & 0x20 == 0,
        }
    }

    /// The plane offset the CRTC reads for memory address `ma` at row scan
    /// `row`: the address mode maps MA to the memory address, then the
    /// CGA/Hercules compatibility bits put row scan bits 0/1 on memory
    /// address bits 13/14 (so CGA's two banks at +2000h work in the word
    /// mode of modes 4 and 5 as in the byte mode of mode 6).
    fn display_addr(g: &Geometry, ma: u32, row: u32) -> usize {
        let mut a = match g.addr_mode {
            2 => (ma << 2) | ((ma >> 14) & 3),
            1 => (ma << 1) | ((ma >> if g.wrap15 { 15 } else { 13 }) & 1),
            _ => ma,
        };
        if g.cms {
            a = (a & !0x2000) | (row & 1) << 13;
        }
        if g.sri {
            a = (a & !0x4000) | (row & 2) << 13;
        }
        a as usize & (PLANE_BYTES - 1)
    }

    /// RGBA for each attribute-controller input (the 4-bit colour), and
    /// for each 8-bit DAC index.
    fn palettes(&self) -> ([u32; 16], [u32; 256]) {
        let r = &self.regs;
        let mut dac = [0u32; 256];
        for (i, d) in dac.iter_mut().enumerate() {
            let [cr, cg, cb] = r.dac[i & r.pel_mask as usize];
            let dac8 = self.dac8();
            let s = |v: u8| if dac8 { v } else { (v << 2) | (v >> 4) };
            *d = u32::from_le_bytes([s(cr), s(cg), s(cb), 0xFF]);
        }
        let mut p16 = [0u32; 16];
        for (i, p) in p16.iter_mut().enumerate() {
            *p = dac[self.dac_index(i as u8) as usize];
        }
        (p16, dac)
    }

    /// The DAC index for a 4-bit colour through the palette registers and
    /// the colour select register.
    fn dac_index(&self, c4: u8) -> u8 {
        let r = &self.regs;
        let p = r.attr[(c4 & r.attr[0x12] & 0xF) as usize];
        let low = if r.attr[0x10] & 0x80 != 0 { (p & 0x0F) | (r.attr[0x14] & 3) << 4 } else { p & 0x3F };
        low | (r.attr[0x14] & 0x0C) << 4
    }

    /// Whether any plane offset in `lo..=hi` was written since the last
    /// render.
    fn range_dirty(&self, lo: usize, hi: usize) -> bool {
        if hi < lo {
            return true;
        }
        let (a, b) = (lo >> DIRTY_SHIFT, hi >> DIRTY_SHIFT);
        (a..=b).any(|c| self.dirty[c / 64] & (1 << (c % 64)) != 0)
    }

    /// Bring the frame up to date with video memory and registers at
    /// virtual time `now` (which sets the blink phase) and return it.
    /// `vbe_memory` is the video memory of the VBE modes (the board's
    /// device RAM).
    pub fn render(&mut self, now: Nanos, vbe_memory: &[u8]) -> &Frame {
        if self.dispi.enabled() {
            self.render_vbe(vbe_memory);
            return &self.frame;
        }
        self.vbe_shadow = Vec::new();
        let g = self.geometry();
        let frames = self.frame_number(now);
        // Cursor blinks every 16 frames, blinking characters every 32.
        let blink = (frames / 16 % 2) as u32 | ((frames / 32 % 2) as u32) << 1;
        let mut all = self.all_dirty || self.frame.width != g.width || self.frame.height != g.height;
        if g.kind == Kind::Text && (self.plane2_written || blink != self.last_blink) {
            all = true;
        }
        if self.frame.width != g.width || self.frame.height != g.height {
            self.frame.width = g.width;
            self.frame.height = g.height;
            self.frame.pixels = vec![0xFF00_0000; (g.width * g.height) as usize];
        }
        let (p16, dac) = self.palettes();
        let (mut first_changed, mut end_changed) = (u32::MAX, 0u32);
        let mut ma_row = g.start;
        let mut row = g.preset_row;
        let mut pan_reset = false;
        let mut line = vec![0u32; (g.width + 16) as usize];
        for s in 0..g.vdisplay {
            if s == g.line_compare {
                ma_row = 0;
                row = 0;
                pan_reset = self.regs.attr[0x10] & 0x20 != 0;
            }
            let shown = s % g.scale_y == 0 && s / g.scale_y < g.height;
            if shown {
                let y = s / g.scale_y;
                let first = Self::display_addr(&g, ma_row + g.byte_pan, row);
                let last = Self::display_addr(&g, ma_row + g.byte_pan + g.chars, row);
                if all || self.range_dirty(first, last) {
                    if g.blank {
                        line.fill(0xFF00_0000);
                    } else {
                        let pan = if pan_reset { 0 } else { self.regs.attr[0x13] as u32 & 0xF };
                        match g.kind {
                            Kind::Text => self.text_line(&g, ma_row, row, pan, blink, &p16, &mut line),
                            _ => self.graphics_line(&g, ma_row, row, pan, &p16, &dac, &mut line),
                        }
                    }
                    let w = g.width as usize;
                    let at = (y * g.width) as usize;
                    self.frame.pixels[at..at + w].copy_from_slice(&line[..w]);
                    first_changed = first_changed.min(y);
                    end_changed = end_changed.max(y + 1);
                }
            }
            // Advance the row scan counter (each row scan line is shown
            // twice with double scan).
            if g.double_scan && s & 1 == 0 {
                continue;
            }
            if row >= g.max_scan {
                row = 0;
                ma_row = ma_row.wrapping_add(g.pitch);
            } else {
                row += 1;
            }
        }
        self.frame.changed = if first_changed < end_changed { first_changed..end_changed } else { 0..0 };
        self.dirty.fill(0);
        self.all_dirty = false;
        self.plane2_written = false;
        self.last_blink = blink;
        &self.frame
    }

    /// A VBE mode: each line converted when its bytes differ from what the
    /// last frame showed.
    fn render_vbe(&mut self, mem: &[u8]) {
        let d = self.dispi.clone();
        let (w, h) = (d.xres as u32, d.yres as u32);
        let all = self.all_dirty || self.frame.width != w || self.frame.height != h;
        if self.frame.width != w || self.frame.height != h {
            self.frame.width = w;
            self.frame.height = h;
            self.frame.pixels = vec![0xFF00_0000; (w * h) as usize];
        }
        let row_bytes = w as usize * d.bytes_per_pixel();
        if self.vbe_shadow.len() != row_bytes * h as usize {
            self.vbe_shadow = vec![0; row_bytes * h as usize];
        }
        let (_, dac) = self.palettes();
        let (mut first, mut end) = (u32::MAX, 0u32);
        for y in 0..h {
            let at = d.start() + y as usize * d.line_bytes();
            let src = mem.get(at..at + row_bytes).unwrap_or(&[]);
            let shadow = &mut self.vbe_shadow[y as usize * row_bytes..][..row_bytes];
            if !all && src == shadow {
                continue;
            }
            let line = &mut self.frame.pixels[(y * w) as usize..][..w as usize];
            if src.len() == row_bytes {
                shadow.copy_from_slice(src);
                super::vbe::convert_line(d.bpp, src, &dac, line);
            } else {
                // Beyond video memory: black.
                line.fill(0xFF00_0000);
            }
            first = first.min(y);
            end = end.max(y + 1);
        }
        self.frame.changed = if first < end { first..end } else { 0..0 };
        self.all_dirty = false;
    }

    /// The last rendered frame.
    pub fn frame(&self) -> &Frame {
        &self.frame
    }

    #[allow(clippy::too_many_arguments)]
    fn text_line(&self, g: &Geometry, ma_row: u32, row: u32, pan: u32, blink: u32, p16: &[u32; 16], out: &mut [u32]) {
        let r = &self.regs;
        let c = &r.crtc;
        let map_sel = r.seq[super::SR_CHAR_MAP];
        let map_a = ((map_sel >> 2) & 3) | ((map_sel >> 3) & 4);
        let map_b = (map_sel & 3) | ((map_sel >> 2) & 4);
        let map_base = |m: u8| ((m as usize & 3) * 2 + (m as usize >> 2)) * 0x2000;
        let (base_a, base_b) = (map_base(map_a), map_base(map_b));
        let line_graphics = r.attr[0x10] & 4 != 0;
        let blink_enabled = r.attr[0x10] & 8 != 0;
        let cursor_at = (c[0xE] as u32) << 8 | c[0xF] as u32;
        let (cs, ce) = ((c[0xA] & 0x1F) as u32, (c[0xB] & 0x1F) as u32);
        let cursor_row = c[0xA] & 0x20 == 0 && row >= cs && row <= ce && blink & 1 == 0;
        let underline_row = row == (c[0x14] & 0x1F) as u32;
        let dots = g.dots as usize;
        // Pixel panning in 9-dot modes: 8 means no shift, 0-7 shift by 1-8.
        let pan = if dots == 9 {
            if pan >= 8 {
                0
            } else {
                pan as usize + 1
            }
        } else {
            (pan & 7) as usize
        };
        let glyph_row = row.min(31) as usize;
        let mut x = 0usize;
        let need = g.width as usize + pan;
        let mut i = 0u32;
        let mut cell = [0u32; 9];
        while x < need {
            let ma = ma_row.wrapping_add(g.byte_pan).wrapping_add(i);
            let a = Self::display_addr(g, ma, row);
            let [ch, attr, _, _] = self.vram[a].to_le_bytes();
            let font = if attr & 8 != 0 { base_a } else { base_b };
            let mut bits = (self.vram[(font + ch as usize * 32 + glyph_row) & (PLANE_BYTES - 1)] >> 16) as u8;
            let mut fg = attr & 0xF;
            let mut bg = attr >> 4;
            if blink_enabled {
                bg &= 7;
                if attr & 0x80 != 0 && blink & 2 != 0 {
                    fg = bg;
                }
            }
            if underline_row && attr & 0x77 == 0x01 {
                bits = 0xFF;
            }
            if cursor_row && ma & 0xFFFF == cursor_at {
                bits = 0xFF;
            }
            let (f, b) = (p16[fg as usize], p16[bg as usize]);
            for (k, px) in cell.iter_mut().enumerate().take(8) {
                *px = if bits & (0x80 >> k) != 0 { f } else { b };
            }
            cell[8] = if line_graphics && (0xC0..=0xDF).contains(&ch) && bits & 1 != 0 { f } else { b };
            for &px in &cell[..dots] {
                if x >= pan && x - pan < out.len() {
                    out[x - pan] = px;
                }
                x += 1;
            }
            i += 1;
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn graphics_line(
        &self,
        g: &Geometry,
        ma_row: u32,
        row: u32,
        pan: u32,
        p16: &[u32; 16],
        dac: &[u32; 256],
        out: &mut [u32],
    ) {
        let attr = &self.regs.attr;
        let (pan, per_char) = match g.kind {
            Kind::Byte => (((pan >> 1) & 3) as usize, 4usize),
            _ => ((pan & 7) as usize, 8usize),
        };
        let need = g.width as usize + pan;
        let mut x = 0usize;
        let mut i = 0u32;
        let mut px = [0u32; 8];
        while x < need {
            let ma = ma_row.wrapping_add(g.byte_pan).wrapping_add(i);
            let p = self.vram[Self::display_addr(g, ma, row)].to_le_bytes();
            match g.kind {
                Kind::Byte => {
                    for (k, o) in px.iter_mut().enumerate().take(4) {
                        // Both nibbles pass through the palette registers.
                        let v = p[k];
                        let hi = attr[(v >> 4) as usize] & 0xF;
                        let lo = attr[(v & 0xF) as usize] & 0xF;
                        *o = dac[(hi << 4 | lo) as usize];
                    }
                }
                Kind::Cga2 => {
                    for (k, o) in px.iter_mut().enumerate() {
                        let (a, b) = if k < 4 { (p[0], p[2]) } else { (p[1], p[3]) };
                        let sh = 6 - 2 * (k as u32 & 3);
                        let c = ((a >> sh) & 3) | ((b >> sh) & 3) << 2;
                        *o = p16[c as usize];
                    }
                }
                _ => {
                    for (k, o) in px.iter_mut().enumerate() {
                        let sh = 7 - k as u32;
                        let c = (p[0] >> sh) & 1
                            | ((p[1] >> sh) & 1) << 1
                            | ((p[2] >> sh) & 1) << 2
                            | ((p[3] >> sh) & 1) << 3;
                        *o = p16[c as usize];
                    }
                }
            }
            for &v in &px[..per_char] {
                if x >= pan && x - pan < out.len() {
                    out[x - pan] = v;
                }
                x += 1;
            }
            i += 1;
        }
    }
}
