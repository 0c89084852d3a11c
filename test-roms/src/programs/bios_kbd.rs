//! `bios_kbd`: the keyboard services. INT 16h AH=05h stores a key that
//! AH=01h then shows and AH=00h takes; scan codes injected into the 8042's
//! output buffer (command D2h) go through IRQ1 and INT 09h: a plain key,
//! Shift (and AH=02h's shift flags), Ctrl, Caps Lock, and a grey cursor key
//! as AH=10h (E0h in AL) and AH=00h (00h in AL) return it.

use super::asm::{Code, R};
use super::bios_rt::*;
use iced_x86::code_asm::*;

pub fn image(media: Media) -> Vec<u8> {
    let prog = program("bios_kbd", |c, _| body(c));
    super::bios_rt::image(&prog, media)
}

/// Put set-1 scan codes into the 8042's output buffer as keyboard data.
fn inject(c: &mut Code, codes: &[u8]) -> R {
    for code in codes {
        c.mov(al, 0xD2u32)?;
        c.out(0x64, al)?;
        c.mov(al, *code as u32)?;
        c.out(0x60, al)?;
        // Let IRQ1 take it (and the 8042 load the next byte).
        c.mov(cx, 20u32)?;
        let mut l = c.fresh();
        c.set(&mut l)?;
        c.sti()?;
        c.nop()?;
        c.loop_(l)?;
    }
    Ok(())
}

/// INT 16h AH=`ah` and check AX.
fn read_key(c: &mut Code, ah_: u8, expect: u16, what: &str) -> R {
    c.mov(ah, ah_ as u32)?;
    c.int(0x16)?;
    check16(c, ax, expect, what)
}

/// Halt until AH=02h's shift flags AND `mask` equal `want` (bounded).
fn wait_flags(c: &mut Code, mask: u8, want: u8) -> R {
    c.mov(si, 100u32)?;
    let mut l = c.fresh();
    let mut done = c.fresh();
    c.set(&mut l)?;
    c.mov(ah, 0x02)?;
    c.int(0x16)?;
    c.and(al, mask as u32)?;
    c.cmp(al, want as u32)?;
    c.je(done)?;
    c.sti()?;
    c.hlt()?;
    c.dec(si)?;
    c.jnz(l)?;
    c.set(&mut done)?;
    c.nop()
}

fn body(c: &mut Code) -> R {
    // Drain anything pending.
    c.nop()?;
    let mut drain = c.fresh();
    let mut empty = c.fresh();
    c.set(&mut drain)?;
    c.mov(ah, 0x01)?;
    c.int(0x16)?;
    c.jz(empty)?;
    c.mov(ah, 0x00)?;
    c.int(0x16)?;
    c.jmp(drain)?;
    c.set(&mut empty)?;

    section(c)?;
    c.mov(ah, 0x05)?;
    c.mov(cx, 0x1E61u32)?;
    c.int(0x16)?;
    check16_mask(c, ax, 0x00FF, 0, "AH=05h store")?;
    c.mov(ah, 0x01)?;
    c.int(0x16)?;
    check_zf(c, false, "AH=01h sees the stored key")?;
    check16(c, ax, 0x1E61, "AH=01h key")?;
    read_key(c, 0x00, 0x1E61, "AH=00h key")?;
    c.mov(ah, 0x01)?;
    c.int(0x16)?;
    check_zf(c, true, "AH=01h after the key was taken")?;
    section_ok(c, "store and read")?;

    section(c)?;
    inject(c, &[0x1E, 0x9E])?;
    read_key(c, 0x00, 0x1E61, "IRQ1: 'a'")?;
    inject(c, &[0x2A])?;
    wait_flags(c, 0x02, 0x02)?;
    c.mov(ah, 0x02)?;
    c.int(0x16)?;
    check16_mask(c, ax, 0x0003, 0x0002, "AH=02h: left Shift down")?;
    inject(c, &[0x1E, 0x9E, 0xAA])?;
    read_key(c, 0x00, 0x1E41, "Shift+a")?;
    wait_flags(c, 0x02, 0x00)?;
    inject(c, &[0x1D, 0x2E, 0xAE, 0x9D])?;
    read_key(c, 0x00, 0x2E03, "Ctrl+c")?;
    wait_flags(c, 0x04, 0x00)?;
    section_ok(c, "IRQ1 and shift states")?;

    section(c)?;
    inject(c, &[0x3A, 0xBA])?;
    wait_flags(c, 0x40, 0x40)?;
    inject(c, &[0x1E, 0x9E])?;
    read_key(c, 0x00, 0x1E41, "Caps Lock + a")?;
    inject(c, &[0x3A, 0xBA])?;
    wait_flags(c, 0x40, 0x00)?;
    c.mov(ah, 0x02)?;
    c.int(0x16)?;
    check16_mask(c, ax, 0x0040, 0, "Caps Lock off again")?;
    section_ok(c, "Caps Lock")?;

    section(c)?;
    inject(c, &[0xE0, 0x48, 0xE0, 0xC8])?;
    read_key(c, 0x10, 0x48E0, "AH=10h grey Up")?;
    inject(c, &[0xE0, 0x48, 0xE0, 0xC8])?;
    read_key(c, 0x00, 0x4800, "AH=00h grey Up")?;
    inject(c, &[0x1C, 0x9C])?;
    read_key(c, 0x10, 0x1C0D, "Enter")?;
    section_ok(c, "enhanced keys")
}
