//! Request bodies of failing tests, written next to the report so their `curl` commands
//! (`--data-binary @bodies/…`) resend exactly the bytes the run sent.

use std::collections::HashSet;
use std::io::Read as _;
use std::path::Path;

use super::curl::{BodyFile, MAX_BODY_FILE};
use crate::redact::Redactor;

/// Writes each body once; returns how many files were written.
pub fn write(dir: &Path, files: &[BodyFile], redactor: &Redactor) -> std::io::Result<usize> {
    let mut seen = HashSet::new();
    let mut written = 0;
    for f in files {
        if !seen.insert(f.path.as_str()) {
            continue;
        }
        // Names come from digests (`bodies/sha256-<hex>.bin`); refuse anything else.
        let name_ok = Path::new(&f.path)
            .components()
            .all(|c| matches!(c, std::path::Component::Normal(_)));
        if !name_ok || f.body.len() > MAX_BODY_FILE {
            continue;
        }
        let mut bytes = Vec::with_capacity(f.body.len() as usize);
        f.body.reader().read_to_end(&mut bytes)?;
        let target = dir.join(&f.path);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)?;
        }
        // A body is dataset content, but a secret echoed into it must not leave the run.
        std::fs::write(target, redactor.scrub_bytes(&bytes))?;
        written += 1;
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::http::ReqBody;

    #[test]
    fn writes_each_body_once_and_scrubs_secrets() {
        let dir = std::env::temp_dir().join(format!("oci-conform-bodies-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let r = Redactor::default();
        r.add("hunter22");
        let body = ReqBody::Bytes(Arc::new(b"\x00pw=hunter22\xff".to_vec()));
        let f = BodyFile {
            path: "bodies/sha256-aa.bin".into(),
            body,
        };
        let evil = BodyFile {
            path: "../escape.bin".into(),
            body: ReqBody::Bytes(Arc::new(vec![1])),
        };
        let n = write(&dir, &[f.clone(), f, evil], &r).expect("written");
        // the duplicate is written once and the path leaving the folder not at all
        assert_eq!(n, 1);
        let got = std::fs::read(dir.join("bodies/sha256-aa.bin")).expect("file");
        assert_eq!(got, b"\x00pw=***\xff");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
