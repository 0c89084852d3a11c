//! The PS/2 (IBM MF2, 101/102/104-key) keyboard on the 8042's first port.
//!
//! References: IBM "Keyboard and Auxiliary Device Controller" and "101/102-Key
//! Keyboard" chapters of the PS/2 Hardware Interface Technical Reference
//! (commands 0xED-0xFF, default states, scan code sets 1-3, key types);
//! Microsoft "Keyboard Scan Code Specification" rev. 1.3a (set 1 and set 2
//! make/break sequences, the Print Screen and Pause special cases, the
//! Windows and Application keys); A. Brouwer, "Keyboard scancodes", sections
//! 9.2 (make/break per set), 9.6 (the per-key correspondence table of sets 1,
//! 2 and 3) and 11 (keyboard command details).
//!
//! Model:
//! - What the keyboard has to send waits in two bounded queues: replies to
//!   commands (sent first, as the keyboard answers a command before resuming
//!   its scan buffer) and scan codes. The controller pulls bytes one at a
//!   time when its port is not inhibited.
//! - Scan codes are produced for the selected set (1, 2 or 3) directly; the
//!   controller's set 2 -> set 1 translation happens in the 8042, not here.
//! - Typematic repeat is not generated in virtual time: the host's own
//!   auto-repeat (a second `pressed` event for a held key) produces the
//!   repeated make code, except in set 3 for keys whose typematic attribute
//!   is off. The typematic rate/delay byte is stored and otherwise unused.
//! - The "fake shift" codes some keyboards add around the grey navigation
//!   keys and KP / (E0 2A / E0 AA in set 1) are not generated; guests ignore
//!   them.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

/// Acknowledge: the reply to every valid command and parameter byte.
pub const KBD_ACK: u8 = 0xFA;
/// Resend request: the reply to an unknown command or an invalid parameter.
pub const KBD_RESEND: u8 = 0xFE;
/// Basic assurance test passed (after reset).
pub const KBD_BAT_OK: u8 = 0xAA;
/// Reply to the echo command.
pub const KBD_ECHO: u8 = 0xEE;
/// The MF2 keyboard identification (command 0xF2). Translated by the 8042
/// this reads AB 41.
pub const KBD_ID: [u8; 2] = [0xAB, 0x83];
/// Default typematic byte after reset: 500 ms delay, 10.9 characters/s.
pub const DEFAULT_TYPEMATIC: u8 = 0x2B;
/// Bound of the scan code queue, in bytes. The last slot is kept for the
/// overrun code, so a full buffer ends in exactly one overrun marker.
pub const SCAN_QUEUE_LIMIT: usize = 64;
/// Bound of the reply queue (a guest that never reads cannot grow it).
pub const REPLY_QUEUE_LIMIT: usize = 64;

/// Set 3 per-key attribute bits (commands 0xF7-0xFD set a key's whole
/// type: typematic, make/break, make only, or typematic make/break).
pub const ATTR_TYPEMATIC: u8 = 0x01;
pub const ATTR_BREAK: u8 = 0x02;

/// Modifier bits kept to pick the Print Screen and Pause variants.
const MOD_SHIFT: u8 = 0x03;
const MOD_CTRL: u8 = 0x0C;
const MOD_ALT: u8 = 0x30;

/// One key's codes: its set 1 and set 2 code byte (preceded by E0 when
/// `extended`) and its set 3 code (never prefixed).
#[derive(Clone, Copy, Debug)]
struct Codes {
    set1: u8,
    set2: u8,
    set3: u8,
    extended: bool,
}

macro_rules! keys {
    ($($(#[$meta:meta])* $name:ident = ($s1:expr, $s2:expr, $s3:expr, $ext:expr);)*) => {
        /// A key of a 104-key PC keyboard (plus the 102-key ISO key), named
        /// like the W3C UI Events `KeyboardEvent.code` values (which winit's
        /// `KeyCode` also follows), so a frontend maps host keys one to one.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[repr(u8)]
        pub enum KeyCode {
            $($(#[$meta])* $name,)*
        }

        impl KeyCode {
            /// Every key, in declaration order.
            pub const ALL: &'static [KeyCode] = &[$(KeyCode::$name,)*];

            fn codes(self) -> Codes {
                match self {
                    $(KeyCode::$name => Codes { set1: $s1, set2: $s2, set3: $s3, extended: $ext },)*
                }
            }
        }
    };
}

// (set 1, set 2, set 3, E0-prefixed in sets 1 and 2), from Brouwer table 9.6
// and the Microsoft scan code specification. Print Screen and Pause carry
// the codes of their plain forms; their sequences are special-cased.
keys! {
    Escape = (0x01, 0x76, 0x08, false);
    F1 = (0x3B, 0x05, 0x07, false);
    F2 = (0x3C, 0x06, 0x0F, false);
    F3 = (0x3D, 0x04, 0x17, false);
    F4 = (0x3E, 0x0C, 0x1F, false);
    F5 = (0x3F, 0x03, 0x27, false);
    F6 = (0x40, 0x0B, 0x2F, false);
    F7 = (0x41, 0x83, 0x37, false);
    F8 = (0x42, 0x0A, 0x3F, false);
    F9 = (0x43, 0x01, 0x47, false);
    F10 = (0x44, 0x09, 0x4F, false);
    F11 = (0x57, 0x78, 0x56, false);
    F12 = (0x58, 0x07, 0x5E, false);
    /// Print Screen / SysRq.
    PrintScreen = (0x37, 0x7C, 0x57, true);
    ScrollLock = (0x46, 0x7E, 0x5F, false);
    /// Pause / Break: make code only, no break code.
    Pause = (0x45, 0x77, 0x62, false);
    Backquote = (0x29, 0x0E, 0x0E, false);
    Digit1 = (0x02, 0x16, 0x16, false);
    Digit2 = (0x03, 0x1E, 0x1E, false);
    Digit3 = (0x04, 0x26, 0x26, false);
    Digit4 = (0x05, 0x25, 0x25, false);
    Digit5 = (0x06, 0x2E, 0x2E, false);
    Digit6 = (0x07, 0x36, 0x36, false);
    Digit7 = (0x08, 0x3D, 0x3D, false);
    Digit8 = (0x09, 0x3E, 0x3E, false);
    Digit9 = (0x0A, 0x46, 0x46, false);
    Digit0 = (0x0B, 0x45, 0x45, false);
    Minus = (0x0C, 0x4E, 0x4E, false);
    Equal = (0x0D, 0x55, 0x55, false);
    Backspace = (0x0E, 0x66, 0x66, false);
    Tab = (0x0F, 0x0D, 0x0D, false);
    KeyQ = (0x10, 0x15, 0x15, false);
    KeyW = (0x11, 0x1D, 0x1D, false);
    KeyE = (0x12, 0x24, 0x24, false);
    KeyR = (0x13, 0x2D, 0x2D, false);
    KeyT = (0x14, 0x2C, 0x2C, false);
    KeyY = (0x15, 0x35, 0x35, false);
    KeyU = (0x16, 0x3C, 0x3C, false);
    KeyI = (0x17, 0x43, 0x43, false);
    KeyO = (0x18, 0x44, 0x44, false);
    KeyP = (0x19, 0x4D, 0x4D, false);
    BracketLeft = (0x1A, 0x54, 0x54, false);
    BracketRight = (0x1B, 0x5B, 0x5B, false);
    Backslash = (0x2B, 0x5D, 0x5C, false);
    CapsLock = (0x3A, 0x58, 0x14, false);
    KeyA = (0x1E, 0x1C, 0x1C, false);
    KeyS = (0x1F, 0x1B, 0x1B, false);
    KeyD = (0x20, 0x23, 0x23, false);
    KeyF = (0x21, 0x2B, 0x2B, false);
    KeyG = (0x22, 0x34, 0x34, false);
    KeyH = (0x23, 0x33, 0x33, false);
    KeyJ = (0x24, 0x3B, 0x3B, false);
    KeyK = (0x25, 0x42, 0x42, false);
    KeyL = (0x26, 0x4B, 0x4B, false);
    Semicolon = (0x27, 0x4C, 0x4C, false);
    Quote = (0x28, 0x52, 0x52, false);
    Enter = (0x1C, 0x5A, 0x5A, false);
    ShiftLeft = (0x2A, 0x12, 0x12, false);
    /// The extra key left of Z on 102-key (ISO) keyboards.
    IntlBackslash = (0x56, 0x61, 0x13, false);
    KeyZ = (0x2C, 0x1A, 0x1A, false);
    KeyX = (0x2D, 0x22, 0x22, false);
    KeyC = (0x2E, 0x21, 0x21, false);
    KeyV = (0x2F, 0x2A, 0x2A, false);
    KeyB = (0x30, 0x32, 0x32, false);
    KeyN = (0x31, 0x31, 0x31, false);
    KeyM = (0x32, 0x3A, 0x3A, false);
    Comma = (0x33, 0x41, 0x41, false);
    Period = (0x34, 0x49, 0x49, false);
    Slash = (0x35, 0x4A, 0x4A, false);
    ShiftRight = (0x36, 0x59, 0x59, false);
    ControlLeft = (0x1D, 0x14, 0x11, false);
    /// Left Windows key.
    MetaLeft = (0x5B, 0x1F, 0x8B, true);
    AltLeft = (0x38, 0x11, 0x19, false);
    Space = (0x39, 0x29, 0x29, false);
    AltRight = (0x38, 0x11, 0x39, true);
    /// Right Windows key.
    MetaRight = (0x5C, 0x27, 0x8C, true);
    /// The Application (menu) key.
    ContextMenu = (0x5D, 0x2F, 0x8D, true);
    ControlRight = (0x1D, 0x14, 0x58, true);
    Insert = (0x52, 0x70, 0x67, true);
    Delete = (0x53, 0x71, 0x64, true);
    Home = (0x47, 0x6C, 0x6E, true);
    End = (0x4F, 0x69, 0x65, true);
    PageUp = (0x49, 0x7D, 0x6F, true);
    PageDown = (0x51, 0x7A, 0x6D, true);
    ArrowUp = (0x48, 0x75, 0x63, true);
    ArrowLeft = (0x4B, 0x6B, 0x61, true);
    ArrowDown = (0x50, 0x72, 0x60, true);
    ArrowRight = (0x4D, 0x74, 0x6A, true);
    NumLock = (0x45, 0x77, 0x76, false);
    NumpadDivide = (0x35, 0x4A, 0x77, true);
    NumpadMultiply = (0x37, 0x7C, 0x7E, false);
    NumpadSubtract = (0x4A, 0x7B, 0x84, false);
    NumpadAdd = (0x4E, 0x79, 0x7C, false);
    NumpadEnter = (0x1C, 0x5A, 0x79, true);
    NumpadDecimal = (0x53, 0x71, 0x71, false);
    Numpad0 = (0x52, 0x70, 0x70, false);
    Numpad1 = (0x4F, 0x69, 0x69, false);
    Numpad2 = (0x50, 0x72, 0x72, false);
    Numpad3 = (0x51, 0x7A, 0x7A, false);
    Numpad4 = (0x4B, 0x6B, 0x6B, false);
    Numpad5 = (0x4C, 0x73, 0x73, false);
    Numpad6 = (0x4D, 0x74, 0x74, false);
    Numpad7 = (0x47, 0x6C, 0x6C, false);
    Numpad8 = (0x48, 0x75, 0x75, false);
    Numpad9 = (0x49, 0x7D, 0x7D, false);
}

impl KeyCode {
    fn modifier_bit(self) -> u8 {
        match self {
            KeyCode::ShiftLeft => 0x01,
            KeyCode::ShiftRight => 0x02,
            KeyCode::ControlLeft => 0x04,
            KeyCode::ControlRight => 0x08,
            KeyCode::AltLeft => 0x10,
            KeyCode::AltRight => 0x20,
            _ => 0,
        }
    }

    /// The key's set 3 code (its "key number" in the set 3 attribute table).
    pub fn set3_code(self) -> u8 {
        self.codes().set3
    }
}

/// The make (`pressed`) or break sequence of `key` in scan code set 1 or 2
/// with the modifiers `mods` held; empty for Pause's release. Set 3 goes
/// through [`Keyboard::key_event`] because it depends on key attributes.
pub fn scan_sequence(key: KeyCode, pressed: bool, set: u8, mods: u8) -> Vec<u8> {
    let set1 = set == 1;
    let c = key.codes();
    match key {
        // Microsoft scan code spec, "Print Screen": E0 2A E0 37 alone (set
        // 2: E0 12 E0 7C), just E0 37 with Shift or Ctrl, and the SysRq code
        // 54 (set 2: 84) with Alt; release mirrors the press.
        KeyCode::PrintScreen if mods & MOD_ALT != 0 => match (set1, pressed) {
            (true, true) => vec![0x54],
            (true, false) => vec![0xD4],
            (false, true) => vec![0x84],
            (false, false) => vec![0xF0, 0x84],
        },
        KeyCode::PrintScreen if mods & (MOD_SHIFT | MOD_CTRL) != 0 => match (set1, pressed) {
            (true, true) => vec![0xE0, 0x37],
            (true, false) => vec![0xE0, 0xB7],
            (false, true) => vec![0xE0, 0x7C],
            (false, false) => vec![0xE0, 0xF0, 0x7C],
        },
        KeyCode::PrintScreen => match (set1, pressed) {
            (true, true) => vec![0xE0, 0x2A, 0xE0, 0x37],
            (true, false) => vec![0xE0, 0xB7, 0xE0, 0xAA],
            (false, true) => vec![0xE0, 0x12, 0xE0, 0x7C],
            (false, false) => vec![0xE0, 0xF0, 0x7C, 0xE0, 0xF0, 0x12],
        },
        // "Pause": no break code; the make sequence already contains the
        // E1-prefixed make and break of the key. With Ctrl it is Break:
        // E0 46 E0 C6 (set 2: E0 7E E0 F0 7E), again all sent on press.
        KeyCode::Pause if !pressed => Vec::new(),
        KeyCode::Pause if mods & MOD_CTRL != 0 => {
            if set1 {
                vec![0xE0, 0x46, 0xE0, 0xC6]
            } else {
                vec![0xE0, 0x7E, 0xE0, 0xF0, 0x7E]
            }
        }
        KeyCode::Pause => {
            if set1 {
                vec![0xE1, 0x1D, 0x45, 0xE1, 0x9D, 0xC5]
            } else {
                vec![0xE1, 0x14, 0x77, 0xE1, 0xF0, 0x14, 0xF0, 0x77]
            }
        }
        _ => {
            let mut v = Vec::with_capacity(3);
            if c.extended {
                v.push(0xE0);
            }
            match (set1, pressed) {
                (true, true) => v.push(c.set1),
                (true, false) => v.push(c.set1 | 0x80),
                (false, true) => v.push(c.set2),
                (false, false) => v.extend([0xF0, c.set2]),
            }
            v
        }
    }
}

/// A parameter byte the keyboard waits for after a command.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum KbdParam {
    /// 0xED: the LED bits.
    Leds,
    /// 0xF0: 0 (query) or the set number.
    ScancodeSet,
    /// 0xF3: delay and rate.
    Typematic,
    /// 0xFB/0xFC/0xFD: a list of set 3 key codes to give that command's
    /// key type, ended by a command byte.
    KeyList(u8),
}

/// Everything a snapshot must carry; also the keyboard's working state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyboardState {
    /// Selected scan code set, 1-3.
    pub set: u8,
    /// Scanning enabled (0xF4) or disabled (0xF5).
    pub scanning: bool,
    /// LED bits: 0 Scroll Lock, 1 Num Lock, 2 Caps Lock.
    pub leds: u8,
    pub typematic: u8,
    pub expecting: Option<KbdParam>,
    /// Replies to commands, sent before any scan code.
    pub replies: VecDeque<u8>,
    /// Scan codes of key events.
    pub scan: VecDeque<u8>,
    /// The last byte the controller took (for the resend command).
    pub last_sent: u8,
    /// Keys held, bit `KeyCode as u8`.
    pub pressed: [u64; 2],
    /// Set 3 attributes per set 3 code (256 entries, `ATTR_*` bits).
    pub set3_attrs: Vec<u8>,
    /// Key events lost because the scan queue was full.
    pub overruns: u64,
}

/// Set 3 power-on key types: every key typematic and make-only, except the
/// modifiers and the Windows/Application keys, which are make/break and do
/// not repeat (Brouwer 9.2: "only CapsLock, LShift, RShift, LCtrl and LAlt"
/// and "all non-traditional keys" send break codes; the right-hand Ctrl and
/// Alt are treated like their left twins so that no modifier sticks).
fn default_set3_attrs() -> Vec<u8> {
    let mut attrs = vec![ATTR_TYPEMATIC; 256];
    for code in [0x11, 0x12, 0x14, 0x19, 0x39, 0x58, 0x59, 0x8B, 0x8C, 0x8D] {
        attrs[code] = ATTR_BREAK;
    }
    attrs
}

impl KeyboardState {
    fn power_on() -> KeyboardState {
        KeyboardState {
            set: 2,
            scanning: true,
            leds: 0,
            typematic: DEFAULT_TYPEMATIC,
            expecting: None,
            replies: VecDeque::new(),
            scan: VecDeque::new(),
            last_sent: 0,
            pressed: [0; 2],
            set3_attrs: default_set3_attrs(),
            overruns: 0,
        }
    }
}

/// The keyboard.
#[derive(Clone, Debug)]
pub struct Keyboard {
    s: KeyboardState,
}

impl Default for Keyboard {
    fn default() -> Self {
        Keyboard::new()
    }
}

impl Keyboard {
    /// A keyboard after power-on: set 2, scanning, LEDs off. (The power-on
    /// BAT completion code 0xAA is not queued; BIOSes reset the keyboard
    /// themselves.)
    pub fn new() -> Keyboard {
        Keyboard { s: KeyboardState::power_on() }
    }

    pub fn state(&self) -> &KeyboardState {
        &self.s
    }

    /// Load a snapshot; out-of-range values are clamped, never trusted.
    pub fn restore(&mut self, state: &KeyboardState) {
        let mut s = state.clone();
        if !(1..=3).contains(&s.set) {
            s.set = 2;
        }
        s.leds &= 0x07;
        s.typematic &= 0x7F;
        s.replies.truncate(REPLY_QUEUE_LIMIT);
        s.scan.truncate(SCAN_QUEUE_LIMIT);
        s.set3_attrs.resize(256, ATTR_TYPEMATIC);
        for a in &mut s.set3_attrs {
            *a &= ATTR_TYPEMATIC | ATTR_BREAK;
        }
        self.s = s;
    }

    /// LED bits the guest last set: 0 Scroll Lock, 1 Num Lock, 2 Caps Lock.
    pub fn leds(&self) -> u8 {
        self.s.leds
    }

    /// The selected scan code set (1-3).
    pub fn scancode_set(&self) -> u8 {
        self.s.set
    }

    /// Whether a byte waits to be sent to the controller.
    pub fn has_output(&self) -> bool {
        !self.s.replies.is_empty() || !self.s.scan.is_empty()
    }

    /// The next byte for the controller: replies first, then scan codes.
    pub fn pop(&mut self) -> Option<u8> {
        let b = self.s.replies.pop_front().or_else(|| self.s.scan.pop_front())?;
        self.s.last_sent = b;
        Some(b)
    }

    fn reply(&mut self, bytes: &[u8]) {
        for &b in bytes {
            if self.s.replies.len() < REPLY_QUEUE_LIMIT {
                self.s.replies.push_back(b);
            }
        }
    }

    /// Reset typematic, LEDs and set 3 key types to their defaults and clear
    /// the scan buffer ("Set Default" / "Default Disable").
    fn set_defaults(&mut self) {
        self.s.typematic = DEFAULT_TYPEMATIC;
        self.s.leds = 0;
        self.s.set3_attrs = default_set3_attrs();
        self.s.scan.clear();
    }

    /// A byte the controller transmitted to the keyboard.
    pub fn receive(&mut self, byte: u8) {
        if let Some(param) = self.s.expecting.take() {
            if self.parameter(param, byte) {
                return;
            }
            // Brouwer 11.1 (0xED): "If the second byte is recognized as a
            // command, that command is ACKed and done instead. Otherwise a
            // NACK is returned."
            if byte < 0xED {
                self.reply(&[KBD_RESEND]);
                return;
            }
        }
        self.command(byte);
    }

    /// Handle a parameter byte; false if it is not valid for `param`.
    fn parameter(&mut self, param: KbdParam, byte: u8) -> bool {
        match param {
            // Bits 7-3 are unused; any non-command byte is taken.
            KbdParam::Leds if byte < 0xED => {
                self.s.leds = byte & 0x07;
                self.reply(&[KBD_ACK]);
            }
            KbdParam::ScancodeSet if byte == 0 => {
                let set = self.s.set;
                self.reply(&[KBD_ACK, set]);
            }
            KbdParam::ScancodeSet if (1..=3).contains(&byte) => {
                self.s.set = byte;
                self.reply(&[KBD_ACK]);
            }
            // Bit 7 must be 0.
            KbdParam::Typematic if byte < 0x80 => {
                self.s.typematic = byte;
                self.reply(&[KBD_ACK]);
            }
            // A list of set 3 codes ends at the first command byte.
            KbdParam::KeyList(cmd) if byte < 0xED => {
                self.s.set3_attrs[byte as usize] = match cmd {
                    0xFB => ATTR_TYPEMATIC,
                    0xFC => ATTR_BREAK,
                    _ => 0,
                };
                self.s.expecting = Some(param);
                self.reply(&[KBD_ACK]);
            }
            _ => return false,
        }
        true
    }

    fn command(&mut self, cmd: u8) {
        match cmd {
            0xED => {
                self.s.expecting = Some(KbdParam::Leds);
                self.reply(&[KBD_ACK]);
            }
            0xEE => self.reply(&[KBD_ECHO]),
            0xF0 => {
                self.s.expecting = Some(KbdParam::ScancodeSet);
                self.reply(&[KBD_ACK]);
            }
            0xF2 => self.reply(&[KBD_ACK, KBD_ID[0], KBD_ID[1]]),
            0xF3 => {
                self.s.expecting = Some(KbdParam::Typematic);
                self.reply(&[KBD_ACK]);
            }
            // Enable: clears the buffer and starts scanning.
            0xF4 => {
                self.s.scan.clear();
                self.s.scanning = true;
                self.reply(&[KBD_ACK]);
            }
            // Default disable: defaults, buffer cleared, scanning stops.
            0xF5 => {
                self.set_defaults();
                self.s.scanning = false;
                self.reply(&[KBD_ACK]);
            }
            // Set default: as 0xF5 but scanning continues.
            0xF6 => {
                self.set_defaults();
                self.reply(&[KBD_ACK]);
            }
            // Set all key types (IBM: typematic, make/break, make, or
            // typematic make/break).
            0xF7..=0xFA => {
                let attrs = match cmd {
                    0xF7 => ATTR_TYPEMATIC,
                    0xF8 => ATTR_BREAK,
                    0xF9 => 0,
                    _ => ATTR_TYPEMATIC | ATTR_BREAK,
                };
                self.s.set3_attrs.fill(attrs);
                self.reply(&[KBD_ACK]);
            }
            // Per-key types: "Afterwards, a keyboard enable F4 is required."
            0xFB..=0xFD => {
                self.s.expecting = Some(KbdParam::KeyList(cmd));
                self.s.scanning = false;
                self.reply(&[KBD_ACK]);
            }
            // Resend: the last byte sent, without an ACK.
            0xFE => {
                let b = self.s.last_sent;
                self.reply(&[b]);
            }
            // Reset: ACK, then the BAT result; power-on defaults, set 2.
            0xFF => {
                let keep_pressed = self.s.pressed;
                let overruns = self.s.overruns;
                self.s = KeyboardState { pressed: keep_pressed, overruns, ..KeyboardState::power_on() };
                self.reply(&[KBD_ACK, KBD_BAT_OK]);
            }
            _ => self.reply(&[KBD_RESEND]),
        }
    }

    fn mods(&self) -> u8 {
        KeyCode::ALL
            .iter()
            .filter(|k| k.modifier_bit() != 0 && self.is_pressed(**k))
            .fold(0, |m, k| m | k.modifier_bit())
    }

    fn is_pressed(&self, key: KeyCode) -> bool {
        let i = key as usize;
        self.s.pressed[i / 64] & (1 << (i % 64)) != 0
    }

    fn set_pressed(&mut self, key: KeyCode, down: bool) {
        let i = key as usize;
        if down {
            self.s.pressed[i / 64] |= 1 << (i % 64);
        } else {
            self.s.pressed[i / 64] &= !(1 << (i % 64));
        }
    }

    /// A host key went down (`pressed`) or up. A second press of a held key
    /// is a typematic repeat. Nothing is sent while scanning is disabled.
    pub fn key_event(&mut self, key: KeyCode, pressed: bool) {
        let was_pressed = self.is_pressed(key);
        // Print Screen's variant depends on the other modifiers only.
        let mods = self.mods();
        self.set_pressed(key, pressed);
        if !self.s.scanning {
            return;
        }
        let seq = if self.s.set == 3 {
            let code = key.set3_code();
            let attrs = self.s.set3_attrs[code as usize];
            match (pressed, was_pressed) {
                (true, true) if attrs & ATTR_TYPEMATIC == 0 => Vec::new(),
                (true, _) => vec![code],
                (false, _) if attrs & ATTR_BREAK != 0 => vec![0xF0, code],
                (false, _) => Vec::new(),
            }
        } else {
            scan_sequence(key, pressed, self.s.set, mods)
        };
        self.push_scan(&seq);
    }

    /// Queue a whole sequence or, when it does not fit, one overrun code
    /// (0xFF in set 1, 0x00 in sets 2 and 3) in the slot kept for it.
    fn push_scan(&mut self, seq: &[u8]) {
        if seq.is_empty() {
            return;
        }
        if self.s.scan.len() + seq.len() < SCAN_QUEUE_LIMIT {
            self.s.scan.extend(seq);
            return;
        }
        self.s.overruns += 1;
        let overrun = if self.s.set == 1 { 0xFF } else { 0x00 };
        if self.s.scan.len() < SCAN_QUEUE_LIMIT && self.s.scan.back() != Some(&overrun) {
            self.s.scan.push_back(overrun);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(k: &mut Keyboard) -> Vec<u8> {
        std::iter::from_fn(|| k.pop()).collect()
    }

    #[test]
    fn set2_sequences_for_plain_and_extended_keys() {
        let mut k = Keyboard::new();
        k.key_event(KeyCode::KeyA, true);
        k.key_event(KeyCode::KeyA, false);
        k.key_event(KeyCode::ArrowLeft, true);
        k.key_event(KeyCode::ArrowLeft, false);
        assert_eq!(drain(&mut k), [0x1C, 0xF0, 0x1C, 0xE0, 0x6B, 0xE0, 0xF0, 0x6B]);
    }

    #[test]
    fn set1_sequences_set_bit7_on_break() {
        let mut k = Keyboard::new();
        k.receive(0xF0);
        k.receive(1);
        assert_eq!(drain(&mut k), [KBD_ACK, KBD_ACK]);
        k.key_event(KeyCode::Escape, true);
        k.key_event(KeyCode::Escape, false);
        k.key_event(KeyCode::ControlRight, true);
        k.key_event(KeyCode::ControlRight, false);
        assert_eq!(drain(&mut k), [0x01, 0x81, 0xE0, 0x1D, 0xE0, 0x9D]);
    }

    #[test]
    fn print_screen_variants_follow_modifiers() {
        assert_eq!(scan_sequence(KeyCode::PrintScreen, true, 2, 0), [0xE0, 0x12, 0xE0, 0x7C]);
        assert_eq!(scan_sequence(KeyCode::PrintScreen, false, 2, 0), [0xE0, 0xF0, 0x7C, 0xE0, 0xF0, 0x12]);
        assert_eq!(scan_sequence(KeyCode::PrintScreen, true, 2, 0x01), [0xE0, 0x7C]);
        assert_eq!(scan_sequence(KeyCode::PrintScreen, true, 1, 0x10), [0x54]);
        assert_eq!(scan_sequence(KeyCode::PrintScreen, false, 1, 0x20), [0xD4]);
        assert_eq!(scan_sequence(KeyCode::PrintScreen, true, 1, 0), [0xE0, 0x2A, 0xE0, 0x37]);
        assert_eq!(scan_sequence(KeyCode::PrintScreen, false, 1, 0), [0xE0, 0xB7, 0xE0, 0xAA]);
    }

    #[test]
    fn pause_has_no_break_and_ctrl_pause_is_break() {
        assert_eq!(scan_sequence(KeyCode::Pause, true, 2, 0), [0xE1, 0x14, 0x77, 0xE1, 0xF0, 0x14, 0xF0, 0x77]);
        assert_eq!(scan_sequence(KeyCode::Pause, true, 1, 0), [0xE1, 0x1D, 0x45, 0xE1, 0x9D, 0xC5]);
        assert!(scan_sequence(KeyCode::Pause, false, 2, 0).is_empty());
        assert_eq!(scan_sequence(KeyCode::Pause, true, 2, 0x04), [0xE0, 0x7E, 0xE0, 0xF0, 0x7E]);
        assert_eq!(scan_sequence(KeyCode::Pause, true, 1, 0x08), [0xE0, 0x46, 0xE0, 0xC6]);
    }

    #[test]
    fn set3_uses_key_attributes() {
        let mut k = Keyboard::new();
        k.receive(0xF0);
        k.receive(3);
        drain(&mut k);
        // Letters are make-only and typematic; Shift is make/break.
        k.key_event(KeyCode::KeyA, true);
        k.key_event(KeyCode::KeyA, true);
        k.key_event(KeyCode::KeyA, false);
        k.key_event(KeyCode::ShiftLeft, true);
        k.key_event(KeyCode::ShiftLeft, true);
        k.key_event(KeyCode::ShiftLeft, false);
        k.key_event(KeyCode::Pause, true);
        assert_eq!(drain(&mut k), [0x1C, 0x1C, 0x12, 0xF0, 0x12, 0x62]);
        // 0xF8: all keys make/break.
        k.receive(0xF8);
        k.key_event(KeyCode::ArrowUp, true);
        k.key_event(KeyCode::ArrowUp, false);
        assert_eq!(drain(&mut k), [KBD_ACK, 0x63, 0xF0, 0x63]);
        // 0xFD with a key list (make-only), ended by a command (0xF4).
        k.receive(0xFD);
        k.receive(0x63);
        k.receive(0xF4);
        k.key_event(KeyCode::ArrowUp, true);
        k.key_event(KeyCode::ArrowUp, false);
        assert_eq!(drain(&mut k), [KBD_ACK, KBD_ACK, KBD_ACK, 0x63]);
    }

    #[test]
    fn commands_ack_and_reply() {
        let mut k = Keyboard::new();
        k.receive(0xEE);
        k.receive(0xF2);
        k.receive(0xED);
        k.receive(0x05);
        k.receive(0xF3);
        k.receive(0x20);
        k.receive(0xF0);
        k.receive(0x00);
        k.receive(0x42);
        assert_eq!(
            drain(&mut k),
            [KBD_ECHO, KBD_ACK, 0xAB, 0x83, KBD_ACK, KBD_ACK, KBD_ACK, KBD_ACK, KBD_ACK, KBD_ACK, 2, 0xFE]
        );
        assert_eq!(k.leds(), 5);
        assert_eq!(k.state().typematic, 0x20);
    }

    #[test]
    fn invalid_parameter_nacks_or_runs_the_command_instead() {
        let mut k = Keyboard::new();
        k.receive(0xF0);
        k.receive(0x07);
        k.receive(0xF3);
        k.receive(0xF2);
        assert_eq!(drain(&mut k), [KBD_ACK, KBD_RESEND, KBD_ACK, KBD_ACK, 0xAB, 0x83]);
        assert_eq!(k.scancode_set(), 2);
    }

    #[test]
    fn resend_repeats_the_last_byte() {
        let mut k = Keyboard::new();
        k.receive(0xF2);
        drain(&mut k);
        k.receive(0xFE);
        assert_eq!(drain(&mut k), [0x83]);
    }

    #[test]
    fn disabled_keyboard_does_not_scan_and_reset_restores() {
        let mut k = Keyboard::new();
        k.receive(0xF0);
        k.receive(1);
        k.receive(0xF5);
        k.key_event(KeyCode::KeyQ, true);
        assert_eq!(drain(&mut k), [KBD_ACK, KBD_ACK, KBD_ACK]);
        k.receive(0xFF);
        k.key_event(KeyCode::KeyQ, false);
        assert_eq!(drain(&mut k), [KBD_ACK, KBD_BAT_OK, 0xF0, 0x15]);
        assert_eq!(k.scancode_set(), 2);
    }

    #[test]
    fn full_buffer_ends_in_one_overrun_code() {
        let mut k = Keyboard::new();
        for _ in 0..100 {
            k.key_event(KeyCode::KeyA, true);
        }
        let out = drain(&mut k);
        assert_eq!(out.len(), SCAN_QUEUE_LIMIT);
        assert_eq!(out[SCAN_QUEUE_LIMIT - 1], 0x00);
        assert!(out[..SCAN_QUEUE_LIMIT - 1].iter().all(|&b| b == 0x1C));
        assert!(k.state().overruns > 0);
    }
}
