//! Programming the VGA for the standard BIOS modes, as a VGA BIOS does it:
//! through the ports and the memory window only (so the same code drives
//! any register-compatible adapter).
//!
//! The register values per mode are the documented IBM VGA settings for
//! the standard modes (the 400-line variants of the text modes). The DAC
//! palettes are computed here: the EGA 64-colour set (rgbRGB bits) for the
//! 350/400/480-line 16-colour modes, the CGA-compatible set (bit 4 as
//! intensity) for the 200-line modes, grey levels for the monochrome modes
//! and the project's own 256-colour default for mode 13h (16 CGA colours,
//! 16 greys, 216 hues in 24 steps at three values and three saturations,
//! 8 black).

use super::ctx::Ctx;
use super::font;

/// What the DAC is loaded with on a mode set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dac {
    Ega,
    Cga,
    Mono,
    Vga256,
}

/// Register values of one mode.
#[derive(Clone, Copy, Debug)]
pub struct ModeRegs {
    pub misc: u8,
    /// SR1-SR4.
    pub seq: [u8; 4],
    /// CR00-CR18.
    pub crtc: [u8; 25],
    /// GR0-GR8.
    pub gc: [u8; 9],
    /// AR00-AR13 (AR14 is 0).
    pub attr: [u8; 20],
    pub dac: Dac,
    /// Text mode: character height of the font to load.
    pub font_height: Option<u8>,
    /// Segment of the memory the mode uses.
    pub segment: u16,
}

const TEXT_AR: [u8; 20] = [
    0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x14, 0x07, 0x38, 0x39, 0x3A, 0x3B, 0x3C, 0x3D, 0x3E, 0x3F, 0x0C, 0x00, 0x0F,
    0x08,
];
const CGA16_AR: [u8; 20] = [
    0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x01, 0x00, 0x0F,
    0x00,
];
const EGA16_AR: [u8; 20] = [
    0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x14, 0x07, 0x38, 0x39, 0x3A, 0x3B, 0x3C, 0x3D, 0x3E, 0x3F, 0x01, 0x00, 0x0F,
    0x00,
];
const TEXT_GC: [u8; 9] = [0x00, 0x00, 0x00, 0x00, 0x00, 0x10, 0x0E, 0x00, 0xFF];
const PLANAR_GC: [u8; 9] = [0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x05, 0x0F, 0xFF];

const CRTC_40: [u8; 25] = [
    0x2D, 0x27, 0x28, 0x90, 0x2B, 0xA0, 0xBF, 0x1F, 0x00, 0x4F, 0x0D, 0x0E, 0x00, 0x00, 0x00, 0x00, 0x9C, 0x8E, 0x8F,
    0x14, 0x1F, 0x96, 0xB9, 0xA3, 0xFF,
];
const CRTC_80: [u8; 25] = [
    0x5F, 0x4F, 0x50, 0x82, 0x55, 0x81, 0xBF, 0x1F, 0x00, 0x4F, 0x0D, 0x0E, 0x00, 0x00, 0x00, 0x00, 0x9C, 0x8E, 0x8F,
    0x28, 0x1F, 0x96, 0xB9, 0xA3, 0xFF,
];
const CRTC_320X200: [u8; 25] = [
    0x2D, 0x27, 0x28, 0x90, 0x2B, 0x80, 0xBF, 0x1F, 0x00, 0xC0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x9C, 0x8E, 0x8F,
    0x14, 0x00, 0x96, 0xB9, 0xE3, 0xFF,
];
const CRTC_640X200: [u8; 25] = [
    0x5F, 0x4F, 0x50, 0x82, 0x54, 0x80, 0xBF, 0x1F, 0x00, 0xC1, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x9C, 0x8E, 0x8F,
    0x28, 0x00, 0x96, 0xB9, 0xE3, 0xFF,
];
const CRTC_640X350: [u8; 25] = [
    0x5F, 0x4F, 0x50, 0x82, 0x54, 0x80, 0xBF, 0x1F, 0x00, 0x40, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x83, 0x85, 0x5D,
    0x28, 0x0F, 0x63, 0xBA, 0xE3, 0xFF,
];
const CRTC_640X480: [u8; 25] = [
    0x5F, 0x4F, 0x50, 0x82, 0x54, 0x80, 0x0B, 0x3E, 0x00, 0x40, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xEA, 0x8C, 0xDF,
    0x28, 0x00, 0xE7, 0x04, 0xE3, 0xFF,
];

fn with_crtc(base: [u8; 25], changes: &[(usize, u8)]) -> [u8; 25] {
    let mut c = base;
    for &(i, v) in changes {
        c[i] = v;
    }
    c
}

/// The registers of standard mode `mode`, if the BIOS supports it.
pub fn mode_regs(mode: u8) -> Option<ModeRegs> {
    let text = |misc, sr1, crtc, attr, dac, segment| ModeRegs {
        misc,
        seq: [sr1, 0x03, 0x00, 0x02],
        crtc,
        gc: TEXT_GC,
        attr,
        dac,
        font_height: Some(16),
        segment,
    };
    let gfx = |misc, seq, crtc, gc, attr, dac, segment| ModeRegs {
        misc,
        seq,
        crtc,
        gc,
        attr,
        dac,
        font_height: None,
        segment,
    };
    Some(match mode {
        0 | 1 => text(0x67, 0x08, CRTC_40, TEXT_AR, Dac::Ega, 0xB800),
        2 | 3 => text(0x67, 0x00, CRTC_80, TEXT_AR, Dac::Ega, 0xB800),
        7 => {
            let mut m = text(0x66, 0x00, with_crtc(CRTC_80, &[(0x14, 0x0F)]), MONO_AR, Dac::Mono, 0xB000);
            m.gc = [0x00, 0x00, 0x00, 0x00, 0x00, 0x10, 0x0A, 0x00, 0xFF];
            m.attr[0x10] = 0x0E;
            m
        }
        4 | 5 => {
            let mut attr = CGA16_AR;
            attr[..4].copy_from_slice(&[0x00, 0x13, 0x15, 0x17]);
            attr[0x12] = 0x03;
            gfx(
                0x63,
                [0x09, 0x03, 0x00, 0x02],
                with_crtc(CRTC_320X200, &[(0x09, 0xC1), (0x17, 0xA2)]),
                [0x00, 0x00, 0x00, 0x00, 0x00, 0x30, 0x0F, 0x0F, 0xFF],
                attr,
                Dac::Cga,
                0xB800,
            )
        }
        6 => {
            let mut attr = [0x17u8; 20];
            attr[0] = 0;
            attr[16..].copy_from_slice(&[0x01, 0x00, 0x01, 0x00]);
            gfx(
                0x63,
                [0x01, 0x01, 0x00, 0x06],
                with_crtc(CRTC_640X200, &[(0x17, 0xC2)]),
                [0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x0D, 0x0F, 0xFF],
                attr,
                Dac::Cga,
                0xB800,
            )
        }
        0x0D => gfx(0x63, [0x09, 0x0F, 0x00, 0x06], CRTC_320X200, PLANAR_GC, CGA16_AR, Dac::Cga, 0xA000),
        0x0E => gfx(0x63, [0x01, 0x0F, 0x00, 0x06], CRTC_640X200, PLANAR_GC, CGA16_AR, Dac::Cga, 0xA000),
        0x0F => {
            let mut attr = [0u8; 20];
            attr[..16].copy_from_slice(&[0, 8, 0, 0, 0x18, 0x18, 0, 0, 0, 8, 0, 0, 0, 0x18, 0, 0]);
            attr[16..].copy_from_slice(&[0x0B, 0x00, 0x05, 0x00]);
            gfx(0xA2, [0x01, 0x0F, 0x00, 0x06], CRTC_640X350, PLANAR_GC, attr, Dac::Mono, 0xA000)
        }
        0x10 => gfx(0xA3, [0x01, 0x0F, 0x00, 0x06], CRTC_640X350, PLANAR_GC, EGA16_AR, Dac::Ega, 0xA000),
        0x11 => {
            let mut attr = [0x3Fu8; 20];
            attr[0] = 0;
            attr[16..].copy_from_slice(&[0x01, 0x00, 0x01, 0x00]);
            gfx(0xE3, [0x01, 0x0F, 0x00, 0x06], CRTC_640X480, PLANAR_GC, attr, Dac::Ega, 0xA000)
        }
        0x12 => gfx(0xE3, [0x01, 0x0F, 0x00, 0x06], CRTC_640X480, PLANAR_GC, EGA16_AR, Dac::Ega, 0xA000),
        0x13 => {
            let mut attr = [0u8; 20];
            for (i, a) in attr.iter_mut().enumerate().take(16) {
                *a = i as u8;
            }
            attr[16..].copy_from_slice(&[0x41, 0x00, 0x0F, 0x00]);
            gfx(
                0x63,
                [0x01, 0x0F, 0x00, 0x0E],
                with_crtc(CRTC_640X200, &[(0x09, 0x41), (0x14, 0x40), (0x17, 0xA3)]),
                [0x00, 0x00, 0x00, 0x00, 0x00, 0x40, 0x05, 0x0F, 0xFF],
                attr,
                Dac::Vga256,
                0xA000,
            )
        }
        _ => return None,
    })
}

const MONO_AR: [u8; 20] = [
    0x00, 0x08, 0x08, 0x08, 0x08, 0x08, 0x08, 0x08, 0x10, 0x18, 0x18, 0x18, 0x18, 0x18, 0x18, 0x18, 0x0E, 0x00, 0x0F,
    0x08,
];

/// Load every register of `m` (sequencer held in reset meanwhile), leaving
/// the display enabled.
pub fn program(c: &mut Ctx, m: &ModeRegs) {
    // Synchronous reset while the clocking changes.
    c.outb(0x3C4, 0);
    c.outb(0x3C5, 0x01);
    c.outb(0x3C2, m.misc);
    for (i, &v) in m.seq.iter().enumerate() {
        c.outb(0x3C4, i as u8 + 1);
        c.outb(0x3C5, v);
    }
    c.outb(0x3C4, 0);
    c.outb(0x3C5, 0x03);
    let crtc = if m.misc & 1 != 0 { 0x3D4 } else { 0x3B4 };
    // Unlock CR00-CR07 first.
    c.outb(crtc, 0x11);
    c.outb(crtc + 1, 0);
    for (i, &v) in m.crtc.iter().enumerate() {
        c.outb(crtc, i as u8);
        c.outb(crtc + 1, v);
    }
    for (i, &v) in m.gc.iter().enumerate() {
        c.outb(0x3CE, i as u8);
        c.outb(0x3CF, v);
    }
    let _ = c.inb(crtc + 6);
    for (i, &v) in m.attr.iter().enumerate() {
        c.outb(0x3C0, i as u8);
        c.outb(0x3C0, v);
    }
    c.outb(0x3C0, 0x14);
    c.outb(0x3C0, 0x00);
    // Palette address source on: the display runs.
    c.outb(0x3C0, 0x20);
    c.outb(0x3C6, 0xFF);
}

/// The RGB (6 bits each) of DAC entry `i` in palette `kind`.
pub fn dac_color(kind: Dac, i: u8) -> [u8; 3] {
    let bit = |n: u8| (i >> n) & 1;
    match kind {
        Dac::Ega => [bit(2) * 0x2A + bit(5) * 0x15, bit(1) * 0x2A + bit(4) * 0x15, bit(0) * 0x2A + bit(3) * 0x15],
        Dac::Cga => {
            let k = i & 0x17;
            if k & 0x17 == 0x06 {
                // Brown: the CGA monitor halves green for colour 6.
                return [0x2A, 0x15, 0x00];
            }
            let hi = bit(4) * 0x15;
            [bit(2) * 0x2A + hi, bit(1) * 0x2A + hi, bit(0) * 0x2A + hi]
        }
        Dac::Mono => {
            let v = bit(3) * 0x2A + bit(4) * 0x15;
            [v, v, v]
        }
        Dac::Vga256 => vga256(i),
    }
}

/// The project's default 256-colour palette.
fn vga256(i: u8) -> [u8; 3] {
    match i {
        0..=15 => {
            // The 16 CGA colours (the CGA set's first 8 and intense 8).
            let cga = (i & 7) | (i & 8) << 1;
            dac_color(Dac::Cga, cga)
        }
        16..=31 => {
            let v = ((i as u32 - 16) * 63).div_ceil(15) as u8;
            [v, v, v]
        }
        32..=247 => {
            let k = i as u32 - 32;
            let (block, hue) = (k / 24, k % 24);
            let value = [63u32, 28, 16][block as usize / 3];
            let floor = match block % 3 {
                0 => 0,
                1 => value / 2,
                _ => value * 3 / 4,
            };
            // Around the wheel from blue: blue, magenta, red, yellow,
            // green, cyan, in six ramps of four steps.
            let (seg, step) = (hue / 4, hue % 4);
            let up = floor + (value - floor) * step / 4;
            let down = value - (value - floor) * step / 4;
            let (r, g, b) = match seg {
                0 => (up, floor, value),
                1 => (value, floor, down),
                2 => (value, up, floor),
                3 => (down, value, floor),
                4 => (floor, value, up),
                _ => (floor, down, value),
            };
            [r as u8, g as u8, b as u8]
        }
        _ => [0, 0, 0],
    }
}

/// Load all 256 DAC entries with palette `kind`.
pub fn load_dac(c: &mut Ctx, kind: Dac) {
    c.outb(0x3C8, 0);
    for i in 0..=255u8 {
        for v in dac_color(kind, i) {
            c.outb(0x3C9, v);
        }
    }
}

/// Open plane 2 for the CPU at A0000 (sequential addressing), run `f`,
/// and put the text-mode addressing back.
fn with_plane2(c: &mut Ctx, f: impl FnOnce(&mut Ctx)) {
    let save = |c: &mut Ctx, port: u16, i: u8| {
        c.outb(port, i);
        c.inb(port + 1)
    };
    let (sr2, sr4) = (save(c, 0x3C4, 2), save(c, 0x3C4, 4));
    let (gr4, gr5, gr6) = (save(c, 0x3CE, 4), save(c, 0x3CE, 5), save(c, 0x3CE, 6));
    let set = |c: &mut Ctx, port: u16, i: u8, v: u8| {
        c.outb(port, i);
        c.outb(port + 1, v);
    };
    set(c, 0x3C4, 2, 0x04);
    set(c, 0x3C4, 4, 0x07);
    set(c, 0x3CE, 4, 0x02);
    set(c, 0x3CE, 5, 0x00);
    set(c, 0x3CE, 6, 0x04);
    f(c);
    set(c, 0x3C4, 2, sr2);
    set(c, 0x3C4, 4, sr4);
    set(c, 0x3CE, 4, gr4);
    set(c, 0x3CE, 5, gr5);
    set(c, 0x3CE, 6, gr6);
}

/// Load `count` glyphs of `height` rows from `glyphs` into character map
/// `block` (0-7) starting at character `first` (INT 10h AX=1100h and the
/// text-mode sets).
pub fn load_font(c: &mut Ctx, glyphs: &[u8], height: u8, block: u8, first: u8, count: u16) {
    let h = height.clamp(1, 32) as usize;
    let base = 0xA0000 + ((block as u32 & 3) * 2 + ((block as u32 >> 2) & 1)) * 0x2000;
    with_plane2(c, |c| {
        let mut cellbuf = [0u8; 32];
        for k in 0..count as usize {
            let ch = first as usize + k;
            if ch > 255 {
                break;
            }
            cellbuf.fill(0);
            if let Some(g) = glyphs.get(k * h..k * h + h) {
                cellbuf[..h].copy_from_slice(g);
            }
            c.write_bytes(base + ch as u32 * 32, &cellbuf);
        }
    });
}

/// The built-in font for a character height (8, 14 or 16 rows).
pub fn builtin_font(height: u8) -> &'static [u8] {
    match height {
        0..=8 => font::font_8x8(),
        9..=14 => font::font_8x14(),
        _ => font::font_8x16(),
    }
}

/// Clear the memory a mode uses: text blanks (space, attribute 07h) or
/// all four planes zeroed.
pub fn clear(c: &mut Ctx, m: &ModeRegs) {
    if m.font_height.is_some() {
        let base = (m.segment as u32) << 4;
        let blank: Vec<u8> = [0x20u8, 0x07].iter().copied().cycle().take(0x8000).collect();
        c.write_bytes(base, &blank);
    } else {
        c.outb(0x3C4, 2);
        let mask = c.inb(0x3C5);
        c.outb(0x3C5, 0x0F);
        // Chain-4 and odd/even modes reach every byte through their own
        // window too; a plain sweep of A0000-AFFFF plus B8000 covers all.
        let zeros = vec![0u8; 0x1_0000];
        let base = (m.segment as u32) << 4;
        let len = if m.segment == 0xB800 { 0x8000 } else { 0x1_0000 };
        c.write_bytes(base, &zeros[..len]);
        c.outb(0x3C4, 2);
        c.outb(0x3C5, mask);
    }
}
