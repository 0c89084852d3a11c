//! The functions translated code calls. They are the JIT-entry boundary:
//! raw pointers from generated code become references here.

use ferrite_core::cpu::accel::ExecResult;
use ferrite_core::cpu::decode::Insn;
use ferrite_core::cpu::Ctx;
use ferrite_core::Cpu;

/// Run one instruction with the interpreter's semantics. Result
/// (`Cpu::accel_ret`, as for every helper): 0 to go on with the next
/// instruction, 1 when translated code must leave (control transfer, code
/// written, halt, port service), [`FAULTED`] when it faulted (translated
/// code must then return to the run loop, which counts the fault as a
/// step of the slice).
pub(crate) extern "C" fn step(cpu: *mut Cpu, ctx: *mut Ctx, insn: *const Insn) {
    // SAFETY: generated code passes the `Cpu` and `Ctx` it was entered with
    // (exclusive references held by `Jit::execute` for the whole call) and a
    // pointer into the running block's own decoded instructions, which the
    // block owns and which outlive the call.
    let (cpu, ctx, insn) = unsafe { (&mut *cpu, &mut *ctx, &*insn) };
    cpu.accel_ret = result(cpu.exec_one(ctx, insn));
}

/// `step`'s result for what [`Cpu::exec_one`] said.
fn result(r: ExecResult) -> u64 {
    match r {
        ExecResult::Next => 0,
        ExecResult::Exit => 1,
        ExecResult::Fault => FAULTED,
    }
}

/// [`step`] for an x87 instruction whose memory operand (`nw`: its size
/// in bytes, bit 8 set when it is written) is at linear address `lin`;
/// `host` is its host address when translated code found it in the fast
/// TLB, else null: the instruction then makes every check itself, and the
/// fast TLB gets the page when that went well.
pub(crate) extern "C" fn step_fpu(
    cpu: *mut Cpu,
    shared: *mut crate::Shared,
    insn: *const Insn,
    host: *const u8,
    lin: u32,
    nw: u32,
) {
    // SAFETY: as in `step` and `mem_read`; `host` is only compared, never
    // dereferenced here (`GuestMemory::ram_span` turns it into a checked
    // range of guest RAM).
    let (cpu, sh, insn) = unsafe { (&mut *cpu, &mut *shared, &*insn) };
    let (ctx, tlb) = ctx_tlb(cpu, sh);
    let (n, write) = (nw & 0xFF, nw & 0x100 != 0);
    let span = if host.is_null() { None } else { ctx.mem.ram_span(host, n as usize) };
    let r = match span {
        Some(s) => cpu.exec_one_fpu_at(ctx, insn, s),
        None => {
            let r = cpu.exec_one(ctx, insn);
            if r != ExecResult::Fault {
                fill_after(cpu, ctx, tlb, lin, n, write);
            }
            r
        }
    };
    cpu.accel_ret = result(r);
}

/// Run the last instruction of a block (one translated code leaves after)
/// with the interpreter's semantics, then look up where translated code
/// goes next as [`lookup`] does, in the same call. Result: [`FAULTED`]
/// when it faulted, else the code of the next block to tail-call, 0 for
/// the run loop (code addresses are aligned, never [`FAULTED`]).
pub(crate) extern "C" fn step_exit(cpu: *mut Cpu, ctx: *mut Ctx, insn: *const Insn, shared: *mut crate::Shared) {
    // SAFETY: as in `step` and `lookup`.
    let (cpu, ctx, insn, sh) = unsafe { (&mut *cpu, &mut *ctx, &*insn, &mut *shared) };
    cpu.accel_ret = match cpu.exec_one(ctx, insn) {
        ExecResult::Fault => FAULTED,
        ExecResult::Next | ExecResult::Exit => find(cpu, ctx, sh),
    };
}

/// The whole of the code translated for an instruction that crosses into
/// the next page (`Lower::stub`): fetch, decode and run the instruction
/// at CS:EIP with the interpreter's semantics, then look up where
/// translated code goes next. Result as [`step_exit`]'s.
pub(crate) extern "C" fn step_fetch_exit(cpu: *mut Cpu, ctx: *mut Ctx, shared: *mut crate::Shared) {
    // SAFETY: as in `step` and `lookup`.
    let (cpu, ctx, sh) = unsafe { (&mut *cpu, &mut *ctx, &mut *shared) };
    cpu.accel_ret = match cpu.exec_fetched(ctx) {
        ExecResult::Fault => FAULTED,
        ExecResult::Next | ExecResult::Exit => find(cpu, ctx, sh),
    };
}

/// `step`'s and `step_fill`'s result for an instruction that faulted.
pub(crate) const FAULTED: u64 = 2;

/// `step_fill`'s flag (in `what`): fill the fast TLB for writing.
pub(crate) const FILL_FOR_WRITE: u32 = 1 << 16;

/// The slow path of an inline read whose instruction must not run twice
/// (it may still fault after the read): run the whole instruction with the
/// interpreter's semantics (every check, the fault delivered), then, when
/// it retired, fill the fast TLB for reading (or, with [`FILL_FOR_WRITE`],
/// writing) its operand at `seg:off` (`what` as [`seg_size_arg`] packs
/// it). Translated code leaves afterwards. Result: [`FAULTED`] when the
/// instruction faulted, else 0.
pub(crate) extern "C" fn step_fill(cpu: *mut Cpu, shared: *mut crate::Shared, insn: *const Insn, what: u32, off: u32) {
    // SAFETY: as in `step` and `mem_read`.
    let (cpu, sh, insn) = unsafe { (&mut *cpu, &mut *shared, &*insn) };
    let (ctx, tlb) = ctx_tlb(cpu, sh);
    let before = cpu.instret;
    cpu.accel_ret = if cpu.exec_one(ctx, insn) == ExecResult::Fault { FAULTED } else { 0 };
    let (seg, size) = seg_size(what);
    if cpu.instret != before {
        let lin = cpu.state.segs[seg].base.wrapping_add(off);
        fill_after(cpu, ctx, tlb, lin, size, what & FILL_FOR_WRITE != 0);
    }
}

/// After an instruction run by a helper accessed `size` bytes at `lin`
/// without a fault: the fast TLB gets the page, when the operand lies in
/// one page and the instruction wrote no code (translated code leaves
/// then anyway).
fn fill_after(cpu: &mut Cpu, ctx: &mut Ctx, tlb: &mut FastTlb, lin: u32, size: u32, write: bool) {
    if (lin & 0xFFF) + size <= 0x1000 && !ctx.mem.has_invalidated() {
        fill(cpu, ctx, tlb, lin, write);
    }
}

/// `mem_read`'s flag (in `what`) for the read of a read-modify-write.
pub(crate) const READ_FOR_WRITE: u32 = 1 << 16;

/// The segment and the access size packed by [`seg_size_arg`].
fn seg_size(what: u32) -> (usize, u32) {
    ((what & 0xFF) as usize % 6, (what >> 8) & 0xFF)
}

/// Segment register `seg` and access size `size` (bytes) as the slow-path
/// helpers take them (in one argument, so every helper takes its arguments
/// in registers).
pub(crate) fn seg_size_arg(seg: u8, size: u32) -> u32 {
    seg as u32 | size << 8
}

/// Where translated code goes after leaving a block with EIP set: the code
/// of the block at the new CS:EIP when it was run recently (the dispatcher's
/// direct-mapped table) and nothing needs the run loop first; 0 otherwise
/// (translated code then returns to the run loop). The target's own entry
/// checks (budget, CS limit) still apply.
pub(crate) extern "C" fn lookup(cpu: *mut Cpu, ctx: *mut Ctx, shared: *mut crate::Shared) {
    // SAFETY: as in `step`; `shared` is the translator's own boxed table,
    // which lives as long as the translator whose code calls this, and
    // which only this thread touches (the dispatcher is below us on the
    // stack, in the middle of running translated code).
    let (cpu, ctx, sh) = unsafe { (&mut *cpu, &mut *ctx, &mut *shared) };
    cpu.accel_ret = find(cpu, ctx, sh);
}

fn find(cpu: &mut Cpu, ctx: &mut Ctx, sh: &mut crate::Shared) -> u64 {
    if !cpu.may_continue_translated(ctx) {
        return 0;
    }
    let mode = cpu.mode_key();
    let stamp_holds = crate::tlb_stamp(cpu, ctx) == sh.stamp;
    if stamp_holds {
        // What translated code's own probe missed may be in the other way
        // of the table. (The target's entry checks the CS limit.)
        let cs = cpu.state.segs[ferrite_core::cpu::state::SegReg::Cs as usize].base;
        if let Some(f) = sh.get_lin(cs.wrapping_add(cpu.state.eip), mode) {
            return f;
        }
    }
    let Ok((lin, phys)) = cpu.fetch_address(ctx) else { return 0 };
    let key = crate::key_of(phys, mode);
    let s = sh.fast[crate::fast_slot(key)];
    if s.key != key || s.block().is_none() {
        return 0;
    }
    if !stamp_holds {
        return 0;
    }
    // Next time translated code finds it without this call.
    sh.set_lin(lin, crate::LinSlot { tag: crate::lin_tag(lin, mode), func: s.func });
    s.func
}

/// Condition code `cc` from the flags record in `CpuState`.
pub(crate) extern "C" fn condition(cpu: *mut Cpu, cc: u32) {
    // SAFETY: as in `step`.
    let cpu = unsafe { &mut *cpu };
    cpu.accel_ret = cpu.condition(cc as u8) as u64;
}

/// Make the flags in `which` non-lazy (before an INC/DEC record that keeps
/// CF).
pub(crate) extern "C" fn materialize(cpu: *mut Cpu, which: u32) {
    // SAFETY: as in `step`.
    let cpu = unsafe { &mut *cpu };
    cpu.state.flags.materialize(which);
}

/// Entries of [`FastTlb`] (direct-mapped by linear page number). Many,
/// so that the few pages a loop touches rarely collide (with 256, gzip and
/// the kernel's pipe copies took millions of slow-path refills); emptying
/// the table only touches the entries filled since.
pub(crate) const FAST_TLB_SIZE: usize = 4096;

/// One linear page's host address for translated code's inline accesses.
/// `rtag`/`wtag` are the linear page base when reads/writes may go
/// straight to `addend + lin`, [`NO_TAG`] otherwise (no page base has bit 0
/// set, so it never matches).
#[repr(C)]
#[derive(Clone, Copy)]
pub(crate) struct FastEntry {
    pub rtag: u32,
    pub wtag: u32,
    pub addend: u64,
}

pub(crate) const NO_TAG: u32 = 1;

impl FastEntry {
    pub(crate) const EMPTY: FastEntry = FastEntry { rtag: NO_TAG, wtag: NO_TAG, addend: 0 };
}

/// The JIT's own TLB of host pointers, filled by the slow-path helpers and
/// dropped whenever the CPU's TLB, CPL, CR0 or the memory map change.
/// Translated code indexes `entries` (at offset 0) directly.
#[repr(C)]
pub(crate) struct FastTlb {
    pub entries: [FastEntry; FAST_TLB_SIZE],
    /// Indices of the entries filled since the last `clear`.
    used: Vec<u16>,
}

const _: () = assert!(FAST_TLB_SIZE <= 1 << 16);

impl FastTlb {
    pub(crate) fn new() -> FastTlb {
        FastTlb { entries: [FastEntry::EMPTY; FAST_TLB_SIZE], used: Vec::with_capacity(FAST_TLB_SIZE) }
    }

    /// Empty every entry.
    pub(crate) fn clear(&mut self) {
        for i in self.used.drain(..) {
            self.entries[i as usize] = FastEntry::EMPTY;
        }
    }
}

fn fill(cpu: &mut Cpu, ctx: &mut Ctx, tlb: &mut FastTlb, lin: u32, write: bool) {
    let page = lin & !0xFFF;
    let i = (lin >> 12) as usize % FAST_TLB_SIZE;
    if let Some(host) = cpu.host_page_of(ctx, lin, write) {
        let e = &mut tlb.entries[i];
        if e.rtag == NO_TAG && e.wtag == NO_TAG {
            tlb.used.push(i as u16);
        }
        let addend = (host as u64).wrapping_sub(page as u64);
        if e.addend != addend || e.rtag != page {
            *e = FastEntry { rtag: NO_TAG, wtag: NO_TAG, addend };
        }
        e.rtag = page;
        if write {
            e.wtag = page;
        }
    }
}

/// The slow path of an inline read: every check, the fault delivered when
/// one is raised (bit 32 of the result set), the fast TLB filled. `what`
/// is [`seg_size_arg`]'s, with [`READ_FOR_WRITE`] for the read of a
/// read-modify-write (checked for writing first, the TLB filled for
/// writing). Result: the value read.
pub(crate) extern "C" fn mem_read(cpu: *mut Cpu, shared: *mut crate::Shared, what: u32, off: u32) {
    // SAFETY: as in `step`; `shared` is the translator's own, which lives as
    // long as the translator whose code calls this.
    let (cpu, sh) = unsafe { (&mut *cpu, &mut *shared) };
    let (ctx, tlb) = ctx_tlb(cpu, sh);
    let (seg, size) = seg_size(what);
    let write = what & READ_FOR_WRITE != 0;
    let got =
        if write { cpu.read_operand_for_write(ctx, seg, off, size) } else { cpu.read_operand(ctx, seg, off, size) };
    cpu.accel_ret = match got {
        Ok(v) => {
            let lin = cpu.state.segs[seg].base.wrapping_add(off);
            fill_after(cpu, ctx, tlb, lin, size, write);
            v as u64
        }
        Err(f) => {
            cpu.raise_translated(ctx, f);
            1 << 32
        }
    };
}

/// The `Ctx` of the current run of translated code and the fast TLB of the
/// current privilege (the one the calling code was compiled with: its
/// mode key fixes the CPL).
fn ctx_tlb<'a>(cpu: &Cpu, sh: &'a mut crate::Shared) -> (&'a mut Ctx<'a>, &'a mut FastTlb) {
    // SAFETY: `ctx` is the live `Ctx` of the `Jit::execute` that runs the
    // calling code (set before it enters translated code).
    let ctx = unsafe { &mut *(sh.ctx as *mut Ctx) };
    (ctx, &mut sh.ftlb[(cpu.state.cpl == 3) as usize])
}

/// The slow path of an inline write: 0 done, else leave (1: a fault was
/// delivered, or the write would have touched a page holding code and the
/// interpreter ran the whole instruction `insn` instead, from the precise
/// state before it, so that its write invalidates the translations and
/// translated code never runs on past a store to code).
pub(crate) extern "C" fn mem_write(
    cpu: *mut Cpu,
    shared: *mut crate::Shared,
    what: u32,
    off: u32,
    value: u32,
    insn: *const Insn,
) {
    // SAFETY: as in `mem_read` and `step`.
    let (cpu, sh, insn) = unsafe { (&mut *cpu, &mut *shared, &*insn) };
    let (ctx, tlb) = ctx_tlb(cpu, sh);
    let (seg, size) = seg_size(what);
    cpu.accel_ret = match cpu.write_operand_data(ctx, seg, off, size, value) {
        Ok(true) => {
            // (An MMIO write may have had a device write code: the run
            // loop drops those translations at the latest when the budget
            // of this run of translated code is spent.)
            let lin = cpu.state.segs[seg].base.wrapping_add(off);
            fill_after(cpu, ctx, tlb, lin, size, true);
            0
        }
        Ok(false) => {
            cpu.exec_one(ctx, insn);
            1
        }
        Err(f) => {
            cpu.raise_translated(ctx, f);
            1
        }
    };
}

/// The calling convention translated code calls the helpers with, through
/// the addresses [`entry`] gives. On x86-64 that is Cranelift's
/// `preserve_all`: a call clobbers no register, so values stay in
/// registers across slow paths (and blocks rarely need callee-saved
/// registers, whose saving and restoring every block entry and exit paid
/// for). Such calls return nothing, so every helper leaves its result in
/// `Cpu::accel_ret`. The helpers themselves are ordinary `extern "C"`
/// functions; a small trampoline saves the general registers the C
/// convention lets them clobber. It does not save the vector registers:
/// translated code that holds vector values (SSE lowered to vector
/// operations) calls through `entry_vec`, whose trampolines save them
/// too (`Jit` checks that other functions hold none). Elsewhere, the
/// plain C convention.
#[cfg(target_arch = "x86_64")]
pub(crate) const CALL_CONV: cranelift_codegen::isa::CallConv = cranelift_codegen::isa::CallConv::PreserveAll;
#[cfg(not(target_arch = "x86_64"))]
pub(crate) const CALL_CONV: cranelift_codegen::isa::CallConv = cranelift_codegen::isa::CallConv::SystemV;

/// A helper translated code calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Helper {
    Step,
    StepFpu,
    StepExit,
    StepFetchExit,
    StepFill,
    Lookup,
    Condition,
    Materialize,
    MemRead,
    MemWrite,
}

/// Defines `entry`: the address translated code calls for each helper,
/// with [`CALL_CONV`].
macro_rules! entries {
    ($($variant:ident => $f:ident),* $(,)?) => {
        /// The address to call helper `h` at, with [`CALL_CONV`].
        pub(crate) fn entry(h: Helper) -> i64 {
            match h {
                $(Helper::$variant => trampoline::$f as *const () as i64,)*
            }
        }

        /// `entry` for functions that hold vector values (SSE lowered to
        /// vector operations, `lower::simd`): on x86-64 a trampoline that
        /// also saves XMM0-15, which `preserve_all` callers keep values
        /// in across the call.
        pub(crate) fn entry_vec(h: Helper) -> i64 {
            match h {
                $(Helper::$variant => trampoline_vec::$f as *const () as i64,)*
            }
        }

        #[cfg(target_arch = "x86_64")]
        mod trampoline_vec {
            $(
            /// As `trampoline`'s, and XMM0-15 saved around the call (the
            /// C convention lets the helper clobber all of them).
            // SAFETY: as in `trampoline`: the body saves and restores
            // registers around an `extern "C"` call with the arguments it
            // was given; after the general registers (RSP 8 bytes off a
            // multiple of 16) 264 bytes hold the vector registers and
            // align the stack for the call.
            #[unsafe(naked)]
            pub(crate) extern "C" fn $f() {
                core::arch::naked_asm!(
                    "push rbp",
                    "mov rbp, rsp",
                    "push rax",
                    "push rdi",
                    "push rsi",
                    "push rdx",
                    "push rcx",
                    "push r8",
                    "push r9",
                    "push r10",
                    "push r11",
                    "sub rsp, 264",
                    "movdqu [rsp], xmm0",
                    "movdqu [rsp + 16], xmm1",
                    "movdqu [rsp + 32], xmm2",
                    "movdqu [rsp + 48], xmm3",
                    "movdqu [rsp + 64], xmm4",
                    "movdqu [rsp + 80], xmm5",
                    "movdqu [rsp + 96], xmm6",
                    "movdqu [rsp + 112], xmm7",
                    "movdqu [rsp + 128], xmm8",
                    "movdqu [rsp + 144], xmm9",
                    "movdqu [rsp + 160], xmm10",
                    "movdqu [rsp + 176], xmm11",
                    "movdqu [rsp + 192], xmm12",
                    "movdqu [rsp + 208], xmm13",
                    "movdqu [rsp + 224], xmm14",
                    "movdqu [rsp + 240], xmm15",
                    "call {f}",
                    "movdqu xmm0, [rsp]",
                    "movdqu xmm1, [rsp + 16]",
                    "movdqu xmm2, [rsp + 32]",
                    "movdqu xmm3, [rsp + 48]",
                    "movdqu xmm4, [rsp + 64]",
                    "movdqu xmm5, [rsp + 80]",
                    "movdqu xmm6, [rsp + 96]",
                    "movdqu xmm7, [rsp + 112]",
                    "movdqu xmm8, [rsp + 128]",
                    "movdqu xmm9, [rsp + 144]",
                    "movdqu xmm10, [rsp + 160]",
                    "movdqu xmm11, [rsp + 176]",
                    "movdqu xmm12, [rsp + 192]",
                    "movdqu xmm13, [rsp + 208]",
                    "movdqu xmm14, [rsp + 224]",
                    "movdqu xmm15, [rsp + 240]",
                    "add rsp, 264",
                    "pop r11",
                    "pop r10",
                    "pop r9",
                    "pop r8",
                    "pop rcx",
                    "pop rdx",
                    "pop rsi",
                    "pop rdi",
                    "pop rax",
                    "pop rbp",
                    "ret",
                    f = sym super::$f,
                )
            }
            )*
        }

        #[cfg(not(target_arch = "x86_64"))]
        mod trampoline_vec {
            pub(crate) use super::{$($f),*};
        }

        #[cfg(target_arch = "x86_64")]
        mod trampoline {
            $(
            /// `preserve_all` entry of the helper of the same name: saves
            /// the registers the C convention lets the helper clobber
            /// (RBP framing them for unwinders and profilers, and eight
            /// more bytes keeping the stack 16-byte aligned at the call)
            /// and passes the arguments on untouched in their registers
            /// (every helper takes at most six, none on the stack).
            // SAFETY: the body only saves and restores registers around a
            // call of an `extern "C"` function with the arguments it was
            // given, under the C convention's stack alignment.
            #[unsafe(naked)]
            pub(crate) extern "C" fn $f() {
                core::arch::naked_asm!(
                    "push rbp",
                    "mov rbp, rsp",
                    "push rax",
                    "push rdi",
                    "push rsi",
                    "push rdx",
                    "push rcx",
                    "push r8",
                    "push r9",
                    "push r10",
                    "push r11",
                    "sub rsp, 8",
                    "call {f}",
                    "add rsp, 8",
                    "pop r11",
                    "pop r10",
                    "pop r9",
                    "pop r8",
                    "pop rcx",
                    "pop rdx",
                    "pop rsi",
                    "pop rdi",
                    "pop rax",
                    "pop rbp",
                    "ret",
                    f = sym super::$f,
                )
            }
            )*
        }

        #[cfg(not(target_arch = "x86_64"))]
        mod trampoline {
            pub(crate) use super::{$($f),*};
        }
    };
}

entries! {
    Step => step,
    StepFpu => step_fpu,
    StepExit => step_exit,
    StepFetchExit => step_fetch_exit,
    StepFill => step_fill,
    Lookup => lookup,
    Condition => condition,
    Materialize => materialize,
    MemRead => mem_read,
    MemWrite => mem_write,
}
