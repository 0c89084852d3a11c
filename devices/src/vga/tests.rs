use super::*;
use crate::IrqLines;

fn out(v: &mut Vga, port: u16, val: u8) {
    let mut irq = IrqLines::default();
    let mut cx = DevCtx { now: Nanos::ZERO, irq: &mut irq };
    v.io_write(port, AccessSize::Byte, val as u32, &mut cx);
}

fn inp(v: &mut Vga, port: u16, now: Nanos) -> u8 {
    let mut irq = IrqLines::default();
    let mut cx = DevCtx { now, irq: &mut irq };
    v.io_read(port, AccessSize::Byte, &mut cx) as u8
}

fn seq(v: &mut Vga, i: u8, val: u8) {
    out(v, 0x3C4, i);
    out(v, 0x3C5, val);
}

fn gc(v: &mut Vga, i: u8, val: u8) {
    out(v, 0x3CE, i);
    out(v, 0x3CF, val);
}

fn crtc(v: &mut Vga, i: u8, val: u8) {
    out(v, 0x3D4, i);
    out(v, 0x3D5, val);
}

fn attr(v: &mut Vga, i: u8, val: u8) {
    inp(v, 0x3DA, Nanos::ZERO);
    out(v, 0x3C0, i);
    out(v, 0x3C0, val);
    out(v, 0x3C0, 0x20);
}

/// Mode 12h-style planar set-up: colour I/O, A0000 64K, no odd/even.
fn planar() -> Vga {
    let mut v = Vga::new();
    out(&mut v, 0x3C2, 0xE3);
    seq(&mut v, 2, 0x0F);
    seq(&mut v, 4, 0x06);
    gc(&mut v, 5, 0x00);
    gc(&mut v, 6, 0x05);
    gc(&mut v, 8, 0xFF);
    v
}

#[test]
fn write_mode_0_set_reset_logic_op_and_bit_mask() {
    let mut v = planar();
    v.vram[0x10] = u32::from_le_bytes([0xF0, 0x0F, 0xAA, 0x55]);
    let _ = v.mem_read(0xA0010); // load the latches
    gc(&mut v, 0, 0x05); // set/reset: planes 0 and 2 ones
    gc(&mut v, 1, 0x03); // enable set/reset on planes 0 and 1
    gc(&mut v, 3, 0x18 | 1); // XOR, rotate right by 1
    gc(&mut v, 8, 0x3C); // only bits 5..2
    v.mem_write(0xA0010, 0x81); // rotated: 0xC0
    let p = v.planes_at(0x10);
    // plane 0: set/reset 1 -> 0xFF ^ 0xF0 = 0x0F, masked into 0xF0.
    assert_eq!(p[0], (0x0F & 0x3C) | (0xF0 & !0x3C));
    // plane 1: set/reset 0 -> 0x00 ^ 0x0F.
    assert_eq!(p[1], (0x0F & 0x3C) | (0x0F & !0x3C));
    // plane 2: CPU data rotated (0xC0) ^ 0xAA.
    assert_eq!(p[2], ((0xC0 ^ 0xAA) & 0x3C) | (0xAA & !0x3C));
    assert_eq!(p[3], ((0xC0 ^ 0x55) & 0x3C) | (0x55 & !0x3C));
}

#[test]
fn write_mode_1_copies_latches_and_map_mask_limits_planes() {
    let mut v = planar();
    v.vram[0x20] = 0x4433_2211;
    let _ = v.mem_read(0xA0020);
    gc(&mut v, 5, 0x01);
    seq(&mut v, 2, 0x0B);
    v.mem_write(0xA0030, 0x00);
    assert_eq!(v.planes_at(0x30), [0x11, 0x22, 0x00, 0x44]);
}

#[test]
fn write_modes_2_and_3() {
    let mut v = planar();
    gc(&mut v, 5, 0x02);
    gc(&mut v, 8, 0xF0);
    v.mem_write(0xA0000, 0x0A); // colour 1010
    assert_eq!(v.planes_at(0), [0x00, 0xF0, 0x00, 0xF0]);
    // Mode 3: the rotated CPU byte ANDs the bit mask; set/reset is the colour.
    gc(&mut v, 5, 0x03);
    gc(&mut v, 8, 0xFF);
    gc(&mut v, 0, 0x06);
    let _ = v.mem_read(0xA0000);
    v.mem_write(0xA0000, 0x3C);
    assert_eq!(v.planes_at(0), [0x00, 0xFC, 0x3C, 0xC0]);
}

#[test]
fn read_mode_1_compares_colours_with_dont_care() {
    let mut v = planar();
    v.vram[5] = u32::from_le_bytes([0b1100, 0b1010, 0b0000, 0b1111]);
    gc(&mut v, 5, 0x08);
    gc(&mut v, 2, 0x0B); // colour 1011
    gc(&mut v, 7, 0x0F);
    // Bits: 3 -> planes 1,0,0,1 = colour 1011? bit3: p0=1 p1=1 p2=0 p3=1 -> 1011.
    assert_eq!(v.mem_read(0xA0005), 0b1000);
    gc(&mut v, 7, 0x00); // nothing cared about: all match
    assert_eq!(v.mem_read(0xA0005), 0xFF);
    // Read mode 0 returns the plane GR4 selects.
    gc(&mut v, 5, 0x00);
    gc(&mut v, 4, 3);
    assert_eq!(v.mem_read(0xA0005), 0b1111);
}

#[test]
fn chain4_and_odd_even_addressing() {
    let mut v = planar();
    seq(&mut v, 4, 0x0E); // chain-4
    for i in 0..8u32 {
        v.mem_write(0xA0000 + i, 0x10 + i as u8);
    }
    assert_eq!(v.planes_at(0), [0x10, 0x11, 0x12, 0x13]);
    assert_eq!(v.planes_at(4), [0x14, 0x15, 0x16, 0x17]);
    assert_eq!(v.mem_read(0xA0006), 0x16);
    // Text-mode odd/even at B8000: even bytes to plane 0, odd to plane 1.
    let mut t = Vga::new();
    out(&mut t, 0x3C2, 0x67);
    seq(&mut t, 2, 0x03);
    seq(&mut t, 4, 0x02);
    gc(&mut t, 5, 0x10);
    gc(&mut t, 6, 0x0E);
    gc(&mut t, 8, 0xFF);
    t.mmio_write(0xB8002, AccessSize::Word, 0x1F41);
    assert_eq!(t.planes_at(2)[..2], [0x41, 0x1F]);
    assert_eq!(t.mmio_read(0xB8002, AccessSize::Word), 0x1F41);
    // Outside the B8000 window nothing is decoded.
    t.mem_write(0xA0000, 0x55);
    assert_eq!(t.mem_read(0xA0000), 0xFF);
    assert_eq!(t.planes_at(0)[0], 0);
}

#[test]
fn ports_index_data_dac_and_flip_flop() {
    let mut v = Vga::new();
    out(&mut v, 0x3C2, 0x67);
    let mut irq = IrqLines::default();
    let mut cx = DevCtx { now: Nanos::ZERO, irq: &mut irq };
    v.io_write(0x3C4, AccessSize::Word, 0x0F02, &mut cx);
    assert_eq!(v.regs.seq[2], 0x0F);
    // The DAC auto-increments through components and entries.
    out(&mut v, 0x3C8, 5);
    for b in [1, 2, 3, 4, 5, 0x7F] {
        out(&mut v, 0x3C9, b);
    }
    assert_eq!(v.regs.dac[5], [1, 2, 3]);
    assert_eq!(v.regs.dac[6], [4, 5, 0x3F]);
    out(&mut v, 0x3C7, 6);
    assert_eq!(inp(&mut v, 0x3C7, Nanos::ZERO), 3);
    assert_eq!([0, 0, 0].map(|_| inp(&mut v, 0x3C9, Nanos::ZERO)), [4, 5, 0x3F]);
    // Attribute flip-flop: reading 3DA resets it to "index".
    out(&mut v, 0x3C0, 0x11);
    inp(&mut v, 0x3DA, Nanos::ZERO);
    out(&mut v, 0x3C0, 0x12);
    out(&mut v, 0x3C0, 0x0F);
    assert_eq!(v.regs.attr[0x12], 0x0F);
    assert_eq!(v.regs.attr[0x11], 0);
    // CRTC protect bit keeps CR00-CR06.
    crtc(&mut v, 0, 0x5F);
    crtc(&mut v, 0x11, 0x80);
    crtc(&mut v, 0, 0x11);
    assert_eq!(v.regs.crtc[0], 0x5F);
    // Mono ports are not decoded with colour addressing.
    assert_eq!(inp(&mut v, 0x3B5, Nanos::ZERO), 0xFF);
}

/// Mode 3's registers (80x25, 9-dot, 400 lines).
pub(super) fn text_mode(v: &mut Vga) {
    out(v, 0x3C2, 0x67);
    for (i, x) in [0x03, 0x00, 0x03, 0x00, 0x02].into_iter().enumerate() {
        seq(v, i as u8, x);
    }
    let cr = [
        0x5F, 0x4F, 0x50, 0x82, 0x55, 0x81, 0xBF, 0x1F, 0x00, 0x4F, 0x0D, 0x0E, 0x00, 0x00, 0x00, 0x00, 0x9C, 0x8E,
        0x8F, 0x28, 0x1F, 0x96, 0xB9, 0xA3, 0xFF,
    ];
    for (i, x) in cr.into_iter().enumerate() {
        crtc(v, i as u8, x);
    }
    for (i, x) in [0, 0, 0, 0, 0, 0x10, 0x0E, 0, 0xFF].into_iter().enumerate() {
        gc(v, i as u8, x);
    }
    let ar = [0, 1, 2, 3, 4, 5, 0x14, 7, 0x38, 0x39, 0x3A, 0x3B, 0x3C, 0x3D, 0x3E, 0x3F, 0x0C, 0, 0x0F, 8, 0];
    for (i, x) in ar.into_iter().enumerate() {
        attr(v, i as u8, x);
    }
    // EGA 64-colour DAC.
    out(v, 0x3C8, 0);
    for i in 0..64u8 {
        let c = |hi: u8, lo: u8| ((i >> hi) & 1) * 0x2A + ((i >> lo) & 1) * 0x15;
        out(v, 0x3C9, c(2, 5));
        out(v, 0x3C9, c(1, 4));
        out(v, 0x3C9, c(0, 3));
    }
}

#[test]
fn text_mode_renders_glyph_colours_cursor_and_ninth_column() {
    let mut v = Vga::new();
    text_mode(&mut v);
    // A glyph for 'A' in font map 0 (plane 2): row 3 = 0b1000_0001.
    v.vram[0x41 * 32 + 3] |= 0x81 << 16;
    // Box-drawing 0xC4: row 3 all set (the 9th column repeats it).
    v.vram[0xC4 * 32 + 3] |= 0xFF << 16;
    v.mmio_write(0xB8000, AccessSize::Word, 0x1E41); // yellow on blue
    v.mmio_write(0xB8002, AccessSize::Word, 0x1EC4);
    let f = v.render(Nanos::ZERO, &[]).clone();
    assert_eq!((f.width, f.height), (720, 400));
    let yellow = (0xFF, 0xFF, 0x55);
    let blue = (0, 0, 0xAA);
    assert_eq!(f.rgb(0, 3), yellow);
    assert_eq!(f.rgb(1, 3), blue);
    assert_eq!(f.rgb(7, 3), yellow);
    assert_eq!(f.rgb(8, 3), blue, "9th column is background for letters");
    assert_eq!(f.rgb(9 + 8, 3), yellow, "9th column repeats line-graphics characters");
    assert_eq!(f.rgb(0, 2), blue);
    // The cursor (CR0A/0B = 0D-0E) at cell 1 draws rows 13 and 14.
    crtc(&mut v, 0x0F, 1);
    let f = v.render(Nanos::ZERO, &[]).clone();
    assert_eq!(f.rgb(9, 13), yellow);
    assert_eq!(f.rgb(9, 12), blue);
    // In the blink-off phase (frames 16..31) the cursor is gone.
    let t = Nanos(v.frame_ns() * 17);
    let f = v.render(t, &[]).clone();
    assert_eq!(f.rgb(9, 13), blue);
}

#[test]
fn incremental_render_redraws_only_written_lines() {
    let mut v = Vga::new();
    text_mode(&mut v);
    v.render(Nanos::ZERO, &[]);
    v.mmio_write(0xB8000 + 160 * 10, AccessSize::Word, 0x4F20);
    let f = v.render(Nanos::ZERO, &[]);
    assert!(f.changed.start >= 16 * 9 && f.changed.end <= 16 * 12, "{:?}", f.changed);
    let red = (0xAA, 0, 0);
    assert_eq!(f.rgb(0, 16 * 10), red);
    let f = v.render(Nanos::ZERO, &[]);
    assert!(f.changed.is_empty());
}

#[test]
fn mode_13h_chain4_and_mode_x() {
    let mut v = Vga::new();
    out(&mut v, 0x3C2, 0x63);
    for (i, x) in [0x03, 0x01, 0x0F, 0x00, 0x0E].into_iter().enumerate() {
        seq(&mut v, i as u8, x);
    }
    let cr = [
        0x5F, 0x4F, 0x50, 0x82, 0x54, 0x80, 0xBF, 0x1F, 0x00, 0x41, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x9C, 0x8E,
        0x8F, 0x28, 0x40, 0x96, 0xB9, 0xA3, 0xFF,
    ];
    for (i, x) in cr.into_iter().enumerate() {
        crtc(&mut v, i as u8, x);
    }
    for (i, x) in [0, 0, 0, 0, 0, 0x40, 0x05, 0x0F, 0xFF].into_iter().enumerate() {
        gc(&mut v, i as u8, x);
    }
    for i in 0..16 {
        attr(&mut v, i, i);
    }
    attr(&mut v, 0x10, 0x41);
    attr(&mut v, 0x12, 0x0F);
    out(&mut v, 0x3C8, 200);
    for b in [63, 0, 63] {
        out(&mut v, 0x3C9, b);
    }
    // Pixel (x=5, y=2) = 200.
    v.mem_write(0xA0000 + 2 * 320 + 5, 200);
    let f = v.render(Nanos::ZERO, &[]).clone();
    assert_eq!((f.width, f.height), (320, 200));
    assert_eq!(f.rgb(5, 2), (0xFF, 0, 0xFF));
    assert_eq!(f.rgb(4, 2), (0, 0, 0));
    // Mode X: unchained, byte mode, 80 bytes per plane line; pixel x is
    // in plane x & 3 at offset x / 4.
    seq(&mut v, 4, 0x06);
    crtc(&mut v, 0x14, 0x00);
    crtc(&mut v, 0x17, 0xE3);
    seq(&mut v, 2, 1 << (7 & 3));
    v.mem_write(0xA0000 + 80 + 7 / 4, 200);
    let f = v.render(Nanos::ZERO, &[]).clone();
    assert_eq!(f.rgb(7, 1), (0xFF, 0, 0xFF));
    assert_eq!(f.rgb(6, 1), (0, 0, 0));
}

#[test]
fn line_compare_splits_the_screen() {
    let mut v = Vga::new();
    text_mode(&mut v);
    v.vram[0x41 * 32] |= 0xFF << 16;
    // Top of memory: 'A' white on black; start address at row 5.
    v.mmio_write(0xB8000, AccessSize::Word, 0x0741);
    crtc(&mut v, 0x0C, 0x01);
    crtc(&mut v, 0x0D, 0x90);
    // Split at scan line 200: the rows below show memory from offset 0.
    crtc(&mut v, 0x18, 200);
    crtc(&mut v, 0x07, 0x0F); // line compare bit 8 (writable under CR11's protect)
    crtc(&mut v, 0x09, 0x0F); // bit 9
    let f = v.render(Nanos::ZERO, &[]).clone();
    assert_eq!(f.rgb(0, 0), (0, 0, 0));
    assert_eq!(f.rgb(0, 200), (0xAA, 0xAA, 0xAA));
    assert_eq!(f.rgb(0, 199), (0, 0, 0));
}

#[test]
fn retrace_bit_follows_virtual_time() {
    let mut v = Vga::new();
    text_mode(&mut v);
    let frame = v.frame_ns();
    // 70 Hz for the 400-line modes.
    assert!((14_000_000..14_400_000).contains(&frame), "{frame}");
    let mut in_retrace = 0;
    let steps = 1000;
    for k in 0..steps {
        if inp(&mut v, 0x3DA, Nanos(frame * k / steps)) & 8 != 0 {
            in_retrace += 1;
        }
    }
    // Two of 449 lines.
    assert!((2..=10).contains(&in_retrace), "{in_retrace}");
}

fn dispi(v: &mut Vga, index: u16, value: u16) {
    let mut irq = IrqLines::default();
    let mut cx = DevCtx { now: Nanos::ZERO, irq: &mut irq };
    v.io_write(0x1CE, AccessSize::Word, index as u32, &mut cx);
    v.io_write(0x1CF, AccessSize::Word, value as u32, &mut cx);
}

fn dispi_get(v: &mut Vga, index: u16) -> u16 {
    let mut irq = IrqLines::default();
    let mut cx = DevCtx { now: Nanos::ZERO, irq: &mut irq };
    v.io_write(0x1CE, AccessSize::Word, index as u32, &mut cx);
    v.io_read(0x1CF, AccessSize::Word, &mut cx) as u16
}

#[test]
fn dispi_registers_caps_and_enable() {
    use vbe::*;
    let mut v = Vga::new();
    assert_eq!(dispi_get(&mut v, INDEX_ID) & 0xFFF0, 0xB0C0);
    assert_eq!(dispi_get(&mut v, INDEX_VIDEO_MEMORY_64K), 256);
    dispi(&mut v, INDEX_ENABLE, GETCAPS);
    assert_eq!(dispi_get(&mut v, INDEX_XRES), MAX_XRES);
    assert_eq!(dispi_get(&mut v, INDEX_BPP), 32);
    dispi(&mut v, INDEX_ENABLE, 0);
    dispi(&mut v, INDEX_BPP, 32);
    dispi(&mut v, INDEX_XRES, 1024);
    dispi(&mut v, INDEX_YRES, 768);
    dispi(&mut v, INDEX_XRES, 1001); // not a multiple of 8: ignored
    assert_eq!(dispi_get(&mut v, INDEX_XRES), 1024);
    dispi(&mut v, INDEX_ENABLE, ENABLED | LFB_ENABLED);
    let fx = v.take_effects();
    assert!(fx.remap);
    assert_eq!(fx.clear, Some(1024 * 768 * 4));
    assert_eq!(dispi_get(&mut v, INDEX_VIRT_WIDTH), 1024);
    assert_eq!(dispi_get(&mut v, INDEX_VIRT_HEIGHT) as usize, ferrite_core::DEVICE_RAM_BYTES / 4096);
    // Resolution changes are refused while enabled.
    dispi(&mut v, INDEX_XRES, 640);
    assert_eq!(dispi_get(&mut v, INDEX_XRES), 1024);
    // Disabling asks for the window back, without a clear.
    dispi(&mut v, INDEX_ENABLE, 0);
    let fx = v.take_effects();
    assert!(fx.remap && fx.clear.is_none());
    // A mode larger than video memory stays disabled.
    dispi(&mut v, INDEX_XRES, 2560);
    dispi(&mut v, INDEX_YRES, 1600);
    dispi(&mut v, INDEX_BPP, 32);
    dispi(&mut v, INDEX_ENABLE, ENABLED);
    assert!(v.dispi.enabled(), "2560x1600x32 fits 16 MiB");
    dispi(&mut v, INDEX_ENABLE, 0);
    dispi(&mut v, INDEX_BPP, 7);
    assert_eq!(dispi_get(&mut v, INDEX_BPP), 32, "unsupported depth ignored");
}

#[test]
fn vbe_render_converts_depths_and_follows_offsets() {
    use vbe::*;
    let mut mem = vec![0u8; 1 << 20];
    let mut v = Vga::new();
    dispi(&mut v, INDEX_BPP, 16);
    dispi(&mut v, INDEX_XRES, 64);
    dispi(&mut v, INDEX_YRES, 32);
    dispi(&mut v, INDEX_ENABLE, ENABLED | LFB_ENABLED | NOCLEARMEM);
    // 16 bpp 5:6:5: pure red at (1, 0), pure green at (2, 0).
    mem[2..4].copy_from_slice(&0xF800u16.to_le_bytes());
    mem[4..6].copy_from_slice(&0x07E0u16.to_le_bytes());
    let f = v.render(Nanos::ZERO, &mem).clone();
    assert_eq!((f.width, f.height), (64, 32));
    assert_eq!(f.rgb(1, 0), (0xFF, 0, 0));
    assert_eq!(f.rgb(2, 0), (0, 0xFF, 0));
    assert_eq!(f.changed, 0..32);
    // Unchanged memory: nothing redrawn; one changed line: that line.
    assert!(v.render(Nanos::ZERO, &mem).changed.is_empty());
    mem[128 * 5..128 * 5 + 2].copy_from_slice(&0x001Fu16.to_le_bytes());
    let f = v.render(Nanos::ZERO, &mem).clone();
    assert_eq!(f.changed, 5..6);
    assert_eq!(f.rgb(0, 5), (0, 0, 0xFF));
    // Display start one line down.
    dispi(&mut v, INDEX_Y_OFFSET, 5);
    let f = v.render(Nanos::ZERO, &mem).clone();
    assert_eq!(f.rgb(0, 0), (0, 0, 0xFF));
    // 32 bpp B, G, R, X and 24 bpp B, G, R.
    let mut px = [0u32; 1];
    convert_line(32, &[0x10, 0x20, 0x30, 0x00], &[0; 256], &mut px);
    assert_eq!(px[0].to_le_bytes(), [0x30, 0x20, 0x10, 0xFF]);
    convert_line(24, &[0x10, 0x20, 0x30], &[0; 256], &mut px);
    assert_eq!(px[0].to_le_bytes(), [0x30, 0x20, 0x10, 0xFF]);
    convert_line(15, &0x7C00u16.to_le_bytes(), &[0; 256], &mut px);
    assert_eq!(px[0].to_le_bytes(), [0xFF, 0, 0, 0xFF]);
}

#[test]
fn dac_8bit_keeps_full_components() {
    use vbe::*;
    let mut v = Vga::new();
    out(&mut v, 0x3C8, 1);
    for b in [0xFF, 0x80, 0x40] {
        out(&mut v, 0x3C9, b);
    }
    assert_eq!(v.regs.dac[1], [0x3F, 0x00, 0x00], "6-bit DAC");
    dispi(&mut v, INDEX_ENABLE, DAC_8BIT);
    out(&mut v, 0x3C8, 1);
    for b in [0xFF, 0x80, 0x40] {
        out(&mut v, 0x3C9, b);
    }
    assert_eq!(v.regs.dac[1], [0xFF, 0x80, 0x40]);
}

/// Whatever a guest writes to the ports and the window, rendering and
/// status reads never panic (random register programs, every few hundred
/// writes a frame).
#[test]
fn random_programming_never_panics() {
    let mut seed = 0x2545_F491_4F6C_DD1Du64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let ports: [u16; 14] =
        [0x3C0, 0x3C2, 0x3C4, 0x3C5, 0x3C6, 0x3C8, 0x3C9, 0x3CE, 0x3CF, 0x3D4, 0x3D5, 0x3B4, 0x3B5, 0x1CF];
    let vram = vec![0x5Au8; 1 << 20];
    for round in 0..40 {
        let mut v = Vga::new();
        if round % 2 == 0 {
            text_mode(&mut v);
        }
        for i in 0..20_000u32 {
            let r = next();
            match r % 4 {
                0 | 1 => {
                    let port = ports[(r >> 8) as usize % ports.len()];
                    if port == 0x1CF {
                        dispi(&mut v, (r >> 16) as u16 % 12, (r >> 32) as u16);
                    } else {
                        out(&mut v, port, (r >> 16) as u8);
                    }
                }
                2 => v.mem_write(0xA0000 + (r >> 8) as u32 % 0x20000, (r >> 40) as u8),
                _ => {
                    let _ = v.mem_read(0xA0000 + (r >> 8) as u32 % 0x20000);
                    let _ = inp(&mut v, 0x3DA, Nanos(r >> 20));
                }
            }
            if i % 500 == 0 {
                let f = v.render(Nanos(r >> 24), &vram);
                assert_eq!(f.pixels.len(), (f.width * f.height) as usize);
            }
        }
    }
}

#[test]
fn pixel_and_byte_panning_shift_the_picture() {
    // Mode 12h-like planar mode: pixel x has colour 15 only at x = 16.
    let mut v = planar();
    let cr = [
        0x5F, 0x4F, 0x50, 0x82, 0x54, 0x80, 0x0B, 0x3E, 0x00, 0x40, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xEA, 0x8C,
        0xDF, 0x28, 0x00, 0xE7, 0x04, 0xE3, 0xFF,
    ];
    for (i, x) in cr.into_iter().enumerate() {
        crtc(&mut v, i as u8, x);
    }
    for i in 0..16 {
        attr(&mut v, i, i);
    }
    attr(&mut v, 0x10, 0x01);
    attr(&mut v, 0x12, 0x0F);
    out(&mut v, 0x3C8, 15);
    for b in [63, 63, 63] {
        out(&mut v, 0x3C9, b);
    }
    v.vram[2] = 0x8080_8080; // byte 2, bit 7: pixel 16 on all planes
    let white = (0xFF, 0xFF, 0xFF);
    let f = v.render(Nanos::ZERO, &[]).clone();
    assert_eq!((f.width, f.height), (640, 480));
    assert_eq!(f.rgb(16, 0), white);
    // Pixel panning by 3: the picture moves left by 3 pixels.
    attr(&mut v, 0x13, 3);
    let f = v.render(Nanos::ZERO, &[]).clone();
    assert_eq!(f.rgb(13, 0), white);
    assert_ne!(f.rgb(16, 0), white);
    // Byte panning (CR08 bits 5-6) by one character: 8 pixels more.
    crtc(&mut v, 0x08, 0x20);
    let f = v.render(Nanos::ZERO, &[]).clone();
    assert_eq!(f.rgb(5, 0), white);
    // A start address one byte on has the same effect as byte panning.
    attr(&mut v, 0x13, 0);
    crtc(&mut v, 0x08, 0);
    crtc(&mut v, 0x0D, 1);
    let f = v.render(Nanos::ZERO, &[]).clone();
    assert_eq!(f.rgb(8, 0), white);
}
