//! What the frontend's integration tests share: the fetched-guest cache
//! and PNG pictures.

// Each test binary uses a part of this module.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// The fetched-guest cache (`FERRITE_CACHE`, default `cache/guests`).
pub fn guest_cache() -> PathBuf {
    std::env::var_os("FERRITE_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../cache/guests"))
}

/// A fetched guest file, if present.
pub fn guest_file(rel: &str) -> Option<PathBuf> {
    let p = guest_cache().join(rel);
    p.exists().then_some(p)
}

/// Decode an 8-bit RGB PNG into (width, height, RGB bytes).
pub fn read_png(path: &Path) -> (u32, u32, Vec<u8>) {
    let file = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut dec = png::Decoder::new(std::io::BufReader::new(file)).read_info().unwrap();
    let mut buf = vec![0; dec.output_buffer_size().unwrap()];
    let info = dec.next_frame(&mut buf).unwrap();
    assert_eq!(info.color_type, png::ColorType::Rgb, "{}", path.display());
    buf.truncate(info.buffer_size());
    (info.width, info.height, buf)
}
