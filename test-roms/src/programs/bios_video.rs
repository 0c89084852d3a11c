//! `bios_video`: INT 10h in text mode 3, read back from the text buffer
//! at 0xB8000: get mode, set/get cursor, teletype (which also reaches the
//! console: the line `video: teletype mirror`), write character and
//! attribute, read it back, scroll up and down, write string, set mode
//! (clears), and the EGA/VGA information calls (AH=12h BL=10h, AX=1A00h).
//! Needs a BIOS whose INT 10h works without a VGA device (the own BIOS).

use super::asm::{Code, Image, R};
use super::bios_rt::*;
use iced_x86::code_asm::*;

/// What the teletype part prints (the test looks for it on the console).
pub const MIRROR: &str = "video: teletype mirror";

pub fn image(media: Media) -> Vec<u8> {
    let prog = program("bios_video", body);
    super::bios_rt::image(&prog, media)
}

const TEXT: u32 = 0xB800;

/// Offset of (row, col) in the text buffer.
fn cell(row: u32, col: u32) -> u32 {
    (row * 80 + col) * 2
}

/// Report a failure unless the text buffer word at (row, col) is `expect`.
fn check_cell(c: &mut Code, row: u32, col: u32, expect: u16, what: &str) -> R {
    c.push(es)?;
    c.mov(ax, TEXT)?;
    c.mov(es, ax)?;
    c.mov(ax, word_ptr(cell(row, col)).es())?;
    c.pop(es)?;
    check16(c, ax, expect, what)
}

fn set_cursor(c: &mut Code, row: u8, col: u8) -> R {
    c.mov(ah, 0x02)?;
    c.mov(bh, 0)?;
    c.mov(dx, ((row as u32) << 8) | col as u32)?;
    c.int(0x10)
}

fn check_cursor(c: &mut Code, row: u8, col: u8, what: &str) -> R {
    c.mov(ah, 0x03)?;
    c.mov(bh, 0)?;
    c.int(0x10)?;
    check16(c, dx, ((row as u16) << 8) | col as u16, what)
}

fn teletype(c: &mut Code, s: &str) -> R {
    for b in s.bytes() {
        c.mov(ah, 0x0E)?;
        c.mov(al, b as u32)?;
        c.mov(bx, 0x0007u32)?;
        c.int(0x10)?;
    }
    Ok(())
}

fn body(c: &mut Code, img: &mut Image) -> R {
    section(c)?;
    c.mov(ax, 0x0003u32)?;
    c.int(0x10)?;
    c.mov(ah, 0x0F)?;
    c.int(0x10)?;
    check16(c, ax, 0x5003, "AH=0Fh: 80 columns, mode 3")?;
    c.mov(al, bh)?;
    c.xor(ah, ah)?;
    check16(c, ax, 0, "AH=0Fh active page")?;
    check_cell(c, 0, 0, 0x0720, "a cleared screen")?;
    check_cursor(c, 0, 0, "cursor after setting the mode")?;
    section_ok(c, "mode 3")?;

    section(c)?;
    set_cursor(c, 5, 10)?;
    check_cursor(c, 5, 10, "AH=03h after AH=02h")?;
    teletype(c, "X")?;
    check_cell(c, 5, 10, 0x0758, "teletype 'X' at 5,10")?;
    check_cursor(c, 5, 11, "cursor after the teletype")?;
    set_cursor(c, 7, 0)?;
    teletype(c, MIRROR)?;
    teletype(c, "\r\n")?;
    check_cursor(c, 8, 0, "cursor after CR LF")?;
    section_ok(c, "cursor and teletype")?;

    section(c)?;
    set_cursor(c, 6, 0)?;
    c.mov(ax, 0x0959u32)?;
    c.mov(bx, 0x001Eu32)?;
    c.mov(cx, 3u32)?;
    c.int(0x10)?;
    check_cell(c, 6, 0, 0x1E59, "AH=09h cell 0")?;
    check_cell(c, 6, 2, 0x1E59, "AH=09h cell 2")?;
    check_cell(c, 6, 3, 0x0720, "AH=09h stops after CX cells")?;
    check_cursor(c, 6, 0, "AH=09h leaves the cursor")?;
    c.mov(ah, 0x08)?;
    c.mov(bh, 0)?;
    c.int(0x10)?;
    check16(c, ax, 0x1E59, "AH=08h reads character and attribute")?;
    section_ok(c, "write and read character")?;

    section(c)?;
    // Whole screen up one line: row 6 moves to row 5.
    c.mov(ax, 0x0601u32)?;
    c.mov(bh, 0x07)?;
    c.xor(cx, cx)?;
    c.mov(dx, 0x184Fu32)?;
    c.int(0x10)?;
    check_cell(c, 5, 0, 0x1E59, "scroll up: row 6 is now row 5")?;
    check_cell(c, 4, 10, 0x0758, "scroll up: 'X' is now on row 4")?;
    check_cell(c, 24, 79, 0x0720, "scroll up: the new bottom line is blank")?;
    // And back down.
    c.mov(ax, 0x0701u32)?;
    c.mov(bh, 0x07)?;
    c.xor(cx, cx)?;
    c.mov(dx, 0x184Fu32)?;
    c.int(0x10)?;
    check_cell(c, 6, 0, 0x1E59, "scroll down: row 5 is row 6 again")?;
    check_cell(c, 0, 0, 0x0720, "scroll down: the new top line is blank")?;
    section_ok(c, "scroll")?;

    section(c)?;
    let s = img.addr("video.string");
    c.mov(ax, 0x1301u32)?;
    c.mov(bx, 0x002Fu32)?;
    c.mov(cx, 2u32)?;
    c.mov(dx, 0x0A00u32)?;
    c.mov(bp, s)?;
    c.int(0x10)?;
    check_cell(c, 10, 0, 0x2F68, "AH=13h 'h'")?;
    check_cell(c, 10, 1, 0x2F69, "AH=13h 'i'")?;
    check_cursor(c, 10, 2, "AH=13h AL=1 moves the cursor")?;
    section_ok(c, "write string")?;

    section(c)?;
    c.mov(ax, 0x1200u32)?;
    c.mov(bx, 0xFF10u32)?;
    c.int(0x10)?;
    check16(c, bx, 0x0003, "AH=12h BL=10h: colour, 256 KiB")?;
    c.mov(ax, 0x1A00u32)?;
    c.int(0x10)?;
    check16_mask(c, ax, 0x00FF, 0x1A, "AX=1A00h supported")?;
    check16_mask(c, bx, 0x00FF, 0x08, "AX=1A00h: VGA with colour display")?;
    c.mov(ax, 0x0003u32)?;
    c.int(0x10)?;
    check_cell(c, 6, 0, 0x0720, "setting the mode clears the screen")?;
    section_ok(c, "information and mode set")?;

    let f = c.lbl("brt.finish");
    c.jmp(f)?;
    c.here("video.string")?;
    c.db(b"hi")
}
