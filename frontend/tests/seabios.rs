//! SeaBIOS (Debian's `seabios` package, fetched by `scripts/fetch-guests`)
//! runs its whole POST on ferrite's CPU and board: PCI enumeration through
//! the i440FX/PIIX3, shadow RAM through PAM, PIT-calibrated timing, the PS/2
//! keyboard, and finally reports that there is nothing to boot.

use std::path::PathBuf;
use std::process::Command;

fn seabios() -> Option<PathBuf> {
    let cache = std::env::var_os("FERRITE_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../cache/guests"));
    let p = cache.join("seabios-images/bios.bin");
    p.exists().then_some(p)
}

#[test]
fn seabios_posts_and_finds_no_bootable_device() {
    let Some(bios) = seabios() else {
        println!("SKIPPED: SeaBIOS not fetched (run scripts/fetch-guests)");
        return;
    };
    let log = std::env::temp_dir().join(format!("ferrite-seabios-{}.log", std::process::id()));
    let out = Command::new(env!("CARGO_BIN_EXE_ferrite"))
        .args(["run", "--no-pacing", "--timeout", "20", "--bios"])
        .arg(&bios)
        .arg("--debugcon")
        .arg(format!("file:{}", log.display()))
        .output()
        .unwrap();
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    std::fs::remove_file(&log).ok();
    // SeaBIOS retries after 60 s of (virtual) time and reboots forever, so
    // the run ends by --timeout.
    assert_eq!(out.status.code(), Some(124), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    for expected in [
        "SeaBIOS (version",
        "RamSize: 0x02000000 [cmos]",
        "PCI: init bdf=00:00.0 id=8086:1237",
        "PCI: init bdf=00:01.0 id=8086:7000",
        "PS2 keyboard initialized",
        "No bootable device.",
        "Attempting a hard reboot",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in the SeaBIOS log:\n{text}");
    }
}

/// Boot SeaBIOS with one drive image attached (`flag` is --hda, --cdrom or
/// --fda) and check its log and the exit status the boot code chose.
fn boot_and_expect(flag: &str, boot: &str, image: Vec<u8>, banner: &str, message: &str) {
    let Some(bios) = seabios() else {
        println!("SKIPPED: SeaBIOS not fetched (run scripts/fetch-guests)");
        return;
    };
    let dir = std::env::temp_dir().join(format!("ferrite-boot{}-{}", flag.trim_start_matches('-'), std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let img = dir.join("image");
    std::fs::write(&img, image).unwrap();
    let log = dir.join("debugcon.log");
    let out = Command::new(env!("CARGO_BIN_EXE_ferrite"))
        .args(["run", "--no-pacing", "--timeout", "30", "--debug-exit", "--boot", boot, "--bios"])
        .arg(&bios)
        .arg(flag)
        .arg(&img)
        .arg("--debugcon")
        .arg(format!("file:{}", log.display()))
        .output()
        .unwrap();
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    std::fs::remove_dir_all(&dir).ok();
    assert!(text.contains(banner), "SeaBIOS log:\n{text}");
    assert!(text.contains(message), "SeaBIOS log:\n{text}");
    // Exit value 0 from the boot code: status (0 << 1) | 1.
    assert_eq!(out.status.code(), Some(1), "stderr: {}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn seabios_boots_a_hard_disk_and_its_int13_services_read_chs_and_lba() {
    use ferrite_test_roms::programs::bootdisk;
    boot_and_expect("--hda", "c", bootdisk::image(), "Booting from Hard Disk", bootdisk::MESSAGE);
}

#[test]
fn seabios_boots_an_el_torito_cd_through_atapi() {
    use ferrite_test_roms::programs::bootcd;
    boot_and_expect("--cdrom", "d", bootcd::image(), "Booting from DVD/CD", bootcd::MESSAGE);
}

#[test]
fn seabios_boots_a_floppy_through_the_fdc_and_dma_channel_2() {
    use ferrite_test_roms::programs::bootfloppy;
    boot_and_expect("--fda", "a", bootfloppy::image(), "Booting from Floppy", bootfloppy::MESSAGE);
}
