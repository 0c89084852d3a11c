//! INT 13h: floppies (drive 00h-01h), hard disks (80h-83h) and CD-ROMs
//! (E0h-E3h), read and written straight from the media behind the
//! controllers, with the Phoenix/IBM extensions (AH=41h-49h, EDD 3.0 drive
//! parameters with the device path and a DPTE in the EBDA) and the El
//! Torito functions (AH=4Bh). An El Torito emulated floppy or hard disk
//! takes drive number 00h or 80h and moves the real drives of its kind up
//! by one.
//!
//! Status codes (IBM/Phoenix): 00h ok, 01h bad function or parameter, 03h
//! write-protected, 04h sector not found, 0Ch unsupported media, 20h
//! controller failure, 80h drive not ready, AAh drive not ready (hard
//! disk), B0h-B6h removable-media lock errors. The last status is kept in
//! 40:41 (floppies) and 40:74 (hard disks) for AH=01h.

use ferrite_core::cpu::state::SegReg;

use super::ctx::{Ctx, CF};
use super::platform::{BiosDisk, DiskIoError, DiskKind, Platform};

pub const ST_OK: u8 = 0x00;
pub const ST_BAD_PARAM: u8 = 0x01;
pub const ST_WRITE_PROTECTED: u8 = 0x03;
pub const ST_NOT_FOUND: u8 = 0x04;
pub const ST_CONTROLLER: u8 = 0x20;
pub const ST_NOT_READY: u8 = 0x80;
pub const ST_HD_NOT_READY: u8 = 0xAA;

/// Data area: last floppy status, last hard-disk status, number of hard
/// disks.
pub const FLOPPY_STATUS: u16 = 0x41;
pub const HD_STATUS: u16 = 0x74;
pub const HD_COUNT: u16 = 0x75;

/// EBDA offsets: fixed-disk parameter tables for drives 80h/81h (INT
/// 41h/46h), and the EDD device parameter table extensions of the four IDE
/// slots.
pub const EBDA_FDPT: [u16; 2] = [0x3D, 0x4D];
pub const EBDA_DPTE: u16 = 0x100;

/// Largest transfer read into host memory at once (sectors of 2 KiB).
const CHUNK_SECTORS: u64 = 64;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    Floppy,
    Hard,
    Cd,
}

/// A CHS geometry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Chs {
    pub cyls: u32,
    pub heads: u32,
    pub spt: u32,
}

/// One BIOS drive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Drive {
    pub slot: BiosDisk,
    pub class: Class,
    /// Byte offset of sector 0 in the medium (El Torito emulation).
    pub start: u64,
    /// Bytes per sector: 512, or 2048 for CD-ROMs.
    pub sector: u32,
    /// Sectors (CD-ROMs: read from the disc at each call instead).
    pub sectors: u64,
    pub chs: Chs,
    /// CMOS drive type of a floppy (AH=08h BL).
    pub floppy_type: u8,
    /// An El Torito emulated drive (read-only, no DPTE).
    pub emulated: bool,
}

/// The standard floppy formats: size, geometry, CMOS drive type.
pub fn floppy_geometry(size: u64) -> Option<(Chs, u8)> {
    let (cyls, heads, spt, ty) = match size {
        163_840 => (40, 1, 8, 1),
        184_320 => (40, 1, 9, 1),
        327_680 => (40, 2, 8, 1),
        368_640 => (40, 2, 9, 1),
        737_280 => (80, 2, 9, 3),
        1_228_800 => (80, 2, 15, 2),
        1_474_560 => (80, 2, 18, 4),
        1_720_320 => (80, 2, 21, 4),
        2_949_120 => (80, 2, 36, 5),
        _ => return None,
    };
    Some((Chs { cyls, heads, spt }, ty))
}

/// The geometry a BIOS gives a hard disk of `sectors` sectors: the one the
/// partition table in `mbr` was written for when it names one consistently,
/// else 63 sectors per track and the LBA-assist head count (16, 32, 64, 128
/// or 255 heads, the fewest that keep the cylinders at 1024 or below).
pub fn hd_geometry(sectors: u64, mbr: Option<&[u8]>) -> Chs {
    let fit = |heads: u32, spt: u32| -> Chs {
        let cyls = (sectors / (heads as u64 * spt as u64)).clamp(1, 1024) as u32;
        Chs { cyls, heads, spt }
    };
    if let Some(m) = mbr.filter(|m| m.len() >= 512 && m[510] == 0x55 && m[511] == 0xAA) {
        let mut guess = None;
        for e in m[0x1BE..0x1FE].chunks(16) {
            let (flag, ty, end_head, end_sec) = (e[0], e[4], e[5], e[6] & 0x3F);
            if ty == 0 {
                continue;
            }
            if flag & 0x7F != 0 || end_sec == 0 {
                guess = None;
                break;
            }
            let g = (end_head as u32 + 1, end_sec as u32);
            if guess.is_some_and(|o| o != g) {
                guess = None;
                break;
            }
            guess = Some(g);
        }
        if let Some((heads, spt)) = guess {
            return fit(heads, spt);
        }
    }
    let heads = [16u32, 32, 64, 128].into_iter().find(|h| sectors <= 1024 * *h as u64 * 63).unwrap_or(255);
    fit(heads, 63)
}

/// An El Torito boot in effect (AH=4Bh reports it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CdBoot {
    /// 0 no emulation, 1-3 floppy (1.2/1.44/2.88 MB), 4 hard disk.
    pub media: u8,
    /// The drive number the boot image got.
    pub drive: u8,
    /// The CD-ROM drive.
    pub cd: BiosDisk,
    /// First 2048-byte sector of the image.
    pub lba: u32,
    pub load_segment: u16,
    pub sector_count: u16,
    pub chs: Chs,
    /// Emulation still active (AH=4B00h ends it).
    pub active: bool,
}

/// Every drive the BIOS numbers.
#[derive(Clone, Debug, Default)]
pub struct Drives {
    pub floppy: Vec<Drive>,
    pub hard: Vec<Drive>,
    pub cd: Vec<Drive>,
    pub cd_boot: Option<CdBoot>,
}

impl Drives {
    /// Probe the platform's slots (POST).
    pub fn probe(p: &mut dyn Platform) -> Drives {
        let mut d = Drives::default();
        for unit in 0..2u8 {
            let slot = BiosDisk::Floppy(unit);
            if p.disk_kind(slot) != Some(DiskKind::Floppy) {
                continue;
            }
            let Some(size) = p.disk(slot).map(|m| m.size()) else { continue };
            let Some((chs, ty)) = floppy_geometry(size) else { continue };
            let sectors = (chs.cyls * chs.heads * chs.spt) as u64;
            d.floppy.push(Drive {
                slot,
                class: Class::Floppy,
                start: 0,
                sector: 512,
                sectors,
                chs,
                floppy_type: ty,
                emulated: false,
            });
        }
        for slot in BiosDisk::IDE {
            match p.disk_kind(slot) {
                Some(DiskKind::HardDisk) => {
                    let mut mbr = vec![0u8; 512];
                    let Some(sectors) = p.disk(slot).map(|mut m| {
                        let n = m.size() / 512;
                        if m.read_at(0, &mut mbr).is_err() {
                            mbr.fill(0);
                        }
                        n
                    }) else {
                        continue;
                    };
                    if sectors == 0 {
                        continue;
                    }
                    let chs = hd_geometry(sectors, Some(&mbr));
                    d.hard.push(Drive {
                        slot,
                        class: Class::Hard,
                        start: 0,
                        sector: 512,
                        sectors,
                        chs,
                        floppy_type: 0,
                        emulated: false,
                    });
                }
                Some(DiskKind::Cdrom) => d.cd.push(Drive {
                    slot,
                    class: Class::Cd,
                    start: 0,
                    sector: 2048,
                    sectors: 0,
                    chs: Chs { cyls: 0, heads: 0, spt: 0 },
                    floppy_type: 0,
                    emulated: false,
                }),
                _ => {}
            }
        }
        d
    }

    /// The drive INT 13h number `dl` names.
    pub fn get(&self, dl: u8) -> Option<&Drive> {
        match dl {
            0x00..=0x7F => self.floppy.get(dl as usize),
            0x80..=0xDF => self.hard.get(dl as usize - 0x80),
            _ => self.cd.get(dl as usize - 0xE0),
        }
    }

    /// The drive number of the CD-ROM in `slot`.
    pub fn cd_number(&self, slot: BiosDisk) -> Option<u8> {
        self.cd.iter().position(|d| d.slot == slot).map(|i| 0xE0 + i as u8)
    }

    /// Put an emulated drive in front of the real ones of its kind.
    pub fn insert_emulated(&mut self, d: Drive) -> u8 {
        match d.class {
            Class::Floppy => {
                self.floppy.insert(0, d);
                0x00
            }
            _ => {
                self.hard.insert(0, d);
                0x80
            }
        }
    }

    /// End El Torito emulation: the real drives get their numbers back.
    pub fn remove_emulated(&mut self) {
        self.floppy.retain(|d| !d.emulated);
        self.hard.retain(|d| !d.emulated);
    }
}

/// Read `count` sectors at `lba` of `d` into guest memory at linear `buf`.
fn read_to_guest(c: &mut Ctx, d: &Drive, lba: u64, count: u64, buf: u32) -> Result<(), u8> {
    let sectors = drive_sectors(c.p, d).ok_or(not_ready(d))?;
    if lba.checked_add(count).is_none_or(|end| end > sectors) {
        return Err(ST_NOT_FOUND);
    }
    let mut done = 0u64;
    while done < count {
        let n = (count - done).min(CHUNK_SECTORS);
        let mut tmp = vec![0u8; (n * d.sector as u64) as usize];
        let off = d.start + (lba + done) * d.sector as u64;
        {
            let mut m = c.p.disk(d.slot).ok_or(not_ready(d))?;
            m.read_at(off, &mut tmp).map_err(io_status)?;
        }
        let at = buf.wrapping_add((done * d.sector as u64) as u32);
        c.write_bytes(at, &tmp);
        done += n;
    }
    Ok(())
}

/// Write `count` sectors at `lba` of `d` from guest memory at `buf`.
fn write_from_guest(c: &mut Ctx, d: &Drive, lba: u64, count: u64, buf: u32) -> Result<(), u8> {
    if d.class == Class::Cd || d.emulated {
        return Err(ST_WRITE_PROTECTED);
    }
    let sectors = drive_sectors(c.p, d).ok_or(not_ready(d))?;
    if lba.checked_add(count).is_none_or(|end| end > sectors) {
        return Err(ST_NOT_FOUND);
    }
    let mut done = 0u64;
    while done < count {
        let n = (count - done).min(CHUNK_SECTORS);
        let mut tmp = vec![0u8; (n * d.sector as u64) as usize];
        let at = buf.wrapping_add((done * d.sector as u64) as u32);
        c.read_bytes(at, &mut tmp);
        let off = d.start + (lba + done) * d.sector as u64;
        let mut m = c.p.disk(d.slot).ok_or(not_ready(d))?;
        if m.read_only() {
            return Err(ST_WRITE_PROTECTED);
        }
        m.write_at(off, &tmp).map_err(io_status)?;
        done += n;
    }
    Ok(())
}

fn not_ready(d: &Drive) -> u8 {
    match d.class {
        Class::Hard => ST_HD_NOT_READY,
        _ => ST_NOT_READY,
    }
}

fn io_status(e: DiskIoError) -> u8 {
    match e {
        DiskIoError::OutOfRange => ST_NOT_FOUND,
        DiskIoError::ReadOnly => ST_WRITE_PROTECTED,
        DiskIoError::Io(_) => ST_CONTROLLER,
    }
}

/// Sectors of a drive; a CD-ROM's come from the disc in it.
fn drive_sectors(p: &mut dyn Platform, d: &Drive) -> Option<u64> {
    if d.class == Class::Cd && !d.emulated {
        return p.disk(d.slot).map(|m| m.size() / 2048);
    }
    p.disk(d.slot).map(|_| d.sectors)
}

/// Byte offset `off` of the disk address packet at DS:SI.
fn dap(c: &Ctx, off: u32) -> u32 {
    c.lin(SegReg::Ds, c.si()).wrapping_add(off)
}

/// INT 13h.
pub fn int13(c: &mut Ctx, drives: &mut Drives) {
    let dl = c.dl();
    let ah = c.ah();
    let floppy_range = dl < 0x80;
    // Reset and status work on drive numbers that name nothing too.
    let status_at = if floppy_range { FLOPPY_STATUS } else { HD_STATUS };
    let Some(d) = drives.get(dl).cloned() else {
        match ah {
            0x00 => finish(c, status_at, ST_OK),
            0x01 => {
                let st = c.bda8(status_at);
                c.set_ah(st);
                c.set_flag(CF, st != 0);
            }
            0x4B if c.al() <= 1 => cd_status(c, drives),
            // AH=15h on an absent floppy: "no such drive", CF clear.
            0x15 if floppy_range => {
                c.set_ah(0);
                c.set_flag(CF, false);
            }
            0x08 if floppy_range && (dl as usize) < 2 => {
                // Drive absent: all zero but the drive count.
                c.set_ax(0);
                c.set_bx(0);
                c.set_cx(0);
                c.set_dx(drives.floppy.len() as u16);
                c.set_flag(CF, false);
            }
            _ => finish(c, status_at, ST_BAD_PARAM),
        }
        return;
    };
    let st = match ah {
        0x00 | 0x0D | 0x10 | 0x11 | 0x14 => ST_OK,
        0x01 => {
            let st = c.bda8(status_at);
            c.set_ah(st);
            c.set_flag(CF, st != 0);
            return;
        }
        0x02..=0x04 => chs_transfer(c, &d, ah),
        0x05 => format_track(c, &d),
        0x08 => {
            get_params(c, &d, drives);
            return;
        }
        0x09 | 0x0C => {
            if d.class == Class::Cd {
                ST_BAD_PARAM
            } else {
                ST_OK
            }
        }
        0x15 => {
            disk_type(c, &d);
            return;
        }
        0x16 => {
            // Change line: not changed (the BIOS does not watch media swaps).
            if d.class == Class::Floppy {
                ST_OK
            } else {
                ST_BAD_PARAM
            }
        }
        0x17 | 0x18 if d.class == Class::Floppy => {
            if ah == 0x18 {
                // The parameter table for the requested media type.
                c.set_sel(SegReg::Es, super::rom::ROM_SEGMENT);
                c.set_di(super::rom::DISKETTE_PARAMS);
            }
            ST_OK
        }
        0x41 => {
            if c.bx() != 0x55AA || d.class == Class::Floppy {
                ST_BAD_PARAM
            } else {
                c.set_bx(0xAA55);
                // EDD 3.0; fixed disk access, drive locking/ejecting, EDD.
                c.set_cx(if d.class == Class::Cd { 0x0007 } else { 0x0005 });
                c.set_ah(0x30);
                c.set_flag(CF, false);
                c.set_bda8(status_at, 0);
                return;
            }
        }
        0x42..=0x44 | 0x47 if d.class != Class::Floppy => ext_transfer(c, &d, ah),
        0x45 if d.class != Class::Floppy => {
            // Lock/unlock: nothing locks; report "unlocked" (AL=0) for
            // status and lock count 0.
            match c.al() {
                0..=2 => {
                    c.set_al(0);
                    ST_OK
                }
                _ => ST_BAD_PARAM,
            }
        }
        0x46 if d.class == Class::Cd => 0xB1,
        0x48 if d.class != Class::Floppy => {
            let st = edd_params(c, &d);
            if st == ST_OK {
                c.set_ah(0);
                c.set_flag(CF, false);
                c.set_bda8(status_at, 0);
                return;
            }
            st
        }
        0x49 if d.class != Class::Floppy => ST_OK,
        0x4E if d.class != Class::Floppy => ST_OK,
        0x4B if c.al() <= 1 => {
            cd_status(c, drives);
            return;
        }
        _ => {
            c.log_unsupported(0x13, ah);
            ST_BAD_PARAM
        }
    };
    finish(c, status_at, st);
}

/// Set AH/CF and the data-area status.
fn finish(c: &mut Ctx, status_at: u16, st: u8) {
    c.set_bda8(status_at, st);
    c.set_ah(st);
    c.set_flag(CF, st != ST_OK);
}

/// AH=02h read, 03h write, 04h verify: AL sectors at CH/CL/DH to ES:BX.
fn chs_transfer(c: &mut Ctx, d: &Drive, ah: u8) -> u8 {
    if d.class == Class::Cd {
        return ST_BAD_PARAM;
    }
    let count = c.al() as u64;
    let cyl = c.ch() as u32 | ((c.cl() as u32 & 0xC0) << 2);
    let sector = c.cl() as u32 & 0x3F;
    let head = c.dh() as u32;
    let g = d.chs;
    if count == 0 || sector == 0 || sector > g.spt || head >= g.heads || cyl >= g.cyls {
        c.set_al(0);
        return if count == 0 { ST_BAD_PARAM } else { ST_NOT_FOUND };
    }
    let lba = ((cyl * g.heads + head) * g.spt + sector - 1) as u64;
    let buf = c.lin(SegReg::Es, c.bx());
    let r = match ah {
        0x02 => read_to_guest(c, d, lba, count, buf),
        0x03 => write_from_guest(c, d, lba, count, buf),
        _ => match drive_sectors(c.p, d) {
            Some(n) if lba + count <= n => Ok(()),
            Some(_) => Err(ST_NOT_FOUND),
            None => Err(not_ready(d)),
        },
    };
    match r {
        Ok(()) => {
            c.set_al(count as u8);
            ST_OK
        }
        Err(st) => {
            c.set_al(0);
            st
        }
    }
}

/// AH=05h: format a track (floppies: the sectors are filled with F6h;
/// hard disks: nothing to do).
fn format_track(c: &mut Ctx, d: &Drive) -> u8 {
    match d.class {
        Class::Hard => ST_OK,
        Class::Cd => ST_BAD_PARAM,
        Class::Floppy => {
            let (cyl, head) = (c.ch() as u32, c.dh() as u32);
            let g = d.chs;
            if cyl >= g.cyls || head >= g.heads || d.emulated {
                return if d.emulated { ST_WRITE_PROTECTED } else { ST_NOT_FOUND };
            }
            let off = ((cyl * g.heads + head) * g.spt) as u64 * 512;
            let fill = vec![0xF6u8; g.spt as usize * 512];
            match c.p.disk(d.slot) {
                None => ST_NOT_READY,
                Some(m) if m.read_only() => ST_WRITE_PROTECTED,
                Some(mut m) => match m.write_at(off, &fill) {
                    Ok(()) => ST_OK,
                    Err(e) => io_status(e),
                },
            }
        }
    }
}

/// AH=08h: drive parameters.
fn get_params(c: &mut Ctx, d: &Drive, drives: &Drives) {
    let st_at = if d.class == Class::Floppy { FLOPPY_STATUS } else { HD_STATUS };
    if d.class == Class::Cd {
        finish(c, st_at, ST_BAD_PARAM);
        return;
    }
    let g = d.chs;
    let max_cyl = g.cyls.clamp(1, 1024) - 1;
    c.set_ch(max_cyl as u8);
    c.set_cl((g.spt as u8 & 0x3F) | ((max_cyl >> 2) as u8 & 0xC0));
    c.set_dh((g.heads - 1) as u8);
    if d.class == Class::Floppy {
        c.set_bl(d.floppy_type);
        c.set_bh(0);
        c.set_dl(drives.floppy.len() as u8);
        c.set_sel(SegReg::Es, super::rom::ROM_SEGMENT);
        c.set_di(super::rom::DISKETTE_PARAMS);
    } else {
        c.set_dl(drives.hard.len() as u8);
    }
    c.set_al(0);
    finish(c, st_at, ST_OK);
}

/// AH=15h: disk type (AH = 01h floppy without change line, 03h hard disk
/// with CX:DX sectors).
fn disk_type(c: &mut Ctx, d: &Drive) {
    match d.class {
        Class::Floppy => c.set_ah(0x01),
        Class::Hard => {
            let n = (d.chs.cyls as u64 * d.chs.heads as u64 * d.chs.spt as u64).min(u32::MAX as u64) as u32;
            c.set_cx((n >> 16) as u16);
            c.set_dx(n as u16);
            c.set_ah(0x03);
        }
        Class::Cd => c.set_ah(0x02),
    }
    c.set_flag(CF, false);
}

/// AH=42h read, 43h write, 44h verify, 47h seek, through the disk address
/// packet at DS:SI (16 bytes, or 24 with a flat 64-bit buffer address when
/// the segment:offset is FFFF:FFFF).
fn ext_transfer(c: &mut Ctx, d: &Drive, ah: u8) -> u8 {
    let size = c.rd8(dap(c, 0));
    if size < 0x10 {
        return ST_BAD_PARAM;
    }
    let count = c.rd16(dap(c, 2)) as u64;
    let off = c.rd16(dap(c, 4));
    let seg = c.rd16(dap(c, 6));
    let lba = c.rd32(dap(c, 8)) as u64 | (c.rd32(dap(c, 12)) as u64) << 32;
    let buf = if seg == 0xFFFF && off == 0xFFFF && size >= 0x18 {
        let flat = c.rd32(dap(c, 16)) as u64 | (c.rd32(dap(c, 20)) as u64) << 32;
        if flat > u32::MAX as u64 {
            return ST_BAD_PARAM;
        }
        flat as u32
    } else {
        ((seg as u32) << 4).wrapping_add(off as u32)
    };
    let r = match ah {
        0x42 => read_to_guest(c, d, lba, count, buf),
        0x43 => write_from_guest(c, d, lba, count, buf),
        _ => match drive_sectors(c.p, d) {
            Some(n) if lba.checked_add(count).is_some_and(|e| e <= n) || (ah == 0x47 && lba < n) => Ok(()),
            Some(_) => Err(ST_NOT_FOUND),
            None => Err(not_ready(d)),
        },
    };
    match r {
        Ok(()) => ST_OK,
        Err(st) => {
            // Nothing was transferred.
            if ah != 0x47 {
                let at = dap(c, 2);
                c.wr16(at, 0);
            }
            st
        }
    }
}

/// AH=48h: the EDD drive parameter buffer at DS:SI.
fn edd_params(c: &mut Ctx, d: &Drive) -> u8 {
    let base = c.lin(SegReg::Ds, c.si());
    let size = c.rd16(base);
    if size < 0x1A {
        return ST_BAD_PARAM;
    }
    let Some(sectors) = drive_sectors(c.p, d) else { return not_ready(d) };
    let (flags, chs) = match d.class {
        // Removable, change line, lockable, no valid CHS.
        Class::Cd => (0x0074u16, Chs { cyls: 0, heads: 0, spt: 0 }),
        // CHS information valid.
        _ => (0x0002, d.chs),
    };
    let out_size: u16 = if size >= 0x42 {
        0x42
    } else if size >= 0x1E {
        0x1E
    } else {
        0x1A
    };
    c.wr16(base, out_size);
    c.wr16(base + 2, flags);
    c.wr32(base + 4, chs.cyls);
    c.wr32(base + 8, chs.heads);
    c.wr32(base + 12, chs.spt);
    c.wr32(base + 16, sectors as u32);
    c.wr32(base + 20, (sectors >> 32) as u32);
    c.wr16(base + 24, d.sector as u16);
    if out_size < 0x1E {
        return ST_OK;
    }
    let ide = match d.slot {
        BiosDisk::Ide { channel, slave } if !d.emulated => Some((channel, slave)),
        _ => None,
    };
    match ide {
        Some((channel, slave)) => {
            let ebda = c.bda16(0x0E) as u32;
            let idx = channel as u16 * 2 + slave as u16;
            c.wr16(base + 26, EBDA_DPTE + 16 * idx);
            c.wr16(base + 28, ebda as u16);
        }
        None => c.wr32(base + 26, 0xFFFF_FFFF),
    }
    if out_size < 0x42 {
        return ST_OK;
    }
    let Some((channel, slave)) = ide else {
        // No device path for an emulated drive: an empty key says so.
        c.wr16(base + 0x1E, 0);
        return ST_OK;
    };
    let mut path = [0u8; 36];
    path[0..2].copy_from_slice(&0xBEDDu16.to_le_bytes());
    path[2] = 36;
    path[6..10].copy_from_slice(b"PCI ");
    path[10..18].copy_from_slice(if d.class == Class::Cd { b"ATAPI   " } else { b"ATA     " });
    // Interface path: the PIIX3 IDE function 00:01.1 and the channel.
    path[18] = 0;
    path[19] = 1;
    path[20] = 1;
    path[21] = channel;
    // Device path: master (0) or slave (1).
    path[26] = slave as u8;
    let sum = path[..35].iter().fold(0u8, |s, b| s.wrapping_add(*b));
    path[35] = 0u8.wrapping_sub(sum);
    c.write_bytes(base + 0x1E, &path);
    ST_OK
}

/// The 16-byte EDD device parameter table extension (DPTE) of an IDE slot.
pub fn dpte(channel: u8, slave: bool, cd: bool) -> [u8; 16] {
    let (io, ctrl, irq) = if channel == 0 { (0x1F0u16, 0x3F6u16, 14u8) } else { (0x170, 0x376, 15) };
    let mut t = [0u8; 16];
    t[0..2].copy_from_slice(&io.to_le_bytes());
    t[2..4].copy_from_slice(&ctrl.to_le_bytes());
    // Head register prefix: LBA, device 1 for a slave.
    t[4] = 0xA0 | 0x40 | if slave { 0x10 } else { 0 };
    t[6] = irq;
    t[7] = 1;
    // Flags: LBA translation for disks; ATAPI and removable for CD-ROMs.
    let flags: u16 = if cd { 0x0060 } else { 0x0010 };
    t[10..12].copy_from_slice(&flags.to_le_bytes());
    t[14] = 0x11;
    let sum = t[..15].iter().fold(0u8, |s, b| s.wrapping_add(*b));
    t[15] = 0u8.wrapping_sub(sum);
    t
}

/// The fixed-disk parameter table of INT 41h/46h for a geometry.
pub fn fdpt(g: Chs) -> [u8; 16] {
    let mut t = [0u8; 16];
    let cyls = g.cyls.min(1024) as u16;
    t[0..2].copy_from_slice(&cyls.to_le_bytes());
    t[2] = g.heads.min(255) as u8;
    t[5..7].copy_from_slice(&0xFFFFu16.to_le_bytes());
    t[8] = if g.heads > 8 { 0x08 } else { 0 };
    t[12..14].copy_from_slice(&cyls.to_le_bytes());
    t[14] = g.spt as u8;
    t
}

/// AH=4B00h/4B01h: the El Torito specification packet at DS:SI; 4B00h
/// also ends the emulation.
fn cd_status(c: &mut Ctx, drives: &mut Drives) {
    let Some(b) = drives.cd_boot else {
        finish(c, HD_STATUS, ST_BAD_PARAM);
        return;
    };
    let mut packet = [0u8; 0x13];
    packet[0] = 0x13;
    packet[1] = b.media;
    packet[2] = b.drive;
    packet[3] = match b.cd {
        BiosDisk::Ide { channel, .. } => channel,
        BiosDisk::Floppy(_) => 0,
    };
    packet[4..8].copy_from_slice(&b.lba.to_le_bytes());
    packet[8] = matches!(b.cd, BiosDisk::Ide { slave: true, .. }) as u8;
    packet[12..14].copy_from_slice(&b.load_segment.to_le_bytes());
    packet[14..16].copy_from_slice(&b.sector_count.to_le_bytes());
    if b.media != 0 {
        let max_cyl = b.chs.cyls.saturating_sub(1);
        packet[16] = max_cyl as u8;
        packet[17] = (b.chs.spt as u8 & 0x3F) | ((max_cyl >> 2) as u8 & 0xC0);
        packet[18] = b.chs.heads.saturating_sub(1) as u8;
    }
    let at = c.lin(SegReg::Ds, c.si());
    c.write_bytes(at, &packet);
    if c.al() == 0 && b.active && b.media != 0 {
        drives.remove_emulated();
        if let Some(cb) = drives.cd_boot.as_mut() {
            cb.active = false;
        }
    }
    c.set_ah(0);
    c.set_flag(CF, false);
}
