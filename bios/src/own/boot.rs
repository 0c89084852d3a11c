//! Booting (INT 19h, and INT 18h for "try the next device"): the boot
//! order is the CMOS layout QEMU and SeaBIOS use (register 3Dh low nibble
//! first device, high nibble second, register 38h high nibble third; 1 =
//! floppy, 2 = hard disk, 3 = CD-ROM), which `--boot a|c|d` sets.
//!
//! A floppy or hard disk boots when sector 0 ends in 55h AAh: it is loaded
//! at 0000:7C00 and entered with DL = the drive. A CD-ROM boots through El
//! Torito (boot record volume descriptor at sector 17, the boot catalog's
//! validation and initial entries): no-emulation images are loaded at
//! their load segment and entered with DL = the CD-ROM's drive number
//! (E0h-E3h); floppy and hard-disk emulation images become drive 00h or
//! 80h and their first sector is loaded.

use ferrite_core::cpu::state::{SegReg, ESP};

use super::ctx::Ctx;
use super::disk::{floppy_geometry, CdBoot, Chs, Class, Drive, Drives};
use super::platform::BiosDisk;

/// Where boot sectors go.
pub const BOOT_SEGMENT: u16 = 0x07C0;
pub const BOOT_ADDR: u32 = 0x7C00;

const DEV_FLOPPY: u8 = 1;
const DEV_HARD_DISK: u8 = 2;
const DEV_CDROM: u8 = 3;

/// The boot order from CMOS (unknown values skipped, each device once).
pub fn boot_order(c: &mut Ctx) -> Vec<u8> {
    let r3d = c.cmos(0x3D);
    let r38 = c.cmos(0x38);
    let mut order = Vec::new();
    for d in [r3d & 0x0F, r3d >> 4, r38 >> 4] {
        if matches!(d, DEV_FLOPPY..=DEV_CDROM) && !order.contains(&d) {
            order.push(d);
        }
    }
    if order.is_empty() {
        order = vec![DEV_FLOPPY, DEV_HARD_DISK, DEV_CDROM];
    }
    order
}

pub fn device_name(d: u8) -> &'static str {
    match d {
        DEV_FLOPPY => "Floppy",
        DEV_HARD_DISK => "Hard Disk",
        _ => "CD-ROM",
    }
}

/// Where to start the boot code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry {
    pub cs: u16,
    pub ip: u16,
    pub dl: u8,
}

/// Why a device did not boot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NoBoot {
    NoDrive,
    ReadError,
    NotBootable,
}

impl NoBoot {
    pub fn message(self) -> &'static str {
        match self {
            NoBoot::NoDrive => "no drive",
            NoBoot::ReadError => "read error",
            NoBoot::NotBootable => "not a bootable disk",
        }
    }
}

/// Try to load the boot code of device class `dev`.
pub fn load(c: &mut Ctx, drives: &mut Drives, dev: u8) -> Result<Entry, NoBoot> {
    match dev {
        DEV_FLOPPY => load_sector0(c, drives, 0x00),
        DEV_HARD_DISK => load_sector0(c, drives, 0x80),
        _ => {
            let cds: Vec<BiosDisk> = drives.cd.iter().map(|d| d.slot).collect();
            let mut why = NoBoot::NoDrive;
            for slot in cds {
                match el_torito(c, drives, slot) {
                    Ok(e) => return Ok(e),
                    Err(e) => why = e,
                }
            }
            Err(why)
        }
    }
}

/// A floppy or hard disk: sector 0 with the 55AAh signature.
fn load_sector0(c: &mut Ctx, drives: &Drives, dl: u8) -> Result<Entry, NoBoot> {
    let d = drives.get(dl).filter(|d| !d.emulated).ok_or(NoBoot::NoDrive)?;
    let mut sector = [0u8; 512];
    c.p.disk(d.slot).ok_or(NoBoot::NoDrive)?.read_at(0, &mut sector).map_err(|_| NoBoot::ReadError)?;
    if sector[510] != 0x55 || sector[511] != 0xAA {
        return Err(NoBoot::NotBootable);
    }
    c.write_bytes(BOOT_ADDR, &sector);
    Ok(Entry { cs: 0, ip: BOOT_ADDR as u16, dl })
}

fn read_cd(c: &mut Ctx, slot: BiosDisk, lba: u32, buf: &mut [u8]) -> Result<(), NoBoot> {
    let mut m = c.p.disk(slot).ok_or(NoBoot::NoDrive)?;
    m.read_at(lba as u64 * 2048, buf).map_err(|_| NoBoot::ReadError)
}

/// El Torito boot from the CD-ROM in `slot`.
fn el_torito(c: &mut Ctx, drives: &mut Drives, slot: BiosDisk) -> Result<Entry, NoBoot> {
    let mut brvd = vec![0u8; 2048];
    read_cd(c, slot, 17, &mut brvd)?;
    if brvd[0] != 0 || &brvd[1..6] != b"CD001" || brvd[6] != 1 || &brvd[7..30] != b"EL TORITO SPECIFICATION" {
        return Err(NoBoot::NotBootable);
    }
    let catalog = u32::from_le_bytes([brvd[0x47], brvd[0x48], brvd[0x49], brvd[0x4A]]);
    let mut cat = vec![0u8; 2048];
    read_cd(c, slot, catalog, &mut cat)?;
    let sum = cat[..32].chunks(2).fold(0u16, |s, w| s.wrapping_add(u16::from_le_bytes([w[0], w[1]])));
    if cat[0] != 1 || cat[30] != 0x55 || cat[31] != 0xAA || sum != 0 {
        return Err(NoBoot::NotBootable);
    }
    let e = &cat[32..64];
    if e[0] != 0x88 {
        return Err(NoBoot::NotBootable);
    }
    let media = e[1] & 0x0F;
    let load_segment = match u16::from_le_bytes([e[2], e[3]]) {
        0 => BOOT_SEGMENT,
        s => s,
    };
    let count = u16::from_le_bytes([e[6], e[7]]);
    let lba = u32::from_le_bytes([e[8], e[9], e[10], e[11]]);
    let load_at = (load_segment as u32) << 4;
    let cd_number = drives.cd_number(slot).ok_or(NoBoot::NoDrive)?;
    let (drive, chs) = match media {
        0 => {
            let bytes = (count.max(1) as usize) * 512;
            if load_at < 0x500 || load_at as usize + bytes > 0xA_0000 {
                return Err(NoBoot::NotBootable);
            }
            let mut image = vec![0u8; bytes.div_ceil(2048) * 2048];
            read_cd(c, slot, lba, &mut image)?;
            c.write_bytes(load_at, &image[..bytes]);
            (cd_number, Chs { cyls: 0, heads: 0, spt: 0 })
        }
        1..=3 => {
            let size = [1_228_800u64, 1_474_560, 2_949_120][media as usize - 1];
            let (chs, ty) = floppy_geometry(size).ok_or(NoBoot::NotBootable)?;
            let d = Drive {
                slot,
                class: Class::Floppy,
                start: lba as u64 * 2048,
                sector: 512,
                sectors: size / 512,
                chs,
                floppy_type: ty,
                emulated: true,
            };
            emulate(c, drives, d, load_at, count)?;
            (0x00, chs)
        }
        4 => {
            let mut mbr = [0u8; 512];
            {
                let mut m = c.p.disk(slot).ok_or(NoBoot::NoDrive)?;
                m.read_at(lba as u64 * 2048, &mut mbr).map_err(|_| NoBoot::ReadError)?;
            }
            let chs = emulated_hd_geometry(&mbr).ok_or(NoBoot::NotBootable)?;
            let d = Drive {
                slot,
                class: Class::Hard,
                start: lba as u64 * 2048,
                sector: 512,
                sectors: chs.cyls as u64 * chs.heads as u64 * chs.spt as u64,
                chs,
                floppy_type: 0,
                emulated: true,
            };
            emulate(c, drives, d, load_at, count)?;
            (0x80, chs)
        }
        _ => return Err(NoBoot::NotBootable),
    };
    drives.cd_boot =
        Some(CdBoot { media, drive, cd: slot, lba, load_segment, sector_count: count, chs, active: media != 0 });
    update_drive_counts(c, drives);
    // Canonical CS:IP for the load segment (07C0h -> 0000:7C00).
    Ok(Entry { cs: load_segment & 0xF000, ip: (load_segment & 0x0FFF) << 4, dl: drive })
}

/// Load the first `count` sectors of an emulated drive and number it.
fn emulate(c: &mut Ctx, drives: &mut Drives, d: Drive, load_at: u32, count: u16) -> Result<(), NoBoot> {
    let bytes = count.max(1) as usize * 512;
    if load_at < 0x500 || load_at as usize + bytes > 0xA_0000 {
        return Err(NoBoot::NotBootable);
    }
    let mut image = vec![0u8; bytes];
    {
        let mut m = c.p.disk(d.slot).ok_or(NoBoot::NoDrive)?;
        m.read_at(d.start, &mut image).map_err(|_| NoBoot::ReadError)?;
    }
    c.write_bytes(load_at, &image);
    drives.remove_emulated();
    drives.insert_emulated(d);
    Ok(())
}

/// The geometry of an emulated hard disk: from its partition table (the
/// emulated disk ends with the partition that ends last).
fn emulated_hd_geometry(mbr: &[u8; 512]) -> Option<Chs> {
    if mbr[510] != 0x55 || mbr[511] != 0xAA {
        return None;
    }
    let mut best: Option<Chs> = None;
    for e in mbr[0x1BE..0x1FE].chunks(16) {
        if e[4] == 0 {
            continue;
        }
        let heads = e[5] as u32 + 1;
        let spt = (e[6] & 0x3F) as u32;
        let cyl = e[7] as u32 | ((e[6] as u32 & 0xC0) << 2);
        if spt == 0 {
            continue;
        }
        let g = Chs { cyls: cyl + 1, heads, spt };
        if best.is_none_or(|b| g.cyls > b.cyls) {
            best = Some(g);
        }
    }
    best
}

/// Keep the equipment word's floppy count and 40:75 in step with the
/// drive numbering.
pub fn update_drive_counts(c: &mut Ctx, drives: &Drives) {
    c.set_bda8(super::disk::HD_COUNT, drives.hard.len() as u8);
    let eq = c.bda16(super::system::EQUIPMENT) & !0x00C1;
    let n = drives.floppy.len().min(4) as u16;
    let bits = if n == 0 { 0 } else { 0x01 | ((n - 1) << 6) };
    c.set_bda16(super::system::EQUIPMENT, eq | bits);
}

/// Enter boot code: CS:IP, DL, flat data segments, the stack below it,
/// interrupts on.
pub fn enter(c: &mut Ctx, e: Entry) {
    for s in [SegReg::Ds, SegReg::Es, SegReg::Ss] {
        c.set_sel(s, 0);
    }
    c.set_reg32(ESP, BOOT_ADDR);
    c.set_dl(e.dl);
    c.cpu.state.set_eflags(0x0202);
    c.jump(e.cs, e.ip);
}
