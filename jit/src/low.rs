//! Boxes placed in the low 2 GiB of the address space where the host
//! allows it (x86-64 Linux, `MAP_32BIT`). Translated code then reaches a
//! table in one with a 32-bit displacement in the access itself
//! (`[index + table]`) instead of first loading a 64-bit constant into a
//! register: ten bytes and a register fewer at every inline guest memory
//! access. Elsewhere, or when the kernel has no low memory to give, it is
//! an ordinary heap box and the code takes the long form.

use std::ops::{Deref, DerefMut};
use std::ptr::NonNull;

pub(crate) struct LowBox<T> {
    ptr: NonNull<T>,
    /// Mapped by `new` (unmapped on drop), else a leaked `Box`.
    mapped: bool,
}

// SAFETY: a `LowBox` owns its value exclusively, like a `Box`.
unsafe impl<T: Send> Send for LowBox<T> {}

impl<T> LowBox<T> {
    pub(crate) fn new(value: Box<T>) -> LowBox<T> {
        #[cfg(all(target_os = "linux", target_arch = "x86_64"))]
        if std::mem::align_of::<T>() <= 4096 && std::mem::size_of::<T>() > 0 {
            // SAFETY: a fresh anonymous private mapping (no MAP_FIXED: the
            // kernel picks free addresses, nothing existing is touched).
            let p = unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    std::mem::size_of::<T>(),
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_32BIT,
                    -1,
                    0,
                )
            };
            if let Some(ptr) = NonNull::new(p.cast::<T>()).filter(|_| p != libc::MAP_FAILED) {
                // SAFETY: the mapping is page-aligned (enough for `T`),
                // writable and `size_of::<T>()` bytes long; the value is
                // moved out of its box, which is freed without dropping it.
                unsafe { ptr.as_ptr().write(*value) };
                return LowBox { ptr, mapped: true };
            }
        }
        LowBox { ptr: NonNull::from(Box::leak(value)), mapped: false }
    }

    /// The value's address.
    #[cfg(test)]
    pub(crate) fn addr(&self) -> u64 {
        self.ptr.as_ptr() as u64
    }
}

impl<T> Deref for LowBox<T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: `ptr` points to the live value this box owns.
        unsafe { self.ptr.as_ref() }
    }
}

impl<T> DerefMut for LowBox<T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`, and `&mut self` makes the access exclusive.
        unsafe { self.ptr.as_mut() }
    }
}

impl<T> Drop for LowBox<T> {
    fn drop(&mut self) {
        if self.mapped {
            // SAFETY: the value is live and dropped once; the mapping is
            // the one `new` made for it, unmapped after.
            unsafe {
                std::ptr::drop_in_place(self.ptr.as_ptr());
                #[cfg(all(target_os = "linux", target_arch = "x86_64"))]
                libc::munmap(self.ptr.as_ptr().cast(), std::mem::size_of::<T>());
            }
        } else {
            // SAFETY: the pointer came from `Box::leak` in `new`.
            drop(unsafe { Box::from_raw(self.ptr.as_ptr()) });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::LowBox;

    #[test]
    fn a_low_box_holds_and_drops_its_value() {
        let b = LowBox::new(Box::new([7u64; 10000]));
        assert!(b.iter().all(|&x| x == 7));
        #[cfg(all(target_os = "linux", target_arch = "x86_64"))]
        assert!(b.addr() + 80000 < 1 << 31, "not in the low 2 GiB: {:#x}", b.addr());
        let mut v = LowBox::new(Box::new(vec![1, 2, 3]));
        v.push(4);
        assert_eq!(*v, [1, 2, 3, 4]);
    }
}
