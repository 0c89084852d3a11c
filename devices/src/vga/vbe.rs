//! The Bochs VBE extensions ("DISPI", ports 0x1CE index / 0x1CF data, 16
//! bits each) that Bochs, QEMU's standard VGA and their VGA BIOSes define,
//! and that Linux's `bochs` DRM driver and Windows' Bochs/QEMU display
//! drivers program: resolution, depth (8, 15, 16, 24, 32 bits per pixel),
//! virtual width and height, display offset, a 64 KiB bank at 0xA0000 and
//! the linear framebuffer (PCI BAR 0 of the 1234:1111 function).
//!
//! Video memory for these modes is the board's device RAM
//! ([`ferrite_core::DEVICE_RAM_BYTES`]): guest stores reach it at RAM speed
//! through the memory map (the BAR and, while enabled, the bank window),
//! and the renderer reads it from there.

use ferrite_core::DEVICE_RAM_BYTES;

/// Register indices.
pub const INDEX_ID: u16 = 0;
pub const INDEX_XRES: u16 = 1;
pub const INDEX_YRES: u16 = 2;
pub const INDEX_BPP: u16 = 3;
pub const INDEX_ENABLE: u16 = 4;
pub const INDEX_BANK: u16 = 5;
pub const INDEX_VIRT_WIDTH: u16 = 6;
pub const INDEX_VIRT_HEIGHT: u16 = 7;
pub const INDEX_X_OFFSET: u16 = 8;
pub const INDEX_Y_OFFSET: u16 = 9;
pub const INDEX_VIDEO_MEMORY_64K: u16 = 10;

/// ENABLE bits.
pub const ENABLED: u16 = 0x01;
pub const GETCAPS: u16 = 0x02;
pub const DAC_8BIT: u16 = 0x20;
pub const LFB_ENABLED: u16 = 0x40;
pub const NOCLEARMEM: u16 = 0x80;

/// The newest interface version implemented (0xB0C5: VIDEO_MEMORY_64K).
pub const ID_NEWEST: u16 = 0xB0C5;
pub const MAX_XRES: u16 = 2560;
pub const MAX_YRES: u16 = 1600;
pub const MAX_BPP: u16 = 32;

/// The DISPI register file.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Dispi {
    pub index: u16,
    pub id: u16,
    pub xres: u16,
    pub yres: u16,
    pub bpp: u16,
    pub enable: u16,
    pub bank: u16,
    pub virt_width: u16,
    pub virt_height: u16,
    pub x_offset: u16,
    pub y_offset: u16,
}

impl Default for Dispi {
    fn default() -> Self {
        Dispi {
            index: 0,
            id: ID_NEWEST,
            xres: 640,
            yres: 480,
            bpp: 8,
            enable: 0,
            bank: 0,
            virt_width: 640,
            virt_height: 480,
            x_offset: 0,
            y_offset: 0,
        }
    }
}

/// What a DISPI write asks the board to do.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DispiEffect {
    /// The bank window or the enable state changed: remap 0xA0000.
    pub remap: bool,
    /// Enabling without NOCLEARMEM: clear this many bytes of video memory.
    pub clear: Option<usize>,
    /// The picture changed (redraw everything).
    pub redraw: bool,
}

impl Dispi {
    pub fn enabled(&self) -> bool {
        self.enable & ENABLED != 0
    }

    /// Bytes per pixel of the current depth (15 bpp takes 2).
    pub fn bytes_per_pixel(&self) -> usize {
        (self.bpp as usize).div_ceil(8)
    }

    /// Bytes per scan line of the virtual screen.
    pub fn line_bytes(&self) -> usize {
        self.virt_width as usize * self.bytes_per_pixel()
    }

    /// Offset in video memory of the first displayed pixel.
    pub fn start(&self) -> usize {
        self.y_offset as usize * self.line_bytes() + self.x_offset as usize * self.bytes_per_pixel()
    }

    fn valid_bpp(bpp: u16) -> bool {
        matches!(bpp, 8 | 15 | 16 | 24 | 32)
    }

    /// Recompute the virtual height from the memory left for the width.
    fn fit_virtual(&mut self) {
        let line = self.line_bytes().max(1);
        self.virt_height = (DEVICE_RAM_BYTES / line).min(u16::MAX as usize) as u16;
    }

    pub fn read(&self, index: u16) -> u16 {
        let caps = self.enable & GETCAPS != 0;
        match index {
            INDEX_ID => self.id,
            INDEX_XRES if caps => MAX_XRES,
            INDEX_YRES if caps => MAX_YRES,
            INDEX_BPP if caps => MAX_BPP,
            INDEX_XRES => self.xres,
            INDEX_YRES => self.yres,
            INDEX_BPP => self.bpp,
            INDEX_ENABLE => self.enable,
            INDEX_BANK => self.bank,
            INDEX_VIRT_WIDTH => self.virt_width,
            INDEX_VIRT_HEIGHT => self.virt_height,
            INDEX_X_OFFSET => self.x_offset,
            INDEX_Y_OFFSET => self.y_offset,
            INDEX_VIDEO_MEMORY_64K => (DEVICE_RAM_BYTES >> 16) as u16,
            _ => 0,
        }
    }

    /// A data-port write to register `index`. Resolution and depth only
    /// change while the interface is disabled (as in Bochs and QEMU).
    pub fn write(&mut self, index: u16, v: u16) -> DispiEffect {
        let mut fx = DispiEffect::default();
        match index {
            INDEX_ID if (0xB0C0..=ID_NEWEST).contains(&v) => self.id = v,
            INDEX_XRES if !self.enabled() && v <= MAX_XRES && v.is_multiple_of(8) => self.xres = v,
            INDEX_YRES if !self.enabled() && v <= MAX_YRES => self.yres = v,
            INDEX_BPP if !self.enabled() => {
                // 0 means 8 (Bochs); other unsupported depths are ignored.
                let v = if v == 0 { 8 } else { v };
                if Self::valid_bpp(v) {
                    self.bpp = v;
                }
            }
            INDEX_ENABLE => {
                let was = self.enabled();
                let on = v & ENABLED != 0;
                let fits = self.xres as usize * self.yres as usize * self.bytes_per_pixel() <= DEVICE_RAM_BYTES;
                if on && !was {
                    if self.xres == 0 || self.yres == 0 || !fits {
                        // A mode that cannot be shown: stay disabled.
                        self.enable = v & !ENABLED;
                        return fx;
                    }
                    self.virt_width = self.xres;
                    self.fit_virtual();
                    self.x_offset = 0;
                    self.y_offset = 0;
                    self.bank = 0;
                    if v & NOCLEARMEM == 0 {
                        fx.clear = Some(self.line_bytes() * self.yres as usize);
                    }
                }
                self.enable = v;
                fx.remap = was != on;
                fx.redraw = true;
            }
            INDEX_BANK => {
                let banks = (DEVICE_RAM_BYTES >> 16) as u16;
                if v < banks && v != self.bank {
                    self.bank = v;
                    fx.remap = self.enabled();
                }
            }
            INDEX_VIRT_WIDTH
                if v >= self.xres && v as usize * self.bytes_per_pixel() * self.yres as usize <= DEVICE_RAM_BYTES =>
            {
                self.virt_width = v;
                self.fit_virtual();
                fx.redraw = true;
            }
            INDEX_X_OFFSET => {
                self.x_offset = v;
                fx.redraw = true;
            }
            INDEX_Y_OFFSET => {
                self.y_offset = v;
                fx.redraw = true;
            }
            _ => {}
        }
        fx
    }
}

/// Convert one scan line of `bpp` pixels to RGBA (`dac` gives 8-bit
/// colours for 8-bpp modes).
pub fn convert_line(bpp: u16, src: &[u8], dac: &[u32; 256], out: &mut [u32]) {
    let rgba = |r: u32, g: u32, b: u32| r | g << 8 | b << 16 | 0xFF00_0000;
    match bpp {
        8 => {
            for (o, &p) in out.iter_mut().zip(src) {
                *o = dac[p as usize];
            }
        }
        15 | 16 => {
            for (o, p) in out.iter_mut().zip(src.chunks_exact(2)) {
                let v = u16::from_le_bytes([p[0], p[1]]) as u32;
                let (r, g, b) = if bpp == 15 {
                    ((v >> 10) & 0x1F, (v >> 5) & 0x1F, v & 0x1F)
                } else {
                    ((v >> 11) & 0x1F, (v >> 5) & 0x3F, v & 0x1F)
                };
                let g8 = if bpp == 15 { (g << 3) | (g >> 2) } else { (g << 2) | (g >> 4) };
                *o = rgba((r << 3) | (r >> 2), g8, (b << 3) | (b >> 2));
            }
        }
        24 => {
            for (o, p) in out.iter_mut().zip(src.chunks_exact(3)) {
                *o = rgba(p[2] as u32, p[1] as u32, p[0] as u32);
            }
        }
        _ => {
            for (o, p) in out.iter_mut().zip(src.chunks_exact(4)) {
                // Memory order B, G, R, X: swap red and blue of the word.
                let v = u32::from_le_bytes([p[0], p[1], p[2], p[3]]);
                *o = ((v >> 16) & 0xFF) | (v & 0xFF00) | ((v & 0xFF) << 16) | 0xFF00_0000;
            }
        }
    }
}
