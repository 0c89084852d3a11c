//! The ROM image of the own BIOS: 64 KiB of real x86 code and tables at
//! F000:0000-F000:FFFF (mapped like an external BIOS: below 4 GiB and at
//! 0xF0000), assembled with iced-x86's code assembler.
//!
//! Nearly every entry point is a *trap stub*: `out TRAP_PORT, al` followed
//! by the rest of the handler (usually `iret`). The board ends the CPU's
//! run right after the OUT and the host-side BIOS looks up which stub
//! trapped from CS:EIP (the address behind the OUT, recorded here), does
//! the work in Rust and lets the CPU continue with the rest of the stub.
//! No register is clobbered by the mechanism itself.
//!
//! Layout (offsets in segment F000):
//!
//! | offset | what |
//! |---|---|
//! | 0000- | trap stubs, wait loops, the POST sequence |
//! | 9000 | 8x16 font (256 characters, INT 10h AX=1130h BH=6) |
//! | A000 | 8x14 font (BH=2) |
//! | AE00 | 8x8 font, all 256 characters (BH=3) |
//! | D000 | `$PIR` PCI interrupt routing table |
//! | E000 | identification string |
//! | E05B, E2C3, E3FE, E6F2, E739, E82E, E987, EC59, EF57, EFD2, F065, F841, F84D, F859, FE6E, FEA5, FF53, FF54 | the IBM PC/AT entry points (POST, NMI, INT 13h, 19h, 14h, 16h, 09h, 40h, 0Eh, 17h, 10h, 12h, 11h, 15h, 1Ah, 08h, dummy IRET, INT 05h): near jumps to the stubs, so software that calls them directly still works |
//! | E6F5 | INT 15h AH=C0h configuration table |
//! | EFC7 | diskette parameter table (INT 1Eh) |
//! | F0A4 | video parameter table (INT 1Dh, zeros) |
//! | FA6E | 8x8 graphics font, characters 0-127 (INT 43h, the IBM location) |
//! | FFF0 | reset vector: `jmp F000:E05B` |
//! | FFF5 | BIOS date, FFFE model byte FCh |

use std::collections::BTreeMap;

use iced_x86::code_asm::*;
use iced_x86::BlockEncoderOptions;
use thiserror::Error;

/// The ROM could not be built (a bug in the builder, caught by the tests).
#[derive(Debug, Error)]
pub enum RomError {
    #[error("assembling the ROM: {0}")]
    Asm(#[from] IcedError),
    #[error("the ROM code is {0} bytes and does not fit below the tables")]
    TooBig(usize),
    #[error("ROM label {0} is missing")]
    Missing(&'static str),
}

/// The port the trap stubs write. Must equal the board's
/// `ferrite_devices::pc::FIRMWARE_TRAP_PORT` (the frontend checks this).
pub const TRAP_PORT: u16 = 0xEE;
/// Segment of the ROM.
pub const ROM_SEGMENT: u16 = 0xF000;
/// Physical base of the ROM below 1 MiB.
pub const ROM_BASE: u32 = 0xF_0000;
/// Size of the image.
pub const ROM_SIZE: usize = 0x1_0000;

/// Which stub trapped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trap {
    /// Power-on self test (the reset vector leads here).
    Post,
    /// End of POST: run the next option ROM or fall through to INT 19h.
    PostRoms,
    Int10,
    Int11,
    Int12,
    /// INT 13h (and INT 40h, the same service).
    Int13,
    Int14,
    Int15,
    Int16,
    Int17,
    Int18,
    Int19,
    Int1A,
    /// IRQ0 (INT 08h), before INT 1Ch and the EOI.
    Irq0,
    /// IRQ1 (INT 09h) after the INT 15h AH=4Fh intercept kept the scan code
    /// in AL; the EOI follows in the stub.
    Irq1,
    /// Any other IRQ line (2-15): the Rust side does the EOI.
    Irq(u8),
}

/// Addresses (offsets in F000) the Rust side jumps to or hands out.
#[derive(Clone, Copy, Debug, Default)]
pub struct Layout {
    /// The OUT of the option-ROM loop: option ROM init routines return here.
    pub post_roms: u16,
    /// `cli; hlt` forever.
    pub halt: u16,
    /// `sti; hlt; cli; jmp int14`: INT 14h waits for the UART here.
    pub int14_wait: u16,
    /// `sti; hlt; cli; jmp int15`: INT 15h waits (AH=86h) loop here.
    pub int15_wait: u16,
    /// Same for INT 16h waiting for a key.
    pub int16_wait: u16,
    /// `int 1Bh; jmp eoi` inside the INT 09h handler (Ctrl-Break).
    pub int09_break: u16,
    /// `int 4Ah; iret` after the RTC alarm interrupt.
    pub irq8_alarm: u16,
    pub diskette_params: u16,
    pub video_params: u16,
    pub font8: u16,
}

/// The assembled ROM.
pub struct Rom {
    pub image: Vec<u8>,
    /// Offset behind each trap stub's OUT -> the stub.
    traps: BTreeMap<u16, Trap>,
    pub at: Layout,
    /// Offset in F000 of each interrupt vector's handler (data vectors
    /// such as INT 1Dh/1Eh are set up by POST, not here).
    pub vectors: [u16; 256],
}

/// IBM PC/AT fixed entry points: (offset, vector it serves).
const FIXED_ENTRIES: [(u16, u8); 16] = [
    (0xE2C3, 0x02),
    (0xE3FE, 0x13),
    (0xE6F2, 0x19),
    (0xE739, 0x14),
    (0xE82E, 0x16),
    (0xE987, 0x09),
    (0xEC59, 0x40),
    (0xEF57, 0x0E),
    (0xEFD2, 0x17),
    (0xF065, 0x10),
    (0xF841, 0x12),
    (0xF84D, 0x11),
    (0xF859, 0x15),
    (0xFE6E, 0x1A),
    (0xFEA5, 0x08),
    (0xFF54, 0x05),
];
const POST_ENTRY: u16 = 0xE05B;
const IRET_AT: u16 = 0xFF53;
/// INT 15h AH=C0h configuration table.
pub const CONFIG_TABLE: u16 = 0xE6F5;
/// Diskette parameter table (INT 1Eh).
pub const DISKETTE_PARAMS: u16 = 0xEFC7;
/// Video parameter table (INT 1Dh).
pub const VIDEO_PARAMS: u16 = 0xF0A4;
/// The 8x8 graphics font, characters 0-127 (INT 43h), where the IBM BIOS
/// has it.
pub const FONT8: u16 = 0xFA6E;
/// The whole 8x16, 8x14 and 8x8 fonts (INT 10h AX=1130h).
pub const FONT16_AT: u16 = 0x9000;
pub const FONT14_AT: u16 = 0xA000;
pub const FONT8_FULL_AT: u16 = 0xAE00;
const PIR_AT: u16 = 0xD000;
const ID_AT: u16 = 0xE000;
/// Where the generated code may grow to.
const CODE_END: u16 = FONT16_AT;

/// The BIOS identification string at F000:E000.
pub const ID_STRING: &str = "ferrite BIOS";
/// The BIOS date at F000:FFF5 (mm/dd/yy).
pub const DATE: &[u8; 8] = b"06/01/25";
/// Model byte at F000:FFFE: PC/AT.
pub const MODEL: u8 = 0xFC;
pub const SUBMODEL: u8 = 0x01;

impl Rom {
    /// Build the image. Assembling fixed code cannot fail at run time; a
    /// failure is a bug caught by the unit tests, reported as an error.
    pub fn build() -> Result<Rom, RomError> {
        let mut a = CodeAssembler::new(16)?;
        let mut traps: Vec<(CodeLabel, Trap)> = Vec::new();
        let mut named: Vec<(&'static str, CodeLabel)> = Vec::new();
        let mut handler: Vec<(u8, CodeLabel)> = Vec::new();
        let port = TRAP_PORT as u32;

        // A trap stub: OUT, label behind it, then `tail`.
        macro_rules! trap {
            ($trap:expr) => {{
                let mut after = a.create_label();
                a.out(port, al)?;
                a.set_label(&mut after)?;
                traps.push((after, $trap));
                after
            }};
        }
        macro_rules! entry {
            ($name:expr) => {{
                let mut l = a.create_label();
                a.set_label(&mut l)?;
                named.push(($name, l));
                l
            }};
        }

        // POST: everything happens in Rust; then the option ROM loop, the
        // boot, and the halt loop if nothing boots.
        entry!("post");
        a.cli()?;
        a.cld()?;
        // The address behind the POST trap is the option-ROM loop's OUT.
        let post_roms = trap!(Trap::Post);
        named.push(("post_roms", post_roms));
        trap!(Trap::PostRoms);
        a.sti()?;
        a.int(0x19)?;
        a.int(0x18)?;
        entry!("halt");
        let mut halt_loop = a.create_label();
        a.cli()?;
        a.set_label(&mut halt_loop)?;
        a.hlt()?;
        a.jmp(halt_loop)?;

        // Plain services: trap, iret. The BIOS sets CF/ZF in the FLAGS
        // image on the stack, so the caller's IF and TF come back intact.
        for (vector, trap) in [
            (0x10u8, Trap::Int10),
            (0x11, Trap::Int11),
            (0x12, Trap::Int12),
            (0x13, Trap::Int13),
            (0x17, Trap::Int17),
            (0x18, Trap::Int18),
            (0x19, Trap::Int19),
            (0x1A, Trap::Int1A),
        ] {
            let l = entry!("service");
            handler.push((vector, l));
            trap!(trap);
            a.iret()?;
        }
        handler.push((0x40, handler.iter().find(|h| h.0 == 0x13).map(|h| h.1).unwrap_or(halt_loop)));

        // Services that may block: the Rust side points EIP at the wait
        // loop, which lets interrupts in, halts until one came, and retries.
        for (vector, trap, wait) in
            [(0x14u8, Trap::Int14, "int14_wait"), (0x15, Trap::Int15, "int15_wait"), (0x16, Trap::Int16, "int16_wait")]
        {
            let mut stub = a.create_label();
            a.set_label(&mut stub)?;
            handler.push((vector, stub));
            trap!(trap);
            a.iret()?;
            entry!(wait);
            a.sti()?;
            a.hlt()?;
            a.cli()?;
            a.jmp(stub)?;
        }

        // IRQ0: ticks in Rust, then INT 1Ch, then the EOI (IBM order).
        let l = entry!("int08");
        handler.push((0x08, l));
        a.push(ax)?;
        trap!(Trap::Irq0);
        a.int(0x1C)?;
        a.cli()?;
        a.mov(al, 0x20)?;
        a.out(0x20, al)?;
        a.pop(ax)?;
        a.iret()?;

        // IRQ1: read the scan code, offer it to INT 15h AH=4Fh (CF clear
        // on return: swallowed), translate in Rust, EOI.
        let l = entry!("int09");
        handler.push((0x09, l));
        let mut eoi = a.create_label();
        a.push(ax)?;
        a.in_(al, 0x60)?;
        a.mov(ah, 0x4F)?;
        a.stc()?;
        a.int(0x15)?;
        a.jnc(eoi)?;
        // The trap stub by hand: its "behind the OUT" label is the EOI path.
        a.out(port, al)?;
        a.set_label(&mut eoi)?;
        traps.push((eoi, Trap::Irq1));
        a.cli()?;
        a.mov(al, 0x20)?;
        a.out(0x20, al)?;
        a.pop(ax)?;
        a.iret()?;
        entry!("int09_break");
        a.int(0x1B)?;
        a.jmp(eoi)?;

        // The other IRQ lines: the Rust side checks the in-service register
        // and sends the EOI(s).
        for irq in 2..16u8 {
            let l = entry!("irq");
            let vector = if irq < 8 { 0x08 + irq } else { 0x68 + irq };
            handler.push((vector, l));
            trap!(Trap::Irq(irq));
            a.iret()?;
        }
        entry!("irq8_alarm");
        a.int(0x4A)?;
        a.iret()?;

        let res = a.assemble_options(0, BlockEncoderOptions::RETURN_NEW_INSTRUCTION_OFFSETS)?;
        let code = &res.inner.code_buffer;
        if code.len() > CODE_END as usize {
            return Err(RomError::TooBig(code.len()));
        }
        let ip = |l: &CodeLabel| -> Result<u16, RomError> { Ok(res.label_ip(l)? as u16) };
        let find = |name: &'static str| -> Result<u16, RomError> {
            match named.iter().find(|n| n.0 == name) {
                Some((_, l)) => ip(l),
                None => Err(RomError::Missing(name)),
            }
        };

        let mut image = vec![0u8; ROM_SIZE];
        image[..code.len()].copy_from_slice(code);
        let mut vectors = [IRET_AT; 256];
        for (v, l) in &handler {
            vectors[*v as usize] = ip(l)?;
        }
        // The fixed entry points jump to the stubs; the IVT points at the
        // fixed entries, as on the IBM AT.
        let near_jmp = |image: &mut Vec<u8>, at: u16, to: u16| {
            let rel = to.wrapping_sub(at.wrapping_add(3));
            image[at as usize] = 0xE9;
            image[at as usize + 1..at as usize + 3].copy_from_slice(&rel.to_le_bytes());
        };
        near_jmp(&mut image, POST_ENTRY, find("post")?);
        for (at, vector) in FIXED_ENTRIES {
            let to = vectors[vector as usize];
            if to == IRET_AT {
                image[at as usize] = 0xCF;
            } else {
                near_jmp(&mut image, at, to);
                vectors[vector as usize] = at;
            }
        }
        image[IRET_AT as usize] = 0xCF;
        image[ID_AT as usize..ID_AT as usize + ID_STRING.len()].copy_from_slice(ID_STRING.as_bytes());
        // INT 15h AH=C0h: length 8, model, submodel, revision, feature
        // bytes 1-5. Feature 1: 0x70 = second PIC, RTC, INT 15h AH=4Fh
        // called by INT 09h; 0x04 = EBDA allocated. Feature 2: 0x40 = INT
        // 16h AH=09h supported.
        let ct = CONFIG_TABLE as usize;
        image[ct..ct + 10].copy_from_slice(&[8, 0, MODEL, SUBMODEL, 0, 0x74, 0x40, 0, 0, 0]);
        // Diskette parameter table for 1.44 MB drives (specify bytes,
        // motor-off delay, 512-byte sectors, 18 sectors per track, gap
        // lengths, data length, format gap and fill byte, head settle, motor
        // start), the values IBM's tables give.
        let dp = DISKETTE_PARAMS as usize;
        image[dp..dp + 11].copy_from_slice(&[0xAF, 0x02, 0x25, 0x02, 0x12, 0x1B, 0xFF, 0x6C, 0xF6, 0x0F, 0x08]);
        let fonts: [(u16, &[u8]); 4] = [
            (FONT16_AT, super::font::font_8x16()),
            (FONT14_AT, super::font::font_8x14()),
            (FONT8_FULL_AT, super::font::font_8x8()),
            (FONT8, &super::font::font_8x8()[..128 * 8]),
        ];
        for (at, f) in fonts {
            image[at as usize..at as usize + f.len()].copy_from_slice(f);
        }
        let pir = super::pci::pir_table();
        image[PIR_AT as usize..PIR_AT as usize + pir.len()].copy_from_slice(&pir);
        // Reset vector: jmp far F000:E05B.
        image[0xFFF0..0xFFF5].copy_from_slice(&[0xEA, 0x5B, 0xE0, 0x00, 0xF0]);
        image[0xFFF5..0xFFFD].copy_from_slice(DATE);
        image[0xFFFE] = MODEL;
        let sum = image[..0xFFFF].iter().fold(0u8, |s, b| s.wrapping_add(*b));
        image[0xFFFF] = 0u8.wrapping_sub(sum);

        let mut trap_map = BTreeMap::new();
        for (l, t) in &traps {
            trap_map.insert(ip(l)?, *t);
        }
        let at = Layout {
            post_roms: find("post_roms")?,
            halt: find("halt")?,
            int14_wait: find("int14_wait")?,
            int15_wait: find("int15_wait")?,
            int16_wait: find("int16_wait")?,
            int09_break: find("int09_break")?,
            irq8_alarm: find("irq8_alarm")?,
            diskette_params: DISKETTE_PARAMS,
            video_params: VIDEO_PARAMS,
            font8: FONT8,
        };
        Ok(Rom { image, traps: trap_map, at, vectors })
    }

    /// The stub whose OUT ends right before linear address `linear` (the
    /// ROM as seen below 1 MiB or at the top of the 4 GiB space).
    pub fn trap_at(&self, linear: u32) -> Option<Trap> {
        let base = linear & !0xFFFF;
        if base != ROM_BASE && base != 0xFFFF_0000 {
            return None;
        }
        self.traps.get(&(linear as u16)).copied()
    }

    /// Offset behind the OUT of the first stub that traps as `t`.
    #[cfg(test)]
    pub fn trap_offset(&self, t: Trap) -> Option<u16> {
        self.traps.iter().find(|(_, v)| **v == t).map(|(k, _)| *k)
    }
}
