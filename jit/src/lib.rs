//! ferrite-jit: the Cranelift dynamic binary translator.
//!
//! Not built yet (its own issue). It will discover hot regions from the
//! interpreter's profile, lower the shared decoded form to Cranelift IR, keep a
//! code cache keyed by (physical address, mode key) and invalidate it through
//! the same per-page code bits the interpreter's decode cache uses.

/// Whether translated code may run; the interpreter is always available.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum JitMode {
    /// Interpret only.
    #[default]
    Off,
    /// Translate hot code (not available until the translator lands).
    On,
}

impl JitMode {
    /// True when this build can honour the mode.
    pub fn available(self) -> bool {
        matches!(self, JitMode::Off)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_interpreter_is_available_before_the_translator_lands() {
        assert!(JitMode::Off.available());
        assert!(!JitMode::On.available());
    }
}
