//! Segment files: the group's shared memory, on hugetlbfs when it can be had, else in /dev/shm.
#![allow(unsafe_code)] // wraps a fresh mmap in a Mapping

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::members::Membership;
use super::Mapping;
use crate::sys;

/// Where a segment's pages come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Backing {
    /// Normal 4 KiB pages in /dev/shm (tmpfs).
    Shm,
    /// Huge pages on hugetlbfs.
    Hugetlbfs,
}

impl Backing {
    pub(crate) fn as_u32(self) -> u32 {
        match self {
            Backing::Shm => 0,
            Backing::Hugetlbfs => 1,
        }
    }
}

impl std::fmt::Display for Backing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Backing::Shm => "/dev/shm (4 KiB pages)",
            Backing::Hugetlbfs => "hugetlbfs",
        })
    }
}

/// How the primary wants its memory.
#[derive(Debug, Clone)]
pub struct SegmentRequest {
    /// Bytes wanted (rounded up to the page size).
    pub len: usize,
    /// `--no-huge`: never try hugetlbfs.
    pub no_huge: bool,
    /// `--huge-dir`: a hugetlbfs mount to use instead of the first one found.
    pub huge_dir: Option<PathBuf>,
    /// File name stem, e.g. `shoal_<prefix>`.
    pub stem: String,
}

/// A mapped segment file.
#[derive(Debug)]
pub struct Segment {
    pub(crate) path: PathBuf,
    pub(crate) map: Arc<Mapping>,
    pub(crate) backing: Backing,
    pub(crate) page_size: usize,
}

impl Segment {
    /// Creates and maps a new segment, choosing the backing as the request says, and logging
    /// when huge pages were wanted but could not be had.
    pub fn create(req: &SegmentRequest) -> io::Result<Segment> {
        if !req.no_huge {
            match Self::try_huge(req) {
                Ok(Some(seg)) => return Ok(seg),
                Ok(None) => {}
                Err(e) => tracing::info!(
                    target: "shoal::memory",
                    "huge pages could not be used ({e}); falling back to /dev/shm"
                ),
            }
        }
        let path = PathBuf::from(format!("/dev/shm/{}_seg0", req.stem));
        let len = round_up(req.len, 4096);
        let file = create_file(&path, len)?;
        let map = map_file(file, &path, len, false).inspect_err(|_| {
            let _ = std::fs::remove_file(&path);
        })?;
        Ok(Segment {
            path,
            map,
            backing: Backing::Shm,
            page_size: 4096,
        })
    }

    fn try_huge(req: &SegmentRequest) -> io::Result<Option<Segment>> {
        let dir = match &req.huge_dir {
            Some(d) if sys::is_hugetlbfs(d) => d.clone(),
            Some(d) => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("--huge-dir {} is not a hugetlbfs mount", d.display()),
                ))
            }
            None => match sys::hugetlbfs_mount() {
                Some(d) => d,
                None => {
                    tracing::info!(
                        target: "shoal::memory",
                        "no hugetlbfs mounted; using /dev/shm with normal pages"
                    );
                    return Ok(None);
                }
            },
        };
        let (free, _total, page) = sys::hugepages().unwrap_or((0, 0, 2 << 20));
        let len = round_up(req.len, page as usize);
        let needed = (len as u64).div_ceil(page);
        if free < needed {
            tracing::info!(
                target: "shoal::memory",
                "{needed} huge pages needed, {free} free; using /dev/shm with normal pages"
            );
            return Ok(None);
        }
        let path = dir.join(format!("{}_seg0", req.stem));
        let file = create_file(&path, len)?;
        // MAP_POPULATE: take the pages now, so that a shortage is an error here and not a
        // SIGBUS later.
        match map_file(file, &path, len, true) {
            Ok(map) => Ok(Some(Segment {
                path,
                map,
                backing: Backing::Hugetlbfs,
                page_size: page as usize,
            })),
            Err(e) => {
                let _ = std::fs::remove_file(&path);
                Err(e)
            }
        }
    }

    /// Opens and maps an existing segment file (a secondary attaching).
    pub fn open(path: &Path) -> io::Result<Segment> {
        let file = OpenOptions::new().read(true).write(true).open(path)?;
        let len = file.metadata()?.len() as usize;
        if len == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "segment file is empty",
            ));
        }
        let backing = if sys::is_hugetlbfs(path) {
            Backing::Hugetlbfs
        } else {
            Backing::Shm
        };
        let map = map_file(file, path, len, false)?;
        let page_size = if backing == Backing::Hugetlbfs {
            sys::hugepages()
                .map(|(_, _, p)| p as usize)
                .unwrap_or(2 << 20)
        } else {
            4096
        };
        Ok(Segment {
            path: path.to_owned(),
            map,
            backing,
            page_size,
        })
    }

    /// The mapping.
    pub fn mapping(&self) -> &Arc<Mapping> {
        &self.map
    }

    /// The segment file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Where the pages come from.
    pub fn backing(&self) -> Backing {
        self.backing
    }
}

fn create_file(path: &Path, len: usize) -> io::Result<File> {
    let _ = std::fs::remove_file(path);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.set_len(len as u64).inspect_err(|_| {
        let _ = std::fs::remove_file(path);
    })?;
    Ok(file)
}

/// Maps the segment and opens the second description of it that holds this process's liveness
/// lock (see [`super::members`]).
fn map_file(file: File, path: &Path, len: usize, populate: bool) -> io::Result<Arc<Mapping>> {
    let lock = OpenOptions::new().read(true).write(true).open(path)?;
    let base = sys::mmap_shared(&file, len, populate)?;
    // SAFETY: `base` is a fresh mapping of `len` bytes that nothing else owns.
    let map = unsafe { Mapping::from_mmap(base, len) };
    Ok(Arc::new(map.with_membership(Membership::new(file, lock))))
}

pub(crate) fn round_up(n: usize, to: usize) -> usize {
    n.div_ceil(to) * to
}
