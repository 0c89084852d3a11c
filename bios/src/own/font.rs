//! The text-mode fonts a VGA BIOS loads into plane 2: 256 glyphs of 8x16,
//! 8x14 and 8x8 pixels in IBM code page 437 order, one byte per row, bit 7
//! the leftmost pixel. INT 10h loads them into plane 2 on a text mode set
//! (the height the mode uses) and on AX=11xxh (AL=01h/11h 8x14, 02h/12h
//! 8x8, 04h/14h 8x16), and hands out their addresses through AX=1130h.
//!
//! Where the glyphs come from: GNU Unifont (version 15.1.05), the 8x16
//! halfwidth glyphs as the `unifont` crate on crates.io packages them. The
//! crate's Rust code is under the MIT licence; the glyphs it embeds are
//! GNU Unifont's, which are dual-licensed under the GNU GPL version 2 or
//! later with the GNU font embedding exception, or (since Unifont
//! 13.0.04) the SIL Open Font License 1.1. The crate does not ship those
//! licence texts. The OFL lets a font and fonts derived from it be bundled
//! and embedded with software under any licence, as long as the font and
//! its derivatives (the 8x14 and 8x8 sets made here are) stay under the
//! OFL. None of the glyphs come from IBM's ROM fonts: the code page table
//! below only says which Unicode character each code shows, and the
//! bitmaps are Unifont's drawings of those characters.
//!
//! The 8x16 set is Unifont's glyph for each [`CP437`] character as it is.
//! The 8x14 and 8x8 sets are derived from it here, by the rules on
//! [`font_8x14`] and [`font_8x8`]. Every code page 437 character has a
//! halfwidth Unifont glyph, and Unifont's box-drawing and block glyphs
//! already reach the cell edges, so no glyph is drawn here by hand; the
//! tests check both.

use std::sync::OnceLock;

/// IBM code page 437: the Unicode character each code shows in text mode.
/// Code 00h is a blank (it shows nothing on the PC either); 01h-1Fh and
/// 7Fh are the graphic characters the PC draws for those codes.
#[rustfmt::skip]
pub const CP437: [char; 256] = [
    // 00h-1Fh
    ' ', '☺', '☻', '♥', '♦', '♣', '♠', '•', '◘', '○', '◙', '♂', '♀', '♪', '♫', '☼',
    '►', '◄', '↕', '‼', '¶', '§', '▬', '↨', '↑', '↓', '→', '←', '∟', '↔', '▲', '▼',
    // 20h-7Fh: ASCII, with the house at 7Fh
    ' ', '!', '"', '#', '$', '%', '&', '\'', '(', ')', '*', '+', ',', '-', '.', '/',
    '0', '1', '2', '3', '4', '5', '6', '7', '8', '9', ':', ';', '<', '=', '>', '?',
    '@', 'A', 'B', 'C', 'D', 'E', 'F', 'G', 'H', 'I', 'J', 'K', 'L', 'M', 'N', 'O',
    'P', 'Q', 'R', 'S', 'T', 'U', 'V', 'W', 'X', 'Y', 'Z', '[', '\\', ']', '^', '_',
    '`', 'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j', 'k', 'l', 'm', 'n', 'o',
    'p', 'q', 'r', 's', 't', 'u', 'v', 'w', 'x', 'y', 'z', '{', '|', '}', '~', '⌂',
    // 80h-AFh: accented letters, currency, punctuation
    'Ç', 'ü', 'é', 'â', 'ä', 'à', 'å', 'ç', 'ê', 'ë', 'è', 'ï', 'î', 'ì', 'Ä', 'Å',
    'É', 'æ', 'Æ', 'ô', 'ö', 'ò', 'û', 'ù', 'ÿ', 'Ö', 'Ü', '¢', '£', '¥', '₧', 'ƒ',
    'á', 'í', 'ó', 'ú', 'ñ', 'Ñ', 'ª', 'º', '¿', '⌐', '¬', '½', '¼', '¡', '«', '»',
    // B0h-DFh: shades, box drawing, blocks
    '░', '▒', '▓', '│', '┤', '╡', '╢', '╖', '╕', '╣', '║', '╗', '╝', '╜', '╛', '┐',
    '└', '┴', '┬', '├', '─', '┼', '╞', '╟', '╚', '╔', '╩', '╦', '╠', '═', '╬', '╧',
    '╨', '╤', '╥', '╙', '╘', '╒', '╓', '╫', '╪', '┘', '┌', '█', '▄', '▌', '▐', '▀',
    // E0h-FFh: Greek and mathematics, the square, the no-break space
    'α', 'ß', 'Γ', 'π', 'Σ', 'σ', 'µ', 'τ', 'Φ', 'Θ', 'Ω', 'δ', '∞', 'φ', 'ε', '∩',
    '≡', '±', '≥', '≤', '⌠', '⌡', '÷', '≈', '°', '∙', '·', '√', 'ⁿ', '²', '■', '\u{a0}',
];

/// Drawn for a code whose character has no halfwidth Unifont glyph. With
/// Unifont 15.1 that is no code at all (a test checks it); the fallback is
/// there so that a newer `unifont` release that dropped or widened a glyph
/// shows something visible instead of a hole.
const FALLBACK: char = '?';

/// The 8x16 font: Unifont's halfwidth glyph for each [`CP437`] character,
/// unchanged (code 00h all blank). 4096 bytes, glyph `c` at `16 * c`.
pub fn font_8x16() -> &'static [u8; 4096] {
    static FONT: OnceLock<[u8; 4096]> = OnceLock::new();
    FONT.get_or_init(build_8x16)
}

/// The 8x14 font (EGA text modes, AX=1111h), derived from the 8x16 glyphs.
/// 3584 bytes, glyph `c` at `14 * c`.
///
/// Unifont draws capitals in rows 4-13, descenders in rows 14-15 and the
/// accents of capitals in rows 0-1, so a glyph cannot just lose its top and
/// bottom rows. For text glyphs rows 4-15 are kept as they are (so the
/// baseline and descenders match the 8x16 font, shifted up by two rows)
/// and rows 0-3, the accent and ascender space, are squeezed into two
/// rows: where rows 0-1 are blank, which is most glyphs, that is rows 2-3
/// unchanged; otherwise each of the two rows is one source row or the OR
/// of a run of them, chosen to change the fewest pixels.
///
/// Box-drawing, shade and block glyphs (B0h-DFh) must join the cells above
/// and below, and their horizontal strokes are all in rows 6-8, so they
/// lose rows 3 and 12 instead, which only repeat their neighbours: lines
/// still reach rows 0 and 13, double lines keep their gap and the half
/// blocks split 7/7. The shades (and the glyphs that are only vertical
/// strokes or fills) repeat every two rows; they keep rows 0-13, which
/// tile without a seam, where dropping single rows would break the dither.
pub fn font_8x14() -> &'static [u8; 3584] {
    static FONT: OnceLock<[u8; 3584]> = OnceLock::new();
    FONT.get_or_init(|| build_8x14(font_8x16()))
}

/// The 8x8 font (CGA-height text modes such as 80x50, AX=1112h), derived
/// from the 8x16 glyphs. 2048 bytes, glyph `c` at `8 * c`.
///
/// Halving the height by OR-ing or picking fixed pairs of rows smears or
/// drops the one-row strokes letters are made of (the bar of an `e`, the
/// middle of an `E`), so text glyphs are squeezed by zones that keep the
/// metrics of the IBM 8x8 fonts (capitals in rows 0-6, lower case in
/// rows 2-6, descenders in row 7):
/// - rows 0-5 (accents, ascenders, top of the capitals) become rows 0-1:
///   for a glyph with ink in rows 0-1 (an accented capital) the OR of
///   rows 0-3 (the accent) and row 4 (the top of the letter); otherwise
///   rows 0-5 are squeezed into two as rows 6-13 are below, except that
///   blank rows above the ink drop for free, so an `i` keeps its dot and
///   the gap below it;
/// - rows 6-13 (the x-height, the capitals' lower part) are squeezed
///   into rows 2-6, each output row one source row or the OR of a run of
///   consecutive source rows, chosen to change the fewest pixels (filling
///   a gap between two strokes costs as much as losing ink);
/// - row 7 is row 15, or row 14 where row 15 is blank.
///
/// Box-drawing and block glyphs (B0h-DFh) keep rows 0, 3, 6, 7, 8, 11,
/// 12 and 15: their horizontal strokes (rows 6-8) stay as they are, in
/// rows 2-4, lines reach rows 0 and 7 and the half blocks split 4/4. The
/// shades (and the other glyphs that repeat every two rows) keep rows 0-7.
pub fn font_8x8() -> &'static [u8; 2048] {
    static FONT: OnceLock<[u8; 2048]> = OnceLock::new();
    FONT.get_or_init(|| build_8x8(font_8x16()))
}

/// Unifont's halfwidth glyph for `c`, if it has one.
fn unifont_glyph(c: char) -> Option<[u8; 16]> {
    match unifont::get_glyph(c) {
        Some(unifont::Glyph::Halfwidth(rows)) => Some(*rows),
        _ => None,
    }
}

fn build_8x16() -> [u8; 4096] {
    let mut font = [0u8; 4096];
    // Code 00h stays all blank.
    for code in 1..256 {
        let glyph =
            unifont_glyph(CP437[code]).or_else(|| unifont_glyph(FALLBACK)).expect("Unifont has a glyph for '?'");
        font[code * 16..code * 16 + 16].copy_from_slice(&glyph);
    }
    font
}

fn glyph16(font: &[u8; 4096], code: usize) -> &[u8; 16] {
    font[code * 16..code * 16 + 16].try_into().unwrap()
}

/// Box-drawing, shade and block characters: their glyphs join the cells
/// around them, so the derived fonts keep their edge rows and strokes.
fn joins_cells(code: usize) -> bool {
    (0xB0..=0xDF).contains(&code)
}

/// The glyph repeats every two rows (shades, plain vertical strokes,
/// fills): any even number of its first rows tiles seamlessly.
fn repeats_every_two_rows(glyph: &[u8; 16]) -> bool {
    (0..14).all(|i| glyph[i] == glyph[i + 2])
}

fn build_8x14(font16: &[u8; 4096]) -> [u8; 3584] {
    let mut font = [0u8; 3584];
    for code in 0..256 {
        let src = glyph16(font16, code);
        let dst = &mut font[code * 14..code * 14 + 14];
        if joins_cells(code) {
            if repeats_every_two_rows(src) {
                dst.copy_from_slice(&src[..14]);
            } else {
                let kept = (0..16).filter(|&row| row != 3 && row != 12);
                for (d, row) in dst.iter_mut().zip(kept) {
                    *d = src[row];
                }
            }
        } else {
            squash(&src[0..4], &mut dst[0..2], true);
            dst[2..14].copy_from_slice(&src[4..16]);
        }
    }
    font
}

fn build_8x8(font16: &[u8; 4096]) -> [u8; 2048] {
    const JOINING_ROWS: [usize; 8] = [0, 3, 6, 7, 8, 11, 12, 15];
    let mut font = [0u8; 2048];
    for code in 0..256 {
        let src = glyph16(font16, code);
        let dst = &mut font[code * 8..code * 8 + 8];
        if joins_cells(code) {
            if repeats_every_two_rows(src) {
                dst.copy_from_slice(&src[..8]);
            } else {
                for (d, &row) in dst.iter_mut().zip(JOINING_ROWS.iter()) {
                    *d = src[row];
                }
            }
            continue;
        }
        if src[0] | src[1] != 0 {
            dst[0] = src[0] | src[1] | src[2] | src[3];
            dst[1] = src[4];
        } else {
            squash(&src[0..6], &mut dst[0..2], true);
        }
        squash(&src[6..14], &mut dst[2..7], false);
        dst[7] = if src[15] != 0 { src[15] } else { src[14] };
    }
    font
}

/// Cost of one pixel changed in a row with ink, or in a blank row between
/// two rows with ink (filling such a gap merges two strokes).
const INK_WEIGHT: u32 = 4;
/// Cost of one pixel of ink spread into a blank row above or below the
/// ink (a margin row).
const MARGIN_WEIGHT: u32 = 1;

/// Squeeze `src` into the `dst.len()` rows of `dst`: the source rows are
/// cut into that many runs of consecutive rows, and each output row is
/// one of its run's rows or the OR of the run. The cuts and rows chosen
/// are those that change the fewest pixels, weighted by [`INK_WEIGHT`]
/// and [`MARGIN_WEIGHT`] (margin rows cost nothing with `free_margins`).
/// Ties go to the cuts that make the earlier runs the longest, which
/// keeps the gap below an accent or a dot.
fn squash(src: &[u8], dst: &mut [u8], free_margins: bool) {
    let (m, n) = (src.len(), dst.len());
    assert!(0 < n && n <= m && m <= 16);
    let first_ink = src.iter().position(|&r| r != 0);
    let last_ink = src.iter().rposition(|&r| r != 0);
    let blank_weight = |row: usize| match (first_ink, last_ink) {
        (Some(first), Some(last)) if first < row && row < last => INK_WEIGHT,
        _ if free_margins => 0,
        _ => MARGIN_WEIGHT,
    };
    // The best output row for src[a..b] and what it costs.
    let run = |a: usize, b: usize| -> (u32, u8) {
        let or = src[a..b].iter().fold(0, |acc, &r| acc | r);
        src[a..b]
            .iter()
            .copied()
            .filter(|&r| r != 0)
            .chain(std::iter::once(or))
            .map(|value| {
                let cost = (a..b)
                    .map(|row| match src[row] {
                        0 => blank_weight(row) * value.count_ones(),
                        r => INK_WEIGHT * (value ^ r).count_ones(),
                    })
                    .sum();
                (cost, value)
            })
            .min_by_key(|&(cost, _)| cost)
            .unwrap()
    };
    // best[i][k]: the cost of the first i source rows in k runs and where
    // the last of those runs starts.
    let mut best = [[None::<(u32, usize)>; 17]; 17];
    best[0][0] = Some((0, 0));
    for i in 1..=m {
        for k in 1..=n.min(i) {
            for j in (k - 1..i).rev() {
                let Some((before, _)) = best[j][k - 1] else {
                    continue;
                };
                let cost = before + run(j, i).0;
                if best[i][k].is_none_or(|(c, _)| cost < c) {
                    best[i][k] = Some((cost, j));
                }
            }
        }
    }
    let mut i = m;
    for k in (1..=n).rev() {
        let (_, j) = best[i][k].unwrap();
        dst[k - 1] = run(j, i).1;
        i = j;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn glyph(font: &[u8], height: usize, code: usize) -> &[u8] {
        &font[code * height..code * height + height]
    }

    fn art(rows: &[u8]) -> Vec<String> {
        rows.iter().map(|r| (0..8).map(|x| if r & (0x80 >> x) != 0 { '#' } else { '.' }).collect()).collect()
    }

    fn fonts() -> [(&'static [u8], usize); 3] {
        [(&font_8x16()[..], 16), (&font_8x14()[..], 14), (&font_8x8()[..], 8)]
    }

    #[test]
    fn font_table_is_code_page_437() {
        for (code, &c) in CP437.iter().enumerate().take(0x7F).skip(0x20) {
            assert_eq!(c, char::from(code as u8));
        }
        assert_eq!(CP437[b'A' as usize], 'A');
        assert_eq!(CP437[0x00], ' ');
        assert_eq!(CP437[0x01], '☺');
        assert_eq!(CP437[0x0F], '☼');
        assert_eq!(CP437[0x1F], '▼');
        assert_eq!(CP437[0x7F], '⌂');
        assert_eq!(CP437[0x80], 'Ç');
        assert_eq!(CP437[0x9E], '₧');
        assert_eq!(CP437[0xA8], '¿');
        assert_eq!(CP437[0xB0], '░');
        assert_eq!(CP437[0xB3], '│');
        assert_eq!(CP437[0xC4], '─');
        assert_eq!(CP437[0xC9], '╔');
        assert_eq!(CP437[0xDB], '█');
        assert_eq!(CP437[0xDF], '▀');
        assert_eq!(CP437[0xE1], 'ß');
        assert_eq!(CP437[0xE6], '\u{b5}');
        assert_eq!(CP437[0xF9], '\u{2219}');
        assert_eq!(CP437[0xFA], '\u{b7}');
        assert_eq!(CP437[0xFE], '■');
        assert_eq!(CP437[0xFF], '\u{a0}');
        // Every character but the two spaces (20h and FFh, the blank at
        // 00h aside) appears once.
        for (i, a) in CP437.iter().enumerate() {
            for b in &CP437[i + 1..] {
                assert!(a != b || *a == ' ', "{a:?} twice");
            }
        }
    }

    #[test]
    fn font_every_code_has_a_unifont_glyph() {
        // No code falls back to FALLBACK with Unifont 15.1.05.
        let missing: Vec<usize> = (1..256).filter(|&code| unifont_glyph(CP437[code]).is_none()).collect();
        assert_eq!(missing, [0usize; 0], "codes drawn with {FALLBACK:?}");
        let font = font_8x16();
        for (code, &c) in CP437.iter().enumerate().skip(1) {
            assert_eq!(glyph(font, 16, code), unifont_glyph(c).unwrap());
        }
    }

    #[test]
    fn font_blank_glyphs() {
        for (font, height) in fonts() {
            for code in [0x00, 0x20, 0xFF] {
                assert!(glyph(font, height, code).iter().all(|&r| r == 0), "8x{height} glyph {code:02X}h is not blank");
            }
        }
    }

    #[test]
    fn font_letters_have_ink() {
        // Unifont's "A", rows 4-13.
        let a16 = [0, 0, 0, 0, 0x18, 0x24, 0x24, 0x42, 0x42, 0x7E, 0x42, 0x42, 0x42, 0x42, 0, 0];
        assert_eq!(glyph(font_8x16(), 16, 0x41), a16);
        assert_eq!(glyph(font_8x14(), 14, 0x41), &a16[2..]);
        assert_eq!(glyph(font_8x8(), 8, 0x41), [0x18, 0x24, 0x24, 0x42, 0x7E, 0x42, 0x42, 0x00]);
        for (font, height) in fonts() {
            for code in (0x21..0x7F).chain(0x80..0xFF) {
                assert!(glyph(font, height, code).iter().any(|&r| r != 0), "8x{height} glyph {code:02X}h is blank");
            }
            // Letters stay different from each other.
            for a in (b'A'..=b'Z').chain(b'a'..=b'z').chain(b'0'..=b'9') {
                for b in (b'A'..=b'Z').chain(b'a'..=b'z').chain(b'0'..=b'9') {
                    if a < b {
                        assert_ne!(
                            glyph(font, height, a.into()),
                            glyph(font, height, b.into()),
                            "8x{height}: {} and {} look the same",
                            a as char,
                            b as char
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn font_box_drawing_joins_cells() {
        for (font, height) in fonts() {
            let last = height - 1;
            let g = |code| glyph(font, height, code);
            // ─ and ═: a full-width row.
            assert!(g(0xC4).contains(&0xFF), "8x{height} ─");
            assert_eq!(g(0xCD).iter().filter(|&&r| r == 0xFF).count(), 2);
            // │ and ║: the same column set in the top and bottom rows.
            for code in [0xB3, 0xBA, 0xC5, 0xCE, 0xB4, 0xC3] {
                assert!(g(code)[0] & g(code)[last] != 0, "8x{height} {code:02X}h");
            }
            // ┌ ┐: a line into the bottom row only; └ ┘ the top.
            for code in [0xDA, 0xBF, 0xC9, 0xBB] {
                assert!(g(code)[0] == 0 && g(code)[last] != 0);
            }
            for code in [0xC0, 0xD9, 0xC8, 0xBC] {
                assert!(g(code)[0] != 0 && g(code)[last] == 0);
            }
            // ┼: the horizontal row reaches both sides.
            let cross = g(0xC5).iter().find(|&&r| r == 0xFF);
            assert!(cross.is_some(), "8x{height} ┼");
            assert!(g(0xDB).iter().all(|&r| r == 0xFF));
            assert!(g(0xDD).iter().all(|&r| r == 0xF0));
            assert!(g(0xDE).iter().all(|&r| r == 0x0F));
            let half = height / 2;
            assert!(g(0xDC)[..half].iter().all(|&r| r == 0));
            assert!(g(0xDC)[half..].iter().all(|&r| r == 0xFF));
            assert!(g(0xDF)[..half].iter().all(|&r| r == 0xFF));
            assert!(g(0xDF)[half..].iter().all(|&r| r == 0));
            // Shades tile: they keep alternating rows up to the edges.
            for code in 0xB0..=0xB2 {
                for row in 0..height - 2 {
                    assert_eq!(g(code)[row], g(code)[row + 2]);
                }
                assert_ne!(g(code)[last], g(code)[0]);
            }
            for code in 0xB0..=0xDF {
                // Nothing of the 8x16 glyph is lost: every row it has
                // is still there.
                let full = glyph(font_8x16(), 16, code);
                for r in full {
                    assert!(g(code).contains(r), "8x{height} {code:02X}h lost {r:02X}");
                }
            }
        }
        // ─: line pixels in columns 0 and 7 of one row; │: a pixel in rows
        // 0 and 15 of one column (the 8x16 glyphs, which the others keep).
        let f16 = font_8x16();
        assert!(glyph(f16, 16, 0xC4).iter().any(|&r| r & 0x81 == 0x81));
        assert!(glyph(f16, 16, 0xB3)[0] & glyph(f16, 16, 0xB3)[15] != 0);
    }

    #[test]
    fn font_derived_glyphs_keep_their_edges() {
        // A glyph that touches the top (bottom) row in 8x16 touches the
        // top (bottom) row of every font: box lines and blocks, but also
        // the ⌠⌡ halves, ◘◙, the arrows and the descenders.
        let f16 = font_8x16();
        for (font, height) in fonts() {
            for code in 0..256 {
                let (full, g) = (glyph(f16, 16, code), glyph(font, height, code));
                assert!(full[0] == 0 || g[0] != 0, "8x{height} {code:02X}h top");
                assert!(full[15] == 0 || g[height - 1] != 0, "8x{height} {code:02X}h bottom");
                if joins_cells(code) {
                    assert_eq!(full[0] != 0, g[0] != 0, "8x{height} {code:02X}h top");
                    assert_eq!(full[15] != 0, g[height - 1] != 0, "8x{height} {code:02X}h");
                }
            }
        }
    }

    #[test]
    fn font_is_deterministic() {
        let f16 = build_8x16();
        assert_eq!(&f16, font_8x16());
        assert_eq!(&build_8x14(&f16), font_8x14());
        assert_eq!(&build_8x8(&f16), font_8x8());
    }

    #[test]
    fn font_squash_keeps_strokes_and_gaps() {
        // Three bars with gaps, in five rows: all three bars stay apart.
        let mut out = [0u8; 5];
        squash(&[0, 0x7E, 0, 0x7E, 0, 0x7E, 0, 0], &mut out, false);
        assert_eq!(out.iter().filter(|&&r| r == 0x7E).count(), 3);
        assert!(out.windows(2).all(|w| w[0] == 0 || w[1] == 0));
        // A dot above a gap keeps the gap.
        let mut out = [0u8; 2];
        squash(&[0, 0, 0, 0x08, 0x08, 0], &mut out, true);
        assert_eq!(out, [0x08, 0]);
    }

    /// Run with `--nocapture` to look at the derived fonts.
    #[test]
    fn font_samples_as_ascii_art() {
        let sample = "AaBeg&Äéñ─╬═▀▄░";
        let codes: Vec<usize> = sample.chars().filter_map(|c| CP437.iter().position(|&x| x == c)).collect();
        for (font, height) in fonts() {
            println!("8x{height}:");
            let glyphs: Vec<Vec<String>> = codes.iter().map(|&c| art(glyph(font, height, c))).collect();
            for row in 0..height {
                let line: Vec<&str> = glyphs.iter().map(|g| g[row].as_str()).collect();
                println!("  {}", line.join(" "));
            }
        }
    }
}
