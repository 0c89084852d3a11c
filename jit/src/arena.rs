//! Executable memory for one code generation, packed densely.
//!
//! `cranelift-jit`'s own providers give every `finalize_definitions` call
//! fresh pages, so a translator that installs one block at a time spends a
//! whole 4 KiB page (and an iTLB entry) per block: on the Linux boot that
//! was a quarter of the time in translated code, spent at block entries.
//! This provider bump-allocates code from one reserved region. Where the
//! host allows it the region is mapped readable, writable and executable
//! at once, as QEMU's translation buffer is: two `mprotect` calls per
//! installed block (each a TLB shootdown across the process's threads:
//! 15,000 calls on the Linux boot) are then saved. Otherwise the page that
//! receives new code is made writable again for the copy and executable
//! again on finalize. Both are sound because the translator only defines
//! code on the CPU thread between runs of translated code, so no code in
//! that page is executing while it is written.

use cranelift_jit::{BranchProtection, JITMemoryKind, JITMemoryProvider};
use cranelift_module::{ModuleError, ModuleResult};
use std::io;

/// Bytes reserved per generation: the generation limit plus room for the
/// largest block and alignment.
pub(crate) const ARENA_BYTES: usize = crate::MAX_CODE_BYTES + (16 << 20);

pub(crate) struct CodeArena {
    alloc: Option<region::Allocation>,
    base: *mut u8,
    size: usize,
    /// Next free byte (offset).
    pos: usize,
    /// Pages below this offset are read+execute; from it on, read+write
    /// (unless `rwx`).
    exec_end: usize,
    /// The whole region is read+write+execute: no protection changes.
    rwx: bool,
    /// Data allocations (read-only or writable kinds), which translated
    /// code does not make but the module might.
    data: Vec<Box<[u64]>>,
}

// SAFETY: the arena is owned by one `JITModule`, itself owned by one
// translator; its raw pointer is only an address into the allocation it
// owns.
unsafe impl Send for CodeArena {}

impl CodeArena {
    /// A read+write+execute region where the host allows one, unless
    /// `FERRITE_JIT_WX` is set (pages then never writable and executable
    /// at once).
    pub(crate) fn new(size: usize) -> io::Result<CodeArena> {
        CodeArena::with_rwx(size, std::env::var_os("FERRITE_JIT_WX").is_none())
    }

    fn with_rwx(size: usize, try_rwx: bool) -> io::Result<CodeArena> {
        let page = region::page::size();
        let size = size.div_ceil(page) * page;
        let (mut alloc, rwx) = match try_rwx.then(|| region::alloc(size, region::Protection::READ_WRITE_EXECUTE)) {
            Some(Ok(a)) => (a, true),
            _ => (region::alloc(size, region::Protection::READ_WRITE).map_err(io::Error::other)?, false),
        };
        let base = alloc.as_mut_ptr::<u8>();
        Ok(CodeArena { alloc: Some(alloc), base, size, pos: 0, exec_end: 0, rwx, data: Vec::new() })
    }

    fn page_floor(&self, off: usize) -> usize {
        off / region::page::size() * region::page::size()
    }

    fn page_ceil(&self, off: usize) -> usize {
        off.div_ceil(region::page::size()) * region::page::size()
    }
}

impl JITMemoryProvider for CodeArena {
    fn allocate(&mut self, size: usize, align: u64, kind: JITMemoryKind) -> io::Result<*mut u8> {
        let align = usize::try_from(align).map_err(io::Error::other)?.max(1);
        if !matches!(kind, JITMemoryKind::Executable) {
            let words = size.div_ceil(8).max(1);
            if align > 8 {
                return Err(io::Error::other("data alignment over 8 bytes"));
            }
            let mut b = vec![0u64; words].into_boxed_slice();
            let p = b.as_mut_ptr() as *mut u8;
            self.data.push(b);
            return Ok(p);
        }
        if self.alloc.is_none() {
            return Err(io::Error::other("code arena freed"));
        }
        let start = self.pos.div_ceil(align) * align;
        let end = start
            .checked_add(size)
            .filter(|&e| e <= self.size)
            .ok_or_else(|| io::Error::new(io::ErrorKind::OutOfMemory, "code arena of this generation is full"))?;
        let first = self.page_floor(start);
        if first < self.exec_end && !self.rwx {
            // The tail of an executable page receives the new code.
            // SAFETY: [first, exec_end) lies inside the allocation, and no
            // translated code runs while the module defines code.
            unsafe {
                region::protect(self.base.add(first), self.exec_end - first, region::Protection::READ_WRITE)
                    .map_err(io::Error::other)?;
            }
            self.exec_end = first;
        }
        self.pos = end;
        // SAFETY: start + size <= self.size, inside the allocation.
        Ok(unsafe { self.base.add(start) })
    }

    unsafe fn free_memory(&mut self) {
        self.alloc = None;
        self.data.clear();
        self.pos = 0;
        self.exec_end = 0;
    }

    fn finalize(&mut self, _branch_protection: BranchProtection) -> ModuleResult<()> {
        let from = self.page_floor(self.exec_end);
        let to = self.page_ceil(self.pos);
        if to > from && self.alloc.is_some() {
            // SAFETY: [from, to) lies inside the allocation and holds code
            // just written (or already executable code of the same pages).
            unsafe {
                wasmtime_internal_jit_icache_coherence::clear_cache(self.base.add(from).cast(), to - from)
                    .map_err(alloc_err)?;
                if !self.rwx {
                    region::protect(self.base.add(from), to - from, region::Protection::READ_EXECUTE)
                        .map_err(alloc_err)?;
                }
            }
            self.exec_end = to;
        }
        wasmtime_internal_jit_icache_coherence::pipeline_flush_mt().map_err(alloc_err)?;
        Ok(())
    }
}

fn alloc_err<E: std::fmt::Display>(e: E) -> ModuleError {
    ModuleError::Allocation { err: io::Error::other(e.to_string()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_functions_share_a_page_and_bad_requests_fail() {
        for rwx in [true, false] {
            small_functions_share_a_page(CodeArena::with_rwx(1 << 20, rwx).unwrap());
        }
    }

    fn small_functions_share_a_page(mut a: CodeArena) {
        let p1 = a.allocate(10, 16, JITMemoryKind::Executable).unwrap();
        a.finalize(BranchProtection::None).unwrap();
        let p2 = a.allocate(10, 16, JITMemoryKind::Executable).unwrap();
        assert_eq!(p2 as usize - p1 as usize, 16, "packed, aligned");
        a.finalize(BranchProtection::None).unwrap();
        assert!(a.allocate(2 << 20, 16, JITMemoryKind::Executable).is_err(), "over the reservation");
        assert!(a.allocate(8, 4096 * 2, JITMemoryKind::Writable).is_err());
        // SAFETY: nothing uses the arena's memory any more.
        unsafe { a.free_memory() };
        assert!(a.allocate(8, 16, JITMemoryKind::Executable).is_err(), "freed");
    }

    /// Code written after the page became executable runs, and the code
    /// already there still runs (the page went writable and back).
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn code_appended_to_an_executable_page_runs() {
        for rwx in [true, false] {
            code_appended_runs(CodeArena::with_rwx(1 << 20, rwx).unwrap());
        }
    }

    #[cfg(target_arch = "x86_64")]
    fn code_appended_runs(mut a: CodeArena) {
        // mov eax, imm32; ret
        let put = |a: &mut CodeArena, v: u32| {
            let p = a.allocate(6, 16, JITMemoryKind::Executable).unwrap();
            let mut code = vec![0xB8];
            code.extend_from_slice(&v.to_le_bytes());
            code.push(0xC3);
            // SAFETY: p points at 6 writable bytes just allocated.
            unsafe { std::ptr::copy_nonoverlapping(code.as_ptr(), p, code.len()) };
            a.finalize(BranchProtection::None).unwrap();
            // SAFETY: the bytes are a complete function of this signature,
            // now executable.
            unsafe { std::mem::transmute::<*mut u8, extern "C" fn() -> u32>(p) }
        };
        let f1 = put(&mut a, 0x1234_5678);
        assert_eq!(f1(), 0x1234_5678);
        let f2 = put(&mut a, 42);
        assert_eq!(f2(), 42);
        assert_eq!(f1(), 0x1234_5678);
    }
}
