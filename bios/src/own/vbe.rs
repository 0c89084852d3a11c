//! INT 10h AH=4Fh: VESA BIOS Extensions 3.0 on the Bochs VBE ("DISPI")
//! interface of the display adapter (ports 0x1CE/0x1CF), with the linear
//! framebuffer where PCI BAR 0 of the VGA function (00:02.0) was placed.
//!
//! Functions: 00h controller information (mode list and OEM strings in the
//! caller's block: the reserved area of a VBE 1.x block, the OEM data area
//! of a "VBE2" one), 01h mode information, 02h set mode (bit 14 LFB, bit
//! 15 keep memory; standard VGA modes below 100h go to AH=00h), 03h
//! current mode, 05h bank window, 06h logical scan line, 07h display
//! start, 08h DAC width, 09h palette data. Not supported (AX=014Fh): 04h
//! state save/restore, 0Ah protected-mode interface, 15h DDC.
//!
//! Mode numbers: the VESA 1.2 numbers for 8/15/16/24-bit modes, and 140h
//! onwards (the numbers Bochs-derived VGA BIOSes use) for 32-bit and wide
//! modes.

use ferrite_core::cpu::state::SegReg;

use super::ctx::Ctx;
use super::pci;
use super::video;

const DISPI_INDEX: u16 = 0x1CE;
const DISPI_DATA: u16 = 0x1CF;
const XRES: u16 = 1;
const YRES: u16 = 2;
const BPP: u16 = 3;
const ENABLE: u16 = 4;
const BANK: u16 = 5;
const VIRT_WIDTH: u16 = 6;
const VIRT_HEIGHT: u16 = 7;
const X_OFFSET: u16 = 8;
const Y_OFFSET: u16 = 9;
const VIDEO_MEMORY_64K: u16 = 10;
const ENABLED: u16 = 0x01;
const DAC_8BIT: u16 = 0x20;
const LFB: u16 = 0x40;
const NOCLEARMEM: u16 = 0x80;

/// PCI devfn of the display adapter (00:02.0).
const VGA_DEVFN: u8 = 0x10;

/// (mode, width, height, bits per pixel).
pub const MODES: &[(u16, u16, u16, u8)] = &[
    (0x100, 640, 400, 8),
    (0x101, 640, 480, 8),
    (0x103, 800, 600, 8),
    (0x105, 1024, 768, 8),
    (0x107, 1280, 1024, 8),
    (0x10D, 320, 200, 15),
    (0x10E, 320, 200, 16),
    (0x10F, 320, 200, 24),
    (0x110, 640, 480, 15),
    (0x111, 640, 480, 16),
    (0x112, 640, 480, 24),
    (0x113, 800, 600, 15),
    (0x114, 800, 600, 16),
    (0x115, 800, 600, 24),
    (0x116, 1024, 768, 15),
    (0x117, 1024, 768, 16),
    (0x118, 1024, 768, 24),
    (0x119, 1280, 1024, 15),
    (0x11A, 1280, 1024, 16),
    (0x11B, 1280, 1024, 24),
    (0x140, 320, 200, 32),
    (0x141, 640, 400, 32),
    (0x142, 640, 480, 32),
    (0x143, 800, 600, 32),
    (0x144, 1024, 768, 32),
    (0x145, 1280, 1024, 32),
    (0x146, 1600, 1200, 32),
    (0x147, 1280, 720, 32),
    (0x148, 1920, 1080, 32),
    (0x149, 1920, 1080, 16),
    (0x14A, 1920, 1200, 32),
    (0x14B, 2560, 1600, 32),
];

const OEM: &str = "ferrite VBE";

fn dispi_read(c: &mut Ctx, index: u16) -> u16 {
    c.outw(DISPI_INDEX, index);
    c.inw(DISPI_DATA)
}

fn dispi_write(c: &mut Ctx, index: u16, v: u16) {
    c.outw(DISPI_INDEX, index);
    c.outw(DISPI_DATA, v);
}

/// Whether the adapter has the interface (ID register reads B0Cxh).
fn present(c: &mut Ctx) -> bool {
    dispi_read(c, 0) & 0xFFF0 == 0xB0C0
}

/// Video memory in bytes.
fn memory(c: &mut Ctx) -> u32 {
    (dispi_read(c, VIDEO_MEMORY_64K) as u32) << 16
}

fn find(mode: u16) -> Option<(u16, u16, u16, u8)> {
    MODES.iter().copied().find(|m| m.0 == mode & 0x1FF)
}

fn bytes_pp(bpp: u8) -> u32 {
    (bpp as u32).div_ceil(8)
}

/// Where the linear framebuffer is (BAR 0 of the VGA function).
fn lfb_base(c: &mut Ctx) -> u32 {
    pci::read32(c, 0, VGA_DEVFN, 0x10) & !0xF
}

fn done(c: &mut Ctx, ok: bool) {
    c.set_ax(if ok { 0x004F } else { 0x014F });
}

pub fn int10_4f(c: &mut Ctx) {
    if !present(c) {
        c.set_ax(0x014F);
        return;
    }
    match c.al() {
        0x00 => controller_info(c),
        0x01 => mode_info(c),
        0x02 => {
            let ok = set_mode(c, c.bx());
            done(c, ok);
        }
        0x03 => {
            let m = current_mode(c);
            c.set_bx(m);
            done(c, true);
        }
        0x05 => bank(c),
        0x06 => scan_line(c),
        0x07 => display_start(c),
        0x08 => dac_format(c),
        0x09 => palette(c),
        _ => c.set_ax(0x014F),
    }
}

fn controller_info(c: &mut Ctx) {
    let at = c.lin(SegReg::Es, c.di());
    let seg = c.cpu.state.seg(SegReg::Es).selector;
    let di = c.di();
    let vbe2 = c.rd32(at) == u32::from_le_bytes(*b"VBE2");
    let mut block = vec![0u8; if vbe2 { 512 } else { 256 }];
    block[0..4].copy_from_slice(b"VESA");
    block[4..6].copy_from_slice(&0x0300u16.to_le_bytes());
    let far = |off: usize| ((seg as u32) << 16 | di.wrapping_add(off as u16) as u32).to_le_bytes();
    // Capabilities: DAC switchable to 8 bits.
    block[0x0A] = 0x01;
    let mem = memory(c);
    let total = (mem >> 16).min(0xFFFF) as u16;
    block[0x12..0x14].copy_from_slice(&total.to_le_bytes());
    // The mode list in the reserved area, then (VBE 1.x) the OEM string.
    let list = 0x22;
    let mut p = list;
    for &(m, w, h, bpp) in MODES {
        if (w as u32 * h as u32 * bytes_pp(bpp)) <= mem {
            block[p..p + 2].copy_from_slice(&m.to_le_bytes());
            p += 2;
        }
    }
    block[p..p + 2].copy_from_slice(&0xFFFFu16.to_le_bytes());
    p += 2;
    block[0x0E..0x12].copy_from_slice(&far(list));
    let strings = if vbe2 { 0x100 } else { p };
    let mut s = strings;
    let mut put = |block: &mut Vec<u8>, text: &str| {
        let start = s;
        block[s..s + text.len()].copy_from_slice(text.as_bytes());
        s += text.len() + 1;
        start
    };
    let oem = put(&mut block, OEM);
    block[0x06..0x0A].copy_from_slice(&far(oem));
    if vbe2 {
        block[0x14..0x16].copy_from_slice(&0x0100u16.to_le_bytes());
        let vendor = put(&mut block, "ferrite");
        let product = put(&mut block, "ferrite VGA");
        let rev = put(&mut block, env!("CARGO_PKG_VERSION"));
        block[0x16..0x1A].copy_from_slice(&far(vendor));
        block[0x1A..0x1E].copy_from_slice(&far(product));
        block[0x1E..0x22].copy_from_slice(&far(rev));
    }
    c.write_bytes(at, &block);
    done(c, true);
}

/// The 256-byte ModeInfoBlock of `mode`.
fn mode_block(c: &mut Ctx, mode: u16) -> Option<[u8; 256]> {
    let (_, w, h, bpp) = find(mode)?;
    let mem = memory(c);
    let pitch = w as u32 * bytes_pp(bpp);
    if pitch * h as u32 > mem {
        return None;
    }
    let mut b = [0u8; 256];
    let put16 = |b: &mut [u8; 256], off: usize, v: u16| b[off..off + 2].copy_from_slice(&v.to_le_bytes());
    // Supported, optional info, colour, graphics, linear framebuffer.
    put16(&mut b, 0x00, 0x009B);
    b[0x02] = 0x07; // window A: exists, readable, writable
    put16(&mut b, 0x04, 64); // granularity (KiB)
    put16(&mut b, 0x06, 64); // size (KiB)
    put16(&mut b, 0x08, 0xA000);
    put16(&mut b, 0x10, pitch as u16);
    put16(&mut b, 0x12, w);
    put16(&mut b, 0x14, h);
    b[0x16] = 8;
    b[0x17] = 16;
    b[0x18] = 1; // planes
    b[0x19] = bpp;
    b[0x1A] = 1; // banks
    b[0x1B] = if bpp == 8 { 4 } else { 6 }; // packed pixel / direct colour
    let pages = (mem / (pitch * h as u32)).saturating_sub(1).min(255) as u8;
    b[0x1D] = pages;
    b[0x1E] = 1;
    // Colour masks: (red size, pos, green size, pos, blue size, pos,
    // reserved size, pos).
    let masks: [u8; 8] = match bpp {
        15 => [5, 10, 5, 5, 5, 0, 1, 15],
        16 => [5, 11, 6, 5, 5, 0, 0, 0],
        24 => [8, 16, 8, 8, 8, 0, 0, 0],
        32 => [8, 16, 8, 8, 8, 0, 8, 24],
        _ => [0; 8],
    };
    b[0x1F..0x27].copy_from_slice(&masks);
    b[0x27] = if bpp == 32 || bpp == 15 { 0x02 } else { 0 };
    let lfb = lfb_base(c);
    b[0x28..0x2C].copy_from_slice(&lfb.to_le_bytes());
    // VBE 3.0 fields: linear pitch and pages, the same masks.
    put16(&mut b, 0x32, pitch as u16);
    b[0x34] = pages;
    b[0x35] = pages;
    b[0x36..0x3E].copy_from_slice(&masks);
    b[0x3E..0x42].copy_from_slice(&135_000_000u32.to_le_bytes());
    Some(b)
}

fn mode_info(c: &mut Ctx) {
    let mode = c.cx();
    match mode_block(c, mode) {
        Some(b) => {
            let at = c.lin(SegReg::Es, c.di());
            c.write_bytes(at, &b);
            done(c, true);
        }
        None => done(c, false),
    }
}

/// Set a VBE mode (or a standard one below 100h). Bit 14: use the linear
/// framebuffer; bit 15: keep video memory.
pub fn set_mode(c: &mut Ctx, bx: u16) -> bool {
    let mode = bx & 0x1FF;
    if mode < 0x100 {
        return video::set_mode(c, mode as u8, bx & 0x8000 == 0);
    }
    let Some((_, w, h, bpp)) = find(mode) else {
        return false;
    };
    if w as u32 * h as u32 * bytes_pp(bpp) > memory(c) {
        return false;
    }
    let keep_dac8 = dispi_read(c, ENABLE) & DAC_8BIT;
    dispi_write(c, ENABLE, 0);
    // The VGA side in a graphics state (attribute controller graphics, 8
    // dots, 256-colour shift), as VGA BIOSes leave it under VBE modes.
    video::set_mode(c, 0x13, false);
    dispi_write(c, BPP, bpp as u16);
    dispi_write(c, XRES, w);
    dispi_write(c, YRES, h);
    dispi_write(c, BANK, 0);
    let mut en = ENABLED | keep_dac8;
    if bx & 0x4000 != 0 {
        en |= LFB;
    }
    if bx & 0x8000 != 0 {
        en |= NOCLEARMEM;
    }
    dispi_write(c, ENABLE, en);
    dispi_read(c, ENABLE) & ENABLED != 0
}

/// The current mode: a VBE mode is found back from the adapter's
/// resolution and depth (bit 14 set with the linear framebuffer).
fn current_mode(c: &mut Ctx) -> u16 {
    let en = dispi_read(c, ENABLE);
    if en & ENABLED == 0 {
        return c.bda8(video::MODE) as u16;
    }
    let (w, h, bpp) = (dispi_read(c, XRES), dispi_read(c, YRES), dispi_read(c, BPP));
    let lfb = if en & LFB != 0 { 0x4000 } else { 0 };
    MODES.iter().find(|m| (m.1, m.2, m.3 as u16) == (w, h, bpp)).map_or(0x13, |m| m.0 | lfb)
}

fn bank(c: &mut Ctx) {
    if dispi_read(c, ENABLE) & LFB != 0 {
        // VBE 3.0: the window functions are invalid in a linear mode.
        c.set_ax(0x034F);
        return;
    }
    match c.bh() {
        0 => {
            let dx = c.dx();
            dispi_write(c, BANK, dx);
            let ok = dispi_read(c, BANK) == dx;
            done(c, ok);
        }
        1 => {
            let b = dispi_read(c, BANK);
            c.set_dx(b);
            done(c, true);
        }
        _ => done(c, false),
    }
}

fn scan_line(c: &mut Ctx) {
    let bpp = dispi_read(c, BPP) as u32;
    let bpp_bytes = bpp.div_ceil(8).max(1);
    let mem = memory(c);
    match c.bl() {
        0 => {
            let cx = c.cx();
            dispi_write(c, VIRT_WIDTH, cx);
        }
        2 => {
            let px = c.cx() as u32 / bpp_bytes;
            dispi_write(c, VIRT_WIDTH, px as u16);
        }
        1 => {}
        3 => {
            // Maximum: the most the memory allows for the height.
            let h = dispi_read(c, YRES).max(1) as u32;
            let max_px = (mem / h / bpp_bytes).min(0xFFFF);
            c.set_bx((max_px * bpp_bytes).min(0xFFFF) as u16);
            c.set_cx(max_px as u16);
            let vh = dispi_read(c, VIRT_HEIGHT);
            c.set_dx(vh);
            done(c, true);
            return;
        }
        _ => {
            done(c, false);
            return;
        }
    }
    let vw = dispi_read(c, VIRT_WIDTH);
    let vh = dispi_read(c, VIRT_HEIGHT);
    c.set_bx((vw as u32 * bpp_bytes).min(0xFFFF) as u16);
    c.set_cx(vw);
    c.set_dx(vh);
    done(c, true);
}

fn display_start(c: &mut Ctx) {
    match c.bl() & 0x7F {
        0 => {
            let (x, y) = (c.cx(), c.dx());
            dispi_write(c, X_OFFSET, x);
            dispi_write(c, Y_OFFSET, y);
            done(c, true);
        }
        1 => {
            c.set_bh(0);
            let x = dispi_read(c, X_OFFSET);
            let y = dispi_read(c, Y_OFFSET);
            c.set_cx(x);
            c.set_dx(y);
            done(c, true);
        }
        _ => done(c, false),
    }
}

fn dac_format(c: &mut Ctx) {
    let en = dispi_read(c, ENABLE);
    match c.bl() {
        0 => {
            let eight = c.bh() >= 8;
            // Writing ENABLE with the interface already on changes only the
            // DAC width (the device does not clear or remap).
            let v = if eight { en | DAC_8BIT } else { en & !DAC_8BIT };
            dispi_write(c, ENABLE, v | NOCLEARMEM);
            c.set_bh(if eight { 8 } else { 6 });
            done(c, true);
        }
        1 => {
            c.set_bh(if en & DAC_8BIT != 0 { 8 } else { 6 });
            done(c, true);
        }
        _ => done(c, false),
    }
}

fn palette(c: &mut Ctx) {
    let (count, first) = (c.cx().min(256), c.dx().min(255));
    let count = count.min(256 - first);
    let at = c.lin(SegReg::Es, c.di());
    match c.bl() & 0x7F {
        0 => {
            let mut buf = vec![0u8; count as usize * 4];
            c.read_bytes(at, &mut buf);
            c.outb(0x3C8, first as u8);
            for e in buf.chunks_exact(4) {
                // Table entries are blue, green, red, alignment.
                c.outb(0x3C9, e[2]);
                c.outb(0x3C9, e[1]);
                c.outb(0x3C9, e[0]);
            }
            done(c, true);
        }
        1 => {
            let mut buf = vec![0u8; count as usize * 4];
            c.outb(0x3C7, first as u8);
            for e in buf.chunks_exact_mut(4) {
                e[2] = c.inb(0x3C9);
                e[1] = c.inb(0x3C9);
                e[0] = c.inb(0x3C9);
            }
            c.write_bytes(at, &buf);
            done(c, true);
        }
        _ => done(c, false),
    }
}
