//! INT 11h (equipment), INT 12h (base memory), INT 14h (serial ports),
//! INT 15h (system services: memory maps, A20, block move, waits,
//! configuration) and INT 17h (printers: none present).
//!
//! INT 15h functions not implemented answer CF=1, AH=86h: 89h (switch to
//! protected mode), C2h (PS/2 mouse), 53h (APM: "not present"), 87h from
//! V86 mode works only because the BIOS runs on the host.

use ferrite_core::cpu::state::{SegReg, EAX, EBX, ECX, EDX};

use super::clock::{self, WaitResult, Waits};
use super::ctx::{Ctx, CF};
use crate::e820::memory_map;

pub const EQUIPMENT: u16 = 0x10;
pub const BASE_MEMORY: u16 = 0x13;
pub const EBDA_SEGMENT: u16 = 0x0E;
pub const COM_PORTS: u16 = 0x00;
pub const COM_TIMEOUTS: u16 = 0x7C;

/// "SMAP", the E820h signature.
pub const SMAP: u32 = 0x534D_4150;

const NOT_SUPPORTED: u8 = 0x86;

/// What INT 15h did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Int15 {
    Done,
    /// Continue in the wait loop and retry (AH=86h).
    Wait,
}

pub fn int11(c: &mut Ctx) {
    let eq = c.bda16(EQUIPMENT);
    c.set_ax(eq);
}

pub fn int12(c: &mut Ctx) {
    let kib = c.bda16(BASE_MEMORY);
    c.set_ax(kib);
}

/// INT 15h.
pub fn int15(c: &mut Ctx, waits: &mut Waits) -> Int15 {
    let ram = c.mem.ram_size() as u64;
    match c.ah() {
        0x24 => a20(c),
        // APM: not present.
        0x53 => c.fail(NOT_SUPPORTED),
        // Keyboard intercept: keep the scan code (CF as the caller set it).
        0x4F => {}
        0x83 => clock::event_wait(c, waits),
        0x85 | 0x90 | 0x91 => c.ok(),
        0x86 => {
            if clock::wait(c, waits) == WaitResult::Again {
                return Int15::Wait;
            }
        }
        0x87 => block_move(c),
        0x88 => {
            let kib = (ram.saturating_sub(1 << 20) >> 10).min(0xFC00) as u16;
            c.set_ax(kib);
            c.set_flag(CF, false);
        }
        0xC0 => {
            c.set_sel(SegReg::Es, super::rom::ROM_SEGMENT);
            c.set_bx(super::rom::CONFIG_TABLE);
            c.ok();
        }
        0xC1 => {
            let seg = c.bda16(EBDA_SEGMENT);
            c.set_sel(SegReg::Es, seg);
            c.set_flag(CF, false);
        }
        0xE8 => match c.al() {
            0x01 | 0x81 => {
                // E801h: KiB between 1 and 16 MiB, 64 KiB blocks above.
                let low = (ram.clamp(1 << 20, 16 << 20) - (1 << 20)) >> 10;
                let high = (ram.saturating_sub(16 << 20) >> 16).min(0xFFFF);
                for r in [EAX, ECX] {
                    c.set_reg32(r, low as u32);
                }
                for r in [EBX, EDX] {
                    c.set_reg32(r, high as u32);
                }
                c.set_flag(CF, false);
            }
            0x20 if c.reg32(EDX) == SMAP => e820(c),
            _ => c.fail(NOT_SUPPORTED),
        },
        ah => {
            c.log_unsupported(0x15, ah);
            c.fail(NOT_SUPPORTED);
        }
    }
    Int15::Done
}

/// E820h: entry EBX of the memory map into ES:DI (ECX >= 20 bytes).
fn e820(c: &mut Ctx) {
    let map = memory_map(c.mem.ram_size());
    let idx = c.reg32(EBX) as usize;
    let Some(e) = map.get(idx) else {
        c.fail(NOT_SUPPORTED);
        return;
    };
    if c.reg32(ECX) < 20 {
        c.fail(NOT_SUPPORTED);
        return;
    }
    let at = c.lin(SegReg::Es, c.di());
    let mut rec = [0u8; 20];
    rec[0..8].copy_from_slice(&e.base.to_le_bytes());
    rec[8..16].copy_from_slice(&e.len.to_le_bytes());
    rec[16..20].copy_from_slice(&e.kind.to_le_bytes());
    c.write_bytes(at, &rec);
    c.set_reg32(EAX, SMAP);
    c.set_reg32(ECX, 20);
    c.set_reg32(EBX, if idx + 1 < map.len() { idx as u32 + 1 } else { 0 });
    c.set_flag(CF, false);
}

/// AH=24h: A20 gate. AL=00h disable, 01h enable, 02h status, 03h support.
fn a20(c: &mut Ctx) {
    match c.al() {
        0x00 | 0x01 => {
            let on = c.al() == 1;
            // Port 92h bit 1 and the 8042 output port are ORed on this
            // board: set both.
            let v = c.inb(0x92) & !0x03;
            c.outb(0x92, if on { v | 0x02 } else { v });
            c.outb(0x64, if on { 0xDF } else { 0xDD });
            c.ok();
        }
        0x02 => {
            let on = c.mem.a20_enabled();
            c.set_al(on as u8);
            c.set_cx(0);
            c.ok();
        }
        0x03 => {
            // Supported through the keyboard controller and port 92h.
            c.set_bx(0x0003);
            c.ok();
        }
        _ => c.fail(0x86),
    }
}

/// AH=87h: copy CX words between the 24-bit (32 with the 386 high byte)
/// bases of the descriptors at ES:SI+10h (source) and ES:SI+18h.
fn block_move(c: &mut Ctx) {
    let words = c.cx() as u32;
    if words > 0x8000 {
        c.fail(0x01);
        return;
    }
    let gdt = c.lin(SegReg::Es, c.si());
    let base = |c: &mut Ctx, d: u32| -> u32 {
        let lo = c.rd16(gdt + d + 2) as u32;
        let mid = c.rd8(gdt + d + 4) as u32;
        let hi = c.rd8(gdt + d + 7) as u32;
        lo | mid << 16 | hi << 24
    };
    let src = base(c, 0x10);
    let dst = base(c, 0x18);
    for i in 0..words * 2 {
        let b = c.phys_rd8(src.wrapping_add(i));
        c.phys_wr8(dst.wrapping_add(i), b);
    }
    c.ok();
}

/// The base port of serial port DX, if present.
fn com_base(c: &mut Ctx) -> Option<u16> {
    let dx = c.dx();
    if dx > 3 {
        return None;
    }
    match c.bda16(COM_PORTS + 2 * dx) {
        0 => None,
        b => Some(b),
    }
}

/// What INT 14h did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Int14 {
    Done,
    /// The UART is not ready yet: continue in the wait loop and retry.
    Wait,
}

/// Wait for line status bit `bit` of the UART at `base` up to the port's
/// time-out (40:7C, in seconds). Some(lsr) when it came, None to wait on,
/// or Some(lsr | 80h) after the time-out.
fn uart_wait(c: &mut Ctx, waits: &mut Waits, base: u16, bit: u8) -> Option<u8> {
    let port = c.dx() & 3;
    let lsr = c.inb(base + 5);
    let who = c.stack_top();
    let now = c.p.now_ns();
    let done = |c: &mut Ctx, waits: &mut Waits, v: u8| {
        if waits.serial.take().is_some() && waits.idle() {
            clock::rtc_periodic(c, false);
        }
        Some(v)
    };
    if lsr & bit != 0 {
        return done(c, waits, lsr);
    }
    match waits.serial {
        Some((w, deadline)) if w == who => {
            if now >= deadline {
                return done(c, waits, lsr | 0x80);
            }
            None
        }
        _ => {
            let secs = c.bda8(COM_TIMEOUTS + port).max(1) as u64;
            waits.serial = Some((who, now.saturating_add(secs * 1_000_000_000)));
            clock::rtc_periodic(c, true);
            None
        }
    }
}

/// INT 14h: AH=00h initialise, 01h send AL, 02h receive into AL, 03h
/// status. Returns AH = line status (bit 7: time-out), AL = modem status.
/// Sending and receiving wait (in the ROM's wait loop) for the UART up to
/// the port's time-out.
pub fn int14(c: &mut Ctx, waits: &mut Waits) -> Int14 {
    let Some(base) = com_base(c) else {
        c.set_ah(0x80);
        return Int14::Done;
    };
    match c.ah() {
        0x00 => {
            let al = c.al();
            const DIVISORS: [u16; 8] = [1047, 768, 384, 192, 96, 48, 24, 12];
            let div = DIVISORS[(al >> 5) as usize];
            c.outb(base + 3, 0x80);
            c.outb(base, div as u8);
            c.outb(base + 1, (div >> 8) as u8);
            // AL bits 4-0 are the line control register's bits 4-0.
            c.outb(base + 3, al & 0x1F);
            c.outb(base + 1, 0);
            status(c, base);
        }
        0x01 => {
            // DTR and RTS, then send when the transmitter is free.
            c.outb(base + 4, 0x03);
            let Some(lsr) = uart_wait(c, waits, base, 0x20) else { return Int14::Wait };
            if lsr & 0x80 == 0 {
                let ch = c.al();
                c.outb(base, ch);
                let lsr = c.inb(base + 5);
                c.set_ah(lsr & 0x7F);
            } else {
                c.set_ah(lsr);
            }
        }
        0x02 => {
            c.outb(base + 4, 0x01);
            let Some(lsr) = uart_wait(c, waits, base, 0x01) else { return Int14::Wait };
            if lsr & 0x80 == 0 {
                let ch = c.inb(base);
                c.set_al(ch);
            }
            c.set_ah(lsr & 0x9E);
        }
        0x03 => status(c, base),
        ah => c.log_unsupported(0x14, ah),
    }
    Int14::Done
}

fn status(c: &mut Ctx, base: u16) {
    let lsr = c.inb(base + 5);
    let msr = c.inb(base + 6);
    c.set_ah(lsr);
    c.set_al(msr);
}

/// INT 17h: no parallel port: every call reports a time-out (AH bit 0).
pub fn int17(c: &mut Ctx) {
    c.set_ah(0x01);
}
