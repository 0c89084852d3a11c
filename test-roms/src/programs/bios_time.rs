//! `bios_time`: the timer and clock services. INT 1Ah AH=00h ticks
//! advance while the program halts (IRQ0 -> INT 08h), INT 08h calls a
//! user INT 1Ch handler, AH=01h sets the count, AH=02h/04h read a
//! plausible BCD time and date from the RTC, INT 15h AH=86h waits about
//! the time asked for (measured in ticks).

use super::asm::{Code, Image, R};
use super::bios_rt::*;
use iced_x86::code_asm::*;

pub fn image(media: Media) -> Vec<u8> {
    let prog = program("bios_time", body);
    super::bios_rt::image(&prog, media)
}

const T0: u32 = VARS;
const T1: u32 = VARS + 4;
const HITS: u32 = VARS + 8;
const OLD1C: u32 = VARS + 12;

/// EAX = the tick count from INT 1Ah AH=00h.
fn ticks(c: &mut Code) -> R {
    c.xor(ax, ax)?;
    c.int(0x1A)?;
    c.movzx(eax, cx)?;
    c.shl(eax, 16)?;
    c.mov(ax, dx)
}

/// Halt until the tick count is `n` beyond T0 (at most 200 interrupts).
fn wait_ticks(c: &mut Code, n: u32) -> R {
    c.mov(si, 200u32)?;
    let mut l = c.fresh();
    let mut done = c.fresh();
    c.set(&mut l)?;
    c.sti()?;
    c.hlt()?;
    ticks(c)?;
    c.sub(eax, dword_ptr(T0))?;
    c.cmp(eax, n)?;
    c.jae(done)?;
    c.dec(si)?;
    c.jnz(l)?;
    c.set(&mut done)?;
    c.nop()
}

/// Report a failure unless `reg` (8-bit, in AL after the move) is a BCD
/// number from `lo` to `hi`.
fn check_bcd(c: &mut Code, reg: AsmRegister8, lo: u8, hi: u8, what: &str) -> R {
    c.mov(al, reg)?;
    c.xor(ah, ah)?;
    let mut bad = c.fresh();
    let mut ok = c.fresh();
    c.cmp(al, lo as u32)?;
    c.jb(bad)?;
    c.cmp(al, hi as u32)?;
    c.ja(bad)?;
    c.push(ax)?;
    c.and(al, 0x0F)?;
    c.cmp(al, 9u32)?;
    c.pop(ax)?;
    c.jbe(ok)?;
    c.set(&mut bad)?;
    fail16(c, ax, &format!("{what} is not BCD {lo:02X}-{hi:02X}"))?;
    c.set(&mut ok)?;
    c.nop()
}

fn body(c: &mut Code, img: &mut Image) -> R {
    section(c)?;
    ticks(c)?;
    c.mov(dword_ptr(T0), eax)?;
    wait_ticks(c, 2)?;
    ticks(c)?;
    c.sub(eax, dword_ptr(T0))?;
    c.cmp(eax, 2u32)?;
    let mut ok = c.fresh();
    c.jae(ok)?;
    fail16(c, ax, "ticks after halting for two")?;
    c.set(&mut ok)?;
    // 40:6C is the same count.
    ticks(c)?;
    c.sub(eax, dword_ptr(0x46C))?;
    check16(c, ax, 0, "INT 1Ah AH=00h differs from 40:6C by")?;
    section_ok(c, "ticks advance")?;

    // A user INT 1Ch handler counts the ticks INT 08h passes on.
    section(c)?;
    c.cli()?;
    c.mov(eax, dword_ptr(0x1C * 4))?;
    c.mov(dword_ptr(OLD1C), eax)?;
    let handler = img.addr("time.int1c");
    c.mov(word_ptr(0x1C * 4), handler)?;
    c.mov(word_ptr(0x1C * 4 + 2), 0u32)?;
    c.mov(word_ptr(HITS), 0u32)?;
    ticks(c)?;
    c.mov(dword_ptr(T0), eax)?;
    wait_ticks(c, 3)?;
    c.cli()?;
    c.mov(eax, dword_ptr(OLD1C))?;
    c.mov(dword_ptr(0x1C * 4), eax)?;
    c.sti()?;
    c.mov(ax, word_ptr(HITS))?;
    c.cmp(ax, 2u32)?;
    let mut ok = c.fresh();
    c.jae(ok)?;
    fail16(c, ax, "INT 1Ch calls in three ticks")?;
    c.set(&mut ok)?;
    section_ok(c, "INT 1Ch chain")?;

    // RTC time and date.
    section(c)?;
    c.mov(ah, 0x02)?;
    c.int(0x1A)?;
    check_cf(c, false, "AH=02h read RTC time")?;
    c.push(dx)?;
    c.push(cx)?;
    check_bcd(c, ch, 0x00, 0x23, "hours")?;
    c.pop(cx)?;
    check_bcd(c, cl, 0x00, 0x59, "minutes")?;
    c.pop(dx)?;
    check_bcd(c, dh, 0x00, 0x59, "seconds")?;
    c.mov(ah, 0x04)?;
    c.int(0x1A)?;
    check_cf(c, false, "AH=04h read RTC date")?;
    c.push(dx)?;
    c.push(cx)?;
    check_bcd(c, ch, 0x19, 0x20, "century")?;
    c.pop(cx)?;
    check_bcd(c, cl, 0x00, 0x99, "year")?;
    c.pop(dx)?;
    c.push(dx)?;
    check_bcd(c, dh, 0x01, 0x12, "month")?;
    c.pop(dx)?;
    check_bcd(c, dl, 0x01, 0x31, "day")?;
    section_ok(c, "RTC time and date")?;

    // INT 15h AH=86h: 200 ms is 3.6 ticks.
    section(c)?;
    ticks(c)?;
    c.mov(dword_ptr(T0), eax)?;
    c.mov(ah, 0x86)?;
    c.mov(cx, 0x0003u32)?;
    c.mov(dx, 0x0D40u32)?;
    c.int(0x15)?;
    check_cf(c, false, "AH=86h wait")?;
    ticks(c)?;
    c.sub(eax, dword_ptr(T0))?;
    c.mov(dword_ptr(T1), eax)?;
    c.sub(ax, 2u32)?;
    c.cmp(ax, 4u32)?;
    let mut ok = c.fresh();
    c.jbe(ok)?;
    c.mov(ax, word_ptr(T1))?;
    fail16(c, ax, "ticks during a 200 ms wait (2-6 expected)")?;
    c.set(&mut ok)?;
    section_ok(c, "INT 15h AH=86h wait")?;

    // AH=01h sets the count.
    section(c)?;
    c.mov(ah, 0x01)?;
    c.mov(cx, 0x0001u32)?;
    c.mov(dx, 0x2345u32)?;
    c.int(0x1A)?;
    c.xor(ax, ax)?;
    c.int(0x1A)?;
    check16(c, cx, 0x0001, "tick count high word after AH=01h")?;
    c.sub(dx, 0x2345u32)?;
    c.cmp(dx, 4u32)?;
    let mut ok = c.fresh();
    c.jbe(ok)?;
    fail16(c, dx, "tick count low word - 2345h after AH=01h")?;
    c.set(&mut ok)?;
    section_ok(c, "set tick count")?;

    let f = c.lbl("brt.finish");
    c.jmp(f)?;
    c.here("time.int1c")?;
    c.inc(word_ptr(HITS).cs())?;
    c.iret()
}
