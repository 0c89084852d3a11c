//! The `ferrite` binary as a user runs it.

use std::process::Command;

fn ferrite() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ferrite"))
}

#[test]
fn run_boots_a_program_on_the_board_and_exits_through_the_exit_device() {
    let out = ferrite()
        .args(["run", "--program", "timer", "--serial", "stdio", "--debug-exit", "--no-pacing", "--timeout", "60"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "timer: 10 ticks\n");
    // Exit value 0 through isa-debug-exit semantics: status (0 << 1) | 1.
    assert_eq!(out.status.code(), Some(1), "stderr: {}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn a_missing_bios_image_is_a_clear_error_naming_the_file() {
    let out = ferrite().args(["run", "--bios", "/nonexistent/bios.bin"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/nonexistent/bios.bin"), "{err}");
}

#[test]
fn a_bios_image_of_the_wrong_size_is_refused() {
    let dir = std::env::temp_dir().join(format!("ferrite-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("small.bin");
    std::fs::write(&path, [0u8; 1000]).unwrap();
    let out = ferrite().args(["run", "--bios"]).arg(&path).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("small.bin") && err.contains("1000 bytes"), "{err}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn the_default_demo_boots_the_own_bios_and_runs_every_builtin_program() {
    let out = ferrite().output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    for expected in [
        "ferrite BIOS",
        "Booting from Floppy",
        "CPU         GenuineIntel family 6",
        "PCI 00:01.1  8086:7010  class 0101",
        "sqrt(2) * 10000 = 14142",
        "6542 primes below 65536",
        "-- boot demo: passed",
    ] {
        assert!(text.contains(expected), "missing {expected:?}:\n{text}");
    }
    for p in ferrite_test_roms::programs::all() {
        assert!(text.contains(&format!("  {:8} passed", p.name)), "{}:\n{text}", p.name);
    }
    assert!(text.trim_end().ends_with("all passed"), "{text}");
}

#[test]
fn a_multiboot_kernel_boots_with_its_command_line_and_module() {
    let dir = std::env::temp_dir().join(format!("ferrite-mb-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let kernel = dir.join("kernel.elf");
    std::fs::write(&kernel, ferrite_test_roms::programs::multiboot::image()).unwrap();
    let module = dir.join("module.bin");
    std::fs::write(&module, b"module-data\0").unwrap();
    let out = ferrite()
        .args(["run", "--no-pacing", "--timeout", "20", "--debug-exit", "--debugcon", "stdio", "--kernel"])
        .arg(&kernel)
        .arg("--initrd")
        .arg(&module)
        .args(["--append", "mb-args here"])
        .output()
        .unwrap();
    std::fs::remove_dir_all(&dir).ok();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("ferrite BIOS"), "POST runs first:\n{text}");
    assert!(
        text.contains("multiboot: cmdline=mb-args here module=module-data mem_upper=ok\n"),
        "{text}\nstderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(1), "exit value 0 through 0xF4");
}

#[test]
fn a_kernel_that_is_neither_bzimage_nor_multiboot_is_refused_by_name() {
    let dir = std::env::temp_dir().join(format!("ferrite-badk-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let kernel = dir.join("not-a-kernel.bin");
    std::fs::write(&kernel, vec![0x90u8; 20000]).unwrap();
    let out = ferrite().args(["run", "--kernel"]).arg(&kernel).output().unwrap();
    std::fs::remove_dir_all(&dir).ok();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("not-a-kernel.bin") && err.contains("multiboot"), "{err}");
}

#[test]
fn ctrl_c_stops_the_machine_cleanly_with_the_guests_disk_writes_in_the_image() {
    // A boot sector that writes itself to CHS 0/0/5 (LBA 4) through INT 13h
    // and then spins forever: the run only ends by SIGINT.
    let mut boot = vec![0u8; 512];
    let code = [
        0x31, 0xC0, // xor ax, ax
        0x8E, 0xD8, // mov ds, ax
        0x8E, 0xC0, // mov es, ax
        0xBB, 0x00, 0x7C, // mov bx, 0x7C00
        0xB8, 0x01, 0x03, // mov ax, 0x0301 (write one sector)
        0xB9, 0x05, 0x00, // mov cx, 0x0005 (cylinder 0, sector 5)
        0x30, 0xF6, // xor dh, dh (head 0; DL = boot drive)
        0xCD, 0x13, // int 13h
        0xEB, 0xFE, // jmp $
    ];
    boot[..code.len()].copy_from_slice(&code);
    boot[0x100..0x108].copy_from_slice(b"CTRL-C!!");
    boot[510] = 0x55;
    boot[511] = 0xAA;
    let mut disk = vec![0u8; 1 << 20];
    disk[..512].copy_from_slice(&boot);
    let dir = std::env::temp_dir().join(format!("ferrite-sigint-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let img = dir.join("disk.img");
    std::fs::write(&img, &disk).unwrap();
    let mut child = ferrite()
        .args(["run", "--timeout", "60", "--hda"])
        .arg(&img)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_secs(2));
    let killed = Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(killed.success());
    let status = child.wait().unwrap();
    let after = std::fs::read(&img).unwrap();
    std::fs::remove_dir_all(&dir).ok();
    assert_eq!(status.code(), Some(130), "Ctrl-C ends the run with status 130");
    assert_eq!(&after[4 * 512..5 * 512], &boot[..], "the guest's write is in the image");
    assert_eq!(after.len(), disk.len(), "the image keeps its size");
}
