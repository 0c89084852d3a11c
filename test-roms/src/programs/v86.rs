//! `v86`: virtual-8086 mode (SDM vol. 3, chapter 20) under a small
//! ring-0 monitor.
//!
//! - entry: IRETD from ring 0 with EFLAGS.VM set loads CS/SS/DS/ES/FS/GS
//!   from the frame as real-mode style segments (base = selector * 16);
//! - IOPL 0: CLI, STI, PUSHF, POPF, INT n, IRET and HLT raise #GP(0) to the
//!   monitor (INT3 is not IOPL-sensitive: #GP(0x1A) from its DPL-0 gate), with the V86 frame (EIP, CS, EFLAGS with VM, ESP, SS, ES, DS,
//!   FS, GS) on the TSS.ESP0 stack and DS/ES/FS/GS null in the handler;
//! - I/O: the TSS I/O bitmap alone decides (allowed port 0x80, denied
//!   0x81, a word access touching a denied port), even with IOPL 3;
//! - segment limit: a word at offset 0xFFFF #GP(0);
//! - IOPL 3: CLI/STI/PUSHF/POPF run directly (PUSHFD shows no VM, POPF
//!   cannot change IOPL), IRET inside V86, INT n goes through a DPL-3 IDT
//!   gate to a ring-0 handler (VM and IF clear there) and IRETD returns;
//! - the monitor resumes V86 code with IRETD after each event;
//! - paging: V86 code runs at CPL 3, so not-present, read-only and
//!   supervisor pages give #PF with U/S set, CR2 and the V86 frame.

use super::asm::{Code, Image, R};
use super::rt::{self, gate, Tables, Tss32, *};
use super::Program;
use iced_x86::code_asm::*;

const PROG: &str = "v86";

const VM: u32 = 1 << 17;
const IOPL3: u32 = 0x3000;
const IF: u32 = 0x200;

const V86_SS: u32 = 0x0200;
const V86_SP: u32 = 0x0E00;
const V86_DS: u32 = 0x3000;
const V86_ES: u32 = 0x1234;

const V_INT30: u8 = 0x30;
const V_EXIT: u8 = 0xFF;

const fn v(k: u32) -> u32 {
    VARS + 4 * k
}
// Monitor state.
const MON_DS: u32 = v(0);
const MON_ES: u32 = v(1);
const MON_FS: u32 = v(2);
const MON_GS: u32 = v(3);
const MON_ESP: u32 = v(4);
/// The full frame of the latest event: EIP CS EFLAGS ESP SS ES DS FS GS.
const FRAME: u32 = v(8);
const MON_EFL: u32 = v(17);
const MON_CS: u32 = v(18);
// Values stored by V86 code (DS = 0 there).
const X1: u32 = v(20);
const X2: u32 = v(21);
const X3: u32 = v(22);
const X4: u32 = v(23);
const X5: u32 = v(24);
const X6: u32 = v(25);
/// Page-fault records from V86 code: (vector, error, CR2, EIP, EFLAGS) x 3.
const PF: u32 = v(26);
/// Event log: count, then (opcode, error code, IP, EFLAGS) per event.
const LOG_N: u32 = v(48);
const LOG: u32 = v(49);

pub fn program() -> Program {
    let tss = Tss32 { allowed_ports: vec![0xE9, 0x80], ..Tss32::default() };
    let image = rt::protected_program(PROG, body, tables, tss, code16);
    Program { name: PROG, image, load_addr: LOAD }
}

fn tables(t: &mut Tables, img: &mut Image) {
    let h = img.addr("mon.gp");
    t.set_idt(13, gate(KCODE, h, GATE_INT32, 0, 0, true));
    let h = img.addr("mon.int30");
    t.set_idt(V_INT30, gate(KCODE, h, GATE_INT32, 3, 0, true));
    let h = img.addr("mon.exit");
    t.set_idt(V_EXIT, gate(KCODE, h, GATE_INT32, 3, 0, true));
}

fn body(c: &mut Code, img: &mut Image) -> R {
    iopl0(c, img)?;
    iopl3(c, img)?;
    paging(c, img)?;
    rt::finish(c)?;
    monitor(c, img)
}

/// Enter V86 mode at `entry` with `eflags`; continues after V86 code runs
/// `int 0xFF`.
fn enter_v86(c: &mut Code, img: &mut Image, entry: &str, eflags: u32) -> R {
    let back = c.unique("v86.back");
    c.mov(dword_ptr(SAVED_ESP0), esp)?;
    let a = img.addr(&back);
    c.mov(dword_ptr(RING0_CONT), a)?;
    c.push(0)?; // GS
    c.push(0)?; // FS
    c.push(V86_DS)?;
    c.push(V86_ES)?;
    c.push(V86_SS)?;
    c.push(V86_SP)?;
    c.push(eflags | VM | 2)?;
    c.push(0)?; // CS
    let e = img.addr(entry);
    c.push(e)?;
    c.iretd()?;
    c.here(&back)?;
    c.mov(ax, KDATA as u32)?;
    c.mov(ds, ax)?;
    c.mov(es, ax)?;
    c.mov(fs, ax)?;
    c.mov(gs, ax)
}

/// Expected log entry `k`: opcode and the label of the instruction.
fn check_event(c: &mut Code, img: &mut Image, k: u32, (opcode, err, at): (u32, u32, &str)) -> R {
    let e = LOG + 16 * k;
    c.check_m32(e, opcode, &format!("event {k} opcode"))?;
    c.check_m32(e + 4, err, &format!("event {k} error code"))?;
    let ip = img.addr(at);
    c.check_m32(e + 8, ip, &format!("event {k} IP ({at})"))?;
    c.mov(eax, dword_ptr(e + 12))?;
    c.and(eax, VM | IOPL3)?;
    c.check_r32(eax, VM, &format!("event {k} pushed EFLAGS VM/IOPL"))
}

fn iopl0(c: &mut Code, img: &mut Image) -> R {
    c.section()?;
    c.mov(dword_ptr(LOG_N), 0u32)?;
    c.mov(byte_ptr(V86_DS * 16 + 0x10), 0u32)?;
    enter_v86(c, img, "v1.entry", IF)?;
    let events = [
        (0xFA, 0, "v1.cli"),
        (0xFB, 0, "v1.sti"),
        (0x9C, 0, "v1.pushf"),
        (0x9D, 0, "v1.popf"),
        (0xCD, 0, "v1.int"),
        // INT3 is not IOPL-sensitive: it goes through the IDT, whose DPL-0
        // gate refuses it with #GP(3*8+2).
        (0xCC, 3 * 8 + 2, "v1.int3"),
        (0xE4, 0, "v1.in81"),
        (0xE6, 0, "v1.out81"),
        (0xE5, 0, "v1.inw80"),
        (0xF4, 0, "v1.hlt"),
        (0x0F, 0, "v1.movcr0"),
        (0xCF, 0, "v1.iret"),
        (0xA1, 0, "v1.limit"),
        (0xCD, 0, "v1.exit"),
    ];
    c.check_m32(LOG_N, events.len() as u32, "number of monitor events")?;
    for (k, e) in events.into_iter().enumerate() {
        check_event(c, img, k as u32, e)?;
    }
    // The last frame (INT 0xFF) in full.
    let exit_ip = img.addr("v1.exit");
    let f = |k: u32| FRAME + 4 * k;
    c.check_m32(f(0), exit_ip, "frame EIP")?;
    c.check_m32(f(1), 0, "frame CS")?;
    c.check_m32(f(3), V86_SP, "frame ESP")?;
    c.check_m32(f(4), V86_SS, "frame SS")?;
    c.check_m32(f(5), V86_ES, "frame ES")?;
    c.check_m32(f(6), V86_DS, "frame DS")?;
    c.check_m32(f(7), 0, "frame FS")?;
    c.check_m32(f(8), 0x4321, "frame GS")?;
    c.check_m32(MON_DS, 0, "monitor DS null on entry")?;
    c.check_m32(MON_ES, 0, "monitor ES null on entry")?;
    c.check_m32(MON_FS, 0, "monitor FS null on entry")?;
    c.check_m32(MON_GS, 0, "monitor GS null on entry")?;
    c.check_m32(MON_ESP, ISTACK - 40, "monitor ESP: TSS.ESP0 minus the V86 frame")?;
    c.check_m32(MON_CS, KCODE as u32, "monitor CS")?;
    c.movzx(eax, byte_ptr(V86_DS * 16 + 0x10))?;
    c.check_r32(eax, 0x55, "V86 write through DS = 3000")?;
    c.check_m32(X6, 0xFF, "IN from an allowed port ran (all-ones)")?;
    c.section_ok("iopl0-monitor")
}

fn iopl3(c: &mut Code, img: &mut Image) -> R {
    c.section()?;
    c.mov(dword_ptr(LOG_N), 0u32)?;
    enter_v86(c, img, "v3.entry", IOPL3)?;
    c.mov(eax, dword_ptr(X1))?;
    c.and(eax, IOPL3 | IF)?;
    c.check_r32(eax, IOPL3, "CLI at IOPL 3, PUSHF shows IOPL")?;
    c.mov(eax, dword_ptr(X2))?;
    c.and(eax, IF)?;
    c.check_r32(eax, IF, "STI at IOPL 3")?;
    c.mov(eax, dword_ptr(X3))?;
    c.and(eax, VM | IOPL3)?;
    c.check_r32(eax, IOPL3, "PUSHFD: VM not pushed")?;
    c.mov(eax, dword_ptr(X4))?;
    c.and(eax, IOPL3)?;
    c.check_r32(eax, IOPL3, "POPF cannot change IOPL in V86")?;
    c.check_m32(X5, 0x3030, "AX set by the protected-mode INT handler")?;
    c.check_m32(X6, 0x7777, "IRET inside V86")?;
    // Frame the INT 0x30 handler saw.
    let f = |k: u32| FRAME + 4 * k;
    let after = img.addr("v3.after_int");
    c.check_m32(f(0), after, "INT frame EIP")?;
    c.check_m32(f(1), 0, "INT frame CS")?;
    c.mov(eax, dword_ptr(f(2)))?;
    c.and(eax, VM | IOPL3)?;
    c.check_r32(eax, VM | IOPL3, "INT frame EFLAGS")?;
    c.check_m32(f(5), V86_ES, "INT frame ES")?;
    c.check_m32(f(6), V86_DS, "INT frame DS")?;
    c.mov(eax, dword_ptr(MON_EFL))?;
    c.and(eax, VM | IF)?;
    c.check_r32(eax, 0, "VM and IF clear in the INT handler")?;
    c.check_m32(MON_DS, 0, "DS null in the INT handler")?;
    c.check_m32(LOG_N, 1, "events at IOPL 3")?;
    check_event_iopl3(c, img)?;
    c.section_ok("iopl3")
}

const PD: u32 = 0x10_0000;
const PT0: u32 = 0x10_1000;
/// (linear address touched, PTE, expected #PF error code).
const PF_CASES: [(u32, u32, u32); 3] = [(0x6_0010, 0, 4), (0x6_1020, 0x6_1000 | 5, 7), (0x6_2030, 0x6_2000 | 3, 5)];

fn paging(c: &mut Code, img: &mut Image) -> R {
    c.section()?;
    c.mov(edi, PT0)?;
    c.mov(eax, 7u32)?;
    c.mov(ecx, 1024u32)?;
    let mut l = c.fresh();
    c.set(&mut l)?;
    c.stosd()?;
    c.add(eax, 0x1000)?;
    c.loop_(l)?;
    for (lin, pte, _) in PF_CASES {
        c.mov(dword_ptr(PT0 + (lin >> 12) * 4), pte)?;
    }
    c.mov(edi, PD)?;
    c.mov(ecx, 1024u32)?;
    c.xor(eax, eax)?;
    c.rep().stosd()?;
    c.mov(dword_ptr(PD), PT0 | 7)?;
    c.mov(eax, PD)?;
    c.mov(cr3, eax)?;
    c.mov(eax, cr0)?;
    c.or(eax, 0x8000_0000u32)?;
    c.mov(cr0, eax)?;
    enter_v86(c, img, "vp.entry", IOPL3)?;
    c.mov(eax, cr0)?;
    c.and(eax, 0x7FFF_FFFFu32)?;
    c.mov(cr0, eax)?;
    for (k, (lin, _, err)) in PF_CASES.into_iter().enumerate() {
        let r = PF + 20 * k as u32;
        c.check_m32(r, 14, &format!("V86 #PF {k} vector"))?;
        c.check_m32(r + 4, err, &format!("V86 #PF {k} error code"))?;
        c.check_m32(r + 8, lin, &format!("V86 #PF {k} CR2"))?;
        let ip = img.addr(&format!("vp.f{k}"));
        c.check_m32(r + 12, ip, &format!("V86 #PF {k} pushed IP"))?;
        c.mov(eax, dword_ptr(r + 16))?;
        c.and(eax, VM)?;
        c.check_r32(eax, VM, &format!("V86 #PF {k} pushed VM"))?;
    }
    c.section_ok("paging")
}

fn check_event_iopl3(c: &mut Code, img: &mut Image) -> R {
    c.check_m32(LOG, 0xE4, "IOPL 3 event opcode (IN from denied port)")?;
    let ip = img.addr("v3.in81");
    c.check_m32(LOG + 8, ip, "IOPL 3 event IP")
}

/// The #GP monitor, the INT 0x30 handler and the exit gate.
fn monitor(c: &mut Code, img: &mut Image) -> R {
    // Save the monitor's view of the segment registers, then the frame.
    fn entry(c: &mut Code, frame_at: u32) -> R {
        c.mov(dword_ptr(MON_ESP).ss(), esp)?;
        c.pushad()?;
        c.xor(eax, eax)?;
        c.mov(ax, ds)?;
        c.mov(ebx, eax)?;
        c.mov(ax, KDATA as u32)?;
        c.mov(ds, ax)?;
        c.mov(dword_ptr(MON_DS), ebx)?;
        c.mov(ax, es)?;
        c.mov(dword_ptr(MON_ES), eax)?;
        c.mov(ax, fs)?;
        c.mov(dword_ptr(MON_FS), eax)?;
        c.mov(ax, gs)?;
        c.mov(dword_ptr(MON_GS), eax)?;
        c.mov(ax, cs)?;
        c.mov(dword_ptr(MON_CS), eax)?;
        c.mov(ax, KDATA as u32)?;
        c.mov(es, ax)?;
        c.pushfd()?;
        c.pop(dword_ptr(MON_EFL))?;
        for k in 0..9 {
            c.mov(eax, dword_ptr(esp + (32 + frame_at + 4 * k)))?;
            c.mov(dword_ptr(FRAME + 4 * k), eax)?;
        }
        Ok(())
    }

    c.here("mon.gp")?;
    c.test(dword_ptr(esp + 12), VM)?;
    let mut from_v86 = c.fresh();
    c.jnz(from_v86)?;
    let rt_gp = c.lbl("rt.exc13");
    c.jmp(rt_gp)?;
    c.set(&mut from_v86)?;
    entry(c, 4)?;
    // Linear address of the faulting instruction: CS * 16 + IP.
    c.mov(ebx, dword_ptr(FRAME + 4))?;
    c.shl(ebx, 4)?;
    c.add(ebx, dword_ptr(FRAME))?;
    c.movzx(ecx, byte_ptr(ebx))?;
    // Log (opcode, error code, IP, EFLAGS).
    c.mov(edi, dword_ptr(LOG_N))?;
    c.shl(edi, 4)?;
    c.add(edi, LOG)?;
    c.mov(dword_ptr(edi), ecx)?;
    c.mov(eax, dword_ptr(esp + 32))?;
    c.mov(dword_ptr(edi + 4), eax)?;
    c.mov(eax, dword_ptr(FRAME))?;
    c.mov(dword_ptr(edi + 8), eax)?;
    c.mov(eax, dword_ptr(FRAME + 8))?;
    c.mov(dword_ptr(edi + 12), eax)?;
    c.inc(dword_ptr(LOG_N))?;
    // Skip the instruction.
    let exit = c.lbl("mon.exit");
    let mut len = c.fresh();
    c.mov(edx, 1u32)?;
    for (op, n) in [(0xCDu32, 2u32), (0xE4, 2), (0xE5, 2), (0xE6, 2), (0xE7, 2), (0x0F, 3), (0xA1, 3)] {
        let mut next = c.fresh();
        c.cmp(ecx, op)?;
        c.jne(next)?;
        if op == 0xCD {
            c.cmp(byte_ptr(ebx + 1), V_EXIT as u32)?;
            c.je(exit)?;
        }
        c.mov(edx, n)?;
        c.jmp(len)?;
        c.set(&mut next)?;
    }
    c.nop()?;
    c.set(&mut len)?;
    c.add(dword_ptr(esp + 36), edx)?;
    c.popad()?;
    c.add(esp, 4)?;
    c.iretd()?;

    // INT 0x30 from V86 at IOPL 3: record and set AX.
    c.here("mon.int30")?;
    entry(c, 0)?;
    c.popad()?;
    c.mov(eax, 0x3030u32)?;
    c.iretd()?;

    // Leave V86 for good: back to the code after enter_v86.
    c.here("mon.exit")?;
    c.mov(ax, KDATA as u32)?;
    c.mov(ds, ax)?;
    c.mov(esp, dword_ptr(SAVED_ESP0))?;
    c.jmp(dword_ptr(RING0_CONT))?;
    let _ = img;
    Ok(())
}

/// The V86 code, at 0x9000 with CS = 0.
fn code16(img: &mut Image) -> R {
    let mut c = Code::new(16, CODE16_EXTRA, PROG)?;
    // IOPL 0.
    c.here("v1.entry")?;
    c.mov(byte_ptr(0x10), 0x55u32)?;
    c.mov(ax, 0x4321u32)?;
    c.mov(gs, ax)?;
    c.here("v1.cli")?;
    c.cli()?;
    c.here("v1.sti")?;
    c.sti()?;
    c.here("v1.pushf")?;
    c.pushf()?;
    c.here("v1.popf")?;
    c.popf()?;
    c.here("v1.int")?;
    c.int(0x21)?;
    c.here("v1.int3")?;
    c.int3()?;
    c.in_(al, 0x80)?;
    c.out(0x80, al)?;
    c.mov(dx, 0x80u32)?;
    c.in_(al, dx)?;
    c.xor(bx, bx)?;
    c.mov(ds, bx)?;
    c.mov(byte_ptr(X6), al)?;
    c.mov(ax, V86_DS)?;
    c.mov(ds, ax)?;
    c.here("v1.in81")?;
    c.in_(al, 0x81)?;
    c.here("v1.out81")?;
    c.out(0x81, al)?;
    c.here("v1.inw80")?;
    c.in_(ax, 0x80)?;
    c.here("v1.hlt")?;
    c.hlt()?;
    c.here("v1.movcr0")?;
    c.mov(eax, cr0)?;
    c.here("v1.iret")?;
    c.iret()?;
    c.here("v1.limit")?;
    c.mov(ax, word_ptr(0xFFFF))?;
    c.here("v1.exit")?;
    c.int(V_EXIT as u32)?;

    // IOPL 3.
    c.here("v3.entry")?;
    c.xor(ax, ax)?;
    c.mov(ds, ax)?;
    c.cli()?;
    c.pushf()?;
    c.pop(ax)?;
    c.mov(word_ptr(X1), ax)?;
    c.sti()?;
    c.pushf()?;
    c.pop(ax)?;
    c.mov(word_ptr(X2), ax)?;
    c.pushfd()?;
    c.pop(eax)?;
    c.mov(dword_ptr(X3), eax)?;
    c.push(0)?;
    c.popf()?;
    c.pushf()?;
    c.pop(ax)?;
    c.mov(word_ptr(X4), ax)?;
    c.cli()?;
    c.mov(ax, V86_DS)?;
    c.mov(ds, ax)?;
    // I/O stays bitmap-controlled at IOPL 3.
    c.here("v3.in81")?;
    c.in_(al, 0x81)?;
    c.mov(ax, 0x5555u32)?;
    c.int(V_INT30 as u32)?;
    c.here("v3.after_int")?;
    c.xor(bx, bx)?;
    c.mov(ds, bx)?;
    c.mov(word_ptr(X5), ax)?;
    // IRET within V86.
    c.pushf()?;
    c.push(cs)?;
    let r = img.addr("v3.iret_target");
    c.push(r)?;
    c.iret()?;
    c.mov(word_ptr(X6), 0xDEADu32)?;
    c.here("v3.iret_target")?;
    c.mov(word_ptr(X6), 0x7777u32)?;
    c.int(V_EXIT as u32)?;

    // Paging: page faults from V86 code go to the runtime's handler, which
    // resumes at [RESUME] (an IP, CS being 0); copy what it recorded.
    c.here("vp.entry")?;
    c.xor(ax, ax)?;
    c.mov(ds, ax)?;
    for (k, (lin, _, _)) in PF_CASES.into_iter().enumerate() {
        c.mov(ax, (lin >> 4) & 0xF000)?;
        c.mov(es, ax)?;
        c.mov(dword_ptr(EXC_VEC), u32::MAX)?;
        let r = img.addr(&format!("vp.r{k}"));
        c.mov(dword_ptr(RESUME), r)?;
        c.here(&format!("vp.f{k}"))?;
        if k == 1 {
            c.mov(byte_ptr(lin & 0xFFFF).es(), al)?;
        } else {
            c.mov(al, byte_ptr(lin & 0xFFFF).es())?;
        }
        c.here(&format!("vp.r{k}"))?;
        for (j, var) in [EXC_VEC, EXC_ERR, EXC_CR2, EXC_EIP, EXC_EFL].into_iter().enumerate() {
            c.mov(eax, dword_ptr(var))?;
            c.mov(dword_ptr(PF + 20 * k as u32 + 4 * j as u32), eax)?;
        }
    }
    c.int(V_EXIT as u32)?;
    img.place(c)
}
