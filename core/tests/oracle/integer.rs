//! Differential oracle against the host CPU for 32-bit integer instructions.
//!
//! Random test cases (an instruction with random registers, EFLAGS and a
//! 64-byte data block) are assembled into one hand-built static i386 ELF
//! executable. The host runs it natively (x86-64 Linux runs i386
//! executables) and writes every case's final registers, EFLAGS and data
//! block to stdout; ferrite runs the very same image in flat 32-bit
//! protected mode (segment caches set directly, carrying the host's
//! selector values) and the results are compared. Of the arithmetic flags
//! only those the Intel SDM defines for the instruction are compared (a
//! modern host and a P6 legitimately differ in undefined ones); the other
//! EFLAGS bits are, except IF/IOPL/RF/VM/VIF/VIP.
//!
//! Most cases are one instruction; some are a flag producer followed by a
//! flag consumer or partial writer (ferrite's lazy flags must carry over),
//! or a branch whose taken path adds 0x55 to EBP.
//!
//! Image layout (identical for the host and ferrite; addresses are fixed):
//! the ELF header and a driver loop at [`BASE`], the driver's variables at
//! [`GLOBALS`], the data block at [`SCRATCH`] (straddling a page boundary),
//! then one snippet per case (the instruction(s) under test and
//! `jmp save`), a table of snippet addresses, the input records and (bss)
//! the output records. The driver loads a case's data block and registers
//! (POPAD/POPFD from its input record, then ESP), jumps to the snippet, and
//! at `save` stores PUSHFD/PUSHAD, the case's ESP and the data block into
//! its output record. At the end it writes the output records with
//! `int 0x80` (eax=4) and exits (eax=1); ferrite's copy has a HLT there
//! instead.
//!
//! Environment: `FERRITE_ORACLE_CASES` and `FERRITE_ORACLE_SEED` override
//! the case count and the seed; `FERRITE_ORACLE_ALL_FLAGS=1` also compares
//! undefined flags (expect failures: it shows ferrite's choices against the
//! host's); `FERRITE_ORACLE_VERBOSE` lists the case count per group.

use super::{bits_mask, env_or, Accel, HostError, Rng};
use ferrite_core::cpu::flags::{AF, ARITH, CF, DF, ID, IF, IOPL, NT, OF, PF, RF, SF, VIF, VIP, VM, ZF};
use ferrite_core::cpu::state::{
    SegReg, Segment, CR0_PE, EAX, ECX, EDI, EDX, ESI, ESP, SEG_ACCESSED, SEG_CODE, SEG_DB, SEG_G, SEG_P, SEG_RW, SEG_S,
};
use ferrite_core::{Cpu, GuestMemory, NullBus, PhysAddr, StepOutcome};
use iced_x86::IcedError;
use std::collections::BTreeMap;
use std::time::Instant;

/// Load address of the image (ELF header included).
const BASE: u32 = 0x0010_0000;
/// Entry point: the driver loop.
const DRIVER: u32 = BASE + 0x100;
/// Driver variables: current input record, output record, table entry,
/// snippet address, case ESP, ESP saved after the case.
const GLOBALS: u32 = BASE + 0x1000;
const G_IN: u32 = GLOBALS;
const G_OUT: u32 = GLOBALS + 4;
const G_TAB: u32 = GLOBALS + 8;
const G_TARGET: u32 = GLOBALS + 12;
const G_ESP: u32 = GLOBALS + 16;
const G_SAVE: u32 = GLOBALS + 20;
/// The data block memory operands point into. It straddles a page boundary
/// (so accesses that cross pages are tested) which is also a cache-line
/// boundary: LOCKed operands never cross it (a split lock is slow or fatal
/// on the host). 64 KiB above the globals: ENTER probes its final stack
/// pointer (ESP - alloc16) for writes, which must stay in the image.
const SCRATCH: u32 = BASE + 0x13000 - 32;
/// Offset of the page boundary in the block.
const SPLIT: u32 = 32;
const BLOCK: usize = 64;
/// First case snippet.
const SNIPPETS: u32 = BASE + 0x14000;
/// Input record: EDI ESI EBP (unused) EBX EDX ECX EAX (POPAD order), EFLAGS,
/// ESP, data block.
const IN_REC: u32 = 40 + BLOCK as u32;
/// Output record: EDI ESI EBP ESP EBX EDX ECX EAX (PUSHAD order), EFLAGS,
/// data block.
const OUT_REC: u32 = 36 + BLOCK as u32;

/// Cases per run of the interpreter's oracle in CI.
pub const DEFAULT_CASES: usize = 250_000;
const DEFAULT_SEED: u64 = 0x0F3D_1C0A_5EED_2024;
/// EFLAGS bits never compared: IF and IOPL (the host runs at CPL 3, where
/// POPFD cannot change them), RF, VM, VIF, VIP. Of the arithmetic flags
/// only those the case defines are compared; every other bit always is.
const NOT_COMPARED: u32 = IF | IOPL | RF | VM | VIF | VIP;
const REG_NAMES: [&str; 8] = ["eax", "ecx", "edx", "ebx", "esp", "ebp", "esi", "edi"];

/// Does a `size`-byte operand at block offset `off` cross the page (and
/// cache-line) boundary?
fn crosses_split(off: u32, size: u32) -> bool {
    off < SPLIT && off + size > SPLIT
}

/// A register or memory operand: register number or offset in the block.
#[derive(Clone, Copy, Debug)]
enum Rm {
    Reg(u8),
    Mem(u32),
}

/// One test: the instruction bytes, its inputs, and what to compare.
#[derive(Clone)]
struct Case {
    /// Group for the per-mnemonic summary (mnemonic and operand bits).
    name: String,
    bytes: Vec<u8>,
    regs: [u32; 8],
    flags: u32,
    mem: [u8; BLOCK],
    /// Arithmetic flags the SDM defines after this case (DF is always compared).
    fmask: u32,
    /// Registers whose final value is undefined (bit per register).
    ignore: u8,
}

/// Builds one case: random inputs, then the instruction bytes, adjusting
/// address registers so memory operands land in the block.
struct Gen<'a> {
    rng: &'a mut Rng,
    c: Case,
    /// Registers whose values the case chose on purpose (addressing must
    /// not change them).
    pinned: u8,
    /// Memory operands use absolute [disp32] addressing only (for a second
    /// instruction, whose registers the first one may change).
    abs_only: bool,
    /// Added to ESP as a base register (POP m computes its address with
    /// the incremented ESP).
    esp_bias: u32,
}

impl<'a> Gen<'a> {
    fn new(rng: &'a mut Rng) -> Gen<'a> {
        let mut regs = [0u32; 8];
        for r in regs.iter_mut() {
            let mut v = rng.u32();
            if rng.chance(1, 2) {
                let bits = rng.pick(&[8, 16, 32]);
                v = (v & !bits_mask(bits)) | rng.special(bits);
            }
            if rng.chance(1, 8) {
                v = (v & !0xFF00) | rng.special(8) << 8;
            }
            *r = v;
        }
        regs[ESP] = SCRATCH - 0x1000 + 4 * rng.below(256);
        // IF set: the host's POPFD cannot clear it, so ferrite's copy has it too.
        let flags = rng.u32() & (ARITH | DF) | IF;
        let mut mem = [0u8; BLOCK];
        for chunk in mem.chunks_mut(4) {
            let v = if rng.chance(1, 3) { rng.special(32) } else { rng.u32() };
            chunk.copy_from_slice(&v.to_le_bytes());
        }
        let c = Case { name: String::new(), bytes: Vec::new(), regs, flags, mem, fmask: ARITH, ignore: 0 };
        Gen { rng, c, pinned: 0, abs_only: false, esp_bias: 0 }
    }

    fn byte(&mut self, b: u8) {
        self.c.bytes.push(b);
    }
    fn bytes(&mut self, bs: &[u8]) {
        self.c.bytes.extend_from_slice(bs);
    }
    fn imm(&mut self, v: u32, size: u32) {
        self.c.bytes.extend_from_slice(&v.to_le_bytes()[..size as usize]);
    }

    fn size3(&mut self) -> u32 {
        self.rng.pick(&[1, 2, 4])
    }
    fn size2(&mut self) -> u32 {
        self.rng.pick(&[2, 4])
    }

    /// Register `r` of `size` bytes (8-bit: 0-3 low bytes, 4-7 AH..BH).
    fn reg(&self, r: u8, size: u32) -> u32 {
        let r = r as usize;
        match size {
            1 if r < 4 => self.c.regs[r] & 0xFF,
            1 => (self.c.regs[r - 4] >> 8) & 0xFF,
            2 => self.c.regs[r] & 0xFFFF,
            _ => self.c.regs[r],
        }
    }

    /// Set (and pin) register `r` of `size` bytes.
    fn set_reg(&mut self, r: u8, size: u32, v: u32) {
        let r = r as usize;
        let (n, shift, m) = match size {
            1 if r < 4 => (r, 0, 0xFF),
            1 => (r - 4, 8, 0xFF),
            2 => (r, 0, 0xFFFF),
            _ => (r, 0, u32::MAX),
        };
        self.c.regs[n] = (self.c.regs[n] & !(m << shift)) | (v & m) << shift;
        self.pinned |= 1 << n;
    }

    fn mem_val(&self, off: u32, size: u32) -> u32 {
        let mut b = [0u8; 4];
        b[..size as usize].copy_from_slice(&self.c.mem[off as usize..(off + size) as usize]);
        u32::from_le_bytes(b)
    }
    fn set_mem(&mut self, off: u32, size: u32, v: u32) {
        self.c.mem[off as usize..(off + size) as usize].copy_from_slice(&v.to_le_bytes()[..size as usize]);
    }

    fn rm_val(&self, rm: Rm, size: u32) -> u32 {
        match rm {
            Rm::Reg(r) => self.reg(r, size),
            Rm::Mem(off) => self.mem_val(off, size),
        }
    }
    fn set_rm(&mut self, rm: Rm, size: u32, v: u32) {
        match rm {
            Rm::Reg(r) => self.set_reg(r, size, v),
            Rm::Mem(off) => self.set_mem(off, size, v),
        }
    }

    /// An offset in the block for a `size`-byte operand, often aligned.
    fn mem_off(&mut self, size: u32) -> u32 {
        let room = BLOCK as u32 - size;
        if self.rng.chance(1, 2) {
            self.rng.below(room / size + 1) * size
        } else {
            self.rng.below(room + 1)
        }
    }

    /// A register or memory operand of `size` bytes, sometimes holding a
    /// special value.
    fn rm(&mut self, size: u32) -> Rm {
        let rm = if self.rng.chance(1, 2) { Rm::Reg(self.rng.below(8) as u8) } else { Rm::Mem(self.mem_off(size)) };
        if let Rm::Mem(off) = rm {
            if self.rng.chance(1, 2) {
                let v = self.rng.special(size * 8);
                self.set_mem(off, size, v);
            }
        }
        rm
    }

    /// LOCK (when allowed), a segment override (flat DS/ES/SS) for memory
    /// operands, and the operand-size prefix.
    fn prefixes(&mut self, size: u32, rm: Rm, lockable: bool) {
        if let Rm::Mem(off) = rm {
            if lockable && !crosses_split(off, size) && self.rng.chance(1, 4) {
                self.byte(0xF0);
            }
            if self.rng.chance(1, 4) {
                let s = self.rng.pick(&[0x26, 0x36, 0x3E]);
                self.byte(s);
            }
        }
        if size == 2 {
            self.byte(0x66);
        }
    }

    fn pinned(&self, r: u8) -> bool {
        self.pinned & (1 << r) != 0
    }

    /// A register's value as an address base.
    fn base_val(&self, r: u8) -> u32 {
        let v = self.c.regs[r as usize];
        if r as usize == ESP {
            v.wrapping_add(self.esp_bias)
        } else {
            v
        }
    }

    /// ModRM (+SIB, displacement) for `reg` and `rm`. A memory operand gets
    /// a random 32-bit addressing form; the displacement, or a base register
    /// the case does not care about, is chosen so the address is in the
    /// block.
    fn modrm(&mut self, reg: u8, rm: Rm) {
        let reg = (reg & 7) << 3;
        let off = match rm {
            Rm::Reg(r) => return self.byte(0xC0 | reg | r),
            Rm::Mem(off) => off,
        };
        let t = SCRATCH + off;
        loop {
            match if self.abs_only { 0 } else { self.rng.below(5) } {
                0 => {
                    self.byte(reg | 5);
                    return self.imm(t, 4);
                }
                1 => {
                    let b = self.rng.below(8) as u8;
                    if b == 4 || b == 5 || self.pinned(b) {
                        continue;
                    }
                    self.c.regs[b as usize] = t;
                    return self.byte(reg | b);
                }
                2 => {
                    let b = self.rng.below(8) as u8;
                    if b == 4 || self.pinned(b) {
                        continue;
                    }
                    let d = self.rng.u32() as i8;
                    self.c.regs[b as usize] = t.wrapping_sub(d as i32 as u32);
                    self.byte(0x40 | reg | b);
                    return self.byte(d as u8);
                }
                3 => {
                    let b = self.rng.below(8) as u8;
                    if b == 4 {
                        continue;
                    }
                    let d = t.wrapping_sub(self.base_val(b));
                    self.byte(0x80 | reg | b);
                    return self.imm(d, 4);
                }
                _ => {
                    let md = self.rng.below(3) as u8;
                    let scale = self.rng.below(4) as u8;
                    let index = self.rng.below(8) as u8;
                    let base = self.rng.below(8) as u8;
                    let idx = if index == 4 { 0 } else { self.c.regs[index as usize] << scale };
                    let no_base = md == 0 && base == 5;
                    let sib = scale << 6 | index << 3 | base;
                    if md == 2 || no_base {
                        let b = if no_base { 0 } else { self.base_val(base) };
                        self.bytes(&[md << 6 | reg | 4, sib]);
                        return self.imm(t.wrapping_sub(b).wrapping_sub(idx), 4);
                    }
                    if self.pinned(base) || (index == base) {
                        continue;
                    }
                    let d = if md == 1 { self.rng.u32() as i8 as i32 as u32 } else { 0 };
                    self.c.regs[base as usize] = t.wrapping_sub(d).wrapping_sub(idx);
                    self.bytes(&[md << 6 | reg | 4, sib]);
                    if md == 1 {
                        self.byte(d as u8);
                    }
                    return;
                }
            }
        }
    }

    fn finish(mut self, name: String, fmask: u32) -> Case {
        self.c.name = name;
        self.c.fmask = fmask;
        self.c
    }
}

/// A shift or rotate count: often 0, 1 and the edges of the operand size.
fn shift_count(rng: &mut Rng, bits: u32) -> u32 {
    match rng.below(4) {
        0 => rng.below(32),
        1 => rng.pick(&[0, 1, 2, bits - 1, bits, bits + 1, 31, 32, 33]),
        2 => 1,
        _ => rng.u32() & 0xFF,
    }
}

const ALU_NAMES: [&str; 8] = ["add", "or", "adc", "sbb", "and", "sub", "xor", "cmp"];

/// ADD OR ADC SBB AND SUB XOR CMP in all encodings.
fn gen_alu(g: &mut Gen) -> (String, u32) {
    let op = g.rng.below(8) as u8;
    let size = g.size3();
    let w = (size != 1) as u8;
    let writes = op != 7;
    let fmask = if matches!(op, 1 | 4 | 6) { ARITH & !AF } else { ARITH };
    match g.rng.below(4) {
        0 | 1 => {
            let to_rm = g.rng.chance(1, 2);
            let rm = g.rm(size);
            let reg = g.rng.below(8) as u8;
            g.prefixes(size, rm, writes && to_rm);
            g.byte(op * 8 + if to_rm { w } else { 2 + w });
            g.modrm(reg, rm);
        }
        2 => {
            g.prefixes(size, Rm::Reg(0), false);
            g.byte(op * 8 + 4 + w);
            let v = g.rng.special(size * 8);
            g.imm(v, size);
        }
        _ => {
            let rm = g.rm(size);
            g.prefixes(size, rm, writes);
            let (opc, isz) = match size {
                1 => (g.rng.pick(&[0x80, 0x82]), 1),
                _ if g.rng.chance(1, 2) => (0x83, 1),
                _ => (0x81, size),
            };
            g.byte(opc);
            g.modrm(op, rm);
            let v = g.rng.special(isz * 8);
            g.imm(v, isz);
        }
    }
    (format!("{}{}", ALU_NAMES[op as usize], size * 8), fmask)
}

fn gen_test(g: &mut Gen) -> (String, u32) {
    let size = g.size3();
    let w = (size != 1) as u8;
    match g.rng.below(3) {
        0 => {
            let rm = g.rm(size);
            let reg = g.rng.below(8) as u8;
            g.prefixes(size, rm, false);
            g.byte(0x84 + w);
            g.modrm(reg, rm);
        }
        1 => {
            g.prefixes(size, Rm::Reg(0), false);
            g.byte(0xA8 + w);
            let v = g.rng.special(size * 8);
            g.imm(v, size);
        }
        _ => {
            let rm = g.rm(size);
            g.prefixes(size, rm, false);
            g.byte(0xF6 + w);
            // /1 is an undocumented alias of /0 on every IA-32 processor.
            let sub = g.rng.pick(&[0, 0, 0, 1]);
            g.modrm(sub, rm);
            let v = g.rng.special(size * 8);
            g.imm(v, size);
        }
    }
    (format!("test{}", size * 8), ARITH & !AF)
}

/// INC DEC NOT NEG.
fn gen_unary(g: &mut Gen) -> (String, u32) {
    let size = g.size3();
    let w = (size != 1) as u8;
    let (name, fmask) = match g.rng.below(4) {
        0 | 1 => {
            let dec = g.rng.chance(1, 2);
            if size != 1 && g.rng.chance(1, 2) {
                g.prefixes(size, Rm::Reg(0), false);
                let r = g.rng.below(8) as u8;
                g.byte(if dec { 0x48 } else { 0x40 } + r);
            } else {
                let rm = g.rm(size);
                g.prefixes(size, rm, true);
                g.byte(0xFE + w);
                g.modrm(dec as u8, rm);
            }
            (if dec { "dec" } else { "inc" }, ARITH)
        }
        k => {
            let neg = k == 3;
            let rm = g.rm(size);
            g.prefixes(size, rm, true);
            g.byte(0xF6 + w);
            g.modrm(2 + neg as u8, rm);
            (if neg { "neg" } else { "not" }, ARITH)
        }
    };
    (format!("{}{}", name, size * 8), fmask)
}

const SHIFT_NAMES: [&str; 8] = ["rol", "ror", "rcl", "rcr", "shl", "shr", "sal", "sar"];

/// Group 2: by 1, by CL and by imm8 (SDM vol. 2 RCL/RCR/ROL/ROR and
/// SAL/SAR/SHL/SHR for the flag rules).
fn gen_shift(g: &mut Gen) -> (String, u32) {
    let size = g.size3();
    let bits = size * 8;
    let w = (size != 1) as u8;
    let sub = g.rng.below(8) as u8;
    let rm = g.rm(size);
    let form = g.rng.below(3);
    let count = if form == 0 { 1 } else { shift_count(g.rng, bits) };
    if form == 1 {
        g.set_reg(ECX as u8, 1, count);
    }
    g.prefixes(size, rm, false);
    g.byte([0xD0, 0xD2, 0xC0][form as usize] + w);
    g.modrm(sub, rm);
    if form == 2 {
        g.imm(count, 1);
    }
    let c = count & 31;
    let of = if c == 1 { OF } else { 0 };
    let fmask = if c == 0 {
        ARITH
    } else {
        match sub {
            // Rotates: SF ZF AF PF unaffected, CF defined, OF for 1-bit.
            0..=3 => SF | ZF | AF | PF | CF | of,
            // SHL/SHR: CF undefined for counts >= the operand size.
            4..=6 => SF | ZF | PF | of | if c < bits { CF } else { 0 },
            _ => SF | ZF | PF | CF | of,
        }
    };
    (format!("{}{}", SHIFT_NAMES[sub as usize], bits), fmask)
}

fn gen_shxd(g: &mut Gen) -> (String, u32) {
    let size = g.size2();
    let bits = size * 8;
    let left = g.rng.chance(1, 2);
    let by_cl = g.rng.chance(1, 2);
    let rm = g.rm(size);
    let reg = g.rng.below(8) as u8;
    let mut count = shift_count(g.rng, bits);
    if size == 2 && count & 31 > 16 {
        // Result and flags undefined (SDM vol. 2 SHLD).
        count = g.rng.below(17);
    }
    if by_cl {
        g.set_reg(ECX as u8, 1, count);
    }
    g.prefixes(size, rm, false);
    g.byte(0x0F);
    g.byte(if left { 0xA4 } else { 0xAC } + by_cl as u8);
    g.modrm(reg, rm);
    if !by_cl {
        g.imm(count, 1);
    }
    let c = count & 31;
    let fmask = match c {
        0 => ARITH,
        1 => CF | OF | SF | ZF | PF,
        _ => CF | SF | ZF | PF,
    };
    (format!("{}{}", if left { "shld" } else { "shrd" }, bits), fmask)
}

/// MUL and IMUL, 1-, 2- and 3-operand: only CF and OF are defined.
fn gen_mul(g: &mut Gen) -> (String, u32) {
    let form = g.rng.below(4);
    let size = if form == 0 { g.size3() } else { g.size2() };
    let rm = g.rm(size);
    let reg = g.rng.below(8) as u8;
    g.prefixes(size, rm, false);
    let name = match form {
        0 => {
            let signed = g.rng.chance(1, 2);
            g.byte(0xF6 + (size != 1) as u8);
            g.modrm(4 + signed as u8, rm);
            if signed {
                "imul"
            } else {
                "mul"
            }
        }
        1 => {
            g.bytes(&[0x0F, 0xAF]);
            g.modrm(reg, rm);
            "imul2_"
        }
        2 => {
            g.byte(0x69);
            g.modrm(reg, rm);
            let v = g.rng.special(size * 8);
            g.imm(v, size);
            "imul3_"
        }
        _ => {
            g.byte(0x6B);
            g.modrm(reg, rm);
            let v = g.rng.special(8);
            g.imm(v, 1);
            "imul3_"
        }
    };
    (format!("{}{}", name, size * 8), CF | OF)
}

/// Would DIV/IDIV of `size` bytes by `d` fault, with the current registers?
fn div_ok(g: &Gen, d: u32, size: u32, signed: bool) -> bool {
    let bits = size * 8;
    let (hi, lo) = match size {
        1 => (g.reg(4, 1), g.reg(0, 1)),
        _ => (g.reg(EDX as u8, size), g.reg(EAX as u8, size)),
    };
    let n = (hi as u64) << bits | lo as u64;
    if d == 0 {
        return false;
    }
    if signed {
        let n = ((n << (64 - 2 * bits)) as i64 >> (64 - 2 * bits)) as i128;
        let d = ((d << (32 - bits)) as i32 >> (32 - bits)) as i128;
        let q = n / d;
        q >= -(1i128 << (bits - 1)) && q < (1i128 << (bits - 1))
    } else {
        n / d as u64 <= bits_mask(bits) as u64
    }
}

/// DIV and IDIV with operands that do not raise #DE. All flags undefined.
fn gen_div(g: &mut Gen) -> (String, u32) {
    let signed = g.rng.chance(1, 2);
    let size = g.size3();
    let bits = size * 8;
    let (hi_r, lo_r, half) = if size == 1 { (4u8, 0u8, 1) } else { (EDX as u8, EAX as u8, size) };
    loop {
        let rm = g.rm(size);
        for _ in 0..64 {
            let mut d = g.rng.special(bits);
            if d == 0 {
                d = 1 + g.rng.below(bits_mask(bits.min(16)));
            }
            let (hi, lo) = if signed {
                let sd = ((d << (32 - bits)) as i32 >> (32 - bits)) as i64;
                let q = ((g.rng.special(bits) << (32 - bits)) as i32 >> (32 - bits)) as i64;
                let mut r = (g.rng.u32() as u64 % sd.unsigned_abs()) as i64;
                let p = q * sd;
                if p < 0 || (p == 0 && g.rng.chance(1, 2)) {
                    r = -r;
                }
                let n = p + r;
                ((n >> bits) as u32 & bits_mask(bits), n as u32 & bits_mask(bits))
            } else {
                let hi = if g.rng.chance(7, 8) { g.rng.u32() % d } else { g.rng.special(bits) };
                (hi, g.rng.u32() & bits_mask(bits))
            };
            g.set_reg(hi_r, half, hi);
            g.set_reg(lo_r, half, lo);
            g.set_rm(rm, size, d);
            let d = g.rm_val(rm, size);
            if div_ok(g, d, size, signed) {
                g.prefixes(size, rm, false);
                g.byte(0xF6 + (size != 1) as u8);
                g.modrm(6 + signed as u8, rm);
                return (format!("{}{}", if signed { "idiv" } else { "div" }, bits), 0);
            }
        }
    }
}

/// BT BTS BTR BTC with register and immediate bit offsets; register
/// offsets on a memory operand reach the whole block.
fn gen_bt(g: &mut Gen) -> (String, u32) {
    let size = g.size2();
    let bits = size * 8;
    let sub = g.rng.below(4) as u8;
    let mut lockable = sub != 0;
    if g.rng.chance(1, 3) {
        let rm = g.rm(size);
        g.prefixes(size, rm, lockable);
        g.bytes(&[0x0F, 0xBA]);
        g.modrm(4 + sub, rm);
        let v = g.rng.u32() & 0xFF;
        g.imm(v, 1);
    } else {
        let reg = g.rng.below(8) as u8;
        let rm = if g.rng.chance(1, 3) {
            Rm::Reg(g.rng.below(8) as u8)
        } else {
            let off = 16 + g.rng.below(32 - size + 1);
            let e_min = -((off / size) as i32);
            let e_max = ((BLOCK as u32 - size - off) / size) as i32;
            let e = e_min + g.rng.below((e_max - e_min + 1) as u32) as i32;
            let k = e * bits as i32 + g.rng.below(bits) as i32;
            g.set_reg(reg, size, k as u32);
            lockable &= !crosses_split((off as i32 + e * size as i32) as u32, size);
            Rm::Mem(off)
        };
        g.prefixes(size, rm, lockable);
        g.bytes(&[0x0F, 0xA3 + 8 * sub]);
        g.modrm(reg, rm);
    }
    (format!("{}{}", ["bt", "bts", "btr", "btc"][sub as usize], bits), CF | ZF)
}

/// BSF BSR: only ZF is defined; the destination is undefined for a zero
/// source.
fn gen_bsx(g: &mut Gen) -> (String, u32) {
    let size = g.size2();
    let rev = g.rng.chance(1, 2);
    let rm = g.rm(size);
    if g.rng.chance(1, 6) {
        g.set_rm(rm, size, 0);
    }
    let reg = g.rng.below(8) as u8;
    g.prefixes(size, rm, false);
    g.bytes(&[0x0F, 0xBC + rev as u8]);
    g.modrm(reg, rm);
    if g.rm_val(rm, size) == 0 {
        g.c.ignore |= 1 << reg;
    }
    (format!("{}{}", if rev { "bsr" } else { "bsf" }, size * 8), ZF)
}

/// XCHG BSWAP XADD CMPXCHG CMPXCHG8B.
fn gen_exchange(g: &mut Gen) -> (String, u32) {
    let k = g.rng.below(6);
    match k {
        0 => {
            let r = g.rng.below(8) as u8;
            g.bytes(&[0x0F, 0xC8 + r]);
            ("bswap32".into(), ARITH)
        }
        1 | 2 => {
            let size = g.size3();
            if size != 1 && g.rng.chance(1, 4) {
                g.prefixes(size, Rm::Reg(0), false);
                let r = 1 + g.rng.below(7) as u8;
                g.byte(0x90 + r);
            } else {
                // XCHG with memory is always locked: keep it off the split.
                let rm = loop {
                    match g.rm(size) {
                        Rm::Mem(off) if crosses_split(off, size) => continue,
                        rm => break rm,
                    }
                };
                let reg = g.rng.below(8) as u8;
                g.prefixes(size, rm, true);
                g.byte(0x86 + (size != 1) as u8);
                g.modrm(reg, rm);
            }
            (format!("xchg{}", size * 8), ARITH)
        }
        3 => {
            let size = g.size3();
            let rm = g.rm(size);
            let reg = g.rng.below(8) as u8;
            g.prefixes(size, rm, true);
            g.bytes(&[0x0F, 0xC0 + (size != 1) as u8]);
            g.modrm(reg, rm);
            (format!("xadd{}", size * 8), ARITH)
        }
        4 => {
            let size = g.size3();
            let rm = g.rm(size);
            let reg = g.rng.below(8) as u8;
            let acc = if g.rng.chance(1, 2) { g.rm_val(rm, size) } else { g.reg(EAX as u8, size) };
            g.set_reg(EAX as u8, size, acc);
            g.prefixes(size, rm, true);
            g.bytes(&[0x0F, 0xB0 + (size != 1) as u8]);
            g.modrm(reg, rm);
            (format!("cmpxchg{}", size * 8), ARITH)
        }
        _ => {
            let off = g.mem_off(8);
            let (eax, edx) = (g.reg(EAX as u8, 4), g.reg(EDX as u8, 4));
            g.set_reg(EAX as u8, 4, eax);
            g.set_reg(EDX as u8, 4, edx);
            if g.rng.chance(1, 2) {
                g.set_mem(off, 4, eax);
                g.set_mem(off + 4, 4, edx);
            } else if g.rng.chance(1, 2) {
                g.set_mem(off, 4, eax);
            }
            let rm = Rm::Mem(off);
            g.prefixes(4, rm, !crosses_split(off, 8));
            g.bytes(&[0x0F, 0xC7]);
            g.modrm(1, rm);
            ("cmpxchg8b".into(), ARITH)
        }
    }
}

/// MOVZX MOVSX CBW/CWDE CWD/CDQ.
fn gen_extend(g: &mut Gen) -> (String, u32) {
    if g.rng.chance(1, 4) {
        let size = g.size2();
        g.prefixes(size, Rm::Reg(0), false);
        let cwd = g.rng.chance(1, 2);
        g.byte(0x98 + cwd as u8);
        let name = match (cwd, size) {
            (false, 2) => "cbw",
            (false, _) => "cwde",
            (true, 2) => "cwd",
            _ => "cdq",
        };
        return (name.into(), ARITH);
    }
    let dsize = g.size2();
    let op = g.rng.pick(&[0xB6u8, 0xB7, 0xBE, 0xBF]);
    let ssize = if op & 1 == 0 { 1 } else { 2 };
    let rm = g.rm(ssize);
    let reg = g.rng.below(8) as u8;
    g.prefixes(dsize, rm, false);
    g.bytes(&[0x0F, op]);
    g.modrm(reg, rm);
    let name = if op < 0xBE { "movzx" } else { "movsx" };
    (format!("{}{}_{}", name, dsize * 8, ssize * 8), ARITH)
}

/// CMOVcc and SETcc, all 16 conditions.
fn gen_cond(g: &mut Gen) -> (String, u32) {
    let cc = g.rng.below(16) as u8;
    if g.rng.chance(1, 2) {
        let size = g.size2();
        let rm = g.rm(size);
        let reg = g.rng.below(8) as u8;
        g.prefixes(size, rm, false);
        g.bytes(&[0x0F, 0x40 + cc]);
        g.modrm(reg, rm);
        (format!("cmov{}", size * 8), ARITH)
    } else {
        let rm = g.rm(1);
        // The reg field is ignored (SDM vol. 2 SETcc).
        let reg = if g.rng.chance(1, 2) { 0 } else { g.rng.below(8) as u8 };
        g.prefixes(1, rm, false);
        g.bytes(&[0x0F, 0x90 + cc]);
        g.modrm(reg, rm);
        ("setcc".into(), ARITH)
    }
}

/// LEA with every 16- and 32-bit addressing form and random registers.
fn gen_lea(g: &mut Gen) -> (String, u32) {
    let size = g.size2();
    let a16 = g.rng.chance(1, 3);
    if a16 {
        g.byte(0x67);
    }
    g.prefixes(size, Rm::Reg(0), false);
    g.byte(0x8D);
    let reg = g.rng.below(8) as u8;
    let md = g.rng.below(3) as u8;
    let rmf = g.rng.below(8) as u8;
    g.byte(md << 6 | reg << 3 | rmf);
    let disp = g.rng.special(32);
    if a16 {
        match md {
            0 if rmf == 6 => g.imm(disp, 2),
            1 => g.imm(disp, 1),
            2 => g.imm(disp, 2),
            _ => {}
        }
    } else {
        let mut base = rmf;
        if rmf == 4 {
            let sib = g.rng.u32() as u8;
            g.byte(sib);
            base = sib & 7;
        }
        match md {
            0 if base == 5 => g.imm(disp, 4),
            1 => g.imm(disp, 1),
            2 => g.imm(disp, 4),
            _ => {}
        }
    }
    (format!("lea{}_a{}", size * 8, if a16 { 16 } else { 32 }), ARITH)
}

/// DAA DAS AAA AAS AAM AAD (valid outside 64-bit mode).
fn gen_bcd(g: &mut Gen) -> (String, u32) {
    let al = match g.rng.below(3) {
        0 => g.rng.below(10) << 4 | g.rng.below(10),
        1 => g.rng.below(16) << 4 | g.rng.pick(&[9, 10, 15, 0, 6]),
        _ => g.rng.u32() & 0xFF,
    };
    g.set_reg(0, 1, al);
    let k = g.rng.below(6);
    let (op, name, fmask) = match k {
        0 => (0x27, "daa", CF | AF | SF | ZF | PF),
        1 => (0x2F, "das", CF | AF | SF | ZF | PF),
        2 => (0x37, "aaa", AF | CF),
        3 => (0x3F, "aas", AF | CF),
        4 => (0xD4, "aam", SF | ZF | PF),
        _ => (0xD5, "aad", SF | ZF | PF),
    };
    g.byte(op);
    if k >= 4 {
        let base = if g.rng.chance(1, 2) { 10 } else { 1 + g.rng.below(255) };
        g.imm(base, 1);
    }
    (name.into(), fmask)
}

/// LAHF SAHF, and SALC when the host has it.
fn gen_flagsop(g: &mut Gen, salc: bool) -> (String, u32) {
    match g.rng.below(if salc { 3 } else { 2 }) {
        0 => {
            g.byte(0x9F);
            ("lahf".into(), ARITH)
        }
        1 => {
            g.byte(0x9E);
            ("sahf".into(), ARITH)
        }
        _ => {
            g.byte(0xD6);
            ("salc".into(), ARITH)
        }
    }
}

/// MOVS CMPS STOS LODS SCAS, with no prefix, REP/REPE and REPNE, over the
/// block in both directions.
fn gen_string(g: &mut Gen) -> (String, u32) {
    let k = g.rng.below(5) as usize;
    let (base_op, name, src, dst) = [
        (0xA4u8, "movs", true, true),
        (0xA6, "cmps", true, true),
        (0xAA, "stos", false, true),
        (0xAC, "lods", true, false),
        (0xAE, "scas", false, true),
    ][k];
    let size = g.size3();
    let rep = g.rng.below(3);
    let n = if rep != 0 {
        let n = if g.rng.chance(1, 8) { 0 } else { 1 + g.rng.below(7) };
        g.set_reg(ECX as u8, 4, n);
        n
    } else {
        1
    };
    let down = g.c.flags & DF != 0;
    let span = size * n.max(1);
    let start = |g: &mut Gen| {
        let s = g.rng.below(BLOCK as u32 - span + 1);
        if down {
            s + span - size
        } else {
            s
        }
    };
    let s_start = start(g);
    let d_start = start(g);
    let low = |s: u32| if down { s + size - span } else { s };
    if src {
        g.set_reg(ESI as u8, 4, SCRATCH + s_start);
    }
    if dst {
        g.set_reg(EDI as u8, 4, SCRATCH + d_start);
    }
    if k == 1 && g.rng.chance(1, 2) {
        // Equal runs so REPE/REPNE stop at interesting places.
        let (sl, dl) = (low(s_start) as usize, low(d_start) as usize);
        let tmp: Vec<u8> = g.c.mem[sl..sl + span as usize].to_vec();
        g.c.mem[dl..dl + span as usize].copy_from_slice(&tmp);
        if g.rng.chance(1, 2) {
            let at = dl + g.rng.below(span) as usize;
            g.c.mem[at] ^= 1 << g.rng.below(8);
        }
    }
    if k == 4 && g.rng.chance(1, 2) {
        let acc = g.reg(EAX as u8, size);
        let dl = low(d_start);
        for e in 0..n.max(1) {
            g.set_mem(dl + e * size, size, acc);
        }
        if g.rng.chance(1, 2) {
            let at = (dl + g.rng.below(span)) as usize;
            g.c.mem[at] ^= 1 << g.rng.below(8);
        }
    }
    if src && g.rng.chance(1, 4) {
        let s = g.rng.pick(&[0x26, 0x36, 0x3E]);
        g.byte(s);
    }
    let prefix = match rep {
        0 => "",
        1 => {
            g.byte(0xF3);
            "rep "
        }
        _ => {
            g.byte(0xF2);
            "repne "
        }
    };
    if size == 2 {
        g.byte(0x66);
    }
    g.byte(base_op + (size != 1) as u8);
    (format!("{}{}{}", prefix, name, size * 8), ARITH)
}

/// The flags condition code `cc` reads (SDM vol. 1, appendix B).
fn cc_reads(cc: u8) -> u32 {
    match cc >> 1 {
        0 => OF,
        1 => CF,
        2 => ZF,
        3 => CF | ZF,
        4 => SF,
        5 => PF,
        6 => SF | OF,
        _ => ZF | SF | OF,
    }
}

/// A flag-producing ALU, INC/DEC/NEG/NOT or shift instruction; the flags it
/// defines.
fn producer(g: &mut Gen) -> u32 {
    match g.rng.below(3) {
        0 => gen_alu(g).1,
        1 => gen_unary(g).1,
        _ => gen_shift(g).1,
    }
}

/// A flag producer, then an instruction that reads the flags or updates
/// only some of them: ferrite's lazy flags must carry over correctly. The
/// second instruction addresses memory absolutely (the first may change
/// any register) and only reads flags the first one defines.
fn gen_pair(g: &mut Gen) -> (String, u32) {
    let fa = producer(g);
    g.pinned = 0xFF;
    g.abs_only = true;
    let ok = |reads: u32| reads & !fa == 0;
    loop {
        match g.rng.below(8) {
            0 => {
                let cc = g.rng.below(16) as u8;
                if !ok(cc_reads(cc)) {
                    continue;
                }
                if g.rng.chance(1, 2) {
                    let rm = g.rm(1);
                    g.prefixes(1, rm, false);
                    g.bytes(&[0x0F, 0x90 + cc]);
                    g.modrm(0, rm);
                    return ("pair_setcc".into(), fa);
                }
                let size = g.size2();
                let rm = g.rm(size);
                let reg = g.rng.below(8) as u8;
                g.prefixes(size, rm, false);
                g.bytes(&[0x0F, 0x40 + cc]);
                g.modrm(reg, rm);
                return ("pair_cmov".into(), fa);
            }
            1 => {
                if !ok(CF) {
                    continue;
                }
                let op = g.rng.pick(&[2u8, 3]);
                let size = g.size3();
                let rm = g.rm(size);
                let reg = g.rng.below(8) as u8;
                g.prefixes(size, rm, true);
                g.byte(op * 8 + (size != 1) as u8);
                g.modrm(reg, rm);
                return (format!("pair_{}{}", ALU_NAMES[op as usize], size * 8), ARITH);
            }
            2 => {
                let size = g.size3();
                let rm = g.rm(size);
                let dec = g.rng.below(2) as u8;
                g.prefixes(size, rm, true);
                g.byte(0xFE + (size != 1) as u8);
                g.modrm(dec, rm);
                return (format!("pair_{}{}", ["inc", "dec"][dec as usize], size * 8), (ARITH & !CF) | (fa & CF));
            }
            3 => {
                if !ok(CF) {
                    continue;
                }
                let size = g.size3();
                let rm = g.rm(size);
                let sub = g.rng.pick(&[2u8, 3]);
                g.prefixes(size, rm, false);
                g.byte(0xD0 + (size != 1) as u8);
                g.modrm(sub, rm);
                let name = format!("pair_{}{}", SHIFT_NAMES[sub as usize], size * 8);
                return (name, CF | OF | (fa & (SF | ZF | AF | PF)));
            }
            4 => {
                if !ok(SF | ZF | AF | PF | CF) {
                    continue;
                }
                g.byte(0x9F);
                return ("pair_lahf".into(), fa);
            }
            5 => {
                if !ok(CF) {
                    continue;
                }
                g.byte(0xF5);
                return ("pair_cmc".into(), fa);
            }
            6 => {
                let k = g.rng.below(4) as usize;
                if !ok(if k < 2 { AF | CF } else { AF }) {
                    continue;
                }
                g.byte([0x27, 0x2F, 0x37, 0x3F][k]);
                let fmask = if k < 2 { CF | AF | SF | ZF | PF } else { AF | CF };
                return (format!("pair_{}", ["daa", "das", "aaa", "aas"][k]), fmask);
            }
            _ => {
                let stc = g.rng.below(2) as u8;
                g.byte(0xF8 + stc);
                return ("pair_clc_stc".into(), (fa & !CF) | CF);
            }
        }
    }
}

/// Jcc (rel8 and rel32), LOOP/LOOPE/LOOPNE and JECXZ (ECX or, with 67,
/// CX), sometimes after a flag producer. The taken path adds 0x55 to EBP.
fn gen_branch(g: &mut Gen) -> (String, u32) {
    let ecx = if g.rng.chance(1, 2) {
        g.rng.pick(&[0u32, 1, 2, 0x1_0000, 0x1_0001, 0xFFFF, 0xFFFF_FFFF])
    } else {
        g.rng.special(32)
    };
    g.set_reg(ECX as u8, 4, ecx);
    let fa = if g.rng.chance(1, 2) { producer(g) } else { ARITH };
    let name = loop {
        match g.rng.below(4) {
            0 | 1 => {
                let cc = g.rng.below(16) as u8;
                if cc_reads(cc) & !fa != 0 {
                    continue;
                }
                if g.rng.chance(1, 2) {
                    g.bytes(&[0x70 + cc, 2]);
                    break "jcc8";
                }
                g.bytes(&[0x0F, 0x80 + cc, 2, 0, 0, 0]);
                break "jcc32";
            }
            2 => {
                let k = g.rng.below(3) as usize;
                if k != 0 && fa & ZF == 0 {
                    continue;
                }
                let a16 = g.rng.chance(1, 3);
                if a16 {
                    g.byte(0x67);
                }
                g.bytes(&[[0xE2, 0xE1, 0xE0][k], 2]);
                break match (k, a16) {
                    (0, false) => "loop",
                    (0, true) => "loop_cx",
                    (1, false) => "loope",
                    (1, true) => "loope_cx",
                    (_, false) => "loopne",
                    _ => "loopne_cx",
                };
            }
            _ => {
                let a16 = g.rng.chance(1, 3);
                if a16 {
                    g.byte(0x67);
                }
                g.bytes(&[0xE3, 2]);
                break if a16 { "jcxz" } else { "jecxz" };
            }
        }
    };
    // Not taken: jmp over the marker; taken: lea ebp,[ebp+0x55].
    g.bytes(&[0xEB, 0x03, 0x8D, 0x6D, 0x55]);
    (name.into(), fa)
}

/// Point ESP at a block offset in lo..=hi; returns the offset.
fn set_esp(g: &mut Gen, lo: u32, hi: u32) -> u32 {
    let off = if g.rng.chance(3, 4) {
        let (a, b) = (lo.div_ceil(4), hi / 4);
        4 * (a + g.rng.below(b - a + 1))
    } else {
        lo + g.rng.below(hi - lo + 1)
    };
    g.set_reg(ESP as u8, 4, SCRATCH + off);
    off
}

/// PUSH POP (register, immediate, memory), PUSHA POPA, PUSHF POPF, ENTER
/// LEAVE, 16- and 32-bit, with the stack in the block.
fn gen_stack(g: &mut Gen) -> (String, u32) {
    let size = g.size2();
    let b = BLOCK as u32;
    let name = match g.rng.below(10) {
        0 => {
            set_esp(g, size, b);
            g.prefixes(size, Rm::Reg(0), false);
            let r = g.rng.below(8) as u8;
            g.byte(0x50 + r);
            "push"
        }
        1 => {
            set_esp(g, 0, b - size);
            g.prefixes(size, Rm::Reg(0), false);
            let r = g.rng.below(8) as u8;
            g.byte(0x58 + r);
            "pop"
        }
        2 => {
            set_esp(g, size, b);
            g.prefixes(size, Rm::Reg(0), false);
            if g.rng.chance(1, 2) {
                g.byte(0x6A);
                let v = g.rng.special(8);
                g.imm(v, 1);
            } else {
                g.byte(0x68);
                let v = g.rng.special(size * 8);
                g.imm(v, size);
            }
            "push_imm"
        }
        3 => {
            set_esp(g, size, b);
            let rm = Rm::Mem(g.mem_off(size));
            g.prefixes(size, rm, false);
            g.byte(0xFF);
            g.modrm(6, rm);
            "push_mem"
        }
        4 => {
            set_esp(g, 0, b - size);
            g.esp_bias = size;
            let rm = Rm::Mem(g.mem_off(size));
            g.prefixes(size, rm, false);
            g.byte(0x8F);
            g.modrm(0, rm);
            "pop_mem"
        }
        5 => {
            set_esp(g, 8 * size, b);
            g.prefixes(size, Rm::Reg(0), false);
            g.byte(0x60);
            "pusha"
        }
        6 => {
            set_esp(g, 0, b - 8 * size);
            g.prefixes(size, Rm::Reg(0), false);
            g.byte(0x61);
            "popa"
        }
        7 => {
            set_esp(g, size, b);
            g.prefixes(size, Rm::Reg(0), false);
            g.byte(0x9C);
            "pushf"
        }
        8 => {
            // Everything CPL 3 may change, and reserved bits (which read as
            // fixed values). TF and AC would trap on the host.
            let off = set_esp(g, 0, b - size);
            let v = (g.rng.u32() & (ARITH | DF | NT | ID | 0xFFC0_802A)) | IF;
            g.set_mem(off, size, v);
            g.prefixes(size, Rm::Reg(0), false);
            g.byte(0x9D);
            "popf"
        }
        9 => {
            let level = g.rng.pick(&[0u32, 1, 1, 2, 3, 4, 32, 33]);
            let l = level & 31;
            // The copied frame pointers must not overlap the new frame: a
            // modern host writes the last slot before copying (the SDM and
            // ferrite copy first), an ordering no program relies on.
            loop {
                let sp = set_esp(g, size * (l + 1), b);
                let bp = if l == 0 { g.rng.below(b + 1) } else { size * l + g.rng.below(b - size * l + 1) };
                g.set_reg(5, 4, SCRATCH + bp);
                if l <= 1 || bp + size * (l + 1) <= sp || bp >= sp + size * (l - 1) {
                    break;
                }
            }
            g.prefixes(size, Rm::Reg(0), false);
            g.byte(0xC8);
            let alloc = g.rng.special(16);
            g.imm(alloc, 2);
            g.imm(level, 1);
            "enter"
        }
        _ => {
            let ebp = g.rng.below(b - size + 1);
            g.set_reg(5, 4, SCRATCH + ebp);
            g.prefixes(size, Rm::Reg(0), false);
            g.byte(0xC9);
            "leave"
        }
    };
    (format!("{name}{}", size * 8), ARITH)
}

/// MOV r/m, Sreg (a 32-bit register gets the zero-extended selector, memory
/// always 16 bits) and PUSH Sreg (with a 32-bit operand size the high word
/// of the slot is vendor-specific, see below).
fn gen_sreg(g: &mut Gen) -> (String, u32) {
    let size = g.size2();
    let sreg = g.rng.below(6) as u8;
    if g.rng.chance(1, 2) {
        let rm = g.rm(size);
        g.prefixes(size, rm, false);
        g.byte(0x8C);
        g.modrm(sreg, rm);
        let dst = if let Rm::Mem(_) = rm { "mem" } else { "reg" };
        return (format!("mov_{dst}{}_sreg", size * 8), ARITH);
    }
    let off = set_esp(g, size, BLOCK as u32);
    if size == 4 {
        // With a 32-bit operand size Intel P6 and later processors write
        // only the low word of the slot; AMD processors write the
        // zero-extended selector. A slot whose high word is already zero
        // reads the same either way.
        g.set_mem(off - 2, 2, 0);
    }
    g.prefixes(size, Rm::Reg(0), false);
    match sreg {
        0..=3 => g.byte([0x06, 0x0E, 0x16, 0x1E][sreg as usize]),
        _ => g.bytes(&[0x0F, if sreg == 4 { 0xA0 } else { 0xA8 }]),
    }
    (format!("push_sreg{}", size * 8), ARITH)
}

/// MOV forms, XLAT, CLC STC CMC CLD STD.
fn gen_misc(g: &mut Gen) -> (String, u32) {
    let size = g.size3();
    let w = (size != 1) as u8;
    let name = match g.rng.below(6) {
        0 => {
            let rm = g.rm(size);
            let reg = g.rng.below(8) as u8;
            g.prefixes(size, rm, false);
            let to_rm = g.rng.below(2) as u8;
            g.byte(0x88 + 2 * to_rm + w);
            g.modrm(reg, rm);
            "mov"
        }
        1 => {
            let rm = g.rm(size);
            g.prefixes(size, rm, false);
            g.byte(0xC6 + w);
            g.modrm(0, rm);
            let v = g.rng.special(size * 8);
            g.imm(v, size);
            "mov_imm"
        }
        2 => {
            g.prefixes(size, Rm::Reg(0), false);
            let r = g.rng.below(8) as u8;
            g.byte(if size == 1 { 0xB0 } else { 0xB8 } + r);
            let v = g.rng.special(size * 8);
            g.imm(v, size);
            "mov_reg_imm"
        }
        3 => {
            let rm = Rm::Mem(g.mem_off(size));
            g.prefixes(size, rm, false);
            let store = g.rng.below(2) as u8;
            g.byte(0xA0 + 2 * store + w);
            let off = match rm {
                Rm::Mem(off) => off,
                Rm::Reg(_) => unreachable!(),
            };
            g.imm(SCRATCH + off, 4);
            "mov_moffs"
        }
        4 => {
            let al = g.reg(0, 1);
            let at = g.rng.below(BLOCK as u32);
            g.set_reg(3, 4, (SCRATCH + at).wrapping_sub(al));
            g.set_reg(0, 1, al);
            if g.rng.chance(1, 4) {
                let s = g.rng.pick(&[0x26, 0x36, 0x3E]);
                g.byte(s);
            }
            g.byte(0xD7);
            return ("xlat".into(), ARITH);
        }
        _ => {
            let k = g.rng.below(5) as usize;
            g.byte([0xF8, 0xF9, 0xF5, 0xFC, 0xFD][k]);
            return (["clc", "stc", "cmc", "cld", "std"][k].into(), ARITH);
        }
    };
    (format!("{name}{}", size * 8), ARITH)
}

/// MMX operations on (mm, mm/m64) as (second opcode byte, name); the
/// unpacks of the low halves read only 32 bits from memory.
const MMX_OPS: [(u8, &str); 44] = [
    (0x60, "punpcklbw"),
    (0x61, "punpcklwd"),
    (0x62, "punpckldq"),
    (0x63, "packsswb"),
    (0x64, "pcmpgtb"),
    (0x65, "pcmpgtw"),
    (0x66, "pcmpgtd"),
    (0x67, "packuswb"),
    (0x68, "punpckhbw"),
    (0x69, "punpckhwd"),
    (0x6A, "punpckhdq"),
    (0x6B, "packssdw"),
    (0x74, "pcmpeqb"),
    (0x75, "pcmpeqw"),
    (0x76, "pcmpeqd"),
    (0xD1, "psrlw"),
    (0xD2, "psrld"),
    (0xD3, "psrlq"),
    (0xD5, "pmullw"),
    (0xD8, "psubusb"),
    (0xD9, "psubusw"),
    (0xDB, "pand"),
    (0xDC, "paddusb"),
    (0xDD, "paddusw"),
    (0xDF, "pandn"),
    (0xE1, "psraw"),
    (0xE2, "psrad"),
    (0xE5, "pmulhw"),
    (0xE8, "psubsb"),
    (0xE9, "psubsw"),
    (0xEB, "por"),
    (0xEC, "paddsb"),
    (0xED, "paddsw"),
    (0xEF, "pxor"),
    (0xF1, "psllw"),
    (0xF2, "pslld"),
    (0xF3, "psllq"),
    (0xF5, "pmaddwd"),
    (0xF8, "psubb"),
    (0xF9, "psubw"),
    (0xFA, "psubd"),
    (0xFC, "paddb"),
    (0xFD, "paddw"),
    (0xFE, "paddd"),
];

/// A 64-bit MMX operand biased toward lane limits (saturation, signs).
fn mmx_value(rng: &mut Rng) -> u64 {
    let r = rng.next();
    match rng.below(8) {
        0 => 0,
        1 => u64::MAX,
        2 => 0x8000_8000_8000_8000 ^ (r & 0x00FF_00FF_00FF_00FF),
        3 => 0x7F7F_7F7F_7F7F_7F7F ^ (r & 0x0101_0101_0101_0101),
        4 => 0x8080_8080_8080_8080 | (r & 0x0101_0101_0101_0101),
        5 => 0x7FFF_8000_0000_FFFF ^ (r & 0x0001_0001_0001_0001),
        _ => r,
    }
}

/// One MMX instruction between loads of its registers from the block
/// (MOVQ) and a store of the result to the block, then EMMS: the block,
/// and for MOVD to a general register that register, carry the result.
fn gen_mmx(g: &mut Gen) -> (String, u32) {
    let abs = |g: &mut Gen, op: u8, reg: u8, off: u32| {
        g.bytes(&[0x0F, op, reg << 3 | 5]);
        g.imm(SCRATCH + off, 4);
    };
    let d = g.rng.below(8) as u8;
    let s = g.rng.below(8) as u8;
    let (o1, o2, o3) = (g.mem_off(8), g.mem_off(8), g.mem_off(8));
    let (a, b) = (mmx_value(g.rng), mmx_value(g.rng));
    g.c.mem[o1 as usize..o1 as usize + 8].copy_from_slice(&a.to_le_bytes());
    abs(g, 0x6F, d, o1);
    let name = match g.rng.below(12) {
        10 | 11 => {
            // SSE's additions on MMX registers.
            let sse2: [(u8, &str); 8] = [
                (0xE0, "pavgb"),
                (0xE3, "pavgw"),
                (0xEE, "pmaxsw"),
                (0xDE, "pmaxub"),
                (0xEA, "pminsw"),
                (0xDA, "pminub"),
                (0xE4, "pmulhuw"),
                (0xF6, "psadbw"),
            ];
            let r = g.rng.pick(&[0u8, 1, 2, 3, 5, 6, 7]);
            g.c.mem[o2 as usize..o2 as usize + 8].copy_from_slice(&b.to_le_bytes());
            match g.rng.below(8) {
                0 => {
                    let imm = g.rng.below(256) as u8;
                    g.bytes(&[0x0F, 0xC5, 0xC0 | r << 3 | d, imm]);
                    "pextrw"
                }
                1 => {
                    let imm = g.rng.below(256) as u8;
                    if g.rng.chance(1, 2) {
                        g.bytes(&[0x0F, 0xC4, 0xC0 | d << 3 | r, imm]);
                    } else {
                        abs(g, 0xC4, d, o2);
                        g.byte(imm);
                    }
                    "pinsrw"
                }
                2 => {
                    g.bytes(&[0x0F, 0xD7, 0xC0 | r << 3 | d]);
                    "pmovmskb"
                }
                3 => {
                    let imm = g.rng.below(256) as u8;
                    abs(g, 0x70, d, o2);
                    g.byte(imm);
                    "pshufw"
                }
                4 => {
                    abs(g, 0xE7, d, o2);
                    "movntq"
                }
                5 => {
                    // MASKMOVQ mm_d, mm_s: to DS:EDI, inside the block.
                    abs(g, 0x6F, s, o2);
                    let at = g.mem_off(8);
                    g.set_reg(7, 4, SCRATCH + at);
                    g.bytes(&[0x0F, 0xF7, 0xC0 | d << 3 | s]);
                    "maskmovq"
                }
                _ => {
                    let (op, name) = g.rng.pick(&sse2);
                    if g.rng.chance(1, 2) {
                        abs(g, 0x6F, s, o2);
                        g.bytes(&[0x0F, op, 0xC0 | d << 3 | s]);
                    } else {
                        abs(g, op, d, o2);
                    }
                    name
                }
            }
        }
        0 => {
            // MOVD mm, r32 / MOVD r32, mm / MOVD m32, mm / MOVD mm, m32.
            // (Not ESP: the driver's.)
            let r = g.rng.pick(&[0u8, 1, 2, 3, 5, 6, 7]);
            match g.rng.below(4) {
                0 => g.bytes(&[0x0F, 0x6E, 0xC0 | d << 3 | r]),
                1 => g.bytes(&[0x0F, 0x7E, 0xC0 | d << 3 | r]),
                2 => abs(g, 0x7E, d, o2),
                _ => abs(g, 0x6E, d, o2),
            }
            "movd"
        }
        1 => {
            let k = g.rng.below(8) as usize;
            let (op, grp, name) = [
                (0x71, 2, "psrlw_imm"),
                (0x71, 4, "psraw_imm"),
                (0x71, 6, "psllw_imm"),
                (0x72, 2, "psrld_imm"),
                (0x72, 4, "psrad_imm"),
                (0x72, 6, "pslld_imm"),
                (0x73, 2, "psrlq_imm"),
                (0x73, 6, "psllq_imm"),
            ][k];
            let n = if g.rng.chance(3, 4) { g.rng.below(70) } else { g.rng.below(256) };
            g.bytes(&[0x0F, op, 0xC0 | grp << 3 | d, n as u8]);
            name
        }
        _ => {
            let (op, name) = g.rng.pick(&MMX_OPS);
            let shift = matches!(op, 0xD1..=0xD3 | 0xE1 | 0xE2 | 0xF1..=0xF3);
            let b = if shift && g.rng.chance(3, 4) { g.rng.below(70) as u64 } else { b };
            g.c.mem[o2 as usize..o2 as usize + 8].copy_from_slice(&b.to_le_bytes());
            if g.rng.chance(1, 2) {
                abs(g, 0x6F, s, o2);
                g.bytes(&[0x0F, op, 0xC0 | d << 3 | s]);
            } else {
                abs(g, op, d, o2);
            }
            name
        }
    };
    abs(g, 0x7F, d, o3);
    g.bytes(&[0x0F, 0x77]);
    (name.into(), ARITH)
}

/// A single-precision operand biased toward the special encodings:
/// signed zeros, denormals, infinities, QNaNs and SNaNs, the normal
/// range's ends, values whose sums and products round at ties.
fn single(rng: &mut Rng) -> u32 {
    let sign = (rng.chance(1, 2) as u32) << 31;
    let r = rng.u32();
    let f = r & 0x007F_FFFF;
    sign | match rng.below(14) {
        0 => 0,
        1 => f.max(1) >> rng.below(23),
        2 => 0x7F80_0000,
        3 => 0x7FC0_0000 | f,
        4 => 0x7F80_0000 | (f & 0x003F_FFFF).max(1),
        5 => 0x7F7F_FFFF - rng.below(4),
        6 => 0x0080_0000 + rng.below(4),
        7 => (0x3F80_0000 + (rng.below(40) << 23)) | (f & !(0x007F_FFFF >> rng.below(6))),
        8 => (1 + rng.below(20)) << 23 | f,
        9 => (0xFE - rng.below(20)) << 23 | f,
        _ => (0x3F00_0000 + (rng.below(64) << 23)) ^ f,
    }
}

/// SSE (XMM) forms as (opcode bytes after 0F, name, scalar, takes imm8).
const SSE_OPS: [(&[u8], &str, bool, bool); 30] = [
    (&[0x58], "addps", false, false),
    (&[0x5C], "subps", false, false),
    (&[0x59], "mulps", false, false),
    (&[0x5E], "divps", false, false),
    (&[0x51], "sqrtps", false, false),
    (&[0x5F], "maxps", false, false),
    (&[0x5D], "minps", false, false),
    (&[0xC2], "cmpps", false, true),
    (&[0x54], "andps", false, false),
    (&[0x55], "andnps", false, false),
    (&[0x56], "orps", false, false),
    (&[0x57], "xorps", false, false),
    (&[0x14], "unpcklps", false, false),
    (&[0x15], "unpckhps", false, false),
    (&[0xC6], "shufps", false, true),
    (&[0x28], "movaps", false, false),
    (&[0x10], "movups", false, false),
    (&[0x12], "movhlps", false, false),
    (&[0x16], "movlhps", false, false),
    (&[0x2F], "comiss", true, false),
    (&[0x2E], "ucomiss", true, false),
    (&[0x58], "addss", true, false),
    (&[0x5C], "subss", true, false),
    (&[0x59], "mulss", true, false),
    (&[0x5E], "divss", true, false),
    (&[0x51], "sqrtss", true, false),
    (&[0x5F], "maxss", true, false),
    (&[0x5D], "minss", true, false),
    (&[0xC2], "cmpss", true, true),
    (&[0x10], "movss", true, false),
];

/// One SSE instruction with MXCSR loaded from the block (random rounding,
/// FTZ, DAZ; every exception masked), its registers loaded from the block,
/// the result register and MXCSR stored back: the block, EFLAGS (COMISS)
/// and general registers (MOVMSKPS, CVTSS2SI) carry the results. Block:
/// operand A at 0, B at 16 (16-byte aligned), the result at 32, MXCSR in
/// at 48 and out at 52.
fn gen_sse(g: &mut Gen) -> (String, u32) {
    let abs = |g: &mut Gen, op: &[u8], reg: u8, off: u32| {
        g.bytes(&[0x0F]);
        g.bytes(op);
        g.byte(reg << 3 | 5);
        g.imm(SCRATCH + off, 4);
    };
    for k in 0..8 {
        let v = single(g.rng);
        g.c.mem[4 * k..4 * k + 4].copy_from_slice(&v.to_le_bytes());
    }
    let rc = g.rng.below(4) << 13;
    let ftz = if g.rng.chance(1, 3) { 1 << 15 } else { 0 };
    let daz = if g.rng.chance(1, 3) { 1 << 6 } else { 0 };
    let mxcsr = 0x1F80 | rc | ftz | daz;
    g.c.mem[48..52].copy_from_slice(&mxcsr.to_le_bytes());
    abs(g, &[0xAE], 2, 48); // LDMXCSR
    let (d, s) = (g.rng.below(8) as u8, g.rng.below(8) as u8);
    abs(g, &[0x10], d, 0); // MOVUPS xmm_d, A
    let name = match g.rng.below(9) {
        8 => {
            // Half and scalar stores to the block's end (56), half loads,
            // and the conversions between XMM and MMX registers.
            let m = g.rng.below(4) as u8;
            match g.rng.below(7) {
                0 => {
                    abs(g, &[0x12], d, 16 + 8 * (m as u32 & 1));
                    "movlps_load"
                }
                1 => {
                    abs(g, &[0x16], d, 16 + 8 * (m as u32 & 1));
                    "movhps_load"
                }
                2 => {
                    abs(g, &[0x13], d, 56);
                    "movlps_store"
                }
                3 => {
                    abs(g, &[0x17], d, 56);
                    "movhps_store"
                }
                4 => {
                    g.byte(0xF3);
                    abs(g, &[0x11], d, 56 + 4 * (m as u32 & 1));
                    "movss_store"
                }
                5 => {
                    abs(g, &[0x6F], m, 16); // MOVQ mm, [B]
                    g.bytes(&[0x0F, 0x2A, 0xC0 | d << 3 | m]);
                    g.bytes(&[0x0F, 0x77]);
                    "cvtpi2ps"
                }
                _ => {
                    let t = g.rng.below(2) as u8;
                    g.bytes(&[0x0F, 0x2D - t, 0xC0 | m << 3 | d]);
                    abs(g, &[0x7F], m, 56); // MOVQ [56], mm
                    g.bytes(&[0x0F, 0x77]);
                    if t == 1 {
                        "cvttps2pi"
                    } else {
                        "cvtps2pi"
                    }
                }
            }
        }
        0 => {
            // MOVMSKPS r32, xmm / CVT(T)SS2SI r32, xmm/m32 / CVTSI2SS.
            let r = g.rng.pick(&[0u8, 1, 2, 3, 5, 6, 7]);
            match g.rng.below(4) {
                0 => {
                    g.bytes(&[0x0F, 0x50, 0xC0 | r << 3 | d]);
                    "movmskps"
                }
                1 => {
                    g.bytes(&[0xF3, 0x0F, 0x2D, 0xC0 | r << 3 | d]);
                    "cvtss2si"
                }
                2 => {
                    let at = 16 + 4 * g.rng.below(4);
                    g.byte(0xF3);
                    abs(g, &[0x2C], r, at);
                    "cvttss2si"
                }
                _ => {
                    g.byte(0xF3);
                    g.bytes(&[0x0F, 0x2A, 0xC0 | d << 3 | r]);
                    "cvtsi2ss"
                }
            }
        }
        _ => {
            let (op, name, scalar, imm) = g.rng.pick(&SSE_OPS);
            let reg_only = matches!(name, "movhlps" | "movlhps");
            let prefix = scalar && !name.contains("comiss");
            if reg_only || g.rng.chance(1, 2) {
                abs(g, &[0x10], s, 16);
                if prefix {
                    g.byte(0xF3);
                }
                g.bytes(&[0x0F]);
                g.bytes(op);
                g.byte(0xC0 | d << 3 | s);
            } else {
                let at = if scalar { 16 + 4 * g.rng.below(4) } else { 16 };
                if prefix {
                    g.byte(0xF3);
                }
                abs(g, op, d, at);
            }
            if imm {
                let v = if name.starts_with("cmp") { g.rng.below(8) } else { g.rng.below(256) };
                g.byte(v as u8);
            }
            name
        }
    };
    abs(g, &[0x11], d, 32); // MOVUPS result
    abs(g, &[0xAE], 3, 52); // STMXCSR
    (name.into(), ARITH)
}

/// A double-precision operand biased as [`single`] is.
fn double(rng: &mut Rng) -> u64 {
    let sign = (rng.chance(1, 2) as u64) << 63;
    let f = rng.next() & ((1 << 52) - 1);
    sign | match rng.below(14) {
        0 => 0,
        1 => f.max(1) >> rng.below(52),
        2 => 0x7FF0 << 48,
        3 => 0x7FF8 << 48 | f,
        4 => 0x7FF0 << 48 | (f & ((1 << 51) - 1)).max(1),
        5 => 0x7FEF_FFFF_FFFF_FFFF - rng.below(4) as u64,
        6 => (1 << 52) + rng.below(4) as u64,
        7 => (0x3FF + rng.below(60) as u64) << 52 | (f & !(((1u64 << 52) - 1) >> rng.below(8))),
        8 => (1 + rng.below(40) as u64) << 52 | f,
        9 => (0x7FE - rng.below(40) as u64) << 52 | f,
        // Values near single precision's range ends (CVTSD2SS).
        10 => (0x380 + rng.below(8) as u64 - 4) << 52 | f,
        11 => (0x47E + rng.below(4) as u64) << 52 | f,
        _ => ((0x3E0 + rng.below(64) as u64) << 52) ^ f,
    }
}

/// One SSE2 instruction in `gen_sse`'s frame (block: A at 0, B at 16, the
/// result at 32, MXCSR in at 48 and out at 52): the double-precision
/// arithmetic, compares, logic, shuffles and moves, the conversions, and
/// the 128-bit integer instructions (and PADDQ/PSUBQ/PMULUDQ on MMX
/// registers).
fn gen_sse2(g: &mut Gen) -> (String, u32) {
    let abs = |g: &mut Gen, pre: Option<u8>, op: u8, reg: u8, off: u32| {
        if let Some(p) = pre {
            g.byte(p);
        }
        g.bytes(&[0x0F, op, reg << 3 | 5]);
        g.imm(SCRATCH + off, 4);
    };
    let fp = g.rng.chance(1, 2);
    for k in 0..4 {
        if fp && g.rng.chance(3, 4) {
            let v = double(g.rng);
            g.c.mem[8 * k..8 * k + 8].copy_from_slice(&v.to_le_bytes());
        } else if fp {
            let v = (single(g.rng) as u64) | (single(g.rng) as u64) << 32;
            g.c.mem[8 * k..8 * k + 8].copy_from_slice(&v.to_le_bytes());
        } else {
            let v = mmx_value(g.rng);
            g.c.mem[8 * k..8 * k + 8].copy_from_slice(&v.to_le_bytes());
        }
    }
    let rc = g.rng.below(4) << 13;
    let ftz = if g.rng.chance(1, 3) { 1 << 15 } else { 0 };
    let daz = if g.rng.chance(1, 3) { 1 << 6 } else { 0 };
    let mxcsr = 0x1F80 | rc | ftz | daz;
    g.c.mem[48..52].copy_from_slice(&mxcsr.to_le_bytes());
    abs(g, None, 0xAE, 2, 48); // LDMXCSR
    let (d, s) = (g.rng.below(8) as u8, g.rng.below(8) as u8);
    abs(g, None, 0x10, d, 0); // MOVUPS xmm_d, A
                              // (prefix, opcode, name, memory operand size or 0 for register only,
                              // imm8, destination a general or MMX register).
    type Form = (Option<u8>, u8, &'static str, u32, bool);
    const FP: [Form; 36] = [
        (Some(0x66), 0x58, "addpd", 16, false),
        (Some(0xF2), 0x58, "addsd", 8, false),
        (Some(0x66), 0x5C, "subpd", 16, false),
        (Some(0xF2), 0x5C, "subsd", 8, false),
        (Some(0x66), 0x59, "mulpd", 16, false),
        (Some(0xF2), 0x59, "mulsd", 8, false),
        (Some(0x66), 0x5E, "divpd", 16, false),
        (Some(0xF2), 0x5E, "divsd", 8, false),
        (Some(0x66), 0x51, "sqrtpd", 16, false),
        (Some(0xF2), 0x51, "sqrtsd", 8, false),
        (Some(0x66), 0x5F, "maxpd", 16, false),
        (Some(0xF2), 0x5D, "minsd", 8, false),
        (Some(0x66), 0xC2, "cmppd", 16, true),
        (Some(0xF2), 0xC2, "cmpsd", 8, true),
        (Some(0x66), 0x55, "andnpd", 16, false),
        (Some(0x66), 0x57, "xorpd", 16, false),
        (Some(0x66), 0x14, "unpcklpd", 16, false),
        (Some(0x66), 0x15, "unpckhpd", 16, false),
        (Some(0x66), 0xC6, "shufpd", 16, true),
        (Some(0x66), 0x2F, "comisd", 8, false),
        (Some(0x66), 0x2E, "ucomisd", 8, false),
        (Some(0xF2), 0x10, "movsd", 8, false),
        (Some(0x66), 0x16, "movhpd", 8, false),
        (Some(0x66), 0x12, "movlpd", 8, false),
        (Some(0xF3), 0x5A, "cvtss2sd", 4, false),
        (Some(0xF2), 0x5A, "cvtsd2ss", 8, false),
        (None, 0x5A, "cvtps2pd", 8, false),
        (Some(0x66), 0x5A, "cvtpd2ps", 16, false),
        (None, 0x5B, "cvtdq2ps", 16, false),
        (Some(0x66), 0x5B, "cvtps2dq", 16, false),
        (Some(0xF3), 0x5B, "cvttps2dq", 16, false),
        (Some(0xF3), 0xE6, "cvtdq2pd", 8, false),
        (Some(0xF2), 0xE6, "cvtpd2dq", 16, false),
        (Some(0x66), 0xE6, "cvttpd2dq", 16, false),
        (Some(0x66), 0x6F, "movdqa", 16, false),
        (Some(0xF3), 0x7E, "movq", 8, false),
    ];
    let name = match g.rng.below(if fp { 6 } else { 5 }) {
        4 if !fp => {
            // Stores, loads of other widths, the non-temporal and
            // masked moves, MOVQ2DQ, PINSRW, CLFLUSH and the fences.
            let r = g.rng.pick(&[0u8, 1, 2, 3, 5, 6, 7]);
            let m = g.rng.below(8) as u8;
            let imm = g.rng.below(256) as u8;
            abs(g, None, 0x10, s, 16); // MOVUPS xmm_s, B
            match g.rng.below(19) {
                0 => {
                    abs(g, None, 0x6F, m, 16); // MOVQ mm, [B]
                    g.bytes(&[0xF3, 0x0F, 0xD6, 0xC0 | d << 3 | m, 0x0F, 0x77]);
                    "movq2dq"
                }
                1 => {
                    g.bytes(&[0x66, 0x0F, 0xC4, 0xC0 | d << 3 | r, imm]);
                    "pinsrw_xmm"
                }
                2 => {
                    abs(g, Some(0x66), 0xC4, d, 16 + 2 * (imm as u32 & 7));
                    g.byte(imm);
                    "pinsrw_xmm_m16"
                }
                3 => {
                    let at = g.mem_off(16);
                    g.set_reg(7, 4, SCRATCH + at);
                    g.bytes(&[0x66, 0x0F, 0xF7, 0xC0 | d << 3 | s]);
                    "maskmovdqu"
                }
                4 => {
                    abs(g, Some(0x66), 0xE7, s, 16);
                    "movntdq"
                }
                5 => {
                    abs(g, Some(0x66), 0x2B, s, 16);
                    "movntpd"
                }
                6 => {
                    abs(g, None, 0xC3, r, 56);
                    "movnti"
                }
                7 => {
                    abs(g, Some(0x66), 0xD6, s, 56);
                    "movq_store"
                }
                8 => {
                    g.bytes(&[0x66, 0x0F, 0xD6, 0xC0 | s << 3 | d]);
                    "movq_xmm"
                }
                9 => {
                    abs(g, Some(0x66), 0x7E, s, 56);
                    "movd_store"
                }
                10 => {
                    abs(g, Some(0x66), 0x6E, d, 16);
                    "movd_load"
                }
                11 => {
                    abs(g, Some(0xF2), 0x2A, d, 16);
                    "cvtsi2sd_m32"
                }
                12 => {
                    abs(g, Some(0xF2), 0x2D, r, 16);
                    "cvtsd2si_m64"
                }
                13 => {
                    abs(g, None, 0xAE, 7, 16);
                    g.bytes(&[0x0F, 0xAE, 0xE8, 0x0F, 0xAE, 0xF0]);
                    "clflush_fences"
                }
                14 => {
                    abs(g, Some(0x66), 0x29, s, 16);
                    "movapd_store"
                }
                15 => {
                    abs(g, Some(0x66), 0x11, s, 8);
                    "movupd_store"
                }
                16 => {
                    abs(g, Some(0xF3), 0x6F, d, 8);
                    "movdqu_load"
                }
                17 => {
                    abs(g, Some(0x66), [0x17, 0x13][imm as usize & 1], s, 56);
                    "movhpd_movlpd_store"
                }
                _ => {
                    abs(g, Some(0xF2), 0x11, s, 56);
                    "movsd_store"
                }
            }
        }
        0 if !fp => {
            // General-register destinations and sources.
            let r = g.rng.pick(&[0u8, 1, 2, 3, 5, 6, 7]);
            let forms: [(u8, u8, &str, bool); 7] = [
                (0xF2, 0x2D, "cvtsd2si", true),
                (0xF2, 0x2C, "cvttsd2si", true),
                (0xF2, 0x2A, "cvtsi2sd", false),
                (0x66, 0x50, "movmskpd", true),
                (0x66, 0xD7, "pmovmskb", true),
                (0x66, 0x7E, "movd_out", false),
                (0x66, 0x6E, "movd_in", false),
            ];
            let (p, op, name, to_gpr) = g.rng.pick(&forms);
            let to_gpr = to_gpr || op == 0x7E;
            let rm = if to_gpr { 0xC0 | r << 3 | d } else { 0xC0 | d << 3 | r };
            g.bytes(&[p, 0x0F, op, rm]);
            name
        }
        1 if !fp => {
            // MMX-register forms: PADDQ/PSUBQ/PMULUDQ mm, CVTPD2PI and
            // CVTPI2PD, MOVDQ2Q/MOVQ2DQ (then MM stored at 56, EMMS).
            let m = g.rng.below(8) as u8;
            abs(g, None, 0x6F, m, 16); // MOVQ mm, [B]
            let (name, bytes): (&str, Vec<u8>) = match g.rng.below(7) {
                0 => ("paddq_mm", vec![0x0F, 0xD4, 0xC0 | m << 3 | m]),
                1 => ("psubq_mm", vec![0x0F, 0xFB, 0xC0 | m << 3 | m]),
                2 => ("pmuludq_mm", vec![0x0F, 0xF4, 0xC0 | m << 3 | m]),
                3 => ("cvtpd2pi", vec![0x66, 0x0F, 0x2D, 0xC0 | m << 3 | d]),
                4 => ("cvttpd2pi", vec![0x66, 0x0F, 0x2C, 0xC0 | m << 3 | d]),
                5 => ("cvtpi2pd", vec![0x66, 0x0F, 0x2A, 0xC0 | d << 3 | m]),
                _ => ("movdq2q", vec![0xF2, 0x0F, 0xD6, 0xC0 | m << 3 | d]),
            };
            g.bytes(&bytes);
            abs(g, None, 0x7F, m, 56); // MOVQ [56], mm
            g.bytes(&[0x0F, 0x77]);
            name
        }
        0 | 1 => {
            // Integer immediate forms.
            let forms: [(u8, u8, u8, &str); 11] = [
                (0x66, 0x71, 2, "psrlw_imm"),
                (0x66, 0x71, 4, "psraw_imm"),
                (0x66, 0x71, 6, "psllw_imm"),
                (0x66, 0x72, 2, "psrld_imm"),
                (0x66, 0x72, 4, "psrad_imm"),
                (0x66, 0x72, 6, "pslld_imm"),
                (0x66, 0x73, 2, "psrlq_imm"),
                (0x66, 0x73, 6, "psllq_imm"),
                (0x66, 0x73, 3, "psrldq"),
                (0x66, 0x73, 7, "pslldq"),
                (0x66, 0xC5, 0, "pextrw"),
            ];
            let (p, op, grp, name) = g.rng.pick(&forms);
            let n = if g.rng.chance(3, 4) { g.rng.below(40) } else { g.rng.below(256) } as u8;
            if op == 0xC5 {
                let r = g.rng.pick(&[0u8, 1, 2, 3, 5, 6, 7]);
                g.bytes(&[p, 0x0F, op, 0xC0 | r << 3 | d, n]);
            } else {
                g.bytes(&[p, 0x0F, op, 0xC0 | grp << 3 | d, n]);
            }
            name
        }
        2 | 3 if !fp => {
            // 128-bit integer forms on (xmm, xmm/m128).
            let ops: [(u8, &str); 26] = [
                (0xFC, "paddb"),
                (0xED, "paddsw"),
                (0xDD, "paddusw"),
                (0xD4, "paddq"),
                (0xF8, "psubb"),
                (0xFB, "psubq"),
                (0xD8, "psubusb"),
                (0xD5, "pmullw"),
                (0xE5, "pmulhw"),
                (0xE4, "pmulhuw"),
                (0xF4, "pmuludq"),
                (0xF5, "pmaddwd"),
                (0x63, "packsswb"),
                (0x6B, "packssdw"),
                (0x67, "packuswb"),
                (0x60, "punpcklbw"),
                (0x69, "punpckhwd"),
                (0x62, "punpckldq"),
                (0x6C, "punpcklqdq"),
                (0x6D, "punpckhqdq"),
                (0x66, "pcmpgtd"),
                (0x74, "pcmpeqb"),
                (0xE2, "psrad"),
                (0xF3, "psllq"),
                (0xF6, "psadbw"),
                (0xE0, "pavgb"),
            ];
            let (op, name) = g.rng.pick(&ops);
            let shift = matches!(op, 0xE2 | 0xF3);
            if shift && g.rng.chance(3, 4) {
                let n = g.rng.below(70) as u64;
                g.c.mem[16..24].copy_from_slice(&n.to_le_bytes());
            }
            if g.rng.chance(1, 2) {
                abs(g, None, 0x10, s, 16);
                g.bytes(&[0x66, 0x0F, op, 0xC0 | d << 3 | s]);
            } else {
                abs(g, Some(0x66), op, d, 16);
            }
            name
        }
        2 => {
            let forms: [(u8, &str); 3] = [(0x66, "pshufd"), (0xF3, "pshufhw"), (0xF2, "pshuflw")];
            let (p, name) = g.rng.pick(&forms);
            let imm = g.rng.below(256) as u8;
            abs(g, Some(p), 0x70, d, 16);
            g.byte(imm);
            name
        }
        _ => {
            let (pre, op, name, size, imm) = g.rng.pick(&FP);
            let mem_only = matches!(name, "movhpd" | "movlpd");
            if !mem_only && g.rng.chance(1, 2) {
                abs(g, None, 0x10, s, 16);
                if let Some(p) = pre {
                    g.byte(p);
                }
                g.bytes(&[0x0F, op, 0xC0 | d << 3 | s]);
            } else {
                let at = if size == 16 { 16 } else { 16 + size * g.rng.below(16 / size) };
                abs(g, pre, op, d, at);
            }
            if imm {
                let v = if name.starts_with("cmp") { g.rng.below(8) } else { g.rng.below(256) };
                g.byte(v as u8);
            }
            name
        }
    };
    abs(g, None, 0x11, d, 32); // MOVUPS result
    abs(g, None, 0xAE, 3, 52); // STMXCSR
    (name.into(), ARITH)
}

type Family = fn(&mut Gen) -> (String, u32);

/// Generate `n` cases from `seed`.
fn generate(n: usize, seed: u64, salc: bool) -> Vec<Case> {
    let families: [(u32, Family); 25] = [
        (40, gen_alu),
        (8, gen_test),
        (14, gen_unary),
        (40, gen_shift),
        (12, gen_shxd),
        (14, gen_mul),
        (10, gen_div),
        (15, gen_bt),
        (6, gen_bsx),
        (16, gen_exchange),
        (8, gen_extend),
        (14, gen_cond),
        (10, gen_lea),
        (12, gen_bcd),
        (3, |g| gen_flagsop(g, false)),
        (if salc { 2 } else { 0 }, |g| gen_flagsop(g, true)),
        (25, gen_string),
        (30, gen_pair),
        (15, gen_branch),
        (20, gen_stack),
        (12, gen_misc),
        (4, gen_sreg),
        (30, gen_mmx),
        (60, gen_sse),
        (80, gen_sse2),
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
        let (name, fmask) = fam(&mut g);
        cases.push(g.finish(name, fmask));
    }
    cases
}

/// A built image: bytes from [`BASE`], total memory size, and the
/// addresses the runners need.
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

/// The driver loop (see the module comment). Returns the code, and the
/// addresses of `save` and `done`.
fn driver(tab: u32, inp: u32, out: u32, out_len: u32) -> Result<(Vec<u8>, u32, u32), IcedError> {
    use iced_x86::code_asm::*;
    let mut a = CodeAssembler::new(32)?;
    let mut next = a.create_label();
    let mut save = a.create_label();
    let mut done = a.create_label();
    a.cld()?;
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
    a.mov(eax, dword_ptr(esi + 36))?;
    a.mov(dword_ptr(G_ESP), eax)?;
    a.add(esi, 40)?;
    a.mov(edi, SCRATCH)?;
    a.mov(ecx, BLOCK as u32 / 4)?;
    a.rep().movsd()?;
    a.mov(esp, dword_ptr(G_IN))?;
    a.popad()?;
    a.popfd()?;
    a.mov(esp, dword_ptr(G_ESP))?;
    a.jmp(dword_ptr(G_TARGET))?;
    // Nothing here may change a flag before PUSHFD.
    a.set_label(&mut save)?;
    a.mov(dword_ptr(G_SAVE), esp)?;
    a.mov(esp, dword_ptr(G_OUT))?;
    a.lea(esp, dword_ptr(esp + 36))?;
    a.pushfd()?;
    a.pushad()?;
    a.mov(eax, dword_ptr(G_SAVE))?;
    a.mov(dword_ptr(esp + 12), eax)?;
    a.lea(edi, dword_ptr(esp + 36))?;
    a.mov(esi, SCRATCH)?;
    a.mov(ecx, BLOCK as u32 / 4)?;
    a.cld()?;
    a.rep().movsd()?;
    a.add(dword_ptr(G_OUT), OUT_REC as i32)?;
    a.add(dword_ptr(G_IN), IN_REC as i32)?;
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
    let out = align(inp + IN_REC * n, 0x1000);
    let filesz = inp + IN_REC * n - BASE;
    let memsz = out + OUT_REC * n - BASE;
    let (code, save, done) = driver(tab, inp, out, OUT_REC * n).expect("driver assembles");
    assert!(DRIVER + code.len() as u32 <= GLOBALS);

    let mut img = vec![0u8; filesz as usize];
    let put = |img: &mut Vec<u8>, at: u32, b: &[u8]| {
        let o = (at - BASE) as usize;
        img[o..o + b.len()].copy_from_slice(b);
    };
    // ELF header (EM_386 executable) and one RWX PT_LOAD.
    let eh = super::elf_header(DRIVER, BASE, filesz, memsz);
    put(&mut img, BASE, &eh);
    put(&mut img, DRIVER, &code);

    let mut at = SNIPPETS;
    for (k, c) in cases.iter().enumerate() {
        put(&mut img, tab + 4 * k as u32, &at.to_le_bytes());
        put(&mut img, at, &c.bytes);
        at += c.bytes.len() as u32;
        let rel = save.wrapping_sub(at + 5);
        put(&mut img, at, &[0xE9]);
        put(&mut img, at + 1, &rel.to_le_bytes());
        at += 5;

        let mut rec = Vec::with_capacity(IN_REC as usize);
        for r in (0..8).rev() {
            rec.extend_from_slice(&c.regs[r].to_le_bytes());
        }
        rec.extend_from_slice(&c.flags.to_le_bytes());
        rec.extend_from_slice(&c.regs[ESP].to_le_bytes());
        rec.extend_from_slice(&c.mem);
        put(&mut img, inp + IN_REC * k as u32, &rec);
    }
    Image { bytes: img, memsz, done, out, cases: cases.len() }
}

/// Run the image natively; the output records on success.
fn run_host(img: &Image) -> Result<Vec<u8>, HostError> {
    super::run_host(&img.bytes, OUT_REC as usize * img.cases)
}

/// Run the same image in ferrite, flat 32-bit protected mode with the
/// host's selectors (ES CS SS DS FS GS) in the segment registers, up to the
/// HLT put where the host makes its write syscall.
fn run_ferrite(img: &Image, selectors: [u16; 6], cases: &[Case], accel: Accel) -> Vec<u8> {
    let ram = align(BASE + img.memsz, 1 << 20) as usize;
    let mut mem = GuestMemory::new(ram).expect("guest RAM");
    let mut bytes = img.bytes.clone();
    bytes[(img.done - BASE) as usize] = 0xF4;
    mem.load(PhysAddr(BASE), &bytes);
    let mut cpu = Cpu::new();
    cpu.state.cr0 |= CR0_PE;
    // A Pentium 4 (SSE, SSE2, CLFLUSH) with SSE on as under Linux on the
    // host (the cases run with every SIMD exception masked).
    cpu.set_model(ferrite_core::cpu::cpuid::CpuModel::Pentium4);
    cpu.state.cr4 |= ferrite_core::cpu::state::CR4_OSFXSR;
    let flat = |sel: u16, code: bool| Segment {
        selector: sel,
        base: 0,
        limit: u32::MAX,
        flags: SEG_P | SEG_S | SEG_DB | SEG_G | SEG_RW | SEG_ACCESSED | if code { SEG_CODE } else { 0 },
    };
    for (k, s) in SegReg::ALL.into_iter().enumerate() {
        cpu.state.segs[s as usize] = flat(selectors[k], s == SegReg::Cs);
    }
    cpu.state.eip = DRIVER;
    accel(&mut cpu);
    let (outcome, _) = cpu.run(&mut mem, &mut NullBus, 1000 * img.cases as u64 + 1000);
    if outcome != StepOutcome::Halted || cpu.state.eip != img.done + 1 {
        // The case whose snippet holds EIP (an exception there ends in a
        // triple fault: there is no IDT).
        let mut at = SNIPPETS;
        for (k, c) in cases.iter().enumerate() {
            let end = at + c.bytes.len() as u32 + 5;
            if (at..end).contains(&cpu.state.eip) {
                panic!("ferrite stopped ({outcome:?}) in case {k}: {} {}", c.name, disasm(&c.bytes));
            }
            at = end;
        }
    }
    assert_eq!(outcome, StepOutcome::Halted, "ferrite did not reach the end: {:?}", cpu.state);
    assert_eq!(cpu.state.eip, img.done + 1, "ferrite halted elsewhere (an exception?): {:?}", cpu.state);
    let len = OUT_REC as usize * img.cases;
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

/// Registers (x86 order), EFLAGS and the block from an output record.
fn parse_out(rec: &[u8]) -> ([u32; 8], u32, &[u8]) {
    let d = |k: usize| u32::from_le_bytes(rec[4 * k..4 * k + 4].try_into().unwrap());
    let mut regs = [0u32; 8];
    for (k, r) in regs.iter_mut().enumerate() {
        *r = d(7 - k);
    }
    (regs, d(8), &rec[36..])
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

fn regs_str(regs: &[u32; 8]) -> String {
    REG_NAMES.iter().zip(regs).map(|(n, v)| format!(" {n}={v:08x}")).collect()
}

fn flag_str(f: u32) -> String {
    let s: String = [(OF, 'O'), (DF, 'D'), (SF, 'S'), (ZF, 'Z'), (AF, 'A'), (PF, 'P'), (CF, 'C')]
        .iter()
        .map(|&(b, ch)| if f & b != 0 { ch } else { '-' })
        .collect();
    let rest = f & !(ARITH | DF | IF | 2);
    if rest != 0 {
        format!("{s}+{rest:#x}")
    } else {
        s
    }
}

/// The differences of one case, or None when host and ferrite agree.
fn compare(c: &Case, host: &[u8], fer: &[u8]) -> Option<String> {
    let (hr, hf, hm) = parse_out(host);
    let (fr, ff, fm) = parse_out(fer);
    let mut d = String::new();
    for r in 0..8 {
        if c.ignore & (1 << r) == 0 && hr[r] != fr[r] {
            d += &format!("  {}: host {:08x} ferrite {:08x}\n", REG_NAMES[r], hr[r], fr[r]);
        }
    }
    let m = if all_flags() { !NOT_COMPARED } else { c.fmask | (!NOT_COMPARED & !ARITH) };
    if (hf ^ ff) & m != 0 {
        let (cmp, h, f) = (flag_str(m & (ARITH | DF)), flag_str(hf & m), flag_str(ff & m));
        d += &format!("  flags (compared {cmp} and the system bits): host {h} ferrite {f}\n");
    }
    for k in 0..BLOCK {
        if hm[k] != fm[k] {
            d += &format!("  mem[{k}]: host {:02x} ferrite {:02x}\n", hm[k], fm[k]);
        }
    }
    if d.is_empty() {
        return None;
    }
    let hex: Vec<String> = c.bytes.iter().map(|b| format!("{b:02x}")).collect();
    let mut s = format!("{} [{}] {}\n  in:", c.name, hex.join(" "), disasm(&c.bytes));
    s += &regs_str(&c.regs);
    s += &format!(" flags={}\n", flag_str(c.flags));
    Some(s + &d)
}

/// `FERRITE_ORACLE_ALL_FLAGS=1` compares undefined flags too (to study
/// how ferrite's choices differ from the host's; expect failures).
fn all_flags() -> bool {
    static ALL: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ALL.get_or_init(|| std::env::var("FERRITE_ORACLE_ALL_FLAGS").is_ok_and(|v| v == "1"))
}

/// The first case the host cannot run (a generator bug: a case must
/// never fault), by bisection over prefixes of `cases`.
fn find_host_crash(cases: &[Case]) -> String {
    let (mut good, mut bad) = (0, cases.len());
    while bad - good > 1 {
        let mid = (good + bad) / 2;
        if run_host(&build_image(&cases[..mid])).is_ok() {
            good = mid;
        } else {
            bad = mid;
        }
    }
    let c = &cases[bad - 1];
    let hex: Vec<String> = c.bytes.iter().map(|b| format!("{b:02x}")).collect();
    let mut s = format!("case {}: {} [{}] {}\n  in:", bad - 1, c.name, hex.join(" "), disasm(&c.bytes));
    s += &regs_str(&c.regs);
    s
}

/// Run the oracle: `default_cases` cases (unless `FERRITE_ORACLE_CASES`
/// says otherwise), ferrite's CPU made ready by `accel` (a translator
/// installed, or nothing).
pub fn check(accel: Accel, default_cases: usize) {
    // Can the host run i386 code at all? The probe also reads the host's
    // selectors (ES CS SS DS FS GS), which ferrite's segments then carry.
    let mut prng = Rng(1);
    let mut probe = Gen::new(&mut prng);
    for k in 0..6u8 {
        probe.bytes(&[0x8C, k << 3 | 5]);
        probe.imm(SCRATCH + 2 * k as u32, 4);
    }
    let selectors = match run_host(&build_image(&[probe.finish("probe".into(), ARITH)])) {
        Ok(out) => {
            let (_, _, block) = parse_out(&out);
            let sel = |k: usize| u16::from_le_bytes([block[2 * k], block[2 * k + 1]]);
            [sel(0), sel(1), sel(2), sel(3), sel(4), sel(5)]
        }
        Err(HostError::NoExec) => {
            println!("SKIPPED: host cannot run i386 executables");
            return;
        }
        Err(HostError::Failed(e)) => panic!("probe i386 program failed on the host: {e}"),
    };
    println!("host selectors (ES CS SS DS FS GS): {selectors:04x?}");
    // SALC (D6) is undocumented; include it only if the host executes it.
    let mut probe = Gen::new(&mut prng);
    probe.byte(0xD6);
    let salc = run_host(&build_image(&[probe.finish("salc".into(), ARITH)])).is_ok();
    if !salc {
        println!("host does not execute SALC: not tested");
    }

    let n = env_or("FERRITE_ORACLE_CASES", default_cases);
    let seed = env_or("FERRITE_ORACLE_SEED", DEFAULT_SEED);
    let t0 = Instant::now();
    let cases = generate(n, seed, salc);
    let img = build_image(&cases);
    let t1 = Instant::now();
    let host = match run_host(&img) {
        Ok(h) => h,
        Err(e) => panic!("host run failed: {e:?}\n{}", find_host_crash(&cases)),
    };
    let t2 = Instant::now();
    let fer = run_ferrite(&img, selectors, &cases, accel);
    let t3 = Instant::now();

    let rec = OUT_REC as usize;
    let mut per_group: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    let mut shown = BTreeMap::new();
    let mut report = String::new();
    for (k, c) in cases.iter().enumerate() {
        let e = per_group.entry(c.name.as_str()).or_default();
        e.0 += 1;
        if let Some(d) = compare(c, &host[k * rec..(k + 1) * rec], &fer[k * rec..(k + 1) * rec]) {
            e.1 += 1;
            let s = shown.entry(&c.name).or_insert(0);
            if *s < 3 {
                *s += 1;
                report += &format!("case {k}: {d}");
            }
        }
    }
    println!(
        "{} cases in {} groups (seed {seed:#x}): generate+build {:.2?}, host {:.2?}, ferrite {:.2?}",
        cases.len(),
        per_group.len(),
        t1 - t0,
        t2 - t1,
        t3 - t2
    );
    if std::env::var("FERRITE_ORACLE_VERBOSE").is_ok() {
        for (k, v) in &per_group {
            println!("{k}: {}", v.0);
        }
    }
    let failed: Vec<String> =
        per_group.iter().filter(|(_, v)| v.1 > 0).map(|(k, v)| format!("{k}: {} of {}", v.1, v.0)).collect();
    if !failed.is_empty() {
        print!("{report}");
        panic!("ferrite differs from the host on defined results:\n{}", failed.join("\n"));
    }
}
