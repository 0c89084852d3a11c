//! `--display window`: the guest in a desktop window (winit + pixels).
//!
//! One thread: the winit event loop runs the machine in slices between
//! events (`about_to_wait`), paces virtual time to the wall clock by
//! waiting on the event loop instead of sleeping, and redraws at most 60
//! times a second from the adapter's incrementally rendered frame (only
//! the rows that changed are copied).
//!
//! Input: host keys become PS/2 key events by their physical position
//! (winit's `KeyCode`s have the W3C names the keyboard device uses), so
//! the guest's own layout applies. A click in the window captures the
//! mouse (relative motion from raw device events, pointer hidden and
//! locked); **Ctrl+Alt+G** releases it. **Ctrl+Alt+F** toggles full
//! screen, **Ctrl+Alt+S** saves a screenshot (`ferrite-<n>.png` in the
//! working directory), **Ctrl+Alt+A** switches between the 4:3 picture
//! (the default: VGA modes with non-square pixels get rows repeated, as a
//! CRT showed them) and the adapter's pixels 1:1. The picture is scaled
//! by whole multiples to the window. Losing focus releases every key the guest saw
//! pressed, so none stays stuck. The PC speaker plays through the host's
//! audio output while the window is open (`audio.rs`).

use std::collections::BTreeSet;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferrite_devices::ps2::KeyCode as Key;
use pixels::{Pixels, PixelsBuilder, ScalingMode, SurfaceTexture};
use winit::application::ApplicationHandler;
use winit::dpi::PhysicalSize;
use winit::event::{DeviceEvent, DeviceId, ElementState, MouseButton, MouseScrollDelta, WindowEvent};
use winit::event_loop::{ActiveEventLoop, ControlFlow, EventLoop};
use winit::keyboard::{KeyCode, ModifiersState, PhysicalKey};
use winit::window::{CursorGrabMode, Fullscreen, Window, WindowId};

use crate::run::Session;

/// Frames per second drawn at most.
const FPS: u64 = 60;
/// Wall time the machine may run between looks at the event queue.
const SLICE_BUDGET: Duration = Duration::from_millis(8);

/// Run `session` in a window titled after `name` until the guest ends the
/// run or the window is closed. Err when no window can be opened (no
/// display): the caller runs headless instead.
pub fn run(session: &mut Session, name: &str) -> anyhow::Result<ExitCode> {
    let event_loop = EventLoop::new()?;
    event_loop.set_control_flow(ControlFlow::Poll);
    let mut app = App {
        session,
        name: name.to_string(),
        window: None,
        pixels: None,
        status: None,
        error: None,
        mods: ModifiersState::empty(),
        held: BTreeSet::new(),
        captured: false,
        buttons: [false; 3],
        last_frame: Instant::now() - Duration::from_secs(1),
        last_title: Instant::now(),
        last_instret: 0,
        screenshots: 0,
        frame_size: (0, 0),
        full_copy: true,
        aspect: true,
    };
    event_loop.run_app(&mut app)?;
    if let Some(e) = app.error {
        return Err(e);
    }
    Ok(app.status.unwrap_or(ExitCode::SUCCESS))
}

struct App<'s> {
    session: &'s mut Session,
    name: String,
    window: Option<Arc<Window>>,
    pixels: Option<Pixels<'static>>,
    status: Option<ExitCode>,
    /// Opening the window failed (reported to the caller).
    error: Option<anyhow::Error>,
    mods: ModifiersState,
    /// Guest keys currently down.
    held: BTreeSet<Key>,
    captured: bool,
    buttons: [bool; 3],
    last_frame: Instant,
    last_title: Instant,
    last_instret: u64,
    screenshots: u32,
    /// Size of the guest picture the pixel buffer has.
    frame_size: (u32, u32),
    /// Copy the whole picture at the next redraw (the frame's changed rows
    /// were consumed elsewhere, or the buffer is new).
    full_copy: bool,
    /// Stretch VGA modes to the 4:3 of the monitors they were made for.
    aspect: bool,
}

impl App<'_> {
    fn open(&mut self, el: &ActiveEventLoop) -> anyhow::Result<()> {
        // The picture before the firmware programs the adapter is tiny or
        // empty: start at the size of the 80x25 text mode.
        let (w, h) = {
            let f = self.session.m.display();
            if f.width < 320 || f.height < 200 {
                (720, 400)
            } else {
                (f.width, f.height)
            }
        };
        let (w, h) = shown_size(w, h, self.aspect);
        let attrs = Window::default_attributes().with_title(self.title(0.0)).with_inner_size(PhysicalSize::new(w, h));
        let window = Arc::new(el.create_window(attrs)?);
        let size = window.inner_size();
        let surface = SurfaceTexture::new(size.width.max(1), size.height.max(1), window.clone());
        // No vsync wait: the loop paces itself, and presenting must never
        // block the guest (a virtual X server has no vertical blank).
        let mut pixels = PixelsBuilder::new(w, h, surface).enable_vsync(false).build()?;
        pixels.set_scaling_mode(ScalingMode::PixelPerfect);
        self.frame_size = (w, h);
        self.full_copy = true;
        self.window = Some(window);
        // Sound with the window; the machine runs on silently without it.
        self.session.speaker = crate::audio::Speaker::open(&mut self.session.m.pc);
        self.pixels = Some(pixels);
        Ok(())
    }

    fn title(&self, mips: f64) -> String {
        let state = if self.status.is_some() { "stopped" } else { "running" };
        let grab = if self.captured { " — Ctrl+Alt+G releases the mouse" } else { "" };
        format!("ferrite — {} — {state}, {mips:.0} MIPS{grab}", self.name)
    }

    fn finish(&mut self, el: &ActiveEventLoop, status: ExitCode) {
        self.status = Some(status);
        el.exit();
    }

    /// Copy the changed rows of the guest picture into the pixel buffer
    /// and present it.
    fn redraw(&mut self) {
        let (Some(pixels), Some(window)) = (self.pixels.as_mut(), self.window.as_ref()) else { return };
        let f = self.session.m.display();
        if f.width == 0 || f.height == 0 {
            return;
        }
        let (bw, bh) = shown_size(f.width, f.height, self.aspect);
        let resized = (bw, bh) != self.frame_size;
        let full = resized || std::mem::take(&mut self.full_copy);
        if resized {
            if pixels.resize_buffer(bw, bh).is_err() {
                return;
            }
            self.frame_size = (bw, bh);
            // Grow the window to show the new mode at 1:1 at least.
            let cur = window.inner_size();
            if cur.width < bw || cur.height < bh {
                let _ = window.request_inner_size(PhysicalSize::new(bw, bh));
            }
        }
        let w = f.width as usize;
        let dst = pixels.frame_mut();
        // Buffer rows showing the frame's changed rows (all of them after a
        // resize; rows repeat when the picture is stretched to 4:3).
        let (first, end) =
            if full { (0, bh) } else { (f.changed.start * bh / f.height, (f.changed.end * bh).div_ceil(f.height)) };
        for by in first..end.min(bh) {
            let y = (by as u64 * f.height as u64 / bh as u64) as usize;
            let src = &f.pixels[y * w..][..w];
            let d = &mut dst[by as usize * w * 4..][..w * 4];
            for (o, p) in d.chunks_exact_mut(4).zip(src) {
                o.copy_from_slice(&p.to_le_bytes());
            }
        }
        if let Err(e) = pixels.render() {
            tracing::warn!("window: presenting a frame failed: {e}");
        }
    }

    fn set_capture(&mut self, on: bool) {
        let Some(window) = self.window.as_ref() else { return };
        if on {
            let grabbed = window
                .set_cursor_grab(CursorGrabMode::Locked)
                .or_else(|_| window.set_cursor_grab(CursorGrabMode::Confined))
                .is_ok();
            if !grabbed {
                return;
            }
            window.set_cursor_visible(false);
        } else {
            let _ = window.set_cursor_grab(CursorGrabMode::None);
            window.set_cursor_visible(true);
        }
        self.captured = on;
        window.set_title(&self.title(0.0));
    }

    fn release_all_keys(&mut self) {
        for k in std::mem::take(&mut self.held) {
            self.session.m.pc.ps2.key_event(k, false);
        }
        if self.buttons.iter().any(|&b| b) {
            self.buttons = [false; 3];
            self.session.m.pc.ps2.mouse_buttons(false, false, false);
        }
    }

    /// Host shortcuts (Ctrl+Alt+key); true when the key was one.
    fn shortcut(&mut self, code: KeyCode, pressed: bool) -> bool {
        if !(self.mods.control_key() && self.mods.alt_key()) {
            return false;
        }
        match code {
            KeyCode::KeyG | KeyCode::KeyF | KeyCode::KeyS | KeyCode::KeyA if !pressed => true,
            KeyCode::KeyA => {
                self.aspect = !self.aspect;
                self.full_copy = true;
                true
            }
            KeyCode::KeyG => {
                self.set_capture(false);
                true
            }
            KeyCode::KeyF => {
                if let Some(w) = self.window.as_ref() {
                    let full = w.fullscreen().is_some();
                    w.set_fullscreen(if full { None } else { Some(Fullscreen::Borderless(None)) });
                }
                true
            }
            KeyCode::KeyS => {
                self.screenshots += 1;
                let path = std::path::PathBuf::from(format!("ferrite-{}.png", self.screenshots));
                self.full_copy = true;
                match crate::screenshot::write_png(&path, self.session.m.display()) {
                    Ok(()) => eprintln!("ferrite: screenshot saved to {}", path.display()),
                    Err(e) => eprintln!("ferrite: {e:#}"),
                }
                true
            }
            _ => false,
        }
    }
}

impl ApplicationHandler for App<'_> {
    fn resumed(&mut self, el: &ActiveEventLoop) {
        if self.window.is_none() {
            if let Err(e) = self.open(el) {
                self.error = Some(e);
                el.exit();
            }
        }
    }

    fn window_event(&mut self, el: &ActiveEventLoop, _id: WindowId, event: WindowEvent) {
        match event {
            WindowEvent::CloseRequested => self.finish(el, ExitCode::SUCCESS),
            WindowEvent::Resized(size) => {
                tracing::debug!("window: resized to {}x{}", size.width, size.height);
                if let Some(p) = self.pixels.as_mut() {
                    let _ = p.resize_surface(size.width.max(1), size.height.max(1));
                }
                self.full_copy = true;
            }
            WindowEvent::RedrawRequested => self.redraw(),
            WindowEvent::ModifiersChanged(m) => self.mods = m.state(),
            WindowEvent::Focused(false) => {
                self.release_all_keys();
                self.set_capture(false);
            }
            WindowEvent::KeyboardInput { event, .. } => {
                let PhysicalKey::Code(code) = event.physical_key else { return };
                let pressed = event.state == ElementState::Pressed;
                if self.shortcut(code, pressed) {
                    return;
                }
                if event.repeat && pressed {
                    // The guest keyboard repeats by itself (typematic).
                    return;
                }
                if let Some(k) = guest_key(code) {
                    if pressed {
                        self.held.insert(k);
                    } else if !self.held.remove(&k) {
                        return;
                    }
                    self.session.m.pc.ps2.key_event(k, pressed);
                }
            }
            WindowEvent::MouseInput { state, button, .. } => {
                let pressed = state == ElementState::Pressed;
                if !self.captured {
                    if pressed && button == MouseButton::Left {
                        self.set_capture(true);
                    }
                    return;
                }
                let i = match button {
                    MouseButton::Left => 0,
                    MouseButton::Right => 1,
                    MouseButton::Middle => 2,
                    _ => return,
                };
                self.buttons[i] = pressed;
                let [l, r, m] = self.buttons;
                self.session.m.pc.ps2.mouse_buttons(l, r, m);
            }
            WindowEvent::MouseWheel { delta, .. } if self.captured => {
                let notches = match delta {
                    MouseScrollDelta::LineDelta(_, y) => y.round() as i32,
                    MouseScrollDelta::PixelDelta(p) => (p.y / 40.0).round() as i32,
                };
                // Wheel toward the user is positive for the device.
                self.session.m.pc.ps2.mouse_motion(0, 0, -notches);
            }
            _ => {}
        }
    }

    fn device_event(&mut self, _el: &ActiveEventLoop, _id: DeviceId, event: DeviceEvent) {
        if let DeviceEvent::MouseMotion { delta: (dx, dy) } = event {
            if self.captured {
                self.session.m.pc.ps2.mouse_motion(dx.round() as i32, dy.round() as i32, 0);
            }
        }
    }

    fn about_to_wait(&mut self, el: &ActiveEventLoop) {
        if self.status.is_some() || self.window.is_none() {
            return;
        }
        // Run the guest for a while, unless it is ahead of the wall clock.
        let t0 = Instant::now();
        while t0.elapsed() < SLICE_BUDGET {
            if let Some(status) = self.session.slice() {
                self.redraw();
                self.finish(el, status);
                return;
            }
            if self.session.ahead() > Duration::from_millis(1) {
                break;
            }
        }
        let now = Instant::now();
        if now.duration_since(self.last_frame) >= Duration::from_nanos(1_000_000_000 / FPS) {
            self.last_frame = now;
            if let Some(w) = self.window.as_ref() {
                w.request_redraw();
            }
        }
        if now.duration_since(self.last_title) >= Duration::from_millis(500) {
            let secs = now.duration_since(self.last_title).as_secs_f64();
            let n = self.session.m.cpu.instret;
            let mips = n.saturating_sub(self.last_instret) as f64 / secs / 1e6;
            self.last_instret = n;
            self.last_title = now;
            let title = self.title(mips);
            if let Some(w) = self.window.as_ref() {
                w.set_title(&title);
            }
        }
        let ahead = self.session.ahead();
        if ahead > Duration::from_millis(1) {
            el.set_control_flow(ControlFlow::WaitUntil(now + ahead.min(Duration::from_millis(1000 / FPS))));
        } else {
            el.set_control_flow(ControlFlow::Poll);
        }
    }
}

/// The size the window's buffer shows a `w` x `h` picture at: with
/// `aspect`, the VGA modes (at most 720x480) whose pixels are not square
/// on a 4:3 monitor (720x400 text, 320x200, 640x350, ...) get their rows
/// repeated to a 4:3 picture; other sizes (VBE modes) show as they are.
pub fn shown_size(w: u32, h: u32, aspect: bool) -> (u32, u32) {
    if aspect && w <= 720 && h <= 480 && w * 3 != h * 4 && w > 0 {
        (w, w * 3 / 4)
    } else {
        (w, h)
    }
}

/// The guest key at the host key's position.
fn guest_key(code: KeyCode) -> Option<Key> {
    macro_rules! same {
        ($($k:ident),* $(,)?) => {
            match code {
                $(KeyCode::$k => Some(Key::$k),)*
                KeyCode::SuperLeft => Some(Key::MetaLeft),
                KeyCode::SuperRight => Some(Key::MetaRight),
                _ => None,
            }
        };
    }
    same!(
        Escape,
        F1,
        F2,
        F3,
        F4,
        F5,
        F6,
        F7,
        F8,
        F9,
        F10,
        F11,
        F12,
        PrintScreen,
        ScrollLock,
        Pause,
        Backquote,
        Digit1,
        Digit2,
        Digit3,
        Digit4,
        Digit5,
        Digit6,
        Digit7,
        Digit8,
        Digit9,
        Digit0,
        Minus,
        Equal,
        Backspace,
        Tab,
        KeyQ,
        KeyW,
        KeyE,
        KeyR,
        KeyT,
        KeyY,
        KeyU,
        KeyI,
        KeyO,
        KeyP,
        BracketLeft,
        BracketRight,
        Backslash,
        CapsLock,
        KeyA,
        KeyS,
        KeyD,
        KeyF,
        KeyG,
        KeyH,
        KeyJ,
        KeyK,
        KeyL,
        Semicolon,
        Quote,
        Enter,
        ShiftLeft,
        IntlBackslash,
        KeyZ,
        KeyX,
        KeyC,
        KeyV,
        KeyB,
        KeyN,
        KeyM,
        Comma,
        Period,
        Slash,
        ShiftRight,
        ControlLeft,
        AltLeft,
        Space,
        AltRight,
        ContextMenu,
        ControlRight,
        Insert,
        Delete,
        Home,
        End,
        PageUp,
        PageDown,
        ArrowUp,
        ArrowLeft,
        ArrowDown,
        ArrowRight,
        NumLock,
        NumpadDivide,
        NumpadMultiply,
        NumpadSubtract,
        NumpadAdd,
        NumpadEnter,
        NumpadDecimal,
        Numpad0,
        Numpad1,
        Numpad2,
        Numpad3,
        Numpad4,
        Numpad5,
        Numpad6,
        Numpad7,
        Numpad8,
        Numpad9,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vga_modes_show_at_four_to_three() {
        assert_eq!(shown_size(720, 400, true), (720, 540));
        assert_eq!(shown_size(320, 200, true), (320, 240));
        assert_eq!(shown_size(640, 480, true), (640, 480));
        assert_eq!(shown_size(1024, 768, true), (1024, 768));
        assert_eq!(shown_size(1920, 1080, true), (1920, 1080));
        assert_eq!(shown_size(720, 400, false), (720, 400));
    }

    #[test]
    fn every_guest_key_has_a_host_key() {
        // Every key of the 104/105-key keyboard is reachable from the host.
        let host = [
            KeyCode::Escape,
            KeyCode::SuperLeft,
            KeyCode::SuperRight,
            KeyCode::IntlBackslash,
            KeyCode::NumpadEnter,
            KeyCode::Pause,
            KeyCode::PrintScreen,
        ];
        for h in host {
            assert!(guest_key(h).is_some(), "{h:?}");
        }
        let mapped: BTreeSet<Key> = Key::ALL
            .iter()
            .copied()
            .filter(|k| {
                let name = format!("{k:?}");
                let name = name.replace("Meta", "Super");
                ALL_HOST.iter().any(|h| format!("{h:?}") == name && guest_key(*h) == Some(*k))
            })
            .collect();
        let missing: Vec<_> = Key::ALL.iter().filter(|k| !mapped.contains(k)).collect();
        assert!(missing.is_empty(), "guest keys without a host key: {missing:?}");
        assert_eq!(guest_key(KeyCode::F13), None);
    }

    const ALL_HOST: &[KeyCode] = &[
        KeyCode::Escape,
        KeyCode::F1,
        KeyCode::F2,
        KeyCode::F3,
        KeyCode::F4,
        KeyCode::F5,
        KeyCode::F6,
        KeyCode::F7,
        KeyCode::F8,
        KeyCode::F9,
        KeyCode::F10,
        KeyCode::F11,
        KeyCode::F12,
        KeyCode::PrintScreen,
        KeyCode::ScrollLock,
        KeyCode::Pause,
        KeyCode::Backquote,
        KeyCode::Digit1,
        KeyCode::Digit2,
        KeyCode::Digit3,
        KeyCode::Digit4,
        KeyCode::Digit5,
        KeyCode::Digit6,
        KeyCode::Digit7,
        KeyCode::Digit8,
        KeyCode::Digit9,
        KeyCode::Digit0,
        KeyCode::Minus,
        KeyCode::Equal,
        KeyCode::Backspace,
        KeyCode::Tab,
        KeyCode::KeyQ,
        KeyCode::KeyW,
        KeyCode::KeyE,
        KeyCode::KeyR,
        KeyCode::KeyT,
        KeyCode::KeyY,
        KeyCode::KeyU,
        KeyCode::KeyI,
        KeyCode::KeyO,
        KeyCode::KeyP,
        KeyCode::BracketLeft,
        KeyCode::BracketRight,
        KeyCode::Backslash,
        KeyCode::CapsLock,
        KeyCode::KeyA,
        KeyCode::KeyS,
        KeyCode::KeyD,
        KeyCode::KeyF,
        KeyCode::KeyG,
        KeyCode::KeyH,
        KeyCode::KeyJ,
        KeyCode::KeyK,
        KeyCode::KeyL,
        KeyCode::Semicolon,
        KeyCode::Quote,
        KeyCode::Enter,
        KeyCode::ShiftLeft,
        KeyCode::IntlBackslash,
        KeyCode::KeyZ,
        KeyCode::KeyX,
        KeyCode::KeyC,
        KeyCode::KeyV,
        KeyCode::KeyB,
        KeyCode::KeyN,
        KeyCode::KeyM,
        KeyCode::Comma,
        KeyCode::Period,
        KeyCode::Slash,
        KeyCode::ShiftRight,
        KeyCode::ControlLeft,
        KeyCode::SuperLeft,
        KeyCode::AltLeft,
        KeyCode::Space,
        KeyCode::AltRight,
        KeyCode::SuperRight,
        KeyCode::ContextMenu,
        KeyCode::ControlRight,
        KeyCode::Insert,
        KeyCode::Delete,
        KeyCode::Home,
        KeyCode::End,
        KeyCode::PageUp,
        KeyCode::PageDown,
        KeyCode::ArrowUp,
        KeyCode::ArrowLeft,
        KeyCode::ArrowDown,
        KeyCode::ArrowRight,
        KeyCode::NumLock,
        KeyCode::NumpadDivide,
        KeyCode::NumpadMultiply,
        KeyCode::NumpadSubtract,
        KeyCode::NumpadAdd,
        KeyCode::NumpadEnter,
        KeyCode::NumpadDecimal,
        KeyCode::Numpad0,
        KeyCode::Numpad1,
        KeyCode::Numpad2,
        KeyCode::Numpad3,
        KeyCode::Numpad4,
        KeyCode::Numpad5,
        KeyCode::Numpad6,
        KeyCode::Numpad7,
        KeyCode::Numpad8,
        KeyCode::Numpad9,
    ];
}
