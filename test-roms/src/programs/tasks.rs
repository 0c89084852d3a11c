//! `tasks`: hardware task switching (SDM vol. 3, chapter 7).
//!
//! - JMP to a TSS: the new task's registers, LDTR and TR load from its TSS,
//!   the old task's state (EIP after the JMP) is saved in its TSS, the old
//!   busy bit clears and the new one sets, NT stays clear, CR0.TS is set
//!   (#NM from an x87 instruction until CLTS);
//! - CALL to a TSS and IRET back: back link written, NT set in the new
//!   task, both busy bits set during the call, IRET clears the callee's
//!   busy bit and saves its EFLAGS with NT clear;
//! - JMP through a task gate in the GDT;
//! - INT n through a task gate in the IDT (nothing pushed), repeated: the
//!   handler task resumes after its IRET;
//! - an exception (#NP) through a task gate: the error code is pushed on
//!   the handler task's stack, the faulting EIP is in the old TSS;
//! - faults: CALL/JMP to the busy current task #GP(sel), IRET with NT to a
//!   task that is not busy #TS(sel) (and NT cleared on interrupt entry),
//!   TSS limit below 0x67 #TS(sel), not-present TSS #NP(sel), LTR of a
//!   busy TSS and LLDT of a TSS #GP(sel);
//! - with paging on, each task runs in the address space of the CR3 in its
//!   TSS.

use super::asm::{Code, Image, R};
use super::rt::{self, gate, seg, tss_slot, Tables, Tss32, *};
use super::Program;
use iced_x86::code_asm::*;

const PROG: &str = "tasks";

const TSS_B: u16 = 0x40;
const TSS_C: u16 = 0x48;
const TSS_D: u16 = 0x50;
const GATE_B: u16 = 0x58;
const LDT_B: u16 = 0x60;
const NOTPRESENT: u16 = 0x68;
const TSS_SHORT: u16 = 0x70;
const TSS_NP: u16 = 0x78;

const LDT_ADDR: u32 = 0x9000;
const LDT_DATA: u32 = 0x6_0000;
const V_INT_TASK: u8 = 0x40;
const NT: u32 = 1 << 14;
const DSTACK: u32 = 0x2700;

// Values recorded by the other tasks.
const fn v(k: u32) -> u32 {
    VARS + 4 * k
}
const B_EAX: u32 = v(0);
const B_EBX: u32 = v(1);
const B_TR: u32 = v(2);
const B_LDTR: u32 = v(3);
const B_FLAGS: u32 = v(4);
const B_ACC_A: u32 = v(5);
const B_ACC_B: u32 = v(6);
const B_CR0: u32 = v(7);
const B_LINK: u32 = v(8);
const B_ESP: u32 = v(9);
const C_COUNT: u32 = v(10);
const C_FLAGS: u32 = v(11);
const C_ESP: u32 = v(12);
const C_LINK: u32 = v(13);
const C_EAX: u32 = v(14);
const D_ERR: u32 = v(15);
const D_ESP: u32 = v(16);
const D_A_EIP: u32 = v(17);
const D_TR: u32 = v(18);
const B_PHASE: u32 = v(19);
const B_SEEN: u32 = v(20);
const B_CR3: u32 = v(21);

// Paging for the CR3 check: two page directories sharing an identity map
// of the first 4 MiB, mapping linear `SWITCHED` to different pages.
const PD_A: u32 = 0x10_0000;
const PD_B: u32 = 0x10_1000;
const PT_ID: u32 = 0x10_2000;
const PT_A: u32 = 0x10_3000;
const PT_B: u32 = 0x10_4000;
const PAGE_A: u32 = 0x18_0000;
const PAGE_B: u32 = 0x18_1000;
const SWITCHED: u32 = 0x00F0_0000;

pub fn program() -> Program {
    let image = rt::protected_program(PROG, body, tables, Tss32::default(), extra);
    Program { name: PROG, image, load_addr: LOAD }
}

fn tables(t: &mut Tables, _img: &mut Image) {
    t.set_gdt(TSS_B, seg(tss_slot(1), TSS_LIMIT, ACC_TSS32, 0));
    t.set_gdt(TSS_C, seg(tss_slot(2), TSS_LIMIT, ACC_TSS32, 0));
    t.set_gdt(TSS_D, seg(tss_slot(3), TSS_LIMIT, ACC_TSS32, 0));
    t.set_gdt(GATE_B, gate(TSS_B, 0, GATE_TASK, 0, 0, true));
    t.set_gdt(LDT_B, seg(LDT_ADDR, 0xF, ACC_LDT, 0));
    t.set_gdt(NOTPRESENT, seg(0, 0xFFFFF, 0x12, FL_4G32));
    t.set_gdt(TSS_SHORT, seg(tss_slot(3), 0x50, ACC_TSS32, 0));
    t.set_gdt(TSS_NP, seg(tss_slot(3), TSS_LIMIT, ACC_TSS32 & 0x7F, 0));
    t.set_idt(V_INT_TASK, gate(TSS_C, 0, GATE_TASK, 3, 0, true));
    t.set_idt(11, gate(TSS_D, 0, GATE_TASK, 0, 0, true));
}

fn task_tss(img: &mut Image, entry: &str, stack: u32, eax_val: u32, ldt: u16) -> Tss32 {
    let eip = img.addr(entry);
    let mut regs = [0u32; 8];
    regs[0] = eax_val;
    regs[3] = eax_val ^ 0xFFFF;
    regs[4] = stack;
    Tss32 { eip, eflags: 2, regs, segs: [KDATA, KCODE, KDATA, KDATA, KDATA, KDATA], ldt, ..Tss32::default() }
}

fn extra(img: &mut Image) -> R {
    let b = task_tss(img, "tb.entry", TSTACK1, 0xB0B0_0001, LDT_B);
    img.data(tss_slot(1), b.bytes());
    let c = task_tss(img, "tc.entry", TSTACK2, 0xC0C0_0001, 0);
    img.data(tss_slot(2), c.bytes());
    let d = task_tss(img, "td.entry", DSTACK, 0xD0D0_0001, 0);
    img.data(tss_slot(3), d.bytes());
    let mut ldt = vec![0u8; 8];
    ldt.extend_from_slice(&seg(LDT_DATA, 0xFFFF, ACC_DATA, 0x4).to_le_bytes());
    img.data(LDT_ADDR, ldt);
    Ok(())
}

/// Access byte of the descriptor for `sel` (busy bit = 0x02).
fn acc(sel: u16) -> u32 {
    GDT + sel as u32 + 5
}

fn body(c: &mut Code, img: &mut Image) -> R {
    jmp_switch(c, img)?;
    call_and_iret(c, img)?;
    gate_in_gdt(c)?;
    int_task_gate(c, img)?;
    exception_task_gate(c, img)?;
    switch_faults(c, img)?;
    cr3_switch(c)?;
    rt::finish(c)?;
    task_b(c, img)?;
    task_c(c)?;
    task_d(c, img)
}

fn jmp_switch(c: &mut Code, img: &mut Image) -> R {
    c.section()?;
    c.mov(eax, 0xA0A0_0001u32)?;
    c.mov(ebx, 0xA0A0_0002u32)?;
    c.mov(esi, 0xA0A0_0003u32)?;
    c.mov(ebp, esp)?;
    c.jmp_far(TSS_B, 0)?;
    c.here("ta.after_jmp")?;
    c.check_r32(eax, 0xA0A0_0001, "EAX restored from TSS")?;
    c.check_r32(ebx, 0xA0A0_0002, "EBX restored from TSS")?;
    c.check_r32(esi, 0xA0A0_0003, "ESI restored from TSS")?;
    c.cmp(ebp, esp)?;
    let mut ok = c.fresh();
    c.je(ok)?;
    c.fail_r32(esp, "ESP restored from TSS")?;
    c.set(&mut ok)?;
    c.xor(eax, eax)?;
    c.str(ax)?;
    c.check_r32(eax, TSS0_SEL as u32, "TR back to task A")?;
    c.mov(eax, cr0)?;
    c.and(eax, 8)?;
    c.check_r32(eax, 8, "CR0.TS set by task switch")?;
    c.fault(img, "x87 instruction with CR0.TS", 7, None, |c| c.fnop())?;
    c.clts()?;
    c.no_fault(img, "x87 instruction after CLTS", |c| c.fnop())?;
    let after = img.addr("ta.after_jmp");
    c.check_m32(TSS0 + 0x20, after, "old task's EIP saved in its TSS")?;
    let b_after = img.addr("tb.after_jmp1");
    c.check_m32(tss_slot(1) + 0x20, b_after, "task B's EIP saved on its JMP back")?;
    c.check_m32(B_EAX, 0xB0B0_0001, "task B EAX from TSS")?;
    c.check_m32(B_EBX, 0xB0B0_0001 ^ 0xFFFF, "task B EBX from TSS")?;
    c.check_m32(B_ESP, TSTACK1, "task B ESP from TSS")?;
    c.check_m32(B_TR, TSS_B as u32, "TR in task B")?;
    c.check_m32(B_LDTR, LDT_B as u32, "LDTR in task B")?;
    c.check_m32(B_FLAGS, 0, "NT in task B after JMP")?;
    c.check_m32(B_ACC_B, 0x8B, "task B busy while running")?;
    c.check_m32(B_ACC_A, 0x89, "task A not busy after JMP away")?;
    c.check_m32(B_CR0, 8, "CR0.TS in task B")?;
    c.check_m32(LDT_DATA, 0x1D71_1D71, "task B wrote through its LDT")?;
    c.movzx(eax, byte_ptr(acc(TSS_B)))?;
    c.check_r32(eax, 0x89, "task B not busy after JMP back")?;
    c.movzx(eax, byte_ptr(acc(TSS0_SEL)))?;
    c.check_r32(eax, 0x8B, "task A busy again")?;
    c.xor(eax, eax)?;
    c.sldt(ax)?;
    c.check_r32(eax, 0, "LDTR of task A (none)")?;
    c.section_ok("jmp")
}

fn call_and_iret(c: &mut Code, img: &mut Image) -> R {
    c.section()?;
    c.call_far(TSS_B, 0)?;
    c.here("ta.after_call")?;
    c.clts()?;
    c.check_m32(B_FLAGS, NT, "NT set in called task")?;
    c.check_m32(B_LINK, TSS0_SEL as u32, "back link in called task's TSS")?;
    c.check_m32(B_ACC_A, 0x8B, "caller stays busy during CALL")?;
    c.check_m32(B_ACC_B, 0x8B, "callee busy during CALL")?;
    c.movzx(eax, byte_ptr(acc(TSS_B)))?;
    c.check_r32(eax, 0x89, "IRET cleared the callee's busy bit")?;
    c.movzx(eax, byte_ptr(acc(TSS0_SEL)))?;
    c.check_r32(eax, 0x8B, "caller busy after IRET")?;
    c.check_flags(NT, 0, "NT in caller after IRET")?;
    c.mov(eax, dword_ptr(tss_slot(1) + 0x24))?;
    c.and(eax, NT)?;
    c.check_r32(eax, 0, "NT clear in EFLAGS saved by IRET")?;
    let b_after = img.addr("tb.after_iret");
    c.check_m32(tss_slot(1) + 0x20, b_after, "callee's EIP saved by IRET")?;
    let after = img.addr("ta.after_call");
    c.check_m32(TSS0 + 0x20, after, "caller's EIP saved by CALL")?;
    c.section_ok("call-iret")
}

fn gate_in_gdt(c: &mut Code) -> R {
    c.section()?;
    c.mov(dword_ptr(B_PHASE), 0u32)?;
    c.jmp_far(GATE_B, 0)?;
    c.clts()?;
    c.check_m32(B_PHASE, 3, "task B reached through a GDT task gate")?;
    c.section_ok("task-gate-in-gdt")
}

fn int_task_gate(c: &mut Code, img: &mut Image) -> R {
    c.section()?;
    c.mov(eax, 0x1234_5678u32)?;
    c.int(V_INT_TASK as u32)?;
    c.here("ta.after_int")?;
    c.clts()?;
    c.check_r32(eax, 0x1234_5678, "EAX after INT task switch")?;
    c.check_m32(C_COUNT, 1, "handler task ran once")?;
    c.check_m32(C_EAX, 0xC0C0_0001, "handler task EAX from TSS")?;
    c.check_m32(C_FLAGS, NT, "NT in handler task")?;
    c.check_m32(C_LINK, TSS0_SEL as u32, "handler task back link")?;
    c.check_m32(C_ESP, TSTACK2, "nothing pushed for INT through task gate")?;
    let after = img.addr("ta.after_int");
    c.check_m32(TSS0 + 0x20, after, "EIP after INT saved")?;
    c.int(V_INT_TASK as u32)?;
    c.clts()?;
    c.check_m32(C_COUNT, 2, "handler task resumed after its IRET")?;
    c.section_ok("int-task-gate")
}

fn exception_task_gate(c: &mut Code, img: &mut Image) -> R {
    c.section()?;
    c.mov(ax, NOTPRESENT as u32)?;
    c.here("ta.np_fault")?;
    c.mov(ds, ax)?;
    c.here("ta.np_resume")?;
    c.clts()?;
    c.check_m32(D_ERR, NOTPRESENT as u32, "#NP error code on handler task's stack")?;
    c.check_m32(D_ESP, DSTACK, "handler task popped exactly the error code")?;
    let at = img.addr("ta.np_fault");
    c.check_m32(D_A_EIP, at, "faulting EIP saved in old TSS")?;
    c.check_m32(D_TR, TSS_D as u32, "TR in exception task")?;
    c.xor(eax, eax)?;
    c.mov(ax, ds)?;
    c.check_r32(eax, KDATA as u32, "DS unchanged by the faulting load")?;
    c.section_ok("exception-task-gate")
}

fn switch_faults(c: &mut Code, img: &mut Image) -> R {
    c.section()?;
    c.fault(img, "CALL to the busy current task", 13, Some(TSS0_SEL as u32), |c| c.call_far(TSS0_SEL, 0))?;
    c.fault(img, "JMP to the busy current task", 13, Some(TSS0_SEL as u32), |c| c.jmp_far(TSS0_SEL, 0))?;
    c.fault(img, "CALL to a TSS with limit < 0x67", 10, Some(TSS_SHORT as u32), |c| c.call_far(TSS_SHORT, 0))?;
    // #NP goes to the runtime's handler again instead of task D.
    let g = gate(KCODE, img.addr("rt.exc11"), GATE_INT32, 0, 0, true);
    c.mov(dword_ptr(IDT + 11 * 8), g as u32)?;
    c.mov(dword_ptr(IDT + 11 * 8 + 4), (g >> 32) as u32)?;
    c.fault(img, "CALL to a not-present TSS", 11, Some(TSS_NP as u32), |c| c.call_far(TSS_NP, 0))?;
    c.mov(ax, TSS0_SEL as u32)?;
    c.fault(img, "LTR of a busy TSS", 13, Some(TSS0_SEL as u32), |c| c.ltr(ax))?;
    c.mov(ax, TSS_B as u32)?;
    c.fault(img, "LLDT of a TSS", 13, Some(TSS_B as u32), |c| c.lldt(ax))?;
    // IRET with NT to a task that is not busy.
    c.mov(word_ptr(TSS0), TSS_C as u32)?;
    c.pushfd()?;
    c.or(dword_ptr(esp), NT)?;
    c.popfd()?;
    c.fault(img, "IRET with NT to a non-busy task", 10, Some(TSS_C as u32), |c| c.iretd())?;
    c.mov(eax, dword_ptr(EXC_EFL))?;
    c.and(eax, NT)?;
    c.check_r32(eax, NT, "NT in the #TS frame's EFLAGS")?;
    c.pushfd()?;
    c.and(dword_ptr(esp), !NT)?;
    c.popfd()?;
    c.mov(word_ptr(TSS0), 0u32)?;
    c.section_ok("switch-faults")
}

fn cr3_switch(c: &mut Code) -> R {
    c.section()?;
    c.mov(edi, PD_A)?;
    c.mov(ecx, 5 * 1024u32)?;
    c.xor(eax, eax)?;
    c.rep().stosd()?;
    c.mov(edi, PT_ID)?;
    c.mov(eax, 3u32)?;
    c.mov(ecx, 1024u32)?;
    let mut l = c.fresh();
    c.set(&mut l)?;
    c.stosd()?;
    c.add(eax, 0x1000)?;
    c.loop_(l)?;
    for (pd, pt, page) in [(PD_A, PT_A, PAGE_A), (PD_B, PT_B, PAGE_B)] {
        c.mov(dword_ptr(pd), PT_ID | 3)?;
        c.mov(dword_ptr(pd + 3 * 4), pt | 3)?;
        c.mov(dword_ptr(pt + 0x300 * 4), page | 3)?;
        c.mov(dword_ptr(page), page | 0xA)?;
    }
    // CR3 is never saved by a task switch, only loaded: both TSSs name theirs.
    c.mov(dword_ptr(TSS0 + 0x1C), PD_A)?;
    c.mov(dword_ptr(tss_slot(1) + 0x1C), PD_B)?;
    c.mov(eax, PD_A)?;
    c.mov(cr3, eax)?;
    c.mov(eax, cr0)?;
    c.or(eax, 0x8000_0000u32)?;
    c.mov(cr0, eax)?;
    c.mov(eax, dword_ptr(SWITCHED))?;
    c.check_r32(eax, PAGE_A | 0xA, "task A's mapping before the switch")?;
    c.jmp_far(TSS_B, 0)?;
    c.clts()?;
    c.check_m32(B_SEEN, PAGE_B | 0xA, "task B sees its own address space")?;
    c.check_m32(B_CR3, PD_B, "CR3 loaded from task B's TSS")?;
    c.mov(eax, cr3)?;
    c.check_r32(eax, PD_A, "CR3 loaded from task A's TSS on return")?;
    c.mov(eax, dword_ptr(SWITCHED))?;
    c.check_r32(eax, PAGE_A | 0xA, "task A's mapping after the switch back")?;
    c.mov(eax, cr0)?;
    c.and(eax, 0x7FFF_FFFFu32)?;
    c.mov(cr0, eax)?;
    c.section_ok("cr3-switch")
}

/// Task B: phase 1 (entered by JMP), phase 2 (by CALL), phase 3 (through
/// the GDT task gate), phase 4 (by JMP, with paging on).
fn task_b(c: &mut Code, _img: &mut Image) -> R {
    fn record(c: &mut Code) -> R {
        c.mov(dword_ptr(B_EAX), eax)?;
        c.mov(dword_ptr(B_EBX), ebx)?;
        c.mov(dword_ptr(B_ESP), esp)?;
        c.xor(eax, eax)?;
        c.str(ax)?;
        c.mov(dword_ptr(B_TR), eax)?;
        c.sldt(ax)?;
        c.mov(dword_ptr(B_LDTR), eax)?;
        c.pushfd()?;
        c.pop(eax)?;
        c.and(eax, NT)?;
        c.mov(dword_ptr(B_FLAGS), eax)?;
        c.movzx(eax, byte_ptr(acc(TSS0_SEL)))?;
        c.mov(dword_ptr(B_ACC_A), eax)?;
        c.movzx(eax, byte_ptr(acc(TSS_B)))?;
        c.mov(dword_ptr(B_ACC_B), eax)?;
        c.mov(eax, cr0)?;
        c.and(eax, 8)?;
        c.mov(dword_ptr(B_CR0), eax)?;
        c.movzx(eax, word_ptr(tss_slot(1)))?;
        c.mov(dword_ptr(B_LINK), eax)
    }
    c.here("tb.entry")?;
    record(c)?;
    c.mov(ax, 0x0Cu32)?;
    c.mov(es, ax)?;
    c.mov(dword_ptr(0).es(), 0x1D71_1D71u32)?;
    c.mov(ax, KDATA as u32)?;
    c.mov(es, ax)?;
    c.jmp_far(TSS0_SEL, 0)?;
    c.here("tb.after_jmp1")?;
    record(c)?;
    c.iretd()?;
    c.here("tb.after_iret")?;
    c.mov(dword_ptr(B_PHASE), 3u32)?;
    c.jmp_far(TSS0_SEL, 0)?;
    c.mov(eax, dword_ptr(SWITCHED))?;
    c.mov(dword_ptr(B_SEEN), eax)?;
    c.mov(eax, cr3)?;
    c.mov(dword_ptr(B_CR3), eax)?;
    c.jmp_far(TSS0_SEL, 0)?;
    let mut h = c.fresh();
    c.set(&mut h)?;
    c.hlt()?;
    c.jmp(h)
}

/// Task C: the INT task-gate handler, a loop around IRET.
fn task_c(c: &mut Code) -> R {
    c.here("tc.entry")?;
    c.inc(dword_ptr(C_COUNT))?;
    c.mov(dword_ptr(C_EAX), eax)?;
    c.mov(dword_ptr(C_ESP), esp)?;
    c.pushfd()?;
    c.pop(eax)?;
    c.and(eax, NT)?;
    c.mov(dword_ptr(C_FLAGS), eax)?;
    c.movzx(eax, word_ptr(tss_slot(2)))?;
    c.mov(dword_ptr(C_LINK), eax)?;
    c.iretd()?;
    let e = c.lbl("tc.entry");
    c.jmp(e)
}

/// Task D: the #NP handler task. Pops the error code, moves the faulting
/// task past the faulting instruction and returns to it.
fn task_d(c: &mut Code, img: &mut Image) -> R {
    c.here("td.entry")?;
    c.pop(eax)?;
    c.mov(dword_ptr(D_ERR), eax)?;
    c.mov(dword_ptr(D_ESP), esp)?;
    c.xor(eax, eax)?;
    c.str(ax)?;
    c.mov(dword_ptr(D_TR), eax)?;
    c.mov(eax, dword_ptr(TSS0 + 0x20))?;
    c.mov(dword_ptr(D_A_EIP), eax)?;
    let resume = img.addr("ta.np_resume");
    c.mov(dword_ptr(TSS0 + 0x20), resume)?;
    c.iretd()?;
    let e = c.lbl("td.entry");
    c.jmp(e)
}
