//! Screenshots: the VGA adapter's current picture as a PNG file, rendered
//! from the emulated adapter state (no window needed).

use std::fs::File;
use std::io::BufWriter;
use std::path::Path;

use anyhow::{bail, Context};
use ferrite_devices::vga::Frame;

/// Write `frame` as an 8-bit RGB PNG to `path`.
pub fn write_png(path: &Path, frame: &Frame) -> anyhow::Result<()> {
    if frame.width == 0 || frame.height == 0 {
        bail!("screenshot {}: the display shows no picture (adapter not programmed)", path.display());
    }
    let file = File::create(path).with_context(|| format!("cannot create screenshot {}", path.display()))?;
    let mut enc = png::Encoder::new(BufWriter::new(file), frame.width, frame.height);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    let rgb: Vec<u8> = frame
        .pixels
        .iter()
        .flat_map(|p| {
            let [r, g, b, _] = p.to_le_bytes();
            [r, g, b]
        })
        .collect();
    let mut w = enc.write_header().with_context(|| format!("screenshot {}", path.display()))?;
    w.write_image_data(&rgb).with_context(|| format!("writing screenshot {}", path.display()))?;
    w.finish().with_context(|| format!("writing screenshot {}", path.display()))?;
    Ok(())
}
