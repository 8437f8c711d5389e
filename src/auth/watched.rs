//! A file read again when its contents change: the JWKS file, the roles
//! file and the Basic users file. The background task of
//! `Authenticator::spawn_refresh` polls each every few seconds; polling
//! (rather than file-system events) also sees a Kubernetes ConfigMap or
//! Secret swapped under its symlink, and costs one small read.

use std::{
    io::Read as _,
    path::{Path, PathBuf},
};

use sha2::{Digest as _, Sha256};

/// The largest file read: these files are small, and a file past this is
/// a mistake (refused, the last good contents kept).
pub const MAX_FILE_BYTES: u64 = 4 * 1024 * 1024;

/// A file and the digest of the contents last seen.
#[derive(Debug)]
pub struct WatchedFile {
    path: PathBuf,
    seen: Option<[u8; 32]>,
}

impl WatchedFile {
    /// `path`, not read yet.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            seen: None,
        }
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file's contents when they differ from those last returned (the
    /// first call always returns them), `None` when unchanged. Contents
    /// that then fail to parse are not returned again until they change,
    /// so a broken file is reported once.
    pub fn read_if_changed(&mut self) -> std::io::Result<Option<Vec<u8>>> {
        let contents = read_bounded(&self.path)?;
        let digest: [u8; 32] = Sha256::digest(&contents).into();
        if self.seen == Some(digest) {
            return Ok(None);
        }
        self.seen = Some(digest);
        Ok(Some(contents))
    }
}

/// The contents of `path`, refused past [`MAX_FILE_BYTES`].
pub fn read_bounded(path: &Path) -> std::io::Result<Vec<u8>> {
    let file = std::fs::File::open(path)?;
    let mut contents = Vec::new();
    file.take(MAX_FILE_BYTES + 1).read_to_end(&mut contents)?;
    if contents.len() as u64 > MAX_FILE_BYTES {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("the file is larger than {MAX_FILE_BYTES} bytes"),
        ));
    }
    Ok(contents)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contents_are_returned_once_per_change() {
        let dir = std::env::temp_dir().join(format!("groupd-watched-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("file");
        std::fs::write(&path, "one").unwrap();
        let mut file = WatchedFile::new(&path);
        assert_eq!(
            file.read_if_changed().unwrap().as_deref(),
            Some(&b"one"[..])
        );
        assert_eq!(file.read_if_changed().unwrap(), None);
        std::fs::write(&path, "two").unwrap();
        assert_eq!(
            file.read_if_changed().unwrap().as_deref(),
            Some(&b"two"[..])
        );
        std::fs::remove_file(&path).unwrap();
        assert!(
            file.read_if_changed().is_err(),
            "a missing file is an error"
        );
        std::fs::write(&path, "two").unwrap();
        assert_eq!(file.read_if_changed().unwrap(), None, "back as it was");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn files_past_the_bound_are_refused() {
        let dir = std::env::temp_dir().join(format!("groupd-watched-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("big");
        std::fs::write(&path, vec![b' '; MAX_FILE_BYTES as usize + 1]).unwrap();
        let error = read_bounded(&path).unwrap_err();
        assert_eq!(error.kind(), std::io::ErrorKind::InvalidData);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
