//! Where pack files come from: the copy embedded in the binary at build time, or a folder.
//!
//! Every read of a pack, scenario, dataset or schema file goes through this module. Embedded
//! files are named by paths under [`EMBEDDED_ROOT`] (`/<embedded>/specs/1.1/pack.yaml`); every
//! other path is a file on disk. The loader joins and normalises both kinds alike (`use:` paths
//! are relative to the including file), so nothing outside this module asks which kind it
//! holds. Messages show an embedded path without its root (`specs/1.1/pack.yaml:12:5`): the
//! path `packs export` writes the file to.

use std::io;
use std::path::{Component, Path, PathBuf};

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/embedded_packs.rs"));
}

/// The root of embedded paths: absolute, so joining and normalising never touch it, and a
/// name no folder on disk has.
pub const EMBEDDED_ROOT: &str = "/<embedded>";

/// The folders the packs are made of, relative to the repository root.
pub const TREES: [&str; 3] = ["specs", "datasets", "schemas"];

/// The packs a command reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Packs {
    /// The packs compiled into the binary.
    Embedded,
    /// A specs folder (holding `1.0/`, `1.1/`, `dev/`), with `datasets/` and `schemas/` found
    /// beside it through the packs' relative paths: a maintainer's working copy.
    Folder(PathBuf),
}

impl Packs {
    /// The folder named by `--specs`/`OCI_SPECS_DIR`, else the embedded packs. The current
    /// folder is never searched, so a binary run anywhere uses the packs it was built with.
    pub fn choose(folder: Option<&Path>) -> Packs {
        match folder {
            Some(f) => Packs::Folder(f.to_path_buf()),
            None => Packs::Embedded,
        }
    }

    /// The specs folder of these packs.
    pub fn specs_dir(&self) -> PathBuf {
        match self {
            Packs::Embedded => Path::new(EMBEDDED_ROOT).join("specs"),
            Packs::Folder(f) => f.clone(),
        }
    }
}

/// What results and `--version` say about where a pack was read: `embedded`, or `folder`.
pub fn origin(path: &Path) -> &'static str {
    if is_embedded(path) {
        "embedded"
    } else {
        "folder"
    }
}

/// Whether `path` names an embedded file or folder.
pub fn is_embedded(path: &Path) -> bool {
    path.starts_with(EMBEDDED_ROOT)
}

/// The path of an embedded file as shown and exported (`specs/1.1/pack.yaml`); `None` for a
/// path on disk.
pub fn embedded_relative(path: &Path) -> Option<String> {
    let rest = path.strip_prefix(EMBEDDED_ROOT).ok()?;
    let mut parts: Vec<&str> = Vec::new();
    for c in rest.components() {
        match c {
            Component::Normal(p) => parts.push(p.to_str()?),
            Component::ParentDir => {
                parts.pop();
            }
            _ => {}
        }
    }
    Some(parts.join("/"))
}

/// Every embedded file as (path relative to the repository root, bytes), sorted by path.
pub fn embedded_files() -> &'static [(&'static str, &'static [u8])] {
    embedded::FILES
}

fn embedded_file(path: &Path) -> Option<&'static [u8]> {
    let rel = embedded_relative(path)?;
    embedded::FILES
        .binary_search_by(|(p, _)| (*p).cmp(rel.as_str()))
        .ok()
        .map(|i| embedded::FILES[i].1)
}

fn not_embedded(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!(
            "{} is not among the packs built into oci-conform",
            embedded_relative(path).unwrap_or_default()
        ),
    )
}

/// The bytes of a file.
pub fn read(path: &Path) -> io::Result<Vec<u8>> {
    if is_embedded(path) {
        embedded_file(path)
            .map(<[u8]>::to_vec)
            .ok_or_else(|| not_embedded(path))
    } else {
        std::fs::read(path)
    }
}

/// The text of a file (UTF-8).
pub fn read_to_string(path: &Path) -> io::Result<String> {
    if is_embedded(path) {
        let bytes = embedded_file(path).ok_or_else(|| not_embedded(path))?;
        String::from_utf8(bytes.to_vec()).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
    } else {
        std::fs::read_to_string(path)
    }
}

/// Whether `path` is a file.
pub fn is_file(path: &Path) -> bool {
    if is_embedded(path) {
        embedded_file(path).is_some()
    } else {
        path.is_file()
    }
}

/// Whether `path` is a folder.
pub fn is_dir(path: &Path) -> bool {
    if is_embedded(path) {
        match embedded_relative(path) {
            Some(rel) if rel.is_empty() => true,
            Some(rel) => {
                let prefix = format!("{rel}/");
                embedded::FILES.iter().any(|(p, _)| p.starts_with(&prefix))
            }
            None => false,
        }
    } else {
        path.is_dir()
    }
}

/// Whether `path` is a file or a folder.
pub fn exists(path: &Path) -> bool {
    is_file(path) || is_dir(path)
}

/// The entries of a folder (files and folders), sorted by name.
pub fn read_dir(path: &Path) -> io::Result<Vec<PathBuf>> {
    if !is_embedded(path) {
        let mut out: Vec<PathBuf> = std::fs::read_dir(path)?
            .map(|e| e.map(|e| e.path()))
            .collect::<io::Result<_>>()?;
        out.sort();
        return Ok(out);
    }
    if !is_dir(path) {
        return Err(not_embedded(path));
    }
    let rel = embedded_relative(path).unwrap_or_default();
    let prefix = if rel.is_empty() {
        String::new()
    } else {
        format!("{rel}/")
    };
    let mut names: Vec<&str> = embedded::FILES
        .iter()
        .filter_map(|(p, _)| p.strip_prefix(prefix.as_str()))
        .map(|rest| rest.split('/').next().unwrap_or(rest))
        .collect();
    names.dedup();
    let base = Path::new(EMBEDDED_ROOT).join(&rel);
    Ok(names.into_iter().map(|n| base.join(n)).collect())
}

/// `path`, reached from a file in `base`, kept among the embedded files when `base` is one of
/// them: a path climbing out of them (or an absolute one) names nothing, rather than a file of
/// the machine the binary happens to run on.
pub fn confine(base: &Path, path: PathBuf) -> PathBuf {
    if !is_embedded(base) || is_embedded(&path) {
        return path;
    }
    let inside: PathBuf = path
        .components()
        .filter(|c| matches!(c, Component::Normal(_)))
        .collect();
    Path::new(EMBEDDED_ROOT).join(inside)
}

/// `path` made absolute against the working folder (embedded paths already are).
pub fn absolute(path: &Path) -> PathBuf {
    if is_embedded(path) {
        return path.to_path_buf();
    }
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

/// Writes every embedded file below `dir` under its relative path (`dir/specs/1.1/pack.yaml`),
/// so the `$schema` hints between the files resolve as in the repository. Returns how many
/// files were written.
pub fn export(dir: &Path) -> io::Result<usize> {
    for (rel, bytes) in embedded::FILES {
        let target = dir.join(rel);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&target, bytes)?;
    }
    Ok(embedded::FILES.len())
}

/// Whether the pack folders in `root` (`specs/`, `datasets/`, `schemas/`) hold other files or
/// other bytes than the embedded ones: a working copy edited since the binary was built.
/// `false` when `root` holds no packs (`specs/*/pack.yaml`).
pub fn differs_from_embedded(root: &Path) -> bool {
    let holds_packs = std::fs::read_dir(root.join("specs")).is_ok_and(|rd| {
        rd.filter_map(Result::ok)
            .any(|e| e.path().join("pack.yaml").is_file())
    });
    if !holds_packs {
        return false;
    }
    let mut on_disk = Vec::new();
    for tree in TREES {
        collect(root, &root.join(tree), &mut on_disk);
    }
    on_disk.sort();
    on_disk.len() != embedded::FILES.len()
        || on_disk
            .iter()
            .zip(embedded::FILES)
            .any(|(rel, (p, bytes))| {
                rel != p || std::fs::read(root.join(rel)).ok().as_deref() != Some(*bytes)
            })
}

/// The files below `dir` relative to `root` with `/` separators, as the build embeds them
/// (hidden files left out).
fn collect(root: &Path, dir: &Path, out: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.filter_map(Result::ok) {
        let path = entry.path();
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        if path.is_dir() {
            collect(root, &path, out);
        } else if let Ok(rel) = path.strip_prefix(root) {
            let parts: Vec<String> = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            out.push(parts.join("/"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn emb(rel: &str) -> PathBuf {
        Path::new(EMBEDDED_ROOT).join(rel)
    }

    #[test]
    fn the_three_trees_are_embedded() {
        for tree in TREES {
            assert!(is_dir(&emb(tree)), "{tree}");
        }
        assert!(is_file(&emb("specs/1.1/pack.yaml")));
        assert!(is_file(&emb("schemas/scenario.schema.json")));
        assert!(!is_file(&emb("specs/1.1")));
        assert!(!exists(&emb("specs/9.9/pack.yaml")));
        let files = embedded_files();
        assert!(files.windows(2).all(|w| w[0].0 < w[1].0), "sorted");
    }

    #[test]
    fn embedded_paths_join_and_normalise_like_disk_paths() {
        let p = emb("specs/dev/../1.1/pack.yaml");
        assert_eq!(
            embedded_relative(&p).as_deref(),
            Some("specs/1.1/pack.yaml")
        );
        assert!(read_to_string(&p).unwrap().contains("specVersion"));
        assert_eq!(embedded_relative(Path::new("/tmp/x")), None);
        let err = read(&emb("specs/nope.yaml")).unwrap_err();
        assert!(err.to_string().contains("specs/nope.yaml"), "{err}");
    }

    #[test]
    fn a_path_out_of_the_embedded_files_stays_among_them() {
        let base = emb("specs/1.1");
        assert_eq!(
            confine(&base, PathBuf::from("/etc/passwd")),
            emb("etc/passwd")
        );
        assert_eq!(
            confine(&base, emb("datasets/x.yaml")),
            emb("datasets/x.yaml")
        );
        let disk = Path::new("/repo/specs/1.1");
        assert_eq!(
            confine(disk, PathBuf::from("/etc/x")),
            PathBuf::from("/etc/x")
        );
    }

    #[test]
    fn folders_list_their_entries_once_each() {
        let specs = read_dir(&emb("specs")).unwrap();
        let names: Vec<String> = specs
            .iter()
            .map(|p| embedded_relative(p).unwrap())
            .collect();
        assert!(names.contains(&"specs/1.1".to_string()), "{names:?}");
        let mut dedup = names.clone();
        dedup.dedup();
        assert_eq!(names, dedup);
        let root = read_dir(Path::new(EMBEDDED_ROOT)).unwrap();
        assert_eq!(root.len(), 3, "{root:?}");
    }

    #[test]
    fn the_checkout_matches_what_was_embedded() {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        assert!(!differs_from_embedded(repo));
        assert!(
            !differs_from_embedded(&repo.join("engine")),
            "no specs/ there"
        );
    }
}
