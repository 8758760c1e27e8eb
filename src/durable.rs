//! Durable local files: syncing a directory, renaming without replacing,
//! private files, and an append-only JSON Lines journal held under an
//! exclusive lock.
//!
//! These are the pieces the inbound parcel loop ([`crate::parcels::inbound`])
//! and the CLI's key-rotation journal share. Every function returns a plain
//! [`std::io::Result`]: the caller knows which file it was and says so.
//!
//! Private files (journals, key files) are never reached through a symbolic
//! link: [`create_private`] opens with `O_NOFOLLOW`, so a link planted at
//! their path is refused instead of having records written to its target.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// The directory a path's last component lives in (`.` for a bare name).
pub fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Makes the creation, rename or removal of an entry of `dir` durable.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Creates a file readable and writable by its owner only: a new one for
/// writing (`exclusive`), or else one opened (or created) for reading and
/// appending. A symbolic link at `path` is never followed: the error then
/// says so (its kind is the one the system gave, `ELOOP`'s).
pub fn create_private(path: &Path, exclusive: bool) -> std::io::Result<File> {
    let mut options = std::fs::OpenOptions::new();
    if exclusive {
        options.write(true).create_new(true);
    } else {
        options.read(true).create(true).append(true);
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600).custom_flags(libc::O_NOFOLLOW);
    }
    options.open(path).map_err(|e| {
        #[cfg(unix)]
        if e.raw_os_error() == Some(libc::ELOOP) {
            return std::io::Error::new(
                e.kind(),
                "it is a symbolic link; refusing to follow it (remove the link)",
            );
        }
        e
    })
}

/// Renames `from` to `to` unless `to` exists (atomically, where the file
/// system can): a file created there meanwhile is never replaced. When `to`
/// exists the error's kind is [`std::io::ErrorKind::AlreadyExists`].
pub fn rename_no_replace(from: &Path, to: &Path) -> std::io::Result<()> {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        use std::os::unix::ffi::OsStrExt;
        let nul = |p: &Path| {
            std::ffi::CString::new(p.as_os_str().as_bytes())
                .map_err(|_| std::io::Error::other("the path holds a NUL byte"))
        };
        let (old, new) = (nul(from)?, nul(to)?);
        // SAFETY: both pointers are NUL-terminated strings that outlive the call.
        let rc = unsafe {
            libc::renameat2(
                libc::AT_FDCWD,
                old.as_ptr(),
                libc::AT_FDCWD,
                new.as_ptr(),
                libc::RENAME_NOREPLACE,
            )
        };
        if rc == 0 {
            return Ok(());
        }
        let err = std::io::Error::last_os_error();
        if !matches!(err.raw_os_error(), Some(libc::EINVAL | libc::ENOSYS)) {
            return Err(err);
        }
        // This file system has no no-replace rename: a hard link is one too.
    }
    std::fs::hard_link(from, to)?;
    let _ = std::fs::remove_file(from);
    Ok(())
}

/// An append-only JSON Lines journal: created private (mode 0600), locked
/// exclusively (`flock`) for as long as this value lives, each line synced
/// to disk before [`append_line`](JournalFile::append_line) returns.
///
/// A crash in the middle of a write leaves a torn last line (no newline at
/// the end): [`read_all`](JournalFile::read_all) reports it, and the next
/// append first ends that line so the new record starts on a line of its own.
/// Readers skip or flag a line that does not parse; they never stop at it.
#[derive(Debug)]
pub struct JournalFile {
    file: File,
    path: PathBuf,
    created: bool,
    torn_end: bool,
}

impl JournalFile {
    /// Opens (or creates) the journal at `path` and takes an exclusive lock
    /// on it. Another holder of the lock makes this fail at once with
    /// [`std::io::ErrorKind::WouldBlock`]. A journal created here has its
    /// directory entry synced before this returns.
    pub fn open(path: &Path) -> std::io::Result<JournalFile> {
        let mut attempts = 0;
        let (file, existed) = loop {
            let existed = std::fs::symlink_metadata(path).is_ok();
            let file = create_private(path, false)?;
            lock_exclusive(&file)?;
            // A compaction may have replaced the file between the open and
            // the lock: the lock then guards nothing, so take the new one.
            attempts += 1;
            if same_inode(&file, path)? || attempts >= 10 {
                break (file, existed);
            }
        };
        if !existed {
            sync_dir(&parent_dir(path))?;
        }
        Ok(JournalFile {
            file,
            path: path.to_path_buf(),
            created: !existed,
            torn_end: false,
        })
    }

    /// The journal's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// True when this value created the file.
    pub fn created(&self) -> bool {
        self.created
    }

    /// The underlying file (to read its metadata or change its mode).
    pub fn file(&self) -> &File {
        &self.file
    }

    /// Reads the whole journal as text (invalid UTF-8 replaced), and notes
    /// whether its last line is torn.
    pub fn read_all(&mut self) -> std::io::Result<String> {
        let mut text = String::new();
        self.for_each_line(&mut |line| {
            text.push_str(line);
            text.push('\n');
        })?;
        if self.torn_end {
            text.pop();
        }
        Ok(text)
    }

    /// Hands each line to `each` in turn (without its newline, invalid UTF-8
    /// replaced), holding one line in memory at a time, and notes whether
    /// the last line is torn.
    pub fn for_each_line(&mut self, each: &mut dyn FnMut(&str)) -> std::io::Result<()> {
        self.file.seek(SeekFrom::Start(0))?;
        let mut reader = BufReader::new(&self.file);
        let mut line = Vec::new();
        let mut torn = false;
        loop {
            line.clear();
            if reader.read_until(b'\n', &mut line)? == 0 {
                break;
            }
            torn = line.last() != Some(&b'\n');
            if !torn {
                line.pop();
            }
            each(&String::from_utf8_lossy(&line));
        }
        self.torn_end = torn;
        Ok(())
    }

    /// Replaces the whole journal by `lines`, atomically: they are written
    /// to `temp` (a new private file in the same directory, locked at once so
    /// that no other run can take it over), synced, renamed over the journal,
    /// and the directory synced. On failure the journal is left as it was and
    /// `temp` is removed.
    pub fn replace(
        &mut self,
        temp: &Path,
        lines: &mut dyn Iterator<Item = String>,
    ) -> std::io::Result<()> {
        let file = create_private(temp, true)?;
        let written = (|| {
            lock_exclusive(&file)?;
            let mut out = BufWriter::new(&file);
            for line in lines {
                out.write_all(line.as_bytes())?;
                out.write_all(b"\n")?;
            }
            out.flush()?;
            drop(out);
            file.sync_all()?;
            std::fs::rename(temp, &self.path)
        })();
        if let Err(e) = written {
            let _ = std::fs::remove_file(temp);
            return Err(e);
        }
        self.file = file;
        self.torn_end = false;
        sync_dir(&parent_dir(&self.path))
    }

    /// True when the last [`read_all`](JournalFile::read_all) found a torn
    /// last line that no append has closed yet.
    pub fn torn_end(&self) -> bool {
        self.torn_end
    }

    /// Appends `line` (a newline is added) and syncs it to disk. A torn last
    /// line is closed first, in the same write. A write that fails part-way
    /// is taken back, so the journal never ends in half a line.
    pub fn append_line(&mut self, line: &str) -> std::io::Result<()> {
        let mut buf = String::with_capacity(line.len() + 2);
        if self.torn_end {
            buf.push('\n');
        }
        buf.push_str(line);
        buf.push('\n');
        let before = self.file.metadata().map(|m| m.len());
        let was_torn = self.torn_end;
        // Until the line is synced the journal may end in part of it: the
        // next append starts on a new line all the same.
        self.torn_end = true;
        if let Err(e) = self.file.write_all(buf.as_bytes()) {
            // Part of the line may be written (a file-size limit, a full
            // disk): take it back when the file can be cut again.
            if before.and_then(|len| self.file.set_len(len)).is_ok() {
                self.torn_end = was_torn;
            }
            return Err(e);
        }
        self.file.sync_data()?;
        self.torn_end = false;
        Ok(())
    }

    /// Serializes `record` as one JSON line and appends it
    /// ([`append_line`](JournalFile::append_line)).
    pub fn append<T: serde::Serialize>(&mut self, record: &T) -> std::io::Result<()> {
        let line = serde_json::to_string(record).map_err(std::io::Error::other)?;
        self.append_line(&line)
    }
}

/// True when `path` still names the open `file` (not a file renamed over it).
fn same_inode(file: &File, path: &Path) -> std::io::Result<bool> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let (held, named) = (file.metadata()?, std::fs::symlink_metadata(path)?);
        Ok(held.dev() == named.dev() && held.ino() == named.ino())
    }
    #[cfg(not(unix))]
    {
        let _ = (file, path);
        Ok(true)
    }
}

/// An exclusive advisory lock, held until the file is closed; fails with
/// `WouldBlock` when another process holds it.
fn lock_exclusive(file: &File) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::fd::AsRawFd;
        // SAFETY: the descriptor is open for the duration of the call.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    #[cfg(not(unix))]
    let _ = file;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "ecgridos-durable-{name}-{}-{}",
            std::process::id(),
            fastrand::u64(..)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn a_second_holder_is_refused_until_the_first_closes() {
        let dir = scratch("lock");
        let path = dir.join("j");
        let first = JournalFile::open(&path).unwrap();
        assert!(first.created());
        let err = JournalFile::open(&path).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::WouldBlock);
        drop(first);
        let again = JournalFile::open(&path).unwrap();
        assert!(!again.created());
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_torn_last_line_is_closed_before_the_next_record() {
        let dir = scratch("torn");
        let path = dir.join("j");
        std::fs::write(&path, "{\"a\":1}\n{\"a\":").unwrap();
        let mut journal = JournalFile::open(&path).unwrap();
        let text = journal.read_all().unwrap();
        assert!(journal.torn_end());
        assert_eq!(text.lines().count(), 2);
        journal.append(&serde_json::json!({"a": 2})).unwrap();
        assert!(!journal.torn_end());
        journal.append_line("{\"a\":3}").unwrap();
        let after = std::fs::read_to_string(&path).unwrap();
        assert_eq!(after, "{\"a\":1}\n{\"a\":\n{\"a\":2}\n{\"a\":3}\n");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn a_new_journal_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = scratch("mode");
        let path = dir.join("j");
        let journal = JournalFile::open(&path).unwrap();
        let mode = journal.file().metadata().unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn a_symlink_is_never_followed_by_a_private_file() {
        let dir = scratch("link");
        let target = dir.join("target");
        std::fs::write(&target, "").unwrap();
        let link = dir.join("j");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let err = JournalFile::open(&link).unwrap_err();
        assert!(err.to_string().contains("symbolic link"), "{err}");
        let err = create_private(&link, false).unwrap_err();
        assert!(err.to_string().contains("symbolic link"), "{err}");
        assert!(create_private(&link, true).is_err());
        assert_eq!(std::fs::read(&target).unwrap(), b"");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_replaced_journal_keeps_its_lock_and_its_lines() {
        let dir = scratch("replace");
        let path = dir.join("j");
        let mut journal = JournalFile::open(&path).unwrap();
        journal.append_line("old").unwrap();
        let mut lines = ["a".to_string(), "b".to_string()].into_iter();
        journal.replace(&dir.join("j.tmp"), &mut lines).unwrap();
        journal.append_line("c").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "a\nb\nc\n");
        let err = JournalFile::open(&path).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::WouldBlock);
        assert!(!dir.join("j.tmp").exists());
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn rename_no_replace_keeps_an_existing_target() {
        let dir = scratch("rename");
        let (a, b) = (dir.join("a"), dir.join("b"));
        std::fs::write(&a, "new").unwrap();
        std::fs::write(&b, "old").unwrap();
        let err = rename_no_replace(&a, &b).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read_to_string(&b).unwrap(), "old");
        std::fs::remove_file(&b).unwrap();
        rename_no_replace(&a, &b).unwrap();
        assert_eq!(std::fs::read_to_string(&b).unwrap(), "new");
        assert!(!a.exists());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
