//! Controller-level tests: everything goes through ports 0x60/0x64, host
//! input and virtual time, as a guest and the board see it.

use super::*;
use crate::IrqLines;

struct Bench {
    ps2: Ps2,
    irq: IrqLines,
    now: u64,
}

impl Bench {
    fn new() -> Bench {
        Bench { ps2: Ps2::new(), irq: IrqLines::default(), now: 0 }
    }

    /// A controller as a BIOS leaves it: self-tested, keyboard interrupts
    /// on, translation on (command byte 0x45 without mouse interrupts).
    fn initialised(cb: u8) -> Bench {
        let mut b = Bench::new();
        b.cmd(0xAA);
        assert_eq!(b.read_all(), [SELF_TEST_OK]);
        b.write_cb(cb);
        b
    }

    fn out(&mut self, port: u16, value: u8) {
        let mut cx = DevCtx { now: Nanos(self.now), irq: &mut self.irq };
        self.ps2.io_write(port, AccessSize::Byte, value as u32, &mut cx);
    }

    fn inp(&mut self, port: u16) -> u8 {
        let mut cx = DevCtx { now: Nanos(self.now), irq: &mut self.irq };
        self.ps2.io_read(port, AccessSize::Byte, &mut cx) as u8
    }

    fn cmd(&mut self, c: u8) {
        self.out(STATUS_PORT, c);
    }

    fn data(&mut self, v: u8) {
        self.out(DATA_PORT, v);
    }

    fn status(&mut self) -> u8 {
        self.inp(STATUS_PORT)
    }

    fn write_cb(&mut self, cb: u8) {
        self.cmd(0x60);
        self.data(cb);
    }

    fn poll(&mut self) {
        let mut cx = DevCtx { now: Nanos(self.now), irq: &mut self.irq };
        self.ps2.poll(&mut cx);
    }

    /// Let virtual time run through every event the controller asks for.
    fn settle(&mut self) {
        for _ in 0..1000 {
            match self.ps2.next_event() {
                Some(t) => {
                    assert!(t.0 >= self.now, "event in the past");
                    self.now = t.0;
                    self.poll();
                }
                None => return,
            }
        }
        panic!("controller never settles");
    }

    /// Read bytes as a polling guest does, until no more arrive.
    fn read_all(&mut self) -> Vec<u8> {
        let mut v = Vec::new();
        loop {
            self.settle();
            if self.status() & STATUS_OBF == 0 {
                return v;
            }
            v.push(self.inp(DATA_PORT));
        }
    }

    /// Read bytes with the AUX flag of the status register at each.
    fn read_all_tagged(&mut self) -> Vec<(u8, bool)> {
        let mut v = Vec::new();
        loop {
            self.settle();
            let st = self.status();
            if st & STATUS_OBF == 0 {
                return v;
            }
            v.push((self.inp(DATA_PORT), st & STATUS_AUX_OBF != 0));
        }
    }

    fn irq1(&self) -> bool {
        self.irq.level(KBD_IRQ)
    }

    fn irq12(&self) -> bool {
        self.irq.level(AUX_IRQ)
    }

    fn key(&mut self, key: KeyCode, pressed: bool) {
        self.ps2.key_event(key, pressed);
        self.settle();
    }

    fn aux(&mut self, bytes: &[u8]) -> Vec<u8> {
        for &b in bytes {
            self.cmd(0xD4);
            self.data(b);
        }
        self.read_all()
    }
}

const CB_BIOS: u8 = CB_TRANSLATE | CB_SYSTEM | CB_KBD_INT;

#[test]
fn power_on_state() {
    let mut b = Bench::new();
    assert_eq!(b.status(), STATUS_UNLOCKED);
    assert_eq!(b.ps2.command_byte(), POWER_ON_COMMAND_BYTE);
    assert!(b.ps2.a20_enabled());
    assert!(!b.ps2.take_reset_request());
    assert_eq!(b.ps2.next_event(), None);
}

#[test]
fn bios_init_sequence() {
    let mut b = Bench::new();
    // Self test: 0x55, and the system flag comes on.
    b.cmd(0xAA);
    assert_eq!(b.status() & STATUS_COMMAND, STATUS_COMMAND);
    assert_eq!(b.read_all(), [SELF_TEST_OK]);
    assert_eq!(b.status() & STATUS_SYSTEM, STATUS_SYSTEM);
    // Keyboard interface test.
    b.cmd(0xAB);
    assert_eq!(b.read_all(), [INTERFACE_OK]);
    // Write and read back the command byte.
    b.write_cb(0x65);
    assert_eq!(b.status() & STATUS_COMMAND, 0);
    b.cmd(0x20);
    assert_eq!(b.read_all(), [0x65]);
    b.write_cb(CB_BIOS);
    // Keyboard reset: ACK, then the BAT code.
    b.data(0xFF);
    assert_eq!(b.read_all(), [0xFA, 0xAA]);
    // Enable scanning and set the LEDs.
    b.data(0xF4);
    b.data(0xED);
    b.data(0x02);
    assert_eq!(b.read_all(), [0xFA, 0xFA, 0xFA]);
    assert_eq!(b.ps2.keyboard_leds(), 0x02);
}

#[test]
fn second_byte_arrives_only_after_the_first_is_read_and_a_gap() {
    let mut b = Bench::initialised(CB_BIOS);
    b.data(0xFF);
    b.settle();
    assert!(b.irq1());
    assert_eq!(b.inp(DATA_PORT), 0xFA);
    // The line drops and the buffer stays empty for the gap.
    assert!(!b.irq1());
    assert_eq!(b.status() & STATUS_OBF, 0);
    assert_eq!(b.ps2.next_event(), Some(Nanos(b.now + BYTE_GAP_NS)));
    b.now += BYTE_GAP_NS - 1;
    b.poll();
    assert_eq!(b.status() & STATUS_OBF, 0);
    // Reading the empty buffer returns the last byte again.
    assert_eq!(b.inp(DATA_PORT), 0xFA);
    b.now += 1;
    b.poll();
    assert_eq!(b.status() & STATUS_OBF, STATUS_OBF);
    assert!(b.irq1());
    assert_eq!(b.inp(DATA_PORT), 0xAA);
}

#[test]
fn a20_through_the_output_port() {
    let mut b = Bench::initialised(CB_BIOS);
    b.cmd(0xD0);
    let p2 = b.read_all()[0];
    assert_eq!(p2 & (OUT_A20 | OUT_RESET), OUT_A20 | OUT_RESET);
    b.cmd(0xD1);
    b.data(0xDD);
    assert!(!b.ps2.a20_enabled());
    assert!(!b.ps2.take_reset_request());
    b.cmd(0xD0);
    assert_eq!(b.read_all()[0] & OUT_A20, 0);
    b.cmd(0xD1);
    b.data(0xDF);
    assert!(b.ps2.a20_enabled());
    assert!(!b.ps2.take_reset_request());
}

#[test]
fn a20_through_dd_and_df_commands() {
    let mut b = Bench::new();
    b.cmd(0xDD);
    assert!(!b.ps2.a20_enabled());
    b.cmd(0xDF);
    assert!(b.ps2.a20_enabled());
    assert!(b.read_all().is_empty());
}

#[test]
fn reset_requests_from_pulses_and_output_port() {
    let mut b = Bench::new();
    b.cmd(0xFE);
    assert!(b.ps2.take_reset_request());
    assert!(!b.ps2.take_reset_request(), "taken once");
    // 0xFF pulses nothing.
    b.cmd(0xFF);
    assert!(!b.ps2.take_reset_request());
    // 0xF0 pulses all four bits, reset included.
    b.cmd(0xF0);
    assert!(b.ps2.take_reset_request());
    // Output port bit 0 written low.
    b.cmd(0xD1);
    b.data(0x02);
    assert!(b.ps2.take_reset_request());
    assert!(b.ps2.a20_enabled());
    // The controller itself is not reset: A20 and the command byte stay.
    assert_eq!(b.ps2.command_byte(), POWER_ON_COMMAND_BYTE);
}

#[test]
fn translation_turns_set2_into_set1_for_every_key() {
    let mut b = Bench::initialised(CB_BIOS);
    for &key in KeyCode::ALL {
        for pressed in [true, false] {
            b.key(key, pressed);
            let got = b.read_all();
            assert_eq!(got, scan_sequence(key, pressed, 1, 0), "{key:?} pressed={pressed}");
        }
    }
}

#[test]
fn translated_keys_including_e0_and_break_codes() {
    let mut b = Bench::initialised(CB_BIOS);
    b.key(KeyCode::KeyA, true);
    b.key(KeyCode::KeyA, false);
    b.key(KeyCode::ArrowLeft, true);
    b.key(KeyCode::ArrowLeft, false);
    b.key(KeyCode::F7, true);
    b.key(KeyCode::F7, false);
    b.key(KeyCode::NumpadEnter, true);
    b.key(KeyCode::NumpadEnter, false);
    assert_eq!(b.read_all(), [0x1E, 0x9E, 0xE0, 0x4B, 0xE0, 0xCB, 0x41, 0xC1, 0xE0, 0x1C, 0xE0, 0x9C]);
}

#[test]
fn untranslated_set2_passes_through() {
    let mut b = Bench::initialised(CB_KBD_INT);
    b.key(KeyCode::KeyA, true);
    b.key(KeyCode::KeyA, false);
    b.key(KeyCode::Delete, false);
    assert_eq!(b.read_all(), [0x1C, 0xF0, 0x1C, 0xE0, 0xF0, 0x71]);
}

#[test]
fn pause_and_print_screen_sequences() {
    let mut b = Bench::initialised(CB_BIOS);
    b.key(KeyCode::Pause, true);
    b.key(KeyCode::Pause, false);
    assert_eq!(b.read_all(), [0xE1, 0x1D, 0x45, 0xE1, 0x9D, 0xC5]);
    b.key(KeyCode::PrintScreen, true);
    b.key(KeyCode::PrintScreen, false);
    assert_eq!(b.read_all(), [0xE0, 0x2A, 0xE0, 0x37, 0xE0, 0xB7, 0xE0, 0xAA]);
    // Alt+PrintScreen is SysRq; Ctrl+Pause is Break.
    b.key(KeyCode::AltLeft, true);
    b.key(KeyCode::PrintScreen, true);
    b.key(KeyCode::PrintScreen, false);
    b.key(KeyCode::AltLeft, false);
    assert_eq!(b.read_all(), [0x38, 0x54, 0xD4, 0xB8]);
    b.key(KeyCode::ControlLeft, true);
    b.key(KeyCode::Pause, true);
    b.key(KeyCode::ControlLeft, false);
    assert_eq!(b.read_all(), [0x1D, 0xE0, 0x46, 0xE0, 0xC6, 0x9D]);
    // Untranslated set 2.
    b.write_cb(CB_KBD_INT);
    b.key(KeyCode::Pause, true);
    assert_eq!(b.read_all(), [0xE1, 0x14, 0x77, 0xE1, 0xF0, 0x14, 0xF0, 0x77]);
}

#[test]
fn scancode_set_3_selection_and_query() {
    let mut b = Bench::initialised(CB_KBD_INT);
    b.data(0xF0);
    b.data(0x03);
    b.data(0xF0);
    b.data(0x00);
    assert_eq!(b.read_all(), [0xFA, 0xFA, 0xFA, 0xFA, 0x03]);
    b.key(KeyCode::KeyA, true);
    b.key(KeyCode::KeyA, false);
    b.key(KeyCode::ControlRight, true);
    b.key(KeyCode::ControlRight, false);
    b.key(KeyCode::MetaLeft, true);
    assert_eq!(b.read_all(), [0x1C, 0x58, 0xF0, 0x58, 0x8B]);
    // Through translation the set number reads 0x3F (Brouwer 9.3).
    b.write_cb(CB_BIOS);
    b.data(0xF0);
    b.data(0x00);
    assert_eq!(b.read_all(), [0xFA, 0xFA, 0x3F]);
    // Set 1 is 0x43 translated.
    b.data(0xF0);
    b.data(0x01);
    b.data(0xF0);
    b.data(0x00);
    assert_eq!(b.read_all(), [0xFA, 0xFA, 0xFA, 0xFA, 0x43]);
}

#[test]
fn keyboard_identify_reads_ab41_translated_and_ab83_raw() {
    let mut b = Bench::initialised(CB_BIOS);
    b.data(0xF2);
    assert_eq!(b.read_all(), [0xFA, 0xAB, 0x41]);
    b.write_cb(CB_KBD_INT);
    b.data(0xF2);
    assert_eq!(b.read_all(), [0xFA, 0xAB, 0x83]);
    b.data(0xEE);
    b.data(0x01);
    assert_eq!(b.read_all(), [0xEE, 0xFE]);
}

#[test]
fn irq1_follows_obf_and_the_enable_bit() {
    let mut b = Bench::initialised(CB_TRANSLATE);
    b.key(KeyCode::KeyZ, true);
    assert_eq!(b.status() & STATUS_OBF, STATUS_OBF);
    assert!(!b.irq1(), "interrupt disabled in the command byte");
    // Enabling the interrupt with a byte waiting raises the line. (The
    // command-byte write queues nothing, so the byte stays in place.)
    b.write_cb(CB_TRANSLATE | CB_KBD_INT);
    assert!(b.irq1());
    assert!(!b.irq12());
    assert_eq!(b.inp(DATA_PORT), 0x2C);
    assert!(!b.irq1());
    b.settle();
    assert!(!b.irq1());
    // Output port bit 4 mirrors the interrupt output.
    b.key(KeyCode::KeyZ, false);
    assert!(b.irq1());
    b.cmd(0xD0);
    assert_eq!(b.inp(DATA_PORT), 0xAC);
    b.settle();
    assert_eq!(b.inp(DATA_PORT) & (OUT_KBD_IRQ | OUT_AUX_IRQ), OUT_KBD_IRQ);
}

#[test]
fn controller_replies_wait_behind_a_full_buffer() {
    let mut b = Bench::initialised(CB_BIOS);
    b.key(KeyCode::KeyQ, true);
    b.cmd(0x20);
    assert_eq!(b.read_all(), [0x10, CB_BIOS]);
}

#[test]
fn disabled_keyboard_port_holds_keys_until_enabled() {
    let mut b = Bench::initialised(CB_BIOS);
    b.cmd(0xAD);
    assert_eq!(b.ps2.command_byte() & CB_KBD_DISABLE, CB_KBD_DISABLE);
    b.key(KeyCode::Digit1, true);
    assert!(b.read_all().is_empty());
    assert!(!b.irq1());
    b.cmd(0xAE);
    assert_eq!(b.read_all(), [0x02]);
}

#[test]
fn aux_commands_through_d4() {
    let mut b = Bench::initialised(CB_BIOS | CB_AUX_INT);
    assert_eq!(b.aux(&[0xFF]), [0xFA, 0xAA, 0x00]);
    assert_eq!(b.aux(&[0xF2]), [0xFA, 0x00]);
    assert_eq!(b.aux(&[0xE8, 0x03, 0xE9]), [0xFA, 0xFA, 0xFA, 0x00, 0x03, 100]);
    // Replies carry the AUX flag and raise IRQ12, not IRQ1.
    b.cmd(0xD4);
    b.data(0xF4);
    b.settle();
    assert!(b.irq12());
    assert!(!b.irq1());
    assert_eq!(b.status() & (STATUS_OBF | STATUS_AUX_OBF), STATUS_OBF | STATUS_AUX_OBF);
    assert_eq!(b.inp(DATA_PORT), 0xFA);
    assert!(!b.irq12());
    assert!(b.ps2.mouse_reporting());
    // Aux interface test.
    b.cmd(0xA9);
    assert_eq!(b.read_all_tagged(), [(INTERFACE_OK, false)]);
}

#[test]
fn mouse_packets_raise_irq12_per_byte() {
    let mut b = Bench::initialised(CB_BIOS | CB_AUX_INT);
    b.aux(&[0xF4]);
    b.ps2.mouse_motion(10, -3, 0);
    b.ps2.mouse_buttons(true, false, false);
    let mut bytes = Vec::new();
    for _ in 0..6 {
        b.settle();
        assert!(b.irq12(), "one edge per byte");
        assert!(!b.irq1());
        bytes.push(b.inp(DATA_PORT));
        assert!(!b.irq12());
    }
    b.settle();
    assert_eq!(b.status() & STATUS_OBF, 0);
    assert_eq!(bytes, [0x08, 10, 3, 0x09, 0, 0]);
}

#[test]
fn irq12_needs_its_enable_bit_and_an_enabled_aux_port() {
    let mut b = Bench::initialised(CB_BIOS);
    b.aux(&[0xF4]);
    b.ps2.mouse_motion(1, 0, 0);
    b.settle();
    assert!(!b.irq12());
    assert_eq!(b.status() & STATUS_AUX_OBF, STATUS_AUX_OBF);
    assert_eq!(b.read_all(), [0x08, 1, 0]);
    // Aux port disabled: the mouse keeps its data.
    b.write_cb(CB_BIOS | CB_AUX_INT);
    b.cmd(0xA7);
    b.ps2.mouse_motion(-1, 0, 0);
    assert!(b.read_all().is_empty());
    b.cmd(0xA8);
    b.settle();
    assert!(b.irq12());
    assert_eq!(b.read_all(), [0x18, 0xFF, 0]);
}

#[test]
fn intellimouse_knock_through_the_controller() {
    let mut b = Bench::initialised(CB_BIOS | CB_AUX_INT);
    let acks = b.aux(&[0xF3, 200, 0xF3, 100, 0xF3, 80]);
    assert_eq!(acks, [0xFA; 6]);
    assert_eq!(b.aux(&[0xF2]), [0xFA, 0x03]);
    b.aux(&[0xF4]);
    b.ps2.mouse_motion(0, 2, -2);
    assert_eq!(b.read_all_tagged(), [(0x28, true), (0, true), (0xFE, true), (0xFE, true)]);
}

#[test]
fn d2_and_d3_inject_bytes_as_either_device() {
    let mut b = Bench::initialised(CB_BIOS | CB_AUX_INT);
    b.cmd(0xD2);
    b.data(0x1C);
    b.settle();
    assert!(b.irq1());
    assert!(!b.irq12());
    // Not translated: the controller writes its own output buffer.
    assert_eq!(b.read_all_tagged(), [(0x1C, false)]);
    b.cmd(0xD3);
    b.data(0x5A);
    b.settle();
    assert!(b.irq12());
    assert!(!b.irq1());
    assert_eq!(b.read_all_tagged(), [(0x5A, true)]);
}

#[test]
fn controller_ram_input_port_and_test_inputs() {
    let mut b = Bench::new();
    b.cmd(0x65);
    b.data(0x77);
    b.cmd(0x25);
    b.cmd(0xC0);
    b.cmd(0xE0);
    b.cmd(0xA4);
    assert_eq!(b.read_all(), [0x77, INPUT_PORT, 0x03, NO_PASSWORD]);
    b.cmd(0xA7);
    b.cmd(0xE0);
    assert_eq!(b.read_all(), [0x01]);
    // Unknown commands are ignored.
    b.cmd(0xA1);
    b.cmd(0x05);
    assert!(b.read_all().is_empty());
}

#[test]
fn a_new_command_abandons_a_pending_one() {
    let mut b = Bench::initialised(CB_BIOS);
    b.cmd(0xD1);
    b.cmd(0xAE);
    // The byte goes to the keyboard, not the output port.
    b.data(0xF2);
    assert!(b.ps2.a20_enabled());
    assert_eq!(b.read_all(), [0xFA, 0xAB, 0x41]);
}

#[test]
fn wide_accesses_use_the_low_byte() {
    let mut b = Bench::new();
    let mut cx = DevCtx { now: Nanos(0), irq: &mut b.irq };
    b.ps2.io_write(STATUS_PORT, AccessSize::Word, 0xFFAA, &mut cx);
    let v = b.ps2.io_read(DATA_PORT, AccessSize::Dword, &mut cx);
    assert_eq!(v, 0xFFFF_FF55);
    assert_eq!(b.ps2.io_read(0x61, AccessSize::Byte, &mut cx), 0xFF);
}

#[test]
fn machine_reset_returns_to_power_on() {
    let mut b = Bench::initialised(CB_BIOS);
    b.cmd(0xDD);
    b.key(KeyCode::KeyA, true);
    assert!(b.irq1());
    b.ps2.reset();
    assert!(b.ps2.a20_enabled());
    assert_eq!(b.ps2.command_byte(), POWER_ON_COMMAND_BYTE);
    // The stale line is lowered at the next poll.
    assert_eq!(b.ps2.next_event(), Some(Nanos(b.now)));
    b.settle();
    assert!(!b.irq1());
    assert!(b.read_all().is_empty());
}

#[test]
fn snapshot_round_trip_resumes_identically() {
    let mut a = Bench::initialised(CB_BIOS | CB_AUX_INT);
    a.aux(&[0xF3, 200, 0xF3, 100, 0xF3, 80, 0xF4]);
    a.data(0xED);
    a.data(0x04);
    a.read_all();
    a.cmd(0xDD);
    a.key(KeyCode::ShiftLeft, true);
    a.key(KeyCode::KeyB, true);
    a.ps2.mouse_motion(5, 5, 1);
    a.settle();
    // Mid-stream: one byte read, the rest still queued.
    a.inp(DATA_PORT);
    let state = a.ps2.save();

    let mut b = Bench::new();
    b.ps2.restore(&state);
    b.irq = a.irq;
    b.now = a.now;
    assert_eq!(b.ps2.save(), state);
    assert!(!b.ps2.a20_enabled());
    assert_eq!(b.ps2.keyboard_leds(), 0x04);
    assert_eq!(a.read_all_tagged(), b.read_all_tagged());
    a.key(KeyCode::ShiftLeft, false);
    b.key(KeyCode::ShiftLeft, false);
    a.ps2.mouse_motion(0, 0, 3);
    b.ps2.mouse_motion(0, 0, 3);
    assert_eq!(a.read_all_tagged(), b.read_all_tagged());
    assert_eq!(a.ps2.save(), b.ps2.save());

    // Garbage in a snapshot is clamped, not trusted.
    let mut bad = state.clone();
    bad.controller.ram.truncate(1);
    bad.controller.queue = (0..100).map(|v| OutByte { value: v, aux: false }).collect();
    bad.keyboard.set = 9;
    bad.keyboard.set3_attrs.clear();
    bad.keyboard.scan = (0..=255).collect();
    bad.mouse.packet = (0..=255).collect();
    b.ps2.restore(&bad);
    let s = b.ps2.save();
    assert_eq!(s.controller.ram.len(), RAM_SIZE);
    assert_eq!(s.controller.queue.len(), CONTROLLER_QUEUE_LIMIT);
    assert_eq!(s.keyboard.set, 2);
    assert_eq!(s.keyboard.set3_attrs.len(), 256);
    b.cmd(0x3F);
    b.key(KeyCode::Space, true);
    b.read_all();
}

/// Random port traffic, host input and time steps: no panic, bounded
/// queues, and the controller always settles.
#[test]
fn garbage_port_traffic_never_panics() {
    let mut seed = 0x8042_D00D_F00D_1234u64;
    let mut rnd = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut b = Bench::new();
    for i in 0..200_000u32 {
        let r = rnd();
        let port = if r & 1 == 0 { DATA_PORT } else { STATUS_PORT };
        let value = (r >> 8) as u8;
        match (r >> 1) % 8 {
            0..=2 => b.out(port, value),
            3 | 4 => {
                b.inp(port);
            }
            5 => {
                let key = KeyCode::ALL[(r >> 16) as usize % KeyCode::ALL.len()];
                b.ps2.key_event(key, r & 0x100 != 0);
            }
            6 => {
                b.ps2.mouse_motion((r >> 16) as i16 as i32 * 300, (r >> 32) as i8 as i32, (r >> 40) as i8 as i32);
                b.ps2.mouse_buttons(r & 0x100 != 0, r & 0x200 != 0, r & 0x400 != 0);
            }
            _ => {
                b.now += (r >> 16) % (3 * BYTE_GAP_NS);
                b.poll();
            }
        }
        b.ps2.take_reset_request();
        if let Some(t) = b.ps2.next_event() {
            assert!(t.0 >= b.now, "event in the past");
        }
        if i % 10_000 == 0 {
            b.settle();
        }
        let s = b.ps2.save();
        assert!(s.controller.queue.len() <= CONTROLLER_QUEUE_LIMIT);
        assert!(s.keyboard.scan.len() <= keyboard::SCAN_QUEUE_LIMIT);
        assert!(s.keyboard.replies.len() <= keyboard::REPLY_QUEUE_LIMIT);
        assert!(s.mouse.replies.len() <= mouse::REPLY_QUEUE_LIMIT);
        assert!(s.mouse.packet.len() <= 4);
        assert!((1..=3).contains(&s.keyboard.set));
    }
    // Whatever happened, a BIOS-style reinitialisation works.
    b.settle();
    b.read_all();
    b.cmd(0xAA);
    b.write_cb(CB_BIOS);
    b.cmd(0xAE);
    b.read_all();
    b.data(0xFF);
    let out = b.read_all();
    assert_eq!(out[out.len() - 2..], [0xFA, 0xAA]);
}
