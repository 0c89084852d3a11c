//! Guest physical memory: one anonymous host mapping holds RAM and ROM
//! images, and a page-granular map (one entry per 4 KiB of the 4 GiB physical
//! space) says what each page is. The A20 gate masks physical bit 20.
//!
//! Pages that hold decoded code carry a `CODE` bit; the first write to such a
//! page clears the bit and queues the page number so the CPU's decode cache
//! (and later the JIT) drops what it derived from it. CPU stores and device DMA
//! take the same path, so self-modifying code and DMA into code both work.

use crate::bus::{AccessSize, Bus};
use memmap2::MmapMut;
use thiserror::Error;

/// A guest physical address (after segmentation, paging and the A20 gate).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct PhysAddr(pub u32);

impl PhysAddr {
    /// The 4 KiB page number.
    pub fn page(self) -> u32 {
        self.0 >> PAGE_SHIFT
    }
    /// Offset inside the 4 KiB page.
    pub fn page_offset(self) -> u32 {
        self.0 & PAGE_MASK
    }
}

pub const PAGE_SHIFT: u32 = 12;
pub const PAGE_SIZE: u32 = 1 << PAGE_SHIFT;
pub const PAGE_MASK: u32 = PAGE_SIZE - 1;
const NUM_PAGES: usize = 1 << (32 - PAGE_SHIFT);

/// What a physical page is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PageKind {
    /// Nothing decodes this address: reads are all-ones, writes vanish.
    Unmapped,
    /// Read/write memory backed by the host mapping.
    Ram,
    /// Read-only memory backed by the host mapping; guest writes are dropped.
    Rom,
    /// Memory-mapped I/O: accesses go to the [`Bus`].
    Mmio,
}

#[derive(Debug, Error)]
pub enum MemError {
    #[error("guest RAM size {0} bytes is not a non-zero multiple of 4 KiB below 3.5 GiB")]
    BadRamSize(usize),
    #[error("cannot allocate {bytes} bytes of host memory for the guest: {source}")]
    Alloc { bytes: usize, source: std::io::Error },
    #[error("region at {base:#x} of {len:#x} bytes is not page-aligned or leaves the 4 GiB space")]
    BadRegion { base: u32, len: u64 },
    #[error("region at {base:#x} overlaps RAM or another mapping")]
    Overlap { base: u32 },
    #[error("ROM images total more than the reserved {0} bytes")]
    RomSpace(usize),
}

/// Bytes of plain RAM inside one page, found from a host pointer
/// ([`GuestMemory::ram_span`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RamSpan {
    off: usize,
    len: usize,
}

impl RamSpan {
    /// Its length in bytes (at least 1).
    #[allow(clippy::len_without_is_empty)]
    pub fn len(self) -> usize {
        self.len
    }
}

// Page entry layout: bits 0..2 kind, bit 3 CODE, bits 12..31 backing page index.
const KIND_MASK: u32 = 0x7;
const K_UNMAPPED: u32 = 0;
const K_RAM: u32 = 1;
const K_ROM: u32 = 2;
const K_MMIO: u32 = 3;
/// Reads from the backing page (ROM), writes go to the RAM under it
/// (chipset shadowing "write RAM, read ROM" used while copying a BIOS).
const K_ROM_WRITE_RAM: u32 = 4;
const CODE_BIT: u32 = 1 << 3;

/// Room reserved after RAM for ROM images (BIOS, option ROMs, aliases share
/// their backing pages).
const ROM_RESERVE: usize = 2 << 20;

/// Host memory after the ROM reserve for devices' own memory (the VGA's
/// video memory behind its linear framebuffer BAR), mapped into the
/// physical space where the device's BAR puts it
/// ([`GuestMemory::map_device_ram`]). Anonymous memory: pages never
/// touched cost nothing.
pub const DEVICE_RAM_BYTES: usize = 16 << 20;

/// Guest physical memory and the physical memory map.
pub struct GuestMemory {
    backing: MmapMut,
    ram_bytes: usize,
    rom_used: usize,
    pages: Vec<u32>,
    /// The map entries of the legacy BIOS area (0xC0000-0xFFFFF) before
    /// the first shadow-RAM change, so ROM can be mapped back.
    shadow_rom: Option<Vec<u32>>,
    a20_mask: u32,
    invalidated: Vec<u32>,
    /// Bumped whenever a page gains the CODE bit or the map changes, so
    /// translated code can drop cached host pointers for writes.
    map_gen: u32,
}

impl std::fmt::Debug for GuestMemory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GuestMemory").field("ram_bytes", &self.ram_bytes).field("a20", &self.a20_enabled()).finish()
    }
}

impl GuestMemory {
    /// RAM of `ram_bytes` bytes at physical 0, the A20 gate enabled, nothing
    /// else mapped.
    pub fn new(ram_bytes: usize) -> Result<Self, MemError> {
        if ram_bytes == 0 || !ram_bytes.is_multiple_of(PAGE_SIZE as usize) || ram_bytes > 0xE000_0000 {
            return Err(MemError::BadRamSize(ram_bytes));
        }
        let total = ram_bytes + ROM_RESERVE + DEVICE_RAM_BYTES;
        let backing = MmapMut::map_anon(total).map_err(|source| MemError::Alloc { bytes: total, source })?;
        let mut pages = vec![K_UNMAPPED; NUM_PAGES];
        for (i, p) in pages.iter_mut().enumerate().take(ram_bytes >> PAGE_SHIFT) {
            *p = K_RAM | ((i as u32) << PAGE_SHIFT);
        }
        Ok(GuestMemory {
            backing,
            ram_bytes,
            rom_used: 0,
            pages,
            shadow_rom: None,
            a20_mask: u32::MAX,
            invalidated: Vec::new(),
            map_gen: 0,
        })
    }

    /// Bytes of RAM at physical 0.
    pub fn ram_size(&self) -> usize {
        self.ram_bytes
    }

    /// Map a ROM image at `base` (page-aligned; the length is rounded up to
    /// whole pages, padding reads as 0xFF). Returns the first backing page so
    /// the same image can be aliased with [`GuestMemory::alias_rom`].
    pub fn map_rom(&mut self, base: PhysAddr, image: &[u8]) -> Result<u32, MemError> {
        let npages = image.len().div_ceil(PAGE_SIZE as usize);
        self.check_region(base, (npages as u64) << PAGE_SHIFT)?;
        let bytes = npages << PAGE_SHIFT;
        if self.rom_used + bytes > ROM_RESERVE {
            return Err(MemError::RomSpace(ROM_RESERVE));
        }
        let start = self.ram_bytes + self.rom_used;
        self.backing[start..start + bytes].fill(0xFF);
        self.backing[start..start + image.len()].copy_from_slice(image);
        self.rom_used += bytes;
        let first = (start >> PAGE_SHIFT) as u32;
        self.alias_rom(base, first, npages as u32)?;
        Ok(first)
    }

    /// Map `npages` already-loaded ROM backing pages, starting at backing
    /// page `first`, at `base` too (e.g. the BIOS below 1 MiB and at 4 GiB).
    pub fn alias_rom(&mut self, base: PhysAddr, first: u32, npages: u32) -> Result<(), MemError> {
        self.map_gen = self.map_gen.wrapping_add(1);
        self.check_region(base, (npages as u64) << PAGE_SHIFT)?;
        for i in 0..npages {
            self.remap_page(base.page() + i, K_ROM | ((first + i) << PAGE_SHIFT));
        }
        Ok(())
    }

    /// Route `len` bytes at `base` (page-aligned) to the bus as MMIO. This may
    /// cover RAM (e.g. the legacy VGA window at 0xA0000).
    pub fn map_mmio(&mut self, base: PhysAddr, len: u32) -> Result<(), MemError> {
        self.map_gen = self.map_gen.wrapping_add(1);
        self.check_region(base, len as u64)?;
        for p in base.page()..base.page() + len.div_ceil(PAGE_SIZE) {
            self.remap_page(p, K_MMIO);
        }
        Ok(())
    }

    /// Give page `p` a new map entry. Decoded or translated code from the
    /// page's old contents is reported through
    /// [`GuestMemory::take_invalidated`], as for a write into it.
    fn remap_page(&mut self, p: u32, entry: u32) {
        let old = self.pages[p as usize];
        if old & CODE_BIT != 0 && old & !CODE_BIT != entry {
            self.invalidated.push(p);
        }
        self.pages[p as usize] = entry;
    }

    /// Remove ROM mapped at `base` (an expansion ROM BAR turned off or
    /// moved): its pages become RAM again below the top of RAM, unmapped
    /// elsewhere. Other pages keep what they are.
    pub fn unmap_rom(&mut self, base: PhysAddr, len: u32) -> Result<(), MemError> {
        self.unmap_where(base, len, |e, _| e & KIND_MASK == K_ROM)
    }

    /// Pages of `base..base+len` whose entry `matches` go back to what is
    /// under them: RAM below the top of RAM, unmapped elsewhere.
    fn unmap_where(&mut self, base: PhysAddr, len: u32, matches: impl Fn(u32, &Self) -> bool) -> Result<(), MemError> {
        self.check_region(base, len as u64)?;
        self.map_gen = self.map_gen.wrapping_add(1);
        for p in base.page()..base.page() + len.div_ceil(PAGE_SIZE) {
            if matches(self.pages[p as usize], self) {
                let e =
                    if ((p as usize) << PAGE_SHIFT) < self.ram_bytes { K_RAM | (p << PAGE_SHIFT) } else { K_UNMAPPED };
                self.remap_page(p, e);
            }
        }
        Ok(())
    }

    /// Offset of device memory in the backing store.
    fn device_ram_start(&self) -> usize {
        self.ram_bytes + ROM_RESERVE
    }

    /// Map `len` bytes of device memory from `offset` at physical `base`
    /// as RAM (guest accesses run at RAM speed, also from translated
    /// code). Pages holding ROM keep it. Code decoded from the pages it
    /// covers is reported through [`GuestMemory::take_invalidated`].
    pub fn map_device_ram(&mut self, base: PhysAddr, offset: u32, len: u32) -> Result<(), MemError> {
        self.check_region(base, len as u64)?;
        if !offset.is_multiple_of(PAGE_SIZE) || offset as usize + len as usize > DEVICE_RAM_BYTES {
            return Err(MemError::BadRegion { base: offset, len: len as u64 });
        }
        self.map_gen = self.map_gen.wrapping_add(1);
        let first = ((self.device_ram_start() + offset as usize) >> PAGE_SHIFT) as u32;
        for i in 0..len.div_ceil(PAGE_SIZE) {
            let p = base.page() + i;
            if !matches!(self.pages[p as usize] & KIND_MASK, K_ROM | K_ROM_WRITE_RAM) {
                self.remap_page(p, K_RAM | ((first + i) << PAGE_SHIFT));
            }
        }
        Ok(())
    }

    /// Undo [`GuestMemory::map_device_ram`] for a range: pages that show
    /// device memory become RAM again below the top of RAM, unmapped
    /// elsewhere.
    pub fn unmap_device_ram(&mut self, base: PhysAddr, len: u32) -> Result<(), MemError> {
        self.unmap_where(base, len, |e, m| {
            let dev = m.device_ram_start()..m.device_ram_start() + DEVICE_RAM_BYTES;
            e & KIND_MASK == K_RAM && dev.contains(&((e & !PAGE_MASK) as usize))
        })
    }

    /// The device memory (what the guest wrote through its mappings).
    pub fn device_ram(&self) -> &[u8] {
        let s = self.device_ram_start();
        &self.backing[s..s + DEVICE_RAM_BYTES]
    }

    /// The device memory, for the device's own writes (clearing on a mode
    /// set).
    pub fn device_ram_mut(&mut self) -> &mut [u8] {
        let s = self.device_ram_start();
        &mut self.backing[s..s + DEVICE_RAM_BYTES]
    }

    /// Put RAM back under a page range that was made MMIO or ROM.
    pub fn map_ram(&mut self, base: PhysAddr, len: u32) -> Result<(), MemError> {
        self.map_gen = self.map_gen.wrapping_add(1);
        self.check_region(base, len as u64)?;
        for p in base.page()..base.page() + len.div_ceil(PAGE_SIZE) {
            if (p as usize) < (self.ram_bytes >> PAGE_SHIFT) {
                self.pages[p as usize] = K_RAM | (p << PAGE_SHIFT);
            }
        }
        Ok(())
    }

    fn check_region(&self, base: PhysAddr, len: u64) -> Result<(), MemError> {
        if base.page_offset() != 0 || !len.is_multiple_of(PAGE_SIZE as u64) || base.0 as u64 + len > 1 << 32 {
            return Err(MemError::BadRegion { base: base.0, len });
        }
        Ok(())
    }

    /// Chipset shadow-RAM control (i440FX PAM) for `len` bytes at `base`
    /// inside the legacy BIOS area 0xC0000-0xFFFFF: reads come from RAM or
    /// from what was mapped there (ROM), writes go to RAM or are dropped.
    /// Returns false (and changes nothing) outside that area or where RAM
    /// does not reach. The caller flushes decoded code afterwards.
    pub fn set_shadow(&mut self, base: PhysAddr, len: u32, read_ram: bool, write_ram: bool) -> bool {
        const FIRST: u32 = 0xC0000 >> PAGE_SHIFT;
        const END: u32 = 0x100000 >> PAGE_SHIFT;
        let (start, end) = (base.page(), base.0.saturating_add(len).div_ceil(PAGE_SIZE));
        if start < FIRST || end > END || (end as usize) << PAGE_SHIFT > self.ram_bytes {
            return false;
        }
        self.map_gen = self.map_gen.wrapping_add(1);
        let pages = &self.pages;
        let rom = self.shadow_rom.get_or_insert_with(|| pages[FIRST as usize..END as usize].to_vec());
        for p in start..end {
            let orig = rom[(p - FIRST) as usize];
            let ram = K_RAM | (p << PAGE_SHIFT);
            self.pages[p as usize] = match (read_ram, write_ram) {
                (true, true) => ram,
                // Read-only RAM: ROM semantics over the RAM backing.
                (true, false) => K_ROM | (p << PAGE_SHIFT),
                (false, true) if orig & KIND_MASK == K_ROM => K_ROM_WRITE_RAM | (orig & !PAGE_MASK),
                // Nothing readable there: writes still reach RAM.
                (false, true) => K_ROM_WRITE_RAM | (p << PAGE_SHIFT),
                (false, false) => orig,
            };
        }
        true
    }

    /// Open or close the A20 gate. Closed, physical bit 20 reads as zero
    /// (8086 wrap-around at 1 MiB).
    pub fn set_a20(&mut self, enabled: bool) {
        self.map_gen = self.map_gen.wrapping_add(1);
        self.a20_mask = if enabled { u32::MAX } else { !(1 << 20) };
    }

    pub fn a20_enabled(&self) -> bool {
        self.a20_mask == u32::MAX
    }

    /// The mask the MMU applies to every physical address.
    pub fn a20_mask(&self) -> u32 {
        self.a20_mask
    }

    /// What the page at `addr` is.
    pub fn page_kind(&self, addr: PhysAddr) -> PageKind {
        match self.pages[addr.page() as usize] & KIND_MASK {
            K_RAM => PageKind::Ram,
            K_ROM | K_ROM_WRITE_RAM => PageKind::Rom,
            K_MMIO => PageKind::Mmio,
            _ => PageKind::Unmapped,
        }
    }

    /// Offset of `addr` in the backing mapping, for RAM and ROM pages.
    #[inline]
    fn backing_offset(&self, entry: u32, addr: PhysAddr) -> usize {
        ((entry & !PAGE_MASK) | addr.page_offset()) as usize
    }

    /// Read `size` bytes at `addr` (little-endian), from RAM, ROM, MMIO or the
    /// open bus. Accesses that cross a page are split.
    #[inline]
    pub fn read(&self, addr: PhysAddr, size: AccessSize, bus: &mut dyn Bus) -> u32 {
        let n = size.bytes();
        if addr.page_offset() + n <= PAGE_SIZE {
            let entry = self.pages[addr.page() as usize];
            match entry & KIND_MASK {
                K_RAM | K_ROM | K_ROM_WRITE_RAM => {
                    let o = self.backing_offset(entry, addr);
                    let b = &self.backing[o..o + n as usize];
                    match size {
                        AccessSize::Byte => b[0] as u32,
                        AccessSize::Word => u16::from_le_bytes([b[0], b[1]]) as u32,
                        AccessSize::Dword => u32::from_le_bytes([b[0], b[1], b[2], b[3]]),
                    }
                }
                K_MMIO => bus.mmio_read(addr, size),
                _ => size.all_ones(),
            }
        } else {
            let mut v = 0;
            for i in 0..n {
                let a = PhysAddr(addr.0.wrapping_add(i));
                v |= self.read(a, AccessSize::Byte, bus) << (8 * i);
            }
            v
        }
    }

    /// Write `size` bytes at `addr` (little-endian). ROM and unmapped pages
    /// drop the write; a write to a page holding code queues an invalidation.
    #[inline]
    pub fn write(&mut self, addr: PhysAddr, size: AccessSize, value: u32, bus: &mut dyn Bus) {
        let n = size.bytes();
        if addr.page_offset() + n <= PAGE_SIZE {
            let page = addr.page() as usize;
            let entry = self.pages[page];
            match entry & KIND_MASK {
                K_RAM => {
                    if entry & CODE_BIT != 0 {
                        self.pages[page] &= !CODE_BIT;
                        self.invalidated.push(page as u32);
                    }
                    let o = self.backing_offset(entry, addr);
                    let bytes = value.to_le_bytes();
                    self.backing[o..o + n as usize].copy_from_slice(&bytes[..n as usize]);
                }
                K_ROM_WRITE_RAM => {
                    // The RAM under a legacy-area page has the page's own
                    // number as its backing page.
                    let o = (addr.page() << PAGE_SHIFT | addr.page_offset()) as usize;
                    let bytes = value.to_le_bytes();
                    self.backing[o..o + n as usize].copy_from_slice(&bytes[..n as usize]);
                }
                K_MMIO => bus.mmio_write(addr, size, value),
                _ => {}
            }
        } else {
            for i in 0..n {
                let a = PhysAddr(addr.0.wrapping_add(i));
                self.write(a, AccessSize::Byte, (value >> (8 * i)) & 0xFF, bus);
            }
        }
    }

    /// Copy `bytes` into memory at `addr` as a loader would: RAM and ROM
    /// backing are both written (ROM contents can be set this way), MMIO and
    /// unmapped pages are skipped. Code on the touched pages is invalidated.
    pub fn load(&mut self, addr: PhysAddr, bytes: &[u8]) {
        for (i, &b) in bytes.iter().enumerate() {
            let a = PhysAddr(addr.0.wrapping_add(i as u32));
            let page = a.page() as usize;
            let entry = self.pages[page];
            if matches!(entry & KIND_MASK, K_RAM | K_ROM | K_ROM_WRITE_RAM) {
                if entry & CODE_BIT != 0 {
                    self.pages[page] &= !CODE_BIT;
                    self.invalidated.push(page as u32);
                }
                let o = self.backing_offset(entry, a);
                self.backing[o] = b;
            }
        }
    }

    /// Read one byte of RAM or ROM without side effects (MMIO and unmapped
    /// read as 0xFF). For debuggers, tests and loaders.
    pub fn peek(&self, addr: PhysAddr) -> u8 {
        let entry = self.pages[addr.page() as usize];
        match entry & KIND_MASK {
            K_RAM | K_ROM | K_ROM_WRITE_RAM => self.backing[self.backing_offset(entry, addr)],
            _ => 0xFF,
        }
    }

    /// Mark the page at `addr` as holding decoded code, so the next write to
    /// it is reported through [`GuestMemory::take_invalidated`].
    pub fn mark_code(&mut self, addr: PhysAddr) {
        let e = &mut self.pages[addr.page() as usize];
        if *e & KIND_MASK == K_RAM && *e & CODE_BIT == 0 {
            *e |= CODE_BIT;
            self.map_gen = self.map_gen.wrapping_add(1);
        }
    }

    /// True when the RAM page holding `addr` holds decoded code (a write to
    /// it invalidates translations).
    #[inline]
    pub fn holds_code(&self, addr: PhysAddr) -> bool {
        let e = self.pages[addr.page() as usize];
        e & KIND_MASK == K_RAM && e & CODE_BIT != 0
    }

    /// Changes whenever a page gains the CODE bit or the memory map or the
    /// A20 gate changes: host pointers from [`GuestMemory::host_page`]
    /// taken under another value may no longer be used for writes.
    #[inline]
    pub fn map_gen(&self) -> u32 {
        self.map_gen
    }

    /// The host address of RAM page `page`, for translated code's direct
    /// loads and stores. Writable only while the page holds no code (a
    /// write must then take the path that invalidates translations). None
    /// for ROM, MMIO and unmapped pages.
    pub fn host_page(&mut self, page: u32, write: bool) -> Option<*mut u8> {
        let entry = *self.pages.get(page as usize)?;
        if entry & KIND_MASK != K_RAM || (write && entry & CODE_BIT != 0) {
            return None;
        }
        let o = (entry & !PAGE_MASK) as usize;
        Some(self.backing[o..o + PAGE_SIZE as usize].as_mut_ptr())
    }

    /// The `len` bytes at host address `host` (inside a page of
    /// [`GuestMemory::host_page`], as translated code computes them), when
    /// they lie in one page of the backing store. Nothing else is checked:
    /// the caller found them through its own TLB of such pages.
    pub fn ram_span(&self, host: *const u8, len: usize) -> Option<RamSpan> {
        let off = (host as usize).checked_sub(self.backing.as_ptr() as usize)?;
        let page = PAGE_SIZE as usize;
        (len > 0 && off % page + len <= page && off + len <= self.backing.len()).then_some(RamSpan { off, len })
    }

    /// Read the bytes of `span` into `buf` (of the same length).
    pub fn read_span(&self, span: RamSpan, buf: &mut [u8]) {
        buf.copy_from_slice(&self.backing[span.off..span.off + span.len]);
    }

    /// Write `data` (of the span's length) to `span`.
    pub fn write_span(&mut self, span: RamSpan, data: &[u8]) {
        self.backing[span.off..span.off + span.len].copy_from_slice(data);
    }

    /// Backing offset of `len` bytes at `addr` when they lie in one plain
    /// RAM page (and, for a write, one without decoded code).
    fn ram_range(&self, addr: PhysAddr, len: u32, write: bool) -> Option<usize> {
        if addr.page_offset() + len > PAGE_SIZE {
            return None;
        }
        let entry = *self.pages.get(addr.page() as usize)?;
        if entry & KIND_MASK != K_RAM || (write && entry & CODE_BIT != 0) {
            return None;
        }
        Some(self.backing_offset(entry, addr))
    }

    /// Copy `len` bytes from `src` to `dst` as REP MOVS does element by
    /// element, when both ranges are plain RAM within one page each and the
    /// destination page holds no code (whose writes must be seen one by
    /// one). A destination that overlaps the source from above (where the
    /// element-wise copy repeats the pattern) is refused too. False: nothing
    /// was copied.
    pub fn copy_ram(&mut self, src: PhysAddr, dst: PhysAddr, len: u32) -> bool {
        let (Some(s), Some(d)) = (self.ram_range(src, len, false), self.ram_range(dst, len, true)) else {
            return false;
        };
        let n = len as usize;
        if d > s && d < s + n {
            return false;
        }
        // Forward element-wise copying with the destination below (or
        // apart from) the source gives what a memmove gives.
        self.backing.copy_within(s..s + n, d);
        true
    }

    /// Store `count` copies of `elem` from `dst` on (REP STOS), under the
    /// same conditions as [`GuestMemory::copy_ram`].
    pub fn fill_ram(&mut self, dst: PhysAddr, elem: &[u8], count: u32) -> bool {
        let len = elem.len() as u32 * count;
        let Some(d) = self.ram_range(dst, len, true) else { return false };
        if elem.iter().all(|b| *b == elem[0]) {
            self.backing[d..d + len as usize].fill(elem[0]);
        } else {
            for chunk in self.backing[d..d + len as usize].chunks_exact_mut(elem.len()) {
                chunk.copy_from_slice(elem);
            }
        }
        true
    }

    /// True when written code pages are waiting to be invalidated.
    #[inline]
    pub fn has_invalidated(&self) -> bool {
        !self.invalidated.is_empty()
    }

    /// Page numbers that held code and were written since the last call.
    pub fn take_invalidated(&mut self) -> Vec<u32> {
        std::mem::take(&mut self.invalidated)
    }

    /// Host slice of a whole RAM or ROM page (for instruction fetch and the
    /// decoder). None for MMIO and unmapped pages.
    pub fn page_slice(&self, page: u32) -> Option<&[u8]> {
        let entry = self.pages[page as usize];
        match entry & KIND_MASK {
            K_RAM | K_ROM | K_ROM_WRITE_RAM => {
                let o = (entry & !PAGE_MASK) as usize;
                Some(&self.backing[o..o + PAGE_SIZE as usize])
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bus::NullBus;

    #[test]
    fn device_ram_maps_at_a_bar_and_leaves_ram_and_rom_intact() {
        let mut m = GuestMemory::new(1 << 20).unwrap();
        let mut bus = NullBus;
        m.map_rom(PhysAddr(0xFFFF_0000), &[0x5A; 0x1000]).unwrap();
        m.map_device_ram(PhysAddr(0xE000_0000), 0x2000, 0x4000).unwrap();
        m.write(PhysAddr(0xE000_1004), AccessSize::Dword, 0x1234_5678, &mut bus);
        assert_eq!(&m.device_ram()[0x3004..0x3008], &[0x78, 0x56, 0x34, 0x12]);
        assert_eq!(m.page_kind(PhysAddr(0xE000_3000)), PageKind::Ram);
        // Over RAM and over ROM (a BAR being sized): RAM comes back, ROM stays.
        m.map_device_ram(PhysAddr(0xF000), 0, 0x2000).unwrap();
        m.map_device_ram(PhysAddr(0xFFFF_0000), 0, 0x1000).unwrap();
        assert_eq!(m.read(PhysAddr(0xFFFF_0000), AccessSize::Byte, &mut bus), 0x5A);
        m.unmap_device_ram(PhysAddr(0xF000), 0x2000).unwrap();
        m.unmap_device_ram(PhysAddr(0xE000_0000), 0x4000).unwrap();
        m.unmap_device_ram(PhysAddr(0xFFFF_0000), 0x1000).unwrap();
        assert_eq!(m.page_kind(PhysAddr(0xF000)), PageKind::Ram);
        assert_eq!(m.page_kind(PhysAddr(0x10_0000)), PageKind::Unmapped);
        assert_eq!(m.page_kind(PhysAddr(0xE000_0000)), PageKind::Unmapped);
        assert_eq!(m.read(PhysAddr(0xFFFF_0000), AccessSize::Byte, &mut bus), 0x5A);
        assert!(m.map_device_ram(PhysAddr(0xE000_0000), 0, (DEVICE_RAM_BYTES + 4096) as u32).is_err());
        // Code decoded from a page that a remap takes away is invalidated.
        m.map_device_ram(PhysAddr(0xE000_0000), 0, 0x1000).unwrap();
        m.mark_code(PhysAddr(0xE000_0000));
        m.unmap_device_ram(PhysAddr(0xE000_0000), 0x1000).unwrap();
        assert_eq!(m.take_invalidated(), vec![0xE000_0000 >> PAGE_SHIFT]);
    }

    #[test]
    fn ram_reads_back_what_was_written_little_endian() {
        let mut m = GuestMemory::new(1 << 20).unwrap();
        let mut bus = NullBus;
        m.write(PhysAddr(0x1234), AccessSize::Dword, 0xDEAD_BEEF, &mut bus);
        assert_eq!(m.read(PhysAddr(0x1234), AccessSize::Byte, &mut bus), 0xEF);
        assert_eq!(m.read(PhysAddr(0x1236), AccessSize::Word, &mut bus), 0xDEAD);
    }

    #[test]
    fn access_crossing_a_page_is_split() {
        let mut m = GuestMemory::new(1 << 20).unwrap();
        let mut bus = NullBus;
        m.write(PhysAddr(0x0FFE), AccessSize::Dword, 0x4433_2211, &mut bus);
        assert_eq!(m.peek(PhysAddr(0x1000)), 0x33);
        assert_eq!(m.read(PhysAddr(0x0FFE), AccessSize::Dword, &mut bus), 0x4433_2211);
    }

    #[test]
    fn unmapped_reads_all_ones_and_ignores_writes() {
        let mut m = GuestMemory::new(1 << 20).unwrap();
        let mut bus = NullBus;
        m.write(PhysAddr(0x0020_0000), AccessSize::Word, 0, &mut bus);
        assert_eq!(m.read(PhysAddr(0x0020_0000), AccessSize::Word, &mut bus), 0xFFFF);
        // A dword straddling the end of RAM reads RAM bytes then open bus.
        m.write(PhysAddr(0xFFFFE), AccessSize::Word, 0xABCD, &mut bus);
        assert_eq!(m.read(PhysAddr(0xFFFFE), AccessSize::Dword, &mut bus), 0xFFFF_ABCD);
    }

    #[test]
    fn rom_is_read_only_and_can_be_aliased() {
        let mut m = GuestMemory::new(1 << 20).unwrap();
        let mut bus = NullBus;
        let first = m.map_rom(PhysAddr(0xFFFF_0000), &[1, 2, 3]).unwrap();
        m.alias_rom(PhysAddr(0xF0000), first, 16).unwrap();
        m.write(PhysAddr(0xF0000), AccessSize::Byte, 9, &mut bus);
        assert_eq!(m.read(PhysAddr(0xF0000), AccessSize::Word, &mut bus), 0x0201);
        assert_eq!(m.read(PhysAddr(0xFFFF_0002), AccessSize::Word, &mut bus), 0xFF03);
    }

    #[test]
    fn writing_a_code_page_queues_one_invalidation() {
        let mut m = GuestMemory::new(1 << 20).unwrap();
        let mut bus = NullBus;
        m.mark_code(PhysAddr(0x7C00));
        m.write(PhysAddr(0x7C10), AccessSize::Byte, 0x90, &mut bus);
        m.write(PhysAddr(0x7C11), AccessSize::Byte, 0x90, &mut bus);
        assert_eq!(m.take_invalidated(), vec![7]);
        assert!(!m.has_invalidated());
    }

    #[test]
    fn shadow_ram_copies_a_bios_into_ram_and_write_protects_it() {
        let mut m = GuestMemory::new(1 << 20).unwrap();
        let mut bus = NullBus;
        let first = m.map_rom(PhysAddr(0xFFFF_0000), &[0xAA; 0x10000]).unwrap();
        m.alias_rom(PhysAddr(0xF0000), first, 16).unwrap();
        // Read ROM, write RAM: copy the BIOS onto itself.
        assert!(m.set_shadow(PhysAddr(0xF0000), 0x10000, false, true));
        let v = m.read(PhysAddr(0xF1234), AccessSize::Byte, &mut bus);
        m.write(PhysAddr(0xF1234), AccessSize::Byte, v ^ 0x0F, &mut bus);
        assert_eq!(m.read(PhysAddr(0xF1234), AccessSize::Byte, &mut bus), 0xAA, "reads still from ROM");
        // Read RAM, write RAM: the copy is visible.
        assert!(m.set_shadow(PhysAddr(0xF0000), 0x10000, true, true));
        assert_eq!(m.read(PhysAddr(0xF1234), AccessSize::Byte, &mut bus), 0xA5);
        // Read-only RAM: writes dropped, RAM contents stay.
        assert!(m.set_shadow(PhysAddr(0xF0000), 0x10000, true, false));
        m.write(PhysAddr(0xF1234), AccessSize::Byte, 0, &mut bus);
        assert_eq!(m.read(PhysAddr(0xF1234), AccessSize::Byte, &mut bus), 0xA5);
        // Back to ROM.
        assert!(m.set_shadow(PhysAddr(0xF0000), 0x10000, false, false));
        assert_eq!(m.read(PhysAddr(0xF1234), AccessSize::Byte, &mut bus), 0xAA);
        assert!(!m.set_shadow(PhysAddr(0xB0000), 0x1000, true, true), "outside the legacy area");
    }

    #[test]
    fn bad_sizes_and_regions_are_typed_errors() {
        assert!(matches!(GuestMemory::new(1000), Err(MemError::BadRamSize(1000))));
        let mut m = GuestMemory::new(1 << 20).unwrap();
        assert!(matches!(m.map_mmio(PhysAddr(0x123), 0x1000), Err(MemError::BadRegion { .. })));
    }
}
