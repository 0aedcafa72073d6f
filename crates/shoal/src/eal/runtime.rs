//! The runtime directory and the `config` file the primary holds a lock on while it lives.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::sys;

/// `/var/run/shoal/<prefix>/` as root, else `$XDG_RUNTIME_DIR/shoal/<prefix>/` (or
/// `/tmp/shoal-<uid>/<prefix>/` when that is unset).
pub fn runtime_dir(prefix: &str) -> PathBuf {
    let base = if sys::geteuid() == 0 {
        PathBuf::from("/var/run/shoal")
    } else if let Some(x) = std::env::var_os("XDG_RUNTIME_DIR").filter(|x| !x.is_empty()) {
        PathBuf::from(x).join("shoal")
    } else {
        PathBuf::from(format!("/tmp/shoal-{}", sys::geteuid()))
    };
    base.join(prefix)
}

/// Creates the directory (and its parents) with mode 0700.
pub fn ensure_dir(dir: &Path) -> io::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
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
}

impl ConfigFile {
    /// Opens (creating if needed) the config file in `dir`.
    pub fn open_or_create(dir: &Path) -> io::Result<ConfigFile> {
        let path = dir.join("config");
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)?;
        Ok(ConfigFile { file })
    }

    /// Opens an existing config file; `Ok(None)` when there is none.
    pub fn open_existing(dir: &Path) -> io::Result<Option<ConfigFile>> {
        let path = dir.join("config");
        match OpenOptions::new().read(true).write(true).open(&path) {
            Ok(file) => Ok(Some(ConfigFile { file })),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Tries to become the primary: true when this process now holds the lock. The lock is an
    /// open-file-description lock: no other descriptor of the file that this process opens and
    /// closes (an inspector inside the primary, say) can drop it, and the kernel drops it when
    /// the primary dies, in whatever PID namespace it lives.
    pub fn try_lock(&self) -> io::Result<bool> {
        sys::ofd_try_lock(&self.file, 0, 0)
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
