//! `vga`: the project's VGA test program. Each [`Scene`] sets one standard
//! mode through INT 10h, draws a fixed picture through the adapter's own
//! mechanisms, and exits through port 0xF4 (value 0), so a run with
//! `--screenshot-on-exit` captures the picture for comparison with an
//! expected image.
//!
//! - Text (40 and 80 columns): all 256 characters in a grid with their
//!   attributes (no blink bit), a box of line-graphics characters (the
//!   ninth column), a title through INT 10h AH=13h; cursor hidden.
//! - Modes 0Dh and 12h (16-colour planar): 16 bands in write mode 2, a
//!   rectangle XORed in with set/reset through the latches, a diagonal
//!   line drawn one pixel at a time with the bit mask, a checkerboard in
//!   write mode 3 over the latches.
//! - Mode 13h: the 256 DAC colours as a 16x16 grid (chain-4).
//! - Mode X: mode 13h unchained to 320x240 (four planes, byte mode), an
//!   x XOR y pattern written plane by plane through the map mask.
//! - BIOS text services: mode 3 with the 8x8 font (AX=1112h: 50 rows),
//!   bright backgrounds instead of blink (AX=1003h), a palette register
//!   and a DAC entry changed (AX=1000h, 1010h), 50 lines of teletype
//!   output so the screen scrolls.
//! - BIOS graphics services: mode 12h, teletype and AH=09h text in
//!   colours (drawn from the INT 43h font), pixels through AH=0Ch (a box,
//!   an XOR line) read back through AH=0Dh, a DAC change for the
//!   background, and enough lines to scroll the graphics screen.
//! - CGA modes 04h (320x200, 4 colours) and 06h (640x200, 2 colours):
//!   text and pixels through the BIOS (both memory banks, XOR), and the
//!   video state saved (AX=1C01h), spoiled and restored (AX=1C02h).
//! - VBE: controller and mode information (checked), mode 144h (1024x768,
//!   32 bits per pixel) with the linear framebuffer, a colour gradient
//!   written through it from unreal mode at the address the mode
//!   information gives; then the same mode windowed with memory kept and
//!   white bars written through the 64 KiB bank window after AX=4F05h.

use super::asm::{Code, Image, R};
use super::bios_rt::*;
use iced_x86::code_asm::*;

/// One picture of the test program.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scene {
    Text40,
    Text80,
    Mode0D,
    Mode12,
    Mode13,
    ModeX,
    Vbe,
    BiosText50,
    BiosGraphics,
    Cga4,
    Cga6,
}

impl Scene {
    pub const ALL: [Scene; 11] = [
        Scene::Text40,
        Scene::Text80,
        Scene::Mode0D,
        Scene::Mode12,
        Scene::Mode13,
        Scene::ModeX,
        Scene::Vbe,
        Scene::BiosText50,
        Scene::BiosGraphics,
        Scene::Cga4,
        Scene::Cga6,
    ];

    /// A short name (file names of expected images).
    pub fn name(self) -> &'static str {
        match self {
            Scene::Text40 => "text40",
            Scene::Text80 => "text80",
            Scene::Mode0D => "mode0d",
            Scene::Mode12 => "mode12",
            Scene::Mode13 => "mode13",
            Scene::ModeX => "modex",
            Scene::Vbe => "vbe1024x768x32",
            Scene::BiosText50 => "bios-text50",
            Scene::BiosGraphics => "bios-mode12",
            Scene::Cga4 => "cga-mode04",
            Scene::Cga6 => "cga-mode06",
        }
    }

    /// The picture's size in pixels.
    pub fn size(self) -> (u32, u32) {
        match self {
            Scene::Text40 => (360, 400),
            Scene::Text80 => (720, 400),
            Scene::Mode0D | Scene::Mode13 => (320, 200),
            Scene::Mode12 => (640, 480),
            Scene::ModeX => (320, 240),
            Scene::Vbe => (1024, 768),
            Scene::BiosText50 => (720, 400),
            Scene::BiosGraphics => (640, 480),
            Scene::Cga4 => (320, 200),
            Scene::Cga6 => (640, 200),
        }
    }
}

/// A floppy image that draws `scene`.
pub fn image(scene: Scene) -> Vec<u8> {
    let prog = program("vga", move |c, img| body(c, img, scene));
    floppy(&prog)
}

fn body(c: &mut Code, img: &mut Image, scene: Scene) -> R {
    match scene {
        Scene::Text40 => text(c, img, 1, 40),
        Scene::Text80 => text(c, img, 3, 80),
        Scene::Mode0D => planar(c, 0x0D, 40, 200),
        Scene::Mode12 => planar(c, 0x12, 80, 480),
        Scene::Mode13 => mode13(c),
        Scene::ModeX => mode_x(c),
        Scene::Vbe => vbe(c, img),
        Scene::BiosText50 => bios_text50(c),
        Scene::BiosGraphics => bios_graphics(c),
        Scene::Cga4 => cga(c, 4),
        Scene::Cga6 => cga(c, 6),
    }
}

fn set_mode(c: &mut Code, mode: u8) -> R {
    c.mov(ax, mode as u32)?;
    c.int(0x10)
}

/// OUT of an index/data pair as one 16-bit write.
fn out_pair(c: &mut Code, port: u16, index: u8, value: u8) -> R {
    c.mov(dx, port as u32)?;
    c.mov(ax, (value as u32) << 8 | index as u32)?;
    c.out(dx, ax)
}

fn out8(c: &mut Code, port: u16, value: u8) -> R {
    c.mov(dx, port as u32)?;
    c.mov(al, value as u32)?;
    c.out(dx, al)
}

fn es_to(c: &mut Code, seg: u16) -> R {
    c.mov(ax, seg as u32)?;
    c.mov(es, ax)
}

fn text(c: &mut Code, img: &mut Image, mode: u8, cols: u32) -> R {
    set_mode(c, mode)?;
    // Hide the cursor (CH bit 5).
    c.mov(ah, 0x01)?;
    c.mov(cx, 0x2000u32)?;
    c.int(0x10)?;
    // Title through AH=13h (string with attribute BL at DH,DL).
    let title = format!("ferrite VGA mode {mode}");
    let mut skip = c.fresh();
    let at = img.addr("vga.title");
    c.jmp(skip)?;
    c.here("vga.title")?;
    c.db(title.as_bytes())?;
    c.set(&mut skip)?;
    c.push(cs)?;
    c.pop(es)?;
    c.mov(ax, 0x1300u32)?;
    c.mov(bx, 0x001Eu32)?;
    c.mov(cx, title.len() as u32)?;
    c.mov(dx, 0x0001u32)?;
    c.mov(bp, at)?;
    c.int(0x10)?;
    // The 256 characters: `per` per row, every other column, from row 2.
    es_to(c, 0xB800)?;
    let per = cols / 2 - 4;
    let per: u32 = if per >= 32 { 32 } else { 16 };
    c.xor(bx, bx)?;
    let mut l = c.fresh();
    c.set(&mut l)?;
    c.mov(ax, bx)?;
    c.mov(cl, per.trailing_zeros())?;
    c.shr(ax, cl)?;
    c.imul_3(di, ax, (cols * 2) as i32)?;
    c.mov(ax, bx)?;
    c.and(ax, per - 1)?;
    c.shl(ax, 2)?;
    c.add(di, ax)?;
    c.add(di, (2 * cols * 2 + 4 * 2) as i32)?;
    c.mov(al, bl)?;
    c.mov(ah, bl)?;
    c.and(ah, 0x7F)?;
    let mut nonzero = c.fresh();
    c.jnz(nonzero)?;
    c.mov(ah, 0x70)?;
    c.set(&mut nonzero)?;
    c.mov(word_ptr(di).es(), ax)?;
    c.inc(bx)?;
    c.cmp(bx, 256)?;
    c.jb(l)?;
    // A box of line-graphics characters below the grid.
    let top = 2 + 256 / per + 1;
    let width = cols - 8;
    let cell = |row: u32, col: u32| (row * cols + col) * 2;
    for col in 0..width {
        let (t, b) = match col {
            0 => (0xDA, 0xC0),
            x if x == width - 1 => (0xBF, 0xD9),
            _ => (0xC4, 0xC4),
        };
        c.mov(word_ptr(cell(top, 4 + col)).es(), 0x1F00u32 | t)?;
        c.mov(word_ptr(cell(top + 2, 4 + col)).es(), 0x1F00u32 | b)?;
        c.mov(word_ptr(cell(top + 1, 4 + col)).es(), if col == 0 || col == width - 1 { 0x1FB3u32 } else { 0x1FB0 })?;
    }
    Ok(())
}

/// Load the latches from ES:DI and write AL there (the write modes that
/// combine with the latches).
fn latch_write(c: &mut Code) -> R {
    c.mov(ah, byte_ptr(di).es())?;
    c.mov(byte_ptr(di).es(), al)
}

fn planar(c: &mut Code, mode: u8, w: u32, h: u32) -> R {
    set_mode(c, mode)?;
    es_to(c, 0xA000)?;
    c.cld()?;
    // Bands of the 16 colours in write mode 2 over the top half.
    out_pair(c, 0x3CE, 5, 0x02)?;
    out_pair(c, 0x3CE, 8, 0xFF)?;
    let rows = h / 32;
    for k in 0..16u32 {
        c.mov(di, k * rows * w)?;
        c.mov(cx, rows * w)?;
        c.mov(al, k)?;
        c.rep().stosb()?;
    }
    // Write mode 0, set/reset white on all planes, XOR with the latches:
    // a rectangle of inverted colours across the bands.
    out_pair(c, 0x3CE, 5, 0x00)?;
    out_pair(c, 0x3CE, 1, 0x0F)?;
    out_pair(c, 0x3CE, 0, 0x0F)?;
    out_pair(c, 0x3CE, 3, 0x18)?;
    c.mov(bx, h / 8)?;
    let mut ly = c.fresh();
    c.set(&mut ly)?;
    c.imul_3(di, bx, w as i32)?;
    c.add(di, (w / 4) as i32)?;
    c.mov(cx, w / 4)?;
    let mut lx = c.fresh();
    c.set(&mut lx)?;
    latch_write(c)?;
    c.inc(di)?;
    c.loop_(lx)?;
    c.inc(bx)?;
    c.cmp(bx, (3 * h / 8) as i32)?;
    c.jb(ly)?;
    // A yellow diagonal in the bottom half, one pixel per write through
    // the bit mask (replace).
    out_pair(c, 0x3CE, 3, 0x00)?;
    out_pair(c, 0x3CE, 0, 0x0E)?;
    c.xor(si, si)?;
    let mut ld = c.fresh();
    c.set(&mut ld)?;
    // Bit mask 80h >> (x & 7).
    c.mov(cx, si)?;
    c.and(cl, 7)?;
    c.mov(ah, 0x80)?;
    c.shr(ah, cl)?;
    c.mov(al, 8)?;
    c.mov(dx, 0x3CEu32)?;
    c.out(dx, ax)?;
    c.lea(ax, word_ptr(si + h / 2))?;
    c.imul_3(di, ax, w as i32)?;
    c.mov(ax, si)?;
    c.shr(ax, 3)?;
    c.add(di, ax)?;
    latch_write(c)?;
    c.inc(si)?;
    c.cmp(si, (h / 2) as i32)?;
    c.jb(ld)?;
    // Write mode 3: set/reset light red where the rotated CPU byte (AND
    // the bit mask) has ones; a checkerboard over the latches.
    out_pair(c, 0x3CE, 1, 0x00)?;
    out_pair(c, 0x3CE, 8, 0xFF)?;
    out_pair(c, 0x3CE, 0, 0x0C)?;
    out_pair(c, 0x3CE, 5, 0x03)?;
    c.mov(bx, h / 2 + 8)?;
    let mut cy = c.fresh();
    c.set(&mut cy)?;
    c.imul_3(di, bx, w as i32)?;
    c.add(di, (w / 2 + 2) as i32)?;
    c.mov(al, 0xAA)?;
    c.test(bl, 1)?;
    let mut even = c.fresh();
    c.jz(even)?;
    c.mov(al, 0x55)?;
    c.set(&mut even)?;
    c.mov(cx, w / 4)?;
    let mut cx_l = c.fresh();
    c.set(&mut cx_l)?;
    latch_write(c)?;
    c.inc(di)?;
    c.loop_(cx_l)?;
    c.inc(bx)?;
    c.cmp(bx, (h / 2 + 8 + h / 4) as i32)?;
    c.jb(cy)?;
    out_pair(c, 0x3CE, 5, 0x00)?;
    out_pair(c, 0x3CE, 0, 0x00)
}

fn mode13(c: &mut Code) -> R {
    set_mode(c, 0x13)?;
    es_to(c, 0xA000)?;
    c.cld()?;
    c.xor(di, di)?;
    c.xor(bx, bx)?;
    let mut ly = c.fresh();
    c.set(&mut ly)?;
    c.xor(cx, cx)?;
    let mut lx = c.fresh();
    c.set(&mut lx)?;
    // Colour (y / 12) * 16 + x / 20, the last rows in row 15's colours.
    c.mov(ax, bx)?;
    c.mov(dl, 12)?;
    c.div(dl)?;
    c.cmp(al, 15)?;
    let mut ok = c.fresh();
    c.jbe(ok)?;
    c.mov(al, 15)?;
    c.set(&mut ok)?;
    c.shl(al, 4)?;
    c.mov(dh, al)?;
    c.mov(ax, cx)?;
    c.mov(dl, 20)?;
    c.div(dl)?;
    c.add(al, dh)?;
    c.stosb()?;
    c.inc(cx)?;
    c.cmp(cx, 320)?;
    c.jb(lx)?;
    c.inc(bx)?;
    c.cmp(bx, 200)?;
    c.jb(ly)
}

fn mode_x(c: &mut Code) -> R {
    set_mode(c, 0x13)?;
    // Unchain: sequential planes, no doubleword, byte mode.
    out_pair(c, 0x3C4, 4, 0x06)?;
    out_pair(c, 0x3D4, 0x14, 0x00)?;
    out_pair(c, 0x3D4, 0x17, 0xE3)?;
    // 480-line timing with each line doubled: 240 lines.
    out8(c, 0x3C2, 0xE3)?;
    out_pair(c, 0x3D4, 0x11, 0x2C)?;
    for (i, v) in
        [(0x06, 0x0D), (0x07, 0x3E), (0x09, 0x41), (0x10, 0xEA), (0x11, 0xAC), (0x12, 0xDF), (0x15, 0xE7), (0x16, 0x06)]
    {
        out_pair(c, 0x3D4, i, v)?;
    }
    es_to(c, 0xA000)?;
    c.cld()?;
    for p in 0..4u32 {
        out_pair(c, 0x3C4, 2, 1 << p)?;
        c.xor(di, di)?;
        c.xor(bx, bx)?;
        let mut ly = c.fresh();
        c.set(&mut ly)?;
        c.xor(si, si)?;
        let mut lx = c.fresh();
        c.set(&mut lx)?;
        // Pixel x = 4 * si + p on line bx: colour x XOR y.
        c.mov(ax, si)?;
        c.shl(ax, 2)?;
        c.add(ax, p as i32)?;
        c.xor(ax, bx)?;
        c.stosb()?;
        c.inc(si)?;
        c.cmp(si, 80)?;
        c.jb(lx)?;
        c.inc(bx)?;
        c.cmp(bx, 240)?;
        c.jb(ly)?;
    }
    out_pair(c, 0x3C4, 2, 0x0F)
}

fn vbe(c: &mut Code, img: &mut Image) -> R {
    const INFO: u32 = BUF;
    const MODE: u32 = BUF + 0x200;
    // Controller information into a "VBE2" block.
    c.mov(dword_ptr(INFO), u32::from_le_bytes(*b"VBE2"))?;
    c.mov(ax, 0x4F00u32)?;
    c.mov(di, INFO)?;
    c.int(0x10)?;
    check16(c, ax, 0x004F, "VBE 4F00h")?;
    c.mov(ax, word_ptr(INFO))?;
    check16(c, ax, u16::from_le_bytes(*b"VE"), "VBE signature")?;
    c.mov(ax, word_ptr(INFO + 4))?;
    check16(c, ax, 0x0300, "VBE version")?;
    // Mode information of 144h: 1024x768, 32 bits, a framebuffer.
    c.mov(ax, 0x4F01u32)?;
    c.mov(cx, 0x144u32)?;
    c.mov(di, MODE)?;
    c.int(0x10)?;
    check16(c, ax, 0x004F, "VBE 4F01h")?;
    c.mov(ax, word_ptr(MODE + 0x12))?;
    check16(c, ax, 1024, "mode 144h width")?;
    c.mov(ax, word_ptr(MODE + 0x10))?;
    check16(c, ax, 4096, "mode 144h bytes per line")?;
    c.mov(ax, 0x4F02u32)?;
    c.mov(bx, 0x4144u32)?;
    c.int(0x10)?;
    check16(c, ax, 0x004F, "VBE 4F02h")?;
    c.mov(ax, 0x4F03u32)?;
    c.int(0x10)?;
    check16(c, bx, 0x4144, "VBE 4F03h")?;
    // Unreal mode: FS with a 4 GiB limit.
    let gdtr = img.addr("vga.gdtr");
    c.cli()?;
    c.lgdt(word_ptr(gdtr))?;
    c.mov(eax, cr0)?;
    c.or(eax, 1)?;
    c.mov(cr0, eax)?;
    c.mov(bx, 8u32)?;
    c.mov(fs, bx)?;
    c.and(eax, !1i32)?;
    c.mov(cr0, eax)?;
    c.xor(ax, ax)?;
    c.mov(fs, ax)?;
    c.sti()?;
    // The gradient: red = x / 4, green = y / 3, blue = (x ^ y) & FFh.
    c.mov(edi, dword_ptr(MODE + 0x28))?;
    c.xor(edx, edx)?;
    let mut ly = c.fresh();
    c.set(&mut ly)?;
    c.xor(ecx, ecx)?;
    let mut lx = c.fresh();
    c.set(&mut lx)?;
    c.mov(eax, ecx)?;
    c.shr(eax, 2)?;
    c.shl(eax, 16)?;
    c.mov(ebx, edx)?;
    c.imul_3(ebx, ebx, 0x5556)?; // y / 3 as (y * 5556h) >> 16
    c.shr(ebx, 16)?;
    c.shl(ebx, 8)?;
    c.or(eax, ebx)?;
    c.mov(ebx, ecx)?;
    c.xor(ebx, edx)?;
    c.and(ebx, 0xFF)?;
    c.or(eax, ebx)?;
    c.mov(dword_ptr(edi).fs(), eax)?;
    c.add(edi, 4)?;
    c.inc(ecx)?;
    c.cmp(ecx, 1024)?;
    c.jb(lx)?;
    c.inc(edx)?;
    c.cmp(edx, 768)?;
    c.jb(ly)?;
    // The window is invalid while the linear framebuffer is on (VBE 3.0).
    c.mov(ax, 0x4F05u32)?;
    c.xor(bx, bx)?;
    c.mov(dx, 1u32)?;
    c.int(0x10)?;
    check16_mask(c, ax, 0xFF00, 0x0300, "VBE 4F05h in a linear mode")?;
    // The same mode windowed, memory kept (bit 15).
    c.mov(ax, 0x4F02u32)?;
    c.mov(bx, 0x8144u32)?;
    c.int(0x10)?;
    check16(c, ax, 0x004F, "VBE 4F02h windowed, memory kept")?;
    // Bank 1 (64 KiB on: lines 16-31), white over x 0-255 of each line.
    c.mov(ax, 0x4F05u32)?;
    c.xor(bx, bx)?;
    c.mov(dx, 1u32)?;
    c.int(0x10)?;
    check16(c, ax, 0x004F, "VBE 4F05h")?;
    es_to(c, 0xA000)?;
    c.cld()?;
    c.xor(bx, bx)?;
    let mut lb = c.fresh();
    c.set(&mut lb)?;
    c.mov(di, bx)?;
    c.shl(di, 12)?;
    c.mov(cx, 256u32)?;
    c.mov(eax, 0x00FF_FFFFu32)?;
    c.rep().stosd()?;
    c.inc(bx)?;
    c.cmp(bx, 16)?;
    c.jb(lb)?;
    let mut skip = c.fresh();
    c.jmp(skip)?;
    // GDT: null, flat 4 GiB data.
    c.here("vga.gdt")?;
    c.db(&[0; 8])?;
    c.db(&[0xFF, 0xFF, 0, 0, 0, 0x92, 0xCF, 0])?;
    c.here("vga.gdtr")?;
    let gdt = img.addr("vga.gdt");
    c.db(&[15, 0])?;
    c.db(&gdt.to_le_bytes())?;
    c.set(&mut skip)
}

/// What the key-echo program shows on its screen.
pub const KEY_ECHO_PROMPT: &str = "ferrite window test: keys echo to port E9h, q ends";

/// A floppy image for the window test: mode 3 with a prompt (and a
/// coloured bar, so the picture is not just text), then every key read
/// through INT 16h is echoed to the debug console until `q`, which ends
/// the run (exit value 0).
pub fn key_echo_image() -> Vec<u8> {
    let prog = program("keyecho", |c, img| {
        set_mode(c, 3)?;
        c.mov(ah, 0x01)?;
        c.mov(cx, 0x2000u32)?;
        c.int(0x10)?;
        let at = img.addr("keyecho.prompt");
        let mut skip = c.fresh();
        c.jmp(skip)?;
        c.here("keyecho.prompt")?;
        c.db(KEY_ECHO_PROMPT.as_bytes())?;
        c.set(&mut skip)?;
        c.push(cs)?;
        c.pop(es)?;
        c.mov(ax, 0x1300u32)?;
        c.mov(bx, 0x002Fu32)?;
        c.mov(cx, KEY_ECHO_PROMPT.len() as u32)?;
        c.mov(dx, 0x0200u32)?;
        c.mov(bp, at)?;
        c.int(0x10)?;
        // A bar of all 16 background colours on row 5.
        es_to(c, 0xB800)?;
        for i in 0..80u32 {
            c.mov(word_ptr((5 * 80 + i) * 2).es(), (((i / 5) << 4) << 8) | 0x20)?;
        }
        puts(c, "keyecho: ready\n")?;
        let mut l = c.fresh();
        let mut done = c.fresh();
        c.set(&mut l)?;
        c.xor(ah, ah)?;
        c.int(0x16)?;
        c.out(0xE9, al)?;
        c.cmp(al, b'q' as u32)?;
        c.je(done)?;
        c.jmp(l)?;
        c.set(&mut done)
    });
    floppy(&prog)
}

/// Teletype the string (AH=0Eh) in colour `colour` (graphics modes).
fn teletype(c: &mut Code, text: &str, colour: u8) -> R {
    for b in text.bytes() {
        c.mov(ax, 0x0E00u32 | b as u32)?;
        c.mov(bx, colour as u32)?;
        c.int(0x10)?;
    }
    Ok(())
}

/// Print "line NN" lines 1..=n through the teletype.
fn numbered_lines(c: &mut Code, n: u32, colour: u8) -> R {
    c.mov(si, 1u32)?;
    let mut l = c.fresh();
    c.set(&mut l)?;
    teletype(c, "line ", colour)?;
    // Two decimal digits of SI.
    c.mov(ax, si)?;
    c.mov(dl, 10)?;
    c.div(dl)?;
    c.add(ax, 0x3030)?;
    c.push(ax)?;
    c.mov(ah, 0x0E)?;
    c.mov(bx, colour as u32)?;
    c.int(0x10)?;
    c.pop(ax)?;
    c.mov(al, ah)?;
    c.mov(ah, 0x0E)?;
    c.mov(bx, colour as u32)?;
    c.int(0x10)?;
    teletype(c, "\r\n", colour)?;
    c.inc(si)?;
    c.cmp(si, n as i32)?;
    c.jbe(l)
}

fn bios_text50(c: &mut Code) -> R {
    set_mode(c, 3)?;
    c.mov(ax, 0x1112u32)?;
    c.xor(bl, bl)?;
    c.int(0x10)?;
    c.mov(ax, 0x1130u32)?;
    c.xor(bh, bh)?;
    c.int(0x10)?;
    c.xor(dh, dh)?;
    check16(c, dx, 49, "AX=1130h: 50 rows")?;
    check16(c, cx, 8, "AX=1130h: 8 lines per character")?;
    // Bright backgrounds instead of blinking.
    c.mov(ax, 0x1003u32)?;
    c.xor(bl, bl)?;
    c.int(0x10)?;
    // Palette register 1 shows colour 3Ah (bright green), DAC entry 3Ah
    // becomes orange.
    c.mov(ax, 0x1000u32)?;
    c.mov(bx, 0x3A01u32)?;
    c.int(0x10)?;
    c.mov(ax, 0x1010u32)?;
    c.mov(bx, 0x003Au32)?;
    c.mov(dh, 63)?;
    c.mov(cx, 0x2000u32)?;
    c.int(0x10)?;
    c.mov(ax, 0x1007u32)?;
    c.mov(bl, 1)?;
    c.int(0x10)?;
    c.mov(al, bh)?;
    c.xor(ah, ah)?;
    check16(c, ax, 0x3A, "AX=1007h reads palette register 1")?;
    c.mov(ah, 0x01)?;
    c.mov(cx, 0x2000u32)?;
    c.int(0x10)?;
    numbered_lines(c, 52, 0)?;
    // A bar of the 16 background colours (attributes 0x8F..) on the last row.
    es_to(c, 0xB800)?;
    for i in 0..80u32 {
        c.mov(word_ptr((48 * 80 + i) * 2).es(), (((i / 5) << 12) | 0x0F00) | b'#' as u32)?;
        c.mov(word_ptr((47 * 80 + i) * 2).es(), 0x0100u32 | (b'A' as u32 + (i % 26)))?;
    }
    Ok(())
}

fn bios_graphics(c: &mut Code) -> R {
    set_mode(c, 0x12)?;
    // A dark blue background through DAC entry 0.
    c.mov(ax, 0x1010u32)?;
    c.xor(bx, bx)?;
    c.xor(dh, dh)?;
    c.mov(cx, 0x0018u32)?;
    c.int(0x10)?;
    // A box outline 200x100 at (300, 200) in colour 10.
    let pixel = |c: &mut Code| -> R {
        c.mov(ax, 0x0C0Au32)?;
        c.xor(bh, bh)?;
        c.int(0x10)
    };
    c.mov(cx, 300u32)?;
    let mut top = c.fresh();
    c.set(&mut top)?;
    c.mov(dx, 200u32)?;
    pixel(c)?;
    c.mov(dx, 299u32)?;
    pixel(c)?;
    c.inc(cx)?;
    c.cmp(cx, 500)?;
    c.jb(top)?;
    c.mov(dx, 200u32)?;
    let mut side = c.fresh();
    c.set(&mut side)?;
    c.mov(cx, 300u32)?;
    pixel(c)?;
    c.mov(cx, 499u32)?;
    pixel(c)?;
    c.inc(dx)?;
    c.cmp(dx, 300)?;
    c.jb(side)?;
    // An XOR line (colour 8Fh) across the box.
    c.mov(cx, 250u32)?;
    let mut xl = c.fresh();
    c.set(&mut xl)?;
    c.mov(dx, 250u32)?;
    c.mov(ax, 0x0C8Fu32)?;
    c.xor(bh, bh)?;
    c.int(0x10)?;
    c.inc(cx)?;
    c.cmp(cx, 550)?;
    c.jb(xl)?;
    // Read back: the box edge is colour 10, XOR of 10 with 15 is 5.
    c.mov(ah, 0x0D)?;
    c.xor(bh, bh)?;
    c.mov(cx, 400u32)?;
    c.mov(dx, 200u32)?;
    c.int(0x10)?;
    c.xor(ah, ah)?;
    check16(c, ax, 10, "AH=0Dh reads the box edge")?;
    c.mov(ah, 0x0D)?;
    c.mov(cx, 300u32)?;
    c.mov(dx, 250u32)?;
    c.int(0x10)?;
    c.xor(ah, ah)?;
    check16(c, ax, 5, "AH=0Dh reads the XOR crossing")?;
    // Move the cursor down and print enough lines to scroll the box up
    // by three character rows (48 scan lines).
    c.mov(ah, 0x02)?;
    c.xor(bh, bh)?;
    c.mov(dx, 0x1A00u32)?;
    c.int(0x10)?;
    numbered_lines(c, 6, 0x0B)?;
    // Text at the top: teletype in yellow, ten red stars through AH=09h.
    c.mov(ah, 0x02)?;
    c.xor(bh, bh)?;
    c.mov(dx, 0x0101u32)?;
    c.int(0x10)?;
    teletype(c, "ferrite BIOS text in mode 12h\r\n", 0x0E)?;
    c.mov(ax, 0x092Au32)?;
    c.mov(bx, 0x000Cu32)?;
    c.mov(cx, 10u32)?;
    c.int(0x10)
}

fn cga(c: &mut Code, mode: u8) -> R {
    const STATE: u32 = BUF;
    set_mode(c, mode)?;
    let (w, colours) = if mode == 4 { (320u32, 3u8) } else { (640, 1) };
    teletype(c, "CGA mode via BIOS\r\n", colours)?;
    // Diagonal stripes: colour (x / 8 + y / 8) mod 4 over a square.
    c.mov(dx, 40u32)?;
    let mut ly = c.fresh();
    c.set(&mut ly)?;
    c.mov(cx, 0u32)?;
    let mut lx = c.fresh();
    c.set(&mut lx)?;
    c.mov(ax, cx)?;
    c.add(ax, dx)?;
    c.shr(ax, 3)?;
    c.and(al, colours as u32)?;
    c.mov(ah, 0x0C)?;
    c.xor(bh, bh)?;
    c.int(0x10)?;
    c.inc(cx)?;
    c.cmp(cx, (w / 2) as i32)?;
    c.jb(lx)?;
    c.inc(dx)?;
    c.cmp(dx, 140)?;
    c.jb(ly)?;
    // An XOR bar over the right part of the stripes.
    c.mov(dx, 100u32)?;
    let mut xy = c.fresh();
    c.set(&mut xy)?;
    c.mov(cx, w / 4)?;
    let mut xx = c.fresh();
    c.set(&mut xx)?;
    c.mov(ax, 0x0C80u32 | colours as u32)?;
    c.xor(bh, bh)?;
    c.int(0x10)?;
    c.inc(cx)?;
    c.cmp(cx, (w / 2 + w / 8) as i32)?;
    c.jb(xx)?;
    c.inc(dx)?;
    c.cmp(dx, 110)?;
    c.jb(xy)?;
    // Save the state, spoil palette register 1 and the DAC, restore.
    c.mov(ax, 0x1C00u32)?;
    c.mov(cx, 7u32)?;
    c.int(0x10)?;
    c.cmp(al, 0x1C)?;
    let mut sized = c.fresh();
    c.je(sized)?;
    fail16(c, ax, "AX=1C00h")?;
    c.set(&mut sized)?;
    c.mov(ax, 0x1C01u32)?;
    c.mov(cx, 7u32)?;
    c.mov(bx, STATE)?;
    c.int(0x10)?;
    c.mov(ax, 0x1000u32)?;
    c.mov(bx, 0x0401u32)?;
    c.int(0x10)?;
    c.mov(ax, 0x1010u32)?;
    c.mov(bx, 0x0000u32)?;
    c.mov(dh, 63)?;
    c.mov(cx, 0x3F3Fu32)?;
    c.int(0x10)?;
    c.mov(ax, 0x1C02u32)?;
    c.mov(cx, 7u32)?;
    c.mov(bx, STATE)?;
    c.int(0x10)?;
    // Read back one stripe pixel: colour (8 + 48) / 8 & mask.
    c.mov(ah, 0x0D)?;
    c.xor(bh, bh)?;
    c.mov(cx, 8u32)?;
    c.mov(dx, 48u32)?;
    c.int(0x10)?;
    c.xor(ah, ah)?;
    check16(c, ax, (((8 + 48) / 8) & colours) as u16, "AH=0Dh in a CGA mode")
}
