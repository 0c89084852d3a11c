//! `bios_misc`: INT 11h (the equipment word: as in 40:10, two serial
//! ports, the floppy bit as the boot media says), INT 12h, INT 15h AH=C0h
//! (the configuration table: model byte as at F000:FFFE, second PIC and
//! RTC present), AH=C1h (the EBDA segment as 40:0E), AH=4Fh (the keyboard
//! intercept keeps the scan code), INT 14h on COM1 (initialise, send "SQ":
//! the test finds it on the serial sink) and INT 17h returning.

use super::asm::{Code, R};
use super::bios_rt::*;
use iced_x86::code_asm::*;

/// What INT 14h sends on COM1.
pub const SERIAL: &str = "SQ";

pub fn image(media: Media) -> Vec<u8> {
    let prog = program("bios_misc", |c, _| body(c, media));
    super::bios_rt::image(&prog, media)
}

fn body(c: &mut Code, media: Media) -> R {
    section(c)?;
    c.int(0x11)?;
    c.push(ax)?;
    c.sub(ax, word_ptr(0x410))?;
    check16(c, ax, 0, "INT 11h differs from 40:10 by")?;
    c.pop(ax)?;
    check16_mask(c, ax, 0x0E00, 0x0400, "INT 11h: two serial ports")?;
    match media {
        Media::Floppy => check16_mask(c, ax, 0x0001, 0x0001, "INT 11h: floppy present")?,
        Media::HardDisk => check16_mask(c, ax, 0x0001, 0x0000, "INT 11h: no floppy")?,
        _ => {}
    }
    c.int(0x12)?;
    c.sub(ax, word_ptr(0x413))?;
    check16(c, ax, 0, "INT 12h differs from 40:13 by")?;
    section_ok(c, "INT 11h and 12h")?;

    section(c)?;
    c.push(es)?;
    c.mov(ah, 0xC0)?;
    c.int(0x15)?;
    check_cf(c, false, "AH=C0h configuration table")?;
    c.mov(ax, word_ptr(bx).es())?;
    c.cmp(ax, 8u32)?;
    let mut ok = c.fresh();
    c.jae(ok)?;
    fail16(c, ax, "C0h table length")?;
    c.set(&mut ok)?;
    c.mov(al, byte_ptr(bx + 2).es())?;
    c.mov(cx, 0xF000u32)?;
    c.mov(es, cx)?;
    c.mov(ah, byte_ptr(0xFFFEu32).es())?;
    c.cmp(al, ah)?;
    let mut same = c.fresh();
    c.je(same)?;
    fail16(c, ax, "C0h model byte (AL) differs from F000:FFFE (AH)")?;
    c.set(&mut same)?;
    c.pop(es)?;
    c.push(es)?;
    c.mov(ah, 0xC0)?;
    c.int(0x15)?;
    c.mov(al, byte_ptr(bx + 5).es())?;
    c.pop(es)?;
    c.xor(ah, ah)?;
    check16_mask(c, ax, 0x0060, 0x0060, "C0h feature byte 1: second PIC and RTC")?;
    c.push(es)?;
    c.mov(ah, 0xC1)?;
    c.int(0x15)?;
    c.mov(ax, es)?;
    c.pop(es)?;
    check_cf(c, false, "AH=C1h EBDA segment")?;
    c.sub(ax, word_ptr(0x40E))?;
    check16(c, ax, 0, "C1h segment differs from 40:0E by")?;
    c.mov(ax, 0x4F1Eu32)?;
    c.stc()?;
    c.int(0x15)?;
    check_cf(c, true, "AH=4Fh keeps the key (CF)")?;
    check16_mask(c, ax, 0x00FF, 0x1E, "AH=4Fh keeps the scan code")?;
    section_ok(c, "INT 15h configuration")?;

    section(c)?;
    c.mov(ax, 0x00E3u32)?;
    c.xor(dx, dx)?;
    c.int(0x14)?;
    check16_mask(c, ax, 0x8000, 0, "INT 14h AH=00h: no time-out")?;
    for b in SERIAL.bytes() {
        c.mov(ah, 0x01)?;
        c.mov(al, b as u32)?;
        c.xor(dx, dx)?;
        c.int(0x14)?;
        check16_mask(c, ax, 0x8000, 0, "INT 14h AH=01h: sent")?;
    }
    // Wait (halting, at most 20 interrupts) until the transmitter is empty,
    // so the bytes are out before the program ends the run.
    c.mov(si, 20u32)?;
    let mut l = c.fresh();
    let mut sent = c.fresh();
    c.set(&mut l)?;
    c.mov(ah, 0x03)?;
    c.xor(dx, dx)?;
    c.int(0x14)?;
    c.test(ah, 0x40)?;
    c.jnz(sent)?;
    c.sti()?;
    c.hlt()?;
    c.dec(si)?;
    c.jnz(l)?;
    c.set(&mut sent)?;
    check16_mask(c, ax, 0xC000, 0x4000, "INT 14h AH=03h: transmitter empty, no error")?;
    c.mov(ah, 0x02)?;
    c.xor(dx, dx)?;
    c.int(0x17)?;
    section_ok(c, "INT 14h and 17h")
}
