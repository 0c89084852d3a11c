//! The keyboard: IRQ1 (INT 09h) turns set-1 scan codes (the 8042
//! translates the keyboard's set 2) into the IBM key codes of the BIOS
//! keyboard buffer, keeping the shift/lock state in the data area; INT 16h
//! reads the buffer.
//!
//! Data area (IBM PC/AT): 40:17 shift flags 1 (RShift, LShift, Ctrl, Alt,
//! Scroll, Num, Caps, Insert), 40:18 shift flags 2 (LCtrl, LAlt, SysReq,
//! Pause, Scroll/Num/Caps/Insert keys down), 40:19 Alt+keypad value,
//! 40:1A head and 40:1C tail of the buffer (offsets from 0x400), 40:1E-3D
//! the 16-word buffer, 40:71 Ctrl-Break flag, 40:80/40:82 buffer start and
//! end, 40:96 keyboard status 3 (E0/E1 prefix, RCtrl, RAlt, 101-key
//! keyboard), 40:97 LED state.
//!
//! Not implemented: Pause, SysReq (INT 15h AH=85h), Print Screen (INT 05h)
//! and typematic beyond passing AH=03h's rate to the keyboard.

use super::ctx::{Ctx, ZF};

pub const FLAGS1: u16 = 0x17;
pub const FLAGS2: u16 = 0x18;
pub const ALT_NUM: u16 = 0x19;
pub const HEAD: u16 = 0x1A;
pub const TAIL: u16 = 0x1C;
pub const BUF_START: u16 = 0x80;
pub const BUF_END: u16 = 0x82;
pub const BREAK_FLAG: u16 = 0x71;
pub const FLAGS3: u16 = 0x96;
pub const LEDS: u16 = 0x97;
/// The standard buffer: 40:1E-40:3D.
pub const DEFAULT_START: u16 = 0x1E;
pub const DEFAULT_END: u16 = 0x3E;

const RSHIFT: u8 = 0x01;
const LSHIFT: u8 = 0x02;
const CTRL: u8 = 0x04;
const ALT: u8 = 0x08;
const SCROLL_ON: u8 = 0x10;
const NUM_ON: u8 = 0x20;
const CAPS_ON: u8 = 0x40;
const INSERT_ON: u8 = 0x80;

const LCTRL_DOWN: u8 = 0x01;
const LALT_DOWN: u8 = 0x02;
const SCROLL_DOWN: u8 = 0x10;
const NUM_DOWN: u8 = 0x20;
const CAPS_DOWN: u8 = 0x40;
const INSERT_DOWN: u8 = 0x80;

const LAST_E1: u8 = 0x01;
const LAST_E0: u8 = 0x02;
const RCTRL_DOWN: u8 = 0x04;
const RALT_DOWN: u8 = 0x08;
/// 40:96 bit 4: a 101/102-key keyboard is installed.
pub const KBD_101: u8 = 0x10;

/// Key codes for set-1 scan codes 01h-58h: normal, Shift, Ctrl, Alt
/// (0: the combination produces nothing). IBM PC/AT technical reference,
/// "Keyboard Encoding and Usage"; extended codes as enhanced-keyboard BIOSes
/// return them through INT 16h AH=10h.
#[rustfmt::skip]
const KEYS: [[u16; 4]; 0x59] = [
    [0, 0, 0, 0],
    [0x011B, 0x011B, 0x011B, 0x0100], // Esc
    [0x0231, 0x0221, 0, 0x7800],      // 1 !
    [0x0332, 0x0340, 0x0300, 0x7900], // 2 @
    [0x0433, 0x0423, 0, 0x7A00],      // 3 #
    [0x0534, 0x0524, 0, 0x7B00],      // 4 $
    [0x0635, 0x0625, 0, 0x7C00],      // 5 %
    [0x0736, 0x075E, 0x071E, 0x7D00], // 6 ^
    [0x0837, 0x0826, 0, 0x7E00],      // 7 &
    [0x0938, 0x092A, 0, 0x7F00],      // 8 *
    [0x0A39, 0x0A28, 0, 0x8000],      // 9 (
    [0x0B30, 0x0B29, 0, 0x8100],      // 0 )
    [0x0C2D, 0x0C5F, 0x0C1F, 0x8200], // - _
    [0x0D3D, 0x0D2B, 0, 0x8300],      // = +
    [0x0E08, 0x0E08, 0x0E7F, 0x0E00], // Backspace
    [0x0F09, 0x0F00, 0x9400, 0xA500], // Tab
    [0x1071, 0x1051, 0x1011, 0x1000], // q
    [0x1177, 0x1157, 0x1117, 0x1100], // w
    [0x1265, 0x1245, 0x1205, 0x1200], // e
    [0x1372, 0x1352, 0x1312, 0x1300], // r
    [0x1474, 0x1454, 0x1414, 0x1400], // t
    [0x1579, 0x1559, 0x1519, 0x1500], // y
    [0x1675, 0x1655, 0x1615, 0x1600], // u
    [0x1769, 0x1749, 0x1709, 0x1700], // i
    [0x186F, 0x184F, 0x180F, 0x1800], // o
    [0x1970, 0x1950, 0x1910, 0x1900], // p
    [0x1A5B, 0x1A7B, 0x1A1B, 0x1A00], // [ {
    [0x1B5D, 0x1B7D, 0x1B1D, 0x1B00], // ] }
    [0x1C0D, 0x1C0D, 0x1C0A, 0x1C00], // Enter
    [0, 0, 0, 0],                     // Ctrl
    [0x1E61, 0x1E41, 0x1E01, 0x1E00], // a
    [0x1F73, 0x1F53, 0x1F13, 0x1F00], // s
    [0x2064, 0x2044, 0x2004, 0x2000], // d
    [0x2166, 0x2146, 0x2106, 0x2100], // f
    [0x2267, 0x2247, 0x2207, 0x2200], // g
    [0x2368, 0x2348, 0x2308, 0x2300], // h
    [0x246A, 0x244A, 0x240A, 0x2400], // j
    [0x256B, 0x254B, 0x250B, 0x2500], // k
    [0x266C, 0x264C, 0x260C, 0x2600], // l
    [0x273B, 0x273A, 0, 0x2700],      // ; :
    [0x2827, 0x2822, 0, 0x2800],      // ' "
    [0x2960, 0x297E, 0, 0x2900],      // ` ~
    [0, 0, 0, 0],                     // Left Shift
    [0x2B5C, 0x2B7C, 0x2B1C, 0x2B00], // \ |
    [0x2C7A, 0x2C5A, 0x2C1A, 0x2C00], // z
    [0x2D78, 0x2D58, 0x2D18, 0x2D00], // x
    [0x2E63, 0x2E43, 0x2E03, 0x2E00], // c
    [0x2F76, 0x2F56, 0x2F16, 0x2F00], // v
    [0x3062, 0x3042, 0x3002, 0x3000], // b
    [0x316E, 0x314E, 0x310E, 0x3100], // n
    [0x326D, 0x324D, 0x320D, 0x3200], // m
    [0x332C, 0x333C, 0, 0x3300],      // , <
    [0x342E, 0x343E, 0, 0x3400],      // . >
    [0x352F, 0x353F, 0, 0x3500],      // / ?
    [0, 0, 0, 0],                     // Right Shift
    [0x372A, 0x372A, 0x9600, 0x3700], // keypad *
    [0, 0, 0, 0],                     // Alt
    [0x3920, 0x3920, 0x3920, 0x3920], // Space
    [0, 0, 0, 0],                     // Caps Lock
    [0x3B00, 0x5400, 0x5E00, 0x6800], // F1
    [0x3C00, 0x5500, 0x5F00, 0x6900], // F2
    [0x3D00, 0x5600, 0x6000, 0x6A00], // F3
    [0x3E00, 0x5700, 0x6100, 0x6B00], // F4
    [0x3F00, 0x5800, 0x6200, 0x6C00], // F5
    [0x4000, 0x5900, 0x6300, 0x6D00], // F6
    [0x4100, 0x5A00, 0x6400, 0x6E00], // F7
    [0x4200, 0x5B00, 0x6500, 0x6F00], // F8
    [0x4300, 0x5C00, 0x6600, 0x7000], // F9
    [0x4400, 0x5D00, 0x6700, 0x7100], // F10
    [0, 0, 0, 0],                     // Num Lock
    [0, 0, 0, 0],                     // Scroll Lock
    [0x4700, 0x4737, 0x7700, 0],      // keypad 7 / Home
    [0x4800, 0x4838, 0x8D00, 0],      // keypad 8 / Up
    [0x4900, 0x4939, 0x8400, 0],      // keypad 9 / PgUp
    [0x4A2D, 0x4A2D, 0x8E00, 0x4A00], // keypad -
    [0x4B00, 0x4B34, 0x7300, 0],      // keypad 4 / Left
    [0x4C00, 0x4C35, 0x8F00, 0],      // keypad 5
    [0x4D00, 0x4D36, 0x7400, 0],      // keypad 6 / Right
    [0x4E2B, 0x4E2B, 0x9000, 0x4E00], // keypad +
    [0x4F00, 0x4F31, 0x7500, 0],      // keypad 1 / End
    [0x5000, 0x5032, 0x9100, 0],      // keypad 2 / Down
    [0x5100, 0x5133, 0x7600, 0],      // keypad 3 / PgDn
    [0x5200, 0x5230, 0x9200, 0],      // keypad 0 / Ins
    [0x5300, 0x532E, 0x9300, 0],      // keypad . / Del
    [0, 0, 0, 0],                     // SysReq
    [0, 0, 0, 0],
    [0x565C, 0x567C, 0, 0],           // the 102nd key (\ |)
    [0x8500, 0x8700, 0x8900, 0x8B00], // F11
    [0x8600, 0x8800, 0x8A00, 0x8C00], // F12
];

/// The grey keys (E0-prefixed), for the same modifier columns.
fn grey_key(scan: u8) -> Option<[u16; 4]> {
    Some(match scan {
        0x1C => [0xE00D, 0xE00D, 0xE00A, 0xA600], // keypad Enter
        0x35 => [0xE02F, 0xE02F, 0x9500, 0xA400], // keypad /
        0x47 => [0x47E0, 0x47E0, 0x77E0, 0x9700], // Home
        0x48 => [0x48E0, 0x48E0, 0x8DE0, 0x9800], // Up
        0x49 => [0x49E0, 0x49E0, 0x84E0, 0x9900], // PgUp
        0x4B => [0x4BE0, 0x4BE0, 0x73E0, 0x9B00], // Left
        0x4D => [0x4DE0, 0x4DE0, 0x74E0, 0x9D00], // Right
        0x4F => [0x4FE0, 0x4FE0, 0x75E0, 0x9F00], // End
        0x50 => [0x50E0, 0x50E0, 0x91E0, 0xA000], // Down
        0x51 => [0x51E0, 0x51E0, 0x76E0, 0xA100], // PgDn
        0x52 => [0x52E0, 0x52E0, 0x92E0, 0xA200], // Insert
        0x53 => [0x53E0, 0x53E0, 0x93E0, 0xA300], // Delete
        _ => return None,
    })
}

fn is_letter(scan: u8) -> bool {
    matches!(scan, 0x10..=0x19 | 0x1E..=0x26 | 0x2C..=0x32)
}

fn is_keypad(scan: u8) -> bool {
    matches!(scan, 0x47..=0x53) && scan != 0x4A && scan != 0x4E
}

/// What happened to a scan code that the caller must act on in the ROM.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyAction {
    None,
    /// Ctrl-Break: the stub continues with INT 1Bh.
    Break,
    /// Ctrl-Alt-Del: reset the machine (warm boot).
    Reboot,
}

/// Buffer bounds, sanitised so a guest that scribbled over them cannot make
/// the BIOS walk outside segment 40h.
fn bounds(c: &mut Ctx) -> (u16, u16) {
    let start = c.bda16(BUF_START);
    let end = c.bda16(BUF_END);
    if start < DEFAULT_START || end <= start + 2 || end > 0x200 || !(end - start).is_multiple_of(2) {
        (DEFAULT_START, DEFAULT_END)
    } else {
        (start, end)
    }
}

/// Put a key code at the tail of the buffer. False when it is full.
pub fn enqueue(c: &mut Ctx, code: u16) -> bool {
    let (start, end) = bounds(c);
    let tail = c.bda16(TAIL);
    let tail = if tail < start || tail >= end { start } else { tail };
    let mut next = tail + 2;
    if next >= end {
        next = start;
    }
    if next == c.bda16(HEAD) {
        return false;
    }
    c.set_bda16(tail, code);
    c.set_bda16(TAIL, next);
    true
}

/// The key at the head of the buffer, removed if `take`.
fn peek(c: &mut Ctx, take: bool) -> Option<u16> {
    let (start, end) = bounds(c);
    let head = c.bda16(HEAD);
    if head == c.bda16(TAIL) {
        return None;
    }
    let head = if head < start || head >= end { start } else { head };
    let code = c.bda16(head);
    if take {
        let mut next = head + 2;
        if next >= end {
            next = start;
        }
        c.set_bda16(HEAD, next);
    }
    Some(code)
}

/// The key AH=00h/01h returns for `code`, or None if those (pre-enhanced)
/// functions drop it.
fn classic(code: u16) -> Option<u16> {
    let (scan, ascii) = ((code >> 8) as u8, code as u8);
    if scan == 0xE0 {
        // Keypad Enter and / look like their main-keyboard twins.
        return Some(if ascii == 0x2F { 0x352F } else { 0x1C00 | ascii as u16 });
    }
    if scan > 0x84 {
        return None;
    }
    if ascii == 0xE0 && scan != 0 {
        return Some(code & 0xFF00);
    }
    if ascii == 0xF0 && scan != 0 {
        return None;
    }
    Some(code)
}

/// Send the lock state to the keyboard LEDs when it changed.
fn update_leds(c: &mut Ctx) {
    let f = c.bda8(FLAGS1);
    let leds = ((f & SCROLL_ON) >> 4) | ((f & NUM_ON) >> 4) | ((f & CAPS_ON) >> 4);
    let old = c.bda8(LEDS);
    if old & 7 != leds {
        c.set_bda8(LEDS, (old & !7) | leds);
        // Set LEDs (0xED) and its parameter; the ACKs arrive as IRQ1 bytes
        // the handler ignores.
        c.outb(0x60, 0xED);
        c.outb(0x60, leds);
    }
}

/// INT 09h: one scan code (after the INT 15h AH=4Fh intercept).
pub fn irq1(c: &mut Ctx, code: u8) -> KeyAction {
    let mut f3 = c.bda8(FLAGS3);
    match code {
        // Keyboard replies and errors: ACK, resend, echo, overrun. (AAh,
        // the self-test result, is also Left Shift's break code: kept.)
        0x00 | 0xEE | 0xFA | 0xFE | 0xFF => return KeyAction::None,
        0xE0 => {
            c.set_bda8(FLAGS3, (f3 & !LAST_E1) | LAST_E0);
            return KeyAction::None;
        }
        0xE1 => {
            c.set_bda8(FLAGS3, (f3 & !LAST_E0) | LAST_E1);
            return KeyAction::None;
        }
        _ => {}
    }
    let e0 = f3 & LAST_E0 != 0;
    let e1 = f3 & LAST_E1 != 0;
    f3 &= !(LAST_E0 | LAST_E1);
    c.set_bda8(FLAGS3, f3);
    if e1 {
        // Pause (E1 1D 45 E1 9D C5): not implemented.
        return KeyAction::None;
    }
    let release = code & 0x80 != 0;
    let scan = code & 0x7F;
    let mut f1 = c.bda8(FLAGS1);
    let mut f2 = c.bda8(FLAGS2);
    // Fake shifts the keyboard wraps around grey keys.
    if e0 && (scan == 0x2A || scan == 0x36) {
        return KeyAction::None;
    }
    let mut action = KeyAction::None;
    match scan {
        0x2A | 0x36 => {
            let bit = if scan == 0x2A { LSHIFT } else { RSHIFT };
            f1 = if release { f1 & !bit } else { f1 | bit };
        }
        0x1D => {
            if e0 {
                f3 = if release { f3 & !RCTRL_DOWN } else { f3 | RCTRL_DOWN };
            } else {
                f2 = if release { f2 & !LCTRL_DOWN } else { f2 | LCTRL_DOWN };
            }
            let any = f2 & LCTRL_DOWN != 0 || f3 & RCTRL_DOWN != 0;
            f1 = if any { f1 | CTRL } else { f1 & !CTRL };
        }
        0x38 => {
            if e0 {
                f3 = if release { f3 & !RALT_DOWN } else { f3 | RALT_DOWN };
            } else {
                f2 = if release { f2 & !LALT_DOWN } else { f2 | LALT_DOWN };
            }
            let any = f2 & LALT_DOWN != 0 || f3 & RALT_DOWN != 0;
            f1 = if any { f1 | ALT } else { f1 & !ALT };
            if release && !any {
                // Alt released: a number typed on the keypad becomes a key.
                let v = c.bda8(ALT_NUM);
                c.set_bda8(ALT_NUM, 0);
                if v != 0 {
                    enqueue(c, v as u16);
                }
            }
        }
        0x3A | 0x45 | 0x46 if !(e0 && scan == 0x46) => {
            let (on, down) = match scan {
                0x3A => (CAPS_ON, CAPS_DOWN),
                0x45 => (NUM_ON, NUM_DOWN),
                _ => (SCROLL_ON, SCROLL_DOWN),
            };
            if scan == 0x45 && f1 & CTRL != 0 {
                // Ctrl-NumLock is Pause on the old keyboards: ignored.
            } else if release {
                f2 &= !down;
            } else if f2 & down == 0 {
                f2 |= down;
                f1 ^= on;
            }
        }
        _ if release => {
            if scan == 0x52 {
                f2 &= !INSERT_DOWN;
            }
        }
        _ => {
            let ctrl = f1 & CTRL != 0;
            let alt = f1 & ALT != 0;
            let shift = f1 & (LSHIFT | RSHIFT) != 0;
            if ctrl && alt && scan == 0x53 {
                action = KeyAction::Reboot;
            } else if e0 && scan == 0x46 && ctrl {
                // Ctrl-Break: flush the buffer, leave a zero key, flag it.
                let (start, _) = bounds(c);
                c.set_bda16(HEAD, start);
                c.set_bda16(TAIL, start);
                enqueue(c, 0);
                let b = c.bda8(BREAK_FLAG);
                c.set_bda8(BREAK_FLAG, b | 0x80);
                action = KeyAction::Break;
            } else if alt && !e0 && is_keypad(scan) && !matches!(scan, 0x4A | 0x4E) {
                let digit = match scan {
                    0x47 => Some(7),
                    0x48 => Some(8),
                    0x49 => Some(9),
                    0x4B => Some(4),
                    0x4C => Some(5),
                    0x4D => Some(6),
                    0x4F => Some(1),
                    0x50 => Some(2),
                    0x51 => Some(3),
                    0x52 => Some(0),
                    _ => None,
                };
                if let Some(d) = digit {
                    let v = c.bda8(ALT_NUM);
                    c.set_bda8(ALT_NUM, v.wrapping_mul(10).wrapping_add(d));
                }
            } else {
                if scan == 0x52 {
                    // Insert (grey, or keypad 0 when it is not a digit).
                    let digit = !e0 && ((f1 & NUM_ON != 0) != shift);
                    if !digit {
                        if f2 & INSERT_DOWN == 0 {
                            f1 ^= INSERT_ON;
                        }
                        f2 |= INSERT_DOWN;
                    }
                }
                let row = if e0 { grey_key(scan) } else { KEYS.get(scan as usize).copied() };
                if let Some(row) = row {
                    let col = if alt {
                        3
                    } else if ctrl {
                        2
                    } else {
                        let mut sh = shift;
                        if is_letter(scan) && f1 & CAPS_ON != 0 {
                            sh = !sh;
                        }
                        if !e0 && is_keypad(scan) && f1 & NUM_ON != 0 {
                            sh = !sh;
                        }
                        sh as usize
                    };
                    let key = row[col];
                    if key != 0 {
                        enqueue(c, key);
                    }
                }
            }
        }
    }
    c.set_bda8(FLAGS1, f1);
    c.set_bda8(FLAGS2, f2);
    c.set_bda8(FLAGS3, f3);
    update_leds(c);
    action
}

/// What INT 16h did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Int16 {
    Done,
    /// No key yet: continue in the ROM's wait loop.
    Wait,
}

/// INT 16h.
pub fn int16(c: &mut Ctx) -> Int16 {
    match c.ah() {
        0x00 | 0x10 => {
            let extended = c.ah() == 0x10;
            loop {
                let Some(code) = peek(c, true) else { return Int16::Wait };
                let code = if extended { Some(code) } else { classic(code) };
                if let Some(code) = code {
                    c.set_ax(code);
                    return Int16::Done;
                }
            }
        }
        0x01 | 0x11 => {
            let extended = c.ah() == 0x11;
            loop {
                let Some(code) = peek(c, false) else {
                    c.set_flag(ZF, true);
                    return Int16::Done;
                };
                let code = if extended { Some(code) } else { classic(code) };
                match code {
                    Some(code) => {
                        c.set_ax(code);
                        c.set_flag(ZF, false);
                        return Int16::Done;
                    }
                    // AH=01h does not report keys AH=00h would drop.
                    None => {
                        peek(c, true);
                    }
                }
            }
        }
        0x02 => {
            let f = c.bda8(FLAGS1);
            c.set_al(f);
        }
        0x12 => {
            let f1 = c.bda8(FLAGS1);
            let f2 = c.bda8(FLAGS2);
            let f3 = c.bda8(FLAGS3);
            let ah = (f2 & 0x73) | (f3 & (RCTRL_DOWN | RALT_DOWN)) | ((f2 & 0x04) << 5);
            c.set_al(f1);
            c.set_ah(ah);
        }
        0x03 => {
            if c.al() == 0x05 {
                let rate = ((c.bh() & 3) << 5) | (c.bl() & 0x1F);
                c.outb(0x60, 0xF3);
                c.outb(0x60, rate);
            }
        }
        0x05 => {
            let cx = c.cx();
            let full = !enqueue(c, cx);
            c.set_al(full as u8);
        }
        // Functionality: set typematic (0305h), get keyboard ID (0Ah),
        // the enhanced functions 10h-12h.
        0x09 => c.set_al(0x34),
        0x0A => c.set_bx(0x41AB),
        ah => c.log_unsupported(0x16, ah),
    }
    Int16::Done
}
