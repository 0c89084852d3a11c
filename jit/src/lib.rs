//! ferrite-jit: the Cranelift dynamic binary translator.
//!
//! The interpreter (`ferrite-core`) stays the reference: it hands control to
//! [`Jit`] through the [`Accelerator`] hook at block starts (branch targets,
//! after interrupts, after translated code). The JIT looks the current
//! physical address and mode key up in its code cache, counts executions of
//! untranslated addresses, and translates an address once it is hot (at
//! once in force mode). A block is straight-line code inside one guest
//! page, up to a taken branch or an instruction that must leave translated
//! code; see `lower.rs` for what is inlined and ARCHITECTURE.md for the
//! design.
//!
//! Invalidation is physical: the memory map's CODE bit reports writes to
//! pages that hold code (CPU stores and DMA alike) and every block of the
//! page is dropped. Cranelift's `JITModule` cannot free single functions,
//! so code memory is reclaimed in generations: when the cache holds too
//! much code, or on a full flush, the whole module is dropped.

mod arena;
mod helpers;
mod low;
mod lower;

use cranelift_codegen::control::ControlPlane;
use cranelift_codegen::ir::types;
use cranelift_codegen::ir::UserFuncName;
use cranelift_codegen::settings::{self, Configurable};
use cranelift_frontend::FunctionBuilderContext;
use cranelift_jit::{JITBuilder, JITModule};
use cranelift_module::{default_libcall_names, Module};
use ferrite_core::cpu::accel::{AccelStats, Accelerator, ModeKey};
use ferrite_core::cpu::decode::Insn;
use ferrite_core::cpu::Ctx;
use ferrite_core::mem::{PhysAddr, PAGE_SIZE};
use ferrite_core::Cpu;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{mpsc, Arc, Condvar, Mutex};
use std::time::Instant;
use thiserror::Error;

/// Whether translated code may run; the interpreter is always available.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum JitMode {
    /// Interpret only.
    #[default]
    Off,
    /// Translate code once it has run [`HOT_THRESHOLD`] times.
    On,
    /// Translate every block on its first execution (for tests).
    Force,
}

/// Executions of a block start before it is translated (`JitMode::On`).
pub const HOT_THRESHOLD: u32 = 256;
/// Guest instructions per block at most.
pub const MAX_BLOCK_INSNS: usize = 512;
/// Code bytes (approximate) before the code cache starts a new generation.
pub(crate) const MAX_CODE_BYTES: usize = 64 << 20;

#[derive(Debug, Error)]
pub enum JitError {
    #[error("this host is not supported by Cranelift: {0}")]
    Host(String),
    #[error("Cranelift setting rejected: {0}")]
    Setting(String),
    #[error("no executable memory for translated code: {0}")]
    Memory(String),
}

/// The entry from Rust: `tramp(cpu, ctx, instret_limit, block)` calls the
/// block in the tail-call convention.
type TrampFn = unsafe extern "C" fn(*mut Cpu, *mut Ctx, u64, u64) -> u32;

struct Block {
    /// The translated code (tail-call convention: entered through the
    /// trampoline or chained to from another block).
    func: u64,
    /// Chaining exits: function pointers of the target blocks (0 = go back
    /// to the dispatcher). Generated code reads them by address.
    slots: Box<[u64]>,
    /// (slot, key of the target block) of each chaining exit.
    chains: Vec<(usize, u64)>,
    /// Distinguishes this block from later ones reusing its index.
    gen: u32,
    /// The decoded instructions the generated code points into.
    _insns: Box<[Insn]>,
    /// Bytes of guest code covered, from the entry.
    bytes: u32,
    /// Its guest instructions: at most this many retire before its first
    /// budget check (a backward jump).
    count: u32,
}

/// Per-key state in the cache.
enum Entry {
    /// Seen this many times, not translated yet.
    Cold(u32),
    /// Waiting for or being translated on the compile thread (job id,
    /// executions since it was handed over, which pick the next job).
    Pending(u64, Arc<AtomicU32>),
    /// Nothing can be translated here (first instruction not translatable).
    Never,
    /// Not translated because the first instruction may cross into the
    /// next page, and no stub could be made for it (`Jit::cross_block`,
    /// which is what such entries normally get): the interpreter runs that
    /// one instruction only, and the code after it gets its own block.
    Cross,
    /// Translated: index into `Jit::blocks`.
    Hot(u32),
}

/// Slots of the direct-mapped lookup table in front of the hash map.
const FAST_SLOTS: usize = 4096;
const NO_KEY: u64 = u64::MAX;

/// One slot of the direct-mapped table of recently run blocks.
#[derive(Clone, Copy)]
pub(crate) struct FastSlot {
    pub key: u64,
    pub idx: u32,
    /// The block's code (what translated code jumps to after a lookup).
    pub func: u64,
}

const EMPTY_SLOT: FastSlot = FastSlot { key: NO_KEY, idx: 0, func: 0 };

// `FastSlot::idx` values of entry points that are not translated: the
// dispatcher answers the interpreter's offers there from the slot instead
// of the hash map (a cache miss or two per offer, most of `execute`'s time
// in the guest's warm-up).

/// Not translated yet; `func` counts the executions (the map's
/// `Entry::Cold` learns the count when the slot is taken over).
const SLOT_COLD: u32 = u32::MAX;
/// Handed to the compile thread; its heat is in `Jit::fast_heat`.
const SLOT_PENDING: u32 = u32::MAX - 1;
/// `Entry::Never`.
const SLOT_NEVER: u32 = u32::MAX - 2;

impl FastSlot {
    /// The block index, when the slot holds a translated block.
    pub(crate) fn block(&self) -> Option<u32> {
        (self.idx < SLOT_NEVER).then_some(self.idx)
    }
}

/// Slots of the table translated code consults inline on exits it cannot
/// chain (returns, cross-page and indirect branches).
pub(crate) const LIN_SLOTS: usize = 4096;

/// One slot of that table: the code of the block at a linear EIP under a
/// mode key (`tag` = linear EIP << 16 | mode key), valid while the fast
/// TLB's stamp holds (the linear-to-physical mapping is then fixed); the
/// table is emptied with the fast TLB and whenever a block is dropped.
#[derive(Clone, Copy)]
#[repr(C)]
pub(crate) struct LinSlot {
    pub tag: u64,
    pub func: u64,
}

pub(crate) const EMPTY_LIN: LinSlot = LinSlot { tag: NO_KEY, func: 0 };

/// Entries of the return stack: translated CALLs push the return address
/// and the chaining slot that will hold the code there, translated RETs
/// pop it and, when the address matches, go straight on (as a chained
/// jump) instead of through the table of linear entry points.
pub(crate) const RET_SLOTS: usize = 16;

/// One entry of the return stack: `tag` as `LinSlot::tag` (of the return
/// address, under the caller's mode key) and the address of the caller's
/// chaining slot for it (0 while no block is there). Entries hold slots of
/// live blocks only: the stack is emptied with the table of linear entry
/// points (whenever a block is dropped and when the stamp changes).
#[derive(Clone, Copy)]
#[repr(C)]
pub(crate) struct RetEntry {
    pub tag: u64,
    pub slot: u64,
}

pub(crate) const EMPTY_RET: RetEntry = RetEntry { tag: NO_KEY, slot: 0 };

/// The slot of linear EIP `lin` (translated code computes the same).
pub(crate) fn lin_slot(lin: u32) -> usize {
    (lin.wrapping_mul(LIN_HASH) >> (32 - LIN_BITS)) as usize
}

pub(crate) const LIN_HASH: u32 = 0x9E37_79B1;
pub(crate) const LIN_BITS: u32 = 12;
const _: () = assert!(1 << LIN_BITS == LIN_SLOTS);

/// What the fast TLBs' host pointers depend on: the CPU's TLB generation,
/// CR0 (WP) and the memory map. (Not the CPL: each privilege class has its
/// own table, see `Shared::ftlb`.)
pub(crate) fn tlb_stamp(cpu: &Cpu, ctx: &Ctx) -> (u32, u32, u32) {
    let (g, cr0) = cpu.translation_stamp();
    (g, cr0, ctx.mem.map_gen())
}

/// Whether code of mode key `mode` runs with user privilege (CPL 3, which
/// V86 mode also has): paging checks then treat it as a user access.
pub(crate) fn user_mode(mode: ModeKey) -> bool {
    (mode >> 4) & 3 == 3
}

/// The tag of linear EIP `lin` under mode key `mode`.
pub(crate) fn lin_tag(lin: u32, mode: ModeKey) -> u64 {
    (lin as u64) << 16 | mode as u64
}

/// What the dispatcher and translated code's lookups (`helpers::lookup`)
/// share; boxed, so generated code can hold its address.
pub(crate) struct Shared {
    pub fast: [FastSlot; FAST_SLOTS],
    pub lin: [LinSlot; LIN_SLOTS],
    /// The slots of `lin` filled since it was last emptied (emptying it,
    /// at every address-space switch of the guest, then touches only
    /// those, not all 64 KiB).
    pub lin_used: Vec<u16>,
    /// The return stack, a ring (`RET_SLOTS` entries).
    pub ret: [RetEntry; RET_SLOTS],
    /// The byte offset into `ret` of its top entry (a multiple of 16).
    pub ret_top: u32,
    /// What the fast TLBs' entries were made under ([`tlb_stamp`]).
    pub stamp: (u32, u32, u32),
    /// The `Ctx` translated code runs with, for the current
    /// `Jit::execute` (translated code reads it here rather than keep it in
    /// a register; the `instret` value it must not pass is
    /// `Cpu::accel_limit`).
    pub ctx: u64,
    /// The fast TLBs of translated code's inline accesses, one for
    /// supervisor code (CPL 0-2) and one for user code (CPL 3, V86): a
    /// block's mode key fixes its CPL, so it only ever uses entries filled
    /// with its own privilege, and the tables survive the guest's every
    /// kernel entry and exit. Filled by the slow-path helpers.
    pub ftlb: [helpers::FastTlb; 2],
}

// (`Lower::table_entry` folds table addresses below 2 GiB - 1 MiB into
// displacements: the tables must be smaller than 1 MiB.)
const _: () = assert!(std::mem::size_of::<Shared>() < 1 << 20 && std::mem::size_of::<helpers::FastTlb>() < 1 << 20);

impl Shared {
    fn new() -> Box<Shared> {
        Box::new(Shared {
            fast: [EMPTY_SLOT; FAST_SLOTS],
            lin: [EMPTY_LIN; LIN_SLOTS],
            lin_used: Vec::with_capacity(LIN_SLOTS),
            ret: [EMPTY_RET; RET_SLOTS],
            ret_top: 0,
            stamp: (0, 0, u32::MAX),
            ctx: 0,
            ftlb: [helpers::FastTlb::new(), helpers::FastTlb::new()],
        })
    }

    /// Enter `slot` into the table of linear entry points. The table is
    /// two-way: slot `n` of `lin_slot` or its pair `n ^ 1`, the newer entry
    /// in `n` (two hot entry points whose slots collide, such as two return
    /// addresses in a loop, no longer push each other out every time).
    pub(crate) fn set_lin(&mut self, lin: u32, slot: LinSlot) {
        let n = lin_slot(lin);
        let a = self.lin[n];
        if a.tag != slot.tag && a.tag != NO_KEY {
            // `a` moves to the other way, over the older entry there (or
            // over this one's, which then swaps places with it).
            if self.lin[n ^ 1].tag == NO_KEY {
                self.lin_used.push((n ^ 1) as u16);
            }
            self.lin[n ^ 1] = a;
        } else if a.tag == NO_KEY {
            self.lin_used.push(n as u16);
        }
        self.lin[n] = slot;
    }

    /// The code at linear EIP `lin` under mode key `mode`, when the table
    /// has it.
    pub(crate) fn get_lin(&self, lin: u32, mode: ModeKey) -> Option<u64> {
        let n = lin_slot(lin);
        let tag = lin_tag(lin, mode);
        [n, n ^ 1].into_iter().map(|m| self.lin[m]).find(|s| s.tag == tag).map(|s| s.func)
    }

    /// Empty the table of linear entry points and the return stack.
    pub(crate) fn clear_lin(&mut self) {
        for n in self.lin_used.drain(..) {
            self.lin[n as usize] = EMPTY_LIN;
        }
        self.ret = [EMPTY_RET; RET_SLOTS];
    }
}

pub(crate) fn fast_slot(key: u64) -> usize {
    (key.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 52) as usize % FAST_SLOTS
}

/// A multiplicative hasher for the u64 keys of the code cache (the default
/// SipHash costs more than a block run).
#[derive(Default, Clone, Copy)]
struct KeyHasher(u64);

impl std::hash::Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        // The table picks buckets by the low bits, which a product only
        // mixes from the low bits of the key (the mode key's): fold the
        // well-mixed high half in.
        self.0 ^ self.0 >> 32
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ b as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = (self.0 ^ v).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
    fn write_u32(&mut self, v: u32) {
        self.write_u64(v as u64);
    }
}

type KeyMap<V> = HashMap<u64, V, std::hash::BuildHasherDefault<KeyHasher>>;

pub(crate) fn key_of(phys: PhysAddr, mode: ModeKey) -> u64 {
    (phys.0 as u64) << 16 | mode as u64
}

/// The translator and its code cache.
pub struct Jit {
    mode: JitMode,
    module: Option<JITModule>,
    fctx: FunctionBuilderContext,
    entries: KeyMap<Entry>,
    /// Translated blocks; freed slots are reused.
    blocks: Vec<Option<Block>>,
    free: Vec<u32>,
    /// Recently run blocks and the fast TLB's stamp.
    shared: low::LowBox<Shared>,
    /// Keys of entries per guest physical page, for invalidation.
    by_page: KeyMap<Vec<u64>>,
    code_bytes: usize,
    stats: AccelStats,
    /// Executions before a block start is translated (`JitMode::On`).
    threshold: u32,
    /// The entry trampoline of the current module generation.
    tramp: Option<TrampFn>,
    /// Chaining exits waiting for (or pointing at) each key's block:
    /// (block index, block generation, slot).
    incoming: KeyMap<Vec<(u32, u32, usize)>>,
    next_gen: u32,
    /// The compile thread (`JitMode::On`; None: translate in place).
    worker: Option<Worker>,
    next_job: u64,
    /// The code standing in for page-crossing instructions, per mode key
    /// (`Lower::stub`), of the current module generation.
    stubs: HashMap<ModeKey, u64>,
    /// The shared exit of each mode key's regions (`Lower::exit_stub`), of
    /// the current module generation.
    exit_fns: HashMap<ModeKey, u64>,
    /// SSE forms are lowered to vector operations (`without_simd_lowering`).
    simd_lowering: bool,
    /// The heat of the pending job in each `Shared::fast` slot that says
    /// `SLOT_PENDING`.
    fast_heat: Box<[Option<Arc<AtomicU32>>]>,
}

/// One block to translate: everything the lowering needs, owned.
struct Job {
    id: u64,
    key: u64,
    phys: PhysAddr,
    mode: ModeKey,
    insns: Box<[Insn]>,
    /// Bytes of guest code the instructions cover.
    off: u32,
    slots: Box<[u64]>,
    /// Executions of the entry while the job waits (`JobQueue`).
    heat: Arc<AtomicU32>,
    /// The translator's fast TLB and shared table (addresses only: the
    /// generated code holds them; the compile thread never uses them).
    ftlb: *mut helpers::FastTlb,
    shared: *mut Shared,
    /// The mode's shared exit (`Jit::exit_fn`; 0: none, each region holds
    /// that code itself).
    exit_fn: u64,
    /// The SSE level of the CPU model (`simd_level`): which instructions
    /// may be lowered to vector operations.
    simd: u8,
}

/// The SSE instructions the CPU model has: 0 none, 1 SSE, 2 SSE and SSE2
/// (a model's features are fixed while it runs).
fn simd_level(cpu: &Cpu) -> u8 {
    match (cpu.has_sse(), cpu.has_sse2()) {
        (true, true) => 2,
        (true, false) => 1,
        _ => 0,
    }
}

// SAFETY: a job owns its instructions and chaining slots (heap data whose
// addresses the lowering embeds); the two translator pointers are only
// copied into generated code as constants, never dereferenced off the
// thread that owns the translator.
unsafe impl Send for Job {}

/// A finished job: the compiled function (None when compilation failed).
struct Done {
    job: Job,
    code: Option<Compiled>,
    chains: Vec<(usize, i64)>,
    ns: u64,
}

/// A compiled function's machine code, taken out of the Cranelift context
/// (which the compile thread then clears and reuses: a fresh context per
/// job, dropped on the CPU thread, cost the compile thread a tenth of its
/// time in allocation).
struct Compiled {
    bytes: Vec<u8>,
    align: u64,
    relocs: bool,
}

impl Compiled {
    fn of(c: &cranelift_codegen::Context) -> Option<Compiled> {
        let code = c.compiled_code()?;
        Some(Compiled {
            bytes: code.code_buffer().to_vec(),
            align: code.buffer.alignment as u64,
            relocs: !code.buffer.relocs().is_empty(),
        })
    }
}

/// Jobs waiting for the compile thread. It takes the hottest first (the
/// one run most often since it was handed over; the newest among equals):
/// when a burst of fresh code becomes hot at once, what the guest keeps
/// running gets compiled first instead of waiting behind the rest.
struct JobQueue {
    jobs: Mutex<Vec<Job>>,
    ready: Condvar,
    closed: AtomicBool,
}

impl JobQueue {
    fn push(&self, job: Job) -> bool {
        let Ok(mut q) = self.jobs.lock() else { return false };
        q.push(job);
        self.ready.notify_one();
        true
    }

    /// The next job, waiting for one; None once the queue is closed.
    fn pop(&self) -> Option<Job> {
        let mut q = self.jobs.lock().ok()?;
        loop {
            if self.closed.load(Ordering::Acquire) {
                return None;
            }
            let best = q.iter().enumerate().max_by_key(|(_, j)| (j.heat.load(Ordering::Relaxed), j.id)).map(|(n, _)| n);
            if let Some(n) = best {
                return Some(q.swap_remove(n));
            }
            q = self.ready.wait(q).ok()?;
        }
    }

    fn close(&self) {
        // (Under the lock, so the thread cannot miss the wake-up between
        // its check and its wait.)
        let _q = self.jobs.lock();
        self.closed.store(true, Ordering::Release);
        self.ready.notify_all();
    }
}

/// The compile thread, its queue and the channel of finished jobs.
struct Worker {
    queue: Arc<JobQueue>,
    done: mpsc::Receiver<Done>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.queue.close();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Lower a job's block to Cranelift IR: the function and its chaining
/// exits.
fn lower_job(
    job: &Job,
    func: &mut cranelift_codegen::ir::Function,
    fctx: &mut FunctionBuilderContext,
    target: cranelift_codegen::isa::TargetFrontendConfig,
) -> Vec<(usize, i64)> {
    let offs = guest_insns(&job.insns);
    let slots = job.slots.as_ptr() as *mut u64;
    let chain = lower::ChainInfo { slots, nslots: job.slots.len(), page_off: job.phys.page_offset() };
    let lower = lower::Lower::new(func, fctx, job.mode, job.ftlb, job.shared).with_exit_fn(job.exit_fn);
    let chains = lower.with_simd(job.simd).block(&offs, job.off, Some(chain), target);
    // Only functions with SSE lowered to vector operations call the
    // helpers through the trampolines that save vector registers
    // (`helpers::entry_vec`).
    debug_assert!(
        lower::holds_vectors(&job.insns, job.simd) || func.dfg.values().all(|v| func.dfg.value_type(v).is_int()),
        "float or vector value in a block"
    );
    chains
}

/// With `FERRITE_JIT_DUMP=DIR` set, write each installed block's host code
/// to `DIR/<host address>.bin` and a line to `DIR/index.txt` (host address,
/// size, guest physical address, mode key, the guest instructions), so
/// that samples of `perf record` in translated code can be traced to
/// host and guest instructions (`scripts/jit-profile`).
fn dump_block(code: &Compiled, func: u64, job: &Job) {
    if dump_dir().is_none() {
        return;
    }
    let names: Vec<String> = job
        .insns
        .iter()
        .map(|i| iced_x86::Code::try_from(i.code as usize).map_or_else(|_| "?".into(), |c| format!("{c:?}")))
        .collect();
    dump_code(&code.bytes, func, job.phys.0, job.mode, &names.join(","));
}

fn dump_dir() -> Option<&'static std::path::PathBuf> {
    static DIR: std::sync::OnceLock<Option<std::path::PathBuf>> = std::sync::OnceLock::new();
    DIR.get_or_init(|| std::env::var_os("FERRITE_JIT_DUMP").map(Into::into)).as_ref()
}

/// `dump_block` for any function: `what` names it in the index (the guest
/// instructions of a block, or what a shared function is for).
fn dump_code(bytes: &[u8], func: u64, phys: u32, mode: ModeKey, what: &str) {
    let Some(dir) = dump_dir() else { return };
    let line = format!("{func:x} {:x} {phys:x} {mode:x} {what}\n", bytes.len());
    let r = std::fs::create_dir_all(dir)
        .and_then(|_| std::fs::write(dir.join(format!("{func:x}.bin")), bytes))
        .and_then(|_| {
            use std::io::Write;
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(dir.join("index.txt"))?
                .write_all(line.as_bytes())
        });
    if let Err(e) = r {
        tracing::warn!("FERRITE_JIT_DUMP: {}: {e}", dir.display());
    }
}

/// Guest instructions from which a region counts as big for the compile
/// thread's Cranelift context (`compile_loop`).
const BIG_JOB: usize = 64;

/// The compile thread: lower and compile jobs until the queue closes.
fn compile_loop(jobs: Arc<JobQueue>, done: mpsc::Sender<Done>, isa: cranelift_codegen::isa::OwnedTargetIsa) {
    let mut fctx = FunctionBuilderContext::new();
    let mut ctx = cranelift_codegen::Context::new();
    while let Some(job) = jobs.pop() {
        let t0 = Instant::now();
        ctx.clear();
        ctx.func.signature = lower::block_signature(types::I64);
        let chains = lower_job(&job, &mut ctx.func, &mut fctx, isa.frontend_config());
        let code = match ctx.compile(&*isa, &mut ControlPlane::default()) {
            Ok(_) => Compiled::of(&ctx),
            Err(e) => {
                tracing::error!("translation of {:#x} failed: {e:?}", job.phys.0);
                None
            }
        };
        let ns = t0.elapsed().as_nanos() as u64;
        if job.insns.len() >= BIG_JOB {
            // Cranelift clears its tables (the register allocator's hash
            // sets among them) at their largest capacity before every
            // function: after a big region, small ones would keep paying
            // for it.
            ctx = cranelift_codegen::Context::new();
        }
        if done.send(Done { job, code, chains, ns }).is_err() {
            break;
        }
    }
}

// SAFETY: a `Jit` owns its code memory and code cache exclusively; nothing
// in it is tied to the thread that made it (the raw pointers are into memory
// the module owns), and it is only used through `&mut self`, so moving it to
// another thread with the CPU that owns it is sound.
unsafe impl Send for Jit {}

fn new_isa() -> Result<cranelift_codegen::isa::OwnedTargetIsa, JitError> {
    let mut flags = settings::builder();
    // Cranelift's mid-end ("speed") found little left to improve in the
    // lowering's IR and cost a fifth of compile time; compile time is what
    // keeps fresh code in the interpreter (FERRITE_JIT_OPT=speed compares).
    let opt = std::env::var("FERRITE_JIT_OPT").unwrap_or_else(|_| "none".into());
    flags.set("opt_level", &opt).map_err(|e| JitError::Setting(e.to_string()))?;
    // The IR verifier costs a fair part of compile time: debug builds only.
    let verify = if cfg!(debug_assertions) { "true" } else { "false" };
    flags.set("enable_verifier", verify).map_err(|e| JitError::Setting(e.to_string()))?;
    let ra = std::env::var("FERRITE_JIT_REGALLOC").unwrap_or_else(|_| "backtracking".into());
    flags.set("regalloc_algorithm", &ra).map_err(|e| JitError::Setting(e.to_string()))?;
    flags.set("use_colocated_libcalls", "false").map_err(|e| JitError::Setting(e.to_string()))?;
    flags.set("is_pic", "false").map_err(|e| JitError::Setting(e.to_string()))?;
    flags.set("unwind_info", "false").map_err(|e| JitError::Setting(e.to_string()))?;
    // Tail calls (block chaining) need frame pointers in this Cranelift.
    flags.set("preserve_frame_pointers", "true").map_err(|e| JitError::Setting(e.to_string()))?;
    cranelift_native::builder()
        .map_err(|e| JitError::Host(e.to_string()))?
        .finish(settings::Flags::new(flags))
        .map_err(|e| JitError::Host(e.to_string()))
}

fn new_module() -> Result<JITModule, JitError> {
    let mut b = JITBuilder::with_isa(new_isa()?, default_libcall_names());
    let arena = arena::CodeArena::new(arena::ARENA_BYTES).map_err(|e| JitError::Memory(e.to_string()))?;
    b.memory_provider(Box::new(arena));
    Ok(JITModule::new(b))
}

/// Start the compile thread (None when it cannot be started: the
/// translator then compiles in place).
fn start_worker() -> Option<Worker> {
    if std::env::var_os("FERRITE_JIT_SYNC").is_some() {
        return None;
    }
    let isa = new_isa().ok()?;
    let queue =
        Arc::new(JobQueue { jobs: Mutex::new(Vec::new()), ready: Condvar::new(), closed: AtomicBool::new(false) });
    let q = Arc::clone(&queue);
    let (dtx, drx) = mpsc::channel();
    let thread =
        std::thread::Builder::new().name("ferrite-jit".into()).spawn(move || compile_loop(q, dtx, isa)).ok()?;
    Some(Worker { queue, done: drx, thread: Some(thread) })
}

impl Jit {
    /// A translator in `mode` (`JitMode::Off` makes one that never runs).
    pub fn new(mode: JitMode) -> Result<Jit, JitError> {
        Ok(Jit {
            mode,
            module: Some(new_module()?),
            fctx: FunctionBuilderContext::new(),
            entries: KeyMap::default(),
            blocks: Vec::new(),
            free: Vec::new(),
            shared: low::LowBox::new(Shared::new()),
            by_page: KeyMap::default(),
            code_bytes: 0,
            stats: AccelStats::default(),
            threshold: std::env::var("FERRITE_JIT_THRESHOLD")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(HOT_THRESHOLD)
                .max(1),
            tramp: None,
            incoming: KeyMap::default(),
            next_gen: 0,
            worker: if mode == JitMode::On { start_worker() } else { None },
            next_job: 0,
            stubs: HashMap::new(),
            exit_fns: HashMap::new(),
            simd_lowering: true,
            fast_heat: vec![None; FAST_SLOTS].into_boxed_slice(),
        })
    }

    /// A translator that runs every SSE instruction through the
    /// interpreter's semantics (helper calls) instead of lowering the
    /// integer, logic, move and shuffle forms to vector operations: for
    /// benchmarks that measure what the lowering gains.
    pub fn without_simd_lowering(mut self) -> Jit {
        self.simd_lowering = false;
        self
    }

    /// The SSE level translations of `cpu`'s code lower (`simd_level`, or
    /// 0 without SIMD lowering).
    fn simd_of(&self, cpu: &Cpu) -> u8 {
        if self.simd_lowering {
            simd_level(cpu)
        } else {
            0
        }
    }

    /// A translator in `mode` that translates a block start after
    /// `threshold` executions (`JitMode::On`; at least 1).
    pub fn with_threshold(mode: JitMode, threshold: u32) -> Result<Jit, JitError> {
        let mut j = Jit::new(mode)?;
        j.threshold = threshold.max(1);
        Ok(j)
    }

    /// Install a translator in `mode` into `cpu` (nothing for `Off`).
    pub fn install(cpu: &mut Cpu, mode: JitMode) -> Result<(), JitError> {
        if mode != JitMode::Off {
            cpu.set_accelerator(Some(Box::new(Jit::new(mode)?)));
        }
        Ok(())
    }

    /// Drop every translation and start a new code generation.
    fn drop_all(&mut self) {
        self.entries.clear();
        self.blocks.clear();
        self.free.clear();
        self.shared.fast.fill(EMPTY_SLOT);
        self.shared.clear_lin();
        self.shared.ftlb.iter_mut().for_each(|t| t.clear());
        self.incoming.clear();
        self.stubs.clear();
        self.exit_fns.clear();
        self.tramp = None;
        self.by_page.clear();
        self.code_bytes = 0;
        if let Some(m) = self.module.take() {
            // SAFETY: no translated code is running (flush is called from
            // the run loop, between blocks) and every pointer into the
            // module's memory was held by the entries just dropped.
            unsafe { m.free_memory() };
        }
        self.module = new_module().ok();
    }

    /// The entry trampoline of this module generation (compiled once).
    fn trampoline(&mut self) -> Option<TrampFn> {
        if let Some(t) = self.tramp {
            return Some(t);
        }
        let module = self.module.as_mut()?;
        let mut cctx = module.make_context();
        lower::trampoline(&mut cctx.func, &mut self.fctx, module.target_config());
        let id = module.declare_anonymous_function(&cctx.func.signature).ok()?;
        module.define_function(id, &mut cctx).ok()?;
        module.clear_context(&mut cctx);
        module.finalize_definitions().ok()?;
        let ptr = module.get_finalized_function(id);
        // SAFETY: compiled from `lower::trampoline`, whose SystemV signature
        // (three pointer-sized values and a code address in, u32 out) is
        // `TrampFn`.
        let t = unsafe { std::mem::transmute::<*const u8, TrampFn>(ptr) };
        self.tramp = Some(t);
        Some(t)
    }

    /// Build the block at the current CS:EIP (physical `phys`) in place.
    fn translate(&mut self, cpu: &mut Cpu, ctx: &mut Ctx, phys: PhysAddr, mode: ModeKey) -> Option<Block> {
        let t0 = Instant::now();
        let (insns, off) = gather(cpu, ctx, phys, mode)?;
        let job = self.job(0, phys, mode, insns, off, self.simd_of(cpu));
        let module = self.module.as_ref()?;
        let mut c = cranelift_codegen::Context::new();
        c.func.signature = lower::block_signature(types::I64);
        c.func.name = UserFuncName::user(0, self.stats.blocks_compiled as u32);
        let chains = lower_job(&job, &mut c.func, &mut self.fctx, module.target_config());
        if let Err(e) = c.compile(module.isa(), &mut ControlPlane::default()) {
            // A lowering bug, never the guest's doing: the interpreter runs
            // this code instead.
            tracing::error!("translation of {:#x} failed: {e:?}", phys.0);
            debug_assert!(false, "translation of {:#x} failed: {e:?}", phys.0);
            return None;
        }
        let code = Compiled::of(&c)?;
        let func = self.define(&code, phys)?;
        dump_block(&code, func, &job);
        self.stats.blocks_compiled += 1;
        self.stats.compile_ns += t0.elapsed().as_nanos() as u64;
        Some(self.make_block(job, func, chains))
    }

    /// A job for the block at `phys` (key `key`) made of `insns`.
    fn job(&mut self, key: u64, phys: PhysAddr, mode: ModeKey, insns: Box<[Insn]>, off: u32, simd: u8) -> Job {
        self.next_job += 1;
        let nslots = lower::chain_slots(&insns);
        Job {
            id: self.next_job,
            key,
            phys,
            mode,
            insns,
            off,
            slots: vec![0; nslots].into_boxed_slice(),
            heat: Arc::new(AtomicU32::new(0)),
            ftlb: &mut self.shared.ftlb[user_mode(mode) as usize],
            shared: &mut *self.shared,
            exit_fn: self.exit_fn(mode).unwrap_or(0),
            simd,
        }
    }

    /// The block of a compiled job whose code is at `func`.
    fn make_block(&mut self, job: Job, func: u64, chains: Vec<(usize, i64)>) -> Block {
        let (phys, mode) = (job.phys, job.mode);
        let chains =
            chains.into_iter().map(|(n, delta)| (n, key_of(PhysAddr((phys.0 as i64 + delta) as u32), mode))).collect();
        self.next_gen = self.next_gen.wrapping_add(1);
        // (Forward code runs each instruction of a region at most once; only
        // backward jumps check the budget again.)
        let count = job.insns.len() as u32;
        Block { func, slots: job.slots, chains, gen: self.next_gen, _insns: job.insns, bytes: job.off, count }
    }

    /// Link a new block at `idx` (key `key`): its exits to translated
    /// targets, and the waiting exits of other blocks to it.
    fn link(&mut self, idx: u32, key: u64) {
        let Some(Some(b)) = self.blocks.get(idx as usize) else { return };
        let (gen, func, chains) = (b.gen, b.func, b.chains.clone());
        for (n, tk) in chains {
            self.incoming.entry(tk).or_default().push((idx, gen, n));
            if let Some(Entry::Hot(j)) = self.entries.get(&tk) {
                let f = self.blocks.get(*j as usize).and_then(|t| t.as_ref()).map_or(0, |t| t.func);
                if let Some(Some(b)) = self.blocks.get_mut(idx as usize) {
                    b.slots[n] = f;
                }
            }
        }
        self.set_incoming(key, func);
    }

    /// Point every live exit waiting for `key` at `func` (0 = unlink).
    fn set_incoming(&mut self, key: u64, func: u64) {
        let Some(list) = self.incoming.get_mut(&key) else { return };
        let blocks = &mut self.blocks;
        list.retain(|&(i, g, n)| match blocks.get_mut(i as usize) {
            Some(Some(b)) if b.gen == g => {
                b.slots[n] = func;
                true
            }
            _ => false,
        });
    }
}

impl Jit {
    /// Executions before a block start is translated.
    fn hot_threshold(&self) -> u32 {
        if self.mode == JitMode::Force {
            1
        } else {
            self.threshold
        }
    }

    /// The block index for `key` from the hash map (`lookup_or_translate`),
    /// and the dispatcher's slot for `key` set to what the map says.
    fn dispatch(&mut self, cpu: &mut Cpu, ctx: &mut Ctx, phys: PhysAddr, mode: ModeKey, key: u64) -> Option<u32> {
        let slot = fast_slot(key);
        let old = self.shared.fast[slot];
        if old.idx == SLOT_COLD && old.key != key {
            // The slot's count goes back to the map before it is taken over.
            if let Some(Entry::Cold(n)) = self.entries.get_mut(&old.key) {
                *n = (*n).max(old.func as u32);
            }
        }
        let r = self.lookup_or_translate(cpu, ctx, phys, mode, key);
        let s = match r {
            Some(i) => {
                let func = self.blocks.get(i as usize).and_then(|b| b.as_ref()).map_or(0, |b| b.func);
                FastSlot { key, idx: i, func }
            }
            None => match self.entries.get(&key) {
                Some(Entry::Cold(n)) => FastSlot { key, idx: SLOT_COLD, func: *n as u64 },
                Some(Entry::Pending(_, heat)) => {
                    self.fast_heat[slot] = Some(Arc::clone(heat));
                    FastSlot { key, idx: SLOT_PENDING, func: 0 }
                }
                Some(Entry::Never) => FastSlot { key, idx: SLOT_NEVER, func: 0 },
                // (`Entry::Cross` has the interpreter told something each
                // time: through the map.)
                _ => return None,
            },
        };
        self.shared.fast[slot] = s;
        r
    }

    /// Key `key`'s entry changed: its dispatcher slot, if it has one,
    /// says `to`.
    fn refresh_slot(&mut self, key: u64, to: FastSlot) {
        let slot = fast_slot(key);
        if self.shared.fast[slot].key == key {
            self.shared.fast[slot] = to;
        }
    }

    /// The block index for `key`, translating it when it has become hot.
    fn lookup_or_translate(
        &mut self,
        cpu: &mut Cpu,
        ctx: &mut Ctx,
        phys: PhysAddr,
        mode: ModeKey,
        key: u64,
    ) -> Option<u32> {
        let threshold = self.hot_threshold();
        let entry = self.entries.entry(key).or_insert(Entry::Cold(0));
        match entry {
            Entry::Hot(i) => return Some(*i),
            Entry::Never => return None,
            Entry::Cross => {
                cpu.accel_retry_after_one();
                return None;
            }
            Entry::Pending(_, heat) => {
                heat.fetch_add(1, Ordering::Relaxed);
                return None;
            }
            Entry::Cold(n) => {
                *n += 1;
                if *n < threshold {
                    return None;
                }
            }
        }
        if self.code_bytes > MAX_CODE_BYTES {
            self.drop_all();
            self.stats.flushes += 1;
        }
        if self.worker.is_some() {
            self.submit(cpu, ctx, phys, mode, key);
            return None;
        }
        let made = self.translate(cpu, ctx, phys, mode);
        self.by_page.entry((phys.0 >> 12) as u64).or_default().push(key);
        let Some(b) = made.or_else(|| self.cross_block(phys, mode)) else {
            self.entries.insert(key, untranslatable(cpu, phys));
            return None;
        };
        Some(self.insert_block(key, b))
    }
}

impl Jit {
    /// The shared exit function of `mode`'s regions in this module
    /// generation (`Lower::exit_stub`), compiled on first use.
    fn exit_fn(&mut self, mode: ModeKey) -> Option<u64> {
        if let Some(&f) = self.exit_fns.get(&mode) {
            return Some(f);
        }
        let f = self.compile_shared(mode, 2, PhysAddr(0), "exit lookup", |func, fctx, ftlb, shared, target| {
            let sig = lower::exit_signature(types::I64);
            lower::Lower::with_signature(func, fctx, mode, ftlb, shared, sig).exit_stub(target)
        })?;
        self.exit_fns.insert(mode, f);
        Some(f)
    }

    /// Compile one of `mode`'s shared functions (`id` tells them apart in
    /// Cranelift's names, `what` in errors and `FERRITE_JIT_DUMP`):
    /// `build` lowers it into the function it is given.
    fn compile_shared(
        &mut self,
        mode: ModeKey,
        id: u32,
        phys: PhysAddr,
        what: &str,
        build: impl FnOnce(
            &mut cranelift_codegen::ir::Function,
            &mut FunctionBuilderContext,
            *mut helpers::FastTlb,
            *mut Shared,
            cranelift_codegen::isa::TargetFrontendConfig,
        ),
    ) -> Option<u64> {
        let module = self.module.as_ref()?;
        let mut c = cranelift_codegen::Context::new();
        c.func.name = UserFuncName::user(id, mode);
        let ftlb: *mut helpers::FastTlb = &mut self.shared.ftlb[user_mode(mode) as usize];
        let shared: *mut Shared = &mut *self.shared;
        build(&mut c.func, &mut self.fctx, ftlb, shared, module.target_config());
        if let Err(e) = c.compile(module.isa(), &mut ControlPlane::default()) {
            tracing::error!("the {what} for mode {mode:#x} failed to compile: {e:?}");
            debug_assert!(false, "{what} for mode {mode:#x}: {e:?}");
            return None;
        }
        let code = Compiled::of(&c)?;
        let f = self.define(&code, phys)?;
        dump_code(&code.bytes, f, 0, mode, &format!("({what})"));
        Some(f)
    }

    /// For an entry at `phys` (nothing there translatable) whose first
    /// instruction may cross into the next page: a block of the mode's
    /// stub (`Lower::stub`), compiled once per mode key.
    fn cross_block(&mut self, phys: PhysAddr, mode: ModeKey) -> Option<Block> {
        // (An instruction is at most 15 bytes.)
        if phys.page_offset() + 15 <= PAGE_SIZE {
            return None;
        }
        let func = match self.stubs.get(&mode) {
            Some(&f) => f,
            None => {
                let f =
                    self.compile_shared(mode, 1, phys, "page-crossing stub", |func, fctx, ftlb, shared, target| {
                        lower::Lower::new(func, fctx, mode, ftlb, shared).stub(target)
                    })?;
                self.stubs.insert(mode, f);
                f
            }
        };
        self.next_gen = self.next_gen.wrapping_add(1);
        Some(Block {
            func,
            slots: Box::new([]),
            chains: Vec::new(),
            gen: self.next_gen,
            _insns: Box::new([]),
            bytes: 1,
            count: 1,
        })
    }
}

/// The entry for code at `phys` that cannot be translated: `Entry::Cross`
/// (and the interpreter told to run just the one instruction) when an
/// instruction there may reach into the next page, else `Entry::Never`.
fn untranslatable(cpu: &mut Cpu, phys: PhysAddr) -> Entry {
    // (An instruction is at most 15 bytes.)
    if phys.page_offset() + 15 > PAGE_SIZE {
        cpu.accel_retry_after_one();
        Entry::Cross
    } else {
        Entry::Never
    }
}

impl Jit {
    /// Hand the block at `phys` to the compile thread (the interpreter runs
    /// it meanwhile).
    fn submit(&mut self, cpu: &mut Cpu, ctx: &mut Ctx, phys: PhysAddr, mode: ModeKey, key: u64) {
        self.by_page.entry((phys.0 >> 12) as u64).or_default().push(key);
        let Some((insns, off)) = gather(cpu, ctx, phys, mode) else {
            match self.cross_block(phys, mode) {
                Some(b) => {
                    self.insert_block(key, b);
                }
                None => {
                    self.entries.insert(key, untranslatable(cpu, phys));
                }
            }
            return;
        };
        let job = self.job(key, phys, mode, insns, off, self.simd_of(cpu));
        let (id, heat) = (job.id, Arc::clone(&job.heat));
        let sent = self.worker.as_ref().is_some_and(|w| w.queue.push(job));
        if sent {
            self.entries.insert(key, Entry::Pending(id, heat));
        } else {
            // The thread is gone: translate in place from now on.
            self.worker = None;
            self.entries.insert(key, Entry::Cold(0));
        }
    }

    /// Install the blocks the compile thread has finished (those whose
    /// code was not written, nor the cache flushed, meanwhile).
    fn collect(&mut self) {
        loop {
            let Some(w) = self.worker.as_ref() else { return };
            let d = match w.done.try_recv() {
                Ok(d) => d,
                Err(mpsc::TryRecvError::Empty) => return,
                Err(mpsc::TryRecvError::Disconnected) => {
                    self.worker = None;
                    return;
                }
            };
            self.install_done(d);
        }
    }

    fn install_done(&mut self, d: Done) {
        let key = d.job.key;
        match self.entries.get(&key) {
            Some(Entry::Pending(id, _)) if *id == d.job.id => {}
            // Invalidated, flushed or superseded while compiling.
            _ => return,
        }
        let t0 = Instant::now();
        let made = d.code.as_ref().and_then(|c| self.define(c, d.job.phys));
        let Some(func) = made else {
            self.entries.insert(key, Entry::Never);
            self.refresh_slot(key, EMPTY_SLOT);
            return;
        };
        if let Some(c) = &d.code {
            dump_block(c, func, &d.job);
        }
        self.stats.blocks_compiled += 1;
        self.stats.compile_ns += d.ns + t0.elapsed().as_nanos() as u64;
        let b = self.make_block(d.job, func, d.chains);
        self.insert_block(key, b);
    }

    /// Put block `b` (key `key`) into the cache and link it; its index.
    fn insert_block(&mut self, key: u64, b: Block) -> u32 {
        let i = match self.free.pop() {
            Some(i) => {
                self.blocks[i as usize] = Some(b);
                i
            }
            None => {
                self.blocks.push(Some(b));
                (self.blocks.len() - 1) as u32
            }
        };
        self.entries.insert(key, Entry::Hot(i));
        let func = self.blocks[i as usize].as_ref().map_or(0, |b| b.func);
        self.refresh_slot(key, FastSlot { key, idx: i, func });
        self.link(i, key);
        i
    }

    /// Copy compiled code into the current module generation; its address.
    fn define(&mut self, code: &Compiled, phys: PhysAddr) -> Option<u64> {
        self.trampoline()?;
        let module = self.module.as_mut()?;
        if code.relocs {
            // Translated code makes no relocations; should Cranelift ever
            // emit one, the block is interpreted instead.
            tracing::error!("translation of {:#x} has relocations", phys.0);
            return None;
        }
        let isa = module.isa();
        let align = code.align.max(isa.function_alignment().preferred as u64).max(isa.symbol_alignment());
        // (Every translated function has the block signature.)
        let id = module.declare_anonymous_function(&lower::block_signature(types::I64)).ok()?;
        module.define_function_bytes(id, align, &code.bytes, &[]).ok()?;
        module.finalize_definitions().ok()?;
        self.code_bytes += code.bytes.len();
        Some(module.get_finalized_function(id) as u64)
    }
}

impl Accelerator for Jit {
    fn execute(&mut self, cpu: &mut Cpu, ctx: &mut Ctx, budget: u64) -> bool {
        if self.mode == JitMode::Off {
            return false;
        }
        if self.worker.is_some() {
            self.collect();
        }
        let mode = cpu.mode_key();
        let Ok((lin, phys)) = cpu.fetch_address(ctx) else { return false };
        let key = key_of(phys, mode);
        let slot = fast_slot(key);
        let s = self.shared.fast[slot];
        let idx = match (s.key == key).then_some(s.idx) {
            Some(SLOT_COLD) => {
                let n = s.func + 1;
                if n < self.hot_threshold() as u64 {
                    self.shared.fast[slot].func = n;
                    return false;
                }
                // Hot now: the map learns the count and translates it.
                self.entries.insert(key, Entry::Cold(s.func as u32));
                self.shared.fast[slot] = EMPTY_SLOT;
                self.dispatch(cpu, ctx, phys, mode, key)
            }
            Some(SLOT_PENDING) => {
                if let Some(h) = &self.fast_heat[slot] {
                    h.fetch_add(1, Ordering::Relaxed);
                }
                return false;
            }
            Some(SLOT_NEVER) => return false,
            Some(i) => Some(i),
            None => self.dispatch(cpu, ctx, phys, mode, key),
        };
        let Some(idx) = idx else { return false };
        let Some(Some(b)) = self.blocks.get(idx as usize) else { return false };
        let stamp = tlb_stamp(cpu, ctx);
        if stamp != self.shared.stamp {
            self.shared.ftlb.iter_mut().for_each(|t| t.clear());
            self.shared.clear_lin();
            self.shared.stamp = stamp;
        }
        self.shared.set_lin(lin, LinSlot { tag: lin_tag(lin, mode), func: b.func });
        // The block must fit the budget (exact instruction timing), the CS
        // limit and, in 16-bit code, the 64 KiB wrap.
        let eip = cpu.state.eip;
        let last = eip.wrapping_add(b.bytes - 1);
        let limit = cpu.state.segs[ferrite_core::cpu::state::SegReg::Cs as usize].limit;
        if (b.count as u64) > budget {
            // Offered again where it falls through (the interpreter would
            // not offer straight-line code before its next branch).
            cpu.accel_offer_at(eip.wrapping_add(b.bytes));
            return false;
        }
        if last > limit || last < eip || (mode & 1 == 0 && last > 0xFFFF) {
            return false;
        }
        let before = cpu.instret;
        let Some(tramp) = self.tramp else { return false };
        let limit = cpu.instret.saturating_add(budget.min(1 << 40));
        // (Translated code reads these two here; `ctx` lives through the call.)
        self.shared.ctx = ctx as *mut Ctx as u64;
        cpu.accel_limit = limit;
        // SAFETY: the trampoline and `func` are finalized code of this module
        // generation (blocks are dropped before their module's memory is
        // freed, and chaining slots only ever hold live blocks of it); they
        // receive the exclusive `cpu` and `ctx` of this call and only use
        // them through the offsets of `lower.rs` and the helpers.
        unsafe { tramp(cpu as *mut Cpu, ctx as *mut Ctx, limit, b.func) };
        self.stats.block_runs += 1;
        self.stats.insns_translated += cpu.instret - before;
        true
    }

    fn invalidate_page(&mut self, page: u32) {
        if let Some(keys) = self.by_page.remove(&(page as u64)) {
            let before = self.stats.invalidations;
            for k in keys {
                // (Whatever the entry was: the slot may say cold or pending.)
                self.refresh_slot(k, EMPTY_SLOT);
                if let Some(Entry::Hot(i)) = self.entries.remove(&k) {
                    self.stats.invalidations += 1;
                    self.set_incoming(k, 0);
                    self.blocks[i as usize] = None;
                    self.free.push(i);
                }
            }
            if self.stats.invalidations != before {
                // Entry points of dropped blocks may be anywhere in it.
                self.shared.clear_lin();
            }
        }
    }

    fn flush(&mut self) {
        if !self.entries.is_empty() {
            self.drop_all();
            self.stats.flushes += 1;
        }
    }

    fn stats(&self) -> AccelStats {
        self.stats
    }
}

/// The Cranelift IR of the block at `cpu`'s CS:EIP, as text (golden tests,
/// debugging). None when nothing can be translated there.
pub fn block_ir(cpu: &mut Cpu, ctx: &mut Ctx) -> Option<String> {
    let mut jit = Jit::new(JitMode::Force).ok()?;
    let (_, phys) = cpu.fetch_address(ctx).ok()?;
    let mode = cpu.mode_key();
    jit.ir_of(cpu, ctx, phys, mode)
}

/// The Cranelift IR of the exit function of the CPU's current mode key
/// (`Lower::exit_stub`), for the golden tests.
pub fn exit_ir(cpu: &Cpu) -> Option<String> {
    let mut jit = Jit::new(JitMode::Force).ok()?;
    let mode = cpu.mode_key();
    let module = jit.module.as_ref()?;
    let mut func = cranelift_codegen::ir::Function::new();
    let ftlb: *mut helpers::FastTlb = &mut jit.shared.ftlb[user_mode(mode) as usize];
    let shared: *mut Shared = &mut *jit.shared;
    let sig = lower::exit_signature(types::I64);
    lower::Lower::with_signature(&mut func, &mut jit.fctx, mode, ftlb, shared, sig).exit_stub(module.target_config());
    Some(func.display().to_string())
}

impl Jit {
    fn ir_of(&mut self, cpu: &mut Cpu, ctx: &mut Ctx, phys: PhysAddr, mode: ModeKey) -> Option<String> {
        let (insns, off) = gather(cpu, ctx, phys, mode)?;
        let job = self.job(0, phys, mode, insns, off, self.simd_of(cpu));
        let module = self.module.as_ref()?;
        let mut func = cranelift_codegen::ir::Function::new();
        func.signature = lower::block_signature(types::I64);
        let offs = guest_insns(&job.insns);
        let lower = lower::Lower::new(&mut func, &mut self.fctx, mode, job.ftlb, job.shared);
        lower.with_exit_fn(job.exit_fn).with_simd(job.simd).block(&offs, off, None, module.target_config());
        Some(func.display().to_string())
    }
}

/// Decode the region at CS:EIP (physical `phys`): instructions up to an
/// unconditional branch, a block-ending instruction, the page end or the
/// size limit.
/// Returns them and the bytes they cover; None when not even the first
/// can be translated.
fn gather(cpu: &mut Cpu, ctx: &mut Ctx, phys: PhysAddr, mode: ModeKey) -> Option<(Box<[Insn]>, u32)> {
    let code32 = mode & 1 != 0;
    let eip0 = cpu.state.eip;
    let mut insns = Vec::new();
    let mut off = 0u32;
    while insns.len() < MAX_BLOCK_INSNS && phys.page_offset() + off < PAGE_SIZE {
        let eip = eip0.wrapping_add(off);
        if !code32 && eip > 0xFFFF {
            break;
        }
        let Some(i) = cpu.decode_for_translation(ctx, eip, PhysAddr(phys.0 + off), Cpu::decode_mode(mode)) else {
            break;
        };
        off += i.len as u32;
        insns.push(i);
        // A region goes on past conditional branches (each one a way out
        // or to a label inside).
        let jcc = lower::rel_branch(&i) && lower::conditional(&i);
        let jmp_on = lower::rel_branch(&i) && !jcc && lower::continues_after_jmp(&insns, off, code32);
        if !jcc && !jmp_on && (i.ends_block || lower::rel_branch(&i) || lower::call_or_ret(&i)) {
            break;
        }
    }
    let keep = lower::trim_dead(&insns, code32);
    if keep < insns.len() {
        insns.truncate(keep);
        off = insns.iter().map(|i| i.len as u32).sum();
    }
    if insns.is_empty() {
        None
    } else {
        Some((insns.into_boxed_slice(), off))
    }
}

/// The lowering's view of a block's instructions: pointers into `insns`
/// (which the block keeps alive) and offsets from the entry.
fn guest_insns(insns: &[Insn]) -> Vec<lower::GuestInsn> {
    let mut o = 0;
    insns
        .iter()
        .map(|i| {
            let g = lower::GuestInsn { insn: i as *const Insn, off: o };
            o += i.len as u32;
            g
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Linear EIPs that share a slot of the table of linear entry points.
    fn colliding() -> [u32; 3] {
        let want = lin_slot(0x0804_8000);
        let mut found = [0x0804_8000; 3];
        let mut n = 1;
        let mut lin = 0x0804_8001u32;
        while n < 3 {
            if lin_slot(lin) == want {
                found[n] = lin;
                n += 1;
            }
            lin += 1;
        }
        found
    }

    #[test]
    fn two_entry_points_whose_slots_collide_both_stay_in_the_table() {
        let mut sh = Shared::new();
        let [a, b, c] = colliding();
        let mode = 0xF7;
        sh.set_lin(a, LinSlot { tag: lin_tag(a, mode), func: 0x100 });
        sh.set_lin(b, LinSlot { tag: lin_tag(b, mode), func: 0x200 });
        assert_eq!(sh.get_lin(a, mode), Some(0x100));
        assert_eq!(sh.get_lin(b, mode), Some(0x200));
        // Another mode key is another entry point.
        assert_eq!(sh.get_lin(a, mode ^ 0x30), None);
        // Entering `a` again (the older) makes `b` the older: `c` replaces it.
        sh.set_lin(a, LinSlot { tag: lin_tag(a, mode), func: 0x100 });
        sh.set_lin(c, LinSlot { tag: lin_tag(c, mode), func: 0x300 });
        assert_eq!(sh.get_lin(a, mode), Some(0x100));
        assert_eq!(sh.get_lin(c, mode), Some(0x300));
        assert_eq!(sh.get_lin(b, mode), None);
        // An update keeps one copy.
        sh.set_lin(c, LinSlot { tag: lin_tag(c, mode), func: 0x301 });
        assert_eq!(sh.get_lin(c, mode), Some(0x301));
        assert_eq!(sh.get_lin(a, mode), Some(0x100));
        sh.clear_lin();
        assert!(sh.lin.iter().all(|s| s.tag == NO_KEY), "emptied");
        assert_eq!(sh.get_lin(a, mode), None);
    }
}
