//! INT 10h: the video services of a VGA BIOS on the board's VGA. Mode sets
//! program the adapter through its ports (`vgahw.rs`: register tables,
//! DAC palettes, the text font into plane 2); text output goes through the
//! memory window (B8000h, B0000h in mode 7) and keeps the video fields of
//! the data area (IBM PC/AT layout, 40:49-40:66 and the EGA/VGA fields
//! 40:84-40:8A). Teletype output (AH=0Eh, AH=13h) is mirrored to the
//! platform console. The cursor shape follows CGA-style values scaled to
//! the character height (cursor emulation). VBE (AH=4Fh) is `vbe.rs`.
//!
//! In graphics modes the character services draw glyphs from the font
//! INT 43h points at (INT 1Fh for 80h-FFh in 8-line fonts) in the colour
//! BL gives (bit 7: XOR), and scrolling copies pixel rows (latch copies in
//! the planar modes). AH=10h sets palette registers and the DAC, AH=11h
//! loads fonts and reports the ROM's, AH=1Bh/1Ch report, save and restore
//! the video state. Not implemented: grey-scale summing.

use ferrite_core::cpu::state::SegReg;

use super::ctx::Ctx;
use super::vgahw;

// BIOS data area offsets (from 0x400).
pub const MODE: u16 = 0x49;
pub const COLUMNS: u16 = 0x4A;
pub const PAGE_SIZE: u16 = 0x4C;
pub const PAGE_START: u16 = 0x4E;
pub const CURSOR_POS: u16 = 0x50;
pub const CURSOR_SHAPE: u16 = 0x60;
pub const ACTIVE_PAGE: u16 = 0x62;
pub const CRTC_BASE: u16 = 0x63;
pub const MODE_CTRL: u16 = 0x65;
pub const PALETTE: u16 = 0x66;
pub const ROWS_MINUS_1: u16 = 0x84;
pub const CHAR_HEIGHT: u16 = 0x85;
pub const EGA_MISC: u16 = 0x87;
pub const EGA_SWITCHES: u16 = 0x88;
pub const VGA_FLAGS: u16 = 0x89;
pub const DCC_INDEX: u16 = 0x8A;

/// Geometry of the current text mode.
#[derive(Clone, Copy, Debug)]
struct Screen {
    base: u32,
    cols: u16,
    rows: u16,
    page_size: u16,
    text: bool,
}

fn screen(c: &mut Ctx) -> Screen {
    let mode = c.bda8(MODE) & 0x7F;
    let cols = c.bda16(COLUMNS).clamp(1, 255);
    let rows = (c.bda8(ROWS_MINUS_1) as u16 + 1).clamp(1, 100);
    let page_size = c.bda16(PAGE_SIZE);
    let base = if mode == 7 { 0xB0000 } else { 0xB8000 };
    Screen { base, cols, rows, page_size, text: matches!(mode, 0..=3 | 7) }
}

fn page_base(s: &Screen, page: u8) -> u32 {
    s.base + (page & 7) as u32 * s.page_size as u32
}

fn cell(s: &Screen, page: u8, row: u16, col: u16) -> u32 {
    page_base(s, page) + 2 * (row as u32 * s.cols as u32 + col as u32)
}

pub fn cursor(c: &mut Ctx, page: u8) -> (u16, u16) {
    let v = c.bda16(CURSOR_POS + 2 * (page & 7) as u16);
    (v >> 8, v & 0xFF)
}

pub fn set_cursor(c: &mut Ctx, page: u8, row: u16, col: u16) {
    c.set_bda16(CURSOR_POS + 2 * (page & 7) as u16, (row.min(255) << 8) | col.min(255));
    if page & 7 == c.bda8(ACTIVE_PAGE) {
        update_hw_cursor(c);
    }
}

/// CRTC registers 0Eh/0Fh: the cursor location in character cells.
fn update_hw_cursor(c: &mut Ctx) {
    let page = c.bda8(ACTIVE_PAGE);
    let (row, col) = cursor(c, page);
    let cols = c.bda16(COLUMNS);
    let start = c.bda16(PAGE_START) / 2;
    let pos = start.wrapping_add(row.wrapping_mul(cols)).wrapping_add(col);
    let port = crtc_port(c);
    c.outb(port, 0x0E);
    c.outb(port + 1, (pos >> 8) as u8);
    c.outb(port, 0x0F);
    c.outb(port + 1, pos as u8);
}

fn crtc_port(c: &mut Ctx) -> u16 {
    match c.bda16(CRTC_BASE) {
        0x3B4 => 0x3B4,
        _ => 0x3D4,
    }
}

/// Set a standard mode: program the adapter (registers, DAC, the font
/// for text modes), clear its memory when `clear`, and fill the video
/// fields of the data area.
pub fn set_mode(c: &mut Ctx, mode: u8, clear: bool) -> bool {
    let Some(regs) = vgahw::mode_regs(mode) else {
        return false;
    };
    let text = regs.font_height.is_some();
    let cols: u16 = (regs.crtc[1] as u16 + 1) / if matches!(mode, 0x13) { 2 } else { 1 };
    let (rows, char_height, page_size): (u16, u16, u16) = match mode {
        0 | 1 => (25, 16, 0x800),
        2 | 3 | 7 => (25, 16, 0x1000),
        4..=6 | 0x0E => (25, 8, 0x4000),
        0x0D => (25, 8, 0x2000),
        0x0F | 0x10 => (25, 14, 0x8000),
        0x11 | 0x12 => (30, 16, 0xA000),
        _ => (25, 8, 0xFA00),
    };
    // Leave any VBE mode first (Bochs VBE ENABLE register).
    c.outw(0x1CE, 4);
    c.outw(0x1CF, 0);
    vgahw::program(c, &regs);
    vgahw::load_dac(c, regs.dac);
    if let Some(h) = regs.font_height {
        vgahw::load_font(c, vgahw::builtin_font(h), h, 0, 0, 256);
    } else {
        // INT 43h: the graphics font of the mode's character height.
        let off = match char_height {
            14 => super::rom::FONT14_AT,
            16 => super::rom::FONT16_AT,
            _ => super::rom::FONT8_FULL_AT,
        };
        c.wr16(0x43 * 4, off);
        c.wr16(0x43 * 4 + 2, super::rom::ROM_SEGMENT);
    }
    if clear {
        vgahw::clear(c, &regs);
    }
    c.set_bda8(MODE, mode);
    c.set_bda16(COLUMNS, cols);
    c.set_bda16(PAGE_SIZE, page_size);
    c.set_bda16(PAGE_START, 0);
    for p in 0..8 {
        c.set_bda16(CURSOR_POS + 2 * p, 0);
    }
    c.set_bda16(CURSOR_SHAPE, if text { 0x0607 } else { 0 });
    c.set_bda8(ACTIVE_PAGE, 0);
    c.set_bda16(CRTC_BASE, if mode == 7 { 0x3B4 } else { 0x3D4 });
    c.set_bda8(MODE_CTRL, if text { 0x29 } else { 0x1E });
    c.set_bda8(PALETTE, 0x30);
    c.set_bda8(ROWS_MINUS_1, (rows - 1) as u8);
    c.set_bda16(CHAR_HEIGHT, char_height);
    c.set_bda8(EGA_MISC, 0x60 | if clear { 0 } else { 0x80 });
    c.set_bda8(EGA_SWITCHES, 0x09);
    c.set_bda8(VGA_FLAGS, 0x51);
    c.set_bda8(DCC_INDEX, 0x08);
    // Equipment word bits 5:4: 11 = 80x25 mono, 10 = 80x25 colour, 01 = 40x25.
    let video_bits = match mode {
        7 => 0x30,
        0 | 1 => 0x10,
        _ => 0x20,
    };
    let eq = c.bda16(0x10);
    c.set_bda16(0x10, (eq & !0x30) | video_bits);
    update_hw_cursor(c);
    true
}

/// Cursor emulation: CGA programs give cursor lines for an 8-line cell;
/// lines 4-7 move to the same distance from the bottom of a taller cell
/// (06h-07h, the underline, becomes 0Dh-0Eh in 16-line cells), lines 0-3
/// and the disable bit (bit 5) stay.
fn emulate_cursor_line(v: u8, height: u8) -> u8 {
    let line = v & 0x1F;
    if (4..8).contains(&line) && height > 8 {
        (v & 0x60) | (line + height - 9)
    } else {
        v
    }
}

/// A rectangle of character cells (inclusive).
#[derive(Clone, Copy, Debug)]
struct Window {
    top: u16,
    left: u16,
    bottom: u16,
    right: u16,
}

/// Scroll the window (r0,c0)-(r1,c1) of the active page up (`up`) or down
/// by `n` lines (0: clear), filling with blanks in `attr`.
fn scroll(c: &mut Ctx, s: &Screen, page: u8, n: u16, attr: u8, win: Window, up: bool) {
    let Window { top: r0, left: c0, bottom: r1, right: c1 } = win;
    let r1 = r1.min(s.rows - 1);
    let c1 = c1.min(s.cols - 1);
    if r0 > r1 || c0 > c1 {
        return;
    }
    if !s.text {
        if let Some(g) = gfx(c) {
            let win = Window { top: r0, left: c0, bottom: r1, right: c1 };
            scroll_graphics(c, g, n, attr, win, up);
        }
        return;
    }
    let height = r1 - r0 + 1;
    let n = if n == 0 || n > height { height } else { n };
    let width = (c1 - c0 + 1) as usize;
    let mut line = vec![0u8; width * 2];
    for i in 0..height {
        // Destination row, walking away from the side lines move toward.
        let dst = if up { r0 + i } else { r1 - i };
        let src_off = i + n;
        if src_off < height {
            let src = if up { r0 + src_off } else { r1 - src_off };
            let from = cell(s, page, src, c0);
            c.read_bytes(from, &mut line);
        } else {
            for ch in line.chunks_mut(2) {
                ch[0] = b' ';
                ch[1] = attr;
            }
        }
        let to = cell(s, page, dst, c0);
        c.write_bytes(to, &line);
    }
}

/// Teletype output of one character on `page` (AH=0Eh semantics: BEL,
/// BS, LF, CR control the cursor; the screen scrolls at the bottom).
pub fn teletype(c: &mut Ctx, page: u8, ch: u8, mirror: bool) {
    if mirror && ch != 0x07 {
        c.p.console(&[ch]);
    }
    let s = screen(c);
    let (mut row, mut col) = cursor(c, page);
    match ch {
        0x07 => {}
        0x08 => col = col.saturating_sub(1),
        0x0A => row += 1,
        0x0D => col = 0,
        _ => {
            if s.text {
                let at = cell(&s, page, row.min(s.rows - 1), col.min(s.cols - 1));
                c.wr8(at, ch);
            } else if let Some(g) = gfx(c) {
                let fg = c.bl();
                draw_char(c, g, page, row.min(s.rows - 1), col.min(s.cols - 1), ch, fg);
            }
            col += 1;
            if col >= s.cols {
                col = 0;
                row += 1;
            }
        }
    }
    if row >= s.rows {
        // The new line takes the attribute of the cell at the cursor.
        let attr = if s.text {
            let at = cell(&s, page, s.rows - 1, 0) + 1;
            match c.rd8(at) {
                0 => 0x07,
                a => a,
            }
        } else {
            0
        };
        let all = Window { top: 0, left: 0, bottom: s.rows - 1, right: s.cols - 1 };
        scroll(c, &s, page, 1, attr, all, true);
        row = s.rows - 1;
    }
    set_cursor(c, page, row, col);
}

/// Print a string through the teletype path on the active page.
pub fn print(c: &mut Ctx, text: &str) {
    let page = c.bda8(ACTIVE_PAGE);
    for b in text.bytes() {
        if b == b'\n' {
            teletype(c, page, b'\r', true);
        }
        teletype(c, page, b, true);
    }
}

/// Write `count` copies of `ch` from the cursor on without moving it
/// (AH=09h with an attribute, AH=0Ah without).
fn write_chars(c: &mut Ctx, page: u8, ch: u8, attr: Option<u8>, count: u16) {
    let s = screen(c);
    if !s.text {
        // Graphics modes: BL is the colour for both AH=09h and AH=0Ah.
        if let Some(g) = gfx(c) {
            let (row, col) = cursor(c, page);
            let fg = c.bl();
            let end = (col as u32 + count as u32).min(s.cols as u32);
            for x in col as u32..end {
                draw_char(c, g, page, row.min(s.rows - 1), x as u16, ch, fg);
            }
        }
        return;
    }
    let (row, col) = cursor(c, page);
    let first = row as u32 * s.cols as u32 + col as u32;
    let end = (s.rows as u32 * s.cols as u32).min(first + count as u32);
    for i in first..end {
        let at = page_base(&s, page) + 2 * i;
        c.wr8(at, ch);
        if let Some(a) = attr {
            c.wr8(at + 1, a);
        }
    }
}

/// INT 10h.
pub fn int10(c: &mut Ctx) {
    match c.ah() {
        0x00 => {
            let al = c.al();
            if set_mode(c, al & 0x7F, al & 0x80 == 0) {
                c.set_al(if al & 0x7F == 6 {
                    0x3F
                } else if al & 0x7F > 7 {
                    0x20
                } else {
                    0x30
                });
            }
        }
        0x01 => {
            let cx = c.cx();
            c.set_bda16(CURSOR_SHAPE, cx);
            let h = c.bda16(CHAR_HEIGHT).clamp(8, 32) as u8;
            let port = crtc_port(c);
            c.outb(port, 0x0A);
            c.outb(port + 1, emulate_cursor_line((cx >> 8) as u8, h));
            c.outb(port, 0x0B);
            c.outb(port + 1, emulate_cursor_line(cx as u8, h));
        }
        0x02 => {
            let (page, row, col) = (c.bh(), c.dh(), c.dl());
            set_cursor(c, page, row as u16, col as u16);
        }
        0x03 => {
            let page = c.bh();
            let (row, col) = cursor(c, page);
            c.set_dh(row as u8);
            c.set_dl(col as u8);
            let shape = c.bda16(CURSOR_SHAPE);
            c.set_cx(shape);
            c.set_ax(0);
        }
        0x05 => {
            let page = c.al() & 7;
            c.set_bda8(ACTIVE_PAGE, page);
            let size = c.bda16(PAGE_SIZE);
            c.set_bda16(PAGE_START, size.wrapping_mul(page as u16));
            update_hw_cursor(c);
        }
        ah @ (0x06 | 0x07) => {
            let s = screen(c);
            let page = c.bda8(ACTIVE_PAGE);
            let (n, attr) = (c.al() as u16, c.bh());
            let win = Window { top: c.ch() as u16, left: c.cl() as u16, bottom: c.dh() as u16, right: c.dl() as u16 };
            scroll(c, &s, page, n, attr, win, ah == 0x06);
        }
        0x08 => {
            let s = screen(c);
            let page = c.bh();
            let (row, col) = cursor(c, page);
            let at = cell(&s, page, row.min(s.rows - 1), col.min(s.cols - 1));
            let v = c.rd16(at);
            c.set_ax(v);
        }
        0x09 => {
            let (page, ch, attr, n) = (c.bh(), c.al(), c.bl(), c.cx());
            write_chars(c, page, ch, Some(attr), n);
        }
        0x0A => {
            let (page, ch, n) = (c.bh(), c.al(), c.cx());
            write_chars(c, page, ch, None, n);
        }
        0x0C => {
            if let Some(g) = gfx(c) {
                let (page, x, y, colour) = (c.bh(), c.cx() as u32, c.dx() as u32, c.al());
                if x < 640 && y < 480 && !(g == Gfx::Byte && (x >= 320 || y >= 200)) {
                    put_pixel(c, g, page, x, y, colour);
                }
            }
        }
        0x0D => {
            if let Some(g) = gfx(c) {
                let (page, x, y) = (c.bh(), c.cx() as u32, c.dx() as u32);
                if x < 640 && y < 480 && !(g == Gfx::Byte && (x >= 320 || y >= 200)) {
                    let v = get_pixel(c, g, page, x, y);
                    c.set_al(v);
                }
            }
        }
        0x0E => {
            let (page, ch) = (c.bh(), c.al());
            teletype(c, page, ch, true);
        }
        0x0F => {
            let mode = c.bda8(MODE) | (c.bda8(EGA_MISC) & 0x80);
            let cols = c.bda16(COLUMNS) as u8;
            let page = c.bda8(ACTIVE_PAGE);
            c.set_al(mode);
            c.set_ah(cols);
            c.set_bh(page);
        }
        0x10 => palette_services(c),
        0x11 => font_services(c),
        0x12 => match c.bl() {
            0x10 => {
                // EGA/VGA information: colour, 256 KiB, no feature bits,
                // switch setting 9.
                c.set_bh(0);
                c.set_bl(3);
                c.set_cx(0x0009);
            }
            0x20 | 0x30..=0x36 => c.set_al(0x12),
            _ => {}
        },
        0x13 => write_string(c),
        0x1B if c.bx() == 0 => state_information(c),
        0x1C => save_restore_state(c),
        0x4F => super::vbe::int10_4f(c),
        0x1A => {
            if c.al() <= 1 {
                // Display combination: active VGA with colour display.
                if c.al() == 0 {
                    c.set_bx(0x0008);
                }
                c.set_al(0x1A);
            }
        }
        ah => c.log_unsupported(0x10, ah),
    }
}

// ---- graphics modes: pixels and characters --------------------------------

/// How a graphics mode stores its pixels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Gfx {
    /// Four planes, `bpl` bytes per line, at A0000h.
    Planar { bpl: u32 },
    /// CGA 2 bits per pixel, two banks at B8000h.
    Cga2,
    /// CGA 1 bit per pixel, two banks at B8000h.
    Cga1,
    /// One byte per pixel, 320 per line (mode 13h, chain-4).
    Byte,
}

fn gfx(c: &mut Ctx) -> Option<Gfx> {
    Some(match c.bda8(MODE) & 0x7F {
        4 | 5 => Gfx::Cga2,
        6 => Gfx::Cga1,
        0x0D => Gfx::Planar { bpl: 40 },
        0x0E..=0x12 => Gfx::Planar { bpl: 80 },
        0x13 => Gfx::Byte,
        _ => return None,
    })
}

fn gc_set(c: &mut Ctx, index: u8, v: u8) {
    c.outb(0x3CE, index);
    c.outb(0x3CF, v);
}

/// Byte address and bit shift of pixel (x, y) for the CGA layouts.
fn cga_at(g: Gfx, x: u32, y: u32) -> (u32, u32) {
    let row = 0xB8000 + (y & 1) * 0x2000 + (y >> 1) * 80;
    match g {
        Gfx::Cga2 => (row + x / 4, 6 - 2 * (x & 3)),
        _ => (row + x / 8, 7 - (x & 7)),
    }
}

/// AH=0Ch: pixel (x, y) of `page` in `colour` (bit 7: XOR).
fn put_pixel(c: &mut Ctx, g: Gfx, page: u8, x: u32, y: u32, colour: u8) {
    let xor = colour & 0x80 != 0;
    match g {
        Gfx::Byte => {
            let at = 0xA0000 + y * 320 + x;
            let v = if xor { c.phys_rd8(at) ^ colour } else { colour };
            c.phys_wr8(at, v);
        }
        Gfx::Planar { bpl } => {
            let page_size = c.bda16(PAGE_SIZE) as u32;
            let at = 0xA0000 + page as u32 * page_size + y * bpl + x / 8;
            gc_set(c, 5, 0x02);
            gc_set(c, 8, 0x80 >> (x & 7));
            gc_set(c, 3, if xor { 0x18 } else { 0 });
            let _ = c.phys_rd8(at);
            c.phys_wr8(at, colour & 0x0F);
            gc_set(c, 3, 0);
            gc_set(c, 8, 0xFF);
            gc_set(c, 5, 0);
        }
        Gfx::Cga2 | Gfx::Cga1 => {
            let (at, shift) = cga_at(g, x, y);
            let mask = if g == Gfx::Cga2 { 3 } else { 1 };
            let old = c.phys_rd8(at);
            let bits = (colour & mask) << shift;
            let v = if xor { old ^ bits } else { (old & !(mask << shift)) | bits };
            c.phys_wr8(at, v);
        }
    }
}

/// AH=0Dh: the colour of pixel (x, y).
fn get_pixel(c: &mut Ctx, g: Gfx, page: u8, x: u32, y: u32) -> u8 {
    match g {
        Gfx::Byte => c.phys_rd8(0xA0000 + y * 320 + x),
        Gfx::Planar { bpl } => {
            let page_size = c.bda16(PAGE_SIZE) as u32;
            let at = 0xA0000 + page as u32 * page_size + y * bpl + x / 8;
            let mut v = 0;
            for plane in 0..4u8 {
                gc_set(c, 4, plane);
                let b = c.phys_rd8(at);
                v |= ((b >> (7 - (x & 7))) & 1) << plane;
            }
            gc_set(c, 4, 0);
            v
        }
        Gfx::Cga2 | Gfx::Cga1 => {
            let (at, shift) = cga_at(g, x, y);
            let mask = if g == Gfx::Cga2 { 3 } else { 1 };
            (c.phys_rd8(at) >> shift) & mask
        }
    }
}

/// The glyph rows of `ch` from the graphics font INT 43h points at (INT
/// 1Fh for characters 80h-FFh in 8-line fonts, as the CGA BIOS did).
fn graphics_glyph(c: &mut Ctx, ch: u8, height: u32) -> Vec<u8> {
    let (vector, index) = if height == 8 && ch >= 0x80 && c.rd16(0x1F * 4 + 2) != 0 {
        (0x1F, ch as u32 - 0x80)
    } else {
        (0x43, ch as u32)
    };
    let off = c.rd16(vector * 4) as u32;
    let seg = c.rd16(vector * 4 + 2) as u32;
    let mut g = vec![0u8; height as usize];
    c.read_bytes((seg << 4) + off + index * height, &mut g);
    g
}

/// Draw character `ch` in cell (row, col) of a graphics mode: foreground
/// `fg` (bit 7: XOR with the screen), background colour 0.
fn draw_char(c: &mut Ctx, g: Gfx, page: u8, row: u16, col: u16, ch: u8, fg: u8) {
    let h = c.bda16(CHAR_HEIGHT).clamp(1, 32) as u32;
    let glyph = graphics_glyph(c, ch, h);
    let (x, y) = (col as u32 * 8, row as u32 * h);
    let xor = fg & 0x80 != 0;
    match g {
        Gfx::Byte => {
            for (r, bits) in glyph.iter().enumerate() {
                let at = 0xA0000 + (y + r as u32) * 320 + x;
                let mut px = [0u8; 8];
                if xor {
                    c.read_bytes(at, &mut px);
                }
                for (k, p) in px.iter_mut().enumerate() {
                    let on = bits & (0x80 >> k) != 0;
                    *p = match (xor, on) {
                        (true, true) => *p ^ fg,
                        (true, false) => *p,
                        (false, true) => fg,
                        (false, false) => 0,
                    };
                }
                c.write_bytes(at, &px);
            }
        }
        Gfx::Planar { bpl } => {
            let page_size = c.bda16(PAGE_SIZE) as u32;
            let base = 0xA0000 + page as u32 * page_size;
            gc_set(c, 5, 0x02);
            for (r, &bits) in glyph.iter().enumerate() {
                let at = base + (y + r as u32) * bpl + col as u32;
                if xor {
                    gc_set(c, 3, 0x18);
                    gc_set(c, 8, bits);
                    let _ = c.phys_rd8(at);
                    c.phys_wr8(at, fg & 0x0F);
                } else {
                    gc_set(c, 8, 0xFF);
                    c.phys_wr8(at, 0);
                    // Reload the latches (now the cleared cell) for the
                    // pixels the bit mask keeps.
                    let _ = c.phys_rd8(at);
                    gc_set(c, 8, bits);
                    c.phys_wr8(at, fg & 0x0F);
                }
            }
            gc_set(c, 3, 0);
            gc_set(c, 8, 0xFF);
            gc_set(c, 5, 0);
        }
        Gfx::Cga2 | Gfx::Cga1 => {
            for (r, &bits) in glyph.iter().enumerate() {
                for k in 0..8u32 {
                    let on = bits & (0x80 >> k) != 0;
                    if xor && !on {
                        continue;
                    }
                    put_pixel(c, g, page, x + k, y + r as u32, if on { fg } else { 0 });
                }
            }
        }
    }
}

/// Scroll a window of character cells in a graphics mode, filling with
/// colour `fill`.
fn scroll_graphics(c: &mut Ctx, g: Gfx, n: u16, fill: u8, win: Window, up: bool) {
    let h = c.bda16(CHAR_HEIGHT).clamp(1, 32) as u32;
    let Window { top: r0, left: c0, bottom: r1, right: c1 } = win;
    let height = r1 - r0 + 1;
    let n = if n == 0 || n > height { height } else { n };
    // Byte address of pixel row y, cell column col, and bytes per cell.
    let (per_cell, line_at): (u32, Box<dyn Fn(u32) -> u32>) = match g {
        Gfx::Byte => (8, Box::new(|y| 0xA0000 + y * 320)),
        Gfx::Planar { bpl } => (1, Box::new(move |y| 0xA0000 + y * bpl)),
        Gfx::Cga2 => (2, Box::new(|y| 0xB8000 + (y & 1) * 0x2000 + (y >> 1) * 80)),
        Gfx::Cga1 => (1, Box::new(|y| 0xB8000 + (y & 1) * 0x2000 + (y >> 1) * 80)),
    };
    let x0 = c0 as u32 * per_cell;
    let len = (c1 - c0 + 1) as u32 * per_cell;
    let planar = matches!(g, Gfx::Planar { .. });
    if planar {
        // Write mode 1: each write stores the latches the read loaded (all
        // four planes at once).
        gc_set(c, 5, 0x01);
    }
    let mut buf = vec![0u8; len as usize];
    for i in 0..height {
        let dst = if up { r0 + i } else { r1 - i };
        let src_i = i + n;
        for line in 0..h {
            let to = line_at(dst as u32 * h + line) + x0;
            if src_i < height {
                let src = if up { r0 + src_i } else { r1 - src_i };
                let from = line_at(src as u32 * h + line) + x0;
                if planar {
                    for k in 0..len {
                        let _ = c.phys_rd8(from + k);
                        c.phys_wr8(to + k, 0);
                    }
                } else {
                    c.read_bytes(from, &mut buf);
                    c.write_bytes(to, &buf);
                }
            } else if planar {
                gc_set(c, 5, 0x02);
                buf.fill(fill & 0x0F);
                c.write_bytes(to, &buf);
                gc_set(c, 5, 0x01);
            } else {
                let v = match g {
                    Gfx::Cga2 => (fill & 3) * 0x55,
                    Gfx::Cga1 => {
                        if fill & 1 != 0 {
                            0xFF
                        } else {
                            0
                        }
                    }
                    _ => fill,
                };
                buf.fill(v);
                c.write_bytes(to, &buf);
            }
        }
    }
    if planar {
        gc_set(c, 5, 0x00);
    }
}

// ---- AH=10h: palette registers and the DAC ----------------------------

/// Select attribute register `index` for a read or write (resetting the
/// flip-flop first).
fn attr_select(c: &mut Ctx, index: u8) {
    let status = crtc_port(c) + 6;
    let _ = c.inb(status);
    c.outb(0x3C0, index);
}

fn attr_write(c: &mut Ctx, index: u8, v: u8) {
    attr_select(c, index);
    c.outb(0x3C0, v);
    c.outb(0x3C0, 0x20);
}

fn attr_read(c: &mut Ctx, index: u8) -> u8 {
    attr_select(c, index);
    let v = c.inb(0x3C1);
    // The flip-flop still expects data: reset it before turning the
    // display back on with the index write.
    let status = crtc_port(c) + 6;
    let _ = c.inb(status);
    c.outb(0x3C0, 0x20);
    v
}

fn palette_services(c: &mut Ctx) {
    match c.al() {
        0x00 => {
            let (reg, v) = (c.bl() & 0x1F, c.bh());
            if reg < 0x15 {
                attr_write(c, reg, v);
            }
        }
        0x01 => {
            let v = c.bh();
            attr_write(c, 0x11, v);
        }
        0x02 => {
            let mut regs = [0u8; 17];
            c.read_bytes(c.lin(SegReg::Es, c.dx()), &mut regs);
            for (i, &v) in regs.iter().enumerate() {
                attr_write(c, if i == 16 { 0x11 } else { i as u8 }, v);
            }
        }
        0x03 => {
            let blink = c.bl() & 1 != 0;
            let mode = attr_read(c, 0x10);
            attr_write(c, 0x10, (mode & !0x08) | if blink { 0x08 } else { 0 });
            let ctrl = c.bda8(MODE_CTRL);
            c.set_bda8(MODE_CTRL, (ctrl & !0x20) | if blink { 0x20 } else { 0 });
        }
        0x07 => {
            let reg = c.bl() & 0x1F;
            let v = attr_read(c, reg);
            c.set_bh(v);
        }
        0x08 => {
            let v = attr_read(c, 0x11);
            c.set_bh(v);
        }
        0x09 => {
            let mut regs = [0u8; 17];
            for (i, r) in regs.iter_mut().enumerate() {
                *r = attr_read(c, if i == 16 { 0x11 } else { i as u8 });
            }
            let at = c.lin(SegReg::Es, c.dx());
            c.write_bytes(at, &regs);
        }
        0x10 => {
            let (i, r, g, b) = (c.bx() as u8, c.dh(), c.ch(), c.cl());
            c.outb(0x3C8, i);
            for v in [r, g, b] {
                c.outb(0x3C9, v);
            }
        }
        0x12 => {
            let (first, count) = (c.bx().min(255), c.cx().min(256));
            let count = count.min(256 - first);
            let mut rgb = vec![0u8; count as usize * 3];
            c.read_bytes(c.lin(SegReg::Es, c.dx()), &mut rgb);
            c.outb(0x3C8, first as u8);
            for v in rgb {
                c.outb(0x3C9, v);
            }
        }
        0x13 => {
            let (sel, v) = (c.bl(), c.bh());
            if sel == 0 {
                let mode = attr_read(c, 0x10);
                attr_write(c, 0x10, (mode & 0x7F) | (v & 1) << 7);
            } else {
                let mode = attr_read(c, 0x10);
                let page = if mode & 0x80 != 0 { v & 0x0F } else { (v & 3) << 2 };
                attr_write(c, 0x14, page);
            }
        }
        0x15 => {
            let i = c.bx() as u8;
            c.outb(0x3C7, i);
            let (r, g, b) = (c.inb(0x3C9), c.inb(0x3C9), c.inb(0x3C9));
            c.set_dh(r);
            c.set_ch(g);
            c.set_cl(b);
        }
        0x17 => {
            let (first, count) = (c.bx().min(255), c.cx().min(256));
            let count = count.min(256 - first);
            c.outb(0x3C7, first as u8);
            let rgb: Vec<u8> = (0..count as usize * 3).map(|_| c.inb(0x3C9)).collect();
            let at = c.lin(SegReg::Es, c.dx());
            c.write_bytes(at, &rgb);
        }
        0x18 => {
            let v = c.bl();
            c.outb(0x3C6, v);
        }
        0x19 => {
            let v = c.inb(0x3C6);
            c.set_bl(v);
        }
        0x1A => {
            let mode = attr_read(c, 0x10);
            let page = attr_read(c, 0x14);
            c.set_bl(mode >> 7);
            c.set_bh(if mode & 0x80 != 0 { page & 0x0F } else { (page >> 2) & 3 });
        }
        al => tracing::debug!("own BIOS: INT 10h AX=10{al:02X}h is not implemented"),
    }
}

// ---- AH=11h: fonts ---------------------------------------------------------

/// Reprogram the text geometry for `height`-line characters (AX=111xh):
/// maximum scan line, cursor, rows on the 400-line screen, data area.
fn set_char_height(c: &mut Ctx, height: u8) {
    let h = height.clamp(1, 32);
    let port = crtc_port(c);
    c.outb(port, 0x09);
    let max = c.inb(port + 1);
    c.outb(port + 1, (max & 0xE0) | (h - 1));
    // Cursor on the last two lines but one, as the BIOS sets it.
    c.outb(port, 0x0A);
    c.outb(port + 1, h.saturating_sub(3));
    c.outb(port, 0x0B);
    c.outb(port + 1, h.saturating_sub(2));
    let rows = (400 / h as u16).clamp(1, 100);
    // Vertical display end: rows * height - 1 scan lines (the 400-line
    // timing stays).
    let end = rows * h as u16 - 1;
    c.outb(port, 0x12);
    c.outb(port + 1, end as u8);
    c.set_bda8(ROWS_MINUS_1, (rows - 1) as u8);
    c.set_bda16(CHAR_HEIGHT, h as u16);
    let cols = c.bda16(COLUMNS);
    c.set_bda16(PAGE_SIZE, (rows * cols * 2).next_power_of_two().max(0x800));
}

/// ROM offset and height of built-in font `which` (1: 8x14, 2: 8x8, 4:
/// 8x16).
fn rom_font(which: u8) -> (u16, u8) {
    match which {
        1 => (super::rom::FONT14_AT, 14),
        2 => (super::rom::FONT8_FULL_AT, 8),
        _ => (super::rom::FONT16_AT, 16),
    }
}

fn font_services(c: &mut Ctx) {
    let al = c.al();
    match al {
        0x00 | 0x10 => {
            let (count, first, block, height) = (c.cx(), c.dx(), c.bl(), c.bh().clamp(1, 32));
            let count = count.min(256);
            let mut glyphs = vec![0u8; count as usize * height as usize];
            c.read_bytes(c.lin(SegReg::Es, c.bp()), &mut glyphs);
            vgahw::load_font(c, &glyphs, height, block & 7, first as u8, count);
            if al == 0x10 {
                set_char_height(c, height);
            }
        }
        0x01 | 0x02 | 0x04 | 0x11 | 0x12 | 0x14 => {
            let (_, h) = rom_font(al & 0x0F);
            let block = c.bl() & 7;
            vgahw::load_font(c, vgahw::builtin_font(h), h, block, 0, 256);
            if al & 0x10 != 0 {
                set_char_height(c, h);
            }
        }
        0x03 => {
            let v = c.bl();
            c.outb(0x3C4, 0x03);
            c.outb(0x3C5, v);
        }
        0x20 => {
            // INT 1Fh: the user's graphics font for characters 80h-FFh.
            let (seg, off) = (c.cpu.state.seg(SegReg::Es).selector, c.bp());
            c.wr16(0x1F * 4, off);
            c.wr16(0x1F * 4 + 2, seg);
        }
        0x21..=0x24 => {
            // INT 43h: the graphics font (21h: user's at ES:BP, CX bytes
            // per character; 22h 8x14, 23h 8x8, 24h 8x16).
            let (seg, off, h) = match al {
                0x21 => (c.cpu.state.seg(SegReg::Es).selector, c.bp(), c.cx()),
                0x22 => (super::rom::ROM_SEGMENT, super::rom::FONT14_AT, 14),
                0x23 => (super::rom::ROM_SEGMENT, super::rom::FONT8_FULL_AT, 8),
                _ => (super::rom::ROM_SEGMENT, super::rom::FONT16_AT, 16),
            };
            c.wr16(0x43 * 4, off);
            c.wr16(0x43 * 4 + 2, seg);
            c.set_bda16(CHAR_HEIGHT, h.clamp(1, 32));
        }
        0x30 => {
            // Font information: ES:BP of font BH, CX = bytes per character
            // of the current font, DL = rows - 1.
            let (seg, off) = match c.bh() {
                0 => (c.rd16(0x1F * 4 + 2), c.rd16(0x1F * 4)),
                1 => (c.rd16(0x43 * 4 + 2), c.rd16(0x43 * 4)),
                2 | 5 => (super::rom::ROM_SEGMENT, super::rom::FONT14_AT),
                3 => (super::rom::ROM_SEGMENT, super::rom::FONT8_FULL_AT),
                4 => (super::rom::ROM_SEGMENT, super::rom::FONT8_FULL_AT + 128 * 8),
                _ => (super::rom::ROM_SEGMENT, super::rom::FONT16_AT),
            };
            c.set_sel(SegReg::Es, seg);
            c.set_bp(off);
            let h = c.bda16(CHAR_HEIGHT);
            c.set_cx(h);
            let rows = c.bda8(ROWS_MINUS_1);
            c.set_dl(rows);
        }
        al => tracing::debug!("own BIOS: INT 10h AX=11{al:02X}h is not implemented"),
    }
}

// ---- AH=1Bh/1Ch: state information, save and restore -----------------------

/// AH=1Bh BX=0: the 64-byte functionality/state block at ES:DI (the
/// static functionality table pointer is 0: not provided).
fn state_information(c: &mut Ctx) {
    let mut b = [0u8; 64];
    b[4] = c.bda8(MODE);
    b[5..7].copy_from_slice(&c.bda16(COLUMNS).to_le_bytes());
    b[7..9].copy_from_slice(&c.bda16(PAGE_SIZE).to_le_bytes());
    b[9..11].copy_from_slice(&c.bda16(PAGE_START).to_le_bytes());
    for p in 0..8u16 {
        let v = c.bda16(CURSOR_POS + 2 * p);
        b[11 + 2 * p as usize..13 + 2 * p as usize].copy_from_slice(&v.to_le_bytes());
    }
    let shape = c.bda16(CURSOR_SHAPE);
    b[0x1B] = (shape >> 8) as u8;
    b[0x1C] = shape as u8;
    b[0x1D] = c.bda8(ACTIVE_PAGE);
    b[0x1E..0x20].copy_from_slice(&c.bda16(CRTC_BASE).to_le_bytes());
    b[0x20] = c.bda8(MODE_CTRL);
    b[0x21] = c.bda8(PALETTE);
    b[0x22] = c.bda8(ROWS_MINUS_1) + 1;
    b[0x23..0x25].copy_from_slice(&c.bda16(CHAR_HEIGHT).to_le_bytes());
    b[0x25] = 0x08; // active display: VGA with colour display
    b[0x27..0x29].copy_from_slice(&256u16.to_le_bytes()); // colours
    b[0x29] = 8; // pages
    b[0x2A] = 2; // 400 scan lines
    b[0x2D] = if c.bda8(MODE_CTRL) & 0x20 != 0 { 0x20 } else { 0 };
    b[0x31] = 3; // 256 KiB of video memory
    let at = c.lin(SegReg::Es, c.di());
    c.write_bytes(at, &b);
    c.set_al(0x1B);
}

/// Bytes of each part of a saved state (AH=1Ch CX bit 0: registers, 1:
/// BIOS data, 2: DAC).
const STATE_REGS: usize = 1 + 5 + 25 + 9 + 21;
const STATE_BDA: usize = 0x67 - 0x49 + 0x8B - 0x84;
const STATE_DAC: usize = 2 + 768;

/// AH=1Ch: AL=0 size (BX in 64-byte blocks), 1 save, 2 restore the parts
/// CX selects at ES:BX (the layout is this BIOS's own: a part mask, then
/// each selected part).
fn save_restore_state(c: &mut Ctx) {
    let parts = c.cx() & 7;
    let size = 2
        + if parts & 1 != 0 { STATE_REGS } else { 0 }
        + if parts & 2 != 0 { STATE_BDA } else { 0 }
        + if parts & 4 != 0 { STATE_DAC } else { 0 };
    let at = c.lin(SegReg::Es, c.bx());
    match c.al() {
        0 => {
            c.set_bx(size.div_ceil(64) as u16);
            c.set_al(0x1C);
        }
        1 => {
            let mut b = vec![parts as u8, 0];
            if parts & 1 != 0 {
                b.push(c.inb(0x3CC));
                for i in 0..5u8 {
                    c.outb(0x3C4, i);
                    b.push(c.inb(0x3C5));
                }
                let port = if b[2] & 1 != 0 { 0x3D4 } else { 0x3B4 };
                for i in 0..25u8 {
                    c.outb(port, i);
                    b.push(c.inb(port + 1));
                }
                for i in 0..9u8 {
                    c.outb(0x3CE, i);
                    b.push(c.inb(0x3CF));
                }
                for i in 0..21u8 {
                    b.push(attr_read(c, i));
                }
            }
            if parts & 2 != 0 {
                for off in (0x49..0x67).chain(0x84..0x8B) {
                    b.push(c.bda8(off));
                }
            }
            if parts & 4 != 0 {
                b.push(c.inb(0x3C6));
                b.push(c.inb(0x3C8));
                c.outb(0x3C7, 0);
                for _ in 0..768 {
                    b.push(c.inb(0x3C9));
                }
                // Reading moved the write index: put it back.
                let w = b[b.len() - 769];
                c.outb(0x3C8, w);
            }
            c.write_bytes(at, &b);
            c.set_al(0x1C);
        }
        2 => {
            let mut b = vec![0u8; size];
            c.read_bytes(at, &mut b);
            let mut i = 2;
            if parts & 1 != 0 {
                let r = &b[i..i + STATE_REGS];
                c.outb(0x3C4, 0);
                c.outb(0x3C5, 0x01);
                c.outb(0x3C2, r[0]);
                for k in 1..5u8 {
                    c.outb(0x3C4, k);
                    c.outb(0x3C5, r[k as usize + 1]);
                }
                c.outb(0x3C4, 0);
                c.outb(0x3C5, r[1] | 0x03);
                let port = if r[0] & 1 != 0 { 0x3D4 } else { 0x3B4 };
                c.outb(port, 0x11);
                c.outb(port + 1, 0);
                for k in 0..25u8 {
                    c.outb(port, k);
                    c.outb(port + 1, r[6 + k as usize]);
                }
                for k in 0..9u8 {
                    c.outb(0x3CE, k);
                    c.outb(0x3CF, r[31 + k as usize]);
                }
                for k in 0..21u8 {
                    attr_write(c, k, r[40 + k as usize]);
                }
                i += STATE_REGS;
            }
            if parts & 2 != 0 {
                for (k, off) in (0x49..0x67).chain(0x84..0x8B).enumerate() {
                    c.set_bda8(off, b[i + k]);
                }
                i += STATE_BDA;
            }
            if parts & 4 != 0 {
                c.outb(0x3C6, b[i]);
                c.outb(0x3C8, 0);
                for k in 0..768 {
                    c.outb(0x3C9, b[i + 2 + k]);
                }
                c.outb(0x3C8, b[i + 1]);
            }
            c.set_al(0x1C);
        }
        _ => {}
    }
}

/// AH=13h: write string ES:BP of CX characters at DH,DL on page BH; AL
/// bit 0 = move the cursor, bit 1 = the string alternates char/attribute.
fn write_string(c: &mut Ctx) {
    let (flags, page, attr, len) = (c.al(), c.bh(), c.bl(), c.cx());
    let saved = cursor(c, page);
    set_cursor(c, page, c.dh() as u16, c.dl() as u16);
    let mut at = c.lin(SegReg::Es, c.bp());
    let s = screen(c);
    for _ in 0..len {
        let ch = c.rd8(at);
        at = at.wrapping_add(1);
        let a = if flags & 2 != 0 {
            let a = c.rd8(at);
            at = at.wrapping_add(1);
            a
        } else {
            attr
        };
        if !matches!(ch, 0x07 | 0x08 | 0x0A | 0x0D) && s.text {
            let (row, col) = cursor(c, page);
            let cell_at = cell(&s, page, row.min(s.rows - 1), col.min(s.cols - 1));
            c.wr8(cell_at + 1, a);
        }
        teletype(c, page, ch, true);
    }
    if flags & 1 == 0 {
        set_cursor(c, page, saved.0, saved.1);
    }
}
