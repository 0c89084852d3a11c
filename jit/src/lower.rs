//! Lowering of one guest block to Cranelift IR.
//!
//! A block is straight-line guest code from one page. Register and flag
//! values live in SSA values while the block runs and are written back
//! (spilled) to `CpuState` only before a call into the interpreter's
//! semantics and at the exits, so a helper, a fault or an exit always sees
//! the exact guest state. Instructions the lowering does not know are calls
//! to [`helpers::step`], which runs the interpreter's semantics function for
//! that one instruction.

use crate::helpers::{self, Helper};
use cranelift_codegen::ir::condcodes::{CondCode, IntCC};
use cranelift_codegen::ir::{
    types, AbiParam, BlockArg, Function, InstBuilder, InstructionData, MemFlagsData, Opcode, SigRef, Signature, Value,
    ValueDef,
};
use cranelift_codegen::isa::CallConv;
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext, Variable};
use ferrite_core::cpu::accel::{ModeKey, MODE_AC, MODE_FLAT};
use ferrite_core::cpu::decode::{is_cmovcc, is_jcc, is_setcc, Insn, Op, OpK, NO_REG};
use ferrite_core::cpu::flags::{LazyOp, AF, ARITH, CF, DF, OF, PF, SF, ZF};
use ferrite_core::cpu::state::{SegReg, Segment, SEG_CODE, SEG_DC, SEG_P, SEG_RW, SEG_S};
use ferrite_core::Cpu;
use iced_x86::{Code, Mnemonic as M};
use std::collections::{BTreeMap, BTreeSet};
use std::mem::offset_of;

mod simd;
pub(crate) use simd::holds_vectors;

const REGS: i32 = offset_of!(Cpu, state.regs) as i32;
const EIP: i32 = offset_of!(Cpu, state.eip) as i32;
const F_BITS: i32 = offset_of!(Cpu, state.flags.bits) as i32;
const ACCEL_RET: i32 = offset_of!(Cpu, accel_ret) as i32;
const ACCEL_LIMIT: i32 = offset_of!(Cpu, accel_limit) as i32;
const F_LAZY: i32 = offset_of!(Cpu, state.flags.lazy) as i32;
const F_OP1: i32 = offset_of!(Cpu, state.flags.op1) as i32;
const F_OP2: i32 = offset_of!(Cpu, state.flags.op2) as i32;
const F_RES: i32 = offset_of!(Cpu, state.flags.res) as i32;
const F_SIGN: i32 = offset_of!(Cpu, state.flags.sign) as i32;
const F_OP: i32 = offset_of!(Cpu, state.flags.op) as i32;
const F_CARRY: i32 = offset_of!(Cpu, state.flags.carry_in) as i32;
// `spill_flags` writes `lazy` + `sign` and `op` + `carry_in` as pairs.
const _: () = assert!(F_SIGN == F_LAZY + 4 && F_CARRY == F_OP + 1);
const INSTRET: i32 = offset_of!(Cpu, instret) as i32;
const TSC: i32 = offset_of!(Cpu, state.tsc) as i32;
const CR4: i32 = offset_of!(Cpu, state.cr4) as i32;
const CR0: i32 = offset_of!(Cpu, state.cr0) as i32;
const FPU_SW: i32 = offset_of!(Cpu, state.fpu.sw) as i32;
const FPU_TOP: i32 = offset_of!(Cpu, state.fpu.top) as i32;
/// The flags LAHF and SAHF move: SF, ZF, AF, PF and CF.
const AH_FLAGS: u32 = SF | ZF | AF | PF | CF;
const SEGS: i32 = offset_of!(Cpu, state.segs) as i32;
const SEG_SIZE: i32 = std::mem::size_of::<Segment>() as i32;
const SEG_BASE: i32 = offset_of!(Segment, base) as i32;
const SEG_LIMIT: i32 = offset_of!(Segment, limit) as i32;
const SEG_FLAGS: i32 = offset_of!(Segment, flags) as i32;
const CS_LIMIT: i32 = (offset_of!(Cpu, state.segs)
    + SegReg::Cs as usize * std::mem::size_of::<Segment>()
    + offset_of!(Segment, limit)) as i32;

/// One guest instruction of a block: its decoded form (owned by the block,
/// so the pointer passed to helpers stays valid) and its offset from the
/// block's first byte.
pub(crate) struct GuestInsn {
    pub insn: *const Insn,
    pub off: u32,
}

/// Whether instruction `i`, run through the interpreter, leaves the
/// general registers and the arithmetic flags alone: true, true for the
/// x87 instructions (D8-DF escapes, FWAIT) except FSTSW AX (writes AX) and
/// FCOMI/FUCOMI (write ZF, PF, CF), and for MMX/SSE/SSE2 except the forms
/// with a general-register destination or, for the flags, (U)COMIS*.
fn x87_keeps(i: &Insn) -> (bool, bool) {
    let Ok(code) = Code::try_from(i.code as usize) else { return (false, false) };
    let m = code.mnemonic();
    let features = code.cpuid_features();
    if features.iter().any(|f| {
        use iced_x86::CpuidFeature as F;
        matches!(f, F::MMX | F::SSE | F::SSE2)
    }) {
        // MMX, SSE, SSE2: a general register is written only as the
        // destination operand (MOVD, MOVMSKPS, PEXTRW, CVTSS2SI, ...);
        // EFLAGS only by the (U)COMIS* compares.
        let writes_gpr = i.ops[0].kind == OpK::Reg;
        let writes_flags = matches!(m, M::Comiss | M::Ucomiss | M::Comisd | M::Ucomisd);
        return (!writes_gpr, !writes_flags);
    }
    let x87 = m == M::Wait
        || code.cpuid_features().iter().any(|f| {
            use iced_x86::CpuidFeature as F;
            matches!(f, F::FPU | F::FPU287 | F::FPU287XL_ONLY | F::FPU387 | F::FPU387SL_ONLY)
        });
    if !x87 || matches!(m, M::Fnstsw | M::Fstsw) && i.ops[0].kind != OpK::Mem {
        return (false, false);
    }
    (true, !matches!(m, M::Fcomi | M::Fcomip | M::Fucomi | M::Fucomip))
}

/// The memory operand of an x87 instruction that reads or writes just
/// that: (its size in bytes, as decoded; whether it is written).
fn x87_operand(i: &Insn) -> Option<(u32, bool)> {
    let op = i.ops.iter().find(|o| o.kind == OpK::Mem)?;
    let write = match mnemonic(i) {
        M::Fld
        | M::Fild
        | M::Fbld
        | M::Fldcw
        | M::Fadd
        | M::Fmul
        | M::Fsub
        | M::Fsubr
        | M::Fdiv
        | M::Fdivr
        | M::Fiadd
        | M::Fimul
        | M::Fisub
        | M::Fisubr
        | M::Fidiv
        | M::Fidivr
        | M::Fcom
        | M::Fcomp
        | M::Ficom
        | M::Ficomp => false,
        M::Fst | M::Fstp | M::Fist | M::Fistp | M::Fisttp | M::Fbstp | M::Fnstcw | M::Fnstsw => true,
        _ => return None,
    };
    Some((op.size as u32, write))
}

/// The iced-x86 mnemonic of a decoded instruction.
pub(crate) fn mnemonic(i: &Insn) -> M {
    Code::try_from(i.code as usize).map(|c| c.mnemonic()).unwrap_or(M::INVALID)
}

/// What the lowering knows about the arithmetic flags at a point of the
/// block.
#[derive(Clone, Copy)]
enum FlagState {
    /// The record in `CpuState::flags` is current.
    Memory,
    /// The last flag-setting instruction was lowered in this block: its
    /// operands and result (masked to `size` bytes) are SSA values.
    Known(Known),
}

#[derive(Clone, Copy)]
struct Known {
    op: LazyOp,
    a: Value,
    b: Value,
    r: Value,
    size: u32,
    /// Flags derived from the record (ARITH, ARITH & !CF for INC/DEC,
    /// ZF|SF|PF for logic operations, whose CF/OF/AF are zero).
    lazy: u32,
    /// Where CF comes from when it is not in `lazy`.
    cf: CfSrc,
    /// OF when it is not in `lazy` (shifts, rotates); None means zero.
    of: Option<Value>,
    /// The carry (0/1) ADC/SBB added or subtracted; None for none.
    carry: Option<Value>,
}

/// The fast-TLB entry of an access (`Lower::fast_check`): its address as a
/// value plus a displacement, and the linear address zero-extended.
#[derive(Clone, Copy)]
struct TlbAt {
    at: Value,
    disp: i32,
    lin64: Value,
}

#[derive(Clone, Copy)]
enum CfSrc {
    /// CF is part of the record (or zero for logic operations).
    Record,
    /// CF is this 0/1 value (INC/DEC after a lowered instruction).
    Value(Value),
    /// CF was materialised in `flags.bits` before the record.
    Bits,
}

/// Where a block may chain: its slots (function pointers, 0 = not
/// translated; one per chaining exit, as many as [`chain_slots`] says) and
/// the page offset of its entry.
pub(crate) struct ChainInfo {
    pub slots: *mut u64,
    pub nslots: usize,
    pub page_off: u32,
}

/// The number of chaining slots a region of `insns` gets: one per
/// relative-branch exit, one for the fall-through (or call) at its end and,
/// after a CALL, one for the code it returns to (`push_ret_entry`).
pub(crate) fn chain_slots(insns: &[Insn]) -> usize {
    let call = insns.last().is_some_and(|i| mnemonic(i) == M::Call) as usize;
    (1 + call + insns.iter().filter(|i| rel_branch(i)).count()).min(MAX_CHAIN_SLOTS)
}

const MAX_CHAIN_SLOTS: usize = 16;

/// The mask that keeps `Shared::ret_top` (a byte offset of 16-byte
/// entries) inside the return stack's ring.
const RET_RING: i64 = ((crate::RET_SLOTS - 1) * 16) as i64;

/// The offset from the region entry of the target of relative branch `i`
/// (at `g`), when it does not depend on the EIP the region was entered
/// with: always for a 32-bit operand size, and for a 16-bit one in 16-bit
/// code, whose EIP and regions stay below 64 KiB (so the target masked to
/// 16 bits is entry + offset exactly when the offsets agree modulo 64 KiB).
fn rel_target(g: &GuestInsn, i: &Insn, code32: bool) -> Option<u32> {
    let rel = g.off.wrapping_add(i.len as u32).wrapping_add(i.imm);
    match (i.opsz, code32) {
        (4, _) => Some(rel),
        (_, false) => Some(rel & 0xFFFF),
        _ => None,
    }
}

/// Whether a region gathered as `insns` (`end`: the offset after them, the
/// last one an unconditional relative JMP) may go on at `end`: when an
/// earlier branch of the region goes there (the shape of if/else) or the
/// JMP goes forward in the page (a loop entered at its condition, whose
/// body follows the JMP). `trim_dead` drops what no branch of the region
/// reaches after all.
pub(crate) fn continues_after_jmp(insns: &[Insn], end: u32, code32: bool) -> bool {
    let Some((jmp, before)) = insns.split_last() else { return false };
    let targets = branch_targets(before, code32);
    let at = end - jmp.len as u32;
    let forward = rel_target(&GuestInsn { insn: jmp as *const Insn, off: at }, jmp, code32)
        .is_some_and(|t| t > end && t - end < 0x400);
    forward || targets.contains(&end)
}

/// The offsets (from the region entry) relative branches in `insns` go to.
fn branch_targets(insns: &[Insn], code32: bool) -> BTreeSet<u32> {
    let mut off = 0u32;
    let mut out = BTreeSet::new();
    for i in insns {
        if rel_branch(i) {
            if let Some(t) = rel_target(&GuestInsn { insn: i as *const Insn, off }, i, code32) {
                out.insert(t);
            }
        }
        off += i.len as u32;
    }
    out
}

/// The length of `insns` once code after an unconditional JMP that no
/// branch of the region reaches is cut off (with the JMP the last
/// instruction then).
pub(crate) fn trim_dead(insns: &[Insn], code32: bool) -> usize {
    let mut n = insns.len();
    loop {
        let targets = branch_targets(&insns[..n], code32);
        let mut off = 0u32;
        let cut = insns[..n].iter().position(|i| {
            off += i.len as u32;
            rel_branch(i) && !conditional(i) && !targets.contains(&off)
        });
        match cut {
            Some(k) if k + 1 < n => n = k + 1,
            _ => return n,
        }
    }
}

/// The labels of a region: the offsets of its instructions that relative
/// branches inside it go to, each with the number of instructions from
/// there to the end of the region: the most one pass from the label may
/// retire before the next budget check, which only backward jumps make
/// (code that only goes forward runs each instruction at most once).
fn labels(insns: &[GuestInsn], code32: bool) -> BTreeMap<u32, i64> {
    let starts: BTreeSet<u32> = insns.iter().map(|g| g.off).collect();
    let targets: BTreeSet<u32> = insns
        .iter()
        .filter_map(|g| {
            // SAFETY: as in `Lower::block`.
            let i = unsafe { &*g.insn };
            rel_branch(i).then(|| rel_target(g, i, code32)).flatten()
        })
        .filter(|t| starts.contains(t))
        .collect();
    targets.iter().map(|&t| (t, rest(insns, t))).collect()
}

/// A branch target inside a region.
#[derive(Clone, Copy)]
struct Label {
    blk: cranelift_codegen::ir::Block,
    /// Instructions from the label to the end of the region ([`rest`]).
    span: i64,
    /// See [`flags_live_at`].
    flags_live: bool,
}

/// Whether the arithmetic flags on arrival at offset `off` of a region may
/// be read, or seen (a fault, an exit, another label), before an
/// instruction sets all six: only register-to-register moves and
/// arithmetic that cannot fault may come first. When they cannot, the
/// edges into the label need not store them.
fn flags_live_at(insns: &[GuestInsn], labels: &BTreeSet<u32>, off: u32) -> bool {
    let Some(start) = insns.iter().position(|g| g.off == off) else { return true };
    for (k, g) in insns[start..].iter().enumerate() {
        if k > 0 && labels.contains(&g.off) {
            return true;
        }
        // SAFETY: as in `Lower::block`.
        let i = unsafe { &*g.insn };
        let m = mnemonic(i);
        let mem = i.ops.iter().any(|o| o.kind == OpK::Mem) && m != M::Lea;
        if !inlined(i) || rel_branch(i) || mem || i.lock {
            return true;
        }
        match m {
            M::Add | M::Or | M::And | M::Sub | M::Xor | M::Cmp | M::Test | M::Neg => return false,
            M::Mov | M::Lea | M::Movzx | M::Movsx | M::Not | M::Nop | M::Bswap | M::Xchg => {}
            _ => return true,
        }
    }
    true
}

/// Instructions from offset `from` to the end of the region.
fn rest(insns: &[GuestInsn], from: u32) -> i64 {
    insns.iter().filter(|g| g.off >= from).count() as i64
}

pub(crate) struct Lower<'a> {
    b: FunctionBuilder<'a>,
    tail_sig: SigRef,
    /// The per-mode exit function's signature (`exit_signature`).
    exit_sig: SigRef,
    chain: Option<ChainInfo>,
    /// (slot, target offset from the entry) of each chaining exit made.
    pub(crate) chains: Vec<(usize, i64)>,
    mode: ModeKey,
    /// The address of the translator's fast TLB for this block's privilege
    /// (host pointers by linear page), in `Shared`: a displacement of each
    /// access where that is in the low 2 GiB (`table_entry`).
    ftlb: i64,
    /// Per segment: base, limit and whether inline accesses may use it
    /// (computed once on the main path; segments only change through
    /// instructions that end a block).
    segc: [Option<(Value, Value, Value)>; 6],
    /// Alignment checking cannot fault (CPL 3 only).
    acok: Option<Value>,
    rd_sig: SigRef,
    wr_sig: SigRef,
    fill_sig: SigRef,
    lookup_sig: SigRef,
    /// The dispatcher's table of recently run blocks (for `helpers::lookup`).
    shared: *mut crate::Shared,
    cpu: Value,
    eip0: Value,
    /// Guest registers as variables; `loaded` says which hold the guest
    /// value on the current path (0-7: the general registers, 8-15: XMM0-7),
    /// `dirty` which differ from `CpuState`.
    vars: [Variable; 8],
    loaded: [bool; 16],
    /// XMM0-7 as vector variables (`simd`; written through to `CpuState`
    /// at once, so never dirty).
    xvars: [Variable; 8],
    /// The SSE level of the CPU model (`with_simd`).
    simd: u8,
    /// The function holds vector values: helpers are called through
    /// `helpers::entry_vec`.
    vec: bool,
    /// SSE instructions were found able to run on this path (CR0.EM and
    /// TS clear, CR4.OSFXSR set; a failed check leaves the region): true
    /// until the next label, as control registers only change through
    /// instructions that end a block.
    simd_checked: bool,
    dirty: [bool; 8],
    /// Branch targets inside the region: their CFG block and span.
    labels: BTreeMap<u32, Label>,
    /// The shared tail of exits that look their target up (`exit_lookup`).
    lookup_blk: Option<cranelift_codegen::ir::Block>,
    /// The address of the mode's exit function (`Lower::exit_stub`), which
    /// such exits tail-call instead (0: none, the tail is in this function).
    exit_fn: i64,
    /// The shared tail of exits after helpers (`after_helper`).
    after_helper_blk: Option<cranelift_codegen::ir::Block>,
    /// The function's one `return 0` (cold), for exits with the state
    /// already precise.
    exit_blk: Option<cranelift_codegen::ir::Block>,
    flags: FlagState,
    /// Lowered instructions retired since `instret` was last updated.
    pending: i64,
    /// The guest's `instret` (what `Cpu::instret` holds once written back).
    iv: Variable,
    code32: bool,
    step_sig: SigRef,
    step_fpu_sig: SigRef,
    step_exit_sig: SigRef,
    cond_sig: SigRef,
    prep_sig: SigRef,
    mf: MemFlagsData,
}

fn mask(size: u32) -> i64 {
    if size >= 4 {
        0xFFFF_FFFF
    } else {
        (1i64 << (size * 8)) - 1
    }
}

fn sign(size: u32) -> i64 {
    1i64 << (size * 8 - 1)
}

/// The signature of a translated block: `fn(cpu, instret) -> u32` (the
/// `Ctx` and the instruction limit are in `Shared`, loaded where needed,
/// which leaves a register more to the region), in the tail-call
/// convention so blocks can chain to
/// each other without growing the stack (entered from Rust through the
/// trampoline). `instret` is the guest's retired-instruction count, carried
/// in a register while blocks chain; `Cpu::instret` is only brought up to
/// date before calls into Rust and when returning.
pub(crate) fn block_signature(ptr: types::Type) -> Signature {
    let mut sig = Signature::new(CallConv::Tail);
    sig.params.push(AbiParam::new(ptr));
    sig.params.push(AbiParam::new(types::I64));
    sig.returns.push(AbiParam::new(types::I32));
    sig
}

/// The per-mode exit function's (`Lower::exit_stub`): a block's, and EIP
/// (also stored in `CpuState`; in a register it is not on the probe's
/// critical path as a load of what the caller just stored).
pub(crate) fn exit_signature(ptr: types::Type) -> Signature {
    let mut sig = block_signature(ptr);
    sig.params.push(AbiParam::new(types::I32));
    sig
}

/// The SystemV entry into the tail-call world: `tramp(cpu, ctx, limit,
/// block)` calls `block(cpu, cpu.instret)` and returns its result (the
/// dispatcher put `ctx` and `limit` into `Shared` first).
pub(crate) fn trampoline(
    func: &mut Function,
    fctx: &mut FunctionBuilderContext,
    target: cranelift_codegen::isa::TargetFrontendConfig,
) {
    let ptr = types::I64;
    let mut sig = Signature::new(CallConv::SystemV);
    sig.params.extend([AbiParam::new(ptr), AbiParam::new(ptr), AbiParam::new(types::I64), AbiParam::new(ptr)]);
    sig.returns.push(AbiParam::new(types::I32));
    func.signature = sig;
    let mut b = FunctionBuilder::new(func, fctx);
    let tail = b.import_signature(block_signature(ptr));
    let entry = b.create_block();
    b.append_block_params_for_function_params(entry);
    b.switch_to_block(entry);
    b.seal_block(entry);
    let p = b.block_params(entry).to_vec();
    let now = b.ins().load(types::I64, MemFlagsData::trusted(), p[0], INSTRET);
    let call = b.ins().call_indirect(tail, p[3], &[p[0], now]);
    let r = b.inst_results(call)[0];
    b.ins().return_(&[r]);
    b.finalize(target);
}

/// True when the lowering inlines `i` (no helper call).
pub(crate) fn inlined(i: &Insn) -> bool {
    let (a, b) = (i.ops[0], i.ops[1]);
    let mem = |o: Op| o.kind == OpK::Mem && o.num == 0 && matches!(o.size, 1 | 2 | 4);
    // LOCK changes nothing on the one CPU where it is legal (a memory
    // destination of these; the decoder made the rest #UD).
    let lockable = matches!(
        mnemonic(i),
        M::Add
            | M::Adc
            | M::And
            | M::Or
            | M::Sbb
            | M::Sub
            | M::Xor
            | M::Inc
            | M::Dec
            | M::Neg
            | M::Not
            | M::Xchg
            | M::Xadd
            | M::Cmpxchg
            | M::Bts
            | M::Btr
            | M::Btc
    );
    if i.lock && !(lockable && mem(a)) {
        return false;
    }
    match mnemonic(i) {
        _ if string_op(i).is_some() => true,
        M::Mov => {
            (a.kind == OpK::Reg && matches!(b.kind, OpK::Reg | OpK::Imm) && (b.kind == OpK::Imm || b.size == a.size))
                || (a.kind == OpK::Reg && mem(b) && b.size == a.size)
                || (mem(a) && matches!(b.kind, OpK::Reg | OpK::Imm))
        }
        M::Add | M::Sub | M::Cmp | M::And | M::Or | M::Xor | M::Test | M::Adc | M::Sbb => {
            let src_ok = b.kind == OpK::Imm || (b.kind == OpK::Reg && b.size == a.size);
            (a.kind == OpK::Reg && src_ok) || (a.kind == OpK::Reg && mem(b) && b.size == a.size) || (mem(a) && src_ok)
        }
        M::Push => {
            (a.kind == OpK::Reg && matches!(a.size, 2 | 4))
                || (a.kind == OpK::Imm && matches!(i.opsz, 2 | 4))
                || (mem(a) && matches!(a.size, 2 | 4) && a.size == i.opsz)
        }
        M::Pop => a.kind == OpK::Reg && matches!(a.size, 2 | 4) && a.num != 4,
        M::Leave => matches!(i.opsz, 2 | 4),
        M::Bswap => a.kind == OpK::Reg && a.size == 4,
        M::Xchg => (a.kind == OpK::Reg || mem(a)) && b.kind == OpK::Reg && a.size == b.size,
        M::Xadd => mem(a) && b.kind == OpK::Reg && a.size == b.size,
        M::Cmpxchg => (a.kind == OpK::Reg || mem(a)) && b.kind == OpK::Reg && a.size == b.size,
        M::Inc | M::Dec | M::Not | M::Neg => a.kind == OpK::Reg || mem(a),
        M::Shl | M::Sal | M::Shr | M::Sar | M::Rol | M::Ror => {
            (matches!(b.kind, OpK::Imm | OpK::None) && (a.kind == OpK::Reg || (mem(a) && shift_count(i) != 0)))
                || (a.kind == OpK::Reg
                    && b.kind == OpK::Reg
                    && b.num == 1
                    && b.size == 1
                    && !matches!(mnemonic(i), M::Rol | M::Ror))
        }
        M::Shld | M::Shrd => {
            let c = i.ops[2];
            a.kind == OpK::Reg
                && a.size == 4
                && b.kind == OpK::Reg
                && (c.kind == OpK::Imm || (c.kind == OpK::Reg && c.num == 1 && c.size == 1))
        }
        M::Imul if b.kind == OpK::None => a.kind == OpK::Reg || mem(a),
        M::Imul => {
            let c = i.ops[2];
            a.kind == OpK::Reg
                && matches!(a.size, 2 | 4)
                && (b.kind == OpK::Reg || mem(b))
                && b.size == a.size
                && matches!(c.kind, OpK::None | OpK::Imm)
        }
        M::Mul | M::Div | M::Idiv => b.kind == OpK::None && (a.kind == OpK::Reg || mem(a)),
        M::Cld | M::Std => true,
        M::Lea => a.kind == OpK::Reg && b.kind == OpK::Mem,
        M::Movzx | M::Movsx => a.kind == OpK::Reg && (b.kind == OpK::Reg || mem(b)),
        M::Bsf | M::Bsr => {
            a.kind == OpK::Reg && matches!(a.size, 2 | 4) && (b.kind == OpK::Reg || mem(b)) && b.size == a.size
        }
        M::Bt | M::Bts | M::Btr | M::Btc => {
            (a.kind == OpK::Reg || mem(a))
                && matches!(a.size, 2 | 4)
                && (b.kind == OpK::Imm || (b.kind == OpK::Reg && b.size == a.size))
        }
        M::Rdtsc => true,
        M::Lahf | M::Sahf => true,
        // FNSTSW AX (to memory: through the interpreter).
        M::Fnstsw => a.kind == OpK::Reg,
        M::Nop => true,
        m if is_setcc(m) => a.kind == OpK::Reg && a.size == 1,
        m if is_cmovcc(m) => a.kind == OpK::Reg && (b.kind == OpK::Reg || mem(b)) && a.size == b.size,
        _ => false,
    }
}

/// String instructions the lowering inlines (without a REP prefix).
#[derive(Clone, Copy, PartialEq, Eq)]
enum StrOp {
    Lods,
    Stos,
    Movs,
    Scas,
}

/// The kind and element size of a string instruction without REP.
fn string_op(i: &Insn) -> Option<(StrOp, u32)> {
    if i.rep != 0 || i.lock {
        return None;
    }
    Some(match Code::try_from(i.code as usize).ok()? {
        Code::Lodsb_AL_m8 => (StrOp::Lods, 1),
        Code::Lodsw_AX_m16 => (StrOp::Lods, 2),
        Code::Lodsd_EAX_m32 => (StrOp::Lods, 4),
        Code::Stosb_m8_AL => (StrOp::Stos, 1),
        Code::Stosw_m16_AX => (StrOp::Stos, 2),
        Code::Stosd_m32_EAX => (StrOp::Stos, 4),
        Code::Movsb_m8_m8 => (StrOp::Movs, 1),
        Code::Movsw_m16_m16 => (StrOp::Movs, 2),
        Code::Movsd_m32_m32 => (StrOp::Movs, 4),
        Code::Scasb_AL_m8 => (StrOp::Scas, 1),
        Code::Scasw_AX_m16 => (StrOp::Scas, 2),
        Code::Scasd_EAX_m32 => (StrOp::Scas, 4),
        _ => return None,
    })
}

/// The masked count of a shift or rotate by an immediate (or by 1).
fn shift_count(i: &Insn) -> u32 {
    if i.ops[1].kind == OpK::None {
        1
    } else {
        i.imm & 0x1F
    }
}

/// True for the relative branches the lowering ends a block with.
pub(crate) fn rel_branch(i: &Insn) -> bool {
    let m = mnemonic(i);
    (is_jcc(m) || m == M::Jmp) && i.ops[0].kind == OpK::Imm && !i.lock && !is_far(i)
}

/// A relative Jcc (not JMP).
pub(crate) fn conditional(i: &Insn) -> bool {
    mnemonic(i) != M::Jmp
}

/// CALL rel and RET near (with or without an immediate), lowered inline as
/// the last instruction of a block.
pub(crate) fn call_or_ret(i: &Insn) -> bool {
    if i.lock || !matches!(i.opsz, 2 | 4) {
        return false;
    }
    match Code::try_from(i.code as usize) {
        Ok(Code::Call_rel16 | Code::Call_rel32_32) => i.ops[0].kind == OpK::Imm,
        Ok(Code::Retnw | Code::Retnd | Code::Retnw_imm16 | Code::Retnd_imm16) => true,
        _ => false,
    }
}

/// JMP and CALL near through a register or memory, lowered inline as the
/// last instruction of a block.
pub(crate) fn indirect_branch(i: &Insn) -> bool {
    let a = i.ops[0];
    let size_ok = match Code::try_from(i.code as usize) {
        Ok(Code::Jmp_rm16 | Code::Call_rm16) => i.opsz == 2,
        Ok(Code::Jmp_rm32 | Code::Call_rm32) => i.opsz == 4,
        _ => false,
    };
    size_ok && !i.lock && a.size == i.opsz && (a.kind == OpK::Reg || (a.kind == OpK::Mem && a.num == 0))
}

fn is_far(i: &Insn) -> bool {
    matches!(Code::try_from(i.code as usize), Ok(Code::Jmp_ptr1616 | Code::Jmp_ptr1632))
}

impl<'a> Lower<'a> {
    pub(crate) fn new(
        func: &'a mut Function,
        fctx: &'a mut FunctionBuilderContext,
        mode: ModeKey,
        ftlb: *mut helpers::FastTlb,
        shared: *mut crate::Shared,
    ) -> Lower<'a> {
        Self::with_signature(func, fctx, mode, ftlb, shared, block_signature(types::I64))
    }

    /// `new` for a function of another signature (the mode's exit
    /// function, `exit_stub`, takes EIP as a third parameter).
    pub(crate) fn with_signature(
        func: &'a mut Function,
        fctx: &'a mut FunctionBuilderContext,
        mode: ModeKey,
        ftlb: *mut helpers::FastTlb,
        shared: *mut crate::Shared,
        signature: Signature,
    ) -> Lower<'a> {
        let code32 = mode & 1 != 0;
        let ptr = types::I64;
        func.signature = signature;
        let mut b = FunctionBuilder::new(func, fctx);
        // Helpers return nothing (`preserve_all` calls cannot): their
        // results are in `Cpu::accel_ret` (`Lower::helper_ret`).
        let mut sig = |params: &[types::Type]| {
            let mut s = Signature::new(helpers::CALL_CONV);
            s.params.extend(params.iter().map(|&t| AbiParam::new(t)));
            b.import_signature(s)
        };
        let i32t = types::I32;
        let step_sig = sig(&[ptr, ptr, ptr]);
        let step_fpu_sig = sig(&[ptr, ptr, ptr, ptr, i32t, i32t]);
        let step_exit_sig = sig(&[ptr, ptr, ptr, ptr]);
        let cond_sig = sig(&[ptr, i32t]);
        let prep_sig = sig(&[ptr, i32t]);
        let rd_sig = sig(&[ptr, ptr, i32t, i32t]);
        let wr_sig = sig(&[ptr, ptr, i32t, i32t, i32t, ptr]);
        let fill_sig = sig(&[ptr, ptr, ptr, i32t, i32t]);
        let lookup_sig = sig(&[ptr, ptr, ptr]);
        let entry = b.create_block();
        b.append_block_params_for_function_params(entry);
        b.switch_to_block(entry);
        b.seal_block(entry);
        let cpu = b.block_params(entry)[0];
        let now = b.block_params(entry)[1];
        let iv = b.declare_var(types::I64);
        b.def_var(iv, now);
        let mf = MemFlagsData::trusted();
        let eip0 = b.ins().load(types::I32, mf, cpu, EIP);
        let tail_sig = b.import_signature(block_signature(ptr));
        let exit_sig = b.import_signature(exit_signature(ptr));
        let vars = [(); 8].map(|_| b.declare_var(types::I32));
        let xvars = [(); 8].map(|_| b.declare_var(types::I8X16));
        Lower {
            tail_sig,
            exit_sig,
            chain: None,
            chains: Vec::new(),
            mode,
            ftlb: ftlb as i64,
            segc: [None; 6],
            acok: None,
            rd_sig,
            wr_sig,
            fill_sig,
            lookup_sig,
            shared,
            b,
            cpu,
            eip0,
            vars,
            loaded: [false; 16],
            xvars,
            simd: 0,
            vec: false,
            simd_checked: false,
            dirty: [false; 8],
            labels: BTreeMap::new(),
            lookup_blk: None,
            exit_fn: 0,
            after_helper_blk: None,
            exit_blk: None,
            flags: FlagState::Memory,
            pending: 0,
            iv,
            code32,
            step_sig,
            step_fpu_sig,
            step_exit_sig,
            cond_sig,
            prep_sig,
            mf,
        }
    }

    /// Lower a whole block and finish the function; returns the chaining
    /// exits made.
    pub(crate) fn block(
        mut self,
        insns: &[GuestInsn],
        end_off: u32,
        chain: Option<ChainInfo>,
        target: cranelift_codegen::isa::TargetFrontendConfig,
    ) -> Vec<(usize, i64)> {
        let mut left = false;
        let mut after_jmp = false;
        self.chain = chain;
        // SAFETY: as below.
        self.vec = insns.iter().any(|g| simd::lowered(unsafe { &*g.insn }, self.simd));
        let found = labels(insns, self.code32);
        let starts: BTreeSet<u32> = found.keys().copied().collect();
        for (off, span) in found {
            let blk = self.b.create_block();
            let flags_live = flags_live_at(insns, &starts, off);
            self.labels.insert(off, Label { blk, span, flags_live });
        }
        self.prologue(end_off, insns.len() as i64);
        for (n, g) in insns.iter().enumerate() {
            // SAFETY: the pointers refer to the block's own boxed slice of
            // decoded instructions, alive for the whole lowering.
            let i = unsafe { &*g.insn };
            let last = n + 1 == insns.len();
            if self.labels.contains_key(&g.off) {
                if !after_jmp {
                    // Arriving from above: forward, no budget check.
                    self.goto_label(g.off, false, 0);
                }
                self.enter_label(g.off);
                if after_jmp {
                    (left, after_jmp) = (false, false);
                }
            } else if after_jmp {
                // Not reachable from inside (`gather` trims such code, so
                // not expected): lowered into a block nothing jumps to.
                let dead = self.b.create_block();
                self.b.seal_block(dead);
                self.b.switch_to_block(dead);
                self.loaded = [false; 16];
                self.dirty = [false; 8];
                self.flags = FlagState::Memory;
                self.pending = 0;
                self.segc = [None; 6];
                self.simd_checked = false;
                self.acok = None;
                (left, after_jmp) = (false, false);
            }
            if rel_branch(i) {
                self.branch(g, i, last);
                if last {
                    left = true;
                    break;
                }
                if mnemonic(i) == M::Jmp {
                    // The code after it is a label of the region (see
                    // `continues_after_jmp`).
                    left = true;
                    after_jmp = true;
                }
            } else if last && call_or_ret(i) {
                if mnemonic(i) == M::Call {
                    self.call_rel(g, i);
                } else {
                    self.ret_near(g, i);
                }
                left = true;
            } else if last && indirect_branch(i) {
                self.indirect(g, i);
                left = true;
            } else if inlined(i) {
                self.inline(g, i);
                self.pending += 1;
            } else if simd::lowered(i, self.simd) {
                self.simd(g, i);
                self.pending += 1;
            } else if last || i.ends_block {
                self.helper_exit(g);
                left = true;
                break;
            } else {
                self.helper(g);
            }
        }
        if !left {
            self.spill_all();
            let eip = self.eip_at(end_off);
            self.store32(eip, EIP);
            self.flush_instret(0);
            self.chain_exit(end_off as i64, eip);
        }
        self.fill_exit_block();
        self.b.seal_all_blocks();
        self.b.finalize(target);
        self.chains
    }

    /// The function for an entry whose instruction crosses into the next
    /// page: it holds no decoded form of it (the bytes in the next page
    /// may change, or be mapped elsewhere, without this page's code being
    /// dropped), so `helpers::step_fetch_exit` fetches and runs it and
    /// looks up the next block. One such function serves every entry of a
    /// mode key (it depends on nothing else); it keeps the guest from a
    /// trip through the run loop at each such instruction.
    pub(crate) fn stub(mut self, target: cranelift_codegen::isa::TargetFrontendConfig) {
        // (The CS limit over the whole instruction is the helper's check.)
        self.prologue(1, 1);
        self.sync_instret();
        let f = self.entry_val(Helper::StepFetchExit);
        let sh = self.b.ins().iconst(types::I64, self.shared as i64);
        let ctx = self.ctx_val();
        self.b.ins().call_indirect(self.lookup_sig, f, &[self.cpu, ctx, sh]);
        self.go_on_after_exit_helper();
        self.fill_exit_block();
        self.b.seal_all_blocks();
        self.b.finalize(target);
    }

    /// Exits that look their target up tail-call the function at `addr`
    /// (the mode's `Lower::exit_stub`) instead of holding that code.
    pub(crate) fn with_exit_fn(mut self, addr: u64) -> Self {
        self.exit_fn = addr as i64;
        self
    }

    /// SSE instructions of the model's `level` (`simd_level`) are lowered
    /// to vector operations (`simd`).
    pub(crate) fn with_simd(mut self, level: u8) -> Self {
        self.simd = level;
        self
    }

    /// The address translated code calls helper `h` at, as a value.
    fn entry_val(&mut self, h: Helper) -> Value {
        let addr = if self.vec { helpers::entry_vec(h) } else { helpers::entry(h) };
        self.b.ins().iconst(types::I64, addr)
    }

    /// The function every exit of a mode key that looks its target up
    /// tail-calls, with `instret` and EIP passed (EIP also stored:
    /// `exit_lookup`):
    /// the probe of the table of linear entry points, `helpers::lookup`,
    /// the return to the run loop. One copy per mode key instead of one
    /// per region: this tail is about 30 IR instructions and 7 CFG blocks,
    /// a quarter of a small region's IR, and compile time goes with both.
    pub(crate) fn exit_stub(mut self, target: cranelift_codegen::isa::TargetFrontendConfig) {
        // (Made with `exit_signature`: the entry block has EIP as its
        // third parameter.)
        let param = self.b.func.layout.entry_block().and_then(|e| self.b.block_params(e).get(2).copied());
        let eip = param.unwrap_or(self.eip0);
        self.exit_lookup(eip);
        self.fill_exit_block();
        self.b.seal_all_blocks();
        self.b.finalize(target);
    }

    /// Entry checks (the dispatcher makes them too, but chained entries
    /// come straight from another block): the entry's span of `first`
    /// instructions fits the budget, the whole region the CS limit and, in
    /// 16-bit code, the 64 KiB wrap.
    fn prologue(&mut self, bytes: u32, first: i64) {
        let now = self.b.use_var(self.iv);
        let after = self.b.ins().iadd_imm_u(now, first);
        let limit = self.limit_val();
        let fits = self.b.ins().icmp(IntCC::UnsignedLessThanOrEqual, after, limit);
        let last = self.b.ins().iadd_imm_u(self.eip0, bytes.max(1) as i64 - 1);
        let mut ok = fits;
        if self.mode & MODE_FLAT == 0 {
            // (A flat CS has the 4 GiB limit, and its EIP is the linear
            // address, which cannot wrap inside a block's one page.)
            let nowrap = self.b.ins().icmp(IntCC::UnsignedGreaterThanOrEqual, last, self.eip0);
            ok = self.b.ins().band(ok, nowrap);
            let cs_limit = self.load32(CS_LIMIT);
            let in_cs = self.b.ins().icmp(IntCC::UnsignedLessThanOrEqual, last, cs_limit);
            ok = self.b.ins().band(ok, in_cs);
        }
        if !self.code32 {
            let small = self.b.ins().icmp_imm_u(IntCC::UnsignedLessThanOrEqual, last, 0xFFFF);
            ok = self.b.ins().band(ok, small);
        }
        let (out, go) = self.fork_not(ok);
        self.b.switch_to_block(out);
        // A chained entry arrives with the count only in a register.
        self.sync_instret();
        let zero = self.konst(0);
        self.b.ins().return_(&[zero]);
        self.b.switch_to_block(go);
    }

    /// Leave the block with EIP = `eip` (state written back): chain straight
    /// into the translation of the target when the target is in this page
    /// and translated, else return to the dispatcher.
    fn chain_exit(&mut self, delta: i64, eip: Value) {
        let Some(slot) = self.chain_slot(delta) else {
            self.exit_lookup(eip);
            return;
        };
        // The target's physical address is this page plus `delta` only
        // when EIP did not wrap (16-bit code).
        let expect = self.add_k(self.eip0, delta);
        let sp = self.b.ins().iconst(types::I64, slot);
        let f = self.b.ins().load(types::I64, self.mf, sp, 0);
        let mut go = self.b.ins().icmp_imm_u(IntCC::NotEqual, f, 0);
        // (Mostly the same sum as `eip`: then it cannot differ.)
        if self.sum_of(eip) != self.sum_of(expect) {
            let same = self.b.ins().icmp(IntCC::Equal, eip, expect);
            go = self.b.ins().band(go, same);
        }
        let (chain_blk, ret_blk) = self.fork(go, false);
        self.b.switch_to_block(chain_blk);
        let now = self.b.use_var(self.iv);
        self.b.ins().return_call_indirect(self.tail_sig, f, &[self.cpu, now]);
        self.b.switch_to_block(ret_blk);
        self.exit_lookup(eip);
    }

    /// A chaining slot of this region for the target at `delta` from its
    /// entry (its address), when the target is in this page and slots are
    /// left.
    fn chain_slot(&mut self, delta: i64) -> Option<i64> {
        let c = self.chain.as_ref()?;
        let in_page = (0..4096).contains(&(c.page_off as i64 + delta));
        let n = self.chains.len();
        if !in_page || n >= c.nslots {
            return None;
        }
        self.chains.push((n, delta));
        Some(c.slots as i64 + 8 * n as i64)
    }

    /// Leave the block (state written back, EIP = `eip` stored): on into
    /// the translation at the new CS:EIP when it is in the table of linear
    /// entry points (probed inline) or `helpers::lookup` finds it and
    /// nothing needs the run loop, else back to the run loop.
    ///
    /// The inline probe skips `Cpu::may_continue_translated`'s checks: in
    /// translated code they can only change through instructions that
    /// leave for the run loop (STI, POPF, IRET, port I/O, MOV to control
    /// or debug registers, HLT, MOV SS, a store to code: see
    /// `helpers::mem_write`); the table is emptied with the fast TLB (whose
    /// stamp fixes the linear-to-physical mapping) and when blocks go.
    ///
    /// A region tail-calls the mode's exit function (`with_exit_fn`,
    /// `exit_stub`) with EIP; that function (and a region whose exit
    /// function could not be made) holds this code once, as a block every
    /// exit jumps to with its EIP.
    fn exit_lookup(&mut self, eip: Value) {
        if self.exit_fn != 0 {
            let f = self.b.ins().iconst(types::I64, self.exit_fn);
            let now = self.b.use_var(self.iv);
            self.b.ins().return_call_indirect(self.exit_sig, f, &[self.cpu, now, eip]);
            return;
        }
        if let Some(blk) = self.lookup_blk {
            self.b.ins().jump(blk, &[eip.into()]);
            return;
        }
        let blk = self.b.create_block();
        self.lookup_blk = Some(blk);
        let eip_param = self.b.append_block_param(blk, types::I32);
        self.b.ins().jump(blk, &[eip.into()]);
        self.b.switch_to_block(blk);
        let eip = eip_param;
        let lin = if self.mode & MODE_FLAT != 0 {
            eip
        } else {
            let base = self.load32(SEGS + SegReg::Cs as i32 * SEG_SIZE + SEG_BASE);
            self.b.ins().iadd(base, eip)
        };
        let h = self.b.ins().imul_imm_u(lin, crate::LIN_HASH as i64);
        let idx = self.b.ins().ushr_imm_u(h, (32 - crate::LIN_BITS) as i64);
        let idx = self.b.ins().uextend(types::I64, idx);
        let byte = self.b.ins().ishl_imm_u(idx, std::mem::size_of::<crate::LinSlot>().trailing_zeros() as i64);
        const _: () = assert!(std::mem::size_of::<crate::LinSlot>() == 16);
        let base = self.shared as i64 + offset_of!(crate::Shared, lin) as i64;
        let (at, d) = self.table_entry(base, byte);
        let tag = self.b.ins().load(types::I64, self.mf, at, d + offset_of!(crate::LinSlot, tag) as i32);
        let want = self.lin_tag(lin);
        let hit = self.b.ins().icmp(IntCC::Equal, tag, want);
        // The table is two-way (`Shared::set_lin`): the pair's other slot.
        let (other, fast) = self.fork_not(hit);
        self.b.switch_to_block(fast);
        let func = self.b.ins().load(types::I64, self.mf, at, d + offset_of!(crate::LinSlot, func) as i32);
        let now = self.b.use_var(self.iv);
        self.b.ins().return_call_indirect(self.tail_sig, func, &[self.cpu, now]);
        self.b.switch_to_block(other);
        let idx1 = self.b.ins().bxor_imm_u(idx, 1);
        let byte1 = self.b.ins().ishl_imm_u(idx1, std::mem::size_of::<crate::LinSlot>().trailing_zeros() as i64);
        let (at1, d1) = self.table_entry(base, byte1);
        let tag1 = self.b.ins().load(types::I64, self.mf, at1, d1 + offset_of!(crate::LinSlot, tag) as i32);
        let hit1 = self.b.ins().icmp(IntCC::Equal, tag1, want);
        let (slow, fast1) = self.fork_not(hit1);
        self.b.switch_to_block(fast1);
        let func = self.b.ins().load(types::I64, self.mf, at1, d1 + offset_of!(crate::LinSlot, func) as i32);
        let now = self.b.use_var(self.iv);
        self.b.ins().return_call_indirect(self.tail_sig, func, &[self.cpu, now]);
        self.b.switch_to_block(slow);
        let f = self.entry_val(Helper::Lookup);
        let sh = self.b.ins().iconst(types::I64, self.shared as i64);
        let ctx = self.ctx_val();
        self.b.ins().call_indirect(self.lookup_sig, f, &[self.cpu, ctx, sh]);
        let target = self.helper_ret(types::I64);
        let (out, go) = self.fork_not(target);
        self.b.switch_to_block(go);
        let now = self.b.use_var(self.iv);
        self.b.ins().return_call_indirect(self.tail_sig, target, &[self.cpu, now]);
        self.b.switch_to_block(out);
        self.sync_instret();
        let zero = self.konst(0);
        self.b.ins().return_(&[zero]);
    }

    /// Leave after a helper whose result is `r`: to the run loop when the
    /// instruction faulted (the slice counts the fault as a step, which
    /// the budget translated code checks does not), else `after_helper`.
    fn after_helper_unless_fault(&mut self, r: Value) {
        let faulted = self.b.ins().icmp_imm_u(IntCC::Equal, r, helpers::FAULTED as i64);
        self.leave_if(faulted);
        self.after_helper();
    }

    /// Leave after a helper ran an instruction (not a faulting one):
    /// `CpuState` and `Cpu::instret` are as the interpreter left them. On
    /// into the translation at the new CS:EIP when `helpers::lookup` finds
    /// one and nothing needs the run loop (it checks everything: interrupts,
    /// the shadow, written code, a changed mode), else back to the run
    /// loop. One copy per function.
    fn after_helper(&mut self) {
        if let Some(blk) = self.after_helper_blk {
            self.b.ins().jump(blk, &[]);
            return;
        }
        let blk = self.b.create_block();
        self.after_helper_blk = Some(blk);
        self.b.ins().jump(blk, &[]);
        self.b.switch_to_block(blk);
        let now = self.b.ins().load(types::I64, self.mf, self.cpu, INSTRET);
        let f = self.entry_val(Helper::Lookup);
        let sh = self.b.ins().iconst(types::I64, self.shared as i64);
        let ctx = self.ctx_val();
        self.b.ins().call_indirect(self.lookup_sig, f, &[self.cpu, ctx, sh]);
        let target = self.helper_ret(types::I64);
        let (out, go) = self.fork_not(target);
        self.b.switch_to_block(go);
        self.b.ins().return_call_indirect(self.tail_sig, target, &[self.cpu, now]);
        self.b.switch_to_block(out);
        let zero = self.konst(0);
        self.b.ins().return_(&[zero]);
    }

    /// Jump to the label at `off` (`extra` instructions, the branch, retire
    /// on the way): the label's state is every register in `CpuState`
    /// (the edges store the dirty ones; the code after the label loads
    /// what it reads), the flags in memory and `instret` up to date.
    /// With `check` (a backward jump), only while the instructions from
    /// the label to the region's end fit the budget; else leave with EIP
    /// at the label.
    fn goto_label(&mut self, off: u32, check: bool, extra: i64) {
        let Label { blk, span, flags_live } = self.labels[&off];
        // Dead flags stay unwritten (the label's state says "in memory",
        // and nothing reads them before they are all set again).
        let flags = self.flags;
        if flags_live {
            self.spill_flags();
        }
        let dirty0 = self.dirty;
        self.spill_regs();
        self.flush_instret(extra);
        if !check {
            self.b.ins().jump(blk, &[]);
            self.dirty = dirty0;
            return;
        }
        let now = self.b.use_var(self.iv);
        let next = self.b.ins().iadd_imm_u(now, span);
        let limit = self.limit_val();
        let fits = self.b.ins().icmp(IntCC::UnsignedLessThanOrEqual, next, limit);
        let out = self.cold_block();
        self.b.ins().brif(fits, blk, &[], out, &[]);
        self.b.seal_block(out);
        self.b.switch_to_block(out);
        // (The registers were stored above.)
        self.dirty = dirty0;
        if !flags_live {
            // Leaving, the state must be precise all the same.
            self.flags = flags;
            self.spill_flags();
        }
        let eip = self.eip_at(off);
        self.store32(eip, EIP);
        self.sync_instret();
        let zero = self.konst(0);
        self.b.ins().return_(&[zero]);
    }

    /// Continue at the label at `off` (see `goto_label` for its state).
    /// Values cached on the way here need not dominate it.
    fn enter_label(&mut self, off: u32) {
        let blk = self.labels[&off].blk;
        self.b.switch_to_block(blk);
        self.loaded = [false; 16];
        self.dirty = [false; 8];
        self.flags = FlagState::Memory;
        self.pending = 0;
        self.segc = [None; 6];
        self.simd_checked = false;
        self.acok = None;
    }

    // ----- state access -----

    /// The result the helper just called left in `Cpu::accel_ret` (its
    /// low half for I32).
    fn helper_ret(&mut self, ty: types::Type) -> Value {
        let low_half = if ty == types::I32 && cfg!(target_endian = "big") { 4 } else { 0 };
        self.b.ins().load(ty, self.mf, self.cpu, ACCEL_RET + low_half)
    }

    /// The `Ctx` of this run of translated code (`Shared::ctx`, set by the
    /// dispatcher: not a parameter, so it holds no register through the
    /// region).
    fn ctx_val(&mut self) -> Value {
        let at = self.shared as i64 + offset_of!(crate::Shared, ctx) as i64;
        let at = self.b.ins().iconst(types::I64, at);
        self.b.ins().load(types::I64, self.mf, at, 0)
    }

    /// The `instret` value this run of translated code (the region and
    /// the regions it chains to) must not pass (`Cpu::accel_limit`): the
    /// prologue and backward jumps check against it.
    fn limit_val(&mut self) -> Value {
        self.b.ins().load(types::I64, self.mf, self.cpu, ACCEL_LIMIT)
    }

    /// `v` cut to `size` bytes (nothing to do for a whole i32).
    fn trunc(&mut self, v: Value, size: u32) -> Value {
        if size >= 4 && self.b.func.dfg.value_type(v) == types::I32 {
            v
        } else {
            self.b.ins().band_imm_u(v, mask(size))
        }
    }

    fn load32(&mut self, off: i32) -> Value {
        self.b.ins().load(types::I32, self.mf, self.cpu, off)
    }

    fn store32(&mut self, v: Value, off: i32) {
        self.b.ins().store(self.mf, v, self.cpu, off);
    }

    fn store8(&mut self, v: Value, off: i32) {
        self.b.ins().istore8(self.mf, v, self.cpu, off);
    }

    /// The integer constant `v` is, when an `iconst` made it.
    fn const_of(&self, v: Value) -> Option<i64> {
        let v = self.b.func.dfg.resolve_aliases(v);
        let ValueDef::Result(inst, _) = self.b.func.dfg.value_def(v) else { return None };
        match self.b.func.dfg.insts[inst] {
            InstructionData::UnaryImm { opcode: Opcode::Iconst, imm } => Some(imm.bits()),
            _ => None,
        }
    }

    /// `v` as (value, constant) with `v` = value + constant, as far as
    /// the adds that made it show (for comparing two sums).
    fn sum_of(&self, v: Value) -> (Value, i64) {
        let r = self.b.func.dfg.resolve_aliases(v);
        if let ValueDef::Result(inst, 0) = self.b.func.dfg.value_def(r) {
            if let InstructionData::Binary { opcode: Opcode::Iadd, args: [x, y] } = self.b.func.dfg.insts[inst] {
                if let Some(c) = self.const_of(y) {
                    return (self.b.func.dfg.resolve_aliases(x), c);
                }
            }
        }
        (r, 0)
    }

    /// `v + k` (wrapping in `v`'s width), folded into the constant of an
    /// `x + c` that made `v` (the mid-end that would fold it is off): ESP
    /// through a run of pushes, or an access's last byte, stay one add
    /// away from the register.
    fn add_k(&mut self, v: Value, k: i64) -> Value {
        if k == 0 {
            return v;
        }
        let ty = self.b.func.dfg.value_type(v);
        let m = if ty == types::I32 { 0xFFFF_FFFF } else { -1 };
        let r = self.b.func.dfg.resolve_aliases(v);
        if let Some(c) = self.const_of(r) {
            return self.b.ins().iconst(ty, c.wrapping_add(k) & m);
        }
        if let ValueDef::Result(inst, 0) = self.b.func.dfg.value_def(r) {
            if let InstructionData::Binary { opcode: Opcode::Iadd, args: [x, y] } = self.b.func.dfg.insts[inst] {
                for (base, c) in [(x, y), (y, x)] {
                    if let Some(c) = self.const_of(c) {
                        let sum = c.wrapping_add(k) & m;
                        return if sum == 0 { base } else { self.b.ins().iadd_imm_u(base, sum) };
                    }
                }
            }
        }
        self.b.ins().iadd_imm_u(v, k & m)
    }

    fn konst(&mut self, v: i64) -> Value {
        self.b.ins().iconst(types::I32, v & 0xFFFF_FFFF)
    }

    /// EIP of the byte at `off` from the block start (16-bit code wraps).
    fn eip_at(&mut self, off: u32) -> Value {
        let v = self.add_k(self.eip0, off as i64);
        if self.code32 {
            v
        } else {
            self.b.ins().band_imm_u(v, 0xFFFF)
        }
    }

    fn full(&mut self, r: u8) -> Value {
        let r = r as usize & 7;
        if !self.loaded[r] {
            let v = self.load32(REGS + 4 * r as i32);
            self.b.def_var(self.vars[r], v);
            self.loaded[r] = true;
        }
        self.b.use_var(self.vars[r])
    }

    fn set_full(&mut self, r: u8, v: Value) {
        let r = r as usize & 7;
        self.b.def_var(self.vars[r], v);
        self.loaded[r] = true;
        self.dirty[r] = true;
    }

    /// Write dirty registers back to `CpuState`.
    fn spill_regs(&mut self) {
        for r in 0..8 {
            if self.dirty[r] {
                let v = self.b.use_var(self.vars[r]);
                self.store32(v, REGS + 4 * r as i32);
                self.dirty[r] = false;
            }
        }
    }

    /// Register `num` of `size` bytes, zero-extended.
    fn reg(&mut self, num: u8, size: u32) -> Value {
        match size {
            1 if num >= 4 => {
                let f = self.full(num - 4);
                let v = self.b.ins().ushr_imm_u(f, 8);
                self.b.ins().band_imm_u(v, 0xFF)
            }
            1 | 2 => {
                let f = self.full(num);
                self.b.ins().band_imm_u(f, mask(size))
            }
            _ => self.full(num),
        }
    }

    /// Write register `num` of `size` bytes (`v` already masked to size).
    fn set_reg(&mut self, num: u8, size: u32, v: Value) {
        match size {
            1 if num >= 4 => {
                let f = self.full(num - 4);
                let keep = self.b.ins().band_imm_u(f, !0xFF00i64 & 0xFFFF_FFFF);
                let hi = self.b.ins().ishl_imm_u(v, 8);
                let n = self.b.ins().bor(keep, hi);
                self.set_full(num - 4, n);
            }
            1 | 2 => {
                let f = self.full(num);
                let keep = self.b.ins().band_imm_u(f, !mask(size) & 0xFFFF_FFFF);
                let n = self.b.ins().bor(keep, v);
                self.set_full(num, n);
            }
            _ => self.set_full(num, v),
        }
    }

    /// Write dirty registers and the flags back to `CpuState`.
    fn spill_all(&mut self) {
        self.spill_regs();
        self.spill_flags();
    }

    fn spill_flags(&mut self) {
        self.spill_flags_with(true);
    }

    /// `spill_flags`; with `compute_cf` false a lazy CF stays lazy (for a
    /// slow path: what follows it on the fast path keeps the flags in
    /// variables, and after a fault the interpreter evaluates the record).
    fn spill_flags_with(&mut self, compute_cf: bool) {
        let FlagState::Known(k) = self.flags else { return };
        let mut lazy = k.lazy;
        match k.op {
            // (Where CF and OF are known zero, a slow path leaves them and
            // AF lazy: the record of a logic operation evaluates them to 0.)
            LazyOp::Logic if !compute_cf && matches!(k.cf, CfSrc::Record) && k.of.is_none() => {
                lazy |= CF | OF | AF;
            }
            LazyOp::Logic => {
                let bits = self.load32(F_BITS);
                let mut bits = self.b.ins().band_imm_u(bits, !((CF | OF | AF) as i64) & 0xFFFF_FFFF);
                if let CfSrc::Value(c) = k.cf {
                    bits = self.b.ins().bor(bits, c);
                }
                if let Some(o) = k.of {
                    let o = self.b.ins().ishl_imm_u(o, 11);
                    bits = self.b.ins().bor(bits, o);
                }
                self.store32(bits, F_BITS);
            }
            _ => {
                self.store32(k.a, F_OP1);
                self.store32(k.b, F_OP2);
                if let Some(c) = k.carry {
                    self.store8(c, F_CARRY);
                }
                // CF goes out computed (one compare here) rather than lazy:
                // an INC/DEC, ADC/SBB or Jb/Jae at the start of the next
                // block then reads it from `bits` instead of calling the
                // materialising helper.
                let cf = match k.cf {
                    CfSrc::Value(c) if k.lazy & CF == 0 => Some(c),
                    _ if k.lazy & CF != 0 && compute_cf => {
                        let c = self.flag(&k, CF);
                        let c = if self.b.func.dfg.value_type(c) == types::I32 {
                            c
                        } else {
                            self.b.ins().uextend(types::I32, c)
                        };
                        lazy &= !CF;
                        Some(c)
                    }
                    _ => None,
                };
                let of = if k.lazy & OF == 0 { Some(k.of.unwrap_or_else(|| self.konst(0))) } else { None };
                if cf.is_some() || of.is_some() {
                    let clear = if cf.is_some() { CF } else { 0 } | if of.is_some() { OF } else { 0 };
                    let bits = self.load32(F_BITS);
                    let mut bits = self.b.ins().band_imm_u(bits, !(clear as i64) & 0xFFFF_FFFF);
                    if let Some(c) = cf {
                        bits = self.b.ins().bor(bits, c);
                    }
                    if let Some(o) = of {
                        let o = self.b.ins().ishl_imm_u(o, 11);
                        bits = self.b.ins().bor(bits, o);
                    }
                    self.store32(bits, F_BITS);
                }
            }
        }
        self.store32(k.r, F_RES);
        // `lazy` and `sign` are adjacent (one store), so are `op` and
        // `carry_in` (the carry was stored above when there is one).
        let (lo, hi) =
            if cfg!(target_endian = "little") { (lazy, sign(k.size) as u32) } else { (sign(k.size) as u32, lazy) };
        let both = ((hi as u64) << 32 | lo as u64) as i64;
        let both = self.b.ins().iconst(types::I64, both);
        self.b.ins().store(self.mf, both, self.cpu, F_LAZY);
        match (k.op, k.carry) {
            (LazyOp::Logic, _) | (_, Some(_)) => {
                let op = self.konst(k.op as i64);
                self.store8(op, F_OP);
            }
            _ => {
                // carry_in = 0
                let v = if cfg!(target_endian = "little") { k.op as i64 } else { (k.op as i64) << 8 };
                let op = self.b.ins().iconst(types::I16, v);
                self.b.ins().store(self.mf, op, self.cpu, F_OP);
            }
        }
        self.flags = FlagState::Memory;
    }

    /// Bring `instret` up to date; `extra` more instructions retire with it.
    fn flush_instret(&mut self, extra: i64) {
        let n = self.pending + extra;
        if n != 0 {
            let v = self.b.use_var(self.iv);
            let v = self.b.ins().iadd_imm_u(v, n);
            self.b.def_var(self.iv, v);
        }
        self.pending = 0;
    }

    /// Write the instruction count back to `Cpu::instret`.
    fn sync_instret(&mut self) {
        let v = self.b.use_var(self.iv);
        self.b.ins().store(self.mf, v, self.cpu, INSTRET);
    }

    /// Take the instruction count from `Cpu::instret` (after a helper
    /// retired instructions; it counts the pending ones too).
    fn reload_instret(&mut self) {
        let v = self.b.ins().load(types::I64, self.mf, self.cpu, INSTRET);
        self.b.def_var(self.iv, v);
        self.pending = 0;
    }

    // ----- helpers -----

    /// Make `CpuState` precise as before the instruction at `off`: dirty
    /// registers and the flags written back, `instret` and EIP stored
    /// (before a call into Rust that may deliver a fault or run it).
    fn precise_at(&mut self, off: u32) {
        self.precise_at_with(off, true);
    }

    /// `precise_at` for a slow path that joins the fast path again (or
    /// leaves after a fault): CF may stay lazy (`spill_flags_with`).
    fn precise_at_cold(&mut self, off: u32) {
        self.precise_at_with(off, false);
    }

    fn precise_at_with(&mut self, off: u32, compute_cf: bool) {
        self.spill_regs();
        self.spill_flags_with(compute_cf);
        // (Only stored: the lowering's own count stays as it is, so a slow
        // path that joins the main path again gives it no new value.)
        let iv = self.b.use_var(self.iv);
        let now = self.add_k(iv, self.pending);
        self.b.ins().store(self.mf, now, self.cpu, INSTRET);
        let eip = self.eip_at(off);
        self.store32(eip, EIP);
    }

    /// Run instruction `g` through the interpreter's semantics: spill, call,
    /// leave the block if it says so, forget the cached registers.
    fn helper(&mut self, g: &GuestInsn) {
        // SAFETY: as in `block`.
        let i = unsafe { &*g.insn };
        let (keeps_regs, keeps_flags) = x87_keeps(i);
        let flags = self.flags;
        // An x87 memory operand the fast TLB has: the helper is given its
        // host address (0 when the checks fail: it then makes them all).
        let direct = x87_operand(i).map(|(n, write)| {
            let off = self.ea(i);
            let (ok, lin, eaddr) = self.fast_check(i.seg, off, n, write);
            let host = self.host_addr(eaddr);
            let none = self.b.ins().iconst(types::I64, 0);
            (self.b.ins().select(ok, host, none), lin, n | (write as u32) << 8)
        });
        self.precise_at(g.off);
        let ip = self.b.ins().iconst(types::I64, g.insn as i64);
        match direct {
            Some((host, lin, nw)) => {
                let f = self.entry_val(Helper::StepFpu);
                let sh = self.b.ins().iconst(types::I64, self.shared as i64);
                let nw = self.konst(nw as i64);
                self.b.ins().call_indirect(self.step_fpu_sig, f, &[self.cpu, sh, ip, host, lin, nw]);
            }
            None => {
                let f = self.entry_val(Helper::Step);
                let ctx = self.ctx_val();
                self.b.ins().call_indirect(self.step_sig, f, &[self.cpu, ctx, ip]);
            }
        }
        let r = self.helper_ret(types::I32);
        let (exit, cont) = self.fork(r, true);
        self.b.switch_to_block(exit);
        self.after_helper_unless_fault(r);
        self.b.switch_to_block(cont);
        // (What it leaves alone is still in the variables, and equal to
        // `CpuState`, which `precise_at` wrote.)
        if !keeps_regs {
            self.loaded[..8].fill(false);
        }
        // (XMM registers are read again: the helper may have written them.)
        self.loaded[8..].fill(false);
        if keeps_flags {
            self.flags = flags;
        }
        self.reload_instret();
    }

    /// Run instruction `g`, the region's last, through the interpreter's
    /// semantics and go on to wherever it leads (`helpers::step_exit` also
    /// looks the next block up: one call, not two).
    fn helper_exit(&mut self, g: &GuestInsn) {
        self.precise_at(g.off);
        let f = self.entry_val(Helper::StepExit);
        let ip = self.b.ins().iconst(types::I64, g.insn as i64);
        let sh = self.b.ins().iconst(types::I64, self.shared as i64);
        let ctx = self.ctx_val();
        self.b.ins().call_indirect(self.step_exit_sig, f, &[self.cpu, ctx, ip, sh]);
        self.go_on_after_exit_helper();
    }

    /// After `helpers::step_exit` or `step_fetch_exit`: tail-call the code
    /// it found, or return to the run loop (0: nothing found, or
    /// [`helpers::FAULTED`]).
    fn go_on_after_exit_helper(&mut self) {
        let target = self.helper_ret(types::I64);
        let go = self.b.ins().icmp_imm_u(IntCC::UnsignedGreaterThan, target, helpers::FAULTED as i64);
        let (out, on) = self.fork_not(go);
        self.b.switch_to_block(on);
        // (The helper brought `Cpu::instret` up to date.)
        let now = self.b.ins().load(types::I64, self.mf, self.cpu, INSTRET);
        self.b.ins().return_call_indirect(self.tail_sig, target, &[self.cpu, now]);
        self.b.switch_to_block(out);
        let zero = self.konst(0);
        self.b.ins().return_(&[zero]);
    }

    // ----- flags -----

    /// The value (0/1, i32) of one arithmetic flag, or None when the flags
    /// are only in memory.
    fn flag(&mut self, k: &Known, f: u32) -> Value {
        let sb = sign(k.size);
        let in_record = k.lazy & f != 0;
        let v = match f {
            CF if !in_record => match k.cf {
                CfSrc::Value(v) => return v,
                CfSrc::Bits => {
                    let bits = self.load32(F_BITS);
                    return self.b.ins().band_imm_u(bits, CF as i64);
                }
                CfSrc::Record => return self.konst(0),
            },
            CF => {
                let (lt, x, y) = match k.op {
                    LazyOp::Add => (self.b.ins().icmp(IntCC::UnsignedLessThan, k.r, k.a), k.r, k.a),
                    LazyOp::Sub => (self.b.ins().icmp(IntCC::UnsignedLessThan, k.a, k.b), k.a, k.b),
                    LazyOp::Logic => return self.konst(0),
                };
                match k.carry {
                    // With a carry in: r <= a (ADC), a <= b (SBB).
                    Some(c) => {
                        let lt = self.b.ins().uextend(types::I32, lt);
                        let eq = self.b.ins().icmp(IntCC::Equal, x, y);
                        let eq = self.b.ins().uextend(types::I32, eq);
                        let eqc = self.b.ins().band(eq, c);
                        return self.b.ins().bor(lt, eqc);
                    }
                    None => lt,
                }
            }
            OF if !in_record => return k.of.unwrap_or_else(|| self.konst(0)),
            ZF => self.b.ins().icmp_imm_u(IntCC::Equal, k.r, 0),
            SF => {
                let t = self.b.ins().band_imm_u(k.r, sb);
                self.b.ins().icmp_imm_u(IntCC::NotEqual, t, 0)
            }
            OF => {
                let t = match k.op {
                    LazyOp::Add => {
                        let x = self.b.ins().bxor(k.a, k.r);
                        let y = self.b.ins().bxor(k.b, k.r);
                        self.b.ins().band(x, y)
                    }
                    LazyOp::Sub => {
                        let x = self.b.ins().bxor(k.a, k.b);
                        let y = self.b.ins().bxor(k.a, k.r);
                        self.b.ins().band(x, y)
                    }
                    LazyOp::Logic => return k.of.unwrap_or_else(|| self.konst(0)),
                };
                let t = self.b.ins().band_imm_u(t, sb);
                self.b.ins().icmp_imm_u(IntCC::NotEqual, t, 0)
            }
            PF => {
                let low = self.b.ins().band_imm_u(k.r, 0xFF);
                let n = self.b.ins().popcnt(low);
                let odd = self.b.ins().band_imm_u(n, 1);
                self.b.ins().icmp_imm_u(IntCC::Equal, odd, 0)
            }
            _ => {
                // AF
                if k.op == LazyOp::Logic {
                    return self.konst(0);
                }
                let x = self.b.ins().bxor(k.a, k.b);
                let x = self.b.ins().bxor(x, k.r);
                let t = self.b.ins().band_imm_u(x, 0x10);
                self.b.ins().icmp_imm_u(IntCC::NotEqual, t, 0)
            }
        };
        self.b.ins().uextend(types::I32, v)
    }

    /// Condition code `cc` (0/1) with the flags in `CpuState` (after a
    /// label or a helper). ZF and SF come from `bits` or, when lazy, from
    /// the record's result (the same for every operation: `Flags::compute`);
    /// the other conditions are read from `bits` when the flags they need
    /// are not lazy (after FCOMI, SAHF, or CF computed at a spill), else
    /// the helper evaluates the record.
    fn condition_in_memory(&mut self, cc: u8) -> Value {
        let lazy = self.load32(F_LAZY);
        let bits = self.load32(F_BITS);
        let from_bits = |l: &mut Self, f: u32| {
            let s = l.b.ins().ushr_imm_u(bits, f.trailing_zeros() as i64);
            l.b.ins().band_imm_u(s, 1)
        };
        let v = match cc >> 1 {
            2 | 4 => {
                let f = if cc >> 1 == 2 { ZF } else { SF };
                let res = self.load32(F_RES);
                let sign = self.load32(F_SIGN);
                let computed = if f == ZF {
                    let below = self.b.ins().iadd_imm_u(sign, -1);
                    let m = self.b.ins().bor(sign, below);
                    let r = self.b.ins().band(res, m);
                    self.b.ins().icmp_imm_u(IntCC::Equal, r, 0)
                } else {
                    let r = self.b.ins().band(res, sign);
                    self.b.ins().icmp_imm_u(IntCC::NotEqual, r, 0)
                };
                let computed = self.b.ins().uextend(types::I32, computed);
                let stored = from_bits(self, f);
                let is_lazy = self.b.ins().band_imm_u(lazy, f as i64);
                self.b.ins().select(is_lazy, computed, stored)
            }
            n => {
                let need = match n {
                    0 => OF,
                    1 => CF,
                    3 => CF | ZF,
                    5 => PF,
                    6 => SF | OF,
                    _ => SF | OF | ZF,
                };
                let any = self.b.ins().band_imm_u(lazy, need as i64);
                let slow = self.b.create_block();
                self.b.set_cold_block(slow);
                let fast = self.b.create_block();
                let join = self.b.create_block();
                let v = self.b.append_block_param(join, types::I32);
                self.b.ins().brif(any, slow, &[], fast, &[]);
                self.b.switch_to_block(fast);
                let got = match n {
                    0 => from_bits(self, OF),
                    1 => from_bits(self, CF),
                    3 => {
                        let c = from_bits(self, CF);
                        let z = from_bits(self, ZF);
                        self.b.ins().bor(c, z)
                    }
                    5 => from_bits(self, PF),
                    _ => {
                        let s = from_bits(self, SF);
                        let o = from_bits(self, OF);
                        let l = self.b.ins().bxor(s, o);
                        if n == 6 {
                            l
                        } else {
                            let z = from_bits(self, ZF);
                            self.b.ins().bor(l, z)
                        }
                    }
                };
                // (Both paths give the condition itself; `cc`'s low bit
                // negates it after the join.)
                self.b.ins().jump(join, &[got.into()]);
                self.b.switch_to_block(slow);
                let f = self.entry_val(Helper::Condition);
                let c = self.konst((cc & !1) as i64);
                self.b.ins().call_indirect(self.cond_sig, f, &[self.cpu, c]);
                let r = self.helper_ret(types::I32);
                self.b.ins().jump(join, &[r.into()]);
                self.b.switch_to_block(join);
                v
            }
        };
        if cc & 1 != 0 {
            self.b.ins().bxor_imm_u(v, 1)
        } else {
            v
        }
    }

    /// Condition code `cc` as an i32 0/1.
    fn condition(&mut self, cc: u8) -> Value {
        let k = match self.flags {
            FlagState::Known(k) => k,
            FlagState::Memory => return self.condition_in_memory(cc),
        };
        // Comparisons fold directly into one host compare.
        if k.op == LazyOp::Sub && k.lazy == ARITH && k.carry.is_none() {
            let shift = 32 - 8 * k.size as i64;
            let direct = match cc >> 1 {
                1 => Some(IntCC::UnsignedLessThan),
                2 => Some(IntCC::Equal),
                3 => Some(IntCC::UnsignedLessThanOrEqual),
                6 => Some(IntCC::SignedLessThan),
                7 => Some(IntCC::SignedLessThanOrEqual),
                _ => None,
            };
            if let Some(c) = direct {
                let (a, b) = if matches!(c, IntCC::SignedLessThan | IntCC::SignedLessThanOrEqual) && shift != 0 {
                    (self.b.ins().ishl_imm_u(k.a, shift), self.b.ins().ishl_imm_u(k.b, shift))
                } else {
                    (k.a, k.b)
                };
                let c = if cc & 1 != 0 { c.complement() } else { c };
                let v = self.b.ins().icmp(c, a, b);
                return self.b.ins().uextend(types::I32, v);
            }
        }
        if let Some(v) = self.condition_direct(&k, cc) {
            return v;
        }
        let v = match cc >> 1 {
            0 => self.flag(&k, OF),
            1 => self.flag(&k, CF),
            2 => self.flag(&k, ZF),
            3 => {
                let c = self.flag(&k, CF);
                let z = self.flag(&k, ZF);
                self.b.ins().bor(c, z)
            }
            4 => self.flag(&k, SF),
            5 => self.flag(&k, PF),
            6 => {
                let s = self.flag(&k, SF);
                let o = self.flag(&k, OF);
                self.b.ins().bxor(s, o)
            }
            _ => {
                let s = self.flag(&k, SF);
                let o = self.flag(&k, OF);
                let l = self.b.ins().bxor(s, o);
                let z = self.flag(&k, ZF);
                self.b.ins().bor(l, z)
            }
        };
        if cc & 1 != 0 {
            self.b.ins().bxor_imm_u(v, 1)
        } else {
            v
        }
    }

    /// Condition code `cc` (i32 0/1) from one host compare of the
    /// record, or a constant, where the flags it tests allow: ZF and SF of
    /// any record, the conditions of logic operations (CF = OF = 0) and CF
    /// of an addition without carry in. (Negated conditions complement
    /// the compare: the host branch then tests it directly.)
    fn condition_direct(&mut self, k: &Known, cc: u8) -> Option<Value> {
        let neg = cc & 1 != 0;
        let logic = k.op == LazyOp::Logic && matches!(k.cf, CfSrc::Record) && k.of.is_none();
        let shift = 32 - 8 * k.size as i64;
        // (The result shifted so its sign is bit 31.)
        let signed = |l: &mut Self| if shift == 0 { k.r } else { l.b.ins().ishl_imm_u(k.r, shift) };
        let (c, x, y) = match cc >> 1 {
            // O and B of a logic operation: never.
            0 | 1 if logic => return Some(self.konst(neg as i64)),
            1 if k.op == LazyOp::Add && k.lazy & CF != 0 && k.carry.is_none() => (IntCC::UnsignedLessThan, k.r, k.a),
            2 if k.lazy & ZF != 0 => (IntCC::Equal, k.r, self.konst(0)),
            3 if logic => (IntCC::Equal, k.r, self.konst(0)),
            4 | 6 if k.lazy & SF != 0 && (cc >> 1 == 4 || logic) => {
                let r = signed(self);
                (IntCC::SignedLessThan, r, self.konst(0))
            }
            7 if logic => {
                let r = signed(self);
                (IntCC::SignedLessThanOrEqual, r, self.konst(0))
            }
            _ => return None,
        };
        let c = if neg { c.complement() } else { c };
        let v = self.b.ins().icmp(c, x, y);
        Some(self.b.ins().uextend(types::I32, v))
    }

    // ----- instructions -----

    fn operand(&mut self, i: &Insn, n: usize, size: u32) -> Value {
        let o = i.ops[n];
        match o.kind {
            OpK::Imm => {
                let v = if o.num == 0 { i.imm } else { i.imm2 };
                self.konst(v as i64 & mask(size))
            }
            _ => self.reg(o.num, size),
        }
    }

    fn ea(&mut self, i: &Insn) -> Value {
        let mut a = (i.base != NO_REG).then(|| self.full(i.base));
        if i.index != NO_REG {
            let r = self.full(i.index);
            let r = if i.scale == 0 { r } else { self.b.ins().ishl_imm_u(r, i.scale as i64) };
            a = Some(match a {
                Some(x) => self.b.ins().iadd(x, r),
                None => r,
            });
        }
        let a = match a {
            Some(x) => self.add_k(x, i.disp as i64),
            None => self.konst(i.disp as i64),
        };
        if i.addr32 {
            a
        } else {
            self.b.ins().band_imm_u(a, 0xFFFF)
        }
    }

    fn stack32(&self) -> bool {
        self.mode & 2 != 0
    }

    /// ESP (or SP in a 16-bit stack) := `v` (already masked).
    /// `v` as an offset of the address size `wide` (32 bits) or else of
    /// 16 bits.
    fn wrap(&mut self, v: Value, wide: bool) -> Value {
        if wide {
            v
        } else {
            self.b.ins().band_imm_u(v, 0xFFFF)
        }
    }

    /// `v` as an offset in the stack segment (SP or ESP by the stack size).
    fn stack_off(&mut self, v: Value) -> Value {
        let wide = self.stack32();
        self.wrap(v, wide)
    }

    fn set_sp(&mut self, v: Value) {
        if self.stack32() {
            self.set_full(4, v);
        } else {
            self.set_reg(4, 2, v);
        }
    }

    /// Source operand `n`: register, immediate or memory (read inline).
    fn src(&mut self, g: &GuestInsn, i: &Insn, n: usize, size: u32) -> Value {
        if i.ops[n].kind == OpK::Mem {
            let off = self.ea(i);
            self.access(g, i.seg, off, size, None)
        } else {
            self.operand(i, n, size)
        }
    }

    /// Base, limit and (in protected mode) whether inline accesses may use
    /// segment `seg`: a present, writable, expand-up data segment.
    fn seg_info(&mut self, seg: u8) -> (Value, Value, Option<Value>) {
        let seg = seg as usize % 6;
        if let Some((b, l, ok)) = self.segc[seg] {
            let pm = self.mode & 4 != 0 && self.mode & 8 == 0;
            return (b, l, pm.then_some(ok));
        }
        let at = SEGS + SEG_SIZE * seg as i32;
        let base = self.load32(at + SEG_BASE);
        let limit = self.load32(at + SEG_LIMIT);
        let flags = self.load32(at + SEG_FLAGS);
        let m = self.b.ins().band_imm_u(flags, (SEG_P | SEG_S | SEG_CODE | SEG_DC | SEG_RW) as i64);
        let ok = self.b.ins().icmp_imm_u(IntCC::Equal, m, (SEG_P | SEG_S | SEG_RW) as i64);
        self.segc[seg] = Some((base, limit, ok));
        let pm = self.mode & 4 != 0 && self.mode & 8 == 0;
        (base, limit, pm.then_some(ok))
    }

    /// With alignment checking on (the mode key's [`MODE_AC`], rare) no
    /// access takes the fast path: the slow path's helpers raise #AC.
    fn ac_ok(&mut self) -> Option<Value> {
        if self.mode & MODE_AC == 0 {
            return None;
        }
        if let Some(v) = self.acok {
            return Some(v);
        }
        let no = self.b.ins().iconst(types::I8, 0);
        self.acok = Some(no);
        Some(no)
    }

    /// A guest memory access of `size` bytes at `seg:off` by instruction
    /// `g`: inline through the fast TLB when every check passes, else
    /// through the slow-path helper (which delivers faults and leaves the
    /// block). Returns the value read (or a dummy for a store).
    fn access(&mut self, g: &GuestInsn, seg: u8, off: Value, size: u32, store: Option<Value>) -> Value {
        self.sync_before_access();
        let (ok, _, eaddr) = self.fast_check(seg, off, size, store.is_some());
        let (slow, fast) = self.fork_not(ok);
        let merge = self.b.create_block();
        // Only a load passes a value to the merge.
        let v = store.is_none().then(|| self.b.append_block_param(merge, types::I32));
        // Fast: straight to host memory (unaligned accesses are fine).
        self.b.switch_to_block(fast);
        let host = self.host_addr(eaddr);
        match store {
            Some(val) => {
                self.host_store(host, size, val);
                self.b.ins().jump(merge, &[]);
            }
            None => {
                let got = self.host_load(host, size);
                self.b.ins().jump(merge, &[got.into()]);
            }
        }
        // Slow: precise state, then the helper with every check.
        self.b.switch_to_block(slow);
        self.slow_access(g, seg, off, size, store, false, merge, &[]);
        self.b.seal_block(merge);
        self.b.switch_to_block(merge);
        // (A store's result is not used.)
        v.unwrap_or_else(|| self.konst(0))
    }

    /// Before an access that may take its slow path: dirty registers are
    /// written back here, on the fast path, so the slow path has none to
    /// store (as QEMU syncs its globals before a memory operation). A
    /// register is then stored once per definition rather than once per
    /// slow path it is live across (and not again at the exits): a whole
    /// boot compiles 4 % fewer IR instructions, 7 % faster, into 10 %
    /// less host code, and the stores on the fast path cost no measurable
    /// time.
    fn sync_before_access(&mut self) {
        self.spill_regs();
    }

    /// The slow path of an inline access (in its own block of the CFG):
    /// the state written back as before instruction `g`, then the helper
    /// with every check; leaves the block on a fault, else goes on to `to`
    /// (where the fast path goes on) with the value read, if a load, and
    /// `tail` as arguments. Leaves the lowering state as it found it.
    /// `for_write`: the read of a read-modify-write.
    #[allow(clippy::too_many_arguments)]
    fn slow_access(
        &mut self,
        g: &GuestInsn,
        seg: u8,
        off: Value,
        size: u32,
        store: Option<Value>,
        for_write: bool,
        to: cranelift_codegen::ir::Block,
        tail: &[Value],
    ) {
        let (dirty, flags, pending) = (self.dirty, self.flags, self.pending);
        self.precise_at_cold(g.off);
        let rmw = if for_write { helpers::READ_FOR_WRITE } else { 0 };
        let what = self.konst((helpers::seg_size_arg(seg, size) | rmw) as i64);
        match store {
            Some(val) => {
                // (A write to code runs the whole instruction through the
                // interpreter and leaves: `helpers::mem_write`.)
                let f = self.entry_val(Helper::MemWrite);
                let sh = self.b.ins().iconst(types::I64, self.shared as i64);
                let ip = self.b.ins().iconst(types::I64, g.insn as i64);
                self.b.ins().call_indirect(self.wr_sig, f, &[self.cpu, sh, what, off, val, ip]);
                let st = self.helper_ret(types::I32);
                let args: Vec<BlockArg> = tail.iter().map(|&v| v.into()).collect();
                self.leave_if_else(st, to, &args);
            }
            None => {
                let f = self.entry_val(Helper::MemRead);
                let sh = self.b.ins().iconst(types::I64, self.shared as i64);
                self.b.ins().call_indirect(self.rd_sig, f, &[self.cpu, sh, what, off]);
                // `accel_ret` is the value, or 1 << 32 after a fault: its
                // halves are loaded apart (two loads, no compare).
                let (lo, hi) = if cfg!(target_endian = "little") { (0, 4) } else { (4, 0) };
                let fault = self.b.ins().load(types::I32, self.mf, self.cpu, ACCEL_RET + hi);
                let v = self.b.ins().load(types::I32, self.mf, self.cpu, ACCEL_RET + lo);
                let args: Vec<BlockArg> = std::iter::once(v).chain(tail.iter().copied()).map(Into::into).collect();
                self.leave_if_else(fault, to, &args);
            }
        }
        (self.dirty, self.flags, self.pending) = (dirty, flags, pending);
    }

    /// The inline checks of an access of `size` bytes at `seg:off`: within
    /// the segment (which inline accesses may use), no wrap, in one page,
    /// a fast-TLB hit for the kind of access, no alignment check. Returns
    /// (all passed, linear address, fast-TLB entry address).
    fn fast_check(&mut self, seg: u8, off: Value, size: u32, write: bool) -> (Value, Value, TlbAt) {
        let acok = self.ac_ok();
        let flat = self.mode & MODE_FLAT != 0
            && matches!(seg, s if s == SegReg::Ds as u8 || s == SegReg::Es as u8 || s == SegReg::Ss as u8);
        let (mut ok, lin) = if flat {
            // Base 0, 4 GiB limit, writable: only the wrap at 4 GiB, which
            // the tag compare below rejects (the last byte is in another
            // page).
            (None, off)
        } else {
            let (base, limit, segok) = self.seg_info(seg);
            let last = self.b.ins().iadd_imm_u(off, size as i64 - 1);
            let mut ok = self.b.ins().icmp(IntCC::UnsignedLessThanOrEqual, last, limit);
            if size > 1 {
                let nowrap = self.b.ins().icmp(IntCC::UnsignedGreaterThanOrEqual, last, off);
                ok = self.b.ins().band(ok, nowrap);
            }
            if let Some(s) = segok {
                ok = self.b.ins().band(ok, s);
            }
            (Some(ok), self.b.ins().iadd(base, off))
        };
        // The entry's byte offset: page number modulo the size, times 16.
        const _: () = assert!(std::mem::size_of::<helpers::FastEntry>() == 16);
        // (In 64 bits: the host address adds the same extended value.)
        let lin64 = self.b.ins().uextend(types::I64, lin);
        let idx = self.b.ins().ushr_imm_u(lin64, 12 - 4);
        let idx = self.b.ins().band_imm_u(idx, ((helpers::FAST_TLB_SIZE - 1) << 4) as i64);
        let (at, disp) = self.table_entry(self.ftlb, idx);
        let tag = self.b.ins().load(types::I32, self.mf, at, disp + if write { 4 } else { 0 });
        // The page of the last byte must be the entry's page: that is a hit
        // for the page of `lin` and no page crossing at once (two adjacent
        // pages never share an entry).
        let last = self.add_k(lin, size as i64 - 1);
        let want = self.b.ins().band_imm_u(last, 0xFFFF_F000);
        let hit = self.b.ins().icmp(IntCC::Equal, tag, want);
        let mut all = hit;
        for extra in [ok.take(), acok].into_iter().flatten() {
            all = self.b.ins().band(all, extra);
        }
        (all, lin, TlbAt { at, disp, lin64 })
    }

    /// The address of the entry `byte` bytes into the table at host address
    /// `base`, as a value and a displacement: the table's address itself
    /// when it is in the low 2 GiB (`low::LowBox`), so the addition folds
    /// into the accesses.
    fn table_entry(&mut self, base: i64, byte: Value) -> (Value, i32) {
        // (Tables are smaller than 1 MiB.)
        if base < (i32::MAX as i64) - (1 << 20) {
            (byte, base as i32)
        } else {
            let b = self.b.ins().iconst(types::I64, base);
            (self.b.ins().iadd(b, byte), 0)
        }
    }

    /// The host address of linear `lin` through the fast-TLB entry at
    /// `eaddr` (a value plus a displacement).
    fn host_addr(&mut self, e: TlbAt) -> Value {
        let addend = self.b.ins().load(types::I64, self.mf, e.at, e.disp + 8);
        self.b.ins().iadd(addend, e.lin64)
    }

    fn host_load(&mut self, host: Value, size: u32) -> Value {
        let gm = MemFlagsData::new().with_notrap();
        match size {
            1 => self.b.ins().uload8(types::I32, gm, host, 0),
            2 => self.b.ins().uload16(types::I32, gm, host, 0),
            _ => self.b.ins().load(types::I32, gm, host, 0),
        }
    }

    fn host_store(&mut self, host: Value, size: u32, val: Value) {
        let gm = MemFlagsData::new().with_notrap();
        match size {
            1 => self.b.ins().istore8(gm, val, host, 0),
            2 => self.b.ins().istore16(gm, val, host, 0),
            _ => self.b.ins().store(gm, val, host, 0),
        };
    }

    /// A read-modify-write of the memory operand of `i` (`size` bytes):
    /// one fast-TLB check for writing (a hit means RAM without code and a
    /// writable segment), then both accesses on the host page. Otherwise
    /// the read and the write each go through the slow-path helpers (the
    /// read checked for writing first, as the interpreter does) and the
    /// block goes on: code in the page, MMIO and TLB misses do not leave
    /// it. `f` gets the old value, sets the flags and returns the new
    /// value (it must not change registers: a fault of the write leaves
    /// the state as before the instruction). Returns the old value.
    fn rmw(&mut self, g: &GuestInsn, i: &Insn, size: u32, f: impl FnOnce(&mut Self, Value) -> Value) -> Value {
        self.sync_before_access();
        let off = self.ea(i);
        self.rmw_at(g, i.seg, off, size, f)
    }

    /// `rmw` of the operand at `seg:off` (registers already synced,
    /// `sync_before_access`).
    fn rmw_at(
        &mut self,
        g: &GuestInsn,
        seg: u8,
        off: Value,
        size: u32,
        f: impl FnOnce(&mut Self, Value) -> Value,
    ) -> Value {
        let (ok, _, eaddr) = self.fast_check(seg, off, size, true);
        let (slow, fast) = self.fork_not(ok);
        let join = self.b.create_block();
        let a = self.b.append_block_param(join, types::I32);
        let host = self.b.append_block_param(join, types::I64);
        self.b.switch_to_block(fast);
        let h = self.host_addr(eaddr);
        let v = self.host_load(h, size);
        self.b.ins().jump(join, &[v.into(), h.into()]);
        self.b.switch_to_block(slow);
        let none = self.b.ins().iconst(types::I64, 0);
        self.slow_access(g, seg, off, size, None, true, join, &[none]);
        self.b.seal_block(join);
        self.b.switch_to_block(join);
        let before = self.flags;
        let r = f(self, a);
        let (slow, fast) = self.fork_not(ok);
        let done = self.b.create_block();
        self.b.switch_to_block(fast);
        self.host_store(host, size, r);
        self.b.ins().jump(done, &[]);
        self.b.switch_to_block(slow);
        // A fault here leaves the state as before the instruction: its
        // flags are the ones before `f`, memory is not written yet.
        let after = std::mem::replace(&mut self.flags, before);
        self.slow_access(g, seg, off, size, Some(r), false, done, &[]);
        self.flags = after;
        self.b.seal_block(done);
        self.b.switch_to_block(done);
        a
    }

    /// The memory source operand of `i` (`size` bytes) read inline when
    /// the fast TLB allows; otherwise the whole instruction runs through
    /// the interpreter and the block is left after it (for instructions
    /// that may still fault after the read, so that it never happens
    /// twice).
    fn load_or_step(&mut self, g: &GuestInsn, i: &Insn, size: u32) -> Value {
        self.sync_before_access();
        let off = self.ea(i);
        let (ok, _, eaddr) = self.fast_check(i.seg, off, size, false);
        let (slow, fast) = self.fork_not(ok);
        self.b.switch_to_block(slow);
        self.step_leave(g, i.seg, off, size);
        self.b.switch_to_block(fast);
        let host = self.host_addr(eaddr);
        self.host_load(host, size)
    }

    /// (In a fresh block of the CFG.) Run instruction `g` through the
    /// interpreter with `helpers::step_fill` (its read operand `seg:off`,
    /// `size` as it takes it) and leave; the lowering state is as before
    /// afterwards.
    fn step_leave(&mut self, g: &GuestInsn, seg: u8, off: Value, size: u32) {
        self.step_leave_for(g, seg, off, size, false);
    }

    /// `step_leave`, the fast TLB filled for writing with `write`.
    fn step_leave_for(&mut self, g: &GuestInsn, seg: u8, off: Value, size: u32, write: bool) {
        let (dirty, flags, pending) = (self.dirty, self.flags, self.pending);
        self.precise_at_cold(g.off);
        let fp = self.entry_val(Helper::StepFill);
        let ip = self.b.ins().iconst(types::I64, g.insn as i64);
        let w = if write { helpers::FILL_FOR_WRITE } else { 0 };
        let what = self.konst((helpers::seg_size_arg(seg, size) | w) as i64);
        let sh = self.b.ins().iconst(types::I64, self.shared as i64);
        self.b.ins().call_indirect(self.fill_sig, fp, &[self.cpu, sh, ip, what, off]);
        let r = self.helper_ret(types::I32);
        self.after_helper_unless_fault(r);
        (self.dirty, self.flags, self.pending) = (dirty, flags, pending);
    }

    /// When `cond` holds, run instruction `g` through the interpreter
    /// (which raises the fault `cond` stands for) and leave the block.
    fn step_if(&mut self, g: &GuestInsn, cond: Value) {
        let (out, cont) = self.fork(cond, true);
        self.b.switch_to_block(out);
        let (dirty, flags, pending, loaded) = (self.dirty, self.flags, self.pending, self.loaded);
        self.helper(g);
        self.after_helper();
        (self.dirty, self.flags, self.pending, self.loaded) = (dirty, flags, pending, loaded);
        self.b.switch_to_block(cont);
    }

    /// Return from the block when `cond` holds (the state is already
    /// written back).
    fn leave_if(&mut self, cond: Value) {
        let cont = if self.in_cold() { self.cold_block() } else { self.b.create_block() };
        self.leave_if_else(cond, cont, &[]);
        self.b.seal_block(cont);
        self.b.switch_to_block(cont);
    }

    /// Return from the block when `cond` holds (the state is already
    /// written back), else go to `to` with `args`.
    fn leave_if_else(&mut self, cond: Value, to: cranelift_codegen::ir::Block, args: &[BlockArg]) {
        let exit = self.exit_block();
        self.b.ins().brif(cond, exit, &[], to, args);
    }

    /// The function's shared `return 0` block.
    fn exit_block(&mut self) -> cranelift_codegen::ir::Block {
        if let Some(blk) = self.exit_blk {
            return blk;
        }
        // (Filled at the end: `fill_exit_block`.)
        let blk = self.cold_block();
        self.exit_blk = Some(blk);
        blk
    }

    /// Fill the shared `return 0` block, if anything branches to it.
    fn fill_exit_block(&mut self) {
        if let Some(blk) = self.exit_blk {
            self.b.switch_to_block(blk);
            let zero = self.konst(0);
            self.b.ins().return_(&[zero]);
        }
    }

    /// The flags record written back, with the flags in `which` no longer
    /// lazy (in `bits`; `helpers::materialize` when any is).
    fn materialize_in_memory(&mut self, which: u32) {
        self.spill_flags();
        let lazy = self.load32(F_LAZY);
        let any = self.b.ins().band_imm_u(lazy, which as i64);
        let (call, cont) = self.fork_join(any);
        self.b.switch_to_block(call);
        let f = self.entry_val(Helper::Materialize);
        let m = self.konst(which as i64);
        self.b.ins().call_indirect(self.prep_sig, f, &[self.cpu, m]);
        self.b.ins().jump(cont, &[]);
        self.b.seal_block(cont);
        self.b.switch_to_block(cont);
    }

    /// SHL/SHR/SAR of a register by an immediate count (SDM vol. 2 SAL):
    /// a count of 0 changes nothing; otherwise CF is the last bit shifted
    /// out, OF as the interpreter defines it, AF 0, SF/ZF/PF from the
    /// result.
    fn shift(&mut self, i: &Insn, size: u32, a: Value) -> Value {
        let c = shift_count(i) as i64;
        if c == 0 {
            return a;
        }
        let bits = 8 * size as i64;
        let (r, cf, of) = match mnemonic(i) {
            M::Shl | M::Sal => {
                let w = self.b.ins().uextend(types::I64, a);
                let w = self.b.ins().ishl_imm_u(w, c);
                let cf = self.b.ins().ushr_imm_u(w, bits);
                let cf = self.b.ins().band_imm_u(cf, 1);
                let cf = self.b.ins().ireduce(types::I32, cf);
                let r = self.b.ins().ireduce(types::I32, w);
                let r = self.trunc(r, size);
                let top = self.b.ins().ushr_imm_u(r, bits - 1);
                let of = self.b.ins().bxor(top, cf);
                (r, cf, Some(of))
            }
            M::Shr => {
                let r = self.b.ins().ushr_imm_u(a, c);
                let cf = self.b.ins().ushr_imm_u(a, c - 1);
                let cf = self.b.ins().band_imm_u(cf, 1);
                let of = self.top_two_xor(r, bits);
                (r, cf, Some(of))
            }
            _ => {
                let sa = self.sext32(a, bits);
                let r = self.b.ins().sshr_imm_u(sa, c);
                let r = self.trunc(r, size);
                let cf = self.b.ins().sshr_imm_u(sa, c - 1);
                let cf = self.b.ins().band_imm_u(cf, 1);
                (r, cf, None)
            }
        };
        self.flags = self.logic_flags(r, size, cf, of);
        r
    }

    /// A new block laid out after the function's hot code (slow paths,
    /// exits, faults).
    fn cold_block(&mut self) -> cranelift_codegen::ir::Block {
        let blk = self.b.create_block();
        self.b.set_cold_block(blk);
        blk
    }

    /// `fork` on `!cond`: (cold block for false, block for true).
    fn fork_not(&mut self, cond: Value) -> (cranelift_codegen::ir::Block, cranelift_codegen::ir::Block) {
        let (yes, no) = self.fork_with(cond, false, true);
        (no, yes)
    }

    /// `brif cond` to a new block (sealed) or past it to `join`, which
    /// the caller seals once the new block has jumped to it.
    fn fork_join(&mut self, cond: Value) -> (cranelift_codegen::ir::Block, cranelift_codegen::ir::Block) {
        let cold = self.in_cold();
        let then = if cold { self.cold_block() } else { self.b.create_block() };
        let join = if cold { self.cold_block() } else { self.b.create_block() };
        self.b.ins().brif(cond, then, &[], join, &[]);
        self.b.seal_block(then);
        (then, join)
    }

    /// Whether the block being filled is laid out with the cold code.
    fn in_cold(&self) -> bool {
        self.b.current_block().is_some_and(|c| self.b.func.layout.is_cold(c))
    }

    /// `brif cond` to two new blocks whose only predecessor is this branch
    /// (so sealed at once: no block parameters for the variables read in
    /// them). `cold_then` puts the taken side with the cold code; the other
    /// side is cold when the branch itself is (a slow path's continuation
    /// stays out of the hot code).
    fn fork(&mut self, cond: Value, cold_then: bool) -> (cranelift_codegen::ir::Block, cranelift_codegen::ir::Block) {
        self.fork_with(cond, cold_then, false)
    }

    /// `fork` with either side made cold on request (both when the branch
    /// itself is cold).
    fn fork_with(
        &mut self,
        cond: Value,
        cold_then: bool,
        cold_else: bool,
    ) -> (cranelift_codegen::ir::Block, cranelift_codegen::ir::Block) {
        let cold = self.in_cold();
        let then = if cold_then || cold { self.cold_block() } else { self.b.create_block() };
        let other = if cold_else || cold { self.cold_block() } else { self.b.create_block() };
        self.b.ins().brif(cond, then, &[], other, &[]);
        self.b.seal_block(then);
        self.b.seal_block(other);
        (then, other)
    }

    /// The flags record of a result whose SF/ZF/PF come from `r`, with CF
    /// and OF given (OF None: 0) and AF 0: shifts, multiplications, bit
    /// scans.
    fn logic_flags(&mut self, r: Value, size: u32, cf: Value, of: Option<Value>) -> FlagState {
        let zero = self.konst(0);
        FlagState::Known(Known {
            op: LazyOp::Logic,
            a: zero,
            b: zero,
            r,
            size,
            lazy: ZF | SF | PF,
            cf: CfSrc::Value(cf),
            of,
            carry: None,
        })
    }

    /// OF of SHR as the interpreter defines it: the top two result bits
    /// XORed.
    fn top_two_xor(&mut self, r: Value, bits: i64) -> Value {
        let t1 = self.b.ins().ushr_imm_u(r, bits - 1);
        let t2 = self.b.ins().ushr_imm_u(r, bits - 2);
        let t2 = self.b.ins().band_imm_u(t2, 1);
        let of = self.b.ins().bxor(t1, t2);
        self.b.ins().band_imm_u(of, 1)
    }

    /// `a` (`bits` wide, zero-extended) sign-extended to 32 bits.
    fn sext32(&mut self, a: Value, bits: i64) -> Value {
        let shift = 32 - bits;
        if shift > 0 {
            let t = self.b.ins().ishl_imm_u(a, shift);
            self.b.ins().sshr_imm_u(t, shift)
        } else {
            a
        }
    }

    /// SHL/SHR/SAR of a register by CL: as `shift`, but the count is only
    /// known at run time, and a count of 0 leaves the flags alone, so the
    /// new flags record is stored (conditionally) rather than kept in SSA.
    fn shift_cl(&mut self, i: &Insn, size: u32, dst: u8) {
        self.spill_flags();
        let a = self.reg(dst, size);
        let cl = self.reg(1, 1);
        let c = self.b.ins().band_imm_u(cl, 0x1F);
        let c64 = self.b.ins().uextend(types::I64, c);
        let bits = 8 * size as i64;
        let (r, cf, of) = match mnemonic(i) {
            M::Shl | M::Sal => {
                let w = self.b.ins().uextend(types::I64, a);
                let w = self.b.ins().ishl(w, c64);
                let cf = self.b.ins().ushr_imm_u(w, bits);
                let cf = self.b.ins().band_imm_u(cf, 1);
                let cf = self.b.ins().ireduce(types::I32, cf);
                let r = self.b.ins().ireduce(types::I32, w);
                let r = self.trunc(r, size);
                let top = self.b.ins().ushr_imm_u(r, bits - 1);
                let of = self.b.ins().bxor(top, cf);
                (r, cf, Some(of))
            }
            M::Shr => {
                let r = self.b.ins().ushr(a, c);
                // Bit c-1 of a: (a << 1) >> c, in 64 bits.
                let w = self.b.ins().uextend(types::I64, a);
                let w = self.b.ins().ishl_imm_u(w, 1);
                let w = self.b.ins().ushr(w, c64);
                let cf = self.b.ins().ireduce(types::I32, w);
                let cf = self.b.ins().band_imm_u(cf, 1);
                let of = self.top_two_xor(r, bits);
                (r, cf, Some(of))
            }
            _ => {
                let sa = self.sext32(a, bits);
                let r = self.b.ins().sshr(sa, c);
                let r = self.trunc(r, size);
                let w = self.b.ins().sextend(types::I64, sa);
                let w = self.b.ins().ishl_imm_u(w, 1);
                let w = self.b.ins().sshr(w, c64);
                let cf = self.b.ins().ireduce(types::I32, w);
                let cf = self.b.ins().band_imm_u(cf, 1);
                (r, cf, None)
            }
        };
        let nonzero = self.b.ins().icmp_imm_u(IntCC::NotEqual, c, 0);
        let v = self.b.ins().select(nonzero, r, a);
        self.set_reg(dst, size, v);
        let (set, cont) = self.fork_join(nonzero);
        self.b.switch_to_block(set);
        self.flags = self.logic_flags(r, size, cf, of);
        self.spill_flags();
        self.b.ins().jump(cont, &[]);
        self.b.seal_block(cont);
        self.b.switch_to_block(cont);
        self.flags = FlagState::Memory;
    }

    /// SHLD/SHRD of a 32-bit register by an immediate or CL (SDM vol. 2
    /// SHLD, SHRD): a masked count of 0 changes nothing; otherwise the
    /// destination takes the bits shifted in from the source, CF is the
    /// last bit shifted out of it, OF is set when its sign changed (as the
    /// interpreter defines OF for every count), AF is 0 and SF/ZF/PF come
    /// from the result.
    fn double_shift(&mut self, i: &Insn, dst: u8) {
        let left = mnemonic(i) == M::Shld;
        let by_cl = i.ops[2].kind == OpK::Reg;
        if !by_cl && i.imm & 0x1F == 0 {
            return;
        }
        if by_cl {
            // The flags stay as they are for a zero count.
            self.spill_flags();
        }
        let a = self.reg(dst, 4);
        let b = self.reg(i.ops[1].num, 4);
        let c = if by_cl {
            let cl = self.reg(1, 1);
            self.b.ins().band_imm_u(cl, 0x1F)
        } else {
            self.konst((i.imm & 0x1F) as i64)
        };
        let c64 = self.b.ins().uextend(types::I64, c);
        let a64 = self.b.ins().uextend(types::I64, a);
        let b64 = self.b.ins().uextend(types::I64, b);
        let (r, cf) = if left {
            // (a:b << c) >> 32; CF is bit 32 - c of a.
            let hi = self.b.ins().ishl_imm_u(a64, 32);
            let w = self.b.ins().bor(hi, b64);
            let w = self.b.ins().ishl(w, c64);
            let r = self.b.ins().ushr_imm_u(w, 32);
            let r = self.b.ins().ireduce(types::I32, r);
            let out = self.b.ins().ishl(a64, c64);
            let out = self.b.ins().ushr_imm_u(out, 32);
            let cf = self.b.ins().ireduce(types::I32, out);
            (r, self.b.ins().band_imm_u(cf, 1))
        } else {
            // (b:a >> c), low half; CF is bit c - 1 of a.
            let hi = self.b.ins().ishl_imm_u(b64, 32);
            let w = self.b.ins().bor(hi, a64);
            let w = self.b.ins().ushr(w, c64);
            let r = self.b.ins().ireduce(types::I32, w);
            let out = self.b.ins().ishl_imm_u(a64, 1);
            let out = self.b.ins().ushr(out, c64);
            let cf = self.b.ins().ireduce(types::I32, out);
            (r, self.b.ins().band_imm_u(cf, 1))
        };
        let changed = self.b.ins().bxor(r, a);
        let of = self.b.ins().ushr_imm_u(changed, 31);
        if !by_cl {
            self.set_reg(dst, 4, r);
            self.flags = self.logic_flags(r, 4, cf, Some(of));
            return;
        }
        let nonzero = self.b.ins().icmp_imm_u(IntCC::NotEqual, c, 0);
        let v = self.b.ins().select(nonzero, r, a);
        self.set_reg(dst, 4, v);
        let (set, cont) = self.fork_join(nonzero);
        self.b.switch_to_block(set);
        self.flags = self.logic_flags(r, 4, cf, Some(of));
        self.spill_flags();
        self.b.ins().jump(cont, &[]);
        self.b.seal_block(cont);
        self.b.switch_to_block(cont);
        self.flags = FlagState::Memory;
    }

    /// ROL/ROR by an immediate count (SDM vol. 2 RCL/RCR/ROL/ROR): a masked
    /// count of 0 changes nothing; otherwise only CF and OF change (as the
    /// interpreter defines OF for every count).
    fn rotate(&mut self, i: &Insn, size: u32, a: Value) -> Value {
        let c = shift_count(i);
        if c == 0 {
            return a;
        }
        let bits = 8 * size;
        let n = (c % bits) as i64;
        let r = if n == 0 {
            a
        } else if size == 4 {
            if mnemonic(i) == M::Rol {
                self.b.ins().rotl_imm_u(a, n)
            } else {
                self.b.ins().rotr_imm_u(a, n)
            }
        } else {
            let (l, rr) = if mnemonic(i) == M::Rol { (n, bits as i64 - n) } else { (bits as i64 - n, n) };
            let x = self.b.ins().ishl_imm_u(a, l);
            let y = self.b.ins().ushr_imm_u(a, rr);
            let v = self.b.ins().bor(x, y);
            self.trunc(v, size)
        };
        let top = self.b.ins().ushr_imm_u(r, bits as i64 - 1);
        let top = self.b.ins().band_imm_u(top, 1);
        let (cf, of) = if mnemonic(i) == M::Rol {
            let cf = self.b.ins().band_imm_u(r, 1);
            (cf, self.b.ins().bxor(top, cf))
        } else {
            let next = self.b.ins().ushr_imm_u(r, bits as i64 - 2);
            let next = self.b.ins().band_imm_u(next, 1);
            (top, self.b.ins().bxor(top, next))
        };
        self.set_cf_of(cf, Some(of));
        r
    }

    /// CF = `cf` and, when given, OF = `of` (0/1); the other flags as
    /// they are.
    fn set_cf_of(&mut self, cf: Value, of: Option<Value>) {
        let which = CF | if of.is_some() { OF } else { 0 };
        match self.flags {
            FlagState::Known(k) => {
                self.flags =
                    FlagState::Known(Known { lazy: k.lazy & !which, cf: CfSrc::Value(cf), of: of.or(k.of), ..k });
            }
            FlagState::Memory => {
                let bits = self.load32(F_BITS);
                let bits = self.b.ins().band_imm_u(bits, !(which as i64) & 0xFFFF_FFFF);
                let o = of.map(|of| self.b.ins().ishl_imm_u(of, 11));
                let mut bits = self.b.ins().bor(bits, cf);
                if let Some(o) = o {
                    bits = self.b.ins().bor(bits, o);
                }
                self.store32(bits, F_BITS);
                let lazy = self.load32(F_LAZY);
                let lazy = self.b.ins().band_imm_u(lazy, !(which as i64) & 0xFFFF_FFFF);
                self.store32(lazy, F_LAZY);
            }
        }
    }

    /// BT/BTS/BTR/BTC (SDM vol. 2 BT) of `size`-byte operands: CF is the
    /// selected bit and the other flags stay as they are (as the
    /// interpreter leaves them); BTS/BTR/BTC then set, clear or flip it.
    /// A bit offset in a register with a memory operand reaches beyond it:
    /// the operand moves by the offset's signed quotient, in operand-size
    /// steps.
    fn bit_test(&mut self, g: &GuestInsn, i: &Insn, size: u32) {
        let m = mnemonic(i);
        let bits = size * 8;
        let off = self.operand(i, 1, size);
        let bit = self.b.ins().band_imm_u(off, (bits - 1) as i64);
        let f = move |l: &mut Self, v: Value| -> Value {
            let s = l.b.ins().ushr(v, bit);
            let cf = l.b.ins().band_imm_u(s, 1);
            l.set_cf_of(cf, None);
            let one = l.konst(1);
            let sel = l.b.ins().ishl(one, bit);
            match m {
                M::Bts => l.b.ins().bor(v, sel),
                M::Btr => l.b.ins().band_not(v, sel),
                M::Btc => l.b.ins().bxor(v, sel),
                _ => v,
            }
        };
        if i.ops[0].kind == OpK::Reg {
            let dst = i.ops[0].num;
            let v = self.reg(dst, size);
            let r = f(self, v);
            if m != M::Bt {
                self.set_reg(dst, size, r);
            }
            return;
        }
        self.sync_before_access();
        let mut ea = self.ea(i);
        if i.ops[1].kind == OpK::Reg {
            let soff = self.sext32(off, bits as i64);
            let steps = self.b.ins().sshr_imm_u(soff, if bits == 16 { 4 } else { 5 });
            let disp = self.b.ins().ishl_imm_u(steps, size.trailing_zeros() as i64);
            ea = self.b.ins().iadd(ea, disp);
            if !i.addr32 {
                ea = self.b.ins().band_imm_u(ea, 0xFFFF);
            }
        }
        if m == M::Bt {
            let v = self.access(g, i.seg, ea, size, None);
            f(self, v);
        } else {
            self.rmw_at(g, i.seg, ea, size, f);
        }
    }

    /// CF (0/1) as the flags stand.
    fn carry_flag(&mut self) -> Value {
        self.condition(2)
    }

    /// INC/DEC of `a` (`size` bytes): the result; the flags record keeps CF.
    fn incdec(&mut self, dec: bool, a: Value, size: u32) -> Value {
        let one = self.konst(1);
        let r = if dec { self.b.ins().isub(a, one) } else { self.b.ins().iadd(a, one) };
        let r = if size < 4 { self.b.ins().band_imm_u(r, mask(size)) } else { r };
        let cf = match self.flags {
            FlagState::Known(k) => {
                if k.lazy & CF != 0 || k.op == LazyOp::Logic {
                    CfSrc::Value(self.flag(&k, CF))
                } else {
                    k.cf
                }
            }
            FlagState::Memory => {
                // Materialise CF out of the old record first, unless it is
                // in `bits` already (after INC/DEC, say: a loop's DEC/JNZ).
                self.materialize_in_memory(CF);
                CfSrc::Bits
            }
        };
        let op = if dec { LazyOp::Sub } else { LazyOp::Add };
        self.flags = FlagState::Known(Known { op, a, b: one, r, size, lazy: ARITH & !CF, cf, of: None, carry: None });
        r
    }

    /// A two-operand ALU operation `m` on `a` and `b`: the result (masked)
    /// and the flags record.
    fn alu(&mut self, m: M, a: Value, b: Value, size: u32) -> Value {
        let carry = if matches!(m, M::Adc | M::Sbb) { Some(self.carry_flag()) } else { None };
        let (op, r) = match m {
            M::Add => (LazyOp::Add, self.b.ins().iadd(a, b)),
            M::Adc => {
                let t = self.b.ins().iadd(a, b);
                (LazyOp::Add, self.b.ins().iadd(t, carry.expect("ADC has a carry")))
            }
            M::Sub | M::Cmp => (LazyOp::Sub, self.b.ins().isub(a, b)),
            M::Sbb => {
                let t = self.b.ins().isub(a, b);
                (LazyOp::Sub, self.b.ins().isub(t, carry.expect("SBB has a carry")))
            }
            M::And | M::Test => (LazyOp::Logic, self.b.ins().band(a, b)),
            M::Or => (LazyOp::Logic, self.b.ins().bor(a, b)),
            _ => (LazyOp::Logic, self.b.ins().bxor(a, b)),
        };
        let r = if size < 4 && op != LazyOp::Logic { self.b.ins().band_imm_u(r, mask(size)) } else { r };
        let lazy = if op == LazyOp::Logic { ZF | SF | PF } else { ARITH };
        self.flags = FlagState::Known(Known { op, a, b, r, size, lazy, cf: CfSrc::Record, of: None, carry });
        r
    }

    /// NEG of `a`: the result and the flags of 0 - a.
    fn neg(&mut self, a: Value, size: u32) -> Value {
        let zero = self.konst(0);
        let r = self.b.ins().isub(zero, a);
        let r = if size < 4 { self.b.ins().band_imm_u(r, mask(size)) } else { r };
        self.flags = FlagState::Known(Known {
            op: LazyOp::Sub,
            a: zero,
            b: a,
            r,
            size,
            lazy: ARITH,
            cf: CfSrc::Record,
            of: None,
            carry: None,
        });
        r
    }

    /// IMUL r, r/m and IMUL r, r/m, imm (16 and 32 bits): the truncated
    /// product; CF = OF = it did not fit, SF/ZF/PF from it, AF 0 (as the
    /// interpreter defines the undefined ones).
    fn imul(&mut self, a: Value, b: Value, size: u32) -> Value {
        let (lo, ov) = if size == 4 {
            let a64 = self.b.ins().sextend(types::I64, a);
            let b64 = self.b.ins().sextend(types::I64, b);
            let p = self.b.ins().imul(a64, b64);
            let lo = self.b.ins().ireduce(types::I32, p);
            let back = self.b.ins().sextend(types::I64, lo);
            (lo, self.b.ins().icmp(IntCC::NotEqual, back, p))
        } else {
            let sa = self.b.ins().ishl_imm_u(a, 16);
            let sa = self.b.ins().sshr_imm_u(sa, 16);
            let sb = self.b.ins().ishl_imm_u(b, 16);
            let sb = self.b.ins().sshr_imm_u(sb, 16);
            let p = self.b.ins().imul(sa, sb);
            let lo = self.b.ins().band_imm_u(p, 0xFFFF);
            let back = self.b.ins().ishl_imm_u(p, 16);
            let back = self.b.ins().sshr_imm_u(back, 16);
            (lo, self.b.ins().icmp(IntCC::NotEqual, back, p))
        };
        let ov = self.b.ins().uextend(types::I32, ov);
        self.mul_flags(lo, ov, size);
        lo
    }

    /// MUL/IMUL r/m (one operand): AX := AL * src, DX:AX := AX * src or
    /// EDX:EAX := EAX * src; CF = OF = the high half is significant,
    /// SF/ZF/PF from the low half, AF 0 (as the interpreter defines the
    /// undefined ones).
    fn mul_wide(&mut self, signed: bool, src: Value, size: u32) {
        let acc = self.reg(0, size);
        let ext = |l: &mut Self, v: Value| {
            if signed {
                let v = l.sext32(v, size as i64 * 8);
                l.b.ins().sextend(types::I64, v)
            } else {
                l.b.ins().uextend(types::I64, v)
            }
        };
        let a = ext(self, acc);
        let b = ext(self, src);
        let p = self.b.ins().imul(a, b);
        let bits = size as i64 * 8;
        let lo = self.b.ins().ireduce(types::I32, p);
        let lo = if size < 4 { self.b.ins().band_imm_u(lo, mask(size)) } else { lo };
        // The product fits the low half iff extending the low half gives it back.
        let back = ext(self, lo);
        let ov = self.b.ins().icmp(IntCC::NotEqual, back, p);
        let ov = self.b.ins().uextend(types::I32, ov);
        let hi = self.b.ins().ushr_imm_u(p, bits);
        let hi = self.b.ins().ireduce(types::I32, hi);
        self.set_acc_pair(size, lo, hi);
        self.mul_flags(lo, ov, size);
    }

    /// The flags of a multiplication whose low half is `lo`: CF = OF = `ov`
    /// (the product did not fit), SF/ZF/PF from `lo`, AF 0 (as the
    /// interpreter defines the undefined ones).
    fn mul_flags(&mut self, lo: Value, ov: Value, size: u32) {
        self.flags = self.logic_flags(lo, size, ov, Some(ov));
    }

    /// The double-width accumulator of MUL/DIV: AL/AH (`lo`/`hi` in AX),
    /// AX/DX or EAX/EDX; both halves are masked to `size` here.
    fn set_acc_pair(&mut self, size: u32, lo: Value, hi: Value) {
        match size {
            1 => {
                let lo = self.b.ins().band_imm_u(lo, 0xFF);
                let hi = self.b.ins().band_imm_u(hi, 0xFF);
                let hi = self.b.ins().ishl_imm_u(hi, 8);
                let ax = self.b.ins().bor(hi, lo);
                self.set_reg(0, 2, ax);
            }
            2 => {
                let lo = self.b.ins().band_imm_u(lo, 0xFFFF);
                let hi = self.b.ins().band_imm_u(hi, 0xFFFF);
                self.set_reg(0, 2, lo);
                self.set_reg(2, 2, hi);
            }
            _ => {
                self.set_full(0, lo);
                self.set_full(2, hi);
            }
        }
    }

    /// DIV/IDIV r/m: the quotient and remainder of AX, DX:AX or EDX:EAX by
    /// `d` (zero-extended to 32 bits); a zero divisor or a quotient that
    /// does not fit is #DE, raised by the interpreter. Flags unchanged (as
    /// the interpreter leaves the undefined ones).
    fn divide(&mut self, g: &GuestInsn, signed: bool, d: Value, size: u32) {
        let bits = size as i64 * 8;
        // The dividend as 64 bits (zero- or sign-extended).
        let n = match size {
            1 => {
                let ax = self.reg(0, 2);
                if signed {
                    let v = self.sext32(ax, 16);
                    self.b.ins().sextend(types::I64, v)
                } else {
                    self.b.ins().uextend(types::I64, ax)
                }
            }
            2 => {
                let dx = self.reg(2, 2);
                let ax = self.reg(0, 2);
                let hi = self.b.ins().ishl_imm_u(dx, 16);
                let v = self.b.ins().bor(hi, ax);
                if signed {
                    self.b.ins().sextend(types::I64, v)
                } else {
                    self.b.ins().uextend(types::I64, v)
                }
            }
            _ => {
                let edx = self.full(2);
                let eax = self.full(0);
                let hi = self.b.ins().uextend(types::I64, edx);
                let hi = self.b.ins().ishl_imm_u(hi, 32);
                let lo = self.b.ins().uextend(types::I64, eax);
                self.b.ins().bor(hi, lo)
            }
        };
        let d64 = if signed {
            let v = self.sext32(d, bits);
            self.b.ins().sextend(types::I64, v)
        } else {
            self.b.ins().uextend(types::I64, d)
        };
        // Never let the host divide fault: zero, and i64::MIN / -1.
        let mut bad = self.b.ins().icmp_imm_u(IntCC::Equal, d64, 0);
        if signed && size == 4 {
            let min = self.b.ins().icmp_imm_s(IntCC::Equal, n, i64::MIN);
            let m1 = self.b.ins().icmp_imm_s(IntCC::Equal, d64, -1);
            let both = self.b.ins().band(min, m1);
            bad = self.b.ins().bor(bad, both);
        }
        self.step_if(g, bad);
        // One host division: the remainder is n - q*d (the host would
        // otherwise divide twice, and check srem's -1 divisor besides).
        let q = if signed { self.b.ins().sdiv(n, d64) } else { self.b.ins().udiv(n, d64) };
        let qd = self.b.ins().imul(q, d64);
        let r = self.b.ins().isub(n, qd);
        // The quotient must fit `size` bytes.
        let fits = if signed {
            let lo = self.b.ins().ireduce(types::I32, q);
            let lo = self.sext32(lo, bits);
            let back = self.b.ins().sextend(types::I64, lo);
            self.b.ins().icmp(IntCC::Equal, back, q)
        } else {
            self.b.ins().icmp_imm_u(IntCC::UnsignedLessThanOrEqual, q, mask(size))
        };
        let over = self.b.ins().bxor_imm_u(fits, 1);
        self.step_if(g, over);
        let q = self.b.ins().ireduce(types::I32, q);
        let r = self.b.ins().ireduce(types::I32, r);
        self.set_acc_pair(size, q, r);
    }

    fn inline(&mut self, g: &GuestInsn, i: &Insn) {
        if let Some((op, size)) = string_op(i) {
            self.string(g, i, op, size);
            return;
        }
        let size = i.size(0);
        let dst = i.ops[0].num;
        match mnemonic(i) {
            M::Mov if i.ops[0].kind == OpK::Mem => {
                let v = self.operand(i, 1, size);
                let off = self.ea(i);
                self.access(g, i.seg, off, size, Some(v));
            }
            M::Mov => {
                let v = self.src(g, i, 1, size);
                self.set_reg(dst, size, v);
            }
            M::Push => {
                let v = if i.ops[0].kind == OpK::Mem {
                    self.src(g, i, 0, size)
                } else if i.ops[0].kind == OpK::Imm {
                    let sz = i.ops[0].size as u32;
                    let x = i.imm as i64;
                    let x = match sz {
                        1 => x as u8 as i8 as i64,
                        2 => x as u16 as i16 as i64,
                        _ => x,
                    };
                    self.konst(x & mask(i.opsz as u32))
                } else {
                    self.reg(dst, size)
                };
                let psize = if i.ops[0].kind == OpK::Imm { i.opsz as u32 } else { size };
                let sp = self.full(4);
                let nsp = self.add_k(sp, -(psize as i64));
                let off = self.stack_off(nsp);
                self.access(g, SegReg::Ss as u8, off, psize, Some(v));
                self.set_sp(off);
            }
            M::Pop => {
                let sp = self.full(4);
                let off = self.stack_off(sp);
                let v = self.access(g, SegReg::Ss as u8, off, size, None);
                let nsp = self.add_k(off, size as i64);
                let nsp = self.stack_off(nsp);
                self.set_sp(nsp);
                self.set_reg(dst, size, v);
            }
            M::Leave => {
                // ESP only moves once the read of the saved EBP went
                // through (a fault leaves both as they were).
                let size = i.opsz as u32;
                let bp = self.full(5);
                let off = self.stack_off(bp);
                let v = self.access(g, SegReg::Ss as u8, off, size, None);
                let nsp = self.b.ins().iadd_imm_u(off, size as i64);
                let nsp = self.stack_off(nsp);
                self.set_sp(nsp);
                self.set_reg(5, size, v);
            }
            M::Bswap => {
                let v = self.full(dst);
                let r = self.b.ins().bswap(v);
                self.set_full(dst, r);
            }
            M::Xchg if i.ops[0].kind == OpK::Mem => {
                // The memory side first: a fault leaves the register as it was.
                let src = i.ops[1].num;
                let old = self.rmw(g, i, size, |l, _| l.reg(src, size));
                self.set_reg(src, size, old);
            }
            M::Xadd => {
                let src = i.ops[1].num;
                let old = self.rmw(g, i, size, |l, a| {
                    let b = l.reg(src, size);
                    l.alu(M::Add, a, b, size)
                });
                self.set_reg(src, size, old);
            }
            M::Cmpxchg => {
                // Flags as CMP accumulator, destination; equal: the
                // destination gets the source, else the accumulator gets
                // the destination (which is written back unchanged: the
                // access is a write either way).
                let src = i.ops[1].num;
                let acc = self.reg(0, size);
                let cmp_store = move |l: &mut Self, old: Value| {
                    l.alu(M::Cmp, acc, old, size);
                    let eq = l.b.ins().icmp(IntCC::Equal, acc, old);
                    let new = l.reg(src, size);
                    l.b.ins().select(eq, new, old)
                };
                let old = if i.ops[0].kind == OpK::Mem {
                    self.rmw(g, i, size, cmp_store)
                } else {
                    let old = self.reg(dst, size);
                    let r = cmp_store(self, old);
                    self.set_reg(dst, size, r);
                    old
                };
                // After the destination (CMPXCHG with the accumulator as the
                // destination and equal leaves the source there).
                let eq = self.b.ins().icmp(IntCC::Equal, acc, old);
                let cur = self.reg(0, size);
                let r = self.b.ins().select(eq, cur, old);
                self.set_reg(0, size, r);
            }
            M::Xchg => {
                let src = i.ops[1].num;
                let a = self.reg(dst, size);
                let b = self.reg(src, size);
                self.set_reg(dst, size, b);
                self.set_reg(src, size, a);
            }
            M::Lea => {
                let v = self.ea(i);
                let v = if size < 4 { self.b.ins().band_imm_u(v, mask(size)) } else { v };
                self.set_reg(dst, size, v);
            }
            M::Movzx | M::Movsx => {
                let ssz = i.size(1);
                let mut v = self.src(g, i, 1, ssz);
                if mnemonic(i) == M::Movsx {
                    let shift = 32 - 8 * ssz as i64;
                    v = self.b.ins().ishl_imm_u(v, shift);
                    v = self.b.ins().sshr_imm_u(v, shift);
                    if size < 4 {
                        v = self.b.ins().band_imm_u(v, mask(size));
                    }
                }
                self.set_reg(dst, size, v);
            }
            M::Bsf | M::Bsr => {
                // A zero source leaves the destination as it was (P6) and
                // sets ZF; the flags are those of a logic result of 0 or
                // 1, as the interpreter defines the undefined ones.
                let v = self.src(g, i, 1, size);
                let r = if mnemonic(i) == M::Bsf {
                    self.b.ins().ctz(v)
                } else {
                    let lz = self.b.ins().clz(v);
                    let k = self.konst(31);
                    self.b.ins().isub(k, lz)
                };
                let nz = self.b.ins().icmp_imm_u(IntCC::NotEqual, v, 0);
                let old = self.reg(dst, size);
                let r = self.b.ins().select(nz, r, old);
                self.set_reg(dst, size, r);
                let one = self.b.ins().uextend(types::I32, nz);
                let zero = self.konst(0);
                self.flags = self.logic_flags(one, size, zero, None);
            }
            M::Rdtsc => {
                // CR4.TSD makes it privileged in protected mode (the
                // interpreter raises the #GP); CR4 is not in the mode key.
                if self.mode & 4 != 0 && (self.mode >> 4) & 3 != 0 {
                    let cr4 = self.load32(CR4);
                    let tsd = self.b.ins().band_imm_u(cr4, ferrite_core::cpu::state::CR4_TSD as i64);
                    self.step_if(g, tsd);
                }
                // TSC = base + the instructions retired before this one.
                let now = self.b.use_var(self.iv);
                let n = self.b.ins().iadd_imm_u(now, self.pending);
                let base = self.b.ins().load(types::I64, self.mf, self.cpu, TSC);
                let t = self.b.ins().iadd(base, n);
                let lo = self.b.ins().ireduce(types::I32, t);
                let hi = self.b.ins().ushr_imm_u(t, 32);
                let hi = self.b.ins().ireduce(types::I32, hi);
                self.set_full(0, lo);
                self.set_full(2, hi);
            }
            M::Lahf => {
                self.materialize_in_memory(AH_FLAGS);
                let bits = self.load32(F_BITS);
                let ah = self.b.ins().band_imm_u(bits, AH_FLAGS as i64);
                // (Bit 1 of EFLAGS reads as one.)
                let ah = self.b.ins().bor_imm_u(ah, 2);
                self.set_reg(4, 1, ah);
            }
            M::Sahf => {
                let ah = self.reg(4, 1);
                // OF keeps whatever (lazy) value it has.
                self.materialize_in_memory(AH_FLAGS);
                let bits = self.load32(F_BITS);
                let keep = self.b.ins().band_imm_u(bits, !(AH_FLAGS as i64) & 0xFFFF_FFFF);
                let new = self.b.ins().band_imm_u(ah, AH_FLAGS as i64);
                let bits = self.b.ins().bor(keep, new);
                self.store32(bits, F_BITS);
            }
            M::Fnstsw => {
                // #NM with CR0.EM or TS (not in the mode key: CLTS and
                // MOV CR0 end blocks, but a block may run under either).
                let cr0 = self.load32(CR0);
                let nm = self
                    .b
                    .ins()
                    .band_imm_u(cr0, (ferrite_core::cpu::state::CR0_EM | ferrite_core::cpu::state::CR0_TS) as i64);
                self.step_if(g, nm);
                let sw = self.b.ins().uload16(types::I32, self.mf, self.cpu, FPU_SW);
                let top = self.b.ins().uload8(types::I32, self.mf, self.cpu, FPU_TOP);
                let sw = self.b.ins().band_imm_u(sw, !0x3800 & 0xFFFF);
                let top = self.b.ins().band_imm_u(top, 7);
                let top = self.b.ins().ishl_imm_u(top, 11);
                let v = self.b.ins().bor(sw, top);
                self.set_reg(0, 2, v);
            }
            M::Nop => {}
            m if is_setcc(m) => {
                let c = self.condition(i.cc);
                self.set_reg(dst, 1, c);
            }
            m if is_cmovcc(m) => {
                // The source is read whatever the condition; the
                // destination is only written when it holds.
                let v = self.src(g, i, 1, size);
                let c = self.condition(i.cc);
                let old = self.reg(dst, size);
                let r = self.b.ins().select(c, v, old);
                self.set_reg(dst, size, r);
            }
            M::Shl | M::Sal | M::Shr | M::Sar if i.ops[1].kind == OpK::Reg => self.shift_cl(i, size, dst),
            M::Shld | M::Shrd => self.double_shift(i, dst),
            M::Shl | M::Sal | M::Shr | M::Sar | M::Rol | M::Ror => {
                let rot = matches!(mnemonic(i), M::Rol | M::Ror);
                let f = move |l: &mut Self, a: Value| if rot { l.rotate(i, size, a) } else { l.shift(i, size, a) };
                if i.ops[0].kind == OpK::Mem {
                    self.rmw(g, i, size, f);
                } else {
                    let a = self.reg(dst, size);
                    let r = f(self, a);
                    self.set_reg(dst, size, r);
                }
            }
            M::Bt | M::Bts | M::Btr | M::Btc => self.bit_test(g, i, size),
            M::Inc | M::Dec | M::Not | M::Neg => {
                let m = mnemonic(i);
                let f = move |l: &mut Self, a: Value| match m {
                    M::Not => l.b.ins().bxor_imm_u(a, mask(size)),
                    M::Neg => l.neg(a, size),
                    _ => l.incdec(m == M::Dec, a, size),
                };
                if i.ops[0].kind == OpK::Mem {
                    self.rmw(g, i, size, f);
                } else {
                    let a = self.reg(dst, size);
                    let r = f(self, a);
                    self.set_reg(dst, size, r);
                }
            }
            M::Mul | M::Imul if i.ops[1].kind == OpK::None => {
                let b = self.src(g, i, 0, size);
                self.mul_wide(mnemonic(i) == M::Imul, b, size);
            }
            M::Div | M::Idiv => {
                let d = if i.ops[0].kind == OpK::Mem { self.load_or_step(g, i, size) } else { self.reg(dst, size) };
                self.divide(g, mnemonic(i) == M::Idiv, d, size);
            }
            M::Cld | M::Std => {
                let bits = self.load32(F_BITS);
                let bits = if mnemonic(i) == M::Std {
                    self.b.ins().bor_imm_u(bits, DF as i64)
                } else {
                    self.b.ins().band_imm_u(bits, !(DF as i64) & 0xFFFF_FFFF)
                };
                self.store32(bits, F_BITS);
            }
            M::Imul => {
                let (a, b) = if i.ops[2].kind == OpK::None {
                    let a = self.reg(dst, size);
                    (a, self.src(g, i, 1, size))
                } else {
                    let a = self.src(g, i, 1, size);
                    (a, self.operand(i, 2, size))
                };
                let r = self.imul(a, b, size);
                self.set_reg(dst, size, r);
            }
            m if i.ops[0].kind == OpK::Mem && !matches!(m, M::Cmp | M::Test) => {
                // Read-modify-write ALU operation; the source is a
                // register or an immediate.
                let b = self.operand(i, 1, size);
                self.rmw(g, i, size, move |l, a| l.alu(m, a, b, size));
            }
            m => {
                let a = if i.ops[0].kind == OpK::Mem {
                    let off = self.ea(i);
                    self.access(g, i.seg, off, size, None)
                } else {
                    self.reg(dst, size)
                };
                let bv = self.src(g, i, 1, size);
                let r = self.alu(m, a, bv, size);
                if !matches!(m, M::Cmp | M::Test) {
                    self.set_reg(dst, size, r);
                }
            }
        }
    }

    /// A relative CALL ending the block: #GP at the CALL for a target
    /// beyond the CS limit (through the interpreter), else push the return
    /// address and go on at the target (chained when it is in this page).
    fn call_rel(&mut self, g: &GuestInsn, i: &Insn) {
        let next_off = g.off + i.len as u32;
        let psize = i.opsz as u32;
        let next = self.eip_at(next_off);
        let t = self.add_k(next, i.imm as i32 as i64);
        let target = if psize == 2 { self.b.ins().band_imm_u(t, 0xFFFF) } else { t };
        // Both paths start from written-back state.
        self.spill_all();
        let p = self.pending;
        let bad_blk = self.check_cs_limit(target);
        self.push_return(g, next, psize);
        self.push_ret_entry(next_off, next);
        self.store32(target, EIP);
        self.flush_instret(1);
        let delta = (next_off as i64 + i.imm as i32 as i64) & if psize == 2 { 0xFFFF } else { -1 };
        let delta = if psize == 2 { delta as u16 as i16 as i64 } else { delta };
        self.chain_exit(delta, target);
        self.cs_limit_fault(bad_blk, g, p);
    }

    /// JMP/CALL near r/m ending the block: the target is read (inline),
    /// #GP for one beyond the CS limit (through the interpreter, nothing
    /// changed yet), CALL pushes the return address, and the block leaves
    /// through the table of linear entry points.
    fn indirect(&mut self, g: &GuestInsn, i: &Insn) {
        let size = i.opsz as u32;
        let next_off = g.off + i.len as u32;
        let t = self.src(g, i, 0, size);
        // Both paths start from written-back state.
        self.spill_all();
        let p = self.pending;
        let bad_blk = self.check_cs_limit(t);
        if matches!(mnemonic(i), M::Call) {
            let next = self.eip_at(next_off);
            self.push_return(g, next, size);
            self.push_ret_entry(next_off, next);
        }
        self.store32(t, EIP);
        self.flush_instret(1);
        self.exit_lookup(t);
        self.cs_limit_fault(bad_blk, g, p);
    }

    /// LODS/STOS/MOVS/SCAS without REP (`size`-byte elements): the
    /// accesses first, then SI/DI step by the size, backwards with DF set
    /// (so a fault leaves them as they were).
    fn string(&mut self, g: &GuestInsn, i: &Insn, op: StrOp, size: u32) {
        let a32 = i.addr32;
        let index = |l: &mut Self, r: u8| {
            let v = l.full(r);
            l.wrap(v, a32)
        };
        let es = SegReg::Es as u8;
        match op {
            StrOp::Lods => {
                let si = index(self, 6);
                let v = self.access(g, i.seg, si, size, None);
                self.set_reg(0, size, v);
            }
            StrOp::Stos => {
                let di = index(self, 7);
                let v = self.reg(0, size);
                self.access(g, es, di, size, Some(v));
            }
            StrOp::Movs => {
                let si = index(self, 6);
                let v = self.access(g, i.seg, si, size, None);
                let di = index(self, 7);
                self.access(g, es, di, size, Some(v));
            }
            StrOp::Scas => {
                let di = index(self, 7);
                let b = self.access(g, es, di, size, None);
                let a = self.reg(0, size);
                self.alu(M::Cmp, a, b, size);
            }
        }
        let bits = self.load32(F_BITS);
        let back = self.b.ins().band_imm_u(bits, DF as i64);
        let fwd = self.konst(size as i64);
        let bwd = self.konst(-(size as i64));
        let delta = self.b.ins().select(back, bwd, fwd);
        let regs: &[u8] = match op {
            StrOp::Lods => &[6],
            StrOp::Stos | StrOp::Scas => &[7],
            StrOp::Movs => &[6, 7],
        };
        for &r in regs {
            let v = self.full(r);
            let n = self.b.ins().iadd(v, delta);
            if a32 {
                self.set_full(r, n);
            } else {
                let n = self.b.ins().band_imm_u(n, 0xFFFF);
                self.set_reg(r, 2, n);
            }
        }
    }

    /// CALL's push of the return address `next` (`size` bytes; state
    /// written back before and after): ESP moves only once the store went
    /// through.
    fn push_return(&mut self, g: &GuestInsn, next: Value, size: u32) {
        let ret = if size == 2 { self.b.ins().band_imm_u(next, 0xFFFF) } else { next };
        let sp = self.full(4);
        let nsp = self.b.ins().iadd_imm_u(sp, (-(size as i64)) & 0xFFFF_FFFF);
        let off = self.stack_off(nsp);
        self.access(g, SegReg::Ss as u8, off, size, Some(ret));
        self.set_sp(off);
        self.spill_all();
    }

    /// Fill the block `check_cs_limit` returned (if any): the branch `g`
    /// runs through the interpreter, which raises #GP, with `pending`
    /// instructions retired before it.
    fn cs_limit_fault(&mut self, bad: Option<cranelift_codegen::ir::Block>, g: &GuestInsn, pending: i64) {
        if let Some(bad) = bad {
            self.b.switch_to_block(bad);
            self.pending = pending;
            self.helper(g);
            self.after_helper();
        }
    }

    /// Go on when `target` is within the CS limit; returns the block to
    /// fill for a target beyond it (None in flat mode, whose CS has the
    /// 4 GiB limit).
    fn check_cs_limit(&mut self, target: Value) -> Option<cranelift_codegen::ir::Block> {
        if self.mode & MODE_FLAT != 0 {
            return None;
        }
        let limit = self.load32(CS_LIMIT);
        let ok = self.b.ins().icmp(IntCC::UnsignedLessThanOrEqual, target, limit);
        let (bad_blk, ok_blk) = self.fork_not(ok);
        self.b.switch_to_block(ok_blk);
        Some(bad_blk)
    }

    /// RET near ending the block: the return address is read first, #GP
    /// for one beyond the CS limit (through the interpreter, nothing
    /// changed yet), else ESP moves past it (and the immediate) and the
    /// block returns to the dispatcher with EIP = that address.
    fn ret_near(&mut self, g: &GuestInsn, i: &Insn) {
        let size = i.opsz as u32;
        let extra = if i.ops[0].kind == OpK::Imm { (i.imm & 0xFFFF) as i64 } else { 0 };
        let sp = self.full(4);
        let off = self.stack_off(sp);
        let t = self.access(g, SegReg::Ss as u8, off, size, None);
        // Both paths start from written-back state.
        self.spill_all();
        let p = self.pending;
        let bad_blk = self.check_cs_limit(t);
        let nsp = self.b.ins().iadd_imm_u(sp, size as i64 + extra);
        let nsp = self.stack_off(nsp);
        self.set_sp(nsp);
        self.spill_all();
        self.store32(t, EIP);
        self.flush_instret(1);
        self.pop_ret_entry(t);
        self.cs_limit_fault(bad_blk, g, p);
    }

    /// Whether this region's calls and returns use the return stack
    /// (`Shared::ret`): in flat 32-bit code, where EIP is the linear
    /// address the entries are tagged with.
    fn uses_ret_stack(&self) -> bool {
        self.mode & MODE_FLAT != 0 && self.code32
    }

    /// The tag of linear EIP `lin` under this region's mode key, as
    /// `crate::lin_tag` makes it (the table of linear entry points, the
    /// return stack).
    fn lin_tag(&mut self, lin: Value) -> Value {
        let lin = self.b.ins().uextend(types::I64, lin);
        let tag = self.b.ins().ishl_imm_u(lin, 16);
        self.b.ins().bor_imm_u(tag, self.mode as i64)
    }

    /// The address of `Shared::ret_top` and of `Shared::ret`.
    fn ret_stack(&mut self) -> (Value, i64) {
        let top = self.shared as i64 + offset_of!(crate::Shared, ret_top) as i64;
        let base = self.shared as i64 + offset_of!(crate::Shared, ret) as i64;
        (self.b.ins().iconst(types::I64, top), base)
    }

    /// After a CALL whose return address is at `next_off` (value `next`):
    /// push that address onto the return stack with the chaining slot
    /// that will hold the code there (an entry no return matches when the
    /// address is in another page or the slots ran out).
    fn push_ret_entry(&mut self, next_off: u32, next: Value) {
        if !self.uses_ret_stack() {
            return;
        }
        const _: () = assert!(std::mem::size_of::<crate::RetEntry>() == 16);
        let (tag, slot) = match self.chain_slot(next_off as i64) {
            Some(slot) => (self.lin_tag(next), self.b.ins().iconst(types::I64, slot)),
            None => {
                let none = self.b.ins().iconst(types::I64, crate::EMPTY_RET.tag as i64);
                (none, self.b.ins().iconst(types::I64, 0))
            }
        };
        let (ta, base) = self.ret_stack();
        let top = self.b.ins().load(types::I32, self.mf, ta, 0);
        let up = self.b.ins().iadd_imm_u(top, 16);
        let up = self.b.ins().band_imm_u(up, RET_RING);
        self.b.ins().store(self.mf, up, ta, 0);
        let byte = self.b.ins().uextend(types::I64, up);
        let (at, d) = self.table_entry(base, byte);
        self.b.ins().store(self.mf, tag, at, d + offset_of!(crate::RetEntry, tag) as i32);
        self.b.ins().store(self.mf, slot, at, d + offset_of!(crate::RetEntry, slot) as i32);
    }

    /// A RET's exit to `t` (state written back): pop the return stack; when
    /// its top entry is `t` under this mode key and the caller's slot holds
    /// code, on into it as a chained jump does, else `exit_lookup`.
    fn pop_ret_entry(&mut self, t: Value) {
        if !self.uses_ret_stack() {
            self.exit_lookup(t);
            return;
        }
        let (ta, base) = self.ret_stack();
        let top = self.b.ins().load(types::I32, self.mf, ta, 0);
        let down = self.b.ins().iadd_imm_u(top, -16);
        let down = self.b.ins().band_imm_u(down, RET_RING);
        self.b.ins().store(self.mf, down, ta, 0);
        let byte = self.b.ins().uextend(types::I64, top);
        let (at, d) = self.table_entry(base, byte);
        let tag = self.b.ins().load(types::I64, self.mf, at, d + offset_of!(crate::RetEntry, tag) as i32);
        let want = self.lin_tag(t);
        let hit = self.b.ins().icmp(IntCC::Equal, tag, want);
        let found = self.b.create_block();
        let go = self.b.create_block();
        let miss = self.b.create_block();
        self.b.set_cold_block(miss);
        self.b.ins().brif(hit, found, &[], miss, &[]);
        self.b.switch_to_block(found);
        let slot = self.b.ins().load(types::I64, self.mf, at, d + offset_of!(crate::RetEntry, slot) as i32);
        let f = self.b.ins().load(types::I64, self.mf, slot, 0);
        self.b.ins().brif(f, go, &[], miss, &[]);
        self.b.switch_to_block(go);
        let now = self.b.use_var(self.iv);
        self.b.ins().return_call_indirect(self.tail_sig, f, &[self.cpu, now]);
        self.b.switch_to_block(miss);
        self.exit_lookup(t);
    }

    /// A relative JMP or Jcc: to a label of the region, or leaving it;
    /// a Jcc that is not the `last` instruction falls through into the
    /// rest of the region.
    fn branch(&mut self, g: &GuestInsn, i: &Insn, last: bool) {
        let next_off = g.off + i.len as u32;
        let taken = if mnemonic(i) == M::Jmp { None } else { Some(self.condition(i.cc)) };
        let Some(c) = taken else {
            self.taken(g, i);
            return;
        };
        // When the fall-through leaves the region or reaches a label, both
        // edges write the state back: once here, before the branch, not
        // once on each edge (the flags only when the fall-through needs
        // them; an edge finds nothing left to store).
        let fall_flags = if last { Some(true) } else { self.labels.get(&next_off).map(|l| l.flags_live) };
        if let Some(flags) = fall_flags {
            if flags {
                self.spill_flags();
            }
            self.spill_regs();
        }
        let (taken_blk, fall) = self.fork(c, false);
        self.b.switch_to_block(taken_blk);
        let saved = (self.dirty, self.loaded, self.flags, self.pending);
        self.taken(g, i);
        (self.dirty, self.loaded, self.flags, self.pending) = saved;
        self.b.switch_to_block(fall);
        if !last {
            self.pending += 1;
            return;
        }
        self.spill_all();
        let next = self.eip_at(next_off);
        self.store32(next, EIP);
        self.flush_instret(1);
        self.chain_exit(next_off as i64, next);
    }

    /// The taken edge of relative branch `i`.
    fn taken(&mut self, g: &GuestInsn, i: &Insn) {
        if let Some(t) = rel_target(g, i, self.code32).filter(|t| self.labels.contains_key(t)) {
            // (Inside the region, so inside the CS limit checked on entry.
            // Only a backward jump can run code again: only it checks the
            // budget.)
            self.goto_label(t, t <= g.off, 1);
            return;
        }
        let next_off = g.off + i.len as u32;
        self.spill_all();
        let next = self.eip_at(next_off);
        let t = self.add_k(next, i.imm as i32 as i64);
        let target = if i.opsz == 2 { self.b.ins().band_imm_u(t, 0xFFFF) } else { t };
        // A target beyond the CS limit raises #GP at the branch: let the
        // interpreter's semantics do that.
        let bad_blk = self.check_cs_limit(target);
        self.store32(target, EIP);
        let p = self.pending;
        self.flush_instret(1);
        self.pending = p;
        let delta = (next_off as i64 + i.imm as i32 as i64) & if i.opsz == 2 { 0xFFFF } else { -1 };
        let delta = if i.opsz == 2 { delta as u16 as i16 as i64 } else { delta };
        self.chain_exit(delta, target);
        let p = self.pending;
        self.cs_limit_fault(bad_blk, g, p);
    }
}
