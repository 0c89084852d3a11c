//! `smc`: self-modifying and cross-modifying code. ferrite decodes each
//! instruction once into a per-physical-page cache; these checks make sure
//! every kind of write to code is seen before the code runs again.
//!
//! - a store into the very next instruction (immediate byte and dword, and
//!   through STOSB);
//! - a loop whose body rewrites its own immediate each iteration;
//! - REP MOVSB/MOVSD copying code into a buffer, running it, copying other
//!   code over it and running that;
//! - an instruction spanning two pages, rewritten in the second page;
//! - the same physical bytes decoded as 32-bit and as 16-bit code;
//! - under paging: code written through one linear alias and executed
//!   through another, and position-dependent code (CALL/POP) run at two
//!   linear addresses of one physical page.

use super::asm::{Code, Image, R};
use super::rt::{self, Tss32, *};
use super::Program;
use iced_x86::code_asm::*;

const PROG: &str = "smc";

const BUF: u32 = 0x5_0000;
/// `BUF_SPAN` + 3 is the first byte of the next page.
const BUF_SPAN: u32 = 0x5_1FFD;
/// Below 64 KiB so the 16-bit code segment reaches it (the task stack
/// area, unused here).
const BUF_MODE: u32 = 0x3000;
const PD: u32 = 0x10_0000;
const PT0: u32 = 0x10_1000;
const PT3: u32 = 0x10_2000;
const ALIAS_PHYS: u32 = 0x18_0000;
const ALIAS1: u32 = 0x00F0_0000;
const ALIAS2: u32 = 0x00F0_1000;

pub fn program() -> Program {
    let image = rt::protected_program(PROG, body, |_, _| {}, Tss32::default(), |_| Ok(()));
    Program { name: PROG, image, load_addr: LOAD }
}

fn body(c: &mut Code, img: &mut Image) -> R {
    next_instruction(c, img)?;
    loop_body(c, img)?;
    rep_movs(c, img)?;
    spanning(c)?;
    decode_mode(c, img)?;
    aliases(c, img)?;
    rt::finish(c)?;
    templates(c)
}

/// Copy template `name` to `dest` with REP MOVSB (or MOVSD when `dwords`).
fn copy_template(c: &mut Code, img: &mut Image, name: &str, dest: u32, dwords: bool) -> R {
    let start = img.addr(&format!("tmpl.{name}"));
    let len = template(name).len() as u32;
    c.mov(esi, start)?;
    c.mov(edi, dest)?;
    c.cld()?;
    if dwords {
        assert!(len.is_multiple_of(4), "template {name} is not whole dwords");
        c.mov(ecx, len / 4)?;
        c.rep().movsd()
    } else {
        c.mov(ecx, len)?;
        c.rep().movsb()
    }
}

fn call_abs(c: &mut Code, target: u32) -> R {
    c.mov(eax, target)?;
    c.call(eax)
}

fn next_instruction(c: &mut Code, img: &mut Image) -> R {
    c.section()?;
    let a = img.addr("smc.a");
    c.mov(byte_ptr(a + 1), 0x42u32)?;
    c.here("smc.a")?;
    c.mov(al, 0u32)?;
    c.movzx(eax, al)?;
    c.check_r32(eax, 0x42, "byte store into the next instruction")?;

    let b = img.addr("smc.b");
    c.mov(dword_ptr(b + 1), 0xCAFE_BABEu32)?;
    c.here("smc.b")?;
    c.mov(ebx, 0x0101_0101u32)?;
    c.check_r32(ebx, 0xCAFE_BABE, "dword store into the next instruction")?;

    let d = img.addr("smc.d");
    c.mov(edi, d + 1)?;
    c.mov(al, 0x99u32)?;
    c.stosb()?;
    c.here("smc.d")?;
    c.mov(dl, 0u32)?;
    c.movzx(edx, dl)?;
    c.check_r32(edx, 0x99, "STOSB into the next instruction")?;

    // Run an instruction, then rewrite it and run it again.
    c.mov(ecx, 2u32)?;
    let l = c.lbl("smc.e");
    c.here("smc.e")?;
    c.mov(esi, 0x1111_1111u32)?;
    let e = img.addr("smc.e");
    c.mov(dword_ptr(e + 1), 0x2222_2222u32)?;
    c.loop_(l)?;
    c.check_r32(esi, 0x2222_2222, "instruction rewritten after it ran")?;
    c.section_ok("next-instruction")
}

fn loop_body(c: &mut Code, img: &mut Image) -> R {
    c.section()?;
    c.xor(ebx, ebx)?;
    c.mov(ecx, 5u32)?;
    let l = c.lbl("smc.loop");
    c.here("smc.loop")?;
    // 81 C3 imm32: the immediate is at +2.
    c.add(ebx, 0x1000_0000u32)?;
    let at = img.addr("smc.loop");
    c.inc(dword_ptr(at + 2))?;
    c.loop_(l)?;
    c.check_r32(ebx, 0x5000_000A, "sum of a self-incrementing immediate")?;
    c.mov(eax, dword_ptr(at + 2))?;
    c.check_r32(eax, 0x1000_0005, "final immediate")?;
    c.section_ok("loop-body")
}

fn rep_movs(c: &mut Code, img: &mut Image) -> R {
    c.section()?;
    copy_template(c, img, "one", BUF, false)?;
    call_abs(c, BUF)?;
    c.check_r32(eax, 0x1111_1111, "code copied by REP MOVSB")?;
    copy_template(c, img, "two", BUF, true)?;
    call_abs(c, BUF)?;
    c.check_r32(eax, 0x2222_2222, "code replaced by REP MOVSD")?;
    copy_template(c, img, "one", BUF, false)?;
    call_abs(c, BUF)?;
    c.check_r32(eax, 0x1111_1111, "code replaced again")?;
    c.section_ok("rep-movs")
}

fn spanning(c: &mut Code) -> R {
    c.section()?;
    // mov eax, 0x44332211 / ret, with the immediate split by a page edge.
    c.mov(dword_ptr(BUF_SPAN), 0x3322_11B8u32)?;
    c.mov(word_ptr(BUF_SPAN + 4), 0xC344u32)?;
    call_abs(c, BUF_SPAN)?;
    c.check_r32(eax, 0x4433_2211, "instruction spanning two pages")?;
    c.mov(byte_ptr(BUF_SPAN + 4), 0x99u32)?;
    call_abs(c, BUF_SPAN)?;
    c.check_r32(eax, 0x9933_2211, "spanning instruction rewritten in its second page")?;
    c.mov(byte_ptr(BUF_SPAN + 1), 0x55u32)?;
    call_abs(c, BUF_SPAN)?;
    c.check_r32(eax, 0x9933_2255, "spanning instruction rewritten in its first page")?;
    c.section_ok("page-spanning")
}

fn decode_mode(c: &mut Code, img: &mut Image) -> R {
    c.section()?;
    copy_template(c, img, "mode", BUF_MODE, false)?;
    c.mov(eax, 0xFFFF_0000u32)?;
    c.call_far(KCODE, BUF_MODE)?;
    c.check_r32(eax, 0x04EB_2211, "bytes run as 32-bit code")?;
    c.mov(eax, 0xFFFF_0000u32)?;
    c.call_far(KCODE16, BUF_MODE)?;
    c.check_r32(eax, 0xFFFF_2211, "same bytes run as 16-bit code")?;
    c.mov(eax, 0xFFFF_0000u32)?;
    c.call_far(KCODE, BUF_MODE)?;
    c.check_r32(eax, 0x04EB_2211, "32-bit again")?;
    c.section_ok("decode-mode")
}

fn aliases(c: &mut Code, img: &mut Image) -> R {
    c.section()?;
    // Identity map the first 4 MiB; two linear pages onto ALIAS_PHYS.
    c.mov(edi, PD)?;
    c.mov(ecx, 3 * 1024u32)?;
    c.xor(eax, eax)?;
    c.rep().stosd()?;
    c.mov(edi, PT0)?;
    c.mov(eax, 3u32)?;
    c.mov(ecx, 1024u32)?;
    let mut l = c.fresh();
    c.set(&mut l)?;
    c.stosd()?;
    c.add(eax, 0x1000)?;
    c.loop_(l)?;
    c.mov(dword_ptr(PD), PT0 | 3)?;
    c.mov(dword_ptr(PD + 3 * 4), PT3 | 3)?;
    c.mov(dword_ptr(PT3 + 0x300 * 4), ALIAS_PHYS | 3)?;
    c.mov(dword_ptr(PT3 + 0x301 * 4), ALIAS_PHYS | 3)?;
    c.mov(eax, PD)?;
    c.mov(cr3, eax)?;
    c.mov(eax, cr0)?;
    c.or(eax, 0x8000_0000u32)?;
    c.mov(cr0, eax)?;
    copy_template(c, img, "one", ALIAS1, false)?;
    call_abs(c, ALIAS1)?;
    c.check_r32(eax, 0x1111_1111, "code at the first alias")?;
    copy_template(c, img, "two", ALIAS2, false)?;
    call_abs(c, ALIAS1)?;
    c.check_r32(eax, 0x2222_2222, "code written through the second alias, run through the first")?;
    call_abs(c, ALIAS2)?;
    c.check_r32(eax, 0x2222_2222, "same code through the second alias")?;
    copy_template(c, img, "pic", ALIAS1, false)?;
    call_abs(c, ALIAS1)?;
    c.check_r32(eax, ALIAS1 + 5, "CALL/POP at the first alias")?;
    call_abs(c, ALIAS2)?;
    c.check_r32(eax, ALIAS2 + 5, "CALL/POP at the second alias")?;
    c.mov(eax, cr0)?;
    c.and(eax, 0x7FFF_FFFFu32)?;
    c.mov(cr0, eax)?;
    c.section_ok("linear-aliases")
}

/// Position-independent code blobs the checks copy around, assembled on
/// their own.
fn template(name: &str) -> Vec<u8> {
    let asm = |f: &dyn Fn(&mut CodeAssembler) -> R| -> Vec<u8> {
        let mut a = CodeAssembler::new(32).expect("32-bit assembler");
        f(&mut a).expect("template assembles");
        a.assemble(0).expect("template assembles")
    };
    match name {
        "one" => asm(&|a| {
            a.mov(eax, 0x1111_1111u32)?;
            a.ret()
        }),
        // Padded to whole dwords for REP MOVSD.
        "two" => asm(&|a| {
            a.mov(eax, 0x2222_2222u32)?;
            a.ret()?;
            a.nop()?;
            a.nop()
        }),
        "pic" => asm(&|a| {
            let mut next = a.create_label();
            a.call(next)?;
            a.set_label(&mut next)?;
            a.pop(eax)?;
            a.ret()
        }),
        // As 32-bit code: mov eax, 0x04EB2211 / retf. As 16-bit code:
        // mov ax, 0x2211 / jmp +4 / o32 retf. Bytes, since they must mean
        // both.
        "mode" => vec![0xB8, 0x11, 0x22, 0xEB, 0x04, 0xCB, 0x90, 0x90, 0x90, 0x66, 0xCB],
        _ => unreachable!("no template {name}"),
    }
}

fn templates(c: &mut Code) -> R {
    for name in TEMPLATES {
        c.here(&format!("tmpl.{name}"))?;
        c.db(&template(name))?;
    }
    c.nop()
}

const TEMPLATES: [&str; 4] = ["one", "two", "pic", "mode"];
