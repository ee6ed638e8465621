// SPDX-License-Identifier: LGPL-2.1-or-later
//! mem.rs - memory shared by every worker process of a device: mapped
//! MAP_SHARED in the supervisor (in setup), so each worker forked after it,
//! and each replacement of a crashed one, sees the same bytes.

use std::os::raw::{c_int, c_void};
use std::ptr::NonNull;

use crate::Error;

extern "C" {
    fn mmap(
        addr: *mut c_void,
        len: usize,
        prot: c_int,
        flags: c_int,
        fd: c_int,
        off: i64,
    ) -> *mut c_void;
    fn munmap(addr: *mut c_void, len: usize) -> c_int;
    fn madvise(addr: *mut c_void, len: usize, advice: c_int) -> c_int;
}

const PROT_READ: c_int = 1;
const PROT_WRITE: c_int = 2;
const MAP_SHARED: c_int = 0x01;
const MAP_ANONYMOUS: c_int = 0x20;
const MAP_NORESERVE: c_int = 0x4000;
const MADV_REMOVE: c_int = 9;
const PAGE: u64 = 4096;

/// Bytes shared by every process of the device, zero at first. Its pages are
/// taken when first written (MAP_NORESERVE), so a large device costs only
/// what is stored. Accesses from several queues at once behave as a disk
/// does: no order between overlapping writes in flight together.
pub struct SharedMemory {
    base: NonNull<u8>,
    len: u64,
}

// Safety: the mapping is plain memory that every method reaches through raw
// pointers, within bounds; it is shared as a disk is (see above).
unsafe impl Send for SharedMemory {}
unsafe impl Sync for SharedMemory {}

impl SharedMemory {
    /// Map `len` bytes (call it in setup, before the workers are forked).
    pub fn new(len: u64) -> Result<SharedMemory, Error> {
        if len == 0 || len > isize::MAX as u64 {
            return Err(Error::with_message(22, format!("shared memory of {} bytes", len)));
        }
        // Safety: a new anonymous mapping; no existing memory is touched.
        let p = unsafe {
            mmap(
                std::ptr::null_mut(),
                len as usize,
                PROT_READ | PROT_WRITE,
                MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE,
                -1,
                0,
            )
        };
        if p as isize == -1 {
            return Err(Error::from(std::io::Error::last_os_error()));
        }
        Ok(SharedMemory { base: NonNull::new(p.cast()).ok_or(Error::NO_MEMORY)?, len })
    }

    /// Its size in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether it has no bytes (never: new() refuses 0).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The first byte, for [`crate::Request::complete_copy`].
    pub(crate) fn at(&self, offset: u64, len: usize) -> Option<*mut u8> {
        let end = offset.checked_add(len as u64)?;
        if end > self.len {
            return None;
        }
        // Safety: offset + len is within the mapping.
        Some(unsafe { self.base.as_ptr().add(offset as usize) })
    }

    /// Copy `dst.len()` bytes from `offset`; EINVAL past the end.
    pub fn read_at(&self, offset: u64, dst: &mut [u8]) -> Result<(), Error> {
        let src = self.at(offset, dst.len()).ok_or(Error::INVALID)?;
        // Safety: src..src+len is in the mapping, dst is a distinct slice.
        unsafe { std::ptr::copy_nonoverlapping(src, dst.as_mut_ptr(), dst.len()) };
        Ok(())
    }

    /// Copy `src` to `offset`; EINVAL past the end.
    pub fn write_at(&self, offset: u64, src: &[u8]) -> Result<(), Error> {
        let dst = self.at(offset, src.len()).ok_or(Error::INVALID)?;
        // Safety: dst..dst+len is in the mapping, src is a distinct slice.
        unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), dst, src.len()) };
        Ok(())
    }

    /// Make `len` bytes at `offset` zero, giving whole pages back to the
    /// system (a discard, a write of zeroes); EINVAL past the end.
    pub fn zero(&self, offset: u64, len: u64) -> Result<(), Error> {
        if len > usize::MAX as u64 {
            return Err(Error::INVALID);
        }
        let start = self.at(offset, len as usize).ok_or(Error::INVALID)?;
        let first_page = (offset + PAGE - 1) / PAGE * PAGE;
        let end_page = (offset + len) / PAGE * PAGE;
        let mut freed = false;
        if end_page > first_page {
            // Safety: whole pages inside the mapping; shared anonymous memory
            // reads zeros after MADV_REMOVE.
            freed = unsafe {
                madvise(
                    self.base.as_ptr().add(first_page as usize).cast(),
                    (end_page - first_page) as usize,
                    MADV_REMOVE,
                ) == 0
            };
        }
        // what madvise did not free (partial pages, or all if it failed)
        let zero = |from: u64, to: u64| {
            if to > from {
                // Safety: from..to is within offset..offset+len.
                unsafe {
                    std::ptr::write_bytes(
                        start.add((from - offset) as usize),
                        0,
                        (to - from) as usize,
                    )
                };
            }
        };
        if freed {
            zero(offset, first_page.min(offset + len));
            zero(end_page.max(offset), offset + len);
        } else {
            zero(offset, offset + len);
        }
        Ok(())
    }
}

impl Drop for SharedMemory {
    fn drop(&mut self) {
        // Safety: the mapping made by new(), unmapped once.
        unsafe { munmap(self.base.as_ptr().cast(), self.len as usize) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_back_what_was_written_and_zeroes() {
        let m = SharedMemory::new(64 * 1024).unwrap();
        let data: Vec<u8> = (0..20000u32).map(|i| (i % 251) as u8 + 1).collect();
        m.write_at(1000, &data).unwrap();
        let mut back = vec![0u8; data.len()];
        m.read_at(1000, &mut back).unwrap();
        assert_eq!(back, data);
        m.zero(1500, 12000).unwrap();
        m.read_at(1000, &mut back).unwrap();
        assert!(back[..500].iter().zip(&data[..500]).all(|(a, b)| a == b));
        assert!(back[500..12500].iter().all(|&b| b == 0));
        assert_eq!(&back[12500..], &data[12500..]);
    }

    #[test]
    fn refuses_what_lies_outside() {
        let m = SharedMemory::new(8192).unwrap();
        let mut buf = [0u8; 16];
        assert_eq!(m.read_at(8190, &mut buf), Err(Error::INVALID));
        assert_eq!(m.write_at(u64::MAX - 4, &buf), Err(Error::INVALID));
        assert_eq!(m.zero(8000, 500), Err(Error::INVALID));
        assert!(SharedMemory::new(0).is_err());
    }

    #[test]
    fn is_shared_with_a_forked_child() {
        extern "C" {
            fn fork() -> c_int;
            fn waitpid(pid: c_int, status: *mut c_int, options: c_int) -> c_int;
            fn _exit(code: c_int) -> !;
        }
        let m = SharedMemory::new(4096).unwrap();
        // Safety: the child only writes to the mapping and exits.
        let pid = unsafe { fork() };
        assert!(pid >= 0);
        if pid == 0 {
            let _ = m.write_at(10, b"from the child");
            unsafe { _exit(0) };
        }
        let mut status = 0;
        unsafe { waitpid(pid, &mut status, 0) };
        let mut back = [0u8; 14];
        m.read_at(10, &mut back).unwrap();
        assert_eq!(&back, b"from the child");
    }
}
