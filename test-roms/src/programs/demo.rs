//! `demo`: the boot floppy `ferrite` runs when started with no arguments.
//! After the BIOS's POST it shows what the machine looks like through the
//! BIOS services (memory from INT 12h and the E820 map, the RTC's date and
//! time, the CPU's CPUID, every PCI function through the PCI BIOS), does a
//! little x87 arithmetic, and times a prime sieve with the BIOS tick count;
//! then it exits through the 0xF4 device. Its checks (the sieve finds 6542
//! primes below 65536, the x87 gets 14142 for sqrt(2) * 10000, there is
//! memory and a PCI host bridge) make the exit status 0 only when they hold.

use super::asm::{Code, Image, R};
use super::bios_rt::*;
use iced_x86::code_asm::*;

/// Primes below 65536.
pub const PRIMES: u32 = 6542;
/// Rounds of the sieve.
pub const ROUNDS: u32 = 40;

const TOTAL_KIB: u32 = VARS;
const RANGES: u32 = VARS + 4;
const VENDOR: u32 = VARS + 8; // 12 bytes + 0
const RESULT: u32 = VARS + 24;
const TICKS: u32 = VARS + 28;
const COUNT: u32 = VARS + 32;
const CONST2: u32 = VARS + 36;
const CONST10K: u32 = VARS + 38;
const DEVFN: u32 = VARS + 40;
const ROUND: u32 = VARS + 42;
/// The sieve's 64 KiB (segment 0x2000).
const SIEVE_SEG: u32 = 0x2000;

/// The demo on a 1.44 MB floppy image.
pub fn image() -> Vec<u8> {
    floppy(&program("demo", body))
}

fn body(c: &mut Code, img: &mut Image) -> R {
    helpers(c, img)?;
    let dec = c.lbl("demo.dec32");
    let hex8 = c.lbl("demo.hex8");
    let hex16 = c.lbl("brt.hex16");
    puts(c, "\nferrite demo: a floppy image built by test-roms, booted by the BIOS\n\n")?;

    // Memory.
    puts(c, "  memory      ")?;
    c.int(0x12)?;
    c.movzx(eax, ax)?;
    c.call(dec)?;
    puts(c, " KiB conventional (INT 12h); E820: ")?;
    c.mov(dword_ptr(TOTAL_KIB), 0u32)?;
    c.mov(word_ptr(RANGES), 0u32)?;
    c.xor(ebx, ebx)?;
    let mut next = c.fresh();
    let mut done = c.fresh();
    c.set(&mut next)?;
    c.mov(eax, 0xE820u32)?;
    c.mov(edx, 0x534D_4150u32)?;
    c.mov(ecx, 20u32)?;
    c.mov(di, BUF)?;
    c.int(0x15)?;
    c.jc(done)?;
    c.inc(word_ptr(RANGES))?;
    let mut skip = c.fresh();
    c.cmp(dword_ptr(BUF + 16), 1u32)?;
    c.jne(skip)?;
    c.mov(eax, dword_ptr(BUF + 8))?;
    c.shr(eax, 10)?;
    c.add(dword_ptr(TOTAL_KIB), eax)?;
    c.set(&mut skip)?;
    c.test(ebx, ebx)?;
    c.jnz(next)?;
    c.set(&mut done)?;
    c.movzx(eax, word_ptr(RANGES))?;
    c.call(dec)?;
    puts(c, " ranges, ")?;
    c.mov(eax, dword_ptr(TOTAL_KIB))?;
    c.call(dec)?;
    puts(c, " KiB usable\n")?;
    c.mov(eax, dword_ptr(TOTAL_KIB))?;
    check_nonzero(c, "no usable memory in the E820 map")?;

    // Date and time from the RTC (BCD prints as hex).
    puts(c, "  RTC         ")?;
    c.mov(ah, 0x04)?;
    c.int(0x1A)?;
    for (r, sep) in [(ch, ""), (cl, "-"), (dh, "-"), (dl, " ")] {
        c.mov(al, r)?;
        c.call(hex8)?;
        puts(c, sep)?;
    }
    c.mov(ah, 0x02)?;
    c.int(0x1A)?;
    for (r, sep) in [(ch, ":"), (cl, ":"), (dh, " (INT 1Ah)\n")] {
        c.mov(al, r)?;
        c.call(hex8)?;
        puts(c, sep)?;
    }

    // CPU.
    puts(c, "  CPU         ")?;
    c.xor(eax, eax)?;
    c.cpuid()?;
    c.mov(dword_ptr(VENDOR), ebx)?;
    c.mov(dword_ptr(VENDOR + 4), edx)?;
    c.mov(dword_ptr(VENDOR + 8), ecx)?;
    c.mov(byte_ptr(VENDOR + 12), 0u32)?;
    c.mov(si, VENDOR)?;
    let p = c.lbl("brt.print_si");
    c.call(p)?;
    puts(c, " family ")?;
    c.mov(eax, 1u32)?;
    c.cpuid()?;
    c.mov(ebx, eax)?;
    c.shr(eax, 8)?;
    c.and(eax, 0xFu32)?;
    c.call(dec)?;
    puts(c, " model ")?;
    c.mov(eax, ebx)?;
    c.shr(eax, 4)?;
    c.and(eax, 0xFu32)?;
    c.call(dec)?;
    puts(c, " stepping ")?;
    c.mov(eax, ebx)?;
    c.and(eax, 0xFu32)?;
    c.call(dec)?;
    puts(c, "\n")?;

    // PCI: every function on bus 0 through the PCI BIOS.
    c.mov(word_ptr(DEVFN), 0u32)?;
    c.mov(word_ptr(COUNT), 0u32)?;
    let mut dev = c.fresh();
    let mut nodev = c.fresh();
    c.set(&mut dev)?;
    c.mov(ax, 0xB10Au32)?;
    c.mov(bx, word_ptr(DEVFN))?;
    c.xor(di, di)?;
    c.int(0x1A)?;
    c.jc(nodev)?;
    c.cmp(cx, 0xFFFFu32)?;
    c.je(nodev)?;
    c.inc(word_ptr(COUNT))?;
    c.mov(ebx, ecx)?;
    puts(c, "  PCI 00:")?;
    c.mov(ax, word_ptr(DEVFN))?;
    c.shr(al, 3)?;
    c.call(hex8)?;
    puts(c, ".")?;
    c.mov(ax, word_ptr(DEVFN))?;
    c.and(al, 7)?;
    c.add(al, b'0' as u32)?;
    c.out(0xE9, al)?;
    puts(c, "  ")?;
    c.mov(ax, bx)?;
    c.call(hex16)?;
    puts(c, ":")?;
    c.shr(ebx, 16)?;
    c.mov(ax, bx)?;
    c.call(hex16)?;
    puts(c, "  class ")?;
    c.mov(ax, 0xB10Au32)?;
    c.mov(bx, word_ptr(DEVFN))?;
    c.mov(di, 8u32)?;
    c.int(0x1A)?;
    c.shr(ecx, 16)?;
    c.mov(ax, cx)?;
    c.call(hex16)?;
    puts(c, "\n")?;
    c.set(&mut nodev)?;
    c.inc(word_ptr(DEVFN))?;
    c.cmp(word_ptr(DEVFN), 0x100u32)?;
    c.jb(dev)?;
    c.movzx(eax, word_ptr(COUNT))?;
    check_nonzero(c, "no PCI function found")?;

    // x87: sqrt(2) * 10000, rounded to nearest.
    puts(c, "  x87         sqrt(2) * 10000 = ")?;
    c.mov(word_ptr(CONST2), 2u32)?;
    c.mov(word_ptr(CONST10K), 10000u32)?;
    c.fninit()?;
    c.fild(word_ptr(CONST2))?;
    c.fsqrt()?;
    c.fimul(word_ptr(CONST10K))?;
    c.fistp(dword_ptr(RESULT))?;
    c.wait()?;
    c.mov(eax, dword_ptr(RESULT))?;
    c.call(dec)?;
    puts(c, "\n")?;
    c.mov(eax, dword_ptr(RESULT))?;
    check32(c, eax, 14142, "x87 sqrt(2) * 10000")?;

    // The sieve, timed with the BIOS tick count (18.2 Hz).
    puts(c, "  sieve       ")?;
    c.mov(eax, dword_ptr(0x46C))?;
    c.mov(dword_ptr(TICKS), eax)?;
    c.mov(word_ptr(ROUND), 0u32)?;
    let mut round = c.fresh();
    c.set(&mut round)?;
    sieve(c)?;
    c.inc(word_ptr(ROUND))?;
    c.cmp(word_ptr(ROUND), ROUNDS)?;
    c.jb(round)?;
    c.mov(eax, dword_ptr(0x46C))?;
    c.sub(eax, dword_ptr(TICKS))?;
    c.mov(dword_ptr(TICKS), eax)?;
    c.mov(eax, dword_ptr(COUNT))?;
    c.call(dec)?;
    puts(c, &format!(" primes below 65536, {ROUNDS} rounds in "))?;
    c.mov(eax, dword_ptr(TICKS))?;
    c.call(dec)?;
    puts(c, " timer ticks\n\n")?;
    c.mov(eax, dword_ptr(COUNT))?;
    check32(c, eax, PRIMES, "primes below 65536")
}

/// Fail (showing nothing useful but the message) when EAX is zero.
fn check_nonzero(c: &mut Code, what: &str) -> R {
    let mut ok = c.fresh();
    c.test(eax, eax)?;
    c.jnz(ok)?;
    fail16(c, ax, what)?;
    c.set(&mut ok)
}

/// One sieve of Eratosthenes over 0..65536 in segment 0x2000; the number of
/// primes lands in COUNT (a dword).
fn sieve(c: &mut Code) -> R {
    c.push(es)?;
    c.mov(ax, SIEVE_SEG)?;
    c.mov(es, ax)?;
    c.xor(di, di)?;
    c.mov(cx, 0x8000u32)?;
    c.mov(ax, 0x0101u32)?;
    c.rep().stosw()?;
    // i in ESI, j in EDI (32-bit so i*i and j+i do not wrap).
    c.mov(esi, 2u32)?;
    let mut outer = c.fresh();
    let mut next_i = c.fresh();
    let mut counted = c.fresh();
    c.set(&mut outer)?;
    c.mov(eax, esi)?;
    c.mul(eax)?;
    c.cmp(eax, 0x10000u32)?;
    c.jae(counted)?;
    c.cmp(byte_ptr(si).es(), 0u32)?;
    c.je(next_i)?;
    c.mov(edi, eax)?;
    let mut inner = c.fresh();
    c.set(&mut inner)?;
    c.mov(byte_ptr(di).es(), 0u32)?;
    c.add(edi, esi)?;
    c.cmp(edi, 0x10000u32)?;
    c.jb(inner)?;
    c.set(&mut next_i)?;
    c.inc(esi)?;
    c.jmp(outer)?;
    c.set(&mut counted)?;
    c.xor(ebx, ebx)?;
    c.mov(esi, 2u32)?;
    let mut count = c.fresh();
    c.set(&mut count)?;
    c.movzx(eax, byte_ptr(si).es())?;
    c.add(ebx, eax)?;
    c.inc(esi)?;
    c.cmp(esi, 0x10000u32)?;
    c.jb(count)?;
    c.mov(dword_ptr(COUNT), ebx)?;
    c.pop(es)
}

fn helpers(c: &mut Code, _img: &mut Image) -> R {
    let mut over = c.fresh();
    c.jmp(over)?;
    // dec32: EAX in decimal on the debug console.
    c.here("demo.dec32")?;
    c.push(eax)?;
    c.push(ebx)?;
    c.push(ecx)?;
    c.push(edx)?;
    c.mov(ebx, 10u32)?;
    c.xor(cx, cx)?;
    let mut div = c.fresh();
    c.set(&mut div)?;
    c.xor(edx, edx)?;
    c.div(ebx)?;
    c.push(dx)?;
    c.inc(cx)?;
    c.test(eax, eax)?;
    c.jnz(div)?;
    let mut out = c.fresh();
    c.set(&mut out)?;
    c.pop(ax)?;
    c.add(al, b'0' as u32)?;
    c.out(0xE9, al)?;
    c.loop_(out)?;
    c.pop(edx)?;
    c.pop(ecx)?;
    c.pop(ebx)?;
    c.pop(eax)?;
    c.ret()?;
    // hex8: AL as two hex digits.
    c.here("demo.hex8")?;
    c.push(ax)?;
    c.push(cx)?;
    c.mov(ah, al)?;
    c.mov(cx, 2u32)?;
    let mut digit = c.fresh();
    let mut low = c.fresh();
    c.set(&mut digit)?;
    c.rol(ah, 4)?;
    c.mov(al, ah)?;
    c.and(al, 0xF)?;
    c.add(al, b'0' as u32)?;
    c.cmp(al, b'9' as u32)?;
    c.jbe(low)?;
    c.add(al, 7u32)?;
    c.set(&mut low)?;
    c.out(0xE9, al)?;
    c.loop_(digit)?;
    c.pop(cx)?;
    c.pop(ax)?;
    c.ret()?;
    c.set(&mut over)
}
