//! Shared test fixtures: the real binary, a real docker-registry on loopback, a fake server
//! for faults no real registry produces, and a proxy that breaks a real registry's answers.
#![allow(dead_code)]

pub mod certs;
pub mod fake;
pub mod registry;
pub mod token;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

/// The built `oci-conform` binary.
pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_oci-conform"))
}

/// The repository root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("repo root")
        .to_path_buf()
}

/// A temporary folder removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    /// A fresh folder under the system temp dir.
    pub fn new(tag: &str) -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let p = std::env::temp_dir().join(format!(
            "oci-conform-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("temp dir");
        TempDir(p)
    }

    /// A path inside.
    pub fn join(&self, p: &str) -> PathBuf {
        self.0.join(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs the binary from the repository root with a clean `OCI_*` environment plus `env`.
pub fn cli(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(bin());
    cmd.current_dir(root()).args(args);
    for (k, _) in std::env::vars() {
        if k.starts_with("OCI_") {
            cmd.env_remove(k);
        }
    }
    cmd.env("NO_COLOR", "1");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run oci-conform")
}

/// Runs `oci-conform run ARGS` against `addr` (plain HTTP unless `env` sets `OCI_TLS`) with
/// results in `out`: the process output and results.yaml.
pub fn run_against(
    addr: &str,
    out: &Path,
    args: &[&str],
    env: &[(&str, &str)],
) -> (Output, serde_json::Value) {
    let mut all = vec!["run", "--results-dir", out.to_str().unwrap()];
    all.extend_from_slice(args);
    let mut vars = vec![("OCI_REGISTRY", addr), ("OCI_TLS", "disabled")];
    vars.extend_from_slice(env);
    let o = cli(&all, &vars);
    let r = results(out);
    (o, r)
}

/// stdout + stderr as text.
pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Reads `results.yaml` as JSON.
pub fn results(dir: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(dir.join("results.yaml")).expect("results.yaml written");
    serde_saphyr::from_str(&text).expect("results.yaml parses")
}

/// Reason of the test with this id in a results document ("" when it has none).
pub fn reason<'a>(results: &'a serde_json::Value, id: &str) -> &'a str {
    results["tests"]
        .as_array()
        .and_then(|t| t.iter().find(|x| x["id"] == id))
        .and_then(|x| x["reason"].as_str())
        .unwrap_or("")
}

/// Status of the test with this id in a results document.
pub fn status_of<'a>(results: &'a serde_json::Value, id: &str) -> &'a str {
    results["tests"]
        .as_array()
        .and_then(|t| t.iter().find(|x| x["id"] == id))
        .and_then(|x| x["status"].as_str())
        .unwrap_or_else(|| panic!("no test `{id}` in results"))
}

/// Copies a folder tree.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// A free TCP port on 127.0.0.1, never the same twice in one test process: the system may hand
/// a port it just gave out to the next caller, and two registries on one port make the first
/// test's registry answer (or vanish under) the second one's run.
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut given = GIVEN
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .expect("bind")
            .local_addr()
            .expect("addr")
            .port();
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}
