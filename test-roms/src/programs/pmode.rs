//! `pmode`: protected-mode entry and exit, segmentation.
//!
//! - entry: CS/SS selectors after the far jump, CR0.PE (LMSW cannot clear
//!   it), LTR's busy bit,
//!   SGDT/SIDT/STR, accessed bits set by segment loads;
//! - segments: base and byte-granular limit, expand-down limits, #SS(0) on
//!   a stack-limit violation, null selectors (load allowed, use #GP(0)),
//!   #NP(sel)/#SS(sel) for not-present segments, #GP(sel) for wrong types,
//!   RPL above DPL and selectors past the GDT limit, read-only and
//!   execute-only segments, MOV CS = #UD, an LDT;
//! - access checks: LAR, LSL, VERR, VERW;
//! - 16-bit protected-mode code: operand size defaults, far call from 32-bit
//!   code with an o32 RETF back;
//! - exit to real mode and back: CR0.PE cleared from a 16-bit segment,
//!   real-mode segment arithmetic, a real-mode INT through the IVT (IF
//!   cleared, return address), "unreal" 4 GiB FS limit kept in real mode,
//!   then protected mode again.

use super::asm::{Code, Image, R};
use super::rt::{self, far_jmp16to32, seg, Tables, Tss32, *};
use super::Program;
use iced_x86::code_asm::*;
use iced_x86::{Code as Op, Instruction};

const PROG: &str = "pmode";

// Selectors.
const SMALL: u16 = 0x40;
const EXPDOWN: u16 = 0x48;
const STACKSEG: u16 = 0x50;
const NOTPRESENT: u16 = 0x58;
const EXECONLY: u16 = 0x60;
const READONLY: u16 = 0x68;
const LDT_SEL: u16 = 0x70;
const RCODE: u16 = 0x78;
const BEYOND: u16 = 0x3F8;

const LDT_ADDR: u32 = 0x1800;

// Variables.
const V_RM_MSW: u32 = VARS;
const V_RM_FAULT: u32 = VARS + 4;
const V_RM_INT_FLAGS: u32 = VARS + 8;
const V_RM_INT_IP: u32 = VARS + 12;
const V_RM_INT_CS: u32 = VARS + 16;
const V_RM_UNREAL: u32 = VARS + 20;
const V_RM_IDTR: u32 = VARS + 24;
const V_SAVED_ESP: u32 = VARS + 32;
const V_SGDT: u32 = VARS + 40;
const V_RM_FLAGS_AFTER: u32 = VARS + 48;

pub fn program() -> Program {
    let image = rt::protected_program(PROG, body, tables, Tss32::default(), code16);
    Program { name: PROG, image, load_addr: LOAD }
}

fn tables(t: &mut Tables, _img: &mut Image) {
    t.set_gdt(SMALL, seg(0x20000, 0xFFF, ACC_DATA, 0x4));
    t.set_gdt(EXPDOWN, seg(0x20000, 0xFFF, 0x96, 0));
    t.set_gdt(STACKSEG, seg(0x30000, 0xFFF, ACC_DATA, 0x4));
    t.set_gdt(NOTPRESENT, seg(0, 0xFFFFF, 0x12, FL_4G32));
    t.set_gdt(EXECONLY, seg(0, 0xFFFFF, 0x98, FL_4G32));
    t.set_gdt(READONLY, seg(0, 0xFFFFF, 0x90, FL_4G32));
    t.set_gdt(LDT_SEL, seg(LDT_ADDR, 0x17, ACC_LDT, 0));
    t.set_gdt(RCODE, seg(0x20000, 0xFFFF, ACC_CODE, 0x4));
}

fn body(c: &mut Code, img: &mut Image) -> R {
    entry_checks(c)?;
    segment_checks(c, img)?;
    access_checks(c)?;
    pm16_checks(c, img)?;
    real_mode_round_trip(c, img)?;
    rt::finish(c)
}

fn entry_checks(c: &mut Code) -> R {
    c.section()?;
    c.xor(eax, eax)?;
    c.mov(ax, cs)?;
    c.check_r32(eax, KCODE as u32, "CS after far jump")?;
    c.mov(ax, ss)?;
    c.check_r32(eax, KDATA as u32, "SS")?;
    c.mov(eax, cr0)?;
    c.and(eax, 0x8000_0001u32)?;
    c.check_r32(eax, 1, "CR0.PE set, PG clear")?;
    c.xor(eax, eax)?;
    c.smsw(ax)?;
    c.and(eax, 1)?;
    c.check_r32(eax, 1, "SMSW.PE")?;
    c.xor(eax, eax)?;
    c.lmsw(ax)?;
    c.mov(eax, cr0)?;
    c.and(eax, 1)?;
    c.check_r32(eax, 1, "LMSW cannot clear PE")?;
    c.xor(eax, eax)?;
    c.str(ax)?;
    c.check_r32(eax, TSS0_SEL as u32, "STR")?;
    // LTR marked TSS0 busy (type 9 -> 0xB).
    c.movzx(eax, byte_ptr(GDT + TSS0_SEL as u32 + 5))?;
    c.check_r32(eax, 0x8B, "TSS0 access byte after LTR")?;
    // Loading CS and DS set the accessed bits.
    c.movzx(eax, byte_ptr(GDT + KCODE as u32 + 5))?;
    c.check_r32(eax, 0x9B, "KCODE access byte")?;
    c.movzx(eax, byte_ptr(GDT + KDATA as u32 + 5))?;
    c.check_r32(eax, 0x93, "KDATA access byte")?;
    c.sgdt(ptr(V_SGDT))?;
    c.movzx(eax, word_ptr(V_SGDT))?;
    c.check_r32(eax, GDT_LIMIT, "SGDT limit")?;
    c.mov(eax, dword_ptr(V_SGDT + 2))?;
    c.check_r32(eax, GDT, "SGDT base")?;
    c.sidt(ptr(V_SGDT))?;
    c.movzx(eax, word_ptr(V_SGDT))?;
    c.check_r32(eax, 0x7FF, "SIDT limit")?;
    c.mov(eax, dword_ptr(V_SGDT + 2))?;
    c.check_r32(eax, IDT, "SIDT base")?;
    // A 32-bit push moves ESP by 4.
    c.mov(edx, esp)?;
    c.push(eax)?;
    c.sub(edx, esp)?;
    c.pop(eax)?;
    c.check_r32(edx, 4, "32-bit push size")?;
    c.section_ok("entry")
}

fn segment_checks(c: &mut Code, img: &mut Image) -> R {
    c.section()?;
    // Base and limit of a small byte-granular segment.
    c.movzx(eax, byte_ptr(GDT + SMALL as u32 + 5))?;
    c.check_r32(eax, 0x92, "accessed bit clear before load")?;
    c.mov(ax, SMALL as u32)?;
    c.mov(es, ax)?;
    c.movzx(eax, byte_ptr(GDT + SMALL as u32 + 5))?;
    c.check_r32(eax, 0x93, "accessed bit set by load")?;
    c.mov(dword_ptr(0x10).es(), 0xAABB_CCDDu32)?;
    c.mov(eax, dword_ptr(0x20010))?;
    c.check_r32(eax, 0xAABB_CCDD, "write through based segment")?;
    c.mov(dword_ptr(0xFFC).es(), 0x1122_3344u32)?;
    c.mov(eax, dword_ptr(0x20FFC))?;
    c.check_r32(eax, 0x1122_3344, "dword ending at the limit")?;
    c.fault(img, "dword crossing the limit", 13, Some(0), |c| c.mov(eax, dword_ptr(0xFFD).es()))?;
    c.fault(img, "offset past the limit", 13, Some(0), |c| c.mov(al, byte_ptr(0x1000).es()))?;

    // Expand-down, 16-bit: valid offsets are 0x1000..=0xFFFF.
    c.mov(ax, EXPDOWN as u32)?;
    c.mov(es, ax)?;
    c.mov(dword_ptr(0x1000).es(), 0x5566_7788u32)?;
    c.mov(eax, dword_ptr(0x21000))?;
    c.check_r32(eax, 0x5566_7788, "expand-down write at limit+1")?;
    c.mov(byte_ptr(0xFFFF).es(), 0x99u32)?;
    c.fault(img, "expand-down below limit", 13, Some(0), |c| c.mov(eax, dword_ptr(0x800).es()))?;
    c.fault(img, "expand-down past 64K", 13, Some(0), |c| c.mov(eax, dword_ptr(0xFFFE).es()))?;

    // Stack segment limit: #SS(0), delivered on the small stack itself.
    c.mov(dword_ptr(V_SAVED_ESP), esp)?;
    c.mov(ax, STACKSEG as u32)?;
    c.mov(ss, ax)?;
    c.mov(esp, 0x800u32)?;
    c.push(0x1234_5678)?;
    c.pop(eax)?;
    c.mov(ebx, dword_ptr(0x307FC))?;
    c.fault(img, "stack access past SS limit", 12, Some(0), |c| c.mov(eax, dword_ptr(esp + 0x1000)))?;
    c.xor(edx, edx)?;
    c.mov(dx, ss)?;
    c.mov(ecx, esp)?;
    c.mov(ax, KDATA as u32)?;
    c.mov(ss, ax)?;
    c.mov(esp, dword_ptr(V_SAVED_ESP))?;
    c.check_r32(ebx, 0x1234_5678, "push through based SS")?;
    c.check_r32(edx, STACKSEG as u32, "SS kept after #SS")?;
    c.check_r32(ecx, 0x800, "ESP restored by IRET after #SS")?;

    // Null selectors load into data registers but fault on use.
    c.xor(eax, eax)?;
    c.mov(es, ax)?;
    c.fault(img, "access through null ES", 13, Some(0), |c| c.mov(eax, dword_ptr(0).es()))?;
    c.mov(ax, 3u32)?;
    c.mov(es, ax)?;
    c.fault(img, "null SS", 13, Some(0), |c| c.mov(ss, ax))?;
    // Wrong descriptors.
    c.mov(ax, NOTPRESENT as u32)?;
    c.fault(img, "not-present DS", 11, Some(NOTPRESENT as u32), |c| c.mov(ds, ax))?;
    c.fault(img, "not-present SS", 12, Some(NOTPRESENT as u32), |c| c.mov(ss, ax))?;
    c.mov(ax, EXECONLY as u32)?;
    c.fault(img, "execute-only code into DS", 13, Some(EXECONLY as u32), |c| c.mov(ds, ax))?;
    c.mov(ax, TSS0_SEL as u32)?;
    c.fault(img, "TSS into DS", 13, Some(TSS0_SEL as u32), |c| c.mov(ds, ax))?;
    c.mov(ax, BEYOND as u32)?;
    c.fault(img, "selector past GDT limit", 13, Some(BEYOND as u32), |c| c.mov(fs, ax))?;
    c.mov(ax, (KDATA | 3) as u32)?;
    c.fault(img, "RPL 3 selector for DPL 0 data", 13, Some(KDATA as u32), |c| c.mov(gs, ax))?;
    c.mov(ax, KCODE as u32)?;
    c.fault(img, "code segment into SS", 13, Some(KCODE as u32), |c| c.mov(ss, ax))?;
    c.mov(ax, READONLY as u32)?;
    c.mov(es, ax)?;
    c.mov(eax, dword_ptr(0x20010).es())?;
    c.check_r32(eax, 0xAABB_CCDD, "read through read-only segment")?;
    c.fault(img, "write through read-only segment", 13, Some(0), |c| c.mov(dword_ptr(0x20010).es(), eax))?;
    c.mov(ax, RCODE as u32)?;
    c.mov(es, ax)?;
    c.mov(eax, dword_ptr(0x10).es())?;
    c.check_r32(eax, 0xAABB_CCDD, "read through readable code segment")?;
    c.fault(img, "write through code segment", 13, Some(0), |c| c.mov(dword_ptr(0x10).es(), eax))?;
    c.fault(img, "MOV CS", 6, None, |c| c.db(&[0x8E, 0xC8]))?;
    c.mov(ax, KDATA as u32)?;
    c.mov(es, ax)?;

    // An LDT with two data segments.
    c.mov(dword_ptr(LDT_ADDR), 0u32)?;
    c.mov(dword_ptr(LDT_ADDR + 4), 0u32)?;
    let d1 = seg(0x40000, 0xFFFF, ACC_DATA, 0x4);
    c.mov(dword_ptr(LDT_ADDR + 8), d1 as u32)?;
    c.mov(dword_ptr(LDT_ADDR + 12), (d1 >> 32) as u32)?;
    let d2 = seg(0x50000, 0xFF, ACC_DATA | DPL3, 0x4);
    c.mov(dword_ptr(LDT_ADDR + 16), d2 as u32)?;
    c.mov(dword_ptr(LDT_ADDR + 20), (d2 >> 32) as u32)?;
    c.mov(ax, 0x0Cu32)?;
    c.fault(img, "LDT selector without LDT", 13, Some(0x0C), |c| c.mov(fs, ax))?;
    c.mov(ax, LDT_SEL as u32)?;
    c.lldt(ax)?;
    c.xor(eax, eax)?;
    c.sldt(ax)?;
    c.check_r32(eax, LDT_SEL as u32, "SLDT")?;
    c.mov(ax, 0x0Cu32)?;
    c.mov(fs, ax)?;
    c.mov(dword_ptr(0x44).fs(), 0xCAFE_F00Du32)?;
    c.mov(eax, dword_ptr(0x40044))?;
    c.check_r32(eax, 0xCAFE_F00D, "write through LDT segment")?;
    c.mov(ax, 0x17u32)?;
    c.mov(gs, ax)?;
    c.fault(img, "LDT segment limit", 13, Some(0), |c| c.mov(eax, dword_ptr(0xFE).gs()))?;
    c.mov(ax, 0x1Cu32)?;
    c.fault(img, "selector past LDT limit", 13, Some(0x1C), |c| c.mov(gs, ax))?;
    c.xor(eax, eax)?;
    c.lldt(ax)?;
    c.mov(ax, KDATA as u32)?;
    c.mov(fs, ax)?;
    c.mov(gs, ax)?;
    c.section_ok("segments")
}

fn access_checks(c: &mut Code) -> R {
    c.section()?;
    c.mov(ecx, SMALL as u32)?;
    c.mov(eax, 0xFFFF_FFFFu32)?;
    c.mov(edx, 0u32)?;
    c.lsl(eax, ecx)?;
    c.setz(dl)?;
    c.check_r32(eax, 0xFFF, "LSL small segment")?;
    c.check_r32(edx, 1, "LSL ZF")?;
    c.mov(ecx, KDATA as u32)?;
    c.lsl(eax, ecx)?;
    c.check_r32(eax, 0xFFFF_FFFF, "LSL 4G segment")?;
    c.mov(ecx, KCODE as u32)?;
    c.lar(eax, ecx)?;
    // Bits 19:16 are undefined (SDM vol. 2, LAR).
    c.and(eax, 0xFFF0_FFFFu32)?;
    c.check_r32(eax, 0x00C0_9B00, "LAR KCODE")?;
    c.mov(ecx, TSS0_SEL as u32)?;
    c.lar(eax, ecx)?;
    c.and(eax, 0xFFF0_FFFFu32)?;
    c.check_r32(eax, 0x0000_8B00, "LAR busy TSS")?;
    c.mov(ecx, 0u32)?;
    c.mov(eax, 0x1234u32)?;
    c.mov(edx, 0u32)?;
    c.lar(eax, ecx)?;
    c.setz(dl)?;
    c.check_r32(eax, 0x1234, "LAR null leaves dest")?;
    c.check_r32(edx, 0, "LAR null ZF")?;
    c.mov(ecx, KDATA as u32)?;
    c.verw(cx)?;
    c.check_flags(0x40, 0x40, "VERW data")?;
    c.mov(ecx, READONLY as u32)?;
    c.verw(cx)?;
    c.check_flags(0x40, 0, "VERW read-only")?;
    c.verr(cx)?;
    c.check_flags(0x40, 0x40, "VERR read-only")?;
    c.mov(ecx, EXECONLY as u32)?;
    c.verr(cx)?;
    c.check_flags(0x40, 0, "VERR execute-only")?;
    c.mov(ecx, KCODE as u32)?;
    c.verr(cx)?;
    c.check_flags(0x40, 0x40, "VERR readable code")?;
    c.mov(ecx, BEYOND as u32)?;
    c.verr(cx)?;
    c.check_flags(0x40, 0, "VERR past limit")?;
    c.section_ok("access-checks")
}

fn pm16_checks(c: &mut Code, img: &mut Image) -> R {
    c.section()?;
    c.mov(eax, 0xDEAD_0000u32)?;
    let t = img.addr("pm16.test");
    c.jmp_far(KCODE16, t)?;
    c.here("pm16.back")?;
    c.check_r32(eax, 0xDEAD_1234, "16-bit MOV AX keeps EAX high half")?;
    c.check_r32(ecx, 2, "16-bit PUSH size")?;
    c.check_r32(ebx, 4, "o32 PUSH size in 16-bit code")?;
    c.xor(eax, eax)?;
    c.mov(ax, cs)?;
    c.check_r32(eax, KCODE as u32, "CS back in 32-bit code")?;
    // Far call into 16-bit code; it returns with o32 RETF.
    c.mov(edx, esp)?;
    let s = img.addr("pm16.sub");
    c.call_far(KCODE16, s)?;
    c.sub(edx, esp)?;
    c.check_r32(edx, 0, "ESP balanced after far call/o32 RETF")?;
    c.check_r32(eax, 0x0016_0016, "16-bit subroutine result")?;
    c.section_ok("16-bit-code")
}

fn real_mode_round_trip(c: &mut Code, img: &mut Image) -> R {
    c.section()?;
    c.mov(dword_ptr(V_RM_FAULT), 0xFFu32)?;
    c.mov(dword_ptr(V_RM_MSW), 0xFFFF_FFFFu32)?;
    c.mov(byte_ptr(0x200000), 0u32)?;
    c.mov(byte_ptr(0x20010), 0u32)?;
    c.cli()?;
    c.mov(ax, KDATA16 as u32)?;
    c.mov(ds, ax)?;
    c.mov(es, ax)?;
    c.mov(gs, ax)?;
    c.mov(ss, ax)?;
    // FS keeps a 4 GiB limit into real mode ("unreal" mode).
    c.mov(ax, KDATA as u32)?;
    c.mov(fs, ax)?;
    c.mov(esp, KSTACK)?;
    let t = img.addr("rm.leave_pm");
    c.jmp_far(KCODE16, t)?;

    c.here("pm.again")?;
    c.mov(ax, KDATA as u32)?;
    c.mov(ds, ax)?;
    c.mov(es, ax)?;
    c.mov(fs, ax)?;
    c.mov(gs, ax)?;
    c.mov(ss, ax)?;
    c.mov(esp, KSTACK)?;
    c.lidt(ptr(IDTR_PTR))?;
    c.xor(eax, eax)?;
    c.mov(ax, cs)?;
    c.check_r32(eax, KCODE as u32, "CS after re-entry")?;
    c.check_m32(V_RM_FAULT, 0xFF, "exception vector in real mode (FF = none)")?;
    c.check_m32(V_RM_MSW, 0, "MSW.PE in real mode")?;
    c.movzx(eax, byte_ptr(0x20010))?;
    c.check_r32(eax, 0x5A, "real-mode ES=2000 write")?;
    c.movzx(eax, byte_ptr(0x200000))?;
    c.check_r32(eax, 0xA5, "unreal FS write above 1 MiB")?;
    c.check_m32(V_RM_UNREAL, 0xA5, "unreal FS read")?;
    c.check_m32(V_RM_INT_FLAGS, 0, "IF inside real-mode INT handler")?;
    let after = img.addr("rm.after_int");
    c.check_m32(V_RM_INT_IP, after, "real-mode INT return IP")?;
    c.check_m32(V_RM_INT_CS, 0, "real-mode INT return CS")?;
    c.check_m32(V_RM_FLAGS_AFTER, 0x200, "IF restored by IRET")?;
    c.section_ok("real-mode-exit-and-reentry")
}

/// 16-bit code at 0x9000: protected-mode 16-bit segment parts and the
/// real-mode excursion.
fn code16(img: &mut Image) -> R {
    let mut c = Code::new(16, CODE16_EXTRA, PROG)?;

    // 16-bit protected-mode code (CS = KCODE16, SS still 32-bit).
    c.here("pm16.test")?;
    c.mov(ax, 0x1234u32)?;
    c.mov(edx, esp)?;
    c.push(ax)?;
    c.mov(ecx, edx)?;
    c.sub(ecx, esp)?;
    c.pop(ax)?;
    c.mov(edx, esp)?;
    c.push(eax)?;
    c.mov(ebx, edx)?;
    c.sub(ebx, esp)?;
    c.pop(eax)?;
    let back = img.addr("pm16.back");
    far_jmp16to32(&mut c, KCODE, back)?;

    c.here("pm16.sub")?;
    c.mov(eax, 0x0016_0016u32)?;
    c.add_instruction(Instruction::with(Op::Retfd))?;

    // Leave protected mode from a 16-bit segment.
    c.here("rm.leave_pm")?;
    c.mov(eax, cr0)?;
    c.and(eax, 0xFFFF_FFFEu32)?;
    c.mov(cr0, eax)?;
    let re = img.addr("rm.entry");
    c.jmp_far(0, re)?;

    c.here("rm.entry")?;
    c.xor(ax, ax)?;
    c.mov(ds, ax)?;
    c.mov(es, ax)?;
    c.mov(ss, ax)?;
    c.mov(sp, KSTACK)?;
    c.mov(word_ptr(V_RM_IDTR), 0x3FFu32)?;
    c.mov(dword_ptr(V_RM_IDTR + 2), 0u32)?;
    c.lidt(ptr(V_RM_IDTR))?;
    for v in 0..32u32 {
        let a = img.addr(&format!("rm.exc{v}"));
        c.mov(word_ptr(v * 4), a)?;
        c.mov(word_ptr(v * 4 + 2), 0u32)?;
    }
    let a = img.addr("rm.int40");
    c.mov(word_ptr(0x40 * 4), a)?;
    c.mov(word_ptr(0x40 * 4 + 2), 0u32)?;
    c.smsw(ax)?;
    c.and(ax, 1)?;
    c.mov(word_ptr(V_RM_MSW), ax)?;
    c.mov(word_ptr(V_RM_MSW + 2), 0u32)?;
    // Real-mode segment arithmetic.
    c.mov(ax, 0x2000u32)?;
    c.mov(es, ax)?;
    c.mov(byte_ptr(0x10).es(), 0x5Au32)?;
    // Unreal FS: a 32-bit offset above 64 KiB.
    c.mov(eax, 0x0020_0000u32)?;
    c.mov(byte_ptr(eax).fs(), 0xA5u32)?;
    c.mov(bl, byte_ptr(eax).fs())?;
    c.mov(byte_ptr(V_RM_UNREAL), bl)?;
    // INT through the IVT.
    c.sti()?;
    c.int(0x40)?;
    c.here("rm.after_int")?;
    c.pushf()?;
    c.pop(ax)?;
    c.and(ax, 0x200)?;
    c.mov(word_ptr(V_RM_FLAGS_AFTER), ax)?;
    c.cli()?;
    c.here("rm.reenter")?;
    c.mov(eax, cr0)?;
    c.or(eax, 1)?;
    c.mov(cr0, eax)?;
    let again = img.addr("pm.again");
    far_jmp16to32(&mut c, KCODE, again)?;

    c.here("rm.int40")?;
    c.push(bp)?;
    c.mov(bp, sp)?;
    c.pushf()?;
    c.pop(ax)?;
    c.and(ax, 0x200)?;
    c.mov(word_ptr(V_RM_INT_FLAGS), ax)?;
    c.mov(ax, word_ptr(bp + 2))?;
    c.mov(word_ptr(V_RM_INT_IP), ax)?;
    c.mov(ax, word_ptr(bp + 4))?;
    c.mov(word_ptr(V_RM_INT_CS), ax)?;
    c.pop(bp)?;
    c.iret()?;

    for v in 0..32u32 {
        c.here(&format!("rm.exc{v}"))?;
        c.mov(byte_ptr(V_RM_FAULT), v)?;
        c.cli()?;
        let r = c.lbl("rm.reenter");
        c.jmp(r)?;
    }
    img.place(c)
}
