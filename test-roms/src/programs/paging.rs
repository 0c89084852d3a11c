//! `paging`: 32-bit paging (SDM vol. 3, chapter 4).
//!
//! - enable: CR3/CR0.PG with an identity map, execution continues; CR0.PG
//!   without PE is #GP(0);
//! - accessed/dirty: the walk sets PDE.A and PTE.A on a read, PTE.D on a
//!   write, and the 4 MiB PDE's A/D bits;
//! - faults: #PF error codes (P, W/R, U/S, RSVD) and CR2 for not-present
//!   PTEs and PDEs, supervisor pages from ring 3 (data and fetch),
//!   read-only pages from ring 3, rights combined from PDE and PTE,
//!   supervisor writes to read-only pages with CR0.WP off (allowed) and on
//!   (fault), instruction fetches, and an access split across a present and
//!   a not-present page (CR2 = the second page, nothing written);
//! - TLB: after a PTE change the stale translation is used until INVLPG,
//!   a CR3 reload drops it; with CR4.PGE a global entry survives the CR3
//!   reload but not INVLPG or clearing CR4.PGE;
//! - 4 MiB pages with CR4.PSE, including a read-only one, reserved bits,
//!   and INVLPG dropping every cached piece of a large page;
//! - paging off again.

use super::asm::{Code, Image, R};
use super::rt::{self, Tss32, *};
use super::Program;
use iced_x86::code_asm::*;

const PROG: &str = "paging";

const PD: u32 = 0x10_0000;
const PT0: u32 = 0x10_1000;
const PT3: u32 = 0x10_2000;
/// Page table under PDE 5, whose PDE denies what its PTEs allow.
const PT5: u32 = 0x10_3000;
/// Physical pages the test mappings point at (identity-mapped too).
const PHYS_A: u32 = 0x18_0000;
const PHYS_B: u32 = 0x18_1000;
const MARK_A: u32 = 0xAAAA_0000;
const MARK_B: u32 = 0xBBBB_0000;
/// Test linear pages: PDE 3, PTE 0x300 and up, so their TLB slots (linear
/// page number mod 1024 in ferrite's direct-mapped TLB, and likely distinct
/// sets on hardware) differ from the code, stack and variable pages.
const T: u32 = 0x00F0_0000;
const fn t(k: u32) -> u32 {
    T + k * 0x1000
}
const fn pte(k: u32) -> u32 {
    PT3 + (0x300 + k) * 4
}
const P: u32 = 1;
const W: u32 = 2;
const U: u32 = 4;
const A: u32 = 0x20;
const D: u32 = 0x40;
const PS: u32 = 0x80;
const G: u32 = 0x100;

pub fn program() -> Program {
    let image = rt::protected_program(PROG, body, |_, _| {}, Tss32::default(), |_| Ok(()));
    Program { name: PROG, image, load_addr: LOAD }
}

fn body(c: &mut Code, img: &mut Image) -> R {
    enable(c, img)?;
    accessed_dirty(c)?;
    faults(c, img)?;
    user_faults(c, img)?;
    tlb(c, img)?;
    global(c)?;
    pse(c, img)?;
    disable(c)?;
    rt::finish(c)
}

fn set_pte(c: &mut Code, k: u32, v: u32) -> R {
    c.mov(dword_ptr(pte(k)), v)
}

fn reload_cr3(c: &mut Code) -> R {
    c.mov(eax, cr3)?;
    c.mov(cr3, eax)
}

fn enable(c: &mut Code, img: &mut Image) -> R {
    c.section()?;
    c.mov(edi, PD)?;
    c.mov(ecx, 3 * 1024u32)?;
    c.xor(eax, eax)?;
    c.rep().stosd()?;
    c.mov(edi, PT0)?;
    c.mov(eax, P | W | U)?;
    c.mov(ecx, 1024u32)?;
    let mut l = c.fresh();
    c.set(&mut l)?;
    c.stosd()?;
    c.add(eax, 0x1000)?;
    c.loop_(l)?;
    c.mov(dword_ptr(PD), PT0 | P | W | U)?;
    c.mov(dword_ptr(PD + 3 * 4), PT3 | P | W | U)?;
    c.mov(dword_ptr(PHYS_A), MARK_A)?;
    c.mov(dword_ptr(PHYS_B), MARK_B)?;
    c.mov(eax, PD)?;
    c.mov(cr3, eax)?;
    c.mov(eax, cr0)?;
    c.mov(ebx, eax)?;
    c.and(ebx, !1u32)?;
    c.or(ebx, 0x8000_0000u32)?;
    c.fault(img, "CR0.PG without PE", 13, Some(0), |c| c.mov(cr0, ebx))?;
    c.or(eax, 0x8000_0000u32)?;
    c.mov(cr0, eax)?;
    let mut next = c.fresh();
    c.jmp(next)?;
    c.set(&mut next)?;
    c.mov(eax, cr0)?;
    c.and(eax, 0x8001_0001u32)?;
    c.check_r32(eax, 0x8000_0001, "CR0 PG|PE, WP clear")?;
    c.mov(eax, cr3)?;
    c.check_r32(eax, PD, "CR3")?;
    // The code page's own walk set the accessed bits.
    c.mov(eax, dword_ptr(PD))?;
    c.and(eax, A)?;
    c.check_r32(eax, A, "PDE 0 accessed after enabling")?;
    c.mov(eax, dword_ptr(PT0 + (CODE32 >> 12) * 4))?;
    c.and(eax, A | D)?;
    c.check_r32(eax, A, "code PTE accessed, not dirty")?;
    c.section_ok("enable")
}

fn accessed_dirty(c: &mut Code) -> R {
    c.section()?;
    set_pte(c, 0, PHYS_A | P | W)?;
    reload_cr3(c)?;
    c.mov(eax, dword_ptr(t(0)))?;
    c.check_r32(eax, MARK_A, "read through new mapping")?;
    c.mov(eax, dword_ptr(pte(0)))?;
    c.check_r32(eax, PHYS_A | P | W | A, "PTE after read (A set, D clear)")?;
    c.mov(eax, dword_ptr(PD + 3 * 4))?;
    c.check_r32(eax, PT3 | P | W | U | A, "PDE after read (A set)")?;
    c.mov(dword_ptr(t(0) + 4), 0x1234_5678u32)?;
    c.mov(eax, dword_ptr(pte(0)))?;
    c.check_r32(eax, PHYS_A | P | W | A | D, "PTE after write (D set)")?;
    c.mov(eax, dword_ptr(PHYS_A + 4))?;
    c.check_r32(eax, 0x1234_5678, "write reached the physical page")?;
    // A is set by the walk even when the TLB already allowed a read: clear
    // it, flush, read again.
    set_pte(c, 0, PHYS_A | P | W | D)?;
    c.invlpg(ptr(t(0)))?;
    c.mov(eax, dword_ptr(t(0)))?;
    c.mov(eax, dword_ptr(pte(0)))?;
    c.check_r32(eax, PHYS_A | P | W | A | D, "A set again after INVLPG")?;
    c.section_ok("accessed-dirty")
}

fn faults(c: &mut Code, img: &mut Image) -> R {
    c.section()?;
    set_pte(c, 1, 0)?;
    set_pte(c, 2, PHYS_B | P)?;
    reload_cr3(c)?;
    c.fault(img, "read of not-present page", 14, Some(0), |c| c.mov(eax, dword_ptr(t(1) + 0x10)))?;
    c.check_m32(EXC_CR2, t(1) + 0x10, "CR2 after not-present read")?;
    c.fault(img, "write to not-present page", 14, Some(2), |c| c.mov(dword_ptr(t(1) + 0x20), eax))?;
    c.check_m32(EXC_CR2, t(1) + 0x20, "CR2 after not-present write")?;
    c.fault(img, "read with not-present PDE", 14, Some(0), |c| c.mov(eax, dword_ptr(0x0100_0008)))?;
    c.check_m32(EXC_CR2, 0x0100_0008, "CR2 after not-present PDE")?;
    // Supervisor write to a read-only page: allowed with WP clear...
    c.mov(dword_ptr(t(2) + 8), 0x5151_5151u32)?;
    c.mov(eax, dword_ptr(PHYS_B + 8))?;
    c.check_r32(eax, 0x5151_5151, "supervisor write to read-only page, WP=0")?;
    c.mov(eax, dword_ptr(pte(2)))?;
    c.check_r32(eax, PHYS_B | P | A | D, "read-only PTE dirty after write")?;
    // ...and a fault with WP set.
    c.mov(eax, cr0)?;
    c.or(eax, 0x1_0000)?;
    c.mov(cr0, eax)?;
    c.fault(img, "supervisor write to read-only page, WP=1", 14, Some(3), |c| c.mov(dword_ptr(t(2) + 8), 0u32))?;
    c.check_m32(EXC_CR2, t(2) + 8, "CR2 after WP fault")?;
    c.mov(eax, dword_ptr(PHYS_B + 8))?;
    c.check_r32(eax, 0x5151_5151, "WP fault wrote nothing")?;
    c.mov(eax, cr0)?;
    c.and(eax, !0x1_0000u32)?;
    c.mov(cr0, eax)?;
    // Instruction fetch from a not-present page: CR2 and the pushed EIP
    // are the target.
    c.mov(dword_ptr(EXC_VEC), u32::MAX)?;
    let resume = img.addr("pg.fetch_resume");
    c.mov(dword_ptr(RESUME), resume)?;
    c.mov(eax, t(1) + 0x30)?;
    c.jmp(eax)?;
    c.here("pg.fetch_resume")?;
    c.check_m32(EXC_VEC, 14, "fetch fault vector")?;
    c.check_m32(EXC_ERR, 0, "fetch fault error code")?;
    c.check_m32(EXC_CR2, t(1) + 0x30, "fetch fault CR2")?;
    c.check_m32(EXC_EIP, t(1) + 0x30, "fetch fault pushed EIP")?;
    // A dword split across a present and a not-present page.
    c.mov(dword_ptr(PHYS_A + 0xFFC), 0x0102_0304u32)?;
    c.fault(img, "split read", 14, Some(0), |c| c.mov(eax, dword_ptr(t(0) + 0xFFE)))?;
    c.check_m32(EXC_CR2, t(1), "CR2 of split read is the second page")?;
    c.fault(img, "split write", 14, Some(2), |c| c.mov(dword_ptr(t(0) + 0xFFE), 0xFFFF_FFFFu32))?;
    c.check_m32(EXC_CR2, t(1), "CR2 of split write")?;
    c.mov(eax, dword_ptr(PHYS_A + 0xFFC))?;
    c.check_r32(eax, 0x0102_0304, "split write faulted without a partial store")?;
    c.section_ok("page-faults")
}

fn user_faults(c: &mut Code, img: &mut Image) -> R {
    c.section()?;
    set_pte(c, 3, PHYS_A | P | W)?;
    set_pte(c, 4, PHYS_B | P | U)?;
    // PDE 5 (linear 20 MiB): supervisor-only PDE over a user PTE; PDE 6:
    // read-only user PDE over a writable user PTE. Rights combine.
    c.mov(dword_ptr(PT5), PHYS_A | P | W | U)?;
    c.mov(dword_ptr(PD + 5 * 4), PT5 | P | W)?;
    c.mov(dword_ptr(PD + 6 * 4), PT5 | P | U)?;
    reload_cr3(c)?;
    c.enter_ring3(img)?;
    c.fault(img, "ring-3 read of supervisor page", 14, Some(5), |c| c.mov(eax, dword_ptr(t(3))))?;
    c.check_m32(EXC_CR2, t(3), "CR2 after U/S fault")?;
    c.check_m32(EXC_CS, UCODE as u32, "CS of ring-3 #PF frame")?;
    c.check_m32(EXC_SS, UDATA as u32, "SS of ring-3 #PF frame")?;
    c.mov(eax, dword_ptr(t(4)))?;
    c.check_r32(eax, MARK_B, "ring-3 read of user read-only page")?;
    c.fault(img, "ring-3 write to read-only page", 14, Some(7), |c| c.mov(dword_ptr(t(4) + 4), eax))?;
    c.check_m32(EXC_CR2, t(4) + 4, "CR2 after ring-3 write fault")?;
    c.fault(img, "ring-3 read of not-present page", 14, Some(4), |c| c.mov(eax, dword_ptr(t(1))))?;
    c.fault(img, "ring-3 read under a supervisor PDE", 14, Some(5), |c| c.mov(eax, dword_ptr(0x0140_0000)))?;
    c.mov(eax, dword_ptr(0x0180_0000))?;
    c.check_r32(eax, MARK_A, "ring-3 read under a read-only user PDE")?;
    c.fault(img, "ring-3 write under a read-only PDE", 14, Some(7), |c| c.mov(dword_ptr(0x0180_0000), eax))?;
    // A ring-3 fetch from a supervisor page: CR2 and pushed EIP = target.
    c.mov(dword_ptr(EXC_VEC), u32::MAX)?;
    let resume = img.addr("pg.user_fetch_resume");
    c.mov(dword_ptr(RESUME), resume)?;
    c.mov(eax, t(3) + 0x40)?;
    c.jmp(eax)?;
    c.here("pg.user_fetch_resume")?;
    c.check_m32(EXC_VEC, 14, "ring-3 fetch fault vector")?;
    c.check_m32(EXC_ERR, 5, "ring-3 fetch fault error code")?;
    c.check_m32(EXC_CR2, t(3) + 0x40, "ring-3 fetch fault CR2")?;
    c.check_m32(EXC_EIP, t(3) + 0x40, "ring-3 fetch fault pushed EIP")?;
    c.back_to_ring0(img)?;
    c.mov(dword_ptr(PD + 5 * 4), 0u32)?;
    c.mov(dword_ptr(PD + 6 * 4), 0u32)?;
    reload_cr3(c)?;
    c.section_ok("user-pages")
}

fn tlb(c: &mut Code, img: &mut Image) -> R {
    c.section()?;
    set_pte(c, 5, PHYS_A | P | W)?;
    c.invlpg(ptr(t(5)))?;
    c.mov(eax, dword_ptr(t(5)))?;
    c.check_r32(eax, MARK_A, "first read fills the TLB")?;
    set_pte(c, 5, PHYS_B | P | W)?;
    c.mov(eax, dword_ptr(t(5)))?;
    c.check_r32(eax, MARK_A, "stale TLB entry used before INVLPG")?;
    c.invlpg(ptr(t(5)))?;
    c.mov(eax, dword_ptr(t(5)))?;
    c.check_r32(eax, MARK_B, "new mapping after INVLPG")?;
    // Not-present without INVLPG: the stale entry still translates.
    set_pte(c, 5, 0)?;
    c.mov(eax, dword_ptr(t(5)))?;
    c.check_r32(eax, MARK_B, "stale entry after PTE cleared")?;
    c.invlpg(ptr(t(5)))?;
    c.fault(img, "read after INVLPG of cleared PTE", 14, Some(0), |c| c.mov(eax, dword_ptr(t(5))))?;
    // A CR3 reload drops non-global entries.
    set_pte(c, 5, PHYS_A | P | W)?;
    c.mov(eax, dword_ptr(t(5)))?;
    set_pte(c, 5, PHYS_B | P | W)?;
    c.mov(eax, dword_ptr(t(5)))?;
    c.check_r32(eax, MARK_A, "stale before CR3 reload")?;
    reload_cr3(c)?;
    c.mov(eax, dword_ptr(t(5)))?;
    c.check_r32(eax, MARK_B, "new mapping after CR3 reload")?;
    c.section_ok("tlb-invlpg")
}

fn global(c: &mut Code) -> R {
    c.section()?;
    c.mov(eax, cr4)?;
    c.or(eax, 0x80)?;
    c.mov(cr4, eax)?;
    set_pte(c, 6, PHYS_A | P | W | G)?;
    set_pte(c, 7, PHYS_A | P | W)?;
    c.invlpg(ptr(t(6)))?;
    c.invlpg(ptr(t(7)))?;
    c.mov(eax, dword_ptr(t(6)))?;
    c.mov(eax, dword_ptr(t(7)))?;
    set_pte(c, 6, PHYS_B | P | W | G)?;
    set_pte(c, 7, PHYS_B | P | W)?;
    reload_cr3(c)?;
    c.mov(eax, dword_ptr(t(6)))?;
    c.check_r32(eax, MARK_A, "global entry survives CR3 reload")?;
    c.mov(eax, dword_ptr(t(7)))?;
    c.check_r32(eax, MARK_B, "non-global entry flushed by CR3 reload")?;
    c.invlpg(ptr(t(6)))?;
    c.mov(eax, dword_ptr(t(6)))?;
    c.check_r32(eax, MARK_B, "INVLPG drops a global entry")?;
    set_pte(c, 6, PHYS_A | P | W | G)?;
    c.mov(eax, dword_ptr(t(6)))?;
    c.check_r32(eax, MARK_B, "global entry stale before CR4.PGE cleared")?;
    c.mov(eax, cr4)?;
    c.and(eax, !0x80u32)?;
    c.mov(cr4, eax)?;
    c.mov(eax, dword_ptr(t(6)))?;
    c.check_r32(eax, MARK_A, "clearing CR4.PGE flushes global entries")?;
    // Without PGE the G bit means nothing: CR3 reload flushes the page.
    set_pte(c, 6, PHYS_B | P | W | G)?;
    reload_cr3(c)?;
    c.mov(eax, dword_ptr(t(6)))?;
    c.check_r32(eax, MARK_B, "G ignored with CR4.PGE clear")?;
    c.section_ok("global-pages")
}

fn pse(c: &mut Code, img: &mut Image) -> R {
    c.section()?;
    c.mov(eax, cr4)?;
    c.or(eax, 0x10)?;
    c.mov(cr4, eax)?;
    // PDEs 1 and 2: identity 4 MiB pages at 4 and 8 MiB; PDE 4: linear
    // 16 MiB -> physical 4 MiB.
    c.mov(dword_ptr(PD + 4), 0x0040_0000 | PS | P | W)?;
    c.mov(dword_ptr(PD + 2 * 4), 0x0080_0000 | PS | P | W)?;
    c.mov(dword_ptr(PD + 4 * 4), 0x0040_0000 | PS | P | W)?;
    c.mov(dword_ptr(PD + 5 * 4), 0x0040_0000 | PS | P)?;
    c.mov(dword_ptr(PD + 6 * 4), 0x0040_2000 | PS | P | W)?;
    reload_cr3(c)?;
    c.mov(dword_ptr(0x0052_3450), 0x4D4D_4D4Du32)?;
    c.mov(eax, dword_ptr(0x0112_3450))?;
    c.check_r32(eax, 0x4D4D_4D4D, "read through 4 MiB page")?;
    c.mov(eax, dword_ptr(PD + 4 * 4))?;
    c.check_r32(eax, 0x0040_0000 | PS | P | W | A, "4 MiB PDE accessed after read")?;
    c.mov(dword_ptr(0x0112_3454), 0x7E7E_7E7Eu32)?;
    c.mov(eax, dword_ptr(PD + 4 * 4))?;
    c.check_r32(eax, 0x0040_0000 | PS | P | W | A | D, "4 MiB PDE dirty after write")?;
    c.mov(eax, dword_ptr(0x0052_3454))?;
    c.check_r32(eax, 0x7E7E_7E7E, "write through 4 MiB page reached memory")?;
    c.mov(eax, cr0)?;
    c.or(eax, 0x1_0000)?;
    c.mov(cr0, eax)?;
    c.fault(img, "write to read-only 4 MiB page", 14, Some(3), |c| c.mov(dword_ptr(0x0150_0000), eax))?;
    c.check_m32(EXC_CR2, 0x0150_0000, "CR2 after 4 MiB WP fault")?;
    c.fault(img, "reserved bit in 4 MiB PDE", 14, Some(9), |c| c.mov(eax, dword_ptr(0x0180_0000)))?;
    c.mov(eax, cr0)?;
    c.and(eax, !0x1_0000u32)?;
    c.mov(cr0, eax)?;
    // INVLPG of any address in a 4 MiB page drops the whole page (SDM vol.
    // 3, 4.10.4.1), even translations cached for other 4 KiB parts of it.
    c.mov(dword_ptr(0x0040_1000), 0x4444_1000u32)?;
    c.mov(dword_ptr(0x0080_1000), 0x8888_1000u32)?;
    c.mov(eax, dword_ptr(0x0100_0000))?;
    c.mov(eax, dword_ptr(0x0100_1000))?;
    c.check_r32(eax, 0x4444_1000, "second 4 KiB of the 4 MiB page")?;
    c.mov(dword_ptr(PD + 4 * 4), 0x0080_0000 | PS | P | W)?;
    c.invlpg(ptr(0x0100_0000))?;
    c.mov(eax, dword_ptr(0x0100_1000))?;
    c.check_r32(eax, 0x8888_1000, "INVLPG flushed the whole 4 MiB page")?;
    c.section_ok("pse-4m-pages")
}

fn disable(c: &mut Code) -> R {
    c.section()?;
    c.mov(eax, cr0)?;
    c.and(eax, 0x7FFF_FFFFu32)?;
    c.mov(cr0, eax)?;
    let mut next = c.fresh();
    c.jmp(next)?;
    c.set(&mut next)?;
    // Linear = physical again: T is plain RAM, not PHYS_A.
    c.mov(dword_ptr(T), 0x0BAD_F00Du32)?;
    c.mov(eax, dword_ptr(PHYS_A))?;
    c.check_r32(eax, MARK_A, "paging off: linear is physical")?;
    c.mov(eax, dword_ptr(T))?;
    c.check_r32(eax, 0x0BAD_F00D, "paging off: write to T")?;
    c.section_ok("disable")
}
