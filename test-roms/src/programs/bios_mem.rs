//! `bios_mem`: the memory services. INT 12h (base memory, equal to 40:13),
//! INT 15h E820h (the map has base memory at 0 and at least 30 MiB of RAM
//! from 1 MiB on a 32 MiB machine), E801h (15 MiB below 16 MiB and the
//! 64 KiB blocks above), 88h, the A20 functions 2400h-2403h (checked by
//! wrap-around at 1 MiB) and the 87h block move above 1 MiB and back.
//! Expects `-m 32` (the default).

use super::asm::{Code, R};
use super::bios_rt::*;
use iced_x86::code_asm::*;

pub fn image(media: Media) -> Vec<u8> {
    let prog = program("bios_mem", |c, _| body(c));
    super::bios_rt::image(&prog, media)
}

const COUNT: u32 = VARS;
const LOW_OK: u32 = VARS + 2;
const EXT_OK: u32 = VARS + 4;
const PROBE: u32 = VARS + 0x30;
const GDT: u32 = VARS + 0x40;
const SRC: u32 = 0x1000;
const DST: u32 = 0x20_0000;
const BACK: u32 = 0x5000;

fn body(c: &mut Code) -> R {
    // INT 12h.
    section(c)?;
    c.int(0x12)?;
    c.push(ax)?;
    c.sub(ax, word_ptr(0x413))?;
    check16(c, ax, 0, "INT 12h differs from 40:13 by")?;
    c.pop(ax)?;
    c.sub(ax, 0x200u32)?;
    c.cmp(ax, 0x80u32)?;
    let mut ok = c.fresh();
    c.jbe(ok)?;
    fail16(c, ax, "INT 12h - 512 KiB is above 128 KiB")?;
    c.set(&mut ok)?;
    section_ok(c, "INT 12h")?;

    e820(c)?;

    // E801h.
    section(c)?;
    c.mov(ax, 0xE801u32)?;
    c.int(0x15)?;
    check_cf(c, false, "E801h")?;
    c.cmp(ax, cx)?;
    let mut same = c.fresh();
    c.je(same)?;
    fail16(c, cx, "E801h CX differs from AX")?;
    c.set(&mut same)?;
    check16(c, ax, 0x3C00, "E801h KiB between 1 and 16 MiB")?;
    c.sub(bx, 0xF0u32)?;
    c.cmp(bx, 0x10u32)?;
    let mut ok = c.fresh();
    c.jbe(ok)?;
    fail16(c, bx, "E801h 64 KiB blocks above 16 MiB - 0F0h")?;
    c.set(&mut ok)?;
    section_ok(c, "E801h")?;

    // 88h.
    section(c)?;
    c.mov(ah, 0x88)?;
    c.int(0x15)?;
    c.sub(ax, 0x7800u32)?;
    c.cmp(ax, 0x400u32)?;
    let mut ok = c.fresh();
    c.jbe(ok)?;
    fail16(c, ax, "AH=88h KiB above 1 MiB - 7800h")?;
    c.set(&mut ok)?;
    section_ok(c, "AH=88h")?;

    a20(c)?;
    block_move(c)
}

fn e820(c: &mut Code) -> R {
    section(c)?;
    c.mov(word_ptr(COUNT), 0u32)?;
    c.mov(word_ptr(LOW_OK), 0u32)?;
    c.mov(word_ptr(EXT_OK), 0u32)?;
    c.xor(ebx, ebx)?;
    let mut next = c.fresh();
    let mut done = c.fresh();
    c.set(&mut next)?;
    c.mov(eax, 0xE820u32)?;
    c.mov(edx, 0x534D_4150u32)?;
    c.mov(ecx, 20u32)?;
    c.mov(di, BUF)?;
    c.int(0x15)?;
    let mut ok = c.fresh();
    c.jnc(ok)?;
    fail16(c, ax, "E820h failed")?;
    c.jmp(done)?;
    c.set(&mut ok)?;
    check32(c, eax, 0x534D_4150, "E820h EAX signature")?;
    c.inc(word_ptr(COUNT))?;
    // Base 0, type 1: conventional memory.
    let mut not_low = c.fresh();
    c.cmp(dword_ptr(BUF), 0u32)?;
    c.jne(not_low)?;
    c.cmp(dword_ptr(BUF + 16), 1u32)?;
    c.jne(not_low)?;
    c.mov(word_ptr(LOW_OK), 1u32)?;
    c.set(&mut not_low)?;
    // Base 1 MiB, type 1, at least 30 MiB.
    let mut not_ext = c.fresh();
    c.cmp(dword_ptr(BUF), 0x10_0000u32)?;
    c.jne(not_ext)?;
    c.cmp(dword_ptr(BUF + 16), 1u32)?;
    c.jne(not_ext)?;
    c.cmp(dword_ptr(BUF + 8), 30u32 << 20)?;
    c.jb(not_ext)?;
    c.mov(word_ptr(EXT_OK), 1u32)?;
    c.set(&mut not_ext)?;
    c.cmp(word_ptr(COUNT), 64u32)?;
    c.jae(done)?;
    c.test(ebx, ebx)?;
    c.jnz(next)?;
    c.set(&mut done)?;
    c.mov(ax, word_ptr(COUNT))?;
    c.cmp(ax, 3u32)?;
    let mut enough = c.fresh();
    c.jae(enough)?;
    fail16(c, ax, "E820h entries")?;
    c.set(&mut enough)?;
    check_m16(c, LOW_OK, 1, "E820h has RAM at 0")?;
    check_m16(c, EXT_OK, 1, "E820h has 30+ MiB of RAM at 1 MiB")?;
    section_ok(c, "E820h")
}

/// Does FFFF:PROBE+10h alias 0000:PROBE? ZF set when it does.
fn wraps(c: &mut Code, tag: u16) -> R {
    c.mov(word_ptr(PROBE), tag as u32)?;
    c.push(es)?;
    c.mov(ax, 0xFFFFu32)?;
    c.mov(es, ax)?;
    c.mov(ax, !tag as u32)?;
    c.mov(word_ptr(PROBE + 0x10).es(), ax)?;
    c.pop(es)?;
    c.cmp(word_ptr(PROBE), !tag as u32)
}

fn a20(c: &mut Code) -> R {
    section(c)?;
    c.mov(ax, 0x2403u32)?;
    c.int(0x15)?;
    check_cf(c, false, "AX=2403h A20 support")?;
    check16_mask(c, bx, 0x0003, 0x0003, "AX=2403h BX: keyboard controller and port 92h")?;
    // The board ORs the 8042's A20 output with port 92h's: close the
    // 8042's gate first (output port DDh keeps the reset line high), so a
    // BIOS that only uses port 92h (SeaBIOS) can close A20 as well.
    c.mov(al, 0xD1u32)?;
    c.out(0x64, al)?;
    c.mov(al, 0xDDu32)?;
    c.out(0x60, al)?;
    c.mov(ax, 0x2400u32)?;
    c.int(0x15)?;
    check_cf(c, false, "AX=2400h disable A20")?;
    c.mov(ax, 0x2402u32)?;
    c.int(0x15)?;
    check_cf(c, false, "AX=2402h status")?;
    check16_mask(c, ax, 0x00FF, 0, "AX=2402h AL after disabling")?;
    wraps(c, 0x1357)?;
    let mut ok = c.fresh();
    c.je(ok)?;
    c.mov(ax, word_ptr(PROBE))?;
    fail16(c, ax, "memory does not wrap at 1 MiB with A20 off")?;
    c.set(&mut ok)?;
    c.mov(ax, 0x2401u32)?;
    c.int(0x15)?;
    check_cf(c, false, "AX=2401h enable A20")?;
    c.mov(ax, 0x2402u32)?;
    c.int(0x15)?;
    check16_mask(c, ax, 0x00FF, 1, "AX=2402h AL after enabling")?;
    wraps(c, 0x2468)?;
    let mut ok = c.fresh();
    c.jne(ok)?;
    c.mov(ax, word_ptr(PROBE))?;
    fail16(c, ax, "memory wraps at 1 MiB with A20 on")?;
    c.set(&mut ok)?;
    section_ok(c, "A20")
}

/// A data descriptor for `base` in the INT 15h AH=87h table.
fn descriptor(c: &mut Code, at: u32, base: u32) -> R {
    c.mov(word_ptr(at), 0xFFFFu32)?;
    c.mov(word_ptr(at + 2), base & 0xFFFF)?;
    c.mov(byte_ptr(at + 4), (base >> 16) & 0xFF)?;
    c.mov(byte_ptr(at + 5), 0x93u32)?;
    c.mov(byte_ptr(at + 6), 0u32)?;
    c.mov(byte_ptr(at + 7), base >> 24)
}

fn move_words(c: &mut Code, src: u32, dst: u32, words: u16) -> R {
    c.mov(di, GDT)?;
    c.mov(cx, 24u32)?;
    c.xor(ax, ax)?;
    c.rep().stosw()?;
    descriptor(c, GDT + 0x10, src)?;
    descriptor(c, GDT + 0x18, dst)?;
    c.mov(si, GDT)?;
    c.mov(cx, words as u32)?;
    c.mov(ah, 0x87)?;
    c.int(0x15)
}

fn block_move(c: &mut Code) -> R {
    section(c)?;
    c.mov(di, SRC)?;
    c.mov(cx, 256u32)?;
    c.mov(ax, 0xC000u32)?;
    let mut l = c.fresh();
    c.set(&mut l)?;
    c.stosw()?;
    c.inc(ax)?;
    c.loop_(l)?;
    move_words(c, SRC, DST, 256)?;
    check_cf(c, false, "AH=87h to 2 MiB")?;
    check16_mask(c, ax, 0xFF00, 0, "AH=87h status")?;
    move_words(c, DST, BACK, 256)?;
    check_cf(c, false, "AH=87h back below 1 MiB")?;
    check_m16(c, BACK, 0xC000, "word 0 after the round trip")?;
    check_m16(c, BACK + 510, 0xC0FF, "word 255 after the round trip")?;
    section_ok(c, "AH=87h block move")
}
