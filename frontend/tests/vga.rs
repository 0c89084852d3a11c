//! The VGA adapter end to end: the `ferrite` binary boots the project's
//! VGA test program (test-roms `vga`) on the own BIOS once per scene, with
//! the interpreter and with the JIT forced on, saves the picture with
//! `--screenshot-on-exit`, and the picture must equal the checked-in
//! expected image `tests/images/vga-<scene>.png` pixel for pixel.
//!
//! The expected images are the project's own renders of known register
//! programs, each reviewed once by eye. `FERRITE_BLESS=1` rewrites them
//! from the interpreter's run (`-- --test-threads=1`, so the JIT run
//! compares against the new images; review the diff before committing).

use std::path::PathBuf;
use std::process::Command;

use ferrite_test_roms::programs::vga::{self, Scene};

mod common;
use common::{guest_file, read_png};

fn images_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/images")
}

/// Run `scene` and return the path of its screenshot.
fn shoot(scene: Scene, jit: &str) -> PathBuf {
    shoot_with(scene, jit, &[])
}

fn shoot_with(scene: Scene, jit: &str, extra: &[&std::ffi::OsStr]) -> PathBuf {
    let tag = if extra.is_empty() { "own" } else { "ext" };
    let dir = std::env::temp_dir().join(format!("ferrite-vga-{}-{}-{jit}-{tag}", std::process::id(), scene.name()));
    std::fs::create_dir_all(&dir).unwrap();
    let img = dir.join("floppy.img");
    std::fs::write(&img, vga::image(scene)).unwrap();
    let shot = dir.join("shot.png");
    let out = Command::new(env!("CARGO_BIN_EXE_ferrite"))
        .args(["run", "--no-pacing", "--timeout", "60", "--debug-exit", "--boot", "a", "--jit", jit])
        .arg("--fda")
        .arg(&img)
        .arg("--screenshot-on-exit")
        .arg(&shot)
        .args(extra)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{} ({jit}): exit status; stderr:\n{}",
        scene.name(),
        String::from_utf8_lossy(&out.stderr)
    );
    shot
}

fn check(scene: Scene, jit: &str) {
    let shot = shoot(scene, jit);
    let expected = images_dir().join(format!("vga-{}.png", scene.name()));
    if std::env::var_os("FERRITE_BLESS").is_some() && jit == "off" {
        std::fs::create_dir_all(images_dir()).unwrap();
        std::fs::copy(&shot, &expected).unwrap();
    }
    let (w, h, got) = read_png(&shot);
    assert_eq!((w, h), scene.size(), "{}: picture size", scene.name());
    let (ew, eh, want) = read_png(&expected);
    assert_eq!((w, h), (ew, eh), "{}: size differs from {}", scene.name(), expected.display());
    let differ = got.chunks(3).zip(want.chunks(3)).filter(|(a, b)| a != b).count();
    assert_eq!(
        differ,
        0,
        "{} ({jit}): {differ} pixels differ from {}; the run's picture is {}",
        scene.name(),
        expected.display(),
        shot.display()
    );
    std::fs::remove_dir_all(shot.parent().unwrap()).ok();
}

#[test]
fn vga_scenes_match_their_expected_images_interpreted() {
    for scene in Scene::ALL {
        check(scene, "off");
    }
}

#[test]
fn vga_scenes_match_their_expected_images_with_the_jit_forced() {
    for scene in Scene::ALL {
        check(scene, "force");
    }
}

/// The same program on SeaBIOS with SeaVGABIOS (QEMU's standard VGA
/// build) driving ferrite's adapter: every scene's checks pass and its
/// picture has the mode's size; the scenes whose colours do not depend on
/// the BIOS's font or default 256-colour palette (the 16-colour planar
/// modes with the standard EGA palette, the 32-bit VBE mode) equal the
/// own BIOS's pictures.
#[test]
fn vga_scenes_on_seabios_vga_bios() {
    let (Some(bios), Some(vga)) =
        (guest_file("seabios-images/bios.bin"), guest_file("seabios-images/vgabios-stdvga.bin"))
    else {
        println!("SKIPPED: SeaBIOS and its VGA BIOS not fetched (run scripts/fetch-guests)");
        return;
    };
    let extra = [std::ffi::OsStr::new("--bios"), bios.as_os_str(), std::ffi::OsStr::new("--vga-bios"), vga.as_os_str()];
    for scene in Scene::ALL {
        let shot = shoot_with(scene, "on", &extra);
        let (w, h, got) = read_png(&shot);
        assert_eq!((w, h), scene.size(), "{} on SeaVGABIOS: picture size", scene.name());
        if matches!(scene, Scene::Mode0D | Scene::Mode12 | Scene::Vbe) {
            let (_, _, want) = read_png(&images_dir().join(format!("vga-{}.png", scene.name())));
            let differ = got.chunks(3).zip(want.chunks(3)).filter(|(a, b)| a != b).count();
            assert_eq!(differ, 0, "{} on SeaVGABIOS: {differ} pixels differ; picture {}", scene.name(), shot.display());
        }
        std::fs::remove_dir_all(shot.parent().unwrap()).ok();
    }
}
