//! The runtime every protected-mode test program shares: the memory map,
//! descriptor-table and TSS builders, the real-mode entry stub, console
//! output, result checks, exception recording and the exit path.
//!
//! Memory map (physical; the image is loaded at 0x7C00):
//!
//! | range | use |
//! |---|---|
//! | 0x1000-0x10FF | runtime variables ([`FAILS`] ...) |
//! | 0x1100-0x1FFF | program variables ([`VARS`]; up to 0x17FF zeroed at entry) |
//! | 0x2000-0x7AFF | stacks ([`KSTACK`], [`ISTACK`], [`USTACK`] ...) |
//! | 0x7C00-0x7FFF | 16-bit entry code |
//! | 0x8000-0x83EF | GDT; 0x83F0 GDTR and 0x83F8 IDTR pseudo-descriptors |
//! | 0x8400-0x8BFF | IDT (256 gates) |
//! | 0x8C00-0x8FFF | four TSS slots of 0x100 bytes ([`TSS0`] is the main one) |
//! | 0x9000-0x9FFF | more 16-bit code (real-mode and V86 parts) |
//! | 0xA000- | 32-bit code |

use super::asm::{Code, Image, R};
use iced_x86::code_asm::*;
use iced_x86::{Code as Op, Instruction, MemoryOperand};

pub const LOAD: u32 = 0x7C00;
pub const GDT: u32 = 0x8000;
pub const GDT_LIMIT: u32 = 0x3EF;
pub const GDTR_PTR: u32 = 0x83F0;
pub const IDTR_PTR: u32 = 0x83F8;
pub const IDT: u32 = 0x8400;
pub const TSS0: u32 = 0x8C00;
/// Base of TSS slot `n` (0..4).
pub const fn tss_slot(n: u32) -> u32 {
    TSS0 + n * 0x100
}
pub const CODE16_EXTRA: u32 = 0x9000;
pub const CODE32: u32 = 0xA000;

// Runtime variables.
pub const FAILS: u32 = 0x1000;
pub const SECT: u32 = 0x1004;
pub const RESUME: u32 = 0x1008;
pub const EXC_VEC: u32 = 0x100C;
pub const EXC_ERR: u32 = 0x1010;
pub const EXC_EIP: u32 = 0x1014;
pub const EXC_CS: u32 = 0x1018;
pub const EXC_EFL: u32 = 0x101C;
pub const EXC_ESP: u32 = 0x1020;
pub const EXC_SS: u32 = 0x1024;
pub const EXC_CR2: u32 = 0x1028;
pub const EXC_COUNT: u32 = 0x102C;
pub const SAVED_ESP0: u32 = 0x1030;
pub const RING0_CONT: u32 = 0x1034;
/// First free variable for programs.
pub const VARS: u32 = 0x1100;

// Stacks (tops).
pub const KSTACK: u32 = 0x7B00;
/// Ring-0 stack in TSS0 for interrupts and calls from outer rings.
pub const ISTACK: u32 = 0x6F00;
pub const USTACK: u32 = 0x5F00;
pub const R1STACK: u32 = 0x4F00;
pub const TSTACK1: u32 = 0x3F00;
pub const TSTACK2: u32 = 0x2F00;

// Standard selectors.
pub const KCODE: u16 = 0x08;
pub const KDATA: u16 = 0x10;
pub const UCODE: u16 = 0x18 | 3;
pub const UDATA: u16 = 0x20 | 3;
pub const KCODE16: u16 = 0x28;
pub const KDATA16: u16 = 0x30;
pub const TSS0_SEL: u16 = 0x38;

/// Vector of the "back to ring 0" system call.
pub const SYS_RING0: u8 = 0x80;

// Descriptor access bytes.
pub const ACC_CODE: u8 = 0x9A;
pub const ACC_DATA: u8 = 0x92;
pub const ACC_TSS32: u8 = 0x89;
pub const ACC_LDT: u8 = 0x82;
pub const DPL3: u8 = 0x60;
pub const DPL1: u8 = 0x20;
/// Flags nibble: 4 KiB granularity, 32-bit.
pub const FL_4G32: u8 = 0xC;

/// A code/data/system segment descriptor.
pub fn seg(base: u32, limit: u32, access: u8, flags: u8) -> u64 {
    let lo = (limit & 0xFFFF) | (base << 16);
    let hi = ((base >> 16) & 0xFF)
        | ((access as u32) << 8)
        | (limit & 0xF_0000)
        | (((flags & 0xF) as u32) << 20)
        | (base & 0xFF00_0000);
    (lo as u64) | ((hi as u64) << 32)
}

/// Gate types.
pub const GATE_CALL32: u8 = 0xC;
pub const GATE_INT32: u8 = 0xE;
pub const GATE_TRAP32: u8 = 0xF;
pub const GATE_TASK: u8 = 0x5;
pub const GATE_INT16: u8 = 0x6;
pub const GATE_CALL16: u8 = 0x4;

/// A gate descriptor (present unless `present` is false).
pub fn gate(sel: u16, off: u32, ty: u8, dpl: u8, params: u8, present: bool) -> u64 {
    let lo = (off & 0xFFFF) | ((sel as u32) << 16);
    let hi = (off & 0xFFFF_0000) | ((present as u32) << 15) | ((dpl as u32) << 13) | ((ty as u32) << 8) | params as u32;
    (lo as u64) | ((hi as u64) << 32)
}

/// The GDT and IDT of a program.
pub struct Tables {
    pub gdt: Vec<u64>,
    pub idt: Vec<u64>,
}

impl Tables {
    /// Flat ring-0/ring-3 segments, 16-bit ring-0 segments, TSS0, and the
    /// runtime's exception gates (vectors 0-31, interrupt gates, DPL 0)
    /// plus the ring-3 "back to ring 0" gate.
    pub fn standard(img: &mut Image) -> Tables {
        let mut t = Tables { gdt: vec![0; (GDT_LIMIT as usize + 1) / 8], idt: vec![0; 256] };
        t.set_gdt(KCODE, seg(0, 0xFFFFF, ACC_CODE, FL_4G32));
        t.set_gdt(KDATA, seg(0, 0xFFFFF, ACC_DATA, FL_4G32));
        t.set_gdt(UCODE, seg(0, 0xFFFFF, ACC_CODE | DPL3, FL_4G32));
        t.set_gdt(UDATA, seg(0, 0xFFFFF, ACC_DATA | DPL3, FL_4G32));
        t.set_gdt(KCODE16, seg(0, 0xFFFF, ACC_CODE, 0));
        t.set_gdt(KDATA16, seg(0, 0xFFFF, ACC_DATA, 0));
        t.set_gdt(TSS0_SEL, seg(TSS0, TSS_LIMIT, ACC_TSS32, 0));
        for v in 0..32u8 {
            let off = img.addr(&format!("rt.exc{v}"));
            t.idt[v as usize] = gate(KCODE, off, GATE_INT32, 0, 0, true);
        }
        let off = img.addr("rt.sys_ring0");
        t.idt[SYS_RING0 as usize] = gate(KCODE, off, GATE_INT32, 3, 0, true);
        t
    }

    pub fn set_gdt(&mut self, sel: u16, d: u64) {
        self.gdt[(sel >> 3) as usize] = d;
    }

    pub fn set_idt(&mut self, vector: u8, g: u64) {
        self.idt[vector as usize] = g;
    }

    /// Write the tables and their pseudo-descriptors into the image.
    pub fn place(&self, img: &mut Image) {
        let gdt: Vec<u8> = self.gdt.iter().flat_map(|d| d.to_le_bytes()).collect();
        img.data(GDT, gdt);
        let mut ptrs = Vec::new();
        ptrs.extend_from_slice(&(GDT_LIMIT as u16).to_le_bytes());
        ptrs.extend_from_slice(&GDT.to_le_bytes());
        ptrs.extend_from_slice(&[0, 0]);
        ptrs.extend_from_slice(&(0x7FFu16).to_le_bytes());
        ptrs.extend_from_slice(&IDT.to_le_bytes());
        img.data(GDTR_PTR, ptrs);
        let idt: Vec<u8> = self.idt.iter().flat_map(|d| d.to_le_bytes()).collect();
        img.data(IDT, idt);
    }
}

/// TSS limit of a slot with a 0x80-byte I/O bitmap (ports 0-0x3FF) and its
/// terminating 0xFF byte.
pub const TSS_LIMIT: u32 = 0x68 + 0x80;
/// Offset of the I/O bitmap in the TSS slots.
pub const IOMAP: u32 = 0x68;

/// A 32-bit TSS image (SDM vol. 3, figure 7-2) with an I/O bitmap.
#[derive(Clone)]
pub struct Tss32 {
    pub link: u16,
    pub esp0: u32,
    pub ss0: u16,
    pub esp1: u32,
    pub ss1: u16,
    pub esp2: u32,
    pub ss2: u16,
    pub cr3: u32,
    pub eip: u32,
    pub eflags: u32,
    /// EAX ECX EDX EBX ESP EBP ESI EDI.
    pub regs: [u32; 8],
    /// ES CS SS DS FS GS.
    pub segs: [u16; 6],
    pub ldt: u16,
    /// Ports whose bitmap bit is clear (access allowed at any CPL).
    pub allowed_ports: Vec<u16>,
}

impl Default for Tss32 {
    fn default() -> Self {
        Tss32 {
            link: 0,
            esp0: ISTACK,
            ss0: KDATA,
            esp1: R1STACK,
            ss1: 0,
            esp2: 0,
            ss2: 0,
            cr3: 0,
            eip: 0,
            eflags: 2,
            regs: [0; 8],
            segs: [0; 6],
            ldt: 0,
            allowed_ports: vec![0xE9],
        }
    }
}

impl Tss32 {
    pub fn bytes(&self) -> Vec<u8> {
        let mut b = vec![0u8; TSS_LIMIT as usize + 1];
        let mut put = |off: usize, v: u32, n: usize| b[off..off + n].copy_from_slice(&v.to_le_bytes()[..n]);
        put(0, self.link as u32, 2);
        put(4, self.esp0, 4);
        put(8, self.ss0 as u32, 2);
        put(0xC, self.esp1, 4);
        put(0x10, self.ss1 as u32, 2);
        put(0x14, self.esp2, 4);
        put(0x18, self.ss2 as u32, 2);
        put(0x1C, self.cr3, 4);
        put(0x20, self.eip, 4);
        put(0x24, self.eflags, 4);
        for (k, r) in self.regs.iter().enumerate() {
            put(0x28 + 4 * k, *r, 4);
        }
        for (k, s) in self.segs.iter().enumerate() {
            put(0x48 + 4 * k, *s as u32, 2);
        }
        put(0x60, self.ldt as u32, 2);
        put(0x66, IOMAP, 2);
        for p in 0..0x400u32 {
            let allowed = self.allowed_ports.contains(&(p as u16));
            if !allowed {
                b[(IOMAP + p / 8) as usize] |= 1 << (p % 8);
            }
        }
        b[TSS_LIMIT as usize] = 0xFF;
        b
    }
}

/// Emit the real-mode entry: stack, GDT/IDT, CR0.PE, far jump to the
/// 32-bit runtime entry. Must be the first thing in the 0x7C00 chunk.
pub fn entry16(c: &mut Code, img: &mut Image) -> R {
    c.cli()?;
    c.cld()?;
    c.xor(eax, eax)?;
    c.mov(ds, ax)?;
    c.mov(es, ax)?;
    c.mov(ss, ax)?;
    c.mov(sp, KSTACK)?;
    // o32 forms so all 32 base bits load.
    c.add_instruction(Instruction::with1(Op::Lgdt_m1632, MemoryOperand::with_displ(GDTR_PTR as u64, 2))?)?;
    c.add_instruction(Instruction::with1(Op::Lidt_m1632, MemoryOperand::with_displ(IDTR_PTR as u64, 2))?)?;
    c.mov(eax, cr0)?;
    c.or(eax, 1)?;
    c.mov(cr0, eax)?;
    let target = img.addr("rt.pm_entry");
    far_jmp16to32(c, KCODE, target)
}

/// `jmp far sel:off32` from 16-bit code.
pub fn far_jmp16to32(c: &mut Code, sel: u16, off: u32) -> R {
    c.add_instruction(Instruction::with_far_branch(Op::Jmp_ptr1632, sel, off)?)
}

/// Emit the 32-bit runtime: the protected-mode entry (which continues at
/// label `main`), output routines, exception stubs, the ring-0 return
/// gate handler and `rt.finish`. Must be first in the 0xA000 chunk.
pub fn runtime32(c: &mut Code) -> R {
    c.here("rt.pm_entry")?;
    c.mov(ax, KDATA as u32)?;
    c.mov(ds, ax)?;
    c.mov(es, ax)?;
    c.mov(fs, ax)?;
    c.mov(gs, ax)?;
    c.mov(ss, ax)?;
    c.mov(esp, KSTACK)?;
    c.mov(ax, TSS0_SEL as u32)?;
    c.ltr(ax)?;
    c.xor(eax, eax)?;
    // Runtime and program variables start zeroed.
    c.mov(ecx, 0x200u32)?;
    c.mov(edi, FAILS)?;
    c.rep().stosd()?;
    let main = c.lbl("main");
    c.jmp(main)?;

    // puts_inline: prints the NUL-terminated string that follows the call.
    c.here("rt.puts_inline")?;
    c.xchg(dword_ptr(esp), esi)?;
    c.push(eax)?;
    c.push(edx)?;
    c.mov(dx, 0xE9u32)?;
    let mut l = c.fresh();
    let mut d = c.fresh();
    c.set(&mut l)?;
    c.lodsb()?;
    c.test(al, al)?;
    c.jz(d)?;
    c.out(dx, al)?;
    c.jmp(l)?;
    c.set(&mut d)?;
    c.pop(edx)?;
    c.pop(eax)?;
    c.xchg(dword_ptr(esp), esi)?;
    c.ret()?;

    // print_hex: EAX as 8 hex digits.
    c.here("rt.print_hex")?;
    c.pushad()?;
    c.mov(ebx, eax)?;
    c.mov(ecx, 8u32)?;
    c.mov(dx, 0xE9u32)?;
    let mut l = c.fresh();
    let mut o = c.fresh();
    c.set(&mut l)?;
    c.rol(ebx, 4)?;
    c.mov(al, bl)?;
    c.and(al, 0xF)?;
    c.add(al, b'0' as u32)?;
    c.cmp(al, b'9' as u32)?;
    c.jbe(o)?;
    c.add(al, 7)?;
    c.set(&mut o)?;
    c.out(dx, al)?;
    c.dec(ecx)?;
    c.jnz(l)?;
    c.popad()?;
    c.ret()?;

    // fail_inline: [esp+4] = value; prints the inline message, the value
    // and a newline, counts the failure, pops the value.
    c.here("rt.fail_inline")?;
    c.inc(dword_ptr(FAILS))?;
    c.xchg(dword_ptr(esp), esi)?;
    c.push(eax)?;
    c.push(edx)?;
    c.mov(dx, 0xE9u32)?;
    let mut l = c.fresh();
    let mut d = c.fresh();
    c.set(&mut l)?;
    c.lodsb()?;
    c.test(al, al)?;
    c.jz(d)?;
    c.out(dx, al)?;
    c.jmp(l)?;
    c.set(&mut d)?;
    c.mov(eax, dword_ptr(esp + 12))?;
    let ph = c.lbl("rt.print_hex");
    c.call(ph)?;
    c.mov(al, 10u32)?;
    c.out(dx, al)?;
    c.pop(edx)?;
    c.pop(eax)?;
    c.xchg(dword_ptr(esp), esi)?;
    c.ret_1(4)?;

    // Exception stubs: push a dummy error code where the CPU pushes none.
    let exc_common = c.lbl("rt.exc_common");
    for v in 0..32u32 {
        c.here(&format!("rt.exc{v}"))?;
        if !matches!(v, 8 | 10..=14 | 17) {
            c.push(0)?;
        }
        c.push(v as i32)?;
        c.jmp(exc_common)?;
    }
    // exc_common: record the frame, resume at [RESUME] or die.
    c.here("rt.exc_common")?;
    c.push(ds)?;
    c.push(eax)?;
    c.mov(ax, KDATA as u32)?;
    c.mov(ds, ax)?;
    // [esp]=eax [esp+4]=ds [esp+8]=vec [esp+12]=err [esp+16]=eip
    // [esp+20]=cs [esp+24]=eflags [esp+28]=esp [esp+32]=ss
    for (off, var) in [(8, EXC_VEC), (12, EXC_ERR), (16, EXC_EIP), (24, EXC_EFL), (28, EXC_ESP)] {
        c.mov(eax, dword_ptr(esp + off))?;
        c.mov(dword_ptr(var), eax)?;
    }
    // Selector slots: only the low 16 bits are defined.
    for (off, var) in [(20, EXC_CS), (32, EXC_SS)] {
        c.movzx(eax, word_ptr(esp + off))?;
        c.mov(dword_ptr(var), eax)?;
    }
    c.mov(eax, cr2)?;
    c.mov(dword_ptr(EXC_CR2), eax)?;
    c.inc(dword_ptr(EXC_COUNT))?;
    c.mov(eax, dword_ptr(RESUME))?;
    c.test(eax, eax)?;
    let fatal = c.lbl("rt.fatal");
    c.jz(fatal)?;
    c.mov(dword_ptr(esp + 16), eax)?;
    c.mov(dword_ptr(RESUME), 0)?;
    c.pop(eax)?;
    c.pop(ds)?;
    c.add(esp, 8)?;
    c.iretd()?;
    c.here("rt.fatal")?;
    let prog = c.prog;
    puts(c, &format!("FAIL {prog}: unexpected exception "))?;
    c.mov(eax, dword_ptr(EXC_VEC))?;
    c.call(ph)?;
    puts(c, " error ")?;
    c.mov(eax, dword_ptr(EXC_ERR))?;
    c.call(ph)?;
    puts(c, " at ")?;
    c.mov(eax, dword_ptr(EXC_CS))?;
    c.call(ph)?;
    puts(c, ":")?;
    c.mov(eax, dword_ptr(EXC_EIP))?;
    c.call(ph)?;
    puts(c, " cr2 ")?;
    c.mov(eax, dword_ptr(EXC_CR2))?;
    c.call(ph)?;
    puts(c, "\n")?;
    c.mov(al, 0xFEu32)?;
    let ex = c.lbl("rt.exit_al");
    c.jmp(ex)?;

    // sys_ring0: the DPL-3 interrupt gate ring-3 code uses to get back to
    // ring 0: records the frame like an exception, drops it, restores the
    // saved kernel stack and continues at [RING0_CONT].
    c.here("rt.sys_ring0")?;
    c.push(eax)?;
    c.mov(ax, KDATA as u32)?;
    c.mov(ds, ax)?;
    c.mov(es, ax)?;
    c.mov(dword_ptr(EXC_VEC), SYS_RING0 as u32)?;
    for (off, var) in [(4, EXC_EIP), (12, EXC_EFL), (16, EXC_ESP)] {
        c.mov(eax, dword_ptr(esp + off))?;
        c.mov(dword_ptr(var), eax)?;
    }
    for (off, var) in [(8, EXC_CS), (20, EXC_SS)] {
        c.movzx(eax, word_ptr(esp + off))?;
        c.mov(dword_ptr(var), eax)?;
    }
    c.pop(eax)?;
    c.mov(esp, dword_ptr(SAVED_ESP0))?;
    c.jmp(dword_ptr(RING0_CONT))?;

    // finish: summary line, exit code = failures (capped at 255).
    c.here("rt.finish")?;
    c.cmp(dword_ptr(FAILS), 0)?;
    let mut bad = c.fresh();
    c.jne(bad)?;
    puts(c, &format!("PASS {prog}\n"))?;
    let mut out = c.fresh();
    c.jmp(out)?;
    c.set(&mut bad)?;
    puts(c, &format!("FAIL {prog}: "))?;
    c.mov(eax, dword_ptr(FAILS))?;
    c.call(ph)?;
    puts(c, " checks failed\n")?;
    c.set(&mut out)?;
    c.mov(eax, dword_ptr(FAILS))?;
    c.cmp(eax, 0xFF)?;
    let mut small = c.fresh();
    c.jbe(small)?;
    c.mov(eax, 0xFFu32)?;
    c.set(&mut small)?;
    c.nop()?;
    c.here("rt.exit_al")?;
    c.mov(dx, 0xF4u32)?;
    c.out(dx, al)?;
    let mut h = c.fresh();
    c.set(&mut h)?;
    c.cli()?;
    c.hlt()?;
    c.jmp(h)?;
    Ok(())
}

/// Which EIP an exception frame must hold.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum PushedEip {
    /// The first instruction of the body (a fault).
    Start,
    /// The instruction after the body (a trap).
    End,
    /// Not checked (#DF, whose saved EIP is undefined).
    Any,
}

/// Print `s` (32-bit code; clobbers nothing).
pub fn puts(c: &mut Code, s: &str) -> R {
    let f = c.lbl("rt.puts_inline");
    c.call(f)?;
    let mut b = s.as_bytes().to_vec();
    b.push(0);
    c.db(&b)
}

/// Jump to the runtime's exit path.
pub fn finish(c: &mut Code) -> R {
    let f = c.lbl("rt.finish");
    c.jmp(f)
}

impl Code {
    /// Report a failure unless `reg == expect` (32-bit code).
    pub fn check_r32(&mut self, reg: AsmRegister32, expect: u32, what: &str) -> R {
        self.cmp(reg, expect)?;
        let mut ok = self.fresh();
        self.je(ok)?;
        self.push(reg)?;
        self.fail_msg(expect, what)?;
        self.set(&mut ok)?;
        self.nop()
    }

    /// Report a failure unless the dword at `addr` equals `expect`.
    pub fn check_m32(&mut self, addr: u32, expect: u32, what: &str) -> R {
        self.cmp(dword_ptr(addr), expect)?;
        let mut ok = self.fresh();
        self.je(ok)?;
        self.push(dword_ptr(addr))?;
        self.fail_msg(expect, what)?;
        self.set(&mut ok)?;
        self.nop()
    }

    /// Report a failure unless `(EFLAGS & mask) == expect`. Clobbers EAX.
    pub fn check_flags(&mut self, mask: u32, expect: u32, what: &str) -> R {
        self.pushfd()?;
        self.pop(eax)?;
        self.and(eax, mask)?;
        self.check_r32(eax, expect, what)
    }

    fn fail_msg(&mut self, expect: u32, what: &str) -> R {
        let f = self.lbl("rt.fail_inline");
        self.call(f)?;
        let msg = format!("FAIL {}: {what}: expected {expect:08X} got ", self.prog);
        let mut b = msg.into_bytes();
        b.push(0);
        self.db(&b)
    }

    /// Unconditional failure report with the value in `reg`.
    pub fn fail_r32(&mut self, reg: AsmRegister32, what: &str) -> R {
        self.push(reg)?;
        let f = self.lbl("rt.fail_inline");
        self.call(f)?;
        let mut b = format!("FAIL {}: {what}: value ", self.prog).into_bytes();
        b.push(0);
        self.db(&b)
    }

    /// Start a named group of checks.
    pub fn section(&mut self) -> R {
        self.push(eax)?;
        self.mov(eax, dword_ptr(FAILS))?;
        self.mov(dword_ptr(SECT), eax)?;
        self.pop(eax)
    }

    /// Print "ok <prog> <name>" when no check failed since [`Code::section`].
    pub fn section_ok(&mut self, name: &str) -> R {
        self.push(eax)?;
        self.mov(eax, dword_ptr(FAILS))?;
        self.cmp(eax, dword_ptr(SECT))?;
        self.pop(eax)?;
        let mut skip = self.fresh();
        self.jne(skip)?;
        let msg = format!("ok {} {name}\n", self.prog);
        puts(self, &msg)?;
        self.set(&mut skip)?;
        self.nop()
    }

    /// Run `body`, whose first instruction must raise exception `vector`
    /// (with error code `err` if given); the runtime records it and resumes
    /// after the body. Checks vector, error code and the pushed EIP (the
    /// faulting instruction).
    pub fn fault(
        &mut self,
        img: &mut Image,
        what: &str,
        vector: u32,
        err: Option<u32>,
        body: impl FnOnce(&mut Code) -> R,
    ) -> R {
        self.expect_exception(img, what, vector, err, PushedEip::Start, body)
    }

    /// Like [`Code::fault`] for a trap: the pushed EIP is the end of `body`.
    pub fn trap(&mut self, img: &mut Image, what: &str, vector: u32, body: impl FnOnce(&mut Code) -> R) -> R {
        self.expect_exception(img, what, vector, None, PushedEip::End, body)
    }

    /// Run `body`, which must raise `vector`; the pushed EIP is not checked.
    pub fn expect_exception(
        &mut self,
        img: &mut Image,
        what: &str,
        vector: u32,
        err: Option<u32>,
        eip: PushedEip,
        body: impl FnOnce(&mut Code) -> R,
    ) -> R {
        let at = self.unique("fault_at");
        let resume = self.unique("resume");
        self.mov(dword_ptr(EXC_VEC), u32::MAX)?;
        let r = img.addr(&resume);
        self.mov(dword_ptr(RESUME), r)?;
        self.here(&at)?;
        body(self)?;
        self.here(&resume)?;
        self.mov(dword_ptr(RESUME), 0)?;
        self.check_m32(EXC_VEC, vector, &format!("{what}: vector"))?;
        if let Some(e) = err {
            self.check_m32(EXC_ERR, e, &format!("{what}: error code"))?;
        }
        let expect = match eip {
            PushedEip::Start => img.addr(&at),
            PushedEip::End => img.addr(&resume),
            PushedEip::Any => return Ok(()),
        };
        self.check_m32(EXC_EIP, expect, &format!("{what}: pushed EIP"))
    }

    /// Run `body` and check it raised no exception (one would be recorded
    /// and skip the rest of `body`).
    pub fn no_fault(&mut self, img: &mut Image, what: &str, body: impl FnOnce(&mut Code) -> R) -> R {
        let resume = self.unique("resume");
        self.mov(dword_ptr(EXC_VEC), u32::MAX)?;
        let r = img.addr(&resume);
        self.mov(dword_ptr(RESUME), r)?;
        body(self)?;
        self.here(&resume)?;
        self.mov(dword_ptr(RESUME), 0)?;
        self.check_m32(EXC_VEC, u32::MAX, &format!("{what}: exception raised (vector)"))
    }

    /// Enter ring 3 (flat segments, [`USTACK`]) and continue with the next
    /// instruction there; DS/ES are reloaded with [`UDATA`].
    pub fn enter_ring3(&mut self, img: &mut Image) -> R {
        let name = self.unique("ring3");
        self.mov(dword_ptr(SAVED_ESP0), esp)?;
        self.push(UDATA as u32)?;
        self.push(USTACK)?;
        self.pushfd()?;
        self.push(UCODE as u32)?;
        let a = img.addr(&name);
        self.push(a)?;
        self.iretd()?;
        self.here(&name)?;
        self.mov(ax, UDATA as u32)?;
        self.mov(ds, ax)?;
        self.mov(es, ax)
    }

    /// From ring 3, return to ring 0 through [`SYS_RING0`] and continue with
    /// the next instruction on the kernel stack saved by [`Code::enter_ring3`].
    pub fn back_to_ring0(&mut self, img: &mut Image) -> R {
        let name = self.unique("ring0");
        let a = img.addr(&name);
        self.mov(dword_ptr(RING0_CONT), a)?;
        self.int(SYS_RING0 as u32)?;
        self.here(&name)?;
        self.nop()
    }
}

/// Assemble the standard skeleton: 16-bit entry, tables, TSS0 and the
/// 32-bit runtime followed by `main` (emitted by `body`, which must end by
/// jumping to [`finish`]). `extra` may add chunks and adjust the tables.
pub fn protected_program(
    name: &'static str,
    body: impl Fn(&mut Code, &mut Image) -> R,
    tables: impl Fn(&mut Tables, &mut Image),
    tss0: Tss32,
    extra: impl Fn(&mut Image) -> R,
) -> Vec<u8> {
    super::asm::build(LOAD, |img| {
        let mut c16 = Code::new(16, LOAD, name)?;
        entry16(&mut c16, img)?;
        img.place(c16)?;
        let mut t = Tables::standard(img);
        tables(&mut t, img);
        t.place(img);
        img.data(TSS0, tss0.bytes());
        let mut c = Code::new(32, CODE32, name)?;
        runtime32(&mut c)?;
        c.here("main")?;
        body(&mut c, img)?;
        img.place(c)?;
        extra(img)
    })
}

/// Write each `(port, value)` byte with `mov dx, port; mov al, value; out
/// dx, al` (device initialisation sequences of the board programs).
pub fn out_bytes(c: &mut Code, writes: &[(u32, u32)]) -> R {
    for &(port, value) in writes {
        c.mov(dx, port)?;
        c.mov(al, value)?;
        c.out(dx, al)?;
    }
    Ok(())
}
