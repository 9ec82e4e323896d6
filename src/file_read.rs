//! Reading the operator's files (`proxy.toml`, the JWT keys file) so that the file cannot
//! decide how long the read takes or how much it holds.
//!
//! - `open` cannot block: the file is opened with `O_NONBLOCK`, so a FIFO put at the path
//!   (with nobody writing to it) opens at once instead of waiting for a writer.
//! - Only regular files are read, checked with `fstat` on the opened descriptor (not on the
//!   path, which another process could swap between the check and the open). Start-up also
//!   takes a pipe, read once (`-c <(cat proxy.toml)`); a reload never does.
//! - At most [`MAX_FILE_BYTES`] are read; a larger file is an error that says so.
//! - [`read_config`] also refuses a config file that someone else could have written (see
//!   [`crate::strict_modes`]); a pipe is exempt: whoever wrote it is whoever started the proxy.
//! - [`read_config_off_runtime`] does the read on a thread of its own, so a slow disk or a hung
//!   network mount stalls that read, never the runtime that handles signals and reloads.

use std::fs::{File, Metadata};
use std::io::Read as _;
use std::path::{Path, PathBuf};

use crate::strict_modes;

/// The most read of a config or keys file: far above any real `proxy.toml` or JWKS.
pub const MAX_FILE_BYTES: u64 = 1024 * 1024;

/// Which kinds of file a read accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accept {
    /// Regular files only: every read after start-up.
    Regular,
    /// A regular file or a pipe (`-c <(cat proxy.toml)`, `-c /dev/stdin`), at start-up only:
    /// a pipe can be read once, and then only if something writes to it.
    RegularOrPipe,
}

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("not a regular file (a {0}); only regular files are read")]
    NotRegular(&'static str),
    #[error("larger than {} KiB; not read", .0 / 1024)]
    TooLarge(u64),
    #[error("not UTF-8 text")]
    NotText,
    /// Someone other than the proxy's user (or root) could have written it.
    #[error("{0}")]
    NotOwn(String),
}

impl ReadError {
    /// The file does not exist (a different answer from "cannot read it" for both callers).
    pub fn is_not_found(&self) -> bool {
        matches!(self, ReadError::Io(e) if e.kind() == std::io::ErrorKind::NotFound)
    }
}

/// A file's content and the `fstat` of the descriptor it was read from.
pub struct FileContent {
    pub bytes: Vec<u8>,
    pub meta: Metadata,
}

/// Reads `path` (blocking): see the module doc for what it refuses.
pub fn read(path: &Path, limit: u64, accept: Accept) -> Result<FileContent, ReadError> {
    let file = open_nonblocking(path)?;
    let meta = file.metadata()?;
    let kind = kind_of(&meta);
    match (kind, accept) {
        ("file", _) => {}
        ("pipe", Accept::RegularOrPipe) => blocking_again(&file)?,
        (other, _) => return Err(ReadError::NotRegular(other)),
    }
    // Sized up front from fstat, so that reading a file of the size it claims never grows (and
    // so copies) the buffer: the keys file's bytes are secret and zeroized by the caller.
    let mut bytes = Vec::with_capacity(meta.len().min(limit) as usize + 1);
    // One byte past the limit tells "exactly at the limit" from "over it".
    (&file).take(limit + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(ReadError::TooLarge(limit));
    }
    Ok(FileContent { bytes, meta })
}

/// [`read`] of a file that decides what the proxy trusts (the config file, the keys file),
/// refused when someone else could have written it or could replace it in its directory (see
/// [`crate::strict_modes`]): `what` names the file, `stake` what a stranger could do with it. A
/// pipe passes: its writer is whoever started the proxy (`-c <(cat proxy.toml)`).
pub fn read_owned(
    path: &Path,
    accept: Accept,
    what: &str,
    stake: &str,
) -> Result<FileContent, ReadError> {
    let content = read(path, MAX_FILE_BYTES, accept)?;
    if kind_of(&content.meta) == "pipe" {
        return Ok(content);
    }
    strict_modes::check_dir(path, what).map_err(ReadError::NotOwn)?;
    strict_modes::check_file(path, &content.meta, stake).map_err(ReadError::NotOwn)?;
    Ok(content)
}

/// [`read_owned`] of the config file.
pub fn read_config(path: &Path, accept: Accept) -> Result<FileContent, ReadError> {
    const STAKE: &str = "change the proxy's settings (CORS, header stripping), applied live";
    read_owned(path, accept, "the config file", STAKE)
}

/// The text of a read.
pub fn into_text(content: FileContent) -> Result<String, ReadError> {
    String::from_utf8(content.bytes).map_err(|_| ReadError::NotText)
}

/// [`read_config`] of a regular file, off the runtime (see [`off_runtime`]).
pub async fn read_config_off_runtime(path: PathBuf) -> Result<FileContent, ReadError> {
    off_runtime(move || read_config(&path, Accept::Regular)).await?
}

/// Runs `work` (file system calls) on a thread of its own and waits for it without blocking
/// the runtime. Not tokio's blocking pool: a read stuck on a hung network mount would hold up
/// the runtime's shutdown, and so the proxy's exit.
pub async fn off_runtime<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> std::io::Result<T> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("file-read".into())
        .spawn(move || {
            let _ = tx.send(work());
        })?;
    rx.await
        .map_err(|_| std::io::Error::other("the file-reading thread ended early"))
}

#[cfg(unix)]
fn open_nonblocking(path: &Path) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt as _;
    std::fs::OpenOptions::new()
        .read(true)
        // NOCTTY: a terminal device named by mistake must not become the controlling one.
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
}

#[cfg(not(unix))]
fn open_nonblocking(path: &Path) -> std::io::Result<File> {
    File::open(path)
}

/// A pipe accepted at start-up is read to its end: clear `O_NONBLOCK` so that the read waits
/// for the writer (`cat` behind `<(…)`) instead of seeing "no data yet". With no writer left,
/// the read ends at once with what there is.
#[cfg(unix)]
fn blocking_again(file: &File) -> std::io::Result<()> {
    use std::os::fd::AsRawFd as _;
    let fd = file.as_raw_fd();
    // SAFETY: fcntl on a descriptor this function's caller owns, with integer arguments only.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if flags < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: as above.
    if unsafe { libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_NONBLOCK) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(not(unix))]
fn blocking_again(_: &File) -> std::io::Result<()> {
    Ok(())
}

/// What kind of file the descriptor is, in words for the error.
fn kind_of(meta: &Metadata) -> &'static str {
    let t = meta.file_type();
    if t.is_file() {
        return "file";
    }
    if t.is_dir() {
        return "directory";
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt as _;
        if t.is_fifo() {
            return "pipe";
        }
        if t.is_socket() {
            return "socket";
        }
        if t.is_char_device() || t.is_block_device() {
            return "device";
        }
    }
    "special file"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_regular_files_up_to_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, b"12345").unwrap();
        assert_eq!(read(&p, 5, Accept::Regular).unwrap().bytes, b"12345");
        let err = read(&p, 4, Accept::Regular).err().unwrap();
        assert!(matches!(err, ReadError::TooLarge(4)), "{err}");
        let missing = read(&dir.path().join("nope"), 5, Accept::Regular)
            .err()
            .unwrap();
        assert!(missing.is_not_found());
        assert!(matches!(
            read(dir.path(), 5, Accept::Regular),
            Err(ReadError::NotRegular("directory"))
        ));
    }

    #[cfg(unix)]
    #[test]
    fn a_fifo_without_writer_is_refused_at_once_and_read_once_at_start() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("fifo");
        let c = std::ffi::CString::new(p.to_str().unwrap()).unwrap();
        // SAFETY: a valid C string and a mode.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let started = std::time::Instant::now();
        assert!(matches!(
            read(&p, 5, Accept::Regular),
            Err(ReadError::NotRegular("pipe"))
        ));
        // Accepted at start-up, and with no writer it ends at once, empty.
        assert_eq!(
            read(&p, 5, Accept::RegularOrPipe).unwrap().bytes,
            Vec::<u8>::new()
        );
        assert!(started.elapsed() < std::time::Duration::from_secs(2));
    }

    #[cfg(unix)]
    #[test]
    fn a_pipe_is_read_to_its_end_at_start() {
        let (reader, mut writer) = std::io::pipe().unwrap();
        let writing = std::thread::spawn(move || {
            use std::io::Write as _;
            std::thread::sleep(std::time::Duration::from_millis(50));
            writer.write_all(b"port = 1\n").unwrap();
        });
        use std::os::fd::AsRawFd as _;
        let p = PathBuf::from(format!("/dev/fd/{}", reader.as_raw_fd()));
        assert_eq!(
            into_text(read(&p, 100, Accept::RegularOrPipe).unwrap()).unwrap(),
            "port = 1\n"
        );
        writing.join().unwrap();
    }
}
