//! Debian's i386 kernel with a busybox initramfs (both fetched and built by
//! `scripts/fetch-guests`) boots to its init's marker line and halts:
//!
//! 1. with `--kernel` on ferrite's own BIOS,
//! 2. from the SYSLINUX hard-disk image on the own BIOS,
//! 3. from the same disk on SeaBIOS, and
//! 4. from a GRUB rescue CD on the own BIOS,
//!
//! all with the same disk image attached as the primary master and a CD in
//! the secondary master. The init loads ata_piix, sd_mod, sr_mod and vfat
//! from the initramfs and bumps a counter file on the disk's FAT partition;
//! each later boot (a new machine on the same image, i.e. after a power
//! cycle) must read back what the one before wrote (none, 1, 2, 3).
//!
//! The boot logs must show the devices detected without errors or timeouts.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

mod common;

fn guests() -> Option<PathBuf> {
    let cache = common::guest_cache();
    let need = ["linux/vmlinuz", "linux/initrd.gz", "linux/disk.img", "seabios-images/bios.bin"];
    need.iter().all(|f| cache.join(f).exists()).then_some(cache)
}

/// A "newc" cpio archive of (path, mode, contents), with its trailer.
fn cpio(files: &[(&str, u32, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    let pad = |out: &mut Vec<u8>| out.resize(out.len().next_multiple_of(4), 0);
    let entries = files.iter().copied().chain(std::iter::once(("TRAILER!!!", 0, &[][..])));
    for (k, (name, mode, data)) in entries.enumerate() {
        let fields = [k as u32 + 1, mode, 0, 0, 1, 0, data.len() as u32, 0, 0, 0, 0, name.len() as u32 + 1, 0];
        out.extend_from_slice(b"070701");
        for f in fields {
            out.extend_from_slice(format!("{f:08X}").as_bytes());
        }
        out.extend_from_slice(name.as_bytes());
        out.push(0);
        pad(&mut out);
        out.extend_from_slice(data);
        pad(&mut out);
    }
    out
}

/// Run an i386 executable on the host; its stdout, or None when the host
/// cannot run it.
fn run_natively(dir: &Path, program: &[u8]) -> Option<String> {
    use std::os::unix::fs::PermissionsExt;
    if !cfg!(all(target_os = "linux", any(target_arch = "x86", target_arch = "x86_64"))) {
        return None;
    }
    let path = dir.join("sse2_user");
    std::fs::write(&path, program).ok()?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).ok()?;
    let out = Command::new(&path).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Size of a screenshot and how many of its pixels are not black.
fn picture_stats(png_path: &Path) -> (u32, u32, usize) {
    let (w, h, rgb) = common::read_png(png_path);
    let lit = rgb.chunks(3).filter(|p| p.iter().any(|&v| v != 0)).count();
    (w, h, lit)
}

/// The text a VGA text-mode screenshot (9x16 cells, 80x25) shows: each
/// cell's foreground pixels matched against the own BIOS's 8x16 font.
/// Unknown cells read as '?'.
fn screen_text(png_path: &Path) -> Vec<String> {
    let (w, h, rgb) = common::read_png(png_path);
    assert_eq!((w, h), (720, 400), "{}: not an 80x25 text screen", png_path.display());
    let font = ferrite_bios::own::font::font_8x16();
    let mut glyphs = std::collections::HashMap::new();
    // Printable ASCII first, so shapes shared with other codes read as ASCII.
    for ch in (0x20..0x7F).chain(0x00..0x20).chain(0x7F..=0xFF) {
        let g: [u8; 16] = font[ch * 16..ch * 16 + 16].try_into().unwrap();
        glyphs.entry(g).or_insert(ch as u8);
    }
    let lit = |x: usize, y: usize| rgb[(y * 720 + x) * 3..][..3].iter().map(|&v| v as u32).sum::<u32>() > 0;
    (0..25)
        .map(|row| {
            (0..80)
                .map(|col| {
                    let mut g = [0u8; 16];
                    for (r, b) in g.iter_mut().enumerate() {
                        for k in 0..8 {
                            if lit(col * 9 + k, row * 16 + r) {
                                *b |= 0x80 >> k;
                            }
                        }
                    }
                    match glyphs.get(&g) {
                        Some(&c) if (0x20..0x7F).contains(&c) => c as char,
                        Some(_) => ' ',
                        None => '?',
                    }
                })
                .collect::<String>()
        })
        .collect()
}

/// Run ferrite with `args`, console on COM1 into a file; returns the exit
/// status code and the console text.
fn boot(dir: &Path, name: &str, args: &[&std::ffi::OsStr]) -> (Option<i32>, String) {
    let log = dir.join(format!("{name}.log"));
    let t = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_ferrite"))
        .args(["run", "-m", "128", "--no-pacing", "--timeout", "1500", "--stats"])
        .args(args)
        .arg("--serial")
        .arg(format!("file:{}", log.display()))
        .output()
        .unwrap();
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let marker = text.find("FERRITE-MARKER").is_some();
    println!(
        "{name}: {:.1} s wall, marker {}, status {:?}; {}",
        t.elapsed().as_secs_f64(),
        if marker { "reached" } else { "NOT reached" },
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).trim()
    );
    (out.status.code(), text)
}

fn expect_lines(name: &str, text: &str, expected: &[&str]) {
    for e in expected {
        assert!(text.contains(e), "{name}: missing {e:?} in the boot log:\n{text}");
    }
    for line in text.lines() {
        let l = line.to_ascii_lowercase();
        let storage = ["ata1", "ata2", "libata", "ata_piix", "scsi", "sd 0:", "sr 1:", "[sda]", "[sr0]"]
            .iter()
            .any(|w| l.contains(w));
        let bad = ["timeout", "timed out", "failed", "error", "exception emask"].iter().any(|w| l.contains(w));
        assert!(!(storage && bad), "{name}: storage problem in the boot log: {line}\n{text}");
        assert!(!line.contains("FERRITE-ERROR"), "{name}: {line}\n{text}");
        assert!(!l.contains("kernel panic") && !l.contains("oops"), "{name}: {line}\n{text}");
    }
}

/// What every boot must show: the platform devices found and the init's
/// lines.
const DEVICES: &[&str] = &[
    "tsc: Detected",
    "clocksource: Switched to clocksource tsc",
    "rtc_cmos rtc_cmos: setting system clock",
    "serial8250: ttyS0 at I/O 0x3f8 (irq = 4, base_baud = 115200) is a 16550A",
    "serio: i8042 KBD port at 0x60,0x64 irq 1",
    "serio: i8042 AUX port at 0x60,0x64 irq 12",
    "pci 0000:00:00.0: [8086:1237]",
    "pci 0000:00:01.0: [8086:7000]",
    "pci 0000:00:01.1: [8086:7010]",
    "scsi host0: ata_piix",
    "ata1.00: ATA-",
    "ata1.00: 131072 sectors",
    "ata2.00: ATAPI:",
    "sd 0:0:0:0: [sda] 131072 512-byte logical blocks",
    "sr 1:0:0:0: [sr0]",
    "FERRITE-MARKER: init running on",
    "FERRITE-JOB-START",
    "FERRITE-JOB: loop=20000 gzip-sha256=e8b0bc38e7082b0687f3adc6b6139fab62394669f8caaa9814be034d32abe050 md5=0e10426a1d5bddffcef02f1345787128",
    // The floating-point job's result: QEMU prints the same (and so must a
    // real x87: every step is a correctly rounded operation).
    "FERRITE-FP: 1.250399694232984e+02",
    "FERRITE-BLOCK: sda1",
    "FERRITE-BLOCK: sr0",
    "FERRITE-DONE",
    "reboot: System halted",
];

#[test]
fn debian_linux_boots_with_kernel_and_from_disk_on_both_bioses() {
    let Some(cache) = guests() else {
        println!(
            "SKIPPED: the Debian kernel, initramfs, boot disk or SeaBIOS are not fetched (run scripts/fetch-guests)"
        );
        return;
    };
    let dir = std::env::temp_dir().join(format!("ferrite-linux-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let disk = dir.join("disk.img");
    std::fs::copy(cache.join("linux/disk.img"), &disk).unwrap();
    // Any ISO 9660 image does for the drive: the CD boot test's.
    let cd = dir.join("cd.iso");
    std::fs::write(&cd, ferrite_test_roms::programs::bootcd::image()).unwrap();
    let linux = cache.join("linux");
    let (kernel, initrd) = (linux.join("vmlinuz"), linux.join("initrd.gz"));

    let os = |s: &'static str| std::ffi::OsStr::new(s);
    // A direct kernel boot with the disk and the CD.
    let kernel_args = |kernel: &std::path::Path, initrd: &std::path::Path, append: &str| {
        let args = [("--kernel", kernel), ("--initrd", initrd), ("--hda", &disk), ("--cdrom", &cd)];
        let mut v: Vec<std::ffi::OsString> = vec!["--append".into(), append.into()];
        for (flag, path) in args {
            v.push(flag.into());
            v.push(path.as_os_str().into());
        }
        v
    };
    let shot = dir.join("own-bios-kernel.png");
    let mut args = kernel_args(&kernel, &initrd, "console=tty0 console=ttyS0");
    args.extend(["--screenshot-on-exit".into(), shot.as_os_str().into()]);
    let args: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_os_str()).collect();
    let (status, text) = boot(&dir, "own-bios-kernel", &args);
    // The kernel's console on the VGA text screen (vgacon, tty0): the
    // picture read back cell by cell against the BIOS font.
    let screen = screen_text(&shot);
    for want in ["Run /init as init process", "reboot: System halted"] {
        assert!(screen.iter().any(|l| l.contains(want)), "VGA screen lacks {want:?}:\n{}", screen.join("\n"));
    }
    expect_lines("own BIOS --kernel", &text, DEVICES);
    expect_lines(
        "own BIOS --kernel",
        &text,
        &["FERRITE-DISK: /dev/sda1 counter=none", "FERRITE-CPU: fxsr mmx (end)", "x87 FPU will use FXSAVE"],
    );
    // `halt -f`: the CPU stops with interrupts off, the run ends cleanly.
    assert_eq!(status, Some(0), "own BIOS --kernel: exit status");

    // Power cycle, and the own BIOS boots the disk: SYSLINUX through INT 13h
    // extensions, INT 10h/16h/1Ah, then Linux's real-mode setup (E820h,
    // EDD, A20). The counter the first boot wrote must be there.
    let (status, text) = boot(&dir, "own-bios-disk", &[os("--hda"), disk.as_os_str(), os("--cdrom"), cd.as_os_str()]);
    expect_lines("own BIOS disk boot", &text, DEVICES);
    expect_lines(
        "own BIOS disk boot",
        &text,
        &[
            "ferrite BIOS",
            "SYSLINUX",
            "BIOS-e820: [mem 0x0000000000100000-0x0000000007ffffff] usable",
            "PIIX/ICH IRQ router",
            "FERRITE-DISK: /dev/sda1 counter=1",
        ],
    );
    assert_eq!(status, Some(0), "own BIOS disk boot: exit status");

    // Power cycle onto SeaBIOS, booting the same disk through SYSLINUX, on
    // a Pentium III (Linux sees SSE).
    let seabios = cache.join("seabios-images/bios.bin");
    let (status, text) = boot(
        &dir,
        "seabios-disk",
        &[
            os("--cpu"),
            os("pentium3"),
            os("--bios"),
            seabios.as_os_str(),
            os("--hda"),
            disk.as_os_str(),
            os("--cdrom"),
            cd.as_os_str(),
        ],
    );
    expect_lines("SeaBIOS disk boot", &text, DEVICES);
    expect_lines(
        "SeaBIOS disk boot",
        &text,
        &["SYSLINUX", "FERRITE-DISK: /dev/sda1 counter=2", "FERRITE-CPU: fxsr mmx sse (end)"],
    );
    assert_eq!(status, Some(0), "SeaBIOS disk boot: exit status");

    // Power cycle, and the own BIOS boots GRUB from an El Torito CD (no
    // emulation), which loads the kernel from the CD.
    let grub = linux.join("grub.iso");
    if grub.exists() {
        let (status, text) = boot(
            &dir,
            "own-bios-grub-cd",
            &[os("--cdrom"), grub.as_os_str(), os("--boot"), os("d"), os("--hda"), disk.as_os_str()],
        );
        expect_lines("own BIOS GRUB CD boot", &text, DEVICES);
        expect_lines(
            "own BIOS GRUB CD boot",
            &text,
            &["Booting from CD-ROM", "Booting `linux'", "FERRITE-DISK: /dev/sda1 counter=3"],
        );
        assert_eq!(status, Some(0), "own BIOS GRUB CD boot: exit status");
    } else {
        println!("SKIPPED (GRUB CD boot): {} is not built (run scripts/fetch-guests)", grub.display());
    }

    // The PAE kernel on a Pentium 4: PAE paging with NX from the first
    // instruction of its decompressed kernel on, and a user program in SSE2
    // (appended to the initramfs) whose output must be the host CPU's.
    let pae = cache.join("linux-pae");
    if pae.join("vmlinuz").exists() && pae.join("initrd.gz").exists() {
        let kernel = pae.join("vmlinuz");
        let program = ferrite_test_roms::programs::sse2_user::image();
        let mut bytes = std::fs::read(pae.join("initrd.gz")).unwrap();
        bytes.resize(bytes.len().next_multiple_of(4), 0);
        bytes.extend_from_slice(&cpio(&[("extra", 0o040755, &[]), ("extra/run", 0o100755, &program)]));
        let initrd = dir.join("initrd-pae.img");
        std::fs::write(&initrd, bytes).unwrap();
        // With the Bochs VBE DRM driver: the console moves to a 1024x768
        // framebuffer on the adapter's linear framebuffer.
        let shot = dir.join("pae-kernel.png");
        let mut args = vec![std::ffi::OsString::from("--cpu"), "pentium4".into()];
        args.extend(kernel_args(&kernel, &initrd, "console=tty0 console=ttyS0 ferrite.drm"));
        args.extend(["--screenshot-on-exit".into(), shot.as_os_str().into()]);
        let args: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_os_str()).collect();
        let (status, text) = boot(&dir, "pae-kernel", &args);
        expect_lines("PAE kernel, bochs DRM", &text, &["[drm] Found bochs VGA", "FERRITE-FB: bochs-drmdrmfb 1024,768"]);
        let (w, h, lit) = picture_stats(&shot);
        assert_eq!((w, h), (1024, 768), "the DRM console's picture");
        // Console text on black: a few percent of the pixels are lit.
        assert!(lit > w as usize * h as usize / 200, "the framebuffer console shows no text ({lit} lit pixels)");
        expect_lines("PAE kernel on a Pentium 4", &text, DEVICES);
        expect_lines(
            "PAE kernel on a Pentium 4",
            &text,
            &[
                "NX (Execute Disable) protection: active",
                "-686-pae i686",
                "FERRITE-CPU: fxsr mmx sse sse2 (end)",
                "FERRITE-DISK: /dev/sda1 counter=",
            ],
        );
        assert_eq!(status, Some(0), "PAE kernel: exit status");
        let line = text.lines().find_map(|l| l.trim_end().strip_prefix("FERRITE-EXTRA: "));
        let line = line.unwrap_or_else(|| panic!("PAE kernel: no FERRITE-EXTRA line (the SSE2 program)\n{text}"));
        let n = ferrite_test_roms::programs::sse2_user::OUTPUT_LEN - 1;
        assert!(line.len() == n && line.bytes().all(|b| b.is_ascii_hexdigit()), "SSE2 program printed {line:?}");
        match run_natively(&dir, &program) {
            Some(host) => assert_eq!(line, host.trim_end(), "the SSE2 program's output differs from the host CPU's"),
            None => println!("SKIPPED (SSE2 program vs host): this host does not run i386 executables"),
        }
    } else {
        println!("SKIPPED (PAE kernel): {} is not fetched (run scripts/fetch-guests)", pae.display());
    }
    std::fs::remove_dir_all(&dir).ok();
}
