//! Display frame cost: rendering a whole frame from the emulated adapter
//! with every line dirty (the worst case; normally only changed lines are
//! converted), for a 1024x768x32 VBE mode, 1920x1080x32, an 8-bit VBE
//! mode through the DAC, VGA text mode 3 (720x400) and mode 12h planar
//! (640x480). Criterion's time per iteration is the time per frame.
//!
//! cargo bench -p ferrite-benches --bench display

use criterion::{criterion_group, criterion_main, Criterion};
use ferrite_core::{AccessSize, Nanos};
use ferrite_devices::vga::{vbe, Vga};
use ferrite_devices::{DevCtx, IrqLines, PortIo};

fn out(v: &mut Vga, port: u16, size: AccessSize, value: u32) {
    let mut irq = IrqLines::default();
    let mut cx = DevCtx { now: Nanos::ZERO, irq: &mut irq };
    v.io_write(port, size, value, &mut cx);
}

fn dispi(v: &mut Vga, index: u16, value: u16) {
    out(v, 0x1CE, AccessSize::Word, index as u32);
    out(v, 0x1CF, AccessSize::Word, value as u32);
}

fn vbe_mode(w: u16, h: u16, bpp: u16) -> Vga {
    let mut v = Vga::new();
    dispi(&mut v, vbe::INDEX_BPP, bpp);
    dispi(&mut v, vbe::INDEX_XRES, w);
    dispi(&mut v, vbe::INDEX_YRES, h);
    dispi(&mut v, vbe::INDEX_ENABLE, vbe::ENABLED | vbe::LFB_ENABLED);
    v
}

/// Registers of a standard mode (misc, SR1-4, CR0-18, GR0-8, AR0-13h).
fn std_mode(misc: u8, seq: [u8; 4], crtc: [u8; 25], gc: [u8; 9], attr: [u8; 20]) -> Vga {
    let mut v = Vga::new();
    out(&mut v, 0x3C2, AccessSize::Byte, misc as u32);
    for (i, x) in seq.into_iter().enumerate() {
        out(&mut v, 0x3C4, AccessSize::Word, (x as u32) << 8 | (i as u32 + 1));
    }
    for (i, x) in crtc.into_iter().enumerate() {
        out(&mut v, 0x3D4, AccessSize::Word, (x as u32) << 8 | i as u32);
    }
    for (i, x) in gc.into_iter().enumerate() {
        out(&mut v, 0x3CE, AccessSize::Word, (x as u32) << 8 | i as u32);
    }
    for (i, x) in attr.into_iter().enumerate() {
        out(&mut v, 0x3C0, AccessSize::Byte, i as u32);
        out(&mut v, 0x3C0, AccessSize::Byte, x as u32);
    }
    out(&mut v, 0x3C0, AccessSize::Byte, 0x20);
    v
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("frame");
    let mem: Vec<u8> = (0..16u32 << 20).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    for (name, w, h, bpp) in
        [("vbe_1024x768x32", 1024, 768, 32), ("vbe_1920x1080x32", 1920, 1080, 32), ("vbe_1024x768x8", 1024, 768, 8)]
    {
        let mut v = vbe_mode(w, h, bpp);
        let mut y = 0u16;
        g.bench_function(name, |b| {
            b.iter(|| {
                // A display-start write makes every line dirty.
                y ^= 1;
                dispi(&mut v, vbe::INDEX_Y_OFFSET, y);
                v.render(Nanos::ZERO, &mem).changed.len()
            })
        });
    }
    let text = std_mode(
        0x67,
        [0x00, 0x03, 0x00, 0x02],
        [
            0x5F, 0x4F, 0x50, 0x82, 0x55, 0x81, 0xBF, 0x1F, 0x00, 0x4F, 0x0D, 0x0E, 0x00, 0x00, 0x00, 0x00, 0x9C, 0x8E,
            0x8F, 0x28, 0x1F, 0x96, 0xB9, 0xA3, 0xFF,
        ],
        [0, 0, 0, 0, 0, 0x10, 0x0E, 0, 0xFF],
        [0, 1, 2, 3, 4, 5, 0x14, 7, 0x38, 0x39, 0x3A, 0x3B, 0x3C, 0x3D, 0x3E, 0x3F, 0x0C, 0, 0x0F, 8],
    );
    let planar = std_mode(
        0xE3,
        [0x01, 0x0F, 0x00, 0x06],
        [
            0x5F, 0x4F, 0x50, 0x82, 0x54, 0x80, 0x0B, 0x3E, 0x00, 0x40, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xEA, 0x8C,
            0xDF, 0x28, 0x00, 0xE7, 0x04, 0xE3, 0xFF,
        ],
        [0, 0, 0, 0, 0, 0, 0x05, 0x0F, 0xFF],
        [0, 1, 2, 3, 4, 5, 0x14, 7, 0x38, 0x39, 0x3A, 0x3B, 0x3C, 0x3D, 0x3E, 0x3F, 0x01, 0, 0x0F, 0],
    );
    for (name, mut v) in [("text_720x400", text), ("mode12h_640x480", planar)] {
        for a in 0..0x10000u32 {
            let b = (a.wrapping_mul(2_654_435_761) >> 11) as u8;
            v.mem_write(0xA0000 + a, b);
            v.mem_write(0xB8000 + (a & 0x7FFF), b);
        }
        let mut k = 0u8;
        g.bench_function(name, |b| {
            b.iter(|| {
                // A DAC write makes every line dirty.
                k = k.wrapping_add(1);
                out(&mut v, 0x3C8, AccessSize::Byte, 200);
                for _ in 0..3 {
                    out(&mut v, 0x3C9, AccessSize::Byte, (k & 0x3F) as u32);
                }
                v.render(Nanos::ZERO, &[]).changed.len()
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
