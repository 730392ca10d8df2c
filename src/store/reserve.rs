//! A reserve of disk space in the data directory (sled): one file of `RESERVE_BYTES`, written
//! when the server starts with room to spare, deleted when the store cannot be opened for lack
//! of room. sled writes when it opens, so without it a full disk would stop a restart from
//! serving the links it has.

use std::io::Write;
use std::path::{Path, PathBuf};

/// The reserve's size: sled opens and serves for a while in less (two of its 512 KiB segments).
pub const RESERVE_BYTES: usize = 1 << 20;

fn file(dir: &Path) -> PathBuf {
    dir.join("reserve")
}

/// What `keep` found.
#[derive(Debug, PartialEq)]
pub enum Reserve {
    /// There, whole.
    Kept,
    /// There was no room for it (a partial one is removed again).
    NoRoom,
}

/// Writes the reserve if it is missing or short (zeros, synced, so the blocks are the disk's),
/// and only where that leaves room: free space of at least twice the reserve after it.
pub fn keep(dir: &Path) -> std::io::Result<Reserve> {
    let path = file(dir);
    if std::fs::metadata(&path).is_ok_and(|m| m.len() >= RESERVE_BYTES as u64) {
        return Ok(Reserve::Kept);
    }
    if free_bytes(dir).is_some_and(|free| free < 3 * RESERVE_BYTES as u64) {
        return Ok(Reserve::NoRoom);
    }
    let written = std::fs::File::create(&path).and_then(|mut reserve| {
        reserve.write_all(&vec![0u8; RESERVE_BYTES])?;
        reserve.sync_all()
    });
    match written {
        Ok(()) => Ok(Reserve::Kept),
        Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => {
            std::fs::remove_file(&path)?;
            Ok(Reserve::NoRoom)
        }
        Err(e) => {
            let _ = std::fs::remove_file(&path);
            Err(e)
        }
    }
}

/// The bytes an unprivileged process may still write on the file system holding `dir`.
pub fn free_bytes(dir: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    let mut stats = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `path` is NUL-terminated and `stats` is a buffer of the type statvfs(3) fills.
    let stats = unsafe {
        if libc::statvfs(path.as_ptr(), stats.as_mut_ptr()) != 0 {
            return None;
        }
        stats.assume_init()
    };
    // Both are u64 on Linux: no conversion needed.
    Some(stats.f_bavail.saturating_mul(stats.f_frsize))
}

/// Deletes the reserve; whether there was one to free.
pub fn release(dir: &Path) -> bool {
    std::fs::remove_file(file(dir)).is_ok()
}

/// Whether an error (as sled words it) is a full disk.
pub fn is_disk_full(error: &str) -> bool {
    error.contains("No space left on device") || error.contains("StorageFull")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reserve_is_written_once_and_released_once() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(keep(dir.path()).unwrap(), Reserve::Kept);
        let len = std::fs::metadata(file(dir.path())).unwrap().len();
        assert_eq!(len, RESERVE_BYTES as u64);
        assert_eq!(keep(dir.path()).unwrap(), Reserve::Kept);
        assert!(release(dir.path()));
        assert!(!release(dir.path()));
        assert!(free_bytes(dir.path()).is_some_and(|free| free > 0));
    }

    #[test]
    fn a_full_disk_is_recognised_in_sleds_words() {
        let sled = "IO error: No space left on device (os error 28)";
        assert!(is_disk_full(sled));
        assert!(!is_disk_full("IO error: Permission denied (os error 13)"));
    }
}
