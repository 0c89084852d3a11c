//! EFLAGS with lazy evaluation of the arithmetic flags.
//!
//! Arithmetic instructions do not compute CF/PF/AF/ZF/SF/OF; they record the
//! operation (kind, operands, result, size) and mark the six flags as lazy.
//! A reader materializes only the flag it needs. The same representation is
//! used by every executor (interpreter now, the JIT later), and is `repr(C)`
//! so generated code can write it by offset.

pub const CF: u32 = 1 << 0;
pub const PF: u32 = 1 << 2;
pub const AF: u32 = 1 << 4;
pub const ZF: u32 = 1 << 6;
pub const SF: u32 = 1 << 7;
pub const TF: u32 = 1 << 8;
pub const IF: u32 = 1 << 9;
pub const DF: u32 = 1 << 10;
pub const OF: u32 = 1 << 11;
pub const IOPL: u32 = 3 << 12;
pub const NT: u32 = 1 << 14;
pub const RF: u32 = 1 << 16;
pub const VM: u32 = 1 << 17;
pub const AC: u32 = 1 << 18;
pub const VIF: u32 = 1 << 19;
pub const VIP: u32 = 1 << 20;
pub const ID: u32 = 1 << 21;

/// The six arithmetic status flags.
pub const ARITH: u32 = CF | PF | AF | ZF | SF | OF;
/// Bits a P6 lets software change at all (bit 1 reads as one, 3/5/15 as zero).
pub const SETTABLE: u32 = ARITH | TF | IF | DF | IOPL | NT | RF | VM | AC | VIF | VIP | ID;
/// Bit 1 of EFLAGS always reads as one.
pub const FIXED_ONE: u32 = 1 << 1;

/// How the lazily kept flags are derived from the recorded operation.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LazyOp {
    /// result = op1 + op2 + carry_in
    Add = 0,
    /// result = op1 - op2 - carry_in
    Sub = 1,
    /// AND/OR/XOR/TEST: CF = OF = AF = 0.
    Logic = 2,
}

/// The record of the last flag-setting operation. (The field order lets
/// translated code write `lazy` and `sign` with one 64-bit store and `op`
/// and `carry_in` with one 16-bit store.)
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct Flags {
    /// Authoritative bits for everything not in `lazy`.
    pub bits: u32,
    /// Which of the arithmetic flags must be computed from the record.
    pub lazy: u32,
    /// Sign bit of the operand size (0x80, 0x8000 or 0x8000_0000).
    pub sign: u32,
    pub op: LazyOp,
    pub carry_in: u8,
    pub op1: u32,
    pub op2: u32,
    pub res: u32,
}

impl Default for Flags {
    fn default() -> Self {
        Flags { bits: FIXED_ONE, lazy: 0, op1: 0, op2: 0, res: 0, sign: 0x80, op: LazyOp::Logic, carry_in: 0 }
    }
}

#[inline]
fn size_mask(sign: u32) -> u32 {
    sign | (sign - 1)
}

impl Flags {
    /// Before recording a new operation that computes the flags in
    /// `new_lazy` lazily: materialize the currently lazy flags it does not
    /// recompute, so their values survive the new record.
    #[inline]
    fn prepare(&mut self, new_lazy: u32) {
        let keep = self.lazy & !new_lazy;
        if keep != 0 {
            let mut b = self.bits & !keep;
            for f in [CF, PF, AF, ZF, SF, OF] {
                if keep & f != 0 && self.compute(f) {
                    b |= f;
                }
            }
            self.bits = b;
            self.lazy &= !keep;
        }
    }

    /// Record an arithmetic operation whose flags are computed lazily.
    #[allow(clippy::too_many_arguments)]
    #[inline]
    fn record(&mut self, op: LazyOp, op1: u32, op2: u32, res: u32, carry_in: bool, sign: u32, lazy: u32) {
        if lazy != ARITH {
            self.prepare(lazy);
        }
        self.op1 = op1;
        self.op2 = op2;
        self.res = res;
        self.sign = sign;
        self.op = op;
        self.carry_in = carry_in as u8;
        self.lazy = lazy;
    }

    /// Record an addition (ADD/ADC/INC); `carry_in` is the ADC carry. INC
    /// passes `lazy = ARITH & !CF` to keep CF.
    #[inline]
    pub fn set_add(&mut self, op1: u32, op2: u32, res: u32, carry_in: bool, sign: u32, lazy: u32) {
        self.record(LazyOp::Add, op1, op2, res, carry_in, sign, lazy);
    }

    /// Record a subtraction (SUB/SBB/CMP/NEG/DEC/CMPS/SCAS).
    #[inline]
    pub fn set_sub(&mut self, op1: u32, op2: u32, res: u32, borrow_in: bool, sign: u32, lazy: u32) {
        self.record(LazyOp::Sub, op1, op2, res, borrow_in, sign, lazy);
    }

    /// Record a logical operation: CF, OF and AF become 0 (AF is undefined on
    /// the P6; zero is what it produces), SF/ZF/PF follow the result.
    #[inline]
    pub fn set_logic(&mut self, res: u32, sign: u32) {
        self.res = res;
        self.sign = sign;
        self.op = LazyOp::Logic;
        self.bits &= !(CF | OF | AF);
        self.lazy = ZF | SF | PF;
    }

    /// Record only SF/ZF/PF from a result (shifts, rotates with explicit
    /// CF/OF, BCD adjusts).
    #[inline]
    pub fn set_szp(&mut self, res: u32, sign: u32) {
        self.prepare(ZF | SF | PF);
        self.res = res;
        self.sign = sign;
        self.op = LazyOp::Logic;
        self.lazy = ZF | SF | PF;
    }

    #[inline]
    fn compute(&self, flag: u32) -> bool {
        let m = size_mask(self.sign);
        match flag {
            CF => {
                let (a, b, r) = (self.op1 & m, self.op2 & m, self.res & m);
                match self.op {
                    LazyOp::Add => {
                        if self.carry_in != 0 {
                            r <= a
                        } else {
                            r < a
                        }
                    }
                    LazyOp::Sub => {
                        if self.carry_in != 0 {
                            a <= b
                        } else {
                            a < b
                        }
                    }
                    LazyOp::Logic => false,
                }
            }
            PF => (self.res as u8).count_ones().is_multiple_of(2),
            AF => match self.op {
                LazyOp::Logic => false,
                _ => (self.op1 ^ self.op2 ^ self.res) & 0x10 != 0,
            },
            ZF => self.res & m == 0,
            SF => self.res & self.sign != 0,
            OF => match self.op {
                LazyOp::Add => ((self.op1 ^ self.res) & (self.op2 ^ self.res) & self.sign) != 0,
                LazyOp::Sub => ((self.op1 ^ self.op2) & (self.op1 ^ self.res) & self.sign) != 0,
                LazyOp::Logic => false,
            },
            _ => self.bits & flag != 0,
        }
    }

    /// The value of one flag bit.
    #[inline]
    pub fn get(&self, flag: u32) -> bool {
        if self.lazy & flag != 0 {
            self.compute(flag)
        } else {
            self.bits & flag != 0
        }
    }

    #[inline]
    pub fn cf(&self) -> bool {
        self.get(CF)
    }

    /// Set or clear one flag bit explicitly (it stops being lazy).
    #[inline]
    pub fn set(&mut self, flag: u32, on: bool) {
        self.lazy &= !flag;
        if on {
            self.bits |= flag;
        } else {
            self.bits &= !flag;
        }
    }

    /// Materialize the lazy flags selected by `which` into `bits` (the
    /// others stay lazy).
    #[inline]
    pub fn materialize(&mut self, which: u32) {
        let m = self.lazy & which;
        if m != 0 {
            let mut b = self.bits & !m;
            for f in [CF, PF, AF, ZF, SF, OF] {
                if m & f != 0 && self.compute(f) {
                    b |= f;
                }
            }
            self.bits = b;
            self.lazy &= !m;
        }
    }

    /// Materialize all lazy flags into `bits`.
    #[inline]
    pub fn resolve(&mut self) {
        if self.lazy != 0 {
            let mut b = self.bits & !self.lazy;
            for f in [CF, PF, AF, ZF, SF, OF] {
                if self.lazy & f != 0 && self.compute(f) {
                    b |= f;
                }
            }
            self.bits = b;
            self.lazy = 0;
        }
    }

    /// The full EFLAGS value.
    #[inline]
    pub fn value(&self) -> u32 {
        let mut f = *self;
        f.resolve();
        (f.bits & SETTABLE) | FIXED_ONE
    }

    /// Replace the bits selected by `mask` with those of `value`.
    #[inline]
    pub fn load(&mut self, value: u32, mask: u32) {
        self.resolve();
        self.bits = (self.bits & !mask) | (value & mask & SETTABLE) | FIXED_ONE;
    }

    /// Evaluate condition code `cc` (the low nibble of Jcc/SETcc/CMOVcc).
    #[inline]
    pub fn condition(&self, cc: u8) -> bool {
        let r = match cc >> 1 {
            0 => self.get(OF),
            1 => self.get(CF),
            2 => self.get(ZF),
            3 => self.get(CF) || self.get(ZF),
            4 => self.get(SF),
            5 => self.get(PF),
            6 => self.get(SF) != self.get(OF),
            _ => self.get(ZF) || (self.get(SF) != self.get(OF)),
        };
        r ^ (cc & 1 != 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn add8(a: u32, b: u32, c: bool) -> u32 {
        let mut f = Flags::default();
        let r = a.wrapping_add(b).wrapping_add(c as u32) & 0xFF;
        f.set_add(a, b, r, c, 0x80, ARITH);
        f.value() & ARITH
    }

    fn sub16(a: u32, b: u32, c: bool) -> u32 {
        let mut f = Flags::default();
        let r = a.wrapping_sub(b).wrapping_sub(c as u32) & 0xFFFF;
        f.set_sub(a, b, r, c, 0x8000, ARITH);
        f.value() & ARITH
    }

    #[test]
    fn add_flags_match_hardware_semantics() {
        assert_eq!(add8(0xFF, 0x01, false), CF | ZF | AF | PF);
        assert_eq!(add8(0x7F, 0x01, false), OF | SF | AF);
        assert_eq!(add8(0xFF, 0xFF, true), CF | SF | AF | PF);
        assert_eq!(add8(0x00, 0xFF, true), CF | ZF | AF | PF);
    }

    #[test]
    fn sub_flags_including_borrow_in() {
        assert_eq!(sub16(0, 1, false), CF | SF | AF | PF);
        assert_eq!(sub16(0x8000, 1, false), OF | AF | PF);
        assert_eq!(sub16(5, 5, true), CF | SF | AF | PF);
        assert_eq!(sub16(5, 4, true), ZF | PF);
    }

    #[test]
    fn inc_keeps_carry() {
        let mut f = Flags::default();
        f.set(CF, true);
        f.set_add(0xFF, 1, 0, false, 0x80, ARITH & !CF);
        assert!(f.cf());
        assert!(f.get(ZF));
    }

    #[test]
    fn conditions_follow_the_encoding() {
        let mut f = Flags::default();
        f.set_sub(1, 2, 0xFF, false, 0x80, ARITH); // 1 < 2
        assert!(f.condition(0x2)); // JB
        assert!(f.condition(0xC)); // JL
        assert!(!f.condition(0x4)); // JE
        assert!(f.condition(0x5)); // JNE
        assert!(f.condition(0x6)); // JBE
        assert!(!f.condition(0xF)); // JG
    }

    #[test]
    fn load_masks_reserved_bits() {
        let mut f = Flags::default();
        f.load(0xFFFF_FFFF, 0xFFFF_FFFF);
        assert_eq!(f.value(), SETTABLE | FIXED_ONE);
        f.load(0, 0xFFFF_FFFF);
        assert_eq!(f.value(), FIXED_ONE);
    }
}
