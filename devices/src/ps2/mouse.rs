//! The PS/2 mouse on the 8042's auxiliary port, with the Microsoft
//! IntelliMouse wheel extension.
//!
//! References: IBM PS/2 Hardware Interface Technical Reference, "Pointing
//! Device" (commands 0xE6-0xFF, status bytes, stream/remote/wrap modes,
//! 2:1 scaling, the 3-byte data report); A. Chapweske, "The PS/2 Mouse
//! Interface" (command/response details, resend, error 0xFC); Microsoft
//! IntelliMouse PS/2 protocol as summarised in A. Brouwer, "Keyboard
//! scancodes" section 12 (the 200, 100, 80 sample-rate sequence, device ID
//! 3, the 4-byte packet with a 4-bit wheel count).
//!
//! Model:
//! - Replies to commands and movement packets wait in two bounded queues;
//!   replies go first. A command from the host discards packets not yet
//!   sent, as the device aborts its transmission when the host takes the
//!   line.
//! - Host movement accumulates in counters. In stream mode with reporting
//!   enabled a packet is built at once if none is waiting, otherwise when
//!   the waiting one has been taken: the packet rate follows the host's
//!   events and the guest's reading speed, not the programmed sample rate.
//!   Counters beyond -256..=255 are clamped and flag overflow; the excess is
//!   dropped, as the device resets its counters after each report. The
//!   wheel count is carried over in -8..=7 steps.
//! - Resolution is stored and reported; host deltas are used as counts.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

pub const AUX_ACK: u8 = 0xFA;
/// Resend request: first invalid command or parameter.
pub const AUX_RESEND: u8 = 0xFE;
/// Error: a second invalid byte in a row.
pub const AUX_ERROR: u8 = 0xFC;
pub const AUX_BAT_OK: u8 = 0xAA;
/// Device ID of a standard PS/2 mouse.
pub const ID_STANDARD: u8 = 0x00;
/// Device ID of an IntelliMouse with its wheel enabled.
pub const ID_INTELLIMOUSE: u8 = 0x03;
/// Sample rates the device accepts (0xF3 parameter).
pub const VALID_RATES: [u8; 7] = [10, 20, 40, 60, 80, 100, 200];
/// The IntelliMouse "knock": three sample-rate settings in this order.
pub const INTELLIMOUSE_KNOCK: [u8; 3] = [200, 100, 80];
/// Bound of the reply queue.
pub const REPLY_QUEUE_LIMIT: usize = 64;

/// Status byte (0xE9) bits.
pub const STATUS_REMOTE: u8 = 0x40;
pub const STATUS_ENABLED: u8 = 0x20;
pub const STATUS_SCALING_2TO1: u8 = 0x10;

/// Packet byte 0 bits.
pub const PKT_LEFT: u8 = 0x01;
pub const PKT_RIGHT: u8 = 0x02;
pub const PKT_MIDDLE: u8 = 0x04;
pub const PKT_ALWAYS1: u8 = 0x08;
pub const PKT_X_SIGN: u8 = 0x10;
pub const PKT_Y_SIGN: u8 = 0x20;
pub const PKT_X_OVERFLOW: u8 = 0x40;
pub const PKT_Y_OVERFLOW: u8 = 0x80;

/// A parameter byte the mouse waits for after a command.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MouseParam {
    /// 0xF3: samples per second.
    SampleRate,
    /// 0xE8: 0-3 = 1, 2, 4, 8 counts/mm.
    Resolution,
}

/// Everything a snapshot must carry; also the mouse's working state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MouseState {
    /// Data reporting enabled (0xF4) in stream mode.
    pub reporting: bool,
    /// Remote mode (0xF0): packets only on 0xEB.
    pub remote: bool,
    /// Wrap (echo) mode (0xEE).
    pub wrap: bool,
    pub scaling_2to1: bool,
    pub resolution: u8,
    pub sample_rate: u8,
    /// Device ID: 0 standard, 3 IntelliMouse.
    pub id: u8,
    /// The last sample rates set, oldest first.
    pub rate_history: [u8; 3],
    pub expecting: Option<MouseParam>,
    /// The previous byte was invalid (a second one answers 0xFC).
    pub nacked: bool,
    /// Buttons held, in packet bit order (`PKT_LEFT` ...).
    pub buttons: u8,
    /// Movement counters since the last report; y and z in device
    /// orientation (y positive = away from the user, z positive = wheel
    /// toward the user).
    pub dx: i32,
    pub dy: i32,
    pub dz: i32,
    /// A change (movement or buttons) not yet reported.
    pub dirty: bool,
    pub replies: VecDeque<u8>,
    /// At most one movement packet waiting.
    pub packet: VecDeque<u8>,
    /// The last reply or packet, for the resend command.
    pub last_unit: Vec<u8>,
}

impl MouseState {
    fn power_on() -> MouseState {
        MouseState {
            reporting: false,
            remote: false,
            wrap: false,
            scaling_2to1: false,
            resolution: 2,
            sample_rate: 100,
            id: ID_STANDARD,
            rate_history: [0; 3],
            expecting: None,
            nacked: false,
            buttons: 0,
            dx: 0,
            dy: 0,
            dz: 0,
            dirty: false,
            replies: VecDeque::new(),
            packet: VecDeque::new(),
            last_unit: Vec::new(),
        }
    }
}

/// 2:1 scaling (IBM "Scaling"): 0..=5 map to 0, 1, 1, 3, 6, 9; larger
/// counts double. Sign is kept.
fn scale_2to1(v: i32) -> i32 {
    let m = v.unsigned_abs();
    let s = match m {
        0..=5 => [0, 1, 1, 3, 6, 9][m as usize],
        _ => m.saturating_mul(2).min(i32::MAX as u32),
    } as i32;
    if v < 0 {
        -s
    } else {
        s
    }
}

/// A counter as the 9-bit report field: (value, overflowed).
fn clamp9(v: i32) -> (i32, bool) {
    if v > 255 {
        (255, true)
    } else if v < -256 {
        (-256, true)
    } else {
        (v, false)
    }
}

/// The mouse.
#[derive(Clone, Debug)]
pub struct Mouse {
    s: MouseState,
}

impl Default for Mouse {
    fn default() -> Self {
        Mouse::new()
    }
}

impl Mouse {
    /// A mouse after power-on: stream mode, reporting disabled, ID 0.
    pub fn new() -> Mouse {
        Mouse { s: MouseState::power_on() }
    }

    pub fn state(&self) -> &MouseState {
        &self.s
    }

    /// Load a snapshot; out-of-range values are clamped, never trusted.
    pub fn restore(&mut self, state: &MouseState) {
        let mut s = state.clone();
        s.resolution &= 3;
        if s.id != ID_INTELLIMOUSE {
            s.id = ID_STANDARD;
        }
        s.buttons &= PKT_LEFT | PKT_RIGHT | PKT_MIDDLE;
        s.replies.truncate(REPLY_QUEUE_LIMIT);
        s.packet.truncate(4);
        s.last_unit.truncate(REPLY_QUEUE_LIMIT);
        self.s = s;
    }

    /// Device ID (0 standard, 3 IntelliMouse).
    pub fn id(&self) -> u8 {
        self.s.id
    }

    /// Whether the guest has enabled stream reporting.
    pub fn reporting(&self) -> bool {
        self.s.reporting && !self.s.remote && !self.s.wrap
    }

    pub fn has_output(&self) -> bool {
        !self.s.replies.is_empty() || !self.s.packet.is_empty()
    }

    /// The next byte for the controller: replies first, then the packet.
    /// When the packet has gone, changes collected meanwhile become the
    /// next one.
    pub fn pop(&mut self) -> Option<u8> {
        let b = self.s.replies.pop_front().or_else(|| self.s.packet.pop_front())?;
        self.stream_update();
        Some(b)
    }

    fn reply(&mut self, bytes: &[u8]) {
        for &b in bytes {
            if self.s.replies.len() < REPLY_QUEUE_LIMIT {
                self.s.replies.push_back(b);
            }
        }
        self.s.last_unit = bytes.to_vec();
    }

    fn clear_counters(&mut self) {
        self.s.dx = 0;
        self.s.dy = 0;
        self.s.dz = 0;
        self.s.dirty = false;
        self.s.packet.clear();
    }

    /// Sample rate, resolution, scaling, stream mode, reporting disabled,
    /// standard protocol ("Set Defaults" also leaves the wheel mode).
    fn set_defaults(&mut self) {
        self.s.sample_rate = 100;
        self.s.resolution = 2;
        self.s.scaling_2to1 = false;
        self.s.remote = false;
        self.s.reporting = false;
        self.s.id = ID_STANDARD;
        self.s.rate_history = [0; 3];
        self.clear_counters();
    }

    /// An invalid command or parameter: 0xFE, or 0xFC if the previous byte
    /// was invalid too.
    fn invalid(&mut self) {
        let code = if self.s.nacked { AUX_ERROR } else { AUX_RESEND };
        self.reply(&[code]);
        self.s.nacked = !self.s.nacked;
    }

    /// A byte the controller transmitted to the mouse (command 0xD4).
    pub fn receive(&mut self, byte: u8) {
        // Wrap mode echoes everything except reset and "reset wrap mode".
        if self.s.wrap && byte != 0xFF && byte != 0xEC {
            self.reply(&[byte]);
            return;
        }
        // The host took the line: a packet not yet sent is abandoned.
        self.s.packet.clear();
        if let Some(param) = self.s.expecting.take() {
            self.parameter(param, byte);
        } else {
            self.command(byte);
        }
        self.stream_update();
    }

    fn parameter(&mut self, param: MouseParam, byte: u8) {
        match param {
            MouseParam::SampleRate if VALID_RATES.contains(&byte) => {
                self.s.sample_rate = byte;
                self.s.rate_history = [self.s.rate_history[1], self.s.rate_history[2], byte];
                if self.s.rate_history == INTELLIMOUSE_KNOCK {
                    self.s.id = ID_INTELLIMOUSE;
                }
            }
            MouseParam::Resolution if byte <= 3 => self.s.resolution = byte,
            _ => {
                // Chapweske: the host should resend the parameter.
                self.s.expecting = Some(param);
                self.invalid();
                return;
            }
        }
        self.s.nacked = false;
        self.reply(&[AUX_ACK]);
    }

    fn command(&mut self, cmd: u8) {
        if cmd != 0xF3 && cmd != 0xFE {
            // The knock counts consecutive sample-rate commands only.
            self.s.rate_history = [0; 3];
        }
        if cmd != 0xFE {
            self.s.nacked = false;
        }
        match cmd {
            0xE6 => {
                self.s.scaling_2to1 = false;
                self.reply(&[AUX_ACK]);
            }
            0xE7 => {
                self.s.scaling_2to1 = true;
                self.reply(&[AUX_ACK]);
            }
            0xE8 => {
                self.s.expecting = Some(MouseParam::Resolution);
                self.reply(&[AUX_ACK]);
            }
            // Status request: mode/enable/scaling/buttons (left bit 2,
            // middle bit 1, right bit 0), resolution, sample rate.
            0xE9 => {
                let b = self.s.buttons;
                let status = (if self.s.remote { STATUS_REMOTE } else { 0 })
                    | (if self.s.reporting { STATUS_ENABLED } else { 0 })
                    | (if self.s.scaling_2to1 { STATUS_SCALING_2TO1 } else { 0 })
                    | (if b & PKT_LEFT != 0 { 0x04 } else { 0 })
                    | (if b & PKT_MIDDLE != 0 { 0x02 } else { 0 })
                    | (if b & PKT_RIGHT != 0 { 0x01 } else { 0 });
                let (res, rate) = (self.s.resolution, self.s.sample_rate);
                self.reply(&[AUX_ACK, status, res, rate]);
            }
            0xEA => {
                self.s.remote = false;
                self.clear_counters();
                self.reply(&[AUX_ACK]);
            }
            // Read data: a packet on demand, in either mode, unscaled.
            0xEB => {
                let pkt = self.build_packet(false);
                let mut unit = vec![AUX_ACK];
                unit.extend(pkt);
                self.reply(&unit);
            }
            0xEC => {
                self.s.wrap = false;
                self.reply(&[AUX_ACK]);
            }
            0xEE => {
                self.s.wrap = true;
                self.clear_counters();
                self.reply(&[AUX_ACK]);
            }
            0xF0 => {
                self.s.remote = true;
                self.clear_counters();
                self.reply(&[AUX_ACK]);
            }
            0xF2 => {
                let id = self.s.id;
                self.reply(&[AUX_ACK, id]);
            }
            0xF3 => {
                self.s.expecting = Some(MouseParam::SampleRate);
                self.reply(&[AUX_ACK]);
            }
            0xF4 => {
                self.s.reporting = true;
                self.clear_counters();
                self.reply(&[AUX_ACK]);
            }
            0xF5 => {
                self.s.reporting = false;
                self.clear_counters();
                self.reply(&[AUX_ACK]);
            }
            0xF6 => {
                self.set_defaults();
                self.reply(&[AUX_ACK]);
            }
            // Resend: the last reply or packet again, itself unacknowledged.
            0xFE => {
                let unit = std::mem::take(&mut self.s.last_unit);
                self.reply(&unit);
            }
            // Reset: ACK, BAT passed, device ID 0; everything to defaults.
            0xFF => {
                self.set_defaults();
                self.s.wrap = false;
                self.s.nacked = false;
                self.reply(&[AUX_ACK, AUX_BAT_OK, ID_STANDARD]);
            }
            _ => self.invalid(),
        }
    }

    /// A report from the counters, which restart from zero (the wheel keeps
    /// what did not fit).
    fn build_packet(&mut self, stream: bool) -> Vec<u8> {
        let (mut dx, mut dy) = (self.s.dx, self.s.dy);
        if stream && self.s.scaling_2to1 {
            dx = scale_2to1(dx);
            dy = scale_2to1(dy);
        }
        let (x, xo) = clamp9(dx);
        let (y, yo) = clamp9(dy);
        let b0 = PKT_ALWAYS1
            | self.s.buttons
            | (if x < 0 { PKT_X_SIGN } else { 0 })
            | (if y < 0 { PKT_Y_SIGN } else { 0 })
            | (if xo { PKT_X_OVERFLOW } else { 0 })
            | (if yo { PKT_Y_OVERFLOW } else { 0 });
        let mut pkt = vec![b0, x as u8, y as u8];
        self.s.dx = 0;
        self.s.dy = 0;
        self.s.dirty = false;
        if self.s.id == ID_INTELLIMOUSE {
            let z = self.s.dz.clamp(-8, 7);
            self.s.dz -= z;
            self.s.dirty = self.s.dz != 0;
            pkt.push(z as u8);
        } else {
            self.s.dz = 0;
        }
        pkt
    }

    /// In stream mode with reporting on, turn pending changes into a packet
    /// once the previous one has been taken.
    fn stream_update(&mut self) {
        if self.reporting() && self.s.dirty && self.s.packet.is_empty() && self.s.expecting.is_none() {
            let pkt = self.build_packet(true);
            self.s.packet.extend(&pkt);
            self.s.last_unit = pkt;
        }
    }

    /// The host mouse moved: `dx` right, `dy` down (screen orientation),
    /// `wheel` notches toward the user (scrolling down). Ignored in stream
    /// mode while reporting is disabled, and in wrap mode.
    pub fn motion(&mut self, dx: i32, dy: i32, wheel: i32) {
        if self.s.wrap || (!self.s.remote && !self.s.reporting) {
            return;
        }
        self.s.dx = self.s.dx.saturating_add(dx);
        // PS/2 counts y upward.
        self.s.dy = self.s.dy.saturating_sub(dy);
        if self.s.id == ID_INTELLIMOUSE {
            self.s.dz = self.s.dz.saturating_add(wheel);
        }
        if dx != 0 || dy != 0 || (wheel != 0 && self.s.id == ID_INTELLIMOUSE) {
            self.s.dirty = true;
        }
        self.stream_update();
    }

    /// The host's button state.
    pub fn buttons(&mut self, left: bool, right: bool, middle: bool) {
        let b = (if left { PKT_LEFT } else { 0 })
            | (if right { PKT_RIGHT } else { 0 })
            | (if middle { PKT_MIDDLE } else { 0 });
        if b != self.s.buttons {
            self.s.buttons = b;
            self.s.dirty = true;
            self.stream_update();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(m: &mut Mouse) -> Vec<u8> {
        std::iter::from_fn(|| m.pop()).collect()
    }

    fn send(m: &mut Mouse, bytes: &[u8]) -> Vec<u8> {
        for &b in bytes {
            m.receive(b);
        }
        drain(m)
    }

    #[test]
    fn reset_answers_ack_bat_id() {
        let mut m = Mouse::new();
        assert_eq!(send(&mut m, &[0xFF]), [AUX_ACK, AUX_BAT_OK, 0x00]);
    }

    #[test]
    fn no_packets_until_reporting_enabled() {
        let mut m = Mouse::new();
        m.motion(5, 5, 0);
        m.buttons(true, false, false);
        assert!(drain(&mut m).is_empty());
        assert_eq!(send(&mut m, &[0xF4]), [AUX_ACK]);
        m.motion(3, -2, 0);
        // Left held (from before), x +3, y +2 (host up = PS/2 positive).
        assert_eq!(drain(&mut m), [0x09, 3, 2]);
    }

    #[test]
    fn negative_motion_and_overflow_set_sign_and_overflow_bits() {
        let mut m = Mouse::new();
        send(&mut m, &[0xF4]);
        m.motion(-1, 1, 0);
        assert_eq!(drain(&mut m), [0x08 | PKT_X_SIGN | PKT_Y_SIGN, 0xFF, 0xFF]);
        m.motion(300, 1000, 0);
        assert_eq!(drain(&mut m), [0x08 | PKT_X_OVERFLOW | PKT_Y_OVERFLOW | PKT_Y_SIGN, 255, 0x00]);
        // The excess was dropped with the report.
        m.buttons(false, true, true);
        assert_eq!(drain(&mut m), [0x08 | PKT_RIGHT | PKT_MIDDLE, 0, 0]);
    }

    #[test]
    fn changes_while_a_packet_waits_are_merged_into_the_next() {
        let mut m = Mouse::new();
        send(&mut m, &[0xF4]);
        m.motion(1, 0, 0);
        m.motion(2, 0, 0);
        m.motion(3, 0, 0);
        assert_eq!(drain(&mut m), [0x08, 1, 0, 0x08, 5, 0]);
    }

    #[test]
    fn intellimouse_knock_switches_to_id3_and_4_byte_packets() {
        let mut m = Mouse::new();
        assert_eq!(send(&mut m, &[0xF2]), [AUX_ACK, 0x00]);
        let acks = send(&mut m, &[0xF3, 200, 0xF3, 100, 0xF3, 80, 0xF2]);
        assert_eq!(acks, [AUX_ACK, AUX_ACK, AUX_ACK, AUX_ACK, AUX_ACK, AUX_ACK, AUX_ACK, 0x03]);
        send(&mut m, &[0xF4]);
        m.motion(0, 0, 10);
        // 10 notches: 7, then the remaining 3.
        assert_eq!(drain(&mut m), [0x08, 0, 0, 7, 0x08, 0, 0, 3]);
        m.motion(0, 0, -1);
        assert_eq!(drain(&mut m), [0x08, 0, 0, 0xFF]);
        // Reset returns to the standard protocol.
        assert_eq!(send(&mut m, &[0xFF, 0xF2]), [AUX_ACK, AUX_BAT_OK, 0, AUX_ACK, 0]);
    }

    #[test]
    fn interrupted_knock_does_not_switch() {
        let mut m = Mouse::new();
        send(&mut m, &[0xF3, 200, 0xE6, 0xF3, 100, 0xF3, 80]);
        assert_eq!(send(&mut m, &[0xF2]), [AUX_ACK, 0x00]);
    }

    #[test]
    fn status_request_reports_settings() {
        let mut m = Mouse::new();
        m.buttons(true, true, false);
        let out = send(&mut m, &[0xE8, 3, 0xE7, 0xF3, 40, 0xF4, 0xE9]);
        assert_eq!(out[..5], [AUX_ACK; 5]);
        assert_eq!(out[5..], [AUX_ACK, AUX_ACK, STATUS_ENABLED | STATUS_SCALING_2TO1 | 0x05, 3, 40]);
    }

    #[test]
    fn invalid_bytes_answer_resend_then_error() {
        let mut m = Mouse::new();
        assert_eq!(send(&mut m, &[0xF3, 33, 34, 100]), [AUX_ACK, AUX_RESEND, AUX_ERROR, AUX_ACK]);
        assert_eq!(m.state().sample_rate, 100);
        assert_eq!(send(&mut m, &[0x12]), [AUX_RESEND]);
    }

    #[test]
    fn remote_mode_reports_only_on_read_data() {
        let mut m = Mouse::new();
        send(&mut m, &[0xF0]);
        m.motion(4, 0, 0);
        m.motion(4, 0, 0);
        assert!(drain(&mut m).is_empty());
        assert_eq!(send(&mut m, &[0xEB]), [AUX_ACK, 0x08, 8, 0]);
        assert_eq!(send(&mut m, &[0xEB]), [AUX_ACK, 0x08, 0, 0]);
    }

    #[test]
    fn wrap_mode_echoes_until_ec() {
        let mut m = Mouse::new();
        assert_eq!(send(&mut m, &[0xEE, 0x12, 0xF2, 0xEC, 0xF2]), [AUX_ACK, 0x12, 0xF2, AUX_ACK, AUX_ACK, 0]);
    }

    #[test]
    fn scaling_2to1_applies_to_stream_reports() {
        let mut m = Mouse::new();
        send(&mut m, &[0xE7, 0xF4]);
        m.motion(3, 0, 0);
        assert_eq!(drain(&mut m), [0x08, 3, 0]);
        m.motion(4, -10, 0);
        assert_eq!(drain(&mut m), [0x08, 6, 20]);
        assert_eq!(scale_2to1(-5), -9);
    }

    #[test]
    fn resend_repeats_last_packet() {
        let mut m = Mouse::new();
        send(&mut m, &[0xF4]);
        m.motion(1, 1, 0);
        let p = drain(&mut m);
        assert_eq!(send(&mut m, &[0xFE]), p);
    }
}
