//! The x87 double extended-precision format and its arithmetic in software.
//!
//! Every operation computes the exact result (or enough bits of it plus a
//! sticky bit) and rounds once, under the x87 rounding control (RC) and,
//! where the SDM says so, the precision control (PC). Operand and result
//! handling follows the Intel SDM vol. 1: encodings and classes (4.2.2,
//! 8.2), NaN propagation (4.8.3.5, table 4-7), exception detection and
//! masked responses (4.9, 8.5), including the bias-adjusted results of
//! unmasked overflow and underflow on register destinations (8.5.4, 8.5.5).
//!
//! Operations accumulate the exceptions they raise in an [`FpEnv`]; whether
//! a result may be written is the caller's decision (an unmasked invalid,
//! zero-divide or denormal exception leaves the destination unchanged).

use std::fmt;

/// Exception flags, in their FSW/FCW bit positions.
pub const IE: u8 = 0x01;
pub const DE: u8 = 0x02;
pub const ZE: u8 = 0x04;
pub const OE: u8 = 0x08;
pub const UE: u8 = 0x10;
pub const PE: u8 = 0x20;

/// Exponent bias of the extended format.
pub const BIAS: i32 = 16383;
/// Exponent adjustment of a register result when overflow or underflow is
/// unmasked (SDM vol. 1, 8.5.4 and 8.5.5).
pub const BIAS_ADJUST: i32 = 24576;

/// The explicit integer bit.
const J: u64 = 1 << 63;
/// The quiet bit of a NaN.
const QUIET: u64 = 1 << 62;

/// An 80-bit extended-precision value as the x87 registers hold it.
#[repr(C)]
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct F80 {
    /// Significand with the explicit integer bit (J) at bit 63.
    pub mant: u64,
    /// Sign (bit 15) and biased exponent (bits 0-14).
    pub se: u16,
}

impl fmt::Debug for F80 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "F80({:04x}:{:016x})", self.se, self.mant)
    }
}

impl std::ops::Neg for F80 {
    type Output = F80;

    /// The sign flipped (FCHS): no exception, NaNs included.
    fn neg(self) -> F80 {
        F80 { mant: self.mant, se: self.se ^ 0x8000 }
    }
}

/// What an encoding is (SDM vol. 1, 8.2.2 and table 8-3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    Zero,
    /// Exponent 0 with a nonzero significand, including pseudo-denormals
    /// (J set), which are operands only and never produced.
    Denormal,
    Normal,
    Infinity,
    QNaN,
    SNaN,
    /// Unnormals, pseudo-NaNs and pseudo-infinities: invalid operands.
    Unsupported,
}

impl F80 {
    pub const ZERO: F80 = F80 { mant: 0, se: 0 };
    pub const ONE: F80 = F80 { mant: J, se: 0x3FFF };
    pub const INFINITY: F80 = F80 { mant: J, se: 0x7FFF };
    /// The QNaN floating-point indefinite, the masked response to invalid
    /// operations.
    pub const INDEFINITE: F80 = F80 { mant: J | QUIET, se: 0xFFFF };

    pub const fn new(sign: bool, exp: u16, mant: u64) -> F80 {
        F80 { mant, se: ((sign as u16) << 15) | (exp & 0x7FFF) }
    }

    /// From the 10-byte little-endian memory format.
    pub fn from_bytes(b: [u8; 10]) -> F80 {
        let mut m = [0u8; 8];
        m.copy_from_slice(&b[..8]);
        F80 { mant: u64::from_le_bytes(m), se: u16::from_le_bytes([b[8], b[9]]) }
    }

    /// The 10-byte little-endian memory format.
    pub fn to_bytes(self) -> [u8; 10] {
        let mut b = [0u8; 10];
        b[..8].copy_from_slice(&self.mant.to_le_bytes());
        b[8..].copy_from_slice(&self.se.to_le_bytes());
        b
    }

    #[inline]
    pub fn sign(self) -> bool {
        self.se & 0x8000 != 0
    }

    /// Biased exponent.
    #[inline]
    pub fn exp(self) -> u16 {
        self.se & 0x7FFF
    }

    pub fn with_sign(self, sign: bool) -> F80 {
        F80 { mant: self.mant, se: (self.se & 0x7FFF) | ((sign as u16) << 15) }
    }

    pub fn abs(self) -> F80 {
        self.with_sign(false)
    }

    pub fn class(self) -> Class {
        let j = self.mant & J != 0;
        match self.exp() {
            0 if self.mant == 0 => Class::Zero,
            0 => Class::Denormal,
            0x7FFF if !j => Class::Unsupported,
            0x7FFF if self.mant << 1 == 0 => Class::Infinity,
            0x7FFF if self.mant & QUIET != 0 => Class::QNaN,
            0x7FFF => Class::SNaN,
            _ if j => Class::Normal,
            _ => Class::Unsupported,
        }
    }

    pub fn is_nan(self) -> bool {
        matches!(self.class(), Class::QNaN | Class::SNaN)
    }

    pub fn is_snan(self) -> bool {
        self.class() == Class::SNaN
    }

    /// The QNaN version of a NaN.
    pub fn quiet(self) -> F80 {
        F80 { mant: self.mant | QUIET, se: self.se }
    }

    /// An exact integer value.
    pub fn from_i64(v: i64) -> F80 {
        F80::from_u64(v < 0, v.unsigned_abs())
    }

    /// Sign and magnitude of an integer, exactly.
    pub fn from_u64(sign: bool, m: u64) -> F80 {
        if m == 0 {
            return F80::ZERO.with_sign(sign);
        }
        let lz = m.leading_zeros();
        F80::new(sign, (BIAS + 63 - lz as i32) as u16, m << lz)
    }
}

/// Rounding control (FCW.RC).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rounding {
    Nearest,
    Down,
    Up,
    Zero,
}

impl Rounding {
    pub fn from_rc(rc: u16) -> Rounding {
        match rc & 3 {
            0 => Rounding::Nearest,
            1 => Rounding::Down,
            2 => Rounding::Up,
            _ => Rounding::Zero,
        }
    }
}

/// The control word's settings for one operation, and the exceptions it
/// raised.
#[derive(Clone, Copy, Debug)]
pub struct FpEnv {
    pub rc: Rounding,
    /// Significand bits of results that precision control applies to.
    pub prec: u32,
    /// Exception masks (FCW bits 0-5; a set bit masks).
    pub masks: u8,
    /// Exceptions raised so far.
    pub flags: u8,
    /// The last inexact rounding increased the magnitude (reported in C1).
    pub round_up: bool,
    /// Round results to this format (its precision and exponent range,
    /// masked responses as for a memory destination) instead of to the
    /// register format: SSE's single and double results, rounded once.
    pub dest: Option<Format>,
}

impl FpEnv {
    /// Settings from a control word. PC = 01 is reserved; it is taken as
    /// double extended precision.
    pub fn from_cw(cw: u16) -> FpEnv {
        let prec = match (cw >> 8) & 3 {
            0 => 24,
            2 => 53,
            _ => 64,
        };
        FpEnv { rc: Rounding::from_rc(cw >> 10), prec, masks: (cw & 0x3F) as u8, flags: 0, round_up: false, dest: None }
    }

    #[inline]
    pub fn raise(&mut self, f: u8) {
        self.flags |= f;
    }

    #[inline]
    pub fn masked(&self, f: u8) -> bool {
        self.masks & f == f
    }

    fn inexact(&mut self, inexact: bool, up: bool) {
        if inexact {
            self.flags |= PE;
            self.round_up = up;
        }
    }
}

/// A finite nonzero value: `sig * 2^(exp - 63)` with bit 63 of `sig` set.
#[derive(Clone, Copy, Debug)]
struct Num {
    sign: bool,
    exp: i32,
    sig: u64,
}

/// Unpack a normal or denormal (pseudo-denormals included: their exponent
/// field 0 means 2^-16382 as for denormals).
fn unpack(x: F80) -> Num {
    let e = x.exp() as i32;
    if e == 0 {
        let lz = x.mant.leading_zeros().min(63);
        Num { sign: x.sign(), exp: 1 - BIAS - lz as i32, sig: x.mant << lz }
    } else {
        Num { sign: x.sign(), exp: e - BIAS, sig: x.mant }
    }
}

/// A destination format: significand bits, bias, largest finite biased
/// exponent.
#[derive(Clone, Copy, Debug)]
pub struct Format {
    pub prec: u32,
    pub bias: i32,
    pub emax: i32,
}

pub const SINGLE: Format = Format { prec: 24, bias: 127, emax: 0xFE };
pub const DOUBLE: Format = Format { prec: 53, bias: 1023, emax: 0x7FE };

/// The extended format with `prec` significand bits (precision control
/// narrows the significand, never the exponent range).
pub fn extended(prec: u32) -> Format {
    Format { prec, bias: BIAS, emax: 0x7FFE }
}

/// A rounded value: biased exponent (0 for denormals and zero, `emax + 1`
/// for infinity) and significand with the integer bit at `prec - 1`.
#[derive(Clone, Copy, Debug)]
struct Rounded {
    exp: i32,
    sig: u64,
}

/// `v >> n`, with the shifted-out bits ORed into bit 0.
fn shr_sticky(v: u128, n: u32) -> u128 {
    if n == 0 {
        v
    } else if n >= 128 {
        (v != 0) as u128
    } else {
        (v >> n) | ((v & ((1u128 << n) - 1) != 0) as u128)
    }
}

/// Drop the low `drop` (1..=127) bits of `v` rounding per `rc`: the kept
/// bits (possibly carried one bit higher), inexactness, and whether the
/// magnitude was incremented.
fn round_bits(v: u128, drop: u32, sign: bool, rc: Rounding) -> (u128, bool, bool) {
    let kept = v >> drop;
    let rem = v & ((1u128 << drop) - 1);
    let half = 1u128 << (drop - 1);
    let inexact = rem != 0;
    let inc = match rc {
        Rounding::Nearest => rem > half || (rem == half && kept & 1 != 0),
        Rounding::Zero => false,
        Rounding::Down => sign && inexact,
        Rounding::Up => !sign && inexact,
    };
    (kept + inc as u128, inexact, inc)
}

/// Round `sig * 2^(exp - 127)` (bit 127 of `sig` set; bit 0 sticky) to
/// `fmt`. `adjust`: the destination is a register, so an unmasked overflow
/// or underflow delivers the bias-adjusted result; for memory destinations
/// the caller stores nothing then. Tininess is detected after rounding with
/// an unbounded exponent (SDM vol. 1, 4.9.1.5); a masked underflow is
/// reported only when the denormalized result is inexact.
fn round(sign: bool, exp: i32, sig: u128, fmt: Format, adjust: bool, env: &mut FpEnv) -> Rounded {
    let p = fmt.prec;
    let drop = 128 - p;
    let e = exp.saturating_add(fmt.bias);
    let (m, inexact, up) = round_bits(sig, drop, sign, env.rc);
    let (m, e_unb) = if m >> p != 0 { (m >> 1, e.saturating_add(1)) } else { (m, e) };
    if e_unb > fmt.emax {
        if !env.masked(OE) {
            env.raise(OE);
            if !adjust {
                return Rounded { exp: fmt.emax + 1, sig: 1 << (p - 1) };
            }
            if e_unb - BIAS_ADJUST <= fmt.emax {
                env.inexact(inexact, up);
                return Rounded { exp: e_unb - BIAS_ADJUST, sig: m as u64 };
            }
            // Out of range even adjusted (FSCALE): an infinity.
            env.raise(PE);
            env.round_up = true;
            return Rounded { exp: fmt.emax + 1, sig: 1 << (p - 1) };
        }
        // Masked response (SDM vol. 1, table 4-10).
        env.raise(OE | PE);
        let to_inf = match env.rc {
            Rounding::Nearest => true,
            Rounding::Zero => false,
            Rounding::Down => sign,
            Rounding::Up => !sign,
        };
        env.round_up = to_inf;
        return if to_inf {
            Rounded { exp: fmt.emax + 1, sig: 1 << (p - 1) }
        } else {
            Rounded { exp: fmt.emax, sig: u64::MAX >> (64 - p) }
        };
    }
    if e_unb < 1 {
        if !env.masked(UE) {
            env.raise(UE);
            if !adjust {
                return Rounded { exp: 0, sig: 0 };
            }
            if e_unb + BIAS_ADJUST >= 1 {
                env.inexact(inexact, up);
                return Rounded { exp: e_unb + BIAS_ADJUST, sig: m as u64 };
            }
            // Out of range even adjusted (FSCALE): a zero.
            env.raise(PE);
            env.round_up = false;
            return Rounded { exp: 0, sig: 0 };
        }
        // Denormalize, then round at the same significand position.
        let shift = (1i64 - e as i64).clamp(0, 255) as u32;
        let (m, inexact, up) = round_bits(shr_sticky(sig, shift), drop, sign, env.rc);
        if inexact {
            env.raise(UE | PE);
            env.round_up = up;
        }
        let exp = (m >> (p - 1) != 0) as i32;
        return Rounded { exp, sig: m as u64 };
    }
    env.inexact(inexact, up);
    Rounded { exp: e_unb, sig: m as u64 }
}

/// Round to an extended register result with `prec` bits (or to
/// `env.dest`, held exactly in the extended format).
fn round_ext(sign: bool, exp: i32, sig: u128, prec: u32, env: &mut FpEnv) -> F80 {
    if let Some(fmt) = env.dest {
        let r = round(sign, exp, sig, fmt, false, env);
        if r.exp > fmt.emax {
            return F80::INFINITY.with_sign(sign);
        }
        if r.sig == 0 {
            return F80::ZERO.with_sign(sign);
        }
        // value = sig * 2^(max(exp, 1) - bias - (prec - 1))
        let lsb = r.exp.max(1) - fmt.bias - (fmt.prec as i32 - 1);
        let lz = r.sig.leading_zeros() as i32;
        return F80::new(sign, (lsb + BIAS + 63 - lz) as u16, r.sig << lz);
    }
    let r = round(sign, exp, sig, extended(prec), true, env);
    F80::new(sign, r.exp.clamp(0, 0x7FFF) as u16, r.sig << (64 - prec))
}

/// Normalize a nonzero `s` whose value is `s * 2^(top - 127)` and round it.
fn norm_round(sign: bool, top: i32, s: u128, prec: u32, env: &mut FpEnv) -> F80 {
    let lz = s.leading_zeros();
    round_ext(sign, top - lz as i32, s << lz, prec, env)
}

fn round_num(n: Num, prec: u32, env: &mut FpEnv) -> F80 {
    round_ext(n.sign, n.exp, (n.sig as u128) << 64, prec, env)
}

/// The NaN result of an operation with NaN operand(s) (SDM vol. 1,
/// table 4-7): an SNaN is quieted and raises IE; of two NaNs a QNaN is
/// preferred to an SNaN, else the larger significand wins.
fn propagate(a: F80, b: F80, env: &mut FpEnv) -> F80 {
    let (sa, sb) = (a.is_snan(), b.is_snan());
    if sa || sb {
        env.raise(IE);
    }
    let r = match (a.is_nan(), b.is_nan()) {
        (true, false) => a,
        (false, true) => b,
        _ if sa && !sb => b,
        _ if sb && !sa => a,
        _ if a.mant > b.mant => a,
        _ if b.mant > a.mant => b,
        _ if a.sign() => b,
        _ => a,
    };
    r.quiet()
}

/// An arithmetic operand: a value and whether it is a denormal operand
/// (an extended denormal, or a single/double denormal loaded exactly).
#[derive(Clone, Copy, Debug)]
pub struct Operand {
    pub v: F80,
    pub den: bool,
}

impl From<F80> for Operand {
    fn from(v: F80) -> Operand {
        Operand { v, den: v.class() == Class::Denormal }
    }
}

/// Invalid encodings and NaNs: the result when `a` or `b` is one. A NaN or
/// unsupported operand hides a denormal one (no DE).
fn special_operands(a: F80, b: F80, env: &mut FpEnv) -> Option<F80> {
    if a.class() == Class::Unsupported || b.class() == Class::Unsupported {
        env.raise(IE);
        return Some(F80::INDEFINITE);
    }
    if a.is_nan() || b.is_nan() {
        return Some(propagate(a, b, env));
    }
    None
}

/// DE when `cond` (one of the operands is a denormal).
fn denormal(cond: bool, env: &mut FpEnv) {
    if cond {
        env.raise(DE);
    }
}

fn invalid(env: &mut FpEnv) -> F80 {
    env.raise(IE);
    F80::INDEFINITE
}

/// The sign of an exact zero sum of operands of different signs.
fn zero_sum(env: &FpEnv) -> F80 {
    F80::ZERO.with_sign(env.rc == Rounding::Down)
}

pub fn add(a: impl Into<Operand>, b: impl Into<Operand>, env: &mut FpEnv) -> F80 {
    addsub(a.into(), b.into(), false, env)
}

/// `a - b`.
pub fn sub(a: impl Into<Operand>, b: impl Into<Operand>, env: &mut FpEnv) -> F80 {
    addsub(a.into(), b.into(), true, env)
}

fn addsub(a: Operand, b: Operand, negate: bool, env: &mut FpEnv) -> F80 {
    if let Some(r) = special_operands(a.v, b.v, env) {
        return r;
    }
    denormal(a.den || b.den, env);
    let (a, b) = (a.v, if negate { -b.v } else { b.v });
    let (sa, sb) = (a.sign(), b.sign());
    match (a.class(), b.class()) {
        (Class::Infinity, Class::Infinity) if sa != sb => invalid(env),
        (Class::Infinity, _) => a,
        (_, Class::Infinity) => b,
        (Class::Zero, Class::Zero) if sa == sb => a,
        (Class::Zero, Class::Zero) => zero_sum(env),
        (Class::Zero, _) => round_num(unpack(b), env.prec, env),
        (_, Class::Zero) => round_num(unpack(a), env.prec, env),
        _ => add_nums(unpack(a), unpack(b), env),
    }
}

fn add_nums(x: Num, y: Num, env: &mut FpEnv) -> F80 {
    let (x, y) = if x.exp >= y.exp { (x, y) } else { (y, x) };
    let d = (x.exp as i64 - y.exp as i64).min(255) as u32;
    // Both significands at bits 126..63: room for the carry above and 63
    // guard bits below.
    let xs = (x.sig as u128) << 63;
    let ys = shr_sticky((y.sig as u128) << 63, d);
    let top = x.exp + 1;
    if x.sign == y.sign {
        return norm_round(x.sign, top, xs + ys, env.prec, env);
    }
    let (s, sign) = if xs >= ys { (xs - ys, x.sign) } else { (ys - xs, y.sign) };
    if s == 0 {
        return zero_sum(env);
    }
    norm_round(sign, top, s, env.prec, env)
}

pub fn mul(a: impl Into<Operand>, b: impl Into<Operand>, env: &mut FpEnv) -> F80 {
    let (a, b) = (a.into(), b.into());
    if let Some(r) = special_operands(a.v, b.v, env) {
        return r;
    }
    denormal(a.den || b.den, env);
    let (a, b) = (a.v, b.v);
    let sign = a.sign() != b.sign();
    match (a.class(), b.class()) {
        (Class::Infinity, Class::Zero) | (Class::Zero, Class::Infinity) => invalid(env),
        (Class::Infinity, _) | (_, Class::Infinity) => F80::INFINITY.with_sign(sign),
        (Class::Zero, _) | (_, Class::Zero) => F80::ZERO.with_sign(sign),
        _ => {
            let (x, y) = (unpack(a), unpack(b));
            let p = x.sig as u128 * y.sig as u128;
            norm_round(sign, x.exp + y.exp + 1, p, env.prec, env)
        }
    }
}

/// `a * b * 2^k` for finite nonzero `a` and `b`, rounded once to 64 bits
/// (for composite results whose intermediate values must not over- or
/// underflow). Other operands give NaN.
pub fn mul_pow2(a: F80, b: F80, k: i32, env: &mut FpEnv) -> F80 {
    let finite = |c| matches!(c, Class::Normal | Class::Denormal);
    if !finite(a.class()) || !finite(b.class()) {
        return F80::INDEFINITE;
    }
    let (x, y) = (unpack(a), unpack(b));
    let p = x.sig as u128 * y.sig as u128;
    norm_round(x.sign != y.sign, x.exp + y.exp + 1 + k.clamp(-100_000, 100_000), p, 64, env)
}

/// `a / b`. Division by zero reports ZE only, even for a denormal
/// dividend.
pub fn div(a: impl Into<Operand>, b: impl Into<Operand>, env: &mut FpEnv) -> F80 {
    let (a, b) = (a.into(), b.into());
    if let Some(r) = special_operands(a.v, b.v, env) {
        return r;
    }
    denormal(b.den || (a.den && b.v.class() != Class::Zero), env);
    let (a, b) = (a.v, b.v);
    let sign = a.sign() != b.sign();
    match (a.class(), b.class()) {
        (Class::Infinity, Class::Infinity) | (Class::Zero, Class::Zero) => invalid(env),
        (Class::Infinity, _) => F80::INFINITY.with_sign(sign),
        (_, Class::Infinity) | (Class::Zero, _) => F80::ZERO.with_sign(sign),
        (_, Class::Zero) => {
            env.raise(ZE);
            F80::INFINITY.with_sign(sign)
        }
        _ => {
            let (x, y) = (unpack(a), unpack(b));
            // Two 64-bit quotient digits of (x.sig << 63) / y.sig: 127 or
            // 128 significant bits, then the remainder as sticky.
            let d = y.sig as u128;
            let n = (x.sig as u128) << 63;
            let (q1, r1) = (n / d, n % d);
            let n2 = r1 << 64;
            let (q2, r2) = (n2 / d, n2 % d);
            let q = (q1 << 64) | q2 | (r2 != 0) as u128;
            norm_round(sign, x.exp - y.exp, q, env.prec, env)
        }
    }
}

/// Integer square root of `m * 4^extra`, digit by digit; whether it is exact.
fn isqrt(m: u128, extra: u32) -> (u128, bool) {
    let pairs = (128 - m.leading_zeros()).div_ceil(2) + extra;
    let (mut root, mut rem) = (0u128, 0u128);
    for i in (0..pairs).rev() {
        let bits = if i >= extra { (m >> (2 * (i - extra))) & 3 } else { 0 };
        rem = (rem << 2) | bits;
        let trial = (root << 2) | 1;
        root <<= 1;
        if rem >= trial {
            rem -= trial;
            root |= 1;
        }
    }
    (root, rem == 0)
}

/// Square root; a negative operand is invalid (no DE even if denormal).
pub fn sqrt(a: F80, env: &mut FpEnv) -> F80 {
    if let Some(r) = special_operands(a, a, env) {
        return r;
    }
    match a.class() {
        Class::Zero => a,
        _ if a.sign() => invalid(env),
        Class::Infinity => a,
        c => {
            denormal(c == Class::Denormal, env);
            let n = unpack(a);
            // value = m * 2^e with e even.
            let mut e = n.exp - 63;
            let mut m = n.sig as u128;
            if e & 1 != 0 {
                m <<= 1;
                e -= 1;
            }
            let (root, exact) = isqrt(m, 64);
            // sqrt = root * 2^(e/2 - 64).
            let lz = root.leading_zeros();
            let sig = (root << lz) | !exact as u128;
            round_ext(false, e / 2 + 63 - lz as i32, sig, env.prec, env)
        }
    }
}

/// The outcome of a comparison.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cmp {
    Greater,
    Less,
    Equal,
    Unordered,
}

/// Compare `a` with `b`. `quiet` (FUCOM): only SNaNs raise IE.
pub fn compare(a: impl Into<Operand>, b: impl Into<Operand>, quiet: bool, env: &mut FpEnv) -> Cmp {
    let (a, b) = (a.into(), b.into());
    let den = a.den || b.den;
    let (a, b) = (a.v, b.v);
    let (ca, cb) = (a.class(), b.class());
    if ca == Class::Unsupported || cb == Class::Unsupported {
        env.raise(IE);
        return Cmp::Unordered;
    }
    if a.is_nan() || b.is_nan() {
        if !quiet || a.is_snan() || b.is_snan() {
            env.raise(IE);
        }
        return Cmp::Unordered;
    }
    denormal(den, env);
    let mag = |x: F80, c: Class| match c {
        Class::Infinity => (i32::MAX, 0),
        _ => {
            let n = unpack(x);
            (n.exp, n.sig)
        }
    };
    let ord = match (ca == Class::Zero, cb == Class::Zero) {
        (true, true) => std::cmp::Ordering::Equal,
        (true, false) if b.sign() => std::cmp::Ordering::Greater,
        (true, false) => std::cmp::Ordering::Less,
        (false, true) if a.sign() => std::cmp::Ordering::Less,
        (false, true) => std::cmp::Ordering::Greater,
        _ if a.sign() != b.sign() => {
            if a.sign() {
                std::cmp::Ordering::Less
            } else {
                std::cmp::Ordering::Greater
            }
        }
        _ => {
            let o = mag(a, ca).cmp(&mag(b, cb));
            if a.sign() {
                o.reverse()
            } else {
                o
            }
        }
    };
    match ord {
        std::cmp::Ordering::Less => Cmp::Less,
        std::cmp::Ordering::Equal => Cmp::Equal,
        std::cmp::Ordering::Greater => Cmp::Greater,
    }
}

/// An IEEE single or double encoding as F80, exactly, keeping SNaNs
/// signaling (the caller decides). The flag says the source was denormal.
fn from_ieee(bits: u64, fmt: Format) -> (F80, bool) {
    let fbits = fmt.prec - 1;
    let ebits = if fmt.prec == 24 { 8 } else { 11 };
    let sign = (bits >> (fbits + ebits)) & 1 != 0;
    let e = ((bits >> fbits) & ((1 << ebits) - 1)) as i32;
    let f = bits & ((1u64 << fbits) - 1);
    let emax_field = (1 << ebits) - 1;
    if e == 0 {
        if f == 0 {
            return (F80::ZERO.with_sign(sign), false);
        }
        // f * 2^(1 - bias - fbits)
        let lz = f.leading_zeros();
        let exp = 1 - fmt.bias - fbits as i32 + (63 - lz as i32);
        return (F80::new(sign, (exp + BIAS) as u16, f << lz), true);
    }
    let mant = J | (f << (64 - fmt.prec));
    if e == emax_field {
        return (F80::new(sign, 0x7FFF, mant), false);
    }
    (F80::new(sign, (e - fmt.bias + BIAS) as u16, mant), false)
}

/// A 32-bit memory operand as an arithmetic operand.
pub fn from_f32(bits: u32) -> (F80, bool) {
    from_ieee(bits as u64, SINGLE)
}

/// A 64-bit memory operand as an arithmetic operand.
pub fn from_f64(bits: u64) -> (F80, bool) {
    from_ieee(bits, DOUBLE)
}

/// FLD m32fp/m64fp: exact, denormals raise DE, SNaNs IE (quieted).
pub fn load(x: F80, denormal: bool, env: &mut FpEnv) -> F80 {
    if denormal {
        env.raise(DE);
    }
    if x.is_snan() {
        env.raise(IE);
        return x.quiet();
    }
    x
}

/// FST m32fp/m64fp: round to `fmt` under RC. With OE/UE unmasked the flag
/// is raised and nothing may be stored.
pub fn store_ieee(x: F80, fmt: Format, env: &mut FpEnv) -> u64 {
    let fbits = fmt.prec - 1;
    let ebits = if fmt.prec == 24 { 8 } else { 11 };
    let sign_bit = (x.sign() as u64) << (fbits + ebits);
    let exp_all = ((1u64 << ebits) - 1) << fbits;
    let frac_mask = (1u64 << fbits) - 1;
    match x.class() {
        Class::Unsupported => {
            env.raise(IE);
            (1u64 << (fbits + ebits)) | exp_all | (1 << (fbits - 1))
        }
        Class::QNaN | Class::SNaN => {
            if x.is_snan() {
                env.raise(IE);
            }
            sign_bit | exp_all | ((x.mant >> (64 - fmt.prec)) & frac_mask) | (1 << (fbits - 1))
        }
        Class::Infinity => sign_bit | exp_all,
        Class::Zero => sign_bit,
        Class::Normal if exact_in(x, fmt) => {
            // (Nothing to round and in range: no exception either.)
            let e = x.exp() as i32 - BIAS + fmt.bias;
            sign_bit | ((e as u64) << fbits) | ((x.mant >> (64 - fmt.prec)) & frac_mask)
        }
        // An extended denormal is stored without DE.
        _ => {
            let n = unpack(x);
            let r = round(n.sign, n.exp, (n.sig as u128) << 64, fmt, false, env);
            sign_bit | ((r.exp as u64) << fbits) | (r.sig & frac_mask)
        }
    }
}

/// Whether normal `x` is a normal number of `fmt` as it is: no
/// significand bits below `fmt`'s precision, its exponent in range.
fn exact_in(x: F80, fmt: Format) -> bool {
    let e = x.exp() as i32 - BIAS + fmt.bias;
    (1..=fmt.emax).contains(&e) && x.mant & ((1u64 << (64 - fmt.prec)) - 1) == 0
}

/// Round a finite nonzero value to an integer magnitude under `rc`:
/// (magnitude, inexact, incremented). Magnitudes of 2^64 and more come
/// back as `u128::MAX`.
fn round_int_mag(n: Num, rc: Rounding) -> (u128, bool, bool) {
    if n.exp >= 64 {
        return (u128::MAX, false, false);
    }
    if n.exp >= 63 {
        return ((n.sig as u128) << (n.exp - 63), false, false);
    }
    if n.exp < -1 {
        let inc = match rc {
            Rounding::Nearest | Rounding::Zero => false,
            Rounding::Down => n.sign,
            Rounding::Up => !n.sign,
        };
        return (inc as u128, true, inc);
    }
    round_bits(n.sig as u128, (63 - n.exp) as u32, n.sign, rc)
}

/// FRNDINT: round to an integral value under RC (64-bit precision).
pub fn round_to_int(a: F80, env: &mut FpEnv) -> F80 {
    if let Some(r) = special_operands(a, a, env) {
        return r;
    }
    match a.class() {
        Class::Zero | Class::Infinity => a,
        c => {
            denormal(c == Class::Denormal, env);
            let n = unpack(a);
            if n.exp >= 63 {
                return a;
            }
            let (m, inexact, up) = round_int_mag(n, env.rc);
            env.inexact(inexact, up);
            F80::from_u64(n.sign, m as u64)
        }
    }
}

/// FIST/FISTP: round under RC to a signed integer of `bits` bits. `None`
/// is an invalid operation (IE raised; the masked response stores the
/// integer indefinite).
pub fn to_int(x: F80, bits: u32, env: &mut FpEnv) -> Option<i64> {
    match x.class() {
        Class::Zero => Some(0),
        Class::Normal | Class::Denormal => {
            let n = unpack(x);
            let (m, inexact, up) = round_int_mag(n, env.rc);
            let limit = 1u128 << (bits - 1);
            if m > limit || (m == limit && !n.sign) {
                env.raise(IE);
                return None;
            }
            env.inexact(inexact, up);
            let v = m as i128;
            Some(if n.sign { -v } else { v } as i64)
        }
        _ => {
            env.raise(IE);
            None
        }
    }
}

/// The packed BCD integer indefinite.
pub const BCD_INDEFINITE: [u8; 10] = [0, 0, 0, 0, 0, 0, 0, 0xC0, 0xFF, 0xFF];

/// FBLD: 18 packed BCD digits and a sign byte, exactly. Invalid digits
/// give an undefined value (here: the nibble taken at face value).
pub fn from_bcd(b: [u8; 10]) -> F80 {
    let mut v: u64 = 0;
    for &byte in b[..9].iter().rev() {
        v = v.wrapping_mul(100).wrapping_add((byte >> 4) as u64 * 10 + (byte & 0xF) as u64);
    }
    F80::from_u64(b[9] & 0x80 != 0, v)
}

/// FBSTP: round under RC and encode as packed BCD; `None` when invalid.
pub fn to_bcd(x: F80, env: &mut FpEnv) -> Option<[u8; 10]> {
    let (sign, mut m) = match x.class() {
        Class::Zero => (x.sign(), 0u128),
        Class::Normal | Class::Denormal => {
            let n = unpack(x);
            let (m, inexact, up) = round_int_mag(n, env.rc);
            if m > 999_999_999_999_999_999 {
                env.raise(IE);
                return None;
            }
            env.inexact(inexact, up);
            (n.sign, m)
        }
        _ => {
            env.raise(IE);
            return None;
        }
    };
    let mut b = [0u8; 10];
    for byte in b[..9].iter_mut() {
        let lo = (m % 10) as u8;
        m /= 10;
        let hi = (m % 10) as u8;
        m /= 10;
        *byte = (hi << 4) | lo;
    }
    b[9] = (sign as u8) << 7;
    Some(b)
}

/// The constants of FLDPI, FLDL2T, FLDL2E, FLDLG2, FLDLN2: 128 bits of
/// significand and the unbiased exponent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Const {
    Pi,
    L2t,
    L2e,
    Lg2,
    Ln2,
}

/// A constant rounded to 64 bits under RC (the P6 rounds its internal
/// constants per RC; no exception is reported).
pub fn constant(k: Const, rc: Rounding) -> F80 {
    let (sig, exp): (u128, i32) = match k {
        Const::Pi => (0xC90F_DAA2_2168_C234_C4C6_628B_80DC_1CD1, 1),
        Const::L2t => (0xD49A_784B_CD1B_8AFE_492B_F6FF_4DAF_DB4C, 1),
        Const::L2e => (0xB8AA_3B29_5C17_F0BB_BE87_FED0_691D_3E88, 0),
        Const::Lg2 => (0x9A20_9A84_FBCF_F798_8F89_59AC_0B7C_9178, -2),
        Const::Ln2 => (0xB172_17F7_D1CF_79AB_C9E3_B398_03F2_F6AF, -1),
    };
    // The constants are irrational: the sticky bit is always set.
    let (m, _, _) = round_bits(sig | 1, 64, false, rc);
    let (m, exp) = if m >> 64 != 0 { (m >> 1, exp + 1) } else { (m, exp) };
    F80::new(false, (exp + BIAS) as u16, m as u64)
}

/// The result of FPREM/FPREM1.
#[derive(Clone, Copy, Debug)]
pub struct Remainder {
    pub value: F80,
    /// The reduction is complete (C2 clear).
    pub complete: bool,
    /// Low bits of the quotient (C0 = Q2, C3 = Q1, C1 = Q0); None for a
    /// NaN or invalid result, which leaves C0 and C3 alone.
    pub q: Option<u64>,
}

/// FPREM (`ieee` false: truncated quotient) and FPREM1 (`ieee`: quotient
/// rounded to nearest even). When the exponents differ by 64 or more only
/// a partial reduction is done (SDM vol. 2, FPREM: `N` between 32 and 63).
pub fn rem(a: F80, b: F80, ieee: bool, env: &mut FpEnv) -> Remainder {
    // A remainder equal to a finite ST(0) still goes through rounding (a
    // pseudo-denormal is normalized, an unmasked underflow bias-adjusts
    // a denormal), as on the host processors.
    let done = |value: F80, env: &mut FpEnv| {
        let value = round_value(value, 64, env);
        Remainder { value, complete: true, q: Some(0) }
    };
    let nan = |value| Remainder { value, complete: true, q: None };
    if let Some(r) = special_operands(a, b, env) {
        return nan(r);
    }
    match (a.class(), b.class()) {
        (Class::Infinity, _) | (_, Class::Zero) => return nan(invalid(env)),
        _ => {}
    }
    denormal(a.class() == Class::Denormal || b.class() == Class::Denormal, env);
    if a.class() == Class::Zero || b.class() == Class::Infinity {
        return Remainder { value: normalize_pseudo(a), complete: true, q: Some(0) };
    }
    let (x, y) = (unpack(a), unpack(b));
    let d = x.exp - y.exp;
    if d < -1 || (d == -1 && !ieee) {
        return done(a, env);
    }
    let (n, complete) = if d >= 64 { (32 + (d - 64) % 32, false) } else { (d, true) };
    // x = A * u and y' = B * u, where u is the unit of the remainder.
    let (big_a, big_b) =
        if n >= 0 { ((x.sig as u128) << n, y.sig as u128) } else { (x.sig as u128, (y.sig as u128) << 1) };
    let mut q = big_a / big_b;
    let mut r = big_a % big_b;
    let mut sign = x.sign;
    if ieee && complete && (2 * r > big_b || (2 * r == big_b && q & 1 != 0)) {
        r = big_b - r;
        q += 1;
        sign = !sign;
    }
    // The unit: 2^(y.exp - 63) scaled by the partial step, or half of it
    // when y's significand was doubled.
    let unit = y.exp - 63 + (d - n) - (n < 0) as i32;
    let value = if r == 0 {
        F80::ZERO.with_sign(x.sign)
    } else {
        let lz = r.leading_zeros();
        round_ext(sign, unit + 127 - lz as i32, r << lz, 64, env)
    };
    Remainder { value, complete, q: Some(q as u64) }
}

impl FpEnv {
    /// A copy with 64-bit precision, for instructions precision control
    /// does not affect.
    pub fn extended_only(&self) -> FpEnv {
        FpEnv { prec: 64, ..*self }
    }
}

/// FSCALE: `a * 2^trunc(b)` (SDM vol. 2, FSCALE, table 3-43).
pub fn scale(a: F80, b: F80, env: &mut FpEnv) -> F80 {
    if let Some(r) = special_operands(a, b, env) {
        return r;
    }
    let (ca, cb) = (a.class(), b.class());
    let invalid_inf = cb == Class::Infinity && matches!((ca, b.sign()), (Class::Zero, false) | (Class::Infinity, true));
    denormal(!invalid_inf && (ca == Class::Denormal || cb == Class::Denormal), env);
    match cb {
        Class::Infinity => {
            return match ca {
                _ if invalid_inf => invalid(env),
                Class::Zero | Class::Infinity => a,
                _ if b.sign() => F80::ZERO.with_sign(a.sign()),
                _ => F80::INFINITY.with_sign(a.sign()),
            }
        }
        _ if matches!(ca, Class::Zero | Class::Infinity) => return a,
        _ => {}
    }
    // |trunc(b)| beyond 2^16 over- or underflows any operand alike.
    let k: i32 = match cb {
        Class::Zero => 0,
        _ => {
            let n = unpack(b);
            let m = if n.exp < 0 {
                0
            } else if n.exp >= 17 {
                1 << 17
            } else {
                (n.sig >> (63 - n.exp)) as i32
            };
            if n.sign {
                -m
            } else {
                m
            }
        }
    };
    if cb == Class::Zero {
        // Unchanged, not even rounded (a denormal does not underflow).
        return normalize_pseudo(a);
    }
    let x = unpack(a);
    round_num(Num { exp: x.exp + k, ..x }, 64, env)
}

/// A pseudo-denormal as the equal normal (exponent 1); anything else as
/// is (an operand passed through unchanged still loses that encoding).
fn normalize_pseudo(a: F80) -> F80 {
    if a.exp() == 0 && a.mant & J != 0 {
        F80::new(a.sign(), 1, a.mant)
    } else {
        a
    }
}

/// FXTRACT: (exponent, significand) of `a`, exponent as a true value and
/// significand with the exponent of 1.0.
pub fn extract(a: F80, env: &mut FpEnv) -> (F80, F80) {
    if let Some(r) = special_operands(a, a, env) {
        return (r, r);
    }
    match a.class() {
        Class::Zero => {
            env.raise(ZE);
            (-F80::INFINITY, a)
        }
        Class::Infinity => (F80::INFINITY, a),
        c => {
            denormal(c == Class::Denormal, env);
            let n = unpack(a);
            (F80::from_i64(n.exp as i64), F80::new(n.sign, BIAS as u16, n.sig))
        }
    }
}

/// The nearest f64 (for the transcendental approximations): round to
/// nearest, NaNs keep their top significand bits.
pub fn to_f64_nearest(x: F80) -> f64 {
    let mut env = FpEnv { rc: Rounding::Nearest, prec: 53, masks: 0x3F, flags: 0, round_up: false, dest: None };
    f64::from_bits(store_ieee(x, DOUBLE, &mut env))
}

/// An f64 as F80, exactly.
pub fn from_f64_exact(v: f64) -> F80 {
    from_f64(v.to_bits()).0
}

/// Round an extended value to `prec` bits under RC (used for results
/// computed by other means).
pub fn round_value(a: F80, prec: u32, env: &mut FpEnv) -> F80 {
    match a.class() {
        Class::Normal | Class::Denormal => round_num(unpack(a), prec, env),
        _ => a,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> FpEnv {
        FpEnv::from_cw(0x037F)
    }

    fn f(v: f64) -> F80 {
        from_f64_exact(v)
    }

    fn back(x: F80) -> f64 {
        to_f64_nearest(x)
    }

    #[test]
    fn exact_arithmetic_on_small_values() {
        let mut e = env();
        assert_eq!(back(add(f(1.5), f(2.25), &mut e)), 3.75);
        assert_eq!(back(sub(f(1.5), f(2.25), &mut e)), -0.75);
        assert_eq!(back(mul(f(1.5), f(-2.25), &mut e)), -3.375);
        assert_eq!(back(div(f(3.375), f(1.5), &mut e)), 2.25);
        assert_eq!(back(sqrt(f(6.25), &mut e)), 2.5);
        assert_eq!(e.flags, 0);
    }

    #[test]
    fn one_third_rounds_per_rounding_control() {
        let mut e = env();
        let third = div(F80::ONE, f(3.0), &mut e);
        assert_eq!(third, F80::new(false, 0x3FFD, 0xAAAA_AAAA_AAAA_AAAB));
        assert_eq!(e.flags, PE);
        assert!(e.round_up);
        let mut e = FpEnv::from_cw(0x037F | (3 << 10));
        let third = div(F80::ONE, f(3.0), &mut e);
        assert_eq!(third.mant, 0xAAAA_AAAA_AAAA_AAAA);
        assert!(!e.round_up);
    }

    #[test]
    fn precision_control_rounds_the_significand_only() {
        // PC = 24 bits: 1/3 has a 24-bit significand but keeps its exponent.
        let mut e = FpEnv::from_cw(0x007F);
        let third = div(F80::ONE, f(3.0), &mut e);
        assert_eq!(third.mant, 0xAAAA_AB00_0000_0000);
        // Far below the single range it is still a normal extended value.
        let tiny = mul(f(1e-300), f(1e-300), &mut e);
        assert_eq!(tiny.class(), Class::Normal);
        assert_eq!(tiny.mant & 0xFF_FFFF_FFFF, 0);
    }

    #[test]
    fn invalid_operations_give_the_indefinite() {
        let mut e = env();
        let inf = F80::INFINITY;
        assert_eq!(sub(inf, inf, &mut e), F80::INDEFINITE);
        assert_eq!(mul(inf, F80::ZERO, &mut e), F80::INDEFINITE);
        assert_eq!(div(F80::ZERO, F80::ZERO, &mut e), F80::INDEFINITE);
        assert_eq!(sqrt(f(-1.0), &mut e), F80::INDEFINITE);
        assert_eq!(e.flags, IE);
        let unnormal = F80::new(false, 0x3FFF, 0x4000_0000_0000_0000);
        assert_eq!(add(unnormal, F80::ONE, &mut e), F80::INDEFINITE);
    }

    #[test]
    fn divide_by_zero_gives_a_signed_infinity() {
        let mut e = env();
        assert_eq!(div(f(-2.0), F80::ZERO, &mut e), -F80::INFINITY);
        assert_eq!(e.flags, ZE);
    }

    #[test]
    fn zero_sums_take_the_sign_from_the_rounding_mode() {
        let mut e = env();
        assert_eq!(sub(F80::ONE, F80::ONE, &mut e), F80::ZERO);
        let mut down = FpEnv::from_cw(0x077F);
        assert_eq!(sub(F80::ONE, F80::ONE, &mut down), -F80::ZERO);
        assert_eq!(add(-F80::ZERO, -F80::ZERO, &mut e), -F80::ZERO);
        assert_eq!(add(F80::ZERO, -F80::ZERO, &mut e), F80::ZERO);
    }

    #[test]
    fn snan_is_quieted_and_qnan_wins_over_snan() {
        let mut e = env();
        let snan = F80::new(false, 0x7FFF, J | 1);
        let qnan = F80::new(true, 0x7FFF, J | QUIET | 5);
        assert_eq!(add(snan, F80::ONE, &mut e), snan.quiet());
        assert_eq!(e.flags, IE);
        let mut e = env();
        assert_eq!(mul(snan, qnan, &mut e), qnan);
        assert_eq!(e.flags, IE);
        let mut e = env();
        let big = F80::new(false, 0x7FFF, J | QUIET | 9);
        assert_eq!(add(qnan, big, &mut e), big);
        assert_eq!(e.flags, 0);
    }

    #[test]
    fn overflow_masked_and_unmasked() {
        let max = F80::new(false, 0x7FFE, u64::MAX);
        let mut e = env();
        assert_eq!(mul(max, f(2.0), &mut e), F80::INFINITY);
        assert_eq!(e.flags, OE | PE);
        let mut chop = FpEnv::from_cw(0x0F7F);
        assert_eq!(mul(max, f(2.0), &mut chop), max);
        // Unmasked: the exponent comes back divided by 2^24576.
        let mut e = FpEnv::from_cw(0x0377);
        let r = mul(max, f(2.0), &mut e);
        assert_eq!(e.flags, OE);
        assert_eq!(r, F80::new(false, (0x7FFF - BIAS_ADJUST) as u16, u64::MAX));
    }

    #[test]
    fn underflow_denormalizes_and_reports_only_when_inexact() {
        let min = F80::new(false, 1, J);
        let mut e = env();
        // Exactly representable as a denormal: no UE when masked.
        let half = mul(min, f(0.5), &mut e);
        assert_eq!(half, F80::new(false, 0, J >> 1));
        assert_eq!(e.flags, 0);
        // Inexact: UE and PE.
        let mut e = env();
        let r = mul(F80::new(false, 1, J | 1), f(0.25), &mut e);
        assert_eq!(r, F80::new(false, 0, J >> 2));
        assert_eq!(e.flags, UE | PE);
        // Unmasked: UE even when exact, bias-adjusted result.
        let mut e = FpEnv::from_cw(0x036F);
        let r = mul(min, f(0.5), &mut e);
        assert_eq!(e.flags, UE);
        assert_eq!(r, F80::new(false, BIAS_ADJUST as u16, J));
    }

    #[test]
    fn denormal_operands_raise_de_and_compute_exactly() {
        let den = F80::new(false, 0, 1);
        let mut e = env();
        let r = add(den, den, &mut e);
        assert_eq!(r, F80::new(false, 0, 2));
        assert_eq!(e.flags, DE);
        // A pseudo-denormal is normalized by arithmetic.
        let pseudo = F80::new(false, 0, J);
        let mut e = env();
        assert_eq!(add(pseudo, F80::ZERO, &mut e), F80::new(false, 1, J));
        assert_eq!(e.flags, DE);
    }

    #[test]
    fn sqrt_of_two_is_correctly_rounded() {
        let mut e = env();
        let r = sqrt(f(2.0), &mut e);
        assert_eq!(r, F80::new(false, 0x3FFF, 0xB504_F333_F9DE_6484));
        assert_eq!(e.flags, PE);
    }

    #[test]
    fn conversions_to_single_and_double_round_and_denormalize() {
        let mut e = env();
        let third = div(F80::ONE, f(3.0), &mut e);
        assert_eq!(store_ieee(third, SINGLE, &mut e) as u32, (1.0f32 / 3.0).to_bits());
        assert_eq!(store_ieee(third, DOUBLE, &mut e), (1.0f64 / 3.0).to_bits());
        let tiny = f(1e-40);
        let mut e = env();
        assert_eq!(store_ieee(tiny, SINGLE, &mut e) as u32, 1e-40f32.to_bits());
        assert_eq!(e.flags, UE | PE);
        let mut e = env();
        assert_eq!(store_ieee(f(1e300), SINGLE, &mut e) as u32, f32::INFINITY.to_bits());
        assert_eq!(e.flags, OE | PE);
        let (x, den) = from_f32(1e-40f32.to_bits());
        assert!(den);
        assert_eq!(back(x), 1e-40f32 as f64);
    }

    #[test]
    fn integer_conversion_rounds_and_checks_range() {
        let mut e = env();
        assert_eq!(to_int(f(2.5), 16, &mut e), Some(2));
        assert_eq!(to_int(f(-3.5), 16, &mut e), Some(-4));
        assert_eq!(to_int(f(-32768.0), 16, &mut e), Some(-32768));
        assert_eq!(to_int(f(32767.6), 16, &mut e), None);
        assert_eq!(to_int(f(-9223372036854775808.0), 64, &mut e), Some(i64::MIN));
        assert_eq!(to_int(f(9223372036854775808.0), 64, &mut e), None);
        let mut up = FpEnv::from_cw(0x0B7F);
        assert_eq!(to_int(f(0.1), 32, &mut up), Some(1));
        assert!(up.round_up);
    }

    #[test]
    fn bcd_round_trips() {
        let mut e = env();
        let v = F80::from_i64(-123_456_789_012_345_678);
        let b = to_bcd(v, &mut e).unwrap();
        assert_eq!(b, [0x78, 0x56, 0x34, 0x12, 0x90, 0x78, 0x56, 0x34, 0x12, 0x80]);
        assert_eq!(from_bcd(b), v);
        assert_eq!(to_bcd(f(1e18), &mut e), None);
    }

    #[test]
    fn remainders() {
        let mut e = env();
        let r = rem(f(7.0), f(2.0), false, &mut e);
        assert_eq!((back(r.value), r.q, r.complete), (1.0, Some(3), true));
        let r = rem(f(7.0), f(2.0), true, &mut e);
        assert_eq!((back(r.value), r.q), (-1.0, Some(4)));
        let r = rem(f(5.0), f(2.0), true, &mut e);
        assert_eq!((back(r.value), r.q), (1.0, Some(2)));
        let r = rem(f(1e30), f(3.0), false, &mut e);
        assert!(!r.complete);
        assert_eq!(e.flags, 0);
        // Finishing the partial reduction gives the exact remainder.
        let mut v = f(1e30);
        loop {
            let r = rem(v, f(3.0), false, &mut e);
            v = r.value;
            if r.complete {
                break;
            }
        }
        assert_eq!(back(v), (1e30f64 as u128 % 3) as f64);
    }

    #[test]
    fn scale_extract_and_round_to_int() {
        let mut e = env();
        assert_eq!(back(scale(f(3.0), f(4.9), &mut e)), 48.0);
        assert_eq!(back(scale(f(3.0), f(-1.5), &mut e)), 1.5);
        let (ex, sig) = extract(f(48.0), &mut e);
        assert_eq!((back(ex), back(sig)), (5.0, 1.5));
        assert_eq!(back(round_to_int(f(2.5), &mut e)), 2.0);
        assert_eq!(back(round_to_int(f(-0.7), &mut e)), -1.0);
        assert_eq!(round_to_int(f(-0.2), &mut e), -F80::ZERO);
    }

    #[test]
    fn constants_follow_the_rounding_mode() {
        assert_eq!(constant(Const::Pi, Rounding::Nearest).mant, 0xC90F_DAA2_2168_C235);
        assert_eq!(constant(Const::Pi, Rounding::Down).mant, 0xC90F_DAA2_2168_C234);
        assert_eq!(constant(Const::Ln2, Rounding::Nearest), F80::new(false, 0x3FFE, 0xB172_17F7_D1CF_79AC));
    }

    #[test]
    fn comparisons_order_zeros_infinities_and_nans() {
        let mut e = env();
        assert_eq!(compare(F80::ZERO, -F80::ZERO, false, &mut e), Cmp::Equal);
        assert_eq!(compare(f(-1.0), f(1.0), false, &mut e), Cmp::Less);
        assert_eq!(compare(f(-1.0), f(-2.0), false, &mut e), Cmp::Greater);
        assert_eq!(compare(F80::INFINITY, f(1e300), false, &mut e), Cmp::Greater);
        assert_eq!(e.flags, 0);
        assert_eq!(compare(F80::INDEFINITE, F80::ONE, true, &mut e), Cmp::Unordered);
        assert_eq!(e.flags, 0);
        assert_eq!(compare(F80::INDEFINITE, F80::ONE, false, &mut e), Cmp::Unordered);
        assert_eq!(e.flags, IE);
    }
}
