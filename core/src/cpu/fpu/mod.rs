//! The x87 FPU (Intel SDM vol. 1, chapter 8): the register stack, the
//! control, status and tag words, the last-instruction pointers, and the
//! ESC (D8-DF) instructions of a P6.
//!
//! - `f80`: the 80-bit format and its arithmetic (software, exact and
//!   correctly rounded per RC/PC).
//! - `arith`: arithmetic, comparisons and the other operations on ST(0).
//! - `ldst`: loads, stores, constants, FXCH, FCMOVcc.
//! - `ctl`: control instructions (FNINIT, FLDCW, FNSTENV, FNSAVE, ...)
//!   and WAIT.
//! - `trans`: the transcendental instructions.
//!
//! An instruction runs as: `Cpu::fpu_start` (CR0.EM/TS → #NM; for a
//! waiting instruction a pending unmasked exception → #MF when CR0.NE is
//! set), memory operands are read (or, for stores, probed) before anything
//! changes, then FIP/FOP/FDP are recorded (`Cpu::fpu_note`), the operation
//! computes into an [`FpEnv`], and `FpuState::finish` applies its
//! exceptions: an unmasked one sets ES and B and, depending on its kind,
//! keeps the destination and the stack unchanged (SDM vol. 1, 8.5). The
//! #MF itself is delivered at the next waiting instruction (8.6).
//!
//! Where the SDM leaves a detail open (condition codes after FCOMI, FCMOV,
//! FFREE and an incomplete FPREM, the FSTP alias D9 D8+i, FLD with an
//! unmasked denormal, F2XM1 outside its domain, NaN tie-breaks), the FPU
//! does what the host processors of `core/tests/oracle/x87.rs` do.
//!
//! With CR0.NE clear (MS-DOS compatibility), a P6 asserts FERR# when the
//! unmasked exception happens (SDM vol. 3, 22.18.6.7); the board reads it
//! from [`Cpu::ferr_asserted`] and routes it to IRQ13. The processor's
//! freeze at the next waiting instruction until IGNNE# is not modelled:
//! execution continues, as on a system whose IRQ13 handler asserts IGNNE#.

mod arith;
mod ctl;
pub(crate) use ctl::{fxrstor, fxsave};
pub mod f80;
mod ldst;
pub(crate) mod mmx;
pub mod sse;
mod trans;

use super::decode::{ExecFn, Insn, OpK};
use super::state::{SegReg, CR0_EM, CR0_NE, CR0_TS};
use super::{Cpu, Ctx, Fault, Res};
use crate::bus::AccessSize;
use crate::mem::PhysAddr;
pub use f80::F80;
use f80::{FpEnv, DE, IE, OE, PE, UE, ZE};
use iced_x86::{Instruction, Mnemonic as M};

// Status word (SDM vol. 1, 8.1.3).
pub const SW_SF: u16 = 1 << 6;
pub const SW_ES: u16 = 1 << 7;
pub const SW_C0: u16 = 1 << 8;
pub const SW_C1: u16 = 1 << 9;
pub const SW_C2: u16 = 1 << 10;
pub const SW_TOP: u16 = 7 << 11;
pub const SW_C3: u16 = 1 << 14;
pub const SW_B: u16 = 1 << 15;
/// The exception flags IE DE ZE OE UE PE (also the FCW mask bits).
pub const EXC_MASK: u16 = 0x3F;

/// FCW after FNINIT: all exceptions masked, 64-bit precision, nearest.
pub const CW_INIT: u16 = 0x037F;
/// FCW after RESET (SDM vol. 3, table 9-1).
pub const CW_RESET: u16 = 0x0040;
/// FCW bits that are kept: masks, PC, RC and the (inert) infinity control;
/// bit 6 reads as one.
const CW_KEEP: u16 = 0x1F3F;
const CW_ONE: u16 = 0x0040;

/// The x87 state of the CPU.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FpuState {
    /// Physical registers R0-R7; ST(i) is R((TOP + i) mod 8).
    pub regs: [F80; 8],
    pub cw: u16,
    /// Status word except TOP (kept in `top`).
    pub sw: u16,
    pub top: u8,
    /// Bit n set: Rn is empty. The full tag word (valid/zero/special) is
    /// derived from the contents when stored, as processors with FXSAVE do.
    pub empty: u8,
    /// Last non-control instruction: opcode (11 bits), CS:EIP (EIP of its
    /// first prefix), memory operand DS:offset.
    pub fop: u16,
    pub fcs: u16,
    pub fds: u16,
    pub fip: u32,
    pub fdp: u32,
}

impl Default for FpuState {
    fn default() -> Self {
        FpuState::reset()
    }
}

impl FpuState {
    /// After RESET: FCW 0040H, registers +0.0 tagged valid (tag word
    /// 5555H), everything else zero (SDM vol. 3, table 9-1).
    pub fn reset() -> FpuState {
        FpuState { regs: [F80::ZERO; 8], cw: CW_RESET, sw: 0, top: 0, empty: 0, fop: 0, fcs: 0, fds: 0, fip: 0, fdp: 0 }
    }

    /// FNINIT: the registers keep their contents but are all empty.
    pub fn init(&mut self) {
        *self = FpuState { regs: self.regs, cw: CW_INIT, empty: 0xFF, ..FpuState::reset() };
    }

    #[inline]
    fn phys(&self, i: u8) -> usize {
        (self.top.wrapping_add(i) & 7) as usize
    }

    /// ST(i).
    #[inline]
    pub fn st(&self, i: u8) -> F80 {
        self.regs[self.phys(i)]
    }

    #[inline]
    pub fn is_empty(&self, i: u8) -> bool {
        self.empty & (1 << self.phys(i)) != 0
    }

    /// Write ST(i) and tag it valid.
    #[inline]
    pub fn set_st(&mut self, i: u8, v: F80) {
        let p = self.phys(i);
        self.regs[p] = v;
        self.empty &= !(1 << p);
    }

    pub fn push(&mut self, v: F80) {
        self.top = self.top.wrapping_sub(1) & 7;
        self.set_st(0, v);
    }

    pub fn pop(&mut self) {
        self.empty |= 1 << (self.top & 7);
        self.top = self.top.wrapping_add(1) & 7;
    }

    /// The status word with TOP.
    pub fn status(&self) -> u16 {
        (self.sw & !SW_TOP) | (((self.top & 7) as u16) << 11)
    }

    /// Load a status word (TOP included) and derive ES/B from the flags
    /// and masks.
    fn set_status(&mut self, v: u16) {
        self.sw = v & !SW_TOP;
        self.top = ((v >> 11) & 7) as u8;
        self.update_summary();
    }

    /// Load a control word; ES/B follow the new masks (SDM vol. 2, FLDCW).
    fn set_control(&mut self, v: u16) {
        self.cw = (v & CW_KEEP) | CW_ONE;
        self.update_summary();
    }

    fn update_summary(&mut self) {
        if self.sw & !self.cw & EXC_MASK != 0 {
            self.sw |= SW_ES | SW_B;
        } else {
            self.sw &= !(SW_ES | SW_B);
        }
    }

    /// The full tag word: 00 valid, 01 zero, 10 special, 11 empty.
    pub fn tag_word(&self) -> u16 {
        let mut tw = 0;
        for r in 0..8 {
            let t = if self.empty & (1 << r) != 0 {
                3
            } else {
                match self.regs[r].class() {
                    f80::Class::Zero => 1,
                    f80::Class::Normal => 0,
                    _ => 2,
                }
            };
            tw |= t << (2 * r);
        }
        tw
    }

    /// Load a tag word: 11 marks a register empty, any other value valid.
    fn set_tag_word(&mut self, tw: u16) {
        self.empty = (0..8).filter(|r| (tw >> (2 * r)) & 3 == 3).fold(0, |e, r| e | (1 << r));
    }

    /// The rounding, precision and masks for an operation.
    pub fn env(&self) -> FpEnv {
        FpEnv::from_cw(self.cw)
    }

    fn set_cc(&mut self, c3: bool, c2: bool, c1: bool, c0: bool) {
        self.sw &= !(SW_C0 | SW_C1 | SW_C2 | SW_C3);
        self.sw |= (c3 as u16) << 14 | (c2 as u16) << 10 | (c1 as u16) << 9 | (c0 as u16) << 8;
    }

    fn set_c1(&mut self, on: bool) {
        self.sw = (self.sw & !SW_C1) | (on as u16) << 9;
    }

    /// Report exceptions; an unmasked one sets ES and B.
    fn report(&mut self, flags: u8) {
        self.sw |= flags as u16;
        if flags as u16 & !self.cw & EXC_MASK != 0 {
            self.sw |= SW_ES | SW_B;
        }
    }

    /// Stack underflow: IE and SF, C1 clear. True when the masked response
    /// (the indefinite as result) applies.
    fn underflow(&mut self) -> bool {
        self.set_c1(false);
        self.sw |= SW_SF;
        self.report(IE);
        self.cw & IE as u16 != 0
    }

    /// Stack overflow: IE and SF, C1 set. True when masked.
    fn overflow(&mut self) -> bool {
        self.set_c1(true);
        self.sw |= SW_SF;
        self.report(IE);
        self.cw & IE as u16 != 0
    }

    /// Would a push overflow (ST(7) in use)?
    fn full(&self) -> bool {
        !self.is_empty(7)
    }

    /// Apply the exceptions an operation raised and say whether its result
    /// may be written: not when one of the `fatal` kinds is unmasked (SDM
    /// vol. 1, 8.5: [`REG_DEST`], [`MEM_DEST`], [`LOAD`]); only those are
    /// then reported. C1 reports a rounding up.
    fn finish(&mut self, env: &FpEnv, fatal: u8) -> bool {
        let unmasked = env.flags & !env.masks & EXC_MASK as u8;
        if unmasked & fatal != 0 {
            self.set_c1(false);
            self.report(env.flags & fatal);
            return false;
        }
        self.set_c1(env.flags & PE != 0 && env.round_up);
        self.report(env.flags);
        true
    }
}

/// Unmasked exceptions that keep a register destination and the stack
/// unchanged.
const REG_DEST: u8 = IE | DE | ZE;
/// For a memory destination, overflow and underflow too (no store).
const MEM_DEST: u8 = IE | DE | ZE | OE | UE;
/// A load (FLD m32fp/m64fp) completes despite an unmasked denormal
/// exception, as the host processors do.
const LOAD: u8 = IE;

/// How an ESC instruction starts.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// FNINIT, FNCLEX, FNSTSW, FNSTCW, FNSTENV, FNSAVE: no exception check.
    NoWait,
    /// FLDCW, FLDENV, FRSTOR: waiting, but the pointers are kept.
    Control,
    /// Everything else: waiting, records FIP/FOP (and FDP for memory
    /// operands).
    Numeric,
}

impl Cpu {
    /// Checks before any ESC instruction: CR0.EM or TS → #NM (SDM vol. 3,
    /// 2.5 and table 12-1); a waiting instruction with an unmasked exception
    /// pending → #MF when CR0.NE is set. Then a numeric instruction without
    /// a memory operand records its pointers; one with a memory operand
    /// does so with [`Cpu::fpu_note`] once the operand was accessed, so a
    /// fault leaves them unchanged.
    fn fpu_start(&mut self, i: &Insn, kind: Kind) -> Res<()> {
        if self.state.cr0 & (CR0_EM | CR0_TS) != 0 {
            return Err(Fault::NM);
        }
        if kind != Kind::NoWait {
            self.fpu_pending()?;
        }
        if kind == Kind::Numeric && !i.ops.iter().any(|o| o.kind == OpK::Mem) {
            self.fpu_note(i);
        }
        Ok(())
    }

    /// Record FIP/FCS/FOP and, with a memory operand, FDP/FDS.
    fn fpu_note(&mut self, i: &Insn) {
        let f = &mut self.state.fpu;
        f.fip = self.state.eip;
        f.fcs = self.state.segs[SegReg::Cs as usize].selector;
        f.fop = i.imm as u16 & 0x7FF;
        if i.ops.iter().any(|o| o.kind == OpK::Mem) {
            self.state.fpu.fdp = self.ea(i);
            self.state.fpu.fds = self.state.segs[i.seg as usize].selector;
        }
    }

    /// #MF for a pending unmasked exception (native mode only).
    fn fpu_pending(&self) -> Res<()> {
        if self.state.fpu.sw & SW_ES != 0 && self.state.cr0 & CR0_NE != 0 {
            return Err(Fault::MF);
        }
        Ok(())
    }

    /// The FERR# output: an unmasked x87 exception is pending while CR0.NE
    /// is clear (MS-DOS compatibility mode, wired to IRQ13 on a PC).
    pub fn ferr_asserted(&self) -> bool {
        self.state.cr0 & CR0_NE == 0 && self.state.fpu.sw & SW_ES != 0
    }

    /// Read `buf.len()` bytes of the memory operand (`align`: the #AC
    /// alignment of the operand).
    fn fpu_read(&mut self, ctx: &mut Ctx, i: &Insn, buf: &mut [u8], align: u32) -> Res<()> {
        if let Some(s) = self.fpu_direct.filter(|s| s.len() == buf.len()) {
            ctx.mem.read_span(s, buf);
            return Ok(());
        }
        let off = self.ea(i);
        let n = buf.len() as u32;
        let lin = self.seg_check(i.seg as usize, off, n, false)?;
        self.check_align(lin, align)?;
        let page = self.one_page(ctx, lin, n, super::mmu::Access::Read)?;
        let mut k = 0;
        while k < n {
            let size = chunk(n - k);
            let v = match page {
                Some(pa) => ctx.mem.read(PhysAddr(pa.0 + k), AccessSize::from_bytes(size), ctx.bus),
                None => self.read_lin(ctx, lin.wrapping_add(k), size)?,
            };
            buf[k as usize..(k + size) as usize].copy_from_slice(&v.to_le_bytes()[..size as usize]);
            k += size;
        }
        Ok(())
    }

    /// Check that the memory operand can take a store of `n` bytes (every
    /// fault the store could raise, raised now): where it goes, for
    /// [`Cpu::fpu_store`].
    fn fpu_probe(&mut self, ctx: &mut Ctx, i: &Insn, n: u32, align: u32) -> Res<Probed> {
        if let Some(s) = self.fpu_direct.filter(|s| s.len() == n as usize) {
            return Ok(Probed::Ram(s));
        }
        let off = self.ea(i);
        let lin = self.seg_check(i.seg as usize, off, n, true)?;
        self.check_align(lin, align)?;
        // (Inside one page the one translation is the probe.)
        if (lin & 0xFFF) + n <= 0x1000 {
            Ok(Probed::Page(lin, self.translate(ctx, lin, super::mmu::Access::Write)?))
        } else {
            self.probe_write(ctx, lin, n)?;
            Ok(Probed::Cross(lin))
        }
    }

    /// Store `data` to the memory operand (all or nothing).
    fn fpu_write(&mut self, ctx: &mut Ctx, i: &Insn, data: &[u8], align: u32) -> Res<()> {
        let at = self.fpu_probe(ctx, i, data.len() as u32, align)?;
        self.fpu_store(ctx, at, data)
    }

    /// Store `data` where [`Cpu::fpu_probe`] found the operand may be
    /// written.
    fn fpu_store(&mut self, ctx: &mut Ctx, at: Probed, data: &[u8]) -> Res<()> {
        let n = data.len() as u32;
        let (lin, page) = match at {
            Probed::Ram(s) => {
                ctx.mem.write_span(s, data);
                return Ok(());
            }
            Probed::Page(lin, pa) => {
                // (The linear accessors check the chunks of a crossing
                // store.)
                self.watch(lin, n, true);
                (lin, Some(pa))
            }
            Probed::Cross(lin) => (lin, None),
        };
        let mut k = 0;
        while k < n {
            let size = chunk(n - k);
            let mut b = [0u8; 4];
            b[..size as usize].copy_from_slice(&data[k as usize..(k + size) as usize]);
            let v = u32::from_le_bytes(b);
            match page {
                Some(pa) => ctx.mem.write(PhysAddr(pa.0 + k), AccessSize::from_bytes(size), v, ctx.bus),
                None => self.write_lin(ctx, lin.wrapping_add(k), size, v)?,
            }
            k += size;
        }
        Ok(())
    }

    /// For an operand of `n` bytes at `lin` inside one page: its physical
    /// address (one translation and one debug-register check for all its
    /// chunks). None when it crosses pages: each chunk then goes through
    /// the linear accessors.
    fn one_page(&mut self, ctx: &mut Ctx, lin: u32, n: u32, acc: super::mmu::Access) -> Res<Option<PhysAddr>> {
        if (lin & 0xFFF) + n > 0x1000 {
            return Ok(None);
        }
        self.watch(lin, n, acc == super::mmu::Access::Write);
        self.translate(ctx, lin, acc).map(Some)
    }
}

/// A memory operand checked for a store ([`Cpu::fpu_probe`]).
#[derive(Clone, Copy)]
enum Probed {
    /// In one page: the linear and the physical address.
    Page(u32, PhysAddr),
    /// Across two pages: the linear address.
    Cross(u32),
    /// Plain RAM found by translated code ([`Cpu::exec_one_fpu_at`]).
    Ram(crate::mem::RamSpan),
}

/// The largest access (4, 2 or 1 bytes) for `left` bytes.
fn chunk(left: u32) -> u32 {
    match left {
        4.. => 4,
        2 | 3 => 2,
        _ => 1,
    }
}

/// Sub-operations in `Insn::cc` for the arithmetic group, numbered as the
/// reg field of D8 /r.
pub(crate) const OP_ADD: u8 = 0;
pub(crate) const OP_MUL: u8 = 1;
pub(crate) const OP_SUB: u8 = 4;
pub(crate) const OP_SUBR: u8 = 5;
pub(crate) const OP_DIV: u8 = 6;
pub(crate) const OP_DIVR: u8 = 7;
/// `Insn::cc` flag: pop once after the operation.
pub(crate) const POP: u8 = 8;
/// `Insn::cc` flag: FSTP without the empty-register check (D9 D8+i).
pub(crate) const NO_CHECK: u8 = 16;

/// Memory operand types.
pub(crate) const M32FP: u8 = 0;
pub(crate) const M64FP: u8 = 1;
pub(crate) const M80FP: u8 = 2;
pub(crate) const M16INT: u8 = 3;
pub(crate) const M32INT: u8 = 4;
pub(crate) const M64INT: u8 = 5;
pub(crate) const M80BCD: u8 = 6;

/// The x87 opcode (FOP, 11 bits: low 3 bits of the ESC byte and ModRM) of
/// an instruction's bytes, skipping legacy prefixes. None when it is not
/// an ESC opcode, or has a LOCK prefix (a decode-time #UD before #NM).
pub(crate) fn fop(bytes: &[u8]) -> Option<u16> {
    let p = bytes
        .iter()
        .position(|b| !matches!(b, 0x26 | 0x2E | 0x36 | 0x3E | 0x64 | 0x65 | 0x66 | 0x67 | 0xF0 | 0xF2 | 0xF3))?;
    if bytes[..p].contains(&0xF0) {
        return None;
    }
    match (bytes.get(p), bytes.get(p + 1)) {
        (Some(&esc @ 0xD8..=0xDF), Some(&modrm)) => Some(((esc as u16 & 7) << 8) | modrm as u16),
        (Some(0xD8..=0xDF), None) => Some(0),
        _ => None,
    }
}

/// An ESC opcode this CPU does not define (including SSE3's FISTTP): #NM
/// when CR0.EM or TS is set, like any ESC opcode, otherwise #UD (SDM vol.
/// 3, 22.18.6.6).
pub(crate) fn undefined(cpu: &mut Cpu, _: &mut Ctx, _: &Insn) -> Res<()> {
    if cpu.state.cr0 & (CR0_EM | CR0_TS) != 0 {
        return Err(Fault::NM);
    }
    Err(Fault::UD)
}

/// WAIT/FWAIT: #NM when CR0.MP and TS are both set, #MF for a pending
/// unmasked exception in native mode.
pub(crate) fn fwait(cpu: &mut Cpu, _: &mut Ctx, _: &Insn) -> Res<()> {
    let cr0 = cpu.state.cr0;
    if cr0 & super::state::CR0_MP != 0 && cr0 & CR0_TS != 0 {
        return Err(Fault::NM);
    }
    cpu.fpu_pending()
}

/// The semantics function of an x87 instruction; sets `insn.cc` to its
/// sub-operation and `insn.imm` to its FOP.
pub(crate) fn handler(ins: &Instruction, bytes: &[u8], insn: &mut Insn) -> ExecFn {
    insn.imm = fop(bytes).unwrap_or(0) as u32;
    if insn.lock {
        return super::exec::ud;
    }
    let mem = insn.ops[0].kind == OpK::Mem;
    let msize = insn.ops[0].size;
    let mut set = |cc: u8| insn.cc = cc;
    let arith_op = |m: M| match m {
        M::Fadd | M::Faddp | M::Fiadd => OP_ADD,
        M::Fmul | M::Fmulp | M::Fimul => OP_MUL,
        M::Fsub | M::Fsubp | M::Fisub => OP_SUB,
        M::Fsubr | M::Fsubrp | M::Fisubr => OP_SUBR,
        M::Fdiv | M::Fdivp | M::Fidiv => OP_DIV,
        _ => OP_DIVR,
    };
    use arith as a;
    use ctl as c;
    use ldst as l;
    match ins.mnemonic() {
        m @ (M::Fadd | M::Fmul | M::Fsub | M::Fsubr | M::Fdiv | M::Fdivr) => {
            set(arith_op(m));
            match (mem, msize) {
                (true, 4) => a::arith_mem::<M32FP>,
                (true, _) => a::arith_mem::<M64FP>,
                _ => a::arith_reg,
            }
        }
        m @ (M::Faddp | M::Fmulp | M::Fsubp | M::Fsubrp | M::Fdivp | M::Fdivrp) => {
            set(arith_op(m) | POP);
            a::arith_reg
        }
        m @ (M::Fiadd | M::Fimul | M::Fisub | M::Fisubr | M::Fidiv | M::Fidivr) => {
            set(arith_op(m));
            if msize == 2 {
                a::arith_mem::<M16INT>
            } else {
                a::arith_mem::<M32INT>
            }
        }
        m @ (M::Fcom | M::Fcomp | M::Ficom | M::Ficomp) => {
            set(matches!(m, M::Fcomp | M::Ficomp) as u8);
            match (m, mem, msize) {
                (M::Ficom | M::Ficomp, _, 2) => a::fcom_mem::<M16INT>,
                (M::Ficom | M::Ficomp, _, _) => a::fcom_mem::<M32INT>,
                (_, true, 4) => a::fcom_mem::<M32FP>,
                (_, true, _) => a::fcom_mem::<M64FP>,
                _ => a::fcom_reg,
            }
        }
        M::Fucom => a::fcom_reg_quiet::<0>,
        M::Fucomp => a::fcom_reg_quiet::<1>,
        M::Fucompp => a::fcom_reg_quiet::<2>,
        M::Fcompp => {
            set(2);
            a::fcom_reg
        }
        M::Fcomi => a::fcomi::<false, false>,
        M::Fcomip => a::fcomi::<false, true>,
        M::Fucomi => a::fcomi::<true, false>,
        M::Fucomip => a::fcomi::<true, true>,
        M::Ftst => a::ftst,
        M::Fxam => a::fxam,
        M::Fsqrt => a::fsqrt,
        M::Frndint => a::frndint,
        M::Fscale => a::fscale,
        M::Fxtract => a::fxtract,
        M::Fprem => a::fprem::<false>,
        M::Fprem1 => a::fprem::<true>,
        M::Fchs => a::fchs,
        M::Fabs => a::fabs,
        M::Fld => match (mem, msize) {
            (true, 4) => l::fld_mem::<M32FP>,
            (true, 8) => l::fld_mem::<M64FP>,
            (true, _) => l::fld_mem::<M80FP>,
            _ => l::fld_reg,
        },
        M::Fild => match msize {
            2 => l::fld_mem::<M16INT>,
            4 => l::fld_mem::<M32INT>,
            _ => l::fld_mem::<M64INT>,
        },
        M::Fbld => l::fld_mem::<M80BCD>,
        m @ (M::Fst | M::Fstp | M::Fstpnce) => {
            set(match m {
                M::Fst => 0,
                M::Fstp => POP,
                _ => POP | NO_CHECK,
            });
            match (mem, msize) {
                (true, 4) => l::fst_mem::<M32FP>,
                (true, 8) => l::fst_mem::<M64FP>,
                (true, _) => l::fst_mem::<M80FP>,
                _ => l::fst_reg,
            }
        }
        m @ (M::Fist | M::Fistp) => {
            set(if m == M::Fist { 0 } else { POP });
            match msize {
                2 => l::fst_mem::<M16INT>,
                4 => l::fst_mem::<M32INT>,
                _ => l::fst_mem::<M64INT>,
            }
        }
        M::Fbstp => {
            set(POP);
            l::fst_mem::<M80BCD>
        }
        M::Fld1 => l::fld_const::<0>,
        M::Fldl2t => l::fld_const::<1>,
        M::Fldl2e => l::fld_const::<2>,
        M::Fldpi => l::fld_const::<3>,
        M::Fldlg2 => l::fld_const::<4>,
        M::Fldln2 => l::fld_const::<5>,
        M::Fldz => l::fld_const::<6>,
        M::Fxch => l::fxch,
        M::Fcmovb => l::fcmov::<2>,
        M::Fcmovnb => l::fcmov::<3>,
        M::Fcmove => l::fcmov::<4>,
        M::Fcmovne => l::fcmov::<5>,
        M::Fcmovbe => l::fcmov::<6>,
        M::Fcmovnbe => l::fcmov::<7>,
        M::Fcmovu => l::fcmov::<10>,
        M::Fcmovnu => l::fcmov::<11>,
        M::Fninit => c::fninit,
        M::Fnclex => c::fnclex,
        M::Fnstsw => c::fnstsw,
        M::Fnstcw => c::fnstcw,
        M::Fldcw => c::fldcw,
        M::Fnstenv => c::fnstenv,
        M::Fldenv => c::fldenv,
        M::Fnsave => c::fnsave,
        M::Frstor => c::frstor,
        M::Ffree => c::ffree::<false>,
        M::Ffreep => c::ffree::<true>,
        M::Fincstp => c::fincstp,
        M::Fdecstp => c::fdecstp,
        M::Fnop => c::fnop,
        // 8087/287 leftovers that a 387 and later execute as no-ops.
        M::Fneni | M::Fndisi | M::Fnsetpm => c::fnop_nowait,
        M::F2xm1 => trans::f2xm1,
        M::Fyl2x => trans::fyl2x::<false>,
        M::Fyl2xp1 => trans::fyl2x::<true>,
        M::Fptan => trans::fptan,
        M::Fpatan => trans::fpatan,
        M::Fsin => trans::fsin_cos::<0>,
        M::Fcos => trans::fsin_cos::<1>,
        M::Fsincos => trans::fsin_cos::<2>,
        _ => undefined,
    }
}

#[cfg(test)]
mod tests;
