//! Differential test: generated guest code runs on two CPUs over identical
//! memory, one interpreting and one with the JIT forced on (every block
//! translated on its first execution). After every slice of instructions
//! the architectural state must be identical, and so must all of RAM at the
//! end of each trial. The code mixes instruction forms the translator
//! lowers inline (moves, ALU with register and memory operands including
//! read-modify-write, ADC/SBB, INC/DEC/NOT/NEG, shifts and rotates, IMUL,
//! LEA, MOVZX/MOVSX, SETcc/CMOVcc, PUSH/POP, Jcc/JMP with loops, CALL/RET,
//! MUL/IMUL/DIV/IDIV with #DE, CLD/STD, BSF/BSR, BT/BTS/BTR/BTC, JMP/CALL
//! through registers and memory), forms it runs through the interpreter's semantics (RCL/RCR,
//! shifts of memory by CL), stores and read-modify-writes into the code
//! itself, and random bytes (faults, system instructions), in real mode,
//! 16- and 32-bit protected mode, paged mode and V86 mode.
//!
//! `FERRITE_FUZZ_SCALE=n` multiplies the number of trials.

use ferrite_core::cpu::flags::VM;
use ferrite_core::cpu::state::{
    SegReg, Segment, CR0_PE, CR0_PG, CR4_PSE, SEG_ACCESSED, SEG_CODE, SEG_DB, SEG_G, SEG_P, SEG_RW, SEG_S,
};
use ferrite_core::{Cpu, GuestMemory, NullBus, PhysAddr, StepOutcome};
use ferrite_jit::{Jit, JitMode};

/// xorshift64*: deterministic, so a failure reproduces from its seed.
#[derive(Clone)]
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u32) -> u32 {
        (self.next() % n as u64) as u32
    }
    fn byte(&mut self) -> u8 {
        self.next() as u8
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Real,
    Protected16,
    Protected32,
    Paged32,
    V86,
    /// Protected32 with code dense in SSE (`gen_simd_code`).
    Simd32,
}

const RAM: usize = 4 << 20;
const CODE: u32 = 0x10000;
const CODE_LEN: usize = 0x10000;
const GDT: u32 = 0x800;
/// In 32-bit code, generated code from here to `CODE` too (above the
/// descriptor tables and the TSS).
const LOW_CODE: u32 = 0x4000;
const PD: u32 = 0x20_0000;

/// Append one generated instruction to `out`.
fn gen_insn(rng: &mut Rng, out: &mut Vec<u8>, code32: bool) {
    let modrm_rr = |rng: &mut Rng| 0xC0 | (rng.byte() & 0x3F);
    if rng.below(4) == 0 {
        out.push(0x66);
    }
    match rng.below(31) {
        0 => out.extend([0x88 + rng.below(4) as u8, modrm_rr(rng)]),
        1 => {
            out.push(0xB0 + rng.below(16) as u8);
            let n = if out.last().is_some_and(|b| *b >= 0xB8) { 4 } else { 1 };
            out.extend((0..n).map(|_| rng.byte()));
        }
        2 | 3 => {
            let op = (rng.below(8) as u8) << 3;
            out.extend([op | rng.below(4) as u8, modrm_rr(rng)]);
        }
        4 => {
            // ALU r/m, imm8 (0x80 / 0x83) or imm32 (0x81).
            let op = [0x80u8, 0x81, 0x83][rng.below(3) as usize];
            out.extend([op, 0xC0 | (rng.byte() & 0x3F)]);
            let n = if op == 0x81 { 4 } else { 1 };
            out.extend((0..n).map(|_| rng.byte()));
        }
        5 => out.push(0x40 + rng.below(16) as u8),
        6 => out.extend([0xFE + rng.below(2) as u8, 0xC0 | (rng.byte() & 0x0F)]),
        7 => {
            // LEA r, [base + index*scale + disp8]
            out.extend([0x8D, 0x44 | (rng.byte() & 0x38), rng.byte(), rng.byte()]);
        }
        8 => out.extend([0x0F, [0xB6u8, 0xB7, 0xBE, 0xBF][rng.below(4) as usize], modrm_rr(rng)]),
        9 => out.extend([0xF6 + rng.below(2) as u8, 0xD0 | (rng.byte() & 0x07)]),
        10 | 11 => {
            // Jcc rel8, mostly short backward loops and forward skips.
            let d = rng.below(40) as i32 - 28;
            out.extend([0x70 + rng.below(16) as u8, d as i8 as u8]);
        }
        12 => out.extend([0x0F, 0x40 + rng.below(16) as u8, modrm_rr(rng)]),
        13 => out.extend([0x0F, 0x90 + rng.below(16) as u8, 0xC0 | (rng.byte() & 7)]),
        14 => {
            // Memory operands: MOV/ADD/CMP [reg+disp8] forms, in 32-bit code
            // often with the base register pointed into RAM first.
            let op = [0x88u8, 0x89, 0x8A, 0x8B, 0x01, 0x03, 0x39, 0x3B, 0x85, 0xC7][rng.below(10) as usize];
            let base = rng.byte() & 7;
            if code32 && base != 4 && rng.below(2) == 0 {
                out.push(0xB8 + base);
                out.extend((0x10_0000 + rng.below(0x10_0000)).to_le_bytes());
            }
            out.extend([op, 0x40 | (rng.byte() & 0x38) | base, rng.byte()]);
            if op == 0xC7 {
                out.extend((0..4).map(|_| rng.byte()));
            }
        }
        15 => out.push(0x50 + rng.below(16) as u8),
        16 => out.extend([0xC1, 0xE0 | (rng.byte() & 0x1F), rng.byte() & 0x1F]),
        17 => {
            // A store or read-modify-write into the code region itself
            // (self-modifying code): MOV byte [x], 90h or ADD byte [x], 0.
            let (op, sub) = if rng.below(2) == 0 { (0xC6u8, 0u8) } else { (0x80, 0) };
            if code32 {
                let at = CODE + rng.below(CODE_LEN as u32);
                out.extend([op, 0x05 | sub << 3]);
                out.extend(at.to_le_bytes());
            } else {
                out.extend([op, 0x06 | sub << 3]);
                out.extend((rng.below(CODE_LEN as u32) as u16).to_le_bytes());
            }
            out.push(if op == 0xC6 { 0x90 } else { 0 });
        }
        18 => {
            // Random bytes: anything at all.
            let n = 1 + rng.below(4);
            out.extend((0..n).map(|_| rng.byte()));
        }
        19 => {
            // CALL rel with a short displacement either way.
            let d = rng.below(80) as i32 - 40;
            out.push(0xE8);
            if code32 {
                out.extend(d.to_le_bytes());
            } else {
                out.extend((d as i16).to_le_bytes());
            }
        }
        20 => {
            if rng.below(4) == 0 {
                out.extend([0xC2, rng.byte() & 0x0F, 0]);
            } else {
                out.push(0xC3);
            }
        }
        22 => {
            // Shifts and rotates (every /r) by an immediate, by 1 and by CL.
            let op = [0xC0u8, 0xC1, 0xD0, 0xD1, 0xD2, 0xD3][rng.below(6) as usize];
            let sub = rng.below(8) as u8;
            reg_or_mem(rng, out, code32, &[op], sub);
            if op <= 0xC1 {
                out.push(if rng.below(4) == 0 { rng.byte() } else { rng.byte() & 0x1F });
            }
        }
        23 => {
            // IMUL r, r/m; IMUL r, r/m, imm32 (69); IMUL r, r/m, imm8 (6B).
            let ops: [&[u8]; 3] = [&[0x0F, 0xAF], &[0x69], &[0x6B]];
            let k = rng.below(3) as usize;
            let r = rng.byte() & 7;
            reg_or_mem(rng, out, code32, ops[k], r);
            let n = [0, 4, 1][k];
            out.extend((0..n).map(|_| rng.byte()));
        }
        24 => {
            // Read-modify-write ALU on memory: op r/m, r and op r/m, imm.
            if rng.below(2) == 0 {
                let op = (rng.below(8) as u8) << 3 | rng.below(2) as u8;
                let r = rng.byte() & 7;
                mem_form(rng, out, code32, &[op], r);
            } else {
                let op = [0x80u8, 0x81, 0x83][rng.below(3) as usize];
                let r = rng.byte() & 7;
                mem_form(rng, out, code32, &[op], r);
                let n = if op == 0x81 { 4 } else { 1 };
                out.extend((0..n).map(|_| rng.byte()));
            }
        }
        25 => {
            // INC/DEC/NOT/NEG/MUL/IMUL/PUSH r/m.
            let (op, sub) =
                [(0xFEu8, 0u8), (0xFE, 1), (0xFF, 0), (0xFF, 1), (0xF6, 2), (0xF7, 3), (0xF7, 4), (0xF7, 5), (0xFF, 6)]
                    [rng.below(9) as usize];
            reg_or_mem(rng, out, code32, &[op], sub);
        }
        26 => {
            // CMOVcc r, r/m.
            let (cc, r) = (rng.below(16) as u8, rng.byte() & 7);
            reg_or_mem(rng, out, code32, &[0x0F, 0x40 + cc], r);
        }
        27 => {
            // MUL/IMUL/DIV/IDIV r/m of every size (#DE included), CLD/STD.
            if rng.below(6) == 0 {
                out.push(0xFC + rng.below(2) as u8);
            } else {
                let op = 0xF6 + rng.below(2) as u8;
                let sub = 4 + rng.below(4) as u8;
                reg_or_mem(rng, out, code32, &[op], sub);
            }
        }
        28 => {
            // JMP/CALL near through a register (pointed into the code
            // first, mostly) or through memory.
            let sub = if rng.below(2) == 0 { 2 } else { 4 };
            if rng.below(3) != 0 {
                let r = rng.byte() & 7;
                if rng.below(4) != 0 {
                    out.push(0xB8 + r);
                    if code32 {
                        out.extend((CODE + rng.below(CODE_LEN as u32)).to_le_bytes());
                    } else {
                        out.extend((rng.below(CODE_LEN as u32) as u16).to_le_bytes());
                    }
                }
                out.extend([0xFF, 0xC0 | sub << 3 | r]);
            } else {
                mem_form(rng, out, code32, &[0xFF], sub);
            }
        }
        29 => {
            // LODS/STOS/MOVS/SCAS, ESI/EDI often pointed into
            // RAM first, sometimes with a segment override or the other
            // address size.
            if code32 && rng.below(2) == 0 {
                out.push(0xBE + rng.below(2) as u8);
                out.extend((0x10_0000 + rng.below(0x10_0000)).to_le_bytes());
            }
            // A quarter of them under REP/REPNE with a small count (the
            // region goes on after a REP loop that ran to its end).
            let rep = (rng.below(4) == 0).then(|| {
                out.push(0xB9);
                let n = rng.below(24);
                out.extend(if code32 { n.to_le_bytes().to_vec() } else { (n as u16).to_le_bytes().to_vec() });
                0xF2 + rng.below(2) as u8
            });
            if rng.below(6) == 0 {
                out.push([0x26u8, 0x2E, 0x36, 0x3E, 0x64, 0x65][rng.below(6) as usize]);
            }
            if rng.below(8) == 0 {
                out.push(0x67);
            }
            if let Some(r) = rep {
                out.push(r);
            }
            out.push([0xA4u8, 0xA5, 0xAA, 0xAB, 0xAC, 0xAD, 0xAE, 0xAF][rng.below(8) as usize]);
        }
        30 => match rng.below(12) {
            // LEAVE (EBP pointed into RAM first, mostly, in 32-bit code).
            0 => {
                if code32 && rng.below(4) != 0 {
                    out.push(0xBD);
                    out.extend((0x10_0000 + rng.below(0x10_0000)).to_le_bytes());
                }
                out.push(0xC9);
            }
            // BSWAP r32.
            1 => out.extend([0x0F, 0xC8 + rng.below(8) as u8]),
            // XCHG eAX, r and XCHG r/m, r of both sizes.
            2 => out.push(0x91 + rng.below(7) as u8),
            // BSF/BSR r, r/m (zero sources included).
            3 => {
                let (op, r) = (0xBC + rng.below(2) as u8, rng.byte() & 7);
                reg_or_mem(rng, out, code32, &[0x0F, op], r)
            }
            // RDTSC (the count is the retired instructions: both agree).
            4 => out.extend([0x0F, 0x31]),
            // SHLD/SHRD r/m, r by an immediate or CL (both sizes).
            5 => {
                let (op, r) = ([0xA4u8, 0xA5, 0xAC, 0xAD][rng.below(4) as usize], rng.byte() & 7);
                reg_or_mem(rng, out, code32, &[0x0F, op], r);
                if op & 1 == 0 {
                    out.push(rng.byte());
                }
            }
            // LAHF and SAHF.
            10 => out.push(0x9E + rng.below(2) as u8),
            // x87 stack moves and FNSTSW AX (FLD1, FSTP ST0, FINCSTP,
            // FDECSTP; overflow and underflow set status bits), FCOMI,
            // FUCOMIP (they set ZF, PF and CF), FCMOVB (reads CF), FLD
            // m32 or FLD ST(i), FSTP ST(i). In 32-bit code also x87 loads,
            // arithmetic and stores of every memory operand size, at data
            // above the code (at random addresses stores would mostly
            // rewrite code, and with the JIT forced each rewrite
            // recompiles a region).
            11 if rng.below(4) == 0 => gen_mmx(rng, out, code32),
            // (SSE in 32-bit code only: with it in 16-bit code too, real-mode
            // runs fell below the floor of one third run as translated code
            // (27-31 % in trials); the FPU unit tests run SSE in real mode.)
            11 if code32 && rng.below(3) == 0 => gen_sse(rng, out, code32),
            11 => match rng.below(if code32 { 6 } else { 4 }) {
                0 => reg_or_mem(rng, out, code32, &[0xD9], 0),
                4 | 5 => {
                    let forms: [(u8, u8); 26] = [
                        (0xD9, 0), // FLD m32
                        (0xDD, 0), // FLD m64
                        (0xDB, 5), // FLD m80
                        (0xDF, 0), // FILD m16
                        (0xDB, 0), // FILD m32
                        (0xDF, 5), // FILD m64
                        (0xDF, 4), // FBLD
                        (0xD8, 8), // arithmetic m32fp (8: any of the eight)
                        (0xDC, 8), // arithmetic m64fp
                        (0xDA, 8), // arithmetic m32int
                        (0xDE, 8), // arithmetic m16int
                        (0xD9, 2), // FST m32
                        (0xD9, 3), // FSTP m32
                        (0xDD, 2), // FST m64
                        (0xDD, 3), // FSTP m64
                        (0xDB, 7), // FSTP m80
                        (0xDF, 2), // FIST m16
                        (0xDF, 3), // FISTP m16
                        (0xDB, 2), // FIST m32
                        (0xDB, 3), // FISTP m32
                        (0xDF, 7), // FISTP m64
                        (0xDF, 6), // FBSTP
                        (0xD9, 7), // FNSTCW
                        (0xDD, 7), // FNSTSW m16
                        (0xD9, 5), // FLDCW
                        (0xDD, 2), // FST m64
                    ];
                    let (op, r) = forms[rng.below(26) as usize];
                    let r = if r == 8 { rng.byte() & 7 } else { r };
                    let base = [0u8, 1, 2, 3, 5, 6, 7][rng.below(7) as usize];
                    out.push(0xB8 + base);
                    out.extend((0x10_0000 + rng.below(0x10_0000)).to_le_bytes());
                    out.extend([op, 0x40 | r << 3 | base, rng.byte()]);
                }
                1 => out.extend([0xDD, 0xD8 | rng.byte() & 7]),
                _ => {
                    let ops: [[u8; 2]; 8] = [
                        [0xD9, 0xE8],
                        [0xDD, 0xD8],
                        [0xD9, 0xF7],
                        [0xD9, 0xF6],
                        [0xDF, 0xE0],
                        [0xDB, 0xF1],
                        [0xDF, 0xE9],
                        [0xDA, 0xC1],
                    ];
                    out.extend(ops[rng.below(8) as usize]);
                    if rng.below(2) == 0 {
                        out.extend([0xDF, 0xE0]);
                    }
                }
            },
            // CMPXCHG and XADD r/m, r (both sizes).
            7 | 8 => {
                let (op, r) = ([0xB0u8, 0xB1, 0xC0, 0xC1][rng.below(4) as usize], rng.byte() & 7);
                reg_or_mem(rng, out, code32, &[0x0F, op], r)
            }
            // LOCK on read-modify-write forms (with a register
            // destination: #UD).
            9 => {
                let ops: [&[u8]; 7] = [
                    &[0xF0, 0x01],
                    &[0xF0, 0x29],
                    &[0xF0, 0xFF],
                    &[0xF0, 0x87],
                    &[0xF0, 0x0F, 0xB1],
                    &[0xF0, 0x0F, 0xC1],
                    &[0xF0, 0x0F, 0xAB],
                ];
                let op = ops[rng.below(7) as usize];
                // (FF /0 and /1: INC and DEC.)
                let r = if op[1] == 0xFF { rng.below(2) as u8 } else { rng.byte() & 7 };
                reg_or_mem(rng, out, code32, op, r)
            }
            // BT/BTS/BTR/BTC r/m, r and r/m, imm8 (both sizes; a
            // register bit offset moves a memory operand). The writing
            // forms with a register offset mostly on registers: on memory
            // they land anywhere, often in the code, and each such store
            // has the forced JIT translate the page's code again.
            _ if rng.below(2) == 0 => {
                if rng.below(2) == 0 {
                    let (op, r) = ([0xA3u8, 0xAB, 0xB3, 0xBB][rng.below(4) as usize], rng.byte() & 7);
                    if op == 0xA3 || rng.below(8) == 0 {
                        reg_or_mem(rng, out, code32, &[0x0F, op], r)
                    } else {
                        out.extend([0x0F, op, 0xC0 | r << 3 | rng.byte() & 7]);
                    }
                } else {
                    let r = 4 + rng.below(4) as u8;
                    reg_or_mem(rng, out, code32, &[0x0F, 0xBA], r);
                    out.push(rng.byte());
                }
            }
            _ => {
                let (op, r) = (0x86 + rng.below(2) as u8, rng.byte() & 7);
                reg_or_mem(rng, out, code32, &[op], r)
            }
        },
        _ => out.extend([0xEB, (rng.below(16) as i32 - 12) as i8 as u8]),
    }
}

/// An MMX instruction: arithmetic, logic, compares, packs, unpacks and
/// shifts on registers or memory, shifts by an immediate, MOVD/MOVQ in
/// each direction (stores, in 32-bit code, at data above the code), EMMS.
/// With the x87 instructions around them they also meet a stack that MMX
/// left full.
fn gen_mmx(rng: &mut Rng, out: &mut Vec<u8>, code32: bool) {
    const OPS: [u8; 16] =
        [0x60, 0x63, 0x65, 0x67, 0x6A, 0x6B, 0x74, 0xD1, 0xD5, 0xD9, 0xDF, 0xE2, 0xE5, 0xED, 0xF5, 0xFE];
    let d = rng.byte() & 7;
    match rng.below(8) {
        0..=2 => {
            let op = OPS[rng.below(16) as usize];
            reg_or_mem(rng, out, code32, &[0x0F, op], d)
        }
        3 => {
            let (op, r) = [(0x71, 2), (0x71, 4), (0x72, 6), (0x73, 2), (0x73, 6)][rng.below(5) as usize];
            out.extend([0x0F, op, 0xC0 | r << 3 | d, rng.byte() & 0x3F]);
        }
        4 => {
            let op = [0x6E, 0x6F][rng.below(2) as usize];
            reg_or_mem(rng, out, code32, &[0x0F, op], d)
        }
        5 => out.extend([0x0F, [0x7E, 0x7F][rng.below(2) as usize], 0xC0 | d << 3 | rng.byte() & 7]),
        6 if code32 => {
            let base = [0u8, 1, 2, 3, 5, 6, 7][rng.below(7) as usize];
            out.push(0xB8 + base);
            out.extend((0x10_0000 + rng.below(0x10_0000)).to_le_bytes());
            out.extend([0x0F, [0x7E, 0x7F][rng.below(2) as usize], 0x40 | d << 3 | base, rng.byte()]);
        }
        _ => out.extend([0x0F, 0x77]),
    }
}

/// An SSE or SSE2 instruction (the machines are Pentium 4s with CR4.OSFXSR
/// set and a random MXCSR): packed and scalar arithmetic in both
/// precisions, compares (which also write EFLAGS), logic, shuffles, moves,
/// MOVMSKPS and the MMX additions (some write general registers), the
/// 128-bit integer forms, LDMXCSR/STMXCSR; register or memory operands
/// (misaligned ones fault).
fn gen_sse(rng: &mut Rng, out: &mut Vec<u8>, code32: bool) {
    const OPS: [(u8, bool, bool); 20] = [
        (0x58, true, false),
        (0x59, true, false),
        (0x5C, true, false),
        (0x5D, true, false),
        (0x5E, true, false),
        (0x5F, true, false),
        (0x51, true, false),
        (0xC2, true, true),
        (0x54, false, false),
        (0x57, false, false),
        (0x14, false, false),
        (0xC6, false, true),
        (0x28, false, false),
        (0x10, true, false),
        (0x2E, false, false),
        (0x2F, false, false),
        (0x12, false, false),
        (0x16, false, false),
        (0x53, true, false),
        (0x2A, true, false),
    ];
    let d = rng.byte() & 7;
    match rng.below(14) {
        11..=13 => gen_sse_lowered(rng, out, code32, d),
        0 => {
            let op = [0x50u8, 0xD7, 0xC5][rng.below(3) as usize];
            out.extend([0x0F, op, 0xC0 | d << 3 | rng.byte() & 7]);
            if op == 0xC5 {
                out.push(rng.byte());
            }
        }
        1 => {
            let op = [0xE0u8, 0xEE, 0xDA, 0xF6, 0x70][rng.below(5) as usize];
            reg_or_mem(rng, out, code32, &[0x0F, op], d);
            if op == 0x70 {
                out.push(rng.byte());
            }
        }
        2 => {
            let r = 2 + rng.below(2) as u8;
            mem_form(rng, out, code32, &[0x0F, 0xAE], r)
        }
        3 => {
            // SSE2's integer forms on XMM registers (66 prefix), PSHUFD and
            // kin, the byte shifts.
            let op = [0xFEu8, 0xD4, 0xF4, 0x63, 0x6C, 0x74, 0xE2, 0xD3, 0x70, 0x73][rng.below(10) as usize];
            out.push([0x66, 0x66, 0xF3, 0xF2][rng.below(4) as usize]);
            if op == 0x73 {
                out.extend([0x0F, 0x73, 0xC0 | [3u8, 7, 2, 6][rng.below(4) as usize] << 3 | d, rng.byte()]);
            } else {
                reg_or_mem(rng, out, code32, &[0x0F, op], d);
                if op == 0x70 {
                    out.push(rng.byte());
                }
            }
        }
        _ => {
            let (op, scalar, imm) = OPS[rng.below(20) as usize];
            // No prefix (SSE), F3 (scalar single), 66 (packed double) or
            // F2 (scalar double).
            match rng.below(4) {
                1 if scalar => out.push(0xF3),
                2 => out.push(0x66),
                3 => out.push(0xF2),
                _ => {}
            }
            reg_or_mem(rng, out, code32, &[0x0F, op], d);
            if imm {
                out.push(rng.byte());
            }
        }
    }
}

/// One of the forms the translator lowers to vector operations (and
/// their neighbours): SSE2's integer instructions, the moves and stores
/// of every width, logic, shuffles and unpacks; XMM `d` in the ModRM reg
/// field.
fn gen_sse_lowered(rng: &mut Rng, out: &mut Vec<u8>, code32: bool, d: u8) {
    let (pre, op) = match rng.below(4) {
        0 | 1 => (0x66, LOWERED_66[rng.below(LOWERED_66.len() as u32) as usize]),
        2 => ([0x00, 0x66][rng.below(2) as usize], LOWERED_PS[rng.below(LOWERED_PS.len() as u32) as usize]),
        _ => ([0xF3, 0xF2][rng.below(2) as usize], [0x10u8, 0x11, 0x70, 0x6F, 0x7F, 0x7E][rng.below(6) as usize]),
    };
    if pre != 0 {
        out.push(pre);
    }
    if matches!(op, 0x71..=0x73) {
        // Shifts by an immediate (counts past the lane width too).
        let sub = [2u8, 4, 6, 3, 7][rng.below(5) as usize];
        out.extend([0x0F, op, 0xC0 | sub << 3 | d, rng.byte() % 40]);
        return;
    }
    if rng.below(2) == 0 {
        out.extend([0x0F, op, 0xC0 | d << 3 | rng.byte() & 7]);
    } else {
        mem_form_aligned(rng, out, code32, &[0x0F, op], d);
    }
    if matches!(op, 0x70 | 0xC4 | 0xC5 | 0xC6) {
        out.push(rng.byte());
    }
}

/// Opcodes (after 0F, with the 66 prefix) of SSE2's integer forms and
/// moves, which the translator lowers to vector operations.
const LOWERED_66: [u8; 68] = [
    0x60, 0x61, 0x62, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69, 0x6A, 0x6B, 0x6C, 0x6D, 0x6E, 0x6F, 0x70, 0x71, 0x72,
    0x73, 0x74, 0x75, 0x76, 0x7E, 0x7F, 0xC4, 0xC5, 0xD1, 0xD2, 0xD3, 0xD4, 0xD5, 0xD6, 0xD7, 0xD8, 0xD9, 0xDA, 0xDB,
    0xDC, 0xDD, 0xDE, 0xDF, 0xE0, 0xE1, 0xE2, 0xE3, 0xE7, 0xE8, 0xE9, 0xEA, 0xEB, 0xEC, 0xED, 0xEE, 0xEF, 0xF1, 0xF2,
    0xF3, 0xF8, 0xF9, 0xFA, 0xFB, 0xFC, 0xFD, 0xFE, 0xE4, 0xE5, 0xF5,
];

/// Opcodes (after 0F, no prefix or 66) of the moves, logic and shuffles
/// of packed singles and doubles.
const LOWERED_PS: [u8; 18] =
    [0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x28, 0x29, 0x2B, 0x50, 0x54, 0x55, 0x56, 0x57, 0xC6, 0xC6];

/// Instruction `op` with a memory operand [base + disp8] and `reg` in the
/// ModRM reg field; in 32-bit code the base register is often pointed into
/// RAM first (a MOV before the instruction).
fn mem_form(rng: &mut Rng, out: &mut Vec<u8>, code32: bool, op: &[u8], reg: u8) {
    let base = rng.byte() & 7;
    if code32 && base != 4 && rng.below(2) == 0 {
        out.push(0xB8 + base);
        out.extend((0x10_0000 + rng.below(0x10_0000)).to_le_bytes());
    }
    out.extend(op);
    out.extend([0x40 | (reg & 7) << 3 | base, rng.byte()]);
}

/// `mem_form` with a 16-byte aligned address most of the time (in 32-bit
/// code the base register is often set to an aligned address first, and
/// the displacement is mostly a multiple of 16), so that the aligned SSE
/// forms mostly run instead of raising #GP.
fn mem_form_aligned(rng: &mut Rng, out: &mut Vec<u8>, code32: bool, op: &[u8], reg: u8) {
    let base = rng.byte() & 7;
    if code32 && base != 4 && rng.below(2) == 0 {
        out.push(0xB8 + base);
        // (In a few pages: after the first access to a page fills the
        // translator's fast TLB, the others take the inline path.)
        out.extend((0x10_0000 + rng.below(0x400) * 16).to_le_bytes());
    }
    out.extend(op);
    let disp = if rng.below(4) == 0 { rng.byte() } else { rng.byte() & 0xF0 };
    out.extend([0x40 | (reg & 7) << 3 | base, disp]);
}

/// Instruction `op` with a register or (half the time) memory r/m operand.
fn reg_or_mem(rng: &mut Rng, out: &mut Vec<u8>, code32: bool, op: &[u8], reg: u8) {
    if rng.below(2) == 0 {
        out.extend(op);
        out.push(0xC0 | (reg & 7) << 3 | rng.byte() & 7);
    } else {
        mem_form(rng, out, code32, op, reg);
    }
}

/// 32-bit code dense in SSE and SSE2 (`Mode::Simd32`): three quarters
/// SSE instructions (two thirds of them forms the translator lowers to
/// vector operations), the rest the general mix.
fn gen_simd_code(rng: &mut Rng) -> Vec<u8> {
    let mut out = Vec::with_capacity(CODE_LEN + 16);
    while out.len() < CODE_LEN {
        match rng.below(4) {
            0 => gen_insn(rng, &mut out, true),
            1 => gen_sse(rng, &mut out, true),
            _ => {
                let d = rng.byte() & 7;
                gen_sse_lowered(rng, &mut out, true, d)
            }
        }
    }
    out.truncate(CODE_LEN);
    out
}

fn gen_code(rng: &mut Rng, code32: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(CODE_LEN + 16);
    while out.len() < CODE_LEN {
        gen_insn(rng, &mut out, code32);
    }
    out.truncate(CODE_LEN);
    out
}

fn flat(selector: u16, code: bool, big: bool) -> Segment {
    let ty = if code { SEG_CODE | SEG_RW } else { SEG_RW };
    let mut flags = ty | SEG_ACCESSED | SEG_S | SEG_P;
    if big {
        flags |= SEG_DB | SEG_G;
    }
    Segment { selector, base: 0, limit: if big { u32::MAX } else { 0xFFFF }, flags }
}

fn desc(code: bool, big: bool) -> u64 {
    let ty: u64 = if code { 0xA } else { 0x2 };
    let access = 0x80 | 0x10 | ty | 1;
    let gran: u64 = if big { 0xCF } else { 0x00 };
    0xFFFF | access << 40 | gran << 48
}

/// GDT, TSS and an IDT whose gates enter random points of the code.
fn protected_tables(cpu: &mut Cpu, mem: &mut GuestMemory, rng: &mut Rng, code_sel: u16, code16: bool) {
    const TSS: u32 = 0x3000;
    let tss_desc: u64 = 0x67 | ((TSS as u64) << 16) | (0x89u64 << 40);
    let mut c16 = desc(true, false);
    c16 |= ((CODE as u64) & 0xFF_FFFF) << 16;
    let gdt: [u64; 6] = [0, desc(true, true), desc(false, true), c16, desc(false, false), tss_desc];
    for (k, d) in gdt.iter().enumerate() {
        mem.load(PhysAddr(GDT + 8 * k as u32), &d.to_le_bytes());
    }
    let mut tss = [0u8; 0x68];
    tss[4..8].copy_from_slice(&0x30_0000u32.to_le_bytes());
    tss[8..10].copy_from_slice(&0x10u16.to_le_bytes());
    tss[0x66..0x68].copy_from_slice(&0x68u16.to_le_bytes());
    mem.load(PhysAddr(TSS), &tss);
    for v in 0..256u32 {
        let off = rng.below(CODE_LEN as u32) + if code16 { 0 } else { CODE };
        let ty: u64 = if rng.next() & 1 == 0 { 0xEE } else { 0xEF };
        let gate = (off as u64 & 0xFFFF) | (code_sel as u64) << 16 | ty << 40 | ((off as u64) >> 16) << 48;
        mem.load(PhysAddr(8 * v), &gate.to_le_bytes());
    }
    cpu.state.gdtr.base = GDT;
    cpu.state.gdtr.limit = 0x2F;
    cpu.state.idtr.base = 0;
    cpu.state.idtr.limit = 0x7FF;
    cpu.state.cr0 |= CR0_PE;
    cpu.state.tr = Segment { selector: 0x28, base: TSS, limit: 0x67, flags: SEG_P | (0xB << 8) };
}

/// Generated 16-bit code in the first megabyte around the code (from
/// [`LOW_CODE`], above the descriptor tables, to 1 MiB): far jumps, calls,
/// returns and interrupts go to random segments there, which otherwise
/// ran zeroed RAM (`add [bx+si], al`) for the rest of the trial.
fn fill_first_megabyte(mem: &mut GuestMemory, rng: &mut Rng) {
    for k in 1..16 {
        let more = gen_code(rng, false);
        mem.load(PhysAddr(CODE + k * CODE_LEN as u32), &more);
    }
    let below = gen_code(rng, false);
    mem.load(PhysAddr(LOW_CODE), &below[..(CODE - LOW_CODE) as usize]);
}

/// One machine set up for a trial; the same `rng` state gives the same
/// machine.
fn setup(cpu: &mut Cpu, mem: &mut GuestMemory, rng: &mut Rng, mode: Mode) {
    cpu.set_model(ferrite_core::cpu::cpuid::CpuModel::Pentium4);
    cpu.reset();
    cpu.state.cr4 |= ferrite_core::cpu::state::CR4_OSFXSR;
    if rng.below(2) == 0 {
        cpu.state.cr4 |= ferrite_core::cpu::fpu::sse::CR4_OSXMMEXCPT;
    }
    // Mostly masked, sometimes an unmasked exception or two (#XM).
    let unmask = if rng.below(4) == 0 { (rng.byte() as u32 & 0x3F) << 7 } else { 0 };
    cpu.state.sse.mxcsr = (0x1F80 & !unmask) | (rng.below(4) << 13) | if rng.below(3) == 0 { 1 << 15 } else { 0 };
    for x in cpu.state.sse.xmm.iter_mut() {
        *x = (rng.next() as u128) << 64 | rng.next() as u128;
    }
    let code32 = matches!(mode, Mode::Protected32 | Mode::Paged32 | Mode::Simd32);
    mem.load(PhysAddr(0), &vec![0u8; RAM]);
    let code = if mode == Mode::Simd32 { gen_simd_code(rng) } else { gen_code(rng, code32) };
    mem.load(PhysAddr(CODE), &code);
    let mut ivt: Vec<u8> = (0..0x400).map(|_| rng.byte()).collect();
    if mode == Mode::Real {
        // Most vectors into the generated code (CODE's segment, a random
        // offset), some anywhere: a random vector mostly lands in zeroed
        // RAM, where `add [bx+si], al` then ran for the rest of the trial.
        for v in ivt.chunks_exact_mut(4) {
            if v[0] & 7 != 0 {
                v[2..4].copy_from_slice(&((CODE >> 4) as u16).to_le_bytes());
            }
        }
        fill_first_megabyte(mem, rng);
    }
    mem.load(PhysAddr(0), &ivt);
    for r in cpu.state.regs.iter_mut() {
        *r = rng.next() as u32;
    }
    cpu.state.set_eflags((rng.next() as u32) & 0x0CD5 | 2);
    let eip = CODE + rng.below(CODE_LEN as u32);
    match mode {
        Mode::Real => {
            cpu.state.load_seg_real(SegReg::Cs, (CODE >> 4) as u16);
            cpu.state.eip = eip - CODE;
            for s in [SegReg::Ds, SegReg::Es, SegReg::Ss, SegReg::Fs, SegReg::Gs] {
                cpu.state.load_seg_real(s, rng.next() as u16 & 0x3FFF);
            }
        }
        Mode::Protected16 | Mode::Protected32 | Mode::Paged32 | Mode::Simd32 => {
            let big = code32;
            protected_tables(cpu, mem, rng, if big { 0x08 } else { 0x18 }, !big);
            let (cs, ds) = if big {
                (flat(0x08, true, true), flat(0x10, false, true))
            } else {
                let mut c = flat(0x18, true, false);
                c.base = CODE;
                (c, flat(0x20, false, false))
            };
            cpu.state.segs[SegReg::Cs as usize] = cs;
            for s in [SegReg::Ds, SegReg::Es, SegReg::Ss, SegReg::Fs, SegReg::Gs] {
                cpu.state.segs[s as usize] = ds;
            }
            if matches!(mode, Mode::Protected32 | Mode::Simd32) && rng.below(2) == 0 {
                // Not the flat model: a data segment with a base and a
                // limit (the translator's general segment path, limit
                // faults).
                let mut d = ds;
                d.base = rng.below(0x1000) * 16;
                d.limit = 0x1F_FFFF + rng.below(0x10_0000);
                let s = [SegReg::Ds, SegReg::Es, SegReg::Ss][rng.below(3) as usize];
                cpu.state.segs[s as usize] = d;
            }
            cpu.state.eip = if big { eip } else { eip - CODE };
            // Keep the stack inside RAM for 32-bit code.
            cpu.state.regs[4] = 0x8_0000 + rng.below(0x1000) * 4;
            if big {
                // Return addresses into the code on the stack, and more
                // generated code before and after it: RET, jumps and
                // running off the end go on in generated code, not in
                // zeros (`add [eax], al` for thousands of instructions,
                // which was most of what ran).
                let stack: Vec<u8> =
                    (0..0x2000).flat_map(|_| (CODE + rng.below(CODE_LEN as u32)).to_le_bytes()).collect();
                mem.load(PhysAddr(0x7_C000), &stack);
                let mut more = || if mode == Mode::Simd32 { gen_simd_code(rng) } else { gen_code(rng, true) };
                let (after, below) = (more(), more());
                mem.load(PhysAddr(CODE + CODE_LEN as u32), &after);
                mem.load(PhysAddr(LOW_CODE), &below[..(CODE - LOW_CODE) as usize]);
            }
            if matches!(mode, Mode::Paged32) {
                let mut pd = vec![0u8; 4096];
                pd[..4].copy_from_slice(&0x0000_0087u32.to_le_bytes());
                mem.load(PhysAddr(PD), &pd);
                cpu.state.cr4 |= CR4_PSE;
                cpu.state.cr3 = PD;
                cpu.state.cr0 |= CR0_PG;
                cpu.flush_caches();
            }
        }
        Mode::V86 => {
            protected_tables(cpu, mem, rng, 0x08, false);
            let f = cpu.state.eflags() | VM;
            cpu.state.set_eflags(f);
            cpu.state.cpl = 3;
            cpu.state.load_seg_real(SegReg::Cs, (CODE >> 4) as u16);
            cpu.state.eip = eip - CODE;
            for s in [SegReg::Ds, SegReg::Es, SegReg::Ss, SegReg::Fs, SegReg::Gs] {
                cpu.state.load_seg_real(s, rng.next() as u16 & 0x3FFF);
            }
            fill_first_megabyte(mem, rng);
        }
    }
}

fn state_of(cpu: &Cpu) -> String {
    let s = &cpu.state;
    format!(
        "regs {:08x?} eip {:08x} eflags {:08x} segs {:?} cr0 {:08x} cr2 {:08x} cpl {} halted {} instret {} fpu {:?} sse {:x?}",
        s.regs,
        s.eip,
        s.eflags(),
        s.segs.map(|g| (g.selector, g.base, g.limit, g.flags)),
        s.cr0,
        s.cr2,
        s.cpl,
        s.halted,
        cpu.instret,
        s.fpu,
        s.sse
    )
}

/// Run `trials` trials of `slices` x `slice` instructions; returns the
/// instructions retired (by each CPU) and those run as translated code.
fn differential(mode: Mode, seed: u64, trials: usize, slices: usize, slice: u64) -> (u64, u64) {
    differential_with(mode, seed, trials, slices, slice, JitMode::Force, 1)
}

/// `differential` with the JIT in `jit_mode` translating after `threshold`
/// executions.
fn differential_with(
    mode: Mode,
    seed: u64,
    trials: usize,
    slices: usize,
    slice: u64,
    jit_mode: JitMode,
    threshold: u32,
) -> (u64, u64) {
    let scale: usize = std::env::var("FERRITE_FUZZ_SCALE").ok().and_then(|v| v.parse().ok()).unwrap_or(1);
    let mut rng = Rng(seed);
    let mut mem_i = GuestMemory::new(RAM).unwrap();
    let mut mem_j = GuestMemory::new(RAM).unwrap();
    let mut interp = Cpu::new();
    let mut jit = Cpu::new();
    let accel = Jit::with_threshold(jit_mode, threshold).expect("the JIT starts on this host");
    jit.set_accelerator(Some(Box::new(accel)));
    let mut retired = 0;
    for trial in 0..trials * scale.max(1) {
        let mut r2 = rng.clone();
        setup(&mut interp, &mut mem_i, &mut rng, mode);
        setup(&mut jit, &mut mem_j, &mut r2, mode);
        let start = interp.instret;
        for k in 0..slices {
            let (oi, _) = interp.run(&mut mem_i, &mut NullBus, slice);
            let (oj, _) = jit.run(&mut mem_j, &mut NullBus, slice);
            let (si, sj) = (state_of(&interp), state_of(&jit));
            assert_eq!(
                si, sj,
                "{mode:?} seed {seed:#x} trial {trial} slice {k}: interpreter and JIT differ\n interp {si}\n jit    {sj}"
            );
            assert_eq!(oi, oj, "{mode:?} seed {seed:#x} trial {trial} slice {k}: outcomes differ");
            if oi != StepOutcome::Continue {
                break;
            }
        }
        for a in (0..RAM as u32).step_by(4096) {
            let pi: Vec<u8> = (a..a + 4096).map(|x| mem_i.peek(PhysAddr(x))).collect();
            let pj: Vec<u8> = (a..a + 4096).map(|x| mem_j.peek(PhysAddr(x))).collect();
            assert!(pi == pj, "{mode:?} seed {seed:#x} trial {trial}: RAM page {a:#x} differs");
        }
        retired += interp.instret - start;
    }
    let translated = jit.accel_stats().map(|s| s.insns_translated).unwrap_or(0);
    eprintln!("{mode:?}: {retired} instructions retired on each CPU, {translated} in translated code");
    assert!(retired > trials as u64 * 100, "{mode:?}: the generated code retired almost nothing ({retired})");
    if jit_mode == JitMode::Force {
        assert!(translated * 3 > retired, "{mode:?}: too little ran as translated code ({translated} of {retired})");
    }
    (retired, translated)
}

#[test]
fn real_mode_interpreter_and_jit_agree() {
    differential(Mode::Real, 0x5EED_0001, 260, 40, 500);
}

#[test]
fn protected16_interpreter_and_jit_agree() {
    differential(Mode::Protected16, 0x5EED_0002, 130, 40, 500);
}

#[test]
fn protected32_interpreter_and_jit_agree() {
    differential(Mode::Protected32, 0x5EED_0003, 130, 40, 500);
}

/// 32-bit code that is two thirds SSE and SSE2 (most memory operands
/// aligned): the forms the translator lowers to vector operations, and
/// the helper calls between them, run densely.
#[test]
fn simd32_interpreter_and_jit_agree() {
    differential(Mode::Simd32, 0x5EED_0007, 250, 40, 500);
}

#[test]
fn paged32_interpreter_and_jit_agree() {
    differential(Mode::Paged32, 0x5EED_0004, 130, 40, 500);
}

#[test]
fn v86_interpreter_and_jit_agree() {
    differential(Mode::V86, 0x5EED_0005, 260, 40, 500);
}

/// The default mode: blocks are compiled on the compile thread and
/// installed whenever they are ready (so where translated code starts
/// differs from run to run), code is written while its translation is
/// being compiled; the state must match the interpreter's all the same.
#[test]
fn background_compiled_blocks_agree() {
    let (retired, translated) = differential_with(Mode::Paged32, 0x5EED_0006, 40, 400, 500, JitMode::On, 2);
    eprintln!("background: {translated} of {retired} instructions in translated code");
    assert!(translated > 0, "no background-compiled block ever ran");
}

/// Replays one trial with small slices and prints the first divergence:
/// `FERRITE_DIFF=mode,seed,trial,slice cargo test -p ferrite-jit --test
/// differential replay -- --ignored --nocapture` (mode: real, pm16, pm32,
/// paged, v86).
#[test]
#[ignore]
fn replay() {
    let spec = std::env::var("FERRITE_DIFF").expect("FERRITE_DIFF=mode,seed,trial,slice");
    let f: Vec<&str> = spec.split(',').collect();
    let mode = match f[0] {
        "real" => Mode::Real,
        "pm16" => Mode::Protected16,
        "pm32" => Mode::Protected32,
        "simd32" => Mode::Simd32,
        "paged" => Mode::Paged32,
        _ => Mode::V86,
    };
    let seed = u64::from_str_radix(f[1].trim_start_matches("0x"), 16).unwrap();
    let trial: usize = f[2].parse().unwrap();
    let slice: u64 = f[3].parse().unwrap();
    let mut rng = Rng(seed);
    let mut mem_i = GuestMemory::new(RAM).unwrap();
    let mut mem_j = GuestMemory::new(RAM).unwrap();
    let mut interp = Cpu::new();
    let mut jit = Cpu::new();
    Jit::install(&mut jit, JitMode::Force).unwrap();
    for _ in 0..trial {
        setup(&mut interp, &mut mem_i, &mut rng, mode);
    }
    let mut r2 = rng.clone();
    setup(&mut interp, &mut mem_i, &mut rng, mode);
    setup(&mut jit, &mut mem_j, &mut r2, mode);
    let mut prev = state_of(&interp);
    let cs = |c: &Cpu| c.state.segs[1].base.wrapping_add(c.state.eip);
    let bytes = |m: &GuestMemory, a: u32| {
        (0..24).map(|i| format!("{:02x}", m.peek(PhysAddr(a + i)))).collect::<Vec<_>>().join(" ")
    };
    let mut prev_code = String::new();
    for k in 0..(20_000 / slice) {
        let here = format!("{:x}: {} | {}", cs(&interp), bytes(&mem_i, cs(&interp)), bytes(&mem_j, cs(&jit)));
        interp.run(&mut mem_i, &mut NullBus, slice);
        jit.run(&mut mem_j, &mut NullBus, slice);
        let (si, sj) = (state_of(&interp), state_of(&jit));
        if si != sj {
            println!("slice {k} differs\n before {prev}\n code before (interp | jit memory) {here}\n prev code {prev_code}\n interp {si}\n jit    {sj}");
            println!(" interp code at {:x}: {}", cs(&interp), bytes(&mem_i, cs(&interp)));
            println!(" jit code at {:x}: {}", cs(&jit), bytes(&mem_j, cs(&jit)));
            return;
        }
        prev = si;
        prev_code = here;
    }
    println!("no difference");
}

/// CALL $ with the stack right behind it: the return address it pushes
/// overwrites the CALL's own displacement, so the next execution of that
/// address must run the new bytes (the interpreter re-decodes; translated
/// code must leave instead of chaining into its stale self).
#[test]
fn a_call_whose_push_rewrites_its_own_code_runs_the_new_code() {
    let run = |jit_mode: Option<JitMode>| {
        let mut mem = GuestMemory::new(RAM).unwrap();
        let mut cpu = Cpu::new();
        if let Some(m) = jit_mode {
            Jit::install(&mut cpu, m).unwrap();
        }
        // At 1000:0100: call 0x100 (e8 fd ff); the rest is NOPs then HLT.
        let mut code = vec![0x90u8; 0x2000];
        code[0x100..0x103].copy_from_slice(&[0xE8, 0xFD, 0xFF]);
        code[0x1FFF] = 0xF4;
        mem.load(PhysAddr(CODE), &code);
        cpu.state.load_seg_real(SegReg::Cs, (CODE >> 4) as u16);
        cpu.state.load_seg_real(SegReg::Ss, (CODE >> 4) as u16);
        cpu.state.eip = 0x100;
        cpu.state.regs[4] = 0x103; // the push writes 0x101..0x102
        let (out, _) = cpu.run(&mut mem, &mut NullBus, 10_000);
        (out, state_of(&cpu))
    };
    let want = run(None);
    assert_eq!(run(Some(JitMode::Force)), want);
    assert_eq!(run(Some(JitMode::On)), want);
}
