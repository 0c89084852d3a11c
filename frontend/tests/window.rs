//! The real window, under a virtual X server (Xvfb, with Mesa's software
//! Vulkan driver for wgpu): ferrite runs the key-echo program with
//! `--display window`; the window's content (read back with `xwd`) must
//! equal the headless render of the same screen, and keys typed into the
//! window (`xdotool`, through the XTEST extension like a real keyboard)
//! must reach the guest, which echoes them to the debug console and ends
//! the run on `q`.
//!
//! Needs `Xvfb`, `xdotool` and `xwd` (Debian: xvfb, xdotool, x11-apps,
//! mesa-vulkan-drivers); without them the test says SKIPPED.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::read_png;

fn have(tool: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A virtual X server, stopped on drop.
struct Xvfb {
    child: Child,
    display: String,
}

impl Xvfb {
    fn start() -> Xvfb {
        let n = 90 + std::process::id() % 100;
        let display = format!(":{n}");
        let child = Command::new("Xvfb")
            .args([display.as_str(), "-screen", "0", "1280x1024x24", "-nolisten", "tcp"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("Xvfb starts");
        let socket = PathBuf::from(format!("/tmp/.X11-unix/X{n}"));
        let t = Instant::now();
        while !socket.exists() && t.elapsed() < Duration::from_secs(20) {
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(socket.exists(), "Xvfb did not come up on {display}");
        Xvfb { child, display }
    }
}

impl Drop for Xvfb {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Decode an XWD dump (ZPixmap, 24/32 bits per pixel) into (width,
/// height, RGB bytes).
fn read_xwd(data: &[u8]) -> (u32, u32, Vec<u8>) {
    let be = |i: usize| u32::from_be_bytes(data[i * 4..i * 4 + 4].try_into().unwrap());
    let (header_size, format, width, height) = (be(0), be(2), be(4), be(5));
    let (byte_order, bpp, bytes_per_line) = (be(7), be(11), be(12));
    let (rmask, gmask, bmask, ncolors) = (be(14), be(15), be(16), be(19));
    assert_eq!(format, 2, "xwd: not a ZPixmap");
    assert_eq!(bpp, 32, "xwd: {bpp} bits per pixel");
    let start = header_size as usize + ncolors as usize * 12;
    let shift = |m: u32| m.trailing_zeros();
    let mut rgb = Vec::with_capacity((width * height * 3) as usize);
    for y in 0..height as usize {
        for x in 0..width as usize {
            let o = start + y * bytes_per_line as usize + x * 4;
            let b: [u8; 4] = data[o..o + 4].try_into().unwrap();
            let p = if byte_order == 0 { u32::from_le_bytes(b) } else { u32::from_be_bytes(b) };
            rgb.push(((p & rmask) >> shift(rmask)) as u8);
            rgb.push(((p & gmask) >> shift(gmask)) as u8);
            rgb.push(((p & bmask) >> shift(bmask)) as u8);
        }
    }
    (width, height, rgb)
}

fn write_png(path: &Path, w: u32, h: u32, rgb: &[u8]) {
    let file = std::fs::File::create(path).unwrap();
    let mut enc = png::Encoder::new(std::io::BufWriter::new(file), w, h);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    enc.write_header().unwrap().write_image_data(rgb).unwrap();
}

fn xdotool(display: &str, args: &[&str]) -> String {
    let out = Command::new("xdotool").env("DISPLAY", display).args(args).output().expect("xdotool runs");
    assert!(out.status.success(), "xdotool {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn the_window_shows_the_guest_and_passes_keys_to_it() {
    let missing: Vec<_> = ["Xvfb", "xdotool", "xwd"].into_iter().filter(|t| !have(t)).collect();
    if !missing.is_empty() {
        println!(
            "SKIPPED: {} not installed (apt-get install xvfb xdotool x11-apps mesa-vulkan-drivers)",
            missing.join(", ")
        );
        return;
    }
    let dir = std::env::temp_dir().join(format!("ferrite-window-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let img = dir.join("keyecho.img");
    std::fs::write(&img, ferrite_test_roms::programs::vga::key_echo_image()).unwrap();

    // The headless picture of the waiting program.
    let reference = dir.join("reference.png");
    let out = Command::new(env!("CARGO_BIN_EXE_ferrite"))
        .args(["run", "--display", "none", "--boot", "a", "--timeout", "3", "--fda"])
        .arg(&img)
        .arg("--screenshot-on-exit")
        .arg(&reference)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(124), "headless run: {}", String::from_utf8_lossy(&out.stderr));

    let x = Xvfb::start();
    let log = dir.join("debugcon.log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_ferrite"))
        .env("DISPLAY", &x.display)
        .env_remove("WAYLAND_DISPLAY")
        .args(["run", "--display", "window", "--boot", "a", "--debug-exit", "--timeout", "120", "--fda"])
        .arg(&img)
        .arg("--debugcon")
        .arg(format!("file:{}", log.display()))
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let t = Instant::now();
    while !std::fs::read_to_string(&log).unwrap_or_default().contains("keyecho: ready") {
        assert!(t.elapsed() < Duration::from_secs(60), "the guest did not start in the window");
        if let Ok(Some(status)) = child.try_wait() {
            let mut err = String::new();
            use std::io::Read;
            child.stderr.take().unwrap().read_to_string(&mut err).ok();
            panic!("ferrite ended early ({status}): {err}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let id = xdotool(&x.display, &["search", "--sync", "--name", "^ferrite"]);
    let id = id.lines().next().unwrap().to_string();
    // A few frames later the window shows the screen; compare it with the
    // headless render stretched to 4:3 as the window shows it (rows
    // repeated; 1:1 scale, centre any border).
    let (rw, h0, flat) = read_png(&reference);
    let rh = rw * 3 / 4;
    let want: Vec<u8> = (0..rh)
        .flat_map(|y| {
            let src = (y as u64 * h0 as u64 / rh as u64) as usize;
            flat[src * rw as usize * 3..][..rw as usize * 3].to_vec()
        })
        .collect();
    let t = Instant::now();
    loop {
        std::thread::sleep(Duration::from_millis(300));
        let xwd = Command::new("xwd").env("DISPLAY", &x.display).args(["-id", &id, "-silent"]).output().unwrap();
        assert!(xwd.status.success(), "xwd failed");
        let (w, h, got) = read_xwd(&xwd.stdout);
        if w >= rw && h >= rh {
            let (ox, oy) = ((w - rw) / 2, (h - rh) / 2);
            let mut differ = 0;
            for y in 0..rh {
                let g = &got[(((y + oy) * w + ox) * 3) as usize..][..(rw * 3) as usize];
                let r = &want[(y * rw * 3) as usize..][..(rw * 3) as usize];
                differ += g.chunks(3).zip(r.chunks(3)).filter(|(a, b)| a != b).count();
            }
            if differ == 0 {
                break;
            }
            let seen = dir.join("window.png");
            write_png(&seen, w, h, &got);
            let last = format!(
                "window {w}x{h}: {differ} pixels differ from the headless picture {}; the window showed {}",
                reference.display(),
                seen.display()
            );
            assert!(t.elapsed() < Duration::from_secs(30), "{last}");
        } else {
            assert!(t.elapsed() < Duration::from_secs(30), "window {w}x{h} smaller than the picture {rw}x{rh}");
        }
    }
    // Keys: focus the window, type through XTEST.
    xdotool(&x.display, &["windowfocus", "--sync", &id]);
    xdotool(&x.display, &["type", "--delay", "60", "hi q"]);
    let t = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(t.elapsed() < Duration::from_secs(60), "the guest did not end after 'q'");
        std::thread::sleep(Duration::from_millis(100));
    };
    let console = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(console.contains("hi q"), "typed keys on the guest's console: {console:?}");
    assert_eq!(status.code(), Some(1), "exit through port F4h with 0");
    std::fs::remove_dir_all(&dir).ok();
}
