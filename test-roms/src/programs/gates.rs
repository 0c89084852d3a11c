//! `gates`: privilege transitions and exception delivery (SDM vol. 3,
//! 5.8-5.10 and chapter 6).
//!
//! - call gates: ring 3 -> ring 0 with two dword parameters (new stack from
//!   TSS.SS0:ESP0, the frame's old SS:ESP, copied parameters, CS:EIP), RETF 8
//!   back (both stacks adjusted, DPL-0 ES nulled); ring 3 -> ring 1 (stack
//!   from TSS.SS1:ESP1) with a fault taken at ring 1; a ring-0 gate used
//!   from ring 0 (no stack switch); a 16-bit gate (word frame and
//!   parameter, o16 RETF 2); a conforming segment called from ring 3 (CPL
//!   stays 3);
//! - gate faults: gate DPL < CPL #GP(gate), not-present gate #NP(gate),
//!   null inner SS in the TSS #TS(0), JMP through a gate to an inner ring
//!   #GP(target), not-present target #NP(target); IRET to ring 3 with a
//!   DPL-0 SS #GP(SS); LSS of a code selector #GP(sel);
//! - interrupt and trap gates: IF cleared only by interrupt gates, the
//!   ring-3 frame (SS, ESP, EFLAGS, CS, EIP) on the TSS stack, a 16-bit
//!   interrupt gate's 6-byte frame, INT to a DPL-0 gate #GP(vector*8+2),
//!   not-present gate #NP(vector*8+2), beyond the IDT limit;
//! - exceptions: #DE, #UD, INT3 and INTO (traps: EIP after), a TF
//!   single-step trap (DR6.BS, EIP after the stepped instruction), #NP with EXT
//!   set when the #UD gate is not present, #DF when the #GP gate is not
//!   present;
//! - IRET/RETF: IRET to ring 3 nulls DPL-0 DS/ES, POPF at ring 3 cannot
//!   change IOPL or IF, IRET/RETF to an inner ring #GP(sel), privileged
//!   instructions and denied ports at ring 3 #GP(0), but CLI/STI and any
//!   port at ring 3 with IOPL 3;
//! - #AC(0) only with CR0.AM, EFLAGS.AC and CPL 3; BOUND #BR;
//! - SYSEXIT to ring 3 and SYSENTER back (selectors, ESP, IF).

use super::asm::{Code, Image, R};
use super::rt::{self, gate, seg, PushedEip, Tables, Tss32, *};
use super::Program;
use iced_x86::code_asm::*;

const PROG: &str = "gates";

// GDT.
const CG_R0: u16 = 0x40;
const CG_SAME: u16 = 0x48;
const CG_DPL0: u16 = 0x50;
const CG_NP: u16 = 0x58;
const CONF: u16 = 0x60;
const R1CODE: u16 = 0x68;
const R1DATA: u16 = 0x70;
const CG_R1: u16 = 0x78;
const CG_R2: u16 = 0x98;
const R2CODE: u16 = 0xA0;
const CG16: u16 = 0xA8;
const CG_NPCODE: u16 = 0xB0;
const NPCODE: u16 = 0xB8;

// IDT.
const V_INT: u8 = 0x81;
const V_TRAP: u8 = 0x82;
const V_INT16: u8 = 0x83;
const V_DPL0: u8 = 0x84;
const V_NP: u8 = 0x85;
const V_BEYOND: u8 = 0x90;

// Variables: frame words recorded by the handlers.
const F: u32 = VARS;
const fn f(k: u32) -> u32 {
    F + 4 * k
}
const V_CS: u32 = VARS + 0x40;
const V_SS: u32 = VARS + 0x44;
const V_ESP: u32 = VARS + 0x48;
const V_IF: u32 = VARS + 0x4C;
const V_IDTR: u32 = VARS + 0x50;
const V_BOUNDS: u32 = VARS + 0x58;
const V_DB_EIP: u32 = VARS + 0x60;
const V_DB_DR6: u32 = VARS + 0x64;
const V_DB_COUNT: u32 = VARS + 0x68;

pub fn program() -> Program {
    let tss = Tss32 { ss1: R1DATA | 1, esp1: R1STACK, ss2: 0, ..Tss32::default() };
    let image = rt::protected_program(PROG, body, tables, tss, |_| Ok(()));
    Program { name: PROG, image, load_addr: LOAD }
}

fn tables(t: &mut Tables, img: &mut Image) {
    let h = img.addr("cg.r0");
    t.set_gdt(CG_R0, gate(KCODE, h, GATE_CALL32, 3, 2, true));
    let h = img.addr("cg.same");
    t.set_gdt(CG_SAME, gate(KCODE, h, GATE_CALL32, 0, 0, true));
    t.set_gdt(CG_DPL0, gate(KCODE, h, GATE_CALL32, 0, 0, true));
    t.set_gdt(CG_NP, gate(KCODE, h, GATE_CALL32, 3, 0, false));
    t.set_gdt(CONF, seg(0, 0xFFFFF, 0x9E, FL_4G32));
    t.set_gdt(R1CODE, seg(0, 0xFFFFF, ACC_CODE | DPL1, FL_4G32));
    t.set_gdt(R1DATA, seg(0, 0xFFFFF, ACC_DATA | DPL1, FL_4G32));
    let h = img.addr("cg.r1");
    t.set_gdt(CG_R1, gate(R1CODE, h, GATE_CALL32, 3, 0, true));
    t.set_gdt(R2CODE, seg(0, 0xFFFFF, ACC_CODE | 0x40, FL_4G32));
    t.set_gdt(CG_R2, gate(R2CODE, h, GATE_CALL32, 3, 0, true));
    let h = img.addr("int.record");
    t.set_idt(V_INT, gate(KCODE, h, GATE_INT32, 3, 0, true));
    t.set_idt(V_TRAP, gate(KCODE, h, GATE_TRAP32, 3, 0, true));
    t.set_idt(V_DPL0, gate(KCODE, h, GATE_INT32, 0, 0, true));
    t.set_idt(V_NP, gate(KCODE, h, GATE_INT32, 3, 0, false));
    t.set_gdt(NPCODE, seg(0, 0xFFFFF, ACC_CODE & 0x7F, FL_4G32));
    t.set_gdt(CG_NPCODE, gate(NPCODE, 0, GATE_CALL32, 3, 0, true));
    let h = img.addr("cg.16");
    assert!(h < 0x1_0000, "a 16-bit gate needs a handler below 64 KiB");
    t.set_gdt(CG16, gate(KCODE, h, GATE_CALL16, 3, 1, true));
    let h = img.addr("db.handler");
    t.set_idt(1, gate(KCODE, h, GATE_INT32, 0, 0, true));
    let h16 = img.addr("int.record16");
    assert!(h16 < 0x1_0000, "a 16-bit gate needs a handler below 64 KiB");
    t.set_idt(V_INT16, gate(KCODE, h16, GATE_INT16, 0, 0, true));
}

fn body(c: &mut Code, img: &mut Image) -> R {
    call_gates(c, img)?;
    gate_faults(c, img)?;
    interrupt_gates(c, img)?;
    exceptions(c, img)?;
    iret_and_privilege(c, img)?;
    sysenter(c, img)?;
    rt::finish(c)?;
    handlers(c, img)
}

fn call_gates(c: &mut Code, img: &mut Image) -> R {
    c.section()?;
    // Ring 3 -> ring 0 with two parameters.
    c.enter_ring3(img)?;
    c.push(0x1111_1111)?;
    c.push(0x2222_2222)?;
    c.mov(ebp, esp)?;
    c.call_far(CG_R0 | 3, 0)?;
    c.here("cg.after_r0")?;
    c.mov(ecx, esp)?;
    c.sub(ecx, ebp)?;
    c.check_r32(ecx, 8, "RETF 8 released the ring-3 parameters")?;
    c.xor(eax, eax)?;
    c.mov(ax, es)?;
    c.check_r32(eax, 0, "DPL-0 ES nulled by RETF to ring 3")?;
    c.xor(eax, eax)?;
    c.mov(ax, cs)?;
    c.check_r32(eax, UCODE as u32, "CS back at ring 3")?;
    c.mov(ax, UDATA as u32)?;
    c.mov(es, ax)?;
    c.check_m32(V_CS, KCODE as u32, "CS in ring-0 gate target")?;
    c.check_m32(V_SS, KDATA as u32, "SS from TSS.SS0")?;
    c.check_m32(V_ESP, ISTACK - 24, "ESP from TSS.ESP0 minus the frame")?;
    let after = img.addr("cg.after_r0");
    c.check_m32(f(0), after, "frame EIP")?;
    c.check_m32(f(1), UCODE as u32, "frame CS")?;
    c.check_m32(f(2), 0x2222_2222, "frame parameter at ESP+8")?;
    c.check_m32(f(3), 0x1111_1111, "frame parameter at ESP+12")?;
    c.check_m32(f(4), USTACK - 8, "frame old ESP")?;
    c.check_m32(f(5), UDATA as u32, "frame old SS")?;

    // Ring 3 -> ring 1: stack from TSS.SS1:ESP1, and a #GP taken at ring 1.
    c.call_far(CG_R1 | 3, 0)?;
    c.check_m32(V_CS, (R1CODE | 1) as u32, "CS in ring-1 gate target")?;
    c.check_m32(V_SS, (R1DATA | 1) as u32, "SS from TSS.SS1")?;
    c.check_m32(V_ESP, R1STACK - 16, "ESP from TSS.ESP1")?;
    c.check_m32(f(6), (R1CODE | 1) as u32, "CS of #GP frame from ring 1")?;
    c.check_m32(f(7), (R1DATA | 1) as u32, "SS of #GP frame from ring 1")?;

    // A 16-bit call gate: word-sized frame and parameter, o16 RETF 2.
    c.mov(ebp, esp)?;
    c.mov(ax, 0x4321u32)?;
    c.push(ax)?;
    c.call_far(CG16 | 3, 0)?;
    c.here("cg.after16")?;
    c.mov(ecx, esp)?;
    c.sub(ecx, ebp)?;
    c.check_r32(ecx, 0, "o16 RETF 2 released the word parameter")?;
    c.check_m32(V_ESP, ISTACK - 10, "16-bit gate frame size")?;
    let after = img.addr("cg.after16");
    c.check_m32(f(0), after & 0xFFFF, "16-bit gate frame IP")?;
    c.check_m32(f(1), UCODE as u32, "16-bit gate frame CS")?;
    c.check_m32(f(2), 0x4321, "16-bit gate frame parameter")?;
    c.check_m32(f(3), (USTACK - 2) & 0xFFFF, "16-bit gate frame SP")?;
    c.check_m32(f(4), UDATA as u32, "16-bit gate frame SS")?;

    // Conforming code keeps CPL 3.
    let h = img.addr("conf.entry");
    c.call_far(CONF | 3, h)?;
    c.check_m32(V_CS, (CONF | 3) as u32, "CS in conforming segment")?;
    c.back_to_ring0(img)?;

    // Ring 0 -> ring 0 through a gate: no stack switch.
    c.mov(ebp, esp)?;
    c.call_far(CG_SAME, 0)?;
    c.check_m32(V_CS, KCODE as u32, "CS through same-level gate")?;
    c.lea(eax, dword_ptr(ebp - 8))?;
    c.cmp(eax, dword_ptr(V_ESP))?;
    let mut ok = c.fresh();
    c.je(ok)?;
    c.mov(eax, dword_ptr(V_ESP))?;
    c.fail_r32(eax, "same-level gate switched stacks: ESP")?;
    c.set(&mut ok)?;
    c.nop()?;
    c.section_ok("call-gates")
}

fn gate_faults(c: &mut Code, img: &mut Image) -> R {
    c.section()?;
    c.enter_ring3(img)?;
    c.fault(img, "call gate DPL < CPL", 13, Some(CG_DPL0 as u32), |c| c.call_far(CG_DPL0 | 3, 0))?;
    c.fault(img, "not-present call gate", 11, Some(CG_NP as u32), |c| c.call_far(CG_NP | 3, 0))?;
    c.fault(img, "null SS2 in TSS", 10, Some(0), |c| c.call_far(CG_R2 | 3, 0))?;
    let h = img.addr("conf.entry");
    c.fault(img, "far JMP to DPL-0 code", 13, Some(KCODE as u32), |c| c.jmp_far(KCODE, h))?;
    c.fault(img, "JMP through a call gate to an inner ring", 13, Some(KCODE as u32), |c| c.jmp_far(CG_R0 | 3, 0))?;
    c.fault(img, "call gate to a not-present segment", 11, Some(NPCODE as u32), |c| c.call_far(CG_NPCODE | 3, 0))?;
    // IRET to ring 3 with a DPL-0 stack segment in the frame.
    c.back_to_ring0(img)?;
    c.push(KDATA as u32)?;
    c.push(USTACK)?;
    c.pushfd()?;
    c.push(UCODE as u32)?;
    c.push(h)?;
    c.fault(img, "IRET to ring 3 with a DPL-0 SS", 13, Some(KDATA as u32), |c| c.iretd())?;
    c.add(esp, 20)?;
    c.mov(dword_ptr(V_BOUNDS), USTACK)?;
    c.mov(dword_ptr(V_BOUNDS + 4), UCODE as u32)?;
    c.fault(img, "LSS of a code selector", 13, Some((UCODE & 0xFFFC) as u32), |c| c.lss(esp, ptr(V_BOUNDS)))?;
    c.enter_ring3(img)?;
    c.back_to_ring0(img)?;
    c.section_ok("gate-faults")
}

fn interrupt_gates(c: &mut Code, img: &mut Image) -> R {
    c.section()?;
    // IF: cleared by an interrupt gate, kept by a trap gate.
    c.sti()?;
    c.int(V_INT as u32)?;
    c.cli()?;
    c.check_m32(V_IF, 0, "IF inside interrupt gate handler")?;
    c.mov(eax, dword_ptr(f(2)))?;
    c.and(eax, 0x200)?;
    c.check_r32(eax, 0x200, "IF in pushed EFLAGS")?;
    c.sti()?;
    c.int(V_TRAP as u32)?;
    c.cli()?;
    c.check_m32(V_IF, 0x200, "IF inside trap gate handler")?;
    // Same-level frame: ESP moved by 12 only.
    c.mov(ebp, esp)?;
    c.int(V_INT as u32)?;
    c.here("int.after_r0")?;
    c.lea(eax, dword_ptr(ebp - 12))?;
    c.cmp(eax, dword_ptr(V_ESP))?;
    let mut ok = c.fresh();
    c.je(ok)?;
    c.mov(eax, dword_ptr(V_ESP))?;
    c.fail_r32(eax, "same-level interrupt frame: handler ESP")?;
    c.set(&mut ok)?;
    let after = img.addr("int.after_r0");
    c.check_m32(f(0), after, "same-level frame EIP")?;
    c.check_m32(f(1), KCODE as u32, "same-level frame CS")?;

    // From ring 3: stack switch, five-dword frame.
    c.enter_ring3(img)?;
    c.int(V_INT as u32)?;
    c.here("int.after_r3")?;
    c.check_m32(V_CS, KCODE as u32, "handler CS")?;
    c.check_m32(V_SS, KDATA as u32, "handler SS")?;
    c.check_m32(V_ESP, ISTACK - 20, "handler ESP")?;
    let after = img.addr("int.after_r3");
    c.check_m32(f(0), after, "ring-3 frame EIP")?;
    c.check_m32(f(1), UCODE as u32, "ring-3 frame CS")?;
    c.check_m32(f(3), USTACK, "ring-3 frame ESP")?;
    c.check_m32(f(4), UDATA as u32, "ring-3 frame SS")?;
    c.fault(img, "INT to DPL-0 gate", 13, Some(V_DPL0 as u32 * 8 + 2), |c| c.int(V_DPL0 as u32))?;
    c.fault(img, "INT to not-present gate", 11, Some(V_NP as u32 * 8 + 2), |c| c.int(V_NP as u32))?;
    c.back_to_ring0(img)?;

    // 16-bit interrupt gate: IP, CS, FLAGS as words.
    c.mov(ebp, esp)?;
    c.int(V_INT16 as u32)?;
    c.here("int.after16")?;
    c.lea(eax, dword_ptr(ebp - 6))?;
    c.cmp(eax, dword_ptr(V_ESP))?;
    let mut ok = c.fresh();
    c.je(ok)?;
    c.mov(eax, dword_ptr(V_ESP))?;
    c.fail_r32(eax, "16-bit gate frame size: handler ESP")?;
    c.set(&mut ok)?;
    let after = img.addr("int.after16");
    c.check_m32(f(0), after & 0xFFFF, "16-bit frame IP")?;
    c.check_m32(f(1), KCODE as u32, "16-bit frame CS")?;

    // Beyond the IDT limit.
    c.mov(word_ptr(V_IDTR), V_BEYOND as u32 * 8 - 1)?;
    c.mov(dword_ptr(V_IDTR + 2), IDT)?;
    c.lidt(ptr(V_IDTR))?;
    c.fault(img, "INT beyond IDT limit", 13, Some(V_BEYOND as u32 * 8 + 2), |c| c.int(V_BEYOND as u32))?;
    c.lidt(ptr(IDTR_PTR))?;
    c.section_ok("interrupt-gates")
}

fn exceptions(c: &mut Code, img: &mut Image) -> R {
    c.section()?;
    c.xor(edx, edx)?;
    c.xor(ecx, ecx)?;
    c.mov(eax, 1u32)?;
    c.fault(img, "#DE", 0, None, |c| c.div(ecx))?;
    c.fault(img, "#UD", 6, None, |c| c.ud2())?;
    c.trap(img, "INT3", 3, |c| c.int3())?;
    c.mov(al, 0x7Fu32)?;
    c.add(al, 1)?;
    c.trap(img, "INTO with OF", 4, |c| CodeAssembler::into(&mut c.a))?;
    c.mov(dword_ptr(V_BOUNDS), 0u32)?;
    c.mov(dword_ptr(V_BOUNDS + 4), 10u32)?;
    c.mov(eax, 10u32)?;
    c.no_fault(img, "BOUND within range", |c| c.bound(eax, ptr(V_BOUNDS)))?;
    c.mov(eax, 11u32)?;
    c.fault(img, "BOUND out of range", 5, None, |c| c.bound(eax, ptr(V_BOUNDS)))?;
    c.no_fault(img, "INTO without OF", |c| {
        c.xor(eax, eax)?;
        CodeAssembler::into(&mut c.a)
    })?;
    // Single step: POPF sets TF, the next instruction runs, then #DB with
    // DR6.BS and the EIP of the instruction after it (SDM vol. 3, 17.3.1.4).
    c.xor(eax, eax)?;
    c.mov(dr6, eax)?;
    c.mov(dword_ptr(V_DB_COUNT), 0u32)?;
    c.pushfd()?;
    c.or(dword_ptr(esp), 0x100)?;
    c.popfd()?;
    c.nop()?;
    c.here("db.after_nop")?;
    c.nop()?;
    c.check_m32(V_DB_COUNT, 1, "single-step traps (handler clears TF)")?;
    let after = img.addr("db.after_nop");
    c.check_m32(V_DB_EIP, after, "single-step trap EIP")?;
    c.mov(eax, dword_ptr(V_DB_DR6))?;
    c.and(eax, 0x4000)?;
    c.check_r32(eax, 0x4000, "DR6.BS after single step")?;
    // #UD through a not-present gate: #NP(6*8 + IDT + EXT).
    c.and(byte_ptr(IDT + 6 * 8 + 5), 0x7Fu32)?;
    c.fault(img, "#UD with not-present gate", 11, Some(6 * 8 + 3), |c| c.ud2())?;
    c.or(byte_ptr(IDT + 6 * 8 + 5), 0x80u32)?;
    // #GP through a not-present gate: #NP while delivering #GP = #DF(0).
    c.and(byte_ptr(IDT + 13 * 8 + 5), 0x7Fu32)?;
    c.mov(ax, (KDATA | 3) as u32)?;
    c.expect_exception(img, "#GP with not-present gate", 8, Some(0), PushedEip::Any, |c| c.mov(ds, ax))?;
    c.or(byte_ptr(IDT + 13 * 8 + 5), 0x80u32)?;
    c.section_ok("exceptions")
}

fn iret_and_privilege(c: &mut Code, img: &mut Image) -> R {
    c.section()?;
    // IRET to ring 3 with DPL-0 DS/ES: they become null; FS (DPL 3) stays.
    c.mov(ax, UDATA as u32)?;
    c.mov(fs, ax)?;
    c.mov(dword_ptr(SAVED_ESP0), esp)?;
    c.push(UDATA as u32)?;
    c.push(USTACK)?;
    c.pushfd()?;
    c.push(UCODE as u32)?;
    let a = img.addr("iret.r3");
    c.push(a)?;
    c.iretd()?;
    c.here("iret.r3")?;
    c.xor(eax, eax)?;
    c.mov(ax, ds)?;
    c.mov(ebx, eax)?;
    c.mov(ax, es)?;
    c.mov(ecx, eax)?;
    c.mov(ax, fs)?;
    c.mov(edx, eax)?;
    c.mov(ax, UDATA as u32)?;
    c.mov(ds, ax)?;
    c.mov(es, ax)?;
    c.check_r32(ebx, 0, "DS nulled by IRET to ring 3")?;
    c.check_r32(ecx, 0, "ES nulled by IRET to ring 3")?;
    c.check_r32(edx, UDATA as u32, "FS kept by IRET to ring 3")?;
    // POPF at CPL 3 > IOPL: IOPL and IF silently unchanged.
    c.pushfd()?;
    c.pop(eax)?;
    c.or(eax, 0x3200)?;
    c.push(eax)?;
    c.popfd()?;
    c.pushfd()?;
    c.pop(eax)?;
    c.and(eax, 0x3200)?;
    c.check_r32(eax, 0, "POPF at ring 3 changed IOPL/IF")?;
    // Returns to an inner ring.
    c.pushfd()?;
    c.push(KCODE as u32)?;
    let a = img.addr("iret.r3");
    c.push(a)?;
    c.fault(img, "IRET to ring 0", 13, Some(KCODE as u32), |c| c.iretd())?;
    c.add(esp, 12)?;
    c.push(KCODE as u32)?;
    c.push(a)?;
    c.fault(img, "RETF to ring 0", 13, Some(KCODE as u32), |c| c.retf())?;
    c.add(esp, 8)?;
    // Privileged and IOPL-sensitive instructions.
    c.mov(ax, KDATA as u32)?;
    c.fault(img, "load DPL-0 data at ring 3", 13, Some(KDATA as u32), |c| c.mov(ds, ax))?;
    c.fault(img, "CLI at ring 3", 13, Some(0), |c| c.cli())?;
    c.fault(img, "HLT at ring 3", 13, Some(0), |c| c.hlt())?;
    c.fault(img, "MOV from CR0 at ring 3", 13, Some(0), |c| c.mov(eax, cr0))?;
    c.fault(img, "LGDT at ring 3", 13, Some(0), |c| c.lgdt(ptr(GDTR_PTR)))?;
    c.fault(img, "IN from a denied port", 13, Some(0), |c| c.in_(al, 0x80))?;
    c.mov(dx, 0xE9u32)?;
    c.no_fault(img, "IN from a port the bitmap allows", |c| c.in_(al, dx))?;
    // Alignment check needs CR0.AM (set below), EFLAGS.AC and CPL 3.
    c.pushfd()?;
    c.or(dword_ptr(esp), 0x4_0000)?;
    c.popfd()?;
    c.no_fault(img, "misaligned read with CR0.AM clear", |c| c.mov(eax, dword_ptr(USTACK - 0x101)))?;
    c.back_to_ring0(img)?;
    c.mov(eax, cr0)?;
    c.or(eax, 0x4_0000)?;
    c.mov(cr0, eax)?;
    c.enter_ring3(img)?;
    c.pushfd()?;
    c.or(dword_ptr(esp), 0x4_0000)?;
    c.popfd()?;
    c.fault(img, "misaligned read at ring 3 with AM and AC", 17, Some(0), |c| c.mov(eax, dword_ptr(USTACK - 0x101)))?;
    c.pushfd()?;
    c.and(dword_ptr(esp), !0x4_0000u32)?;
    c.popfd()?;
    c.no_fault(img, "misaligned read with AC clear", |c| c.mov(eax, dword_ptr(USTACK - 0x101)))?;
    c.back_to_ring0(img)?;
    c.no_fault(img, "misaligned read at ring 0", |c| c.mov(eax, dword_ptr(USTACK - 0x101)))?;
    c.mov(eax, cr0)?;
    c.and(eax, !0x4_0000u32)?;
    c.mov(cr0, eax)?;

    // Ring 3 with IOPL 3: CLI/STI and every port are allowed.
    c.mov(dword_ptr(SAVED_ESP0), esp)?;
    c.push(UDATA as u32)?;
    c.push(USTACK)?;
    c.pushfd()?;
    c.or(dword_ptr(esp), 0x3000)?;
    c.push(UCODE as u32)?;
    let a = img.addr("iopl3.r3");
    c.push(a)?;
    c.iretd()?;
    c.here("iopl3.r3")?;
    c.mov(ax, UDATA as u32)?;
    c.mov(ds, ax)?;
    c.mov(es, ax)?;
    c.no_fault(img, "CLI/STI at ring 3 with IOPL 3", |c| {
        c.cli()?;
        c.sti()?;
        c.cli()
    })?;
    c.no_fault(img, "IN from a denied port with IOPL 3", |c| c.in_(al, 0x80))?;
    c.back_to_ring0(img)?;
    c.pushfd()?;
    c.and(dword_ptr(esp), !0x3000u32)?;
    c.popfd()?;
    c.section_ok("iret-and-privilege")
}

/// SYSEXIT to ring 3 and SYSENTER back. The standard GDT has the layout
/// both expect: code, stack, user code, user stack from SYSENTER_CS.
fn sysenter(c: &mut Code, img: &mut Image) -> R {
    c.section()?;
    for (msr, v) in [(0x174u32, KCODE as u32), (0x175, ISTACK), (0x176, img.addr("sys.enter"))] {
        c.mov(ecx, msr)?;
        c.mov(eax, v)?;
        c.xor(edx, edx)?;
        c.wrmsr()?;
    }
    c.mov(dword_ptr(SAVED_ESP0), esp)?;
    c.sti()?;
    let user = img.addr("sys.user");
    c.mov(edx, user)?;
    c.mov(ecx, USTACK - 0x10)?;
    c.sysexit()?;
    c.here("sys.user")?;
    c.xor(eax, eax)?;
    c.mov(ax, cs)?;
    c.mov(ebx, eax)?;
    c.mov(ax, ss)?;
    c.mov(edi, esp)?;
    c.sysenter()?;
    c.here("sys.enter")?;
    c.mov(esi, esp)?;
    c.pushfd()?;
    c.pop(edx)?;
    c.mov(esp, dword_ptr(SAVED_ESP0))?;
    c.xor(ecx, ecx)?;
    c.mov(cx, cs)?;
    c.check_r32(ebx, UCODE as u32, "CS after SYSEXIT")?;
    c.check_r32(eax, UDATA as u32, "SS after SYSEXIT")?;
    c.check_r32(edi, USTACK - 0x10, "ESP after SYSEXIT (from ECX)")?;
    c.check_r32(ecx, KCODE as u32, "CS after SYSENTER")?;
    c.check_r32(esi, ISTACK, "ESP after SYSENTER (from the MSR)")?;
    c.and(edx, 0x200)?;
    c.check_r32(edx, 0, "SYSENTER clears IF")?;
    c.xor(eax, eax)?;
    c.mov(ax, ss)?;
    c.check_r32(eax, KDATA as u32, "SS after SYSENTER")?;
    c.mov(ax, UDATA as u32)?;
    c.mov(ds, ax)?;
    c.mov(ax, KDATA as u32)?;
    c.mov(ds, ax)?;
    c.section_ok("sysenter-sysexit")
}

/// Gate targets, after the exit path.
fn handlers(c: &mut Code, img: &mut Image) -> R {
    // Record the current CS/SS/ESP and six frame dwords.
    fn record(c: &mut Code, frame_dwords: u32) -> R {
        c.push(eax)?;
        c.xor(eax, eax)?;
        c.mov(ax, cs)?;
        c.mov(dword_ptr(V_CS), eax)?;
        c.mov(ax, ss)?;
        c.mov(dword_ptr(V_SS), eax)?;
        c.lea(eax, dword_ptr(esp + 4))?;
        c.mov(dword_ptr(V_ESP), eax)?;
        for k in 0..frame_dwords {
            c.mov(eax, dword_ptr(esp + 4 + 4 * k))?;
            c.mov(dword_ptr(f(k)), eax)?;
        }
        // CS slots as 16-bit selectors.
        c.movzx(eax, word_ptr(esp + 8))?;
        c.mov(dword_ptr(f(1)), eax)?;
        c.pop(eax)
    }

    c.here("cg.r0")?;
    record(c, 6)?;
    c.movzx(eax, word_ptr(esp + 20))?;
    c.mov(dword_ptr(f(5)), eax)?;
    c.mov(ax, KDATA as u32)?;
    c.mov(es, ax)?;
    c.retf_1(8)?;

    // #DB: count, record, clear TF in the frame.
    c.here("db.handler")?;
    c.push(eax)?;
    c.inc(dword_ptr(V_DB_COUNT))?;
    c.mov(eax, dword_ptr(esp + 4))?;
    c.mov(dword_ptr(V_DB_EIP), eax)?;
    c.mov(eax, dr6)?;
    c.mov(dword_ptr(V_DB_DR6), eax)?;
    c.and(dword_ptr(esp + 12), !0x100u32)?;
    c.pop(eax)?;
    c.iretd()?;

    c.here("cg.16")?;
    c.push(eax)?;
    c.lea(eax, dword_ptr(esp + 4))?;
    c.mov(dword_ptr(V_ESP), eax)?;
    for k in 0..5u32 {
        c.movzx(eax, word_ptr(esp + 4 + 2 * k))?;
        c.mov(dword_ptr(f(k)), eax)?;
    }
    c.pop(eax)?;
    c.add_instruction(iced_x86::Instruction::with1(iced_x86::Code::Retfw_imm16, 2u32)?)?;

    c.here("cg.same")?;
    record(c, 2)?;
    c.retf()?;

    c.here("cg.r1")?;
    record(c, 2)?;
    // A #GP at ring 1 goes to the ring-0 handler and back to ring 1.
    c.fault(img, "CLI at ring 1", 13, Some(0), |c| c.cli())?;
    c.mov(eax, dword_ptr(EXC_CS))?;
    c.mov(dword_ptr(f(6)), eax)?;
    c.mov(eax, dword_ptr(EXC_SS))?;
    c.mov(dword_ptr(f(7)), eax)?;
    c.retf()?;

    c.here("conf.entry")?;
    record(c, 2)?;
    c.retf()?;

    c.here("int.record")?;
    record(c, 5)?;
    c.push(eax)?;
    c.movzx(eax, word_ptr(esp + 4 + 16))?;
    c.mov(dword_ptr(f(4)), eax)?;
    c.pushfd()?;
    c.pop(eax)?;
    c.and(eax, 0x200)?;
    c.mov(dword_ptr(V_IF), eax)?;
    c.pop(eax)?;
    c.iretd()?;

    c.here("int.record16")?;
    c.push(eax)?;
    c.lea(eax, dword_ptr(esp + 4))?;
    c.mov(dword_ptr(V_ESP), eax)?;
    for k in 0..3u32 {
        c.movzx(eax, word_ptr(esp + 4 + 2 * k))?;
        c.mov(dword_ptr(f(k)), eax)?;
    }
    c.pop(eax)?;
    c.iret()
}
