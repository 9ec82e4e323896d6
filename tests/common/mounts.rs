//! A directory laid out as the kubelet lays out a ConfigMap or Secret volume: each version of
//! the files in a timestamped directory, `..data` a symlink to the current one, and each file
//! a symlink through it (`proxy.toml -> ..data/proxy.toml`). An update writes the new version
//! beside the old one, points `..data_tmp` at it, renames that over `..data` (the one atomic
//! step) and removes the old version.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

pub struct Mount {
    pub dir: PathBuf,
    version: u32,
    current: Option<PathBuf>,
}

pub fn chmod(p: &Path, mode: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

impl Mount {
    /// An empty volume at `dir` (created), mode 0755 unless the test changes it.
    pub fn new(dir: &Path) -> Mount {
        std::fs::create_dir_all(dir).unwrap();
        chmod(dir, 0o755);
        Mount {
            dir: dir.to_path_buf(),
            version: 0,
            current: None,
        }
    }

    /// The path a container reads `name` at.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Publishes a new version holding `files`, each with `mode` (and group `gid`, as with a
    /// pod's `fsGroup`), the way the kubelet updates a volume.
    pub fn publish(&mut self, files: &[(&str, &[u8])], mode: u32, gid: Option<u32>) {
        self.version += 1;
        let version = format!(
            "..2026_01_01_00_00_{:02}.{}",
            self.version,
            std::process::id()
        );
        let fresh = self.dir.join(&version);
        std::fs::create_dir(&fresh).unwrap();
        chmod(&fresh, 0o755);
        for (name, bytes) in files {
            let p = fresh.join(name);
            std::fs::write(&p, bytes).unwrap();
            chmod(&p, mode);
            if let Some(gid) = gid {
                std::os::unix::fs::chown(&p, None, Some(gid)).unwrap();
            }
        }
        let tmp = self.dir.join("..data_tmp");
        std::os::unix::fs::symlink(&version, &tmp).unwrap();
        std::fs::rename(&tmp, self.dir.join("..data")).unwrap();
        for (name, _) in files {
            let link = self.dir.join(name);
            if std::fs::symlink_metadata(&link).is_err() {
                std::os::unix::fs::symlink(Path::new("..data").join(name), &link).unwrap();
            }
        }
        if let Some(old) = self.current.replace(fresh) {
            std::fs::remove_dir_all(old).unwrap();
        }
    }
}
