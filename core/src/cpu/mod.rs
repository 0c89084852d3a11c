//! The x86 CPU: architectural state, the decoded-instruction cache, the
//! interpreter loop, memory access through segmentation and paging, and
//! exception/interrupt delivery.
//!
//! One instruction's life: [`Cpu::step`] translates CS:EIP to a physical
//! address, finds the instruction in the per-page decode cache (decoding it
//! with iced-x86 into [`decode::Insn`] on a miss), and calls the
//! instruction's semantics function. The function reads and writes operands
//! through the MMU helpers, which may return a [`Fault`]; EIP only advances
//! when the function succeeds, so a fault leaves the instruction restartable.

pub mod accel;
mod alu;
mod control;
pub mod cpuid;
mod data;
mod debug;
pub mod decode;
mod exec;
pub mod flags;
pub mod fpu;
mod mmu;
mod protected;
pub mod state;
mod system;

use crate::bus::Bus;
use crate::mem::{self, GuestMemory};
use decode::DecodeCache;
use state::CpuState;

pub use mmu::Tlb;

/// An exception raised while executing an instruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fault {
    pub vector: u8,
    pub error: Option<u32>,
}

impl Fault {
    pub const DE: Fault = Fault { vector: 0, error: None };
    pub const DB: Fault = Fault { vector: 1, error: None };
    pub const BR: Fault = Fault { vector: 5, error: None };
    pub const UD: Fault = Fault { vector: 6, error: None };
    pub const NM: Fault = Fault { vector: 7, error: None };
    pub const MF: Fault = Fault { vector: 16, error: None };

    pub fn gp(code: u32) -> Fault {
        Fault { vector: 13, error: Some(code) }
    }
    pub fn ss(code: u32) -> Fault {
        Fault { vector: 12, error: Some(code) }
    }
    pub fn np(code: u32) -> Fault {
        Fault { vector: 11, error: Some(code) }
    }
    pub fn ts(code: u32) -> Fault {
        Fault { vector: 10, error: Some(code) }
    }
    pub fn pf(code: u32) -> Fault {
        Fault { vector: 14, error: Some(code) }
    }
}

/// Result type of everything that can raise an exception.
pub type Res<T> = Result<T, Fault>;

/// What [`Cpu::step`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StepOutcome {
    /// An instruction retired or an interrupt/exception was delivered.
    Continue,
    /// The CPU is halted (HLT) with no interrupt to wake it.
    Halted,
    /// Triple fault or shutdown: the machine must reset.
    Shutdown,
}

/// Context threaded through every instruction: the memory and the bus.
pub struct Ctx<'a> {
    pub mem: &'a mut GuestMemory,
    pub bus: &'a mut dyn Bus,
}

/// How an interrupt or exception came about (it decides the pushed EIP,
/// privilege checks on gates, and the error-code EXT bit).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum IntSource {
    /// A fault or trap raised by the CPU.
    Exception,
    /// INT n, INT3, INTO (gate DPL checked against CPL).
    Software,
    /// A hardware interrupt from the bus.
    External,
}

#[derive(Clone, Copy, Default)]
struct FetchHint {
    /// Linear page base | 1 (0 = no hint).
    lin_page: u32,
    slot: u32,
    mode: u8,
    cpl: u8,
    tlb_gen: u32,
    cache_gen: u32,
    a20_mask: u32,
    /// Physical page base of `lin_page`.
    phys_page: u32,
}

/// One x86 CPU.
pub struct Cpu {
    pub state: CpuState,
    /// EIP of the instruction after the one executing.
    pub(crate) next_eip: u32,
    pub(crate) cache: DecodeCache,
    pub(crate) tlb: Tlb,
    /// Instructions retired since creation.
    pub instret: u64,
    /// Data breakpoints (B0-B3) hit by the current instruction.
    pub(crate) db_pending: u32,
    /// The bus asked for service after a port write: end `run` early.
    pub(crate) stop: bool,
    /// Translation of the code page last fetched from, valid while the
    /// TLB, the decode cache, the mode and the A20 gate are unchanged.
    fetch_hint: FetchHint,
    shutdown: bool,
    /// The translator, when one is installed.
    accel: Option<Box<dyn accel::Accelerator>>,
    /// The next instruction may start a translated block (after a branch,
    /// an interrupt or leaving translated code).
    block_start: bool,
    /// Faults raised by [`Cpu::exec_one`] (each is a step of its own, as
    /// in the interpreter's count).
    accel_faults: u64,
    /// The accelerator declined only the instruction at CS:EIP (it starts
    /// in one page and ends in the next): offer it the next one again.
    accel_retry: bool,
    /// See [`Cpu::accel_offer_at`] (`u64::MAX`: none).
    offer_at: u64,
    /// Where an accelerator's helpers leave a result for the generated
    /// code that called them (which reads it at a fixed offset, so its
    /// calls need no return register).
    pub accel_ret: u64,
    /// The `instret` value an accelerator's code must not pass in its
    /// current run (set by the accelerator; generated code reads it at a
    /// fixed offset).
    pub accel_limit: u64,
    /// The memory operand of the x87 instruction running now, when
    /// translated code found it in plain RAM with every check passed
    /// ([`Cpu::exec_one_fpu_at`]).
    fpu_direct: Option<crate::mem::RamSpan>,
    /// CPUID.1:EDX of the model (`cpuid::FEATURES_EDX` unless set with
    /// [`Cpu::set_model`] or [`Cpu::set_features`]).
    pub(crate) features: u32,
    /// CPUID.1:EAX of the model.
    pub(crate) signature: u32,
    /// CPUID.80000001h:EDX of the model (0: no extended leaves).
    pub(crate) ext_features: u32,
}

impl Default for Cpu {
    fn default() -> Self {
        Cpu::new()
    }
}

impl std::fmt::Debug for Cpu {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cpu").field("state", &self.state).field("instret", &self.instret).finish()
    }
}

impl Cpu {
    /// A CPU in its RESET state.
    pub fn new() -> Cpu {
        Cpu {
            state: CpuState::reset(),
            next_eip: 0,
            cache: DecodeCache::new(),
            tlb: Tlb::new(),
            instret: 0,
            db_pending: 0,
            stop: false,
            fetch_hint: FetchHint::default(),
            shutdown: false,
            accel: None,
            block_start: true,
            accel_faults: 0,
            accel_retry: false,
            offer_at: u64::MAX,
            accel_ret: 0,
            accel_limit: 0,
            fpu_direct: None,
            features: cpuid::FEATURES_EDX,
            signature: cpuid::SIGNATURE,
            ext_features: 0,
        }
    }

    /// Become processor `model` (its CPUID signature, also in EDX after
    /// RESET, and its features).
    pub fn set_model(&mut self, model: cpuid::CpuModel) {
        self.signature = model.signature();
        self.features = model.features();
        self.ext_features = model.ext_features();
        self.state.regs[state::EDX] = self.signature;
    }

    /// Choose the model's feature set (CPUID.1:EDX): what CPUID reports,
    /// and which instruction sets run (SSE's instructions are #UD without
    /// `cpuid::FEAT_SSE`).
    pub fn set_features(&mut self, edx: u32) {
        self.features = edx;
    }

    /// The time-stamp counter: one tick per retired instruction, plus the
    /// offset WRMSR set (`state.tsc` holds that offset).
    pub fn tsc(&self) -> u64 {
        self.state.tsc.wrapping_add(self.instret)
    }

    /// Back to the RESET state (INIT keeps caches; RESET flushes them).
    pub fn reset(&mut self) {
        self.state = CpuState::reset();
        self.state.regs[state::EDX] = self.signature;
        // RESET clears the TSC.
        self.state.tsc = 0u64.wrapping_sub(self.instret);
        self.cache.flush();
        self.tlb.flush_all();
        if let Some(a) = self.accel.as_mut() {
            a.flush();
        }
        self.shutdown = false;
        self.block_start = true;
    }

    /// Drop every decoded instruction and TLB entry (after the memory map
    /// changed under the CPU).
    pub fn flush_caches(&mut self) {
        self.cache.flush();
        self.tlb.flush_all();
        if let Some(a) = self.accel.as_mut() {
            a.flush();
        }
        self.block_start = true;
    }

    /// Execute one instruction, or deliver one pending interrupt.
    pub fn step(&mut self, mem: &mut GuestMemory, bus: &mut dyn Bus) -> StepOutcome {
        let mut ctx = Ctx { mem, bus };
        self.step_ctx(&mut ctx)
    }

    /// Run until `max` instructions retired, HLT with nothing pending, or
    /// shutdown. Returns the outcome and the number of steps taken.
    pub fn run(&mut self, mem: &mut GuestMemory, bus: &mut dyn Bus, max: u64) -> (StepOutcome, u64) {
        let mut ctx = Ctx { mem, bus };
        let mut n = 0;
        while n < max {
            if self.block_start && self.accel.is_some() {
                if let Some(out) = self.run_accel(&mut ctx, max - n) {
                    n += out.1;
                    match out.0 {
                        StepOutcome::Continue => {}
                        other => return (other, n),
                    }
                    if self.stop {
                        self.stop = false;
                        return (StepOutcome::Continue, n);
                    }
                    continue;
                }
            }
            n += 1;
            match self.step_ctx(&mut ctx) {
                StepOutcome::Continue => {}
                other => return (other, n),
            }
            if self.accel_retry || self.state.eip as u64 == self.offer_at {
                self.accel_retry = false;
                self.block_start = true;
            }
            if self.stop {
                self.stop = false;
                return (StepOutcome::Continue, n);
            }
        }
        (StepOutcome::Continue, n)
    }

    /// Let the accelerator run translated code at CS:EIP. None when it
    /// did not (the interpreter steps instead); otherwise the outcome and
    /// the number of instructions it retired (at least 1 for progress).
    #[inline(never)]
    fn run_accel(&mut self, ctx: &mut Ctx, budget: u64) -> Option<(StepOutcome, u64)> {
        self.block_start = false;
        self.offer_at = u64::MAX;
        if ctx.mem.has_invalidated() {
            self.process_invalidations(ctx);
        }
        if !self.accel_eligible() {
            return None;
        }
        if self.state.flags.bits & flags::IF != 0 && ctx.bus.interrupt_pending() {
            return None;
        }
        let mut a = self.accel.take()?;
        let before = self.instret + self.accel_faults;
        let ran = a.execute(self, ctx, budget);
        self.accel = Some(a);
        if !ran {
            return None;
        }
        // After translated code wrote code (its translations are dropped
        // now), the interpreter runs on to the next control transfer
        // rather than have a fresh translation made at every instruction
        // of code that keeps writing its own page.
        self.block_start = !ctx.mem.has_invalidated();
        // Steps as the interpreter counts them: retired instructions plus
        // delivered faults.
        Some((self.outcome(), (self.instret + self.accel_faults - before).max(1)))
    }

    /// Drop decoded instructions and translations of written code pages.
    fn process_invalidations(&mut self, ctx: &mut Ctx) {
        for page in ctx.mem.take_invalidated() {
            self.cache.invalidate_page(page);
            if let Some(a) = self.accel.as_mut() {
                // Translations never hold page-crossing instructions, so
                // only the written page itself is affected.
                a.invalidate_page(page);
            }
        }
    }

    #[inline(always)]
    fn step_ctx(&mut self, ctx: &mut Ctx) -> StepOutcome {
        if self.shutdown {
            return StepOutcome::Shutdown;
        }
        if ctx.mem.has_invalidated() {
            self.process_invalidations(ctx);
        }
        let if_set = self.state.flags.bits & flags::IF != 0;
        if if_set && !self.state.int_shadow && ctx.bus.interrupt_pending() {
            if let Some(vector) = ctx.bus.acknowledge_interrupt() {
                self.state.halted = false;
                let eip = self.state.eip;
                self.deliver(ctx, vector, None, eip, IntSource::External);
                self.block_start = true;
                return self.outcome();
            }
        }
        self.state.int_shadow = false;
        if self.state.halted {
            return StepOutcome::Halted;
        }
        let code32 = self.state.code32();
        let insn = match self.fetch(ctx, code32) {
            Ok(at) => *self.cache.get(at),
            Err(f) => {
                self.raise(ctx, f);
                return self.outcome();
            }
        };
        // The whole instruction must lie within CS (checked here, not at
        // decode time, because cached code may run under another limit).
        let cs_limit = self.state.segs[state::SegReg::Cs as usize].limit;
        let last = self.state.eip.wrapping_add(insn.len as u32 - 1);
        if last > cs_limit || last < self.state.eip {
            self.raise(ctx, Fault::gp(0));
            return self.outcome();
        }
        if self.state.dr[7] & 0xFF != 0 {
            let lin = self.state.segs[state::SegReg::Cs as usize].base.wrapping_add(self.state.eip);
            let hits = self.check_exec_breakpoint(lin);
            if hits != 0 {
                self.state.dr[6] = (self.state.dr[6] & !0xF) | hits;
                self.raise(ctx, Fault::DB);
                return self.outcome();
            }
            self.db_pending = 0;
        }
        let rf = self.state.flags.bits & flags::RF != 0;
        let trap = self.state.flags.bits & flags::TF != 0;
        let mask = if code32 { u32::MAX } else { 0xFFFF };
        self.next_eip = self.state.eip.wrapping_add(insn.len as u32) & mask;
        let seq = self.next_eip;
        match (insn.exec)(self, ctx, &insn) {
            Ok(()) => {
                self.block_start |= self.next_eip != seq;
                self.state.eip = self.next_eip;
                self.instret += 1;
                if rf {
                    // RF lasts for one instruction (SDM 3, 17.3.1.1).
                    self.state.flags.bits &= !flags::RF;
                }
                let data_hits = std::mem::take(&mut self.db_pending);
                if trap || data_hits != 0 {
                    // Single-step and data-breakpoint traps after the
                    // instruction, reported together (SDM 3, 17.3.1.2/4).
                    if data_hits != 0 {
                        self.state.dr[6] = (self.state.dr[6] & !0xF) | data_hits;
                    }
                    if trap {
                        self.state.dr[6] |= debug::DR6_BS;
                    }
                    let eip = self.state.eip;
                    self.deliver(ctx, 1, None, eip, IntSource::Exception);
                }
            }
            Err(f) => {
                self.raise(ctx, f);
                self.block_start = true;
            }
        }
        self.outcome()
    }

    fn outcome(&self) -> StepOutcome {
        if self.shutdown {
            StepOutcome::Shutdown
        } else if self.state.halted {
            StepOutcome::Halted
        } else {
            StepOutcome::Continue
        }
    }

    /// Deliver a fault raised by the current instruction: EIP still points
    /// at it, so the pushed return address restarts it.
    fn raise(&mut self, ctx: &mut Ctx, f: Fault) {
        if f.vector == 14 {
            // CR2 was set by the MMU.
        }
        let eip = self.state.eip;
        self.deliver_with_error(ctx, f.vector, f.error, eip, IntSource::Exception);
    }

    /// Deliver an interrupt or exception, escalating to #DF and shutdown
    /// when delivery itself faults (SDM 3, 6.15 table 6-5).
    pub(crate) fn deliver(&mut self, ctx: &mut Ctx, vector: u8, error: Option<u32>, ret_eip: u32, src: IntSource) {
        self.deliver_with_error(ctx, vector, error, ret_eip, src);
    }

    fn deliver_with_error(&mut self, ctx: &mut Ctx, vector: u8, error: Option<u32>, ret_eip: u32, src: IntSource) {
        let mut vector = vector;
        let mut error = error;
        let mut src = src;
        // Each failed attempt escalates (contributory/page-fault pairs to
        // #DF, a fault delivering #DF to shutdown), so a few rounds suffice;
        // the bound is a safety net.
        for _ in 0..8 {
            let r = if self.state.protected() {
                self.deliver_protected(ctx, vector, error, ret_eip, src)
            } else {
                self.deliver_real(ctx, vector, ret_eip)
            };
            match r {
                Ok(()) => {
                    self.state.halted = false;
                    return;
                }
                Err(f) => {
                    let contributory = |v: u8| matches!(v, 0 | 10 | 11 | 12 | 13);
                    if vector == 8 {
                        self.shutdown = true;
                        return;
                    }
                    let df = (contributory(vector) && contributory(f.vector))
                        || (vector == 14 && (contributory(f.vector) || f.vector == 14));
                    if df {
                        vector = 8;
                        error = Some(0);
                    } else {
                        vector = f.vector;
                        error = f.error;
                    }
                    src = IntSource::Exception;
                }
            }
        }
        self.shutdown = true;
    }

    /// Real-mode delivery through the IVT (SDM 3, 20.1.4).
    fn deliver_real(&mut self, ctx: &mut Ctx, vector: u8, ret_eip: u32) -> Res<()> {
        let entry = vector as u32 * 4;
        if entry + 3 > self.state.idtr.limit {
            return Err(Fault::gp(vector as u32 * 8 + 2));
        }
        let fl = self.state.eflags();
        let cs = self.state.seg(state::SegReg::Cs).selector;
        let sp = self.state.regs[state::ESP];
        self.push16(ctx, fl as u16)?;
        self.push16(ctx, cs).inspect_err(|_| self.state.regs[state::ESP] = sp)?;
        self.push16(ctx, ret_eip as u16).inspect_err(|_| self.state.regs[state::ESP] = sp)?;
        let base = self.state.idtr.base.wrapping_add(entry);
        let ip = self.read_lin_sys(ctx, base, 2)?;
        let sel = self.read_lin_sys(ctx, base.wrapping_add(2), 2)?;
        self.state.flags.set(flags::IF, false);
        self.state.flags.set(flags::TF, false);
        self.state.flags.set(flags::AC, false);
        self.state.load_seg_real(state::SegReg::Cs, sel as u16);
        self.state.eip = ip;
        Ok(())
    }

    /// The decoded instruction at CS:EIP, as a decode-cache location.
    #[inline(always)]
    fn fetch(&mut self, ctx: &mut Ctx, code32: bool) -> Res<(u32, u32)> {
        let cs = &self.state.segs[state::SegReg::Cs as usize];
        let eip = self.state.eip;
        if eip > cs.limit {
            return Err(Fault::gp(0));
        }
        let lin = cs.base.wrapping_add(eip);
        let mode = code32 as decode::Mode;
        let h = &self.fetch_hint;
        if h.lin_page == (lin & !mem::PAGE_MASK) | 1
            && h.mode == mode
            && h.cpl == self.state.cpl
            && h.tlb_gen == self.tlb.gen
            && h.cache_gen == self.cache.gen
            && h.a20_mask == ctx.mem.a20_mask()
        {
            if let Some(at) = self.cache.find_in_slot(h.slot, lin & mem::PAGE_MASK) {
                return Ok(at);
            }
        }
        let phys = self.translate_fetch(ctx, lin)?;
        let at = match self.cache.find(phys, mode) {
            Some(at) => at,
            None => self.decode_at(ctx, lin, phys, mode)?,
        };
        if at.0 != u32::MAX {
            self.fetch_hint = FetchHint {
                lin_page: (lin & !mem::PAGE_MASK) | 1,
                slot: at.0,
                mode,
                cpl: self.state.cpl,
                tlb_gen: self.tlb.gen,
                cache_gen: self.cache.gen,
                a20_mask: ctx.mem.a20_mask(),
                phys_page: phys.0 & !mem::PAGE_MASK,
            };
        }
        Ok(at)
    }
}

#[cfg(test)]
mod tests;
