//! Decoding: iced-x86 decodes guest bytes once; the result is converted into
//! the compact [`Insn`] form (semantics function + operand shapes) and cached
//! per guest physical page. A page's cache is dropped when the page is
//! written (the memory map's CODE bit), so self-modifying code re-decodes.

use super::exec;
use super::{Cpu, Ctx, Fault, Res};
use crate::mem::{PhysAddr, PAGE_MASK, PAGE_SHIFT, PAGE_SIZE};
use iced_x86::{Decoder, DecoderError, DecoderOptions, Instruction, Mnemonic, OpKind, Register};

/// The semantics function of one instruction form.
pub type ExecFn = fn(&mut Cpu, &mut Ctx, &Insn) -> Res<()>;

/// Operand kinds in the decoded form.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpK {
    None,
    /// General register by x86 number (8-bit: 0-3 low bytes, 4-7 AH..BH).
    Reg,
    /// The memory operand described by `Insn::{seg, base, index, scale, disp}`.
    Mem,
    /// `Insn::imm` (num 0) or `Insn::imm2` (num 1).
    Imm,
    /// Segment register.
    Seg,
    /// Control register.
    Cr,
    /// Debug register.
    Dr,
    /// x87 stack register ST(num).
    St,
    /// MMX register MM(num) (the significand of physical x87 register num).
    Mmx,
    /// SSE register XMM(num).
    Xmm,
}

/// One operand: kind, register number and size in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Op {
    pub kind: OpK,
    pub num: u8,
    pub size: u8,
}

impl Op {
    pub const NONE: Op = Op { kind: OpK::None, num: 0, size: 0 };
}

/// No base/index register.
pub const NO_REG: u8 = 0xFF;
pub const REP_E: u8 = 1;
pub const REP_NE: u8 = 2;

/// The decoded form of one instruction: everything the interpreter needs,
/// small and `Copy`.
#[derive(Clone, Copy)]
pub struct Insn {
    pub exec: ExecFn,
    pub ops: [Op; 3],
    pub disp: u32,
    pub imm: u32,
    pub imm2: u32,
    /// iced-x86 `Code` value, for diagnostics and tests.
    pub code: u16,
    pub len: u8,
    /// Operand-size attribute in bytes (2 or 4).
    pub opsz: u8,
    /// Address-size attribute is 32 bits.
    pub addr32: bool,
    /// Effective segment of the memory operand (string source for MOVS etc.).
    pub seg: u8,
    pub base: u8,
    pub index: u8,
    pub scale: u8,
    /// REP/REPE (1) or REPNE (2) prefix.
    pub rep: u8,
    /// Condition code for Jcc/SETcc/CMOVcc/LOOPcc, or an instruction's sub-op.
    pub cc: u8,
    pub lock: bool,
    /// Translated code must leave after this instruction: it transfers
    /// control, changes the mode, the interrupt flag or shadow, does port
    /// I/O, halts, or is not an instruction (#UD).
    pub ends_block: bool,
}

impl std::fmt::Debug for Insn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let code: iced_x86::Code = unsafe_free_code(self.code);
        f.debug_struct("Insn").field("code", &code).field("len", &self.len).field("ops", &self.ops).finish()
    }
}

fn unsafe_free_code(v: u16) -> iced_x86::Code {
    iced_x86::Code::values().nth(v as usize).unwrap_or(iced_x86::Code::INVALID)
}

impl Insn {
    /// Bytes of operand `i`.
    #[inline]
    pub fn size(&self, i: usize) -> u32 {
        self.ops[i].size as u32
    }

    /// The iced-x86 code of this instruction.
    pub fn iced_code(&self) -> iced_x86::Code {
        unsafe_free_code(self.code)
    }
}

/// Jcc (the sixteen conditional jumps, not JCXZ/LOOP).
pub fn is_jcc(m: Mnemonic) -> bool {
    use Mnemonic as M;
    matches!(
        m,
        M::Jo
            | M::Jno
            | M::Jb
            | M::Jae
            | M::Je
            | M::Jne
            | M::Jbe
            | M::Ja
            | M::Js
            | M::Jns
            | M::Jp
            | M::Jnp
            | M::Jl
            | M::Jge
            | M::Jle
            | M::Jg
    )
}

/// SETcc.
pub fn is_setcc(m: Mnemonic) -> bool {
    use Mnemonic as M;
    matches!(
        m,
        M::Seto
            | M::Setno
            | M::Setb
            | M::Setae
            | M::Sete
            | M::Setne
            | M::Setbe
            | M::Seta
            | M::Sets
            | M::Setns
            | M::Setp
            | M::Setnp
            | M::Setl
            | M::Setge
            | M::Setle
            | M::Setg
    )
}

/// CMOVcc.
pub fn is_cmovcc(m: Mnemonic) -> bool {
    use Mnemonic as M;
    matches!(
        m,
        M::Cmovo
            | M::Cmovno
            | M::Cmovb
            | M::Cmovae
            | M::Cmove
            | M::Cmovne
            | M::Cmovbe
            | M::Cmova
            | M::Cmovs
            | M::Cmovns
            | M::Cmovp
            | M::Cmovnp
            | M::Cmovl
            | M::Cmovge
            | M::Cmovle
            | M::Cmovg
    )
}

/// Decoder mode key: bit 0 = 32-bit default operand/address size.
pub type Mode = u8;

struct PageCache {
    mode: Mode,
    /// Index+1 into `insns` for each byte offset; 0 = not decoded.
    index: Box<[u16; PAGE_SIZE as usize]>,
    insns: Vec<Insn>,
    /// An instruction in this page runs into the next page.
    spans_next: bool,
}

/// Decoded instructions, per guest physical page.
pub struct DecodeCache {
    slot_of_page: Vec<u32>,
    pages: Vec<Option<(u32, PageCache)>>,
    free: Vec<u32>,
    /// Bumped whenever a page's decoded instructions are dropped.
    pub(crate) gen: u32,
    /// The last instruction decoded from memory that cannot be cached
    /// (MMIO or unmapped pages).
    scratch: Insn,
}

const NO_SLOT: u32 = u32::MAX;
/// More pages than this and the whole cache is flushed (bounded memory).
const MAX_PAGES: usize = 8192;

impl Default for DecodeCache {
    fn default() -> Self {
        DecodeCache::new()
    }
}

impl DecodeCache {
    pub fn new() -> DecodeCache {
        DecodeCache {
            slot_of_page: vec![NO_SLOT; 1 << (32 - PAGE_SHIFT)],
            pages: Vec::new(),
            free: Vec::new(),
            gen: 0,
            scratch: convert(&Instruction::default(), &[], 0),
        }
    }

    /// Drop everything.
    pub fn flush(&mut self) {
        self.gen = self.gen.wrapping_add(1);
        for (page, _) in self.pages.iter().flatten() {
            self.slot_of_page[*page as usize] = NO_SLOT;
        }
        self.pages.clear();
        self.free.clear();
    }

    /// Where the instruction at `phys` decoded in `mode` is cached.
    #[inline]
    pub fn find(&self, phys: PhysAddr, mode: Mode) -> Option<(u32, u32)> {
        let slot = self.slot_of_page[phys.page() as usize];
        if slot == NO_SLOT {
            return None;
        }
        let (_, pc) = self.pages[slot as usize].as_ref()?;
        if pc.mode != mode {
            return None;
        }
        let i = pc.index[phys.page_offset() as usize];
        if i == 0 {
            None
        } else {
            Some((slot, i as u32 - 1))
        }
    }

    /// Where the instruction at byte `offset` of the page in `slot` is
    /// cached (for the fetch fast path, which already knows the slot).
    #[inline]
    pub(crate) fn find_in_slot(&self, slot: u32, offset: u32) -> Option<(u32, u32)> {
        match self.pages.get(slot as usize) {
            Some(Some((_, pc))) => {
                let i = pc.index[offset as usize];
                if i == 0 {
                    None
                } else {
                    Some((slot, i as u32 - 1))
                }
            }
            _ => None,
        }
    }

    /// The instruction [`DecodeCache::find`] located.
    #[inline]
    pub fn get(&self, at: (u32, u32)) -> &Insn {
        match self.pages.get(at.0 as usize) {
            Some(Some((_, pc))) => &pc.insns[at.1 as usize],
            _ => &self.scratch,
        }
    }

    /// The cached instruction at `phys` decoded in `mode`.
    pub fn lookup(&self, phys: PhysAddr, mode: Mode) -> Option<&Insn> {
        self.find(phys, mode).map(|at| self.get(at))
    }

    fn insert(&mut self, phys: PhysAddr, mode: Mode, insn: Insn, spans_next: bool) -> (u32, u32) {
        let page = phys.page();
        let mut slot = self.slot_of_page[page as usize];
        if slot != NO_SLOT {
            let stale =
                matches!(&self.pages[slot as usize], Some((_, pc)) if pc.mode != mode || pc.insns.len() >= 0xFFFF);
            if stale {
                self.invalidate_page(page);
                slot = NO_SLOT;
            }
        }
        if slot == NO_SLOT {
            if self.pages.len() - self.free.len() >= MAX_PAGES {
                self.flush();
            }
            let pc = PageCache { mode, index: Box::new([0; PAGE_SIZE as usize]), insns: Vec::new(), spans_next: false };
            slot = match self.free.pop() {
                Some(s) => {
                    self.pages[s as usize] = Some((page, pc));
                    s
                }
                None => {
                    self.pages.push(Some((page, pc)));
                    (self.pages.len() - 1) as u32
                }
            };
            self.slot_of_page[page as usize] = slot;
        }
        match self.pages[slot as usize].as_mut() {
            Some((_, pc)) => {
                pc.insns.push(insn);
                pc.index[phys.page_offset() as usize] = pc.insns.len() as u16;
                pc.spans_next |= spans_next;
                (slot, pc.insns.len() as u32 - 1)
            }
            None => {
                self.scratch = insn;
                (u32::MAX, 0)
            }
        }
    }

    /// Forget what was decoded from `page` (it was written), and from the
    /// page before it if an instruction there runs into this one.
    pub fn invalidate_page(&mut self, page: u32) {
        self.drop_page(page);
        if page > 0 {
            let prev = self.slot_of_page[page as usize - 1];
            if prev != NO_SLOT && matches!(&self.pages[prev as usize], Some((_, pc)) if pc.spans_next) {
                self.drop_page(page - 1);
            }
        }
    }

    fn drop_page(&mut self, page: u32) {
        self.gen = self.gen.wrapping_add(1);
        let slot = self.slot_of_page[page as usize];
        if slot != NO_SLOT {
            self.slot_of_page[page as usize] = NO_SLOT;
            self.pages[slot as usize] = None;
            self.free.push(slot);
        }
    }
}

const DECODER_OPTIONS: u32 = DecoderOptions::NO_MPFX_0FBC
    | DecoderOptions::NO_MPFX_0FBD
    | DecoderOptions::NO_WBNOINVD
    | DecoderOptions::NO_PAUSE;

impl Cpu {
    /// Decode the instruction at linear `lin` (physical `phys`) and cache it.
    pub(crate) fn decode_at(&mut self, ctx: &mut Ctx, lin: u32, phys: PhysAddr, mode: Mode) -> Res<(u32, u32)> {
        let mut buf = [0u8; 16];
        let first = (PAGE_SIZE - phys.page_offset()).min(15) as usize;
        let cacheable = ctx.mem.page_slice(phys.page()).is_some();
        self.fetch_bytes(ctx, phys, &mut buf[..first]);
        let bitness = if mode & 1 != 0 { 32 } else { 16 };
        let eip = self.state.eip;
        let mut ins = Instruction::default();
        let mut dec = Decoder::with_ip(bitness, &buf[..first], eip as u64, DECODER_OPTIONS);
        dec.decode_out(&mut ins);
        let mut spans = false;
        if dec.last_error() == DecoderError::NoMoreBytes && first < 15 {
            // The instruction runs into the next page: translate it (this
            // may fault) and decode again with all 15 bytes.
            let next_lin = (lin & !PAGE_MASK).wrapping_add(PAGE_SIZE);
            let next_phys = self.translate_fetch(ctx, next_lin)?;
            self.fetch_bytes(ctx, next_phys, &mut buf[first..15]);
            dec = Decoder::with_ip(bitness, &buf[..15], eip as u64, DECODER_OPTIONS);
            dec.decode_out(&mut ins);
            spans = true;
            if ctx.mem.page_slice(next_phys.page()).is_some() {
                ctx.mem.mark_code(next_phys);
            }
        }
        let loaded = if spans { 15 } else { first };
        if ins.is_invalid() && too_long(&buf[..loaded], bitness) {
            // More than 15 bytes: #GP(0), not #UD (SDM vol. 2, 2.3.11).
            return Err(Fault::gp(0));
        }
        let cs_limit = self.state.segs[super::state::SegReg::Cs as usize].limit;
        let len = if ins.is_invalid() { 1 } else { ins.len() as u32 };
        if eip.wrapping_add(len - 1) > cs_limit || eip.wrapping_add(len - 1) < eip {
            return Err(Fault::gp(0));
        }
        let insn = convert(&ins, &buf, mode);
        // An instruction only spans when its bytes really cross the page.
        let spans = spans && phys.page_offset() + len > PAGE_SIZE;
        if cacheable {
            ctx.mem.mark_code(phys);
            Ok(self.cache.insert(phys, mode, insn, spans))
        } else {
            self.cache.scratch = insn;
            Ok((u32::MAX, 0))
        }
    }

    fn fetch_bytes(&mut self, ctx: &mut Ctx, phys: PhysAddr, out: &mut [u8]) {
        if let Some(page) = ctx.mem.page_slice(phys.page()) {
            let o = phys.page_offset() as usize;
            out.copy_from_slice(&page[o..o + out.len()]);
        } else {
            for (i, b) in out.iter_mut().enumerate() {
                *b = ctx.mem.read(PhysAddr(phys.0.wrapping_add(i as u32)), crate::bus::AccessSize::Byte, ctx.bus) as u8;
            }
        }
    }
}

/// True when the bytes are an instruction longer than 15 bytes: its legacy
/// prefixes are followed by an instruction that runs past byte 15.
fn too_long(bytes: &[u8], bitness: u32) -> bool {
    if bytes.len() < 15 {
        return false;
    }
    let p = bytes
        .iter()
        .take_while(|b| matches!(b, 0x26 | 0x2E | 0x36 | 0x3E | 0x64 | 0x65 | 0x66 | 0x67 | 0xF0 | 0xF2 | 0xF3))
        .count();
    if p >= 15 {
        return true;
    }
    // The operand/address-size prefixes change the length of what follows:
    // keep the last of each kind.
    let mut rest = Vec::with_capacity(17);
    if bytes[..p].contains(&0x66) {
        rest.push(0x66);
    }
    if bytes[..p].contains(&0x67) {
        rest.push(0x67);
    }
    let kept = rest.len();
    rest.extend_from_slice(&bytes[p..]);
    let mut ins = Instruction::default();
    let mut dec = Decoder::with_ip(bitness, &rest, 0, DECODER_OPTIONS);
    dec.decode_out(&mut ins);
    match dec.last_error() {
        DecoderError::NoMoreBytes => true,
        DecoderError::None => p - kept + ins.len() > 15,
        _ => false,
    }
}

fn gpr(r: Register) -> u8 {
    if r == Register::None {
        NO_REG
    } else {
        r.number() as u8
    }
}

fn reg_op(r: Register) -> Op {
    if r.is_segment_register() {
        Op { kind: OpK::Seg, num: r.number() as u8, size: 2 }
    } else if r.is_cr() {
        Op { kind: OpK::Cr, num: r.number() as u8, size: 4 }
    } else if r.is_dr() {
        Op { kind: OpK::Dr, num: r.number() as u8, size: 4 }
    } else if r.is_gpr8() {
        Op { kind: OpK::Reg, num: r.number() as u8, size: 1 }
    } else if r.is_gpr16() {
        Op { kind: OpK::Reg, num: r.number() as u8, size: 2 }
    } else if r.is_gpr32() {
        Op { kind: OpK::Reg, num: r.number() as u8, size: 4 }
    } else if r.is_st() {
        Op { kind: OpK::St, num: (r as u32 - Register::ST0 as u32) as u8, size: 10 }
    } else if (Register::MM0..=Register::MM7).contains(&r) {
        Op { kind: OpK::Mmx, num: (r as u32 - Register::MM0 as u32) as u8, size: 8 }
    } else if (Register::XMM0..=Register::XMM7).contains(&r) {
        Op { kind: OpK::Xmm, num: (r as u32 - Register::XMM0 as u32) as u8, size: 16 }
    } else {
        // Test registers and the rest: not implemented, the handler table maps
        // such forms to #UD.
        Op { kind: OpK::None, num: 0xFF, size: 0 }
    }
}

/// Convert one iced-x86 instruction to the decoded form.
pub(crate) fn convert(ins: &Instruction, bytes: &[u8], mode: Mode) -> Insn {
    let code32 = mode & 1 != 0;
    let mut p66 = false;
    let mut p67 = false;
    for &b in bytes.iter().take(ins.len().max(1)) {
        match b {
            0x66 => p66 = true,
            0x67 => p67 = true,
            0x26 | 0x2E | 0x36 | 0x3E | 0x64 | 0x65 | 0xF0 | 0xF2 | 0xF3 => {}
            _ => break,
        }
    }
    let mut insn = Insn {
        exec: exec::ud,
        ops: [Op::NONE; 3],
        disp: 0,
        imm: 0,
        imm2: 0,
        code: ins.code() as u16,
        len: ins.len().max(1) as u8,
        opsz: if code32 != p66 { 4 } else { 2 },
        addr32: code32 != p67,
        seg: 3,
        base: NO_REG,
        index: NO_REG,
        scale: 0,
        rep: if ins.has_repne_prefix() {
            REP_NE
        } else if ins.has_rep_prefix() || ins.has_repe_prefix() {
            REP_E
        } else {
            0
        },
        cc: 0,
        lock: ins.has_lock_prefix(),
        ends_block: true,
    };
    if ins.is_invalid() {
        if super::fpu::fop(bytes).is_some() {
            // An undefined ESC opcode still honours CR0.EM/TS.
            insn.exec = super::fpu::undefined;
        }
        return insn;
    }
    let x87 = exec::is_x87_escape(ins) && ins.mnemonic() != iced_x86::Mnemonic::Wait;
    let mut nimm = 0;
    let mut unsupported = false;
    for i in 0..ins.op_count().min(3) {
        let op = match ins.op_kind(i) {
            OpKind::Register => {
                let o = reg_op(ins.op_register(i));
                unsupported |= o.kind == OpK::None && !x87;
                o
            }
            OpKind::Memory => {
                insn.seg = ins.memory_segment().number() as u8;
                insn.base = gpr(ins.memory_base());
                insn.index = gpr(ins.memory_index());
                insn.scale = ins.memory_index_scale().trailing_zeros() as u8;
                insn.disp = ins.memory_displacement32();
                unsupported |= insn.base == 16 || insn.index == 16; // RIP/EIP-relative cannot occur
                Op { kind: OpK::Mem, num: 0, size: ins.memory_size().size().min(255) as u8 }
            }
            OpKind::MemorySegSI | OpKind::MemorySegESI => {
                insn.seg = ins.memory_segment().number() as u8;
                Op { kind: OpK::Mem, num: 1, size: ins.memory_size().size() as u8 }
            }
            OpKind::MemoryESDI | OpKind::MemoryESEDI => {
                Op { kind: OpK::Mem, num: 2, size: ins.memory_size().size() as u8 }
            }
            OpKind::MemorySegDI | OpKind::MemorySegEDI => {
                // MASKMOVQ's DS:(E)DI (its semantics function reads EDI).
                insn.seg = ins.memory_segment().number() as u8;
                Op { kind: OpK::Mem, num: 3, size: 8 }
            }
            OpKind::NearBranch16 | OpKind::NearBranch32 => {
                insn.imm = ins.near_branch_target() as u32;
                nimm += 1;
                Op { kind: OpK::Imm, num: 0, size: insn.opsz }
            }
            OpKind::FarBranch16 | OpKind::FarBranch32 => {
                insn.imm =
                    if ins.op_kind(i) == OpKind::FarBranch16 { ins.far_branch16() as u32 } else { ins.far_branch32() };
                insn.imm2 = ins.far_branch_selector() as u32;
                nimm += 2;
                Op { kind: OpK::Imm, num: 0, size: insn.opsz }
            }
            OpKind::Immediate8
            | OpKind::Immediate8_2nd
            | OpKind::Immediate16
            | OpKind::Immediate32
            | OpKind::Immediate8to16
            | OpKind::Immediate8to32 => {
                let size = match ins.op_kind(i) {
                    OpKind::Immediate8 | OpKind::Immediate8_2nd => 1,
                    OpKind::Immediate16 | OpKind::Immediate8to16 => 2,
                    _ => 4,
                };
                let v = ins.immediate(i) as u32;
                let num = if nimm == 0 {
                    insn.imm = v;
                    0
                } else {
                    insn.imm2 = v;
                    1
                };
                nimm += 1;
                Op { kind: OpK::Imm, num, size }
            }
            _ => {
                unsupported = true;
                Op::NONE
            }
        };
        insn.ops[i as usize] = op;
    }
    if x87 {
        insn.exec = super::fpu::handler(ins, bytes, &mut insn);
        insn.ends_block = false;
        return insn;
    }
    if super::fpu::fop(bytes).is_some() {
        // ESC opcodes of later processors (SSE3's FISTTP).
        insn.exec = super::fpu::undefined;
        return insn;
    }
    if unsupported {
        return insn;
    }
    insn.cc = exec::cond_code(ins);
    insn.exec = exec::handler(ins, &mut insn);
    insn.ends_block = exec::ends_block(ins, &insn);
    insn
}
