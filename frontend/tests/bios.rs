//! ferrite's own BIOS, end to end: the `ferrite` binary boots test images
//! the tests build (floppy, hard disk, El Torito CD) with no `--bios` (the
//! own BIOS) and, where the service exists there too, with SeaBIOS (fetched
//! by `scripts/fetch-guests`; those runs print "SKIPPED: ..." without it).
//!
//! Each test program reports `ok`/`FAIL` lines on the debug console and
//! exits through port 0xF4 with its failure count (status (n<<1)|1).

use std::path::PathBuf;
use std::process::Command;

mod common;
use common::guest_file;

fn seabios() -> Option<PathBuf> {
    guest_file("seabios-images/bios.bin")
}

/// Which BIOS a run uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Firmware {
    Own,
    SeaBios,
}

/// The result of one run.
struct Run {
    status: Option<i32>,
    console: String,
    serial: String,
    stderr: String,
}

/// Boot `image` as `flag` (--fda, --hda, --cdrom) with `boot` (a, c, d).
/// None when the firmware is SeaBIOS and it is not fetched.
fn boot(fw: Firmware, flag: &str, boot: &str, image: &[u8], extra: &[&str]) -> Option<Run> {
    let bios = match fw {
        Firmware::Own => None,
        Firmware::SeaBios => match seabios() {
            Some(p) => Some(p),
            None => {
                println!("SKIPPED: SeaBIOS not fetched (run scripts/fetch-guests)");
                return None;
            }
        },
    };
    static RUNS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("ferrite-bios-{}-{n}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let img = dir.join("image");
    std::fs::write(&img, image).unwrap();
    let log = dir.join("debugcon.log");
    let serial = dir.join("serial.log");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ferrite"));
    cmd.args(["run", "--no-pacing", "--timeout", "60", "--debug-exit", "--boot", boot]);
    if let Some(b) = &bios {
        cmd.arg("--bios").arg(b);
    }
    cmd.arg(flag).arg(&img);
    cmd.arg("--debugcon").arg(format!("file:{}", log.display()));
    cmd.arg("--serial").arg(format!("file:{}", serial.display()));
    cmd.args(extra);
    let out = cmd.output().unwrap();
    let console = std::fs::read_to_string(&log).unwrap_or_default();
    let serial = std::fs::read_to_string(&serial).unwrap_or_default();
    std::fs::remove_dir_all(&dir).ok();
    Some(Run { status: out.status.code(), console, serial, stderr: String::from_utf8_lossy(&out.stderr).into_owned() })
}

/// Boot and require exit value 0 (status 1) and `message` on the console.
fn expect_pass(fw: Firmware, flag: &str, boot_dev: &str, image: &[u8], message: &str) -> Option<Run> {
    let r = boot(fw, flag, boot_dev, image, &[])?;
    assert!(r.console.contains(message), "{fw:?} {flag}: console:\n{}\nstderr: {}", r.console, r.stderr);
    assert_eq!(r.status, Some(1), "{fw:?} {flag}: console:\n{}\nstderr: {}", r.console, r.stderr);
    Some(r)
}

// ---- booting the existing boot images ------------------------------------

#[test]
fn own_bios_boots_a_hard_disk_and_reads_chs_and_lba() {
    use ferrite_test_roms::programs::bootdisk;
    let r = expect_pass(Firmware::Own, "--hda", "c", &bootdisk::image(), bootdisk::MESSAGE).unwrap();
    assert!(r.console.contains("ferrite BIOS"), "{}", r.console);
    assert!(r.console.contains("Booting from Hard Disk"), "{}", r.console);
    assert!(r.serial.contains("Booting from Hard Disk"), "teletype text reaches the serial sink: {}", r.serial);
}

#[test]
fn own_bios_boots_a_floppy() {
    use ferrite_test_roms::programs::bootfloppy;
    expect_pass(Firmware::Own, "--fda", "a", &bootfloppy::image(), bootfloppy::MESSAGE);
}

#[test]
fn own_bios_boots_an_el_torito_cd() {
    use ferrite_test_roms::programs::bootcd;
    expect_pass(Firmware::Own, "--cdrom", "d", &bootcd::image(), bootcd::MESSAGE);
}

#[test]
fn own_bios_reports_no_bootable_device_and_halts() {
    let out = Command::new(env!("CARGO_BIN_EXE_ferrite"))
        .args(["run", "--no-pacing", "--timeout", "20", "--debugcon", "stdio"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("ferrite BIOS") && text.contains("No bootable device."), "{text}");
    assert_eq!(out.status.code(), Some(0), "halts for good: the run ends");
}

// ---- the service test programs -------------------------------------------

use ferrite_test_roms::programs::bios_rt::Media;

/// Boot program `name` built for `media` and require every check to pass.
fn check_program(fw: Firmware, media: Media, name: &str, image: &[u8]) {
    check_program_with(fw, media, name, image, &[]);
}

fn check_program_with(fw: Firmware, media: Media, name: &str, image: &[u8], extra: &[&str]) {
    let (flag, dev) = media.flags();
    let Some(r) = boot(fw, flag, dev, image, extra) else { return };
    let done = format!("done {name}");
    assert!(
        r.console.contains(&done) && !r.console.contains("FAIL") && r.status == Some(1),
        "{name} on {media:?} with {fw:?}: status {:?}\nconsole:\n{}\nstderr: {}",
        r.status,
        r.console,
        r.stderr
    );
}

const ALL_MEDIA: [Media; 5] = [Media::Floppy, Media::HardDisk, Media::Cd, Media::CdFloppy, Media::CdHardDisk];

#[test]
fn bios_disk_with_the_own_bios() {
    use ferrite_test_roms::programs::bios_disk;
    for media in ALL_MEDIA {
        check_program(Firmware::Own, media, "bios_disk", &bios_disk::image(media));
    }
}

#[test]
fn bios_disk_with_seabios() {
    use ferrite_test_roms::programs::bios_disk;
    for media in ALL_MEDIA {
        check_program(Firmware::SeaBios, media, "bios_disk", &bios_disk::image(media));
    }
}

/// The media every service program runs from, with either BIOS.
const MEDIA: [Media; 3] = [Media::Floppy, Media::HardDisk, Media::Cd];

macro_rules! service_tests {
    ($own:ident, $sea:ident, $prog:ident) => {
        #[test]
        fn $own() {
            use ferrite_test_roms::programs::$prog;
            for media in MEDIA {
                check_program(Firmware::Own, media, stringify!($prog), &$prog::image(media));
            }
        }

        #[test]
        fn $sea() {
            use ferrite_test_roms::programs::$prog;
            for media in MEDIA {
                check_program(Firmware::SeaBios, media, stringify!($prog), &$prog::image(media));
            }
        }
    };
}

service_tests!(bios_mem_with_the_own_bios, bios_mem_with_seabios, bios_mem);
service_tests!(bios_kbd_with_the_own_bios, bios_kbd_with_seabios, bios_kbd);
service_tests!(bios_time_with_the_own_bios, bios_time_with_seabios, bios_time);
service_tests!(bios_pci_with_the_own_bios, bios_pci_with_seabios, bios_pci);

#[test]
fn bios_video_with_the_own_bios() {
    use ferrite_test_roms::programs::bios_video;
    for media in MEDIA {
        check_program(Firmware::Own, media, "bios_video", &bios_video::image(media));
    }
    let (flag, dev) = Media::HardDisk.flags();
    let r = boot(Firmware::Own, flag, dev, &bios_video::image(Media::HardDisk), &[]).unwrap();
    assert!(r.console.contains(bios_video::MIRROR), "teletype output on the debug console:\n{}", r.console);
    assert!(r.serial.contains(bios_video::MIRROR), "and on the serial sink:\n{}", r.serial);
}

#[test]
fn bios_video_with_seabios() {
    // SeaBIOS's INT 10h is its VGA BIOS's: SeaVGABIOS for QEMU's standard
    // VGA, found behind the adapter's PCI ROM BAR, on ferrite's VGA.
    use ferrite_test_roms::programs::bios_video;
    let Some(vga) = guest_file("seabios-images/vgabios-stdvga.bin") else {
        println!("SKIPPED: SeaBIOS's VGA BIOS not fetched (run scripts/fetch-guests)");
        return;
    };
    let extra = ["--vga-bios", vga.to_str().unwrap()];
    for media in [Media::Floppy, Media::HardDisk] {
        check_program_with(Firmware::SeaBios, media, "bios_video", &bios_video::image(media), &extra);
    }
}

#[test]
fn bios_misc_with_the_own_bios() {
    use ferrite_test_roms::programs::bios_misc;
    for media in MEDIA {
        check_program(Firmware::Own, media, "bios_misc", &bios_misc::image(media));
    }
    let (flag, dev) = Media::HardDisk.flags();
    let r = boot(Firmware::Own, flag, dev, &bios_misc::image(Media::HardDisk), &[]).unwrap();
    assert!(r.serial.contains(bios_misc::SERIAL), "INT 14h output on the serial sink:\n{}", r.serial);
}

#[test]
fn bios_misc_with_seabios() {
    use ferrite_test_roms::programs::bios_misc;
    for media in MEDIA {
        check_program(Firmware::SeaBios, media, "bios_misc", &bios_misc::image(media));
    }
    let (flag, dev) = Media::HardDisk.flags();
    if let Some(r) = boot(Firmware::SeaBios, flag, dev, &bios_misc::image(Media::HardDisk), &[]) {
        assert!(r.serial.contains(bios_misc::SERIAL), "INT 14h output on the serial sink:\n{}", r.serial);
    }
}

// ---- option ROMs and real guests ------------------------------------------

#[test]
fn own_bios_runs_a_vga_option_rom_mapped_with_vga_bios() {
    let Some(vga) = guest_file("seabios-images/vgabios-isavga.bin") else {
        println!("SKIPPED: SeaBIOS's VGA BIOS not fetched (run scripts/fetch-guests)");
        return;
    };
    let out = Command::new(env!("CARGO_BIN_EXE_ferrite"))
        .args(["run", "--no-pacing", "--timeout", "20", "--debugcon", "stdio", "--vga-bios"])
        .arg(&vga)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    // SeaVGABIOS logs to port 0x402, which the board sends to the debug console.
    assert!(text.contains("SeaVGABIOS") && text.contains("No bootable device."), "{text}");
}

#[test]
fn a_vga_bios_without_a_signature_is_refused() {
    let dir = std::env::temp_dir().join(format!("ferrite-vgarom-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let rom = dir.join("rom.bin");
    std::fs::write(&rom, vec![0u8; 4096]).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_ferrite")).args(["run", "--vga-bios"]).arg(&rom).output().unwrap();
    std::fs::remove_dir_all(&dir).ok();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("55h AAh"), "{err}");
}
