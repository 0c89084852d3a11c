//! The two debug devices test programs use: the 0xE9 debug console (Bochs and
//! QEMU convention: every byte written appears on the host) and the 0xF4 exit
//! device (QEMU isa-debug-exit: writing v ends the run with status (v<<1)|1).

use ferrite_core::{AccessSize, Bus};

/// Port of the debug console.
pub const DEBUGCON_PORT: u16 = 0xE9;
/// Port of the exit device.
pub const DEBUG_EXIT_PORT: u16 = 0xF4;

/// A bus with only the debug console and the exit device on it.
#[derive(Default, Debug)]
pub struct DebugBus {
    /// Everything written to port 0xE9.
    pub console: Vec<u8>,
    /// Exit status requested through port 0xF4, as the process would see it.
    pub exit_status: Option<i32>,
}

impl Bus for DebugBus {
    fn io_read(&mut self, port: u16, size: AccessSize) -> u32 {
        match port {
            // Reading 0xE9 returns 0xE9 so guests can detect the console.
            DEBUGCON_PORT => 0xE9,
            _ => size.all_ones(),
        }
    }

    fn io_write(&mut self, port: u16, _size: AccessSize, value: u32) {
        match port {
            DEBUGCON_PORT => self.console.push(value as u8),
            DEBUG_EXIT_PORT => self.exit_status = Some((((value & 0xFF) as i32) << 1) | 1),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn console_collects_bytes_and_exit_encodes_status() {
        let mut bus = DebugBus::default();
        bus.io_write(DEBUGCON_PORT, AccessSize::Byte, b'o' as u32);
        bus.io_write(DEBUGCON_PORT, AccessSize::Byte, b'k' as u32);
        bus.io_write(DEBUG_EXIT_PORT, AccessSize::Byte, 0);
        assert_eq!(bus.console, b"ok");
        assert_eq!(bus.exit_status, Some(1));
        assert_eq!(bus.io_read(DEBUGCON_PORT, AccessSize::Byte), 0xE9);
        assert_eq!(bus.io_read(0x80, AccessSize::Word), 0xFFFF);
    }
}
