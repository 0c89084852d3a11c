//! The instruction table: which semantics function runs each iced-x86
//! mnemonic, and the operand helpers every semantics function uses. The
//! functions themselves live in `alu`, `data` and `control` by family.

use super::decode::{ExecFn, Insn, Op, OpK, NO_REG};
use super::state::SegReg;
use super::{alu, control, data, fpu, system};
use super::{Cpu, Ctx, Fault, Res};
use iced_x86::{Instruction, Mnemonic as M};

/// Mask of an operand of `size` bytes.
#[inline]
pub(crate) fn mask(size: u32) -> u32 {
    if size >= 4 {
        u32::MAX
    } else {
        (1 << (size * 8)) - 1
    }
}

/// Sign bit of an operand of `size` bytes.
#[inline]
pub(crate) fn sign(size: u32) -> u32 {
    1 << (size * 8 - 1)
}

/// Sign-extend a `size`-byte value to 32 bits.
#[inline]
pub(crate) fn sext(v: u32, size: u32) -> u32 {
    match size {
        1 => v as u8 as i8 as i32 as u32,
        2 => v as u16 as i16 as i32 as u32,
        _ => v,
    }
}

/// Where an operand lives once its address is resolved.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Loc {
    Reg(u8),
    /// A linear address (translated at each access).
    Mem(u32),
    /// A physical address already translated with write intent.
    Phys(crate::mem::PhysAddr),
}

/// #UD for anything not implemented by this CPU model.
pub(crate) fn ud(_: &mut Cpu, _: &mut Ctx, _: &Insn) -> Res<()> {
    Err(Fault::UD)
}

/// The condition-code nibble for Jcc/SETcc/CMOVcc (0 elsewhere).
pub(crate) fn cond_code(ins: &Instruction) -> u8 {
    use iced_x86::ConditionCode as C;
    match ins.condition_code() {
        C::o => 0,
        C::no => 1,
        C::b => 2,
        C::ae => 3,
        C::e => 4,
        C::ne => 5,
        C::be => 6,
        C::a => 7,
        C::s => 8,
        C::ns => 9,
        C::p => 10,
        C::np => 11,
        C::l => 12,
        C::ge => 13,
        C::le => 14,
        C::g => 15,
        _ => 0,
    }
}

/// Choose the semantics function for a decoded instruction. Anything this
/// P6 model does not implement maps to [`ud`].
pub(crate) fn handler(ins: &Instruction, insn: &mut Insn) -> ExecFn {
    let op0 = insn.ops[0];
    let lock_ok = op0.kind == OpK::Mem;
    let h: ExecFn = match ins.mnemonic() {
        M::Add => alu::alu_handler::<{ alu::ADD }>(insn),
        M::Or => alu::alu_handler::<{ alu::OR }>(insn),
        M::Adc => alu::alu_handler::<{ alu::ADC }>(insn),
        M::Sbb => alu::alu_handler::<{ alu::SBB }>(insn),
        M::And => alu::alu_handler::<{ alu::AND }>(insn),
        M::Sub => alu::alu_handler::<{ alu::SUB }>(insn),
        M::Xor => alu::alu_handler::<{ alu::XOR }>(insn),
        M::Cmp => alu::alu_handler::<{ alu::CMP }>(insn),
        M::Test => alu::alu_handler::<{ alu::TEST }>(insn),
        M::Inc => alu::incdec_handler(insn, false),
        M::Dec => alu::incdec_handler(insn, true),
        M::Neg => alu::neg,
        M::Not => alu::not,
        M::Mul => alu::mul,
        M::Imul => match ins.op_count() {
            1 => alu::imul1,
            _ => alu::imul_n,
        },
        M::Div => alu::div,
        M::Idiv => alu::idiv,
        M::Daa => alu::daa,
        M::Das => alu::das,
        M::Aaa => alu::aaa,
        M::Aas => alu::aas,
        M::Aam => alu::aam,
        M::Aad => alu::aad,
        M::Rol => alu::rol,
        M::Ror => alu::ror,
        M::Rcl => alu::rcl,
        M::Rcr => alu::rcr,
        M::Shl | M::Sal => alu::shl,
        M::Shr => alu::shr,
        M::Sar => alu::sar,
        M::Shld => alu::shld,
        M::Shrd => alu::shrd,
        M::Bt => alu::bt,
        M::Bts => alu::bts,
        M::Btr => alu::btr,
        M::Btc => alu::btc,
        M::Bsf => alu::bsf,
        M::Bsr => alu::bsr,
        M::Salc => alu::salc,
        M::Cmpxchg => alu::cmpxchg,
        M::Cmpxchg8b => alu::cmpxchg8b,
        M::Xadd => alu::xadd,
        M::Mov => match (op0.kind, insn.ops[1].kind) {
            (OpK::Seg, _) => data::mov_to_seg,
            (_, OpK::Seg) => data::mov_from_seg,
            (OpK::Cr, _) => system::mov_to_cr,
            (_, OpK::Cr) => system::mov_from_cr,
            (OpK::Dr, _) => system::mov_to_dr,
            (_, OpK::Dr) => system::mov_from_dr,
            _ => data::mov_handler(insn),
        },
        M::Movzx => data::movzx,
        M::Movsx => data::movsx,
        M::Xchg => data::xchg,
        M::Lea => data::lea,
        M::Push => data::push,
        M::Pop => data::pop,
        M::Pusha | M::Pushad => data::pusha,
        M::Popa | M::Popad => data::popa,
        M::Pushf | M::Pushfd => data::pushf,
        M::Popf | M::Popfd => data::popf,
        M::Lahf => data::lahf,
        M::Sahf => data::sahf,
        M::Cbw | M::Cwde => data::cbw,
        M::Cwd | M::Cdq => data::cwd,
        M::Xlatb => data::xlat,
        M::Bswap => data::bswap,
        m if super::decode::is_cmovcc(m) => data::cmov,
        m if super::decode::is_setcc(m) => data::setcc,
        M::Lds => data::lptr_ds,
        M::Les => data::lptr_es,
        M::Lss => data::lptr_ss,
        M::Lfs => data::lptr_fs,
        M::Lgs => data::lptr_gs,
        M::In => data::in_,
        M::Out => data::out,
        M::Insb | M::Insw | M::Insd => data::ins,
        M::Outsb | M::Outsw | M::Outsd => data::outs,
        // (SSE2's MOVSD and CMPSD share the string instructions' names.)
        M::Movsd | M::Cmpsd if is_sse(ins) => fpu::sse::handler(ins, insn),
        M::Movsb | M::Movsw | M::Movsd => data::movs,
        M::Cmpsb | M::Cmpsw | M::Cmpsd => data::cmps,
        M::Stosb | M::Stosw | M::Stosd => data::stos,
        M::Lodsb | M::Lodsw | M::Lodsd => data::lods,
        M::Scasb | M::Scasw | M::Scasd => data::scas,
        M::Jmp => match op0.kind {
            OpK::Imm
                if ins.op_kind(0) == iced_x86::OpKind::FarBranch16
                    || ins.op_kind(0) == iced_x86::OpKind::FarBranch32 =>
            {
                control::jmp_far_imm
            }
            OpK::Imm => {
                rel_branch(ins, insn);
                control::jmp_rel
            }
            _ if ins.is_jmp_far_indirect() => control::jmp_far_mem,
            _ => control::jmp_near_ind,
        },
        M::Call => match op0.kind {
            OpK::Imm
                if ins.op_kind(0) == iced_x86::OpKind::FarBranch16
                    || ins.op_kind(0) == iced_x86::OpKind::FarBranch32 =>
            {
                control::call_far_imm
            }
            OpK::Imm => {
                rel_branch(ins, insn);
                control::call_rel
            }
            _ if ins.is_call_far_indirect() => control::call_far_mem,
            _ => control::call_near_ind,
        },
        m if super::decode::is_jcc(m) => {
            rel_branch(ins, insn);
            control::jcc
        }
        M::Jcxz | M::Jecxz => {
            rel_branch(ins, insn);
            control::jcxz
        }
        M::Loop => {
            rel_branch(ins, insn);
            insn.cc = 0;
            control::loop_
        }
        M::Loope => {
            rel_branch(ins, insn);
            insn.cc = 1;
            control::loop_
        }
        M::Loopne => {
            rel_branch(ins, insn);
            insn.cc = 2;
            control::loop_
        }
        M::Ret => control::ret_near,
        M::Retf => control::ret_far,
        M::Iret | M::Iretd => control::iret,
        M::Int => control::int_n,
        M::Int3 => control::int3,
        M::Int1 => control::int1,
        M::Into => control::into,
        M::Bound => control::bound,
        M::Enter => control::enter,
        M::Leave => control::leave,
        M::Hlt => control::hlt,
        M::Nop => control::nop,
        M::Clc => control::clc,
        M::Stc => control::stc,
        M::Cmc => control::cmc,
        M::Cld => control::cld,
        M::Std => control::std_,
        M::Cli => control::cli,
        M::Sti => control::sti,
        M::Wait => fpu::fwait,
        M::Fxsave => fpu::fxsave,
        // (iced-x86 files CLFLUSH under CLFSH, not SSE2.)
        M::Clflush => fpu::sse::clflush,
        M::Fxrstor => fpu::fxrstor,
        M::Ud2 => ud,
        M::Cpuid => system::cpuid,
        M::Rdtsc => system::rdtsc,
        M::Rdmsr => system::rdmsr,
        M::Rdpmc => system::rdpmc,
        M::Wrmsr => system::wrmsr,
        M::Sysenter => system::sysenter,
        M::Sysexit => system::sysexit,
        M::Lgdt => system::lgdt,
        M::Lidt => system::lidt,
        M::Sgdt => system::sgdt,
        M::Sidt => system::sidt,
        M::Lmsw => system::lmsw,
        M::Smsw => system::smsw,
        M::Clts => system::clts,
        M::Invlpg => system::invlpg,
        M::Invd | M::Wbinvd => system::invd,
        M::Lldt => system::lldt,
        M::Sldt => system::sldt,
        M::Ltr => system::ltr,
        M::Str => system::str_,
        M::Verr => system::verr,
        M::Verw => system::verw,
        M::Lar => system::lar,
        M::Lsl => system::lsl,
        M::Arpl => system::arpl,
        _ if is_sse(ins) => fpu::sse::handler(ins, insn),
        _ if is_mmx(ins) => fpu::mmx::handler(ins, insn),
        _ => ud,
    };
    // LOCK is only legal on read-modify-write forms with a memory
    // destination (SDM vol. 2, LOCK); otherwise #UD.
    if insn.lock {
        let lockable = matches!(
            ins.mnemonic(),
            M::Add
                | M::Adc
                | M::And
                | M::Btc
                | M::Btr
                | M::Bts
                | M::Cmpxchg
                | M::Cmpxchg8b
                | M::Dec
                | M::Inc
                | M::Neg
                | M::Not
                | M::Or
                | M::Sbb
                | M::Sub
                | M::Xor
                | M::Xadd
                | M::Xchg
        );
        if !(lockable && lock_ok) {
            return ud;
        }
    }
    h
}

/// Whether translated code must leave after this instruction (the
/// block-boundary property of the instruction table). Only plain data
/// instructions let a block go on: ALU, moves to general registers and
/// memory, stack pushes and pops of general registers, string instructions
/// (a REP loop that yields before it is done moves EIP back to itself,
/// which leaves translated code as any control transfer does), flag bits
/// other than IF/TF, CPUID/RDTSC/RDMSR, x87.
/// (An instruction that raises an exception leaves translated code
/// anyway, so #UD forms need no entry here.)
pub(crate) fn ends_block(ins: &Instruction, insn: &Insn) -> bool {
    let gpr_or_mem = |o: Op| matches!(o.kind, OpK::Reg | OpK::Mem | OpK::Imm | OpK::None);
    let continues = match ins.mnemonic() {
        M::Add | M::Or | M::Adc | M::Sbb | M::And | M::Sub | M::Xor | M::Cmp | M::Test => true,
        M::Inc | M::Dec | M::Neg | M::Not | M::Mul | M::Imul | M::Div | M::Idiv => true,
        M::Daa | M::Das | M::Aaa | M::Aas | M::Aam | M::Aad | M::Salc => true,
        M::Rol | M::Ror | M::Rcl | M::Rcr | M::Shl | M::Sal | M::Shr | M::Sar | M::Shld | M::Shrd => true,
        M::Bt | M::Bts | M::Btr | M::Btc | M::Bsf | M::Bsr => true,
        M::Cmpxchg | M::Cmpxchg8b | M::Xadd | M::Xchg | M::Bswap => true,
        M::Mov => gpr_or_mem(insn.ops[0]) && gpr_or_mem(insn.ops[1]),
        M::Movzx | M::Movsx | M::Lea | M::Lahf | M::Sahf | M::Cbw | M::Cwde | M::Cwd | M::Cdq | M::Xlatb => true,
        // POP SS/DS/.. loads a segment (and POP SS sets the shadow).
        M::Push => true,
        M::Pop => gpr_or_mem(insn.ops[0]),
        M::Pusha | M::Pushad | M::Popa | M::Popad | M::Pushf | M::Pushfd => true,
        M::Enter | M::Leave | M::Bound | M::Nop | M::Clc | M::Stc | M::Cmc | M::Cld | M::Std | M::Cli => true,
        m if super::decode::is_cmovcc(m) => true,
        m if super::decode::is_setcc(m) => true,
        // One iteration without REP; REP loops run to the end or yield
        // (and restart) after a bounded number of iterations.
        M::Movsb
        | M::Movsw
        | M::Movsd
        | M::Cmpsb
        | M::Cmpsw
        | M::Cmpsd
        | M::Stosb
        | M::Stosw
        | M::Stosd
        | M::Lodsb
        | M::Lodsw
        | M::Lodsd
        | M::Scasb
        | M::Scasw
        | M::Scasd => true,
        M::Cpuid | M::Rdtsc | M::Rdmsr | M::Wait => true,
        // MMX and SSE: FPU/SSE state, general registers, EFLAGS (COMISS)
        // and memory only.
        _ if is_mmx(ins) || is_sse(ins) => true,
        // x87 arithmetic, loads, stores and control: FPU state only (FERR#
        // reaches IRQ13 between run slices, not inside a block).
        _ if is_x87_escape(ins) => true,
        _ => false,
    };
    !continues
}

/// x87 escape opcodes (D8-DF) this CPU implements: their semantics come
/// from `fpu::handler`.
pub(crate) fn is_x87_escape(ins: &Instruction) -> bool {
    use iced_x86::CpuidFeature as F;
    ins.cpuid_features()
        .iter()
        .any(|f| matches!(f, F::FPU | F::FPU287 | F::FPU287XL_ONLY | F::FPU387 | F::FPU387SL_ONLY))
}

/// Instructions of the MMX set (`fpu::mmx::handler` rejects the forms of
/// later extensions).
pub(crate) fn is_mmx(ins: &Instruction) -> bool {
    ins.cpuid_features().contains(&iced_x86::CpuidFeature::MMX)
}

/// Instructions of the SSE and SSE2 sets (XMM forms and the integer
/// additions on MMX registers).
pub(crate) fn is_sse(ins: &Instruction) -> bool {
    use iced_x86::CpuidFeature as F;
    matches!(ins.cpuid_features(), [F::SSE] | [F::SSE2])
}

/// Store a relative branch as its displacement from the next instruction,
/// so the cached form is position-independent.
fn rel_branch(ins: &Instruction, insn: &mut Insn) {
    insn.imm = (ins.near_branch_target() as u32).wrapping_sub(ins.next_ip() as u32);
}

impl Cpu {
    /// Offset of the memory operand (ModRM/SIB effective address).
    #[inline]
    pub(crate) fn ea(&self, i: &Insn) -> u32 {
        let mut a = i.disp;
        if i.base != NO_REG {
            a = a.wrapping_add(self.state.regs[i.base as usize]);
        }
        if i.index != NO_REG {
            a = a.wrapping_add(self.state.regs[i.index as usize] << i.scale);
        }
        if i.addr32 {
            a
        } else {
            a & 0xFFFF
        }
    }

    /// Resolve operand `n` to a location; memory operands are segment
    /// checked for `write` (reads are always checked).
    #[inline]
    pub(crate) fn loc(&mut self, ctx: &mut Ctx, i: &Insn, n: usize, write: bool) -> Res<Loc> {
        let op = i.ops[n];
        match op.kind {
            OpK::Reg => Ok(Loc::Reg(op.num)),
            _ => {
                let off = self.ea(i);
                self.mem_loc(ctx, i.seg as usize, off, op.size as u32, write)
            }
        }
    }

    /// Resolve a memory operand. For a write (read-modify-write) the whole
    /// access is checked and, when it stays in one page, translated once
    /// with write intent, so the read and the write use the same frame.
    #[inline]
    pub(crate) fn mem_loc(&mut self, ctx: &mut Ctx, seg: usize, off: u32, size: u32, write: bool) -> Res<Loc> {
        let lin = self.seg_check(seg, off, size, write)?;
        self.check_align(lin, size)?;
        if !write {
            return Ok(Loc::Mem(lin));
        }
        if (lin & crate::mem::PAGE_MASK) + size <= crate::mem::PAGE_SIZE {
            let pa = self.translate(ctx, lin, super::mmu::Access::Write)?;
            self.watch(lin, size, true);
            return Ok(Loc::Phys(pa));
        }
        self.probe_write(ctx, lin, size)?;
        Ok(Loc::Mem(lin))
    }

    #[inline]
    pub(crate) fn get_reg(&self, num: u8, size: u32) -> u32 {
        match size {
            1 => self.state.reg8(num as usize) as u32,
            2 => self.state.regs[num as usize] & 0xFFFF,
            _ => self.state.regs[num as usize],
        }
    }

    #[inline]
    pub(crate) fn set_reg(&mut self, num: u8, size: u32, v: u32) {
        match size {
            1 => self.state.set_reg8(num as usize, v as u8),
            2 => self.state.set_reg16(num as usize, v as u16),
            _ => self.state.regs[num as usize] = v,
        }
    }

    #[inline]
    pub(crate) fn rd_loc(&mut self, ctx: &mut Ctx, l: Loc, size: u32) -> Res<u32> {
        match l {
            Loc::Reg(r) => Ok(self.get_reg(r, size)),
            Loc::Mem(lin) => self.read_lin(ctx, lin, size),
            Loc::Phys(pa) => Ok(ctx.mem.read(pa, crate::bus::AccessSize::from_bytes(size), ctx.bus)),
        }
    }

    #[inline]
    pub(crate) fn wr_loc(&mut self, ctx: &mut Ctx, l: Loc, size: u32, v: u32) -> Res<()> {
        match l {
            Loc::Reg(r) => {
                self.set_reg(r, size, v);
                Ok(())
            }
            Loc::Mem(lin) => self.write_lin(ctx, lin, size, v),
            Loc::Phys(pa) => {
                ctx.mem.write(pa, crate::bus::AccessSize::from_bytes(size), v, ctx.bus);
                Ok(())
            }
        }
    }

    /// Read operand `n`.
    #[inline]
    pub(crate) fn rd(&mut self, ctx: &mut Ctx, i: &Insn, n: usize) -> Res<u32> {
        let op: Op = i.ops[n];
        match op.kind {
            OpK::Reg => Ok(self.get_reg(op.num, op.size as u32)),
            OpK::Imm => Ok((if op.num == 0 { i.imm } else { i.imm2 }) & mask(op.size as u32)),
            OpK::Mem => {
                let off = self.ea(i);
                self.read_mem(ctx, i.seg as usize, off, op.size as u32)
            }
            OpK::Seg => Ok(self.state.segs[op.num as usize].selector as u32),
            _ => Err(Fault::UD),
        }
    }

    /// Write operand `n`.
    #[inline]
    pub(crate) fn wr(&mut self, ctx: &mut Ctx, i: &Insn, n: usize, v: u32) -> Res<()> {
        let op: Op = i.ops[n];
        match op.kind {
            OpK::Reg => {
                self.set_reg(op.num, op.size as u32, v);
                Ok(())
            }
            OpK::Mem => {
                let off = self.ea(i);
                self.write_mem(ctx, i.seg as usize, off, op.size as u32, v)
            }
            _ => Err(Fault::UD),
        }
    }

    /// Segment number of a string source (DS unless overridden).
    #[inline]
    pub(crate) fn str_seg(i: &Insn) -> usize {
        i.seg as usize
    }

    /// ES, the fixed destination segment of string instructions.
    pub(crate) const ES: usize = SegReg::Es as usize;
}
