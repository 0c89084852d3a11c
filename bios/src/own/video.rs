//! INT 10h: the video services of a VGA BIOS on the board's VGA. Mode sets
//! program the adapter through its ports (`vgahw.rs`: register tables,
//! DAC palettes, the text font into plane 2); text output goes through the
//! memory window (B8000h, B0000h in mode 7) and keeps the video fields of
//! the data area (IBM PC/AT layout, 40:49-40:66 and the EGA/VGA fields
//! 40:84-40:8A). Teletype output (AH=0Eh, AH=13h) is mirrored to the
//! platform console. The cursor shape follows CGA-style values scaled to
//! the character height (cursor emulation). VBE (AH=4Fh) is `vbe.rs`.
//!
//! Graphics modes are set completely, but the character services draw
//! only in text modes. Not implemented yet: pixel read/write (AH=0Ch/0Dh),
//! text in graphics modes, font loads (AH=11h), palette services (AH=10h),
//! state save/restore (AH=1Ch).

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
    if r0 > r1 || c0 > c1 || !s.text {
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
        let at = cell(&s, page, s.rows - 1, 0) + 1;
        let attr = match c.rd8(at) {
            0 => 0x07,
            a => a,
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
        0x10 => {}
        0x11 if c.al() == 0x30 => {
            // Font information: every font points at the ROM's (empty)
            // 8x8 table; CX = bytes per character, DL = rows - 1.
            let font = super::rom::ROM_SEGMENT;
            let off = super::rom::FONT8;
            c.set_sel(SegReg::Es, font);
            c.set_bp(off);
            let h = c.bda16(CHAR_HEIGHT);
            c.set_cx(h);
            let rows = c.bda8(ROWS_MINUS_1);
            c.set_dl(rows);
        }
        0x11 => {}
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
