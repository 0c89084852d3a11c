//! Debug-register breakpoints (SDM vol. 3, 17.2-17.3): instruction
//! breakpoints are faults checked before an instruction runs (suppressed by
//! EFLAGS.RF), data breakpoints are traps taken after the instruction that
//! touched the watched bytes, and DR7.GD makes debug-register access fault.
//! I/O breakpoints need CR4.DE, which this model does not offer.

use super::flags::RF;
use super::{Cpu, Fault, Res};

/// DR7.GD: general detect.
pub(crate) const DR7_GD: u32 = 1 << 13;
/// DR6.BD: the #DB came from general detect.
pub(crate) const DR6_BD: u32 = 1 << 13;
/// DR6.BS: single step.
pub(crate) const DR6_BS: u32 = 1 << 14;

/// Breakpoint `n`'s enable bits, R/W field and length from DR7.
#[inline]
fn fields(dr7: u32, n: usize) -> (bool, u32, u32) {
    let enabled = (dr7 >> (2 * n)) & 3 != 0;
    let rw = (dr7 >> (16 + 4 * n)) & 3;
    // LEN: 00 = 1, 01 = 2, 11 = 4 bytes (10 is undefined on a P6; 8 later).
    let len = match (dr7 >> (18 + 4 * n)) & 3 {
        0 => 1,
        1 => 2,
        3 => 4,
        _ => 8,
    };
    (enabled, rw, len)
}

impl Cpu {
    /// Instruction breakpoints matching linear address `lin` (B0-B3 bits).
    pub(crate) fn exec_breakpoints(&self, lin: u32) -> u32 {
        let dr7 = self.state.dr[7];
        let mut hits = 0;
        for n in 0..4 {
            let (enabled, rw, _) = fields(dr7, n);
            if enabled && rw == 0 && self.state.dr[n] == lin {
                hits |= 1 << n;
            }
        }
        hits
    }

    /// Note a data access for the data breakpoints.
    #[inline]
    pub(crate) fn watch(&mut self, lin: u32, size: u32, write: bool) {
        if self.state.dr[7] & 0xFF != 0 {
            self.watch_slow(lin, size, write);
        }
    }

    fn watch_slow(&mut self, lin: u32, size: u32, write: bool) {
        let dr7 = self.state.dr[7];
        for n in 0..4 {
            let (enabled, rw, len) = fields(dr7, n);
            let kind_matches = rw == 3 || (rw == 1 && write);
            if !enabled || !kind_matches {
                continue;
            }
            let start = self.state.dr[n] & !(len - 1);
            // Overlap of [lin, lin+size) and [start, start+len), with wrap.
            let a = lin.wrapping_sub(start);
            let b = start.wrapping_sub(lin);
            if a < len || b < size {
                self.db_pending |= 1 << n;
            }
        }
    }

    /// General detect: a MOV to or from a debug register with DR7.GD set
    /// faults with DR6.BD, and GD clears so the handler can use them.
    pub(crate) fn general_detect(&mut self) -> Res<()> {
        if self.state.dr[7] & DR7_GD != 0 {
            self.state.dr[6] |= DR6_BD;
            self.state.dr[7] &= !DR7_GD;
            return Err(Fault::DB);
        }
        Ok(())
    }

    /// Before an instruction at linear `lin`: the instruction-breakpoint
    /// fault, unless RF suppresses it. Returns the DR6 hit bits.
    #[inline]
    pub(crate) fn check_exec_breakpoint(&mut self, lin: u32) -> u32 {
        if self.state.dr[7] & 0xFF == 0 || self.state.flags.bits & RF != 0 {
            return 0;
        }
        self.exec_breakpoints(lin)
    }
}
