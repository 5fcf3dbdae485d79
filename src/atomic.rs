//! Output files that never exist half-written: written under a temp name beside the target,
//! fsynced and renamed into place. Ground floor.

use std::io::{self, BufWriter, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::error::{Context, Error, Result};

/// An output file written under a temp name and renamed into place on `commit`. Dropped
/// without commit (error, interrupt), the temp file is removed and the target untouched.
///
/// Only regular files are replaced: a device, FIFO or socket (`-o /dev/null`, `-o /dev/stdout`)
/// is written in place, since renaming over it would destroy it (as root, even /dev/null); a
/// symlink keeps pointing where it did, and the file it points to is replaced.
pub struct AtomicFile {
    target: PathBuf,
    out: Output,
}

enum Output {
    Temp(BufWriter<tempfile::NamedTempFile>),
    InPlace(BufWriter<std::fs::File>),
}

impl AtomicFile {
    pub fn create(target: &Path) -> Result<Self> {
        if let Ok(meta) = std::fs::metadata(target)
            && !meta.is_file()
        {
            if meta.is_dir() {
                return Err(Error::input(
                    target,
                    "is a directory; give a file name to write",
                ));
            }
            let file = std::fs::OpenOptions::new()
                .write(true)
                .open(target)
                .context(format!("cannot write {}", target.display()))?;
            return Ok(AtomicFile {
                target: target.to_path_buf(),
                out: Output::InPlace(BufWriter::new(file)),
            });
        }
        // Through a symlink to an existing file: replace that file, keep the link.
        let target = std::fs::canonicalize(target).unwrap_or_else(|_| target.to_path_buf());
        let dir = target
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        // A new file gets the usual 0666 minus umask (tempfile's default is 0600); a replaced
        // file keeps its mode.
        let mode = std::fs::metadata(&target).map_or(0o666, |m| m.permissions().mode());
        let file = tempfile::Builder::new()
            .prefix(".pgsnapdiff-")
            .suffix(".tmp")
            .permissions(std::fs::Permissions::from_mode(mode))
            .tempfile_in(dir)
            .context(format!("cannot write in {}", dir.display()))?;
        Ok(AtomicFile {
            target,
            out: Output::Temp(BufWriter::new(file)),
        })
    }

    pub fn commit(self) -> Result<()> {
        let target = self.target;
        let what = format!("writing {}", target.display());
        match self.out {
            Output::InPlace(mut file) => file.flush().context(what),
            Output::Temp(file) => {
                let file = file
                    .into_inner()
                    .map_err(|e| e.into_error())
                    .context(what.clone())?;
                file.as_file().sync_all().context(what.clone())?;
                file.persist(&target).map_err(|e| e.error).context(what)?;
                Ok(())
            }
        }
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match &mut self.out {
            Output::Temp(f) => f.write(buf),
            Output::InPlace(f) => f.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match &mut self.out {
            Output::Temp(f) => f.flush(),
            Output::InPlace(f) => f.flush(),
        }
    }
}
