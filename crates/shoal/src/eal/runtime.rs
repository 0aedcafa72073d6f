//! The runtime directory and the `config` file the primary holds a lock on while it lives.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::Error;
use crate::sys;

/// Where root's groups live.
const ROOT_BASE: &str = "/var/run/shoal";

/// `/var/run/shoal/<prefix>/` as root, else `$XDG_RUNTIME_DIR/shoal/<prefix>/` (or
/// `/tmp/shoal-<uid>/<prefix>/` when that is unset).
pub fn runtime_dir(prefix: &str) -> PathBuf {
    let base = if sys::geteuid() == 0 {
        PathBuf::from(ROOT_BASE)
    } else if let Some(x) = std::env::var_os("XDG_RUNTIME_DIR").filter(|x| !x.is_empty()) {
        PathBuf::from(x).join("shoal")
    } else {
        PathBuf::from(format!("/tmp/shoal-{}", sys::geteuid()))
    };
    base.join(prefix)
}

/// Creates the directory (and its parents) with mode 0700; returns the directories it
/// created, outermost first, for [`remove_created`]. Root's base directory is made 0711, so
/// that another user can find out that a group of a given name runs as root (and be told so,
/// rather than that there is none), without listing the groups or entering one.
pub fn ensure_dir(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut created: Vec<PathBuf> = dir
        .ancestors()
        .take_while(
            |d| matches!(std::fs::metadata(d), Err(e) if e.kind() == io::ErrorKind::NotFound),
        )
        .map(Path::to_path_buf)
        .collect();
    created.reverse();
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    if sys::geteuid() == 0 && dir.parent() == Some(Path::new(ROOT_BASE)) {
        let _ = std::fs::set_permissions(ROOT_BASE, std::fs::Permissions::from_mode(0o711));
    }
    Ok(created)
}

/// Removes what [`ensure_dir`] created, innermost first, as long as it is empty: a process
/// that failed to join leaves nothing behind.
pub fn remove_created(created: &[PathBuf]) {
    for d in created.iter().rev() {
        if std::fs::remove_dir(d).is_err() {
            return;
        }
    }
}

/// The error for a runtime directory that could not be used: [`Error::NotAccessible`] when
/// it exists and the cause is a permission (EACCES), [`Error::RuntimeDir`] otherwise.
pub fn dir_error(prefix: &str, dir: &Path, source: io::Error) -> Error {
    if source.kind() == io::ErrorKind::PermissionDenied && std::fs::metadata(dir).is_ok() {
        Error::NotAccessible {
            prefix: prefix.to_owned(),
            path: dir.to_owned(),
        }
    } else {
        Error::RuntimeDir {
            path: dir.to_owned(),
            source,
        }
    }
}

/// For a process that is not root: the group of this name that root runs, if there is one
/// (`/var/run/shoal/<prefix>` exists, see [`ensure_dir`]) and this user cannot enter it.
pub fn root_group_out_of_reach(prefix: &str) -> Option<Error> {
    if sys::geteuid() == 0 {
        return None;
    }
    let dir = Path::new(ROOT_BASE).join(prefix);
    std::fs::metadata(&dir).ok()?;
    match std::fs::read_dir(&dir) {
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => Some(Error::NotAccessible {
            prefix: prefix.to_owned(),
            path: dir,
        }),
        _ => None,
    }
}

/// What the primary writes into `config` once its memory is ready.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigInfo {
    pub pid: u32,
    pub layout_version: u64,
    pub segment: PathBuf,
    pub len: u64,
}

impl ConfigInfo {
    fn render(&self) -> String {
        format!(
            "pid={}\nversion={:#018x}\nsegment={}\nlen={}\n",
            self.pid,
            self.layout_version,
            self.segment.display(),
            self.len
        )
    }

    fn parse(text: &str) -> Option<ConfigInfo> {
        let get = |k: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(k).and_then(|r| r.strip_prefix('=')))
        };
        Some(ConfigInfo {
            pid: get("pid")?.parse().ok()?,
            layout_version: u64::from_str_radix(get("version")?.trim_start_matches("0x"), 16)
                .ok()?,
            segment: PathBuf::from(get("segment")?),
            len: get("len")?.parse().ok()?,
        })
    }
}

/// The `config` file, opened.
#[derive(Debug)]
pub struct ConfigFile {
    pub(crate) file: File,
    path: PathBuf,
    /// This process created the file.
    created: bool,
    /// Set while this process, which created the file and holds its lock, is becoming the
    /// primary: should it give up, the file is removed on drop, before the descriptor (and
    /// so the lock) goes, so that no other process can have taken it over.
    remove_on_drop: bool,
}

impl ConfigFile {
    /// Opens (creating if needed) the config file in `dir`.
    pub fn open_or_create(dir: &Path) -> io::Result<ConfigFile> {
        let path = dir.join("config");
        let mut open = OpenOptions::new();
        open.read(true).write(true).mode(0o600);
        let (file, created) = match open.clone().create_new(true).open(&path) {
            Ok(f) => (f, true),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => (open.open(&path)?, false),
            Err(e) => return Err(e),
        };
        Ok(ConfigFile {
            file,
            path,
            created,
            remove_on_drop: false,
        })
    }

    /// Opens an existing config file; `Ok(None)` when there is none.
    pub fn open_existing(dir: &Path) -> io::Result<Option<ConfigFile>> {
        let path = dir.join("config");
        match OpenOptions::new().read(true).write(true).open(&path) {
            Ok(file) => Ok(Some(ConfigFile {
                file,
                path,
                created: false,
                remove_on_drop: false,
            })),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Tries to become the primary: true when this process now holds the lock. The lock is an
    /// open-file-description lock: no other descriptor of the file that this process opens and
    /// closes (an inspector inside the primary, say) can drop it, and the kernel drops it when
    /// the primary dies, in whatever PID namespace it lives. When this process also created
    /// the file, the file goes when this value drops, unless [`ConfigFile::keep`] is called
    /// first.
    pub fn try_lock(&mut self) -> io::Result<bool> {
        let locked = sys::ofd_try_lock(&self.file, 0, 0)?;
        self.remove_on_drop = locked && self.created;
        Ok(locked)
    }

    /// Keeps the file when this value drops: the process became the primary, and removes the
    /// file itself when it leaves.
    pub fn keep(&mut self) {
        self.remove_on_drop = false;
    }

    /// True while a primary (another open file description) holds the lock.
    pub fn is_held(&self) -> io::Result<bool> {
        sys::ofd_locked(&self.file, 0, 0)
    }

    /// Empties the file: a new primary does this first, so that nobody reads a dead
    /// primary's segment path from it.
    pub fn clear(&mut self) -> io::Result<()> {
        self.file.set_len(0)
    }

    /// Writes the primary's information.
    pub fn write(&mut self, info: &ConfigInfo) -> io::Result<()> {
        self.file.set_len(0)?;
        self.file.rewind()?;
        self.file.write_all(info.render().as_bytes())?;
        self.file.sync_data()
    }

    /// Reads what the primary wrote; `None` while it has not written yet.
    pub fn read(&mut self) -> io::Result<Option<ConfigInfo>> {
        let mut text = String::new();
        self.file.rewind()?;
        self.file.read_to_string(&mut text)?;
        Ok(ConfigInfo::parse(&text))
    }
}

impl Drop for ConfigFile {
    fn drop(&mut self) {
        if self.remove_on_drop {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Removes what a dead primary left in the runtime directory (sockets, telemetry), keeping
/// `config`, which the new primary holds.
pub fn clear_stale(dir: &Path) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let name = e.file_name();
            let name = name.to_string_lossy();
            if name.starts_with("mp_socket") || name == "telemetry" {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ensure_dir_names_what_it_created_and_remove_created_takes_only_that() {
        let tmp = shoal_testkit::TempDir::new("rt");
        let deep = tmp.join("a/b/c");
        let created = ensure_dir(&deep).unwrap();
        assert_eq!(
            created,
            vec![tmp.join("a"), tmp.join("a/b"), tmp.join("a/b/c")]
        );
        assert!(ensure_dir(&deep).unwrap().is_empty());
        std::fs::write(tmp.join("a/kept"), b"").unwrap();
        remove_created(&created);
        assert!(!tmp.join("a/b").exists());
        assert!(tmp.join("a/kept").exists(), "a directory in use stays");
    }

    #[test]
    fn config_info_round_trips() {
        let info = ConfigInfo {
            pid: 42,
            layout_version: 0xdead_beef_0123_4567,
            segment: "/dev/shm/shoal_x_seg0".into(),
            len: 1 << 28,
        };
        assert_eq!(ConfigInfo::parse(&info.render()), Some(info));
        assert_eq!(ConfigInfo::parse("pid=1\n"), None);
    }
}
