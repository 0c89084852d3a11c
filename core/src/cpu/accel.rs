//! The interface between the interpreter and an accelerator (the dynamic
//! binary translator in `ferrite-jit`). Core knows nothing of the
//! translator: it offers a hook in the run loop, a way to decode guest code
//! for translation, and one-instruction execution with the interpreter's
//! exact semantics, which translated code calls for every instruction it
//! does not lower inline.

use super::decode::{Insn, Mode};
use super::state::{SegReg, SEG_CODE, SEG_DC, SEG_P, SEG_RW, SEG_S};
use super::{flags, Cpu, Ctx, Fault, Res};
use crate::mem::{PhysAddr, PAGE_MASK, PAGE_SIZE};

/// Counters an accelerator reports (`ferrite run --stats`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AccelStats {
    /// Translated blocks made.
    pub blocks_compiled: u64,
    /// Guest instructions retired in translated code.
    pub insns_translated: u64,
    /// Host time spent translating, in nanoseconds.
    pub compile_ns: u64,
    /// Translations dropped because their guest code was written.
    pub invalidations: u64,
    /// Whole code-cache flushes (mode/memory-map changes, cache full).
    pub flushes: u64,
    /// Entries into translated code.
    pub block_runs: u64,
}

/// Something that runs guest code faster than the interpreter.
pub trait Accelerator: Send {
    /// Run translated code at CS:EIP, retiring at most `budget`
    /// instructions. Returns false when nothing ran (no translation, or
    /// none can be made here); the CPU then interprets one instruction.
    /// Called only when [`Cpu::accel_eligible`] holds and no interrupt is
    /// pending.
    fn execute(&mut self, cpu: &mut Cpu, ctx: &mut Ctx, budget: u64) -> bool;
    /// Guest physical page `page` was written: drop what was derived from it.
    fn invalidate_page(&mut self, page: u32);
    /// Drop every translation (memory map, A20 or paging changes).
    fn flush(&mut self);
    /// Counters so far.
    fn stats(&self) -> AccelStats;
}

/// What a translation of code may assume about the CPU mode: translated
/// blocks are keyed by (physical address, mode key).
pub type ModeKey = u32;

/// Mode key bit: flat segments ([`Cpu::flat_segments`]).
pub const MODE_FLAT: ModeKey = 1 << 7;

/// Mode key bit: alignment checking is on (CPL 3, CR0.AM and EFLAGS.AC).
/// All three only change through instructions that end a translated block.
pub const MODE_AC: ModeKey = 1 << 8;

const FLAT_MASK: u32 = SEG_P | SEG_S | SEG_CODE | SEG_DC | SEG_RW;
const FLAT_DATA: u32 = SEG_P | SEG_S | SEG_RW;

/// Result of [`Cpu::exec_one`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExecResult {
    /// The instruction retired and execution continues at the next one.
    Next,
    /// The instruction retired but control went elsewhere, or something
    /// the run loop must see happened (code written, halt, port write
    /// asking for service): leave translated code.
    Exit,
    /// The instruction faulted and the fault was delivered: leave
    /// translated code for the run loop, which counts the fault as a step.
    Fault,
}

impl Cpu {
    /// Install (or remove) an accelerator.
    pub fn set_accelerator(&mut self, accel: Option<Box<dyn Accelerator>>) {
        self.accel = accel;
        self.block_start = true;
    }

    /// For the accelerator, declining the instruction at CS:EIP: the run
    /// loop interprets that one instruction and offers it the next one,
    /// instead of interpreting on to the next control transfer (for an
    /// instruction it cannot translate in a block of its own, such as one
    /// that crosses a page boundary, in front of code it can).
    pub fn accel_retry_after_one(&mut self) {
        self.accel_retry = true;
    }

    /// For the accelerator, declining translated code at CS:EIP only for
    /// want of budget in this slice: the run loop offers it CS:EIP = `eip`
    /// (where that code falls through) when the interpreter gets there,
    /// even without a control transfer on the way (straight-line code
    /// would otherwise stay interpreted to its next branch).
    pub fn accel_offer_at(&mut self, eip: u32) {
        self.offer_at = eip as u64;
    }

    /// The accelerator's counters, if one is installed.
    pub fn accel_stats(&self) -> Option<AccelStats> {
        self.accel.as_ref().map(|a| a.stats())
    }

    /// True when translated code may run now: no single-step, breakpoints,
    /// resume flag or halt in force, so instructions need no per-instruction
    /// debug checks.
    #[inline]
    pub fn accel_eligible(&self) -> bool {
        self.state.flags.bits & (flags::TF | flags::RF) == 0
            && self.state.dr[7] & 0xFF == 0
            && !self.state.halted
            && !self.state.int_shadow
            && !self.shutdown
    }

    /// True when translated code may go straight on into the translation
    /// at CS:EIP without a trip through the run loop: translated code may
    /// run ([`Cpu::accel_eligible`]) and there is nothing the run loop must
    /// see first (a stop request, written code pages, an interrupt to take).
    #[inline]
    pub fn may_continue_translated(&mut self, ctx: &mut Ctx) -> bool {
        if !self.accel_eligible() || self.stop || ctx.mem.has_invalidated() {
            return false;
        }
        self.state.flags.bits & flags::IF == 0 || !ctx.bus.interrupt_pending()
    }

    /// The mode key of the current state: decode mode (bit 0), stack size
    /// (bit 1), protected mode (bit 2), V86 (bit 3), CPL (bits 4-5),
    /// paging (bit 6), flat segments (bit 7, [`MODE_FLAT`]), alignment
    /// checking (bit 8, [`MODE_AC`]).
    #[inline]
    pub fn mode_key(&self) -> ModeKey {
        let s = &self.state;
        let ac = s.cpl == 3 && s.cr0 & super::state::CR0_AM != 0 && s.flags.bits & super::flags::AC != 0;
        (s.code32() as u32)
            | (s.stack32() as u32) << 1
            | (s.protected() as u32) << 2
            | (s.v86() as u32) << 3
            | (s.cpl as u32 & 3) << 4
            | ((s.cr0 & super::state::CR0_PG != 0) as u32) << 6
            | (self.flat_segments() as u32) << 7
            | (ac as u32) << 8
    }

    /// Protected mode (not V86) with CS, DS, ES and SS all based at 0 with
    /// a 4 GiB limit, and DS, ES and SS present, writable, expand-up data
    /// segments: the usual flat model, in which a data access through DS,
    /// ES or SS only needs paging checks (and the 4 GiB wrap).
    #[inline]
    pub fn flat_segments(&self) -> bool {
        let s = &self.state;
        if !s.protected() || s.v86() {
            return false;
        }
        let full = |r: SegReg| {
            let g = &s.segs[r as usize];
            g.base == 0 && g.limit == u32::MAX
        };
        let data = |r: SegReg| full(r) && s.segs[r as usize].flags & FLAT_MASK == FLAT_DATA;
        full(SegReg::Cs) && data(SegReg::Ds) && data(SegReg::Es) && data(SegReg::Ss)
    }

    /// Decode mode of a mode key.
    pub fn decode_mode(key: ModeKey) -> Mode {
        (key & 1) as Mode
    }

    /// The linear address of CS:EIP and its physical address for a fetch
    /// (a fault here is left for the interpreter to raise).
    #[inline]
    pub fn fetch_address(&mut self, ctx: &mut Ctx) -> Res<(u32, PhysAddr)> {
        let cs = &self.state.segs[SegReg::Cs as usize];
        let eip = self.state.eip;
        if eip > cs.limit {
            return Err(Fault::gp(0));
        }
        let lin = cs.base.wrapping_add(eip);
        if self.fetch_hint.lin_page == (lin & !PAGE_MASK) | 1
            && self.fetch_hint.cpl == self.state.cpl
            && self.fetch_hint.tlb_gen == self.tlb.gen
            && self.fetch_hint.a20_mask == ctx.mem.a20_mask()
        {
            return Ok((lin, PhysAddr((self.fetch_hint.phys_page & !PAGE_MASK) | (lin & PAGE_MASK))));
        }
        // A look-ahead: a page fault here must not show in CR2 (the
        // interpreter's own fetch raises it, if it ever gets there: the
        // slice may end or an interrupt come first).
        let saved_cr2 = self.state.cr2;
        let phys = self.translate_fetch(ctx, lin);
        self.state.cr2 = saved_cr2;
        Ok((lin, phys?))
    }

    /// Decode the instruction at offset `eip` of the current CS, located at
    /// physical `phys`, for translation. Only instructions wholly inside
    /// one cacheable page are offered; anything else (page-crossing, MMIO,
    /// beyond the CS limit, a fault) is `None` and ends the block before it.
    pub fn decode_for_translation(&mut self, ctx: &mut Ctx, eip: u32, phys: PhysAddr, mode: Mode) -> Option<Insn> {
        ctx.mem.page_slice(phys.page())?;
        let at = match self.cache.find(phys, mode) {
            Some(at) => at,
            None => {
                let lin = self.state.segs[SegReg::Cs as usize].base.wrapping_add(eip);
                let saved = self.state.eip;
                let saved_cr2 = self.state.cr2;
                self.state.eip = eip;
                let r = self.decode_at(ctx, lin, phys, mode);
                self.state.eip = saved;
                self.state.cr2 = saved_cr2;
                r.ok()?
            }
        };
        let insn = *self.cache.get(at);
        if phys.page_offset() + insn.len as u32 > PAGE_SIZE {
            return None;
        }
        Some(insn)
    }

    /// Execute one decoded instruction at the current EIP exactly as the
    /// interpreter does (EIP advance, retirement count, fault delivery).
    /// Translated code calls this for instructions it does not lower.
    #[inline]
    pub fn exec_one(&mut self, ctx: &mut Ctx, insn: &Insn) -> ExecResult {
        let mask = if self.state.code32() { u32::MAX } else { 0xFFFF };
        let seq = self.state.eip.wrapping_add(insn.len as u32) & mask;
        self.next_eip = seq;
        match (insn.exec)(self, ctx, insn) {
            Ok(()) => {
                self.state.eip = self.next_eip;
                self.instret += 1;
                if self.next_eip != seq
                    || ctx.mem.has_invalidated()
                    || self.stop
                    || self.state.halted
                    || self.shutdown
                    || self.state.int_shadow
                {
                    ExecResult::Exit
                } else {
                    ExecResult::Next
                }
            }
            Err(f) => {
                self.raise(ctx, f);
                self.accel_faults += 1;
                ExecResult::Fault
            }
        }
    }

    /// [`Cpu::exec_one`] for an x87 instruction whose one memory operand
    /// translated code found in plain RAM at `operand`, with every check
    /// an access makes passed (segment, paging, alignment; data
    /// breakpoints are off in translated code): the instruction reads or
    /// writes it there without translating its address again. (An
    /// instruction whose operand is not `operand`'s size takes the usual
    /// path.)
    pub fn exec_one_fpu_at(&mut self, ctx: &mut Ctx, insn: &Insn, operand: crate::mem::RamSpan) -> ExecResult {
        self.fpu_direct = Some(operand);
        let r = self.exec_one(ctx, insn);
        self.fpu_direct = None;
        r
    }

    /// Fetch, decode and execute the instruction at CS:EIP exactly as the
    /// interpreter does (the CS limit over its whole length, faults of the
    /// fetch delivered), for translated code standing in for an
    /// instruction it holds no decoded form of: one that crosses into the
    /// next page, whose bytes there may change or be mapped elsewhere.
    /// Callers run it only where [`Cpu::accel_eligible`] holds.
    pub fn exec_fetched(&mut self, ctx: &mut Ctx) -> ExecResult {
        let code32 = self.state.code32();
        let insn = match self.fetch(ctx, code32) {
            Ok(at) => *self.cache.get(at),
            Err(f) => {
                self.raise_translated(ctx, f);
                return ExecResult::Fault;
            }
        };
        let cs_limit = self.state.segs[SegReg::Cs as usize].limit;
        let last = self.state.eip.wrapping_add(insn.len as u32 - 1);
        if last > cs_limit || last < self.state.eip {
            self.raise_translated(ctx, Fault::gp(0));
            return ExecResult::Fault;
        }
        self.exec_one(ctx, &insn)
    }

    /// Deliver a fault raised by an access of translated code (whose EIP
    /// and registers were written back first), as the interpreter would.
    pub fn raise_translated(&mut self, ctx: &mut Ctx, f: Fault) {
        self.raise(ctx, f);
        self.accel_faults += 1;
    }

    /// Read `size` bytes at `seg:off` with every check the interpreter
    /// makes (segment, alignment, paging).
    pub fn read_operand(&mut self, ctx: &mut Ctx, seg: usize, off: u32, size: u32) -> Res<u32> {
        self.read_mem(ctx, seg, off, size)
    }

    /// Read `size` bytes at `seg:off` as the first half of a
    /// read-modify-write: the whole access is checked (and, within one
    /// page, translated) for writing before anything is read, the fault
    /// order of the interpreter's read-modify-write instructions.
    pub fn read_operand_for_write(&mut self, ctx: &mut Ctx, seg: usize, off: u32, size: u32) -> Res<u32> {
        let loc = self.mem_loc(ctx, seg, off, size, true)?;
        self.rd_loc(ctx, loc, size)
    }

    /// Write `size` bytes at `seg:off` with every check.
    pub fn write_operand(&mut self, ctx: &mut Ctx, seg: usize, off: u32, size: u32, v: u32) -> Res<()> {
        self.write_mem(ctx, seg, off, size, v)
    }

    /// A write as [`Cpu::write_operand`] makes it, except that nothing is
    /// written when a page it would touch holds decoded code: Ok(false)
    /// then, after every check that could fault (segment, alignment, the
    /// translation of both pages), so the instruction can be run again by
    /// the interpreter, whose write invalidates the translations.
    pub fn write_operand_data(&mut self, ctx: &mut Ctx, seg: usize, off: u32, size: u32, v: u32) -> Res<bool> {
        let lin = self.seg_check(seg, off, size, true)?;
        self.check_align(lin, size)?;
        let user = self.state.cpl == 3;
        let lo = self.translate_as(ctx, lin, super::mmu::Access::Write, user)?;
        let mut code = ctx.mem.holds_code(lo);
        if (lin & 0xFFF) + size > 0x1000 {
            let hi = self.translate_as(ctx, (lin | 0xFFF).wrapping_add(1), super::mmu::Access::Write, user)?;
            code |= ctx.mem.holds_code(hi);
        }
        if code {
            return Ok(false);
        }
        self.write_lin_as(ctx, lin, size, v, user)?;
        Ok(true)
    }

    /// The host address of the page holding linear `lin`, for translated
    /// code's direct accesses, after an access of the same kind succeeded
    /// there (so the translation is in the TLB). None for anything but RAM,
    /// and for writes to pages holding code.
    pub fn host_page_of(&mut self, ctx: &mut Ctx, lin: u32, write: bool) -> Option<*mut u8> {
        let acc = if write { super::mmu::Access::Write } else { super::mmu::Access::Read };
        let saved_cr2 = self.state.cr2;
        let pa = self.translate(ctx, lin, acc);
        self.state.cr2 = saved_cr2;
        ctx.mem.host_page(pa.ok()?.page(), write)
    }

    /// What host pointers of [`Cpu::host_page_of`] depend on besides the
    /// memory map: the TLB generation and CR0 (WP). They also depend on
    /// the privilege of the access (user or supervisor, from the CPL),
    /// which callers keep apart themselves.
    #[inline]
    pub fn translation_stamp(&self) -> (u32, u32) {
        (self.tlb.gen, self.state.cr0)
    }

    /// Evaluate condition code `cc` against the current flags (for
    /// translated code whose flags come from outside the block).
    #[inline]
    pub fn condition(&self, cc: u8) -> bool {
        self.state.flags.condition(cc)
    }
}

#[cfg(test)]
mod tests {
    use crate::cpu::state::{SegReg, CR0_PE, CR0_PG};
    use crate::cpu::Ctx;
    use crate::{Cpu, GuestMemory, NullBus};

    /// The translator's look-ahead at CS:EIP must not leave a page fault's
    /// address in CR2: the guest sees CR2 change only when the fetch itself
    /// faults (the slice may end, or an interrupt come, before it does).
    #[test]
    fn a_failed_fetch_look_ahead_keeps_cr2() {
        let mut mem = GuestMemory::new(1 << 20).expect("guest RAM");
        let mut cpu = Cpu::new();
        // Paging on with an empty page directory at 0: nothing is mapped.
        cpu.state.cr3 = 0;
        cpu.state.cr0 |= CR0_PE | CR0_PG;
        let cs = &mut cpu.state.segs[SegReg::Cs as usize];
        cs.base = 0;
        cs.limit = u32::MAX;
        cpu.state.eip = 0x1234_5000;
        cpu.state.cr2 = 0xC0DE;
        let mut bus = NullBus;
        let mut ctx = Ctx { mem: &mut mem, bus: &mut bus };
        assert!(cpu.fetch_address(&mut ctx).is_err(), "an unmapped page translates");
        assert_eq!(cpu.state.cr2, 0xC0DE);
    }
}
