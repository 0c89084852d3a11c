//! Time: the IRQ0 tick count (INT 08h), the RTC interrupt (INT 70h) that
//! drives INT 15h AH=83h/86h waits and the alarm, and the INT 1Ah time and
//! date functions, which read the MC146818 through ports 70h/71h.
//!
//! Data area: 40:6C tick count since midnight (18.2 Hz), 40:70 midnight
//! flag, 40:40 floppy motor timeout, 40:98/40:9C/40:A0 the user wait
//! pointer, count and active flag.

use ferrite_core::cpu::state::SegReg;

use super::ctx::{Ctx, CF};

pub const TICKS: u16 = 0x6C;
pub const MIDNIGHT: u16 = 0x70;
pub const MOTOR_TIMEOUT: u16 = 0x40;
pub const MOTOR_STATUS: u16 = 0x3F;
pub const WAIT_ACTIVE: u16 = 0xA0;
/// Ticks in 24 hours at 1193182 / 65536 Hz.
pub const TICKS_PER_DAY: u32 = 0x18_00B0;

const RTC_SECONDS: u8 = 0x00;
const RTC_SECONDS_ALARM: u8 = 0x01;
const RTC_MINUTES: u8 = 0x02;
const RTC_MINUTES_ALARM: u8 = 0x03;
const RTC_HOURS: u8 = 0x04;
const RTC_HOURS_ALARM: u8 = 0x05;
const RTC_DAY: u8 = 0x07;
const RTC_MONTH: u8 = 0x08;
const RTC_YEAR: u8 = 0x09;
const RTC_A: u8 = 0x0A;
const RTC_B: u8 = 0x0B;
const RTC_C: u8 = 0x0C;
const RTC_CENTURY: u8 = 0x32;

const B_SET: u8 = 0x80;
const B_PIE: u8 = 0x40;
const B_AIE: u8 = 0x20;
const B_BINARY: u8 = 0x04;
const B_24H: u8 = 0x02;
const B_DSE: u8 = 0x01;
const C_PF: u8 = 0x40;
const C_AF: u8 = 0x20;

/// Waits in progress (driven by the RTC's periodic interrupt at 1024 Hz).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Waits {
    /// INT 15h AH=86h: the caller's stack address (who is waiting) and
    /// the virtual time it may return.
    pub wait: Option<(u32, u64)>,
    /// INT 15h AH=83h: the flag byte to set (bit 7) and when.
    pub event: Option<(u32, u64)>,
    /// INT 14h waiting for the UART: the caller and the time-out.
    pub serial: Option<(u32, u64)>,
}

impl Waits {
    /// Nothing needs the RTC's periodic interrupt.
    pub fn idle(&self) -> bool {
        self.wait.is_none() && self.event.is_none() && self.serial.is_none()
    }
}

/// IRQ0: count a tick.
pub fn irq0(c: &mut Ctx) {
    let mut t = c.bda32(TICKS).wrapping_add(1);
    if t >= TICKS_PER_DAY {
        t = 0;
        c.set_bda8(MIDNIGHT, 1);
    }
    c.set_bda32(TICKS, t);
    let motor = c.bda8(MOTOR_TIMEOUT);
    if motor > 0 {
        c.set_bda8(MOTOR_TIMEOUT, motor - 1);
        if motor == 1 {
            let s = c.bda8(MOTOR_STATUS);
            c.set_bda8(MOTOR_STATUS, s & 0xF0);
        }
    }
}

/// Enable or disable the RTC periodic interrupt (and unmask IRQ8 and the
/// cascade when enabling).
pub fn rtc_periodic(c: &mut Ctx, on: bool) {
    let b = c.cmos(RTC_B);
    let nb = if on { b | B_PIE } else { b & !B_PIE };
    if nb != b {
        c.set_cmos(RTC_B, nb);
    }
    if on {
        unmask_irq8(c);
    }
}

fn unmask_irq8(c: &mut Ctx) {
    let s = c.inb(0xA1);
    c.outb(0xA1, s & !0x01);
    let m = c.inb(0x21);
    c.outb(0x21, m & !0x04);
}

/// INT 70h (IRQ8). Returns true when the alarm fired (the stub continues
/// with INT 4Ah).
pub fn irq8(c: &mut Ctx, waits: &mut Waits) -> bool {
    let flags = c.cmos(RTC_C);
    if flags & C_PF != 0 {
        let now = c.p.now_ns();
        if let Some((flag, deadline)) = waits.event {
            if now >= deadline {
                let v = c.rd8(flag);
                c.wr8(flag, v | 0x80);
                waits.event = None;
            }
        }
        if waits.idle() {
            rtc_periodic(c, false);
        }
    }
    c.outb(0xA0, 0x20);
    c.outb(0x20, 0x20);
    flags & C_AF != 0
}

/// What INT 15h AH=83h/86h did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WaitResult {
    Done,
    /// Not yet: continue in the ROM's wait loop and retry.
    Again,
}

/// INT 15h AH=86h: wait CX:DX microseconds.
pub fn wait(c: &mut Ctx, waits: &mut Waits) -> WaitResult {
    let who = c.stack_top();
    let now = c.p.now_ns();
    match waits.wait {
        Some((w, deadline)) if w == who => {
            if now >= deadline {
                waits.wait = None;
                c.set_bda8(WAIT_ACTIVE, 0);
                if waits.idle() {
                    rtc_periodic(c, false);
                }
                c.ok();
                return WaitResult::Done;
            }
            WaitResult::Again
        }
        Some(_) => {
            // Someone else is waiting (a wait from an interrupt handler).
            c.fail(0x80);
            WaitResult::Done
        }
        None => {
            let us = (c.cx() as u64) << 16 | c.dx() as u64;
            if us == 0 {
                c.ok();
                return WaitResult::Done;
            }
            waits.wait = Some((who, now.saturating_add(us.saturating_mul(1000))));
            c.set_bda8(WAIT_ACTIVE, 1);
            rtc_periodic(c, true);
            WaitResult::Again
        }
    }
}

/// INT 15h AH=83h: AL=00h set bit 7 of ES:BX after CX:DX microseconds,
/// AL=01h cancel.
pub fn event_wait(c: &mut Ctx, waits: &mut Waits) {
    match c.al() {
        0x00 => {
            if waits.event.is_some() {
                c.fail(0x80);
                return;
            }
            let us = (c.cx() as u64) << 16 | c.dx() as u64;
            let flag = c.lin(SegReg::Es, c.bx());
            let now = c.p.now_ns();
            waits.event = Some((flag, now.saturating_add(us.saturating_mul(1000))));
            rtc_periodic(c, true);
            c.set_flag(CF, false);
        }
        0x01 => {
            waits.event = None;
            if waits.idle() {
                rtc_periodic(c, false);
            }
            c.set_flag(CF, false);
        }
        _ => c.fail(0x86),
    }
}

fn to_bcd(v: u8) -> u8 {
    ((v / 10) << 4) | (v % 10)
}

fn from_bcd(v: u8) -> u8 {
    (v >> 4) * 10 + (v & 0x0F)
}

/// Read an RTC field as BCD whatever the RTC's data mode.
fn rtc_bcd(c: &mut Ctx, reg: u8, b: u8) -> u8 {
    let v = c.cmos(reg);
    if b & B_BINARY != 0 {
        to_bcd(v)
    } else {
        v
    }
}

/// Hours as BCD 0-23 whatever the RTC's 12/24-hour mode.
fn rtc_hours(c: &mut Ctx, b: u8) -> u8 {
    let raw = c.cmos(RTC_HOURS);
    let pm = raw & 0x80 != 0;
    let h = raw & 0x7F;
    let h = if b & B_BINARY != 0 { h } else { from_bcd(h) };
    let h = if b & B_24H == 0 { (h % 12) + if pm { 12 } else { 0 } } else { h };
    to_bcd(h)
}

fn rtc_set_bcd(c: &mut Ctx, reg: u8, bcd: u8, b: u8) {
    let v = if b & B_BINARY != 0 { from_bcd(bcd) } else { bcd };
    c.set_cmos(reg, v);
}

/// The RTC is running (divider 010b) so its time means something.
fn rtc_ok(c: &mut Ctx) -> bool {
    c.cmos(RTC_A) & 0x70 == 0x20
}

/// INT 1Ah, the time functions (AH=00h-07h).
pub fn int1a_time(c: &mut Ctx) {
    match c.ah() {
        0x00 => {
            let t = c.bda32(TICKS);
            let m = c.bda8(MIDNIGHT);
            c.set_bda8(MIDNIGHT, 0);
            c.set_cx((t >> 16) as u16);
            c.set_dx(t as u16);
            c.set_al(m);
            c.set_flag(CF, false);
        }
        0x01 => {
            let t = ((c.cx() as u32) << 16 | c.dx() as u32) % TICKS_PER_DAY;
            c.set_bda32(TICKS, t);
            c.set_bda8(MIDNIGHT, 0);
            c.set_flag(CF, false);
        }
        0x02 => {
            if !rtc_ok(c) {
                c.set_flag(CF, true);
                return;
            }
            let b = c.cmos(RTC_B);
            let h = rtc_hours(c, b);
            let m = rtc_bcd(c, RTC_MINUTES, b);
            let s = rtc_bcd(c, RTC_SECONDS, b);
            c.set_ch(h);
            c.set_cl(m);
            c.set_dh(s);
            c.set_dl(b & B_DSE);
            c.set_flag(CF, false);
        }
        0x03 => {
            let b = c.cmos(RTC_B);
            c.set_cmos(RTC_B, b | B_SET);
            let (h, m, s) = (c.ch(), c.cl(), c.dh());
            rtc_set_bcd(c, RTC_HOURS, h, b);
            rtc_set_bcd(c, RTC_MINUTES, m, b);
            rtc_set_bcd(c, RTC_SECONDS, s, b);
            let dse = c.dl() & 1;
            // Time is kept in 24-hour mode from here on.
            c.set_cmos(RTC_B, (b & !(B_SET | B_DSE)) | B_24H | dse);
            c.set_flag(CF, false);
        }
        0x04 => {
            if !rtc_ok(c) {
                c.set_flag(CF, true);
                return;
            }
            let b = c.cmos(RTC_B);
            let century = c.cmos(RTC_CENTURY);
            let century = if b & B_BINARY != 0 { to_bcd(century) } else { century };
            let y = rtc_bcd(c, RTC_YEAR, b);
            let mo = rtc_bcd(c, RTC_MONTH, b);
            let d = rtc_bcd(c, RTC_DAY, b);
            c.set_ch(century);
            c.set_cl(y);
            c.set_dh(mo);
            c.set_dl(d);
            c.set_flag(CF, false);
        }
        0x05 => {
            let b = c.cmos(RTC_B);
            c.set_cmos(RTC_B, b | B_SET);
            let (century, y, mo, d) = (c.ch(), c.cl(), c.dh(), c.dl());
            rtc_set_bcd(c, RTC_CENTURY, century, b);
            rtc_set_bcd(c, RTC_YEAR, y, b);
            rtc_set_bcd(c, RTC_MONTH, mo, b);
            rtc_set_bcd(c, RTC_DAY, d, b);
            c.set_cmos(RTC_B, b & !B_SET);
            c.set_flag(CF, false);
        }
        0x06 => {
            let b = c.cmos(RTC_B);
            if b & B_AIE != 0 {
                c.set_flag(CF, true);
                return;
            }
            let (h, m, s) = (c.ch(), c.cl(), c.dh());
            rtc_set_bcd(c, RTC_HOURS_ALARM, h, b);
            rtc_set_bcd(c, RTC_MINUTES_ALARM, m, b);
            rtc_set_bcd(c, RTC_SECONDS_ALARM, s, b);
            c.set_cmos(RTC_B, b | B_AIE);
            unmask_irq8(c);
            c.set_flag(CF, false);
        }
        0x07 => {
            let b = c.cmos(RTC_B);
            c.set_cmos(RTC_B, b & !B_AIE);
            c.set_flag(CF, false);
        }
        ah => {
            c.log_unsupported(0x1A, ah);
            c.set_flag(CF, true);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bcd_round_trips() {
        for v in 0..100u8 {
            assert_eq!(from_bcd(to_bcd(v)), v);
        }
        assert_eq!(to_bcd(59), 0x59);
    }
}
