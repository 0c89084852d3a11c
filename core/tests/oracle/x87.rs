//! Differential oracle against the host CPU's x87 FPU.
//!
//! The approach of `integer.rs`: random cases are assembled into one
//! hand-built static i386 ELF executable that the host runs natively and
//! ferrite runs in flat 32-bit protected mode (CR0.NE set, as under Linux).
//! A case is a whole FPU state (loaded with FRSTOR), EFLAGS, EAX and a
//! 128-byte data block, then one x87 instruction (sometimes followed by
//! the non-waiting FNSTSW AX); the driver stores the state with FNSAVE
//! right after it, so unmasked exceptions are recorded (ES, B, the
//! bias-adjusted or absent results) without ever being delivered: FNSAVE
//! waits for nothing and reinitializes the FPU before the next case.
//!
//! Compared: the whole FNSAVE image except the FCS, FOP, FDP and FDS
//! fields (a recent host deprecates or defers them), EFLAGS, EAX and the
//! data block. Operands favour the special values: signed zeros,
//! denormals and pseudo-denormals, infinities, QNaNs and SNaNs,
//! unsupported encodings, values near overflow and underflow, integers at
//! the 16/32/64-bit limits, ties, with random rounding and precision
//! control and sometimes unmasked exceptions.
//!
//! The transcendental instructions are computed with f64 in ferrite: they
//! are compared with a tolerance (2^-40 relative) and without PE, UE, C1.
//!
//! Environment: `FERRITE_X87_CASES` and `FERRITE_X87_SEED` override the
//! case count and seed; `FERRITE_ORACLE_VERBOSE` lists the groups.

use super::{env_or, Accel, HostError, Rng};
use ferrite_core::cpu::state::{
    SegReg, Segment, CR0_NE, CR0_PE, SEG_ACCESSED, SEG_CODE, SEG_DB, SEG_G, SEG_P, SEG_RW, SEG_S,
};
use ferrite_core::{Cpu, GuestMemory, NullBus, PhysAddr, StepOutcome};
use iced_x86::IcedError;
use std::collections::BTreeMap;
use std::time::Instant;

const BASE: u32 = 0x0010_0000;
const DRIVER: u32 = BASE + 0x100;
const GLOBALS: u32 = BASE + 0x1000;
const G_IN: u32 = GLOBALS;
const G_OUT: u32 = GLOBALS + 4;
const G_TAB: u32 = GLOBALS + 8;
const G_TARGET: u32 = GLOBALS + 12;
const G_EAX: u32 = GLOBALS + 16;
/// The driver's stack (PUSH/POPFD only), below the data block's page.
const STACK_TOP: u32 = BASE + 0x2000;
/// The data block straddles a page boundary at its middle.
const BLOCK: usize = 128;
const SCRATCH: u32 = BASE + 0x3000 - BLOCK as u32 / 2;
const SNIPPETS: u32 = BASE + 0x4000;
/// Record (input and output alike): FNSAVE image, EFLAGS, EAX, data.
const R_FLAGS: usize = 108;
const R_EAX: usize = 112;
const R_DATA: usize = 116;
const REC: usize = R_DATA + BLOCK;

/// Cases per run of the interpreter's oracle in CI.
pub const DEFAULT_CASES: usize = 150_000;
const DEFAULT_SEED: u64 = 0x0087_F00D_5EED_2024;

/// Arithmetic flags (CF PF AF ZF SF OF): FCOMI writes them.
const ARITH: u32 = 0x8D5;
/// Selectors of a Linux i386 process (the host's; ferrite uses the same).
const USER_CS: u16 = 0x23;
const USER_DS: u16 = 0x2B;

/// An x87 register value: sign+exponent and significand.
#[derive(Clone, Copy, Debug)]
struct V {
    se: u16,
    m: u64,
}

const J: u64 = 1 << 63;

impl V {
    fn new(sign: bool, exp: u16, m: u64) -> V {
        V { se: ((sign as u16) << 15) | (exp & 0x7FFF), m }
    }
    fn bytes(self) -> [u8; 10] {
        let mut b = [0u8; 10];
        b[..8].copy_from_slice(&self.m.to_le_bytes());
        b[8..].copy_from_slice(&self.se.to_le_bytes());
        b
    }
    fn from_bytes(b: &[u8]) -> V {
        V { m: u64::from_le_bytes(b[..8].try_into().unwrap()), se: u16::from_le_bytes([b[8], b[9]]) }
    }
    /// An integer, exactly.
    fn int(v: i128) -> V {
        if v == 0 {
            return V::new(false, 0, 0);
        }
        let a = v.unsigned_abs();
        let lz = a.leading_zeros() as i32;
        let e = 127 - lz;
        let m = if e >= 63 { (a >> (e - 63)) as u64 } else { (a << (63 - e)) as u64 };
        V::new(v < 0, (0x3FFF + e) as u16, m)
    }
    fn f64(x: f64) -> V {
        if x == 0.0 {
            return V::new(x.is_sign_negative(), 0, 0);
        }
        let b = x.to_bits();
        let e = ((b >> 52) & 0x7FF) as i32;
        let f = b & ((1 << 52) - 1);
        if e == 0x7FF {
            return V::new(x.is_sign_negative(), 0x7FFF, J | (f << 11));
        }
        if e == 0 {
            let lz = f.leading_zeros() as i32;
            return V::new(x.is_sign_negative(), (0x3FFF - 1022 - 52 + 63 - lz) as u16, f << lz);
        }
        V::new(x.is_sign_negative(), (e - 1023 + 0x3FFF) as u16, J | (f << 11))
    }
    fn exp(self) -> i32 {
        (self.se & 0x7FFF) as i32
    }
    fn neg(self) -> V {
        V { se: self.se ^ 0x8000, m: self.m }
    }
}

/// A register value, biased toward the special encodings.
fn value(rng: &mut Rng) -> V {
    let sign = rng.chance(1, 2);
    let r = rng.next();
    let v = match rng.below(24) {
        0 => V::new(sign, 0, 0),
        1 => V::new(sign, 0x7FFF, J),
        2 => V::new(sign, 0x7FFF, J | (1 << 62) | (r >> rng.below(64) & ((1 << 62) - 1))),
        3 => V::new(sign, 0x7FFF, J | ((r >> 2) | 1) >> rng.below(62)),
        4 => V::new(true, 0x7FFF, 0xC000_0000_0000_0000),
        5 => V::new(sign, 0, (r >> rng.below(64)) & !J),
        6 if rng.chance(1, 2) => V::new(sign, 0, J | r),
        // Unnormals, pseudo-infinities and pseudo-NaNs.
        6 => {
            let e = 1 + rng.below(0x7FFE) as u16;
            V::new(sign, rng.pick(&[0x7FFF, e]), r & !J)
        }
        7 => {
            let e = 0x7FFE - rng.below(70) as u16;
            let ones = rng.pick(&[!0, 0]);
            V::new(sign, rng.pick(&[0x7FFE, 0x7FFD, e]), J | r | ones)
        }
        8 => V::new(sign, 1 + rng.below(70) as u16, J | r),
        9 => {
            let e = rng.pick(&[15, 16, 31, 32, 63, 64, 62]);
            let d = rng.below(5) as i128 - 2;
            V::int(((1i128 << e) + d) * if sign { -1 } else { 1 })
        }
        10 => V::int((rng.below(2001) as i128 - 1000) * if rng.chance(1, 2) { 1 } else { 1 << rng.below(40) }),
        11 => {
            // Few significant bits: exact results and rounding ties.
            let keep = 1 + rng.below(8);
            V::new(sign, (0x3FFF + rng.below(16) as i32 - 8) as u16, J | (r & !(u64::MAX >> keep)))
        }
        12 => {
            let e = (0x3FFF + rng.below(8) as i32 - 4) as u16;
            V::new(sign, e, J | (r >> 11 << 11) | rng.pick(&[0, 1 << 10, 0x3FF, 0x400, 0x7FF]))
        }
        13 => V::f64(f64::from_bits(r) % 1e6),
        _ => V::new(sign, (0x3FFF + rng.below(141) as i32 - 70) as u16, J | r),
    };
    if sign && rng.chance(1, 8) {
        v.neg()
    } else {
        v
    }
}

/// A 32- or 64-bit IEEE memory operand, biased toward special encodings.
fn ieee(rng: &mut Rng, double: bool) -> u64 {
    let (fbits, ebits) = if double { (52, 11) } else { (23, 8) };
    let sign = (rng.chance(1, 2) as u64) << (fbits + ebits);
    let emax = (1u64 << ebits) - 1;
    let fmask = (1u64 << fbits) - 1;
    let r = rng.next() & fmask;
    let (e, f) = match rng.below(14) {
        0 => (0, 0),
        1 => (0, (r >> rng.below(fbits)).max(1)),
        2 => (emax, 0),
        3 => (emax, r | (1 << (fbits - 1))),
        4 => (emax, (r & !(1 << (fbits - 1))).max(1)),
        5 => (emax - 1, r | rng.pick(&[0, fmask])),
        6 => (1 + rng.below(3) as u64, r),
        7 => ((emax >> 1) + rng.below(20) as u64, r & !(fmask >> rng.below(8))),
        _ => ((emax >> 1) + rng.below(200) as u64 - 100, r),
    };
    sign | (e << fbits) | f
}

/// An integer memory operand of `bits` bits, biased toward the limits.
fn int(rng: &mut Rng, bits: u32) -> u64 {
    let m = if bits == 64 { u64::MAX } else { (1 << bits) - 1 };
    let s = 1u64 << (bits - 1);
    let v = match rng.below(8) {
        0 => 0,
        1 => s,
        2 => s - 1,
        3 => m,
        4 => s.wrapping_add(rng.below(4) as u64),
        5 => rng.below(100) as u64,
        _ => rng.next(),
    };
    v & m
}

/// Packed BCD with valid digits.
fn bcd(rng: &mut Rng) -> [u8; 10] {
    let mut b = [0u8; 10];
    let digits = rng.pick(&[18, 18, 1, 5, 10, 17]);
    for k in 0..digits {
        let d = if rng.chance(1, 4) { 9 } else { rng.below(10) as u8 };
        b[k / 2] |= d << (4 * (k % 2));
    }
    b[9] = if rng.chance(1, 2) { 0x80 } else { 0 };
    b
}

/// How a case is compared.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Exact,
    /// Transcendentals: register values within a tolerance; PE, UE, C1
    /// (and C0, C3) not compared.
    Approx,
}

#[derive(Clone)]
struct Case {
    name: String,
    bytes: Vec<u8>,
    fpu: [u8; 108],
    eflags: u32,
    eax: u32,
    mem: [u8; BLOCK],
    mode: Mode,
    /// Data-block ranges not compared (pointer fields of stored images).
    skip: Vec<(usize, usize)>,
}

struct Gen<'a> {
    rng: &'a mut Rng,
    c: Case,
}

impl<'a> Gen<'a> {
    fn new(rng: &'a mut Rng) -> Gen<'a> {
        let mut fpu = [0u8; 108];
        let masks = if rng.chance(3, 4) { 0x3F } else { rng.u32() as u16 & 0x3F };
        let pc = rng.pick(&[3u16, 3, 3, 2, 0, 1]);
        let mut cw = masks | pc << 8 | (rng.below(4) as u16) << 10 | 0x40;
        if rng.chance(1, 16) {
            cw |= rng.u32() as u16 & 0xF080;
        }
        // Pending flags only where masked: nothing may be pending.
        let flags = rng.u32() as u16 & masks & if rng.chance(1, 2) { 0x3F } else { 0 };
        let sw = flags | (rng.u32() as u16 & 0x4700) | (rng.below(8) as u16) << 11 | (rng.chance(1, 8) as u16) << 6;
        let mut tw = 0u16;
        for r in 0..8 {
            let t = if rng.chance(1, 6) { 3 } else { rng.below(3) as u16 };
            tw |= t << (2 * r);
        }
        let words = [0xFFFF_0000 | cw as u32, 0xFFFF_0000 | sw as u32, 0xFFFF_0000 | tw as u32];
        for (k, w) in words.iter().enumerate() {
            fpu[4 * k..4 * k + 4].copy_from_slice(&w.to_le_bytes());
        }
        let (fip, fop, fdp) = (rng.u32(), rng.u32() & 0x7FF, rng.u32());
        fpu[12..16].copy_from_slice(&fip.to_le_bytes());
        fpu[16..20].copy_from_slice(&(USER_CS as u32 | fop << 16).to_le_bytes());
        fpu[20..24].copy_from_slice(&fdp.to_le_bytes());
        fpu[24..28].copy_from_slice(&(0xFFFF_0000 | USER_DS as u32).to_le_bytes());
        for k in 0..8 {
            let v = value(rng);
            fpu[28 + 10 * k..38 + 10 * k].copy_from_slice(&v.bytes());
        }
        let eflags = (rng.u32() & ARITH) | 0x202;
        let mut mem = [0u8; BLOCK];
        for b in mem.iter_mut() {
            *b = rng.u32() as u8;
        }
        let c = Case {
            name: String::new(),
            bytes: Vec::new(),
            fpu,
            eflags,
            eax: rng.u32(),
            mem,
            mode: Mode::Exact,
            skip: Vec::new(),
        };
        Gen { rng, c }
    }

    fn byte(&mut self, b: u8) {
        self.c.bytes.push(b);
    }

    fn top(&self) -> u8 {
        ((u16::from_le_bytes([self.c.fpu[4], self.c.fpu[5]]) >> 11) & 7) as u8
    }

    fn set_tag(&mut self, i: u8, empty: bool) {
        let p = ((self.top() + i) & 7) as u32;
        let mut tw = u16::from_le_bytes([self.c.fpu[8], self.c.fpu[9]]);
        tw &= !(3 << (2 * p));
        if empty {
            tw |= 3 << (2 * p);
        }
        self.c.fpu[8..10].copy_from_slice(&tw.to_le_bytes());
    }

    /// Set ST(i) (valid).
    fn set_st(&mut self, i: u8, v: V) {
        let o = 28 + 10 * i as usize;
        self.c.fpu[o..o + 10].copy_from_slice(&v.bytes());
        self.set_tag(i, false);
    }

    fn st(&self, i: u8) -> V {
        let o = 28 + 10 * i as usize;
        V::from_bytes(&self.c.fpu[o..o + 10])
    }

    /// Make ST(0..n) valid most of the time (the stack-fault paths still
    /// get their share from the random tags).
    fn valid(&mut self, n: u8) {
        for i in 0..n {
            if self.rng.chance(15, 16) {
                self.set_tag(i, false);
            }
        }
    }

    /// Mark ST(7) empty most of the time, so a push usually fits.
    fn room(&mut self) {
        if self.rng.chance(7, 8) {
            self.set_tag(7, true);
        }
    }

    /// A ModRM memory operand ([disp32], sometimes with a segment
    /// override before the opcode) for `size` bytes; returns its offset.
    fn mem(&mut self, opcode: u8, reg: u8, size: usize) -> usize {
        let off = if self.rng.chance(1, 2) {
            self.rng.below(((BLOCK - size) / 8 + 1) as u32) as usize * 8
        } else {
            self.rng.below((BLOCK - size + 1) as u32) as usize
        };
        if self.rng.chance(1, 8) {
            let p = self.rng.pick(&[0x26, 0x36, 0x3E]);
            self.byte(p);
        }
        self.byte(opcode);
        self.byte((reg << 3) | 5);
        self.c.bytes.extend_from_slice(&(SCRATCH + off as u32).to_le_bytes());
        off
    }

    fn put(&mut self, off: usize, b: &[u8]) {
        self.c.mem[off..off + b.len()].copy_from_slice(b);
    }

    fn finish(mut self, name: String) -> Case {
        self.c.name = name;
        self.c
    }
}

const ARITH_NAMES: [&str; 8] = ["fadd", "fmul", "fcom", "fcomp", "fsub", "fsubr", "fdiv", "fdivr"];

/// D8/DC/DA/DE /r with a memory operand: m32fp, m64fp, m32int, m16int.
fn gen_arith_mem(g: &mut Gen) -> String {
    let op = g.rng.below(8) as u8;
    g.valid(1);
    let (opc, kind) = g.rng.pick(&[(0xD8u8, "m32"), (0xDC, "m64"), (0xDA, "m32i"), (0xDE, "m16i")]);
    let size = match opc {
        0xD8 | 0xDA => 4,
        0xDC => 8,
        _ => 2,
    };
    let off = g.mem(opc, op, size);
    let v = match opc {
        0xD8 => ieee(g.rng, false),
        0xDC => ieee(g.rng, true),
        0xDA => int(g.rng, 32),
        _ => int(g.rng, 16),
    };
    g.put(off, &v.to_le_bytes()[..size]);
    if g.rng.chance(1, 4) {
        g.c.bytes.extend_from_slice(&[0xDF, 0xE0]);
    }
    format!("{}_{kind}", ARITH_NAMES[op as usize])
}

/// The register forms: D8 (ST0 op STi), DC (STi op ST0, FCOM2/FCOMP3
/// aliases), DE (the popping forms, FCOMP5, FCOMPP).
fn gen_arith_reg(g: &mut Gen) -> String {
    let opc = g.rng.pick(&[0xD8u8, 0xDC, 0xDE]);
    let op = g.rng.below(8) as u8;
    let i = g.rng.below(8) as u8;
    if opc == 0xDE && op == 3 {
        // DE D9 is FCOMPP; DE D8/DA-DF are undefined.
        g.valid(2);
        g.c.bytes.extend_from_slice(&[0xDE, 0xD9, 0xDF, 0xE0]);
        return "fcompp".into();
    }
    g.valid(1);
    if g.rng.chance(15, 16) {
        g.set_tag(i, false);
    }
    if g.rng.chance(1, 3) {
        // Equal, opposite or nearly equal operands: cancellation, exact
        // zeros and their signs.
        let mut v = g.st(0);
        if g.rng.chance(1, 2) {
            v = v.neg();
        }
        if g.rng.chance(1, 2) {
            v.m = v.m.wrapping_add(g.rng.below(64) as u64).wrapping_sub(32) | (v.m & J);
        }
        g.set_st(i, v);
    }
    g.byte(opc);
    g.byte(0xC0 | op << 3 | i);
    let suffix = match opc {
        0xD8 => "st0_sti",
        0xDC => "sti_st0",
        _ => "p",
    };
    format!("{}_{suffix}", ARITH_NAMES[op as usize])
}

fn gen_compare(g: &mut Gen) -> String {
    g.valid(2);
    let i = g.rng.below(8) as u8;
    if g.rng.chance(15, 16) {
        g.set_tag(i, false);
    }
    if g.rng.chance(1, 4) {
        let v = g.st(0);
        g.set_st(i, v);
    }
    let (bytes, name): (Vec<u8>, &str) = match g.rng.below(10) {
        0 => (vec![0xDD, 0xE0 | i], "fucom"),
        1 => (vec![0xDD, 0xE8 | i], "fucomp"),
        2 => (vec![0xDA, 0xE9], "fucompp"),
        3 => (vec![0xDB, 0xF0 | i], "fcomi"),
        4 => (vec![0xDB, 0xE8 | i], "fucomi"),
        5 => (vec![0xDF, 0xF0 | i], "fcomip"),
        6 => (vec![0xDF, 0xE8 | i], "fucomip"),
        7 => (vec![0xD9, 0xE4], "ftst"),
        _ => (vec![0xD9, 0xE5], "fxam"),
    };
    g.c.bytes.extend_from_slice(&bytes);
    if g.rng.chance(1, 2) {
        g.c.bytes.extend_from_slice(&[0xDF, 0xE0]);
    }
    name.into()
}

fn gen_load(g: &mut Gen) -> String {
    g.room();
    let k = g.rng.below(9);
    let (opc, reg, size, name) = match k {
        0 => (0xD9u8, 0u8, 4, "fld_m32"),
        1 => (0xDD, 0, 8, "fld_m64"),
        2 => (0xDB, 5, 10, "fld_m80"),
        3 => (0xDF, 0, 2, "fild_m16"),
        4 => (0xDB, 0, 4, "fild_m32"),
        5 => (0xDF, 5, 8, "fild_m64"),
        6 => (0xDF, 4, 10, "fbld"),
        7 => {
            let i = g.rng.below(8) as u8;
            g.c.bytes.extend_from_slice(&[0xD9, 0xC0 | i]);
            return "fld_sti".into();
        }
        _ => {
            let c = g.rng.below(7) as u8;
            g.c.bytes.extend_from_slice(&[0xD9, 0xE8 + c]);
            return ["fld1", "fldl2t", "fldl2e", "fldpi", "fldlg2", "fldln2", "fldz"][c as usize].into();
        }
    };
    let off = g.mem(opc, reg, size);
    let b: Vec<u8> = match k {
        0 => (ieee(g.rng, false) as u32).to_le_bytes().to_vec(),
        1 => ieee(g.rng, true).to_le_bytes().to_vec(),
        2 => value(g.rng).bytes().to_vec(),
        3 => (int(g.rng, 16) as u16).to_le_bytes().to_vec(),
        4 => (int(g.rng, 32) as u32).to_le_bytes().to_vec(),
        5 => int(g.rng, 64).to_le_bytes().to_vec(),
        _ => bcd(g.rng).to_vec(),
    };
    g.put(off, &b);
    name.into()
}

/// A value for integer and BCD stores: near the limits and at ties.
fn int_target(rng: &mut Rng) -> V {
    let sign = rng.chance(1, 2);
    let e = rng.pick(&[15, 31, 63, 59, 60, 3, 0]);
    let base = if e == 59 || e == 60 { 999_999_999_999_999_999i128 } else { 1i128 << e };
    let frac = rng.pick(&[0.0, 0.5, 0.25, 0.75, -0.5, -0.25, 0.4999, 1.0, -1.0]);
    // base + frac with 64 significant bits (frac as a multiple of 2^-16).
    let scaled = (base << 16) + (frac * 65536.0) as i128;
    if scaled == 0 {
        return V::new(sign, 0, 0);
    }
    let v = V::int(scaled);
    let v = V::new(sign, (v.exp() - 16) as u16, v.m);
    if rng.chance(1, 3) {
        value(rng)
    } else {
        v
    }
}

fn gen_store(g: &mut Gen) -> String {
    g.valid(1);
    let k = g.rng.below(14);
    let (opc, reg, size, name) = match k {
        0 => (0xD9u8, 2u8, 4, "fst_m32"),
        1 => (0xD9, 3, 4, "fstp_m32"),
        2 => (0xDD, 2, 8, "fst_m64"),
        3 => (0xDD, 3, 8, "fstp_m64"),
        4 => (0xDB, 7, 10, "fstp_m80"),
        5 => (0xDF, 2, 2, "fist_m16"),
        6 => (0xDF, 3, 2, "fistp_m16"),
        7 => (0xDB, 2, 4, "fist_m32"),
        8 => (0xDB, 3, 4, "fistp_m32"),
        9 => (0xDF, 7, 8, "fistp_m64"),
        10 => (0xDF, 6, 10, "fbstp"),
        _ => {
            let i = g.rng.below(8) as u8;
            let (b, name) = g.rng.pick(&[
                ([0xDD, 0xD0 | i], "fst_sti"),
                ([0xDD, 0xD8 | i], "fstp_sti"),
                ([0xD9, 0xD8 | i], "fstp1_sti"),
                ([0xDF, 0xD0 | i], "fstp8_sti"),
                ([0xDF, 0xD8 | i], "fstp9_sti"),
            ]);
            g.c.bytes.extend_from_slice(&b);
            return name.into();
        }
    };
    if (5..=10).contains(&k) {
        let v = int_target(g.rng);
        g.set_st(0, v);
    }
    g.mem(opc, reg, size);
    name.into()
}

fn gen_misc(g: &mut Gen) -> String {
    let i = g.rng.below(8) as u8;
    g.valid(1);
    let (b, name): (Vec<u8>, &str) = match g.rng.below(12) {
        0 => (vec![g.rng.pick(&[0xD9, 0xDD, 0xDF]), 0xC8 | i], "fxch"),
        1 | 2 => {
            let cc = g.rng.below(8) as u8;
            (vec![if cc < 4 { 0xDA } else { 0xDB }, 0xC0 | (cc & 3) << 3 | i], "fcmov")
        }
        3 => (vec![0xD9, 0xE0], "fchs"),
        4 => (vec![0xD9, 0xE1], "fabs"),
        5 => (vec![0xDD, 0xC0 | i], "ffree"),
        6 => (vec![0xDF, 0xC0 | i], "ffreep"),
        7 => (vec![0xD9, 0xF7], "fincstp"),
        8 => (vec![0xD9, 0xF6], "fdecstp"),
        9 => (vec![0xD9, 0xD0], "fnop"),
        10 => (vec![0xDB, g.rng.pick(&[0xE0, 0xE1, 0xE4])], "fneni_fndisi_fnsetpm"),
        _ => (vec![0xDF, 0xE0], "fnstsw_ax"),
    };
    if g.rng.chance(15, 16) {
        g.set_tag(i, false);
    }
    g.c.bytes.extend_from_slice(&b);
    name.into()
}

/// FSQRT FRNDINT FSCALE FXTRACT FPREM FPREM1 with operands shaped for them.
fn gen_unary(g: &mut Gen) -> String {
    g.valid(2);
    let k = g.rng.below(6);
    let x = g.st(0);
    match k {
        0 => {
            if g.rng.chance(3, 4) && x.se & 0x8000 != 0 {
                g.set_st(0, x.neg());
            }
        }
        1 => {
            if g.rng.chance(1, 2) {
                let frac = g.rng.pick(&[0.5, 0.25, 0.75, 0.0, 0.9999, 0.0001]);
                let n = g.rng.below(20) as f64 - 10.0;
                let v = V::f64(n + if n < 0.0 { -frac } else { frac });
                g.set_st(0, v);
            }
        }
        2 => {
            if g.rng.chance(3, 4) {
                let s = match g.rng.below(4) {
                    0 => V::f64(g.rng.below(200) as f64 - 100.0),
                    1 => V::f64((g.rng.below(80000) as f64 - 40000.0) / g.rng.pick(&[1.0, 3.0, 7.5])),
                    2 => V::int(g.rng.pick(&[16383i128, 16384, -16383, -16445, -16446, 32767, 24576, -24576])),
                    _ => value(g.rng),
                };
                g.set_st(1, s);
            }
        }
        3 => g.room(),
        _ => {
            if g.rng.chance(3, 4) {
                let y = g.st(1);
                let d = match g.rng.below(5) {
                    0 => g.rng.below(7) as i32 - 3,
                    1 => g.rng.below(64) as i32,
                    2 => 60 + g.rng.below(10) as i32,
                    3 => 64 + g.rng.below(140) as i32,
                    _ => g.rng.below(400) as i32,
                };
                let e = (y.exp() + d).clamp(1, 0x7FFE);
                let m = J | g.rng.next();
                let sign = g.rng.chance(1, 2);
                g.set_st(0, V::new(sign, e as u16, m));
            }
        }
    }
    let op = [0xFA, 0xFC, 0xFD, 0xF4, 0xF8, 0xF5][k as usize];
    g.c.bytes.extend_from_slice(&[0xD9, op]);
    ["fsqrt", "frndint", "fscale", "fxtract", "fprem", "fprem1"][k as usize].into()
}

/// A random environment or state image for FLDENV/FRSTOR in the block.
fn random_image(g: &mut Gen, off: usize, op32: bool, regs: bool) {
    let mut other = Gen::new(g.rng);
    // Sometimes an image with an unmasked pending exception (ES is then
    // set by the load, and FNSAVE stores it without faulting).
    if other.rng.chance(1, 4) {
        other.c.fpu[4] |= other.rng.u32() as u8 & 0x3F;
    }
    let img = other.c.fpu;
    let mut out = Vec::new();
    if op32 {
        out.extend_from_slice(&img[..28]);
    } else {
        for k in 0..7 {
            out.extend_from_slice(&img[4 * k..4 * k + 2]);
        }
    }
    if regs {
        out.extend_from_slice(&img[28..108]);
    }
    g.put(off, &out);
}

fn gen_control(g: &mut Gen) -> String {
    let op32 = g.rng.chance(3, 4);
    let p66 = |g: &mut Gen| {
        if !op32 {
            g.byte(0x66);
        }
    };
    let env_len = if op32 { 28 } else { 14 };
    let ptr_fields = if op32 { (12, 28) } else { (6, 14) };
    match g.rng.below(10) {
        0 => {
            g.c.bytes.extend_from_slice(&[0xDB, 0xE3]);
            "fninit".into()
        }
        1 => {
            g.c.bytes.extend_from_slice(&[0xDB, 0xE2]);
            "fnclex".into()
        }
        2 => {
            let off = g.mem(0xD9, 5, 2);
            let v = g.rng.u32() as u16;
            let v = if g.rng.chance(1, 2) { v } else { (v & 0x0F00) | 0x7F };
            g.put(off, &v.to_le_bytes());
            "fldcw".into()
        }
        3 => {
            g.mem(0xD9, 7, 2);
            "fnstcw".into()
        }
        4 => {
            g.mem(0xDD, 7, 2);
            "fnstsw_m16".into()
        }
        5 => {
            p66(g);
            let off = g.mem(0xD9, 6, env_len);
            g.c.skip.push((off + ptr_fields.0, off + ptr_fields.1));
            format!("fnstenv{}", env_len)
        }
        6 => {
            p66(g);
            let off = g.mem(0xD9, 4, env_len);
            random_image(g, off, op32, false);
            format!("fldenv{}", env_len)
        }
        7 => {
            p66(g);
            let off = g.mem(0xDD, 6, env_len + 80);
            g.c.skip.push((off + ptr_fields.0, off + ptr_fields.1));
            format!("fnsave{}", env_len + 80)
        }
        _ => {
            p66(g);
            let off = g.mem(0xDD, 4, env_len + 80);
            random_image(g, off, op32, true);
            format!("frstor{}", env_len + 80)
        }
    }
}

/// F2XM1 FYL2X FPTAN FPATAN FYL2XP1 FSINCOS FSIN FCOS, mostly in their
/// domains, all exceptions masked.
fn gen_trans(g: &mut Gen) -> String {
    g.c.mode = Mode::Approx;
    let cw = u16::from_le_bytes([g.c.fpu[0], g.c.fpu[1]]) | 0x3F;
    g.c.fpu[0..2].copy_from_slice(&cw.to_le_bytes());
    g.valid(2);
    g.room();
    let k = g.rng.below(8) as usize;
    let op = [0xF0, 0xF1, 0xF2, 0xF3, 0xF9, 0xFB, 0xFE, 0xFF][k];
    // Outside its domain FYL2XP1 is undefined: only in-range and special
    // operands for it.
    let fits = |v: V| v.exp() < 0x3FFD || v.exp() == 0x7FFF && v.m << 1 != 0;
    if g.rng.chance(3, 4) || (op == 0xF9 && !fits(g.st(0))) {
        let r = (g.rng.u32() as f64 / u32::MAX as f64) * 2.0 - 1.0;
        let x = match op {
            0xF0 => r,
            0xF1 => (r + 1.0) * g.rng.pick(&[1.0, 1e3, 1e-3, 1e30]),
            // The domain of FYL2XP1: |x| < 1 - sqrt(2)/2.
            0xF9 => r * 0.29,
            0xF3 => r * 100.0,
            _ => r * g.rng.pick(&[1.0, 3.0, 100.0, 1e5]),
        };
        g.set_st(0, V::f64(x));
        if g.rng.chance(1, 2) {
            let y = (g.rng.u32() as f64 / u32::MAX as f64) * 20.0 - 10.0;
            g.set_st(1, V::f64(y));
        }
    }
    g.c.bytes.extend_from_slice(&[0xD9, op]);
    ["f2xm1", "fyl2x", "fptan", "fpatan", "fyl2xp1", "fsincos", "fsin", "fcos"][k].into()
}

/// Two to four numeric instructions in a row with all exceptions masked:
/// the stack, tags and status carry from one to the next.
fn gen_sequence(g: &mut Gen) -> String {
    let cw = u16::from_le_bytes([g.c.fpu[0], g.c.fpu[1]]) | 0x3F;
    g.c.fpu[0..2].copy_from_slice(&cw.to_le_bytes());
    g.valid(3);
    let n = 2 + g.rng.below(3);
    for _ in 0..n {
        let i = g.rng.below(8) as u8;
        let b: Vec<u8> = match g.rng.below(12) {
            0 => vec![0xD9, 0xC0 | i],
            1 => vec![0xD9, 0xE8 + g.rng.below(7) as u8],
            2 => vec![0xD8, 0xC0 | (g.rng.below(8) as u8) << 3 | i],
            3 => vec![0xDE, 0xC0 | [0u8, 1, 4, 5, 6, 7][g.rng.below(6) as usize] << 3 | i],
            4 => vec![0xDD, 0xD8 | i],
            5 => vec![0xD9, 0xC8 | i],
            6 => vec![0xD9, [0xFA, 0xFC, 0xFD, 0xF4, 0xF8, 0xE0, 0xE1][g.rng.below(7) as usize]],
            7 => vec![0xDB, 0xE8 | i],
            8 => vec![0xDD, 0xE0 | i],
            9 => vec![0xD9, 0xF7],
            10 => {
                let off = g.rng.below(BLOCK as u32 / 8) * 8;
                let mut v = vec![0xDD, 0x05];
                v.extend_from_slice(&(SCRATCH + off).to_le_bytes());
                v
            }
            _ => {
                let off = g.rng.below(BLOCK as u32 / 8) * 8;
                let mut v = vec![0xDD, 0x1D];
                v.extend_from_slice(&(SCRATCH + off).to_le_bytes());
                v
            }
        };
        g.c.bytes.extend_from_slice(&b);
    }
    g.c.bytes.extend_from_slice(&[0xDF, 0xE0]);
    "sequence".into()
}

type Family = fn(&mut Gen) -> String;

fn generate(n: usize, seed: u64) -> Vec<Case> {
    let families: [(u32, Family); 10] = [
        (8, gen_sequence),
        (20, gen_arith_mem),
        (20, gen_arith_reg),
        (12, gen_compare),
        (12, gen_load),
        (16, gen_store),
        (8, gen_misc),
        (14, gen_unary),
        (8, gen_control),
        (6, gen_trans),
    ];
    let total: u32 = families.iter().map(|f| f.0).sum();
    let mut rng = Rng(seed | 1);
    let mut cases = Vec::with_capacity(n);
    while cases.len() < n {
        let mut pick = rng.below(total);
        let mut fam = families[0].1;
        for (w, f) in families {
            if pick < w {
                fam = f;
                break;
            }
            pick -= w;
        }
        let mut g = Gen::new(&mut rng);
        let name = fam(&mut g);
        cases.push(g.finish(name));
    }
    cases
}

struct Image {
    bytes: Vec<u8>,
    memsz: u32,
    done: u32,
    out: u32,
    cases: usize,
}

fn align(v: u32, a: u32) -> u32 {
    (v + a - 1) & !(a - 1)
}

/// The driver: per case copy the data block in, FRSTOR the state, load
/// EAX and EFLAGS, run the snippet; at `save` FNSAVE first, then EFLAGS,
/// EAX and the block. At the end write the records and exit (ferrite's
/// copy halts there).
fn driver(tab: u32, inp: u32, out: u32, out_len: u32) -> Result<(Vec<u8>, u32, u32), IcedError> {
    use iced_x86::code_asm::*;
    let mut a = CodeAssembler::new(32)?;
    let mut next = a.create_label();
    let mut save = a.create_label();
    let mut done = a.create_label();
    a.cld()?;
    a.mov(esp, STACK_TOP)?;
    a.mov(dword_ptr(G_IN), inp)?;
    a.mov(dword_ptr(G_OUT), out)?;
    a.mov(dword_ptr(G_TAB), tab)?;
    a.set_label(&mut next)?;
    a.mov(eax, dword_ptr(G_TAB))?;
    a.mov(eax, dword_ptr(eax))?;
    a.test(eax, eax)?;
    a.jz(done)?;
    a.mov(dword_ptr(G_TARGET), eax)?;
    a.mov(esi, dword_ptr(G_IN))?;
    a.add(esi, R_DATA as u32)?;
    a.mov(edi, SCRATCH)?;
    a.mov(ecx, BLOCK as u32 / 4)?;
    a.rep().movsd()?;
    a.mov(esi, dword_ptr(G_IN))?;
    a.frstor(ptr(esi))?;
    a.mov(eax, dword_ptr(esi + R_EAX as u32))?;
    a.push(dword_ptr(esi + R_FLAGS as u32))?;
    a.popfd()?;
    a.jmp(dword_ptr(G_TARGET))?;
    // Nothing before FNSAVE and PUSHFD may touch the FPU or the flags.
    a.set_label(&mut save)?;
    a.mov(dword_ptr(G_EAX), eax)?;
    a.mov(eax, dword_ptr(G_OUT))?;
    a.fnsave(ptr(eax))?;
    a.pushfd()?;
    a.pop(dword_ptr(eax + R_FLAGS as u32))?;
    a.mov(ecx, dword_ptr(G_EAX))?;
    a.mov(dword_ptr(eax + R_EAX as u32), ecx)?;
    a.lea(edi, dword_ptr(eax + R_DATA as u32))?;
    a.mov(esi, SCRATCH)?;
    a.mov(ecx, BLOCK as u32 / 4)?;
    a.cld()?;
    a.rep().movsd()?;
    a.add(dword_ptr(G_OUT), REC as i32)?;
    a.add(dword_ptr(G_IN), REC as i32)?;
    a.add(dword_ptr(G_TAB), 4)?;
    a.jmp(next)?;
    super::write_out_and_exit(&mut a, &mut done, out, out_len)?;
    let r = a.assemble_options(DRIVER as u64, iced_x86::BlockEncoderOptions::RETURN_NEW_INSTRUCTION_OFFSETS)?;
    let (s, d) = (r.label_ip(&save)? as u32, r.label_ip(&done)? as u32);
    Ok((r.inner.code_buffer, s, d))
}

fn build_image(cases: &[Case]) -> Image {
    let n = cases.len() as u32;
    let snip_len: u32 = cases.iter().map(|c| c.bytes.len() as u32 + 5).sum();
    let tab = align(SNIPPETS + snip_len, 0x1000);
    let inp = align(tab + 4 * (n + 1), 0x1000);
    let out = align(inp + REC as u32 * n, 0x1000);
    let filesz = inp + REC as u32 * n - BASE;
    let memsz = out + REC as u32 * n - BASE;
    let (code, save, done) = driver(tab, inp, out, REC as u32 * n).expect("driver assembles");
    assert!(DRIVER + code.len() as u32 <= GLOBALS);
    let mut img = vec![0u8; filesz as usize];
    let put = |img: &mut Vec<u8>, at: u32, b: &[u8]| {
        let o = (at - BASE) as usize;
        img[o..o + b.len()].copy_from_slice(b);
    };
    put(&mut img, BASE, &super::elf_header(DRIVER, BASE, filesz, memsz));
    put(&mut img, DRIVER, &code);
    let mut at = SNIPPETS;
    for (k, c) in cases.iter().enumerate() {
        put(&mut img, tab + 4 * k as u32, &at.to_le_bytes());
        put(&mut img, at, &c.bytes);
        at += c.bytes.len() as u32;
        put(&mut img, at, &[0xE9]);
        put(&mut img, at + 1, &save.wrapping_sub(at + 5).to_le_bytes());
        at += 5;
        let mut rec = Vec::with_capacity(REC);
        rec.extend_from_slice(&c.fpu);
        rec.extend_from_slice(&c.eflags.to_le_bytes());
        rec.extend_from_slice(&c.eax.to_le_bytes());
        rec.extend_from_slice(&c.mem);
        put(&mut img, inp + (REC * k) as u32, &rec);
    }
    Image { bytes: img, memsz, done, out, cases: cases.len() }
}

/// Run the image in ferrite: flat 32-bit protected mode, CPL 3 selectors,
/// CR0.NE set.
fn run_ferrite(img: &Image, accel: Accel) -> Vec<u8> {
    let ram = align(BASE + img.memsz, 1 << 20) as usize;
    let mut mem = GuestMemory::new(ram).expect("guest RAM");
    let mut bytes = img.bytes.clone();
    bytes[(img.done - BASE) as usize] = 0xF4;
    mem.load(PhysAddr(BASE), &bytes);
    let mut cpu = Cpu::new();
    cpu.state.cr0 |= CR0_PE | CR0_NE;
    for s in SegReg::ALL {
        let code = s == SegReg::Cs;
        cpu.state.segs[s as usize] = Segment {
            selector: if code { USER_CS } else { USER_DS },
            base: 0,
            limit: u32::MAX,
            flags: SEG_P | SEG_S | SEG_DB | SEG_G | SEG_RW | SEG_ACCESSED | if code { SEG_CODE } else { 0 },
        };
    }
    cpu.state.eip = DRIVER;
    accel(&mut cpu);
    let (outcome, _) = cpu.run(&mut mem, &mut NullBus, 100 * img.cases as u64 + 1000);
    assert_eq!(outcome, StepOutcome::Halted, "ferrite did not reach the end: {:?}", cpu.state);
    assert_eq!(cpu.state.eip, img.done + 1, "ferrite halted elsewhere (an exception?): {:?}", cpu.state);
    let len = REC * img.cases;
    let mut out = Vec::with_capacity(len);
    let mut a = img.out;
    while out.len() < len {
        let page = mem.page_slice(a >> 12).expect("RAM page");
        let o = (a & 0xFFF) as usize;
        let take = (0x1000 - o).min(len - out.len());
        out.extend_from_slice(&page[o..o + take]);
        a += take as u32;
    }
    out
}

fn disasm(bytes: &[u8]) -> String {
    let mut dec = iced_x86::Decoder::with_ip(32, bytes, SNIPPETS as u64, iced_x86::DecoderOptions::NONE);
    let mut fmt = iced_x86::FastFormatter::new();
    let mut out = Vec::new();
    while dec.can_decode() {
        let ins = dec.decode();
        let mut s = String::new();
        fmt.format(&ins, &mut s);
        out.push(s);
    }
    out.join("; ")
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect::<Vec<_>>().join(" ")
}

fn f80_str(b: &[u8]) -> String {
    let v = V::from_bytes(b);
    format!("{:04x}:{:016x}", v.se, v.m)
}

/// Within the tolerance of the f64-based transcendentals?
fn close(a: V, b: V) -> bool {
    if a.se == b.se && a.m == b.m {
        return true;
    }
    let finite = |v: V| v.exp() != 0x7FFF && (v.m & J != 0 || v.exp() == 0);
    if !finite(a) || !finite(b) || a.se & 0x8000 != b.se & 0x8000 {
        return false;
    }
    // Denormals: exponent field 0 scales like 1.
    let (ea, eb) = (a.exp().max(1), b.exp().max(1));
    if (ea - eb).abs() > 1 {
        return false;
    }
    // Align to the larger exponent and compare the difference.
    let (x, y) =
        if ea >= eb { (a.m as i128, (b.m >> (ea - eb)) as i128) } else { ((a.m >> (eb - ea)) as i128, b.m as i128) };
    (x - y).abs() < 1 << 24
}

/// FSAVE image fields: (offset, length, name). FCS (16), FOP (18), FDP
/// (20) and FDS (24) are not compared: a recent host updates FOP and FDP
/// only on unmasked exceptions and stores FCS and FDS as zero.
const FIELDS: [(usize, usize, &str); 4] = [(0, 4, "fcw"), (4, 4, "fsw"), (8, 4, "ftw"), (12, 4, "fip")];

/// The differences of one case, or None when host and ferrite agree.
fn compare(c: &Case, host: &[u8], fer: &[u8]) -> Option<String> {
    let mut d = String::new();
    let approx = c.mode == Mode::Approx;
    for (o, n, name) in FIELDS {
        let (h, f) = (&host[o..o + n], &fer[o..o + n]);
        let differs = if name == "fip" && h.iter().all(|&b| b == 0) {
            // AMD hosts keep FIP only while an x87 exception is pending:
            // a host context switch between the instruction and FNSAVE
            // (XSAVE/XRSTOR by the host kernel) leaves it zero.
            false
        } else if approx && name == "fsw" {
            // IE DE ZE SF ES C2 TOP B.
            let m = 0xBCC7u16;
            (u16::from_le_bytes([h[0], h[1]]) ^ u16::from_le_bytes([f[0], f[1]])) & m != 0
        } else {
            h != f
        };
        if differs {
            d += &format!("  {name}: host {} ferrite {}\n", hex(h), hex(f));
        }
    }
    for k in 0..8 {
        let o = 28 + 10 * k;
        let (h, f) = (&host[o..o + 10], &fer[o..o + 10]);
        let same = if approx { close(V::from_bytes(h), V::from_bytes(f)) } else { h == f };
        if !same {
            d += &format!("  st{k}: host {} ferrite {}\n", f80_str(h), f80_str(f));
        }
    }
    let flags = |r: &[u8]| u32::from_le_bytes(r[R_FLAGS..R_FLAGS + 4].try_into().unwrap());
    if (flags(host) ^ flags(fer)) & (ARITH | 0x400) != 0 {
        d += &format!("  eflags: host {:08x} ferrite {:08x}\n", flags(host), flags(fer));
    }
    let (he, fe) = (&host[R_EAX..R_EAX + 4], &fer[R_EAX..R_EAX + 4]);
    if he != fe {
        d += &format!("  eax: host {} ferrite {}\n", hex(he), hex(fe));
    }
    for k in 0..BLOCK {
        if c.skip.iter().any(|&(a, b)| (a..b).contains(&k)) {
            continue;
        }
        let (h, f) = (host[R_DATA + k], fer[R_DATA + k]);
        if h != f {
            d += &format!("  mem[{k}]: host {h:02x} ferrite {f:02x}\n");
        }
    }
    if d.is_empty() {
        return None;
    }
    let mut s = format!(
        "{} [{}] {}\n  in: fcw {} fsw {} ftw {}",
        c.name,
        hex(&c.bytes),
        disasm(&c.bytes),
        hex(&c.fpu[0..2]),
        hex(&c.fpu[4..6]),
        hex(&c.fpu[8..10])
    );
    s += &format!(" eflags {:08x}\n", c.eflags);
    for k in 0..8 {
        s += &format!("  in st{k} {}\n", f80_str(&c.fpu[28 + 10 * k..38 + 10 * k]));
    }
    Some(s + &d)
}

/// The first case the host cannot run (a generator bug), by bisection.
fn find_host_crash(cases: &[Case]) -> String {
    let (mut good, mut bad) = (0, cases.len());
    while bad - good > 1 {
        let mid = (good + bad) / 2;
        let img = build_image(&cases[..mid]);
        if super::run_host(&img.bytes, REC * img.cases).is_ok() {
            good = mid;
        } else {
            bad = mid;
        }
    }
    let c = &cases[bad - 1];
    format!("case {}: {} [{}] {}", bad - 1, c.name, hex(&c.bytes), disasm(&c.bytes))
}

/// Run the oracle: `default_cases` cases (unless `FERRITE_X87_CASES` says
/// otherwise), ferrite's CPU made ready by `accel`.
pub fn check(accel: Accel, default_cases: usize) {
    let n = env_or("FERRITE_X87_CASES", default_cases);
    let seed = env_or("FERRITE_X87_SEED", DEFAULT_SEED);
    let t0 = Instant::now();
    let cases = generate(n, seed);
    let img = build_image(&cases);
    let t1 = Instant::now();
    let host = match super::run_host(&img.bytes, REC * img.cases) {
        Ok(h) => h,
        Err(HostError::NoExec) => {
            println!("SKIPPED: host cannot run i386 executables");
            return;
        }
        Err(e) => panic!("host run failed: {e:?}\n{}", find_host_crash(&cases)),
    };
    let t2 = Instant::now();
    let fer = run_ferrite(&img, accel);
    let t3 = Instant::now();
    let mut per_group: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    let mut shown = BTreeMap::new();
    let mut report = String::new();
    for (k, c) in cases.iter().enumerate() {
        let e = per_group.entry(c.name.as_str()).or_default();
        e.0 += 1;
        if let Some(d) = compare(c, &host[k * REC..(k + 1) * REC], &fer[k * REC..(k + 1) * REC]) {
            e.1 += 1;
            let s = shown.entry(&c.name).or_insert(0);
            if *s < 3 {
                *s += 1;
                report += &format!("case {k}: {d}");
            }
        }
    }
    println!(
        "{} x87 cases in {} groups (seed {seed:#x}): generate+build {:.2?}, host {:.2?}, ferrite {:.2?}",
        cases.len(),
        per_group.len(),
        t1 - t0,
        t2 - t1,
        t3 - t2
    );
    if std::env::var("FERRITE_ORACLE_VERBOSE").is_ok() {
        for (k, v) in &per_group {
            println!("{k}: {} ({} differ)", v.0, v.1);
        }
    }
    let failed: Vec<String> =
        per_group.iter().filter(|(_, v)| v.1 > 0).map(|(k, v)| format!("{k}: {} of {}", v.1, v.0)).collect();
    if !failed.is_empty() {
        print!("{report}");
        panic!("ferrite differs from the host x87:\n{}", failed.join("\n"));
    }
}
